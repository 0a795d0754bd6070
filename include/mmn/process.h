/* SPDX-License-Identifier: MIT */
/*
 * Process event sources: this process's own address space drives one
 * process-wide notifier domain.
 *
 * Once mmn_process_mm() has run, every call that can change a mapping of the
 * process -- munmap, mremap, madvise and process_madvise (the advices that
 * discard or move pages), brk/sbrk shrink, shmdt, shmat(SHM_REMAP),
 * mmap(MAP_FIXED), remap_file_pages, mprotect and pkey_mprotect -- opens an invalidation of the affected range *before* the real
 * system call and closes it after, whatever the call returns. That includes
 * glibc's own calls from malloc, free, realloc and malloc_trim, which never
 * pass through the import table: libmmn patches the entry of libc's functions,
 * which glibc's internal calls reach too (docs/process-events.md).
 *
 * A userfaultfd monitor backs this up for subscribed anonymous memory: it sees
 * unmaps made by raw system calls and static code. Its events come after the
 * fact (UNMAP, REMAP) or before the zap but without waiting for it (REMOVE).
 *
 * Allocators and other interposers can feed events themselves with
 * mmn_process_event_begin() / _end() instead of patching the same functions.
 */
#ifndef MMN_PROCESS_H
#define MMN_PROCESS_H

#include <mmn.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * mmn_process_mm() - the process-wide domain, created and hooked on first use
 * @mmp: where to store it
 *
 * The first call creates the domain, patches libc's mapping functions and
 * starts the userfaultfd backstop (unless MMN_BACKSTOP=0 is set). Later calls
 * return the same domain. Call it early, ideally before creating threads:
 * patching is done with single atomic stores, but the fewer threads run libc's
 * mapping functions at that moment the better. Every hook that could not be
 * installed is reported through the log hook and by mmn_process_coverage().
 *
 * Context: thread-safe; allocates on the first call, so not from inside a
 * notifier callback or a malloc hook.
 * Return: 0; -EINVAL if @mmp is NULL; -ENOMEM.
 */
MMN_API int mmn_process_mm(struct mmn_mm **mmp);

/**
 * mmn_process_insert() - subscribe to process memory
 * @sub: a zeroed (or removed) notifier
 * @start: first address
 * @length: number of bytes
 * @ops: callbacks
 *
 * mmn_interval_notifier_insert() on the process domain (created if needed),
 * plus registration of the interval's anonymous pages with the userfaultfd
 * backstop. Remove it with mmn_interval_notifier_remove().
 *
 * Return: as mmn_interval_notifier_insert(), or -ENOMEM creating the domain.
 * A backstop registration that fails is not an error (see coverage).
 */
MMN_API int mmn_process_insert(struct mmn_interval_notifier *sub, unsigned long start,
			       unsigned long length,
			       const struct mmn_interval_notifier_ops *ops);

/**
 * struct mmn_process_event - an externally reported change, for begin/end
 * @range: the invalidation (read-only for the caller)
 *
 * The remaining fields are private.
 */
struct mmn_process_event {
	struct mmn_range range;
	/* private: */
	struct mmn_process_event *outer;
	unsigned int state;
};

/**
 * mmn_process_event_begin() - report a change of [start, end) before making it
 * @ev: caller-owned until mmn_process_event_end()
 * @event: what happens (MMN_EVENT_UNMAP, _CLEAR, _PROTECTION_VMA, ...)
 * @start: first address
 * @end: one past the last address
 *
 * For allocators and interposers that see mapping changes themselves (UCX,
 * libfabric, MPI): invalidates the range in the process domain, blockable.
 * While the event is open on this thread, libmmn's own hooks do not report
 * the same range again, so the caller may then call the (hooked) munmap etc.
 * Does nothing, successfully, if the process domain does not exist yet.
 *
 * Context: allocation-free; safe inside free() and inside other hooks.
 * Return: 0; -EINVAL for a NULL @ev or an empty range (then do not call _end).
 */
MMN_API int mmn_process_event_begin(struct mmn_process_event *ev, enum mmn_event event,
				    unsigned long start, unsigned long end);

/**
 * mmn_process_event_end() - the change reported by _begin is complete
 * @ev: the event
 *
 * Context: on the thread that called mmn_process_event_begin(); events nest.
 * Called on another thread, or for an event that is not open, it reports an
 * error through the log hook and changes nothing.
 */
MMN_API void mmn_process_event_end(struct mmn_process_event *ev);

/* The mapping calls libmmn watches. */
enum mmn_process_call {
	MMN_CALL_MUNMAP = 0,
	MMN_CALL_MREMAP,
	MMN_CALL_MADVISE,
	MMN_CALL_BRK,
	MMN_CALL_SHMDT,
	MMN_CALL_SHMAT,
	MMN_CALL_MMAP,
	MMN_CALL_MPROTECT,
	MMN_CALL_PKEY_MPROTECT,
	MMN_CALL_REMAP_FILE_PAGES,
	MMN_CALL_PROCESS_MADVISE,
	MMN_CALL_COUNT
};

