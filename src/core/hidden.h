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

#endif /* MMN_HIDDEN_H */
