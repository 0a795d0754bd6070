// SPDX-License-Identifier: MIT
/*
 * Insert from inside a callback, docs/TESTING.md scenario 37 (docs/kernel-map.md D4 and
 * "D6 scope"): the insert returns 0 at once and is deferred (not in the tree,
 * counted in stats.deferred), walks of the same period do not call it, it is
 * applied (in call order) when the last region of the period ends, and a
 * later invalidation calls it. A callback may also start a nested invalidation
 * of the same domain, which joins the period.
 */
#include "scenario_util.h"

#define NNEW 3

struct cb_sub {
	struct mmn_interval_notifier sub;
	int id;
	struct mmn_finish finish;
	bool two_pass;
	int inserts_left;	/* inserts to do on the next call */
	bool insert_in_finish;
	bool nest;		/* start a nested region on the next call */
	bool fail_nonblock;	/* return false on a non-blockable range */
	struct mmn_mm *mm;
	const struct mmn_interval_notifier_ops *ops;	/* for news[]: ops to insert with */
	int calls;
};

static struct cb_sub news[NNEW];
static int insert_rets[NNEW];
static int ninserted;

static void do_inserts(struct cb_sub *c)
{
	while (c->inserts_left > 0 && ninserted < NNEW) {
		struct cb_sub *n = &news[ninserted];

		/* Overlaps the range being invalidated right now. */
		insert_rets[ninserted++] = mmn_interval_notifier_insert(&n->sub, c->mm, 0x1000,
									0x1000, n->ops);
		c->inserts_left--;
	}
}

static void do_nested(struct cb_sub *c)
{
	struct mmn_range range;

	c->nest = false;
	mmn_range_init(&range, MMN_EVENT_CLEAR, 0, c->mm, 0x5000, 0x6000);
	if (mmn_invalidate_range_start(&range) == 0) {
		ev_add('n', c->id, &range, 0, NULL);
		mmn_invalidate_range_end(&range);
	}
}

static bool cb_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq, struct mmn_finish **finish)
{
	struct cb_sub *c = mmn_container_of(sub, struct cb_sub, sub);

	c->calls++;
	if (c->fail_nonblock && !mmn_range_blockable(range)) {
		ev_add('X', c->id, range, cur_seq, NULL);
		return false;
	}
	ev_add('S', c->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	if (!c->insert_in_finish)
		do_inserts(c);
	if (c->nest)
		do_nested(c);
	*finish = &c->finish;
	return true;
}

static void cb_finish(struct mmn_finish *finish)
{
	struct cb_sub *c = mmn_container_of(finish, struct cb_sub, finish);

	ev_add('F', c->id, NULL, 0, finish);
	if (c->insert_in_finish)
		do_inserts(c);
}

static bool cb_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq)
{
	struct cb_sub *c = mmn_container_of(sub, struct cb_sub, sub);

	c->calls++;
	if (c->fail_nonblock && !mmn_range_blockable(range)) {
		ev_add('X', c->id, range, cur_seq, NULL);
		return false;
	}
	ev_add('I', c->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	do_inserts(c);
	if (c->nest)
		do_nested(c);
	return true;
}

static const struct mmn_interval_notifier_ops two_ops = {
	.invalidate_start = cb_start,
	.invalidate_finish = cb_finish,
};
static const struct mmn_interval_notifier_ops one_ops = { .invalidate = cb_invalidate };

static void cb_init(struct cb_sub *c, int id, bool two_pass, struct mmn_mm *mm)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->two_pass = two_pass;
	c->mm = mm;
}

/* Prepare the notifiers a callback will insert (zeroed notifiers). */
static void news_init(struct mmn_mm *mm, const struct mmn_interval_notifier_ops *ops)
{
	ninserted = 0;
	for (int i = 0; i < NNEW; i++) {
		cb_init(&news[i], 11 + i, ops == &two_ops, mm);
		news[i].ops = ops;
		insert_rets[i] = 12345;
	}
}

struct reader {
	struct mmn_interval_notifier *sub;
	unsigned long seq;
	bool done;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->seq = mmn_interval_read_begin(r->sub);
	flag_set(&r->done, true);
	return NULL;
}

