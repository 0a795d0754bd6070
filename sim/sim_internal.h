/* SPDX-License-Identifier: MIT */
/*
 * Private to sim/: the structures behind the opaque handles of "sim.h"
 * and the helpers the files share. Never installed.
 *
 * Lock order (outer first); none of them is held across a wait for another:
 *
 *   umem mmap_lock  ->  (core domain lock, inside libmmn)
 *                   ->  dev->notifier_lock  ->  engine->lock
 *   engine->lock    ->  dev->pt_lock (read, for a page-table walk)
 *
 * dev->notifier_lock is the driver lock of the seq protocol (the xe VM's
 * notifier_lock): every first pass takes it around mmn_interval_set_seq(), the
 * fault path takes it around mmn_interval_read_retry() and the install, and
 * the userptr finish holds it while it waits for its fences (as xe does). Fence
 * retire functions take engine->lock, so an engine must never wait for the
 * notifier lock while it holds its own: the fault path runs with engine->lock
 * dropped.
 */
#ifndef MMN_SIM_INTERNAL_H
#define MMN_SIM_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include "sim.h"

#define SIM_PAGE_SHIFT 12
#define SIM_PAGE_SIZE (1ul << SIM_PAGE_SHIFT)
#define SIM_PAGE_MASK (~(SIM_PAGE_SIZE - 1))

#define sim_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define sim_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define sim_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define sim_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define sim_inc(p) ((void)__atomic_fetch_add((p), 1, __ATOMIC_RELAXED))

/* One cached translation. */
struct sim_tlb_entry {
	unsigned long vpage;		/* SIM_TLB_INVALID when empty */
	void *host;
	uint64_t pfn;
};

#define SIM_TLB_ENTRIES 64
#define SIM_TLB_INVALID (~0ul)

/* Counters of one engine (atomics; summed into the device's stats). */
struct sim_engine_counters {
	uint64_t jobs;
	uint64_t accesses;
	uint64_t tlb_hits;
	uint64_t tlb_misses;
	uint64_t faults;
	uint64_t fault_errors;
	uint64_t preemptions;
};

struct mmn_sim_engine {
	/*
	 * The engine's pipeline: held for the whole of one access (preemption
	 * check, translation, the memory access itself). Fence retire
	 * functions take it, which is what makes "the operation completed"
	 * mean "no access that could have used the old translation is still
	 * in progress".
	 */
	pthread_mutex_t lock;
	struct sim_tlb_entry tlb[SIM_TLB_ENTRIES];	/* under lock */
	uint32_t preempt_ack;				/* under lock */
	uint32_t preempt_req;		/* atomic; bumped by a preemption */
	uint32_t busy;			/* atomic; a job is on the engine */
	uint32_t stop;			/* atomic; asked to stop */
	uint32_t running;		/* atomic; run() or start() in progress */
	uint32_t threaded;		/* atomic; started with mmn_sim_engine_start() */
	pthread_t thread;
	struct mmn_sim_dev *dev;
	unsigned int index;
	const struct mmn_sim_job_ops *ops;
	void *arg;
	struct sim_engine_counters c;
};

struct mmn_sim_dev {
	struct mmn_sim_dev_config cfg;
	/* The driver lock of the seq protocol; see the top of this file. */
	pthread_mutex_t notifier_lock;
	/* The page table: bindings sorted by start, never overlapping. */
	pthread_rwlock_t pt_lock;
	struct mmn_sim_binding **bindings;
	unsigned int nr_bindings;
	unsigned int cap_bindings;
	struct mmn_sim_engine *engines[MMN_SIM_MAX_ENGINES];
	uint32_t nr_engines;		/* atomic; entries below it are set */
	pthread_mutex_t engines_lock;	/* serialises mmn_sim_engine_new() */
	uint64_t tlb_invals;		/* atomic */
	uint64_t preempts;		/* atomic */
	uint64_t preempts_idle;		/* atomic */
};

/* Counters of a binding, and their sums per driver (all atomics). */
struct sim_binding_counters {
	uint64_t invalidations;
	uint64_t refused;
	uint64_t teardowns;
	uint64_t deferred;
	uint64_t finishes;
	uint64_t sync_fallbacks;
	uint64_t pool_fallbacks;
	uint64_t faults;
	uint64_t fault_retries;
	uint64_t installs;
};

