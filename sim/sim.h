/* SPDX-License-Identifier: MIT */
/*
 * libmmn simulated devices: multi-GPU mirrors of user memory and their
 * two-pass drivers, the user-space counterparts of the kernel's lib/test_hmm.c
 * mirror device and of the xe driver's userptr and SVM invalidation.
 *
 * The pieces, bottom up:
 *
 *   latency   fixed, or lognormal with a given median and p99 (seeded)
 *   fence     completes at a deadline; waiting sleeps (futex with an absolute
 *             timeout), so 64 devices cost no spinning threads
 *   device    a page-table mirror (bindings: virtual page -> host page), a TLB
 *             per engine, asynchronous TLB invalidation and engine preemption
 *             that signal fences after the configured latency
 *   engine    runs jobs whose accesses go through the TLB and the mirror and
 *             really read and write the mirrored memory; a miss on a zapped
 *             entry takes the driver's fault path
 *   driver    one interval notifier per binding on a notifier domain:
 *             userptr (xe userptr pattern, finish embedded in the binding) or
 *             svm (per-invocation finish containers from a fixed pool), each
 *             also in a single-pass variant for comparison
 *   umem      a window of application memory whose pages carry generation
 *             stamps; munmap / mmap / madvise / mremap through it call the
 *             domain's range_start / _end around the real system calls, and
 *             it checks every engine access against what the application did
 *
 * docs/sim.md describes the model and how it maps onto xe and test_hmm.
 *
 * Every function is thread-safe unless its Context says otherwise. Errors are
 * 0 or -errno.
 */
#ifndef MMN_SIM_H
#define MMN_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include <mmn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Time and latency                                                          */
/* ------------------------------------------------------------------------ */

/**
 * mmn_sim_now_ns() - CLOCK_MONOTONIC in nanoseconds
 *
 * The clock every deadline of the simulation is expressed in.
 */
uint64_t mmn_sim_now_ns(void);

/**
 * mmn_sim_set_timer_slack() - make short sleeps accurate for this thread
 * @slack_ns: the timer slack to ask for (1 is the smallest)
 *
 * Linux rounds sleeps up by the thread's timer slack (50 us by default), which
 * would swamp a 50 us device latency. Threads created afterwards inherit it.
 *
 * Return: 0 or -errno from prctl(PR_SET_TIMERSLACK).
 */
int mmn_sim_set_timer_slack(unsigned long slack_ns);

enum mmn_sim_latency_kind {
	MMN_SIM_LATENCY_FIXED = 0,	/* every draw is median_ns */
	MMN_SIM_LATENCY_LOGNORMAL,	/* lognormal with median_ns and p99_ns */
};

/**
 * struct mmn_sim_latency - how long a device operation takes
 * @kind: fixed or lognormal
 * @median_ns: the median (the value itself for a fixed latency)
 * @p99_ns: the 99th percentile (equal to @median_ns for a fixed latency)
 *
 * Initialise with mmn_sim_latency_fixed() or mmn_sim_latency_lognormal(). It
 * may be copied; a copy draws the same sequence as the original from that
 * point on.
 */
struct mmn_sim_latency {
	enum mmn_sim_latency_kind kind;
	uint64_t median_ns;
	uint64_t p99_ns;
	/* private: */
	double mu;		/* ln(median) */
	double sigma;		/* ln(p99 / median) / z(0.99) */
	uint64_t rng;		/* splitmix64 counter; atomic */
};

/**
 * mmn_sim_latency_fixed() - a latency that is always @ns
 * @lat: filled in
 * @ns: the latency in nanoseconds (0 allowed: operations complete at once)
 *
 * Return: 0; -EINVAL if @lat is NULL.
 */
int mmn_sim_latency_fixed(struct mmn_sim_latency *lat, uint64_t ns);

/**
 * mmn_sim_latency_lognormal() - a seeded lognormal latency
 * @lat: filled in
 * @median_ns: median of the distribution, at least 1
 * @p99_ns: 99th percentile, at least @median_ns (equal: a fixed latency)
 * @seed: seed of the draw sequence; equal seeds give equal sequences
 *
 * ln(latency) is normal with mean ln(@median_ns) and the standard deviation
 * that puts the 99th percentile at @p99_ns.
 *
 * Return: 0; -EINVAL for a NULL @lat, @median_ns 0 or @p99_ns < @median_ns.
 */
int mmn_sim_latency_lognormal(struct mmn_sim_latency *lat, uint64_t median_ns,
			      uint64_t p99_ns, uint64_t seed);

/**
 * mmn_sim_latency_draw() - draw one latency
 * @lat: an initialised latency
 *
 * Context: lock-free; concurrent draws each get a different value of the
 * sequence.
 * Return: nanoseconds.
 */
uint64_t mmn_sim_latency_draw(struct mmn_sim_latency *lat);

/* ------------------------------------------------------------------------ */
/* Fences                                                                    */
/* ------------------------------------------------------------------------ */

struct mmn_sim_fence;

