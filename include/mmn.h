/* SPDX-License-Identifier: MIT */
/*
 * libmmn: MMU interval notifiers, with two-pass invalidation, in user space.
 *
 * A notifier domain (struct mmn_mm) plays the part of the kernel's mm: it holds
 * interval notifiers, each subscribed to one closed interval of virtual
 * addresses. An invalidation ([start, end), end exclusive) calls every
 * notifier that overlaps it before the mapping changes, and a sequence-number
 * protocol (read_begin / read_retry / set_seq) lets a device fault that raced
 * with an invalidation retry instead of installing a stale mapping.
 *
 * Two-pass notifiers split their work: invalidate_start() *starts* device work
 * (TLB flush, preemption) and hands back a finish object; after every first
 * pass of the walk, the core calls invalidate_finish() for each, which waits.
 *
 * The behaviour is the Linux kernel's (mm/mmu_notifier.c, with the 2026
 * two-pass change); docs/kernel-map.md maps every name here to the kernel's
 * and lists the deliberate deviations.
 *
 * C11, Linux, LP64. Every function is thread-safe.
 */
#ifndef MMN_H
#define MMN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef MMN_API
#define MMN_API __attribute__((visibility("default")))
#endif

#include <mmn/version.h>	/* MMN_VERSION_MAJOR, _MINOR, _PATCH, _STRING */

/**
 * mmn_version() - version of the library actually loaded
 *
 * Return: a constant string such as "0.1.0".
 */
MMN_API const char *mmn_version(void);

/**
 * mmn_container_of() - the struct that embeds @ptr as its @member
 *
 * For callbacks, which receive the embedded struct mmn_interval_notifier or
 * struct mmn_finish.
 */
#define mmn_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ------------------------------------------------------------------------ */
/* Domains                                                                   */
/* ------------------------------------------------------------------------ */

struct mmn_mm;

/**
 * mmn_mm_new() - create an empty notifier domain
 * @mmp: where to store the new domain
 *
 * The domain's sequence starts at 2 (even: idle), as the kernel's.
 *
 * Context: may allocate; not for use inside an invalidation callback of a
 * domain that is being torn down.
 * Return: 0; -EINVAL if @mmp is NULL; -ENOMEM.
 */
MMN_API int mmn_mm_new(struct mmn_mm **mmp);

/**
 * mmn_mm_release() - run the RELEASE invalidation over the whole domain
 * @mm: the domain
 *
 * Calls every notifier that overlaps [0, ULONG_MAX) once with event
 * MMN_EVENT_RELEASE on a blockable range, runs the finish pass and closes the
 * region, as the kernel does from exit_mmap(). A false return from a callback
 * only counts a warning. Notifiers stay inserted and must still be removed;
 * later invalidations work as before. May be called more than once, and while
 * other regions are open (it joins their period).
 *
 * Context: blocks for as long as the callbacks do. Takes the domain lock.
 */
MMN_API void mmn_mm_release(struct mmn_mm *mm);

/**
 * mmn_mm_destroy() - free a domain
 * @mm: the domain, or NULL (nothing is done)
 *
 * Context: must not race with any other call on @mm.
 * Return: 0 when freed; -EBUSY (and nothing is freed) while notifiers are
 * inserted (pending inserts and removals still waiting included) or a region
 * is open.
 */
MMN_API int mmn_mm_destroy(struct mmn_mm *mm);

/* ------------------------------------------------------------------------ */
/* Ranges                                                                    */
/* ------------------------------------------------------------------------ */

/* Why an invalidation happens; values equal the kernel's mmu_notifier_event. */
enum mmn_event {
	MMN_EVENT_UNMAP = 0,		/* the mapping goes away (munmap, mremap source) */
	MMN_EVENT_CLEAR,		/* pages dropped, mapping kept (madvise DONTNEED) */
	MMN_EVENT_PROTECTION_VMA,	/* protection of the whole mapping changes */
	MMN_EVENT_PROTECTION_PAGE,	/* protection of some pages changes */
	MMN_EVENT_SOFT_DIRTY,		/* soft-dirty tracking reset */
	MMN_EVENT_RELEASE,		/* the whole domain goes away */
	MMN_EVENT_MIGRATE,		/* pages move (owner says to whom) */
	MMN_EVENT_EXCLUSIVE,		/* pages converted for exclusive device access */
};

/* Set by mmn_invalidate_range_start(), cleared by the _nonblock variant. */
#define MMN_RANGE_BLOCKABLE (1u << 0)

