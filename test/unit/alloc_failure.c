// SPDX-License-Identifier: MIT
/*
 * Fault injection (issue 6): every allocation on the core's and the event
 * sources' set-up paths is made to fail in turn (test/alloc_fail.h), and each
 * failure must come back as -ENOMEM with nothing leaked (ASan checks leaks at
 * exit) and nothing half done: the same call then succeeds.
 *
 * The invalidation path allocates nothing, so nothing there can fail; this
 * test checks that too, with failure armed across whole invalidations.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "itree.h"
#include "alloc_fail.h"
#include <mmn/process.h>

static bool cb(struct mmn_interval_notifier *sub, const struct mmn_range *range,
	       unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = cb };

static int new_domain(struct mmn_mm **mm)
{
	return mmn_mm_new(mm);
}

TEST(mm_new)
{
	struct mmn_mm *mm = NULL;
	int points = alloc_fail_walk(new_domain(&mm), mmn_mm_destroy(mm));

	printf("  mmn_mm_new: %d allocation(s), each failure -> -ENOMEM\n", points);
	expect_ge(points, 1);
}

/* Nothing between start and end may allocate: with failure armed, all works. */
TEST(invalidation_allocates_nothing)
{
	struct mmn_interval_notifier subs[64] = { 0 };
	struct mmn_range range;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < 64; i++)
		assert_eq(mmn_interval_notifier_insert(&subs[i], mm, 0x10000 + i * 0x1000,
						       0x1000, &ops), 0);
	alloc_fail_arm(0);
	for (int i = 0; i < 100; i++) {
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0, 0x100000);
		expect_eq(mmn_invalidate_range_start(&range), 0);
		mmn_invalidate_range_end(&range);
	}
	mmn_mm_release(mm);
	expect_false(alloc_fail_disarm());
	for (int i = 0; i < 64; i++)
		expect_eq(mmn_interval_notifier_remove(&subs[i]), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * The interval index allocates its nodes on insert: each such allocation,
 * failed, makes the insert return -ENOMEM with the notifier untouched (the
 * same insert then succeeds), and the domain stays sound.
 */
TEST(insert_allocates)
{
	static struct mmn_interval_notifier subs[2000];
	struct mmn_mm *mm;
	int points = 0;

	assert_eq(mmn_mm_new(&mm), 0);
	for (int i = 0; i < 2000; i++) {
		/* Ascending, then interleaved below: splits at both ends and inside. */
		unsigned long start = i < 1000 ? 0x100000ul + i * 0x2000ul
					       : 0x100000ul + (i - 1000) * 0x2000ul + 0x1000;

		points += alloc_fail_walk(mmn_interval_notifier_insert(&subs[i], mm, start, 0x1000,
									&ops), (void)0);
		expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	}
	printf("  2000 inserts: %d allocation(s), each failure -> -ENOMEM\n", points);
	/* At least a new leaf per MMN_IX_FAN inserts. */
	expect_ge(points, 2000 / MMN_IX_FAN);
	for (int i = 0; i < 2000; i++)
		expect_eq(mmn_interval_notifier_remove(&subs[i]), 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * Inserts deferred by an open period are applied by the range_end that ends
 * it -- inside free() or a munmap hook in real use. Their nodes were paid
 * for when they were queued: with every allocation failing, the end applies
 * all of them.
 */
TEST(deferred_inserts_allocate_nothing)
{
	static struct mmn_interval_notifier subs[1001];
	struct mmn_range range;
	struct mmn_mm *mm;
	int points = 0;

	assert_eq(mmn_mm_new(&mm), 0);
	assert_eq(mmn_interval_notifier_insert(&subs[0], mm, 0x1000, 0x1000, &ops), 0);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0, 0x2000);
	assert_eq(mmn_invalidate_range_start(&range), 0);	/* hits: odd */
	for (int i = 1; i <= 1000; i++) {
		points += alloc_fail_walk(mmn_interval_notifier_insert(&subs[i], mm,
									0x10000ul * (unsigned long)i,
									0x1000, &ops), (void)0);
		expect_false(mmn_interval_notifier_test_in_tree(&subs[i]));
	}
	printf("  1000 deferred inserts: %d allocation(s), each failure -> -ENOMEM\n", points);
	expect_ge(points, 1000);
	alloc_fail_arm(0);
	mmn_invalidate_range_end(&range);
	expect_false(alloc_fail_disarm());
	for (int i = 0; i <= 1000; i++)
		expect_true(mmn_interval_notifier_test_in_tree(&subs[i]));
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	for (int i = 0; i <= 1000; i++)
		expect_eq(mmn_interval_notifier_remove(&subs[i]), 0);
	expect_eq(mmn_mm_destroy(mm), 0);
}

/*
 * The process domain is created once per process, so each failure point is
 * tried in a child of its own: it must return -ENOMEM, then succeed when
 * called again, with every hook installed.
 */
static int process_child(int n)
{
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;
	int ret;

	alarm(20);
	alloc_fail_arm(n);
	ret = mmn_process_mm(&mm);
	if (!alloc_fail_disarm())
		return ret == 0 ? 10 : 11;	/* 10: no allocation left to fail */
	if (ret == 0) {
		/* A failure that set-up absorbs (the backstop's thread): still whole. */
		mmn_process_coverage(&cov);
		return cov.method[MMN_CALL_MUNMAP] == MMN_HOOK_ENTRY_PATCH ? 0 : 12;
	}
	if (ret != -ENOMEM)
		return 13;
	if (mmn_process_mm(&mm) || mmn_process_coverage(&cov))
		return 14;
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		if (cov.method[i] != MMN_HOOK_ENTRY_PATCH)
			return 15;
	return 0;
}

TEST(process_mm)
{
	int points = 0;

	for (int n = 0; n < 64; n++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(process_child(n));
		assert_eq(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == 10)
			break;
		expect_eq(WEXITSTATUS(status), 0);
		points++;
	}
	printf("  mmn_process_mm: %d allocation(s), each failure handled\n", points);
	expect_ge(points, 1);
}

int main(void)
{
	RUN(mm_new);
	RUN(invalidation_allocates_nothing);
	RUN(insert_allocates);
	RUN(deferred_inserts_allocate_nothing);
	RUN(process_mm);
	return test_report();
}
