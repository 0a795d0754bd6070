// SPDX-License-Identifier: MIT
/*
 * Differential test: a long seeded sequence of core calls, each checked
 * against a brute-force model of the domain (plain arrays, no tree).
 *
 * The model predicts, before every call, the exact list of callbacks it will
 * cause: which notifier, first pass or finish, in which order (ascending
 * start, equal starts in tree-insertion order, deferred inserts applied FIFO
 * at the end of the period), with which cur_seq and range, and what the
 * domain's statistics read inside each callback. It also draws what each
 * callback does (set_seq or not, return false, hand back a finish, insert,
 * remove, read_begin or start a nested invalidation from inside) and the
 * return codes those calls must give. Callbacks consume that plan in order
 * and stop the test at the first difference. After every operation the test
 * compares every statistics field, the log hook's counts, every notifier's
 * tree membership, interval and sequence, and mmn_mm_test_check().
 *
 * Everything runs on one thread, except calls the model says must wait for
 * the open period (remove of a notifier in the tree, read_begin of a notifier
 * already invalidated in this period): those run on helper threads, which
 * the test proves parked (through the statistics) and joins, with a bounded
 * wait, when the model says the period has ended.
 *
 * Usage: unit_oracle [seed [operations]]   (default: clock seed, 20000)
 */
#include <limits.h>

#include "harness.h"
#include "internal.h"

#define NSUBS 96
#define MAX_OPEN 6
#define MAX_HELPERS 4
#define MAX_PLANS 40000
#define MAX_NESTED 512
#define PAGE 0x1000ul
#define BASE 0x100000ul
#define SLOTS 64
#define WOULD_WAIT 1	/* model_remove(): the call would sleep */

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

static struct test_rng rng;
static bool allow_warn;		/* MMN_ABORT_ON_WARN=1 would abort on WARN cases */
static long op_no;
static char op_desc[200];

static uint64_t below(uint64_t n)
{
	return test_rng_below(&rng, n);
}

/* ---- failure reporting ---------------------------------------------------- */

#define OCHECK(cond, ...)                                                       \
	do {                                                                    \
		test_checks++;                                                  \
		if (!(cond)) {                                                  \
			test_fail_at(__FILE__, __LINE__);                       \
			fprintf(stderr, "    operation %ld: %s\n    check: %s\n    ", \
				op_no, op_desc, #cond);                         \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			test_exit_now();                                        \
		}                                                               \
	} while (0)

/* ---- notifiers ----------------------------------------------------------- */

enum mstate { M_NONE, M_IN_TREE, M_PENDING_INSERT, M_PENDING_REMOVE };

struct osub {
	struct mmn_interval_notifier sub;
	int id;
	/* The model's view. */
	bool two_pass;
	enum mstate state;
	unsigned long start, last;
	uint64_t order;			/* when it entered the tree */
	unsigned long seq;		/* its invalidate_seq */
	unsigned long saved_seq;	/* a read_begin result, for read_retry */
};

static struct osub subs[NSUBS];

static bool cb_invalidate(struct mmn_interval_notifier *sub,
			  const struct mmn_range *range, unsigned long cur_seq);
static bool cb_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq, struct mmn_finish **finish);
static void cb_finish(struct mmn_finish *finish);

static const struct mmn_interval_notifier_ops single_ops = { .invalidate = cb_invalidate };
static const struct mmn_interval_notifier_ops two_ops = {
	.invalidate_start = cb_start,
	.invalidate_finish = cb_finish,
};
/* D2: every one of these must be refused. */
static const struct mmn_interval_notifier_ops bad_ops[] = {
	{ 0 },
	{ .invalidate = cb_invalidate, .invalidate_start = cb_start,
	  .invalidate_finish = cb_finish },
	{ .invalidate_start = cb_start },
	{ .invalidate_finish = cb_finish },
	{ .invalidate = cb_invalidate, .invalidate_finish = cb_finish },
	{ .invalidate = cb_invalidate, .invalidate_start = cb_start },
};

/* Finish containers: one per queued invocation, freed by the finish. */
#define FIN_MAGIC 0x46494e31u
struct fin {
	struct mmn_finish f;
	uint32_t magic;
	int sub;
	int creator;		/* plan index of the first pass that queued it */
};
static struct fin decoy = { .magic = 0xdeadu };	/* handed back with false */

/* ---- the model ------------------------------------------------------------ */

static struct model {
	struct mmn_mm *mm;
	unsigned long seq, active, notifiers;
	int deferred[NSUBS];		/* FIFO of sub ids */
	int nr_deferred;
	struct mmn_stats st;		/* counters; the rest filled by model_stats() */
	uint64_t order_clock;
	unsigned long period_ends;
	unsigned long log_err, log_warn;
} M;

static unsigned long seen_err, seen_warn;	/* the log hook's counts */

static void log_hook(const struct mmn_log_record *rec, void *arg)
{
	(void)arg;
	if (rec->level == MMN_LOG_ERROR)
		__atomic_fetch_add(&seen_err, 1, __ATOMIC_RELAXED);
	else if (rec->level == MMN_LOG_WARN)
		__atomic_fetch_add(&seen_warn, 1, __ATOMIC_RELAXED);
}

static struct mmn_stats model_stats(void)
{
	struct mmn_stats st = M.st;

	st.seq = M.seq;
	st.active = M.active;
	st.notifiers = M.notifiers;
	st.deferred = (unsigned long)M.nr_deferred;
	return st;
}

/* What the test reached, so that a quiet run cannot pass for a thorough one. */
static struct {
	unsigned long ins_idle, ins_partial, ins_deferred, ins_ebusy, ins_einval,
		ins_eoverflow, ins_in_cb;
	unsigned long rm_direct, rm_pending_insert, rm_helper, rm_edeadlk, rm_einval;
	unsigned long rb_direct, rb_helper, rb_in_cb, rb_not_inserted;
	unsigned long opens, opens_miss, eagain, nested, cb_release, releases;
	unsigned long period_ends, false_blockable, finishes, decoys, wraps;
	unsigned long destroys, set_seq, max_open, max_callbacks;
} cov;

