// SPDX-License-Identifier: MIT
/*
 * The stale-registration race: threads get (and put) registrations of random
 * pieces of a window while another thread keeps replacing the window's memory
 * -- munmap + a new mapping moved in, or the new mapping moved right over it
 * (mremap MREMAP_FIXED: an unmap of the old pages, in one call) -- through
 * the process event sources.
 *
 * Each new mapping is stamped with a generation *before* it is moved into
 * place, and the generation is published after the call returned. A getter
 * reads the published generation g, then gets a registration: the fake
 * device's snapshot of the pages it registered must be at least g. A smaller
 * one is a stale registration: made of pages that an unmapping call, complete
 * before the get began, had replaced. The collision-retry protocol and the
 * invalidation before the system call must make that impossible.
 *
 * Also checked: everything is deregistered at the end. Run twice: on the
 * process domain (the libc hooks report the changes), and on a private domain
 * where the remapping thread brackets the same real system calls with
 * mmn_invalidate_range_start/_end itself. Seeded (argv[1]); a few seconds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/process.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#define WINDOW_PAGES 16
#define GETTERS 2
#define REMAPS 6000
#define TIME_LIMIT_NS (5ull * 1000000000u)

static unsigned long page, window;
static struct mmn_mm *private_mm;	/* NULL: the process domain, hooks report */
static struct mmn_rcache *cache;
static struct mmn_rcache_fake *fake[2];
static atomic_ulong published = 1;	/* generation fully in place */
static atomic_bool stop;
static atomic_ulong stale, gets, faults, seen_invalid;

static void *getter(void *arg)
{
	struct test_rng rng;

	test_rng_seed(&rng, test_seed ^ (uint64_t)(uintptr_t)arg);
	while (!atomic_load(&stop)) {
		unsigned long first = test_rng_below(&rng, WINDOW_PAGES);
		unsigned long n = 1 + test_rng_below(&rng, WINDOW_PAGES - first);
		unsigned long g = atomic_load(&published);
		struct mmn_rcache_reg *r;
		int err;

		err = mmn_rcache_get(cache, window + first * page + test_rng_below(&rng, 64),
				     n * page - 128, &r);
		if (err) {
			/* Between the unmap and the new mapping nothing is there. */
			if (err != -EFAULT) {
				fprintf(stderr, "mmn_rcache_get: unexpected %d\n", err);
				abort();
			}
			atomic_fetch_add(&faults, 1);
			continue;
		}
		atomic_fetch_add(&gets, 1);
		for (int d = 0; d < 2; d++) {
			struct mmn_rcache_fake_reg *fr = mmn_rcache_reg_priv(r, (unsigned int)d);

			/*
			 * Old pages carry a generation >= 1. A 0 is someone
			 * else's mapping that landed in the hole between a
			 * munmap and the remap (the TSan runtime maps memory
			 * too): registering it is legitimate, not stale.
			 */
			if ((fr->first && fr->first < g) || (fr->last && fr->last < g)) {
				atomic_fetch_add(&stale, 1);
				fprintf(stderr, "stale: reg %#lx+%#lx saw gen %lu/%lu, %lu in place\n",
					fr->start, fr->length, (unsigned long)fr->first,
					(unsigned long)fr->last, g);
			}
		}
		if (!mmn_rcache_reg_valid(r))
			atomic_fetch_add(&seen_invalid, 1);
		mmn_rcache_put(r);
	}
	return NULL;
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "rcache_race: %s failed: %s\n", what, strerror(errno));
	abort();
}

