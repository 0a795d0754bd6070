// SPDX-License-Identifier: MIT
/*
 * Collision-retry model check, small and bounded (docs/TESTING.md scenario
 * 18). A larger stress test lives in test/stress/; this one runs ~2 s.
 *
 * A simulated address space of NPAGES pages, each with a CPU-side version
 * that invalidators bump only inside an invalidation region (after the start
 * has returned, before _end): the "PTE change". A simulated device mirrors
 * pages: faulting threads run the read_begin / read version / user lock /
 * read_retry / install loop. NSUBS notifiers each cover a slice of the pages,
 * each with its own user lock; half are single-pass (zap in invalidate), half
 * two-pass (set_seq in invalidate_start, zap in invalidate_finish). A quarter
 * of the invalidations are non-blockable (trylock, else false -> -EAGAIN).
 *
 * Oracle:
 *  - at install time (user lock held, read_retry false) the version read
 *    must still be the page's current version;
 *  - after a successful start, no page of the range has a valid mirror
 *    entry, and none appears before _end;
 *  - at the end, every valid entry holds the current version, every page
 *    faults in without a retry, and the domain is quiescent;
 *  - the callback counts equal the domain's stats; nothing deadlocks.
 *
 * Seeded: argv[1] repeats a run's random choices (not its interleaving).
 */
#include "recorder.h"

#define NPAGES 64
#define PAGE 0x1000ul
#define BASE 0x40000000ul
#define NSUBS 4
#define PAGES_PER_SUB (NPAGES / NSUBS)
#define NFAULTERS 3
#define NINVALIDATORS 2
#define RUN_MS 2000

struct csub {
	struct mmn_interval_notifier sub;
	pthread_mutex_t user_lock;
	int index;
};

struct cfinish {
	struct mmn_finish f;
	struct csub *s;
	unsigned long start, end;
};

struct mirror_entry {
	unsigned long version;
	bool valid;
};

static struct mmn_mm *mm;
static struct csub subs[NSUBS];
static unsigned long cpu_version[NPAGES];	/* atomic */
static struct mirror_entry mirror[NPAGES];	/* under the owning sub's user lock */
static bool stop_faults;			/* atomic */
static int invalidators_done;			/* atomic */

/* Atomic counters. */
static uint64_t first_passes, finishes, stale_installs, stale_after_start;
static uint64_t installs, retries, eagain, starts, bad_cur_seq;

/* One finish per (invalidating thread, notifier): a walk calls a notifier once. */
static __thread struct cfinish tl_fin[NSUBS];

static void add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t get(uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static struct csub *owner(unsigned long page)
{
	return &subs[page / PAGES_PER_SUB];
}

/* Zap the sub's mirror entries that overlap [start, end); user lock held. */
static void zap_locked(struct csub *s, unsigned long start, unsigned long end)
{
	unsigned long first = (unsigned long)s->index * PAGES_PER_SUB;

	for (unsigned long p = first; p < first + PAGES_PER_SUB; p++) {
		unsigned long a = BASE + p * PAGE;

		if (a < end && a + PAGE > start)
			mirror[p].valid = false;
	}
}

static bool lock_user(struct csub *s, const struct mmn_range *range)
{
	if (mmn_range_blockable(range)) {
		pthread_mutex_lock(&s->user_lock);
		return true;
	}
	return pthread_mutex_trylock(&s->user_lock) == 0;
}

static bool c_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq)
{
	struct csub *s = (struct csub *)sub;

	add(&first_passes, 1);
	if (!(cur_seq & 1))
		add(&bad_cur_seq, 1);
	if (!lock_user(s, range))
		return false;
	mmn_interval_set_seq(sub, cur_seq);
	zap_locked(s, range->start, range->end);
	pthread_mutex_unlock(&s->user_lock);
	return true;
}

