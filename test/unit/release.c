// SPDX-License-Identifier: MIT
/*
 * Release, docs/TESTING.md scenario 35, with docs/kernel-map.md D8: mmn_mm_release()
 * runs one RELEASE walk over [0, ULONG_MAX), blockable, with its finish pass;
 * a notifier at ULONG_MAX is never called; notifiers stay inserted, later
 * invalidations still work, release may run again, and mmn_mm_destroy()
 * refuses (-EBUSY) until every notifier is removed.
 */
#include "scenario_util.h"

struct rel_sub {
	struct mmn_interval_notifier sub;
	int id;
	bool ret;
	struct mmn_finish finish;
	int calls, finishes;
	unsigned long cur_seq;
};

static bool rel_start(struct mmn_interval_notifier *sub, const struct mmn_range *range,
		      unsigned long cur_seq, struct mmn_finish **finish)
{
	struct rel_sub *r = mmn_container_of(sub, struct rel_sub, sub);

	r->calls++;
	r->cur_seq = cur_seq;
	ev_add('S', r->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	*finish = &r->finish;
	return r->ret;
}

static void rel_finish(struct mmn_finish *finish)
{
	struct rel_sub *r = mmn_container_of(finish, struct rel_sub, finish);

	r->finishes++;
	ev_add('F', r->id, NULL, 0, finish);
}

static bool rel_invalidate(struct mmn_interval_notifier *sub, const struct mmn_range *range,
			   unsigned long cur_seq)
{
	struct rel_sub *r = mmn_container_of(sub, struct rel_sub, sub);

	r->calls++;
	r->cur_seq = cur_seq;
	ev_add('I', r->id, range, cur_seq, NULL);
	mmn_interval_set_seq(sub, cur_seq);
	return r->ret;
}

static const struct mmn_interval_notifier_ops two_ops = {
	.invalidate_start = rel_start,
	.invalidate_finish = rel_finish,
};
static const struct mmn_interval_notifier_ops one_ops = { .invalidate = rel_invalidate };

static void rel_init(struct rel_sub *r, int id)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->ret = true;
}

/* Every event of the log is a RELEASE call on a blockable [0, ULONG_MAX). */
static void expect_release_events(void)
{
	for (int i = 0; i < ev_count(); i++) {
		if (ev_log[i].kind == 'F')
			continue;
		expect_eq(ev_log[i].event, MMN_EVENT_RELEASE);
		expect_eq_ul(ev_log[i].start, 0);
		expect_eq_ul(ev_log[i].end, ULONG_MAX);
		expect_eq(ev_log[i].flags & MMN_RANGE_BLOCKABLE, MMN_RANGE_BLOCKABLE);
	}
}

TEST(s35_release)
{
	struct rel_sub a, b, all, top, below;
	struct mmn_stats st;
	struct mmn_range range;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	rel_init(&a, 1);
	rel_init(&b, 2);
	rel_init(&all, 3);
	rel_init(&top, 4);
	rel_init(&below, 5);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x10000, 0x1000, &one_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &two_ops), 0);
	/* [0, ULONG_MAX - 1]: the widest interval a range can cover completely. */
	assert_eq(mmn_interval_notifier_insert(&all.sub, mm, 0, ULONG_MAX, &one_ops), 0);
	/* The last byte of the address space: no range ever reaches it. */
	assert_eq(mmn_interval_notifier_insert(&top.sub, mm, ULONG_MAX, 1, &two_ops), 0);
	/* Ends at ULONG_MAX - 1: release reaches it. */
	assert_eq(mmn_interval_notifier_insert(&below.sub, mm, ULONG_MAX - 0x1000, 0x1000,
					       &two_ops), 0);

	ev_reset();
	mmn_mm_release(mm);
	expect_str_eq(ev_str(), "I3 S1 I2 S5 F1 F5");
	expect_release_events();
	expect_eq(top.calls, 0);
	expect_eq(top.finishes, 0);
	expect_eq_ul(a.cur_seq, 3);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.active, 0);
	expect_eq(st.releases, 1);
	expect_eq(st.notifiers_called, 4);
	expect_eq(st.finishes, 2);
	expect_eq(st.warnings, 0);
	/* Still inserted, still in the tree. */
	expect_eq_ul(st.notifiers, 5);
	expect_true(mmn_interval_notifier_test_in_tree(&a.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&b.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&all.sub));
	expect_true(mmn_interval_notifier_test_in_tree(&top.sub));
	expect_eq(mmn_mm_destroy(mm), -EBUSY);

	/* Later invalidations work as before. */
	ev_reset();
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	expect_eq(mmn_invalidate_range_start(&range), 0);
	mmn_invalidate_range_end(&range);
	expect_str_eq(ev_str(), "I3 S1 F1");
	expect_eq(ev_log[0].event, MMN_EVENT_UNMAP);
	expect_eq_ul(stats_of(mm).seq, 6);

	/* Release again: one more walk. */
	ev_reset();
	mmn_mm_release(mm);
	expect_str_eq(ev_str(), "I3 S1 I2 S5 F1 F5");
	expect_release_events();
	st = stats_of(mm);
	expect_eq(st.releases, 2);
	expect_eq_ul(st.seq, 8);

	/* Removal after release works, and only then may the domain go. */
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&all.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&below.sub), 0);
	expect_eq(mmn_mm_destroy(mm), -EBUSY);
	expect_eq(mmn_interval_notifier_remove(&top.sub), 0);
	expect_eq_ptr(mmn_mm_test_check(mm), NULL);
	destroy_mm(mm);
}