/* Runs exactly once when a fence completes, before any waiter returns. */
typedef void mmn_sim_fence_retire_fn(struct mmn_sim_fence *fence);

/**
 * struct mmn_sim_fence - completion of an asynchronous device operation
 *
 * A fence is armed with a deadline. It completes ("signals") at the first
 * wait or poll that finds the deadline passed: that caller runs the fence's
 * retire function (the device's side of finishing the operation, for example
 * flushing the engines' TLBs), then every waiter returns. Waiting sleeps on a
 * futex with the deadline as absolute timeout; nothing spins.
 *
 * Embed it; initialise with mmn_sim_fence_init(). All fields are private.
 */
struct mmn_sim_fence {
	/* private: */
	uint32_t word;			/* futex word: generation << 2 | state */
	uint32_t waiters;		/* threads asleep on @word */
	uint64_t deadline_ns;
	mmn_sim_fence_retire_fn *retire;
};

/**
 * mmn_sim_fence_init() - initialise a fence as signalled (nothing pending)
 * @fence: the fence
 */
void mmn_sim_fence_init(struct mmn_sim_fence *fence);

/**
 * mmn_sim_fence_arm() - make a signalled fence pending until @deadline_ns
 * @fence: a signalled fence
 * @deadline_ns: completion time on the mmn_sim_now_ns() clock
 * @retire: run once at completion, or NULL
 *
 * Return: 0; -EBUSY if the fence is still pending (nothing changes).
 */
int mmn_sim_fence_arm(struct mmn_sim_fence *fence, uint64_t deadline_ns,
		      mmn_sim_fence_retire_fn *retire);

/**
 * mmn_sim_fence_is_signalled() - poll a fence
 * @fence: the fence
 *
 * Completes the fence (running its retire function) if its deadline has
 * passed, as dma_fence_is_signaled() does.
 *
 * Return: true once the fence has completed.
 */
bool mmn_sim_fence_is_signalled(struct mmn_sim_fence *fence);

/**
 * mmn_sim_fence_wait() - sleep until the fence has completed
 * @fence: the fence
 *
 * Context: sleeps; returns at once for a signalled fence.
 */
void mmn_sim_fence_wait(struct mmn_sim_fence *fence);

/**
 * mmn_sim_fence_wait_until() - mmn_sim_fence_wait() with a time limit
 * @fence: the fence
 * @abs_ns: give up at this time (mmn_sim_now_ns() clock)
 *
 * Return: 0 when the fence has completed; -ETIMEDOUT if it had not by @abs_ns.
 */
int mmn_sim_fence_wait_until(struct mmn_sim_fence *fence, uint64_t abs_ns);

/**
 * mmn_sim_fence_expedite() - move a pending fence's deadline to now
 * @fence: the fence
 *
 * Sleeping waiters wake and complete it. Nothing happens to a signalled fence.
 */
void mmn_sim_fence_expedite(struct mmn_sim_fence *fence);

/* ------------------------------------------------------------------------ */
/* Devices                                                                   */
/* ------------------------------------------------------------------------ */

struct mmn_sim_dev;
struct mmn_sim_engine;
struct mmn_sim_binding;

/**
 * enum mmn_sim_dev_mode - how the device's VM keeps engines off stale pages
 * @MMN_SIM_DEV_FAULT: fault mode: an invalidation zaps the PTEs and
 *	invalidates the TLBs; engines fault on the zapped entries
 * @MMN_SIM_DEV_PREEMPT: preempt-fence mode: an invalidation also preempts
 *	every engine that is running a job, with its own latency
 */
enum mmn_sim_dev_mode {
	MMN_SIM_DEV_FAULT = 0,
	MMN_SIM_DEV_PREEMPT,
};

/**
 * typedef mmn_sim_lookup_fn - find the host page behind a user address
 * @arg: the device's lookup_arg
 * @va: the user virtual address (any address inside the page)
 * @write: the access that faulted is a write
 * @host: set to the host pointer of the page (page aligned)
 * @pfn: set to an identity of the page (the kernel's pfn): any value that
 *	changes when the memory behind @va is replaced
 *
 * The device's hmm_range_fault(): called by the driver fault path between
 * mmn_interval_read_begin() and the driver lock.
 *
 * Return: 0, or -EFAULT when nothing is mapped at @va.
 */
typedef int mmn_sim_lookup_fn(void *arg, unsigned long va, bool write,
			      void **host, uint64_t *pfn);

/**
 * struct mmn_sim_dev_config - what a simulated GPU looks like
 * @id: a number for traces and tables
 * @mode: fault or preempt-fence mode
 * @tlb_latency: latency of one TLB invalidation
 * @preempt_latency: latency of preempting the engines (preempt mode)
 * @lookup: page lookup; NULL: identity (host pointer = @va, pfn = page number)
 * @lookup_arg: passed to @lookup
 */
struct mmn_sim_dev_config {
	unsigned int id;
	enum mmn_sim_dev_mode mode;
	struct mmn_sim_latency tlb_latency;
	struct mmn_sim_latency preempt_latency;
	mmn_sim_lookup_fn *lookup;
	void *lookup_arg;
};

