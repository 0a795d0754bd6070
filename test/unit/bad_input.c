// SPDX-License-Identifier: MIT
/*
 * Every public function of include/mmn.h with every invalid input: NULL
 * pointers, zero and wrapping lengths, empty and inverted ranges, invalid ops
 * tables, notifiers in the wrong state, domains that are still busy, an _end
 * without a start. Each row asserts the exact errno (or, for functions with
 * no error return, the log record and the absence of side effects) and is
 * printed as it runs, so the output is the table of how misuse is answered.
 * Calls that could block run on a helper thread with a bounded wait.
 */
#include <fcntl.h>
#include <unistd.h>

#include "scenario_util.h"
#include "bad_input_table.h"

/* ---- notifiers ------------------------------------------------------------ */

static int calls;

static bool inv(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		unsigned long cur_seq)
{
	(void)range;
	calls++;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static bool start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		  unsigned long cur_seq, struct mmn_finish **finish)
{
	(void)finish;
	return inv(sub, range, cur_seq);
}

static void finish(struct mmn_finish *f)
{
	(void)f;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = inv };
static const struct mmn_interval_notifier_ops bad_ops[] = {
	{ .invalidate = inv, .invalidate_start = start, .invalidate_finish = finish },
	{ .invalidate_start = start },
	{ .invalidate_finish = finish },
	{ 0 },
	{ .invalidate = inv, .invalidate_start = start },
	{ .invalidate = inv, .invalidate_finish = finish },
};
static const char *const bad_ops_names[] = {
	"ops: invalidate + start + finish", "ops: start, no finish", "ops: finish, no start",
	"ops: none", "ops: invalidate + start", "ops: invalidate + finish",
};

/* Did the last log record have this level, notifier and range? */
static bool logged(enum mmn_log_level level, struct mmn_mm *mm,
		   struct mmn_interval_notifier *sub, unsigned long start,
		   unsigned long end)
{
	unsigned int n = cap_count();
	const struct cap_rec *r;

	if (!n)
		return false;
	r = &cap_recs[n - 1];
	return r->level == level && r->mm == mm && r->sub == sub && r->start == start &&
	       r->end == end && r->what && r->what[0];
}

/* ---- read_begin with a bound ------------------------------------------------ */

struct rb_call {
	struct mmn_interval_notifier *sub;
	unsigned long ret;
	bool done;
};

static void *rb_main(void *arg)
{
	struct rb_call *c = arg;

	c->ret = mmn_interval_read_begin(c->sub);
	flag_set(&c->done, true);
	return NULL;
}

/* read_begin(@sub) on a helper thread; the test ends if it does not return. */
static unsigned long read_begin_bounded(struct mmn_interval_notifier *sub)
{
	struct rb_call c = { .sub = sub };
	pthread_t t;

	assert_eq(pthread_create(&t, NULL, rb_main, &c), 0);
	if (!wait_until(flag_get(&c.done), WAIT_MS)) {
		test_fail_at(__FILE__, __LINE__);
		fprintf(stderr, "    mmn_interval_read_begin(%p) hangs\n", (void *)sub);
		test_exit_now();
	}
	pthread_join(t, NULL);
	return c.ret;
}

/* ---- domains ---------------------------------------------------------------- */

