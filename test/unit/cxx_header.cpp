// SPDX-License-Identifier: MIT
// mmn.h compiles as C++ and its functions link with C linkage.
#include <mmn.h>

#include <cstdio>

static bool cb(struct mmn_interval_notifier *, const struct mmn_range *, unsigned long)
{
	return true;
}

int main()
{
	static const struct mmn_interval_notifier_ops ops = { cb, nullptr, nullptr };
	struct mmn_interval_notifier sub = {};
	struct mmn_mm *mm = nullptr;

	if (mmn_mm_new(&mm) != 0)
		return 1;
	if (mmn_interval_notifier_insert(&sub, mm, 0x1000, 0x1000, &ops) != 0)
		return 1;
	if (mmn_interval_notifier_start(&sub) != 0x1000 || mmn_interval_notifier_last(&sub) != 0x1fff)
		return 1;
	if (mmn_interval_notifier_remove(&sub) != 0 || mmn_mm_destroy(mm) != 0)
		return 1;
	std::printf("cxx_header: ok (libmmn %s)\n", mmn_version());
	return 0;
}
