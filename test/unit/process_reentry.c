// SPDX-License-Identifier: MIT
/*
 * Re-entry into the event sources (src/vm/process.c):
 *
 * (a) mmn_process_event_begin()/_end(): an interposer reports [a, b) itself
 *     and then calls the hooked munmap inside the event: one callback, not
 *     two. Events nest; ending them out of order, twice, or on another thread
 *     is reported through the log hook. Before the process domain exists,
 *     begin returns 0 and does nothing.
 * (b) Callbacks that unmap memory: the nested invalidation joins the period
 *     and calls the other notifier; a callback that would recurse without end
 *     stops at VM_MAX_NEST (8) levels, counted in coverage.nested_too_deep
 *     and warned about -- no crash, no hang.
 * (c) Callbacks run inside free(). glibc's arena lock is not recursive: a
 *     callback that called malloc() or free() could deadlock on the lock its
 *     own free() holds (systrim, heap_trim and malloc_trim call the hooks with
 *     it held; whether it does depends on the tcache). Hence the rule in
 *     docs/process-events.md: process-domain callbacks must not allocate.
 *     This test does not build that deadlock; it checks the safe pattern --
 *     callbacks that only record into memory allocated beforehand -- with
 *     other threads allocating and freeing at the same time.
 *
 * The backstop is off (MMN_BACKSTOP=0 unless set): the hooks' re-entry alone.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"

#define MAX_REC 16
#define MAX_LOG 64
#define NEST_LIMIT 8	/* VM_MAX_NEST */

static unsigned long pg;
static struct mmn_mm *pmm;

/* ---- the log hook: records, allocation-free --------------------------------- */

struct logged {
	enum mmn_log_level level;
	const char *what;
	unsigned long start, end;
};

static struct logged logs[MAX_LOG];
static int nr_logs;	/* atomic */

static void log_hook(const struct mmn_log_record *rec, void *arg)
{
	int i = __atomic_fetch_add(&nr_logs, 1, __ATOMIC_RELAXED);

	(void)arg;
	if (i < MAX_LOG)
		logs[i] = (struct logged){ rec->level, rec->what, rec->start, rec->end };
}

static int log_mark(void)
{
	return __atomic_load_n(&nr_logs, __ATOMIC_RELAXED);
}

/* How many records since @mark say exactly @what. */
static int logged_since(int mark, const char *what)
{
	int n = 0, end = log_mark() < MAX_LOG ? log_mark() : MAX_LOG;

	for (int i = mark; i < end; i++)
		n += strcmp(logs[i].what, what) == 0;
	return n;
}

static const char out_of_order[] = "mmn_process_event_end: events ended out of order";
static const char not_open[] = "mmn_process_event_end: no such event open";
static const char other_thread[] = "mmn_process_event_end: event not open on this thread";
static const char too_deep[] =
	"event sources: mapping change inside callbacks nested too deeply; not reported";

/* ---- notifiers ----------------------------------------------------------------- */

struct call_rec {
	unsigned long start, end;
	enum mmn_event event;
	unsigned long dom_seq;	/* the domain's sequence, seen from the callback */
	pthread_t thread;
};

enum action {
	ACT_NONE = 0,
	ACT_UNMAP_OTHER,	/* munmap [arg, arg + arg_len) once */
	ACT_UNMAP_NEXT,		/* munmap the page after the range, while inside [.., limit) */
	ACT_UNMAP_SAME,		/* munmap the range again: recursion without end */
};

struct rec_sub {
	struct mmn_interval_notifier sub;
	enum action action;
	unsigned long arg, arg_len;
	int calls;		/* atomic */
	struct call_rec rec[MAX_REC];
};

static unsigned long domain_seq(void)
{
	struct mmn_stats st;

	if (mmn_mm_get_stats(pmm, &st))
		return 0;
	return st.seq;
}

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rec_sub *s = mmn_container_of(sub, struct rec_sub, sub);
	int i = __atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);

	mmn_interval_set_seq(sub, cur_seq);
	if (i < MAX_REC)
		s->rec[i] = (struct call_rec){
			.start = range->start, .end = range->end, .event = range->event,
			.dom_seq = domain_seq(), .thread = pthread_self(),
		};
	switch (s->action) {
	case ACT_UNMAP_OTHER:
		s->action = ACT_NONE;
		munmap((void *)s->arg, s->arg_len);
		break;
	case ACT_UNMAP_NEXT:
		if (range->end < s->arg)
			munmap((void *)range->end, pg);
		break;
	case ACT_UNMAP_SAME:
		munmap((void *)range->start, range->end - range->start);
		break;
	case ACT_NONE:
		break;
	}
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static void sub_on(struct rec_sub *s, unsigned long start, unsigned long len)
{
	memset(s, 0, sizeof(*s));
	assert_eq(mmn_process_insert(&s->sub, start, len, &rec_ops), 0);
}

