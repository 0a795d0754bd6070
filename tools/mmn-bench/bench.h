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

/* The scaling plot. */
struct plot_series {
	const char *label;
	const char *color;
	const double *p50;
	const double *p99;
};
int bench_plot_svg(const char *path, const char *title, const unsigned int *devices,
		   unsigned int n, const struct plot_series *series, unsigned int nr_series,
		   double latency_us);

/* The same plot with another x-axis label. */
int bench_plot_svg_x(const char *path, const char *title, const char *xlabel,
		     const unsigned int *devices, unsigned int n,
		     const struct plot_series *series, unsigned int nr_series, double latency_us);

int bench_scaling(const struct bench_opts *o);
int bench_vulkan(const struct bench_opts *o);	/* vulkan.c: real Vulkan devices */
int bench_concurrent(const struct bench_opts *o);

#endif /* MMN_BENCH_H */
