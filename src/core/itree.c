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
_Static_assert(FAN <= 64 && (FAN & (FAN - 1)) == 0, "the probe's search: a power of two, <= 64");

/*
 * The lock-free probe (mmn_itree_probe_miss) reads pmax[], start[], ptr[], n
 * and the tree's root and height while a writer may be changing them. So
 * every store to those is atomic (the writer's own reads stay plain: only
 * stores can race with the probe's loads; last[] and parent are never read
 * by the probe and stay plain). Release stores here and acquire loads in the
 * probe instead of the seqlock's two fences: a probe that reads any store of
 * a write section also sees the odd generation stored before it, and none of
 * its loads can pass its final load of the generation. On x86 both are plain
 * moves; and sanitizers understand them, which they do not fences.
 */
#define ST(lv, v) __atomic_store_n(&(lv), (v), __ATOMIC_RELEASE)
#define LD(lv) __atomic_load_n(&(lv), __ATOMIC_ACQUIRE)

static void set_n(struct mmn_ix_node *x, unsigned int n)
{
	ST(x->n, n);
}

/* A change of the tree's shape starts: the generation turns odd. */
static void write_begin(struct mmn_itree *t)
{
	/*
	 * Sequentially consistent: a probe announces itself (mmn_fast_enter's
	 * SC increment) before its SC load of gen, and the notifier core scans
	 * the announcements after this store, so one of them sees the other.
	 * The node stores below are release stores, so none of them becomes
	 * visible before the odd value.
	 */
	__atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_SEQ_CST);
}

/* ... and ends: even again, and every node store before it is published. */
static void write_end(struct mmn_itree *t)
{
	__atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_SEQ_CST);
}

/* ---- the chunk summary (itree.h) ------------------------------------------ */

#define SLOT_WORD_BITS (8 * sizeof(unsigned long))

_Static_assert((MMN_IX_SLOTS & (MMN_IX_SLOTS - 1)) == 0, "slots: a power of two");

/*
 * The slots of [start, last]'s chunks: *@first, and how many follow it
 * (modulo MMN_IX_SLOTS); every slot when the chunks wrap around them all.
 */
static unsigned int slot_span(unsigned long start, unsigned long last, unsigned int *first)
{
	unsigned long c0 = start >> MMN_IX_CHUNK_SHIFT, c1 = last >> MMN_IX_CHUNK_SHIFT;

	*first = (unsigned int)(c0 % MMN_IX_SLOTS);
	return c1 - c0 >= MMN_IX_SLOTS ? MMN_IX_SLOTS : (unsigned int)(c1 - c0 + 1);
}

/* Count @node in (@delta 1) or out of (-1) its slots, inside a write section. */
static void slots_account(struct mmn_itree *t, const struct mmn_itree_node *node, int delta)
{
	unsigned int first, n = slot_span(node->start, node->last, &first);

	for (unsigned int k = 0; k < n; k++) {
		unsigned int s = (first + k) % MMN_IX_SLOTS;
		unsigned long *w = &t->slot_bits[s / SLOT_WORD_BITS];
		unsigned long bit = 1ul << (s % SLOT_WORD_BITS);

		t->slot_count[s] += (unsigned int)delta;
		if (delta > 0 && t->slot_count[s] == 1)
			ST(*w, *w | bit);
		else if (delta < 0 && t->slot_count[s] == 0)
			ST(*w, *w & ~bit);
	}
}

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
		ST(x->pmax[i], m);
	}
	for (; i < FAN; i++)
		ST(x->pmax[i], ULONG_MAX);
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

static void set_entry(struct mmn_ix_node *x, unsigned int i, unsigned long start,
		      unsigned long last, void *ptr)
{
	ST(x->start[i], start);
	x->last[i] = last;
	ST(x->ptr[i], ptr);
}

static void copy_entry(struct mmn_ix_node *to, unsigned int ti,
		       const struct mmn_ix_node *from, unsigned int fi)
{
	set_entry(to, ti, from->start[fi], from->last[fi], from->ptr[fi]);
}

/* Move entries [i, n) of @x by @by slots (+1: right, -1: left). */
static void shift(struct mmn_ix_node *x, unsigned int i, int by)
{
	if (by > 0) {
		for (unsigned int j = x->n; j-- > i;)
			copy_entry(x, j + 1, x, j);
	} else {
		for (unsigned int j = i; j < x->n; j++)
			copy_entry(x, j - 1, x, j);
	}
}

