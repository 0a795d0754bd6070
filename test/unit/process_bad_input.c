// SPDX-License-Identifier: MIT
/*
 * Every public function of include/mmn/process.h with every invalid input:
 * coverage before the process domain exists (-ENODEV, run first), NULL
 * pointers, length 0 and wrapping intervals, empty and inverted event ranges,
 * an out-of-range call number, an _end of an event that was never begun (a
 * log record, captured and counted). Each row asserts the documented errno
 * and is printed as it runs, in the format of bad_input.c. A valid call
 * after the bad ones shows that nothing changed.
 */
#include <mmn/process.h>

#include "scenario_util.h"
#include "bad_input_table.h"

static int calls;

static bool inv(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		unsigned long cur_seq)
{
	(void)range;
	calls++;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = inv };
static const struct mmn_interval_notifier_ops no_ops = { 0 };

/* A sub that a failed insert must leave exactly as it was (zeroed). */
static int insert_fails(bool null_sub, unsigned long start, unsigned long length,
			const struct mmn_interval_notifier_ops *o)
{
	struct mmn_interval_notifier sub, zero;
	int ret;

	memset(&sub, 0, sizeof(sub));
	memset(&zero, 0, sizeof(zero));
	ret = mmn_process_insert(null_sub ? NULL : &sub, start, length, o);
	if (ret == 0) {
		expect_eq(mmn_interval_notifier_remove(&sub), 0);
		return 0;
	}
	expect_eq(memcmp(&sub, &zero, sizeof(sub)), 0);
	expect_false(mmn_interval_notifier_test_in_tree(&sub));
	return ret;
}

static bool all_enodev(const struct mmn_process_coverage *cov)
{
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		if (cov->method[i] != MMN_HOOK_NONE || cov->error[i] != -ENODEV)
			return false;
	return !cov->backstop;
}

/* Runs first: nothing may have called mmn_process_mm() yet. */
TEST(process_bad_input_before_mm)
{
	struct mmn_process_coverage cov;
	struct mmn_process_event ev;
	struct mmn_mm *mm = NULL;

	ROW("mmn_process_coverage", "cov NULL, before mmn_process_mm", mmn_process_coverage(NULL),
	    -EINVAL);
	memset(&cov, 0xa5, sizeof(cov));
	ROW("mmn_process_coverage", "before mmn_process_mm", mmn_process_coverage(&cov), -ENODEV);
	ROW("mmn_process_coverage", "before: every call not hooked", all_enodev(&cov), true);
	ROW("mmn_process_event_begin", "ev NULL, before mmn_process_mm",
	    mmn_process_event_begin(NULL, MMN_EVENT_UNMAP, 0x1000, 0x2000), -EINVAL);
	ROW("mmn_process_event_begin", "[0x2000, 0x1000), before mmn_process_mm",
	    mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x2000, 0x1000), -EINVAL);
	ROW("mmn_process_mm", "mmp NULL", mmn_process_mm(NULL), -EINVAL);
	/* The refused call created nothing. */
	ROW("mmn_process_coverage", "after mmn_process_mm(NULL)", mmn_process_coverage(&cov),
	    -ENODEV);
	ROW("mmn_process_mm", "mmp valid (valid)", mmn_process_mm(&mm), 0);
	expect_ne_ptr(mm, NULL);
	ROW("mmn_process_coverage", "cov NULL, after mmn_process_mm", mmn_process_coverage(NULL),
	    -EINVAL);
	ROW("mmn_process_coverage", "after mmn_process_mm (valid)", mmn_process_coverage(&cov), 0);
}

TEST(process_bad_input_insert)
{
	struct mmn_interval_notifier a = { 0 }, saved;
	struct mmn_stats st;
	struct mmn_mm *mm;
	unsigned long before;

	assert_eq(mmn_process_mm(&mm), 0);
	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	before = st.notifiers;
	ROW("mmn_process_insert", "sub NULL", insert_fails(true, 0x1000, 0x1000, &ops), -EINVAL);
	ROW("mmn_process_insert", "ops NULL", insert_fails(false, 0x1000, 0x1000, NULL), -EINVAL);
	ROW("mmn_process_insert", "ops: none", insert_fails(false, 0x1000, 0x1000, &no_ops),
	    -EINVAL);
	ROW("mmn_process_insert", "length 0", insert_fails(false, 0x1000, 0, &ops), -EINVAL);
	ROW("mmn_process_insert", "start 0, length 0", insert_fails(false, 0, 0, &ops), -EINVAL);
	ROW("mmn_process_insert", "start ULONG_MAX, length 2",
	    insert_fails(false, ULONG_MAX, 2, &ops), -EOVERFLOW);
	ROW("mmn_process_insert", "start 2, length ULONG_MAX",
	    insert_fails(false, 2, ULONG_MAX, &ops), -EOVERFLOW);
	ROW("mmn_process_insert", "start ULONG_MAX, length ULONG_MAX",
	    insert_fails(false, ULONG_MAX, ULONG_MAX, &ops), -EOVERFLOW);
	ROW("mmn_process_insert", "order: sub NULL + length 0", insert_fails(true, 0, 0, &ops),
	    -EINVAL);
	ROW("mmn_process_insert", "order: length 0 at ULONG_MAX",
	    insert_fails(false, ULONG_MAX, 0, &ops), -EINVAL);
	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq_ul(st.notifiers, before);

	/* Inserted twice: -EBUSY, the notifier left as it was. */
	assert_eq(mmn_process_insert(&a, 0x10000, 0x1000, &ops), 0);
	memcpy(&saved, &a, sizeof(a));
	ROW("mmn_process_insert", "inserted already",
	    mmn_process_insert(&a, 0x10000, 0x1000, &ops), -EBUSY);
	ROW("mmn_process_insert", "inserted already, other interval",
	    mmn_process_insert(&a, 0x20000, 0x10, &ops), -EBUSY);
	expect_eq(memcmp(&a, &saved, sizeof(a)), 0);
	expect_eq_ptr(mmn_interval_notifier_mm(&a), mm);
	ROW("mmn_interval_notifier_remove", "process insert (valid)",
	    mmn_interval_notifier_remove(&a), 0);
	ROW("mmn_process_insert", "start 1, length 1 (valid)", insert_fails(false, 1, 1, &ops), 0);
	assert_eq(mmn_mm_get_stats(mm, &st), 0);
	expect_eq_ul(st.notifiers, before);
}

