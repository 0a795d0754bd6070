// SPDX-License-Identifier: MIT
/*
 * Collision-retry stress: device faults racing with
 * invalidations and with notifiers coming and going.
 *
 * The "CPU page table" is an array of per-page version counters. Invalidator
 * threads run range_start, bump the versions of their pages (the unmap and
 * remap, after every callback has run) and range_end. Device threads each own
 * a mirror: a notifier over a window of the pages, a user mutex and a
 * per-page mirror table, filled by the fault loop
 *
 *	seq = read_begin; read the page versions; lock;
 *	if read_retry: unlock, retry; else install; unlock
 *
 * and emptied by the mirror's invalidate callback (under the mutex, after
 * set_seq). Half the mirrors are two-pass at any time: invalidate_start zaps
 * and returns a finish, which checks that nothing was installed in between.
 * Inserter threads insert and remove other notifiers on random ranges, so
 * walks, deferred inserts and deferred removals happen all the time.
 *
 * The oracle:
 *  - an install never writes a version older than the version current when
 *    the last callback for that page ran (per-page floor, under the mutex);
 *  - between a successful range_start and its range_end (before and after the
 *    bump) no mirror holds an entry for a page of that range;
 *  - a two-pass finish finds its range still empty;
 *  - after everything stops, every valid mirror entry equals the page's
 *    current version, and the domain is idle and sound.
 * A thread that does not stop within a bounded time fails the test (deadlock).
 *
 * Usage: stress_collision_retry [seed [seconds [threads]]]
 *   seconds: default 5, or 2 when CI=true; threads per role: default 2.
 */
#include <limits.h>

#include "harness.h"
#include "internal.h"

#define NPAGES 512
#define PAGE 4096ul
#define PBASE 0x7f0000000000ul
#define MAX_ROLE 8
#define POOL 24			/* notifiers per inserter thread */

static struct mmn_mm *mm;
static unsigned long cpu_ver[NPAGES];	/* atomic; starts at 1 */
static bool stop;			/* atomic: inserters and invalidators */
static bool stop_devices;		/* atomic: set after they are joined */
static int nthreads = 2;

/* Each thread's generator; callbacks use the one of the thread running them. */
static __thread struct test_rng *trng;

static uint64_t rnd(uint64_t n)
{
	return test_rng_below(trng, n);
}

/* Counters, summed atomically. */
static struct {
	unsigned long faults, retries, early_retries, installs, teardowns;
	unsigned long invalidations, eagain, releases, bumps;
	unsigned long mirror_calls, mirror_false, mirror_finishes, mirror_handed;
	unsigned long other_calls, other_false, other_finishes, other_handed;
	unsigned long inserts, removes, read_begins;
} cnt;

#define ADD(field, n) __atomic_fetch_add(&cnt.field, (n), __ATOMIC_RELAXED)

/* Failures from any thread: report the first, stop everything. */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

