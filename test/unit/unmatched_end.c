// SPDX-License-Identifier: MIT
/*
 * An unmatched mmn_invalidate_range_end() changes nothing (issue 12, item 2).
 *
 * Thread A (innocent) has a region open that hit notifier N; thread C waits
 * in remove(N). Thread B (culprit) then calls _end without a matching open
 * region of its own: after an -EAGAIN start, a second time after one start,
 * with A's range (an _end from another thread), and with a range it never
 * started. Each must warn (counted in the domain's stats, reported through
 * the log hook on B's thread, naming B's range) and change nothing: A's
 * region stays open, the period stays odd, the removal stays deferred and
 * remove() keeps waiting -- until A's own _end, which warns about nothing.
 *
 * Before the fix, B's _end closed "a" region of the domain: A's. The period
 * ended under A's walk, the deferred removal was applied and remove()
 * returned while N's callback was still running.
 */
#include "scenario_util.h"

/* ---- a log hook that records the reporting thread --------------------- */

#define LOG_MAX 32

struct log_entry {
	enum mmn_log_level level;
	const char *what;
	struct mmn_mm *mm;
	unsigned long start, end;
	pthread_t thread;
};

static struct log_entry log_entries[LOG_MAX];
static unsigned int log_n;	/* atomic */

static void thread_log_hook(const struct mmn_log_record *rec, void *arg)
{
	unsigned int i = __atomic_fetch_add(&log_n, 1, __ATOMIC_RELAXED);

	(void)arg;
	if (i < LOG_MAX)
		log_entries[i] = (struct log_entry){ rec->level, rec->what, rec->mm,
						     rec->start, rec->end, pthread_self() };
}

static unsigned int log_count(void)
{
	return __atomic_load_n(&log_n, __ATOMIC_RELAXED);
}

/* ---- notifiers ------------------------------------------------------------ */

static struct gate cb_gate = GATE_INIT;
static bool cb_blocks;		/* N's callback waits on cb_gate */
static bool cb_done;		/* atomic: N's last callback returned */

static bool n_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	if (cb_blocks)
		gate_wait(&cb_gate);
	flag_set(&cb_done, true);
	return true;
}

static const struct mmn_interval_notifier_ops n_ops = { .invalidate = n_invalidate };

