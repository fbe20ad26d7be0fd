// SPDX-License-Identifier: MIT
/*
 * Calls: shmrpc_call_start, shmrpc_call_wait, shmrpc_call_cancel,
 * shmrpc_call; and the node's request/response state (set up at
 * shmrpc_open, closed and freed at shmrpc_close).
 *
 * A call is an entry in the node's call table (rpc_read.c), made before
 * its request is sent so that the quickest reply finds it, with a 64-bit id
 * unique among the node's calls, the server's incarnation (slot, gen) from
 * the connection the request went on, and its deadline. The request is a
 * REQ record on our message ring to the server (the connection and sending
 * machinery of shmrpc_send): {id, deadline_ns} then the payload, so it
 * needs room for 16 bytes more than a message. A call ends with its last
 * reply, an error (the server's, or ours: -EPIPE, -ETIMEDOUT, -ECANCELED,
 * -ENOBUFS), or a cancel, and its id is retired once its waiter has taken
 * that: later replies to it are dropped and counted as late. A call whose
 * deadline passed, or that was cancelled, is told to its server with a
 * CANCEL record, a best effort that never waits for room.
 *
 * The table is bounded by opts.max_calls (-EAGAIN past it). Replies that
 * nobody waits for yet are queued on their call, up to the node's
 * ring_bytes of them (then the call ends with -ENOBUFS and is cancelled).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "clock.h"
#include "conntab.h"
#include "error.h"
#include "layout.h"
#include "node_types.h"
#include "peer.h"
#include "registry.h"
#include "reply.h"
#include "tx.h"

/* A send refused because the server's ring stayed full or the server left
 * while we waited: tried again on the node holding the name then, this
 * many times (as shmrpc_send does). */
#define CALL_REJOIN_TRIES 4

static void ctr_add(_Atomic uint64_t *c)
{
	/* Relaxed: statistics, written by any thread of this node. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------ node state */

int shmrpc__rpc_init(struct shmrpc_node *n, uint32_t max_calls)
{
	struct shmrpc__rpc *rpc = calloc(1, sizeof(*rpc));

	if (!rpc)
		return -ENOMEM;
	pthread_mutex_init(&rpc->lock, NULL);
	rpc->max_calls = max_calls;
	rpc->next_id = 1;
	shmrpc__serve_init(rpc);
	n->rpc = rpc;
	n->rpc_hook = shmrpc__rpc_hook;
	n->in.kind = SHMRPC__KIND_MSG;
	n->rep.kind = SHMRPC__KIND_REP;
	return 0;
}

void shmrpc__rpc_close(struct shmrpc_node *n)
{
	shmrpc_serve(n, NULL, NULL);
	shmrpc__ctab_close_all(n, &n->rpc->reps.t);
}

void shmrpc__rpc_forget(struct shmrpc_node *n)
{
	if (n->rpc)
		shmrpc__ctab_forget_all(&n->rpc->reps.t);
}

static void calls_free(struct shmrpc__call **head)
{
	struct shmrpc__call *c;
	struct shmrpc__rep *q;

	while ((c = *head)) {
		*head = c->next;
		while ((q = c->head)) {
			c->head = q->next;
			free(q);
		}
		free(c);
	}
}

void shmrpc__rpc_free(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	unsigned b;

	free(n->rep.v);
	n->rep.v = NULL;
	if (!rpc)
		return;
	for (b = 0; b < SHMRPC__CALL_BUCKETS; b++)
		calls_free(&rpc->calls[b]);
	calls_free(&rpc->free_calls);
	shmrpc__serve_free(rpc, !n->forked);
	/* A fork's copy may hold a locked copy: not ours to destroy. */
	if (!n->forked)
		pthread_mutex_destroy(&rpc->lock);
	free(rpc);
	n->rpc = NULL;
}

/* ------------------------------------------------------------ starting */

/* A new call to @to in the table (its server not known yet: no reply can
 * match it): its id, or -EAGAIN (max_calls), -ENOMEM. */
static int call_new(struct shmrpc_node *n, const char *to, int64_t deadline, uint64_t *id)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__call *c, **b;
	int err = 0;

	pthread_mutex_lock(&rpc->lock);
	if (rpc->ncalls >= rpc->max_calls) {
		err = shmrpc__err(-EAGAIN, "%u calls in flight already (opts.max_calls)",
				  rpc->ncalls);
	} else if ((c = rpc->free_calls) || (c = calloc(1, sizeof(*c)))) {
		if (c == rpc->free_calls)
			rpc->free_calls = c->next;
		memset(c, 0, sizeof(*c));
		c->id = rpc->next_id++;
		c->srv_slot = c->srv_gen = UINT32_MAX;
		c->deadline = deadline;
		snprintf(c->to, sizeof(c->to), "%s", to);
		b = &rpc->calls[c->id % SHMRPC__CALL_BUCKETS];
		c->next = *b;
		*b = c;
		rpc->ncalls++;
		*id = c->id;
	} else {
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&rpc->lock);
	return err;
}

