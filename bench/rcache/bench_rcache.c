// SPDX-License-Identifier: MIT
/*
 * bench_rcache: libmmn's registration cache side by side with UCX's
 * ucs_rcache (Debian libucx-dev), on the same fake device backend.
 *
 * Both systems patch libc's mapping functions (libmmn's event sources, UCX's
 * UCM "bistro" hooks), and only one patch per function can win -- UCM patches
 * as soon as libucm is loaded. So the program does not link UCX: each system
 * runs in its own child process, forked from a parent that initialised
 * neither, and only the UCX child dlopen()s libucs. The parent collects the
 * results through a pipe and prints them.
 * Hit-cost children alternate (mmn, ucx, mmn, ucx) and the medians use every
 * round of both passes: one run, one machine.
 *
 * Parts:
 *   1. hit cost: mmn_rcache_get + _put vs ucs_rcache_get + _region_put of a
 *      cached registration (DESIGN.md T5: mmn <= 0.7 x ucx);
 *   2. munmap of a registered buffer with N devices whose deregistration
 *      takes L: when munmap returns, and when every device has deregistered
 *      (libmmn two-pass, libmmn single-pass, UCX: deferred to the next miss);
 *      with the fake device (spinning until its deadline: exact), and, when
 *      sim/ is built, with simulated GPUs whose deregistration is a TLB
 *      invalidation signalling a fence (sleeping waits, as a driver's);
 *   3. a correctness matrix: the rows of research/peers.md 8.1, a raw-syscall
 *      munmap and an mmap(MAP_FIXED) over the range; each row registers a
 *      buffer, changes its memory, maps new memory at the same address and
 *      gets again: a registration that still shows the old content is a
 *      stale hit.
 * The last line is exactly "hit-cost ratio mmn/ucx: X.XX".
 *
 * Options: --smoke (tiny counts, for CTest), --rounds N, --pairs N,
 * --latency-us L.
 */
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

#ifndef MMN_BENCH_BUILD_TYPE
#define MMN_BENCH_BUILD_TYPE "?"
#endif
#ifndef MMN_UCX_LIBUCS
#define MMN_UCX_LIBUCS "libucs.so.0"
#endif

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

#define MAXDEV 16
#define MAXROUNDS 32
#define HIT_REGIONS 1024
#define MB (1024UL * 1024)

enum { SYS_MMN = 0, SYS_UCX, NSYS };
static const char *const sys_name[NSYS] = { "mmn", "ucx" };

/* ---- options ------------------------------------------------------------ */

static struct {
	bool smoke;
	int rounds;
	long pairs;
	uint64_t latency_ns;
	int lat_reps;
} opt = { false, 7, 2000000, 50000, 15 };

static unsigned long page;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

/* ---- results: one struct per child, sent through a pipe ----------------- */

enum hit_case { HIT_ONE = 0, HIT_RANDOM, HIT_TWO_THREADS, NHIT };
static const char *const hit_name[NHIT] = {
	"1 region, the same buffer",
	"1024 regions, random order",
	"1024 regions, random, 2 threads",
};

#define NLAT_N 3
static const int lat_n[NLAT_N] = { 1, 4, 16 };
enum lat_mode { LAT_TWO_PASS = 0, LAT_SINGLE_PASS, NLAT_MODE };
enum dev_kind { DEV_FAKE = 0, DEV_SIM, NDEVKIND };

struct lat_result {
	double munmap_us;		/* munmap duration, median */
	double done_us;			/* munmap start -> last device deregistered */
	double devs_at_return;		/* devices deregistered when munmap returned */
	double later_get_us;		/* UCX: the get that deregistered (next miss) */
	double after_1ms;		/* UCX: devices deregistered 1 ms after munmap */
	bool valid;
};

enum row_id {
	ROW_MUNMAP = 0, ROW_MUNMAP_HELD, ROW_MUNMAP_MIDDLE, ROW_FREE_BIG, ROW_FREE_SMALL,
	ROW_DONTNEED, ROW_FREE_ADVICE, ROW_MREMAP, ROW_SHMDT, ROW_SBRK, ROW_RAW, ROW_IN_REG,
	ROW_HEAP_TRIM, ROW_MAP_FIXED, NROWS
};

