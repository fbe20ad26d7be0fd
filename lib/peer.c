// SPDX-License-Identifier: MIT
/*
 * Peer handles: shmrpc_peer_get binds a handle to one incarnation of a
 * named node, (slot, gen), and to the connection it made to it; sends
 * through the handle lock that connection directly (conntab.c's
 * shmrpc__conn_lock_gen: the struct is type-stable, its generation says
 * whether it is still the same connection), without hashing or comparing
 * the name. shmrpc_peer_sendv publishes a batch with one tail store, one
 * look at the receiver's sleep flag and at most one wake.
 *
 * When the connection is not the one any more (recycled, or closed by its
 * receiver), the handle asks the registry whether its incarnation still
 * holds its slot (a seqlock read): if it does (it dropped our ring as
 * corrupt, say), the handle connects to it again by name and checks that
 * the name still leads to that incarnation; otherwise the incarnation is
 * gone and every call returns -EPIPE, whoever holds the name now.
 *
 * Lifetime: handles are malloc'd and listed in their node (peer_lock).
 * shmrpc_close detaches them rather than leave them pointing at freed
 * connections: their calls return -EPIPE until shmrpc_peer_put frees them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"
#include "clock.h"
#include "conntab.h"
#include "connect.h"
#include "error.h"
#include "names.h"
#include "node_types.h"
#include "regfile.h"
#include "registry.h"
#include "ring.h"
#include "tx.h"

/* The node of a handle acquired (attached: shmrpc_close, which detaches it,
 * may not run meanwhile), or NULL. */
static struct shmrpc_node *peer_node(struct shmrpc_peer *p)
{
	return atomic_load_explicit(&p->node, memory_order_relaxed);
}

/* Does @p's incarnation still hold its slot? (No system call.) */
static bool peer_live(const struct shmrpc_peer *p, struct shmrpc_node *n)
{
	struct shmrpc__slot_view v;
	int tries, rc = -EAGAIN;

	for (tries = 0; tries < 100 && rc == -EAGAIN; tries++)
		rc = shmrpc__reg_read(n->reg, p->slot, &v);
	return rc != -EAGAIN && v.state == SHMRPC__SLOT_LIVE && v.gen == p->gen;
}

static int peer_gone(struct shmrpc_peer *p)
{
	/* Relaxed: a hint that saves later calls the registry read. */
	atomic_store_explicit(&p->gone, true, memory_order_relaxed);
	return -EPIPE;
}

/* The connection is not ours any more: the same incarnation, connected
 * again by name (locked in *out), or -EPIPE. */
static int peer_reconnect(struct shmrpc_peer *p, struct shmrpc_node *n, struct shmrpc__tmo *t,
			  struct shmrpc__conn **out)
{
	struct shmrpc__conn *c;
	int rc;

	if (!peer_live(p, n))
		return peer_gone(p);
	rc = shmrpc__conn_acquire(n, p->name, t, &c);
	/* -EPIPE with the incarnation still there: it dropped our ring (as
	 * corrupt); as for shmrpc_send, said once, and the next call connects
	 * to it afresh. */
	if (rc == -ENOENT || (rc == -EPIPE && !peer_live(p, n)))
		return peer_gone(p);
	if (rc)
		return rc;
	if (c->rx_slot != p->slot || c->rx_gen != p->gen) {
		shmrpc__conn_unlock(n, c);
		return peer_gone(p);
	}
	/* Relaxed: see struct shmrpc_peer; we hold c's lock. */
	atomic_store_explicit(&p->c, c, memory_order_relaxed);
	atomic_store_explicit(&p->cgen, atomic_load_explicit(&c->gen, memory_order_relaxed),
			      memory_order_relaxed);
	*out = c;
	return 0;
}

