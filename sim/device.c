// SPDX-License-Identifier: MIT
/*
 * Simulated GPUs: the page-table mirror (the bindings of a device, sorted by
 * address), the engines with their TLBs, and the asynchronous device
 * operations (TLB invalidation, preemption) whose fences signal after the
 * configured latency.
 *
 * An engine access is one critical section under engine->lock: honour a
 * pending preemption (drop the TLB), translate (TLB, else walk the page table;
 * a zapped entry drops the lock and runs the driver fault path, then tries
 * again), then let the job touch memory through the translation. Completing a
 * device operation (the fence's retire function) takes the lock of every
 * engine concerned, so once the fence has signalled no access that used an
 * old translation is still in progress, and the TLBs hold none for the range.
 * The drivers zap PTEs before submitting, so nothing can be cached again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim_internal.h"

/* Fault-path rounds for one access before it is given up as -EBUSY. */
#define ENGINE_MAX_FAULTS 64

static int identity_lookup(void *arg, unsigned long va, bool write, void **host,
			   uint64_t *pfn)
{
	unsigned char vec;

	(void)arg;
	(void)write;
	va &= SIM_PAGE_MASK;
	/* mincore() fails with ENOMEM when nothing is mapped there. */
	if (mincore((void *)va, SIM_PAGE_SIZE, &vec))
		return -EFAULT;
	*host = (void *)va;
	*pfn = va >> SIM_PAGE_SHIFT;
	return 0;
}

int mmn_sim_dev_new(const struct mmn_sim_dev_config *cfg, struct mmn_sim_dev **devp)
{
	struct mmn_sim_dev *dev;

	if (!cfg || !devp || (cfg->mode != MMN_SIM_DEV_FAULT &&
			      cfg->mode != MMN_SIM_DEV_PREEMPT))
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->cfg = *cfg;
	if (!dev->cfg.lookup)
		dev->cfg.lookup = identity_lookup;
	pthread_mutex_init(&dev->notifier_lock, NULL);
	pthread_rwlock_init(&dev->pt_lock, NULL);
	pthread_mutex_init(&dev->engines_lock, NULL);
	*devp = dev;
	return 0;
}

bool sim_dev_engines_running(struct mmn_sim_dev *dev)
{
	uint32_t n = sim_load(&dev->nr_engines);

	for (uint32_t i = 0; i < n; i++)
		if (sim_load(&dev->engines[i]->running))
			return true;
	return false;
}

int mmn_sim_dev_destroy(struct mmn_sim_dev *dev)
{
	uint32_t n;

	if (!dev)
		return 0;
	pthread_rwlock_rdlock(&dev->pt_lock);
	n = dev->nr_bindings;
	pthread_rwlock_unlock(&dev->pt_lock);
	if (n || sim_dev_engines_running(dev))
		return -EBUSY;
	n = sim_load(&dev->nr_engines);
	for (uint32_t i = 0; i < n; i++) {
		pthread_mutex_destroy(&dev->engines[i]->lock);
		free(dev->engines[i]);
	}
	free(dev->bindings);
	pthread_mutex_destroy(&dev->engines_lock);
	pthread_rwlock_destroy(&dev->pt_lock);
	pthread_mutex_destroy(&dev->notifier_lock);
	free(dev);
	return 0;
}

unsigned int mmn_sim_dev_id(const struct mmn_sim_dev *dev)
{
	return dev->cfg.id;
}

/* ---- page table ---------------------------------------------------------- */

