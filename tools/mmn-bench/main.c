// SPDX-License-Identifier: MIT
/*
 * mmn-bench: measures libmmn's two-pass claim on simulated GPUs.
 *
 *   mmn-bench scaling     one invalidation covering a binding on each of N
 *                         devices, single-pass vs two-pass drivers (target T1)
 *   mmn-bench concurrent  engines run jobs on every device while the
 *                         application unmaps and remaps bound buffers
 *   mmn-bench vulkan      scaling on real Vulkan devices (vulkan/, target T10)
 *
 * Tables go to stdout, a progress line to stderr when stdout is a terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const unsigned int default_devices[] = { 1, 2, 4, 8, 16, 32, 64 };

static void usage(FILE *f)
{
	fputs("usage: mmn-bench scaling|concurrent|vulkan [options]\n"
	      "\n"
	      "common options:\n"
	      "  --latency-us N      device latency (TLB invalidation, preemption), default 50\n"
	      "  --p99-us N          draw latencies from a lognormal with median --latency-us\n"
	      "                      and this 99th percentile (default: fixed latency)\n"
	      "  --driver KIND       userptr (default) or svm\n"
	      "  --pages N           pages per binding, default 16\n"
	      "  --pool N            svm finish containers, default 4096\n"
	      "  --seed N            seed of the latency draws and the workload, default 1\n"
	      "scaling:\n"
	      "  --devices LIST      device counts, default 1,2,4,8,16,32,64\n"
	      "  --reps N            invalidations measured per point, default 100\n"
	      "  --csv               print devices,mode,p50_us,p99_us rows instead of the table\n"
	      "  --plot FILE.svg     write an SVG plot of latency against device count\n"
	      "vulkan: as scaling, on real Vulkan devices (jobs stopped by a stop word;\n"
	      "  --latency-us, --p99-us, --driver and --seed do not apply), devices 1,2,4,8\n"
	      "concurrent:\n"
	      "  --devices N         devices, default 4\n"
	      "  --engines N         engines per device, default 1\n"
	      "  --buffers N         bound buffers, default 8\n"
	      "  --duration-ms N     run time per mode, default 1000\n"
	      "  --interval-us N     pause between two munmap+mmap rounds, default 200\n"
	      "  --job-accesses N    memory accesses per job, default 64\n"
	      "  --job-us N          compute time per job, default 20\n"
	      "  --preempt           devices in preempt-fence mode (default: fault mode)\n", f);
}

static int parse_uint(const char *s, unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v > 1000000000ul)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

static int parse_list(const char *s, struct bench_opts *o)
{
	char buf[256], *tok, *save;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	o->nr_devices = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned int v;

		if (o->nr_devices == BENCH_MAX_DEVCOUNTS || parse_uint(tok, &v) || !v ||
		    v > 4096)
			return -EINVAL;
		if (o->nr_devices && v <= o->devices[o->nr_devices - 1])
			return -EINVAL;		/* ascending, for the table and plot */
		o->devices[o->nr_devices++] = v;
	}
	return o->nr_devices ? 0 : -EINVAL;
}

enum {
	OPT_LATENCY = 256, OPT_P99, OPT_DRIVER, OPT_PAGES, OPT_POOL, OPT_SEED,
	OPT_DEVICES, OPT_REPS, OPT_CSV, OPT_PLOT, OPT_ENGINES, OPT_BUFFERS,
	OPT_DURATION, OPT_INTERVAL, OPT_JOB_ACCESSES, OPT_JOB_US, OPT_PREEMPT,
	OPT_HELP,
};

