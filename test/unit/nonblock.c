// SPDX-License-Identifier: MIT
/*
 * Non-blockable invalidation and callback failures (docs/TESTING.md
 * scenarios 20-23; 24 does not apply, D7): -EAGAIN stops the walk, runs the
 * finishes already queued and closes the region; a false return on a
 * blockable range is a counted, logged warning and the walk goes on.
 */
#include "recorder.h"

#define POISON ((struct mmn_interval_notifier *)(uintptr_t)0x5a5a5a5a)

struct warn_capture {
	int warnings, others;
	struct mmn_log_record recs[8];
};

static void capture_log(const struct mmn_log_record *r, void *arg)
{
	struct warn_capture *c = arg;

	if (r->level != MMN_LOG_WARN) {
		c->others++;
		return;
	}
	if (c->warnings < 8)
		c->recs[c->warnings] = *r;
	c->warnings++;
}

/*
 * Scenario 20: subs at 0x1000 (two-pass, hands back a finish), 0x2000
 * (single-pass, false on a non-blockable range) and 0x3000. -EAGAIN; the first
 * two are called once, the first's finish runs, the third is never called; the
 * region is closed by the core: deferred items applied, waiters woken.
 */
static struct {
	struct mmn_mm *mm;
	struct tsub d, e;
	struct bg reader, remover;
	int insert_ret;
	bool reader_blocked, remover_blocked;
} s20;

static void s20_hook(struct tsub *t, const struct mmn_range *range, unsigned long cur_seq)
{
	struct tsub *a = t->hook_arg;

	(void)range;
	(void)cur_seq;
	t->hook = NULL;		/* once */
	/* An insert from a callback is deferred like any other. */
	s20.insert_ret = tsub_insert(&s20.d, 4, s20.mm, 0x5000, 0x1000);
	/* A reader of A (hit, seq == cur_seq) and a remover of E both wait. */
	bg_start(&s20.reader, BG_READ_BEGIN, &a->sub);
	s20.reader_blocked = wait_until(stats_of(s20.mm).read_begin_waits == 1, WAIT_MS);
	bg_start(&s20.remover, BG_REMOVE, &s20.e.sub);
	s20.remover_blocked = wait_until(stats_of(s20.mm).remove_waits == 1, WAIT_MS);
}

TEST(s20_nonblock_failure_midwalk)
{
	struct mmn_mm *mm;
	struct tsub a, b, c;
	struct mmn_range range;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	s20.mm = mm;
	assert_eq(tsub_insert_two_pass(&a, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&b, 2, mm, 0x2000, 0x1000), 0);
	assert_eq(tsub_insert(&c, 3, mm, 0x3000, 0x1000), 0);
	assert_eq(tsub_insert(&s20.e, 5, mm, 0x8000, 0x1000), 0);
	b.ret_nonblock_false = true;
	b.hook = s20_hook;
	b.hook_arg = &a;
	rec_reset();

	mmn_range_init(&range, MMN_EVENT_MIGRATE, MMN_RANGE_BLOCKABLE, mm, 0x1000, 0x4000);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), -EAGAIN);
	expect_eq(range.flags & MMN_RANGE_BLOCKABLE, 0);

	expect_eq(rec.n, 3);
	expect_call(0, 1, PASS_START, 0x1000, 0x4000, 3);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x4000, 3);
	expect_call(2, 1, PASS_FINISH, 0x1000, 0x4000, 3);
	for (int i = 0; i < rec.n; i++) {
		expect_false(rec.e[i].blockable);
		expect_eq_ul(rec.e[i].dom_seq, 3);	/* finish ran before the close */
		expect_true(pthread_equal(rec.e[i].thread, pthread_self()));
	}
	expect_eq(a.calls, 1);
	expect_eq(a.finishes, 1);
	expect_eq(b.calls, 1);
	expect_eq(c.calls, 0);

	/* What happened inside B's callback. */
	expect_eq(s20.insert_ret, 0);
	expect_true(s20.reader_blocked);
	expect_true(s20.remover_blocked);

	/* The core closed the region: even seq, deferred items applied, waiters woken. */
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.deferred, 0);
	expect_eq(st.deferred_inserts, 1);
	expect_eq(st.deferred_removes, 1);
	expect_eq(st.nonblock_failures, 1);
	expect_eq(st.notifiers_called, 2);
	expect_eq(st.finishes, 1);
	expect_eq(st.invalidations, 1);
	expect_eq(st.invalidations_hit, 1);
	expect_eq(st.warnings, 0);
	expect_true(mmn_interval_notifier_test_in_tree(&s20.d.sub));
	expect_false(mmn_interval_notifier_test_in_tree(&s20.e.sub));
	expect_eq_ul(st.notifiers, 4);
	expect_bg_finishes(&s20.reader);
	expect_bg_finishes(&s20.remover);
	expect_eq_ul(s20.reader.seq, 3);
	expect_eq(s20.remover.ret, 0);

	/* A's readers retry although the change was abandoned; C's do not. */
	expect_true(mmn_interval_read_retry(&a.sub, 1));
	expect_false(mmn_interval_read_retry(&c.sub, 1));

	/* Later invalidations work; D is now called, E is not. */
	rec_reset();
	expect_eq(invalidate(mm, 0x1000, 0x9000), 0);
	expect_eq(rec.n, 5);
	expect_call(0, 1, PASS_START, 0x1000, 0x9000, 5);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x9000, 5);
	expect_call(2, 3, PASS_SINGLE, 0x1000, 0x9000, 5);
	expect_call(3, 4, PASS_SINGLE, 0x1000, 0x9000, 5);
	expect_call(4, 1, PASS_FINISH, 0x1000, 0x9000, 5);
	expect_eq(s20.e.calls, 0);
	expect_eq(stats_of(mm).warnings, 0);	/* B returns false only when non-blockable */

	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&s20.d.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 21: non-blockable, every callback succeeds: 0; the finishes have
 * run before the start returns; the region stays open until _end.
 */
