// SPDX-License-Identifier: MIT
/*
 * The raw path: mapping system calls made outside libc's patched entries,
 * seen before the kernel runs them (docs/process-events.md, "Raw system
 * calls", has the analysis and the hazards).
 *
 * Mechanism: Linux syscall user dispatch (prctl PR_SET_SYSCALL_USER_DISPATCH,
 * 5.11+). Per thread, the kernel lets system calls whose instruction lies in
 * one range run normally and turns every other one into a SIGSYS (si_code
 * SYS_USER_DISPATCH) before running it, with the registers as they were at
 * the syscall instruction. The range is libc's text, so everything libc does
 * (the entry-patched functions included) costs nothing; the dynamic loader,
 * the vDSO's fallbacks and every raw `syscall` instruction elsewhere trap.
 * The handler runs the mapping calls through the same bracket as the hooks
 * (hooks.c: vm_mapping_syscall) and any other call as it is, and writes the
 * kernel's result back into the interrupted registers: the program sees the
 * result and errno the kernel gave.
 *
 * libmmn's own system calls must not trap: raw.h sends them to a `syscall;
 * ret` found inside the allowed range (vm_syscall_insn). In a program linked
 * statically there is no libc.so: the allowed range is libmmn's own two-byte
 * stub, and every other system call of the process traps.
 *
 * Dispatch is per thread and the kernel clears it on clone (threads, fork,
 * vfork) and on execve (measured on 6.18; kernel/fork.c clears the work bit),
 * so: an exec'ed program starts clean (unlike a seccomp filter, which would
 * outlive exec and cannot be removed); a fork child re-arms in a pthread_atfork
 * child handler; a new thread arms itself first thing (pthread_create is
 * detoured, hooks.c); threads that exist when libmmn starts are asked to arm
 * with a queued SIGSYS carrying a private cookie.
 *
 * The selector byte is per thread (initial-exec TLS; no other thread ever
 * points at it, since clone clears dispatch). It is BLOCK, except while the
 * notifier callbacks of an invalidation run (vm_sud_allow): glibc runs some
 * mapping calls with every signal blocked (a thread's exit discards its stack
 * that way), and a callback's own raw system call would then trap with SIGSYS
 * blocked, which kills the process. A raw mapping call made by a callback is
 * therefore not seen by the raw path (nested changes, documented).
 *
 * Calls the handler cannot simply repeat from inside a signal handler:
 *   rt_sigreturn     the registers are pointed at vm_syscall_insn, so the
 *                    kernel runs it from the allowed range on the original stack
 *   rt_sigprocmask   applied to the mask the handler's return restores
 *   vfork            run as fork: a vfork child would reuse the handler's frame
 *   clone3           -ENOSYS (glibc then uses clone, as under container seccomp)
 *   clone with a new stack or CLONE_VM: re-issued from vm_syscall_insn with the
 *                    return address pushed on both stacks (8 bytes below the
 *                    stack pointer: the red zone of the caller)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <unistd.h>

#include "raw.h"
#include "vm.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#endif
#ifndef PR_SYS_DISPATCH_OFF
#define PR_SYS_DISPATCH_OFF 0
#endif
#ifndef PR_SYS_DISPATCH_ON
#define PR_SYS_DISPATCH_ON 1
#endif
#ifndef SYSCALL_DISPATCH_FILTER_ALLOW
#define SYSCALL_DISPATCH_FILTER_ALLOW 0
#endif
#ifndef SYSCALL_DISPATCH_FILTER_BLOCK
#define SYSCALL_DISPATCH_FILTER_BLOCK 1
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2
#endif

#if defined(__x86_64__)

/* ---- x86-64 register access ------------------------------------------- */

/*
 * The static program's allowed range: `syscall; ret` for libmmn's own calls,
 * then the SIGSYS handler's restorer (`rt_sigreturn`): a restorer outside the
 * range would trap on every return from the handler, for ever.
 */
__asm__(".pushsection .text\n"
	".p2align 4\n"
	".hidden mmn_vm_sud_stub\n"
	".globl mmn_vm_sud_stub\n"
	"mmn_vm_sud_stub:\n"
	"\tsyscall\n"
	"\tret\n"
	"\tmov $15, %eax\n"
	"\tsyscall\n"
	".popsection\n");
