// SPDX-License-Identifier: MIT
/*
 * Controls for the preload's self-check: run under
 *   LD_PRELOAD=libmmn-preload.so MMN_SELFCHECK=1 selfcheck_control MODE [ARG]
 * each mode makes one mapping change, either in a way the event sources see
 * (no violation expected) or in a way they cannot see (a violation expected),
 * between two self-check passes it forces with mmn_selfcheck_sync().
 *
 *   raw-munmap-file    munmap(2) of a file mapping by a raw `syscall`
 *                      instruction in this program: the raw path (syscall
 *                      user dispatch) reports it; with MMN_RAW=0 nothing sees
 *                      it (the backstop covers anonymous memory only)
 *   raw-mprotect-file  mprotect(2) of a file mapping by raw system call
 *   raw-munmap-anon    munmap(2) of anonymous memory by raw system call: the
 *                      raw path, or with MMN_RAW=0 the userfaultfd backstop,
 *                      must report it
 *   munmap-file        munmap() through libc: the hooks must report it
 *   dlclose LIB        dlopen(LIB), then dlclose(): ld.so unmaps it with its own
 *                      copy of munmap, which traps to the raw path (with
 *                      MMN_RAW=0 nothing sees it)
 *
 * The checker's verdict is in the MMN_SELFCHECK_LOG report; test/preload/run.sh
 * reads it. The program itself always exits with EXIT_CODE, so that run.sh can
 * check that the preload leaves a program's exit status alone.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXIT_CODE 42
#define PAGES 16

static int (*selfcheck_sync)(void);

/* A system call made here, not through libc's syscall(). */
static long raw3(long nr, void *a, unsigned long b, long c)
{
#if defined(__x86_64__)
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
#else
	return syscall(nr, a, b, c);
#endif
}

static void sync_or_die(const char *when)
{
	int err = selfcheck_sync();

	if (err) {
		fprintf(stderr, "selfcheck_control: mmn_selfcheck_sync() %s: %s\n", when,
			strerror(-err));
		exit(2);
	}
}

/* A file of PAGES pages, mapped; the file is unlinked at once. */
static char *map_file(int prot)
{
	char path[] = "/tmp/mmn-selfcheck-control-XXXXXX";
	long ps = sysconf(_SC_PAGESIZE);
	int fd = mkstemp(path);
	char *p;

	if (fd < 0 || ftruncate(fd, PAGES * ps)) {
		perror("selfcheck_control: temporary file");
		exit(2);
	}
	p = mmap(NULL, PAGES * ps, prot, MAP_SHARED, fd, 0);
	unlink(path);
	close(fd);
	if (p == MAP_FAILED) {
		perror("selfcheck_control: mmap");
		exit(2);
	}
	memset(p, 0x5a, PAGES * ps);
	return p;
}

int main(int argc, char **argv)
{
	long ps = sysconf(_SC_PAGESIZE);
	const char *mode = argc > 1 ? argv[1] : "";
	char *p;

	void *sym = dlsym(RTLD_DEFAULT, "mmn_selfcheck_sync");

	if (!sym) {
		fprintf(stderr, "selfcheck_control: run it under LD_PRELOAD=libmmn-preload.so\n");
		return 2;
	}
	memcpy(&selfcheck_sync, &sym, sizeof(sym));	/* POSIX: same representation */

	if (strcmp(mode, "raw-munmap-file") == 0) {
		p = map_file(PROT_READ | PROT_WRITE);
		sync_or_die("after mmap");	/* subscribed now */
		raw3(SYS_munmap, p, PAGES * ps, 0);
		sync_or_die("after munmap");	/* the check that must fail */
	} else if (strcmp(mode, "raw-mprotect-file") == 0) {
		p = map_file(PROT_READ | PROT_WRITE);
		sync_or_die("after mmap");
		raw3(SYS_mprotect, p, PAGES * ps, PROT_READ);
		sync_or_die("after mprotect");
	} else if (strcmp(mode, "raw-munmap-anon") == 0) {
		p = mmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
		if (p == MAP_FAILED)
			return 2;
		memset(p, 0x5a, PAGES * ps);
		sync_or_die("after mmap");
		raw3(SYS_munmap, p, PAGES * ps, 0);
		sync_or_die("after munmap");
	} else if (strcmp(mode, "munmap-file") == 0) {
		p = map_file(PROT_READ | PROT_WRITE);
		sync_or_die("after mmap");
		munmap(p, PAGES * ps);
		sync_or_die("after munmap");
	} else if (strcmp(mode, "dlclose") == 0 && argc > 2) {
		void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);

		if (!h) {
			fprintf(stderr, "selfcheck_control: %s\n", dlerror());
			return 2;
		}
		sync_or_die("after dlopen");
		dlclose(h);
		sync_or_die("after dlclose");
	} else {
		fprintf(stderr, "usage: selfcheck_control raw-munmap-file|raw-mprotect-file|"
				"raw-munmap-anon|munmap-file|dlclose LIB\n");
		return 2;
	}
	printf("selfcheck_control: %s done\n", mode);
	return EXIT_CODE;
}
