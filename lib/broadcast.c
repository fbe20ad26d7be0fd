// SPDX-License-Identifier: MIT
/*
 * Broadcast: one message to every other live node of the domain.
 *
 * First pass, without blocking: reserve, copy and commit to every target
 * whose ring has room, collecting the wakes that sleeping receivers need;
 * all of them are then issued together (one io_uring_enter with the uring
 * backend). Second pass, per the timeout: the targets whose rings were
 * full, waiting for room one after the other under the shared deadline.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct bcast {
	struct shmrpc__conn **c;
	_Atomic uint32_t **words; /* wakes to issue after the first pass */
	bool *full;
	uint32_t n, nwords;
};

static int targets(struct shmrpc_node *n, struct bcast *b)
{
	uint32_t i, hi = shmrpc__reg_hi(&n->reg), cap = 0;
	struct shmrpc__slot_view v;

	for (i = 0; i < hi; i++) {
		if (i == n->slot || shmrpc__reg_read(&n->reg, i, &v) ||
		    v.state != SHMRPC__SLOT_LIVE)
			continue;
		if (b->n == cap) {
			cap = cap ? cap * 2 : 16;
			void *p = realloc(b->c, cap * sizeof(*b->c));

			if (!p)
				return -ENOMEM;
			b->c = p;
		}
		if (!shmrpc__conn_get(n, v.name, &b->c[b->n]))
			b->n++;
	}
	b->words = calloc(b->n + 1, sizeof(*b->words));
	b->full = calloc(b->n + 1, sizeof(*b->full));
	return b->words && b->full ? 0 : -ENOMEM;
}

/* One target, under its lock: 1 sent, 0 full (first pass), -errno. */
static int one(struct shmrpc_node *n, struct bcast *b, uint32_t k, const void *data, size_t len,
	       int timeout_ms, int64_t deadline)
{
	struct shmrpc_txbuf tx;
	_Atomic uint32_t *w;
	int rc;

	/* reserve_conn consumes a reference: lend it one of ours. */
	atomic_fetch_add_explicit(&b->c[k]->refs, 1, memory_order_relaxed);
	rc = shmrpc__reserve_conn(n, b->c[k], len, &tx, timeout_ms, deadline);
	if (rc)
		return rc == -EAGAIN && timeout_ms == 0 ? 0 : rc;
	if (len)
		memcpy(tx.data, data, len);
	w = shmrpc__commit_nowake(n, &tx, len);
	shmrpc__conn_put(n, b->c[k]); /* ours still holds it mapped */
	if (w && timeout_ms == 0)
		b->words[b->nwords++] = w;
	else if (w)
		n->be->wake(n, &w, 1);
	return 1;
}

int shmrpc_broadcast(struct shmrpc_node *n, const void *data, size_t len, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct bcast b = { 0 };
	int64_t deadline;
	int rc, sent = 0, too_big = 0;
	uint32_t k;

	if (!n || (!data && len) || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	deadline = shmrpc__deadline(timeout_ms);
	rc = targets(n, &b);
	for (k = 0; !rc && k < b.n; k++) {
		int r = one(n, &b, k, data, len, 0, deadline);

		sent += r > 0;
		b.full[k] = r == 0;
		too_big += r == -EMSGSIZE;
	}
	if (b.nwords)
		n->be->wake(n, b.words, b.nwords);
	for (k = 0; !rc && timeout_ms != 0 && k < b.n; k++)
		if (b.full[k])
			sent += one(n, &b, k, data, len, timeout_ms, deadline) > 0;
	for (k = 0; k < b.n; k++)
		shmrpc__conn_put(n, b.c[k]);
	free(b.c);
	free(b.words);
	free(b.full);
	if (rc)
		return rc;
	/* -EMSGSIZE only if it fits no target's ring: a target that refused
	 * it as full (or left) could have taken it, so that is 0 sent. */
	return b.n && too_big == (int)b.n ? -EMSGSIZE : sent;
}
