// SPDX-License-Identifier: MIT
/*
 * Sequence wrap-around (docs/TESTING.md scenario 19; docs/kernel-map.md D10): with the
 * domain's sequence preset to ULONG_MAX-1 by the test hook, a period runs at
 * ULONG_MAX and ends at 0; idle inserts at 0 get ULONG_MAX. Hitting and
 * missing regions, deferred and direct inserts, read_begin and remove across
 * the wrap; I1-I3 hold throughout and every wait ends.
 */
#include "recorder.h"

TEST(s19_seq_wrap)
{
	struct mmn_mm *mm;
	struct tsub x, y, z, w, y2;
	struct mmn_range a, m, b;
	struct mmn_stats st;
	struct bg r, rm;

	assert_eq(mmn_mm_new(&mm), 0);
	/* The hook takes only even values, and only while idle. */
	expect_eq(mmn_mm_test_set_seq(mm, 3), -EBUSY);
	expect_eq(mmn_mm_test_set_seq(mm, ULONG_MAX), -EBUSY);
	assert_eq(mmn_mm_test_set_seq(mm, ULONG_MAX - 1), 0);
	expect_eq_ul(stats_of(mm).seq, ULONG_MAX - 1);

	/* Idle inserts at ULONG_MAX-1 get ULONG_MAX-2. */
	assert_eq(tsub_insert(&x, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&z, 3, mm, 0x9000, 0x1000), 0);
	expect_read_begin_nonblocking(mm, &x.sub, ULONG_MAX - 2);
	rec_reset();

	/* A missing region leaves the value alone. */
	mmn_range_init(&m, MMN_EVENT_UNMAP, 0, mm, 0x5000, 0x6000);
	expect_eq(mmn_invalidate_range_start(&m), 0);
	expect_eq_ul(stats_of(mm).seq, ULONG_MAX - 1);
	expect_invariants(mm);
	mmn_invalidate_range_end(&m);
	expect_eq_ul(stats_of(mm).seq, ULONG_MAX - 1);

	/* The period at ULONG_MAX. */
	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq(rec.n, 1);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x2000, ULONG_MAX);
	expect_eq_ul(rec.e[0].dom_seq, ULONG_MAX);
	st = stats_of(mm);
	expect_eq_ul(st.seq, ULONG_MAX);
	expect_eq_ul(st.active, 1);
	expect_invariants(mm);
	expect_eq(mmn_mm_test_set_seq(mm, 2), -EBUSY);	/* not while a region is open */
	expect_true(mmn_interval_read_retry(&x.sub, ULONG_MAX - 2));

	bg_start(&r, BG_READ_BEGIN, &x.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(bg_done(&r));
	/* Deferred insert: gets ULONG_MAX. */
	assert_eq(tsub_insert(&y, 2, mm, 0x1000, 0x1000), 0);
	expect_false(mmn_interval_notifier_test_in_tree(&y.sub));
	expect_false(mmn_interval_check_retry(&y.sub, ULONG_MAX));
	/* Insert and remove within the period: immediate. */
	assert_eq(tsub_insert(&y2, 5, mm, 0x1000, 0x1000), 0);
	expect_remove_nonblocking(mm, &y2.sub);
	/* Remove of an in-tree notifier waits. */
	bg_start(&rm, BG_REMOVE, &z.sub);
	expect_true(wait_until(stats_of(mm).remove_waits == 1, WAIT_MS));
	expect_false(bg_done(&rm));
	st = stats_of(mm);
	expect_eq_ul(st.deferred, 2);
	expect_invariants(mm);

	/* The end of the period wraps to 0. */
	mmn_invalidate_range_end(&a);
	expect_bg_finishes(&r);
	expect_bg_finishes(&rm);
	expect_eq_ul(r.seq, ULONG_MAX);
	expect_eq(rm.ret, 0);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 0);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.deferred, 0);
	expect_eq_ul(st.notifiers, 2);
	expect_true(mmn_interval_notifier_test_in_tree(&y.sub));
	expect_false(mmn_interval_notifier_test_in_tree(&z.sub));
	expect_false(mmn_interval_notifier_test_in_tree(&y2.sub));
	expect_invariants(mm);

	/* At 0: the notifiers' ULONG_MAX is not the domain's value, so no wait. */
	expect_read_begin_nonblocking(mm, &x.sub, ULONG_MAX);
	expect_read_begin_nonblocking(mm, &y.sub, ULONG_MAX);
	/* An idle insert at 0 gets ULONG_MAX (0 - 1). */
	assert_eq(tsub_insert(&w, 4, mm, 0x1800, 0x1000), 0);
	expect_read_begin_nonblocking(mm, &w.sub, ULONG_MAX);
	expect_false(mmn_interval_read_retry(&w.sub, ULONG_MAX));

	/* A missing region at 0 keeps 0. */
	expect_eq(mmn_invalidate_range_start(&m), 0);
	expect_eq_ul(stats_of(mm).seq, 0);
	expect_eq_ul(stats_of(mm).active, 1);
	mmn_invalidate_range_end(&m);
	expect_eq_ul(stats_of(mm).seq, 0);

	/* The next hitting period is 1 and ends at 2. */
	rec_reset();
	mmn_range_init(&b, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x3000);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	expect_eq(rec.n, 3);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x3000, 1);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x3000, 1);
	expect_call(2, 4, PASS_SINGLE, 0x1000, 0x3000, 1);
	expect_eq_ul(stats_of(mm).seq, 1);
	expect_true(mmn_interval_read_retry(&w.sub, ULONG_MAX));
	bg_start(&r, BG_READ_BEGIN, &w.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 2, WAIT_MS));
	expect_false(bg_done(&r));
	expect_invariants(mm);
	mmn_invalidate_range_end(&b);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, 1);
	expect_eq_ul(stats_of(mm).seq, 2);

	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&y.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&w.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * The wrap entered through an insert during partial exclusion (seq forced odd
 * to ULONG_MAX) and through the non-blockable failure path (the core closes
 * the period at ULONG_MAX).
 */
