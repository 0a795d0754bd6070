// SPDX-License-Identifier: MIT
/*
 * fork() and the process event sources (docs/process-events.md, "fork"):
 *
 *  - the child inherits the patched libc (the code is shared), the process
 *    domain and its notifiers: its own munmap of a subscribed range calls the
 *    notifier -- in the child, never in the parent;
 *  - the backstop is off in the child (coverage.backstop false, -ECHILD), and
 *    the child's raw unmaps of memory the parent registered do not wait for a
 *    monitor that does not exist there;
 *  - a thread of the parent blocked inside a callback of a hooked munmap at
 *    fork time: the child is not stuck with its open region, the parent's
 *    call completes once released;
 *  - fork() while other threads allocate, which calls the hooks inside
 *    glibc's malloc with an arena lock held (see fork_while_threads_malloc).
 *
 * Every child reports through its exit status (0, or the number of the
 * check that failed) and is bounded by alarm(): a hang is a failure (SIGALRM),
 * never a hung test. The alarm bounds one step (a child's checks, one fork),
 * never the total time of many steps, which depends on the machine's load.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"

#define CHILD_ALARM 10
/*
 * The bound of one step of the malloc scenario (one fork and the wait for
 * that child), not of the whole scenario: a deadlock blocks one fork for ever,
 * while the time of all 200 depends on the load. Under TSan on a loaded
 * machine 200 forks took up to 6 s, past the 5 s that once bounded the whole
 * scenario (a spurious "deadlocked"), while the slowest single fork and wait
 * took about 1 s. Under qemu-user (MMN_TEST_EMULATOR) a fork takes ~30 ms.
 */
#define STEP_ALARM 30

static unsigned long pg;
static struct mmn_mm *pmm;
static bool parent_backstop;

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, release;
};

struct rec_sub {
	struct mmn_interval_notifier sub;
	struct gate *gate;	/* block in the callback until released; NULL: do not */
	int calls;		/* atomic */
	unsigned long start, end;	/* the last range */
	enum mmn_event event;
};

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rec_sub *s = mmn_container_of(sub, struct rec_sub, sub);
	struct gate *g = s->gate;

	mmn_interval_set_seq(sub, cur_seq);
	s->start = range->start;
	s->end = range->end;
	s->event = range->event;
	__atomic_add_fetch(&s->calls, 1, __ATOMIC_RELEASE);
	if (!g)
		return true;
	pthread_mutex_lock(&g->lock);
	g->entered = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->release)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static int calls_of(struct rec_sub *s)
{
	return __atomic_load_n(&s->calls, __ATOMIC_ACQUIRE);
}

static void sub_on(struct rec_sub *s, unsigned long start, unsigned long len)
{
	memset(s, 0, sizeof(*s));
	assert_eq(mmn_process_insert(&s->sub, start, len, &rec_ops), 0);
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

/* The child's status: 0, the failed check's number, or 1000 + signal. */
/* ---- the child's own unmaps ---------------------------------------------------- */

static int child_unmaps(struct rec_sub *s, unsigned long a, struct rec_sub *raw_sub,
			unsigned long raw)
{
	struct mmn_process_coverage cov;
	struct rec_sub fresh;
	uint64_t ranges;
	unsigned long b;

	alarm(CHILD_ALARM);
	if (mmn_process_coverage(&cov))
		return 2;
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		if (cov.method[i] != MMN_HOOK_ENTRY_PATCH)
			return 3;
	if (cov.backstop)
		return 4;
	if (parent_backstop && cov.backstop_error != -ECHILD)
		return 5;
	/* Inherited notifier, inherited hooks. */
	if (calls_of(s) != 0 || munmap((void *)a, 2 * pg))
		return 6;
	if (calls_of(s) != 1 || s->event != MMN_EVENT_UNMAP || s->start != a ||
	    s->end != a + 2 * pg)
		return 7;
	/*
	 * Memory the parent registered with its userfaultfd: no monitor here,
	 * and the kernel dropped the registration, so this must not wait.
	 */
	if (syscall(SYS_munmap, raw, pg))
		return 8;
	/* libc's syscall() is hooked (the raw path); there is no backstop here. */
	if (calls_of(raw_sub) != (cov.raw_syscall_fn ? 1 : 0))
		return 9;
	/* A new notifier in the child works the same; nothing is registered. */
	b = (unsigned long)mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				0);
	memset(&fresh, 0, sizeof(fresh));
	ranges = cov.backstop_ranges;
	if (b == (unsigned long)MAP_FAILED ||
	    mmn_process_insert(&fresh.sub, b, pg, &rec_ops))
		return 10;
	if (mmn_process_coverage(&cov) || cov.backstop_ranges != ranges)
		return 11;
	if (mprotect((void *)b, pg, PROT_READ) || calls_of(&fresh) != 1 ||
	    fresh.event != MMN_EVENT_PROTECTION_VMA)
		return 12;
	if (mmn_interval_notifier_remove(&fresh.sub) || mmn_interval_notifier_remove(&s->sub) ||
	    mmn_interval_notifier_remove(&raw_sub->sub))
		return 13;
	return 0;
}

