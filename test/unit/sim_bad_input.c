// SPDX-License-Identifier: MIT
/*
 * The public functions of sim/sim.h that take pointers, sizes or
 * enums, with invalid inputs: NULL arguments, zero sizes, unknown modes and
 * driver kinds, engines beyond MMN_SIM_MAX_ENGINES, stopping an engine that
 * does not run, destroy of NULL and of objects still in use, a pending fence
 * armed again, bindings of length 0, unaligned, wrapping or overlapping,
 * faults outside a binding, window operations outside the window. Each row
 * asserts what the function's "Return:" line documents and is printed as it
 * runs, in the format of bad_input.c; valid calls afterwards show that the
 * refused ones changed nothing.
 */
#include "sim.h"

#include "scenario_util.h"
#include "bad_input_table.h"

#define PG 4096ul

TEST(sim_bad_input_latency_fence_pool)
{
	struct mmn_sim_latency lat;
	struct mmn_sim_fence fence;
	struct mmn_sim_pool pool;

	ROW("mmn_sim_latency_fixed", "lat NULL", mmn_sim_latency_fixed(NULL, 5), -EINVAL);
	ROW("mmn_sim_latency_fixed", "ns 0 (valid)", mmn_sim_latency_fixed(&lat, 0), 0);
	ROW("mmn_sim_latency_lognormal", "lat NULL", mmn_sim_latency_lognormal(NULL, 10, 20, 1),
	    -EINVAL);
	ROW("mmn_sim_latency_lognormal", "median 0", mmn_sim_latency_lognormal(&lat, 0, 20, 1),
	    -EINVAL);
	ROW("mmn_sim_latency_lognormal", "p99 < median",
	    mmn_sim_latency_lognormal(&lat, 20, 19, 1), -EINVAL);
	ROW("mmn_sim_latency_lognormal", "median 0, p99 0", mmn_sim_latency_lognormal(&lat, 0, 0, 1),
	    -EINVAL);
	ROW("mmn_sim_latency_lognormal", "p99 == median (valid)",
	    mmn_sim_latency_lognormal(&lat, 20, 20, 1), 0);
	ROW("mmn_sim_latency_draw", "p99 == median: the median", mmn_sim_latency_draw(&lat), 20);

	mmn_sim_fence_init(&fence);
	ROW("mmn_sim_fence_arm", "signalled (valid)",
	    mmn_sim_fence_arm(&fence, mmn_sim_now_ns() + 60000000000ull, NULL), 0);
	ROW("mmn_sim_fence_arm", "still pending", mmn_sim_fence_arm(&fence, 0, NULL), -EBUSY);
	ROW("mmn_sim_fence_is_signalled", "pending, deadline in 60 s",
	    mmn_sim_fence_is_signalled(&fence), false);
	ROW("mmn_sim_fence_wait_until", "limit already passed",
	    mmn_sim_fence_wait_until(&fence, 0), -ETIMEDOUT);
	mmn_sim_fence_expedite(&fence);
	ROW("mmn_sim_fence_wait_until", "after expedite (valid)",
	    mmn_sim_fence_wait_until(&fence, mmn_sim_now_ns() + 10000000000ull), 0);

	ROW("mmn_sim_pool_init", "pool NULL", mmn_sim_pool_init(NULL, 4, 8), -EINVAL);
	ROW("mmn_sim_pool_init", "obj_size 0", mmn_sim_pool_init(&pool, 4, 0), -EINVAL);
	ROW("mmn_sim_pool_init", "nr 0 (valid: always empty)", mmn_sim_pool_init(&pool, 0, 8), 0);
	ROW("mmn_sim_pool_get", "nr 0: NULL", mmn_sim_pool_get(&pool) == NULL, true);
	ROW("mmn_sim_pool_available", "nr 0: 0", mmn_sim_pool_available(&pool), 0);
	mmn_sim_pool_fini(&pool);
	ROW_VOID("mmn_sim_pool_fini", "pool NULL", mmn_sim_pool_fini(NULL), true, "no crash");
}

