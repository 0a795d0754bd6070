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
#include <sys/types.h>

#include <mmn.h>
#include <mmn/process.h>

#include "hidden.h"
#include "maps.h"	/* src/sys: vm_maps_foreach() */

/* Hooked calls nested in callbacks deeper than this are not followed. */
#define VM_MAX_NEST 8

MMN_HIDDEN extern unsigned long vm_page_size;

/* patch.c: make libc's function at @target jump to @hook (same signature). */
typedef void vm_hook_fn(void);
/* Code and data pointers, converted without ISO C's objection (a union). */
#define VM_FN(type, ptr) (((union { void *p; type *f; }){ .p = (ptr) }).f)
#define VM_ADDR(fn) (((union { vm_hook_fn *f; void *p; }){ .f = (vm_hook_fn *)(fn) }).p)
MMN_HIDDEN int vm_patch_entry(void *target, vm_hook_fn *hook);
/* The same, keeping the function callable: its known first @len bytes move
 * to a trampoline returned in *@original. On aarch64 (patch_aarch64.c) the
 * first instruction is relocated whatever it is, so @prologue may be NULL. */
MMN_HIDDEN int vm_patch_detour(void *target, vm_hook_fn *hook, const unsigned char *prologue,
			      size_t len, void **original);
MMN_HIDDEN void *vm_libc_symbol(const char *name);
/*
 * A fresh read+write page within @reach bytes of @near (either side),
 * searched outwards in steps of @step; NULL if none. For trampolines that a
 * patched entry's branch (x86-64 rel32, aarch64 B) must reach.
 */
MMN_HIDDEN unsigned char *vm_map_near(uintptr_t near, uintptr_t reach, uintptr_t step);
/*
 * Make @target jump to @hook whatever is there: a foreign jump's destination
 * is stored in *@next (NULL if there was none) before the entry is
 * rewritten, and the hook calls it. Nothing is written if the entry already
 * jumps to @hook; *@changed says whether the entry was (re)written.
 */
MMN_HIDDEN int vm_patch_chain(void *target, vm_hook_fn *hook, void **next, bool *changed);
MMN_HIDDEN bool vm_patch_is_ours(const void *target, vm_hook_fn *hook);
/* Does @target start with a jump libmmn can chain through? */
MMN_HIDDEN bool vm_patch_is_jump(const void *target);

/* hooks.c: patches every hook; fills @method and @error per call. */
MMN_HIDDEN void vm_install_hooks(enum mmn_hook_method *method, int *error);
/* Besides the MMN_CALL_* entries: sbrk, taken over only where it was patched. */
#define VM_CALL_SBRK MMN_CALL_COUNT
#define VM_NCALLS (MMN_CALL_COUNT + 1)
/* A foreign hook libmmn chains through (an entry patch, or a GOT slot). */
struct vm_foreign {
	int call;		/* enum mmn_process_call, or VM_CALL_SBRK */
	bool present;
	char object[48];	/* file name of the object the foreign code is in */
};
/* Re-chain entries in [start, end) that somebody patched over (or all). */
MMN_HIDDEN void vm_hooks_recheck_range(unsigned long start, unsigned long end);
MMN_HIDDEN void vm_hooks_recheck(void);
MMN_HIDDEN unsigned int vm_hooks_foreign(struct vm_foreign *out, unsigned int max,
					uint64_t *rechains);
/* interpose.c: route calls of interposed definitions (tcmalloc's munmap) through libmmn. */
MMN_HIDDEN void vm_interpose_install(void);
/* Detour libc's dlopen: re-walk and re-check after each load; 0 or -errno. */
MMN_HIDDEN int vm_install_dlopen_hook(void);
MMN_HIDDEN unsigned int vm_interpose_foreign(struct vm_foreign *out, unsigned int max);
/* The hook bodies, calling @next (or making the system call if *@next is NULL). */
MMN_HIDDEN int vm_do_munmap(void *const *next, void *addr, size_t len);
MMN_HIDDEN void *vm_do_mremap(void *const *next, void *old, size_t old_len, size_t new_len,
			     int flags, void *new_addr);
MMN_HIDDEN int vm_do_madvise(void *const *next, void *addr, size_t len, int advice);
MMN_HIDDEN int vm_do_brk(void *const *next, void *addr);
MMN_HIDDEN void *vm_do_sbrk(void *const *next, intptr_t inc);
MMN_HIDDEN void *vm_do_mmap(void *const *next, void *addr, size_t len, int prot, int flags,
			   int fd, off_t off);
/* fork.c: take the domain locks inside fork(); 0 or -errno (then atfork it is). */
MMN_HIDDEN int vm_install_fork_hook(void);

/* process.c: one hooked call's invalidation, opened before the system call. */
struct vm_call {
	struct mmn_range range;
	int slot;		/* in-flight slot for the backstop, or -1 */
	bool open;		/* a region is open: end it */
	bool pushed;		/* ev is on this thread's reported list */
	struct mmn_process_event ev;	/* while a foreign hook runs: already reported */
};
/*
 * Around a call of the foreign hook libmmn chains to: hooked calls it makes
 * inside the range (its own "original" munmap, say) report nothing again.
 */
MMN_HIDDEN void vm_call_chain_enter(struct vm_call *c);
MMN_HIDDEN void vm_call_chain_leave(struct vm_call *c);
MMN_HIDDEN void vm_call_begin(struct vm_call *c, enum mmn_process_call call,
			     enum mmn_event event, unsigned long start, unsigned long end);
MMN_HIDDEN void vm_call_end(struct vm_call *c);
MMN_HIDDEN struct mmn_mm *vm_process_mm_or_null(void);

/* backstop.c: the userfaultfd monitor. */
MMN_HIDDEN int vm_backstop_start(void);
MMN_HIDDEN bool vm_backstop_running(void);
MMN_HIDDEN int vm_backstop_register(unsigned long start, unsigned long end);
/*
 * Feeding another monitor (feed.c): that monitor's ranges are unknown to
 * libmmn, so every anonymous mapping is registered with the backstop --
 * those that exist when this is turned on, and each one mapped, grown or
 * moved by a hooked call afterwards.
 */
MMN_HIDDEN void vm_backstop_watch_all_anon(void);
MMN_HIDDEN extern bool vm_backstop_all_anon;	/* atomic */
MMN_HIDDEN void vm_backstop_before_unmap(unsigned long start, unsigned long end);
/*
 * A mapping that held [old_start, old_end) now spans [start, end) (mremap):
 * if it may be registered, so may its new place.
 */
MMN_HIDDEN void vm_backstop_moved(unsigned long old_start, unsigned long old_end,
				  unsigned long start, unsigned long end);
MMN_HIDDEN int vm_inflight_publish(unsigned long start, unsigned long end);
MMN_HIDDEN void vm_inflight_done(int slot);
MMN_HIDDEN void vm_backstop_counts(uint64_t *ranges, uint64_t *events, uint64_t *duplicates);

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
