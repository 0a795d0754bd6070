// SPDX-License-Identifier: MIT
/*
 * Two-pass invalidation (docs/TESTING.md scenarios 25-31), as docs/kernel-map.md D2/D3
 * adapt them: the finish pass runs in walk order after every first pass of
 * the walk and before the start call returns (also on the -EAGAIN path),
 * *finish is NULL on entry, finish->notifier is set by the core, a finish may
 * free its container, and an ops table that is not exactly "invalidate" or
 * "invalidate_start + invalidate_finish" is refused with -EINVAL.
 */
#include "scenario_util.h"

/* ---- test drivers ----------------------------------------------------------- */

enum tp_mode {
	TP_FINISH,		/* true, embedded finish */
	TP_NULL,		/* true, *finish left NULL (work done in pass 1) */
	TP_FALSE_IF_NONBLOCK,	/* false on a non-blockable range (with a finish set) */
	TP_ALLOC,		/* true, a malloc'd container that finish frees */
};

struct tp_sub {
	struct mmn_interval_notifier sub;
	int id;
	enum tp_mode mode;
	struct mmn_finish finish;
	struct mmn_mm *mm;
	int starts, finishes;
	int finish_not_null_on_entry;	/* *finish != NULL when start was entered */
	unsigned long start_seq;	/* cur_seq seen by start */
	unsigned long finish_domain_seq;	/* domain seq seen by finish */
	bool finish_in_callback;	/* mmn_test_in_callback() inside finish */
	int leaked;			/* containers the driver still owns */
};

struct tp_box {
	struct mmn_finish finish;
	struct tp_sub *owner;
	unsigned long start, end;
	char payload[48];
};

static struct tp_sub *to_tp(struct mmn_interval_notifier *sub)
{
	return mmn_container_of(sub, struct tp_sub, sub);
}

static bool tp_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq, struct mmn_finish **finish)
{
	struct tp_sub *t = to_tp(sub);

	if (*finish)
		t->finish_not_null_on_entry++;
	t->starts++;
	t->start_seq = cur_seq;
	ev_add('S', t->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	switch (t->mode) {
	case TP_FINISH:
		/* Poison what the core owns: it must overwrite both. */
		t->finish.next = (struct mmn_finish *)(uintptr_t)0xdead0001;
		t->finish.notifier = (struct mmn_interval_notifier *)(uintptr_t)0xdead0002;
		*finish = &t->finish;
		return true;
	case TP_NULL:
		return true;
	case TP_FALSE_IF_NONBLOCK: {
		struct tp_box *box = malloc(sizeof(*box));

		assert_true(box != NULL);
		box->owner = t;
		box->finish.notifier = (struct mmn_interval_notifier *)(uintptr_t)0xdead0003;
		*finish = &box->finish;
		if (!mmn_range_blockable(range)) {
			/* False: *finish is ignored, so the driver frees it itself. */
			free(box);
			return false;
		}
		t->leaked++;
		return true;
	}
	case TP_ALLOC: {
		struct tp_box *box = malloc(sizeof(*box));

		assert_true(box != NULL);
		box->owner = t;
		box->start = range->start;
		box->end = range->end;
		box->finish.next = (struct mmn_finish *)(uintptr_t)0xdead0004;
		box->finish.notifier = (struct mmn_interval_notifier *)(uintptr_t)0xdead0005;
		memset(box->payload, 0x5a, sizeof(box->payload));
		t->leaked++;
		*finish = &box->finish;
		return true;
	}
	}
	return true;
}

static void tp_finish(struct mmn_finish *finish)
{
	struct tp_sub *t = to_tp(finish->notifier);
	struct mmn_stats st;

	t->finishes++;
	ev_add('F', t->id, NULL, 0, finish);
	if (t->mm && !mmn_mm_get_stats(t->mm, &st))
		t->finish_domain_seq = st.seq;
	t->finish_in_callback = t->mm && mmn_test_in_callback(t->mm);
	if (t->mode == TP_ALLOC || t->mode == TP_FALSE_IF_NONBLOCK) {
		struct tp_box *box = mmn_container_of(finish, struct tp_box, finish);

		expect_eq_ptr(box->owner, t);
		t->leaked--;
		/* Scribble before freeing: a core that reads the link later sees junk. */
		memset(box, 0xa5, sizeof(*box));
		free(box);
	}
}

static const struct mmn_interval_notifier_ops tp_ops = {
	.invalidate_start = tp_start,
	.invalidate_finish = tp_finish,
};

struct sp_sub {
	struct mmn_interval_notifier sub;
	int id;
	int calls;
	bool ret;
};

static bool sp_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq)
{
	struct sp_sub *s = mmn_container_of(sub, struct sp_sub, sub);

	s->calls++;
	ev_add('I', s->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	return s->ret;
}

static const struct mmn_interval_notifier_ops sp_ops = { .invalidate = sp_invalidate };

static void tp_init(struct tp_sub *t, int id, enum tp_mode mode, struct mmn_mm *mm)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->mode = mode;
	t->mm = mm;
}

