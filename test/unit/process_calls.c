// SPDX-License-Identifier: MIT
/*
 * Every hooked mapping call (include/mmn/process.h, src/vm/hooks.c) --
 * munmap, mremap (shrink, grow in place, move, MREMAP_FIXED, DONTUNMAP),
 * madvise (each discarding advice; the others), brk/sbrk, shmdt,
 * shmat(SHM_REMAP), mmap(MAP_FIXED), mprotect (also PROT_GROWSDOWN),
 * pkey_mprotect, remap_file_pages and process_madvise: a notifier
 * subscribed with mmn_process_insert() is called exactly once, with
 * the call's event and exact range, *before* the change -- the callback still
 * reads the old page's marker byte -- and the call's result and errno are the
 * ones the kernel gives. Calls the kernel refuses before changing anything
 * (unaligned address, zero length) and calls that change no mapping
 * (non-discarding advice, MAP_FIXED_NOREPLACE, growing in place) invalidate
 * nothing. mmn_process_coverage() reports every call hooked, and its events[]
 * counters move by exactly what each call opened.
 *
 * The backstop is off here (MMN_BACKSTOP=0 unless the environment says
 * otherwise), so every count is the hooks' own; process_backstop tests the
 * hooks and the backstop together.
 *
 * The callback reads the marker through a pipe (write(2) of one byte from
 * the page), so a page that is already gone gives EFAULT instead of a crash.
 */
#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <mmn/process.h>

#include "emulation.h"
#include "harness.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MAX_REC 8
#define NO_PROBE (-2)	/* the callback was not asked to read a marker */
#define GONE (-1)	/* the marker's page was no longer readable */

static unsigned long pg;
static struct mmn_mm *pmm;
static int probe_pipe[2];

/* ---- a recording notifier ------------------------------------------------ */

struct call_rec {
	unsigned long start, end;
	enum mmn_event event;
	unsigned int flags;
	struct mmn_mm *mm;
	int marker;		/* byte at probe when called, GONE or NO_PROBE */
};

struct rec_sub {
	struct mmn_interval_notifier sub;
	unsigned long probe;	/* address whose byte the callback reads; 0: none */
	int calls;		/* atomic */
	struct call_rec rec[MAX_REC];
};

/* One byte of @addr, or GONE; allocation-free, never faults. */
static int probe_byte(unsigned long addr)
{
	unsigned char c;

	if (write(probe_pipe[1], (void *)addr, 1) != 1)
		return GONE;
	if (read(probe_pipe[0], &c, 1) != 1)
		return GONE;
	return c;
}

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rec_sub *s = mmn_container_of(sub, struct rec_sub, sub);
	int i = __atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);

	mmn_interval_set_seq(sub, cur_seq);
	if (i < MAX_REC) {
		s->rec[i] = (struct call_rec){
			.start = range->start, .end = range->end, .event = range->event,
			.flags = range->flags, .mm = range->mm,
			.marker = s->probe ? probe_byte(s->probe) : NO_PROBE,
		};
	}
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static void sub_on(struct rec_sub *s, unsigned long start, unsigned long len, unsigned long probe)
{
	memset(s, 0, sizeof(*s));
	s->probe = probe;
	assert_eq(mmn_process_insert(&s->sub, start, len, &rec_ops), 0);
}

static void sub_off(struct rec_sub *s)
{
	expect_eq(mmn_interval_notifier_remove(&s->sub), 0);
}

/* @s was called exactly once: event @ev on [@start, @end), marker @mk seen. */
#define expect_one_call(s, ev, start_, end_, mk)                                \
	do {                                                                    \
		expect_eq(__atomic_load_n(&(s)->calls, __ATOMIC_RELAXED), 1);   \
		expect_eq((s)->rec[0].event, (ev));                             \
		expect_eq_ul((s)->rec[0].start, (start_));                      \
		expect_eq_ul((s)->rec[0].end, (end_));                          \
		expect_eq((s)->rec[0].marker, (mk));                            \
		expect_true((s)->rec[0].flags & MMN_RANGE_BLOCKABLE);           \
		expect_eq_ptr((s)->rec[0].mm, pmm);                             \
	} while (0)

#define expect_no_call(s) expect_eq(__atomic_load_n(&(s)->calls, __ATOMIC_RELAXED), 0)

/* ---- coverage counters ----------------------------------------------------- */

struct counts {
	uint64_t ev[MMN_CALL_COUNT];
};

static struct counts counts_now(void)
{
	struct mmn_process_coverage cov;
	struct counts c;

	assert_eq(mmn_process_coverage(&cov), 0);
	memcpy(c.ev, cov.events, sizeof(c.ev));
	return c;
}

/* events[@call] moved by @n since @before, every other counter by nothing. */
#define expect_events(before, call, n)                                          \
	do {                                                                    \
		struct counts after_ = counts_now();                            \
		for (int c_ = 0; c_ < MMN_CALL_COUNT; c_++)                     \
			expect_eq(after_.ev[c_] - (before).ev[c_],              \
				  c_ == (int)(call) ? (n) : 0);                 \
	} while (0)

/* ---- memory helpers ---------------------------------------------------------- */

