// SPDX-License-Identifier: MIT
/*
 * The raw path (src/vm/sud.c, docs/process-events.md "Raw system calls"):
 * mapping system calls made by a `syscall` instruction outside libc, and
 * through libc's syscall(), invalidate *before* the kernel runs them.
 *
 * For every raw call on every kind of memory (private anonymous, MAP_SHARED
 * file, MAP_SHARED anonymous (shmem), SysV), a notifier subscribed with
 * mmn_process_insert() is called exactly once, with the call's event and
 * exact range, while the old contents are still readable (the callback reads
 * the marker byte through a pipe, so a page already gone gives GONE instead
 * of a crash); the system call returns what the kernel returns (result,
 * -errno); coverage's raw_events[] moves by exactly one.
 *
 * Then the hazards: threads that existed before mmn_process_mm() and threads
 * created after; fork, vfork and exec (dispatch does not survive exec: an
 * exec'ed program's raw calls run normally); a thread that blocks every
 * signal; raw rt_sigprocmask; the program's own SIGSYS handler installed
 * after libmmn (kill and seccomp SECCOMP_RET_TRAP still reach it); a signal
 * handler's raw calls; the dynamic loader's munmap in dlclose.
 *
 * The backstop is off (MMN_BACKSTOP=0) so every count is the raw path's.
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ucontext.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"

#define GONE (-1)
#define CHILD_ALARM 20

static unsigned long pg;
static struct mmn_mm *pmm;
static int probe_pipe[2];
static const char *self_exe;

/* ---- the raw system call: an instruction in this program, not libc's ------ */

/* fork and vfork as raw calls; architectures without the old calls use clone. */
#if defined(SYS_fork)
#define RAW_FORK() RAW(SYS_fork, 0, 0, 0)
#define RAW_VFORK() RAW(SYS_vfork, 0, 0, 0)
#else
#define RAW_FORK() RAW(SYS_clone, SIGCHLD, 0, 0)
#define RAW_VFORK() RAW(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0)
#endif

static long raw6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
#else
	long r = syscall(nr, a, b, c, d, e, f);

	return r == -1 ? -errno : r;
#endif
}

#define RAW(nr, a, b, c) raw6((nr), (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* ---- a recording notifier --------------------------------------------------- */

struct rec_sub {
	struct mmn_interval_notifier sub;
	unsigned long probe;
	int calls;		/* atomic */
	enum mmn_event event;
	unsigned long start, end;
	int marker;
};

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

	mmn_interval_set_seq(sub, cur_seq);
	if (__atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED) == 0) {
		s->event = range->event;
		s->start = range->start;
		s->end = range->end;
		s->marker = probe_byte(s->probe);
	}
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static void sub_on(struct rec_sub *s, unsigned long start, unsigned long len)
{
	memset(s, 0, sizeof(*s));
	s->probe = start;
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

static uint64_t raw_events(enum mmn_process_call call)
{
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	return cov.raw_events[call];
}

/* ---- memory of each kind, first byte of each page = 0xa0 + i ------------------ */

enum kind { ANON, FILE_SHARED, SHMEM, SYSV, KINDS };
static const char *const kind_name[KINDS] = { "anon", "file", "shmem", "sysv" };

static unsigned long map_kind(enum kind k, int n)
{
	size_t len = (size_t)n * pg;
	unsigned char *p = MAP_FAILED;

	switch (k) {
	case ANON:
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case SHMEM:
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		break;
	case FILE_SHARED: {
		char path[] = "/tmp/mmn_rawXXXXXX";
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		unlink(path);
		assert_eq(ftruncate(fd, (off_t)len), 0);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		break;
	}
	case SYSV: {
		int id = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);

		assert_true(id >= 0);
		p = shmat(id, NULL, 0);
		shmctl(id, IPC_RMID, NULL);
		if (p == (void *)-1)
			p = MAP_FAILED;
		break;
	}
	default:
		break;
	}
	assert_true(p != MAP_FAILED);
	for (int i = 0; i < n; i++)
		p[(size_t)i * pg] = (unsigned char)(0xa0 + i);
	return (unsigned long)p;
}

