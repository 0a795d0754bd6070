/* SPDX-License-Identifier: MIT */
/*
 * Raw system calls (the system layer, src/sys; maps.h says what it is).
 *
 * Once libc's mapping functions jump to libmmn, calling them from libmmn would
 * recurse, so libmmn's event sources make their system calls themselves, and
 * so does the preload where it must not allocate or touch errno. They return
 * the kernel's value: the result, or -errno.
 *
 * Built with MMN_VM_SYSCALL_GADGET (the event sources and the system layer's
 * own files), a call runs at the gadget of this module, if set: see raw.c.
 * Without it (the preload's files) a call is always the inline instruction,
 * which syscall user dispatch traps like any other foreign system call.
 */
#ifndef MMN_SYS_RAW_H
#define MMN_SYS_RAW_H

#include <errno.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#ifdef MMN_VM_SYSCALL_GADGET
/*
 * sud.c: once syscall user dispatch is on, a `syscall; ret` inside the range
 * it lets through (libc's text; libmmn's stub in a static program). libmmn's
 * own system calls run there, so they never trap. The call skips the red
 * zone, which the compiler may use around this asm.
 */
extern void *vm_syscall_insn __attribute__((visibility("hidden")));
#endif
static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
#ifdef MMN_VM_SYSCALL_GADGET
	/*
	 * Loaded before the register variables are set: a sanitizer turns the
	 * atomic load into a call, which would clobber r8-r10.
	 */
	void *insn = __atomic_load_n(&vm_syscall_insn, __ATOMIC_ACQUIRE);
#endif
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
#ifdef MMN_VM_SYSCALL_GADGET
	if (insn) {
		__asm__ volatile("sub $128, %%rsp\n\tcall *%[insn]\n\tadd $128, %%rsp"
				 : "=a"(ret)
				 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9),
				   [insn] "r"(insn)
				 : "rcx", "r11", "memory", "cc");
		return ret;
	}
#endif

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
#else
#include <unistd.h>
/* Elsewhere no entry is patched, so libc's syscall() is safe to use. */
static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret = syscall(nr, a, b, c, d, e, f);

	return ret == -1 ? -errno : ret;
}
#endif

#define raw_syscall(nr, a, b, c, d, e, f) \
	raw_syscall6((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* The libc convention: -1 and errno for an error, else the value. */
static inline long raw_result(long ret)
{
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

#endif /* MMN_SYS_RAW_H */
