// SPDX-License-Identifier: MIT
/*
 * Misuse that would deadlock, docs/TESTING.md scenario 36, as docs/kernel-map.md D6
 * decides it: from inside a callback (first pass or finish) of a domain,
 * mmn_interval_notifier_remove() of a notifier that would have to wait for the
 * open period returns -EDEADLK and leaves it inserted, and
 * mmn_interval_read_begin() of a notifier that would wait (hit in this period,
 * or inserted during it) logs an error and aborts: that is tested in a forked
 * child, whose log hook writes the record to a pipe so that the parent sees
 * the report came before the abort. The same calls that need not wait are
 * allowed from a callback.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "scenario_util.h"

/* What a misbehaving callback does; set by each test. */
enum misuse {
	DO_NOTHING,
	REMOVE_LISTED,		/* remove every notifier in victims[] */
	READ_BEGIN_SELF,	/* read_begin on the notifier being called */
	INSERT_THEN_READ_BEGIN,	/* insert a new notifier, then read_begin on it */
	ALLOWED_CALLS,		/* the calls D6 allows */
	NESTED_OTHER_DOMAIN,	/* start a region of another domain */
};

struct bad_sub {
	struct mmn_interval_notifier sub;
	int id;
	struct mmn_finish finish;
	enum misuse in_start, in_finish;
	int calls, finishes;
};

#define MAX_VICTIMS 4

static struct {
	struct mmn_interval_notifier *victims[MAX_VICTIMS];
	int nvictims;
	int rets[2][MAX_VICTIMS];	/* [0] from first pass, [1] from finish */
	struct mmn_mm *mm;
	struct mmn_interval_notifier pending;	/* inserted from a callback */
	/* ALLOWED_CALLS */
	struct mmn_interval_notifier *later;	/* hit later in this walk */
	unsigned long later_seq;
	struct mmn_interval_notifier *outside;	/* in the tree, not in the range */
	struct mmn_interval_notifier *foreign;	/* in another, idle domain */
	int allowed_ret[4];
	unsigned long allowed_seq[3];
	/* NESTED_OTHER_DOMAIN */
	struct mmn_mm *other_mm;
} ctx;

static bool noop_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			    unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	ev_add('I', 0, range, cur_seq, NULL);
	return true;
}

static const struct mmn_interval_notifier_ops noop_ops = { .invalidate = noop_invalidate };

static void misbehave(struct bad_sub *b, enum misuse what, int pass)
{
	switch (what) {
	case DO_NOTHING:
		break;
	case REMOVE_LISTED:
		for (int i = 0; i < ctx.nvictims; i++)
			ctx.rets[pass][i] = mmn_interval_notifier_remove(ctx.victims[i]);
		break;
	case READ_BEGIN_SELF:
		(void)mmn_interval_read_begin(&b->sub);
		break;
	case INSERT_THEN_READ_BEGIN:
		if (mmn_interval_notifier_insert(&ctx.pending, ctx.mm, 0x1000, 0x1000, &noop_ops))
			abort();
		(void)mmn_interval_read_begin(&ctx.pending);
		break;
	case ALLOWED_CALLS:
		/*
		 * A notifier this walk reaches later: not hit yet, no wait. (In
		 * the finish pass it has been hit, so it would wait: not here.)
		 */
		if (pass == 0)
			ctx.allowed_seq[0] = mmn_interval_read_begin(ctx.later);
		/* A notifier the period does not hit: no wait. */
		ctx.allowed_seq[1] = mmn_interval_read_begin(ctx.outside);
		/* Another domain, idle: no wait either way. */
		ctx.allowed_seq[2] = mmn_interval_read_begin(ctx.foreign);
		ctx.allowed_ret[0] = mmn_interval_notifier_remove(ctx.foreign);
		/* Insert (deferred) then remove a pending insert: no wait. */
		ctx.allowed_ret[1] = mmn_interval_notifier_insert(&ctx.pending, ctx.mm, 0x1000,
								  0x1000, &noop_ops);
		ctx.allowed_ret[2] = mmn_interval_notifier_test_in_tree(&ctx.pending);
		ctx.allowed_ret[3] = mmn_interval_notifier_remove(&ctx.pending);
		break;
	case NESTED_OTHER_DOMAIN: {
		struct mmn_range range;

		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, ctx.other_mm, 0, 0x100000);
		if (mmn_invalidate_range_start(&range) == 0)
			mmn_invalidate_range_end(&range);
		break;
	}
	}
}

