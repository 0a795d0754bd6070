// SPDX-License-Identifier: MIT
/*
 * The self-check (MMN_SELFCHECK=1): libmmn watching its own event sources.
 *
 * Every mapping of the process is subscribed with an interval notifier, and a
 * checker thread verifies, after every invalidation and once more at exit,
 * that each subscription nobody invalidated still matches /proc/self/maps.
 * A subscription whose range changed without a callback is a *violation*: the
 * event sources missed a change (a raw system call on a file mapping, a
 * mapping call made by ld.so, ...). docs/preload.md says what is checked and
 * why each step is sound; the short version:
 *
 *  - Callbacks only mark. A subscription's callback sets its "retired" flag
 *    (the pages may change: it is no longer checked) and calls set_seq. A
 *    catch-all notifier over [0, ULONG_MAX) counts every event and kicks the
 *    checker through a futex word. Nothing else runs inside the hooks: no
 *    allocation, no stdio, no lock, errno untouched (raw system calls).
 *
 *  - The checker thread owns everything else. A pass:
 *     1. read_begin() on the catch-all: waits until the invalidations that
 *        woke it have ended, i.e. their system calls are done;
 *     2. removes the retired notifiers (a callback may not remove its own:
 *        -EDEADLK; the checker is never inside a callback);
 *     3. reads /proc/self/maps (S1), then loads each live notifier's flag:
 *        a flag still clear after the read means no invalidation of that
 *        range had started before the read, so the read shows the range as
 *        recorded, or the change was missed. Mismatches are candidates; a
 *        candidate becomes a violation only if its flag is still clear after
 *        a grace period (the userfaultfd backstop invalidates *after* the
 *        fact) and a second read still disagrees;
 *     4. subscribes what S1 maps and no notifier covers, using the seq
 *        protocol as a driver would: insert, read_begin, read the maps
 *        again (S2, the "fault"), read_retry; the identity recorded is S2's.
 *    Passes are coalesced: events that arrive during a pass cause one more.
 *
 * All memory (notifiers, snapshots, the live index) comes from one anonymous
 * mapping made with a raw system call before the hooks are installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "maps.h"
#include "raw.h"
#include "preload.h"

#define SC_POOL 65536		/* notifiers */
#define SC_LINES 32768		/* /proc/self/maps lines per snapshot */
#define SC_PATH 64		/* bytes of a mapping's path kept for reports */
#define SC_CANDIDATES 256	/* mismatches confirmed per pass */
#define SC_DETAILS 32		/* violations reported in full */
#define SC_GRACE_MS 1024	/* how long the backstop gets to catch up */
#define SC_EXIT_WAIT_S 20	/* the exit pass gives up after this */
#define SC_TRACE 262144		/* MMN_SELFCHECK_TRACE=1: records kept */

/* What a mapping is: the same perms, file and file offset for each address. */
struct sc_ident {
	unsigned long inode;
	unsigned long rel;	/* file: offset - start; anonymous: offset (0) */
	char perms[5];
};

struct sc_line {
	unsigned long start, end;
	struct sc_ident id;
	char path[SC_PATH];
};

struct sc_snap {
	unsigned int n;
	bool overflow;
	struct sc_line line[SC_LINES];
};

struct sc_sub {
	struct mmn_interval_notifier notifier;
	unsigned long start, end;
	unsigned long seq;		/* read_begin value while being set up */
	struct sc_ident id;
	unsigned int retired;		/* atomic: a callback ran (seq_cst store) */
	bool violated;
	bool free;			/* on the free list */
	char path[SC_PATH];
	struct sc_sub *next_free;
};

struct sc_violation {
	unsigned long start, end;	/* the subscription */
	struct sc_ident was;
	char was_path[SC_PATH];
	const char *why;
	bool now_mapped;		/* a line now covers start */
	unsigned long now_start, now_end;
	struct sc_ident now;
	char now_path[SC_PATH];
	uint64_t pass;
};

/* MMN_SELFCHECK_TRACE=1: the history of each violating range, in the report. */
enum { TR_SUB = 16, TR_HIT, TR_REMOVE, TR_VIOLATION };

struct sc_trace {
	uint64_t ns;
	unsigned long start, end;
	int tid;
	unsigned int kind;	/* an enum mmn_event, or TR_* */
	char perms[5];
};

struct sc_mem {
	struct sc_trace trace[SC_TRACE];
	struct sc_sub subs[SC_POOL];
	struct sc_sub *live[SC_POOL];	/* sorted by start, pairwise disjoint */
	struct sc_sub *merged[SC_POOL];
	struct sc_sub *fresh[SC_POOL];
	struct sc_sub *cand[SC_CANDIDATES];
	struct sc_snap snap[2];
	struct sc_violation detail[SC_DETAILS];
};