TEST(bad_input_domains)
{
	struct mmn_interval_notifier sub = { 0 };
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm;

	cap_install();
	ROW("mmn_version", "(no input): non-NULL, the built one",
	    mmn_version() && strcmp(mmn_version(), MMN_VERSION_STRING) == 0, true);
	ROW("mmn_mm_new", "mmp NULL", mmn_mm_new(NULL), -EINVAL);
	ROW("mmn_mm_destroy", "mm NULL (nothing to do)", mmn_mm_destroy(NULL), 0);
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&sub, mm, 0x1000, 0x1000, &ops), 0);
	ROW("mmn_mm_destroy", "a notifier inserted", mmn_mm_destroy(mm), -EBUSY);
	/* Still fully usable after the refusal. */
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	calls = 0;
	ROW("mmn_invalidate_range_start", "after destroy said -EBUSY", mmn_invalidate_range_start(&r),
	    0);
	ROW("mmn_mm_destroy", "region open, a notifier hit", mmn_mm_destroy(mm), -EBUSY);
	{
		/* A deferred insert during that region. */
		struct mmn_interval_notifier pend = { 0 };

		ROW("mmn_interval_notifier_insert", "during a hit region (deferred)",
		    mmn_interval_notifier_insert(&pend, mm, 0x1000, 0x1000, &ops), 0);
		ROW("mmn_interval_notifier_remove", "a pending insert",
		    mmn_interval_notifier_remove(&pend), 0);
	}
	mmn_invalidate_range_end(&r);
	expect_eq(calls, 1);
	ROW("mmn_interval_notifier_remove", "inserted (valid)", mmn_interval_notifier_remove(&sub), 0);
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	ROW("mmn_mm_destroy", "region open, no notifier", mmn_mm_destroy(mm), -EBUSY);
	mmn_invalidate_range_end(&r);

	cap_reset();
	ROW_VOID("mmn_mm_release", "mm NULL", mmn_mm_release(NULL),
		 logged(MMN_LOG_ERROR, NULL, NULL, 0, 0), "error logged");

	ROW("mmn_mm_get_stats", "mm NULL", mmn_mm_get_stats(NULL, &st), -EINVAL);
	ROW("mmn_mm_get_stats", "stats NULL", mmn_mm_get_stats(mm, NULL), -EINVAL);
	ROW("mmn_mm_get_stats", "both NULL", mmn_mm_get_stats(NULL, NULL), -EINVAL);
	ROW("mmn_mm_destroy", "idle, empty (valid)", mmn_mm_destroy(mm), 0);
	mmn_set_log_fn(NULL, NULL);
}

/* ---- insert ------------------------------------------------------------------ */

/* Insert into a fresh zeroed notifier, expecting it to fail and change nothing. */
static int insert_fails(struct mmn_mm *mm, bool null_sub, struct mmn_mm *to_mm,
			unsigned long start, unsigned long length,
			const struct mmn_interval_notifier_ops *o)
{
	struct mmn_interval_notifier sub, zero;
	unsigned long before = stats_of(mm).notifiers;
	int ret;

	memset(&sub, 0, sizeof(sub));
	memset(&zero, 0, sizeof(zero));
	ret = mmn_interval_notifier_insert(null_sub ? NULL : &sub, to_mm, start, length, o);
	if (ret == 0) {
		mmn_interval_notifier_remove(&sub);
		return 0;
	}
	/* "A failed insert changes nothing." */
	expect_eq(memcmp(&sub, &zero, sizeof(sub)), 0);
	expect_eq_ul(stats_of(mm).notifiers, before);
	expect_false(mmn_interval_notifier_test_in_tree(&sub));
	expect_eq(mmn_interval_notifier_remove(&sub), -EINVAL);
	return ret;
}

