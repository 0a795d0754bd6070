// SPDX-License-Identifier: MIT
/*
 * libmmn next to libfabric's own memhooks monitor (Debian libfabric-dev
 * 1.17), installed for real, in both orders:
 *
 *   ofi_memhooks mmn-first|ofi-first      (FI_MR_CACHE_MONITOR=memhooks)
 *
 * libfabric starts its memhooks monitor -- which rewrites the entries of
 * libc's mmap, munmap, mremap, madvise, shmat, shmdt and brk with `movabs r11,
 * hook; jmp *r11` -- only when a provider creates a registration cache for
 * host memory. In Debian's 1.17 build only verbs and efa do, and both need
 * RDMA hardware (tcp, net, sockets, udp, rxm and rxd have no MR cache; shm's
 * cache is for CUDA IPC handles only). So this test does what those providers
 * do, with libfabric's own code: it opens a real tcp domain, and creates
 * libfabric's MR cache on it with ofi_mr_cache_init() and the default monitor,
 * from the static libfabric.a, where those internal functions are visible.
 * libfabric then installs memhooks itself. The test's add_region callback
 * plays the provider's registration: each call hands out a new key.
 *
 * The cache's layout is libfabric 1.17's private one: the test fills in only
 * its two callbacks, at the offsets of that version's x86-64 build (checked
 * at build time: CMake builds this test only for libfabric 1.17 on x86-64),
 * and checks that ofi_mr_cache_init() stored the domain where expected.
 *
 * Checked, each way round: every unmap (munmap, free() of 64 MiB, mremap,
 * madvise(DONTNEED)) reaches libmmn's notifier before the call returns and
 * while the old contents are still there; libfabric's cache is still
 * invalidated (register, unmap, register again gets a new key, never the
 * stale one; without the unmap it gets the cached one); the coverage report
 * names the foreign patch; and after libfabric stops its monitor (which
 * writes back the bytes it saved, over whatever is there), libmmn still sees
 * every unmap before it happens, and no longer calls libfabric's hook.
 */
#include <dlfcn.h>
#include <mmn/process.h>
#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "coexist.h"
#include "harness.h"

/* libfabric 1.17 internals (prov/util, include/ofi_mr.h), x86-64. */
struct ofi_mem_monitor;
extern struct ofi_mem_monitor *default_monitor;
extern struct ofi_mem_monitor *memhooks_monitor;
int ofi_mr_cache_init(void *domain, struct ofi_mem_monitor **monitors, void *cache);
void ofi_mr_cache_cleanup(void *cache);
int ofi_mr_cache_search(void *cache, const void *info, void **entry);
void ofi_mr_cache_delete(void *cache, void *entry);

#define OFI_HMEM_IFACES 6	/* monitors[] per memory interface; [0] is host */
#define CACHE_SIZE 0x180	/* sizeof(struct ofi_mr_cache) */
#define CACHE_ADD_REGION 0x170	/* its add_region callback */
#define CACHE_DELETE_REGION 0x178	/* its delete_region callback */
#define INFO_SIZE 104		/* struct ofi_mr_info: the iovec first, then zeros */

typedef int add_region_fn(void *cache, void *entry);
typedef void delete_region_fn(void *cache, void *entry);

static bool mmn_first;
static long pg;
static struct fi_info *info;
static struct fid_fabric *fabric;
static struct fid_domain *domain;
static _Alignas(64) unsigned char cache[CACHE_SIZE];

/* The provider's side: a registration is a key; the entry starts with its iovec. */
#define NREG 64
static struct {
	void *entry;
	unsigned long key;
} regs[NREG];
static unsigned long next_key, adds, deletes;

static int add_region(void *c, void *entry)
{
	(void)c;
	for (int i = 0; i < NREG; i++) {
		if (!regs[i].entry || regs[i].entry == entry) {
			regs[i].entry = entry;
			regs[i].key = ++next_key;
			adds++;
			return 0;
		}
	}
	return -FI_ENOMEM;
}

static void delete_region(void *c, void *entry)
{
	(void)c;
	for (int i = 0; i < NREG; i++)
		if (regs[i].entry == entry)
			regs[i].key = 0;
	deletes++;
}

static unsigned long key_of(void *entry)
{
	for (int i = 0; i < NREG; i++)
		if (regs[i].entry == entry)
			return regs[i].key;
	return 0;
}

/* Look the range up in libfabric's cache (registering it on a miss), release it. */
static unsigned long reg(void *base, size_t len)
{
	unsigned char key_info[INFO_SIZE] = { 0 };
	struct iovec iov = { .iov_base = base, .iov_len = len };
	unsigned long key;
	void *entry = NULL;

	memcpy(key_info, &iov, sizeof(iov));
	assert_eq(ofi_mr_cache_search(cache, key_info, &entry), 0);
	assert_true(entry != NULL);
	assert_true(memcmp(entry, &iov, sizeof(iov)) == 0);
	key = key_of(entry);
	ofi_mr_cache_delete(cache, entry);	/* unused now, but stays cached */
	return key;
}

