// SPDX-License-Identifier: MIT
/*
 * Notifier domains, interval notifiers, the sequence protocol and the
 * (two-pass) invalidation walk.
 *
 * The sequence protocol
 * ---------------------
 * It is the kernel's collision-retry scheme: a seqcount with many concurrent
 * writers. The domain's invalidate_seq is even while no open region has hit a
 * notifier and odd while at least one has ("fully excluded"). A region that
 * hits makes it odd and hands that odd value, cur_seq, to every callback;
 * every region that starts before the last one ends joins the same period and
 * gets the same cur_seq. When the last open region of an odd period ends, the
 * sequence advances to the next even value: each period moves it by exactly 2.
 *
 * A notifier's own invalidate_seq is always odd: set_seq() stores cur_seq,
 * and an insert stores the domain's value (odd while regions are open) or the
 * domain's value minus one (idle), so it never equals an idle domain's even
 * value. That is also why wrap-around is harmless.
 *
 *   device fault (reader)                    invalidation (writer)
 *   ---------------------                    ---------------------
 *   seq = read_begin(sub)                    range_start: seq |= 1, cur_seq
 *     waits while sub.seq == domain seq        callback: lock(user)
 *   look up pages                                 set_seq(sub, cur_seq)
 *   lock(user)                                    zap device mapping
 *   if read_retry(sub, seq): unlock, retry        unlock(user)
 *   install mapping                          change the CPU mapping
 *   unlock(user)                             range_end: seq += 1 (even), wake
 *
 * Either the callback's set_seq comes first under the user lock, and the
 * reader's read_retry sees it, or the reader installs first and the callback
 * then zaps what it installed. read_begin's wait keeps a reader from
 * installing pages that the open period is changing.
 *
 * States of the write side (all transitions under mm->lock)
 * ------------------------------------------------------
 *   idle                 active == 0, seq even
 *   partially excluded   active  > 0, seq even: open regions hit nothing
 *   fully excluded       active  > 0, seq odd: the tree must not change
 * where active counts the regions opened under the lock and the lock-free
 * ones (which hit nothing, and are opened and closed without the lock: see
 * "The lock-free miss" below).
 *
 * While fully excluded, walks run over the tree without the lock, so inserts
 * and removals are queued on the deferred list and applied, in call order,
 * when the period ends. An insert while partially excluded goes into the tree
 * at once but turns the period odd, because an open region may cover the new
 * interval without having called it.
 *
 * Locks
 * -----
 * mm->lock is a leaf: nothing else is taken while it is held, and it is never
 * held across a callback. The condition variable mm->wq is broadcast, under
 * the lock, on every odd->even transition; read_begin and remove wait on it
 * for the period they saw to end. Waiters are counted so that
 * mmn_mm_destroy() cannot free a domain under a waiter that has yet to
 * re-acquire the lock.
 *
 * fork(): every domain's lock is taken (after domains_lock) across the fork
 * and released after it, so the child never inherits a lock held by a thread
 * that does not exist there. In the child every domain is quiesced: regions
 * opened by the parent's other threads can never end, so they are forgotten,
 * an odd period is ended (deferred items applied) and the wait queue is
 * emptied. Notifiers stay inserted: they live in memory the child inherited.
 *
 * Where the locks are taken matters. By default, pthread_atfork handlers do
 * it. But glibc's fork() takes its malloc arena locks *after* those handlers,
 * while the event sources' hooks run inside malloc, holding an arena lock, and
 * take a domain lock: arena -> domain in malloc, domain -> arena in fork, a
 * deadlock. So once the event sources are installed they take the domain
 * locks inside fork() at the point where glibc already holds its malloc locks
 * (src/vm: a hook on _Fork), through mmn_fork_lock_all()/_unlock_all(), and
 * the atfork handlers stand aside (mmn_fork_locked_in_libc()).
 *
 * Model: src/core/notifier.pml is a spin model of this file's protocol
 * (inv_start_range, the walk and finish pass, inv_end/apply_deferred_locked,
 * the lock-free miss and its end, insert, remove, read_begin's fast and
 * slow paths, the wq broadcast). If you
 * change any of them -- what is done under mm->lock and in which order, when
 * the sequence becomes odd or even, what is deferred, the order of the two
 * loads in read_begin, when waiters are woken -- update notifier.pml to match
 * and run test/spin/run.sh.
 *
 * The invalidation path (start, walk, finish pass, end) allocates nothing,
 * prints nothing and takes no lock but mm->lock, so event sources may run it
 * inside free() and inside a munmap hook.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fork.h"
#include "internal.h"
#include "itree.h"
#include "single.h"

/*
 * The page of MMN_HOT code (hidden.h): its start, aligned to a page, and its
 * end, as two empty sections that GNU ld sorts around .text.sorted.mmn.1.
 * The labels are local: test/check_hot.cmake reads them from the symbol table.
 */
__asm__(".pushsection .text.sorted.mmn.0,\"ax\",%progbits\n"
	".balign 4096\n"
	"mmn_hot_text_begin:\n"
	".popsection\n"
	".pushsection .text.sorted.mmn.1.end,\"ax\",%progbits\n"
	"mmn_hot_text_end:\n"
	".popsection\n");

/* struct mmn_interval_notifier.state */
enum sub_state {
	SUB_NONE = 0,		/* zeroed, never inserted, failed insert, removed */
	SUB_CLAIMED,		/* an insert is filling it in */
	SUB_IN_TREE,		/* in the tree */
	SUB_PENDING_INSERT,	/* on the deferred list, not yet in the tree */
	SUB_PENDING_REMOVE,	/* in the tree and on the deferred list */
};

/*
 * Counters that the walk updates outside the lock (atomically), on a cache
 * line of their own: concurrent walks bump them on every hit, and sharing a
 * line with invalidate_seq would make read_begin's lock-free fast path miss
 * in its cache each time. The alignment makes struct mmn_mm over-aligned, so
 * mmn_mm_new() allocates it with aligned_alloc(), never calloc().
 */
struct walk_counters {
	uint64_t notifiers_called;
	uint64_t finishes;
	uint64_t nonblock_failures;
	uint64_t warnings;
} __attribute__((aligned(64)));

