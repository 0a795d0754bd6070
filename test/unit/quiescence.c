// SPDX-License-Identifier: MIT
/*
 * Counters at quiescence, docs/TESTING.md scenario 40: once every region has
 * ended, active is 0, the sequence is even, nothing is deferred, every
 * notifier inserted and not removed is in the tree (and no other), the
 * domain's notifier count equals the live notifiers (the userspace stand-in
 * for the kernel's mm reference count) and the event counters equal what the
 * callbacks and callers saw. First an exact single-threaded run, then a seeded
 * random run on several threads (pass a seed as argv[1] to repeat one).
 */
#include "scenario_util.h"

struct q_sub {
	struct mmn_interval_notifier sub;
	bool two_pass;
	bool null_finish;	/* two-pass, but does its work in the first pass */
	bool fail_nonblock;	/* false on a non-blockable range */
	bool inserted;		/* owner's view */
};

struct q_box {
	struct mmn_finish finish;
	uint64_t magic;
};

#define Q_MAGIC 0x51b0c5ull

static uint64_t cb_calls, cb_finish_queued, cb_finishes, cb_false;

static bool q_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq)
{
	struct q_sub *q = mmn_container_of(sub, struct q_sub, sub);

	__atomic_fetch_add(&cb_calls, 1, __ATOMIC_RELAXED);
	cb_expect(cur_seq & 1);
	if (q->fail_nonblock && !mmn_range_blockable(range)) {
		__atomic_fetch_add(&cb_false, 1, __ATOMIC_RELAXED);
		return false;
	}
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static bool q_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		    unsigned long cur_seq, struct mmn_finish **finish)
{
	struct q_sub *q = mmn_container_of(sub, struct q_sub, sub);
	struct q_box *box;

	if (!q_invalidate(sub, range, cur_seq))
		return false;
	if (q->null_finish)
		return true;
	box = malloc(sizeof(*box));
	if (!box)
		abort();
	box->magic = Q_MAGIC;
	*finish = &box->finish;
	__atomic_fetch_add(&cb_finish_queued, 1, __ATOMIC_RELAXED);
	return true;
}

static void q_finish(struct mmn_finish *finish)
{
	struct q_box *box = mmn_container_of(finish, struct q_box, finish);

	cb_expect(box->magic == Q_MAGIC);
	box->magic = 0;
	free(box);
	__atomic_fetch_add(&cb_finishes, 1, __ATOMIC_RELAXED);
}

static const struct mmn_interval_notifier_ops one_ops = { .invalidate = q_invalidate };
static const struct mmn_interval_notifier_ops two_ops = {
	.invalidate_start = q_start,
	.invalidate_finish = q_finish,
};

static const struct mmn_interval_notifier_ops *q_ops(const struct q_sub *q)
{
	return q->two_pass ? &two_ops : &one_ops;
}

static void counters_reset(void)
{
	cb_calls = cb_finish_queued = cb_finishes = cb_false = 0;
}

/* The quiescence checks shared by both runs. */
static void expect_quiescent(struct mmn_mm *mm, struct q_sub *const *subs, int n)
{
	struct mmn_stats st = stats_of(mm);
	unsigned long live = 0;

	for (int i = 0; i < n; i++) {
		live += subs[i]->inserted;
		expect_eq(mmn_interval_notifier_test_in_tree(&subs[i]->sub), subs[i]->inserted);
	}
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq & 1, 0);
	expect_eq_ul(st.deferred, 0);
	expect_eq_ul(st.notifiers, live);
	expect_eq(st.notifiers_called, cb_calls);
	expect_eq(st.finishes, cb_finishes);
	expect_eq(cb_finishes, cb_finish_queued);
	expect_eq(st.warnings, 0);
	expect_le(st.invalidations_hit, st.invalidations);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	expect_no_cb_failures();
	if (live)
		expect_eq(mmn_mm_destroy(mm), -EBUSY);
}