enum mmn_hook_method {
	MMN_HOOK_NONE = 0,	/* not hooked: see error[] */
	MMN_HOOK_ENTRY_PATCH,	/* libc's function entry jumps to libmmn */
	MMN_HOOK_CHAINED,	/* as ENTRY_PATCH, and libmmn's hook then runs the
				 * foreign hook that had patched the entry (UCX,
				 * libfabric, Open MPI): see foreign[] */
};

/* How a raw system call (one made outside libc's patched entries) is seen. */
enum mmn_raw_method {
	MMN_RAW_NONE = 0,		/* not seen */
	MMN_RAW_BACKSTOP_AFTER,		/* by the userfaultfd backstop, after the change;
					   subscribed anonymous memory only */
	MMN_RAW_BEFORE,			/* before the change: syscall user dispatch */
};

/* How a foreign interposer's calls reach libmmn's notifiers. */
enum mmn_foreign_cover {
	MMN_COVER_NOT = 0,	/* not seen by libmmn's hooks (backstop only) */
	MMN_COVER_BEFORE,	/* libmmn invalidates before the call's change */
	MMN_COVER_AFTER,	/* only after the change (the backstop) */
};

/* What the foreign interposer did. */
enum mmn_foreign_kind {
	MMN_FOREIGN_ENTRY_PATCH = 1,	/* patched libc's entry (UCX bistro, libfabric
					 * memhooks, Open MPI): libmmn chains through */
	MMN_FOREIGN_SYMBOL,		/* defines the symbol itself (tcmalloc): callers'
					 * GOT slots are routed through libmmn */
};

#define MMN_FOREIGN_MAX 24

/**
 * struct mmn_foreign_hook - one foreign interposer of one call
 * @call: the call (sbrk is reported as MMN_CALL_BRK)
 * @kind: how it interposes
 * @cover: how its calls are covered
 * @object: file name of the object its code is in ("libucm.so.0", ...)
 */
struct mmn_foreign_hook {
	enum mmn_process_call call;
	enum mmn_foreign_kind kind;
	enum mmn_foreign_cover cover;
	char object[48];
};

/* MMN_MONITOR: which event sources run (docs/process-events.md). */
#define MMN_MONITOR_PATCH	0x1u	/* libc entry patching (with chaining) */
#define MMN_MONITOR_INTERPOSE	0x2u	/* following interposed symbols */
#define MMN_MONITOR_BACKSTOP	0x4u	/* the userfaultfd backstop */

/**
 * struct mmn_process_coverage - which paths are watched, and how
 * @method: per call, how it is hooked
 * @error: per call, -errno explaining MMN_HOOK_NONE (0 when hooked)
 * @events: per call, the invalidations it opened (a call may open none: a
 *	refused call, a nested one not followed; mremap with MREMAP_FIXED opens
 *	two: the old range and the destination)
 * @backstop: the userfaultfd monitor is running
 * @backstop_error: -errno explaining why it is not (0 when it is)
 * @backstop_ranges: ranges registered with the monitor
 * @backstop_events: events the monitor turned into invalidations (raw
 *	system calls and other paths the hooks did not see)
 * @backstop_duplicates: events the monitor dropped because a hook had
 *	already reported the range
 * @nested_too_deep: hooked calls made inside callbacks nested more deeply
 *	than libmmn follows; each was also reported as a warning
 * @fork_in_libc: fork() takes the domain locks inside glibc's fork, after
 *	glibc's malloc locks (safe against hooks running inside malloc); false:
 *	pthread_atfork handlers do it, and a fork while another thread is inside
 *	malloc can deadlock (docs/process-events.md)
 * @fork_error: -errno explaining fork_in_libc false (0 when true)
 *
 * Raw system calls (docs/process-events.md, "Raw system calls"):
 * @raw_method: per call, how the same change made by a raw system call (the
 *	`syscall` instruction outside libc, libc's syscall(), the dynamic
 *	loader, a static program) is seen
 * @raw_events: per call, the invalidations raw calls opened (also counted in
 *	@events)
 * @raw_error: -errno explaining why syscall user dispatch is off (0 when
 *	on): -ECANCELED MMN_RAW=0; -EBUSY a SIGSYS handler was installed
 *	before libmmn; -EINVAL the kernel has no dispatch (before 5.11);
 *	-EOPNOTSUPP not implemented on this architecture, or a
 *	ThreadSanitizer build (TSan defers signals)
 * @raw_syscall_fn: libc's syscall() is entry-patched
 * @raw_syscall_fn_error: -errno explaining @raw_syscall_fn false
 * @raw_thread_hook_error: -errno if new threads cannot be armed
 *	(pthread_create not detoured; dispatch then stays off)
 * @raw_loader: the dynamic loader's own mapping calls (dlclose, a failed
 *	dlopen) are seen before the change
 * @raw_static: a static program: every system call outside libmmn traps
 * @raw_thread_armed: dispatch is on for the calling thread
 * @raw_traps: system calls trapped (SIGSYS) so far, mapping or not
 * @raw_threads_armed: threads on which dispatch was turned on
 * @raw_arm_failed: threads on which turning it on failed
 * @monitor: the MMN_MONITOR_* sources selected at start-up (MMN_MONITOR)
 * @foreign_count: entries used in @foreign
 * @foreign: every foreign interposer of a watched call found so far
 * @foreign_rechains: times another library patched over libmmn's entry after
 *	libmmn was installed and libmmn chained through it again
 * @signal_degraded: mapping changes made from a signal handler that
 *	interrupted libmmn while it held a domain lock: not invalidated before
 *	the change (the backstop may see them after); also logged
 */
