// SPDX-License-Identifier: MIT
/*
 * Finish-pass timing, docs/TESTING.md scenario 32 (docs/kernel-map.md D3): the finish
 * pass is part of the start call and of the odd period. While a finish is
 * blocked (here on a gate the test opens), the start call has not returned,
 * read_begin on a notifier the walk hit and remove of a hit notifier block,
 * and an insert is deferred. Opening the gate lets the start call return with
 * the region still open (active 1, sequence odd) until _end, which only then
 * wakes the waiters and applies the deferred insert and removal.
 */
#include "scenario_util.h"

struct timing {
	struct mmn_mm *mm;
	struct mmn_interval_notifier hit2p;	/* two-pass, finish blocks */
	struct mmn_interval_notifier hit1p;	/* single-pass, removed while blocked */
	struct mmn_interval_notifier late;	/* inserted while blocked */
	struct mmn_finish finish;
	struct gate finish_gate;
	struct gate end_gate;
	pthread_t invalidator;
	pthread_t finish_thread;
	bool start_returned, ended;
	bool read_done, remove_done;
	unsigned long read_seq;
	int remove_ret;
};

static struct timing tm = {
	.finish_gate = GATE_INIT,
	.end_gate = GATE_INIT,
};

static bool blocked_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq, struct mmn_finish **finish)
{
	ev_add('S', 1, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	*finish = &tm.finish;
	return true;
}

static void blocked_finish(struct mmn_finish *finish)
{
	ev_add('F', 1, NULL, 0, finish);
	tm.finish_thread = pthread_self();
	gate_wait(&tm.finish_gate);
}

static const struct mmn_interval_notifier_ops blocked_ops = {
	.invalidate_start = blocked_start,
	.invalidate_finish = blocked_finish,
};

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	ev_add('I', sub == &tm.hit1p ? 2 : 3, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static void *invalidator_main(void *arg)
{
	struct mmn_range range;

	(void)arg;
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, tm.mm, 0x1000, 0x3000);
	if (mmn_invalidate_range_start(&range) != 0)
		return (void *)1;
	flag_set(&tm.start_returned, true);
	gate_wait(&tm.end_gate);
	/* _end comes from the thread that called start. */
	mmn_invalidate_range_end(&range);
	flag_set(&tm.ended, true);
	return NULL;
}

static void *reader_main(void *arg)
{
	(void)arg;
	tm.read_seq = mmn_interval_read_begin(&tm.hit2p);
	flag_set(&tm.read_done, true);
	return NULL;
}

static void *remover_main(void *arg)
{
	(void)arg;
	tm.remove_ret = mmn_interval_notifier_remove(&tm.hit1p);
	flag_set(&tm.remove_done, true);
	return NULL;
}

TEST(s32_finish_blocks_the_period)
{
	pthread_t reader, remover;
	struct mmn_stats st;
	unsigned long seq0, cur_seq;
	void *inv_ret = (void *)1;

	assert_eq(mmn_mm_new(&tm.mm), 0);
	assert_eq(mmn_interval_notifier_insert(&tm.hit2p, tm.mm, 0x1000, 0x1000, &blocked_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&tm.hit1p, tm.mm, 0x2000, 0x1000, &rec_ops), 0);
	seq0 = mmn_interval_read_begin(&tm.hit2p);
	expect_eq_ul(seq0, 1);

	ev_reset();
	assert_eq(pthread_create(&tm.invalidator, NULL, invalidator_main, NULL), 0);
	assert_true(wait_until(gate_waiting(&tm.finish_gate) == 1, WAIT_MS));

	/* The finish is blocked: the start call has not returned. */
	expect_false(flag_get(&tm.start_returned));
	expect_str_eq(ev_str(), "S1 I2 F1");
	expect_true(pthread_equal(tm.finish_thread, tm.invalidator));
	st = stats_of(tm.mm);
	cur_seq = st.seq;
	expect_eq_ul(cur_seq, 3);
	expect_eq_ul(st.active, 1);
	/* (The walk's call counters are added once the start call is done.) */
	/* set_seq ran in the first pass: a fault that began before must retry. */
	expect_true(mmn_interval_check_retry(&tm.hit2p, seq0));
	expect_true(mmn_interval_read_retry(&tm.hit2p, seq0));

	/* read_begin on the hit notifier blocks. */
	assert_eq(pthread_create(&reader, NULL, reader_main, NULL), 0);
	expect_true(wait_until(stats_of(tm.mm).read_begin_waits == 1, WAIT_MS));
	expect_false(flag_get(&tm.read_done));

	/* remove of a hit notifier blocks, and the notifier stays in the tree. */
	assert_eq(pthread_create(&remover, NULL, remover_main, NULL), 0);
	expect_true(wait_until(stats_of(tm.mm).remove_waits == 1, WAIT_MS));
	expect_false(flag_get(&tm.remove_done));
	expect_true(mmn_interval_notifier_test_in_tree(&tm.hit1p));

	/* An insert is accepted at once but deferred. */
	expect_eq(mmn_interval_notifier_insert(&tm.late, tm.mm, 0x1000, 0x800, &rec_ops), 0);
	expect_false(mmn_interval_notifier_test_in_tree(&tm.late));
	st = stats_of(tm.mm);
	expect_eq(st.deferred_inserts, 1);
	expect_eq(st.deferred_removes, 1);
	expect_eq_ul(st.deferred, 2);
	expect_eq_ul(st.notifiers, 3);
	expect_false(flag_get(&tm.start_returned));

	/* Let the finish go: start returns, the region stays open. */
	gate_open(&tm.finish_gate);
	assert_true(wait_until(flag_get(&tm.start_returned), WAIT_MS));
	st = stats_of(tm.mm);
	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.seq, cur_seq);
	expect_true(st.seq & 1);
	expect_eq(st.notifiers_called, 2);
	expect_eq(st.finishes, 1);
	expect_eq_ul(st.deferred, 2);
	expect_false(flag_get(&tm.read_done));
	expect_false(flag_get(&tm.remove_done));
	expect_false(mmn_interval_notifier_test_in_tree(&tm.late));
	expect_true(mmn_interval_notifier_test_in_tree(&tm.hit1p));
	expect_str_eq(ev_str(), "S1 I2 F1");	/* nothing else ran */

	/* _end closes the period: waiters wake, the deferred items are applied. */
	gate_open(&tm.end_gate);
	expect_true(wait_until(flag_get(&tm.ended), WAIT_MS));
	expect_true(wait_until(flag_get(&tm.read_done), WAIT_MS));
	expect_true(wait_until(flag_get(&tm.remove_done), WAIT_MS));
	pthread_join(tm.invalidator, &inv_ret);
	pthread_join(reader, NULL);
	pthread_join(remover, NULL);
	expect_eq_ptr(inv_ret, NULL);
	expect_eq_ul(tm.read_seq, cur_seq);
	expect_false(mmn_interval_read_retry(&tm.hit2p, tm.read_seq));
	expect_eq(tm.remove_ret, 0);
	st = stats_of(tm.mm);
	expect_eq_ul(st.seq, cur_seq + 1);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.deferred, 0);
	expect_eq_ul(st.notifiers, 2);
	expect_true(mmn_interval_notifier_test_in_tree(&tm.late));
	expect_false(mmn_interval_notifier_test_in_tree(&tm.hit1p));
	expect_eq_ptr(mmn_mm_test_check(tm.mm), NULL);
	expect_eq(ev_count(), 3);	/* _end called nothing */

	/* A later invalidation reaches the late insert, not the removed one. */
	ev_reset();
	{
		struct mmn_range range;

		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, tm.mm, 0x1000, 0x3000);
		gate_close(&tm.finish_gate);
		gate_open(&tm.finish_gate);
		expect_eq(mmn_invalidate_range_start(&range), 0);
		mmn_invalidate_range_end(&range);
	}
	expect_str_eq(ev_str(), "S1 I3 F1");
	expect_eq(mmn_interval_notifier_remove(&tm.hit2p), 0);
	expect_eq(mmn_interval_notifier_remove(&tm.late), 0);
	destroy_mm(tm.mm);
}

int main(void)
{
	RUN(s32_finish_blocks_the_period);
	return test_report();
}