extern const unsigned char mmn_vm_sud_stub[] __attribute__((visibility("hidden")));

/*
 * Where a thread cloned from trapped code starts (its dispatch is off): arm
 * it, keeping every register the kernel handed the child, then return to the
 * clone's caller.
 */
__asm__(".pushsection .text\n"
	".p2align 4\n"
	".hidden mmn_vm_sud_child_arm\n"
	".globl mmn_vm_sud_child_arm\n"
	"mmn_vm_sud_child_arm:\n"
	"\tpush %rax\n\tpush %rcx\n\tpush %rdx\n\tpush %rsi\n\tpush %rdi\n"
	"\tpush %r8\n\tpush %r9\n\tpush %r10\n\tpush %r11\n\tpush %rbp\n"
	"\tmov %rsp, %rbp\n"
	"\tand $-16, %rsp\n"
	"\tcall vm_sud_arm_thread\n"
	"\tmov %rbp, %rsp\n"
	"\tpop %rbp\n\tpop %r11\n\tpop %r10\n\tpop %r9\n\tpop %r8\n"
	"\tpop %rdi\n\tpop %rsi\n\tpop %rdx\n\tpop %rcx\n\tpop %rax\n"
	"\tret\n"
	".popsection\n");
extern const unsigned char mmn_vm_sud_child_arm[] __attribute__((visibility("hidden")));
#define STUB_LEN 10		/* syscall; ret; mov $15, %eax; syscall */
#define STUB_RESTORER 3

static void regs_args(const ucontext_t *uc, long a[6])
{
	const greg_t *g = uc->uc_mcontext.gregs;

	a[0] = (long)g[REG_RDI];
	a[1] = (long)g[REG_RSI];
	a[2] = (long)g[REG_RDX];
	a[3] = (long)g[REG_R10];
	a[4] = (long)g[REG_R8];
	a[5] = (long)g[REG_R9];
}

static void regs_set_ret(ucontext_t *uc, long ret)
{
	uc->uc_mcontext.gregs[REG_RAX] = ret;
}

/* Resume at the allowed `syscall; ret` with system call @nr; @push: the return. */
static void regs_reissue(ucontext_t *uc, long nr, bool push)
{
	greg_t *g = uc->uc_mcontext.gregs;

	if (push) {
		g[REG_RSP] -= 8;
		*(greg_t *)g[REG_RSP] = g[REG_RIP];
	}
	g[REG_RAX] = nr;
	g[REG_RIP] = (greg_t)vm_syscall_insn;
}

static void regs_set_arg(ucontext_t *uc, int i, long v)
{
	static const int reg[6] = { REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9 };

	uc->uc_mcontext.gregs[reg[i]] = v;
}

/* Find `syscall; ret` (0f 05 c3) in [start, end). */
static void *find_syscall_ret(unsigned long start, unsigned long end)
{
	for (const unsigned char *p = (const unsigned char *)start; p + 3 <= (const unsigned char *)end; p++)
		if (p[0] == 0x0f && p[1] == 0x05 && p[2] == 0xc3)
			return (void *)p;
	return NULL;
}

#define SUD_ARCH_OK 1
#else
#define SUD_ARCH_OK 0
#endif

struct k_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#define SIGBIT(s) (1ULL << ((s) - 1))
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

/* Per thread: dispatch reads it at every system call outside the range. */
static __thread volatile char selector __attribute__((tls_model("initial-exec"))) =
	SYSCALL_DISPATCH_FILTER_BLOCK;
static unsigned long allow_start, allow_len;
static struct sigaction prev_sigsys;	/* a handler that was there before */
static int sud_error = -ENODEV;
static int thread_hook_error = -ENODEV;
static bool sud_static;
static uint64_t nr_traps, nr_threads_armed, nr_arm_failed;	/* atomic */
static unsigned int arm_acks;		/* atomic; futex word */
static const char arm_cookie;		/* its address marks an arm request */
static __thread bool armed __attribute__((tls_model("initial-exec")));

static long sud_on(void)
{
	return raw_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON,
			   allow_start, allow_len, &selector, 0);
}