/* Fails every non-blockable range: makes the _nonblock start say -EAGAIN. */
static bool m_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq)
{
	if (!mmn_range_blockable(range))
		return false;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops m_ops = { .invalidate = m_invalidate };

#define N_START 0x1000UL
#define M_START 0x5000UL
#define FREE_START 0x8000UL	/* no notifier here */
#define PG 0x1000UL

/* ---- threads ------------------------------------------------------------- */

struct remover {
	struct mmn_interval_notifier *sub;
	int ret;
	bool done;		/* atomic */
	bool cb_done_at_return;	/* was N's callback over when remove returned? */
};

static void *remover_main(void *arg)
{
	struct remover *r = arg;

	r->ret = mmn_interval_notifier_remove(r->sub);
	r->cb_done_at_return = flag_get(&cb_done);
	flag_set(&r->done, true);
	return NULL;
}

/* Thread A's region, opened on a thread of its own when it must block. */
struct opener {
	struct mmn_range range;
	int ret;
	bool started;		/* atomic: start returned */
	struct gate end_now;	/* opened: end the region */
	bool ended;		/* atomic */
};

static void *opener_main(void *arg)
{
	struct opener *o = arg;

	o->ret = mmn_invalidate_range_start(&o->range);
	flag_set(&o->started, true);
	gate_wait(&o->end_now);
	if (o->ret == 0)
		mmn_invalidate_range_end(&o->range);
	flag_set(&o->ended, true);
	return NULL;
}

enum culprit {
	AFTER_EAGAIN,		/* _end after a start that said -EAGAIN */
	DOUBLE_END,		/* a second _end after one start */
	OTHERS_RANGE,		/* _end of A's range, from thread B */
	NEVER_STARTED,		/* _end of a range B never started */
};

static const char *const culprit_names[] = {
	"after -EAGAIN", "second _end", "another thread's range", "never started",
};

struct culprit_ctx {
	struct mmn_mm *mm;
	enum culprit what;
	struct mmn_range *others;	/* OTHERS_RANGE */
	struct mmn_range range;		/* B's own range */
	int start_ret;
	pthread_t self;
	unsigned int log_before;	/* log records before the bad _end */
};

static void *culprit_main(void *arg)
{
	struct culprit_ctx *c = arg;

	c->self = pthread_self();
	switch (c->what) {
	case AFTER_EAGAIN:
		mmn_range_init(&c->range, MMN_EVENT_UNMAP, 0, c->mm, M_START, M_START + PG);
		c->start_ret = mmn_invalidate_range_start_nonblock(&c->range);
		c->log_before = log_count();
		mmn_invalidate_range_end(&c->range);
		break;
	case DOUBLE_END:
		mmn_range_init(&c->range, MMN_EVENT_UNMAP, 0, c->mm, FREE_START, FREE_START + PG);
		c->start_ret = mmn_invalidate_range_start(&c->range);
		mmn_invalidate_range_end(&c->range);
		c->log_before = log_count();
		mmn_invalidate_range_end(&c->range);
		break;
	case OTHERS_RANGE:
		c->log_before = log_count();
		mmn_invalidate_range_end(c->others);
		break;
	case NEVER_STARTED:
		mmn_range_init(&c->range, MMN_EVENT_UNMAP, 0, c->mm, FREE_START, FREE_START + PG);
		c->log_before = log_count();
		mmn_invalidate_range_end(&c->range);
		break;
	}
	return NULL;
}

/* Run one culprit on thread B; check its warning. */
static void run_culprit(struct mmn_mm *mm, enum culprit what, struct mmn_range *others)
{
	struct culprit_ctx c = { .mm = mm, .what = what, .others = others };
	unsigned long want_start, want_end;
	pthread_t t;
	uint64_t warnings = stats_of(mm).warnings;

	assert_eq(pthread_create(&t, NULL, culprit_main, &c), 0);
	assert_eq(pthread_join(t, NULL), 0);
	printf("    culprit: %s\n", culprit_names[what]);
	if (what == AFTER_EAGAIN)
		expect_eq(c.start_ret, -EAGAIN);
	if (what == DOUBLE_END)
		expect_eq(c.start_ret, 0);
	want_start = what == OTHERS_RANGE ? others->start : c.range.start;
	want_end = what == OTHERS_RANGE ? others->end : c.range.end;

	/* Exactly one warning, counted, and reported on B's thread about B's call. */
	expect_eq(stats_of(mm).warnings, warnings + 1);
	expect_eq(log_count(), c.log_before + 1);
	if (log_count() == c.log_before + 1 && c.log_before < LOG_MAX) {
		struct log_entry *e = &log_entries[c.log_before];

		expect_eq(e->level, MMN_LOG_WARN);
		expect_eq_ptr(e->mm, mm);
		expect_eq_ul(e->start, want_start);
		expect_eq_ul(e->end, want_end);
		expect_true(pthread_equal(e->thread, c.self));
		expect_true(e->what && strstr(e->what, "mmn_invalidate_range_end"));
	}
}

/* A's region is open and untouched; C still waits with N's removal deferred. */
static void expect_innocent_intact(struct mmn_mm *mm, struct mmn_interval_notifier *n,
				   struct remover *c, unsigned long odd_seq)
{
	struct mmn_stats st = stats_of(mm);

	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.seq, odd_seq);
	expect_eq_ul(st.deferred, 1);
	expect_eq(st.deferred_removes, 1);
	expect_true(mmn_interval_notifier_test_in_tree(n));
	expect_false(flag_get(&c->done));
}

/*
 * A between its start and its _end (on the test's main thread); every kind of
 * unmatched _end on thread B, one after another.
 */