static const struct option long_opts[] = {
	{ "latency-us", required_argument, NULL, OPT_LATENCY },
	{ "p99-us", required_argument, NULL, OPT_P99 },
	{ "driver", required_argument, NULL, OPT_DRIVER },
	{ "pages", required_argument, NULL, OPT_PAGES },
	{ "pool", required_argument, NULL, OPT_POOL },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "devices", required_argument, NULL, OPT_DEVICES },
	{ "reps", required_argument, NULL, OPT_REPS },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "plot", required_argument, NULL, OPT_PLOT },
	{ "engines", required_argument, NULL, OPT_ENGINES },
	{ "buffers", required_argument, NULL, OPT_BUFFERS },
	{ "duration-ms", required_argument, NULL, OPT_DURATION },
	{ "interval-us", required_argument, NULL, OPT_INTERVAL },
	{ "job-accesses", required_argument, NULL, OPT_JOB_ACCESSES },
	{ "job-us", required_argument, NULL, OPT_JOB_US },
	{ "preempt", no_argument, NULL, OPT_PREEMPT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < 0 || *out > 1e7)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.reps = 100,
		.latency_us = 50,
		.driver = MMN_SIM_DRIVER_USERPTR,
		.seed = 1,
		.pages = 16,
		.pool = 4096,
		.engines = 1,
		.buffers = 8,
		.duration_ms = 1000,
		.interval_us = 200,
		.job_accesses = 64,
		.job_us = 20,
	};
	const char *cmd;
	int c, bad = 0;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_LATENCY:
			bad |= parse_double(optarg, &o.latency_us);
			break;
		case OPT_P99:
			bad |= parse_double(optarg, &o.p99_us);
			break;
		case OPT_DRIVER:
			if (!strcmp(optarg, "userptr"))
				o.driver = MMN_SIM_DRIVER_USERPTR;
			else if (!strcmp(optarg, "svm"))
				o.driver = MMN_SIM_DRIVER_SVM;
			else
				bad = 1;
			break;
		case OPT_PAGES:
			bad |= parse_uint(optarg, &o.pages) || !o.pages;
			break;
		case OPT_POOL:
			bad |= parse_uint(optarg, &o.pool);
			break;
		case OPT_SEED:
			o.seed = strtoull(optarg, NULL, 0);
			break;
		case OPT_DEVICES:
			bad |= parse_list(optarg, &o);
			o.devices_set = true;
			break;
		case OPT_REPS:
			bad |= parse_uint(optarg, &o.reps) || !o.reps;
			break;
		case OPT_CSV:
			o.csv = true;
			break;
		case OPT_PLOT:
			o.plot = optarg;
			break;
		case OPT_ENGINES:
			bad |= parse_uint(optarg, &o.engines) || !o.engines ||
			       o.engines > MMN_SIM_MAX_ENGINES;
			break;
		case OPT_BUFFERS:
			bad |= parse_uint(optarg, &o.buffers) || !o.buffers;
			break;
		case OPT_DURATION:
			bad |= parse_uint(optarg, &o.duration_ms) || !o.duration_ms;
			break;
		case OPT_INTERVAL:
			bad |= parse_uint(optarg, &o.interval_us);
			break;
		case OPT_JOB_ACCESSES:
			bad |= parse_uint(optarg, &o.job_accesses) || !o.job_accesses;
			break;
		case OPT_JOB_US:
			bad |= parse_uint(optarg, &o.job_us);
			break;
		case OPT_PREEMPT:
			o.preempt = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			bad = 1;
			break;
		}
	}
	if (bad || optind != argc) {
		fprintf(stderr, "mmn-bench: bad arguments\n");
		usage(stderr);
		return 2;
	}
	o.progress = isatty(STDOUT_FILENO);
	/* Sleeps of 50 us must not be rounded up by the default 50 us slack. */
	if (mmn_sim_set_timer_slack(1))
		fprintf(stderr, "mmn-bench: cannot set the timer slack; sleeps will be late\n");

	if (!strcmp(cmd, "scaling")) {
		if (!o.devices_set) {
			memcpy(o.devices, default_devices, sizeof(default_devices));
			o.nr_devices = sizeof(default_devices) / sizeof(default_devices[0]);
		}
		return bench_scaling(&o);
	}
	if (!strcmp(cmd, "vulkan"))
		return bench_vulkan(&o);
	if (!strcmp(cmd, "concurrent")) {
		if (!o.devices_set) {
			o.devices[0] = 4;
			o.nr_devices = 1;
		}
		if (o.nr_devices != 1) {
			fprintf(stderr, "mmn-bench concurrent: --devices takes one number\n");
			return 2;
		}
		return bench_concurrent(&o);
	}
	fprintf(stderr, "mmn-bench: unknown scenario '%s'\n", cmd);
	usage(stderr);
	return 2;
}
