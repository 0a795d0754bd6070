// SPDX-License-Identifier: MIT
/*
 * What the two driver patterns share: driver instances, bindings (an
 * interval notifier plus the mirror of its range on one device), the device
 * fault path with the kernel's collision-retry loop, the teardown helpers the
 * notifier callbacks use, tracing and counters. The callbacks themselves are
 * in userptr.c and svm.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* Collisions in a row before the fault path gives up with -EBUSY. */
#define FAULT_MAX_RETRIES 100000
/* Default svm chunk: pages populated per fault. */
#define SVM_DEFAULT_CHUNK 8

static const char *const event_names[MMN_SIM_EV_NR] = {
	[MMN_SIM_EV_START] = "start",
	[MMN_SIM_EV_REFUSED] = "refused",
	[MMN_SIM_EV_SET_SEQ] = "set_seq",
	[MMN_SIM_EV_REPIN] = "repin",
	[MMN_SIM_EV_ZAP] = "zap",
	[MMN_SIM_EV_SYNC_FALLBACK] = "sync_fallback",
	[MMN_SIM_EV_POOL_EMPTY] = "pool_empty",
	[MMN_SIM_EV_POOL_GET] = "pool_get",
	[MMN_SIM_EV_PREEMPT_SUBMIT] = "preempt_submit",
	[MMN_SIM_EV_TLB_SUBMIT] = "tlb_submit",
	[MMN_SIM_EV_PREEMPT_WAIT] = "preempt_wait",
	[MMN_SIM_EV_TLB_WAIT] = "tlb_wait",
	[MMN_SIM_EV_UNMAP] = "unmap",
	[MMN_SIM_EV_DEFER] = "defer",
	[MMN_SIM_EV_DONE] = "done",
	[MMN_SIM_EV_FINISH] = "finish",
	[MMN_SIM_EV_POOL_PUT] = "pool_put",
	[MMN_SIM_EV_FAULT] = "fault",
	[MMN_SIM_EV_FAULT_RETRY] = "fault_retry",
	[MMN_SIM_EV_INSTALL] = "install",
};

const char *mmn_sim_event_name(enum mmn_sim_event_type type)
{
	if ((unsigned int)type >= MMN_SIM_EV_NR)
		return "?";
	return event_names[type];
}

void sim_trace(struct mmn_sim_binding *b, enum mmn_sim_event_type type,
	       unsigned long start, unsigned long end)
{
	const struct mmn_sim_driver_config *cfg = &b->drv->cfg;
	struct mmn_sim_event ev = {
		.type = type,
		.dev_id = b->dev->cfg.id,
		.binding_id = b->id,
		.start = start,
		.end = end,
	};

	if (cfg->trace)
		cfg->trace(cfg->trace_arg, &ev);
}

void sim_clamp(const struct mmn_sim_binding *b, const struct mmn_range *range,
	       unsigned long *start, unsigned long *end)
{
	*start = range->start > b->start ? range->start : b->start;
	*end = range->end < b->end ? range->end : b->end;
}

bool sim_pass1_begin_lock(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq, bool repin, struct mmn_sim_binding **bp,
			  unsigned long *start, unsigned long *end)
{
	struct mmn_sim_binding *b = mmn_container_of(sub, struct mmn_sim_binding, notifier);

	*bp = b;
	if (!mmn_range_blockable(range)) {
		bstat_inc(b, refused);
		sim_trace(b, MMN_SIM_EV_REFUSED, range->start, range->end);
		return false;
	}
	sim_clamp(b, range, start, end);
	pthread_mutex_lock(&b->dev->notifier_lock);
	sim_trace(b, MMN_SIM_EV_START, range->start, range->end);
	mmn_interval_set_seq(&b->notifier, cur_seq);
	sim_trace(b, MMN_SIM_EV_SET_SEQ, *start, *end);
	bstat_inc(b, invalidations);
	if (repin) {
		b->needs_repin = true;
		sim_trace(b, MMN_SIM_EV_REPIN, *start, *end);
	}
	sim_zap_locked(b, *start, *end);
	return true;
}

bool sim_pass1_done_unlock(struct mmn_sim_binding *b, unsigned long start, unsigned long end)
{
	pthread_mutex_unlock(&b->dev->notifier_lock);
	sim_trace(b, MMN_SIM_EV_DONE, start, end);
	return true;
}

