// SPDX-License-Identifier: MIT
/*
 * rtree: the registration cache's interval index (see rtree.h for the rules
 * that let readers search it without a lock).
 *
 * A treap: a binary search tree on (start, node address) that is also a heap
 * on a random priority, so its expected depth is O(log n) with no balancing
 * metadata beyond the priority. Each node carries the maximum `last` of its
 * subtree, so a search for an interval containing [first, last] follows one
 * path from the root: O(depth).
 */
#include <stddef.h>

#include "rtree.h"

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define LOADR(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)
/* Pairs with LOAD() in readers: a reader that sees the pointer sees the node. */
#define PUBLISH(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define SET(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELAXED)

void rtree_init(struct rtree *t, uint64_t seed)
{
	t->root = NULL;
	t->rng = seed | 1;
	t->count = 0;
}

static uint32_t next_prio(struct rtree *t)
{
	uint64_t x = t->rng;	/* xorshift64 */

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	t->rng = x;
	return (uint32_t)(x >> 32);
}

/* Does a sort before b? Keys are (start, address): unique. */
static bool key_less(const struct rnode *a, const struct rnode *b)
{
	unsigned long as = LOADR(a->start), bs = LOADR(b->start);

	return as < bs || (as == bs && (uintptr_t)a < (uintptr_t)b);
}

static void update(struct rnode *n)
{
	unsigned long m = LOADR(n->last);
	struct rnode *l = LOADR(n->left), *r = LOADR(n->right);

	if (l && LOADR(l->subtree_last) > m)
		m = LOADR(l->subtree_last);
	if (r && LOADR(r->subtree_last) > m)
		m = LOADR(r->subtree_last);
	SET(n->subtree_last, m);
}

/*
 *      x            y
 *     / \          / \
 *    y   c  ->    a   x
 *   / \              / \
 *  a   b            b   c
 *
 * Detach first (x->left = b), then attach (y->right = x), then publish y: at
 * no moment can a reader go y -> x -> y. A reader at x meanwhile misses the
 * a-subtree: a false miss, which callers tolerate.
 */
static void rotate_right(struct rnode **link)
{
	struct rnode *x = *link, *y = LOADR(x->left);

	PUBLISH(x->left, LOADR(y->right));
	PUBLISH(y->right, x);
	update(x);
	update(y);
	PUBLISH(*link, y);
}

static void rotate_left(struct rnode **link)
{
	struct rnode *x = *link, *y = LOADR(x->right);

	PUBLISH(x->right, LOADR(y->left));
	PUBLISH(y->left, x);
	update(x);
	update(y);
	PUBLISH(*link, y);
}

static void insert_at(struct rnode **link, struct rnode *n)
{
	struct rnode *x = *link;

	if (!x) {
		PUBLISH(*link, n);
		return;
	}
	if (key_less(n, x)) {
		insert_at(&x->left, n);
		if (x->left->prio > x->prio) {
			rotate_right(link);
			return;	/* rotate_right updated both nodes */
		}
	} else {
		insert_at(&x->right, n);
		if (x->right->prio > x->prio) {
			rotate_left(link);
			return;
		}
	}
	update(x);
}

void rtree_insert(struct rtree *t, struct rnode *n, unsigned long start, unsigned long last)
{
	SET(n->left, NULL);
	SET(n->right, NULL);
	SET(n->start, start);
	SET(n->last, last);
	SET(n->subtree_last, last);
	n->prio = next_prio(t);
	insert_at(&t->root, n);
	t->count++;
}

/* Rotate @n (== *link) down until it has at most one child, then unlink it. */
static void remove_at(struct rnode **link, struct rnode *n)
{
	struct rnode *l = LOADR(n->left), *r = LOADR(n->right);

	if (!l || !r) {
		PUBLISH(*link, l ? l : r);
		return;
	}
	if (l->prio > r->prio) {
		rotate_right(link);
		remove_at(&(*link)->right, n);
	} else {
		rotate_left(link);
		remove_at(&(*link)->left, n);
	}
	update(*link);
}

static bool erase_at(struct rnode **link, struct rnode *n)
{
	struct rnode *x = *link;
	bool found;

	if (!x)
		return false;
	if (x == n) {
		remove_at(link, n);
		return true;
	}
	found = key_less(n, x) ? erase_at(&x->left, n) : erase_at(&x->right, n);
	if (found)
		update(x);
	return found;
}

void rtree_erase(struct rtree *t, struct rnode *n)
{
	if (erase_at(&t->root, n))
		t->count--;
	/*
	 * @n keeps its child pointers: a reader standing on it can still walk
	 * down (into live nodes), which is all the lock-free search needs.
	 */
}

/*
 * One root-to-leaf path. At a node that starts after @first, a cover can only
 * be on the left. At one that starts at or before it and does not reach
 * @want_last: every node of its left subtree starts at or before @first too,
 * so that subtree holds a cover exactly when its subtree_last reaches
 * @want_last -- then any node there reaching it will do ("inside": stop
 * comparing starts); otherwise a cover can only be on the right. Exact under
 * the lock; lock-free, a rotation may send it astray (a false miss).
 */
struct rnode *rtree_find_cover(const struct rtree *t, unsigned long first, unsigned long want_last)
{
	struct rnode *x = LOAD(((struct rtree *)t)->root), *l;
	unsigned int steps = 0;
	bool inside = false;

	while (x) {
		if (++steps > RTREE_MAX_DEPTH)
			return NULL;	/* a writer kept us busy: go locked */
		if (!inside && LOADR(x->start) > first) {
			x = LOAD(x->left);
			continue;
		}
		if (LOADR(x->last) >= want_last)
			return x;
		l = LOAD(x->left);
		if (l && LOADR(l->subtree_last) >= want_last) {
			x = l;
			inside = true;
			continue;
		}
		x = LOAD(x->right);
	}
	return NULL;
}

static long check_rec(const struct rnode *x, const struct rnode *lo, const struct rnode *hi)
{
	long l, r;
	unsigned long m;

	if (!x)
		return 0;
	if ((lo && !key_less(lo, x)) || (hi && !key_less(x, hi)))
		return -1;
	if ((x->left && x->left->prio > x->prio) || (x->right && x->right->prio > x->prio))
		return -1;
	m = x->last;
	if (x->left && x->left->subtree_last > m)
		m = x->left->subtree_last;
	if (x->right && x->right->subtree_last > m)
		m = x->right->subtree_last;
	if (m != x->subtree_last || x->start > x->last)
		return -1;
	l = check_rec(x->left, lo, x);
	r = check_rec(x->right, x, hi);
	return l < 0 || r < 0 ? -1 : l + r + 1;
}

long rtree_check(const struct rtree *t)
{
	long n = check_rec(t->root, NULL, NULL);

	return n == (long)t->count ? n : -1;
}
