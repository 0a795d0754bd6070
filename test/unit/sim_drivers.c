// SPDX-License-Identifier: MIT
/*
 * The simulated drivers' flows, step by step, as exact operation logs
 * (docs/TESTING.md scenarios 33, 34, 38 and 39):
 *
 *   userptr two-pass: every device's TLB invalidation is started before any
 *   is waited for; single pass waits each in turn; a binding never bound
 *   needs no flush; a non-blockable range is refused; finish_inuse makes a
 *   concurrent invalidation of the same binding do everything synchronously;
 *   preempt-fence mode preempts a busy engine and the job resumes through
 *   the fault path.
 *   svm: per-invocation containers from the pool, the single-pass fallback
 *   when the pool is empty (same outcome), clamping to the binding,
 *   concurrent invocations with their own containers.
 *   fault path: a collision between lookup and install is retried, and
 *   without the retry (injected bug) the stale entry is caught.
 *   devices: a TLB invalidation drops cached translations only when it
 *   completes; idle preemption is a no-op; argument and state errors.
 *
 * Logs read "d<device>:<step>" in the order the steps ran.
 */
#include "sim.h"

#include "harness.h"

#define PAGE 4096ul
#define LAT_NS 100000		/* 100 us device latency */
#define MAXDEV 8
#define WINDOW_PAGES 32
#define BIND_PAGES 16

/* ---- operation log ------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[16384];
static size_t log_len;

/* Blocking hook: the thread that traces @block_type first waits for @go. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int block_type = -1;
static int blocked;		/* a thread reached the hook */
static int go;			/* let it continue */

static void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	log_buf[0] = 0;
	pthread_mutex_unlock(&log_lock);
}

/* The log without its trailing space. */
static const char *log_get(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_len && log_buf[log_len - 1] == ' ')
		log_buf[--log_len] = 0;
	pthread_mutex_unlock(&log_lock);
	return log_buf;
}

static void trace(void *arg, const struct mmn_sim_event *ev)
{
	(void)arg;
	pthread_mutex_lock(&log_lock);
	log_len += (size_t)snprintf(log_buf + log_len, sizeof(log_buf) - log_len, "d%u:%s ",
				    ev->dev_id, mmn_sim_event_name(ev->type));
	pthread_mutex_unlock(&log_lock);

	pthread_mutex_lock(&gate_lock);
	if ((int)ev->type == block_type) {
		block_type = -1;
		blocked = 1;
		pthread_cond_broadcast(&gate_cond);
		while (!go)
			pthread_cond_wait(&gate_cond, &gate_lock);
	}
	pthread_mutex_unlock(&gate_lock);
}

static void gate_arm(enum mmn_sim_event_type type)
{
	pthread_mutex_lock(&gate_lock);
	block_type = (int)type;
	blocked = 0;
	go = 0;
	pthread_mutex_unlock(&gate_lock);
}