static const char *const row_name[NROWS] = {
	"munmap 1 MiB",
	"munmap while held (refcount 2)",
	"munmap 1 page in the middle",
	"free() of a 64 MiB malloc (mmap chunk)",
	"free() of a 4 KiB heap chunk",
	"madvise(MADV_DONTNEED)",
	"madvise(MADV_FREE)",
	"mremap(MREMAP_MAYMOVE) 1 -> 4 MiB",
	"shmdt of a SysV segment",
	"sbrk(-64 KiB)",
	"raw syscall(SYS_munmap)",
	"munmap from inside the device's reg",
	"free() of 64 x 100 KiB: glibc heap trim",
	"mmap(MAP_FIXED) over the range",
};
/* peers.md 8.1 numbering, 0 for the rows added here */
static const int row_ref[NROWS] = { 1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11, 12, 0 };

enum dereg_when { DW_NONE = 0, DW_IN_CALL, DW_LATER, DW_AT_PUT, DW_NEVER, DW_KEPT, DW_BACKSTOP };
static const char *const dereg_text[] = {
	"-", "in call", "at next get", "at put", "never", "kept", "after, uffd",
};

struct row_result {
	bool ran;
	bool stale;
	enum dereg_when when;
	char note[48];
};

struct child_result {
	int ok;
	char err[160];
	char info[200];
	int hit_rounds;
	double hit_ns[NHIT][MAXROUNDS];
	struct lat_result lat[NDEVKIND][NLAT_MODE][NLAT_N];
	struct row_result rows[NROWS];
};

static void fail(struct child_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->err, sizeof(res->err), fmt, ap);
	va_end(ap);
	res->ok = 0;
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

/* ---- part 1: hit cost --------------------------------------------------- */

struct hit_work {
	struct sys *s;
	unsigned char *base;
	const uint32_t *order;
	long pairs;
	int same;		/* always region 0 */
	double ns;
	pthread_barrier_t *bar;
};

#define HIT_STRIDE (32 * 1024UL)	/* 16 KiB buffers, 16 KiB gaps: no merging in UCX */
#define HIT_LEN (16 * 1024UL - 256)
#define ORDER_LEN 65536

/* The timed loops: direct calls, no indirection in the measured code. */
static __attribute__((noinline)) void hit_loop_mmn(struct hit_work *w)
{
	struct mmn_rcache *c = w->s->mmn;

	for (long i = 0; i < w->pairs; i++) {
		unsigned long a = (unsigned long)w->base +
				  (w->same ? 0 : w->order[i & (ORDER_LEN - 1)] * HIT_STRIDE) + 64;
		struct mmn_rcache_reg *r;

		if (__builtin_expect(mmn_rcache_get(c, a, HIT_LEN, &r), 0))
			abort();
		mmn_rcache_put(r);
	}
}

static __attribute__((noinline)) void hit_loop_ucx(struct hit_work *w)
{
	ucs_status_t (*get)(ucs_rcache_t *, void *, size_t, int, void *, ucs_rcache_region_t **) =
		ucx.get;
	void (*put)(ucs_rcache_t *, ucs_rcache_region_t *) = ucx.put;
	ucs_rcache_t *c = w->s->ucx;

	for (long i = 0; i < w->pairs; i++) {
		unsigned char *a = w->base +
				   (w->same ? 0 : w->order[i & (ORDER_LEN - 1)] * HIT_STRIDE) + 64;
		ucs_rcache_region_t *r;

		if (__builtin_expect(get(c, a, HIT_LEN, PROT_READ | PROT_WRITE, NULL, &r) != UCS_OK,
				     0))
			abort();
		put(c, r);
	}
}

static void *hit_thread(void *arg)
{
	struct hit_work *w = arg;
	uint64_t t0;

	if (w->bar)
		pthread_barrier_wait(w->bar);
	t0 = now_ns();
	if (w->s->kind == SYS_MMN)
		hit_loop_mmn(w);
	else
		hit_loop_ucx(w);
	w->ns = (double)(now_ns() - t0) / (double)w->pairs;
	return NULL;
}

