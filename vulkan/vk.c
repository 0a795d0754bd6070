// SPDX-License-Identifier: MIT
/*
 * The Vulkan userptr driver (mmn_vk.h, docs/vulkan.md): the xe userptr
 * pattern on real Vulkan devices, user memory imported with
 * VK_EXT_external_memory_host.
 *
 * One binding = one user range imported into one logical device, with its
 * own control block (stop word and job report, host-visible coherent device
 * memory), descriptor set, command buffer and fence, and one interval
 * notifier. The device's mutex is the notifier lock: it orders the callbacks
 * against the submit at the end of the fault path, and serialises the queue.
 *
 * First pass (invalidate_start), under the lock:
 *   non-blockable range -> false, nothing done;
 *   set_seq (a fault in progress will retry);
 *   no import -> done;
 *   finish in use (another invalidation of this binding has its finish
 *   pending) -> raise the stop word, wait, drop, here (xe's sync fallback);
 *   no job running -> drop now, no finish;
 *   else raise the stop word, keep the job's fence, return the embedded finish.
 * Second pass (invalidate_finish), under the lock: wait for the fence, drop
 * the import, clear finish_inuse.
 *
 * "Drop" detaches the import from the binding so no job can use it again;
 * the Vulkan objects are destroyed by the next fault or by unbind, outside
 * the callbacks: vkFreeMemory may call free(), and process-domain callbacks
 * run inside free() and munmap.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <vulkan/vulkan.h>

#include <mmn/process.h>

#include "mmn_vk.h"
#include "job_spv.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* The job's control block; the layout of Ctl in job.comp. */
struct vk_ctl {
	uint32_t stop;
	uint32_t started;
	uint32_t iters;
	uint32_t stopped;
	uint32_t tag;
	uint32_t max_iters;
	uint32_t nwords;
	uint32_t pad;
};

struct vk_import {
	VkDeviceMemory mem;
	VkBuffer buf;
};

struct vk_phys {
	VkPhysicalDevice pd;
	char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
	uint32_t qfam;
	VkDeviceSize align;
	bool cpu;
};

struct vk_dev {
	struct mmn_vk *vk;
	const struct vk_phys *phys;
	VkDevice dev;
	VkQueue queue;
	VkDescriptorSetLayout dsl;
	VkPipelineLayout layout;
	VkPipeline pipe;
	PFN_vkGetMemoryHostPointerPropertiesEXT host_ptr_props;
	VkPhysicalDeviceMemoryProperties mem;
	pthread_mutex_t lock;		/* the notifier lock; serialises the queue */
};

struct mmn_vk {
	VkInstance inst;
	struct mmn_mm *mm;
	bool process;			/* mm is the process domain */
	bool single_pass;
	bool no_notifier;
	unsigned int nr_phys;
	struct vk_phys phys[MMN_VK_MAX_DEVICES];
	unsigned int nr_devices;
	struct vk_dev devs[MMN_VK_MAX_DEVICES];
	size_t align;
	pthread_mutex_t list_lock;
	struct mmn_vk_buf *bufs;	/* list of live bindings */
};

struct mmn_vk_buf {
	struct vk_dev *dev;
	unsigned long addr;
	unsigned long len;
	struct mmn_vk_buf *next;
	struct mmn_interval_notifier sub;
	bool subscribed;
	struct mmn_finish finish;
	/* Under dev->lock: */
	bool finish_inuse;
	bool imported;
	bool job;			/* submitted, not yet collected by job_wait */
	struct vk_import cur;
	struct vk_import stale;		/* dropped, destroyed by the next fault */
	struct mmn_vk_stats st;
	/* Vulkan objects of the binding. */
	VkFence fence;
	VkCommandPool cpool;
	VkCommandBuffer cmd;
	VkDescriptorPool dpool;
	VkDescriptorSet set;
	VkDeviceMemory ctl_mem;
	VkBuffer ctl_buf;
	struct vk_ctl *ctl;
	uint32_t max_iters;
};

void (*mmn_vk_test_collide_hook)(struct mmn_vk_buf *buf, void *arg);
void *mmn_vk_test_collide_arg;

static _Thread_local char why[256];

const char *mmn_vk_why(void)
{
	return why;
}

static int fail(int err, const char *fmt, const char *what, VkResult r)
{
	snprintf(why, sizeof(why), fmt, what, (int)r);
	return err;
}

