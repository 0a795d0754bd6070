// SPDX-License-Identifier: MIT
/*
 * A foreign entry patch written by the test itself, in the shapes the peers
 * write, over libc's munmap, before or after libmmn installs:
 *
 *   foreign_patch foreign-first|mmn-first movk|ldr
 *
 * x86-64: `movabs r11, hook; jmp *r11` (UCX, libfabric, Open MPI) whatever
 * the form argument. aarch64 (where no UCX is installed to try; the suite
 * runs under qemu-user): "movk" is `movz/movk x15 (x4); br x15` (UCX's
 * bistro, libfabric's memhooks, Open MPI's patcher), "ldr" is
 * `ldr x17, .+8; br x17; .quad hook`. The foreign hook counts the calls
 * that cover the watched range, checks the old contents are still there,
 * and makes the system call with syscall(), as UCX's does.
 *
 * Checked: libmmn chains through the patch (coverage: CHAINED, the foreign
 * object named; a re-chain counted when the patch came second; on x86-64
 * its own jump goes straight into libmmn.so when that is within reach); munmap and
 * free() of 64 MiB reach libmmn's notifier and the foreign hook, once each,
 * before the change; when the foreign library restores the bytes it saved
 * (as libfabric's memhooks does when it stops), libmmn patches again and
 * still sees every unmap first. Last, a foreign patch written while another
 * thread exists: x86-64 chains it; aarch64 must refuse (-EBUSY, logged;
 * coverage NONE), because the Arm ARM does not let a movz/ldr first word be
 * replaced under a running thread.
 */
#include <dlfcn.h>
#include <limits.h>
#include <mmn/process.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "coexist.h"
#include "harness.h"

static bool mmn_first, ldr_form;
static long pg;
static unsigned char *munmap_entry;
static unsigned char saved[32];	/* what the foreign patch replaced */
static size_t patch_len;

/* The foreign library's side. Volatile: changed inside free(). */
static unsigned char *volatile f_base;
static volatile size_t f_len;
static volatile unsigned char f_pattern;
static volatile unsigned int f_calls, f_saw_old;

static int foreign_munmap(void *addr, size_t len)
{
	unsigned long a = (unsigned long)addr, b = (unsigned long)f_base;

	if (b && a < b + f_len && b < a + len) {
		if (f_calls++ == 0 && f_base[0] == f_pattern && f_base[f_len - 1] == f_pattern)
			f_saw_old = 1;
	}
	return (int)syscall(SYS_munmap, addr, len);
}

static size_t make_patch(unsigned char *out)
{
	uint64_t to = (uint64_t)(uintptr_t)foreign_munmap;

#if defined(__x86_64__)
	out[0] = 0x49;	/* movabs r11, to */
	out[1] = 0xbb;
	memcpy(out + 2, &to, 8);
	out[10] = 0x41;	/* jmp *r11 */
	out[11] = 0xff;
	out[12] = 0xe3;
	return 13;
#elif defined(__aarch64__)
	uint32_t w[5];

	if (ldr_form) {
		w[0] = 0x58000051u;	/* ldr x17, .+8 */
		w[1] = 0xd61f0220u;	/* br x17 */
		memcpy(out, w, 8);
		memcpy(out + 8, &to, 8);
		return 16;
	}
	w[0] = 0xd2800000u | (3u << 21) | (uint32_t)((to >> 48) & 0xffff) << 5 | 15;	/* movz */
	w[1] = 0xf2800000u | (2u << 21) | (uint32_t)((to >> 32) & 0xffff) << 5 | 15;	/* movk */
	w[2] = 0xf2800000u | (1u << 21) | (uint32_t)((to >> 16) & 0xffff) << 5 | 15;
	w[3] = 0xf2800000u | (uint32_t)(to & 0xffff) << 5 | 15;
	w[4] = 0xd61f01e0u;	/* br x15 */
	memcpy(out, w, sizeof(w));
	return sizeof(w);
#else
	(void)out;
	(void)to;
	return 0;
#endif
}

