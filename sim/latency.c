// SPDX-License-Identifier: MIT
/*
 * The simulation's clock and its latency model: a fixed latency, or a
 * lognormal one given by its median and 99th percentile, drawn from a seeded
 * splitmix64 sequence whose counter is advanced atomically, so concurrent
 * draws are lock-free and a single-threaded run is reproducible.
 */
#include <errno.h>
#include <math.h>
#include <sys/prctl.h>
#include <time.h>

#include "sim_internal.h"

/* Standard normal quantile of 0.99. */
#define Z_99 2.3263478740408408

uint64_t mmn_sim_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int mmn_sim_set_timer_slack(unsigned long slack_ns)
{
	if (prctl(PR_SET_TIMERSLACK, slack_ns ? slack_ns : 1ul, 0, 0, 0))
		return -errno;
	return 0;
}

int mmn_sim_latency_fixed(struct mmn_sim_latency *lat, uint64_t ns)
{
	if (!lat)
		return -EINVAL;
	*lat = (struct mmn_sim_latency){
		.kind = MMN_SIM_LATENCY_FIXED,
		.median_ns = ns,
		.p99_ns = ns,
	};
	return 0;
}

int mmn_sim_latency_lognormal(struct mmn_sim_latency *lat, uint64_t median_ns,
			      uint64_t p99_ns, uint64_t seed)
{
	if (!lat || !median_ns || p99_ns < median_ns)
		return -EINVAL;
	*lat = (struct mmn_sim_latency){
		.kind = MMN_SIM_LATENCY_LOGNORMAL,
		.median_ns = median_ns,
		.p99_ns = p99_ns,
		.mu = log((double)median_ns),
		.sigma = log((double)p99_ns / (double)median_ns) / Z_99,
		.rng = seed,
	};
	return 0;
}

/* splitmix64 over an atomic counter: each caller gets its own step. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = __atomic_add_fetch(state, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so log() is finite. */
static double rng_unit(uint64_t *state)
{
	return ((double)(rng_next(state) >> 11) + 0.5) * 0x1.0p-53;
}

uint64_t mmn_sim_latency_draw(struct mmn_sim_latency *lat)
{
	double u1, u2, z, v;

	if (lat->kind != MMN_SIM_LATENCY_LOGNORMAL || lat->sigma == 0.0)
		return lat->median_ns;
	/* Box-Muller; one of the pair is enough. */
	u1 = rng_unit(&lat->rng);
	u2 = rng_unit(&lat->rng);
	z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
	v = exp(lat->mu + lat->sigma * z);
	if (v >= 1.8e19)
		return UINT64_MAX;
	return (uint64_t)llround(v);
}
