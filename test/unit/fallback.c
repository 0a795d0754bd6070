// SPDX-License-Identifier: MIT
/*
 * Per-invocation finish state and the single-pass fallbacks, docs/TESTING.md
 * scenarios 33 and 34.
 *
 * 33 is the xe userptr pattern: the finish object is embedded in the binding
 * and guarded by a finish_inuse flag; an invocation that finds it in use does
 * all its work synchronously in the first pass and returns a NULL finish. Two
 * threads invalidate overlapping ranges, and the overlap is forced: the first
 * invocation's start waits, after taking the embedded finish, until the second
 * invocation has decided inside its start.
 *
 * 34 is the xe SVM pattern: finish containers come from a small non-blocking
 * pool; when it is empty the start does everything at once. The device state
 * after each invalidation must be the same whatever the pool size.
 */
#include "scenario_util.h"

/* ---- 33: embedded finish + finish_inuse ----------------------------------- */

struct userptr {
	struct mmn_interval_notifier sub;
	pthread_mutex_t lock;		/* the driver's notifier lock */
	struct mmn_finish finish;
	bool finish_inuse;		/* under lock */
	pthread_t finish_owner;		/* thread whose start took the finish */
	int entries;			/* atomic: invalidate_start entries */
	int sync_work, deferred_work;	/* under lock */
	struct gate second_decided;
};

static struct userptr up = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.second_decided = GATE_INIT,
};

static bool up_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq, struct mmn_finish **finish)
{
	int n = __atomic_fetch_add(&up.entries, 1, __ATOMIC_ACQ_REL);

	pthread_mutex_lock(&up.lock);
	ev_add('S', 2, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	if (up.finish_inuse) {
		/* Another invocation owns the finish: do it all now. */
		up.sync_work++;
		ev_add('W', 2, range, cur_seq, NULL);
	} else {
		up.finish_inuse = true;
		up.finish_owner = pthread_self();
		*finish = &up.finish;
	}
	pthread_mutex_unlock(&up.lock);
	if (n == 0)
		gate_wait(&up.second_decided);	/* hold the first walk here */
	else if (n == 1)
		gate_open(&up.second_decided);
	return true;
}

static void up_finish(struct mmn_finish *finish)
{
	cb_expect(finish == &up.finish);
	pthread_mutex_lock(&up.lock);
	ev_add('F', 2, NULL, 0, finish);
	cb_expect(pthread_equal(up.finish_owner, pthread_self()));
	cb_expect(up.finish_inuse);
	up.deferred_work++;
	up.finish_inuse = false;
	pthread_mutex_unlock(&up.lock);
}

static const struct mmn_interval_notifier_ops up_ops = {
	.invalidate_start = up_start,
	.invalidate_finish = up_finish,
};

/* Private two-pass notifiers with one malloc'd container per invocation. */
struct priv_sub {
	struct mmn_interval_notifier sub;
	int id;
};

struct priv_box {
	struct mmn_finish finish;
	pthread_t start_thread;
	int id;
};

static bool priv_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		       unsigned long cur_seq, struct mmn_finish **finish)
{
	struct priv_sub *p = mmn_container_of(sub, struct priv_sub, sub);
	struct priv_box *box = malloc(sizeof(*box));

	if (!box)
		abort();
	mmn_interval_set_seq(sub, cur_seq);
	box->start_thread = pthread_self();
	box->id = p->id;
	ev_add('S', p->id, range, cur_seq, NULL);
	*finish = &box->finish;
	return true;
}

static void priv_finish(struct mmn_finish *finish)
{
	struct priv_box *box = mmn_container_of(finish, struct priv_box, finish);

	ev_add('F', box->id, NULL, 0, finish);
	/* Only this invocation's own entries are on its finish list. */
	cb_expect(pthread_equal(box->start_thread, pthread_self()));
	free(box);
}

static const struct mmn_interval_notifier_ops priv_ops = {
	.invalidate_start = priv_start,
	.invalidate_finish = priv_finish,
};

struct inv_thread {
	pthread_t thread;
	struct mmn_mm *mm;
	unsigned long start, end;
	int ret;
	bool done;
};