static void gate_wait_blocked(void)
{
	pthread_mutex_lock(&gate_lock);
	while (!blocked)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static void gate_open(void)
{
	pthread_mutex_lock(&gate_lock);
	go = 1;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* ---- a test world: a domain, a window, a driver, devices -------------------- */

struct env {
	struct mmn_mm *mm;
	struct mmn_sim_umem *um;
	struct mmn_sim_driver *drv;
	struct mmn_sim_dev *dev[MAXDEV];
	struct mmn_sim_binding *b[MAXDEV];
	unsigned int ndev;
	unsigned long base;
	/* collision injection in the lookup */
	int collide_once;
	unsigned long collide_va;
};

static int env_lookup(void *arg, unsigned long va, bool write, void **host, uint64_t *pfn)
{
	struct env *e = arg;
	int ret = mmn_sim_umem_lookup(e->um, va, write, host, pfn);

	/* After the lookup, before the driver lock: an invalidation collides. */
	if (e->collide_once && va == e->collide_va) {
		e->collide_once = 0;
		mmn_sim_umem_protect(e->um, va & ~(PAGE - 1), PAGE);
	}
	return ret;
}

static void env_setup(struct env *e, enum mmn_sim_driver_kind kind, bool single,
		      unsigned int pool, unsigned int ndev, enum mmn_sim_dev_mode mode,
		      bool populate, unsigned int bugs)
{
	struct mmn_sim_driver_config dcfg = {
		.kind = kind,
		.single_pass = single,
		.pool_size = pool,
		.trace = trace,
		.bugs = bugs,
	};

	memset(e, 0, sizeof(*e));
	assert_eq(mmn_mm_new(&e->mm), 0);
	assert_eq(mmn_sim_umem_new(e->mm, WINDOW_PAGES, &e->um), 0);
	assert_eq(mmn_sim_driver_new(e->mm, &dcfg, &e->drv), 0);
	e->base = mmn_sim_umem_base(e->um);
	e->ndev = ndev;
	for (unsigned int i = 0; i < ndev; i++) {
		struct mmn_sim_dev_config cfg = {
			.id = i,
			.mode = mode,
			.lookup = env_lookup,
			.lookup_arg = e,
		};

		mmn_sim_latency_fixed(&cfg.tlb_latency, LAT_NS);
		mmn_sim_latency_fixed(&cfg.preempt_latency, LAT_NS);
		assert_eq(mmn_sim_dev_new(&cfg, &e->dev[i]), 0);
		assert_eq(mmn_sim_bind(e->drv, e->dev[i], e->base, BIND_PAGES * PAGE, &e->b[i]), 0);
		if (populate)
			assert_eq(mmn_sim_binding_populate(e->b[i]), 0);
	}
	log_clear();
}

static void env_teardown(struct env *e)
{
	struct mmn_stats st;

	for (unsigned int i = 0; i < e->ndev; i++) {
		expect_eq(mmn_sim_unbind(e->b[i]), 0);
		expect_eq(mmn_sim_dev_destroy(e->dev[i]), 0);
	}
	expect_eq(mmn_sim_driver_destroy(e->drv), 0);
	mmn_sim_umem_destroy(e->um);
	expect_eq(mmn_mm_get_stats(e->mm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq(st.seq & 1, 0);
	expect_eq(st.warnings, 0);
	expect_eq(mmn_mm_destroy(e->mm), 0);
}

/* One blockable invalidation of pages [first, last) of the window. */
static int invalidate(struct env *e, unsigned long first, unsigned long last)
{
	struct mmn_range range;
	int ret;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, e->mm, e->base + first * PAGE,
		       e->base + last * PAGE);
	ret = mmn_invalidate_range_start(&range);
	if (!ret)
		mmn_invalidate_range_end(&range);
	return ret;
}

static struct mmn_sim_binding_stats bstats(struct mmn_sim_binding *b)
{
	struct mmn_sim_binding_stats st;

	mmn_sim_binding_get_stats(b, &st);
	return st;
}

/* ---- userptr --------------------------------------------------------------- */

TEST(userptr_two_pass_starts_all_then_waits)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 3, MMN_SIM_DEV_FAULT, true, 0);
	expect_eq(invalidate(&e, 0, BIND_PAGES), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:repin d0:zap d0:tlb_submit d0:defer "
		      "d1:start d1:set_seq d1:repin d1:zap d1:tlb_submit d1:defer "
		      "d2:start d2:set_seq d2:repin d2:zap d2:tlb_submit d2:defer "
		      "d0:finish d0:tlb_wait d0:unmap "
		      "d1:finish d1:tlb_wait d1:unmap "
		      "d2:finish d2:tlb_wait d2:unmap");
	for (unsigned int i = 0; i < 3; i++) {
		struct mmn_sim_binding_stats st = bstats(e.b[i]);

		expect_eq(st.invalidations, 1);
		expect_eq(st.deferred, 1);
		expect_eq(st.finishes, 1);
		expect_eq(st.teardowns, 1);
		expect_eq(st.sync_fallbacks, 0);
		expect_eq(st.pages, 0);
		expect_false(st.finish_inuse);
	}
	/* Faulted back in, it is invalidated again the same way. */
	expect_eq(mmn_sim_binding_populate(e.b[1]), 0);
	expect_eq(bstats(e.b[1]).pages, BIND_PAGES);
	env_teardown(&e);
}

TEST(userptr_single_pass_waits_each_device)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, true, 0, 3, MMN_SIM_DEV_FAULT, true, 0);
	expect_eq(invalidate(&e, 0, BIND_PAGES), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:repin d0:zap d0:tlb_submit d0:tlb_wait d0:unmap d0:done "
		      "d1:start d1:set_seq d1:repin d1:zap d1:tlb_submit d1:tlb_wait d1:unmap d1:done "
		      "d2:start d2:set_seq d2:repin d2:zap d2:tlb_submit d2:tlb_wait d2:unmap d2:done");
	for (unsigned int i = 0; i < 3; i++) {
		expect_eq(bstats(e.b[i]).teardowns, 1);
		expect_eq(bstats(e.b[i]).finishes, 0);
	}
	env_teardown(&e);
}

TEST(userptr_never_bound_needs_no_flush)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 1, MMN_SIM_DEV_FAULT, false, 0);
	expect_eq(invalidate(&e, 2, 3), 0);
	expect_str_eq(log_get(), "d0:start d0:set_seq d0:repin d0:zap d0:unmap d0:done");
	expect_eq(bstats(e.b[0]).teardowns, 1);
	expect_eq(bstats(e.b[0]).deferred, 0);
	env_teardown(&e);
}