static void unmap_kind(enum kind k, unsigned long a, int n)
{
	if (k == SYSV)
		expect_eq(shmdt((void *)a), 0);
	else
		expect_eq(munmap((void *)a, (size_t)n * pg), 0);
}

#define expect_seen(s, ev, st, en, mk)                                          \
	do {                                                                    \
		expect_eq(calls_of(s), 1);                                      \
		expect_eq((s)->event, (ev));                                    \
		expect_eq_ul((s)->start, (st));                                 \
		expect_eq_ul((s)->end, (en));                                   \
		expect_eq((s)->marker, (mk));                                   \
	} while (0)

/* ---- every call, every kind --------------------------------------------------- */

TEST(coverage_says_raw_before)
{
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	expect_eq(cov.raw_error, 0);
	expect_true(cov.raw_syscall_fn);
	expect_true(cov.raw_loader);
	expect_false(cov.raw_static);
	expect_true(cov.raw_thread_armed);
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		expect_eq(cov.raw_method[i], MMN_RAW_BEFORE);
}

/*
 * One mapping call on every kind of memory: map @pages pages, subscribe them
 * all, make the call; the notifier is called once, with @event over pages
 * [@first, @last) and the first page's marker still readable; the call
 * returns 0 (or the mapping's address: @returns_addr); the raw count of @call
 * moves by one. @check runs next, still subscribed; @cleanup after.
 */
struct every_kind {
	const char *name;
	enum mmn_process_call call;
	int pages;
	long (*op)(unsigned long a);
	bool returns_addr;
	enum mmn_event event;
	int first, last;
	void (*check)(enum kind k, unsigned long a, struct rec_sub *s);
	void (*cleanup)(enum kind k, unsigned long a);
};

static long raw_munmap_two(unsigned long a)
{
	return RAW(SYS_munmap, a, 2 * pg, 0);
}

static long libc_munmap_one(unsigned long a)
{
	return syscall(SYS_munmap, a, pg);
}

static long raw_dontneed_second(unsigned long a)
{
	return RAW(SYS_madvise, a + pg, pg, MADV_DONTNEED);
}

static void dontneed_check(enum kind k, unsigned long a, struct rec_sub *s)
{
	/* private anonymous memory reads zero now; shared memory keeps it */
	expect_eq(*(volatile unsigned char *)(a + pg), k == ANON ? 0 : 0xa1);
	/* a non-discarding advice invalidates nothing */
	expect_eq(RAW(SYS_madvise, a, pg, MADV_WILLNEED), 0);
	expect_eq(calls_of(s), 1);
}

static long raw_mprotect_first(unsigned long a)
{
	return RAW(SYS_mprotect, a, pg, PROT_READ);
}

