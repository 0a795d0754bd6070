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
 * The patch is a 5-byte `jmp rel32`: straight to the hook when it lies within
 * +-2 GiB (libmmn.so is usually mapped next to libc), else to a 13-byte
 * trampoline (`movabs r11, hook; jmp *r11`) in a page mapped within reach of
 * libc -- a page that every hooked call would touch. The five bytes lie
 * in one aligned 8-byte word, which is replaced by one atomic store, so a
 * thread running the function meanwhile executes either the old word or the
 * new one, never a mix; membarrier(SYNC_CORE) then makes every thread
 * re-fetch instructions. The old code is never run again (the hooks make the
 * system calls themselves), and a patch is never undone.
 *
 * A function whose entry is already a jump was patched by someone else (UCX,
 * libfabric, Open MPI). vm_patch_entry() refuses it (-EEXIST);
 * vm_patch_chain() decodes where the foreign jump goes, hands that back as
 * the hook's "next" function and puts libmmn's jump in front: libmmn's hook
 * opens the invalidation and then calls the foreign hook, so both run, in
 * that order. Only the jump forms the peers write are recognised (jmp rel32,
 * jmp rel8, jmp *[rip+disp32], movabs r11/rax + jmp *r11/rax).
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

int vm_patch_entry(void *target, vm_hook_fn *hook)
{
	return vm_patch_detour(target, hook, NULL, 0, NULL);
}

#if defined(__x86_64__)

/*
 * Where a foreign jump at @entry goes, or NULL if @entry does not start
 * with one of the jump forms the peers write.
 */
static void *foreign_jump_target(const unsigned char *entry)
{
	int32_t rel32;
	uint64_t abs;

	switch (entry[0]) {
	case 0xe9:	/* jmp rel32 (UCX near patch, libmmn itself) */
		memcpy(&rel32, entry + 1, sizeof(rel32));
		return (void *)(entry + 5 + rel32);
	case 0xeb:	/* jmp rel8 */
		return (void *)(entry + 2 + (int8_t)entry[1]);
	case 0xff:	/* jmp *[rip + disp32] */
		if (entry[1] != 0x25)
			return NULL;
		memcpy(&rel32, entry + 2, sizeof(rel32));
		memcpy(&abs, entry + 6 + rel32, sizeof(abs));
		return (void *)abs;
	case 0x49:	/* movabs r11, imm64; jmp *r11 (UCX, libfabric, Open MPI) */
		if (entry[1] != 0xbb || entry[10] != 0x41 || entry[11] != 0xff ||
		    entry[12] != 0xe3)
			return NULL;
		memcpy(&abs, entry + 2, sizeof(abs));
		return (void *)abs;
	case 0x48:	/* movabs rax, imm64; jmp *rax */
		if (entry[1] != 0xb8 || entry[10] != 0xff || entry[11] != 0xe0)
			return NULL;
		memcpy(&abs, entry + 2, sizeof(abs));
		return (void *)abs;
	default:
		return NULL;
	}
}

#define TRAMPOLINE_SIZE 16	/* a hook slot; a detour takes two */
#define PAGE 4096UL

static unsigned char *trampolines;	/* one page, near libc */
static unsigned int trampolines_used;

/*
 * A page within rel32 reach of @near: 2 GiB, less 16 MiB, so that every
 * other function of libc (the page serves them all) is within reach too.
 */
static unsigned char *map_near(uintptr_t near)
{
	return vm_map_near(near, (1UL << 31) - (16UL << 20), 1UL << 24);
}

/*
 * One aligned 8-byte store into the code page. Inline assembly rather than
 * __atomic_store_n: a sanitizer would instrument the builtin and touch shadow
 * memory for libc's text, which has none. An aligned 8-byte mov is atomic.
 */
