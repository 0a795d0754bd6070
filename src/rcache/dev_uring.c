// SPDX-License-Identifier: MIT
/*
 * The io_uring device: registrations are fixed buffers of one ring.
 *
 * The ring gets a sparse buffer table at creation. Registering fills a free
 * slot (IORING_REGISTER_BUFFERS_UPDATE with the range and a tag): the kernel
 * pins the pages, and every READ_FIXED/WRITE_FIXED with that buf_index
 * reaches those pages, whatever is mapped at the address later. That is the
 * stale-pin hazard a registration cache exists to prevent.
 *
 * Deregistration has two natural passes. The start empties the slot; the
 * kernel drops its pin once no request in flight still uses the buffer, and
 * then posts a completion whose user_data is the buffer's tag. The finish
 * waits for that completion. Completions are reaped under the device lock by
 * whoever waits for one (a finish, or a read through the device); each is
 * recorded where its waiter will look.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mmn/rcache.h>

#ifdef MMN_HAVE_LIBURING

#include <liburing.h>

#define IO_BIT (UINT64_C(1) << 63)	/* user_data of reads; tags never have it */
#define SLOT_BITS 20
#define SLOT_MASK ((UINT64_C(1) << SLOT_BITS) - 1)

struct mmn_rcache_uring {
	struct io_uring ring;
	pthread_mutex_t lock;
	unsigned int nslots;
	unsigned int nfree;
	unsigned int *free_slots;
	uint64_t *released;		/* per slot: the last tag the kernel posted */
	uint64_t next_gen;
	unsigned long live;
	uint64_t io_seq;		/* the read in flight */
	bool io_done;
	int io_res;
};

/* Reap one completion, blocking. Lock held. */
static int ur_reap_locked(struct mmn_rcache_uring *u)
{
	struct io_uring_cqe *cqe;
	int err = io_uring_wait_cqe(&u->ring, &cqe);

	if (err)
		return err;
	if (cqe->user_data & IO_BIT) {
		if (cqe->user_data == (IO_BIT | u->io_seq)) {
			u->io_res = cqe->res;
			u->io_done = true;
		}
	} else if (cqe->user_data) {
		uint64_t slot = cqe->user_data & SLOT_MASK;

		if (slot < u->nslots)
			u->released[slot] = cqe->user_data;
	}
	io_uring_cqe_seen(&u->ring, cqe);
	return 0;
}

