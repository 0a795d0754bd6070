// SPDX-License-Identifier: MIT
/*
 * libmmn-preload.so: libmmn's process event sources for unmodified programs.
 *
 *   LD_PRELOAD=libmmn-preload.so program ...
 *
 * The constructor calls mmn_process_mm(), which patches libc's mapping
 * functions and starts the userfaultfd backstop; reports go through libmmn's
 * log hook (MMN_LOG=stderr prints them). libmmn itself is the shared library
 * this one links, so the process holds one copy of it and one process domain,
 * which the program (or another library) can reach with mmn_process_mm() too.
 *
 * With MMN_SELFCHECK=1 it also checks the event sources against
 * /proc/self/maps (selfcheck.c) and writes counts to MMN_SELFCHECK_LOG at exit.
 *
 * munmap, mremap and madvise are also defined here, as plain pass-throughs
 * that count the calls other modules make through their import table. libc's
 * own calls (free -> __munmap) never come here, so the difference between
 * libmmn's event count and these counts is work that only entry patching saw.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "raw.h"
#include "preload.h"

#define PRELOAD_API __attribute__((visibility("default")))

static uint64_t plt_calls[PLT_COUNT];	/* atomic */

static int (*next_munmap)(void *addr, size_t len);
static void *(*next_mremap)(void *old, size_t old_len, size_t new_len, int flags, ...);
static int (*next_madvise)(void *addr, size_t len, int advice);

uint64_t preload_plt_calls(enum preload_plt call)
{
	return __atomic_load_n(&plt_calls[call], __ATOMIC_RELAXED);
}

/* Count only calls that libmmn's hook turns into an invalidation. */
static void plt_count(enum preload_plt call, void *addr, size_t len)
{
	if (len && !((unsigned long)addr & 4095))
		__atomic_add_fetch(&plt_calls[call], 1, __ATOMIC_RELAXED);
}

/*
 * Before the constructor has looked up libc's functions (another library's
 * constructor may run first), the system call is made directly: the hooks are
 * not installed yet either, so nothing is lost.
 */
PRELOAD_API int munmap(void *addr, size_t len)
{
	int (*fn)(void *, size_t) = __atomic_load_n(&next_munmap, __ATOMIC_ACQUIRE);

	plt_count(PLT_MUNMAP, addr, len);
	if (fn)
		return fn(addr, len);
	return (int)raw_result(raw_syscall(SYS_munmap, addr, len, 0, 0, 0, 0));
}

PRELOAD_API void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *(*fn)(void *, size_t, size_t, int, ...) =
		__atomic_load_n(&next_mremap, __ATOMIC_ACQUIRE);
	void *new_addr = NULL;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	plt_count(PLT_MREMAP, old, old_len ? old_len : new_len);
	if (fn)
		return fn(old, old_len, new_len, flags, new_addr);
	return (void *)raw_result(
		raw_syscall(SYS_mremap, old, old_len, new_len, flags, new_addr, 0));
}

PRELOAD_API int madvise(void *addr, size_t len, int advice)
{
	int (*fn)(void *, size_t, int) = __atomic_load_n(&next_madvise, __ATOMIC_ACQUIRE);

	plt_count(PLT_MADVISE, addr, len);
	if (fn)
		return fn(addr, len, advice);
	return (int)raw_result(raw_syscall(SYS_madvise, addr, len, advice, 0, 0, 0));
}

static void preload_log(enum mmn_log_level level, const char *what)
{
	struct mmn_log_record rec = { .level = level, .what = what };

	mmn_log(&rec);
}

__attribute__((constructor)) static void preload_init(void)
{
	const char *v = getenv("MMN_SELFCHECK");
	struct mmn_mm *mm;
	int err;
	void *sym_munmap = dlsym(RTLD_NEXT, "munmap");
	void *sym_mremap = dlsym(RTLD_NEXT, "mremap");
	void *sym_madvise = dlsym(RTLD_NEXT, "madvise");
	int (*fn_munmap)(void *, size_t);
	void *(*fn_mremap)(void *, size_t, size_t, int, ...);
	int (*fn_madvise)(void *, size_t, int);

	/* POSIX: object and function pointers share one representation. */
	memcpy(&fn_munmap, &sym_munmap, sizeof(sym_munmap));
	memcpy(&fn_mremap, &sym_mremap, sizeof(sym_mremap));
	memcpy(&fn_madvise, &sym_madvise, sizeof(sym_madvise));
	__atomic_store_n(&next_munmap, fn_munmap, __ATOMIC_RELEASE);
	__atomic_store_n(&next_mremap, fn_mremap, __ATOMIC_RELEASE);
	__atomic_store_n(&next_madvise, fn_madvise, __ATOMIC_RELEASE);

	err = mmn_process_mm(&mm);
	if (err) {
		preload_log(MMN_LOG_ERROR, "preload: mmn_process_mm() failed; no events");
		return;
	}
	preload_log(MMN_LOG_INFO, "preload: process event sources installed");
	if (v && strcmp(v, "1") == 0)
		selfcheck_start(mm);
}

__attribute__((destructor)) static void preload_fini(void)
{
	selfcheck_exit();
}
