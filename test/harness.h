/* SPDX-License-Identifier: MIT */
/*
 * Test harness: one binary per topic, exit 0 pass, 1 fail, 77 skip.
 *
 *   expect_*()  record a failure (both expressions and both values) and go on;
 *   assert_*()  the same, then end the test binary at once.
 *   TEST(name) { ... }   + RUN(name) from main(), then return test_report();
 *
 * Blocking is proved with threads and bounded waits (wait_until()), never with
 * sleep as synchronisation. Randomised tests use test_rng with a seed taken
 * from argv[1] or the clock, printed on failure.
 */
#ifndef MMN_TEST_HARNESS_H
#define MMN_TEST_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mmn.h>

#define TEST_SKIP 77

static int test_failures;
static int test_checks;
static const char *test_current = "";
static uint64_t test_seed;
static bool test_seed_used;

/* Checks may run on several threads (inside callbacks): count atomically. */
static inline void test_count_check(void)
{
	__atomic_add_fetch(&test_checks, 1, __ATOMIC_RELAXED);
}

static inline void test_fail_at(const char *file, int line)
{
	__atomic_add_fetch(&test_failures, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "  FAIL %s:%d in %s\n", file, line, test_current);
}

#define test_cmp_(a, op, b, fatal, fmt, type)                                   \
	do {                                                                    \
		type a_ = (a);                                                  \
		type b_ = (b);                                                  \
		test_count_check();                                             \
		if (!(a_ op b_)) {                                              \
			test_fail_at(__FILE__, __LINE__);                       \
			fprintf(stderr, "    expected %s %s %s\n    got " fmt   \
				" vs " fmt "\n", #a, #op, #b, a_, b_);          \
			if (fatal)                                              \
				test_exit_now();                                \
		}                                                               \
	} while (0)

static inline void test_exit_now(void)
{
	if (test_seed_used)
		fprintf(stderr, "  seed: %" PRIu64 " (pass it as argv[1] to repeat)\n",
			test_seed);
	fprintf(stderr, "%d failed, %d checks\n", test_failures, test_checks);
	exit(1);
}

#define expect_eq(a, b) test_cmp_(a, ==, b, 0, "%lld", long long)
#define expect_ne(a, b) test_cmp_(a, !=, b, 0, "%lld", long long)
#define expect_lt(a, b) test_cmp_(a, <, b, 0, "%lld", long long)
#define expect_le(a, b) test_cmp_(a, <=, b, 0, "%lld", long long)
#define expect_gt(a, b) test_cmp_(a, >, b, 0, "%lld", long long)
#define expect_ge(a, b) test_cmp_(a, >=, b, 0, "%lld", long long)
#define expect_eq_ul(a, b) test_cmp_(a, ==, b, 0, "%#lx", unsigned long)
#define expect_ne_ul(a, b) test_cmp_(a, !=, b, 0, "%#lx", unsigned long)
#define expect_eq_ptr(a, b) test_cmp_(a, ==, b, 0, "%p", const void *)
#define expect_ne_ptr(a, b) test_cmp_(a, !=, b, 0, "%p", const void *)
#define expect_true(x) expect_eq(!!(x), 1)
#define expect_false(x) expect_eq(!!(x), 0)

#define assert_eq(a, b) test_cmp_(a, ==, b, 1, "%lld", long long)
#define assert_ne(a, b) test_cmp_(a, !=, b, 1, "%lld", long long)
#define assert_eq_ul(a, b) test_cmp_(a, ==, b, 1, "%#lx", unsigned long)
#define assert_eq_ptr(a, b) test_cmp_(a, ==, b, 1, "%p", const void *)
#define assert_true(x) assert_eq(!!(x), 1)
#define assert_false(x) assert_eq(!!(x), 0)

#define expect_str_eq(a, b)                                                     \
	do {                                                                    \
		const char *a_ = (a), *b_ = (b);                                \
		test_count_check();                                             \
		if (!a_ || !b_ || strcmp(a_, b_)) {                             \
			test_fail_at(__FILE__, __LINE__);                       \
			fprintf(stderr, "    expected %s == %s\n    got \"%s\" vs \"%s\"\n", \
				#a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
		}                                                               \
	} while (0)

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                               \
	do {                                                                    \
		int before_ = test_failures;                                    \
		test_current = #name;                                           \
		test_##name();                                                  \
		printf("%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #name); \
		fflush(stdout);                                                 \
	} while (0)

static inline int test_report(void)
{
	if (test_failures) {
		if (test_seed_used)
			fprintf(stderr, "seed: %" PRIu64 "\n", test_seed);
		printf("%d failed, %d checks\n", test_failures, test_checks);
		return 1;
	}
	printf("all passed, %d checks\n", test_checks);
	return 0;
}

static inline _Noreturn void test_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(TEST_SKIP);
}

/* ---- time and bounded waits ------------------------------------------- */

static inline uint64_t test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Polls @cond (yielding the CPU between polls) until it holds or @timeout_ms
 * pass; returns whether it held. Used to prove that another thread *reached*
 * a state (e.g. is blocked in read_begin, as its stats show); the result of
 * the test never depends on the timeout being long enough except to fail.
 */
#define wait_until(cond, timeout_ms)                                            \
	__extension__({                                                         \
		uint64_t deadline_ = test_now_ns() + (uint64_t)(timeout_ms) * 1000000u; \
		bool held_;                                                     \
		while (!(held_ = (cond)) && test_now_ns() < deadline_)          \
			sched_yield();                                          \
		held_;                                                          \
	})

/* ---- child processes ------------------------------------------------------ */

/*
 * Reap @pid: its exit status, 1000 + the signal number if a signal killed it
 * (e.g. 1000 + SIGALRM for a child that hung past its alarm()), -1 on error.
 */
static inline int test_wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/*
 * Run this program again (from a forked child) with the one argument @arg.
 * Under an emulator (a cross build's CTest sets MMN_TEST_EMULATOR, e.g.
 * "qemu-aarch64 -L /usr/aarch64-linux-gnu") the program cannot exec itself
 * directly: the host kernel does not run its code. Returns only if exec
 * failed.
 */
static inline void test_exec_self(const char *arg)
{
	static char path[4096], emu[1024];
	const char *env = getenv("MMN_TEST_EMULATOR");
	char *argv[16], *tok, *save;
	ssize_t n;
	int argc = 0;

	if (!env || !*env) {
		execl("/proc/self/exe", "/proc/self/exe", arg, (char *)NULL);
		return;
	}
	/* qemu-user answers this readlink with the emulated program's path. */
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0 || strlen(env) >= sizeof(emu))
		return;
	path[n] = '\0';
	strcpy(emu, env);
	for (tok = strtok_r(emu, " ", &save); tok && argc < 12; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc++] = path;
	argv[argc++] = (char *)arg;
	argv[argc] = NULL;
	execvp(argv[0], argv);
}

/* ---- a forked child that must log, then abort --------------------------- */

/*
 * For calls that must log an error and abort (a wait on oneself): the call is
 * made in a forked child whose libmmn log hook writes each record to a pipe,
 * and the child writes TEST_CHILD_RETURNED there if the call returned. The
 * parent sees the messages in order, so it knows that the report came first
 * and the call never returned.
 */
struct test_child_msg {
	int kind;		/* TEST_CHILD_LOG or TEST_CHILD_RETURNED */
	int level;		/* a log record's enum mmn_log_level */
	const void *sub;	/* a log record's notifier */
	const void *mm;		/* and domain */
};

enum { TEST_CHILD_LOG = 1, TEST_CHILD_RETURNED = 2 };
#define TEST_CHILD_MSGS 8

static int test_child_fd = -1;

static inline void test_child_send(const struct test_child_msg *m)
{
	ssize_t n = write(test_child_fd, m, sizeof(*m));

	(void)n;
}

/* In the child: the call that should have aborted returned. */
static inline void test_child_returned(void)
{
	struct test_child_msg m = { TEST_CHILD_RETURNED, 0, NULL, NULL };

	test_child_send(&m);
}

static inline void test_child_log_hook(const struct mmn_log_record *rec, void *arg)
{
	struct test_child_msg m = { TEST_CHILD_LOG, (int)rec->level, rec->sub, rec->mm };

	(void)arg;
	test_child_send(&m);
}

/*
 * Forks; the child installs the log hook, runs @body(@arg) and exits 0. The
 * parent reads up to TEST_CHILD_MSGS messages into @msgs (count in *@nmsgs)
 * and kills a child that sends nothing for @wait_ms (it hangs). Returns the
 * child's wait status, -1 on error.
 */
static inline int test_fork_child(void (*body)(void *arg), void *arg, int wait_ms,
				  struct test_child_msg *msgs, int *nmsgs)
{
	int fds[2], status = 0;
	pid_t pid;

	*nmsgs = 0;
	if (pipe(fds))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		test_child_fd = fds[1];
		mmn_set_log_fn(test_child_log_hook, NULL);
		body(arg);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };

		if (poll(&pfd, 1, wait_ms) <= 0) {
			fprintf(stderr, "    child hangs: killed\n");
			kill(pid, SIGKILL);
			break;
		}
		if (*nmsgs >= TEST_CHILD_MSGS ||
		    read(fds[0], &msgs[*nmsgs], sizeof(msgs[0])) != (ssize_t)sizeof(msgs[0]))
			break;
		(*nmsgs)++;
	}
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* The child logged exactly one error, about @sub, and died of SIGABRT in the call. */
static inline void test_expect_child_aborted(int status, const struct test_child_msg *msgs,
					     int nmsgs, const void *sub)
{
	assert_ne(status, -1);
	printf("    child (its libmmn error line on stderr is expected): %s %d; %d message(s) on the pipe\n",
	       WIFSIGNALED(status) ? "killed by signal" : "exited with",
	       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), nmsgs);
	expect_true(WIFSIGNALED(status));
	if (WIFSIGNALED(status))
		expect_eq(WTERMSIG(status), SIGABRT);
	/* The report came first, and the call never returned. */
	expect_eq(nmsgs, 1);
	if (nmsgs >= 1) {
		expect_eq(msgs[0].kind, TEST_CHILD_LOG);
		expect_eq(msgs[0].level, MMN_LOG_ERROR);
		expect_eq_ptr(msgs[0].sub, sub);
	}
}