static void deferred_push(int id)
{
	M.deferred[M.nr_deferred++] = id;
}

static void deferred_del(int id)
{
	for (int i = 0; i < M.nr_deferred; i++) {
		if (M.deferred[i] == id) {
			memmove(&M.deferred[i], &M.deferred[i + 1],
				(size_t)(M.nr_deferred - i - 1) * sizeof(int));
			M.nr_deferred--;
			return;
		}
	}
	OCHECK(0, "model: sub %d not on the deferred list", id);
}

/* insert(): the return code, and the effect when it succeeds. */
static long model_insert(int id, unsigned long start, unsigned long len, bool two_pass)
{
	struct osub *s = &subs[id];

	if (!len)
		return -EINVAL;
	if (start + (len - 1) < start)
		return -EOVERFLOW;
	if (s->state != M_NONE)
		return -EBUSY;
	s->two_pass = two_pass;
	s->start = start;
	s->last = start + (len - 1);
	M.notifiers++;
	if (M.active && (M.seq & 1)) {
		s->state = M_PENDING_INSERT;
		deferred_push(id);
		M.st.deferred_inserts++;
		s->seq = M.seq;
		cov.ins_deferred++;
	} else if (M.active) {
		M.seq |= 1;
		s->state = M_IN_TREE;
		s->order = M.order_clock++;
		s->seq = M.seq;
		cov.ins_partial++;
	} else {
		s->state = M_IN_TREE;
		s->order = M.order_clock++;
		s->seq = M.seq - 1;
		cov.ins_idle++;
	}
	return 0;
}

/* remove(): the return code, or WOULD_WAIT (nothing changed then). */
static long model_remove(int id, bool in_cb)
{
	struct osub *s = &subs[id];

	switch (s->state) {
	case M_NONE:
	case M_PENDING_REMOVE:
		cov.rm_einval++;
		return -EINVAL;
	case M_PENDING_INSERT:
		deferred_del(id);
		s->state = M_NONE;
		M.notifiers--;
		cov.rm_pending_insert++;
		return 0;
	case M_IN_TREE:
		if (!(M.seq & 1)) {
			s->state = M_NONE;
			M.notifiers--;
			cov.rm_direct++;
			return 0;
		}
		if (in_cb) {
			cov.rm_edeadlk++;
			return -EDEADLK;
		}
		return WOULD_WAIT;
	}
	return -1;
}

/* read_begin(): the value returned; *wait if it would sleep. */
static unsigned long model_read_begin(int id, bool *wait)
{
	struct osub *s = &subs[id];

	*wait = false;
	if (s->state == M_NONE) {
		M.log_err++;
		cov.rb_not_inserted++;
		return s->seq | 1;
	}
	*wait = s->seq == M.seq;
	return s->seq;
}

/* The region closes; the last one of an odd period ends it. */
static void model_end(void)
{
	if (!M.active) {
		M.st.warnings++;
		M.log_warn++;
		return;
	}
	if (--M.active || !(M.seq & 1))
		return;
	M.seq++;
	if (M.seq == 0)
		cov.wraps++;
	for (int i = 0; i < M.nr_deferred; i++) {
		struct osub *s = &subs[M.deferred[i]];

		if (s->state == M_PENDING_INSERT) {
			s->state = M_IN_TREE;
			s->order = M.order_clock++;
		} else {
			s->state = M_NONE;
			M.notifiers--;
		}
	}
	M.nr_deferred = 0;
	M.period_ends++;
	cov.period_ends++;
}

/* ---- plans: the callbacks the model expects, and what each one does ------ */

enum act_kind { ACT_NONE, ACT_INSERT, ACT_REMOVE, ACT_READ_BEGIN, ACT_NESTED, ACT_RELEASE };

struct plan {
	bool finish_pass;
	int sub;
	int creator;			/* finish: the first pass that queued it */
	unsigned long cur_seq;		/* first pass */
	const struct mmn_range *range;	/* first pass; NULL: the release range */
	bool blockable;
	struct mmn_stats stats;		/* mmn_mm_get_stats() at entry */
	/* Behaviour. */
	bool set_seq;
	bool ret;
	int finish;			/* 0 NULL, 1 a container, 2 the decoy */
	enum act_kind act;
	int act_sub;
	unsigned long a_start, a_len;	/* insert geometry, nested range */
	bool a_flag;			/* insert: two-pass; nested: blockable */
	int nested;			/* nested_ranges[] slot */
	long act_expect;
};

static struct plan plans[MAX_PLANS];
static int nr_plans, plan_next;
static struct mmn_range nested_ranges[MAX_NESTED];
static int nr_nested;

struct region {
	struct mmn_range range;
	bool open;
};
static struct region regions[MAX_OPEN];

static unsigned long rand_addr(void);
static unsigned long rand_len(unsigned long start);
static void rand_range(unsigned long *start, unsigned long *end);
static int model_walk(const struct mmn_range *range, unsigned long start,
		      unsigned long end, bool blockable, int depth);

static int pick_sub_in_state(enum mstate state)
{
	int n = 0, id = -1;

	for (int i = 0; i < NSUBS; i++)	/* reservoir sampling */
		if (subs[i].state == state && below((uint64_t)++n) == 0)
			id = i;
	return id;
}

static bool room_for_nesting(void)
{
	return nr_plans < MAX_PLANS - 8 * NSUBS && nr_nested < MAX_NESTED;
}

