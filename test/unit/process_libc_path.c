// SPDX-License-Identifier: MIT
/*
 * The raw path finds libc's code by the path of its mapping in
 * /proc/self/maps (src/vm/sud.c). Spack and similar installers pad their
 * prefixes to hundreds of bytes, so libc's path can pass 255 bytes; raw
 * system calls must be seen there exactly as with /lib's libc.
 *
 * The test copies this process's libc under a 300-byte directory, runs
 * itself again with LD_LIBRARY_PATH pointing there, and demands that the
 * child's coverage of raw calls is the parent's: the same raw_error (0 where
 * syscall user dispatch works), the same raw_syscall_fn.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include <mmn/process.h>

#include "harness.h"

#define CHILD_ARG "--long-libc"
#define LONG_NAME 150	/* bytes in each of the two padded directory names */

static void raw_coverage(int *error, bool *syscall_fn)
{
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;

	assert_eq(mmn_process_mm(&mm), 0);
	assert_eq(mmn_process_coverage(&cov), 0);
	*error = cov.raw_error;
	*syscall_fn = cov.raw_syscall_fn;
}

static const char *libc_path(void)
{
	void *fn = dlsym(RTLD_DEFAULT, "syscall");
	Dl_info info;

	assert_true(fn && dladdr(fn, &info) && info.dli_fname);
	return info.dli_fname;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	ssize_t n;

	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_eq(write(out, buf, (size_t)n), n);
	assert_eq(n, 0);
	close(in);
	close(out);
}

/* The child: libc comes from the long directory. */
static int child(void)
{
	const char *want = getenv("MMN_TEST_RAW_WANT");
	int error, want_error, want_fn;
	bool syscall_fn;

	test_current = "child";
	assert_true(want && sscanf(want, "%d %d", &want_error, &want_fn) == 2);
	printf("child's libc: %zu bytes of path\n", strlen(libc_path()));
	expect_gt(strlen(libc_path()), 2 * LONG_NAME);
	raw_coverage(&error, &syscall_fn);
	printf("child: raw_error %d (%s), raw_syscall_fn %d\n", error, strerror(-error),
	       syscall_fn);
	expect_eq(error, want_error);
	expect_eq(syscall_fn, want_fn);
	return test_report();
}

TEST(libc_under_long_prefix)
{
	char top[] = "/tmp/mmn-libc-XXXXXX", dir[PATH_MAX], lib[PATH_MAX + 16], want[32];
	char pad[LONG_NAME + 1];
	int error, status;
	bool syscall_fn;
	pid_t pid;

	raw_coverage(&error, &syscall_fn);
	printf("parent: raw_error %d (%s), raw_syscall_fn %d\n", error, strerror(-error),
	       syscall_fn);
	memset(pad, 'p', LONG_NAME);
	pad[LONG_NAME] = 0;
	assert_true(mkdtemp(top) != NULL);
	snprintf(dir, sizeof(dir), "%s/%s", top, pad);
	assert_eq(mkdir(dir, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/%s/%s", top, pad, pad);
	assert_eq(mkdir(dir, 0700), 0);
	snprintf(lib, sizeof(lib), "%s/libc.so.6", dir);
	copy_file(libc_path(), lib);

	snprintf(want, sizeof(want), "%d %d", error, syscall_fn);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("MMN_TEST_RAW_WANT", want, 1);
		setenv("LD_LIBRARY_PATH", dir, 1);
		test_exec_self(CHILD_ARG);
		_exit(99);
	}
	status = test_wait_child(pid);
	expect_eq(status, 0);

	unlink(lib);
	rmdir(dir);
	snprintf(dir, sizeof(dir), "%s/%s", top, pad);
	rmdir(dir);
	rmdir(top);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], CHILD_ARG) == 0)
		return child();
	RUN(libc_under_long_prefix);
	return test_report();
}
