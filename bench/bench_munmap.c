// SPDX-License-Identifier: MIT
/*
 * bench_munmap: target T4 (bench/README.md) -- munmap() of an unsubscribed 4 KiB
 * page through the process event sources costs at most 1.10 x the raw system
 * call.
 *
 * What is timed: munmap alone. Each batch first maps its pages one by one
 * (mmap of 4 KiB, then one byte written so the page is really there), outside
 * the timed region; then it times the loop that unmaps them, one call per
 * page. The program links libmmn.so, as users do. The two cases run in the
 * same process, after mmn_process_mm():
 *
 *   raw     syscall(SYS_munmap, page, 4096): nothing of libmmn runs
 *   hooked  munmap(page, 4096): libc's entry jumps to libmmn's hook, which
 *           opens and closes an invalidation of the page (no notifier is hit)
 *           around the same system call
 *
 * The process domain holds unrelated notifiers meanwhile: 1000 over unmapped
 * address space and 64 over a mapped region (subscribed with
 * mmn_process_insert, so registered with the backstop when it runs).
 * Batches of the two cases are interleaved, alternating which goes first;
 * each time is the median over batches of the batch's mean ns per call.
 *
 * The same is measured with the userfaultfd backstop on and off
 * (MMN_BACKSTOP=0): a child process, forked before anything else, measures
 * with it off. The page is not registered, so it should not matter.
 * Information rows (no target): pages never touched (the cheapest munmap,
 * so the largest ratio) and mmap+touch+munmap pairs (both calls hooked vs
 * both raw).
 *
 * Raw system calls (T7, docs/process-events.md "Raw system calls"): two more
 * children, one with the raw path (syscall user dispatch) and one without
 * (MMN_RAW=0; the T4 runs above use MMN_RAW=0 too, so their "raw" baseline,
 * libc's syscall(), runs nothing of libmmn), time a `syscall` instruction in
 * this program unmapping a touched page (T7: with/without <= 2.0; timed in
 * thread CPU time, see cpu_ns()), libc's
 * munmap with the raw path on against off (T4: libc's munmap unchanged), and
 * getpid loops: libc's getpid (allowed: what the mechanism costs every other
 * system call) and a raw getpid instruction (trapped: what it costs a
 * non-mapping raw call).
 *
 * Usage: bench_munmap [--smoke] [--csv] [--with ucx|tcmalloc]
 *   --smoke  tiny counts: only proves the program runs (CTest, debug builds)
 *   --with   T11: the same in a process that also holds another interposer
 *            (issue 9): "ucx" dlopen()s libucs (libucm patches libc's
 *            entries in its default bistro mode; libmmn chains through them;
 *            a no-op UCX handler is registered), "tcmalloc" re-executes the
 *            program with libtcmalloc.so.4 preloaded (its own munmap, whose
 *            callers libmmn routes through its hook). "hooked" then includes
 *            the other library's own hook; the raw case is unchanged.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mmn/process.h>

#include "common/bench_util.h"

#ifndef MMN_BENCH_BUILD_TYPE
#define MMN_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef MMN_BENCH_DEBUG
#define MMN_BENCH_DEBUG -1
#endif

#define PAGE 4096ul
#define MAX_BATCHES 401
#define MAX_PAGES 1024
#define FAR_NOTIFIERS 1000
#define NEAR_NOTIFIERS 64
#define FAR_BASE 0x100000000000ul	/* 16 TiB: nothing is mapped there */

static int nr_batches = 201;
static int batch_pages = 512;
static bool csv;
static const char *with;	/* NULL, "ucx" or "tcmalloc" (T11) */

/* The shared helpers (bench/common/bench_util.h) under their short local names. */
#define now_ns mmn_bench_now_ns
#define die mmn_bench_die

/* --with ucx: UCX in the process, its hooks installed before libmmn's. */
static void ucx_noop(int type, void *event, void *arg)
{
	(void)type;
	(void)event;
	(void)arg;
}

