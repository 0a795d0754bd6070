// SPDX-License-Identifier: MIT
/*
 * The reference model of libmmn's core and the differential driver: see
 * model.h for what it predicts and checks, and for the two front ends.
 *
 * Layout: the model's transitions (model_insert() ... model_walk()), the
 * plans that callbacks consume, the callbacks themselves, geometry, the
 * checks after every operation, and the operations. Every random choice goes
 * through below() and is tagged with the stream in force: model_walk() plans
 * callbacks on MODEL_STREAM_CALLBACKS, everything else is MODEL_STREAM_OPS.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "model.h"

#define MAX_PLANS 40000
#define MAX_NESTED 512
#define PAGE 0x1000ul
#define BASE 0x100000ul
#define SLOTS 64
#define WOULD_WAIT 1	/* model_remove(): the call would sleep */
#define RECENT 8	/* operations shown with a failure */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct model model;
struct model_sub model_subs[MODEL_MAX_SUBS];
struct model_cov model_cov;

static struct model_config cfg;
static enum model_stream stream;
static char recent[RECENT][sizeof(model.op_desc)];
static bool op_traced;	/* the current operation was printed (cfg.trace) */

/* ---- choices ------------------------------------------------------------ */

static uint64_t below(uint64_t n)
{
	return cfg.below(cfg.arg, stream, n);
}

static uint64_t rand64(void)
{
	return cfg.below(cfg.arg, stream, 0);
}

/* True one time in @n: the rare branch; 0 (an exhausted input) never is. */
static bool one_in(uint64_t n)
{
	return below(n) == n - 1;
}

/* ---- failure reporting ---------------------------------------------------- */

static void __attribute__((format(printf, 4, 5), noreturn))
model_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  FAIL %s:%d\n", file, line);
	for (long i = model.op_no > RECENT ? model.op_no - RECENT : 0; i < model.op_no; i++)
		fprintf(stderr, "    operation %ld: %s\n", i, recent[i % RECENT]);
	fprintf(stderr, "    operation %ld: %s   <- failed\n    check: %s\n    ", model.op_no,
		model.op_desc, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	if (cfg.fail)
		cfg.fail();
	abort();
}

#define MCHECK(cond, ...)                                                       \
	do {                                                                    \
		model.checks++;                                                     \
		if (!(cond))                                                    \
			model_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);     \
	} while (0)