/* ---- the callbacks ---- */

static void raise_stop(struct mmn_vk_buf *b)
{
	__atomic_store_n(&b->ctl->stop, 1, __ATOMIC_RELEASE);
}

/* A job is on the device: submitted and its fence not signalled. */
static bool job_running_locked(struct mmn_vk_buf *b)
{
	return b->job && vkGetFenceStatus(b->dev->dev, b->fence) == VK_NOT_READY;
}

/* Bounded waits, repeated: the memory must not change under a running job. */
static void wait_fence_locked(struct mmn_vk_buf *b)
{
	for (;;) {
		VkResult r = vkWaitForFences(b->dev->dev, 1, &b->fence, VK_TRUE, 1000000000ull);

		if (r != VK_TIMEOUT)
			return;	/* success, or device lost: it touches nothing more */
		b->st.wait_timeouts++;
	}
}

static void drop_locked(struct mmn_vk_buf *b)
{
	if (!b->imported)
		return;
	/* The fault path empties stale before it installs a new import. */
	b->stale = b->cur;
	memset(&b->cur, 0, sizeof(b->cur));
	b->imported = false;
	b->st.drops++;
}

/* Everything at once: the single pass and the two-pass fallback. */
static void inval_sync_locked(struct mmn_vk_buf *b)
{
	if (job_running_locked(b)) {
		raise_stop(b);
		b->st.stops++;
		wait_fence_locked(b);
	}
	drop_locked(b);
}

static bool vk_invalidate_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
				unsigned long cur_seq, struct mmn_finish **finish)
{
	struct mmn_vk_buf *b = container_of(sub, struct mmn_vk_buf, sub);

	if (!mmn_range_blockable(range))
		return false;
	pthread_mutex_lock(&b->dev->lock);
	mmn_interval_set_seq(sub, cur_seq);
	b->st.invalidations++;
	if (!b->imported) {
		pthread_mutex_unlock(&b->dev->lock);
		return true;
	}
	if (b->finish_inuse) {
		b->st.sync_fallbacks++;
		inval_sync_locked(b);
		pthread_mutex_unlock(&b->dev->lock);
		return true;
	}
	if (!job_running_locked(b)) {
		drop_locked(b);
		pthread_mutex_unlock(&b->dev->lock);
		return true;
	}
	raise_stop(b);		/* the job ends at its next poll */
	b->st.stops++;
	b->st.deferred++;
	b->finish_inuse = true;
	pthread_mutex_unlock(&b->dev->lock);
	*finish = &b->finish;
	return true;
}

static void vk_invalidate_finish(struct mmn_finish *finish)
{
	struct mmn_vk_buf *b = container_of(finish, struct mmn_vk_buf, finish);

	pthread_mutex_lock(&b->dev->lock);
	b->st.finishes++;
	wait_fence_locked(b);
	drop_locked(b);
	b->finish_inuse = false;
	pthread_mutex_unlock(&b->dev->lock);
}

static bool vk_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			  unsigned long cur_seq)
{
	struct mmn_vk_buf *b = container_of(sub, struct mmn_vk_buf, sub);

	if (!mmn_range_blockable(range))
		return false;
	pthread_mutex_lock(&b->dev->lock);
	mmn_interval_set_seq(sub, cur_seq);
	b->st.invalidations++;
	inval_sync_locked(b);
	pthread_mutex_unlock(&b->dev->lock);
	return true;
}

static const struct mmn_interval_notifier_ops vk_two_pass_ops = {
	.invalidate_start = vk_invalidate_start,
	.invalidate_finish = vk_invalidate_finish,
};

static const struct mmn_interval_notifier_ops vk_single_pass_ops = {
	.invalidate = vk_invalidate,
};

/* ---- instance and devices ---- */

static bool has_extension(VkPhysicalDevice pd, const char *name)
{
	VkExtensionProperties *ext;
	uint32_t n = 0;
	bool found = false;

	if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n)
		return false;
	ext = calloc(n, sizeof(*ext));
	if (!ext)
		return false;
	if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ext) == VK_SUCCESS)
		for (uint32_t i = 0; i < n && !found; i++)
			found = !strcmp(ext[i].extensionName, name);
	free(ext);
	return found;
}

