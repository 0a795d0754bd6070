// SPDX-License-Identifier: MIT
/*
 * libmmn next to Open MPI's memory patcher (Debian's Open MPI 4.1, opal's
 * "memory/patcher" over "patcher/overwrite"), installed for real by a
 * singleton MPI_Init() (no mpirun), in both orders:
 *
 *   ompi_patcher mmn-first|ompi-first
 *
 * Open MPI installs its patcher only when a component asks for memory hooks:
 * the ofi BTL and MTL (which then also export opal's monitor to libfabric),
 * or the UCX PML with opal_common_ucx_opal_mem_hooks=1. CTest runs this with
 * OMPI_MCA_btl=self,ofi, which works on any machine (libfabric's tcp
 * provider). The patcher rewrites the entries of libc's mmap, munmap, mremap,
 * madvise, shmat, shmdt and brk with `movabs r11, hook; jmp *r11`; its hooks
 * call opal's release callbacks, then make the system call.
 *
 * Checked, each way round: every unmap (munmap, free() of 64 MiB, mremap,
 * madvise(DONTNEED)) reaches libmmn's notifier before the call returns while
 * the old contents are still there, and Open MPI's release callback (what its
 * registration caches use: opal_mem_hooks_register_release()) still runs,
 * once, also before the change; the coverage report names libopen-pal.
 */
#include <dlfcn.h>
#include <mmn/process.h>
#include <mpi.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coexist.h"
#include "harness.h"

/* opal/memoryhooks/memory.h (exported by libopen-pal; the header needs opal's config). */
#define OPAL_MEMORY_FREE_SUPPORT 0x0001
#define OPAL_MEMORY_MUNMAP_SUPPORT 0x0002
typedef void opal_release_fn(void *buf, size_t length, void *cbdata, bool from_alloc);
int opal_mem_hooks_register_release(opal_release_fn *func, void *cbdata);
int opal_mem_hooks_unregister_release(opal_release_fn *func);
int opal_mem_hooks_support_level(void);

static bool mmn_first;
static long pg;

/*
 * Open MPI's side: release callbacks that overlap the watched range, and
 * whether the first of them saw its old contents. Volatile: they change
 * inside free(), which the compiler assumes touches no other memory.
 */
static unsigned char *volatile ompi_base;
static volatile size_t ompi_len;
static volatile unsigned char ompi_pattern;
static volatile unsigned int ompi_calls, ompi_saw_old;

static void ompi_release(void *buf, size_t length, void *cbdata, bool from_alloc)
{
	unsigned long a = (unsigned long)buf, b = (unsigned long)ompi_base;

	(void)cbdata;
	(void)from_alloc;
	if (!b || a + length <= b || a >= b + ompi_len)
		return;
	if (__atomic_fetch_add(&ompi_calls, 1, __ATOMIC_RELAXED) == 0 &&
	    ompi_base[0] == ompi_pattern && ompi_base[ompi_len - 1] == ompi_pattern)
		ompi_saw_old = 1;
}

/* Both sides watch [base, base + len), filled with @pattern. */
static void watch_both(struct coexist_watch *w, void *base, size_t len, unsigned char pattern)
{
	coexist_watch_on(w, base, len, pattern);
	ompi_calls = 0;
	ompi_saw_old = 0;
	ompi_pattern = pattern;
	ompi_len = len;
	ompi_base = base;
}

static void unwatch_both(struct coexist_watch *w)
{
	ompi_base = NULL;
	mmn_interval_notifier_remove(&w->sub);
}

static void expect_both_before(struct coexist_watch *w)
{
	expect_eq(coexist_watch_calls(w), 1);
	expect_eq(coexist_watch_saw_old(w), 1);
	expect_eq(ompi_calls, 1);
	expect_eq(ompi_saw_old, 1);
}

