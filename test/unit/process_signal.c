// SPDX-License-Identifier: MIT
/*
 * Mapping changes from signal handlers (issue 9).
 *
 * A handler that interrupted the worker holding the domain lock used to wait
 * for that lock forever: the whole process hung. Now each handler's unmap is
 * either invalidated before munmap returns (the callback read the old
 * contents) or, where that is impossible, let through and counted in
 * coverage.signal_degraded. Nothing else is allowed.
 */
#include "signal_storm.h"

static long libc_munmap(void *addr, size_t len)
{
	return munmap(addr, len);
}

TEST(unmap_from_handler_never_deadlocks)
{
	struct mmn_process_coverage cov;
	unsigned long rounds = storm_run();

	printf("%u handlers: %u invalidated before, %u degraded; worker rounds %lu\n",
	       STORM_SIGNALS, storm_before, storm_not, rounds);
	assert_eq(mmn_process_coverage(&cov), 0);
	expect_eq(cov.signal_degraded, storm_not);
	expect_eq(cov.events[MMN_CALL_MUNMAP] >= storm_before, 1);
}

int main(void)
{
	struct mmn_mm *mm;

	storm_pg = sysconf(_SC_PAGESIZE);
	/* No backstop: a degraded unmap must not be reported late to a notifier
	 * whose page is gone (the callback then reads nothing, but keep it simple). */
	setenv("MMN_BACKSTOP", "0", 1);
	assert_eq(mmn_process_mm(&mm), 0);
	storm_setup(libc_munmap);
	RUN(unmap_from_handler_never_deadlocks);
	return test_report();
}
