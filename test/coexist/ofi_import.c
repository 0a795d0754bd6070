// SPDX-License-Identifier: MIT
/*
 * libmmn as libfabric's memory monitor: fi_import() of mmn_ofi_monitor()
 * into the real libfabric (Debian libfabric-dev 1.17).
 *
 * Checked: libfabric accepts the monitor (and, as for any import, refuses a
 * second one while it is attached, and accepts it again after fi_close());
 * libfabric's notify op is called for an unmap before munmap returns, with
 * the exact range, while the pages are still mapped; start, stop, subscribe,
 * unsubscribe and valid behave as libfabric's own memhooks monitor does.
 *
 * Not exercisable here: a registration cache that uses the monitor. Every
 * provider with an MR cache in Debian's build (verbs, efa, psm3, ...) needs
 * RDMA hardware, so libfabric never calls start/subscribe itself in this
 * test; the test calls the export ops the way ofi_monitor_* would, and
 * observes libfabric's notify by wrapping the pointer libfabric installed
 * (the wrapper then calls libfabric's own notify).
 */
#include <mmn/process.h>
#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_ext.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coexist.h"
#include "harness.h"

static long pg;
static struct fid_mem_monitor *mon;
static struct fi_ops_mem_notify *libfabric_notify;	/* what fi_import installed */
static unsigned char *watched;
/*
 * Volatile: they change inside free(), which the compiler assumes touches
 * no other memory, so a plain load after free() could be folded away.
 */
static volatile unsigned int notified, saw_old;
static unsigned long last_addr, last_len;

static void wrap_notify(struct fid_mem_monitor *m, const void *addr, size_t len)
{
	unsigned long a = (unsigned long)addr;

	if (watched && a <= (unsigned long)watched && (unsigned long)watched < a + len) {
		last_addr = a;
		last_len = len;
		saw_old += watched[0] == 0x6d;
		notified++;
	}
	libfabric_notify->notify(m, addr, len);
}

static struct fi_ops_mem_notify wrapped = { .size = sizeof(wrapped), .notify = wrap_notify };

static int import(void)
{
	return fi_import(FI_VERSION(1, 17), "mr_cache", NULL, 0, 0, &mon->fid, NULL);
}

TEST(libfabric_accepts)
{
	assert_eq(import(), 0);
	/* libfabric took it: its close op and its notify op are in place. */
	expect_true(mon->fid.ops != NULL && mon->fid.ops->close != NULL);
	expect_true(mon->import_ops != NULL && mon->import_ops->notify != NULL);
	/* A second import while this one is attached: libfabric says busy. */
	expect_eq(import(), -FI_EBUSY);
	libfabric_notify = mon->import_ops;
	mon->import_ops = &wrapped;
}

static unsigned char *pages(size_t n)
{
	unsigned char *p = mmap(NULL, n * (size_t)pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	memset(p, 0x6d, n * (size_t)pg);
	notified = saw_old = 0;
	last_addr = last_len = 0;
	return p;
}

TEST(stopped_monitor_refuses_and_is_silent)
{
	unsigned char *p = pages(2);

	/* As libfabric's userfaultfd monitor without its fd: no subscriptions. */
	expect_eq(mon->export_ops->subscribe(mon, p, 2 * (size_t)pg), -FI_EINVAL);
	expect_false(mon->export_ops->valid(mon, p, 2 * (size_t)pg));
	watched = p;
	assert_eq(munmap(p, 2 * (size_t)pg), 0);
	expect_eq(notified, 0);
	watched = NULL;
}

TEST(start_subscribe_notify_before)
{
	unsigned char *p;

	assert_eq(mon->export_ops->start(mon), 0);
	assert_eq(mon->export_ops->start(mon), 0);	/* idempotent */
	p = pages(4);
	expect_eq(mon->export_ops->subscribe(mon, p, 4 * (size_t)pg), 0);
	expect_eq(mon->export_ops->subscribe(mon, NULL, 4 * (size_t)pg), -FI_EINVAL);
	expect_true(mon->export_ops->valid(mon, p, 4 * (size_t)pg));
	watched = p + pg;
	assert_eq(munmap(p + pg, 2 * (size_t)pg), 0);
	expect_eq(notified, 1);
	expect_eq(saw_old, 1);
	expect_eq_ul(last_addr, (unsigned long)(p + pg));
	expect_eq_ul(last_len, 2 * (unsigned long)pg);
	mon->export_ops->unsubscribe(mon, p, 4 * (size_t)pg);
	watched = NULL;
	munmap(p, 4 * (size_t)pg);
}

TEST(free_and_madvise_notify_before)
{
	size_t len = 64UL << 20;
	unsigned char *block, *p;

	if (!COEXIST_SANITIZER_ALLOCATOR) {
		block = malloc(len);
		assert_true(block != NULL);
		p = (unsigned char *)(((unsigned long)block + 2 * pg) & ~(pg - 1UL));
		memset(block, 0x6d, len);
		/* The block escapes: an optimising compiler may otherwise drop the
		 * memset, and the malloc and free with it (seen at -O2). */
		__asm__ volatile("" : : "r"(block) : "memory");
		notified = saw_old = 0;
		watched = p;
		free(block);
		expect_eq(notified, 1);
		expect_eq(saw_old, 1);
	}
	p = pages(2);
	watched = p;
	assert_eq(madvise(p, 2 * (size_t)pg, MADV_DONTNEED), 0);
	expect_eq(notified, 1);
	expect_eq(saw_old, 1);
	watched = NULL;
	munmap(p, 2 * (size_t)pg);
}

/* Protection changes are no unmap for libfabric (memhooks ignores mprotect). */
TEST(mprotect_not_notified)
{
	unsigned char *p = pages(1);

	watched = p;
	assert_eq(mprotect(p, (size_t)pg, PROT_READ), 0);
	expect_eq(notified, 0);
	watched = NULL;
	munmap(p, (size_t)pg);
}

TEST(stop_close_and_import_again)
{
	unsigned char *p;

	mon->export_ops->stop(mon);
	p = pages(1);
	watched = p;
	assert_eq(munmap(p, (size_t)pg), 0);
	expect_eq(notified, 0);
	watched = NULL;
	mon->import_ops = libfabric_notify;
	assert_eq(fi_close(&mon->fid), 0);
	/* Detached: libfabric accepts an import again. */
	expect_eq(import(), 0);
	expect_eq(fi_close(&mon->fid), 0);
}

int main(void)
{
	struct mmn_mm *mm;
	struct fi_info *info = NULL;

	pg = sysconf(_SC_PAGESIZE);
	/* libfabric initialises its monitors (ofi_monitors_init) with fi_getinfo;
	 * whether any provider answers does not matter here. */
	if (fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, NULL, &info) == 0)
		fi_freeinfo(info);
	assert_eq(mmn_process_mm(&mm), 0);
	mon = mmn_ofi_monitor();
	assert_true(mon != NULL);
	expect_eq(mon->fid.fclass, FI_CLASS_MEM_MONITOR);
	RUN(libfabric_accepts);
	RUN(stopped_monitor_refuses_and_is_silent);
	RUN(start_subscribe_notify_before);
	RUN(free_and_madvise_notify_before);
	RUN(mprotect_not_notified);
	RUN(stop_close_and_import_again);
	return test_report();
}