static bool c_invalidate_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			       unsigned long cur_seq, struct mmn_finish **finish)
{
	struct csub *s = (struct csub *)sub;
	struct cfinish *fin = &tl_fin[s->index];

	add(&first_passes, 1);
	if (!(cur_seq & 1))
		add(&bad_cur_seq, 1);
	if (!lock_user(s, range))
		return false;
	mmn_interval_set_seq(sub, cur_seq);
	if (!mmn_range_blockable(range)) {
		/* Do it all now: the finish would not know it must not sleep. */
		zap_locked(s, range->start, range->end);
		pthread_mutex_unlock(&s->user_lock);
		return true;
	}
	pthread_mutex_unlock(&s->user_lock);
	fin->s = s;
	fin->start = range->start;
	fin->end = range->end;
	*finish = &fin->f;
	return true;
}

static void c_invalidate_finish(struct mmn_finish *f)
{
	struct cfinish *fin = (struct cfinish *)f;

	add(&finishes, 1);
	pthread_mutex_lock(&fin->s->user_lock);
	zap_locked(fin->s, fin->start, fin->end);
	pthread_mutex_unlock(&fin->s->user_lock);
}

static const struct mmn_interval_notifier_ops c_single_ops = { .invalidate = c_invalidate };
static const struct mmn_interval_notifier_ops c_two_pass_ops = {
	.invalidate_start = c_invalidate_start,
	.invalidate_finish = c_invalidate_finish,
};

/* One device fault of @page; returns the number of retries it took. */
static unsigned long fault(unsigned long page, struct test_rng *rng)
{
	struct csub *s = owner(page);
	unsigned long n = 0;

	for (;; n++) {
		unsigned long seq = mmn_interval_read_begin(&s->sub), v;

		if (seq % 2 != 1)
			add(&bad_cur_seq, 1);
		v = __atomic_load_n(&cpu_version[page], __ATOMIC_ACQUIRE);
		if (rng && test_rng_below(rng, 8) == 0)
			sched_yield();	/* widen the window */
		if (mmn_interval_check_retry(&s->sub, seq))
			continue;	/* early exit: a collision is already known */
		pthread_mutex_lock(&s->user_lock);
		if (mmn_interval_read_retry(&s->sub, seq)) {
			pthread_mutex_unlock(&s->user_lock);
			continue;
		}
		if (v != __atomic_load_n(&cpu_version[page], __ATOMIC_ACQUIRE))
			add(&stale_installs, 1);
		mirror[page].version = v;
		mirror[page].valid = true;
		pthread_mutex_unlock(&s->user_lock);
		add(&installs, 1);
		return n;
	}
}

static void *faulter(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
	while (!__atomic_load_n(&stop_faults, __ATOMIC_ACQUIRE))
		add(&retries, fault(test_rng_below(&rng, NPAGES), &rng));
	return NULL;
}

/* Are any of pages [a, b) mirrored? Takes each owner's user lock. */
static uint64_t count_valid(unsigned long a, unsigned long b)
{
	uint64_t n = 0;

	for (unsigned long p = a; p < b; p++) {
		struct csub *s = owner(p);

		pthread_mutex_lock(&s->user_lock);
		n += mirror[p].valid;
		pthread_mutex_unlock(&s->user_lock);
	}
	return n;
}

