// SPDX-License-Identifier: MIT
/*
 * Puts in excess of the gets: a registration put twice, put by a thread
 * that never got it, put again after its invalidation. Each is a caller's
 * bug; the cache must find it (stats.put_errors, one MMN_LOG_ERROR record
 * per excess put), refuse it, and stay usable: the registration is evicted,
 * collected and destroyed as if the excess put had never happened, and later
 * gets hit and miss as usual. Before the check, a registration put twice
 * stayed "held" forever (its count below zero): never evicted, never
 * collected once invalidated, and mmn_rcache_destroy() returned -EBUSY.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#define BASE 0x100000000000UL

static unsigned long page;
static unsigned int log_errors;
static unsigned long log_start;

static void count_log(const struct mmn_log_record *rec, void *arg)
{
	(void)arg;
	if (rec->level == MMN_LOG_ERROR && rec->what && strstr(rec->what, "mmn_rcache_put")) {
		__atomic_fetch_add(&log_errors, 1, __ATOMIC_RELAXED);
		log_start = rec->start;
	}
}

struct env {
	struct mmn_mm *mm;
	struct mmn_rcache *cache;
	struct mmn_rcache_fake *fake;
	struct mmn_rcache_dev dev;
};

static void env_new(struct env *e)
{
	struct mmn_rcache_config cfg = { 0 };

	memset(e, 0, sizeof(*e));
	assert_eq(mmn_mm_new(&e->mm), 0);
	assert_eq(mmn_rcache_fake_new(NULL, &e->fake), 0);
	mmn_rcache_fake_dev(e->fake, &e->dev);
	cfg.mm = e->mm;
	cfg.devs = &e->dev;
	cfg.nr_devs = 1;
	assert_eq(mmn_rcache_new(&cfg, &e->cache), 0);
	log_errors = 0;
	log_start = 0;
}

static uint64_t fake_live(struct mmn_rcache_fake *f)
{
	struct mmn_rcache_fake_stats st;

	mmn_rcache_fake_get_stats(f, &st);
	return st.live;
}

static void env_free(struct env *e)
{
	/* Never -EBUSY: an excess put does not keep a registration held. */
	expect_eq(mmn_rcache_destroy(e->cache), 0);
	expect_eq(fake_live(e->fake), 0);
	mmn_rcache_fake_destroy(e->fake);
	expect_eq(mmn_mm_destroy(e->mm), 0);
}

static void invalidate(struct mmn_mm *mm, unsigned long start, unsigned long end)
{
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, start, end);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	mmn_invalidate_range_end(&range);
}

static struct mmn_rcache_stats stats(struct mmn_rcache *c)
{
	struct mmn_rcache_stats st;

	assert_eq(mmn_rcache_get_stats(c, &st), 0);
	return st;
}

/* Put twice while cached: found at the flush, which then evicts it. */
TEST(double_put_cached)
{
	struct mmn_rcache_reg *a, *b;
	struct env e;

	env_new(&e);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &a), 0);
	mmn_rcache_put(a);
	mmn_rcache_put(a);	/* the bug */
	expect_eq(mmn_rcache_flush(e.cache), 1);
	expect_eq(stats(e.cache).put_errors, 1);
	expect_eq(log_errors, 1);
	expect_eq_ul(log_start, BASE);
	expect_eq(stats(e.cache).regions, 0);
	expect_eq(fake_live(e.fake), 0);

	/* The cache goes on: a miss, a hit, both counted, nothing wedged. */
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &a), 0);
	assert_eq(mmn_rcache_get(e.cache, BASE + 8, 8, &b), 0);
	expect_eq_ptr(a, b);
	expect_true(mmn_rcache_reg_valid(a));
	mmn_rcache_put(a);
	mmn_rcache_put(b);
	expect_eq(stats(e.cache).misses, 2);
	expect_eq(stats(e.cache).hits, 1);
	expect_eq(mmn_rcache_flush(e.cache), 1);
	expect_eq(stats(e.cache).put_errors, 1);
	env_free(&e);
}

/* Put twice, another holder still holds it: found at the invalidation. */
TEST(double_put_invalidated_while_held)
{
	struct mmn_rcache_reg *a, *b;
	struct env e;

	env_new(&e);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &a), 0);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &b), 0);
	mmn_rcache_put(a);
	mmn_rcache_put(b);
	mmn_rcache_put(a);	/* the bug: three puts, two gets */
	invalidate(e.mm, BASE, BASE + page);
	expect_eq(stats(e.cache).put_errors, 1);
	expect_eq(log_errors, 1);
	expect_eq(stats(e.cache).invalidations, 1);
	/* Collected at the flush: not held forever. */
	mmn_rcache_flush(e.cache);
	expect_eq(stats(e.cache).dead, 0);
	expect_eq(fake_live(e.fake), 0);
	env_free(&e);
}

/* Put again after its invalidation (and its last put): refused at once. */
TEST(put_after_invalidation)
{
	struct mmn_rcache_reg *a, *b;
	struct env e;

	env_new(&e);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &a), 0);
	invalidate(e.mm, BASE, BASE + page);
	expect_false(mmn_rcache_reg_valid(a));
	mmn_rcache_put(a);
	expect_eq(stats(e.cache).put_errors, 0);
	expect_eq(stats(e.cache).dead, 1);
	mmn_rcache_put(a);	/* the bug */
	expect_eq(stats(e.cache).put_errors, 1);
	expect_eq(log_errors, 1);
	/* Collected, and the range registers again. */
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &b), 0);
	expect_eq(stats(e.cache).dead, 0);
	expect_eq(stats(e.cache).regions, 1);
	mmn_rcache_put(a);	/* again, now a region freed (or reused): refused */
	expect_true(mmn_rcache_reg_valid(b));
	mmn_rcache_put(b);
	expect_eq(mmn_rcache_flush(e.cache), 1);
	expect_eq(stats(e.cache).put_errors, 2);	/* a freed region, or b put twice */
	env_free(&e);
}

/* A thread puts a registration it never got: found when it is evicted. */
TEST(put_never_got_then_destroy)
{
	struct mmn_rcache_reg *a;
	struct env e;

	env_new(&e);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &a), 0);
	mmn_rcache_put(a);
	mmn_rcache_put(a);	/* "another thread's" put, never got */
	mmn_rcache_put(a);
	/* Destroy, not flush: it must not see a held registration. */
	env_free(&e);
	expect_eq(log_errors, 1);
}

int main(void)
{
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	mmn_set_log_fn(count_log, NULL);
	RUN(double_put_cached);
	RUN(double_put_invalidated_while_held);
	RUN(put_after_invalidation);
	RUN(put_never_got_then_destroy);
	return test_report();
}
