/* SPDX-License-Identifier: MIT */
/*
 * The one hidden-visibility macro of libmmn's sources, and the ones that
 * place the per-call path's code and data; never installed.
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
 * Where the per-call path of a hooked call lives. The system call the hook
 * makes evicts much of the instruction cache and, when munmap frees a page,
 * the TLB: every page this path touches afterwards costs a TLB miss, 5-8 ns
 * on the VM of bench/README.md. So the path is packed by hand:
 *
 *   MMN_HOT   a hooked munmap, from libmmn's hook through the core's
 *             invalidate_range_start/_end of a range that hits no notifier:
 *             one page of code, page-aligned;
 *   MMN_WARM  the rest of the per-call paths (madvise, mmap, a range that
 *             hits), right after it.
 *
 * GNU ld sorts the input sections named .text.sorted.* by name and places
 * them together: mmn.0 (notifier.c) aligns to a page and marks the start,
 * then mmn.1 (MMN_HOT), mmn.1.end (marks its end), then mmn.2 (MMN_WARM).
 * test/check_hot.cmake checks the page on an optimised build
 * (docs/process-events.md, "What a hooked call costs").
 */
#define MMN_HOT __attribute__((hot, section(".text.sorted.mmn.1")))
#define MMN_WARM __attribute__((hot, section(".text.sorted.mmn.2")))

/*
 * The process-wide variables that path reads on every call (the next hook,
 * the process domain, the page size, the backstop's state), gathered in one
 * section of a few hundred bytes rather than spread over the pages of .bss.
 * Written rarely; a counter written on every call keeps a line of its own.
 */
#define MMN_HOT_DATA __attribute__((section(".data.mmn_hot")))

#endif /* MMN_HIDDEN_H */