/**
 * struct mmn_range - one invalidation: [start, end), end exclusive
 * @mm: the domain invalidated
 * @start: first address
 * @end: one past the last address
 * @flags: MMN_RANGE_BLOCKABLE, set or cleared by the start calls
 * @event: why (enum mmn_event)
 * @owner: opaque cookie of the agent causing the invalidation (NULL if none);
 *	   lets a device ignore invalidations it caused itself (migration)
 *
 * The remaining fields are private: while the range's region is open they
 * link it into the opening thread's list of open regions, which is how
 * mmn_invalidate_range_end() tells a matched _end from an unmatched one. So a
 * region must be ended through the same struct that started it, and one
 * struct holds at most one open region at a time.
 */
struct mmn_range {
	struct mmn_mm *mm;
	unsigned long start;
	unsigned long end;
	unsigned int flags;
	enum mmn_event event;
	void *owner;
	/* private: */
	struct mmn_range *open_next;
	struct mmn_mm *open_mm;
};

/**
 * mmn_range_init() - fill every field of a range
 * @range: the range
 * @event: why the invalidation happens
 * @flags: initial flags (the start calls overwrite MMN_RANGE_BLOCKABLE)
 * @mm: the domain
 * @start: first address
 * @end: one past the last address
 *
 * @owner is set to NULL; set it afterwards if needed.
 */
MMN_API void mmn_range_init(struct mmn_range *range, enum mmn_event event,
			    unsigned int flags, struct mmn_mm *mm,
			    unsigned long start, unsigned long end);

/**
 * mmn_range_blockable() - may callbacks for @range sleep?
 * @range: the range handed to a callback
 */
static inline bool mmn_range_blockable(const struct mmn_range *range)
{
	return range->flags & MMN_RANGE_BLOCKABLE;
}

/* ------------------------------------------------------------------------ */
/* Interval notifiers                                                        */
/* ------------------------------------------------------------------------ */

struct mmn_interval_notifier;

/**
 * struct mmn_finish - second-pass work item of a two-pass notifier
 * @next: link on the walk's local finish list; owned by the core
 * @notifier: the notifier whose invalidate_start returned this; set by the core
 *
 * Embed it in your own struct and reach that struct with container_of() in
 * invalidate_finish(). Overlapping invalidations may run concurrently on
 * several threads, so each invocation needs its own finish object (or an
 * "in use" flag and a synchronous fallback, as the xe userptr driver does).
 */
struct mmn_finish {
	struct mmn_finish *next;
	struct mmn_interval_notifier *notifier;
};

/**
 * struct mmn_interval_notifier_ops - callbacks of an interval notifier
 *
 * Give exactly one of @invalidate or (@invalidate_start and @invalidate_finish).
 *
 * @invalidate: single pass. Called during mmn_invalidate_range_start*() for
 *	every range that overlaps the notifier, with the period's @cur_seq (odd).
 *	It must call mmn_interval_set_seq(sub, cur_seq) under the lock its
 *	readers use for mmn_interval_read_retry(), then stop device use of the
 *	range. Return false only if the range is not blockable and the work would
 *	have to sleep; on a blockable range false is counted as a warning and the
 *	walk goes on.
 * @invalidate_start: first pass of a two-pass notifier. Same contract as
 *	@invalidate, but it may leave the waiting to the second pass: store a
 *	finish object in *@finish (NULL on entry) and the core calls
 *	@invalidate_finish with it after every first pass of this walk. Returning
 *	true with *@finish NULL means the work is complete already. On false,
 *	*@finish is ignored.
 * @invalidate_finish: second pass: wait for what @invalidate_start started.
 *	Called exactly once per queued finish, on the thread that called the
 *	start, in walk order, before mmn_invalidate_range_start*() returns. It
 *	may free the struct that embeds @finish. It is not told the range: keep
 *	what you need in your container.
 *
 * Callbacks run without any libmmn lock held. They may insert notifiers (the
 * insert is deferred until the period ends) and may start nested
 * invalidations of the same domain. They must not wait for the period they
 * run in: mmn_interval_notifier_remove() then returns -EDEADLK and
 * mmn_interval_read_begin() aborts. They run with thread cancellation
 * disabled (a cancelled walk would leave its region open for ever); a cancel
 * requested meanwhile acts after mmn_invalidate_range_start*() returns.
 */