static void sp_init(struct sp_sub *s, int id)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->ret = true;
}

/* Open and close one region over [start, end); returns the start call's result. */
static int invalidate(struct mmn_mm *mm, unsigned long start, unsigned long end,
		      bool blockable)
{
	struct mmn_range range;
	int ret;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, start, end);
	ret = blockable ? mmn_invalidate_range_start(&range) :
			  mmn_invalidate_range_start_nonblock(&range);
	if (ret == 0)
		mmn_invalidate_range_end(&range);
	return ret;
}

/* ---- scenarios ---------------------------------------------------------------- */

/*
 * 25: registered 0x3000, 0x1000, 0x2000, all two-pass: starts in address
 * order, then finishes in the same order, every finish after every start, all
 * before the start call returns and while the period is still odd.
 */
TEST(s25_finish_order)
{
	static const unsigned long at[3] = { 0x3000, 0x1000, 0x2000 };
	static const int ids[3] = { 3, 1, 2 };
	struct tp_sub t[3];
	struct mmn_range range;
	struct mmn_stats st;
	struct mmn_mm *mm;
	unsigned long cur_seq;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < 3; i++) {
		tp_init(&t[i], ids[i], TP_FINISH, mm);
		assert_eq(mmn_interval_notifier_insert(&t[i].sub, mm, at[i], 0x1000, &tp_ops), 0);
	}
	ev_reset();
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0, 0x4000);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	/* Everything, finishes included, happened inside the start call. */
	expect_str_eq(ev_str(), "S1 S2 S3 F1 F2 F3");
	st = stats_of(mm);
	cur_seq = st.seq;
	expect_eq_ul(cur_seq, 3);
	expect_eq_ul(st.active, 1);
	expect_eq(st.notifiers_called, 3);
	expect_eq(st.finishes, 3);
	for (int i = 0; i < 3; i++) {
		expect_eq(t[i].starts, 1);
		expect_eq(t[i].finishes, 1);
		expect_eq_ul(t[i].start_seq, cur_seq);
		/* The finish ran while the period was odd and inside a callback. */
		expect_eq_ul(t[i].finish_domain_seq, cur_seq);
		expect_true(t[i].finish_in_callback);
		expect_eq_ptr(t[i].finish.notifier, &t[i].sub);
	}
	for (int i = 0; i < 6; i++)
		expect_true(pthread_equal(ev_log[i].thread, pthread_self()));
	/* Each finish got the identical pointer its start returned. */
	expect_eq_ptr(ev_log[3].ptr, &t[1].finish);
	expect_eq_ptr(ev_log[4].ptr, &t[2].finish);
	expect_eq_ptr(ev_log[5].ptr, &t[0].finish);
	expect_false(mmn_test_in_callback(mm));

	/* Nothing runs at _end. */
	mmn_invalidate_range_end(&range);
	expect_eq(ev_count(), 6);
	st = stats_of(mm);
	expect_eq_ul(st.seq, cur_seq + 1);
	expect_eq_ul(st.active, 0);
	for (int i = 0; i < 3; i++)
		expect_eq(mmn_interval_notifier_remove(&t[i].sub), 0);
	destroy_mm(mm);
}