/* Can @pd run the driver? Fills @p. */
static bool phys_usable(VkPhysicalDevice pd, struct vk_phys *p)
{
	VkPhysicalDeviceSubgroupProperties sub = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
	};
	VkPhysicalDeviceExternalMemoryHostPropertiesEXT host = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT,
		.pNext = &sub,
	};
	VkPhysicalDeviceProperties2 props = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
		.pNext = &host,
	};
	VkQueueFamilyProperties q[16];
	uint32_t nq = 16;

	vkGetPhysicalDeviceProperties(pd, &props.properties);
	if (props.properties.apiVersion < VK_API_VERSION_1_1 ||
	    !has_extension(pd, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME))
		return false;
	vkGetPhysicalDeviceProperties2(pd, &props);
	/* The job's stop check is a subgroupAny (job.comp). */
	if (!(sub.supportedOperations & VK_SUBGROUP_FEATURE_VOTE_BIT) ||
	    !(sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT))
		return false;
	vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q);
	p->qfam = UINT32_MAX;
	for (uint32_t i = 0; i < nq; i++)
		if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
			p->qfam = i;
			break;
		}
	if (p->qfam == UINT32_MAX)
		return false;
	p->pd = pd;
	snprintf(p->name, sizeof(p->name), "%s", props.properties.deviceName);
	p->align = host.minImportedHostPointerAlignment;
	p->cpu = props.properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
	return true;
}

static int pick_physical(struct mmn_vk *vk)
{
	VkPhysicalDevice pds[MMN_VK_MAX_DEVICES];
	uint32_t n = MMN_VK_MAX_DEVICES;
	bool gpu = false;
	VkResult r;

	r = vkEnumeratePhysicalDevices(vk->inst, &n, pds);
	if (r != VK_SUCCESS && r != VK_INCOMPLETE)
		return fail(-EIO, "%s failed: VkResult %d", "vkEnumeratePhysicalDevices", r);
	if (!n)
		return fail(-ENODEV, "%s (VkResult %d)", "no Vulkan physical device", r);
	for (uint32_t i = 0; i < n; i++)
		if (phys_usable(pds[i], &vk->phys[vk->nr_phys])) {
			gpu |= !vk->phys[vk->nr_phys].cpu;
			vk->nr_phys++;
		}
	if (!vk->nr_phys)
		return fail(-ENODEV, "%s (of %d)",
			    "no Vulkan 1.1 device with VK_EXT_external_memory_host, a compute queue and subgroup vote",
			    (VkResult)n);
	/* Real GPUs when there are any: a CPU implementation only alone. */
	if (gpu) {
		unsigned int k = 0;

		for (unsigned int i = 0; i < vk->nr_phys; i++)
			if (!vk->phys[i].cpu)
				vk->phys[k++] = vk->phys[i];
		vk->nr_phys = k;
	}
	vk->align = 1;
	for (unsigned int i = 0; i < vk->nr_phys; i++)
		if (vk->phys[i].align > vk->align)
			vk->align = vk->phys[i].align;
	if ((size_t)sysconf(_SC_PAGESIZE) > vk->align)
		vk->align = (size_t)sysconf(_SC_PAGESIZE);
	return 0;
}