TEST(bad_input_insert)
{
	struct mmn_interval_notifier a = { 0 }, b = { 0 }, saved;
	struct mmn_mm *mm, *other;
	struct mmn_range r;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_mm_new(&other), 0);
	ROW("mmn_interval_notifier_insert", "sub NULL", insert_fails(mm, true, mm, 0, 1, &ops),
	    -EINVAL);
	ROW("mmn_interval_notifier_insert", "mm NULL", insert_fails(mm, false, NULL, 0, 1, &ops),
	    -EINVAL);
	ROW("mmn_interval_notifier_insert", "ops NULL", insert_fails(mm, false, mm, 0, 1, NULL),
	    -EINVAL);
	for (size_t i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++)
		ROW("mmn_interval_notifier_insert", bad_ops_names[i],
		    insert_fails(mm, false, mm, 0x1000, 0x1000, &bad_ops[i]), -EINVAL);
	ROW("mmn_interval_notifier_insert", "length 0",
	    insert_fails(mm, false, mm, 0x1000, 0, &ops), -EINVAL);
	ROW("mmn_interval_notifier_insert", "start 0, length 0",
	    insert_fails(mm, false, mm, 0, 0, &ops), -EINVAL);
	ROW("mmn_interval_notifier_insert", "start ULONG_MAX, length 2",
	    insert_fails(mm, false, mm, ULONG_MAX, 2, &ops), -EOVERFLOW);
	ROW("mmn_interval_notifier_insert", "start 2, length ULONG_MAX",
	    insert_fails(mm, false, mm, 2, ULONG_MAX, &ops), -EOVERFLOW);
	ROW("mmn_interval_notifier_insert", "start ULONG_MAX-0xfff, length 0x2000",
	    insert_fails(mm, false, mm, ULONG_MAX - 0xfff, 0x2000, &ops), -EOVERFLOW);
	ROW("mmn_interval_notifier_insert", "start ULONG_MAX, length ULONG_MAX",
	    insert_fails(mm, false, mm, ULONG_MAX, ULONG_MAX, &ops), -EOVERFLOW);
	/* The order of the checks: NULL, ops, length 0, wrap. */
	ROW("mmn_interval_notifier_insert", "order: sub NULL + length 0",
	    insert_fails(mm, true, mm, 0, 0, &ops), -EINVAL);
	ROW("mmn_interval_notifier_insert", "order: mm NULL + wrap",
	    insert_fails(mm, false, NULL, ULONG_MAX, 2, &ops), -EINVAL);
	ROW("mmn_interval_notifier_insert", "order: bad ops + wrap",
	    insert_fails(mm, false, mm, ULONG_MAX, 2, &bad_ops[1]), -EINVAL);
	ROW("mmn_interval_notifier_insert", "order: length 0 at ULONG_MAX",
	    insert_fails(mm, false, mm, ULONG_MAX, 0, &ops), -EINVAL);
	/* The edges that are valid. */
	ROW("mmn_interval_notifier_insert", "start 0, length ULONG_MAX (valid)",
	    insert_fails(mm, false, mm, 0, ULONG_MAX, &ops), 0);
	ROW("mmn_interval_notifier_insert", "start 1, length ULONG_MAX (valid)",
	    insert_fails(mm, false, mm, 1, ULONG_MAX, &ops), 0);
	ROW("mmn_interval_notifier_insert", "start ULONG_MAX, length 1 (valid)",
	    insert_fails(mm, false, mm, ULONG_MAX, 1, &ops), 0);
	ROW("mmn_interval_notifier_insert", "start 0, length 1 (valid)",
	    insert_fails(mm, false, mm, 0, 1, &ops), 0);

	/* Double insert: -EBUSY, and the notifier is left as it was. */
	assert_eq(mmn_interval_notifier_insert(&a, mm, 0x1000, 0x1000, &ops), 0);
	memcpy(&saved, &a, sizeof(a));
	ROW("mmn_interval_notifier_insert", "inserted already, same mm",
	    mmn_interval_notifier_insert(&a, mm, 0x1000, 0x1000, &ops), -EBUSY);
	ROW("mmn_interval_notifier_insert", "inserted already, other interval",
	    mmn_interval_notifier_insert(&a, mm, 0x8000, 0x10, &ops), -EBUSY);
	ROW("mmn_interval_notifier_insert", "inserted already, other mm",
	    mmn_interval_notifier_insert(&a, other, 0x1000, 0x1000, &ops), -EBUSY);
	expect_eq(memcmp(&a, &saved, sizeof(a)), 0);
	expect_eq_ul(stats_of(mm).notifiers, 1);
	expect_eq_ul(stats_of(other).notifiers, 0);
	/* Pending (deferred) insert, inserted again. */
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	assert_eq(mmn_interval_notifier_insert(&b, mm, 0x1000, 0x1000, &ops), 0);
	ROW("mmn_interval_notifier_insert", "pending insert, again",
	    mmn_interval_notifier_insert(&b, mm, 0x1000, 0x1000, &ops), -EBUSY);
	mmn_invalidate_range_end(&r);
	expect_eq_ul(stats_of(mm).notifiers, 2);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	/* Removed, then inserted again (elsewhere): fine. */
	assert_eq(mmn_interval_notifier_remove(&a), 0);
	ROW("mmn_interval_notifier_insert", "removed, into another mm (valid)",
	    mmn_interval_notifier_insert(&a, other, 0x1000, 0x1000, &ops), 0);
	expect_eq_ptr(mmn_interval_notifier_mm(&a), other);
	expect_eq(mmn_interval_notifier_remove(&a), 0);
	expect_eq(mmn_interval_notifier_remove(&b), 0);
	destroy_mm(mm);
	destroy_mm(other);
}

