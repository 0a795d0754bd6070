// SPDX-License-Identifier: MIT
/*
 * Every public function of include/mmn/rcache.h with every invalid input:
 * mmn_rcache_new with NULL or inconsistent configurations (no devices, too
 * many, devices without reg or dereg_start, bad alignments), get with NULL
 * arguments, length 0 and wrapping ranges, put / flush / get_stats / destroy
 * with NULL, destroy while a registration is held, the registration
 * accessors with bad indices, and the fake / mlock / io_uring constructors
 * with NULL. Each row asserts the documented errno and is printed as it
 * runs, in the format of bad_input.c; a valid call after the bad ones shows
 * that nothing changed.
 */
#include <unistd.h>

#include <mmn/rcache.h>
#include "rcache_fake.h"

#include "scenario_util.h"
#include "bad_input_table.h"

static struct mmn_rcache_stats cache_stats(struct mmn_rcache *c)
{
	struct mmn_rcache_stats st;

	memset(&st, 0, sizeof(st));
	expect_eq(mmn_rcache_get_stats(c, &st), 0);
	return st;
}

static int nop_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	(void)dev;
	(void)start;
	(void)length;
	(void)priv;
	return 0;
}

static void nop_dereg(void *dev, void *priv)
{
	(void)dev;
	(void)priv;
}

static const struct mmn_rcache_dev_ops no_reg_ops = { .dereg_start = nop_dereg };
static const struct mmn_rcache_dev_ops no_start_ops = { .reg = nop_reg,
							 .dereg_finish = nop_dereg };
static const struct mmn_rcache_dev_ops nop_ops = { .reg = nop_reg, .dereg_start = nop_dereg };

/* mmn_rcache_new with @cfg must fail and leave *cachep alone. */
static int new_fails(const struct mmn_rcache_config *cfg)
{
	struct mmn_rcache *c = (struct mmn_rcache *)&c;
	int ret = mmn_rcache_new(cfg, &c);

	if (ret == 0) {
		expect_eq(mmn_rcache_destroy(c), 0);
		return 0;
	}
	expect_eq_ptr(c, &c);
	return ret;
}

static char buf[1 << 16] __attribute__((aligned(4096)));