/* Release of an empty domain: one region that hits nothing. */
TEST(s35_release_empty)
{
	struct mmn_stats st;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	mmn_mm_release(mm);
	mmn_mm_release(mm);
	st = stats_of(mm);
	expect_eq(st.releases, 2);
	expect_eq_ul(st.seq, 2);
	expect_eq_ul(st.active, 0);
	expect_eq(st.invalidations_hit, 0);
	destroy_mm(mm);
}

/*
 * A false return during release only counts a warning (reported through the
 * log hook with the notifier and the range); the walk goes on and the other
 * finishes run. The false start's finish is not queued.
 */
TEST(s35_release_false_is_a_warning)
{
	struct rel_sub a, b, c;
	struct mmn_mm *mm;
	bool found = false;

	assert_eq(mmn_mm_new(&mm), 0);
	rel_init(&a, 1);
	rel_init(&b, 2);
	rel_init(&c, 3);
	b.ret = false;
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &two_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&b.sub, mm, 0x2000, 0x1000, &two_ops), 0);
	assert_eq(mmn_interval_notifier_insert(&c.sub, mm, 0x3000, 0x1000, &one_ops), 0);
	cap_install();
	ev_reset();
	mmn_mm_release(mm);
	expect_str_eq(ev_str(), "S1 S2 I3 F1");
	expect_eq(stats_of(mm).warnings, 1);
	for (unsigned int i = 0; i < cap_count(); i++)
		if (cap_recs[i].level == MMN_LOG_WARN && cap_recs[i].sub == &b.sub &&
		    cap_recs[i].mm == mm && cap_recs[i].start == 0 &&
		    cap_recs[i].end == ULONG_MAX)
			found = true;
	expect_true(found);
	mmn_set_log_fn(NULL, NULL);
	expect_eq_ul(stats_of(mm).active, 0);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&b.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&c.sub), 0);
	destroy_mm(mm);
}

/*
 * Release while another region is open joins its period (same cur_seq), and
 * the period only ends with the last region; inserts during it are deferred.
 */
TEST(s35_release_joins_open_period)
{
	struct rel_sub a, late;
	struct mmn_range range;
	struct mmn_stats st;
	struct mmn_mm *mm;

	assert_eq(mmn_mm_new(&mm), 0);
	rel_init(&a, 1);
	rel_init(&late, 2);
	assert_eq(mmn_interval_notifier_insert(&a.sub, mm, 0x1000, 0x1000, &two_ops), 0);
	mmn_range_init(&range, MMN_EVENT_UNMAP, 0, mm, 0x1000, 0x2000);
	assert_eq(mmn_invalidate_range_start(&range), 0);
	expect_eq_ul(a.cur_seq, 3);
	expect_eq(mmn_interval_notifier_insert(&late.sub, mm, 0x1000, 0x1000, &one_ops), 0);
	ev_reset();
	mmn_mm_release(mm);
	expect_str_eq(ev_str(), "S1 F1");	/* the deferred insert is not walked */
	expect_eq_ul(a.cur_seq, 3);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 3);
	expect_eq_ul(st.active, 1);
	expect_false(mmn_interval_notifier_test_in_tree(&late.sub));
	mmn_invalidate_range_end(&range);
	st = stats_of(mm);
	expect_eq_ul(st.seq, 4);
	expect_eq_ul(st.active, 0);
	expect_true(mmn_interval_notifier_test_in_tree(&late.sub));
	ev_reset();
	mmn_mm_release(mm);
	expect_str_eq(ev_str(), "S1 I2 F1");
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	expect_eq(mmn_interval_notifier_remove(&late.sub), 0);
	destroy_mm(mm);
}

/* Release with a region open from another thread: no hang, same period. */
struct other {
	struct mmn_mm *mm;
	struct gate go_end;
	bool started, ended;
};

static void *other_main(void *arg)
{
	struct other *o = arg;
	struct mmn_range range;

	mmn_range_init(&range, MMN_EVENT_CLEAR, 0, o->mm, 0x1000, 0x1001);
	if (mmn_invalidate_range_start(&range))
		return (void *)1;
	flag_set(&o->started, true);
	gate_wait(&o->go_end);
	mmn_invalidate_range_end(&range);
	flag_set(&o->ended, true);
	return NULL;
}

TEST(s35_release_with_region_on_other_thread)
{
	struct other o = { .go_end = GATE_INIT };
	struct rel_sub a;
	pthread_t t;
	void *ret = (void *)1;

	assert_eq(mmn_mm_new(&o.mm), 0);
	rel_init(&a, 1);
	assert_eq(mmn_interval_notifier_insert(&a.sub, o.mm, 0x1000, 0x1000, &two_ops), 0);
	assert_eq(pthread_create(&t, NULL, other_main, &o), 0);
	assert_true(wait_until(flag_get(&o.started), WAIT_MS));
	ev_reset();
	mmn_mm_release(o.mm);
	expect_str_eq(ev_str(), "S1 F1");
	expect_eq_ul(ev_log[0].cur_seq, 3);
	expect_eq_ul(stats_of(o.mm).seq, 3);
	gate_open(&o.go_end);
	pthread_join(t, &ret);
	expect_eq_ptr(ret, NULL);
	expect_eq_ul(stats_of(o.mm).seq, 4);
	expect_eq_ul(stats_of(o.mm).active, 0);
	expect_eq(mmn_interval_notifier_remove(&a.sub), 0);
	destroy_mm(o.mm);
}

int main(void)
{
	RUN(s35_release);
	RUN(s35_release_empty);
	RUN(s35_release_false_is_a_warning);
	RUN(s35_release_joins_open_period);
	RUN(s35_release_with_region_on_other_thread);
	return test_report();
}
