// SPDX-License-Identifier: MIT
/*
 * Registration cache semantics on a private domain, driven by explicit
 * invalidations (no hooks, no real unmapping): hits, misses, reference counts,
 * the overlap policy, eviction limits and order, statistics, failures, the
 * collision-retry protocol, two-pass order across devices and regions, waits
 * for another thread's deregistration, non-blockable invalidations, release,
 * destroy.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#define KB 1024UL

static unsigned long page;

/* A fake address space: nothing is mapped, the fake device does not look. */
#define BASE 0x100000000000UL

struct env {
	struct mmn_mm *mm;
	struct mmn_rcache *cache;
	struct mmn_rcache_fake *fake[4];
	struct mmn_rcache_dev dev[4];
	unsigned int n;
};

static void env_new(struct env *e, unsigned int ndev, const struct mmn_rcache_config *tmpl)
{
	struct mmn_rcache_config cfg = tmpl ? *tmpl : (struct mmn_rcache_config){ 0 };

	memset(e, 0, sizeof(*e));
	assert_eq(mmn_mm_new(&e->mm), 0);
	e->n = ndev;
	for (unsigned int i = 0; i < ndev; i++) {
		assert_eq(mmn_rcache_fake_new(NULL, &e->fake[i]), 0);
		mmn_rcache_fake_dev(e->fake[i], &e->dev[i]);
	}
	cfg.mm = e->mm;
	cfg.devs = e->dev;
	cfg.nr_devs = ndev;
	assert_eq(mmn_rcache_new(&cfg, &e->cache), 0);
}

static void env_free(struct env *e)
{
	expect_eq(mmn_rcache_destroy(e->cache), 0);
	for (unsigned int i = 0; i < e->n; i++) {
		struct mmn_rcache_fake_stats st;

		mmn_rcache_fake_get_stats(e->fake[i], &st);
		expect_eq(st.live, 0);	/* everything deregistered */
		expect_eq(st.dereg_starts, st.dereg_finishes);
		mmn_rcache_fake_destroy(e->fake[i]);
	}
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

static uint64_t fake_live(struct mmn_rcache_fake *f)
{
	struct mmn_rcache_fake_stats st;

	mmn_rcache_fake_get_stats(f, &st);
	return st.live;
}

TEST(hit_miss_refcount)
{
	struct mmn_rcache_reg *a, *b, *c;
	struct mmn_rcache_fake_reg *fr;
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 2, NULL);
	assert_eq(mmn_rcache_get(e.cache, BASE + 100, 1000, &a), 0);
	/* Page-aligned registration around the request, on both devices. */
	expect_eq_ul(mmn_rcache_reg_start(a), BASE);
	expect_eq_ul(mmn_rcache_reg_length(a), page);
	fr = mmn_rcache_reg_priv(a, 1);
	assert_true(fr != NULL);
	expect_eq_ul(fr->start, BASE);
	expect_eq_ul(fr->length, page);
	expect_eq(fr->state, MMN_RCACHE_FAKE_REGISTERED);
	expect_eq_ptr(mmn_rcache_reg_priv(a, 2), NULL);
	expect_true(mmn_rcache_reg_valid(a));

	/* The same range, and a sub-range: hits on the same registration. */
	assert_eq(mmn_rcache_get(e.cache, BASE + 100, 1000, &b), 0);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &c), 0);
	expect_eq_ptr(a, b);
	expect_eq_ptr(a, c);
	st = stats(e.cache);
	expect_eq(st.misses, 1);
	expect_eq(st.hits, 2);
	expect_eq(st.registrations, 1);
	expect_eq(st.regions, 1);
	expect_eq(st.bytes, page);
	expect_eq(fake_live(e.fake[0]), 1);
	expect_eq(fake_live(e.fake[1]), 1);

	/* Held three times: destroy refuses. */
	mmn_rcache_put(a);
	mmn_rcache_put(b);
	expect_eq(mmn_rcache_destroy(e.cache), -EBUSY);
	mmn_rcache_put(c);
	/* Unused registrations stay cached. */
	expect_eq(fake_live(e.fake[0]), 1);
	assert_eq(mmn_rcache_get(e.cache, BASE + 8, 8, &a), 0);
	expect_eq(stats(e.cache).hits, 3);
	mmn_rcache_put(a);
	env_free(&e);
}