TEST(sim_bad_input_devices)
{
	struct mmn_sim_engine *eng[MMN_SIM_MAX_ENGINES], *extra = NULL;
	struct mmn_sim_dev_config cfg = { .id = 3, .mode = MMN_SIM_DEV_FAULT };
	struct mmn_sim_dev *dev = NULL, *unset = (struct mmn_sim_dev *)&cfg;

	assert_eq(mmn_sim_latency_fixed(&cfg.tlb_latency, 0), 0);
	assert_eq(mmn_sim_latency_fixed(&cfg.preempt_latency, 0), 0);
	ROW("mmn_sim_dev_new", "cfg NULL", mmn_sim_dev_new(NULL, &unset), -EINVAL);
	ROW("mmn_sim_dev_new", "devp NULL", mmn_sim_dev_new(&cfg, NULL), -EINVAL);
	cfg.mode = (enum mmn_sim_dev_mode)7;
	ROW("mmn_sim_dev_new", "mode 7 (unknown)", mmn_sim_dev_new(&cfg, &unset), -EINVAL);
	cfg.mode = (enum mmn_sim_dev_mode)-1;
	ROW("mmn_sim_dev_new", "mode -1 (unknown)", mmn_sim_dev_new(&cfg, &unset), -EINVAL);
	expect_eq_ptr(unset, (struct mmn_sim_dev *)&cfg);
	cfg.mode = MMN_SIM_DEV_PREEMPT;
	ROW("mmn_sim_dev_new", "preempt mode (valid)", mmn_sim_dev_new(&cfg, &dev), 0);
	ROW("mmn_sim_dev_destroy", "dev NULL", mmn_sim_dev_destroy(NULL), 0);

	ROW("mmn_sim_engine_new", "dev NULL", mmn_sim_engine_new(NULL, &extra), -EINVAL);
	ROW("mmn_sim_engine_new", "engp NULL", mmn_sim_engine_new(dev, NULL), -EINVAL);
	for (int i = 0; i < MMN_SIM_MAX_ENGINES; i++)
		assert_eq(mmn_sim_engine_new(dev, &eng[i]), 0);
	ROW("mmn_sim_engine_new", "MMN_SIM_MAX_ENGINES + 1", mmn_sim_engine_new(dev, &extra),
	    -ENOSPC);
	expect_eq_ptr(extra, NULL);
	ROW("mmn_sim_engine_stop", "not running", mmn_sim_engine_stop(eng[0]), -EINVAL);
	ROW("mmn_sim_engine_index", "last engine (valid)",
	    mmn_sim_engine_index(eng[MMN_SIM_MAX_ENGINES - 1]), MMN_SIM_MAX_ENGINES - 1);
	ROW("mmn_sim_engine_dev", "(valid)", mmn_sim_engine_dev(eng[0]) == dev, true);
	ROW("mmn_sim_dev_id", "(valid)", mmn_sim_dev_id(dev), 3);
	ROW("mmn_sim_dev_destroy", "idle, no bindings (valid)", mmn_sim_dev_destroy(dev), 0);
}

