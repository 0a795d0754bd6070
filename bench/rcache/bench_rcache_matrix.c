// SPDX-License-Identifier: MIT
/*
 * bench_rcache_matrix: the correctness matrix. The rows are the ways a mapping
 * changes under a registration cache that the study of UCX, libfabric and MPI
 * behind this project listed (numbered 1-12), a raw-syscall munmap and an mmap(MAP_FIXED) over the range; each row
 * registers a buffer, changes its memory, maps new memory at the same address
 * and gets again: a registration that still shows the old content is a stale
 * hit. One column per system (table `columns`), each in its own child:
 * libmmn's cache, UCX's with its own hooks, and UCX's fed by libmmn
 * (mmn_feed_ucx: UCX hooks nothing, libmmn's event sources drive it).
 *
 * Options: --smoke (accepted for CTest; the matrix is already small).
 */
#include "rcache_common.h"

enum row_id {
	ROW_MUNMAP = 0, ROW_MUNMAP_HELD, ROW_MUNMAP_MIDDLE, ROW_FREE_BIG, ROW_FREE_SMALL,
	ROW_DONTNEED, ROW_FREE_ADVICE, ROW_MREMAP, ROW_SHMDT, ROW_SBRK, ROW_RAW, ROW_IN_REG,
	ROW_HEAP_TRIM, ROW_MAP_FIXED, NROWS
};

static const char *const row_name[NROWS] = {
	"munmap 1 MiB",
	"munmap while held (refcount 2)",
	"munmap 1 page in the middle",
	"free() of a 64 MiB malloc (mmap chunk)",
	"free() of a 4 KiB heap chunk",
	"madvise(MADV_DONTNEED)",
	"madvise(MADV_FREE)",
	"mremap(MREMAP_MAYMOVE) 1 -> 4 MiB",
	"shmdt of a SysV segment",
	"sbrk(-64 KiB)",
	"raw syscall(SYS_munmap)",
	"munmap from inside the device's reg",
	"free() of 64 x 100 KiB: glibc heap trim",
	"mmap(MAP_FIXED) over the range",
};
/* the study's row numbers, 0 for the rows added here */
static const int row_ref[NROWS] = { 1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11, 12, 0 };

/*
 * The columns: one child each, running every row against one system.
 * Adding a column is a line here (and, for a new system, a SYS_ kind in
 * rcache_common.h).
 */
static const struct column {
	const char *label;
	int kind;		/* SYS_* */
} columns[] = {
	{ "mmn", SYS_MMN },
	{ "ucx", SYS_UCX },
	{ "ucx fed by libmmn", SYS_UCX_FED },
};
#define NCOLS ((int)(sizeof(columns) / sizeof(columns[0])))

enum dereg_when { DW_NONE = 0, DW_IN_CALL, DW_LATER, DW_AT_PUT, DW_NEVER, DW_KEPT, DW_BACKSTOP };
static const char *const dereg_text[] = {
	"-", "in call", "at next get", "at put", "never", "kept", "after, uffd",
};

struct row_result {
	bool ran;
	bool stale;
	enum dereg_when when;
	char note[48];
};

struct matrix_result {
	struct child_head head;
	struct row_result rows[NROWS];
};

static unsigned char *in_reg_victim;
static atomic_int in_reg_armed;

static void stamp(void *p, unsigned long len, uint64_t gen)
{
	for (unsigned long off = 0; off < len; off += page)
		*(volatile uint64_t *)((char *)p + off) = gen;
}

