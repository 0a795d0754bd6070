// SPDX-License-Identifier: MIT
/*
 * mmn-bench scaling and vulkan: both measure one invalidation per device
 * count with the single-pass and the two-pass driver. The loop over the
 * points, the CSV rows and the plot of the two modes are here, once.
 */
#include <errno.h>
#include <stdlib.h>

#include "bench.h"

const char *const bench_mode_names[BENCH_NR_MODES] = { "single", "two-pass" };

int bench_find_count(const struct bench_opts *o, unsigned int n)
{
	for (unsigned int i = 0; i < o->nr_devices; i++)
		if (o->devices[i] == n)
			return (int)i;
	return -1;
}

int bench_time_invalidation(struct mmn_mm *mm, unsigned long start, unsigned long end,
			    double *us)
{
	struct mmn_range range;
	uint64_t t0, t1;
	int ret;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, start, end);
	t0 = mmn_sim_now_ns();
	ret = mmn_invalidate_range_start(&range);
	mmn_invalidate_range_end(&range);
	t1 = mmn_sim_now_ns();
	*us = (double)(t1 - t0) / 1000.0;
	return ret;
}

int bench_measure_points(const struct bench_opts *o, const char *what,
			 struct bench_point (*pts)[BENCH_NR_MODES], bench_measure_fn *measure,
			 void *arg)
{
	unsigned int done = 0;
	int ret = 0;

	for (unsigned int i = 0; i < o->nr_devices && !ret; i++) {
		for (int m = 0; m < BENCH_NR_MODES && !ret; m++) {
			bench_progress(o, "%s: %u device%s, %s (%u/%u)", what, o->devices[i],
				       o->devices[i] == 1 ? "" : "s", bench_mode_names[m], ++done,
				       o->nr_devices * BENCH_NR_MODES);
			pts[i][m].samples = calloc(o->reps, sizeof(double));
			if (!pts[i][m].samples) {
				ret = -ENOMEM;
				break;
			}
			ret = measure(o, o->devices[i], (enum bench_mode)m, &pts[i][m], arg);
			pts[i][m].pct = bench_percentiles(pts[i][m].samples, o->reps);
		}
	}
	bench_progress_done(o);
	return ret;
}

void bench_print_csv(const struct bench_opts *o, struct bench_point (*pts)[BENCH_NR_MODES])
{
	printf("devices,mode,p50_us,p99_us\n");
	for (unsigned int i = 0; i < o->nr_devices; i++)
		for (int m = 0; m < BENCH_NR_MODES; m++)
			printf("%u,%s,%.1f,%.1f\n", o->devices[i], bench_mode_names[m],
			       pts[i][m].pct.p50, pts[i][m].pct.p99);
}

int bench_plot_points(const struct bench_opts *o, FILE *sum, const char *title,
		      const char *xlabel, struct bench_point (*pts)[BENCH_NR_MODES],
		      double latency_us)
{
	double p50[BENCH_NR_MODES][BENCH_MAX_DEVCOUNTS], p99[BENCH_NR_MODES][BENCH_MAX_DEVCOUNTS];
	struct plot_series series[BENCH_NR_MODES] = {
		{ "single-pass", "#d62728", p50[BENCH_SINGLE], p99[BENCH_SINGLE] },
		{ "two-pass", "#1f77b4", p50[BENCH_TWO_PASS], p99[BENCH_TWO_PASS] },
	};

	for (unsigned int i = 0; i < o->nr_devices; i++)
		for (int m = 0; m < BENCH_NR_MODES; m++) {
			p50[m][i] = pts[i][m].pct.p50;
			p99[m][i] = pts[i][m].pct.p99;
		}
	if (bench_plot_svg(o->plot, title, xlabel, o->devices, o->nr_devices, series,
			   BENCH_NR_MODES, latency_us)) {
		fprintf(stderr, "mmn-bench: cannot write %s\n", o->plot);
		return -EIO;
	}
	fprintf(sum, "plot written to %s\n", o->plot);
	return 0;
}

void bench_points_free(const struct bench_opts *o, struct bench_point (*pts)[BENCH_NR_MODES])
{
	for (unsigned int i = 0; pts && i < o->nr_devices; i++)
		for (int m = 0; m < BENCH_NR_MODES; m++)
			free(pts[i][m].samples);
	free(pts);
}
