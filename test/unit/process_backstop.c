// SPDX-License-Identifier: MIT
/*
 * The userfaultfd backstop (src/vm/backstop.c): raw system calls that the
 * hooks cannot see -- syscall(SYS_munmap), SYS_madvise(DONTNEED/FREE),
 * SYS_mremap -- on subscribed anonymous memory still invalidate the
 * notifier, after the fact, from the monitor thread, and count in
 * coverage.backstop_events. Hooked calls on the same memory invalidate once
 * (before the fact); the monitor recognises their events and drops them
 * (coverage.backstop_duplicates), so there is no second callback.
 *
 * The monitor handles events in the order the kernel queued them. So once a
 * "sentinel" raw unmap issued after an event has been handled, that event has
 * been handled too: monitor_sync() is how this test proves that *no further*
 * callback comes, without sleeping.
 *
 * Skips (77) when the backstop does not run (userfaultfd refused, or
 * MMN_BACKSTOP=0). Works as root and as an unprivileged user
 * (UFFD_USER_MODE_ONLY).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"

#define MAX_REC 8
#define WAIT_MS 10000	/* generous: only a failure ever waits this long */

static unsigned long pg;
static struct mmn_mm *pmm;
static int probe_pipe[2];

struct call_rec {
	unsigned long start, end;
	enum mmn_event event;
	bool on_main;		/* called on the thread that made the call */
};

struct rec_sub {
	struct mmn_interval_notifier sub;
	int started;		/* atomic: callbacks entered (index of the record) */
	int calls;		/* atomic: callbacks whose record is written */
	struct call_rec rec[MAX_REC];
	/* Unmapped (hooked munmap) from inside the callback, if set. */
	unsigned long unmap_start, unmap_len;
};

static pthread_t main_thread;

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rec_sub *s = mmn_container_of(sub, struct rec_sub, sub);
	int i = __atomic_fetch_add(&s->started, 1, __ATOMIC_RELAXED);

	mmn_interval_set_seq(sub, cur_seq);
	if (i < MAX_REC)
		s->rec[i] = (struct call_rec){
			.start = range->start, .end = range->end, .event = range->event,
			.on_main = pthread_equal(pthread_self(), main_thread),
		};
	if (s->unmap_len) {
		unsigned long len = s->unmap_len;

		s->unmap_len = 0;
		munmap((void *)s->unmap_start, len);
	}
	/* After the record: pairs with the acquire in calls_of(). */
	__atomic_add_fetch(&s->calls, 1, __ATOMIC_RELEASE);
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static int calls_of(struct rec_sub *s)
{
	return __atomic_load_n(&s->calls, __ATOMIC_ACQUIRE);
}

static struct mmn_process_coverage coverage(void)
{
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	return cov;
}

/*
 * Everything the callback reads is set before the insert: the callback runs
 * on the monitor thread, which learns of the unmap through the kernel, a
 * synchronisation TSan cannot see; the domain lock taken by the insert and by
 * the invalidation is one it can.
 */
static void sub_on_unmapping(struct rec_sub *s, unsigned long start, unsigned long len,
			     unsigned long unmap_start, unsigned long unmap_len)
{
	memset(s, 0, sizeof(*s));
	s->unmap_start = unmap_start;
	s->unmap_len = unmap_len;
	assert_eq(mmn_process_insert(&s->sub, start, len, &rec_ops), 0);
}

static void sub_on(struct rec_sub *s, unsigned long start, unsigned long len)
{
	sub_on_unmapping(s, start, len, 0, 0);
}

static void sub_off(struct rec_sub *s)
{
	expect_eq(mmn_interval_notifier_remove(&s->sub), 0);
}

