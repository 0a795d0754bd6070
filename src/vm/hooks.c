// SPDX-License-Identifier: MIT
/*
 * The hooks: libmmn's versions of libc's mapping functions.
 *
 * libc's entry jumps here (patch.c). Each hook works out which range the call
 * will change, opens an invalidation of it (vm_call_begin), makes the system
 * call itself -- or, where another library had patched the entry, calls that
 * library's hook (chaining, below) -- closes the invalidation whatever the
 * call returned (vm_call_end), and returns exactly what libc's function would
 * have, errno included. The raw path (sud.c) runs the same bodies, sys_X(),
 * with no chain: the trapped system call is the change itself. A call the kernel will refuse before touching anything (an
 * unaligned address, a zero length) opens no invalidation.
 *
 * Which range each call changes (the kernel's view):
 *   munmap(a, n)                 [a, a+n) UNMAP
 *   mremap(a, n, m, f, b)        shrink: [a+m, a+n); may move: [a, a+n);
 *                                MREMAP_FIXED also unmaps [b, b+m) first
 *   madvise(a, n, advice)        DONTNEED, DONTNEED_LOCKED, FREE, REMOVE,
 *                                PAGEOUT, GUARD_INSTALL: CLEAR; COLLAPSE, SOFT_OFFLINE:
 *                                MIGRATE; HWPOISON: UNMAP; others: none
 *   brk(b) below the break       [b, break) UNMAP (sbrk calls brk)
 *   shmdt(a)                     the attachment's pages UNMAP
 *   shmat(id, a, SHM_REMAP)      [a, a + segment size) UNMAP
 *   mmap(a, n, .., MAP_FIXED)    [a, a+n) UNMAP (what was there goes away)
 *   remap_file_pages(a, n, ..)   [a, a+n) UNMAP (the kernel remaps the range)
 *   mprotect(a, n, p)            [a, a+n) PROTECTION_VMA; with PROT_GROWSDOWN
 *   pkey_mprotect(a, n, p, k)    from the start of the mapping (the kernel
 *                                extends the change down to it)
 *   process_madvise(fd, iov, ..) as madvise, over the hull of the vectors (the
 *                                target may be another process: then the
 *                                invalidation is spurious, never missed)
 *
 * Nothing here allocates: these run inside malloc and free.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/uio.h>

#include "raw.h"
#include "vm.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
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
#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static unsigned long *curbrk;	/* glibc's __curbrk, which brk() maintains */

/*
 * Chaining (docs/process-events.md, "Other libraries that patch libc"). When
 * another library had patched a function's entry, entry_next[] is where its
 * jump went: libmmn's hook opens the invalidation, then calls that foreign
 * hook instead of making the system call itself, so the other library's
 * handlers run too, after libmmn's first pass and before the change.
 *
 * A foreign hook that calls "the original" by running a copy of the entry
 * it displaced would, once libmmn's jump is that entry, come straight back
 * here with the same arguments: chain_arg[] catches that (this thread, this
 * call, the same first argument) and then the hook makes the system call.
 */
static void *entry_next[VM_NCALLS] MMN_HOT_DATA;	/* atomic */
/*
 * Per thread and call: the next hop being called (which slot: libc's entry
 * chain, or an interposer's GOT wrapper) and with which first argument. The
 * two chains may nest (a GOT wrapper calls tcmalloc or a sanitizer's munmap,
 * which calls libc's patched entry): only the same slot coming back with the
 * same argument is a cycle.
 */
static __thread unsigned long chain_arg[VM_NCALLS] __attribute__((tls_model("initial-exec")));
static __thread void *const *chain_slot[VM_NCALLS] __attribute__((tls_model("initial-exec")));

/* The next hop to call for @call, or NULL to make the system call. */
MMN_HOT
static void *chain_next(void *const *next, int call, unsigned long arg0)
{
	void *fn = next ? __atomic_load_n(next, __ATOMIC_ACQUIRE) : NULL;

	if (fn && chain_slot[call] == next && chain_arg[call] == arg0)
		return NULL;	/* the foreign hook came back through our entry */
	return fn;
}

struct chain_save {
	unsigned long arg;
	void *const *slot;
};

MMN_HOT
static void chain_enter_slot(struct chain_save *save, void *const *next, int call,
			     unsigned long arg0, struct vm_call *c1, struct vm_call *c2)
{
	vm_call_chain_enter(c1);
	if (c2)
		vm_call_chain_enter(c2);
	save->arg = chain_arg[call];
	save->slot = chain_slot[call];
	chain_arg[call] = arg0;
	chain_slot[call] = next;
}

MMN_HOT
static void chain_leave(const struct chain_save *save, int call, struct vm_call *c1,
			struct vm_call *c2)
{
	if (c2)
		vm_call_chain_leave(c2);
	vm_call_chain_leave(c1);
	chain_arg[call] = save->arg;
	chain_slot[call] = save->slot;
}

/* Each hook names its chain slot @next. */
#define chain_enter(save, call, arg0, c1, c2) \
	chain_enter_slot(save, next, call, arg0, c1, c2)

MMN_HOT
static unsigned long page_up(unsigned long x)
{
	return (x + vm_page_size - 1) & ~(vm_page_size - 1);
}

