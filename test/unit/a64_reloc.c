// SPDX-License-Identifier: MIT
/*
 * The A64 relocator (src/vm/a64_reloc.c) on each PC-relative instruction
 * class: the exact words it writes, and its exact refusals (errno and
 * reason). The input encodings were checked with aarch64-linux-gnu-objdump.
 * Pure computation, so this runs on every host; on aarch64 (natively or
 * under qemu-user) it also runs original and relocated code and compares
 * their results.
 */
#include <string.h>
#include <sys/mman.h>

#include "../src/vm/a64.h"
#include "harness.h"

#define PC 0x0000ffff80001234ULL	/* where the instruction "was" */
#define PAGE_OF(x) ((x) & ~0xfffULL)
#define LO(q) ((uint32_t)(q))
#define HI(q) ((uint32_t)((q) >> 32))

struct reloc_case {
	const char *name;
	uint32_t insn;
	int n;
	uint32_t out[A64_RELOC_MAX];
};

static const struct reloc_case cases[] = {
	{ "adr x3, .+0x1234", 0x100091a3, 4,
	  { 0x58000043, 0x14000003, LO(PC + 0x1234), HI(PC + 0x1234) } },
	{ "adrp x3, .+5 pages", 0xb0000023, 4,
	  { 0x58000043, 0x14000003, LO(PAGE_OF(PC) + 0x5000), HI(PAGE_OF(PC) + 0x5000) } },
	{ "adrp x0, .-1 page", 0xf0ffffe0, 4,
	  { 0x58000040, 0x14000003, LO(PAGE_OF(PC) - 0x1000), HI(PAGE_OF(PC) - 0x1000) } },
	{ "b .-0x1000", 0x17fffc00, 4,
	  { 0x58000050, 0xd61f0200, LO(PC - 0x1000), HI(PC - 0x1000) } },
	{ "bl .+0x1000", 0x94000400, 8,
	  { 0x58000090, 0x580000be, 0xd61f0200, 0xd503201f, LO(PC + 0x1000), HI(PC + 0x1000),
	    LO(PC + 4), HI(PC + 4) } },
	{ "b.eq .-0x100", 0x54fff800, 6,
	  { 0x54000040, 0x14000005, 0x58000050, 0xd61f0200, LO(PC - 0x100), HI(PC - 0x100) } },
	{ "cbz x0, .+0x200", 0xb4001000, 6,
	  { 0xb4000040, 0x14000005, 0x58000050, 0xd61f0200, LO(PC + 0x200), HI(PC + 0x200) } },
	{ "cbnz x7, .+8", 0xb5000047, 6,
	  { 0xb5000047, 0x14000005, 0x58000050, 0xd61f0200, LO(PC + 8), HI(PC + 8) } },
	{ "tbnz w1, #3, .-8", 0x371fffc1, 6,
	  { 0x37180041, 0x14000005, 0x58000050, 0xd61f0200, LO(PC - 8), HI(PC - 8) } },
	{ "tbz w3, #5, .+8", 0x36280043, 6,
	  { 0x36280043, 0x14000005, 0x58000050, 0xd61f0200, LO(PC + 8), HI(PC + 8) } },
	{ "ldr x4, .+0x40", 0x58000204, 6,
	  { 0x58000090, 0xf9400204, 0x14000004, 0xd503201f, LO(PC + 0x40), HI(PC + 0x40) } },
	{ "ldr w4, .-0x40", 0x18fffe04, 6,
	  { 0x58000090, 0xb9400204, 0x14000004, 0xd503201f, LO(PC - 0x40), HI(PC - 0x40) } },
	{ "ldrsw x4, .+8", 0x98000044, 6,
	  { 0x58000090, 0xb9800204, 0x14000004, 0xd503201f, LO(PC + 8), HI(PC + 8) } },
	{ "prfm pldl1keep, .+0x100", 0xd8000800, 6,
	  { 0x58000090, 0xf9800200, 0x14000004, 0xd503201f, LO(PC + 0x100), HI(PC + 0x100) } },
	{ "ldr s4, .+8", 0x1c000044, 6,
	  { 0x58000090, 0xbd400204, 0x14000004, 0xd503201f, LO(PC + 8), HI(PC + 8) } },
	{ "ldr d4, .+8", 0x5c000044, 6,
	  { 0x58000090, 0xfd400204, 0x14000004, 0xd503201f, LO(PC + 8), HI(PC + 8) } },
	{ "ldr q4, .+16", 0x9c000084, 6,
	  { 0x58000090, 0x3dc00204, 0x14000004, 0xd503201f, LO(PC + 16), HI(PC + 16) } },
	/* Position-independent: copied as they are. */
	{ "nop", 0xd503201f, 1, { 0xd503201f } },
	{ "stp x29, x30, [sp, #-80]!", 0xa9bb7bfd, 1, { 0xa9bb7bfd } },
	{ "mrs x5, tpidr_el0", 0xd53bd045, 1, { 0xd53bd045 } },
	{ "svc #0", 0xd4000001, 1, { 0xd4000001 } },
};

