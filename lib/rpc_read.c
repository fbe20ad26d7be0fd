// SPDX-License-Identifier: MIT
/*
 * The caller's side of request/response below the calls themselves: the
 * table of calls in flight, and the reader, which takes replies out of the
 * reply rings and hands each to its call.
 *
 * Reply rings are read by calling threads, never by the receiving calls
 * (which read messages and requests): replies never show up in
 * shmrpc_recv, calls never consume messages, and no receiving thread is
 * needed. Of the threads waiting for a reply (shmrpc_call_wait), one at a
 * time holds the reader's role: it drains every reply ring, copies each
 * reply straight into the buffer of the thread waiting for it (or, when
 * nobody waits for that call yet, into a copy queued on the call), wakes
 * that thread (its condition variable), and, with nothing to read, spins
 * briefly, then sleeps in the kernel on two words at once (futex_waitv):
 * its node's rep_bell and the registry's epoch. When its own call has its
 * result, it hands the role to another waiting thread. The others sleep on
 * their condition variables, each with its own timeout.
 *
 * Waking the reader, in bell mode (lib/wake.c, the model-checked protocol):
 * every reply ring is armed SLEEP|BELL, after the rep_bell itself, so a
 * server's commit clears the ring word and rings the caller's rep_bell
 * (waker.c, wake_collect_k). An announce of a new reply ring rings it too
 * (connect.c), and so does a thread that ends the reader's own call
 * (shmrpc__call_end). The epoch is bumped and woken by every join, leave
 * and reclaim: the kernel compares it with the value read before the last
 * look, so a death after that look ends the sleep.
 *
 *   reader                                   server (reply ring r)
 *   v = arm rep_bell (E, release)             STORE record, tail (B, release)
 *   arm data_seq[r] SLEEP|BELL (E, release)   FENCE (F)
 *   e = LOAD epoch                            if data_seq[r] SLEEP|BELL: clear
 *   FENCE (G)                                   it (acquire), then rep_bell's
 *   look: rings, pend hint, our result, epoch   SLEEP: bump, FUTEX_WAKE
 *   futex_waitv({rep_bell, v}, {epoch, e})
 *
 * A server's death: whoever reclaims it (the peers' watcher of this
 * process: a caller holds a ring to its server, so it watches it; the
 * reaper; a lazy reclaim) frees its slot, which bumps the epoch. At each
 * wake the reader reads the slot of each pending call's server (a seqlock
 * read, no system call) and notes the calls whose server is gone; then it
 * drains every reply ring, so that replies sent before the death are
 * delivered first; then the noted calls still pending end with -EPIPE. A
 * reply ring its server closed (TX_CLOSED: the server left) ends its
 * calls the same way once drained. A reply ring announced but not opened
 * (no memory or descriptor left: inbound.c keeps it pending) ends the
 * pending calls to its server with that error, at every round it still
 * fails; the reader retries it after each wake, and sleeps meanwhile (it
 * spun until the calls' deadlines before, a whole core for nothing:
 * test_fault's sticky sweep found it). After a sleep that ended at the safety
 * timeout, the servers of pending calls are checked by their liveness lock
 * too (a reclaim if gone), for when nobody watches them.
 *
 * Replies are untrusted: each must come from the ring of the server the
 * call was sent to (a reply with another call's id from another server is
 * dropped), carry a status that is 0 or an errno, and fit its record.
 * Replies to calls that are over (retired, or past their deadline) are
 * dropped and counted as late.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "clock.h"
#include "futex.h"
#include "inbound.h"
#include "layout.h"
#include "node_types.h"
#include "nodeseg.h"
#include "reclaim.h"
#include "registry.h"
#include "ring.h"
#include "rx.h"
#include "wake.h"
#include "waker.h"

#define READ_BUDGET 64		  /* records read from one ring in a row */
#define NO_WAITV_POLL_NS 10000000 /* without futex_waitv: the epoch every 10 ms */