TEST(unmatched_end_leaves_innocent_region_open)
{
	struct mmn_interval_notifier n = { 0 }, m = { 0 };
	struct remover c = { .sub = &n };
	struct mmn_range a;
	struct mmn_mm *mm;
	unsigned long odd_seq;
	unsigned int log_before;
	pthread_t ct;

	__atomic_store_n(&log_n, 0, __ATOMIC_RELAXED);
	mmn_set_log_fn(thread_log_hook, NULL);
	cb_blocks = false;
	flag_set(&cb_done, false);
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &n_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&m, mm, M_START, PG, &m_ops), 0);

	mmn_range_init(&a, MMN_EVENT_UNMAP, 0, mm, N_START, N_START + PG);
	assert_eq(mmn_invalidate_range_start(&a), 0);
	odd_seq = stats_of(mm).seq;
	expect_eq_ul(odd_seq & 1, 1);

	assert_eq(pthread_create(&ct, NULL, remover_main, &c), 0);
	assert_true(wait_until(stats_of(mm).remove_waits == 1, WAIT_MS));
	expect_innocent_intact(mm, &n, &c, odd_seq);

	for (enum culprit w = AFTER_EAGAIN; w <= NEVER_STARTED; w++) {
		run_culprit(mm, w, &a);
		expect_innocent_intact(mm, &n, &c, odd_seq);
	}

	/* A's own _end is matched: no warning; the period ends; C returns. */
	log_before = log_count();
	mmn_invalidate_range_end(&a);
	expect_eq(log_count(), log_before);
	assert_true(wait_until(flag_get(&c.done), WAIT_MS));
	pthread_join(ct, NULL);
	expect_eq(c.ret, 0);
	expect_false(mmn_interval_notifier_test_in_tree(&n));
	expect_eq_ul(stats_of(mm).active, 0);
	expect_eq_ul(stats_of(mm).seq, odd_seq + 1);
	expect_eq(stats_of(mm).warnings, 4);
	expect_eq(mmn_interval_notifier_remove(&m), 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	destroy_mm(mm);
	mmn_set_log_fn(NULL, NULL);
}

/*
 * A inside N's callback (blocked on a gate) when B's unmatched _end comes: the
 * walk is running, so the period must not end, and remove(N) must not return
 * before N's callback has.
 */
TEST(unmatched_end_during_innocent_walk)
{
	struct mmn_interval_notifier n = { 0 };
	struct remover c = { .sub = &n };
	struct opener a = { .ret = 12345, .end_now = GATE_INIT };
	struct mmn_mm *mm;
	unsigned long odd_seq;
	unsigned int log_before;
	pthread_t at, ct;

	__atomic_store_n(&log_n, 0, __ATOMIC_RELAXED);
	mmn_set_log_fn(thread_log_hook, NULL);
	cb_blocks = true;
	gate_close(&cb_gate);
	flag_set(&cb_done, false);
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &n_ops), 0);

	mmn_range_init(&a.range, MMN_EVENT_UNMAP, 0, mm, N_START, N_START + PG);
	assert_eq(pthread_create(&at, NULL, opener_main, &a), 0);
	assert_true(wait_until(gate_waiting(&cb_gate) == 1, WAIT_MS));
	odd_seq = stats_of(mm).seq;
	expect_eq_ul(odd_seq & 1, 1);
	assert_eq(pthread_create(&ct, NULL, remover_main, &c), 0);
	assert_true(wait_until(stats_of(mm).remove_waits == 1, WAIT_MS));

	run_culprit(mm, NEVER_STARTED, NULL);
	expect_innocent_intact(mm, &n, &c, odd_seq);
	run_culprit(mm, OTHERS_RANGE, &a.range);
	expect_innocent_intact(mm, &n, &c, odd_seq);
	expect_false(flag_get(&a.started));

	/* Let the walk finish; A ends its region itself, without a warning. */
	log_before = log_count();
	gate_open(&cb_gate);
	assert_true(wait_until(flag_get(&a.started), WAIT_MS));
	expect_eq(a.ret, 0);
	expect_innocent_intact(mm, &n, &c, odd_seq);
	gate_open(&a.end_now);
	assert_true(wait_until(flag_get(&a.ended) && flag_get(&c.done), WAIT_MS));
	pthread_join(at, NULL);
	pthread_join(ct, NULL);
	expect_eq(log_count(), log_before);
	expect_eq(c.ret, 0);
	expect_true(c.cb_done_at_return);
	expect_false(mmn_interval_notifier_test_in_tree(&n));
	expect_eq(stats_of(mm).warnings, 2);
	expect_eq_ul(stats_of(mm).seq, odd_seq + 1);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	destroy_mm(mm);
	mmn_set_log_fn(NULL, NULL);
	cb_blocks = false;
}