/* Exact counts on one thread. */
TEST(s40_counters_exact)
{
	struct q_sub s[5] = {
		{ .two_pass = false }, { .two_pass = true }, { .two_pass = true, .null_finish = true },
		{ .two_pass = false, .fail_nonblock = true }, { .two_pass = true },
	};
	struct q_sub *const ps[5] = { &s[0], &s[1], &s[2], &s[3], &s[4] };
	struct mmn_range r, miss;
	struct mmn_stats st;
	struct mmn_mm *mm;

	counters_reset();
	assert_eq(mmn_mm_new(&mm), 0);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 2);
	expect_eq(st.invalidations + st.invalidations_hit + st.nonblock_failures + st.releases +
		  st.notifiers_called + st.finishes + st.deferred_inserts + st.deferred_removes +
		  st.read_begin_waits + st.remove_waits + st.warnings, 0);
	expect_eq_ul(st.active + st.notifiers + st.deferred, 0);
	/* s0 [0x1000], s1 [0x2000], s2 [0x3000], s3 [0x4000]; s4 comes later. */
	for (int i = 0; i < 4; i++) {
		assert_eq(mmn_interval_notifier_insert(&s[i].sub, mm, 0x1000ul * (unsigned long)(i + 1),
						       0x1000, q_ops(&s[i])), 0);
		s[i].inserted = true;
	}
	expect_quiescent(mm, ps, 5);

	/* 1: a miss. */
	mmn_range_init(&miss, MMN_EVENT_UNMAP, 0, mm, 0x10000, 0x20000);
	assert_eq(mmn_invalidate_range_start(&miss), 0);
	mmn_invalidate_range_end(&miss);
	/* 2: hits s0, s1, s2 (one finish queued: s1). */
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x4000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	mmn_invalidate_range_end(&r);
	/* 3: hit s3; insert s4 during it (deferred), insert+remove nothing else. */
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x4000, 0x5000);
	assert_eq(mmn_invalidate_range_start(&r), 0);
	assert_eq(mmn_interval_notifier_insert(&s[4].sub, mm, 0x5000, 0x1000, q_ops(&s[4])), 0);
	s[4].inserted = true;
	mmn_invalidate_range_end(&r);
	/* 4: a miss region; remove s0 during it (immediate: the period is even). */
	assert_eq(mmn_invalidate_range_start(&miss), 0);
	expect_eq(mmn_interval_notifier_remove(&s[0].sub), 0);
	s[0].inserted = false;
	mmn_invalidate_range_end(&miss);
	/* 5: non-blockable: s3 fails -> -EAGAIN, the core closes the region. */
	mmn_range_init(&r, MMN_EVENT_UNMAP, 0, mm, 0x2000, 0x6000);
	expect_eq(mmn_invalidate_range_start_nonblock(&r), -EAGAIN);
	/* 6: release: s1, s2, s3, s4. */
	mmn_mm_release(mm);

	st = stats_of(mm);
	expect_eq(st.invalidations, 6);		/* 5 start calls + 1 release */
	expect_eq(st.invalidations_hit, 4);
	expect_eq(st.nonblock_failures, 1);
	expect_eq(st.releases, 1);
	/* 3 (step 2) + 1 (step 3) + 3 (step 5: s1, s2, s3) + 4 (release) */
	expect_eq(st.notifiers_called, 11);
	expect_eq(cb_calls, 11);
	/* s1 in step 2, s1 in step 5, s1 and s4 in the release */
	expect_eq(st.finishes, 4);
	expect_eq(st.deferred_inserts, 1);
	expect_eq(st.deferred_removes, 0);
	expect_eq(st.read_begin_waits, 0);
	expect_eq(st.remove_waits, 0);
	/* Four odd periods (steps 2, 3, 5, 6): 2 + 4 * 2. */
	expect_eq_ul(st.seq, 10);
	expect_eq_ul(st.notifiers, 4);
	expect_quiescent(mm, ps, 5);

	/* 7: an unmatched _end is a warning, and changes nothing else. */
	mmn_set_log_fn(NULL, NULL);
	mmn_invalidate_range_end(&r);
	st = stats_of(mm);
	expect_eq(st.warnings, 1);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, 10);

	for (int i = 0; i < 5; i++)
		if (s[i].inserted) {
			expect_eq(mmn_interval_notifier_remove(&s[i].sub), 0);
			s[i].inserted = false;
		}
	st = stats_of(mm);
	expect_eq_ul(st.notifiers, 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	destroy_mm(mm);
}

/* ---- seeded random run on several threads ---------------------------------- */

#define NTHREADS 3
#define SUBS_PER_THREAD 6
#define OPS_PER_THREAD 3000
#define SPACE_PAGES 64ul
#define PAGE 0x1000ul

struct worker {
	pthread_t thread;
	struct mmn_mm *mm;
	struct test_rng rng;
	struct q_sub subs[SUBS_PER_THREAD];
	/* what this thread saw */
	uint64_t starts, eagain, releases, inserts, removes, read_begins;
	uint64_t bad;		/* an even read_begin, an unexpected return */
};