bool sim_invalidate_single(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq, bool repin,
			   void (*sync_locked)(struct mmn_sim_binding *b, unsigned long start,
					       unsigned long end))
{
	struct mmn_sim_binding *b;
	unsigned long start, end;

	if (!sim_pass1_begin_lock(sub, range, cur_seq, repin, &b, &start, &end))
		return false;
	sync_locked(b, start, end);
	return sim_pass1_done_unlock(b, start, end);
}

/* Clear the device PTEs of [start, end); engines that walk now will fault. */
void sim_zap_locked(struct mmn_sim_binding *b, unsigned long start, unsigned long end)
{
	unsigned long first = (start - b->start) >> SIM_PAGE_SHIFT;
	unsigned long last = (end - b->start + SIM_PAGE_SIZE - 1) >> SIM_PAGE_SHIFT;

	for (unsigned long i = first; i < last; i++)
		__atomic_store_n(&b->pte_host[i], NULL, __ATOMIC_RELEASE);
	sim_trace(b, MMN_SIM_EV_ZAP, start, end);
}

/* Tear the pages of [start, end) down: the one teardown of an invocation. */
void sim_unmap_locked(struct mmn_sim_binding *b, unsigned long start, unsigned long end)
{
	unsigned long first = (start - b->start) >> SIM_PAGE_SHIFT;
	unsigned long last = (end - b->start + SIM_PAGE_SIZE - 1) >> SIM_PAGE_SHIFT;

	for (unsigned long i = first; i < last; i++) {
		b->pages[i] = NULL;
		b->pfns[i] = 0;
	}
	bstat_inc(b, teardowns);
	sim_trace(b, MMN_SIM_EV_UNMAP, start, end);
}

/*
 * Start a TLB invalidation when the device may hold translations of the
 * binding, that is once anything was ever installed (xe: initial_bind). Not
 * only when this zap found a PTE: an earlier invocation may have zapped them
 * and still be waiting for its own flush, and this invocation must not
 * complete before the engines have dropped the range.
 */
bool sim_submit_tlb_locked(struct mmn_sim_binding *b, struct mmn_sim_op *op,
			   unsigned long start, unsigned long end)
{
	if (!b->initial_bind)
		return false;
	if ((b->drv->cfg.bugs & MMN_SIM_BUG_NO_WAIT) &&
	    !mmn_sim_fence_is_signalled(&op->fence))
		return false;	/* the injected bug left it pending */
	mmn_sim_tlb_inval_submit(b->dev, op, start, end);
	sim_trace(b, MMN_SIM_EV_TLB_SUBMIT, start, end);
	return true;
}

/* Start preempting the device's busy engines (preempt-fence mode only). */
bool sim_submit_preempt_locked(struct mmn_sim_binding *b, struct mmn_sim_op *op)
{
	if (b->dev->cfg.mode != MMN_SIM_DEV_PREEMPT)
		return false;
	if ((b->drv->cfg.bugs & MMN_SIM_BUG_NO_WAIT) &&
	    !mmn_sim_fence_is_signalled(&op->fence))
		return false;
	if (mmn_sim_preempt_submit(b->dev, op) <= 0)
		return false;
	sim_trace(b, MMN_SIM_EV_PREEMPT_SUBMIT, 0, 0);
	return true;
}

void sim_wait_op(struct mmn_sim_binding *b, struct mmn_sim_op *op)
{
	sim_trace(b, op->kind == MMN_SIM_OP_TLB_INVAL ? MMN_SIM_EV_TLB_WAIT :
		  MMN_SIM_EV_PREEMPT_WAIT, op->start, op->end);
	if (!(b->drv->cfg.bugs & MMN_SIM_BUG_NO_WAIT))
		mmn_sim_op_wait(op);
}

/* ---- drivers ------------------------------------------------------------- */

int mmn_sim_driver_new(struct mmn_mm *mm, const struct mmn_sim_driver_config *cfg,
		       struct mmn_sim_driver **drvp)
{
	struct mmn_sim_driver *drv;
	int ret;

	if (!mm || !cfg || !drvp || (cfg->kind != MMN_SIM_DRIVER_USERPTR &&
				     cfg->kind != MMN_SIM_DRIVER_SVM))
		return -EINVAL;
	drv = calloc(1, sizeof(*drv));
	if (!drv)
		return -ENOMEM;
	drv->mm = mm;
	drv->cfg = *cfg;
	if (!drv->cfg.chunk_pages)
		drv->cfg.chunk_pages = SVM_DEFAULT_CHUNK;
	if (cfg->kind == MMN_SIM_DRIVER_USERPTR) {
		drv->ops = cfg->single_pass ? &sim_userptr_single_ops : &sim_userptr_ops;
	} else {
		drv->ops = cfg->single_pass ? &sim_svm_single_ops : &sim_svm_ops;
		ret = mmn_sim_pool_init(&drv->pool, cfg->single_pass ? 0 : cfg->pool_size,
					sim_svm_finish_size());
		if (ret) {
			free(drv);
			return ret;
		}
	}
	pthread_mutex_init(&drv->lock, NULL);
	*drvp = drv;
	return 0;
}

