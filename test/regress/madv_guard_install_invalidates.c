// SPDX-License-Identifier: MIT
/*
 * Regression test of a gap the preload's self-check found (docs/preload.md).
 * The gap, since closed: madvise(MADV_GUARD_INSTALL) (Linux 6.13) zaps the pages of the
 * range, like MADV_DONTNEED, but the madvise hook does not report it, so a
 * notifier on the range gets no invalidation (and neither does the backstop,
 * which gets no userfaultfd event for it).
 *
 * Exits 0 while the gap stays closed, 1 if it is back, 77 where it cannot run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <mmn/process.h>

#include "regress.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

int main(void)
{
	struct mmn_interval_notifier sub = { 0 };
	char *p;
	int ret;

	regress_start();
	p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	regress_must(p != MAP_FAILED);
	memset(p, 0x5a, 4 * 4096);
	regress_must(mmn_process_insert(&sub, (unsigned long)p, 4 * 4096, &regress_ops) == 0);
	ret = madvise(p + 4096, 4096, MADV_GUARD_INSTALL);
	if (ret) {
		perror("madvise(MADV_GUARD_INSTALL)");
		return 77;	/* kernel older than 6.13 */
	}
	printf("invalidations on MADV_GUARD_INSTALL: %lu (expected 1)\n", regress_count());
	regress_must(mmn_interval_notifier_remove(&sub) == 0);
	return regress_count() == 1 ? 0 : 1;
}
