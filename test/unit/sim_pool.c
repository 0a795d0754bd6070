// SPDX-License-Identifier: MIT
/*
 * The non-blocking pool of the svm driver's finish containers: exhaustion,
 * return, LIFO reuse, contents kept, an always-empty pool, and exclusive
 * ownership under concurrent get/put with the pool often empty (each object
 * carries an owner word that get/put must find in the expected state).
 */
#include "sim.h"

#include "harness.h"

struct obj {
	uint64_t owner;		/* 0 free, else the thread id + 1 holding it */
	uint64_t payload;
	char pad[40];
};

TEST(exhaust_and_return)
{
	struct mmn_sim_pool pool;
	struct obj *o[4];

	assert_eq(mmn_sim_pool_init(&pool, 4, sizeof(struct obj)), 0);
	expect_eq(mmn_sim_pool_available(&pool), 4);
	for (int i = 0; i < 4; i++) {
		o[i] = mmn_sim_pool_get(&pool);
		assert_true(o[i] != NULL);
		expect_eq((uintptr_t)o[i] % 64, 0);
		expect_eq(o[i]->owner, 0);		/* zeroed at init */
		for (int j = 0; j < i; j++)
			expect_ne_ptr(o[i], o[j]);
	}
	expect_eq_ptr(mmn_sim_pool_get(&pool), NULL);
	expect_eq(mmn_sim_pool_available(&pool), 0);
	/* LIFO: the last one put back is the next one out; contents kept. */
	o[1]->payload = 0x1111;
	o[2]->payload = 0x2222;
	mmn_sim_pool_put(&pool, o[1]);
	mmn_sim_pool_put(&pool, o[2]);
	expect_eq(mmn_sim_pool_available(&pool), 2);
	expect_eq_ptr(mmn_sim_pool_get(&pool), o[2]);
	expect_eq_ptr(mmn_sim_pool_get(&pool), o[1]);
	expect_eq(o[1]->payload, 0x1111);
	expect_eq_ptr(mmn_sim_pool_get(&pool), NULL);
	for (int i = 0; i < 4; i++)
		mmn_sim_pool_put(&pool, o[i]);
	expect_eq(mmn_sim_pool_available(&pool), 4);
	mmn_sim_pool_fini(&pool);
}

TEST(empty_pool_and_bad_arguments)
{
	struct mmn_sim_pool pool;

	assert_eq(mmn_sim_pool_init(&pool, 0, 16), 0);
	expect_eq_ptr(mmn_sim_pool_get(&pool), NULL);
	expect_eq_ptr(mmn_sim_pool_get(&pool), NULL);
	expect_eq(mmn_sim_pool_available(&pool), 0);
	mmn_sim_pool_fini(&pool);
	expect_eq(mmn_sim_pool_init(&pool, 4, 0), -EINVAL);
	expect_eq(mmn_sim_pool_init(NULL, 4, 8), -EINVAL);
}

#define THREADS 4
#define OBJS 3
#define ROUNDS 200000

struct worker {
	struct mmn_sim_pool *pool;
	pthread_barrier_t *bar;
	uint64_t id;
	uint64_t gets;
	uint64_t empty;
	uint64_t bad;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct obj *held[2] = { NULL, NULL };

	pthread_barrier_wait(w->bar);
	for (int i = 0; i < ROUNDS; i++) {
		int slot = i & 1;

		if (!held[slot]) {
			struct obj *o = mmn_sim_pool_get(w->pool);
			uint64_t expected = 0;

			if (!o) {
				w->empty++;
				continue;
			}
			w->gets++;
			/* Nobody else may hold it. */
			if (!__atomic_compare_exchange_n(&o->owner, &expected, w->id, false,
							 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				w->bad++;
			o->payload = w->id;
			held[slot] = o;
		} else {
			struct obj *o = held[slot];
			uint64_t expected = w->id;

			if (o->payload != w->id)
				w->bad++;
			if (!__atomic_compare_exchange_n(&o->owner, &expected, 0, false,
							 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				w->bad++;
			mmn_sim_pool_put(w->pool, o);
			held[slot] = NULL;
		}
	}
	for (int s = 0; s < 2; s++)
		if (held[s]) {
			__atomic_store_n(&held[s]->owner, 0, __ATOMIC_RELEASE);
			mmn_sim_pool_put(w->pool, held[s]);
		}
	return NULL;
}

TEST(concurrent_exclusive_ownership)
{
	struct mmn_sim_pool pool;
	struct worker w[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t bar;
	struct obj *all[OBJS];
	uint64_t gets = 0, empty = 0, bad = 0;

	assert_eq(mmn_sim_pool_init(&pool, OBJS, sizeof(struct obj)), 0);
	pthread_barrier_init(&bar, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .pool = &pool, .bar = &bar, .id = (uint64_t)i + 1 };
		pthread_create(&th[i], NULL, worker, &w[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		gets += w[i].gets;
		empty += w[i].empty;
		bad += w[i].bad;
	}
	expect_eq(bad, 0);
	expect_gt(gets, 0);
	/* Up to 8 wanted, 3 there: gets that found it empty, if any, were clean. */
	printf("    %llu gets, %llu found the pool empty\n", (unsigned long long)gets,
	       (unsigned long long)empty);
	expect_eq(mmn_sim_pool_available(&pool), OBJS);
	/* Every object is in the stack exactly once. */
	for (int i = 0; i < OBJS; i++) {
		all[i] = mmn_sim_pool_get(&pool);
		assert_true(all[i] != NULL);
		expect_eq(all[i]->owner, 0);
		for (int j = 0; j < i; j++)
			expect_ne_ptr(all[i], all[j]);
	}
	expect_eq_ptr(mmn_sim_pool_get(&pool), NULL);
	for (int i = 0; i < OBJS; i++)
		mmn_sim_pool_put(&pool, all[i]);
	pthread_barrier_destroy(&bar);
	mmn_sim_pool_fini(&pool);
}

int main(void)
{
	RUN(exhaust_and_return);
	RUN(empty_pool_and_bad_arguments);
	RUN(concurrent_exclusive_ownership);
	return test_report();
}
