// SPDX-License-Identifier: MIT
/*
 * mmn-bench concurrent: engines on every device keep running jobs that read
 * and write bound buffers through their mirrors, while the application
 * thread munmaps a bound buffer and maps it again with new contents, over and
 * over. Reports, per driver mode, how long the application's munmap takes
 * (its invalidation waits for every device), the engines' job throughput,
 * and every access the window found wrong (there must be none).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

struct worker {
	const struct bench_opts *o;
	struct mmn_sim_umem *um;
	unsigned long base;
	unsigned long npages;
	uint64_t rng;
	unsigned int done;		/* accesses of the current job */
	uint64_t bad;			/* accesses the window found wrong */
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void sleep_us(unsigned int us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	if (us)
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static bool w_next_job(struct mmn_sim_engine *eng, void *arg)
{
	struct worker *w = arg;

	(void)eng;
	w->done = 0;
	return true;
}

static bool w_next_access(struct mmn_sim_engine *eng, void *arg, unsigned long *va,
			  bool *write)
{
	struct worker *w = arg;
	uint64_t r;

	(void)eng;
	if (w->done == w->o->job_accesses) {
		/* The job's compute time: it stays on the engine meanwhile. */
		sleep_us(w->o->job_us);
		return false;
	}
	w->done++;
	r = xorshift(&w->rng);
	*va = w->base + ((r % w->npages) << 12) + ((r >> 32) & 0xff0);
	*write = (r >> 40) % 4 == 0;
	return true;
}

static void w_access(struct mmn_sim_engine *eng, void *arg, unsigned long va, void *host,
		     uint64_t pfn, bool write)
{
	struct worker *w = arg;

	(void)eng;
	(void)va;
	if (mmn_sim_umem_access(w->um, host, pfn, write) != MMN_SIM_OK)
		w->bad++;
}

static const struct mmn_sim_job_ops worker_ops = {
	.next_job = w_next_job,
	.next_access = w_next_access,
	.access = w_access,
};

struct result {
	unsigned int munmaps;
	struct bench_pct pct;
	double seconds;
	struct mmn_sim_dev_stats dev;
	struct mmn_sim_binding_stats drv;
	uint64_t violations;
};

static int run_mode(const struct bench_opts *o, int mode, struct result *res)
{
	unsigned int ndev = o->devices[0], nbind = ndev * o->buffers;
	unsigned long blen = (unsigned long)o->pages << 12;
	struct mmn_sim_driver_config dcfg = {
		.kind = o->driver,
		.single_pass = mode == BENCH_SINGLE,
		.pool_size = o->pool,
	};
	struct mmn_sim_dev **dev = calloc(ndev, sizeof(*dev));
	struct mmn_sim_binding **b = calloc(nbind, sizeof(*b));
	struct mmn_sim_engine **eng = calloc(ndev * o->engines, sizeof(*eng));
	struct worker *w = calloc(ndev * o->engines, sizeof(*w));
	unsigned int cap = 1024, nr = 0, started = 0;
	double *samples = malloc(cap * sizeof(*samples));
	struct mmn_sim_driver *drv = NULL;
	struct mmn_sim_umem *um = NULL;
	struct mmn_sim_umem_stats ust;
	struct mmn_mm *mm = NULL;
	uint64_t rng = o->seed * 2654435761u + 1, t_start, t_end;
	unsigned long base;
	int ret;

	memset(res, 0, sizeof(*res));
	if (!dev || !b || !eng || !w || !samples) {
		ret = -ENOMEM;
		goto out;
	}
	ret = mmn_mm_new(&mm);
	if (!ret)
		ret = mmn_sim_umem_new(mm, (unsigned long)o->buffers * o->pages, &um);
	if (!ret)
		ret = mmn_sim_driver_new(mm, &dcfg, &drv);
	if (ret)
		goto out;
	base = mmn_sim_umem_base(um);
	for (unsigned int d = 0; d < ndev && !ret; d++) {
		struct mmn_sim_dev_config cfg = {
			.id = d,
			.mode = o->preempt ? MMN_SIM_DEV_PREEMPT : MMN_SIM_DEV_FAULT,
			.lookup = mmn_sim_umem_lookup,
			.lookup_arg = um,
		};

		bench_latency(o, d, &cfg.tlb_latency);
		bench_latency(o, d + 10000, &cfg.preempt_latency);
		ret = mmn_sim_dev_new(&cfg, &dev[d]);
		for (unsigned int i = 0; i < o->buffers && !ret; i++) {
			struct mmn_sim_binding **bp = &b[d * o->buffers + i];

			ret = mmn_sim_bind(drv, dev[d], base + i * blen, blen, bp);
			if (!ret)
				ret = mmn_sim_binding_populate(*bp);
		}
		for (unsigned int e = 0; e < o->engines && !ret; e++)
			ret = mmn_sim_engine_new(dev[d], &eng[d * o->engines + e]);
	}
	if (ret)
		goto out;
	for (unsigned int i = 0; i < ndev * o->engines; i++) {
		w[i] = (struct worker){
			.o = o,
			.um = um,
			.base = base,
			.npages = (unsigned long)o->buffers * o->pages,
			.rng = o->seed * 0x9e3779b97f4a7c15ull + i + 1,
		};
		ret = mmn_sim_engine_start(eng[i], &worker_ops, &w[i]);
		if (ret)
			goto stop;
		started++;
	}

	t_start = mmn_sim_now_ns();
	t_end = t_start + (uint64_t)o->duration_ms * 1000000u;
	while (mmn_sim_now_ns() < t_end) {
		unsigned long buf = base + (xorshift(&rng) % o->buffers) * blen;
		uint64_t t0 = mmn_sim_now_ns();

		ret = mmn_sim_umem_munmap(um, buf, blen);
		if (ret)
			break;
		if (nr == cap) {
			double *s = realloc(samples, 2 * cap * sizeof(*s));

			if (!s) {
				ret = -ENOMEM;
				break;
			}
			samples = s;
			cap *= 2;
		}
		samples[nr++] = (double)(mmn_sim_now_ns() - t0) / 1000.0;
		ret = mmn_sim_umem_mmap(um, buf, blen);
		if (ret)
			break;
		sleep_us(o->interval_us);
	}
	res->seconds = (double)(mmn_sim_now_ns() - t_start) / 1e9;
stop:
	for (unsigned int i = 0; i < started; i++)
		mmn_sim_engine_stop(eng[i]);
	if (ret)
		goto out;
	res->munmaps = nr;
	res->pct = bench_percentiles(samples, nr);
	for (unsigned int d = 0; d < ndev; d++) {
		struct mmn_sim_dev_stats st;

		mmn_sim_dev_get_stats(dev[d], &st);
		res->dev.jobs += st.jobs;
		res->dev.accesses += st.accesses;
		res->dev.faults += st.faults;
		res->dev.fault_errors += st.fault_errors;
		res->dev.engine_preemptions += st.engine_preemptions;
		res->dev.tlb_invals += st.tlb_invals;
	}
	mmn_sim_driver_get_stats(drv, &res->drv);
	mmn_sim_umem_get_stats(um, &ust);
	res->violations = ust.accesses - ust.verdicts[MMN_SIM_OK];
out:
	for (unsigned int i = 0; i < nbind && b; i++)
		if (b[i])
			mmn_sim_unbind(b[i]);
	for (unsigned int d = 0; d < ndev && dev; d++)
		mmn_sim_dev_destroy(dev[d]);
	mmn_sim_driver_destroy(drv);
	mmn_sim_umem_destroy(um);
	if (mm)
		mmn_mm_destroy(mm);
	free(samples);
	free(w);
	free(eng);
	free(b);
	free(dev);
	return ret;
}

int bench_concurrent(const struct bench_opts *o)
{
	struct result res[BENCH_NR_MODES];
	uint64_t violations = 0;
	int ret = 0;

	for (int m = 0; m < BENCH_NR_MODES && !ret; m++) {
		bench_progress(o, "concurrent: %s (%u/%u), %u ms", bench_mode_names[m], m + 1,
			       BENCH_NR_MODES, o->duration_ms);
		ret = run_mode(o, m, &res[m]);
	}
	bench_progress_done(o);
	if (ret) {
		fprintf(stderr, "mmn-bench concurrent: failed: %s\n", strerror(-ret));
		return 1;
	}
	printf("mmn-bench concurrent: %u devices x %u engine%s (%s mode), %u buffers x %u pages "
	       "bound on every device, %s driver, %.0f us device latency, %u ms per mode\n",
	       o->devices[0], o->engines, o->engines == 1 ? "" : "s",
	       o->preempt ? "preempt-fence" : "fault", o->buffers, o->pages,
	       o->driver == MMN_SIM_DRIVER_SVM ? "svm" : "userptr", o->latency_us,
	       o->duration_ms);
	printf("the application munmaps a bound buffer and maps it again every %u us; "
	       "engines run %u-access jobs with %u us compute\n\n",
	       o->interval_us, o->job_accesses, o->job_us);
	printf("%-9s %8s %11s %11s %9s %12s %8s %8s %8s %10s\n", "mode", "munmaps",
	       "munmap p50", "munmap p99", "jobs/s", "accesses/s", "faults", "errors",
	       "preempts", "violations");
	for (int m = 0; m < BENCH_NR_MODES; m++) {
		struct result *r = &res[m];

		printf("%-9s %8u %9.1fus %9.1fus %9.0f %12.0f %8llu %8llu %8llu %10llu\n",
		       bench_mode_names[m], r->munmaps, r->pct.p50, r->pct.p99,
		       r->dev.jobs / r->seconds, r->dev.accesses / r->seconds,
		       (unsigned long long)r->dev.faults,
		       (unsigned long long)r->dev.fault_errors,
		       (unsigned long long)r->dev.engine_preemptions,
		       (unsigned long long)r->violations);
		violations += r->violations;
	}
	printf("\nfault errors are accesses to a buffer while it is unmapped (expected); "
	       "violations must be 0\n");
	printf("two-pass munmap speed-up with %u devices: %.1fx (single %.0f us, two-pass %.0f us median); "
	       "job throughput two-pass/single %.2fx\n",
	       o->devices[0], res[BENCH_SINGLE].pct.p50 / res[BENCH_TWO_PASS].pct.p50,
	       res[BENCH_SINGLE].pct.p50, res[BENCH_TWO_PASS].pct.p50,
	       (res[BENCH_TWO_PASS].dev.jobs / res[BENCH_TWO_PASS].seconds) /
	       (res[BENCH_SINGLE].dev.jobs / res[BENCH_SINGLE].seconds));
	return violations ? 1 : 0;
}
