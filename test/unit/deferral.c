// SPDX-License-Identifier: MIT
/*
 * Inserts and removals during invalidation (docs/TESTING.md scenarios 11-15):
 * partial exclusion (open regions that hit nothing) versus full exclusion (an
 * odd period), deferred inserts and removals, and who waits for what.
 */
#include "recorder.h"

/*
 * Scenario 11: an insert while a missing region is open goes into the tree at
 * once and turns the period odd; read_begin on it waits for the last _end.
 */
TEST(s11_partial_exclusion_insert)
{
	struct mmn_mm *mm;
	struct tsub x, far;
	struct mmn_range a, b;
	struct mmn_stats st;
	struct bg r;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&far, 1, mm, 0x9000, 0x1000), 0);
	rec_reset();

	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 2);
	expect_eq_ul(st.active, 1);

	assert_eq(tsub_insert(&x, 2, mm, 0x1000, 0x1000), 0);
	expect_true(mmn_interval_notifier_test_in_tree(&x.sub));
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.deferred, 0);
	expect_eq(st.deferred_inserts, 0);
	expect_eq_ul(st.notifiers, 2);
	/* X.seq == the domain's seq (3): check_retry(3) false, check_retry(2) true. */
	expect_false(mmn_interval_check_retry(&x.sub, 3));
	expect_true(mmn_interval_check_retry(&x.sub, 2));
	expect_eq(rec.n, 0);	/* the open region never calls X */

	bg_start(&r, BG_READ_BEGIN, &x.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(bg_done(&r));

	/* A region that starts now joins the period and calls X. */
	mmn_range_init(&b, MMN_EVENT_UNMAP, 0, mm, 0x1800, 0x1900);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	expect_eq(rec.n, 1);
	expect_call(0, 2, PASS_SINGLE, 0x1800, 0x1900, 3);
	mmn_invalidate_range_end(&b);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.active, 1);
	expect_false(wait_until(bg_done(&r), BLOCKED_MS));

	mmn_invalidate_range_end(&a);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, 3);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.active, 0);
	expect_eq(st.read_begin_waits, 1);
	expect_eq(st.invalidations_hit, 1);	/* only B hit something */

	/* Without any callback, an insert during partial exclusion still waits. */
	rec_reset();
	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	assert_eq(mmn_interval_notifier_insert(&x.sub, mm, 0x1000, 0x1000, &tsub_single_ops), 0);
	expect_eq_ul(stats_of(mm).seq, 5);
	bg_start(&r, BG_READ_BEGIN, &x.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 2, WAIT_MS));
	expect_false(bg_done(&r));
	mmn_invalidate_range_end(&a);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, 5);
	expect_eq_ul(stats_of(mm).seq, 6);
	expect_eq(rec.n, 0);
	expect_false(mmn_interval_read_retry(&x.sub, 5));

	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&far.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 12: an insert during an odd period is deferred: not in the tree, not
 * called by regions of that period; read_begin waits; after the last _end it
 * is in the tree (deferred inserts in call order, D4) and is called.
 */