MMN_HOT
char vm_sud_allow(char allow)
{
	char prev = selector;

	selector = allow ? SYSCALL_DISPATCH_FILTER_ALLOW : prev;
	return prev;
}

MMN_HOT
void vm_sud_restore(char prev)
{
	selector = prev;
}

/* Turn dispatch on for the calling thread. */
void vm_sud_arm_thread(void)
{
	if (!__atomic_load_n(&allow_len, __ATOMIC_ACQUIRE))
		return;
	if (sud_on() == 0) {
		armed = true;
		__atomic_add_fetch(&nr_threads_armed, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_add_fetch(&nr_arm_failed, 1, __ATOMIC_RELAXED);
	}
}

static void atfork_child(void)
{
	/* The kernel cleared dispatch in the child; this thread's TLS says armed. */
	armed = false;
	vm_sud_arm_thread();
}

#if SUD_ARCH_OK

/* rt_sigprocmask against the mask that the handler's return restores. */
static long emulate_sigprocmask(ucontext_t *uc, const long a[6])
{
	unsigned char *mask = (unsigned char *)&uc->uc_sigmask;
	const unsigned char *in = (const unsigned char *)a[1];
	unsigned char *old = (unsigned char *)a[2], set[8];

	if ((size_t)a[3] != sizeof(set))	/* the kernel's sigset_t */
		return -EINVAL;
	if (in && a[0] != SIG_BLOCK && a[0] != SIG_UNBLOCK && a[0] != SIG_SETMASK)
		return -EINVAL;
	memcpy(set, mask, sizeof(set));
	if (in) {
		for (size_t i = 0; i < sizeof(set); i++) {
			if (a[0] == SIG_BLOCK)
				set[i] |= in[i];
			else if (a[0] == SIG_UNBLOCK)
				set[i] &= (unsigned char)~in[i];
			else
				set[i] = in[i];
		}
		/* SIGKILL and SIGSTOP cannot be blocked; SIGSYS must not be. */
		set[(SIGSYS - 1) / 8] &= (unsigned char)~(1u << ((SIGSYS - 1) % 8));
		set[(SIGKILL - 1) / 8] &= (unsigned char)~(1u << ((SIGKILL - 1) % 8));
		set[(SIGSTOP - 1) / 8] &= (unsigned char)~(1u << ((SIGSTOP - 1) % 8));
	}
	if (old)
		memcpy(old, mask, sizeof(set));
	memcpy(mask, set, sizeof(set));
	return 0;
}

/*
 * rt_sigaction from trapped code (every one in a static program): SIGSYS is
 * left out of a handler's mask, and a SIGSYS handler is kept aside for
 * forward() instead of replacing libmmn's.
 */
static long emulate_sigaction(const long a[6])
{
	const struct k_sigaction *act = (const struct k_sigaction *)a[1];
	struct k_sigaction *old = (struct k_sigaction *)a[2], k;

	if ((size_t)a[3] != 8)
		return -EINVAL;
	if (a[0] == SIGSYS) {
		struct k_sigaction prev = { .flags = (unsigned long)prev_sigsys.sa_flags };

		memcpy(&prev.handler, &prev_sigsys.sa_sigaction, sizeof(prev.handler));
		memcpy(&prev.mask, &prev_sigsys.sa_mask, sizeof(prev.mask));
		if (act) {
			memset(&prev_sigsys, 0, sizeof(prev_sigsys));
			memcpy(&prev_sigsys.sa_sigaction, &act->handler, sizeof(act->handler));
			prev_sigsys.sa_flags = (int)act->flags;
			memcpy(&prev_sigsys.sa_mask, &act->mask, sizeof(act->mask));
		}
		if (old)
			*old = prev;
		return 0;
	}
	if (!act)
		return raw_syscall(SYS_rt_sigaction, a[0], NULL, old, 8, 0, 0);
	k = *act;
	k.mask &= ~SIGBIT(SIGSYS);
	return raw_syscall(SYS_rt_sigaction, a[0], &k, old, 8, 0, 0);
}

static void forward(int sig, siginfo_t *si, void *ctx)
{
	struct sigaction *p = &prev_sigsys;

	if (p->sa_flags & SA_SIGINFO) {
		if (p->sa_sigaction) {
			p->sa_sigaction(sig, si, ctx);
			return;
		}
	} else if (p->sa_handler == SIG_IGN) {
		return;
	} else if (p->sa_handler != SIG_DFL) {
		p->sa_handler(sig);
		return;
	}
	/*
	 * The default action (a seccomp trap with no handler): die of it, as
	 * the program would without libmmn. Straight to the kernel: libc's
	 * sigaction keeps SIGSYS handlers aside while dispatch is on.
	 */
	{
		struct k_sigaction dfl = { .handler = NULL };	/* SIG_DFL */

		raw_syscall(SYS_rt_sigaction, SIGSYS, &dfl, NULL, 8, 0, 0);
	}
	raw_syscall(SYS_tgkill, raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0),
		    raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0), SIGSYS, 0, 0, 0);
}

