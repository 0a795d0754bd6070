// SPDX-License-Identifier: MIT
/*
 * The interval index (a B+-tree) on its own, against a brute-force list.
 *
 * Random inserts and removals at sizes from 1 to 5000 intervals,
 * mmn_itree_check() after every change, and stabbing queries whose answers
 * (order included: ascending start, equal starts in insertion order) are
 * compared with a sorted scan of the list. The test counts the structural
 * events it caused (splits, root growth, borrows, merges, root shrinking) and
 * the query sizes (0, 1, many) and fails if any was never exercised. The
 * spare-node reserve is tested too: a tree given exactly
 * mmn_itree_spare_needed(k) spares must take k inserts, mixed with removals,
 * without running out (running out aborts). Seed: argv[1].
 */
#include <limits.h>

#include "harness.h"
#include "itree.h"

#define MAX_NODES 5000

struct tnode {
	struct mmn_itree_node node;
	unsigned long start, last;
	uint64_t order;		/* when it went into the tree */
	int slot;		/* index in live[], or -1 */
};

static struct tnode nodes[MAX_NODES];
static struct tnode *live[MAX_NODES];
static int nr_live;
static struct mmn_itree tree;
static uint64_t order_clock;
static struct test_rng rng;

/* Coverage counters: every one must end above zero. */
static unsigned long splits, grows, borrows, merges, shrinks;
static unsigned long q_zero, q_one, q_many, q_point;
static size_t pending;		/* inserts the spare list must still pay for */

static void check_tree(void)
{
	const char *err = mmn_itree_check(&tree, pending);

	if (err) {
		fprintf(stderr, "    itree_check: %s (%d nodes)\n", err, nr_live);
		assert_eq_ptr(err, NULL);
	}
	test_checks++;
	if (tree.count != (size_t)nr_live)
		assert_eq((long long)tree.count, nr_live);
}

/* Interval geometry: a mix of small dense values, edges and full range. */
static unsigned long rand_addr(void)
{
	switch (test_rng_below(&rng, 9)) {
	case 0:
		return test_rng_next(&rng);
	case 1:
		return ULONG_MAX - test_rng_below(&rng, 64);
	case 2:
		return test_rng_below(&rng, 64);
	case 3:		/* 256 MiB in 16 KiB steps: the chunk summary's slots, folded */
		return test_rng_below(&rng, 1ul << 14) << 14;
	default:
		return test_rng_below(&rng, 4096) * 16;
	}
}

static void rand_interval(unsigned long *start, unsigned long *last)
{
	unsigned long s = rand_addr(), len;

	switch (test_rng_below(&rng, 10)) {
	case 0:
		len = 0;			/* one address */
		break;
	case 1:
		len = ULONG_MAX - s;		/* to the very end */
		break;
	case 2:
		len = s == ULONG_MAX ? 0 : test_rng_next(&rng) % (ULONG_MAX - s);
		break;
	default:
		len = test_rng_below(&rng, 256);
		if (len > ULONG_MAX - s)
			len = ULONG_MAX - s;
		break;
	}
	*start = s;
	*last = s + len;
}

static void insert_node(struct tnode *n, unsigned long start, unsigned long last)
{
	n->start = start;
	n->last = last;
	n->node.start = start;
	n->node.last = last;
	n->order = order_clock++;
	n->slot = nr_live;
	live[nr_live++] = n;
	if (pending) {
		pending--;	/* paid for in advance */
	} else {
		size_t need = mmn_itree_spare_needed(&tree, 1);

		if (tree.nr_spare < need)
			mmn_itree_spare_give(&tree, mmn_itree_nodes_alloc(need - tree.nr_spare));
	}
	mmn_itree_insert(&tree, &n->node);
	check_tree();
}

static struct tnode *free_node(void)
{
	for (;;) {
		struct tnode *n = &nodes[test_rng_below(&rng, MAX_NODES)];

		if (n->slot < 0)
			return n;
	}
}

static void remove_node(struct tnode *n)
{
	struct mmn_itree_node *x = &n->node;
	int slot = n->slot;

	mmn_itree_remove(&tree, x);
	live[slot] = live[--nr_live];
	live[slot]->slot = slot;
	n->slot = -1;
	memset(&n->node, 0x5a, sizeof(n->node));	/* poison: must not be read */
	check_tree();
}

