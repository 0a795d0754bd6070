// SPDX-License-Identifier: MIT
/*
 * mmn-bench vulkan: the scaling measurement on real Vulkan devices
 * (vulkan/, docs/vulkan.md). A buffer is imported into each of N logical
 * devices and a job that writes it is running on every device; the wall time
 * of one invalidation (range_start + _end) of the buffer is measured with the
 * single-pass driver (raise the stop word, wait for the fence, device after
 * device) and the two-pass driver (raise every stop word, then wait for
 * every fence). Target T10: at 4 devices two-pass p50 <= 0.5 x single p50.
 *
 * A repetition counts only if every job was still running when the
 * invalidation began and was stopped by it (else it is redone).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef MMN_BENCH_VULKAN
#include <sys/mman.h>

#include "mmn_vk.h"

enum { MODE_SINGLE = 0, MODE_TWO_PASS, NR_MODES };

static const char *const mode_names[NR_MODES] = { "single", "two-pass" };
static const unsigned int default_devices[] = { 1, 2, 4, 8 };

#define WARMUP_REPS 3
#define WAIT_MS 30000u

struct point {
	struct bench_pct pct;
	double *samples;
	unsigned int redone;
};

static int measure(const struct bench_opts *o, unsigned int ndev, int mode, struct point *pt,
		   char *devname, size_t devname_len, unsigned int *nphys)
{
	size_t len = (size_t)o->pages << 12;
	struct mmn_vk_buf **b = calloc(ndev, sizeof(*b));
	struct mmn_vk_config cfg = {
		.nr_devices = ndev,
		.single_pass = mode == MODE_SINGLE,
	};
	struct mmn_vk *vk = NULL;
	struct mmn_mm *mm = NULL;
	unsigned int done = 0, tries = 0;
	void *mem = MAP_FAILED;
	int ret;

	if (!b)
		return -ENOMEM;
	ret = mmn_mm_new(&mm);
	if (ret)
		goto out;
	cfg.mm = mm;
	ret = mmn_vk_new(&cfg, &vk);
	if (ret) {
		fprintf(stderr, "mmn-bench vulkan: %s\n", mmn_vk_why());
		goto out;
	}
	snprintf(devname, devname_len, "%s", mmn_vk_device_name(vk, 0));
	*nphys = mmn_vk_physical_count(vk);
	if (len % mmn_vk_alignment(vk)) {
		fprintf(stderr, "mmn-bench vulkan: --pages must give a multiple of %zu bytes\n",
			mmn_vk_alignment(vk));
		ret = -EINVAL;
		goto out;
	}
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	for (unsigned int i = 0; i < ndev; i++) {
		ret = mmn_vk_bind(vk, i, mem, len, &b[i]);
		if (ret)
			goto out;
	}
	while (done < WARMUP_REPS + o->reps) {
		struct mmn_range range;
		bool all_stopped = true;
		uint64_t t0, t1;

		if (++tries > 4 * (WARMUP_REPS + o->reps)) {
			fprintf(stderr, "mmn-bench vulkan: jobs keep ending before the invalidation\n");
			ret = -ETIMEDOUT;
			goto out;
		}
		for (unsigned int i = 0; i < ndev && !ret; i++)
			ret = mmn_vk_job_submit(b[i], tries, 0xffffffffu);
		for (unsigned int i = 0; i < ndev && !ret; i++) {
			ret = mmn_vk_job_wait_started(b[i], WAIT_MS);
			if (ret)
				fprintf(stderr, "mmn-bench vulkan: the job on device %u did not begin in %u s "
					"(does the driver run fewer jobs at once than there are devices?)\n",
					i, WAIT_MS / 1000);
		}
		if (ret)
			goto out;
		mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, (unsigned long)mem,
			       (unsigned long)mem + len);
		t0 = mmn_sim_now_ns();
		ret = mmn_invalidate_range_start(&range);
		mmn_invalidate_range_end(&range);
		t1 = mmn_sim_now_ns();
		if (ret)
			goto out;
		for (unsigned int i = 0; i < ndev; i++) {
			struct mmn_vk_job_result res;

			/* Stopped and waited for inside the invalidation. */
			ret = mmn_vk_job_wait(b[i], 0, &res);
			if (ret) {
				fprintf(stderr, "mmn-bench vulkan: job still running after the invalidation\n");
				ret = -EPROTO;
				goto out;
			}
			all_stopped &= res.stopped;
		}
		if (!all_stopped) {
			pt->redone++;		/* a job had ended by itself */
			continue;
		}
		if (done >= WARMUP_REPS)
			pt->samples[done - WARMUP_REPS] = (double)(t1 - t0) / 1000.0;
		done++;
	}
	/* Every measured invalidation stopped one job on every device. */
	for (unsigned int i = 0; i < ndev; i++) {
		struct mmn_vk_stats st;

		mmn_vk_buf_stats(b[i], &st);
		if (st.stops < done || st.invalidations != tries) {
			fprintf(stderr, "mmn-bench vulkan: device %u: %llu invalidations, %llu stops, expected %u and >= %u\n",
				i, (unsigned long long)st.invalidations,
				(unsigned long long)st.stops, tries, done);
			ret = -EPROTO;
		}
	}
