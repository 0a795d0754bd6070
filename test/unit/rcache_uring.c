// SPDX-License-Identifier: MIT
/*
 * The io_uring stale-pin scenario (TOOLING.md): a buffer registered as an
 * io_uring fixed buffer, then munmap() and mmap(MAP_FIXED) of new memory at
 * the same address. The kernel keeps the old pages pinned, so a READ_FIXED
 * through the old registration writes into pages nobody can see any more.
 *
 * First a control: a cache on a private domain (no event source) does return
 * the stale registration, and the read indeed misses the new mapping -- the
 * oracle can see the hazard. Then the cache on the process domain: the unmap
 * deregisters the slot before munmap returns (the kernel has let go of the
 * pages), the next get registers the new pages, and the read lands in them.
 * A registration held across the unmap reads nothing at all (-EFAULT): a
 * READ_FIXED through the cache never reaches the old pages.
 *
 * Skips (exit 77) where io_uring is unavailable or pinning is refused (memlock).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include <mmn.h>
#include <mmn/process.h>
#include <mmn/rcache.h>

#define BUF (64 * 1024UL)
#define DATA "fresh data, 32 bytes, from disk"

static int fd;

static struct mmn_rcache_uring_reg *slot_of(struct mmn_rcache_reg *r)
{
	return mmn_rcache_reg_priv(r, 0);
}

static unsigned char *map_at(void *want)
{
	unsigned char *p = mmap(want, BUF, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | (want ? MAP_FIXED : 0), -1, 0);

	assert_true(p != MAP_FAILED);
	memset(p, 0, BUF);
	return p;
}

static struct mmn_rcache *cache_new(struct mmn_mm *mm, struct mmn_rcache_uring *u)
{
	struct mmn_rcache_dev dev;
	struct mmn_rcache_config cfg = { .mm = mm, .devs = &dev, .nr_devs = 1 };
	struct mmn_rcache *c;

	mmn_rcache_uring_dev(u, &dev);
	assert_eq(mmn_rcache_new(&cfg, &c), 0);
	return c;
}

/* Register @p, or skip the whole test if the kernel will not pin it. */
static struct mmn_rcache_reg *get_or_skip(struct mmn_rcache *c, unsigned char *p)
{
	struct mmn_rcache_reg *r;
	int err = mmn_rcache_get(c, (unsigned long)p, BUF, &r);

	if (err == -ENOMEM || err == -EPERM) {
		printf("SKIP: io_uring cannot pin %lu KiB here (%s); raise RLIMIT_MEMLOCK\n",
		       BUF / 1024, strerror(-err));
		exit(TEST_SKIP);
	}
	assert_eq(err, 0);
	return r;
}

static long read_into(struct mmn_rcache_uring *u, struct mmn_rcache_reg *r, unsigned char *p)
{
	return mmn_rcache_uring_read_fixed(u, slot_of(r), fd, p, sizeof(DATA), 0);
}

TEST(control_without_events_is_stale)
{
	struct mmn_rcache_uring *u;
	struct mmn_rcache_reg *r, *s;
	struct mmn_rcache *c;
	struct mmn_mm *mm;
	unsigned char *p;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_rcache_uring_new(4, &u), 0);
	c = cache_new(mm, u);
	p = map_at(NULL);
	r = get_or_skip(c, p);
	mmn_rcache_put(r);
	/* Nothing tells this cache: the unmap is unseen. */
	munmap(p, BUF);
	expect_eq_ptr(map_at(p), p);
	assert_eq(mmn_rcache_get(c, (unsigned long)p, BUF, &s), 0);
	expect_eq_ptr(s, r);	/* the stale hit */
	expect_eq(read_into(u, s, p), sizeof(DATA));
	/* The data went into the old pages: the new mapping still reads zeros. */
	expect_ne(memcmp(p, DATA, sizeof(DATA)), 0);
	expect_eq(p[0], 0);
	mmn_rcache_put(s);
	expect_eq(mmn_rcache_destroy(c), 0);
	expect_eq(mmn_rcache_uring_live(u), 0);
	mmn_rcache_uring_destroy(u);
	expect_eq(mmn_mm_destroy(mm), 0);
	munmap(p, BUF);
}

