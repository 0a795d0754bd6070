// SPDX-License-Identifier: MIT
/*
 * Validation and geometry (docs/TESTING.md scenarios 1-6, adapted by D1, D2
 * and D7): insert errors and their order, the closed-interval / half-open-range
 * boundaries, empty ranges, the interval at ULONG_MAX, and walk order.
 */
#include "recorder.h"

static const struct mmn_interval_notifier zero_sub;

/* A failed insert changes nothing: not the notifier, not the domain. */
#define expect_insert_fails(sub_, mm_, start_, len_, ops_, err_)                \
	do {                                                                    \
		struct mmn_stats before_ = stats_of(mm_);                       \
		expect_eq(mmn_interval_notifier_insert((sub_), (mm_), (start_), (len_), (ops_)), \
			  (err_));                                              \
		expect_eq(memcmp((sub_), &zero_sub, sizeof(zero_sub)), 0);      \
		expect_false(mmn_interval_notifier_test_in_tree(sub_));         \
		expect_eq_ul(stats_of(mm_).notifiers, before_.notifiers);       \
		expect_eq_ul(stats_of(mm_).seq, before_.seq);                   \
	} while (0)

TEST(s01_insert_geometry)
{
	struct mmn_mm *mm;
	struct mmn_interval_notifier sub = { 0 };
	struct tsub top, all, almost;

	assert_eq(mmn_mm_new(&mm), 0);

	/* D1: length 0 is -EINVAL (the kernel says -EOVERFLOW). */
	expect_insert_fails(&sub, mm, 0x1000, 0, &tsub_single_ops, -EINVAL);
	expect_insert_fails(&sub, mm, 0, 0, &tsub_single_ops, -EINVAL);
	/* start + length - 1 wraps. */
	expect_insert_fails(&sub, mm, ULONG_MAX, 2, &tsub_single_ops, -EOVERFLOW);
	expect_insert_fails(&sub, mm, 2, ULONG_MAX, &tsub_single_ops, -EOVERFLOW);
	expect_insert_fails(&sub, mm, 0x1000, ULONG_MAX, &tsub_single_ops, -EOVERFLOW);
	expect_insert_fails(&sub, mm, ULONG_MAX - 0xfff, 0x1001, &tsub_single_ops, -EOVERFLOW);
	/* Nothing was inserted: the failed notifier cannot be removed. */
	expect_eq(mmn_interval_notifier_remove(&sub), -EINVAL);
	expect_eq_ul(stats_of(mm).notifiers, 0);
	expect_eq(mmn_mm_destroy(mm), 0);	/* no reference left behind */

	assert_eq(mmn_mm_new(&mm), 0);
	rec_reset();
	/* The last byte of the address space, alone. */
	expect_eq(tsub_insert(&top, 1, mm, ULONG_MAX, 1), 0);
	expect_eq_ul(mmn_interval_notifier_start(&top.sub), ULONG_MAX);
	expect_eq_ul(mmn_interval_notifier_last(&top.sub), ULONG_MAX);
	/* Everything but the last byte. */
	expect_eq(tsub_insert(&all, 2, mm, 0, ULONG_MAX), 0);
	expect_eq_ul(mmn_interval_notifier_start(&all.sub), 0);
	expect_eq_ul(mmn_interval_notifier_last(&all.sub), ULONG_MAX - 1);
	/* Exactly up to the last byte. */
	expect_eq(tsub_insert(&almost, 3, mm, 1, ULONG_MAX), 0);
	expect_eq_ul(mmn_interval_notifier_last(&almost.sub), ULONG_MAX);
	expect_true(mmn_interval_notifier_test_in_tree(&top.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&all.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&almost.sub));
	expect_eq_ul(stats_of(mm).notifiers, 3);
	expect_eq_ptr(mmn_interval_notifier_mm(&all.sub), mm);

	/* The failed notifier from above can still be inserted. */
	expect_eq(mmn_interval_notifier_insert(&sub, mm, 0x1000, 0x1000, &tsub_single_ops), 0);
	expect_eq_ul(stats_of(mm).notifiers, 4);
	expect_eq(mmn_interval_notifier_remove(&sub), 0);

	/* [ULONG_MAX-2, ULONG_MAX) reaches `all` (its last byte) and `almost`. */
	expect_eq(invalidate(mm, ULONG_MAX - 2, ULONG_MAX), 0);
	expect_eq(rec.n, 2);
	expect_call(0, 2, PASS_SINGLE, ULONG_MAX - 2, ULONG_MAX, 3);	/* start 0 */
	expect_call(1, 3, PASS_SINGLE, ULONG_MAX - 2, ULONG_MAX, 3);	/* start 1 */
	expect_eq(top.calls, 0);

	expect_eq(mmn_mm_destroy(mm), -EBUSY);
	expect_eq(mmn_interval_notifier_remove(&top.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&all.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&almost.sub), 0);
	expect_quiescent(mm);
	expect_eq_ul(stats_of(mm).notifiers, 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 2 adapted (D2, D7: no mm_users): insert errors come in the order
 * NULL arguments, ops, length 0 (all -EINVAL), wrap (-EOVERFLOW), then
 * "already inserted" (-EBUSY).
 */
TEST(s02_insert_error_order)
{
	static const struct mmn_interval_notifier_ops none = { 0 };
	static const struct mmn_interval_notifier_ops both = {
		.invalidate = tsub_invalidate,
		.invalidate_start = tsub_invalidate_start,
		.invalidate_finish = tsub_invalidate_finish,
	};
	static const struct mmn_interval_notifier_ops single_and_start = {
		.invalidate = tsub_invalidate,
		.invalidate_start = tsub_invalidate_start,
	};
	static const struct mmn_interval_notifier_ops single_and_finish = {
		.invalidate = tsub_invalidate,
		.invalidate_finish = tsub_invalidate_finish,
	};
	static const struct mmn_interval_notifier_ops start_only = {
		.invalidate_start = tsub_invalidate_start,
	};
	static const struct mmn_interval_notifier_ops finish_only = {
		.invalidate_finish = tsub_invalidate_finish,
	};
	const struct mmn_interval_notifier_ops *bad_ops[] = {
		&none, &both, &single_and_start, &single_and_finish, &start_only, &finish_only,
	};
	struct mmn_interval_notifier sub = { 0 };
	struct tsub in;
	struct mmn_mm *mm;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	st = stats_of(mm);

	/* NULL arguments, each alone. */
	expect_eq(mmn_interval_notifier_insert(NULL, mm, 0x1000, 0x1000, &tsub_single_ops),
		  -EINVAL);
	expect_insert_fails(&sub, NULL, 0x1000, 0x1000, &tsub_single_ops, -EINVAL);
	expect_insert_fails(&sub, mm, 0x1000, 0x1000, NULL, -EINVAL);
	/* Bad ops tables (D2). */
	for (size_t i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++)
		expect_insert_fails(&sub, mm, 0x1000, 0x1000, bad_ops[i], -EINVAL);

	/* Order: every earlier error wins over every later one. */
	expect_eq(mmn_interval_notifier_insert(NULL, mm, ULONG_MAX, 2, &none), -EINVAL);
	expect_insert_fails(&sub, NULL, ULONG_MAX, 2, &tsub_single_ops, -EINVAL);
	expect_insert_fails(&sub, mm, ULONG_MAX, 2, NULL, -EINVAL);
	expect_insert_fails(&sub, mm, 0x1000, 0, NULL, -EINVAL);
	expect_insert_fails(&sub, mm, ULONG_MAX, 2, &both, -EINVAL);
	expect_insert_fails(&sub, mm, ULONG_MAX, 2, &start_only, -EINVAL);
	/* Length 0 before wrap: start + (0 - 1) would look like a wrap. */
	expect_insert_fails(&sub, mm, ULONG_MAX, 0, &tsub_single_ops, -EINVAL);
	expect_insert_fails(&sub, mm, 0x1000, 0, &tsub_two_pass_ops, -EINVAL);
	/* Wrap alone. */
	expect_insert_fails(&sub, mm, ULONG_MAX, 2, &tsub_two_pass_ops, -EOVERFLOW);

	/* Then "already inserted", only once everything else is right. */
	assert_eq(tsub_insert(&in, 1, mm, 0x1000, 0x1000), 0);
	expect_eq(mmn_interval_notifier_insert(&in.sub, mm, 0x1000, 0, &tsub_single_ops), -EINVAL);
	expect_eq(mmn_interval_notifier_insert(&in.sub, mm, 0x1000, 0x1000, NULL), -EINVAL);
	expect_eq(mmn_interval_notifier_insert(&in.sub, mm, ULONG_MAX, 2, &tsub_single_ops),
		  -EOVERFLOW);
	expect_eq(mmn_interval_notifier_insert(&in.sub, mm, 0x5000, 0x1000, &tsub_single_ops),
		  -EBUSY);
	/* The refused inserts left the inserted notifier as it was. */
	expect_eq_ul(mmn_interval_notifier_start(&in.sub), 0x1000);
	expect_eq_ul(mmn_interval_notifier_last(&in.sub), 0x1fff);
	expect_true(mmn_interval_notifier_test_in_tree(&in.sub));
	expect_eq_ul(stats_of(mm).notifiers, 1);
	rec_reset();
	expect_eq(invalidate(mm, 0x1000, 0x1001), 0);
	expect_eq(rec.n, 1);
	expect_eq(invalidate(mm, 0x5000, 0x6000), 0);
	expect_eq(rec.n, 1);
	expect_eq(mmn_interval_notifier_remove(&in.sub), 0);

	/* "No reference leaked": the count is back and the domain can go. */
	expect_eq_ul(stats_of(mm).notifiers, st.notifiers);
	expect_eq(stats_of(mm).warnings, 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Interval [0x1000, 0x1fff] against ranges [start, end). */
TEST(s03_boundaries)
{
	static const struct {
		unsigned long start, end;
		bool hit;
	} cases[] = {
		{ 0x2000, 0x3000, false },	/* starts just past last */
		{ 0, 0x1000, false },		/* ends just before start */
		{ 0x2000, ULONG_MAX, false },
		{ 0, 0x1001, true },		/* first byte only */
		{ 0x1fff, 0x2000, true },	/* last byte only */
		{ 0x1000, 0x2000, true },	/* exactly */
		{ 0, ULONG_MAX, true },		/* everything */
		{ 0x1800, 0x1801, true },	/* one byte inside */
		{ 0xfff, 0x1000, false },	/* one byte just before */
	};
	struct mmn_mm *mm;
	struct tsub t;
	unsigned long seq = 2;
	uint64_t hits = 0;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&t, 1, mm, 0x1000, 0x1000), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mmn_range range;
		struct mmn_stats st;
		int failures = test_failures;

		rec_reset();
		mmn_range_init(&range, MMN_EVENT_CLEAR, 0, mm, cases[i].start, cases[i].end);
		expect_eq(mmn_invalidate_range_start(&range), 0);
		st = stats_of(mm);
		expect_eq_ul(st.active, 1);
		expect_eq(rec.n, cases[i].hit ? 1 : 0);
		if (cases[i].hit) {
			expect_call(0, 1, PASS_SINGLE, cases[i].start, cases[i].end, seq + 1);
			expect_eq_ptr(rec.e[0].range, &range);
			expect_eq(rec.e[0].event, MMN_EVENT_CLEAR);
			expect_true(rec.e[0].blockable);
			expect_eq_ul(rec.e[0].dom_seq, seq + 1);
			expect_eq_ul(st.seq, seq + 1);
			hits++;
		} else {
			expect_eq_ul(st.seq, seq);
		}
		mmn_invalidate_range_end(&range);
		if (cases[i].hit)
			seq += 2;
		st = stats_of(mm);
		expect_eq_ul(st.seq, seq);
		expect_eq_ul(st.active, 0);
		expect_eq(st.invalidations, i + 1);
		expect_eq(st.invalidations_hit, hits);
		expect_eq(st.notifiers_called, hits);
		if (test_failures != failures)
			fprintf(stderr, "    (case %zu: [%#lx, %#lx))\n", i, cases[i].start,
				cases[i].end);
	}
	expect_eq(t.calls, 4 + 1);
	expect_eq(mmn_interval_notifier_remove(&t.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* D1: a range with start >= end is -EINVAL for both start calls; nothing recorded. */
TEST(s04_empty_ranges)
{
	static const struct {
		unsigned long start, end;
	} cases[] = {
		{ 0, 0 },			/* the kernel would match everything */
		{ 0x1000, 0x1000 },
		{ 0x1800, 0x1800 },		/* the kernel would call the notifier */
		{ 0x2000, 0x2000 },
		{ 0x2000, 0x1000 },		/* reversed */
		{ ULONG_MAX, ULONG_MAX },
		{ ULONG_MAX, 0 },
	};
	struct mmn_mm *mm;
	struct mmn_range range;
	struct tsub t, everything;
	struct mmn_stats before, st;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&t, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert_two_pass(&everything, 2, mm, 0, ULONG_MAX), 0);
	rec_reset();
	before = stats_of(mm);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, cases[i].start, cases[i].end);
		int ret = mmn_invalidate_range_start(&range);

		expect_eq(ret, -EINVAL);
		if (ret == 0)
			mmn_invalidate_range_end(&range);	/* keep the domain usable */
		ret = mmn_invalidate_range_start_nonblock(&range);
		expect_eq(ret, -EINVAL);
		if (ret == 0)
			mmn_invalidate_range_end(&range);
		expect_eq_ul(range.start, cases[i].start);
		expect_eq_ul(range.end, cases[i].end);
	}
	/* NULL range or domain. */
	expect_eq(mmn_invalidate_range_start(NULL), -EINVAL);
	expect_eq(mmn_invalidate_range_start_nonblock(NULL), -EINVAL);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, NULL, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&range), -EINVAL);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), -EINVAL);

	/* Nothing recorded: no call, no region, no counter, no sequence change. */
	st = stats_of(mm);
	expect_eq(rec.n, 0);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, before.seq);
	expect_eq(st.invalidations, before.invalidations);
	expect_eq(st.invalidations_hit, before.invalidations_hit);
	expect_eq(st.notifiers_called, 0);
	expect_eq(st.nonblock_failures, 0);
	expect_eq(st.warnings, 0);

	/* The domain is unharmed: a real range works as usual afterwards. */
	expect_eq(invalidate(mm, 0x1fff, 0x2000), 0);
	expect_eq(rec.n, 3);
	expect_call(0, 2, PASS_START, 0x1fff, 0x2000, 3);
	expect_call(1, 1, PASS_SINGLE, 0x1fff, 0x2000, 3);
	expect_call(2, 2, PASS_FINISH, 0x1fff, 0x2000, 3);
	expect_eq_ul(stats_of(mm).seq, 4);
	expect_eq(stats_of(mm).invalidations, 1);

	expect_eq(mmn_interval_notifier_remove(&t.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&everything.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* An interval at ULONG_MAX is never invalidated, not even by release. */
TEST(s05_interval_at_ulong_max)
{
	struct mmn_mm *mm;
	struct tsub top, below, both;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&top, 1, mm, ULONG_MAX, 1), 0);
	/* Controls: the byte below it, and the two last bytes together. */
	assert_eq(tsub_insert(&below, 2, mm, ULONG_MAX - 1, 1), 0);
	assert_eq(tsub_insert_two_pass(&both, 3, mm, ULONG_MAX - 1, 2), 0);
	rec_reset();

	expect_eq(invalidate(mm, ULONG_MAX - 1, ULONG_MAX), 0);
	expect_eq(invalidate(mm, 0, ULONG_MAX), 0);
	expect_eq(invalidate(mm, ULONG_MAX - 0x1000, ULONG_MAX), 0);
	mmn_mm_release(mm);

	expect_eq(top.calls, 0);
	expect_eq(below.calls, 4);
	expect_eq(both.calls, 4);
	expect_eq(both.finishes, 4);
	expect_eq(rec.n, 12);
	/* Walk order: equal starts in insertion order; each finish after its walk. */
	expect_call(0, 2, PASS_SINGLE, ULONG_MAX - 1, ULONG_MAX, 3);
	expect_call(1, 3, PASS_START, ULONG_MAX - 1, ULONG_MAX, 3);
	expect_call(2, 3, PASS_FINISH, ULONG_MAX - 1, ULONG_MAX, 3);
	expect_call(3, 2, PASS_SINGLE, 0, ULONG_MAX, 5);
	expect_call(9, 2, PASS_SINGLE, 0, ULONG_MAX, 9);	/* release */
	expect_eq(rec.e[9].event, MMN_EVENT_RELEASE);
	expect_true(rec.e[9].blockable);
	expect_call(10, 3, PASS_START, 0, ULONG_MAX, 9);
	expect_call(11, 3, PASS_FINISH, 0, ULONG_MAX, 9);

	st = stats_of(mm);
	expect_eq(st.invalidations, 4);
	expect_eq(st.invalidations_hit, 4);
	expect_eq(st.releases, 1);
	expect_eq_ul(st.seq, 10);
	expect_eq(st.notifiers_called, 8);
	expect_eq(st.finishes, 4);

	/* With the top notifier alone, nothing is hit and the seq stays put. */
	expect_eq(mmn_interval_notifier_remove(&below.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&both.sub), 0);
	expect_eq(invalidate(mm, 0, ULONG_MAX), 0);
	mmn_mm_release(mm);
	st = stats_of(mm);
	expect_eq(st.invalidations, 6);
	expect_eq(st.invalidations_hit, 4);
	expect_eq(st.releases, 2);
	expect_eq_ul(st.seq, 10);
	expect_eq(top.calls, 0);
	expect_true(mmn_interval_notifier_test_in_tree(&top.sub));

	expect_eq(mmn_interval_notifier_remove(&top.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Several overlapping intervals, one range: each once, ascending start. */
TEST(s06_overlap_order)
{
	enum { A = 1, B, C, D, E, F };
	struct mmn_mm *mm;
	struct tsub a, b, c, d, e, f;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	/* Inserted out of address order; B, D, E share a start. */
	assert_eq(tsub_insert(&a, A, mm, 0x3000, 0x1000), 0);
	assert_eq(tsub_insert(&b, B, mm, 0x1000, 0x4000), 0);
	assert_eq(tsub_insert_two_pass(&c, C, mm, 0x2000, 0x100), 0);
	assert_eq(tsub_insert(&d, D, mm, 0x1000, 0x800), 0);
	assert_eq(tsub_insert_two_pass(&e, E, mm, 0x1000, 0x10000), 0);
	assert_eq(tsub_insert(&f, F, mm, 0x8000, 0x1000), 0);	/* outside */
	rec_reset();

	expect_eq(invalidate(mm, 0x1000, 0x4000), 0);
	expect_eq(rec.n, 7);
	expect_call(0, B, PASS_SINGLE, 0x1000, 0x4000, 3);
	expect_call(1, D, PASS_SINGLE, 0x1000, 0x4000, 3);
	expect_call(2, E, PASS_START, 0x1000, 0x4000, 3);
	expect_call(3, C, PASS_START, 0x1000, 0x4000, 3);
	expect_call(4, A, PASS_SINGLE, 0x1000, 0x4000, 3);
	expect_call(5, E, PASS_FINISH, 0x1000, 0x4000, 3);
	expect_call(6, C, PASS_FINISH, 0x1000, 0x4000, 3);
	expect_eq(f.calls, 0);
	for (int i = 0; i < rec.n; i++)
		expect_true(pthread_equal(rec.e[i].thread, pthread_self()));

	/* A re-inserted B goes after D and E, which share its start. */
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x1000, 0x4000, &tsub_single_ops), 0);
	rec_reset();
	expect_eq(invalidate(mm, 0x1000, 0x4000), 0);
	expect_eq(rec.n, 7);
	expect_call(0, D, PASS_SINGLE, 0x1000, 0x4000, 5);
	expect_call(1, E, PASS_START, 0x1000, 0x4000, 5);
	expect_call(2, B, PASS_SINGLE, 0x1000, 0x4000, 5);
	expect_call(3, C, PASS_START, 0x1000, 0x4000, 5);
	expect_call(4, A, PASS_SINGLE, 0x1000, 0x4000, 5);
	expect_call(5, E, PASS_FINISH, 0x1000, 0x4000, 5);
	expect_call(6, C, PASS_FINISH, 0x1000, 0x4000, 5);

	/* A range inside E and B only (D ends at 0x17ff, C starts at 0x2000). */
	rec_reset();
	expect_eq(invalidate(mm, 0x1800, 0x2000), 0);
	expect_eq(rec.n, 3);
	expect_call(0, E, PASS_START, 0x1800, 0x2000, 7);
	expect_call(1, B, PASS_SINGLE, 0x1800, 0x2000, 7);
	expect_call(2, E, PASS_FINISH, 0x1800, 0x2000, 7);

	st = stats_of(mm);
	expect_eq(st.notifiers_called, 5 + 5 + 2);
	expect_eq(st.finishes, 2 + 2 + 1);
	expect_eq_ul(st.seq, 8);

	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&d.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&e.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&f.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Many intervals in a shuffled insert order: the walk is still sorted by start. */
TEST(s06_overlap_order_many)
{
	enum { N = 97 };
	static struct tsub subs[N];
	int order[N];
	struct test_rng rng;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	test_rng_seed(&rng, 6);
	for (int i = 0; i < N; i++)
		order[i] = i;
	for (int i = N - 1; i > 0; i--) {
		int j = (int)test_rng_below(&rng, (uint64_t)i + 1), tmp = order[i];

		order[i] = order[j];
		order[j] = tmp;
	}
	/* Sub i covers [0x10000 + i*0x100, +0x1000): all overlap [0x10000, 0x20000). */
	for (int k = 0; k < N; k++) {
		int i = order[k];

		assert_eq(tsub_insert(&subs[i], i, mm, 0x10000 + (unsigned long)i * 0x100, 0x1000),
			  0);
	}
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	rec_reset();
	expect_eq(invalidate(mm, 0x10000, 0x20000), 0);
	expect_eq(rec.n, N);
	for (int i = 0; i < N && i < rec.n; i++)
		expect_call(i, i, PASS_SINGLE, 0x10000, 0x20000, 3);
	for (int i = 0; i < N; i++) {
		expect_eq(subs[i].calls, 1);
		expect_eq(mmn_interval_notifier_remove(&subs[i].sub), 0);
	}
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(s01_insert_geometry);
	RUN(s02_insert_error_order);
	RUN(s03_boundaries);
	RUN(s04_empty_ranges);
	RUN(s05_interval_at_ulong_max);
	RUN(s06_overlap_order);
	RUN(s06_overlap_order_many);
	return test_report();
}
