/* SPDX-License-Identifier: MIT */
/*
 * libmmn-preload.so: private interface between the preload's files, plus the
 * one function it exports for tests (mmn_selfcheck_sync, found with dlsym).
 */
#ifndef MMN_PRELOAD_H
#define MMN_PRELOAD_H

#include <stdint.h>

#include <mmn.h>
#include <mmn/process.h>

#include "hidden.h"

/* Calls made through the import table (PLT) of some other module. */
enum preload_plt {
	PLT_MUNMAP = 0,
	PLT_MREMAP,
	PLT_MADVISE,
	PLT_COUNT
};

MMN_HIDDEN uint64_t preload_plt_calls(enum preload_plt call);

/* selfcheck.c */
MMN_HIDDEN int selfcheck_start(struct mmn_mm *mm);
MMN_HIDDEN void selfcheck_exit(void);

/* fmt.c: allocation-free formatting into a caller's buffer, flushed by write(2). */
struct fmt {
	int fd;
	unsigned int len;
	char buf[4096];
};

MMN_HIDDEN void fmt_str(struct fmt *f, const char *s);
MMN_HIDDEN void fmt_strn(struct fmt *f, const char *s, unsigned int n);
MMN_HIDDEN void fmt_dec(struct fmt *f, uint64_t v);
MMN_HIDDEN void fmt_hex(struct fmt *f, uint64_t v);
MMN_HIDDEN void fmt_kv(struct fmt *f, const char *key, uint64_t v);
MMN_HIDDEN void fmt_flush(struct fmt *f);

/**
 * mmn_selfcheck_sync() - run one complete self-check pass and wait for it
 *
 * For tests: the pass starts after this call, so it sees every mapping change
 * the caller made before calling (a new mapping is subscribed, a changed one
 * is checked). Exported by libmmn-preload.so; look it up with dlsym().
 *
 * Context: may block (for as long as invalidations in flight take); not from
 * inside a notifier callback or a hook.
 * Return: 0; -ENODEV if the self-check is not running (MMN_SELFCHECK unset,
 * or start-up failed); -ECHILD in a forked child (the checker thread exists
 * only in the process that loaded the preload).
 */
__attribute__((visibility("default"))) int mmn_selfcheck_sync(void);

#endif /* MMN_PRELOAD_H */
