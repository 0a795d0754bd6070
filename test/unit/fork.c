// SPDX-License-Identifier: MIT
/*
 * fork(): the child never inherits a domain lock held by another thread, and
 * its domains are quiesced (the parent's open regions are forgotten, an odd
 * period is ended, deferred items applied), so read_begin, remove and new
 * invalidations work in the child. The parent is unaffected.
 *
 * Each child reports through its exit status and is bounded by alarm(), so a
 * hang in the child is a failure (SIGALRM), never a hung test.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, release;
};

struct blocking_sub {
	struct mmn_interval_notifier sub;
	struct gate *gate;	/* NULL: do not block */
	int calls;
};

static bool blocking_invalidate(struct mmn_interval_notifier *sub,
				const struct mmn_range *range, unsigned long cur_seq)
{
	struct blocking_sub *b = mmn_container_of(sub, struct blocking_sub, sub);
	struct gate *g = b->gate;

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	__atomic_add_fetch(&b->calls, 1, __ATOMIC_RELAXED);
	if (!g)
		return true;
	pthread_mutex_lock(&g->lock);
	g->entered = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->release)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return true;
}

static const struct mmn_interval_notifier_ops blocking_ops = {
	.invalidate = blocking_invalidate,
};

struct invalidator {
	struct mmn_mm *mm;
	unsigned long start, end;
};

static void *invalidate_thread(void *arg)
{
	struct invalidator *inv = arg;
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, inv->mm, inv->start, inv->end);
	if (mmn_invalidate_range_start(&range) == 0)
		mmn_invalidate_range_end(&range);
	return NULL;
}

/* In the child: everything must work and nothing may block. */
static int child_checks(struct mmn_mm *mm, struct blocking_sub *hit, unsigned long old_seq)
{
	struct blocking_sub fresh = { 0 };
	struct mmn_range range;
	struct mmn_stats st;

	alarm(10);
	hit->gate = NULL;
	if (mmn_mm_get_stats(mm, &st) || st.active != 0 || (st.seq & 1) || st.seq != old_seq + 1)
		return 10;
	if (mmn_interval_read_begin(&hit->sub) != old_seq)	/* no wait: period over */
		return 11;
	if (mmn_interval_notifier_insert(&fresh.sub, mm, 0x10000, 0x1000, &blocking_ops))
		return 12;
	if (!mmn_interval_notifier_test_in_tree(&fresh.sub))
		return 13;
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0, 0x20000);
	if (mmn_invalidate_range_start(&range))
		return 14;
	mmn_invalidate_range_end(&range);
	if (fresh.calls != 1)
		return 15;
	if (mmn_interval_notifier_remove(&fresh.sub) || mmn_interval_notifier_remove(&hit->sub))
		return 16;
	if (mmn_mm_test_check(mm))
		return 17;
	return 0;
}

/* A thread is inside a callback (its region open, the period odd) at fork time. */
TEST(fork_inside_open_period)
{
	struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
	struct blocking_sub hit = { .gate = &gate };
	struct invalidator inv;
	struct mmn_stats st;
	struct mmn_mm *mm;
	pthread_t thread;
	pid_t pid;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&hit.sub, mm, 0x1000, 0x1000, &blocking_ops), 0);
	inv = (struct invalidator){ mm, 0x1000, 0x2000 };
	pthread_create(&thread, NULL, invalidate_thread, &inv);
	pthread_mutex_lock(&gate.lock);
	while (!gate.entered)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);

	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq(st.active, 1);
	expect_eq_ul(st.seq, 3);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_checks(mm, &hit, 3));
	expect_eq(test_wait_child(pid), 0);

	/* The parent's period is untouched by the child's reset. */
	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq(st.active, 1);
	expect_eq_ul(st.seq, 3);
	pthread_mutex_lock(&gate.lock);
	gate.release = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	pthread_join(thread, NULL);
	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq(hit.calls, 1);
	expect_eq(mmn_interval_notifier_remove(&hit.sub), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

struct churn {
	struct mmn_mm *mm;
	bool stop;
	unsigned long rounds;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	struct blocking_sub b = { 0 };
	struct mmn_range range;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		if (mmn_interval_notifier_insert(&b.sub, c->mm, 0x5000, 0x1000, &blocking_ops))
			abort();
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, c->mm, 0x5000, 0x6000);
		if (mmn_invalidate_range_start(&range) == 0)
			mmn_invalidate_range_end(&range);
		if (mmn_interval_notifier_remove(&b.sub))
			abort();
		__atomic_add_fetch(&c->rounds, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Another thread takes the domain lock all the time: no fork may catch it held. */
TEST(fork_while_lock_is_busy)
{
	struct churn c = { 0 };
	pthread_t thread;
	int bad = 0, forks = 200;

	assert_eq(mmn_mm_new(&c.mm), 0);
	pthread_create(&thread, NULL, churn_thread, &c);
	assert_true(wait_until(__atomic_load_n(&c.rounds, __ATOMIC_RELAXED) > 100, 10000));
	for (int i = 0; i < forks; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			struct blocking_sub b = { 0 };
			struct mmn_range range;

			alarm(10);
			if (mmn_interval_notifier_insert(&b.sub, c.mm, 0x9000, 0x1000, &blocking_ops))
				_exit(2);
			mmn_range_init(&range, MMN_EVENT_UNMAP, 0, c.mm, 0, 0x10000);
			if (mmn_invalidate_range_start(&range))
				_exit(3);
			mmn_invalidate_range_end(&range);
			_exit(b.calls == 1 && mmn_interval_notifier_remove(&b.sub) == 0 &&
			      mmn_mm_test_check(c.mm) == NULL ? 0 : 4);
		}
		if (test_wait_child(pid) != 0) {
			bad++;
			break;	/* one hung child costs its alarm(); do not wait for 200 */
		}
	}
	__atomic_store_n(&c.stop, true, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);
	expect_eq(bad, 0);
	expect_eq(mmn_mm_destroy(c.mm), 0);
}

int main(void)
{
	RUN(fork_inside_open_period);
	RUN(fork_while_lock_is_busy);
	return test_report();
}
