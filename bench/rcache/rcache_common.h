/* SPDX-License-Identifier: MIT */
/*
 * What the three bench_rcache programs share: libmmn's registration cache and
 * UCX's ucs_rcache (Debian libucx-dev) behind one small interface, on the
 * same device backends, each system in its own child process.
 *
 * Both systems patch libc's mapping functions (libmmn's event sources, UCX's
 * UCM "bistro" hooks), and only one patch per function can win -- UCM patches
 * as soon as libucm is loaded. So no program links UCX: each system runs in
 * its own child process, forked from a parent that initialised neither, and
 * only the UCX child dlopen()s libucs. The parent collects a result struct
 * through a pipe (bench_rcache_run_child) and prints it.
 *
 * Header-only (static functions): each program compiles what it uses.
 */
#ifndef MMN_BENCH_RCACHE_COMMON_H
#define MMN_BENCH_RCACHE_COMMON_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <dlfcn.h>
#include <stdalign.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mmn.h>
#include <mmn/process.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#include <ucm/api/ucm.h>
#include <ucs/memory/rcache.h>

#ifdef MMN_BENCH_HAVE_SIM
#include "sim.h"
#endif

#include "common/bench_util.h"

#ifndef MMN_BENCH_BUILD_TYPE
#define MMN_BENCH_BUILD_TYPE "?"
#endif
#ifndef MMN_UCX_LIBUCS
#define MMN_UCX_LIBUCS "libucs.so.0"
#endif

#define MAXDEV 16
#define MB (1024UL * 1024)

/*
 * The systems under test, one child process each. A new kind (a cache fed
 * by another system's events, say) is an entry here, a case in sys_open(),
 * sys_get() and sys_put(), and a line in child_init().
 */
enum { SYS_MMN = 0, SYS_UCX, NSYS };
/*
 * Matrix only (issue 9): UCX's own cache with UCX_MEM_MMAP_HOOK_MODE=none,
 * so libucm patches nothing, and its unmap events from libmmn
 * (mmn_feed_ucx). Past NSYS: the timed programs compare mmn with ucx only.
 */
#define SYS_UCX_FED NSYS
static const char *const sys_name[NSYS + 1] = { "mmn", "ucx", "ucx fed by libmmn" };

enum dev_kind { DEV_FAKE = 0, DEV_SIM, NDEVKIND };

#define now_ns mmn_bench_now_ns

static unsigned long page;

/* Every child's result struct starts with this. */
struct child_head {
	int ok;
	char err[160];
	char info[200];
};

static void fail(struct child_head *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->err, sizeof(res->err), fmt, ap);
	va_end(ap);
	res->ok = 0;
}

/* UCX's entry points, resolved in the UCX child only. */
static struct {
	ucs_status_t (*create)(const ucs_rcache_params_t *params, const char *name,
			       ucs_stats_node_t *stats_parent, ucs_rcache_t **rcache_p);
	void (*destroy)(ucs_rcache_t *rcache);
	ucs_status_t (*get)(ucs_rcache_t *rcache, void *address, size_t length, int prot,
			    void *arg, ucs_rcache_region_t **region_p);
	void (*put)(ucs_rcache_t *rcache, ucs_rcache_region_t *region);
} ucx;

static int ucx_load(char *err, size_t len)
{
	void *h = dlopen(MMN_UCX_LIBUCS, RTLD_NOW | RTLD_GLOBAL);

	if (!h) {
		snprintf(err, len, "dlopen %s: %s", MMN_UCX_LIBUCS, dlerror());
		return -ENOENT;
	}
	*(void **)&ucx.create = dlsym(h, "ucs_rcache_create");
	*(void **)&ucx.destroy = dlsym(h, "ucs_rcache_destroy");
	*(void **)&ucx.get = dlsym(h, "ucs_rcache_get");
	*(void **)&ucx.put = dlsym(h, "ucs_rcache_region_put");
	if (!ucx.create || !ucx.destroy || !ucx.get || !ucx.put) {
		snprintf(err, len, "%s lacks the ucs_rcache API", MMN_UCX_LIBUCS);
		return -ENOENT;
	}
	return 0;
}

/* ---- the common device backend ----------------------------------------- */

#ifdef MMN_BENCH_HAVE_SIM
/*
 * A simulated GPU as a cache device: registering maps nothing the sim has to
 * know about; deregistering is a TLB invalidation of the range, started in
 * the first pass and waited for (a fence, sleeping) in the second.
 */
struct simdev {
	struct mmn_sim_dev *dev;
	uint64_t finishes;	/* atomic */
	uint64_t last_ns;	/* atomic */
};

