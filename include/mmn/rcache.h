/* SPDX-License-Identifier: MIT */
/*
 * libmmn registration cache: what communication runtimes (UCX, libfabric, MPI)
 * keep in front of their memory registrations, built on interval notifiers.
 *
 * mmn_rcache_get(addr, len) returns a registration that covers the range on
 * every device of the cache: a hit on a cached one, or a miss that registers
 * under the collision-retry protocol, so a registration made while an
 * overlapping unmap is in flight is never returned. mmn_rcache_put() releases
 * it; unused registrations stay cached until a limit evicts them (least
 * recently used first) or the memory behind them changes.
 *
 * Each registration has its own interval notifier with two-pass ops. When the
 * memory changes (munmap, mremap, madvise(DONTNEED), brk shrink, shmdt,
 * mmap(MAP_FIXED) ... through the process event sources), the first pass
 * *starts* the deregistration on every device and the second pass waits for
 * it: when the unmapping call returns, no device holds the old pages, and N
 * devices cost about one device's latency. UCX and libfabric, by contrast,
 * defer deregistration to the next cache miss (docs/rcache.md).
 *
 * Devices plug in with three operations of the same two-pass shape:
 * register; start deregistration; finish deregistration. Two backends come
 * with the library: mlock() pinning and io_uring fixed buffers (real pinning
 * by the kernel). A communication runtime plugs in its own (ibv_reg_mr(),
 * fi_mr_reg(), a GPU driver's pinning call) with struct mmn_rcache_dev_ops.
 *
 * Every function is thread-safe unless its Context says otherwise; errors are
 * 0 or -errno.
 */
#ifndef MMN_RCACHE_H
#define MMN_RCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mmn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Devices                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * struct mmn_rcache_dev_ops - what a device does for the cache
 *
 * @reg: register [start, start+length) on the device and fill @priv (the
 *	registration's private area of this device, zeroed, priv_size bytes).
 *	Called without any cache lock, between mmn_interval_read_begin() and
 *	mmn_interval_read_retry(): it may block and allocate, but must not
 *	change the mapping of the range. Return 0, or -errno with nothing left
 *	registered.
 * @dereg_start: first pass of a deregistration: start it (post the
 *	unregistration, the TLB flush, the fence). Called from notifier
 *	callbacks, so from inside munmap() and free(): it must not allocate,
 *	must not change mappings and must not call the cache; it may take the
 *	device's own locks. Called exactly once per successful @reg.
 * @dereg_finish: second pass: wait until the device no longer uses the
 *	pages. Same constraints as @dereg_start. Called once after @dereg_start,
 *	after every other device's (and every other invalidated registration's)
 *	@dereg_start of the same invalidation. May be NULL when @dereg_start
 *	completes the work itself.
 */
struct mmn_rcache_dev_ops {
	int (*reg)(void *dev, unsigned long start, unsigned long length, void *priv);
	void (*dereg_start)(void *dev, void *priv);
	void (*dereg_finish)(void *dev, void *priv);
};

/**
 * struct mmn_rcache_dev - one device of a cache
 * @name: for reports
 * @ops: its operations (must outlive the cache)
 * @dev: passed to every operation
 * @priv_size: bytes of per-registration device state (keys, slot numbers,
 *	fences), embedded in the registration so that deregistration never
 *	allocates; reached with mmn_rcache_reg_priv()
 */
struct mmn_rcache_dev {
	const char *name;
	const struct mmn_rcache_dev_ops *ops;
	void *dev;
	size_t priv_size;
};

/* Devices per cache, at most. */
#define MMN_RCACHE_MAX_DEVS 64

/* ------------------------------------------------------------------------ */
/* Caches                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Deregister device after device inside the first pass, as a single-pass
 * notifier would (N devices cost N latencies). For comparisons only.
 */
#define MMN_RCACHE_SINGLE_PASS (1u << 0)
/*
 * Also invalidate on protection changes (mprotect) and soft-dirty resets. By
 * default they leave registrations alone: pinned pages stay the same pages.
 */
#define MMN_RCACHE_INVALIDATE_PROTECTION (1u << 1)