/* @x changed: recompute it and the path above it. */
static void fix_up(struct mmn_ix_node *x)
{
	struct mmn_ix_node *p;

	prefix(x);
	while ((p = x->parent)) {
		unsigned int i = index_in_parent(x);

		ST(p->start[i], x->start[0]);
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
	set_n(x, 0);
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
		set_entry(x, pos, start, last, ptr);
		set_n(x, x->n + 1);
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
	for (i = 0; i < keep; i++)
		set_entry(x, i, tstart[i], tlast[i], tptr[i]);
	set_n(x, keep);
	if (pos < keep)
		set_link(x, pos);
	for (i = keep; i <= FAN; i++) {
		set_entry(r, i - keep, tstart[i], tlast[i], tptr[i]);
		set_n(r, r->n + 1);
		set_link(r, i - keep);
	}
	prefix(x);
	prefix(r);

	p = x->parent;
	if (!p) {
		/* @x was the root: the tree grows a level. */
		root = take(t, false);
		set_entry(root, 0, x->start[0], node_max(x), x);
		set_entry(root, 1, r->start[0], node_max(r), r);
		set_n(root, 2);
		x->parent = root;
		r->parent = root;
		prefix(root);
		/* Height first: a probe that sees the new root must not stop early. */
		ST(t->height, t->height + 1);
		ST(t->root, root);
		t->grows++;
		return;
	}
	i = index_in_parent(x);
	ST(p->start[i], x->start[0]);
	p->last[i] = node_max(x);
	insert_entry(t, p, i + 1, r->start[0], node_max(r), r);
}

void mmn_itree_insert(struct mmn_itree *tree, struct mmn_itree_node *node)
{
	const unsigned long key = node->start;
	struct mmn_ix_node *x;

	write_begin(tree);
	if (!tree->root) {
		x = take(tree, true);
		prefix(x);
		ST(tree->height, 1u);
		ST(tree->root, x);
	}
	x = tree->root;
	while (!x->leaf) {
		unsigned int c = count_le(x, key);

		/* The last child starting at or before @key: after equal starts. */
		x = x->ptr[c ? c - 1 : 0];
	}
	tree->count++;
	insert_entry(tree, x, count_le(x, key), node->start, node->last, node);
	slots_account(tree, node, 1);
	write_end(tree);
}

/* Remove entry @i of @x, merging or borrowing upwards as needed. */
static void remove_entry(struct mmn_itree *t, struct mmn_ix_node *x, unsigned int i)
{
	struct mmn_ix_node *p, *s;
	unsigned int ci, k;

	shift(x, i + 1, -1);
	set_n(x, x->n - 1);
	if (x == t->root) {
		if (x->n == 0) {
			give(t, x);
			ST(t->root, NULL);
			ST(t->height, 0u);
		} else if (!x->leaf && x->n == 1) {
			/* An inner root with one child: the tree loses a level. */
			ST(t->root, (struct mmn_ix_node *)x->ptr[0]);
			t->root->parent = NULL;
			ST(t->height, t->height - 1);
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
			set_n(x, x->n + 1);
			set_link(x, 0);
			set_n(s, s->n - 1);
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
			set_n(s, s->n + 1);
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
		set_n(x, x->n + 1);
		shift(s, 1, -1);
		set_n(s, s->n - 1);
		prefix(s);
		ST(p->start[1], s->start[0]);
		p->last[1] = node_max(s);
		fix_up(x);
		return;
	}
	/* Merge the right sibling into @x; drop its slot from the parent. */
	t->merges++;
	for (k = 0; k < s->n; k++) {
		copy_entry(x, x->n, s, k);
		set_link(x, x->n);
		set_n(x, x->n + 1);
	}
	prefix(x);
	ST(p->start[0], x->start[0]);
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
	write_begin(tree);
	tree->count--;
	remove_entry(tree, x, i);
	slots_account(tree, node, -1);
	write_end(tree);
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
	const char *pm = (const char *)x->pmax;

	for (size_t o = 0; o < sizeof(x->pmax); o += 64) {
		__builtin_prefetch(pm + o);
		__builtin_prefetch(sel + o);
	}
}

/*
 * From @x at level @d of @it, descend to the first interval whose last
 * reaches it->start (one exists: the caller checked the subtree's maximum);
 * return it if it starts by it->last, else NULL: every later one starts
 * later still. Leaves are at level it->depth (the node header, with its leaf
 * flag, is never read: one cache line less per level).
 */
MMN_WARM
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

MMN_WARM
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

/*
 * Are the slots of [start, last] all clear? Part of the probe's seqlock read.
 * Ranges over more than 64 chunks (4 MiB) are left to the tree.
 */
static bool slots_clear(const struct mmn_itree *t, unsigned long start, unsigned long last)
{
	unsigned long c = start >> MMN_IX_CHUNK_SHIFT, end = last >> MMN_IX_CHUNK_SHIFT;

	if (end - c >= 64)
		return false;
	do {
		unsigned long s = c % MMN_IX_SLOTS;

		if (LD(t->slot_bits[s / SLOT_WORD_BITS]) & (1ul << (s % SLOT_WORD_BITS)))
			return false;
	} while (c++ != end);
	return true;
}

/* Is the generation still @g? Every earlier LD() was an acquire load: they are done. */
static bool probe_valid(const struct mmn_itree *t, unsigned long g)
{
	return __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) == g;
}

/*
 * The lock-free miss test. A seqlock read: load the generation (odd: a
 * writer is inside, give up), read the path optimistically, and believe what
 * was read only if the generation has not moved. Before it follows a child
 * pointer it checks the generation, so it only ever dereferences a node that
 * was in the tree at generation @g: every node it reads is a struct
 * mmn_ix_node (nodes are never freed while a probe may run, see
 * mmn_itree_spare_trim's callers), never a notifier a leaf points to. Torn
 * values read between two checks are only compared and used as indices
 * (clamped), never followed. A notifier is never dereferenced at all.
 *
 * The first load of the generation is sequentially consistent: the caller
 * announced the probe with a sequentially consistent store just before (see
 * notifier.c, "The lock-free miss"), and write_begin()'s store is one too.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* Keep the search's branches: if-converted to cmovs they form a dependent chain. */
__attribute__((optimize("no-if-conversion", "no-if-conversion2")))
#endif
MMN_HOT
bool mmn_itree_probe_miss(const struct mmn_itree *tree, unsigned long start,
			  unsigned long last)
{
	const unsigned long g = __atomic_load_n(&tree->gen, __ATOMIC_SEQ_CST);
	const struct mmn_ix_node *x, *next;
	unsigned int h, n, d, i;

	if (g & 1)
		return false;
	if (slots_clear(tree, start, last))
		return probe_valid(tree, g);	/* nothing overlaps any of its chunks */
	x = LD(tree->root);
	h = LD(tree->height);
	if (!probe_valid(tree, g))
		return false;
	if (!x)
		return true;	/* empty at generation g */
	n = LD(x->n);
	if (n == 0 || n > FAN || h == 0 || h > MMN_IX_MAX_HEIGHT)
		return false;	/* torn */
	if (LD(x->pmax[n - 1]) < start)
		return probe_valid(tree, g);	/* everything ends before @start */
	for (d = 1;; d++) {
		/*
		 * The first entry that reaches @start (at most FAN - 1): a
		 * binary search over the sorted prefix maxima (log2(FAN) steps,
		 * unrolled), with branches
		 * rather than the walk's count. When lookups repeat, the
		 * branches predict and only the pointer chain is on the
		 * critical path.
		 */
		i = 0;
#define PROBE_STEP(k)							\
		if (FAN > (k) && LD(x->pmax[i + (k) - 1]) < start)	\
			i += (k)
		PROBE_STEP(32);
		PROBE_STEP(16);
		PROBE_STEP(8);
		PROBE_STEP(4);
		PROBE_STEP(2);
		PROBE_STEP(1);
#undef PROBE_STEP
		if (d == h)
			break;
		next = LD(x->ptr[i]);
		if (!probe_valid(tree, g) || !next)
			return false;
		x = next;
	}
	if (LD(x->start[i]) <= last)
		return false;	/* a hit, or torn: the locked path decides */
	return probe_valid(tree, g);
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
		/* A probe may read any slot of a node it reaches: no garbage. */
		memset(x, 0, sizeof(*x));
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
	/* The chunk summary, recomputed: the slots the intervals cover, and how often. */
	unsigned long slot_bits[MMN_IX_SLOTS / SLOT_WORD_BITS];
	unsigned long slot_sum;
};

static void slots_recount(struct check_state *st, const struct mmn_itree_node *n)
{
	unsigned int first, k = slot_span(n->start, n->last, &first);

	st->slot_sum += k;
	while (k--) {
		unsigned int s = (first + k) % MMN_IX_SLOTS;

		st->slot_bits[s / SLOT_WORD_BITS] |= 1ul << (s % SLOT_WORD_BITS);
	}
}

/*
 * Exactly the slots the intervals cover have their bit, and the counts of
 * those slots add up to the intervals' spans. Cheap enough to run after every
 * change (debug builds, the fuzzer): it reads the counts of set slots only.
 */
static const char *check_slots(const struct mmn_itree *t, const struct check_state *st)
{
	unsigned long sum = 0;

	for (unsigned int w = 0; w < MMN_IX_SLOTS / SLOT_WORD_BITS; w++) {
		unsigned long bits = t->slot_bits[w];

		if (bits != st->slot_bits[w])
			return "itree: chunk summary bits differ from the intervals";
		for (; bits; bits &= bits - 1) {
			unsigned int s = w * SLOT_WORD_BITS + (unsigned int)__builtin_ctzl(bits);
			unsigned int c = t->slot_count[s];

			if (c == 0)
				return "itree: chunk summary bit set on a count of 0";
			sum += c;
		}
	}
	if (sum != st->slot_sum)
		return "itree: chunk summary counts differ from the intervals";
	return NULL;
}

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
			slots_recount(st, n);
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
	struct check_state st;
	const struct mmn_ix_node *x;
	size_t spares = 0;
	const char *err;

	memset(&st, 0, sizeof(st));

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
	err = check_slots(tree, &st);
	if (err)
		return err;
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
