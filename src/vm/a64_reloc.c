// SPDX-License-Identifier: MIT
/*
 * Relocation of one A64 instruction (a64.h).
 *
 * Patching an entry on aarch64 replaces exactly one instruction word with a
 * B. A detour (a hook that still calls the original function) runs that
 * word from a trampoline and then branches back to entry + 4, so the word
 * must mean the same at its new address. Most A64 instructions do not
 * depend on where they are; the PC-relative ones are rewritten here into
 * sequences that compute the original target address absolutely:
 *
 *   adr/adrp Xd, T       ldr Xd, lit; b over; lit: .quad T
 *   b T                  ldr x16, lit; br x16; lit: .quad T
 *   bl T                 ldr x16, lit1; ldr x30, lit2; br x16; nop;
 *                        lit1: .quad T; lit2: .quad pc + 4
 *   b.cond/cbz/cbnz/     (same condition, same register) .+8; b end;
 *   tbz/tbnz T           ldr x16, lit; br x16; lit: .quad T; end:
 *   ldr/ldrsw/prfm/      ldr x16, lit; <the same load> [x16]; b end; nop;
 *   SIMD ldr literal T   lit: .quad T; end:
 *
 * bl's return address stays the original pc + 4: the callee returns into
 * the function right after the displaced word, where the detour's branch
 * back would have gone anyway. x16 (IP0) is free at a function entry: the
 * procedure-call standard lets veneers and PLT stubs clobber it, and a
 * `br x16` may land on a `bti c` landing pad under BTI. Literals are read
 * from the output, which the patcher places 8-byte aligned, so each lies at
 * an even word offset.
 */
#include <errno.h>
#include <string.h>

#include "a64.h"

static int64_t sext(uint64_t v, unsigned int bits)
{
	return (int64_t)(v << (64 - bits)) >> (64 - bits);
}

static void put_quad(uint32_t *at, uint64_t v)
{
	at[0] = (uint32_t)v;
	at[1] = (uint32_t)(v >> 32);
}

/* Reserve @n words of output, or fail with -ENOSPC. */
#define NEED(n)                                                                      \
	do {                                                                         \
		if (max < (n)) {                                                     \
			*why = "a64 relocate: output buffer too small";              \
			return -ENOSPC;                                              \
		}                                                                    \
	} while (0)

/* A branch whose target is the patched word itself would enter the patch again. */
#define NOT_SELF(target, name)                                                       \
	do {                                                                         \
		if ((target) == pc) {                                                \
			*why = "a64 relocate: " name " to its own address (it would re-enter the patch)"; \
			return -ELOOP;                                               \
		}                                                                    \
	} while (0)

/* A conditional branch that keeps its condition: taken -> absolute jump to @target. */
static int relocate_cond(uint32_t first, uint64_t target, uint32_t *out)
{
	out[0] = first;			/* cond .+8 */
	out[1] = 0x14000005u;		/* b .+20 (end) */
	out[2] = A64_LDR_X16_8;
	out[3] = A64_BR_X16;
	put_quad(out + 4, target);
	return 6;
}

