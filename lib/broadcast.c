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

#include "backend.h"
#include "clock.h"
#include "connect.h"
#include "conntab.h"
#include "error.h"
#include "layout.h"
#include "node_types.h"
#include "registry.h"
#include "tx.h"

struct bcast {
	char (*names)[SHMRPC_NAME_MAX + 1];
	_Atomic uint32_t **words; /* wakes to issue after the first pass */
	bool *full;
	uint32_t n, nwords;
};

static int targets(struct shmrpc_node *n, struct bcast *b)
{
	uint32_t i, hi = shmrpc__reg_hi(n->reg), cap = 0;
	struct shmrpc__slot_view v;

	for (i = 0; i < hi; i++) {
		if (i == n->slot || shmrpc__reg_read(n->reg, i, &v) || v.state != SHMRPC__SLOT_LIVE)
			continue;
		if (b->n == cap) {
			void *p;

			cap = cap ? cap * 2 : 16;
			p = realloc(b->names, cap * sizeof(*b->names));
			if (!p)
				return -ENOMEM;
			b->names = p;
		}
		memcpy(b->names[b->n++], v.name, sizeof(v.name));
	}
	b->words = calloc(b->n + 1, sizeof(*b->words));
	b->full = calloc(b->n + 1, sizeof(*b->full));
	return b->words && b->full ? 0 : -ENOMEM;
}

/* One target: 1 sent, 0 full (first pass), -errno. */
static int one(struct shmrpc_node *n, struct bcast *b, uint32_t k, const void *data, size_t len,
	       struct shmrpc__tmo *t)
{
	struct shmrpc_txbuf tx;
	struct shmrpc__conn *c;
	_Atomic uint32_t *w;
	int rc;

	rc = shmrpc__conn_acquire(n, b->names[k], t, &c);
	if (!rc)
		rc = shmrpc__reserve_locked(n, c, len, &tx, t);
	if (rc)
		return rc == -EAGAIN && t->ms == 0 ? 0 : rc;
	if (len)
		memcpy(tx.data, data, len);
	w = shmrpc__commit_nowake(n, &tx, len);
	if (w && t->ms == 0)
		b->words[b->nwords++] = w;
	else if (w)
		n->be->wake(n, &w, 1);
	return 1;
}

int shmrpc_broadcast(struct shmrpc_node *n, const void *data, size_t len, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo now = SHMRPC__TMO(0), later = SHMRPC__TMO(timeout_ms);
	struct bcast b = { 0 };
	int rc, sent = 0, fits = 0, too_big = 0;
	uint32_t k;

	if (!n || (!data && len) || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = targets(n, &b);
	for (k = 0; !rc && k < b.n; k++) {
		int r = one(n, &b, k, data, len, &now);

		sent += r > 0;
		b.full[k] = r == 0;
		too_big += r == -EMSGSIZE;
		fits += r != -EMSGSIZE;
	}
	/* One system call with uring. The words may have been unmapped since:
	 * harmless, see shmrpc__commit_nowake. */
	if (b.nwords)
		n->be->wake(n, b.words, b.nwords);
	for (k = 0; !rc && timeout_ms != 0 && k < b.n; k++)
		if (b.full[k])
			sent += one(n, &b, k, data, len, &later) > 0;
	free(b.names);
	free(b.words);
	free(b.full);
	if (rc)
		return rc;
	/* -EMSGSIZE only when it fits no target's ring at all. A target that
	 * could not be connected (a full /dev/shm: -ENOSPC) is not counted; the
	 * next broadcast tries it again. */
	return SHMRPC__RET(!sent && too_big && !fits ? -EMSGSIZE : sent);
}
