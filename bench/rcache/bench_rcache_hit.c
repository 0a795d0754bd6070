// SPDX-License-Identifier: MIT
/*
 * bench_rcache_hit: the cost of a registration-cache hit, libmmn's
 * mmn_rcache_get + _put against UCX's ucs_rcache_get + _region_put of a
 * cached registration, on the same fake device (DESIGN.md T5: mmn <= 0.7 x
 * ucx; T9: two threads give >= 1.8 x the hits of one).
 *
 * Cases: one region over and over; 1024 regions in random order; the same
 * with two threads at once (each its own random order), pinned to two CPUs
 * (the single-thread cases to the first). The children alternate (mmn, ucx,
 * then ucx, mmn) and the medians use every round of both passes: one run,
 * one machine.
 *
 * Scaling on a shared machine. Two threads only scale while both run; on a
 * loaded machine other processes take turns on the two CPUs, and a ratio of
 * wall-clock times measures the load as much as the cache. So each thread
 * also times batches of BATCH pairs, in wall-clock and in thread CPU time:
 * a batch is undisturbed when the thread had its CPU throughout (CPU time
 * at least 97% of wall-clock time), and a batch of the two-thread case is
 * concurrent when, besides, the other thread ran undisturbed batches from
 * its start to its end. The scaling lines compare the ns per pair of
 * undisturbed single-thread batches with those of concurrent two-thread
 * batches: the throughput of two threads while two threads run. The
 * wall-clock ratio over whole rounds is printed too; on a quiet machine the
 * two agree.
 *
 * The last two lines are exactly
 *   "hit scaling, 2 threads / 1 thread: X.XX"  (libmmn, random-1024 case,
 *                                               concurrent batches)
 *   "hit-cost ratio mmn/ucx: X.XX"             (random-1024 case,
 *                                               undisturbed batches)
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
	int cpus[2];			/* where the threads ran; -1: not pinned */
	double hit_ns[NHIT][MAXROUNDS];
	double cpu_ns[NHIT][MAXROUNDS];	/* the same in thread CPU time */
	double conc_ns[NHIT][MAXROUNDS];	/* undisturbed (concurrent) batches; 0: none */
	double conc_frac[NHIT][MAXROUNDS];	/* the share of batches that were */
};

/* ---- part 1: hit cost --------------------------------------------------- */

/* One batch of BATCH pairs: wall-clock and thread CPU time, ns. */
struct batch {
	uint64_t t0, t1, c0, c1;
};

#define BATCH 4096

struct hit_work {
	struct sys *s;
	unsigned char *base;
	const uint32_t *order;
	long pairs;
	int same;		/* always region 0 */
	int cpu;		/* pin to it; -1: don't */
	double ns, cpu_ns;
	struct batch *batch;	/* pairs / BATCH of them */
	long nbatch;
	pthread_barrier_t *bar;
};

#define HIT_STRIDE (32 * 1024UL)	/* 16 KiB buffers, 16 KiB gaps: no merging in UCX */
#define HIT_LEN (16 * 1024UL - 256)
#define ORDER_LEN 65536

/* The timed loops: direct calls, no indirection in the measured code. */
static __attribute__((noinline)) void hit_loop_mmn(struct hit_work *w, long first, long end)
{
	struct mmn_rcache *c = w->s->mmn;

	for (long i = first; i < end; i++) {
		unsigned long a = (unsigned long)w->base +
				  (w->same ? 0 : w->order[i & (ORDER_LEN - 1)] * HIT_STRIDE) + 64;
		struct mmn_rcache_reg *r;

		if (__builtin_expect(mmn_rcache_get(c, a, HIT_LEN, &r), 0))
			abort();
		mmn_rcache_put(r);
	}
}