int mmn_a64_relocate(uint32_t insn, uint64_t pc, uint32_t *out, size_t max, const char **why)
{
	*why = NULL;

	if ((insn & 0x1f000000u) == 0x10000000u) {	/* adr, adrp */
		uint64_t imm = ((uint64_t)((insn >> 5) & 0x7ffffu) << 2) | ((insn >> 29) & 3u);
		uint64_t value = insn & 0x80000000u ?
					 (pc & ~0xfffULL) + (uint64_t)(sext(imm, 21) * 4096) :
					 pc + (uint64_t)sext(imm, 21);

		NEED(4);
		out[0] = 0x58000040u | (insn & 0x1fu);	/* ldr Xd, .+8 */
		out[1] = 0x14000003u;			/* b .+12 */
		put_quad(out + 2, value);
		return 4;
	}
	if ((insn & 0x7c000000u) == 0x14000000u) {	/* b, bl */
		uint64_t target = pc + (uint64_t)(sext(insn & 0x3ffffffu, 26) * 4);

		if (insn & 0x80000000u) {
			NOT_SELF(target, "bl");
			NEED(8);
			out[0] = 0x58000090u;		/* ldr x16, .+16 */
			out[1] = 0x580000beu;		/* ldr x30, .+20 */
			out[2] = A64_BR_X16;
			out[3] = A64_NOP;
			put_quad(out + 4, target);
			put_quad(out + 6, pc + 4);
			return 8;
		}
		NOT_SELF(target, "b");
		NEED(4);
		out[0] = A64_LDR_X16_8;
		out[1] = A64_BR_X16;
		put_quad(out + 2, target);
		return 4;
	}
	if ((insn & 0xff000000u) == 0x54000000u) {	/* b.cond, bc.cond */
		uint64_t target = pc + (uint64_t)(sext((insn >> 5) & 0x7ffffu, 19) * 4);

		NOT_SELF(target, "b.cond");
		NEED(6);
		return relocate_cond((insn & ~(0x7ffffu << 5)) | (2u << 5), target, out);
	}
	if ((insn & 0x7e000000u) == 0x34000000u) {	/* cbz, cbnz */
		uint64_t target = pc + (uint64_t)(sext((insn >> 5) & 0x7ffffu, 19) * 4);

		NOT_SELF(target, "cbz/cbnz");
		NEED(6);
		return relocate_cond((insn & ~(0x7ffffu << 5)) | (2u << 5), target, out);
	}
	if ((insn & 0x7e000000u) == 0x36000000u) {	/* tbz, tbnz */
		uint64_t target = pc + (uint64_t)(sext((insn >> 5) & 0x3fffu, 14) * 4);

		NOT_SELF(target, "tbz/tbnz");
		NEED(6);
		return relocate_cond((insn & ~(0x3fffu << 5)) | (2u << 5), target, out);
	}
	if ((insn & 0x3b000000u) == 0x18000000u) {	/* load literal */
		/* The same load from [x16], by opc (bits 31:30) and V (bit 26). */
		static const uint32_t load_x16[2][4] = {
			{ 0xb9400200u, 0xf9400200u, 0xb9800200u, 0xf9800200u },	/* w, x, sw, prfm */
			{ 0xbd400200u, 0xfd400200u, 0x3dc00200u, 0 },		/* s, d, q, -- */
		};
		uint32_t load = load_x16[(insn >> 26) & 1u][insn >> 30];
		uint64_t target = pc + (uint64_t)(sext((insn >> 5) & 0x7ffffu, 19) * 4);

		if (!load) {
			*why = "a64 relocate: ldr (literal, SIMD&FP) with opc=11 is unallocated";
			return -ENOEXEC;
		}
		NEED(6);
		out[0] = 0x58000090u;			/* ldr x16, .+16 */
		out[1] = load | (insn & 0x1fu);
		out[2] = 0x14000004u;			/* b .+16 (end) */
		out[3] = A64_NOP;
		put_quad(out + 4, target);
		return 6;
	}
	NEED(1);
	out[0] = insn;
	return 1;
}

bool mmn_a64_encode_b(uint64_t from, uint64_t to, uint32_t *insn)
{
	int64_t off = (int64_t)(to - from);

	if ((off & 3) || off < -(INT64_C(1) << 27) || off >= (INT64_C(1) << 27))
		return false;
	*insn = 0x14000000u | ((uint32_t)(off >> 2) & 0x3ffffffu);
	return true;
}

bool mmn_a64_cmodx_safe(uint32_t insn)
{
	return (insn & 0x7c000000u) == 0x14000000u ||	/* b, bl */
	       (insn & 0xffe0001fu) == 0xd4200000u ||	/* brk */
	       (insn & 0xffe0001fu) == 0xd4000001u ||	/* svc */
	       (insn & 0xffe0001fu) == 0xd4000002u ||	/* hvc */
	       (insn & 0xffe0001fu) == 0xd4000003u ||	/* smc */
	       (insn & 0xfffff0ffu) == 0xd50330dfu ||	/* isb */
	       insn == A64_NOP;
}