/*
 * The lock-free miss's announcements (see "The lock-free miss" below): each
 * thread uses one slot, picked once per thread, so threads mostly write lines
 * of their own. A slot's low FAST_ACTIVE_BITS count the lock-free regions
 * open in it now; the bits above count every lock-free region ever opened in
 * it (the invalidations statistic; they wrap after 2^40).
 */
#define FAST_SLOTS 16
#define FAST_ACTIVE_BITS 24
#define FAST_ONE (1ul + (1ul << FAST_ACTIVE_BITS))	/* one open, one counted */
#define FAST_ACTIVE_MASK ((1ul << FAST_ACTIVE_BITS) - 1)

struct fast_slot {
	unsigned long v;		/* atomic */
} __attribute__((aligned(64)));

/*
 * Page-aligned: a lock-free miss reads invalidate_seq, its slot in fast[] and
 * the head of the index (generation, root, chunk summary), which all lie in
 * the domain's first page. After a munmap that freed pages each page touched
 * costs a TLB miss (hidden.h).
 */
struct mmn_mm {
	pthread_mutex_t lock;
	pthread_cond_t wq;		/* broadcast on odd->even */
	/*
	 * Written under lock with release stores; read without the lock by
	 * read_begin's fast path (acquire), see mmn_interval_read_begin().
	 */
	unsigned long invalidate_seq;
	/* Regions opened under the lock (lock-free ones: fast[], below). */
	unsigned long active_invalidate_ranges;
	struct fast_slot fast[FAST_SLOTS];
	/*
	 * Read by the lock-free miss: its own lines, apart from the counters
	 * that every locked operation writes.
	 */
	struct mmn_itree itree __attribute__((aligned(64)));
	struct mmn_interval_notifier *deferred_head;	/* FIFO, D4 */
	struct mmn_interval_notifier **deferred_tailp;
	unsigned long nr_deferred;
	unsigned long nr_subs;		/* inserted, pending inserts included */
	unsigned long nr_waiters;	/* read_begin and remove sleeping on wq */
	/* Updated under lock. */
	uint64_t invalidations;
	uint64_t invalidations_hit;
	uint64_t releases;
	uint64_t deferred_inserts;
	uint64_t deferred_removes;
	uint64_t read_begin_waits;
	uint64_t remove_waits;
#if MMN_DEBUG
	pthread_t owner;		/* valid while owned */
	bool owned;			/* atomic */
#endif
	struct mmn_mm *fork_next;	/* on the domains list, under domains_lock */
	struct mmn_mm **fork_pprev;
	struct walk_counters walk;
} __attribute__((aligned(4096)));

_Static_assert(offsetof(struct mmn_mm, itree.slot_count) <= 4096,
	       "the lock-free miss reads one page of the domain");

/* Every live domain, for the fork handlers. Lock order: domains_lock, mm->lock. */
static pthread_mutex_t domains_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mmn_mm *domains;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static bool fork_in_libc;	/* atomic: the event sources lock inside fork() */

/*
 * The callbacks the calling thread is inside of, innermost first: a frame
 * on the walker's stack is linked in for the duration of the walk and its
 * finish pass. initial-exec TLS: reading it never allocates, even in a
 * library loaded with dlopen(), so it is usable inside free().
 */
struct cb_frame {
	struct mmn_mm *mm;
	struct cb_frame *prev;
};
static __thread struct cb_frame *cb_top __attribute__((tls_model("initial-exec")));
/*
 * The regions this thread opened with a start call and has not ended yet, on
 * any domain, newest first: an intrusive list through the private fields of
 * struct mmn_range (open_next, and open_mm, the domain it was opened on).
 * mmn_invalidate_range_end() closes a region only if its range is on the
 * calling thread's list, so an unmatched _end (after -EAGAIN, a second _end,
 * an _end from another thread) is refused instead of closing a region that
 * some other thread opened. Linking and unlinking allocate nothing; the list
 * is as long as the thread's nesting, so a search is a few loads.
 */
static __thread struct mmn_range *open_top __attribute__((tls_model("initial-exec")));
/* This thread's fork took the domain locks in the atfork prepare handler. */
static __thread bool atfork_locked __attribute__((tls_model("initial-exec")));

static bool in_callback(struct mmn_mm *mm)
{
	for (struct cb_frame *f = cb_top; f; f = f->prev)
		if (f->mm == mm)
			return true;
	return false;
}

/* The link that points at @range on this thread's open list, or NULL. */
MMN_HOT
static struct mmn_range **open_find(const struct mmn_range *range)
{
	for (struct mmn_range **link = &open_top; *link; link = &(*link)->open_next)
		if (*link == range)
			return link;
	return NULL;
}

/*
 * A range's open_mm: the domain its open region is on, with bit 0 set when
 * the region is lock-free (see "The lock-free miss"; domains are aligned to
 * 64 bytes, so the bit is free).
 */
#define OPEN_LOCKFREE ((uintptr_t)1)

static struct mmn_mm *open_domain(const struct mmn_range *r)
{
	return (struct mmn_mm *)((uintptr_t)r->open_mm & ~OPEN_LOCKFREE);
}

static bool open_lockfree(const struct mmn_range *r)
{
	return (uintptr_t)r->open_mm & OPEN_LOCKFREE;
}

/*
 * Does the calling thread keep @mm's period from ending? It does while it
 * runs a callback of @mm or has a region of @mm open: a period ends only when
 * its last open region does. Waiting for that period here would never end
 * (D6).
 */
static bool holds_period(struct mmn_mm *mm)
{
	if (in_callback(mm))
		return true;
	for (const struct mmn_range *r = open_top; r; r = r->open_next)
		if (open_domain(r) == mm)
			return true;
	return false;
}

/*
 * Domain locks this thread holds or is taking, for signal handlers
 * (mmn_lock_held_by_thread): raised before the lock is taken and lowered
 * after it is dropped, so a signal can never see 0 while the lock is held.
 */
static __thread unsigned int lock_depth __attribute__((tls_model("initial-exec")));