static __attribute__((noinline)) void hit_loop_ucx(struct hit_work *w, long first, long end)
{
	ucs_status_t (*get)(ucs_rcache_t *, void *, size_t, int, void *, ucs_rcache_region_t **) =
		ucx.get;
	void (*put)(ucs_rcache_t *, ucs_rcache_region_t *) = ucx.put;
	ucs_rcache_t *c = w->s->ucx;

	for (long i = first; i < end; i++) {
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

static void pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *hit_thread(void *arg)
{
	struct hit_work *w = arg;
	uint64_t t0, c0;
	long i = 0;

	pin_to(w->cpu);
	if (w->bar)
		pthread_barrier_wait(w->bar);
	c0 = thread_cpu_ns();
	t0 = now_ns();
	w->nbatch = 0;
	while (i < w->pairs) {
		struct batch *b = &w->batch[w->nbatch++];
		long end = w->pairs - i < BATCH ? w->pairs : i + BATCH;

		b->c0 = thread_cpu_ns();
		b->t0 = now_ns();
		if (w->s->kind == SYS_MMN)
			hit_loop_mmn(w, i, end);
		else
			hit_loop_ucx(w, i, end);
		b->t1 = now_ns();
		b->c1 = thread_cpu_ns();
		i = end;
	}
	w->ns = (double)(now_ns() - t0) / (double)w->pairs;
	w->cpu_ns = (double)(thread_cpu_ns() - c0) / (double)w->pairs;
	return NULL;
}

/* The thread had its CPU for the whole batch (a full one). */
static bool batch_undisturbed(const struct batch *b)
{
	return b->t1 > b->t0 && (double)(b->c1 - b->c0) >= 0.97 * (double)(b->t1 - b->t0);
}

/* Between two batches of a thread that kept its CPU: the clock reads only. */
#define BATCH_GAP_NS 20000

/* @o ran undisturbed batches, without a gap, from @t0 to @t1; *@j: a cursor. */
static bool covered(const struct hit_work *o, long *j, uint64_t t0, uint64_t t1)
{
	long k;

	while (*j < o->nbatch && o->batch[*j].t1 < t0)
		(*j)++;
	if (*j == o->nbatch || o->batch[*j].t0 > t0)
		return false;
	for (k = *j; k < o->nbatch; k++) {
		if (!batch_undisturbed(&o->batch[k]))
			return false;
		if (o->batch[k].t1 >= t1)
			return true;
		if (k + 1 == o->nbatch || o->batch[k + 1].t0 - o->batch[k].t1 > BATCH_GAP_NS)
			return false;
	}
	return false;
}

/*
 * ns per pair over @w's full batches that were undisturbed and during which
 * @other (if any) ran undisturbed too; *@frac: the share of @w's full
 * batches that count. 0 if none does.
 */
static double batch_ns(const struct hit_work *w, const struct hit_work *other, double *frac)
{
	long n = 0, full = w->pairs / BATCH, j = 0;
	double ns = 0;

	for (long i = 0; i < full; i++) {
		const struct batch *b = &w->batch[i];

		if (!batch_undisturbed(b) || (other && !covered(other, &j, b->t0, b->t1)))
			continue;
		ns += (double)(b->t1 - b->t0);
		n++;
	}
	*frac = full ? (double)n / (double)full : 0;
	return n ? ns / ((double)n * BATCH) : 0;
}

static void part_hits(struct sys *s, struct hit_result *res)
{
	static uint32_t order[2][ORDER_LEN];
	unsigned char *base = mmap(NULL, HIT_REGIONS * HIT_STRIDE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = 0x2545f4914f6cdd1dULL;
	struct batch *batches[2];
	cpu_set_t allowed;

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
	/* Two CPUs for the two threads, the first for one thread: */
	res->cpus[0] = res->cpus[1] = -1;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		for (int cpu = 0, n = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
			if (CPU_ISSET(cpu, &allowed))
				res->cpus[n++] = cpu;
	if (res->cpus[1] < 0)
		res->cpus[0] = -1;	/* one CPU: the two threads share it */
	for (int t = 0; t < 2; t++) {
		batches[t] = calloc((size_t)(opt.pairs / BATCH + 2), sizeof(struct batch));
		if (!batches[t]) {
			fail(&res->head, "out of memory");
			return;
		}
	}
	for (int round = 0; round < opt.rounds && round < MAXROUNDS; round++) {
		for (int c = 0; c < NHIT; c++) {
			struct hit_work w[2];
			pthread_barrier_t bar;
			pthread_t th;

			for (int t = 0; t < 2; t++)
				w[t] = (struct hit_work){ .s = s, .base = base, .order = order[t],
							  .pairs = opt.pairs, .same = c == HIT_ONE,
							  .cpu = res->cpus[t], .batch = batches[t] };
			if (c != HIT_TWO_THREADS) {
				hit_thread(&w[0]);
				res->hit_ns[c][round] = w[0].ns;
				res->cpu_ns[c][round] = w[0].cpu_ns;
				res->conc_ns[c][round] = batch_ns(&w[0], NULL, &res->conc_frac[c][round]);
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
			{
				double f0, f1, n0 = batch_ns(&w[0], &w[1], &f0),
					       n1 = batch_ns(&w[1], &w[0], &f1);

				/* Both threads' concurrent batches, or none. */
				res->conc_ns[c][round] = n0 > 0 && n1 > 0 ? (n0 + n1) / 2 : 0;
				res->conc_frac[c][round] = (f0 + f1) / 2;
			}
		}
		res->hit_rounds = round + 1;
	}
	for (int t = 0; t < 2; t++)
		free(batches[t]);
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
	double bmed[NSYS][NHIT], bfrac[NSYS][NHIT];
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
			/* Rounds without a concurrent batch (0) left out. */
			nhit[k][c] = 0;
			for (int pass = 0; pass < 2; pass++)
				for (int r = 0; r < res[k][pass].hit_rounds; r++)
					if (res[k][pass].conc_ns[c][r] > 0)
						hit[k][c][nhit[k][c]++] = res[k][pass].conc_ns[c][r];
			bmed[k][c] = mmn_bench_median(hit[k][c], nhit[k][c]);
			nhit[k][c] = 0;
			for (int pass = 0; pass < 2; pass++)
				for (int r = 0; r < res[k][pass].hit_rounds; r++)
					hit[k][c][nhit[k][c]++] = res[k][pass].conc_frac[c][r];
			bfrac[k][c] = mmn_bench_median(hit[k][c], nhit[k][c]);
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
	printf("\n   undisturbed batches of %d pairs (two threads: both running), ns per pair;\n"
	       "   median share of batches that count:\n", BATCH);
	for (int c = 0; c < NHIT; c++)
		printf("%-34s %10.1f %10.1f %9.2f   (%3.0f%% %3.0f%%)\n", hit_name[c], bmed[SYS_MMN][c],
		       bmed[SYS_UCX][c],
		       bmed[SYS_UCX][c] > 0 ? bmed[SYS_MMN][c] / bmed[SYS_UCX][c] : 0,
		       100 * bfrac[SYS_MMN][c], 100 * bfrac[SYS_UCX][c]);
	printf("   threads on CPUs %d and %d (-1: not pinned)\n\n", res[SYS_MMN][0].cpus[0],
	       res[SYS_MMN][0].cpus[1]);
	/*
	 * UCX's two threads are slow (its hit writes lines both CPUs share):
	 * a batch takes milliseconds, as long as the scheduler's time slices,
	 * and on a loaded machine hardly one runs undisturbed on both CPUs.
	 */
	if (bmed[SYS_UCX][HIT_TWO_THREADS] > 0)
		printf("ucx hit scaling, 2 threads / 1 thread: %.2f", 2 * bmed[SYS_UCX][HIT_RANDOM] /
		       bmed[SYS_UCX][HIT_TWO_THREADS]);
	else
		printf("ucx hit scaling, 2 threads / 1 thread: n/a (no concurrent undisturbed batch)");
	printf("; wall clock: %.2f, CPU time: %.2f\n",
	       med[SYS_UCX][HIT_TWO_THREADS] > 0
		       ? 2 * med[SYS_UCX][HIT_RANDOM] / med[SYS_UCX][HIT_TWO_THREADS] : 0.0,
	       cmed[SYS_UCX][HIT_TWO_THREADS] > 0
		       ? 2 * cmed[SYS_UCX][HIT_RANDOM] / cmed[SYS_UCX][HIT_TWO_THREADS] : 0.0);
	printf("mmn hit scaling, wall clock over whole rounds: %.2f; CPU time: %.2f\n",
	       med[SYS_MMN][HIT_TWO_THREADS] > 0
		       ? 2 * med[SYS_MMN][HIT_RANDOM] / med[SYS_MMN][HIT_TWO_THREADS] : 0.0,
	       cmed[SYS_MMN][HIT_TWO_THREADS] > 0
		       ? 2 * cmed[SYS_MMN][HIT_RANDOM] / cmed[SYS_MMN][HIT_TWO_THREADS] : 0.0);
	printf("mmn/ucx hit cost, wall clock over whole rounds: %.2f\n",
	       med[SYS_UCX][HIT_RANDOM] > 0 ? med[SYS_MMN][HIT_RANDOM] / med[SYS_UCX][HIT_RANDOM]
					    : 0.0);
	printf("\nhit scaling, 2 threads / 1 thread: %.2f\n",
	       bmed[SYS_MMN][HIT_TWO_THREADS] > 0
		       ? 2 * bmed[SYS_MMN][HIT_RANDOM] / bmed[SYS_MMN][HIT_TWO_THREADS] : 0.0);
	printf("hit-cost ratio mmn/ucx: %.2f\n",
	       bmed[SYS_UCX][HIT_RANDOM] > 0 ? bmed[SYS_MMN][HIT_RANDOM] / bmed[SYS_UCX][HIT_RANDOM]
					     : 0.0);
	/* Numbers never fail the program; a child that could not measure does. */
	return failed ? 1 : 0;
}
