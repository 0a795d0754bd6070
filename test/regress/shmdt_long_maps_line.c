// SPDX-License-Identifier: MIT
/*
 * Regression test of a gap the preload's self-check found (docs/preload.md).
 * The gap, since closed: shmdt() of a subscribed SysV attachment delivers no invalidation
 * when /proc/self/maps has a line longer than 4 KiB before the attachment:
 * vm_maps_foreach() (src/sys/maps.c) stops at that line and returns 0.
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
	char top[] = "/tmp/mmn-longpath-XXXXXX", name[201], *res, *shm, *file;
	size_t len = 0;
	int id, fd;

	regress_start();
	/* A file whose absolute name is longer than 4 KiB ... */
	memset(name, 'd', 200);
	name[200] = 0;
	regress_must(mkdtemp(top) && chdir(top) == 0);
	for (; len < 4200; len += 201)
		regress_must(mkdir(name, 0700) == 0 && chdir(name) == 0);
	fd = open("f", O_RDWR | O_CREAT, 0600);
	regress_must(fd >= 0 && ftruncate(fd, 4096) == 0);
	/* ... mapped below the attachment, both inside one reservation. */
	res = mmap(NULL, 2 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	regress_must(res != MAP_FAILED);
	file = mmap(res, 4096, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	regress_must(file == res);
	id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
	regress_must(id >= 0);
	shm = shmat(id, res + (1 << 20), SHM_REMAP);
	regress_must(shm == res + (1 << 20));
	regress_must(shmctl(id, IPC_RMID, NULL) == 0);
	printf("file mapping %p (path > 4200 bytes), shm attachment %p\n", (void *)file, (void *)shm);

	regress_must(mmn_process_insert(&sub, (unsigned long)shm, 65536, &regress_ops) == 0);
	regress_must(shmdt(shm) == 0);
	printf("invalidations of the attachment on shmdt: %lu (expected 1)\n", regress_count());
	regress_must(mmn_interval_notifier_remove(&sub) == 0);
	munmap(res, 2 << 20);
	close(fd);
	unlink("f");
	for (; len; len -= 201) {
		if (chdir("..") || rmdir(name))
			break;
	}
	rmdir(top);
	return regress_count() == 1 ? 0 : 1;
}