static void *inv_thread_main(void *arg)
{
	struct inv_thread *t = arg;
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, t->mm, t->start, t->end);
	t->ret = mmn_invalidate_range_start(&range);
	if (t->ret == 0)
		mmn_invalidate_range_end(&range);
	flag_set(&t->done, true);
	return NULL;
}

TEST(s33_xe_finish_inuse)
{
	for (int round = 0; round < 5; round++) {
		struct priv_sub pa = { .id = 1 }, pb = { .id = 3 };
		struct inv_thread a = { .start = 0x1000, .end = 0x3000 };
		struct inv_thread b = { .start = 0x2000, .end = 0x4000 };
		unsigned long cur_seq = 0;
		struct mmn_stats st;
		struct mmn_mm *mm;
		char want[64];

		memset(&up.sub, 0, sizeof(up.sub));
		up.finish_inuse = false;
		up.entries = 0;
		up.sync_work = up.deferred_work = 0;
		gate_close(&up.second_decided);
		assert_eq(mmn_mm_new(&mm), 0);
		a.mm = b.mm = mm;
		assert_eq(mmn_interval_notifier_insert(&pa.sub, mm, 0x1000, 0x1000, &priv_ops), 0);
		assert_eq(mmn_interval_notifier_insert(&up.sub, mm, 0x2000, 0x1000, &up_ops), 0);
		assert_eq(mmn_interval_notifier_insert(&pb.sub, mm, 0x3000, 0x1000, &priv_ops), 0);
		ev_reset();

		/* A takes the embedded finish and is held inside its start... */
		assert_eq(pthread_create(&a.thread, NULL, inv_thread_main, &a), 0);
		assert_true(wait_until(gate_waiting(&up.second_decided) == 1, WAIT_MS));
		/* ...while B's walk reaches the same notifier. */
		assert_eq(pthread_create(&b.thread, NULL, inv_thread_main, &b), 0);
		expect_true(wait_until(flag_get(&a.done) && flag_get(&b.done), WAIT_MS));
		pthread_join(a.thread, NULL);
		pthread_join(b.thread, NULL);
		expect_eq(a.ret, 0);
		expect_eq(b.ret, 0);

		/* Each walk finished only its own entries, on its own thread. */
		expect_str_eq(ev_str_of(&a.thread), "S1 S2 F1 F2");
		expect_str_eq(ev_str_of(&b.thread), "S2 W2 S3 F3");
		/* Both walks ran in one period and shared its cur_seq. */
		for (int i = 0; i < ev_count(); i++) {
			if (ev_log[i].kind != 'S')
				continue;
			if (!cur_seq)
				cur_seq = ev_log[i].cur_seq;
			expect_eq_ul(ev_log[i].cur_seq, cur_seq);
		}
		expect_eq_ul(cur_seq, 3);
		expect_false(up.finish_inuse);
		expect_eq(up.sync_work, 1);
		expect_eq(up.deferred_work, 1);
		st = stats_of(mm);
		expect_eq_ul(st.seq, 4);
		expect_eq_ul(st.active, 0);
		expect_eq(st.notifiers_called, 4);
		expect_eq(st.finishes, 3);
		expect_no_cb_failures();
		snprintf(want, sizeof(want), "round %d", round);
		if (test_failures)
			fprintf(stderr, "  (%s)\n", want);
		expect_eq(mmn_interval_notifier_remove(&pa.sub), 0);
		expect_eq(mmn_interval_notifier_remove(&up.sub), 0);
		expect_eq(mmn_interval_notifier_remove(&pb.sub), 0);
		destroy_mm(mm);
	}
}

/* ---- 34: pool of finish containers, single-pass fallback ------------------- */

#define PAGE 0x1000ul
#define NPAGES 16		/* pages of the mirrored space [0, NPAGES * PAGE) */
#define POOL_MAX 8
#define NSUBS 6

struct svm_box {
	struct mmn_finish finish;
	unsigned long start, end;	/* the range, kept for the finish */
	bool tlb_pending;
};

struct svm_pool {
	pthread_mutex_t lock;
	struct svm_box boxes[POOL_MAX];
	struct svm_box *free[POOL_MAX];
	int nfree, size;
};

