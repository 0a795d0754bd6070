// SPDX-License-Identifier: MIT
/*
 * The Vulkan userptr driver on a real Vulkan device (lavapipe in CI): the
 * hazard it exists to prevent, shown, and the protocol that prevents it.
 *
 *   vk_hazard protocol           exact counts of the two-pass and single-pass
 *                                flows, the fault's collision retry, -EFAULT
 *   vk_hazard remap-unprotected  no notifier: a job keeps writing while its
 *                                buffer is replaced by mmap(MAP_FIXED); its
 *                                writes land in the new mapping (every try)
 *   vk_hazard remap              process event sources + two-pass: 10^4 tries
 *                                (MAP_FIXED and munmap + mmap at the same
 *                                address, alternately), 0 writes in the new
 *                                mapping, every job stopped inside the call
 *   vk_hazard free-unprotected   no notifier: free() of a large malloc
 *                                (glibc munmaps it) under a running job: the
 *                                device writes unmapped memory (SIGSEGV)
 *   vk_hazard free               process event sources: free() under running
 *                                jobs on two devices stops them before free
 *                                returns, 10^3 tries
 *
 * Exit 77 (skip) when there is no Vulkan device with
 * VK_EXT_external_memory_host. MMN_VK_TRIES overrides the number of tries
 * (for quick local runs; CTest uses the defaults).
 */
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mmn/process.h>

#include "harness.h"
#include "mmn_vk.h"

#define NDEV 2
#define PAGES 16
#define FOREVER 0xffffffffu	/* max_iters: seconds of work; stopped long before */
#define WAIT_MS 20000u

static size_t page;
static unsigned long tries_override;

static unsigned long tries(unsigned long dflt)
{
	return tries_override ? tries_override : dflt;
}

static struct mmn_vk *new_driver(unsigned int ndev, bool single, bool no_notifier)
{
	struct mmn_vk_config cfg = {
		.nr_devices = ndev,
		.single_pass = single,
		.no_notifier = no_notifier,
	};
	struct mmn_vk *vk = NULL;
	int ret = mmn_vk_new(&cfg, &vk);

	if (ret == -ENODEV) {
		char msg[320];

		snprintf(msg, sizeof(msg), "no usable Vulkan device: %s", mmn_vk_why());
		test_skip(msg);
	}
	if (ret) {
		fprintf(stderr, "mmn_vk_new: %s (%s)\n", strerror(-ret), mmn_vk_why());
		exit(1);
	}
	if (mmn_vk_alignment(vk) > page) {
		printf("SKIP: import alignment %zu is larger than a page\n", mmn_vk_alignment(vk));
		mmn_vk_destroy(vk);
		exit(TEST_SKIP);
	}
	return vk;
}