static void *invalidator(void *arg)
{
	struct test_rng rng;
	uint64_t deadline = test_now_ns() + (uint64_t)RUN_MS * 1000000u;

	test_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
	while (test_now_ns() < deadline) {
		unsigned long a = test_rng_below(&rng, NPAGES);
		unsigned long b = a + 1 + test_rng_below(&rng, 16);
		bool nonblock = test_rng_below(&rng, 4) == 0;
		struct mmn_range range;
		int ret;

		if (b > NPAGES)
			b = NPAGES;
		if (test_rng_below(&rng, 16) == 0) {	/* outside every notifier */
			mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
			a = b = 0;
		} else {
			mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, BASE + a * PAGE,
				       BASE + b * PAGE);
		}
		add(&starts, 1);
		ret = nonblock ? mmn_invalidate_range_start_nonblock(&range)
			       : mmn_invalidate_range_start(&range);
		if (ret == -EAGAIN) {
			add(&eagain, 1);	/* the pages must not change */
			continue;
		}
		if (ret) {
			add(&stale_after_start, 1000000);
			continue;
		}
		add(&stale_after_start, count_valid(a, b));
		for (unsigned long p = a; p < b; p++)
			__atomic_fetch_add(&cpu_version[p], 1, __ATOMIC_RELEASE);
		if (test_rng_below(&rng, 4) == 0)
			sched_yield();	/* let faults run into the open region */
		add(&stale_after_start, count_valid(a, b));
		mmn_invalidate_range_end(&range);
		sched_yield();
	}
	__atomic_fetch_add(&invalidators_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(s18_collision_retry)
{
	pthread_t f[NFAULTERS], inv[NINVALIDATORS];
	uint64_t seed = test_seed;
	struct mmn_stats st;
	bool settled;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < NSUBS; i++) {
		unsigned long start = BASE + (unsigned long)i * PAGES_PER_SUB * PAGE;

		subs[i].index = i;
		pthread_mutex_init(&subs[i].user_lock, NULL);
		assert_eq(mmn_interval_notifier_insert(&subs[i].sub, mm, start,
						       PAGES_PER_SUB * PAGE,
						       i & 1 ? &c_two_pass_ops : &c_single_ops),
			  0);
	}

	for (int i = 0; i < NFAULTERS; i++)
		pthread_create(&f[i], NULL, faulter, (void *)(uintptr_t)(seed * 31 + (uint64_t)i));
	for (int i = 0; i < NINVALIDATORS; i++)
		pthread_create(&inv[i], NULL, invalidator,
			       (void *)(uintptr_t)(seed * 17 + 1000 + (uint64_t)i));
	/* No deadlock: the invalidators end on time, and then every fault completes. */
	settled = wait_until(__atomic_load_n(&invalidators_done, __ATOMIC_ACQUIRE) ==
				     NINVALIDATORS,
			     RUN_MS + WAIT_MS);
	__atomic_store_n(&stop_faults, true, __ATOMIC_RELEASE);
	settled = settled && wait_until(stats_of(mm).active == 0 && stats_of(mm).seq % 2 == 0,
					WAIT_MS);
	assert_true(settled);
	for (int i = 0; i < NINVALIDATORS; i++)
		pthread_join(inv[i], NULL);
	for (int i = 0; i < NFAULTERS; i++)
		pthread_join(f[i], NULL);

	printf("  %" PRIu64 " invalidations (%" PRIu64 " -EAGAIN), %" PRIu64 " installs, %" PRIu64
	       " retries\n",
	       get(&starts), get(&eagain), get(&installs), get(&retries));
	expect_eq(get(&stale_installs), 0);
	expect_eq(get(&stale_after_start), 0);
	expect_eq(get(&bad_cur_seq), 0);
	expect_gt(get(&starts), 0);
	expect_gt(get(&installs), 0);

	/* Quiescent: every mirrored page is current, and faults need no retry. */
	for (unsigned long p = 0; p < NPAGES; p++)
		if (mirror[p].valid)
			expect_eq_ul(mirror[p].version, cpu_version[p]);
	for (unsigned long p = 0; p < NPAGES; p++) {
		expect_eq_ul(fault(p, NULL), 0);
		expect_true(mirror[p].valid);
		expect_eq_ul(mirror[p].version, cpu_version[p]);
	}

	st = stats_of(mm);
	expect_eq(st.invalidations, get(&starts));
	expect_eq(st.nonblock_failures, get(&eagain));
	expect_eq(st.notifiers_called, get(&first_passes));
	expect_eq(st.finishes, get(&finishes));
	expect_eq(st.warnings, 0);
	expect_eq_ul(st.notifiers, NSUBS);
	expect_quiescent(mm);
	expect_eq_ul(st.active, 0);

	for (int i = 0; i < NSUBS; i++) {
		expect_eq(mmn_interval_notifier_remove(&subs[i].sub), 0);
		pthread_mutex_destroy(&subs[i].user_lock);
	}
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(int argc, char **argv)
{
	test_seed_from_args(argc, argv);
	RUN(s18_collision_retry);
	return test_report();
}
