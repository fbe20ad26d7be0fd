// SPDX-License-Identifier: MIT
/*
 * The calls in flight of a node (the caller's side of request/response):
 * the table of calls, their ends (an error for the thread that waits, a
 * CANCEL record for their server), and the threads that wait for them.
 * rpc_read.c fills it from the reply rings; rpc_call.c makes, waits for and
 * cancels calls. Everything here is under rpc->lock unless it says.
 *
 * A call ends with its last reply, or with an error: the server's (a
 * reply), or one of ours (shmrpc__call_end: -EPIPE when its server is gone,
 * -ETIMEDOUT at its deadline, -ECANCELED, -ENOBUFS when nobody collects
 * its replies). Its waiter, if it has one, gets the end at once; otherwise
 * the next shmrpc_call_wait takes what was queued, then the end, and the
 * call is retired: its id is unknown from then on (-ENOENT), and replies
 * that still come for it are late. Ends by deadline, cancel or lack of room
 * tell the server (a CANCEL record, sent once the lock is released: the
 * sending takes a connection's mutex, never under this lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "clock.h"
#include "conntab.h"
#include "layout.h"
#include "node_types.h"
#include "tx.h"
#include "waker.h"

static void ctr_add(_Atomic uint64_t *c)
{
	/* Relaxed: statistics, written by any thread of this node. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------ the table */

static struct shmrpc__call **call_bucket(struct shmrpc__rpc *rpc, uint64_t id)
{
	return &rpc->calls[id % SHMRPC__CALL_BUCKETS];
}

struct shmrpc__call *shmrpc__call_find(struct shmrpc__rpc *rpc, uint64_t id)
{
	struct shmrpc__call *c;

	for (c = *call_bucket(rpc, id); c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

void shmrpc__call_retire(struct shmrpc_node *n, struct shmrpc__call *c)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__call **pp = call_bucket(rpc, c->id);
	struct shmrpc__rep *q;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	while ((q = c->head)) {
		c->head = q->next;
		free(q);
	}
	rpc->ncalls--;
	ctr_add(&n->seg->rpc.calls_ended);
	c->next = rpc->free_calls;
	rpc->free_calls = c;
}

/* Under the lock: waiter @w has its result; wake it (the reader, which
 * sleeps on the rep_bell rather than its condition variable: ring that,
 * unless this thread is the reader). */
void shmrpc__waiter_done(struct shmrpc_node *n, struct shmrpc__waiter *w, int rc, unsigned flags)
{
	w->rc = rc;
	w->flags = flags;
	/* Release: pairs with the reader's acquire load of got (reader_busy):
	 * it sees rc and flags. The rep_bell's wake below begins with the
	 * fence (F) that pairs with the reader's (G) before that load. */
	atomic_store_explicit(&w->got, true, memory_order_release);
	if (w != n->rpc->reader_w)
		pthread_cond_signal(&w->cv);
	else if (!pthread_equal(n->rpc->reader_tid, pthread_self()))
		shmrpc__bell_ring_k(n, n->seg, SHMRPC__KIND_REP);
}

/* Count why call @c ended with @err. */
static void count_end(struct shmrpc_node *n, int err)
{
	struct shmrpc__rpc_ctr *k = &n->seg->rpc;

	if (err == -ETIMEDOUT)
		ctr_add(&k->fail_timeout);
	else if (err == -EPIPE)
		ctr_add(&k->fail_pipe);
	else if (err == -ECANCELED || err == -ENOBUFS)
		ctr_add(&k->fail_cancel);
}

/* Under the lock: tell @c's server that we gave up on it, once unlocked. */
static void cancel_push(struct shmrpc__rpc *rpc, const struct shmrpc__call *c)
{
	/* Relaxed: under the lock; shmrpc__cancels_flush's look without it
	 * is a hint. */
	uint32_t nr = atomic_load_explicit(&rpc->ncancel, memory_order_relaxed);
	struct shmrpc__cancel *k;

	if (nr == SHMRPC__CANCEL_Q)
		return; /* best effort: its deadline or its next reply tells it */
	k = &rpc->cancel[nr];
	atomic_store_explicit(&rpc->ncancel, nr + 1, memory_order_relaxed);
	k->id = c->id;
	k->slot = c->srv_slot;
	k->gen = c->srv_gen;
	memcpy(k->to, c->to, sizeof(k->to));
}

void shmrpc__call_end(struct shmrpc_node *n, struct shmrpc__call *c, int err)
{
	if (c->fin || c->end)
		return;
	c->end = err;
	count_end(n, err);
	if (err == -ETIMEDOUT || err == -ECANCELED || err == -ENOBUFS)
		cancel_push(n->rpc, c);
	if (c->w && !c->head && !atomic_load_explicit(&c->w->got, memory_order_relaxed)) {
		shmrpc__waiter_done(n, c->w, err, 0);
		c->w->call = NULL;
		c->w = NULL;
		shmrpc__call_retire(n, c);
	}
}

void shmrpc__call_abandon(struct shmrpc_node *n, struct shmrpc__call *c)
{
	if (!c->fin && !c->end)
		cancel_push(n->rpc, c);
	shmrpc__call_retire(n, c);
}

/* ------------------------------------------------------------ waiters */

/* Hand the reader's role to a thread still waiting, if there is one. */
void shmrpc__waiter_hand_off(struct shmrpc__rpc *rpc)
{
	struct shmrpc__waiter *o;

	for (o = rpc->waiters; o; o = o->next)
		if (!atomic_load_explicit(&o->got, memory_order_relaxed)) {
			pthread_cond_signal(&o->cv);
			return;
		}
}

void shmrpc__waiter_join(struct shmrpc__rpc *rpc, struct shmrpc__waiter *w, struct shmrpc__call *c)
{
	w->call = c;
	c->w = w;
	w->prev = NULL;
	w->next = rpc->waiters;
	if (w->next)
		w->next->prev = w;
	rpc->waiters = w;
}

void shmrpc__waiter_leave(struct shmrpc__rpc *rpc, struct shmrpc__waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		rpc->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->call)
		w->call->w = NULL;
	w->call = NULL;
	/* A thread woken to take the role may be the one leaving: pass it on. */
	if (!rpc->reader)
		shmrpc__waiter_hand_off(rpc);
}

