/* SPDX-License-Identifier: MIT */
/*
 * rtree: an augmented interval treap that one writer changes (under the
 * cache lock) while readers search it without any lock.
 *
 * Readers may see the tree mid-rotation. Three rules keep that safe:
 *  - nodes are type-stable: they live in the cache's slab and are never
 *    returned to malloc while the cache exists, so any pointer a reader loads
 *    points to a node (or is NULL);
 *  - every field a reader loads is read and written with __atomic builtins;
 *    a new node is linked with a release store after its fields are set;
 *  - a rotation detaches before it reattaches, so no cycle ever forms (and the
 *    lock-free search is bounded anyway).
 * A lock-free search may therefore miss a node or return one that was just
 * removed: callers validate the result (reference, state, bounds) and fall
 * back to a locked search. The locked search is exact.
 */
#ifndef MMN_RCACHE_RTREE_H
#define MMN_RCACHE_RTREE_H

#include <stdbool.h>
#include <stdint.h>

struct rnode {
	struct rnode *left;		/* atomic */
	struct rnode *right;		/* atomic */
	unsigned long start;		/* atomic: first address */
	unsigned long last;		/* atomic: last address (inclusive) */
	unsigned long subtree_last;	/* atomic: max of last in this subtree */
	uint32_t prio;			/* writer only: heap priority */
};

struct rtree {
	struct rnode *root;		/* atomic */
	uint64_t rng;			/* writer only: priority generator */
	unsigned long count;		/* writer only */
};

/* Steps a search takes before it gives up (far beyond a treap's real depth). */
#define RTREE_MAX_DEPTH 256

void rtree_init(struct rtree *t, uint64_t seed);

/* Writer side: the caller serialises all writers. @n->start/last are set. */
void rtree_insert(struct rtree *t, struct rnode *n, unsigned long start, unsigned long last);
void rtree_erase(struct rtree *t, struct rnode *n);

/*
 * A node whose [start, last] contains [first, last_wanted] (any one), or NULL.
 * Under the writer lock it is exact. Lock-free, the result is only a
 * candidate, and NULL may be a false miss.
 */
struct rnode *rtree_find_cover(const struct rtree *t, unsigned long first,
			       unsigned long last_wanted);

/* Writer-side check of order, heap and augmentation; returns the node count or -1. */
long rtree_check(const struct rtree *t);

static inline unsigned long rnode_start(const struct rnode *n)
{
	return __atomic_load_n(&n->start, __ATOMIC_RELAXED);
}

static inline unsigned long rnode_last(const struct rnode *n)
{
	return __atomic_load_n(&n->last, __ATOMIC_RELAXED);
}

#endif /* MMN_RCACHE_RTREE_H */