TEST(userptr_nonblock_is_refused)
{
	struct mmn_range range;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 2, MMN_SIM_DEV_FAULT, true, 0);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, e.mm, e.base, e.base + PAGE);
	expect_eq(mmn_invalidate_range_start_nonblock(&range), -EAGAIN);
	/* The walk stops at the first refusal: device 1 is never called. */
	expect_str_eq(log_get(), "d0:refused");
	expect_eq(bstats(e.b[0]).refused, 1);
	expect_eq(bstats(e.b[0]).invalidations, 0);
	expect_eq(bstats(e.b[0]).teardowns, 0);
	expect_eq(bstats(e.b[0]).pages, BIND_PAGES);
	expect_eq(bstats(e.b[1]).refused, 0);
	env_teardown(&e);
}

struct inval_arg {
	struct env *e;
	unsigned long first, last;
	int ret;
};

static void *inval_thread(void *arg)
{
	struct inval_arg *a = arg;

	a->ret = invalidate(a->e, a->first, a->last);
	return NULL;
}

/* Scenario 33 / 39(c): a second invalidation while the finish is in use. */
TEST(userptr_finish_inuse_goes_synchronous)
{
	struct inval_arg a;
	struct mmn_sim_binding_stats st;
	pthread_t th;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 1, MMN_SIM_DEV_FAULT, true, 0);
	a = (struct inval_arg){ &e, 0, 8, -1 };
	gate_arm(MMN_SIM_EV_DEFER);
	pthread_create(&th, NULL, inval_thread, &a);
	gate_wait_blocked();		/* A's first pass returned its finish */
	expect_true(bstats(e.b[0]).finish_inuse);
	expect_eq(invalidate(&e, 4, 12), 0);	/* B, overlapping, same period */
	gate_open();
	pthread_join(th, NULL);
	expect_eq(a.ret, 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:repin d0:zap d0:tlb_submit d0:defer "
		      "d0:start d0:set_seq d0:repin d0:zap d0:sync_fallback d0:tlb_submit "
		      "d0:tlb_wait d0:unmap d0:done "
		      "d0:finish d0:tlb_wait d0:unmap");
	st = bstats(e.b[0]);
	expect_eq(st.invalidations, 2);
	expect_eq(st.sync_fallbacks, 1);
	expect_eq(st.deferred, 1);
	expect_eq(st.finishes, 1);
	expect_eq(st.teardowns, 2);
	expect_false(st.finish_inuse);
	expect_eq(st.pages, BIND_PAGES - 12);
	env_teardown(&e);
}

/* A job that touches page 0, waits at a gate while busy, touches it again. */
struct gated_job {
	struct mmn_sim_umem *um;
	unsigned long va;
	int step;
	int at_gate;
	int open;
	int verdicts[MMN_SIM_VERDICT_NR];
	int errors;
};

static bool gj_next_job(struct mmn_sim_engine *eng, void *arg)
{
	struct gated_job *j = arg;

	(void)eng;
	return __atomic_load_n(&j->step, __ATOMIC_ACQUIRE) == 0;
}

static bool gj_next_access(struct mmn_sim_engine *eng, void *arg, unsigned long *va,
			   bool *write)
{
	struct gated_job *j = arg;

	(void)eng;
	*va = j->va;
	*write = true;
	switch (j->step++) {
	case 0:
		return true;
	case 1:
		__atomic_store_n(&j->at_gate, 1, __ATOMIC_RELEASE);
		while (!__atomic_load_n(&j->open, __ATOMIC_ACQUIRE))
			sched_yield();
		return true;
	default:
		return false;
	}
}

static void gj_access(struct mmn_sim_engine *eng, void *arg, unsigned long va, void *host,
		      uint64_t pfn, bool write)
{
	struct gated_job *j = arg;

	(void)eng;
	(void)va;
	j->verdicts[mmn_sim_umem_access(j->um, host, pfn, write)]++;
}

static void gj_error(struct mmn_sim_engine *eng, void *arg, unsigned long va, int err)
{
	struct gated_job *j = arg;

	(void)eng;
	(void)va;
	(void)err;
	j->errors++;
}

static const struct mmn_sim_job_ops gated_ops = {
	.next_job = gj_next_job,
	.next_access = gj_next_access,
	.access = gj_access,
	.fault_error = gj_error,
};

/* Scenario 39(a): preempt-fence mode with a busy engine. */
TEST(userptr_preempts_busy_engine)
{
	struct gated_job job = { 0 };
	struct mmn_sim_dev_stats ds;
	struct mmn_sim_engine *eng;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 1, MMN_SIM_DEV_PREEMPT, false, 0);
	job.um = e.um;
	job.va = e.base + 8;
	assert_eq(mmn_sim_engine_new(e.dev[0], &eng), 0);
	assert_eq(mmn_sim_engine_start(eng, &gated_ops, &job), 0);
	assert_true(wait_until(__atomic_load_n(&job.at_gate, __ATOMIC_ACQUIRE), 10000));
	expect_str_eq(log_get(), "d0:fault d0:install");
	log_clear();
	expect_eq(invalidate(&e, 0, BIND_PAGES), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:repin d0:zap d0:preempt_submit d0:tlb_submit "
		      "d0:defer d0:finish d0:preempt_wait d0:tlb_wait d0:unmap");
	log_clear();
	__atomic_store_n(&job.open, 1, __ATOMIC_RELEASE);
	expect_eq(mmn_sim_engine_stop(eng), 0);
	/* The job resumed through the fault path. */
	expect_str_eq(log_get(), "d0:fault d0:install");
	mmn_sim_dev_get_stats(e.dev[0], &ds);
	expect_eq(ds.preempts, 1);
	expect_eq(ds.engine_preemptions, 1);
	expect_eq(ds.faults, 2);
	expect_eq(ds.accesses, 2);
	expect_eq(ds.jobs, 1);
	expect_eq(job.verdicts[MMN_SIM_OK], 2);
	expect_eq(job.errors, 0);
	env_teardown(&e);
}

