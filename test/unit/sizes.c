// SPDX-License-Identifier: MIT
/*
 * The layout of every struct a user embeds or fills in is ABI: pinned here at
 * compile time (_Static_assert) and printed and checked again at run time. A
 * change that trips one of these needs a new soname major version (or a
 * deliberate decision recorded in CHANGELOG.md), not an edit of this file.
 *
 * LP64 only: on other data models the numbers differ.
 */
#include <stdalign.h>

#include "harness.h"
#include "mmn.h"

#if !defined(__LP64__)
#error "libmmn targets LP64"
#endif

/* Embedded by users. */
_Static_assert(sizeof(struct mmn_interval_notifier) == 104, "mmn_interval_notifier size");
_Static_assert(alignof(struct mmn_interval_notifier) == 8, "mmn_interval_notifier alignment");
_Static_assert(sizeof(struct mmn_itree_node) == 56, "mmn_itree_node size");
_Static_assert(offsetof(struct mmn_interval_notifier, node) == 0, "node first");

_Static_assert(sizeof(struct mmn_finish) == 16, "mmn_finish size");
_Static_assert(alignof(struct mmn_finish) == 8, "mmn_finish alignment");
_Static_assert(offsetof(struct mmn_finish, next) == 0, "mmn_finish.next");
_Static_assert(offsetof(struct mmn_finish, notifier) == 8, "mmn_finish.notifier");

/* Filled in by users (or by mmn_range_init). */
_Static_assert(sizeof(struct mmn_range) == 40, "mmn_range size");
_Static_assert(offsetof(struct mmn_range, mm) == 0, "mmn_range.mm");
_Static_assert(offsetof(struct mmn_range, start) == 8, "mmn_range.start");
_Static_assert(offsetof(struct mmn_range, end) == 16, "mmn_range.end");
_Static_assert(offsetof(struct mmn_range, flags) == 24, "mmn_range.flags");
_Static_assert(offsetof(struct mmn_range, event) == 28, "mmn_range.event");
_Static_assert(offsetof(struct mmn_range, owner) == 32, "mmn_range.owner");

_Static_assert(sizeof(struct mmn_interval_notifier_ops) == 24, "ops size");
_Static_assert(offsetof(struct mmn_interval_notifier_ops, invalidate) == 0, "ops.invalidate");
_Static_assert(offsetof(struct mmn_interval_notifier_ops, invalidate_start) == 8,
	       "ops.invalidate_start");
_Static_assert(offsetof(struct mmn_interval_notifier_ops, invalidate_finish) == 16,
	       "ops.invalidate_finish");

/* Filled in by the library for the user. */
_Static_assert(sizeof(struct mmn_stats) == 120, "mmn_stats size");
_Static_assert(sizeof(struct mmn_log_record) == 48, "mmn_log_record size");

/* The event values are the kernel's enum mmu_notifier_event. */
_Static_assert(MMN_EVENT_UNMAP == 0 && MMN_EVENT_CLEAR == 1 && MMN_EVENT_PROTECTION_VMA == 2 &&
	       MMN_EVENT_PROTECTION_PAGE == 3 && MMN_EVENT_SOFT_DIRTY == 4 &&
	       MMN_EVENT_RELEASE == 5 && MMN_EVENT_MIGRATE == 6 && MMN_EVENT_EXCLUSIVE == 7,
	       "enum mmn_event values");
_Static_assert(MMN_RANGE_BLOCKABLE == 1, "MMN_RANGE_BLOCKABLE is bit 0");

#define CHECK(what, got, want)                                                  \
	do {                                                                    \
		printf("    %-44s %4zu (want %zu)\n", what, (size_t)(got), (size_t)(want)); \
		expect_eq((got), (want));                                       \
	} while (0)

TEST(sizes_pinned)
{
	CHECK("sizeof(struct mmn_interval_notifier)", sizeof(struct mmn_interval_notifier), 104);
	CHECK("sizeof(struct mmn_finish)", sizeof(struct mmn_finish), 16);
	CHECK("sizeof(struct mmn_range)", sizeof(struct mmn_range), 40);
	CHECK("offsetof(struct mmn_range, mm)", offsetof(struct mmn_range, mm), 0);
	CHECK("offsetof(struct mmn_range, start)", offsetof(struct mmn_range, start), 8);
	CHECK("offsetof(struct mmn_range, end)", offsetof(struct mmn_range, end), 16);
	CHECK("offsetof(struct mmn_range, flags)", offsetof(struct mmn_range, flags), 24);
	CHECK("offsetof(struct mmn_range, event)", offsetof(struct mmn_range, event), 28);
	CHECK("offsetof(struct mmn_range, owner)", offsetof(struct mmn_range, owner), 32);
	CHECK("sizeof(struct mmn_interval_notifier_ops)",
	      sizeof(struct mmn_interval_notifier_ops), 24);
	CHECK("sizeof(struct mmn_stats)", sizeof(struct mmn_stats), 120);
	CHECK("sizeof(struct mmn_log_record)", sizeof(struct mmn_log_record), 48);
}

/* A zeroed embedded notifier reads as "nothing": the inline accessors agree. */
TEST(zeroed_notifier_accessors)
{
	struct mmn_interval_notifier sub;

	memset(&sub, 0, sizeof(sub));
	expect_eq_ul(mmn_interval_notifier_start(&sub), 0);
	expect_eq_ul(mmn_interval_notifier_last(&sub), 0);
	expect_eq_ptr(mmn_interval_notifier_mm(&sub), NULL);
}

/* The compiled-in and the loaded version agree. */
TEST(version)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", MMN_VERSION_MAJOR, MMN_VERSION_MINOR,
		 MMN_VERSION_PATCH);
	expect_str_eq(mmn_version(), want);
	expect_str_eq(mmn_version(), MMN_VERSION_STRING);
}

int main(void)
{
	RUN(sizes_pinned);
	RUN(zeroed_notifier_accessors);
	RUN(version);
	return test_report();
}
