// SPDX-License-Identifier: MIT
/*
 * fork() with the event sources installed.
 *
 * The hooks run inside malloc holding a glibc arena lock and take domain
 * locks. glibc's fork() runs the pthread_atfork prepare handlers first and
 * takes every arena lock after them, so taking the domain locks in an atfork
 * handler would order domain -> arena in fork against arena -> domain in
 * malloc: a deadlock as soon as one thread forks while another allocates.
 *
 * glibc (2.34 and later) calls _Fork() once it holds its malloc locks, so no
 * thread can be inside malloc then. libmmn detours _Fork: the hook takes every
 * domain lock, runs glibc's own _Fork through the moved prologue, and then
 * unlocks (parent) or quiesces the domains (child). The detour needs the exact
 * first instruction it knows how to move; on any other glibc it is not
 * installed, the atfork handlers remain, and coverage says so.
 */
#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "../core/fork.h"
#include "vm.h"

typedef pid_t fork_fn(void);

static fork_fn *glibc_fork;	/* _Fork's moved prologue, then _Fork */

static pid_t hook_fork(void)
{
	pid_t pid;

	mmn_fork_lock_all();
	pid = glibc_fork();
	mmn_fork_unlock_all(pid == 0);
	return pid;
}

int vm_install_fork_hook(void)
{
#if defined(__aarch64__)
	/* aarch64: whatever the first instruction is, patch_aarch64.c relocates it. */
	static const unsigned char *const prologue = NULL;
	static const size_t prologue_len = 0;
#else
	/* glibc 2.34-2.41 x86-64: mov %fs:0x10,%rax (the thread pointer) */
	static const unsigned char prologue[] = {
		0x64, 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00,
	};
	static const size_t prologue_len = sizeof(prologue);
#endif
	void *target = vm_libc_symbol("_Fork");
	void *original = NULL;
	int err;

	if (!target)
		return -ENOENT;
	err = vm_patch_detour(target, (vm_hook_fn *)hook_fork, prologue, prologue_len,
			      &original);
	if (err)
		return err;
	/* An object pointer to code: ISO C has no cast for it, memcpy has. */
	memcpy(&glibc_fork, &original, sizeof(glibc_fork));
	mmn_fork_locked_in_libc();
	return 0;
}
