// SPDX-License-Identifier: MIT
/*
 * Sending: reserve space in the receiver's ring, fill it, commit it, and
 * wake the receiver only if it sleeps (lib/wake.c). shmrpc_send is reserve,
 * memcpy, commit. tx.c does each step on a locked connection; this file
 * checks the caller's arguments and reservations, and connects again when
 * a receiver left and another node took its name.
 *
 * Sends to one receiver are serialised by its connection's mutex, held
 * from reserve to commit (conntab.c). A thread that sends to a receiver it
 * holds a reservation for gets -EDEADLK instead of hanging.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "connect.h"
#include "conntab.h"
#include "error.h"
#include "node_types.h"
#include "tx.h"

/*
 * A receiver that leaves while we wait for room in its ring ends the wait
 * with -EPIPE; if a node has taken its name since, the send goes to that
 * one instead (the connection found dead is a tombstone by then, and
 * acquiring the name again connects), as a send that finds its connection
 * dead at the start does (conntab.c). A bounded number of times: nodes of
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

static int commit_flags_do(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len,
			   unsigned flags)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__conn *c;

	if (n && n->forked)
		return -ECHILD; /* a reservation the parent made before fork */
	c = tx_conn(n, tx);
	/* Against what we reserved: tx->cap is the caller's to overwrite. */
	if (!c || len > c->resv_cap || (flags & ~SHMRPC_SEND_DEFER))
		return -EINVAL;
	shmrpc__tx_wake(n, shmrpc__commit_nowake(n, tx, len), flags);
	return 0;
}

int shmrpc_commit_flags(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len, unsigned flags)
{
	return SHMRPC__RET(commit_flags_do(n, tx, len, flags));
}

int shmrpc_commit(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len)
{
	return shmrpc_commit_flags(n, tx, len, 0);
}

static int flush_do(struct shmrpc_node *n)
{
	SHMRPC__KEEP_ERRNO;

	if (!n)
		return -EINVAL;
	return shmrpc__tx_flush(n);
}

int shmrpc_flush(struct shmrpc_node *n)
{
	return SHMRPC__RET(flush_do(n));
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
		rc = shmrpc__tx_reserve(n, c, len, &buf, &t);
		if (!rc)
			break;
		shmrpc__conn_unlock(n, c);
		if (rc != -EPIPE || tries == TX_REJOIN_TRIES)
			return SHMRPC__RET(rc);
	}
	if (len)
		memcpy(buf, data, len);
	shmrpc__tx_wake(n, shmrpc__tx_commit(n, c, len), flags);
	return 0;
}

int shmrpc_send(struct shmrpc_node *n, const char *to, const void *data, size_t len, int timeout_ms)
{
	return shmrpc_send_flags(n, to, data, len, timeout_ms, 0);
}