/*
 * 25 (D3, D4): equal starts walk in insertion order, both for direct inserts
 * and for inserts deferred during a period (applied FIFO), and the finishes
 * follow the same order.
 */
TEST(s25_equal_starts_insertion_order)
{
	struct tp_sub t[6], gate_sub;
	struct mmn_range range;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < 3; i++) {
		tp_init(&t[i], i + 1, TP_FINISH, mm);
		assert_eq(mmn_interval_notifier_insert(&t[i].sub, mm, 0x1000, 0x1000, &tp_ops), 0);
	}
	/* A period that hits; inserts during it are deferred, in call order. */
	tp_init(&gate_sub, 9, TP_NULL, mm);
	assert_eq(mmn_interval_notifier_insert(&gate_sub.sub, mm, 0x8000, 0x1000, &tp_ops), 0);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x8000, 0x9000);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	for (int i = 3; i < 6; i++) {
		tp_init(&t[i], i + 1, TP_FINISH, mm);
		assert_eq(mmn_interval_notifier_insert(&t[i].sub, mm, 0x1000, 0x1000, &tp_ops), 0);
		expect_false(mmn_interval_notifier_test_in_tree(&t[i].sub));
	}
	expect_eq(stats_of(mm).deferred_inserts, 3);
	mmn_invalidate_range_end(&range);

	ev_reset();
	expect_eq(invalidate(mm, 0x1800, 0x1801, true), 0);
	expect_str_eq(ev_str(), "S1 S2 S3 S4 S5 S6 F1 F2 F3 F4 F5 F6");
	for (int i = 0; i < 6; i++)
		expect_eq(mmn_interval_notifier_remove(&t[i].sub), 0);
	expect_eq(mmn_interval_notifier_remove(&gate_sub.sub), 0);
	destroy_mm(mm);
}

/*
 * 26: single-pass callbacks run at their walk position in the first pass;
 * every finish comes after the whole walk.
 */
TEST(s26_mixed_single_and_two_pass)
{
	struct tp_sub a, c;
	struct sp_sub b, d;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	tp_init(&a, 1, TP_FINISH, mm);
	sp_init(&b, 2);
	tp_init(&c, 3, TP_FINISH, mm);
	sp_init(&d, 4);
	/* Inserted out of order on purpose. */
	assert_eq(mmn_interval_notifier_insert(&d.sub, mm, 0x4000, 0x1000, &sp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&c.sub, mm, 0x3000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x2000, 0x1000, &sp_ops), 0);
	ev_reset();
	expect_eq(invalidate(mm, 0x1000, 0x5000, true), 0);
	expect_str_eq(ev_str(), "S1 I2 S3 I4 F1 F3");
	/* A range that misses the two-pass ones: no finish at all. */
	ev_reset();
	expect_eq(invalidate(mm, 0x2000, 0x3000, true), 0);
	expect_str_eq(ev_str(), "I2");
	expect_eq(stats_of(mm).finishes, 2);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&d.sub), 0);
	destroy_mm(mm);
}

/*
 * 27: true + NULL finish: no second pass; true + finish: exactly one finish
 * with the identical pointer, finish->notifier overwritten by the core (it
 * was poisoned), and *finish NULL on entry to every start, also to the ones
 * after a start that returned a finish.
 */