struct mmn_interval_notifier_ops {
	bool (*invalidate)(struct mmn_interval_notifier *sub,
			   const struct mmn_range *range, unsigned long cur_seq);
	bool (*invalidate_start)(struct mmn_interval_notifier *sub,
				 const struct mmn_range *range,
				 unsigned long cur_seq,
				 struct mmn_finish **finish);
	void (*invalidate_finish)(struct mmn_finish *finish);
};

/* private: a notifier's entry in the domain's interval index (a B+-tree) */
struct mmn_itree_node {
	void *leaf;			/* the index leaf that holds it */
	unsigned long start;		/* first address covered */
	unsigned long last;		/* last address covered (inclusive) */
	unsigned long unused[4];	/* keeps the embedded size (ABI) */
};

/**
 * struct mmn_interval_notifier - one subscription to [start, last]
 *
 * Embed it in your own struct and zero it before its first insert. Every
 * field is private to libmmn (the header declares them only so the struct can
 * be embedded); use the accessors below.
 */
struct mmn_interval_notifier {
	/* private: */
	struct mmn_itree_node node;
	const struct mmn_interval_notifier_ops *ops;
	struct mmn_mm *mm;
	struct mmn_interval_notifier *deferred_next;
	struct mmn_interval_notifier **deferred_pprev;
	unsigned long invalidate_seq;	/* odd; atomic */
	unsigned int state;		/* atomic; see src/core/notifier.c */
};

/**
 * mmn_interval_notifier_insert() - subscribe @sub to [start, start+length-1]
 * @sub: a zeroed (or removed) notifier
 * @mm: the domain
 * @start: first address
 * @length: number of bytes, at least 1
 * @ops: callbacks; must outlive the subscription
 *
 * When the domain is fully excluded (an open invalidation hit a notifier) the
 * insert is deferred until that period ends; either way the caller must only
 * set up device mappings through the read_begin / read_retry protocol.
 *
 * Context: takes the domain lock; never blocks on an invalidation. May be
 * called from a callback.
 * Return: 0; -EINVAL for a NULL argument or a bad ops table (see
 * struct mmn_interval_notifier_ops) or @length 0; -EOVERFLOW if the interval
 * wraps past the end of the address space; -EBUSY if @sub is inserted already.
 * The checks are made in that order, and a failed insert changes nothing.
 */
MMN_API int mmn_interval_notifier_insert(struct mmn_interval_notifier *sub,
					 struct mmn_mm *mm, unsigned long start,
					 unsigned long length,
					 const struct mmn_interval_notifier_ops *ops);

/**
 * mmn_interval_notifier_remove() - unsubscribe @sub
 * @sub: an inserted notifier
 *
 * If an invalidation period that may be walking @sub is open, waits until it
 * ends. On return no callback of @sub runs or will run, and @sub may be freed
 * or inserted again.
 *
 * Context: may block. Must not be called, when it would have to wait, by a
 * thread that holds the period open itself: from a callback of the same
 * domain, or between its own mmn_invalidate_range_start*() and _end on that
 * domain. That returns -EDEADLK instead of hanging. The wait is not a
 * cancellation point: a pthread_cancel() of the waiting thread takes effect
 * after the removal is complete, at the caller's next cancellation point.
 * Return: 0; -EINVAL if @sub is NULL, not inserted, or already being removed;
 * -EDEADLK (and @sub stays inserted) as above.
 */
MMN_API int mmn_interval_notifier_remove(struct mmn_interval_notifier *sub);

/**
 * mmn_interval_read_begin() - start a device fault on @sub's interval
 * @sub: an inserted notifier
 *
 * If an invalidation of @sub is in progress (its callback already ran in the
 * open period, or @sub was inserted during that period), waits until the
 * period ends. Then returns the notifier's sequence, to be passed to
 * mmn_interval_read_retry() once the device mapping is ready to install.
 *
 * Context: may block. Called while it would have to wait by a thread that
 * holds the period open itself (from a callback of the same domain, or
 * between its own start and _end on that domain), it reports through the log
 * hook and calls abort(). On a notifier that is not inserted it logs an error
 * and returns without waiting. The wait is not a cancellation point: a
 * pthread_cancel() of the waiting thread takes effect after the wait, at the
 * caller's next cancellation point.
 * Return: an odd sequence value.
 */
MMN_API unsigned long mmn_interval_read_begin(struct mmn_interval_notifier *sub);

/**
 * mmn_interval_read_retry() - did an invalidation collide with the fault?
 * @sub: the notifier
 * @seq: the value mmn_interval_read_begin() returned
 *
 * Context: call it under the lock the invalidate callback holds when it calls
 * mmn_interval_set_seq(); if it returns false, install the mapping before
 * dropping that lock. Lock-free itself.
 * Return: true if the fault must be retried (also for a NULL @sub).
 */