struct mmn_process_coverage {
	enum mmn_hook_method method[MMN_CALL_COUNT];
	int error[MMN_CALL_COUNT];
	uint64_t events[MMN_CALL_COUNT];
	bool backstop;
	int backstop_error;
	uint64_t backstop_ranges;
	uint64_t backstop_events;
	uint64_t backstop_duplicates;
	uint64_t nested_too_deep;
	bool fork_in_libc;
	int fork_error;
	/* Raw system calls (syscall user dispatch, src/vm/sud.c). */
	enum mmn_raw_method raw_method[MMN_CALL_COUNT];
	uint64_t raw_events[MMN_CALL_COUNT];
	int raw_error;
	bool raw_syscall_fn;
	int raw_syscall_fn_error;
	int raw_thread_hook_error;
	bool raw_loader;
	bool raw_static;
	bool raw_thread_armed;
	uint64_t raw_traps;
	uint64_t raw_threads_armed;
	uint64_t raw_arm_failed;
	/* Coexistence with other interposers (UCX, libfabric, MPI, tcmalloc). */
	unsigned int monitor;
	unsigned int foreign_count;
	struct mmn_foreign_hook foreign[MMN_FOREIGN_MAX];
	uint64_t foreign_rechains;
	uint64_t signal_degraded;
};

/**
 * mmn_process_coverage() - report the event sources' coverage
 * @cov: filled in
 *
 * Return: 0; -EINVAL if @cov is NULL; -ENODEV if mmn_process_mm() has not
 * run yet (@cov is then all "not hooked").
 */
MMN_API int mmn_process_coverage(struct mmn_process_coverage *cov);

/** mmn_process_call_name() - "munmap", "mremap", ...; NULL if out of range */
MMN_API const char *mmn_process_call_name(enum mmn_process_call call);

/* ---- Feeding other memory monitors (docs/process-events.md) ------------- */

/**
 * mmn_feed_ucx() - make libmmn the source of UCX's memory-unmap events
 *
 * Declares UCM_EVENT_VM_UNMAPPED external (ucm_set_external_event()) and
 * passes every mapping change libmmn sees (unmap, discard, move; not
 * protection changes) to UCX with ucm_vm_munmap(), from libmmn's first pass:
 * before the change for hooked calls, promptly after for what only the
 * backstop sees. libucm must already be loaded; libmmn does not link it.
 * Call it before UCX registers its first handler for that event (before
 * ucp_init()), and run with UCX_MEM_MMAP_HOOK_MODE=none so that libucm
 * patches nothing itself.
 *
 * Context: allocates; not from a notifier callback.
 * Return: 0; -ENOENT if libucm is not loaded; -EALREADY if already fed;
 * errors of mmn_process_mm() and mmn_interval_notifier_insert().
 */
MMN_API int mmn_feed_ucx(void);

struct fid_mem_monitor;

/**
 * mmn_ofi_monitor() - libmmn as a libfabric memory monitor (import monitor)
 *
 * Returns libmmn's struct fid_mem_monitor (rdma/fi_ext.h). Hand it to
 * libfabric before any registration cache starts:
 * fi_import(FI_VERSION(1, 17), "mr_cache", NULL, 0, 0, &mon->fid, NULL).
 * libfabric then starts it, subscribes its cache entries and is notified of
 * every change libmmn sees, as with its own memhooks monitor; libfabric's
 * own hooks stay uninstalled. fi_close(&mon->fid) detaches it again.
 *
 * Context: thread-safe; one monitor per process.
 * Return: the monitor; NULL if libmmn was built without rdma/fi_ext.h.
 */
MMN_API struct fid_mem_monitor *mmn_ofi_monitor(void);

#ifdef __cplusplus
}
#endif

#endif /* MMN_PROCESS_H */
