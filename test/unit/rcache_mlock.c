// SPDX-License-Identifier: MIT
/*
 * The mlock device under the cache: pins follow registrations (overlapping
 * registrations keep shared pages locked until the last one goes), and an
 * unmapping call finds the pages unlocked before it runs. That is visible:
 * madvise(MADV_DONTNEED) fails with EINVAL on locked pages, yet succeeds on a
 * registered range, because the cache deregistered (unlocked) it first.
 *
 * Skips (exit 77) if mlock is refused (RLIMIT_MEMLOCK).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/process.h>
#include <mmn/rcache.h>

static unsigned long page;
static struct mmn_rcache *cache;
static struct mmn_rcache_mlock *ml;

/* Locked memory of the process, in bytes (VmLck). */
static long locked(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* Does mlock() lock? (Sanitizers may intercept it and do nothing.) */
static bool mlock_works(void)
{
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long before = locked();
	bool works;

	if (p == MAP_FAILED || before < 0)
		return false;
	works = mlock(p, page) == 0 && locked() > before;
	munlock(p, page);
	munmap(p, page);
	return works;
}

static struct mmn_rcache_reg *get(void *p, unsigned long len)
{
	struct mmn_rcache_reg *r;
	int err = mmn_rcache_get(cache, (unsigned long)p, len, &r);

	if (err == -ENOMEM || err == -EPERM || err == -EAGAIN) {
		printf("SKIP: mlock refused (%s); raise RLIMIT_MEMLOCK\n", strerror(-err));
		exit(TEST_SKIP);
	}
	assert_eq(err, 0);
	return r;
}

TEST(overlapping_pins)
{
	unsigned char *p = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long base = locked();
	struct mmn_rcache_reg *a, *b;

	assert_true(p != MAP_FAILED);
	a = get(p, 8 * page);
	expect_eq(locked() - base, (long)(8 * page));
	b = get(p + 4 * page, 8 * page);
	expect_eq(locked() - base, (long)(12 * page));
	expect_eq(mmn_rcache_mlock_live(ml), 2);
	/* Drop a: pages 4..7 stay locked for b. */
	mmn_rcache_put(a);
	expect_eq(mmn_rcache_flush(cache), 1);
	expect_eq(locked() - base, (long)(8 * page));
	mmn_rcache_put(b);
	expect_eq(mmn_rcache_flush(cache), 1);
	expect_eq(locked() - base, 0);
	expect_eq(mmn_rcache_mlock_live(ml), 0);
	munmap(p, 16 * page);
}

TEST(unlocked_before_the_call)
{
	unsigned char *p = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long base = locked();
	struct mmn_rcache_reg *r;

	assert_true(p != MAP_FAILED);
	/* Control: DONTNEED on locked pages is refused. */
	if (mlock(p, 16 * page) == 0) {
		expect_eq(madvise(p, 16 * page, MADV_DONTNEED), -1);
		expect_eq(errno, EINVAL);
		munlock(p, 16 * page);
	}
	memset(p, 0xab, 16 * page);
	r = get(p, 16 * page);
	expect_eq(locked() - base, (long)(16 * page));
	/* Registered: the cache unlocks before the call, so it works. */
	expect_eq(madvise(p, 16 * page, MADV_DONTNEED), 0);
	expect_eq(p[0], 0);	/* the pages really went */
	expect_false(mmn_rcache_reg_valid(r));
	expect_eq(locked() - base, 0);
	expect_eq(mmn_rcache_mlock_live(ml), 0);
	mmn_rcache_put(r);
	/* A new registration locks the new pages. */
	r = get(p, 16 * page);
	expect_eq(locked() - base, (long)(16 * page));
	mmn_rcache_put(r);
	expect_eq(munmap(p, 16 * page), 0);
	expect_eq(mmn_rcache_mlock_live(ml), 0);
	expect_eq(locked() - base, 0);
}

int main(void)
{
	struct mmn_rcache_dev dev;
	struct mmn_rcache_config cfg = { .mm = NULL, .devs = &dev, .nr_devs = 1 };
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;

	page = (unsigned long)sysconf(_SC_PAGESIZE);
	if (!mlock_works())
		test_skip("mlock() has no effect here (the sanitizers intercept it as a no-op)");
	assert_eq(mmn_process_mm(&mm), 0);
	mmn_process_coverage(&cov);
	if (!cov.method[MMN_CALL_MADVISE] || !cov.method[MMN_CALL_MUNMAP])
		test_skip("munmap/madvise are not hooked here");
	if (locked() < 0)
		test_skip("no VmLck in /proc/self/status");
	assert_eq(mmn_rcache_mlock_new(&ml), 0);
	mmn_rcache_mlock_dev(ml, &dev);
	assert_eq(mmn_rcache_new(&cfg, &cache), 0);
	RUN(overlapping_pins);
	RUN(unlocked_before_the_call);
	expect_eq(mmn_rcache_destroy(cache), 0);
	mmn_rcache_mlock_destroy(ml);
	return test_report();
}
