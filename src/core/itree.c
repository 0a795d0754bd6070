// SPDX-License-Identifier: MIT
/*
 * The domain's interval index: an augmented B+-tree with wide nodes (see
 * itree.h and docs/DESIGN.md, "The interval index").
 *
 * One node layout serves leaves and inner nodes: four parallel arrays of
 * MMN_IX_FAN entries. For entry i,
 *   start[i]  leaf: the interval's start; inner: the first start of child i
 *   last[i]   leaf: the interval's last;  inner: the largest last under child i
 *   ptr[i]    leaf: the struct mmn_itree_node; inner: child i
 *   pmax[i]   max(last[0..i]): non-decreasing, so the first entry whose
 *             subtree ends at or after x is a count of pmax[] below x.
 * pmax[] beyond the node's entries holds ULONG_MAX, so the count runs over
 * all MMN_IX_FAN slots without a data-dependent branch.
 *
 * Back-links: every node knows its parent, every interval its leaf
 * (mmn_itree_node.leaf), so a removal starts at the right leaf and fixes the
 * path above it. Entries that move between nodes (splits, borrows, merges)
 * get their back-link rewritten.
 *
 * Balance: every node but the root holds at least MMN_IX_MIN entries, an
 * inner root at least 2. A full node splits in half, except that an insert
 * at either end of it leaves the minimum in the new node: ascending (or
 * descending) inserts, the common case of address-ordered registration, fill
 * nodes to (MMN_IX_FAN + 1 - MMN_IX_MIN) / MMN_IX_FAN instead of one half.
 * A node that falls below the minimum borrows an entry from a sibling with
 * more than the minimum, or else merges with it.
 */
#include "itree.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mmn_ix_node {
	unsigned long pmax[MMN_IX_FAN];
	unsigned long start[MMN_IX_FAN];
	unsigned long last[MMN_IX_FAN];
	void *ptr[MMN_IX_FAN];
	struct mmn_ix_node *parent;	/* on the spare list: the next spare */
	unsigned int n;
	bool leaf;
} __attribute__((aligned(64)));

#define FAN MMN_IX_FAN
#define MIN MMN_IX_MIN

_Static_assert(MIN >= 2 && 2 * MIN <= FAN, "merges must fit in one node");

static unsigned long node_max(const struct mmn_ix_node *x)
{
	return x->pmax[x->n - 1];
}

/* Recompute @x's prefix maxima (and the ULONG_MAX padding after them). */
static void prefix(struct mmn_ix_node *x)
{
	unsigned long m = 0;
	unsigned int i;

	for (i = 0; i < x->n; i++) {
		if (x->last[i] > m)
			m = x->last[i];
		x->pmax[i] = m;
	}
	for (; i < FAN; i++)
		x->pmax[i] = ULONG_MAX;
}

/* The first entry whose prefix maximum reaches @s (FAN if none). */
static unsigned int first_reaching(const struct mmn_ix_node *x, unsigned long s)
{
	unsigned int c0 = 0, c1 = 0;

	/* Two independent sums: half the length of the add-with-carry chain. */
	for (unsigned int i = 0; i < FAN; i += 2) {
		c0 += x->pmax[i] < s;
		c1 += x->pmax[i + 1] < s;
	}
	return c0 + c1;
}

/* The number of entries that start at or before @key. */
static unsigned int count_le(const struct mmn_ix_node *x, unsigned long key)
{
	unsigned int c = 0;

	for (unsigned int i = 0; i < x->n; i++)
		c += x->start[i] <= key;
	return c;
}

/* Point entry @i's back-link at @x. */
static void set_link(struct mmn_ix_node *x, unsigned int i)
{
	if (x->leaf)
		((struct mmn_itree_node *)x->ptr[i])->leaf = x;
	else
		((struct mmn_ix_node *)x->ptr[i])->parent = x;
}

static unsigned int index_in_parent(const struct mmn_ix_node *x)
{
	const struct mmn_ix_node *p = x->parent;
	unsigned int i = 0;

	while (p->ptr[i] != x)
		i++;
	return i;
}