TEST(each_class_exact_words)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reloc_case *c = &cases[i];
		uint32_t out[A64_RELOC_MAX + 1];
		const char *why = "unset";
		int n;

		memset(out, 0xee, sizeof(out));
		n = mmn_a64_relocate(c->insn, PC, out, A64_RELOC_MAX, &why);
		printf("  %-28s -> %d word(s)\n", c->name, n);
		expect_eq(n, c->n);
		expect_eq_ptr(why, NULL);
		for (int w = 0; w < c->n; w++)
			if (out[w] != c->out[w]) {
				printf("    %s: word %d is %#x, expected %#x\n", c->name, w, out[w],
				       c->out[w]);
				expect_eq_ul(out[w], c->out[w]);
			}
		/* Nothing written beyond what it reports. */
		expect_eq_ul(out[c->n], 0xeeeeeeeeUL);
		/* Exactly enough room is enough; one word less is refused. */
		expect_eq(mmn_a64_relocate(c->insn, PC, out, (size_t)c->n, &why), c->n);
		expect_eq(mmn_a64_relocate(c->insn, PC, out, (size_t)c->n - 1, &why), -ENOSPC);
		expect_eq(strcmp(why, "a64 relocate: output buffer too small"), 0);
	}
}

struct refusal {
	uint32_t insn;
	int err;
	const char *why;
};

TEST(exact_refusals)
{
	static const struct refusal r[] = {
		{ 0xdc000044, -ENOEXEC,
		  "a64 relocate: ldr (literal, SIMD&FP) with opc=11 is unallocated" },
		{ 0x14000000, -ELOOP,
		  "a64 relocate: b to its own address (it would re-enter the patch)" },
		{ 0x94000000, -ELOOP,
		  "a64 relocate: bl to its own address (it would re-enter the patch)" },
		{ 0x54000001, -ELOOP,
		  "a64 relocate: b.cond to its own address (it would re-enter the patch)" },
		{ 0xb4000000, -ELOOP,
		  "a64 relocate: cbz/cbnz to its own address (it would re-enter the patch)" },
		{ 0x36000000, -ELOOP,
		  "a64 relocate: tbz/tbnz to its own address (it would re-enter the patch)" },
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		uint32_t out[A64_RELOC_MAX];
		const char *why = NULL;

		expect_eq(mmn_a64_relocate(r[i].insn, PC, out, A64_RELOC_MAX, &why), r[i].err);
		assert_true(why != NULL);
		if (strcmp(why, r[i].why)) {
			printf("    %#x: reason \"%s\"\n", r[i].insn, why);
			expect_eq(strcmp(why, r[i].why), 0);
		}
	}
}

TEST(branch_encoding_and_reach)
{
	uint32_t insn = 0;

	expect_true(mmn_a64_encode_b(PC, PC + 0x1000, &insn));
	expect_eq_ul(insn, 0x14000400UL);
	expect_true(mmn_a64_encode_b(PC, PC - 0x1000, &insn));
	expect_eq_ul(insn, 0x17fffc00UL);
	expect_true(mmn_a64_encode_b(PC, PC + (1ULL << 27) - 4, &insn));
	expect_eq_ul(insn, 0x15ffffffUL);
	expect_true(mmn_a64_encode_b(PC, PC - (1ULL << 27), &insn));
	expect_eq_ul(insn, 0x16000000UL);
	insn = 0x12345678;
	expect_false(mmn_a64_encode_b(PC, PC + (1ULL << 27), &insn));
	expect_false(mmn_a64_encode_b(PC, PC - (1ULL << 27) - 4, &insn));
	expect_false(mmn_a64_encode_b(PC, PC + 2, &insn));
	expect_eq_ul(insn, 0x12345678UL);	/* untouched when refused */
}

TEST(concurrent_modification_set)
{
	/* B, BL, BRK, HVC, ISB, NOP, SMC, SVC: and nothing else. */
	static const uint32_t safe[] = { 0x14000400, 0x94000400, 0xd4200000, 0xd4000002,
					 0xd5033fdf, 0xd503201f, 0xd4000003, 0xd4000001 };
	static const uint32_t unsafe[] = { 0xa9bb7bfd, 0xd53bd045, 0xd2801ae8, 0xaa0003e1,
					   0xd4000000, 0xd503233f /* paciasp */,
					   0xd503245f /* bti c */, 0x54000040 };

	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		expect_true(mmn_a64_cmodx_safe(safe[i]));
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		expect_false(mmn_a64_cmodx_safe(unsafe[i]));
}