TEST(s19_seq_wrap_partial_and_nonblock)
{
	struct mmn_mm *mm;
	struct tsub v, f;
	struct mmn_range m;
	struct bg r;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_mm_test_set_seq(mm, ULONG_MAX - 1), 0);
	rec_reset();

	mmn_range_init(&m, MMN_EVENT_UNMAP, 0, mm, 0x5000, 0x6000);
	expect_eq(mmn_invalidate_range_start(&m), 0);
	assert_eq(tsub_insert(&v, 1, mm, 0x1000, 0x1000), 0);
	expect_true(mmn_interval_notifier_test_in_tree(&v.sub));
	expect_eq_ul(stats_of(mm).seq, ULONG_MAX);
	expect_false(mmn_interval_check_retry(&v.sub, ULONG_MAX));
	bg_start(&r, BG_READ_BEGIN, &v.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(bg_done(&r));
	expect_invariants(mm);
	mmn_invalidate_range_end(&m);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, ULONG_MAX);
	expect_eq_ul(stats_of(mm).seq, 0);
	expect_eq(rec.n, 0);

	/* Back to ULONG_MAX-1; a non-blockable failure closes the period at 0. */
	expect_eq(mmn_interval_notifier_remove(&v.sub), 0);
	assert_eq(mmn_mm_test_set_seq(mm, ULONG_MAX - 1), 0);
	assert_eq(tsub_insert_two_pass(&v, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&f, 2, mm, 0x2000, 0x1000), 0);
	f.ret_nonblock_false = true;
	expect_eq_ul(mmn_interval_read_begin(&v.sub), ULONG_MAX - 2);
	mmn_range_init(&m, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x3000);
	expect_eq(mmn_invalidate_range_start_nonblock(&m), -EAGAIN);
	expect_eq(rec.n, 3);
	expect_call(0, 1, PASS_START, 0x1000, 0x3000, ULONG_MAX);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x3000, ULONG_MAX);
	expect_call(2, 1, PASS_FINISH, 0x1000, 0x3000, ULONG_MAX);
	expect_eq_ul(stats_of(mm).seq, 0);
	expect_eq_ul(stats_of(mm).active, 0);
	expect_invariants(mm);
	expect_read_begin_nonblocking(mm, &v.sub, ULONG_MAX);

	expect_eq(mmn_interval_notifier_remove(&v.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&f.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(s19_seq_wrap);
	RUN(s19_seq_wrap_partial_and_nonblock);
	return test_report();
}
