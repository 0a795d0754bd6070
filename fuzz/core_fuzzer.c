// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: libmmn's core against the reference model in test/model/
 * (the one test/unit/oracle.c uses), one operation sequence per input.
 *
 * Input format. Two streams share the buffer, as in LLVM's
 * FuzzedDataProvider: operations and their arguments are read from the
 * front, what each callback does from the back, so that one callback more
 * or less does not shift the operations after it.
 *
 *   front: op arg... op arg... [0xff]       op = byte % MODEL_NR_OPS, 0xff: stop
 *   back:  ... cb2 cb1                      read last byte first
 *
 * A choice below n takes 1, 2, 4 or 8 little-endian bytes (n up to 2^8,
 * 2^16, 2^32, more) and is their value mod n; an exhausted stream gives 0,
 * which is always the common case (model.h). Each operation's choices are
 * listed above its function in test/model/model.c, and fuzz/make_corpus.py
 * writes the seed corpus in this format.
 *
 * When the front is exhausted (or at 0xff) every open region is closed in
 * the order the remaining choices say, every notifier is removed and the
 * domain is destroyed, each step checked; a leak is a failure too
 * (LeakSanitizer, per input).
 *
 * Single-threaded and deterministic. A call that the model says would wait
 * for the open period (remove of a notifier in the tree while the period is
 * odd, read_begin of a notifier the period has hit) is skipped, not run on a
 * helper thread as the oracle does: a thread per call would cost more than
 * the rest of an input and make coverage feedback depend on scheduling. The
 * *decision* to wait is still checked: the same remove from inside a callback
 * must return -EDEADLK (the model issues it there), and a call that waits
 * when it should not hangs the input, which libFuzzer reports as a timeout.
 * That a waiting call wakes with the right value is the oracle's job
 * (unit/oracle, unit/deferral) and the spin model's (test/spin).
 *
 * A failed check prints the last operations and aborts: libFuzzer saves the
 * input as crash-<sha1>. Replay one with MMN_FUZZ_TRACE=1 ./core_fuzzer FILE
 * to see every operation. MMN_FUZZ_STATS=1 prints the model's coverage
 * counters at exit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define NR_SUBS 16	/* few notifiers: equal starts and overlaps are common */
#define OP_STOP 0xff

static struct {
	const uint8_t *data;
	size_t front, back;	/* [front, back) is unread */
	bool stopped;		/* no more operations: MODEL_STREAM_OPS gives 0 */
} in;

static struct model_config cfg;

static uint64_t fuzz_below(void *arg, enum model_stream stream, uint64_t n)
{
	size_t width = n == 0 || n > (1ull << 32) ? 8 : n > (1u << 16) ? 4 : n > (1u << 8) ? 2 : 1;
	uint64_t v = 0;

	(void)arg;
	if (n == 1 || (stream == MODEL_STREAM_OPS && in.stopped) || in.back - in.front < width)
		return 0;
	for (size_t i = 0; i < width; i++) {
		uint8_t b = stream == MODEL_STREAM_OPS ? in.data[in.front++] : in.data[--in.back];

		v |= (uint64_t)b << (8 * i);
	}
	return n ? v % n : v;
}

static void print_stats(void)
{
	fprintf(stderr, "core_fuzzer: model coverage over every input:\n");
	model_print_coverage(stderr);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *abort_env = getenv("MMN_ABORT_ON_WARN");
	const char *trace = getenv("MMN_FUZZ_TRACE");
	const char *stats = getenv("MMN_FUZZ_STATS");

	(void)argc;
	(void)argv;
	cfg = (struct model_config){
		.below = fuzz_below,
		.nr_subs = NR_SUBS,
		/* MMN_ABORT_ON_WARN=1 would turn every warning into a crash. */
		.allow_warn = !(abort_env && strcmp(abort_env, "1") == 0),
		.trace = trace && strcmp(trace, "1") == 0,
	};
	if (stats && strcmp(stats, "1") == 0)
		atexit(print_stats);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in.data = data;
	in.front = 0;
	in.back = size;
	in.stopped = false;
	model_init(&cfg);
	while (in.front < in.back) {
		uint8_t op = in.data[in.front++];

		if (op == OP_STOP)
			break;
		model_step((enum model_op)(op % MODEL_NR_OPS));
	}
	in.stopped = true;
	model_fini();
	return 0;
}