TEST(overlap_policy)
{
	struct mmn_rcache_reg *a, *b, *c, *d, *x;
	struct env e;

	env_new(&e, 1, NULL);
	assert_eq(mmn_rcache_get(e.cache, BASE, 2 * page, &a), 0);
	/* Overlapping but not covered: a registration of its own, no merge. */
	assert_eq(mmn_rcache_get(e.cache, BASE + page, 2 * page, &b), 0);
	expect_ne_ptr(a, b);
	expect_eq_ul(mmn_rcache_reg_start(b), BASE + page);
	expect_eq_ul(mmn_rcache_reg_length(b), 2 * page);
	expect_true(mmn_rcache_reg_valid(a));	/* a is untouched */
	/* Covered by either, or by exactly one. */
	assert_eq(mmn_rcache_get(e.cache, BASE + page, page, &c), 0);
	expect_true(c == a || c == b);
	assert_eq(mmn_rcache_get(e.cache, BASE + 2 * page, page, &d), 0);
	expect_eq_ptr(d, b);
	/* Adjacent: a miss (b ends at BASE + 3 pages). */
	assert_eq(mmn_rcache_get(e.cache, BASE + 3 * page, page, &x), 0);
	expect_ne_ptr(x, a);
	expect_ne_ptr(x, b);
	/* Spanning a and x: neither covers it. */
	mmn_rcache_put(x);
	assert_eq(mmn_rcache_get(e.cache, BASE, 4 * page, &x), 0);
	expect_eq_ul(mmn_rcache_reg_length(x), 4 * page);
	expect_eq(stats(e.cache).misses, 4);
	expect_eq(stats(e.cache).hits, 2);

	/* A big registration covers what is inside it, even among small ones. */
	assert_eq(mmn_rcache_get(e.cache, BASE + page + 8, 3 * page - 16, &d), 0);
	expect_eq_ptr(d, x);
	mmn_rcache_put(d);

	/* Invalidating one page kills all that overlap it, and only those. */
	invalidate(e.mm, BASE + page, BASE + 2 * page);
	expect_false(mmn_rcache_reg_valid(a));
	expect_false(mmn_rcache_reg_valid(b));
	expect_false(mmn_rcache_reg_valid(x));
	expect_eq(stats(e.cache).invalidations, 3);
	expect_eq(fake_live(e.fake[0]), 1);	/* [3, 4) pages */
	mmn_rcache_put(a);
	mmn_rcache_put(b);
	mmn_rcache_put(c);
	mmn_rcache_put(d == x ? b : d);
	mmn_rcache_put(x);
	env_free(&e);
}