/* Engines per device, at most. */
#define MMN_SIM_MAX_ENGINES 8

/**
 * mmn_sim_dev_new() - create a simulated GPU
 * @cfg: its configuration (copied)
 * @devp: where to store it
 *
 * Return: 0; -EINVAL for NULL arguments or an unknown mode; -ENOMEM.
 */
int mmn_sim_dev_new(const struct mmn_sim_dev_config *cfg, struct mmn_sim_dev **devp);

/**
 * mmn_sim_dev_destroy() - free a device and its engines
 * @dev: the device, or NULL
 *
 * Return: 0; -EBUSY (nothing freed) while bindings remain or an engine runs.
 */
int mmn_sim_dev_destroy(struct mmn_sim_dev *dev);

/** mmn_sim_dev_id() - the id given in the device's configuration */
unsigned int mmn_sim_dev_id(const struct mmn_sim_dev *dev);

enum mmn_sim_op_kind {
	MMN_SIM_OP_TLB_INVAL = 0,
	MMN_SIM_OP_PREEMPT,
};

/**
 * struct mmn_sim_op - one asynchronous device operation
 * @fence: signals when the operation has completed
 *
 * Owned by whoever submits it (embedded in a binding, a finish container, or
 * on the stack for a synchronous operation); must stay alive until @fence has
 * signalled. Other fields are private.
 */
struct mmn_sim_op {
	struct mmn_sim_fence fence;
	/* private: */
	struct mmn_sim_dev *dev;
	enum mmn_sim_op_kind kind;
	unsigned long start;
	unsigned long end;
	uint32_t engines;		/* preemption: the engines asked to stop */
};

/**
 * mmn_sim_tlb_inval_submit() - start invalidating the TLBs for [start, end)
 * @dev: the device
 * @op: a signalled or never-used operation
 * @start: first address
 * @end: one past the last address
 *
 * The operation completes one drawn tlb_latency after submission: from then
 * on no engine of @dev holds a translation of the range that it had cached
 * before, and no access that used one is still in progress. Zap the PTEs
 * first, so that nothing can be cached again.
 *
 * Context: never sleeps; may be called from a notifier callback.
 * Return: 0; -EBUSY if @op is still pending.
 */
int mmn_sim_tlb_inval_submit(struct mmn_sim_dev *dev, struct mmn_sim_op *op,
			     unsigned long start, unsigned long end);

/**
 * mmn_sim_preempt_submit() - start preempting the engines that run a job
 * @dev: the device
 * @op: a signalled or never-used operation
 *
 * Every busy engine is asked to stop; the operation completes one drawn
 * preempt_latency later, when those engines have left the access they were
 * in. A preempted engine drops its TLB and resumes its job through the fault
 * path. If no engine is busy, @op is left signalled and nothing is started.
 *
 * Context: never sleeps.
 * Return: 1 if a preemption was started; 0 if there was nothing to preempt;
 * -EBUSY if @op is still pending.
 */
int mmn_sim_preempt_submit(struct mmn_sim_dev *dev, struct mmn_sim_op *op);

/** mmn_sim_op_wait() - sleep until @op has completed (see mmn_sim_fence_wait()) */
void mmn_sim_op_wait(struct mmn_sim_op *op);

/**
 * struct mmn_sim_dev_stats - what a device did (engines included)
 * @tlb_invals: TLB invalidations submitted
 * @preempts: preemptions started (operations, not engines)
 * @preempts_idle: preemption requests that found no busy engine
 * @jobs: jobs its engines completed
 * @accesses: memory accesses its engines made
 * @tlb_hits: accesses translated by a TLB
 * @tlb_misses: accesses that walked the page table
 * @faults: walks that found no PTE and ran the driver fault path
 * @fault_errors: accesses given up (fault failed or no binding)
 * @engine_preemptions: times an engine stopped for a preemption
 */
struct mmn_sim_dev_stats {
	uint64_t tlb_invals;
	uint64_t preempts;
	uint64_t preempts_idle;
	uint64_t jobs;
	uint64_t accesses;
	uint64_t tlb_hits;
	uint64_t tlb_misses;
	uint64_t faults;
	uint64_t fault_errors;
	uint64_t engine_preemptions;
};

/**
 * mmn_sim_dev_get_stats() - read a device's counters
 * @dev: the device
 * @st: filled in
 */
void mmn_sim_dev_get_stats(struct mmn_sim_dev *dev, struct mmn_sim_dev_stats *st);

/* ------------------------------------------------------------------------ */
/* Engines and jobs                                                          */
/* ------------------------------------------------------------------------ */

/**
 * struct mmn_sim_job_ops - a job stream for an engine
 * @next_job: called between jobs; false stops the engine. May sleep.
 * @next_access: the next access of the current job: set *@va and *@write and
 *	return true, or return false when the job is complete. May sleep (the
 *	engine counts as busy meanwhile: the job is on the hardware).
 * @access: perform the access. Runs inside the engine's critical section,
 *	with @host the host page pointer plus the offset of @va in its page and
 *	@pfn the page identity the lookup gave when the mapping was installed.
 *	It must not sleep or take locks that a notifier callback may hold.
 * @fault_error: the access at @va could not be translated (-EFAULT: nothing
 *	mapped or no binding; -EBUSY: the fault kept colliding). May be NULL.
 */
