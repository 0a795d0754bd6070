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

static int calls;
static bool inv(struct mmn_interval_notifier *sub, const struct mmn_range *r, unsigned long seq)
{
	(void)r;
	mmn_interval_set_seq(sub, seq);
	calls++;
	return true;
}
static const struct mmn_interval_notifier_ops ops = { .invalidate = inv };

int main(void)
{
	struct mmn_interval_notifier sub = { 0 };
	struct mmn_mm *mm;
	char name[201], *shm, *file;
	size_t len = 0;
	int id, fd;

	mmn_process_mm(&mm);
	id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
	shm = shmat(id, NULL, 0);
	shmctl(id, IPC_RMID, NULL);
	/* A file whose absolute name is longer than 4 KiB, mapped below the segment. */
	memset(name, 'd', 200);
	name[200] = 0;
	mkdir("/tmp/mmn-longpath", 0700);
	chdir("/tmp/mmn-longpath");
	for (; len < 4200; len += 201) {
		mkdir(name, 0700);
		chdir(name);
	}
	fd = open("f", O_RDWR | O_CREAT, 0600);
	ftruncate(fd, 4096);
	file = mmap(shm - (16 << 20), 4096, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	printf("file mapping %p (path > 4200 bytes), shm attachment %p\n", (void *)file, (void *)shm);

	mmn_process_insert(&sub, (unsigned long)shm, 65536, &ops);
	shmdt(shm);
	printf("invalidations of the attachment on shmdt: %d (expected 1)\n", calls);
	mmn_interval_notifier_remove(&sub);
	munmap(file, 4096);
	close(fd);
	unlink("f");
	for (; len; len -= 201) {
		if (chdir("..") || rmdir(name))
			break;
	}
	rmdir("/tmp/mmn-longpath");
	return calls == 1 ? 0 : 1;
}