TEST(child_unmap_invalidates)
{
	unsigned long a = map_pages(2), raw = map_pages(1);
	struct mmn_process_coverage before, after;
	struct rec_sub s, raw_sub;
	pid_t pid;

	sub_on(&s, a, 2 * pg);
	sub_on(&raw_sub, raw, pg);
	assert_eq(mmn_process_coverage(&before), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_unmaps(&s, a, &raw_sub, raw));
	expect_eq(test_wait_child(pid), 0);

	/* Nothing of that reached the parent. */
	expect_eq(calls_of(&s), 0);
	expect_eq(calls_of(&raw_sub), 0);
	assert_eq(mmn_process_coverage(&after), 0);
	expect_eq(after.backstop, parent_backstop);
	expect_eq(after.events[MMN_CALL_MUNMAP] - before.events[MMN_CALL_MUNMAP], 0);
	expect_eq(after.events[MMN_CALL_MPROTECT] - before.events[MMN_CALL_MPROTECT], 0);
	expect_eq(*(volatile unsigned char *)(a + pg), 0xa1);
	expect_eq(*(volatile unsigned char *)raw, 0xa0);

	/* The parent's own unmap, as usual. */
	expect_eq(munmap((void *)a, 2 * pg), 0);
	expect_eq(calls_of(&s), 1);
	expect_eq_ul(s.start, a);
	expect_eq_ul(s.end, a + 2 * pg);
	expect_eq(mmn_interval_notifier_remove(&s.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&raw_sub.sub), 0);
	expect_eq(munmap((void *)raw, pg), 0);
}

/* ---- a thread inside a hooked munmap at fork time ---------------------------- */

struct unmapper {
	unsigned long a;
	int ret;
};

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;

	u->ret = munmap((void *)u->a, pg);
	return NULL;
}

static int child_after_blocked_fork(struct rec_sub *blocked, unsigned long r,
				    struct rec_sub *other, unsigned long o)
{
	struct mmn_process_coverage cov;
	struct mmn_stats st;

	alarm(CHILD_ALARM);
	blocked->gate = NULL;	/* the child's copy must not wait for a thread it lacks */
	if (mmn_mm_get_stats(pmm, &st) || st.active != 0 || (st.seq & 1))
		return 2;
	if (mmn_process_coverage(&cov) || cov.backstop)
		return 3;
	/* read_begin does not wait for the parent's period. */
	if (mmn_interval_read_begin(&blocked->sub) != st.seq - 1)
		return 4;
	if (munmap((void *)o, pg) || calls_of(other) != 1 || other->start != o)
		return 5;
	/* The range the parent's thread is unmapping is still mapped here. */
	if (*(volatile unsigned char *)r != 0xa0)
		return 6;
	if (munmap((void *)r, pg) || calls_of(blocked) != 2 || blocked->start != r ||
	    blocked->end != r + pg)
		return 7;
	if (mmn_mm_get_stats(pmm, &st) || st.active != 0 || (st.seq & 1))
		return 8;
	return 0;
}

