// SPDX-License-Identifier: MIT
/*
 * The hooks: libmmn's versions of libc's mapping functions.
 *
 * libc's entry jumps here (patch.c). Each hook works out which range the call
 * will change, opens an invalidation of it (vm_call_begin), makes the system
 * call itself, closes the invalidation whatever the call returned
 * (vm_call_end), and returns exactly what libc's function would have, errno
 * included. A call the kernel will refuse before touching anything (an
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
#include <limits.h>
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

static unsigned long page_up(unsigned long x)
{
	return (x + vm_page_size - 1) & ~(vm_page_size - 1);
}

/*
 * The page range [a, a+n) as the kernel rounds it, or an empty range (no
 * invalidation) for a call the kernel refuses without changing anything.
 */
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
 * call, the hook_X() wrappers turn it into libc's -1 and errno.
 */
static long sys_munmap(void *addr, size_t len)
{
	struct vm_call c;
	unsigned long s, e;
	long ret;

	page_range((unsigned long)addr, len, &s, &e);
	vm_call_begin(&c, MMN_CALL_MUNMAP, MMN_EVENT_UNMAP, s, e);
	ret = raw_syscall(SYS_munmap, addr, len, 0, 0, 0, 0);
	vm_call_end(&c);
	return ret;
}

static int hook_munmap(void *addr, size_t len)
{
	return (int)raw_result(sys_munmap(addr, len));
}

/* Declared with five arguments: the fifth is read only when a flag says so. */
static long sys_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
	unsigned long a = (unsigned long)old, s, e, ns = 0, ne = 0;
	struct vm_call c_old, c_new;
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
	ret = raw_syscall(SYS_mremap, old, old_len, new_len, flags, new_addr, 0);
	vm_call_end(&c_new);
	vm_call_end(&c_old);
	return ret;
}

static void *hook_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
	return (void *)raw_result(sys_mremap(old, old_len, new_len, flags, new_addr));
}

/* The event an advice causes, or -1 if it leaves the mapping alone. */
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

static long sys_madvise(void *addr, size_t len, int advice)
{
	int event = madvise_event(advice);
	unsigned long s = 0, e = 0;
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
	if (s < e && own_stack_below_sp(s, e))
		s = e = 0;
#else
	(void)own_stack_below_sp;
#endif
	vm_call_begin(&c, MMN_CALL_MADVISE, event >= 0 ? (enum mmn_event)event : MMN_EVENT_CLEAR,
		      s, e);
	ret = raw_syscall(SYS_madvise, addr, len, advice, 0, 0, 0);
	vm_call_end(&c);
	return ret;
}

static int hook_madvise(void *addr, size_t len, int advice)
{
	return (int)raw_result(sys_madvise(addr, len, advice));
}

/* glibc's brk: sets __curbrk to what the kernel returns; ENOMEM if below @addr. */
static int hook_brk(void *addr)
{
	unsigned long want = (unsigned long)addr, cur = *curbrk, s = 0, e = 0;
	struct vm_call c;
	long ret;

	if (!cur)
		cur = (unsigned long)raw_syscall(SYS_brk, 0, 0, 0, 0, 0, 0);
	if (want && want < cur) {
		s = page_up(want);
		e = page_up(cur);
	}
	vm_call_begin(&c, MMN_CALL_BRK, MMN_EVENT_UNMAP, s, e);
	ret = raw_syscall(SYS_brk, addr, 0, 0, 0, 0, 0);
	vm_call_end(&c);
	*curbrk = (unsigned long)ret;
	if ((unsigned long)ret < want) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* The raw brk system call: returns the new break; glibc's __curbrk is not its business. */
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

static long sys_shmdt(const void *addr)
{
	struct shm_find f = { .addr = (unsigned long)addr };
	struct vm_call c;
	long ret;

	if (!(f.addr & (vm_page_size - 1)))
		vm_maps_foreach(shm_find_cb, &f);
	vm_call_begin(&c, MMN_CALL_SHMDT, MMN_EVENT_UNMAP, f.end ? f.addr : 0, f.end);
	ret = raw_syscall(SYS_shmdt, addr, 0, 0, 0, 0, 0);
	vm_call_end(&c);
	return ret;
}

static int hook_shmdt(const void *addr)
{
	return (int)raw_result(sys_shmdt(addr));
}

static long sys_shmat(int shmid, const void *addr, int flags)
{
	unsigned long a = (unsigned long)addr, s = 0, e = 0;
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
	ret = raw_syscall(SYS_shmat, shmid, addr, flags, 0, 0, 0);
	vm_call_end(&c);
	return ret;
}

static void *hook_shmat(int shmid, const void *addr, int flags)
{
	return (void *)raw_result(sys_shmat(shmid, addr, flags));
}

static long sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	unsigned long s = 0, e = 0;
	struct vm_call c;
	long ret;

	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE))
		page_range((unsigned long)addr, len, &s, &e);
	vm_call_begin(&c, MMN_CALL_MMAP, MMN_EVENT_UNMAP, s, e);
	ret = raw_syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	vm_call_end(&c);
	return ret;
}

static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)raw_result(sys_mmap(addr, len, prot, flags, fd, off));
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

