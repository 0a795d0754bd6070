/* SPDX-License-Identifier: MIT */
/*
 * An add that needs no locked instruction while the process has one thread.
 *
 * glibc's own mutex skips its atomic instruction when __libc_single_threaded
 * says no other thread exists; a hooked call does the same for the counters
 * it bumps on every call. With no other thread nobody else can read or write
 * the counter, and one add instruction is atomic with respect to a signal
 * handler on this thread. Only this thread can create the second thread, and
 * pthread_create orders the add before everything the new thread does. A
 * locked instruction costs 7-8 ns on the VM of bench/README.md, a lock-free
 * miss about the same. Elsewhere (or before glibc 2.32) the add is atomic.
 */
#ifndef MMN_SINGLE_H
#define MMN_SINGLE_H

#include <stdbool.h>

#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define MMN_ADD_UNLOCKED_OK() (__libc_single_threaded != 0)
#endif
#endif

#ifndef MMN_ADD_UNLOCKED_OK
#define MMN_ADD_UNLOCKED_OK() false
#endif

/*
 * Add @n to the 8-byte integer @lv with one unlocked instruction, or
 * atomically with @order (a __ATOMIC_* constant).
 */
#if defined(__x86_64__)
#define MMN_ADD_SINGLE(lv, n, order)                                              \
	do {                                                                      \
		if (MMN_ADD_UNLOCKED_OK())                                        \
			__asm__ __volatile__("addq %1, %0"                        \
					     : "+m"(lv)                           \
					     : "er"((unsigned long)(n))           \
					     : "memory");                         \
		else                                                              \
			__atomic_fetch_add(&(lv), (n), (order));                  \
	} while (0)
#else
#define MMN_ADD_SINGLE(lv, n, order) ((void)__atomic_fetch_add(&(lv), (n), (order)))
#endif

#endif /* MMN_SINGLE_H */
