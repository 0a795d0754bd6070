// SPDX-License-Identifier: MIT
/*
 * The registration cache's index (src/rcache/rtree.c), against a brute-force
 * oracle: random inserts, erases and cover queries (some covering node must be
 * found exactly when one exists), with the treap's order,
 * heap and augmentation checked after every change. Then lock-free readers
 * search while a writer churns the tree: they must always terminate, never
 * return a node that was never inserted, and find the nodes that stay put
 * (false misses are allowed, and counted). Seeded: pass a seed as argv[1].
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "../../src/rcache/rtree.h"

#define NODES 1500
#define SPACE 20000UL

static struct rnode pool[NODES];
static bool active[NODES];
static unsigned long ns[NODES], nl[NODES];

/* Is there a node covering [first, last]? */
static bool oracle(unsigned long first, unsigned long last)
{
	for (int i = 0; i < NODES; i++)
		if (active[i] && ns[i] <= first && nl[i] >= last)
			return true;
	return false;
}

/* The search result is a live node that covers, and there is one iff one exists. */
static void expect_cover(struct rnode *n, unsigned long first, unsigned long last)
{
	bool exists = oracle(first, last);

	expect_eq(n != NULL, exists);
	if (n) {
		int i = (int)(n - pool);

		expect_true(i >= 0 && i < NODES && active[i]);
		expect_le(rnode_start(n), first);
		expect_ge(rnode_last(n), last);
	}
}

TEST(random_against_oracle)
{
	struct test_rng rng;
	struct rtree t;
	long count = 0;

	test_rng_seed(&rng, test_seed);
	rtree_init(&t, test_seed);
	memset(active, 0, sizeof(active));
	for (int op = 0; op < 40000; op++) {
		int i = (int)test_rng_below(&rng, NODES);
		unsigned long first, last;

		switch (test_rng_below(&rng, 3)) {
		case 0:
			if (active[i]) {
				rtree_erase(&t, &pool[i]);
				active[i] = false;
				count--;
			} else {
				ns[i] = test_rng_below(&rng, SPACE);
				nl[i] = ns[i] + test_rng_below(&rng, 64) *
						(test_rng_below(&rng, 10) ? 1 : 40);
				rtree_insert(&t, &pool[i], ns[i], nl[i]);
				active[i] = true;
				count++;
			}
			if ((op & 63) == 0)
				assert_eq(rtree_check(&t), count);
			break;
		default:
			first = test_rng_below(&rng, SPACE);
			last = first + test_rng_below(&rng, 48);
			expect_cover(rtree_find_cover(&t, first, last), first, last);
			break;
		}
	}
	assert_eq(rtree_check(&t), count);
	/* Erase everything. */
	for (int i = 0; i < NODES; i++)
		if (active[i]) {
			rtree_erase(&t, &pool[i]);
			active[i] = false;
		}
	expect_eq(rtree_check(&t), 0);
	expect_eq_ptr(rtree_find_cover(&t, 0, 0), NULL);
}

/* ---- lock-free readers, one writer -------------------------------------- */

#define PINNED 64
#define CHURN (NODES - PINNED)

static struct rtree shared;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stop;
static atomic_ulong found, false_misses, bogus;

static void *reader(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, (uint64_t)(uintptr_t)arg ^ test_seed);
	while (!atomic_load(&stop)) {
		int i = (int)test_rng_below(&rng, PINNED);
		unsigned long first = 1000 * (unsigned long)i + 100;
		struct rnode *n = rtree_find_cover(&shared, first, first + 10);

		if (!n) {
			atomic_fetch_add(&false_misses, 1);
			continue;
		}
		if (n < pool || n >= pool + NODES)
			atomic_fetch_add(&bogus, 1);
		else
			atomic_fetch_add(&found, 1);
	}
	return NULL;
}

TEST(lock_free_readers)
{
	struct test_rng rng;
	pthread_t r[2];
	bool on[NODES] = { false };

	test_rng_seed(&rng, test_seed + 1);
	rtree_init(&shared, test_seed);
	/* Pinned nodes: [1000 i, 1000 i + 500], never erased. */
	for (int i = 0; i < PINNED; i++)
		rtree_insert(&shared, &pool[i], 1000UL * (unsigned long)i,
			     1000UL * (unsigned long)i + 500);
	for (int i = 0; i < 2; i++)
		pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)(i + 1));
	for (int op = 0; op < 200000; op++) {
		int i = PINNED + (int)test_rng_below(&rng, CHURN);
		unsigned long s = test_rng_below(&rng, 1000UL * PINNED);

		pthread_mutex_lock(&writer_lock);
		if (on[i])
			rtree_erase(&shared, &pool[i]);
		else
			rtree_insert(&shared, &pool[i], s, s + test_rng_below(&rng, 300));
		on[i] = !on[i];
		pthread_mutex_unlock(&writer_lock);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	pthread_mutex_lock(&writer_lock);
	expect_ge(rtree_check(&shared), PINNED);
	pthread_mutex_unlock(&writer_lock);
	expect_eq(atomic_load(&bogus), 0);
	expect_gt(atomic_load(&found), 0);
	printf("  lock-free searches: %lu found, %lu false misses (allowed)\n",
	       atomic_load(&found), atomic_load(&false_misses));
}

int main(int argc, char **argv)
{
	test_seed_from_args(argc, argv);
	RUN(random_against_oracle);
	RUN(lock_free_readers);
	return test_report();
}
