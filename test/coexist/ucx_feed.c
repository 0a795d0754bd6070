// SPDX-License-Identifier: MIT
/*
 * UCX fed by libmmn (mmn_feed_ucx), with the real libucs/libucm loaded and
 * UCX_MEM_MMAP_HOOK_MODE=none: UCX installs no patch of its own, and still
 * gets every unmap -- from libmmn, before the change (its handler reads the
 * old contents), including free() inside libc, and a raw
 * syscall(SYS_munmap) that only libmmn's backstop sees (after, promptly).
 */
#include <dlfcn.h>
#include <mmn/process.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucm/api/ucm.h>
#include <unistd.h>

#include "coexist.h"
#include "harness.h"

static long pg;
static unsigned char *watched;		/* the handler checks this page's contents */
static bool no_read;	/* set before the event it concerns */			/* ... unless it is already gone */
static unsigned int seen, saw_old;	/* atomic */
static unsigned long last_addr, last_len;

static void ucx_cb(ucm_event_type_t type, ucm_event_t *ev, void *arg)
{
	unsigned long a = (unsigned long)ev->vm_unmapped.address;

	(void)arg;
	if (type != UCM_EVENT_VM_UNMAPPED || !watched)
		return;
	if (a <= (unsigned long)watched && (unsigned long)watched < a + ev->vm_unmapped.size) {
		__atomic_store_n(&last_len, ev->vm_unmapped.size, __ATOMIC_RELAXED);
		__atomic_store_n(&last_addr, a, __ATOMIC_RELEASE);
		if (!no_read && watched[0] == 0x5c)
			__atomic_add_fetch(&saw_old, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&seen, 1, __ATOMIC_RELEASE);
	}
}

static ucs_status_t (*set_handler)(int, int, ucm_event_callback_t, void *);
static ucs_status_t (*test_external)(int);

static void *sym(const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);

	assert_true(p != NULL);
	return p;
}

static unsigned char *page_on(size_t pages)
{
	unsigned char *p = mmap(NULL, pages * (size_t)pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	memset(p, 0x5c, pages * (size_t)pg);
	__atomic_store_n(&seen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&saw_old, 0, __ATOMIC_RELAXED);
	watched = p;
	return p;
}

TEST(no_ucx_patches)
{
	struct mmn_process_coverage cov;

	assert_eq(mmn_process_coverage(&cov), 0);
	expect_eq(coexist_foreign_count(&cov), 0);
	expect_eq(cov.method[MMN_CALL_MUNMAP], MMN_HOOK_ENTRY_PATCH);
	expect_eq(cov.method[MMN_CALL_MADVISE], MMN_HOOK_ENTRY_PATCH);
	/* UCM's own check that somebody reports its external event. */
	expect_eq(test_external(UCM_EVENT_VM_UNMAPPED), UCS_OK);
}

TEST(munmap_reaches_ucx_before)
{
	unsigned char *p = page_on(4);

	assert_eq(munmap(p, 4 * (size_t)pg), 0);
	expect_eq(__atomic_load_n(&seen, __ATOMIC_ACQUIRE), 1);
	expect_eq(__atomic_load_n(&saw_old, __ATOMIC_RELAXED), 1);
	expect_eq_ul(last_addr, (unsigned long)p);
	expect_eq_ul(last_len, 4 * (unsigned long)pg);
	watched = NULL;
}

TEST(free_reaches_ucx_before)
{
	size_t len = 64UL << 20;
	unsigned char *block, *p;

	if (COEXIST_SANITIZER_ALLOCATOR) {
		printf("%s: not applicable: the sanitizer's allocator does not unmap on free\n",
		       __func__);
		return;
	}
	block = malloc(len);
	assert_true(block != NULL);
	p = (unsigned char *)(((unsigned long)block + 2 * pg) & ~(pg - 1UL));
	memset(block, 0, len);
	p[0] = 0x5c;
	__atomic_store_n(&seen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&saw_old, 0, __ATOMIC_RELAXED);
	watched = p;
	free(block);
	expect_eq(__atomic_load_n(&seen, __ATOMIC_ACQUIRE), 1);
	expect_eq(__atomic_load_n(&saw_old, __ATOMIC_RELAXED), 1);
	watched = NULL;
}

TEST(madvise_reaches_ucx_before)
{
	unsigned char *p = page_on(2);

	assert_eq(madvise(p, 2 * (size_t)pg, MADV_DONTNEED), 0);
	expect_eq(__atomic_load_n(&seen, __ATOMIC_ACQUIRE), 1);
	expect_eq(__atomic_load_n(&saw_old, __ATOMIC_RELAXED), 1);
	watched = NULL;
	munmap(p, 2 * (size_t)pg);
}

/* The backstop's events reach UCX too: a raw system call, seen after. */
struct nop {
	struct mmn_interval_notifier sub;
};

static bool nop_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmn_interval_notifier_ops nop_ops = { .invalidate = nop_invalidate };

TEST(raw_syscall_reaches_ucx_after)
{
	struct mmn_process_coverage cov;
	unsigned char *p;
	struct nop n = { 0 };

	assert_eq(mmn_process_coverage(&cov), 0);
	if (!cov.backstop) {
		printf("raw_syscall_reaches_ucx_after: backstop not running (%d); not applicable\n",
		       cov.backstop_error);
		return;
	}
	p = page_on(2);
	/* mmn_process_insert registers the range with the backstop. */
	assert_eq(mmn_process_insert(&n.sub, (unsigned long)p, 2 * (size_t)pg, &nop_ops), 0);
	no_read = true;	/* the handler runs after the unmap: nothing to read */
	__atomic_store_n(&last_addr, 0, __ATOMIC_RELAXED);
	assert_eq(syscall(SYS_munmap, p, 2 * (size_t)pg), 0);
	/* The monitor thread reports it: bounded wait for UCX's handler. */
	expect_true(wait_until(__atomic_load_n(&last_addr, __ATOMIC_RELAXED) == (unsigned long)p,
			       10000));
	expect_eq(__atomic_load_n(&saw_old, __ATOMIC_RELAXED), 0);
	watched = NULL;
	mmn_interval_notifier_remove(&n.sub);
}

int main(void)
{
	struct mmn_mm *mm;
	void *ucs;

	pg = sysconf(_SC_PAGESIZE);
	/* A UCX that patches nothing itself: every event must come from libmmn. */
	setenv("UCX_MEM_MMAP_HOOK_MODE", "none", 1);
	ucs = dlopen("libucs.so.0", RTLD_NOW | RTLD_GLOBAL);
	if (!ucs) {
		fprintf(stderr, "dlopen libucs.so.0: %s\n", dlerror());
		return 1;
	}
	*(void **)&set_handler = sym("ucm_set_event_handler");
	*(void **)&test_external = sym("ucm_test_external_events");
	assert_eq(mmn_process_mm(&mm), 0);
	assert_eq(mmn_feed_ucx(), 0);
	expect_eq(mmn_feed_ucx(), -EALREADY);
	assert_eq(set_handler(UCM_EVENT_VM_UNMAPPED, -1, ucx_cb, NULL), UCS_OK);
	RUN(no_ucx_patches);
	RUN(munmap_reaches_ucx_before);
	RUN(free_reaches_ucx_before);
	RUN(madvise_reaches_ucx_before);
	RUN(raw_syscall_reaches_ucx_after);
	return test_report();
}