static void *map_anon(void *hint, int flags)
{
	void *p = mmap(hint, PAGES * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static unsigned long nonzero_words(const void *p, size_t len)
{
	const volatile uint32_t *w = p;
	unsigned long n = 0;

	for (size_t i = 0; i < len / 4; i++)
		n += w[i] != 0;
	return n;
}

static void start_job(struct mmn_vk_buf *b, uint32_t tag)
{
	assert_eq(mmn_vk_job_submit(b, tag, FOREVER), 0);
	assert_eq(mmn_vk_job_wait_started(b, WAIT_MS), 0);
}

/* ---- protocol ---------------------------------------------------------- */

static struct mmn_vk_stats stats(struct mmn_vk_buf *b)
{
	struct mmn_vk_stats st;

	mmn_vk_buf_stats(b, &st);
	return st;
}

/* An invalidation that changes nothing: what an interposer would report. */
static void invalidate(void *p, size_t len)
{
	struct mmn_process_event ev;

	assert_eq(mmn_process_event_begin(&ev, MMN_EVENT_PROTECTION_PAGE, (unsigned long)p,
					  (unsigned long)p + len), 0);
	mmn_process_event_end(&ev);
}

static void flow(bool single)
{
	struct mmn_vk *vk = new_driver(NDEV, single, false);
	char *mem = map_anon(NULL, 0);
	struct mmn_vk_buf *b[NDEV];
	struct mmn_vk_job_result res;

	for (int i = 0; i < NDEV; i++) {
		assert_eq(mmn_vk_bind(vk, (unsigned int)i, mem, PAGES * page, &b[i]), 0);
		start_job(b[i], 0x100u + (uint32_t)i);
	}
	/* The jobs write the memory. */
	expect_true(wait_until(nonzero_words(mem, PAGES * page) > 0, WAIT_MS));
	invalidate(mem, PAGES * page);
	for (int i = 0; i < NDEV; i++) {
		struct mmn_vk_stats st = stats(b[i]);

		expect_false(mmn_vk_buf_imported(b[i]));
		expect_eq(st.invalidations, 1);
		expect_eq(st.stops, 1);
		expect_eq(st.deferred, single ? 0 : 1);
		expect_eq(st.finishes, single ? 0 : 1);
		expect_eq(st.sync_fallbacks, 0);
		expect_eq(st.drops, 1);
		expect_eq(st.imports, 1);
		expect_eq(st.jobs, 1);
		/* Stopped inside the invalidation: nothing left to wait for. */
		assert_eq(mmn_vk_job_wait(b[i], 0, &res), 0);
		expect_eq(res.tag, 0x100u + (uint32_t)i);
		expect_true(res.stopped);
	}
	/* No job in flight: the import is dropped in the first pass. */
	for (int i = 0; i < NDEV; i++)
		start_job(b[i], 0x200u + (uint32_t)i);
	for (int i = 0; i < NDEV; i++) {
		mmn_vk_job_stop(b[i]);
		assert_eq(mmn_vk_job_wait(b[i], WAIT_MS, &res), 0);
		expect_true(res.stopped);
	}
	invalidate(mem, PAGES * page);
	for (int i = 0; i < NDEV; i++) {
		struct mmn_vk_stats st = stats(b[i]);

		expect_eq(st.invalidations, 2);
		expect_eq(st.stops, 1);
		expect_eq(st.deferred, single ? 0 : 1);
		expect_eq(st.drops, 2);
		expect_eq(st.imports, 2);
		expect_eq(st.retries, 0);
	}
	/* Nothing imported: the invalidation only sets the sequence. */
	invalidate(mem, PAGES * page);
	for (int i = 0; i < NDEV; i++) {
		expect_eq(stats(b[i]).invalidations, 3);
		expect_eq(stats(b[i]).drops, 2);
		assert_eq(mmn_vk_unbind(b[i]), 0);
	}
	munmap(mem, PAGES * page);
	mmn_vk_destroy(vk);
}

TEST(two_pass_flow)
{
	flow(false);
}

TEST(single_pass_flow)
{
	flow(true);
}

static int collide_left;

static void collide(struct mmn_vk_buf *b, void *arg)
{
	(void)b;
	if (collide_left > 0) {
		collide_left--;
		invalidate(arg, PAGES * page);
	}
}

/* An invalidation between the import and the check: the import is redone. */
TEST(fault_collision_retries)
{
	struct mmn_vk *vk = new_driver(1, false, false);
	char *mem = map_anon(NULL, 0);
	struct mmn_vk_job_result res;
	struct mmn_vk_buf *b;
	struct mmn_vk_stats st;

	assert_eq(mmn_vk_bind(vk, 0, mem, PAGES * page, &b), 0);
	mmn_vk_test_collide_arg = mem;
	mmn_vk_test_collide_hook = collide;
	collide_left = 2;
	start_job(b, 7);
	mmn_vk_test_collide_hook = NULL;
	st = stats(b);
	expect_eq(collide_left, 0);
	expect_eq(st.retries, 2);
	expect_eq(st.imports, 1);		/* two imports thrown away */
	expect_eq(st.invalidations, 2);
	expect_eq(st.drops, 0);
	expect_true(mmn_vk_buf_imported(b));
	mmn_vk_job_stop(b);
	assert_eq(mmn_vk_job_wait(b, WAIT_MS, &res), 0);
	expect_eq(res.tag, 7);
	expect_true(nonzero_words(mem, PAGES * page) > 0);
	assert_eq(mmn_vk_unbind(b), 0);
	munmap(mem, PAGES * page);
	mmn_vk_destroy(vk);
}

/* A fault on unmapped memory fails like hmm_range_fault: -EFAULT. */
TEST(fault_on_unmapped_memory)
{
	struct mmn_vk *vk = new_driver(1, false, false);
	char *mem = map_anon(NULL, 0);
	struct mmn_vk_buf *b;

	assert_eq(mmn_vk_bind(vk, 0, mem, PAGES * page, &b), 0);
	assert_eq(munmap(mem, PAGES * page), 0);
	expect_eq(mmn_vk_job_submit(b, 1, FOREVER), -EFAULT);
	expect_eq(stats(b).jobs, 0);
	expect_eq(mmn_vk_job_submit(b, 0, FOREVER), -EINVAL);
	assert_eq(mmn_vk_unbind(b), 0);
	mmn_vk_destroy(vk);
}

TEST(bad_input)
{
	struct mmn_vk_config cfg = { .nr_devices = 0 };
	struct mmn_vk *vk = NULL;
	struct mmn_vk_buf *b = NULL;
	char *mem;

	expect_eq(mmn_vk_new(&cfg, &vk), -EINVAL);
	cfg.nr_devices = MMN_VK_MAX_DEVICES + 1;
	expect_eq(mmn_vk_new(&cfg, &vk), -EINVAL);
	expect_eq(mmn_vk_new(NULL, &vk), -EINVAL);
	vk = new_driver(1, false, false);
	mem = map_anon(NULL, 0);
	expect_eq(mmn_vk_bind(vk, 1, mem, page, &b), -EINVAL);
	expect_eq(mmn_vk_bind(vk, 0, mem + 1, page, &b), -EINVAL);
	expect_eq(mmn_vk_bind(vk, 0, mem, page + 1, &b), -EINVAL);
	expect_eq(mmn_vk_bind(vk, 0, mem, 0, &b), -EINVAL);
	assert_eq(mmn_vk_bind(vk, 0, mem, page, &b), 0);
	expect_eq(mmn_vk_job_wait(b, 0, NULL), -EINVAL);
	expect_eq(mmn_vk_job_wait_started(b, 0), -EINVAL);
	start_job(b, 3);
	expect_eq(mmn_vk_job_submit(b, 4, FOREVER), -EBUSY);
	expect_eq(mmn_vk_job_wait(b, 0, NULL), -ETIMEDOUT);
	/* unbind stops the running job */
	expect_eq(mmn_vk_unbind(b), 0);
	munmap(mem, page * PAGES);
	mmn_vk_destroy(vk);
}

static int protocol(void)
{
	RUN(two_pass_flow);
	RUN(single_pass_flow);
	RUN(fault_collision_retries);
	RUN(fault_on_unmapped_memory);
	RUN(bad_input);
	return test_report();
}

/* ---- remap ------------------------------------------------------------- */

/*
 * Replace the buffer under running jobs. Without a notifier nothing stops
 * the jobs: on lavapipe the device writes through the virtual address, so
 * the writes land in the new mapping (on a GPU they would land in the old,
 * still pinned pages, and the application's new data would never be seen by
 * the device: docs/vulkan.md).
 */
static int remap(bool protect)
{
	const unsigned long n0 = tries(protect ? 10000 : 100);
	unsigned long n = n0, landed = 0, hinted = 0, ended_early = 0;
	struct mmn_vk *vk = new_driver(NDEV, false, !protect);
	char *mem = map_anon(NULL, 0);
	struct mmn_vk_buf *b[NDEV];

	for (int i = 0; i < NDEV; i++)
		assert_eq(mmn_vk_bind(vk, (unsigned int)i, mem, PAGES * page, &b[i]), 0);
	for (unsigned long t = 0; t < n; t++) {
		uint32_t tag = (uint32_t)(t << 4) | 1u;
		struct mmn_vk_job_result res;
		unsigned long w;
		char *p;

		for (int i = 0; i < NDEV; i++)
			start_job(b[i], tag + (uint32_t)(i << 1));
		if (protect && (t & 1)) {
			/* munmap, then a new mapping at the same address. */
			assert_eq(munmap(mem, PAGES * page), 0);
			p = map_anon(mem, 0);
			if (p != mem) {
				munmap(p, PAGES * page);
				p = map_anon(mem, MAP_FIXED_NOREPLACE);
			}
			hinted++;
		} else {
			/* One call: the old pages go, new zero pages appear. */
			p = map_anon(mem, MAP_FIXED);
		}
		assert_eq_ptr(p, mem);
		if (protect) {
			/* Every job was stopped and waited for inside the call. */
			w = nonzero_words(mem, PAGES * page);
			for (int i = 0; i < NDEV; i++) {
				assert_eq(mmn_vk_job_wait(b[i], 0, &res), 0);
				expect_true(res.stopped);
			}
			if (w) {
				test_fail_at(__FILE__, __LINE__);
				fprintf(stderr, "    try %lu: %lu words written into the new mapping\n",
					t, w);
				landed++;
			}
		} else {
			/* The jobs go on; their next writes land in the new pages. */
			bool seen = wait_until(nonzero_words(mem, PAGES * page) > 0, WAIT_MS);
			bool ran_out = false;

			for (int i = 0; i < NDEV; i++) {
				mmn_vk_job_stop(b[i]);
				assert_eq(mmn_vk_job_wait(b[i], WAIT_MS, &res), 0);
				ran_out |= !res.stopped;
			}
			if (seen) {
				landed++;
			} else if (ran_out && ended_early < n0) {
				/* A job ended by itself (llvmpipe's loop cap), maybe
				 * before the remap: this try proves nothing; redo it. */
				ended_early++;
				n++;
			}
			memset(mem, 0, PAGES * page);
		}
	}
	if (protect) {
		struct mmn_vk_stats st = stats(b[0]);

		printf("%lu tries (%lu munmap + mmap, %lu MAP_FIXED) on %d devices: "
		       "%lu with writes in the new mapping; device 0: %llu stops, %llu finishes, %llu imports\n",
		       n, hinted, n - hinted, NDEV, landed, (unsigned long long)st.stops,
		       (unsigned long long)st.finishes, (unsigned long long)st.imports);
		expect_eq(landed, 0);
		expect_eq(st.stops, n);
		expect_eq(st.imports, n);
	} else {
		printf("no notifier: the device's writes landed in the new mapping in %lu of %lu tries "
		       "(%lu more redone: a job had ended by itself)\n",
		       landed, n - ended_early, ended_early);
		expect_eq(landed, n - ended_early);
	}
	for (int i = 0; i < NDEV; i++)
		assert_eq(mmn_vk_unbind(b[i]), 0);
	munmap(mem, PAGES * page);
	mmn_vk_destroy(vk);
	return test_report();
}

/* ---- free -------------------------------------------------------------- */

#define FREE_SIZE (1u << 20)	/* above the mmap threshold: free() munmaps it */

/* Sanitizers replace malloc: their free() does not reach libc's munmap. */
#if defined(__SANITIZE_ADDRESS__)
#define FREE_NO_UNMAP "ASan's allocator keeps freed blocks in quarantine: free() unmaps nothing"
#endif
#if defined(__SANITIZE_THREAD__)
#define FREE_RAW_UNMAP "TSan's allocator unmaps large blocks with a raw system call, which no libc hook sees (the userfaultfd backstop sees it only afterwards)"
#endif
#define SEGV_EXIT 42

static void on_segv(int sig)
{
	(void)sig;
	_exit(SEGV_EXIT);
}

/* The page-aligned part of a malloc block. */
static char *aligned_part(void *p, size_t *len)
{
	unsigned long a = ((unsigned long)p + page - 1) & ~(page - 1);

	*len = (((unsigned long)p + FREE_SIZE) & ~(page - 1)) - a;
	return (char *)a;
}

static int free_unprotected_child(void)
{
	struct sigaction sa = { .sa_handler = on_segv };
	struct mmn_vk *vk = new_driver(1, false, true);
	struct mmn_vk_job_result res;
	struct mmn_vk_buf *b;
	size_t len;
	void *p = malloc(FREE_SIZE);
	char *mem;

	if (!p)
		return 1;
	mem = aligned_part(p, &len);
	assert_eq(mmn_vk_bind(vk, 0, mem, len, &b), 0);
	start_job(b, 5);
	sigaction(SIGSEGV, &sa, NULL);
	free(p);	/* glibc munmaps the block; the job goes on writing */
	/* The device's next write faults; reaching the end is the failure. */
	if (mmn_vk_job_wait(b, WAIT_MS, &res) == 0)
		fprintf(stderr, "job ended (%u iterations) without touching freed memory\n",
			res.iters);
	return 1;
}

static int free_unprotected(void)
{
	pid_t pid;
	int st;

#ifdef FREE_NO_UNMAP
	test_skip(FREE_NO_UNMAP);
#endif
	/* A child: the hazard kills the process. Vulkan starts only there. */
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(free_unprotected_child());
	assert_true(pid > 0);
	st = test_wait_child(pid);
	if (st == TEST_SKIP)
		return TEST_SKIP;
	printf("no notifier: free() under a running job: child %s\n",
	       st == SEGV_EXIT ? "died of SIGSEGV: the device wrote freed memory" : "did not fault");
	expect_eq(st, SEGV_EXIT);
	return test_report();
}

static int free_protected(void)
{
	unsigned long n = tries(1000);
	struct mmn_vk *vk;
	uint64_t stops = 0, finishes = 0;

#if defined(FREE_NO_UNMAP)
	test_skip(FREE_NO_UNMAP);
#elif defined(FREE_RAW_UNMAP)
	test_skip(FREE_RAW_UNMAP);
#endif
	vk = new_driver(NDEV, false, false);
	for (unsigned long t = 0; t < n; t++) {
		struct mmn_vk_buf *b[NDEV];
		struct mmn_vk_job_result res;
		void *p = malloc(FREE_SIZE);
		size_t len;
		char *mem;

		assert_true(p != NULL);
		mem = aligned_part(p, &len);
		for (int i = 0; i < NDEV; i++) {
			assert_eq(mmn_vk_bind(vk, (unsigned int)i, mem, len, &b[i]), 0);
			start_job(b[i], (uint32_t)t * 2 + 1 + (uint32_t)i);
		}
		free(p);
		for (int i = 0; i < NDEV; i++) {
			struct mmn_vk_stats st;

			/* Done before free() returned: no wait needed now. */
			assert_eq(mmn_vk_job_wait(b[i], 0, &res), 0);
			expect_true(res.stopped);
			mmn_vk_buf_stats(b[i], &st);
			expect_eq(st.invalidations, 1);
			expect_false(mmn_vk_buf_imported(b[i]));
			stops += st.stops;
			finishes += st.finishes;
			assert_eq(mmn_vk_unbind(b[i]), 0);
		}
	}
	printf("%lu free() calls under jobs on %d devices: %llu stops, %llu finishes\n", n, NDEV,
	       (unsigned long long)stops, (unsigned long long)finishes);
	expect_eq(stops, (uint64_t)n * NDEV);
	expect_eq(finishes, (uint64_t)n * NDEV);
	mmn_vk_destroy(vk);
	return test_report();
}

int main(int argc, char **argv)
{
	const char *env = getenv("MMN_VK_TRIES");

	page = (size_t)sysconf(_SC_PAGESIZE);
	/*
	 * lavapipe runs the jobs of all its VkDevices on one pool of
	 * LP_NUM_THREADS threads (default: the CPUs): make sure the NDEV jobs
	 * can run at once on a 1-CPU machine. Other drivers ignore it.
	 */
	setenv("LP_NUM_THREADS", "2", 0);
	if (env)
		tries_override = strtoul(env, NULL, 0);
	/* Large blocks always come from mmap, so free() always munmaps them. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	if (argc != 2) {
		fprintf(stderr, "usage: vk_hazard protocol|remap|remap-unprotected|free|free-unprotected\n");
		return 2;
	}
	test_current = argv[1];
	if (!strcmp(argv[1], "protocol"))
		return protocol();
	if (!strcmp(argv[1], "remap"))
		return remap(true);
	if (!strcmp(argv[1], "remap-unprotected"))
		return remap(false);
	if (!strcmp(argv[1], "free"))
		return free_protected();
	if (!strcmp(argv[1], "free-unprotected"))
		return free_unprotected();
	fprintf(stderr, "vk_hazard: unknown scenario '%s'\n", argv[1]);
	return 2;
}
