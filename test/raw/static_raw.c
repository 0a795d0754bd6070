// SPDX-License-Identifier: MIT
/*
 * A program linked statically with libmmn.a (no libc.so: nothing to patch).
 * Syscall user dispatch is the whole mechanism here: every system call
 * outside libmmn's stub traps, so libc's own munmap and a raw `syscall`
 * instruction both invalidate before the kernel runs them, with the old
 * contents still readable in the callback; a thread created after start-up
 * (glibc's clone3 is refused with ENOSYS, its clone fallback arms the child)
 * and a fork child are covered too; stdio, malloc and threads keep working.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"

static unsigned long pg;
static int probe_pipe[2];

static long raw2(long nr, long a, long b)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
}

struct rec {
	struct mmn_interval_notifier sub;
	unsigned long addr;
	int calls;	/* atomic */
	int marker;
};

static bool rec_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rec *r = mmn_container_of(sub, struct rec, sub);
	unsigned char c = 0;

	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	if (__atomic_fetch_add(&r->calls, 1, __ATOMIC_RELAXED) == 0)
		r->marker = write(probe_pipe[1], (void *)r->addr, 1) == 1 &&
					    read(probe_pipe[0], &c, 1) == 1 ? c : -1;
	return true;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = rec_invalidate };

/* Map a page, mark it, subscribe, unmap it with @how; 0 when seen before. */
static int unmap_seen(int how)
{
	unsigned char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	struct rec r;
	long ret;

	if (p == MAP_FAILED)
		return 10;
	p[0] = 0xc3;
	memset(&r, 0, sizeof(r));
	r.addr = (unsigned long)p;
	if (mmn_process_insert(&r.sub, r.addr, pg, &ops))
		return 11;
	ret = how ? raw2(SYS_munmap, (long)p, (long)pg) : munmap(p, pg);
	if (ret != 0)
		return 12;
	if (__atomic_load_n(&r.calls, __ATOMIC_RELAXED) != 1 || r.marker != 0xc3)
		return 13;
	return mmn_interval_notifier_remove(&r.sub) ? 14 : 0;
}

static void *thread_main(void *arg)
{
	*(int *)arg = unmap_seen(1);
	return NULL;
}

int main(void)
{
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;
	pthread_t t;
	int thread_result = -1;
	pid_t pid;

	pg = (unsigned long)sysconf(_SC_PAGESIZE);
	setenv("MMN_BACKSTOP", "0", 0);
	assert_eq(pipe2(probe_pipe, O_CLOEXEC), 0);
	assert_eq(mmn_process_mm(&mm), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
	if (cov.raw_error == -EINVAL)
		test_skip("the kernel has no syscall user dispatch (Linux < 5.11)");
	expect_eq(cov.raw_error, 0);
	expect_true(cov.raw_static);
	expect_true(cov.raw_thread_armed);
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		expect_eq(cov.method[i], MMN_HOOK_NONE);	/* no libc.so to patch */
		expect_eq(cov.raw_method[i], MMN_RAW_BEFORE);
	}
	expect_eq(unmap_seen(0), 0);	/* libc's munmap, inside this program */
	expect_eq(unmap_seen(1), 0);	/* a raw instruction */
	assert_eq(pthread_create(&t, NULL, thread_main, &thread_result), 0);
	assert_eq(pthread_join(t, NULL), 0);
	expect_eq(thread_result, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unmap_seen(1));
	expect_eq(test_wait_child(pid), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
	expect_true(cov.raw_events[MMN_CALL_MUNMAP] >= 3);
	expect_true(cov.raw_traps > 0);
	printf("static: %llu system calls trapped\n", (unsigned long long)cov.raw_traps);
	return test_report();
}
