#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages that building and testing need,
# and only those that are missing. Sourced by scripts/test.sh and scripts/demo.sh.
#   cmake, ninja-build   the build (CMake >= 3.25, as in bookworm)
#   gcc, g++, libc6-dev  C11 library and tests; g++ compiles mmn.h as C++ in a test
#   binutils             nm, for the test that checks the exported symbols
#   pkgconf              pkg-config, for the test that builds against the installed library
#   python3              the build generates the man pages with it (man/kdoc2man.py)
#   spin                 the model checker that verifies src/core/notifier.pml (test/spin)
#   python3 xz-utils perl mawk tar
#                        real programs run under libmmn-preload.so's self-check (test/preload)
#   liburing-dev         the registration cache's io_uring backend: real kernel pins (src/rcache)
#   libucx-dev           UCX 1.13, the registration cache's comparison (bench/rcache);
#                        also libmmn next to libucm in both hook modes and orders, and
#                        UCX fed by libmmn (test/coexist)
#   libfabric-dev        libfabric 1.17: libmmn as its imported memory monitor (test/coexist)
#                        and, from its libfabric.a, its own memhooks monitor next to libmmn
#   libopenmpi-dev openmpi-bin
#                        Open MPI 4.1: its memory patcher (singleton MPI_Init) next to
#                        libmmn, both orders (test/coexist/ompi_patcher.c)
#   libgoogle-perftools4 libjemalloc2 libmimalloc2.0
#                        other allocators preloaded under libmmn (test/coexist, test/preload);
#                        tcmalloc defines munmap/mremap/mmap itself
#   debhelper lintian devscripts fakeroot
#                        the Debian packages (debian/), built, checked and installed by
#                        test/deb/run.sh
#   mesa-vulkan-drivers  lavapipe, a conformant Vulkan driver on the CPU: the Vulkan userptr
#                        driver's tests (vulkan/) run on it
#   libvulkan-dev        the Vulkan loader and headers vulkan/ builds against
#   glslang-tools        glslangValidator, compiles vulkan/job.comp to SPIR-V at build time
#   gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#                        the aarch64 cross build and its CTest suite under qemu-user
#                        (cmake/toolchain-aarch64.cmake; scripts/test.sh installs them)
#   clang                libFuzzer, for the core's differential fuzzer (scripts/fuzz.sh
#                        installs it, and its compiler-rt, when it runs)
mmn_install_deps() {
	local want=(cmake ninja-build gcc g++ libc6-dev binutils pkgconf python3 "$@") missing=() p
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "deps: installing ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null
}