static void part_hits(struct sys *s, struct child_result *res)
{
	static uint32_t order[2][ORDER_LEN];
	unsigned char *base = mmap(NULL, HIT_REGIONS * HIT_STRIDE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = 0x2545f4914f6cdd1dULL;

	if (base == MAP_FAILED) {
		fail(res, "mmap: %s", strerror(errno));
		return;
	}
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < ORDER_LEN; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			order[t][i] = (uint32_t)(x % HIT_REGIONS);
		}
	/* Register every buffer once: afterwards everything is a hit. */
	for (unsigned long i = 0; i < HIT_REGIONS; i++) {
		void *r;

		if (sys_get(s, base + i * HIT_STRIDE + 64, HIT_LEN, &r)) {
			fail(res, "%s: get failed while warming up", sys_name[s->kind]);
			return;
		}
		sys_put(s, r);
	}
	for (int round = 0; round < opt.rounds && round < MAXROUNDS; round++) {
		for (int c = 0; c < NHIT; c++) {
			struct hit_work w[2];
			pthread_barrier_t bar;
			pthread_t th;

			for (int t = 0; t < 2; t++)
				w[t] = (struct hit_work){ .s = s, .base = base, .order = order[t],
							  .pairs = opt.pairs, .same = c == HIT_ONE };
			if (c != HIT_TWO_THREADS) {
				hit_thread(&w[0]);
				res->hit_ns[c][round] = w[0].ns;
				continue;
			}
			pthread_barrier_init(&bar, NULL, 2);
			w[0].bar = w[1].bar = &bar;
			w[0].pairs = w[1].pairs = opt.pairs / 2;
			pthread_create(&th, NULL, hit_thread, &w[1]);
			hit_thread(&w[0]);
			pthread_join(th, NULL);
			pthread_barrier_destroy(&bar);
			res->hit_ns[c][round] = (w[0].ns + w[1].ns) / 2;
		}
		res->hit_rounds = round + 1;
	}
	/* The buffers stay mapped: unmapping them would time the invalidation. */
}

/* ---- part 2: munmap -> every device deregistered ------------------------ */