static void worker_step(struct worker *w)
{
	struct test_rng *rng = &w->rng;
	unsigned int dice = (unsigned int)test_rng_below(rng, 100);
	struct q_sub *q = &w->subs[test_rng_below(rng, SUBS_PER_THREAD)];

	if (dice < 35) {
		/* An invalidation, sometimes with an insert inside the region. */
		unsigned long a = test_rng_below(rng, SPACE_PAGES) * PAGE;
		unsigned long len = (1 + test_rng_below(rng, 8)) * PAGE - test_rng_below(rng, 2);
		bool nonblock = test_rng_below(rng, 4) == 0;
		struct mmn_range r;
		int ret;

		mmn_range_init(&r, (enum mmn_event)test_rng_below(rng, 8), 0, w->mm, a, a + len);
		ret = nonblock ? mmn_invalidate_range_start_nonblock(&r) :
				 mmn_invalidate_range_start(&r);
		w->starts++;
		if (ret == -EAGAIN && nonblock) {
			w->eagain++;
			return;
		}
		if (ret) {
			w->bad++;
			return;
		}
		if (!q->inserted && test_rng_below(rng, 2)) {
			unsigned long s = test_rng_below(rng, SPACE_PAGES) * PAGE;

			if (mmn_interval_notifier_insert(&q->sub, w->mm, s, PAGE * 2, q_ops(q)))
				w->bad++;
			q->inserted = true;
			w->inserts++;
		}
		/* Keep some regions open a while, so that periods overlap and wait. */
		for (int i = (int)test_rng_below(rng, 4) * 8; i > 0; i--)
			sched_yield();
		mmn_invalidate_range_end(&r);
	} else if (dice < 55) {
		if (q->inserted)
			return;
		if (mmn_interval_notifier_insert(&q->sub, w->mm,
						 test_rng_below(rng, SPACE_PAGES) * PAGE,
						 (1 + test_rng_below(rng, 4)) * PAGE, q_ops(q)))
			w->bad++;
		q->inserted = true;
		w->inserts++;
	} else if (dice < 75) {
		if (!q->inserted)
			return;
		if (mmn_interval_notifier_remove(&q->sub))
			w->bad++;
		q->inserted = false;
		w->removes++;
	} else if (dice < 98) {
		unsigned long seq;

		if (!q->inserted)
			return;
		seq = mmn_interval_read_begin(&q->sub);
		w->read_begins++;
		if (!(seq & 1))
			w->bad++;
		/* A retry is possible; a hint of retry must then be confirmed. */
		if (mmn_interval_check_retry(&q->sub, seq) &&
		    !mmn_interval_read_retry(&q->sub, seq))
			w->bad++;
	} else {
		mmn_mm_release(w->mm);
		w->releases++;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < OPS_PER_THREAD; i++)
		worker_step(w);
	return NULL;
}

TEST(s40_counters_after_random_concurrent_run)
{
	static struct worker workers[NTHREADS];
	struct q_sub *all[NTHREADS * SUBS_PER_THREAD];
	uint64_t starts = 0, eagain = 0, releases = 0, inserts = 0, bad = 0;
	struct mmn_stats st;
	struct mmn_mm *mm;

	counters_reset();
	assert_eq(mmn_mm_new(&mm), 0);
	for (int t = 0; t < NTHREADS; t++) {
		struct worker *w = &workers[t];

		memset(w, 0, sizeof(*w));
		w->mm = mm;
		test_rng_seed(&w->rng, test_seed + (uint64_t)t);
		for (int i = 0; i < SUBS_PER_THREAD; i++) {
			w->subs[i].two_pass = i % 2;
			w->subs[i].null_finish = i == 3;
			w->subs[i].fail_nonblock = i == 4 || i == 1;
		}
	}
	for (int t = 0; t < NTHREADS; t++)
		assert_eq(pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]), 0);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(workers[t].thread, NULL);

	for (int t = 0; t < NTHREADS; t++) {
		struct worker *w = &workers[t];

		starts += w->starts;
		eagain += w->eagain;
		releases += w->releases;
		inserts += w->inserts;
		bad += w->bad;
		for (int i = 0; i < SUBS_PER_THREAD; i++)
			all[t * SUBS_PER_THREAD + i] = &w->subs[i];
	}
	st = stats_of(mm);
	printf("    seed %" PRIu64 ": %" PRIu64 " starts (%" PRIu64 " -EAGAIN), %" PRIu64
	       " releases, %" PRIu64 " inserts (%" PRIu64 " deferred), %" PRIu64
	       " calls, %" PRIu64 " finishes, %" PRIu64 " read_begin waits, %" PRIu64
	       " remove waits, seq %lu\n",
	       test_seed, starts, eagain, releases, inserts, st.deferred_inserts,
	       st.notifiers_called, st.finishes, st.read_begin_waits, st.remove_waits, st.seq);
	expect_eq(bad, 0);
	expect_eq(st.invalidations, starts + releases);
	expect_eq(st.nonblock_failures, eagain);
	expect_eq(st.releases, releases);
	expect_le(st.deferred_inserts, inserts);
	expect_le(st.invalidations_hit, st.invalidations);
	/* Every -EAGAIN came from a callback that returned false. */
	expect_eq(cb_false, eagain);
	expect_quiescent(mm, all, NTHREADS * SUBS_PER_THREAD);
	for (int t = 0; t < NTHREADS; t++)
		for (int i = 0; i < SUBS_PER_THREAD; i++)
			if (workers[t].subs[i].inserted)
				expect_eq(mmn_interval_notifier_remove(&workers[t].subs[i].sub), 0);
	expect_eq_ul(stats_of(mm).notifiers, 0);
	destroy_mm(mm);
}

int main(int argc, char **argv)
{
	test_seed_from_args(argc, argv);
	RUN(s40_counters_exact);
	RUN(s40_counters_after_random_concurrent_run);
	return test_report();
}
