// SPDX-License-Identifier: MIT
/*
 * One monitor feeding the others: libmmn as the memory-event source of UCX
 * and of libfabric's registration cache, so that neither patches libc
 * itself (peers.md: two patchers in one process displace each other).
 *
 * Both adapters are one notifier over the whole address space in the
 * process domain. Its first-pass callback runs for every mapping change
 * libmmn sees -- before the change for the hooked calls and chained
 * foreign patches, promptly after for what only the backstop sees -- and
 * passes the range on:
 *   UCX        ucm_vm_munmap(addr, len), after ucm_set_external_event(
 *              UCM_EVENT_VM_UNMAPPED) told UCM not to hook that event itself;
 *   libfabric  the notify op libfabric put into the imported
 *              struct fid_mem_monitor (rdma/fi_ext.h, libfabric >= 1.13).
 * Protection and soft-dirty changes are not passed on: neither peer treats
 * them as an unmap. Which ranges the other monitor caches libmmn does not
 * know, so the backstop then watches all anonymous memory (what exists, and
 * what hooked calls map later): raw system calls reach the peer too.
 *
 * libmmn does not link UCX or libfabric: libucm's functions are looked up
 * in the process (dlsym), and the monitor object is plain data that the
 * application hands to fi_import().
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "vm.h"

static bool passes_on(const struct mmn_range *range)
{
	return range->event != MMN_EVENT_PROTECTION_VMA &&
	       range->event != MMN_EVENT_PROTECTION_PAGE && range->event != MMN_EVENT_SOFT_DIRTY;
}

/* Over everything: [0, ULONG_MAX - 1]. */
static int insert_everywhere(struct mmn_interval_notifier *sub,
			     const struct mmn_interval_notifier_ops *ops)
{
	struct mmn_mm *mm;
	int err = mmn_process_mm(&mm);

	if (err)
		return err;
	err = mmn_interval_notifier_insert(sub, mm, 0, ULONG_MAX, ops);
	/* The other monitor's ranges are unknown: the backstop watches all anonymous memory. */
	if (!err)
		vm_backstop_watch_all_anon();
	return err;
}

/* ---- UCX ---------------------------------------------------------------- */

#define UCM_EVENT_VM_UNMAPPED_BIT (1 << 17)	/* ucm/api/ucm.h: UCS_BIT(17) */

static pthread_mutex_t feed_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*ucm_vm_munmap_fn)(void *addr, size_t len);	/* atomic */
static struct mmn_interval_notifier ucx_sub;
static bool ucx_fed;

static bool ucx_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	void (*fn)(void *, size_t) = __atomic_load_n(&ucm_vm_munmap_fn, __ATOMIC_ACQUIRE);

	mmn_interval_set_seq(sub, cur_seq);
	if (fn && passes_on(range))
		fn((void *)range->start, range->end - range->start);
	return true;
}

static const struct mmn_interval_notifier_ops ucx_ops = { .invalidate = ucx_invalidate };

int mmn_feed_ucx(void)
{
	void *set_external = dlsym(RTLD_DEFAULT, "ucm_set_external_event");
	void *vm_munmap = dlsym(RTLD_DEFAULT, "ucm_vm_munmap");
	void (*set_ext)(int);
	int err = 0;

	if (!set_external || !vm_munmap) {
		struct mmn_log_record rec = {
			.level = MMN_LOG_ERROR,
			.what = "mmn_feed_ucx: libucm is not loaded (ucm_set_external_event not found)",
		};

		mmn_log(&rec);
		return -ENOENT;
	}
	pthread_mutex_lock(&feed_lock);
	if (ucx_fed) {
		err = -EALREADY;
		goto out;
	}
	memcpy(&set_ext, &set_external, sizeof(set_ext));
	memcpy(&ucm_vm_munmap_fn, &vm_munmap, sizeof(vm_munmap));
	err = insert_everywhere(&ucx_sub, &ucx_ops);
	if (err) {
		__atomic_store_n(&ucm_vm_munmap_fn, NULL, __ATOMIC_RELEASE);
		goto out;
	}
	set_ext(UCM_EVENT_VM_UNMAPPED_BIT);
	ucx_fed = true;
out:
	pthread_mutex_unlock(&feed_lock);
	return err;
}

/* ---- libfabric ---------------------------------------------------------- */