static void stale_pin_case(bool use_munmap)
{
	struct mmn_rcache_uring *u;
	struct mmn_rcache_reg *r, *s, *held;
	struct mmn_rcache *c;
	unsigned int old_slot;
	unsigned char *p;

	assert_eq(mmn_rcache_uring_new(4, &u), 0);
	c = cache_new(NULL, u);
	p = map_at(NULL);
	r = get_or_skip(c, p);
	/* A sanity read: into the mapping while it is the registered one. */
	expect_eq(read_into(u, r, p), sizeof(DATA));
	expect_eq(memcmp(p, DATA, sizeof(DATA)), 0);
	memset(p, 0, BUF);
	old_slot = slot_of(r)->slot;
	held = r;	/* keep it across the unmap */

	if (use_munmap) {
		assert_eq(munmap(p, BUF), 0);
		/* Before munmap returned, the kernel released the pinned pages. */
		expect_eq(mmn_rcache_uring_live(u), 0);
		expect_eq_ptr(map_at(p), p);
	} else {
		/* mmap(MAP_FIXED) right over the registered mapping. */
		expect_eq_ptr(map_at(p), p);
		expect_eq(mmn_rcache_uring_live(u), 0);
	}
	expect_false(mmn_rcache_reg_valid(held));
	/* The old registration cannot reach the old pages any more. */
	expect_eq(read_into(u, held, p), -EFAULT);

	/* Through the cache: a miss, a new pin of the new pages. */
	s = get_or_skip(c, p);
	expect_ne_ptr(s, held);
	expect_eq(mmn_rcache_uring_live(u), 1);
	expect_eq(read_into(u, s, p), sizeof(DATA));
	expect_eq(memcmp(p, DATA, sizeof(DATA)), 0);
	(void)old_slot;
	mmn_rcache_put(s);
	mmn_rcache_put(held);
	munmap(p, BUF);
	expect_eq(mmn_rcache_uring_live(u), 0);
	expect_eq(mmn_rcache_destroy(c), 0);
	mmn_rcache_uring_destroy(u);
}

TEST(munmap_then_map_fixed)
{
	stale_pin_case(true);
}

TEST(map_fixed_over)
{
	stale_pin_case(false);
}

/* Many rounds through 4 slots: slots come back once the kernel releases them. */
TEST(slot_reuse)
{
	struct mmn_rcache_uring *u;
	struct mmn_rcache_reg *r;
	struct mmn_rcache *c;
	unsigned char *p = map_at(NULL);

	assert_eq(mmn_rcache_uring_new(4, &u), 0);
	c = cache_new(NULL, u);
	for (int i = 0; i < 200; i++) {
		r = get_or_skip(c, p);
		expect_eq(read_into(u, r, p), sizeof(DATA));
		expect_eq(memcmp(p, DATA, sizeof(DATA)), 0);
		mmn_rcache_put(r);
		p = map_at(p);	/* MAP_FIXED: invalidates, zeroes */
		expect_eq(mmn_rcache_uring_live(u), 0);
	}
	munmap(p, BUF);
	expect_eq(mmn_rcache_destroy(c), 0);
	mmn_rcache_uring_destroy(u);
}

int main(void)
{
	char path[] = "/tmp/mmn-rcache-uring-XXXXXX";
	struct mmn_rcache_uring *u;
	struct mmn_mm *mm;
	int err;

	err = mmn_rcache_uring_new(4, &u);
	if (err) {
		printf("SKIP: io_uring device unavailable: %s\n", strerror(-err));
		return TEST_SKIP;
	}
	mmn_rcache_uring_destroy(u);
	assert_eq(mmn_process_mm(&mm), 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_eq(write(fd, DATA, sizeof(DATA)), (long)sizeof(DATA));

	RUN(control_without_events_is_stale);
	RUN(munmap_then_map_fixed);
	RUN(map_fixed_over);
	RUN(slot_reuse);
	close(fd);
	return test_report();
}