TEST(s12_full_exclusion_insert)
{
	struct mmn_mm *mm;
	struct tsub w, x, x2;
	struct mmn_range a, b;
	struct mmn_stats st;
	struct bg r;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&w, 1, mm, 0x1000, 0x1000), 0);
	rec_reset();

	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq_ul(stats_of(mm).seq, 3);

	assert_eq(tsub_insert(&x, 2, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert_two_pass(&x2, 3, mm, 0x1000, 0x800), 0);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	expect_false(mmn_interval_notifier_test_in_tree(&x2.sub));
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.deferred, 2);
	expect_eq(st.deferred_inserts, 2);
	expect_eq_ul(st.notifiers, 3);
	expect_false(mmn_interval_check_retry(&x.sub, 3));	/* X.seq == 3 */
	expect_false(mmn_interval_check_retry(&x2.sub, 3));
	/* Not yet in the tree, so the domain cannot go. */
	expect_eq(mmn_mm_destroy(mm), -EBUSY);

	bg_start(&r, BG_READ_BEGIN, &x.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(bg_done(&r));

	/* A region opened meanwhile calls W, never X or X2. */
	mmn_range_init(&b, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x1800);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	mmn_invalidate_range_end(&b);
	expect_eq(rec.n, 2);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x2000, 3);
	expect_call(1, 1, PASS_SINGLE, 0x1000, 0x1800, 3);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	expect_false(wait_until(bg_done(&r), BLOCKED_MS));

	mmn_invalidate_range_end(&a);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, 3);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.deferred, 0);
	expect_eq_ul(st.notifiers, 3);
	expect_true(mmn_interval_notifier_test_in_tree(&x.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&x2.sub));
	expect_eq(x.calls + x2.calls, 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);

	/* A later region calls them, equal starts in insert-call order. */
	rec_reset();
	expect_eq(invalidate(mm, 0x1000, 0x1001), 0);
	expect_eq(rec.n, 4);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x1001, 5);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x1001, 5);
	expect_call(2, 3, PASS_START, 0x1000, 0x1001, 5);
	expect_call(3, 3, PASS_FINISH, 0x1000, 0x1001, 5);

	expect_eq(mmn_interval_notifier_remove(&w.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&x2.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Scenario 13: remove when idle and when partially excluded is immediate. */
TEST(s13_remove_immediate)
{
	struct mmn_mm *mm;
	struct tsub x, y;
	struct mmn_range a;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	rec_reset();

	/* Idle. */
	assert_eq(tsub_insert(&x, 1, mm, 0x1000, 0x1000), 0);
	expect_remove_nonblocking(mm, &x.sub);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	expect_eq_ul(stats_of(mm).notifiers, 0);
	expect_eq(mmn_interval_notifier_remove(&x.sub), -EINVAL);	/* already removed */
	expect_eq(invalidate(mm, 0x1000, 0x2000), 0);
	expect_eq(x.calls, 0);

	/* Partially excluded: a region that hits nothing is open. */
	assert_eq(tsub_insert(&x, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&y, 2, mm, 0x1000, 0x1000), 0);
	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x8000, 0x9000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq_ul(stats_of(mm).seq, 2);
	expect_remove_nonblocking(mm, &x.sub);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	st = stats_of(mm);
	expect_eq_ul(st.seq, 2);		/* a remove does not make the period odd */
	expect_eq_ul(st.deferred, 0);
	expect_eq(st.deferred_removes, 0);
	expect_eq_ul(st.notifiers, 1);
	/* A region joining now calls Y only. */
	expect_eq(invalidate(mm, 0x1000, 0x2000), 0);
	expect_eq_ul(stats_of(mm).seq, 3);	/* A still open */
	mmn_invalidate_range_end(&a);

	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq(st.remove_waits, 0);
	expect_eq(x.calls, 0);
	expect_eq(y.calls, 1);
	expect_eq(invalidate(mm, 0, ULONG_MAX), 0);
	mmn_mm_release(mm);
	expect_eq(x.calls, 0);
	expect_eq(y.calls, 3);
	expect_eq(rec.n, 3);

	expect_eq(mmn_interval_notifier_remove(&y.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 14: removing an in-tree notifier during an odd period waits for
 * the last _end. Until then walks still reach it; afterwards never.
 */
TEST(s14_remove_full_exclusion_blocks)
{
	struct mmn_mm *mm;
	struct tsub x, y;
	struct mmn_range a, b;
	struct mmn_stats st;
	struct bg rm;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&x, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert_two_pass(&y, 2, mm, 0x1000, 0x1000), 0);
	rec_reset();

	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq_ul(stats_of(mm).seq, 3);

	bg_start(&rm, BG_REMOVE, &x.sub);
	expect_true(wait_until(stats_of(mm).remove_waits == 1, WAIT_MS));
	expect_false(bg_done(&rm));
	st = stats_of(mm);
	expect_eq_ul(st.deferred, 1);
	expect_eq(st.deferred_removes, 1);
	expect_eq_ul(st.notifiers, 2);
	expect_true(mmn_interval_notifier_test_in_tree(&x.sub));
	/* A second remove of the same notifier is refused, not queued twice. */
	expect_eq(mmn_interval_notifier_remove(&x.sub), -EINVAL);

	/* A region of the same period still reaches X. */
	mmn_range_init(&b, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x1800);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	mmn_invalidate_range_end(&b);
	expect_eq(rec.n, 6);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x2000, 3);
	expect_call(1, 2, PASS_START, 0x1000, 0x2000, 3);
	expect_call(2, 2, PASS_FINISH, 0x1000, 0x2000, 3);
	expect_call(3, 1, PASS_SINGLE, 0x1000, 0x1800, 3);
	expect_call(4, 2, PASS_START, 0x1000, 0x1800, 3);
	expect_call(5, 2, PASS_FINISH, 0x1000, 0x1800, 3);
	expect_false(wait_until(bg_done(&rm), BLOCKED_MS));

	mmn_invalidate_range_end(&a);
	expect_bg_finishes(&rm);
	expect_eq(rm.ret, 0);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.deferred, 0);
	expect_eq_ul(st.notifiers, 1);
	expect_eq(st.remove_waits, 1);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);

	/* Never called again. */
	rec_reset();
	expect_eq(invalidate(mm, 0x1000, 0x2000), 0);
	mmn_mm_release(mm);
	expect_eq(x.calls, 2);
	expect_eq(rec.n, 4);
	expect_call(0, 2, PASS_START, 0x1000, 0x2000, 5);
	expect_call(1, 2, PASS_FINISH, 0x1000, 0x2000, 5);
	expect_call(2, 2, PASS_START, 0, ULONG_MAX, 7);
	expect_call(3, 2, PASS_FINISH, 0, ULONG_MAX, 7);

	/* A notifier the open period never hit also waits for it (seq is odd). */
	assert_eq(tsub_insert(&x, 1, mm, 0x8000, 0x1000), 0);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	bg_start(&rm, BG_REMOVE, &x.sub);
	expect_true(wait_until(stats_of(mm).remove_waits == 2, WAIT_MS));
	expect_false(bg_done(&rm));
	mmn_invalidate_range_end(&a);
	expect_bg_finishes(&rm);
	expect_eq(rm.ret, 0);
	expect_eq(x.calls, 0);

	expect_eq(mmn_interval_notifier_remove(&y.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 15: insert then remove in the same odd period: the remove does not
 * wait, the tree never sees the notifier, and it is never called.
 */
TEST(s15_insert_remove_same_period)
{
	struct mmn_mm *mm;
	struct tsub w, x;
	struct mmn_range a;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&w, 1, mm, 0x1000, 0x1000), 0);
	rec_reset();

	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	assert_eq(tsub_insert(&x, 2, mm, 0x1000, 0x1000), 0);
	expect_eq_ul(stats_of(mm).deferred, 1);
	expect_eq_ul(stats_of(mm).notifiers, 2);

	expect_remove_nonblocking(mm, &x.sub);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.deferred, 0);
	expect_eq_ul(st.notifiers, 1);
	expect_eq(st.deferred_removes, 0);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	expect_eq(mmn_interval_notifier_remove(&x.sub), -EINVAL);
	expect_eq(invalidate(mm, 0x1000, 0x2000), 0);	/* joins the period */
	mmn_invalidate_range_end(&a);

	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.notifiers, 1);
	expect_false(mmn_interval_notifier_test_in_tree(&x.sub));
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	expect_eq(invalidate(mm, 0, ULONG_MAX), 0);
	mmn_mm_release(mm);
	expect_eq(x.calls, 0);
	expect_eq(w.calls, 4);

	/* The removed notifier may be inserted again, and then it is called. */
	expect_eq(mmn_interval_notifier_insert(&x.sub, mm, 0x1000, 0x1000, &tsub_single_ops), 0);
	expect_eq(invalidate(mm, 0x1000, 0x1001), 0);
	expect_eq(x.calls, 1);

	expect_eq(mmn_interval_notifier_remove(&w.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(s11_partial_exclusion_insert);
	RUN(s12_full_exclusion_insert);
	RUN(s13_remove_immediate);
	RUN(s14_remove_full_exclusion_blocks);
	RUN(s15_insert_remove_same_period);
	return test_report();
}