/**
 * struct mmn_rcache_config - what a cache looks like
 * @mm: the notifier domain; NULL: the process domain (mmn_process_mm()),
 *	whose event sources see this process's munmap, mremap, madvise, brk,
 *	shmdt, mmap(MAP_FIXED) ...; registrations are then inserted with
 *	mmn_process_insert() so the userfaultfd backstop watches them too
 * @devs: the devices (copied); every registration is made on all of them
 * @nr_devs: 1 to MMN_RCACHE_MAX_DEVS
 * @flags: MMN_RCACHE_SINGLE_PASS, MMN_RCACHE_INVALIDATE_PROTECTION
 * @max_regions: evict unused registrations beyond this many (0: no limit)
 * @max_bytes: evict unused registrations beyond this many bytes (0: no limit)
 * @alignment: registrations are widened to multiples of this (a power of two,
 *	at least the page size; 0: the page size). A widened registration that
 *	a device refuses is retried at page alignment.
 *
 * The limits are soft: when every registration is in use, a miss still
 * registers, and the overshoot is counted (over_limit).
 */
struct mmn_rcache_config {
	struct mmn_mm *mm;
	const struct mmn_rcache_dev *devs;
	unsigned int nr_devs;
	unsigned int flags;
	unsigned long max_regions;
	unsigned long max_bytes;
	unsigned long alignment;
};

struct mmn_rcache;
struct mmn_rcache_reg;

/**
 * mmn_rcache_new() - create a registration cache
 * @cfg: its configuration (copied)
 * @cachep: where to store it
 *
 * Context: allocates; with @cfg->mm NULL, creates and hooks the process domain
 * on first use (see mmn_process_mm()).
 * Return: 0; -EINVAL for NULL arguments, no or too many devices, a device
 * without @reg or @dereg_start, or a bad alignment; -ENOMEM.
 */
MMN_API int mmn_rcache_new(const struct mmn_rcache_config *cfg, struct mmn_rcache **cachep);

/**
 * mmn_rcache_destroy() - deregister everything and free the cache
 * @cache: the cache, or NULL
 *
 * Deregisters every cached registration (all devices started, then all
 * finished), removes their notifiers and frees the cache.
 *
 * Context: blocks; must not race with other calls on @cache, nor be called
 * from a notifier callback.
 * Return: 0; -EBUSY (nothing changes) while a registration is held.
 */
MMN_API int mmn_rcache_destroy(struct mmn_rcache *cache);

/**
 * mmn_rcache_get() - a registration covering [addr, addr+len) on every device
 * @cache: the cache
 * @addr: first byte
 * @len: number of bytes, at least 1
 * @regp: where to store the registration, held (put it back with
 *	mmn_rcache_put())
 *
 * A hit takes no lock: a lock-free lookup and one atomic reference. A miss
 * registers [addr, addr+len) widened to the cache's alignment on every device
 * under the collision-retry protocol: if an invalidation of the range ran
 * meanwhile, the new registration is deregistered and made again once the
 * invalidation is over, so it always reflects the mapping as it is after
 * every unmapping call that started before it. Registrations are never
 * merged (docs/rcache.md): a request that no single registration covers gets
 * its own. A miss may first evict unused registrations and collect
 * invalidated ones.
 *
 * Context: a miss blocks (device registration, waiting for an invalidation of
 * the range to end) and allocates. Not from a notifier callback of the cache's
 * domain.
 * Return: 0; -EINVAL for NULL arguments or @len 0; -EOVERFLOW if the range
 * wraps; -ENOMEM; a device's error (e.g. -EFAULT when nothing is mapped).
 */
MMN_API int mmn_rcache_get(struct mmn_rcache *cache, unsigned long addr, unsigned long len,
			   struct mmn_rcache_reg **regp);

