/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the scenario tests (docs/TESTING.md): a log-hook capture,
 * an event recorder that renders a run as a short string ("S1 S2 F1 F2"), a
 * gate that a callback can block on until the test opens it, and a few
 * thread and stats shortcuts. Header-only, like harness.h.
 */
#ifndef MMN_TEST_SCENARIO_UTIL_H
#define MMN_TEST_SCENARIO_UTIL_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>

#include "harness.h"
#include "internal.h"

/* Bounded waits: long enough never to fail on a loaded machine. */
#define WAIT_MS 10000

/*
 * Checks inside callbacks that run on helper threads: harness.h's counters
 * are not atomic, so these count failures atomically and print them at once;
 * the test then asserts expect_no_cb_failures() on its main thread.
 */
static int cb_failures __attribute__((unused));	/* atomic */

#define cb_expect(cond)                                                         \
	do {                                                                    \
		if (!(cond)) {                                                  \
			__atomic_fetch_add(&cb_failures, 1, __ATOMIC_RELAXED);  \
			fprintf(stderr, "  FAIL %s:%d (in a callback): %s\n",   \
				__FILE__, __LINE__, #cond);                     \
		}                                                               \
	} while (0)

#define expect_no_cb_failures() \
	expect_eq(__atomic_exchange_n(&cb_failures, 0, __ATOMIC_RELAXED), 0)

/* ---- log hook capture -------------------------------------------------- */

#define CAP_MAX 256

struct cap_rec {
	enum mmn_log_level level;
	const char *what;
	struct mmn_mm *mm;
	struct mmn_interval_notifier *sub;
	unsigned long start;
	unsigned long end;
};

static struct cap_rec cap_recs[CAP_MAX];
static unsigned int cap_n;	/* atomic */

/* The hook: may run on any thread and inside an invalidation. */
static inline void cap_hook(const struct mmn_log_record *rec, void *arg)
{
	unsigned int i = __atomic_fetch_add(&cap_n, 1, __ATOMIC_RELAXED);

	(void)arg;
	if (i < CAP_MAX)
		cap_recs[i] = (struct cap_rec){ rec->level, rec->what, rec->mm,
						rec->sub, rec->start, rec->end };
}

static inline void cap_install(void)
{
	__atomic_store_n(&cap_n, 0, __ATOMIC_RELAXED);
	mmn_set_log_fn(cap_hook, NULL);
}

static inline unsigned int cap_count(void)
{
	unsigned int n = __atomic_load_n(&cap_n, __ATOMIC_RELAXED);

	return n < CAP_MAX ? n : CAP_MAX;
}

static inline void cap_reset(void)
{
	__atomic_store_n(&cap_n, 0, __ATOMIC_RELAXED);
}

/* ---- event recorder ------------------------------------------------------ */

#define EV_MAX 4096

struct ev {
	char kind;			/* 'S' start, 'F' finish, 'I' single pass, ... */
	int id;
	unsigned long start, end, cur_seq;
	unsigned int flags;
	enum mmn_event event;
	pthread_t thread;
	const void *ptr;
};

static struct ev ev_log[EV_MAX];
static int ev_n;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void ev_reset(void)
{
	pthread_mutex_lock(&ev_lock);
	ev_n = 0;
	pthread_mutex_unlock(&ev_lock);
}

static inline void ev_add(char kind, int id, const struct mmn_range *range,
			  unsigned long cur_seq, const void *ptr)
{
	pthread_mutex_lock(&ev_lock);
	if (ev_n < EV_MAX) {
		struct ev *e = &ev_log[ev_n++];

		*e = (struct ev){ .kind = kind, .id = id, .cur_seq = cur_seq,
				  .thread = pthread_self(), .ptr = ptr };
		if (range) {
			e->start = range->start;
			e->end = range->end;
			e->flags = range->flags;
			e->event = range->event;
		}
	}
	pthread_mutex_unlock(&ev_lock);
}

static inline int ev_count(void)
{
	int n;

	pthread_mutex_lock(&ev_lock);
	n = ev_n;
	pthread_mutex_unlock(&ev_lock);
	return n;
}

/* "S1 S2 F1": every event of the log (or only those on @thread, if non-NULL). */
static inline const char *ev_str_of(const pthread_t *thread)
{
	static char buf[8192];
	size_t pos = 0;

	buf[0] = 0;
	pthread_mutex_lock(&ev_lock);
	for (int i = 0; i < ev_n && pos + 16 < sizeof(buf); i++) {
		if (thread && !pthread_equal(*thread, ev_log[i].thread))
			continue;
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%c%d",
					pos ? " " : "", ev_log[i].kind, ev_log[i].id);
	}
	pthread_mutex_unlock(&ev_lock);
	return buf;
}

static inline const char *ev_str(void)
{
	return ev_str_of(NULL);
}

/* ---- gates --------------------------------------------------------------- */

/*
 * A callback calls gate_wait() and blocks until the test calls gate_open();
 * gate_waiting() tells the test how many threads are parked there.
 */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	int waiting;
	int passed;
};

#define GATE_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0 }

static inline void gate_wait(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->waiting++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	g->waiting--;
	g->passed++;
	pthread_mutex_unlock(&g->lock);
}

static inline void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static inline void gate_close(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = false;
	pthread_mutex_unlock(&g->lock);
}

static inline int gate_waiting(struct gate *g)
{
	int n;

	pthread_mutex_lock(&g->lock);
	n = g->waiting;
	pthread_mutex_unlock(&g->lock);
	return n;
}

/* ---- flags and stats ------------------------------------------------------ */

static inline bool flag_get(const bool *f)
{
	return __atomic_load_n(f, __ATOMIC_ACQUIRE);
}

static inline void flag_set(bool *f, bool v)
{
	__atomic_store_n(f, v, __ATOMIC_RELEASE);
}

static inline struct mmn_stats stats_of(struct mmn_mm *mm)
{
	struct mmn_stats st;

	memset(&st, 0xff, sizeof(st));
	if (mmn_mm_get_stats(mm, &st))
		test_fail_at(__FILE__, __LINE__);
	return st;
}

/* Every notifier removed and the domain freed (the test fails if busy). */
#define destroy_mm(mm) expect_eq(mmn_mm_destroy(mm), 0)

#endif /* MMN_TEST_SCENARIO_UTIL_H */
