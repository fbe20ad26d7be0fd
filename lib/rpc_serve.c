// SPDX-License-Identifier: MIT
/*
 * The server's side of request/response: shmrpc_serve, the receive path's
 * hook for requests and cancels, the requests in progress, and the replies.
 *
 * A request is a REQ record on the caller's message ring to us
 * (struct shmrpc__req_hdr, then its payload), so it keeps its order with
 * that caller's messages and rides the same back-pressure. Whichever
 * receiving call meets it (rx.c) hands it to the hook here, which
 * consumes it afterwards: it is never returned as a message. The hook drops
 * a request whose deadline passed (counted as expired), answers -EOPNOTSUPP
 * when nothing serves, -EBUSY when opts.max_calls requests are in progress
 * already, and otherwise notes the request in progress and runs the serve
 * function on it, with req->data pointing into the ring.
 *
 * A request is in progress from then until its last reply (a reply without
 * SHMRPC_REPLY_MORE, or shmrpc_reply_error), from any thread: a table keyed
 * by the caller's incarnation (slot, gen) and the call's id, under its own
 * mutex. A CANCEL record (the caller gave up) marks its entry;
 * shmrpc_req_cancelled reads the mark. A request whose caller went away
 * leaves the table when a reply to it fails (-EPIPE), or when the table is
 * full (a sweep of the entries whose caller's slot changed): a server that
 * never replies to a live caller keeps its entry, up to the bound.
 *
 * Replies go on a reply ring to the caller (reply.c keeps the connections:
 * the first reply to a caller incarnation creates it, sized by the
 * caller's ring_bytes): {id, status, flags} + payload. A reply waits while
 * that ring is full, until the request's deadline; a caller that leaves or
 * dies ends the wait with -EPIPE.
 *
 * The serve function runs with serve_lock held for reading, so that once
 * shmrpc_serve returns the previous function runs no more (outside the
 * function itself, which may call shmrpc_serve: the receiving thread holds
 * the read lock, and no writer can run meanwhile).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "clock.h"
#include "error.h"
#include "layout.h"
#include "node_types.h"
#include "registry.h"
#include "conntab.h"
#include "reply.h"
#include "ring.h"
#include "tx.h"

/* A request's _priv[0] holds its caller's (slot, gen) as one word. */
_Static_assert(sizeof(void *) == sizeof(uint64_t), "64-bit pointers");

#define LOOK_MAX 4096		      /* records a cancel look ahead reads, at most */
#define HOOK_ERR_NS (100 * 1000000ll) /* an error reply from the hook waits this long */

/* The request the serve function of this thread runs on (the hook's). */
static _Thread_local struct {
	struct shmrpc_node *n;
	struct shmrpc__inring *r;
	uint64_t id;
	uint32_t slot, gen;
} tls_req;