TEST(s27_null_finish_and_identity)
{
	struct tp_sub n1, f2, n3, f4;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	tp_init(&n1, 1, TP_NULL, mm);
	tp_init(&f2, 2, TP_FINISH, mm);
	tp_init(&n3, 3, TP_NULL, mm);
	tp_init(&f4, 4, TP_FINISH, mm);
	assert_eq(mmn_interval_notifier_insert(&n1.sub, mm, 0x1000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&f2.sub, mm, 0x2000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&n3.sub, mm, 0x3000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&f4.sub, mm, 0x4000, 0x1000, &tp_ops), 0);
	for (int round = 0; round < 3; round++) {
		ev_reset();
		expect_eq(invalidate(mm, 0, 0x10000, round != 1), 0);
		expect_str_eq(ev_str(), "S1 S2 S3 S4 F2 F4");
		expect_eq_ptr(ev_log[4].ptr, &f2.finish);
		expect_eq_ptr(ev_log[5].ptr, &f4.finish);
	}
	expect_eq(n1.finishes, 0);
	expect_eq(n3.finishes, 0);
	expect_eq(f2.finishes, 3);
	expect_eq(f4.finishes, 3);
	expect_eq_ptr(f2.finish.notifier, &f2.sub);
	expect_eq_ptr(f4.finish.notifier, &f4.sub);
	expect_eq(n1.finish_not_null_on_entry + f2.finish_not_null_on_entry +
		  n3.finish_not_null_on_entry + f4.finish_not_null_on_entry, 0);
	expect_eq(stats_of(mm).finishes, 6);
	expect_eq(stats_of(mm).notifiers_called, 12);
	expect_eq(mmn_interval_notifier_remove(&n1.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&f2.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&n3.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&f4.sub), 0);
	destroy_mm(mm);
}

/*
 * 28: on a non-blockable range, a start that returns false with *finish set
 * is not finished (the driver frees it); the walk stops there, the finishes
 * of the notifiers called before it still run (D3), the core closes the
 * region and the result is -EAGAIN. On a blockable range the same false is a
 * warning (D5, with a log record naming the notifier and range), the finish
 * is still dropped, and the walk goes on.
 */
TEST(s28_false_with_finish)
{
	struct tp_sub a, b, c;
	struct mmn_stats st;
	struct mmn_mm *mm;
	bool found = false;

	assert_eq(mmn_mm_new(&mm), 0);
	tp_init(&a, 1, TP_FINISH, mm);
	tp_init(&b, 2, TP_FALSE_IF_NONBLOCK, mm);
	tp_init(&c, 3, TP_FINISH, mm);
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x2000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&c.sub, mm, 0x3000, 0x1000, &tp_ops), 0);

	ev_reset();
	expect_eq(invalidate(mm, 0x1000, 0x4000, false), -EAGAIN);
	expect_str_eq(ev_str(), "S1 S2 F1");
	expect_eq(b.finishes, 0);
	expect_eq(b.leaked, 0);
	expect_eq(c.starts, 0);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq(st.nonblock_failures, 1);
	expect_eq(st.finishes, 1);
	expect_eq(st.warnings, 0);

	/* Blockable: the same driver returns true and its finish runs. */
	ev_reset();
	expect_eq(invalidate(mm, 0x1000, 0x4000, true), 0);
	expect_str_eq(ev_str(), "S1 S2 S3 F1 F2 F3");
	expect_eq(b.leaked, 0);

	/* Blockable + false: warning, finish dropped, walk goes on. */
	b.mode = TP_NULL;
	cap_install();
	ev_reset();
	{
		/* A single-pass notifier that returns false on a blockable range. */
		struct sp_sub f;

		sp_init(&f, 5);
		f.ret = false;
		assert_eq(mmn_interval_notifier_insert(&f.sub, mm, 0x2800, 0x100, &sp_ops), 0);
		expect_eq(invalidate(mm, 0x1000, 0x4000, true), 0);
		expect_str_eq(ev_str(), "S1 S2 I5 S3 F1 F3");
		st = stats_of(mm);
		expect_eq(st.warnings, 1);
		for (unsigned int i = 0; i < cap_count(); i++)
			if (cap_recs[i].level == MMN_LOG_WARN && cap_recs[i].sub == &f.sub &&
			    cap_recs[i].mm == mm && cap_recs[i].start == 0x1000 &&
			    cap_recs[i].end == 0x4000)
				found = true;
		expect_true(found);
		expect_eq(mmn_interval_notifier_remove(&f.sub), 0);
	}
	mmn_set_log_fn(NULL, NULL);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	destroy_mm(mm);
}

