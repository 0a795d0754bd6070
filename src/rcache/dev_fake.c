// SPDX-License-Identifier: MIT
/*
 * The fake device: registers nothing, counts everything.
 *
 * Its deregistration has the two-pass shape of a real one: the start records
 * a deadline (now + latency), the finish waits for it, spinning or sleeping.
 * N such devices deregistered by a two-pass walk cost about one latency;
 * device after device, N latencies. With snapshot, a registration reads the
 * first word of the range's first and last page, as a pinning device would
 * see them: tests compare those words with the memory to catch a stale
 * registration. The read goes through process_vm_readv(), so unmapped memory
 * makes the registration fail (-EFAULT) instead of crashing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "rcache_fake.h"

struct mmn_rcache_fake {
	struct mmn_rcache_fake_config cfg;
	uint64_t next_id;		/* atomic */
	uint64_t regs, reg_failures;	/* atomic */
	uint64_t dereg_starts, dereg_finishes;	/* atomic */
	uint64_t inflight, max_inflight;	/* atomic */
	uint64_t last_finish_ns;	/* atomic */
	unsigned int fail_n;		/* atomic */
	int fail_err;			/* atomic */
	void (*hook)(void *arg, unsigned long start, unsigned long length);	/* atomic */
	void *hook_arg;			/* atomic */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first 8 bytes at @addr, read like a device would: -EFAULT if unmapped. */
static int peek_word(unsigned long addr, uint64_t *word)
{
	struct iovec local = { .iov_base = word, .iov_len = sizeof(*word) };
	struct iovec remote = { .iov_base = (void *)addr, .iov_len = sizeof(*word) };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	if (n == (ssize_t)sizeof(*word))
		return 0;
	return n < 0 && errno != EFAULT ? -errno : -EFAULT;
}

static int fake_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	struct mmn_rcache_fake *f = dev;
	struct mmn_rcache_fake_reg *r = priv;
	void (*hook)(void *, unsigned long, unsigned long);
	unsigned int n;
	int err = 0;

	hook = __atomic_load_n(&f->hook, __ATOMIC_ACQUIRE);
	if (hook)
		hook(__atomic_load_n(&f->hook_arg, __ATOMIC_RELAXED), start, length);

	n = __atomic_load_n(&f->fail_n, __ATOMIC_RELAXED);
	while (n && !__atomic_compare_exchange_n(&f->fail_n, &n, n - 1, true, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
		;
	if (n)
		err = __atomic_load_n(&f->fail_err, __ATOMIC_RELAXED);
	if (!err && f->cfg.snapshot) {
		long page = sysconf(_SC_PAGESIZE);

		err = peek_word(start, &r->first);
		if (!err)
			err = peek_word((start + length - 1) & ~(unsigned long)(page - 1), &r->last);
	}
	if (err) {
		__atomic_add_fetch(&f->reg_failures, 1, __ATOMIC_RELAXED);
		return err;
	}
	r->start = start;
	r->length = length;
	r->id = __atomic_add_fetch(&f->next_id, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&r->state, MMN_RCACHE_FAKE_REGISTERED, __ATOMIC_RELEASE);
	__atomic_add_fetch(&f->regs, 1, __ATOMIC_RELAXED);
	return 0;
}

static void fake_dereg_start(void *dev, void *priv)
{
	struct mmn_rcache_fake *f = dev;
	struct mmn_rcache_fake_reg *r = priv;
	uint64_t in, max;

	r->deadline_ns = f->cfg.latency_ns ? now_ns() + f->cfg.latency_ns : 0;
	__atomic_store_n(&r->state, MMN_RCACHE_FAKE_DEREG_STARTED, __ATOMIC_RELEASE);
	__atomic_add_fetch(&f->dereg_starts, 1, __ATOMIC_RELAXED);
	in = __atomic_add_fetch(&f->inflight, 1, __ATOMIC_RELAXED);
	max = __atomic_load_n(&f->max_inflight, __ATOMIC_RELAXED);
	while (in > max && !__atomic_compare_exchange_n(&f->max_inflight, &max, in, true,
							 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void fake_dereg_finish(void *dev, void *priv)
{
	struct mmn_rcache_fake *f = dev;
	struct mmn_rcache_fake_reg *r = priv;

	if (r->deadline_ns) {
		if (f->cfg.spin) {
			while (now_ns() < r->deadline_ns)
				;
		} else {
			struct timespec ts = {
				.tv_sec = (time_t)(r->deadline_ns / 1000000000u),
				.tv_nsec = (long)(r->deadline_ns % 1000000000u),
			};

			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
		}
	}
	__atomic_store_n(&r->state, MMN_RCACHE_FAKE_DEREGISTERED, __ATOMIC_RELEASE);
	__atomic_sub_fetch(&f->inflight, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&f->last_finish_ns, now_ns(), __ATOMIC_RELAXED);
	/* Last: a reader that sees the count also sees the state. */
	__atomic_add_fetch(&f->dereg_finishes, 1, __ATOMIC_RELEASE);
}

static const struct mmn_rcache_dev_ops fake_ops = {
	.reg = fake_reg,
	.dereg_start = fake_dereg_start,
	.dereg_finish = fake_dereg_finish,
};

int mmn_rcache_fake_new(const struct mmn_rcache_fake_config *cfg, struct mmn_rcache_fake **fakep)
{
	struct mmn_rcache_fake *f;

	if (!fakep)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (cfg)
		f->cfg = *cfg;
	*fakep = f;
	return 0;
}

void mmn_rcache_fake_destroy(struct mmn_rcache_fake *fake)
{
	free(fake);
}

void mmn_rcache_fake_dev(struct mmn_rcache_fake *fake, struct mmn_rcache_dev *dev)
{
	*dev = (struct mmn_rcache_dev){
		.name = "fake",
		.ops = &fake_ops,
		.dev = fake,
		.priv_size = sizeof(struct mmn_rcache_fake_reg),
	};
}

void mmn_rcache_fake_fail_next(struct mmn_rcache_fake *fake, unsigned int n, int err)
{
	__atomic_store_n(&fake->fail_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&fake->fail_n, n, __ATOMIC_RELEASE);
}

void mmn_rcache_fake_set_reg_hook(struct mmn_rcache_fake *fake,
				  void (*fn)(void *arg, unsigned long start, unsigned long length),
				  void *arg)
{
	__atomic_store_n(&fake->hook_arg, arg, __ATOMIC_RELAXED);
	__atomic_store_n(&fake->hook, fn, __ATOMIC_RELEASE);
}

void mmn_rcache_fake_get_stats(struct mmn_rcache_fake *fake, struct mmn_rcache_fake_stats *st)
{
	uint64_t finishes = __atomic_load_n(&fake->dereg_finishes, __ATOMIC_ACQUIRE);
	uint64_t regs = __atomic_load_n(&fake->regs, __ATOMIC_RELAXED);

	*st = (struct mmn_rcache_fake_stats){
		.regs = regs,
		.reg_failures = __atomic_load_n(&fake->reg_failures, __ATOMIC_RELAXED),
		.dereg_starts = __atomic_load_n(&fake->dereg_starts, __ATOMIC_RELAXED),
		.dereg_finishes = finishes,
		.live = regs - finishes,
		.last_finish_ns = __atomic_load_n(&fake->last_finish_ns, __ATOMIC_RELAXED),
		.starts_before_finish = __atomic_load_n(&fake->max_inflight, __ATOMIC_RELAXED),
	};
}