static void store_code_word(uint64_t *where, uint64_t word)
{
	__asm__ volatile("movq %1, %0" : "=m"(*where) : "r"(word) : "memory");
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

/* The hook slot already made for @hook, so that re-patching reuses it. */
static unsigned char *trampoline_find(vm_hook_fn *hook)
{
	for (unsigned int i = 0; trampolines && i + TRAMPOLINE_SIZE <= trampolines_used;
	     i += TRAMPOLINE_SIZE) {
		unsigned char *slot = trampolines + i;
		vm_hook_fn *h;

		memcpy(&h, slot + 2, sizeof(h));
		if (slot[0] == 0x49 && slot[1] == 0xbb && h == hook)
			return slot;
	}
	return NULL;
}

/* Reserve @size bytes of trampoline near @near; NULL if none are left. */
static unsigned char *trampoline_alloc(uintptr_t near, unsigned int size)
{
	unsigned char *slot;

	if (!trampolines) {
		trampolines = map_near(near);
		if (!trampolines)
			return NULL;
	}
	if (trampolines_used + size > PAGE)
		return NULL;
	slot = trampolines + trampolines_used;
	trampolines_used += size;
	return slot;
}

/*
 * The page stays executable while a slot is added: other threads may be
 * running through the slots already in use (a re-chain happens while the
 * process runs), and a non-executable page would fault them.
 */
static int trampolines_writable(bool writable)
{
	return (int)raw_syscall(SYS_mprotect, trampolines, PAGE,
				PROT_READ | PROT_EXEC | (writable ? PROT_WRITE : 0), 0, 0, 0);
}

/* Can a rel32 displacement from @from (the next instruction) reach @to? */
static bool near_enough(uintptr_t from, const void *to)
{
	long rel = (long)((intptr_t)to - (intptr_t)from);

	return rel == (int32_t)rel;
}

/* `jmp rel32` at @at to @to; false if @to is out of reach. */
static bool put_jmp(unsigned char *at, const void *to)
{
	long rel = (long)((intptr_t)to - (intptr_t)(at + 5));
	int32_t rel32 = (int32_t)rel;

	if (rel != rel32)
		return false;
	at[0] = 0xe9;
	memcpy(at + 1, &rel32, sizeof(rel32));
	return true;
}

/*
 * Make @target jump to @hook (vm.h). With @prologue, the function's first @len bytes
 * must be exactly those (position-independent instructions, at least 5 bytes):
 * they are copied to a trampoline that continues at target + len, returned in
 * *@original, so the hook can still run the function it replaced.
 */
static int patch(void *target, vm_hook_fn *hook, const unsigned char *prologue,
		 size_t prologue_len, void **original, bool chain)
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
	if (!chain && (entry[0] == 0xe9 || entry[0] == 0xeb ||
		       (entry[0] == 0xff && entry[1] == 0x25) ||
		       (entry[0] == 0x49 && entry[1] == 0xbb) ||
		       (entry[0] == 0x48 && entry[1] == 0xb8)))
		return -EEXIST;	/* somebody's jump already */
	if (prologue && (prologue_len < 5 || prologue_len + 5 > TRAMPOLINE_SIZE ||
			 memcmp(entry, prologue, prologue_len)))
		return -ENOEXEC;	/* not the code we know how to move */

	if (!prologue && near_enough(t + 5, VM_ADDR(hook))) {
		slot = VM_ADDR(hook);
		goto write_entry;
	}
	slot = prologue ? NULL : trampoline_find(hook);
	if (slot)
		goto write_entry;
	slot = trampoline_alloc(t, prologue ? 2 * TRAMPOLINE_SIZE : TRAMPOLINE_SIZE);
	if (!slot)
		return -ENOMEM;
	ret = trampolines_writable(true);
	if (ret)
		return (int)ret;
	/* movabs r11, hook; jmp *r11 */
	slot[0] = 0x49;
	slot[1] = 0xbb;
	memcpy(slot + 2, &hook, sizeof(hook));
	slot[10] = 0x41;
	slot[11] = 0xff;
	slot[12] = 0xe3;
	if (prologue) {
		/* The displaced instructions, then back into the function. */
		unsigned char *resume = slot + TRAMPOLINE_SIZE;

		memcpy(resume, prologue, prologue_len);
		if (!put_jmp(resume + prologue_len, entry + prologue_len)) {
			trampolines_writable(false);
			return -ERANGE;
		}
		*original = resume;
	}
	ret = trampolines_writable(false);
	if (ret)
		return (int)ret;
write_entry:
	rel = (long)((intptr_t)slot - (intptr_t)(t + 5));
	rel32 = (int32_t)rel;
	if (rel != rel32)
		return -ERANGE;

	/* The new first word: jmp rel32, the word's other bytes unchanged. */
	memcpy(&word, (void *)aligned, sizeof(word));
	bytes = (unsigned char *)&word + (t - aligned);
	bytes[0] = 0xe9;
	memcpy(bytes + 1, &rel32, sizeof(rel32));

	/* An aligned word never crosses a page. */
	ret = raw_syscall(SYS_mprotect, page, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, 0, 0, 0);
	if (ret)
		return (int)ret;
	store_code_word((uint64_t *)aligned, word);
	raw_syscall(SYS_mprotect, page, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0);
	sync_cores();
	return 0;
}

