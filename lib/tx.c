// SPDX-License-Identifier: MIT
/*
 * The sending side of a connection, under its mutex (conntab.c): reserve
 * room in the receiver's ring, waiting for the receiver to free some per
 * the call's timeout; commit, and find the wake the receiver needs (none
 * while it is awake: lib/wake.c); issue it now, or hold it back for
 * shmrpc_flush (SHMRPC_SEND_DEFER).
 *
 * A full ring makes the sender sleep on the ring's space_seq word until the
 * receiver frees space; the receiver leaving or dying ends the wait with
 * -EPIPE (RX_CLOSED, or its lock found released when a sleep ends at the
 * safety timeout).
 */
#include <errno.h>
#include <stdlib.h>

#include "tx.h"
#include "backend.h"
#include "clock.h"
#include "connect.h"
#include "conntab.h"
#include "counters.h"
#include "futex.h"
#include "layout.h"
#include "node_types.h"
#include "ring.h"
#include "wake.h"
#include "waker.h"

/* Under c->lock: sleep until @len fits, the deadline, or the receiver goes. */
static int tx_wait(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len, struct shmrpc__tmo *t)
{
	_Atomic uint32_t *w = &c->q.hdr->space_seq;
	int64_t until, deadline = shmrpc__tmo_deadline(t);
	uint32_t armed;
	int rc;

	for (;;) {
		if (shmrpc__conn_check_dead(n, c))
			return -EPIPE;
		if (shmrpc__ring_fits(&c->q, len))
			return 0;
		if (shmrpc__now_ns() >= deadline)
			return -ETIMEDOUT;
		armed = shmrpc__wait_arm(w, 0);
		shmrpc__wait_fence();
		if (shmrpc__ring_fits(&c->q, len) ||
		    (atomic_load_explicit(&c->q.hdr->flags, memory_order_relaxed) &
		     SHMRPC__RING_RX_CLOSED)) {
			shmrpc__wait_disarm(w);
			continue;
		}
		atomic_fetch_add_explicit(&n->seg->ctr.sleeps, 1, memory_order_relaxed);
		until = shmrpc__sleep_until(deadline, n->safety_ns);
		rc = shmrpc__futex_wait(w, armed, until);
		shmrpc__wait_disarm(w);
		if (rc == -ETIMEDOUT && until < deadline && shmrpc__conn_peer_gone(n, c))
			return -EPIPE;
	}
}

int shmrpc__tx_reserve(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len, void **buf,
		       struct shmrpc__tmo *t)
{
	int rc;

	rc = shmrpc__ring_reserve(&c->q, len, buf);
	if (rc != -EAGAIN)
		return rc;
	shmrpc__ctr_inc(&c->q.hdr->tx_full, 1);
	if (t->ms == 0)
		return -EAGAIN;
	while ((rc = tx_wait(n, c, len, t)) == 0) {
		rc = shmrpc__ring_reserve(&c->q, len, buf);
		if (rc != -EAGAIN)
			return rc;
	}
	return rc == -ETIMEDOUT ? shmrpc__timeout_err(t->ms) : rc;
}

int shmrpc__reserve_locked(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len,
			   struct shmrpc_txbuf *tx, struct shmrpc__tmo *t)
{
	void *buf;
	int rc;

	rc = shmrpc__tx_reserve(n, c, len, &buf, t);
	if (rc) {
		shmrpc__conn_unlock(n, c);
		return rc;
	}
	c->resv = buf;
	c->resv_cap = len;
	tx->data = buf;
	tx->cap = len;
	tx->_priv[0] = c;
	tx->_priv[1] = n;
	return 0;
}

_Atomic uint32_t *shmrpc__tx_commit_flags(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len,
					  uint32_t rec_flags)
{
	shmrpc__ring_put_flags(&c->q, len, rec_flags);
	return shmrpc__tx_publish(n, c, 1, len);
}

_Atomic uint32_t *shmrpc__tx_publish(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t msgs,
				     uint64_t bytes)
{
	_Atomic uint32_t *w;

	shmrpc__ring_publish(&c->q);
	shmrpc__ctr_inc(&c->q.hdr->tx_msgs, msgs);
	shmrpc__ctr_inc(&c->q.hdr->tx_bytes, bytes);
	w = shmrpc__wake_collect_k(c->q.hdr, c->peer, c->kind);
	shmrpc__conn_unlock(n, c);
	return w;
}

_Atomic uint32_t *shmrpc__tx_commit(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len)
{
	return shmrpc__tx_commit_flags(n, c, len, 0);
}

_Atomic uint32_t *shmrpc__commit_nowake_flags(struct shmrpc_node *n, struct shmrpc_txbuf *tx,
					      size_t len, uint32_t rec_flags)
{
	struct shmrpc__conn *c = tx->_priv[0];

	c->resv = NULL;
	tx->_priv[0] = NULL;
	return shmrpc__tx_commit_flags(n, c, len, rec_flags);
}

_Atomic uint32_t *shmrpc__commit_nowake(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len)
{
	return shmrpc__commit_nowake_flags(n, tx, len, 0);
}

/* Hold a wake back for shmrpc_flush. */
static int defer(struct shmrpc_node *n, _Atomic uint32_t *w)
{
	struct shmrpc__deferred *d = &n->deferred;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	if (d->n == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 16;
		void *words = realloc(d->words, cap * sizeof(*d->words));

		if (words) {
			d->words = words;
			d->cap = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (!rc)
		d->words[d->n++] = w;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void shmrpc__tx_wake(struct shmrpc_node *n, _Atomic uint32_t *w, unsigned flags)
{
	if (w && (!(flags & SHMRPC_SEND_DEFER) || defer(n, w)))
		n->be->wake(n, &w, 1);
}

int shmrpc__tx_flush(struct shmrpc_node *n)
{
	struct shmrpc__deferred *d = &n->deferred;
	_Atomic uint32_t **words;
	uint32_t count;

	pthread_mutex_lock(&d->lock);
	words = d->words;
	count = d->n;
	d->words = NULL;
	d->n = d->cap = 0;
	pthread_mutex_unlock(&d->lock);
	if (count)
		n->be->wake(n, words, count); /* one io_uring_enter with uring */
	free(words);
	return (int)count;
}
