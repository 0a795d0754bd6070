/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by every benchmark program (bench_core, bench_munmap, the
 * bench_rcache_* programs):
 * one clock, one way to give up, one median.
 */
#ifndef MMN_BENCH_UTIL_H
#define MMN_BENCH_UTIL_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mmn_bench_now_ns(void);

/* Print "<program>: @what: strerror(|@err|)" to stderr and exit(1). */
_Noreturn void mmn_bench_die(const char *what, int err);

/* Median, minimum and maximum of a sample. */
struct mmn_bench_summary {
	double median, min, max;
};

/*
 * Sorts @v[0..@n) in place and returns its median (the mean of the two middle
 * values when @n is even; 0 when @n is 0).
 */
double mmn_bench_median(double *v, int n);

/* mmn_bench_median() plus the extremes (all 0 when @n is 0). */
struct mmn_bench_summary mmn_bench_summarize(double *v, int n);

#endif /* MMN_BENCH_UTIL_H */