struct mmn_sim_job_ops {
	bool (*next_job)(struct mmn_sim_engine *eng, void *arg);
	bool (*next_access)(struct mmn_sim_engine *eng, void *arg,
			    unsigned long *va, bool *write);
	void (*access)(struct mmn_sim_engine *eng, void *arg, unsigned long va,
		       void *host, uint64_t pfn, bool write);
	void (*fault_error)(struct mmn_sim_engine *eng, void *arg,
			    unsigned long va, int err);
};

/**
 * mmn_sim_engine_new() - add an idle engine to a device
 * @dev: the device
 * @engp: where to store it; it lives until the device is destroyed
 *
 * Return: 0; -EINVAL; -ENOSPC after MMN_SIM_MAX_ENGINES; -ENOMEM.
 */
int mmn_sim_engine_new(struct mmn_sim_dev *dev, struct mmn_sim_engine **engp);

/**
 * mmn_sim_engine_run() - run jobs on the calling thread
 * @eng: an engine that is not running
 * @ops: the job stream
 * @arg: passed to @ops
 *
 * Runs until @ops->next_job returns false or mmn_sim_engine_stop() is called.
 *
 * Context: sleeps in the fault path (mmn_interval_read_begin()) and wherever
 * @ops sleep. Not from a notifier callback.
 * Return: 0; -EINVAL for a NULL @eng or @ops, or @ops without next_job,
 * next_access or access; -EBUSY if the engine is already running.
 */
int mmn_sim_engine_run(struct mmn_sim_engine *eng,
		       const struct mmn_sim_job_ops *ops, void *arg);

/**
 * mmn_sim_engine_start() - run jobs on a new thread
 * @eng: an engine that is not running
 * @ops: the job stream
 * @arg: passed to @ops
 *
 * Return: 0; -EINVAL as for mmn_sim_engine_run(); -EBUSY if the engine is
 * already running; -errno of
 * pthread_create().
 */
int mmn_sim_engine_start(struct mmn_sim_engine *eng,
			 const struct mmn_sim_job_ops *ops, void *arg);

/**
 * mmn_sim_engine_stop() - stop an engine and wait for its thread
 * @eng: the engine
 *
 * The engine stops at its next access or job boundary; a job that sleeps in
 * @next_job or @next_access is waited for. For an engine in
 * mmn_sim_engine_run() on another thread, only asks it to stop: that call
 * returns by itself.
 *
 * Return: 0; -EINVAL if @eng is NULL or not running.
 */
int mmn_sim_engine_stop(struct mmn_sim_engine *eng);

/** mmn_sim_engine_dev() - the device @eng belongs to */
struct mmn_sim_dev *mmn_sim_engine_dev(const struct mmn_sim_engine *eng);

/** mmn_sim_engine_index() - @eng's index on its device (0, 1, ...) */
unsigned int mmn_sim_engine_index(const struct mmn_sim_engine *eng);

/* ------------------------------------------------------------------------ */
/* Non-blocking object pool                                                  */
/* ------------------------------------------------------------------------ */

/**
 * struct mmn_sim_pool - fixed set of equal objects, lock-free get and put
 *
 * A Treiber stack of indices with a generation tag against ABA. Nothing is
 * allocated after mmn_sim_pool_init(), so a notifier callback may get and put
 * objects (the kernel's GFP_NOWAIT allocation, made deterministic: when the
 * pool is empty, get fails at once). All fields are private.
 */
struct mmn_sim_pool {
	/* private: */
	uint64_t head;			/* atomic: tag << 32 | (index + 1), 0 empty */
	uint32_t *next;			/* atomic: index + 1 of the next free one */
	char *objs;
	size_t obj_size;
	uint32_t nr;
	uint32_t nr_free;		/* atomic */
};

/**
 * mmn_sim_pool_init() - allocate @nr zeroed objects of @obj_size bytes
 * @pool: the pool
 * @nr: number of objects (0: a pool that is always empty)
 * @obj_size: size of one object; objects are aligned to 64 bytes
 *
 * Return: 0; -EINVAL for a NULL @pool or @obj_size 0; -ENOMEM.
 */
int mmn_sim_pool_init(struct mmn_sim_pool *pool, unsigned int nr, size_t obj_size);

/**
 * mmn_sim_pool_fini() - free the pool's memory
 * @pool: the pool; every object must have been put back
 */
void mmn_sim_pool_fini(struct mmn_sim_pool *pool);

/**
 * mmn_sim_pool_get() - take an object
 * @pool: the pool
 *
 * Context: lock-free, never sleeps, never allocates.
 * Return: an object (contents as last put), or NULL when the pool is empty.
 */