/* What a callback does besides set_seq; the model applies its effects now. */
static void decide_action(struct plan *p, int depth)
{
	p->act = ACT_NONE;
	if (below(100) >= 15)
		return;
	switch (below(10)) {
	case 0:
	case 1:
	case 2:
		p->act = ACT_INSERT;
		p->act_sub = below(4) ? pick_sub_in_state(M_NONE) : (int)below(NSUBS);
		if (p->act_sub < 0)
			p->act_sub = (int)below(NSUBS);
		p->a_start = rand_addr();
		p->a_len = rand_len(p->a_start);
		p->a_flag = below(2);
		p->act_expect = model_insert(p->act_sub, p->a_start, p->a_len, p->a_flag);
		if (!p->act_expect)
			cov.ins_in_cb++;
		break;
	case 3:
	case 4:
		p->act = ACT_REMOVE;
		switch (below(3)) {
		case 0:
			p->act_sub = pick_sub_in_state(M_PENDING_INSERT);
			break;
		case 1:
			p->act_sub = p->sub;		/* itself */
			break;
		default:
			p->act_sub = -1;
			break;
		}
		if (p->act_sub < 0)
			p->act_sub = (int)below(NSUBS);
		p->act_expect = model_remove(p->act_sub, true);
		break;
	case 5:
	case 6: {
		bool wait;
		int id = (int)below(NSUBS);

		if (subs[id].state != M_NONE && subs[id].seq == M.seq)
			break;	/* it would wait for its own period: D6 aborts */
		p->act = ACT_READ_BEGIN;
		p->act_sub = id;
		p->act_expect = (long)model_read_begin(id, &wait);
		cov.rb_in_cb++;
		break;
	}
	case 7:
	case 8:
		if (depth || !room_for_nesting())
			break;
		p->act = ACT_NESTED;
		p->nested = nr_nested++;
		rand_range(&p->a_start, &p->a_len);	/* a_len holds the end */
		p->a_flag = below(3) != 0;
		p->act_expect = model_walk(&nested_ranges[p->nested], p->a_start,
					   p->a_len, p->a_flag, depth + 1);
		if (!p->act_expect)
			model_end();		/* the callback ends it at once */
		cov.nested++;
		break;
	default:
		if (depth || !room_for_nesting() || below(3))
			break;
		p->act = ACT_RELEASE;
		p->act_expect = 0;
		M.st.releases++;
		model_walk(NULL, 0, ULONG_MAX, true, depth + 1);
		model_end();
		cov.cb_release++;
		break;
	}
}

static struct plan *new_plan(bool finish_pass, int sub)
{
	struct plan *p;

	OCHECK(nr_plans < MAX_PLANS, "plan table full");
	p = &plans[nr_plans++];
	memset(p, 0, sizeof(*p));
	p->finish_pass = finish_pass;
	p->sub = sub;
	p->stats = model_stats();
	return p;
}

static int cmp_walk_order(const void *a, const void *b)
{
	const struct osub *x = &subs[*(const int *)a], *y = &subs[*(const int *)b];

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * One walk, as mmn_invalidate_range_start*() or release runs it: opens the
 * region, plans every callback, closes the region on -EAGAIN.
 */
static int model_walk(const struct mmn_range *range, unsigned long start,
		      unsigned long end, bool blockable, int depth)
{
	int hits[NSUBS], nr_hits = 0, queued[NSUBS], nr_queued = 0, ret = 0;
	unsigned long last = end - 1, cur_seq, called = 0;

	M.active++;
	M.st.invalidations++;
	if (M.active > cov.max_open)
		cov.max_open = M.active;
	for (int i = 0; i < NSUBS; i++) {
		struct osub *s = &subs[i];

		if ((s->state == M_IN_TREE || s->state == M_PENDING_REMOVE) &&
		    s->start <= last && s->last >= start)
			hits[nr_hits++] = i;
	}
	if (!nr_hits) {
		cov.opens_miss++;
		return 0;
	}
	qsort(hits, (size_t)nr_hits, sizeof(int), cmp_walk_order);
	M.st.invalidations_hit++;
	M.seq |= 1;
	cur_seq = M.seq;

	for (int i = 0; i < nr_hits; i++) {
		struct osub *s = &subs[hits[i]];
		int index = nr_plans;
		struct plan *p = new_plan(false, hits[i]);

		called++;
		p->cur_seq = cur_seq;
		p->range = range;
		p->blockable = blockable;
		p->set_seq = below(10) != 0;
		if (blockable)
			p->ret = !allow_warn || below(25) != 0;
		else
			p->ret = below(6) != 0;
		if (s->two_pass) {
			if (p->ret)
				p->finish = below(10) < 7;
			else
				p->finish = below(2) ? 2 : 0;
		}
		if (p->set_seq)
			s->seq = cur_seq;
		decide_action(p, depth);
		if (p->finish == 1)
			queued[nr_queued++] = index;
		if (p->ret)
			continue;
		if (blockable) {
			M.st.warnings++;
			M.log_warn++;
			cov.false_blockable++;
			continue;
		}
		ret = -EAGAIN;
		break;
	}
	for (int i = 0; i < nr_queued; i++) {
		struct plan *p = new_plan(true, plans[queued[i]].sub);

		p->creator = queued[i];
		decide_action(p, depth);
	}
	M.st.notifiers_called += called;
	M.st.finishes += (uint64_t)nr_queued;
	cov.finishes += (uint64_t)nr_queued;
	if (ret) {
		M.st.nonblock_failures++;
		cov.eagain++;
		model_end();
	}
	return ret;
}

/* ---- callbacks ------------------------------------------------------------ */

static void check_stats(const struct mmn_stats *got, const struct mmn_stats *exp,
			const char *where)
{
#define F(f) OCHECK(got->f == exp->f, "%s: stats." #f " is %llu, model says %llu", \
		    where, (unsigned long long)got->f, (unsigned long long)exp->f)
	F(seq);
	F(active);
	F(notifiers);
	F(deferred);
	F(invalidations);
	F(invalidations_hit);
	F(nonblock_failures);
	F(releases);
	F(notifiers_called);
	F(finishes);
	F(deferred_inserts);
	F(deferred_removes);
	F(read_begin_waits);
	F(remove_waits);
	F(warnings);
#undef F
}

