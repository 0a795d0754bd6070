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

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static int calls;
static bool inv(struct mmn_interval_notifier *sub, const struct mmn_range *r, unsigned long seq)
{
	(void)r;
	mmn_interval_set_seq(sub, seq);
	calls++;
	return true;
}
static const struct mmn_interval_notifier_ops ops = { .invalidate = inv };

int main(void)
{
	struct mmn_interval_notifier sub = { 0 };
	struct mmn_mm *mm;
	char *p;
	int ret;

	mmn_process_mm(&mm);
	p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(p, 0x5a, 4 * 4096);
	mmn_process_insert(&sub, (unsigned long)p, 4 * 4096, &ops);
	ret = madvise(p + 4096, 4096, MADV_GUARD_INSTALL);
	if (ret) {
		perror("madvise(MADV_GUARD_INSTALL)");
		return 77;	/* kernel older than 6.13 */
	}
	printf("invalidations on MADV_GUARD_INSTALL: %d (expected 1)\n", calls);
	mmn_interval_notifier_remove(&sub);
	return calls == 1 ? 0 : 1;
}