static int cmp_walk_order(const void *a, const void *b)
{
	const struct tnode *x = *(struct tnode *const *)a, *y = *(struct tnode *const *)b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static struct tnode *expect_buf[MAX_NODES];

/* One stabbing query of [qs, ql], checked against a sorted scan. */
static void query(unsigned long qs, unsigned long ql)
{
	struct mmn_itree_node *x;
	struct mmn_itree_iter it;
	int n = 0, i = 0;

	for (int j = 0; j < nr_live; j++)
		if (live[j]->start <= ql && live[j]->last >= qs)
			expect_buf[n++] = live[j];
	qsort(expect_buf, n, sizeof(expect_buf[0]), cmp_walk_order);

	for (x = mmn_itree_first(&tree, &it, qs, ql); x; x = mmn_itree_next(&it), i++) {
		test_checks++;
		if (i >= n || x != &expect_buf[i]->node) {
			test_fail_at(__FILE__, __LINE__);
			fprintf(stderr,
				"    query [%#lx, %#lx]: result %d is [%#lx, %#lx], expected %s\n",
				qs, ql, i, x->start, x->last, i >= n ? "nothing" : "another node");
			test_exit_now();
		}
	}
	if (i != n) {
		fprintf(stderr, "    query [%#lx, %#lx]: %d results, expected %d\n", qs, ql, i, n);
		assert_eq(i, n);
	}
	/* The lock-free probe, with no change running: exact. */
	if (mmn_itree_probe_miss(&tree, qs, ql) != (n == 0)) {
		fprintf(stderr, "    query [%#lx, %#lx]: probe says %s, %d overlap\n", qs, ql,
			n ? "miss" : "not a miss", n);
		assert_eq(mmn_itree_probe_miss(&tree, qs, ql), n == 0);
	}
	if (n == 0)
		q_zero++;
	else if (n == 1)
		q_one++;
	else
		q_many++;
	q_point += qs == ql;
}

static void random_query(void)
{
	unsigned long qs, ql;

	switch (test_rng_below(&rng, 4)) {
	case 0:		/* a point: the classic stabbing query */
		qs = ql = rand_addr();
		break;
	case 1:		/* a point inside a live interval: at least one hit */
		if (nr_live) {
			struct tnode *t = live[test_rng_below(&rng, nr_live)];

			/* below(0), for the whole space, gives 0 */
			qs = ql = t->start + test_rng_below(&rng, t->last - t->start + 1);
			break;
		}
		/* fall through */
	default:
		rand_interval(&qs, &ql);
		break;
	}
	query(qs, ql);
}

/* Every live node, in order, through a whole-space query. */
static void full_walk(void)
{
	query(0, ULONG_MAX);
}

static void empty_tree(void)
{
	while (nr_live) {
		remove_node(live[test_rng_below(&rng, nr_live)]);
		if (test_rng_below(&rng, 8) == 0)
			random_query();
	}
	test_checks++;
	if (tree.root || tree.height || tree.count || tree.nr_nodes)
		assert_true(!tree.root && !tree.height && !tree.count && !tree.nr_nodes);
}

static void reset(void)
{
	splits += tree.splits;
	grows += tree.grows;
	borrows += tree.borrows;
	merges += tree.merges;
	shrinks += tree.shrinks;
	mmn_itree_nodes_free(mmn_itree_spare_trim(&tree, 0));
	memset(&tree, 0, sizeof(tree));
	pending = 0;
	for (int i = 0; i < MAX_NODES; i++)
		nodes[i].slot = -1;
	nr_live = 0;
}

static struct mmn_itree_node *first(unsigned long s, unsigned long l)
{
	struct mmn_itree_iter it;

	return mmn_itree_first(&tree, &it, s, l);
}

/* The result after @x in the query [s, l] (@x must be one of its results). */
static struct mmn_itree_node *next_after(struct mmn_itree_node *x, unsigned long s,
					 unsigned long l)
{
	struct mmn_itree_iter it;
	struct mmn_itree_node *y;

	for (y = mmn_itree_first(&tree, &it, s, l); y && y != x; y = mmn_itree_next(&it))
		;
	assert_eq_ptr(y, x);
	return mmn_itree_next(&it);
}

TEST(empty)
{
	reset();
	check_tree();
	expect_eq_ptr(first(0, ULONG_MAX), NULL);
	expect_eq_ptr(first(5, 5), NULL);
}

TEST(boundaries)
{
	unsigned long s, l;

	reset();
	/* [0x1000, 0x1fff] against ranges touching it from either side. */
	insert_node(&nodes[0], 0x1000, 0x1fff);
	expect_eq_ptr(first(0x2000, 0x2fff), NULL);
	expect_eq_ptr(first(0, 0xfff), NULL);
	expect_eq_ptr(first(0, 0x1000), &nodes[0].node);
	expect_eq_ptr(first(0x1fff, 0x1fff), &nodes[0].node);
	expect_eq_ptr(first(0x1fff, ULONG_MAX), &nodes[0].node);
	expect_eq_ptr(next_after(&nodes[0].node, 0, ULONG_MAX), NULL);
	/* The very last address, and the whole space. */
	insert_node(&nodes[1], ULONG_MAX, ULONG_MAX);
	insert_node(&nodes[2], 0, ULONG_MAX);
	expect_eq_ptr(first(ULONG_MAX, ULONG_MAX), &nodes[2].node);
	expect_eq_ptr(next_after(&nodes[2].node, ULONG_MAX, ULONG_MAX), &nodes[1].node);
	expect_eq_ptr(first(0, 0), &nodes[2].node);
	expect_eq_ptr(next_after(&nodes[2].node, 0, 0), NULL);
	for (int i = 0; i < 200; i++) {
		rand_interval(&s, &l);
		query(s, l);
	}
	empty_tree();
}

/* Equal starts keep insertion order, through rotations and removals. */
TEST(equal_starts)
{
	reset();
	for (int i = 0; i < 300; i++) {
		unsigned long start = 0x1000 + 0x1000 * test_rng_below(&rng, 3);

		insert_node(&nodes[i], start, start + test_rng_below(&rng, 0x10000));
	}
	for (int i = 0; i < 200; i++) {
		full_walk();
		random_query();
		remove_node(live[test_rng_below(&rng, nr_live)]);
		insert_node(free_node(), 0x2000, 0x2000 + test_rng_below(&rng, 0x3000));
	}
	empty_tree();
}

/* Sorted and reverse-sorted inserts: the rotation-heavy shapes. */
TEST(monotonic)
{
	reset();
	for (int i = 0; i < 1000; i++)
		insert_node(&nodes[i], (unsigned long)i << 12, ((unsigned long)i << 12) + 0xfff);
	full_walk();
	for (int i = 0; i < 1000; i++)	/* remove in insertion order: always the leftmost */
		remove_node(&nodes[i]);
	reset();
	for (int i = 0; i < 1000; i++)
		insert_node(&nodes[i], (unsigned long)(1000 - i) << 12, ULONG_MAX - i);
	full_walk();
	for (int i = 0; i < 100; i++)
		random_query();
	for (int i = 999; i >= 0; i--)	/* remove newest first */
		remove_node(&nodes[i]);
}

/* Grow to each size by random inserts, churn, query, then empty in random order. */
TEST(random_sizes)
{
	static const int sizes[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33,
				     63, 64, 65, 100, 255, 256, 257, 500, 1000, 2000, 5000 };
	unsigned long s, l;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		int target = sizes[k];
		int churn = target < 100 ? 50 : 300;

		reset();
		while (nr_live < target) {
			rand_interval(&s, &l);
			insert_node(free_node(), s, l);
		}
		full_walk();
		for (int i = 0; i < 100; i++)
			random_query();
		for (int i = 0; i < churn; i++) {
			if (nr_live && (nr_live >= target || test_rng_below(&rng, 2))) {
				remove_node(live[test_rng_below(&rng, nr_live)]);
			} else {
				rand_interval(&s, &l);
				insert_node(free_node(), s, l);
			}
			random_query();
		}
		full_walk();
		empty_tree();
	}
}