TEST(s21_nonblock_success)
{
	struct mmn_mm *mm;
	struct tsub a, b;
	struct mmn_range range;
	struct mmn_stats st;
	struct bg r;
	const unsigned int other_flag = 1u << 5;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert_two_pass(&a, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&b, 2, mm, 0x2000, 0x1000), 0);
	rec_reset();

	/* Only MMN_RANGE_BLOCKABLE is cleared; other flag bits stay. */
	mmn_range_init(&range, MMN_EVENT_UNMAP, MMN_RANGE_BLOCKABLE | other_flag, mm, 0x1000,
		       0x3000);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), 0);
	expect_eq(range.flags, other_flag);
	expect_eq(rec.n, 3);
	expect_call(0, 1, PASS_START, 0x1000, 0x3000, 3);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x3000, 3);
	expect_call(2, 1, PASS_FINISH, 0x1000, 0x3000, 3);
	expect_false(rec.e[0].blockable);
	expect_false(rec.e[1].blockable);
	st = stats_of(mm);
	expect_eq_ul(st.active, 1);
	expect_eq_ul(st.seq, 3);
	expect_eq(st.finishes, 1);
	expect_eq(st.nonblock_failures, 0);

	/* Open: a reader of A waits for _end. */
	bg_start(&r, BG_READ_BEGIN, &a.sub);
	expect_true(wait_until(stats_of(mm).read_begin_waits == 1, WAIT_MS));
	expect_false(bg_done(&r));
	mmn_invalidate_range_end(&range);
	expect_bg_finishes(&r);
	expect_eq_ul(r.seq, 3);
	/* No callback at _end. */
	expect_eq(rec.n, 3);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 4);

	/* The blockable start sets the flag again, leaving the other bit. */
	rec_reset();
	expect_eq(mmn_invalidate_range_start(&range), 0);
	expect_eq(range.flags, MMN_RANGE_BLOCKABLE | other_flag);
	expect_true(rec.e[0].blockable);
	mmn_invalidate_range_end(&range);

	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Scenario 22: a false return on a blockable range is a warning (counted and
 * logged); the walk goes on and the start returns 0. A two-pass start that
 * returns false has its finish neither queued nor called.
 */
