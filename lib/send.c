// SPDX-License-Identifier: MIT
/*
 * Sending: reserve space in the receiver's ring, fill it, commit it, and
 * wake the receiver only if it sleeps (lib/wake.c). shmrpc_send is reserve,
 * memcpy, commit. A full ring makes the sender sleep on the ring's
 * space_seq word, per its timeout, until the receiver frees space; the
 * receiver leaving or dying ends the wait with -EPIPE.
 *
 * Sends to one receiver are serialised by its connection's mutex, held
 * from reserve to commit (conn.c). A thread that sends to a receiver it
 * holds a reservation for gets -EDEADLK instead of hanging.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void shmrpc__bell_ring(struct shmrpc_node *n, struct shmrpc__node_hdr *h)
{
	_Atomic uint32_t *w = &h->bell;

	if (shmrpc__wake_prepare(w) != SHMRPC__WAKE_NONE)
		n->be->wake(n, &w, 1);
}

_Atomic uint32_t *shmrpc__wake_collect(struct shmrpc__conn *c)
{
	struct shmrpc__ring_hdr *h = c->q.hdr;

	switch (shmrpc__wake_prepare(&h->data_seq)) {
	case SHMRPC__WAKE_WORD:
		shmrpc__ctr_inc(&h->tx_wakes, 1);
		return &h->data_seq;
	case SHMRPC__WAKE_BELL:
		shmrpc__ctr_inc(&h->tx_wakes, 1);
		if (shmrpc__wake_prepare(&c->peer->bell) != SHMRPC__WAKE_NONE)
			return &c->peer->bell;
		return NULL;
	default:
		shmrpc__ctr_inc(&h->tx_skips, 1);
		return NULL;
	}
}

void shmrpc__wake_consumer(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	_Atomic uint32_t *w = shmrpc__wake_collect(c);

	if (w)
		n->be->wake(n, &w, 1);
}

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
		until = shmrpc__sleep_until(n, deadline);
		rc = shmrpc__futex_wait(w, armed, until);
		shmrpc__wait_disarm(w);
		if (rc == -ETIMEDOUT && until < deadline && shmrpc__conn_peer_gone(n, c))
			return -EPIPE;
	}
}

/* Under c->lock: reserve, waiting for space per the timeout. (Whether the
 * receiver left was checked when the connection was acquired.) */
static int tx_reserve(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len, void **buf,
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

	rc = tx_reserve(n, c, len, &buf, t);
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

/*
 * A receiver that leaves while we wait for room in its ring ends the wait
 * with -EPIPE; if a node has taken its name since, the send goes to that
 * one instead (the connection found dead is a tombstone by then, and
 * acquiring the name again connects), as a send that finds its connection
 * dead at the start does (conn.c). A bounded number of times: nodes of
 * that name coming and going faster than that get -EPIPE.
 */
#define TX_REJOIN_TRIES 4

int shmrpc_reserve(struct shmrpc_node *n, const char *to, size_t len, struct shmrpc_txbuf *tx,
		   int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc__conn *c;
	int rc, tries;

	if (!n || !tx || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	for (tries = 0;; tries++) {
		rc = shmrpc__conn_acquire(n, to, &t, &c); /* checks the name on a miss */
		if (rc)
			return SHMRPC__RET(rc); /* a failed connect says why */
		rc = shmrpc__reserve_locked(n, c, len, tx, &t);
		if (rc != -EPIPE || tries == TX_REJOIN_TRIES)
			return SHMRPC__RET(rc);
	}
}

/*
 * The reservation @tx, if it is one of @n's, this thread holds it, and it is
 * the open one: a copy of a reservation that ended names the same connection
 * but not the same space (nor, maybe, the same size), and committing it
 * would write a record past what is reserved.
 */
static struct shmrpc__conn *tx_conn(struct shmrpc_node *n, struct shmrpc_txbuf *tx)
{
	struct shmrpc__conn *c;

	if (!n || !tx || tx->_priv[1] != n || !(c = tx->_priv[0]))
		return NULL;
	if (!shmrpc__conn_held(c))
		return NULL;
	/* We hold c->lock: resv is ours to read. */
	if (!c->resv || tx->data != c->resv)
		return NULL;
	return c;
}

/* Publish @len bytes reserved on the locked @c, count them, unlock: the
 * word to wake, or NULL (the wake goes outside the lock: other senders to
 * this receiver need not wait for our system call). */
static _Atomic uint32_t *tx_commit(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len)
{
	_Atomic uint32_t *w;

	shmrpc__ring_commit(&c->q, len);
	shmrpc__ctr_inc(&c->q.hdr->tx_msgs, 1);
	shmrpc__ctr_inc(&c->q.hdr->tx_bytes, len);
	w = shmrpc__wake_collect(c);
	shmrpc__conn_unlock(n, c);
	return w;
}

_Atomic uint32_t *shmrpc__commit_nowake(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len)
{
	struct shmrpc__conn *c = tx->_priv[0];

	c->resv = NULL;
	tx->_priv[0] = NULL;
	return tx_commit(n, c, len);
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

/* Wake @w now, or hold it for shmrpc_flush (now if that fails). */
static void wake_or_defer(struct shmrpc_node *n, _Atomic uint32_t *w, unsigned flags)
{
	if (w && (!(flags & SHMRPC_SEND_DEFER) || defer(n, w)))
		n->be->wake(n, &w, 1);
}

int shmrpc_commit_flags(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len, unsigned flags)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__conn *c;

	if (n && n->forked)
		return -ECHILD; /* a reservation the parent made before fork */
	c = tx_conn(n, tx);
	/* Against what we reserved: tx->cap is the caller's to overwrite. */
	if (!c || len > c->resv_cap || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	wake_or_defer(n, shmrpc__commit_nowake(n, tx, len), flags);
	return 0;
}

int shmrpc_commit(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len)
{
	return shmrpc_commit_flags(n, tx, len, 0);
}

int shmrpc_flush(struct shmrpc_node *n)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__deferred *d;
	_Atomic uint32_t **words;
	uint32_t count;

	if (!n)
		return -EINVAL;
	d = &n->deferred;
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

void shmrpc_cancel(struct shmrpc_node *n, struct shmrpc_txbuf *tx)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__conn *c;

	if (n && n->forked)
		return;
	c = tx_conn(n, tx);
	if (!c)
		return;
	c->resv = NULL;
	tx->_priv[0] = NULL;
	shmrpc__conn_unlock(n, c);
}

/* shmrpc_send is reserve, memcpy, commit: this is that, without the
 * bookkeeping that a reservation handed to the caller needs. */
int shmrpc_send_flags(struct shmrpc_node *n, const char *to, const void *data, size_t len,
		      int timeout_ms, unsigned flags)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc__conn *c;
	void *buf;
	int rc, tries;

	if (!n || (!data && len) || timeout_ms < -1 || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	for (tries = 0;; tries++) {
		rc = shmrpc__conn_acquire(n, to, &t, &c);
		if (rc)
			return SHMRPC__RET(rc); /* a failed connect says why */
		rc = tx_reserve(n, c, len, &buf, &t);
		if (!rc)
			break;
		shmrpc__conn_unlock(n, c);
		if (rc != -EPIPE || tries == TX_REJOIN_TRIES)
			return SHMRPC__RET(rc);
	}
	if (len)
		memcpy(buf, data, len);
	wake_or_defer(n, tx_commit(n, c, len), flags);
	return 0;
}

int shmrpc_send(struct shmrpc_node *n, const char *to, const void *data, size_t len, int timeout_ms)
{
	return shmrpc_send_flags(n, to, data, len, timeout_ms, 0);
}
