// SPDX-License-Identifier: MIT
/*
 * A storm of mapping changes from signal handlers, shared by
 * unit/process_signal (the handler calls libc's munmap) and
 * unit/process_signal_raw (it makes the raw system call).
 *
 * A worker thread runs hooked calls in a loop -- insert a notifier, munmap
 * (the walk calls it), remove -- so it is often inside libmmn holding the
 * domain lock. storm_run() interrupts it STORM_SIGNALS times with
 * pthread_kill, each time waiting (bounded, no sleep) for the handler to
 * finish; the handler unmaps one page of a pool, each page with its own
 * notifier, and sorts the outcome: invalidated before the change (the
 * callback read the old contents), not invalidated, or anything else (bad).
 */
#ifndef MMN_TEST_SIGNAL_STORM_H
#define MMN_TEST_SIGNAL_STORM_H

#include <mmn/process.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define STORM_SIGNALS 2000

struct storm_watch {
	struct mmn_interval_notifier sub;
	unsigned char *base;
	unsigned int calls;	/* atomic */
	unsigned int saw_old;	/* atomic */
	bool gone;		/* atomic: unmapped, do not read */
};

static long storm_pg;
static struct storm_watch *storm_pool;
static long (*storm_unmap)(void *addr, size_t len);	/* what the handler calls */
static unsigned int storm_handled, storm_before, storm_not, storm_bad;	/* atomic */
static bool storm_stop;							/* atomic */

static bool storm_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			     unsigned long cur_seq)
{
	struct storm_watch *w = (struct storm_watch *)sub;

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	if (!__atomic_load_n(&w->gone, __ATOMIC_ACQUIRE) && w->base[0] == 0xab)
		__atomic_add_fetch(&w->saw_old, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&w->calls, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops storm_ops = { .invalidate = storm_invalidate };

static void storm_on_signal(int sig)
{
	unsigned int i = __atomic_load_n(&storm_handled, __ATOMIC_RELAXED);
	struct storm_watch *w = &storm_pool[i];
	int saved = errno;

	(void)sig;
	storm_unmap(w->base, (size_t)storm_pg);
	__atomic_store_n(&w->gone, true, __ATOMIC_RELEASE);
	if (w->calls == 1 && w->saw_old == 1)
		__atomic_add_fetch(&storm_before, 1, __ATOMIC_RELAXED);
	else if (w->calls == 0)
		__atomic_add_fetch(&storm_not, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&storm_bad, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&storm_handled, i + 1, __ATOMIC_RELEASE);
	errno = saved;
}

/* The interrupted thread: always somewhere in libmmn's hooks or core. */
static void *storm_worker(void *arg)
{
	unsigned long rounds = 0;

	(void)arg;
	while (!__atomic_load_n(&storm_stop, __ATOMIC_ACQUIRE)) {
		struct storm_watch w = { 0 };
		unsigned char *p = mmap(NULL, (size_t)storm_pg, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			break;
		w.base = p;
		p[0] = 0xab;
		if (mmn_process_insert(&w.sub, (unsigned long)p, (size_t)storm_pg, &storm_ops) == 0) {
			__atomic_store_n(&w.gone, false, __ATOMIC_RELAXED);
			munmap(p, (size_t)storm_pg);
			__atomic_store_n(&w.gone, true, __ATOMIC_RELEASE);
			mmn_interval_notifier_remove(&w.sub);
		} else {
			munmap(p, (size_t)storm_pg);
		}
		rounds++;
	}
	return (void *)rounds;
}

/* The pool, one notifier per page, and the SIGUSR1 handler calling @unmap. */
static void storm_setup(long (*unmap)(void *addr, size_t len))
{
	struct sigaction sa = { .sa_handler = storm_on_signal };
	unsigned char *base;

	storm_unmap = unmap;
	storm_pool = calloc(STORM_SIGNALS, sizeof(*storm_pool));
	assert_true(storm_pool != NULL);
	base = mmap(NULL, STORM_SIGNALS * (size_t)storm_pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(base != MAP_FAILED);
	for (unsigned int i = 0; i < STORM_SIGNALS; i++) {
		storm_pool[i].base = base + (size_t)i * storm_pg;
		storm_pool[i].base[0] = 0xab;
		assert_eq(mmn_process_insert(&storm_pool[i].sub, (unsigned long)storm_pool[i].base,
					     (size_t)storm_pg, &storm_ops), 0);
	}
	sigemptyset(&sa.sa_mask);
	assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

/* Every signal, each handled within 10 s (else: a deadlock); the worker's rounds. */
static unsigned long storm_run(void)
{
	pthread_t th;
	void *rounds;

	assert_eq(pthread_create(&th, NULL, storm_worker, NULL), 0);
	for (unsigned int i = 0; i < STORM_SIGNALS; i++) {
		assert_eq(pthread_kill(th, SIGUSR1), 0);
		if (!wait_until(__atomic_load_n(&storm_handled, __ATOMIC_ACQUIRE) == i + 1,
				10000)) {
			fprintf(stderr, "signal %u: handler did not finish within 10 s: deadlock\n",
				i);
			fflush(stderr);
			_exit(1);
		}
	}
	__atomic_store_n(&storm_stop, true, __ATOMIC_RELEASE);
	pthread_join(th, &rounds);
	expect_eq(storm_handled, STORM_SIGNALS);
	expect_eq(storm_bad, 0);
	expect_eq(storm_before + storm_not, STORM_SIGNALS);
	return (unsigned long)rounds;
}

#endif /* MMN_TEST_SIGNAL_STORM_H */