#define SCHECK(cond, ...)                                                       \
	do {                                                                    \
		if (!(cond)) {                                                  \
			pthread_mutex_lock(&fail_lock);                         \
			test_fail_at(__FILE__, __LINE__);                       \
			fprintf(stderr, "    check: %s\n    ", #cond);          \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			test_exit_now();                                        \
		}                                                               \
	} while (0)

static unsigned long page_addr(int p)
{
	return PBASE + (unsigned long)p * PAGE;
}

/* Pages overlapping [start, end), clamped to [lo, hi); false if none. */
static bool page_span(unsigned long start, unsigned long end, int lo, int hi,
		      int *first, int *last)
{
	unsigned long s = start < page_addr(lo) ? page_addr(lo) : start;
	unsigned long e = end > page_addr(hi) ? page_addr(hi) : end;

	if (s >= e)
		return false;
	*first = (int)((s - PBASE) / PAGE);
	*last = (int)((e - 1 - PBASE) / PAGE);
	return true;
}

/* ---- mirrors ------------------------------------------------------------- */

struct mirror {
	struct mmn_interval_notifier sub;
	pthread_mutex_t lock;		/* the user lock of the protocol */
	int id, first, npages;		/* window [first, first + npages) */
	unsigned long ver[NPAGES];	/* under lock: 0 = no entry */
	unsigned long floor[NPAGES];	/* under lock: version at the last zap */
	struct test_rng rng;
};

struct mirror_finish {
	struct mmn_finish f;
	struct mirror *m;
	int first, last;
	unsigned int magic;
};
#define MF_MAGIC 0x4d465231u

static struct mirror mirrors[MAX_ROLE];

/* Under m->lock: drop the entries of [start, end), remember the versions. */
static bool mirror_zap(struct mirror *m, const struct mmn_range *range, int *first,
		       int *last)
{
	if (!page_span(range->start, range->end, m->first, m->first + m->npages,
		       first, last))
		return false;
	for (int p = *first; p <= *last; p++) {
		unsigned long v = __atomic_load_n(&cpu_ver[p], __ATOMIC_SEQ_CST);

		if (v > m->floor[p])
			m->floor[p] = v;
		m->ver[p] = 0;
	}
	return true;
}

/* test_hmm's pattern: sleep for the lock only when the range allows it. */
static bool mirror_lock(struct mirror *m, const struct mmn_range *range)
{
	if (mmn_range_blockable(range)) {
		pthread_mutex_lock(&m->lock);
		return true;
	}
	return pthread_mutex_trylock(&m->lock) == 0;
}

static bool mirror_invalidate(struct mmn_interval_notifier *sub,
			      const struct mmn_range *range, unsigned long cur_seq)
{
	struct mirror *m = mmn_container_of(sub, struct mirror, sub);
	int first, last;

	ADD(mirror_calls, 1);
	if (!mirror_lock(m, range)) {
		ADD(mirror_false, 1);
		return false;
	}
	mmn_interval_set_seq(sub, cur_seq);
	mirror_zap(m, range, &first, &last);
	pthread_mutex_unlock(&m->lock);
	return true;
}

static bool mirror_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq, struct mmn_finish **finish)
{
	struct mirror *m = mmn_container_of(sub, struct mirror, sub);
	struct mirror_finish *mf;
	int first, last;
	bool hit;

	ADD(mirror_calls, 1);
	if (!mirror_lock(m, range)) {
		ADD(mirror_false, 1);
		return false;
	}
	mmn_interval_set_seq(sub, cur_seq);
	hit = mirror_zap(m, range, &first, &last);
	pthread_mutex_unlock(&m->lock);
	if (!hit)
		return true;
	/* One container per invocation: overlapping walks run concurrently. */
	mf = malloc(sizeof(*mf));
	if (!mf)
		return true;	/* the zap is done already: nothing to wait for */
	*mf = (struct mirror_finish){ .m = m, .first = first, .last = last, .magic = MF_MAGIC };
	*finish = &mf->f;
	ADD(mirror_handed, 1);
	return true;
}

/* Second pass: nothing may have been installed since the zap. */
static void mirror_finish(struct mmn_finish *finish)
{
	struct mirror_finish *mf = mmn_container_of(finish, struct mirror_finish, f);
	struct mirror *m = mf->m;

	SCHECK(mf->magic == MF_MAGIC, "finish: not a live container");
	SCHECK(finish->notifier == &m->sub, "finish->notifier is not the mirror's");
	pthread_mutex_lock(&m->lock);
	for (int p = mf->first; p <= mf->last; p++)
		SCHECK(m->ver[p] == 0,
		       "mirror %d page %d: version %lu installed between start and finish",
		       m->id, p, m->ver[p]);
	pthread_mutex_unlock(&m->lock);
	ADD(mirror_finishes, 1);
	mf->magic = 0;
	free(mf);
}

static const struct mmn_interval_notifier_ops mirror_single_ops = {
	.invalidate = mirror_invalidate,
};
static const struct mmn_interval_notifier_ops mirror_two_ops = {
	.invalidate_start = mirror_start,
	.invalidate_finish = mirror_finish,
};