/* A two-pass start that returns false on a blockable range with *finish set. */
static bool false_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			unsigned long cur_seq, struct mmn_finish **finish)
{
	static struct mmn_finish never;

	ev_add('X', 7, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	*finish = &never;
	return false;
}

static void false_finish(struct mmn_finish *finish)
{
	ev_add('Y', 7, NULL, 0, finish);
}

static const struct mmn_interval_notifier_ops false_ops = {
	.invalidate_start = false_start,
	.invalidate_finish = false_finish,
};

/* 28/22: a two-pass start returning false on a blockable range: warning, no finish. */
TEST(s28_false_with_finish_blockable)
{
	struct mmn_interval_notifier x = { 0 };
	struct tp_sub a;
	struct mmn_mm *mm;
	bool found = false;

	assert_eq(mmn_mm_new(&mm), 0);
	tp_init(&a, 1, TP_FINISH, mm);
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &tp_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&x, mm, 0x1800, 0x1000, &false_ops), 0);
	cap_install();
	ev_reset();
	expect_eq(invalidate(mm, 0, 0x10000, true), 0);
	expect_str_eq(ev_str(), "S1 X7 F1");
	expect_eq(stats_of(mm).warnings, 1);
	expect_eq(stats_of(mm).finishes, 1);
	for (unsigned int i = 0; i < cap_count(); i++)
		if (cap_recs[i].level == MMN_LOG_WARN && cap_recs[i].sub == &x &&
		    cap_recs[i].start == 0 && cap_recs[i].end == 0x10000)
			found = true;
	expect_true(found);
	mmn_set_log_fn(NULL, NULL);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&x), 0);
	destroy_mm(mm);
}

/*
 * 29: each finish frees (after scribbling over) the container its start
 * allocated. Under ASan any later touch by the core is a use-after-free;
 * without it the scribbled link would send the core astray.
 */
TEST(s29_finish_frees_container)
{
	enum { N = 16 };
	struct tp_sub t[N];
	struct mmn_mm *mm;
	char want[256] = "";
	size_t pos = 0;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < N; i++) {
		tp_init(&t[i], i, TP_ALLOC, mm);
		/* Overlapping intervals, several with equal starts. */
		assert_eq(mmn_interval_notifier_insert(&t[i].sub, mm, 0x1000 * (unsigned long)(i / 2),
						       0x3000, &tp_ops), 0);
	}
	for (int i = 0; i < N; i++)
		pos += (size_t)snprintf(want + pos, sizeof(want) - pos, "%sS%d", i ? " " : "", i);
	for (int i = 0; i < N; i++)
		pos += (size_t)snprintf(want + pos, sizeof(want) - pos, " F%d", i);
	for (int round = 0; round < 8; round++) {
		ev_reset();
		expect_eq(invalidate(mm, 0, 0x100000, round & 1), 0);
		expect_str_eq(ev_str(), want);
	}
	/* Nested: a second region from the same thread while the first is open. */
	{
		struct mmn_range r1, r2;

		mmn_range_init(&r1, MMN_EVENT_UNMAP, 0, mm, 0, 0x2000);
		mmn_range_init(&r2, MMN_EVENT_UNMAP, 0, mm, 0x4000, 0x6000);
		expect_eq(mmn_invalidate_range_start(&r1), 0);
		expect_eq(mmn_invalidate_range_start(&r2), 0);
		mmn_invalidate_range_end(&r2);
		mmn_invalidate_range_end(&r1);
	}
	for (int i = 0; i < N; i++) {
		expect_eq(t[i].leaked, 0);
		expect_eq(t[i].starts, t[i].finishes);
		expect_eq(mmn_interval_notifier_remove(&t[i].sub), 0);
	}
	destroy_mm(mm);
}