/**
 * mmn_rcache_put() - release a registration taken by mmn_rcache_get()
 * @reg: the registration (NULL: nothing is done)
 *
 * A valid registration stays cached. One that was invalidated meanwhile (its
 * devices are already deregistered) is queued for collection, which happens
 * at the next miss, mmn_rcache_flush() or mmn_rcache_destroy().
 *
 * Putting a registration more often than it was got is a bug of the caller.
 * The put itself stays one atomic operation and checks nothing; the excess
 * is found, taken back, counted (&mmn_rcache_stats.put_errors) and reported
 * through the log hook when the cache next sums the registration's
 * references with gets shut out: at once for a registration that is already
 * invalidated (or never got), else at its eviction, flush, invalidation or
 * mmn_rcache_destroy(). So a misuse never keeps a registration held forever
 * (never evicted or collected, destroy -EBUSY). Until it is found, a get of
 * the same registration can balance the excess, and the registration may
 * then be evicted while that holder still uses it.
 *
 * Context: never blocks; lock-free unless it drops the last reference of an
 * invalidated registration (then it takes the cache lock briefly).
 */
MMN_API void mmn_rcache_put(struct mmn_rcache_reg *reg);

/**
 * mmn_rcache_flush() - drop every unused registration, collect the dead ones
 * @cache: the cache
 *
 * Unused cached registrations are deregistered (all devices started, then all
 * finished); invalidated ones have their notifiers removed and are freed.
 * Held registrations stay.
 *
 * Context: blocks; not from a notifier callback of the cache's domain.
 * Return: the number of registrations dropped, or -EINVAL.
 */
MMN_API int mmn_rcache_flush(struct mmn_rcache *cache);

/** mmn_rcache_reg_start() - first address of a registration */
MMN_API unsigned long mmn_rcache_reg_start(const struct mmn_rcache_reg *reg);

/** mmn_rcache_reg_length() - length in bytes of a registration */
MMN_API unsigned long mmn_rcache_reg_length(const struct mmn_rcache_reg *reg);

/**
 * mmn_rcache_reg_priv() - a device's private area of a registration
 * @reg: the registration
 * @dev: index of the device in the cache's configuration
 *
 * Return: the area (priv_size bytes) filled by that device's @reg op, or NULL
 * for a NULL @reg, a bad index or a device with priv_size 0.
 */
MMN_API void *mmn_rcache_reg_priv(struct mmn_rcache_reg *reg, unsigned int dev);

/**
 * mmn_rcache_reg_valid() - is a held registration still registered?
 * @reg: a registration taken by mmn_rcache_get() and not yet put (NULL: false)
 *
 * False once the memory changed under it: an invalidation deregistered it on
 * every device (or is doing so). It stays held until put; a later get of the
 * same range misses and registers the new memory.
 */
MMN_API bool mmn_rcache_reg_valid(const struct mmn_rcache_reg *reg);

/**
 * struct mmn_rcache_stats - counters since mmn_rcache_new(), and the state now
 * @hits: gets answered by a cached registration
 * @hits_slow: of those, the ones the lock-free lookup missed (found under
 *	the cache lock)
 * @misses: gets that registered
 * @failures: gets that failed (a device refused, no memory)
 * @retries: registrations deregistered and made again because an
 *	invalidation collided with them (the collision-retry protocol)
 * @registrations: registrations made (each on every device)
 * @deregistrations: registrations deregistered (each on every device)
 * @invalidations: registrations invalidated by a notifier callback
 * @invalidate_waits: callbacks that waited for a deregistration or a
 *	registration in progress on another thread
 * @evictions: unused registrations evicted by the limits or a flush
 * @over_limit: misses that registered beyond a limit (all in use)
 * @bytes_registered: bytes registered, in total
 * @regions: registrations cached or held now (not yet invalidated)
 * @bytes: bytes of those
 * @dead: invalidated registrations not yet collected (no device holds them)
 * @put_errors: puts found in excess of the gets (a registration put twice,
 *	never got, or put again after its invalidation), refused and reported
 *	through the log hook (MMN_LOG_ERROR)
 */
struct mmn_rcache_stats {
	uint64_t hits;
	uint64_t hits_slow;
	uint64_t misses;
	uint64_t failures;
	uint64_t retries;
	uint64_t registrations;
	uint64_t deregistrations;
	uint64_t invalidations;
	uint64_t invalidate_waits;
	uint64_t evictions;
	uint64_t over_limit;
	uint64_t bytes_registered;
	unsigned long regions;
	unsigned long bytes;
	unsigned long dead;
	uint64_t put_errors;
};

