// SPDX-License-Identifier: MIT
/*
 * bench_core: the core's targets (bench/README.md), measured in one run.
 *
 *   baseline  an uncontended pthread_mutex_lock + unlock pair
 *   T2        mmn_invalidate_range_start + _end of a range that hits no
 *             notifier, with 10^3 and 10^6 notifiers inserted
 *   T3        mmn_interval_read_begin + mmn_interval_read_retry, uncontended
 *   T6        heap bytes the library allocates per inserted notifier
 *   (info)    the mutex pair and the 10^6 miss again once the process has had
 *             a second thread: glibc's mutex and the lock-free miss both use
 *             plain instructions while the process is single-threaded, and
 *             locked ones after
 *
 * Every time is the median over batches (31 batches of 10^5 operations by
 * default) of the batch's mean ns/op, clock_gettime(CLOCK_MONOTONIC). The
 * ratios compare medians from this one run. See bench/README.md.
 *
 * Usage: bench_core [--quick | --smoke] [--csv]
 *   --quick  smaller counts (10^5 notifiers): a fast look, not the targets
 *   --smoke  tiny counts: only proves the program runs (CTest, debug builds)
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mmn.h>

#include "common/bench_util.h"

#ifndef MMN_BENCH_BUILD_TYPE
#define MMN_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef MMN_BENCH_DEBUG
#define MMN_BENCH_DEBUG -1
#endif

#define PAGE 4096ul
#define MAX_BATCHES 101
#define RANDOM_GAPS 65536	/* precomputed gap indices, a power of two */

static int nr_batches = 31;
static long batch_ops = 100000;
static unsigned long small_n = 1000, big_n = 1000000, mem_n = 100000;
static bool csv;

static volatile unsigned long sink;	/* keeps results alive */


/* ---- timing ---------------------------------------------------------------- */


typedef void bench_fn(void *ctx, long n);

/* One timed case; its batches are interleaved with the other cases'. */
struct bench_case {
	bench_fn *fn;
	void *ctx;
	long ops;			/* per batch */
	double v[MAX_BATCHES];
	struct mmn_bench_summary r;
};

/*
 * Batch b of every case runs before batch b + 1 of any, so load from other
 * processes hits all cases alike and the ratios between medians stay fair.
 */
static void measure(struct bench_case *cases, int nr_cases)
{
	for (int c = 0; c < nr_cases; c++)
		cases[c].fn(cases[c].ctx, cases[c].ops / 10 + 1);	/* warm up */
	for (int b = 0; b < nr_batches; b++) {
		for (int c = 0; c < nr_cases; c++) {
			uint64_t t0 = mmn_bench_now_ns();

			cases[c].fn(cases[c].ctx, cases[c].ops);
			cases[c].v[b] = (double)(mmn_bench_now_ns() - t0) / (double)cases[c].ops;
		}
	}
	for (int c = 0; c < nr_cases; c++) {
		struct bench_case *k = &cases[c];

		k->r = mmn_bench_summarize(k->v, nr_batches);
	}
}

/* ---- the cases --------------------------------------------------------------- */

static pthread_mutex_t baseline_lock = PTHREAD_MUTEX_INITIALIZER;

static void bench_mutex_pair(void *ctx, long n)
{
	(void)ctx;
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&baseline_lock);
		pthread_mutex_unlock(&baseline_lock);
	}
}

/*
 * A domain of n notifiers, each one 4 KiB page, spread evenly over 2^47 bytes
 * of address space: interval i starts at i * stride, and the gap after it
 * holds [i * stride + 2 pages, + 1 page), which overlaps nothing.
 */
struct domain {
	struct mmn_mm *mm;
	struct mmn_interval_notifier *subs;
	unsigned long n, stride;
	unsigned int *gaps;		/* random gap indices, RANDOM_GAPS of them */
};

static bool never_called(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq)
{
	(void)sub;
	(void)range;
	(void)cur_seq;
	fprintf(stderr, "bench_core: a notifier was hit; the layout is wrong\n");
	abort();
}

static const struct mmn_interval_notifier_ops bench_ops = { .invalidate = never_called };