static void insert_from_callback(bool from_finish)
{
	struct cb_sub a;
	struct mmn_range r1, r2;
	struct mmn_stats st;
	struct mmn_mm *mm;
	struct reader rd = { 0 };
	pthread_t reader;
	unsigned long cur_seq;

	assert_eq(mmn_mm_new(&mm), 0);
	news_init(mm, &one_ops);
	cb_init(&a, 1, true, mm);
	a.inserts_left = NNEW;
	a.insert_in_finish = from_finish;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &two_ops), 0);

	ev_reset();
	mmn_range_init(&r1, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&r1), 0);
	expect_str_eq(ev_str(), "S1 F1");
	cur_seq = ev_log[0].cur_seq;
	expect_eq_ul(cur_seq, 3);
	for (int i = 0; i < NNEW; i++) {
		expect_eq(insert_rets[i], 0);
		expect_false(mmn_interval_notifier_test_in_tree(&news[i].sub));
	}
	st = stats_of(mm);
	expect_eq(st.deferred_inserts, NNEW);
	expect_eq_ul(st.deferred, NNEW);
	expect_eq_ul(st.notifiers, 1 + NNEW);

	/* A second region of the same period does not reach them either. */
	ev_reset();
	mmn_range_init(&r2, MMN_EVENT_UNMAP, 0, mm, 0x1800, 0x1900);
	assert_eq(mmn_invalidate_range_start(&r2), 0);
	expect_str_eq(ev_str(), "S1 F1");
	expect_eq_ul(ev_log[0].cur_seq, cur_seq);

	/* A fault on a new notifier waits for the period. */
	rd.sub = &news[0].sub;
	assert_eq(pthread_create(&reader, NULL, reader_main, &rd), 0);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(flag_get(&rd.done));

	mmn_invalidate_range_end(&r2);
	st = stats_of(mm);
	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.deferred, NNEW);
	expect_false(mmn_interval_notifier_test_in_tree(&news[0].sub));
	expect_false(flag_get(&rd.done));

	/* The last _end applies them. */
	mmn_invalidate_range_end(&r1);
	st = stats_of(mm);
	expect_eq_ul(st.seq, cur_seq + 1);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.deferred, 0);
	for (int i = 0; i < NNEW; i++)
		expect_true(mmn_interval_notifier_test_in_tree(&news[i].sub));
	expect_true(wait_until(flag_get(&rd.done), WAIT_MS));
	pthread_join(reader, NULL);
	expect_eq_ul(rd.seq, cur_seq);
	expect_false(mmn_interval_read_retry(&news[0].sub, rd.seq));
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);

	/* A later invalidation calls them, in insertion order (D4). */
	ev_reset();
	mmn_range_init(&r1, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&r1), 0);
	mmn_invalidate_range_end(&r1);
	expect_str_eq(ev_str(), "S1 I11 I12 I13 F1");
	for (int i = 0; i < NNEW; i++)
		expect_eq(mmn_interval_notifier_remove(&news[i].sub), 0);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	destroy_mm(mm);
}

TEST(s37_insert_from_first_pass)
{
	insert_from_callback(false);
}

TEST(s37_insert_from_finish)
{
	insert_from_callback(true);
}

/* Single-pass callback inserting two-pass notifiers. */
TEST(s37_insert_from_single_pass)
{
	struct cb_sub a;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	news_init(mm, &two_ops);
	cb_init(&a, 1, false, mm);
	a.inserts_left = NNEW;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &one_ops), 0);
	ev_reset();
	{
		struct mmn_range r;

		mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
		assert_eq(mmn_invalidate_range_start(&r), 0);
		expect_str_eq(ev_str(), "I1");
		mmn_invalidate_range_end(&r);
		ev_reset();
		assert_eq(mmn_invalidate_range_start(&r), 0);
		mmn_invalidate_range_end(&r);
		expect_str_eq(ev_str(), "I1 S11 S12 S13 F11 F12 F13");
	}
	for (int i = 0; i < NNEW; i++) {
		expect_eq(insert_rets[i], 0);
		expect_eq(mmn_interval_notifier_remove(&news[i].sub), 0);
	}
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	destroy_mm(mm);
}

/*
 * The deferred insert is also applied when the core closes the region
 * itself: a non-blockable walk that fails with -EAGAIN after the insert.
 */
TEST(s37_insert_from_callback_then_eagain)
{
	struct cb_sub a, b;
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	news_init(mm, &one_ops);
	cb_init(&a, 1, true, mm);
	cb_init(&b, 2, false, mm);
	a.inserts_left = 1;
	b.fail_nonblock = true;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &two_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x1800, 0x1000, &one_ops), 0);
	ev_reset();
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x3000);
	expect_eq(mmn_invalidate_range_start_nonblock(&r), -EAGAIN);
	expect_str_eq(ev_str(), "S1 X2 F1");
	expect_eq(insert_rets[0], 0);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.deferred, 0);
	expect_true(mmn_interval_notifier_test_in_tree(&news[0].sub));
	ev_reset();
	assert_eq(mmn_invalidate_range_start(&r), 0);
	mmn_invalidate_range_end(&r);
	expect_str_eq(ev_str(), "S1 I11 I2 F1");
	expect_eq(mmn_interval_notifier_remove(&news[0].sub), 0);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	destroy_mm(mm);
}

/*
 * A callback starts a nested invalidation of the same domain: it joins the
 * period (same cur_seq), runs its own finish pass inside the nested start
 * call (only its own finishes), and the period ends with the outer region.
 */
TEST(s37_nested_invalidation_joins_period)
{
	struct cb_sub a, b, c;
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	cb_init(&a, 1, true, mm);
	cb_init(&b, 2, true, mm);
	cb_init(&c, 3, true, mm);
	a.nest = true;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &two_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x2000, 0x1000, &two_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&c.sub, mm, 0x5000, 0x1000, &two_ops), 0);
	ev_reset();
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x3000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	expect_str_eq(ev_str(), "S1 S3 F3 n1 S2 F1 F2");
	for (int i = 0; i < ev_count(); i++)
		if (ev_log[i].kind == 'S')
			expect_eq_ul(ev_log[i].cur_seq, 3);
	st = stats_of(mm);
	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.seq, 3);
	mmn_invalidate_range_end(&r);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq(st.invalidations, 2);
	expect_eq(st.finishes, 3);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	destroy_mm(mm);
}

int main(void)
{
	RUN(s37_insert_from_first_pass);
	RUN(s37_insert_from_finish);
	RUN(s37_insert_from_single_pass);
	RUN(s37_insert_from_callback_then_eagain);
	RUN(s37_nested_invalidation_joins_period);
	return test_report();
}
