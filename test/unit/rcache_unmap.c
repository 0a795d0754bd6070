// SPDX-License-Identifier: MIT
/*
 * Invalidation of registrations through every unmap path of the process event
 * sources: munmap (whole, partial, of a held registration), mremap, madvise
 * DONTNEED and FREE, mmap(MAP_FIXED) over the range, shmdt, shmat(SHM_REMAP),
 * explicit sbrk shrink, free() of heap memory that makes glibc trim the heap
 * (its internal brk), free() of an mmap-ed chunk, a raw munmap system call
 * (the userfaultfd backstop, after the fact) -- and mprotect, which leaves
 * registrations alone.
 *
 * For each: a fake device with snapshots registers the memory; the call must
 * have deregistered it on every device *before it returned*; new memory is
 * then mapped at the same address with a new stamp, and a get must return a
 * registration that sees the new stamp (never a stale hit).
 */
#include <errno.h>
#include <malloc.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/process.h>
#include <mmn/rcache.h>
#include "rcache_fake.h"

#define MB (1024UL * 1024)

static unsigned long page;
static struct mmn_rcache *cache;
static struct mmn_rcache_fake *fake[2];
static struct mmn_process_coverage cov;

static void stamp(void *p, unsigned long len, uint64_t gen)
{
	for (unsigned long off = 0; off < len; off += page)
		*(volatile uint64_t *)((char *)p + off) = gen;
}

static uint64_t live(void)
{
	struct mmn_rcache_fake_stats a, b;

	mmn_rcache_fake_get_stats(fake[0], &a);
	mmn_rcache_fake_get_stats(fake[1], &b);
	return a.live + b.live;
}

static struct mmn_rcache_stats stats(void)
{
	struct mmn_rcache_stats st;

	mmn_rcache_get_stats(cache, &st);
	return st;
}

/* Register [p, p+len) (held), checking that the devices saw @gen. */
static struct mmn_rcache_reg *reg_gen(void *p, unsigned long len, uint64_t gen)
{
	struct mmn_rcache_reg *r = NULL;
	int err = mmn_rcache_get(cache, (unsigned long)p, len, &r);

	expect_eq(err, 0);
	if (err)
		return NULL;
	for (int i = 0; i < 2; i++) {
		struct mmn_rcache_fake_reg *fr = mmn_rcache_reg_priv(r, i);

		expect_eq(fr->first, gen);	/* a stale registration shows an old stamp */
		expect_eq(fr->last, gen);
	}
	return r;
}

/* A fresh registration of [p, p+len) must see the memory now mapped there. */
static void expect_fresh(void *p, unsigned long len, uint64_t gen)
{
	struct mmn_rcache_reg *r = reg_gen(p, len, gen);

	if (r)
		mmn_rcache_put(r);
}

