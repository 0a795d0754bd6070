/* SPDX-License-Identifier: MIT */
/*
 * Recording test notifiers for the core's unit tests (docs/TESTING.md).
 *
 *   struct tsub      a notifier whose behaviour is set by its fields: single-
 *                    or two-pass, what it returns on blockable and
 *                    non-blockable ranges, whether it hands back a finish, and
 *                    an optional hook run inside its first pass;
 *   rec              the global call log: (sub id, pass, range, cur_seq, the
 *                    domain's seq seen from inside the callback, blockable,
 *                    event, thread) in call order; expect_call() checks one;
 *   struct bg        a background read_begin or remove, with an atomic "done"
 *                    flag, to prove blocking with a bounded wait;
 *   stats_of()       the domain's stats by value.
 *
 * The log holds REC_MAX entries and is guarded by a mutex, so callbacks may
 * record from several threads. Each tsub has one finish object, so the two-
 * pass tsubs are for walks that do not invoke the same notifier concurrently.
 */
#ifndef MMN_TEST_RECORDER_H
#define MMN_TEST_RECORDER_H

#include <limits.h>

#include "harness.h"
#include "internal.h"

#define REC_MAX 256

enum rec_pass {
	PASS_SINGLE = 1,	/* ops->invalidate */
	PASS_START,		/* ops->invalidate_start */
	PASS_FINISH,		/* ops->invalidate_finish */
};

struct rec_entry {
	int id;
	enum rec_pass pass;
	unsigned long start, end;	/* the range (the finish: the one its start saw) */
	unsigned long cur_seq;
	unsigned long dom_seq;		/* stats.seq read from inside the callback */
	bool blockable;
	enum mmn_event event;
	const struct mmn_range *range;	/* first passes only */
	pthread_t thread;
};

struct rec_log {
	pthread_mutex_t lock;
	int n;
	struct rec_entry e[REC_MAX];
};

static struct rec_log rec = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline void rec_reset(void)
{
	pthread_mutex_lock(&rec.lock);
	rec.n = 0;
	memset(rec.e, 0, sizeof(rec.e));
	pthread_mutex_unlock(&rec.lock);
}

