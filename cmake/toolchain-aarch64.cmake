# Cross compiling for 64-bit Arm Linux (glibc) with Debian's cross toolchain:
#   apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
#   cmake --build build/aarch64 && (cd build/aarch64 && ctest)
# CTest runs every test program under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR);
# docs/TESTING.md lists what qemu-user cannot run and why those tests skip.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(MMN_CROSS_TRIPLE aarch64-linux-gnu CACHE STRING "GNU triple of the cross toolchain")
set(MMN_CROSS_SYSROOT /usr/${MMN_CROSS_TRIPLE} CACHE PATH
    "Target libraries (Debian's libc6-dev-arm64-cross installs them here)")

set(CMAKE_C_COMPILER ${MMN_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${MMN_CROSS_TRIPLE}-g++)

# Debian's cross compiler finds its own headers and libraries: no --sysroot.
# Search target paths for libraries and headers, host paths for programs.
set(CMAKE_FIND_ROOT_PATH ${MMN_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# -L: where qemu-user finds the target's ld.so and libc.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${MMN_CROSS_SYSROOT})

# pkg-config must describe target libraries, not the host's (liburing, libucs):
# Debian's multiarch directory for arm64 -dev packages, and arch-independent ones.
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/${MMN_CROSS_TRIPLE}/pkgconfig:${MMN_CROSS_SYSROOT}/lib/pkgconfig:/usr/share/pkgconfig")
