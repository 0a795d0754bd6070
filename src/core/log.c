// SPDX-License-Identifier: MIT
/*
 * The log hook, warnings (D5) and the environment switches read at load time.
 *
 * Reports can come from inside an invalidation, and so from inside free():
 * nothing here allocates, formats with stdio or takes a lock on the reporting
 * path. The hook is kept in two slots; a setter fills the idle slot and then
 * publishes its index, so a reporter always reads a matching (fn, arg) pair
 * unless the hook is changed twice during one report.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct log_hook {
	mmn_log_fn *fn;
	void *arg;
};

static struct log_hook hooks[2];
static unsigned int hook_index;		/* atomic: the published slot */
static pthread_mutex_t hook_setter = PTHREAD_MUTEX_INITIALIZER;
static bool abort_on_warn;		/* MMN_ABORT_ON_WARN=1, read at load */

__attribute__((constructor)) static void log_init_from_env(void)
{
	const char *v;

	v = getenv("MMN_ABORT_ON_WARN");
	abort_on_warn = v && strcmp(v, "1") == 0;
	v = getenv("MMN_LOG");
	if (v && strcmp(v, "stderr") == 0)
		mmn_set_log_fn(mmn_log_stderr, NULL);
}

void mmn_set_log_fn(mmn_log_fn *fn, void *arg)
{
	unsigned int next;

	pthread_mutex_lock(&hook_setter);
	next = !__atomic_load_n(&hook_index, __ATOMIC_RELAXED);
	__atomic_store_n(&hooks[next].fn, fn, __ATOMIC_RELAXED);
	__atomic_store_n(&hooks[next].arg, arg, __ATOMIC_RELAXED);
	/* Pairs with the acquire load in mmn_log(). */
	__atomic_store_n(&hook_index, next, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&hook_setter);
}

/*
 * The hook is called with cancellation disabled: reporters call it with
 * their own locks held (a layer's init lock, a cache lock), and a hook that
 * writes (mmn_log_stderr's write(2)) is a cancellation point, where a
 * cancelled thread would die holding them. A pending cancel acts at the
 * reporter's caller's next cancellation point.
 */
void mmn_log(const struct mmn_log_record *rec)
{
	unsigned int i = __atomic_load_n(&hook_index, __ATOMIC_ACQUIRE);
	mmn_log_fn *fn = __atomic_load_n(&hooks[i].fn, __ATOMIC_RELAXED);
	int cancel_state;

	if (!fn)
		return;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	fn(rec, __atomic_load_n(&hooks[i].arg, __ATOMIC_RELAXED));
	pthread_setcancelstate(cancel_state, NULL);
}

static void log_at(enum mmn_log_level level, struct mmn_mm *mm, const char *what,
		   struct mmn_interval_notifier *sub, unsigned long start,
		   unsigned long end)
{
	struct mmn_log_record rec = {
		.level = level, .what = what, .mm = mm, .sub = sub,
		.start = start, .end = end,
	};

	mmn_log(&rec);
}

void mmn_warn(struct mmn_mm *mm, const char *what,
	      struct mmn_interval_notifier *sub, unsigned long start,
	      unsigned long end)
{
	if (mm)
		mm_count_warning(mm);
	log_at(MMN_LOG_WARN, mm, what, sub, start, end);
	if (abort_on_warn)
		abort();
}

void mmn_log_error(struct mmn_mm *mm, const char *what,
		   struct mmn_interval_notifier *sub, unsigned long start,
		   unsigned long end)
{
	log_at(MMN_LOG_ERROR, mm, what, sub, start, end);
}

void mmn_fatal(struct mmn_mm *mm, const char *what,
	       struct mmn_interval_notifier *sub)
{
	struct mmn_log_record rec = {
		.level = MMN_LOG_ERROR, .what = what, .mm = mm, .sub = sub,
	};

	mmn_log(&rec);
	/* Whatever the hook did, say why we stop. */
	if (__atomic_load_n(&hooks[__atomic_load_n(&hook_index, __ATOMIC_ACQUIRE)].fn,
			    __ATOMIC_RELAXED) != mmn_log_stderr)
		mmn_log_stderr(&rec, NULL);
	abort();
}

/* Append @s to the buffer at *@pos, bounded by @end. */
static void put_str(char **pos, char *end, const char *s)
{
	while (*s && *pos < end)
		*(*pos)++ = *s++;
}

static void put_hex(char **pos, char *end, unsigned long v)
{
	char digits[2 + 2 * sizeof(v)];
	int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	put_str(pos, end, "0x");
	while (n && *pos < end)
		*(*pos)++ = digits[--n];
}

void mmn_log_stderr(const struct mmn_log_record *rec, void *arg)
{
	static const char *const level_names[] = {
		[MMN_LOG_ERROR] = "error", [MMN_LOG_WARN] = "warning",
		[MMN_LOG_INFO] = "info",
	};
	char buf[512], *pos = buf, *end = buf + sizeof(buf) - 1;
	ssize_t ret;

	(void)arg;
	put_str(&pos, end, "libmmn: ");
	put_str(&pos, end, (unsigned int)rec->level <= MMN_LOG_INFO ?
			   level_names[rec->level] : "?");
	put_str(&pos, end, ": ");
	put_str(&pos, end, rec->what ? rec->what : "(no text)");
	if (rec->mm) {
		put_str(&pos, end, " mm=");
		put_hex(&pos, end, (unsigned long)rec->mm);
	}
	if (rec->sub) {
		put_str(&pos, end, " sub=");
		put_hex(&pos, end, (unsigned long)rec->sub);
	}
	if (rec->start || rec->end) {
		put_str(&pos, end, " range=[");
		put_hex(&pos, end, rec->start);
		put_str(&pos, end, ", ");
		put_hex(&pos, end, rec->end);
		put_str(&pos, end, ")");
	}
	*pos++ = '\n';
	ret = write(STDERR_FILENO, buf, (size_t)(pos - buf));
	(void)ret;
}