static inline int rec_count(void)
{
	int n;

	pthread_mutex_lock(&rec.lock);
	n = rec.n;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

static inline struct mmn_stats stats_of(struct mmn_mm *mm)
{
	struct mmn_stats st;

	memset(&st, 0xff, sizeof(st));
	if (mm && mmn_mm_get_stats(mm, &st))
		fprintf(stderr, "  mmn_mm_get_stats failed\n");
	return st;
}

static inline void rec_add(const struct rec_entry *e)
{
	pthread_mutex_lock(&rec.lock);
	if (rec.n < REC_MAX)
		rec.e[rec.n] = *e;
	rec.n++;
	pthread_mutex_unlock(&rec.lock);
}

/* Check log entry @i: which notifier, which pass, which range, which cur_seq. */
#define expect_call(i, id_, pass_, start_, end_, cur_seq_)                      \
	do {                                                                    \
		const struct rec_entry *e_ = &rec.e[(i) < REC_MAX ? (i) : 0];   \
		expect_lt((i), rec.n);                                          \
		expect_eq(e_->id, (id_));                                       \
		expect_eq(e_->pass, (pass_));                                   \
		expect_eq_ul(e_->start, (start_));                              \
		expect_eq_ul(e_->end, (end_));                                  \
		expect_eq_ul(e_->cur_seq, (cur_seq_));                          \
	} while (0)

struct tsub;
typedef void tsub_hook(struct tsub *t, const struct mmn_range *range, unsigned long cur_seq);

struct tfinish {
	struct mmn_finish f;
	struct tsub *owner;
	unsigned long start, end, cur_seq;
};

struct tsub {
	struct mmn_interval_notifier sub;
	int id;
	bool ret_nonblock_false;	/* return false on a non-blockable range */
	bool ret_blockable_false;	/* return false on a blockable range (misuse) */
	bool give_finish;		/* two-pass: hand back &fin (also when false) */
	tsub_hook *hook;		/* run in the first pass, before returning */
	void *hook_arg;
	struct tfinish fin;
	int calls;			/* first passes */
	int finishes;
	unsigned long last_cur_seq;
};

#define tsub_of(s) ((struct tsub *)(s))	/* sub is the first member */

static inline bool tsub_first_pass(struct tsub *t, const struct mmn_range *range,
				   unsigned long cur_seq, enum rec_pass pass)
{
	struct rec_entry e = {
		.id = t->id, .pass = pass, .start = range->start, .end = range->end,
		.cur_seq = cur_seq, .dom_seq = stats_of(range->mm).seq,
		.blockable = mmn_range_blockable(range), .event = range->event,
		.range = range, .thread = pthread_self(),
	};
	bool ok = mmn_range_blockable(range) ? !t->ret_blockable_false : !t->ret_nonblock_false;

	rec_add(&e);
	__atomic_fetch_add(&t->calls, 1, __ATOMIC_RELAXED);
	t->last_cur_seq = cur_seq;
	if (ok)
		mmn_interval_set_seq(&t->sub, cur_seq);
	if (t->hook)
		t->hook(t, range, cur_seq);
	return ok;
}

static inline bool tsub_invalidate(struct mmn_interval_notifier *sub,
				   const struct mmn_range *range, unsigned long cur_seq)
{
	return tsub_first_pass(tsub_of(sub), range, cur_seq, PASS_SINGLE);
}

static inline bool tsub_invalidate_start(struct mmn_interval_notifier *sub,
					 const struct mmn_range *range,
					 unsigned long cur_seq, struct mmn_finish **finish)
{
	struct tsub *t = tsub_of(sub);
	bool ok;

	if (*finish)
		fprintf(stderr, "  *finish not NULL on entry to invalidate_start\n"),
			test_failures++;
	ok = tsub_first_pass(t, range, cur_seq, PASS_START);
	if (t->give_finish) {
		t->fin.owner = t;
		t->fin.start = range->start;
		t->fin.end = range->end;
		t->fin.cur_seq = cur_seq;
		*finish = &t->fin.f;
	}
	return ok;
}

static inline void tsub_invalidate_finish(struct mmn_finish *f)
{
	struct tfinish *fin = (struct tfinish *)f;	/* f is the first member */
	struct tsub *t = fin->owner;
	struct rec_entry e = {
		.id = t->id, .pass = PASS_FINISH, .start = fin->start, .end = fin->end,
		.cur_seq = fin->cur_seq, .thread = pthread_self(),
	};

	if (f->notifier != &t->sub)
		fprintf(stderr, "  finish->notifier is %p, not %p\n", (void *)f->notifier,
			(void *)&t->sub),
			test_failures++;
	e.dom_seq = stats_of(t->sub.mm).seq;
	rec_add(&e);
	__atomic_fetch_add(&t->finishes, 1, __ATOMIC_RELAXED);
}

static const struct mmn_interval_notifier_ops tsub_single_ops = {
	.invalidate = tsub_invalidate,
};

static const struct mmn_interval_notifier_ops tsub_two_pass_ops = {
	.invalidate_start = tsub_invalidate_start,
	.invalidate_finish = tsub_invalidate_finish,
};

/* Zero @t, name it @id and insert it as a single-pass notifier. */
static inline int tsub_insert(struct tsub *t, int id, struct mmn_mm *mm, unsigned long start,
			      unsigned long length)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	return mmn_interval_notifier_insert(&t->sub, mm, start, length, &tsub_single_ops);
}

/* Same, two-pass, handing back its finish object. */
static inline int tsub_insert_two_pass(struct tsub *t, int id, struct mmn_mm *mm,
				       unsigned long start, unsigned long length)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->give_finish = true;
	return mmn_interval_notifier_insert(&t->sub, mm, start, length, &tsub_two_pass_ops);
}

/* Open and close a blockable range in one go; returns the start's result. */
static inline int invalidate(struct mmn_mm *mm, unsigned long start, unsigned long end)
{
	struct mmn_range range;
	int ret;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, start, end);
	ret = mmn_invalidate_range_start(&range);
	if (!ret)
		mmn_invalidate_range_end(&range);
	return ret;
}

/* ---- background read_begin / remove ----------------------------------- */

enum bg_kind { BG_READ_BEGIN, BG_REMOVE };

struct bg {
	pthread_t thread;
	enum bg_kind kind;
	struct mmn_interval_notifier *sub;
	unsigned long seq;	/* read_begin's result */
	int ret;		/* remove's result */
	bool done;		/* atomic */
	bool joined;
};