int shmrpc__peer_acquire(struct shmrpc_peer *p, struct shmrpc__tmo *t, struct shmrpc__conn **out)
{
	/* Other fields relaxed: see struct shmrpc_peer. */
	struct shmrpc_node *n = peer_node(p);
	struct shmrpc__conn *c;
	int rc;

	if (!n)
		return -EPIPE;
	if (n->forked)
		return -ECHILD;
	if (atomic_load_explicit(&p->gone, memory_order_relaxed))
		return -EPIPE;
	c = atomic_load_explicit(&p->c, memory_order_relaxed);
	rc = shmrpc__conn_lock_gen(n, c, atomic_load_explicit(&p->cgen, memory_order_relaxed), t);
	if (!rc)
		*out = c;
	return rc == -ESTALE ? peer_reconnect(p, n, t, out) : rc;
}

/* What is left of @deadline as a timeout_ms argument (-1: none). */
static int ms_left(int timeout_ms, int64_t deadline)
{
	int64_t left;

	if (timeout_ms < 0)
		return -1;
	left = deadline - shmrpc__now_ns();
	return left <= 0 ? 0 : (int)((left + 999999) / 1000000);
}

/* A live node @name, connected: its connection locked in *c. */
static int peer_connect(struct shmrpc_node *n, const char *name, int timeout_ms,
			struct shmrpc__conn **c)
{
	int64_t deadline = shmrpc__deadline(timeout_ms);
	struct shmrpc__tmo t;
	int rc;

	for (;;) {
		rc = shmrpc_wait_node(n, name, ms_left(timeout_ms, deadline));
		if (rc) /* its own text is spent on its own return */
			return shmrpc__err(rc, "node '%s': not in domain '%s' within %d ms", name,
					   n->reg->domain, timeout_ms);
		t = SHMRPC__TMO(ms_left(timeout_ms, deadline));
		rc = shmrpc__conn_acquire(n, name, &t, c);
		if (rc != -ENOENT && rc != -EPIPE)
			return rc;
		/* It left (or died) between the two: wait for the next one. */
		if (ms_left(timeout_ms, deadline) == 0)
			return shmrpc__timeout_err(timeout_ms);
	}
}

int shmrpc_peer_get(struct shmrpc_node *n, const char *name, int timeout_ms,
		    struct shmrpc_peer **out)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__conn *c;
	struct shmrpc_peer *p;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!n || !name || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = shmrpc__name_check(name);
	if (rc || !strcmp(name, n->name))
		return SHMRPC__RET(shmrpc__err(rc ? rc : -EINVAL,
					       "shmrpc_peer_get '%.64s': not a node name, or this "
					       "node's own",
					       name));
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	rc = peer_connect(n, name, timeout_ms, &c);
	if (rc) {
		free(p);
		return SHMRPC__RET(rc);
	}
	/* Bound to what it connected to: if the name moved to a newer node
	 * since the wait saw it, that one. */
	p->slot = c->rx_slot;
	p->gen = c->rx_gen;
	atomic_init(&p->c, c);
	atomic_init(&p->cgen, atomic_load_explicit(&c->gen, memory_order_relaxed));
	shmrpc__conn_unlock(n, c);
	memcpy(p->name, name, strlen(name) + 1);
	atomic_init(&p->node, n);
	pthread_mutex_lock(&n->peer_lock);
	p->next = n->peers;
	if (p->next)
		p->next->prev = p;
	n->peers = p;
	pthread_mutex_unlock(&n->peer_lock);
	*out = p;
	return SHMRPC__RET(0);
}

void shmrpc_peer_put(struct shmrpc_peer *p)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc_node *n;

	if (!p)
		return;
	n = peer_node(p);
	if (n) {
		pthread_mutex_lock(&n->peer_lock);
		if (p->prev)
			p->prev->next = p->next;
		else
			n->peers = p->next;
		if (p->next)
			p->next->prev = p->prev;
		pthread_mutex_unlock(&n->peer_lock);
	}
	free(p);
}

