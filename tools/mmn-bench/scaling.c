// SPDX-License-Identifier: MIT
/*
 * mmn-bench scaling: the wall time of one invalidation (range_start + _end)
 * of a buffer that is bound on each of N simulated GPUs, with the
 * single-pass and the two-pass variant of a driver. Single pass waits for each
 * device's TLB invalidation before calling the next device, so it grows as
 * N x latency; two pass starts them all, then waits, so it stays near one
 * latency (target T1, bench/README.md).
 *
 * Every repetition first faults the bindings back in (untimed), so that each
 * timed invalidation really has a TLB invalidation to do on every device.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define WARMUP_REPS 3

/* Measure one (devices, mode) point (bench_measure_fn). */
static int measure(const struct bench_opts *o, unsigned int ndev, enum bench_mode mode,
		   struct bench_point *pt, void *arg)
{
	unsigned long len = (unsigned long)o->pages << 12;
	struct mmn_sim_driver_config dcfg = {
		.kind = o->driver,
		.single_pass = mode == BENCH_SINGLE,
		.pool_size = o->pool,
	};
	struct mmn_sim_binding **b = calloc(ndev, sizeof(*b));
	struct mmn_sim_dev **dev = calloc(ndev, sizeof(*dev));
	struct mmn_sim_binding_stats st;
	struct mmn_sim_driver *drv = NULL;
	struct mmn_sim_umem *um = NULL;
	struct mmn_mm *mm = NULL;
	unsigned long base;
	int ret;

	(void)arg;
	if (!b || !dev) {
		ret = -ENOMEM;
		goto out;
	}
	ret = mmn_mm_new(&mm);
	if (!ret)
		ret = mmn_sim_umem_new(mm, o->pages, &um);
	if (!ret)
		ret = mmn_sim_driver_new(mm, &dcfg, &drv);
	if (ret)
		goto out;
	base = mmn_sim_umem_base(um);
	for (unsigned int i = 0; i < ndev; i++) {
		struct mmn_sim_dev_config cfg = {
			.id = i,
			.mode = MMN_SIM_DEV_FAULT,
			.lookup = mmn_sim_umem_lookup,
			.lookup_arg = um,
		};

		bench_latency(o, i, &cfg.tlb_latency);
		bench_latency(o, i, &cfg.preempt_latency);
		ret = mmn_sim_dev_new(&cfg, &dev[i]);
		if (!ret)
			ret = mmn_sim_bind(drv, dev[i], base, len, &b[i]);
		if (ret)
			goto out;
	}

	for (unsigned int r = 0; r < WARMUP_REPS + o->reps; r++) {
		double us;

		for (unsigned int i = 0; i < ndev; i++) {
			ret = mmn_sim_binding_populate(b[i]);
			if (ret)
				goto out;
		}
		ret = bench_time_invalidation(mm, base, base + len, &us);
		if (ret)
			goto out;
		if (r >= WARMUP_REPS)
			pt->samples[r - WARMUP_REPS] = us;
	}

	/* Each invalidation must have hit, and torn down, every binding once. */
	mmn_sim_driver_get_stats(drv, &st);
	if (st.invalidations != (uint64_t)ndev * (WARMUP_REPS + o->reps) ||
	    st.teardowns != st.invalidations) {
		fprintf(stderr, "mmn-bench: %u devices %s: %llu invalidations, %llu teardowns, expected %llu\n",
			ndev, bench_mode_names[mode], (unsigned long long)st.invalidations,
			(unsigned long long)st.teardowns,
			(unsigned long long)ndev * (WARMUP_REPS + o->reps));
		ret = -EPROTO;
	}
out:
	for (unsigned int i = 0; i < ndev && b && dev; i++) {
		if (b[i])
			mmn_sim_unbind(b[i]);
		mmn_sim_dev_destroy(dev[i]);
	}
	mmn_sim_driver_destroy(drv);
	mmn_sim_umem_destroy(um);
	if (mm && mmn_mm_destroy(mm))
		fprintf(stderr, "mmn-bench: domain still busy at the end\n");
	free(b);
	free(dev);
	return ret;
}