static bool bad_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		      unsigned long cur_seq, struct mmn_finish **finish)
{
	struct bad_sub *b = mmn_container_of(sub, struct bad_sub, sub);

	b->calls++;
	ev_add('S', b->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	misbehave(b, b->in_start, 0);
	*finish = &b->finish;
	return true;
}

static void bad_finish(struct mmn_finish *finish)
{
	struct bad_sub *b = mmn_container_of(finish, struct bad_sub, finish);

	b->finishes++;
	ev_add('F', b->id, NULL, 0, finish);
	misbehave(b, b->in_finish, 1);
}

static const struct mmn_interval_notifier_ops bad_ops = {
	.invalidate_start = bad_start,
	.invalidate_finish = bad_finish,
};

static void bad_init(struct bad_sub *b, int id)
{
	memset(b, 0, sizeof(*b));
	b->id = id;
}

struct inv_call {
	struct mmn_mm *mm;
	unsigned long start, end;
	int ret;
	bool done;
};

static void *inv_main(void *arg)
{
	struct inv_call *c = arg;
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, c->mm, c->start, c->end);
	c->ret = mmn_invalidate_range_start(&range);
	if (c->ret == 0)
		mmn_invalidate_range_end(&range);
	flag_set(&c->done, true);
	return NULL;
}

/*
 * One invalidation, on a helper thread with a bounded wait: misuse that
 * hangs instead of being refused fails the test instead of hanging it.
 */
static void invalidate(struct mmn_mm *mm, unsigned long start, unsigned long end)
{
	struct inv_call c = { .mm = mm, .start = start, .end = end };
	pthread_t t;

	assert_eq(pthread_create(&t, NULL, inv_main, &c), 0);
	if (!wait_until(flag_get(&c.done), WAIT_MS)) {
		test_fail_at(__FILE__, __LINE__);
		fprintf(stderr, "    the invalidation hangs: a callback waits for its own period\n");
		test_exit_now();
	}
	pthread_join(t, NULL);
	expect_eq(c.ret, 0);
}

/*
 * Remove from a first pass (pass 0) or a finish (pass 1) of the same domain,
 * of: the notifier being called, one the walk reaches later, and one in the
 * tree outside the range. Each would wait for the open period: -EDEADLK, and
 * each stays inserted and in working order.
 */
static void remove_from_callback(int pass)
{
	struct bad_sub a, b;
	struct mmn_interval_notifier outside = { 0 };
	struct mmn_stats st;
	struct mmn_mm *mm;

	memset(&ctx, 0, sizeof(ctx));
	assert_eq(mmn_mm_new(&mm), 0);
	bad_init(&a, 1);
	bad_init(&b, 2);
	if (pass == 0)
		a.in_start = REMOVE_LISTED;
	else
		a.in_finish = REMOVE_LISTED;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &bad_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x2000, 0x1000, &bad_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&outside, mm, 0x9000, 0x1000, &noop_ops), 0);
	ctx.victims[0] = &a.sub;
	ctx.victims[1] = &b.sub;
	ctx.victims[2] = &outside;
	ctx.nvictims = 3;
	for (int i = 0; i < 3; i++)
		ctx.rets[pass][i] = 12345;

	ev_reset();
	invalidate(mm, 0x1000, 0x3000);
	expect_str_eq(ev_str(), "S1 S2 F1 F2");
	for (int i = 0; i < 3; i++) {
		printf("    remove(victim %d) from %s -> %d (want %d, -EDEADLK)\n", i,
		       pass ? "finish" : "first pass", ctx.rets[pass][i], -EDEADLK);
		expect_eq(ctx.rets[pass][i], -EDEADLK);
	}
	st = stats_of(mm);
	expect_eq_ul(st.notifiers, 3);
	expect_eq_ul(st.deferred, 0);
	expect_eq(st.deferred_removes, 0);
	expect_eq(st.remove_waits, 0);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.active, 0);
	expect_true(mmn_interval_notifier_test_in_tree(&a.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&b.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&outside));

	/* Still inserted and still called. */
	a.in_start = a.in_finish = DO_NOTHING;
	ev_reset();
	invalidate(mm, 0, 0x10000);
	expect_str_eq(ev_str(), "S1 S2 I0 F1 F2");
	/* And removable normally afterwards. */
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&outside), 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	destroy_mm(mm);
}

TEST(s36_remove_from_first_pass_edeadlk)
{
	remove_from_callback(0);
}

static void *release_main(void *arg)
{
	mmn_mm_release(arg);
	return NULL;
}

