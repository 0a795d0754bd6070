/* SPDX-License-Identifier: MIT */
/*
 * Shared by the coexistence tests: what a sanitizer build changes.
 *
 * A sanitizer's runtime is itself an interposer of munmap and mmap (its
 * interceptors): libmmn reports it as a foreign interposer like any other,
 * and the tests leave it out of their counts. Its allocator keeps freed
 * blocks in quarantine instead of unmapping them, so a check that free()
 * unmaps is not applicable there.
 */
#ifndef MMN_TEST_COEXIST_H
#define MMN_TEST_COEXIST_H

#include <dlfcn.h>
#include <mmn/process.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COEXIST_SANITIZER_ALLOCATOR 1
#else
#define COEXIST_SANITIZER_ALLOCATOR 0
#endif

static inline bool coexist_sanitizer_object(const char *object)
{
	return !strncmp(object, "libasan", 7) || !strncmp(object, "libtsan", 7) ||
	       !strncmp(object, "libubsan", 8) || !strncmp(object, "liblsan", 7);
}

/* The foreign interposers that are not a sanitizer's runtime. */
static inline unsigned int coexist_foreign_count(const struct mmn_process_coverage *cov)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < cov->foreign_count; i++)
		n += !coexist_sanitizer_object(cov->foreign[i].object);
	return n;
}

/*
 * A notifier on a range the test itself maps and fills with a pattern. Its
 * callback counts calls, and on the first one checks the range still holds
 * the pattern: proof that the call came before the change.
 *
 * Only the first call reads. After the test's own change the addresses are
 * free, and another thread may map something else there before the test
 * removes the watch -- ld.so, say, reserving a library's span with a file
 * mapping whose tail lies past the end of the file, where a read raises
 * SIGBUS. A later call, from that thread's change, must not touch the range.
 */
struct coexist_watch {
	struct mmn_interval_notifier sub;
	unsigned char *base;
	size_t len;
	unsigned char pattern;
	unsigned int calls;	/* atomic */
	unsigned int saw_old;	/* atomic: 1 if the first call saw the pattern */
};

static inline bool coexist_watch_invalidate(struct mmn_interval_notifier *sub,
					    const struct mmn_range *range, unsigned long cur_seq)
{
	struct coexist_watch *w = mmn_container_of(sub, struct coexist_watch, sub);

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	if (__atomic_fetch_add(&w->calls, 1, __ATOMIC_RELAXED) == 0 &&
	    w->base[0] == w->pattern && w->base[w->len - 1] == w->pattern)
		__atomic_store_n(&w->saw_old, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops coexist_watch_ops = {
	.invalidate = coexist_watch_invalidate,
};

static inline void coexist_watch_on(struct coexist_watch *w, void *base, size_t len,
				    unsigned char pattern)
{
	memset(w, 0, sizeof(*w));
	w->base = base;
	w->len = len;
	w->pattern = pattern;
	memset(base, pattern, len);
	assert_eq(mmn_process_insert(&w->sub, (unsigned long)base, len, &coexist_watch_ops), 0);
	/*
	 * An insert made while another thread's invalidation runs is deferred
	 * to its end; read_begin waits for that, so the notifier is live.
	 */
	(void)mmn_interval_read_begin(&w->sub);
}

static inline unsigned int coexist_watch_calls(struct coexist_watch *w)
{
	return __atomic_load_n(&w->calls, __ATOMIC_RELAXED);
}

static inline unsigned int coexist_watch_saw_old(struct coexist_watch *w)
{
	return __atomic_load_n(&w->saw_old, __ATOMIC_RELAXED);
}

/* libmmn's process domain, with its event sources installed. */
static inline void coexist_install_mmn(void)
{
	struct mmn_mm *mm;

	assert_eq(mmn_process_mm(&mm), 0);
}

/* The first bytes of libc's entry @name, as a patcher left them. */
static inline const unsigned char *coexist_libc_entry(const char *name)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);

	assert_true(libc != NULL);
	return dlsym(libc, name);
}

/*
 * A @len-byte malloc() block large enough that free() unmaps it (glibc's
 * internal __munmap), and in [*start, *end) its whole pages: free() unmaps
 * the chunk around them. NULL, with a line naming @test, under a
 * sanitizer's allocator, which does not unmap on free.
 */
static inline void *coexist_big_block(const char *test, size_t len, unsigned long *start,
				      unsigned long *end)
{
	unsigned long pg = (unsigned long)sysconf(_SC_PAGESIZE);
	void *p;

	if (COEXIST_SANITIZER_ALLOCATOR) {
		printf("%s: not applicable: the sanitizer's allocator does not unmap on free\n",
		       test);
		return NULL;
	}
	p = malloc(len);
	assert_true(p != NULL);
	*start = ((unsigned long)p + pg - 1) & ~(pg - 1);
	*end = ((unsigned long)p + len) & ~(pg - 1);
	return p;
}

#endif
