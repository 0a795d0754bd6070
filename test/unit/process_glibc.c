// SPDX-License-Identifier: MIT
/*
 * glibc's own mapping calls, which never pass through the import table
 * (TOOLING.md: an LD_PRELOAD wrapper sees 1 of 103): once mmn_process_mm()
 * has patched libc, a notifier on memory that malloc gives back is called
 * inside free(), realloc() and malloc_trim(), before they return, with the
 * exact range glibc hands to the kernel:
 *
 *   free() of an mmapped chunk         __munmap     UNMAP  the chunk's pages
 *   realloc() of an mmapped chunk      __mremap     UNMAP  the old pages / the tail
 *   free() that trims the main heap    __sbrk       UNMAP  [new break, old break)
 *   malloc_trim(0)                     __madvise    CLEAR  free pages inside the heap
 *   free() in a thread's arena         __madvise    CLEAR  the heap's released tail
 *                                      (MAP_FIXED, UNMAP, if overcommit_memory=2)
 *
 * The expected ranges follow glibc's malloc (2.26 and later): chunk headers of
 * 16 bytes, mtrim()'s page rounding, heap_info.size of non-main heaps.
 *
 * In ASan and TSan builds malloc and free are the sanitizer's, so the test
 * calls glibc's own (looked up in libc.so.6 itself, which no interceptor
 * wraps); in other builds they are the same functions. The backstop is off:
 * this test is about the hooks alone (process_backstop tests both).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mmn/process.h>

#include "emulation.h"
#include "harness.h"

#define CHUNK_HDR 16			/* prev_size + size */
#define HEAP_MAX (64ul << 20)		/* non-main heaps: 2 * DEFAULT_MMAP_THRESHOLD_MAX */
#define MAX_REC 4
#define GONE (-1)

static unsigned long pg;
static int probe_pipe[2];

static struct glibc {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*realloc)(void *, size_t);
	int (*mallopt)(int, int);
	int (*malloc_trim)(size_t);
	size_t (*usable)(void *);
} g;

static void *libc_fn(void *libc, const char *name)
{
	void *fn = dlsym(libc, name);

	if (!fn) {
		fprintf(stderr, "libc has no %s\n", name);
		exit(1);
	}
	return fn;
}

static void glibc_resolve(void)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);

	if (!libc)
		test_skip("not linked with glibc's libc.so.6");
	*(void **)&g.malloc = libc_fn(libc, "malloc");
	*(void **)&g.free = libc_fn(libc, "free");
	*(void **)&g.realloc = libc_fn(libc, "realloc");
	*(void **)&g.mallopt = libc_fn(libc, "mallopt");
	*(void **)&g.malloc_trim = libc_fn(libc, "malloc_trim");
	*(void **)&g.usable = libc_fn(libc, "malloc_usable_size");
}

/* ---- a recording notifier: records, never allocates ------------------------ */

struct call_rec {
	unsigned long start, end;
	enum mmn_event event;
	int marker;
	pthread_t thread;
};

struct rec_sub {
	struct mmn_interval_notifier sub;
	unsigned long probe;
	int calls;		/* atomic */
	struct call_rec rec[MAX_REC];
};

static int probe_byte(unsigned long addr)
{
	unsigned char c;

	if (write(probe_pipe[1], (void *)addr, 1) != 1 || read(probe_pipe[0], &c, 1) != 1)
		return GONE;
	return c;
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
			.marker = s->probe ? probe_byte(s->probe) : GONE,
			.thread = pthread_self(),
		};
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static void sub_on(struct rec_sub *s, unsigned long start, unsigned long end, unsigned long probe)
{
	memset(s, 0, sizeof(*s));
	s->probe = probe;
	assert_eq(mmn_process_insert(&s->sub, start, end - start, &rec_ops), 0);
}

static void sub_off(struct rec_sub *s)
{
	expect_eq(mmn_interval_notifier_remove(&s->sub), 0);
}