static void mirror_insert(struct mirror *m)
{
	const struct mmn_interval_notifier_ops *ops =
		test_rng_below(&m->rng, 2) ? &mirror_two_ops : &mirror_single_ops;
	int ret = mmn_interval_notifier_insert(&m->sub, mm, page_addr(m->first),
					       (unsigned long)m->npages * PAGE, ops);

	SCHECK(ret == 0, "mirror %d: insert returned %d", m->id, ret);
}

/* Busy work that is not optimised away and does not give up the CPU. */
static void spin(uint64_t n)
{
	for (volatile uint64_t i = 0; i < n; i++)
		;
}

/* One device fault over a few pages of the window: the protocol's loop. */
static void device_fault(struct mirror *m)
{
	int n = 1 + (int)rnd(8), p = m->first + (int)rnd((uint64_t)(m->npages - n + 1));
	unsigned long v[8], seq;

	while (!__atomic_load_n(&stop_devices, __ATOMIC_RELAXED)) {
		seq = mmn_interval_read_begin(&m->sub);
		for (int i = 0; i < n; i++)
			v[i] = __atomic_load_n(&cpu_ver[p + i], __ATOMIC_SEQ_CST);
		if (rnd(4) == 0)
			spin(rnd(2000));	/* a slow fault: a wider window */
		if (rnd(4) == 0 && mmn_interval_check_retry(&m->sub, seq)) {
			ADD(early_retries, 1);
			continue;
		}
		pthread_mutex_lock(&m->lock);
		if (mmn_interval_read_retry(&m->sub, seq)) {
			pthread_mutex_unlock(&m->lock);
			ADD(retries, 1);
			continue;
		}
		for (int i = 0; i < n; i++) {
			SCHECK(v[i] >= m->floor[p + i],
			       "mirror %d page %d: installing version %lu, but a callback "
			       "ran when it was %lu", m->id, p + i, v[i], m->floor[p + i]);
			m->ver[p + i] = v[i];
		}
		pthread_mutex_unlock(&m->lock);
		ADD(faults, 1);
		ADD(installs, (unsigned long)n);
		return;
	}
}

static void *device_main(void *arg)
{
	struct mirror *m = arg;

	trng = &m->rng;
	while (!__atomic_load_n(&stop_devices, __ATOMIC_RELAXED)) {
		if (rnd(500) == 0) {
			/* Tear the mirror down and set it up again. */
			pthread_mutex_lock(&m->lock);
			memset(m->ver, 0, sizeof(m->ver));
			pthread_mutex_unlock(&m->lock);
			SCHECK(mmn_interval_notifier_remove(&m->sub) == 0, "mirror remove");
			mirror_insert(m);
			ADD(teardowns, 1);
			continue;
		}
		device_fault(m);
	}
	return NULL;
}

/* ---- invalidators --------------------------------------------------------- */

/* No mirror may hold an entry for a page of an open, successful region. */
static void check_zapped(const struct mmn_range *range, const char *when)
{
	for (int i = 0; i < nthreads; i++) {
		struct mirror *m = &mirrors[i];
		int first, last;

		if (!page_span(range->start, range->end, m->first, m->first + m->npages,
			       &first, &last))
			continue;
		pthread_mutex_lock(&m->lock);
		for (int p = first; p <= last; p++)
			SCHECK(m->ver[p] == 0,
			       "mirror %d page %d: entry %lu present %s range [%#lx, %#lx)",
			       m->id, p, m->ver[p], when, range->start, range->end);
		pthread_mutex_unlock(&m->lock);
	}
}