static void *map_at(void *want, unsigned long len)
{
	void *p = mmap(want, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (want ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Row 11: the device's registration unmaps another cached buffer. */
static void in_reg_hook(void *arg, unsigned long start, unsigned long length)
{
	(void)arg;
	(void)start;
	(void)length;
	if (atomic_exchange(&in_reg_armed, 0))
		munmap(in_reg_victim, MB);
}

struct row_ctx {
	struct sys *s;
	struct row_result *out;
	uint64_t f0;
	void *held;
};

/* Register [p, p+len) with stamp @gen; leaves it cached (put) unless @hold. */
static bool row_register(struct row_ctx *x, void *p, unsigned long len, uint64_t gen, bool hold)
{
	void *r;

	stamp(p, len, gen);
	if (sys_get(x->s, p, len, &r)) {
		snprintf(x->out->note, sizeof(x->out->note), "get failed");
		return false;
	}
	if (hold)
		x->held = r;
	else
		sys_put(x->s, r);
	x->f0 = devs_finishes(&x->s->devs);
	return true;
}

/* Right after the call: did every device deregister inside it? */
static void row_after_call(struct row_ctx *x)
{
	x->out->when = devs_finishes(&x->s->devs) > x->f0 ? DW_IN_CALL : DW_NONE;
}

/* New stamp @gen on the memory now at [p, p+len): does a get see it? */
static void row_check(struct row_ctx *x, void *p, unsigned long len, uint64_t gen)
{
	struct mmn_rcache_fake_reg *fr;
	void *r;

	stamp(p, len, gen);
	if (sys_get(x->s, p, len, &r)) {
		snprintf(x->out->note, sizeof(x->out->note), "get failed after");
		x->out->ran = true;
		return;
	}
	fr = sys_fake_reg(x->s, r, 0);
	x->out->stale = fr->first != gen || fr->last != gen;
	sys_put(x->s, r);
	if (x->out->when == DW_NONE) {
		if (x->held) {
			sys_put(x->s, x->held);
			x->held = NULL;
			if (devs_finishes(&x->s->devs) > x->f0) {
				x->out->when = DW_AT_PUT;
				goto done;
			}
		}
		x->out->when = devs_finishes(&x->s->devs) > x->f0 ? DW_LATER : DW_NEVER;
	}
done:
	if (x->held) {
		sys_put(x->s, x->held);
		x->held = NULL;
	}
	x->out->ran = true;
}

static void run_row(int id, struct sys *s, struct row_result *out)
{
	struct row_ctx x = { .s = s, .out = out };
	uint64_t gen = 1000 + 10 * (uint64_t)id;
	unsigned char *p, *q;

	memset(out, 0, sizeof(*out));
	switch (id) {
	case ROW_MUNMAP:
	case ROW_MUNMAP_HELD:
	case ROW_RAW:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, id == ROW_MUNMAP_HELD))
			return;
		if (id == ROW_RAW)
			syscall(SYS_munmap, p, MB);
		else
			munmap(p, MB);
		row_after_call(&x);
		/*
		 * libmmn's userfaultfd backstop hears of a raw munmap only once
		 * the kernel has unmapped (the caller waits until the monitor
		 * has read the event, not until it is handled): after the fact,
		 * however quickly.
		 */
		if (id == ROW_RAW && s->kind == SYS_MMN && mmn_backstop_on)
			out->when = DW_BACKSTOP;
		if (!map_at(p, MB)) {
			snprintf(out->note, sizeof(out->note), "address taken");
			return;
		}
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	case ROW_MUNMAP_MIDDLE:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		munmap(p + MB / 2, page);
		row_after_call(&x);
		map_at(p + MB / 2, page);
		/* The snapshot reads the first and last page: check the middle one's region. */
		row_check(&x, p + MB / 2, page, gen + 1);
		munmap(p, MB);
		break;
	case ROW_FREE_BIG:
		p = malloc(64 * MB);
		if (!p)
			return;
		q = (unsigned char *)(((unsigned long)p + MB) & ~(page - 1));
		if (!row_register(&x, q, MB, gen, false))
			return;
		free(p);
		row_after_call(&x);
		p = malloc(64 * MB);
		if (p && p <= q && q + MB <= p + 64 * MB)
			row_check(&x, q, MB, gen + 1);
		else
			snprintf(out->note, sizeof(out->note), "address not reused"), out->ran = true;
		free(p);
		break;
	case ROW_FREE_SMALL: {
		/* Nothing is unmapped: the registration must stay. A whole page, ours. */
		void *a = NULL, *r;
		unsigned long pa;

		if (posix_memalign(&a, page, page))
			return;
		pa = (unsigned long)a;
		p = malloc(64 * 1024);	/* keep the heap top away */
		if (!p || !row_register(&x, (void *)pa, page, gen, false))
			return;
		free(a);
		row_after_call(&x);
		if (sys_get(s, (void *)pa, page, &r) == 0)
			sys_put(s, r);
		out->when = out->when == DW_IN_CALL ? DW_IN_CALL : DW_KEPT;
		out->ran = true;
		free(p);
		break;
	}
	case ROW_DONTNEED:
	case ROW_FREE_ADVICE:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		madvise(p, MB, id == ROW_DONTNEED ? MADV_DONTNEED : MADV_FREE);
		row_after_call(&x);
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	case ROW_MREMAP:
		p = map_at(NULL, 2 * MB);	/* the second MB keeps it from growing in place */
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		q = mremap(p, MB, 4 * MB, MREMAP_MAYMOVE);
		row_after_call(&x);
		if (q == MAP_FAILED || q == p || !map_at(p, MB)) {
			snprintf(out->note, sizeof(out->note), "did not move");
			out->ran = true;
			break;
		}
		row_check(&x, p, MB, gen + 1);
		munmap(q, 4 * MB);
		munmap(p, 2 * MB);
		break;
	case ROW_SHMDT: {
		int id2 = shmget(IPC_PRIVATE, MB, IPC_CREAT | 0600);

		if (id2 < 0)
			return;
		p = shmat(id2, NULL, 0);
		shmctl(id2, IPC_RMID, NULL);
		if (p == (void *)-1 || !row_register(&x, p, MB, gen, false))
			return;
		shmdt(p);
		row_after_call(&x);
		if (!map_at(p, MB))
			return;
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	}
	case ROW_SBRK: {
		unsigned char *cur = sbrk(0);
		unsigned long top = ((unsigned long)cur + page - 1) & ~(page - 1);
		long grow = (long)(top - (unsigned long)cur + 64 * 1024);

		if (sbrk(grow) == (void *)-1)
			return;
		if (!row_register(&x, (void *)top, 64 * 1024, gen, false))
			return;
		sbrk(-64 * 1024);
		row_after_call(&x);
		if (sbrk(64 * 1024) == (void *)-1)
			return;
		row_check(&x, (void *)top, 64 * 1024, gen + 1);
		sbrk(-grow);
		break;
	}
	case ROW_IN_REG:
		p = map_at(NULL, MB);
		q = map_at(NULL, MB);
		if (!p || !q || !row_register(&x, p, MB, gen, false))
			return;
		in_reg_victim = p;
		atomic_store(&in_reg_armed, 1);
		for (int i = 0; i < s->devs.n; i++)
			mmn_rcache_fake_set_reg_hook(s->devs.fake[i], in_reg_hook, NULL);
		{
			void *r;

			stamp(q, MB, gen + 5);
			if (!sys_get(s, q, MB, &r))	/* registering q unmaps p */
				sys_put(s, r);
		}
		for (int i = 0; i < s->devs.n; i++)
			mmn_rcache_fake_set_reg_hook(s->devs.fake[i], NULL, NULL);
		row_after_call(&x);
		if (!map_at(p, MB))
			return;
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		munmap(q, MB);
		break;
	case ROW_HEAP_TRIM: {
		void *chunk[64];

		for (int i = 0; i < 64; i++)
			chunk[i] = malloc(100 * 1024);
		q = (unsigned char *)(((unsigned long)chunk[60] + page - 1) & ~(page - 1));
		if (!chunk[63] || !row_register(&x, q, 64 * 1024, gen, false))
			return;
		for (int i = 63; i >= 0; i--)
			free(chunk[i]);
		row_after_call(&x);
		for (int i = 0; i < 64; i++)
			chunk[i] = malloc(100 * 1024);
		/* Only if the heap gave the same addresses back can we look there. */
		for (int i = 0; i < 64 && !out->ran; i++)
			if (chunk[i] && (unsigned char *)chunk[i] <= q &&
			    q + 64 * 1024 <= (unsigned char *)chunk[i] + 100 * 1024)
				row_check(&x, q, 64 * 1024, gen + 1);
		if (!out->ran)
			snprintf(out->note, sizeof(out->note), "address not reused");
		for (int i = 63; i >= 0; i--)
			free(chunk[i]);
		break;
	}
	case ROW_MAP_FIXED:
		p = map_at(NULL, MB);
		if (!p || !row_register(&x, p, MB, gen, false))
			return;
		mmap(p, MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		row_after_call(&x);
		row_check(&x, p, MB, gen + 1);
		munmap(p, MB);
		break;
	}
}

static void child_body(int kind, int arg, void *resp)
{
	struct matrix_result *res = resp;
	struct sys s;

	(void)arg;
	if (sys_open(&s, kind, DEV_FAKE, 2, 0, true, 0)) {
		fail(&res->head, "%s: cannot create the matrix cache", sys_name[kind]);
		return;
	}
	for (int id = 0; id < NROWS; id++)
		run_row(id, &s, &res->rows[id]);
	/* No sys_close: stale registrations of unmapped memory may remain. */
}

static void print_row_cell(const struct row_result *r)
{
	char cell[64];

	if (!r->ran)
		snprintf(cell, sizeof(cell), "n/a %s", r->note);
	else
		snprintf(cell, sizeof(cell), "%s (dereg %s)", r->stale ? "STALE" : "pass",
			 dereg_text[r->when]);
	printf(" %-26s", cell);
}

int main(int argc, char **argv)
{
	static struct matrix_result res[NCOLS];
	bool failed = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--smoke")) {
			fprintf(stderr, "usage: %s [--smoke]\n", argv[0]);
			return 2;
		}
	}
	if (!banner("bench_rcache_matrix: stale registrations after memory changes, libmmn vs UCX ucs_rcache"))
		return 77;
	for (int c = 0; c < NCOLS; c++) {
		run_child(columns[c].kind, child_body, 0, &res[c], sizeof(res[c]));
		if (!res[c].head.ok) {
			printf("%s: %s\n", columns[c].label, res[c].head.err);
			failed = true;
		}
	}
	for (int c = 0; c < NCOLS; c++)
		if (res[c].head.info[0])
			printf("%s: %s\n", columns[c].label, res[c].head.info);

	printf("\n== correctness matrix: register, change the memory, map new memory at the same\n"
	       "   address, get again. STALE = the get returned a registration of the old pages.\n"
	       "   'dereg' = when every device deregistered the old registration ('after, uffd':\n"
	       "   by libmmn's userfaultfd backstop, once the kernel had unmapped).\n");
	printf("%-3s %-42s", "8.1", "action");
	for (int c = 0; c < NCOLS; c++)
		printf(" %-26s", columns[c].label);
	printf("\n");
	for (int id = 0; id < NROWS; id++) {
		char ref[8];

		snprintf(ref, sizeof(ref), row_ref[id] ? "%d" : "+", row_ref[id]);
		printf("%-3s %-42s", ref, row_name[id]);
		for (int c = 0; c < NCOLS; c++)
			print_row_cell(&res[c].rows[id]);
		printf("\n");
	}
	for (int c = 0; c < NCOLS; c++) {
		int stale = 0, ran = 0;

		for (int id = 0; id < NROWS; id++) {
			ran += res[c].rows[id].ran;
			stale += res[c].rows[id].stale;
		}
		printf("%s: %d rows, %d stale, %s\n", columns[c].label, ran, stale,
		       stale ? "FAIL" : "PASS");
	}
	/* Stale rows are findings, not failures; a child that could not run fails. */
	return failed ? 1 : 0;
}
