// SPDX-License-Identifier: MIT
/* mmn-bench: sample statistics, device latencies and the progress line. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

#include "bench.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double nearest_rank(const double *sorted, unsigned int n, double q)
{
	unsigned int rank = (unsigned int)ceil(q * n);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

struct bench_pct bench_percentiles(double *samples, unsigned int n)
{
	struct bench_pct p = { 0, 0 };

	if (!n)
		return p;
	qsort(samples, n, sizeof(*samples), cmp_double);
	p.p50 = nearest_rank(samples, n, 0.50);
	p.p99 = nearest_rank(samples, n, 0.99);
	return p;
}

void bench_latency(const struct bench_opts *o, unsigned int dev, struct mmn_sim_latency *lat)
{
	uint64_t median = (uint64_t)llround(o->latency_us * 1000.0);

	if (o->p99_us > o->latency_us && median)
		mmn_sim_latency_lognormal(lat, median, (uint64_t)llround(o->p99_us * 1000.0),
					  o->seed * 1000003u + dev);
	else
		mmn_sim_latency_fixed(lat, median);
}

void bench_progress(const struct bench_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->progress)
		return;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

void bench_progress_done(const struct bench_opts *o)
{
	if (!o->progress)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
}
