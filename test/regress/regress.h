/* SPDX-License-Identifier: MIT */
/*
 * Shared by the regression tests of test/regress: the process domain, a
 * notifier that counts its invalidations, and a check that fails the test
 * (exit 1) with what went wrong. Header-only; public API only.
 */
#ifndef MMN_REGRESS_H
#define MMN_REGRESS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmn/process.h>

static unsigned long regress_calls;	/* atomic */

static bool regress_inv(struct mmn_interval_notifier *sub, const struct mmn_range *r,
			unsigned long seq)
{
	(void)r;
	mmn_interval_set_seq(sub, seq);
	__atomic_add_fetch(&regress_calls, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops regress_ops = { .invalidate = regress_inv };

/* Invalidations of regress_ops notifiers so far. */
static inline unsigned long regress_count(void)
{
	return __atomic_load_n(&regress_calls, __ATOMIC_RELAXED);
}

/* Fail the test unless @cond holds (set-up steps that must not fail). */
#define regress_must(cond)                                                          \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "FAIL: %s:%d: %s (errno: %s)\n", __FILE__,  \
				__LINE__, #cond, strerror(errno));                  \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

/* Hook the process: the event sources under test. */
static inline void regress_start(void)
{
	struct mmn_mm *mm;

	regress_must(mmn_process_mm(&mm) == 0);
}

#endif /* MMN_REGRESS_H */