static void copy_entry(struct mmn_ix_node *to, unsigned int ti,
		       const struct mmn_ix_node *from, unsigned int fi)
{
	to->start[ti] = from->start[fi];
	to->last[ti] = from->last[fi];
	to->ptr[ti] = from->ptr[fi];
}

/* Move entries [i, n) of @x by @by slots (+1: right, -1: left). */
static void shift(struct mmn_ix_node *x, unsigned int i, int by)
{
	size_t k = x->n - i;

	memmove(&x->start[(int)i + by], &x->start[i], k * sizeof(x->start[0]));
	memmove(&x->last[(int)i + by], &x->last[i], k * sizeof(x->last[0]));
	memmove(&x->ptr[(int)i + by], &x->ptr[i], k * sizeof(x->ptr[0]));
}

/* @x changed: recompute it and the path above it. */
static void fix_up(struct mmn_ix_node *x)
{
	struct mmn_ix_node *p;

	prefix(x);
	while ((p = x->parent)) {
		unsigned int i = index_in_parent(x);

		p->start[i] = x->start[0];
		p->last[i] = node_max(x);
		prefix(p);
		x = p;
	}
}

static struct mmn_ix_node *take(struct mmn_itree *t, bool leaf)
{
	struct mmn_ix_node *x = t->spare;

	if (!x)
		mmn_fatal(NULL, "interval index: no spare node left (reserve accounting is wrong)",
			  NULL);
	t->spare = x->parent;
	t->nr_spare--;
	t->nr_nodes++;
	x->parent = NULL;
	x->n = 0;
	x->leaf = leaf;
	return x;
}

static void give(struct mmn_itree *t, struct mmn_ix_node *x)
{
	x->parent = t->spare;
	t->spare = x;
	t->nr_spare++;
	t->nr_nodes--;
}

/* Insert entry (start, last, ptr) at @pos of @x, splitting upwards as needed. */
static void insert_entry(struct mmn_itree *t, struct mmn_ix_node *x, unsigned int pos,
			 unsigned long start, unsigned long last, void *ptr)
{
	unsigned long tstart[FAN + 1], tlast[FAN + 1];
	void *tptr[FAN + 1];
	struct mmn_ix_node *r, *p, *root;
	unsigned int keep, i, j;

	if (x->n < FAN) {
		shift(x, pos, 1);
		x->start[pos] = start;
		x->last[pos] = last;
		x->ptr[pos] = ptr;
		x->n++;
		set_link(x, pos);
		fix_up(x);
		return;
	}

	/* Split FAN + 1 entries between @x and a new right sibling. */
	for (i = 0, j = 0; i <= FAN; i++) {
		if (i == pos) {
			tstart[i] = start;
			tlast[i] = last;
			tptr[i] = ptr;
			continue;
		}
		tstart[i] = x->start[j];
		tlast[i] = x->last[j];
		tptr[i] = x->ptr[j];
		j++;
	}
	keep = pos == FAN ? FAN + 1 - MIN : pos == 0 ? MIN : (FAN + 1) / 2;
	r = take(t, x->leaf);
	t->splits++;
	for (i = 0; i < keep; i++) {
		x->start[i] = tstart[i];
		x->last[i] = tlast[i];
		x->ptr[i] = tptr[i];
	}
	x->n = keep;
	if (pos < keep)
		set_link(x, pos);
	for (i = keep; i <= FAN; i++) {
		r->start[i - keep] = tstart[i];
		r->last[i - keep] = tlast[i];
		r->ptr[i - keep] = tptr[i];
		r->n++;
		set_link(r, i - keep);
	}
	prefix(x);
	prefix(r);

	p = x->parent;
	if (!p) {
		/* @x was the root: the tree grows a level. */
		root = take(t, false);
		root->n = 2;
		root->ptr[0] = x;
		root->ptr[1] = r;
		root->start[0] = x->start[0];
		root->start[1] = r->start[0];
		root->last[0] = node_max(x);
		root->last[1] = node_max(r);
		x->parent = root;
		r->parent = root;
		prefix(root);
		t->root = root;
		t->height++;
		t->grows++;
		return;
	}
	i = index_in_parent(x);
	p->start[i] = x->start[0];
	p->last[i] = node_max(x);
	insert_entry(t, p, i + 1, r->start[0], node_max(r), r);
}

