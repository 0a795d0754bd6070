// SPDX-License-Identifier: MIT
/*
 * Fences of the simulated devices: signalled at init, pending until their
 * deadline, retire function run exactly once before any waiter returns,
 * wait / wait_until / expedite, re-arming, and many concurrent waiters and
 * pollers. Blocking is proved with threads and bounded waits; the deadline
 * tests only check lower bounds (a wait never returns early).
 */
#include "sim.h"

#include "harness.h"

#define MS 1000000ull
#define FAR_AWAY (10000 * MS)	/* a deadline no test waits for */

static int retired;
static struct mmn_sim_fence *retired_fence;

static void count_retire(struct mmn_sim_fence *fence)
{
	__atomic_fetch_add(&retired, 1, __ATOMIC_SEQ_CST);
	retired_fence = fence;
}

static unsigned int fence_sleepers(struct mmn_sim_fence *f)
{
	/* Private field, read only to prove that waiters are asleep. */
	return __atomic_load_n(&f->waiters, __ATOMIC_SEQ_CST);
}

TEST(init_is_signalled)
{
	struct mmn_sim_fence f;

	mmn_sim_fence_init(&f);
	expect_true(mmn_sim_fence_is_signalled(&f));
	mmn_sim_fence_wait(&f);
	expect_eq(mmn_sim_fence_wait_until(&f, 0), 0);
	mmn_sim_fence_expedite(&f);		/* no-op on a signalled fence */
	expect_true(mmn_sim_fence_is_signalled(&f));
}

TEST(wait_sleeps_until_deadline)
{
	struct mmn_sim_fence f;
	uint64_t deadline;

	retired = 0;
	mmn_sim_fence_init(&f);
	deadline = mmn_sim_now_ns() + 20 * MS;
	assert_eq(mmn_sim_fence_arm(&f, deadline, count_retire), 0);
	expect_false(mmn_sim_fence_is_signalled(&f));
	expect_eq(retired, 0);
	mmn_sim_fence_wait(&f);
	expect_ge(mmn_sim_now_ns(), deadline);
	expect_eq(retired, 1);
	expect_eq_ptr(retired_fence, &f);
	expect_true(mmn_sim_fence_is_signalled(&f));
	mmn_sim_fence_wait(&f);
	expect_eq(retired, 1);
}

TEST(arm_pending_is_busy_and_rearm_works)
{
	struct mmn_sim_fence f;

	retired = 0;
	mmn_sim_fence_init(&f);
	assert_eq(mmn_sim_fence_arm(&f, mmn_sim_now_ns() + FAR_AWAY, count_retire), 0);
	expect_eq(mmn_sim_fence_arm(&f, 0, count_retire), -EBUSY);
	mmn_sim_fence_expedite(&f);
	mmn_sim_fence_wait(&f);
	expect_eq(retired, 1);
	/* A deadline in the past: complete at the first look. */
	assert_eq(mmn_sim_fence_arm(&f, 0, count_retire), 0);
	expect_true(mmn_sim_fence_is_signalled(&f));
	expect_eq(retired, 2);
	/* No retire function. */
	assert_eq(mmn_sim_fence_arm(&f, 0, NULL), 0);
	mmn_sim_fence_wait(&f);
	expect_eq(retired, 2);
}

TEST(wait_until_times_out)
{
	struct mmn_sim_fence f;
	uint64_t limit;

	retired = 0;
	mmn_sim_fence_init(&f);
	assert_eq(mmn_sim_fence_arm(&f, mmn_sim_now_ns() + FAR_AWAY, count_retire), 0);
	limit = mmn_sim_now_ns() + 5 * MS;
	expect_eq(mmn_sim_fence_wait_until(&f, limit), -ETIMEDOUT);
	expect_ge(mmn_sim_now_ns(), limit);
	expect_false(mmn_sim_fence_is_signalled(&f));
	expect_eq(retired, 0);
	mmn_sim_fence_expedite(&f);
	expect_eq(mmn_sim_fence_wait_until(&f, mmn_sim_now_ns() + FAR_AWAY), 0);
	expect_eq(retired, 1);
}

/* ---- many waiters -------------------------------------------------------- */

#define WAITERS 8

struct waiter_ctx {
	struct mmn_sim_fence *f;
	int saw_retired;		/* retire count seen right after the wait */
};

static int retire_done;

static void slow_retire(struct mmn_sim_fence *fence)
{
	(void)fence;
	__atomic_fetch_add(&retired, 1, __ATOMIC_SEQ_CST);
	/* Waiters must not return before this store. */
	__atomic_store_n(&retire_done, 1, __ATOMIC_SEQ_CST);
}