TEST(rcache_bad_input_new)
{
	struct mmn_rcache_dev devs[MMN_RCACHE_MAX_DEVS + 1];
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	struct mmn_rcache_config cfg;
	struct mmn_rcache *c;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i <= MMN_RCACHE_MAX_DEVS; i++)
		devs[i] = (struct mmn_rcache_dev){ .name = "nop", .ops = &nop_ops };
	cfg = (struct mmn_rcache_config){ .mm = mm, .devs = devs, .nr_devs = 1 };

	ROW("mmn_rcache_new", "cfg NULL", new_fails(NULL), -EINVAL);
	ROW("mmn_rcache_new", "cachep NULL", mmn_rcache_new(&cfg, NULL), -EINVAL);
	ROW("mmn_rcache_new", "both NULL", mmn_rcache_new(NULL, NULL), -EINVAL);
	cfg.devs = NULL;
	ROW("mmn_rcache_new", "devs NULL", new_fails(&cfg), -EINVAL);
	cfg.devs = devs;
	cfg.nr_devs = 0;
	ROW("mmn_rcache_new", "nr_devs 0", new_fails(&cfg), -EINVAL);
	cfg.nr_devs = MMN_RCACHE_MAX_DEVS + 1;
	ROW("mmn_rcache_new", "nr_devs MMN_RCACHE_MAX_DEVS + 1", new_fails(&cfg), -EINVAL);
	cfg.nr_devs = UINT_MAX;
	ROW("mmn_rcache_new", "nr_devs UINT_MAX", new_fails(&cfg), -EINVAL);
	cfg.nr_devs = 2;
	devs[1].ops = NULL;
	ROW("mmn_rcache_new", "second device: ops NULL", new_fails(&cfg), -EINVAL);
	devs[1].ops = &no_reg_ops;
	ROW("mmn_rcache_new", "second device: no reg", new_fails(&cfg), -EINVAL);
	devs[1].ops = &no_start_ops;
	ROW("mmn_rcache_new", "second device: no dereg_start", new_fails(&cfg), -EINVAL);
	devs[1].ops = &nop_ops;
	cfg.alignment = 3;
	ROW("mmn_rcache_new", "alignment 3", new_fails(&cfg), -EINVAL);
	cfg.alignment = page / 2;
	ROW("mmn_rcache_new", "alignment page/2 (below the page)", new_fails(&cfg), -EINVAL);
	cfg.alignment = page * 3;
	ROW("mmn_rcache_new", "alignment 3 pages (not a power of 2)", new_fails(&cfg), -EINVAL);
	cfg.alignment = ULONG_MAX;
	ROW("mmn_rcache_new", "alignment ULONG_MAX", new_fails(&cfg), -EINVAL);
	cfg.alignment = 0;
	cfg.nr_devs = MMN_RCACHE_MAX_DEVS;
	ROW("mmn_rcache_new", "nr_devs MMN_RCACHE_MAX_DEVS (valid)", new_fails(&cfg), 0);
	cfg.nr_devs = 1;
	cfg.alignment = page * 2;
	ROW("mmn_rcache_new", "alignment 2 pages (valid)", mmn_rcache_new(&cfg, &c), 0);
	ROW("mmn_rcache_destroy", "cache NULL (nothing to do)", mmn_rcache_destroy(NULL), 0);
	ROW("mmn_rcache_destroy", "empty (valid)", mmn_rcache_destroy(c), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

TEST(rcache_bad_input_calls)
{
	struct mmn_rcache_reg *reg = NULL, *held, *sentinel = (struct mmn_rcache_reg *)&reg;
	struct mmn_rcache_dev devs[2];
	struct mmn_rcache_config cfg;
	struct mmn_rcache_stats st;
	struct mmn_rcache_fake *fake;
	struct mmn_rcache_fake_stats fst;
	struct mmn_rcache *c;
	struct mmn_mm *mm;
	unsigned long a = (unsigned long)buf;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_rcache_fake_new(NULL, &fake), 0);
	mmn_rcache_fake_dev(fake, &devs[0]);
	devs[1] = (struct mmn_rcache_dev){ .name = "nop", .ops = &nop_ops, .priv_size = 0 };
	cfg = (struct mmn_rcache_config){ .mm = mm, .devs = devs, .nr_devs = 2 };
	assert_eq(mmn_rcache_new(&cfg, &c), 0);

	reg = sentinel;
	ROW("mmn_rcache_get", "cache NULL", mmn_rcache_get(NULL, a, 4096, &reg), -EINVAL);
	ROW("mmn_rcache_get", "regp NULL", mmn_rcache_get(c, a, 4096, NULL), -EINVAL);
	ROW("mmn_rcache_get", "len 0", mmn_rcache_get(c, a, 0, &reg), -EINVAL);
	ROW("mmn_rcache_get", "addr 0, len 0", mmn_rcache_get(c, 0, 0, &reg), -EINVAL);
	ROW("mmn_rcache_get", "addr ULONG_MAX, len 2", mmn_rcache_get(c, ULONG_MAX, 2, &reg),
	    -EOVERFLOW);
	ROW("mmn_rcache_get", "addr 2, len ULONG_MAX", mmn_rcache_get(c, 2, ULONG_MAX, &reg),
	    -EOVERFLOW);
	ROW("mmn_rcache_get", "addr ULONG_MAX, len ULONG_MAX",
	    mmn_rcache_get(c, ULONG_MAX, ULONG_MAX, &reg), -EOVERFLOW);
	ROW("mmn_rcache_get", "order: len 0 at ULONG_MAX", mmn_rcache_get(c, ULONG_MAX, 0, &reg),
	    -EINVAL);
	ROW("mmn_rcache_get", "order: cache NULL + wrap", mmn_rcache_get(NULL, ULONG_MAX, 2, &reg),
	    -EINVAL);
	mmn_rcache_fake_fail_next(fake, 1, -EFAULT);
	ROW("mmn_rcache_get", "device refuses with -EFAULT", mmn_rcache_get(c, a, 4096, &reg),
	    -EFAULT);
	expect_eq_ptr(reg, sentinel);
	st = cache_stats(c);
	expect_eq(st.failures, 1);
	expect_eq(st.registrations, 0);
	expect_eq_ul(st.regions, 0);
	mmn_rcache_fake_get_stats(fake, &fst);
	expect_eq(fst.live, 0);

	ROW_VOID("mmn_rcache_put", "reg NULL", mmn_rcache_put(NULL),
		 cache_stats(c).regions == 0, "no crash");
	ROW("mmn_rcache_flush", "cache NULL", mmn_rcache_flush(NULL), -EINVAL);
	ROW("mmn_rcache_get_stats", "cache NULL", mmn_rcache_get_stats(NULL, &st), -EINVAL);
	ROW("mmn_rcache_get_stats", "stats NULL", mmn_rcache_get_stats(c, NULL), -EINVAL);
	ROW("mmn_rcache_get_stats", "both NULL", mmn_rcache_get_stats(NULL, NULL), -EINVAL);

	/* State intact: a valid get registers once, on both devices. */
	ROW("mmn_rcache_get", "one page of a buffer (valid)", mmn_rcache_get(c, a, 4096, &held), 0);
	st = cache_stats(c);
	expect_eq(st.misses, 1);
	expect_eq(st.registrations, 1);
	expect_eq_ul(st.regions, 1);
	ROW("mmn_rcache_reg_priv", "dev 0 (fake, valid): non-NULL",
	    mmn_rcache_reg_priv(held, 0) != NULL, true);
	ROW("mmn_rcache_reg_priv", "dev 1 (priv_size 0): NULL",
	    mmn_rcache_reg_priv(held, 1) == NULL, true);
	ROW("mmn_rcache_reg_priv", "dev 2 (bad index): NULL", mmn_rcache_reg_priv(held, 2) == NULL,
	    true);
	ROW("mmn_rcache_reg_priv", "dev UINT_MAX (bad index): NULL",
	    mmn_rcache_reg_priv(held, UINT_MAX) == NULL, true);
	ROW("mmn_rcache_reg_priv", "reg NULL: NULL",
	    mmn_rcache_reg_priv(NULL, 0) == NULL, true);
	ROW("mmn_rcache_reg_valid", "reg NULL: false", mmn_rcache_reg_valid(NULL),
	    false);
	ROW("mmn_rcache_reg_valid", "held (valid): true", mmn_rcache_reg_valid(held), true);
	ROW("mmn_rcache_destroy", "a registration held", mmn_rcache_destroy(c), -EBUSY);
	st = cache_stats(c);
	expect_eq_ul(st.regions, 1);
	expect_eq(st.deregistrations, 0);
	expect_true(mmn_rcache_reg_valid(held));
	expect_eq_ul(mmn_rcache_reg_start(held), a);
	expect_eq_ul(mmn_rcache_reg_length(held), 4096);
	ROW("mmn_rcache_flush", "only a held one: drops none", mmn_rcache_flush(c), 0);
	mmn_rcache_put(held);
	ROW("mmn_rcache_get", "same page again: a hit (valid)", mmn_rcache_get(c, a, 4096, &reg), 0);
	expect_eq_ptr(reg, held);
	expect_eq(cache_stats(c).hits, 1);
	mmn_rcache_put(reg);
	ROW("mmn_rcache_flush", "one unused (valid): drops 1", mmn_rcache_flush(c), 1);
	ROW("mmn_rcache_destroy", "nothing held (valid)", mmn_rcache_destroy(c), 0);
	mmn_rcache_fake_get_stats(fake, &fst);
	expect_eq(fst.regs, 1);
	expect_eq(fst.live, 0);
	mmn_rcache_fake_destroy(fake);
	expect_eq(mmn_mm_destroy(mm), 0);
}