void mmn_itree_insert(struct mmn_itree *tree, struct mmn_itree_node *node)
{
	const unsigned long key = node->start;
	struct mmn_ix_node *x;

	if (!tree->root) {
		tree->root = take(tree, true);
		tree->height = 1;
	}
	x = tree->root;
	while (!x->leaf) {
		unsigned int c = count_le(x, key);

		/* The last child starting at or before @key: after equal starts. */
		x = x->ptr[c ? c - 1 : 0];
	}
	tree->count++;
	insert_entry(tree, x, count_le(x, key), node->start, node->last, node);
}

/* Remove entry @i of @x, merging or borrowing upwards as needed. */
static void remove_entry(struct mmn_itree *t, struct mmn_ix_node *x, unsigned int i)
{
	struct mmn_ix_node *p, *s;
	unsigned int ci, k;

	shift(x, i + 1, -1);
	x->n--;
	if (x == t->root) {
		if (x->n == 0) {
			give(t, x);
			t->root = NULL;
			t->height = 0;
		} else if (!x->leaf && x->n == 1) {
			/* An inner root with one child: the tree loses a level. */
			t->root = x->ptr[0];
			t->root->parent = NULL;
			t->height--;
			t->shrinks++;
			give(t, x);
		} else {
			prefix(x);
		}
		return;
	}
	if (x->n >= MIN) {
		fix_up(x);
		return;
	}

	p = x->parent;
	ci = index_in_parent(x);
	if (ci > 0) {
		s = p->ptr[ci - 1];
		if (s->n > MIN) {
			/* Borrow the left sibling's last entry. */
			t->borrows++;
			shift(x, 0, 1);
			copy_entry(x, 0, s, s->n - 1);
			x->n++;
			set_link(x, 0);
			s->n--;
			prefix(s);
			p->last[ci - 1] = node_max(s);
			fix_up(x);
			return;
		}
		/* Merge @x into its left sibling; drop @x's slot from the parent. */
		t->merges++;
		for (k = 0; k < x->n; k++) {
			copy_entry(s, s->n, x, k);
			set_link(s, s->n);
			s->n++;
		}
		prefix(s);
		p->last[ci - 1] = node_max(s);
		give(t, x);
		remove_entry(t, p, ci);
		return;
	}
	s = p->ptr[1];
	if (s->n > MIN) {
		/* Borrow the right sibling's first entry. */
		t->borrows++;
		copy_entry(x, x->n, s, 0);
		set_link(x, x->n);
		x->n++;
		shift(s, 1, -1);
		s->n--;
		prefix(s);
		p->start[1] = s->start[0];
		p->last[1] = node_max(s);
		fix_up(x);
		return;
	}
	/* Merge the right sibling into @x; drop its slot from the parent. */
	t->merges++;
	for (k = 0; k < s->n; k++) {
		copy_entry(x, x->n, s, k);
		set_link(x, x->n);
		x->n++;
	}
	prefix(x);
	p->start[0] = x->start[0];
	p->last[0] = node_max(x);
	give(t, s);
	remove_entry(t, p, 1);
}

void mmn_itree_remove(struct mmn_itree *tree, struct mmn_itree_node *node)
{
	struct mmn_ix_node *x = node->leaf;
	unsigned int i = 0;

	while (x->ptr[i] != node)
		i++;
	tree->count--;
	remove_entry(tree, x, i);
	node->leaf = NULL;
}

/*
 * Start loading what a search of @x will read: its prefix maxima, and the
 * array the result index selects from (children, or starts in a leaf). Both
 * addresses are known on arrival, so the misses overlap instead of the
 * second waiting for the first: one memory latency per level, not two.
 */