/* @n private anonymous pages; page i starts with the marker byte 0xa0 + i. */
static unsigned long map_pages(int n)
{
	unsigned char *p = mmap(NULL, (size_t)n * pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	for (int i = 0; i < n; i++)
		p[(size_t)i * pg] = (unsigned char)(0xa0 + i);
	return (unsigned long)p;
}

static void unmap(unsigned long a, int n)
{
	expect_eq(munmap((void *)a, (size_t)n * pg), 0);
}

static unsigned char peek(unsigned long a)
{
	return *(volatile unsigned char *)a;
}

/* ---- tests ------------------------------------------------------------------- */

TEST(coverage_every_call_hooked)
{
	struct mmn_process_coverage cov;
	static const char *const names[MMN_CALL_COUNT] = {
		"munmap", "mremap", "madvise", "brk", "shmdt", "shmat", "mmap(MAP_FIXED)",
		"mprotect", "pkey_mprotect", "remap_file_pages", "process_madvise",
	};

	assert_eq(mmn_process_coverage(&cov), 0);
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		expect_eq(cov.method[i], MMN_HOOK_ENTRY_PATCH);
		expect_eq(cov.error[i], 0);
		expect_str_eq(mmn_process_call_name((enum mmn_process_call)i), names[i]);
	}
	expect_true(mmn_process_call_name(MMN_CALL_COUNT) == NULL);
	expect_true(mmn_process_call_name((enum mmn_process_call)-1) == NULL);
	expect_eq(mmn_process_coverage(NULL), -EINVAL);
	expect_eq(mmn_process_mm(NULL), -EINVAL);
	if (!cov.backstop)
		printf("  (backstop off: %s)\n", strerror(-cov.backstop_error));
	else
		expect_eq(cov.backstop_error, 0);
}

TEST(munmap)
{
	unsigned long a = map_pages(4);
	struct rec_sub s, wide;
	struct counts before;

	/* The middle two pages. */
	sub_on(&s, a + pg, 2 * pg, a + 2 * pg);
	before = counts_now();
	expect_eq(munmap((void *)(a + pg), 2 * pg), 0);
	expect_one_call(&s, MMN_EVENT_UNMAP, a + pg, a + 3 * pg, 0xa2);
	expect_events(before, MMN_CALL_MUNMAP, 1);
	expect_eq(probe_byte(a + pg), GONE);
	expect_eq(probe_byte(a + 2 * pg), GONE);
	expect_eq(peek(a), 0xa0);
	expect_eq(peek(a + 3 * pg), 0xa3);
	sub_off(&s);

	/*
	 * A length that is not a page multiple covers its last page; the range
	 * is not clipped to the notifier.
	 */
	sub_on(&wide, a, 4 * pg, a + 3 * pg);
	before = counts_now();
	expect_eq(munmap((void *)(a + 3 * pg), 1), 0);
	expect_one_call(&wide, MMN_EVENT_UNMAP, a + 3 * pg, a + 4 * pg, 0xa3);
	expect_events(before, MMN_CALL_MUNMAP, 1);
	sub_off(&wide);
	unmap(a, 1);
}

TEST(munmap_refused)
{
	unsigned long a = map_pages(2);
	struct rec_sub s;
	struct counts before;

	sub_on(&s, a, 2 * pg, 0);
	before = counts_now();
	errno = 0;
	expect_eq(munmap((void *)(a + 1), pg), -1);
	expect_eq(errno, EINVAL);
	errno = 0;
	expect_eq(munmap((void *)a, 0), -1);
	expect_eq(errno, EINVAL);
	errno = 0;
	expect_eq(munmap((void *)(a + 16), 2 * pg - 16), -1);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MUNMAP, 0);
	expect_eq(peek(a), 0xa0);
	sub_off(&s);
	unmap(a, 2);
}

TEST(mremap_shrink)
{
	unsigned long a;
	struct rec_sub s;
	struct counts before;

	if (emu_mremap_shrink_moves()) {
		printf("  SKIP mremap_shrink: mremap moves a shrinking mapping here (qemu-user), the kernel never does\n");
		return;
	}
	a = map_pages(4);

	sub_on(&s, a, 4 * pg, a + 3 * pg);
	before = counts_now();
	/* Shrinking never moves, even with MAYMOVE: only the tail goes. */
	expect_eq_ptr(mremap((void *)a, 4 * pg, pg + 10, MREMAP_MAYMOVE), (void *)a);
	expect_one_call(&s, MMN_EVENT_UNMAP, a + 2 * pg, a + 4 * pg, 0xa3);
	expect_events(before, MMN_CALL_MREMAP, 1);
	expect_eq(peek(a + pg), 0xa1);
	expect_eq(probe_byte(a + 2 * pg), GONE);
	sub_off(&s);

	/* The same size changes nothing. */
	sub_on(&s, a, 2 * pg, 0);
	before = counts_now();
	expect_eq_ptr(mremap((void *)a, 2 * pg, 2 * pg, 0), (void *)a);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MREMAP, 0);
	sub_off(&s);
	unmap(a, 2);
}