struct mmn_sim_binding {
	struct mmn_interval_notifier notifier;
	struct mmn_sim_driver *drv;
	struct mmn_sim_dev *dev;
	unsigned int id;
	unsigned long start;
	unsigned long end;
	unsigned long npages;
	/*
	 * The device page table entries of the range: written under
	 * dev->notifier_lock, read by engine walks without it. An install
	 * stores pte_pfn, then pte_host (release); a zap clears pte_host.
	 */
	void **pte_host;
	uint64_t *pte_pfn;
	/* The pages handed out by the lookup (xe: the pinned / DMA-mapped pages). */
	void **pages;			/* under dev->notifier_lock */
	uint64_t *pfns;			/* under dev->notifier_lock */
	bool initial_bind;		/* pages were installed at least once */
	bool needs_repin;		/* userptr: the "invalidated" list mark */
	/* userptr: the embedded finish and its two fences (xe's inval_batch) */
	struct mmn_finish finish;
	bool finish_inuse;		/* under dev->notifier_lock */
	unsigned long inval_start;	/* range the pending finish tears down */
	unsigned long inval_end;
	bool preempt_pending;
	bool tlb_pending;
	struct mmn_sim_op preempt_op;
	struct mmn_sim_op tlb_op;
	struct sim_binding_counters c;
};

struct mmn_sim_driver {
	struct mmn_mm *mm;
	struct mmn_sim_driver_config cfg;
	const struct mmn_interval_notifier_ops *ops;
	struct mmn_sim_pool pool;	/* svm finish containers */
	pthread_mutex_t lock;		/* next_id, nr_bindings */
	unsigned int next_id;
	unsigned int nr_bindings;
	struct sim_binding_counters c;	/* sums over every binding */
};

/* fence.c: armed and not yet signalled (does not complete it) */
bool sim_fence_pending(struct mmn_sim_fence *fence);

/* device.c: the page table, seen from the drivers */
int sim_pt_insert(struct mmn_sim_dev *dev, struct mmn_sim_binding *b);
void sim_pt_remove(struct mmn_sim_dev *dev, struct mmn_sim_binding *b);
void sim_dev_flush_tlbs(struct mmn_sim_dev *dev, unsigned long start, unsigned long end);
bool sim_dev_engines_running(struct mmn_sim_dev *dev);

/* driver.c: shared by the two driver patterns */
#define bstat_inc(b, field)                                     \
	do {                                                    \
		sim_inc(&(b)->c.field);                         \
		sim_inc(&(b)->drv->c.field);                    \
	} while (0)

void sim_trace(struct mmn_sim_binding *b, enum mmn_sim_event_type type,
	       unsigned long start, unsigned long end);
void sim_zap_locked(struct mmn_sim_binding *b, unsigned long start, unsigned long end);
void sim_unmap_locked(struct mmn_sim_binding *b, unsigned long start, unsigned long end);
bool sim_submit_tlb_locked(struct mmn_sim_binding *b, struct mmn_sim_op *op,
			   unsigned long start, unsigned long end);
bool sim_submit_preempt_locked(struct mmn_sim_binding *b, struct mmn_sim_op *op);
void sim_wait_op(struct mmn_sim_binding *b, struct mmn_sim_op *op);
void sim_clamp(const struct mmn_sim_binding *b, const struct mmn_range *range,
	       unsigned long *start, unsigned long *end);

/*
 * The first pass both drivers begin with: a non-blockable range is refused
 * (false, nothing done, no lock); else the range is clamped to the binding
 * into *start, *end, the device's notifier lock taken (and left held), the
 * sequence set, the binding marked for repin if @repin, and its PTEs zapped.
 */
bool sim_pass1_begin_lock(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq, bool repin, struct mmn_sim_binding **bp,
			  unsigned long *start, unsigned long *end);
/* Unlock what sim_pass1_begin_lock() locked, trace DONE; returns true. */
bool sim_pass1_done_unlock(struct mmn_sim_binding *b, unsigned long start, unsigned long end);
/* The single-pass variant of a driver: the first pass, then @sync_locked. */
bool sim_invalidate_single(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq, bool repin,
			   void (*sync_locked)(struct mmn_sim_binding *b, unsigned long start,
					       unsigned long end));

/* userptr.c and svm.c */
extern const struct mmn_interval_notifier_ops sim_userptr_ops;
extern const struct mmn_interval_notifier_ops sim_userptr_single_ops;
extern const struct mmn_interval_notifier_ops sim_svm_ops;
extern const struct mmn_interval_notifier_ops sim_svm_single_ops;
size_t sim_svm_finish_size(void);

#endif /* MMN_SIM_INTERNAL_H */
