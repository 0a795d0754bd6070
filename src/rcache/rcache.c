// SPDX-License-Identifier: MIT
/*
 * The registration cache (include/mmn/rcache.h): regions, their notifiers,
 * the lock-free hit path, the collision-retry miss path, two-pass
 * invalidation, eviction and collection.
 *
 * A region is one registration of [start, end) on every device. Its life:
 *
 *   FREE --get miss--> PENDING --published--> LIVE --invalidated/evicted--> DEREG
 *     ^                  |  (retry: deregister,                               |
 *     |                  |   register again)                                  v
 *     +----collected-----+------------(failed)----------------------------- DEAD
 *
 * State changes happen under cache->lock. LIVE regions are in the index (an
 * interval treap, rtree.c) and on the clock list used for eviction.
 *
 * References are per-CPU. A region has one reference slot per CPU (up to
 * RC_MAX_SLOTS; CPU number modulo the slots); a get or put works on the slot
 * of the CPU it runs on (sched_getcpu(), an rseq read), so hits on different
 * CPUs write different lines and scale, where one shared count would bounce
 * its line between the CPUs on every hit. The slots live outside the region,
 * in per-slot pages: slot s of every region of a block of 256 is in the
 * block's page s, so a CPU writes only lines that no other CPU writes, and
 * its prefetchers, which pull in neighbouring lines of the same page, only
 * ever pull in its own. A slot holds two monotonic counters:
 *   gets   bit 0: INVALID, set in every slot (under the lock) when a region
 *          leaves LIVE, and kept while it is PENDING or FREE; a get never
 *          takes a reference through an INVALID slot.
 *          bits 1..63: references taken through this slot (one
 *          compare-and-swap checks INVALID and counts)
 *   puts   references dropped through this slot
 * A reference taken on one CPU may be dropped on another: only the sums
 * mean anything. Holders = sum(gets) - sum(puts). Hits come from the same
 * counters (the gets, less the reference each miss hands out), so a hit
 * costs one atomic operation and a put one.
 * Why sums of separately updated words are safe: once INVALID is in every
 * slot no get can add to any gets word (the compare-and-swap that adds reads
 * INVALID in the same word), so the holders can only fall; whoever sets
 * INVALID and then reads the slots sees every reference taken before it. A
 * put adds to its puts word and then reads its slot's INVALID bit, both
 * sequentially consistent, as the invalidator sets INVALID and then reads
 * the puts (Dekker): either the invalidator's sum includes the put, or the
 * put sees INVALID and takes the lock to sum again -- so the put that drops
 * the last reference, whichever slot it used, queues the region. Eviction
 * sets INVALID everywhere, sums, and backs off if the region is held.
 * A hit is: a look in the hint table (below), else a lock-free tree search;
 * one compare-and-swap on this CPU's slot; a check that the region
 * (type-stable memory, maybe recycled meanwhile) still covers the request. A
 * put is one atomic addition to the puts of this CPU's slot (and a read of
 * its INVALID bit). Neither takes a lock, and the invalidation path shares
 * no lock with them.
 *
 * The hint table is a software TLB in front of the tree: 2-way set-associative,
 * indexed by the page number of the request's first byte, each way a region
 * pointer. Hits fill it; nothing ever clears it. A stale way costs nothing but
 * a check: the reference (INVALID) and bounds checks that make a tree hit safe
 * make a hint hit safe too.
 *
 * Lock order and contexts. cache->lock is a leaf: nothing is called with it
 * held that could allocate, block on an invalidation or change a mapping, so
 * notifier callbacks (running inside munmap, inside free()) may take it.
 * Device operations, notifier insert/remove and read_begin are called without
 * it. The one wait under it is pthread_cond_wait(cache->cond) in a callback
 * that finds a region being deregistered by another thread (an eviction, an
 * overlapping invalidation): the unmapping call must not proceed before that
 * deregistration is complete. The other thread only runs device
 * deregistrations (which must not allocate), and every walk meets regions in
 * the same order (ascending start), so these waits cannot form a cycle.
 *
 * Collision-retry, against a concurrent munmap of the range (thread U), as
 * the kernel's drivers do it:
 *
 *   miss (thread M)                           munmap (thread U)
 *   insert notifier (deferred while U's
 *     period is open)
 *   seq = read_begin()   <- waits while U's invalidation of the range is open
 *   register on every device                  lock; set_seq; LIVE? kill it,
 *   lock                                        start dereg; unlock
 *   retry? -> unlock, deregister, again       finish pass: wait for devices
 *   no     -> publish LIVE; unlock            munmap(); range_end
 *
 * M never publishes a registration that an invalidation collided with. As in
 * the kernel, a registration in flight when U's munmap returns may still pin
 * the old pages for a moment: nobody can use it (it was never returned), and
 * M deregisters it before its get returns. U does not wait for M: M's device
 * registration may allocate, and U may be inside free() holding the arena
 * lock. Published registrations are always deregistered before U's call
 * returns.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mmn/process.h>
#include <mmn/rcache.h>

#include "rtree.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define REF_INVALID UINT64_C(1)
#define REF_ONE UINT64_C(2)

/*
 * One CPU's share of a region's references. The shares of one CPU (slot)
 * for all regions of a block are packed in one page, and a region's slots
 * are REF_STRIDE apart: a hit writes only lines that its own CPU writes.
 * (Slots on adjacent lines of the region itself did not scale: the hardware
 * prefetchers of one CPU pull in the neighbouring lines, which other CPUs
 * write, so the lines bounced anyway -- docs/rcache.md, "Per-CPU
 * references".)
 */
struct rc_ref {
	uint64_t gets;		/* atomic; bit 0 INVALID, then a count (REF_ONE each) */
	uint64_t puts;		/* atomic */
};

#define REF_STRIDE 4096u	/* bytes from one slot of a region to the next */
#define REF_BLOCK_REGIONS (REF_STRIDE / sizeof(struct rc_ref))
#define RC_MAX_SLOTS 64u