/*
 * The page range [a, a+n) as the kernel rounds it, or an empty range (no
 * invalidation) for a call the kernel refuses without changing anything.
 */
MMN_HOT
static void page_range(unsigned long a, unsigned long n, unsigned long *start,
		       unsigned long *end)
{
	*start = *end = 0;
	if (!n || (a & (vm_page_size - 1)) || a + n < a || page_up(a + n) < a)
		return;
	*start = a;
	*end = page_up(a + n);
}

/*
 * Each sys_X() below brackets one call and returns the kernel's value (the
 * result or -errno): the raw path (sud.c) returns that to the trapped system
 * call, the vm_do_X()/hook_X() wrappers turn it into libc's -1 and errno.
 *
 * @next is the chain slot: entry_next[] for libc's entry, an interposer's
 * GOT slot for interpose.c. When it holds a foreign hook, that hook makes
 * the change (after libmmn's first pass) instead of the system call. The
 * raw path passes NULL: the trapped system call is the change itself, and
 * a foreign hook it were chained to would make a second one.
 */

/* A foreign hook's libc-style result as the kernel's (-errno on failure). */
MMN_HOT
static long kernel_value(long r)
{
	return r == -1 ? -(long)(errno ? errno : EIO) : r;
}

/* Is @ret (the kernel's value) a failure? */
static bool kernel_failed(long ret)
{
	return ret < 0 && ret > -4096;
}

typedef int munmap_fn(void *, size_t);

MMN_HOT
static long sys_munmap(void *const *next, void *addr, size_t len)
{
	munmap_fn *fn = VM_FN(munmap_fn, chain_next(next, MMN_CALL_MUNMAP, (unsigned long)addr));
	struct chain_save save;
	struct vm_call c;
	unsigned long s, e;
	long ret;

	page_range((unsigned long)addr, len, &s, &e);
	vm_call_begin(&c, MMN_CALL_MUNMAP, MMN_EVENT_UNMAP, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_MUNMAP, (unsigned long)addr, &c, NULL);
		ret = kernel_value(fn(addr, len));
		chain_leave(&save, MMN_CALL_MUNMAP, &c, NULL);
	} else {
		ret = raw_syscall(SYS_munmap, addr, len, 0, 0, 0, 0);
	}
	vm_call_end(&c);
	return ret;
}

MMN_HOT
int vm_do_munmap(void *const *next, void *addr, size_t len)
{
	return (int)raw_result(sys_munmap(next, addr, len));
}

MMN_HOT
static int hook_munmap(void *addr, size_t len)
{
	return vm_do_munmap(&entry_next[MMN_CALL_MUNMAP], addr, len);
}

typedef void *mremap_fn(void *, size_t, size_t, int, ...);

/* Declared with five arguments: the fifth is read only when a flag says so. */
static long sys_mremap(void *const *next, void *old, size_t old_len, size_t new_len, int flags,
		       void *new_addr)
{
	mremap_fn *fn = VM_FN(mremap_fn, chain_next(next, MMN_CALL_MREMAP, (unsigned long)old));
	unsigned long a = (unsigned long)old, s, e, ns = 0, ne = 0;
	struct vm_call c_old, c_new;
	struct chain_save save;
	long ret;

	page_range(a, old_len, &s, &e);
	if (s < e && !(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) &&
	    page_up(new_len) <= e - s) {
		/* Shrinking never moves: only the tail goes. */
		s = a + page_up(new_len);
	} else if (s < e && !(flags & (MREMAP_MAYMOVE | MREMAP_FIXED))) {
		/* Growing in place or failing: nothing old changes. */
		s = e = 0;
	}
	if (flags & MREMAP_FIXED)
		page_range((unsigned long)new_addr, new_len, &ns, &ne);

	vm_call_begin(&c_old, MMN_CALL_MREMAP, MMN_EVENT_UNMAP, s, e);
	vm_call_begin(&c_new, MMN_CALL_MREMAP, MMN_EVENT_UNMAP, ns, ne);
	if (fn) {
		chain_enter(&save, MMN_CALL_MREMAP, a, &c_old, &c_new);
		ret = kernel_value((long)fn(old, old_len, new_len, flags, new_addr));
		chain_leave(&save, MMN_CALL_MREMAP, &c_old, &c_new);
	} else {
		ret = raw_syscall(SYS_mremap, old, old_len, new_len, flags, new_addr, 0);
	}
	vm_call_end(&c_new);
	vm_call_end(&c_old);
	if (!kernel_failed(ret))
		vm_backstop_moved(a, a + old_len, (unsigned long)ret, (unsigned long)ret + new_len);
	if (!kernel_failed(ret) && __atomic_load_n(&vm_backstop_all_anon, __ATOMIC_RELAXED))
		vm_backstop_register((unsigned long)ret, (unsigned long)ret + new_len);
	return ret;
}

void *vm_do_mremap(void *const *next, void *old, size_t old_len, size_t new_len, int flags,
		   void *new_addr)
{
	return (void *)raw_result(sys_mremap(next, old, old_len, new_len, flags, new_addr));
}

static void *hook_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
	return vm_do_mremap(&entry_next[MMN_CALL_MREMAP], old, old_len, new_len, flags, new_addr);
}