static long raw_mmap_fixed_first(unsigned long a)
{
	return raw6(SYS_mmap, (long)a, (long)pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

static void fresh_first_check(enum kind k, unsigned long a, struct rec_sub *s)
{
	(void)k;
	(void)s;
	expect_eq(*(volatile unsigned char *)a, 0);
}

/* Shrink: the tail goes. SysV segments move like shmem mappings. */
static long raw_mremap_shrink(unsigned long a)
{
	return raw6(SYS_mremap, (long)a, (long)(2 * pg), (long)pg, 0, 0, 0);
}

static void unmap_two(enum kind k, unsigned long a)
{
	unmap_kind(k, a, 2);
}

/* What is left of a SysV attachment no longer starts at a: munmap it. */
static void munmap_two(enum kind k, unsigned long a)
{
	(void)k;
	expect_eq(munmap((void *)a, 2 * pg), 0);
}

static void unmap_first(enum kind k, unsigned long a)
{
	if (k == SYSV)
		expect_eq(shmdt((void *)a), 0);
	else
		expect_eq(munmap((void *)a, pg), 0);
}

static const struct every_kind every_kind_cases[] = {
	{ "raw munmap", MMN_CALL_MUNMAP, 2, raw_munmap_two, false, MMN_EVENT_UNMAP, 0, 2,
	  NULL, NULL },
	{ "libc syscall(SYS_munmap)", MMN_CALL_MUNMAP, 1, libc_munmap_one, false,
	  MMN_EVENT_UNMAP, 0, 1, NULL, NULL },
	{ "raw madvise(MADV_DONTNEED)", MMN_CALL_MADVISE, 2, raw_dontneed_second, false,
	  MMN_EVENT_CLEAR, 1, 2, dontneed_check, unmap_two },
	{ "raw mprotect", MMN_CALL_MPROTECT, 2, raw_mprotect_first, false,
	  MMN_EVENT_PROTECTION_VMA, 0, 1, NULL, unmap_two },
	{ "raw mmap(MAP_FIXED)", MMN_CALL_MMAP, 2, raw_mmap_fixed_first, true, MMN_EVENT_UNMAP,
	  0, 1, fresh_first_check, munmap_two },
	{ "raw mremap (shrink)", MMN_CALL_MREMAP, 2, raw_mremap_shrink, true, MMN_EVENT_UNMAP,
	  1, 2, NULL, unmap_first },
};

TEST(every_call_every_kind)
{
	for (size_t i = 0; i < sizeof(every_kind_cases) / sizeof(every_kind_cases[0]); i++) {
		const struct every_kind *c = &every_kind_cases[i];

		for (int k = 0; k < KINDS; k++) {
			unsigned long a = map_kind((enum kind)k, c->pages);
			uint64_t before = raw_events(c->call);
			struct rec_sub s;
			long r;

			printf("  %s, %s\n", c->name, kind_name[k]);
			sub_on(&s, a, (unsigned long)c->pages * pg);
			r = c->op(a);
			if (c->returns_addr)
				expect_eq_ul((unsigned long)r, a);
			else
				expect_eq(r, 0);
			expect_seen(&s, c->event, a + (unsigned long)c->first * pg,
				    a + (unsigned long)c->last * pg, 0xa0);
			expect_eq(raw_events(c->call) - before, 1);
			if (c->check)
				c->check((enum kind)k, a, &s);
			sub_off(&s);
			if (c->cleanup)
				c->cleanup((enum kind)k, a);
		}
	}
}

TEST(libc_syscall_munmap_error)
{
	/* errno as the kernel sets it, nothing invalidated */
	errno = 0;
	expect_eq(syscall(SYS_munmap, 12345UL, pg), -1);
	expect_eq(errno, EINVAL);
}

TEST(raw_shmdt_shmat)
{
	unsigned long a = map_kind(SYSV, 2);
	uint64_t before = raw_events(MMN_CALL_SHMDT);
	int id = shmget(IPC_PRIVATE, 2 * pg, IPC_CREAT | 0600);
	struct rec_sub s;
	long r;

	assert_true(id >= 0);
	sub_on(&s, a, 2 * pg);
	/* SHM_REMAP over the attachment replaces it */
	r = RAW(SYS_shmat, id, a, SHM_REMAP);
	expect_eq_ul((unsigned long)r, a);
	expect_seen(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0xa0);
	expect_eq(raw_events(MMN_CALL_SHMAT), 1);
	sub_off(&s);
	sub_on(&s, a, 2 * pg);
	s.probe = a + pg;
	*(volatile unsigned char *)(a + pg) = 0x5a;
	expect_eq(RAW(SYS_shmdt, a, 0, 0), 0);
	expect_seen(&s, MMN_EVENT_UNMAP, a, a + 2 * pg, 0x5a);
	expect_eq(raw_events(MMN_CALL_SHMDT) - before, 1);
	sub_off(&s);
	shmctl(id, IPC_RMID, NULL);
	/* errors come back as the kernel gives them */
	expect_eq(RAW(SYS_shmdt, a, 0, 0), -EINVAL);
}

TEST(raw_brk_shrink)
{
	unsigned long cur = (unsigned long)RAW(SYS_brk, 0, 0, 0), top;
	uint64_t before = raw_events(MMN_CALL_BRK);
	struct rec_sub s;

	top = (unsigned long)RAW(SYS_brk, cur + 2 * pg, 0, 0);
	if (top != cur + 2 * pg)
		return;		/* no room to grow the heap here: nothing to shrink */
	*(volatile unsigned char *)(top - pg) = 0x77;
	sub_on(&s, top - pg, pg);
	expect_eq_ul((unsigned long)RAW(SYS_brk, top - pg, 0, 0), top - pg);
	expect_seen(&s, MMN_EVENT_UNMAP, top - pg, top, 0x77);
	expect_eq(raw_events(MMN_CALL_BRK) - before, 1);
	sub_off(&s);
	expect_eq_ul((unsigned long)RAW(SYS_brk, cur, 0, 0), cur);
}

TEST(raw_errors_unchanged)
{
	unsigned long a = map_kind(ANON, 1);
	uint64_t before = raw_events(MMN_CALL_MUNMAP);

	expect_eq(RAW(SYS_munmap, a + 1, pg, 0), -EINVAL);
	expect_eq(RAW(SYS_munmap, a, 0, 0), -EINVAL);
	expect_eq(RAW(SYS_mprotect, a, pg, 0x1000), -EINVAL);
	expect_eq(RAW(SYS_madvise, a, pg, 12345), -EINVAL);
	expect_eq(raw_events(MMN_CALL_MUNMAP) - before, 0);
	/* a non-mapping call goes through untouched */
	expect_eq(RAW(SYS_getpid, 0, 0, 0), getpid());
	expect_eq(RAW(SYS_close, -1, 0, 0), -EBADF);
	unmap_kind(ANON, a, 1);
}

/* ---- threads ------------------------------------------------------------------ */

struct thread_job {
	unsigned long addr;
	long ret;
	bool armed;
	bool block_all;
	pthread_barrier_t *go;	/* NULL: run at once */
};

static void *thread_unmap(void *p)
{
	struct thread_job *j = p;
	struct mmn_process_coverage cov;

	if (j->block_all) {
		sigset_t all;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	}
	if (j->go)
		pthread_barrier_wait(j->go);
	j->armed = mmn_process_coverage(&cov) == 0 && cov.raw_thread_armed;
	j->ret = RAW(SYS_munmap, j->addr, pg, 0);
	return NULL;
}

TEST(thread_created_after_start)
{
	for (int block = 0; block <= 1; block++) {
		struct thread_job j = { .addr = map_kind(ANON, 1), .block_all = block };
		struct rec_sub s;
		pthread_t t;

		sub_on(&s, j.addr, pg);
		assert_eq(pthread_create(&t, NULL, thread_unmap, &j), 0);
		assert_eq(pthread_join(t, NULL), 0);
		expect_true(j.armed);
		expect_eq(j.ret, 0);
		expect_seen(&s, MMN_EVENT_UNMAP, j.addr, j.addr + pg, 0xa0);
		sub_off(&s);
	}
}

/* Made before mmn_process_mm() in main(); armed by libmmn's request signal. */
static pthread_barrier_t early_go;
static struct thread_job early_job = { .go = &early_go };
static pthread_t early_thread;

TEST(thread_existing_at_start)
{
	struct rec_sub s;

	early_job.addr = map_kind(ANON, 1);
	sub_on(&s, early_job.addr, pg);
	pthread_barrier_wait(&early_go);
	assert_eq(pthread_join(early_thread, NULL), 0);
	expect_true(early_job.armed);
	expect_eq(early_job.ret, 0);
	expect_seen(&s, MMN_EVENT_UNMAP, early_job.addr, early_job.addr + pg, 0xa0);
	sub_off(&s);
}

/* ---- fork, vfork, exec ----------------------------------------------------------- */

static int child_raw_unmap(void)
{
	unsigned long a = map_kind(ANON, 1);
	struct mmn_process_coverage cov;
	struct rec_sub s;

	alarm(CHILD_ALARM);
	if (mmn_process_coverage(&cov) || !cov.raw_thread_armed)
		return 2;
	memset(&s, 0, sizeof(s));
	s.probe = a;
	if (mmn_process_insert(&s.sub, a, pg, &rec_ops))
		return 3;
	if (RAW(SYS_munmap, a, pg, 0) != 0)
		return 4;
	if (calls_of(&s) != 1 || s.marker != 0xa0 || s.start != a)
		return 5;
	return 0;
}

TEST(fork_child_armed)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_raw_unmap());
	expect_eq(test_wait_child(pid), 0);
}