/* ---- remove ------------------------------------------------------------------ */

TEST(bad_input_remove)
{
	struct mmn_interval_notifier zeroed = { 0 }, failed = { 0 }, failed2 = { 0 }, gone = { 0 };
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	ROW("mmn_interval_notifier_remove", "sub NULL", mmn_interval_notifier_remove(NULL),
	    -EINVAL);
	ROW("mmn_interval_notifier_start/last/mm", "zeroed: 0, 0, NULL",
	    mmn_interval_notifier_start(&zeroed) == 0 && mmn_interval_notifier_last(&zeroed) == 0 &&
		    mmn_interval_notifier_mm(&zeroed) == NULL,
	    true);
	ROW("mmn_interval_notifier_remove", "zeroed, never inserted",
	    mmn_interval_notifier_remove(&zeroed), -EINVAL);
	assert_eq(mmn_interval_notifier_insert(&failed, mm, 0, 0, &ops), -EINVAL);
	ROW("mmn_interval_notifier_remove", "failed insert (-EINVAL)",
	    mmn_interval_notifier_remove(&failed), -EINVAL);
	assert_eq(mmn_interval_notifier_insert(&failed2, mm, ULONG_MAX, 2, &ops), -EOVERFLOW);
	ROW("mmn_interval_notifier_remove", "failed insert (-EOVERFLOW)",
	    mmn_interval_notifier_remove(&failed2), -EINVAL);
	ROW("mmn_interval_notifier_start/last/mm", "failed insert: 0, 0, NULL",
	    mmn_interval_notifier_start(&failed2) == 0 && mmn_interval_notifier_last(&failed2) == 0 &&
		    mmn_interval_notifier_mm(&failed2) == NULL,
	    true);
	assert_eq(mmn_interval_notifier_insert(&gone, mm, 0x1000, 0x1000, &ops), 0);
	ROW("mmn_interval_notifier_start/last/mm", "inserted: its interval and mm",
	    mmn_interval_notifier_start(&gone) == 0x1000 &&
		    mmn_interval_notifier_last(&gone) == 0x1fff &&
		    mmn_interval_notifier_mm(&gone) == mm,
	    true);
	ROW("mmn_interval_notifier_remove", "inserted (valid)", mmn_interval_notifier_remove(&gone),
	    0);
	ROW("mmn_interval_notifier_remove", "already removed", mmn_interval_notifier_remove(&gone),
	    -EINVAL);
	ROW("mmn_interval_notifier_remove", "already removed, again",
	    mmn_interval_notifier_remove(&gone), -EINVAL);
	expect_eq_ul(stats_of(mm).notifiers, 0);
	destroy_mm(mm);
}

/* ---- the sequence calls ---------------------------------------------------------- */