static void handler(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	int saved_errno = errno;
	long a[6], nr, ret;

	if (si->si_code == SI_QUEUE && si->si_value.sival_ptr == &arm_cookie &&
	    si->si_pid == raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0)) {
		if (!armed)
			vm_sud_arm_thread();
		__atomic_add_fetch(&arm_acks, 1, __ATOMIC_RELEASE);
		raw_syscall(SYS_futex, &arm_acks, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
		errno = saved_errno;
		return;
	}
	if (si->si_code != SYS_USER_DISPATCH) {
		forward(sig, si, ctx);
		errno = saved_errno;
		return;
	}
	__atomic_add_fetch(&nr_traps, 1, __ATOMIC_RELAXED);
	nr = si->si_syscall;
	regs_args(uc, a);
	switch (nr) {
	case SYS_rt_sigreturn:
		regs_reissue(uc, nr, false);
		errno = saved_errno;
		return;
	case SYS_rt_sigprocmask:
		ret = emulate_sigprocmask(uc, a);
		break;
	case SYS_rt_sigaction:
		ret = emulate_sigaction(a);
		break;
	case SYS_vfork:
		ret = raw_syscall(SYS_fork, 0, 0, 0, 0, 0, 0);
		if (ret == 0)
			atfork_child();
		break;
	case SYS_clone3:
		ret = -ENOSYS;
		break;
	case SYS_clone:
		if ((a[0] & CLONE_VM) || a[1]) {
			if (a[1]) {
				/*
				 * The child returns on its own stack: first to the
				 * arming stub, then where the parent goes.
				 */
				a[1] -= 16;
				((greg_t *)a[1])[1] = uc->uc_mcontext.gregs[REG_RIP];
				((greg_t *)a[1])[0] = (greg_t)mmn_vm_sud_child_arm;
				regs_set_arg(uc, 1, a[1]);
			}
			regs_reissue(uc, nr, true);
			errno = saved_errno;
			return;
		}
		ret = raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (ret == 0)
			atfork_child();
		break;
	case SYS_fork:
		ret = raw_syscall(nr, 0, 0, 0, 0, 0, 0);
		if (ret == 0)
			atfork_child();
		break;
	default:
		if (!vm_mapping_syscall(nr, a, &ret))
			ret = raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		break;
	}
	regs_set_ret(uc, ret);
	errno = saved_errno;
}

struct text_find {
	const char *path;	/* of the mapping holding @addr, once found */
	unsigned long addr, start, end;
	char buf[PATH_MAX];	/* Spack pads install prefixes to hundreds of bytes */
};

static int text_find_cb(const struct vm_map *m, void *arg)
{
	struct text_find *f = arg;

	if (m->start <= f->addr && f->addr < m->end && m->perms[2] == 'x') {
		size_t n = strlen(m->path);

		if (n >= sizeof(f->buf))
			return -ENAMETOOLONG;
		memcpy(f->buf, m->path, n + 1);
		f->path = f->buf;
		f->start = m->start;
		f->end = m->end;
	}
	return 0;
}

/* Widen [start, end) to every executable mapping of the same file. */
static int text_hull_cb(const struct vm_map *m, void *arg)
{
	struct text_find *f = arg;

	if (m->perms[2] == 'x' && f->path && f->path[0] == '/' && strcmp(m->path, f->path) == 0) {
		f->start = m->start < f->start ? m->start : f->start;
		f->end = m->end > f->end ? m->end : f->end;
	}
	return 0;
}

