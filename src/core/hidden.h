/* SPDX-License-Identifier: MIT */
/*
 * The one hidden-visibility macro of libmmn's sources; never installed.
 *
 * Hidden is already the default (CMAKE_C_VISIBILITY_PRESET), so this only
 * states it on declarations shared between files (and lets the compiler call
 * them directly). Only MMN_API (mmn.h) makes a symbol public; the installed
 * libmmn.a makes every hidden symbol local (CMakeLists.txt).
 */
#ifndef MMN_HIDDEN_H
#define MMN_HIDDEN_H

#define MMN_HIDDEN __attribute__((visibility("hidden")))

/*
 * The per-call path of a hooked munmap, madvise or mmap, from libmmn's hook
 * through the core's invalidate_range_start/_end of a range that hits no
 * notifier: kept together in .text.hot (gcc's hot attribute). The system call
 * the hook makes evicts much of the instruction cache, so this code runs cold
 * on every call; spread over a dozen pages between the rest of libmmn it cost
 * a hooked munmap ~80 ns more (docs/process-events.md, "What a hooked call
 * costs").
 */
#define MMN_HOT __attribute__((hot))

#endif /* MMN_HIDDEN_H */