TEST(invalidate_while_held)
{
	struct mmn_rcache_reg *a, *b;
	struct mmn_rcache_fake_reg *fr;
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 3, NULL);
	assert_eq(mmn_rcache_get(e.cache, BASE, 4 * page, &a), 0);
	fr = mmn_rcache_reg_priv(a, 2);
	/* An invalidation elsewhere changes nothing. */
	invalidate(e.mm, BASE + 4 * page, BASE + 5 * page);
	expect_true(mmn_rcache_reg_valid(a));

	invalidate(e.mm, BASE + page, BASE + 2 * page);
	/* When the invalidation returns, every device has deregistered. */
	for (unsigned int i = 0; i < 3; i++)
		expect_eq(fake_live(e.fake[i]), 0);
	expect_eq(fr->state, MMN_RCACHE_FAKE_DEREGISTERED);
	expect_false(mmn_rcache_reg_valid(a));
	st = stats(e.cache);
	expect_eq(st.invalidations, 1);
	expect_eq(st.deregistrations, 1);
	expect_eq(st.regions, 0);
	expect_eq(st.dead, 1);

	/* A later get misses and registers anew; the old one is still held. */
	assert_eq(mmn_rcache_get(e.cache, BASE, 4 * page, &b), 0);
	expect_ne_ptr(a, b);
	expect_true(mmn_rcache_reg_valid(b));
	expect_eq(stats(e.cache).misses, 2);
	mmn_rcache_put(a);	/* the last holder: queued for collection */
	expect_eq(stats(e.cache).dead, 1);
	expect_eq(mmn_rcache_flush(e.cache), 1);	/* collected; b is held */
	expect_eq(stats(e.cache).dead, 0);
	mmn_rcache_put(b);
	expect_eq(mmn_rcache_flush(e.cache), 1);	/* b evicted */
	st = stats(e.cache);
	expect_eq(st.regions, 0);
	expect_eq(st.evictions, 1);
	expect_eq(st.deregistrations, 2);
	expect_eq(fake_live(e.fake[0]), 0);
	env_free(&e);
}

/*
 * A region's memory is reused for another range while the hint table (and a
 * reader's stale pointer) still lead to it: the reuse must never answer for
 * the old range.
 */
TEST(hint_after_reuse)
{
	struct mmn_rcache_reg *a, *b, *x;
	struct env e;

	env_new(&e, 1, NULL);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &a), 0);	/* hint: BASE -> a */
	mmn_rcache_put(a);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &x), 0);	/* a hint hit */
	expect_eq_ptr(x, a);
	mmn_rcache_put(x);
	invalidate(e.mm, BASE, BASE + page);
	expect_eq(mmn_rcache_flush(e.cache), 1);		/* a's memory is free */
	/* The slab hands the same memory out again, for another range. */
	assert_eq(mmn_rcache_get(e.cache, BASE + 64 * page, page, &b), 0);
	expect_eq_ptr(b, a);
	/* BASE's hint still points there: a miss, not a hit on b. */
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &x), 0);
	expect_ne_ptr(x, b);
	expect_eq_ul(mmn_rcache_reg_start(x), BASE);
	expect_eq(stats(e.cache).misses, 3);
	mmn_rcache_put(x);
	/* And with b invalid but held, its range misses too. */
	invalidate(e.mm, BASE + 64 * page, BASE + 65 * page);
	assert_eq(mmn_rcache_get(e.cache, BASE + 64 * page, page, &x), 0);
	expect_ne_ptr(x, b);
	expect_true(mmn_rcache_reg_valid(x));
	mmn_rcache_put(x);
	mmn_rcache_put(b);
	env_free(&e);
}

TEST(eviction_count_lru)
{
	struct mmn_rcache_config cfg = { .max_regions = 4 };
	struct mmn_rcache_reg *r[6];
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 1, &cfg);
	for (int i = 0; i < 4; i++) {
		assert_eq(mmn_rcache_get(e.cache, BASE + 2 * i * page, page, &r[i]), 0);
		mmn_rcache_put(r[i]);
	}
	/* Use 0 again: 1 is now the least recently used. */
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &r[0]), 0);
	mmn_rcache_put(r[0]);
	assert_eq(mmn_rcache_get(e.cache, BASE + 8 * page, page, &r[4]), 0);
	mmn_rcache_put(r[4]);
	st = stats(e.cache);
	expect_eq(st.regions, 4);
	expect_eq(st.evictions, 1);
	expect_eq(fake_live(e.fake[0]), 4);
	/* 0 is still cached, 1 is not. */
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &r[0]), 0);
	expect_eq(stats(e.cache).misses, 5);
	mmn_rcache_put(r[0]);
	assert_eq(mmn_rcache_get(e.cache, BASE + 2 * page, page, &r[1]), 0);
	expect_eq(stats(e.cache).misses, 6);
	mmn_rcache_put(r[1]);
	expect_eq(stats(e.cache).regions, 4);

	/* Registrations in use are never evicted: the limit is soft. */
	for (int i = 0; i < 4; i++)
		assert_eq(mmn_rcache_get(e.cache, BASE + 2 * i * page, page, &r[i]), 0);
	st = stats(e.cache);
	assert_eq(mmn_rcache_get(e.cache, BASE + 20 * page, page, &r[5]), 0);
	expect_eq(stats(e.cache).regions, 5);
	expect_eq(stats(e.cache).over_limit, st.over_limit + 1);
	for (int i = 0; i < 4; i++)
		expect_true(mmn_rcache_reg_valid(r[i]));
	for (int i = 0; i < 4; i++)
		mmn_rcache_put(r[i]);
	mmn_rcache_put(r[5]);
	env_free(&e);
}

