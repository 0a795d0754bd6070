// SPDX-License-Identifier: MIT
/*
 * Fault injection (issue 6) for the simulated devices: every allocation on
 * their set-up paths -- device, engine, driver (the svm finish pool among
 * them), binding, application window -- is failed in turn
 * (test/alloc_fail.h); each failure must come back as -ENOMEM and leave
 * nothing behind (ASan checks leaks at exit).
 *
 * The svm pool running empty at invalidation time is not an allocation
 * failure (the pool is fixed; its fallback to a single pass is tested in
 * sim_drivers and sim_stress). Here a driver is also run with failure armed
 * across invalidations, to show the notifiers allocate nothing.
 */
#include "sim.h"

#include "harness.h"
#include "alloc_fail.h"

#define PAGE 4096UL	/* the simulator's page size */

static struct mmn_mm *mm;
static struct mmn_sim_dev *dev;
static struct mmn_sim_engine *eng;
static struct mmn_sim_driver *drv;
static struct mmn_sim_binding *binding;
static struct mmn_sim_umem *um;
static struct mmn_sim_pool pool;

static struct mmn_sim_dev_config dev_config(void)
{
	struct mmn_sim_dev_config cfg = { .id = 1, .mode = MMN_SIM_DEV_FAULT };

	mmn_sim_latency_fixed(&cfg.tlb_latency, 1000);
	mmn_sim_latency_fixed(&cfg.preempt_latency, 1000);
	return cfg;
}

static int new_dev(void)
{
	struct mmn_sim_dev_config cfg = dev_config();

	return mmn_sim_dev_new(&cfg, &dev);
}

static int new_driver(enum mmn_sim_driver_kind kind)
{
	struct mmn_sim_driver_config cfg = { .kind = kind, .pool_size = 16 };

	return mmn_sim_driver_new(mm, &cfg, &drv);
}

TEST(setup_paths)
{
	int points;

	assert_eq(mmn_mm_new(&mm), 0);

	points = alloc_fail_walk(new_dev(), mmn_sim_dev_destroy(dev));
	printf("  mmn_sim_dev_new: %d allocation(s)\n", points);
	expect_ge(points, 1);

	assert_eq(new_dev(), 0);
	points = alloc_fail_walk(mmn_sim_engine_new(dev, &eng), (void)0);
	printf("  mmn_sim_engine_new: %d allocation(s)\n", points);
	expect_ge(points, 1);

	points = alloc_fail_walk(mmn_sim_pool_init(&pool, 8, 64), mmn_sim_pool_fini(&pool));
	printf("  mmn_sim_pool_init: %d allocation(s)\n", points);
	expect_ge(points, 1);

	for (int kind = MMN_SIM_DRIVER_USERPTR; kind <= MMN_SIM_DRIVER_SVM; kind++) {
		points = alloc_fail_walk(new_driver(kind), mmn_sim_driver_destroy(drv));
		printf("  mmn_sim_driver_new(%s): %d allocation(s)\n",
		       kind == MMN_SIM_DRIVER_SVM ? "svm, finish pool" : "userptr", points);
		expect_ge(points, 1);
	}

	points = alloc_fail_walk(mmn_sim_umem_new(mm, 16, &um), mmn_sim_umem_destroy(um));
	printf("  mmn_sim_umem_new: %d allocation(s)\n", points);
	expect_ge(points, 1);

	assert_eq(mmn_sim_umem_new(mm, 16, &um), 0);
	for (int kind = MMN_SIM_DRIVER_USERPTR; kind <= MMN_SIM_DRIVER_SVM; kind++) {
		assert_eq(new_driver(kind), 0);
		points = alloc_fail_walk(mmn_sim_bind(drv, dev, mmn_sim_umem_base(um),
						      16 * PAGE, &binding),
					 mmn_sim_unbind(binding));
		printf("  mmn_sim_bind(%s): %d allocation(s)\n",
		       kind == MMN_SIM_DRIVER_SVM ? "svm" : "userptr", points);
		expect_ge(points, 1);
		expect_eq(mmn_sim_driver_destroy(drv), 0);
	}
	mmn_sim_umem_destroy(um);
	expect_eq(mmn_sim_dev_destroy(dev), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* Invalidations through both drivers, two-pass, with every allocation failing. */
TEST(notifiers_allocate_nothing)
{
	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(new_dev(), 0);
	assert_eq(mmn_sim_umem_new(mm, 16, &um), 0);
	for (int kind = MMN_SIM_DRIVER_USERPTR; kind <= MMN_SIM_DRIVER_SVM; kind++) {
		struct mmn_sim_binding_stats st;

		assert_eq(new_driver(kind), 0);
		assert_eq(mmn_sim_bind(drv, dev, mmn_sim_umem_base(um), 16 * PAGE,
				       &binding), 0);
		assert_eq(mmn_sim_binding_populate(binding), 0);
		alloc_fail_arm(0);
		for (int i = 0; i < 20; i++)
			expect_eq(mmn_sim_umem_dontneed(um, mmn_sim_umem_base(um),
							16 * PAGE), 0);
		expect_false(alloc_fail_disarm());
		mmn_sim_binding_get_stats(binding, &st);
		expect_eq(st.invalidations, 20);
		expect_eq(mmn_sim_unbind(binding), 0);
		expect_eq(mmn_sim_driver_destroy(drv), 0);
	}
	mmn_sim_umem_destroy(um);
	expect_eq(mmn_sim_dev_destroy(dev), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(setup_paths);
	RUN(notifiers_allocate_nothing);
	return test_report();
}
