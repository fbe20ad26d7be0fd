// SPDX-License-Identifier: MIT
/*
 * Broadcast: one message to every other live node of the domain.
 *
 * First pass, without blocking: reserve, copy and commit to every target
 * whose ring has room, collecting the wakes that sleeping receivers need;
 * all of them are then issued together (one io_uring_enter with the uring
 * backend). Second pass, per the timeout: the targets whose rings were
 * full, waiting for room one after the other under the shared deadline.
 *
 * Marks: every broadcast takes a number of this node's (n->bcast_seq). A
 * target whose slot says it takes marks (SHMRPC__SLOT_BMARKS) and whose
 * ring takes the message with its mark is counted (copies), at the scan:
 * a counted copy stays counted should it not arrive. A copy goes as a
 * BCAST record {number, copies} only to a counted target that the
 * connection, too, knows to take marks (the incarnation it connected to:
 * a target that came back without the flag since must not get one); every
 * other copy is a plain record.
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
#include "ring.h"
#include "tx.h"

struct bcast {
	char (*names)[SHMRPC_NAME_MAX + 1];
	_Atomic uint32_t **words; /* wakes to issue after the first pass */
	bool *full;
	bool *marked; /* counted in copies: its copy may be marked */
	uint32_t n, nwords;
	struct shmrpc__bcast_rec mark; /* {id, copies, 0} */
};

/* A message of @len bytes fits a ring of @ring_bytes (a slot's word,
 * checked) with its mark. */
static bool mark_fits(uint32_t ring_bytes, size_t len)
{
	return shmrpc__ring_size_ok(ring_bytes) &&
	       len <= shmrpc__ring_max_msg(ring_bytes) - sizeof(struct shmrpc__bcast_rec);
}

static int targets(struct shmrpc_node *n, struct bcast *b, size_t len)
{
	uint32_t i, hi = shmrpc__reg_hi(n->reg), cap = 0;
	struct shmrpc__slot_view v;
	void *p;

	for (i = 0; i < hi; i++) {
		if (i == n->slot || shmrpc__reg_read(n->reg, i, &v) || v.state != SHMRPC__SLOT_LIVE)
			continue;
		if (b->n == cap) {
			cap = cap ? cap * 2 : 16;
			p = realloc(b->names, cap * sizeof(*b->names));
			if (!p)
				return -ENOMEM;
			b->names = p;
			p = realloc(b->marked, cap * sizeof(*b->marked));
			if (!p)
				return -ENOMEM;
			b->marked = p;
		}
		b->marked[b->n] = (v.flags & SHMRPC__SLOT_BMARKS) && mark_fits(v.ring_bytes, len);
		b->mark.copies += b->marked[b->n];
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
	size_t mark = 0;
	int rc;

	rc = shmrpc__conn_acquire(n, b->names[k], t, &c);
	if (!rc) {
		/* Under c's lock: its ring, as the receiver made it. */
		if (b->marked[k] && c->bmarks &&
		    len + sizeof(b->mark) <= shmrpc__ring_max_msg(c->q.size))
			mark = sizeof(b->mark);
		rc = shmrpc__reserve_locked(n, c, mark + len, &tx, t);
	}
	if (rc)
		return rc == -EAGAIN && t->ms == 0 ? 0 : rc;
	if (mark)
		memcpy(tx.data, &b->mark, mark);
	if (len)
		memcpy((char *)tx.data + mark, data, len);
	w = shmrpc__commit_nowake_flags(n, &tx, mark + len, mark ? SHMRPC__REC_BCAST : 0);
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
	/* Relaxed: only distinct numbers matter, and their order per thread. */
	b.mark.id = atomic_fetch_add_explicit(&n->bcast_seq, 1, memory_order_relaxed);
	if (!b.mark.id) /* 0 says "no mark": after 2^63 broadcasts, at the earliest */
		b.mark.id = atomic_fetch_add_explicit(&n->bcast_seq, 1, memory_order_relaxed);
	rc = targets(n, &b, len);
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
	free(b.marked);
	free(b.words);
	free(b.full);
	if (rc)
		return rc;
	/* -EMSGSIZE only when it fits no target's ring at all. A target that
	 * could not be connected (a full /dev/shm: -ENOSPC) is not counted; the
	 * next broadcast tries it again. */
	return SHMRPC__RET(!sent && too_big && !fits ? -EMSGSIZE : sent);
}