void *mmn_sim_pool_get(struct mmn_sim_pool *pool);

/**
 * mmn_sim_pool_put() - give an object back
 * @pool: the pool
 * @obj: an object that mmn_sim_pool_get() returned
 *
 * Context: lock-free, never sleeps.
 */
void mmn_sim_pool_put(struct mmn_sim_pool *pool, void *obj);

/** mmn_sim_pool_available() - objects in the pool now (a snapshot) */
unsigned int mmn_sim_pool_available(struct mmn_sim_pool *pool);

/* ------------------------------------------------------------------------ */
/* Drivers and bindings                                                      */
/* ------------------------------------------------------------------------ */

/**
 * enum mmn_sim_driver_kind - which driver pattern
 * @MMN_SIM_DRIVER_USERPTR: xe userptr: one binding = one user range, its
 *	finish embedded, a finish_inuse flag with a synchronous fallback
 * @MMN_SIM_DRIVER_SVM: xe SVM / drm_gpusvm: pages populated on fault in
 *	chunks, a finish container per invocation from a fixed pool, a
 *	single-pass fallback when the pool is empty
 */
enum mmn_sim_driver_kind {
	MMN_SIM_DRIVER_USERPTR = 0,
	MMN_SIM_DRIVER_SVM,
};

/**
 * enum mmn_sim_event_type - steps of the drivers, as traced
 * @MMN_SIM_EV_START: first pass entered (invalidate or invalidate_start)
 * @MMN_SIM_EV_REFUSED: non-blockable range: returned false, nothing done
 * @MMN_SIM_EV_SET_SEQ: mmn_interval_set_seq() under the driver lock
 * @MMN_SIM_EV_REPIN: binding marked for repin (userptr)
 * @MMN_SIM_EV_ZAP: PTEs of the range cleared
 * @MMN_SIM_EV_SYNC_FALLBACK: finish in use: all work done in the first pass
 * @MMN_SIM_EV_POOL_EMPTY: no finish container: all work done in the first pass
 * @MMN_SIM_EV_POOL_GET: finish container taken from the pool
 * @MMN_SIM_EV_PREEMPT_SUBMIT: preemption started
 * @MMN_SIM_EV_TLB_SUBMIT: TLB invalidation started
 * @MMN_SIM_EV_PREEMPT_WAIT: waited for a preemption
 * @MMN_SIM_EV_TLB_WAIT: waited for a TLB invalidation
 * @MMN_SIM_EV_UNMAP: pages of the range torn down (once per invocation)
 * @MMN_SIM_EV_DEFER: first pass returns a finish (emitted after the driver
 *	lock is dropped, just before the first pass returns)
 * @MMN_SIM_EV_DONE: first pass returns with nothing left to do (likewise)
 * @MMN_SIM_EV_FINISH: invalidate_finish entered
 * @MMN_SIM_EV_POOL_PUT: finish container returned to the pool
 * @MMN_SIM_EV_FAULT: fault path entered for a binding
 * @MMN_SIM_EV_FAULT_RETRY: mmn_interval_read_retry() said retry
 * @MMN_SIM_EV_INSTALL: pages installed in the mirror
 */
enum mmn_sim_event_type {
	MMN_SIM_EV_START = 0,
	MMN_SIM_EV_REFUSED,
	MMN_SIM_EV_SET_SEQ,
	MMN_SIM_EV_REPIN,
	MMN_SIM_EV_ZAP,
	MMN_SIM_EV_SYNC_FALLBACK,
	MMN_SIM_EV_POOL_EMPTY,
	MMN_SIM_EV_POOL_GET,
	MMN_SIM_EV_PREEMPT_SUBMIT,
	MMN_SIM_EV_TLB_SUBMIT,
	MMN_SIM_EV_PREEMPT_WAIT,
	MMN_SIM_EV_TLB_WAIT,
	MMN_SIM_EV_UNMAP,
	MMN_SIM_EV_DEFER,
	MMN_SIM_EV_DONE,
	MMN_SIM_EV_FINISH,
	MMN_SIM_EV_POOL_PUT,
	MMN_SIM_EV_FAULT,
	MMN_SIM_EV_FAULT_RETRY,
	MMN_SIM_EV_INSTALL,
	MMN_SIM_EV_NR,
};

/**
 * struct mmn_sim_event - one traced driver step
 * @type: the step
 * @dev_id: the binding's device id
 * @binding_id: the binding's id (0, 1, ... per driver, in bind order)
 * @start: range concerned (first address), if any
 * @end: range concerned (one past the end), if any
 */
struct mmn_sim_event {
	enum mmn_sim_event_type type;
	unsigned int dev_id;
	unsigned int binding_id;
	unsigned long start;
	unsigned long end;
};

/**
 * typedef mmn_sim_trace_fn - called for every driver step
 * @arg: the driver's trace_arg
 * @ev: the step (valid during the call)
 *
 * Called from notifier callbacks, some with the driver lock held (all but
 * DEFER, DONE, FAULT and FAULT_RETRY), so it must not call back into the
 * driver. It may block (tests use that to force interleavings) only on DEFER,
 * DONE, FAULT and FAULT_RETRY.
 */