TEST(raw_fork_child_armed)
{
	/* fork made by a raw instruction: trapped, run by the handler */
	long pid = RAW_FORK();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_raw_unmap());
	expect_eq(test_wait_child((pid_t)pid), 0);
}

TEST(vfork_exec_clean)
{
	/* The exec'ed program makes raw calls with no libmmn: dispatch is gone. */
	char *argv[] = { (char *)self_exe, (char *)"--exec-child", NULL };
	pid_t pid = vfork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execv(self_exe, argv);
		_exit(127);
	}
	expect_eq(test_wait_child(pid), 0);
}

TEST(raw_vfork_exec_clean)
{
	char *argv[] = { (char *)self_exe, (char *)"--exec-child", NULL };
	long pid = RAW_VFORK();

	assert_true(pid >= 0);
	if (pid == 0) {
		execv(self_exe, argv);
		_exit(127);
	}
	expect_eq(test_wait_child((pid_t)pid), 0);
}

/* --exec-child: no libmmn here; a raw munmap and a raw getpid just work. */
static int exec_child(void)
{
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || RAW(SYS_munmap, p, 4096, 0) != 0)
		return 1;
	return RAW(SYS_getpid, 0, 0, 0) == getpid() ? 0 : 2;
}

/* ---- signals ----------------------------------------------------------------------- */

