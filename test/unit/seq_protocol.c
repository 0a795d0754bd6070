// SPDX-License-Identifier: MIT
/*
 * The sequence protocol (docs/TESTING.md scenarios 7-10, 16 and 17): the
 * domain's and the notifiers' sequence values, when read_begin waits, and what
 * read_retry / check_retry report. Blocking is proved with a thread, the
 * domain's wait counters and a bounded wait.
 */
#include "recorder.h"

/* Scenario 7: a new domain's seq is 2; an idle insert gets 1. */
TEST(s07_first_insert)
{
	struct mmn_mm *mm;
	struct tsub t, u, v;
	struct mmn_stats st;

	expect_eq(mmn_mm_new(NULL), -EINVAL);
	assert_eq(mmn_mm_new(&mm), 0);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 2);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.notifiers, 0);
	expect_eq_ul(st.deferred, 0);
	expect_eq(st.invalidations, 0);

	assert_eq(tsub_insert(&t, 1, mm, 0x1000, 0x1000), 0);
	expect_true(mmn_interval_notifier_test_in_tree(&t.sub));
	st = stats_of(mm);
	expect_eq_ul(st.seq, 2);		/* an insert leaves the domain's seq alone */
	expect_eq_ul(st.notifiers, 1);
	expect_eq(st.deferred_inserts, 0);

	/* read_begin returns the notifier's seq, 1, without waiting. */
	expect_read_begin_nonblocking(mm, &t.sub, 1);
	expect_eq_ul(mmn_interval_read_begin(&t.sub), 1);
	expect_false(mmn_interval_read_retry(&t.sub, 1));
	expect_false(mmn_interval_check_retry(&t.sub, 1));
	expect_true(mmn_interval_read_retry(&t.sub, 3));
	/* A second idle insert gets the same value. */
	assert_eq(tsub_insert_two_pass(&u, 2, mm, 0x8000, 0x1000), 0);
	expect_eq_ul(mmn_interval_read_begin(&u.sub), 1);

	/* After one period (seq 4), an idle insert gets 3. */
	expect_eq(invalidate(mm, 0x1000, 0x2000), 0);
	expect_eq_ul(stats_of(mm).seq, 4);
	assert_eq(tsub_insert(&v, 3, mm, 0x1000, 0x1000), 0);
	expect_eq_ul(mmn_interval_read_begin(&v.sub), 3);
	expect_eq_ul(mmn_interval_read_begin(&t.sub), 3);	/* set by its callback */
	expect_eq_ul(mmn_interval_read_begin(&u.sub), 1);	/* not hit */
	expect_eq(stats_of(mm).read_begin_waits, 0);

	expect_eq(mmn_interval_notifier_remove(&t.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&u.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&v.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Scenario 8: a range that hits nothing opens a region but keeps seq even. */
TEST(s08_miss_range)
{
	struct mmn_mm *mm;
	struct tsub t;
	struct mmn_range range;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&t, 1, mm, 0x1000, 0x1000), 0);
	rec_reset();

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x5000, 0x6000);
	expect_eq(mmn_invalidate_range_start(&range), 0);
	st = stats_of(mm);
	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.seq, 2);
	expect_eq(st.invalidations, 1);
	expect_eq(st.invalidations_hit, 0);
	expect_eq(rec.n, 0);
	/* Partially excluded: read_begin does not wait. */
	expect_read_begin_nonblocking(mm, &t.sub, 1);
	expect_false(mmn_interval_read_retry(&t.sub, 1));
	/* A second missing region joins; still even. */
	{
		struct mmn_range r2;

		mmn_range_init(&r2, MMN_EVENT_UNMAP, 0, mm, 0x2000, 0x3000);
		expect_eq(mmn_invalidate_range_start(&r2), 0);
		expect_eq_ul(stats_of(mm).active, 2);
		expect_eq_ul(stats_of(mm).seq, 2);
		mmn_invalidate_range_end(&r2);
	}
	expect_eq_ul(stats_of(mm).active, 1);
	mmn_invalidate_range_end(&range);

	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 2);
	expect_eq(st.invalidations, 2);
	expect_eq(st.invalidations_hit, 0);
	expect_eq(st.notifiers_called, 0);
	expect_eq(st.read_begin_waits, 0);
	expect_eq(rec.n, 0);
	expect_eq(t.calls, 0);

	expect_eq(mmn_interval_notifier_remove(&t.sub), 0);
	expect_quiescent(mm);
	/* With no notifier left, an open region alone keeps the domain alive. */
	expect_eq(mmn_invalidate_range_start(&range), 0);
	expect_eq(mmn_mm_destroy(mm), -EBUSY);
	mmn_invalidate_range_end(&range);
	expect_eq_ul(stats_of(mm).seq, 2);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Scenario 9: a hitting range; cur_seq is the domain's odd seq; +1 at _end. */