static int ur_reg(void *dev, unsigned long start, unsigned long length, void *priv)
{
	struct mmn_rcache_uring *u = dev;
	struct mmn_rcache_uring_reg *r = priv;
	struct iovec iov = { .iov_base = (void *)start, .iov_len = length };
	unsigned int slot;
	__u64 tag;
	int ret;

	pthread_mutex_lock(&u->lock);
	if (!u->nfree) {
		pthread_mutex_unlock(&u->lock);
		return -ENOSPC;
	}
	slot = u->free_slots[--u->nfree];
	tag = (++u->next_gen << SLOT_BITS) | slot;
	ret = io_uring_register_buffers_update_tag(&u->ring, slot, &iov, &tag, 1);
	if (ret < 0) {
		u->free_slots[u->nfree++] = slot;
		pthread_mutex_unlock(&u->lock);
		return ret;
	}
	r->slot = slot;
	r->tag = tag;
	u->live++;
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static void ur_dereg_start(void *dev, void *priv)
{
	struct mmn_rcache_uring *u = dev;
	struct mmn_rcache_uring_reg *r = priv;
	struct iovec iov = { 0 };
	__u64 tag = 0;

	pthread_mutex_lock(&u->lock);
	/* The old buffer's tag completes once the kernel has let go of its pages. */
	if (io_uring_register_buffers_update_tag(&u->ring, r->slot, &iov, &tag, 1) < 0)
		u->released[r->slot] = r->tag;	/* nothing to wait for */
	pthread_mutex_unlock(&u->lock);
}

static void ur_dereg_finish(void *dev, void *priv)
{
	struct mmn_rcache_uring *u = dev;
	struct mmn_rcache_uring_reg *r = priv;

	pthread_mutex_lock(&u->lock);
	while (u->released[r->slot] != r->tag)
		if (ur_reap_locked(u))
			break;
	u->free_slots[u->nfree++] = r->slot;
	u->live--;
	pthread_mutex_unlock(&u->lock);
}

static const struct mmn_rcache_dev_ops ur_ops = {
	.reg = ur_reg,
	.dereg_start = ur_dereg_start,
	.dereg_finish = ur_dereg_finish,
};

int mmn_rcache_uring_new(unsigned int slots, struct mmn_rcache_uring **up)
{
	struct mmn_rcache_uring *u;
	int err;

	if (!up || !slots || slots > SLOT_MASK)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->free_slots = calloc(slots, sizeof(*u->free_slots));
	u->released = calloc(slots, sizeof(*u->released));
	if (!u->free_slots || !u->released) {
		err = -ENOMEM;
		goto fail;
	}
	err = io_uring_queue_init(64, &u->ring, 0);
	if (err)
		goto fail;
	err = io_uring_register_buffers_sparse(&u->ring, slots);
	if (err) {
		io_uring_queue_exit(&u->ring);
		goto fail;
	}
	pthread_mutex_init(&u->lock, NULL);
	u->nslots = slots;
	for (unsigned int i = 0; i < slots; i++)
		u->free_slots[u->nfree++] = slots - 1 - i;
	*up = u;
	return 0;
fail:
	free(u->free_slots);
	free(u->released);
	free(u);
	return err;
}

void mmn_rcache_uring_destroy(struct mmn_rcache_uring *u)
{
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	pthread_mutex_destroy(&u->lock);
	free(u->free_slots);
	free(u->released);
	free(u);
}

void mmn_rcache_uring_dev(struct mmn_rcache_uring *u, struct mmn_rcache_dev *dev)
{
	*dev = (struct mmn_rcache_dev){
		.name = "io_uring",
		.ops = &ur_ops,
		.dev = u,
		.priv_size = sizeof(struct mmn_rcache_uring_reg),
	};
}

long mmn_rcache_uring_read_fixed(struct mmn_rcache_uring *u, const struct mmn_rcache_uring_reg *r,
				 int fd, void *buf, unsigned int len, uint64_t offset)
{
	struct io_uring_sqe *sqe;
	long res;
	int err;

	if (!u || !r)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		pthread_mutex_unlock(&u->lock);
		return -EBUSY;
	}
	io_uring_prep_read_fixed(sqe, fd, buf, len, offset, (int)r->slot);
	sqe->user_data = IO_BIT | ++u->io_seq;
	u->io_done = false;
	err = io_uring_submit(&u->ring);
	if (err < 0) {
		pthread_mutex_unlock(&u->lock);
		return err;
	}
	while (!u->io_done) {
		err = ur_reap_locked(u);
		if (err) {
			pthread_mutex_unlock(&u->lock);
			return err;
		}
	}
	res = u->io_res;
	pthread_mutex_unlock(&u->lock);
	return res;
}

unsigned long mmn_rcache_uring_live(struct mmn_rcache_uring *u)
{
	unsigned long n;

	pthread_mutex_lock(&u->lock);
	n = u->live;
	pthread_mutex_unlock(&u->lock);
	return n;
}

#else /* !MMN_HAVE_LIBURING */

int mmn_rcache_uring_new(unsigned int slots, struct mmn_rcache_uring **up)
{
	(void)slots;
	(void)up;
	return -ENOSYS;
}

void mmn_rcache_uring_destroy(struct mmn_rcache_uring *u)
{
	(void)u;
}

void mmn_rcache_uring_dev(struct mmn_rcache_uring *u, struct mmn_rcache_dev *dev)
{
	(void)u;
	memset(dev, 0, sizeof(*dev));
}

long mmn_rcache_uring_read_fixed(struct mmn_rcache_uring *u, const struct mmn_rcache_uring_reg *r,
				 int fd, void *buf, unsigned int len, uint64_t offset)
{
	(void)u;
	(void)r;
	(void)fd;
	(void)buf;
	(void)len;
	(void)offset;
	return -ENOSYS;
}

unsigned long mmn_rcache_uring_live(struct mmn_rcache_uring *u)
{
	(void)u;
	return 0;
}

#endif