TEST(foreign_jumps)
{
	/* glibc 2.36's munmap, mremap and _Fork entries: not jumps. */
	static const uint32_t munmap_entry[] = { 0xd503201f, 0xd2801ae8, 0xd4000001,
						 0xb13ffc1f, 0x54000042, 0xd65f03c0 };
	static const uint32_t mremap_entry[] = { 0xa9bb7bfd, 0xf00005a5, 0xf94734a5 };
	static const uint32_t b_entry[] = { 0x14000400 };
	static const uint32_t ldr_br[] = { 0x58000050, 0xd61f0200 };
	/* movz x17, #0x1234, lsl #48; movk x17, ..., lsl #32; movk lsl #16; movk; br x17 */
	static const uint32_t movk_br[] = { 0xd2e24691, 0xf2c24691, 0xf2a24691, 0xf2824691,
					    0xd61f0220 };
	/* The same, but br through another register: not a patch pattern. */
	static const uint32_t movk_br_other[] = { 0xd2e24691, 0xf2c24691, 0xd61f0200 };

	expect_false(mmn_a64_is_foreign_jump(munmap_entry, 6));
	expect_false(mmn_a64_is_foreign_jump(mremap_entry, 3));
	expect_true(mmn_a64_is_foreign_jump(b_entry, 1));
	expect_true(mmn_a64_is_foreign_jump(ldr_br, 2));
	expect_false(mmn_a64_is_foreign_jump(ldr_br, 1));	/* br beyond the function */
	expect_true(mmn_a64_is_foreign_jump(movk_br, 5));
	expect_false(mmn_a64_is_foreign_jump(movk_br_other, 3));
}

/* Where each patch form jumps (what libmmn chains to). */
TEST(foreign_targets)
{
	static const uint32_t munmap_entry[] = { 0xd503201f, 0xd2801ae8, 0xd4000001,
						 0xb13ffc1f, 0x54000042, 0xd65f03c0 };
	static const uint32_t b_entry[] = { 0x14000400 };	/* b .+0x1000 */
	static const uint32_t b_back[] = { 0x17ffffff };	/* b .-4 */
	/* UCX's, libfabric's and Open MPI's shape: movz/movk x17 x4; br x17 */
	static const uint32_t movk_br[] = { 0xd2e24691, 0xf2c24691, 0xf2a24691, 0xf2824691,
					    0xd61f0220 };
	static const uint32_t movk_br_other[] = { 0xd2e24691, 0xf2c24691, 0xd61f0200 };
	/* movn x16, #0; movk x16, #0xbeef; br x16 */
	static const uint32_t movn_br[] = { 0x92800010, 0xf297ddf0, 0xd61f0200 };
	/* adrp x16, .+1 page; add x16, x16, #0x10; br x16 */
	static const uint32_t adrp_add_br[] = { 0xb0000010, 0x91004210, 0xd61f0200 };
	/* add x16, x17, #0x10 (another register): unknown value */
	static const uint32_t add_other[] = { 0xd2800011, 0x91004230, 0xd61f0200 };
	/* ldr x16, .+8; br x16; .quad 0x0123456789abcdef */
	uint64_t ldr_br[2] = { 0 };
	uint32_t words[2] = { 0x58000050, 0xd61f0200 };
	uint64_t lit = 0x0123456789abcdefULL, t = 0;

	memcpy(&ldr_br[0], words, sizeof(words));
	ldr_br[1] = lit;
	expect_false(mmn_a64_foreign_target(munmap_entry, 6, &t));
	expect_true(mmn_a64_foreign_target(b_entry, 1, &t));
	expect_eq_ul(t, (uintptr_t)b_entry + 0x1000);
	expect_true(mmn_a64_foreign_target(b_back, 1, &t));
	expect_eq_ul(t, (uintptr_t)b_back - 4);
	expect_true(mmn_a64_foreign_target(movk_br, 5, &t));
	expect_eq_ul(t, 0x1234123412341234UL);
	expect_false(mmn_a64_foreign_target(movk_br, 4, &t));	/* no br in reach */
	expect_false(mmn_a64_foreign_target(movk_br_other, 3, &t));
	expect_true(mmn_a64_foreign_target(movn_br, 3, &t));
	expect_eq_ul(t, 0xffffffffffffbeefUL);
	expect_true(mmn_a64_foreign_target(adrp_add_br, 3, &t));
	expect_eq_ul(t, ((uintptr_t)adrp_add_br & ~0xfffUL) + 0x1000 + 0x10);
	expect_false(mmn_a64_foreign_target(add_other, 3, &t));
	expect_true(mmn_a64_foreign_target((const uint32_t *)ldr_br, 2, &t));
	expect_eq_ul(t, lit);
}

