// SPDX-License-Identifier: MIT
/*
 * Simulated GPUs under fire: engines on three devices read and write a
 * window of application memory through their mirrors while one thread
 * munmaps, mmaps with new contents, madvise(MADV_DONTNEED)s and mremaps it
 * (with range_start / _end around each real system call, as the event sources
 * will do) and others make overlapping PROTECTION invalidations at the same
 * time. Every page carries a generation stamp; mmn_sim_umem_access() judges
 * every engine access.
 *
 * For each configuration (both drivers, both modes, preempt-fence devices, an
 * exhausted pool, finish_inuse contention) it asserts:
 *   - no engine touched a page after the invalidation that covered it had
 *     completed, and none read a stale generation (a crash on really
 *     unmapped memory is caught and counted, not fatal);
 *   - every binding was torn down exactly once per invalidation that hit it
 *     (counted independently by an observer notifier on the same interval);
 *   - the domain is quiescent afterwards, with no warnings.
 * Four configurations inject a driver bug (finish does not wait; the fault
 * path skips read_retry) and must report violations: the checks can fail.
 *
 * Pass a seed as argv[1] to repeat a run; CI=true runs fewer operations.
 * The pauses below pace the threads; nothing relies on them for ordering.
 */
#include <setjmp.h>
#include <sys/mman.h>

#include "sim.h"

#include "harness.h"

#define PAGE 4096ul
#define WINDOW 64		/* pages */
#define NDEV 3
#define MAXB 8

struct config {
	const char *name;
	enum mmn_sim_driver_kind kind;
	bool single;
	unsigned int pool;
	enum mmn_sim_dev_mode mode;
	unsigned int protectors;
	unsigned int latency_us;
	bool lognormal;
	unsigned int bugs;
	bool want_sync_fallback;	/* keep going until finish_inuse was hit */
	bool want_pool_fallback;
};

#define CFG(n, k, s, p, m, prot, lat, logn, ...)                              \
	{ .name = n, .kind = MMN_SIM_DRIVER_##k, .single = s, .pool = p,        \
	  .mode = MMN_SIM_DEV_##m, .protectors = prot, .latency_us = lat,       \
	  .lognormal = logn, __VA_ARGS__ }

static const struct config configs[] = {
	CFG("userptr two-pass", USERPTR, false, 0, FAULT, 1, 20, true, .bugs = 0),
	CFG("userptr single-pass", USERPTR, true, 0, FAULT, 1, 20, false, .bugs = 0),
	CFG("userptr two-pass preempt-fence", USERPTR, false, 0, PREEMPT, 1, 20, true, .bugs = 0),
	CFG("userptr single-pass preempt-fence", USERPTR, true, 0, PREEMPT, 1, 20, false, .bugs = 0),
	CFG("userptr finish_inuse contention", USERPTR, false, 0, FAULT, 2, 200, false,
	    .want_sync_fallback = true),
	CFG("svm two-pass", SVM, false, 64, FAULT, 1, 20, true, .bugs = 0),
	CFG("svm single-pass", SVM, true, 0, FAULT, 1, 20, false, .bugs = 0),
	CFG("svm exhausted pool", SVM, false, 0, FAULT, 1, 20, false, .want_pool_fallback = true),
	CFG("svm pool of 2, contention", SVM, false, 2, FAULT, 2, 50, true, .bugs = 0),
	CFG("BUG userptr finish does not wait", USERPTR, false, 0, FAULT, 1, 20, false,
	    .bugs = MMN_SIM_BUG_NO_WAIT),
	CFG("BUG userptr no read_retry", USERPTR, false, 0, FAULT, 1, 20, false,
	    .bugs = MMN_SIM_BUG_NO_RETRY),
	CFG("BUG svm no read_retry", SVM, false, 64, FAULT, 1, 20, false,
	    .bugs = MMN_SIM_BUG_NO_RETRY),
	CFG("BUG svm finish does not wait", SVM, false, 64, FAULT, 1, 20, false,
	    .bugs = MMN_SIM_BUG_NO_WAIT),
};

