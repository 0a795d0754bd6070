// SPDX-License-Identifier: MIT
/*
 * The domain's interval tree: a red-black tree (the CLRS formulation, NULL
 * leaves, explicit parent links) augmented with subtree maxima.
 *
 * Keeping the maxima right: a rotation leaves the set of nodes under the
 * rotated pair unchanged, so the new top inherits the old top's maximum and
 * only the node that moved down is recomputed. Structural changes that are not
 * rotations (attaching a leaf, splicing out a node) fix the path from the
 * lowest changed node up to the root before rebalancing starts.
 */
#include "itree.h"

#include <limits.h>

static unsigned long node_max(const struct mmn_itree_node *n)
{
	unsigned long max = n->last;

	if (n->left && n->left->subtree_last > max)
		max = n->left->subtree_last;
	if (n->right && n->right->subtree_last > max)
		max = n->right->subtree_last;
	return max;
}

static bool is_red(const struct mmn_itree_node *n)
{
	return n && n->red;
}

/* Make @new take @old's place under @old's parent. */
static void replace_child(struct mmn_itree *tree, struct mmn_itree_node *old,
			  struct mmn_itree_node *new)
{
	struct mmn_itree_node *parent = old->parent;

	if (!parent)
		tree->root = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
	if (new)
		new->parent = parent;
}

static void rotate_left(struct mmn_itree *tree, struct mmn_itree_node *x)
{
	struct mmn_itree_node *y = x->right;

	x->right = y->left;
	if (y->left)
		y->left->parent = x;
	replace_child(tree, x, y);
	y->left = x;
	x->parent = y;
	y->subtree_last = x->subtree_last;
	x->subtree_last = node_max(x);
}

static void rotate_right(struct mmn_itree *tree, struct mmn_itree_node *x)
{
	struct mmn_itree_node *y = x->left;

	x->left = y->right;
	if (y->right)
		y->right->parent = x;
	replace_child(tree, x, y);
	y->right = x;
	x->parent = y;
	y->subtree_last = x->subtree_last;
	x->subtree_last = node_max(x);
}

static struct mmn_itree_node *subtree_min(struct mmn_itree_node *n)
{
	while (n->left)
		n = n->left;
	return n;
}

static struct mmn_itree_node *successor(struct mmn_itree_node *n)
{
	struct mmn_itree_node *parent;

	if (n->right)
		return subtree_min(n->right);
	while ((parent = n->parent) && parent->right == n)
		n = parent;
	return parent;
}

static void insert_fixup(struct mmn_itree *tree, struct mmn_itree_node *z)
{
	struct mmn_itree_node *parent, *grand, *uncle;

	while ((parent = z->parent) && parent->red) {
		grand = parent->parent;	/* exists: a red node is never the root */
		if (parent == grand->left) {
			uncle = grand->right;
			if (is_red(uncle)) {
				parent->red = 0;
				uncle->red = 0;
				grand->red = 1;
				z = grand;
				continue;
			}
			if (z == parent->right) {
				rotate_left(tree, parent);
				z = parent;
				parent = z->parent;
			}
			parent->red = 0;
			grand->red = 1;
			rotate_right(tree, grand);
		} else {
			uncle = grand->left;
			if (is_red(uncle)) {
				parent->red = 0;
				uncle->red = 0;
				grand->red = 1;
				z = grand;
				continue;
			}
			if (z == parent->left) {
				rotate_right(tree, parent);
				z = parent;
				parent = z->parent;
			}
			parent->red = 0;
			grand->red = 1;
			rotate_left(tree, grand);
		}
	}
	tree->root->red = 0;
}

void itree_insert(struct mmn_itree *tree, struct mmn_itree_node *node)
{
	struct mmn_itree_node **link = &tree->root, *parent = NULL;
	bool leftmost = true;

	while (*link) {
		parent = *link;
		/* @node will be below @parent: raise the maximum on the way down. */
		if (parent->subtree_last < node->last)
			parent->subtree_last = node->last;
		if (node->start < parent->start) {
			link = &parent->left;
		} else {
			link = &parent->right;
			leftmost = false;
		}
	}
	node->left = NULL;
	node->right = NULL;
	node->parent = parent;
	node->red = 1;
	node->subtree_last = node->last;
	*link = node;
	if (leftmost)
		tree->leftmost = node;
	tree->count++;
	insert_fixup(tree, node);
}

/*
 * @x took the place of a removed black node and is "doubly black"; @parent is
 * its parent (needed because @x may be NULL).
 */
static void remove_fixup(struct mmn_itree *tree, struct mmn_itree_node *x,
			 struct mmn_itree_node *parent)
{
	struct mmn_itree_node *w;