static void ctr_add(_Atomic uint64_t *c)
{
	/* Relaxed: statistics, written by any thread of this node. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void shmrpc__serve_init(struct shmrpc__rpc *rpc)
{
	pthread_rwlock_init(&rpc->serve_lock, NULL);
	pthread_mutex_init(&rpc->prog_lock, NULL);
	shmrpc__rep_init(&rpc->reps);
}

void shmrpc__serve_free(struct shmrpc__rpc *rpc, bool destroy)
{
	struct shmrpc__prog *p;
	unsigned b;

	for (b = 0; b < SHMRPC__PROG_BUCKETS; b++)
		while ((p = rpc->prog[b])) {
			rpc->prog[b] = p->next;
			free(p);
		}
	while ((p = rpc->free_prog)) {
		rpc->free_prog = p->next;
		free(p);
	}
	shmrpc__ctab_free_all(&rpc->reps.t, destroy);
	if (destroy) {
		pthread_rwlock_destroy(&rpc->serve_lock);
		pthread_mutex_destroy(&rpc->prog_lock);
	}
}

/* ------------------------------------------------------------ in progress */

static struct shmrpc__prog **prog_bucket(struct shmrpc__rpc *rpc, uint32_t slot, uint32_t gen,
					 uint64_t id)
{
	uint64_t h = (id ^ ((uint64_t)slot << 32 | gen)) * 0x9e3779b97f4a7c15ull;

	return &rpc->prog[(h >> 40) % SHMRPC__PROG_BUCKETS];
}

/* Under prog_lock: the entry of call @id of caller (slot, gen), or NULL. */
static struct shmrpc__prog *prog_find(struct shmrpc__rpc *rpc, uint32_t slot, uint32_t gen,
				      uint64_t id)
{
	struct shmrpc__prog *p;

	for (p = *prog_bucket(rpc, slot, gen, id); p; p = p->next)
		if (p->id == id && p->slot == slot && p->gen == gen)
			return p;
	return NULL;
}

/* Under prog_lock: take @p out. */
static void prog_del(struct shmrpc__rpc *rpc, struct shmrpc__prog *p)
{
	struct shmrpc__prog **pp = prog_bucket(rpc, p->slot, p->gen, p->id);

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	p->next = rpc->free_prog;
	rpc->free_prog = p;
	rpc->nprog--;
}

/* Is caller (slot, gen) gone (its slot no longer holds it)? */
static bool caller_gone(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	struct shmrpc__slot_view v;

	if (slot >= n->reg->capacity)
		return true;
	if (shmrpc__reg_read(n->reg, slot, &v) == -EAGAIN)
		return false; /* changing: cannot tell yet */
	return v.state != SHMRPC__SLOT_LIVE || v.gen != gen;
}

/* Under prog_lock, the table full: drop the entries of callers gone. */
static void prog_sweep(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__prog *p, *next;
	unsigned b;

	for (b = 0; b < SHMRPC__PROG_BUCKETS; b++)
		for (p = rpc->prog[b]; p; p = next) {
			next = p->next;
			if (caller_gone(n, p->slot, p->gen))
				prog_del(rpc, p);
		}
}

/* Note call @h of caller (slot, gen) in progress: 0, -EBUSY, -ENOMEM. */
static int prog_add(struct shmrpc_node *n, uint32_t slot, uint32_t gen,
		    const struct shmrpc__req_hdr *h)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__prog *p, **b;
	int err = 0;

	pthread_mutex_lock(&rpc->prog_lock);
	if (rpc->nprog >= rpc->max_calls)
		prog_sweep(n);
	if (rpc->nprog >= rpc->max_calls) {
		err = -EBUSY;
	} else if ((p = rpc->free_prog) || (p = calloc(1, sizeof(*p)))) {
		if (p == rpc->free_prog)
			rpc->free_prog = p->next;
		/* A caller reusing an id it has in progress: the newer wins. */
		*p = (struct shmrpc__prog){ NULL, slot, gen, h->id, h->deadline_ns, false };
		b = prog_bucket(rpc, slot, gen, h->id);
		p->next = *b;
		*b = p;
		rpc->nprog++;
	} else {
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&rpc->prog_lock);
	return err;
}

/* ------------------------------------------------------------ replies */

/* One reply record to call @id of caller (slot, gen): status, flags and
 * @len bytes of @data. Waits for room until @deadline (0: none), not at
 * all with SHMRPC_REPLY_NOWAIT (-EAGAIN). */
static int reply_send(struct shmrpc_node *n, uint32_t slot, uint32_t gen, uint64_t id,
		      int64_t deadline, int32_t status, unsigned flags, const void *data,
		      size_t len)
{
	struct shmrpc__tmo t = SHMRPC__TMO(-1);
	struct shmrpc__rep_hdr h = { id, status, flags & SHMRPC_REPLY_MORE };
	struct shmrpc__conn *c;
	uint8_t *buf;
	int rc;

	if (flags & SHMRPC_REPLY_NOWAIT) {
		t = SHMRPC__TMO(0);
	} else if (deadline) {
		t.ms = 1; /* timed: the deadline below */
		t.set = true;
		t.deadline = deadline;
	}
	rc = shmrpc__rep_acquire(n, &n->rpc->reps, slot, gen, &t, &c);
	if (rc)
		return rc;
	if (len > SIZE_MAX - sizeof(h))
		rc = -EMSGSIZE;
	else
		rc = shmrpc__tx_reserve(n, c, sizeof(h) + len, (void **)&buf, &t);
	if (rc) {
		shmrpc__rep_unlock(n, &n->rpc->reps, c);
		return rc;
	}
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), data, len);
	shmrpc__tx_wake(n, shmrpc__tx_commit_flags(n, c, sizeof(h) + len, 0), 0);
	return 0;
}

/* A reply to @req in progress: sent, and the entry gone when it was the
 * last one, or when the request cannot go on (caller gone, deadline). */