static void ctr_add(_Atomic uint64_t *c)
{
	/* Relaxed: statistics, written by any thread of this node. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------ routing */

/* Under the lock: hand reply (@h, payload @p of @len) from ring @r to its
 * call; a reply nobody can take is late. */
static void route(struct shmrpc_node *n, struct shmrpc__inring *r, const struct shmrpc__rep_hdr *h,
		  const void *p, uint32_t len)
{
	struct shmrpc__call *c = shmrpc__call_find(n->rpc, h->id);
	int32_t status = h->status;
	bool final = status || !(h->flags & SHMRPC__REP_MORE);
	struct shmrpc__waiter *w;
	struct shmrpc__rep *q;

	if (!c || c->srv_slot != r->tx_slot || c->srv_gen != r->tx_gen || c->fin || c->end) {
		/* not ours to deliver: over, or another server's call */
		ctr_add(&n->seg->rpc.late);
		return;
	}
	if (c->deadline != SHMRPC__NEVER && shmrpc__now_ns() >= c->deadline) {
		ctr_add(&n->seg->rpc.late);
		shmrpc__call_end(n, c, -ETIMEDOUT);
		return;
	}
	if (status > 0 || status < -4095)
		status = -EPROTO; /* not an errno: the server is broken */
	if (status) {
		len = 0;
		ctr_add(&n->seg->rpc.fail_remote);
	}
	c->fin = final;
	w = c->w;
	if (w && !c->head && !atomic_load_explicit(&w->got, memory_order_relaxed)) {
		if (!status && len <= w->cap && len)
			memcpy(w->buf, p, len);
		shmrpc__waiter_done(n, w,
				    status	 ? status :
				    len > w->cap ? -EMSGSIZE :
						   (int)len,
				    final ? 0 : SHMRPC_REPLY_MORE);
		if (final) {
			w->call = NULL;
			c->w = NULL;
			shmrpc__call_retire(n, c);
		}
		return;
	}
	if (c->queued + len > n->ring_bytes || !(q = calloc(1, sizeof(*q) + len))) {
		/* Nobody collects them: too much in our memory already. */
		c->fin = false;
		ctr_add(&n->seg->rpc.late);
		shmrpc__call_end(n, c, -ENOBUFS);
		return;
	}
	q->next = NULL;
	q->status = status;
	q->flags = final ? 0 : SHMRPC_REPLY_MORE;
	q->len = len;
	if (len)
		memcpy(q->data, p, len);
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	c->queued += len;
}

/* Under the lock: end the pending calls of server (slot, gen) with @err. */
static void end_server(struct shmrpc_node *n, uint32_t slot, uint32_t gen, int err)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__call *c, *next;
	unsigned b;

	for (b = 0; b < SHMRPC__CALL_BUCKETS; b++)
		for (c = rpc->calls[b]; c; c = next) {
			next = c->next; /* c may be retired */
			if (c->srv_slot == slot && c->srv_gen == gen)
				shmrpc__call_end(n, c, err);
		}
}

/* ------------------------------------------------------------ draining */

/* The next record of reply ring @r: 1, 0 empty, -ENOENT empty for good
 * (its server closed it), -EPROTO. As rx.c's ring_next. */
static int rep_next(struct shmrpc__inring *r, const void **data, uint32_t *len)
{
	int rc = shmrpc__ring_peek(&r->q, data, len);

	if (rc == 1 && (r->q.peek_flags || *len < sizeof(struct shmrpc__rep_hdr)))
		return -EPROTO; /* a reply ring carries replies only */
	if (rc != 0)
		return rc;
	if (!r->draining) {
		/* Acquire: pairs with the server's fetch_or of TX_CLOSED, done
		 * after its last commit: look once more, then it is over. */
		if (!(atomic_load_explicit(&r->q.hdr->flags, memory_order_acquire) &
		      SHMRPC__RING_TX_CLOSED))
			return 0;
		r->draining = true;
		return rep_next(r, data, len);
	}
	return -ENOENT;
}

/* Read up to READ_BUDGET replies of @r: how many. A ring found closed and
 * empty, or corrupt, is dropped, and its server's pending calls end. */
static int drain_ring(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	struct shmrpc__rep_hdr h;
	const void *data;
	uint32_t len, slot = r->tx_slot, gen = r->tx_gen;
	int rc, k;

	for (k = 0; k < READ_BUDGET; k++) {
		rc = rep_next(r, &data, &len);
		if (rc == 0)
			return k;
		if (rc < 0) {
			shmrpc__in_drop(n, r);
			pthread_mutex_lock(&n->rpc->lock);
			end_server(n, slot, gen, rc == -ENOENT ? -EPIPE : -EPROTO);
			pthread_mutex_unlock(&n->rpc->lock);
			return k + 1;
		}
		memcpy(&h, data, sizeof(h)); /* one copy, then trust it */
		pthread_mutex_lock(&n->rpc->lock);
		route(n, r, &h, (const uint8_t *)data + sizeof(h), len - (uint32_t)sizeof(h));
		pthread_mutex_unlock(&n->rpc->lock);
		shmrpc__rx_consume(n, r, len);
	}
	return k;
}