/* The event an advice causes, or -1 if it leaves the mapping alone. */
MMN_WARM
static int madvise_event(int advice)
{
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
	case MADV_FREE:
	case MADV_REMOVE:
	case MADV_PAGEOUT:
	case MADV_GUARD_INSTALL:
		return MMN_EVENT_CLEAR;
	case MADV_COLLAPSE:
	case MADV_SOFT_OFFLINE:
		return MMN_EVENT_MIGRATE;
	case MADV_HWPOISON:
		return MMN_EVENT_UNMAP;
	default:
		return -1;
	}
}

struct guard_find {
	unsigned long addr;
	bool guard;
};

static int guard_find_cb(const struct vm_map *m, void *arg)
{
	struct guard_find *f = arg;

	if (m->start <= f->addr && f->addr < m->end) {
		f->guard = m->start == f->addr && strcmp(m->perms, "---p") == 0;
		return 1;
	}
	return 0;
}

/*
 * Is [s, e) what glibc discards when a thread exits: its stack block from the
 * guard page at the bottom up to a little below the stack pointer?
 */
static bool own_stack_below_sp(unsigned long s, unsigned long e)
{
	unsigned long sp = (unsigned long)__builtin_frame_address(0);
	struct guard_find f = { .addr = s };

	if (!(e <= sp && sp - e <= 64 * 1024))
		return false;
	vm_maps_foreach(guard_find_cb, &f);
	return f.guard;
}

typedef int madvise_fn(void *, size_t, int);

MMN_WARM
static long sys_madvise(void *const *next, void *addr, size_t len, int advice)
{
	madvise_fn *fn = VM_FN(madvise_fn, chain_next(next, MMN_CALL_MADVISE, (unsigned long)addr));
	int event = madvise_event(advice);
	unsigned long s = 0, e = 0;
	struct chain_save save;
	struct vm_call c;
	long ret;

	if (event >= 0)
		page_range((unsigned long)addr, len, &s, &e);
#if defined(__SANITIZE_THREAD__)
	/*
	 * An exiting thread's discard of its own stack runs after
	 * ThreadSanitizer has finished the thread, when taking a mutex crashes
	 * it; only under TSan is that discard left unreported.
	 */
	if (s < e && own_stack_below_sp(s, e)) {
		s = e = 0;
		fn = NULL;	/* a foreign hook would take a lock too */
	}
#else
	(void)own_stack_below_sp;
#endif
	vm_call_begin(&c, MMN_CALL_MADVISE, event >= 0 ? (enum mmn_event)event : MMN_EVENT_CLEAR,
		      s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_MADVISE, (unsigned long)addr, &c, NULL);
		ret = kernel_value(fn(addr, len, advice));
		chain_leave(&save, MMN_CALL_MADVISE, &c, NULL);
	} else {
		ret = raw_syscall(SYS_madvise, addr, len, advice, 0, 0, 0);
	}
	vm_call_end(&c);
	return ret;
}

MMN_WARM
int vm_do_madvise(void *const *next, void *addr, size_t len, int advice)
{
	return (int)raw_result(sys_madvise(next, addr, len, advice));
}

MMN_WARM
static int hook_madvise(void *addr, size_t len, int advice)
{
	return vm_do_madvise(&entry_next[MMN_CALL_MADVISE], addr, len, advice);
}

typedef int brk_fn(void *);
typedef void *sbrk_fn(intptr_t);

/* The kernel's current break (glibc's copy may be stale or unset). */
static unsigned long current_break(void)
{
	unsigned long cur = curbrk ? *curbrk : 0;

	return cur ? cur : (unsigned long)raw_syscall(SYS_brk, 0, 0, 0, 0, 0, 0);
}

