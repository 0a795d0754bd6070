// SPDX-License-Identifier: MIT
/*
 * Waits on oneself outside callbacks (issue 12, item 4; DESIGN.md D6).
 *
 * A thread that has a region of a domain open (between its own start and
 * _end) keeps that domain's period from ending. So remove() of a notifier
 * that would have to wait for the period returns -EDEADLK (and the notifier
 * stays inserted), and read_begin() of a notifier hit in the period logs an
 * error and aborts -- tested in a forked child that reports through a pipe.
 * Calls that need not wait stay allowed. Before the fix both hung forever;
 * every case runs on a helper thread (or in a child) with a bounded wait, so a
 * hang fails the test instead of hanging it.
 */
#include "scenario_util.h"

#define PG 0x1000UL
#define N_START 0x1000UL	/* hit by the region */
#define OUT_START 0x9000UL	/* in the tree, outside the region */

static bool inv_noop(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops noop_ops = { .invalidate = inv_noop };

/* Run @fn(@arg) on a helper thread; fail the test if it does not return. */
static void run_bounded(void *(*fn)(void *), void *arg, bool *done)
{
	pthread_t t;

	assert_eq(pthread_create(&t, NULL, fn, arg), 0);
	if (!wait_until(flag_get(done), WAIT_MS)) {
		test_fail_at(__FILE__, __LINE__);
		fprintf(stderr, "    hangs: the thread waits for a period its own open region holds\n");
		test_exit_now();
	}
	pthread_join(t, NULL);
}

struct own_region {
	struct mmn_mm *mm, *other;
	struct mmn_interval_notifier *hit, *outside, *foreign;
	unsigned long seq_in_region;
	int ret_hit, ret_outside, ret_foreign;
	unsigned long foreign_seq, outside_seq, outside_seq0;
	struct mmn_stats st;
	bool done;
};

static void *own_region_main(void *arg)
{
	struct own_region *o = arg;
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, o->mm, N_START, N_START + PG);
	if (mmn_invalidate_range_start(&range) == 0) {
		o->seq_in_region = stats_of(o->mm).seq;
		/* Would wait for this thread's own period: refused. */
		o->ret_hit = mmn_interval_notifier_remove(o->hit);
		o->ret_outside = mmn_interval_notifier_remove(o->outside);
		/* Need not wait: allowed. */
		o->outside_seq = mmn_interval_read_begin(o->outside);
		o->foreign_seq = mmn_interval_read_begin(o->foreign);
		o->ret_foreign = mmn_interval_notifier_remove(o->foreign);
		o->st = stats_of(o->mm);
		mmn_invalidate_range_end(&range);
	}
	flag_set(&o->done, true);
	return NULL;
}

/* remove() of a notifier the thread's own region hit, and of one it did not. */
TEST(remove_with_own_region_open_edeadlk)
{
	struct mmn_interval_notifier hit = { 0 }, outside = { 0 }, foreign = { 0 };
	struct own_region o = { .hit = &hit, .outside = &outside, .foreign = &foreign,
				.ret_hit = 12345, .ret_outside = 12345, .ret_foreign = 12345 };

	assert_eq(mmn_mm_new(&o.mm), 0);
	assert_eq(mmn_mm_new(&o.other), 0);
	assert_eq(mmn_interval_notifier_insert(&hit, o.mm, N_START, PG, &noop_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&outside, o.mm, OUT_START, PG, &noop_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&foreign, o.other, N_START, PG, &noop_ops), 0);
	o.outside_seq0 = mmn_interval_read_begin(&outside);

	run_bounded(own_region_main, &o, &o.done);
	expect_eq_ul(o.seq_in_region & 1, 1);
	printf("    remove(hit) -> %d, remove(outside) -> %d (want %d, -EDEADLK)\n",
	       o.ret_hit, o.ret_outside, -EDEADLK);
	expect_eq(o.ret_hit, -EDEADLK);
	expect_eq(o.ret_outside, -EDEADLK);
	/* Refused before anything was queued or waited for. */
	expect_eq_ul(o.st.deferred, 0);
	expect_eq(o.st.deferred_removes, 0);
	expect_eq(o.st.remove_waits, 0);
	expect_eq(o.st.read_begin_waits, 0);
	expect_eq_ul(o.outside_seq, o.outside_seq0);
	expect_eq(o.ret_foreign, 0);
	/* Both stay inserted, in working order, removable once the region ended. */
	expect_true(mmn_interval_notifier_test_in_tree(&hit));
	expect_true(mmn_interval_notifier_test_in_tree(&outside));
	expect_eq_ul(stats_of(o.mm).active, 0);
	expect_eq_ul(stats_of(o.mm).seq, o.seq_in_region + 1);
	expect_eq(mmn_interval_notifier_remove(&hit), 0);
	expect_eq(mmn_interval_notifier_remove(&outside), 0);
	expect_eq_ptr(mmn_mm_test_check(o.mm), NULL);
	destroy_mm(o.mm);
	destroy_mm(o.other);
}