int vm_patch_detour(void *target, vm_hook_fn *hook, const unsigned char *prologue,
		    size_t prologue_len, void **original)
{
	return patch(target, hook, prologue, prologue_len, original, false);
}

bool vm_patch_is_jump(const void *target)
{
	return foreign_jump_target(target) != NULL;
}

/* Does @target's entry jump to @hook, or to its trampoline slot? */
bool vm_patch_is_ours(const void *target, vm_hook_fn *hook)
{
	unsigned char *slot = trampoline_find(hook);
	void *dest = foreign_jump_target(target);

	return dest && (dest == VM_ADDR(hook) || dest == slot);
}

int vm_patch_chain(void *target, vm_hook_fn *hook, void **next, bool *changed)
{
	void *dest = foreign_jump_target(target);
	int err;

	*changed = false;
	if (vm_patch_is_ours(target, hook))
		return 0;
	/* Publish the next hop before any thread can take the new jump. */
	__atomic_store_n(next, dest, __ATOMIC_RELEASE);
	err = patch(target, hook, NULL, 0, NULL, true);
	if (err)
		return err;
	*changed = true;
	return 0;
}

#elif !defined(__aarch64__)	/* aarch64: patch_aarch64.c */

/*
 * No chaining here: vm_patch_chain() is a plain entry patch, and an entry
 * another library has patched is refused (-EEXIST), as before chaining.
 */
bool vm_patch_is_jump(const void *target)
{
	(void)target;
	return false;
}

int vm_patch_chain(void *target, vm_hook_fn *hook, void **next, bool *changed)
{
	(void)next;
	*changed = false;
	if (vm_patch_is_ours(target, hook))
		return 0;
	return vm_patch_entry(target, hook);
}

bool vm_patch_is_ours(const void *target, vm_hook_fn *hook)
{
	(void)target;
	(void)hook;
	return false;
}

int vm_patch_detour(void *target, vm_hook_fn *hook, const unsigned char *prologue,
		    size_t len, void **original)
{
	(void)target;
	(void)hook;
	(void)prologue;
	(void)len;
	(void)original;
	return -ENOSYS;
}

#endif

unsigned char *vm_map_near(uintptr_t near, uintptr_t reach, uintptr_t step)
{
	const uintptr_t page = vm_page_size;
	uintptr_t base = near & ~(page - 1);

	for (uintptr_t d = step; d < reach; d += step) {
		for (int dir = 1; dir >= -1; dir -= 2) {
			uintptr_t hint = dir < 0 ? base - d : base + d;
			long p;

			if (dir < 0 && d >= base)
				continue;
			/*
			 * A plain hint: the kernel uses it when that range is free and
			 * never replaces anything. Not MAP_FIXED_NOREPLACE: qemu-user
			 * ignores a hint that comes with it. Where the hint is taken,
			 * the kernel's choice may still be within reach.
			 */
			p = raw_syscall(SYS_mmap, hint, page, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p < 0 && p > -4096)
				return NULL;
			if ((uintptr_t)p - near < reach || near - (uintptr_t)p < reach)
				return (unsigned char *)p;
			raw_syscall(SYS_munmap, p, page, 0, 0, 0, 0);
		}
	}
	return NULL;
}

void *vm_libc_symbol(const char *name)
{
	static void *libc;

	if (!libc)
		libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	return libc ? dlsym(libc, name) : NULL;
}