static int dev_init(struct mmn_vk *vk, struct vk_dev *d, const struct vk_phys *p)
{
	static const float prio = 1.0f;
	const char *exts[] = {
		VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME,
	};
	VkDeviceQueueCreateInfo qci = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
		.queueFamilyIndex = p->qfam,
		.queueCount = 1,
		.pQueuePriorities = &prio,
	};
	VkDeviceCreateInfo dci = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
		.queueCreateInfoCount = 1,
		.pQueueCreateInfos = &qci,
		.enabledExtensionCount = 1,
		.ppEnabledExtensionNames = exts,
	};
	VkDescriptorSetLayoutBinding bindings[2] = {
		{ .binding = 0, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
		  .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT },
		{ .binding = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
		  .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT },
	};
	VkDescriptorSetLayoutCreateInfo dslci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
		.bindingCount = 2,
		.pBindings = bindings,
	};
	VkShaderModuleCreateInfo smci = {
		.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
		.codeSize = sizeof(mmn_vk_job_spv),
		.pCode = mmn_vk_job_spv,
	};
	VkShaderModule sm;
	VkResult r;

	d->vk = vk;
	d->phys = p;
	pthread_mutex_init(&d->lock, NULL);
	r = vkCreateDevice(p->pd, &dci, NULL, &d->dev);
	if (r != VK_SUCCESS) {
		d->dev = VK_NULL_HANDLE;
		return fail(-EIO, "%s failed: VkResult %d", "vkCreateDevice", r);
	}
	vkGetDeviceQueue(d->dev, p->qfam, 0, &d->queue);
	vkGetPhysicalDeviceMemoryProperties(p->pd, &d->mem);
	d->host_ptr_props = (PFN_vkGetMemoryHostPointerPropertiesEXT)
		vkGetDeviceProcAddr(d->dev, "vkGetMemoryHostPointerPropertiesEXT");
	if (!d->host_ptr_props)
		return fail(-ENODEV, "%s (VkResult %d)", "no vkGetMemoryHostPointerPropertiesEXT", 0);
	r = vkCreateDescriptorSetLayout(d->dev, &dslci, NULL, &d->dsl);
	if (r != VK_SUCCESS)
		return fail(-EIO, "%s failed: VkResult %d", "vkCreateDescriptorSetLayout", r);
	VkPipelineLayoutCreateInfo plci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
		.setLayoutCount = 1,
		.pSetLayouts = &d->dsl,
	};
	r = vkCreatePipelineLayout(d->dev, &plci, NULL, &d->layout);
	if (r != VK_SUCCESS)
		return fail(-EIO, "%s failed: VkResult %d", "vkCreatePipelineLayout", r);
	r = vkCreateShaderModule(d->dev, &smci, NULL, &sm);
	if (r != VK_SUCCESS)
		return fail(-EIO, "%s failed: VkResult %d", "vkCreateShaderModule", r);
	VkComputePipelineCreateInfo cpci = {
		.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
		.stage = {
			.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
			.stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = sm,
			.pName = "main",
		},
		.layout = d->layout,
	};
	r = vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &cpci, NULL, &d->pipe);
	vkDestroyShaderModule(d->dev, sm, NULL);
	if (r != VK_SUCCESS)
		return fail(-EIO, "%s failed: VkResult %d", "vkCreateComputePipelines", r);
	return 0;
}

static void dev_fini(struct vk_dev *d)
{
	if (d->dev) {
		vkDestroyPipeline(d->dev, d->pipe, NULL);
		vkDestroyPipelineLayout(d->dev, d->layout, NULL);
		vkDestroyDescriptorSetLayout(d->dev, d->dsl, NULL);
		vkDestroyDevice(d->dev, NULL);
		pthread_mutex_destroy(&d->lock);
	}
}

int mmn_vk_new(const struct mmn_vk_config *cfg, struct mmn_vk **vkp)
{
	VkApplicationInfo app = {
		.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.pApplicationName = "libmmn-vulkan",
		.apiVersion = VK_API_VERSION_1_1,
	};
	VkInstanceCreateInfo ici = {
		.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
		.pApplicationInfo = &app,
	};
	struct mmn_vk *vk;
	VkResult r;
	int ret;

	why[0] = 0;
	if (!cfg || !vkp || !cfg->nr_devices || cfg->nr_devices > MMN_VK_MAX_DEVICES) {
		snprintf(why, sizeof(why), "bad configuration (nr_devices 1..%d)", MMN_VK_MAX_DEVICES);
		return -EINVAL;
	}
	vk = calloc(1, sizeof(*vk));
	if (!vk)
		return -ENOMEM;
	vk->single_pass = cfg->single_pass;
	vk->no_notifier = cfg->no_notifier;
	vk->mm = cfg->mm;
	pthread_mutex_init(&vk->list_lock, NULL);
	/* Hook libc before the driver starts its threads. */
	if (!vk->mm && !vk->no_notifier) {
		ret = mmn_process_mm(&vk->mm);
		if (ret) {
			snprintf(why, sizeof(why), "mmn_process_mm: %s", strerror(-ret));
			goto err;
		}
		vk->process = true;
	}
	r = vkCreateInstance(&ici, NULL, &vk->inst);
	if (r != VK_SUCCESS) {
		vk->inst = VK_NULL_HANDLE;
		ret = fail(r == VK_ERROR_INCOMPATIBLE_DRIVER ? -ENODEV : -EIO,
			   "%s failed: VkResult %d (no Vulkan driver installed?)", "vkCreateInstance", r);
		goto err;
	}
	ret = pick_physical(vk);
	if (ret)
		goto err;
	for (unsigned int i = 0; i < cfg->nr_devices; i++) {
		ret = dev_init(vk, &vk->devs[i], &vk->phys[i % vk->nr_phys]);
		vk->nr_devices = i + 1;
		if (ret)
			goto err;
	}
	*vkp = vk;
	return 0;
err:
	mmn_vk_destroy(vk);
	return ret;
}