/* The call of @id was never sent: out of the table, uncounted. */
static void call_drop(struct shmrpc_node *n, uint64_t id)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__call *c;

	pthread_mutex_lock(&rpc->lock);
	c = shmrpc__call_find(rpc, id);
	if (c) {
		shmrpc__call_retire(n, c);
		/* Relaxed: statistics; retire counted it as ended. */
		atomic_fetch_sub_explicit(&n->seg->rpc.calls_ended, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&rpc->lock);
}

/* Under @c's lock, room reserved: bind call @id to the server @c reaches.
 * false: the call is gone (another thread cancelled an id it guessed). */
static bool call_bind(struct shmrpc_node *n, uint64_t id, const struct shmrpc__conn *c)
{
	struct shmrpc__call *k;

	pthread_mutex_lock(&n->rpc->lock);
	k = shmrpc__call_find(n->rpc, id);
	if (k) {
		k->srv_slot = c->rx_slot;
		k->srv_gen = c->rx_gen;
	}
	pthread_mutex_unlock(&n->rpc->lock);
	return k != NULL;
}

/* A send that found no node under the name (or only the one that left):
 * -ENOENT unless a live node holds it now. */
static int call_gone(struct shmrpc_node *n, const char *to, int rc)
{
	struct shmrpc__slot_view v;
	uint32_t slot;

	if (rc == -EPIPE && shmrpc__reg_find(n->reg, to, &slot, &v) == -ENOENT)
		rc = -ENOENT;
	if (rc == -ENOENT)
		return shmrpc__err(rc, "call to '%s': no live node of that name", to);
	return rc;
}

/* Where a call goes: the node holding a name, or a peer handle's
 * incarnation (no other: its -EPIPE is final, as for shmrpc_peer_send). */
struct call_to {
	const char *name;
	struct shmrpc_peer *peer;
};

/* Send the REQ record of call @id (deadline @dl, 0: none) to @to. */
static int call_send(struct shmrpc_node *n, const struct call_to *to, uint64_t id, int64_t dl,
		     const void *req, size_t len, struct shmrpc__tmo *t)
{
	struct shmrpc__req_hdr h = { id, dl };
	struct shmrpc__conn *c;
	uint8_t *buf;
	int rc, tries;

	for (tries = 0;; tries++) {
		rc = to->peer ? shmrpc__peer_acquire(to->peer, t, &c) :
				shmrpc__conn_acquire(n, to->name, t, &c);
		if (rc)
			return to->peer ? rc : call_gone(n, to->name, rc);
		/* Relaxed: a hint (any peer can write it); a request sent
		 * anyway is answered -EOPNOTSUPP by the server's hook. */
		if (!atomic_load_explicit(&c->peer->serving, memory_order_relaxed))
			rc = shmrpc__err(-EOPNOTSUPP, "call to '%s': it does not serve", to->name);
		else if (len > SIZE_MAX - sizeof(h))
			rc = -EMSGSIZE;
		else
			rc = shmrpc__tx_reserve(n, c, sizeof(h) + len, (void **)&buf, t);
		if (!rc && !call_bind(n, id, c))
			rc = -ECANCELED;
		if (!rc)
			break;
		shmrpc__conn_unlock(n, c);
		if (rc == -EMSGSIZE)
			return shmrpc__err(rc, "call to '%s': request of %zu bytes, at most %d",
					   to->name, len,
					   (int)shmrpc__ring_max_msg(c->ring_bytes) - 16);
		if (to->peer)
			return rc;
		if (rc != -EPIPE || tries == CALL_REJOIN_TRIES)
			return call_gone(n, to->name, rc);
	}
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), req, len);
	shmrpc__tx_wake(n, shmrpc__tx_commit_flags(n, c, sizeof(h) + len, SHMRPC__REC_REQ), 0);
	return 0;
}

/* The deadline of a call of @timeout_ms, and the timeout of its send. */
static int64_t call_deadline(int timeout_ms, struct shmrpc__tmo *t)
{
	*t = SHMRPC__TMO(timeout_ms);
	if (timeout_ms <= 0)
		return SHMRPC__NEVER;
	return shmrpc__tmo_deadline(t);
}

