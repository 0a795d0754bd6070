// SPDX-License-Identifier: MIT
/* Built against the *installed* libmmn by test/install_consumer.cmake. */
#include <mmn.h>
#include <stdio.h>
#include <string.h>

static int calls;

static bool cb(struct mmn_interval_notifier *sub, const struct mmn_range *range,
	       unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	calls++;
	return true;
}

int main(void)
{
	static const struct mmn_interval_notifier_ops ops = { .invalidate = cb };
	struct mmn_interval_notifier sub = { 0 };
	struct mmn_range range;
	struct mmn_mm *mm;

	if (mmn_mm_new(&mm) || mmn_interval_notifier_insert(&sub, mm, 4096, 4096, &ops))
		return 1;
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0, 8192);
	if (mmn_invalidate_range_start(&range))
		return 1;
	mmn_invalidate_range_end(&range);
	if (calls != 1 || mmn_interval_notifier_remove(&sub) || mmn_mm_destroy(mm))
		return 1;
	if (strcmp(mmn_version(), MMN_VERSION_STRING))
		return 1;
	printf("installed libmmn %s works\n", mmn_version());
	return 0;
}