TEST(mremap_grow_in_place)
{
	unsigned long a = map_pages(8);
	struct rec_sub s;
	struct counts before;

	unmap(a + 4 * pg, 4);
	sub_on(&s, a, 4 * pg, a);
	before = counts_now();
	/* Without MAYMOVE nothing old can change: no invalidation. */
	expect_eq_ptr(mremap((void *)a, 4 * pg, 8 * pg, 0), (void *)a);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MREMAP, 0);
	expect_eq(peek(a + 3 * pg), 0xa3);
	expect_eq(peek(a + 7 * pg), 0);

	/* Growing a part of a mapping in place is impossible: ENOMEM, no change. */
	errno = 0;
	expect_true(mremap((void *)a, 4 * pg, 16 * pg, 0) == MAP_FAILED);
	expect_eq(errno, ENOMEM);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MREMAP, 0);
	sub_off(&s);
	unmap(a, 8);
}

/* A private mapping of @n pages followed by a PROT_NONE page: it cannot grow in place. */
static unsigned long map_pages_fenced(int n)
{
	unsigned long a = map_pages(n + 1);

	assert_eq(mprotect((void *)(a + (unsigned long)n * pg), pg, PROT_NONE), 0);
	return a;
}

TEST(mremap_maymove)
{
	unsigned long a = map_pages_fenced(2);
	struct rec_sub s;
	struct counts before;
	unsigned char *n;

	sub_on(&s, a, 2 * pg, a + pg);
	before = counts_now();
	n = mremap((void *)a, 2 * pg, 8 * pg, MREMAP_MAYMOVE);
	assert_true(n != MAP_FAILED);
	expect_ne_ptr(n, (void *)a);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xa1);
	expect_events(before, MMN_CALL_MREMAP, 1);
	expect_eq(n[pg], 0xa1);
	expect_eq(probe_byte(a), GONE);
	sub_off(&s);
	expect_eq(munmap(n, 8 * pg), 0);
	unmap(a + 2 * pg, 1);

	/*
	 * Growing with MAYMOVE where it could grow in place: the hook cannot
	 * know beforehand, so it invalidates the old range (documented; a
	 * spurious invalidation, never a missed one).
	 */
	a = map_pages(8);
	unmap(a + 2 * pg, 6);
	sub_on(&s, a, 2 * pg, a);
	before = counts_now();
	n = mremap((void *)a, 2 * pg, 4 * pg, MREMAP_MAYMOVE);
	assert_true(n != MAP_FAILED);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xa0);
	expect_events(before, MMN_CALL_MREMAP, 1);
	sub_off(&s);
	expect_eq(munmap(n, 4 * pg), 0);
}

TEST(mremap_fixed)
{
	unsigned long src = map_pages(2), dst = map_pages(3);
	struct rec_sub s_src, s_dst, s_rest;
	struct counts before;
	unsigned char *n;

	/* Different markers in the destination. */
	*(unsigned char *)dst = 0xd0;
	*(unsigned char *)(dst + pg) = 0xd1;
	sub_on(&s_src, src, 2 * pg, src + pg);
	sub_on(&s_dst, dst, 2 * pg, dst + pg);
	sub_on(&s_rest, dst + 2 * pg, pg, 0);
	before = counts_now();
	n = mremap((void *)src, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)dst);
	assert_eq_ptr(n, (void *)dst);
	/* Both before the fact: the old source page, and the destination's old page. */
	expect_one_call(&s_src, MMN_EVENT_UNMAP, src, src + 2 * pg, 0xa1);
	expect_one_call(&s_dst, MMN_EVENT_UNMAP, dst, dst + 2 * pg, 0xd1);
	expect_no_call(&s_rest);
	/* One call, two invalidations: the counter counts invalidations. */
	expect_events(before, MMN_CALL_MREMAP, 2);
	expect_eq(n[0], 0xa0);
	expect_eq(n[pg], 0xa1);
	expect_eq(peek(dst + 2 * pg), 0xa2);
	expect_eq(probe_byte(src), GONE);
	sub_off(&s_src);
	sub_off(&s_dst);
	sub_off(&s_rest);
	unmap(dst, 3);
}

TEST(mremap_dontunmap)
{
	unsigned long a = map_pages(2);
	struct rec_sub s;
	struct counts before;
	unsigned char *n;

	sub_on(&s, a, 2 * pg, a + pg);
	before = counts_now();
	n = mremap((void *)a, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	if (n == MAP_FAILED && errno == EINVAL) {
		printf("  (MREMAP_DONTUNMAP not supported by this kernel)\n");
		sub_off(&s);
		unmap(a, 2);
		return;
	}
	assert_true(n != MAP_FAILED);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xa1);
	expect_events(before, MMN_CALL_MREMAP, 1);
	/* The pages moved; the old range stays mapped, empty. */
	expect_eq(n[pg], 0xa1);
	expect_eq(peek(a + pg), 0);
	sub_off(&s);
	expect_eq(munmap(n, 2 * pg), 0);
	unmap(a, 2);
}

TEST(mremap_refused)
{
	unsigned long a = map_pages(2);
	struct rec_sub s;
	struct counts before;

	sub_on(&s, a, 2 * pg, 0);
	before = counts_now();
	errno = 0;
	expect_true(mremap((void *)(a + 8), pg, 2 * pg, MREMAP_MAYMOVE) == MAP_FAILED);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MREMAP, 0);
	sub_off(&s);

	/* An unmapped source: EFAULT, as without the hook. */
	unmap(a, 2);
	errno = 0;
	expect_true(mremap((void *)a, pg, 2 * pg, MREMAP_MAYMOVE) == MAP_FAILED);
	if (emu_mremap_unmapped_not_efault())
		printf("  (errno not checked: mremap of an unmapped source is not EFAULT here (qemu-user))\n");
	else
		expect_eq(errno, EFAULT);
}