/* Open new reply rings, then read every one: how much was done. */
static int drain_all(struct shmrpc_node *n)
{
	struct shmrpc__inbound *set = &n->rep;
	int done = 0;
	uint32_t i;

	shmrpc__in_scan(n, set); /* a failure stays pending: retried next time */
	/* Backwards: a drop moves the last ring, already read, into its place. */
	for (i = set->n; i-- > 0;)
		done += drain_ring(n, set->v[i]);
	return done;
}

/* ------------------------------------------------------------ deaths */

/* Under the lock: mark the pending calls whose server's slot no longer
 * holds it (they end once the rings are drained): how many. */
static int mark_gone(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__slot_view v;
	struct shmrpc__call *c;
	int marked = 0;
	unsigned b;

	for (b = 0; b < SHMRPC__CALL_BUCKETS; b++)
		for (c = rpc->calls[b]; c; c = c->next) {
			if (c->fin || c->end || c->srv_slot >= n->reg->capacity)
				continue;
			if (shmrpc__reg_read(n->reg, c->srv_slot, &v) == -EAGAIN)
				continue; /* changing now: the epoch moves again */
			if (v.state != SHMRPC__SLOT_LIVE || v.gen != c->srv_gen) {
				c->gone = true; /* ended by end_marked, once drained */
				marked++;
			}
		}
	return marked;
}

/* Under the lock: end the calls mark_gone noted. */
static void end_marked(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	struct shmrpc__call *c, *next;
	unsigned b;

	for (b = 0; b < SHMRPC__CALL_BUCKETS; b++)
		for (c = rpc->calls[b]; c; c = next) {
			next = c->next;
			if (c->gone)
				shmrpc__call_end(n, c, -EPIPE);
		}
}

/* Under the lock: end the pending calls to the server whose reply ring the
 * last scan could not open, with that error: how many. */
static int end_unopened(struct shmrpc_node *n)
{
	struct shmrpc__inbound *set = &n->rep;
	struct shmrpc__call *c, *next;
	int ended = 0;
	unsigned b;

	for (b = 0; b < SHMRPC__CALL_BUCKETS; b++)
		for (c = n->rpc->calls[b]; c; c = next) {
			next = c->next;
			if (!c->fin && !c->end && c->srv_slot == set->open_slot) {
				shmrpc__call_end(n, c, set->open_err);
				ended++;
			}
		}
	if (ended) /* the text of the reader's thread, most often the caller's */
		shmrpc__in_open_err(
			n, set, "the calls waiting for its replies end; the next call tries again");
	return ended;
}

/* One round of the reader: deaths seen since the last round, then every
 * reply ring. How much was done (0: nothing, it may sleep). */
static int reader_round(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	/* Acquire: pairs with reg_bump's release add; the slot changes
	 * that bumped it are seen by mark_gone. */
	uint32_t e = atomic_load_explicit(&n->reg->hdr->epoch, memory_order_acquire);
	int done, marked = 0;
	bool unopened;

	if (e != rpc->epoch) {
		pthread_mutex_lock(&rpc->lock);
		rpc->epoch = e;
		marked = mark_gone(n);
		pthread_mutex_unlock(&rpc->lock);
		shmrpc__in_check_set(n, &n->rep);
	}
	done = drain_all(n);
	unopened = n->rep.retry && n->rep.open_err; /* a reply ring kept pending */
	if (marked || unopened) {
		pthread_mutex_lock(&rpc->lock);
		if (marked)
			end_marked(n);
		if (unopened)
			done += end_unopened(n);
		pthread_mutex_unlock(&rpc->lock);
	}
	return done + marked;
}

/* After a sleep that ended at the safety timeout: check the servers of the
 * pending calls by their liveness lock, reclaiming those gone (the epoch
 * then moves). For when nobody watches them (no watcher, no reaper). */
static void check_alive(struct shmrpc_node *n)
{
	struct shmrpc__rpc *rpc = n->rpc;
	uint32_t slot[8], gen[8], k = 0, i;
	struct shmrpc__call *c;
	unsigned b;

	pthread_mutex_lock(&rpc->lock);
	for (b = 0; b < SHMRPC__CALL_BUCKETS && k < 8; b++)
		for (c = rpc->calls[b]; c && k < 8; c = c->next) {
			for (i = 0; i < k && (slot[i] != c->srv_slot || gen[i] != c->srv_gen); i++)
				;
			if (i == k && !c->fin && !c->end) {
				slot[k] = c->srv_slot;
				gen[k++] = c->srv_gen;
			}
		}
	pthread_mutex_unlock(&rpc->lock);
	for (i = 0; i < k; i++)
		if (shmrpc__node_alive(n->reg, slot[i], gen[i]) == 0)
			shmrpc__reclaim_locked(n->reg, slot[i], gen[i]);
}