static void rand_page_range(unsigned long *start, unsigned long *end)
{
	int p = (int)rnd(NPAGES), n = 1 + (int)rnd(32);

	switch (rnd(16)) {
	case 0:		/* everything */
		*start = 0;
		*end = ULONG_MAX;
		return;
	case 1:		/* part of a page */
		*start = page_addr(p) + rnd(PAGE / 2);
		*end = *start + 1 + rnd(PAGE / 2);
		return;
	case 2:		/* beyond the pages: hits only inserter notifiers */
		*start = page_addr(NPAGES) + rnd(64) * PAGE;
		*end = *start + (1 + rnd(16)) * PAGE;
		return;
	default:
		if (p + n > NPAGES)
			n = NPAGES - p;
		*start = page_addr(p);
		*end = page_addr(p + n);
		return;
	}
}

static void *invalidator_main(void *arg)
{
	struct test_rng *rng = arg;
	struct mmn_range range;

	trng = rng;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		unsigned long start, end;
		bool blockable = rnd(5) != 0;
		int first, last, ret;

		if (rnd(1000) == 0) {
			mmn_mm_release(mm);
			ADD(releases, 1);
			continue;
		}
		rand_page_range(&start, &end);
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, start, end);
		ret = blockable ? mmn_invalidate_range_start(&range) :
				  mmn_invalidate_range_start_nonblock(&range);
		if (ret == -EAGAIN) {
			SCHECK(!blockable, "blockable start returned -EAGAIN");
			ADD(eagain, 1);	/* the pages must not change; no _end */
			continue;
		}
		SCHECK(ret == 0, "range_start returned %d", ret);
		check_zapped(&range, "inside");
		if (page_span(start, end, 0, NPAGES, &first, &last)) {
			for (int p = first; p <= last; p++)
				__atomic_fetch_add(&cpu_ver[p], 1, __ATOMIC_SEQ_CST);
			ADD(bumps, (unsigned long)(last - first + 1));
		}
		check_zapped(&range, "after the bump, inside");
		mmn_invalidate_range_end(&range);
		ADD(invalidations, 1);
	}
	return NULL;
}

/* ---- inserters ------------------------------------------------------------- */

struct other {
	struct mmn_interval_notifier sub;
	bool inserted;			/* owner thread only */
};

struct other_finish {
	struct mmn_finish f;
	unsigned int magic;
};
#define OF_MAGIC 0x4f465231u

static bool other_invalidate(struct mmn_interval_notifier *sub,
			     const struct mmn_range *range, unsigned long cur_seq)
{
	ADD(other_calls, 1);
	if (!mmn_range_blockable(range) && rnd(8) == 0) {
		ADD(other_false, 1);
		return false;
	}
	SCHECK(range->start <= mmn_interval_notifier_last(sub) &&
	       range->end - 1 >= mmn_interval_notifier_start(sub),
	       "called for a range that misses the interval");
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static bool other_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			unsigned long cur_seq, struct mmn_finish **finish)
{
	struct other_finish *of;

	if (!other_invalidate(sub, range, cur_seq))
		return false;
	if (rnd(4) == 0 || !(of = malloc(sizeof(*of))))
		return true;
	of->magic = OF_MAGIC;
	*finish = &of->f;
	ADD(other_handed, 1);
	return true;
}

static void other_finish(struct mmn_finish *finish)
{
	struct other_finish *of = mmn_container_of(finish, struct other_finish, f);

	SCHECK(of->magic == OF_MAGIC, "finish: not a live container");
	ADD(other_finishes, 1);
	of->magic = 0;
	free(of);
}

static const struct mmn_interval_notifier_ops other_single_ops = {
	.invalidate = other_invalidate,
};
static const struct mmn_interval_notifier_ops other_two_ops = {
	.invalidate_start = other_start,
	.invalidate_finish = other_finish,
};

