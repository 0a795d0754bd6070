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

static const unsigned int default_devices[] = { 1, 2, 4, 8 };

#define WARMUP_REPS 3
#define WAIT_MS 30000u

/* What measure() learns of the devices, for the table's heading. */
struct vk_info {
	char devname[256];
	unsigned int nphys;
};

/* Measure one (devices, mode) point (bench_measure_fn); @arg: a struct vk_info. */
static int measure(const struct bench_opts *o, unsigned int ndev, enum bench_mode mode,
		   struct bench_point *pt, void *arg)
{
	struct vk_info *info = arg;
	size_t len = (size_t)o->pages << 12;
	struct mmn_vk_buf **b = calloc(ndev, sizeof(*b));
	struct mmn_vk_config cfg = {
		.nr_devices = ndev,
		.single_pass = mode == BENCH_SINGLE,
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
	snprintf(info->devname, sizeof(info->devname), "%s", mmn_vk_device_name(vk, 0));
	info->nphys = mmn_vk_physical_count(vk);
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
		bool all_stopped = true;
		double us;

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
		ret = bench_time_invalidation(mm, (unsigned long)mem, (unsigned long)mem + len, &us);
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
			pt->samples[done - WARMUP_REPS] = us;
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

int bench_vulkan(const struct bench_opts *in)
{
	struct bench_opts opts = *in, *o = &opts;
	struct bench_point (*pts)[BENCH_NR_MODES];
	FILE *sum = o->csv ? stderr : stdout;
	struct vk_info info = { "", 0 };
	unsigned int last;
	int ret, four;

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
	ret = bench_measure_points(o, "vulkan", pts, measure, &info);
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
		bench_print_csv(o, pts);
	} else {
		printf("mmn-bench vulkan: %s (%u physical device%s), %u pages per buffer, %u reps\n",
		       info.devname, info.nphys, info.nphys == 1 ? "" : "s", o->pages, o->reps);
		printf("one invalidation (range_start + range_end) of a buffer with a job running on every device, us\n\n");
		printf("%8s %12s %12s %12s %12s %9s %7s\n", "devices", "single p50", "single p99",
		       "2-pass p50", "2-pass p99", "2p/single", "redone");
		for (unsigned int i = 0; i < o->nr_devices; i++)
			printf("%8u %12.1f %12.1f %12.1f %12.1f %9.2f %7u\n", o->devices[i],
			       pts[i][BENCH_SINGLE].pct.p50, pts[i][BENCH_SINGLE].pct.p99,
			       pts[i][BENCH_TWO_PASS].pct.p50, pts[i][BENCH_TWO_PASS].pct.p99,
			       pts[i][BENCH_TWO_PASS].pct.p50 / pts[i][BENCH_SINGLE].pct.p50,
			       pts[i][BENCH_SINGLE].redone + pts[i][BENCH_TWO_PASS].redone);
		printf("\n");
	}

	if (o->plot) {
		char title[400];

		snprintf(title, sizeof(title), "Invalidation with a job on each of N Vulkan devices: %s",
			 info.devname);
		/* References from the measured one-device single-pass median. */
		if (bench_plot_points(o, sum, title, "Vulkan devices with a job on the buffer (log scale)",
				      pts, o->devices[0] == 1 ? pts[0][BENCH_SINGLE].pct.p50 : 0))
			ret = 1;
	}

	four = bench_find_count(o, 4);
	if (four >= 0) {
		double r = pts[four][BENCH_TWO_PASS].pct.p50 / pts[four][BENCH_SINGLE].pct.p50;

		fprintf(sum, "T10 two-pass(4) / single(4) = %.2f (target <= 0.50): %s\n", r,
			r <= 0.5 ? "PASS" : "MISS");
	}
	fprintf(sum, "two-pass at %u device%s: %.0f us vs single %.0f us median (%.1fx)\n",
		o->devices[last], o->devices[last] == 1 ? "" : "s",
		pts[last][BENCH_TWO_PASS].pct.p50, pts[last][BENCH_SINGLE].pct.p50,
		pts[last][BENCH_SINGLE].pct.p50 / pts[last][BENCH_TWO_PASS].pct.p50);
out:
	bench_points_free(o, pts);
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