MMN_HOT
bool mmn_lock_held_by_thread(void)
{
	return __atomic_load_n(&lock_depth, __ATOMIC_RELAXED) != 0;
}

MMN_WARM
static void mm_lock(struct mmn_mm *mm)
{
	__atomic_store_n(&lock_depth, lock_depth + 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(&mm->lock);
#if MMN_DEBUG
	mm->owner = pthread_self();
	__atomic_store_n(&mm->owned, true, __ATOMIC_RELAXED);
#endif
}

MMN_WARM
static void mm_unlock(struct mmn_mm *mm)
{
#if MMN_DEBUG
	__atomic_store_n(&mm->owned, false, __ATOMIC_RELAXED);
#endif
	pthread_mutex_unlock(&mm->lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&lock_depth, lock_depth - 1, __ATOMIC_RELAXED);
}

/*
 * Sleep on the domain's wait queue; the caller holds the lock.
 *
 * Not a cancellation point: pthread_cond_wait() is one, and a thread
 * cancelled in it dies holding mm->lock (and counted in nr_waiters), which
 * hangs the next invalidation. Disabling cancellation around the wait, rather
 * than a cleanup handler, also keeps remove()'s promise: it returns only with
 * the notifier out of the tree, and a cancelled remove would leave the caller
 * unable to tell whether it may free the notifier. A cancel that arrives
 * meanwhile stays pending and acts at the caller's next cancellation point.
 * pthread_setcancelstate() allocates nothing and takes no lock.
 */
static void mm_wait(struct mmn_mm *mm)
{
	int cancel_state;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
#if MMN_DEBUG
	__atomic_store_n(&mm->owned, false, __ATOMIC_RELAXED);
#endif
	pthread_cond_wait(&mm->wq, &mm->lock);
#if MMN_DEBUG
	mm->owner = pthread_self();
	__atomic_store_n(&mm->owned, true, __ATOMIC_RELAXED);
#endif
	pthread_setcancelstate(cancel_state, NULL);
}

#if MMN_DEBUG
static void mm_assert_held(struct mmn_mm *mm)
{
	if (!__atomic_load_n(&mm->owned, __ATOMIC_RELAXED) ||
	    !pthread_equal(mm->owner, pthread_self()))
		mmn_fatal(mm, "domain lock not held where it must be", NULL);
}

/* Tree invariants after every change (level 2), lock ownership (level 1). */
static void mm_check_locked(struct mmn_mm *mm)
{
	const char *err;

	mm_assert_held(mm);
	if (MMN_DEBUG >= 2 &&
	    (err = mmn_itree_check(&mm->itree, mm->nr_subs - mm->itree.count)))
		mmn_fatal(mm, err, NULL);
	/*
	 * An odd sequence with no region open is no error here: a lock-free
	 * region may have just closed, its end on the way to this lock.
	 */
	if (mm->nr_deferred && !(mm->invalidate_seq & 1))
		mmn_fatal(mm, "deferred items while the sequence is even", NULL);
}
#else
static void mm_check_locked(struct mmn_mm *mm)
{
	(void)mm;
}
#endif

static unsigned long seq_load(const unsigned long *seq)
{
	return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}

/*
 * Domain sequence: pairs with the acquire load in read_begin's fast path.
 * Sequentially consistent for the lock-free miss (see there): its end loads
 * the sequence after closing its region, an insert loads the regions after
 * turning the sequence odd.
 */
static void mm_set_seq_locked(struct mmn_mm *mm, unsigned long seq)
{
	__atomic_store_n(&mm->invalidate_seq, seq, __ATOMIC_SEQ_CST);
}

static void sub_set_state(struct mmn_interval_notifier *sub, enum sub_state state)
{
	/* Pairs with the acquire loads in insert, remove and read_begin. */
	__atomic_store_n(&sub->state, state, __ATOMIC_RELEASE);
}

static enum sub_state sub_state(struct mmn_interval_notifier *sub)
{
	return __atomic_load_n(&sub->state, __ATOMIC_ACQUIRE);
}

static void deferred_add_locked(struct mmn_mm *mm, struct mmn_interval_notifier *sub)
{
	sub->deferred_next = NULL;
	sub->deferred_pprev = mm->deferred_tailp;
	*mm->deferred_tailp = sub;
	mm->deferred_tailp = &sub->deferred_next;
	mm->nr_deferred++;
}

static void deferred_del_locked(struct mmn_mm *mm, struct mmn_interval_notifier *sub)
{
	*sub->deferred_pprev = sub->deferred_next;
	if (sub->deferred_next)
		sub->deferred_next->deferred_pprev = sub->deferred_pprev;
	else
		mm->deferred_tailp = sub->deferred_pprev;
	sub->deferred_next = NULL;
	sub->deferred_pprev = NULL;
	mm->nr_deferred--;
}

/* The odd->even transition's second half: the tree may change again. */
static void apply_deferred_locked(struct mmn_mm *mm)
{
	struct mmn_interval_notifier *sub;

	while ((sub = mm->deferred_head)) {
		deferred_del_locked(mm, sub);
		if (sub_state(sub) == SUB_PENDING_INSERT) {
			mmn_itree_insert(&mm->itree, &sub->node);
			sub_set_state(sub, SUB_IN_TREE);
		} else {
			mmn_itree_remove(&mm->itree, &sub->node);
			mm->nr_subs--;
			sub_set_state(sub, SUB_NONE);
		}
	}
}

/*
 * The lock-free miss
 * ------------------
 * Most invalidations hit nothing (every free() and munmap of a process whose
 * few registrations lie elsewhere). Such a region changes nothing in the
 * domain, but it still has to count as open: an insert while it is open must
 * make read_begin of the new notifier wait for it to end (the partially
 * excluded case above), and an odd period must not end before it does. So
 * mmn_invalidate_range_start() first tries this, with no lock:
 *
 *   start:  slot += 1 (SC)            announce: counted as an open region
 *           probe the tree (itree.h): a seqlock read of the index, validated
 *           by the tree's generation
 *           miss  -> the region is open, lock-free; return
 *           else  -> lock; active += 1; slot -= 1; the locked path below
 *   end:    slot -= 1 (SC)
 *           if seq is odd (SC load): lock, end the period if no region at
 *           all is open any more
 *
 * The slot is one of FAST_SLOTS cache lines, one per thread (threads beyond
 * FAST_SLOTS share): a miss writes no line that other threads write too, and
 * reads only lines that change when the tree does.
 *
 * Why it is the kernel's protocol still. A region is open from its slot
 * increment to its decrement; "regions open" is active_invalidate_ranges plus
 * every slot's count. The orders that matter are two store-load pairs, all
 * four accesses sequentially consistent (so of each pair, at least one side
 * sees the other):
 *
 *  - probe vs insert. The start stores its slot, then loads the tree's
 *    generation. An insert (under the lock) stores the odd generation, writes
 *    the tree, then loads every slot (fast_active). Either the insert sees the
 *    slot -- the region counts as open, so the insert turns the period odd
 *    exactly as for a region opened under the lock -- or the probe's load
 *    comes after the insert's generation store, and the probe either gives
 *    up (odd, or changed under it) or sees the new interval, a hit, and takes
 *    the locked path, which calls it. An insert that completed before the
 *    start is always seen.
 *  - end vs whoever makes the sequence odd. The end stores its decrement, then
 *    loads the sequence. insert_partial_locked() stores the odd sequence,
 *    then loads every slot. Either the insert sees the decrement (and, with no
 *    region open, ends the period at once), or the end sees the odd value and
 *    ends the period under the lock if it was the last region. The locked
 *    inv_end() decrements under the lock and then loads the slots; a
 *    lock-free region it still sees ends the period when it closes (its SC
 *    load sees the odd value, which was stored before). So a period ends
 *    exactly when its last region, locked or not, has ended -- never earlier,
 *    and never is it left odd with none open.
 *
 * A miss during an odd period joins it, as in the kernel: the period waits for
 * it. The probe reads nodes that a concurrent insert or removal may be moving
 * or giving back to the spare list: nodes are therefore freed only when no
 * slot is counted after the change (mm_trim_spare_locked), or by destroy
 * (which must not race with any call). After the decrement the end still
 * loads the sequence; that is no use after free, as mmn_mm_destroy() must not
 * race with the _end call.
 *
 * Model: notifier.pml's lock-free region (fast_region).
 */

static unsigned int fast_slot_next;	/* atomic: slots handed out */
/* This thread's slot + 1 (0: none yet); the same in every domain. */
static __thread unsigned int fast_slot_id __attribute__((tls_model("initial-exec")));

MMN_HOT
static struct fast_slot *fast_slot(struct mmn_mm *mm)
{
	unsigned int id = fast_slot_id;

	if (!id) {
		id = __atomic_fetch_add(&fast_slot_next, 1, __ATOMIC_RELAXED) % FAST_SLOTS + 1;
		fast_slot_id = id;
	}
	return &mm->fast[id - 1];
}

/*
 * Add @delta to @slot: an atomic, sequentially consistent read-modify-write,
 * or one unlocked add while the process has one thread (single.h).
 */
MMN_HOT
static void slot_add(struct fast_slot *slot, unsigned long delta)
{
	MMN_ADD_SINGLE(slot->v, delta, __ATOMIC_SEQ_CST);
}

/* Lock-free regions open now. Sequentially consistent loads: see above. */
static unsigned long fast_active(struct mmn_mm *mm)
{
	unsigned long n = 0;

	for (unsigned int i = 0; i < FAST_SLOTS; i++)
		n += __atomic_load_n(&mm->fast[i].v, __ATOMIC_SEQ_CST) & FAST_ACTIVE_MASK;
	return n;
}

/* Lock-free regions ever opened (statistics). */
static uint64_t fast_opened(struct mmn_mm *mm)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < FAST_SLOTS; i++)
		n += __atomic_load_n(&mm->fast[i].v, __ATOMIC_RELAXED) >> FAST_ACTIVE_BITS;
	return n;
}