/* ---- svm ----------------------------------------------------------------- */

TEST(svm_two_pass_containers_from_pool)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 8, 3, MMN_SIM_DEV_FAULT, true, 0);
	expect_eq(invalidate(&e, 0, BIND_PAGES), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:zap d0:pool_get d0:tlb_submit d0:defer "
		      "d1:start d1:set_seq d1:zap d1:pool_get d1:tlb_submit d1:defer "
		      "d2:start d2:set_seq d2:zap d2:pool_get d2:tlb_submit d2:defer "
		      "d0:finish d0:tlb_wait d0:unmap d0:pool_put "
		      "d1:finish d1:tlb_wait d1:unmap d1:pool_put "
		      "d2:finish d2:tlb_wait d2:unmap d2:pool_put");
	for (unsigned int i = 0; i < 3; i++) {
		expect_eq(bstats(e.b[i]).teardowns, 1);
		expect_eq(bstats(e.b[i]).pool_fallbacks, 0);
		expect_eq(bstats(e.b[i]).pages, 0);
	}
	env_teardown(&e);
}

/* Scenario 34 / 38: the pool runs dry; same outcome, done in the first pass. */
TEST(svm_empty_pool_falls_back_to_single_pass)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 1, 3, MMN_SIM_DEV_FAULT, true, 0);
	expect_eq(invalidate(&e, 0, BIND_PAGES), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:zap d0:pool_get d0:tlb_submit d0:defer "
		      "d1:start d1:set_seq d1:zap d1:pool_empty d1:tlb_submit d1:tlb_wait d1:unmap d1:done "
		      "d2:start d2:set_seq d2:zap d2:pool_empty d2:tlb_submit d2:tlb_wait d2:unmap d2:done "
		      "d0:finish d0:tlb_wait d0:unmap d0:pool_put");
	expect_eq(bstats(e.b[0]).pool_fallbacks, 0);
	for (unsigned int i = 0; i < 3; i++) {
		struct mmn_sim_binding_stats st = bstats(e.b[i]);

		/* Identical outcome whichever way it went. */
		expect_eq(st.invalidations, 1);
		expect_eq(st.teardowns, 1);
		expect_eq(st.pages, 0);
		expect_eq(st.pool_fallbacks, i ? 1 : 0);
	}
	env_teardown(&e);
}

TEST(svm_pool_of_zero_is_single_pass)
{
	struct mmn_sim_binding_stats st;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 0, 2, MMN_SIM_DEV_FAULT, true, 0);
	expect_eq(invalidate(&e, 0, BIND_PAGES), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:zap d0:pool_empty d0:tlb_submit d0:tlb_wait d0:unmap d0:done "
		      "d1:start d1:set_seq d1:zap d1:pool_empty d1:tlb_submit d1:tlb_wait d1:unmap d1:done");
	mmn_sim_driver_get_stats(e.drv, &st);
	expect_eq(st.pool_fallbacks, 2);
	expect_eq(st.teardowns, 2);
	env_teardown(&e);
}

TEST(svm_single_pass)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, true, 8, 2, MMN_SIM_DEV_FAULT, true, 0);
	expect_eq(invalidate(&e, 0, 1), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:zap d0:tlb_submit d0:tlb_wait d0:unmap d0:done "
		      "d1:start d1:set_seq d1:zap d1:tlb_submit d1:tlb_wait d1:unmap d1:done");
	env_teardown(&e);
}

/* Ranges are clamped to the binding; pages outside stay mapped. */
static struct mmn_sim_event zap_ev;

static void zap_trace(void *arg, const struct mmn_sim_event *ev)
{
	if (ev->type == MMN_SIM_EV_ZAP)
		zap_ev = *ev;
	trace(arg, ev);
}