/* ------------------------------------------------------------ cancels */

/* A CANCEL record for call @k, if the connection to its name is still to
 * the server it was sent to, and there is room now. */
static void cancel_send(struct shmrpc_node *n, const struct shmrpc__cancel *k)
{
	struct shmrpc__tmo lock_t = SHMRPC__TMO(1), room_t = SHMRPC__TMO(0);
	struct shmrpc__cancel_rec rec = { k->id };
	struct shmrpc__conn *c;
	void *buf;

	if (shmrpc__conn_acquire(n, k->to, &lock_t, &c))
		return;
	if (c->rx_slot != k->slot || c->rx_gen != k->gen ||
	    shmrpc__tx_reserve(n, c, sizeof(rec), &buf, &room_t)) {
		shmrpc__conn_unlock(n, c);
		return;
	}
	memcpy(buf, &rec, sizeof(rec));
	shmrpc__tx_wake(n, shmrpc__tx_commit_flags(n, c, sizeof(rec), SHMRPC__REC_CANCEL), 0);
}

void shmrpc__cancels_flush(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__cancel k[SHMRPC__CANCEL_Q];
	uint32_t nr, i;

	/* Relaxed: a hint; the count is read again under the lock. */
	if (!atomic_load_explicit(&rpc->ncancel, memory_order_relaxed))
		return;
	pthread_mutex_lock(&rpc->lock);
	nr = atomic_load_explicit(&rpc->ncancel, memory_order_relaxed);
	memcpy(k, rpc->cancel, nr * sizeof(k[0]));
	atomic_store_explicit(&rpc->ncancel, 0, memory_order_relaxed);
	pthread_mutex_unlock(&rpc->lock);
	for (i = 0; i < nr; i++)
		cancel_send(n, &k[i]);
}