struct sim_reg {
	struct mmn_sim_op op;
	unsigned long start, end;
};

static int sim_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	struct sim_reg *r = priv;

	(void)dev;
	r->start = start;
	r->end = start + length;
	return 0;
}

static void sim_dereg_start(void *dev, void *priv)
{
	struct simdev *sd = dev;
	struct sim_reg *r = priv;

	mmn_sim_tlb_inval_submit(sd->dev, &r->op, r->start, r->end);
}

static void sim_dereg_finish(void *dev, void *priv)
{
	struct simdev *sd = dev;
	struct sim_reg *r = priv;

	mmn_sim_op_wait(&r->op);
	__atomic_store_n(&sd->last_ns, now_ns(), __ATOMIC_RELAXED);
	__atomic_add_fetch(&sd->finishes, 1, __ATOMIC_RELEASE);
}

static const struct mmn_rcache_dev_ops sim_ops = {
	.reg = sim_reg,
	.dereg_start = sim_dereg_start,
	.dereg_finish = sim_dereg_finish,
};
#endif

struct devs {
	int n;
	int kind;
	struct mmn_rcache_fake *fake[MAXDEV];
#ifdef MMN_BENCH_HAVE_SIM
	struct simdev sim[MAXDEV];
#endif
	struct mmn_rcache_dev dev[MAXDEV];
	size_t stride;		/* per-device private area in a UCX region */
};

static int devs_new(struct devs *d, int kind, int n, uint64_t latency_ns, bool snapshot)
{
	struct mmn_rcache_fake_config fc = { .latency_ns = latency_ns, .spin = true,
					     .snapshot = snapshot };

	d->n = n;
	d->kind = kind;
	for (int i = 0; i < n; i++) {
		if (kind == DEV_FAKE) {
			if (mmn_rcache_fake_new(&fc, &d->fake[i]))
				abort();
			mmn_rcache_fake_dev(d->fake[i], &d->dev[i]);
			continue;
		}
#ifdef MMN_BENCH_HAVE_SIM
		{
			struct mmn_sim_dev_config cfg = { .id = (unsigned int)i,
							  .mode = MMN_SIM_DEV_FAULT };

			mmn_sim_latency_fixed(&cfg.tlb_latency, latency_ns);
			mmn_sim_latency_fixed(&cfg.preempt_latency, latency_ns);
			if (mmn_sim_dev_new(&cfg, &d->sim[i].dev))
				return -ENOMEM;
			d->dev[i] = (struct mmn_rcache_dev){ .name = "sim", .ops = &sim_ops,
							     .dev = &d->sim[i],
							     .priv_size = sizeof(struct sim_reg) };
		}
#else
		return -ENOSYS;
#endif
	}
	d->stride = (d->dev[0].priv_size + 15) & ~(size_t)15;
	return 0;
}

static void devs_free(struct devs *d)
{
	for (int i = 0; i < d->n; i++) {
		if (d->kind == DEV_FAKE)
			mmn_rcache_fake_destroy(d->fake[i]);
#ifdef MMN_BENCH_HAVE_SIM
		else
			mmn_sim_dev_destroy(d->sim[i].dev);
#endif
	}
}

static uint64_t devs_finishes(struct devs *d)
{
	uint64_t n = 0;

	for (int i = 0; i < d->n; i++) {
		struct mmn_rcache_fake_stats st;

		if (d->kind == DEV_FAKE) {
			mmn_rcache_fake_get_stats(d->fake[i], &st);
			n += st.dereg_finishes;
		}
#ifdef MMN_BENCH_HAVE_SIM
		else {
			n += __atomic_load_n(&d->sim[i].finishes, __ATOMIC_ACQUIRE);
		}
#endif
	}
	return n;
}

static uint64_t devs_last_finish(struct devs *d)
{
	uint64_t t = 0, x = 0;

	for (int i = 0; i < d->n; i++) {
		struct mmn_rcache_fake_stats st;

		if (d->kind == DEV_FAKE) {
			mmn_rcache_fake_get_stats(d->fake[i], &st);
			x = st.last_finish_ns;
		}
#ifdef MMN_BENCH_HAVE_SIM
		else {
			x = __atomic_load_n(&d->sim[i].last_ns, __ATOMIC_RELAXED);
		}
#endif
		if (x > t)
			t = x;
	}
	return t;
}

/* ---- the two systems behind one small interface ------------------------ */

struct ucx_region {
	ucs_rcache_region_t super;
	alignas(16) unsigned char priv[];	/* devs.stride bytes per device */
};

#define UCX_PRIV(s, ur, i) ((void *)((ur)->priv + (size_t)(i) * (s)->devs.stride))