TEST(process_bad_input_events)
{
	static const struct {
		const char *name;
		unsigned long start, end;
	} empty[] = {
		{ "[5, 5)", 5, 5 }, { "[6, 5)", 6, 5 }, { "[0, 0)", 0, 0 },
		{ "[ULONG_MAX, ULONG_MAX)", ULONG_MAX, ULONG_MAX },
		{ "[ULONG_MAX, 0)", ULONG_MAX, 0 }, { "[0x2000, 0x1000)", 0x2000, 0x1000 },
	};
	struct mmn_interval_notifier sub = { 0 };
	struct mmn_process_event ev, never, zero;
	struct mmn_stats before, after;
	struct mmn_mm *mm;
	char name[80];

	assert_eq(mmn_process_mm(&mm), 0);
	/* A notifier on an address range nothing real uses. */
	assert_eq(mmn_process_insert(&sub, 0x7000, 0x1000, &ops), 0);
	assert_eq(mmn_mm_get_stats(mm, &before), 0);
	calls = 0;
	ROW("mmn_process_event_begin", "ev NULL",
	    mmn_process_event_begin(NULL, MMN_EVENT_UNMAP, 0x7000, 0x8000), -EINVAL);
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		memset(&ev, 0, sizeof(ev));
		snprintf(name, sizeof(name), "empty/inverted %s", empty[i].name);
		ROW("mmn_process_event_begin", name,
		    mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, empty[i].start, empty[i].end),
		    -EINVAL);
	}
	assert_eq(mmn_mm_get_stats(mm, &after), 0);
	expect_eq(calls, 0);
	expect_eq(after.invalidations, before.invalidations);
	expect_eq_ul(after.active, 0);

	/* _end of an event that was never begun: one error record, nothing else. */
	cap_install();
	ROW_VOID("mmn_process_event_end", "ev NULL", mmn_process_event_end(NULL),
		 cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR, "error logged");
	cap_reset();
	memset(&never, 0, sizeof(never));
	memset(&zero, 0, sizeof(zero));
	ROW_VOID("mmn_process_event_end", "never begun (zeroed)", mmn_process_event_end(&never),
		 cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR &&
			 memcmp(&never, &zero, sizeof(never)) == 0,
		 "error logged");
	cap_reset();
	memset(&ev, 0, sizeof(ev));
	assert_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x3000, 0x3000), -EINVAL);
	ROW_VOID("mmn_process_event_end", "after begin said -EINVAL", mmn_process_event_end(&ev),
		 cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR, "error logged");
	cap_reset();
	assert_eq(mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x7000, 0x8000), 0);
	mmn_process_event_end(&ev);
	expect_eq(cap_count(), 0);
	ROW_VOID("mmn_process_event_end", "twice after one begin", mmn_process_event_end(&ev),
		 cap_count() == 1 && cap_recs[0].level == MMN_LOG_ERROR, "error logged");
	mmn_set_log_fn(NULL, NULL);
	expect_eq(calls, 1);
	assert_eq(mmn_mm_get_stats(mm, &after), 0);
	expect_eq_ul(after.active, 0);

	/* State intact: a valid event still reaches the notifier. */
	ROW("mmn_process_event_begin", "[0x7000, 0x8000) (valid)",
	    mmn_process_event_begin(&ev, MMN_EVENT_UNMAP, 0x7000, 0x8000), 0);
	mmn_process_event_end(&ev);
	expect_eq(calls, 2);
	expect_eq(mmn_interval_notifier_remove(&sub), 0);
}

TEST(process_bad_input_call_name)
{
	ROW("mmn_process_call_name", "MMN_CALL_COUNT",
	    mmn_process_call_name(MMN_CALL_COUNT) == NULL, true);
	ROW("mmn_process_call_name", "MMN_CALL_COUNT + 1",
	    mmn_process_call_name((enum mmn_process_call)(MMN_CALL_COUNT + 1)) == NULL, true);
	ROW("mmn_process_call_name", "-1",
	    mmn_process_call_name((enum mmn_process_call)-1) == NULL, true);
	ROW("mmn_process_call_name", "INT_MAX",
	    mmn_process_call_name((enum mmn_process_call)INT_MAX) == NULL, true);
	ROW("mmn_process_call_name", "MMN_CALL_MUNMAP: \"munmap\" (valid)",
	    mmn_process_call_name(MMN_CALL_MUNMAP) &&
		    strcmp(mmn_process_call_name(MMN_CALL_MUNMAP), "munmap") == 0,
	    true);
	ROW("mmn_process_call_name", "MMN_CALL_COUNT - 1: non-NULL (valid)",
	    mmn_process_call_name(MMN_CALL_COUNT - 1) != NULL, true);
}

int main(void)
{
	printf("  %-36s %-46s    %-6s want %-12s\n", "function", "input", "got", "");
	RUN(process_bad_input_before_mm);
	RUN(process_bad_input_insert);
	RUN(process_bad_input_events);
	RUN(process_bad_input_call_name);
	return test_report();
}