static void *waiter(void *arg)
{
	struct waiter_ctx *w = arg;

	mmn_sim_fence_wait(w->f);
	w->saw_retired = __atomic_load_n(&retire_done, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST(expedite_wakes_every_sleeper)
{
	struct waiter_ctx ctx[WAITERS];
	pthread_t th[WAITERS];
	struct mmn_sim_fence f;

	retired = 0;
	retire_done = 0;
	mmn_sim_fence_init(&f);
	assert_eq(mmn_sim_fence_arm(&f, mmn_sim_now_ns() + FAR_AWAY, slow_retire), 0);
	for (int i = 0; i < WAITERS; i++) {
		ctx[i] = (struct waiter_ctx){ .f = &f, .saw_retired = -1 };
		pthread_create(&th[i], NULL, waiter, &ctx[i]);
	}
	/* All asleep on the futex, none returned. */
	expect_true(wait_until(fence_sleepers(&f) == WAITERS, 10000));
	expect_eq(retired, 0);
	mmn_sim_fence_expedite(&f);
	for (int i = 0; i < WAITERS; i++) {
		pthread_join(th[i], NULL);
		expect_eq(ctx[i].saw_retired, 1);
	}
	expect_eq(retired, 1);
	expect_eq(fence_sleepers(&f), 0);
}

struct racer_ctx {
	struct mmn_sim_fence *f;
	pthread_barrier_t *bar;
	int rounds;
	int poll;
	int bad;
};

static void *racer(void *arg)
{
	struct racer_ctx *r = arg;

	for (int i = 0; i < r->rounds; i++) {
		pthread_barrier_wait(r->bar);
		if (r->poll) {
			while (!mmn_sim_fence_is_signalled(r->f))
				;
		} else {
			mmn_sim_fence_wait(r->f);
		}
		if (!__atomic_load_n(&retire_done, __ATOMIC_SEQ_CST))
			r->bad++;
		pthread_barrier_wait(r->bar);
	}
	return NULL;
}

/* Waiters and pollers race to complete an expired fence: retire runs once. */
TEST(retire_runs_once_under_races)
{
	enum { THREADS = 4, ROUNDS = 2000 };
	struct racer_ctx ctx[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t bar;
	struct mmn_sim_fence f;
	int bad = 0;

	retired = 0;
	mmn_sim_fence_init(&f);
	pthread_barrier_init(&bar, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++) {
		ctx[i] = (struct racer_ctx){ &f, &bar, ROUNDS, i & 1, 0 };
		pthread_create(&th[i], NULL, racer, &ctx[i]);
	}
	for (int i = 0; i < ROUNDS; i++) {
		retire_done = 0;
		/* Expired at once, or a few microseconds later. */
		assert_eq(mmn_sim_fence_arm(&f, mmn_sim_now_ns() + (i % 3) * 2000,
					    slow_retire), 0);
		pthread_barrier_wait(&bar);
		pthread_barrier_wait(&bar);
		if (retired != i + 1) {
			expect_eq(retired, i + 1);
			break;
		}
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		bad += ctx[i].bad;
	}
	expect_eq(retired, ROUNDS);
	expect_eq(bad, 0);
	pthread_barrier_destroy(&bar);
}

/* A waiter asleep until a far deadline is woken by expedite from another thread. */
static void *expediter(void *arg)
{
	struct mmn_sim_fence *f = arg;

	while (fence_sleepers(f) == 0)
		sched_yield();
	mmn_sim_fence_expedite(f);
	return NULL;
}

TEST(expedite_during_sleep)
{
	struct mmn_sim_fence f;
	pthread_t th;

	for (int i = 0; i < 200; i++) {
		retired = 0;
		retire_done = 0;
		mmn_sim_fence_init(&f);
		assert_eq(mmn_sim_fence_arm(&f, mmn_sim_now_ns() + FAR_AWAY, slow_retire), 0);
		pthread_create(&th, NULL, expediter, &f);
		mmn_sim_fence_wait(&f);
		pthread_join(th, NULL);
		expect_eq(retired, 1);
	}
}

int main(void)
{
	RUN(init_is_signalled);
	RUN(wait_sleeps_until_deadline);
	RUN(arm_pending_is_busy_and_rearm_works);
	RUN(wait_until_times_out);
	RUN(expedite_wakes_every_sleeper);
	RUN(retire_runs_once_under_races);
	RUN(expedite_during_sleep);
	return test_report();
}
