// SPDX-License-Identifier: MIT
/*
 * A fixed pool of equal objects with lock-free get and put: the finish
 * containers of the svm driver come from here, because a notifier callback
 * may not allocate (it can run inside free() or a munmap hook).
 *
 * The free objects form a Treiber stack of indices. The head packs a
 * generation tag with the top index, so a get that read a stale "next" (the
 * top was taken and put back meanwhile) fails its compare-and-swap instead of
 * corrupting the stack (the ABA problem).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

#define POOL_ALIGN 64

static size_t pool_stride(size_t obj_size)
{
	return (obj_size + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
}

int mmn_sim_pool_init(struct mmn_sim_pool *pool, unsigned int nr, size_t obj_size)
{
	size_t stride;

	if (!pool || !obj_size)
		return -EINVAL;
	memset(pool, 0, sizeof(*pool));
	stride = pool_stride(obj_size);
	pool->obj_size = stride;
	pool->nr = nr;
	if (!nr)
		return 0;
	pool->objs = aligned_alloc(POOL_ALIGN, stride * nr);
	pool->next = calloc(nr, sizeof(*pool->next));
	if (!pool->objs || !pool->next) {
		free(pool->objs);
		free(pool->next);
		memset(pool, 0, sizeof(*pool));
		return -ENOMEM;
	}
	memset(pool->objs, 0, stride * nr);
	/* Stack: 0 on top, each pointing at the one after it. */
	for (uint32_t i = 0; i < nr; i++)
		pool->next[i] = i + 1 < nr ? i + 2 : 0;
	pool->head = 1;
	pool->nr_free = nr;
	return 0;
}

void mmn_sim_pool_fini(struct mmn_sim_pool *pool)
{
	if (!pool)
		return;
	free(pool->objs);
	free(pool->next);
	memset(pool, 0, sizeof(*pool));
}

void *mmn_sim_pool_get(struct mmn_sim_pool *pool)
{
	uint64_t head = __atomic_load_n(&pool->head, __ATOMIC_ACQUIRE), new;
	uint32_t top;

	do {
		top = (uint32_t)head;
		if (!top)
			return NULL;
		/* May be stale; then the tag in head has moved and the CAS fails. */
		new = ((head >> 32) + 1) << 32 |
		      __atomic_load_n(&pool->next[top - 1], __ATOMIC_RELAXED);
	} while (!__atomic_compare_exchange_n(&pool->head, &head, new, true,
					      __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE));
	__atomic_fetch_sub(&pool->nr_free, 1, __ATOMIC_RELAXED);
	return pool->objs + (size_t)(top - 1) * pool->obj_size;
}

void mmn_sim_pool_put(struct mmn_sim_pool *pool, void *obj)
{
	uint32_t idx = (uint32_t)(((char *)obj - pool->objs) / pool->obj_size);
	uint64_t head = __atomic_load_n(&pool->head, __ATOMIC_RELAXED), new;

	__atomic_fetch_add(&pool->nr_free, 1, __ATOMIC_RELAXED);
	do {
		__atomic_store_n(&pool->next[idx], (uint32_t)head, __ATOMIC_RELAXED);
		new = ((head >> 32) + 1) << 32 | (idx + 1);
		/* Release: the next get of @obj sees what its user wrote. */
	} while (!__atomic_compare_exchange_n(&pool->head, &head, new, true,
					      __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

unsigned int mmn_sim_pool_available(struct mmn_sim_pool *pool)
{
	return __atomic_load_n(&pool->nr_free, __ATOMIC_RELAXED);
}