/* What a provider with a host-memory MR cache does at fi_domain(). */
static void install_ofi(void)
{
	struct ofi_mem_monitor *monitors[OFI_HMEM_IFACES] = { 0 };
	struct fi_info *hints = fi_allocinfo();
	add_region_fn *add = add_region;
	delete_region_fn *del = delete_region;
	void *stored;
	int ret;

	assert_true(hints != NULL);
	hints->fabric_attr->prov_name = strdup("tcp");
	ret = fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, hints, &info);
	fi_freeinfo(hints);
	if (ret) {
		fprintf(stderr, "fi_getinfo(tcp): %s\n", fi_strerror(-ret));
		exit(1);
	}
	assert_eq(fi_fabric(info->fabric_attr, &fabric, NULL), 0);
	assert_eq(fi_domain(fabric, info, &domain, NULL), 0);
	/* FI_MR_CACHE_MONITOR=memhooks made it the default, read by fi_getinfo(). */
	if (default_monitor != memhooks_monitor) {
		fprintf(stderr, "libfabric's default monitor is not memhooks: "
				"run with FI_MR_CACHE_MONITOR=memhooks\n");
		exit(1);
	}
	monitors[0] = default_monitor;
	memcpy(cache + CACHE_ADD_REGION, &add, sizeof(add));
	memcpy(cache + CACHE_DELETE_REGION, &del, sizeof(del));
	ret = ofi_mr_cache_init(domain, monitors, cache);	/* installs memhooks */
	if (ret) {
		fprintf(stderr, "ofi_mr_cache_init: %s\n", fi_strerror(-ret));
		exit(1);
	}
	/*
	 * The layout is the one assumed: the cache's first field is the domain
	 * (the tcp domain begins with libfabric's util_domain), then the monitor
	 * per memory interface, host memory's first.
	 */
	memcpy(&stored, cache, sizeof(stored));
	assert_true(stored == (void *)domain);
	memcpy(&stored, cache + sizeof(void *), sizeof(stored));
	assert_true(stored == (void *)default_monitor);
	/* memhooks' patch, or libmmn's jump over it when libmmn came first. */
	printf("munmap's entry after libfabric: %02x %02x\n", coexist_libc_entry("munmap")[0],
	       coexist_libc_entry("munmap")[1]);
}

/* A registration survives when nothing unmaps: the cache caches. */
TEST(cache_hits_without_unmap)
{
	size_t len = 4 * (size_t)pg;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long k1, k2, adds0 = adds;

	assert_true(p != MAP_FAILED);
	k1 = reg(p, len);
	k2 = reg(p, len);
	expect_ne(k1, 0);
	expect_eq(k2, k1);
	expect_eq(adds - adds0, 1);
	munmap(p, len);
}

/* munmap: libmmn before the change; libfabric's cache drops the key. */
TEST(munmap_seen_before_and_cache_invalidated)
{
	size_t len = 16 * (size_t)pg;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	unsigned long k1, k2, adds0 = adds;
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	k1 = reg(p, len);
	coexist_watch_on(&w, p, len, 0x5a);
	assert_eq(munmap(p, len), 0);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	mmn_interval_notifier_remove(&w.sub);
	/* The same addresses again: libfabric must register anew. */
	assert_true(mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == p);
	k2 = reg(p, len);
	expect_ne(k2, k1);
	expect_eq(adds - adds0, 2);
	munmap(p, len);
}

/* free() of a 64 MiB block: glibc's internal __munmap, the same entry. */
TEST(free_64mib_seen_before_and_cache_invalidated)
{
	size_t len = 64UL << 20;
	unsigned long start, end, k1, k2;
	struct coexist_watch w;
	unsigned char *p;

	p = coexist_big_block(__func__, len, &start, &end);
	if (!p)
		return;
	k1 = reg((void *)start, end - start);
	coexist_watch_on(&w, (void *)start, end - start, 0xc3);
	free(p);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	mmn_interval_notifier_remove(&w.sub);
	assert_true(mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == (void *)start);
	k2 = reg((void *)start, end - start);
	expect_ne(k2, k1);
	munmap((void *)start, end - start);
}