MMN_API bool mmn_interval_read_retry(struct mmn_interval_notifier *sub,
				     unsigned long seq);

/**
 * mmn_interval_check_retry() - lock-free hint that a retry will be needed
 * @sub: the notifier
 * @seq: the value mmn_interval_read_begin() returned
 *
 * For early exits from long fault loops: true is final (read_retry will be
 * true as well), false is only a hint.
 * Return: true if an invalidation has already collided (also for a NULL @sub).
 */
MMN_API bool mmn_interval_check_retry(struct mmn_interval_notifier *sub,
				      unsigned long seq);

/**
 * mmn_interval_set_seq() - record that an invalidation hit @sub
 * @sub: the notifier handed to the callback
 * @cur_seq: the cur_seq handed to the callback
 *
 * Context: from invalidate or invalidate_start, unconditionally, under the
 * lock that readers take for mmn_interval_read_retry().
 */
MMN_API void mmn_interval_set_seq(struct mmn_interval_notifier *sub,
				  unsigned long cur_seq);

/** mmn_interval_notifier_start() - first address of @sub's interval */
static inline unsigned long
mmn_interval_notifier_start(const struct mmn_interval_notifier *sub)
{
	return sub->node.start;
}

/** mmn_interval_notifier_last() - last address (inclusive) of @sub's interval */
static inline unsigned long
mmn_interval_notifier_last(const struct mmn_interval_notifier *sub)
{
	return sub->node.last;
}

/** mmn_interval_notifier_mm() - the domain @sub is (or was last) inserted in */
static inline struct mmn_mm *
mmn_interval_notifier_mm(const struct mmn_interval_notifier *sub)
{
	return sub->mm;
}

/* ------------------------------------------------------------------------ */
/* Invalidation                                                              */
/* ------------------------------------------------------------------------ */

/**
 * mmn_invalidate_range_start() - invalidate @range before changing it
 * @range: initialised with mmn_range_init(); MMN_RANGE_BLOCKABLE is set
 *
 * Opens a region and calls every overlapping notifier in ascending start order
 * (equal starts in insertion order): the single-pass ones' invalidate, the
 * two-pass ones' invalidate_start; then every queued invalidate_finish. The
 * region stays open, keeping the domain's period odd when something was hit,
 * until mmn_invalidate_range_end().
 *
 * The region belongs to the calling thread: end it on this thread, through
 * this same struct, which must stay valid until then (it is linked into the
 * thread's list of open regions). Between start and _end, the thread must not wait for the
 * period it holds (see mmn_interval_notifier_remove()), and if the code there
 * has cancellation points, a cleanup handler should call _end.
 *
 * Context: blocks for as long as the callbacks do. Allocates nothing, prints
 * nothing, takes only the domain lock (never across a callback): safe inside
 * free() and inside a munmap hook. Not a cancellation point: cancellation is
 * disabled while callbacks run.
 * Return: 0; -EINVAL if @range or @range->mm is NULL or @range is empty
 * (start >= end): nothing is then recorded and _end must not be called;
 * -EBUSY (and an error is logged) if @range is open already on this thread.
 */
MMN_API int mmn_invalidate_range_start(struct mmn_range *range);

/**
 * mmn_invalidate_range_start_nonblock() - same, for a context that cannot sleep
 * @range: as above; MMN_RANGE_BLOCKABLE is cleared
 *
 * A callback that would have to sleep returns false; the walk then stops
 * (later notifiers are not called), the finishes of those already called still
 * run, and the region is closed by the core.
 *
 * Return: 0 (call _end later); -EAGAIN (do not change the range, do not call
 * _end); -EINVAL and -EBUSY as for mmn_invalidate_range_start().
 */
MMN_API int mmn_invalidate_range_start_nonblock(struct mmn_range *range);

/**
 * mmn_invalidate_range_end() - close the region opened by a successful start
 * @range: the same range
 *
 * No callback runs here. When the last open region of the period closes, the
 * domain's sequence advances, deferred inserts and removals are applied in
 * call order, and waiters wake.
 *
 * Context: on the thread that called the start, with the struct it started.
 * Takes the domain lock. An unmatched call -- @range is not open on this
 * thread: after -EAGAIN or -EINVAL, a second _end, an _end on another thread,
 * or after fork() in the child -- is counted as a warning, reported through
 * the log hook (on the calling thread, with @range's addresses) and
 * otherwise ignored: it never closes another thread's region. Not a
 * cancellation point.
 */