/* Ask every other thread that exists now to arm itself; wait a bounded time. */
static void arm_other_threads(void)
{
	long pid = raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
	long self = raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
	union {
		struct dirent64 d;
		char b[2048];
	} buf;
	unsigned int sent = 0;
	long fd, n;

	fd = raw_syscall(SYS_open, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0,
			 0, 0);
	if (fd < 0)
		return;
	while ((n = raw_syscall(SYS_getdents64, fd, buf.b, sizeof(buf.b), 0, 0, 0)) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf.b + off);
			long tid = strtol(d->d_name, NULL, 10);

			off += d->d_reclen;
			if (tid <= 0 || tid == self)
				continue;
			siginfo_t si;

			memset(&si, 0, sizeof(si));
			si.si_signo = SIGSYS;
			si.si_code = SI_QUEUE;
			si.si_pid = (pid_t)pid;
			si.si_uid = (uid_t)raw_syscall(SYS_getuid, 0, 0, 0, 0, 0, 0);
			si.si_value.sival_ptr = (void *)&arm_cookie;
			if (raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, SIGSYS, &si, 0, 0) == 0)
				sent++;
		}
	}
	raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
	/* Bounded: a thread that blocks SIGSYS arms when it unblocks, or never. */
	for (int i = 0; i < 20; i++) {
		unsigned int acks = __atomic_load_n(&arm_acks, __ATOMIC_ACQUIRE);
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if (acks >= sent)
			break;
		raw_syscall(SYS_futex, &arm_acks, FUTEX_WAIT_PRIVATE, acks, &ts, 0, 0);
	}
}

/* ---- new threads arm themselves (pthread_create detoured) ------------- */

struct thread_start {
	void *(*fn)(void *);
	void *arg;
	unsigned int busy;	/* atomic; pool slots only */
};

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static create_fn *glibc_pthread_create;

/*
 * Start records come from a small pool, not malloc: a new thread's first
 * free() would create a malloc arena for it (mmap, munmap, mprotect), a side
 * effect the program would not have without libmmn. Only when more than
 * START_SLOTS creations are in flight at once is one allocated.
 */
#define START_SLOTS 64
static struct thread_start start_pool[START_SLOTS];

static struct thread_start *start_get(void)
{
	for (int i = 0; i < START_SLOTS; i++) {
		unsigned int idle = 0;

		if (__atomic_compare_exchange_n(&start_pool[i].busy, &idle, 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return &start_pool[i];
	}
	return malloc(sizeof(struct thread_start));
}

static void start_put(struct thread_start *s)
{
	if (s >= start_pool && s < start_pool + START_SLOTS)
		__atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
	else
		free(s);
}

static void *thread_begin(void *p)
{
	struct thread_start s = *(struct thread_start *)p;

	start_put(p);
	vm_sud_arm_thread();
	return s.fn(s.arg);
}

static int hook_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			       void *arg)
{
	struct thread_start *s;
	int err;

	if (!__atomic_load_n(&allow_len, __ATOMIC_ACQUIRE))
		return glibc_pthread_create(t, attr, fn, arg);
	s = start_get();
	if (!s)
		return EAGAIN;
	s->fn = fn;
	s->arg = arg;
	err = glibc_pthread_create(t, attr, thread_begin, s);
	if (err)
		start_put(s);
	return err;
}

static int install_thread_hook(void)
{
	/* glibc 2.34-2.41 x86-64: push %r15; push %r14; push %r13 */
	static const unsigned char prologue[] = { 0x41, 0x57, 0x41, 0x56, 0x41, 0x55 };
	void *target = vm_libc_symbol("pthread_create");
	void *original = NULL;
	int err;

	if (!target)
		return -ENOENT;
	err = vm_patch_detour(target, (vm_hook_fn *)hook_pthread_create, prologue,
			      sizeof(prologue), &original);
	if (!err)
		memcpy(&glibc_pthread_create, &original, sizeof(glibc_pthread_create));
	return err;
}

/* ---- SIGSYS stays deliverable: the mask and sigaction entries --------- */

/*
 * A system call that traps while SIGSYS is blocked kills the process (the
 * kernel forces the signal: blocked means the default action). Threads that
 * block every signal are common, and so are handlers whose sa_mask is full;
 * so while dispatch is on, libc's mask functions leave SIGSYS out of what
 * they block, and sigaction leaves it out of sa_mask. A program's own SIGSYS
 * handler is kept aside and called for every SIGSYS that is not a dispatch
 * trap (seccomp's SECCOMP_RET_TRAP, kill, sigqueue).
 */

static void *libc_restorer;	/* glibc's __restore_rt, read back from the kernel */

static bool dispatch_on(void)
{
	return __atomic_load_n(&allow_len, __ATOMIC_ACQUIRE) != 0;
}

/* glibc never lets a program block its two internal signals (SIGCANCEL, SIGSETXID). */
static long set_mask(int how, const sigset_t *set, sigset_t *old)
{
	uint64_t m;

	if (!set)
		return raw_syscall(SYS_rt_sigprocmask, how, NULL, old, 8, 0, 0);
	memcpy(&m, set, sizeof(m));
	if (how == SIG_BLOCK || how == SIG_SETMASK) {
		m &= ~(SIGBIT(32) | SIGBIT(33));
		if (dispatch_on())
			m &= ~SIGBIT(SIGSYS);
	}
	return raw_syscall(SYS_rt_sigprocmask, how, &m, old, 8, 0, 0);
}

static int hook_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return (int)-set_mask(how, set, old);
}