static int reply_req(struct shmrpc_node *n, const struct shmrpc_req *req, int32_t status,
		     unsigned flags, const void *data, size_t len)
{
	struct shmrpc__rpc *rpc = n->rpc;
	uint64_t key = (uint64_t)(uintptr_t)req->_priv[0];
	uint32_t slot = (uint32_t)(key >> 32), gen = (uint32_t)key;
	struct shmrpc__prog *p;
	int64_t deadline = 0;
	int rc;

	pthread_mutex_lock(&rpc->prog_lock);
	p = req->_priv[1] == n ? prog_find(rpc, slot, gen, req->id) : NULL;
	if (p)
		deadline = p->deadline;
	pthread_mutex_unlock(&rpc->prog_lock);
	if (!p) {
		rc = req->_priv[1] == n && caller_gone(n, slot, gen) ? -EPIPE : -ENOENT;
		ctr_add(&n->seg->rpc.reply_fail);
		return rc;
	}
	rc = reply_send(n, slot, gen, req->id, deadline, status, flags, data, len);
	if ((!rc && !(flags & SHMRPC_REPLY_MORE)) || rc == -EPIPE || rc == -ETIMEDOUT) {
		pthread_mutex_lock(&rpc->prog_lock);
		p = prog_find(rpc, slot, gen, req->id);
		if (p)
			prog_del(rpc, p);
		pthread_mutex_unlock(&rpc->prog_lock);
	}
	if (rc != -EAGAIN) /* NOWAIT and full: not a failure, tried again */
		ctr_add(rc ? &n->seg->rpc.reply_fail : &n->seg->rpc.replies);
	return rc;
}

int shmrpc_reply(struct shmrpc_node *n, const struct shmrpc_req *req, const void *data, size_t len,
		 unsigned flags)
{
	SHMRPC__KEEP_ERRNO;

	if (!n || !req || (!data && len) || (flags & ~(SHMRPC_REPLY_MORE | SHMRPC_REPLY_NOWAIT)))
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	return SHMRPC__RET(reply_req(n, req, 0, flags, data, len));
}

int shmrpc_reply_error(struct shmrpc_node *n, const struct shmrpc_req *req, int err)
{
	SHMRPC__KEEP_ERRNO;

	if (!n || !req || err >= 0 || err < -4095)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	return SHMRPC__RET(reply_req(n, req, err, 0, NULL, 0));
}

/* ------------------------------------------------------------ the hook */

/* The hook's own error reply: waits for room a short while at most (the
 * receiving call must go on), never past the request's deadline. */
static void hook_error(struct shmrpc_node *n, struct shmrpc__inring *r,
		       const struct shmrpc__req_hdr *h, int err)
{
	int64_t until = shmrpc__now_ns() + HOOK_ERR_NS;

	if (h->deadline_ns && h->deadline_ns < until)
		until = h->deadline_ns;
	ctr_add(&n->seg->rpc.refused);
	reply_send(n, r->tx_slot, r->tx_gen, h->id, until, err, 0, NULL, 0);
}

/* A CANCEL record from @r: mark the call it names, if in progress. */
static void hook_cancel(struct shmrpc_node *n, struct shmrpc__inring *r, const void *data,
			uint32_t len)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__cancel_rec k;
	struct shmrpc__prog *p;

	if (len != sizeof(k))
		return; /* not a cancel we make: ignored */
	memcpy(&k, data, sizeof(k));
	pthread_mutex_lock(&rpc->prog_lock);
	p = prog_find(rpc, r->tx_slot, r->tx_gen, k.id);
	if (p)
		p->cancelled = true;
	pthread_mutex_unlock(&rpc->prog_lock);
}

/* Run the serve function on request @h (payload @data, @len) from @r. */
static void hook_serve(struct shmrpc_node *n, struct shmrpc__inring *r,
		       const struct shmrpc__req_hdr *h, const void *data, uint32_t len)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc_req req;
	int err;

	pthread_rwlock_rdlock(&rpc->serve_lock);
	if (!rpc->fn) {
		pthread_rwlock_unlock(&rpc->serve_lock);
		hook_error(n, r, h, -EOPNOTSUPP);
		return;
	}
	err = prog_add(n, r->tx_slot, r->tx_gen, h);
	if (err) {
		pthread_rwlock_unlock(&rpc->serve_lock);
		hook_error(n, r, h, err);
		return;
	}
	req.data = data;
	req.len = len;
	memcpy(req.from, r->from, sizeof(req.from));
	req.id = h->id;
	req.deadline_ns = h->deadline_ns;
	req._priv[0] = (void *)(uintptr_t)((uint64_t)r->tx_slot << 32 | r->tx_gen);
	req._priv[1] = n;
	tls_req.n = n;
	tls_req.r = r;
	tls_req.id = h->id;
	tls_req.slot = r->tx_slot;
	tls_req.gen = r->tx_gen;
	ctr_add(&n->seg->rpc.served);
	rpc->fn(n, &req, rpc->arg);
	tls_req.n = NULL;
	pthread_rwlock_unlock(&rpc->serve_lock);
}