static void sub_off(struct rec_sub *s)
{
	expect_eq(mmn_interval_notifier_remove(&s->sub), 0);
}

static int calls_of(struct rec_sub *s)
{
	return __atomic_load_n(&s->calls, __ATOMIC_RELAXED);
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

static bool page_gone(unsigned long addr)
{
	return msync((void *)addr, pg, MS_ASYNC) == -1 && errno == ENOMEM;
}

static struct mmn_process_coverage coverage(void)
{
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	return cov;
}

static struct mmn_stats stats(void)
{
	struct mmn_stats st;

	assert_eq(mmn_mm_get_stats(pmm, &st), 0);
	return st;
}

/* ---- (a) begin / end ------------------------------------------------------------ */

/* Run first, before anything creates the process domain. */
static void before_the_domain(void)
{
	struct mmn_process_coverage cov;
	struct mmn_process_event ev;
	int mark = log_mark();

	test_current = "before_the_domain";
	expect_eq(mmn_process_coverage(&cov), -ENODEV);
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		expect_eq(cov.method[i], MMN_HOOK_NONE);
		expect_eq(cov.error[i], -ENODEV);
	}
	expect_false(cov.backstop);
	expect_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x10000, 0x20000), 0);
	expect_eq(mmn_process_coverage(&cov), -ENODEV);	/* begin created nothing */
	mmn_process_event_end(&ev);
	expect_eq(mmn_process_event_begin(NULL, MMN_EVENT_UNMAP, 0x10000, 0x20000), -EINVAL);
	expect_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x20000, 0x20000), -EINVAL);
	expect_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x20000, 0x10000), -EINVAL);
	expect_eq(log_mark(), mark);
	printf("%s before_the_domain\n", test_failures ? "FAIL" : "ok  ");
}

TEST(interposer_reports_first)
{
	unsigned long a = map_pages(2);
	struct mmn_process_event ev;
	struct rec_sub s;
	uint64_t munmaps;
	unsigned long seq0;

	sub_on(&s, a, 2 * pg);
	seq0 = stats().seq;
	munmaps = coverage().events[MMN_CALL_MUNMAP];
	assert_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, a, a + 2 * pg), 0);
	expect_eq(calls_of(&s), 1);
	expect_eq(s.rec[0].event, MMN_EVENT_UNMAP);
	expect_eq_ul(s.rec[0].start, a);
	expect_eq_ul(s.rec[0].end, a + 2 * pg);
	expect_eq_ul(ev.range.start, a);
	expect_eq_ul(ev.range.end, a + 2 * pg);
	expect_eq(stats().active, 1);
	expect_eq(stats().seq & 1, 1);
	/* The hooked munmap inside the event is not reported again. */
	expect_eq(munmap((void *)a, 2 * pg), 0);
	expect_eq(calls_of(&s), 1);
	expect_eq(coverage().events[MMN_CALL_MUNMAP] - munmaps, 0);
	mmn_process_event_end(&ev);
	expect_eq(stats().active, 0);
	expect_eq_ul(stats().seq, seq0 + 2);
	sub_off(&s);
}

TEST(partly_outside_is_reported)
{
	unsigned long a = map_pages(2);
	struct mmn_process_event ev;
	struct rec_sub s;

	sub_on(&s, a, 2 * pg);
	assert_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, a, a + pg), 0);
	expect_eq(calls_of(&s), 1);
	/* Not inside the event: the hook reports all of it. */
	expect_eq(munmap((void *)a, 2 * pg), 0);
	expect_eq(calls_of(&s), 2);
	expect_eq_ul(s.rec[1].start, a);
	expect_eq_ul(s.rec[1].end, a + 2 * pg);
	mmn_process_event_end(&ev);
	expect_eq(stats().active, 0);
	sub_off(&s);
}