int mmn_sim_driver_destroy(struct mmn_sim_driver *drv)
{
	unsigned int n;

	if (!drv)
		return 0;
	pthread_mutex_lock(&drv->lock);
	n = drv->nr_bindings;
	pthread_mutex_unlock(&drv->lock);
	if (n)
		return -EBUSY;
	mmn_sim_pool_fini(&drv->pool);
	pthread_mutex_destroy(&drv->lock);
	free(drv);
	return 0;
}

static void binding_free(struct mmn_sim_binding *b)
{
	free(b->pte_host);
	free(b->pte_pfn);
	free(b->pages);
	free(b->pfns);
	free(b);
}

int mmn_sim_bind(struct mmn_sim_driver *drv, struct mmn_sim_dev *dev,
		 unsigned long start, unsigned long length,
		 struct mmn_sim_binding **bp)
{
	struct mmn_sim_binding *b;
	int ret;

	if (!drv || !dev || !bp || !length || (start | length) & ~SIM_PAGE_MASK ||
	    start + length < start)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->drv = drv;
	b->dev = dev;
	b->start = start;
	b->end = start + length;
	b->npages = length >> SIM_PAGE_SHIFT;
	b->pte_host = calloc(b->npages, sizeof(*b->pte_host));
	b->pte_pfn = calloc(b->npages, sizeof(*b->pte_pfn));
	b->pages = calloc(b->npages, sizeof(*b->pages));
	b->pfns = calloc(b->npages, sizeof(*b->pfns));
	if (!b->pte_host || !b->pte_pfn || !b->pages || !b->pfns) {
		binding_free(b);
		return -ENOMEM;
	}
	mmn_sim_fence_init(&b->preempt_op.fence);
	mmn_sim_fence_init(&b->tlb_op.fence);
	pthread_mutex_lock(&drv->lock);
	b->id = drv->next_id++;
	drv->nr_bindings++;
	pthread_mutex_unlock(&drv->lock);

	/* Notifier first: an engine that finds the binding may fault at once. */
	ret = mmn_interval_notifier_insert(&b->notifier, drv->mm, start, length, drv->ops);
	if (!ret) {
		ret = sim_pt_insert(dev, b);
		if (ret)
			mmn_interval_notifier_remove(&b->notifier);
	}
	if (ret) {
		pthread_mutex_lock(&drv->lock);
		drv->nr_bindings--;
		pthread_mutex_unlock(&drv->lock);
		binding_free(b);
		return ret;
	}
	*bp = b;
	return 0;
}

int mmn_sim_unbind(struct mmn_sim_binding *b)
{
	struct mmn_sim_driver *drv;
	int ret;

	if (!b)
		return -EINVAL;
	if (sim_dev_engines_running(b->dev))
		return -EBUSY;
	drv = b->drv;
	/* On return no callback runs or will run: every finish is done. */
	ret = mmn_interval_notifier_remove(&b->notifier);
	if (ret)
		return ret;
	sim_pt_remove(b->dev, b);
	sim_dev_flush_tlbs(b->dev, b->start, b->end);
	pthread_mutex_lock(&drv->lock);
	drv->nr_bindings--;
	pthread_mutex_unlock(&drv->lock);
	binding_free(b);
	return 0;
}

/* ---- the fault path ------------------------------------------------------ */

struct fault_page {
	void *host;
	uint64_t pfn;
	bool ok;
};