static void describe(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void describe(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(model.op_desc, sizeof(model.op_desc), fmt, ap);
	va_end(ap);
}

/* With cfg.trace: the operation, once, before its first callback or at its end. */
static void trace_op(void)
{
	if (!cfg.trace || op_traced)
		return;
	fprintf(stderr, "op %ld: %s\n", model.op_no, model.op_desc);
	op_traced = true;
}

static void describe_more(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void describe_more(const char *fmt, ...)
{
	size_t len = strlen(model.op_desc);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(model.op_desc + len, sizeof(model.op_desc) - len, fmt, ap);
	va_end(ap);
}

/* ---- notifiers ----------------------------------------------------------- */

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
	struct mmn_stats st = model.st;

	st.seq = model.seq;
	st.active = model.active;
	st.notifiers = model.notifiers;
	st.deferred = (unsigned long)model.nr_deferred;
	return st;
}

static const char *state_name(enum model_state state)
{
	static const char *const names[] = {
		[MS_NONE] = "not inserted",
		[MS_IN_TREE] = "in the tree",
		[MS_PENDING_INSERT] = "pending insert",
		[MS_PENDING_REMOVE] = "pending remove",
	};

	return (unsigned int)state < ARRAY_SIZE(names) ? names[state] : "?";
}

static void deferred_push(int id)
{
	model.deferred[model.nr_deferred++] = id;
}

static void deferred_del(int id)
{
	for (int i = 0; i < model.nr_deferred; i++) {
		if (model.deferred[i] == id) {
			memmove(&model.deferred[i], &model.deferred[i + 1],
				(size_t)(model.nr_deferred - i - 1) * sizeof(int));
			model.nr_deferred--;
			return;
		}
	}
	MCHECK(0, "model: sub %d not on the deferred list", id);
}

/* insert(): the return code, and the effect when it succeeds. */
static long model_insert(int id, unsigned long start, unsigned long len, bool two_pass)
{
	struct model_sub *s = &model_subs[id];

	if (!len)
		return -EINVAL;
	if (start + (len - 1) < start)
		return -EOVERFLOW;
	if (s->state != MS_NONE)
		return -EBUSY;
	s->two_pass = two_pass;
	s->start = start;
	s->last = start + (len - 1);
	model.notifiers++;
	if (model.active && (model.seq & 1)) {
		s->state = MS_PENDING_INSERT;
		deferred_push(id);
		model.st.deferred_inserts++;
		s->seq = model.seq;
		model_cov.ins_deferred++;
	} else if (model.active) {
		model.seq |= 1;
		s->state = MS_IN_TREE;
		s->order = model.order_clock++;
		s->seq = model.seq;
		model_cov.ins_partial++;
	} else {
		s->state = MS_IN_TREE;
		s->order = model.order_clock++;
		s->seq = model.seq - 1;
		model_cov.ins_idle++;
	}
	return 0;
}

/* remove(): the return code, or WOULD_WAIT (nothing changed then). */
static long model_remove(int id, bool in_cb)
{
	struct model_sub *s = &model_subs[id];

	switch (s->state) {
	case MS_NONE:
	case MS_PENDING_REMOVE:
		model_cov.rm_einval++;
		return -EINVAL;
	case MS_PENDING_INSERT:
		deferred_del(id);
		s->state = MS_NONE;
		model.notifiers--;
		model_cov.rm_pending_insert++;
		return 0;
	case MS_IN_TREE:
		if (!(model.seq & 1)) {
			s->state = MS_NONE;
			model.notifiers--;
			model_cov.rm_direct++;
			return 0;
		}
		if (in_cb) {
			model_cov.rm_edeadlk++;
			return -EDEADLK;
		}
		return WOULD_WAIT;
	}
	return -1;
}

/* A remove the model said would wait is now waiting on another thread. */
static void model_remove_waiting(int id)
{
	deferred_push(id);
	model_subs[id].state = MS_PENDING_REMOVE;
	model.st.deferred_removes++;
	model.st.remove_waits++;
	model_cov.rm_waited++;
}

/* read_begin(): the value returned; *wait if it would sleep. */
static unsigned long model_read_begin(int id, bool *wait)
{
	struct model_sub *s = &model_subs[id];

	*wait = false;
	if (s->state == MS_NONE) {
		model.log_err++;
		model_cov.rb_not_inserted++;
		return s->seq | 1;
	}
	*wait = s->seq == model.seq;
	return s->seq;
}

/* The region closes; the last one of an odd period ends it. */
static void model_end(void)
{
	if (!model.active) {
		model.st.warnings++;
		model.log_warn++;
		return;
	}
	if (--model.active || !(model.seq & 1))
		return;
	model.seq++;
	if (model.seq == 0)
		model_cov.wraps++;
	for (int i = 0; i < model.nr_deferred; i++) {
		struct model_sub *s = &model_subs[model.deferred[i]];

		if (s->state == MS_PENDING_INSERT) {
			s->state = MS_IN_TREE;
			s->order = model.order_clock++;
		} else {
			s->state = MS_NONE;
			model.notifiers--;
		}
	}
	model.nr_deferred = 0;
	model.period_ends++;
	model_cov.period_ends++;
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
static struct region regions[MODEL_MAX_OPEN];

static unsigned long rand_addr(void);
static unsigned long rand_len(unsigned long start);
static void rand_range(unsigned long *start, unsigned long *end);
static int model_walk(const struct mmn_range *range, unsigned long start,
		      unsigned long end, bool blockable, int depth);

/* One notifier in @state, chosen; -1 if there is none. */
static int pick_sub_in_state(enum model_state state)
{
	int n = 0, k;

	for (int i = 0; i < cfg.nr_subs; i++)
		n += model_subs[i].state == state;
	if (!n)
		return -1;
	k = (int)below((uint64_t)n);
	for (int i = 0; i < cfg.nr_subs; i++)
		if (model_subs[i].state == state && k-- == 0)
			return i;
	return -1;
}

static int pick_sub(void)
{
	return (int)below((uint64_t)cfg.nr_subs);
}

static bool room_for_nesting(void)
{
	return nr_plans < MAX_PLANS - 8 * MODEL_MAX_SUBS && nr_nested < MAX_NESTED;
}

/* What a callback does besides set_seq; the model applies its effects now. */
static void decide_action(struct plan *p, int depth)
{
	p->act = ACT_NONE;
	if (below(100) < 85)
		return;
	switch (below(10)) {
	case 0:
	case 1:
	case 2:
		p->act = ACT_INSERT;
		p->act_sub = below(4) < 3 ? pick_sub_in_state(MS_NONE) : pick_sub();
		if (p->act_sub < 0)
			p->act_sub = pick_sub();
		p->a_start = rand_addr();
		p->a_len = rand_len(p->a_start);
		p->a_flag = below(2);
		p->act_expect = model_insert(p->act_sub, p->a_start, p->a_len, p->a_flag);
		if (!p->act_expect)
			model_cov.ins_in_cb++;
		break;
	case 3:
	case 4:
		p->act = ACT_REMOVE;
		switch (below(3)) {
		case 0:
			p->act_sub = pick_sub_in_state(MS_PENDING_INSERT);
			break;
		case 1:
			p->act_sub = p->sub;		/* itself */
			break;
		default:
			p->act_sub = -1;
			break;
		}
		if (p->act_sub < 0)
			p->act_sub = pick_sub();
		p->act_expect = model_remove(p->act_sub, true);
		break;
	case 5:
	case 6: {
		bool wait;
		int id = pick_sub();

		if (model_subs[id].state != MS_NONE && model_subs[id].seq == model.seq)
			break;	/* it would wait for its own period: D6 aborts */
		p->act = ACT_READ_BEGIN;
		p->act_sub = id;
		p->act_expect = (long)model_read_begin(id, &wait);
		model_cov.rb_in_cb++;
		break;
	}
	case 7:
	case 8:
		if (depth || !room_for_nesting())
			break;
		p->act = ACT_NESTED;
		p->nested = nr_nested++;
		rand_range(&p->a_start, &p->a_len);	/* a_len holds the end */
		p->a_flag = !one_in(3);
		p->act_expect = model_walk(&nested_ranges[p->nested], p->a_start,
					   p->a_len, p->a_flag, depth + 1);
		if (!p->act_expect)
			model_end();		/* the callback ends it at once */
		model_cov.nested++;
		break;
	default:
		if (depth || !room_for_nesting() || !one_in(3))
			break;
		p->act = ACT_RELEASE;
		p->act_expect = 0;
		model.st.releases++;
		model_walk(NULL, 0, ULONG_MAX, true, depth + 1);
		model_end();
		model_cov.cb_release++;
		break;
	}
}

static struct plan *new_plan(bool finish_pass, int sub)
{
	struct plan *p;

	MCHECK(nr_plans < MAX_PLANS, "plan table full");
	p = &plans[nr_plans++];
	memset(p, 0, sizeof(*p));
	p->finish_pass = finish_pass;
	p->sub = sub;
	p->stats = model_stats();
	return p;
}

static int cmp_walk_order(const void *a, const void *b)
{
	const struct model_sub *x = &model_subs[*(const int *)a], *y = &model_subs[*(const int *)b];

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
	int hits[MODEL_MAX_SUBS], nr_hits = 0, queued[MODEL_MAX_SUBS], nr_queued = 0;
	unsigned long last = end - 1, cur_seq, called = 0;
	enum model_stream saved = stream;
	int ret = 0;

	model.active++;
	model.st.invalidations++;
	if (model.active > model_cov.max_open)
		model_cov.max_open = model.active;
	for (int i = 0; i < cfg.nr_subs; i++) {
		struct model_sub *s = &model_subs[i];

		if ((s->state == MS_IN_TREE || s->state == MS_PENDING_REMOVE) &&
		    s->start <= last && s->last >= start)
			hits[nr_hits++] = i;
	}
	if (!nr_hits) {
		model_cov.opens_miss++;
		return 0;
	}
	qsort(hits, (size_t)nr_hits, sizeof(int), cmp_walk_order);
	model.st.invalidations_hit++;
	model.seq |= 1;
	cur_seq = model.seq;

	stream = MODEL_STREAM_CALLBACKS;
	for (int i = 0; i < nr_hits; i++) {
		struct model_sub *s = &model_subs[hits[i]];
		int index = nr_plans;
		struct plan *p = new_plan(false, hits[i]);

		called++;
		p->cur_seq = cur_seq;
		p->range = range;
		p->blockable = blockable;
		p->set_seq = !one_in(10);
		if (blockable)
			p->ret = !cfg.allow_warn || !one_in(25);
		else
			p->ret = !one_in(6);
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
			model.st.warnings++;
			model.log_warn++;
			model_cov.false_blockable++;
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
	stream = saved;
	model.st.notifiers_called += called;
	model.st.finishes += (uint64_t)nr_queued;
	model_cov.finishes += (uint64_t)nr_queued;
	if (ret) {
		model.st.nonblock_failures++;
		model_cov.eagain++;
		model_end();
	}
	return ret;
}

/* ---- callbacks ------------------------------------------------------------ */

static void check_stats(const struct mmn_stats *got, const struct mmn_stats *exp,
			const char *where)
{
#define F(f) MCHECK(got->f == exp->f, "%s: stats." #f " is %llu, model says %llu", \
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

static void trace_callback(int index, const struct plan *p)
{
	char act[80] = "";

	switch (p->act) {
	case ACT_NONE:
		break;
	case ACT_INSERT:
	case ACT_REMOVE:
	case ACT_READ_BEGIN:
		snprintf(act, sizeof(act), "; %s sub %d -> %ld",
			 p->act == ACT_INSERT ? "inserts" :
			 p->act == ACT_REMOVE ? "removes" : "read_begin of",
			 p->act_sub, p->act_expect);
		break;
	case ACT_NESTED:
		snprintf(act, sizeof(act), "; starts [%#lx, %#lx) -> %ld", p->a_start, p->a_len,
			 p->act_expect);
		break;
	case ACT_RELEASE:
		snprintf(act, sizeof(act), "; releases the domain");
		break;
	}
	trace_op();
	fprintf(stderr, "    callback %d: %s of sub %d%s%s%s%s\n", index,
		p->finish_pass ? "finish" : "first pass", p->sub,
		p->finish_pass || p->set_seq ? "" : ", no set_seq",
		p->finish_pass || p->ret ? "" : ", returns false",
		p->finish == 1 ? ", queues a finish" : p->finish == 2 ? ", a decoy" : "", act);
}

/* Entry of every callback: is this the call the model expects next? */
static struct plan *cb_enter(bool finish_pass, struct model_sub *s,
			     const struct mmn_range *range, unsigned long cur_seq)
{
	struct mmn_stats st;
	const char *err;
	struct plan *p;
	int index = plan_next;

	MCHECK(plan_next < nr_plans, "unexpected %s of sub %d (the model expected %d callbacks)",
	       finish_pass ? "finish" : "first pass", s->id, nr_plans);
	p = &plans[plan_next++];
	MCHECK(p->finish_pass == finish_pass && p->sub == s->id,
	       "callback %d: got %s of sub %d, expected %s of sub %d", index,
	       finish_pass ? "finish" : "first pass", s->id,
	       p->finish_pass ? "finish" : "first pass", p->sub);
	MCHECK(mmn_test_in_callback(model.mm), "callback %d: not seen as inside a callback", index);
	if (!finish_pass) {
		MCHECK(cur_seq == p->cur_seq, "callback %d: cur_seq %#lx, expected %#lx",
		       index, cur_seq, p->cur_seq);
		MCHECK(range->mm == model.mm, "callback %d: wrong range->mm", index);
		MCHECK(mmn_range_blockable(range) == p->blockable,
		       "callback %d: blockable %d, expected %d", index,
		       mmn_range_blockable(range), p->blockable);
		if (p->range) {
			MCHECK(range == p->range, "callback %d: not the caller's range", index);
		} else {
			MCHECK(range->start == 0 && range->end == ULONG_MAX &&
			       range->event == MMN_EVENT_RELEASE && !range->owner,
			       "callback %d: release range [%#lx, %#lx) event %d", index,
			       range->start, range->end, range->event);
		}
	}
	MCHECK(mmn_mm_get_stats(model.mm, &st) == 0, "get_stats failed");
	check_stats(&st, &p->stats, "inside a callback");
	err = mmn_mm_test_check(model.mm);
	MCHECK(err == NULL, "callback %d: mmn_mm_test_check: %s", index, err);
	if (cfg.trace)
		trace_callback(index, p);
	return p;
}

static void cb_action(struct plan *p)
{
	struct model_sub *a = &model_subs[p->act_sub];
	long got = 0;

	switch (p->act) {
	case ACT_NONE:
		return;
	case ACT_INSERT:
		got = mmn_interval_notifier_insert(&a->sub, model.mm, p->a_start, p->a_len,
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

		mmn_range_init(r, MMN_EVENT_CLEAR, 0, model.mm, p->a_start, p->a_len);
		got = p->a_flag ? mmn_invalidate_range_start(r) :
				  mmn_invalidate_range_start_nonblock(r);
		if (!got)
			mmn_invalidate_range_end(r);
		break;
	}
	case ACT_RELEASE:
		mmn_mm_release(model.mm);
		break;
	}
	MCHECK(got == p->act_expect, "action %d on sub %d from callback %ld: got %ld, expected %ld",
	       p->act, p->act_sub, (long)(p - plans), got, p->act_expect);
}

static bool cb_invalidate(struct mmn_interval_notifier *sub,
			  const struct mmn_range *range, unsigned long cur_seq)
{
	struct model_sub *s = mmn_container_of(sub, struct model_sub, sub);
	struct plan *p = cb_enter(false, s, range, cur_seq);

	MCHECK(!s->two_pass, "invalidate called on a two-pass sub %d", s->id);
	if (p->set_seq)
		mmn_interval_set_seq(sub, cur_seq);
	cb_action(p);
	return p->ret;
}

static bool cb_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		     unsigned long cur_seq, struct mmn_finish **finish)
{
	struct model_sub *s = mmn_container_of(sub, struct model_sub, sub);
	struct plan *p = cb_enter(false, s, range, cur_seq);

	MCHECK(s->two_pass, "invalidate_start called on a single-pass sub %d", s->id);
	MCHECK(*finish == NULL, "*finish not NULL on entry");
	if (p->set_seq)
		mmn_interval_set_seq(sub, cur_seq);
	cb_action(p);
	if (p->finish == 1) {
		struct fin *f = malloc(sizeof(*f));

		MCHECK(f != NULL, "out of memory");
		f->magic = FIN_MAGIC;
		f->sub = s->id;
		f->creator = (int)(p - plans);
		f->f.next = (struct mmn_finish *)(uintptr_t)0xbad1;	/* the core's */
		f->f.notifier = (struct mmn_interval_notifier *)(uintptr_t)0xbad2;
		*finish = &f->f;
	} else if (p->finish == 2) {
		*finish = &decoy.f;	/* with false: must be ignored */
		model_cov.decoys++;
	}
	return p->ret;
}

static void cb_finish(struct mmn_finish *finish)
{
	struct fin *f = mmn_container_of(finish, struct fin, f);
	struct model_sub *s;
	struct plan *p;

	MCHECK(f != &decoy, "the finish returned with false was called");
	MCHECK(f->magic == FIN_MAGIC, "finish: not a live container");
	MCHECK(f->sub >= 0 && f->sub < cfg.nr_subs && finish->notifier == &model_subs[f->sub].sub,
	       "finish->notifier not set to the sub (sub %d)", f->sub);
	s = mmn_container_of(finish->notifier, struct model_sub, sub);
	p = cb_enter(true, s, NULL, 0);
	MCHECK(f->creator == p->creator, "finish of first pass %d, expected %d",
	       f->creator, p->creator);
	cb_action(p);
	f->magic = 0;
	free(f);	/* D3: the finish may free its container */
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
		return rand64();
	case 13:
		return BASE;
	case 14:
		return 0;
	case 15:
		return ULONG_MAX;
	default: {
		/* An equal start. */
		struct model_sub *s = &model_subs[pick_sub()];

		return s->state != MS_NONE ? s->start : BASE + below(SLOTS) * PAGE;
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
	const char *err = mmn_mm_test_check(model.mm);

	MCHECK(err == NULL, "mmn_mm_test_check: %s", err);
	MCHECK(plan_next == nr_plans, "%d callbacks ran, the model expected %d",
	       plan_next, nr_plans);
	MCHECK(mmn_mm_get_stats(model.mm, &st) == 0, "get_stats failed");
	check_stats(&st, &exp, "after the operation");
	MCHECK(seen_err == model.log_err, "%lu error reports, expected %lu", seen_err,
	       model.log_err);
	MCHECK(seen_warn == model.log_warn, "%lu warnings reported, expected %lu", seen_warn,
	       model.log_warn);
	for (int i = 0; i < cfg.nr_subs; i++) {
		struct model_sub *s = &model_subs[i];
		bool in_tree = s->state == MS_IN_TREE || s->state == MS_PENDING_REMOVE;

		MCHECK(mmn_interval_notifier_test_in_tree(&s->sub) == in_tree,
		       "sub %d: in tree %d, model: %s", i,
		       mmn_interval_notifier_test_in_tree(&s->sub), state_name(s->state));
		MCHECK(!mmn_interval_read_retry(&s->sub, s->seq),
		       "sub %d: its seq is not the model's %#lx", i, s->seq);
		MCHECK(!mmn_interval_check_retry(&s->sub, s->seq),
		       "sub %d: check_retry disagrees with read_retry", i);
		if (s->state == MS_NONE)
			continue;
		MCHECK(mmn_interval_notifier_start(&s->sub) == s->start &&
		       mmn_interval_notifier_last(&s->sub) == s->last,
		       "sub %d: interval [%#lx, %#lx], model [%#lx, %#lx]", i,
		       mmn_interval_notifier_start(&s->sub),
		       mmn_interval_notifier_last(&s->sub), s->start, s->last);
		MCHECK(mmn_interval_notifier_mm(&s->sub) == model.mm, "sub %d: wrong mm", i);
	}
	MCHECK(!mmn_test_in_callback(model.mm), "outside any callback, yet seen inside one");
}

/* ---- operations ------------------------------------------------------------ */

static unsigned long period_ends_before;

static void begin_op(void)
{
	nr_plans = 0;
	plan_next = 0;
	nr_nested = 0;
	period_ends_before = model.period_ends;
	model.op_desc[0] = 0;
	op_traced = false;
	stream = MODEL_STREAM_OPS;
}

/* After the library call: a period that ended lets every waiting call go. */
static void end_op(void)
{
	if (model.period_ends != period_ends_before && cfg.period_ended)
		cfg.period_ended();
	if ((unsigned long)nr_plans > model_cov.max_callbacks)
		model_cov.max_callbacks = (unsigned long)nr_plans;
	check_all();
	trace_op();
	memcpy(recent[model.op_no % RECENT], model.op_desc, sizeof(model.op_desc));
	model.op_no++;
}

/*
 * Choices, in order: the notifier (below(5): 0-3 a free one, 4 any), the
 * address and length (rand_addr, rand_len), two-pass (below(2)), then now
 * and then an argument that must be refused (below(24): 20-23).
 */
static void op_insert(void)
{
	int id = below(5) < 4 ? pick_sub_in_state(MS_NONE) : pick_sub();
	const struct mmn_interval_notifier_ops *ops;
	unsigned long start, len;
	bool two;
	long expect, got;
	int bad = -1;

	if (id < 0)
		id = pick_sub();
	start = rand_addr();
	len = rand_len(start);
	two = below(2);
	ops = two ? &two_ops : &single_ops;
	/* In the documented order of the checks. */
	switch (below(24)) {
	case 20:
		bad = (int)below(ARRAY_SIZE(bad_ops));
		ops = &bad_ops[bad];
		break;
	case 21:
		len = 0;
		break;
	case 22:
		start = ULONG_MAX - below(PAGE);
		len = ULONG_MAX - start + 2 + below(PAGE);	/* wraps */
		if (!len)
			len = 2;
		break;
	case 23:
		len = ULONG_MAX;
		start = 1 + below(PAGE);	/* wraps */
		break;
	default:
		break;
	}
	describe("insert sub %d [%#lx, +%#lx) %s%s", id, start, len,
		 two ? "two-pass" : "single", bad >= 0 ? " bad ops" : "");
	if (bad >= 0)
		expect = -EINVAL;
	else
		expect = model_insert(id, start, len, two);
	describe_more(" -> %ld", expect);
	got = mmn_interval_notifier_insert(&model_subs[id].sub, model.mm, start, len, ops);
	MCHECK(got == expect, "insert returned %ld, expected %ld", got, expect);
	if (expect == -EINVAL)
		model_cov.ins_einval++;
	else if (expect == -EOVERFLOW)
		model_cov.ins_eoverflow++;
	else if (expect == -EBUSY)
		model_cov.ins_ebusy++;
}

/*
 * Choices: below(3): 0-1 one in the tree or pending (below(4): 0-2 in the
 * tree, 3 a pending insert), 2 any notifier; then which.
 */
static void op_remove(void)
{
	int id = -1;
	long expect, got;

	if (below(3) < 2)
		id = pick_sub_in_state(below(4) < 3 ? MS_IN_TREE : MS_PENDING_INSERT);
	if (id < 0)
		id = pick_sub();
	describe("remove sub %d (%s)", id, state_name(model_subs[id].state));
	expect = model_remove(id, false);
	if (expect == WOULD_WAIT) {
		if (cfg.wait_remove && cfg.wait_remove(id)) {
			describe_more(": waits on a helper thread");
			model_remove_waiting(id);
		} else {
			describe_more(": would wait, skipped");
			model_cov.rm_skipped++;
		}
		return;
	}
	describe_more(" -> %ld", expect);
	got = mmn_interval_notifier_remove(&model_subs[id].sub);
	MCHECK(got == expect, "remove returned %ld, expected %ld", got, expect);
}

/*
 * Choices: which free region slot, the range (rand_range), blockable
 * (below(10): 0-6 yes), extra flag bits (below(2)), the event (below(8)),
 * an owner (below(2)).
 */
static void op_open(void)
{
	struct region *r = NULL;
	unsigned long start, end;
	unsigned int extra, nr_free = 0, k;
	enum mmn_event event;
	bool blockable, owner;
	int expect, got;

	for (int i = 0; i < MODEL_MAX_OPEN; i++)
		nr_free += !regions[i].open;
	if (!nr_free) {
		describe("start: no free region slot");
		return;
	}
	k = (unsigned int)below(nr_free);
	for (int i = 0; i < MODEL_MAX_OPEN && !r; i++)
		if (!regions[i].open && k-- == 0)
			r = &regions[i];
	rand_range(&start, &end);
	blockable = below(10) < 7;
	extra = below(2) ? 0x6u : 0;
	event = (enum mmn_event)below(8);
	owner = below(2);
	describe("%s start [%#lx, %#lx) in slot %ld (%lu open)",
		 blockable ? "blockable" : "nonblock", start, end, (long)(r - regions),
		 model.active);
	model_cov.opens++;
	expect = model_walk(&r->range, start, end, blockable, 0);
	describe_more(" -> %d", expect);
	mmn_range_init(&r->range, event, extra, model.mm, start, end);
	r->range.owner = owner ? (void *)&cfg : NULL;
	got = blockable ? mmn_invalidate_range_start(&r->range) :
			  mmn_invalidate_range_start_nonblock(&r->range);
	MCHECK(got == expect, "start returned %d, expected %d", got, expect);
	MCHECK(r->range.flags == (extra | (blockable ? MMN_RANGE_BLOCKABLE : 0)),
	       "range flags %#x after start", r->range.flags);
	r->open = got == 0;
}

/* Choice: which of the open regions, in slot order. */
static void op_close(void)
{
	struct region *r = NULL;
	unsigned int nr_open = 0, k;

	for (int i = 0; i < MODEL_MAX_OPEN; i++)
		nr_open += regions[i].open;
	if (!nr_open) {
		describe("end: no open region");
		return;
	}
	k = (unsigned int)below(nr_open);
	for (int i = 0; i < MODEL_MAX_OPEN && !r; i++)
		if (regions[i].open && k-- == 0)
			r = &regions[i];
	describe("end [%#lx, %#lx) in slot %ld (%lu open)", r->range.start, r->range.end,
		 (long)(r - regions), model.active);
	model_end();
	mmn_invalidate_range_end(&r->range);
	r->open = false;
}

static void op_release(void)
{
	describe("release (%lu open)", model.active);
	model.st.releases++;
	model_walk(NULL, 0, ULONG_MAX, true, 0);
	model_end();
	mmn_mm_release(model.mm);
	model_cov.releases++;
}

/* Choice: which notifier. */
static void op_read_begin(void)
{
	int id = pick_sub();
	struct model_sub *s = &model_subs[id];
	unsigned long expect, got;
	bool wait;

	describe("read_begin sub %d (%s)", id, state_name(s->state));
	expect = model_read_begin(id, &wait);
	if (wait) {
		if (!cfg.wait_read_begin || !cfg.wait_read_begin(id, expect)) {
			describe_more(": would wait, skipped");
			model_cov.rb_skipped++;
			return;
		}
		describe_more(": waits on a helper thread");
		model.st.read_begin_waits++;
		model_cov.rb_waited++;
	} else {
		describe_more(" -> %#lx", expect);
		got = mmn_interval_read_begin(&s->sub);
		MCHECK(got == expect, "read_begin returned %#lx, expected %#lx", got, expect);
		model_cov.rb_direct++;
	}
	s->saved_seq = expect;
}

/* Choices: which notifier, which value (below(4): 0-1 saved, 2 current, 3 random). */
static void op_retry(void)
{
	int id = pick_sub();
	struct model_sub *s = &model_subs[id];
	unsigned long seq;

	switch (below(4)) {
	case 2:
		seq = s->seq;
		break;
	case 3:
		seq = rand64() | 1;
		break;
	default:
		seq = s->saved_seq;
		break;
	}
	describe("read_retry sub %d seq %#lx (model: %#lx)", id, seq, s->seq);
	MCHECK(mmn_interval_read_retry(&s->sub, seq) == (s->seq != seq), "read_retry");
	MCHECK(mmn_interval_check_retry(&s->sub, seq) == (s->seq != seq), "check_retry");
	MCHECK(mmn_interval_read_retry(NULL, seq), "read_retry(NULL)");
	MCHECK(mmn_interval_check_retry(NULL, seq), "check_retry(NULL)");
}

/* Choices: below(4): 0-2 a preset (which, below(5)), 3 any 64-bit value. */
static void op_set_seq(void)
{
	static const unsigned long presets[] = {
		ULONG_MAX - 1, ULONG_MAX - 3, ULONG_MAX - 5, 0, 2,
	};
	unsigned long seq = below(4) < 3 ? presets[below(ARRAY_SIZE(presets))] : rand64();
	int expect = model.active || (seq & 1) ? -EBUSY : 0;

	describe("test_set_seq %#lx -> %d", seq, expect);
	MCHECK(mmn_mm_test_set_seq(model.mm, seq) == expect, "test_set_seq");
	if (!expect)
		model.seq = seq;
	model_cov.set_seq += !expect;
}

/* Calls that must be refused, or only counted. Choice: which (below(8)). */
static void op_misc(void)
{
	struct mmn_range r;
	struct mmn_stats st;
	struct mmn_mm *mm = NULL;
	unsigned long s;

	switch (below(8)) {
	case 0:
		s = rand_addr();
		describe("empty and NULL ranges");
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0x4, model.mm, s, s && below(2) ? s - 1 : s);
		MCHECK(mmn_invalidate_range_start(&r) == -EINVAL, "empty range");
		MCHECK(mmn_invalidate_range_start_nonblock(&r) == -EINVAL, "empty range");
		MCHECK(r.flags == 0x4, "flags changed by a refused start");
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0, NULL, 0, 1);
		MCHECK(mmn_invalidate_range_start(&r) == -EINVAL, "NULL mm");
		MCHECK(mmn_invalidate_range_start_nonblock(&r) == -EINVAL, "NULL mm");
		MCHECK(mmn_invalidate_range_start(NULL) == -EINVAL, "NULL range");
		MCHECK(mmn_invalidate_range_start_nonblock(NULL) == -EINVAL, "NULL range");
		break;
	case 1:
		describe("NULL arguments");
		MCHECK(mmn_mm_get_stats(NULL, &st) == -EINVAL, "get_stats(NULL, st)");
		MCHECK(mmn_mm_get_stats(model.mm, NULL) == -EINVAL, "get_stats(mm, NULL)");
		MCHECK(mmn_mm_new(NULL) == -EINVAL, "mm_new(NULL)");
		MCHECK(mmn_mm_destroy(mm) == 0, "destroy(NULL)");
		MCHECK(mmn_interval_notifier_remove(NULL) == -EINVAL, "remove(NULL)");
		MCHECK(mmn_interval_notifier_insert(NULL, model.mm, 0, 1, &single_ops) == -EINVAL,
		       "insert(NULL sub)");
		MCHECK(mmn_interval_notifier_insert(&model_subs[0].sub, NULL, 0, 0, &single_ops) ==
		       -EINVAL, "insert(NULL mm)");
		MCHECK(mmn_interval_notifier_insert(&model_subs[0].sub, model.mm, 0, 0, NULL) ==
		       -EINVAL, "insert(NULL ops)");
		break;
	case 2:
		describe("reports without a domain");
		MCHECK(mmn_interval_read_begin(NULL) == 1, "read_begin(NULL)");
		mmn_invalidate_range_end(NULL);
		mmn_mm_release(NULL);
		model.log_err += 3;
		break;
	case 3:
		if (model.active || !cfg.allow_warn)
			break;
		describe("end without an open region");
		mmn_range_init(&r, MMN_EVENT_UNMAP, 0, model.mm, 0, 1);
		model_end();
		mmn_invalidate_range_end(&r);
		break;
	case 4:
		op_set_seq();
		break;
	case 5:
		if (!(model.notifiers || model.active || model.nr_deferred))
			break;
		describe("destroy a busy domain");
		MCHECK(mmn_mm_destroy(model.mm) == -EBUSY, "destroy while busy");
		break;
	default:
		s = rand_addr();
		describe("range_init");
		memset(&r, 0xa5, sizeof(r));
		mmn_range_init(&r, MMN_EVENT_MIGRATE, 0x2, model.mm, s, s + 1);
		MCHECK(r.mm == model.mm && r.start == s && r.end == s + 1 && r.flags == 0x2 &&
		       r.event == MMN_EVENT_MIGRATE && r.owner == NULL, "range_init");
		break;
	}
}

static void new_domain(void)
{
	MCHECK(mmn_mm_new(&model.mm) == 0, "mmn_mm_new");
	model.seq = 2;
	model.active = 0;
	model.notifiers = 0;
	model.nr_deferred = 0;
	memset(&model.st, 0, sizeof(model.st));
}

/* Close every region (in the order chosen), remove every notifier, check idle. */
static void drain(bool destroy)
{
	while (model.active) {
		begin_op();
		op_close();
		end_op();
	}
	for (int i = 0; i < cfg.nr_subs; i++) {
		if (model_subs[i].state == MS_NONE)
			continue;
		begin_op();
		describe("drain: remove sub %d", i);
		MCHECK(model_remove(i, false) == 0, "model: sub %d not removable", i);
		MCHECK(mmn_interval_notifier_remove(&model_subs[i].sub) == 0, "remove");
		end_op();
	}
	MCHECK(model.notifiers == 0 && model.nr_deferred == 0 && !(model.seq & 1),
	       "model not idle");
	if (!destroy)
		return;
	describe("destroy an idle domain");
	MCHECK(mmn_mm_destroy(model.mm) == 0, "destroy");
	model.mm = NULL;
	model_cov.destroys++;
}

void model_init(const struct model_config *config)
{
	cfg = *config;
	if (cfg.nr_subs < 1 || cfg.nr_subs > MODEL_MAX_SUBS)
		cfg.nr_subs = MODEL_MAX_SUBS;
	memset(model_subs, 0, sizeof(model_subs));
	for (int i = 0; i < MODEL_MAX_SUBS; i++)
		model_subs[i].id = i;
	memset(regions, 0, sizeof(regions));
	memset(&model, 0, sizeof(model));
	seen_err = 0;
	seen_warn = 0;
	nr_plans = 0;
	plan_next = 0;
	stream = MODEL_STREAM_OPS;
	mmn_set_log_fn(log_hook, NULL);
	snprintf(model.op_desc, sizeof(model.op_desc), "new domain");
	new_domain();
	check_all();
}

void model_step(enum model_op op)
{
	if (op == MODEL_OP_NEW_DOMAIN) {
		drain(true);
		begin_op();
		describe("new domain");
		new_domain();
		end_op();
		return;
	}
	begin_op();
	switch (op) {
	case MODEL_OP_INSERT:
		op_insert();
		break;
	case MODEL_OP_REMOVE:
		op_remove();
		break;
	case MODEL_OP_OPEN:
		op_open();
		break;
	case MODEL_OP_CLOSE:
		op_close();
		break;
	case MODEL_OP_READ_BEGIN:
		op_read_begin();
		break;
	case MODEL_OP_RETRY:
		op_retry();
		break;
	case MODEL_OP_RELEASE:
		op_release();
		break;
	case MODEL_OP_MISC:
		op_misc();
		break;
	case MODEL_OP_SET_SEQ:
		op_set_seq();
		break;
	default:
		describe("no operation %d", (int)op);
		break;
	}
	end_op();
}

void model_fini(void)
{
	drain(true);
	mmn_set_log_fn(NULL, NULL);
}

void model_print_coverage(FILE *f)
{
	const struct model_cov *c = &model_cov;

	fprintf(f, "  inserts: %lu idle, %lu partial, %lu deferred, %lu from callbacks; "
		"refused: %lu EBUSY, %lu EINVAL, %lu EOVERFLOW\n",
		c->ins_idle, c->ins_partial, c->ins_deferred, c->ins_in_cb, c->ins_ebusy,
		c->ins_einval, c->ins_eoverflow);
	fprintf(f, "  removes: %lu direct, %lu pending inserts, %lu waited, %lu skipped, "
		"%lu EDEADLK, %lu EINVAL\n",
		c->rm_direct, c->rm_pending_insert, c->rm_waited, c->rm_skipped, c->rm_edeadlk,
		c->rm_einval);
	fprintf(f, "  read_begin: %lu direct, %lu waited, %lu skipped, %lu from callbacks, "
		"%lu not inserted\n",
		c->rb_direct, c->rb_waited, c->rb_skipped, c->rb_in_cb, c->rb_not_inserted);
	fprintf(f, "  regions: %lu opened (%lu hit nothing), %lu EAGAIN, %lu nested, "
		"%lu releases (+%lu from callbacks), up to %lu open\n",
		c->opens, c->opens_miss, c->eagain, c->nested, c->releases, c->cb_release,
		c->max_open);
	fprintf(f, "  %lu periods (%lu wrapped to 0), %lu finishes, %lu false on blockable, "
		"%lu decoys, %lu presets, %lu destroys, up to %lu callbacks per call\n",
		c->period_ends, c->wraps, c->finishes, c->false_blockable, c->decoys, c->set_seq,
		c->destroys, c->max_callbacks);
}
