// SPDX-License-Identifier: MIT
/*
 * bench_rcache_munmap: munmap of a registered 1 MiB buffer with N devices
 * whose deregistration takes L -- when munmap returns, and when every device
 * has deregistered: libmmn two-pass, libmmn single-pass, and UCX (which
 * defers the deregistration to the next miss). With the fake device
 * (spinning until its deadline: exact) and, when sim/ is built, with
 * simulated GPUs whose deregistration is a TLB invalidation signalling a
 * fence (sleeping waits, as a driver's).
 *
 * Options: --smoke (tiny counts, for CTest), --reps N, --latency-us L.
 */
#include "rcache_common.h"

static struct {
	int lat_reps;
	uint64_t latency_ns;
} opt = { 15, 50000 };

#define NLAT_N 3
static const int lat_n[NLAT_N] = { 1, 4, 16 };
enum lat_mode { LAT_TWO_PASS = 0, LAT_SINGLE_PASS, NLAT_MODE };

struct lat_result {
	double munmap_us;		/* munmap duration, median */
	double done_us;			/* munmap start -> last device deregistered */
	double devs_at_return;		/* devices deregistered when munmap returned */
	double later_get_us;		/* UCX: the get that deregistered (next miss) */
	double after_1ms;		/* UCX: devices deregistered 1 ms after munmap */
	bool valid;
};

struct lat_child {
	struct child_head head;
	struct lat_result lat[NDEVKIND][NLAT_MODE][NLAT_N];
};

static void part_latency(int kind, int devkind, struct lat_child *res)
{
	for (int mode = 0; mode < NLAT_MODE; mode++) {
		if (kind == SYS_UCX && mode == LAT_SINGLE_PASS)
			continue;	/* one UCX row */
		for (int k = 0; k < NLAT_N; k++) {
			int n = lat_n[k], reps = opt.lat_reps;
			double munmap_us[64], done_us[64], at_ret[64], later[64], after1[64];
			struct sys s;
			int ok = 0;

			if (sys_open(&s, kind, devkind, n, opt.latency_ns, false,
				     mode == LAT_SINGLE_PASS ? MMN_RCACHE_SINGLE_PASS : 0))
				return;	/* no such device here: the rows stay empty */
			for (int rep = 0; rep < reps && rep < 64; rep++) {
				unsigned char *p = mmap(NULL, MB, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				unsigned char *q = mmap(NULL, page, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				uint64_t f0, t0, t1, t2, t3;
				void *r;

				if (sys_get(&s, p, MB, &r))
					break;
				sys_put(&s, r);
				f0 = devs_finishes(&s.devs);
				t0 = now_ns();
				munmap(p, MB);
				t1 = now_ns();
				at_ret[ok] = (double)(devs_finishes(&s.devs) - f0);
				munmap_us[ok] = (double)(t1 - t0) / 1000;
				later[ok] = 0;
				after1[ok] = at_ret[ok];
				if (at_ret[ok] < n) {
					/* Deferred: wait 1 ms, then make a miss happen. */
					while (now_ns() < t1 + 1000000)
						;
					after1[ok] = (double)(devs_finishes(&s.devs) - f0);
					t2 = now_ns();
					if (!sys_get(&s, q, page, &r))
						sys_put(&s, r);
					t3 = now_ns();
					later[ok] = (double)(t3 - t2) / 1000;
				}
				done_us[ok] = devs_finishes(&s.devs) - f0 >= (uint64_t)n
						      ? (double)(devs_last_finish(&s.devs) - t0) / 1000
						      : -1;
				munmap(q, page);
				ok++;
			}
			sys_close(&s);
			if (ok) {
				struct lat_result *l = &res->lat[devkind][mode][k];

				l->munmap_us = mmn_bench_median(munmap_us, ok);
				l->done_us = mmn_bench_median(done_us, ok);
				l->devs_at_return = mmn_bench_median(at_ret, ok);
				l->later_get_us = mmn_bench_median(later, ok);
				l->after_1ms = mmn_bench_median(after1, ok);
				l->valid = true;
			}
		}
	}
}

static void child_body(int kind, int arg, void *res)
{
	(void)arg;
	part_latency(kind, DEV_FAKE, res);
#ifdef MMN_BENCH_HAVE_SIM
	mmn_sim_set_timer_slack(1);
	part_latency(kind, DEV_SIM, res);
#endif
}

int main(int argc, char **argv)
{
	static struct lat_child res[NSYS];
	bool failed = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--smoke")) {
			opt.lat_reps = 3;
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			opt.lat_reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--latency-us") && i + 1 < argc) {
			opt.latency_ns = (uint64_t)atol(argv[++i]) * 1000;
		} else {
			fprintf(stderr, "usage: %s [--smoke] [--reps N] [--latency-us L]\n", argv[0]);
			return 2;
		}
	}
	if (opt.lat_reps < 1 || opt.lat_reps > 64) {
		fprintf(stderr, "%s: --reps must be 1..64\n", argv[0]);
		return 2;
	}
	if (!banner("bench_rcache_munmap: munmap of a registered buffer, libmmn vs UCX ucs_rcache"))
		return 77;
	for (int k = 0; k < NSYS; k++) {
		run_child(k, child_body, 0, &res[k], sizeof(res[k]));
		if (!res[k].head.ok) {
			printf("%s: %s\n", sys_name[k], res[k].head.err);
			failed = true;
		}
	}
	for (int k = 0; k < NSYS; k++)
		if (res[k].head.info[0])
			printf("%s\n", res[k].head.info);

	for (int dk = 0; dk < NDEVKIND; dk++) {
		if (!res[SYS_MMN].lat[dk][0][0].valid && !res[SYS_UCX].lat[dk][0][0].valid)
			continue;
		printf("\n== %c. munmap of a registered 1 MiB buffer, N %s, each deregistration takes %.0f us\n",
		       'a' + dk, dk == DEV_FAKE ? "fake devices (spin until the deadline)"
				: "simulated GPUs (sim/: TLB invalidation + fence, sleeping wait)",
		       (double)opt.latency_ns / 1000);
		printf("   (median of %d; 'all deregistered' is from the start of munmap)\n", opt.lat_reps);
		printf("%-18s %3s %12s %14s  %s\n", "system", "N", "munmap (us)", "dereg'd when",
		       "all deregistered (us)");
		printf("%-18s %3s %12s %14s\n", "", "", "", "munmap returns");
		for (int k = 0; k < NSYS; k++) {
			for (int mode = 0; mode < NLAT_MODE; mode++) {
				for (int i = 0; i < NLAT_N; i++) {
					const struct lat_result *l = &res[k].lat[dk][mode][i];
					char label[32], at[24], done[96];

					if (!l->valid)
						continue;
					snprintf(label, sizeof(label), "%s%s", sys_name[k],
						 k == SYS_UCX ? " (serial)"
						 : mode == LAT_TWO_PASS ? " two-pass" : " single-pass");
					snprintf(at, sizeof(at), "%.0f of %d", l->devs_at_return, lat_n[i]);
					if (l->devs_at_return >= lat_n[i])
						snprintf(done, sizeof(done), "%.1f, inside munmap", l->done_us);
					else
						snprintf(done, sizeof(done),
							 "%.0f of %d after 1 ms; at the next miss, in a get of %.1f us",
							 l->after_1ms, lat_n[i], l->later_get_us);
					printf("%-18s %3d %12.1f %14s  %s\n", label, lat_n[i], l->munmap_us,
					       at, done);
				}
			}
		}
	}
	/* Numbers never fail the program; a child that could not measure does. */
	return failed ? 1 : 0;
}