static unsigned long map_pages(int n)
{
	unsigned char *p = mmap(NULL, (size_t)n * pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	for (int i = 0; i < n; i++)
		p[(size_t)i * pg] = (unsigned char)(0xa0 + i);
	return (unsigned long)p;
}

static long raw_munmap(unsigned long a, unsigned long len)
{
	return syscall(SYS_munmap, a, len);
}

static bool page_gone(unsigned long addr)
{
	unsigned char c;

	if (write(probe_pipe[1], (void *)addr, 1) != 1)
		return true;
	return read(probe_pipe[0], &c, 1) != 1;
}

/*
 * Every event queued before now has been handled: a raw unmap of a fresh
 * subscribed page queues one more, and its callback runs after theirs.
 * Leaves backstop_events one higher. The pages come from a pool mapped at
 * the start, so a sentinel never lands in a hole a test left in the range
 * of one of its notifiers.
 */
#define SENTINELS 64

static unsigned long sentinel_pool;
static int sentinels_used;

static void monitor_sync(void)
{
	unsigned long a = sentinel_pool + (unsigned long)sentinels_used++ * pg;
	struct rec_sub sentinel;

	assert_true(sentinels_used <= SENTINELS);

	sub_on(&sentinel, a, pg);
	assert_eq(raw_munmap(a, pg), 0);
	assert_true(wait_until(calls_of(&sentinel) == 1, WAIT_MS));
	sub_off(&sentinel);
}

#define expect_rec(s, i, ev, start_, end_)                                      \
	do {                                                                    \
		expect_eq((s)->rec[i].event, (ev));                             \
		expect_eq_ul((s)->rec[i].start, (start_));                      \
		expect_eq_ul((s)->rec[i].end, (end_));                          \
	} while (0)

/* ---- tests ------------------------------------------------------------------ */

TEST(registration)
{
	struct mmn_process_coverage before = coverage();
	unsigned long a = map_pages(2), gap = map_pages(1);
	struct rec_sub s, file, hole;
	void *exe;
	int fd;

	expect_eq(munmap((void *)gap, pg), 0);

	/* Anonymous memory is registered... */
	sub_on(&s, a, 2 * pg);
	expect_eq(coverage().backstop_ranges - before.backstop_ranges, 1);

	/*
	 * ... a file mapping cannot be (userfaultfd refuses), nor a hole: the
	 * insert succeeds anyway and the hooks still cover both.
	 */
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	exe = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(exe != MAP_FAILED);
	sub_on(&file, (unsigned long)exe, pg);
	sub_on(&hole, gap, pg);
	expect_eq(coverage().backstop_ranges - before.backstop_ranges, 1);
	sub_off(&file);
	sub_off(&hole);
	expect_eq(munmap(exe, pg), 0);
	close(fd);
	sub_off(&s);
	expect_eq(munmap((void *)a, 2 * pg), 0);
}

TEST(raw_munmap)
{
	struct mmn_process_coverage before, after;
	struct rec_sub s;
	unsigned long a;

	monitor_sync();
	a = map_pages(4);
	sub_on(&s, a, 4 * pg);
	before = coverage();
	expect_eq(raw_munmap(a + pg, 2 * pg), 0);
	assert_true(wait_until(calls_of(&s) >= 1, WAIT_MS));
	monitor_sync();
	expect_eq(calls_of(&s), 1);
	expect_rec(&s, 0, MMN_EVENT_UNMAP, a + pg, a + 3 * pg);
	expect_false(s.rec[0].on_main);		/* the monitor thread */
	expect_true(page_gone(a + pg));		/* after the fact */
	after = coverage();
	expect_eq(after.backstop_events - before.backstop_events, 1 + 1);	/* + sentinel */
	expect_eq(after.backstop_duplicates - before.backstop_duplicates, 0);
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		expect_eq(after.events[i] - before.events[i], 0);	/* no hook saw it */
	sub_off(&s);
	expect_eq(munmap((void *)a, pg), 0);
	expect_eq(munmap((void *)(a + 3 * pg), pg), 0);
}

TEST(raw_madvise)
{
	static const int advs[] = { MADV_DONTNEED, MADV_FREE };

	for (size_t i = 0; i < sizeof(advs) / sizeof(advs[0]); i++) {
		struct mmn_process_coverage before, after;
		struct rec_sub s;
		unsigned long a;

		monitor_sync();
		a = map_pages(4);
		sub_on(&s, a, 4 * pg);
		before = coverage();
		expect_eq(syscall(SYS_madvise, a + pg, 2 * pg, advs[i]), 0);
		assert_true(wait_until(calls_of(&s) >= 1, WAIT_MS));
		monitor_sync();
		expect_eq(calls_of(&s), 1);
		expect_rec(&s, 0, MMN_EVENT_CLEAR, a + pg, a + 3 * pg);
		after = coverage();
		expect_eq(after.backstop_events - before.backstop_events, 1 + 1);
		expect_eq(after.backstop_duplicates - before.backstop_duplicates, 0);
		expect_eq(after.events[MMN_CALL_MADVISE] - before.events[MMN_CALL_MADVISE], 0);
		sub_off(&s);
		expect_eq(munmap((void *)a, 4 * pg), 0);
	}
}

TEST(raw_mremap)
{
	struct mmn_process_coverage before, after;
	struct rec_sub s;
	unsigned long a, n;

	monitor_sync();
	a = map_pages(3);
	/* A move (the page after is PROT_NONE, so it cannot grow in place). */
	assert_eq(mprotect((void *)(a + 2 * pg), pg, PROT_NONE), 0);
	sub_on(&s, a, 2 * pg);
	before = coverage();
	n = (unsigned long)syscall(SYS_mremap, a, 2 * pg, 4 * pg, MREMAP_MAYMOVE, 0);
	assert_true(n != (unsigned long)-1);
	expect_ne_ul(n, a);
	assert_true(wait_until(calls_of(&s) >= 1, WAIT_MS));
	monitor_sync();
	/*
	 * The kernel reports the move (REMAP) and the old range's unmap (UNMAP):
	 * both invalidate the old range.
	 */
	expect_eq(calls_of(&s), 2);
	expect_rec(&s, 0, MMN_EVENT_UNMAP, a, a + 2 * pg);
	expect_rec(&s, 1, MMN_EVENT_UNMAP, a, a + 2 * pg);
	after = coverage();
	expect_eq(after.backstop_events - before.backstop_events, 2 + 1);
	expect_eq(*(unsigned char *)(n + pg), 0xa1);
	sub_off(&s);

	/* A shrink: the tail's UNMAP. */
	sub_on(&s, n, 4 * pg);
	before = coverage();
	expect_eq(syscall(SYS_mremap, n, 4 * pg, pg, 0, 0), (long)n);
	assert_true(wait_until(calls_of(&s) >= 1, WAIT_MS));
	monitor_sync();
	expect_eq(calls_of(&s), 1);
	expect_rec(&s, 0, MMN_EVENT_UNMAP, n + pg, n + 4 * pg);
	after = coverage();
	expect_eq(after.backstop_events - before.backstop_events, 1 + 1);
	sub_off(&s);
	expect_eq(munmap((void *)n, pg), 0);
	expect_eq(munmap((void *)(a + 2 * pg), pg), 0);
}

/*
 * Hooked calls on registered memory: one callback, before the fact, on the
 * calling thread; the monitor drops the kernel's event(s) as duplicates.
 * Nothing else runs between the call and the monitor's verdict (the wait
 * makes no mapping call), see hooked_then_other_call for why that matters.
 */
TEST(hooked_calls_are_duplicates)
{
	struct mmn_process_coverage before, after;
	struct rec_sub s;
	unsigned long a, n;

	/* munmap: one UNMAP event. */
	monitor_sync();
	a = map_pages(2);
	sub_on(&s, a, 2 * pg);
	before = coverage();
	expect_eq(munmap((void *)a, 2 * pg), 0);
	expect_eq(calls_of(&s), 1);
	expect_true(s.rec[0].on_main);
	assert_true(wait_until(coverage().backstop_duplicates - before.backstop_duplicates >= 1,
			       WAIT_MS));
	monitor_sync();
	after = coverage();
	expect_eq(calls_of(&s), 1);
	expect_eq(after.backstop_duplicates - before.backstop_duplicates, 1);
	expect_eq(after.backstop_events - before.backstop_events, 1);	/* the sentinel */
	sub_off(&s);

	/* madvise(DONTNEED): one REMOVE event. */
	monitor_sync();
	a = map_pages(2);
	sub_on(&s, a, 2 * pg);
	before = coverage();
	expect_eq(madvise((void *)a, 2 * pg, MADV_DONTNEED), 0);
	expect_eq(calls_of(&s), 1);
	expect_rec(&s, 0, MMN_EVENT_CLEAR, a, a + 2 * pg);
	assert_true(wait_until(coverage().backstop_duplicates - before.backstop_duplicates >= 1,
			       WAIT_MS));
	monitor_sync();
	after = coverage();
	expect_eq(calls_of(&s), 1);
	expect_eq(after.backstop_duplicates - before.backstop_duplicates, 1);
	expect_eq(after.backstop_events - before.backstop_events, 1);
	sub_off(&s);
	expect_eq(munmap((void *)a, 2 * pg), 0);

	/* mremap that moves: REMAP and UNMAP, both duplicates. */
	monitor_sync();
	a = map_pages(3);
	assert_eq(mprotect((void *)(a + 2 * pg), pg, PROT_NONE), 0);
	sub_on(&s, a, 2 * pg);
	before = coverage();
	n = (unsigned long)mremap((void *)a, 2 * pg, 4 * pg, MREMAP_MAYMOVE);
	assert_true(n != (unsigned long)MAP_FAILED);
	expect_eq(calls_of(&s), 1);
	expect_rec(&s, 0, MMN_EVENT_UNMAP, a, a + 2 * pg);
	assert_true(wait_until(coverage().backstop_duplicates - before.backstop_duplicates >= 2,
			       WAIT_MS));
	monitor_sync();
	after = coverage();
	expect_eq(calls_of(&s), 1);
	expect_eq(after.backstop_duplicates - before.backstop_duplicates, 2);
	expect_eq(after.backstop_events - before.backstop_events, 1);
	sub_off(&s);
	expect_eq(munmap((void *)n, 4 * pg), 0);
	expect_eq(munmap((void *)(a + 2 * pg), pg), 0);
}

/*
 * A registration that mremap moves goes with the mapping: a later hooked
 * munmap there must still be recognised as a duplicate. The hook publishes
 * its in-flight slot only inside the hull of the registrations, so the move
 * must widen it: the destination is far below everything this test
 * registered (under the program and its heap), outside the hull unless the
 * move widened it. ThreadSanitizer allows application mappings there only in
 * its low range (the first 512 GiB).
 */
#if defined(__SANITIZE_THREAD__)
#define FAR_BELOW 0x1000000000ul	/* 64 GiB */
#else
#define FAR_BELOW 0x200000000000ul	/* 32 TiB: above ASan's shadow */
#endif

TEST(hooked_mremap_carries_registration)
{
	struct mmn_process_coverage before, after;
	unsigned long a, far = FAR_BELOW;
	struct rec_sub s;
	void *t, *n;

	t = mmap((void *)far, 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	assert_true(t == (void *)far);
	monitor_sync();
	a = map_pages(2);
	sub_on(&s, a, 2 * pg);
	before = coverage();
	n = mremap((void *)a, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, t);
	assert_true(n == t);
	expect_eq(calls_of(&s), 1);
	expect_rec(&s, 0, MMN_EVENT_UNMAP, a, a + 2 * pg);
	sub_off(&s);
	/* The pages moved with their contents and their registration. */
	expect_eq(*(unsigned char *)(far + pg), 0xa1);
	expect_eq(munmap(n, 2 * pg), 0);
	/* REMAP and UNMAP of the move, UNMAP of the munmap: all hooked. */
	assert_true(wait_until(coverage().backstop_duplicates - before.backstop_duplicates >= 3,
			       WAIT_MS));
	monitor_sync();
	after = coverage();
	expect_eq(after.backstop_duplicates - before.backstop_duplicates, 3);
	expect_eq(after.backstop_events - before.backstop_events, 1);	/* the sentinel */
}

/*
 * The same, but the thread goes on with another hooked call at once, as any
 * program does. The munmap's in-flight slot is complete when munmap returns;
 * if the next call took it over before the monitor had compared the munmap's
 * event with it, the event would look new: a second, late invalidation of a
 * range that may by then hold a new mapping and notifier. (It did, in up to
 * 7% of the munmaps, before slots were taken round robin and kept while the
 * monitor may still match them.)
 */
TEST(hooked_then_other_call)
{
	struct mmn_process_coverage before, after;
	int rounds = 5000, calls = 0;
	unsigned long other;

	monitor_sync();
	other = map_pages(1);
	before = coverage();
	for (int i = 0; i < rounds; i++) {
		unsigned long a = map_pages(1);
		struct rec_sub s;

		sub_on(&s, a, pg);
		expect_eq(munmap((void *)a, pg), 0);
		expect_eq(mprotect((void *)other, pg, PROT_READ), 0);
		sub_off(&s);
		calls += calls_of(&s);
	}
	assert_true(wait_until(coverage().backstop_duplicates + coverage().backstop_events -
				       before.backstop_duplicates - before.backstop_events >=
			       (uint64_t)rounds, WAIT_MS));
	monitor_sync();
	after = coverage();
	/* Every munmap's event reached the monitor exactly once (+ the sentinel). */
	expect_eq(after.backstop_duplicates - before.backstop_duplicates +
			  after.backstop_events - before.backstop_events,
		  rounds + 1);
	expect_eq(after.backstop_events - before.backstop_events, 1);	/* the sentinel */
	expect_eq(calls, rounds);
	expect_eq(munmap((void *)other, pg), 0);
}

/*
 * Two threads unmap subscribed pages, each page either through the hook or
 * with a raw system call, chosen at random, while the monitor matches the
 * events of both: every notifier is called exactly once -- no raw unmap is
 * lost, no hooked one comes back. The pages come from one pool mapped
 * beforehand, so no address is reused while the test runs.
 */
#define MIXED_PAGES 400

struct mixed {
	unsigned long pool;
	int first;
	uint64_t seed;		/* fixed: which pages go raw is the same every run */
	int raw;
};

static void *mixed_thread(void *arg)
{
	struct mixed *m = arg;
	struct test_rng rng;

	test_rng_seed(&rng, m->seed);
	for (int i = m->first; i < m->first + MIXED_PAGES; i++) {
		unsigned long a = m->pool + (unsigned long)i * pg;

		if (test_rng_below(&rng, 2)) {
			m->raw++;
			if (raw_munmap(a, pg))
				abort();
		} else if (munmap((void *)a, pg)) {
			abort();
		}
	}
	return NULL;
}

TEST(hooked_and_raw_from_two_threads)
{
	static struct rec_sub subs[2 * MIXED_PAGES];
	struct mixed m[2];
	struct mmn_process_coverage before, after;
	unsigned long pool;
	pthread_t t[2];
	int bad = 0;

	monitor_sync();
	pool = map_pages(2 * MIXED_PAGES);
	for (int i = 0; i < 2 * MIXED_PAGES; i++)
		sub_on(&subs[i], pool + (unsigned long)i * pg, pg);
	before = coverage();
	for (int k = 0; k < 2; k++) {
		m[k] = (struct mixed){ pool, k * MIXED_PAGES, 0x6d6d6e00u + (uint64_t)k, 0 };
		assert_eq(pthread_create(&t[k], NULL, mixed_thread, &m[k]), 0);
	}
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	monitor_sync();
	after = coverage();
	for (int i = 0; i < 2 * MIXED_PAGES; i++) {
		if (calls_of(&subs[i]) != 1 || subs[i].rec[0].start != pool + (unsigned long)i * pg)
			bad++;
		sub_off(&subs[i]);
	}
	expect_eq(bad, 0);
	expect_eq(after.backstop_events - before.backstop_events, m[0].raw + m[1].raw + 1);
	expect_eq(after.backstop_duplicates - before.backstop_duplicates,
		  2 * MIXED_PAGES - m[0].raw - m[1].raw);
}

/*
 * A callback run by the monitor (for a raw unmap) unmaps other registered
 * memory: the monitor must not wait for itself. The range is unregistered
 * first, so the hooked munmap neither hangs nor queues an event.
 */
TEST(monitor_callback_unmaps)
{
	struct mmn_process_coverage before, after;
	struct rec_sub sa, sb;
	unsigned long a, b;

	monitor_sync();
	a = map_pages(1);
	b = map_pages(1);
	sub_on_unmapping(&sa, a, pg, b, pg);
	sub_on(&sb, b, pg);
	before = coverage();
	expect_eq(raw_munmap(a, pg), 0);
	assert_true(wait_until(calls_of(&sb) == 1, WAIT_MS));
	monitor_sync();
	expect_eq(calls_of(&sa), 1);
	expect_eq(calls_of(&sb), 1);
	expect_false(sa.rec[0].on_main);
	expect_false(sb.rec[0].on_main);
	expect_rec(&sb, 0, MMN_EVENT_UNMAP, b, b + pg);
	expect_true(page_gone(b));
	after = coverage();
	expect_eq(after.backstop_events - before.backstop_events, 1 + 1);
	expect_eq(after.backstop_duplicates - before.backstop_duplicates, 0);
	expect_eq(after.events[MMN_CALL_MUNMAP] - before.events[MMN_CALL_MUNMAP], 1);
	sub_off(&sa);
	sub_off(&sb);
}

int main(void)
{
	struct mmn_process_coverage cov;
	struct mmn_stats st;

	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	main_thread = pthread_self();
	/* Raw calls must reach the backstop, not the raw path (process_raw tests that). */
	setenv("MMN_RAW", "0", 1);
	assert_eq(pipe2(probe_pipe, O_CLOEXEC), 0);
	sentinel_pool = (unsigned long)mmap(NULL, SENTINELS * pg, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(sentinel_pool != (unsigned long)MAP_FAILED);
	assert_eq(mmn_process_mm(&pmm), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
	if (!cov.backstop) {
		char why[160];

		snprintf(why, sizeof(why), "the userfaultfd backstop is not running: %s (uid %d)",
			 strerror(-cov.backstop_error), (int)getuid());
		test_skip(why);
	}
	printf("backstop running (uid %d)\n", (int)getuid());

	RUN(registration);
	RUN(raw_munmap);
	RUN(raw_madvise);
	RUN(raw_mremap);
	RUN(hooked_calls_are_duplicates);
	RUN(hooked_mremap_carries_registration);
	RUN(hooked_then_other_call);
	RUN(hooked_and_raw_from_two_threads);
	RUN(monitor_callback_unmaps);

	assert_eq(mmn_mm_get_stats(pmm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq(st.notifiers, 0);
	return test_report();
}