/* Regions open now, locked and lock-free; the caller holds the lock. */
static unsigned long regions_open_locked(struct mmn_mm *mm)
{
	return mm->active_invalidate_ranges + fast_active(mm);
}

/*
 * The odd->even transition, if the period is odd and its last region is
 * gone: apply the deferred list, then make the sequence even. Unless a
 * lock-free region opened meanwhile -- its probe does not take the lock, and
 * may have missed an interval that the deferred list has just put into the
 * tree: such a region joins the period (as a region opened under the lock
 * would have, before its end), so the sequence stays odd, the inserted
 * notifiers' read_begin keeps waiting, and that region's end ends the period.
 * The slots are loaded after the tree's generation stores (both SC): a probe
 * not seen here sees the new intervals.
 */
static void end_period_if_idle_locked(struct mmn_mm *mm)
{
	if (!(mm->invalidate_seq & 1) || regions_open_locked(mm))
		return;
	apply_deferred_locked(mm);
	if (fast_active(mm))
		return;
	mm_set_seq_locked(mm, mm->invalidate_seq + 1);
	/* Under the lock: once it is dropped, the domain may be freed. */
	if (mm->nr_waiters)
		pthread_cond_broadcast(&mm->wq);
}

/*
 * Open a region that hits nothing, without the lock. On false the slot stays
 * counted: the caller moves the region to the locked path (inv_start_range).
 */
MMN_HOT
static bool inv_start_fast(struct mmn_mm *mm, const struct mmn_range *range,
			   struct fast_slot *slot)
{
	slot_add(slot, FAST_ONE);
	return mmn_itree_probe_miss(&mm->itree, range->start, range->end - 1);
}

/* Close a lock-free region. */
MMN_HOT
static void inv_end_fast(struct mmn_mm *mm, struct fast_slot *slot)
{
	slot_add(slot, -1ul);
	if (__atomic_load_n(&mm->invalidate_seq, __ATOMIC_SEQ_CST) & 1) {
		mm_lock(mm);
		end_period_if_idle_locked(mm);
		mm_check_locked(mm);
		mm_unlock(mm);
	}
}

void mmn_fork_lock_all(void)
{
	pthread_mutex_lock(&domains_lock);
	for (struct mmn_mm *mm = domains; mm; mm = mm->fork_next)
		pthread_mutex_lock(&mm->lock);
}