out:
	for (unsigned int i = 0; i < ndev; i++)
		if (b[i])
			mmn_vk_unbind(b[i]);
	mmn_vk_destroy(vk);
	if (mem != MAP_FAILED)
		munmap(mem, len);
	if (mm && mmn_mm_destroy(mm))
		fprintf(stderr, "mmn-bench vulkan: domain still busy at the end\n");
	free(b);
	return ret;
}

static int find_count(const struct bench_opts *o, unsigned int n)
{
	for (unsigned int i = 0; i < o->nr_devices; i++)
		if (o->devices[i] == n)
			return (int)i;
	return -1;
}

int bench_vulkan(const struct bench_opts *in)
{
	struct bench_opts opts = *in, *o = &opts;
	struct point (*pts)[NR_MODES];
	FILE *sum = o->csv ? stderr : stdout;
	unsigned int done = 0, nphys = 0, last;
	char devname[256] = "";
	int ret = 0, four;

	if (!o->devices_set) {
		memcpy(o->devices, default_devices, sizeof(default_devices));
		o->nr_devices = sizeof(default_devices) / sizeof(default_devices[0]);
	}
	for (unsigned int i = 0; i < o->nr_devices; i++)
		if (o->devices[i] > MMN_VK_MAX_DEVICES) {
			fprintf(stderr, "mmn-bench vulkan: at most %d devices\n", MMN_VK_MAX_DEVICES);
			return 2;
		}
	last = o->nr_devices - 1;
	/*
	 * lavapipe runs the jobs of all its VkDevices on one pool of
	 * LP_NUM_THREADS threads (default: the CPUs), so with more devices than
	 * CPUs some jobs could not begin until others end. Ask for a thread per
	 * device unless the user chose; other drivers ignore the variable.
	 */
	if (o->devices[last] > 1) {
		char n[16];

		snprintf(n, sizeof(n), "%u", o->devices[last]);
		setenv("LP_NUM_THREADS", n, 0);
	}
	pts = calloc(o->nr_devices, sizeof(*pts));
	if (!pts)
		return 1;
	for (unsigned int i = 0; i < o->nr_devices && !ret; i++) {
		for (int m = 0; m < NR_MODES && !ret; m++) {
			bench_progress(o, "vulkan: %u device%s, %s (%u/%u)", o->devices[i],
				       o->devices[i] == 1 ? "" : "s", mode_names[m], ++done,
				       o->nr_devices * NR_MODES);
			pts[i][m].samples = calloc(o->reps, sizeof(double));
			if (!pts[i][m].samples) {
				ret = -ENOMEM;
				break;
			}
			ret = measure(o, o->devices[i], m, &pts[i][m], devname, sizeof(devname),
				      &nphys);
			pts[i][m].pct = bench_percentiles(pts[i][m].samples, o->reps);
		}
	}
	bench_progress_done(o);
	if (ret == -ENODEV) {
		printf("mmn-bench vulkan: skipped: no usable Vulkan device\n");
		ret = 77;
		goto out;
	}
	if (ret) {
		fprintf(stderr, "mmn-bench vulkan: failed: %s\n", strerror(-ret));
		ret = 1;
		goto out;
	}

	if (o->csv) {
		printf("devices,mode,p50_us,p99_us\n");
		for (unsigned int i = 0; i < o->nr_devices; i++)
			for (int m = 0; m < NR_MODES; m++)
				printf("%u,%s,%.1f,%.1f\n", o->devices[i], mode_names[m],
				       pts[i][m].pct.p50, pts[i][m].pct.p99);
	} else {
		printf("mmn-bench vulkan: %s (%u physical device%s), %u pages per buffer, %u reps\n",
		       devname, nphys, nphys == 1 ? "" : "s", o->pages, o->reps);
		printf("one invalidation (range_start + range_end) of a buffer with a job running on every device, us\n\n");
		printf("%8s %12s %12s %12s %12s %9s %7s\n", "devices", "single p50", "single p99",
		       "2-pass p50", "2-pass p99", "2p/single", "redone");
		for (unsigned int i = 0; i < o->nr_devices; i++)
			printf("%8u %12.1f %12.1f %12.1f %12.1f %9.2f %7u\n", o->devices[i],
			       pts[i][MODE_SINGLE].pct.p50, pts[i][MODE_SINGLE].pct.p99,
			       pts[i][MODE_TWO_PASS].pct.p50, pts[i][MODE_TWO_PASS].pct.p99,
			       pts[i][MODE_TWO_PASS].pct.p50 / pts[i][MODE_SINGLE].pct.p50,
			       pts[i][MODE_SINGLE].redone + pts[i][MODE_TWO_PASS].redone);
		printf("\n");
	}

	if (o->plot) {
		double p50[NR_MODES][BENCH_MAX_DEVCOUNTS], p99[NR_MODES][BENCH_MAX_DEVCOUNTS];
		struct plot_series series[NR_MODES] = {
			{ "single-pass", "#d62728", p50[MODE_SINGLE], p99[MODE_SINGLE] },
			{ "two-pass", "#1f77b4", p50[MODE_TWO_PASS], p99[MODE_TWO_PASS] },
		};
		char title[400];

		for (unsigned int i = 0; i < o->nr_devices; i++)
			for (int m = 0; m < NR_MODES; m++) {
				p50[m][i] = pts[i][m].pct.p50;
				p99[m][i] = pts[i][m].pct.p99;
			}
		snprintf(title, sizeof(title), "Invalidation with a job on each of N Vulkan devices: %s",
			 devname);
		/* References from the measured one-device single-pass median. */
		if (bench_plot_svg_x(o->plot, title, "Vulkan devices with a job on the buffer (log scale)",
				     o->devices, o->nr_devices, series, NR_MODES,
				     o->devices[0] == 1 ? pts[0][MODE_SINGLE].pct.p50 : 0)) {
			fprintf(stderr, "mmn-bench: cannot write %s\n", o->plot);
			ret = 1;
		} else {
			fprintf(sum, "plot written to %s\n", o->plot);
		}
	}

	four = find_count(o, 4);
	if (four >= 0) {
		double r = pts[four][MODE_TWO_PASS].pct.p50 / pts[four][MODE_SINGLE].pct.p50;

		fprintf(sum, "T10 two-pass(4) / single(4) = %.2f (target <= 0.50): %s\n", r,
			r <= 0.5 ? "PASS" : "MISS");
	}
	fprintf(sum, "two-pass at %u device%s: %.0f us vs single %.0f us median (%.1fx)\n",
		o->devices[last], o->devices[last] == 1 ? "" : "s",
		pts[last][MODE_TWO_PASS].pct.p50, pts[last][MODE_SINGLE].pct.p50,
		pts[last][MODE_SINGLE].pct.p50 / pts[last][MODE_TWO_PASS].pct.p50);
out:
	for (unsigned int i = 0; i < o->nr_devices; i++)
		for (int m = 0; m < NR_MODES; m++)
			free(pts[i][m].samples);
	free(pts);
	return ret;
}

#else /* !MMN_BENCH_VULKAN */

int bench_vulkan(const struct bench_opts *o)
{
	(void)o;
	printf("mmn-bench vulkan: skipped: built without Vulkan (needs libvulkan-dev and glslang-tools)\n");
	return 77;
}

#endif