int mmn_sim_binding_fault(struct mmn_sim_binding *b, unsigned long va)
{
	struct mmn_sim_driver *drv = b->drv;
	struct mmn_sim_dev *dev = b->dev;
	unsigned long first, last, fidx;
	struct fault_page *pg;
	int ret = 0;

	if (va < b->start || va >= b->end)
		return -EINVAL;
	fidx = (va - b->start) >> SIM_PAGE_SHIFT;
	if (drv->cfg.kind == MMN_SIM_DRIVER_USERPTR) {
		/* Revalidate the whole userptr, as xe's repin does. */
		first = 0;
		last = b->npages;
	} else {
		/* drm_gpusvm: populate the aligned chunk around the fault. */
		first = fidx - fidx % drv->cfg.chunk_pages;
		last = first + drv->cfg.chunk_pages;
		if (last > b->npages)
			last = b->npages;
	}
	pg = malloc((last - first) * sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	bstat_inc(b, faults);
	sim_trace(b, MMN_SIM_EV_FAULT, b->start + (first << SIM_PAGE_SHIFT),
		  b->start + (last << SIM_PAGE_SHIFT));

	for (unsigned long tries = 0;; tries++) {
		unsigned long seq = mmn_interval_read_begin(&b->notifier);

		for (unsigned long i = first; i < last; i++) {
			struct fault_page *p = &pg[i - first];

			p->ok = !dev->cfg.lookup(dev->cfg.lookup_arg,
						 b->start + (i << SIM_PAGE_SHIFT), false,
						 &p->host, &p->pfn);
		}
		if (!pg[fidx - first].ok) {
			ret = -EFAULT;
			break;
		}
		pthread_mutex_lock(&dev->notifier_lock);
		if (!(drv->cfg.bugs & MMN_SIM_BUG_NO_RETRY) &&
		    mmn_interval_read_retry(&b->notifier, seq)) {
			pthread_mutex_unlock(&dev->notifier_lock);
			bstat_inc(b, fault_retries);
			sim_trace(b, MMN_SIM_EV_FAULT_RETRY, va, va + 1);
			if (tries == FAULT_MAX_RETRIES) {
				ret = -EBUSY;
				break;
			}
			continue;
		}
		for (unsigned long i = first; i < last; i++) {
			struct fault_page *p = &pg[i - first];

			if (!p->ok)
				continue;
			b->pages[i] = p->host;
			b->pfns[i] = p->pfn;
			/* pfn first; the release store of the host publishes both. */
			__atomic_store_n(&b->pte_pfn[i], p->pfn, __ATOMIC_RELEASE);
			__atomic_store_n(&b->pte_host[i], p->host, __ATOMIC_RELEASE);
		}
		b->initial_bind = true;
		b->needs_repin = false;
		bstat_inc(b, installs);
		sim_trace(b, MMN_SIM_EV_INSTALL, b->start + (first << SIM_PAGE_SHIFT),
			  b->start + (last << SIM_PAGE_SHIFT));
		pthread_mutex_unlock(&dev->notifier_lock);
		break;
	}
	free(pg);
	return ret;
}

int mmn_sim_binding_populate(struct mmn_sim_binding *b)
{
	unsigned long step = b->drv->cfg.kind == MMN_SIM_DRIVER_USERPTR ?
			     b->npages : b->drv->cfg.chunk_pages;

	for (unsigned long i = 0; i < b->npages; i += step) {
		int ret = mmn_sim_binding_fault(b, b->start + (i << SIM_PAGE_SHIFT));

		if (ret)
			return ret;
	}
	return 0;
}

/* ---- counters ------------------------------------------------------------ */

static void counters_read(const struct sim_binding_counters *c,
			  struct mmn_sim_binding_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->invalidations = sim_load_relaxed(&c->invalidations);
	st->refused = sim_load_relaxed(&c->refused);
	st->teardowns = sim_load_relaxed(&c->teardowns);
	st->deferred = sim_load_relaxed(&c->deferred);
	st->finishes = sim_load_relaxed(&c->finishes);
	st->sync_fallbacks = sim_load_relaxed(&c->sync_fallbacks);
	st->pool_fallbacks = sim_load_relaxed(&c->pool_fallbacks);
	st->faults = sim_load_relaxed(&c->faults);
	st->fault_retries = sim_load_relaxed(&c->fault_retries);
	st->installs = sim_load_relaxed(&c->installs);
}

void mmn_sim_binding_get_stats(struct mmn_sim_binding *b,
			       struct mmn_sim_binding_stats *st)
{
	pthread_mutex_lock(&b->dev->notifier_lock);
	counters_read(&b->c, st);
	for (unsigned long i = 0; i < b->npages; i++)
		st->pages += b->pages[i] != NULL;
	st->finish_inuse = b->finish_inuse;
	pthread_mutex_unlock(&b->dev->notifier_lock);
}

void mmn_sim_driver_get_stats(struct mmn_sim_driver *drv,
			      struct mmn_sim_binding_stats *st)
{
	counters_read(&drv->c, st);
}

unsigned int mmn_sim_binding_id(const struct mmn_sim_binding *b)
{
	return b->id;
}

struct mmn_interval_notifier *mmn_sim_binding_notifier(struct mmn_sim_binding *b)
{
	return &b->notifier;
}