/* ------------------------------------------------------------ waiting */

/* Anything for the reader to do: its result, a reply, a new or closing
 * ring, a membership change since epoch @e was checked. */
static bool reader_busy(struct shmrpc_node *n, struct shmrpc__waiter *w, uint32_t e)
{
	struct shmrpc__inbound *set = &n->rep;
	uint32_t i;

	/* Acquire: pairs with waiter_done's release store. A ring kept
	 * pending (set->retry) is not work: retried after the next wake. */
	if (atomic_load_explicit(&w->got, memory_order_acquire) ||
	    atomic_load_explicit(&n->seg->rep_pend_hint, memory_order_relaxed) ||
	    e != n->rpc->epoch)
		return true;
	for (i = 0; i < set->n; i++) {
		struct shmrpc__inring *r = set->v[i];

		if (r->draining || shmrpc__ring_ready(&r->q) ||
		    (atomic_load_explicit(&r->q.hdr->flags, memory_order_relaxed) &
		     SHMRPC__RING_TX_CLOSED))
			return true;
	}
	return false;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__("yield" ::: "memory");
#endif
}

/* Spin up to the node's spin bound for work: true if some came. */
static bool reader_spin(struct shmrpc_node *n, struct shmrpc__waiter *w, int64_t deadline)
{
	int64_t end = shmrpc__now_ns() + n->spin_max_ns;
	unsigned k = 0;

	if (end > deadline)
		end = deadline;
	while (!reader_busy(n, w, n->rpc->epoch)) {
		cpu_relax();
		if ((++k & 15) == 0 && shmrpc__now_ns() >= end)
			return false;
	}
	return true;
}

/* Arm the rep_bell, then every reply ring in bell mode, look once more,
 * and sleep on the rep_bell and the epoch. true: the safety timeout ended
 * it (check the servers' liveness). */
static bool reader_sleep(struct shmrpc_node *n, struct shmrpc__waiter *w, int64_t deadline)
{
	_Atomic uint32_t *bell = &n->seg->rep_bell, *epoch = &n->reg->hdr->epoch;
	struct shmrpc__inbound *set = &n->rep;
	int64_t until = 0;
	uint32_t v, e, i;
	int rc = 0;

	v = shmrpc__wait_arm(bell, 0);
	for (i = 0; i < set->n; i++)
		set->v[i]->armed = shmrpc__wait_arm(&set->v[i]->q.hdr->data_seq, SHMRPC__W_BELL);
	/* Relaxed: the kernel compares it again at the wait; a bump after
	 * this load makes the wait return at once. */
	e = atomic_load_explicit(epoch, memory_order_relaxed);
	shmrpc__wait_fence();
	if (!reader_busy(n, w, e)) {
		atomic_fetch_add_explicit(&n->seg->ctr.sleeps, 1, memory_order_relaxed);
		until = shmrpc__sleep_until(deadline, n->safety_ns);
		rc = shmrpc__futex_wait2(bell, v, epoch, e, until);
		if (rc == -ENOSYS) /* no futex_waitv: look at the epoch often */
			rc = shmrpc__futex_wait(bell, v,
						until < shmrpc__now_ns() + NO_WAITV_POLL_NS ?
							until :
							shmrpc__now_ns() + NO_WAITV_POLL_NS);
	}
	for (i = 0; i < set->n; i++)
		shmrpc__wait_disarm(&set->v[i]->q.hdr->data_seq);
	shmrpc__wait_disarm(bell);
	return rc == -ETIMEDOUT && until < deadline;
}

void shmrpc__rpc_read(struct shmrpc_node *n, struct shmrpc__waiter *w, int64_t deadline)
{
	struct shmrpc__rpc *rpc = n->rpc;
	int done;

	rpc->reader = true;
	rpc->reader_w = w;
	rpc->reader_tid = pthread_self();
	while (!atomic_load_explicit(&w->got, memory_order_relaxed)) {
		pthread_mutex_unlock(&rpc->lock);
		done = reader_round(n);
		shmrpc__cancels_flush(n);
		if (!done && !atomic_load_explicit(&w->got, memory_order_acquire) &&
		    shmrpc__now_ns() < deadline && !reader_spin(n, w, deadline) &&
		    reader_sleep(n, w, deadline))
			check_alive(n);
		pthread_mutex_lock(&rpc->lock);
		if (!done && shmrpc__now_ns() >= deadline)
			break;
	}
	rpc->reader = false;
	rpc->reader_w = NULL;
	shmrpc__waiter_hand_off(rpc);
}
