// SPDX-License-Identifier: MIT
/*
 * Entry patching of libc functions on aarch64 (Linux, glibc): the aarch64
 * side of vm_patch_detour() (vm.h); patch.c holds the x86-64 side.
 *
 * The patch is one instruction: the function's first word becomes `b slot`,
 * a branch to a trampoline within +-128 MiB (B's reach), in a page mapped
 * near libc. The hook slot is `ldr x16, .+8; br x16; .quad hook`. A detour
 * also gets the displaced word, relocated (a64_reloc.c), and a `b` back to
 * entry + 4.
 *
 * The order, and why a thread running the function meanwhile is safe
 * (docs/process-events.md, "aarch64"):
 *  1. The trampoline is written into a fresh page that no thread can reach
 *     (nothing branches to it yet, and it is not executable), its lines are
 *     cleaned to the point of unification and invalidated in the
 *     instruction cache (__builtin___clear_cache: dc cvau, dsb ish,
 *     ic ivau, dsb ish, isb), and the page becomes read+execute. Each
 *     trampoline page serves one patch and is never written again, so no
 *     thread can be executing a page while it is writable.
 *  2. The entry word is replaced by one aligned 32-bit store (single-copy
 *     atomic), then cleaned and invalidated the same way. The Arm ARM's
 *     rule on concurrent modification and execution guarantees a thread
 *     fetching that word meanwhile executes the old instruction or the new
 *     one only when both are one of B, BL, BRK, HVC, ISB, NOP, SMC, SVC.
 *     glibc's syscall wrappers often begin with a NOP, so NOP -> B is
 *     patched at any time; any other first instruction is patched only while
 *     glibc says the process is single-threaded (__libc_single_threaded),
 *     else the call is refused (-EBUSY) and logged: call mmn_process_mm()
 *     before creating threads.
 *  3. membarrier(PRIVATE_EXPEDITED_SYNC_CORE) makes every other thread of
 *     the process take a context synchronization event, so none keeps
 *     executing instructions it fetched before the store.
 * The old code is never needed again (the hooks make their own system
 * calls), except a detour's displaced word, which runs from the trampoline.
 *
 * Chaining (vm_patch_chain()). An entry another library has patched --
 * UCX's bistro, libfabric's memhooks and Open MPI's patcher all write
 * `movz/movk x15 (x4); br x15`; others a B or `ldr x16/x17, lit; br` -- is
 * decoded (mmn_a64_foreign_target()): that destination becomes the hook's
 * "next", published before the entry changes, and the entry's first word
 * becomes libmmn's `b slot`; the rest of the foreign sequence is never
 * reached again. The same rule as above decides when: the foreign first
 * word (a movz) is not in the set the Arm ARM allows, so a foreign patch is
 * chained only while the process is single-threaded -- otherwise -EBUSY,
 * logged, and that call is left to the backstop -- unless it begins with a
 * B. A hook slot is made once per hook and reused by every re-chain.
 *
 * libc's text page is made writable for the store by mprotect. Where libc is
 * BTI-guarded (built with BTI and the CPU has it), PROT_BTI is kept in both
 * calls, or the page would lose its guard.
 */
#if defined(__aarch64__)

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "a64.h"
#include "raw.h"
#include "vm.h"

#ifndef PROT_BTI
#define PROT_BTI 0x10
#endif
#ifndef HWCAP2_BTI
#define HWCAP2_BTI (1UL << 17)
#endif
#ifndef PT_GNU_PROPERTY
#define PT_GNU_PROPERTY 0x6474e553
#endif
#ifndef GNU_PROPERTY_AARCH64_FEATURE_1_AND
#define GNU_PROPERTY_AARCH64_FEATURE_1_AND 0xc0000000u
#endif
#ifndef GNU_PROPERTY_AARCH64_FEATURE_1_BTI
#define GNU_PROPERTY_AARCH64_FEATURE_1_BTI 1u
#endif

#define HOOK_SLOT 16		/* ldr x16, .+8; br x16; .quad hook */
/* Relocated word (at most A64_RELOC_MAX words) and the branch back. */
#define DETOUR_SLOT (HOOK_SLOT + 4 * (A64_RELOC_MAX + 4))
#define REACH ((1UL << 27) - (8UL << 20))	/* B's reach, less libc's size */

static void report(const char *what, uintptr_t at)
{
	struct mmn_log_record rec = {
		.level = MMN_LOG_ERROR, .what = what, .start = at, .end = at + 4,
	};

	mmn_log(&rec);
}

/* One page within B's reach of @near. */
static unsigned char *map_near(uintptr_t near)
{
	return vm_map_near(near, REACH, 1UL << 20);
}