TEST(bad_input_seq_calls)
{
	struct mmn_interval_notifier zeroed = { 0 }, failed = { 0 }, gone = { 0 }, other = { 0 };
	struct mmn_range r;
	struct mmn_mm *mm;
	unsigned long seq;

	assert_eq(mmn_mm_new(&mm), 0);
	cap_install();

	seq = read_begin_bounded(NULL);
	ROW("mmn_interval_read_begin", "sub NULL: returns, odd", seq & 1, 1);
	ROW("mmn_interval_read_begin", "sub NULL: error logged",
	    logged(MMN_LOG_ERROR, NULL, NULL, 0, 0), true);

	cap_reset();
	seq = read_begin_bounded(&zeroed);
	ROW("mmn_interval_read_begin", "zeroed: returns, odd", seq & 1, 1);
	ROW("mmn_interval_read_begin", "zeroed: error logged",
	    cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR && cap_recs[0].sub == &zeroed,
	    true);

	assert_eq(mmn_interval_notifier_insert(&failed, mm, 0x1000, 0, &ops), -EINVAL);
	cap_reset();
	seq = read_begin_bounded(&failed);
	ROW("mmn_interval_read_begin", "failed insert: returns, odd", seq & 1, 1);
	ROW("mmn_interval_read_begin", "failed insert: error logged",
	    cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR && cap_recs[0].sub == &failed,
	    true);

	/* Removed, then read while the domain is in an odd period: no wait. */
	assert_eq(mmn_interval_notifier_insert(&gone, mm, 0x1000, 0x1000, &ops), 0);
	assert_eq(mmn_interval_notifier_insert(&other, mm, 0x1000, 0x1000, &ops), 0);
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	mmn_invalidate_range_end(&r);
	assert_eq(mmn_interval_notifier_remove(&gone), 0);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	cap_reset();
	seq = read_begin_bounded(&gone);
	ROW("mmn_interval_read_begin", "removed, period odd: returns, odd", seq & 1, 1);
	ROW("mmn_interval_read_begin", "removed: error logged",
	    cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR && cap_recs[0].sub == &gone,
	    true);
	expect_eq(stats_of(mm).read_begin_waits, 0);
	mmn_invalidate_range_end(&r);

	ROW("mmn_interval_read_retry", "sub NULL -> retry", mmn_interval_read_retry(NULL, 1), true);
	ROW("mmn_interval_check_retry", "sub NULL -> retry", mmn_interval_check_retry(NULL, 1),
	    true);
	ROW_VOID("mmn_interval_set_seq", "sub NULL", mmn_interval_set_seq(NULL, 3), true,
		 "no crash");
	expect_eq(mmn_interval_notifier_remove(&other), 0);
	mmn_set_log_fn(NULL, NULL);
	destroy_mm(mm);
}

/* ---- ranges ------------------------------------------------------------------------ */

TEST(bad_input_ranges)
{
	static const struct {
		const char *name;
		unsigned long start, end;
	} empty[] = {
		{ "[5, 5)", 5, 5 }, { "[6, 5)", 6, 5 }, { "[0, 0)", 0, 0 },
		{ "[ULONG_MAX, ULONG_MAX)", ULONG_MAX, ULONG_MAX },
		{ "[ULONG_MAX, 0)", ULONG_MAX, 0 }, { "[0x2000, 0x1000)", 0x2000, 0x1000 },
	};
	struct mmn_interval_notifier all = { 0 };
	struct mmn_range r, saved;
	struct mmn_stats st;
	struct mmn_mm *mm;
	char name[80];

	assert_eq(mmn_mm_new(&mm), 0);
	/* Covers [0, ULONG_MAX - 1]: any accepted range would call it. */
	assert_eq(mmn_interval_notifier_insert(&all, mm, 0, ULONG_MAX, &ops), 0);
	calls = 0;

	ROW("mmn_invalidate_range_start", "range NULL", mmn_invalidate_range_start(NULL), -EINVAL);
	ROW("mmn_invalidate_range_start_nonblock", "range NULL",
	    mmn_invalidate_range_start_nonblock(NULL), -EINVAL);
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, NULL, 0x1000, 0x2000);
	ROW("mmn_invalidate_range_start", "range->mm NULL", mmn_invalidate_range_start(&r), -EINVAL);
	ROW("mmn_invalidate_range_start_nonblock", "range->mm NULL",
	    mmn_invalidate_range_start_nonblock(&r), -EINVAL);
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		for (int nb = 0; nb < 2; nb++) {
			mmn_range_init(&r, MMN_EVENT_UNMAP, 0x10, mm, empty[i].start, empty[i].end);
			memcpy(&saved, &r, sizeof(r));
			snprintf(name, sizeof(name), "empty/inverted %s", empty[i].name);
			if (nb)
				ROW("mmn_invalidate_range_start_nonblock", name,
				    mmn_invalidate_range_start_nonblock(&r), -EINVAL);
			else
				ROW("mmn_invalidate_range_start", name,
				    mmn_invalidate_range_start(&r), -EINVAL);
			/* Nothing recorded, the range untouched. */
			expect_eq(memcmp(&r, &saved, sizeof(r)), 0);
		}
	}
	st = stats_of(mm);
	expect_eq(calls, 0);
	expect_eq(st.invalidations, 0);
	expect_eq(st.notifiers_called, 0);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 2);
	expect_eq(st.warnings, 0);

	/* The smallest ranges at both ends are valid. */
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0, 1);
	ROW("mmn_invalidate_range_start", "[0, 1) (valid)", mmn_invalidate_range_start(&r), 0);
	mmn_invalidate_range_end(&r);
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, ULONG_MAX - 1, ULONG_MAX);
	ROW("mmn_invalidate_range_start", "[ULONG_MAX-1, ULONG_MAX) (valid)",
	    mmn_invalidate_range_start(&r), 0);
	mmn_invalidate_range_end(&r);
	expect_eq(calls, 2);

	/* The start calls touch only MMN_RANGE_BLOCKABLE. */
	mmn_range_init(&r, MMN_EVENT_MIGRATE, 0xf0 | MMN_RANGE_BLOCKABLE, mm, 0x1000, 0x2000);
	r.owner = &r;
	ROW("mmn_invalidate_range_start_nonblock", "flags 0xf1: clears bit 0 only",
	    mmn_invalidate_range_start_nonblock(&r) == 0 && r.flags == 0xf0 &&
		    !mmn_range_blockable(&r) && r.owner == &r && r.event == MMN_EVENT_MIGRATE,
	    true);
	mmn_invalidate_range_end(&r);
	r.flags = 0xf0;
	ROW("mmn_invalidate_range_start", "flags 0xf0: sets bit 0 only",
	    mmn_invalidate_range_start(&r) == 0 && r.flags == (0xf0 | MMN_RANGE_BLOCKABLE) &&
		    mmn_range_blockable(&r) && r.start == 0x1000 && r.end == 0x2000,
	    true);
	mmn_invalidate_range_end(&r);

	/* mmn_range_init sets every field. */
	memset(&r, 0xff, sizeof(r));
	mmn_range_init(&r, MMN_EVENT_CLEAR, 0, mm, 1, 2);
	ROW("mmn_range_init", "every field set, owner NULL",
	    r.mm == mm && r.start == 1 && r.end == 2 && r.flags == 0 &&
		    r.event == MMN_EVENT_CLEAR && r.owner == NULL,
	    true);
	ROW_VOID("mmn_range_init", "range NULL", mmn_range_init(NULL, MMN_EVENT_UNMAP, 0, mm, 1, 2),
		 true, "no crash");
	expect_eq(mmn_interval_notifier_remove(&all), 0);
	destroy_mm(mm);
}