/* glibc's brk: sets __curbrk to what the kernel returns; ENOMEM if below @addr. */
int vm_do_brk(void *const *next, void *addr)
{
	brk_fn *fn = VM_FN(brk_fn, chain_next(next, MMN_CALL_BRK, (unsigned long)addr));
	unsigned long want = (unsigned long)addr, cur = current_break(), s = 0, e = 0;
	struct chain_save save;
	struct vm_call c;
	long ret;

	if (want && want < cur) {
		s = page_up(want);
		e = page_up(cur);
	}
	vm_call_begin(&c, MMN_CALL_BRK, MMN_EVENT_UNMAP, s, e);
	if (fn) {
		/* The other library's brk keeps glibc's __curbrk itself. */
		chain_enter(&save, MMN_CALL_BRK, want, &c, NULL);
		ret = fn(addr);
		chain_leave(&save, MMN_CALL_BRK, &c, NULL);
		vm_call_end(&c);
		return (int)ret;
	}
	ret = raw_syscall(SYS_brk, addr, 0, 0, 0, 0, 0);
	vm_call_end(&c);
	if (want > cur && (unsigned long)ret >= want &&
	    __atomic_load_n(&vm_backstop_all_anon, __ATOMIC_RELAXED))
		vm_backstop_register(page_up(cur), page_up(want));
	if (curbrk)
		*curbrk = (unsigned long)ret;
	if ((unsigned long)ret < want) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static int hook_brk(void *addr)
{
	return vm_do_brk(&entry_next[MMN_CALL_BRK], addr);
}

/*
 * sbrk is hooked only where another library patched it (UCX does, and its
 * sbrk moves the break with its own system call, never through brk): then
 * a negative increment is a heap shrink libmmn must see before it happens.
 * Counted with brk. Otherwise glibc's sbrk calls brk, which is hooked.
 */
void *vm_do_sbrk(void *const *next, intptr_t inc)
{
	sbrk_fn *fn = VM_FN(sbrk_fn, chain_next(next, VM_CALL_SBRK, (unsigned long)inc));
	unsigned long cur = inc < 0 ? current_break() : 0, s = 0, e = 0;
	struct chain_save save;
	struct vm_call c;
	void *ret;

	if (inc < 0 && (unsigned long)-inc <= cur) {
		s = page_up(cur + (unsigned long)inc);
		e = page_up(cur);
	}
	vm_call_begin(&c, MMN_CALL_BRK, MMN_EVENT_UNMAP, s, e);
	if (fn) {
		chain_enter(&save, VM_CALL_SBRK, (unsigned long)inc, &c, NULL);
		ret = fn(inc);
		chain_leave(&save, VM_CALL_SBRK, &c, NULL);
	} else {
		/* glibc's sbrk, with the system call made here. */
		unsigned long old = current_break(), got;

		got = (unsigned long)raw_syscall(SYS_brk, old + (unsigned long)inc, 0, 0, 0, 0, 0);
		if (curbrk)
			*curbrk = got;
		if (got != old + (unsigned long)inc) {
			errno = ENOMEM;
			ret = (void *)-1;
		} else {
			ret = (void *)old;
		}
	}
	vm_call_end(&c);
	return ret;
}

static void *hook_sbrk(intptr_t inc)
{
	return vm_do_sbrk(&entry_next[VM_CALL_SBRK], inc);
}
/*
 * The raw brk system call: returns the new break; glibc's __curbrk is not
 * its business. Never chained: a foreign brk is libc's function, not this.
 */
static long sys_brk(unsigned long want)
{
	unsigned long cur = (unsigned long)raw_syscall(SYS_brk, 0, 0, 0, 0, 0, 0), s = 0, e = 0;
	struct vm_call c;
	long ret;

	if (want && want < cur) {
		s = page_up(want);
		e = page_up(cur);
	}
	vm_call_begin(&c, MMN_CALL_BRK, MMN_EVENT_UNMAP, s, e);
	ret = raw_syscall(SYS_brk, want, 0, 0, 0, 0, 0);
	vm_call_end(&c);
	if (want > cur && (unsigned long)ret >= want &&
	    __atomic_load_n(&vm_backstop_all_anon, __ATOMIC_RELAXED))
		vm_backstop_register(page_up(cur), page_up(want));
	return ret;
}

struct shm_find {
	unsigned long addr, end, inode, offset;
};

/*
 * The attachment at addr: its first mapping, and the mappings that continue
 * it (split by mprotect), which follow on with the same segment at the next
 * offset -- not a second attachment of the same segment placed right after.
 */
static int shm_find_cb(const struct vm_map *m, void *arg)
{
	struct shm_find *f = arg;

	if (!f->end) {
		if (m->start == f->addr && strstr(m->path, "SYSV")) {
			f->end = m->end;
			f->inode = m->inode;
			f->offset = m->offset;
		}
		return 0;
	}
	if (m->start == f->end && m->inode == f->inode &&
	    m->offset == f->offset + (m->start - f->addr)) {
		f->end = m->end;
		return 0;
	}
	return 1;
}
typedef int shmdt_fn(const void *);

static long sys_shmdt(void *const *next, const void *addr)
{
	shmdt_fn *fn = VM_FN(shmdt_fn, chain_next(next, MMN_CALL_SHMDT, (unsigned long)addr));
	struct shm_find f = { .addr = (unsigned long)addr };
	struct chain_save save;
	struct vm_call c;
	long ret;

	if (!(f.addr & (vm_page_size - 1)))
		vm_maps_foreach(shm_find_cb, &f);
	vm_call_begin(&c, MMN_CALL_SHMDT, MMN_EVENT_UNMAP, f.end ? f.addr : 0, f.end);
	if (fn) {
		chain_enter(&save, MMN_CALL_SHMDT, (unsigned long)addr, &c, NULL);
		ret = kernel_value(fn(addr));
		chain_leave(&save, MMN_CALL_SHMDT, &c, NULL);
	} else {
		ret = raw_syscall(SYS_shmdt, addr, 0, 0, 0, 0, 0);
	}
	vm_call_end(&c);
	return ret;
}

static int hook_shmdt(const void *addr)
{
	return (int)raw_result(sys_shmdt(&entry_next[MMN_CALL_SHMDT], addr));
}

typedef void *shmat_fn(int, const void *, int);

static long sys_shmat(void *const *next, int shmid, const void *addr, int flags)
{
	shmat_fn *fn = VM_FN(shmat_fn, chain_next(next, MMN_CALL_SHMAT, (unsigned long)shmid));
	unsigned long a = (unsigned long)addr, s = 0, e = 0;
	struct chain_save save;
	struct shmid_ds ds;
	struct vm_call c;
	long ret;

	if ((flags & SHM_REMAP) && a) {
		if (flags & SHM_RND)
			a &= ~(SHMLBA - 1UL);
		if (raw_syscall(SYS_shmctl, shmid, IPC_STAT, &ds, 0, 0, 0) == 0)
			page_range(a, ds.shm_segsz, &s, &e);
	}
	vm_call_begin(&c, MMN_CALL_SHMAT, MMN_EVENT_UNMAP, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_SHMAT, (unsigned long)shmid, &c, NULL);
		ret = kernel_value((long)fn(shmid, addr, flags));
		chain_leave(&save, MMN_CALL_SHMAT, &c, NULL);
	} else {
		ret = raw_syscall(SYS_shmat, shmid, addr, flags, 0, 0, 0);
	}
	vm_call_end(&c);
	return ret;
}

