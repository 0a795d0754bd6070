// SPDX-License-Identifier: MIT
/*
 * libmmn under another allocator, preloaded as users do it:
 *
 *   LD_PRELOAD=libtcmalloc.so.4 allocator tcmalloc    (also jemalloc, mimalloc, none)
 *
 * gperftools' tcmalloc defines munmap, mremap, mmap and sbrk itself and makes
 * the system calls through syscall(): the program's calls bind to it, never
 * reaching libc's patched entries. libmmn must find those definitions and
 * route their callers through its hooks: each call below must have reached
 * the notifier before it returned (the callback reads the old contents), and
 * the coverage must name the interposer. jemalloc and mimalloc define none
 * of these; their calls go through libc's entries. MODULE is a small
 * library dlopen()ed after libmmn installed, whose munmap must be followed too.
 *
 *   allocator NAME MODULE
 */
#include <dlfcn.h>
#include <mmn/process.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coexist.h"
#include "harness.h"

static long pg;
static const char *allocator, *module_path;

static unsigned char *map(size_t pages)
{
	void *p = mmap(NULL, pages * (size_t)pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static void expect_seen_before(struct coexist_watch *w)
{
	expect_eq(coexist_watch_calls(w), 1);
	expect_eq(coexist_watch_saw_old(w), 1);
	mmn_interval_notifier_remove(&w->sub);
}

TEST(munmap)
{
	unsigned char *p = map(8);
	struct coexist_watch w;

	coexist_watch_on(&w, p, 8 * (size_t)pg, 0x11);
	assert_eq(munmap(p, 8 * (size_t)pg), 0);
	expect_seen_before(&w);
}

/* A module loaded after libmmn installed: its calls are followed at once. */
TEST(later_dlopen_module)
{
	void *h = dlopen(module_path, RTLD_NOW | RTLD_LOCAL), *sym;
	int (*unmap)(void *, size_t);
	unsigned char *p = map(4);
	struct coexist_watch w;

	assert_true(h != NULL);
	sym = dlsym(h, "mmn_test_module_unmap");
	assert_true(sym != NULL);
	memcpy(&unmap, &sym, sizeof(sym));
	coexist_watch_on(&w, p, 4 * (size_t)pg, 0x55);
	assert_eq(unmap(p, 4 * (size_t)pg), 0);
	expect_seen_before(&w);
	dlclose(h);
}

TEST(mremap_shrink_and_move)
{
	unsigned char *p = map(8), *q;
	struct coexist_watch w;

	/* Shrinking: the tail goes. */
	coexist_watch_on(&w, p + 4 * pg, 4 * (size_t)pg, 0x22);
	q = mremap(p, 8 * (size_t)pg, 4 * (size_t)pg, 0);
	assert_eq_ptr(q, p);
	expect_seen_before(&w);
	/* Moving: the old range goes. */
	coexist_watch_on(&w, p, 4 * (size_t)pg, 0x23);
	q = mremap(p, 4 * (size_t)pg, 64 * (size_t)pg, MREMAP_MAYMOVE);
	assert_true(q != MAP_FAILED);
	expect_seen_before(&w);
	munmap(q, 64 * (size_t)pg);
}

TEST(mmap_fixed)
{
	unsigned char *p = map(4), *q;
	struct coexist_watch w;

	coexist_watch_on(&w, p, 4 * (size_t)pg, 0x33);
	q = mmap(p, 4 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	assert_eq_ptr(q, p);
	expect_seen_before(&w);
	munmap(p, 4 * (size_t)pg);
}

TEST(madvise_dontneed)
{
	unsigned char *p = map(4);
	struct coexist_watch w;

	coexist_watch_on(&w, p, 4 * (size_t)pg, 0x44);
	assert_eq(madvise(p, 4 * (size_t)pg, MADV_DONTNEED), 0);
	expect_seen_before(&w);
	expect_eq(p[0], 0);
	munmap(p, 4 * (size_t)pg);
}

/* The allocator's own unmaps are followed too: no event only by the backstop. */
TEST(malloc_churn_no_backstop_only)
{
	struct mmn_process_coverage before, after;

	assert_eq(mmn_process_coverage(&before), 0);
	for (int i = 0; i < 200; i++) {
		size_t len = ((size_t)(i % 7) + 1) << 20;
		unsigned char *p = malloc(len);

		assert_true(p != NULL);
		memset(p, i, len);
		free(p);
	}
	assert_eq(mmn_process_coverage(&after), 0);
	/* Nothing registered with the backstop changed behind the hooks' back. */
	expect_eq(after.backstop_events - before.backstop_events, 0);
}

TEST(coverage)
{
	struct mmn_process_coverage cov;
	unsigned int symbol_munmap = 0, symbol_mremap = 0, symbol_mmap = 0, symbol_brk = 0;
	unsigned int other = 0;

	assert_eq(mmn_process_coverage(&cov), 0);
	for (unsigned int i = 0; i < cov.foreign_count; i++) {
		const struct mmn_foreign_hook *f = &cov.foreign[i];

		printf("foreign: %s in %s, kind %d, cover %d\n", mmn_process_call_name(f->call),
		       f->object, f->kind, f->cover);
		if (coexist_sanitizer_object(f->object))
			continue;
		if (f->kind != MMN_FOREIGN_SYMBOL || f->cover != MMN_COVER_BEFORE ||
		    strncmp(f->object, "libtcmalloc", 11)) {
			other++;
			continue;
		}
		symbol_munmap += f->call == MMN_CALL_MUNMAP;
		symbol_mremap += f->call == MMN_CALL_MREMAP;
		symbol_mmap += f->call == MMN_CALL_MMAP;
		symbol_brk += f->call == MMN_CALL_BRK;
	}
	expect_eq(other, 0);
	if (!strcmp(allocator, "tcmalloc")) {
		expect_eq(symbol_munmap, 1);
		expect_eq(symbol_mremap, 1);
		expect_eq(symbol_mmap, 2);	/* mmap and mmap64 */
		expect_eq(symbol_brk, 1);	/* sbrk */
	} else {
		expect_eq(coexist_foreign_count(&cov), 0);
	}
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		expect_eq(cov.method[i], MMN_HOOK_ENTRY_PATCH);
	expect_eq(cov.monitor, MMN_MONITOR_PATCH | MMN_MONITOR_INTERPOSE | MMN_MONITOR_BACKSTOP);
}

int main(int argc, char **argv)
{
	struct mmn_mm *mm;

	if (argc != 3) {
		fprintf(stderr, "usage: allocator tcmalloc|jemalloc|mimalloc|none MODULE\n");
		return 2;
	}
	allocator = argv[1];
	module_path = argv[2];
	pg = sysconf(_SC_PAGESIZE);
	assert_eq(mmn_process_mm(&mm), 0);
	RUN(munmap);
	RUN(later_dlopen_module);
	RUN(mremap_shrink_and_move);
	RUN(mmap_fixed);
	RUN(madvise_dontneed);
	RUN(malloc_churn_no_backstop_only);
	RUN(coverage);
	return test_report();
}
