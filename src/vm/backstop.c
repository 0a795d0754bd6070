// SPDX-License-Identifier: MIT
/*
 * The userfaultfd backstop: catches what the hooks cannot see.
 *
 * Subscribed anonymous ranges are registered with a userfaultfd in
 * write-protect mode. Nothing is ever write-protected, so registration has no
 * fault side effects; it only makes the kernel report changes of those ranges
 * to a monitor thread, whoever made them: raw system calls, static code, a
 * libc copy the hooks did not patch.
 *
 * What each event means (kernel 6.x; docs/process-events.md):
 *   UFFD_EVENT_UNMAP   munmap, brk shrink, mmap(MAP_FIXED) over the range,
 *                      mremap's unmap of the old range. Sent after the pages
 *                      are gone: the backstop's invalidation comes after
 *                      the fact.
 *   UFFD_EVENT_REMOVE  madvise(DONTNEED/FREE/REMOVE). Sent before the zap, but
 *                      the caller continues as soon as the monitor has read
 *                      the event, so the invalidation races with the zap.
 *   UFFD_EVENT_REMAP   mremap moved the range. Sent after the move.
 * In every case the thread that caused the event sleeps until the monitor
 * reads it, never longer: the kernel has no "handled" acknowledgement.
 *
 * Calls made through the hooks were already invalidated before the system
 * call; the monitor recognises their events and drops them. Each hooked call
 * publishes its range in an in-flight slot before the system call; the
 * caller cannot finish that call until the monitor has read its event, so a
 * slot that is still in flight, or that completed after the monitor started
 * reading, marks the event as a duplicate. Why that is sound: the hook's
 * region is open from before its slot completes until after, so a matching
 * slot means a hooked invalidation of the range was open at, or began after,
 * the moment of the unmapping call; readers of the range then wait for that
 * period to end, which is after the unmap. (vm_call_end() completes the slot
 * before it ends the region for this reason.) A slot the monitor misses
 * costs a spurious invalidation, never a missed one.
 *
 * The slots cost the hooked call no read-modify-write it can avoid (the
 * per-munmap cost, target T4; docs/process-events.md, "What a hooked call
 * costs"): each thread starts its search at its own place (a thread-local
 * counter, no shared one), the claim is the one compare-and-swap, and a
 * completion stamps the slot with the monitor's batch *epoch* (a load of a
 * word only the monitor writes, once per batch) where it used to take a
 * ticket from a shared counter. The monitor bumps the epoch before each
 * read: a slot stamped with the new epoch or a later one completed after the
 * read began, exactly what the ticket told it. And no slot is published at
 * all for a range outside the hull of everything ever registered with the
 * userfaultfd ([reg_lo, reg_hi), widened before each registration and when a
 * registered range moves or grows): the kernel sends no event for it, so
 * there is nothing to match. A range that becomes registered behind the
 * hull's back (a raw mremap growing a registered mapping in place, or a race
 * with a registration on another thread) costs at most a spurious backstop
 * invalidation, counted in backstop_events, never a missed one.
 *
 * The monitor must never itself unmap registered memory (it would wait for
 * itself to read the event): callbacks it runs can do so, so before a hooked
 * unmapping call on the monitor thread the range is unregistered first.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "raw.h"
#include "vm.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define INFLIGHT_SLOTS 64

enum { SLOT_FREE = 0, SLOT_CLAIMED, SLOT_INFLIGHT, SLOT_DONE };

struct inflight {
	unsigned int state;		/* atomic */
	unsigned int gen;		/* atomic: bumped by each claim (by the claimer only) */
	unsigned long start, end;	/* atomic; written while CLAIMED */
	uint64_t done_epoch;		/* atomic; written before DONE */
};