static long sys_mprotect(void *addr, size_t len, int prot)
{
	unsigned long s, e;
	struct vm_call c;
	long ret;

	protection_range((unsigned long)addr, len, prot, &s, &e);
	vm_call_begin(&c, MMN_CALL_MPROTECT, MMN_EVENT_PROTECTION_VMA, s, e);
	ret = raw_syscall(SYS_mprotect, addr, len, prot, 0, 0, 0);
	vm_call_end(&c);
	return ret;
}

static int hook_mprotect(void *addr, size_t len, int prot)
{
	return (int)raw_result(sys_mprotect(addr, len, prot));
}

/* @libc: glibc's meaning of pkey -1 (plain mprotect); the raw call passes it on. */
static long sys_pkey_mprotect(void *addr, size_t len, int prot, int pkey, bool libc)
{
	unsigned long s, e;
	struct vm_call c;
	long ret;

	protection_range((unsigned long)addr, len, prot, &s, &e);
	vm_call_begin(&c, MMN_CALL_PKEY_MPROTECT, MMN_EVENT_PROTECTION_VMA, s, e);
	/* glibc: pkey -1 is plain mprotect (also where pkeys do not exist). */
	if (pkey == -1 && libc)
		ret = raw_syscall(SYS_mprotect, addr, len, prot, 0, 0, 0);
	else
		ret = raw_syscall(SYS_pkey_mprotect, addr, len, prot, pkey, 0, 0);
	vm_call_end(&c);
	return ret;
}

static int hook_pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
	return (int)raw_result(sys_pkey_mprotect(addr, len, prot, pkey, true));
}

static long sys_remap_file_pages(void *addr, size_t size, int prot, size_t pgoff, int flags)
{
	unsigned long s, e;
	struct vm_call c;
	long ret;

	page_range((unsigned long)addr, size, &s, &e);
	vm_call_begin(&c, MMN_CALL_REMAP_FILE_PAGES, MMN_EVENT_UNMAP, s, e);
	ret = raw_syscall(SYS_remap_file_pages, addr, size, prot, pgoff, flags, 0);
	vm_call_end(&c);
	return ret;
}

static int hook_remap_file_pages(void *addr, size_t size, int prot, size_t pgoff, int flags)
{
	return (int)raw_result(sys_remap_file_pages(addr, size, prot, pgoff, flags));
}

static long sys_process_madvise(int pidfd, const struct iovec *iov, size_t vlen, int advice,
				unsigned int flags)
{
	int event = madvise_event(advice);
	unsigned long s = ULONG_MAX, e = 0;
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
	ret = raw_syscall(SYS_process_madvise, pidfd, iov, vlen, advice, flags, 0);
	vm_call_end(&c);
	return ret;
}

static ssize_t hook_process_madvise(int pidfd, const struct iovec *iov, size_t vlen,
				    int advice, unsigned int flags)
{
	return raw_result(sys_process_madvise(pidfd, iov, vlen, advice, flags));
}

static bool mapping_syscall(long nr, const long a[6], long *ret)
{
	switch (nr) {
	case SYS_munmap:
		*ret = sys_munmap((void *)a[0], (size_t)a[1]);
		return true;
	case SYS_mremap:
		*ret = sys_mremap((void *)a[0], (size_t)a[1], (size_t)a[2], (int)a[3],
				  (void *)a[4]);
		return true;
	case SYS_madvise:
		*ret = sys_madvise((void *)a[0], (size_t)a[1], (int)a[2]);
		return true;
	case SYS_brk:
		*ret = sys_brk((unsigned long)a[0]);
		return true;
	case SYS_shmdt:
		*ret = sys_shmdt((const void *)a[0]);
		return true;
	case SYS_shmat:
		*ret = sys_shmat((int)a[0], (const void *)a[1], (int)a[2]);
		return true;
	case SYS_mmap:
		*ret = sys_mmap((void *)a[0], (size_t)a[1], (int)a[2], (int)a[3], (int)a[4],
				(off_t)a[5]);
		return true;
	case SYS_mprotect:
		*ret = sys_mprotect((void *)a[0], (size_t)a[1], (int)a[2]);
		return true;
	case SYS_pkey_mprotect:
		*ret = sys_pkey_mprotect((void *)a[0], (size_t)a[1], (int)a[2], (int)a[3], false);
		return true;
	case SYS_remap_file_pages:
		*ret = sys_remap_file_pages((void *)a[0], (size_t)a[1], (int)a[2], (size_t)a[3],
					    (int)a[4]);
		return true;
	case SYS_process_madvise:
		*ret = sys_process_madvise((int)a[0], (const struct iovec *)a[1], (size_t)a[2],
					   (int)a[3], (unsigned int)a[4]);
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
	enum mmn_process_call call;
	const char *symbol;
	vm_hook_fn *hook;
} hook_defs[MMN_CALL_COUNT] = {
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
};

void vm_install_hooks(enum mmn_hook_method *method, int *error)
{
	curbrk = vm_libc_symbol("__curbrk");
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		const struct hook_def *h = &hook_defs[i];
		void *target = vm_libc_symbol(h->symbol);
		int err;

		if (!target)
			err = -ENOENT;	/* no libc.so: a static program */
		else if (h->call == MMN_CALL_BRK && !curbrk)
			err = -ENOENT;	/* cannot keep glibc's break in step */
		else
			err = vm_patch_entry(target, h->hook);
		method[h->call] = err ? MMN_HOOK_NONE : MMN_HOOK_ENTRY_PATCH;
		error[h->call] = err;
	}
}
