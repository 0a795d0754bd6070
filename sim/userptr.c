// SPDX-License-Identifier: MIT
/*
 * The userptr driver: the xe userptr pattern (drivers/gpu/drm/xe/xe_userptr.c
 * after the two-pass conversion), one binding = one user range with its
 * finish object embedded.
 *
 * First pass (invalidate_start), under the device's notifier lock:
 *   non-blockable range -> return false, nothing done;
 *   set_seq, mark for repin, zap the PTEs;
 *   finish_inuse (an invalidation of this binding on another thread still has
 *   its finish pending) -> preempt + TLB-invalidate + wait + unmap right here,
 *   return no finish (xe's synchronous fallback);
 *   else start the preemption (preempt-fence mode, busy engines) and the TLB
 *   invalidation (once anything was installed); if neither was needed, unmap
 *   now and return no finish; else set finish_inuse and return the embedded
 *   finish.
 * Second pass (invalidate_finish), under the lock: wait both fences, unmap,
 * clear finish_inuse.
 *
 * Unlike xe in preempt-fence mode, the TLB invalidation is started together
 * with the preemption instead of after it: the PTEs are zapped first, so no
 * engine can cache the range again while its preemption is in flight.
 *
 * The single-pass variant does the same work in ops.invalidate, waiting
 * before it returns, so N devices cost N device latencies.
 */
#include "sim_internal.h"

/* Everything in the first pass: used by the fallback and by single pass. */
static void userptr_inval_sync_locked(struct mmn_sim_binding *b, unsigned long start,
				      unsigned long end)
{
	struct mmn_sim_op preempt, tlb;
	bool preempting, flushing;

	mmn_sim_fence_init(&preempt.fence);
	mmn_sim_fence_init(&tlb.fence);
	preempting = sim_submit_preempt_locked(b, &preempt);
	flushing = sim_submit_tlb_locked(b, &tlb, start, end);
	if (preempting)
		sim_wait_op(b, &preempt);
	if (flushing)
		sim_wait_op(b, &tlb);
	sim_unmap_locked(b, start, end);
}

static bool userptr_invalidate_start(struct mmn_interval_notifier *sub,
				     const struct mmn_range *range,
				     unsigned long cur_seq, struct mmn_finish **finish)
{
	struct mmn_sim_binding *b;
	unsigned long start, end;

	if (!sim_pass1_begin_lock(sub, range, cur_seq, true, &b, &start, &end))
		return false;
	if (b->finish_inuse) {
		/* Another invocation owns the embedded finish: do it all now. */
		bstat_inc(b, sync_fallbacks);
		sim_trace(b, MMN_SIM_EV_SYNC_FALLBACK, start, end);
		userptr_inval_sync_locked(b, start, end);
		return sim_pass1_done_unlock(b, start, end);
	}
	b->preempt_pending = sim_submit_preempt_locked(b, &b->preempt_op);
	b->tlb_pending = sim_submit_tlb_locked(b, &b->tlb_op, start, end);
	if (!b->preempt_pending && !b->tlb_pending) {
		/* Nothing in flight (xe: all fences already signalled). */
		sim_unmap_locked(b, start, end);
		return sim_pass1_done_unlock(b, start, end);
	}
	b->finish_inuse = true;
	b->inval_start = start;
	b->inval_end = end;
	bstat_inc(b, deferred);
	pthread_mutex_unlock(&b->dev->notifier_lock);
	sim_trace(b, MMN_SIM_EV_DEFER, start, end);
	*finish = &b->finish;
	return true;
}

static void userptr_invalidate_finish(struct mmn_finish *finish)
{
	struct mmn_sim_binding *b = mmn_container_of(finish, struct mmn_sim_binding, finish);
	struct mmn_sim_dev *dev = b->dev;

	/* xe holds the notifier lock for writing across these waits. */
	pthread_mutex_lock(&dev->notifier_lock);
	bstat_inc(b, finishes);
	sim_trace(b, MMN_SIM_EV_FINISH, b->inval_start, b->inval_end);
	if (b->preempt_pending)
		sim_wait_op(b, &b->preempt_op);
	if (b->tlb_pending)
		sim_wait_op(b, &b->tlb_op);
	b->preempt_pending = false;
	b->tlb_pending = false;
	sim_unmap_locked(b, b->inval_start, b->inval_end);
	b->finish_inuse = false;
	pthread_mutex_unlock(&dev->notifier_lock);
}

static bool userptr_invalidate(struct mmn_interval_notifier *sub,
			       const struct mmn_range *range, unsigned long cur_seq)
{
	return sim_invalidate_single(sub, range, cur_seq, true, userptr_inval_sync_locked);
}

const struct mmn_interval_notifier_ops sim_userptr_ops = {
	.invalidate_start = userptr_invalidate_start,
	.invalidate_finish = userptr_invalidate_finish,
};

const struct mmn_interval_notifier_ops sim_userptr_single_ops = {
	.invalidate = userptr_invalidate,
};
