// SPDX-License-Identifier: MIT
/*
 * The lock-free miss under churn (src/core/notifier.c, "The lock-free miss";
 * docs/DESIGN.md). Invalidator threads open and close one-page regions while
 * a writer thread keeps changing the interval index under them: it inserts
 * and removes "churn" notifiers at random (splits, borrows, merges, root
 * changes, nodes going back to the spare list and coming out again), and
 * inserts the "target" notifiers one by one, publishing each after its insert
 * has returned. The key space interleaves them, unit u holding
 *   target u  [base + 4u pages, +1 page)
 *   churn u   [base + (4u + 1) pages, +1 page)
 *   gap u     [base + (4u + 2) pages, +1 page)   never covered
 * so every leaf that holds targets is torn apart by the churn around them.
 *
 * The oracle, per region:
 *  - a region over a published target that is in the tree (not a deferred
 *    insert still waiting for its period to end) calls exactly that target,
 *    once: an insert that reached the tree before the start is seen, whether
 *    the probe ran during a change or not;
 *  - a region over a gap calls nothing;
 * and after everything stops: the domain is idle (even sequence, no region
 * open), its index sound, every count adds up, and it can be destroyed.
 * Invalidators also call read_begin on published targets, which waits while
 * a period that covers them is open: a period left odd would hang here (the
 * CTest timeout catches it). Run it under TSan: the probe reads nodes that
 * the writer changes and recycles.
 *
 * Usage: stress_lockfree_miss [seed [rounds]]   (rounds: writer operations)
 */
#include <sched.h>

#include "harness.h"
#include "internal.h"

#define PAGE 4096ul
#define BASE 0x100000000ul
#define UNITS 512
#define NINV 3

static struct mmn_mm *mm;
static struct mmn_interval_notifier targets[UNITS], churn[UNITS];
static bool published[UNITS];	/* atomic */
static bool churn_in[UNITS];	/* the writer's own */
static bool stop;		/* atomic */
static long rounds = 60000;

static __thread unsigned long target_calls, other_calls;

static unsigned long unit_addr(unsigned long u, unsigned long k)
{
	return BASE + (4 * u + k) * PAGE;
}

static bool on_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	if (sub >= targets && sub < targets + UNITS)
		target_calls++;
	else
		other_calls++;
	return true;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = on_invalidate };

struct inv_stats {
	unsigned long regions, target_checks, gap_checks, bad_target, bad_gap;
	bool covered;	/* atomic: MIN_CHECKS of each kind done */
};

#define MIN_CHECKS 1000
#define COVER_WAIT_NS (120 * 1000000000ull)

static void *invalidator(void *arg)
{
	struct inv_stats *st = arg;
	struct test_rng rng;
	struct mmn_range range;

	test_rng_seed(&rng, test_seed + (uintptr_t)arg);
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		unsigned long u = test_rng_below(&rng, UNITS);
		/*
		 * In the tree, not merely inserted: an insert during an odd
		 * period is deferred, and the regions of that period do not
		 * call it (its read_begin waits for the period instead).
		 */
		bool pub = __atomic_load_n(&published[u], __ATOMIC_ACQUIRE) &&
			   mmn_interval_notifier_test_in_tree(&targets[u]);
		bool on_target = pub && test_rng_below(&rng, 2);
		unsigned long a = unit_addr(u, on_target ? 0 : 2), t0 = target_calls,
			      o0 = other_calls;

		if (pub && test_rng_below(&rng, 8) == 0)
			(void)mmn_interval_read_retry(&targets[u],
						      mmn_interval_read_begin(&targets[u]));
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, a, a + PAGE);
		if (mmn_invalidate_range_start(&range) != 0) {
			st->bad_gap++;	/* blockable: cannot fail */
			continue;
		}
		mmn_invalidate_range_end(&range);
		st->regions++;
		if (on_target) {
			st->target_checks++;
			if (target_calls - t0 != 1 || other_calls != o0)
				st->bad_target++;
		} else {
			st->gap_checks++;
			if (target_calls != t0 || other_calls != o0)
				st->bad_gap++;
		}
		if (st->target_checks >= MIN_CHECKS && st->gap_checks >= MIN_CHECKS)
			__atomic_store_n(&st->covered, true, __ATOMIC_RELEASE);
	}
	return NULL;
}