/* Ends out of order on one thread are matched, each to its own region. */
TEST(out_of_order_ends_on_one_thread)
{
	struct mmn_interval_notifier n = { 0 };
	struct mmn_range r1, r2, r3;
	struct mmn_mm *mm;

	__atomic_store_n(&log_n, 0, __ATOMIC_RELAXED);
	mmn_set_log_fn(thread_log_hook, NULL);
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &n_ops), 0);
	mmn_range_init(&r1, MMN_EVENT_UNMAP, 0, mm, N_START, N_START + PG);
	mmn_range_init(&r2, MMN_EVENT_UNMAP, 0, mm, FREE_START, FREE_START + PG);
	mmn_range_init(&r3, MMN_EVENT_UNMAP, 0, mm, N_START, N_START + PG);
	assert_eq(mmn_invalidate_range_start(&r1), 0);
	assert_eq(mmn_invalidate_range_start(&r2), 0);
	assert_eq(mmn_invalidate_range_start(&r3), 0);
	/* A range already open cannot be started again. */
	expect_eq(mmn_invalidate_range_start(&r2), -EBUSY);
	expect_eq_ul(stats_of(mm).active, 3);
	mmn_invalidate_range_end(&r1);
	expect_eq_ul(stats_of(mm).active, 2);
	mmn_invalidate_range_end(&r3);
	expect_eq_ul(stats_of(mm).active, 1);
	expect_eq_ul(stats_of(mm).seq & 1, 1);
	mmn_invalidate_range_end(&r2);
	expect_eq_ul(stats_of(mm).active, 0);
	expect_eq_ul(stats_of(mm).seq, 4);
	expect_eq(stats_of(mm).warnings, 0);
	/* One error record: the refused second start. */
	expect_eq(log_count(), 1);
	expect_eq(log_entries[0].level, MMN_LOG_ERROR);
	/* Each is closed now. */
	mmn_invalidate_range_end(&r2);
	expect_eq(stats_of(mm).warnings, 1);
	expect_eq(mmn_interval_notifier_remove(&n), 0);
	destroy_mm(mm);
	mmn_set_log_fn(NULL, NULL);
}

/* _end closes the region on the domain it was opened on, whatever ->mm says now. */
TEST(end_uses_the_opening_domain)
{
	struct mmn_interval_notifier n = { 0 };
	struct mmn_range r;
	struct mmn_mm *mm, *other;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_mm_new(&other), 0);
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &n_ops), 0);
	for (int i = 0; i < 2; i++) {
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, N_START, N_START + PG);
		assert_eq(mmn_invalidate_range_start(&r), 0);
		r.mm = i ? NULL : other;	/* the caller scribbled on it */
		mmn_invalidate_range_end(&r);
		expect_eq_ul(stats_of(mm).active, 0);
		expect_eq_ul(stats_of(mm).seq & 1, 0);
		expect_eq(stats_of(mm).warnings, 0);
		expect_eq(stats_of(other).warnings, 0);
		expect_eq_ul(stats_of(other).active, 0);
	}
	expect_eq(mmn_interval_notifier_remove(&n), 0);
	destroy_mm(mm);
	destroy_mm(other);
}

int main(void)
{
	RUN(unmatched_end_leaves_innocent_region_open);
	RUN(unmatched_end_during_innocent_walk);
	RUN(out_of_order_ends_on_one_thread);
	RUN(end_uses_the_opening_domain);
	return test_report();
}
