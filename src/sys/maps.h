/* SPDX-License-Identifier: MIT */
/*
 * The system layer (src/sys): what the event sources (src/vm) and the preload
 * (src/preload) both need below libmmn's API -- raw system calls (raw.h) and
 * this reader of /proc/self/maps. Built once, as the object library mmn_sys,
 * and linked into each module; never installed.
 */
#ifndef MMN_SYS_MAPS_H
#define MMN_SYS_MAPS_H

#include "hidden.h"

/* One line of /proc/self/maps. */
struct vm_map {
	unsigned long start, end, offset, inode;
	char perms[5];
	const char *path;	/* valid during the callback only; "" if none */
};

/*
 * Calls @fn for each mapping until it returns non-zero; returns that, or
 * -errno. Allocates nothing and calls no hooked function: raw open/read/close
 * (raw.h) into a buffer on the stack, so it is safe inside a hook.
 */
MMN_HIDDEN int vm_maps_foreach(int (*fn)(const struct vm_map *m, void *arg), void *arg);

#endif /* MMN_SYS_MAPS_H */
