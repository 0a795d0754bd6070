// SPDX-License-Identifier: MIT
/*
 * The mlock device: a registration pins its pages with mlock().
 *
 * mlock() does not nest: one munlock() unlocks a page for every registration
 * that covers it. So the device keeps its registrations on a list and a
 * deregistration unlocks only the pages no other registration still covers.
 * Registration and deregistration both run under the device lock, so no
 * registration can lock pages between that check and the munlock().
 *
 * Deregistration is synchronous (munlock returns when the pages are
 * unlocked): dereg_finish is NULL. munlock is not a hooked call, so it is
 * safe inside an unmapping call's callback.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <mmn/rcache.h>

struct ml_reg {
	unsigned long start, end;
	struct ml_reg *prev, *next;
};

struct mmn_rcache_mlock {
	pthread_mutex_t lock;
	struct ml_reg *head;
	unsigned long live;
};

static int ml_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	struct mmn_rcache_mlock *ml = dev;
	struct ml_reg *r = priv;
	int err = 0;

	pthread_mutex_lock(&ml->lock);
	if (mlock((void *)start, length)) {
		err = -errno;
	} else {
		r->start = start;
		r->end = start + length;
		r->prev = NULL;
		r->next = ml->head;
		if (ml->head)
			ml->head->prev = r;
		ml->head = r;
		ml->live++;
	}
	pthread_mutex_unlock(&ml->lock);
	return err;
}

/* Unlock the parts of [s, e) that no registration on the list covers. */
static void ml_unlock_uncovered(struct mmn_rcache_mlock *ml, unsigned long s, unsigned long e)
{
	unsigned long cur = s;

	while (cur < e) {
		unsigned long covered = 0, next = e;

		for (struct ml_reg *x = ml->head; x; x = x->next) {
			if (x->start <= cur && cur < x->end && x->end > covered)
				covered = x->end;
			if (x->start > cur && x->start < next)
				next = x->start;
		}
		if (covered) {
			cur = covered;
			continue;
		}
		munlock((void *)cur, next - cur);
		cur = next;
	}
}

static void ml_dereg_start(void *dev, void *priv)
{
	struct mmn_rcache_mlock *ml = dev;
	struct ml_reg *r = priv;

	pthread_mutex_lock(&ml->lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		ml->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	ml->live--;
	ml_unlock_uncovered(ml, r->start, r->end);
	pthread_mutex_unlock(&ml->lock);
}

static const struct mmn_rcache_dev_ops ml_ops = {
	.reg = ml_reg,
	.dereg_start = ml_dereg_start,
	.dereg_finish = NULL,
};

int mmn_rcache_mlock_new(struct mmn_rcache_mlock **mlp)
{
	struct mmn_rcache_mlock *ml;

	if (!mlp)
		return -EINVAL;
	ml = calloc(1, sizeof(*ml));
	if (!ml)
		return -ENOMEM;
	pthread_mutex_init(&ml->lock, NULL);
	*mlp = ml;
	return 0;
}

void mmn_rcache_mlock_destroy(struct mmn_rcache_mlock *ml)
{
	if (!ml)
		return;
	pthread_mutex_destroy(&ml->lock);
	free(ml);
}

void mmn_rcache_mlock_dev(struct mmn_rcache_mlock *ml, struct mmn_rcache_dev *dev)
{
	*dev = (struct mmn_rcache_dev){
		.name = "mlock",
		.ops = &ml_ops,
		.dev = ml,
		.priv_size = sizeof(struct ml_reg),
	};
}

unsigned long mmn_rcache_mlock_live(struct mmn_rcache_mlock *ml)
{
	unsigned long n;

	pthread_mutex_lock(&ml->lock);
	n = ml->live;
	pthread_mutex_unlock(&ml->lock);
	return n;
}
