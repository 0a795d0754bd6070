/* SPDX-License-Identifier: MIT */
/*
 * Private to the event-source layer (src/vm); it reaches the core only
 * through mmn.h.
 */
#ifndef MMN_VM_H
#define MMN_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mmn.h>
#include <mmn/process.h>

#include "hidden.h"

/* Hooked calls nested in callbacks deeper than this are not followed. */
#define VM_MAX_NEST 8

MMN_HIDDEN extern unsigned long vm_page_size;

/* patch.c: make libc's function at @target jump to @hook (same signature). */
typedef void vm_hook_fn(void);
MMN_HIDDEN int vm_patch_entry(void *target, vm_hook_fn *hook);
/* The same, keeping the function callable: its known first @len bytes move
 * to a trampoline returned in *@original. On aarch64 (patch_aarch64.c) the
 * first instruction is relocated whatever it is, so @prologue may be NULL. */
MMN_HIDDEN int vm_patch_detour(void *target, vm_hook_fn *hook, const unsigned char *prologue,
			      size_t len, void **original);
MMN_HIDDEN void *vm_libc_symbol(const char *name);

/* hooks.c: patches every hook; fills @method and @error per call. */
MMN_HIDDEN void vm_install_hooks(enum mmn_hook_method *method, int *error);
/* fork.c: take the domain locks inside fork(); 0 or -errno (then atfork it is). */
MMN_HIDDEN int vm_install_fork_hook(void);

/* process.c: one hooked call's invalidation, opened before the system call. */
struct vm_call {
	struct mmn_range range;
	int slot;		/* in-flight slot for the backstop, or -1 */
	bool open;		/* a region is open: end it */
};
MMN_HIDDEN void vm_call_begin(struct vm_call *c, enum mmn_process_call call,
			     enum mmn_event event, unsigned long start, unsigned long end);
MMN_HIDDEN void vm_call_end(struct vm_call *c);
MMN_HIDDEN struct mmn_mm *vm_process_mm_or_null(void);

/* backstop.c: the userfaultfd monitor. */
MMN_HIDDEN int vm_backstop_start(void);
MMN_HIDDEN bool vm_backstop_running(void);
MMN_HIDDEN int vm_backstop_register(unsigned long start, unsigned long end);
MMN_HIDDEN void vm_backstop_before_unmap(unsigned long start, unsigned long end);
MMN_HIDDEN int vm_inflight_publish(unsigned long start, unsigned long end);
MMN_HIDDEN void vm_inflight_done(int slot);
MMN_HIDDEN void vm_backstop_counts(uint64_t *ranges, uint64_t *events, uint64_t *duplicates);

/* maps.c: /proc/self/maps, read with raw system calls into a stack buffer. */
struct vm_map {
	unsigned long start, end, offset, inode;
	char perms[5];
	const char *path;	/* valid during the callback only; "" if none */
};
/* Calls @fn for each mapping until it returns non-zero; returns that, or -errno. */
MMN_HIDDEN int vm_maps_foreach(int (*fn)(const struct vm_map *m, void *arg), void *arg);

/* sud.c: the raw path (syscall user dispatch) for calls outside libc's entries. */
struct vm_sud_state {
	int error;			/* 0: dispatch on; else why not */
	int thread_hook_error;		/* pthread_create detour */
	bool is_static;			/* no libc.so: everything but libmmn traps */
	bool this_thread_armed;
	uint64_t traps, threads_armed, arm_failed;
};
MMN_HIDDEN int vm_sud_start(void);
MMN_HIDDEN void vm_sud_arm_thread(void);
MMN_HIDDEN void vm_sud_counts(struct vm_sud_state *st);
/* Let this thread's system calls through while callbacks run; returns the old state. */
MMN_HIDDEN char vm_sud_allow(char allow);
MMN_HIDDEN void vm_sud_restore(char prev);

/* hooks.c: run mapping system call @nr through its bracket; false if @nr is
 * not one. *@ret: the kernel's value. Counted as a raw call. */
MMN_HIDDEN bool vm_mapping_syscall(long nr, const long a[6], long *ret);
/* hooks.c: patch libc's syscall() (0 or -errno). */
MMN_HIDDEN int vm_install_syscall_hook(void);
/* process.c: the next vm_call_begin()s on this thread are a raw call's. */
MMN_HIDDEN void vm_call_set_raw(bool raw);

#endif /* MMN_VM_H */
