// SPDX-License-Identifier: MIT
/*
 * Regression test of a gap the preload's self-check found (docs/preload.md).
 * The gap, since closed: shmdt() of a subscribed SysV attachment delivers no invalidation
 * when /proc/self/maps has a line longer than 4 KiB before the attachment:
 * vm_maps_foreach() (src/vm/maps.c) stops at that line and returns 0.
 *
 * Exits 0 while the gap stays closed, 1 if it is back, 77 where it cannot run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mmn/process.h>

#include "regress.h"

int main(void)
{
	struct mmn_interval_notifier sub = { 0 };
	char top[] = "/tmp/mmn-longpath-XXXXXX", name[201], *shm, *file;
	size_t len = 0;
	int id, fd;

	regress_start();
	id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
	regress_must(id >= 0);
	shm = shmat(id, NULL, 0);
	regress_must(shm != (void *)-1);
	regress_must(shmctl(id, IPC_RMID, NULL) == 0);
	/* A file whose absolute name is longer than 4 KiB, mapped below the segment. */
	memset(name, 'd', 200);
	name[200] = 0;
	regress_must(mkdtemp(top) && chdir(top) == 0);
	for (; len < 4200; len += 201)
		regress_must(mkdir(name, 0700) == 0 && chdir(name) == 0);
	fd = open("f", O_RDWR | O_CREAT, 0600);
	regress_must(fd >= 0 && ftruncate(fd, 4096) == 0);
	file = mmap(shm - (16 << 20), 4096, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	regress_must(file != MAP_FAILED);
	printf("file mapping %p (path > 4200 bytes), shm attachment %p\n", (void *)file, (void *)shm);

	regress_must(mmn_process_insert(&sub, (unsigned long)shm, 65536, &regress_ops) == 0);
	regress_must(shmdt(shm) == 0);
	printf("invalidations of the attachment on shmdt: %lu (expected 1)\n", regress_count());
	regress_must(mmn_interval_notifier_remove(&sub) == 0);
	munmap(file, 4096);
	close(fd);
	unlink("f");
	for (; len; len -= 201) {
		if (chdir("..") || rmdir(name))
			break;
	}
	rmdir(top);
	return regress_count() == 1 ? 0 : 1;
}
