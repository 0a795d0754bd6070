/* SPDX-License-Identifier: MIT */
/*
 * Augmented red-black interval tree of closed intervals [start, last].
 *
 * Keyed by start; a node whose start equals an existing node's goes to its
 * right, so in-order iteration gives ascending start and, for equal starts,
 * insertion order. Every node carries the maximum `last` of its subtree, which
 * lets a stabbing query skip subtrees that end before the query starts:
 * itree_first() is O(log n) and each itree_next() amortised O(log n), so a
 * query that reports k intervals costs O(log n + k).
 *
 * Not thread-safe: the caller serialises changes, and readers rely on the tree
 * not changing while they walk (the notifier core's odd period, see notifier.c).
 */
#ifndef MMN_ITREE_H
#define MMN_ITREE_H

#include <stdbool.h>
#include <stddef.h>

#include "mmn.h"

struct mmn_itree {
	struct mmn_itree_node *root;
	struct mmn_itree_node *leftmost;	/* cached: lowest start */
	size_t count;
};

/* @node->start and @node->last must be set; the rest is overwritten. */
void itree_insert(struct mmn_itree *tree, struct mmn_itree_node *node);
void itree_remove(struct mmn_itree *tree, struct mmn_itree_node *node);

/* First node, in walk order, that overlaps [start, last]; NULL if none. */
struct mmn_itree_node *itree_first(const struct mmn_itree *tree,
				   unsigned long start, unsigned long last);
/* Next node after @node, in walk order, that overlaps [start, last]. */
struct mmn_itree_node *itree_next(struct mmn_itree_node *node,
				  unsigned long start, unsigned long last);

/*
 * Checks order, parent links, red-black balance, subtree maxima, the cached
 * leftmost node and the count. Returns NULL if the tree is sound, else a
 * constant text naming the first broken invariant. O(n).
 */
const char *itree_check(const struct mmn_itree *tree);

#endif /* MMN_ITREE_H */