static unsigned long gap_start(const struct domain *d, unsigned long i)
{
	return i * d->stride + 2 * PAGE;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void domain_build(struct domain *d, unsigned long n)
{
	uint64_t rng = 0x9e3779b97f4a7c15u;
	int ret;

	d->n = n;
	d->stride = ((1ul << 47) / n) & ~(PAGE - 1);
	if (d->stride < 4 * PAGE)
		mmn_bench_die("too many notifiers for the layout", EINVAL);
	ret = mmn_mm_new(&d->mm);
	if (ret)
		mmn_bench_die("mmn_mm_new", ret);
	d->subs = calloc(n, sizeof(*d->subs));
	d->gaps = malloc(RANDOM_GAPS * sizeof(*d->gaps));
	if (!d->subs || !d->gaps)
		mmn_bench_die("allocating notifiers", ENOMEM);
	for (unsigned long i = 0; i < n; i++) {
		ret = mmn_interval_notifier_insert(&d->subs[i], d->mm, i * d->stride, PAGE,
						   &bench_ops);
		if (ret)
			mmn_bench_die("mmn_interval_notifier_insert", ret);
	}
	for (int i = 0; i < RANDOM_GAPS; i++)
		d->gaps[i] = (unsigned int)(xorshift(&rng) % n);
}

static void domain_free(struct domain *d)
{
	for (unsigned long i = 0; i < d->n; i++)
		mmn_interval_notifier_remove(&d->subs[i]);
	if (mmn_mm_destroy(d->mm))
		mmn_bench_die("mmn_mm_destroy", EBUSY);
	free(d->subs);
	free(d->gaps);
}

struct miss_ctx {
	struct domain *d;
	struct mmn_range range;
};

/* The same gap, in the middle of the address range, every time. */
static void bench_miss(void *ctx, long n)
{
	struct miss_ctx *c = ctx;

	for (long i = 0; i < n; i++) {
		mmn_invalidate_range_start(&c->range);
		mmn_invalidate_range_end(&c->range);
	}
}

/* A different gap every time: the tree walk touches cold cache lines. */
static void bench_miss_random(void *ctx, long n)
{
	struct miss_ctx *c = ctx;
	const struct domain *d = c->d;

	for (long i = 0; i < n; i++) {
		unsigned long start = gap_start(d, d->gaps[i & (RANDOM_GAPS - 1)]);

		c->range.start = start;
		c->range.end = start + PAGE;
		mmn_invalidate_range_start(&c->range);
		mmn_invalidate_range_end(&c->range);
	}
}

static void check_miss(struct miss_ctx *c)
{
	struct mmn_stats before, after;
	int ret;

	mmn_mm_get_stats(c->d->mm, &before);
	ret = mmn_invalidate_range_start(&c->range);
	if (ret)
		mmn_bench_die("mmn_invalidate_range_start", ret);
	mmn_invalidate_range_end(&c->range);
	mmn_mm_get_stats(c->d->mm, &after);
	if (after.invalidations_hit != before.invalidations_hit || (after.seq & 1)) {
		fprintf(stderr, "bench_core: the gap range hit a notifier\n");
		exit(1);
	}
}

static void miss_setup(struct miss_ctx *c, struct domain *d, unsigned long n)
{
	unsigned long mid;

	c->d = d;
	domain_build(d, n);
	mid = gap_start(d, n / 2);
	mmn_range_init(&c->range, MMN_EVENT_UNMAP, 0, d->mm, mid, mid + PAGE);
	check_miss(c);
}

static void bench_read_begin_retry(void *ctx, long n)
{
	struct mmn_interval_notifier *sub = ctx;
	unsigned long retries = 0;

	for (long i = 0; i < n; i++) {
		unsigned long seq = mmn_interval_read_begin(sub);

		retries += mmn_interval_read_retry(sub, seq);
	}
	sink += retries;
}

static struct mmn_mm *t3_mm;
static struct mmn_interval_notifier t3_sub;

/*
 * The memory limit, measured: one dependent load at a random place in a
 * buffer far larger than the caches (a random cyclic permutation of its
 * cache lines, each holding the index of the next), so every load waits for
 * a cache miss and, over 4 KiB pages, mostly a TLB miss as well -- what the
 * leaf of a cold lookup costs at the least.
 */
#define CHASE_BYTES (64ul << 20)
#define CHASE_LINE 64

static unsigned long *chase_buf;
static volatile unsigned long chase_pos;

static void chase_setup(void)
{
	unsigned long n = CHASE_BYTES / CHASE_LINE, stride = CHASE_LINE / sizeof(unsigned long);
	unsigned long *perm = malloc(n * sizeof(*perm));
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	chase_buf = malloc(CHASE_BYTES);
	if (!perm || !chase_buf)
		mmn_bench_die("allocating the pointer-chase buffer", ENOMEM);
	for (unsigned long i = 0; i < n; i++)
		perm[i] = i;
	for (unsigned long i = n - 1; i > 0; i--) {	/* Fisher-Yates */
		unsigned long j = (unsigned long)(xorshift(&rng) % (i + 1)), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (unsigned long i = 0; i < n; i++)	/* one cycle through every line */
		chase_buf[perm[i] * stride] = perm[(i + 1) % n] * stride;
	free(perm);
}

static void bench_chase(void *ctx, long n)
{
	unsigned long p = chase_pos;

	(void)ctx;
	for (long i = 0; i < n; i++)
		p = chase_buf[p];
	chase_pos = p;	/* volatile: the loads cannot be dropped */
}

static void t3_setup(void)
{
	int ret = mmn_mm_new(&t3_mm);

	if (ret)
		mmn_bench_die("mmn_mm_new", ret);
	ret = mmn_interval_notifier_insert(&t3_sub, t3_mm, 0x10000, PAGE, &bench_ops);
	if (ret)
		mmn_bench_die("mmn_interval_notifier_insert", ret);
}

static void *no_op_thread(void *arg)
{
	return arg;
}

/* Make the process multi-threaded for good (glibc's __libc_single_threaded). */
static void go_multi_threaded(void)
{
	pthread_t t;
	int ret = pthread_create(&t, NULL, no_op_thread, NULL);

	if (ret)
		mmn_bench_die("pthread_create", ret);
	pthread_join(t, NULL);
}

static void t3_teardown(void)
{
	if (sink)
		mmn_bench_die("read_retry reported a collision with nothing running", EINVAL);
	mmn_interval_notifier_remove(&t3_sub);
	mmn_mm_destroy(t3_mm);
}

/* Heap bytes in use (main arena and mmap'd chunks). */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Bytes the library allocates per inserted notifier, beyond the struct. */
static double measure_t6(void)
{
	struct mmn_interval_notifier *subs = calloc(mem_n, sizeof(*subs));
	struct mmn_mm *mm;
	size_t before, after;
	int ret;

	if (!subs)
		mmn_bench_die("allocating notifiers", ENOMEM);
	ret = mmn_mm_new(&mm);
	if (ret)
		mmn_bench_die("mmn_mm_new", ret);
	before = heap_in_use();
	for (unsigned long i = 0; i < mem_n; i++) {
		ret = mmn_interval_notifier_insert(&subs[i], mm, i * 2 * PAGE, PAGE, &bench_ops);
		if (ret)
			mmn_bench_die("mmn_interval_notifier_insert", ret);
	}
	after = heap_in_use();
	for (unsigned long i = 0; i < mem_n; i++)
		mmn_interval_notifier_remove(&subs[i]);
	mmn_mm_destroy(mm);
	free(subs);
	return after > before ? (double)(after - before) / (double)mem_n : 0.0;
}

/* ---- report ---------------------------------------------------------------- */

static void row(const char *name, struct mmn_bench_summary r)
{
	if (csv)
		printf("%s,%.2f,%.2f,%.2f,ns/op\n", name, r.median, r.min, r.max);
	else
		printf("  %-44s %9.2f %9.2f %9.2f\n", name, r.median, r.min, r.max);
}

static void target(const char *id, const char *what, double value, double limit)
{
	bool pass = value <= limit;

	if (csv)
		printf("target,%s,%s,%.3f,%.3f,%s\n", id, what + (what[0] == ' '), value, limit,
		       pass ? "PASS" : "MISS");
	else	/* a what that starts with a space keeps the value column for a longer id */
		printf("%-3s %-46s %8.2f (target <= %.2f): %s\n", id, what, value, limit,
		       pass ? "PASS" : "MISS");
}

/* "10^k" for a power of ten, else the number. */
static const char *count_name(char *buf, size_t len, unsigned long n)
{
	int k = 0;

	for (unsigned long m = n; m >= 10 && m % 10 == 0; m /= 10)
		k++;
	if (k >= 2 && n == (unsigned long)__builtin_powi(10.0, k))
		snprintf(buf, len, "10^%d", k);
	else
		snprintf(buf, len, "%lu", n);
	return buf;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--quick | --smoke] [--csv]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	char name_small[64], name_big[64], name_random[64], what[96];
	struct domain small, big;
	struct miss_ctx miss_small, miss_big, miss_random;
	struct mmn_bench_summary mutex, t2_small, t2_big, t2_random, t3, chase, mt_mutex, mt_big;
	double t6;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			nr_batches = 5;
			batch_ops = 10000;
			big_n = 100000;
			mem_n = 10000;
		} else if (strcmp(argv[i], "--smoke") == 0) {
			nr_batches = 3;
			batch_ops = 1000;
			big_n = 2000;
			mem_n = 1000;
		} else if (strcmp(argv[i], "--csv") == 0) {
			csv = true;
		} else {
			usage(argv[0]);
		}
	}

	/* T6 first, on a quiet heap. */
	t6 = measure_t6();

	miss_setup(&miss_small, &small, small_n);
	miss_setup(&miss_big, &big, big_n);
	miss_random = miss_big;
	t3_setup();
	chase_setup();
	{
		struct bench_case cases[] = {
			{ .fn = bench_mutex_pair, .ops = batch_ops },
			{ .fn = bench_miss, .ctx = &miss_small, .ops = batch_ops },
			{ .fn = bench_miss, .ctx = &miss_big, .ops = batch_ops },
			/* About 100 times slower per operation: fewer of them. */
			{ .fn = bench_miss_random, .ctx = &miss_random,
			  .ops = batch_ops / 100 + 1 },
			{ .fn = bench_read_begin_retry, .ctx = &t3_sub, .ops = batch_ops },
			{ .fn = bench_chase, .ops = batch_ops / 100 + 1 },
		};

		measure(cases, (int)(sizeof(cases) / sizeof(cases[0])));
		mutex = cases[0].r;
		t2_small = cases[1].r;
		t2_big = cases[2].r;
		t2_random = cases[3].r;
		t3 = cases[4].r;
		chase = cases[5].r;
	}
	go_multi_threaded();
	{
		struct bench_case cases[] = {
			{ .fn = bench_mutex_pair, .ops = batch_ops },
			{ .fn = bench_miss, .ctx = &miss_big, .ops = batch_ops },
		};

		measure(cases, (int)(sizeof(cases) / sizeof(cases[0])));
		mt_mutex = cases[0].r;
		mt_big = cases[1].r;
	}
	t3_teardown();
	domain_free(&small);
	domain_free(&big);

	snprintf(name_small, sizeof(name_small), "T2 start+end, miss, %lu notifiers", small_n);
	snprintf(name_big, sizeof(name_big), "T2 start+end, miss, %lu notifiers", big_n);
	snprintf(name_random, sizeof(name_random), "T2 ... random gap (info), %lu", big_n);
	if (csv) {
		printf("name,median,min,max,unit\n");
	} else {
		printf("libmmn %s bench_core: %s build, MMN_DEBUG=%d, %d batches x %ld ops "
		       "(random gap: %ld); ns/op over batches\n", mmn_version(),
		       MMN_BENCH_BUILD_TYPE, MMN_BENCH_DEBUG, nr_batches, batch_ops,
		       batch_ops / 100 + 1);
		if (strcmp(MMN_BENCH_BUILD_TYPE, "Release") != 0 || MMN_BENCH_DEBUG != 0)
			printf("  (not a Release build without debug checks: numbers are not "
			       "comparable with the targets)\n");
		printf("  %-44s %9s %9s %9s\n", "case", "median", "min", "max");
	}
	row("mutex lock+unlock pair (baseline)", mutex);
	row(name_small, t2_small);
	row(name_big, t2_big);
	row(name_random, t2_random);
	row("T3 read_begin+read_retry", t3);
	row("one random load in 64 MiB (memory limit)", chase);
	row("(info, threads) mutex lock+unlock pair", mt_mutex);
	snprintf(name_big, sizeof(name_big), "(info, threads) T2 miss, %lu notifiers", big_n);
	row(name_big, mt_big);
	if (csv) {
		printf("T6 bytes per notifier,%.2f,,,bytes\n", t6);
		printf("sizeof(struct mmn_interval_notifier),%zu,,,bytes\n",
		       sizeof(struct mmn_interval_notifier));
	} else {
		printf("  %-44s %9.2f bytes (%lu notifiers)\n", "T6 library heap per notifier",
		       t6, mem_n);
		printf("  %-44s %9zu bytes (embedded, not counted)\n",
		       "sizeof(struct mmn_interval_notifier)",
		       sizeof(struct mmn_interval_notifier));
		printf("\n");
	}

	snprintf(what, sizeof(what), "miss %lu / miss %lu notifiers", big_n, small_n);
	target("T2", what, t2_big.median / t2_small.median, 4.0);
	snprintf(what, sizeof(what), "miss %lu / (2 x mutex pair)", big_n);
	target("T2", what, t2_big.median / (2 * mutex.median), 3.0);
	{
		char big[24], small[24];

		snprintf(what, sizeof(what), " cold miss %s random gap / hot miss %s",
			 count_name(big, sizeof(big), big_n), count_name(small, sizeof(small), small_n));
		target("T2c", what, t2_random.median / t2_small.median, 15.0);
	}
	if (!csv)
		printf("    (info: cold miss = hot miss + %.2f random loads in 64 MiB)\n",
		       (t2_random.median - t2_small.median) / chase.median);
	if (!csv)
		printf("    (info: with threads, miss %lu / (2 x mutex pair) = %.2f)\n", big_n,
		       mt_big.median / (2 * mt_mutex.median));
	target("T3", "read_begin+read_retry / mutex pair", t3.median / mutex.median, 2.0);
	target("T6", "library heap bytes per notifier", t6, 64.0);
	return 0;
}