/* Binding layouts per device, in pages: [first, last). */
static const unsigned int layout[NDEV][MAXB][2] = {
	{ { 0, 16 }, { 16, 32 }, { 32, 48 }, { 48, 64 } },
	{ { 8, 24 }, { 24, 40 }, { 40, 56 } },		/* edges unbound */
	{ { 0, 64 } },
};

struct observer {
	struct mmn_interval_notifier sub;
	uint64_t hits;			/* atomic */
};

static bool observe(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		    unsigned long cur_seq)
{
	struct observer *o = (struct observer *)sub;

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	__atomic_fetch_add(&o->hits, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops observer_ops = { .invalidate = observe };

struct world {
	const struct config *cfg;
	struct mmn_mm *mm;
	struct mmn_sim_umem *um;
	struct mmn_sim_driver *drv;
	struct mmn_sim_dev *dev[NDEV];
	struct mmn_sim_engine *eng[NDEV];
	struct mmn_sim_binding *b[NDEV][MAXB];
	struct observer obs[NDEV][MAXB];
	unsigned long base;
	int mutator_done;		/* atomic */
	int stop_protectors;		/* atomic */
	uint64_t seed;
};

struct engine_ctx {
	struct world *w;
	struct test_rng rng;
	unsigned int left;		/* accesses left in the job */
	uint64_t reported;		/* violations printed */
};

static void pause_us(unsigned int us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static bool e_next_job(struct mmn_sim_engine *eng, void *arg)
{
	struct engine_ctx *c = arg;

	(void)eng;
	c->left = 32;
	pause_us(20);
	return true;
}

static bool e_next_access(struct mmn_sim_engine *eng, void *arg, unsigned long *va,
			  bool *write)
{
	struct engine_ctx *c = arg;
	uint64_t r;

	(void)eng;
	if (!c->left)
		return false;
	c->left--;
	r = test_rng_next(&c->rng);
	*va = c->w->base + (r % WINDOW) * PAGE + ((r >> 20) & 0xff8);
	*write = (r >> 40) % 4 == 0;
	return true;
}

static void e_access(struct mmn_sim_engine *eng, void *arg, unsigned long va, void *host,
		     uint64_t pfn, bool write)
{
	struct engine_ctx *c = arg;
	enum mmn_sim_verdict v = mmn_sim_umem_access(c->w->um, host, pfn, write);

	if (v != MMN_SIM_OK && c->reported++ < 3 && !c->w->cfg->bugs)
		fprintf(stderr, "    device %u: access to page %lu: %s\n",
			mmn_sim_dev_id(mmn_sim_engine_dev(eng)),
			(va - c->w->base) / PAGE, mmn_sim_verdict_name(v));
}

static const struct mmn_sim_job_ops engine_ops = {
	.next_job = e_next_job,
	.next_access = e_next_access,
	.access = e_access,
};

static uint64_t violations(struct world *w)
{
	struct mmn_sim_umem_stats st;

	mmn_sim_umem_get_stats(w->um, &st);
	return st.accesses - st.verdicts[MMN_SIM_OK];
}

static void random_range(struct test_rng *rng, unsigned int maxlen, unsigned long *first,
			 unsigned long *n)
{
	*first = test_rng_below(rng, WINDOW);
	*n = 1 + test_rng_below(rng, maxlen);
	if (*first + *n > WINDOW)
		*n = WINDOW - *first;
}

struct mutator_ctx {
	struct world *w;
	unsigned int ops;
	unsigned int done[4];
	int err;
};

static void *mutator(void *arg)
{
	struct mutator_ctx *m = arg;
	struct world *w = m->w;
	struct test_rng rng;

	test_rng_seed(&rng, w->seed * 31 + 1);
	for (unsigned int i = 0; i < m->ops && !m->err; i++) {
		unsigned long first, n, addr;
		unsigned int op = (unsigned int)test_rng_below(&rng, 100);

		random_range(&rng, 16, &first, &n);
		addr = w->base + first * PAGE;
		if (op < 25) {
			m->err = mmn_sim_umem_munmap(w->um, addr, n * PAGE);
			m->done[0]++;
		} else if (op < 60) {
			m->err = mmn_sim_umem_mmap(w->um, addr, n * PAGE);
			m->done[1]++;
		} else if (op < 80) {
			m->err = mmn_sim_umem_dontneed(w->um, addr, n * PAGE);
			m->done[2]++;
		} else {
			unsigned long len = 1 + test_rng_below(&rng, 8), src, dst;

			src = test_rng_below(&rng, WINDOW - len + 1);
			dst = test_rng_below(&rng, WINDOW - len + 1);
			if (src < dst + len && dst < src + len)
				continue;
			m->err = mmn_sim_umem_mremap(w->um, w->base + src * PAGE, len * PAGE,
						     w->base + dst * PAGE);
			m->done[3]++;
		}
		pause_us(40);
	}
	__atomic_store_n(&w->mutator_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct protector_ctx {
	struct world *w;
	unsigned int id;
	unsigned int ops;
};

static void *protector(void *arg)
{
	struct protector_ctx *p = arg;
	struct world *w = p->w;
	struct test_rng rng;

	test_rng_seed(&rng, w->seed * 77 + p->id);
	while (!__atomic_load_n(&w->stop_protectors, __ATOMIC_ACQUIRE)) {
		unsigned long first, n;

		random_range(&rng, 32, &first, &n);
		mmn_sim_umem_protect(w->um, w->base + first * PAGE, n * PAGE);
		p->ops++;
		/*
		 * Overlapping invalidations without a gap would keep the period
		 * open forever and starve every fault.
		 */
		pause_us(w->cfg->want_sync_fallback ? 100 : 60);
	}
	return NULL;
}

static void driver_totals(struct world *w, struct mmn_sim_binding_stats *st)
{
	mmn_sim_driver_get_stats(w->drv, st);
}

/* Keep the protectors running until the configuration's goal is met. */
static bool goal_met(struct world *w)
{
	struct mmn_sim_binding_stats st;

	if (!__atomic_load_n(&w->mutator_done, __ATOMIC_ACQUIRE))
		return false;
	driver_totals(w, &st);
	if (w->cfg->want_sync_fallback && !st.sync_fallbacks)
		return false;
	if (w->cfg->bugs && !violations(w))
		return false;
	return true;
}

static void run_config(const struct config *cfg, uint64_t seed, unsigned int ops)
{
	struct mutator_ctx mctx;
	struct protector_ctx pctx[2];
	struct engine_ctx ectx[NDEV];
	pthread_t mth, pth[2];
	struct mmn_sim_binding_stats tot;
	struct mmn_sim_umem_stats ust;
	struct mmn_sim_dev_stats ds;
	struct mmn_stats ms;
	struct world *w;
	uint64_t t0 = test_now_ns(), deadline, faults = 0, accesses = 0;
	struct mmn_sim_driver_config dcfg = {
		.kind = cfg->kind,
		.single_pass = cfg->single,
		.pool_size = cfg->pool,
		.bugs = cfg->bugs,
	};

	w = calloc(1, sizeof(*w));
	assert_true(w != NULL);
	w->cfg = cfg;
	w->seed = seed;
	assert_eq(mmn_mm_new(&w->mm), 0);
	assert_eq(mmn_sim_umem_new(w->mm, WINDOW, &w->um), 0);
	/*
	 * A planted bug lets devices touch pages being replaced: the
	 * violations counted below, not a race of the test (under TSan).
	 */
	mmn_sim_umem_set_unordered_dma(w->um, cfg->bugs != 0);
	assert_eq(mmn_sim_driver_new(w->mm, &dcfg, &w->drv), 0);
	w->base = mmn_sim_umem_base(w->um);
	for (unsigned int d = 0; d < NDEV; d++) {
		struct mmn_sim_dev_config dc = {
			.id = d,
			.mode = cfg->mode,
			.lookup = mmn_sim_umem_lookup,
			.lookup_arg = w->um,
		};

		if (cfg->lognormal) {
			mmn_sim_latency_lognormal(&dc.tlb_latency, cfg->latency_us * 1000ull,
						  cfg->latency_us * 5000ull, seed + d);
			mmn_sim_latency_lognormal(&dc.preempt_latency, cfg->latency_us * 1000ull,
						  cfg->latency_us * 5000ull, seed + 100 + d);
		} else {
			mmn_sim_latency_fixed(&dc.tlb_latency, cfg->latency_us * 1000ull);
			mmn_sim_latency_fixed(&dc.preempt_latency, cfg->latency_us * 1000ull);
		}
		assert_eq(mmn_sim_dev_new(&dc, &w->dev[d]), 0);
		for (unsigned int i = 0; i < MAXB && layout[d][i][1]; i++) {
			unsigned long s = w->base + layout[d][i][0] * PAGE;
			unsigned long len = (layout[d][i][1] - layout[d][i][0]) * PAGE;

			assert_eq(mmn_sim_bind(w->drv, w->dev[d], s, len, &w->b[d][i]), 0);
			assert_eq(mmn_interval_notifier_insert(&w->obs[d][i].sub, w->mm, s, len,
							       &observer_ops), 0);
		}
		assert_eq(mmn_sim_engine_new(w->dev[d], &w->eng[d]), 0);
	}
	for (unsigned int d = 0; d < NDEV; d++) {
		ectx[d] = (struct engine_ctx){ .w = w };
		test_rng_seed(&ectx[d].rng, seed * 13 + d);
		assert_eq(mmn_sim_engine_start(w->eng[d], &engine_ops, &ectx[d]), 0);
	}
	mctx = (struct mutator_ctx){ .w = w, .ops = ops };
	pthread_create(&mth, NULL, mutator, &mctx);
	for (unsigned int p = 0; p < cfg->protectors; p++) {
		pctx[p] = (struct protector_ctx){ .w = w, .id = p };
		pthread_create(&pth[p], NULL, protector, &pctx[p]);
	}
	pthread_join(mth, NULL);
	/* Bounded: a goal that is never met fails below instead of hanging. */
	deadline = test_now_ns() + 30000000000ull;
	while (!goal_met(w) && test_now_ns() < deadline)
		pause_us(1000);
	__atomic_store_n(&w->stop_protectors, 1, __ATOMIC_RELEASE);
	for (unsigned int p = 0; p < cfg->protectors; p++)
		pthread_join(pth[p], NULL);
	for (unsigned int d = 0; d < NDEV; d++)
		expect_eq(mmn_sim_engine_stop(w->eng[d]), 0);

	expect_eq(mctx.err, 0);
	mmn_sim_umem_get_stats(w->um, &ust);
	driver_totals(w, &tot);
	for (unsigned int d = 0; d < NDEV; d++) {
		mmn_sim_dev_get_stats(w->dev[d], &ds);
		faults += ds.faults;
		accesses += ds.accesses;
	}
	printf("  %-34s %5.2fs: %llu accesses, %llu faults, %llu invalidations "
	       "(%llu deferred, %llu sync, %llu pool fallbacks), %llu holes lost, violations %llu\n",
	       cfg->name, (double)(test_now_ns() - t0) / 1e9, (unsigned long long)accesses,
	       (unsigned long long)faults, (unsigned long long)tot.invalidations,
	       (unsigned long long)tot.deferred, (unsigned long long)tot.sync_fallbacks,
	       (unsigned long long)tot.pool_fallbacks, (unsigned long long)ust.holes_lost,
	       (unsigned long long)violations(w));

	/* The workload did happen. */
	expect_gt(accesses, 0);
	expect_gt(faults, 0);
	expect_gt(ust.munmaps + ust.mremaps, 0);
	expect_gt(tot.invalidations, 0);

	if (cfg->bugs) {
		/* The injected bug must be caught. */
		expect_gt(violations(w), 0);
	} else {
		expect_eq(violations(w), 0);
		for (int v = 1; v < MMN_SIM_VERDICT_NR; v++)
			if (ust.verdicts[v])
				fprintf(stderr, "    %s: %llu\n", mmn_sim_verdict_name(v),
					(unsigned long long)ust.verdicts[v]);
		for (unsigned int d = 0; d < NDEV; d++)
			for (unsigned int i = 0; i < MAXB && w->b[d][i]; i++) {
				struct mmn_sim_binding_stats st;
				uint64_t hits = __atomic_load_n(&w->obs[d][i].hits, __ATOMIC_RELAXED);

				mmn_sim_binding_get_stats(w->b[d][i], &st);
				expect_eq(st.invalidations, hits);
				expect_eq(st.teardowns, hits);
				expect_eq(st.finishes, st.deferred);
				expect_eq(st.refused, 0);
				expect_false(st.finish_inuse);
			}
		if (cfg->single)
			expect_eq(tot.deferred, 0);
		if (cfg->want_sync_fallback)
			expect_gt(tot.sync_fallbacks, 0);
		if (cfg->want_pool_fallback)
			expect_gt(tot.pool_fallbacks, 0);
		if (cfg->kind == MMN_SIM_DRIVER_SVM && !cfg->single && cfg->pool >= 64)
			expect_eq(tot.pool_fallbacks, 0);
	}
	expect_eq(mmn_mm_get_stats(w->mm, &ms), 0);
	expect_eq(ms.active, 0);
	expect_eq(ms.seq & 1, 0);
	expect_eq(ms.warnings, 0);

	for (unsigned int d = 0; d < NDEV; d++) {
		for (unsigned int i = 0; i < MAXB && w->b[d][i]; i++) {
			expect_eq(mmn_sim_unbind(w->b[d][i]), 0);
			expect_eq(mmn_interval_notifier_remove(&w->obs[d][i].sub), 0);
		}
		expect_eq(mmn_sim_dev_destroy(w->dev[d]), 0);
	}
	expect_eq(mmn_sim_driver_destroy(w->drv), 0);
	mmn_sim_umem_destroy(w->um);
	expect_eq(mmn_mm_destroy(w->mm), 0);
	free(w);
}

/* Memory really unmapped behind the window's back: a verdict, not a crash. */
TEST(segv_is_reported)
{
	struct mmn_sim_umem *um;
	struct mmn_mm *mm;
	unsigned long page;
	uint64_t pfn;
	void *host;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_sim_umem_new(mm, 4, &um), 0);
	page = mmn_sim_umem_base(um) + PAGE;
	assert_eq(mmn_sim_umem_lookup(um, page, false, &host, &pfn), 0);
	expect_eq(mmn_sim_umem_access(um, host, pfn, true), MMN_SIM_OK);
	assert_eq(munmap((void *)page, PAGE), 0);
	expect_eq(mmn_sim_umem_access(um, host, pfn, false), MMN_SIM_SEGV);
	expect_eq(mmn_sim_umem_access(um, host, pfn, true), MMN_SIM_SEGV);
	/* Put a page back so that the window can be torn down normally. */
	assert_true(mmap((void *)page, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == (void *)page);
	mmn_sim_umem_destroy(um);
	expect_eq(mmn_mm_destroy(mm), 0);
}

static unsigned int stress_ops;

TEST(configurations)
{
	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
		run_config(&configs[i], test_seed + i, stress_ops);
}

int main(int argc, char **argv)
{
	const char *ci = getenv("CI");

	test_seed_from_args(argc, argv);
	stress_ops = ci && !strcmp(ci, "true") ? 400 : 1500;
	mmn_sim_set_timer_slack(1);
	RUN(segv_is_reported);
	RUN(configurations);
	return test_report();
}