TEST(svm_range_is_clamped)
{
	struct mmn_sim_driver_config dcfg = {
		.kind = MMN_SIM_DRIVER_SVM, .pool_size = 4, .trace = zap_trace,
	};
	struct mmn_sim_driver *drv2;
	struct mmn_sim_binding *b2;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 4, 1, MMN_SIM_DEV_FAULT, true, 0);
	/* A second binding on pages [16, 32) of the same device, traced. */
	assert_eq(mmn_sim_driver_new(e.mm, &dcfg, &drv2), 0);
	assert_eq(mmn_sim_bind(drv2, e.dev[0], e.base + BIND_PAGES * PAGE, BIND_PAGES * PAGE, &b2), 0);
	assert_eq(mmn_sim_binding_populate(b2), 0);
	log_clear();
	/* Pages [12, 20): 4 pages of each binding. */
	expect_eq(invalidate(&e, 12, 20), 0);
	expect_eq_ul(zap_ev.start, e.base + BIND_PAGES * PAGE);
	expect_eq_ul(zap_ev.end, e.base + 20 * PAGE);
	expect_eq(bstats(e.b[0]).pages, BIND_PAGES - 4);
	expect_eq(bstats(b2).pages, BIND_PAGES - 4);
	expect_eq(bstats(b2).teardowns, 1);
	expect_eq(mmn_sim_unbind(b2), 0);
	expect_eq(mmn_sim_driver_destroy(drv2), 0);
	env_teardown(&e);
}

/* Scenario 33, svm: concurrent invocations each get their own container. */
TEST(svm_concurrent_invocations_own_containers)
{
	struct inval_arg a;
	pthread_t th;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 4, 1, MMN_SIM_DEV_FAULT, true, 0);
	a = (struct inval_arg){ &e, 0, 8, -1 };
	gate_arm(MMN_SIM_EV_DEFER);
	pthread_create(&th, NULL, inval_thread, &a);
	gate_wait_blocked();
	expect_eq(invalidate(&e, 4, 12), 0);
	gate_open();
	pthread_join(th, NULL);
	expect_eq(a.ret, 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:zap d0:pool_get d0:tlb_submit d0:defer "
		      "d0:start d0:set_seq d0:zap d0:pool_get d0:tlb_submit d0:defer "
		      "d0:finish d0:tlb_wait d0:unmap d0:pool_put "
		      "d0:finish d0:tlb_wait d0:unmap d0:pool_put");
	expect_eq(bstats(e.b[0]).teardowns, 2);
	expect_eq(bstats(e.b[0]).pool_fallbacks, 0);
	expect_eq(bstats(e.b[0]).pages, BIND_PAGES - 12);
	env_teardown(&e);
}

/* Scenario 38: K devices, two pass: every submit before the first wait. */
TEST(two_pass_submits_every_device_before_waiting)
{
	for (int kind = 0; kind < 2; kind++) {
		const char *log, *first_wait, *last_submit, *p;
		int submits = 0, waits = 0;
		struct env e;

		env_setup(&e, kind ? MMN_SIM_DRIVER_SVM : MMN_SIM_DRIVER_USERPTR, false, 64,
			  MAXDEV, MMN_SIM_DEV_FAULT, true, 0);
		expect_eq(invalidate(&e, 0, WINDOW_PAGES), 0);
		log = log_get();
		first_wait = strstr(log, "tlb_wait");
		last_submit = NULL;
		for (p = log; (p = strstr(p, "tlb_submit")); p++) {
			last_submit = p;
			submits++;
		}
		for (p = log; (p = strstr(p, "tlb_wait")); p++)
			waits++;
		expect_eq(submits, MAXDEV);
		expect_eq(waits, MAXDEV);
		expect_true(first_wait && last_submit && last_submit < first_wait);
		env_teardown(&e);
	}
}

/* ---- the fault path ------------------------------------------------------- */

TEST(fault_retries_after_collision)
{
	for (int kind = 0; kind < 2; kind++) {
		struct mmn_sim_binding_stats st;
		struct env e;

		env_setup(&e, kind ? MMN_SIM_DRIVER_SVM : MMN_SIM_DRIVER_USERPTR, false, 4, 1,
			  MMN_SIM_DEV_FAULT, false, 0);
		e.collide_once = 1;
		e.collide_va = e.base;
		expect_eq(mmn_sim_binding_fault(e.b[0], e.base + 100), 0);
		if (kind)
			expect_str_eq(log_get(),
				      "d0:fault d0:start d0:set_seq d0:zap d0:unmap d0:done "
				      "d0:fault_retry d0:install");
		else
			expect_str_eq(log_get(),
				      "d0:fault d0:start d0:set_seq d0:repin d0:zap d0:unmap d0:done "
				      "d0:fault_retry d0:install");
		st = bstats(e.b[0]);
		expect_eq(st.faults, 1);
		expect_eq(st.fault_retries, 1);
		expect_eq(st.installs, 1);
		expect_eq(st.pages, kind ? 8 : BIND_PAGES);
		env_teardown(&e);
	}
}

struct one_access {
	struct mmn_sim_umem *um;
	unsigned long va;
	int jobs;
	int accesses;
	enum mmn_sim_verdict verdict;
	int (*between)(void *ctx, int access);	/* called before each access */
	void *ctx;
	int naccess;
};