/* Slots per region (a power of two; set once, before any cache exists). */
static unsigned int rc_nslots = 1;
static pthread_once_t rc_slots_once = PTHREAD_ONCE_INIT;

/* The reference pages of REF_BLOCK_REGIONS regions: rc_nslots pages. */
struct rc_refblock {
	struct rc_refblock *next;
	unsigned int used;	/* regions given their references */
	struct rc_ref *pages;	/* aligned to REF_STRIDE */
};

enum rc_state {
	RC_FREE = 0,
	RC_PENDING,
	RC_LIVE,
	RC_DEREG,
	RC_DEAD,
};

struct rc_link {
	struct rc_link *prev, *next;
};

struct rc_region {
	/* Hot: what a hit reads (one cache line, written rarely). */
	struct rnode node;
	struct rc_ref *ref;		/* slot 0's share; slot s's is s * REF_STRIDE on */
	unsigned char referenced;	/* atomic: clock bit, set by hits */
	unsigned int state;		/* under cache->lock; read lock-free, atomically */

	/* Under cache->lock. */
	bool on_gc;
	pthread_t owner;		/* DEREG: the thread deregistering */
	struct mmn_rcache *cache;
	unsigned long start, end;	/* the registration, end exclusive */
	struct rc_link lru;		/* LIVE: the clock list */
	struct rc_link all;		/* every region not FREE */
	struct rc_region *next;		/* gc list, batches, free list */
	struct mmn_interval_notifier sub;
	struct mmn_finish finish;	/* the one second pass of this region */
	alignas(16) unsigned char priv[];
};

_Static_assert(offsetof(struct rc_region, state) + sizeof(unsigned int) <= 64,
	       "what a hit reads fits one cache line");

struct rc_chunk {
	struct rc_chunk *next;
	alignas(64) unsigned char mem[];
};

#define CHUNK_REGIONS 64
_Static_assert(REF_BLOCK_REGIONS % CHUNK_REGIONS == 0, "a chunk's references fit one block");
/*
 * 8192 sets (128 KiB): with 4096, 1024 random registrations left about 3% of
 * them in sets of three or more, whose hits fell through to the tree and
 * rewrote the set -- a line the other CPUs read (bench_rcache_hit: 2 threads
 * 19.3 -> 17.8 ns per pair, 1 thread 17.1 -> 16.5).
 */
#define HINT_BITS 13
#define HINT_SETS (1u << HINT_BITS)

struct rc_hint {
	struct rc_region *way[2];	/* atomic; way[0] most recently filled */
};

struct mmn_rcache {
	/* Read by every hit: kept apart from what the slow paths write. */
	alignas(64) struct rtree tree;
	unsigned int page_shift;
	alignas(64) struct rc_hint hint[HINT_SETS];

	alignas(64) pthread_mutex_t lock;
	pthread_cond_t cond;		/* a region left DEREG */
	struct mmn_mm *mm;
	bool process;
	unsigned int flags;
	unsigned int nr_devs;
	size_t region_size;
	unsigned long page_size, alignment, max_regions, max_bytes;
	struct rc_link lru;		/* clock order: head is the oldest */
	struct rc_link all;
	struct rc_region *gc;		/* DEAD, unused: notifier to remove */
	struct rc_region *free;
	struct rc_chunk *chunks;
	struct rc_refblock *refs;	/* newest (the one being filled) first */
	unsigned long nr_live, bytes_live, nr_dead;
	struct {
		uint64_t gets_folded, hits_slow, misses, failures, retries;
		uint64_t not_hits;	/* atomic: references taken, then found not to cover */
		uint64_t registrations, deregistrations, invalidations;
		uint64_t invalidate_waits, evictions, over_limit, bytes_registered;
		uint64_t put_errors;	/* puts found in excess (misuse), refused */
	} st;
	size_t priv_off[MMN_RCACHE_MAX_DEVS];
	struct mmn_rcache_dev devs[MMN_RCACHE_MAX_DEVS];
};

/* ---- small helpers ----------------------------------------------------- */

static void link_init(struct rc_link *h)
{
	h->prev = h->next = h;
}