static void *hook_shmat(int shmid, const void *addr, int flags)
{
	return (void *)raw_result(sys_shmat(&entry_next[MMN_CALL_SHMAT], shmid, addr, flags));
}

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);

MMN_WARM
static long sys_mmap(void *const *next, void *addr, size_t len, int prot, int flags, int fd,
		     off_t off)
{
	mmap_fn *fn = VM_FN(mmap_fn, chain_next(next, MMN_CALL_MMAP, (unsigned long)addr));
	unsigned long s = 0, e = 0;
	struct chain_save save;
	struct vm_call c;
	long ret;

	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE))
		page_range((unsigned long)addr, len, &s, &e);
	vm_call_begin(&c, MMN_CALL_MMAP, MMN_EVENT_UNMAP, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_MMAP, (unsigned long)addr, &c, NULL);
		ret = kernel_value((long)fn(addr, len, prot, flags, fd, off));
		chain_leave(&save, MMN_CALL_MMAP, &c, NULL);
	} else {
		ret = raw_syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	}
	vm_call_end(&c);
	if (!kernel_failed(ret) && (flags & MAP_ANONYMOUS) &&
	    __atomic_load_n(&vm_backstop_all_anon, __ATOMIC_RELAXED))
		vm_backstop_register((unsigned long)ret, (unsigned long)ret + len);
	return ret;
}

MMN_WARM
void *vm_do_mmap(void *const *next, void *addr, size_t len, int prot, int flags, int fd,
		 off_t off)
{
	return (void *)raw_result(sys_mmap(next, addr, len, prot, flags, fd, off));
}

MMN_WARM
static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return vm_do_mmap(&entry_next[MMN_CALL_MMAP], addr, len, prot, flags, fd, off);
}

struct vma_find {
	unsigned long addr, start, end;
};

static int vma_find_cb(const struct vm_map *m, void *arg)
{
	struct vma_find *f = arg;

	if (m->start <= f->addr && f->addr < m->end) {
		f->start = m->start;
		f->end = m->end;
		return 1;
	}
	return 0;
}

/*
 * The range a protection change affects: PROT_GROWSDOWN extends it down to
 * the start of the mapping, PROT_GROWSUP up to its end.
 */
static void protection_range(unsigned long a, unsigned long n, int prot, unsigned long *s,
			     unsigned long *e)
{
	struct vma_find f = { .addr = a };

	page_range(a, n, s, e);
	if (*s >= *e || !(prot & (PROT_GROWSDOWN | PROT_GROWSUP)))
		return;
	if (vm_maps_foreach(vma_find_cb, &f) == 1) {
		if (prot & PROT_GROWSDOWN)
			*s = f.start;
		if ((prot & PROT_GROWSUP) && f.end > *e)
			*e = f.end;
	}
}

typedef int mprotect_fn(void *, size_t, int);

static long sys_mprotect(void *const *next, void *addr, size_t len, int prot)
{
	mprotect_fn *fn = VM_FN(mprotect_fn, chain_next(next, MMN_CALL_MPROTECT,
						    (unsigned long)addr));
	struct chain_save save;
	unsigned long s, e;
	struct vm_call c;
	long ret;

	protection_range((unsigned long)addr, len, prot, &s, &e);
	vm_call_begin(&c, MMN_CALL_MPROTECT, MMN_EVENT_PROTECTION_VMA, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_MPROTECT, (unsigned long)addr, &c, NULL);
		ret = kernel_value(fn(addr, len, prot));
		chain_leave(&save, MMN_CALL_MPROTECT, &c, NULL);
	} else {
		ret = raw_syscall(SYS_mprotect, addr, len, prot, 0, 0, 0);
	}
	vm_call_end(&c);
	return ret;
}

static int hook_mprotect(void *addr, size_t len, int prot)
{
	long ret = sys_mprotect(&entry_next[MMN_CALL_MPROTECT], addr, len, prot);

	/*
	 * Patchers make a code page writable, write their jump and make it
	 * executable again with this call: check libmmn's entries now, on the
	 * patcher's thread, and chain through whatever was written over them.
	 * (Only here, not on the raw path: the recheck itself calls mprotect
	 * and dladdr, which a SIGSYS handler must not.)
	 */
	if (!(prot & PROT_WRITE) && (prot & PROT_EXEC))
		vm_hooks_recheck_range((unsigned long)addr, (unsigned long)addr + len);
	return (int)raw_result(ret);
}

typedef int pkey_mprotect_fn(void *, size_t, int, int);

