// SPDX-License-Identifier: MIT
/*
 * The race the peers get wrong ("register during unmap", docs/process-events.md):
 * a thread registers memory -- mmn_process_insert(), read_begin, "pin" (copy the
 * page's generation stamp, as a device would take its physical page), lock,
 * read_retry, commit -- while another thread replaces the same pages with
 * munmap + mmap(MAP_FIXED) or with mmap(MAP_FIXED) alone. With pre-call
 * hooks only, the registrar can pin the old page after the invalidation and
 * before the system call, and commit a registration of memory that is gone.
 * libmmn keeps the region open across the system call, so this must never
 * happen: the oracle, checked by the remapper right after each remap returns,
 * is that no valid registration of the range holds an older generation.
 *
 * Each range is one page of a memfd mapped MAP_SHARED. Generation g of range
 * r lives in memfd page r * SLOTS + g % SLOTS, stamped with g through a
 * separate staging mapping *before* it is mapped at the range, so the range
 * never shows a page without its stamp. The registrar reads the stamp through
 * a pipe (write(2) from the range), so an unmapped range fails with EFAULT
 * instead of faulting.
 *
 * Usage: stress_process_race [seed] [--seconds N] [--broken-prehook]
 *   Runs ~3 s (1 s when CI=true). --broken-prehook makes the remapper behave
 *   like the peers (report the change with begin/end *before* a raw system
 *   call): the oracle must then catch violations. It is a demonstration that
 *   the test has teeth, not run by CTest.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"

#define RANGES 8
#define SLOTS 4		/* memfd pages per range: the mapped one is never restamped */

struct entry {
	struct mmn_interval_notifier sub;
	bool inserted;		/* registrar's own */
	bool valid;		/* under cache_lock */
	uint64_t gen;		/* under cache_lock: the pinned stamp */
};

static unsigned long pg;
static int memfd, probe_pipe[2];
static unsigned long area;		/* range r at area + 2 r pages */
static volatile uint64_t *staging;	/* the whole memfd */
static struct entry cache[RANGES];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t gens[RANGES];		/* atomic: current generation of each range */
static bool stop;			/* atomic */
static bool broken_prehook;

static struct {
	uint64_t remaps, unmap_first, commits, retries, pin_faults, invalidations,
		removes, violations;
} n;	/* each field written by one thread; read after the join */

static unsigned long range_addr(int r)
{
	return area + 2ul * (unsigned long)r * pg;
}

static bool invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		       unsigned long cur_seq)
{
	struct entry *e = mmn_container_of(sub, struct entry, sub);

	(void)range;
	pthread_mutex_lock(&cache_lock);
	e->valid = false;
	mmn_interval_set_seq(sub, cur_seq);
	pthread_mutex_unlock(&cache_lock);
	__atomic_add_fetch(&n.invalidations, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = invalidate };

/*
 * Copy the range's stamp, as a device would pin the page; false if unmapped.
 * The copy races with the remap by design -- read_retry decides whether it
 * counts, as in any seqcount reader -- so it is made by the kernel through
 * syscall(), which TSan does not intercept, rather than through write().
 */
static bool pin(int r, uint64_t *stamp)
{
	if (syscall(SYS_write, probe_pipe[1], range_addr(r), sizeof(*stamp)) != sizeof(*stamp))
		return false;
	return read(probe_pipe[0], stamp, sizeof(*stamp)) == sizeof(*stamp);
}

static void spin(unsigned int iterations)
{
	for (volatile unsigned int i = 0; i < iterations; i++)
		;
}

/* ---- the registrar --------------------------------------------------------------- */

static void *registrar(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, *(uint64_t *)arg);
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		int r = (int)test_rng_below(&rng, RANGES);
		struct entry *e = &cache[r];
		unsigned long seq;
		uint64_t stamp;

		if (e->inserted && test_rng_below(&rng, 8) == 0) {
			/* Deregister first: once removed, nothing invalidates it. */
			pthread_mutex_lock(&cache_lock);
			e->valid = false;
			pthread_mutex_unlock(&cache_lock);
			if (mmn_interval_notifier_remove(&e->sub))
				abort();
			e->inserted = false;
			n.removes++;
			continue;
		}
		if (!e->inserted) {
			if (mmn_process_insert(&e->sub, range_addr(r), pg, &ops))
				abort();
			e->inserted = true;
		}
		for (int tries = 0; tries < 16; tries++) {
			seq = mmn_interval_read_begin(&e->sub);
			if (!pin(r, &stamp)) {
				n.pin_faults++;
				break;
			}
			spin((unsigned int)test_rng_below(&rng, 2000));	/* the device's work */
			pthread_mutex_lock(&cache_lock);
			if (mmn_interval_read_retry(&e->sub, seq)) {
				pthread_mutex_unlock(&cache_lock);
				n.retries++;
				continue;
			}
			e->valid = true;
			e->gen = stamp;
			pthread_mutex_unlock(&cache_lock);
			n.commits++;
			break;
		}
	}
	return NULL;
}

/* ---- the remapper -------------------------------------------------------------- */