static int call_start(struct shmrpc_node *n, const struct call_to *to, const void *req, size_t len,
		      int timeout_ms, uint64_t *id)
{
	struct shmrpc__tmo t;
	int64_t deadline;
	int rc;

	deadline = call_deadline(timeout_ms, &t);
	rc = call_new(n, to->name, deadline, id);
	if (!rc) {
		rc = call_send(n, to, *id, deadline == SHMRPC__NEVER ? 0 : deadline, req, len, &t);
		if (rc)
			call_drop(n, *id);
	}
	ctr_add(rc ? &n->seg->rpc.fail_refused : &n->seg->rpc.calls);
	return rc;
}

int shmrpc_call_start(struct shmrpc_node *n, const char *to, const void *req, size_t len,
		      int timeout_ms, uint64_t *id)
{
	SHMRPC__KEEP_ERRNO;
	struct call_to dst = { to, NULL };

	if (!n || !to || (!req && len) || timeout_ms < -1 || !id)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	return SHMRPC__RET(call_start(n, &dst, req, len, timeout_ms, id));
}

/* The node of peer handle @p, or NULL once its node closed. */
static struct shmrpc_node *peer_node(struct shmrpc_peer *p)
{
	/* Relaxed: as peer.c's; shmrpc_close detaches before it frees. */
	return atomic_load_explicit(&p->node, memory_order_relaxed);
}

int shmrpc_peer_call_start(struct shmrpc_peer *p, const void *req, size_t len, int timeout_ms,
			   uint64_t *id)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc_node *n;
	struct call_to dst;

	if (!p || (!req && len) || timeout_ms < -1 || !id)
		return -EINVAL;
	n = peer_node(p);
	if (!n)
		return -EPIPE;
	if (n->forked)
		return -ECHILD;
	dst = (struct call_to){ p->name, p };
	return SHMRPC__RET(call_start(n, &dst, req, len, timeout_ms, id));
}

/* ------------------------------------------------------------ waiting */

/* Under the lock: the next result of call @c, if it has one: 1 (in *rc,
 * *flags; the call retired if it was its last), or 0. */
static int call_take(struct shmrpc_node *n, struct shmrpc__call *c, void *buf, size_t cap, int *rc,
		     unsigned *flags)
{
	struct shmrpc__rep *q = c->head;
	bool last;

	if (q) {
		c->head = q->next;
		if (!c->head)
			c->tail = NULL;
		c->queued -= q->len;
		*rc = q->status ? q->status : q->len > cap ? -EMSGSIZE : (int)q->len;
		if (*rc > 0)
			memcpy(buf, q->data, q->len);
		*flags = q->flags;
		last = q->status || !(q->flags & SHMRPC_REPLY_MORE);
		free(q);
		if (last)
			shmrpc__call_retire(n, c);
		return 1;
	}
	if (!c->end)
		return 0;
	*rc = c->end;
	*flags = 0;
	shmrpc__call_retire(n, c);
	return 1;
}

/* Under the lock: wait as @w for call @c's next result until @deadline;
 * true if it came (in w). As the reader, or on w's condition variable. */
static bool call_sleep(struct shmrpc_node *n, struct shmrpc__waiter *w, struct shmrpc__call *c,
		       int64_t deadline)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct timespec ts;

	shmrpc__waiter_join(rpc, w, c);
	shmrpc__ts_from_ns(&ts, deadline == SHMRPC__NEVER ? INT64_MAX / 2 : deadline);
	while (!atomic_load_explicit(&w->got, memory_order_relaxed) &&
	       shmrpc__now_ns() < deadline) {
		if (!rpc->reader)
			shmrpc__rpc_read(n, w, deadline);
		else
			pthread_cond_timedwait(&w->cv, &rpc->lock, &ts);
	}
	shmrpc__waiter_leave(rpc, w);
	return atomic_load_explicit(&w->got, memory_order_relaxed);
}

/* Under the lock: call @c's next result, waiting until @until (the call
 * ends if its own deadline passes): its length, or -errno. */
static int call_wait_locked(struct shmrpc_node *n, struct shmrpc__call *c, void *buf, size_t cap,
			    unsigned *flags, int timeout_ms, int64_t until)
{
	struct shmrpc__waiter w = { .buf = buf, .cap = cap };
	pthread_condattr_t ca;
	int rc;

	if (call_take(n, c, buf, cap, &rc, flags))
		return rc;
	if (c->deadline < until)
		until = c->deadline;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);
	if (call_sleep(n, &w, c, until)) {
		rc = w.rc;
		*flags = w.flags;
	} else if (c->deadline <= shmrpc__now_ns()) {
		shmrpc__call_end(n, c, -ETIMEDOUT); /* c had no waiter: still there */
		call_take(n, c, buf, cap, &rc, flags);
	} else {
		rc = shmrpc__timeout_err(timeout_ms);
		*flags = 0;
	}
	pthread_cond_destroy(&w.cv);
	return rc;
}