/* Entry of every callback: is this the call the model expects next? */
static struct plan *cb_enter(bool finish_pass, struct osub *s,
			     const struct mmn_range *range, unsigned long cur_seq)
{
	struct mmn_stats st;
	struct plan *p;
	int index = plan_next;

	OCHECK(plan_next < nr_plans, "unexpected %s of sub %d (the model expected %d callbacks)",
	       finish_pass ? "finish" : "first pass", s->id, nr_plans);
	p = &plans[plan_next++];
	OCHECK(p->finish_pass == finish_pass && p->sub == s->id,
	       "callback %d: got %s of sub %d, expected %s of sub %d", index,
	       finish_pass ? "finish" : "first pass", s->id,
	       p->finish_pass ? "finish" : "first pass", p->sub);
	OCHECK(mmn_test_in_callback(M.mm), "callback %d: not seen as inside a callback", index);
	if (!finish_pass) {
		OCHECK(cur_seq == p->cur_seq, "callback %d: cur_seq %#lx, expected %#lx",
		       index, cur_seq, p->cur_seq);
		OCHECK(range->mm == M.mm, "callback %d: wrong range->mm", index);
		OCHECK(mmn_range_blockable(range) == p->blockable,
		       "callback %d: blockable %d, expected %d", index,
		       mmn_range_blockable(range), p->blockable);
		if (p->range) {
			OCHECK(range == p->range, "callback %d: not the caller's range", index);
		} else {
			OCHECK(range->start == 0 && range->end == ULONG_MAX &&
			       range->event == MMN_EVENT_RELEASE && !range->owner,
			       "callback %d: release range [%#lx, %#lx) event %d", index,
			       range->start, range->end, range->event);
		}
	}
	OCHECK(mmn_mm_get_stats(M.mm, &st) == 0, "get_stats failed");
	check_stats(&st, &p->stats, "inside a callback");
	return p;
}

static void cb_action(struct plan *p)
{
	struct osub *a = &subs[p->act_sub];
	long got = 0;

	switch (p->act) {
	case ACT_NONE:
		return;
	case ACT_INSERT:
		got = mmn_interval_notifier_insert(&a->sub, M.mm, p->a_start, p->a_len,
						   p->a_flag ? &two_ops : &single_ops);
		break;
	case ACT_REMOVE:
		got = mmn_interval_notifier_remove(&a->sub);
		break;
	case ACT_READ_BEGIN:
		got = (long)mmn_interval_read_begin(&a->sub);
		break;
	case ACT_NESTED: {
		struct mmn_range *r = &nested_ranges[p->nested];

		mmn_range_init(r, MMN_EVENT_CLEAR, 0, M.mm, p->a_start, p->a_len);
		got = p->a_flag ? mmn_invalidate_range_start(r) :
				  mmn_invalidate_range_start_nonblock(r);
		if (!got)
			mmn_invalidate_range_end(r);
		break;
	}
	case ACT_RELEASE:
		mmn_mm_release(M.mm);
		break;
	}
	OCHECK(got == p->act_expect, "action %d on sub %d from callback %ld: got %ld, expected %ld",
	       p->act, p->act_sub, (long)(p - plans), got, p->act_expect);
}

static bool cb_invalidate(struct mmn_interval_notifier *sub,
			  const struct mmn_range *range, unsigned long cur_seq)
{
	struct osub *s = container_of(sub, struct osub, sub);
	struct plan *p = cb_enter(false, s, range, cur_seq);

	OCHECK(!s->two_pass, "invalidate called on a two-pass sub %d", s->id);
	if (p->set_seq)
		mmn_interval_set_seq(sub, cur_seq);
	cb_action(p);
	return p->ret;
}

static bool cb_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq, struct mmn_finish **finish)
{
	struct osub *s = container_of(sub, struct osub, sub);
	struct plan *p = cb_enter(false, s, range, cur_seq);

	OCHECK(s->two_pass, "invalidate_start called on a single-pass sub %d", s->id);
	OCHECK(*finish == NULL, "*finish not NULL on entry");
	if (p->set_seq)
		mmn_interval_set_seq(sub, cur_seq);
	cb_action(p);
	if (p->finish == 1) {
		struct fin *f = malloc(sizeof(*f));

		OCHECK(f != NULL, "out of memory");
		f->magic = FIN_MAGIC;
		f->sub = s->id;
		f->creator = (int)(p - plans);
		f->f.next = (struct mmn_finish *)(uintptr_t)0xbad1;	/* the core's */
		f->f.notifier = (struct mmn_interval_notifier *)(uintptr_t)0xbad2;
		*finish = &f->f;
	} else if (p->finish == 2) {
		*finish = &decoy.f;	/* with false: must be ignored */
		cov.decoys++;
	}
	return p->ret;
}

static void cb_finish(struct mmn_finish *finish)
{
	struct fin *f = container_of(finish, struct fin, f);
	struct osub *s;
	struct plan *p;

	OCHECK(f != &decoy, "the finish returned with false was called");
	OCHECK(f->magic == FIN_MAGIC, "finish: not a live container");
	OCHECK(finish->notifier == &subs[f->sub].sub,
	       "finish->notifier not set to the sub (sub %d)", f->sub);
	s = container_of(finish->notifier, struct osub, sub);
	p = cb_enter(true, s, NULL, 0);
	OCHECK(f->creator == p->creator, "finish of first pass %d, expected %d",
	       f->creator, p->creator);
	cb_action(p);
	f->magic = 0;
	free(f);	/* D3: the finish may free its container */
}

/* ---- helper threads: the calls that must wait for the period ----------- */