TEST(eviction_bytes)
{
	struct mmn_rcache_config cfg = { .max_bytes = 16 * page };
	struct mmn_rcache_reg *r;
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 2, &cfg);
	for (int i = 0; i < 10; i++) {
		assert_eq(mmn_rcache_get(e.cache, BASE + 16 * i * page, 6 * page, &r), 0);
		mmn_rcache_put(r);
		st = stats(e.cache);
		expect_le(st.bytes, 16 * page);
	}
	expect_eq(st.regions, 2);
	expect_eq(st.evictions, 8);
	expect_eq(fake_live(e.fake[1]), 2);
	env_free(&e);
}

TEST(stats_exact_hits)
{
	struct mmn_rcache_reg *r;
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 1, NULL);
	for (int i = 0; i < 100000; i++) {
		assert_eq(mmn_rcache_get(e.cache, BASE + (unsigned long)(i % 7) * page, 16, &r), 0);
		mmn_rcache_put(r);
	}
	st = stats(e.cache);
	expect_eq(st.misses, 7);
	expect_eq(st.hits, 100000 - 7);
	expect_eq(st.registrations, 7);
	expect_eq(st.bytes_registered, 7 * page);
	/* Hits of collected registrations are kept. */
	invalidate(e.mm, BASE, BASE + 7 * page);
	mmn_rcache_flush(e.cache);
	st = stats(e.cache);
	expect_eq(st.hits, 100000 - 7);
	expect_eq(st.regions, 0);
	expect_eq(st.dead, 0);
	env_free(&e);
}

struct hitter {
	struct mmn_rcache *cache;
	atomic_int *go;
	int n;
};

static void *hit_thread(void *arg)
{
	struct hitter *h = arg;
	struct mmn_rcache_reg *r;

	while (!atomic_load(h->go))
		sched_yield();
	for (int i = 0; i < h->n; i++) {
		if (mmn_rcache_get(h->cache, BASE + (unsigned long)(i & 1) * page, 64, &r))
			abort();
		mmn_rcache_put(r);
	}
	return NULL;
}

TEST(concurrent_hits_counted)
{
	struct mmn_rcache_reg *r;
	atomic_int go = 0;
	struct hitter h;
	pthread_t t[2];
	struct env e;

	env_new(&e, 1, NULL);
	for (int i = 0; i < 2; i++) {
		assert_eq(mmn_rcache_get(e.cache, BASE + (unsigned long)i * page, 64, &r), 0);
		mmn_rcache_put(r);
	}
	h = (struct hitter){ .cache = e.cache, .go = &go, .n = 200000 };
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, hit_thread, &h);
	atomic_store(&go, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	expect_eq(stats(e.cache).hits, 400000);
	expect_eq(stats(e.cache).misses, 2);
	env_free(&e);
}

