// SPDX-License-Identifier: MIT
/*
 * Differential test: a long seeded sequence of core calls, each checked
 * against the brute-force reference model in test/model/ (plain arrays, no
 * tree), which fuzz/core_fuzzer.c shares.
 *
 * The model predicts, before every call, the exact list of callbacks it will
 * cause: which notifier, first pass or finish, in which order (ascending
 * start, equal starts in tree-insertion order, deferred inserts applied FIFO
 * at the end of the period), with which cur_seq and range, and what the
 * domain's statistics read inside each callback. It also draws what each
 * callback does (set_seq or not, return false, hand back a finish, insert,
 * remove, read_begin or start a nested invalidation from inside) and the
 * return codes those calls must give. Callbacks consume that plan in order
 * and stop the test at the first difference. After every operation the test
 * compares every statistics field, the log hook's counts, every notifier's
 * tree membership, interval and sequence, and mmn_mm_test_check() (also run
 * inside every callback).
 *
 * This file is the model's seeded front end: the choices come from one PRNG,
 * and everything runs on one thread, except calls the model says must wait
 * for the open period (remove of a notifier in the tree, read_begin of a
 * notifier already invalidated in this period): those run on helper threads,
 * which the test proves parked (through the statistics) and joins, with a
 * bounded wait, when the model says the period has ended.
 *
 * Usage: unit_oracle [seed [operations]]   (default: clock seed, 20000)
 */
#include <limits.h>

#include "harness.h"
#include "internal.h"
/*
 * One binary per file (test/CMakeLists.txt), so the model is compiled into
 * this one; the fuzz target links test/model/model.c as a source of its own.
 */
#include "model/model.c"

#define NSUBS 96
#define MAX_HELPERS 4

static struct test_rng rng;
static bool allow_warn;		/* MMN_ABORT_ON_WARN=1 would abort on WARN cases */
static long nr_ops = 20000;

/* Checks of the front end itself; the model's own are counted in model.checks. */
#define OCHECK(cond, ...)                                                       \
	do {                                                                    \
		test_count_check();                                             \
		if (!(cond)) {                                                  \
			test_fail_at(__FILE__, __LINE__);                       \
			fprintf(stderr, "    operation %ld: %s\n    check: %s\n    ", \
				model.op_no, model.op_desc, #cond);             \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			test_exit_now();                                        \
		}                                                               \
	} while (0)

static uint64_t oracle_below(void *arg, enum model_stream stream, uint64_t n)
{
	(void)arg;
	(void)stream;	/* one PRNG for both */
	return n ? test_rng_below(&rng, n) : test_rng_next(&rng);
}

static void oracle_fail(void)
{
	__atomic_add_fetch(&test_failures, 1, __ATOMIC_RELAXED);
	test_exit_now();
}

/* ---- helper threads: the calls that must wait for the period ----------- */

struct helper {
	pthread_t thread;
	bool used;
	bool remove;
	int sub;
	unsigned long result, expect;
};
static struct helper helpers[MAX_HELPERS];
static int nr_helpers;

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	struct mmn_interval_notifier *sub = &model_subs[h->sub].sub;

	if (h->remove)
		h->result = (unsigned long)(long)mmn_interval_notifier_remove(sub);
	else
		h->result = mmn_interval_read_begin(sub);
	return NULL;
}

/* The counter moves under the lock, just before the call sleeps. */
static bool helper_parked(bool remove, uint64_t target)
{
	struct mmn_stats st;

	mmn_mm_get_stats(model.mm, &st);
	return (remove ? st.remove_waits : st.read_begin_waits) == target;
}

static bool helper_start(bool remove, int id, unsigned long expect)
{
	uint64_t target = (remove ? model.st.remove_waits : model.st.read_begin_waits) + 1;
	struct helper *h = NULL;

	for (int i = 0; i < MAX_HELPERS; i++)
		if (!helpers[i].used)
			h = &helpers[i];
	if (!h)
		return false;
	*h = (struct helper){ .used = true, .remove = remove, .sub = id, .expect = expect };
	nr_helpers++;
	OCHECK(pthread_create(&h->thread, NULL, helper_main, h) == 0, "pthread_create");
	OCHECK(wait_until(helper_parked(remove, target), 10000),
	       "%s on sub %d did not wait", remove ? "remove" : "read_begin", id);
	return true;
}

static bool wait_remove(int id)
{
	return helper_start(true, id, 0);
}