struct sys {
	int kind;
	struct devs devs;
	struct mmn_rcache *mmn;
	ucs_rcache_t *ucx;
};

/* UCX mem_reg/mem_dereg: the same device operations, device after device. */
static ucs_status_t ucx_mem_reg(void *context, ucs_rcache_t *rcache, void *arg,
				ucs_rcache_region_t *region, uint16_t flags)
{
	struct sys *s = context;
	struct ucx_region *ur = (struct ucx_region *)region;
	unsigned long start = region->super.start, len = region->super.end - start;
	int i, err = 0;

	(void)rcache;
	(void)arg;
	(void)flags;
	for (i = 0; i < s->devs.n; i++) {
		memset(UCX_PRIV(s, ur, i), 0, s->devs.stride);
		err = s->devs.dev[i].ops->reg(s->devs.dev[i].dev, start, len, UCX_PRIV(s, ur, i));
		if (err)
			break;
	}
	if (!err)
		return UCS_OK;
	while (i--) {
		s->devs.dev[i].ops->dereg_start(s->devs.dev[i].dev, UCX_PRIV(s, ur, i));
		s->devs.dev[i].ops->dereg_finish(s->devs.dev[i].dev, UCX_PRIV(s, ur, i));
	}
	return err == -EFAULT ? UCS_ERR_INVALID_ADDR : UCS_ERR_IO_ERROR;
}

static void ucx_mem_dereg(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region)
{
	struct sys *s = context;
	struct ucx_region *ur = (struct ucx_region *)region;

	(void)rcache;
	for (int i = 0; i < s->devs.n; i++) {
		s->devs.dev[i].ops->dereg_start(s->devs.dev[i].dev, UCX_PRIV(s, ur, i));
		s->devs.dev[i].ops->dereg_finish(s->devs.dev[i].dev, UCX_PRIV(s, ur, i));
	}
}

static void ucx_dump(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region,
		     char *buf, size_t max)
{
	(void)context;
	(void)rcache;
	(void)region;
	snprintf(buf, max, "fake");
}

static const ucs_rcache_ops_t ucx_ops = {
	.mem_reg = ucx_mem_reg,
	.mem_dereg = ucx_mem_dereg,
	.dump_region = ucx_dump,
};

static int sys_open(struct sys *s, int kind, int devkind, int ndev, uint64_t latency_ns,
		    bool snapshot, unsigned int flags)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	if (devs_new(&s->devs, devkind, ndev, latency_ns, snapshot))
		return -ENODEV;
	if (kind == SYS_MMN) {
		struct mmn_rcache_config cfg = { .mm = NULL, .devs = s->devs.dev,
						 .nr_devs = (unsigned int)ndev, .flags = flags };

		return mmn_rcache_new(&cfg, &s->mmn);
	} else {
		ucs_rcache_params_t p = {
			.region_struct_size = sizeof(struct ucx_region) + (size_t)ndev * s->devs.stride,
			.alignment = page,
			.max_alignment = page,
			.ucm_events = UCM_EVENT_VM_UNMAPPED,
			.ucm_event_priority = 1000,
			.ops = &ucx_ops,
			.context = s,
			.flags = UCS_RCACHE_FLAG_NO_PFN_CHECK,
			.max_regions = ULONG_MAX,
			.max_size = SIZE_MAX,
			.max_unreleased = SIZE_MAX,
		};
		ucs_status_t st = ucx.create(&p, "bench", NULL, &s->ucx);

		return st == UCS_OK ? 0 : -EIO;
	}
}

static void sys_close(struct sys *s)
{
	if (s->mmn)
		mmn_rcache_destroy(s->mmn);
	if (s->ucx)
		ucx.destroy(s->ucx);
	devs_free(&s->devs);
}

static int sys_get(struct sys *s, void *addr, size_t len, void **reg)
{
	if (s->kind == SYS_MMN)
		return mmn_rcache_get(s->mmn, (unsigned long)addr, len,
				      (struct mmn_rcache_reg **)reg);
	return ucx.get(s->ucx, addr, len, PROT_READ | PROT_WRITE, NULL,
		       (ucs_rcache_region_t **)reg) == UCS_OK ? 0 : -EFAULT;
}

static void sys_put(struct sys *s, void *reg)
{
	if (s->kind == SYS_MMN)
		mmn_rcache_put(reg);
	else
		ucx.put(s->ucx, reg);
}

static struct mmn_rcache_fake_reg *sys_fake_reg(struct sys *s, void *reg, int dev)
{
	if (s->kind == SYS_MMN)
		return mmn_rcache_reg_priv(reg, (unsigned int)dev);
	return UCX_PRIV(s, (struct ucx_region *)reg, dev);
}