TEST(device_failure)
{
	struct mmn_rcache_reg *r;
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 3, NULL);
	/* Device 2 refuses: devices 0 and 1 are undone, nothing is cached. */
	mmn_rcache_fake_fail_next(e.fake[2], 1, -EFAULT);
	expect_eq(mmn_rcache_get(e.cache, BASE, page, &r), -EFAULT);
	for (unsigned int i = 0; i < 3; i++)
		expect_eq(fake_live(e.fake[i]), 0);
	st = stats(e.cache);
	expect_eq(st.failures, 1);
	expect_eq(st.regions, 0);
	expect_eq(st.misses, 0);
	/* And the next get works. */
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &r), 0);
	expect_eq(fake_live(e.fake[2]), 1);
	mmn_rcache_put(r);
	env_free(&e);
}

TEST(bad_input)
{
	struct mmn_rcache_config cfg = { 0 };
	struct mmn_rcache_fake *f;
	struct mmn_rcache_dev dev, bad;
	struct mmn_rcache *c;
	struct mmn_rcache_reg *r;
	struct mmn_mm *mm;
	struct mmn_rcache_stats st;
	static const struct mmn_rcache_dev_ops no_reg = { .dereg_start = NULL };

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_rcache_fake_new(NULL, &f), 0);
	mmn_rcache_fake_dev(f, &dev);
	expect_eq(mmn_rcache_new(NULL, &c), -EINVAL);
	cfg.mm = mm;
	expect_eq(mmn_rcache_new(&cfg, &c), -EINVAL);	/* no device */
	cfg.devs = &dev;
	cfg.nr_devs = MMN_RCACHE_MAX_DEVS + 1;
	expect_eq(mmn_rcache_new(&cfg, &c), -EINVAL);
	cfg.nr_devs = 1;
	expect_eq(mmn_rcache_new(&cfg, NULL), -EINVAL);
	cfg.alignment = 3 * page;
	expect_eq(mmn_rcache_new(&cfg, &c), -EINVAL);
	cfg.alignment = page / 2;
	expect_eq(mmn_rcache_new(&cfg, &c), -EINVAL);
	cfg.alignment = 0;
	bad = (struct mmn_rcache_dev){ .ops = &no_reg };
	cfg.devs = &bad;
	expect_eq(mmn_rcache_new(&cfg, &c), -EINVAL);
	cfg.devs = &dev;
	assert_eq(mmn_rcache_new(&cfg, &c), 0);

	expect_eq(mmn_rcache_get(NULL, BASE, 1, &r), -EINVAL);
	expect_eq(mmn_rcache_get(c, BASE, 1, NULL), -EINVAL);
	expect_eq(mmn_rcache_get(c, BASE, 0, &r), -EINVAL);
	expect_eq(mmn_rcache_get(c, ~0UL - 10, 100, &r), -EOVERFLOW);
	expect_eq(mmn_rcache_get_stats(c, NULL), -EINVAL);
	expect_eq(mmn_rcache_get_stats(NULL, &st), -EINVAL);
	expect_eq(mmn_rcache_flush(NULL), -EINVAL);
	mmn_rcache_put(NULL);
	expect_false(mmn_rcache_reg_valid(NULL));
	expect_eq_ptr(mmn_rcache_reg_priv(NULL, 0), NULL);
	expect_eq(mmn_rcache_destroy(NULL), 0);
	expect_eq(mmn_rcache_destroy(c), 0);
	mmn_rcache_fake_destroy(f);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* ---- collision-retry ---------------------------------------------------- */

static struct mmn_mm *hook_mm;
static int hook_fires;

/* Inside device registration: the range changes, as if munmap raced with us. */
static void collide_hook(void *arg, unsigned long start, unsigned long length)
{
	(void)arg;
	if (hook_fires-- > 0)
		invalidate(hook_mm, start, start + length);
}