/* ---- _end ---------------------------------------------------------------------------- */

TEST(bad_input_range_end)
{
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	cap_install();

	ROW_VOID("mmn_invalidate_range_end", "range NULL", mmn_invalidate_range_end(NULL),
		 logged(MMN_LOG_ERROR, NULL, NULL, 0, 0), "error logged");
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, NULL, 0x1000, 0x2000);
	cap_reset();
	ROW_VOID("mmn_invalidate_range_end", "range->mm NULL", mmn_invalidate_range_end(&r),
		 cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR, "error logged");

	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	cap_reset();
	ROW_VOID("mmn_invalidate_range_end", "no start", mmn_invalidate_range_end(&r),
		 stats_of(mm).warnings == 1 && logged(MMN_LOG_WARN, mm, NULL, 0x1000, 0x2000),
		 "warning");

	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x3000, 0x3000);
	assert_eq(mmn_invalidate_range_start(&r), -EINVAL);
	cap_reset();
	ROW_VOID("mmn_invalidate_range_end", "after a start that said -EINVAL",
		 mmn_invalidate_range_end(&r),
		 stats_of(mm).warnings == 2 && logged(MMN_LOG_WARN, mm, NULL, 0x3000, 0x3000),
		 "warning");

	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	mmn_invalidate_range_end(&r);
	cap_reset();
	ROW_VOID("mmn_invalidate_range_end", "twice after one start", mmn_invalidate_range_end(&r),
		 stats_of(mm).warnings == 3 && logged(MMN_LOG_WARN, mm, NULL, 0x1000, 0x2000),
		 "warning");

	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 2);	/* nothing hit: no period */

	/* Silenced hook: still counted, nothing reported. */
	mmn_set_log_fn(NULL, NULL);
	cap_reset();
	ROW_VOID("mmn_set_log_fn", "NULL: counters still count", mmn_invalidate_range_end(&r),
		 stats_of(mm).warnings == 4 && cap_count() == 0, "counted, silent");
	destroy_mm(mm);
}