typedef void mmn_sim_trace_fn(void *arg, const struct mmn_sim_event *ev);

/** mmn_sim_event_name() - short name of an event type ("start", "zap", ...) */
const char *mmn_sim_event_name(enum mmn_sim_event_type type);

/* Fault injection (struct mmn_sim_driver_config.bugs), to prove tests can fail. */
#define MMN_SIM_BUG_NO_WAIT	(1u << 0)	/* never wait for device operations */
#define MMN_SIM_BUG_NO_RETRY	(1u << 1)	/* fault path ignores read_retry */

/**
 * struct mmn_sim_driver_config - which driver, which variant
 * @kind: userptr or svm
 * @single_pass: use the single-pass variant (ops.invalidate starts and waits)
 * @pool_size: svm: finish containers in the pool (0: the pool is always empty)
 * @chunk_pages: svm: pages populated per fault (0: 8)
 * @trace: called for every driver step, or NULL
 * @trace_arg: passed to @trace
 * @bugs: MMN_SIM_BUG_* fault injection; 0 in real use
 */
struct mmn_sim_driver_config {
	enum mmn_sim_driver_kind kind;
	bool single_pass;
	unsigned int pool_size;
	unsigned int chunk_pages;
	mmn_sim_trace_fn *trace;
	void *trace_arg;
	unsigned int bugs;
};

struct mmn_sim_driver;

/**
 * mmn_sim_driver_new() - a driver instance whose notifiers live in @mm
 * @mm: the notifier domain (the process)
 * @cfg: configuration (copied)
 * @drvp: where to store it
 *
 * Return: 0; -EINVAL; -ENOMEM.
 */
int mmn_sim_driver_new(struct mmn_mm *mm, const struct mmn_sim_driver_config *cfg,
		       struct mmn_sim_driver **drvp);

/**
 * mmn_sim_driver_destroy() - free a driver
 * @drv: the driver, or NULL
 *
 * Return: 0; -EBUSY (nothing freed) while it has bindings.
 */
int mmn_sim_driver_destroy(struct mmn_sim_driver *drv);

/**
 * mmn_sim_bind() - mirror [start, start+length) on @dev
 * @drv: the driver
 * @dev: the device
 * @start: first address, page aligned
 * @length: bytes, a non-zero multiple of the page size
 * @bp: where to store the binding
 *
 * Inserts the binding's interval notifier and enters the binding in the
 * device's page table. No page is mapped yet: the first access faults (or
 * call mmn_sim_binding_populate()).
 *
 * Return: 0; -EINVAL for bad arguments; -EEXIST if it overlaps another
 * binding of @dev; -ENOMEM; errors of mmn_interval_notifier_insert().
 */
int mmn_sim_bind(struct mmn_sim_driver *drv, struct mmn_sim_dev *dev,
		 unsigned long start, unsigned long length,
		 struct mmn_sim_binding **bp);

/**
 * mmn_sim_unbind() - remove a binding and free it
 * @b: the binding
 *
 * Context: may sleep (mmn_interval_notifier_remove()). No engine of the
 * binding's device may be running.
 * Return: 0; -EBUSY if an engine of the device runs; errors of
 * mmn_interval_notifier_remove().
 */
int mmn_sim_unbind(struct mmn_sim_binding *b);

/**
 * mmn_sim_binding_fault() - the device fault path for @va
 * @b: the binding containing @va
 * @va: the faulting address
 *
 * The kernel's collision-retry loop: mmn_interval_read_begin(), look the
 * pages up, take the driver lock, mmn_interval_read_retry() (unlock and start
 * over on a collision), install, unlock. userptr revalidates the whole
 * binding (every page that is mapped); svm populates the chunk around @va.
 *
 * Context: sleeps. Not from a notifier callback.
 * Return: 0; -EFAULT if nothing is mapped at @va; -EINVAL if @va is outside
 * @b; -EBUSY after too many collisions in a row.
 */
int mmn_sim_binding_fault(struct mmn_sim_binding *b, unsigned long va);

/**
 * mmn_sim_binding_populate() - fault in every page of @b
 * @b: the binding
 *
 * Return: 0; the first error of mmn_sim_binding_fault().
 */
int mmn_sim_binding_populate(struct mmn_sim_binding *b);

/**
 * struct mmn_sim_binding_stats - what happened to a binding (or, summed, to
 * every binding of a driver)
 * @invalidations: first-pass calls that did the invalidation (returned true)
 * @refused: first-pass calls on a non-blockable range (returned false)
 * @teardowns: page teardowns; equals @invalidations once all finishes ran
 * @deferred: first passes that returned a finish
 * @finishes: invalidate_finish calls
 * @sync_fallbacks: userptr: finish in use, all work in the first pass
 * @pool_fallbacks: svm: pool empty, all work in the first pass
 * @faults: fault path entries
 * @fault_retries: collisions seen by read_retry
 * @installs: successful installs
 * @pages: pages mapped in the mirror now
 * @finish_inuse: userptr: the embedded finish is in use now
 */