static bool oa_next_job(struct mmn_sim_engine *eng, void *arg)
{
	struct one_access *o = arg;

	(void)eng;
	return o->jobs++ == 0;
}

static bool oa_next_access(struct mmn_sim_engine *eng, void *arg, unsigned long *va,
			   bool *write)
{
	struct one_access *o = arg;

	(void)eng;
	if (o->accesses == o->naccess)
		return false;
	if (o->between)
		o->between(o->ctx, o->accesses);
	o->accesses++;
	*va = o->va;
	*write = false;
	return true;
}

static void oa_access(struct mmn_sim_engine *eng, void *arg, unsigned long va, void *host,
		      uint64_t pfn, bool write)
{
	struct one_access *o = arg;

	(void)eng;
	(void)va;
	o->verdict = mmn_sim_umem_access(o->um, host, pfn, write);
}

static const struct mmn_sim_job_ops one_access_ops = {
	.next_job = oa_next_job,
	.next_access = oa_next_access,
	.access = oa_access,
};

/* Without read_retry (injected bug) the stale entry is installed and caught. */
TEST(fault_without_retry_is_caught)
{
	struct one_access o = { 0 };
	struct mmn_sim_engine *eng;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 1, MMN_SIM_DEV_FAULT, false,
		  MMN_SIM_BUG_NO_RETRY);
	e.collide_once = 1;
	e.collide_va = e.base;
	o.um = e.um;
	o.va = e.base + 64;
	o.naccess = 1;
	o.verdict = MMN_SIM_OK;
	assert_eq(mmn_sim_engine_new(e.dev[0], &eng), 0);
	assert_eq(mmn_sim_engine_run(eng, &one_access_ops, &o), 0);
	expect_str_eq(log_get(),
		      "d0:fault d0:start d0:set_seq d0:repin d0:zap d0:unmap d0:done d0:install");
	expect_eq(o.accesses, 1);
	expect_eq(o.verdict, MMN_SIM_AFTER_INVAL);
	env_teardown(&e);
}

struct protect_arg {
	struct env *e;
	unsigned long first, last;
};

static void *protect_thread(void *arg)
{
	struct protect_arg *a = arg;

	mmn_sim_umem_protect(a->e->um, a->e->base + a->first * PAGE,
			     (a->last - a->first) * PAGE);
	return NULL;
}

struct access_arg {
	struct mmn_sim_engine *eng;
	struct one_access o;
	int done;
};

static void *access_thread(void *arg)
{
	struct access_arg *a = arg;

	mmn_sim_engine_run(a->eng, &one_access_ops, &a->o);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A second invalidation B of a page whose PTE an in-flight invalidation A has
 * already zapped finds nothing to zap, yet must not complete before the
 * engines dropped the page: it flushes (and waits) itself. Flushing only
 * when the zap found live PTEs (the xe SVM PoC's tile mask) would let the
 * engine keep using its TLB entry after B returned.
 */
TEST(svm_overlapping_invalidation_flushes_without_live_ptes)
{
	struct protect_arg pa;
	struct access_arg c = { 0 };
	struct mmn_sim_dev_stats ds;
	struct mmn_sim_engine *eng;
	struct mmn_stats ms;
	pthread_t ta, tc;
	uint64_t hits, waits;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 4, 1, MMN_SIM_DEV_FAULT, true, 0);
	assert_eq(mmn_sim_engine_new(e.dev[0], &eng), 0);
	/* The engine caches page 0. */
	c.eng = eng;
	c.o = (struct one_access){ .um = e.um, .va = e.base, .naccess = 1 };
	assert_eq(mmn_sim_engine_run(eng, &one_access_ops, &c.o), 0);
	expect_eq(c.o.verdict, MMN_SIM_OK);
	log_clear();

	/* A zaps and submits, then stalls before its finish. */
	pa = (struct protect_arg){ &e, 0, 1 };
	gate_arm(MMN_SIM_EV_DEFER);
	pthread_create(&ta, NULL, protect_thread, &pa);
	gate_wait_blocked();
	/* B: nothing left to zap; still flushes and waits for its own flush. */
	mmn_sim_umem_protect(e.um, e.base, PAGE);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:zap d0:pool_get d0:tlb_submit d0:defer "
		      "d0:start d0:set_seq d0:zap d0:pool_get d0:tlb_submit d0:defer "
		      "d0:finish d0:tlb_wait d0:unmap d0:pool_put");
	mmn_sim_dev_get_stats(e.dev[0], &ds);
	hits = ds.tlb_hits;
	expect_eq(mmn_mm_get_stats(e.mm, &ms), 0);
	waits = ms.read_begin_waits;
	/* The engine must miss, fault, and wait for A's period to end. */
	c.o = (struct one_access){ .um = e.um, .va = e.base, .naccess = 1 };
	pthread_create(&tc, NULL, access_thread, &c);
	expect_true(wait_until((mmn_mm_get_stats(e.mm, &ms), ms.read_begin_waits > waits) ||
			       __atomic_load_n(&c.done, __ATOMIC_ACQUIRE), 10000));
	expect_false(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE));
	gate_open();
	pthread_join(ta, NULL);
	pthread_join(tc, NULL);
	mmn_sim_dev_get_stats(e.dev[0], &ds);
	expect_eq(ds.tlb_hits, hits);
	expect_eq(c.o.verdict, MMN_SIM_OK);
	env_teardown(&e);
}