TEST(events_nest)
{
	unsigned long a = map_pages(4), seq0;
	struct mmn_process_event outer, inner;
	struct rec_sub s;
	int mark = log_mark();

	sub_on(&s, a, 4 * pg);
	seq0 = stats().seq;
	assert_eq(mmn_process_event_begin(&outer, MMN_EVENT_UNMAP, a, a + 4 * pg), 0);
	assert_eq(mmn_process_event_begin(&inner, MMN_EVENT_CLEAR, a + pg, a + 2 * pg), 0);
	expect_eq(calls_of(&s), 2);
	expect_eq(s.rec[1].event, MMN_EVENT_CLEAR);
	expect_eq_ul(s.rec[1].start, a + pg);
	expect_eq(stats().active, 2);
	/* Inside both, inside the outer only: neither is reported again. */
	expect_eq(madvise((void *)(a + pg), pg, MADV_DONTNEED), 0);
	expect_eq(munmap((void *)(a + 2 * pg), 2 * pg), 0);
	expect_eq(calls_of(&s), 2);
	mmn_process_event_end(&inner);
	expect_eq(stats().active, 1);
	/* Only the outer is open now. */
	expect_eq(munmap((void *)a, 2 * pg), 0);
	expect_eq(calls_of(&s), 2);
	mmn_process_event_end(&outer);
	expect_eq(stats().active, 0);
	expect_eq_ul(stats().seq, seq0 + 2);	/* one period */
	expect_eq(log_mark(), mark);		/* nothing to complain about */
	sub_off(&s);
}

TEST(end_out_of_order)
{
	unsigned long a = map_pages(2);
	struct mmn_process_event first, second;
	struct rec_sub s;
	int mark = log_mark();

	sub_on(&s, a, 2 * pg);
	assert_eq(mmn_process_event_begin(&first, MMN_EVENT_UNMAP, a, a + pg), 0);
	assert_eq(mmn_process_event_begin(&second, MMN_EVENT_UNMAP, a + pg, a + 2 * pg), 0);
	expect_eq(calls_of(&s), 2);
	mmn_process_event_end(&first);
	expect_eq(logged_since(mark, out_of_order), 1);
	expect_eq(logs[mark].level, MMN_LOG_ERROR);
	expect_eq(stats().active, 1);
	/* first is gone from the thread's events: its range is reported again. */
	expect_eq(munmap((void *)a, pg), 0);
	expect_eq(calls_of(&s), 3);
	/* second is still open and still covers its range. */
	expect_eq(munmap((void *)(a + pg), pg), 0);
	expect_eq(calls_of(&s), 3);
	mark = log_mark();
	mmn_process_event_end(&second);
	expect_eq(log_mark(), mark);
	expect_eq(stats().active, 0);
	sub_off(&s);
}

TEST(end_misuse)
{
	struct mmn_process_event zero = { 0 }, ev;
	int mark = log_mark();

	mmn_process_event_end(&zero);
	mmn_process_event_end(NULL);
	expect_eq(logged_since(mark, not_open), 2);
	assert_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x10000, 0x20000), 0);
	mmn_process_event_end(&ev);
	mark = log_mark();
	mmn_process_event_end(&ev);	/* twice */
	expect_eq(logged_since(mark, not_open), 1);
	expect_eq(stats().active, 0);
}

/*
 * Ending an event on another thread than the one that began it is misuse: it
 * is reported and changes nothing. The event stays open on its own thread,
 * which still covers its hooked calls and ends it itself.
 */
struct cross {
	struct mmn_process_event ev;
	unsigned long a;
	int step;		/* atomic: 1 begun, 2 ended elsewhere, 3 unmapped and ended */
};

static void *cross_begin_thread(void *arg)
{
	struct cross *c = arg;

	if (mmn_process_event_begin(&c->ev, MMN_EVENT_UNMAP, c->a, c->a + pg))
		return NULL;
	__atomic_store_n(&c->step, 1, __ATOMIC_RELEASE);
	if (!wait_until(__atomic_load_n(&c->step, __ATOMIC_ACQUIRE) == 2, 10000))
		return NULL;
	munmap((void *)c->a, pg);	/* inside the event: not reported again */
	mmn_process_event_end(&c->ev);
	__atomic_store_n(&c->step, 3, __ATOMIC_RELEASE);
	return NULL;
}