static volatile sig_atomic_t own_sigsys, own_code;

/* The trapped call's result register in a signal frame. */
#if defined(__x86_64__)
#define FRAME_SET_RESULT(uc, v) ((uc)->uc_mcontext.gregs[REG_RAX] = (v))
#else
#define FRAME_SET_RESULT(uc, v) ((uc)->uc_mcontext.regs[0] = (v))
#endif

static void own_handler(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	own_sigsys++;
	own_code = si->si_code;
	if (si->si_code == SYS_SECCOMP) {
		ucontext_t *uc = ctx;

		FRAME_SET_RESULT(uc, 4242);	/* the trapped call's result */
	}
}

/* Have seccomp trap getppid (SECCOMP_RET_TRAP), for life: in a child only. 0 or -1. */
static int seccomp_trap_getppid(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -1;
	return 0;
}

TEST(program_sigsys_handler_after_start)
{
	struct sigaction sa = { 0 }, old, back;
	unsigned long a = map_kind(ANON, 1);
	struct rec_sub s;

	sa.sa_sigaction = own_handler;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	assert_eq(sigaction(SIGSYS, &sa, &old), 0);
	expect_true(old.sa_handler == SIG_DFL);
	assert_eq(sigaction(SIGSYS, NULL, &back), 0);
	expect_true(back.sa_sigaction == own_handler);
	/* a SIGSYS that is not a dispatch trap reaches the program's handler */
	own_sigsys = 0;
	expect_eq(kill(getpid(), SIGSYS), 0);
	expect_eq(own_sigsys, 1);
	expect_eq(own_code, SI_USER);
	/* dispatch traps still work */
	sub_on(&s, a, pg);
	expect_eq(RAW(SYS_munmap, a, pg, 0), 0);
	expect_seen(&s, MMN_EVENT_UNMAP, a, a + pg, 0xa0);
	sub_off(&s);
	expect_eq(own_sigsys, 1);

	/* seccomp SECCOMP_RET_TRAP: in a child, since a filter is for life */
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		long r;

		alarm(CHILD_ALARM);
		own_sigsys = 0;
		if (seccomp_trap_getppid())
			_exit(3);
		r = RAW(SYS_getppid, 0, 0, 0);	/* trapped by dispatch, then by seccomp */
		if (r != 4242 || own_sigsys != 1 || own_code != SYS_SECCOMP)
			_exit(4);
		if (getppid() != 4242 || own_sigsys != 2)	/* libc's: seccomp only */
			_exit(5);
		_exit(child_raw_unmap());
	}
	expect_eq(test_wait_child(pid), 0);
	assert_eq(sigaction(SIGSYS, &old, NULL), 0);
}

