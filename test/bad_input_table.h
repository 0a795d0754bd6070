/* SPDX-License-Identifier: MIT */
/*
 * The bad-input tests (one per public header, test/unit/ *bad_input.c) print
 * one row per call, so their output is the table in docs/TESTING.md:
 *   <function> <input> -> <got> want <expected> ok|FAIL
 */
#ifndef MMN_TEST_BAD_INPUT_TABLE_H
#define MMN_TEST_BAD_INPUT_TABLE_H

#include <stdbool.h>
#include <stdio.h>

#include "harness.h"

static void row_print(const char *fn, const char *input, long long got, const char *want,
		      bool ok)
{
	printf("  %-36s %-46s -> %-6lld want %-12s %s\n", fn, input, got, want,
	       ok ? "ok" : "FAIL");
	fflush(stdout);
}

/* One row: evaluate @expr once, print it, expect it equal to @want. */
#define ROW(fn, input, expr, want)                                              \
	do {                                                                    \
		long long got_ = (long long)(expr), want_ = (long long)(want);  \
		row_print(fn, input, got_, #want, got_ == want_);               \
		expect_eq(got_, want_);                                         \
	} while (0)

/* A row for a call with no return value: @check is what must hold after it. */
#define ROW_VOID(fn, input, stmt, check, what)                                  \
	do {                                                                    \
		bool ok_;                                                       \
		stmt;                                                           \
		ok_ = (check);                                                  \
		row_print(fn, input, ok_, what, ok_);                           \
		expect_true(ok_);                                               \
	} while (0)

#endif /* MMN_TEST_BAD_INPUT_TABLE_H */