/* Single-pass callback used in ops tables that must be refused. */
static bool any_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	(void)sub;
	(void)range;
	(void)cur_seq;
	ev_add('?', 0, range, cur_seq, NULL);
	return true;
}

static const struct mmn_interval_notifier_ops bad_ops[] = {
	/* 30: both invalidate and the two-pass pair */
	{ .invalidate = any_invalidate, .invalidate_start = tp_start,
	  .invalidate_finish = tp_finish },
	/* 31: start without finish */
	{ .invalidate_start = tp_start },
	/* finish without start */
	{ .invalidate_finish = tp_finish },
	/* neither */
	{ 0 },
	/* invalidate + start, no finish */
	{ .invalidate = any_invalidate, .invalidate_start = tp_start },
	/* invalidate + finish, no start */
	{ .invalidate = any_invalidate, .invalidate_finish = tp_finish },
};

static const char *const bad_ops_names[] = {
	"invalidate+start+finish", "start only", "finish only", "none",
	"invalidate+start", "invalidate+finish",
};

/*
 * 30/31 (D2): every ops table other than exactly one of the two shapes is
 * refused with -EINVAL, changes nothing (the notifier stays zeroed and is not
 * inserted, the domain counts nothing, nothing is called), and the same
 * notifier can then be inserted with valid ops.
 */
TEST(s30_s31_bad_ops_einval)
{
	struct mmn_mm *mm;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	cap_install();
	for (size_t i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++) {
		struct tp_sub t;
		struct mmn_interval_notifier zero;
		int ret;

		tp_init(&t, 1, TP_FINISH, mm);
		memcpy(&zero, &t.sub, sizeof(zero));
		ret = mmn_interval_notifier_insert(&t.sub, mm, 0x1000, 0x1000, &bad_ops[i]);
		printf("    insert with ops %-24s -> %d (want %d, -EINVAL)\n", bad_ops_names[i],
		       ret, -EINVAL);
		expect_eq(ret, -EINVAL);
		expect_eq(memcmp(&t.sub, &zero, sizeof(zero)), 0);
		expect_false(mmn_interval_notifier_test_in_tree(&t.sub));
		expect_eq(mmn_interval_notifier_remove(&t.sub), -EINVAL);
		st = stats_of(mm);
		expect_eq_ul(st.notifiers, 0);
		ev_reset();
		expect_eq(invalidate(mm, 0, 0x10000, true), 0);
		expect_str_eq(ev_str(), "");
		/* Then valid ops work on the very same notifier. */
		expect_eq(mmn_interval_notifier_insert(&t.sub, mm, 0x1000, 0x1000, &tp_ops), 0);
		ev_reset();
		expect_eq(invalidate(mm, 0, 0x10000, true), 0);
		expect_str_eq(ev_str(), "S1 F1");
		expect_eq(mmn_interval_notifier_remove(&t.sub), 0);
	}
	/* A refusal is an error, not a kernel-style warning. */
	expect_eq(stats_of(mm).warnings, 0);
	mmn_set_log_fn(NULL, NULL);
	destroy_mm(mm);
}

int main(void)
{
	RUN(s25_finish_order);
	RUN(s25_equal_starts_insertion_order);
	RUN(s26_mixed_single_and_two_pass);
	RUN(s27_null_finish_and_identity);
	RUN(s28_false_with_finish);
	RUN(s28_false_with_finish_blockable);
	RUN(s29_finish_frees_container);
	RUN(s30_s31_bad_ops_einval);
	return test_report();
}
