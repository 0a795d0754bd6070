// SPDX-License-Identifier: MIT
/*
 * Interposed symbols: a loaded object that defines munmap, mremap, madvise,
 * mmap, mmap64, sbrk or brk itself (gperftools' tcmalloc, some MPI
 * libraries). Every other object's calls of that name bind to it, not to
 * libc, and it makes the system call itself (tcmalloc: through syscall()),
 * so libc's patched entry never runs.
 *
 * Such a definition is found by walking the loaded objects and asking each
 * for its own definition of the name. Then every GOT slot of that name, in
 * every object, that holds the interposer's address (or a still unresolved
 * lazy PLT stub of its own object) is rewritten to a libmmn wrapper, which
 * opens the invalidation and then calls the interposer: its own hooks
 * (tcmalloc's MallocHook) still run, after libmmn's first pass and before
 * the change. A slot holding anything else belongs to somebody else (UCX's
 * reloc mode) and is left alone. The walk runs at start-up, on every
 * coverage query and after each dlopen() that adds an object
 * (dl_iterate_phdr's adds counter says so cheaply): libc's dlopen is
 * detoured (its known first instructions moved, as for _Fork), so an
 * extension module loaded later binds to the interposer through a slot
 * that is redirected before dlopen() returns. The same detour re-checks
 * libc's patched entries, for a patcher (libucm) whose constructor ran
 * inside that dlopen().
 *
 * Not followed: the interposer's calls of its own definition that do not go
 * through its GOT (a direct, symbolic call), and a definition in the main
 * program (the walk cannot tell it from a program calling libc).
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "raw.h"
#include "vm.h"

enum { I_MUNMAP, I_MREMAP, I_MADVISE, I_MMAP, I_MMAP64, I_SBRK, I_BRK, I_COUNT };

static void *next[I_COUNT];	/* atomic: the interposer, or NULL */

MMN_HOT
static int wrap_munmap(void *a, size_t n)
{
	return vm_do_munmap(&next[I_MUNMAP], a, n);
}

static void *wrap_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
	return vm_do_mremap(&next[I_MREMAP], old, old_len, new_len, flags, new_addr);
}

MMN_WARM
static int wrap_madvise(void *a, size_t n, int advice)
{
	return vm_do_madvise(&next[I_MADVISE], a, n, advice);
}

MMN_WARM
static void *wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
	return vm_do_mmap(&next[I_MMAP], a, n, prot, flags, fd, off);
}

MMN_WARM
static void *wrap_mmap64(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
	return vm_do_mmap(&next[I_MMAP64], a, n, prot, flags, fd, off);
}

static void *wrap_sbrk(intptr_t inc)
{
	return vm_do_sbrk(&next[I_SBRK], inc);
}

static int wrap_brk(void *a)
{
	return vm_do_brk(&next[I_BRK], a);
}

static const struct sym_def {
	const char *name;
	int call;
	vm_hook_fn *wrapper;
} syms[I_COUNT] = {
	[I_MUNMAP] = { "munmap", MMN_CALL_MUNMAP, (vm_hook_fn *)wrap_munmap },
	[I_MREMAP] = { "mremap", MMN_CALL_MREMAP, (vm_hook_fn *)wrap_mremap },
	[I_MADVISE] = { "madvise", MMN_CALL_MADVISE, (vm_hook_fn *)wrap_madvise },
	[I_MMAP] = { "mmap", MMN_CALL_MMAP, (vm_hook_fn *)wrap_mmap },
	[I_MMAP64] = { "mmap64", MMN_CALL_MMAP, (vm_hook_fn *)wrap_mmap64 },
	[I_SBRK] = { "sbrk", VM_CALL_SBRK, (vm_hook_fn *)wrap_sbrk },
	[I_BRK] = { "brk", MMN_CALL_BRK, (vm_hook_fn *)wrap_brk },
};

/* Under walk_lock. */
static pthread_mutex_t walk_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long last_adds, last_subs;
static bool walked;
static struct vm_foreign found[I_COUNT];
static unsigned int slots_redirected[I_COUNT];
static const void *own_base;	/* the object libmmn's code is in */

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/*
 * Is @info's object one of libmmn's own? libmmn itself, and
 * libmmn-preload.so, whose counting munmap/mremap/madvise end in libc's
 * patched entries (it exports mmn_selfcheck_sync).
 */
static bool own_object(void *handle, const void *base)
{
	return base == own_base || (handle && dlsym(handle, "mmn_selfcheck_sync"));
}