struct helper {
	pthread_t thread;
	bool used;
	bool remove;
	int sub;
	unsigned long result, expect;
};
static struct helper helpers[MAX_HELPERS];
static int nr_helpers;

static void *helper_main(void *arg)
{
	struct helper *h = arg;

	if (h->remove)
		h->result = (unsigned long)(long)mmn_interval_notifier_remove(&subs[h->sub].sub);
	else
		h->result = mmn_interval_read_begin(&subs[h->sub].sub);
	return NULL;
}

static bool helper_parked(bool remove)
{
	struct mmn_stats st;

	mmn_mm_get_stats(M.mm, &st);
	return remove ? st.remove_waits == M.st.remove_waits :
			st.read_begin_waits == M.st.read_begin_waits;
}

static bool helper_start(bool remove, int id, unsigned long expect)
{
	struct helper *h = NULL;

	for (int i = 0; i < MAX_HELPERS; i++)
		if (!helpers[i].used)
			h = &helpers[i];
	if (!h)
		return false;
	*h = (struct helper){ .used = true, .remove = remove, .sub = id, .expect = expect };
	nr_helpers++;
	if (remove) {
		deferred_push(id);
		subs[id].state = M_PENDING_REMOVE;
		M.st.deferred_removes++;
		M.st.remove_waits++;
		cov.rm_helper++;
	} else {
		M.st.read_begin_waits++;
		cov.rb_helper++;
	}
	OCHECK(pthread_create(&h->thread, NULL, helper_main, h) == 0, "pthread_create");
	/* Proved parked: the counter moves under the lock, just before it sleeps. */
	OCHECK(wait_until(helper_parked(remove), 10000),
	       "%s on sub %d did not wait", remove ? "remove" : "read_begin", id);
	return true;
}

/* The period ended: every helper must return, with the value predicted. */
static void helpers_join(void)
{
	for (int i = 0; i < MAX_HELPERS; i++) {
		struct helper *h = &helpers[i];
		struct timespec deadline;

		if (!h->used)
			continue;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 10;
		OCHECK(pthread_timedjoin_np(h->thread, NULL, &deadline) == 0,
		       "%s on sub %d still waiting after the period ended",
		       h->remove ? "remove" : "read_begin", h->sub);
		OCHECK(h->result == h->expect, "%s on sub %d returned %#lx, expected %#lx",
		       h->remove ? "remove" : "read_begin", h->sub, h->result, h->expect);
		h->used = false;
		nr_helpers--;
	}
}

/* ---- geometry ------------------------------------------------------------- */

static unsigned long rand_addr(void)
{
	switch (below(20)) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
		return BASE + below(SLOTS) * PAGE;
	case 8:
	case 9:
		return BASE + below(SLOTS * PAGE);
	case 10:
		return ULONG_MAX - below(3 * PAGE);
	case 11:
		return below(3 * PAGE);
	case 12:
		return test_rng_next(&rng);
	case 13:
		return BASE;
	case 14:
		return 0;
	case 15:
		return ULONG_MAX;
	default: {
		/* An equal start. */
		struct osub *s = &subs[below(NSUBS)];

		return s->state != M_NONE ? s->start : BASE + below(SLOTS) * PAGE;
	}
	}
}

/* Mostly valid; the wrapping ones come from the huge cases. */
static unsigned long rand_len(unsigned long start)
{
	switch (below(20)) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9:
		return PAGE * (1 + below(8));
	case 10:
	case 11:
	case 12:
		return 1 + below(256);
	case 13:
		return start ? ULONG_MAX - start + 1 : ULONG_MAX;	/* up to ULONG_MAX */
	case 14:
		return start != ULONG_MAX ? ULONG_MAX - start : 1;	/* up to ULONG_MAX-1 */
	case 15:
		return 1;
	case 16:
		return PAGE * SLOTS;
	default:
		return PAGE * (1 + below(32));
	}
}

static void rand_range(unsigned long *start, unsigned long *end)
{
	unsigned long s, e;

	switch (below(14)) {
	case 0:
		s = 0;
		e = ULONG_MAX;
		break;
	case 1:
		s = rand_addr();
		if (s == ULONG_MAX)
			s--;
		e = ULONG_MAX;
		break;
	case 2:
		s = rand_addr();
		if (s == ULONG_MAX)
			s--;
		e = s + 1;
		break;
	case 3:
	case 4:
		/* Far from the slots: mostly misses. */
		s = 0x40000000ul + below(0x100000);
		e = s + 1 + below(0x10000);
		break;
	default:
		s = rand_addr();
		if (s == ULONG_MAX)
			s--;
		e = s + rand_len(s);
		if (e <= s)
			e = ULONG_MAX;
		break;
	}
	*start = s;
	*end = e;
}

/* ---- checks after every operation ---------------------------------------- */