void mmn_fork_unlock_all(bool child)
{
	bool was_open = cb_top || open_top;

	if (!child) {
		for (struct mmn_mm *mm = domains; mm; mm = mm->fork_next)
			pthread_mutex_unlock(&mm->lock);
		pthread_mutex_unlock(&domains_lock);
		return;
	}
	for (struct mmn_mm *mm = domains; mm; mm = mm->fork_next) {
		pthread_mutex_init(&mm->lock, NULL);
		pthread_cond_init(&mm->wq, NULL);
		mm->nr_waiters = 0;
		mm->active_invalidate_ranges = 0;
		for (unsigned int i = 0; i < FAST_SLOTS; i++)
			mm->fast[i].v &= ~FAST_ACTIVE_MASK;
		if (mm->invalidate_seq & 1) {
			mm->invalidate_seq++;
			apply_deferred_locked(mm);
		}
	}
	pthread_mutex_init(&domains_lock, NULL);
	/* Those regions were closed by the quiescing: their _end is unmatched. */
	cb_top = NULL;
	open_top = NULL;
	if (was_open)
		mmn_log_error(NULL, "fork() inside an open invalidation region: every domain of the child was quiesced",
			      NULL, 0, 0);
}

void mmn_fork_locked_in_libc(void)
{
	__atomic_store_n(&fork_in_libc, true, __ATOMIC_RELEASE);
}

/*
 * The pthread_atfork handlers: the default. Once the event sources lock the
 * domains inside fork() itself (mmn_fork_locked_in_libc), they do nothing.
 */
static void fork_prepare(void)
{
	atfork_locked = !__atomic_load_n(&fork_in_libc, __ATOMIC_ACQUIRE);
	if (atfork_locked)
		mmn_fork_lock_all();
}

static void fork_parent(void)
{
	if (atfork_locked)
		mmn_fork_unlock_all(false);
	atfork_locked = false;
}

static void fork_child(void)
{
	if (atfork_locked)
		mmn_fork_unlock_all(true);
	atfork_locked = false;
}