#if defined(__aarch64__)
typedef long code_fn(long);

/*
 * Run @code (its first word at @at words into a fresh page) directly, and
 * through its relocated first word followed by a branch back, with @arg;
 * both must return @want.
 */
static void run_both(const char *name, const uint32_t *code, size_t words, size_t at,
		     long arg, long want)
{
	size_t page = 65536;
	unsigned char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *orig, *tramp;
	const char *why;
	code_fn *f, *g;
	int n;

	assert_true(m != MAP_FAILED);
	orig = (uint32_t *)m + at;
	tramp = (uint32_t *)(m + page);
	memcpy(orig, code, words * 4);
	n = mmn_a64_relocate(orig[0], (uintptr_t)orig, tramp, A64_RELOC_MAX, &why);
	assert_true(n > 0);
	assert_true(mmn_a64_encode_b((uintptr_t)(tramp + n), (uintptr_t)(orig + 1), &tramp[n]));
	__builtin___clear_cache((char *)m, (char *)m + 2 * page);
	assert_eq(mprotect(m, 2 * page, PROT_READ | PROT_EXEC), 0);
	memcpy(&f, &orig, sizeof(f));
	memcpy(&g, &tramp, sizeof(g));
	printf("  run %-26s arg %ld: original %ld, relocated %ld\n", name, arg, f(arg),
	       g(arg));
	expect_eq(f(arg), want);
	expect_eq(g(arg), want);
	munmap(m, 2 * page);
}

TEST(relocated_code_runs_the_same)
{
	/* adr x0, .+16; ret (result relative to the page: subtract in C) */
	static const uint32_t ldr_x[] = { 0x58000040 /* ldr x0, .+8 */, 0xd65f03c0,
					  0x55667788, 0x11223344 };
	static const uint32_t ldrsw[] = { 0x98000040 /* ldrsw x0, .+8 */, 0xd65f03c0,
					  0xfffffff6 };
	static const uint32_t b_fwd[] = { 0x14000003 /* b .+12 */, 0xd2800020 /* mov x0,#1 */,
					  0xd65f03c0, 0xd2800040 /* mov x0,#2 */, 0xd65f03c0 };
	static const uint32_t cbz[] = { 0xb4000060 /* cbz x0, .+12 */, 0xd2800020, 0xd65f03c0,
					0xd2800040, 0xd65f03c0 };
	static const uint32_t tbnz[] = { 0x37180060 /* tbnz w0, #3, .+12 */, 0xd2800020,
					 0xd65f03c0, 0xd2800040, 0xd65f03c0 };
	/* adr x0, .+12; ldr x0, [x0]; ret; .quad 77 */
	static const uint32_t adr[] = { 0x10000060, 0xf9400000, 0xd65f03c0, 77, 0 };
	/* adrp x0, .+0 pages; ldr x0, [x0, #0x100]; ret -- reads the page's word 64 */
	static const uint32_t adrp[] = { 0x90000000, 0xf9408000, 0xd65f03c0 };

	run_both("ldr x0, literal", ldr_x, 4, 0, 0, 0x1122334455667788L);
	run_both("ldrsw x0, literal", ldrsw, 3, 2, 0, -10);
	run_both("b forward", b_fwd, 5, 4, 0, 2);
	run_both("cbz x0 (taken)", cbz, 5, 8, 0, 2);
	run_both("cbz x0 (not taken)", cbz, 5, 8, 5, 1);
	run_both("tbnz w0, #3 (taken)", tbnz, 5, 16, 8, 2);
	run_both("tbnz w0, #3 (not taken)", tbnz, 5, 16, 7, 1);
	run_both("adr x0", adr, 5, 20, 0, 77);
	{
		uint32_t adrp_page[66] = { 0 };

		memcpy(adrp_page, adrp, sizeof(adrp));
		adrp_page[64] = 4242;	/* byte 0x100 of the page */
		run_both("adrp x0", adrp_page, 66, 0, 0, 4242);
	}
}
#endif

int main(void)
{
	RUN(each_class_exact_words);
	RUN(exact_refusals);
	RUN(branch_encoding_and_reach);
	RUN(concurrent_modification_set);
	RUN(foreign_jumps);
	RUN(foreign_targets);
#if defined(__aarch64__)
	RUN(relocated_code_runs_the_same);
#else
	printf("  (not aarch64: the relocated code is checked by words only)\n");
#endif
	return test_report();
}
