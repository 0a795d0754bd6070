// SPDX-License-Identifier: MIT
/*
 * The process-wide domain and the bracket every hooked call goes through.
 *
 * vm_call_begin() opens an invalidation of the range a call will change,
 * before the system call; vm_call_end() closes it after. Keeping the region
 * open across the system call is what closes the peers' "register during
 * unmap" window: a notifier inserted meanwhile makes the period odd (the
 * core's partial-exclusion rule), so its read_begin waits until the unmap is
 * done and its first fault sees the new mapping.
 *
 * Per thread, two things are tracked (initial-exec TLS: no allocation):
 *  - the external events this thread has open (mmn_process_event_begin), so a
 *    hooked call inside one reports nothing twice;
 *  - how deeply hooked calls are nested inside callbacks, so a callback that
 *    unmaps memory cannot recurse without bound.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/auxv.h>

#include <string.h>

#include "../core/fork.h"
#include "../core/single.h"
#include "vm.h"

unsigned long vm_page_size MMN_HOT_DATA = 4096;

static struct mmn_mm *process_mm MMN_HOT_DATA;	/* published with release, once */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static enum mmn_hook_method hook_method[MMN_CALL_COUNT];
static int hook_error[MMN_CALL_COUNT];
static int backstop_error = -ENODEV;
static int fork_error = -ENODEV;
static int dlopen_error = -ENODEV;
static uint64_t call_events[MMN_CALL_COUNT] MMN_HOT_DATA __attribute__((aligned(64))); /* atomic */
static uint64_t nested_too_deep;		/* atomic */
static uint64_t raw_events[MMN_CALL_COUNT];	/* atomic: of call_events, by the raw path */
static int syscall_fn_error = -ENODEV;
static uint64_t signal_degraded;		/* atomic */
static uint64_t signal_degraded_logged;		/* under init_lock */
static unsigned int monitor = MMN_MONITOR_PATCH | MMN_MONITOR_INTERPOSE | MMN_MONITOR_BACKSTOP;

static __thread struct mmn_process_event *ext_top __attribute__((tls_model("initial-exec")));
static __thread unsigned int nest_depth __attribute__((tls_model("initial-exec")));
static __thread bool call_raw __attribute__((tls_model("initial-exec")));

void vm_call_set_raw(bool raw)
{
	call_raw = raw;
}

/* Per call: its name and what the first mmn_process_mm() reports about it. */
static const struct call_info {
	const char *name;
	const char *hooked;
	const char *missed;
} calls[MMN_CALL_COUNT] = {
	[MMN_CALL_MUNMAP] = { "munmap",
		"event sources: munmap hooked (libc entry patched)",
		"event sources: munmap NOT hooked: its unmaps are seen only by the backstop" },
	[MMN_CALL_MREMAP] = { "mremap",
		"event sources: mremap hooked (libc entry patched)",
		"event sources: mremap NOT hooked: its moves are seen only by the backstop" },
	[MMN_CALL_MADVISE] = { "madvise",
		"event sources: madvise hooked (libc entry patched)",
		"event sources: madvise NOT hooked: discarded pages are seen only by the backstop" },
	[MMN_CALL_BRK] = { "brk",
		"event sources: brk hooked (libc entry patched)",
		"event sources: brk NOT hooked: heap shrinks are seen only by the backstop" },
	[MMN_CALL_SHMDT] = { "shmdt",
		"event sources: shmdt hooked (libc entry patched)",
		"event sources: shmdt NOT hooked: detaches are not seen" },
	[MMN_CALL_SHMAT] = { "shmat",
		"event sources: shmat hooked (libc entry patched)",
		"event sources: shmat NOT hooked: SHM_REMAP replacements are not seen" },
	[MMN_CALL_MMAP] = { "mmap(MAP_FIXED)",
		"event sources: mmap hooked (libc entry patched)",
		"event sources: mmap NOT hooked: MAP_FIXED replacements are seen only by the backstop" },
	[MMN_CALL_MPROTECT] = { "mprotect",
		"event sources: mprotect hooked (libc entry patched)",
		"event sources: mprotect NOT hooked: protection changes are not seen" },
	[MMN_CALL_PKEY_MPROTECT] = { "pkey_mprotect",
		"event sources: pkey_mprotect hooked (libc entry patched)",
		"event sources: pkey_mprotect NOT hooked: its protection changes are not seen" },
	[MMN_CALL_REMAP_FILE_PAGES] = { "remap_file_pages",
		"event sources: remap_file_pages hooked (libc entry patched)",
		"event sources: remap_file_pages NOT hooked: its remaps are not seen" },
	[MMN_CALL_PROCESS_MADVISE] = { "process_madvise",
		"event sources: process_madvise hooked (libc entry patched)",
		"event sources: process_madvise NOT hooked: its discards are seen only by the backstop" },
};

