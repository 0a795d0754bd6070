// SPDX-License-Identifier: MIT
/*
 * The gadget pointer of raw.h. Every module that links the system layer
 * (libmmn, libmmn-preload.so) has its own hidden copy. Only libmmn's is ever
 * set (src/vm/sud.c, once syscall user dispatch is on), so libmmn's raw
 * system calls run from the range dispatch lets through; in any other module
 * it stays NULL and raw_syscall() uses its own `syscall` instruction.
 */
#include "hidden.h"
#include "raw.h"

void *vm_syscall_insn MMN_HOT_DATA;
