// SPDX-License-Identifier: MIT
/*
 * The latency model: fixed latencies are exact; a seeded lognormal puts the
 * median and the 99th percentile of 10^5 draws within 3% of what was asked,
 * repeats its sequence for the same seed, and stays correct under
 * concurrent draws. Pass a seed as argv[1] to repeat a run.
 */
#include <math.h>

#include "sim.h"

#include "harness.h"

#define DRAWS 100000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank quantile of sorted samples. */
static uint64_t quantile(const uint64_t *sorted, unsigned int n, double q)
{
	unsigned int rank = (unsigned int)ceil(q * n);

	return sorted[(rank ? rank : 1) - 1];
}

static double rel_err(uint64_t got, uint64_t want)
{
	return fabs((double)got - (double)want) / (double)want;
}

static uint64_t samples[DRAWS];

TEST(fixed_is_exact)
{
	struct mmn_sim_latency lat;

	assert_eq(mmn_sim_latency_fixed(&lat, 50000), 0);
	expect_eq(lat.kind, MMN_SIM_LATENCY_FIXED);
	for (int i = 0; i < 1000; i++)
		if (mmn_sim_latency_draw(&lat) != 50000)
			expect_eq(mmn_sim_latency_draw(&lat), 50000);
	assert_eq(mmn_sim_latency_fixed(&lat, 0), 0);
	expect_eq(mmn_sim_latency_draw(&lat), 0);
	expect_eq(mmn_sim_latency_fixed(NULL, 1), -EINVAL);
}

TEST(lognormal_rejects_bad_parameters)
{
	struct mmn_sim_latency lat;

	expect_eq(mmn_sim_latency_lognormal(NULL, 10, 20, 1), -EINVAL);
	expect_eq(mmn_sim_latency_lognormal(&lat, 0, 20, 1), -EINVAL);
	expect_eq(mmn_sim_latency_lognormal(&lat, 20, 19, 1), -EINVAL);
	/* p99 == median: no spread at all. */
	assert_eq(mmn_sim_latency_lognormal(&lat, 20000, 20000, 1), 0);
	for (int i = 0; i < 100; i++)
		if (mmn_sim_latency_draw(&lat) != 20000)
			expect_eq(mmn_sim_latency_draw(&lat), 20000);
}

/*
 * @tol_permille: allowed relative error. The standard error of a sample p99
 * of 10^5 lognormal draws is about 1.2% x sigma, so 3% holds for sigma up to
 * ~0.6 with 4 standard errors to spare; a 100x tail (sigma 2, 2.3%) gets 12%,
 * 5 standard errors (8%, 3.4 of them, failed once: seed 27487336048400).
 */
static void check_quantiles(uint64_t median, uint64_t p99, uint64_t seed,
			    long long tol_permille)
{
	struct mmn_sim_latency lat;
	uint64_t got50, got99;

	assert_eq(mmn_sim_latency_lognormal(&lat, median, p99, seed), 0);
	for (int i = 0; i < DRAWS; i++)
		samples[i] = mmn_sim_latency_draw(&lat);
	qsort(samples, DRAWS, sizeof(samples[0]), cmp_u64);
	got50 = quantile(samples, DRAWS, 0.50);
	got99 = quantile(samples, DRAWS, 0.99);
	if (rel_err(got50, median) * 1000 > tol_permille ||
	    rel_err(got99, p99) * 1000 > tol_permille)
		fprintf(stderr, "    median %llu: got %llu; p99 %llu: got %llu (seed %llu)\n",
			(unsigned long long)median, (unsigned long long)got50,
			(unsigned long long)p99, (unsigned long long)got99,
			(unsigned long long)seed);
	expect_le((long long)(rel_err(got50, median) * 1000), tol_permille);
	expect_le((long long)(rel_err(got99, p99) * 1000), tol_permille);
	/*
	 * A lognormal is positive and skewed: p1 well below the median. A draw
	 * is rounded to whole nanoseconds, so in a wide distribution the very
	 * lowest draws may round to 0 (sigma 2, median 20 us: a draw below
	 * 0.5 ns is z < -5.35, 4 in 10^8 per draw, so 1 run in 200 has one);
	 * p0.1 is clear of it.
	 */
	expect_gt(quantile(samples, DRAWS, 0.001), 0);
	expect_lt(quantile(samples, DRAWS, 0.01), median);
}

TEST(lognormal_quantiles)
{
	check_quantiles(50000, 200000, test_seed, 30);
	check_quantiles(50000, 55000, test_seed + 1, 30);	/* narrow */
	check_quantiles(1000, 3000, test_seed + 3, 30);
	check_quantiles(20000, 2000000, test_seed + 2, 120);	/* heavy tail */
}

TEST(lognormal_is_reproducible)
{
	struct mmn_sim_latency a, b, c, copy;
	int same = 0, differ = 0;

	mmn_sim_latency_lognormal(&a, 50000, 200000, test_seed);
	mmn_sim_latency_lognormal(&b, 50000, 200000, test_seed);
	mmn_sim_latency_lognormal(&c, 50000, 200000, test_seed + 1);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = mmn_sim_latency_draw(&a), y = mmn_sim_latency_draw(&b);

		same += x == y;
		differ += x != mmn_sim_latency_draw(&c);
	}
	expect_eq(same, 1000);
	expect_gt(differ, 990);
	/* A copy continues the same sequence. */
	copy = a;
	for (int i = 0; i < 100; i++)
		if (mmn_sim_latency_draw(&copy) != mmn_sim_latency_draw(&a))
			expect_true(0);
}

struct drawer {
	struct mmn_sim_latency *lat;
	uint64_t *out;
	unsigned int n;
};

static void *draw_thread(void *arg)
{
	struct drawer *d = arg;

	for (unsigned int i = 0; i < d->n; i++)
		d->out[i] = mmn_sim_latency_draw(d->lat);
	return NULL;
}

/* Concurrent draws share one sequence and keep its distribution. */
TEST(concurrent_draws)
{
	enum { THREADS = 4 };
	struct mmn_sim_latency lat;
	struct drawer d[THREADS];
	pthread_t th[THREADS];
	uint64_t got50, got99;

	mmn_sim_latency_lognormal(&lat, 50000, 200000, test_seed + 7);
	for (int i = 0; i < THREADS; i++) {
		d[i] = (struct drawer){ &lat, samples + i * (DRAWS / THREADS), DRAWS / THREADS };
		pthread_create(&th[i], NULL, draw_thread, &d[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	qsort(samples, DRAWS, sizeof(samples[0]), cmp_u64);
	got50 = quantile(samples, DRAWS, 0.50);
	got99 = quantile(samples, DRAWS, 0.99);
	expect_le((long long)(rel_err(got50, 50000) * 1000), 30);
	expect_le((long long)(rel_err(got99, 200000) * 1000), 30);
}

int main(int argc, char **argv)
{
	test_seed_from_args(argc, argv);
	RUN(fixed_is_exact);
	RUN(lognormal_rejects_bad_parameters);
	RUN(lognormal_quantiles);
	RUN(lognormal_is_reproducible);
	RUN(concurrent_draws);
	return test_report();
}