static void check_all(void)
{
	struct mmn_stats st, exp = model_stats();
	const char *err = mmn_mm_test_check(M.mm);

	OCHECK(err == NULL, "mmn_mm_test_check: %s", err);
	OCHECK(plan_next == nr_plans, "%d callbacks ran, the model expected %d",
	       plan_next, nr_plans);
	OCHECK(mmn_mm_get_stats(M.mm, &st) == 0, "get_stats failed");
	check_stats(&st, &exp, "after the operation");
	OCHECK(seen_err == M.log_err, "%lu error reports, expected %lu", seen_err, M.log_err);
	OCHECK(seen_warn == M.log_warn, "%lu warnings reported, expected %lu", seen_warn,
	       M.log_warn);
	for (int i = 0; i < NSUBS; i++) {
		struct osub *s = &subs[i];
		bool in_tree = s->state == M_IN_TREE || s->state == M_PENDING_REMOVE;

		OCHECK(mmn_interval_notifier_test_in_tree(&s->sub) == in_tree,
		       "sub %d: in tree %d, model state %d", i,
		       mmn_interval_notifier_test_in_tree(&s->sub), s->state);
		OCHECK(!mmn_interval_read_retry(&s->sub, s->seq),
		       "sub %d: its seq is not the model's %#lx", i, s->seq);
		OCHECK(!mmn_interval_check_retry(&s->sub, s->seq),
		       "sub %d: check_retry disagrees with read_retry", i);
		if (s->state == M_NONE)
			continue;
		OCHECK(mmn_interval_notifier_start(&s->sub) == s->start &&
		       mmn_interval_notifier_last(&s->sub) == s->last,
		       "sub %d: interval [%#lx, %#lx], model [%#lx, %#lx]", i,
		       mmn_interval_notifier_start(&s->sub),
		       mmn_interval_notifier_last(&s->sub), s->start, s->last);
		OCHECK(mmn_interval_notifier_mm(&s->sub) == M.mm, "sub %d: wrong mm", i);
	}
	OCHECK(!mmn_test_in_callback(M.mm), "outside any callback, yet seen inside one");
}

/* ---- operations ------------------------------------------------------------ */

static void begin_op(void)
{
	nr_plans = 0;
	plan_next = 0;
	nr_nested = 0;
}

/* After the library call: a period that ended lets every helper go. */
static unsigned long period_ends_before;

static void end_op(void)
{
	if (M.period_ends != period_ends_before && nr_helpers)
		helpers_join();
	if ((unsigned long)nr_plans > cov.max_callbacks)
		cov.max_callbacks = (unsigned long)nr_plans;
	check_all();
}

static void op_insert(void)
{
	int id = below(5) ? pick_sub_in_state(M_NONE) : (int)below(NSUBS);
	const struct mmn_interval_notifier_ops *ops;
	unsigned long start = rand_addr(), len = rand_len(start);
	bool two = below(2);
	long expect, got;
	int bad = -1;

	if (id < 0)
		id = (int)below(NSUBS);
	ops = two ? &two_ops : &single_ops;
	/* Now and then an argument that must be refused, in the documented order. */
	switch (below(24)) {
	case 0:
		bad = (int)below(sizeof(bad_ops) / sizeof(bad_ops[0]));
		ops = &bad_ops[bad];
		break;
	case 1:
		len = 0;
		break;
	case 2:
		start = ULONG_MAX - below(PAGE);
		len = ULONG_MAX - start + 2 + below(PAGE);	/* wraps */
		if (!len)
			len = 2;
		break;
	case 3:
		len = ULONG_MAX;
		start = 1 + below(PAGE);	/* wraps */
		break;
	default:
		break;
	}
	snprintf(op_desc, sizeof(op_desc), "insert sub %d [%#lx, +%#lx) %s%s", id, start,
		 len, two ? "two-pass" : "single", bad >= 0 ? " bad ops" : "");
	if (bad >= 0)
		expect = -EINVAL;
	else
		expect = model_insert(id, start, len, two);
	got = mmn_interval_notifier_insert(&subs[id].sub, M.mm, start, len, ops);
	OCHECK(got == expect, "insert returned %ld, expected %ld", got, expect);
	if (expect == -EINVAL)
		cov.ins_einval++;
	else if (expect == -EOVERFLOW)
		cov.ins_eoverflow++;
	else if (expect == -EBUSY)
		cov.ins_ebusy++;
}

static void op_remove(void)
{
	int id = below(3) ? pick_sub_in_state(below(4) ? M_IN_TREE : M_PENDING_INSERT) :
			    (int)below(NSUBS);
	long expect, got;

	if (id < 0)
		id = (int)below(NSUBS);
	snprintf(op_desc, sizeof(op_desc), "remove sub %d (state %d)", id, subs[id].state);
	expect = model_remove(id, false);
	if (expect == WOULD_WAIT) {
		strcat(op_desc, " on a helper thread");
		helper_start(true, id, 0);
		return;
	}
	got = mmn_interval_notifier_remove(&subs[id].sub);
	OCHECK(got == expect, "remove returned %ld, expected %ld", got, expect);
}

static void op_open(void)
{
	struct region *r = NULL;
	unsigned long start, end;
	bool blockable = below(10) < 7;
	unsigned int extra = below(2) ? 0x6u : 0;
	int expect, got;

	for (int i = 0; i < MAX_OPEN; i++)
		if (!regions[i].open && (!r || below(2)))
			r = &regions[i];
	if (!r)
		return;
	rand_range(&start, &end);
	snprintf(op_desc, sizeof(op_desc), "%s start [%#lx, %#lx) (%lu open)",
		 blockable ? "blockable" : "nonblock", start, end, M.active);
	cov.opens++;
	expect = model_walk(&r->range, start, end, blockable, 0);
	mmn_range_init(&r->range, (enum mmn_event)below(8), extra, M.mm, start, end);
	r->range.owner = below(2) ? (void *)&rng : NULL;
	got = blockable ? mmn_invalidate_range_start(&r->range) :
			  mmn_invalidate_range_start_nonblock(&r->range);
	OCHECK(got == expect, "start returned %d, expected %d", got, expect);
	OCHECK(r->range.flags == (extra | (blockable ? MMN_RANGE_BLOCKABLE : 0)),
	       "range flags %#x after start", r->range.flags);
	r->open = got == 0;
}

static void op_close(void)
{
	struct region *r = NULL;

	for (int i = 0; i < MAX_OPEN; i++)
		if (regions[i].open && (!r || below(2)))
			r = &regions[i];
	if (!r)
		return;
	snprintf(op_desc, sizeof(op_desc), "end [%#lx, %#lx) (%lu open)", r->range.start,
		 r->range.end, M.active);
	model_end();
	mmn_invalidate_range_end(&r->range);
	r->open = false;
}