static bool wait_read_begin(int id, unsigned long expect)
{
	return helper_start(false, id, expect);
}

/* The period ended: every helper must return, with the value predicted. */
static void helpers_join(void)
{
	for (int i = 0; i < MAX_HELPERS; i++) {
		struct helper *h = &helpers[i];
		struct timespec deadline;

		if (!h->used)
			continue;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 10;
		OCHECK(pthread_timedjoin_np(h->thread, NULL, &deadline) == 0,
		       "%s on sub %d still waiting after the period ended",
		       h->remove ? "remove" : "read_begin", h->sub);
		OCHECK(h->result == h->expect, "%s on sub %d returned %#lx, expected %#lx",
		       h->remove ? "remove" : "read_begin", h->sub, h->result, h->expect);
		h->used = false;
		nr_helpers--;
	}
}

/* ---- the run ------------------------------------------------------------- */

static enum model_op pick_op(void)
{
	uint64_t r = test_rng_below(&rng, 1000);

	if (r < 200)
		return MODEL_OP_INSERT;
	if (r < 340)
		return MODEL_OP_REMOVE;
	if (r < 500)
		return MODEL_OP_OPEN;
	if (r < 680)
		return MODEL_OP_CLOSE;
	if (r < 820)
		return MODEL_OP_READ_BEGIN;
	if (r < 870)
		return MODEL_OP_RETRY;
	if (r < 890)
		return MODEL_OP_RELEASE;
	if (r < 998)
		return MODEL_OP_MISC;	/* test_set_seq among them */
	return MODEL_OP_NEW_DOMAIN;
}

TEST(differential)
{
	const struct model_config cfg = {
		.below = oracle_below,
		.nr_subs = NSUBS,
		.allow_warn = allow_warn,
		.wait_remove = wait_remove,
		.wait_read_begin = wait_read_begin,
		.period_ended = helpers_join,
		.fail = oracle_fail,
	};

	model_init(&cfg);
	for (long i = 0; i < nr_ops; i++) {
		enum model_op op = pick_op();

		model_step(op);
		if (op == MODEL_OP_NEW_DOMAIN)
			OCHECK(nr_helpers == 0, "helpers left after the last region closed");
	}
	model_fini();
	OCHECK(nr_helpers == 0, "helpers left after the last region closed");
	test_checks += model.checks > INT_MAX / 2 ? INT_MAX / 2 : (int)model.checks;
}

TEST(coverage)
{
	const struct model_cov *c = &model_cov;

	model_print_coverage(stdout);
	if (nr_ops < 10000)
		return;		/* too short a run to demand every case */
	expect_gt(c->ins_idle, 0);
	expect_gt(c->ins_partial, 0);
	expect_gt(c->ins_deferred, 0);
	expect_gt(c->ins_in_cb, 0);
	expect_gt(c->ins_ebusy, 0);
	expect_gt(c->ins_einval, 0);
	expect_gt(c->ins_eoverflow, 0);
	expect_gt(c->rm_direct, 0);
	expect_gt(c->rm_pending_insert, 0);
	expect_gt(c->rm_waited, 0);
	expect_gt(c->rm_edeadlk, 0);
	expect_gt(c->rm_einval, 0);
	expect_gt(c->rb_direct, 0);
	expect_gt(c->rb_waited, 0);
	expect_gt(c->rb_in_cb, 0);
	expect_gt(c->eagain, 0);
	expect_gt(c->nested, 0);
	expect_gt(c->opens_miss, 0);
	expect_gt(c->releases + c->cb_release, 0);
	expect_gt(c->finishes, 0);
	expect_gt(c->decoys, 0);
	expect_gt(c->wraps, 0);
	expect_gt(c->set_seq, 0);
	expect_gt(c->destroys, 1);
	expect_ge(c->max_open, 3);
	if (allow_warn)
		expect_gt(c->false_blockable, 0);
}

int main(int argc, char **argv)
{
	const char *abort_env = getenv("MMN_ABORT_ON_WARN");

	test_rng_seed(&rng, test_seed_from_args(argc, argv));
	if (argc > 2)
		nr_ops = strtol(argv[2], NULL, 0);
	allow_warn = !(abort_env && strcmp(abort_env, "1") == 0);
	if (!allow_warn)
		printf("MMN_ABORT_ON_WARN=1: no call that warns is made\n");
	RUN(differential);
	RUN(coverage);
	return test_report();
}