/* Written by callbacks on any thread: atomics. */
struct sc_shared {
	unsigned int kick;		/* futex word: bumped by every event */
	unsigned int sleeping;		/* the checker waits on kick */
	unsigned int requested;		/* sync tickets handed out */
	unsigned int served;		/* futex word: last ticket a pass served */
	unsigned int stop_at;		/* ticket after which the checker exits */
	bool running;			/* the checker thread is up */
	uint64_t events[MMN_EVENT_EXCLUSIVE + 1];
	uint64_t sub_callbacks;
	uint64_t trace_pos;
};

/* Owned by the checker thread (read by the exit report after the last pass). */
struct sc_counts {
	uint64_t passes, sub_checks, subscribed, retired, violations, unstable, raced;
	uint64_t late, transient, pool_exhausted, insert_errors, remove_errors;
	uint64_t snapshot_failures, candidates_dropped, max_live;
	uint64_t check_ns;
	uint64_t bugs;		/* MMN_SELFCHECK_DEBUG=1 found the checker inconsistent */
};

static struct {
	struct mmn_mm *mm;
	struct sc_mem *mem;
	struct sc_sub *free_list;
	unsigned int pool_used;		/* subs[] handed out at least once */
	unsigned int nlive;
	pid_t pid;
	struct mmn_interval_notifier all;
	struct sc_shared sh;
	struct sc_counts c;
	char log_path[PATH_MAX];
	bool exited;
	bool trace;
	bool debug;
} sc;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Allocation-free; from any thread, callbacks included. */
static void sc_trace(unsigned int kind, unsigned long start, unsigned long end, const char *perms)
{
	struct sc_trace *t;

	if (!sc.trace)
		return;
	t = &sc.mem->trace[__atomic_fetch_add(&sc.sh.trace_pos, 1, __ATOMIC_RELAXED) % SC_TRACE];
	t->ns = now_ns();
	t->start = start;
	t->end = end;
	t->tid = (int)raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
	t->kind = kind;
	memcpy(t->perms, perms ? perms : "", perms ? 5 : 1);
}

static long futex(unsigned int *word, int op, unsigned int val, const struct timespec *ts)
{
	return raw_syscall(SYS_futex, word, op, val, ts, 0, 0);
}

/* From callbacks: allocation-free, lock-free, errno untouched. */
static void sc_kick(void)
{
	/* Dekker with the checker's sleeping/kick: one of us sees the other. */
	__atomic_add_fetch(&sc.sh.kick, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sc.sh.sleeping, __ATOMIC_SEQ_CST))
		futex(&sc.sh.kick, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static bool sc_sub_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			      unsigned long cur_seq)
{
	struct sc_sub *s = mmn_container_of(sub, struct sc_sub, notifier);

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	/* Before the mapping changes; pairs with the checker's load after its read. */
	__atomic_store_n(&s->retired, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&sc.sh.sub_callbacks, 1, __ATOMIC_RELAXED);
	sc_trace(TR_HIT, s->start, s->end, NULL);
	return true;
}

static bool sc_all_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			      unsigned long cur_seq)
{
	unsigned int ev = (unsigned int)range->event;

	mmn_interval_set_seq(sub, cur_seq);
	if (ev <= MMN_EVENT_EXCLUSIVE)
		__atomic_add_fetch(&sc.sh.events[ev], 1, __ATOMIC_RELAXED);
	sc_trace(ev, range->start, range->end, NULL);
	sc_kick();
	return true;
}

static const struct mmn_interval_notifier_ops sc_sub_ops = { .invalidate = sc_sub_invalidate };
static const struct mmn_interval_notifier_ops sc_all_ops = { .invalidate = sc_all_invalidate };

static bool ident_eq(const struct sc_ident *a, const struct sc_ident *b)
{
	return a->inode == b->inode && a->rel == b->rel && memcmp(a->perms, b->perms, 4) == 0;
}

