/* SPDX-License-Identifier: MIT */
/*
 * A Vulkan userptr driver on libmmn (docs/vulkan.md).
 *
 * User memory is imported into N Vulkan devices with
 * VK_EXT_external_memory_host; compute jobs read and write it. Every binding
 * (one user range on one device) is an interval notifier, as an xe userptr
 * is: when the range is about to change (munmap, mmap(MAP_FIXED), free()...)
 *
 *   two-pass:    invalidate_start raises the job's stop word (which the
 *                shader polls: the analog of xe's preempt fence), records
 *                the job's fence and returns; invalidate_finish waits for
 *                the fence and drops the import;
 *   single-pass: invalidate does both, waiting before it returns.
 *
 * The next job on a dropped binding first re-imports the memory (the device
 * "fault") under the collision-retry protocol: mmn_interval_read_begin, the
 * import, the driver lock, mmn_interval_read_retry, install and submit.
 *
 * Devices: the physical devices that offer VK_EXT_external_memory_host and a
 * compute queue, GPUs before CPU implementations (lavapipe is used only when
 * nothing else is there). Logical device i runs on physical device
 * i % count: on lavapipe, N VkDevices share its one physical device; on a
 * machine with N GPUs, one per GPU.
 */
#ifndef MMN_VK_H
#define MMN_VK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mmn.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMN_VK_MAX_DEVICES 64

struct mmn_vk;
struct mmn_vk_buf;

/**
 * struct mmn_vk_config - how to build the driver
 * @nr_devices: logical devices, 1..MMN_VK_MAX_DEVICES
 * @single_pass: use the single-pass notifier (invalidate) instead of two-pass
 * @no_notifier: test switch: bind without any notifier, so nothing stops a
 *	job when its memory changes (the hazard this driver exists to prevent)
 * @mm: the domain to subscribe in; NULL: the process domain
 *	(mmn_process_insert), so real munmap/mmap/free invalidate the bindings
 */
struct mmn_vk_config {
	unsigned int nr_devices;
	bool single_pass;
	bool no_notifier;
	struct mmn_mm *mm;
};

/**
 * struct mmn_vk_stats - counters, summed over the bindings asked about
 * @invalidations: first passes (or single passes) that hit a binding
 * @stops: stop words raised with a job in flight
 * @deferred: first passes that returned a finish
 * @finishes: second passes run
 * @sync_fallbacks: first passes that did everything because the binding's
 *	finish was still owned by another invalidation
 * @drops: imports dropped
 * @imports: imports made (the first and every re-import)
 * @retries: re-imports thrown away because an invalidation collided
 * @jobs: jobs submitted
 * @wait_timeouts: fence waits in a callback that took longer than a second
 *	(the wait goes on: the memory must not change under a running job)
 */
struct mmn_vk_stats {
	uint64_t invalidations;
	uint64_t stops;
	uint64_t deferred;
	uint64_t finishes;
	uint64_t sync_fallbacks;
	uint64_t drops;
	uint64_t imports;
	uint64_t retries;
	uint64_t jobs;
	uint64_t wait_timeouts;
};

/**
 * struct mmn_vk_job_result - what a finished job reported
 * @tag: the tag it was given (0: it never began)
 * @iters: iterations invocation 0 did (256 words written each)
 * @stopped: an invocation saw the stop word (else it ended by itself: max_iters, or an
 *	implementation's cap on loop iterations, 65535 on llvmpipe)
 */
struct mmn_vk_job_result {
	uint32_t tag;
	uint32_t iters;
	bool stopped;
};

/**
 * mmn_vk_new() - create the instance and the logical devices
 * @cfg: configuration
 * @vkp: where to store the driver
 *
 * Context: process context; allocates; not from a notifier callback.
 * Return: 0; -EINVAL for a bad @cfg; -ENODEV when there is no Vulkan loader,
 * no device or none with VK_EXT_external_memory_host and a compute queue
 * (mmn_vk_why() says which); -ENOMEM; -EIO for other Vulkan failures.
 */
int mmn_vk_new(const struct mmn_vk_config *cfg, struct mmn_vk **vkp);

