// SPDX-License-Identifier: MIT
/*
 * Per-CPU references in per-slot pages (src/rcache/rcache.c): a region's
 * reference slots live outside it, slot s of 256 regions in one page of a
 * reference block, and a get or put counts on the slot of the CPU it runs
 * on. Here references are taken on one CPU and dropped on another, over
 * more regions than one block holds, across real unmaps (the process
 * domain: the libc hooks report them).
 *
 * Part 1, one thread, exact: BUFFERS registrations (three blocks), each got
 * on one CPU and put on the next; hit again; all held across one munmap of
 * every buffer (each invalidated and deregistered while held, none
 * recycled), put on other CPUs, collected; then registered again on other
 * memory, recycling the same regions, whose counters must start from zero.
 * Every hit, miss, invalidation and device call is counted and compared.
 *
 * Part 2, racing: two getter threads hit random buffers and move to another
 * CPU between get and put, while another thread replaces random buffers'
 * pages (mmap MAP_FIXED over them: the old pages are unmapped in one call)
 * and a count limit forces evictions. A holder's registration must stay the
 * one it got (range and device registration id) until its put; hits +
 * misses must equal the gets; nothing may be left held (destroy succeeds)
 * or registered.
 *
 * With one CPU the slots are one and nothing moves; the counts are checked
 * all the same. Seeded (argv[1]); a few seconds.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#define BUFFERS 600		/* regions: more than two blocks of 256 */
#define RACE_BUFFERS 96
#define GETTERS 2
#define GETS_PER_GETTER 60000
#define MAX_CPUS 64

static unsigned long page;
static int cpus[MAX_CPUS], ncpus;
static unsigned char *race_base;
static struct mmn_rcache *race_cache;
static atomic_bool stop;
static atomic_ulong race_gets, changed, moves, replaced;

/* Run the calling thread on the @i-th allowed CPU (modulo). */
static void move_to(unsigned int i)
{
	cpu_set_t set;

	if (ncpus < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpus[i % (unsigned int)ncpus], &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		fprintf(stderr, "pthread_setaffinity_np failed\n");
		abort();
	}
}

static unsigned long buf(const unsigned char *base, unsigned long b)
{
	return (unsigned long)base + 2 * b * page;	/* a gap after each: no neighbours */
}

static uint64_t fake_id(struct mmn_rcache_reg *r)
{
	return ((struct mmn_rcache_fake_reg *)mmn_rcache_reg_priv(r, 0))->id;
}

static unsigned int fake_state(struct mmn_rcache_reg *r)
{
	return __atomic_load_n(&((struct mmn_rcache_fake_reg *)mmn_rcache_reg_priv(r, 0))->state,
			       __ATOMIC_ACQUIRE);
}

