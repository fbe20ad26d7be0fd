// SPDX-License-Identifier: MIT
/*
 * Sending: reserve space in the receiver's ring, fill it, commit it, and
 * wake the receiver only if it sleeps (lib/wake.c). shmrpc_send is reserve,
 * memcpy, commit. A full ring makes the sender sleep on the ring's
 * space_seq word, per its timeout, until the receiver frees space; the
 * receiver leaving or dying ends the wait with -EPIPE.
 *
 * Sends to one receiver are serialised by its connection's mutex, held
 * from reserve to commit. It is an error-checking mutex, so a thread that
 * sends to a receiver it holds a reservation for gets -EDEADLK instead of
 * hanging.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char tls_token; /* its address names the thread */

void shmrpc__bell_ring(struct shmrpc_node *n, struct shmrpc__node_hdr *h)
{
	_Atomic uint32_t *w = &h->bell;

	if (shmrpc__wake_prepare(w) != SHMRPC__WAKE_NONE)
		n->be->wake(n, &w, 1);
}

static void ctr_inc(_Atomic uint64_t *c, uint64_t v)
{
	/* Relaxed load + store: a ring's producer counters have one writer
	 * at a time (the connection mutex orders successive writers). */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

_Atomic uint32_t *shmrpc__wake_collect(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	struct shmrpc__ring_hdr *h = c->q.hdr;

	(void)n;
	switch (shmrpc__wake_prepare(&h->data_seq)) {
	case SHMRPC__WAKE_WORD:
		ctr_inc(&h->tx_wakes, 1);
		return &h->data_seq;
	case SHMRPC__WAKE_BELL:
		ctr_inc(&h->tx_wakes, 1);
		if (shmrpc__wake_prepare(&c->peer->bell) != SHMRPC__WAKE_NONE)
			return &c->peer->bell;
		return NULL;
	default:
		ctr_inc(&h->tx_skips, 1);
		return NULL;
	}
}

void shmrpc__wake_consumer(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	_Atomic uint32_t *w = shmrpc__wake_collect(n, c);

	if (w)
		n->be->wake(n, &w, 1);
}

#if defined(__SANITIZE_THREAD__)
#define SHMRPC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMRPC__TSAN 1
#endif
#endif

/*
 * Lock with a CLOCK_MONOTONIC deadline (a wall-clock jump must not stretch
 * or cut a timeout). ThreadSanitizer (gcc 12, clang 14) does not intercept
 * pthread_mutex_clocklock and then reports false races on everything the
 * mutex guards; its builds take the CLOCK_REALTIME equivalent instead.
 */
static int lock_until(pthread_mutex_t *m, int64_t deadline, struct timespec *ts)
{
#ifdef SHMRPC__TSAN
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	shmrpc__ts_from_ns(ts, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
				       (deadline - shmrpc__now_ns()));
	return pthread_mutex_timedlock(m, ts);
#else
	shmrpc__ts_from_ns(ts, deadline);
	return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, ts);
#endif
}

static int conn_lock(struct shmrpc__conn *c, int timeout_ms, int64_t deadline)
{
	struct timespec ts;
	int rc;

	/* Our own reservation: -EDEADLK whatever the timeout. The mutex only
	 * says so when asked to block; a trylock would say EBUSY, and a
	 * caller retrying on -EAGAIN would spin forever. Relaxed: only this
	 * thread stores its own token, and it cleared it before unlocking. */
	if (atomic_load_explicit(&c->owner, memory_order_relaxed) == &tls_token)
		return -EDEADLK;
	if (timeout_ms < 0) {
		rc = pthread_mutex_lock(&c->lock);
	} else if (timeout_ms == 0) {
		rc = pthread_mutex_trylock(&c->lock);
		if (rc == EBUSY)
			rc = EAGAIN;
	} else {
		rc = lock_until(&c->lock, deadline, &ts);
	}
	if (!rc)
		atomic_store_explicit(&c->owner, &tls_token, memory_order_relaxed);
	return -rc;
}

