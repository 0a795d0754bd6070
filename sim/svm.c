// SPDX-License-Identifier: MIT
/*
 * The svm driver: the xe SVM / drm_gpusvm two-pass proof of concept (Aug
 * 2025). A binding is a gpusvm notifier over a region whose pages are
 * populated on fault, a chunk at a time.
 *
 * First pass (invalidate_start), under the device's notifier lock:
 *   non-blockable range -> return false, nothing done;
 *   set_seq, zap the PTEs of the range (clamped to the binding);
 *   nothing ever installed -> unmap (no TLB to flush), no finish;
 *   take a finish container from the driver's fixed pool (never allocates,
 *   never blocks): got one -> start the TLB invalidation into its fence, keep
 *   the clamped range in it, return its finish;
 *   pool empty -> TLB-invalidate, wait and unmap right here (the single-pass
 *   fallback), counted in pool_fallbacks.
 * Second pass (invalidate_finish): wait the fence, take the lock, unmap the
 * container's range, put the container back.
 *
 * Every invocation has its own container, so overlapping invalidations on
 * several threads need no "in use" flag (docs/kernel-map.md D9).
 */
#include "sim_internal.h"

struct svm_finish {
	struct mmn_finish finish;
	struct mmn_sim_op tlb;
	struct mmn_sim_binding *b;
	unsigned long start;
	unsigned long end;
};

size_t sim_svm_finish_size(void)
{
	return sizeof(struct svm_finish);
}

static void svm_inval_sync_locked(struct mmn_sim_binding *b, unsigned long start,
				  unsigned long end)
{
	struct mmn_sim_op tlb;

	mmn_sim_fence_init(&tlb.fence);
	if (sim_submit_tlb_locked(b, &tlb, start, end))
		sim_wait_op(b, &tlb);
	sim_unmap_locked(b, start, end);
}

static bool svm_invalidate_start(struct mmn_interval_notifier *sub,
				 const struct mmn_range *range, unsigned long cur_seq,
				 struct mmn_finish **finish)
{
	struct mmn_sim_binding *b;
	struct svm_finish *f;
	unsigned long start, end;

	if (!sim_pass1_begin_lock(sub, range, cur_seq, false, &b, &start, &end))
		return false;
	if (!b->initial_bind) {
		sim_unmap_locked(b, start, end);
		return sim_pass1_done_unlock(b, start, end);
	}
	f = mmn_sim_pool_get(&b->drv->pool);
	if (!f) {
		bstat_inc(b, pool_fallbacks);
		sim_trace(b, MMN_SIM_EV_POOL_EMPTY, start, end);
		svm_inval_sync_locked(b, start, end);
		return sim_pass1_done_unlock(b, start, end);
	}
	sim_trace(b, MMN_SIM_EV_POOL_GET, start, end);
	f->b = b;
	f->start = start;
	f->end = end;
	if (!sim_submit_tlb_locked(b, &f->tlb, start, end))
		mmn_sim_fence_init(&f->tlb.fence);	/* injected bug only */
	bstat_inc(b, deferred);
	pthread_mutex_unlock(&b->dev->notifier_lock);
	sim_trace(b, MMN_SIM_EV_DEFER, start, end);
	*finish = &f->finish;
	return true;
}

static void svm_invalidate_finish(struct mmn_finish *finish)
{
	struct svm_finish *f = mmn_container_of(finish, struct svm_finish, finish);
	struct mmn_sim_binding *b = f->b;

	bstat_inc(b, finishes);
	sim_trace(b, MMN_SIM_EV_FINISH, f->start, f->end);
	sim_wait_op(b, &f->tlb);
	pthread_mutex_lock(&b->dev->notifier_lock);
	sim_unmap_locked(b, f->start, f->end);
	pthread_mutex_unlock(&b->dev->notifier_lock);
	sim_trace(b, MMN_SIM_EV_POOL_PUT, f->start, f->end);
	mmn_sim_pool_put(&b->drv->pool, f);
}

static bool svm_invalidate(struct mmn_interval_notifier *sub,
			   const struct mmn_range *range, unsigned long cur_seq)
{
	return sim_invalidate_single(sub, range, cur_seq, false, svm_inval_sync_locked);
}

const struct mmn_interval_notifier_ops sim_svm_ops = {
	.invalidate_start = svm_invalidate_start,
	.invalidate_finish = svm_invalidate_finish,
};

const struct mmn_interval_notifier_ops sim_svm_single_ops = {
	.invalidate = svm_invalidate,
};
