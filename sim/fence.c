// SPDX-License-Identifier: MIT
/*
 * Fences: completion of a simulated device operation at a deadline.
 *
 * A fence's state lives in one futex word, generation << 2 | state:
 *
 *   SIGNALLED  --arm-->  PENDING  --deadline seen-->  SIGNALLING  -->  SIGNALLED
 *                           |  expedite: deadline = now, generation + 1
 *
 * Nobody completes a fence in the background: the first waiter or poller that
 * finds its deadline passed moves it to SIGNALLING, runs the retire function
 * (the device's side of completing the operation), and publishes SIGNALLED.
 * Waiters sleep on the word with FUTEX_WAIT_BITSET and the deadline as an
 * absolute CLOCK_MONOTONIC timeout, so waiting for 64 devices is 64 short
 * sleeps (most already past) on one thread and nothing spins. The generation
 * makes a waiter that read an old deadline fail its futex wait when
 * mmn_sim_fence_expedite() changes it.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sim_internal.h"

enum {
	FENCE_SIGNALLED = 0,
	FENCE_PENDING = 1,
	FENCE_SIGNALLING = 2,
};

#define FENCE_STATE(w) ((w) & 3u)
#define FENCE_GEN_STEP 4u

static void futex_wait_abs(uint32_t *word, uint32_t val, uint64_t abs_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(abs_ns / 1000000000u),
		.tv_nsec = (long)(abs_ns % 1000000000u),
	};

	/* Without FUTEX_CLOCK_REALTIME the absolute timeout is CLOCK_MONOTONIC. */
	syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val,
		abs_ns == UINT64_MAX ? NULL : &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL,
		NULL, 0);
}

static uint32_t fence_word(struct mmn_sim_fence *fence)
{
	return __atomic_load_n(&fence->word, __ATOMIC_SEQ_CST);
}

/* Wake sleepers after @word changed; pairs with the increment in fence_sleep(). */
static void fence_wake(struct mmn_sim_fence *fence)
{
	if (__atomic_load_n(&fence->waiters, __ATOMIC_SEQ_CST))
		futex_wake_all(&fence->word);
}

static void fence_sleep(struct mmn_sim_fence *fence, uint32_t w, uint64_t abs_ns)
{
	/*
	 * Seq-cst increment, then the kernel compares @word with @w: a
	 * signaller that stores @word and then reads no waiter cannot have
	 * been missed, because our compare then sees its store.
	 */
	__atomic_fetch_add(&fence->waiters, 1, __ATOMIC_SEQ_CST);
	futex_wait_abs(&fence->word, w, abs_ns);
	__atomic_fetch_sub(&fence->waiters, 1, __ATOMIC_SEQ_CST);
}

/* Complete a fence seen PENDING as @w; false if someone changed it first. */
static bool fence_try_signal(struct mmn_sim_fence *fence, uint32_t w)
{
	uint32_t gen = w & ~3u;
	mmn_sim_fence_retire_fn *retire;

	if (!__atomic_compare_exchange_n(&fence->word, &w, gen | FENCE_SIGNALLING,
					 false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return false;
	/* Written by arm before its release of PENDING; we acquired that. */
	retire = fence->retire;
	if (retire)
		retire(fence);
	/* Release: waiters that see SIGNALLED see what retire did. */
	__atomic_store_n(&fence->word, gen | FENCE_SIGNALLED, __ATOMIC_SEQ_CST);
	fence_wake(fence);
	return true;
}

bool sim_fence_pending(struct mmn_sim_fence *fence)
{
	return FENCE_STATE(fence_word(fence)) != FENCE_SIGNALLED;
}

void mmn_sim_fence_init(struct mmn_sim_fence *fence)
{
	fence->word = FENCE_SIGNALLED;
	fence->waiters = 0;
	fence->deadline_ns = 0;
	fence->retire = NULL;
}

int mmn_sim_fence_arm(struct mmn_sim_fence *fence, uint64_t deadline_ns,
		      mmn_sim_fence_retire_fn *retire)
{
	uint32_t w = fence_word(fence);

	if (FENCE_STATE(w) != FENCE_SIGNALLED)
		return -EBUSY;
	fence->retire = retire;
	__atomic_store_n(&fence->deadline_ns, deadline_ns, __ATOMIC_SEQ_CST);
	if (!__atomic_compare_exchange_n(&fence->word, &w,
					 ((w & ~3u) + FENCE_GEN_STEP) | FENCE_PENDING,
					 false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return -EBUSY;
	return 0;
}

bool mmn_sim_fence_is_signalled(struct mmn_sim_fence *fence)
{
	uint32_t w = fence_word(fence);

	if (FENCE_STATE(w) == FENCE_PENDING &&
	    mmn_sim_now_ns() >= __atomic_load_n(&fence->deadline_ns, __ATOMIC_SEQ_CST))
		fence_try_signal(fence, w);
	return FENCE_STATE(fence_word(fence)) == FENCE_SIGNALLED;
}

int mmn_sim_fence_wait_until(struct mmn_sim_fence *fence, uint64_t abs_ns)
{
	for (;;) {
		uint32_t w = fence_word(fence);
		uint64_t now, sleep_to = abs_ns;

		if (FENCE_STATE(w) == FENCE_SIGNALLED)
			return 0;
		now = mmn_sim_now_ns();
		if (FENCE_STATE(w) == FENCE_PENDING) {
			uint64_t dl = __atomic_load_n(&fence->deadline_ns,
						      __ATOMIC_SEQ_CST);

			if (now >= dl) {
				fence_try_signal(fence, w);
				continue;
			}
			if (dl < sleep_to)
				sleep_to = dl;
		}
		if (now >= abs_ns)
			return -ETIMEDOUT;
		fence_sleep(fence, w, sleep_to);
	}
}

void mmn_sim_fence_wait(struct mmn_sim_fence *fence)
{
	mmn_sim_fence_wait_until(fence, UINT64_MAX);
}

void mmn_sim_fence_expedite(struct mmn_sim_fence *fence)
{
	uint32_t w = fence_word(fence);

	for (;;) {
		if (FENCE_STATE(w) != FENCE_PENDING)
			return;
		/* Deadline first: a waiter that reads the old one fails its wait. */
		__atomic_store_n(&fence->deadline_ns, mmn_sim_now_ns(), __ATOMIC_SEQ_CST);
		if (__atomic_compare_exchange_n(&fence->word, &w, w + FENCE_GEN_STEP,
						false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			break;
	}
	fence_wake(fence);
}
