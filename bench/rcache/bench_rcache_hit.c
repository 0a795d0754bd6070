// SPDX-License-Identifier: MIT
/*
 * bench_rcache_hit: the cost of a registration-cache hit, libmmn's
 * mmn_rcache_get + _put against UCX's ucs_rcache_get + _region_put of a
 * cached registration, on the same fake device (DESIGN.md T5: mmn <= 0.7 x
 * ucx; T9: two threads give >= 1.8 x the hits of one).
 *
 * Cases: one region over and over; 1024 regions in random order; the same
 * with two threads at once (each its own random order). The children
 * alternate (mmn, ucx, then ucx, mmn) and the medians use every round of
 * both passes: one run, one machine.
 *
 * The last two lines are exactly
 *   "hit scaling, 2 threads / 1 thread: X.XX"  (libmmn, random-1024 case)
 *   "hit-cost ratio mmn/ucx: X.XX"
 *
 * Options: --smoke (tiny counts, for CTest), --rounds N, --pairs N.
 */
#include "rcache_common.h"

#define MAXROUNDS 32
#define HIT_REGIONS 1024

static struct {
	int rounds;
	long pairs;
} opt = { 7, 2000000 };

enum hit_case { HIT_ONE = 0, HIT_RANDOM, HIT_TWO_THREADS, NHIT };
static const char *const hit_name[NHIT] = {
	"1 region, the same buffer",
	"1024 regions, random order",
	"1024 regions, random, 2 threads",
};

struct hit_result {
	struct child_head head;
	int hit_rounds;
	double hit_ns[NHIT][MAXROUNDS];
	double cpu_ns[NHIT][MAXROUNDS];	/* the same in thread CPU time */
};

/* ---- part 1: hit cost --------------------------------------------------- */

struct hit_work {
	struct sys *s;
	unsigned char *base;
	const uint32_t *order;
	long pairs;
	int same;		/* always region 0 */
	double ns, cpu_ns;
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

/* CPU time of the calling thread: leaves out the time other processes ran. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *hit_thread(void *arg)
{
	struct hit_work *w = arg;
	uint64_t t0, c0;

	if (w->bar)
		pthread_barrier_wait(w->bar);
	c0 = thread_cpu_ns();
	t0 = now_ns();
	if (w->s->kind == SYS_MMN)
		hit_loop_mmn(w);
	else
		hit_loop_ucx(w);
	w->ns = (double)(now_ns() - t0) / (double)w->pairs;
	w->cpu_ns = (double)(thread_cpu_ns() - c0) / (double)w->pairs;
	return NULL;
}

static void part_hits(struct sys *s, struct hit_result *res)
{
	static uint32_t order[2][ORDER_LEN];
	unsigned char *base = mmap(NULL, HIT_REGIONS * HIT_STRIDE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = 0x2545f4914f6cdd1dULL;

	if (base == MAP_FAILED) {
		fail(&res->head, "mmap: %s", strerror(errno));
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
			fail(&res->head, "%s: get failed while warming up", sys_name[s->kind]);
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
				res->cpu_ns[c][round] = w[0].cpu_ns;
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
			res->cpu_ns[c][round] = (w[0].cpu_ns + w[1].cpu_ns) / 2;
		}
		res->hit_rounds = round + 1;
	}
	/* The buffers stay mapped: unmapping them would time the invalidation. */
}

static void child_body(int kind, int arg, void *resp)
{
	struct hit_result *res = resp;
	struct sys s;

	(void)arg;
	if (sys_open(&s, kind, DEV_FAKE, 1, 0, false, 0))
		fail(&res->head, "%s: cannot create the cache", sys_name[kind]);
	else
		part_hits(&s, res);
	/* Left open: closing would unmap-free pinned state; the process exits. */
}