/* The RELEASE walk is a callback context too (D8 + D6). */
TEST(s36_remove_from_release_callback_edeadlk)
{
	struct bad_sub a;
	struct mmn_mm *mm;
	pthread_t t;
	bool done = false;

	memset(&ctx, 0, sizeof(ctx));
	assert_eq(mmn_mm_new(&mm), 0);
	bad_init(&a, 1);
	a.in_finish = REMOVE_LISTED;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &bad_ops), 0);
	ctx.victims[0] = &a.sub;
	ctx.nvictims = 1;
	ctx.rets[1][0] = 12345;
	assert_eq(pthread_create(&t, NULL, release_main, mm), 0);
	done = wait_until(stats_of(mm).releases == 1 && stats_of(mm).active == 0 &&
				  stats_of(mm).finishes == 1,
			  WAIT_MS);
	if (!done) {
		test_fail_at(__FILE__, __LINE__);
		fprintf(stderr, "    release hangs: a callback waits for its own period\n");
		test_exit_now();
	}
	pthread_join(t, NULL);
	expect_eq(ctx.rets[1][0], -EDEADLK);
	expect_true(mmn_interval_notifier_test_in_tree(&a.sub));
	a.in_finish = DO_NOTHING;
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	destroy_mm(mm);
}

TEST(s36_remove_from_finish_edeadlk)
{
	remove_from_callback(1);
}

/*
 * A callback of domain X starts a region of domain Y; Y's callback is still
 * inside X's callback, so removing X's notifier from there is -EDEADLK too.
 */
static struct mmn_interval_notifier *nested_victim;
static int nested_ret = 12345;

static bool nested_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			      unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	nested_ret = mmn_interval_notifier_remove(nested_victim);
	return true;
}

static const struct mmn_interval_notifier_ops nested_ops = { .invalidate = nested_invalidate };

TEST(s36_remove_from_nested_domain_callback_edeadlk)
{
	struct bad_sub a;
	struct mmn_interval_notifier y = { 0 };
	struct mmn_mm *x_mm;

	memset(&ctx, 0, sizeof(ctx));
	assert_eq(mmn_mm_new(&x_mm), 0);
	assert_eq(mmn_mm_new(&ctx.other_mm), 0);
	bad_init(&a, 1);
	a.in_start = NESTED_OTHER_DOMAIN;
	assert_eq(mmn_interval_notifier_insert(&a.sub, x_mm, 0x1000, 0x1000, &bad_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&y, ctx.other_mm, 0x1000, 0x1000, &nested_ops), 0);
	nested_victim = &a.sub;
	invalidate(x_mm, 0x1000, 0x2000);
	expect_eq(nested_ret, -EDEADLK);
	expect_true(mmn_interval_notifier_test_in_tree(&a.sub));
	expect_eq_ul(stats_of(x_mm).seq, 4);
	expect_eq_ul(stats_of(ctx.other_mm).seq, 4);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&y), 0);
	destroy_mm(x_mm);
	destroy_mm(ctx.other_mm);
}

/*
 * The calls that need not wait are allowed from a callback: read_begin of a
 * notifier not hit yet in this period (a later one in the walk; one outside
 * the range; one of another domain), remove of another domain's notifier, and
 * insert + remove of a pending insert. Done from the first pass and from the
 * finish.
 */
static void allowed_from_callback(int pass)
{
	struct bad_sub a, later;
	struct mmn_interval_notifier outside = { 0 }, foreign = { 0 };
	struct mmn_mm *mm, *other;
	struct mmn_stats st;
	unsigned long later_seq0, outside_seq0, foreign_seq0;

	memset(&ctx, 0, sizeof(ctx));
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_mm_new(&other), 0);
	ctx.mm = mm;
	bad_init(&a, 1);
	bad_init(&later, 2);
	if (pass == 0)
		a.in_start = ALLOWED_CALLS;
	else
		a.in_finish = ALLOWED_CALLS;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &bad_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&later.sub, mm, 0x2000, 0x1000, &bad_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&outside, mm, 0x9000, 0x1000, &noop_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&foreign, other, 0x1000, 0x1000, &noop_ops), 0);
	ctx.later = &later.sub;
	ctx.outside = &outside;
	ctx.foreign = &foreign;
	later_seq0 = mmn_interval_read_begin(&later.sub);
	outside_seq0 = mmn_interval_read_begin(&outside);
	foreign_seq0 = mmn_interval_read_begin(&foreign);

	ev_reset();
	invalidate(mm, 0x1000, 0x3000);
	expect_str_eq(ev_str(), "S1 S2 F1 F2");
	if (pass == 0) {
		/* Read before the walk reached it; the walk then collided. */
		expect_eq_ul(ctx.allowed_seq[0], later_seq0);
		expect_true(mmn_interval_read_retry(&later.sub, ctx.allowed_seq[0]));
	}
	expect_eq_ul(ctx.allowed_seq[1], outside_seq0);
	expect_false(mmn_interval_read_retry(&outside, ctx.allowed_seq[1]));
	expect_eq_ul(ctx.allowed_seq[2], foreign_seq0);
	expect_eq(ctx.allowed_ret[0], 0);	/* foreign removed */
	expect_eq(ctx.allowed_ret[1], 0);	/* insert accepted... */
	expect_eq(ctx.allowed_ret[2], 0);	/* ...deferred... */
	expect_eq(ctx.allowed_ret[3], 0);	/* ...and removed at once */
	expect_false(mmn_interval_notifier_test_in_tree(&ctx.pending));
	expect_false(mmn_interval_notifier_test_in_tree(&foreign));
	st = stats_of(mm);
	expect_eq_ul(st.notifiers, 3);
	expect_eq_ul(st.deferred, 0);
	expect_eq(st.read_begin_waits, 0);
	expect_eq(st.remove_waits, 0);
	expect_eq_ul(st.seq, 4);
	/* The pending insert never reached the tree and is never called. */
	a.in_start = a.in_finish = DO_NOTHING;
	ev_reset();
	invalidate(mm, 0, 0x10000);
	expect_str_eq(ev_str(), "S1 S2 I0 F1 F2");
	expect_eq(mmn_interval_notifier_remove(&ctx.pending), -EINVAL);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&later.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&outside), 0);
	destroy_mm(mm);
	destroy_mm(other);
}