static void *bg_main(void *arg)
{
	struct bg *b = arg;

	if (b->kind == BG_READ_BEGIN)
		b->seq = mmn_interval_read_begin(b->sub);
	else
		b->ret = mmn_interval_notifier_remove(b->sub);
	__atomic_store_n(&b->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static inline void bg_start(struct bg *b, enum bg_kind kind, struct mmn_interval_notifier *sub)
{
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	b->sub = sub;
	if (pthread_create(&b->thread, NULL, bg_main, b)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(1);
	}
}

static inline bool bg_done(struct bg *b)
{
	return __atomic_load_n(&b->done, __ATOMIC_ACQUIRE);
}

static inline void bg_join(struct bg *b)
{
	if (!b->joined)
		pthread_join(b->thread, NULL);
	b->joined = true;
}

/*
 * Expect the background call to end within WAIT_MS and join it. If it does
 * not, fail and end the test binary: joining would hang.
 */
#define expect_bg_finishes(b)                                                   \
	do {                                                                    \
		test_checks++;                                                  \
		if (!wait_until(bg_done(b), WAIT_MS)) {                         \
			test_fail_at(__FILE__, __LINE__);                       \
			fprintf(stderr, "    %s still blocked after %d ms\n", #b, WAIT_MS); \
			test_exit_now();                                        \
		}                                                               \
		bg_join(b);                                                     \
	} while (0)

/* How long a bounded wait for something that must happen may take. */
#define WAIT_MS 5000
/* How long to watch a thread that must stay blocked (a negative check only). */
#define BLOCKED_MS 50

/* Run read_begin on another thread; expect it to return without waiting. */
#define expect_read_begin_nonblocking(mm, sub_, expected_seq)                   \
	do {                                                                    \
		struct bg b_;                                                   \
		uint64_t waits_ = stats_of(mm).read_begin_waits;                \
		bg_start(&b_, BG_READ_BEGIN, (sub_));                           \
		expect_true(wait_until(bg_done(&b_), WAIT_MS));                 \
		if (bg_done(&b_)) {                                             \
			bg_join(&b_);                                           \
			expect_eq_ul(b_.seq, (expected_seq));                   \
		} else {                                                        \
			fprintf(stderr, "    read_begin blocked; abandoning\n"); \
			test_exit_now();                                        \
		}                                                               \
		expect_eq(stats_of(mm).read_begin_waits, waits_);               \
	} while (0)

/* Same for remove. */
#define expect_remove_nonblocking(mm, sub_)                                     \
	do {                                                                    \
		struct bg b_;                                                   \
		uint64_t waits_ = stats_of(mm).remove_waits;                    \
		bg_start(&b_, BG_REMOVE, (sub_));                               \
		expect_true(wait_until(bg_done(&b_), WAIT_MS));                 \
		if (bg_done(&b_)) {                                             \
			bg_join(&b_);                                           \
			expect_eq(b_.ret, 0);                                   \
		} else {                                                        \
			fprintf(stderr, "    remove blocked; abandoning\n");    \
			test_exit_now();                                        \
		}                                                               \
		expect_eq(stats_of(mm).remove_waits, waits_);                   \
	} while (0)

/* The quiescent-domain checks every test ends with. */
#define expect_quiescent(mm)                                                    \
	do {                                                                    \
		struct mmn_stats q_ = stats_of(mm);                             \
		expect_eq_ul(q_.active, 0);                                     \
		expect_eq_ul(q_.seq & 1, 0);                                    \
		expect_eq_ul(q_.deferred, 0);                                   \
		expect_eq_ptr(mmn_mm_test_check(mm), NULL);                     \
	} while (0)

/* I1 (odd seq => a region is open) and I3 (deferred items => odd seq). */
#define expect_invariants(mm)                                                   \
	do {                                                                    \
		struct mmn_stats i_ = stats_of(mm);                             \
		if (i_.seq & 1)                                                 \
			expect_gt(i_.active, 0);                                \
		if (i_.deferred)                                                \
			expect_eq_ul(i_.seq & 1, 1);                            \
		expect_eq_ptr(mmn_mm_test_check(mm), NULL);                     \
	} while (0)

#endif /* MMN_TEST_RECORDER_H */