static void *map_at(void *want, unsigned long len)
{
	void *p = mmap(want, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (want ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	assert_true(p != MAP_FAILED);
	if (want)
		assert_eq_ptr(p, want);
	return p;
}

static bool hooked(enum mmn_process_call call)
{
	if (cov.method[call] != MMN_HOOK_NONE)
		return true;
	printf("  (skipped: %s is not hooked here: %d)\n", mmn_process_call_name(call),
	       cov.error[call]);
	return false;
}

/* Register, run @what, check it deregistered everything before returning. */
#define EXPECT_DEREG_IN_CALL(what)                                              \
	do {                                                                    \
		uint64_t inv_ = stats().invalidations;                          \
		what;                                                           \
		expect_eq(live(), 0);                                           \
		expect_gt(stats().invalidations, inv_);                         \
	} while (0)

TEST(munmap_whole)
{
	void *p = map_at(NULL, MB);

	stamp(p, MB, 1);
	mmn_rcache_put(reg_gen(p, MB, 1));
	EXPECT_DEREG_IN_CALL(assert_eq(munmap(p, MB), 0));
	map_at(p, MB);
	stamp(p, MB, 2);
	expect_fresh(p, MB, 2);
	munmap(p, MB);
}

TEST(munmap_held)
{
	struct mmn_rcache_fake_reg *fr;
	struct mmn_rcache_reg *r;
	void *p = map_at(NULL, MB);

	stamp(p, MB, 3);
	r = reg_gen(p, MB, 3);
	assert_true(r != NULL);
	fr = mmn_rcache_reg_priv(r, 1);
	EXPECT_DEREG_IN_CALL(assert_eq(munmap(p, MB), 0));
	/* Held across the unmap: invalid, deregistered, still ours until put. */
	expect_false(mmn_rcache_reg_valid(r));
	expect_eq(fr->state, MMN_RCACHE_FAKE_DEREGISTERED);
	map_at(p, MB);
	stamp(p, MB, 4);
	expect_fresh(p, MB, 4);
	mmn_rcache_put(r);
	munmap(p, MB);
}

TEST(munmap_partial)
{
	unsigned char *p = map_at(NULL, MB);
	uint64_t misses;

	stamp(p, MB, 5);
	mmn_rcache_put(reg_gen(p, MB, 5));
	EXPECT_DEREG_IN_CALL(assert_eq(munmap(p + MB / 2, page), 0));
	map_at(p + MB / 2, page);
	stamp(p, MB, 6);
	misses = stats().misses;
	expect_fresh(p, MB, 6);
	expect_eq(stats().misses, misses + 1);
	munmap(p, MB);
}

TEST(mremap_move)
{
	unsigned char *p = map_at(NULL, 2 * MB), *q;

	if (!hooked(MMN_CALL_MREMAP))
		return;
	/* The second MB stays mapped, so growing must move. */
	stamp(p, MB, 7);
	mmn_rcache_put(reg_gen(p, MB, 7));
	EXPECT_DEREG_IN_CALL(q = mremap(p, MB, 4 * MB, MREMAP_MAYMOVE));
	assert_true(q != MAP_FAILED);
	expect_ne_ptr(q, p);
	map_at(p, MB);
	stamp(p, MB, 8);
	expect_fresh(p, MB, 8);
	/* The moved memory is the old content, registered afresh. */
	expect_fresh(q, MB, 7);
	munmap(q, 4 * MB);
	munmap(p, 2 * MB);
}

static void madvise_case(int advice, uint64_t gen)
{
	void *p = map_at(NULL, MB);

	stamp(p, MB, gen);
	mmn_rcache_put(reg_gen(p, MB, gen));
	EXPECT_DEREG_IN_CALL(assert_eq(madvise(p, MB, advice), 0));
	stamp(p, MB, gen + 1);
	expect_fresh(p, MB, gen + 1);
	munmap(p, MB);
}

TEST(madvise_dontneed)
{
	if (hooked(MMN_CALL_MADVISE))
		madvise_case(MADV_DONTNEED, 10);
}

TEST(madvise_free)
{
	if (hooked(MMN_CALL_MADVISE))
		madvise_case(MADV_FREE, 12);
}

TEST(mmap_fixed_over)
{
	void *p = map_at(NULL, MB), *q;

	if (!hooked(MMN_CALL_MMAP))
		return;
	stamp(p, MB, 14);
	mmn_rcache_put(reg_gen(p, MB, 14));
	EXPECT_DEREG_IN_CALL(q = mmap(p, MB, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	assert_eq_ptr(q, p);
	stamp(p, MB, 15);
	expect_fresh(p, MB, 15);
	munmap(p, MB);
}

TEST(shmdt_segment)
{
	int id;
	void *p;

	if (!hooked(MMN_CALL_SHMDT))
		return;
	id = shmget(IPC_PRIVATE, MB, IPC_CREAT | 0600);
	if (id < 0) {
		printf("  (skipped: shmget: %s)\n", strerror(errno));
		return;
	}
	p = shmat(id, NULL, 0);
	shmctl(id, IPC_RMID, NULL);
	assert_true(p != (void *)-1);
	stamp(p, MB, 16);
	mmn_rcache_put(reg_gen(p, MB, 16));
	EXPECT_DEREG_IN_CALL(assert_eq(shmdt(p), 0));
	map_at(p, MB);
	stamp(p, MB, 17);
	expect_fresh(p, MB, 17);
	munmap(p, MB);
}

TEST(shmat_remap)
{
	void *p = map_at(NULL, MB), *q;
	int id;

	if (!hooked(MMN_CALL_SHMAT))
		return;
	id = shmget(IPC_PRIVATE, MB, IPC_CREAT | 0600);
	if (id < 0) {
		printf("  (skipped: shmget: %s)\n", strerror(errno));
		return;
	}
	stamp(p, MB, 18);
	mmn_rcache_put(reg_gen(p, MB, 18));
	EXPECT_DEREG_IN_CALL(q = shmat(id, p, SHM_REMAP));
	shmctl(id, IPC_RMID, NULL);
	assert_eq_ptr(q, p);
	stamp(p, MB, 19);
	expect_fresh(p, MB, 19);
	shmdt(p);
}

TEST(sbrk_shrink)
{
	const unsigned long len = 64 * 1024;
	unsigned long top;
	char *cur;

	if (!hooked(MMN_CALL_BRK))
		return;
	cur = sbrk(0);
	top = ((unsigned long)cur + page - 1) & ~(page - 1);
	assert_true(sbrk((intptr_t)(top - (unsigned long)cur + len)) != (void *)-1);
	stamp((void *)top, len, 20);
	mmn_rcache_put(reg_gen((void *)top, len, 20));
	EXPECT_DEREG_IN_CALL(assert_true(sbrk(-(intptr_t)len) != (void *)-1));
	/* Grow again: fresh zero pages at the same address. */
	assert_true(sbrk((intptr_t)len) != (void *)-1);
	stamp((void *)top, len, 21);
	expect_fresh((void *)top, len, 21);
	sbrk(-(intptr_t)(top - (unsigned long)cur + len));
}

/* The sanitizers replace malloc: their free() never reaches glibc's. */
static bool glibc_malloc(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	printf("  (skipped: under a sanitizer free() does not reach glibc)\n");
	return false;
#else
	return true;
#endif
}

TEST(free_trims_heap)
{
	uint64_t brk_events = cov.events[MMN_CALL_BRK];
	unsigned long start;
	char *p;

	if (!hooked(MMN_CALL_BRK) || !glibc_malloc())
		return;
	/* Keep the block on the heap, and let free() trim 128 KiB or more. */
	mallopt(M_MMAP_THRESHOLD, 64 * MB);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
	p = malloc(4 * MB);
	assert_true(p != NULL);
	start = ((unsigned long)p + 2 * MB) & ~(page - 1);
	stamp((void *)start, MB, 22);
	mmn_rcache_put(reg_gen((void *)start, MB, 22));
	/* glibc gives the top of the heap back with its internal brk(). */
	EXPECT_DEREG_IN_CALL(free(p));
	mmn_process_coverage(&cov);
	expect_gt(cov.events[MMN_CALL_BRK], brk_events);
	p = malloc(4 * MB);
	assert_true(p != NULL);
	if ((unsigned long)p <= start && start + MB <= (unsigned long)p + 4 * MB) {
		stamp((void *)start, MB, 23);
		expect_fresh((void *)start, MB, 23);
	}
	free(p);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

TEST(free_mmap_chunk)
{
	unsigned long start;
	char *p;

	if (!glibc_malloc())
		return;
	p = malloc(64 * MB);
	assert_true(p != NULL);
	start = ((unsigned long)p + MB) & ~(page - 1);
	stamp((void *)start, MB, 24);
	mmn_rcache_put(reg_gen((void *)start, MB, 24));
	EXPECT_DEREG_IN_CALL(free(p));
}

TEST(mprotect_keeps)
{
	struct mmn_rcache_reg *r;
	void *p = map_at(NULL, MB);

	stamp(p, MB, 26);
	r = reg_gen(p, MB, 26);
	assert_true(r != NULL);
	assert_eq(mprotect(p, MB, PROT_READ), 0);
	expect_true(mmn_rcache_reg_valid(r));
	expect_eq(live(), 2);
	mmn_rcache_put(r);
	EXPECT_DEREG_IN_CALL(munmap(p, MB));
}

TEST(raw_syscall_backstop)
{
	void *p = map_at(NULL, MB);

	if (!cov.backstop) {
		printf("  (skipped: no userfaultfd backstop: %d)\n", cov.backstop_error);
		munmap(p, MB);
		return;
	}
	stamp(p, MB, 27);
	mmn_rcache_put(reg_gen(p, MB, 27));
	/* Unseen by the hooks: the backstop invalidates after the fact. */
	assert_eq(syscall(SYS_munmap, p, MB), 0);
	expect_true(wait_until(live() == 0, 10000));
	map_at(p, MB);
	stamp(p, MB, 28);
	expect_fresh(p, MB, 28);
	munmap(p, MB);
}

int main(void)
{
	struct mmn_rcache_fake_config fc = { .snapshot = true };
	struct mmn_rcache_config cfg = { .mm = NULL, .nr_devs = 2 };
	struct mmn_rcache_dev dev[2];
	struct mmn_rcache_reg *r;
	struct mmn_mm *mm;
	void *warm;

	page = (unsigned long)sysconf(_SC_PAGESIZE);
	assert_eq(mmn_process_mm(&mm), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
	if (cov.method[MMN_CALL_MUNMAP] == MMN_HOOK_NONE)
		test_skip("munmap is not hooked (libc entry patching failed)");
	for (int i = 0; i < 2; i++) {
		assert_eq(mmn_rcache_fake_new(&fc, &fake[i]), 0);
		mmn_rcache_fake_dev(fake[i], &dev[i]);
	}
	cfg.devs = dev;
	assert_eq(mmn_rcache_new(&cfg, &cache), 0);
	/* Warm up: the cache's first slab, so later gets do not grow the heap. */
	warm = map_at(NULL, page);
	assert_eq(mmn_rcache_get(cache, (unsigned long)warm, 8, &r), 0);
	mmn_rcache_put(r);
	munmap(warm, page);
	mmn_rcache_flush(cache);

	RUN(munmap_whole);
	RUN(munmap_held);
	RUN(munmap_partial);
	RUN(mremap_move);
	RUN(madvise_dontneed);
	RUN(madvise_free);
	RUN(mmap_fixed_over);
	RUN(shmdt_segment);
	RUN(shmat_remap);
	RUN(sbrk_shrink);
	RUN(free_trims_heap);
	RUN(free_mmap_chunk);
	RUN(mprotect_keeps);
	RUN(raw_syscall_backstop);

	mmn_rcache_flush(cache);
	expect_eq(stats().dead, 0);
	expect_eq(mmn_rcache_destroy(cache), 0);
	expect_eq(live(), 0);
	for (int i = 0; i < 2; i++)
		mmn_rcache_fake_destroy(fake[i]);
	return test_report();
}