static void part_latency(int kind, int devkind, struct child_result *res)
{
	for (int mode = 0; mode < NLAT_MODE; mode++) {
		if (kind == SYS_UCX && mode == LAT_SINGLE_PASS)
			continue;	/* one UCX row */
		for (int k = 0; k < NLAT_N; k++) {
			int n = lat_n[k], reps = opt.lat_reps;
			double munmap_us[64], done_us[64], at_ret[64], later[64], after1[64];
			struct sys s;
			int ok = 0;

			if (sys_open(&s, kind, devkind, n, opt.latency_ns, false,
				     mode == LAT_SINGLE_PASS ? MMN_RCACHE_SINGLE_PASS : 0))
				return;	/* no such device here: the rows stay empty */
			for (int rep = 0; rep < reps && rep < 64; rep++) {
				unsigned char *p = mmap(NULL, MB, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				unsigned char *q = mmap(NULL, page, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				uint64_t f0, t0, t1, t2, t3;
				void *r;

				if (sys_get(&s, p, MB, &r))
					break;
				sys_put(&s, r);
				f0 = devs_finishes(&s.devs);
				t0 = now_ns();
				munmap(p, MB);
				t1 = now_ns();
				at_ret[ok] = (double)(devs_finishes(&s.devs) - f0);
				munmap_us[ok] = (double)(t1 - t0) / 1000;
				later[ok] = 0;
				after1[ok] = at_ret[ok];
				if (at_ret[ok] < n) {
					/* Deferred: wait 1 ms, then make a miss happen. */
					while (now_ns() < t1 + 1000000)
						;
					after1[ok] = (double)(devs_finishes(&s.devs) - f0);
					t2 = now_ns();
					if (!sys_get(&s, q, page, &r))
						sys_put(&s, r);
					t3 = now_ns();
					later[ok] = (double)(t3 - t2) / 1000;
				}
				done_us[ok] = devs_finishes(&s.devs) - f0 >= (uint64_t)n
						      ? (double)(devs_last_finish(&s.devs) - t0) / 1000
						      : -1;
				munmap(q, page);
				ok++;
			}
			sys_close(&s);
			if (ok) {
				struct lat_result *l = &res->lat[devkind][mode][k];

				l->munmap_us = median(munmap_us, ok);
				l->done_us = median(done_us, ok);
				l->devs_at_return = median(at_ret, ok);
				l->later_get_us = median(later, ok);
				l->after_1ms = median(after1, ok);
				l->valid = true;
			}
		}
	}
}

/* ---- part 3: the correctness matrix ------------------------------------- */

static unsigned char *in_reg_victim;
static bool mmn_backstop_on;
static atomic_int in_reg_armed;

static void stamp(void *p, unsigned long len, uint64_t gen)
{
	for (unsigned long off = 0; off < len; off += page)
		*(volatile uint64_t *)((char *)p + off) = gen;
}

static void *map_at(void *want, unsigned long len)
{
	void *p = mmap(want, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (want ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Row 11: the device's registration unmaps another cached buffer. */
static void in_reg_hook(void *arg, unsigned long start, unsigned long length)
{
	(void)arg;
	(void)start;
	(void)length;
	if (atomic_exchange(&in_reg_armed, 0))
		munmap(in_reg_victim, MB);
}

struct row_ctx {
	struct sys *s;
	struct row_result *out;
	uint64_t f0;
	void *held;
};

/* Register [p, p+len) with stamp @gen; leaves it cached (put) unless @hold. */
static bool row_register(struct row_ctx *x, void *p, unsigned long len, uint64_t gen, bool hold)
{
	void *r;

	stamp(p, len, gen);
	if (sys_get(x->s, p, len, &r)) {
		snprintf(x->out->note, sizeof(x->out->note), "get failed");
		return false;
	}
	if (hold)
		x->held = r;
	else
		sys_put(x->s, r);
	x->f0 = devs_finishes(&x->s->devs);
	return true;
}

/* Right after the call: did every device deregister inside it? */
static void row_after_call(struct row_ctx *x)
{
	x->out->when = devs_finishes(&x->s->devs) > x->f0 ? DW_IN_CALL : DW_NONE;
}

/* New stamp @gen on the memory now at [p, p+len): does a get see it? */
static void row_check(struct row_ctx *x, void *p, unsigned long len, uint64_t gen)
{
	struct mmn_rcache_fake_reg *fr;
	void *r;

	stamp(p, len, gen);
	if (sys_get(x->s, p, len, &r)) {
		snprintf(x->out->note, sizeof(x->out->note), "get failed after");
		x->out->ran = true;
		return;
	}
	fr = sys_fake_reg(x->s, r, 0);
	x->out->stale = fr->first != gen || fr->last != gen;
	sys_put(x->s, r);
	if (x->out->when == DW_NONE) {
		if (x->held) {
			sys_put(x->s, x->held);
			x->held = NULL;
			if (devs_finishes(&x->s->devs) > x->f0) {
				x->out->when = DW_AT_PUT;
				goto done;
			}
		}
		x->out->when = devs_finishes(&x->s->devs) > x->f0 ? DW_LATER : DW_NEVER;
	}
done:
	if (x->held) {
		sys_put(x->s, x->held);
		x->held = NULL;
	}
	x->out->ran = true;
}

static void run_row(int id, struct sys *s, struct row_result *out)
{
	struct row_ctx x = { .s = s, .out = out };
	uint64_t gen = 1000 + 10 * (uint64_t)id;
	unsigned char *p, *q;

	memset(out, 0, sizeof(*out));
	switch (id) {
	case ROW_MUNMAP:
	case ROW_MUNMAP_HELD:
	case ROW_RAW:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, id == ROW_MUNMAP_HELD))
			return;
		if (id == ROW_RAW)
			syscall(SYS_munmap, p, MB);
		else
			munmap(p, MB);
		row_after_call(&x);
		/*
		 * libmmn's userfaultfd backstop hears of a raw munmap only once
		 * the kernel has unmapped (the caller waits until the monitor
		 * has read the event, not until it is handled): after the fact,
		 * however quickly.
		 */
		if (id == ROW_RAW && s->kind == SYS_MMN && mmn_backstop_on)
			out->when = DW_BACKSTOP;
		if (!map_at(p, MB)) {
			snprintf(out->note, sizeof(out->note), "address taken");
			return;
		}
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	case ROW_MUNMAP_MIDDLE:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		munmap(p + MB / 2, page);
		row_after_call(&x);
		map_at(p + MB / 2, page);
		/* The snapshot reads the first and last page: check the middle one's region. */
		row_check(&x, p + MB / 2, page, gen + 1);
		munmap(p, MB);
		break;
	case ROW_FREE_BIG:
		p = malloc(64 * MB);
		if (!p)
			return;
		q = (unsigned char *)(((unsigned long)p + MB) & ~(page - 1));
		if (!row_register(&x, q, MB, gen, false))
			return;
		free(p);
		row_after_call(&x);
		p = malloc(64 * MB);
		if (p && p <= q && q + MB <= p + 64 * MB)
			row_check(&x, q, MB, gen + 1);
		else
			snprintf(out->note, sizeof(out->note), "address not reused"), out->ran = true;
		free(p);
		break;
	case ROW_FREE_SMALL: {
		/* Nothing is unmapped: the registration must stay. A whole page, ours. */
		void *a = NULL, *r;
		unsigned long pa;

		if (posix_memalign(&a, page, page))
			return;
		pa = (unsigned long)a;
		p = malloc(64 * 1024);	/* keep the heap top away */
		if (!p || !row_register(&x, (void *)pa, page, gen, false))
			return;
		free(a);
		row_after_call(&x);
		if (sys_get(s, (void *)pa, page, &r) == 0)
			sys_put(s, r);
		out->when = out->when == DW_IN_CALL ? DW_IN_CALL : DW_KEPT;
		out->ran = true;
		free(p);
		break;
	}
	case ROW_DONTNEED:
	case ROW_FREE_ADVICE:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		madvise(p, MB, id == ROW_DONTNEED ? MADV_DONTNEED : MADV_FREE);
		row_after_call(&x);
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	case ROW_MREMAP:
		p = map_at(NULL, 2 * MB);	/* the second MB keeps it from growing in place */
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		q = mremap(p, MB, 4 * MB, MREMAP_MAYMOVE);
		row_after_call(&x);
		if (q == MAP_FAILED || q == p || !map_at(p, MB)) {
			snprintf(out->note, sizeof(out->note), "did not move");
			out->ran = true;
			break;
		}
		row_check(&x, p, MB, gen + 1);
		munmap(q, 4 * MB);
		munmap(p, 2 * MB);
		break;
	case ROW_SHMDT: {
		int id2 = shmget(IPC_PRIVATE, MB, IPC_CREAT | 0600);

		if (id2 < 0)
			return;
		p = shmat(id2, NULL, 0);
		shmctl(id2, IPC_RMID, NULL);
		if (p == (void *)-1 || !row_register(&x, p, MB, gen, false))
			return;
		shmdt(p);
		row_after_call(&x);
		if (!map_at(p, MB))
			return;
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	}
	case ROW_SBRK: {
		unsigned char *cur = sbrk(0);
		unsigned long top = ((unsigned long)cur + page - 1) & ~(page - 1);
		long grow = (long)(top - (unsigned long)cur + 64 * 1024);

		if (sbrk(grow) == (void *)-1)
			return;
		if (!row_register(&x, (void *)top, 64 * 1024, gen, false))
			return;
		sbrk(-64 * 1024);
		row_after_call(&x);
		if (sbrk(64 * 1024) == (void *)-1)
			return;
		row_check(&x, (void *)top, 64 * 1024, gen + 1);
		sbrk(-grow);
		break;
	}
	case ROW_IN_REG:
		p = map_at(NULL, MB);
		q = map_at(NULL, MB);
		if (!p || !q || !row_register(&x, p, MB, gen, false))
			return;
		in_reg_victim = p;
		atomic_store(&in_reg_armed, 1);
		for (int i = 0; i < s->devs.n; i++)
			mmn_rcache_fake_set_reg_hook(s->devs.fake[i], in_reg_hook, NULL);
		{
			void *r;

			stamp(q, MB, gen + 5);
			if (!sys_get(s, q, MB, &r))	/* registering q unmaps p */
				sys_put(s, r);
		}
		for (int i = 0; i < s->devs.n; i++)
			mmn_rcache_fake_set_reg_hook(s->devs.fake[i], NULL, NULL);
		row_after_call(&x);
		if (!map_at(p, MB))
			return;
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		munmap(q, MB);
		break;
	case ROW_HEAP_TRIM: {
		void *chunk[64];

		for (int i = 0; i < 64; i++)
			chunk[i] = malloc(100 * 1024);
		q = (unsigned char *)(((unsigned long)chunk[60] + page - 1) & ~(page - 1));
		if (!chunk[63] || !row_register(&x, q, 64 * 1024, gen, false))
			return;
		for (int i = 63; i >= 0; i--)
			free(chunk[i]);
		row_after_call(&x);
		for (int i = 0; i < 64; i++)
			chunk[i] = malloc(100 * 1024);
		/* Only if the heap gave the same addresses back can we look there. */
		for (int i = 0; i < 64 && !out->ran; i++)
			if (chunk[i] && (unsigned char *)chunk[i] <= q &&
			    q + 64 * 1024 <= (unsigned char *)chunk[i] + 100 * 1024)
				row_check(&x, q, 64 * 1024, gen + 1);
		if (!out->ran)
			snprintf(out->note, sizeof(out->note), "address not reused");
		for (int i = 63; i >= 0; i--)
			free(chunk[i]);
		break;
	}
	case ROW_MAP_FIXED:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		mmap(p, MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		row_after_call(&x);
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	}
}

static void part_matrix(int kind, struct child_result *res)
{
	struct sys s;

	if (sys_open(&s, kind, DEV_FAKE, 2, 0, true, 0)) {
		fail(res, "%s: cannot create the matrix cache", sys_name[kind]);
		return;
	}
	for (int id = 0; id < NROWS; id++)
		run_row(id, &s, &res->rows[id]);
	/* No sys_close: stale registrations of unmapped memory may remain. */
}

/* ---- children ----------------------------------------------------------- */

enum { PHASE_ALL = 0, PHASE_HITS };

static void child_main(int kind, int phase, int fd)
{
	static struct child_result res;
	struct sys s;

	memset(&res, 0, sizeof(res));
	res.ok = 1;
	if (kind == SYS_MMN) {
		struct mmn_process_coverage cov;
		struct mmn_mm *mm;
		int hooked = 0;

		mmn_process_mm(&mm);
		mmn_process_coverage(&cov);
		for (int i = 0; i < MMN_CALL_COUNT; i++)
			hooked += cov.method[i] != MMN_HOOK_NONE;
		mmn_backstop_on = cov.backstop;
		snprintf(res.info, sizeof(res.info),
			 "libmmn %s: %d of %d libc mapping calls hooked, userfaultfd backstop %s",
			 mmn_version(), hooked, MMN_CALL_COUNT, cov.backstop ? "on" : "off");
	} else {
		if (ucx_load(res.err, sizeof(res.err))) {
			res.ok = 0;
			goto out;
		}
		snprintf(res.info, sizeof(res.info), "UCX %s (%s): UCM hook mode %s",
			 MMN_UCX_VERSION, MMN_UCX_LIBUCS,
			 getenv("UCX_MEM_MMAP_HOOK_MODE") ? getenv("UCX_MEM_MMAP_HOOK_MODE")
							  : "bistro (default)");
	}
	if (sys_open(&s, kind, DEV_FAKE, 1, 0, false, 0)) {
		fail(&res, "%s: cannot create the cache", sys_name[kind]);
	} else {
		part_hits(&s, &res);
		/* Left open: closing would unmap-free pinned state; the process exits. */
	}
	if (res.ok && phase == PHASE_ALL) {
		part_latency(kind, DEV_FAKE, &res);
#ifdef MMN_BENCH_HAVE_SIM
		mmn_sim_set_timer_slack(1);
		part_latency(kind, DEV_SIM, &res);
#endif
		part_matrix(kind, &res);
	}
out:
	for (size_t off = 0; off < sizeof(res);) {
		ssize_t n = write(fd, (char *)&res + off, sizeof(res) - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	_exit(0);
}

/*
 * "ucx fed by libmmn" (issue 9; self-contained: this function, the branch in
 * run_child and fed_matrix_report). UCX's own cache, with
 * UCX_MEM_MMAP_HOOK_MODE=none so libucm patches nothing, and its unmap events
 * from libmmn (mmn_feed_ucx). Only the correctness matrix is run.
 */
#define SYS_UCX_FED NSYS

static void fed_child_main(int fd)
{
	static struct child_result res;
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;
	int err;

	memset(&res, 0, sizeof(res));
	res.ok = 1;
	setenv("UCX_MEM_MMAP_HOOK_MODE", "none", 1);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/*
	 * A sanitizer's allocator makes raw system calls under its lock, and
	 * UCX's handler allocates: with all anonymous memory watched that
	 * deadlocks (docs/process-events.md, Known gaps). No backstop here.
	 */
	setenv("MMN_BACKSTOP", "0", 1);
#endif
	mmn_process_mm(&mm);
	mmn_process_coverage(&cov);
	mmn_backstop_on = cov.backstop;
	if (ucx_load(res.err, sizeof(res.err))) {
		res.ok = 0;
	} else if ((err = mmn_feed_ucx())) {
		snprintf(res.err, sizeof(res.err), "mmn_feed_ucx: %s", strerror(-err));
		res.ok = 0;
	} else {
		snprintf(res.info, sizeof(res.info),
			 "UCX %s, hook mode none, fed by libmmn %s (mmn_feed_ucx)", MMN_UCX_VERSION,
			 mmn_version());
		part_matrix(SYS_UCX, &res);
	}
	for (size_t off = 0; off < sizeof(res);) {
		ssize_t n = write(fd, (char *)&res + off, sizeof(res) - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	_exit(0);
}

static int run_child(int kind, int phase, struct child_result *res)
{
	int fds[2], status;
	size_t off = 0;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe(fds))
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(fds[0]);
		if (kind == SYS_UCX_FED)
			fed_child_main(fds[1]);
		child_main(kind, phase, fds[1]);
	}
	close(fds[1]);
	while (off < sizeof(*res)) {
		ssize_t n = read(fds[0], (char *)res + off, sizeof(*res) - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (off < sizeof(*res)) {
		snprintf(res->err, sizeof(res->err), "child died (status %#x)", status);
		res->ok = 0;
		return -EIO;
	}
	return 0;
}

/* ---- the report ---------------------------------------------------------- */

static void print_row_cell(const struct row_result *r)
{
	char cell[64];

	if (!r->ran)
		snprintf(cell, sizeof(cell), "n/a %s", r->note);
	else
		snprintf(cell, sizeof(cell), "%s (dereg %s)", r->stale ? "STALE" : "pass",
			 dereg_text[r->when]);
	printf(" %-26s", cell);
}

/* The matrix's "ucx fed by libmmn" column, printed after the others. */
static void fed_matrix_report(void)
{
	static struct child_result fed;
	int stale = 0, ran = 0;

	if (run_child(SYS_UCX_FED, PHASE_ALL, &fed) || !fed.ok) {
		printf("ucx fed by libmmn: could not run (%s)\n", fed.err);
		return;
	}
	printf("\n%-3s %-42s %-26s   (%s)\n", "8.1", "action", " ucx fed by libmmn", fed.info);
	for (int id = 0; id < NROWS; id++) {
		char ref[8];

		snprintf(ref, sizeof(ref), row_ref[id] ? "%d" : "+", row_ref[id]);
		printf("%-3s %-42s", ref, row_name[id]);
		print_row_cell(&fed.rows[id]);
		printf("\n");
		ran += fed.rows[id].ran;
		stale += fed.rows[id].stale;
	}
	printf("ucx fed by libmmn: %d rows, %d stale, %s\n", ran, stale, stale ? "FAIL" : "PASS");
}

int main(int argc, char **argv)
{
	static struct child_result res[NSYS][2];
	double hit[NSYS][NHIT][2 * MAXROUNDS], med[NSYS][NHIT];
	int nhit[NSYS][NHIT] = { { 0 } };
	struct utsname un;
	bool failed = false;
	int passes;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--smoke")) {
			opt.smoke = true;
			opt.rounds = 2;
			opt.pairs = 20000;
			opt.lat_reps = 3;
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			opt.rounds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--pairs") && i + 1 < argc) {
			opt.pairs = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--latency-us") && i + 1 < argc) {
			opt.latency_ns = (uint64_t)atol(argv[++i]) * 1000;
		} else {
			fprintf(stderr,
				"usage: %s [--smoke] [--rounds N] [--pairs N] [--latency-us L]\n",
				argv[0]);
			return 2;
		}
	}
	if (opt.rounds < 1 || opt.rounds > MAXROUNDS || opt.pairs < 2)
		return 2;
#if defined(__SANITIZE_THREAD__)
	/* Both systems patch libc's code, which ThreadSanitizer's instrumentation cannot take. */
	printf("SKIP: bench_rcache does not run under ThreadSanitizer\n");
	return 77;
#endif
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	uname(&un);
	printf("bench_rcache: libmmn registration cache vs UCX ucs_rcache, same fake device\n");
	printf("build %s, %ld CPUs, %s %s; each system runs in its own child process\n",
	       MMN_BENCH_BUILD_TYPE, sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release);
	if (strcmp(MMN_BENCH_BUILD_TYPE, "Release") && strcmp(MMN_BENCH_BUILD_TYPE, "RelWithDebInfo"))
		printf("note: not a Release build: libmmn runs its debug checks; numbers are not for comparison\n");

	/* Pass 1: everything; pass 2: hit cost again, the other order of children. */
	passes = 2;
	for (int pass = 0; pass < passes; pass++) {
		for (int k = 0; k < NSYS; k++) {
			int kind = pass ? NSYS - 1 - k : k;

			run_child(kind, pass ? PHASE_HITS : PHASE_ALL, &res[kind][pass]);
			if (!res[kind][pass].ok) {
				printf("%s: %s\n", sys_name[kind], res[kind][pass].err);
				failed = true;
			}
		}
	}
	for (int k = 0; k < NSYS; k++)
		if (res[k][0].info[0])
			printf("%s\n", res[k][0].info);

	/* Part 1 */
	printf("\n== 1. hit cost: get + put of a cached registration, ns per pair\n");
	printf("   (median of %d rounds x 2 children per system, %ld pairs per round)\n", opt.rounds,
	       opt.pairs);
	printf("%-34s %10s %10s %9s\n", "case", "mmn", "ucx", "mmn/ucx");
	for (int c = 0; c < NHIT; c++) {
		for (int k = 0; k < NSYS; k++) {
			for (int pass = 0; pass < passes; pass++)
				for (int r = 0; r < res[k][pass].hit_rounds; r++)
					hit[k][c][nhit[k][c]++] = res[k][pass].hit_ns[c][r];
			med[k][c] = median(hit[k][c], nhit[k][c]);
		}
		printf("%-34s %10.1f %10.1f %9.2f\n", hit_name[c], med[SYS_MMN][c], med[SYS_UCX][c],
		       med[SYS_UCX][c] > 0 ? med[SYS_MMN][c] / med[SYS_UCX][c] : 0);
	}

	/* Part 2 */
	for (int dk = 0; dk < NDEVKIND; dk++) {
		if (!res[SYS_MMN][0].lat[dk][0][0].valid && !res[SYS_UCX][0].lat[dk][0][0].valid)
			continue;
		printf("\n== 2%c. munmap of a registered 1 MiB buffer, N %s, each deregistration takes %.0f us\n",
		       'a' + dk, dk == DEV_FAKE ? "fake devices (spin until the deadline)"
				: "simulated GPUs (sim/: TLB invalidation + fence, sleeping wait)",
		       (double)opt.latency_ns / 1000);
		printf("   (median of %d; 'all deregistered' is from the start of munmap)\n", opt.lat_reps);
		printf("%-18s %3s %12s %14s  %s\n", "system", "N", "munmap (us)", "dereg'd when",
		       "all deregistered (us)");
		printf("%-18s %3s %12s %14s\n", "", "", "", "munmap returns");
		for (int k = 0; k < NSYS; k++) {
			for (int mode = 0; mode < NLAT_MODE; mode++) {
				for (int i = 0; i < NLAT_N; i++) {
					const struct lat_result *l = &res[k][0].lat[dk][mode][i];
					char label[32], at[24], done[96];

					if (!l->valid)
						continue;
					snprintf(label, sizeof(label), "%s%s", sys_name[k],
						 k == SYS_UCX ? " (serial)"
						 : mode == LAT_TWO_PASS ? " two-pass" : " single-pass");
					snprintf(at, sizeof(at), "%.0f of %d", l->devs_at_return, lat_n[i]);
					if (l->devs_at_return >= lat_n[i])
						snprintf(done, sizeof(done), "%.1f, inside munmap", l->done_us);
					else
						snprintf(done, sizeof(done),
							 "%.0f of %d after 1 ms; at the next miss, in a get of %.1f us",
							 l->after_1ms, lat_n[i], l->later_get_us);
					printf("%-18s %3d %12.1f %14s  %s\n", label, lat_n[i], l->munmap_us,
					       at, done);
				}
			}
		}
	}

	/* Part 3 */
	printf("\n== 3. correctness matrix: register, change the memory, map new memory at the same\n"
	       "   address, get again. STALE = the get returned a registration of the old pages.\n"
	       "   'dereg' = when every device deregistered the old registration ('after, uffd':\n"
	       "   by libmmn's userfaultfd backstop, once the kernel had unmapped).\n");
	printf("%-3s %-42s %-26s %-26s\n", "8.1", "action", " mmn", " ucx");
	for (int id = 0; id < NROWS; id++) {
		char ref[8];

		snprintf(ref, sizeof(ref), row_ref[id] ? "%d" : "+", row_ref[id]);
		printf("%-3s %-42s", ref, row_name[id]);
		for (int k = 0; k < NSYS; k++)
			print_row_cell(&res[k][0].rows[id]);
		printf("\n");
	}
	for (int k = 0; k < NSYS; k++) {
		int stale = 0, ran = 0;

		for (int id = 0; id < NROWS; id++) {
			ran += res[k][0].rows[id].ran;
			stale += res[k][0].rows[id].stale;
		}
		printf("%s: %d rows, %d stale, %s\n", sys_name[k], ran, stale,
		       stale ? "FAIL" : "PASS");
	}
	fed_matrix_report();

	printf("\nhit-cost ratio mmn/ucx: %.2f\n",
	       med[SYS_UCX][HIT_RANDOM] > 0 ? med[SYS_MMN][HIT_RANDOM] / med[SYS_UCX][HIT_RANDOM]
					    : 0.0);
	/* Numbers never fail the program; a child that could not measure does. */
	return failed ? 1 : 0;
}