struct advice {
	int advice;
	const char *name;
	bool zeroes;	/* private anonymous pages read 0 afterwards */
};

TEST(madvise_discarding)
{
	static const struct advice advs[] = {
		{ MADV_DONTNEED, "DONTNEED", true },
		{ MADV_FREE, "FREE", false },
		{ MADV_PAGEOUT, "PAGEOUT", false },
		{ MADV_DONTNEED_LOCKED, "DONTNEED_LOCKED", true },
	};

	for (size_t i = 0; i < sizeof(advs) / sizeof(advs[0]); i++) {
		unsigned long a = map_pages(4);
		struct rec_sub s;
		struct counts before;
		int ret;

		sub_on(&s, a + pg, 2 * pg, a + 2 * pg);
		before = counts_now();
		errno = 0;
		ret = madvise((void *)(a + pg), 2 * pg, advs[i].advice);
		if (ret && errno == EINVAL) {
			printf("  (MADV_%s not supported by this kernel)\n", advs[i].name);
		} else {
			expect_eq(ret, 0);
			expect_one_call(&s, MMN_EVENT_CLEAR, a + pg, a + 3 * pg, 0xa2);
			expect_events(before, MMN_CALL_MADVISE, 1);
			if (advs[i].zeroes && emu_advice_ignored(a + 2 * pg, advs[i].advice))
				printf("  (MADV_%s: zeroing not checked: madvise discards nothing here (qemu-user))\n",
				       advs[i].name);
			else if (advs[i].zeroes)
				expect_eq(peek(a + 2 * pg), 0);
			expect_eq(peek(a + 3 * pg), 0xa3);
		}
		sub_off(&s);
		unmap(a, 4);
	}
}

/* MADV_REMOVE punches a hole in shared memory: shared anonymous and memfd. */
TEST(madvise_remove)
{
	int fd = memfd_create("mmn-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_eq(ftruncate(fd, (off_t)(4 * pg)), 0);
	for (int kind = 0; kind < 2; kind++) {
		unsigned char *p = kind ? mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
					: mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
					       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		unsigned long a = (unsigned long)p;
		struct rec_sub s;
		struct counts before;

		assert_true(p != MAP_FAILED);
		for (int i = 0; i < 4; i++)
			p[(size_t)i * pg] = (unsigned char)(0xb0 + i);
		sub_on(&s, a + pg, 2 * pg, a + pg);
		before = counts_now();
		expect_eq(madvise((void *)(a + pg), 2 * pg, MADV_REMOVE), 0);
		expect_one_call(&s, MMN_EVENT_CLEAR, a + pg, a + 3 * pg, 0xb1);
		expect_events(before, MMN_CALL_MADVISE, 1);
		if (emu_advice_ignored(a + pg, MADV_REMOVE)) {
			printf("  (hole not checked: madvise discards nothing here (qemu-user))\n");
		} else {
			expect_eq(p[pg], 0);
			expect_eq(p[2 * pg], 0);
		}
		expect_eq(p[3 * pg], 0xb3);
		sub_off(&s);
		expect_eq(munmap(p, 4 * pg), 0);
	}
	close(fd);
}

/* MADV_COLLAPSE moves the pages into a huge page: MIGRATE, whatever it returns. */
TEST(madvise_collapse)
{
	unsigned long huge = 2ul << 20, raw = map_pages(1024 + 512), a;
	struct rec_sub s;
	struct counts before;
	int ret;

	a = (raw + huge - 1) & ~(huge - 1);
	madvise((void *)a, huge, MADV_HUGEPAGE);
	memset((void *)a, 0x5a, huge);
	sub_on(&s, a, huge, a + 3 * pg);
	before = counts_now();
	errno = 0;
	ret = madvise((void *)a, huge, MADV_COLLAPSE);
	if (ret && errno == EINVAL) {
		printf("  (MADV_COLLAPSE not supported here)\n");
	} else {
		expect_one_call(&s, MMN_EVENT_MIGRATE, a, a + huge, 0x5a);
		expect_events(before, MMN_CALL_MADVISE, 1);
		expect_eq(peek(a + 3 * pg), 0x5a);
		if (ret)
			printf("  (MADV_COLLAPSE: %s; the invalidation came first anyway)\n",
			       strerror(errno));
	}
	sub_off(&s);
	unmap(raw, 1024 + 512);
}

TEST(madvise_non_discarding)
{
	static const struct advice advs[] = {
		{ MADV_NORMAL, "NORMAL", false }, { MADV_WILLNEED, "WILLNEED", false },
		{ MADV_SEQUENTIAL, "SEQUENTIAL", false }, { MADV_RANDOM, "RANDOM", false },
		{ MADV_DONTFORK, "DONTFORK", false }, { MADV_DOFORK, "DOFORK", false },
		{ MADV_COLD, "COLD", false }, { MADV_NOHUGEPAGE, "NOHUGEPAGE", false },
	};
	unsigned long a = map_pages(2);
	struct rec_sub s;
	struct counts before;

	/* Probed first: the probe's own mapping calls are counted events. */
	bool accepts_unknown = emu_madvise_accepts_unknown();

	sub_on(&s, a, 2 * pg, 0);
	before = counts_now();
	for (size_t i = 0; i < sizeof(advs) / sizeof(advs[0]); i++)
		expect_eq(madvise((void *)a, 2 * pg, advs[i].advice), 0);
	/* Refused calls: unaligned, and an unknown advice. */
	errno = 0;
	expect_eq(madvise((void *)(a + 1), pg, MADV_DONTNEED), -1);
	expect_eq(errno, EINVAL);
	errno = 0;
	if (accepts_unknown) {
		printf("  (unknown advice: refusal not checked: accepted here (qemu-user))\n");
		expect_eq(madvise((void *)a, pg, 12345), 0);
	} else {
		expect_eq(madvise((void *)a, pg, 12345), -1);
		expect_eq(errno, EINVAL);
	}
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MADVISE, 0);
	expect_eq(peek(a + pg), 0xa1);
	sub_off(&s);
	unmap(a, 2);
}

