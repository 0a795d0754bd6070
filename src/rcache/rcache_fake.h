/* SPDX-License-Identifier: MIT */
/*
 * The registration cache's fake device: test-only, never installed.
 *
 * A device that only pretends to register: it counts, can take a configurable
 * time to deregister, snapshots memory contents, fails on demand and calls a
 * hook inside registration. Tests and benchmarks use it (library
 * mmn_rcache_fake, built from dev_fake.c); libmmn.so does not contain it.
 */
#ifndef MMN_RCACHE_FAKE_H
#define MMN_RCACHE_FAKE_H

#include <mmn/rcache.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Backend: fake device                                                      */
/* ------------------------------------------------------------------------ */

/**
 * struct mmn_rcache_fake_config - a device that only pretends
 * @latency_ns: how long a deregistration takes between its start and its
 *	finish (0: none)
 * @spin: wait for @latency_ns by spinning on the clock (precise) instead of
 *	sleeping
 * @snapshot: at registration, read the first 8 bytes of the range's first and
 *	last page (with process_vm_readv, so an unmapped range fails with
 *	-EFAULT): what a pinning device would see. Tests compare them with the
 *	memory to detect stale registrations.
 */
struct mmn_rcache_fake_config {
	uint64_t latency_ns;
	bool spin;
	bool snapshot;
};

/**
 * struct mmn_rcache_fake_reg - a fake device's private area of a registration
 * @start: registered range
 * @length: its length
 * @first: the first page's first 8 bytes at registration (with snapshot)
 * @last: the last page's first 8 bytes at registration (with snapshot)
 * @id: a number unique to this registration on this device
 * @state: MMN_RCACHE_FAKE_* (atomic)
 * @deadline_ns: when the started deregistration completes
 */
struct mmn_rcache_fake_reg {
	unsigned long start;
	unsigned long length;
	uint64_t first;
	uint64_t last;
	uint64_t id;
	unsigned int state;
	uint64_t deadline_ns;
};

enum {
	MMN_RCACHE_FAKE_FREE = 0,
	MMN_RCACHE_FAKE_REGISTERED,
	MMN_RCACHE_FAKE_DEREG_STARTED,
	MMN_RCACHE_FAKE_DEREGISTERED,
};

/**
 * struct mmn_rcache_fake_stats - what a fake device saw
 * @regs: registrations
 * @reg_failures: registrations refused (snapshot of unmapped memory, or
 *	fail_next)
 * @dereg_starts: deregistrations started
 * @dereg_finishes: deregistrations finished
 * @live: registrations now (registered and not finished deregistering)
 * @last_finish_ns: clock (CLOCK_MONOTONIC, ns) of the latest finish
 * @starts_before_finish: the most deregistrations started and not yet
 *	finished at any one time (above 1 only when deregistrations overlap,
 *	as two-pass invalidation makes them)
 */
struct mmn_rcache_fake_stats {
	uint64_t regs;
	uint64_t reg_failures;
	uint64_t dereg_starts;
	uint64_t dereg_finishes;
	uint64_t live;
	uint64_t last_finish_ns;
	uint64_t starts_before_finish;
};

struct mmn_rcache_fake;

/**
 * mmn_rcache_fake_new() - create a fake device
 * @cfg: its configuration (copied); NULL: no latency, no snapshot
 * @fakep: where to store it
 *
 * Return: 0; -EINVAL if @fakep is NULL; -ENOMEM.
 */
int mmn_rcache_fake_new(const struct mmn_rcache_fake_config *cfg,
			struct mmn_rcache_fake **fakep);

/** mmn_rcache_fake_destroy() - free a fake device (with no live registration) */
void mmn_rcache_fake_destroy(struct mmn_rcache_fake *fake);

/**
 * mmn_rcache_fake_dev() - describe a fake device for struct mmn_rcache_config
 * @fake: the device
 * @dev: filled in (name "fake", priv_size sizeof(struct mmn_rcache_fake_reg))
 */
void mmn_rcache_fake_dev(struct mmn_rcache_fake *fake, struct mmn_rcache_dev *dev);

/**
 * mmn_rcache_fake_fail_next() - make the next @n registrations fail
 * @fake: the device
 * @n: how many
 * @err: with this error (negative errno)
 */
void mmn_rcache_fake_fail_next(struct mmn_rcache_fake *fake, unsigned int n, int err);

/**
 * mmn_rcache_fake_set_reg_hook() - call @fn at the start of every registration
 * @fake: the device
 * @fn: called with @arg and the range, before the device registers it; NULL
 *	removes the hook
 * @arg: passed to @fn
 *
 * For tests that change mappings from inside a registration (UCX's "munmap
 * from inside mem_reg") or that pause a registration to widen a race.
 */
void mmn_rcache_fake_set_reg_hook(struct mmn_rcache_fake *fake,
				  void (*fn)(void *arg, unsigned long start,
					     unsigned long length),
				  void *arg);

/** mmn_rcache_fake_get_stats() - read a fake device's counters */
void mmn_rcache_fake_get_stats(struct mmn_rcache_fake *fake,
			       struct mmn_rcache_fake_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* MMN_RCACHE_FAKE_H */
