/* SPDX-License-Identifier: MIT */
/*
 * Allocation-failure injection for tests.
 *
 * A test that includes this header defines malloc, calloc, realloc,
 * aligned_alloc, posix_memalign and free itself; the dynamic linker then
 * sends every allocation of the process here, libmmn's included. Each call is
 * forwarded to the next definition (glibc's, or a sanitizer's, which keeps
 * ASan's leak checking), unless failure is armed: alloc_fail_arm(n) lets n
 * allocations through and fails the one after with ENOMEM, once.
 *
 * The usual loop walks every allocation of a setup path:
 *
 *	for (n = 0;; n++) {
 *		alloc_fail_arm(n);
 *		ret = setup();
 *		if (!alloc_fail_disarm())	// nothing was failed: done
 *			break;
 *		expect_eq(ret, -ENOMEM);	// each failure point is reported
 *	}
 *
 * Only arm around single-threaded calls: a thread allocating meanwhile could
 * take the failure meant for the call under test.
 */
#ifndef MMN_TEST_ALLOC_FAIL_H
#define MMN_TEST_ALLOC_FAIL_H

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int alloc_fail_countdown = -1;	/* atomic; < 0: disarmed */
static bool alloc_fail_fired;		/* atomic */

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void (*next_free)(void *);

/* dlsym() may calloc before next_calloc is known: serve it from here. */
/* 64 (and 64-byte steps): struct mmn_mm is cache-line aligned, its calloc may land here. */
static _Alignas(64) char alloc_boot[4096];
static size_t alloc_boot_used;

/* dlsym() returns an object pointer; memcpy is ISO C's way to a function pointer. */
#define alloc_fail_next(fn, name)                                               \
	do {                                                                    \
		void *sym_ = dlsym(RTLD_NEXT, name);                            \
		memcpy(&(fn), &sym_, sizeof(fn));                               \
	} while (0)

static void alloc_fail_resolve(void)
{
	if (next_free)
		return;
	alloc_fail_next(next_malloc, "malloc");
	alloc_fail_next(next_calloc, "calloc");
	alloc_fail_next(next_realloc, "realloc");
	alloc_fail_next(next_aligned_alloc, "aligned_alloc");
	alloc_fail_next(next_posix_memalign, "posix_memalign");
	alloc_fail_next(next_free, "free");
}

static bool alloc_fail_now(void)
{
	int n = __atomic_load_n(&alloc_fail_countdown, __ATOMIC_ACQUIRE);

	while (n >= 0) {
		if (__atomic_compare_exchange_n(&alloc_fail_countdown, &n, n - 1, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			if (n > 0)
				return false;
			__atomic_store_n(&alloc_fail_fired, true, __ATOMIC_RELEASE);
			errno = ENOMEM;
			return true;
		}
	}
	return false;
}

static inline void alloc_fail_arm(int n)
{
	alloc_fail_resolve();
	__atomic_store_n(&alloc_fail_fired, false, __ATOMIC_RELEASE);
	__atomic_store_n(&alloc_fail_countdown, n, __ATOMIC_RELEASE);
}

/* Disarm; returns whether an allocation was failed since alloc_fail_arm(). */
static inline bool alloc_fail_disarm(void)
{
	__atomic_store_n(&alloc_fail_countdown, -1, __ATOMIC_RELEASE);
	return __atomic_load_n(&alloc_fail_fired, __ATOMIC_ACQUIRE);
}

void *malloc(size_t size)
{
	alloc_fail_resolve();
	return alloc_fail_now() ? NULL : next_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	if (!next_calloc) {
		/* During dlsym(): from the boot buffer, never freed. */
		size_t want = (n * size + 63) & ~(size_t)63;
		void *p = alloc_boot + alloc_boot_used;

		if (want > sizeof(alloc_boot) - alloc_boot_used)
			return NULL;
		alloc_boot_used += want;
		return p;
	}
	return alloc_fail_now() ? NULL : next_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	alloc_fail_resolve();
	return alloc_fail_now() ? NULL : next_realloc(p, size);
}

void *aligned_alloc(size_t align, size_t size)
{
	alloc_fail_resolve();
	return alloc_fail_now() ? NULL : next_aligned_alloc(align, size);
}

int posix_memalign(void **p, size_t align, size_t size)
{
	alloc_fail_resolve();
	return alloc_fail_now() ? ENOMEM : next_posix_memalign(p, align, size);
}

void free(void *p)
{
	if ((char *)p >= alloc_boot && (char *)p < alloc_boot + sizeof(alloc_boot))
		return;
	alloc_fail_resolve();
	next_free(p);
}

/*
 * Walk every allocation of @setup (an expression giving 0 or -errno; @undo
 * runs after a success): each injected failure must give -ENOMEM. Evaluates
 * to the number of allocations the path made.
 */
#define alloc_fail_walk(setup, undo)                                            \
	__extension__({                                                         \
		int n_;                                                         \
		for (n_ = 0;; n_++) {                                           \
			int ret_;                                               \
			alloc_fail_arm(n_);                                     \
			ret_ = (setup);                                         \
			if (!alloc_fail_disarm()) {                             \
				expect_eq(ret_, 0);                             \
				if (ret_ == 0) {                                \
					undo;                                   \
				}                                               \
				break;                                          \
			}                                                       \
			expect_eq(ret_, -ENOMEM);                               \
			if (ret_ == 0) {                                        \
				undo;                                           \
			}                                                       \
		}                                                               \
		n_;                                                             \
	})

#endif /* MMN_TEST_ALLOC_FAIL_H */