/* Does @insn write 64-bit register @*reg (set on the first call, reg < 0)? */
static bool builds_register(uint32_t insn, int *reg)
{
	int rd = (int)(insn & 0x1fu);

	if (!((insn & 0xff800000u) == 0xd2800000u ||	/* movz x */
	      (insn & 0xff800000u) == 0x92800000u ||	/* movn x */
	      (insn & 0xff800000u) == 0xf2800000u ||	/* movk x */
	      (insn & 0xff000000u) == 0x58000000u ||	/* ldr x, literal */
	      (insn & 0x9f000000u) == 0x90000000u ||	/* adrp */
	      (insn & 0xff800000u) == 0x91000000u))	/* add x, x, #imm */
		return false;
	if (*reg < 0)
		*reg = rd;
	return rd == *reg && rd != 31;
}

bool mmn_a64_is_foreign_jump(const uint32_t *entry, size_t n)
{
	int reg = -1;

	if (n && (entry[0] & 0xfc000000u) == 0x14000000u)
		return true;	/* b */
	for (size_t i = 0; i < n && i < 6; i++) {
		if ((entry[i] & 0xfffffc1fu) == 0xd61f0000u)	/* br Xn */
			return i > 0 && (int)((entry[i] >> 5) & 0x1fu) == reg;
		if (!builds_register(entry[i], &reg))
			return false;
	}
	return false;
}

/*
 * Apply @insn, which builds register @reg (builds_register() said so) and
 * sits at @pc, to the value *@v computed so far. False for a form whose
 * value cannot be known here (add from another register).
 */
static bool apply_build(uint32_t insn, uint64_t pc, uint64_t *v)
{
	unsigned int shift = ((insn >> 21) & 3u) * 16;
	uint64_t imm16 = (insn >> 5) & 0xffffu, lit;

	switch (insn & 0xff800000u) {
	case 0xd2800000u:	/* movz */
		*v = imm16 << shift;
		return true;
	case 0x92800000u:	/* movn */
		*v = ~(imm16 << shift);
		return true;
	case 0xf2800000u:	/* movk */
		*v = (*v & ~(0xffffULL << shift)) | (imm16 << shift);
		return true;
	case 0x91000000u:	/* add x, x, #imm{, lsl #12}: from the same register only */
		if (((insn >> 5) & 0x1fu) != (insn & 0x1fu))
			return false;
		*v += (uint64_t)((insn >> 10) & 0xfffu) << ((insn & (1u << 22)) ? 12 : 0);
		return true;
	default:
		break;
	}
	if ((insn & 0xff000000u) == 0x58000000u) {	/* ldr x, literal */
		uint64_t at = pc + (uint64_t)(sext((insn >> 5) & 0x7ffffu, 19) * 4);

		memcpy(&lit, (const void *)(uintptr_t)at, sizeof(lit));
		*v = lit;
		return true;
	}
	/* adrp */
	*v = (pc & ~0xfffULL) +
	     (uint64_t)(sext((((insn >> 5) & 0x7ffffu) << 2) | ((insn >> 29) & 3u), 21) * 4096);
	return true;
}

bool mmn_a64_foreign_target(const uint32_t *entry, size_t n, uint64_t *target)
{
	uint64_t pc = (uintptr_t)entry, v = 0;
	int reg = -1;

	if (n && (entry[0] & 0xfc000000u) == 0x14000000u) {	/* b */
		*target = pc + (uint64_t)(sext(entry[0] & 0x3ffffffu, 26) * 4);
		return true;
	}
	for (size_t i = 0; i < n && i < 6; i++) {
		if ((entry[i] & 0xfffffc1fu) == 0xd61f0000u) {	/* br Xn */
			if (i == 0 || (int)((entry[i] >> 5) & 0x1fu) != reg)
				return false;
			*target = v;
			return true;
		}
		if (!builds_register(entry[i], &reg) || !apply_build(entry[i], pc + 4 * i, &v))
			return false;
	}
	return false;
}