const char *mmn_process_call_name(enum mmn_process_call call)
{
	return (unsigned int)call < MMN_CALL_COUNT ? calls[call].name : NULL;
}

/* MMN_RAW=0: no raw path (neither libc's syscall() nor dispatch). */
static bool raw_path_off(void)
{
	const char *env = getenv("MMN_RAW");

	return env && env[0] == '0' && !env[1];
}

MMN_HOT
struct mmn_mm *vm_process_mm_or_null(void)
{
	return __atomic_load_n(&process_mm, __ATOMIC_ACQUIRE);
}

static void report(enum mmn_log_level level, const char *what)
{
	struct mmn_log_record rec = { .level = level, .what = what };

	mmn_log(&rec);
}

static void report_coverage(void)
{
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		report(hook_method[i] ? MMN_LOG_INFO : MMN_LOG_ERROR,
		       hook_method[i] ? calls[i].hooked : calls[i].missed);
	if (fork_error)
		report(MMN_LOG_WARN, "event sources: fork() NOT hooked: a fork while another thread is inside malloc may deadlock");
	else
		report(MMN_LOG_INFO, "event sources: fork() hooked (domains locked inside glibc's fork)");
	if (syscall_fn_error)
		report(MMN_LOG_WARN, "event sources: libc's syscall() NOT hooked: syscall(SYS_munmap, ...) is seen only by the raw path or the backstop");
	else
		report(MMN_LOG_INFO, "event sources: libc's syscall() hooked (libc entry patched)");
	{
		struct vm_sud_state st;

		vm_sud_counts(&st);
		if (st.error)
			report(MMN_LOG_WARN, "event sources: raw system calls NOT seen before the change: syscall user dispatch is off (see mmn_process_coverage().raw_error)");
		else
			report(MMN_LOG_INFO, st.is_static ? "event sources: raw system calls seen before the change (syscall user dispatch; static program: every system call traps)"
				: "event sources: raw system calls and the dynamic loader's seen before the change (syscall user dispatch)");
	}
	if (dlopen_error)
		report(MMN_LOG_WARN, "event sources: dlopen() NOT detoured: interposers and foreign patches arriving with a later dlopen() are found at the next coverage query or mprotect, not at once");
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		if (hook_method[i] == MMN_HOOK_CHAINED) {
			report(MMN_LOG_INFO, "event sources: foreign patches were on hooked entries: libmmn's hook runs first, then the foreign hook (see mmn_process_coverage().foreign)");
			break;
		}
	}
	if (backstop_error)
		report(MMN_LOG_WARN, "event sources: userfaultfd backstop NOT running: raw system calls are not seen");
	else
		report(MMN_LOG_INFO, "event sources: userfaultfd backstop running");
}

/*
 * MMN_MONITOR: a comma-separated list of "patch", "interpose", "backstop",
 * or "all" (the default) or "none" -- as libfabric's FI_MR_CACHE_MONITOR.
 * MMN_BACKSTOP=0 still turns the backstop off.
 */