/*
 * MADV_GUARD_INSTALL (Linux 6.13) zaps the pages already there and makes the
 * range fault: it discards contents like DONTNEED.
 */
TEST(madvise_guard_install)
{
	unsigned long a = map_pages(2);
	struct rec_sub s;
	struct counts before;
	int ret;

	sub_on(&s, a, 2 * pg, a);
	before = counts_now();
	errno = 0;
	ret = madvise((void *)a, pg, MADV_GUARD_INSTALL);
	if (ret && errno == EINVAL) {
		printf("  (MADV_GUARD_INSTALL not supported by this kernel)\n");
	} else {
		expect_eq(ret, 0);
		expect_one_call(&s, MMN_EVENT_CLEAR, a, a + pg, 0xa0);
		expect_events(before, MMN_CALL_MADVISE, 1);
		if (emu_advice_ignored(a, MADV_GUARD_INSTALL))
			printf("  (guard page not checked: madvise changes nothing here (qemu-user))\n");
		else
			expect_eq(probe_byte(a), GONE);	/* a guard page now */
		expect_eq(peek(a + pg), 0xa1);
	}
	sub_off(&s);
	unmap(a, 2);
}

/* The break, with our own pages on top of it: nothing else may move it meanwhile. */
TEST(brk_sbrk_shrink)
{
	unsigned long cur = (unsigned long)sbrk(0), base, top;
	struct rec_sub s;
	struct counts before;

	assert_true(cur != (unsigned long)-1);
	/* Grow to a page boundary plus four pages: growing invalidates nothing. */
	base = (cur + pg - 1) & ~(pg - 1);
	top = base + 4 * pg;
	before = counts_now();
	assert_eq_ptr(sbrk((intptr_t)(top - cur)), (void *)cur);
	expect_events(before, MMN_CALL_BRK, 0);
	for (int i = 0; i < 4; i++)
		*(unsigned char *)(base + (unsigned long)i * pg) = (unsigned char)(0xc0 + i);

	/* sbrk(-2.5 pages): the pages from the new break's page end go. */
	sub_on(&s, base, 4 * pg, base + 3 * pg);
	before = counts_now();
	expect_eq_ptr(sbrk(-(intptr_t)(2 * pg + pg / 2)), (void *)top);
	expect_eq_ul((unsigned long)sbrk(0), top - 2 * pg - pg / 2);
	expect_one_call(&s, MMN_EVENT_UNMAP, base + 2 * pg, top, 0xc3);
	expect_events(before, MMN_CALL_BRK, 1);
	expect_eq(peek(base + pg), 0xc1);
	if (emu_brk_shrink_keeps_pages())
		printf("  (not checked: the pages above a lowered break stay mapped here (qemu-user))\n");
	else
		expect_eq(probe_byte(base + 2 * pg), GONE);
	sub_off(&s);

	/* Within the same page: nothing is unmapped, nothing is invalidated. */
	sub_on(&s, base, 2 * pg, 0);
	before = counts_now();
	expect_eq(brk((void *)(base + pg + 8)), 0);
	expect_eq_ul((unsigned long)sbrk(0), base + pg + 8);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_BRK, 0);
	sub_off(&s);

	/* brk() itself, back to where the break was. */
	sub_on(&s, base, 2 * pg, base + pg);
	before = counts_now();
	expect_eq(brk((void *)cur), 0);
	expect_eq_ul((unsigned long)sbrk(0), cur);
	expect_one_call(&s, MMN_EVENT_UNMAP, base, base + 2 * pg, 0xc1);
	expect_events(before, MMN_CALL_BRK, 1);
	sub_off(&s);
}

static int shm_new(size_t size)
{
	int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);

	assert_true(id >= 0);
	return id;
}

static void shm_gone(int id)
{
	expect_eq(shmctl(id, IPC_RMID, NULL), 0);
}

