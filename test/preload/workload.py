#!/usr/bin/python3
# The python3 workload of test/preload/run.sh: builds and frees big lists,
# dicts and strings, so that both glibc malloc (big buffers: mmap, mremap,
# munmap from inside libc) and pymalloc (arenas: munmap through the PLT) give
# memory back. Only builtin modules are imported (no dlopen). Prints a checksum.
import sys
import zlib

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
crc = 0
for r in range(rounds):
    big = list(range(2_000_000 + r))            # 16 MB pointer array
    d = {i: str(i) for i in range(200_000)}     # many small objects
    s = "x" * (8_000_000 + r) + str(r)          # one big string
    crc = zlib.crc32((str(len(big)) + s[-12:] + d[r * 7]).encode(), crc)
    big.extend(range(500_000))                  # realloc: mremap
    crc = zlib.crc32(str(sum(big[-10:])).encode(), crc)
    del big, d, s
print("rounds", rounds, "crc", crc)