/* Exactly one call, on this thread (inside the libc call), as expected. */
#define expect_one_call(s, ev, start_, end_, mk)                                \
	do {                                                                    \
		expect_eq(__atomic_load_n(&(s)->calls, __ATOMIC_RELAXED), 1);   \
		expect_eq((s)->rec[0].event, (ev));                             \
		expect_eq_ul((s)->rec[0].start, (start_));                      \
		expect_eq_ul((s)->rec[0].end, (end_));                          \
		expect_eq((s)->rec[0].marker, (mk));                            \
		expect_true(pthread_equal((s)->rec[0].thread, pthread_self())); \
	} while (0)

static uint64_t events_of(enum mmn_process_call call)
{
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	return cov.events[call];
}

static unsigned long page_up(unsigned long x)
{
	return (x + pg - 1) & ~(pg - 1);
}

static unsigned long page_down(unsigned long x)
{
	return x & ~(pg - 1);
}

/* ---- mmapped chunks ------------------------------------------------------------ */

/* An mmapped chunk's pages: its header starts the mapping. */
static void mmapped_chunk(void *mem, unsigned long *start, unsigned long *end)
{
	*start = (unsigned long)mem - CHUNK_HDR;
	*end = (unsigned long)mem + g.usable(mem);
	assert_eq_ul(*start & (pg - 1), 0);
	assert_eq_ul(*end & (pg - 1), 0);
}

TEST(free_mmapped_chunk)
{
	unsigned char *p = g.malloc(1 << 20);
	unsigned long start, end;
	struct rec_sub s;
	uint64_t before;

	assert_true(p != NULL);
	mmapped_chunk(p, &start, &end);
	expect_ge(end - start, 1ul << 20);
	p[512 << 10] = 0x71;
	sub_on(&s, start, end, (unsigned long)p + (512 << 10));
	before = events_of(MMN_CALL_MUNMAP);
	g.free(p);
	/* Right after free returns: the callback has run, inside free. */
	expect_one_call(&s, MMN_EVENT_UNMAP, start, end, 0x71);
	expect_eq(events_of(MMN_CALL_MUNMAP) - before, 1);
	expect_eq(probe_byte(start), GONE);
	sub_off(&s);
}

TEST(realloc_mmapped_chunk)
{
	unsigned char *p = g.malloc(1 << 20), *q;
	unsigned long start, end, nstart, nend;
	struct rec_sub s;
	uint64_t before;

	/* Growing: glibc moves it with __mremap(MREMAP_MAYMOVE). */
	assert_true(p != NULL);
	mmapped_chunk(p, &start, &end);
	p[512 << 10] = 0x72;
	sub_on(&s, start, end, (unsigned long)p + (512 << 10));
	before = events_of(MMN_CALL_MREMAP);
	q = g.realloc(p, 4 << 20);
	assert_true(q != NULL);
	expect_one_call(&s, MMN_EVENT_UNMAP, start, end, 0x72);
	expect_eq(events_of(MMN_CALL_MREMAP) - before, 1);
	expect_eq(q[512 << 10], 0x72);
	sub_off(&s);

	/* Shrinking: __mremap gives back the tail only. */
	if (emu_mremap_shrink_moves()) {
		printf("  SKIP realloc shrink: mremap moves a shrinking mapping here (qemu-user), the kernel never does\n");
		g.free(q);
		return;
	}
	mmapped_chunk(q, &start, &end);
	q[3 << 20] = 0x73;
	sub_on(&s, start, end, (unsigned long)q + (3 << 20));
	before = events_of(MMN_CALL_MREMAP);
	p = g.realloc(q, 1 << 20);
	expect_eq_ptr(p, q);
	mmapped_chunk(p, &nstart, &nend);
	expect_eq_ul(nstart, start);
	expect_lt(nend, end);
	expect_one_call(&s, MMN_EVENT_UNMAP, nend, end, 0x73);
	expect_eq(events_of(MMN_CALL_MREMAP) - before, 1);
	expect_eq(p[512 << 10], 0x72);
	sub_off(&s);

	mmapped_chunk(p, &start, &end);
	sub_on(&s, start, end, 0);
	g.free(p);
	expect_eq(s.calls, 1);
	sub_off(&s);
}