TEST(seccomp_trap_without_handler_kills)
{
	/* No SIGSYS handler of the program's: death by SIGSYS, as without libmmn. */
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(CHILD_ALARM);
		if (seccomp_trap_getppid())
			_exit(3);
		getppid();
		_exit(4);
	}
	expect_eq(test_wait_child(pid), 1000 + SIGSYS);
}

static unsigned long usr1_addr;
static long usr1_ret = 1;

static void usr1_handler(int sig)
{
	(void)sig;
	usr1_ret = RAW(SYS_munmap, usr1_addr, pg, 0);
}

TEST(signal_handler_raw_call)
{
	struct sigaction sa = { 0 };
	struct rec_sub s;

	usr1_addr = map_kind(ANON, 1);
	sa.sa_handler = usr1_handler;
	sigfillset(&sa.sa_mask);	/* SIGSYS is left out by libmmn */
	assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	sub_on(&s, usr1_addr, pg);
	expect_eq(raise(SIGUSR1), 0);
	expect_eq(usr1_ret, 0);
	expect_seen(&s, MMN_EVENT_UNMAP, usr1_addr, usr1_addr + pg, 0xa0);
	sub_off(&s);
	signal(SIGUSR1, SIG_DFL);
}

TEST(raw_sigprocmask)
{
	uint64_t set = 1ULL << (SIGUSR2 - 1), old = 0;
	sigset_t now;

	expect_eq(raw6(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, (long)&old, 8, 0, 0), 0);
	expect_eq(old & set, 0);
	sigprocmask(SIG_BLOCK, NULL, &now);
	expect_true(sigismember(&now, SIGUSR2));
	expect_eq(raw6(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, 8, 0, 0), 0);
	sigprocmask(SIG_BLOCK, NULL, &now);
	expect_false(sigismember(&now, SIGUSR2));
	expect_eq(raw6(SYS_rt_sigprocmask, 99, (long)&set, 0, 8, 0, 0), -EINVAL);
	expect_eq(raw6(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, 4, 0, 0), -EINVAL);
}

/* ---- the dynamic loader ------------------------------------------------------------- */

struct dl_find {
	const char *name;
	unsigned long start, end;
};

static int dl_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct dl_find *f = arg;

	(void)size;
	if (!strstr(info->dlpi_name, f->name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			f->start = (info->dlpi_addr + ph->p_vaddr) & ~(pg - 1);
			f->end = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + pg - 1) & ~(pg - 1);
			return 1;
		}
	}
	return 0;
}

TEST(dlclose_invalidates_before)
{
	const char *lib = getenv("MMN_TEST_DLCLOSE_LIB");
	struct dl_find f = { .name = "mmn_raw_testlib" };
	struct rec_sub s;
	int code;
	void *h;

	if (!lib) {
		printf("  (MMN_TEST_DLCLOSE_LIB not set: CTest sets it)\n");
		expect_true(lib != NULL);
		return;
	}
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	assert_true(h != NULL);
	assert_eq(dl_iterate_phdr(dl_find_cb, &f), 1);
	sub_on(&s, f.start, f.end - f.start);
	s.probe = f.start;
	code = *(volatile unsigned char *)f.start;
	expect_eq(dlclose(h), 0);
	expect_true(calls_of(&s) >= 1);
	expect_eq(s.event, MMN_EVENT_UNMAP);
	expect_eq(s.marker, code);	/* the library's code, still mapped */
	sub_off(&s);
}