struct mmn_sim_binding_stats {
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
	uint64_t pages;
	bool finish_inuse;
};

/**
 * mmn_sim_binding_get_stats() - read a binding's counters
 * @b: the binding
 * @st: filled in
 *
 * Context: takes the driver lock of the binding's device.
 */
void mmn_sim_binding_get_stats(struct mmn_sim_binding *b,
			       struct mmn_sim_binding_stats *st);

/**
 * mmn_sim_driver_get_stats() - the counters of every binding ever made, summed
 * @drv: the driver
 * @st: filled in (@pages and @finish_inuse are left 0)
 */
void mmn_sim_driver_get_stats(struct mmn_sim_driver *drv,
			      struct mmn_sim_binding_stats *st);

/** mmn_sim_binding_id() - the id traces use for @b */
unsigned int mmn_sim_binding_id(const struct mmn_sim_binding *b);

/** mmn_sim_binding_notifier() - @b's interval notifier */
struct mmn_interval_notifier *mmn_sim_binding_notifier(struct mmn_sim_binding *b);

/* ------------------------------------------------------------------------ */
/* Application memory with generation stamps                                 */
/* ------------------------------------------------------------------------ */

struct mmn_sim_umem;

/**
 * enum mmn_sim_verdict - what an engine access found (mmn_sim_umem_access())
 * @MMN_SIM_OK: the page is mapped, and it is the page the mirror was given
 * @MMN_SIM_UNMAPPED: the application has unmapped the page (the invalidation
 *	that covered it completed before this access)
 * @MMN_SIM_AFTER_INVAL: an invalidation covering the page completed after the
 *	mirror entry was made: the device should have dropped it
 * @MMN_SIM_STALE_GEN: the page was replaced (new generation) since the mirror
 *	entry was made
 * @MMN_SIM_STALE_READ: the stamp read from memory is not the one the mirror
 *	entry was made for
 * @MMN_SIM_SEGV: the access crashed (caught SIGSEGV)
 */
enum mmn_sim_verdict {
	MMN_SIM_OK = 0,
	MMN_SIM_UNMAPPED,
	MMN_SIM_AFTER_INVAL,
	MMN_SIM_STALE_GEN,
	MMN_SIM_STALE_READ,
	MMN_SIM_SEGV,
	MMN_SIM_VERDICT_NR,
};

/**
 * struct mmn_sim_umem_stats - what the application window did and saw
 * @invalidations: range_start / _end pairs it made
 * @munmaps: mmn_sim_umem_munmap() calls that unmapped something
 * @mmaps: mmn_sim_umem_mmap() calls
 * @dontneeds: mmn_sim_umem_dontneed() calls that changed something
 * @mremaps: mmn_sim_umem_mremap() calls that moved pages
 * @protects: mmn_sim_umem_protect() calls
 * @holes_lost: pages that could not be mapped again because something else
 *	was mapped into the hole meanwhile
 * @accesses: mmn_sim_umem_access() calls
 * @verdicts: mmn_sim_umem_access() results by enum mmn_sim_verdict
 */
struct mmn_sim_umem_stats {
	uint64_t invalidations;
	uint64_t munmaps;
	uint64_t mmaps;
	uint64_t dontneeds;
	uint64_t mremaps;
	uint64_t protects;
	uint64_t holes_lost;
	uint64_t accesses;
	uint64_t verdicts[MMN_SIM_VERDICT_NR];
};

/**
 * mmn_sim_umem_new() - map a window of @npages fresh pages
 * @mm: the domain that the window's changes invalidate
 * @npages: pages in the window
 * @ump: where to store it
 *
 * Every page starts mapped, with a new generation stamp in its first 8 bytes.
 * Generations are unique in the process: a page gets a new one whenever the
 * memory behind it is replaced.
 *
 * Return: 0; -EINVAL; -ENOMEM.
 */
int mmn_sim_umem_new(struct mmn_mm *mm, unsigned long npages,
		     struct mmn_sim_umem **ump);

/**
 * mmn_sim_umem_destroy() - unmap the window (with invalidation) and free it
 * @um: the window, or NULL
 */
void mmn_sim_umem_destroy(struct mmn_sim_umem *um);

/** mmn_sim_umem_base() - first address of the window */
unsigned long mmn_sim_umem_base(const struct mmn_sim_umem *um);

/** mmn_sim_umem_size() - size of the window in bytes */
unsigned long mmn_sim_umem_size(const struct mmn_sim_umem *um);

/**
 * mmn_sim_umem_munmap() - unmap the window's mapped pages in [addr, addr+len)
 * @um: the window
 * @addr: page aligned, inside the window
 * @len: page multiple, inside the window
 *
 * UNMAP invalidation around the real munmap(). Holes are left alone (they
 * may hold someone else's mapping by now).
 *
 * Context: takes the window's mmap lock for writing; sleeps in the callbacks.
 * Return: 0; -EINVAL for a range outside the window; -errno of munmap().
 */