void mmn_vk_destroy(struct mmn_vk *vk)
{
	if (!vk)
		return;
	while (vk->bufs)
		if (mmn_vk_unbind(vk->bufs))
			break;
	for (unsigned int i = 0; i < vk->nr_devices; i++)
		dev_fini(&vk->devs[i]);
	if (vk->inst)
		vkDestroyInstance(vk->inst, NULL);
	pthread_mutex_destroy(&vk->list_lock);
	free(vk);
}

const char *mmn_vk_device_name(const struct mmn_vk *vk, unsigned int i)
{
	return vk && i < vk->nr_devices ? vk->devs[i].phys->name : NULL;
}

unsigned int mmn_vk_physical_count(const struct mmn_vk *vk)
{
	return vk ? vk->nr_phys : 0;
}

size_t mmn_vk_alignment(const struct mmn_vk *vk)
{
	return vk ? vk->align : 0;
}

/* ---- bindings ---- */

static int find_type(const struct vk_dev *d, uint32_t bits, VkMemoryPropertyFlags want)
{
	for (uint32_t i = 0; i < d->mem.memoryTypeCount; i++)
		if ((bits & (1u << i)) && (d->mem.memoryTypes[i].propertyFlags & want) == want)
			return (int)i;
	return -1;
}

static int make_buffer(struct vk_dev *d, VkDeviceSize size, const void *pnext, VkBuffer *out)
{
	VkBufferCreateInfo bci = {
		.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
		.pNext = pnext,
		.size = size,
		.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
		.sharingMode = VK_SHARING_MODE_EXCLUSIVE,
	};
	VkResult r = vkCreateBuffer(d->dev, &bci, NULL, out);

	if (r != VK_SUCCESS) {
		*out = VK_NULL_HANDLE;
		return r == VK_ERROR_OUT_OF_HOST_MEMORY ? -ENOMEM : -EIO;
	}
	return 0;
}

static void import_destroy(struct vk_dev *d, struct vk_import *im)
{
	if (im->buf)
		vkDestroyBuffer(d->dev, im->buf, NULL);
	if (im->mem)
		vkFreeMemory(d->dev, im->mem, NULL);
	memset(im, 0, sizeof(*im));
}

/* The import itself (xe: pin the user pages), outside every lock. */
static int import_make(struct mmn_vk_buf *b, struct vk_import *im)
{
	struct vk_dev *d = b->dev;
	VkExternalMemoryBufferCreateInfo ext = {
		.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
		.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
	};
	VkMemoryHostPointerPropertiesEXT hp = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT,
	};
	VkImportMemoryHostPointerInfoEXT imp = {
		.sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
		.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
		.pHostPointer = (void *)b->addr,
	};
	VkMemoryAllocateInfo mai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
		.pNext = &imp,
		.allocationSize = b->len,
	};
	VkMemoryRequirements req;
	VkResult r;
	int type, ret;

	memset(im, 0, sizeof(*im));
	/* Like hmm_range_fault: unmapped memory is -EFAULT, not an import. */
	if (msync((void *)b->addr, b->len, MS_ASYNC))
		return errno == ENOMEM ? -EFAULT : -errno;
	r = d->host_ptr_props(d->dev, VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
			      (void *)b->addr, &hp);
	if (r != VK_SUCCESS)
		return -EFAULT;
	ret = make_buffer(d, b->len, &ext, &im->buf);
	if (ret)
		return ret;
	vkGetBufferMemoryRequirements(d->dev, im->buf, &req);
	type = find_type(d, hp.memoryTypeBits & req.memoryTypeBits, 0);
	if (type < 0) {
		import_destroy(d, im);
		return -EIO;
	}
	mai.memoryTypeIndex = (uint32_t)type;
	r = vkAllocateMemory(d->dev, &mai, NULL, &im->mem);
	if (r != VK_SUCCESS) {
		im->mem = VK_NULL_HANDLE;
		import_destroy(d, im);
		return r == VK_ERROR_INVALID_EXTERNAL_HANDLE ? -EFAULT :
		       r == VK_ERROR_OUT_OF_HOST_MEMORY ? -ENOMEM : -EIO;
	}
	r = vkBindBufferMemory(d->dev, im->buf, im->mem, 0);
	if (r != VK_SUCCESS) {
		import_destroy(d, im);
		return -EIO;
	}
	return 0;
}