#if defined(__has_include)
#if __has_include(<rdma/fi_ext.h>)
#define MMN_HAVE_FI_EXT 1
#endif
#endif

#ifdef MMN_HAVE_FI_EXT
#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_ext.h>

struct ofi_monitor {
	struct fid_mem_monitor mon;
	struct mmn_interval_notifier sub;
	bool started;		/* under feed_lock */
	uint64_t subscribed;	/* atomic: subscriptions outstanding */
};

static struct ofi_monitor ofi;

static bool ofi_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct fi_ops_mem_notify *ops = __atomic_load_n(&ofi.mon.import_ops, __ATOMIC_ACQUIRE);

	mmn_interval_set_seq(sub, cur_seq);
	if (ops && ops->notify && passes_on(range))
		ops->notify(&ofi.mon, (const void *)range->start, range->end - range->start);
	return true;
}

static const struct mmn_interval_notifier_ops ofi_ops = { .invalidate = ofi_invalidate };

/* libfabric starts the monitor when its first cache needs one. */
static int ofi_start(struct fid_mem_monitor *mon)
{
	int err = 0;

	(void)mon;
	pthread_mutex_lock(&feed_lock);
	if (!ofi.started) {
		err = insert_everywhere(&ofi.sub, &ofi_ops);
		ofi.started = err == 0;
	}
	pthread_mutex_unlock(&feed_lock);
	return err ? -FI_ENOMEM : 0;
}

static void ofi_stop(struct fid_mem_monitor *mon)
{
	(void)mon;
	pthread_mutex_lock(&feed_lock);
	if (ofi.started) {
		mmn_interval_notifier_remove(&ofi.sub);
		memset(&ofi.sub, 0, sizeof(ofi.sub));
		ofi.started = false;
	}
	pthread_mutex_unlock(&feed_lock);
}

/*
 * libmmn watches the whole address space once started, so subscribing is
 * bookkeeping only (as for libfabric's memhooks monitor). Refused while
 * stopped, as libfabric's userfaultfd monitor refuses without its fd.
 */
static int ofi_subscribe(struct fid_mem_monitor *mon, const void *addr, size_t len)
{
	(void)mon;
	if (!addr || !len)
		return -FI_EINVAL;
	if (!__atomic_load_n(&ofi.started, __ATOMIC_ACQUIRE))
		return -FI_EINVAL;
	__atomic_add_fetch(&ofi.subscribed, 1, __ATOMIC_RELAXED);
	return 0;
}

static void ofi_unsubscribe(struct fid_mem_monitor *mon, const void *addr, size_t len)
{
	(void)mon;
	(void)addr;
	(void)len;
	if (__atomic_load_n(&ofi.subscribed, __ATOMIC_RELAXED))
		__atomic_sub_fetch(&ofi.subscribed, 1, __ATOMIC_RELAXED);
}

/*
 * Every change is notified before it happens (hooks) or as soon as it is
 * seen (backstop), so a cache entry that has not been notified is valid --
 * the answer libfabric's own memhooks and userfaultfd monitors give.
 */
static bool ofi_valid(struct fid_mem_monitor *mon, const void *addr, size_t len)
{
	(void)mon;
	return addr && len && __atomic_load_n(&ofi.started, __ATOMIC_ACQUIRE);
}

static struct fi_ops_mem_monitor ofi_export_ops = {
	.size = sizeof(struct fi_ops_mem_monitor),
	.start = ofi_start,
	.stop = ofi_stop,
	.subscribe = ofi_subscribe,
	.unsubscribe = ofi_unsubscribe,
	.valid = ofi_valid,
};

struct fid_mem_monitor *mmn_ofi_monitor(void)
{
	/* fi_import() sets fid.ops, fid.context and import_ops itself. */
	pthread_mutex_lock(&feed_lock);
	ofi.mon.fid.fclass = FI_CLASS_MEM_MONITOR;
	ofi.mon.export_ops = &ofi_export_ops;
	pthread_mutex_unlock(&feed_lock);
	return &ofi.mon;
}

#else

struct fid_mem_monitor *mmn_ofi_monitor(void)
{
	struct mmn_log_record rec = {
		.level = MMN_LOG_ERROR,
		.what = "mmn_ofi_monitor: libmmn was built without rdma/fi_ext.h (libfabric-dev)",
	};

	mmn_log(&rec);
	return NULL;
}

#endif
