// SPDX-License-Identifier: MIT
/*
 * A model of the xe userptr two-pass notifier (drivers/gpu/drm/xe/xe_userptr.c,
 * docs/sim.md), driven through libmmn: docs/TESTING.md scenario 39.
 *
 * The model keeps xe's state (embedded finish, finish_inuse,
 * tlb_inval_submitted, initial_bind, fault mode) and replaces the GPU with
 * fake fences: a flag the test controls ("signalled"), whether software
 * signalling was enabled, and a count of waits. A wait on an unsignalled
 * fence stands for the GPU finishing the work it was kicked to do: it counts
 * the wait and marks the fence signalled. Every step is recorded, and each
 * flow asserts the exact sequence:
 *
 *   (a) fences pending            -> the finish waits the fences, does a
 *                                    synchronous TLB invalidation and unmaps;
 *   (b) fences signalled, fault   -> the start submits the TLB invalidation,
 *                                    the finish waits for it and unmaps;
 *   (c) finish in use             -> a concurrent invalidation does all its
 *                                    work inside its start and returns NULL;
 *   (d) non-blockable range       -> the start returns false at once and the
 *                                    start call fails with -EAGAIN.
 */
#include "scenario_util.h"

#define NBOOKKEEP 2	/* BOOKKEEP fences of the VM's reservation object */
#define NGT 2		/* GTs, one TLB-invalidation fence each */

struct fence {
	bool signalled;
	bool sw_signalling;
	int waits;
};

/* ---- the operation log ------------------------------------------------------ */

struct op {
	pthread_t thread;
	const char *what;
};

static struct op ops_log[256];
static int ops_n;
static pthread_mutex_t ops_lock = PTHREAD_MUTEX_INITIALIZER;

static void op(const char *what)
{
	pthread_mutex_lock(&ops_lock);
	if (ops_n < 256)
		ops_log[ops_n++] = (struct op){ pthread_self(), what };
	pthread_mutex_unlock(&ops_lock);
}

static const char *ops_of(const pthread_t *thread)
{
	static char buf[2048];
	size_t pos = 0;

	buf[0] = 0;
	pthread_mutex_lock(&ops_lock);
	for (int i = 0; i < ops_n; i++)
		if (!thread || pthread_equal(*thread, ops_log[i].thread))
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%s",
						pos ? " " : "", ops_log[i].what);
	pthread_mutex_unlock(&ops_lock);
	return buf;
}

static void ops_reset(void)
{
	pthread_mutex_lock(&ops_lock);
	ops_n = 0;
	pthread_mutex_unlock(&ops_lock);
}

/* ---- the userptr model --------------------------------------------------------- */

struct xe_userptr {
	struct mmn_interval_notifier notifier;
	pthread_mutex_t notifier_lock;	/* the VM's notifier_lock, write side */
	struct mmn_finish finish;
	bool finish_inuse;
	bool tlb_inval_submitted;
	bool initial_bind;
	bool fault_mode;
	bool vma_destroyed;
	bool on_invalidated_list;	/* repin marker for the rebind worker */
	bool mapped;			/* GPU page-table entries present */
	unsigned long notifier_seq;	/* pages.notifier_seq */
	struct fence bookkeep[NBOOKKEEP];
	struct fence tlb[NGT];
};

static struct xe_userptr *to_uptr(struct mmn_interval_notifier *sub)
{
	return mmn_container_of(sub, struct xe_userptr, notifier);
}

static void fence_wait(struct fence *f)
{
	f->waits++;
	/* The GPU finishes what it was kicked to do (or had done). */
	f->signalled = true;
}

static void bookkeep_wait(struct xe_userptr *u)
{
	op("fence_wait");
	for (int i = 0; i < NBOOKKEEP; i++) {
		cb_expect(u->bookkeep[i].sw_signalling);
		fence_wait(&u->bookkeep[i]);
	}
}

