// SPDX-License-Identifier: MIT
/*
 * pthread_cancel() of a thread waiting in mmn_interval_read_begin() or
 * mmn_interval_notifier_remove() (issue 12, item 3).
 *
 * The waits are not cancellation points: the cancel stays pending while the
 * thread waits, the call completes normally when the period ends (remove
 * with the notifier removed, as it promises), and the thread dies at its next
 * cancellation point. The domain lock is never left held, and no waiter is
 * left counted.
 *
 * Before the fix the thread was cancelled inside pthread_cond_wait(), which
 * re-acquires the mutex, and died holding the domain lock: the next _end,
 * invalidation or remove hung. Here those run on a helper thread with a
 * bounded wait, so such a hang fails the test instead of hanging it.
 */
#include "scenario_util.h"

#define N_START 0x1000UL
#define PG 0x1000UL

static bool inv_noop(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops noop_ops = { .invalidate = inv_noop };

enum wait_kind { IN_READ_BEGIN, IN_REMOVE };

struct victim {
	enum wait_kind kind;
	struct mmn_interval_notifier *sub;
	unsigned long seq;
	int ret;
	bool returned;		/* atomic: the libmmn call returned */
};

static void *victim_main(void *arg)
{
	struct victim *v = arg;

	/* Deferred cancellation, the default: act at cancellation points. */
	if (v->kind == IN_READ_BEGIN)
		v->seq = mmn_interval_read_begin(v->sub);
	else
		v->ret = mmn_interval_notifier_remove(v->sub);
	flag_set(&v->returned, true);
	pthread_testcancel();
	return NULL;	/* not reached when cancelled */
}

/*
 * The holder opens a region that hits the notifier, so read_begin and remove
 * must wait; after the cancel it ends the region and runs an invalidation and
 * (for read_begin) the remove: all must complete. Bounded by the test.
 */
struct holder {
	struct mmn_mm *mm;
	struct mmn_interval_notifier *sub;
	enum wait_kind kind;
	struct gate go;		/* opened after the cancel */
	unsigned long odd_seq;
	int open_ret, inv_ret, remove_ret;
	bool opened;		/* atomic */
	bool done;		/* atomic */
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	struct mmn_range open, range;

	mmn_range_init(&open, MMN_EVENT_UNMAP, 0, h->mm, N_START, N_START + PG);
	h->open_ret = mmn_invalidate_range_start(&open);
	h->odd_seq = stats_of(h->mm).seq;
	flag_set(&h->opened, true);
	gate_wait(&h->go);
	if (h->open_ret == 0)
		mmn_invalidate_range_end(&open);
	/* An invalidation of the same notifier, and its removal. */
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, h->mm, N_START, N_START + PG);
	h->inv_ret = mmn_invalidate_range_start(&range);
	if (h->inv_ret == 0)
		mmn_invalidate_range_end(&range);
	h->remove_ret = h->kind == IN_READ_BEGIN ? mmn_interval_notifier_remove(h->sub) : 0;
	flag_set(&h->done, true);
	return NULL;
}