/* @libc: glibc's meaning of pkey -1 (plain mprotect); the raw call passes it on. */
static long sys_pkey_mprotect(void *const *next, void *addr, size_t len, int prot, int pkey,
			      bool libc)
{
	pkey_mprotect_fn *fn = VM_FN(pkey_mprotect_fn, chain_next(next, MMN_CALL_PKEY_MPROTECT,
								  (unsigned long)addr));
	struct chain_save save;
	unsigned long s, e;
	struct vm_call c;
	long ret;

	protection_range((unsigned long)addr, len, prot, &s, &e);
	vm_call_begin(&c, MMN_CALL_PKEY_MPROTECT, MMN_EVENT_PROTECTION_VMA, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_PKEY_MPROTECT, (unsigned long)addr, &c, NULL);
		ret = kernel_value(fn(addr, len, prot, pkey));
		chain_leave(&save, MMN_CALL_PKEY_MPROTECT, &c, NULL);
	} else if (pkey == -1 && libc) {
		/* glibc: pkey -1 is plain mprotect (also where pkeys do not exist). */
		ret = raw_syscall(SYS_mprotect, addr, len, prot, 0, 0, 0);
	} else {
		ret = raw_syscall(SYS_pkey_mprotect, addr, len, prot, pkey, 0, 0);
	}
	vm_call_end(&c);
	return ret;
}

static int hook_pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
	return (int)raw_result(sys_pkey_mprotect(&entry_next[MMN_CALL_PKEY_MPROTECT], addr, len,
						 prot, pkey, true));
}

typedef int remap_file_pages_fn(void *, size_t, int, size_t, int);

static long sys_remap_file_pages(void *const *next, void *addr, size_t size, int prot,
				 size_t pgoff, int flags)
{
	remap_file_pages_fn *fn = VM_FN(remap_file_pages_fn,
					chain_next(next, MMN_CALL_REMAP_FILE_PAGES,
						   (unsigned long)addr));
	struct chain_save save;
	unsigned long s, e;
	struct vm_call c;
	long ret;

	page_range((unsigned long)addr, size, &s, &e);
	vm_call_begin(&c, MMN_CALL_REMAP_FILE_PAGES, MMN_EVENT_UNMAP, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_REMAP_FILE_PAGES, (unsigned long)addr, &c, NULL);
		ret = kernel_value(fn(addr, size, prot, pgoff, flags));
		chain_leave(&save, MMN_CALL_REMAP_FILE_PAGES, &c, NULL);
	} else {
		ret = raw_syscall(SYS_remap_file_pages, addr, size, prot, pgoff, flags, 0);
	}
	vm_call_end(&c);
	return ret;
}

static int hook_remap_file_pages(void *addr, size_t size, int prot, size_t pgoff, int flags)
{
	return (int)raw_result(sys_remap_file_pages(&entry_next[MMN_CALL_REMAP_FILE_PAGES], addr,
						    size, prot, pgoff, flags));
}

typedef ssize_t process_madvise_fn(int, const struct iovec *, size_t, int, unsigned int);

static long sys_process_madvise(void *const *next, int pidfd, const struct iovec *iov,
				size_t vlen, int advice, unsigned int flags)
{
	process_madvise_fn *fn = VM_FN(process_madvise_fn,
				       chain_next(next, MMN_CALL_PROCESS_MADVISE,
						  (unsigned long)iov));
	int event = madvise_event(advice);
	unsigned long s = ULONG_MAX, e = 0;
	struct chain_save save;
	struct vm_call c;
	long ret;

	/*
	 * One region over the hull of the vectors: the hook cannot allocate one
	 * per vector, and a wider invalidation is spurious, never missed. The
	 * kernel reads at most UIO_MAXIOV vectors.
	 */
	for (size_t i = 0; event >= 0 && iov && i < vlen && i < 1024; i++) {
		unsigned long vs, ve;

		page_range((unsigned long)iov[i].iov_base, iov[i].iov_len, &vs, &ve);
		if (vs < ve) {
			s = vs < s ? vs : s;
			e = ve > e ? ve : e;
		}
	}
	vm_call_begin(&c, MMN_CALL_PROCESS_MADVISE,
		      event >= 0 ? (enum mmn_event)event : MMN_EVENT_CLEAR, s, e);
	if (fn) {
		chain_enter(&save, MMN_CALL_PROCESS_MADVISE, (unsigned long)iov, &c, NULL);
		ret = kernel_value(fn(pidfd, iov, vlen, advice, flags));
		chain_leave(&save, MMN_CALL_PROCESS_MADVISE, &c, NULL);
	} else {
		ret = raw_syscall(SYS_process_madvise, pidfd, iov, vlen, advice, flags, 0);
	}
	vm_call_end(&c);
	return ret;
}

static ssize_t hook_process_madvise(int pidfd, const struct iovec *iov, size_t vlen,
				    int advice, unsigned int flags)
{
	return raw_result(sys_process_madvise(&entry_next[MMN_CALL_PROCESS_MADVISE], pidfd, iov,
					      vlen, advice, flags));
}

