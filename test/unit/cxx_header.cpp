// SPDX-License-Identifier: MIT
// Every installed header compiles as C++ and its functions link with C linkage.
#include <mmn.h>
#include <mmn/process.h>
#include <mmn/rcache.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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
	if (std::strcmp(mmn_process_call_name(MMN_CALL_MUNMAP), "munmap") != 0)
		return 1;
	if (mmn_rcache_get_stats(nullptr, nullptr) != -EINVAL)
		return 1;
	std::printf("cxx_header: ok (libmmn %s)\n", mmn_version());
	return 0;
}