struct svm_sub {
	struct mmn_interval_notifier sub;
	int id;
	pthread_mutex_t lock;
	bool mapped[NPAGES];	/* device page table of this binding */
	int sync, deferred;
};

static struct svm_pool pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void pool_reset(int size)
{
	pool.size = size;
	pool.nfree = size;
	for (int i = 0; i < size; i++)
		pool.free[i] = &pool.boxes[i];
}

/* Never blocks on anything but the pool's own short lock. */
static struct svm_box *pool_get(void)
{
	struct svm_box *box = NULL;

	pthread_mutex_lock(&pool.lock);
	if (pool.nfree)
		box = pool.free[--pool.nfree];
	pthread_mutex_unlock(&pool.lock);
	return box;
}

static void pool_put(struct svm_box *box)
{
	pthread_mutex_lock(&pool.lock);
	pool.free[pool.nfree++] = box;
	pthread_mutex_unlock(&pool.lock);
}

static void svm_unmap(struct svm_sub *s, unsigned long start, unsigned long end)
{
	unsigned long first = mmn_interval_notifier_start(&s->sub);
	unsigned long last = mmn_interval_notifier_last(&s->sub);

	if (start < first)
		start = first;
	if (end - 1 > last)
		end = last + 1;
	for (unsigned long a = start & ~(PAGE - 1); a < end; a += PAGE)
		s->mapped[a / PAGE] = false;
}

static bool svm_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		      unsigned long cur_seq, struct mmn_finish **finish)
{
	struct svm_sub *s = mmn_container_of(sub, struct svm_sub, sub);
	struct svm_box *box;

	pthread_mutex_lock(&s->lock);
	mmn_interval_set_seq(sub, cur_seq);
	box = pool_get();
	if (box) {
		/* Submit the flush; the finish waits for it and tears down. */
		box->start = range->start;
		box->end = range->end;
		box->tlb_pending = true;
		ev_add('S', s->id, range, cur_seq, NULL);
		*finish = &box->finish;
	} else {
		/* No container: the complete invalidation, now. */
		svm_unmap(s, range->start, range->end);
		s->sync++;
		ev_add('W', s->id, range, cur_seq, NULL);
	}
	pthread_mutex_unlock(&s->lock);
	return true;
}

static void svm_finish(struct mmn_finish *finish)
{
	struct svm_box *box = mmn_container_of(finish, struct svm_box, finish);
	struct svm_sub *s = mmn_container_of(finish->notifier, struct svm_sub, sub);

	pthread_mutex_lock(&s->lock);
	cb_expect(box->tlb_pending);
	box->tlb_pending = false;
	svm_unmap(s, box->start, box->end);
	s->deferred++;
	ev_add('F', s->id, NULL, 0, finish);
	pthread_mutex_unlock(&s->lock);
	pool_put(box);
}

static const struct mmn_interval_notifier_ops svm_ops = {
	.invalidate_start = svm_start,
	.invalidate_finish = svm_finish,
};

static const struct { unsigned long start, len; } svm_at[NSUBS] = {
	{ 0x0000, 0x4000 }, { 0x2000, 0x4000 }, { 0x2000, 0x1000 },
	{ 0x5000, 0x6000 }, { 0x8000, 0x8000 }, { 0xc000, 0x1000 },
};

static const struct { unsigned long start, end; } svm_ranges[] = {
	{ 0x2800, 0x3000 }, { 0x0000, 0x1000 }, { 0x3000, 0x9000 }, { 0xc000, 0xd000 },
	{ 0x0000, 0x10000 }, { 0x6000, 0x6001 }, { 0xf000, 0x10000 },
};

#define NRANGES (sizeof(svm_ranges) / sizeof(svm_ranges[0]))

/* Device state after each invalidation, for one pool size. */
struct svm_outcome {
	bool mapped[NRANGES][NSUBS][NPAGES];
	uint64_t called, finishes;
	int sync, deferred;
};

