// SPDX-License-Identifier: MIT
/*
 * Per-CPU references under fire. References are counted in per-CPU slots
 * (src/rcache/rcache.c): a get adds to the slot of the CPU it runs on, a put
 * to the slot of the CPU *it* runs on, and only the sums mean anything. Here
 * getter threads get registrations of random buffers and hand most of them
 * to a putter thread (so the put lands on another slot), while an
 * invalidator thread invalidates random buffers (start + end on the cache's
 * private domain) and the count limit forces evictions.
 *
 * Checked:
 *   - a held registration stays the one that was returned until its put: its
 *     start and length never change under the holder (a region recycled
 *     while held would show another buffer's; under TSan, a data race);
 *   - the hit counter is exact: hits + misses == successful gets;
 *   - at the end nobody holds anything: destroy succeeds (a lost or doubled
 *     reference makes it -EBUSY) and every device registration was undone.
 * Seeded (argv[1]); a few seconds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#define BUFFERS 64
#define GETTERS 2
#define GETS_PER_GETTER 200000
#define QUEUE 256

static unsigned long page;
static unsigned char *base;
static struct mmn_mm *mm;
static struct mmn_rcache *cache;
static struct mmn_rcache_fake *fake;
static atomic_bool stop;
static atomic_ulong got, changed, invalidations;

struct held {
	struct mmn_rcache_reg *reg;
	unsigned long start, len;
};

/* The hand-off queue from the getters to the putter. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct held item[QUEUE];
	unsigned int head, count;
	int getters_left;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
	{ { 0 } }, 0, 0, GETTERS };

static void check_and_put(const struct held *h)
{
	if (mmn_rcache_reg_start(h->reg) != h->start || mmn_rcache_reg_length(h->reg) != h->len)
		atomic_fetch_add(&changed, 1);
	mmn_rcache_put(h->reg);
}

static void *getter(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, test_seed ^ (uint64_t)(uintptr_t)arg);
	for (int i = 0; i < GETS_PER_GETTER; i++) {
		unsigned long b = test_rng_below(&rng, BUFFERS);
		struct held h;

		if (mmn_rcache_get(cache, (unsigned long)base + b * 2 * page + 64, page - 128,
				   &h.reg))
			continue;
		atomic_fetch_add(&got, 1);
		h.start = mmn_rcache_reg_start(h.reg);
		h.len = mmn_rcache_reg_length(h.reg);
		if (test_rng_below(&rng, 4) == 0) {
			check_and_put(&h);	/* a put on this thread's CPU */
			continue;
		}
		pthread_mutex_lock(&q.lock);
		while (q.count == QUEUE)
			pthread_cond_wait(&q.not_full, &q.lock);
		q.item[(q.head + q.count++) % QUEUE] = h;
		pthread_cond_signal(&q.not_empty);
		pthread_mutex_unlock(&q.lock);
	}
	pthread_mutex_lock(&q.lock);
	q.getters_left--;
	pthread_cond_signal(&q.not_empty);
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

static void *putter(void *arg)
{
	(void)arg;
	for (;;) {
		struct held h;

		pthread_mutex_lock(&q.lock);
		while (!q.count && q.getters_left)
			pthread_cond_wait(&q.not_empty, &q.lock);
		if (!q.count) {
			pthread_mutex_unlock(&q.lock);
			return NULL;
		}
		h = q.item[q.head];
		q.head = (q.head + 1) % QUEUE;
		q.count--;
		pthread_cond_signal(&q.not_full);
		pthread_mutex_unlock(&q.lock);
		check_and_put(&h);
	}
}

static void *invalidator(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, test_seed ^ (uint64_t)(uintptr_t)arg);
	while (!atomic_load(&stop)) {
		unsigned long b = test_rng_below(&rng, BUFFERS);
		struct mmn_range range;

		mmn_range_init(&range, MMN_EVENT_UNMAP, MMN_RANGE_BLOCKABLE, mm,
			       (unsigned long)base + b * 2 * page,
			       (unsigned long)base + (b * 2 + 1) * page);
		if (mmn_invalidate_range_start(&range) == 0) {
			mmn_invalidate_range_end(&range);
			atomic_fetch_add(&invalidations, 1);
		}
	}
	return NULL;
}

TEST(handoff)
{
	struct mmn_rcache_fake_stats fs;
	struct mmn_rcache_stats st;
	struct mmn_rcache_dev dev;
	struct mmn_rcache_config cfg = { 0 };
	pthread_t g[GETTERS], p, inv;

	page = (unsigned long)sysconf(_SC_PAGESIZE);
	base = mmap(NULL, 2 * BUFFERS * page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(base != MAP_FAILED);
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_rcache_fake_new(NULL, &fake), 0);
	mmn_rcache_fake_dev(fake, &dev);
	cfg.mm = mm;
	cfg.devs = &dev;
	cfg.nr_devs = 1;
	cfg.max_regions = BUFFERS / 2;	/* evictions, racing with hits */
	assert_eq(mmn_rcache_new(&cfg, &cache), 0);

	assert_eq(pthread_create(&inv, NULL, invalidator, (void *)99), 0);
	assert_eq(pthread_create(&p, NULL, putter, NULL), 0);
	for (uintptr_t i = 0; i < GETTERS; i++)
		assert_eq(pthread_create(&g[i], NULL, getter, (void *)(i + 1)), 0);
	for (int i = 0; i < GETTERS; i++)
		pthread_join(g[i], NULL);
	pthread_join(p, NULL);
	atomic_store(&stop, true);
	pthread_join(inv, NULL);

	assert_eq(mmn_rcache_get_stats(cache, &st), 0);
	printf("  %lu gets: %llu hits (%llu slow), %llu misses, %llu evictions, %llu invalidations (%lu started)\n",
	       atomic_load(&got), (unsigned long long)st.hits, (unsigned long long)st.hits_slow,
	       (unsigned long long)st.misses, (unsigned long long)st.evictions,
	       (unsigned long long)st.invalidations, atomic_load(&invalidations));
	expect_eq(atomic_load(&changed), 0);
	expect_eq(st.hits + st.misses, atomic_load(&got));
	expect_gt(st.hits, 0);
	expect_gt(st.evictions, 0);
	expect_gt(st.invalidations, 0);
	expect_eq(mmn_rcache_destroy(cache), 0);
	mmn_rcache_fake_get_stats(fake, &fs);
	expect_eq(fs.regs, fs.dereg_starts);
	mmn_rcache_fake_destroy(fake);
	expect_eq(mmn_mm_destroy(mm), 0);
	munmap(base, 2 * BUFFERS * page);
}

int main(int argc, char **argv)
{
	test_seed = test_seed_from_args(argc, argv);
	RUN(handoff);
	return test_report();
}