TEST(s22_blockable_false_warns)
{
	struct mmn_mm *mm;
	struct tsub a, b, c;
	struct mmn_range range;
	struct mmn_stats st;
	struct warn_capture cap = { 0 };
	const char *env = getenv("MMN_ABORT_ON_WARN");

	if (env && strcmp(env, "1") == 0) {
		printf("  (s22 not run: MMN_ABORT_ON_WARN=1 turns its warnings into aborts)\n");
		return;
	}
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert_two_pass(&a, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert(&b, 2, mm, 0x2000, 0x1000), 0);
	assert_eq(tsub_insert_two_pass(&c, 3, mm, 0x3000, 0x1000), 0);
	a.ret_blockable_false = true;	/* and hands back its finish anyway */
	a.fin.f.notifier = POISON;
	b.ret_blockable_false = true;
	rec_reset();
	mmn_set_log_fn(capture_log, &cap);

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x4000);
	expect_eq(mmn_invalidate_range_start(&range), 0);
	mmn_set_log_fn(NULL, NULL);

	expect_eq(rec.n, 4);
	expect_call(0, 1, PASS_START, 0x1000, 0x4000, 3);
	expect_call(1, 2, PASS_SINGLE, 0x1000, 0x4000, 3);
	expect_call(2, 3, PASS_START, 0x1000, 0x4000, 3);
	expect_call(3, 3, PASS_FINISH, 0x1000, 0x4000, 3);
	expect_eq(a.finishes, 0);
	expect_eq_ptr(a.fin.f.notifier, POISON);	/* never queued */

	st = stats_of(mm);
	expect_eq(st.warnings, 2);
	expect_eq(st.notifiers_called, 3);
	expect_eq(st.finishes, 1);
	expect_eq(st.nonblock_failures, 0);
	expect_eq_ul(st.active, 1);		/* 0 returned: the region is open */
	expect_eq_ul(st.seq, 3);
	expect_eq(cap.warnings, 2);
	expect_eq(cap.others, 0);
	expect_eq_ptr(cap.recs[0].sub, &a.sub);
	expect_eq_ptr(cap.recs[1].sub, &b.sub);
	expect_eq_ptr(cap.recs[0].mm, mm);
	expect_eq_ul(cap.recs[0].start, 0x1000);
	expect_eq_ul(cap.recs[0].end, 0x4000);
	expect_ne_ptr(cap.recs[0].what, NULL);

	mmn_invalidate_range_end(&range);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq(st.warnings, 2);

	/* Release: a false return also only warns. */
	mmn_mm_release(mm);
	expect_eq(stats_of(mm).warnings, 4);
	expect_eq(c.finishes, 2);
	expect_eq(a.finishes, 0);

	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Scenario 23: non-blockable failure in the first notifier: no finish at all. */
TEST(s23_nonblock_first_fails)
{
	struct mmn_mm *mm;
	struct tsub a, b;
	struct mmn_range range;
	struct mmn_stats st;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(tsub_insert(&a, 1, mm, 0x1000, 0x1000), 0);
	assert_eq(tsub_insert_two_pass(&b, 2, mm, 0x2000, 0x1000), 0);
	a.ret_nonblock_false = true;
	rec_reset();

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x3000);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), -EAGAIN);
	expect_eq(rec.n, 1);
	expect_call(0, 1, PASS_SINGLE, 0x1000, 0x3000, 3);
	expect_eq(b.calls, 0);
	expect_eq(b.finishes, 0);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);		/* closed by the core */
	expect_eq_ul(st.seq, 4);
	expect_eq(st.nonblock_failures, 1);
	expect_eq(st.notifiers_called, 1);
	expect_eq(st.finishes, 0);
	expect_eq(st.warnings, 0);

	/* The same with a two-pass first notifier that sets *finish and fails. */
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	assert_eq(tsub_insert_two_pass(&a, 1, mm, 0x1000, 0x1000), 0);
	a.ret_nonblock_false = true;
	a.fin.f.notifier = POISON;
	rec_reset();
	expect_eq(mmn_invalidate_range_start_nonblock(&range), -EAGAIN);
	expect_eq(rec.n, 1);
	expect_call(0, 1, PASS_START, 0x1000, 0x3000, 5);
	expect_eq(a.finishes, 0);
	expect_eq_ptr(a.fin.f.notifier, POISON);
	expect_eq(b.calls, 0);
	st = stats_of(mm);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 6);
	expect_eq(st.nonblock_failures, 2);
	expect_eq(st.finishes, 0);

	/* A blockable start over the same range walks everything. */
	rec_reset();
	expect_eq(invalidate(mm, 0x1000, 0x3000), 0);
	expect_eq(rec.n, 4);
	expect_call(0, 1, PASS_START, 0x1000, 0x3000, 7);
	expect_call(1, 2, PASS_START, 0x1000, 0x3000, 7);
	expect_call(2, 1, PASS_FINISH, 0x1000, 0x3000, 7);
	expect_call(3, 2, PASS_FINISH, 0x1000, 0x3000, 7);
	expect_eq(stats_of(mm).warnings, 0);

	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_quiescent(mm);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(s20_nonblock_failure_midwalk);
	RUN(s21_nonblock_success);
	RUN(s22_blockable_false_warns);
	RUN(s23_nonblock_first_fails);
	return test_report();
}
