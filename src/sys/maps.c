// SPDX-License-Identifier: MIT
/*
 * A reader of /proc/self/maps that allocates nothing and calls no hooked
 * function: raw open/read/close into a buffer on the stack. Used by the event
 * sources (the shmdt hook finds an attachment's size with it, the raw path
 * libc's text) and by the preload's self-check.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "raw.h"

static unsigned long parse_hex(const char **p)
{
	unsigned long v = 0;

	for (;; (*p)++) {
		char c = **p;

		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (unsigned long)(c - 'a' + 10);
		else
			return v;
	}
}

static unsigned long parse_dec(const char **p)
{
	unsigned long v = 0;

	while (**p >= '0' && **p <= '9')
		v = v * 10 + (unsigned long)(*(*p)++ - '0');
	return v;
}

static void skip_spaces(const char **p)
{
	while (**p == ' ')
		(*p)++;
}

/* "start-end perms offset dev inode   path" */
static bool parse_line(char *line, struct vm_map *m)
{
	const char *p = line;

	m->start = parse_hex(&p);
	if (*p++ != '-')
		return false;
	m->end = parse_hex(&p);
	skip_spaces(&p);
	for (int i = 0; i < 4; i++)
		m->perms[i] = *p ? *p++ : '-';
	m->perms[4] = '\0';
	skip_spaces(&p);
	m->offset = parse_hex(&p);
	skip_spaces(&p);
	while (*p && *p != ' ')	/* dev */
		p++;
	skip_spaces(&p);
	m->inode = parse_dec(&p);
	skip_spaces(&p);
	m->path = p;
	return true;
}

int vm_maps_foreach(int (*fn)(const struct vm_map *m, void *arg), void *arg)
{
	char buf[4096 + 1];
	bool skipping = false;	/* dropping the rest of an over-long line */
	size_t have = 0;
	long fd, n;
	int ret = 0;

	fd = raw_syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0, 0, 0);
	if (fd < 0)
		return (int)fd;
	for (;;) {
		char *line, *nl;

		n = raw_syscall(SYS_read, fd, buf + have, sizeof(buf) - 1 - have, 0, 0, 0);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			ret = (int)n;
			break;
		}
		have += (size_t)n;
		buf[have] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			struct vm_map m;

			*nl = '\0';
			if (skipping)
				skipping = false;
			else if (parse_line(line, &m) && (ret = fn(&m, arg)))
				goto out;
			line = nl + 1;
		}
		/* Keep the unfinished line for the next read. */
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
		if (n == 0)
			break;
		if (have == sizeof(buf) - 1) {
			/*
			 * A line longer than the buffer (a very long path): its
			 * numbers are at the start, so report it with the path
			 * cut short, then drop the rest of it.
			 */
			struct vm_map m;

			if (!skipping && parse_line(buf, &m) && (ret = fn(&m, arg)))
				goto out;
			skipping = true;
			have = 0;
		}
	}
out:
	raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
	return ret;
}
