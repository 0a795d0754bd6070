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

#include <mmn/process.h>
#include <stdbool.h>
#include <string.h>

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

#endif