static void *inserter_main(void *arg)
{
	struct test_rng *rng = arg;
	struct other *pool = calloc(POOL, sizeof(*pool));
	int ret;

	SCHECK(pool != NULL, "out of memory");
	trng = rng;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		struct other *o = &pool[rnd(POOL)];

		if (!o->inserted) {
			unsigned long start, end;

			rand_page_range(&start, &end);
			if (end == ULONG_MAX)
				end--;
			ret = mmn_interval_notifier_insert(&o->sub, mm, start, end - start,
							   rnd(2) ? &other_two_ops :
								    &other_single_ops);
			SCHECK(ret == 0, "insert returned %d", ret);
			o->inserted = true;
			ADD(inserts, 1);
		} else if (rnd(4) == 0) {
			/* A fault on it: may wait for an open period. */
			unsigned long seq = mmn_interval_read_begin(&o->sub);

			SCHECK(seq & 1, "read_begin returned an even %#lx", seq);
			ADD(read_begins, 1);
		} else {
			ret = mmn_interval_notifier_remove(&o->sub);
			SCHECK(ret == 0, "remove returned %d", ret);
			o->inserted = false;
			ADD(removes, 1);
		}
	}
	for (int i = 0; i < POOL; i++) {
		if (pool[i].inserted) {
			SCHECK(mmn_interval_notifier_remove(&pool[i].sub) == 0, "final remove");
			ADD(removes, 1);
		}
	}
	free(pool);
	return NULL;
}

/* ---- main ------------------------------------------------------------------ */

static double seconds = 5.0;

/* Bounded join: a thread still running long after the stop is a deadlock. */
static void join_all(pthread_t *threads, const char **role, int nr, bool devices)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 60;
	for (int i = 0; i < nr; i++) {
		struct mmn_stats st;
		int ret;

		if ((strcmp(role[i], "device") == 0) != devices)
			continue;
		ret = pthread_timedjoin_np(threads[i], NULL, &deadline);
		if (ret == 0)
			continue;
		mmn_mm_get_stats(mm, &st);
		fprintf(stderr, "  %s thread %d did not stop within 60 s (deadlock?): "
			"seq %#lx, %lu open, %lu deferred\n", role[i], i, st.seq,
			st.active, st.deferred);
		assert_eq(ret, 0);
	}
}

