// SPDX-License-Identifier: MIT
/*
 * Allocation-free formatting for the preload's reports: decimal, hex and
 * strings into a fixed buffer, written with raw write(2). The report is written
 * from a destructor of a process that may have closed stdio already.
 */
#include "raw.h"
#include "preload.h"

void fmt_flush(struct fmt *f)
{
	unsigned int off = 0;

	while (f->fd >= 0 && off < f->len) {
		long n = raw_syscall(SYS_write, f->fd, f->buf + off, f->len - off, 0, 0, 0);

		if (n == -EINTR)
			continue;
		if (n <= 0)
			break;
		off += (unsigned int)n;
	}
	f->len = 0;
}

void fmt_strn(struct fmt *f, const char *s, unsigned int n)
{
	for (unsigned int i = 0; i < n && s[i]; i++) {
		if (f->len == sizeof(f->buf))
			fmt_flush(f);
		f->buf[f->len++] = s[i];
	}
}

void fmt_str(struct fmt *f, const char *s)
{
	fmt_strn(f, s, ~0u);
}

void fmt_dec(struct fmt *f, uint64_t v)
{
	char d[24];
	unsigned int n = sizeof(d);

	d[--n] = '\0';
	do {
		d[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fmt_str(f, d + n);
}

void fmt_hex(struct fmt *f, uint64_t v)
{
	char d[24];
	unsigned int n = sizeof(d);

	d[--n] = '\0';
	do {
		d[--n] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	d[--n] = 'x';
	d[--n] = '0';
	fmt_str(f, d + n);
}

/* " key=value" */
void fmt_kv(struct fmt *f, const char *key, uint64_t v)
{
	fmt_str(f, " ");
	fmt_str(f, key);
	fmt_str(f, "=");
	fmt_dec(f, v);
}