/* mremap shrinking a range: its tail is unmapped. */
TEST(mremap_seen_before_and_cache_invalidated)
{
	size_t len = 8 * (size_t)pg, half = len / 2;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	unsigned long k1, k2;
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	k1 = reg(p + half, half);
	coexist_watch_on(&w, p + half, half, 0x3c);
	assert_true(mremap(p, len, half, 0) == p);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	mmn_interval_notifier_remove(&w.sub);
	assert_true(mmap(p + half, half, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + half);
	k2 = reg(p + half, half);
	expect_ne(k2, k1);
	munmap(p, len);
}

/* madvise(DONTNEED): the pages' contents go; both see it first. */
TEST(madvise_seen_before_and_cache_invalidated)
{
	size_t len = 4 * (size_t)pg;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	unsigned long k1, k2;
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	k1 = reg(p, len);
	coexist_watch_on(&w, p, len, 0x77);
	assert_eq(madvise(p, len, MADV_DONTNEED), 0);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	expect_eq(p[0], 0);
	mmn_interval_notifier_remove(&w.sub);
	k2 = reg(p, len);
	expect_ne(k2, k1);
	munmap(p, len);
}

/*
 * memhooks patches what dlsym(RTLD_NEXT, name) finds from the object that
 * holds libfabric -- here the test program itself. That is libc's function,
 * unless a sanitizer's runtime (loaded first) defines the name: then
 * libfabric patched the sanitizer's interceptor, which libmmn follows as an
 * interposed symbol (its GOT wrapper runs first), and libc's entry is
 * libmmn's alone.
 */
TEST(coverage_names_the_patch)
{
	static const enum mmn_process_call calls[] = { MMN_CALL_MUNMAP, MMN_CALL_MREMAP,
						       MMN_CALL_MADVISE };
	static const char *const names[] = { "munmap", "mremap", "madvise" };
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	for (unsigned int c = 0; c < sizeof(calls) / sizeof(calls[0]); c++) {
		bool in_libc = dlsym(RTLD_NEXT, names[c]) == (void *)coexist_libc_entry(names[c]);
		unsigned int found = 0;

		if (!in_libc)
			printf("libfabric patched a sanitizer's %s, not libc's\n", names[c]);
		expect_eq(cov.method[calls[c]], in_libc ? MMN_HOOK_CHAINED : MMN_HOOK_ENTRY_PATCH);
		for (unsigned int i = 0; i < cov.foreign_count; i++)
			found += cov.foreign[i].call == calls[c] &&
				 cov.foreign[i].kind == (in_libc ? MMN_FOREIGN_ENTRY_PATCH
								 : MMN_FOREIGN_SYMBOL) &&
				 cov.foreign[i].cover == MMN_COVER_BEFORE &&
				 (in_libc || coexist_sanitizer_object(cov.foreign[i].object));
		expect_eq(found, 1);
	}
	/* libfabric after libmmn: its patch went over libmmn's and was chained. */
	if (mmn_first)
		expect_ge(cov.foreign_rechains, 1);
	else
		expect_eq(cov.foreign_rechains, 0);
	expect_eq(cov.signal_degraded, 0);
	for (unsigned int i = 0; i < cov.foreign_count; i++)
		printf("foreign: %s %s kind %d cover %d\n",
		       mmn_process_call_name(cov.foreign[i].call), cov.foreign[i].object,
		       cov.foreign[i].kind, cov.foreign[i].cover);
}

/*
 * libfabric's monitor stops with its last cache: it writes back the bytes
 * it saved at install -- libc's original prologue (libfabric first), or
 * libmmn's jump (libmmn first) -- over libmmn's jump. libmmn must still see
 * every unmap before it happens.
 */
TEST(after_libfabric_stops)
{
	size_t len = 4 * (size_t)pg;
	struct mmn_process_coverage cov;
	unsigned char *p;
	struct coexist_watch w;

	ofi_mr_cache_cleanup(cache);
	printf("munmap's entry after libfabric stopped: %02x %02x\n", coexist_libc_entry("munmap")[0],
	       coexist_libc_entry("munmap")[1]);
	expect_eq(coexist_libc_entry("munmap")[0], 0xe9);	/* libmmn's jmp rel32 */
	/* Either way libmmn no longer calls libfabric's hook: it was withdrawn. */
	assert_eq(mmn_process_coverage(&cov), 0);
	expect_eq(cov.method[MMN_CALL_MUNMAP], MMN_HOOK_ENTRY_PATCH);
	expect_eq(cov.method[MMN_CALL_MADVISE], MMN_HOOK_ENTRY_PATCH);
	expect_eq(coexist_foreign_count(&cov), 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	coexist_watch_on(&w, p, len, 0x42);
	assert_eq(munmap(p, len), 0);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	mmn_interval_notifier_remove(&w.sub);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	coexist_watch_on(&w, p, len, 0x24);
	assert_eq(madvise(p, len, MADV_DONTNEED), 0);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	mmn_interval_notifier_remove(&w.sub);
	munmap(p, len);
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "mmn-first") && strcmp(argv[1], "ofi-first"))) {
		fprintf(stderr, "usage: ofi_memhooks mmn-first|ofi-first\n");
		return 2;
	}
	pg = sysconf(_SC_PAGESIZE);
	mmn_first = !strcmp(argv[1], "mmn-first");
	if (mmn_first) {
		coexist_install_mmn();
		install_ofi();
	} else {
		install_ofi();
		coexist_install_mmn();
	}
	RUN(cache_hits_without_unmap);
	RUN(munmap_seen_before_and_cache_invalidated);
	RUN(free_64mib_seen_before_and_cache_invalidated);
	RUN(mremap_seen_before_and_cache_invalidated);
	RUN(madvise_seen_before_and_cache_invalidated);
	RUN(coverage_names_the_patch);
	RUN(after_libfabric_stops);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	return test_report();
}