/**
 * mmn_vk_destroy() - unbind what is left and destroy the devices
 * @vk: the driver, or NULL
 *
 * Context: no job may be waited for on another thread.
 */
void mmn_vk_destroy(struct mmn_vk *vk);

/** mmn_vk_why() - why the last mmn_vk_new() on this thread failed (static) */
const char *mmn_vk_why(void);

/** mmn_vk_device_name() - name of logical device @i's physical device */
const char *mmn_vk_device_name(const struct mmn_vk *vk, unsigned int i);

/** mmn_vk_physical_count() - physical devices the logical ones are spread on */
unsigned int mmn_vk_physical_count(const struct mmn_vk *vk);

/** mmn_vk_alignment() - address and size alignment of imports, in bytes */
size_t mmn_vk_alignment(const struct mmn_vk *vk);

/**
 * mmn_vk_bind() - import user memory into one device, subscribed to it
 * @vk: the driver
 * @dev: logical device index
 * @addr: start, aligned to mmn_vk_alignment()
 * @len: bytes, a non-zero multiple of mmn_vk_alignment()
 * @bufp: where to store the binding
 *
 * The memory must stay mapped until the first job (the import is made then).
 * Context: process context; allocates.
 * Return: 0; -EINVAL for a bad index, alignment or length; -ENOMEM; -EIO;
 * errors of the notifier insert.
 */
int mmn_vk_bind(struct mmn_vk *vk, unsigned int dev, void *addr, size_t len,
		struct mmn_vk_buf **bufp);

/**
 * mmn_vk_unbind() - stop and wait for the binding's job, drop everything
 * @buf: the binding, or NULL
 *
 * Context: not from a callback; no other thread may use @buf.
 * Return: 0, or the notifier removal's error (then @buf is kept).
 */
int mmn_vk_unbind(struct mmn_vk_buf *buf);

/**
 * mmn_vk_job_submit() - run one job on the binding's memory
 * @buf: the binding
 * @tag: the non-zero word the job writes into every word of the memory
 * @max_iters: iterations at most (256 words written each) if nobody stops it
 *
 * Re-imports the memory first if an invalidation dropped the import (the
 * collision-retry protocol; no-notifier bindings are imported once).
 * Context: one thread per binding; not from a callback.
 * Return: 0; -EINVAL for tag 0 or max_iters 0; -EBUSY while the previous job
 * runs; -EFAULT if the memory is not mapped; -ENOMEM; -EIO.
 */
int mmn_vk_job_submit(struct mmn_vk_buf *buf, uint32_t tag, uint32_t max_iters);

/**
 * mmn_vk_job_wait_started() - wait until the current job has begun on the device
 * @buf: the binding
 * @timeout_ms: bound of the wait
 *
 * Return: 0; -EINVAL without a job; -ETIMEDOUT.
 */
int mmn_vk_job_wait_started(struct mmn_vk_buf *buf, unsigned int timeout_ms);

/**
 * mmn_vk_job_stop() - raise the current job's stop word (no wait)
 * @buf: the binding
 */
void mmn_vk_job_stop(struct mmn_vk_buf *buf);

/**
 * mmn_vk_job_wait() - wait for the current job to complete
 * @buf: the binding
 * @timeout_ms: bound of the wait
 * @res: what the job reported, or NULL
 *
 * Return: 0; -EINVAL without a job; -ETIMEDOUT; -EIO (device lost).
 */
int mmn_vk_job_wait(struct mmn_vk_buf *buf, unsigned int timeout_ms,
		    struct mmn_vk_job_result *res);

/** mmn_vk_buf_imported() - whether the binding holds an import now */
bool mmn_vk_buf_imported(struct mmn_vk_buf *buf);

/** mmn_vk_buf_stats() - the binding's counters */
void mmn_vk_buf_stats(struct mmn_vk_buf *buf, struct mmn_vk_stats *st);

/**
 * mmn_vk_test_collide_hook - test hook: called in the fault path between the
 * import and the read_retry check, outside every lock (NULL: none)
 */
extern void (*mmn_vk_test_collide_hook)(struct mmn_vk_buf *buf, void *arg);
extern void *mmn_vk_test_collide_arg;

#ifdef __cplusplus
}
#endif

#endif /* MMN_VK_H */