/* Pass 1: which objects define the names themselves. */
static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	void *handle;

	(void)size;
	(void)arg;
	if (!info->dlpi_name || !info->dlpi_name[0] || strstr(info->dlpi_name, "linux-vdso") ||
	    strstr(info->dlpi_name, "/libc.so") || strstr(info->dlpi_name, "ld-linux"))
		return 0;
	handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
	if (!handle)
		return 0;
	for (int i = 0; i < I_COUNT; i++) {
		void *def = dlsym(handle, syms[i].name);
		Dl_info di;

		if (!def || !dladdr(def, &di) || di.dli_fbase != (void *)info->dlpi_addr ||
		    own_object(handle, di.dli_fbase))
			continue;
		found[i].call = syms[i].call;
		snprintf(found[i].object, sizeof(found[i].object), "%s",
			 base_name(info->dlpi_name));
	}
	dlclose(handle);
	return 0;
}

/* Make the GOT slot at @slot hold @value; it may lie in read-only RELRO. */
static void write_slot(void **slot, void *value, unsigned long relro_start,
		       unsigned long relro_end)
{
	unsigned long page = (unsigned long)slot & ~(vm_page_size - 1);
	bool ro = relro_start <= (unsigned long)slot && (unsigned long)slot < relro_end;

	if (ro && raw_syscall(SYS_mprotect, page, vm_page_size, PROT_READ | PROT_WRITE, 0, 0,
			      0))
		return;
	__atomic_store_n(slot, value, __ATOMIC_RELEASE);
	if (ro)
		raw_syscall(SYS_mprotect, page, vm_page_size, PROT_READ, 0, 0, 0);
}

static unsigned long dyn_ptr(const struct dl_phdr_info *info, unsigned long p)
{
	/* ld.so relocates most objects' dynamic entries in place; not all. */
	return p < info->dlpi_addr ? p + info->dlpi_addr : p;
}

/* Does @p lie in one of @info's loaded segments (its own PLT, say)? */
static bool in_object(const struct dl_phdr_info *info, const void *p)
{
	unsigned long a = (unsigned long)p;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		unsigned long s = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && s <= a && a < s + ph->p_memsz)
			return true;
	}
	return false;
}

static void redirect_relocs(const struct dl_phdr_info *info, const ElfW(Rela) *rel,
			    size_t n, const ElfW(Sym) *symtab, const char *strtab,
			    unsigned long relro_start, unsigned long relro_end)
{
	for (size_t k = 0; k < n; k++) {
		unsigned long type = ELF64_R_TYPE(rel[k].r_info);
		const char *name;
		void **slot, *cur;

		if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
			continue;
		name = strtab + symtab[ELF64_R_SYM(rel[k].r_info)].st_name;
		for (int i = 0; i < I_COUNT; i++) {
			void *def = __atomic_load_n(&next[i], __ATOMIC_RELAXED);

			if (!def || strcmp(name, syms[i].name))
				continue;
			slot = (void **)(info->dlpi_addr + rel[k].r_offset);
			cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
			if (cur == VM_ADDR(syms[i].wrapper))
				continue;
			/* The interposer itself, or this object's own lazy PLT stub. */
			if (cur == def || (type == R_X86_64_JUMP_SLOT && in_object(info, cur))) {
				write_slot(slot, VM_ADDR(syms[i].wrapper), relro_start, relro_end);
				slots_redirected[i]++;
			}
		}
	}
}

/* Pass 2: route every object's GOT slots of those names through libmmn. */
static int redirect_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long relro_start = 0, relro_end = 0, jmprel = 0, pltrelsz = 0, rela = 0,
		      relasz = 0, symtab = 0, strtab = 0;
	const ElfW(Dyn) *dyn = NULL;

	(void)size;
	(void)arg;
	/*
	 * libmmn's own object too: its code makes raw system calls, and when
	 * it is linked statically that object is the program.
	 */
	if (strstr(info->dlpi_name, "linux-vdso"))
		return 0;
	/*
	 * Nor a sanitizer's runtime: its own calls of its munmap (its
	 * symbolizer's, while it reports and holds its registry lock) would
	 * enter libmmn's instrumented code and report again: a deadlock.
	 */
	if (strstr(info->dlpi_name, "/libtsan.") || strstr(info->dlpi_name, "/libasan.") ||
	    strstr(info->dlpi_name, "/libubsan.") || strstr(info->dlpi_name, "/liblsan.") ||
	    strstr(info->dlpi_name, "libclang_rt."))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
		if (ph->p_type == PT_GNU_RELRO) {
			relro_start = (info->dlpi_addr + ph->p_vaddr) & ~(vm_page_size - 1);
			relro_end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		}
	}
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_JMPREL: jmprel = dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
		case DT_RELA: rela = dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_RELASZ: relasz = dyn->d_un.d_val; break;
		case DT_SYMTAB: symtab = dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_STRTAB: strtab = dyn_ptr(info, dyn->d_un.d_ptr); break;
		default: break;
		}
	}
	if (!symtab || !strtab)
		return 0;
	if (jmprel)
		redirect_relocs(info, (const ElfW(Rela) *)jmprel, pltrelsz / sizeof(ElfW(Rela)),
				(const ElfW(Sym) *)symtab, (const char *)strtab, relro_start,
				relro_end);
	if (rela)
		redirect_relocs(info, (const ElfW(Rela) *)rela, relasz / sizeof(ElfW(Rela)),
				(const ElfW(Sym) *)symtab, (const char *)strtab, relro_start,
				relro_end);
	return 0;
}