/* Unlock; a connection found dead is swapped for a tombstone in the table. */
static void conn_unlock(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	bool dead = atomic_load_explicit(&c->dead, memory_order_relaxed);

	atomic_store_explicit(&c->owner, NULL, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	if (dead)
		shmrpc__conn_retire(n, c);
}

/* Under c->lock: sleep until @len fits, the deadline, or the receiver goes. */
static int tx_wait(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len, int64_t deadline)
{
	_Atomic uint32_t *w = &c->q.hdr->space_seq;
	int64_t until;
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

/* Under c->lock: reserve, waiting for space per timeout_ms. */
static int tx_reserve(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len, void **buf,
		      int timeout_ms, int64_t deadline)
{
	int rc;

	if (shmrpc__conn_check_dead(n, c))
		return -EPIPE;
	rc = shmrpc__ring_reserve(&c->q, len, buf);
	if (rc != -EAGAIN)
		return rc;
	ctr_inc(&c->q.hdr->tx_full, 1);
	if (timeout_ms == 0)
		return -EAGAIN;
	while ((rc = tx_wait(n, c, len, deadline)) == 0) {
		rc = shmrpc__ring_reserve(&c->q, len, buf);
		if (rc != -EAGAIN)
			return rc;
	}
	return rc == -ETIMEDOUT ? shmrpc__timeout_err(timeout_ms) : rc;
}

int shmrpc__reserve_conn(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len,
			 struct shmrpc_txbuf *tx, int timeout_ms, int64_t deadline)
{
	void *buf;
	int rc;

	rc = conn_lock(c, timeout_ms, deadline);
	if (rc) {
		shmrpc__conn_put(n, c);
		return rc == -ETIMEDOUT ? shmrpc__timeout_err(timeout_ms) : rc;
	}
	rc = tx_reserve(n, c, len, &buf, timeout_ms, deadline);
	if (rc) {
		conn_unlock(n, c);
		shmrpc__conn_put(n, c);
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

int shmrpc_reserve(struct shmrpc_node *n, const char *to, size_t len, struct shmrpc_txbuf *tx,
		   int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__conn *c;
	int64_t deadline;
	int rc;

	if (!n || !tx || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = shmrpc__name_check(to);
	if (rc)
		return rc;
	deadline = shmrpc__deadline(timeout_ms);
	rc = shmrpc__conn_get(n, to, &c);
	if (rc)
		return rc;
	/* The reservation owns the reference until commit or cancel. */
	return shmrpc__reserve_conn(n, c, len, tx, timeout_ms, deadline);
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
	if (atomic_load_explicit(&c->owner, memory_order_relaxed) != &tls_token)
		return NULL;
	/* We hold c->lock: resv is ours to read. */
	if (!c->resv || tx->data != c->resv)
		return NULL;
	return c;
}

_Atomic uint32_t *shmrpc__commit_nowake(struct shmrpc_node *n, struct shmrpc_txbuf *tx,
					size_t len)
{
	struct shmrpc__conn *c = tx->_priv[0];
	_Atomic uint32_t *w;

	shmrpc__ring_commit(&c->q, len);
	ctr_inc(&c->q.hdr->tx_msgs, 1);
	ctr_inc(&c->q.hdr->tx_bytes, len);
	w = shmrpc__wake_collect(n, c);
	c->resv = NULL;
	tx->_priv[0] = NULL;
	conn_unlock(n, c);
	return w;
}

/* Hold a wake back for shmrpc_flush; the reference keeps @w mapped. */
static int defer(struct shmrpc_node *n, struct shmrpc__conn *c, _Atomic uint32_t *w)
{
	struct shmrpc__deferred *d = &n->deferred;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	if (d->n == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 16;
		void *words = realloc(d->words, cap * sizeof(*d->words));
		void *conns = words ? realloc(d->conns, cap * sizeof(*d->conns)) : NULL;

		if (words)
			d->words = words;
		if (conns)
			d->conns = conns;
		if (!words || !conns)
			rc = -ENOMEM;
		else
			d->cap = cap;
	}
	if (!rc) {
		d->words[d->n] = w;
		d->conns[d->n++] = c;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int shmrpc_commit_flags(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len,
			unsigned flags)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__conn *c;
	_Atomic uint32_t *w;

	if (n && n->forked)
		return -ECHILD; /* a reservation the parent made before fork */
	c = tx_conn(n, tx);
	/* Against what we reserved: tx->cap is the caller's to overwrite. */
	if (!c || len > c->resv_cap || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	/* Wake outside the lock (other senders to this receiver need not
	 * wait for our system call), inside our reference (the word stays
	 * mapped). */
	w = shmrpc__commit_nowake(n, tx, len);
	if (w && (flags & SHMRPC_SEND_DEFER) && !defer(n, c, w))
		return 0; /* the reference now belongs to the deferred wake */
	if (w)
		n->be->wake(n, &w, 1);
	shmrpc__conn_put(n, c);
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
	struct shmrpc__conn **conns;
	uint32_t i, count;

	if (!n)
		return -EINVAL;
	d = &n->deferred;
	pthread_mutex_lock(&d->lock);
	words = d->words;
	conns = d->conns;
	count = d->n;
	d->words = NULL;
	d->conns = NULL;
	d->n = d->cap = 0;
	pthread_mutex_unlock(&d->lock);
	if (count)
		n->be->wake(n, words, count); /* one io_uring_enter with uring */
	for (i = 0; i < count; i++)
		shmrpc__conn_put(n, conns[i]);
	free(words);
	free(conns);
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
	conn_unlock(n, c);
	shmrpc__conn_put(n, c);
}

int shmrpc_send_flags(struct shmrpc_node *n, const char *to, const void *data, size_t len,
		      int timeout_ms, unsigned flags)
{
	struct shmrpc_txbuf tx;
	int rc;

	if ((!data && len) || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	rc = shmrpc_reserve(n, to, len, &tx, timeout_ms);
	if (rc)
		return rc;
	if (len)
		memcpy(tx.data, data, len);
	return shmrpc_commit_flags(n, &tx, len, flags);
}

int shmrpc_send(struct shmrpc_node *n, const char *to, const void *data, size_t len,
		int timeout_ms)
{
	return shmrpc_send_flags(n, to, data, len, timeout_ms, 0);
}