TEST(end_on_another_thread)
{
	struct cross c = { .a = map_pages(1) };
	struct rec_sub s;
	pthread_t t;
	int mark;

	sub_on(&s, c.a, pg);
	assert_eq(pthread_create(&t, NULL, cross_begin_thread, &c), 0);
	assert_true(wait_until(__atomic_load_n(&c.step, __ATOMIC_ACQUIRE) == 1, 10000));
	expect_eq(calls_of(&s), 1);
	mark = log_mark();
	mmn_process_event_end(&c.ev);
	expect_eq(logged_since(mark, other_thread), 1);
	expect_eq(stats().active, 1);		/* still open: not ours to end */
	__atomic_store_n(&c.step, 2, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	expect_eq(c.step, 3);
	expect_eq(calls_of(&s), 1);		/* the event reported the unmap, once */
	expect_eq(stats().active, 0);
	sub_off(&s);
}

/* ---- (b) callbacks that unmap ----------------------------------------------------- */

TEST(callback_unmaps_other)
{
	unsigned long a = map_pages(1), b = map_pages(1), seq0;
	struct rec_sub sa, sb;

	sub_on(&sa, a, pg);
	sub_on(&sb, b, pg);
	sa.action = ACT_UNMAP_OTHER;
	sa.arg = b;
	sa.arg_len = pg;
	seq0 = stats().seq;
	expect_eq(munmap((void *)a, pg), 0);
	expect_eq(calls_of(&sa), 1);
	expect_eq(calls_of(&sb), 1);
	expect_eq(sb.rec[0].event, MMN_EVENT_UNMAP);
	expect_eq_ul(sb.rec[0].start, b);
	expect_eq_ul(sb.rec[0].end, b + pg);
	/* The nested invalidation joined the period: one odd sequence, +2 in all. */
	expect_eq_ul(sa.rec[0].dom_seq, seq0 + 1);
	expect_eq_ul(sb.rec[0].dom_seq, seq0 + 1);
	expect_eq_ul(stats().seq, seq0 + 2);
	expect_eq(stats().active, 0);
	expect_true(page_gone(a));
	expect_true(page_gone(b));
	sub_off(&sa);
	sub_off(&sb);
}

/* Each callback unmaps the next page: 8 levels are followed, the 9th is not. */
TEST(callback_chain_stops_at_limit)
{
	unsigned long a = map_pages(16), seq0;
	struct mmn_process_coverage before, after;
	struct rec_sub s;
	int mark = log_mark();

	sub_on(&s, a, 16 * pg);
	s.action = ACT_UNMAP_NEXT;
	s.arg = a + 16 * pg;
	seq0 = stats().seq;
	before = coverage();
	expect_eq(munmap((void *)a, pg), 0);
	after = coverage();
	expect_eq(calls_of(&s), NEST_LIMIT);
	for (int i = 0; i < NEST_LIMIT && i < MAX_REC; i++) {
		expect_eq_ul(s.rec[i].start, a + (unsigned long)i * pg);
		expect_eq_ul(s.rec[i].end, a + (unsigned long)(i + 1) * pg);
	}
	expect_eq(after.nested_too_deep - before.nested_too_deep, 1);
	expect_eq(logged_since(mark, too_deep), 1);
	for (int i = mark; i < log_mark() && i < MAX_LOG; i++) {
		if (strcmp(logs[i].what, too_deep))
			continue;
		expect_eq(logs[i].level, MMN_LOG_WARN);
		expect_eq_ul(logs[i].start, a + NEST_LIMIT * pg);
		expect_eq_ul(logs[i].end, a + (NEST_LIMIT + 1) * pg);
	}
	/* The unreported level still unmapped its page; the chain ended there. */
	for (int i = 0; i <= NEST_LIMIT; i++)
		expect_true(page_gone(a + (unsigned long)i * pg));
	expect_false(page_gone(a + (NEST_LIMIT + 1) * pg));
	expect_eq_ul(stats().seq, seq0 + 2);
	expect_eq(stats().active, 0);
	/* The call nested too deeply opened nothing, so it is not counted. */
	expect_eq(after.events[MMN_CALL_MUNMAP] - before.events[MMN_CALL_MUNMAP], NEST_LIMIT);
	sub_off(&s);
	expect_eq(munmap((void *)(a + (NEST_LIMIT + 1) * pg), (15 - NEST_LIMIT) * pg), 0);
}

/* A callback that unmaps its own range again would recurse forever. */
TEST(callback_recursion_is_bounded)
{
	unsigned long a = map_pages(1);
	struct mmn_process_coverage before, after;
	struct rec_sub s;
	int mark = log_mark();

	sub_on(&s, a, pg);
	s.action = ACT_UNMAP_SAME;
	before = coverage();
	expect_eq(munmap((void *)a, pg), 0);
	after = coverage();
	expect_eq(calls_of(&s), NEST_LIMIT);
	expect_eq(after.nested_too_deep - before.nested_too_deep, 1);
	expect_eq(logged_since(mark, too_deep), 1);
	expect_eq(stats().active, 0);
	expect_true(page_gone(a));
	sub_off(&s);
}

/* ---- (c) callbacks inside free(), with other threads allocating ----------------- */

/*
 * glibc's allocator itself, even in ASan and TSan builds (where malloc and
 * free are the sanitizer's): looked up in libc.so.6, which no interceptor
 * wraps. In other builds these are the very functions malloc and free.
 */
static struct glibc {
	void *(*malloc)(size_t);
	void (*free)(void *);
	size_t (*usable)(void *);
	int (*mallopt)(int, int);
} g;

static void glibc_resolve(void)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);

	assert_true(libc != NULL);
	*(void **)&g.malloc = dlsym(libc, "malloc");
	*(void **)&g.free = dlsym(libc, "free");
	*(void **)&g.usable = dlsym(libc, "malloc_usable_size");
	*(void **)&g.mallopt = dlsym(libc, "mallopt");
	assert_true(g.malloc && g.free && g.usable && g.mallopt);
}

