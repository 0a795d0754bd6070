// SPDX-License-Identifier: MIT
/*
 * mirror: a toy device that mirrors a buffer of this process, kept coherent
 * by a two-pass interval notifier.
 *
 * The "device" has a page table (virtual page -> host pointer) and a TLB whose
 * flush takes a while. A device thread reads the buffer only through its page
 * table, faulting pages in with the collision-retry loop:
 *
 *	seq = mmn_interval_read_begin(sub);
 *	look up the host pages;
 *	lock(dev); if (mmn_interval_read_retry(sub, seq)) retry; install; unlock;
 *
 * The notifier's first pass zaps the page-table entries and *starts* the TLB
 * flush; its second pass waits for the flush. Meanwhile the main thread
 * rewrites the buffer, then unmaps half of it and maps new memory in its
 * place, each time between mmn_invalidate_range_start() and _end() (the
 * process event sources of include/mmn/process.h do that part by themselves).
 *
 * Run it: ./mirror. It prints what the device saw and the domain's counters,
 * and exits non-zero if the device ever read a stale page.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <mmn.h>

#define PAGES 64
#define TLB_FLUSH_NS 20000	/* a device TLB flush takes 20 µs */

struct device {
	pthread_mutex_t lock;			/* the driver lock of the protocol */
	/*
	 * Page table. A real device maps the physical page it pinned at fault
	 * time, and keeps reading it after the CPU has mapped new memory at
	 * the same address; here an entry holds a copy of the page's first
	 * byte, taken at fault time, to the same effect.
	 */
	bool present[PAGES];
	unsigned char pinned[PAGES];
	struct mmn_interval_notifier sub;
	struct mmn_finish finish;		/* one flush in flight at a time */
	bool finish_inuse;
	struct timespec flush_done;		/* when the started flush completes */
	unsigned long base;
	unsigned long faults, retries, zapped, flushes;
};

#define to_device(s) mmn_container_of(s, struct device, sub)

static unsigned long page_size;

static void add_ns(struct timespec *ts, long ns)
{
	ts->tv_nsec += ns;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

/* First pass: stop device use of the range and start the TLB flush. */
static bool mirror_invalidate_start(struct mmn_interval_notifier *sub,
				    const struct mmn_range *range,
				    unsigned long cur_seq, struct mmn_finish **finish)
{
	struct device *dev = to_device(sub);
	unsigned long first, last;

	if (!mmn_range_blockable(range))
		return false;	/* taking dev->lock might sleep */

	pthread_mutex_lock(&dev->lock);
	mmn_interval_set_seq(sub, cur_seq);
	first = range->start > dev->base ? (range->start - dev->base) / page_size : 0;
	last = (range->end - 1 - dev->base) / page_size;
	if (last >= PAGES)
		last = PAGES - 1;
	for (unsigned long i = first; i <= last; i++) {
		dev->zapped += dev->present[i];
		dev->present[i] = false;
	}
	clock_gettime(CLOCK_MONOTONIC, &dev->flush_done);
	add_ns(&dev->flush_done, TLB_FLUSH_NS);
	dev->flushes++;
	if (!dev->finish_inuse) {
		/* Leave the wait to the second pass. */
		dev->finish_inuse = true;
		*finish = &dev->finish;
	} else {
		/* Another invalidation owns the finish: wait here instead. */
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dev->flush_done, NULL);
	}
	pthread_mutex_unlock(&dev->lock);
	return true;
}

/* Second pass: wait for the flush started in the first. */
static void mirror_invalidate_finish(struct mmn_finish *finish)
{
	struct device *dev = to_device(finish->notifier);
	struct timespec done;

	pthread_mutex_lock(&dev->lock);
	done = dev->flush_done;
	pthread_mutex_unlock(&dev->lock);
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &done, NULL);
	pthread_mutex_lock(&dev->lock);
	dev->finish_inuse = false;
	pthread_mutex_unlock(&dev->lock);
}

static const struct mmn_interval_notifier_ops mirror_ops = {
	.invalidate_start = mirror_invalidate_start,
	.invalidate_finish = mirror_invalidate_finish,
};

/*
 * "Walk the CPU page table and pin the page": the device reads the page while
 * the CPU may be replacing it. Like a seqlock reader, that read is only
 * speculative: read_retry() discards it if an invalidation ran meanwhile.
 * ThreadSanitizer cannot see that validation, so this one read is exempt.
 */
__attribute__((noinline, no_sanitize_thread))
static unsigned char pin_page(const struct device *dev, unsigned long i)
{
	return *(volatile unsigned char *)(dev->base + i * page_size);
}