static void tlb_submit(struct xe_userptr *u)
{
	op("tlb_submit");
	for (int i = 0; i < NGT; i++)
		u->tlb[i].signalled = false;
}

static void tlb_wait(struct xe_userptr *u)
{
	op("tlb_wait");
	for (int i = 0; i < NGT; i++)
		fence_wait(&u->tlb[i]);
}

static void tlb_sync(struct xe_userptr *u)
{
	op("tlb_sync");
	for (int i = 0; i < NGT; i++) {
		u->tlb[i].signalled = false;
		fence_wait(&u->tlb[i]);
	}
}

static void unmap_pages(struct xe_userptr *u)
{
	op("unmap");
	u->mapped = false;
}

/* xe_vma_userptr_do_inval() */
static struct mmn_finish *do_inval(struct xe_userptr *u, bool deferred)
{
	bookkeep_wait(u);
	if (u->fault_mode && u->initial_bind) {
		if (!u->finish_inuse) {
			u->finish_inuse = true;
			u->tlb_inval_submitted = true;
			tlb_submit(u);
			return &u->finish;
		}
		tlb_sync(u);
	}
	if (deferred)
		u->finish_inuse = false;
	unmap_pages(u);
	return NULL;
}

/* xe_vma_userptr_invalidate_pass1() */
static struct mmn_finish *pass1(struct xe_userptr *u)
{
	bool signalled = true;

	if (!u->fault_mode && !u->vma_destroyed) {
		u->on_invalidated_list = true;
		op("move_invalidated");
	}
	op("sw_signal");
	for (int i = 0; i < NBOOKKEEP; i++) {
		u->bookkeep[i].sw_signalling = true;
		if (!u->bookkeep[i].signalled)
			signalled = false;
	}
	if (signalled || u->finish_inuse)
		return do_inval(u, false);
	u->finish_inuse = true;
	return &u->finish;
}

/* The gate below: held before the finish pass of the first walk in flow (c). */
static struct gate hold = GATE_INIT;
static bool hold_armed;

static bool uptr_invalidate_start(struct mmn_interval_notifier *sub,
				  const struct mmn_range *range, unsigned long cur_seq,
				  struct mmn_finish **finish)
{
	struct xe_userptr *u = to_uptr(sub);

	op("start");
	if (!mmn_range_blockable(range)) {
		op("ret_false");
		return false;
	}
	pthread_mutex_lock(&u->notifier_lock);
	mmn_interval_set_seq(sub, cur_seq);
	op("set_seq");
	*finish = pass1(u);
	pthread_mutex_unlock(&u->notifier_lock);
	op(*finish ? "ret_finish" : "ret_null");
	return true;
}

static void uptr_invalidate_finish(struct mmn_finish *finish)
{
	struct xe_userptr *u = to_uptr(finish->notifier);

	cb_expect(finish == &u->finish);
	op("finish");
	pthread_mutex_lock(&u->notifier_lock);
	if (u->tlb_inval_submitted) {
		tlb_wait(u);
		u->tlb_inval_submitted = false;
		u->finish_inuse = false;
		unmap_pages(u);
	} else {
		do_inval(u, true);
	}
	pthread_mutex_unlock(&u->notifier_lock);
}

static const struct mmn_interval_notifier_ops uptr_ops = {
	.invalidate_start = uptr_invalidate_start,
	.invalidate_finish = uptr_invalidate_finish,
};

/* The bind path: map the pages through read_begin / read_retry. */
static void uptr_bind(struct xe_userptr *u)
{
	for (;;) {
		unsigned long seq = mmn_interval_read_begin(&u->notifier);

		/* (get_user_pages would run here) */
		pthread_mutex_lock(&u->notifier_lock);
		if (mmn_interval_read_retry(&u->notifier, seq)) {
			pthread_mutex_unlock(&u->notifier_lock);
			continue;
		}
		u->notifier_seq = seq;
		u->mapped = true;
		u->initial_bind = true;
		u->on_invalidated_list = false;
		pthread_mutex_unlock(&u->notifier_lock);
		return;
	}
}