static int parse_monitor(void)
{
	static const struct {
		const char *name;
		unsigned int bits;
	} names[] = {
		{ "patch", MMN_MONITOR_PATCH },
		{ "interpose", MMN_MONITOR_INTERPOSE },
		{ "backstop", MMN_MONITOR_BACKSTOP },
		{ "all", MMN_MONITOR_PATCH | MMN_MONITOR_INTERPOSE | MMN_MONITOR_BACKSTOP },
		{ "none", 0 },
	};
	const char *env = getenv("MMN_MONITOR"), *p = env;
	unsigned int bits = 0;

	if (!env || !*env)
		return 0;
	while (*p) {
		size_t n = strcspn(p, ",");
		bool known = false;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (strlen(names[i].name) == n && !strncmp(p, names[i].name, n)) {
				bits |= names[i].bits;
				known = true;
			}
		}
		if (!known) {
			report(MMN_LOG_ERROR, "event sources: MMN_MONITOR names an unknown source (known: patch, interpose, backstop, all, none)");
			return -EINVAL;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	monitor = bits;
	return 0;
}

int mmn_process_mm(struct mmn_mm **mmp)
{
	struct mmn_mm *mm;
	int err = 0;

	if (!mmp)
		return -EINVAL;
	mm = vm_process_mm_or_null();
	if (mm) {
		*mmp = mm;
		return 0;
	}
	pthread_mutex_lock(&init_lock);
	mm = vm_process_mm_or_null();
	if (!mm) {
		unsigned long ps = getauxval(AT_PAGESZ);

		if (ps)
			vm_page_size = ps;
		err = mmn_mm_new(&mm);
		if (!err)
			err = parse_monitor();
		if (!err) {
			/* The hooks pass everything through until mm is published. */
			if (monitor & MMN_MONITOR_PATCH) {
				vm_install_hooks(hook_method, hook_error);
			} else {
				for (int i = 0; i < MMN_CALL_COUNT; i++)
					hook_error[i] = -EPERM;
			}
			if (monitor & MMN_MONITOR_INTERPOSE)
				vm_interpose_install();
			if (monitor & (MMN_MONITOR_PATCH | MMN_MONITOR_INTERPOSE))
				dlopen_error = vm_install_dlopen_hook();
			fork_error = vm_install_fork_hook();
			/* libc's syscall() is an entry patch too: MMN_MONITOR's "patch". */
			syscall_fn_error = !(monitor & MMN_MONITOR_PATCH) ? -EPERM
					   : raw_path_off() ? -ECANCELED : vm_install_syscall_hook();
			/* Before the backstop: its monitor thread is created armed. */
			vm_sud_start();
			backstop_error = monitor & MMN_MONITOR_BACKSTOP ? vm_backstop_start() : -EPERM;
			__atomic_store_n(&process_mm, mm, __ATOMIC_RELEASE);
			report_coverage();
		}
	}
	pthread_mutex_unlock(&init_lock);
	if (!err)
		*mmp = mm;
	return err;
}

int mmn_process_insert(struct mmn_interval_notifier *sub, unsigned long start,
		       unsigned long length, const struct mmn_interval_notifier_ops *ops)
{
	struct mmn_mm *mm;
	int err;

	err = mmn_process_mm(&mm);
	if (err)
		return err;
	err = mmn_interval_notifier_insert(sub, mm, start, length, ops);
	if (err)
		return err;
	/* The interval's last byte may be ULONG_MAX: register up to there. */
	vm_backstop_register(start, start + (length - 1) == ULONG_MAX ? ULONG_MAX
								       : start + length);
	return 0;
}

/* Is [start, end) inside an external event this thread has open? */
MMN_HOT
static bool reported_by_caller(unsigned long start, unsigned long end)
{
	for (struct mmn_process_event *ev = ext_top; ev; ev = ev->outer)
		if (ev->range.start <= start && end <= ev->range.end)
			return true;
	return false;
}

/* Open a region on @mm; false if none was opened. */
MMN_HOT
static bool open_region(struct mmn_range *range, struct mmn_mm *mm, enum mmn_event event,
			unsigned long start, unsigned long end)
{
	int err;
	char sud;

	if (nest_depth >= VM_MAX_NEST) {
		struct mmn_log_record rec = {
			.level = MMN_LOG_WARN, .mm = mm, .start = start, .end = end,
			.what = "event sources: mapping change inside callbacks nested too deeply; not reported",
		};

		__atomic_add_fetch(&nested_too_deep, 1, __ATOMIC_RELAXED);
		mmn_log(&rec);
		return false;
	}
	if (mmn_lock_held_by_thread()) {
		/*
		 * A signal handler interrupted this thread inside the core,
		 * holding the domain lock: taking it would wait forever. Let
		 * the change through, counted (and logged by the next
		 * coverage query: logging here is not async-signal-safe).
		 */
		__atomic_add_fetch(&signal_degraded, 1, __ATOMIC_RELAXED);
		return false;
	}
	mmn_range_init(range, event, 0, mm, start, end);
	nest_depth++;
	/* Callbacks' own system calls run untrapped (sud.c says why). */
	sud = vm_sud_allow(1);
	err = mmn_invalidate_range_start(range);
	vm_sud_restore(sud);
	nest_depth--;
	return err == 0;
}

MMN_HOT
void vm_call_begin(struct vm_call *c, enum mmn_process_call call, enum mmn_event event,
		   unsigned long start, unsigned long end)
{
	struct mmn_mm *mm = vm_process_mm_or_null();
	bool raw = call_raw;

	c->open = false;
	c->slot = -1;
	/* For a chained foreign hook: this range is dealt with, whatever happens below. */
	c->ev.range.start = start;
	c->ev.range.end = end;
	if (!mm || start >= end || reported_by_caller(start, end))
		return;
	if (event != MMN_EVENT_PROTECTION_VMA)
		vm_backstop_before_unmap(start, end);
	c->slot = vm_inflight_publish(start, end);
	/* Calls made by the callbacks are their own, not this raw call's. */
	call_raw = false;
	c->open = open_region(&c->range, mm, event, start, end);
	call_raw = raw;
	if (c->open) {
		MMN_ADD_SINGLE(call_events[call], 1, __ATOMIC_RELAXED);
		if (raw)
			MMN_ADD_SINGLE(raw_events[call], 1, __ATOMIC_RELAXED);
	}
}

MMN_HOT
void vm_call_chain_enter(struct vm_call *c)
{
	/*
	 * Pushed even when no region was opened (no domain yet, a degraded
	 * call from a signal handler, nesting too deep): the inner hook the
	 * foreign code reaches must not count or report the same call again.
	 */
	c->pushed = c->ev.range.start < c->ev.range.end;
	if (!c->pushed)
		return;
	c->ev.outer = ext_top;
	ext_top = &c->ev;
}

MMN_HOT
void vm_call_chain_leave(struct vm_call *c)
{
	if (c->pushed)
		ext_top = c->ev.outer;
	c->pushed = false;
}

MMN_HOT
void vm_call_end(struct vm_call *c)
{
	/* Slot first: see "Why that is sound" in backstop.c. */
	if (c->slot >= 0)
		vm_inflight_done(c->slot);
	if (c->open) {
		char sud = vm_sud_allow(1);

		mmn_invalidate_range_end(&c->range);
		vm_sud_restore(sud);
	}
}

enum { EV_IDLE = 0, EV_REPORTED, EV_OPEN };

int mmn_process_event_begin(struct mmn_process_event *ev, enum mmn_event event,
			    unsigned long start, unsigned long end)
{
	struct mmn_mm *mm = vm_process_mm_or_null();

	if (!ev || start >= end)
		return -EINVAL;
	ev->state = EV_REPORTED;
	if (mm && open_region(&ev->range, mm, event, start, end))
		ev->state = EV_OPEN;
	else
		mmn_range_init(&ev->range, event, MMN_RANGE_BLOCKABLE, mm, start, end);
	ev->outer = ext_top;
	ext_top = ev;
	return 0;
}

void mmn_process_event_end(struct mmn_process_event *ev)
{
	struct mmn_process_event **link;

	if (!ev || ev->state == EV_IDLE) {
		struct mmn_log_record rec = {
			.level = MMN_LOG_ERROR,
			.what = "mmn_process_event_end: no such event open",
		};

		mmn_log(&rec);
		return;
	}
	/* Events nest; unlink this one wherever it is, but say so if out of order. */
	for (link = &ext_top; *link && *link != ev; link = &(*link)->outer)
		;
	if (!*link) {
		/* Another thread's event: its list is out of reach, so leave it open. */
		report(MMN_LOG_ERROR, "mmn_process_event_end: event not open on this thread");
		return;
	}
	if (link != &ext_top)
		report(MMN_LOG_ERROR, "mmn_process_event_end: events ended out of order");
	*link = ev->outer;
	if (ev->state == EV_OPEN) {
		char sud = vm_sud_allow(1);

		mmn_invalidate_range_end(&ev->range);
		vm_sud_restore(sud);
	}
	ev->state = EV_IDLE;
}

/* The calls the backstop sees (after the fact) in subscribed anonymous memory. */
static bool backstop_sees(enum mmn_process_call call)
{
	switch (call) {
	case MMN_CALL_MUNMAP:
	case MMN_CALL_MREMAP:
	case MMN_CALL_MADVISE:
	case MMN_CALL_BRK:
	case MMN_CALL_MMAP:
	case MMN_CALL_PROCESS_MADVISE:
		return true;
	default:
		return false;
	}
}

static void raw_coverage(struct mmn_process_coverage *cov)
{
	struct vm_sud_state st;

	vm_sud_counts(&st);
	cov->raw_error = st.error;
	cov->raw_static = st.is_static;
	cov->raw_loader = st.error == 0;
	cov->raw_syscall_fn = syscall_fn_error == 0;
	cov->raw_syscall_fn_error = syscall_fn_error;
	cov->raw_thread_hook_error = st.thread_hook_error;
	cov->raw_thread_armed = st.this_thread_armed;
	cov->raw_traps = st.traps;
	cov->raw_threads_armed = st.threads_armed;
	cov->raw_arm_failed = st.arm_failed;
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		if (st.error == 0)
			cov->raw_method[i] = MMN_RAW_BEFORE;
		else if (cov->backstop && backstop_sees((enum mmn_process_call)i))
			cov->raw_method[i] = MMN_RAW_BACKSTOP_AFTER;
		else
			cov->raw_method[i] = MMN_RAW_NONE;
		cov->raw_events[i] = __atomic_load_n(&raw_events[i], __ATOMIC_RELAXED);
	}
}