static void prefetch_node(const struct mmn_ix_node *x, bool leaf)
{
	const char *sel = leaf ? (const char *)x->start : (const char *)x->ptr;

	__builtin_prefetch(&x->pmax[0]);
	__builtin_prefetch(&x->pmax[MMN_IX_FAN - 1]);
	__builtin_prefetch(sel);
	__builtin_prefetch(sel + MMN_IX_FAN * sizeof(x->start[0]) - 1);
}

/*
 * From @x at level @d of @it, descend to the first interval whose last
 * reaches it->start (one exists: the caller checked the subtree's maximum);
 * return it if it starts by it->last, else NULL: every later one starts
 * later still. Leaves are at level it->depth (the node header, with its leaf
 * flag, is never read: one cache line less per level).
 */
MMN_HOT
static struct mmn_itree_node *descend(struct mmn_itree_iter *it, struct mmn_ix_node *x,
				      unsigned int d)
{
	unsigned int i;

	for (;;) {
		prefetch_node(x, d == it->depth);
		i = first_reaching(x, it->start);
		it->node[d] = x;
		it->idx[d] = (unsigned char)i;
		if (d == it->depth)
			break;
		x = x->ptr[i];
		d++;
	}
	return x->start[i] <= it->last ? x->ptr[i] : NULL;
}

MMN_HOT
struct mmn_itree_node *mmn_itree_first(const struct mmn_itree *tree,
				       struct mmn_itree_iter *it,
				       unsigned long start, unsigned long last)
{
	it->start = start;
	it->last = last;
	if (!tree->root || node_max(tree->root) < start)
		return NULL;
	it->depth = tree->height - 1;
	return descend(it, tree->root, 0);
}

struct mmn_itree_node *mmn_itree_next(struct mmn_itree_iter *it)
{
	const unsigned long s = it->start, l = it->last;
	unsigned int d = it->depth, j;
	struct mmn_ix_node *x = it->node[d];

	/* The rest of this leaf. */
	for (j = it->idx[d] + 1u; j < x->n; j++) {
		if (x->start[j] > l)
			return NULL;
		if (x->last[j] >= s) {
			it->idx[d] = (unsigned char)j;
			return x->ptr[j];
		}
	}
	/* Then the first later subtree that reaches @s, level by level up. */
	while (d > 0) {
		d--;
		x = it->node[d];
		for (j = it->idx[d] + 1u; j < x->n; j++) {
			if (x->start[j] > l)
				return NULL;
			if (x->last[j] >= s) {
				it->idx[d] = (unsigned char)j;
				return descend(it, x->ptr[j], d + 1);
			}
		}
	}
	return NULL;
}

/* The tallest tree that @n intervals can make, in levels. */
static size_t max_height(size_t n)
{
	size_t h = 1, need = 2 * MIN;	/* intervals a tree of height h + 1 needs */

	if (n == 0)
		return 0;
	while (need <= n && h < MMN_IX_MAX_HEIGHT) {
		h++;
		if (need > SIZE_MAX / MIN)
			break;
		need *= MIN;
	}
	return h;
}

size_t mmn_itree_spare_needed(const struct mmn_itree *tree, size_t inserts)
{
	size_t h;

	if (!inserts)
		return 0;
	/* Insert j (from 0) meets a tree of height <= height + j, takes <= that + 1. */
	h = max_height(tree->count + inserts);
	if (tree->height + inserts - 1 < h)
		h = tree->height + inserts - 1;
	return inserts * (h + 1);
}

struct mmn_ix_node *mmn_itree_nodes_alloc(size_t n)
{
	struct mmn_ix_node *list = NULL, *x;

	while (n--) {
		x = aligned_alloc(_Alignof(struct mmn_ix_node), sizeof(*x));
		if (!x) {
			mmn_itree_nodes_free(list);
			errno = ENOMEM;
			return NULL;
		}
		x->parent = list;
		list = x;
	}
	return list;
}