/* A catch-all: counts unmaps whose first page still holds an ELF header. */
static int elf_unmaps;	/* atomic */

static bool elf_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	mmn_interval_set_seq(sub, cur_seq);
	if (range->event == MMN_EVENT_UNMAP && probe_byte(range->start) == 0x7f &&
	    probe_byte(range->start + 1) == 'E' && probe_byte(range->start + 2) == 'L')
		__atomic_add_fetch(&elf_unmaps, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops elf_ops = { .invalidate = elf_invalidate };

TEST(failed_dlopen_invalidates_before)
{
	const char *lib = getenv("MMN_TEST_BAD_LIB");
	struct mmn_interval_notifier all;
	uint64_t before = raw_events(MMN_CALL_MUNMAP);

	if (!lib) {
		expect_true(lib != NULL);
		return;
	}
	memset(&all, 0, sizeof(all));
	assert_eq(mmn_interval_notifier_insert(&all, pmm, pg, (1UL << 47) - 2 * pg, &elf_ops), 0);
	expect_true(dlopen(lib, RTLD_NOW | RTLD_LOCAL) == NULL);
	expect_true(strstr(dlerror(), "mmn_raw_nowhere_defined") != NULL);
	expect_eq(mmn_interval_notifier_remove(&all), 0);
	/* ld.so's munmap of the object, seen while its header was still there */
	expect_true(__atomic_load_n(&elf_unmaps, __ATOMIC_RELAXED) >= 1);
	expect_true(raw_events(MMN_CALL_MUNMAP) - before >= 1);
}

int main(int argc, char **argv)
{
	struct mmn_process_coverage cov;

	if (argc > 1 && strcmp(argv[1], "--exec-child") == 0)
		return exec_child();
	self_exe = "/proc/self/exe";
	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	setenv("MMN_BACKSTOP", "0", 0);
	assert_eq(pipe2(probe_pipe, O_CLOEXEC), 0);
	assert_eq(pthread_barrier_init(&early_go, NULL, 2), 0);
	assert_eq(pthread_create(&early_thread, NULL, thread_unmap, &early_job), 0);
	assert_eq(mmn_process_mm(&pmm), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
#if !defined(__x86_64__)
	if (cov.raw_error == -EOPNOTSUPP)
		test_skip("syscall user dispatch is implemented for x86-64 only");
#endif
	if (cov.raw_error == -EINVAL)
		test_skip("the kernel has no syscall user dispatch (Linux < 5.11)");
#if defined(__SANITIZE_THREAD__)
	if (cov.raw_error == -EOPNOTSUPP)
		test_skip("syscall user dispatch is off under ThreadSanitizer (it defers signals)");
#endif

	RUN(coverage_says_raw_before);
	RUN(every_call_every_kind);
	RUN(libc_syscall_munmap_error);
	RUN(raw_shmdt_shmat);
	RUN(raw_brk_shrink);
	RUN(raw_errors_unchanged);
	RUN(thread_created_after_start);
	RUN(thread_existing_at_start);
	RUN(fork_child_armed);
	RUN(raw_fork_child_armed);
	RUN(vfork_exec_clean);
	RUN(raw_vfork_exec_clean);
	RUN(program_sigsys_handler_after_start);
	RUN(seccomp_trap_without_handler_kills);
	RUN(signal_handler_raw_call);
	RUN(raw_sigprocmask);
	RUN(dlclose_invalidates_before);
	RUN(failed_dlopen_invalidates_before);
	return test_report();
}