/* The raw path: the trapped system call itself, never a chained foreign hook. */
static bool mapping_syscall(long nr, const long a[6], long *ret)
{
	switch (nr) {
	case SYS_munmap:
		*ret = sys_munmap(NULL, (void *)a[0], (size_t)a[1]);
		return true;
	case SYS_mremap:
		*ret = sys_mremap(NULL, (void *)a[0], (size_t)a[1], (size_t)a[2], (int)a[3],
				  (void *)a[4]);
		return true;
	case SYS_madvise:
		*ret = sys_madvise(NULL, (void *)a[0], (size_t)a[1], (int)a[2]);
		return true;
	case SYS_brk:
		*ret = sys_brk((unsigned long)a[0]);
		return true;
	case SYS_shmdt:
		*ret = sys_shmdt(NULL, (const void *)a[0]);
		return true;
	case SYS_shmat:
		*ret = sys_shmat(NULL, (int)a[0], (const void *)a[1], (int)a[2]);
		return true;
	case SYS_mmap:
		*ret = sys_mmap(NULL, (void *)a[0], (size_t)a[1], (int)a[2], (int)a[3], (int)a[4],
				(off_t)a[5]);
		return true;
	case SYS_mprotect:
		*ret = sys_mprotect(NULL, (void *)a[0], (size_t)a[1], (int)a[2]);
		return true;
	case SYS_pkey_mprotect:
		*ret = sys_pkey_mprotect(NULL, (void *)a[0], (size_t)a[1], (int)a[2], (int)a[3],
					 false);
		return true;
	case SYS_remap_file_pages:
		*ret = sys_remap_file_pages(NULL, (void *)a[0], (size_t)a[1], (int)a[2],
					    (size_t)a[3], (int)a[4]);
		return true;
	case SYS_process_madvise:
		*ret = sys_process_madvise(NULL, (int)a[0], (const struct iovec *)a[1],
					   (size_t)a[2], (int)a[3], (unsigned int)a[4]);
		return true;
	default:
		return false;
	}
}

bool vm_mapping_syscall(long nr, const long a[6], long *ret)
{
	bool mapping;

	vm_call_set_raw(true);
	mapping = mapping_syscall(nr, a, ret);
	vm_call_set_raw(false);
	return mapping;
}

/*
 * libc's syscall(): its system call instruction lies inside libc, where
 * dispatch lets it through, so syscall(SYS_munmap, ...) is caught here.
 */
static long hook_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	const long a[6] = { a0, a1, a2, a3, a4, a5 };
	long ret;

	if (!vm_mapping_syscall(nr, a, &ret))
		ret = raw_syscall(nr, a0, a1, a2, a3, a4, a5);
	return raw_result(ret);
}

int vm_install_syscall_hook(void)
{
	void *target = vm_libc_symbol("syscall");

	return target ? vm_patch_entry(target, (vm_hook_fn *)hook_syscall) : -ENOENT;
}

static const struct hook_def {
	int call;		/* enum mmn_process_call, or VM_CALL_SBRK */
	const char *symbol;
	vm_hook_fn *hook;
} hook_defs[VM_NCALLS] = {
	{ MMN_CALL_MUNMAP, "munmap", (vm_hook_fn *)hook_munmap },
	{ MMN_CALL_MREMAP, "mremap", (vm_hook_fn *)hook_mremap },
	{ MMN_CALL_MADVISE, "madvise", (vm_hook_fn *)hook_madvise },
	{ MMN_CALL_BRK, "brk", (vm_hook_fn *)hook_brk },
	{ MMN_CALL_SHMDT, "shmdt", (vm_hook_fn *)hook_shmdt },
	{ MMN_CALL_SHMAT, "shmat", (vm_hook_fn *)hook_shmat },
	{ MMN_CALL_MMAP, "mmap", (vm_hook_fn *)hook_mmap },
	{ MMN_CALL_MPROTECT, "mprotect", (vm_hook_fn *)hook_mprotect },
	{ MMN_CALL_PKEY_MPROTECT, "pkey_mprotect", (vm_hook_fn *)hook_pkey_mprotect },
	{ MMN_CALL_REMAP_FILE_PAGES, "remap_file_pages", (vm_hook_fn *)hook_remap_file_pages },
	{ MMN_CALL_PROCESS_MADVISE, "process_madvise", (vm_hook_fn *)hook_process_madvise },
	{ VM_CALL_SBRK, "sbrk", (vm_hook_fn *)hook_sbrk },
};

/* Filled in by vm_install_hooks(), then kept up to date by the rechecks. */
static void *targets[VM_NCALLS];
static enum mmn_hook_method *methods;
static int *errors;
static bool installed;			/* atomic */
static unsigned int recheck_lock;	/* atomic: 0 free, 1 held */
static __thread bool rechecking __attribute__((tls_model("initial-exec")));
static uint64_t rechains;		/* atomic: foreign patches chained after install */

/* Foreign entry patches found, one per call (the latest). */
static struct vm_foreign foreign_entry[VM_NCALLS];

/*
 * An entry's first bytes as libmmn left them when it chained: its jump, then
 * the rest of the foreign patch. Other bytes behind libmmn's jump later mean
 * the foreign library wrote back what it had saved -- libfabric's memhooks
 * does when its last cache goes, and the library may be unloaded after --
 * so libmmn stops calling its hook.
 */
#define ENTRY_SNAP 16
static unsigned char entry_snap[VM_NCALLS][ENTRY_SNAP];

