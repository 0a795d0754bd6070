/* SPDX-License-Identifier: MIT */
/*
 * mmn-bench internals: options shared by the scenarios, sample statistics,
 * progress reporting and the SVG plot.
 */
#ifndef MMN_BENCH_H
#define MMN_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sim.h"

#define BENCH_MAX_DEVCOUNTS 32

struct bench_opts {
	unsigned int devices[BENCH_MAX_DEVCOUNTS];	/* scaling: device counts */
	unsigned int nr_devices;
	bool devices_set;
	unsigned int reps;
	double latency_us;		/* median device latency */
	double p99_us;			/* 0: fixed latency */
	enum mmn_sim_driver_kind driver;
	uint64_t seed;
	bool csv;
	const char *plot;
	unsigned int pages;		/* pages per binding */
	unsigned int pool;		/* svm finish containers */
	/* concurrent */
	unsigned int engines;
	unsigned int buffers;
	unsigned int duration_ms;
	unsigned int interval_us;
	unsigned int job_accesses;
	unsigned int job_us;
	bool preempt;
	bool progress;			/* stdout is a terminal */
};

/* Median and 99th percentile (nearest rank) of @n samples; sorts them. */
struct bench_pct {
	double p50;
	double p99;
};
struct bench_pct bench_percentiles(double *samples, unsigned int n);

/* A device latency as the options ask for, seeded per device. */
void bench_latency(const struct bench_opts *o, unsigned int dev, struct mmn_sim_latency *lat);

/* One \r-updated status line on stderr, only when stdout is a terminal. */
void bench_progress(const struct bench_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void bench_progress_done(const struct bench_opts *o);

/* The scaling plot: latency against device count, x axis labelled @xlabel. */
struct plot_series {
	const char *label;
	const char *color;
	const double *p50;
	const double *p99;
};
int bench_plot_svg(const char *path, const char *title, const char *xlabel,
		   const unsigned int *devices, unsigned int n,
		   const struct plot_series *series, unsigned int nr_series, double latency_us);

/*
 * points.c: scaling and vulkan measure one point per device count in
 * o->devices and driver mode (single-pass, two-pass).
 */
enum bench_mode { BENCH_SINGLE = 0, BENCH_TWO_PASS, BENCH_NR_MODES };
extern const char *const bench_mode_names[BENCH_NR_MODES];

struct bench_point {
	struct bench_pct pct;
	double *samples;		/* o->reps of them, in microseconds */
	unsigned int redone;		/* repetitions that did not count (vulkan) */
};

/* Fill @pt->samples for @ndev devices in @mode; 0 or -errno. */
typedef int bench_measure_fn(const struct bench_opts *o, unsigned int ndev,
			     enum bench_mode mode, struct bench_point *pt, void *arg);

/*
 * The wall time of one invalidation (range_start + _end, MMN_EVENT_UNMAP) of
 * [@start, @end) in @mm, in *@us; returns range_start's result.
 */
int bench_time_invalidation(struct mmn_mm *mm, unsigned long start, unsigned long end,
			    double *us);
/* The index of device count @n in o->devices, or -1. */
int bench_find_count(const struct bench_opts *o, unsigned int n);
/*
 * Measure every point into @pts (o->nr_devices rows, zeroed), in order, with a
 * progress line naming @what; stops at the first error, returned (-errno).
 */
int bench_measure_points(const struct bench_opts *o, const char *what,
			 struct bench_point (*pts)[BENCH_NR_MODES], bench_measure_fn *measure,
			 void *arg);
/* devices,mode,p50_us,p99_us rows on stdout. */
void bench_print_csv(const struct bench_opts *o, struct bench_point (*pts)[BENCH_NR_MODES]);
/* Both modes' medians and 99th percentiles into o->plot, said on @sum; 0 or -EIO. */
int bench_plot_points(const struct bench_opts *o, FILE *sum, const char *title,
		      const char *xlabel, struct bench_point (*pts)[BENCH_NR_MODES],
		      double latency_us);
/* Frees @pts and its samples. */
void bench_points_free(const struct bench_opts *o, struct bench_point (*pts)[BENCH_NR_MODES]);

int bench_scaling(const struct bench_opts *o);
int bench_vulkan(const struct bench_opts *o);	/* vulkan.c: real Vulkan devices */
int bench_concurrent(const struct bench_opts *o);

#endif /* MMN_BENCH_H */