TEST(fork_while_thread_in_callback)
{
	struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
	struct unmapper u = { .a = map_pages(1), .ret = -7 };
	unsigned long o = map_pages(1);
	struct rec_sub blocked, other;
	struct mmn_stats st;
	pthread_t t;
	pid_t pid;

	sub_on(&blocked, u.a, pg);
	sub_on(&other, o, pg);
	blocked.gate = &gate;
	assert_eq(pthread_create(&t, NULL, unmap_thread, &u), 0);
	pthread_mutex_lock(&gate.lock);
	while (!gate.entered)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
	assert_eq(mmn_mm_get_stats(pmm, &st), 0);
	expect_eq(st.active, 1);
	expect_eq(st.seq & 1, 1);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_after_blocked_fork(&blocked, u.a, &other, o));
	expect_eq(test_wait_child(pid), 0);

	/* The parent's period is untouched; the thread finishes once released. */
	assert_eq(mmn_mm_get_stats(pmm, &st), 0);
	expect_eq(st.active, 1);
	expect_eq(calls_of(&other), 0);
	pthread_mutex_lock(&gate.lock);
	gate.release = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	pthread_join(t, NULL);
	expect_eq(u.ret, 0);
	expect_eq(calls_of(&blocked), 1);
	assert_eq(mmn_mm_get_stats(pmm, &st), 0);
	expect_eq(st.active, 0);
	expect_eq(st.seq & 1, 0);
	expect_eq(mmn_interval_notifier_remove(&blocked.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&other.sub), 0);
	expect_eq(munmap((void *)o, pg), 0);
}

/* ---- fork() while other threads allocate ---------------------------------------- */

/*
 * Runs in a fresh process (this binary, re-executed with "--malloc-fork"):
 * a thread allocates and frees 64 KiB blocks from its own arena, so glibc
 * calls the mprotect/madvise hooks with that arena's lock held (grow_heap,
 * shrink_heap), and the hooks take the domain lock. The main thread forks.
 * fork() runs the core's atfork handler first, which takes the domain lock,
 * and then glibc takes every arena lock: the two locks in opposite orders.
 * Exits 0 after FORKS forks; a deadlock ends it with SIGALRM: the alarm is
 * re-armed for every fork, so it bounds each step, not the total time.
 */
#define FORKS 200

static bool scenario_stop;

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	int (*mallopt)(int, int);
} g;

static void *allocating_thread(void *arg)
{
	void *blocks[32];

	(void)arg;
	while (!__atomic_load_n(&scenario_stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < 32; i++)
			blocks[i] = g.malloc(64 << 10);
		for (int i = 0; i < 32; i++)
			g.free(blocks[i]);
	}
	return NULL;
}

static int malloc_fork_scenario(void)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	struct mmn_mm *mm;
	pthread_t t;

	alarm(STEP_ALARM);
	if (!libc)
		return 2;
	/* glibc's allocator even under ASan/TSan (see process_glibc.c). */
	*(void **)&g.malloc = dlsym(libc, "malloc");
	*(void **)&g.free = dlsym(libc, "free");
	*(void **)&g.mallopt = dlsym(libc, "mallopt");
	if (!g.malloc || !g.free || !g.mallopt || g.mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1)
		return 3;
	if (mmn_process_mm(&mm))
		return 4;
	if (pthread_create(&t, NULL, allocating_thread, NULL))
		return 5;
	for (int i = 0; i < FORKS; i++) {
		pid_t pid;

		alarm(STEP_ALARM);
		pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid < 0 || test_wait_child(pid) != 0)
			return 6;
	}
	alarm(STEP_ALARM);
	__atomic_store_n(&scenario_stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	alarm(0);
	return 0;
}

TEST(fork_while_threads_malloc)
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		test_exec_self("--malloc-fork");
		_exit(99);
	}
	status = test_wait_child(pid);
	if (status == 1000 + SIGALRM)
		printf("  fork() deadlocked against a thread in malloc (one fork and wait took over %d s)\n",
		       STEP_ALARM);
	expect_eq(status, 0);
}

int main(int argc, char **argv)
{
	struct mmn_process_coverage cov;

	if (argc > 1 && strcmp(argv[1], "--malloc-fork") == 0)
		return malloc_fork_scenario();
	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	assert_eq(mmn_process_mm(&pmm), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
	parent_backstop = cov.backstop;
	if (!parent_backstop)
		printf("(backstop off in the parent too: %s)\n", strerror(-cov.backstop_error));

	RUN(child_unmap_invalidates);
	RUN(fork_while_thread_in_callback);
	RUN(fork_while_threads_malloc);

	return test_report();
}