MMN_API void mmn_invalidate_range_end(struct mmn_range *range);

/* ------------------------------------------------------------------------ */
/* Statistics and logging                                                    */
/* ------------------------------------------------------------------------ */

/**
 * struct mmn_stats - counters since mmn_mm_new(), and the domain's state now
 * @invalidations: regions opened by the start calls and by release
 * @invalidations_hit: of those, how many overlapped at least one notifier
 * @nonblock_failures: non-blockable starts that returned -EAGAIN
 * @releases: mmn_mm_release() walks
 * @notifiers_called: first-pass calls (invalidate or invalidate_start)
 * @finishes: invalidate_finish calls
 * @deferred_inserts: inserts postponed to the end of a period
 * @deferred_removes: removals postponed to the end of a period
 * @read_begin_waits: mmn_interval_read_begin() calls that had to wait
 * @remove_waits: mmn_interval_notifier_remove() calls that had to wait
 * @warnings: kernel "WARN" cases (a false return on a blockable range, an
 *	unmatched _end, ...), each also reported through the log hook
 * @seq: the domain's sequence now (odd while fully excluded)
 * @active: regions open now
 * @notifiers: notifiers inserted now (pending inserts included)
 * @deferred: inserts and removals waiting for the end of the period
 */
struct mmn_stats {
	uint64_t invalidations;
	uint64_t invalidations_hit;
	uint64_t nonblock_failures;
	uint64_t releases;
	uint64_t notifiers_called;
	uint64_t finishes;
	uint64_t deferred_inserts;
	uint64_t deferred_removes;
	uint64_t read_begin_waits;
	uint64_t remove_waits;
	uint64_t warnings;
	unsigned long seq;
	unsigned long active;
	unsigned long notifiers;
	unsigned long deferred;
};

/**
 * mmn_mm_get_stats() - read a domain's counters and state
 * @mm: the domain
 * @stats: filled in
 *
 * Context: takes the domain lock.
 * Return: 0; -EINVAL if either argument is NULL.
 */
MMN_API int mmn_mm_get_stats(struct mmn_mm *mm, struct mmn_stats *stats);

enum mmn_log_level {
	MMN_LOG_ERROR = 0,	/* misuse that libmmn refused or will abort on */
	MMN_LOG_WARN,		/* the kernel's WARN cases (D5) */
	MMN_LOG_INFO,		/* coverage and set-up facts */
};

/**
 * struct mmn_log_record - one report to the log hook
 * @level: severity
 * @what: constant text naming the problem
 * @mm: the domain concerned, or NULL
 * @sub: the notifier concerned, or NULL
 * @start: start of the range concerned (0 if none)
 * @end: end of the range concerned (0 if none)
 *
 * Records are built on the stack and texts are constants, so reporting
 * allocates nothing and formats nothing; the hook decides what to print.
 */
struct mmn_log_record {
	enum mmn_log_level level;
	const char *what;
	struct mmn_mm *mm;
	struct mmn_interval_notifier *sub;
	unsigned long start;
	unsigned long end;
};

typedef void mmn_log_fn(const struct mmn_log_record *rec, void *arg);

/**
 * mmn_set_log_fn() - install the process-wide log hook
 * @fn: called for every report; NULL silences reports (counters still count)
 * @arg: passed to @fn
 *
 * The hook may be called from any thread, from inside an invalidation and so
 * from inside free(): it must not allocate or take locks that the code calling
 * free() may hold. It runs with thread cancellation disabled (reporters may
 * hold locks), so a write(2) in it is not a cancellation point. By default no hook is set, unless the environment variable
 * MMN_LOG=stderr installs mmn_log_stderr when the library loads. If the
 * environment variable MMN_ABORT_ON_WARN=1, the first warning aborts after it
 * is reported.
 */
MMN_API void mmn_set_log_fn(mmn_log_fn *fn, void *arg);

/**
 * mmn_log() - report a record through the installed log hook
 * @rec: the record; its texts should be constants
 *
 * For the layers above the core (event sources, devices, caches) and for
 * programs that want their reports in the same place. Allocation-free.
 */
MMN_API void mmn_log(const struct mmn_log_record *rec);

/**
 * mmn_log_stderr() - a ready-made hook: one line on standard error
 * @rec: the record
 * @arg: unused
 *
 * Formats by hand and writes with write(2): no allocation, no stdio lock.
 */
MMN_API void mmn_log_stderr(const struct mmn_log_record *rec, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* MMN_H */