/* Write @len bytes over munmap's entry the way every patcher does. */
static void write_entry(const unsigned char *bytes, size_t len)
{
	uintptr_t page = (uintptr_t)munmap_entry & ~(uintptr_t)(pg - 1);
	size_t span = (uintptr_t)munmap_entry + len - page;

	assert_eq(mprotect((void *)page, span, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	memcpy(munmap_entry, bytes, len);
	__builtin___clear_cache((char *)munmap_entry, (char *)munmap_entry + len);
	/* libmmn re-checks its entries here. */
	assert_eq(mprotect((void *)page, span, PROT_READ | PROT_EXEC), 0);
}

static void install_foreign(void)
{
	unsigned char patch[32];

	patch_len = make_patch(patch);
	memcpy(saved, munmap_entry, patch_len);
	write_entry(patch, patch_len);
}

static void watch_both(struct coexist_watch *w, void *base, size_t len, unsigned char pattern)
{
	coexist_watch_on(w, base, len, pattern);
	f_calls = 0;
	f_saw_old = 0;
	f_pattern = pattern;
	f_len = len;
	f_base = base;
}

static void unwatch_both(struct coexist_watch *w)
{
	f_base = NULL;
	mmn_interval_notifier_remove(&w->sub);
}

static void check_munmap(unsigned int want_foreign)
{
	size_t len = 8 * (size_t)pg;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	struct coexist_watch w;

	assert_true(p != MAP_FAILED);
	watch_both(&w, p, len, 0x5a);
	assert_eq(munmap(p, len), 0);
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	expect_eq(f_calls, want_foreign);
	expect_eq(f_saw_old, want_foreign);
	unwatch_both(&w);
}

static enum mmn_hook_method munmap_method(int *error, uint64_t *rechains, bool *named)
{
	struct mmn_process_coverage cov;
	char self[PATH_MAX];
	const char *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(n > 0 && (size_t)n < sizeof(self) - 1);
	self[n] = 0;
	slash = strrchr(self, '/');
	assert_eq(mmn_process_coverage(&cov), 0);
	*error = cov.error[MMN_CALL_MUNMAP];
	*rechains = cov.foreign_rechains;
	*named = false;
	for (unsigned int i = 0; i < cov.foreign_count; i++) {
		printf("foreign: %s %s kind %d cover %d\n",
		       mmn_process_call_name(cov.foreign[i].call), cov.foreign[i].object,
		       cov.foreign[i].kind, cov.foreign[i].cover);
		if (cov.foreign[i].call == MMN_CALL_MUNMAP &&
		    cov.foreign[i].kind == MMN_FOREIGN_ENTRY_PATCH &&
		    cov.foreign[i].cover == MMN_COVER_BEFORE &&
		    !strcmp(cov.foreign[i].object, slash ? slash + 1 : self))
			*named = true;
	}
	return cov.method[MMN_CALL_MUNMAP];
}

TEST(chained)
{
	uint64_t rechains;
	bool named;
	int err;

	expect_eq(munmap_method(&err, &rechains, &named), MMN_HOOK_CHAINED);
	expect_eq(err, 0);
	expect_true(named);
	expect_eq(rechains, mmn_first ? 1 : 0);
#if defined(__x86_64__)
	/*
	 * libmmn's own jump goes straight to its hook, in libmmn.so, when that
	 * lies within rel32 reach of libc's entry; else to a trampoline.
	 */
	{
		Dl_info self, dest;
		int32_t rel;
		unsigned char *to;
		long dist;

		assert_eq(munmap_entry[0], 0xe9);
		memcpy(&rel, munmap_entry + 1, sizeof(rel));
		to = munmap_entry + 5 + rel;
		assert_true(dladdr(dlsym(RTLD_DEFAULT, "mmn_process_coverage"), &self) != 0);
		dist = (long)((intptr_t)self.dli_fbase - (intptr_t)munmap_entry);
		printf("  libmmn.so (%s) lies %ld KiB from libc's munmap\n", self.dli_fname, dist / 1024);
		if (dist > -(1L << 31) + (64L << 20) && dist < (1L << 31) - (64L << 20))
			expect_true(dladdr(to, &dest) && dest.dli_fbase == self.dli_fbase);
	}
#endif
}

TEST(munmap_seen_before_by_both)
{
	check_munmap(1);
}

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
	expect_eq(coexist_watch_calls(&w), 1);
	expect_eq(coexist_watch_saw_old(&w), 1);
	expect_eq(f_calls, 1);
	expect_eq(f_saw_old, 1);
	unwatch_both(&w);
}

/* The foreign library stops and writes back what it saved. */
TEST(foreign_restores)
{
	uint64_t rechains0, rechains;
	bool named;
	int err;

	(void)munmap_method(&err, &rechains0, &named);
	write_entry(saved, patch_len);
	expect_eq(munmap_method(&err, &rechains, &named), MMN_HOOK_ENTRY_PATCH);
	expect_eq(err, 0);
	expect_eq(rechains - rechains0, 1);
	check_munmap(0);
}

/* A foreign patch written while another thread exists. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool done;

static void *idle_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!done)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

TEST(foreign_patch_while_threads_run)
{
	uint64_t rechains;
	pthread_t th;
	bool named;
	int err;

	assert_eq(pthread_create(&th, NULL, idle_thread, NULL), 0);
	install_foreign();
#if defined(__aarch64__)
	expect_eq(munmap_method(&err, &rechains, &named), MMN_HOOK_NONE);
	expect_eq(err, -EBUSY);
	printf("aarch64: refused while threads exist, as documented\n");
#else
	expect_eq(munmap_method(&err, &rechains, &named), MMN_HOOK_CHAINED);
	expect_eq(err, 0);
	check_munmap(1);
#endif
	pthread_mutex_lock(&lock);
	done = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(th, NULL);
}

int main(int argc, char **argv)
{
	void *libc;

	if (argc != 3 || (strcmp(argv[1], "foreign-first") && strcmp(argv[1], "mmn-first")) ||
	    (strcmp(argv[2], "movk") && strcmp(argv[2], "ldr"))) {
		fprintf(stderr, "usage: foreign_patch foreign-first|mmn-first movk|ldr\n");
		return 2;
	}
#if !defined(__x86_64__) && !defined(__aarch64__)
	printf("SKIP: no entry patching on this architecture\n");
	return TEST_SKIP;
#endif
	pg = sysconf(_SC_PAGESIZE);
	mmn_first = !strcmp(argv[1], "mmn-first");
	ldr_form = !strcmp(argv[2], "ldr");
	libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	assert_true(libc != NULL);
	munmap_entry = dlsym(libc, "munmap");
	assert_true(munmap_entry != NULL);
	if (mmn_first) {
		coexist_install_mmn();
		install_foreign();
	} else {
		install_foreign();
		coexist_install_mmn();
	}
	RUN(chained);
	RUN(munmap_seen_before_by_both);
	RUN(free_64mib_seen_before_by_both);
	RUN(foreign_restores);
	RUN(foreign_patch_while_threads_run);
	return test_report();
}