TEST(s09_hit_range)
{
	struct mmn_mm *mm;
	struct tsub t, two;
	struct mmn_range range;
	struct mmn_stats st;
	struct bg r;
	unsigned long seq, seq2;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&t, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert_two_pass(&two, 2, mm, 0x1800, 0x1000), 0);
	seq = mmn_interval_read_begin(&t.sub);
	seq2 = mmn_interval_read_begin(&two.sub);
	expect_eq_ul(seq, 1);
	expect_eq_ul(seq2, 1);
	rec_reset();

	mmn_range_init(&range, MMN_EVENT_PROTECTION_VMA, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&range), 0);
	expect_eq(rec.n, 3);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x2000, 3);
	expect_call(1, 2, PASS_START, 0x1000, 0x2000, 3);
	expect_call(2, 2, PASS_FINISH, 0x1000, 0x2000, 3);
	/* Seen from inside the callbacks, the domain's seq is cur_seq, odd. */
	for (int i = 0; i < rec.n; i++) {
		expect_eq_ul(rec.e[i].dom_seq, rec.e[i].cur_seq);
		expect_eq_ul(rec.e[i].cur_seq & 1, 1);
	}
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.active, 1);
	expect_eq(st.invalidations_hit, 1);
	/* The callbacks' set_seq makes the old values stale. */
	expect_true(mmn_interval_read_retry(&t.sub, seq));
	expect_true(mmn_interval_check_retry(&t.sub, seq));
	expect_true(mmn_interval_read_retry(&two.sub, seq2));
	/* While the region is open, read_begin of a hit notifier waits. */
	bg_start(&r, BG_READ_BEGIN, &t.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(bg_done(&r));
	mmn_invalidate_range_end(&range);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, 3);

	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);		/* cur_seq + 1 */
	expect_eq_ul(st.active, 0);
	expect_eq(st.notifiers_called, 2);
	expect_eq(st.finishes, 1);
	/* After the period: the new value is current, and odd. */
	seq = mmn_interval_read_begin(&t.sub);
	expect_eq_ul(seq, 3);
	expect_false(mmn_interval_read_retry(&t.sub, seq));
	expect_eq_ul(mmn_interval_read_begin(&two.sub), 3);
	expect_eq(stats_of(mm).read_begin_waits, 1);

	expect_eq(mmn_interval_notifier_remove(&t.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&two.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Scenario 10: two overlapping hitting regions share one period. */
TEST(s10_overlapping_regions)
{
	struct mmn_mm *mm;
	struct tsub x;
	struct mmn_range a, b;
	struct mmn_stats st;
	struct bg r1, r2;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&x, 1, mm, 0x1000, 0x1000), 0);
	rec_reset();

	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x1800);
	mmn_range_init(&b, MMN_EVENT_CLEAR, 0, mm, 0x1400, 0x3000);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	/* The same notifier, twice, with two ranges and the same cur_seq. */
	expect_eq(rec.n, 2);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x1800, 3);
	expect_call(1, 1, PASS_SINGLE, 0x1400, 0x3000, 3);
	expect_eq(rec.e[1].event, MMN_EVENT_CLEAR);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.active, 2);

	bg_start(&r1, BG_READ_BEGIN, &x.sub);
	bg_start(&r2, BG_READ_BEGIN, &x.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 2, WAIT_MS));
	expect_false(bg_done(&r1));
	expect_false(bg_done(&r2));

	/* A's end leaves the period odd and the readers asleep. */
	mmn_invalidate_range_end(&a);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.active, 1);
	expect_false(wait_until(bg_done(&r1) || bg_done(&r2), BLOCKED_MS));

	/* B's end makes it even and wakes them all. */
	mmn_invalidate_range_end(&b);
	expect_bg_finishes(&r1);
	expect_bg_finishes(&r2);
	expect_eq_ul(r1.seq, 3);
	expect_eq_ul(r2.seq, 3);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);		/* exactly 2 for the period */
	expect_eq_ul(st.active, 0);
	expect_eq(st.invalidations, 2);
	expect_eq(st.invalidations_hit, 2);
	expect_eq(st.notifiers_called, 2);
	expect_eq(st.read_begin_waits, 2);
	expect_eq(x.calls, 2);

	/* Ends in the other order: B first, then A. Same outcome, seq 6. */
	rec_reset();
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	mmn_invalidate_range_end(&b);
	expect_eq_ul(stats_of(mm).seq, 5);
	mmn_invalidate_range_end(&a);
	expect_eq_ul(stats_of(mm).seq, 6);
	expect_eq(rec.n, 2);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x1800, 5);
	expect_call(1, 1, PASS_SINGLE, 0x1400, 0x3000, 5);

	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 16: read_begin during an odd period whose callbacks have not yet
 * reached this notifier does not wait; the callback then invalidates its seq.
 */