/* ---- devices --------------------------------------------------------------- */

struct tlb_ctx {
	struct mmn_sim_dev *dev;
	struct mmn_sim_op op;
	unsigned long va;
	struct mmn_sim_dev_stats before[3];
};

static int tlb_between(void *arg, int access)
{
	struct tlb_ctx *t = arg;

	mmn_sim_dev_get_stats(t->dev, &t->before[access]);
	/*
	 * Completion is observed only by a wait or a poll, so the op stays
	 * pending however long access 1 takes: nothing polls before access 2.
	 */
	if (access == 1)
		mmn_sim_tlb_inval_submit(t->dev, &t->op, t->va & ~(PAGE - 1),
					 (t->va & ~(PAGE - 1)) + PAGE);
	if (access == 2) {
		mmn_sim_fence_expedite(&t->op.fence);
		mmn_sim_op_wait(&t->op);
	}
	return 0;
}

TEST(tlb_entries_go_only_when_the_flush_completes)
{
	struct mmn_sim_dev_stats after;
	struct one_access o = { 0 };
	struct tlb_ctx t = { 0 };
	struct mmn_sim_engine *eng;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_SVM, false, 4, 1, MMN_SIM_DEV_FAULT, false, 0);
	mmn_sim_fence_init(&t.op.fence);
	t.dev = e.dev[0];
	t.va = e.base + 3 * PAGE;
	o.um = e.um;
	o.va = t.va;
	o.naccess = 3;
	o.between = tlb_between;
	o.ctx = &t;
	assert_eq(mmn_sim_engine_new(e.dev[0], &eng), 0);
	assert_eq(mmn_sim_engine_run(eng, &one_access_ops, &o), 0);
	mmn_sim_dev_get_stats(e.dev[0], &after);
	/* Access 0 faults (miss, fault, miss again); 1 hits although a flush is pending. */
	expect_eq(t.before[1].tlb_misses, 2);
	expect_eq(t.before[1].faults, 1);
	expect_eq(t.before[2].tlb_hits, 1);
	expect_eq(t.before[2].tlb_misses, 2);
	/* Access 2 comes after the flush completed: a miss (the PTE is still there). */
	expect_eq(after.tlb_hits, 1);
	expect_eq(after.tlb_misses, 3);
	expect_eq(after.faults, 1);
	expect_eq(after.accesses, 3);
	expect_eq(after.tlb_invals, 1);
	expect_eq(o.verdict, MMN_SIM_OK);
	env_teardown(&e);
}

TEST(preempting_idle_engines_does_nothing)
{
	struct mmn_sim_dev_stats ds;
	struct mmn_sim_engine *eng;
	struct mmn_sim_op op;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 1, MMN_SIM_DEV_PREEMPT, true, 0);
	assert_eq(mmn_sim_engine_new(e.dev[0], &eng), 0);
	mmn_sim_fence_init(&op.fence);
	expect_eq(mmn_sim_preempt_submit(e.dev[0], &op), 0);
	expect_true(mmn_sim_fence_is_signalled(&op.fence));
	/* Idle engine: the userptr flow has only the TLB flush to wait for. */
	expect_eq(invalidate(&e, 0, 1), 0);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:repin d0:zap d0:tlb_submit d0:defer "
		      "d0:finish d0:tlb_wait d0:unmap");
	mmn_sim_dev_get_stats(e.dev[0], &ds);
	expect_eq(ds.preempts, 0);
	expect_eq(ds.preempts_idle, 2);
	env_teardown(&e);
}

static bool never_job(struct mmn_sim_engine *eng, void *arg)
{
	(void)eng;
	/* Stay "running" until told to stop. */
	while (!__atomic_load_n((int *)arg, __ATOMIC_ACQUIRE))
		sched_yield();
	return false;
}

static bool no_access(struct mmn_sim_engine *eng, void *arg, unsigned long *va, bool *w)
{
	(void)eng;
	(void)arg;
	(void)va;
	(void)w;
	return false;
}

static void no_touch(struct mmn_sim_engine *eng, void *arg, unsigned long va, void *host,
		     uint64_t pfn, bool write)
{
	(void)eng;
	(void)arg;
	(void)va;
	(void)host;
	(void)pfn;
	(void)write;
}

static const struct mmn_sim_job_ops idle_ops = {
	.next_job = never_job, .next_access = no_access, .access = no_touch,
};