int mmn_sim_umem_munmap(struct mmn_sim_umem *um, unsigned long addr, unsigned long len);

/**
 * mmn_sim_umem_mmap() - map fresh pages with new generations at [addr, addr+len)
 * @um: the window
 * @addr: page aligned, inside the window
 * @len: page multiple, inside the window
 *
 * Mapped pages are replaced (MAP_FIXED, after an UNMAP invalidation); holes
 * are filled with MAP_FIXED_NOREPLACE (a hole someone else took is counted
 * in holes_lost and stays ours-unmapped).
 *
 * Return: 0; -EINVAL; -errno of mmap().
 */
int mmn_sim_umem_mmap(struct mmn_sim_umem *um, unsigned long addr, unsigned long len);

/**
 * mmn_sim_umem_dontneed() - madvise(MADV_DONTNEED) the mapped pages
 * @um: the window
 * @addr: page aligned, inside the window
 * @len: page multiple, inside the window
 *
 * CLEAR invalidation around the real madvise(); the pages then read as zero,
 * and get new generations (new contents, as a new physical page would).
 *
 * Return: 0; -EINVAL; -errno of madvise().
 */
int mmn_sim_umem_dontneed(struct mmn_sim_umem *um, unsigned long addr, unsigned long len);

/**
 * mmn_sim_umem_mremap() - move @len bytes of mapped pages from @from to @to
 * @um: the window
 * @from: page aligned source, inside the window
 * @len: page multiple
 * @to: page aligned destination, inside the window, not overlapping @from
 *
 * Only pages mapped at both the source and the destination move (page by
 * page, mremap(MREMAP_FIXED)); the destination's previous pages go away and
 * the source pages become holes. UNMAP invalidations of both ranges are open
 * around the system calls. The moved pages keep their generation.
 *
 * Return: 0; -EINVAL; -errno of mremap().
 */
int mmn_sim_umem_mremap(struct mmn_sim_umem *um, unsigned long from,
			unsigned long len, unsigned long to);

/**
 * mmn_sim_umem_protect() - an invalidation that changes nothing
 * @um: the window
 * @addr: page aligned, inside the window
 * @len: page multiple, inside the window
 *
 * PROTECTION_PAGE invalidation (as NUMA hinting makes) under the mmap lock
 * taken for reading, so several may run at once and overlap each other.
 *
 * Return: 0; -EINVAL.
 */
int mmn_sim_umem_protect(struct mmn_sim_umem *um, unsigned long addr, unsigned long len);

/**
 * mmn_sim_umem_set_unordered_dma() - devices may touch pages out of order
 * @um: the window
 * @on: true for a driver with an injected bug (MMN_SIM_BUG_*)
 *
 * Such a driver lets engines reach a page after the invalidation covering it
 * completed, while the window's mmap replaces it: the violation that
 * mmn_sim_umem_access() reports. Devices reach memory by DMA, which no CPU
 * memory model orders; with @on, ThreadSanitizer starts each replacement
 * page with no access history instead of imitating a write to it, so it does
 * not report the injected bug as a data race of the test. Off (the
 * default), it checks that the driver orders every device access before the
 * unmap. No effect in other builds.
 */
void mmn_sim_umem_set_unordered_dma(struct mmn_sim_umem *um, bool on);

/**
 * mmn_sim_umem_lookup() - the window's mmn_sim_lookup_fn
 * @arg: the window (struct mmn_sim_umem *)
 * @va: address
 * @write: unused
 * @host: set to the page's address
 * @pfn: set to the page's generation and invalidation count
 *
 * Context: takes the mmap lock for reading.
 * Return: 0; -EFAULT if @va is not a mapped page of the window.
 */
int mmn_sim_umem_lookup(void *arg, unsigned long va, bool write, void **host,
			uint64_t *pfn);

/**
 * mmn_sim_umem_access() - an engine access to the window, checked
 * @um: the window
 * @host: the host pointer the engine translated to (@va's page plus offset)
 * @pfn: the page identity the mirror entry was made with
 * @write: also write (increments the page's write counter)
 *
 * Call it from the engine's access callback. It checks the page against
 * what the application did (see enum mmn_sim_verdict), reads the stamp from
 * memory and, for a write, writes; a SIGSEGV during the access is caught and
 * reported as MMN_SIM_SEGV instead of crashing. Each result is counted.
 *
 * Return: the verdict.
 */
enum mmn_sim_verdict mmn_sim_umem_access(struct mmn_sim_umem *um, void *host,
					 uint64_t pfn, bool write);

/**
 * mmn_sim_umem_get_stats() - read the window's counters
 * @um: the window
 * @st: filled in
 */
void mmn_sim_umem_get_stats(struct mmn_sim_umem *um, struct mmn_sim_umem_stats *st);

/** mmn_sim_verdict_name() - "ok", "unmapped", "after-inval", ... */
const char *mmn_sim_verdict_name(enum mmn_sim_verdict v);

#ifdef __cplusplus
}
#endif

#endif /* MMN_SIM_H */