/* Point the descriptor set at @im and record the job; the set is idle. */
static int record(struct mmn_vk_buf *b, const struct vk_import *im)
{
	struct vk_dev *d = b->dev;
	VkDescriptorBufferInfo infos[2] = {
		{ .buffer = b->ctl_buf, .offset = 0, .range = sizeof(struct vk_ctl) },
		{ .buffer = im->buf, .offset = 0, .range = b->len },
	};
	VkWriteDescriptorSet w[2];
	VkCommandBufferBeginInfo cbi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
	};

	for (int i = 0; i < 2; i++)
		w[i] = (VkWriteDescriptorSet){
			.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
			.dstSet = b->set,
			.dstBinding = (uint32_t)i,
			.descriptorCount = 1,
			.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
			.pBufferInfo = &infos[i],
		};
	vkUpdateDescriptorSets(d->dev, 2, w, 0, NULL);
	if (vkResetCommandPool(d->dev, b->cpool, 0) != VK_SUCCESS ||
	    vkBeginCommandBuffer(b->cmd, &cbi) != VK_SUCCESS)
		return -EIO;
	vkCmdBindPipeline(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipe);
	vkCmdBindDescriptorSets(b->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->layout, 0, 1, &b->set,
				0, NULL);
	vkCmdDispatch(b->cmd, 1, 1, 1);
	return vkEndCommandBuffer(b->cmd) == VK_SUCCESS ? 0 : -EIO;
}

static void buf_free(struct mmn_vk_buf *b)
{
	VkDevice dev = b->dev->dev;

	import_destroy(b->dev, &b->cur);
	import_destroy(b->dev, &b->stale);
	if (b->ctl)
		vkUnmapMemory(dev, b->ctl_mem);
	if (b->ctl_buf)
		vkDestroyBuffer(dev, b->ctl_buf, NULL);
	if (b->ctl_mem)
		vkFreeMemory(dev, b->ctl_mem, NULL);
	if (b->dpool)
		vkDestroyDescriptorPool(dev, b->dpool, NULL);
	if (b->cpool)
		vkDestroyCommandPool(dev, b->cpool, NULL);
	if (b->fence)
		vkDestroyFence(dev, b->fence, NULL);
	free(b);
}

static int buf_objects(struct mmn_vk_buf *b)
{
	struct vk_dev *d = b->dev;
	VkFenceCreateInfo fci = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
	VkCommandPoolCreateInfo cpci = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
		.queueFamilyIndex = d->phys->qfam,
	};
	VkDescriptorPoolSize ps = {
		.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
		.descriptorCount = 2,
	};
	VkDescriptorPoolCreateInfo dpci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
		.maxSets = 1,
		.poolSizeCount = 1,
		.pPoolSizes = &ps,
	};
	VkMemoryRequirements req;
	void *map;
	int type, ret;

	if (vkCreateFence(d->dev, &fci, NULL, &b->fence) != VK_SUCCESS)
		return -EIO;
	if (vkCreateCommandPool(d->dev, &cpci, NULL, &b->cpool) != VK_SUCCESS)
		return -EIO;
	VkCommandBufferAllocateInfo cbai = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
		.commandPool = b->cpool,
		.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
		.commandBufferCount = 1,
	};
	if (vkAllocateCommandBuffers(d->dev, &cbai, &b->cmd) != VK_SUCCESS)
		return -EIO;
	if (vkCreateDescriptorPool(d->dev, &dpci, NULL, &b->dpool) != VK_SUCCESS)
		return -EIO;
	VkDescriptorSetAllocateInfo dsai = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
		.descriptorPool = b->dpool,
		.descriptorSetCount = 1,
		.pSetLayouts = &d->dsl,
	};
	if (vkAllocateDescriptorSets(d->dev, &dsai, &b->set) != VK_SUCCESS)
		return -EIO;
	ret = make_buffer(d, sizeof(struct vk_ctl), NULL, &b->ctl_buf);
	if (ret)
		return ret;
	vkGetBufferMemoryRequirements(d->dev, b->ctl_buf, &req);
	type = find_type(d, req.memoryTypeBits,
			 VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
	if (type < 0)
		return -EIO;
	VkMemoryAllocateInfo mai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
		.allocationSize = req.size,
		.memoryTypeIndex = (uint32_t)type,
	};
	if (vkAllocateMemory(d->dev, &mai, NULL, &b->ctl_mem) != VK_SUCCESS)
		return -ENOMEM;
	if (vkBindBufferMemory(d->dev, b->ctl_buf, b->ctl_mem, 0) != VK_SUCCESS ||
	    vkMapMemory(d->dev, b->ctl_mem, 0, VK_WHOLE_SIZE, 0, &map) != VK_SUCCESS)
		return -EIO;
	b->ctl = map;
	memset(b->ctl, 0, sizeof(*b->ctl));
	return 0;
}

