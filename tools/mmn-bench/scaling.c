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

enum { MODE_SINGLE = 0, MODE_TWO_PASS, NR_MODES };

static const char *const mode_names[NR_MODES] = { "single", "two-pass" };

#define WARMUP_REPS 3

struct point {
	struct bench_pct pct;
	double *samples;
};

/* Measure one (devices, mode) point into @samples. */
static int measure(const struct bench_opts *o, unsigned int ndev, int mode,
		   double *samples)
{
	unsigned long len = (unsigned long)o->pages << 12;
	struct mmn_sim_driver_config dcfg = {
		.kind = o->driver,
		.single_pass = mode == MODE_SINGLE,
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
		struct mmn_range range;
		uint64_t t0, t1;

		for (unsigned int i = 0; i < ndev; i++) {
			ret = mmn_sim_binding_populate(b[i]);
			if (ret)
				goto out;
		}
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, base, base + len);
		t0 = mmn_sim_now_ns();
		ret = mmn_invalidate_range_start(&range);
		mmn_invalidate_range_end(&range);
		t1 = mmn_sim_now_ns();
		if (ret)
			goto out;
		if (r >= WARMUP_REPS)
			samples[r - WARMUP_REPS] = (double)(t1 - t0) / 1000.0;
	}

	/* Each invalidation must have hit, and torn down, every binding once. */
	mmn_sim_driver_get_stats(drv, &st);
	if (st.invalidations != (uint64_t)ndev * (WARMUP_REPS + o->reps) ||
	    st.teardowns != st.invalidations) {
		fprintf(stderr, "mmn-bench: %u devices %s: %llu invalidations, %llu teardowns, expected %llu\n",
			ndev, mode_names[mode], (unsigned long long)st.invalidations,
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

static int find_count(const struct bench_opts *o, unsigned int n)
{
	for (unsigned int i = 0; i < o->nr_devices; i++)
		if (o->devices[i] == n)
			return (int)i;
	return -1;
}

/* T1 lines for device count @n, if measured (growth needs 1 measured too). */
static void print_t1(FILE *f, const struct bench_opts *o, struct point (*pts)[NR_MODES],
		     unsigned int n)
{
	int one = find_count(o, 1), i = find_count(o, n);
	double growth, gain;

	if (i < 0)
		return;
	if (one >= 0 && i != one) {
		growth = pts[i][MODE_TWO_PASS].pct.p50 / pts[one][MODE_TWO_PASS].pct.p50;
		fprintf(f, "T1 two-pass(%u) / two-pass(1) = %.2f (target <= 1.30): %s\n", n,
			growth, growth <= 1.3 ? "PASS" : "MISS");
	}
	gain = pts[i][MODE_SINGLE].pct.p50 / pts[i][MODE_TWO_PASS].pct.p50;
	fprintf(f, "T1 single(%u) / two-pass(%u) = %.1f (target >= 10): %s\n", n, n, gain,
		gain >= 10 ? "PASS" : "MISS");
}

int bench_scaling(const struct bench_opts *o)
{
	struct point (*pts)[NR_MODES] = calloc(o->nr_devices, sizeof(*pts));
	const char *latency_kind = o->p99_us > o->latency_us ? "lognormal" : "fixed";
	FILE *sum = o->csv ? stderr : stdout;
	unsigned int last = o->nr_devices - 1, done = 0;
	int ret = 0;

	if (!pts)
		return 1;
	for (unsigned int i = 0; i < o->nr_devices && !ret; i++) {
		for (int m = 0; m < NR_MODES && !ret; m++) {
			bench_progress(o, "scaling: %u device%s, %s (%u/%u)", o->devices[i],
				       o->devices[i] == 1 ? "" : "s", mode_names[m], ++done,
				       o->nr_devices * NR_MODES);
			pts[i][m].samples = calloc(o->reps, sizeof(double));
			if (!pts[i][m].samples) {
				ret = -ENOMEM;
				break;
			}
			ret = measure(o, o->devices[i], m, pts[i][m].samples);
			pts[i][m].pct = bench_percentiles(pts[i][m].samples, o->reps);
		}
	}
	bench_progress_done(o);
	if (ret) {
		fprintf(stderr, "mmn-bench scaling: failed: %s\n", strerror(-ret));
		goto out;
	}

	if (o->csv) {
		printf("devices,mode,p50_us,p99_us\n");
		for (unsigned int i = 0; i < o->nr_devices; i++)
			for (int m = 0; m < NR_MODES; m++)
				printf("%u,%s,%.1f,%.1f\n", o->devices[i], mode_names[m],
				       pts[i][m].pct.p50, pts[i][m].pct.p99);
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
			       pts[i][MODE_SINGLE].pct.p50, pts[i][MODE_SINGLE].pct.p99,
			       pts[i][MODE_TWO_PASS].pct.p50, pts[i][MODE_TWO_PASS].pct.p99,
			       pts[i][MODE_SINGLE].pct.p50 / pts[i][MODE_TWO_PASS].pct.p50);
		printf("\n");
	}

	if (o->plot) {
		double p50[NR_MODES][BENCH_MAX_DEVCOUNTS], p99[NR_MODES][BENCH_MAX_DEVCOUNTS];
		struct plot_series series[NR_MODES] = {
			{ "single-pass", "#d62728", p50[MODE_SINGLE], p99[MODE_SINGLE] },
			{ "two-pass", "#1f77b4", p50[MODE_TWO_PASS], p99[MODE_TWO_PASS] },
		};
		char title[160];

		for (unsigned int i = 0; i < o->nr_devices; i++)
			for (int m = 0; m < NR_MODES; m++) {
				p50[m][i] = pts[i][m].pct.p50;
				p99[m][i] = pts[i][m].pct.p99;
			}
		snprintf(title, sizeof(title),
			 "One invalidation covering N simulated GPUs (%s driver, %.0f us TLB invalidation)",
			 o->driver == MMN_SIM_DRIVER_SVM ? "svm" : "userptr", o->latency_us);
		if (bench_plot_svg(o->plot, title, o->devices, o->nr_devices, series,
				   NR_MODES, o->latency_us)) {
			fprintf(stderr, "mmn-bench: cannot write %s\n", o->plot);
			ret = -EIO;
		} else {
			fprintf(sum, "plot written to %s\n", o->plot);
		}
	}

	/* T1 is defined at 16 and 64 devices; printed for those measured. */
	print_t1(sum, o, pts, 16);
	print_t1(sum, o, pts, 64);
	fprintf(sum, "two-pass speed-up at %u device%s: %.1fx (single %.0f us, two-pass %.0f us median)\n",
		o->devices[last], o->devices[last] == 1 ? "" : "s",
		pts[last][MODE_SINGLE].pct.p50 / pts[last][MODE_TWO_PASS].pct.p50,
		pts[last][MODE_SINGLE].pct.p50, pts[last][MODE_TWO_PASS].pct.p50);
out:
	for (unsigned int i = 0; i < o->nr_devices; i++)
		for (int m = 0; m < NR_MODES; m++)
			free(pts[i][m].samples);
	free(pts);
	return ret ? 1 : 0;
}