static int hook_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return (int)raw_result(set_mask(how, set, old));
}

static int hook_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct k_sigaction k, ko;
	long ret;

	if (sig <= 0 || sig >= 65 || sig == 32 || sig == 33) {
		errno = EINVAL;
		return -1;
	}
	if (sig == SIGSYS && dispatch_on()) {
		/* The program's SIGSYS handler: kept aside, ours stays installed. */
		struct sigaction prev = prev_sigsys;

		if (act) {
			prev_sigsys = *act;
			sigdelset(&prev_sigsys.sa_mask, SIGSYS);
		}
		if (old)
			*old = prev;
		return 0;
	}
	if (act) {
		memset(&k, 0, sizeof(k));
		/* sa_handler and sa_sigaction share their storage. */
		memcpy(&k.handler, &act->sa_sigaction, sizeof(k.handler));
		k.flags = (unsigned long)act->sa_flags | SA_RESTORER;
		k.restorer = libc_restorer;
		memcpy(&k.mask, &act->sa_mask, sizeof(k.mask));
		if (dispatch_on())
			k.mask &= ~SIGBIT(SIGSYS);
	}
	ret = raw_syscall(SYS_rt_sigaction, sig, act ? &k : NULL, old ? &ko : NULL, 8, 0, 0);
	if (ret == 0 && old) {
		memset(old, 0, sizeof(*old));
		memcpy(&old->sa_sigaction, &ko.handler, sizeof(ko.handler));
		old->sa_flags = (int)ko.flags;
		memcpy(&old->sa_restorer, &ko.restorer, sizeof(ko.restorer));
		memcpy(&old->sa_mask, &ko.mask, sizeof(ko.mask));
	}
	return (int)raw_result(ret);
}

/* Patch one libc function; returns 0 or -errno. */
static int patch(const char *name, vm_hook_fn *hook)
{
	void *target = vm_libc_symbol(name);

	return target ? vm_patch_entry(target, hook) : -ENOENT;
}

static int install_signal_hooks(void)
{
	struct k_sigaction k;
	int err;

	if (raw_syscall(SYS_rt_sigaction, SIGSYS, NULL, &k, 8, 0, 0) || !(k.flags & SA_RESTORER))
		return -ENOEXEC;
	libc_restorer = k.restorer;
	err = patch("pthread_sigmask", (vm_hook_fn *)hook_pthread_sigmask);
	if (!err)
		err = patch("sigprocmask", (vm_hook_fn *)hook_sigprocmask);
	if (!err)
		err = patch("sigaction", (vm_hook_fn *)hook_sigaction);
	return err;
}