static void uptr_init(struct xe_userptr *u, struct mmn_mm *mm, bool fault_mode,
		      bool fences_signalled)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->notifier_lock, NULL);
	u->fault_mode = fault_mode;
	for (int i = 0; i < NBOOKKEEP; i++)
		u->bookkeep[i].signalled = fences_signalled;
	for (int i = 0; i < NGT; i++)
		u->tlb[i].signalled = true;
	assert_eq(mmn_interval_notifier_insert(&u->notifier, mm, 0x10000, 0x4000, &uptr_ops), 0);
	/* xe: initialised to LONG_MAX so that the first check forces a pin. */
	u->notifier_seq = LONG_MAX;
	uptr_bind(u);
	expect_true(u->mapped);
}

static void uptr_fini(struct xe_userptr *u)
{
	expect_eq(mmn_interval_notifier_remove(&u->notifier), 0);
	pthread_mutex_destroy(&u->notifier_lock);
}

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

static void expect_quiet_after(struct xe_userptr *u, struct mmn_mm *mm)
{
	struct mmn_stats st = stats_of(mm);

	expect_false(u->finish_inuse);
	expect_false(u->tlb_inval_submitted);
	expect_false(u->mapped);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq & 1, 0);
	/* The bound pages are stale now: the next exec must repin. */
	expect_true(mmn_interval_check_retry(&u->notifier, u->notifier_seq));
	expect_true(mmn_interval_read_retry(&u->notifier, u->notifier_seq));
	expect_no_cb_failures();
}

/* (a) fences pending, fault mode: the finish waits, flushes, unmaps. */
TEST(s39a_fences_pending)
{
	struct xe_userptr u;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	uptr_init(&u, mm, true, false);
	ops_reset();
	expect_eq(invalidate(mm, 0x11000, 0x12000, true), 0);
	expect_str_eq(ops_of(NULL),
		      "start set_seq sw_signal ret_finish finish fence_wait tlb_sync unmap");
	for (int i = 0; i < NBOOKKEEP; i++) {
		expect_true(u.bookkeep[i].sw_signalling);
		expect_eq(u.bookkeep[i].waits, 1);
		expect_true(u.bookkeep[i].signalled);
	}
	for (int i = 0; i < NGT; i++)
		expect_eq(u.tlb[i].waits, 1);
	expect_quiet_after(&u, mm);
	expect_eq(stats_of(mm).finishes, 1);
	uptr_fini(&u);
	destroy_mm(mm);
}

/* (a) in preempt-fence (non-fault) mode: no TLB work, the VMA goes on the list. */
TEST(s39a_fences_pending_preempt_mode)
{
	struct xe_userptr u;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	uptr_init(&u, mm, false, false);
	ops_reset();
	expect_eq(invalidate(mm, 0x11000, 0x12000, true), 0);
	expect_str_eq(ops_of(NULL),
		      "start set_seq move_invalidated sw_signal ret_finish finish fence_wait unmap");
	expect_true(u.on_invalidated_list);
	for (int i = 0; i < NGT; i++)
		expect_eq(u.tlb[i].waits, 0);
	expect_quiet_after(&u, mm);
	uptr_fini(&u);
	destroy_mm(mm);
}