int mmn_vk_bind(struct mmn_vk *vk, unsigned int dev, void *addr, size_t len,
		struct mmn_vk_buf **bufp)
{
	unsigned long a = (unsigned long)addr;
	struct mmn_vk_buf *b;
	int ret;

	if (!vk || !bufp || dev >= vk->nr_devices || !len || a % vk->align || len % vk->align ||
	    a + len < a || len / 4 > UINT32_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->dev = &vk->devs[dev];
	b->addr = a;
	b->len = len;
	ret = buf_objects(b);
	if (ret) {
		buf_free(b);
		return ret;
	}
	if (!vk->no_notifier) {
		const struct mmn_interval_notifier_ops *ops =
			vk->single_pass ? &vk_single_pass_ops : &vk_two_pass_ops;

		ret = vk->process ? mmn_process_insert(&b->sub, a, len, ops) :
				    mmn_interval_notifier_insert(&b->sub, vk->mm, a, len, ops);
		if (ret) {
			buf_free(b);
			return ret;
		}
		b->subscribed = true;
	}
	pthread_mutex_lock(&vk->list_lock);
	b->next = vk->bufs;
	vk->bufs = b;
	pthread_mutex_unlock(&vk->list_lock);
	*bufp = b;
	return 0;
}

int mmn_vk_unbind(struct mmn_vk_buf *b)
{
	struct mmn_vk *vk;
	int ret;

	if (!b)
		return 0;
	vk = b->dev->vk;
	if (b->subscribed) {
		ret = mmn_interval_notifier_remove(&b->sub);
		if (ret)
			return ret;
		b->subscribed = false;
	}
	/* No callback can run now: stop and wait for the job unlocked. */
	if (b->job) {
		raise_stop(b);
		wait_fence_locked(b);
		b->job = false;
	}
	pthread_mutex_lock(&vk->list_lock);
	for (struct mmn_vk_buf **p = &vk->bufs; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			break;
		}
	pthread_mutex_unlock(&vk->list_lock);
	buf_free(b);
	return 0;
}

/* ---- jobs ---- */

static int submit_locked(struct mmn_vk_buf *b, uint32_t tag, uint32_t max_iters)
{
	struct vk_dev *d = b->dev;
	VkSubmitInfo si = {
		.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
		.commandBufferCount = 1,
		.pCommandBuffers = &b->cmd,
	};
	struct vk_ctl *c = b->ctl;

	__atomic_store_n(&c->started, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->stopped, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->iters, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->tag, tag, __ATOMIC_RELAXED);
	__atomic_store_n(&c->max_iters, max_iters, __ATOMIC_RELAXED);
	__atomic_store_n(&c->nwords, (uint32_t)(b->len / 4), __ATOMIC_RELAXED);
	__atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
	if (vkResetFences(d->dev, 1, &b->fence) != VK_SUCCESS ||
	    vkQueueSubmit(d->queue, 1, &si, b->fence) != VK_SUCCESS)
		return -EIO;
	b->job = true;
	b->max_iters = max_iters;
	b->st.jobs++;
	return 0;
}

int mmn_vk_job_submit(struct mmn_vk_buf *b, uint32_t tag, uint32_t max_iters)
{
	struct vk_dev *d;
	int ret;

	if (!b || !tag || !max_iters)
		return -EINVAL;
	d = b->dev;
	pthread_mutex_lock(&d->lock);
	if (b->job && vkGetFenceStatus(d->dev, b->fence) == VK_NOT_READY) {
		pthread_mutex_unlock(&d->lock);
		return -EBUSY;
	}
	b->job = false;
	if (!b->subscribed) {
		/* The test switch: imported once, never dropped. */
		if (!b->imported) {
			ret = import_make(b, &b->cur);
			if (!ret)
				ret = record(b, &b->cur);
			if (ret) {
				import_destroy(d, &b->cur);
				pthread_mutex_unlock(&d->lock);
				return ret;
			}
			b->imported = true;
			b->st.imports++;
		}
		ret = submit_locked(b, tag, max_iters);
		pthread_mutex_unlock(&d->lock);
		return ret;
	}
	pthread_mutex_unlock(&d->lock);

	/* The device fault: the collision-retry protocol. */
	for (;;) {
		unsigned long seq = mmn_interval_read_begin(&b->sub);
		struct vk_import fresh = { 0 }, old;
		bool need;

		pthread_mutex_lock(&d->lock);
		need = !b->imported;
		old = b->stale;
		memset(&b->stale, 0, sizeof(b->stale));
		pthread_mutex_unlock(&d->lock);
		import_destroy(d, &old);	/* its job is over: dropped after the wait */
		if (need) {
			ret = import_make(b, &fresh);
			if (!ret)
				ret = record(b, &fresh);
			if (ret) {
				import_destroy(d, &fresh);
				return ret;
			}
		}
		if (mmn_vk_test_collide_hook)
			mmn_vk_test_collide_hook(b, mmn_vk_test_collide_arg);
		pthread_mutex_lock(&d->lock);
		if (mmn_interval_read_retry(&b->sub, seq)) {
			b->st.retries++;
			pthread_mutex_unlock(&d->lock);
			import_destroy(d, &fresh);
			continue;
		}
		if (need) {
			b->cur = fresh;
			b->imported = true;
			b->st.imports++;
		}
		ret = submit_locked(b, tag, max_iters);
		pthread_mutex_unlock(&d->lock);
		return ret;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int mmn_vk_job_wait_started(struct mmn_vk_buf *b, unsigned int timeout_ms)
{
	uint64_t deadline;
	uint32_t tag;

	if (!b || !b->job)
		return -EINVAL;
	tag = __atomic_load_n(&b->ctl->tag, __ATOMIC_RELAXED);
	deadline = now_ms() + timeout_ms;
	while (__atomic_load_n(&b->ctl->started, __ATOMIC_ACQUIRE) != tag) {
		if (vkGetFenceStatus(b->dev->dev, b->fence) != VK_NOT_READY)
			return 0;	/* already over (stopped before it began) */
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		/* Poll gently: the job may need this CPU to begin. */
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	return 0;
}

void mmn_vk_job_stop(struct mmn_vk_buf *b)
{
	if (b)
		raise_stop(b);
}

int mmn_vk_job_wait(struct mmn_vk_buf *b, unsigned int timeout_ms, struct mmn_vk_job_result *res)
{
	VkResult r;

	if (!b || !b->job)
		return -EINVAL;
	r = vkWaitForFences(b->dev->dev, 1, &b->fence, VK_TRUE, (uint64_t)timeout_ms * 1000000u);
	if (r == VK_TIMEOUT)
		return -ETIMEDOUT;
	pthread_mutex_lock(&b->dev->lock);
	if (res) {
		res->tag = __atomic_load_n(&b->ctl->started, __ATOMIC_ACQUIRE);
		res->iters = __atomic_load_n(&b->ctl->iters, __ATOMIC_RELAXED);
		res->stopped = __atomic_load_n(&b->ctl->stopped, __ATOMIC_RELAXED) != 0;
	}
	b->job = false;
	pthread_mutex_unlock(&b->dev->lock);
	return r == VK_SUCCESS ? 0 : -EIO;
}

bool mmn_vk_buf_imported(struct mmn_vk_buf *b)
{
	bool v;

	pthread_mutex_lock(&b->dev->lock);
	v = b->imported;
	pthread_mutex_unlock(&b->dev->lock);
	return v;
}

void mmn_vk_buf_stats(struct mmn_vk_buf *b, struct mmn_vk_stats *st)
{
	pthread_mutex_lock(&b->dev->lock);
	*st = b->st;
	pthread_mutex_unlock(&b->dev->lock);
}