	while (x != tree->root && !is_red(x)) {
		if (x == parent->left) {
			w = parent->right;	/* exists: black heights */
			if (w->red) {
				w->red = 0;
				parent->red = 1;
				rotate_left(tree, parent);
				w = parent->right;
			}
			if (!is_red(w->left) && !is_red(w->right)) {
				w->red = 1;
				x = parent;
				parent = x->parent;
				continue;
			}
			if (!is_red(w->right)) {
				w->left->red = 0;
				w->red = 1;
				rotate_right(tree, w);
				w = parent->right;
			}
			w->red = parent->red;
			parent->red = 0;
			w->right->red = 0;
			rotate_left(tree, parent);
		} else {
			w = parent->left;
			if (w->red) {
				w->red = 0;
				parent->red = 1;
				rotate_right(tree, parent);
				w = parent->left;
			}
			if (!is_red(w->left) && !is_red(w->right)) {
				w->red = 1;
				x = parent;
				parent = x->parent;
				continue;
			}
			if (!is_red(w->left)) {
				w->right->red = 0;
				w->red = 1;
				rotate_left(tree, w);
				w = parent->left;
			}
			w->red = parent->red;
			parent->red = 0;
			w->left->red = 0;
			rotate_right(tree, parent);
		}
		x = tree->root;
	}
	if (x)
		x->red = 0;
}

void itree_remove(struct mmn_itree *tree, struct mmn_itree_node *z)
{
	struct mmn_itree_node *x, *xparent, *y, *n;
	unsigned int removed_red;

	if (tree->leftmost == z)
		tree->leftmost = successor(z);

	if (!z->left || !z->right) {
		/* At most one child: it takes z's place. */
		x = z->left ? z->left : z->right;
		xparent = z->parent;
		removed_red = z->red;
		replace_child(tree, z, x);
	} else {
		/* Two children: z's successor y (no left child) takes its place. */
		y = subtree_min(z->right);
		removed_red = y->red;
		x = y->right;
		if (y->parent == z) {
			xparent = y;
		} else {
			xparent = y->parent;
			replace_child(tree, y, x);
			y->right = z->right;
			y->right->parent = y;
		}
		replace_child(tree, z, y);
		y->left = z->left;
		y->left->parent = y;
		y->red = z->red;
	}
	tree->count--;

	/* Every subtree that lost z (or lent y) lies on this path. */
	for (n = xparent; n; n = n->parent)
		n->subtree_last = node_max(n);

	if (!removed_red)
		remove_fixup(tree, x, xparent);
}

/*
 * Leftmost node of the subtree at @n whose interval overlaps [start, last].
 * The leftmost node with last >= start is the only candidate: any overlapping
 * node comes at or after it in order, so starts no earlier; if the candidate
 * begins after @last, nothing in the subtree overlaps.
 */
static struct mmn_itree_node *subtree_first(struct mmn_itree_node *n,
					    unsigned long start,
					    unsigned long last)
{
	for (;;) {
		if (n->left && n->left->subtree_last >= start) {
			n = n->left;
			continue;
		}
		if (n->start > last)
			return NULL;
		if (n->last >= start)
			return n;
		n = n->right;
		if (!n || n->subtree_last < start)
			return NULL;
	}
}

struct mmn_itree_node *itree_first(const struct mmn_itree *tree,
				   unsigned long start, unsigned long last)
{
	if (!tree->root || tree->root->subtree_last < start)
		return NULL;
	if (tree->leftmost->start > last)
		return NULL;
	return subtree_first(tree->root, start, last);
}

struct mmn_itree_node *itree_next(struct mmn_itree_node *n, unsigned long start,
				  unsigned long last)
{
	struct mmn_itree_node *parent;

	for (;;) {
		/* Everything after n inside its right subtree comes first. */
		if (n->right && n->right->subtree_last >= start)
			return subtree_first(n->right, start, last);
		/* Then the first ancestor that has n on its left. */
		while ((parent = n->parent) && parent->right == n)
			n = parent;
		if (!parent || parent->start > last)
			return NULL;
		n = parent;
		if (n->last >= start)
			return n;
	}
}

struct check_state {
	const struct mmn_itree_node *prev;	/* previous node in order */
	size_t count;
};

/* Returns the black height of @n's subtree, or -1 with *@err set. */
static int check_subtree(const struct mmn_itree_node *n,
			 const struct mmn_itree_node *parent,
			 struct check_state *st, const char **err)
{
	int left_height, right_height;

	if (!n)
		return 1;
	if (n->parent != parent) {
		*err = "itree: broken parent link";
		return -1;
	}
	if (n->last < n->start) {
		*err = "itree: interval ends before it starts";
		return -1;
	}
	if (n->red && (is_red(n->left) || is_red(n->right))) {
		*err = "itree: red node with a red child";
		return -1;
	}
	if (n->subtree_last != node_max(n)) {
		*err = "itree: wrong subtree maximum";
		return -1;
	}
	left_height = check_subtree(n->left, n, st, err);
	if (left_height < 0)
		return -1;
	if (st->prev && st->prev->start > n->start) {
		*err = "itree: nodes out of order";
		return -1;
	}
	st->prev = n;
	st->count++;
	right_height = check_subtree(n->right, n, st, err);
	if (right_height < 0)
		return -1;
	if (left_height != right_height) {
		*err = "itree: unequal black heights";
		return -1;
	}
	return left_height + !n->red;
}

const char *itree_check(const struct mmn_itree *tree)
{
	struct check_state st = { NULL, 0 };
	const char *err = NULL;

	if (tree->root && tree->root->red)
		return "itree: red root";
	if (check_subtree(tree->root, NULL, &st, &err) < 0)
		return err;
	if (st.count != tree->count)
		return "itree: wrong node count";
	if (tree->leftmost != (tree->root ? subtree_min(tree->root) : NULL))
		return "itree: wrong cached leftmost node";
	return NULL;
}