/* ---- children ----------------------------------------------------------- */

static bool mmn_backstop_on;	/* set in the mmn child */

/* In a fresh child: set up @kind's side and describe it in @res->info. */
static int child_init(int kind, struct child_head *res)
{
	if (kind == SYS_MMN) {
		struct mmn_process_coverage cov;
		struct mmn_mm *mm;
		int hooked = 0;

		mmn_process_mm(&mm);
		mmn_process_coverage(&cov);
		for (int i = 0; i < MMN_CALL_COUNT; i++)
			hooked += cov.method[i] != MMN_HOOK_NONE;
		mmn_backstop_on = cov.backstop;
		snprintf(res->info, sizeof(res->info),
			 "libmmn %s: %d of %d libc mapping calls hooked, userfaultfd backstop %s",
			 mmn_version(), hooked, MMN_CALL_COUNT, cov.backstop ? "on" : "off");
		return 0;
	}
	if (kind == SYS_UCX_FED) {
		struct mmn_process_coverage cov;
		struct mmn_mm *mm;
		int err;

		setenv("UCX_MEM_MMAP_HOOK_MODE", "none", 1);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
		/*
		 * A sanitizer's allocator makes raw system calls under its lock,
		 * and UCX's handler allocates: with all anonymous memory watched
		 * that deadlocks (docs/process-events.md, Known gaps). No
		 * backstop here.
		 */
		setenv("MMN_BACKSTOP", "0", 1);
#endif
		mmn_process_mm(&mm);
		mmn_process_coverage(&cov);
		if (ucx_load(res->err, sizeof(res->err))) {
			res->ok = 0;
			return -ENOENT;
		}
		err = mmn_feed_ucx();
		if (err) {
			snprintf(res->err, sizeof(res->err), "mmn_feed_ucx: %s", strerror(-err));
			res->ok = 0;
			return err;
		}
		snprintf(res->info, sizeof(res->info),
			 "UCX %s, hook mode none, fed by libmmn %s (mmn_feed_ucx), backstop %s",
			 MMN_UCX_VERSION, mmn_version(), cov.backstop ? "on" : "off");
		return 0;
	}
	if (ucx_load(res->err, sizeof(res->err))) {
		res->ok = 0;
		return -ENOENT;
	}
	snprintf(res->info, sizeof(res->info), "UCX %s (%s): UCM hook mode %s",
		 MMN_UCX_VERSION, MMN_UCX_LIBUCS,
		 getenv("UCX_MEM_MMAP_HOOK_MODE") ? getenv("UCX_MEM_MMAP_HOOK_MODE")
						  : "bistro (default)");
	return 0;
}

/*
 * Fork a child for system @kind; it runs @body(@kind, @arg, @res) after
 * child_init() and sends @res (@size bytes, starting with a struct
 * child_head) back. Returns 0, or -errno with @res->err set.
 */
static int run_child(int kind, void (*body)(int kind, int arg, void *res), int arg, void *res,
		     size_t size)
{
	struct child_head *head = res;
	int fds[2], status;
	size_t off = 0;
	pid_t pid;

	memset(res, 0, size);
	if (pipe(fds))
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(fds[0]);
		head->ok = 1;
		if (!child_init(kind, head))
			body(kind, arg, res);
		for (off = 0; off < size;) {
			ssize_t n = write(fds[1], (char *)res + off, size - off);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
		_exit(0);
	}
	close(fds[1]);
	while (off < size) {
		ssize_t n = read(fds[0], (char *)res + off, size - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (off < size) {
		snprintf(head->err, sizeof(head->err), "child died (status %#x)", status);
		head->ok = 0;
		return -EIO;
	}
	return 0;
}

/* The banner every program prints; returns false under ThreadSanitizer. */
static bool banner(const char *what)
{
	struct utsname un;

#if defined(__SANITIZE_THREAD__)
	/* Both systems patch libc's code, which ThreadSanitizer's instrumentation cannot take. */
	(void)what;
	(void)un;
	printf("SKIP: the rcache benchmarks do not run under ThreadSanitizer\n");
	return false;
#else
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	uname(&un);
	printf("%s\n", what);
	printf("build %s, %ld CPUs, %s %s; each system runs in its own child process\n",
	       MMN_BENCH_BUILD_TYPE, sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release);
	if (strcmp(MMN_BENCH_BUILD_TYPE, "Release") && strcmp(MMN_BENCH_BUILD_TYPE, "RelWithDebInfo"))
		printf("note: not a Release build: libmmn runs its debug checks; numbers are not for comparison\n");
	return true;
#endif
}

#endif /* MMN_BENCH_RCACHE_COMMON_H */