TEST(collision_retry)
{
	struct mmn_rcache_fake_stats fs;
	struct mmn_rcache_reg *r;
	struct mmn_rcache_stats st;
	struct env e;

	env_new(&e, 2, NULL);
	hook_mm = e.mm;
	hook_fires = 2;	/* the first two registrations collide */
	mmn_rcache_fake_set_reg_hook(e.fake[1], collide_hook, NULL);
	assert_eq(mmn_rcache_get(e.cache, BASE, 2 * page, &r), 0);
	st = stats(e.cache);
	expect_eq(st.retries, 2);
	expect_eq(st.misses, 1);
	expect_eq(st.registrations, 3);		/* two undone, one kept */
	expect_eq(st.deregistrations, 2);
	mmn_rcache_fake_get_stats(e.fake[0], &fs);
	expect_eq(fs.regs, 3);
	expect_eq(fs.live, 1);
	/* The registration returned is the third one made. */
	expect_eq(((struct mmn_rcache_fake_reg *)mmn_rcache_reg_priv(r, 0))->id, 3);
	expect_true(mmn_rcache_reg_valid(r));
	mmn_rcache_put(r);
	mmn_rcache_fake_set_reg_hook(e.fake[1], NULL, NULL);
	env_free(&e);
}

/* ---- two-pass order ------------------------------------------------------ */

/* A device that logs every operation into one shared log. */
struct logdev {
	int id;
	char (*log)[8];
	atomic_int *n;
};

static void log_op(struct logdev *d, char op, void *priv)
{
	int i = atomic_fetch_add(d->n, 1);

	if (i < 64) {
		d->log[i][0] = op;
		d->log[i][1] = (char)('0' + d->id);
		d->log[i][2] = (char)('a' + *(int *)priv);
	}
}

static int region_seq;

static int log_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	(void)dev;
	(void)length;
	*(int *)priv = (int)((start - BASE) / (16 * page));
	return 0;
}

static void log_start(void *dev, void *priv)
{
	log_op(dev, 'S', priv);
}

static void log_finish(void *dev, void *priv)
{
	log_op(dev, 'F', priv);
}

static const struct mmn_rcache_dev_ops log_ops = {
	.reg = log_reg,
	.dereg_start = log_start,
	.dereg_finish = log_finish,
};

static void two_pass_run(unsigned int flags, const char *want)
{
	static char log[64][8];
	atomic_int n = 0;
	struct logdev ld[3];
	struct mmn_rcache_dev dev[3];
	struct mmn_rcache_config cfg = { .devs = dev, .nr_devs = 3, .flags = flags };
	struct mmn_rcache_reg *a, *b;
	struct mmn_rcache *c;
	struct mmn_mm *mm;
	char got[256] = "";

	memset(log, 0, sizeof(log));
	for (int i = 0; i < 3; i++) {
		ld[i] = (struct logdev){ .id = i, .log = log, .n = &n };
		dev[i] = (struct mmn_rcache_dev){ .name = "log", .ops = &log_ops, .dev = &ld[i],
						  .priv_size = sizeof(int) };
	}
	assert_eq(mmn_mm_new(&mm), 0);
	cfg.mm = mm;
	assert_eq(mmn_rcache_new(&cfg, &c), 0);
	assert_eq(mmn_rcache_get(c, BASE, page, &a), 0);		/* region a */
	assert_eq(mmn_rcache_get(c, BASE + 16 * page, page, &b), 0);	/* region b */
	mmn_rcache_put(a);
	mmn_rcache_put(b);
	invalidate(mm, BASE, BASE + 32 * page);
	for (int i = 0; i < atomic_load(&n) && i < 64; i++) {
		strcat(got, log[i]);
		strcat(got, " ");
	}
	expect_str_eq(got, want);
	expect_eq(mmn_rcache_destroy(c), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
	(void)region_seq;
}

TEST(two_pass_order)
{
	/* Every device of every region started before any finish. */
	two_pass_run(0, "S0a S1a S2a S0b S1b S2b F0a F1a F2a F0b F1b F2b ");
	/* Single pass: device after device. */
	two_pass_run(MMN_RCACHE_SINGLE_PASS, "S0a F0a S1a F1a S2a F2a S0b F0b S1b F1b S2b F2b ");
}

/* ---- an invalidation waits for another thread's deregistration ---------- */

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	atomic_int waiting;
};

static struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };

static int gate_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	(void)dev;
	(void)start;
	(void)length;
	(void)priv;
	return 0;
}

static void gate_start(void *dev, void *priv)
{
	(void)dev;
	(void)priv;
}

/* The finish blocks until the test opens the gate. */
static void gate_finish(void *dev, void *priv)
{
	(void)dev;
	(void)priv;
	pthread_mutex_lock(&gate.lock);
	atomic_fetch_add(&gate.waiting, 1);
	while (!gate.open)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static const struct mmn_rcache_dev_ops gate_ops = {
	.reg = gate_reg,
	.dereg_start = gate_start,
	.dereg_finish = gate_finish,
};

struct inval_arg {
	struct mmn_mm *mm;
	unsigned long start, end;
	atomic_int done;
};

static void *inval_thread(void *arg)
{
	struct inval_arg *a = arg;

	invalidate(a->mm, a->start, a->end);
	atomic_store(&a->done, 1);
	return NULL;
}

TEST(wait_for_other_deregistration)
{
	struct mmn_rcache_dev dev = { .name = "gate", .ops = &gate_ops };
	struct mmn_rcache_config cfg = { .devs = &dev, .nr_devs = 1 };
	struct inval_arg a1, a2;
	struct mmn_rcache_reg *r;
	struct mmn_rcache *c;
	struct mmn_mm *mm;
	pthread_t t1, t2;

	assert_eq(mmn_mm_new(&mm), 0);
	cfg.mm = mm;
	assert_eq(mmn_rcache_new(&cfg, &c), 0);
	assert_eq(mmn_rcache_get(c, BASE, 4 * page, &r), 0);
	mmn_rcache_put(r);

	/* Thread 1 invalidates the first page: stuck in the device's finish. */
	a1 = (struct inval_arg){ .mm = mm, .start = BASE, .end = BASE + page };
	pthread_create(&t1, NULL, inval_thread, &a1);
	assert_true(wait_until(atomic_load(&gate.waiting) == 1, 10000));
	/* Thread 2 invalidates the last page: must wait for thread 1's deregistration. */
	a2 = (struct inval_arg){ .mm = mm, .start = BASE + 3 * page, .end = BASE + 4 * page };
	pthread_create(&t2, NULL, inval_thread, &a2);
	expect_true(wait_until(stats(c).invalidate_waits == 1, 10000));
	expect_eq(atomic_load(&a2.done), 0);
	expect_eq(atomic_load(&a1.done), 0);

	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	expect_eq(stats(c).invalidations, 1);
	expect_eq(stats(c).deregistrations, 1);
	expect_eq(mmn_rcache_destroy(c), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

TEST(nonblock_and_release)
{
	struct mmn_rcache_reg *r, *s;
	struct mmn_range range;
	struct env e;

	env_new(&e, 2, NULL);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &r), 0);
	/* Deregistering may sleep: a non-blockable invalidation is refused... */
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, e.mm, BASE, BASE + page);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), -EAGAIN);
	/* ...and leaves the registration alone. */
	expect_true(mmn_rcache_reg_valid(r));
	expect_eq(fake_live(e.fake[0]), 1);
	/* Once dead, a non-blockable invalidation has nothing to do. */
	invalidate(e.mm, BASE, BASE + page);
	expect_false(mmn_rcache_reg_valid(r));
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, e.mm, BASE, BASE + page);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), 0);
	mmn_invalidate_range_end(&range);
	mmn_rcache_put(r);

	/* Protection changes leave pinned registrations alone. */
	assert_eq(mmn_rcache_get(e.cache, BASE + page, page, &s), 0);
	mmn_range_init(&range, MMN_EVENT_PROTECTION_VMA, 0, e.mm, BASE, BASE + 4 * page);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	mmn_invalidate_range_end(&range);
	expect_true(mmn_rcache_reg_valid(s));

	/* Release (exit_mmap) kills everything. */
	mmn_mm_release(e.mm);
	expect_false(mmn_rcache_reg_valid(s));
	expect_eq(fake_live(e.fake[1]), 0);
	mmn_rcache_put(s);
	env_free(&e);
}