static int call_wait_do(struct shmrpc_node *n, uint64_t id, void *resp, size_t cap, unsigned *flags,
			int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__call *c;
	unsigned fl = 0;
	int64_t until;
	int rc;

	if (!n || (!resp && cap) || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	until = timeout_ms < 0 ? SHMRPC__NEVER : shmrpc__deadline(timeout_ms);
	pthread_mutex_lock(&n->rpc->lock);
	c = shmrpc__call_find(n->rpc, id);
	if (!c)
		rc = shmrpc__err(-ENOENT,
				 "call %llu: no such call (its last reply taken, "
				 "cancelled, or never started)",
				 (unsigned long long)id);
	else if (c->w)
		rc = shmrpc__err(-EBUSY, "call %llu: another thread waits for it",
				 (unsigned long long)id);
	else
		rc = call_wait_locked(n, c, resp, cap, &fl, timeout_ms, until);
	pthread_mutex_unlock(&n->rpc->lock);
	shmrpc__cancels_flush(n);
	if (flags)
		*flags = fl;
	return rc;
}

int shmrpc_call_wait(struct shmrpc_node *n, uint64_t id, void *resp, size_t cap, unsigned *flags,
		     int timeout_ms)
{
	return SHMRPC__RET(call_wait_do(n, id, resp, cap, flags, timeout_ms));
}

/* End call @id with @err (0: quietly, not a failure) and retire it
 * whatever it had queued: 0, -ENOENT. */
static int call_stop(struct shmrpc_node *n, uint64_t id, int err)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__call *c;
	bool waited;

	pthread_mutex_lock(&rpc->lock);
	c = shmrpc__call_find(rpc, id);
	if (c && !err) {
		shmrpc__call_abandon(n, c);
	} else if (c) {
		waited = c->w != NULL;
		shmrpc__call_end(n, c, err); /* a waiter gets it, and c is retired */
		if (!waited)
			shmrpc__call_retire(n, c);
	}
	pthread_mutex_unlock(&rpc->lock);
	shmrpc__cancels_flush(n);
	return c ? 0 : -ENOENT;
}

static int call_cancel_do(struct shmrpc_node *n, uint64_t id)
{
	SHMRPC__KEEP_ERRNO;

	if (!n)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	return call_stop(n, id, -ECANCELED);
}

int shmrpc_call_cancel(struct shmrpc_node *n, uint64_t id)
{
	return SHMRPC__RET(call_cancel_do(n, id));
}

/* The call of @id, started: its first reply, the rest of a stream cancelled. */
static int call_first(struct shmrpc_node *n, uint64_t id, void *resp, size_t cap, int timeout_ms)
{
	unsigned flags = 0;
	int rc;

	/* The call's deadline bounds the wait (> 0); 0 and -1 are the wait's.
	 * Not the public shmrpc_call_wait: its return would take the error's
	 * text, and shmrpc_call's would then say only "shmrpc_call: ...". */
	rc = call_wait_do(n, id, resp, cap, &flags, timeout_ms > 0 ? -1 : timeout_ms);
	if (flags & SHMRPC_REPLY_MORE)
		call_stop(n, id, 0); /* the rest of the stream: not wanted */
	else if (rc == -EAGAIN || rc == -ETIMEDOUT)
		call_stop(n, id, -ETIMEDOUT); /* still open (timeout 0): over */
	return rc;
}

int shmrpc_call(struct shmrpc_node *n, const char *to, const void *req, size_t len, void *resp,
		size_t cap, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	uint64_t id;
	int rc;

	if (!n || (!resp && cap))
		return SHMRPC__RET(-EINVAL);
	rc = shmrpc_call_start(n, to, req, len, timeout_ms, &id); /* its text, if it fails */
	return rc ? rc : SHMRPC__RET(call_first(n, id, resp, cap, timeout_ms));
}

int shmrpc_peer_call(struct shmrpc_peer *p, const void *req, size_t len, void *resp, size_t cap,
		     int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	uint64_t id;
	int rc;

	if (!p || (!resp && cap))
		return SHMRPC__RET(-EINVAL);
	rc = shmrpc_peer_call_start(p, req, len, timeout_ms, &id); /* its text, if it fails */
	/* The node is there: shmrpc_close detaches handles before it frees. */
	return rc ? rc : SHMRPC__RET(call_first(peer_node(p), id, resp, cap, timeout_ms));
}