/* One aligned 32-bit store: single-copy atomic. Not a builtin: see patch.c. */
static void store_code_word(uint32_t *where, uint32_t word)
{
	__asm__ volatile("str %w1, %0" : "=m"(*where) : "r"(word) : "memory");
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

struct bti_find {
	uintptr_t addr;
	bool bti;
};

/* Does the object holding @f->addr carry the BTI property note? */
static int bti_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct bti_find *f = arg;
	bool mine = false;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && f->addr - start < ph->p_memsz)
			mine = true;
	}
	if (!mine)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const unsigned char *p, *end;

		if (ph->p_type != PT_GNU_PROPERTY)
			continue;
		p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		/* One NT_GNU_PROPERTY_TYPE_0 note: namesz, descsz, type, "GNU\0", desc. */
		if (end - p < 16)
			break;
		p += 16;
		while (end - p >= 8) {
			uint32_t type, datasz, bits = 0;

			memcpy(&type, p, 4);
			memcpy(&datasz, p + 4, 4);
			if (type == GNU_PROPERTY_AARCH64_FEATURE_1_AND && datasz >= 4 &&
			    end - p >= 12)
				memcpy(&bits, p + 8, 4);
			f->bti |= (bits & GNU_PROPERTY_AARCH64_FEATURE_1_BTI) != 0;
			p += 8 + ((datasz + 7) & ~7u);
		}
	}
	return 1;
}

/* PROT_BTI if the text page at @addr is BTI-guarded (glibc maps it so). */
static int bti_prot(uintptr_t addr)
{
	struct bti_find f = { .addr = addr };

	if (!(getauxval(AT_HWCAP2) & HWCAP2_BTI))
		return 0;
	dl_iterate_phdr(bti_find_cb, &f);
	return f.bti ? PROT_BTI : 0;
}