static void copy_path(char *dst, const char *src)
{
	unsigned int i;

	for (i = 0; i < SC_PATH - 1 && src[i]; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* Snapshots ------------------------------------------------------------------ */

static int snap_add(const struct vm_map *m, void *arg)
{
	struct sc_snap *snap = arg;
	struct sc_line *l;

	if (snap->n == SC_LINES) {
		snap->overflow = true;
		return 1;
	}
	l = &snap->line[snap->n++];
	l->start = m->start;
	l->end = m->end;
	l->id.inode = m->inode;
	l->id.rel = m->inode ? m->offset - m->start : m->offset;
	memcpy(l->id.perms, m->perms, sizeof(l->id.perms));
	copy_path(l->path, m->path);
	return 0;
}

/*
 * Read /proc/self/maps into @snap. A read made of several read(2) calls can
 * show an address-space change half-way (lines out of order or overlapping);
 * such a snapshot is read again. 0, or -errno.
 */
static int sc_snapshot(struct sc_snap *snap)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		bool sorted = true;
		int ret;

		snap->n = 0;
		snap->overflow = false;
		ret = vm_maps_foreach(snap_add, snap);
		if (ret < 0)
			return ret;
		if (snap->overflow)
			return -E2BIG;
		for (unsigned int i = 0; i < snap->n && sorted; i++)
			sorted = snap->line[i].start < snap->line[i].end &&
				 (i == 0 || snap->line[i - 1].end <= snap->line[i].start);
		if (sorted)
			return 0;
	}
	return -EAGAIN;
}