void shmrpc__rpc_hook(struct shmrpc_node *n, struct shmrpc__inring *r, const void *data,
		      uint32_t len)
{
	struct shmrpc__req_hdr h;

	if (r->q.peek_flags == SHMRPC__REC_CANCEL) {
		hook_cancel(n, r, data, len);
		return;
	}
	if (len < sizeof(h))
		return;		     /* not a request we make: dropped */
	memcpy(&h, data, sizeof(h)); /* one copy, then trust it */
	/* Its caller has given up, or left (TX_CLOSED: it closed, or was
	 * reclaimed): nobody would take the replies. Relaxed: a hint; a
	 * caller that goes later is found by the reply (-EPIPE). */
	if ((h.deadline_ns && shmrpc__now_ns() >= h.deadline_ns) ||
	    (atomic_load_explicit(&r->q.hdr->flags, memory_order_relaxed) &
	     SHMRPC__RING_TX_CLOSED)) {
		ctr_add(&n->seg->rpc.expired);
		return;
	}
	hook_serve(n, r, &h, (const uint8_t *)data + sizeof(h), len - (uint32_t)sizeof(h));
}

/* ------------------------------------------------------------ the calls */

static int serve_do(struct shmrpc_node *n, shmrpc_serve_fn fn, void *arg)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__rpc *rpc;
	bool inside;

	if (!n)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rpc = n->rpc;
	/* From inside the serve function, this thread holds the read lock,
	 * which keeps every other writer out: it may write as it is. */
	inside = tls_req.n == n;
	if (!inside)
		pthread_rwlock_wrlock(&rpc->serve_lock);
	rpc->fn = fn;
	rpc->arg = arg;
	/* Relaxed: a hint for callers (shmrpc_call's -EOPNOTSUPP); the
	 * requests that come anyway are answered by the hook. */
	atomic_store_explicit(&n->seg->serving, fn ? 1 : 0, memory_order_relaxed);
	if (!inside)
		pthread_rwlock_unlock(&rpc->serve_lock);
	return 0;
}

int shmrpc_serve(struct shmrpc_node *n, shmrpc_serve_fn fn, void *arg)
{
	return SHMRPC__RET(serve_do(n, fn, arg));
}

/* Inside the serve function of @req's own request, in the receiving
 * call: is a CANCEL of it queued behind the request? A read-only look. */
static bool cancel_queued(struct shmrpc_node *n, const struct shmrpc_req *req, uint32_t slot,
			  uint32_t gen)
{
	struct shmrpc__cancel_rec k;
	const void *data;
	uint32_t len, flags;
	uint64_t pos;
	int i;

	if (tls_req.n != n || tls_req.id != req->id || tls_req.slot != slot || tls_req.gen != gen)
		return false;
	pos = tls_req.r->q.peek_end;
	for (i = 0;
	     i < LOOK_MAX && shmrpc__ring_look(&tls_req.r->q, &pos, &data, &len, &flags) == 1;
	     i++) {
		if (flags != SHMRPC__REC_CANCEL || len != sizeof(k))
			continue;
		memcpy(&k, data, sizeof(k));
		if (k.id == req->id)
			return true;
	}
	return false;
}

static int req_cancelled_do(struct shmrpc_node *n, const struct shmrpc_req *req)
{
	SHMRPC__KEEP_ERRNO;
	uint64_t key;
	uint32_t slot, gen;
	struct shmrpc__prog *p;
	bool over;

	if (!n || !req || req->_priv[1] != n)
		return -EINVAL;
	key = (uint64_t)(uintptr_t)req->_priv[0];
	slot = (uint32_t)(key >> 32);
	gen = (uint32_t)key;
	pthread_mutex_lock(&n->rpc->prog_lock);
	p = prog_find(n->rpc, slot, gen, req->id);
	over = !p || p->cancelled;
	pthread_mutex_unlock(&n->rpc->prog_lock);
	if (over || (req->deadline_ns && shmrpc__now_ns() >= req->deadline_ns) ||
	    caller_gone(n, slot, gen))
		return 1;
	return cancel_queued(n, req, slot, gen);
}

int shmrpc_req_cancelled(struct shmrpc_node *n, const struct shmrpc_req *req)
{
	return SHMRPC__RET(req_cancelled_do(n, req));
}
