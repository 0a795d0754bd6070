// SPDX-License-Identifier: MIT
/*
 * Entry patching of libc functions (x86-64).
 *
 * glibc calls its own mapping functions (free -> __munmap, realloc ->
 * __mremap, malloc_trim -> __madvise, sbrk -> __brk) directly, never through
 * the import table, so symbol interposition cannot see them. Those internal
 * names are aliases of the exported ones: the same code at the same address.
 * Rewriting the first instruction there catches both kinds of caller.
 *
 * The patch is a 5-byte `jmp rel32` to a 13-byte trampoline (`movabs r11,
 * hook; jmp *r11`) in a page mapped within +-2 GiB of libc. The five bytes lie
 * in one aligned 8-byte word, which is replaced by one atomic store, so a
 * thread running the function meanwhile executes either the old word or the
 * new one, never a mix; membarrier(SYNC_CORE) then makes every thread
 * re-fetch instructions. The old code is never run again (the hooks make the
 * system calls themselves), and a patch is never undone.
 *
 * A function whose entry is already a jump was patched by someone else (UCX,
 * libfabric, Open MPI): it is left alone and reported, because overwriting
 * would silently disable the other library's hook. Such processes can feed
 * events to libmmn through mmn_process_event_begin()/_end().
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <linux/membarrier.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "raw.h"
#include "vm.h"

#if defined(__x86_64__)

#define TRAMPOLINE_SIZE 16
#define PAGE 4096UL

static unsigned char *trampolines;	/* one page, near libc */
static unsigned int trampolines_used;

/* Map a page within rel32 reach of @near, or return NULL. */
static unsigned char *map_near(uintptr_t near)
{
	const uintptr_t step = 1UL << 24, reach = (1UL << 31) - 2 * PAGE;
	uintptr_t base = near & ~(PAGE - 1);

	for (uintptr_t d = step; d < reach; d += step) {
		for (int dir = -1; dir <= 1; dir += 2) {
			uintptr_t hint = dir < 0 ? base - d : base + d;
			long p;

			if ((dir < 0 && d > base) || hint == 0)
				continue;
			p = raw_syscall(SYS_mmap, hint, PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (p < 0 && p > -4096)
				continue;
			if ((uintptr_t)p == hint)
				return (unsigned char *)p;
			raw_syscall(SYS_munmap, p, PAGE, 0, 0, 0, 0);
		}
	}
	return NULL;
}

static void sync_cores(void)
{
	static int registered;

	if (!registered)
		registered = raw_syscall(SYS_membarrier,
					 MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
					 0, 0, 0, 0, 0) == 0 ? 1 : -1;
	if (registered > 0)
		raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0,
			    0, 0, 0);
}

int vm_patch_entry(void *target, vm_hook_fn *hook)
{
	uintptr_t t = (uintptr_t)target, page = t & ~(PAGE - 1), aligned = t & ~7UL;
	unsigned char *slot, *bytes, *entry = target;
	uint64_t word;
	int32_t rel32;
	long rel, ret;
	Dl_info info;
	const ElfW(Sym) *sym = NULL;

	/* A function shorter than the word we rewrite would lose its neighbour. */
	if (!dladdr1(target, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
	    sym->st_size < 8)
		return -ENOEXEC;
	if ((t & 7) > 3)	/* the five bytes must lie in one aligned word */
		return -EINVAL;
	if (entry[0] == 0xe9 || entry[0] == 0xeb ||
	    (entry[0] == 0xff && entry[1] == 0x25) ||
	    (entry[0] == 0x49 && entry[1] == 0xbb) || (entry[0] == 0x48 && entry[1] == 0xb8))
		return -EEXIST;	/* somebody's jump already */

	if (!trampolines) {
		trampolines = map_near(t);
		if (!trampolines)
			return -ENOMEM;
	}
	if (trampolines_used + TRAMPOLINE_SIZE > PAGE)
		return -ENOSPC;
	slot = trampolines + trampolines_used;
	rel = (long)((intptr_t)slot - (intptr_t)(t + 5));
	rel32 = (int32_t)rel;
	if (rel != rel32)
		return -ERANGE;

	/* movabs r11, hook; jmp *r11 */
	ret = raw_syscall(SYS_mprotect, trampolines, PAGE, PROT_READ | PROT_WRITE, 0, 0, 0);
	if (ret)
		return (int)ret;
	slot[0] = 0x49;
	slot[1] = 0xbb;
	memcpy(slot + 2, &hook, sizeof(hook));
	slot[10] = 0x41;
	slot[11] = 0xff;
	slot[12] = 0xe3;
	trampolines_used += TRAMPOLINE_SIZE;
	ret = raw_syscall(SYS_mprotect, trampolines, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0);
	if (ret)
		return (int)ret;

	/* The new first word: jmp rel32, the word's other bytes unchanged. */
	memcpy(&word, (void *)aligned, sizeof(word));
	bytes = (unsigned char *)&word + (t - aligned);
	bytes[0] = 0xe9;
	memcpy(bytes + 1, &rel32, sizeof(rel32));

	/* An aligned word never crosses a page. */
	ret = raw_syscall(SYS_mprotect, page, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, 0, 0, 0);
	if (ret)
		return (int)ret;
	__atomic_store_n((uint64_t *)aligned, word, __ATOMIC_SEQ_CST);
	raw_syscall(SYS_mprotect, page, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0);
	sync_cores();
	return 0;
}

#else

int vm_patch_entry(void *target, vm_hook_fn *hook)
{
	(void)target;
	(void)hook;
	return -ENOSYS;	/* no entry patcher for this architecture */
}

#endif

void *vm_libc_symbol(const char *name)
{
	static void *libc;

	if (!libc)
		libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	return libc ? dlsym(libc, name) : NULL;
}