TEST(rcache_bad_input_backends)
{
	struct mmn_rcache_mlock *ml;
	struct mmn_rcache_uring *u;
	struct mmn_rcache_fake *f;
	struct mmn_rcache_fake_config fcfg = { 0 };
	int have_uring;

	ROW("mmn_rcache_fake_new", "fakep NULL", mmn_rcache_fake_new(&fcfg, NULL), -EINVAL);
	ROW("mmn_rcache_fake_new", "both NULL", mmn_rcache_fake_new(NULL, NULL), -EINVAL);
	ROW("mmn_rcache_fake_new", "cfg NULL (valid: defaults)", mmn_rcache_fake_new(NULL, &f), 0);
	mmn_rcache_fake_destroy(f);
	ROW("mmn_rcache_mlock_new", "mlp NULL", mmn_rcache_mlock_new(NULL), -EINVAL);
	ROW("mmn_rcache_mlock_new", "valid", mmn_rcache_mlock_new(&ml), 0);
	ROW("mmn_rcache_mlock_live", "new device: 0", mmn_rcache_mlock_live(ml), 0);
	mmn_rcache_mlock_destroy(ml);
	ROW_VOID("mmn_rcache_mlock_destroy", "ml NULL", mmn_rcache_mlock_destroy(NULL), true,
		 "no crash");

	/* Without liburing every call answers -ENOSYS, as documented. */
	have_uring = mmn_rcache_uring_new(4, &u);
	if (have_uring == -ENOSYS) {
		ROW("mmn_rcache_uring_new", "slots 0 (built without liburing)",
		    mmn_rcache_uring_new(0, &u), -ENOSYS);
		ROW("mmn_rcache_uring_new", "up NULL (built without liburing)",
		    mmn_rcache_uring_new(4, NULL), -ENOSYS);
		return;
	}
	ROW("mmn_rcache_uring_new", "slots 0", mmn_rcache_uring_new(0, &u), -EINVAL);
	ROW("mmn_rcache_uring_new", "up NULL", mmn_rcache_uring_new(4, NULL), -EINVAL);
	ROW("mmn_rcache_uring_new", "slots 0, up NULL", mmn_rcache_uring_new(0, NULL), -EINVAL);
	ROW_VOID("mmn_rcache_uring_destroy", "u NULL", mmn_rcache_uring_destroy(NULL), true,
		 "no crash");
	if (have_uring == 0) {
		ROW("mmn_rcache_uring_read_fixed", "r NULL",
		    mmn_rcache_uring_read_fixed(u, NULL, 0, buf, 1, 0), -EINVAL);
		ROW("mmn_rcache_uring_live", "new ring: 0", mmn_rcache_uring_live(u), 0);
		mmn_rcache_uring_destroy(u);
	}
}

int main(void)
{
	printf("  %-36s %-46s    %-6s want %-12s\n", "function", "input", "got", "");
	RUN(rcache_bad_input_new);
	RUN(rcache_bad_input_calls);
	RUN(rcache_bad_input_backends);
	return test_report();
}