static void register_atfork(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

const char *mmn_version(void)
{
	return MMN_VERSION_STRING;
}

int mmn_mm_new(struct mmn_mm **mmp)
{
	struct mmn_mm *mm;

	if (!mmp)
		return -EINVAL;
	/*
	 * The type is over-aligned (to a page), which calloc() does not honour:
	 * glibc gives 16 bytes, and -O2 code uses aligned vector moves on the
	 * domain. C11's aligned_alloc() wants a size that is a
	 * multiple of the alignment, which sizeof of an aligned type is.
	 */
	mm = aligned_alloc(_Alignof(struct mmn_mm), sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	memset(mm, 0, sizeof(*mm));
	if (pthread_mutex_init(&mm->lock, NULL)) {
		free(mm);
		return -ENOMEM;
	}
	if (pthread_cond_init(&mm->wq, NULL)) {
		pthread_mutex_destroy(&mm->lock);
		free(mm);
		return -ENOMEM;
	}
	mm->invalidate_seq = 2;
	mm->deferred_tailp = &mm->deferred_head;

	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&domains_lock);
	mm->fork_next = domains;
	mm->fork_pprev = &domains;
	if (domains)
		domains->fork_pprev = &mm->fork_next;
	domains = mm;
	pthread_mutex_unlock(&domains_lock);
	*mmp = mm;
	return 0;
}

int mmn_mm_destroy(struct mmn_mm *mm)
{
	bool busy;

	if (!mm)
		return 0;
	pthread_mutex_lock(&domains_lock);
	mm_lock(mm);
	busy = mm->nr_subs || regions_open_locked(mm) || mm->nr_waiters ||
	       mm->nr_deferred;
	mm_unlock(mm);
	if (!busy) {
		*mm->fork_pprev = mm->fork_next;
		if (mm->fork_next)
			mm->fork_next->fork_pprev = mm->fork_pprev;
	}
	pthread_mutex_unlock(&domains_lock);
	if (busy)
		return -EBUSY;
	pthread_cond_destroy(&mm->wq);
	pthread_mutex_destroy(&mm->lock);
	mmn_itree_nodes_free(mmn_itree_spare_trim(&mm->itree, 0));
	free(mm);
	return 0;
}

MMN_HOT
void mmn_range_init(struct mmn_range *range, enum mmn_event event,
		    unsigned int flags, struct mmn_mm *mm, unsigned long start,
		    unsigned long end)
{
	if (!range)
		return;
	range->mm = mm;
	range->start = start;
	range->end = end;
	range->flags = flags;
	range->event = event;
	range->owner = NULL;
	range->open_next = NULL;
	range->open_mm = NULL;
}

/* D2: exactly one of invalidate / (invalidate_start + invalidate_finish). */
static bool ops_valid(const struct mmn_interval_notifier_ops *ops)
{
	bool two_pass = ops->invalidate_start || ops->invalidate_finish;

	if (two_pass)
		return !ops->invalidate && ops->invalidate_start &&
		       ops->invalidate_finish;
	return ops->invalidate;
}

/*
 * Make the index's spare nodes pay for one more insert on top of the pending
 * ones, so that applying them (inside mmn_invalidate_range_end) never
 * allocates. Allocates with the lock dropped: malloc may unmap, and an unmap
 * may invalidate this very domain. Returns 0 or -ENOMEM, the lock held.
 */
static int mm_reserve_insert_locked(struct mmn_mm *mm)
{
	for (;;) {
		size_t need = mmn_itree_spare_needed(&mm->itree,
						     mm->nr_subs - mm->itree.count + 1);
		struct mmn_ix_node *list;

		if (mm->itree.nr_spare >= need)
			return 0;
		need -= mm->itree.nr_spare;
		mm_unlock(mm);
		list = mmn_itree_nodes_alloc(need);
		mm_lock(mm);
		if (!list)
			return -ENOMEM;
		mmn_itree_spare_give(&mm->itree, list);
	}
}

/*
 * Spare nodes beyond what the next insert needs; free them after unlocking.
 * None while a lock-free region is open: its probe may still be reading a
 * node that just left the tree. The loads come after the change's
 * generation store (both SC), so a probe not counted yet will find the tree
 * without those nodes. Kept nodes are trimmed by a later removal.
 */
static struct mmn_ix_node *mm_trim_spare_locked(struct mmn_mm *mm)
{
	if (fast_active(mm))
		return NULL;
	return mmn_itree_spare_trim(&mm->itree, mm->nr_subs - mm->itree.count + 1);
}

int mmn_interval_notifier_insert(struct mmn_interval_notifier *sub,
				 struct mmn_mm *mm, unsigned long start,
				 unsigned long length,
				 const struct mmn_interval_notifier_ops *ops)
{
	unsigned int expected = SUB_NONE;
	unsigned long seq;

	if (!sub || !mm || !ops || !ops_valid(ops) || !length)
		return -EINVAL;
	if (start + (length - 1) < start)
		return -EOVERFLOW;
	/* Claim it: a second insert of the same notifier fails here. */
	if (!__atomic_compare_exchange_n(&sub->state, &expected, SUB_CLAIMED,
					 false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return -EBUSY;

	sub->mm = mm;
	sub->ops = ops;
	sub->node.start = start;
	sub->node.last = start + (length - 1);
	sub->deferred_next = NULL;
	sub->deferred_pprev = NULL;

	mm_lock(mm);
	if (mm_reserve_insert_locked(mm)) {
		mm_unlock(mm);
		sub_set_state(sub, SUB_NONE);
		return -ENOMEM;
	}
	seq = mm->invalidate_seq;
	if (seq & 1) {
		/* Walks may be running: join the tree when they end. */
		deferred_add_locked(mm, sub);
		mm->deferred_inserts++;
		sub_set_state(sub, SUB_PENDING_INSERT);
		__atomic_store_n(&sub->invalidate_seq, seq, __ATOMIC_RELEASE);
	} else {
		/*
		 * Into the tree first, then look for open regions: a lock-free
		 * one that this does not see will see the interval (see "The
		 * lock-free miss").
		 */
		mmn_itree_insert(&mm->itree, &sub->node);
		sub_set_state(sub, SUB_IN_TREE);
		if (regions_open_locked(mm)) {
			/*
			 * An open region may cover this interval without having
			 * called it: force full exclusion so that read_begin
			 * waits for that region to end.
			 */
			seq |= 1;
			mm_set_seq_locked(mm, seq);
			__atomic_store_n(&sub->invalidate_seq, seq, __ATOMIC_RELEASE);
			/* The lock-free ones may all have closed meanwhile. */
			end_period_if_idle_locked(mm);
		} else {
			/* Odd, and so unequal to the idle domain's even value. */
			__atomic_store_n(&sub->invalidate_seq, seq - 1, __ATOMIC_RELEASE);
		}
	}
	mm->nr_subs++;
	mm_check_locked(mm);
	mm_unlock(mm);
	return 0;
}

int mmn_interval_notifier_remove(struct mmn_interval_notifier *sub)
{
	struct mmn_ix_node *excess;
	struct mmn_mm *mm;
	unsigned long seq;
	int ret = 0;

	if (!sub)
		return -EINVAL;
	switch (sub_state(sub)) {
	case SUB_IN_TREE:
	case SUB_PENDING_INSERT:
	case SUB_PENDING_REMOVE:
		break;
	default:
		return -EINVAL;
	}
	mm = sub->mm;

	mm_lock(mm);
	switch (sub_state(sub)) {
	case SUB_PENDING_INSERT:
		/* Never reached the tree, so no walk can see it. */
		deferred_del_locked(mm, sub);
		mm->nr_subs--;
		sub_set_state(sub, SUB_NONE);
		break;
	case SUB_IN_TREE:
		seq = mm->invalidate_seq;
		if (!(seq & 1)) {
			/* No walk is running: nobody can be looking at it. */
			mmn_itree_remove(&mm->itree, &sub->node);
			mm->nr_subs--;
			sub_set_state(sub, SUB_NONE);
			break;
		}
		if (holds_period(mm)) {
			/*
			 * D6: the period cannot end while this thread is inside
			 * a callback of it or has a region of it open.
			 */
			ret = -EDEADLK;
			break;
		}
		deferred_add_locked(mm, sub);
		mm->deferred_removes++;
		mm->remove_waits++;
		sub_set_state(sub, SUB_PENDING_REMOVE);
		/*
		 * Evaluated under the lock, so we cannot see the new sequence
		 * before apply_deferred_locked() has taken @sub out of the tree.
		 */
		mm->nr_waiters++;
		while (mm->invalidate_seq == seq)
			mm_wait(mm);
		mm->nr_waiters--;
		break;
	default:
		/* Lost a race with another remove of the same notifier. */
		ret = -EINVAL;
		break;
	}
	mm_check_locked(mm);
	excess = mm_trim_spare_locked(mm);
	mm_unlock(mm);
	mmn_itree_nodes_free(excess);
	return ret;
}

unsigned long mmn_interval_read_begin(struct mmn_interval_notifier *sub)
{
	struct mmn_mm *mm;
	unsigned long seq;

	if (!sub) {
		mmn_log_error(NULL, "mmn_interval_read_begin: NULL notifier",
			      NULL, 0, 0);
		return 1;
	}
	switch (sub_state(sub)) {
	case SUB_IN_TREE:
	case SUB_PENDING_INSERT:
	case SUB_PENDING_REMOVE:
		break;
	default:
		mmn_log_error(sub->mm, "mmn_interval_read_begin: notifier not inserted",
			      sub, 0, 0);
		return __atomic_load_n(&sub->invalidate_seq, __ATOMIC_RELAXED) | 1;
	}
	mm = sub->mm;

	/*
	 * Lock-free fast path. The notifier's value is loaded first, with
	 * acquire: if it is the cur_seq of a period (stored by set_seq with
	 * release, by a callback whose walk saw the domain at that value), the
	 * domain load below sees that period or a later one, never an earlier
	 * value. So "unequal" means this notifier is not being invalidated now:
	 * either no callback of the open period has reached it (read_retry will
	 * catch it if one does) or its period is over, and the acquire load of
	 * the domain's value makes that period's changes visible.
	 */
	seq = __atomic_load_n(&sub->invalidate_seq, __ATOMIC_ACQUIRE);
	if (seq != seq_load(&mm->invalidate_seq))
		return seq;

	if (in_callback(mm))
		mmn_fatal(mm, "mmn_interval_read_begin from a callback would wait for its own invalidation",
			  sub);
	if (holds_period(mm))
		mmn_fatal(mm, "mmn_interval_read_begin with a region of the domain open on this thread would wait for its own invalidation",
			  sub);
	mm_lock(mm);
	if (mm->invalidate_seq == seq) {
		mm->read_begin_waits++;
		mm->nr_waiters++;
		while (mm->invalidate_seq == seq)
			mm_wait(mm);
		mm->nr_waiters--;
	}
	mm_unlock(mm);
	return seq;
}

bool mmn_interval_read_retry(struct mmn_interval_notifier *sub, unsigned long seq)
{
	return !sub || __atomic_load_n(&sub->invalidate_seq, __ATOMIC_RELAXED) != seq;
}

/*
 * The same comparison as read_retry: here the caller holds no user lock, so a
 * true answer is final and a false one only a hint (the header explains).
 */
bool mmn_interval_check_retry(struct mmn_interval_notifier *sub, unsigned long seq)
{
	return mmn_interval_read_retry(sub, seq);
}

void mmn_interval_set_seq(struct mmn_interval_notifier *sub, unsigned long cur_seq)
{
	/* Release: pairs with read_begin's acquire load (see there). */
	if (sub)
		__atomic_store_n(&sub->invalidate_seq, cur_seq, __ATOMIC_RELEASE);
}

/* Open a region; returns the first notifier hit (NULL if none) and cur_seq. */
MMN_WARM
static struct mmn_itree_node *inv_start_range(struct mmn_mm *mm,
					      const struct mmn_range *range,
					      unsigned long *cur_seq,
					      struct mmn_itree_iter *it,
					      struct fast_slot *slot)
{
	struct mmn_itree_node *node;

	mm_lock(mm);
	mm->active_invalidate_ranges++;
	if (slot) {
		/*
		 * The lock-free probe gave up: the region moves here. Counted
		 * under the lock before it leaves its slot, so it is open all
		 * along; and it was counted as an invalidation there already.
		 */
		slot_add(slot, -1ul);
	} else {
		mm->invalidations++;
	}
	node = mmn_itree_first(&mm->itree, it, range->start, range->end - 1);
	if (node) {
		mm->invalidations_hit++;
		if (!(mm->invalidate_seq & 1))
			mm_set_seq_locked(mm, mm->invalidate_seq | 1);
	}
	*cur_seq = mm->invalidate_seq;
	mm_unlock(mm);
	return node;
}

/* Close a region; the last one of an odd period ends the period. */
MMN_WARM
static void inv_end(struct mmn_mm *mm, const struct mmn_range *range)
{
	mm_lock(mm);
	if (!mm->active_invalidate_ranges) {
		mm_unlock(mm);
		mmn_warn(mm, "mmn_invalidate_range_end without an open region",
			 NULL, range->start, range->end);
		return;
	}
	--mm->active_invalidate_ranges;
	end_period_if_idle_locked(mm);
	mm_check_locked(mm);
	mm_unlock(mm);
}

static void count(uint64_t *counter, uint64_t n)
{
	if (n)
		__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/*
 * The walk. Runs every first pass in tree order without the lock (the odd
 * sequence keeps the tree still), then every queued finish in the same order.
 * Returns 0 with the region open, or -EAGAIN with the region closed.
 */
MMN_WARM
static int itree_invalidate(struct mmn_mm *mm, const struct mmn_range *range,
			    struct fast_slot *slot)
{
	struct mmn_finish *finishes = NULL, **finish_tail = &finishes, *f, *next;
	struct cb_frame frame = { .mm = mm, .prev = cb_top };
	struct mmn_itree_node *node;
	struct mmn_itree_iter it;
	unsigned long cur_seq;
	uint64_t called = 0, finished = 0;
	int ret = 0, cancel_state;

	node = inv_start_range(mm, range, &cur_seq, &it, slot);
	if (!node)
		return 0;

	/*
	 * No cancellation inside the walk: a thread cancelled in a callback (a
	 * condition wait, the log hook's write) would leave its region open and
	 * the period could never end. A pending cancel acts after the walk.
	 */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	cb_top = &frame;
	for (; node; node = mmn_itree_next(&it)) {
		struct mmn_interval_notifier *sub =
			mmn_container_of(node, struct mmn_interval_notifier, node);
		const struct mmn_interval_notifier_ops *ops = sub->ops;
		bool ok;

		called++;
		if (ops->invalidate_start) {
			struct mmn_finish *finish = NULL;

			ok = ops->invalidate_start(sub, range, cur_seq, &finish);
			if (ok && finish) {
				finish->notifier = sub;
				finish->next = NULL;
				*finish_tail = finish;
				finish_tail = &finish->next;
			}
		} else {
			ok = ops->invalidate(sub, range, cur_seq);
		}
		if (ok)
			continue;
		if (mmn_range_blockable(range)) {
			mmn_warn(mm, "invalidate callback returned false on a blockable range",
				 sub, range->start, range->end);
			continue;
		}
		ret = -EAGAIN;
		break;
	}

	/* Second pass; a finish may free the struct embedding it. */
	for (f = finishes; f; f = next) {
		struct mmn_interval_notifier *sub = f->notifier;

		next = f->next;
		sub->ops->invalidate_finish(f);
		finished++;
	}
	cb_top = frame.prev;
	pthread_setcancelstate(cancel_state, NULL);

	count(&mm->walk.notifiers_called, called);
	count(&mm->walk.finishes, finished);
	if (ret) {
		count(&mm->walk.nonblock_failures, 1);
		/* The caller will not call _end. */
		inv_end(mm, range);
	}
	return ret;
}

MMN_HOT
static int range_start(struct mmn_range *range, bool blockable)
{
	struct fast_slot *slot;
	struct mmn_range **link;
	int ret;

	if (!range || !range->mm || range->start >= range->end)
		return -EINVAL;
	if (open_find(range)) {
		/* Linking it twice would make this thread's list a cycle. */
		mmn_log_error(range->mm, "mmn_invalidate_range_start: range already open on this thread",
			      NULL, range->start, range->end);
		return -EBUSY;
	}
	if (blockable)
		range->flags |= MMN_RANGE_BLOCKABLE;
	else
		range->flags &= ~MMN_RANGE_BLOCKABLE;
	/* Linked before the walk: a callback's nested start may end first. */
	range->open_mm = range->mm;
	range->open_next = open_top;
	open_top = range;
	slot = fast_slot(range->mm);
	if (inv_start_fast(range->mm, range, slot)) {
		range->open_mm = (struct mmn_mm *)((uintptr_t)range->mm | OPEN_LOCKFREE);
		return 0;
	}
	ret = itree_invalidate(range->mm, range, slot);
	if (ret) {
		/* The walk closed the region. */
		link = open_find(range);
		*link = range->open_next;
		range->open_next = NULL;
		range->open_mm = NULL;
	}
	return ret;
}

MMN_HOT
int mmn_invalidate_range_start(struct mmn_range *range)
{
	return range_start(range, true);
}

int mmn_invalidate_range_start_nonblock(struct mmn_range *range)
{
	return range_start(range, false);
}

MMN_HOT
void mmn_invalidate_range_end(struct mmn_range *range)
{
	struct mmn_range **link;
	struct mmn_mm *mm;
	bool lockfree;

	/* Open on this thread: closed on the domain it was opened on. */
	link = range ? open_find(range) : NULL;
	if (!link && (!range || !range->mm)) {
		mmn_log_error(NULL, "mmn_invalidate_range_end: NULL range or domain",
			      NULL, 0, 0);
		return;
	}
	if (!link) {
		/*
		 * Not opened by this thread, or closed already (by -EAGAIN,
		 * an earlier _end, a fork): closing "a" region of the domain
		 * would end another thread's. Warn and change nothing.
		 */
		mmn_warn(range->mm, "mmn_invalidate_range_end without an open region on this thread",
			 NULL, range->start, range->end);
		return;
	}
	mm = open_domain(range);
	lockfree = open_lockfree(range);
	*link = range->open_next;
	range->open_next = NULL;
	range->open_mm = NULL;
	if (lockfree)
		inv_end_fast(mm, fast_slot(mm));
	else
		inv_end(mm, range);
}

void mmn_mm_release(struct mmn_mm *mm)
{
	struct mmn_range range;

	if (!mm) {
		mmn_log_error(NULL, "mmn_mm_release: NULL domain", NULL, 0, 0);
		return;
	}
	mmn_range_init(&range, MMN_EVENT_RELEASE, MMN_RANGE_BLOCKABLE, mm, 0,
		       ULONG_MAX);
	mm_lock(mm);
	mm->releases++;
	mm_unlock(mm);
	/* Blockable: a false return only warns, so this cannot fail. */
	itree_invalidate(mm, &range, NULL);
	inv_end(mm, &range);
}

int mmn_mm_get_stats(struct mmn_mm *mm, struct mmn_stats *st)
{
	if (!mm || !st)
		return -EINVAL;
	mm_lock(mm);
	*st = (struct mmn_stats){
		.invalidations = mm->invalidations + fast_opened(mm),
		.invalidations_hit = mm->invalidations_hit,
		.releases = mm->releases,
		.deferred_inserts = mm->deferred_inserts,
		.deferred_removes = mm->deferred_removes,
		.read_begin_waits = mm->read_begin_waits,
		.remove_waits = mm->remove_waits,
		.seq = mm->invalidate_seq,
		.active = regions_open_locked(mm),
		.notifiers = mm->nr_subs,
		.deferred = mm->nr_deferred,
	};
	mm_unlock(mm);
	st->notifiers_called = __atomic_load_n(&mm->walk.notifiers_called, __ATOMIC_RELAXED);
	st->finishes = __atomic_load_n(&mm->walk.finishes, __ATOMIC_RELAXED);
	st->nonblock_failures = __atomic_load_n(&mm->walk.nonblock_failures, __ATOMIC_RELAXED);
	st->warnings = __atomic_load_n(&mm->walk.warnings, __ATOMIC_RELAXED);
	return 0;
}

void mm_count_warning(struct mmn_mm *mm)
{
	count(&mm->walk.warnings, 1);
}

int mmn_mm_test_set_seq(struct mmn_mm *mm, unsigned long seq)
{
	int ret = 0;

	mm_lock(mm);
	if (regions_open_locked(mm) || (seq & 1))
		ret = -EBUSY;
	else
		mm_set_seq_locked(mm, seq);
	mm_unlock(mm);
	return ret;
}

bool mmn_interval_notifier_test_in_tree(struct mmn_interval_notifier *sub)
{
	enum sub_state state = sub_state(sub);

	return state == SUB_IN_TREE || state == SUB_PENDING_REMOVE;
}

const char *mmn_mm_test_check(struct mmn_mm *mm)
{
	const char *err;

	struct mmn_interval_notifier *sub;
	unsigned long pending_inserts = 0, deferred = 0;

	mm_lock(mm);
	for (sub = mm->deferred_head; sub; sub = sub->deferred_next) {
		deferred++;
		pending_inserts += sub_state(sub) == SUB_PENDING_INSERT;
	}
	err = mmn_itree_check(&mm->itree, pending_inserts);
	if (!err && deferred != mm->nr_deferred)
		err = "deferred list length out of step with its count";
	if (!err && mm->itree.count + pending_inserts != mm->nr_subs)
		err = "notifier count out of step with the tree";
	if (!err && !regions_open_locked(mm) && (mm->invalidate_seq & 1))
		err = "odd sequence in an idle domain";
	mm_unlock(mm);
	return err;
}

size_t mmn_mm_test_alignment(void)
{
	return _Alignof(struct mmn_mm);
}

bool mmn_test_in_callback(struct mmn_mm *mm)
{
	return in_callback(mm);
}
