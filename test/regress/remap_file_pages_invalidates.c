// SPDX-License-Identifier: MIT
/*
 * Regression test of a gap the preload's self-check found (docs/preload.md).
 * The gap, since closed: remap_file_pages(2) (deprecated, but in glibc and emulated by
 * the kernel with an mmap(MAP_FIXED) of the range) is not hooked: a notifier
 * on the file mapping gets no invalidation although its pages now show another
 * part of the file.
 *
 * Exits 0 while the gap stays closed, 1 if it is back, 77 where it cannot run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <mmn/process.h>

#include "regress.h"

int main(void)
{
	struct mmn_interval_notifier sub = { 0 };
	FILE *f = tmpfile();
	char *p;

	regress_start();
	regress_must(f && ftruncate(fileno(f), 4 * 4096) == 0);
	p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(f), 0);
	regress_must(p != MAP_FAILED);
	regress_must(mmn_process_insert(&sub, (unsigned long)p, 4 * 4096, &regress_ops) == 0);
	if (remap_file_pages(p, 4096, 0, 3, 0)) {
		perror("remap_file_pages");
		return 77;
	}
	printf("invalidations on remap_file_pages: %lu (expected 1)\n", regress_count());
	regress_must(mmn_interval_notifier_remove(&sub) == 0);
	return regress_count() == 1 ? 0 : 1;
}