/* Control: the call returned, nothing was logged, and the child exited 0. */
static inline void test_expect_child_returned(int status, const struct test_child_msg *msgs,
					      int nmsgs)
{
	assert_ne(status, -1);
	expect_true(WIFEXITED(status));
	if (WIFEXITED(status))
		expect_eq(WEXITSTATUS(status), 0);
	expect_eq(nmsgs, 1);
	if (nmsgs >= 1)
		expect_eq(msgs[0].kind, TEST_CHILD_RETURNED);
}

/* ---- seeded PRNG (xoshiro256**) ----------------------------------------- */

struct test_rng {
	uint64_t s[4];
};

static inline uint64_t test_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t test_rng_next(struct test_rng *r)
{
	uint64_t result = test_rotl(r->s[1] * 5, 7) * 9, t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = test_rotl(r->s[3], 45);
	return result;
}

static inline void test_rng_seed(struct test_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {	/* splitmix64 */
		uint64_t z = (seed += 0x9e3779b97f4a7c15u);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
		r->s[i] = z ^ (z >> 31);
	}
}

/* Uniform in [0, n). */
static inline uint64_t test_rng_below(struct test_rng *r, uint64_t n)
{
	return n ? test_rng_next(r) % n : 0;
}

/* Seed from argv[1] if given, else from the clock; remembered for reports. */
static inline uint64_t test_seed_from_args(int argc, char **argv)
{
	test_seed = argc > 1 ? strtoull(argv[1], NULL, 0) : test_now_ns();
	test_seed_used = true;
	printf("seed: %" PRIu64 "\n", test_seed);
	return test_seed;
}

#endif /* MMN_TEST_HARNESS_H */
