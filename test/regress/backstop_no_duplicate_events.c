// SPDX-License-Identifier: MIT
/*
 * Regression test of a gap the preload's self-check found (docs/preload.md).
 * The gap, since closed: hooked munmap() calls are reported again by the userfaultfd
 * backstop (mmn_process_coverage().backstop_events > 0 although no raw system
 * call was made): the caller's in-flight slot is reused by its next hooked call
 * before the monitor has matched the event against it.
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

int main(void)
{
	static struct mmn_interval_notifier subs[2000];
	struct mmn_process_coverage cov;

	regress_start();
	static char *p[2000];

	for (int i = 0; i < 2000; i++) {
		p[i] = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		regress_must(p[i] != MAP_FAILED);
		memset(p[i], 1, 65536);
		regress_must(mmn_process_insert(&subs[i], (unsigned long)p[i], 65536,
						&regress_ops) == 0);
	}
	for (int i = 0; i < 2000; i++)
		munmap(p[i], 65536);		/* through libc: hooked */
	for (int i = 0; i < 2000; i++)
		regress_must(mmn_interval_notifier_remove(&subs[i]) == 0);
	mmn_process_coverage(&cov);
	printf("hooked munmaps %llu, backstop duplicates %llu, backstop events %llu (expected 0), callbacks %lu (expected 2000)\n",
	       (unsigned long long)cov.events[MMN_CALL_MUNMAP],
	       (unsigned long long)cov.backstop_duplicates,
	       (unsigned long long)cov.backstop_events, regress_count());
	return cov.backstop_events == 0 && regress_count() == 2000 ? 0 : 1;
}