int vm_sud_start(void)
{
	const char *env = getenv("MMN_RAW");
	struct text_find f = { 0 };
	struct sigaction sa, old;
	void *probe = vm_libc_symbol("syscall");
	void *gadget;

	if (env && strcmp(env, "0") == 0)
		return sud_error = -ECANCELED;
#if defined(__SANITIZE_THREAD__)
	/*
	 * ThreadSanitizer wraps signal handlers and delivers signals later, at
	 * its own safe points, and its runtime makes system calls of its own
	 * with signals blocked: a dispatch trap cannot be answered in place.
	 */
	return sud_error = -EOPNOTSUPP;
#endif
	if (sigaction(SIGSYS, NULL, &old))
		return sud_error = -errno;
	if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) {
		/*
		 * Someone handles SIGSYS already: a seccomp user (chained: forward())
		 * or another dispatch user, whose per-thread range we would replace
		 * without a way to read it back. Stay off and say so.
		 */
		return sud_error = -EBUSY;
	}
	if (probe) {
		f.addr = (unsigned long)probe;
		vm_maps_foreach(text_find_cb, &f);
		if (!f.path)
			return sud_error = -ENOENT;
		vm_maps_foreach(text_hull_cb, &f);
		gadget = find_syscall_ret(f.start, f.end);
		if (!gadget)
			return sud_error = -ENOEXEC;
		thread_hook_error = install_thread_hook();
		if (thread_hook_error)
			return sud_error = thread_hook_error;
	} else {
		/* A static program: only libmmn's stub runs system calls untrapped. */
		sud_static = true;
		f.start = (unsigned long)mmn_vm_sud_stub;
		/* The kernel compares the address *after* the syscall instruction. */
		f.end = f.start + STUB_LEN + 1;
		gadget = (void *)mmn_vm_sud_stub;
	}
	prev_sigsys = old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	/* NODEFER: a raw call inside the handler (a callback's) traps again. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sud_static) {
		struct k_sigaction k = {
			.flags = SA_SIGINFO | SA_NODEFER | SA_RESTART | SA_RESTORER,
			.restorer = (void *)(mmn_vm_sud_stub + STUB_RESTORER),
		};
		long err;

		memcpy(&k.handler, &sa.sa_sigaction, sizeof(k.handler));
		err = raw_syscall(SYS_rt_sigaction, SIGSYS, &k, NULL, 8, 0, 0);
		if (err)
			return sud_error = (int)err;
	} else if (sigaction(SIGSYS, &sa, NULL)) {
		return sud_error = -errno;
	}
	if (!sud_static) {
		int err = install_signal_hooks();

		if (err) {
			sigaction(SIGSYS, &old, NULL);
			return sud_error = err;
		}
	}
	__atomic_store_n(&vm_syscall_insn, gadget, __ATOMIC_RELEASE);
	allow_start = f.start;
	__atomic_store_n(&allow_len, f.end - f.start, __ATOMIC_RELEASE);
	{
		long err = sud_on();

		if (err) {
			__atomic_store_n(&allow_len, 0, __ATOMIC_RELEASE);
			sigaction(SIGSYS, &old, NULL);
			return sud_error = (int)err;
		}
	}
	armed = true;
	__atomic_add_fetch(&nr_threads_armed, 1, __ATOMIC_RELAXED);
	pthread_atfork(NULL, NULL, atfork_child);
	arm_other_threads();
	return sud_error = 0;
}

#else

/* Not implemented here (register access, stubs): coverage says -EOPNOTSUPP. */
int vm_sud_start(void)
{
	(void)atfork_child;
	(void)prev_sigsys;
	(void)arm_cookie;
	(void)arm_acks;
	return sud_error = -EOPNOTSUPP;
}

#endif

void vm_sud_counts(struct vm_sud_state *st)
{
	st->error = sud_error;
	st->is_static = sud_static;
	st->traps = __atomic_load_n(&nr_traps, __ATOMIC_RELAXED);
	st->threads_armed = __atomic_load_n(&nr_threads_armed, __ATOMIC_RELAXED);
	st->arm_failed = __atomic_load_n(&nr_arm_failed, __ATOMIC_RELAXED);
	st->this_thread_armed = armed;
	st->thread_hook_error = thread_hook_error;
}
