// SPDX-License-Identifier: MIT
/*
 * The "futex" wake backend: plain system calls, for kernels where io_uring
 * is missing, disabled or filtered.
 *
 * The receiver sleeps in one futex_waitv(2) on its node's bell and on the
 * data_seq words of its first FUTEX_WAITV_MAX - 1 inbound rings; rings
 * beyond that are armed in bell mode (lib/wake.c), so their producers ring
 * the bell. On kernels before 5.16 (no futex_waitv) every ring is in bell
 * mode and the receiver sleeps in futex(2) on the bell alone. Wakes are one
 * FUTEX_WAKE each.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

struct futex_be {
	struct futex_waitv wv[FUTEX_WAITV_MAX];
};

static bool have_waitv(void)
{
	/* An empty vector is -EINVAL where the call exists. */
	return syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0) < 0 && errno != ENOSYS;
}

static int futex_init(struct shmrpc_node *n)
{
	struct futex_be *fb = calloc(1, sizeof(*fb));

	if (!fb)
		return -ENOMEM;
	n->be_priv = fb;
	n->ring_words = have_waitv() ? FUTEX_WAITV_MAX - 1 : 0;
	return 0;
}

static void futex_fini(struct shmrpc_node *n)
{
	free(n->be_priv);
	n->be_priv = NULL;
}

static int futex_ring_add(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	(void)n;
	(void)r;
	return 0; /* the wait vector is rebuilt at every sleep */
}

static void futex_ring_del(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	(void)n;
	(void)r;
}

static void wv_set(struct futex_waitv *w, _Atomic uint32_t *word, uint32_t val)
{
	w->val = val;
	w->uaddr = (uintptr_t)word;
	w->flags = FUTEX_32; /* FUTEX2_SIZE_U32, shared: never FUTEX2_PRIVATE */
	w->__reserved = 0;
}

static int futex_sleep(struct shmrpc_node *n, int64_t deadline)
{
	struct futex_be *fb = n->be_priv;
	struct timespec ts, *tsp = NULL;
	uint32_t i, nr = 1;
	long rc;

	if (!n->ring_words)
		return shmrpc__futex_wait(&n->seg->bell, n->bell_armed, deadline);
	wv_set(&fb->wv[0], &n->seg->bell, n->bell_armed);
	for (i = 0; i < n->in.n && !n->in.v[i]->bell_mode; i++)
		wv_set(&fb->wv[nr++], &n->in.v[i]->q.hdr->data_seq, n->in.v[i]->armed);
	if (deadline != SHMRPC__NEVER) {
		shmrpc__ts_from_ns(&ts, deadline);
		tsp = &ts;
	}
	rc = syscall(SYS_futex_waitv, fb->wv, nr, 0, tsp, CLOCK_MONOTONIC);
	if (rc >= 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

static void futex_wake(struct shmrpc_node *n, _Atomic uint32_t *const *words, unsigned nr)
{
	unsigned i;

	(void)n;
	for (i = 0; i < nr; i++)
		shmrpc__futex_wake(words[i]);
}

const struct shmrpc__backend shmrpc__backend_futex = {
	.name = "futex",
	.id = SHMRPC__BACKEND_FUTEX,
	.init = futex_init,
	.fini = futex_fini,
	.ring_add = futex_ring_add,
	.ring_del = futex_ring_del,
	.sleep = futex_sleep,
	.wake = futex_wake,
};