static void load_ucx(void)
{
	int (*set_handler)(int, int, void (*)(int, void *, void *), void *);
	void *sym;

	if (!dlopen("libucs.so.0", RTLD_NOW | RTLD_GLOBAL)) {
		fprintf(stderr, "bench_munmap: --with ucx: %s\n", dlerror());
		exit(77);
	}
	sym = dlsym(RTLD_DEFAULT, "ucm_set_event_handler");
	if (!sym)
		die("ucm_set_event_handler not found", ENOENT);
	memcpy(&set_handler, &sym, sizeof(sym));
	/* UCM_EVENT_VM_UNMAPPED = 1 << 17; UCS_OK = 0 */
	if (set_handler(1 << 17, -1, ucx_noop, NULL) != 0)
		die("ucm_set_event_handler", EINVAL);
}

/* ---- the cases ---------------------------------------------------------------- */

enum how { RAW, HOOKED };
enum what { UNMAP_TOUCHED, UNMAP_UNTOUCHED, PAIR };

struct result {
	double median, min, max;	/* ns per call (per pair for PAIR) */
};

static void *pages[MAX_PAGES];

static void *map_page(enum how how)
{
	void *p;

	if (how == RAW)
		p = (void *)syscall(SYS_mmap, NULL, PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

static void unmap_page(enum how how, void *p)
{
	int ret = how == RAW ? (int)syscall(SYS_munmap, p, PAGE) : munmap(p, PAGE);

	if (ret)
		die("munmap", errno);
}

static long raw_insn(long nr, long a, long b)
{
#if defined(__x86_64__)
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
#else
	return syscall(nr, a, b);
#endif
}

/*
 * The raw section times the thread's CPU time (user + kernel), not the wall
 * clock: a trapped call enters the kernel twice (the call, then rt_sigreturn)
 * and each return to user space is a preemption point, so on a machine that
 * others load, wall time measures their time slices (docs/process-events.md).
 */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What one timed call is. */
enum op {
	OP_UNMAP_RAW,		/* syscall(SYS_munmap) of the batch's page i */
	OP_UNMAP_HOOKED,	/* munmap() of page i */
	OP_PAIR_RAW,		/* mmap + touch + munmap, all through syscall() */
	OP_PAIR_HOOKED,		/* the same through libc (hooked) */
	OP_UNMAP_INSN,		/* a `syscall` instruction here unmapping page i */
	OP_GETPID_LIBC,		/* libc's getpid */
	OP_GETPID_INSN,		/* a `syscall` instruction here: getpid */
};

static inline __attribute__((always_inline)) void one_op(enum op op, int i)
{
	volatile char *p;
	long ret;

	switch (op) {
	case OP_UNMAP_RAW:
	case OP_UNMAP_HOOKED:
		unmap_page(op == OP_UNMAP_RAW ? RAW : HOOKED, pages[i]);
		break;
	case OP_PAIR_RAW:
	case OP_PAIR_HOOKED:
		p = map_page(op == OP_PAIR_RAW ? RAW : HOOKED);
		*p = 1;
		unmap_page(op == OP_PAIR_RAW ? RAW : HOOKED, (void *)p);
		break;
	case OP_UNMAP_INSN:
		ret = raw_insn(SYS_munmap, (long)pages[i], PAGE);
		if (ret)
			die("munmap", (int)-ret);
		break;
	case OP_GETPID_LIBC:
		getpid();
		break;
	case OP_GETPID_INSN:
		raw_insn(SYS_getpid, 0, 0);
		break;
	}
}

/*
 * The one timing loop: @op for each of the batch's pages, timed on @clock;
 * returns the mean ns per call. Always inlined with a constant @op, so each
 * case gets its own loop of direct calls and every case pays the same loop.
 */
static inline __attribute__((always_inline)) double timed(uint64_t (*clock)(void), enum op op)
{
	uint64_t t0 = clock();

	for (int i = 0; i < batch_pages; i++)
		one_op(op, i);
	return (double)(clock() - t0) / batch_pages;
}

/* Map (and touch, if asked) the batch's pages, untimed. */
static void map_pages(enum how how, bool touch)
{
	for (int i = 0; i < batch_pages; i++) {
		pages[i] = map_page(how);
		if (touch)
			*(volatile char *)pages[i] = 1;
	}
}

/* One batch; returns its mean ns per call (per pair). */
static double batch(enum how how, enum what what)
{
	if (what == PAIR)
		return how == RAW ? timed(now_ns, OP_PAIR_RAW) : timed(now_ns, OP_PAIR_HOOKED);
	map_pages(RAW, what == UNMAP_TOUCHED);	/* outside the timed region either way */
	return how == RAW ? timed(now_ns, OP_UNMAP_RAW) : timed(now_ns, OP_UNMAP_HOOKED);
}

static struct result summarize(double *v)
{
	struct mmn_bench_summary s = mmn_bench_summarize(v, nr_batches);

	return (struct result){ s.median, s.min, s.max };
}

/* Raw and hooked batches of @what, interleaved, alternating the order. */
static void measure(enum what what, struct result *raw, struct result *hooked)
{
	static double vr[MAX_BATCHES], vh[MAX_BATCHES];

	batch(RAW, what);	/* warm up */
	batch(HOOKED, what);
	for (int b = 0; b < nr_batches; b++) {
		if (b & 1) {
			vh[b] = batch(HOOKED, what);
			vr[b] = batch(RAW, what);
		} else {
			vr[b] = batch(RAW, what);
			vh[b] = batch(HOOKED, what);
		}
	}
	*raw = summarize(vr);
	*hooked = summarize(vh);
}

/*
 * Run @fn(@out) in a child forked now, with the backstop off and MMN_RAW set
 * to @raw (NULL: unset), and copy its @size bytes of result back. A child's
 * skip (exit 77) is the program's.
 */
static void in_child(const char *what, const char *raw, void (*fn)(void *), void *out,
		     size_t size)
{
	int fds[2], status;
	ssize_t got;
	pid_t pid;

	if (pipe(fds))
		die("pipe", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		close(fds[0]);
		setenv("MMN_BACKSTOP", "0", 1);
		if (raw)
			setenv("MMN_RAW", raw, 1);
		else
			unsetenv("MMN_RAW");
		fn(out);
		_exit(write(fds[1], out, size) == (ssize_t)size ? 0 : 1);
	}
	close(fds[1]);
	got = read(fds[0], out, size);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid", errno);
	close(fds[0]);
	if (got != (ssize_t)size || !WIFEXITED(status) || WEXITSTATUS(status)) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			exit(77);
		fprintf(stderr, "bench_munmap: %s failed\n", what);
		exit(1);
	}
}

/* ---- one process's measurements ----------------------------------------------- */

struct run {
	bool backstop;
	int backstop_error;
	struct result raw[3], hooked[3];
	uint64_t hooked_calls;		/* events[MUNMAP] moved by this much */
	uint64_t hits;			/* notifiers hit meanwhile: must be 0 */
};

static bool never_called(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			 unsigned long cur_seq)
{
	(void)sub;
	(void)range;
	(void)cur_seq;
	return true;
}

static const struct mmn_interval_notifier_ops bench_ops = { .invalidate = never_called };

static struct mmn_interval_notifier far_subs[FAR_NOTIFIERS], near_subs[NEAR_NOTIFIERS];

static void run_all(void *out)
{
	struct run *r = out;
	struct mmn_process_coverage before, after;
	struct mmn_stats st0, st1;
	struct mmn_mm *mm;
	char *near;
	int ret;

	if (with && !strcmp(with, "ucx"))
		load_ucx();
	ret = mmn_process_mm(&mm);
	if (ret)
		die("mmn_process_mm", ret);
	for (int i = 0; i < FAR_NOTIFIERS; i++) {
		ret = mmn_interval_notifier_insert(&far_subs[i], mm, FAR_BASE + 2 * PAGE * i, PAGE,
						   &bench_ops);
		if (ret)
			die("mmn_interval_notifier_insert", ret);
	}
	near = mmap(NULL, NEAR_NOTIFIERS * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (near == MAP_FAILED)
		die("mmap", errno);
	memset(near, 1, NEAR_NOTIFIERS * PAGE);
	for (int i = 0; i < NEAR_NOTIFIERS; i++) {
		ret = mmn_process_insert(&near_subs[i], (unsigned long)near + i * PAGE, PAGE,
					 &bench_ops);
		if (ret)
			die("mmn_process_insert", ret);
	}

	mmn_process_coverage(&before);
	mmn_mm_get_stats(mm, &st0);
	measure(UNMAP_TOUCHED, &r->raw[UNMAP_TOUCHED], &r->hooked[UNMAP_TOUCHED]);
	measure(UNMAP_UNTOUCHED, &r->raw[UNMAP_UNTOUCHED], &r->hooked[UNMAP_UNTOUCHED]);
	measure(PAIR, &r->raw[PAIR], &r->hooked[PAIR]);
	mmn_process_coverage(&after);
	mmn_mm_get_stats(mm, &st1);
	r->backstop = after.backstop;
	r->backstop_error = after.backstop_error;
	r->hooked_calls = after.events[MMN_CALL_MUNMAP] - before.events[MMN_CALL_MUNMAP];
	r->hits = st1.invalidations_hit - st0.invalidations_hit;
}

/* ---- report ---------------------------------------------------------------- */

static const char *const what_name[3] = {
	"touched page", "untouched page (info)", "mmap+touch+munmap pair (info)",
};

static void row(const char *label, const char *how, int what, struct result res)
{
	if (csv)
		printf("%s,%s,%s,%.1f,%.1f,%.1f,ns/op\n", label, how, what_name[what], res.median,
		       res.min, res.max);
	else
		printf("  %-8s %-31s %9.1f %9.1f %9.1f\n", how, what_name[what], res.median,
		       res.min, res.max);
}

static void report(const char *label, const char *title, const struct run *r)
{
	if (!csv) {
		printf("backstop %s", title);
		if (!r->backstop && r->backstop_error)
			printf(" (not running: %s)", strerror(-r->backstop_error));
		printf("\n  %-8s %-31s %9s %9s %9s   (ns per call; per pair for pairs)\n", "case",
		       "", "median", "min", "max");
	}
	for (int w = 0; w < 3; w++) {
		row(label, "raw", w, r->raw[w]);
		row(label, "hooked", w, r->hooked[w]);
	}
}

static void ratio(const char *id, const char *what, double value, double limit)
{
	bool pass = value <= limit;

	if (csv)
		printf("target,%s,%s,%.3f,%.3f,%s\n", id, what, value, limit, pass ? "PASS" : "MISS");
	else
		printf("%-3s %-52s %6.3f (target <= %.2f): %s\n", id, what, value, limit,
		       pass ? "PASS" : "MISS");
}

static void info(const char *what, double value)
{
	if (csv)
		printf("info,%s,%.3f\n", what, value);
	else
		printf("    %-52s %6.3f\n", what, value);
}

static void check(const struct run *r)
{
	/* Hooked: two unmap cases and the pairs, each batch plus one warm-up. */
	uint64_t expect = 3ull * (uint64_t)(nr_batches + 1) * (uint64_t)batch_pages;

	if (r->hooked_calls != expect) {
		fprintf(stderr, "bench_munmap: the hook saw %llu munmaps, expected %llu\n",
			(unsigned long long)r->hooked_calls, (unsigned long long)expect);
		exit(1);
	}
	if (r->hits) {
		fprintf(stderr, "bench_munmap: %llu invalidations hit a notifier\n",
			(unsigned long long)r->hits);
		exit(1);
	}
}

/* ---- raw system calls (T7) --------------------------------------------------- */

enum raw_case { RC_RAW_MUNMAP, RC_LIBC_MUNMAP, RC_LIBC_GETPID, RC_RAW_GETPID, RC_COUNT };

struct raw_run {
	int raw_error;
	uint64_t raw_events;
	struct result res[RC_COUNT];
};

static double raw_batch(enum raw_case c)
{
	switch (c) {
	case RC_LIBC_GETPID:
		return timed(cpu_ns, OP_GETPID_LIBC);
	case RC_RAW_GETPID:
		return timed(cpu_ns, OP_GETPID_INSN);
	case RC_RAW_MUNMAP:
		map_pages(HOOKED, true);
		return timed(cpu_ns, OP_UNMAP_INSN);
	default:
		map_pages(HOOKED, true);
		return timed(cpu_ns, OP_UNMAP_HOOKED);
	}
}

static void raw_run_all(void *out)
{
	struct raw_run *r = out;
	static double v[RC_COUNT][MAX_BATCHES];
	struct mmn_process_coverage cov;
	struct mmn_mm *mm;
	int ret = mmn_process_mm(&mm);

	if (ret)
		die("mmn_process_mm", ret);
	for (int c = 0; c < RC_COUNT; c++)
		raw_batch((enum raw_case)c);	/* warm up */
	for (int b = 0; b < nr_batches; b++)
		for (int c = 0; c < RC_COUNT; c++)
			v[(b & 1) ? RC_COUNT - 1 - c : c][b] =
				raw_batch((enum raw_case)((b & 1) ? RC_COUNT - 1 - c : c));
	for (int c = 0; c < RC_COUNT; c++)
		r->res[c] = summarize(v[c]);
	mmn_process_coverage(&cov);
	r->raw_error = cov.raw_error;
	r->raw_events = cov.raw_events[MMN_CALL_MUNMAP];
}

static struct raw_run raw_on, raw_off;

/* Before this process creates its own domain: the children must start clean. */
static void raw_section_measure(void)
{
	in_child("a raw-path child", "0", raw_run_all, &raw_off, sizeof(raw_off));
	in_child("a raw-path child", NULL, raw_run_all, &raw_on, sizeof(raw_on));
}

static void raw_section(void)
{
	static const char *const names[RC_COUNT] = {
		"raw munmap, touched page", "libc munmap, touched page",
		"libc getpid", "raw getpid",
	};
	const struct raw_run on = raw_on, off = raw_off;
	uint64_t expect = (uint64_t)(nr_batches + 1) * (uint64_t)batch_pages;

	if (on.raw_error == 0 && on.raw_events != expect) {
		fprintf(stderr, "bench_munmap: the raw path saw %llu munmaps, expected %llu\n",
			(unsigned long long)on.raw_events, (unsigned long long)expect);
		exit(1);
	}
	if (!csv) {
		printf("\nraw system calls (backstop off; thread CPU ns per call): raw path on");
		if (on.raw_error)
			printf(" (NOT on: %s)", strerror(-on.raw_error));
		printf(" vs off (MMN_RAW=0)\n  %-8s %-31s %9s %9s %9s\n", "path", "", "median",
		       "min", "max");
	}
	for (int c = 0; c < RC_COUNT; c++) {
		for (int on_ = 0; on_ <= 1; on_++) {
			const struct result *res = on_ ? &on.res[c] : &off.res[c];

			if (csv)
				printf("raw path %s,%s,%.1f,%.1f,%.1f,ns/op\n", on_ ? "on" : "off",
				       names[c], res->median, res->min, res->max);
			else
				printf("  %-8s %-31s %9.1f %9.1f %9.1f\n", on_ ? "on" : "off",
				       names[c], res->median, res->min, res->max);
		}
	}
	ratio("T7", "raw munmap: raw path on / off (touched page)",
	      on.res[RC_RAW_MUNMAP].median / off.res[RC_RAW_MUNMAP].median, 2.0);
	/* libc munmap unchanged by the raw path: the hooks' own cost is T4 above. */
	ratio("T4", "libc munmap: raw path on / off (touched page)",
	      on.res[RC_LIBC_MUNMAP].median / off.res[RC_LIBC_MUNMAP].median, 1.10);
	info("libc getpid: raw path on / off",
	     on.res[RC_LIBC_GETPID].median / off.res[RC_LIBC_GETPID].median);
	info("raw getpid: raw path on / off",
	     on.res[RC_RAW_GETPID].median / off.res[RC_RAW_GETPID].median);
	info("raw getpid: raw path on minus off in ns",
	     on.res[RC_RAW_GETPID].median - off.res[RC_RAW_GETPID].median);
}

int main(int argc, char **argv)
{
	struct run on = { 0 }, off = { 0 };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--smoke") == 0) {
			nr_batches = 3;
			batch_pages = 16;
		} else if (strcmp(argv[i], "--csv") == 0) {
			csv = true;
		} else if (strcmp(argv[i], "--with") == 0 && i + 1 < argc &&
			   (!strcmp(argv[i + 1], "ucx") || !strcmp(argv[i + 1], "tcmalloc"))) {
			with = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--smoke] [--csv] [--with ucx|tcmalloc]\n",
				argv[0]);
			return 2;
		}
	}
	if (with && !strcmp(with, "tcmalloc") && !getenv("MMN_BENCH_TCMALLOC")) {
		/* Preloaded as users do it: re-execute with it. */
		setenv("MMN_BENCH_TCMALLOC", "1", 1);
		setenv("LD_PRELOAD", "libtcmalloc.so.4", 1);
		execv("/proc/self/exe", argv);
		die("execv /proc/self/exe", errno);
	}
	if (with && !strcmp(with, "tcmalloc") && !dlsym(RTLD_DEFAULT, "tc_malloc")) {
		fprintf(stderr, "bench_munmap: --with tcmalloc: libtcmalloc.so.4 not loaded\n");
		return 77;
	}
	if (!csv) {
		printf("bench_munmap: T4, munmap of an unsubscribed 4 KiB page, libc (hooked) vs raw\n");
		printf("build: %s, MMN_DEBUG=%d%s\n", MMN_BENCH_BUILD_TYPE, MMN_BENCH_DEBUG,
		       MMN_BENCH_DEBUG > 0 ? "  (not a Release build: numbers are not the targets')"
					   : "");
		printf("timed: munmap alone (pages mapped before the timed loop); median of %d "
		       "batches x %d calls\n",
		       nr_batches, batch_pages);
		printf("domain: %d unrelated notifiers + %d on a mapped region elsewhere\n",
		       FAR_NOTIFIERS, NEAR_NOTIFIERS);
		printf("with: %s\n\n", with ? with : "nothing else (libmmn alone)");
	}
	fflush(stdout);
	raw_section_measure();
	/* T4's "raw" baseline is libc's syscall(): the raw path would hook it. */
	setenv("MMN_RAW", "0", 1);

	/* Backstop off: a child, forked before this process sets anything up. */
	in_child("the backstop-off child", "0", run_all, &off, sizeof(off));
	check(&off);

	/* Backstop as the environment says (on by default), here. */
	run_all(&on);
	check(&on);

	report("backstop on", "on", &on);
	report("backstop off", "off (MMN_BACKSTOP=0)", &off);
	if (!csv)
		printf("\n");
	/* T11 is T4 in a process that also holds UCX or tcmalloc (--with). */
	ratio(with ? "T11" : "T4", "hooked/raw munmap: touched page; backstop on",
	      on.hooked[UNMAP_TOUCHED].median / on.raw[UNMAP_TOUCHED].median, 1.10);
	ratio(with ? "T11" : "T4", "hooked/raw munmap: touched page; backstop off",
	      off.hooked[UNMAP_TOUCHED].median / off.raw[UNMAP_TOUCHED].median, 1.10);
	info("hooked/raw: untouched page; backstop on",
	     on.hooked[UNMAP_UNTOUCHED].median / on.raw[UNMAP_UNTOUCHED].median);
	info("hooked/raw: untouched page; backstop off",
	     off.hooked[UNMAP_UNTOUCHED].median / off.raw[UNMAP_UNTOUCHED].median);
	info("hooked/raw: mmap+touch+munmap pair; backstop on",
	     on.hooked[PAIR].median / on.raw[PAIR].median);
	info("hooked/raw: mmap+touch+munmap pair; backstop off",
	     off.hooked[PAIR].median / off.raw[PAIR].median);
	info("hooked munmap: backstop on / off (touched page)",
	     on.hooked[UNMAP_TOUCHED].median / off.hooked[UNMAP_TOUCHED].median);
	info("hooked minus raw in ns: touched page; backstop on",
	     on.hooked[UNMAP_TOUCHED].median - on.raw[UNMAP_TOUCHED].median);
	info("hooked minus raw in ns: touched page; backstop off",
	     off.hooked[UNMAP_TOUCHED].median - off.raw[UNMAP_TOUCHED].median);
	fflush(stdout);
	raw_section();
	return 0;
}
