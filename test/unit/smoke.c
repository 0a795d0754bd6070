// SPDX-License-Identifier: MIT
/* Smoke test: the basic life cycle of a domain and a notifier. */
#include <limits.h>

#include "harness.h"
#include "internal.h"

struct rec_sub {
	struct mmn_interval_notifier sub;
	int calls;
	unsigned long cur_seq;
};

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rec_sub *r = (struct rec_sub *)sub;

	(void)range;
	r->calls++;
	r->cur_seq = cur_seq;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

TEST(life_cycle)
{
	struct mmn_mm *mm;
	struct rec_sub r = { 0 };
	struct mmn_range range;
	struct mmn_stats st;
	unsigned long seq;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&r.sub, mm, 0x1000, 0x1000, &rec_ops), 0);
	seq = mmn_interval_read_begin(&r.sub);
	expect_eq_ul(seq, 1);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1800, 0x1900);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	expect_eq(r.calls, 1);
	expect_eq_ul(r.cur_seq, 3);
	expect_true(mmn_interval_read_retry(&r.sub, seq));
	mmn_invalidate_range_end(&range);
	expect_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.active, 0);
	expect_eq(st.notifiers_called, 1);
	expect_eq(mmn_mm_destroy(mm), -EBUSY);
	expect_eq(mmn_interval_notifier_remove(&r.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&r.sub), -EINVAL);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	expect_eq(mmn_mm_destroy(mm), 0);
}

int main(void)
{
	RUN(life_cycle);
	return test_report();
}