void mmn_itree_spare_give(struct mmn_itree *tree, struct mmn_ix_node *list)
{
	while (list) {
		struct mmn_ix_node *next = list->parent;

		list->parent = tree->spare;
		tree->spare = list;
		tree->nr_spare++;
		list = next;
	}
}

struct mmn_ix_node *mmn_itree_spare_trim(struct mmn_itree *tree, size_t inserts)
{
	size_t keep = mmn_itree_spare_needed(tree, inserts);
	struct mmn_ix_node *list = NULL, *x;

	while (tree->nr_spare > keep) {
		x = tree->spare;
		tree->spare = x->parent;
		tree->nr_spare--;
		x->parent = list;
		list = x;
	}
	return list;
}

void mmn_itree_nodes_free(struct mmn_ix_node *list)
{
	while (list) {
		struct mmn_ix_node *next = list->parent;

		free(list);
		list = next;
	}
}

struct check_state {
	const struct mmn_itree_node *prev;	/* previous interval in order */
	size_t count, nodes;
};

/* Checks the subtree at @x, at @depth levels below the root. */
static const char *check_node(const struct mmn_itree *t, const struct mmn_ix_node *x,
			      const struct mmn_ix_node *parent, unsigned int depth,
			      struct check_state *st)
{
	unsigned long m = 0;
	const char *err;

	st->nodes++;
	if (x->parent != parent)
		return "itree: broken parent link";
	if (x->n < 1 || x->n > FAN)
		return "itree: node entry count out of range";
	if (parent && x->n < MIN)
		return "itree: node below the minimum fill";
	if (!parent && !x->leaf && x->n < 2)
		return "itree: inner root with one child";
	if (x->leaf != (depth + 1 == t->height))
		return "itree: leaves at different depths";
	for (unsigned int i = 0; i < FAN; i++) {
		if (i >= x->n) {
			if (x->pmax[i] != ULONG_MAX)
				return "itree: prefix padding is not ULONG_MAX";
			continue;
		}
		if (x->last[i] > m)
			m = x->last[i];
		if (x->pmax[i] != m)
			return "itree: wrong prefix maximum";
		if (i && x->start[i] < x->start[i - 1])
			return "itree: entries out of order";
		if (x->leaf) {
			const struct mmn_itree_node *n = x->ptr[i];

			if (n->leaf != x)
				return "itree: broken leaf link";
			if (n->start != x->start[i] || n->last != x->last[i])
				return "itree: leaf entry differs from its interval";
			if (n->last < n->start)
				return "itree: interval ends before it starts";
			if (st->prev && st->prev->start > n->start)
				return "itree: intervals out of order";
			st->prev = n;
			st->count++;
		} else {
			const struct mmn_ix_node *c = x->ptr[i];

			if (!c || c->n < 1 || c->start[0] != x->start[i])
				return "itree: wrong child start";
			if (c->pmax[c->n - 1] != x->last[i])
				return "itree: wrong subtree maximum";
			err = check_node(t, c, x, depth + 1, st);
			if (err)
				return err;
		}
	}
	return NULL;
}

const char *mmn_itree_check(const struct mmn_itree *tree, size_t pending_inserts)
{
	struct check_state st = { NULL, 0, 0 };
	const struct mmn_ix_node *x;
	size_t spares = 0;
	const char *err;

	if (!tree->root) {
		if (tree->height || tree->count || tree->nr_nodes)
			return "itree: empty tree with a height, count or nodes";
	} else {
		if (tree->height < 1 || tree->height > MMN_IX_MAX_HEIGHT)
			return "itree: height out of range";
		err = check_node(tree, tree->root, NULL, 0, &st);
		if (err)
			return err;
	}
	if (st.count != tree->count)
		return "itree: wrong interval count";
	if (st.nodes != tree->nr_nodes)
		return "itree: wrong node count";
	for (x = tree->spare; x; x = x->parent)
		spares++;
	if (spares != tree->nr_spare)
		return "itree: wrong spare count";
	if (tree->nr_spare < mmn_itree_spare_needed(tree, pending_inserts))
		return "itree: spare nodes do not pay for the pending inserts";
	return NULL;
}