TEST(errors)
{
	struct mmn_sim_driver_config bad = { .kind = 7 };
	struct mmn_sim_dev_config badcfg = { .mode = 9 };
	struct mmn_sim_engine *eng;
	struct mmn_sim_binding *b;
	struct mmn_sim_driver *drv;
	struct mmn_sim_dev *dev;
	struct mmn_sim_op op;
	int quit = 0;
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 1, MMN_SIM_DEV_FAULT, false, 0);
	expect_eq(mmn_sim_driver_new(e.mm, &bad, &drv), -EINVAL);
	expect_eq(mmn_sim_dev_new(&badcfg, &dev), -EINVAL);
	expect_eq(mmn_sim_bind(e.drv, e.dev[0], e.base + 1, PAGE, &b), -EINVAL);
	expect_eq(mmn_sim_bind(e.drv, e.dev[0], e.base, 100, &b), -EINVAL);
	expect_eq(mmn_sim_bind(e.drv, e.dev[0], e.base, 0, &b), -EINVAL);
	/* Overlaps the existing binding of pages [0, 16) on the same device. */
	expect_eq(mmn_sim_bind(e.drv, e.dev[0], e.base + 15 * PAGE, 2 * PAGE, &b), -EEXIST);
	expect_eq(mmn_sim_binding_fault(e.b[0], e.base + BIND_PAGES * PAGE), -EINVAL);
	expect_eq(mmn_sim_driver_destroy(e.drv), -EBUSY);
	expect_eq(mmn_sim_dev_destroy(e.dev[0]), -EBUSY);
	/* Nothing mapped at the faulting page. */
	expect_eq(mmn_sim_umem_munmap(e.um, e.base, PAGE), 0);
	expect_eq(mmn_sim_binding_fault(e.b[0], e.base), -EFAULT);
	/* A pending operation cannot be submitted again. */
	mmn_sim_fence_init(&op.fence);
	expect_eq(mmn_sim_tlb_inval_submit(e.dev[0], &op, e.base, e.base + PAGE), 0);
	expect_eq(mmn_sim_tlb_inval_submit(e.dev[0], &op, e.base, e.base + PAGE), -EBUSY);
	mmn_sim_op_wait(&op);
	/* Unbind needs the device's engines stopped. */
	assert_eq(mmn_sim_engine_new(e.dev[0], &eng), 0);
	expect_eq(mmn_sim_engine_stop(eng), -EINVAL);
	assert_eq(mmn_sim_engine_start(eng, &idle_ops, &quit), 0);
	expect_eq(mmn_sim_engine_start(eng, &idle_ops, &quit), -EBUSY);
	expect_eq(mmn_sim_unbind(e.b[0]), -EBUSY);
	__atomic_store_n(&quit, 1, __ATOMIC_RELEASE);
	expect_eq(mmn_sim_engine_stop(eng), 0);
	env_teardown(&e);
}

/* Release walks every binding once; notifiers stay inserted. */
TEST(release_tears_down_every_binding)
{
	struct env e;

	env_setup(&e, MMN_SIM_DRIVER_USERPTR, false, 0, 2, MMN_SIM_DEV_FAULT, true, 0);
	mmn_mm_release(e.mm);
	expect_str_eq(log_get(),
		      "d0:start d0:set_seq d0:repin d0:zap d0:tlb_submit d0:defer "
		      "d1:start d1:set_seq d1:repin d1:zap d1:tlb_submit d1:defer "
		      "d0:finish d0:tlb_wait d0:unmap d1:finish d1:tlb_wait d1:unmap");
	for (unsigned int i = 0; i < 2; i++) {
		expect_eq(bstats(e.b[i]).teardowns, 1);
		expect_eq(bstats(e.b[i]).pages, 0);
	}
	env_teardown(&e);
}

int main(void)
{
	RUN(userptr_two_pass_starts_all_then_waits);
	RUN(userptr_single_pass_waits_each_device);
	RUN(userptr_never_bound_needs_no_flush);
	RUN(userptr_nonblock_is_refused);
	RUN(userptr_finish_inuse_goes_synchronous);
	RUN(userptr_preempts_busy_engine);
	RUN(svm_two_pass_containers_from_pool);
	RUN(svm_empty_pool_falls_back_to_single_pass);
	RUN(svm_pool_of_zero_is_single_pass);
	RUN(svm_single_pass);
	RUN(svm_range_is_clamped);
	RUN(svm_concurrent_invocations_own_containers);
	RUN(two_pass_submits_every_device_before_waiting);
	RUN(fault_retries_after_collision);
	RUN(fault_without_retry_is_caught);
	RUN(svm_overlapping_invalidation_flushes_without_live_ptes);
	RUN(tlb_entries_go_only_when_the_flush_completes);
	RUN(preempting_idle_engines_does_nothing);
	RUN(errors);
	RUN(release_tears_down_every_binding);
	return test_report();
}