/*
 * The thread's region hit nothing, but another thread's region made the
 * period odd: the period still cannot end before this thread's region does.
 */
struct joiner {
	struct mmn_mm *mm;
	struct mmn_interval_notifier *victim;
	struct gate *hold;
	int ret;
	bool done;
};

static void *joiner_main(void *arg)
{
	struct joiner *j = arg;
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, j->mm, OUT_START + PG, OUT_START + 2 * PG);
	if (mmn_invalidate_range_start(&range) == 0) {
		j->ret = mmn_interval_notifier_remove(j->victim);
		mmn_invalidate_range_end(&range);
	}
	flag_set(&j->done, true);
	return NULL;
}

TEST(remove_with_own_nonhitting_region_in_odd_period_edeadlk)
{
	struct mmn_interval_notifier n = { 0 };
	struct joiner j = { .victim = &n, .ret = 12345 };
	struct mmn_range other;

	assert_eq(mmn_mm_new(&j.mm), 0);
	assert_eq(mmn_interval_notifier_insert(&n, j.mm, N_START, PG, &noop_ops), 0);
	/* This (main) thread's region hits n: the period is odd. */
	mmn_range_init(&other, MMN_EVENT_UNMAP, 0, j.mm, N_START, N_START + PG);
	assert_eq(mmn_invalidate_range_start(&other), 0);
	run_bounded(joiner_main, &j, &j.done);
	expect_eq(j.ret, -EDEADLK);
	expect_eq(stats_of(j.mm).remove_waits, 0);
	mmn_invalidate_range_end(&other);
	expect_eq(mmn_interval_notifier_remove(&n), 0);
	destroy_mm(j.mm);
}

/* Control: a region that left the period even; remove need not wait. */
TEST(remove_with_own_region_open_even_period_allowed)
{
	struct mmn_interval_notifier n = { 0 };
	struct mmn_range range;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &noop_ops), 0);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, OUT_START, OUT_START + PG);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	expect_eq_ul(stats_of(mm).seq & 1, 0);
	expect_eq(mmn_interval_notifier_remove(&n), 0);
	expect_false(mmn_interval_notifier_test_in_tree(&n));
	mmn_invalidate_range_end(&range);
	destroy_mm(mm);
}

/* ---- read_begin that would wait: log, then abort (forked child) ------------ */

static struct mmn_interval_notifier child_n, child_out;
static struct mmn_mm *child_mm;

/* In the child: open a region hitting child_n, and read_begin on @arg inside it. */
static void read_begin_in_own_region(void *arg)
{
	struct mmn_interval_notifier *target = arg;
	struct mmn_range range;

	if (mmn_mm_new(&child_mm))
		_exit(3);
	if (mmn_interval_notifier_insert(&child_n, child_mm, N_START, PG, &noop_ops) ||
	    mmn_interval_notifier_insert(&child_out, child_mm, OUT_START, PG, &noop_ops))
		_exit(4);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, child_mm, N_START, N_START + PG);
	if (mmn_invalidate_range_start(&range))
		_exit(5);
	(void)mmn_interval_read_begin(target);
	/* Not reached if read_begin aborted. */
	test_child_returned();
	mmn_invalidate_range_end(&range);
}

TEST(read_begin_with_own_region_open_aborts)
{
	struct test_child_msg msgs[TEST_CHILD_MSGS];
	int nmsgs, status;

	status = test_fork_child(read_begin_in_own_region, &child_n, WAIT_MS, msgs, &nmsgs);
	test_expect_child_aborted(status, msgs, nmsgs, &child_n);
}

/* Control: read_begin of a notifier the open period did not hit returns. */
TEST(read_begin_with_own_region_open_not_hit_returns)
{
	struct test_child_msg msgs[TEST_CHILD_MSGS];
	int nmsgs, status;

	status = test_fork_child(read_begin_in_own_region, &child_out, WAIT_MS, msgs, &nmsgs);
	test_expect_child_returned(status, msgs, nmsgs);
}

int main(void)
{
	RUN(remove_with_own_region_open_edeadlk);
	RUN(remove_with_own_nonhitting_region_in_odd_period_edeadlk);
	RUN(remove_with_own_region_open_even_period_allowed);
	RUN(read_begin_with_own_region_open_not_hit_returns);
	RUN(read_begin_with_own_region_open_aborts);
	return test_report();
}
