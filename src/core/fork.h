/* SPDX-License-Identifier: MIT */
/*
 * fork() support shared by the core and the process event sources.
 *
 * This is the one place where a layer reaches past mmn.h into the core: the
 * event sources must take every domain's lock *inside* fork(), at the point
 * where glibc already holds its malloc locks, because their hooks take domain
 * locks from inside malloc (notifier.c explains the deadlock this avoids).
 * Nothing here is exported from libmmn.so.
 */
#ifndef MMN_CORE_FORK_H
#define MMN_CORE_FORK_H

#include <stdbool.h>

#include "hidden.h"

/* Take domains_lock and every domain's lock. */
MMN_HIDDEN void mmn_fork_lock_all(void);
/* Undo it: in the parent unlock; in the child re-initialise and quiesce. */
MMN_HIDDEN void mmn_fork_unlock_all(bool child);
/* From now on the caller locks inside fork(): the atfork handlers stand aside. */
MMN_HIDDEN void mmn_fork_locked_in_libc(void);

/*
 * Does this thread hold (or is it taking or dropping) a domain lock? A hook
 * entered from a signal handler that interrupted such a thread must not take
 * a domain lock: it would wait for itself (docs/process-events.md, "Signal
 * handlers").
 */
MMN_HIDDEN bool mmn_lock_held_by_thread(void);

#endif /* MMN_CORE_FORK_H */