static void svm_run(int pool_size, struct svm_outcome *out, const char *want_first)
{
	struct svm_sub s[NSUBS];
	struct mmn_mm *mm;
	struct mmn_stats st;

	memset(out, 0, sizeof(*out));
	pool_reset(pool_size);
	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < NSUBS; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].id = i + 1;
		pthread_mutex_init(&s[i].lock, NULL);
		assert_eq(mmn_interval_notifier_insert(&s[i].sub, mm, svm_at[i].start,
						       svm_at[i].len, &svm_ops), 0);
		/* Map every page of the binding (a fault through read_begin/retry). */
		{
			unsigned long seq = mmn_interval_read_begin(&s[i].sub);

			pthread_mutex_lock(&s[i].lock);
			expect_false(mmn_interval_read_retry(&s[i].sub, seq));
			for (unsigned long a = svm_at[i].start; a < svm_at[i].start + svm_at[i].len;
			     a += PAGE)
				s[i].mapped[a / PAGE] = true;
			pthread_mutex_unlock(&s[i].lock);
		}
	}
	for (size_t r = 0; r < NRANGES; r++) {
		struct mmn_range range;

		ev_reset();
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, svm_ranges[r].start,
			       svm_ranges[r].end);
		assert_eq(mmn_invalidate_range_start(&range), 0);
		/* All the work is done when start returns, whichever path it took. */
		for (int i = 0; i < NSUBS; i++) {
			for (unsigned long a = svm_ranges[r].start & ~(PAGE - 1);
			     a < svm_ranges[r].end; a += PAGE) {
				if (a >= svm_at[i].start && a < svm_at[i].start + svm_at[i].len)
					expect_false(s[i].mapped[a / PAGE]);
			}
			memcpy(out->mapped[r][i], s[i].mapped, sizeof(s[i].mapped));
		}
		expect_eq(pool.nfree, pool_size);	/* every container came back */
		if (r == 0 && want_first)
			expect_str_eq(ev_str(), want_first);
		mmn_invalidate_range_end(&range);
	}
	st = stats_of(mm);
	out->called = st.notifiers_called;
	out->finishes = st.finishes;
	for (int i = 0; i < NSUBS; i++) {
		out->sync += s[i].sync;
		out->deferred += s[i].deferred;
		expect_eq(mmn_interval_notifier_remove(&s[i].sub), 0);
		pthread_mutex_destroy(&s[i].lock);
	}
	expect_eq_ul(st.active, 0);
	destroy_mm(mm);
}

TEST(s34_pool_fallback_same_result)
{
	static struct svm_outcome full, tiny, none;

	/* Range 0 hits subs 1, 2, 3 (walk order: starts 0, 0x2000, 0x2000). */
	svm_run(POOL_MAX, &full, "S1 S2 S3 F1 F2 F3");
	svm_run(2, &tiny, "S1 S2 W3 F1 F2");
	svm_run(0, &none, "W1 W2 W3");

	expect_eq(memcmp(full.mapped, tiny.mapped, sizeof(full.mapped)), 0);
	expect_eq(memcmp(full.mapped, none.mapped, sizeof(full.mapped)), 0);
	expect_eq(full.called, tiny.called);
	expect_eq(full.called, none.called);
	/* Pool large enough: every call two-pass. Empty: every call single-pass. */
	expect_eq(full.sync, 0);
	expect_eq(full.deferred, (long long)full.called);
	expect_eq(full.finishes, full.called);
	expect_eq(none.deferred, 0);
	expect_eq(none.finishes, 0);
	expect_eq(none.sync, (long long)none.called);
	/* Tiny pool: some of each, every call accounted for. */
	expect_gt(tiny.sync, 0);
	expect_gt(tiny.deferred, 0);
	expect_eq(tiny.sync + tiny.deferred, (long long)tiny.called);
	expect_eq(tiny.finishes, (uint64_t)tiny.deferred);
	/* Nothing stays mapped inside an invalidated range; the rest stays. */
	expect_true(full.mapped[0][3][0x5000 / PAGE]);
	expect_false(full.mapped[NRANGES - 1][4][0x8000 / PAGE]);
	expect_no_cb_failures();
}

int main(void)
{
	RUN(s33_xe_finish_inuse);
	RUN(s34_pool_fallback_same_result);
	return test_report();
}