void shmrpc__peer_detach_all(struct shmrpc_node *n)
{
	struct shmrpc_peer *p;

	/* A forked child has one thread, and its copy of the lock may have
	 * been taken by a thread of the parent at the fork. */
	if (!n->forked)
		pthread_mutex_lock(&n->peer_lock);
	while ((p = n->peers)) {
		n->peers = p->next;
		p->prev = p->next = NULL;
		/* Relaxed: the handle's next call comes after this close. */
		atomic_store_explicit(&p->node, NULL, memory_order_relaxed);
	}
	if (!n->forked)
		pthread_mutex_unlock(&n->peer_lock);
}

static int peer_alive_do(struct shmrpc_peer *p)
{
	struct shmrpc_node *n;

	if (!p)
		return -EINVAL;
	n = peer_node(p);
	if (!n || atomic_load_explicit(&p->gone, memory_order_relaxed))
		return 0;
	if (peer_live(p, n))
		return 1;
	peer_gone(p);
	return 0;
}

int shmrpc_peer_alive(struct shmrpc_peer *p)
{
	return SHMRPC__RET(peer_alive_do(p));
}

const char *shmrpc_peer_name(struct shmrpc_peer *p)
{
	return p ? p->name : NULL;
}

int shmrpc_peer_send(struct shmrpc_peer *p, const void *data, size_t len, int timeout_ms,
		     unsigned flags)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc_node *n;
	struct shmrpc__conn *c;
	void *buf;
	int rc;

	if (!p || (!data && len) || timeout_ms < -1 || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	rc = shmrpc__peer_acquire(p, &t, &c);
	if (rc)
		return SHMRPC__RET(rc);
	n = peer_node(p);
	rc = shmrpc__tx_reserve(n, c, len, &buf, &t);
	if (rc) {
		shmrpc__conn_unlock(n, c);
		return SHMRPC__RET(rc);
	}
	if (len)
		memcpy(buf, data, len);
	shmrpc__tx_wake(n, shmrpc__tx_commit(n, c, len), flags);
	return 0;
}

int shmrpc_peer_sendv(struct shmrpc_peer *p, const struct iovec *msgs, unsigned nr, int timeout_ms,
		      unsigned flags)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms), now = SHMRPC__TMO(0);
	struct shmrpc_node *n;
	struct shmrpc__conn *c;
	uint64_t bytes = 0;
	unsigned i;
	void *buf;
	int rc;

	if (!p || !msgs || !nr || timeout_ms < -1 || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	for (i = 0; i < nr; i++)
		if (!msgs[i].iov_base && msgs[i].iov_len)
			return -EINVAL;
	rc = shmrpc__peer_acquire(p, &t, &c);
	if (rc)
		return SHMRPC__RET(rc);
	n = peer_node(p);
	/* Only the first waits for room; the rest go while they fit. A ring
	 * holds at most size / 8 records: the count fits an int. */
	for (i = 0; i < nr; i++) {
		rc = shmrpc__tx_reserve(n, c, msgs[i].iov_len, &buf, i ? &now : &t);
		if (rc)
			break;
		if (msgs[i].iov_len)
			memcpy(buf, msgs[i].iov_base, msgs[i].iov_len);
		shmrpc__ring_put(&c->q, msgs[i].iov_len);
		bytes += msgs[i].iov_len;
	}
	if (!i) {
		shmrpc__conn_unlock(n, c);
		return SHMRPC__RET(rc);
	}
	shmrpc__tx_wake(n, shmrpc__tx_publish(n, c, i, bytes), flags);
	return (int)i;
}

int shmrpc_peer_reserve(struct shmrpc_peer *p, size_t len, struct shmrpc_txbuf *tx, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc__conn *c;
	int rc;

	if (!p || !tx || timeout_ms < -1)
		return -EINVAL;
	rc = shmrpc__peer_acquire(p, &t, &c);
	if (!rc)
		rc = shmrpc__reserve_locked(peer_node(p), c, len, tx, &t); /* unlocks on failure */
	return SHMRPC__RET(rc);
}
