// SPDX-License-Identifier: MIT
/* A module dlopen()ed late by test/coexist/allocator.c: its munmap call goes
 * through its own PLT slot, which binds to an interposer (tcmalloc) if any. */
#include <sys/mman.h>

__attribute__((visibility("default"))) int mmn_test_module_unmap(void *addr, size_t len);

int mmn_test_module_unmap(void *addr, size_t len)
{
	return munmap(addr, len);
}