TEST(s16_read_begin_before_callback)
{
	struct mmn_mm *mm;
	struct tsub x, y;
	struct mmn_range a, b;
	unsigned long seq;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&x, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&y, 2, mm, 0x5000, 0x1000), 0);
	rec_reset();

	/* A hits only Y: the domain is odd, X untouched. */
	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, 0x5000, 0x5100);
	expect_eq(mmn_invalidate_range_start(&a), 0);
	expect_eq_ul(stats_of(mm).seq, 3);
	expect_eq(rec.n, 1);
	expect_call(0, 2, PASS_SINGLE, 0x5000, 0x5100, 3);

	expect_read_begin_nonblocking(mm, &x.sub, 1);
	seq = 1;
	expect_false(mmn_interval_read_retry(&x.sub, seq));
	/* Y's reader, by contrast, waits (see below). */

	/* B, in the same period, reaches X: cur_seq 3, and X's fault must retry. */
	mmn_range_init(&b, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x1100);
	expect_eq(mmn_invalidate_range_start(&b), 0);
	expect_eq(rec.n, 2);
	expect_call(1, 1, PASS_SINGLE, 0x1000, 0x1100, 3);
	expect_true(mmn_interval_check_retry(&x.sub, seq));
	expect_true(mmn_interval_read_retry(&x.sub, seq));
	mmn_invalidate_range_end(&b);
	mmn_invalidate_range_end(&a);

	expect_eq_ul(stats_of(mm).seq, 4);
	expect_eq(stats_of(mm).read_begin_waits, 0);
	seq = mmn_interval_read_begin(&x.sub);
	expect_eq_ul(seq, 3);
	expect_false(mmn_interval_read_retry(&x.sub, seq));

	expect_eq(mmn_interval_notifier_remove(&x.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&y.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Scenario 17: check_retry is lock-free: false before set_seq, true after. */
struct s17_sub {
	struct tsub t;			/* only its notifier is used */
	pthread_mutex_t user_lock;
	unsigned long reader_seq;
	int before, after;		/* check_retry results inside the callback */
};

static bool s17_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct s17_sub *s = (struct s17_sub *)sub;

	pthread_mutex_lock(&s->user_lock);
	s->before = mmn_interval_check_retry(sub, s->reader_seq);
	mmn_interval_set_seq(sub, cur_seq);
	s->after = mmn_interval_check_retry(sub, s->reader_seq);
	pthread_mutex_unlock(&s->user_lock);
	(void)range;
	return true;
}

static const struct mmn_interval_notifier_ops s17_ops = { .invalidate = s17_invalidate };

struct s17_holder {
	pthread_mutex_t *lock;
	bool held, release;		/* atomic */
};

static void *s17_hold_lock(void *arg)
{
	struct s17_holder *h = arg;

	pthread_mutex_lock(h->lock);
	__atomic_store_n(&h->held, true, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&h->release, __ATOMIC_ACQUIRE))
		sched_yield();
	pthread_mutex_unlock(h->lock);
	return NULL;
}

TEST(s17_check_retry)
{
	struct mmn_mm *mm;
	struct s17_sub s = { .user_lock = PTHREAD_MUTEX_INITIALIZER };
	struct s17_holder h = { .lock = &s.user_lock };
	struct mmn_range range;
	pthread_t holder;
	unsigned long seq;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&s.t.sub, mm, 0x1000, 0x1000, &s17_ops), 0);
	seq = mmn_interval_read_begin(&s.t.sub);
	s.reader_seq = seq;
	expect_false(mmn_interval_check_retry(&s.t.sub, seq));

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x1001);
	expect_eq(mmn_invalidate_range_start(&range), 0);
	/* Inside the callback, under the user lock. */
	expect_eq(s.before, 0);
	expect_eq(s.after, 1);

	/* Another thread holds the user lock: check_retry still answers. */
	pthread_create(&holder, NULL, s17_hold_lock, &h);
	expect_true(wait_until(__atomic_load_n(&h.held, __ATOMIC_ACQUIRE), WAIT_MS));
	expect_true(mmn_interval_check_retry(&s.t.sub, seq));
	expect_false(mmn_interval_check_retry(&s.t.sub, 3));
	__atomic_store_n(&h.release, true, __ATOMIC_RELEASE);
	pthread_join(holder, NULL);

	mmn_invalidate_range_end(&range);
	/* Still true after the period: the collision happened. */
	expect_true(mmn_interval_check_retry(&s.t.sub, seq));
	expect_true(mmn_interval_read_retry(&s.t.sub, seq));
	seq = mmn_interval_read_begin(&s.t.sub);
	expect_eq_ul(seq, 3);
	expect_false(mmn_interval_check_retry(&s.t.sub, seq));
	/* NULL notifier: always "retry". */
	expect_true(mmn_interval_check_retry(NULL, seq));
	expect_true(mmn_interval_read_retry(NULL, seq));

	expect_eq(mmn_interval_notifier_remove(&s.t.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(s07_first_insert);
	RUN(s08_miss_range);
	RUN(s09_hit_range);
	RUN(s10_overlapping_regions);
	RUN(s16_read_begin_before_callback);
	RUN(s17_check_retry);
	return test_report();
}