/* glibc's own word on it (2.32 and later): true only while one thread exists. */
static bool single_threaded(void)
{
	const char *flag = vm_libc_symbol("__libc_single_threaded");

	return flag && __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

/*
 * Does @target's entry branch (B) to a trampoline slot of libmmn's that
 * jumps to @hook? Hooks rechecked after another library's mprotect are
 * left alone when they are.
 */
bool vm_patch_is_ours(const void *target, vm_hook_fn *hook)
{
	uintptr_t t = (uintptr_t)target;
	const uint32_t *slot;
	uint32_t first;
	int64_t off;

	if (!target || (t & 3))
		return false;
	first = *(const uint32_t *)target;
	if ((first & 0xfc000000u) != 0x14000000u)
		return false;	/* not B imm26 */
	off = (int64_t)(int32_t)((first & 0x03ffffffu) << 6) >> 4;	/* sign-extended, times 4 */
	slot = (const uint32_t *)(t + (uintptr_t)off);
	return slot[0] == A64_LDR_X16_8 && slot[1] == A64_BR_X16 &&
	       memcmp(slot + 2, &hook, sizeof(hook)) == 0;
}

/*
 * Make @target branch to @hook (vm.h). With @original, the first word is
 * relocated (a64_reloc.c) into the trampoline, followed by a branch to
 * target + 4, and *@original is where to call the function. @prologue, if
 * given, must be exactly the first word (@prologue_len 4).
 */
/* Hook slots already made (never freed): a re-chain reuses its hook's. */
#define HOOK_SLOTS_MAX 16
static struct {
	vm_hook_fn *hook;
	uint32_t *slot;
} hook_slots[HOOK_SLOTS_MAX];

static uint32_t *hook_slot_find(vm_hook_fn *hook, uintptr_t near)
{
	for (int i = 0; i < HOOK_SLOTS_MAX && hook_slots[i].hook; i++) {
		uint32_t unused;

		if (hook_slots[i].hook == hook &&
		    mmn_a64_encode_b(near, (uintptr_t)hook_slots[i].slot, &unused))
			return hook_slots[i].slot;
	}
	return NULL;
}

static void hook_slot_remember(vm_hook_fn *hook, uint32_t *slot)
{
	for (int i = 0; i < HOOK_SLOTS_MAX; i++) {
		if (!hook_slots[i].hook) {
			hook_slots[i].slot = slot;
			hook_slots[i].hook = hook;
			return;
		}
	}
}

/*
 * vm_patch_detour(), and with @chain, over whatever the entry holds
 * (vm_patch_chain() has decoded it).
 */
static int patch(void *target, vm_hook_fn *hook, const unsigned char *prologue,
		 size_t prologue_len, void **original, bool chain)
{
	uintptr_t t = (uintptr_t)target, page = t & ~(vm_page_size - 1);
	const uint32_t *entry = target;
	const ElfW(Sym) *sym = NULL;
	uint32_t first, branch, *slot, *resume = NULL;
	unsigned char *tramp = NULL;
	const char *why;
	size_t words;
	Dl_info info;
	int bti;
	long ret;

	if (t & 3)
		return -EINVAL;
	if (!dladdr1(target, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || sym->st_size < 4)
		return -ENOEXEC;
	first = entry[0];
	words = sym->st_size / 4;
	if (!chain && mmn_a64_is_foreign_jump(entry, words < 6 ? words : 6))
		return -EEXIST;	/* somebody's jump already */
	if (prologue && (prologue_len != 4 || memcmp(entry, prologue, 4)))
		return -ENOEXEC;	/* not the code the caller expects */
	if (!mmn_a64_cmodx_safe(first) && !single_threaded()) {
		report("patch (aarch64): the first instruction is not a NOP/B/BL/SVC/BRK/ISB, which alone the Arm ARM lets us replace while other threads may run it, and threads exist: not patched (call mmn_process_mm() before creating threads)",
		       t);
		return -EBUSY;
	}

	slot = original ? NULL : hook_slot_find(hook, t);
	if (slot)
		goto write_entry;
	tramp = map_near(t);
	if (!tramp)
		return -ENOMEM;
	slot = (uint32_t *)tramp;
	slot[0] = A64_LDR_X16_8;
	slot[1] = A64_BR_X16;
	memcpy(slot + 2, &hook, sizeof(hook));
	if (original) {
		int n;

		resume = slot + HOOK_SLOT / 4;
		n = mmn_a64_relocate(first, t, resume, A64_RELOC_MAX, &why);

		if (n < 0 || !mmn_a64_encode_b((uintptr_t)(resume + n), t + 4, &resume[n])) {
			report(n < 0 ? why : "patch (aarch64): the way back from the trampoline is out of B's reach",
			       t);
			raw_syscall(SYS_munmap, tramp, vm_page_size, 0, 0, 0, 0);
			return n < 0 ? n : -ERANGE;
		}
	}
	__builtin___clear_cache((char *)tramp, (char *)tramp + DETOUR_SLOT);
	ret = raw_syscall(SYS_mprotect, tramp, vm_page_size, PROT_READ | PROT_EXEC, 0, 0, 0);
	if (ret) {
		raw_syscall(SYS_munmap, tramp, vm_page_size, 0, 0, 0, 0);
		return (int)ret;
	}
	if (!original)
		hook_slot_remember(hook, slot);
write_entry:
	if (!mmn_a64_encode_b(t, (uintptr_t)slot, &branch))
		return -ERANGE;

	/* An aligned word never crosses a page. */
	bti = bti_prot(t);
	ret = raw_syscall(SYS_mprotect, page, vm_page_size,
			  PROT_READ | PROT_WRITE | PROT_EXEC | bti, 0, 0, 0);
	if (ret)
		return (int)ret;
	store_code_word((uint32_t *)t, branch);
	__builtin___clear_cache((char *)t, (char *)t + 4);
	raw_syscall(SYS_mprotect, page, vm_page_size, PROT_READ | PROT_EXEC | bti, 0, 0, 0);
	sync_cores();
	if (original)
		*original = resume;
	return 0;
}

int vm_patch_detour(void *target, vm_hook_fn *hook, const unsigned char *prologue,
		    size_t prologue_len, void **original)
{
	return patch(target, hook, prologue, prologue_len, original, false);
}

/* How many of @target's first words a foreign patch may occupy (0: none readable). */
static size_t entry_words(const void *target)
{
	const ElfW(Sym) *sym = NULL;
	Dl_info info;

	if (!target || ((uintptr_t)target & 3) ||
	    !dladdr1(target, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || sym->st_size < 4)
		return 0;
	return sym->st_size / 4 < 6 ? sym->st_size / 4 : 6;
}

/* Where the foreign patch at @target jumps, or NULL if it is none libmmn can follow. */
static void *foreign_target(const void *target)
{
	size_t words = entry_words(target);
	uint64_t dest;

	if (!words || !mmn_a64_foreign_target(target, words, &dest))
		return NULL;
	return (void *)(uintptr_t)dest;
}

bool vm_patch_is_jump(const void *target)
{
	return foreign_target(target) != NULL;
}

int vm_patch_chain(void *target, vm_hook_fn *hook, void **next, bool *changed)
{
	const uint32_t *entry = target;
	void *dest;
	int err;

	*changed = false;
	if (vm_patch_is_ours(target, hook))
		return 0;
	dest = foreign_target(target);
	if (!dest && mmn_a64_is_foreign_jump(entry, entry_words(target)))
		return -EEXIST;	/* a jump whose destination cannot be known */
	if (dest == VM_ADDR(hook))
		return 0;	/* a foreign patch straight to our hook: nothing to chain */
	if (dest && !mmn_a64_cmodx_safe(entry[0]) && !single_threaded()) {
		report("patch (aarch64): another library patched this entry with a sequence whose first instruction the Arm ARM does not let us replace while other threads may run it, and threads exist: not chained (load it, or call mmn_process_mm(), before creating threads)",
		       (uintptr_t)target);
		return -EBUSY;
	}
	/* Publish the next hop before any thread can take the new branch. */
	__atomic_store_n(next, dest, __ATOMIC_RELEASE);
	err = patch(target, hook, NULL, 0, NULL, dest != NULL);
	if (err)
		return err;
	*changed = true;
	return 0;
}

#else

/* ISO C forbids an empty translation unit. */
typedef int mmn_patch_aarch64_unused;

#endif