/* The coexistence part of the coverage; also re-chains overwritten entries. */
static void foreign_coverage(struct mmn_process_coverage *cov)
{
	struct vm_foreign f[MMN_FOREIGN_MAX];
	unsigned int n;
	uint64_t degraded;

	if (monitor & MMN_MONITOR_PATCH)
		vm_hooks_recheck();
	if (monitor & MMN_MONITOR_INTERPOSE)
		vm_interpose_install();
	for (int i = 0; i < MMN_CALL_COUNT; i++)
		cov->method[i] = hook_method[i], cov->error[i] = hook_error[i];
	cov->monitor = monitor;
	n = vm_hooks_foreign(f, MMN_FOREIGN_MAX, &cov->foreign_rechains);
	for (unsigned int i = 0; i < n; i++) {
		struct mmn_foreign_hook *h = &cov->foreign[cov->foreign_count++];

		h->call = f[i].call == VM_CALL_SBRK ? MMN_CALL_BRK : (enum mmn_process_call)f[i].call;
		h->kind = MMN_FOREIGN_ENTRY_PATCH;
		h->cover = MMN_COVER_BEFORE;
		memcpy(h->object, f[i].object, sizeof(h->object));
	}
	n = vm_interpose_foreign(f, MMN_FOREIGN_MAX - cov->foreign_count);
	for (unsigned int i = 0; i < n; i++) {
		struct mmn_foreign_hook *h = &cov->foreign[cov->foreign_count++];

		h->call = f[i].call == VM_CALL_SBRK ? MMN_CALL_BRK : (enum mmn_process_call)f[i].call;
		h->kind = MMN_FOREIGN_SYMBOL;
		h->cover = f[i].present ? MMN_COVER_BEFORE
			   : cov->backstop ? MMN_COVER_AFTER : MMN_COVER_NOT;
		memcpy(h->object, f[i].object, sizeof(h->object));
	}
	degraded = __atomic_load_n(&signal_degraded, __ATOMIC_RELAXED);
	cov->signal_degraded = degraded;
	pthread_mutex_lock(&init_lock);
	if (degraded != signal_degraded_logged) {
		signal_degraded_logged = degraded;
		report(MMN_LOG_WARN, "event sources: mapping changes made from a signal handler that interrupted libmmn holding a domain lock were NOT invalidated before the change (see signal_degraded)");
	}
	pthread_mutex_unlock(&init_lock);
}