static void op_release(void)
{
	snprintf(op_desc, sizeof(op_desc), "release (%lu open)", M.active);
	M.st.releases++;
	model_walk(NULL, 0, ULONG_MAX, true, 0);
	model_end();
	mmn_mm_release(M.mm);
	cov.releases++;
}

static void op_read_begin(void)
{
	int id = (int)below(NSUBS);
	struct osub *s = &subs[id];
	unsigned long expect, got;
	bool wait;

	snprintf(op_desc, sizeof(op_desc), "read_begin sub %d (state %d)", id, s->state);
	expect = model_read_begin(id, &wait);
	if (wait) {
		strcat(op_desc, " on a helper thread");
		if (!helper_start(false, id, expect))
			return;
	} else {
		got = mmn_interval_read_begin(&s->sub);
		OCHECK(got == expect, "read_begin returned %#lx, expected %#lx", got, expect);
		cov.rb_direct++;
	}
	s->saved_seq = expect;
}

static void op_retry(void)
{
	int id = (int)below(NSUBS);
	struct osub *s = &subs[id];
	unsigned long seq;

	switch (below(4)) {
	case 0:
		seq = s->seq;
		break;
	case 1:
		seq = test_rng_next(&rng) | 1;
		break;
	default:
		seq = s->saved_seq;
		break;
	}
	snprintf(op_desc, sizeof(op_desc), "read_retry sub %d seq %#lx", id, seq);
	OCHECK(mmn_interval_read_retry(&s->sub, seq) == (s->seq != seq), "read_retry");
	OCHECK(mmn_interval_check_retry(&s->sub, seq) == (s->seq != seq), "check_retry");
	OCHECK(mmn_interval_read_retry(NULL, seq), "read_retry(NULL)");
	OCHECK(mmn_interval_check_retry(NULL, seq), "check_retry(NULL)");
}

/* Calls that must be refused, or only counted. */
static void op_misc(void)
{
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm = NULL;
	unsigned long s = rand_addr();

	switch (below(8)) {
	case 0:
		snprintf(op_desc, sizeof(op_desc), "empty and NULL ranges");
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0x4, M.mm, s, s && below(2) ? s - 1 : s);
		OCHECK(mmn_invalidate_range_start(&r) == -EINVAL, "empty range");
		OCHECK(mmn_invalidate_range_start_nonblock(&r) == -EINVAL, "empty range");
		OCHECK(r.flags == 0x4, "flags changed by a refused start");
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0, NULL, 0, 1);
		OCHECK(mmn_invalidate_range_start(&r) == -EINVAL, "NULL mm");
		OCHECK(mmn_invalidate_range_start_nonblock(&r) == -EINVAL, "NULL mm");
		OCHECK(mmn_invalidate_range_start(NULL) == -EINVAL, "NULL range");
		OCHECK(mmn_invalidate_range_start_nonblock(NULL) == -EINVAL, "NULL range");
		break;
	case 1:
		snprintf(op_desc, sizeof(op_desc), "NULL arguments");
		OCHECK(mmn_mm_get_stats(NULL, &st) == -EINVAL, "get_stats(NULL, st)");
		OCHECK(mmn_mm_get_stats(M.mm, NULL) == -EINVAL, "get_stats(mm, NULL)");
		OCHECK(mmn_mm_new(NULL) == -EINVAL, "mm_new(NULL)");
		OCHECK(mmn_mm_destroy(mm) == 0, "destroy(NULL)");
		OCHECK(mmn_interval_notifier_remove(NULL) == -EINVAL, "remove(NULL)");
		OCHECK(mmn_interval_notifier_insert(NULL, M.mm, 0, 1, &single_ops) == -EINVAL,
		       "insert(NULL sub)");
		OCHECK(mmn_interval_notifier_insert(&subs[0].sub, NULL, 0, 0, &single_ops) ==
		       -EINVAL, "insert(NULL mm)");
		OCHECK(mmn_interval_notifier_insert(&subs[0].sub, M.mm, 0, 0, NULL) == -EINVAL,
		       "insert(NULL ops)");
		break;
	case 2:
		snprintf(op_desc, sizeof(op_desc), "reports without a domain");
		OCHECK(mmn_interval_read_begin(NULL) == 1, "read_begin(NULL)");
		mmn_invalidate_range_end(NULL);
		mmn_mm_release(NULL);
		M.log_err += 3;
		break;
	case 3:
		if (M.active || !allow_warn)
			break;
		snprintf(op_desc, sizeof(op_desc), "end without an open region");
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0, M.mm, 0, 1);
		model_end();
		mmn_invalidate_range_end(&r);
		break;
	case 4: {
		static const unsigned long presets[] = { ULONG_MAX - 1, ULONG_MAX - 3, 0, 2 };
		unsigned long seq = below(4) ? presets[below(4)] : test_rng_next(&rng);
		int expect = M.active || (seq & 1) ? -EBUSY : 0;

		snprintf(op_desc, sizeof(op_desc), "test_set_seq %#lx", seq);
		OCHECK(mmn_mm_test_set_seq(M.mm, seq) == expect, "test_set_seq");
		if (!expect)
			M.seq = seq;
		cov.set_seq += !expect;
		break;
	}
	case 5:
		if (!(M.notifiers || M.active || M.nr_deferred))
			break;
		snprintf(op_desc, sizeof(op_desc), "destroy a busy domain");
		OCHECK(mmn_mm_destroy(M.mm) == -EBUSY, "destroy while busy");
		break;
	default:
		snprintf(op_desc, sizeof(op_desc), "range_init");
		memset(&r, 0xa5, sizeof(r));
		mmn_range_init(&r, MMN_EVENT_MIGRATE, 0x2, M.mm, s, s + 1);
		OCHECK(r.mm == M.mm && r.start == s && r.end == s + 1 && r.flags == 0x2 &&
		       r.event == MMN_EVENT_MIGRATE && r.owner == NULL, "range_init");
		break;
	}
}