TEST(shmdt)
{
	int id = shm_new(3 * pg), odd = shm_new(pg + 100);
	struct rec_sub s;
	struct counts before;
	unsigned char *p;
	unsigned long a;

	p = shmat(id, NULL, 0);
	assert_true(p != (void *)-1);
	a = (unsigned long)p;
	for (int i = 0; i < 3; i++)
		p[(size_t)i * pg] = (unsigned char)(0xe0 + i);
	/* A protection change in the middle splits the attachment in three. */
	expect_eq(mprotect(p + pg, pg, PROT_READ), 0);
	sub_on(&s, a, 3 * pg, a + 2 * pg);
	before = counts_now();
	expect_eq(shmdt(p), 0);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 3 * pg, 0xe2);
	expect_events(before, MMN_CALL_SHMDT, 1);
	expect_eq(probe_byte(a + 2 * pg), GONE);
	sub_off(&s);

	/* A size that is not a page multiple: the attachment's whole pages. */
	p = shmat(odd, NULL, 0);
	assert_true(p != (void *)-1);
	a = (unsigned long)p;
	p[pg] = 0xee;
	sub_on(&s, a, 2 * pg, a + pg);
	before = counts_now();
	expect_eq(shmdt(p), 0);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xee);
	expect_events(before, MMN_CALL_SHMDT, 1);
	sub_off(&s);

	/* Nothing attached there: EINVAL, no invalidation. */
	a = map_pages(1);
	sub_on(&s, a, pg, 0);
	before = counts_now();
	errno = 0;
	expect_eq(shmdt((void *)a), -1);
	expect_eq(errno, EINVAL);
	errno = 0;
	expect_eq(shmdt((void *)(a + 1)), -1);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_SHMDT, 0);
	sub_off(&s);
	unmap(a, 1);
	shm_gone(id);
	shm_gone(odd);
}

/*
 * Two attachments of one segment, back to back: shmdt of the first unmaps
 * only the first (the kernel stops at the segment's size), so a notifier on
 * the second must not be called.
 */
TEST(shmdt_adjacent_attachments)
{
	int id = shm_new(2 * pg);
	unsigned long a = map_pages(4);
	struct rec_sub first, second;
	void *p, *q;

	unmap(a, 4);
	p = shmat(id, (void *)a, 0);
	q = shmat(id, (void *)(a + 2 * pg), 0);
	assert_eq_ptr(p, (void *)a);
	assert_eq_ptr(q, (void *)(a + 2 * pg));
	sub_on(&first, a, 2 * pg, 0);
	sub_on(&second, a + 2 * pg, 2 * pg, 0);
	expect_eq(shmdt(p), 0);
	expect_eq(first.calls, 1);
	expect_eq_ul(first.rec[0].start, a);
	expect_eq(probe_byte(a + 2 * pg), 0);	/* the second is still attached */
	/* Only the detached attachment, not the one placed right after it. */
	expect_eq_ul(first.rec[0].end, a + 2 * pg);
	expect_eq(__atomic_load_n(&second.calls, __ATOMIC_RELAXED), 0);
	sub_off(&first);
	sub_off(&second);
	expect_eq(shmdt(q), 0);
	shm_gone(id);
}

TEST(shmat_remap)
{
	int id = shm_new(2 * pg + 1);
	unsigned long a = map_pages(4);
	struct rec_sub s, after;
	struct counts before;
	unsigned char *p;

	sub_on(&s, a, 3 * pg, a + 2 * pg);
	sub_on(&after, a + 3 * pg, pg, 0);
	/* Without SHM_REMAP an occupied address is refused: nothing changes. */
	before = counts_now();
	errno = 0;
	expect_true(shmat(id, (void *)a, 0) == (void *)-1);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_SHMAT, 0);

	before = counts_now();
	p = shmat(id, (void *)a, SHM_REMAP);
	assert_eq_ptr(p, (void *)a);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 3 * pg, 0xa2);
	expect_no_call(&after);
	expect_events(before, MMN_CALL_SHMAT, 1);
	expect_eq(p[2 * pg], 0);	/* the segment now */
	expect_eq(peek(a + 3 * pg), 0xa3);
	sub_off(&s);

	/* A plain attach anywhere invalidates nothing. */
	sub_on(&s, a, 3 * pg, 0);
	before = counts_now();
	p = shmat(id, NULL, 0);
	expect_true(p != (void *)-1);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_SHMAT, 0);
	expect_eq(shmdt(p), 0);
	sub_off(&s);
	sub_off(&after);
	expect_eq(shmdt((void *)a), 0);
	unmap(a + 3 * pg, 1);
	shm_gone(id);
}

