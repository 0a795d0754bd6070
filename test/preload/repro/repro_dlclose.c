// SPDX-License-Identifier: MIT
/*
 * Reproducer: dlclose() unmaps a shared object with ld.so's own munmap, which
 * libmmn does not patch (nor ld.so's mmap(MAP_FIXED) and RELRO mprotect in
 * dlopen): a notifier on the object's mappings gets no invalidation. The
 * backstop does not help: the mappings are file-backed.
 *
 * Exits 1 while the bug is there, 0 once it is fixed, 77 where it cannot run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <mmn/process.h>

static int calls;
static bool inv(struct mmn_interval_notifier *sub, const struct mmn_range *r, unsigned long seq)
{
	(void)r;
	mmn_interval_set_seq(sub, seq);
	calls++;
	return true;
}
static const struct mmn_interval_notifier_ops ops = { .invalidate = inv };

int main(int argc, char **argv)
{
	struct mmn_interval_notifier sub = { 0 };
	struct link_map *lm;
	struct mmn_mm *mm;
	void *h;

	mmn_process_mm(&mm);
	h = dlopen(argc > 1 ? argv[1] : "libz.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h || dlinfo(h, RTLD_DI_LINKMAP, &lm))
		return 77;
	/* The object's first page (its ELF header): mapped by ld.so. */
	mmn_process_insert(&sub, lm->l_addr, 4096, &ops);
	dlclose(h);
	printf("invalidations on dlclose: %d (expected >= 1)\n", calls);
	mmn_interval_notifier_remove(&sub);
	return calls ? 0 : 1;
}
