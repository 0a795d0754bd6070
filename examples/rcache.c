// SPDX-License-Identifier: MIT
/*
 * rcache: the registration cache as a communication runtime uses it, with the
 * mlock() backend standing in for a NIC's memory registration.
 *
 * A buffer is registered (a miss), looked up again (a hit), released, then
 * unmapped: the process event sources see the munmap() and the cache
 * deregisters (unlocks) the buffer *before* munmap() returns. Nothing in the
 * program tells the cache about the munmap.
 *
 * Build against the installed library:
 *   cc rcache.c $(pkg-config --cflags --libs mmn) -o rcache
 * Run it: ./rcache. It exits 0 when every step did what it says, 1 otherwise,
 * and 77 if mlock() is refused (raise RLIMIT_MEMLOCK: ulimit -l).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* MAP_ANONYMOUS */
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mmn.h>
#include <mmn/rcache.h>

#define PAGES 16

static int fail(const char *what, int err)
{
	fprintf(stderr, "rcache: %s: %s\n", what, err ? strerror(-err) : "unexpected result");
	return 1;
}

int main(void)
{
	unsigned long len = PAGES * (unsigned long)sysconf(_SC_PAGESIZE);
	struct mmn_rcache_stats st;
	struct mmn_rcache_config cfg;
	struct mmn_rcache_mlock *ml;
	struct mmn_rcache_reg *a, *b;
	struct mmn_rcache_dev dev;
	struct mmn_rcache *cache;
	char *buf;
	int err;

	err = mmn_rcache_mlock_new(&ml);
	if (err)
		return fail("mmn_rcache_mlock_new", err);
	mmn_rcache_mlock_dev(ml, &dev);
	/* mm NULL: the process domain, fed by the process event sources. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.devs = &dev;
	cfg.nr_devs = 1;
	err = mmn_rcache_new(&cfg, &cache);
	if (err)
		return fail("mmn_rcache_new", err);

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return fail("mmap", -errno);
	memset(buf, 'x', len);

	err = mmn_rcache_get(cache, (unsigned long)buf, len, &a);	/* miss: mlock */
	if (err == -ENOMEM || err == -EPERM || err == -EAGAIN) {
		fprintf(stderr, "rcache: mlock refused (%s); raise RLIMIT_MEMLOCK\n",
			strerror(-err));
		return 77;
	}
	if (err)
		return fail("mmn_rcache_get (miss)", err);
	err = mmn_rcache_get(cache, (unsigned long)buf + 100, 200, &b);	/* hit */
	if (err)
		return fail("mmn_rcache_get (hit)", err);
	if (a != b || mmn_rcache_reg_start(a) != (unsigned long)buf ||
	    mmn_rcache_reg_length(a) != len)
		return fail("the hit returns the cached registration", 0);
	mmn_rcache_put(b);
	mmn_rcache_put(a);
	if (mmn_rcache_mlock_live(ml) != 1)
		return fail("one registration stays cached", 0);

	/* The cache hears of this munmap() by itself and unlocks first. */
	if (munmap(buf, len))
		return fail("munmap", -errno);
	if (mmn_rcache_mlock_live(ml) != 0)
		return fail("munmap() deregistered the buffer", 0);

	err = mmn_rcache_get_stats(cache, &st);
	if (err)
		return fail("mmn_rcache_get_stats", err);
	printf("rcache: %llu miss, %llu hit, %llu invalidated by munmap, %lu cached\n",
	       (unsigned long long)st.misses, (unsigned long long)st.hits,
	       (unsigned long long)st.invalidations, st.regions);
	if (st.misses != 1 || st.hits != 1 || st.invalidations != 1 || st.regions != 0)
		return fail("the counters", 0);

	err = mmn_rcache_destroy(cache);
	if (err)
		return fail("mmn_rcache_destroy", err);
	mmn_rcache_mlock_destroy(ml);
	return 0;
}
