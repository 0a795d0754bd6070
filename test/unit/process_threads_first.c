// SPDX-License-Identifier: MIT
/*
 * The first mmn_process_mm() while another thread already runs.
 *
 * x86-64 patches every entry with one atomic store whatever runs there. On
 * aarch64 the Arm ARM guarantees old-or-new execution of a concurrently
 * modified word only when both words are B, BL, BRK, HVC, ISB, NOP, SMC or
 * SVC (docs/process-events.md), so with threads running only entries that
 * start with such an instruction are patched; the others are refused with
 * -EBUSY, and _Fork's detour is not installed. The expectation is computed
 * from libc's own first words, read before patching.
 */
#include <dlfcn.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mmn/process.h>

#include "../src/vm/a64.h"
#include "harness.h"

static const char *const symbols[MMN_CALL_COUNT] = {
	[MMN_CALL_MUNMAP] = "munmap", [MMN_CALL_MREMAP] = "mremap",
	[MMN_CALL_MADVISE] = "madvise", [MMN_CALL_BRK] = "brk",
	[MMN_CALL_SHMDT] = "shmdt", [MMN_CALL_SHMAT] = "shmat",
	[MMN_CALL_MMAP] = "mmap", [MMN_CALL_MPROTECT] = "mprotect",
	[MMN_CALL_PKEY_MPROTECT] = "pkey_mprotect",
	[MMN_CALL_REMAP_FILE_PAGES] = "remap_file_pages",
	[MMN_CALL_PROCESS_MADVISE] = "process_madvise",
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool stop;
static unsigned int invalidations;

static void *waiting_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stop)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static bool count_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			     unsigned long cur_seq)
{
	(void)range;
	mmn_interval_set_seq(sub, cur_seq);
	__atomic_add_fetch(&invalidations, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct mmn_interval_notifier_ops ops = { .invalidate = count_invalidate };

static uint32_t first_words[MMN_CALL_COUNT], fork_word;
static struct mmn_process_coverage cov;

TEST(patched_exactly_where_safe)
{
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
#if defined(__aarch64__)
		bool safe = mmn_a64_cmodx_safe(first_words[i]);

		printf("  %-17s first word %#010x: %s\n", symbols[i], first_words[i],
		       safe ? "patchable with threads running" : "refused while threads run");
		expect_eq(cov.method[i], safe ? MMN_HOOK_ENTRY_PATCH : MMN_HOOK_NONE);
		expect_eq(cov.error[i], safe ? 0 : -EBUSY);
#else
		expect_eq(cov.method[i], MMN_HOOK_ENTRY_PATCH);
		expect_eq(cov.error[i], 0);
#endif
	}
#if defined(__aarch64__)
	printf("  %-17s first word %#010x\n", "_Fork", fork_word);
	expect_eq(cov.fork_in_libc, mmn_a64_cmodx_safe(fork_word));
	if (!mmn_a64_cmodx_safe(fork_word))
		expect_eq(cov.fork_error, -EBUSY);
#else
	(void)fork_word;
#endif
}

/* munmap is patched either way (its glibc wrapper starts with a NOP on aarch64). */
TEST(munmap_hook_works_with_the_thread_running)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct mmn_interval_notifier sub = { 0 };
	struct mmn_mm *mm;
	char *p;

	if (cov.method[MMN_CALL_MUNMAP] != MMN_HOOK_ENTRY_PATCH) {
		printf("  SKIP: munmap was not patched here (error %d)\n", cov.error[MMN_CALL_MUNMAP]);
		return;
	}
	assert_eq(mmn_process_mm(&mm), 0);
	p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	assert_eq(mmn_process_insert(&sub, (unsigned long)p, (unsigned long)pg, &ops), 0);
	expect_eq(munmap(p, (size_t)pg), 0);
	expect_eq(__atomic_load_n(&invalidations, __ATOMIC_RELAXED), 1);
	expect_eq(mmn_interval_notifier_remove(&sub), 0);
}

int main(void)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	const uint32_t *fork_entry;
	pthread_t t;

#if !defined(__x86_64__) && !defined(__aarch64__)
	test_skip("no libc entry patching on this architecture");
#endif
	if (!libc)
		test_skip("not linked with glibc's libc.so.6");
	setenv("MMN_BACKSTOP", "0", 0);	/* the hooks alone */
	for (int i = 0; i < MMN_CALL_COUNT; i++) {
		const uint32_t *entry = dlsym(libc, symbols[i]);

		assert_true(entry != NULL);
		first_words[i] = entry[0];
	}
	fork_entry = dlsym(libc, "_Fork");
	fork_word = fork_entry ? fork_entry[0] : 0;

	/* A second thread exists from here on: glibc's single-threaded flag is off. */
	assert_eq(pthread_create(&t, NULL, waiting_thread, NULL), 0);
	assert_eq(mmn_process_mm(&(struct mmn_mm *){ NULL }), 0);
	assert_eq(mmn_process_coverage(&cov), 0);

	RUN(patched_exactly_where_safe);
	RUN(munmap_hook_works_with_the_thread_running);

	pthread_mutex_lock(&lock);
	stop = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	return test_report();
}
