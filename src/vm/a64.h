/* SPDX-License-Identifier: MIT */
/*
 * A64 (64-bit Arm) instruction handling for entry patching: the relocator of
 * the one instruction a patch displaces, and the encodings the patcher
 * writes. Pure computation on instruction words, so it builds (and its test
 * runs) on every architecture; src/vm/patch_aarch64.c uses it on aarch64.
 */
#ifndef MMN_VM_A64_H
#define MMN_VM_A64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hidden.h"

#define A64_NOP 0xd503201fu
#define A64_BR_X16 0xd61f0200u
#define A64_LDR_X16_8 0x58000050u	/* ldr x16, .+8 */

/* The most words mmn_a64_relocate() writes for one instruction. */
#define A64_RELOC_MAX 8

/*
 * Rewrite @insn, which was at address @pc, into position-independent code
 * with the same effect when run from anywhere, then falling through to what
 * follows it. PC-relative instructions (adr, adrp, b, bl, b.cond, cbz/cbnz,
 * tbz/tbnz, ldr/ldrsw/prfm literal, SIMD&FP ldr literal) become absolute
 * sequences that may use x16, which is free at a function entry (AAPCS64
 * lets veneers clobber it); literals in the output sit at even word offsets.
 * Anything else is copied.
 *
 * Return: the number of words written to @out (at most @max), or -ENOSPC when
 * @max is too small, -ENOEXEC for an unallocated encoding of a PC-relative
 * class, -ELOOP for a branch to @pc itself (it would re-enter the patch);
 * then *@why names the instruction and the reason (a constant).
 */
MMN_HIDDEN int mmn_a64_relocate(uint32_t insn, uint64_t pc, uint32_t *out, size_t max,
				const char **why);

/* `b` at @from to @to, or false when @to is beyond +-128 MiB or unaligned. */
MMN_HIDDEN bool mmn_a64_encode_b(uint64_t from, uint64_t to, uint32_t *insn);

/*
 * May @insn be replaced by a B while another thread executes it? The Arm ARM
 * ("Concurrent modification and execution of instructions") guarantees the
 * old-or-new outcome only when both words are one of B, BL, BRK, HVC, ISB,
 * NOP, SMC or SVC.
 */
MMN_HIDDEN bool mmn_a64_cmodx_safe(uint32_t insn);

/*
 * Does the code at @entry (@n words readable) look like another library's
 * patch: a B, an ldr-literal of x16/x17 followed by br, or a movz/movk
 * sequence building a register that a br then jumps through?
 */
MMN_HIDDEN bool mmn_a64_is_foreign_jump(const uint32_t *entry, size_t n);

/*
 * Where such a patch at @entry (@n words readable, at their real address:
 * an ldr literal is read from memory) jumps: a B's target, or the value the
 * movz/movn/movk/ldr-literal/adrp/add sequence leaves in the register the
 * br uses. False when @entry is not one (mmn_a64_is_foreign_jump() false)
 * or its value cannot be computed.
 */
MMN_HIDDEN bool mmn_a64_foreign_target(const uint32_t *entry, size_t n, uint64_t *target);

#endif /* MMN_VM_A64_H */
