// SPDX-License-Identifier: MIT
/*
 * Fault injection (issue 6) for the registration cache: every allocation on
 * its set-up paths (the cache, each backend) and on a miss (a new chunk of
 * regions) is failed in turn (test/alloc_fail.h). Each failure must come back
 * as -ENOMEM and leave the cache whole: nothing leaked (ASan), the same get
 * then succeeds, and a later get of the same range hits.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <mmn/rcache.h>
#include "rcache_fake.h"

#include "harness.h"
#include "alloc_fail.h"

static struct mmn_mm *mm;
static struct mmn_rcache_fake *fake;
static struct mmn_rcache *cache;

static int new_cache(void)
{
	struct mmn_rcache_dev dev;
	struct mmn_rcache_config cfg = { .mm = mm, .nr_devs = 1, .devs = &dev };

	mmn_rcache_fake_dev(fake, &dev);
	return mmn_rcache_new(&cfg, &cache);
}

TEST(setup_paths)
{
	struct mmn_rcache_mlock *ml;
	struct mmn_rcache_uring *ur;
	int points, ret;

	assert_eq(mmn_mm_new(&mm), 0);
	points = alloc_fail_walk(mmn_rcache_fake_new(NULL, &fake), mmn_rcache_fake_destroy(fake));
	printf("  mmn_rcache_fake_new: %d allocation(s)\n", points);
	expect_ge(points, 1);

	points = alloc_fail_walk(mmn_rcache_mlock_new(&ml), mmn_rcache_mlock_destroy(ml));
	printf("  mmn_rcache_mlock_new: %d allocation(s)\n", points);
	expect_ge(points, 1);

	alloc_fail_arm(1000000);	/* probe: is io_uring here at all? */
	ret = mmn_rcache_uring_new(4, &ur);
	alloc_fail_disarm();
	if (ret == 0) {
		mmn_rcache_uring_destroy(ur);
		points = alloc_fail_walk(mmn_rcache_uring_new(4, &ur), mmn_rcache_uring_destroy(ur));
		printf("  mmn_rcache_uring_new: %d allocation(s)\n", points);
		expect_ge(points, 1);
	} else {
		printf("  mmn_rcache_uring_new: not available here (%d), not tried\n", ret);
	}

	assert_eq(mmn_rcache_fake_new(NULL, &fake), 0);
	points = alloc_fail_walk(new_cache(), mmn_rcache_destroy(cache));
	printf("  mmn_rcache_new: %d allocation(s)\n", points);
	expect_ge(points, 1);
	mmn_rcache_fake_destroy(fake);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* A miss needs a region; when its chunk cannot be allocated, get fails cleanly. */
TEST(miss_paths)
{
	long page = sysconf(_SC_PAGESIZE);
	struct mmn_rcache_stats st;
	struct mmn_rcache_reg *reg = NULL;
	char *buf;
	int points;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_rcache_fake_new(NULL, &fake), 0);
	assert_eq(new_cache(), 0);
	buf = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(buf != MAP_FAILED);

	points = alloc_fail_walk(mmn_rcache_get(cache, (unsigned long)buf, page, &reg),
				 mmn_rcache_put(reg));
	printf("  mmn_rcache_get (miss): %d allocation(s)\n", points);
	expect_ge(points, 1);
	/* Whole after the failures: the range is cached now, so this hits. */
	assert_eq(mmn_rcache_get(cache, (unsigned long)buf, page, &reg), 0);
	mmn_rcache_put(reg);
	assert_eq(mmn_rcache_get_stats(cache, &st), 0);
	expect_eq(st.hits, 1);		/* hits_slow is a subset of hits */
	expect_eq(st.registrations, 1);

	expect_eq(mmn_rcache_destroy(cache), 0);
	mmn_rcache_fake_destroy(fake);
	munmap(buf, 4 * page);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(setup_paths);
	RUN(miss_paths);
	return test_report();
}