TEST(sim_bad_input_drivers)
{
	struct mmn_sim_driver_config dcfg = { .kind = MMN_SIM_DRIVER_USERPTR };
	struct mmn_sim_dev_config cfg = { .id = 1, .mode = MMN_SIM_DEV_FAULT };
	struct mmn_sim_binding *b = NULL, *b2 = NULL, *unset = NULL;
	struct mmn_sim_driver *drv = NULL, *dunset = NULL;
	struct mmn_sim_umem *um = NULL, *uunset = NULL;
	struct mmn_sim_binding_stats bst;
	struct mmn_sim_dev *dev;
	struct mmn_mm *mm;
	unsigned long base;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_sim_latency_fixed(&cfg.tlb_latency, 0), 0);
	assert_eq(mmn_sim_latency_fixed(&cfg.preempt_latency, 0), 0);

	ROW("mmn_sim_umem_new", "mm NULL", mmn_sim_umem_new(NULL, 4, &uunset), -EINVAL);
	ROW("mmn_sim_umem_new", "npages 0", mmn_sim_umem_new(mm, 0, &uunset), -EINVAL);
	ROW("mmn_sim_umem_new", "ump NULL", mmn_sim_umem_new(mm, 4, NULL), -EINVAL);
	expect_eq_ptr(uunset, NULL);
	ROW("mmn_sim_umem_new", "4 pages (valid)", mmn_sim_umem_new(mm, 4, &um), 0);
	base = mmn_sim_umem_base(um);
	ROW_VOID("mmn_sim_umem_destroy", "um NULL", mmn_sim_umem_destroy(NULL), true, "no crash");
	cfg.lookup = mmn_sim_umem_lookup;
	cfg.lookup_arg = um;
	assert_eq(mmn_sim_dev_new(&cfg, &dev), 0);

	ROW("mmn_sim_driver_new", "mm NULL", mmn_sim_driver_new(NULL, &dcfg, &dunset), -EINVAL);
	ROW("mmn_sim_driver_new", "cfg NULL", mmn_sim_driver_new(mm, NULL, &dunset), -EINVAL);
	ROW("mmn_sim_driver_new", "drvp NULL", mmn_sim_driver_new(mm, &dcfg, NULL), -EINVAL);
	dcfg.kind = (enum mmn_sim_driver_kind)9;
	ROW("mmn_sim_driver_new", "kind 9 (unknown)", mmn_sim_driver_new(mm, &dcfg, &dunset),
	    -EINVAL);
	expect_eq_ptr(dunset, NULL);
	dcfg.kind = MMN_SIM_DRIVER_SVM;
	ROW("mmn_sim_driver_new", "svm, pool 0 (valid)", mmn_sim_driver_new(mm, &dcfg, &drv), 0);
	ROW("mmn_sim_driver_destroy", "drv NULL", mmn_sim_driver_destroy(NULL), 0);

	ROW("mmn_sim_bind", "drv NULL", mmn_sim_bind(NULL, dev, base, PG, &unset), -EINVAL);
	ROW("mmn_sim_bind", "dev NULL", mmn_sim_bind(drv, NULL, base, PG, &unset), -EINVAL);
	ROW("mmn_sim_bind", "bp NULL", mmn_sim_bind(drv, dev, base, PG, NULL), -EINVAL);
	ROW("mmn_sim_bind", "length 0", mmn_sim_bind(drv, dev, base, 0, &unset), -EINVAL);
	ROW("mmn_sim_bind", "start not page aligned",
	    mmn_sim_bind(drv, dev, base + 1, PG, &unset), -EINVAL);
	ROW("mmn_sim_bind", "length not a page multiple",
	    mmn_sim_bind(drv, dev, base, PG + 1, &unset), -EINVAL);
	ROW("mmn_sim_bind", "wraps: start -PG, length 2 pages",
	    mmn_sim_bind(drv, dev, -PG, 2 * PG, &unset), -EINVAL);
	expect_eq_ptr(unset, NULL);
	ROW("mmn_sim_bind", "pages 0-1 of the window (valid)",
	    mmn_sim_bind(drv, dev, base, 2 * PG, &b), 0);
	ROW("mmn_sim_bind", "overlaps it (page 1-2)",
	    mmn_sim_bind(drv, dev, base + PG, 2 * PG, &unset), -EEXIST);
	expect_eq_ptr(unset, NULL);
	ROW("mmn_sim_binding_fault", "va below the binding",
	    mmn_sim_binding_fault(b, base - 1), -EINVAL);
	ROW("mmn_sim_binding_fault", "va one past the binding",
	    mmn_sim_binding_fault(b, base + 2 * PG), -EINVAL);
	ROW("mmn_sim_unbind", "b NULL", mmn_sim_unbind(NULL), -EINVAL);
	ROW("mmn_sim_driver_destroy", "a binding left", mmn_sim_driver_destroy(drv), -EBUSY);
	ROW("mmn_sim_dev_destroy", "a binding left", mmn_sim_dev_destroy(dev), -EBUSY);

	ROW("mmn_sim_umem_munmap", "um NULL", mmn_sim_umem_munmap(NULL, base, PG), -EINVAL);
	ROW("mmn_sim_umem_munmap", "len 0", mmn_sim_umem_munmap(um, base, 0), -EINVAL);
	ROW("mmn_sim_umem_munmap", "below the window", mmn_sim_umem_munmap(um, base - PG, PG),
	    -EINVAL);
	ROW("mmn_sim_umem_munmap", "past the window", mmn_sim_umem_munmap(um, base, 5 * PG),
	    -EINVAL);
	ROW("mmn_sim_umem_munmap", "unaligned addr", mmn_sim_umem_munmap(um, base + 8, PG),
	    -EINVAL);
	ROW("mmn_sim_umem_mmap", "past the window", mmn_sim_umem_mmap(um, base + 4 * PG, PG),
	    -EINVAL);
	ROW("mmn_sim_umem_dontneed", "len ULONG_MAX (wraps)",
	    mmn_sim_umem_dontneed(um, base, -PG), -EINVAL);
	ROW("mmn_sim_umem_protect", "len not a page multiple",
	    mmn_sim_umem_protect(um, base, PG / 2), -EINVAL);
	ROW("mmn_sim_umem_mremap", "from and to overlap",
	    mmn_sim_umem_mremap(um, base, 2 * PG, base + PG), -EINVAL);
	ROW("mmn_sim_umem_mremap", "to past the window",
	    mmn_sim_umem_mremap(um, base, PG, base + 4 * PG), -EINVAL);
	ROW("mmn_sim_umem_lookup", "va outside the window",
	    mmn_sim_umem_lookup(um, base + 4 * PG, false, &(void *){ NULL }, &(uint64_t){ 0 }),
	    -EFAULT);

	/* State intact: nothing was invalidated, the binding still faults in. */
	{
		struct mmn_sim_umem_stats ust;

		mmn_sim_umem_get_stats(um, &ust);
		expect_eq(ust.invalidations, 0);
		expect_eq(ust.munmaps + ust.mmaps + ust.dontneeds + ust.mremaps + ust.protects, 0);
	}
	ROW("mmn_sim_binding_populate", "after the refusals (valid)", mmn_sim_binding_populate(b),
	    0);
	mmn_sim_binding_get_stats(b, &bst);
	expect_eq(bst.pages, 2);
	expect_eq(bst.invalidations, 0);
	ROW("mmn_sim_umem_protect", "page 0 (valid)", mmn_sim_umem_protect(um, base, PG), 0);
	ROW("mmn_sim_unbind", "bound (valid)", mmn_sim_unbind(b), 0);
	ROW("mmn_sim_bind", "page 1-2, after the unbind (valid)",
	    mmn_sim_bind(drv, dev, base + PG, 2 * PG, &b2), 0);
	ROW("mmn_sim_unbind", "bound (valid)", mmn_sim_unbind(b2), 0);
	ROW("mmn_sim_driver_destroy", "no bindings (valid)", mmn_sim_driver_destroy(drv), 0);
	ROW("mmn_sim_dev_destroy", "no bindings (valid)", mmn_sim_dev_destroy(dev), 0);
	mmn_sim_umem_destroy(um);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	printf("  %-36s %-46s    %-6s want %-12s\n", "function", "input", "got", "");
	RUN(sim_bad_input_latency_fence_pool);
	RUN(sim_bad_input_devices);
	RUN(sim_bad_input_drivers);
	return test_report();
}