int main(int argc, char **argv)
{
	static struct hit_result res[NSYS][2];
	double hit[NSYS][NHIT][2 * MAXROUNDS], med[NSYS][NHIT], cmed[NSYS][NHIT];
	int nhit[NSYS][NHIT] = { { 0 } };
	bool failed = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--smoke")) {
			opt.rounds = 2;
			opt.pairs = 20000;
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			opt.rounds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--pairs") && i + 1 < argc) {
			opt.pairs = atol(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--smoke] [--rounds N] [--pairs N]\n", argv[0]);
			return 2;
		}
	}
	if (opt.rounds < 1 || opt.rounds > MAXROUNDS || opt.pairs < 2) {
		fprintf(stderr, "%s: --rounds must be 1..%d and --pairs at least 2\n", argv[0],
			MAXROUNDS);
		return 2;
	}
	if (!banner("bench_rcache_hit: registration-cache hit, libmmn vs UCX ucs_rcache, same fake device"))
		return 77;

	/* Two passes, the second with the children in the other order. */
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < NSYS; k++) {
			int kind = pass ? NSYS - 1 - k : k;
			struct hit_result *r = &res[kind][pass];

			run_child(kind, child_body, 0, r, sizeof(*r));
			if (!r->head.ok) {
				printf("%s: %s\n", sys_name[kind], r->head.err);
				failed = true;
			}
		}
	}
	for (int k = 0; k < NSYS; k++)
		if (res[k][0].head.info[0])
			printf("%s\n", res[k][0].head.info);

	printf("\n== hit cost: get + put of a cached registration, ns per pair (per thread)\n");
	printf("   (median of %d rounds x 2 children per system, %ld pairs per round)\n", opt.rounds,
	       opt.pairs);
	printf("%-34s %10s %10s %9s\n", "case", "mmn", "ucx", "mmn/ucx");
	for (int c = 0; c < NHIT; c++) {
		for (int k = 0; k < NSYS; k++) {
			for (int pass = 0; pass < 2; pass++)
				for (int r = 0; r < res[k][pass].hit_rounds; r++)
					hit[k][c][nhit[k][c]++] = res[k][pass].hit_ns[c][r];
			med[k][c] = mmn_bench_median(hit[k][c], nhit[k][c]);
			nhit[k][c] = 0;
			for (int pass = 0; pass < 2; pass++)
				for (int r = 0; r < res[k][pass].hit_rounds; r++)
					hit[k][c][nhit[k][c]++] = res[k][pass].cpu_ns[c][r];
			cmed[k][c] = mmn_bench_median(hit[k][c], nhit[k][c]);
		}
		printf("%-34s %10.1f %10.1f %9.2f\n", hit_name[c], med[SYS_MMN][c], med[SYS_UCX][c],
		       med[SYS_UCX][c] > 0 ? med[SYS_MMN][c] / med[SYS_UCX][c] : 0);
	}
	printf("\n   thread CPU time, ns per pair (excludes time the thread waited for a CPU):\n");
	for (int c = 0; c < NHIT; c++)
		printf("%-34s %10.1f %10.1f %9.2f\n", hit_name[c], cmed[SYS_MMN][c], cmed[SYS_UCX][c],
		       cmed[SYS_UCX][c] > 0 ? cmed[SYS_MMN][c] / cmed[SYS_UCX][c] : 0);
	/*
	 * Throughput of two threads over one (random-1024 case): 2 x the one
	 * thread's ns per pair over the ns per pair of each of the two.
	 */
	printf("ucx hit scaling, 2 threads / 1 thread: %.2f (CPU time: %.2f)\n",
	       med[SYS_UCX][HIT_TWO_THREADS] > 0
		       ? 2 * med[SYS_UCX][HIT_RANDOM] / med[SYS_UCX][HIT_TWO_THREADS] : 0.0,
	       cmed[SYS_UCX][HIT_TWO_THREADS] > 0
		       ? 2 * cmed[SYS_UCX][HIT_RANDOM] / cmed[SYS_UCX][HIT_TWO_THREADS] : 0.0);
	printf("mmn hit scaling in CPU time, 2 threads / 1 thread: %.2f\n",
	       cmed[SYS_MMN][HIT_TWO_THREADS] > 0
		       ? 2 * cmed[SYS_MMN][HIT_RANDOM] / cmed[SYS_MMN][HIT_TWO_THREADS] : 0.0);
	printf("\nhit scaling, 2 threads / 1 thread: %.2f\n",
	       med[SYS_MMN][HIT_TWO_THREADS] > 0
		       ? 2 * med[SYS_MMN][HIT_RANDOM] / med[SYS_MMN][HIT_TWO_THREADS] : 0.0);
	printf("hit-cost ratio mmn/ucx: %.2f\n",
	       med[SYS_UCX][HIT_RANDOM] > 0 ? med[SYS_MMN][HIT_RANDOM] / med[SYS_UCX][HIT_RANDOM]
					    : 0.0);
	/* Numbers never fail the program; a child that could not measure does. */
	return failed ? 1 : 0;
}