/* New pages, stamped with @gen on every page, mapped somewhere else. */
static void *prepare(unsigned long gen)
{
	unsigned char *p = mmap(NULL, WINDOW_PAGES * page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	for (unsigned long i = 0; i < WINDOW_PAGES; i++)
		*(uint64_t *)(p + i * page) = gen;
	return p;
}

/* Without hooks, say what the kernel is about to do, as the hooks would. */
static bool notify_start(struct mmn_range *range)
{
	if (!private_mm)
		return false;
	mmn_range_init(range, MMN_EVENT_UNMAP, 0, private_mm, window, window + WINDOW_PAGES * page);
	if (mmn_invalidate_range_start(range))
		die("mmn_invalidate_range_start");
	return true;
}

static void replace(unsigned long gen, bool munmap_first)
{
	void *fresh = prepare(gen), *q;
	struct mmn_range range;
	bool open;

	if (munmap_first) {
		open = notify_start(&range);
		if (munmap((void *)window, WINDOW_PAGES * page))
			die("munmap");
		if (open)
			mmn_invalidate_range_end(&range);
	}
	open = notify_start(&range);
	q = mremap(fresh, WINDOW_PAGES * page, WINDOW_PAGES * page,
		   MREMAP_MAYMOVE | MREMAP_FIXED, (void *)window);
	if (open)
		mmn_invalidate_range_end(&range);
	if (q != (void *)window)
		die("mremap");
	atomic_store(&published, gen);
}

/*
 * Unmapping first leaves a hole until the remap fills it, and any other
 * mapper in the process may land there meanwhile: the remap then silently
 * replaces that mapping, and when its owner unmaps it later, it unmaps our
 * window. ThreadSanitizer's runtime maps memory while the test runs, so under
 * TSan the window is only ever replaced atomically (mremap onto it).
 */
static bool munmap_hole_is_safe(void)
{
#if defined(__SANITIZE_THREAD__)
	return false;
#else
	return true;
#endif
}

static void register_while_remapping(void)
{
	struct mmn_rcache_fake_stats fs;
	struct mmn_rcache_stats st;
	struct test_rng rng;
	pthread_t t[GETTERS];
	uint64_t deadline = test_now_ns() + TIME_LIMIT_NS;
	unsigned long gen = 1;
	int i;

	test_rng_seed(&rng, test_seed);
	atomic_store(&stop, false);
	atomic_store(&stale, 0);
	atomic_store(&gets, 0);
	atomic_store(&faults, 0);
	atomic_store(&seen_invalid, 0);
	for (i = 0; i < GETTERS; i++)
		pthread_create(&t[i], NULL, getter, (void *)(uintptr_t)(i + 1));
	for (i = 0; i < REMAPS && test_now_ns() < deadline; i++)
		replace(++gen, munmap_hole_is_safe() && test_rng_below(&rng, 2));
	atomic_store(&stop, true);
	for (int k = 0; k < GETTERS; k++)
		pthread_join(t[k], NULL);

	mmn_rcache_get_stats(cache, &st);
	printf("  %d remaps, %lu gets (%lu hits, %lu misses, %lu retries, %lu invalidations),\n"
	       "  %lu got -EFAULT, %lu were invalidated before their put, %lu stale\n",
	       i, atomic_load(&gets), (unsigned long)st.hits, (unsigned long)st.misses,
	       (unsigned long)st.retries, (unsigned long)st.invalidations, atomic_load(&faults),
	       atomic_load(&seen_invalid), atomic_load(&stale));
	expect_eq(atomic_load(&stale), 0);
	expect_gt(st.invalidations, 0);
	expect_gt(atomic_load(&gets), 0);

	/* Replace once more with nobody looking: nothing stays registered. */
	replace(++gen, false);
	mmn_rcache_flush(cache);
	for (int d = 0; d < 2; d++) {
		mmn_rcache_fake_get_stats(fake[d], &fs);
		expect_eq(fs.live, 0);
	}
	mmn_rcache_get_stats(cache, &st);
	expect_eq(st.regions, 0);
	expect_eq(st.dead, 0);
}

static void setup(struct mmn_mm *mm)
{
	struct mmn_rcache_fake_config fc = { .snapshot = true };
	struct mmn_rcache_config cfg = { .mm = mm, .nr_devs = 2, .max_regions = 6 };
	static struct mmn_rcache_dev dev[2];

	private_mm = mm;
	for (int i = 0; i < 2; i++) {
		assert_eq(mmn_rcache_fake_new(&fc, &fake[i]), 0);
		mmn_rcache_fake_dev(fake[i], &dev[i]);
	}
	cfg.devs = dev;
	assert_eq(mmn_rcache_new(&cfg, &cache), 0);
	window = (unsigned long)prepare(1);
	atomic_store(&published, 1);
}

static void teardown(void)
{
	expect_eq(mmn_rcache_destroy(cache), 0);
	for (int i = 0; i < 2; i++)
		mmn_rcache_fake_destroy(fake[i]);
	munmap((void *)window, WINDOW_PAGES * page);
}

/* A private domain; the remapper reports its own changes. */
TEST(private_domain)
{
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	setup(mm);
	register_while_remapping();
	teardown();
	expect_eq(mmn_mm_destroy(mm), 0);
}

/* The process domain: libmmn's hooks report munmap and mremap. */
TEST(process_domain)
{
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;

	assert_eq(mmn_process_mm(&mm), 0);
	mmn_process_coverage(&cov);
	if (!cov.method[MMN_CALL_MUNMAP] || !cov.method[MMN_CALL_MREMAP]) {
		printf("  (skipped: munmap/mremap are not hooked here)\n");
		return;
	}
	setup(NULL);
	register_while_remapping();
	teardown();
}

int main(int argc, char **argv)
{
	test_seed_from_args(argc, argv);
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	RUN(private_domain);
	RUN(process_domain);
	return test_report();
}