/* (b) fences signalled, fault mode: the start submits, the finish waits. */
TEST(s39b_fences_signalled_fault_mode)
{
	struct xe_userptr u;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	uptr_init(&u, mm, true, true);
	ops_reset();
	expect_eq(invalidate(mm, 0x10000, 0x20000, true), 0);
	expect_str_eq(ops_of(NULL),
		      "start set_seq sw_signal fence_wait tlb_submit ret_finish finish tlb_wait unmap");
	for (int i = 0; i < NBOOKKEEP; i++)
		expect_eq(u.bookkeep[i].waits, 1);
	for (int i = 0; i < NGT; i++) {
		expect_eq(u.tlb[i].waits, 1);
		expect_true(u.tlb[i].signalled);
	}
	expect_quiet_after(&u, mm);

	/* Rebind, then again: the same flow. */
	uptr_bind(&u);
	ops_reset();
	expect_eq(invalidate(mm, 0x13fff, 0x14000, true), 0);
	expect_str_eq(ops_of(NULL),
		      "start set_seq sw_signal fence_wait tlb_submit ret_finish finish tlb_wait unmap");
	expect_quiet_after(&u, mm);
	uptr_fini(&u);
	destroy_mm(mm);
}

/* (b) in preempt-fence mode: nothing to defer, all done in the start, NULL. */
TEST(s39b_fences_signalled_preempt_mode)
{
	struct xe_userptr u;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	uptr_init(&u, mm, false, true);
	ops_reset();
	expect_eq(invalidate(mm, 0x10000, 0x20000, true), 0);
	expect_str_eq(ops_of(NULL),
		      "start set_seq move_invalidated sw_signal fence_wait unmap ret_null");
	expect_eq(stats_of(mm).finishes, 0);
	expect_quiet_after(&u, mm);
	uptr_fini(&u);
	destroy_mm(mm);
}

/*
 * (c) finish in use: walk A takes the embedded finish and is held (by a gate
 * notifier later in its walk) before its finish pass; walk B, on another
 * thread, invalidates the same userptr: everything happens in B's start,
 * which returns NULL. Then A's finish completes its own work.
 */
static bool hold_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		       unsigned long cur_seq, struct mmn_finish **finish)
{
	(void)range;
	(void)finish;
	mmn_interval_set_seq(sub, cur_seq);
	if (hold_armed)
		gate_wait(&hold);
	return true;
}

static void hold_finish(struct mmn_finish *finish)
{
	(void)finish;
}

static const struct mmn_interval_notifier_ops hold_ops = {
	.invalidate_start = hold_start,
	.invalidate_finish = hold_finish,
};

struct walker {
	pthread_t thread;
	struct mmn_mm *mm;
	unsigned long start, end;
	int ret;
	bool done;
};

static void *walker_main(void *arg)
{
	struct walker *w = arg;

	w->ret = invalidate(w->mm, w->start, w->end, true);
	flag_set(&w->done, true);
	return NULL;
}

static void finish_in_use(bool fences_signalled, const char *want_a, const char *want_b)
{
	struct mmn_interval_notifier holder = { 0 };
	struct walker a = { .start = 0x10000, .end = 0x40000 };
	struct walker b = { .start = 0x12000, .end = 0x13000 };
	struct xe_userptr u;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	a.mm = b.mm = mm;
	uptr_init(&u, mm, true, fences_signalled);
	assert_eq(mmn_interval_notifier_insert(&holder, mm, 0x30000, 0x1000, &hold_ops), 0);
	gate_close(&hold);
	hold_armed = true;
	ops_reset();

	assert_eq(pthread_create(&a.thread, NULL, walker_main, &a), 0);
	assert_true(wait_until(gate_waiting(&hold) == 1, WAIT_MS));
	expect_true(u.finish_inuse);
	assert_eq(pthread_create(&b.thread, NULL, walker_main, &b), 0);
	expect_true(wait_until(flag_get(&b.done), WAIT_MS));
	expect_false(flag_get(&a.done));
	/* B's whole invalidation happened inside its start. */
	expect_str_eq(ops_of(&b.thread), want_b);
	expect_true(u.finish_inuse);	/* still A's */
	expect_false(u.mapped);
	gate_open(&hold);
	expect_true(wait_until(flag_get(&a.done), WAIT_MS));
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	hold_armed = false;
	expect_eq(a.ret, 0);
	expect_eq(b.ret, 0);
	expect_str_eq(ops_of(&a.thread), want_a);
	expect_quiet_after(&u, mm);
	expect_eq(stats_of(mm).finishes, 1);	/* A's userptr finish only */
	expect_eq(mmn_interval_notifier_remove(&holder), 0);
	uptr_fini(&u);
	destroy_mm(mm);
}