static void *map_buffers(unsigned long n)
{
	void *p = mmap(NULL, 2 * n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

TEST(exact_counts_across_cpus_and_munmap)
{
	static struct mmn_rcache_reg *held[BUFFERS];
	static uint64_t id[BUFFERS];
	struct mmn_rcache_config cfg = { 0 };
	struct mmn_rcache_fake_stats fs;
	struct mmn_rcache_fake *fake;
	struct mmn_rcache_stats st;
	struct mmn_rcache_dev dev;
	struct mmn_rcache *cache;
	unsigned char *base, *other;
	unsigned int k = 0;

	base = map_buffers(BUFFERS);
	other = map_buffers(BUFFERS);
	assert_true(base && other);
	assert_eq(mmn_rcache_fake_new(NULL, &fake), 0);
	mmn_rcache_fake_dev(fake, &dev);
	cfg.mm = NULL;		/* the process domain: munmap is seen by the hooks */
	cfg.devs = &dev;
	cfg.nr_devs = 1;
	assert_eq(mmn_rcache_new(&cfg, &cache), 0);

	/* Misses, each got on one CPU and put on the next. */
	for (unsigned long b = 0; b < BUFFERS; b++) {
		struct mmn_rcache_reg *r;

		move_to(k++);
		assert_eq(mmn_rcache_get(cache, buf(base, b) + 64, page - 128, &r), 0);
		expect_eq_ul(mmn_rcache_reg_start(r), buf(base, b));
		move_to(k++);
		mmn_rcache_put(r);
	}
	/* Hits, the same way round. */
	for (unsigned long b = 0; b < BUFFERS; b++) {
		struct mmn_rcache_reg *r;

		move_to(k++);
		assert_eq(mmn_rcache_get(cache, buf(base, b) + 128, page - 256, &r), 0);
		move_to(k++);
		mmn_rcache_put(r);
	}
	assert_eq(mmn_rcache_get_stats(cache, &st), 0);
	expect_eq(st.misses, BUFFERS);
	expect_eq(st.hits, BUFFERS);
	expect_eq(st.regions, BUFFERS);

	/* All held, by gets on every CPU, across one munmap of all of them. */
	for (unsigned long b = 0; b < BUFFERS; b++) {
		move_to(k++);
		assert_eq(mmn_rcache_get(cache, buf(base, b) + 64, 64, &held[b]), 0);
		id[b] = fake_id(held[b]);
		expect_true(mmn_rcache_reg_valid(held[b]));
	}
	assert_eq(munmap(base, 2 * BUFFERS * page), 0);
	/* Every one deregistered before munmap returned, none recycled. */
	assert_eq(mmn_rcache_get_stats(cache, &st), 0);
	expect_eq(st.invalidations, BUFFERS);
	expect_eq(st.deregistrations, BUFFERS);
	expect_eq(st.regions, 0);
	expect_eq(st.dead, BUFFERS);
	mmn_rcache_fake_get_stats(fake, &fs);
	expect_eq(fs.live, 0);
	for (unsigned long b = 0; b < BUFFERS; b++) {
		expect_false(mmn_rcache_reg_valid(held[b]));
		expect_eq_ul(mmn_rcache_reg_start(held[b]), buf(base, b));
		expect_eq_ul(mmn_rcache_reg_length(held[b]), page);
		expect_eq(fake_id(held[b]), id[b]);
		expect_eq(fake_state(held[b]), MMN_RCACHE_FAKE_DEREGISTERED);
	}
	/* Put on other CPUs: the last put of each queues it; flush collects. */
	for (unsigned long b = 0; b < BUFFERS; b++) {
		move_to(k++);
		mmn_rcache_put(held[b]);
	}
	expect_eq(mmn_rcache_flush(cache), BUFFERS);
	assert_eq(mmn_rcache_get_stats(cache, &st), 0);
	expect_eq(st.dead, 0);
	expect_eq(st.put_errors, 0);
	expect_eq(st.hits, 2 * BUFFERS);

	/* The same regions again, on other memory: counters from zero. */
	for (int round = 0; round < 2; round++)
		for (unsigned long b = 0; b < BUFFERS; b++) {
			struct mmn_rcache_reg *r;

			move_to(k++);
			assert_eq(mmn_rcache_get(cache, buf(other, b) + 64, page - 128, &r), 0);
			expect_eq_ul(mmn_rcache_reg_start(r), buf(other, b));
			move_to(k++);
			mmn_rcache_put(r);
		}
	assert_eq(mmn_rcache_get_stats(cache, &st), 0);
	expect_eq(st.misses, 2 * BUFFERS);
	expect_eq(st.hits, 3 * BUFFERS);
	expect_eq(st.regions, BUFFERS);
	expect_eq(st.registrations, 2 * BUFFERS);
	expect_eq(st.put_errors, 0);

	expect_eq(mmn_rcache_destroy(cache), 0);
	mmn_rcache_fake_get_stats(fake, &fs);
	expect_eq(fs.regs, 2 * BUFFERS);
	expect_eq(fs.dereg_starts, 2 * BUFFERS);
	expect_eq(fs.live, 0);
	mmn_rcache_fake_destroy(fake);
	munmap(other, 2 * BUFFERS * page);
}

static void *getter(void *arg)
{
	unsigned int me = (unsigned int)(uintptr_t)arg;
	struct test_rng rng;

	test_rng_seed(&rng, test_seed ^ me);
	move_to(me);
	for (int i = 0; i < GETS_PER_GETTER; i++) {
		unsigned long b = test_rng_below(&rng, RACE_BUFFERS);
		struct mmn_rcache_reg *r;
		unsigned long start;
		uint64_t rid;

		if (mmn_rcache_get(race_cache, buf(race_base, b) + 64, page - 128, &r)) {
			fprintf(stderr, "mmn_rcache_get failed\n");
			abort();
		}
		atomic_fetch_add(&race_gets, 1);
		start = mmn_rcache_reg_start(r);
		rid = fake_id(r);
		if (test_rng_below(&rng, 8) == 0) {
			move_to(++me);	/* the put counts on another CPU's slot */
			atomic_fetch_add(&moves, 1);
		}
		if (start != buf(race_base, b) || mmn_rcache_reg_start(r) != start ||
		    mmn_rcache_reg_length(r) != page || fake_id(r) != rid)
			atomic_fetch_add(&changed, 1);
		mmn_rcache_put(r);
	}
	return NULL;
}

/* Replace random buffers' pages: mmap(MAP_FIXED) over them, no hole. */
static void *replacer(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, test_seed ^ (uintptr_t)arg);
	while (!atomic_load(&stop)) {
		unsigned long b = test_rng_below(&rng, RACE_BUFFERS);

		if (mmap((void *)buf(race_base, b), page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
			fprintf(stderr, "mmap MAP_FIXED failed: %s\n", strerror(errno));
			abort();
		}
		atomic_fetch_add(&replaced, 1);
	}
	return NULL;
}

TEST(race_with_replacement_and_eviction)
{
	struct mmn_rcache_config cfg = { 0 };
	struct mmn_rcache_fake_stats fs;
	struct mmn_rcache_fake *fake;
	struct mmn_rcache_stats st;
	struct mmn_rcache_dev dev;
	pthread_t g[GETTERS], rep;

	race_base = map_buffers(RACE_BUFFERS);
	assert_true(race_base);
	assert_eq(mmn_rcache_fake_new(NULL, &fake), 0);
	mmn_rcache_fake_dev(fake, &dev);
	cfg.mm = NULL;
	cfg.devs = &dev;
	cfg.nr_devs = 1;
	cfg.max_regions = RACE_BUFFERS / 2;	/* evictions, racing with hits */
	assert_eq(mmn_rcache_new(&cfg, &race_cache), 0);

	assert_eq(pthread_create(&rep, NULL, replacer, (void *)7), 0);
	for (uintptr_t i = 0; i < GETTERS; i++)
		assert_eq(pthread_create(&g[i], NULL, getter, (void *)i), 0);
	for (int i = 0; i < GETTERS; i++)
		pthread_join(g[i], NULL);
	atomic_store(&stop, true);
	pthread_join(rep, NULL);

	assert_eq(mmn_rcache_get_stats(race_cache, &st), 0);
	printf("  %lu gets on %d CPUs (%lu moves): %llu hits, %llu misses, %llu evictions, %llu invalidations (%lu replacements)\n",
	       atomic_load(&race_gets), ncpus, atomic_load(&moves), (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.evictions,
	       (unsigned long long)st.invalidations, atomic_load(&replaced));
	expect_eq(atomic_load(&changed), 0);
	expect_eq(st.hits + st.misses, atomic_load(&race_gets));
	expect_eq(st.put_errors, 0);
	expect_gt(st.hits, 0);
	expect_gt(st.evictions, 0);
	expect_gt(st.invalidations, 0);
	expect_eq(mmn_rcache_destroy(race_cache), 0);
	mmn_rcache_fake_get_stats(fake, &fs);
	expect_eq(fs.regs, fs.dereg_starts);
	expect_eq(fs.regs, fs.dereg_finishes);
	expect_eq(fs.live, 0);
	mmn_rcache_fake_destroy(fake);
	munmap(race_base, 2 * RACE_BUFFERS * page);
}

int main(int argc, char **argv)
{
	cpu_set_t set;

	test_seed = test_seed_from_args(argc, argv);
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE && ncpus < MAX_CPUS; c++)
			if (CPU_ISSET(c, &set))
				cpus[ncpus++] = c;
	printf("  %d CPUs to move between\n", ncpus);
	RUN(exact_counts_across_cpus_and_munmap);
	RUN(race_with_replacement_and_eviction);
	return test_report();
}