/* Under the recheck lock (or before install), as entry_snap[] is written. */
static bool foreign_withdrawn(int i)
{
	return __atomic_load_n(&entry_next[i], __ATOMIC_RELAXED) &&
	       memcmp(targets[i], entry_snap[i], ENTRY_SNAP) != 0;
}

static void note_foreign(int i, void *dest)
{
	struct vm_foreign *f = &foreign_entry[i];
	const char *name = "?";
	Dl_info info;

	if (dest && dladdr(dest, &info) && info.dli_fname) {
		const char *slash = strrchr(info.dli_fname, '/');

		name = slash ? slash + 1 : info.dli_fname;
	}
	f->call = hook_defs[i].call;
	f->present = dest != NULL;
	snprintf(f->object, sizeof(f->object), "%s", dest ? name : "");
}

/*
 * Patch, or chain through, entry @i. Only an sbrk somebody else patched is
 * taken over: glibc's own sbrk reaches the hooked brk.
 */
static int install_one(int i, bool *changed)
{
	const struct hook_def *h = &hook_defs[i];
	void *target = targets[i];
	int err;

	*changed = false;
	if (!target)
		return -ENOENT;	/* no libc.so: a static program */
	if (h->call == MMN_CALL_BRK && !curbrk)
		return -ENOENT;	/* cannot keep glibc's break in step */
	if (h->call == VM_CALL_SBRK && !vm_patch_is_ours(target, h->hook) &&
	    !vm_patch_is_jump(target))
		return 0;
	err = vm_patch_chain(target, h->hook, &entry_next[i], changed);
	if (!err && *changed) {
		note_foreign(i, __atomic_load_n(&entry_next[i], __ATOMIC_ACQUIRE));
		memcpy(entry_snap[i], target, ENTRY_SNAP);
	}
	return err;
}

static void set_method(int i, int err)
{
	int call = hook_defs[i].call;

	if (call >= MMN_CALL_COUNT)
		return;
	methods[call] = err ? MMN_HOOK_NONE
			    : __atomic_load_n(&entry_next[i], __ATOMIC_RELAXED) ? MMN_HOOK_CHAINED
										: MMN_HOOK_ENTRY_PATCH;
	errors[call] = err;
}

void vm_install_hooks(enum mmn_hook_method *method, int *error)
{
	methods = method;
	errors = error;
	curbrk = vm_libc_symbol("__curbrk");
	for (int i = 0; i < VM_NCALLS; i++) {
		bool changed;

		targets[i] = vm_libc_symbol(hook_defs[i].symbol);
		set_method(i, install_one(i, &changed));
	}
	__atomic_store_n(&installed, true, __ATOMIC_RELEASE);
}

static bool recheck_lock_take(void)
{
	if (rechecking)
		return false;	/* a recheck's own mprotect */
	while (__atomic_exchange_n(&recheck_lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&recheck_lock, __ATOMIC_RELAXED))
			;
	rechecking = true;
	return true;
}

static void recheck_lock_drop(void)
{
	rechecking = false;
	__atomic_store_n(&recheck_lock, 0, __ATOMIC_RELEASE);
}

/*
 * Is any hooked entry in [start, end) no longer libmmn's jump? Then chain
 * through what was written there (or patch again, if it was restored).
 */
void vm_hooks_recheck_range(unsigned long start, unsigned long end)
{
	if (!__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
		return;
	for (int i = 0; i < VM_NCALLS; i++) {
		unsigned long t = (unsigned long)targets[i];

		/* A chained entry's snapshot is compared under the lock, below. */
		if (t && start <= t && t < end &&
		    (!vm_patch_is_ours(targets[i], hook_defs[i].hook) ||
		     __atomic_load_n(&entry_next[i], __ATOMIC_RELAXED)))
			goto work;
	}
	return;
work:
	if (!recheck_lock_take())
		return;
	for (int i = 0; i < VM_NCALLS; i++) {
		bool changed;
		int err;

		if (!targets[i])
			continue;
		if (vm_patch_is_ours(targets[i], hook_defs[i].hook)) {
			if (!foreign_withdrawn(i))
				continue;
			/* Threads already in the foreign hook finish there. */
			__atomic_store_n(&entry_next[i], NULL, __ATOMIC_RELEASE);
			foreign_entry[i].present = false;
			__atomic_add_fetch(&rechains, 1, __ATOMIC_RELAXED);
			set_method(i, 0);
			continue;
		}
		err = install_one(i, &changed);
		if (changed)
			__atomic_add_fetch(&rechains, 1, __ATOMIC_RELAXED);
		set_method(i, err);
	}
	recheck_lock_drop();
}

void vm_hooks_recheck(void)
{
	vm_hooks_recheck_range(0, ULONG_MAX);
}

unsigned int vm_hooks_foreign(struct vm_foreign *out, unsigned int max, uint64_t *nrechains)
{
	unsigned int n = 0;

	for (int i = 0; i < VM_NCALLS && n < max; i++)
		if (foreign_entry[i].present && __atomic_load_n(&entry_next[i], __ATOMIC_RELAXED))
			out[n++] = foreign_entry[i];
	*nrechains = __atomic_load_n(&rechains, __ATOMIC_RELAXED);
	return n;
}