static struct inflight slots[INFLIGHT_SLOTS];
/* Per thread: where its next search starts (its own round robin). */
static __thread unsigned int next_slot __attribute__((tls_model("initial-exec")));
/* atomic: bumped by the monitor before each read; written by it alone. */
static uint64_t epoch = 1;
/*
 * While the monitor matches a batch of events: the epoch it set before the
 * batch. Slots completed in it or later may still be matched and are not
 * reused until the batch is done (UINT64_MAX: no batch).
 */
static uint64_t matching_since = UINT64_MAX;
/*
 * The hull of every range ever registered with the userfaultfd (atomic):
 * the kernel reports nothing outside it. Empty while reg_lo >= reg_hi.
 */
static unsigned long reg_lo MMN_HOT_DATA = ULONG_MAX, reg_hi MMN_HOT_DATA;
static int uffd = -1;
static bool running MMN_HOT_DATA;	/* atomic */
static pthread_t monitor;
static uint64_t nr_ranges, nr_events, nr_duplicates;	/* atomic */
static __thread bool on_monitor __attribute__((tls_model("initial-exec")));

MMN_HOT
bool vm_backstop_running(void)
{
	return __atomic_load_n(&running, __ATOMIC_ACQUIRE);
}

/* Widen the hull to cover [start, end). */
static void hull_add(unsigned long start, unsigned long end)
{
	unsigned long v = __atomic_load_n(&reg_lo, __ATOMIC_RELAXED);

	while (start < v && !__atomic_compare_exchange_n(&reg_lo, &v, start, true,
							 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
	v = __atomic_load_n(&reg_hi, __ATOMIC_RELAXED);
	while (end > v && !__atomic_compare_exchange_n(&reg_hi, &v, end, true, __ATOMIC_SEQ_CST,
						       __ATOMIC_RELAXED))
		;
}

/* Could [start, end) hold registered memory? */
MMN_HOT
static bool hull_overlaps(unsigned long start, unsigned long end)
{
	return start < __atomic_load_n(&reg_hi, __ATOMIC_RELAXED) &&
	       __atomic_load_n(&reg_lo, __ATOMIC_RELAXED) < end;
}

void vm_backstop_moved(unsigned long old_start, unsigned long old_end, unsigned long start,
		       unsigned long end)
{
	if (vm_backstop_running() && hull_overlaps(old_start, old_end))
		hull_add(start, end);
}

MMN_HOT
int vm_inflight_publish(unsigned long start, unsigned long end)
{
	unsigned int first;

	if (!vm_backstop_running() || !hull_overlaps(start, end))
		return -1;	/* no event can come: nothing to match */
	/*
	 * Round robin, so a completed slot survives many later calls; each
	 * thread from its own place (its TLS address), so threads rarely meet.
	 */
	first = next_slot++ + (unsigned int)((unsigned long)&next_slot >> 6);
	for (unsigned int k = 0; k < INFLIGHT_SLOTS; k++) {
		unsigned int i = (first + k) % INFLIGHT_SLOTS;
		unsigned int state = __atomic_load_n(&slots[i].state, __ATOMIC_RELAXED);

		if (state == SLOT_DONE &&
		    __atomic_load_n(&slots[i].done_epoch, __ATOMIC_RELAXED) >=
			    __atomic_load_n(&matching_since, __ATOMIC_ACQUIRE))
			continue;	/* the monitor may still match it */
		if ((state == SLOT_FREE || state == SLOT_DONE) &&
		    __atomic_compare_exchange_n(&slots[i].state, &state, SLOT_CLAIMED, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			/*
			 * A reader that sees the new start or end also sees the
			 * new generation (release stores after it). Only the
			 * claimer writes gen, so a plain store bumps it.
			 */
			__atomic_store_n(&slots[i].gen,
					 __atomic_load_n(&slots[i].gen, __ATOMIC_RELAXED) + 1,
					 __ATOMIC_RELAXED);
			__atomic_store_n(&slots[i].start, start, __ATOMIC_RELEASE);
			__atomic_store_n(&slots[i].end, end, __ATOMIC_RELEASE);
			/* Pairs with the monitor's acquire load of the state. */
			__atomic_store_n(&slots[i].state, SLOT_INFLIGHT, __ATOMIC_RELEASE);
			return i;
		}
	}
	return -1;	/* all busy: the monitor may invalidate once more, harmlessly */
}

MMN_HOT
void vm_inflight_done(int slot)
{
	/*
	 * After the system call: if it caused an event, the monitor has read
	 * it, so the epoch it set before that read is visible here.
	 */
	__atomic_store_n(&slots[slot].done_epoch, __atomic_load_n(&epoch, __ATOMIC_SEQ_CST),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&slots[slot].state, SLOT_DONE, __ATOMIC_RELEASE);
}

/* Did a hooked call report [start, end), in flight or completed in epoch @since or later? */
static bool reported_by_hook(unsigned long start, unsigned long end, uint64_t since)
{
	for (int i = 0; i < INFLIGHT_SLOTS; i++) {
		struct inflight *f = &slots[i];
		unsigned int gen = __atomic_load_n(&f->gen, __ATOMIC_ACQUIRE);
		unsigned int state = __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
		/* Acquire loads: the second look at gen cannot move above them. */
		unsigned long s = __atomic_load_n(&f->start, __ATOMIC_ACQUIRE);
		unsigned long e = __atomic_load_n(&f->end, __ATOMIC_ACQUIRE);
		uint64_t done = __atomic_load_n(&f->done_epoch, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&f->gen, __ATOMIC_RELAXED) != gen)
			continue;	/* reclaimed while we looked: not a match */
		if (state != SLOT_INFLIGHT && state != SLOT_DONE)
			continue;
		if (s > start || end > e)
			continue;
		if (state == SLOT_INFLIGHT || done >= since)
			return true;
	}
	return false;
}

static void backstop_invalidate(enum mmn_event event, unsigned long start, unsigned long end,
				uint64_t since)
{
	struct mmn_mm *mm = vm_process_mm_or_null();
	struct mmn_range range;

	if (!mm || start >= end)
		return;
	if (reported_by_hook(start, end, since)) {
		__atomic_add_fetch(&nr_duplicates, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&nr_events, 1, __ATOMIC_RELAXED);
	mmn_range_init(&range, event, 0, mm, start, end);
	if (mmn_invalidate_range_start(&range) == 0)
		mmn_invalidate_range_end(&range);
}

static void *monitor_main(void *arg)
{
	struct uffd_msg msgs[16];

	(void)arg;
	on_monitor = true;
	for (;;) {
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };
		uint64_t since;
		long n;

		if (poll(&pfd, 1, -1) < 0)
			continue;
		/*
		 * Every hooked call whose event we are about to read is still in
		 * flight, or completes in the new epoch.
		 */
		since = __atomic_add_fetch(&epoch, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&matching_since, since, __ATOMIC_SEQ_CST);
		n = raw_syscall(SYS_read, uffd, msgs, sizeof(msgs), 0, 0, 0);
		if (n == -EAGAIN || n == -EINTR) {
			__atomic_store_n(&matching_since, UINT64_MAX, __ATOMIC_RELEASE);
			continue;
		}
		if (n < 0)
			break;
		for (long i = 0; i < n / (long)sizeof(msgs[0]); i++) {
			struct uffd_msg *m = &msgs[i];

			switch (m->event) {
			case UFFD_EVENT_UNMAP:
				backstop_invalidate(MMN_EVENT_UNMAP, m->arg.remove.start,
						    m->arg.remove.end, since);
				break;
			case UFFD_EVENT_REMOVE:
				backstop_invalidate(MMN_EVENT_CLEAR, m->arg.remove.start,
						    m->arg.remove.end, since);
				break;
			case UFFD_EVENT_REMAP:
				/* The registration moved with the mapping. */
				hull_add(m->arg.remap.to, m->arg.remap.to + m->arg.remap.len);
				backstop_invalidate(MMN_EVENT_UNMAP, m->arg.remap.from,
						    m->arg.remap.from + m->arg.remap.len, since);
				break;
			default:
				break;	/* no faults: nothing is write-protected */
			}
		}
		__atomic_store_n(&matching_since, UINT64_MAX, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&running, false, __ATOMIC_RELEASE);
	return NULL;
}

/* The child of fork() has no monitor and its mappings are not registered. */
static void backstop_atfork_child(void)
{
	__atomic_store_n(&running, false, __ATOMIC_RELEASE);
	memset(slots, 0, sizeof(slots));
}

int vm_backstop_start(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_REMAP,
	};
	const char *env = getenv("MMN_BACKSTOP");
	sigset_t all, old;
	long fd;
	int err;

	if (env && strcmp(env, "0") == 0)
		return -ECANCELED;
	fd = raw_syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0, 0, 0, 0,
			 0);
	if (fd == -EINVAL)	/* a kernel older than 5.11 */
		fd = raw_syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);
	if (fd < 0)
		return (int)fd;
	if (ioctl((int)fd, UFFDIO_API, &api)) {
		err = -errno;
		raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
		return err;
	}
	uffd = (int)fd;
	/* The monitor takes no signals: they belong to the application's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&monitor, NULL, monitor_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		raw_syscall(SYS_close, uffd, 0, 0, 0, 0, 0);
		uffd = -1;
		return err;
	}
	pthread_detach(monitor);
	pthread_atfork(NULL, NULL, backstop_atfork_child);
	__atomic_store_n(&running, true, __ATOMIC_RELEASE);
	return 0;
}

int vm_backstop_register(unsigned long start, unsigned long end)
{
	struct uffdio_register reg;

	if (!vm_backstop_running())
		return -ENODEV;
	start &= ~(vm_page_size - 1);
	end = (end + vm_page_size - 1) & ~(vm_page_size - 1);
	if (start >= end)
		return -EINVAL;
	/* Before the registration: from then on, hooked calls there publish a slot. */
	hull_add(start, end);
	reg = (struct uffdio_register){
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	/* File mappings and SysV shm refuse (EINVAL): the hooks still cover them. */
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	__atomic_add_fetch(&nr_ranges, 1, __ATOMIC_RELAXED);
	return 0;
}

bool vm_backstop_all_anon;

static int anon_cb(const struct vm_map *m, void *arg)
{
	(void)arg;
	/* Private or shared anonymous memory, the heap; not the stack's guard. */
	if ((!m->path[0] || !strcmp(m->path, "[heap]")) && m->perms[0] == 'r')
		vm_backstop_register(m->start, m->end);
	return 0;
}

void vm_backstop_watch_all_anon(void)
{
	if (!vm_backstop_running() || __atomic_exchange_n(&vm_backstop_all_anon, true,
							  __ATOMIC_ACQ_REL))
		return;
	hull_add(0, ULONG_MAX);	/* every new anonymous mapping is registered too */
	vm_maps_foreach(anon_cb, NULL);
}

MMN_HOT
void vm_backstop_before_unmap(unsigned long start, unsigned long end)
{
	struct uffdio_range range = { .start = start, .len = end - start };

	/* Only the monitor itself must not wait for the monitor. */
	if (on_monitor && vm_backstop_running())
		ioctl(uffd, UFFDIO_UNREGISTER, &range);
}

void vm_backstop_counts(uint64_t *ranges, uint64_t *events, uint64_t *duplicates)
{
	*ranges = __atomic_load_n(&nr_ranges, __ATOMIC_RELAXED);
	*events = __atomic_load_n(&nr_events, __ATOMIC_RELAXED);
	*duplicates = __atomic_load_n(&nr_duplicates, __ATOMIC_RELAXED);
}