static void link_add_tail(struct rc_link *h, struct rc_link *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void link_del(struct rc_link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define lru_region(l) mmn_container_of(l, struct rc_region, lru)
#define all_region(l) mmn_container_of(l, struct rc_region, all)

static unsigned int rc_state(const struct rc_region *r)
{
	return __atomic_load_n(&r->state, __ATOMIC_RELAXED);
}

static void rc_set_state(struct rc_region *r, unsigned int s)
{
	__atomic_store_n(&r->state, s, __ATOMIC_RELAXED);
}

static void *rc_priv(struct mmn_rcache *c, struct rc_region *r, unsigned int i)
{
	return (unsigned char *)r + c->priv_off[i];
}

/*
 * The calling thread's reference slot: its CPU's (an rseq read in glibc).
 * -1 (no CPU number) and CPUs beyond the slots share slots: only the sums
 * count, so sharing costs speed, never correctness.
 */
static inline unsigned int rc_slot_index(void)
{
	return (unsigned int)sched_getcpu() & (rc_nslots - 1);
}

/* Slot @s's share of @r's references. */
static inline struct rc_ref *rc_ref(const struct rc_region *r, unsigned int s)
{
	return (struct rc_ref *)((char *)r->ref + (size_t)s * REF_STRIDE);
}

/* One slot per CPU the system may have, up to RC_MAX_SLOTS (pthread_once). */
static void rc_slots_init(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	unsigned int slots = 1;

	while (slots < RC_MAX_SLOTS && (long)slots < n)
		slots <<= 1;
	rc_nslots = slots;
}

/* Holders of @r: references taken less those dropped, over every slot. */
static uint64_t rc_holders(const struct rc_region *r)
{
	uint64_t gets = 0, puts = 0;

	for (unsigned int i = 0; i < rc_nslots; i++) {
		gets += __atomic_load_n(&rc_ref(r, i)->gets, __ATOMIC_SEQ_CST) >> 1;
		puts += __atomic_load_n(&rc_ref(r, i)->puts, __ATOMIC_SEQ_CST);
	}
	return gets - puts;
}

/*
 * Holders of @r, and puts in excess of the gets refused. Lock held, INVALID
 * in every slot (or @r not LIVE, which implies it): then no get can add to
 * the sum, every put counted is a put that happened, and a sum below zero
 * means more puts than gets -- a double put, a put of a registration never
 * got, or one put again after its invalidation. Those puts are taken back
 * (through @s, any slot does: only the sum counts), counted and reported, so
 * a misuse cannot keep the region held forever (never evicted, never
 * collected, destroy -EBUSY) nor wrap its count. Without INVALID a sum of
 * separately read slots can dip below zero with correct use (a get read
 * before it happened, its put after), so it is only checked here.
 */
static uint64_t rc_holders_checked_locked(struct mmn_rcache *c, struct rc_region *r,
					  unsigned int s)
{
	int64_t h = (int64_t)rc_holders(r);
	struct mmn_log_record rec;

	if (likely(h >= 0))
		return (uint64_t)h;
	__atomic_fetch_sub(&rc_ref(r, s)->puts, (uint64_t)-h, __ATOMIC_SEQ_CST);
	c->st.put_errors += (uint64_t)-h;
	rec = (struct mmn_log_record){
		.level = MMN_LOG_ERROR,
		.what = "mmn_rcache_put: registration not held (put twice, never got, "
			"or put again after its invalidation); put refused",
		.start = r->start, .end = r->end,
	};
	mmn_log(&rec);
	return 0;
}

/* References ever taken on this incarnation of @r (hits, and its miss's). */
static uint64_t rc_gets(const struct rc_region *r)
{
	uint64_t gets = 0;

	for (unsigned int i = 0; i < rc_nslots; i++)
		gets += __atomic_load_n(&rc_ref(r, i)->gets, __ATOMIC_RELAXED) >> 1;
	return gets;
}

/* INVALID into every slot: no get takes a reference from now on. Lock held. */
static void rc_set_invalid(struct rc_region *r)
{
	for (unsigned int i = 0; i < rc_nslots; i++)
		__atomic_fetch_or(&rc_ref(r, i)->gets, REF_INVALID, __ATOMIC_SEQ_CST);
}

/* Undo rc_set_invalid() on a region that turned out to be held. Lock held. */
static void rc_clear_invalid(struct rc_region *r)
{
	for (unsigned int i = 0; i < rc_nslots; i++)
		__atomic_fetch_and(&rc_ref(r, i)->gets, ~REF_INVALID, __ATOMIC_SEQ_CST);
}

/*
 * A new incarnation: @holders references (taken through slot 0), INVALID or
 * not. Release: pairs with rc_tryget()'s acquire (see rc_publish_locked()).
 * Lock held, no holder, no get possible (INVALID until now).
 */
static void rc_set_refs(struct rc_region *r, uint64_t holders, bool invalid)
{
	for (unsigned int i = rc_nslots; i-- > 0;) {
		__atomic_store_n(&rc_ref(r, i)->puts, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&rc_ref(r, i)->gets,
				 (i ? 0 : holders * REF_ONE) | (invalid ? REF_INVALID : 0),
				 __ATOMIC_RELEASE);
	}
}

/* The region's hits into the cache's counter, before it is reset. Lock held. */
static void rc_fold_locked(struct mmn_rcache *c, struct rc_region *r)
{
	c->st.gets_folded += rc_gets(r);
}

/* ---- devices ----------------------------------------------------------- */

/* Register on every device; on failure undo those done. */
static int rc_reg_all(struct mmn_rcache *c, struct rc_region *r)
{
	unsigned long len = r->end - r->start;
	unsigned int i;
	int err = 0;

	for (i = 0; i < c->nr_devs; i++) {
		memset(rc_priv(c, r, i), 0, c->devs[i].priv_size);
		err = c->devs[i].ops->reg(c->devs[i].dev, r->start, len, rc_priv(c, r, i));
		if (err)
			break;
	}
	if (!err)
		return 0;
	while (i--) {
		const struct mmn_rcache_dev *d = &c->devs[i];

		d->ops->dereg_start(d->dev, rc_priv(c, r, i));
		if (d->ops->dereg_finish)
			d->ops->dereg_finish(d->dev, rc_priv(c, r, i));
	}
	return err < 0 ? err : -EIO;
}

static void rc_dereg_start(struct mmn_rcache *c, struct rc_region *r)
{
	for (unsigned int i = 0; i < c->nr_devs; i++)
		c->devs[i].ops->dereg_start(c->devs[i].dev, rc_priv(c, r, i));
}

static void rc_dereg_finish(struct mmn_rcache *c, struct rc_region *r)
{
	for (unsigned int i = 0; i < c->nr_devs; i++)
		if (c->devs[i].ops->dereg_finish)
			c->devs[i].ops->dereg_finish(c->devs[i].dev, rc_priv(c, r, i));
}

/* Device after device: what a single-pass notifier does. */
static void rc_dereg_serial(struct mmn_rcache *c, struct rc_region *r)
{
	for (unsigned int i = 0; i < c->nr_devs; i++) {
		const struct mmn_rcache_dev *d = &c->devs[i];

		d->ops->dereg_start(d->dev, rc_priv(c, r, i));
		if (d->ops->dereg_finish)
			d->ops->dereg_finish(d->dev, rc_priv(c, r, i));
	}
}

/* Two passes over a batch linked by ->next: start everything, then finish. */
static void rc_dereg_batch(struct mmn_rcache *c, struct rc_region *batch)
{
	if (c->flags & MMN_RCACHE_SINGLE_PASS) {
		for (struct rc_region *r = batch; r; r = r->next)
			rc_dereg_serial(c, r);
		return;
	}
	for (struct rc_region *r = batch; r; r = r->next)
		rc_dereg_start(c, r);
	for (struct rc_region *r = batch; r; r = r->next)
		rc_dereg_finish(c, r);
}

/* ---- region life ------------------------------------------------------- */

/* Debug builds (MMN_DEBUG >= 2): the whole index after every change. */
static void rc_check_locked(struct mmn_rcache *c)
{
#if defined(MMN_DEBUG) && MMN_DEBUG >= 2
	if (rtree_check(&c->tree) != (long)c->nr_live)
		abort();
#else
	(void)c;
#endif
}

/* LIVE -> DEREG: no new reference, out of the index. Lock held, INVALID set. */
static void rc_kill_locked(struct mmn_rcache *c, struct rc_region *r)
{
	rtree_erase(&c->tree, &r->node);
	link_del(&r->lru);
	rc_set_state(r, RC_DEREG);
	r->owner = pthread_self();
	c->nr_live--;
	c->bytes_live -= r->end - r->start;
	c->nr_dead++;
	rc_check_locked(c);
}

/* DEREG -> DEAD once every device finished; queue for collection if unused. */
static void rc_dead(struct mmn_rcache *c, struct rc_region *r, bool queue)
{
	pthread_mutex_lock(&c->lock);
	rc_set_state(r, RC_DEAD);
	c->st.deregistrations++;
	if (!rc_holders_checked_locked(c, r, 0) && queue && !r->on_gc) {
		r->on_gc = true;
		r->next = c->gc;
		c->gc = r;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* A block of reference pages, zeroed; the caller links it. */
static struct rc_refblock *rc_refblock_new(void)
{
	struct rc_refblock *b = malloc(sizeof(*b));
	size_t size = (size_t)rc_nslots * REF_STRIDE;

	if (!b)
		return NULL;
	b->pages = aligned_alloc(REF_STRIDE, size);
	if (!b->pages) {
		free(b);
		return NULL;
	}
	memset(b->pages, 0, size);
	b->used = 0;
	b->next = NULL;
	return b;
}

static void rc_refblock_free(struct rc_refblock *b)
{
	if (b) {
		free(b->pages);
		free(b);
	}
}

/* Take a region from the slab; the caller owns it (PENDING, INVALID). */
static struct rc_region *rc_alloc(struct mmn_rcache *c)
{
	struct rc_refblock *spare = NULL;
	struct rc_region *r;
	struct rc_chunk *ch;
	struct rc_ref *refs;

	pthread_mutex_lock(&c->lock);
	r = c->free;
	if (r)
		c->free = r->next;
	pthread_mutex_unlock(&c->lock);
	if (r)
		return r;

	/* Grow outside the lock: malloc may end up in a notifier callback. */
	ch = aligned_alloc(64, sizeof(*ch) + CHUNK_REGIONS * c->region_size);
	if (!ch)
		return NULL;
	memset(ch, 0, sizeof(*ch) + CHUNK_REGIONS * c->region_size);
	pthread_mutex_lock(&c->lock);
	/* The chunk's references: the rest of the newest block, or a new one. */
	while (!c->refs || c->refs->used + CHUNK_REGIONS > REF_BLOCK_REGIONS) {
		if (spare) {
			spare->next = c->refs;
			c->refs = spare;
			spare = NULL;
			continue;
		}
		pthread_mutex_unlock(&c->lock);
		spare = rc_refblock_new();
		if (!spare) {
			free(ch);
			return NULL;
		}
		pthread_mutex_lock(&c->lock);
	}
	refs = c->refs->pages + c->refs->used;
	c->refs->used += CHUNK_REGIONS;
	for (unsigned int i = 0; i < CHUNK_REGIONS; i++) {
		struct rc_region *x = (struct rc_region *)(ch->mem + i * c->region_size);

		x->ref = refs + i;
		rc_set_refs(x, 0, true);
		x->cache = c;
		link_init(&x->lru);
		link_init(&x->all);
	}
	ch->next = c->chunks;
	c->chunks = ch;
	for (unsigned int i = 1; i < CHUNK_REGIONS; i++) {
		struct rc_region *x = (struct rc_region *)(ch->mem + i * c->region_size);

		x->next = c->free;
		c->free = x;
	}
	pthread_mutex_unlock(&c->lock);
	rc_refblock_free(spare);	/* another thread linked one meanwhile */
	return (struct rc_region *)ch->mem;
}

/*
 * Back to the slab. The memory stays a region (lock-free readers may still
 * look at it): INVALID keeps them from taking a reference.
 */
static void rc_free_locked(struct mmn_rcache *c, struct rc_region *r)
{
	rc_fold_locked(c, r);
	rc_set_refs(r, 0, true);
	if (r->all.next != &r->all)
		link_del(&r->all);
	if (rc_state(r) == RC_DEREG || rc_state(r) == RC_DEAD)
		c->nr_dead--;
	rc_set_state(r, RC_FREE);
	r->on_gc = false;
	r->next = c->free;
	c->free = r;
}

/*
 * Remove the notifiers of a batch of DEAD (or failed PENDING) regions and
 * free them. From inside a callback of the same domain remove() refuses
 * (-EDEADLK): such regions go back on the gc list for later.
 *
 * Every region of a batch has on_gc set (by whoever took it into the batch,
 * under the lock) until it is freed: remove() may wait for an invalidation
 * period whose callbacks reach the same region again, and rc_dead() or
 * rc_put_last() must not queue it on the gc list meanwhile -- r->next links
 * the batch, and the region is about to be freed.
 */
static int rc_release_batch(struct mmn_rcache *c, struct rc_region *batch)
{
	int n = 0;

	while (batch) {
		struct rc_region *r = batch;
		int err;

		batch = r->next;
		err = mmn_interval_notifier_remove(&r->sub);
		pthread_mutex_lock(&c->lock);
		if (err == -EDEADLK) {
			r->on_gc = true;
			r->next = c->gc;
			c->gc = r;
		} else {
			rc_free_locked(c, r);
			n++;
		}
		pthread_mutex_unlock(&c->lock);
	}
	return n;
}

/* Collect the dead regions nobody holds. */
static int rc_collect(struct mmn_rcache *c)
{
	struct rc_region *batch;

	pthread_mutex_lock(&c->lock);
	batch = c->gc;	/* on_gc stays set: see rc_release_batch() */
	c->gc = NULL;
	pthread_mutex_unlock(&c->lock);
	return rc_release_batch(c, batch);
}

static bool rc_over_limit_locked(struct mmn_rcache *c, unsigned long add_bytes)
{
	return (c->max_regions && c->nr_live + 1 > c->max_regions) ||
	       (c->max_bytes && c->bytes_live + add_bytes > c->max_bytes);
}

/*
 * Evict unused LIVE regions, oldest first with a second chance for those hit
 * since the hand last passed (the clock approximation of LRU, as the kernel's
 * page reclaim: a hit only sets a bit, it never takes a lock). @all: evict
 * every unused region, ignoring the limits and the bits. Returns how many.
 */
static int rc_evict(struct mmn_rcache *c, unsigned long add_bytes, bool all)
{
	struct rc_region *batch = NULL;
	unsigned long budget;
	int n = 0;

	pthread_mutex_lock(&c->lock);
	budget = 2 * c->nr_live + 1;
	while ((all || rc_over_limit_locked(c, add_bytes)) && budget-- &&
	       c->lru.next != &c->lru) {
		struct rc_region *r = lru_region(c->lru.next);
		/* Below zero may be a misuse (or a moment's skew): look closer. */
		bool held = (int64_t)rc_holders(r) > 0;

		link_del(&r->lru);
		if (!held && (all || !__atomic_exchange_n(&r->referenced, 0, __ATOMIC_RELAXED))) {
			/* Close the door, then look again: a get may have come in. */
			rc_set_invalid(r);
			held = rc_holders_checked_locked(c, r, 0);
			if (held)
				rc_clear_invalid(r);
			else
				goto evict;
		}
		link_add_tail(&c->lru, &r->lru);	/* in use, or hit lately */
		continue;
evict:
		link_add_tail(&c->lru, &r->lru);	/* rc_kill_locked unlinks it */
		rc_kill_locked(c, r);
		c->st.evictions++;
		r->on_gc = true;	/* in a batch: see rc_release_batch() */
		r->next = batch;
		batch = r;
		n++;
	}
	if (!all && rc_over_limit_locked(c, add_bytes))
		c->st.over_limit++;
	pthread_mutex_unlock(&c->lock);

	if (!batch)
		return 0;
	rc_dereg_batch(c, batch);
	for (struct rc_region *r = batch; r; r = r->next)
		rc_dead(c, r, false);
	rc_release_batch(c, batch);
	return n;
}

/* ---- notifier callbacks ------------------------------------------------ */

static bool rc_event_ignored(const struct mmn_rcache *c, enum mmn_event event)
{
	if (c->flags & MMN_RCACHE_INVALIDATE_PROTECTION)
		return false;
	/* Pinned pages stay the same pages when only their protection changes. */
	return event == MMN_EVENT_PROTECTION_VMA || event == MMN_EVENT_PROTECTION_PAGE ||
	       event == MMN_EVENT_SOFT_DIRTY;
}

/*
 * First pass: take the region out of the cache and start deregistering it on
 * every device. A region that another thread is deregistering (eviction, an
 * overlapping invalidation) is waited for here: the unmapping call must not
 * proceed while a device holds the pages. A PENDING region only gets the new
 * sequence: its miss path sees the collision and starts again.
 */
static bool rc_invalidate_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
				unsigned long cur_seq, struct mmn_finish **finish)
{
	struct rc_region *r = mmn_container_of(sub, struct rc_region, sub);
	struct mmn_rcache *c = r->cache;
	bool blockable = mmn_range_blockable(range);

	if (rc_event_ignored(c, range->event))
		return true;
	if (blockable)
		pthread_mutex_lock(&c->lock);
	else if (pthread_mutex_trylock(&c->lock))
		return false;
	mmn_interval_set_seq(sub, cur_seq);
	for (;;) {
		unsigned int state = rc_state(r);
		bool mine = pthread_equal(r->owner, pthread_self());

		if (state == RC_LIVE)
			break;
		if (state != RC_DEREG || mine) {
			/* Nothing published, or our own thread is undoing it. */
			pthread_mutex_unlock(&c->lock);
			return true;
		}
		if (!blockable) {
			pthread_mutex_unlock(&c->lock);
			return false;
		}
		c->st.invalidate_waits++;
		/* A callback: the core runs it with cancellation disabled. */
		pthread_cond_wait(&c->cond, &c->lock);
	}
	if (!blockable) {
		/* Deregistering may sleep. */
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	rc_set_invalid(r);
	rc_kill_locked(c, r);
	c->st.invalidations++;
	pthread_mutex_unlock(&c->lock);

	if (c->flags & MMN_RCACHE_SINGLE_PASS) {
		rc_dereg_serial(c, r);
		rc_dead(c, r, true);
		return true;
	}
	rc_dereg_start(c, r);
	*finish = &r->finish;
	return true;
}

/* Second pass: every device of every hit region has started; now wait. */
static void rc_invalidate_finish(struct mmn_finish *finish)
{
	struct rc_region *r = mmn_container_of(finish, struct rc_region, finish);
	struct mmn_rcache *c = r->cache;

	rc_dereg_finish(c, r);
	rc_dead(c, r, true);
}

static const struct mmn_interval_notifier_ops rc_notifier_ops = {
	.invalidate_start = rc_invalidate_start,
	.invalidate_finish = rc_invalidate_finish,
};

/* ---- get / put --------------------------------------------------------- */

static inline struct rc_hint *rc_hint_set(struct mmn_rcache *c, unsigned long addr)
{
	/* A real mix: Fibonacci hashing alone clusters strided buffers. */
	uint64_t h = (uint64_t)(addr >> c->page_shift) * UINT64_C(0x9e3779b97f4a7c15);

	h ^= h >> 32;
	h *= UINT64_C(0xd6e8feb86659fd93);
	return &c->hint[h >> (64 - HINT_BITS)];
}

/*
 * Make @r the set's most recent way (racy between threads, and harmless).
 * Release stores, acquire loads: whoever finds a region through the table
 * also sees how the region's memory was first set up (a new slab chunk).
 */
static inline void rc_hint_fill(struct rc_hint *h, struct rc_region *r)
{
	struct rc_region *w0 = __atomic_load_n(&h->way[0], __ATOMIC_ACQUIRE);

	if (w0 != r) {
		__atomic_store_n(&h->way[1], w0, __ATOMIC_RELEASE);
		__atomic_store_n(&h->way[0], r, __ATOMIC_RELEASE);
	}
}

static inline bool rc_covers(const struct rc_region *r, unsigned long addr, unsigned long last)
{
	return rnode_start(&r->node) <= addr && rnode_last(&r->node) >= last;
}

/* A reference through slot @s unless the region is INVALID. */
static inline bool rc_tryget(struct rc_region *r, unsigned int s)
{
	uint64_t v = __atomic_load_n(&rc_ref(r, s)->gets, __ATOMIC_RELAXED);

	do {
		if (unlikely(v & REF_INVALID))
			return false;
		/* Acquire: pairs with the release that published this incarnation. */
	} while (!__atomic_compare_exchange_n(&rc_ref(r, s)->gets, &v, v + REF_ONE, true,
					      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	return true;
}

/*
 * A put through an INVALID slot: maybe the last holder of an invalidated
 * region (queue it for collection), maybe a put in excess (refused: see
 * rc_holders_checked_locked()). A LIVE region here is one that eviction
 * looked at and found held: nothing to do.
 */
__attribute__((noinline, cold)) static void rc_put_last(struct rc_region *r, unsigned int s)
{
	struct mmn_rcache *c = r->cache;
	unsigned int state;

	pthread_mutex_lock(&c->lock);
	state = rc_state(r);
	if (state == RC_LIVE) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (!rc_holders_checked_locked(c, r, s) && state == RC_DEAD && !r->on_gc) {
		r->on_gc = true;
		r->next = c->gc;
		c->gc = r;
	}
	/* DEREG: rc_dead() queues it once the devices are done. */
	pthread_mutex_unlock(&c->lock);
}

/* Drop a reference through slot @s (any slot: only the sum counts). */
static void rc_put_ref(struct rc_region *r, unsigned int s)
{
	/*
	 * Release: the holder's use of the registration happens before its
	 * end. Sequentially consistent with the load after it: see the top of
	 * this file.
	 */
	__atomic_fetch_add(&rc_ref(r, s)->puts, 1, __ATOMIC_SEQ_CST);
	/* Maybe the last holder: only the sums under the lock can tell. */
	if (unlikely(__atomic_load_n(&rc_ref(r, s)->gets, __ATOMIC_SEQ_CST) & REF_INVALID))
		rc_put_last(r, s);
}

void mmn_rcache_put(struct mmn_rcache_reg *reg)
{
	if (reg)
		rc_put_ref((struct rc_region *)reg, rc_slot_index());
}

/* Publish a registered PENDING region. Lock held. */
static void rc_publish_locked(struct mmn_rcache *c, struct rc_region *r)
{
	rc_set_state(r, RC_LIVE);
	/* Not "referenced" yet: only a later hit gives it a second chance. */
	__atomic_store_n(&r->referenced, 0, __ATOMIC_RELAXED);
	/*
	 * Bounds first, then the reference (release, pairs with rc_tryget()'s
	 * acquire): a reader holding a stale pointer that gets a reference on
	 * this new incarnation also sees its new bounds, and checks them.
	 */
	rtree_insert(&c->tree, &r->node, r->start, r->end - 1);
	rc_set_refs(r, 1, false);
	link_add_tail(&c->lru, &r->lru);
	c->nr_live++;
	c->bytes_live += r->end - r->start;
	c->st.misses++;
	c->st.registrations++;
	c->st.bytes_registered += r->end - r->start;
	rc_check_locked(c);
}

/* Under the lock: a hit found by the exact search, or NULL. */
static struct rc_region *rc_lookup_locked(struct mmn_rcache *c, unsigned long addr,
					  unsigned long last, int *err)
{
	struct rnode *n = rtree_find_cover(&c->tree, addr, last);
	struct rc_region *r;
	unsigned int s;

	*err = 0;
	if (!n)
		return NULL;
	r = mmn_container_of(n, struct rc_region, node);
	s = rc_slot_index();
	if (!rc_tryget(r, s))
		return NULL;	/* cannot happen for a LIVE region */
	__atomic_store_n(&r->referenced, 1, __ATOMIC_RELAXED);
	c->st.hits_slow++;
	return r;
}

/*
 * The miss path: register [start, end) under the collision-retry protocol
 * (see the top of this file). Returns 0 with a published, held region.
 */
static int rc_register(struct mmn_rcache *c, unsigned long start, unsigned long end,
		       struct rc_region **rp)
{
	struct rc_region *r = rc_alloc(c);
	unsigned long seq;
	int err;

	if (!r)
		return -ENOMEM;
	r->start = start;
	r->end = end;
	r->on_gc = false;
	__atomic_store_n(&r->referenced, 0, __ATOMIC_RELAXED);
	rc_set_state(r, RC_PENDING);

	if (c->process)
		err = mmn_process_insert(&r->sub, start, end - start, &rc_notifier_ops);
	else
		err = mmn_interval_notifier_insert(&r->sub, c->mm, start, end - start,
						   &rc_notifier_ops);
	pthread_mutex_lock(&c->lock);
	if (err) {
		rc_free_locked(c, r);
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	link_add_tail(&c->all, &r->all);
	pthread_mutex_unlock(&c->lock);

	for (;;) {
		/* Waits while an invalidation of the range is in progress. */
		seq = mmn_interval_read_begin(&r->sub);
		err = rc_reg_all(c, r);
		pthread_mutex_lock(&c->lock);
		if (!mmn_interval_read_retry(&r->sub, seq)) {
			if (!err) {
				rc_publish_locked(c, r);
				pthread_mutex_unlock(&c->lock);
				*rp = r;
				return 0;
			}
			pthread_mutex_unlock(&c->lock);
			break;
		}
		/*
		 * Collided: what we registered may be the old pages, and a
		 * failure may be the unmap's doing. Undo, and again.
		 */
		c->st.retries++;
		if (!err) {
			c->st.registrations++;
			c->st.deregistrations++;
			c->st.bytes_registered += end - start;
		}
		pthread_mutex_unlock(&c->lock);
		if (!err) {
			r->next = NULL;
			rc_dereg_batch(c, r);
		}
	}

	/* A device refused: nothing is registered. */
	pthread_mutex_lock(&c->lock);
	r->on_gc = true;	/* in a batch: see rc_release_batch() */
	pthread_mutex_unlock(&c->lock);
	r->next = NULL;
	rc_release_batch(c, r);
	return err;
}

static int rc_get_slow(struct mmn_rcache *c, unsigned long addr, unsigned long last,
		       struct rc_region **regp)
{
	unsigned long align = c->alignment, start, end;
	struct rc_region *r;
	int err;

	pthread_mutex_lock(&c->lock);
	r = rc_lookup_locked(c, addr, last, &err);
	pthread_mutex_unlock(&c->lock);
	if (r || err) {
		*regp = r;
		return err;
	}

	rc_collect(c);
	for (;;) {
		start = addr & ~(align - 1);
		end = (last | (align - 1)) + 1;
		if (!end)	/* the top of the address space */
			end = (last | (c->page_size - 1)) + 1;
		if (!end)
			return -EOVERFLOW;
		rc_evict(c, end - start, false);
		err = rc_register(c, start, end, &r);
		if (!err) {
			*regp = r;
			return 0;
		}
		if (align == c->page_size)
			break;
		align = c->page_size;	/* the widened range may reach unmapped memory */
	}
	pthread_mutex_lock(&c->lock);
	c->st.failures++;
	pthread_mutex_unlock(&c->lock);
	return err;
}

/*
 * A reference on @r if it covers [addr, last] and is not INVALID. The first
 * bounds check spares the atomic operation on regions that cannot do; the
 * second one, under the reference, is the one that counts (@r may have been
 * freed and reused since we found it).
 */
static inline struct rc_region *rc_try_hit(struct rc_region *r, unsigned long addr,
					   unsigned long last, unsigned int s)
{
	if (!rc_covers(r, addr, last) || !rc_tryget(r, s))
		return NULL;
	if (likely(rc_covers(r, addr, last)))
		return r;
	/* Not a hit after all: the reference went to a recycled region. */
	__atomic_fetch_add(&r->cache->st.not_hits, 1, __ATOMIC_RELAXED);
	rc_put_ref(r, s);
	return NULL;
}

int mmn_rcache_get(struct mmn_rcache *c, unsigned long addr, unsigned long len,
		   struct mmn_rcache_reg **regp)
{
	unsigned long last = addr + len - 1;
	struct rc_region *r, *w;
	struct rc_hint *h;
	struct rnode *n;
	unsigned int s;
	int err;

	if (unlikely(!c || !regp || !len))
		return -EINVAL;
	if (unlikely(last < addr))
		return -EOVERFLOW;

	/* The hit path: no lock. The hint table first, then the tree. */
	s = rc_slot_index();
	h = rc_hint_set(c, addr);
	w = __atomic_load_n(&h->way[0], __ATOMIC_ACQUIRE);
	if (likely(w) && (r = rc_try_hit(w, addr, last, s)))
		goto hit;
	w = __atomic_load_n(&h->way[1], __ATOMIC_ACQUIRE);
	if (w && (r = rc_try_hit(w, addr, last, s)))
		goto hit;
	n = rtree_find_cover(&c->tree, addr, last);
	if (n && (r = rc_try_hit(mmn_container_of(n, struct rc_region, node), addr, last, s)))
		goto fill;
	err = rc_get_slow(c, addr, last, &r);
	if (err)
		return err;
	rc_hint_fill(h, r);
	*regp = (struct mmn_rcache_reg *)r;
	return 0;
fill:
	rc_hint_fill(h, r);
hit:
	/* The clock bit: a second chance at eviction time (no lock, no list move). */
	if (!__atomic_load_n(&r->referenced, __ATOMIC_RELAXED))
		__atomic_store_n(&r->referenced, 1, __ATOMIC_RELAXED);
	*regp = (struct mmn_rcache_reg *)r;
	return 0;
}

/* ---- cache ------------------------------------------------------------- */

int mmn_rcache_new(const struct mmn_rcache_config *cfg, struct mmn_rcache **cachep)
{
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	struct mmn_rcache *c;
	size_t off;
	int err;

	if (!cfg || !cachep || !cfg->devs || !cfg->nr_devs || cfg->nr_devs > MMN_RCACHE_MAX_DEVS)
		return -EINVAL;
	if (cfg->alignment && (cfg->alignment & (cfg->alignment - 1) || cfg->alignment < page))
		return -EINVAL;
	for (unsigned int i = 0; i < cfg->nr_devs; i++)
		if (!cfg->devs[i].ops || !cfg->devs[i].ops->reg || !cfg->devs[i].ops->dereg_start)
			return -EINVAL;

	pthread_once(&rc_slots_once, rc_slots_init);
	c = aligned_alloc(64, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->mm = cfg->mm;
	if (!c->mm) {
		err = mmn_process_mm(&c->mm);
		if (err) {
			free(c);
			return err;
		}
		c->process = true;
	}
	rtree_init(&c->tree, (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15u);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->flags = cfg->flags;
	c->nr_devs = cfg->nr_devs;
	c->page_size = page;
	c->page_shift = (unsigned int)__builtin_ctzl(page);
	c->alignment = cfg->alignment ? cfg->alignment : page;
	c->max_regions = cfg->max_regions;
	c->max_bytes = cfg->max_bytes;
	link_init(&c->lru);
	link_init(&c->all);

	off = offsetof(struct rc_region, priv);
	for (unsigned int i = 0; i < cfg->nr_devs; i++) {
		c->devs[i] = cfg->devs[i];
		c->priv_off[i] = off;
		off += (cfg->devs[i].priv_size + 15) & ~(size_t)15;
	}
	c->region_size = (off + 63) & ~(size_t)63;
	*cachep = c;
	return 0;
}

int mmn_rcache_flush(struct mmn_rcache *c)
{
	int n;

	if (!c)
		return -EINVAL;
	n = rc_evict(c, 0, true);
	return n + rc_collect(c);
}

int mmn_rcache_destroy(struct mmn_rcache *c)
{
	struct rc_region *batch = NULL;
	struct rc_link *l;
	int cancel_state;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (l = c->all.next; l != &c->all; l = l->next) {
		struct rc_region *r = all_region(l);

		if (rc_state(r) == RC_PENDING ||
		    (rc_state(r) == RC_LIVE ? (int64_t)rc_holders(r) > 0
					    : rc_holders_checked_locked(c, r, 0) > 0)) {
			pthread_mutex_unlock(&c->lock);
			return -EBUSY;
		}
	}
	/*
	 * Invalidations still finishing on other threads. Not a cancellation
	 * point: a thread cancelled in the wait would die holding c->lock, and
	 * every callback of the cache would then hang.
	 */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	for (l = c->all.next; l != &c->all;) {
		if (rc_state(all_region(l)) == RC_DEREG) {
			pthread_cond_wait(&c->cond, &c->lock);
			l = c->all.next;
			continue;
		}
		l = l->next;
	}
	pthread_setcancelstate(cancel_state, NULL);
	while (c->lru.next != &c->lru) {
		struct rc_region *r = lru_region(c->lru.next);

		rc_set_invalid(r);
		rc_kill_locked(c, r);
		r->on_gc = true;	/* in a batch: see rc_release_batch() */
		r->next = batch;
		batch = r;
	}
	pthread_mutex_unlock(&c->lock);

	rc_dereg_batch(c, batch);
	for (struct rc_region *r = batch; r; r = r->next)
		rc_dead(c, r, false);

	/* Every region left is DEAD: remove the notifiers. */
	pthread_mutex_lock(&c->lock);
	batch = NULL;
	while (c->all.next != &c->all) {
		struct rc_region *r = all_region(c->all.next);

		link_del(&r->all);
		r->on_gc = true;	/* in a batch: see rc_release_batch() */
		r->next = batch;
		batch = r;
	}
	c->gc = NULL;
	pthread_mutex_unlock(&c->lock);
	rc_release_batch(c, batch);

	while (c->chunks) {
		struct rc_chunk *ch = c->chunks;

		c->chunks = ch->next;
		free(ch);
	}
	while (c->refs) {
		struct rc_refblock *b = c->refs;

		c->refs = b->next;
		rc_refblock_free(b);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return 0;
}

int mmn_rcache_get_stats(struct mmn_rcache *c, struct mmn_rcache_stats *st)
{
	uint64_t hits;

	if (!c || !st)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	/* Every reference taken, less the one each miss hands out, less the false hits. */
	hits = c->st.gets_folded;
	for (struct rc_link *l = c->all.next; l != &c->all; l = l->next)
		hits += rc_gets(all_region(l));
	hits -= c->st.misses + __atomic_load_n(&c->st.not_hits, __ATOMIC_RELAXED);
	*st = (struct mmn_rcache_stats){
		.hits = hits,
		.hits_slow = c->st.hits_slow,
		.misses = c->st.misses,
		.failures = c->st.failures,
		.retries = c->st.retries,
		.registrations = c->st.registrations,
		.deregistrations = c->st.deregistrations,
		.invalidations = c->st.invalidations,
		.invalidate_waits = c->st.invalidate_waits,
		.evictions = c->st.evictions,
		.over_limit = c->st.over_limit,
		.bytes_registered = c->st.bytes_registered,
		.regions = c->nr_live,
		.bytes = c->bytes_live,
		.dead = c->nr_dead,
		.put_errors = c->st.put_errors,
	};
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---- registrations ----------------------------------------------------- */

unsigned long mmn_rcache_reg_start(const struct mmn_rcache_reg *reg)
{
	return ((const struct rc_region *)reg)->start;
}

unsigned long mmn_rcache_reg_length(const struct mmn_rcache_reg *reg)
{
	const struct rc_region *r = (const struct rc_region *)reg;

	return r->end - r->start;
}

void *mmn_rcache_reg_priv(struct mmn_rcache_reg *reg, unsigned int dev)
{
	struct rc_region *r = (struct rc_region *)reg;
	struct mmn_rcache *c;

	if (!r)
		return NULL;
	c = r->cache;
	if (dev >= c->nr_devs || !c->devs[dev].priv_size)
		return NULL;
	return rc_priv(c, r, dev);
}

bool mmn_rcache_reg_valid(const struct mmn_rcache_reg *reg)
{
	/*
	 * The state, not the INVALID bit: eviction sets INVALID for a moment
	 * on a region it then finds held, and a held region stays LIVE until
	 * an invalidation kills it.
	 */
	return reg && rc_state((const struct rc_region *)reg) == RC_LIVE;
}
