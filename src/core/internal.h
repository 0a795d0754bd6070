/* SPDX-License-Identifier: MIT */
/*
 * Private to libmmn's core and its tests; never installed.
 *
 * The test-only entry points below are plain global symbols: the shared
 * library hides them (visibility and src/libmmn.map), while tests link the
 * static library and can call them.
 */
#ifndef MMN_INTERNAL_H
#define MMN_INTERNAL_H

#include <stdbool.h>

#include "mmn.h"

#include "hidden.h"

/* MMN_DEBUG >= 1: cheap assertions; >= 2: full tree check after each change. */
#ifndef MMN_DEBUG
#define MMN_DEBUG 0
#endif

/* Report a warning (D5): count it in @mm's stats (if any), log it, maybe abort. */
MMN_HIDDEN void mmn_warn(struct mmn_mm *mm, const char *what,
			 struct mmn_interval_notifier *sub, unsigned long start,
			 unsigned long end);
/* Report misuse at level ERROR (nothing is counted). */
MMN_HIDDEN void mmn_log_error(struct mmn_mm *mm, const char *what,
			      struct mmn_interval_notifier *sub,
			      unsigned long start, unsigned long end);
/* Abort after reporting; for misuse that would otherwise hang. */
MMN_HIDDEN _Noreturn void mmn_fatal(struct mmn_mm *mm, const char *what,
				    struct mmn_interval_notifier *sub);

/* Bump @mm's warning counter (called by mmn_warn). */
MMN_HIDDEN void mm_count_warning(struct mmn_mm *mm);

/* Tests only ---------------------------------------------------------------*/

/* Preset an idle domain's sequence (the wrap tests, unit/seq_wrap). 0 or -EBUSY. */
MMN_HIDDEN int mmn_mm_test_set_seq(struct mmn_mm *mm, unsigned long seq);
/* Is @sub in the domain's tree now (not merely pending)? */
MMN_HIDDEN bool mmn_interval_notifier_test_in_tree(struct mmn_interval_notifier *sub);
/* NULL if the domain's tree is sound, else what is broken. Takes the lock. */
MMN_HIDDEN const char *mmn_mm_test_check(struct mmn_mm *mm);
/* Is the calling thread inside a callback of @mm (first pass or finish)? */
MMN_HIDDEN bool mmn_test_in_callback(struct mmn_mm *mm);

#endif /* MMN_INTERNAL_H */