/* After -EAGAIN the core has closed the region: an _end is unmatched. */

/* A notifier that cannot sleep: false on any non-blockable range. */
static bool nonblock_false(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	if (!mmn_range_blockable(range))
		return false;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops nonblock_false_ops = { .invalidate = nonblock_false };

TEST(bad_input_end_after_eagain)
{
	struct mmn_interval_notifier a = { 0 };
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&a, mm, 0x1000, 0x1000, &nonblock_false_ops), 0);
	cap_install();
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	ROW("mmn_invalidate_range_start_nonblock", "a notifier says false",
	    mmn_invalidate_range_start_nonblock(&r), -EAGAIN);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq(st.warnings, 0);
	ROW_VOID("mmn_invalidate_range_end", "after -EAGAIN", mmn_invalidate_range_end(&r),
		 stats_of(mm).warnings == 1 && stats_of(mm).active == 0 &&
			 logged(MMN_LOG_WARN, mm, NULL, 0x1000, 0x2000),
		 "warning");
	mmn_set_log_fn(NULL, NULL);
	expect_eq(mmn_interval_notifier_remove(&a), 0);
	destroy_mm(mm);
}

/* ---- the log hook and mmn_log_stderr ------------------------------------------------ */

/* Runs mmn_log_stderr(@rec) with fd 2 on a pipe; returns what it wrote. */
static const char *stderr_of(const struct mmn_log_record *rec)
{
	static char buf[600];
	int fds[2], saved;
	ssize_t n;

	buf[0] = 0;
	fflush(stderr);
	if (pipe(fds))
		return "(pipe failed)";
	saved = dup(2);
	dup2(fds[1], 2);
	mmn_log_stderr(rec, NULL);
	dup2(saved, 2);
	close(saved);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

TEST(bad_input_log_stderr)
{
	struct mmn_log_record rec = { 0 };
	const char *out;
	char want[200];
	bool ok;

	rec.level = (enum mmn_log_level)7;
	rec.what = NULL;
	out = stderr_of(&rec);
	ok = strcmp(out, "libmmn: ?: (no text)\n") == 0;
	row_print("mmn_log_stderr", "level 7, what NULL", ok, "\"?: (no text)\"", ok);
	expect_str_eq(out, "libmmn: ?: (no text)\n");

	rec.level = MMN_LOG_WARN;
	rec.what = "x";
	rec.mm = (struct mmn_mm *)(uintptr_t)0xabc0;
	rec.sub = (struct mmn_interval_notifier *)(uintptr_t)0x10;
	rec.start = 0;
	rec.end = ULONG_MAX;
	out = stderr_of(&rec);
	snprintf(want, sizeof(want),
		 "libmmn: warning: x mm=0xabc0 sub=0x10 range=[0x0, 0xffffffffffffffff)\n");
	ok = strcmp(out, want) == 0;
	row_print("mmn_log_stderr", "every field, range [0, ULONG_MAX)", ok, "one line", ok);
	expect_str_eq(out, want);

	/* A text longer than the line buffer is cut, still one line. */
	{
		static char long_what[2000];

		memset(long_what, 'w', sizeof(long_what) - 1);
		rec.what = long_what;
		out = stderr_of(&rec);
		ok = strlen(out) > 100 && strlen(out) < sizeof(long_what) &&
		     out[strlen(out) - 1] == '\n' && strchr(out, '\n') == out + strlen(out) - 1;
		row_print("mmn_log_stderr", "what longer than the buffer", ok, "cut, one line", ok);
		expect_true(ok);
	}
}

int main(void)
{
	printf("  %-36s %-46s    %-6s want %-12s\n", "function", "input", "got", "");
	RUN(bad_input_domains);
	RUN(bad_input_insert);
	RUN(bad_input_remove);
	RUN(bad_input_seq_calls);
	RUN(bad_input_ranges);
	RUN(bad_input_range_end);
	RUN(bad_input_end_after_eagain);
	RUN(bad_input_log_stderr);
	return test_report();
}