TEST(mmap_fixed)
{
	unsigned long a = map_pages(3), hint;
	struct rec_sub s;
	struct counts before;
	void *p;

	sub_on(&s, a, 3 * pg, a + pg);
	before = counts_now();
	p = mmap((void *)a, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	assert_eq_ptr(p, (void *)a);
	expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xa1);
	expect_events(before, MMN_CALL_MMAP, 1);
	expect_eq(peek(a + pg), 0);
	expect_eq(peek(a + 2 * pg), 0xa2);
	sub_off(&s);

	if (emu_noreplace_ignored()) {
		printf("  SKIP MAP_FIXED_NOREPLACE cases: the flag is ignored here (qemu-user)\n");
		unmap(a, 3);
	} else {
		/* MAP_FIXED_NOREPLACE never replaces anything: no invalidation. */
		sub_on(&s, a, 3 * pg, 0);
		before = counts_now();
		errno = 0;
		p = mmap((void *)a, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		expect_true(p == MAP_FAILED);
		expect_eq(errno, EEXIST);
		expect_no_call(&s);
		expect_events(before, MMN_CALL_MMAP, 0);
		sub_off(&s);
		unmap(a, 3);

		/* ... also where it succeeds, and a plain hint is no replacement either. */
		hint = map_pages(2);
		unmap(hint, 2);
		sub_on(&s, hint, 2 * pg, 0);
		before = counts_now();
		p = mmap((void *)hint, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		expect_eq_ptr(p, (void *)hint);
		p = mmap((void *)(hint + pg), pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		expect_true(p != MAP_FAILED);
		expect_no_call(&s);
		expect_events(before, MMN_CALL_MMAP, 0);
		sub_off(&s);
		unmap(hint, 1);
		expect_eq(munmap(p, pg), 0);
	}

	/* An unaligned MAP_FIXED is refused before anything changes. */
	a = map_pages(1);
	sub_on(&s, a, pg, 0);
	before = counts_now();
	errno = 0;
	p = mmap((void *)(a + 8), pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	expect_true(p == MAP_FAILED);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MMAP, 0);
	sub_off(&s);
	unmap(a, 1);
}

TEST(mprotect)
{
	unsigned long a = map_pages(3), hole;
	struct rec_sub s;
	struct counts before;

	sub_on(&s, a, 3 * pg, a + pg);
	before = counts_now();
	expect_eq(mprotect((void *)a, 2 * pg, PROT_READ), 0);
	expect_one_call(&s, MMN_EVENT_PROTECTION_VMA, a, a + 2 * pg, 0xa1);
	expect_events(before, MMN_CALL_MPROTECT, 1);
	expect_eq(peek(a + pg), 0xa1);
	sub_off(&s);

	/* Refused before anything changes: unaligned. No invalidation. */
	sub_on(&s, a, 3 * pg, 0);
	before = counts_now();
	errno = 0;
	expect_eq(mprotect((void *)(a + 1), pg, PROT_READ), -1);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_MPROTECT, 0);
	sub_off(&s);
	unmap(a, 3);

	/*
	 * An unmapped range: ENOMEM as without the hook. The hook cannot know
	 * beforehand, so it opens an invalidation (documented: spurious, and
	 * harmless; a partly mapped range does change up to the hole).
	 */
	hole = map_pages(2);
	unmap(hole, 2);
	sub_on(&s, hole, 2 * pg, 0);
	before = counts_now();
	errno = 0;
	expect_eq(mprotect((void *)hole, 2 * pg, PROT_READ), -1);
	expect_eq(errno, ENOMEM);
	expect_eq(__atomic_load_n(&s.calls, __ATOMIC_RELAXED), 1);
	expect_events(before, MMN_CALL_MPROTECT, 1);
	sub_off(&s);
}

/* mprotect(PROT_GROWSDOWN) changes the mapping from its start up. */
TEST(mprotect_growsdown)
{
	unsigned char *p;
	unsigned long a;
	struct rec_sub s;
	struct counts before;

	if (emu_growsdown_refused()) {
		printf("  SKIP mprotect_growsdown: mprotect(PROT_GROWSDOWN) is refused here (qemu-user)\n");
		return;
	}
	p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN,
		 -1, 0);
	a = (unsigned long)p;

	assert_true(p != MAP_FAILED);
	p[0] = 0x91;
	p[2 * pg] = 0x92;
	sub_on(&s, a, 4 * pg, a);
	before = counts_now();
	expect_eq(mprotect(p + 2 * pg, pg, PROT_READ | PROT_GROWSDOWN), 0);
	expect_one_call(&s, MMN_EVENT_PROTECTION_VMA, a, a + 3 * pg, 0x91);
	expect_events(before, MMN_CALL_MPROTECT, 1);
	sub_off(&s);
	expect_eq(munmap(p, 4 * pg), 0);
}

/*
 * pkey_mprotect(): hooked on its own; key -1 is plain mprotect (what glibc
 * does too), a real key needs hardware protection keys.
 */
TEST(pkey_mprotect)
{
	unsigned long a = map_pages(2);
	struct rec_sub s;
	struct counts before;
	int key;

	sub_on(&s, a, 2 * pg, a + pg);
	before = counts_now();
	expect_eq(pkey_mprotect((void *)a, 2 * pg, PROT_READ, -1), 0);
	expect_one_call(&s, MMN_EVENT_PROTECTION_VMA, a, a + 2 * pg, 0xa1);
	expect_events(before, MMN_CALL_PKEY_MPROTECT, 1);
	sub_off(&s);

	/* Refused before anything changes: unaligned. */
	sub_on(&s, a, 2 * pg, 0);
	before = counts_now();
	errno = 0;
	expect_eq(pkey_mprotect((void *)(a + 1), pg, PROT_READ, -1), -1);
	expect_eq(errno, EINVAL);
	expect_no_call(&s);
	expect_events(before, MMN_CALL_PKEY_MPROTECT, 0);
	sub_off(&s);

	key = pkey_alloc(0, 0);
	if (key < 0) {
		printf("  (no protection keys here: %s)\n", strerror(errno));
	} else {
		sub_on(&s, a, 2 * pg, a);
		before = counts_now();
		expect_eq(pkey_mprotect((void *)a, pg, PROT_READ | PROT_WRITE, key), 0);
		expect_one_call(&s, MMN_EVENT_PROTECTION_VMA, a, a + pg, 0xa0);
		expect_events(before, MMN_CALL_PKEY_MPROTECT, 1);
		sub_off(&s);
		pkey_free(key);
	}
	unmap(a, 2);
}

/* remap_file_pages() puts other file pages at the range: the old ones go. */
TEST(remap_file_pages)
{
	int fd = memfd_create("mmn-remap", MFD_CLOEXEC);
	struct rec_sub s, rest;
	struct counts before;
	unsigned char *p;
	unsigned long a;
	int ret;

	assert_true(fd >= 0);
	assert_eq(ftruncate(fd, (off_t)(4 * pg)), 0);
	p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	a = (unsigned long)p;
	for (int i = 0; i < 4; i++)
		p[(size_t)i * pg] = (unsigned char)(0xf0 + i);
	sub_on(&s, a, 2 * pg, a + pg);
	sub_on(&rest, a + 2 * pg, 2 * pg, 0);
	before = counts_now();
	errno = 0;
	ret = remap_file_pages(p, 2 * pg, 0, 2, 0);
	if (ret && (errno == ENOSYS || errno == EINVAL)) {
		printf("  (remap_file_pages not available: %s)\n", strerror(errno));
	} else {
		expect_eq(ret, 0);
		expect_one_call(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xf1);
		expect_no_call(&rest);
		expect_events(before, MMN_CALL_REMAP_FILE_PAGES, 1);
		expect_eq(p[0], 0xf2);	/* file pages 2 and 3 now */
		expect_eq(p[pg], 0xf3);
	}
	sub_off(&s);
	sub_off(&rest);
	expect_eq(munmap(p, 4 * pg), 0);
	close(fd);
}

/* process_madvise() on this process: one invalidation over the vectors' hull. */
TEST(process_madvise)
{
	unsigned long a = map_pages(4);
	struct iovec iov[2] = {
		{ (void *)(a + pg), pg },
		{ (void *)(a + 2 * pg), pg / 2 },	/* rounded up to its page */
	};
	struct rec_sub s;
	struct counts before;
	ssize_t ret;
	int pidfd;

	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0) {
		printf("  (pidfd_open: %s)\n", strerror(errno));
		unmap(a, 4);
		return;
	}
	sub_on(&s, a, 4 * pg, a + 2 * pg);
	before = counts_now();
	errno = 0;
	ret = process_madvise(pidfd, iov, 2, MADV_PAGEOUT, 0);
	if (ret < 0 && (errno == ENOSYS || errno == EINVAL || errno == EPERM)) {
		printf("  (process_madvise(MADV_PAGEOUT) refused: %s)\n", strerror(errno));
	} else {
		expect_eq(ret, (ssize_t)(pg + pg / 2));
		expect_one_call(&s, MMN_EVENT_CLEAR, a + pg, a + 3 * pg, 0xa2);
		expect_events(before, MMN_CALL_PROCESS_MADVISE, 1);
	}
	sub_off(&s);

	/* A non-discarding advice invalidates nothing. */
	sub_on(&s, a, 4 * pg, 0);
	before = counts_now();
	ret = process_madvise(pidfd, iov, 2, MADV_COLD, 0);
	if (ret >= 0)
		expect_eq(ret, (ssize_t)(pg + pg / 2));
	expect_no_call(&s);
	expect_events(before, MMN_CALL_PROCESS_MADVISE, 0);
	sub_off(&s);
	close(pidfd);
	unmap(a, 4);
}