TEST(s39c_finish_in_use_fences_signalled)
{
	finish_in_use(true,
		      "start set_seq sw_signal fence_wait tlb_submit ret_finish finish tlb_wait unmap",
		      "start set_seq sw_signal fence_wait tlb_sync unmap ret_null");
}

TEST(s39c_finish_in_use_fences_pending)
{
	finish_in_use(false,
		      "start set_seq sw_signal ret_finish finish fence_wait tlb_sync unmap",
		      "start set_seq sw_signal fence_wait tlb_sync unmap ret_null");
}

/*
 * (d) non-blockable: the start returns false without touching anything; the
 * finish of a two-pass notifier called before it still runs; -EAGAIN, and the
 * core has closed the region.
 */
struct other_sub {
	struct mmn_interval_notifier sub;
	struct mmn_finish finish;
};

static bool other_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			unsigned long cur_seq, struct mmn_finish **finish)
{
	struct other_sub *o = mmn_container_of(sub, struct other_sub, sub);

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	op("other_start");
	*finish = &o->finish;
	return true;
}

static void other_finish(struct mmn_finish *finish)
{
	(void)finish;
	op("other_finish");
}

static const struct mmn_interval_notifier_ops other_ops = {
	.invalidate_start = other_start,
	.invalidate_finish = other_finish,
};

TEST(s39d_nonblock_returns_false)
{
	struct other_sub o = { 0 };
	struct xe_userptr u;
	struct mmn_stats st;
	struct mmn_mm *mm;
	unsigned long seq_before;

	assert_eq(mmn_mm_new(&mm), 0);
	uptr_init(&u, mm, true, true);
	assert_eq(mmn_interval_notifier_insert(&o.sub, mm, 0x8000, 0x10000, &other_ops), 0);
	seq_before = stats_of(mm).seq;
	ops_reset();
	expect_eq(invalidate(mm, 0x8000, 0x20000, false), -EAGAIN);
	expect_str_eq(ops_of(NULL), "other_start start ret_false other_finish");
	/* Nothing was done to the userptr: no set_seq, still mapped, flags clear. */
	expect_true(u.mapped);
	expect_false(u.finish_inuse);
	expect_false(mmn_interval_read_retry(&u.notifier, u.notifier_seq));
	for (int i = 0; i < NBOOKKEEP; i++) {
		expect_false(u.bookkeep[i].sw_signalling);
		expect_eq(u.bookkeep[i].waits, 0);
	}
	st = stats_of(mm);
	expect_eq(st.nonblock_failures, 1);
	expect_eq_ul(st.active, 0);
	expect_eq_ul(st.seq, seq_before + 2);
	expect_eq(st.warnings, 0);

	/* A blockable retry then does the work (flow b). */
	ops_reset();
	expect_eq(invalidate(mm, 0x8000, 0x20000, true), 0);
	expect_str_eq(ops_of(NULL), "other_start start set_seq sw_signal fence_wait tlb_submit "
				    "ret_finish other_finish finish tlb_wait unmap");
	expect_quiet_after(&u, mm);
	expect_eq(mmn_interval_notifier_remove(&o.sub), 0);
	uptr_fini(&u);
	destroy_mm(mm);
}

int main(void)
{
	RUN(s39a_fences_pending);
	RUN(s39a_fences_pending_preempt_mode);
	RUN(s39b_fences_signalled_fault_mode);
	RUN(s39b_fences_signalled_preempt_mode);
	RUN(s39c_finish_in_use_fences_signalled);
	RUN(s39c_finish_in_use_fences_pending);
	RUN(s39d_nonblock_returns_false);
	return test_report();
}