/* ---- the main heap: brk and malloc_trim --------------------------------------- */

/* From here on, big blocks come from the heaps and a small free top is trimmed. */
static void heap_mode(void)
{
	assert_eq(g.mallopt(M_MMAP_THRESHOLD, 32 << 20), 1);
	assert_eq(g.mallopt(M_TRIM_THRESHOLD, 128 << 10), 1);
	assert_eq(g.mallopt(M_TOP_PAD, 0), 1);
}

TEST(free_trims_main_heap)
{
	unsigned char *anchor, *b;
	unsigned long old_brk, new_brk;
	struct rec_sub s;
	uint64_t before;

	anchor = g.malloc(64);	/* the main arena is set up, b follows it */
	b = g.malloc(2 << 20);
	assert_true(anchor && b);
	old_brk = (unsigned long)sbrk(0);
	/* b is at the top of the heap, below the break. */
	assert_true((unsigned long)b < old_brk && (unsigned long)b + (2 << 20) <= old_brk);
	b[1 << 20] = 0x74;
	sub_on(&s, page_up((unsigned long)b), old_brk, (unsigned long)b + (1 << 20));
	before = events_of(MMN_CALL_BRK);
	g.free(b);	/* into the top chunk, which is then trimmed: __sbrk(-n) */
	new_brk = (unsigned long)sbrk(0);
	expect_lt(new_brk, old_brk);
	expect_one_call(&s, MMN_EVENT_UNMAP, page_up(new_brk), page_up(old_brk), 0x74);
	expect_eq(events_of(MMN_CALL_BRK) - before, 1);
	if (emu_brk_shrink_keeps_pages())
		printf("  (not checked: the pages above a lowered break stay mapped here (qemu-user))\n");
	else
		expect_eq(probe_byte((unsigned long)b + (1 << 20)), GONE);
	sub_off(&s);
	g.free(anchor);
}

TEST(malloc_trim_madvise)
{
	unsigned char *left, *a, *guard, *right;
	unsigned long chunk, size, start, end;
	struct rec_sub s;
	uint64_t before;

	/* a's chunk sits between two chunks in use: freed, it stays on its own. */
	left = g.malloc(64);
	a = g.malloc(1 << 20);
	guard = g.malloc(64);
	right = g.malloc(256 << 10);
	assert_true(left && a && guard && right);
	chunk = (unsigned long)a - CHUNK_HDR;
	size = g.usable(a) + sizeof(size_t);	/* chunksize() of a heap chunk */
	/* mtrim(): from the first page past the free chunk's links, whole pages. */
	start = page_up(chunk + 6 * sizeof(size_t));
	end = start + page_down(chunk + size - start);
	a[512 << 10] = 0x75;
	g.free(a);
	sub_on(&s, page_up((unsigned long)a), page_down((unsigned long)a + (1 << 20)),
	       (unsigned long)a + (512 << 10));
	before = events_of(MMN_CALL_MADVISE);
	expect_eq(g.malloc_trim(0), 1);
	expect_one_call(&s, MMN_EVENT_CLEAR, start, end, 0x75);
	expect_ge(events_of(MMN_CALL_MADVISE) - before, 1);
	expect_eq(probe_byte((unsigned long)a + (512 << 10)), 0);	/* discarded */
	sub_off(&s);
	g.free(left);
	g.free(guard);
	g.free(right);
}

/* ---- a thread's arena: its heap shrinks with madvise ---------------------------- */

struct arena_result {
	bool own_heap;
	unsigned long heap, old_size, new_size;
	struct rec_sub s;
	uint64_t madvise_events, mmap_events;
	bool overcommit_never;
	bool on_thread;		/* the callback ran on the freeing thread */
};