/* The device reads page @i; on a miss it faults the page in. */
static unsigned char device_read(struct device *dev, unsigned long i)
{
	unsigned char v;

	for (;;) {
		unsigned long seq;
		unsigned char page;

		pthread_mutex_lock(&dev->lock);
		if (dev->present[i]) {
			/* A hit: the entry cannot be zapped while we hold the lock. */
			v = dev->pinned[i];
			pthread_mutex_unlock(&dev->lock);
			return v;
		}
		pthread_mutex_unlock(&dev->lock);

		seq = mmn_interval_read_begin(&dev->sub);
		page = pin_page(dev, i);
		pthread_mutex_lock(&dev->lock);
		if (mmn_interval_read_retry(&dev->sub, seq)) {
			/* An invalidation ran since read_begin: the page may be gone. */
			dev->retries++;
			pthread_mutex_unlock(&dev->lock);
			continue;
		}
		dev->present[i] = true;
		dev->pinned[i] = page;
		dev->faults++;
		pthread_mutex_unlock(&dev->lock);
		return page;
	}
}

static atomic_int generation = 1;
static atomic_bool stop;
static atomic_ulong stale_reads, reads;

static void *device_thread(void *arg)
{
	struct device *dev = arg;

	while (!atomic_load(&stop)) {
		for (unsigned long i = 0; i < PAGES; i++) {
			/*
			 * Load the generation before reading: a page may already
			 * show a newer one, never an older one.
			 */
			int gen = atomic_load(&generation);
			unsigned char v = device_read(dev, i);

			atomic_fetch_add(&reads, 1);
			if (v < (unsigned char)gen)
				atomic_fetch_add(&stale_reads, 1);
		}
	}
	return NULL;
}

/* Change the CPU mapping of [addr, addr+len) the way the kernel would: notify first. */
static void remap_with_notify(struct mmn_mm *mm, unsigned char *addr, size_t len,
			      unsigned char fill)
{
	struct mmn_range range;
	void *p;

	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, (unsigned long)addr,
		       (unsigned long)addr + len);
	if (mmn_invalidate_range_start(&range))
		abort();
	/* No device can reach the old pages now: replace them. */
	p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	if (p == MAP_FAILED)
		abort();
	memset(addr, fill, len);
	mmn_invalidate_range_end(&range);
}

int main(void)
{
	static struct device dev = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mmn_stats st;
	struct mmn_mm *mm;
	unsigned char *buf;
	pthread_t thread;
	size_t len;
	int err;

	page_size = (unsigned long)sysconf(_SC_PAGESIZE);
	len = PAGES * page_size;
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 1;
	memset(buf, 1, len);
	dev.base = (unsigned long)buf;

	err = mmn_mm_new(&mm);
	if (!err)
		err = mmn_interval_notifier_insert(&dev.sub, mm, dev.base, len, &mirror_ops);
	if (err) {
		fprintf(stderr, "mirror: set-up failed: %s\n", strerror(-err));
		return 1;
	}

	pthread_create(&thread, NULL, device_thread, &dev);
	for (int gen = 2; gen <= 200; gen++) {
		/* Alternate: replace the upper half, then the whole buffer. */
		size_t off = gen % 2 ? 0 : len / 2;

		remap_with_notify(mm, buf + off, len - off, (unsigned char)gen);
		if (off)
			remap_with_notify(mm, buf, off, (unsigned char)gen);
		atomic_store(&generation, gen);
	}
	atomic_store(&stop, true);
	pthread_join(thread, NULL);

	mmn_mm_get_stats(mm, &st);
	printf("device: %lu reads, %lu stale, %lu faults, %lu retries, %lu entries zapped, %lu TLB flushes\n",
	       atomic_load(&reads), atomic_load(&stale_reads), dev.faults, dev.retries,
	       dev.zapped, dev.flushes);
	printf("domain: %llu invalidations (%llu hit), %llu first passes, %llu finishes, seq %lu\n",
	       (unsigned long long)st.invalidations, (unsigned long long)st.invalidations_hit,
	       (unsigned long long)st.notifiers_called, (unsigned long long)st.finishes, st.seq);

	mmn_interval_notifier_remove(&dev.sub);
	if (mmn_mm_destroy(mm))
		return 1;
	munmap(buf, len);
	if (atomic_load(&stale_reads)) {
		printf("mirror: FAILED, the device read stale pages\n");
		return 1;
	}
	printf("mirror: ok, the device never read a stale page\n");
	return 0;
}