int main(void)
{
	struct mmn_stats st;

	/*
	 * The hooks alone: with the backstop on, a hooked unmap of registered
	 * memory can also come back from the monitor, late (process_backstop
	 * tests the two together). MMN_BACKSTOP=1 in the environment keeps it.
	 */
	setenv("MMN_BACKSTOP", "0", 0);
	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	assert_eq(pipe2(probe_pipe, O_CLOEXEC), 0);
	assert_eq(mmn_process_mm(&pmm), 0);

	RUN(coverage_every_call_hooked);
	RUN(munmap);
	RUN(munmap_refused);
	RUN(mremap_shrink);
	RUN(mremap_grow_in_place);
	RUN(mremap_maymove);
	RUN(mremap_fixed);
	RUN(mremap_dontunmap);
	RUN(mremap_refused);
	RUN(madvise_discarding);
	RUN(madvise_remove);
	RUN(madvise_collapse);
	RUN(madvise_non_discarding);
	RUN(madvise_guard_install);
	RUN(brk_sbrk_shrink);
	RUN(shmdt);
	RUN(shmdt_adjacent_attachments);
	RUN(shmat_remap);
	RUN(mmap_fixed);
	RUN(mprotect);
	RUN(mprotect_growsdown);
	RUN(pkey_mprotect);
	RUN(remap_file_pages);
	RUN(process_madvise);

	/* Every region the hooks opened was closed. */
	assert_eq(mmn_mm_get_stats(pmm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq(st.seq & 1, 0);
	expect_eq(st.notifiers, 0);
	return test_report();
}