/* glibc's heap_info: ar_ptr, prev, size (bytes of the heap in use), ... */
static unsigned long heap_size(unsigned long heap)
{
	return ((volatile unsigned long *)heap)[2];
}

static void *arena_thread(void *arg)
{
	struct arena_result *r = arg;
	unsigned long brk_now = (unsigned long)sbrk(0);
	unsigned char *first, *b;
	uint64_t madv, mmap_ev;

	first = g.malloc(64);	/* this thread's arena and its first heap */
	b = g.malloc(2 << 20);
	if (!first || !b)
		return NULL;
	r->heap = (unsigned long)b & ~(HEAP_MAX - 1);
	r->own_heap = (unsigned long)b > brk_now && r->heap == ((unsigned long)first & ~(HEAP_MAX - 1));
	if (!r->own_heap)
		return NULL;
	r->old_size = heap_size(r->heap);
	b[1 << 20] = 0x76;
	sub_on(&r->s, page_up((unsigned long)b), page_down((unsigned long)b + (2 << 20)),
	       (unsigned long)b + (1 << 20));
	madv = events_of(MMN_CALL_MADVISE);
	mmap_ev = events_of(MMN_CALL_MMAP);
	g.free(b);	/* heap_trim() -> shrink_heap() */
	r->new_size = heap_size(r->heap);
	r->madvise_events = events_of(MMN_CALL_MADVISE) - madv;
	r->mmap_events = events_of(MMN_CALL_MMAP) - mmap_ev;
	r->on_thread = r->s.calls >= 1 && pthread_equal(r->s.rec[0].thread, pthread_self());
	sub_off(&r->s);
	g.free(first);
	return NULL;
}

static bool overcommit_never(void)
{
	char c = '0';
	int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &c, 1) != 1)
			c = '0';
		close(fd);
	}
	return c == '2';
}

TEST(thread_arena_heap_shrink)
{
	struct arena_result r = { 0 };
	unsigned long start, end;
	pthread_t t;

	r.overcommit_never = overcommit_never();
	assert_eq(pthread_create(&t, NULL, arena_thread, &r), 0);
	assert_eq(pthread_join(t, NULL), 0);
	if (!r.own_heap) {
		printf("  (the thread got no heap of its own; nothing to check)\n");
		return;
	}
	expect_lt(r.new_size, r.old_size);
	start = r.heap + r.new_size;
	end = r.heap + r.old_size;
	expect_eq(r.s.calls, 1);
	expect_true(r.on_thread);
	expect_eq(r.s.rec[0].event, r.overcommit_never ? MMN_EVENT_UNMAP : MMN_EVENT_CLEAR);
	expect_eq_ul(r.s.rec[0].start, start);
	expect_eq_ul(r.s.rec[0].end, end);
	expect_eq(r.s.rec[0].marker, 0x76);
	expect_eq(r.madvise_events, r.overcommit_never ? 0 : 1);
	expect_eq(r.mmap_events, r.overcommit_never ? 1 : 0);
}

int main(void)
{
	struct mmn_mm *mm;
	struct mmn_stats st;

	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	setenv("MMN_BACKSTOP", "0", 0);
	glibc_resolve();
	assert_eq(pipe2(probe_pipe, O_CLOEXEC), 0);
	/* Fixed: big blocks are mmapped, whatever was freed before. */
	assert_eq(g.mallopt(M_MMAP_THRESHOLD, 128 << 10), 1);
	assert_eq(mmn_process_mm(&mm), 0);

	RUN(free_mmapped_chunk);
	RUN(realloc_mmapped_chunk);
	heap_mode();
	RUN(free_trims_main_heap);
	RUN(malloc_trim_madvise);
	RUN(thread_arena_heap_shrink);

	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq(st.notifiers, 0);
	return test_report();
}