TEST(s36_allowed_calls_from_first_pass)
{
	allowed_from_callback(0);
}

TEST(s36_allowed_calls_from_finish)
{
	allowed_from_callback(1);
}

/* ---- read_begin that would wait: log, then abort (forked child) ------------ */

static struct bad_sub child_sub;

struct child_misuse {
	enum misuse in_start, in_finish;
};

/*
 * In the child: insert child_sub, which misbehaves as told in its first pass
 * or finish, and invalidate it.
 */
static void invalidate_misbehaving(void *arg)
{
	const struct child_misuse *m = arg;
	struct mmn_range range;

	memset(&ctx, 0, sizeof(ctx));
	if (mmn_mm_new(&ctx.mm))
		_exit(3);
	bad_init(&child_sub, 1);
	child_sub.in_start = m->in_start;
	child_sub.in_finish = m->in_finish;
	if (mmn_interval_notifier_insert(&child_sub.sub, ctx.mm, 0x1000, 0x1000, &bad_ops))
		_exit(4);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, ctx.mm, 0x1000, 0x2000);
	if (mmn_invalidate_range_start(&range) == 0)
		mmn_invalidate_range_end(&range);
	/* Not reached if read_begin aborted. */
	test_child_returned();
}

static int run_child(enum misuse in_start, enum misuse in_finish, struct test_child_msg *msgs,
		     int *nmsgs)
{
	struct child_misuse m = { in_start, in_finish };

	return test_fork_child(invalidate_misbehaving, &m, WAIT_MS, msgs, nmsgs);
}

static void expect_logged_then_aborted(enum misuse in_start, enum misuse in_finish,
				       const void *sub)
{
	struct test_child_msg msgs[TEST_CHILD_MSGS];
	int nmsgs, status;

	status = run_child(in_start, in_finish, msgs, &nmsgs);
	test_expect_child_aborted(status, msgs, nmsgs, sub);
}

TEST(s36_read_begin_hit_sub_from_first_pass_aborts)
{
	expect_logged_then_aborted(READ_BEGIN_SELF, DO_NOTHING, &child_sub.sub);
}

TEST(s36_read_begin_hit_sub_from_finish_aborts)
{
	expect_logged_then_aborted(DO_NOTHING, READ_BEGIN_SELF, &child_sub.sub);
}

/* A notifier inserted during the period would also wait: same verdict. */
TEST(s36_read_begin_pending_insert_from_callback_aborts)
{
	expect_logged_then_aborted(INSERT_THEN_READ_BEGIN, DO_NOTHING, &ctx.pending);
}

/* Control: the same child without misuse exits normally. */
TEST(s36_child_control)
{
	struct test_child_msg msgs[TEST_CHILD_MSGS];
	int nmsgs, status;

	status = run_child(DO_NOTHING, DO_NOTHING, msgs, &nmsgs);
	test_expect_child_returned(status, msgs, nmsgs);
}

int main(void)
{
	RUN(s36_remove_from_first_pass_edeadlk);
	RUN(s36_remove_from_finish_edeadlk);
	RUN(s36_remove_from_release_callback_edeadlk);
	RUN(s36_remove_from_nested_domain_callback_edeadlk);
	RUN(s36_allowed_calls_from_first_pass);
	RUN(s36_allowed_calls_from_finish);
	RUN(s36_child_control);
	RUN(s36_read_begin_hit_sub_from_first_pass_aborts);
	RUN(s36_read_begin_hit_sub_from_finish_aborts);
	RUN(s36_read_begin_pending_insert_from_callback_aborts);
	return test_report();
}