TEST(lockfree_miss_under_churn)
{
	struct inv_stats st[NINV] = { { 0 } };
	pthread_t th[NINV];
	struct test_rng rng;
	struct mmn_stats s;
	unsigned long next_target = 0, inserts = 0, removes = 0;

	assert_eq(mmn_mm_new(&mm), 0);
	test_rng_seed(&rng, test_seed);
	for (int i = 0; i < NINV; i++)
		assert_eq(pthread_create(&th[i], NULL, invalidator, &st[i]), 0);
	for (long r = 0; r < rounds; r++) {
		unsigned long u = test_rng_below(&rng, UNITS);

		if (next_target < UNITS && r % (rounds / UNITS / 2 + 1) == 0) {
			expect_eq(mmn_interval_notifier_insert(&targets[next_target], mm,
							       unit_addr(next_target, 0), PAGE,
							       &ops), 0);
			__atomic_store_n(&published[next_target], true, __ATOMIC_RELEASE);
			next_target++;
		}
		if (churn_in[u]) {
			expect_eq(mmn_interval_notifier_remove(&churn[u]), 0);
			removes++;
		} else {
			expect_eq(mmn_interval_notifier_insert(&churn[u], mm, unit_addr(u, 1), PAGE,
							       &ops), 0);
			inserts++;
		}
		churn_in[u] = !churn_in[u];
	}
	/*
	 * A thread scheduled mostly before the targets were published may not
	 * have checked any yet: let every one reach MIN_CHECKS of each kind
	 * (bounded), with all targets in place.
	 */
	{
		uint64_t deadline = test_now_ns() + COVER_WAIT_NS;
		int i = 0;

		while (i < NINV && test_now_ns() < deadline) {
			if (__atomic_load_n(&st[i].covered, __ATOMIC_ACQUIRE))
				i++;
			else
				sched_yield();
		}
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < NINV; i++)
		assert_eq(pthread_join(th[i], NULL), 0);

	for (int i = 0; i < NINV; i++) {
		printf("  invalidator %d: %lu regions, %lu on targets, %lu on gaps\n", i,
		       st[i].regions, st[i].target_checks, st[i].gap_checks);
		expect_eq(st[i].bad_target, 0);
		expect_eq(st[i].bad_gap, 0);
		expect_ge(st[i].target_checks, MIN_CHECKS);
		expect_ge(st[i].gap_checks, MIN_CHECKS);
	}
	printf("  writer: %lu targets, %lu churn inserts, %lu removes\n", next_target, inserts,
	       removes);
	expect_eq(next_target, UNITS);

	expect_eq(mmn_mm_get_stats(mm, &s), 0);
	expect_eq(s.seq & 1, 0);
	expect_eq(s.active, 0);
	expect_eq(s.deferred, 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	{
		unsigned long regions = 0;

		for (int i = 0; i < NINV; i++)
			regions += st[i].regions;
		expect_eq(s.invalidations, regions);
	}
	for (unsigned long u = 0; u < UNITS; u++) {
		expect_eq(mmn_interval_notifier_remove(&targets[u]), 0);
		if (churn_in[u])
			expect_eq(mmn_interval_notifier_remove(&churn[u]), 0);
	}
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(int argc, char **argv)
{
	test_seed_from_args(argc, argv);
	if (argc > 2)
		rounds = strtol(argv[2], NULL, 0);
	if (rounds < 2 * UNITS) {
		fprintf(stderr, "usage: %s [seed [rounds >= %d]]\n", argv[0], 2 * UNITS);
		return 2;
	}
	RUN(lockfree_miss_under_churn);
	return test_report();
}