/* Index of the first binding whose end is above @va. Caller holds pt_lock. */
static unsigned int pt_search(struct mmn_sim_dev *dev, unsigned long va)
{
	unsigned int lo = 0, hi = dev->nr_bindings;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (dev->bindings[mid]->end <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct mmn_sim_binding *pt_find(struct mmn_sim_dev *dev, unsigned long va)
{
	unsigned int i = pt_search(dev, va);

	if (i < dev->nr_bindings && dev->bindings[i]->start <= va)
		return dev->bindings[i];
	return NULL;
}

int sim_pt_insert(struct mmn_sim_dev *dev, struct mmn_sim_binding *b)
{
	unsigned int i;
	int ret = 0;

	pthread_rwlock_wrlock(&dev->pt_lock);
	i = pt_search(dev, b->start);
	if (i < dev->nr_bindings && dev->bindings[i]->start < b->end) {
		ret = -EEXIST;
		goto out;
	}
	if (dev->nr_bindings == dev->cap_bindings) {
		unsigned int cap = dev->cap_bindings ? 2 * dev->cap_bindings : 8;
		struct mmn_sim_binding **nb = realloc(dev->bindings, cap * sizeof(*nb));

		if (!nb) {
			ret = -ENOMEM;
			goto out;
		}
		dev->bindings = nb;
		dev->cap_bindings = cap;
	}
	memmove(&dev->bindings[i + 1], &dev->bindings[i],
		(dev->nr_bindings - i) * sizeof(*dev->bindings));
	dev->bindings[i] = b;
	dev->nr_bindings++;
out:
	pthread_rwlock_unlock(&dev->pt_lock);
	return ret;
}

void sim_pt_remove(struct mmn_sim_dev *dev, struct mmn_sim_binding *b)
{
	unsigned int i;

	pthread_rwlock_wrlock(&dev->pt_lock);
	i = pt_search(dev, b->start);
	if (i < dev->nr_bindings && dev->bindings[i] == b) {
		memmove(&dev->bindings[i], &dev->bindings[i + 1],
			(dev->nr_bindings - i - 1) * sizeof(*dev->bindings));
		dev->nr_bindings--;
	}
	pthread_rwlock_unlock(&dev->pt_lock);
}

/* ---- TLBs and device operations ------------------------------------------ */

static void tlb_flush_locked(struct mmn_sim_engine *eng, unsigned long start,
			     unsigned long end)
{
	for (unsigned int i = 0; i < SIM_TLB_ENTRIES; i++) {
		unsigned long va = eng->tlb[i].vpage << SIM_PAGE_SHIFT;

		if (eng->tlb[i].vpage != SIM_TLB_INVALID && va >= start && va < end)
			eng->tlb[i].vpage = SIM_TLB_INVALID;
	}
}

void sim_dev_flush_tlbs(struct mmn_sim_dev *dev, unsigned long start, unsigned long end)
{
	uint32_t n = sim_load(&dev->nr_engines);

	for (uint32_t i = 0; i < n; i++) {
		struct mmn_sim_engine *eng = dev->engines[i];

		pthread_mutex_lock(&eng->lock);
		tlb_flush_locked(eng, start, end);
		pthread_mutex_unlock(&eng->lock);
	}
}

/* A TLB invalidation completes: no engine keeps or uses a translation of it. */
static void tlb_inval_retire(struct mmn_sim_fence *fence)
{
	struct mmn_sim_op *op = mmn_container_of(fence, struct mmn_sim_op, fence);

	sim_dev_flush_tlbs(op->dev, op->start, op->end);
}

/* A preemption completes: the engines asked have left their access. */
static void preempt_retire(struct mmn_sim_fence *fence)
{
	struct mmn_sim_op *op = mmn_container_of(fence, struct mmn_sim_op, fence);
	struct mmn_sim_dev *dev = op->dev;

	for (uint32_t i = 0; i < MMN_SIM_MAX_ENGINES; i++) {
		if (!(op->engines & (1u << i)))
			continue;
		pthread_mutex_lock(&dev->engines[i]->lock);
		pthread_mutex_unlock(&dev->engines[i]->lock);
	}
}

int mmn_sim_tlb_inval_submit(struct mmn_sim_dev *dev, struct mmn_sim_op *op,
			     unsigned long start, unsigned long end)
{
	uint64_t lat;

	if (sim_fence_pending(&op->fence))
		return -EBUSY;
	op->dev = dev;
	op->kind = MMN_SIM_OP_TLB_INVAL;
	op->start = start;
	op->end = end;
	op->engines = 0;
	lat = mmn_sim_latency_draw(&dev->cfg.tlb_latency);
	sim_inc(&dev->tlb_invals);
	return mmn_sim_fence_arm(&op->fence, mmn_sim_now_ns() + lat, tlb_inval_retire);
}

int mmn_sim_preempt_submit(struct mmn_sim_dev *dev, struct mmn_sim_op *op)
{
	uint32_t n = sim_load(&dev->nr_engines), mask = 0;
	uint64_t lat;
	int ret;

	if (sim_fence_pending(&op->fence))
		return -EBUSY;
	for (uint32_t i = 0; i < n; i++) {
		struct mmn_sim_engine *eng = dev->engines[i];

		if (!sim_load(&eng->busy))
			continue;
		/* Seen by the engine at the start of its next access. */
		__atomic_fetch_add(&eng->preempt_req, 1, __ATOMIC_RELEASE);
		mask |= 1u << i;
	}
	if (!mask) {
		sim_inc(&dev->preempts_idle);
		return 0;
	}
	op->dev = dev;
	op->kind = MMN_SIM_OP_PREEMPT;
	op->start = 0;
	op->end = 0;
	op->engines = mask;
	lat = mmn_sim_latency_draw(&dev->cfg.preempt_latency);
	sim_inc(&dev->preempts);
	ret = mmn_sim_fence_arm(&op->fence, mmn_sim_now_ns() + lat, preempt_retire);
	return ret ? ret : 1;
}

void mmn_sim_op_wait(struct mmn_sim_op *op)
{
	mmn_sim_fence_wait(&op->fence);
}

void mmn_sim_dev_get_stats(struct mmn_sim_dev *dev, struct mmn_sim_dev_stats *st)
{
	uint32_t n = sim_load(&dev->nr_engines);

	memset(st, 0, sizeof(*st));
	st->tlb_invals = sim_load_relaxed(&dev->tlb_invals);
	st->preempts = sim_load_relaxed(&dev->preempts);
	st->preempts_idle = sim_load_relaxed(&dev->preempts_idle);
	for (uint32_t i = 0; i < n; i++) {
		struct sim_engine_counters *c = &dev->engines[i]->c;

		st->jobs += sim_load_relaxed(&c->jobs);
		st->accesses += sim_load_relaxed(&c->accesses);
		st->tlb_hits += sim_load_relaxed(&c->tlb_hits);
		st->tlb_misses += sim_load_relaxed(&c->tlb_misses);
		st->faults += sim_load_relaxed(&c->faults);
		st->fault_errors += sim_load_relaxed(&c->fault_errors);
		st->engine_preemptions += sim_load_relaxed(&c->preemptions);
	}
}

/* ---- engines ------------------------------------------------------------- */

int mmn_sim_engine_new(struct mmn_sim_dev *dev, struct mmn_sim_engine **engp)
{
	struct mmn_sim_engine *eng;
	uint32_t n;

	if (!dev || !engp)
		return -EINVAL;
	pthread_mutex_lock(&dev->engines_lock);
	n = dev->nr_engines;
	if (n == MMN_SIM_MAX_ENGINES) {
		pthread_mutex_unlock(&dev->engines_lock);
		return -ENOSPC;
	}
	eng = calloc(1, sizeof(*eng));
	if (!eng) {
		pthread_mutex_unlock(&dev->engines_lock);
		return -ENOMEM;
	}
	pthread_mutex_init(&eng->lock, NULL);
	for (unsigned int i = 0; i < SIM_TLB_ENTRIES; i++)
		eng->tlb[i].vpage = SIM_TLB_INVALID;
	eng->dev = dev;
	eng->index = n;
	dev->engines[n] = eng;
	/* Release: whoever sees the count sees the engine. */
	sim_store(&dev->nr_engines, n + 1);
	pthread_mutex_unlock(&dev->engines_lock);
	*engp = eng;
	return 0;
}

struct mmn_sim_dev *mmn_sim_engine_dev(const struct mmn_sim_engine *eng)
{
	return eng->dev;
}

unsigned int mmn_sim_engine_index(const struct mmn_sim_engine *eng)
{
	return eng->index;
}

/*
 * Translate @va under eng->lock. Returns 0 with *@host and *@pfn set, 1 when
 * the PTE is zapped (*@bp set: run the fault path), -EFAULT without binding.
 */
static int engine_translate(struct mmn_sim_engine *eng, unsigned long va,
			    void **host, uint64_t *pfn, struct mmn_sim_binding **bp)
{
	unsigned long vpage = va >> SIM_PAGE_SHIFT;
	struct sim_tlb_entry *ent = &eng->tlb[vpage % SIM_TLB_ENTRIES];
	struct mmn_sim_dev *dev = eng->dev;
	struct mmn_sim_binding *b;
	void *h;

	if (ent->vpage == vpage) {
		sim_inc(&eng->c.tlb_hits);
		*host = ent->host;
		*pfn = ent->pfn;
		return 0;
	}
	sim_inc(&eng->c.tlb_misses);
	pthread_rwlock_rdlock(&dev->pt_lock);
	b = pt_find(dev, va);
	if (!b) {
		pthread_rwlock_unlock(&dev->pt_lock);
		return -EFAULT;
	}
	for (;;) {
		unsigned long idx = (va - b->start) >> SIM_PAGE_SHIFT;

		/* Pairs with the release store of pte_host in the install. */
		h = __atomic_load_n(&b->pte_host[idx], __ATOMIC_ACQUIRE);
		*pfn = __atomic_load_n(&b->pte_pfn[idx], __ATOMIC_ACQUIRE);
		if (h == __atomic_load_n(&b->pte_host[idx], __ATOMIC_ACQUIRE))
			break;
	}
	pthread_rwlock_unlock(&dev->pt_lock);
	if (!h) {
		*bp = b;
		return 1;
	}
	ent->vpage = vpage;
	ent->host = h;
	ent->pfn = *pfn;
	*host = h;
	return 0;
}

static void engine_error(struct mmn_sim_engine *eng, unsigned long va, int err)
{
	sim_inc(&eng->c.fault_errors);
	if (eng->ops->fault_error)
		eng->ops->fault_error(eng, eng->arg, va, err);
}

static void engine_access(struct mmn_sim_engine *eng, unsigned long va, bool write)
{
	for (int faults = 0;; faults++) {
		struct mmn_sim_binding *b = NULL;
		void *host;
		uint64_t pfn;
		int ret;

		pthread_mutex_lock(&eng->lock);
		/* Acquire: pairs with the preemption request. */
		if (__atomic_load_n(&eng->preempt_req, __ATOMIC_ACQUIRE) != eng->preempt_ack) {
			/* Switched out and back in: a context switch drops the TLB. */
			eng->preempt_ack = __atomic_load_n(&eng->preempt_req, __ATOMIC_ACQUIRE);
			tlb_flush_locked(eng, 0, ~0ul);
			sim_inc(&eng->c.preemptions);
		}
		ret = engine_translate(eng, va, &host, &pfn, &b);
		if (!ret) {
			sim_inc(&eng->c.accesses);
			eng->ops->access(eng, eng->arg, va,
					 (char *)host + (va & ~SIM_PAGE_MASK), pfn, write);
			pthread_mutex_unlock(&eng->lock);
			return;
		}
		pthread_mutex_unlock(&eng->lock);
		if (ret < 0) {
			engine_error(eng, va, ret);
			return;
		}
		if (faults == ENGINE_MAX_FAULTS) {
			engine_error(eng, va, -EBUSY);
			return;
		}
		sim_inc(&eng->c.faults);
		ret = mmn_sim_binding_fault(b, va);
		if (ret) {
			engine_error(eng, va, ret);
			return;
		}
	}
}

static void engine_loop(struct mmn_sim_engine *eng)
{
	const struct mmn_sim_job_ops *ops = eng->ops;

	while (!sim_load(&eng->stop) && ops->next_job(eng, eng->arg)) {
		unsigned long va;
		bool write;

		sim_store(&eng->busy, 1);
		while (!sim_load(&eng->stop) &&
		       ops->next_access(eng, eng->arg, &va, &write))
			engine_access(eng, va, write);
		sim_store(&eng->busy, 0);
		sim_inc(&eng->c.jobs);
	}
}

static int engine_claim(struct mmn_sim_engine *eng, const struct mmn_sim_job_ops *ops,
			void *arg)
{
	uint32_t expected = 0;

	if (!eng || !ops || !ops->next_job || !ops->next_access || !ops->access)
		return -EINVAL;
	if (!__atomic_compare_exchange_n(&eng->running, &expected, 1, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return -EBUSY;
	eng->ops = ops;
	eng->arg = arg;
	sim_store(&eng->stop, 0);
	return 0;
}

int mmn_sim_engine_run(struct mmn_sim_engine *eng, const struct mmn_sim_job_ops *ops,
		       void *arg)
{
	int ret = engine_claim(eng, ops, arg);

	if (ret)
		return ret;
	sim_store(&eng->threaded, 0);
	engine_loop(eng);
	sim_store(&eng->running, 0);
	return 0;
}

static void *engine_thread(void *arg)
{
	engine_loop(arg);
	return NULL;
}

int mmn_sim_engine_start(struct mmn_sim_engine *eng, const struct mmn_sim_job_ops *ops,
			 void *arg)
{
	int ret = engine_claim(eng, ops, arg);

	if (ret)
		return ret;
	sim_store(&eng->threaded, 1);
	ret = pthread_create(&eng->thread, NULL, engine_thread, eng);
	if (ret) {
		sim_store(&eng->threaded, 0);
		sim_store(&eng->running, 0);
		return -ret;
	}
	return 0;
}

int mmn_sim_engine_stop(struct mmn_sim_engine *eng)
{
	if (!eng || !sim_load(&eng->running))
		return -EINVAL;
	sim_store(&eng->stop, 1);
	/* Run on a caller's thread: that caller returns by itself. */
	if (!sim_load(&eng->threaded))
		return 0;
	pthread_join(eng->thread, NULL);
	sim_store(&eng->threaded, 0);
	sim_store(&eng->running, 0);
	return 0;
}
