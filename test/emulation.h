/* SPDX-License-Identifier: MIT */
/*
 * Probes for places where the system the tests run on is not Linux's own
 * mapping semantics: qemu-user (the aarch64 suite, docs/TESTING.md)
 * emulates mremap and brk in user space and differs from the kernel in two
 * ways the tests observe (and more, below). Each probe tries the behaviour itself, so a test
 * skips a check only where the behaviour is really absent, and says so.
 */
#ifndef MMN_TEST_EMULATION_H
#define MMN_TEST_EMULATION_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Probes use system calls, not libc's hooked functions: the tests count those. */
static inline void emu_unmap(void *a, long len)
{
	syscall(SYS_munmap, a, len);
}

/* The kernel never moves a mapping that mremap shrinks; qemu-user 7.2 does (MAYMOVE). */
static inline bool emu_mremap_shrink_moves(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *a = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *b;

	if (a == MAP_FAILED)
		return false;
	b = (void *)syscall(SYS_mremap, a, 4 * pg, pg, MREMAP_MAYMOVE, NULL);
	if (b == MAP_FAILED) {
		emu_unmap(a, 4 * pg);
		return false;
	}
	emu_unmap(b, pg);
	if (b != a)
		emu_unmap(a, 4 * pg);	/* whatever qemu left there */
	return b != a;
}

/* Is @addr mapped? The kernel's copy through a pipe says (EFAULT if not). */
static inline bool emu_mapped(unsigned long addr)
{
	int fds[2];
	char c;
	bool ok;

	if (pipe2(fds, O_CLOEXEC))
		return true;
	ok = write(fds[1], (void *)addr, 1) == 1 && read(fds[0], &c, 1) == 1;
	close(fds[0]);
	close(fds[1]);
	return ok;
}

/* The kernel unmaps the pages above a lowered break; qemu-user may keep them. */
static inline bool emu_brk_shrink_keeps_pages(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned long cur = (unsigned long)syscall(SYS_brk, 0), top, probe;
	bool kept;

	top = (cur + 64 * pg + pg - 1) & ~(unsigned long)(pg - 1);
	if ((unsigned long)syscall(SYS_brk, top) != top)
		return false;
	probe = top - pg;
	*(volatile char *)probe = 1;
	syscall(SYS_brk, cur);
	kept = emu_mapped(probe);
	return kept;
}

#endif /* MMN_TEST_EMULATION_H */

/*
 * qemu-user 7.2 takes madvise as a hint it may ignore (it passes DONTNEED
 * through only for some anonymous ranges). Called where a hooked madvise
 * left the byte at @addr (non-zero, mapped) as it was: does @advice, made
 * raw on the same page, leave it so too? Then the emulation ignores it; if
 * the raw call changes it, the hooked call failed to do its job.
 */
static inline bool emu_advice_ignored(unsigned long addr, int advice)
{
	unsigned long pg = (unsigned long)sysconf(_SC_PAGESIZE);
	unsigned char before;

	if (!emu_mapped(addr))
		return false;
	before = *(volatile unsigned char *)addr;
	if (!before)
		return false;
	if (syscall(SYS_madvise, addr & ~(pg - 1), pg, advice))
		return true;
	return emu_mapped(addr) && *(volatile unsigned char *)addr == before;
}

/* The kernel refuses an unknown advice with EINVAL; qemu-user accepts it. */
static inline bool emu_madvise_accepts_unknown(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *a = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool accepts;

	if (a == MAP_FAILED)
		return false;
	accepts = syscall(SYS_madvise, a, pg, 12345) == 0;
	emu_unmap(a, pg);
	return accepts;
}

/* mremap of an unmapped source: EFAULT from the kernel, EINVAL from qemu-user. */
static inline bool emu_mremap_unmapped_not_efault(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *a = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED)
		return false;
	emu_unmap(a, pg);
	errno = 0;
	return syscall(SYS_mremap, a, pg, 2 * pg, MREMAP_MAYMOVE, NULL) == -1 && errno != EFAULT;
}

/* MAP_FIXED_NOREPLACE over a mapping: EEXIST (Linux 4.17+); qemu-user 7.2 maps elsewhere. */
static inline bool emu_noreplace_ignored(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *a = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *b;

	if (a == MAP_FAILED)
		return false;
	b = mmap(a, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	emu_unmap(a, pg);
	if (b != MAP_FAILED && b != a)
		emu_unmap(b, pg);
	return b != MAP_FAILED;
}

/* mprotect(PROT_GROWSDOWN) on a MAP_GROWSDOWN mapping: qemu-user refuses it (EINVAL). */
static inline bool emu_growsdown_refused(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *a = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
	bool refused;

	if (a == MAP_FAILED)
		return false;
	refused = syscall(SYS_mprotect, a + pg, pg, PROT_READ | PROT_GROWSDOWN) != 0;
	emu_unmap(a, 2 * pg);
	return refused;
}