/**
 * mmn_rcache_get_stats() - read a cache's counters
 * @cache: the cache
 * @stats: filled in
 *
 * Context: takes the cache lock.
 * Return: 0; -EINVAL for NULL arguments.
 */
MMN_API int mmn_rcache_get_stats(struct mmn_rcache *cache, struct mmn_rcache_stats *stats);

/* ------------------------------------------------------------------------ */
/* Backend: mlock pinning                                                    */
/* ------------------------------------------------------------------------ */

struct mmn_rcache_mlock;

/**
 * mmn_rcache_mlock_new() - a device that pins registrations with mlock()
 * @mlp: where to store it
 *
 * Registration is mlock() of the range (pages are faulted in and stay
 * resident); deregistration unlocks the pages that no other registration of
 * the device still covers (mlock does not nest). Charged to RLIMIT_MEMLOCK.
 *
 * Return: 0; -EINVAL; -ENOMEM.
 */
MMN_API int mmn_rcache_mlock_new(struct mmn_rcache_mlock **mlp);

/** mmn_rcache_mlock_destroy() - free an mlock device (with no registration) */
MMN_API void mmn_rcache_mlock_destroy(struct mmn_rcache_mlock *ml);

/** mmn_rcache_mlock_dev() - describe an mlock device for a cache */
MMN_API void mmn_rcache_mlock_dev(struct mmn_rcache_mlock *ml, struct mmn_rcache_dev *dev);

/** mmn_rcache_mlock_live() - registrations the device holds now */
MMN_API unsigned long mmn_rcache_mlock_live(struct mmn_rcache_mlock *ml);

/* ------------------------------------------------------------------------ */
/* Backend: io_uring fixed buffers                                           */
/* ------------------------------------------------------------------------ */

struct mmn_rcache_uring;

/**
 * struct mmn_rcache_uring_reg - an io_uring device's private area
 * @slot: index of the fixed buffer (the buf_index of READ_FIXED/WRITE_FIXED)
 * @tag: the tag the kernel posts when it has released the pages
 */
struct mmn_rcache_uring_reg {
	unsigned int slot;
	uint64_t tag;
};

/**
 * mmn_rcache_uring_new() - a device that registers io_uring fixed buffers
 * @slots: size of the ring's (sparse) buffer table: registrations at most
 * @up: where to store it
 *
 * Registration pins the range as the fixed buffer of a free slot (the kernel
 * pins the pages, charged to RLIMIT_MEMLOCK). Deregistration starts by
 * emptying the slot; the kernel releases the pages once no request in flight
 * uses them and then posts the slot's tag: the finish waits for that tag.
 *
 * Return: 0; -ENOSYS if libmmn was built without liburing; an io_uring error
 * (-ENOSYS, -EPERM where io_uring is disabled); -EINVAL; -ENOMEM.
 */
MMN_API int mmn_rcache_uring_new(unsigned int slots, struct mmn_rcache_uring **up);

/** mmn_rcache_uring_destroy() - close the ring (with no registration) */
MMN_API void mmn_rcache_uring_destroy(struct mmn_rcache_uring *u);

/** mmn_rcache_uring_dev() - describe an io_uring device for a cache */
MMN_API void mmn_rcache_uring_dev(struct mmn_rcache_uring *u, struct mmn_rcache_dev *dev);

/**
 * mmn_rcache_uring_read_fixed() - READ_FIXED into a registered buffer, waited
 * @u: the device
 * @r: its private area of the registration (mmn_rcache_reg_priv())
 * @fd: file to read
 * @buf: destination, inside the registration
 * @len: bytes
 * @offset: file offset
 *
 * The kernel writes into the pages the slot pinned, whatever is mapped at
 * @buf now: that is what makes a stale registration visible.
 *
 * Return: bytes read, or -errno (-EFAULT for an emptied slot).
 */
MMN_API long mmn_rcache_uring_read_fixed(struct mmn_rcache_uring *u,
					 const struct mmn_rcache_uring_reg *r, int fd, void *buf,
					 unsigned int len, uint64_t offset);

/** mmn_rcache_uring_live() - slots in use now */
MMN_API unsigned long mmn_rcache_uring_live(struct mmn_rcache_uring *u);

#ifdef __cplusplus
}
#endif

#endif /* MMN_RCACHE_H */