static void install_ompi(int *argc, char ***argv)
{
	const int want = OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_MUNMAP_SUPPORT;
	int ret = MPI_Init(argc, argv);

	if (ret != MPI_SUCCESS) {
		fprintf(stderr, "MPI_Init: %d\n", ret);
		exit(1);
	}
	if ((opal_mem_hooks_support_level() & want) != want) {
		fprintf(stderr, "Open MPI installed no memory patcher (support level %#x): "
				"run with OMPI_MCA_btl=self,ofi\n",
			opal_mem_hooks_support_level());
		exit(1);
	}
	assert_eq(opal_mem_hooks_register_release(ompi_release, NULL), 0);
	printf("munmap's entry after MPI_Init: %02x %02x\n", coexist_libc_entry("munmap")[0],
	       coexist_libc_entry("munmap")[1]);
}

TEST(munmap_seen_before_by_both)
{
	size_t len = 16 * (size_t)pg;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	watch_both(&w, p, len, 0x5a);
	assert_eq(munmap(p, len), 0);
	expect_both_before(&w);
	unwatch_both(&w);
}

/* free() of a 64 MiB block: glibc's internal __munmap, the same entry. */
TEST(free_64mib_seen_before_by_both)
{
	size_t len = 64UL << 20;
	unsigned long start, end;
	struct coexist_watch w;
	unsigned char *p;

	p = coexist_big_block(__func__, len, &start, &end);
	if (!p)
		return;
	watch_both(&w, (void *)start, end - start, 0xc3);
	free(p);
	expect_both_before(&w);
	unwatch_both(&w);
}

/* mremap shrinking a range: its tail goes. */
TEST(mremap_seen_before_by_both)
{
	size_t len = 8 * (size_t)pg, half = len / 2;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	watch_both(&w, p + half, half, 0x3c);
	assert_true(mremap(p, len, half, 0) == p);
	expect_both_before(&w);
	unwatch_both(&w);
	munmap(p, half);
}

TEST(madvise_seen_before_by_both)
{
	size_t len = 4 * (size_t)pg;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	watch_both(&w, p, len, 0x77);
	assert_eq(madvise(p, len, MADV_DONTNEED), 0);
	expect_both_before(&w);
	expect_eq(p[0], 0);
	unwatch_both(&w);
	munmap(p, len);
}

TEST(coverage_names_libopen_pal)
{
	static const enum mmn_process_call calls[] = { MMN_CALL_MUNMAP, MMN_CALL_MREMAP,
						       MMN_CALL_MADVISE };
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	for (unsigned int c = 0; c < sizeof(calls) / sizeof(calls[0]); c++) {
		unsigned int found = 0;

		expect_eq(cov.method[calls[c]], MMN_HOOK_CHAINED);
		for (unsigned int i = 0; i < cov.foreign_count; i++)
			found += cov.foreign[i].call == calls[c] &&
				 cov.foreign[i].kind == MMN_FOREIGN_ENTRY_PATCH &&
				 cov.foreign[i].cover == MMN_COVER_BEFORE &&
				 !strncmp(cov.foreign[i].object, "libopen-pal.so", 14);
		expect_eq(found, 1);
	}
	/* Open MPI after libmmn: its patch went over libmmn's and was chained. */
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

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "mmn-first") && strcmp(argv[1], "ompi-first"))) {
		fprintf(stderr, "usage: ompi_patcher mmn-first|ompi-first\n");
		return 2;
	}
	pg = sysconf(_SC_PAGESIZE);
	mmn_first = !strcmp(argv[1], "mmn-first");
	if (mmn_first) {
		coexist_install_mmn();
		install_ompi(&argc, &argv);
	} else {
		install_ompi(&argc, &argv);
		coexist_install_mmn();
	}
	RUN(munmap_seen_before_by_both);
	RUN(free_64mib_seen_before_by_both);
	RUN(mremap_seen_before_by_both);
	RUN(madvise_seen_before_by_both);
	RUN(coverage_names_libopen_pal);
	opal_mem_hooks_unregister_release(ompi_release);
	MPI_Finalize();
	return test_report();
}
