// SPDX-License-Identifier: MIT
//
// The userptr job of vulkan/: one workgroup that writes the imported user
// memory until the driver raises the stop word (the analog of xe's preempt
// fence) or each invocation has done max_iters iterations. Compiled to SPIR-V at build
// time by glslangValidator; no binary is kept in the repository.
#version 450
#extension GL_KHR_shader_subgroup_vote : require

// 64 invocations, all polling: llvmpipe runs them as vectors of 8 lanes,
// one vector after the other, so a job lasts 8 times its loop cap there.
layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

// The driver's control block, in host-visible coherent device memory. The
// host writes stop/tag/max_iters/nwords; the job reports started, iters and
// stopped (it saw the stop word).
layout(std430, set = 0, binding = 0) volatile coherent buffer Ctl {
	uint stop;
	uint started;
	uint iters;
	uint stopped;
	uint tag;
	uint max_iters;
	uint nwords;
	uint pad;
} ctl;

// The user's memory, imported with VK_EXT_external_memory_host.
layout(std430, set = 0, binding = 1) coherent buffer Data {
	uint words[];
} data;

// One iteration writes a block of 256 words (nwords is a multiple of 1024),
// unrolled: llvmpipe ends any invocation after 65535 loop iterations in all,
// so each iteration must do enough work for a job to last long enough
// (about 0.4 s per vector there); GPUs have no such cap and run to max_iters.
#define W1(k) data.words[b + k] = tag;
#define W4(k) W1(k) W1(k + 1u) W1(k + 2u) W1(k + 3u)
#define W16(k) W4(k) W4(k + 4u) W4(k + 8u) W4(k + 12u)
#define W64(k) W16(k) W16(k + 16u) W16(k + 32u) W16(k + 48u)
#define W256(k) W64(k) W64(k + 64u) W64(k + 128u) W64(k + 192u)

void main()
{
	uint tag = ctl.tag;
	uint n = ctl.nwords;
	uint max_iters = ctl.max_iters;
	uint i = 0u;
	uint saw_stop = 0u;

	ctl.started = tag;
	memoryBarrierBuffer();
	for (; i < max_iters; i++) {
		// A volatile load every iteration: the host may raise it any time.
		// subgroupAny makes the exit uniform: llvmpipe runs this one
		// invocation in a vector whose idle lanes would otherwise keep
		// the loop going.
		if (subgroupAny(ctl.stop != 0u)) {
			saw_stop = 1u;
			break;
		}
		uint b = (i * 256u) % n;
		W256(0u)
	}
	memoryBarrierBuffer();
	if (gl_LocalInvocationIndex == 0u)
		ctl.iters = i;
	if (saw_stop != 0u)
		ctl.stopped = 1u;
}