/*
 * The reserve: a tree holding exactly mmn_itree_spare_needed(k) spares takes
 * k inserts, with removals between them, without allocating (a missing
 * spare aborts). Inserts at both ends and in the middle, so splits of every
 * kind and root growth happen while the reserve is being used up.
 */
TEST(reserve)
{
	static const size_t ks[] = { 1, 2, 3, 7, 16, 100, 1000 };
	unsigned long s, l;

	for (size_t r = 0; r < sizeof(ks) / sizeof(ks[0]); r++) {
		for (int pre = 0; pre < 4; pre++) {
			size_t k = ks[r], base = pre == 0 ? 0 : pre == 1 ? 5 : pre == 2 ? 200 : 2000;

			reset();
			while ((size_t)nr_live < base) {
				rand_interval(&s, &l);
				insert_node(free_node(), s, l);
			}
			/* Exactly what the k inserts need, not one node more. */
			mmn_itree_nodes_free(mmn_itree_spare_trim(&tree, 0));
			pending = k;
			mmn_itree_spare_give(&tree, mmn_itree_nodes_alloc(mmn_itree_spare_needed(&tree, k)));
			check_tree();
			for (size_t i = 0; i < k; i++) {
				switch (test_rng_below(&rng, 4)) {
				case 0:		/* ascending: splits at the right edge */
					insert_node(free_node(), ULONG_MAX - 1000 + i, ULONG_MAX);
					break;
				case 1:		/* descending: splits at the left edge */
					insert_node(free_node(), 1000 - (i % 1000), 1000);
					break;
				default:
					rand_interval(&s, &l);
					insert_node(free_node(), s, l);
					break;
				}
				if (nr_live > 1 && test_rng_below(&rng, 3) == 0)
					remove_node(live[test_rng_below(&rng, nr_live)]);
			}
			expect_eq((long long)pending, 0);
			full_walk();
			empty_tree();
		}
	}
}