/* T1 lines for device count @n, if measured (growth needs 1 measured too). */
static void print_t1(FILE *f, const struct bench_opts *o,
		     struct bench_point (*pts)[BENCH_NR_MODES], unsigned int n)
{
	int one = bench_find_count(o, 1), i = bench_find_count(o, n);
	double growth, gain;

	if (i < 0)
		return;
	if (one >= 0 && i != one) {
		growth = pts[i][BENCH_TWO_PASS].pct.p50 / pts[one][BENCH_TWO_PASS].pct.p50;
		fprintf(f, "T1 two-pass(%u) / two-pass(1) = %.2f (target <= 1.30): %s\n", n,
			growth, growth <= 1.3 ? "PASS" : "MISS");
	}
	gain = pts[i][BENCH_SINGLE].pct.p50 / pts[i][BENCH_TWO_PASS].pct.p50;
	fprintf(f, "T1 single(%u) / two-pass(%u) = %.1f (target >= 10): %s\n", n, n, gain,
		gain >= 10 ? "PASS" : "MISS");
}

int bench_scaling(const struct bench_opts *o)
{
	struct bench_point (*pts)[BENCH_NR_MODES] = calloc(o->nr_devices, sizeof(*pts));
	const char *latency_kind = o->p99_us > o->latency_us ? "lognormal" : "fixed";
	FILE *sum = o->csv ? stderr : stdout;
	unsigned int last = o->nr_devices - 1;
	int ret;

	if (!pts)
		return 1;
	ret = bench_measure_points(o, "scaling", pts, measure, NULL);
	if (ret) {
		fprintf(stderr, "mmn-bench scaling: failed: %s\n", strerror(-ret));
		goto out;
	}

	if (o->csv) {
		bench_print_csv(o, pts);
	} else {
		printf("mmn-bench scaling: %s driver, %s device latency %.0f us%s, %u pages per binding, %u reps\n",
		       o->driver == MMN_SIM_DRIVER_SVM ? "svm" : "userptr", latency_kind,
		       o->latency_us, o->p99_us > o->latency_us ? " median" : "", o->pages,
		       o->reps);
		printf("one invalidation (range_start + range_end) covering a binding on every device, us\n\n");
		printf("%8s %12s %12s %12s %12s %9s\n", "devices", "single p50", "single p99",
		       "2-pass p50", "2-pass p99", "speed-up");
		for (unsigned int i = 0; i < o->nr_devices; i++)
			printf("%8u %12.1f %12.1f %12.1f %12.1f %8.1fx\n", o->devices[i],
			       pts[i][BENCH_SINGLE].pct.p50, pts[i][BENCH_SINGLE].pct.p99,
			       pts[i][BENCH_TWO_PASS].pct.p50, pts[i][BENCH_TWO_PASS].pct.p99,
			       pts[i][BENCH_SINGLE].pct.p50 / pts[i][BENCH_TWO_PASS].pct.p50);
		printf("\n");
	}

	if (o->plot) {
		char title[160];

		snprintf(title, sizeof(title),
			 "One invalidation covering N simulated GPUs (%s driver, %.0f us TLB invalidation)",
			 o->driver == MMN_SIM_DRIVER_SVM ? "svm" : "userptr", o->latency_us);
		ret = bench_plot_points(o, sum, title, "simulated GPUs bound to the buffer (log scale)",
					pts, o->latency_us);
	}

	/* T1 is defined at 16 and 64 devices; printed for those measured. */
	print_t1(sum, o, pts, 16);
	print_t1(sum, o, pts, 64);
	fprintf(sum, "two-pass speed-up at %u device%s: %.1fx (single %.0f us, two-pass %.0f us median)\n",
		o->devices[last], o->devices[last] == 1 ? "" : "s",
		pts[last][BENCH_SINGLE].pct.p50 / pts[last][BENCH_TWO_PASS].pct.p50,
		pts[last][BENCH_SINGLE].pct.p50, pts[last][BENCH_TWO_PASS].pct.p50);
out:
	bench_points_free(o, pts);
	return ret ? 1 : 0;
}