TEST(collision_retry)
{
	struct test_rng rngs[2 * MAX_ROLE];
	pthread_t threads[3 * MAX_ROLE];
	const char *role[3 * MAX_ROLE];
	unsigned long stale = 0, entries = 0;
	struct mmn_stats st;
	uint64_t end_ns;
	int nr = 0;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int p = 0; p < NPAGES; p++)
		cpu_ver[p] = 1;
	for (int i = 0; i < 2 * nthreads; i++)
		test_rng_seed(&rngs[i], test_seed * 1000003u + (uint64_t)i);
	for (int i = 0; i < nthreads; i++) {
		struct mirror *m = &mirrors[i];

		m->id = i;
		m->npages = NPAGES / 2;
		m->first = (i * 97) % (NPAGES / 2);	/* the windows overlap */
		pthread_mutex_init(&m->lock, NULL);
		test_rng_seed(&m->rng, test_seed * 7919u + (uint64_t)i);
		mirror_insert(m);
	}
	for (int i = 0; i < nthreads; i++) {
		role[nr] = "inserter";
		assert_eq(pthread_create(&threads[nr++], NULL, inserter_main, &rngs[i]), 0);
		role[nr] = "invalidator";
		assert_eq(pthread_create(&threads[nr++], NULL, invalidator_main,
					 &rngs[nthreads + i]), 0);
		role[nr] = "device";
		assert_eq(pthread_create(&threads[nr++], NULL, device_main, &mirrors[i]), 0);
	}

	/* The run's length is the workload, not a synchronisation. */
	end_ns = test_now_ns() + (uint64_t)(seconds * 1e9);
	while (test_now_ns() < end_ns) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	/*
	 * Writers first, so the devices' last installs race with the last
	 * invalidations and stay in the mirrors for the final check.
	 */
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	join_all(threads, role, nr, false);
	__atomic_store_n(&stop_devices, true, __ATOMIC_RELAXED);
	join_all(threads, role, nr, true);

	/* Quiescent: every entry left must be the page's current version. */
	for (int i = 0; i < nthreads; i++) {
		struct mirror *m = &mirrors[i];

		for (int p = m->first; p < m->first + m->npages; p++) {
			if (!m->ver[p])
				continue;
			entries++;
			if (m->ver[p] != cpu_ver[p] && !stale++)
				fprintf(stderr, "  mirror %d page %d: entry %lu, page at %lu\n", i,
					p, m->ver[p], cpu_ver[p]);
		}
	}
	expect_eq(stale, 0);

	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	expect_eq(st.active, 0);
	expect_eq(st.seq & 1, 0);
	expect_eq(st.deferred, 0);
	expect_eq(st.notifiers, nthreads);	/* the mirrors */
	expect_eq(st.nonblock_failures, cnt.eagain);
	expect_eq(st.warnings, 0);
	expect_eq(st.releases, cnt.releases);
	expect_eq(st.invalidations, cnt.invalidations + cnt.eagain + cnt.releases);
	expect_eq(st.finishes, cnt.mirror_finishes + cnt.other_finishes);
	/* Every finish handed back was called, exactly once. */
	expect_eq(cnt.mirror_finishes, cnt.mirror_handed);
	expect_eq(cnt.other_finishes, cnt.other_handed);
	expect_eq(st.notifiers_called, cnt.mirror_calls + cnt.other_calls);
	for (int i = 0; i < nthreads; i++) {
		expect_eq(mmn_interval_notifier_remove(&mirrors[i].sub), 0);
		pthread_mutex_destroy(&mirrors[i].lock);
	}
	expect_eq(mmn_mm_destroy(mm), 0);

	/* Something must have happened, or the run proves nothing. */
	expect_gt(cnt.faults, 0);
	expect_gt(cnt.invalidations, 0);
	expect_gt(cnt.inserts, 0);
	expect_gt(cnt.mirror_calls, 0);

	printf("  %.1f s, %d threads per role, %lu mirror entries left (all current)\n",
	       seconds, nthreads, entries);
	printf("  faults %lu (pages %lu), retries %lu (+%lu early), mirror teardowns %lu\n",
	       cnt.faults, cnt.installs, cnt.retries, cnt.early_retries, cnt.teardowns);
	printf("  invalidations %lu, EAGAIN %lu, releases %lu, page bumps %lu\n",
	       cnt.invalidations, cnt.eagain, cnt.releases, cnt.bumps);
	printf("  mirror callbacks %lu (false %lu, finishes %lu); other callbacks %lu "
	       "(false %lu, finishes %lu)\n", cnt.mirror_calls, cnt.mirror_false,
	       cnt.mirror_finishes, cnt.other_calls, cnt.other_false, cnt.other_finishes);
	printf("  inserts %lu, removes %lu, read_begins %lu\n", cnt.inserts, cnt.removes,
	       cnt.read_begins);
	printf("  domain: %llu regions (%llu hit), %llu deferred inserts, %llu deferred "
	       "removes, %llu read_begin waits, %llu remove waits\n",
	       (unsigned long long)st.invalidations, (unsigned long long)st.invalidations_hit,
	       (unsigned long long)st.deferred_inserts, (unsigned long long)st.deferred_removes,
	       (unsigned long long)st.read_begin_waits, (unsigned long long)st.remove_waits);
}

int main(int argc, char **argv)
{
	const char *ci = getenv("CI");

	test_seed_from_args(argc, argv);
	if (ci && strcmp(ci, "true") == 0)
		seconds = 2.0;
	if (argc > 2)
		seconds = strtod(argv[2], NULL);
	if (argc > 3)
		nthreads = atoi(argv[3]);
	if (nthreads < 1 || nthreads > MAX_ROLE || !(seconds >= 0)) {
		fprintf(stderr, "usage: %s [seed [seconds [threads 1..%d]]]\n", argv[0], MAX_ROLE);
		return 2;
	}
	RUN(collision_retry);
	return test_report();
}