int mmn_process_coverage(struct mmn_process_coverage *cov)
{
	if (!cov)
		return -EINVAL;
	*cov = (struct mmn_process_coverage){ 0 };
	if (!vm_process_mm_or_null()) {
		for (int i = 0; i < MMN_CALL_COUNT; i++)
			cov->error[i] = -ENODEV;
		cov->backstop_error = -ENODEV;
		cov->fork_error = -ENODEV;
		cov->raw_error = -ENODEV;
		cov->raw_syscall_fn_error = -ENODEV;
		cov->raw_thread_hook_error = -ENODEV;
		return -ENODEV;
	}
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		cov->method[i] = hook_method[i];
		cov->error[i] = hook_error[i];
		cov->events[i] = __atomic_load_n(&call_events[i], __ATOMIC_RELAXED);
	}
	cov->backstop = vm_backstop_running();
	cov->backstop_error = cov->backstop ? 0 : (backstop_error ? backstop_error : -ECHILD);
	vm_backstop_counts(&cov->backstop_ranges, &cov->backstop_events,
			   &cov->backstop_duplicates);
	cov->nested_too_deep = __atomic_load_n(&nested_too_deep, __ATOMIC_RELAXED);
	cov->fork_error = fork_error;
	cov->fork_in_libc = fork_error == 0;
	raw_coverage(cov);
	foreign_coverage(cov);
	return 0;
}