static void new_domain(void)
{
	OCHECK(mmn_mm_new(&M.mm) == 0, "mmn_mm_new");
	M.seq = 2;
	M.active = 0;
	M.notifiers = 0;
	M.nr_deferred = 0;
	memset(&M.st, 0, sizeof(M.st));
}

/* Close every region (random order), remove every notifier, check idle. */
static void drain(bool destroy)
{
	for (;;) {
		begin_op();
		period_ends_before = M.period_ends;
		if (!M.active)
			break;
		op_close();
		end_op();
	}
	OCHECK(nr_helpers == 0, "helpers left after the last region closed");
	for (int i = 0; i < NSUBS; i++) {
		if (subs[i].state == M_NONE)
			continue;
		begin_op();
		snprintf(op_desc, sizeof(op_desc), "drain: remove sub %d", i);
		OCHECK(model_remove(i, false) == 0, "model: sub %d not removable", i);
		OCHECK(mmn_interval_notifier_remove(&subs[i].sub) == 0, "remove");
		end_op();
	}
	OCHECK(M.notifiers == 0 && M.nr_deferred == 0 && !(M.seq & 1), "model not idle");
	if (!destroy)
		return;
	snprintf(op_desc, sizeof(op_desc), "destroy an idle domain");
	OCHECK(mmn_mm_destroy(M.mm) == 0, "destroy");
	cov.destroys++;
}

static long nr_ops = 20000;

TEST(differential)
{
	for (int i = 0; i < NSUBS; i++)
		subs[i].id = i;
	mmn_set_log_fn(log_hook, NULL);
	new_domain();
	check_all();

	for (op_no = 0; op_no < nr_ops; op_no++) {
		uint64_t r = below(1000);

		begin_op();
		period_ends_before = M.period_ends;
		op_desc[0] = 0;
		if (r < 200)
			op_insert();
		else if (r < 340)
			op_remove();
		else if (r < 500)
			op_open();
		else if (r < 680)
			op_close();
		else if (r < 820)
			op_read_begin();
		else if (r < 870)
			op_retry();
		else if (r < 890)
			op_release();
		else if (r < 998)
			op_misc();
		else {
			drain(true);
			new_domain();
		}
		end_op();
	}
	drain(true);
	M.mm = NULL;
	mmn_set_log_fn(NULL, NULL);
}

TEST(coverage)
{
	printf("  inserts: %lu idle, %lu partial, %lu deferred, %lu from callbacks; "
	       "refused: %lu EBUSY, %lu EINVAL, %lu EOVERFLOW\n",
	       cov.ins_idle, cov.ins_partial, cov.ins_deferred, cov.ins_in_cb,
	       cov.ins_ebusy, cov.ins_einval, cov.ins_eoverflow);
	printf("  removes: %lu direct, %lu pending inserts, %lu waited, %lu EDEADLK, %lu EINVAL\n",
	       cov.rm_direct, cov.rm_pending_insert, cov.rm_helper, cov.rm_edeadlk,
	       cov.rm_einval);
	printf("  read_begin: %lu direct, %lu waited, %lu from callbacks, %lu not inserted\n",
	       cov.rb_direct, cov.rb_helper, cov.rb_in_cb, cov.rb_not_inserted);
	printf("  regions: %lu opened (%lu hit nothing), %lu EAGAIN, %lu nested, "
	       "%lu releases (+%lu from callbacks), up to %lu open\n",
	       cov.opens, cov.opens_miss, cov.eagain, cov.nested, cov.releases,
	       cov.cb_release, cov.max_open);
	printf("  %lu periods (%lu wrapped to 0), %lu finishes, %lu false on blockable, "
	       "%lu decoys, %lu presets, %lu destroys, up to %lu callbacks per call\n",
	       cov.period_ends, cov.wraps, cov.finishes, cov.false_blockable, cov.decoys,
	       cov.set_seq, cov.destroys, cov.max_callbacks);
	if (nr_ops < 10000)
		return;		/* too short a run to demand every case */
	expect_gt(cov.ins_idle, 0);
	expect_gt(cov.ins_partial, 0);
	expect_gt(cov.ins_deferred, 0);
	expect_gt(cov.ins_in_cb, 0);
	expect_gt(cov.ins_ebusy, 0);
	expect_gt(cov.ins_einval, 0);
	expect_gt(cov.ins_eoverflow, 0);
	expect_gt(cov.rm_direct, 0);
	expect_gt(cov.rm_pending_insert, 0);
	expect_gt(cov.rm_helper, 0);
	expect_gt(cov.rm_edeadlk, 0);
	expect_gt(cov.rm_einval, 0);
	expect_gt(cov.rb_direct, 0);
	expect_gt(cov.rb_helper, 0);
	expect_gt(cov.rb_in_cb, 0);
	expect_gt(cov.eagain, 0);
	expect_gt(cov.nested, 0);
	expect_gt(cov.opens_miss, 0);
	expect_gt(cov.releases + cov.cb_release, 0);
	expect_gt(cov.finishes, 0);
	expect_gt(cov.decoys, 0);
	expect_gt(cov.wraps, 0);
	expect_gt(cov.destroys, 1);
	expect_ge(cov.max_open, 3);
	if (allow_warn)
		expect_gt(cov.false_blockable, 0);
}

int main(int argc, char **argv)
{
	const char *abort_env = getenv("MMN_ABORT_ON_WARN");

	test_rng_seed(&rng, test_seed_from_args(argc, argv));
	if (argc > 2)
		nr_ops = strtol(argv[2], NULL, 0);
	allow_warn = !(abort_env && strcmp(abort_env, "1") == 0);
	if (!allow_warn)
		printf("MMN_ABORT_ON_WARN=1: no call that warns is made\n");
	RUN(differential);
	RUN(coverage);
	return test_report();
}