TEST(protection_flag)
{
	struct mmn_rcache_config cfg = { .flags = MMN_RCACHE_INVALIDATE_PROTECTION };
	struct mmn_rcache_reg *r;
	struct mmn_range range;
	struct env e;

	env_new(&e, 1, &cfg);
	assert_eq(mmn_rcache_get(e.cache, BASE, page, &r), 0);
	mmn_range_init(&range, MMN_EVENT_PROTECTION_VMA, 0, e.mm, BASE, BASE + page);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	mmn_invalidate_range_end(&range);
	expect_false(mmn_rcache_reg_valid(r));
	mmn_rcache_put(r);
	env_free(&e);
}

TEST(alignment)
{
	struct mmn_rcache_fake_config fc = { .snapshot = true };
	struct mmn_rcache_reg *a, *b;
	struct mmn_rcache_dev dev;
	struct mmn_rcache_fake *f;
	struct mmn_rcache *c;
	struct mmn_mm *mm;
	unsigned long align = 16 * page;
	struct mmn_rcache_config cfg = { .devs = &dev, .nr_devs = 1, .alignment = align };
	unsigned char *m, *hole;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_rcache_fake_new(&fc, &f), 0);
	mmn_rcache_fake_dev(f, &dev);
	cfg.mm = mm;
	assert_eq(mmn_rcache_new(&cfg, &c), 0);
	/* 4 aligned blocks of real memory; the snapshot reads them. */
	m = mmap(NULL, 5 * align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	m = (unsigned char *)(((unsigned long)m + align - 1) & ~(align - 1));
	assert_eq(mmn_rcache_get(c, (unsigned long)m + page + 5, 10, &a), 0);
	expect_eq_ul(mmn_rcache_reg_start(a), (unsigned long)m);
	expect_eq_ul(mmn_rcache_reg_length(a), align);
	/* Another request in the same block: a hit. */
	assert_eq(mmn_rcache_get(c, (unsigned long)m + 7 * page, 2 * page, &b), 0);
	expect_eq_ptr(a, b);
	mmn_rcache_put(a);
	mmn_rcache_put(b);
	/* A block with a hole: widening fails, page alignment is used instead. */
	hole = m + 2 * align;
	assert_eq(munmap(hole + 15 * page, page), 0);
	assert_eq(mmn_rcache_get(c, (unsigned long)hole + page, page, &a), 0);
	expect_eq_ul(mmn_rcache_reg_start(a), (unsigned long)hole + page);
	expect_eq_ul(mmn_rcache_reg_length(a), page);
	mmn_rcache_put(a);
	/* Nothing mapped at all: the device's error. */
	expect_eq(mmn_rcache_get(c, (unsigned long)hole + 15 * page, 8, &a), -EFAULT);
	expect_eq(mmn_rcache_destroy(c), 0);
	mmn_rcache_fake_destroy(f);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	RUN(hit_miss_refcount);
	RUN(overlap_policy);
	RUN(invalidate_while_held);
	RUN(hint_after_reuse);
	RUN(eviction_count_lru);
	RUN(eviction_bytes);
	RUN(stats_exact_hits);
	RUN(concurrent_hits_counted);
	RUN(device_failure);
	RUN(bad_input);
	RUN(collision_retry);
	RUN(two_pass_order);
	RUN(wait_for_other_deregistration);
	RUN(nonblock_and_release);
	RUN(protection_flag);
	RUN(alignment);
	return test_report();
}