/* Index of the first line that ends after @addr. */
static unsigned int snap_find(const struct sc_snap *snap, unsigned long addr)
{
	unsigned int lo = 0, hi = snap->n;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (snap->line[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Does @snap still map [s->start, s->end) as recorded? NULL if so, else why
 * not; *@at is the line where it went wrong (== n: nothing there).
 */
static const char *sc_match(const struct sc_sub *s, const struct sc_snap *snap, unsigned int *at)
{
	unsigned long cur = s->start;
	unsigned int i = snap_find(snap, cur);

	for (; cur < s->end; i++) {
		const struct sc_line *l = &snap->line[i];

		*at = i;
		if (i >= snap->n || l->start > cur)
			return "no longer mapped";
		if (memcmp(l->id.perms, s->id.perms, 4) != 0)
			return "permissions changed";
		if (!ident_eq(&l->id, &s->id))
			return "a different file, offset or kind of mapping";
		cur = l->end;
	}
	return NULL;
}

/* Record the identity of what @snap maps at @s's range; false if not uniform. */
static bool sc_ident_of(struct sc_sub *s, const struct sc_snap *snap)
{
	unsigned int i = snap_find(snap, s->start);
	unsigned long cur = s->start;

	if (i >= snap->n || snap->line[i].start > cur)
		return false;
	s->id = snap->line[i].id;
	copy_path(s->path, snap->line[i].path);
	for (; cur < s->end; i++) {
		if (i >= snap->n || snap->line[i].start > cur || !ident_eq(&snap->line[i].id, &s->id))
			return false;
		cur = snap->line[i].end;
	}
	return true;
}

/* The pass ------------------------------------------------------------------- */

/* Freed notifiers first; the pool's untouched tail only when none is left. */
static struct sc_sub *sub_alloc(void)
{
	struct sc_sub *s = sc.free_list;

	if (s)
		sc.free_list = s->next_free;
	else if (sc.pool_used < SC_POOL)
		s = &sc.mem->subs[sc.pool_used++];
	if (s)
		memset(s, 0, sizeof(*s));
	return s;
}

static void sub_free(struct sc_sub *s)
{
	s->free = true;
	s->next_free = sc.free_list;
	sc.free_list = s;
}

static bool sub_retired(struct sc_sub *s)
{
	return __atomic_load_n(&s->retired, __ATOMIC_SEQ_CST);
}

static void sc_remove_retired(void)
{
	struct sc_sub **live = sc.mem->live;
	unsigned int j = 0;

	for (unsigned int i = 0; i < sc.nlive; i++) {
		struct sc_sub *s = live[i];

		if (!sub_retired(s)) {
			live[j++] = s;
			continue;
		}
		/* Not inside a callback, so this may wait for the period to end. */
		if (mmn_interval_notifier_remove(&s->notifier)) {
			sc.c.remove_errors++;
			live[j++] = s;	/* keep it: its memory may still be in use */
			continue;
		}
		if (!s->violated)
			sc.c.retired++;
		sc_trace(TR_REMOVE, s->start, s->end, NULL);
		sub_free(s);
	}
	sc.nlive = j;
}

static void sc_violation(struct sc_sub *s, const char *why, const struct sc_snap *snap,
			 unsigned int at)
{
	struct mmn_log_record rec = {
		.level = MMN_LOG_ERROR, .mm = sc.mm, .sub = &s->notifier,
		.start = s->start, .end = s->end,
		.what = "selfcheck: VIOLATION: a subscribed mapping changed without an invalidation",
	};

	if (sc.c.violations < SC_DETAILS) {
		struct sc_violation *v = &sc.mem->detail[sc.c.violations];

		v->start = s->start;
		v->end = s->end;
		v->was = s->id;
		memcpy(v->was_path, s->path, SC_PATH);
		v->why = why;
		v->pass = sc.c.passes;
		v->now_mapped = at < snap->n && snap->line[at].start <= s->start;
		if (at < snap->n) {
			v->now_start = snap->line[at].start;
			v->now_end = snap->line[at].end;
			v->now = snap->line[at].id;
			memcpy(v->now_path, snap->line[at].path, SC_PATH);
		}
	}
	sc.c.violations++;
	sc_trace(TR_VIOLATION, s->start, s->end, s->id.perms);
	s->violated = true;
	/* Reported once: removed and its range subscribed afresh next pass. */
	__atomic_store_n(&s->retired, 1, __ATOMIC_SEQ_CST);
	mmn_log(&rec);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static bool sc_backstop_running(void)
{
	struct mmn_process_coverage cov;

	return mmn_process_coverage(&cov) == 0 && cov.backstop;
}

/* Step 3: check every live notifier that no callback has retired. */
static void sc_verify(const struct sc_snap *s1, struct sc_snap *scratch)
{
	struct sc_sub **cand = sc.mem->cand;
	unsigned int nc = 0, at;

	for (unsigned int i = 0; i < sc.nlive; i++) {
		struct sc_sub *s = sc.mem->live[i];

		/* The flag is loaded after the read (see the file comment). */
		if (sub_retired(s))
			continue;
		sc.c.sub_checks++;
		if (!sc_match(s, s1, &at))
			continue;
		if (nc < SC_CANDIDATES)
			cand[nc++] = s;
		else
			sc.c.candidates_dropped++;	/* checked again next pass */
	}
	if (!nc)
		return;

	/*
	 * The backstop reports raw unmaps of anonymous memory after the fact
	 * (file mappings it cannot watch): give it time to catch up.
	 */
	for (unsigned int ms = 1; ms <= SC_GRACE_MS / 2 && sc_backstop_running(); ms *= 2) {
		bool wait = false;

		for (unsigned int i = 0; i < nc && !wait; i++)
			wait = !cand[i]->id.inode && !sub_retired(cand[i]);
		if (!wait)
			break;
		sleep_ms(ms);
	}
	if (sc_snapshot(scratch)) {
		sc.c.snapshot_failures++;
		return;
	}
	for (unsigned int i = 0; i < nc; i++) {
		struct sc_sub *s = cand[i];
		const char *why;

		if (sub_retired(s)) {
			sc.c.late++;
			continue;
		}
		why = sc_match(s, scratch, &at);
		if (!why) {
			sc.c.transient++;
			continue;
		}
		sc_violation(s, why, scratch, at);
	}
}

/* Step 4a: insert a notifier for each piece of S1 that no live one covers. */
static unsigned int sc_subscribe_new(const struct sc_snap *s1)
{
	struct sc_sub **live = sc.mem->live, **fresh = sc.mem->fresh;
	unsigned int j = 0, nfresh = 0;

	for (unsigned int i = 0; i < s1->n; i++) {
		const struct sc_line *l = &s1->line[i];
		unsigned long cur = l->start;

		while (cur < l->end) {
			unsigned long end = l->end;
			struct sc_sub *s;
			int err;

			/* j only moves forward: lines and notifiers are both sorted. */
			while (j < sc.nlive && live[j]->end <= cur)
				j++;
			if (j < sc.nlive && live[j]->start <= cur) {
				cur = live[j]->end;	/* may cover the next lines too */
				continue;
			}
			if (j < sc.nlive && live[j]->start < end)
				end = live[j]->start;
			s = sub_alloc();
			if (!s) {
				sc.c.pool_exhausted++;
				return nfresh;
			}
			s->start = cur;
			s->end = end;
			err = mmn_process_insert(&s->notifier, cur, end - cur, &sc_sub_ops);
			if (err) {
				sc.c.insert_errors++;
				sub_free(s);
			} else {
				fresh[nfresh++] = s;
			}
			cur = end;
		}
	}
	return nfresh;
}

/* Step 4b: the collision-retry protocol, with reading the maps as the fault. */
static void sc_establish(struct sc_snap *s2, unsigned int nfresh)
{
	struct sc_sub **fresh = sc.mem->fresh;
	bool ok;

	for (unsigned int i = 0; i < nfresh; i++)
		fresh[i]->seq = mmn_interval_read_begin(&fresh[i]->notifier);
	ok = sc_snapshot(s2) == 0;
	if (!ok)
		sc.c.snapshot_failures++;
	for (unsigned int i = 0; i < nfresh; i++) {
		struct sc_sub *s = fresh[i];

		if (!ok) {
			__atomic_store_n(&s->retired, 1, __ATOMIC_SEQ_CST);
		} else if (mmn_interval_read_retry(&s->notifier, s->seq) || sub_retired(s)) {
			sc.c.raced++;	/* an invalidation collided: try again next pass */
			__atomic_store_n(&s->retired, 1, __ATOMIC_SEQ_CST);
		} else if (!sc_ident_of(s, s2)) {
			sc.c.unstable++;	/* changed between S1 and S2 */
			__atomic_store_n(&s->retired, 1, __ATOMIC_SEQ_CST);
		} else {
			sc.c.subscribed++;
			sc_trace(TR_SUB, s->start, s->end, s->id.perms);
		}
	}
}

/* Step 4c: merge the new notifiers (sorted, disjoint from the live ones) in. */
static void sc_merge(unsigned int nfresh)
{
	struct sc_sub **live = sc.mem->live, **fresh = sc.mem->fresh, **out = sc.mem->merged;
	unsigned int i = 0, j = 0, n = 0;

	while (i < sc.nlive || j < nfresh) {
		if (j >= nfresh || (i < sc.nlive && live[i]->start < fresh[j]->start))
			out[n++] = live[i++];
		else
			out[n++] = fresh[j++];
	}
	memcpy(live, out, n * sizeof(*out));
	sc.nlive = n;
	if (n > sc.c.max_live)
		sc.c.max_live = n;
}

/*
 * MMN_SELFCHECK_DEBUG=1: check the checker. After each pass the live index
 * must be sorted and disjoint, and every notifier in it either retired or
 * with a recorded identity, and none of them on the free list.
 */
static void sc_validate(void)
{
	for (unsigned int i = 0; i < sc.nlive; i++) {
		struct sc_sub *s = sc.mem->live[i];
		struct mmn_log_record rec = {
			.level = MMN_LOG_ERROR, .sub = &s->notifier,
			.start = s->start, .end = s->end,
		};

		if (s->start >= s->end)
			rec.what = "selfcheck: BUG: empty notifier in the live index";
		else if (i && sc.mem->live[i - 1]->end > s->start)
			rec.what = "selfcheck: BUG: live index unsorted or overlapping";
		else if (!sub_retired(s) && !s->id.perms[0])
			rec.what = "selfcheck: BUG: live notifier without an identity";
		else if (s->free)
			rec.what = "selfcheck: BUG: live notifier on the free list";
		if (rec.what) {
			sc.c.bugs++;
			mmn_log(&rec);
		}
	}
}

static void sc_pass(void)
{
	struct sc_snap *s1 = &sc.mem->snap[0], *s2 = &sc.mem->snap[1];
	uint64_t t0 = now_ns();
	unsigned int nfresh;

	/* Wait until the invalidations that woke us have ended (syscalls done). */
	mmn_interval_read_begin(&sc.all);
	sc_remove_retired();
	sc.c.passes++;
	if (sc_snapshot(s1)) {
		sc.c.snapshot_failures++;
		goto out;
	}
	sc_verify(s1, s2);
	nfresh = sc_subscribe_new(s1);
	if (nfresh)
		sc_establish(s2, nfresh);
	sc_merge(nfresh);
	if (sc.debug)
		sc_validate();
out:
	sc.c.check_ns += now_ns() - t0;
}

static void *sc_main(void *arg)
{
	unsigned int seen = 0;

	(void)arg;
	for (;;) {
		unsigned int k, req, stop;

		for (;;) {
			k = __atomic_load_n(&sc.sh.kick, __ATOMIC_SEQ_CST);
			if (k != seen)
				break;
			__atomic_store_n(&sc.sh.sleeping, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&sc.sh.kick, __ATOMIC_SEQ_CST) == k)
				futex(&sc.sh.kick, FUTEX_WAIT_PRIVATE, k, NULL);
			__atomic_store_n(&sc.sh.sleeping, 0, __ATOMIC_SEQ_CST);
		}
		seen = k;
		/* Every ticket handed out before the pass starts is served by it. */
		req = __atomic_load_n(&sc.sh.requested, __ATOMIC_ACQUIRE);
		sc_pass();
		/* Pairs with the acquire load in mmn_selfcheck_sync(). */
		__atomic_store_n(&sc.sh.served, req, __ATOMIC_RELEASE);
		futex(&sc.sh.served, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
		stop = __atomic_load_n(&sc.sh.stop_at, __ATOMIC_ACQUIRE);
		if (stop && (int)(req - stop) >= 0)
			break;
	}
	__atomic_store_n(&sc.sh.running, false, __ATOMIC_RELEASE);
	futex(&sc.sh.served, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
	return NULL;
}

/* Wait until a pass that started after ticket @want was taken has ended. */
static int sc_wait_served(unsigned int want, int timeout_s)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;

	for (;;) {
		unsigned int done = __atomic_load_n(&sc.sh.served, __ATOMIC_ACQUIRE);
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000 };

		if ((int)(done - want) >= 0)
			return 0;
		if (!__atomic_load_n(&sc.sh.running, __ATOMIC_ACQUIRE))
			return -ENODEV;
		if (timeout_s && now_ns() > deadline)
			return -ETIMEDOUT;
		futex(&sc.sh.served, FUTEX_WAIT_PRIVATE, done, timeout_s ? &ts : NULL);
	}
}

int mmn_selfcheck_sync(void)
{
	unsigned int want;

	if (!__atomic_load_n(&sc.sh.running, __ATOMIC_ACQUIRE))
		return -ENODEV;
	if (getpid() != sc.pid)
		return -ECHILD;
	want = __atomic_add_fetch(&sc.sh.requested, 1, __ATOMIC_SEQ_CST);
	sc_kick();
	return sc_wait_served(want, 0);
}

/* Start and exit --------------------------------------------------------------- */

static void sc_log(enum mmn_log_level level, const char *what)
{
	struct mmn_log_record rec = { .level = level, .what = what };

	mmn_log(&rec);
}

static bool env_is_1(const char *name)
{
	const char *v = getenv(name);

	return v && strcmp(v, "1") == 0;
}

int selfcheck_start(struct mmn_mm *mm)
{
	const char *path = getenv("MMN_SELFCHECK_LOG");
	sigset_t all, old;
	pthread_t thread;
	long p;
	int err;

	/* A raw system call: the hooks never see the checker's own memory. */
	p = raw_syscall(SYS_mmap, 0, sizeof(struct sc_mem), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p < 0 && p > -4096) {
		sc_log(MMN_LOG_ERROR, "selfcheck: cannot map its memory; self-check off");
		return (int)p;
	}
	sc.mem = (struct sc_mem *)p;
	sc.mm = mm;
	sc.pid = getpid();
	sc.trace = env_is_1("MMN_SELFCHECK_TRACE");
	sc.debug = env_is_1("MMN_SELFCHECK_DEBUG");
	if (path && *path) {
		size_t n = 0;

		/* The program may chdir() before exit: keep an absolute name. */
		if (path[0] != '/' && getcwd(sc.log_path, sizeof(sc.log_path) - 2)) {
			n = strlen(sc.log_path);
			sc.log_path[n++] = '/';
		}
		for (size_t i = 0; path[i] && n < sizeof(sc.log_path) - 1; i++)
			sc.log_path[n++] = path[i];
		sc.log_path[n] = '\0';
	}

	err = mmn_interval_notifier_insert(&sc.all, mm, 0, ULONG_MAX, &sc_all_ops);
	if (err) {
		sc_log(MMN_LOG_ERROR, "selfcheck: cannot insert the catch-all notifier");
		return err;
	}
	/* The checker takes no signals: they belong to the application's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	__atomic_store_n(&sc.sh.running, true, __ATOMIC_RELEASE);
	err = -pthread_create(&thread, NULL, sc_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		__atomic_store_n(&sc.sh.running, false, __ATOMIC_RELEASE);
		mmn_interval_notifier_remove(&sc.all);
		sc_log(MMN_LOG_ERROR, "selfcheck: cannot start the checker thread");
		return err;
	}
	pthread_detach(thread);
	/* Everything mapped now is subscribed before main() runs. */
	mmn_selfcheck_sync();
	sc_log(MMN_LOG_INFO, "selfcheck: running");
	return 0;
}

static void fmt_perms_path(struct fmt *f, const struct sc_ident *id, unsigned long start,
			   const char *path)
{
	fmt_str(f, id->perms);
	fmt_str(f, " inode=");
	fmt_dec(f, id->inode);
	fmt_str(f, " off=");
	fmt_hex(f, id->inode ? id->rel + start : id->rel);
	fmt_str(f, " path=");
	fmt_str(f, *path ? path : "(anonymous)");
}

/* The trace records that touch @v's range, oldest first. */
static void sc_trace_dump(struct fmt *f, const struct sc_violation *v)
{
	static const char *const kinds[] = {
		"event unmap", "event clear", "event protection_vma", "event protection_page",
		"event soft_dirty", "event release", "event migrate", "event exclusive",
		[TR_SUB] = "subscribed", [TR_HIT] = "callback", [TR_REMOVE] = "removed",
		[TR_VIOLATION] = "VIOLATION",
	};
	uint64_t end = __atomic_load_n(&sc.sh.trace_pos, __ATOMIC_RELAXED);
	uint64_t begin = end > SC_TRACE ? end - SC_TRACE : 0;

	if (!sc.trace)
		return;
	for (uint64_t i = begin; i < end; i++) {
		const struct sc_trace *t = &sc.mem->trace[i % SC_TRACE];

		if (t->end <= v->start || t->start >= v->end)
			continue;
		fmt_str(f, "  trace: t=");
		fmt_dec(f, t->ns / 1000);
		fmt_str(f, "us tid=");
		fmt_dec(f, (uint64_t)t->tid);
		fmt_str(f, " ");
		fmt_str(f, t->kind < sizeof(kinds) / sizeof(kinds[0]) && kinds[t->kind] ?
				   kinds[t->kind] : "?");
		fmt_str(f, " [");
		fmt_hex(f, t->start);
		fmt_str(f, ",");
		fmt_hex(f, t->end);
		fmt_str(f, ") ");
		fmt_str(f, t->perms);
		fmt_str(f, "\n");
	}
}

static void sc_report(struct fmt *f, const char *status)
{
	static const char *const ev_names[] = {
		"unmap", "clear", "protection_vma", "protection_page",
		"soft_dirty", "release", "migrate", "exclusive",
	};
	struct mmn_process_coverage cov;
	struct mmn_stats st = { 0 };
	uint64_t events = 0;

	mmn_process_coverage(&cov);
	mmn_mm_get_stats(sc.mm, &st);
	for (unsigned int i = 0; i <= MMN_EVENT_EXCLUSIVE; i++)
		events += __atomic_load_n(&sc.sh.events[i], __ATOMIC_RELAXED);

	for (unsigned int i = 0; i < sc.c.violations && i < SC_DETAILS; i++) {
		const struct sc_violation *v = &sc.mem->detail[i];

		fmt_str(f, "selfcheck-violation: pid=");
		fmt_dec(f, (uint64_t)sc.pid);
		fmt_str(f, " pass=");
		fmt_dec(f, v->pass);
		fmt_str(f, " range=[");
		fmt_hex(f, v->start);
		fmt_str(f, ",");
		fmt_hex(f, v->end);
		fmt_str(f, ") why=\"");
		fmt_str(f, v->why);
		fmt_str(f, "\" was: ");
		fmt_perms_path(f, &v->was, v->start, v->was_path);
		if (v->now_mapped || v->now_end) {
			fmt_str(f, v->now_mapped ? " now: [" : " next mapping: [");
			fmt_hex(f, v->now_start);
			fmt_str(f, ",");
			fmt_hex(f, v->now_end);
			fmt_str(f, ") ");
			fmt_perms_path(f, &v->now, v->now_start, v->now_path);
		} else {
			fmt_str(f, " now: nothing mapped");
		}
		fmt_str(f, "\n");
		sc_trace_dump(f, v);
	}

	fmt_str(f, "selfcheck: pid=");
	fmt_dec(f, (uint64_t)sc.pid);
	fmt_str(f, " prog=");
	fmt_str(f, program_invocation_short_name);
	fmt_str(f, " status=");
	fmt_str(f, status);
	fmt_kv(f, "events", events);
	for (unsigned int i = 0; i <= MMN_EVENT_EXCLUSIVE; i++) {
		uint64_t n = __atomic_load_n(&sc.sh.events[i], __ATOMIC_RELAXED);

		if (n) {
			fmt_str(f, " ev_");
			fmt_str(f, ev_names[i]);
			fmt_str(f, "=");
			fmt_dec(f, n);
		}
	}
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		static const char *const keys[MMN_CALL_COUNT] = {
			[MMN_CALL_MUNMAP] = "munmap", [MMN_CALL_MREMAP] = "mremap",
			[MMN_CALL_MADVISE] = "madvise", [MMN_CALL_BRK] = "brk",
			[MMN_CALL_SHMDT] = "shmdt", [MMN_CALL_SHMAT] = "shmat",
			[MMN_CALL_MMAP] = "mmap_fixed", [MMN_CALL_MPROTECT] = "mprotect",
			[MMN_CALL_PKEY_MPROTECT] = "pkey_mprotect",
			[MMN_CALL_REMAP_FILE_PAGES] = "remap_file_pages",
			[MMN_CALL_PROCESS_MADVISE] = "process_madvise",
		};
		_Static_assert(MMN_CALL_COUNT == 11, "name every call above");

		fmt_str(f, " hook_");
		fmt_str(f, keys[i]);
		fmt_str(f, "=");
		if (cov.method[i] == MMN_HOOK_NONE)
			fmt_str(f, "unhooked");
		else
			fmt_dec(f, cov.events[i]);
	}
	fmt_kv(f, "plt_munmap", preload_plt_calls(PLT_MUNMAP));
	fmt_kv(f, "plt_mremap", preload_plt_calls(PLT_MREMAP));
	fmt_kv(f, "plt_madvise", preload_plt_calls(PLT_MADVISE));
	fmt_kv(f, "internal_munmap", cov.events[MMN_CALL_MUNMAP] > preload_plt_calls(PLT_MUNMAP) ?
					     cov.events[MMN_CALL_MUNMAP] -
						     preload_plt_calls(PLT_MUNMAP) : 0);
	fmt_kv(f, "backstop", cov.backstop);
	fmt_kv(f, "backstop_ranges", cov.backstop_ranges);
	fmt_kv(f, "backstop_events", cov.backstop_events);
	fmt_kv(f, "backstop_duplicates", cov.backstop_duplicates);
	{
		/*
		 * Raw system calls (docs/process-events.md): changes seen before
		 * (hooks and raw path), seen after (the backstop), and unseen (the
		 * violations the checker found).
		 */
		uint64_t before = 0, raw = 0;

		for (int i = 0; i < MMN_CALL_COUNT; i++) {
			before += cov.events[i];
			raw += cov.raw_events[i];
		}
		fmt_kv(f, "raw", cov.raw_error == 0);
		fmt_kv(f, "raw_before", raw);
		fmt_kv(f, "raw_traps", cov.raw_traps);
		fmt_kv(f, "seen_before", before);
		fmt_kv(f, "seen_after", cov.backstop_events);
		fmt_kv(f, "unseen", sc.c.violations);
	}
	fmt_kv(f, "checks", sc.c.passes);
	fmt_kv(f, "sub_checks", sc.c.sub_checks);
	fmt_kv(f, "subscriptions", sc.c.subscribed);
	fmt_kv(f, "live", sc.nlive);
	fmt_kv(f, "max_live", sc.c.max_live);
	fmt_kv(f, "sub_callbacks", __atomic_load_n(&sc.sh.sub_callbacks, __ATOMIC_RELAXED));
	fmt_kv(f, "retired", sc.c.retired);
	fmt_kv(f, "raced", sc.c.raced);
	fmt_kv(f, "unstable", sc.c.unstable);
	fmt_kv(f, "late", sc.c.late);
	fmt_kv(f, "transient", sc.c.transient);
	fmt_kv(f, "pool_exhausted", sc.c.pool_exhausted);
	fmt_kv(f, "skipped", sc.c.snapshot_failures);
	fmt_kv(f, "errors", sc.c.insert_errors + sc.c.remove_errors + sc.c.candidates_dropped +
				    sc.c.bugs);
	fmt_kv(f, "invalidations", st.invalidations);
	fmt_kv(f, "warnings", st.warnings);
	fmt_kv(f, "check_ms", sc.c.check_ns / 1000000);
	fmt_kv(f, "violations", sc.c.violations);
	fmt_str(f, "\n");
}

void selfcheck_exit(void)
{
	struct fmt f = { .fd = -1 };
	const char *status = "ok";
	unsigned int want;
	long fd;

	/* Only the process that started the checker; a forked child has none. */
	if (!sc.mem || sc.exited || getpid() != sc.pid)
		return;
	sc.exited = true;
	want = __atomic_add_fetch(&sc.sh.requested, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sc.sh.stop_at, want, __ATOMIC_RELEASE);
	sc_kick();
	/* The exit pass; never hang the program's exit for it. */
	switch (sc_wait_served(want, SC_EXIT_WAIT_S)) {
	case 0:
		break;
	case -ETIMEDOUT:
		status = "timeout";
		sc_log(MMN_LOG_ERROR, "selfcheck: the exit pass did not finish; report incomplete");
		break;
	default:
		status = "no-checker";
		break;
	}

	if (sc.log_path[0]) {
		/* openat: aarch64 has no open system call. */
		fd = raw_syscall(SYS_openat, AT_FDCWD, sc.log_path,
				 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644, 0, 0);
		f.fd = fd >= 0 ? (int)fd : -1;
	} else {
		f.fd = STDERR_FILENO;	/* may be closed already (sort closes it) */
	}
	sc_report(&f, status);
	fmt_flush(&f);
	if (sc.log_path[0] && f.fd >= 0)
		raw_syscall(SYS_close, f.fd, 0, 0, 0, 0, 0);
}