static void cancel_while_waiting(enum wait_kind kind)
{
	struct mmn_interval_notifier n = { 0 };
	struct victim v = { .kind = kind, .sub = &n, .ret = 12345 };
	struct holder h = { .kind = kind, .sub = &n, .go = GATE_INIT, .open_ret = 12345 };
	struct mmn_stats st;
	struct mmn_mm *mm;
	pthread_t vt, ht;
	void *exit_value = NULL;

	assert_eq(mmn_mm_new(&mm), 0);
	h.mm = mm;
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &noop_ops), 0);
	assert_eq(pthread_create(&ht, NULL, holder_main, &h), 0);
	assert_true(wait_until(flag_get(&h.opened), WAIT_MS));
	assert_eq(h.open_ret, 0);
	expect_eq_ul(h.odd_seq & 1, 1);

	assert_eq(pthread_create(&vt, NULL, victim_main, &v), 0);
	/* Counted under the lock just before the wait: it is asleep in it. */
	if (kind == IN_READ_BEGIN)
		assert_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	else
		assert_true(wait_until(stats_of(mm).remove_waits == 1, WAIT_MS));
	assert_eq(pthread_cancel(vt), 0);

	/* The victim's cancellation must not have taken the domain with it. */
	gate_open(&h.go);
	if (!wait_until(flag_get(&h.done), WAIT_MS)) {
		test_fail_at(__FILE__, __LINE__);
		fprintf(stderr, "    _end/invalidate/remove hang after the cancel: the cancelled thread left the domain lock held\n");
		test_exit_now();
	}
	pthread_join(ht, NULL);
	expect_eq(h.inv_ret, 0);
	expect_eq(h.remove_ret, 0);

	/* The victim finished its call, then died at its next cancellation point. */
	assert_eq(pthread_join(vt, &exit_value), 0);
	expect_eq_ptr(exit_value, PTHREAD_CANCELED);
	expect_true(flag_get(&v.returned));
	if (kind == IN_READ_BEGIN) {
		expect_eq_ul(v.seq, h.odd_seq);
		/* The holder's later invalidation hit n: a retry is due. */
		expect_true(mmn_interval_read_retry(&n, v.seq));
	} else {
		expect_eq(v.ret, 0);
	}
	expect_false(mmn_interval_notifier_test_in_tree(&n));
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.notifiers, 0);
	expect_eq_ul(st.seq & 1, 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	/* No waiter left counted: the domain can be freed. */
	destroy_mm(mm);
}

TEST(cancel_in_read_begin)
{
	cancel_while_waiting(IN_READ_BEGIN);
}

TEST(cancel_in_remove)
{
	cancel_while_waiting(IN_REMOVE);
}

/* The caller's cancellation state is given back unchanged. */
TEST(cancel_state_restored)
{
	struct mmn_interval_notifier n = { 0 };
	struct mmn_range range;
	struct mmn_mm *mm;
	int old;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&n, mm, N_START, PG, &noop_ops), 0);
	for (int state = 0; state < 2; state++) {
		int want = state ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;

		assert_eq(pthread_setcancelstate(want, &old), 0);
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, N_START, N_START + PG);
		assert_eq(mmn_invalidate_range_start(&range), 0);
		mmn_invalidate_range_end(&range);
		(void)mmn_interval_read_begin(&n);
		assert_eq(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old), 0);
		expect_eq(old, want);
	}
	expect_eq(mmn_interval_notifier_remove(&n), 0);
	destroy_mm(mm);
}

/*
 * The log hook is not a cancellation point: reporters may hold locks of their
 * own around mmn_log(). A hook that reaches a cancellation point with a cancel
 * pending returns; the thread dies at its own next one.
 */
static bool hook_returned;	/* atomic */

static void testcancel_hook(const struct mmn_log_record *rec, void *arg)
{
	(void)rec;
	(void)arg;
	pthread_testcancel();
	flag_set(&hook_returned, true);
}

/* Its own frame: the cancellation below unwinds no instrumented locals (ASan). */
static __attribute__((noinline)) void log_one(void)
{
	struct mmn_log_record rec = { .level = MMN_LOG_INFO, .what = "cancel test" };

	mmn_log(&rec);
}

static void *log_under_cancel_main(void *arg)
{
	(void)arg;
	pthread_cancel(pthread_self());		/* pending: deferred type */
	log_one();
	pthread_testcancel();
	return NULL;
}

TEST(log_hook_not_a_cancellation_point)
{
	void *exit_value = NULL;
	pthread_t t;

	flag_set(&hook_returned, false);
	mmn_set_log_fn(testcancel_hook, NULL);
	assert_eq(pthread_create(&t, NULL, log_under_cancel_main, NULL), 0);
	assert_eq(pthread_join(t, &exit_value), 0);
	mmn_set_log_fn(NULL, NULL);
	expect_eq_ptr(exit_value, PTHREAD_CANCELED);
	expect_true(flag_get(&hook_returned));
}

int main(void)
{
	RUN(cancel_in_read_begin);
	RUN(cancel_in_remove);
	RUN(cancel_state_restored);
	RUN(log_hook_not_a_cancellation_point);
	return test_report();
}