struct churn {
	bool stop;		/* atomic */
	unsigned long rounds;	/* atomic */
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	void *keep[8] = { 0 };
	unsigned int i = 0;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		/* Small blocks (tcache, arena) and big ones (mmapped, heap trims). */
		free(keep[i % 8]);
		keep[i % 8] = malloc((i % 3 == 0) ? (256u << 10) : 16u + i % 500);
		i++;
		__atomic_add_fetch(&c->rounds, 1, __ATOMIC_RELAXED);
	}
	for (int k = 0; k < 8; k++)
		free(keep[k]);
	return NULL;
}

TEST(callbacks_inside_free)
{
	struct churn c = { 0 };
	pthread_t t[2];
	int rounds = 2000, bad = 0;

	/* Bounded: a deadlock ends the test with SIGALRM instead of hanging it. */
	alarm(60);
	for (int k = 0; k < 2; k++)
		assert_eq(pthread_create(&t[k], NULL, churn_thread, &c), 0);
	assert_true(wait_until(__atomic_load_n(&c.rounds, __ATOMIC_RELAXED) > 100, 10000));
	for (int i = 0; i < rounds; i++) {
		unsigned char *p = g.malloc(1 << 20);	/* mmapped: free unmaps it */
		unsigned long start, end, seq;
		struct rec_sub s;

		assert_true(p != NULL);
		start = (unsigned long)p & ~(pg - 1);
		end = (unsigned long)p + g.usable(p);
		sub_on(&s, start, end - start);
		/*
		 * The other threads' unmaps open regions all the time: an insert
		 * during one is deferred to the end of its period (the kernel's
		 * rule), and read_begin waits for that, as a user's would.
		 */
		seq = mmn_interval_read_begin(&s.sub);
		g.free(p);
		/*
		 * The first call is free's own, on this thread, for the whole
		 * chunk. More may follow: once free has returned, the other
		 * threads may map and unmap their blocks in the same addresses.
		 */
		bad += calls_of(&s) < 1 || s.rec[0].start != start || s.rec[0].end != end ||
		       !pthread_equal(s.rec[0].thread, pthread_self()) ||
		       !mmn_interval_read_retry(&s.sub, seq);
		sub_off(&s);
	}
	__atomic_store_n(&c.stop, true, __ATOMIC_RELEASE);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	alarm(0);
	expect_eq(bad, 0);
	expect_eq(stats().active, 0);
}

int main(void)
{

	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	setenv("MMN_BACKSTOP", "0", 0);
	mmn_set_log_fn(log_hook, NULL);
	before_the_domain();
	glibc_resolve();
	/* Big blocks are mmapped, whatever was freed before. */
	assert_eq(g.mallopt(M_MMAP_THRESHOLD, 128 << 10), 1);
	assert_eq(mmn_process_mm(&pmm), 0);

	RUN(interposer_reports_first);
	RUN(partly_outside_is_reported);
	RUN(events_nest);
	RUN(end_out_of_order);
	RUN(end_misuse);
	RUN(end_on_another_thread);
	RUN(callback_unmaps_other);
	RUN(callback_chain_stops_at_limit);
	RUN(callback_recursion_is_bounded);
	RUN(callbacks_inside_free);

	expect_eq(stats().notifiers, 0);
	return test_report();
}
