/* SPDX-License-Identifier: MIT */
/*
 * The reference model of libmmn's core, and the differential driver that
 * runs the library against it. Shared by two front ends:
 *
 *   test/unit/oracle.c    seeded random operations; calls that must wait for
 *                         the open period run on helper threads;
 *   fuzz/core_fuzzer.c    operations decoded from libFuzzer's bytes, on one
 *                         thread; calls that would wait are skipped.
 *
 * The model is brute force: plain arrays, no tree. Before every library call
 * it predicts the exact list of callbacks the call causes (which notifier,
 * first pass or finish, in which order: ascending start, equal starts in
 * tree-insertion order, deferred inserts applied FIFO when the period ends),
 * with which cur_seq and range, and what the domain's statistics read inside
 * each callback. It also draws what each callback does (set_seq or not,
 * return false, hand back a finish, insert, remove, read_begin or start a
 * nested invalidation from inside) and the return codes those calls must
 * give. Callbacks consume that plan in order; the first difference is a
 * failure. After every operation the driver compares every statistics field,
 * the log hook's counts, every notifier's tree membership, interval and
 * sequence, and mmn_mm_test_check().
 *
 * Every choice comes from the front end's model_config.below(), tagged with
 * the stream that asks: MODEL_STREAM_OPS for the operations and their
 * arguments, MODEL_STREAM_CALLBACKS for what callbacks do. The oracle draws
 * both from one PRNG; the fuzzer reads the first from the front of its input
 * and the second from the back, so that a callback more or less does not
 * shift the operations that follow. A choice of 0 (what an exhausted input
 * gives) is always the common case: set_seq, return true, queue a finish, do
 * nothing else.
 *
 * Single-threaded: the model, the checks and every callback run on the
 * thread that calls model_step(). Link with libmmn's static library (the
 * core's test hooks, src/core/internal.h).
 */
#ifndef MMN_TEST_MODEL_H
#define MMN_TEST_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mmn.h"

#define MODEL_MAX_SUBS 96	/* notifiers in play, at most */
#define MODEL_MAX_OPEN 6	/* regions opened by operations and left open */

enum model_stream {
	MODEL_STREAM_OPS,	/* which operation, on what, with what */
	MODEL_STREAM_CALLBACKS,	/* what each callback does */
};

/**
 * struct model_config - what the front end provides
 * @below: a choice, uniform in [0, @n); @n == 0 means any 64-bit value.
 *	Must return 0 for @n == 1.
 * @arg: passed to @below
 * @nr_subs: notifiers in play (1..MODEL_MAX_SUBS); fewer collide more often
 * @allow_warn: make calls that the core reports as warnings (a false return on
 *	a blockable range, an _end without a region); false under
 *	MMN_ABORT_ON_WARN=1
 * @wait_remove: the model says mmn_interval_notifier_remove(@id) must wait for
 *	the open period. Start it on another thread and return true once it is
 *	proven waiting (stats.remove_waits one above the model's), or return
 *	false to skip it. NULL: skip.
 * @wait_read_begin: the same for mmn_interval_read_begin(@id), which must
 *	return @expect (proof: stats.read_begin_waits one above the model's)
 * @period_ended: the period ended during the operation: every call started by
 *	the two hooks above must now return, with the value predicted
 * @fail: a check failed and was reported on stderr; must not return (the
 *	model aborts if it does)
 * @trace: print every operation on stderr as it completes
 */
struct model_config {
	uint64_t (*below)(void *arg, enum model_stream stream, uint64_t n);
	void *arg;
	int nr_subs;
	bool allow_warn;
	bool (*wait_remove)(int id);
	bool (*wait_read_begin)(int id, unsigned long expect);
	void (*period_ended)(void);
	void (*fail)(void);
	bool trace;
};

enum model_state {
	MS_NONE,		/* not inserted */
	MS_IN_TREE,
	MS_PENDING_INSERT,	/* deferred: joins the tree when the period ends */
	MS_PENDING_REMOVE,	/* in the tree; a remove waits for the period */
};

/* One notifier: the library's struct and the model's view of it. */
struct model_sub {
	struct mmn_interval_notifier sub;
	int id;
	bool two_pass;
	enum model_state state;
	unsigned long start, last;
	uint64_t order;			/* when it entered the tree */
	unsigned long seq;		/* its invalidate_seq */
	unsigned long saved_seq;	/* a read_begin result, for read_retry */
};

/* The model's view of the domain. */
struct model {
	struct mmn_mm *mm;
	unsigned long seq, active, notifiers;
	int deferred[MODEL_MAX_SUBS];	/* FIFO of sub ids */
	int nr_deferred;
	struct mmn_stats st;		/* counters; the rest is derived */
	uint64_t order_clock;
	unsigned long period_ends;
	unsigned long log_err, log_warn;
	long op_no;			/* operations since model_init() */
	char op_desc[200];		/* the current operation, for reports */
	unsigned long checks;		/* checks made, for the final report */
};

/* What the runs reached, so that a quiet run cannot pass for a thorough one. */
struct model_cov {
	unsigned long ins_idle, ins_partial, ins_deferred, ins_ebusy, ins_einval,
		ins_eoverflow, ins_in_cb;
	unsigned long rm_direct, rm_pending_insert, rm_waited, rm_edeadlk, rm_einval,
		rm_skipped;
	unsigned long rb_direct, rb_waited, rb_in_cb, rb_not_inserted, rb_skipped;
	unsigned long opens, opens_miss, eagain, nested, cb_release, releases;
	unsigned long period_ends, false_blockable, finishes, decoys, wraps;
	unsigned long destroys, set_seq, max_open, max_callbacks;
};

extern struct model model;
extern struct model_sub model_subs[MODEL_MAX_SUBS];
extern struct model_cov model_cov;	/* summed over every model_init() */

enum model_op {
	MODEL_OP_INSERT,	/* valid and refused inserts */
	MODEL_OP_REMOVE,
	MODEL_OP_OPEN,		/* blockable or not; left open */
	MODEL_OP_CLOSE,		/* _end of one open region, chosen */
	MODEL_OP_READ_BEGIN,
	MODEL_OP_RETRY,		/* read_retry and check_retry */
	MODEL_OP_RELEASE,
	MODEL_OP_MISC,		/* refused calls, range_init, a busy destroy, ... */
	MODEL_OP_SET_SEQ,	/* mmn_mm_test_set_seq(), mostly near ULONG_MAX */
	MODEL_OP_NEW_DOMAIN,	/* drain, destroy, start a new domain */
	MODEL_NR_OPS
};

/* Start: fresh notifiers and domain, the log hook installed, checked. */
void model_init(const struct model_config *cfg);
/* One operation, then every check. */
void model_step(enum model_op op);
/* Close every region, remove every notifier, destroy the domain, checked. */
void model_fini(void);
void model_print_coverage(FILE *f);

#endif /* MMN_TEST_MODEL_H */