/* The coverage the brief asks for was reached. */
/* The chunk summary (itree.h): its bits, and probes that it must answer or pass on. */
static bool slot_bit(unsigned int s)
{
	return tree.slot_bits[s / (8 * sizeof(unsigned long))] &
	       (1ul << (s % (8 * sizeof(unsigned long))));
}

TEST(chunk_summary)
{
	const unsigned long C = 1ul << MMN_IX_CHUNK_SHIFT, P = MMN_IX_SLOTS * C;
	unsigned int set = 0;

	reset();
	/* Slot 5; the same slot one fold up overlaps nothing. */
	insert_node(&nodes[0], 5 * C + 100, 5 * C + 200);
	expect_true(slot_bit(5));
	expect_false(slot_bit(4));
	expect_false(slot_bit(6));
	expect_eq(tree.slot_count[5], 1);
	query(5 * C, 5 * C + 99);		/* slot set, no overlap: the tree says miss */
	query(5 * C + 150, 5 * C + 150);	/* a hit */
	query(P + 5 * C + 150, P + 5 * C + 150);	/* folded onto slot 5, no overlap */
	query(6 * C, 7 * C - 1);		/* clear slot: the summary says miss */
	query(4 * C, 6 * C);			/* three slots, one set, a hit */
	query(100 * C, 200 * C);		/* wider than the summary looks: the tree */
	/* A second interval in the slot keeps its bit through the first's removal. */
	insert_node(&nodes[1], 5 * C + 300, 5 * C + 400);
	expect_eq(tree.slot_count[5], 2);
	remove_node(&nodes[0]);
	expect_true(slot_bit(5));
	remove_node(&nodes[1]);
	expect_false(slot_bit(5));
	expect_eq(tree.slot_count[5], 0);
	/* Across the fold: the last slot and the first. */
	insert_node(&nodes[2], P - C, P + C - 1);
	expect_true(slot_bit(MMN_IX_SLOTS - 1));
	expect_true(slot_bit(0));
	expect_false(slot_bit(1));
	query(P + C, P + 2 * C - 1);		/* slot 1: miss */
	query(2 * P - 1, 2 * P - 1);		/* slot 2047 one fold up: miss through the tree */
	query(P, P);				/* a hit in slot 0 */
	remove_node(&nodes[2]);
	/* Every slot, counted once, from an interval over a whole fold and more. */
	insert_node(&nodes[3], 7 * C + 1, 7 * C + P + 3 * C);
	for (unsigned int s = 0; s < MMN_IX_SLOTS; s++) {
		set += slot_bit(s);
		test_checks++;
		if (tree.slot_count[s] != 1)
			assert_eq(tree.slot_count[s], 1);
	}
	expect_eq(set, MMN_IX_SLOTS);
	query(0, 7 * C);			/* set slots, no overlap: miss */
	query(7 * C + 1, 7 * C + 1);
	/* The last chunk of the address space. */
	insert_node(&nodes[4], ULONG_MAX - 10, ULONG_MAX);
	expect_eq(tree.slot_count[MMN_IX_SLOTS - 1], 2);
	query(ULONG_MAX, ULONG_MAX);
	empty_tree();
	for (unsigned int s = 0; s < MMN_IX_SLOTS; s++)
		set -= slot_bit(s);
	expect_eq(set, MMN_IX_SLOTS);		/* none left */
}

TEST(coverage)
{
	reset();
	printf("  structure: %lu splits, %lu root grows, %lu borrows, %lu merges, %lu root shrinks\n",
	       splits, grows, borrows, merges, shrinks);
	printf("  queries: %lu empty, %lu single, %lu many, %lu points\n", q_zero,
	       q_one, q_many, q_point);
	expect_gt(splits, 0);
	expect_gt(grows, 0);
	expect_gt(borrows, 0);
	expect_gt(merges, 0);
	expect_gt(shrinks, 0);
	expect_gt(q_zero, 0);
	expect_gt(q_one, 0);
	expect_gt(q_many, 0);
	expect_gt(q_point, 0);
}

int main(int argc, char **argv)
{
	test_rng_seed(&rng, test_seed_from_args(argc, argv));
	RUN(empty);
	RUN(boundaries);
	RUN(equal_starts);
	RUN(monotonic);
	RUN(random_sizes);
	RUN(reserve);
	RUN(chunk_summary);
	RUN(coverage);
	return test_report();
}
