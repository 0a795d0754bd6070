// SPDX-License-Identifier: MIT
/*
 * Mapping changes from signal handlers (issue 9).
 *
 * A worker thread runs hooked calls in a loop -- insert a notifier, munmap
 * (the walk calls it), remove -- so it is often inside libmmn holding the
 * domain lock. Another thread interrupts it NSIGNALS times with pthread_kill,
 * each time waiting (bounded, no sleep) for the handler to finish; the
 * handler munmaps one page of a pool, each page with its own notifier.
 *
 * A handler that interrupted the worker holding the domain lock used to wait
 * for that lock forever: the whole process hung. Now each handler's unmap is
 * either invalidated before munmap returns (the callback read the old
 * contents) or, where that is impossible, let through and counted in
 * coverage.signal_degraded. Nothing else is allowed.
 */
#include <mmn/process.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define NSIGNALS 2000

struct watch {
	struct mmn_interval_notifier sub;
	unsigned char *base;
	unsigned int calls;	/* atomic */
	unsigned int saw_old;	/* atomic */
	bool gone;		/* atomic: unmapped, do not read */
};

static long pg;
static struct watch *pool;
static unsigned char *pool_base;
static unsigned int handled, seen_before, degraded, bad;	/* atomic */
static bool stop;						/* atomic */

static bool watch_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			     unsigned long cur_seq)
{
	struct watch *w = (struct watch *)sub;

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	if (!__atomic_load_n(&w->gone, __ATOMIC_ACQUIRE) && w->base[0] == 0xab)
		__atomic_add_fetch(&w->saw_old, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&w->calls, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops watch_ops = { .invalidate = watch_invalidate };

static void on_signal(int sig)
{
	unsigned int i = __atomic_load_n(&handled, __ATOMIC_RELAXED);
	struct watch *w = &pool[i];
	int saved = errno;

	(void)sig;
	munmap(w->base, (size_t)pg);
	__atomic_store_n(&w->gone, true, __ATOMIC_RELEASE);
	if (w->calls == 1 && w->saw_old == 1)
		__atomic_add_fetch(&seen_before, 1, __ATOMIC_RELAXED);
	else if (w->calls == 0)
		__atomic_add_fetch(&degraded, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&handled, i + 1, __ATOMIC_RELEASE);
	errno = saved;
}

/* The interrupted thread: always somewhere in libmmn's hooks or core. */
static void *worker(void *arg)
{
	unsigned long rounds = 0;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct watch w = { 0 };
		unsigned char *p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			break;
		w.base = p;
		p[0] = 0xab;
		if (mmn_process_insert(&w.sub, (unsigned long)p, (size_t)pg, &watch_ops) == 0) {
			__atomic_store_n(&w.gone, false, __ATOMIC_RELAXED);
			munmap(p, (size_t)pg);
			__atomic_store_n(&w.gone, true, __ATOMIC_RELEASE);
			mmn_interval_notifier_remove(&w.sub);
		} else {
			munmap(p, (size_t)pg);
		}
		rounds++;
	}
	return (void *)rounds;
}

TEST(unmap_from_handler_never_deadlocks)
{
	struct mmn_process_coverage cov;
	pthread_t th;
	void *rounds;

	assert_eq(pthread_create(&th, NULL, worker, NULL), 0);
	for (unsigned int i = 0; i < NSIGNALS; i++) {
		assert_eq(pthread_kill(th, SIGUSR1), 0);
		/* 10 s per signal at most: a hung handler is a deadlock. */
		if (!wait_until(__atomic_load_n(&handled, __ATOMIC_ACQUIRE) == i + 1, 10000)) {
			fprintf(stderr, "signal %u: handler did not finish within 10 s: deadlock\n",
				i);
			fflush(stderr);
			_exit(1);
		}
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	pthread_join(th, &rounds);
	printf("%u handlers: %u invalidated before, %u degraded; worker rounds %lu\n",
	       NSIGNALS, seen_before, degraded, (unsigned long)rounds);
	expect_eq(handled, NSIGNALS);
	expect_eq(bad, 0);
	expect_eq(seen_before + degraded, NSIGNALS);
	assert_eq(mmn_process_coverage(&cov), 0);
	expect_eq(cov.signal_degraded, degraded);
	expect_eq(cov.events[MMN_CALL_MUNMAP] >= seen_before, 1);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct mmn_mm *mm;

	pg = sysconf(_SC_PAGESIZE);
	/* No backstop: a degraded unmap must not be reported late to a notifier
	 * whose page is gone (the callback then reads nothing, but keep it simple). */
	setenv("MMN_BACKSTOP", "0", 1);
	assert_eq(mmn_process_mm(&mm), 0);
	pool = calloc(NSIGNALS, sizeof(*pool));
	assert_true(pool != NULL);
	pool_base = mmap(NULL, NSIGNALS * (size_t)pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(pool_base != MAP_FAILED);
	for (unsigned int i = 0; i < NSIGNALS; i++) {
		pool[i].base = pool_base + (size_t)i * pg;
		pool[i].base[0] = 0xab;
		assert_eq(mmn_process_insert(&pool[i].sub, (unsigned long)pool[i].base, (size_t)pg,
					     &watch_ops), 0);
	}
	sigemptyset(&sa.sa_mask);
	assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	RUN(unmap_from_handler_never_deadlocks);
	return test_report();
}
