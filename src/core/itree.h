/* SPDX-License-Identifier: MIT */
/*
 * The domain's interval index: closed intervals [start, last], each one a
 * struct mmn_itree_node embedded in a notifier, held in an augmented B+-tree
 * with wide nodes (docs/DESIGN.md, "The interval index").
 *
 * Every node holds up to MMN_IX_FAN entries in parallel arrays: in a leaf the
 * starts, lasts and node pointers of its intervals, sorted by start; in an
 * inner node the first start, the maximum last and the pointer of each
 * child. Each node also keeps the prefix maximum of its entries' lasts,
 * which is non-decreasing, so "the first entry that ends at or after x" is a
 * search of one array. Equal starts keep insertion order: an insert goes
 * after every entry with the same start.
 *
 * A stabbing query descends once (O(log n)) to the first interval in walk
 * order that ends at or after the query's start; the iterator then moves
 * right, skipping whole subtrees that end too early and stopping at the first
 * start past the query's last: O(log n + k).
 *
 * Memory. Nodes are allocated, but never by the tree operations themselves:
 * they take nodes from the tree's spare list, which the caller fills
 * beforehand (outside its lock) with mmn_itree_spare_needed() nodes. An
 * insert into a tree of height h takes at most h + 1 nodes; a removal takes
 * none and gives nodes back to the spare list. So once k inserts are paid
 * for, any sequence of those inserts and any removals runs without
 * allocating -- which is what lets the notifier core apply deferred inserts
 * inside mmn_invalidate_range_end(), in a free() or munmap hook.
 *
 * Not thread-safe: the caller serialises changes, and walkers (first/next)
 * rely on the tree not changing while they walk (the notifier core's odd
 * period, see notifier.c). The one exception is mmn_itree_probe_miss(): a
 * seqlock reader that may run during any change, validated by the tree's
 * generation. It needs the nodes to stay readable memory while it runs: the
 * caller frees nodes (mmn_itree_nodes_free) only when no probe can be inside.
 */
#ifndef MMN_ITREE_H
#define MMN_ITREE_H

#include <stdbool.h>
#include <stddef.h>

#include "hidden.h"
#include "mmn.h"

#define MMN_IX_FAN 32		/* entries per node */
#define MMN_IX_MIN 4		/* entries per node other than the root, at least */
#define MMN_IX_MAX_HEIGHT 24	/* more than 2^40 intervals would need */

/*
 * The chunk summary: the address space in 64 KiB chunks, folded onto 2048
 * slots (a chunk's slot is its number modulo 2048, so the slots repeat every
 * 128 MiB). A slot's bit is set while some interval overlaps one of its chunks,
 * so a range whose slots are all clear overlaps nothing, and the probe says
 * so from one cache line of the tree, without descending it. That is the
 * common case it exists for: free() and munmap of memory nobody registered,
 * with the registrations elsewhere.
 */
#define MMN_IX_CHUNK_SHIFT 16
#define MMN_IX_SLOTS 2048

struct mmn_ix_node;

struct mmn_itree {
	/*
	 * Generation: odd while an insert or removal changes the tree, bumped
	 * twice by each; what lets mmn_itree_probe_miss() read without a lock.
	 */
	unsigned long gen;
	struct mmn_ix_node *root;	/* NULL when empty */
	unsigned int height;		/* levels, leaves included; 0 when empty */
	/* The chunk summary's bits: read by the probe, stored as node fields are. */
	unsigned long slot_bits[MMN_IX_SLOTS / (8 * sizeof(unsigned long))];
	size_t count;			/* intervals */
	struct mmn_ix_node *spare;	/* nodes paid for, linked through ->parent */
	size_t nr_spare;
	size_t nr_nodes;		/* in the tree */
	/* Structural events, for the tests' coverage checks. */
	unsigned long splits, borrows, merges, grows, shrinks;
	/* Intervals overlapping each slot's chunks; a bit is set while its count is not 0. */
	unsigned int slot_count[MMN_IX_SLOTS];
};

/* A walk's position: the path from the root to the current leaf entry. */
struct mmn_itree_iter {
	struct mmn_ix_node *node[MMN_IX_MAX_HEIGHT];
	unsigned char idx[MMN_IX_MAX_HEIGHT];
	unsigned int depth;		/* the leaf's level in node[] */
	unsigned long start, last;	/* the query */
};

/*
 * @node->start and @node->last must be set. The tree must hold
 * mmn_itree_spare_needed(@tree, 1) spare nodes.
 */
MMN_HIDDEN void mmn_itree_insert(struct mmn_itree *tree, struct mmn_itree_node *node);
/* Never needs a spare node; the nodes it frees join the spare list. */
MMN_HIDDEN void mmn_itree_remove(struct mmn_itree *tree, struct mmn_itree_node *node);

/* First interval, in walk order, that overlaps [start, last]; NULL if none. */
MMN_HIDDEN struct mmn_itree_node *mmn_itree_first(const struct mmn_itree *tree,
				       struct mmn_itree_iter *it,
				       unsigned long start, unsigned long last);
/* The next one after the last returned by @it; NULL when there is none. */
MMN_HIDDEN struct mmn_itree_node *mmn_itree_next(struct mmn_itree_iter *it);

/*
 * Lock-free and allocation-free: true only if no interval of the tree
 * overlaps [start, last] at one moment during the call (a linearisable
 * miss); false on a hit and whenever a concurrent change got in the way (the
 * caller then asks again under its lock). Never dereferences a notifier.
 */
MMN_HIDDEN bool mmn_itree_probe_miss(const struct mmn_itree *tree, unsigned long start,
				     unsigned long last);

/*
 * Spare nodes the tree must hold so that @inserts inserts (and any removals)
 * can be applied one after the other without allocating.
 */
MMN_HIDDEN size_t mmn_itree_spare_needed(const struct mmn_itree *tree, size_t inserts);
/*
 * Allocate @n nodes, linked as a list: all or nothing (NULL and errno
 * ENOMEM). Call it without any lock an invalidation may take.
 */
MMN_HIDDEN struct mmn_ix_node *mmn_itree_nodes_alloc(size_t n);
/* Give a list from mmn_itree_nodes_alloc() to the tree's spare list. */
MMN_HIDDEN void mmn_itree_spare_give(struct mmn_itree *tree, struct mmn_ix_node *list);
/*
 * Detach the spare nodes beyond mmn_itree_spare_needed(@tree, @inserts) (all
 * of them for @inserts == 0 on an empty tree) and return them as a list.
 */
MMN_HIDDEN struct mmn_ix_node *mmn_itree_spare_trim(struct mmn_itree *tree, size_t inserts);
/* Free a list of nodes (outside any lock an invalidation may take). */
MMN_HIDDEN void mmn_itree_nodes_free(struct mmn_ix_node *list);

/*
 * Checks order (equal starts: not checked here, the callers' tests do),
 * parent links, leaf depth, node occupancy, prefix and subtree maxima, child
 * starts, each interval's leaf link, the counts, the chunk summary's counts
 * and bits, and that the spare list pays for @pending_inserts inserts.
 * Returns NULL if the tree is sound, else a constant text naming the first
 * broken invariant. O(n + the slots the intervals cover).
 */
MMN_HIDDEN const char *mmn_itree_check(const struct mmn_itree *tree, size_t pending_inserts);

#endif /* MMN_ITREE_H */