static void remap(int r, uint64_t g, bool unmap_first)
{
	unsigned long a = range_addr(r);
	off_t off = (off_t)(((unsigned long)r * SLOTS + g % SLOTS) * pg);
	struct mmn_process_event ev;
	void *p;

	if (broken_prehook) {
		/* The peers' way: report first, change afterwards, unseen. */
		if (mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, a, a + pg))
			abort();
		mmn_process_event_end(&ev);
		spin(500);
		p = (void *)syscall(SYS_mmap, a, pg, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_FIXED, memfd, off);
	} else {
		if (unmap_first && munmap((void *)a, pg))
			abort();
		p = mmap((void *)a, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, off);
	}
	if (p != (void *)a)
		abort();
}

static void remapper(uint64_t seed, uint64_t seconds_ns)
{
	uint64_t deadline = test_now_ns() + seconds_ns;
	struct test_rng rng;

	test_rng_seed(&rng, seed);
	while (test_now_ns() < deadline) {
		int r = (int)test_rng_below(&rng, RANGES);
		uint64_t g = __atomic_load_n(&gens[r], __ATOMIC_RELAXED) + 1;
		bool unmap_first = test_rng_below(&rng, 2);
		uint64_t stale_gen;
		bool stale;

		/* The new page is stamped before it is mapped. */
		staging[((unsigned long)r * SLOTS + g % SLOTS) * pg / sizeof(uint64_t)] = g;
		remap(r, g, unmap_first);
		n.remaps++;
		n.unmap_first += unmap_first;
		pthread_mutex_lock(&cache_lock);
		stale = cache[r].valid && cache[r].gen != g;
		stale_gen = cache[r].gen;
		pthread_mutex_unlock(&cache_lock);
		if (stale) {
			if (!n.violations)
				fprintf(stderr, "  range %d: registration of generation %" PRIu64
					" survived the remap to %" PRIu64 "\n",
					r, stale_gen, g);
			n.violations++;
		}
		__atomic_store_n(&gens[r], g, __ATOMIC_RELEASE);
		spin((unsigned int)test_rng_below(&rng, 3000));
	}
}

static void setup(void)
{
	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	assert_eq(pipe2(probe_pipe, O_CLOEXEC), 0);
	memfd = memfd_create("process_race", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_eq(ftruncate(memfd, (off_t)(RANGES * SLOTS * pg)), 0);
	staging = mmap(NULL, RANGES * SLOTS * pg, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(staging != MAP_FAILED);
	area = (unsigned long)mmap(NULL, 2 * RANGES * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
				   -1, 0);
	assert_true(area != (unsigned long)MAP_FAILED);
	for (int r = 0; r < RANGES; r++) {
		gens[r] = 1;
		staging[((unsigned long)r * SLOTS + 1) * pg / sizeof(uint64_t)] = 1;
		remap(r, 1, false);
	}
}

int main(int argc, char **argv)
{
	const char *ci = getenv("CI");
	uint64_t seconds = ci && strcmp(ci, "true") == 0 ? 1 : 3, seed = 0, reg_seed;
	struct mmn_stats st;
	struct mmn_mm *mm;
	bool seeded = false;
	pthread_t t;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--broken-prehook") == 0) {
			broken_prehook = true;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = strtoull(argv[++i], NULL, 0);
		} else {
			seed = strtoull(argv[i], NULL, 0);
			seeded = true;
		}
	}
	{
		char seed_arg[32], *args[] = { argv[0], seed_arg, NULL };

		snprintf(seed_arg, sizeof(seed_arg), "%" PRIu64, seed);
		test_seed_from_args(seeded ? 2 : 1, args);
		seed = test_seed;
	}
	if (broken_prehook)
		setenv("MMN_BACKSTOP", "0", 1);	/* the raw calls must stay unseen */
	assert_eq(mmn_process_mm(&mm), 0);
	setup();

	reg_seed = seed ^ 0x5deece66dull;
	assert_eq(pthread_create(&t, NULL, registrar, &reg_seed), 0);
	remapper(seed, seconds * 1000000000ull);
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);

	/* Whatever is still registered is of the current generation. */
	for (int r = 0; r < RANGES; r++) {
		if (cache[r].valid)
			expect_eq(cache[r].gen, gens[r]);
		if (cache[r].inserted)
			expect_eq(mmn_interval_notifier_remove(&cache[r].sub), 0);
	}
	printf("%s%" PRIu64 " s: %" PRIu64 " remaps (%" PRIu64 " munmap first), %" PRIu64
	       " registrations, %" PRIu64 " retries, %" PRIu64 " pins of unmapped pages, %"
	       PRIu64 " invalidations, %" PRIu64 " removes, %" PRIu64 " violations\n",
	       broken_prehook ? "broken pre-hook demo, " : "", seconds, n.remaps, n.unmap_first,
	       n.commits, n.retries, n.pin_faults, n.invalidations, n.removes, n.violations);
	if (broken_prehook) {
		/* The demonstration passes when the oracle catches the peers' race. */
		printf("%s\n", n.violations ? "the oracle caught the pre-hook race"
					    : "no violation seen: run longer");
		return n.violations ? 0 : 1;
	}
	expect_eq(n.violations, 0);
	expect_gt(n.remaps, 100);
	expect_gt(n.commits, 100);
	expect_gt(n.invalidations, 0);
	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq(st.notifiers, 0);
	return test_report();
}