static int count_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long long *v = arg;

	(void)size;
	v[0] = info->dlpi_adds;
	v[1] = info->dlpi_subs;
	return 1;
}

void vm_interpose_install(void)
{
	unsigned long long v[2] = { 0, 0 };
	Dl_info di;

#if !defined(__x86_64__)
	return;	/* the relocation types below are x86-64's */
#endif
	dl_iterate_phdr(count_cb, v);
	pthread_mutex_lock(&walk_lock);
	if (walked && v[0] == last_adds && v[1] == last_subs) {
		pthread_mutex_unlock(&walk_lock);
		return;
	}
	walked = true;
	last_adds = v[0];
	last_subs = v[1];
	if (!own_base && dladdr(VM_ADDR(vm_interpose_install), &di))
		own_base = di.dli_fbase;
	dl_iterate_phdr(find_cb, NULL);
	for (int i = 0; i < I_COUNT; i++) {
		void *def, *libc;

		if (!found[i].object[0] || next[i])
			continue;
		/* What the other objects' calls bind to: the first definition. */
		def = dlsym(RTLD_DEFAULT, syms[i].name);
		libc = vm_libc_symbol(syms[i].name);
		if (def && def != libc)
			__atomic_store_n(&next[i], def, __ATOMIC_RELEASE);
	}
	dl_iterate_phdr(redirect_cb, NULL);
	for (int i = 0; i < I_COUNT; i++)
		found[i].present = next[i] != NULL;
	pthread_mutex_unlock(&walk_lock);
}

typedef void *dlopen_fn(const char *, int);

static dlopen_fn *glibc_dlopen;	/* dlopen's moved prologue, then dlopen */
static __thread bool in_dlopen_hook __attribute__((tls_model("initial-exec")));

static void *hook_dlopen(const char *file, int mode)
{
	void *h = glibc_dlopen(file, mode);

	/* The walk itself calls dlopen(RTLD_NOLOAD): no second walk then. */
	if (h && !in_dlopen_hook && !(mode & RTLD_NOLOAD)) {
		int saved = errno;

		in_dlopen_hook = true;
		vm_hooks_recheck();
		vm_interpose_install();
		in_dlopen_hook = false;
		errno = saved;
	}
	return h;
}

int vm_install_dlopen_hook(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__aarch64__)
	/* aarch64: whatever the first instruction is, patch_aarch64.c relocates it. */
	static const unsigned char *const prologue = NULL;
	static const size_t prologue_len = 0;
#else
	/* glibc 2.34-2.41 x86-64: push %rbx; sub $0x30,%rsp */
	static const unsigned char prologue[] = { 0x53, 0x48, 0x83, 0xec, 0x30 };
	static const size_t prologue_len = sizeof(prologue);
#endif
	void *target = vm_libc_symbol("dlopen");
	void *original = NULL;
	int err;

	if (!target)
		return -ENOENT;
	err = vm_patch_detour(target, (vm_hook_fn *)hook_dlopen, prologue, prologue_len,
			      &original);
	if (err)
		return err;
	memcpy(&glibc_dlopen, &original, sizeof(glibc_dlopen));
	return 0;
#else
	(void)hook_dlopen;
	return -ENOSYS;
#endif
}

/* Every interposer found; present: its callers' slots go through libmmn. */
unsigned int vm_interpose_foreign(struct vm_foreign *out, unsigned int max)
{
	unsigned int n = 0;

	pthread_mutex_lock(&walk_lock);
	for (int i = 0; i < I_COUNT && n < max; i++)
		if (found[i].object[0])
			out[n++] = found[i];
	pthread_mutex_unlock(&walk_lock);
	return n;
}
