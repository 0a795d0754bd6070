// SPDX-License-Identifier: MIT
/*
 * Regression test of a gap the preload's self-check found (docs/preload.md).
 * The gap, since closed: mprotect(addr, len, prot | PROT_GROWSDOWN) changes the protection
 * from the start of the (grows-down) VMA up to addr + len, but the mprotect
 * hook invalidates only [addr, addr + len): a notifier on the bottom page of
 * the VMA, whose protection changed, gets no PROTECTION_VMA invalidation.
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

static int bottom_page_read_only(unsigned long page)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int ro = 0;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) == 3 && a <= page && page < b)
			ro = perms[1] == '-';
	}
	if (f)
		fclose(f);
	return ro;
}

int main(void)
{
	struct mmn_interval_notifier sub = { 0 };
	char *p;

	regress_start();
	p = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
	if (p == MAP_FAILED)
		return 77;
	memset(p, 1, 16 * 4096);
	/* The bottom page. */
	regress_must(mmn_process_insert(&sub, (unsigned long)p, 4096, &regress_ops) == 0);
	if (mprotect(p + 15 * 4096, 4096, PROT_READ | PROT_GROWSDOWN))
		return 77;
	/*
	 * The backstop's userfaultfd registration of the bottom page splits the
	 * mapping, and PROT_GROWSDOWN stops at the split: whether the bottom
	 * page changed is what the kernel did, so ask /proc/self/maps.
	 */
	int changed = bottom_page_read_only((unsigned long)p);
	printf("invalidations of the bottom page: %lu (expected %d: it is %s)\n", regress_count(),
	       changed, changed ? "read-only now" : "still writable");
	regress_must(mmn_interval_notifier_remove(&sub) == 0);
	return regress_count() == (unsigned long)changed ? 0 : 1;
}
