// SPDX-License-Identifier: MIT
/*
 * The receiving side, for the one thread in a receiving call (rx_busy):
 * find the next record among the inbound rings (inbound.c opens and drops
 * them), consume it and wake its sender if that one sleeps on a full ring,
 * wait for the next one, and the loop of shmrpc_dispatch and of the
 * receiving thread (thread.c). recv.c checks the calls' arguments.
 *
 * Waiting: spin for a short, adaptive time (spin_adapt), then arm every
 * inbound word and the bell, fence, look once more, and sleep in the
 * backend (lib/wake.c has the protocol). Each sleep is bounded by the
 * safety timeout, after which senders are re-checked against the registry.
 *
 * shmrpc_fd mode: a receiving call ends by parking (every word armed, the
 * backend told to signal the eventfd on a wake) and the next one begins by
 * unparking, so the event loop's descriptor becomes readable exactly when a
 * sender wakes a word of ours, or at once if work is already waiting.
 *
 * Fairness: the scan stays on a ring that has data for up to RX_BURST
 * records, then moves on, so one busy sender cannot starve the others.
 * Records are counted as they are consumed, not as they are looked at: a
 * peek, a peek again, or a recv refused with -EMSGSIZE leaves the cursor
 * on the ring of the record it described, so the next look finds that
 * same record.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>

#include "rx.h"
#include "backend.h"
#include "clock.h"
#include "counters.h"
#include "error.h"
#include "events.h"
#include "inbound.h"
#include "layout.h"
#include "node_types.h"
#include "registry.h"
#include "ring.h"
#include "wake.h"

#define RX_BURST 64
#define DISPATCH_MAX 65536 /* one dispatch call handles at most this many */
#define RX_HOOK_MAX 64	   /* requests one look hands to the rpc hook, at most */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__("yield" ::: "memory"); /* no outputs: never dropped */
#endif
}

/* One ring: 1 record peeked, 0 empty, -ENOENT empty for good, -EPROTO. */
static int ring_next(struct shmrpc__inring *r, const void **data, uint32_t *len)
{
	int rc = shmrpc__ring_peek(&r->q, data, len);

	if (rc != 0)
		return rc;
	if (!r->draining) {
		/* Acquire: pairs with the sender's fetch_or of TX_CLOSED, done
		 * after its last commit: look once more, then it is over. */
		if (!(atomic_load_explicit(&r->q.hdr->flags, memory_order_acquire) &
		      SHMRPC__RING_TX_CLOSED))
			return 0;
		r->draining = true;
		rc = shmrpc__ring_peek(&r->q, data, len);
		if (rc != 0)
			return rc;
	}
	return -ENOENT;
}

/*
 * A request or a cancel (a REQ or CANCEL record, ring.c checked the flags)
 * is the node's rpc hook's (lib/rpc_serve.c: it runs the serve function, or
 * answers), then consumed: never returned as a message. The hook is
 * installed at shmrpc_open, so a node that does not serve still answers.
 */
static void rx_hook(struct shmrpc_node *n, struct shmrpc__inring *r, const void *data, uint32_t len)
{
	n->rpc_hook(n, r, data, len);
	/* In a batch that took from r already (recv_batch): taken with its
	 * records, given back with them (r is on the list once). */
	if (r->unpub)
		shmrpc__rx_take(n, r, len);
	else
		shmrpc__rx_consume(n, r, len);
}

/* @r is empty for good (-ENOENT) or corrupt (-EPROTO): dropped (its sender
 * gets -EPIPE), or doomed while a peek into it is held (a held record
 * cannot vanish but by a corrupt ring). What a batch took from it is given
 * back first. true: look at the rings again. */
static bool ring_failed(struct shmrpc_node *n, struct shmrpc__inring *r, int rc)
{
	bool held = r == n->in.peeked;

	if (r->unpub)
		shmrpc__rx_flush(n);
	if (rc == -EPROTO)
		shmrpc__log(SHMRPC_LOG_WARN,
			    "node %s: the ring from '%s' (slot %u) is corrupt: dropped, its sender "
			    "gets -EPIPE",
			    n->name, r->from, r->tx_slot);
	shmrpc__in_drop(n, r);
	return rc == -ENOENT && !held;
}

/* The next record of any ring: 1 (peeked, in *rp), 0 none, -EPROTO.
 * Requests met on the way go to the rpc hook (at most RX_HOOK_MAX a call,
 * then 0: the caller's wait finds the rest pending at once). */
static int rx_next(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		   uint32_t *len)
{
	struct shmrpc__inbound *in = &n->in;
	struct shmrpc__inring *r;
	uint32_t k, i, hooked = 0;
	int rc;

	/* The held peek's ring turned corrupt: the message it describes is
	 * lost, say so until it is released (shmrpc_release drops the ring). */
	if (in->peeked && in->peeked->doomed)
		return -EPROTO;
	/* Events first (a held peek of a message stays first), then new rings,
	 * each behind its sender's JOIN (events.c). */
	if (n->ev && (!in->peeked || !in->peeked->q.hdr) &&
	    (rc = shmrpc__ev_next(n, rp, data, len)))
		return rc;
	k = in->n;
	shmrpc__in_scan_new(n);
	if (n->ev)
		shmrpc__ev_gate(n, k);
again:
	for (k = 0; k < in->n; k++) {
		i = in->cur + k < in->n ? in->cur + k : in->cur + k - in->n;
		r = in->v[i];
		if (r->gate && shmrpc__ev_gated(n, r))
			continue;
		rc = ring_next(r, data, len);
		if (rc == 0)
			continue;
		if (rc < 0) {
			if (ring_failed(n, r, rc))
				goto again;
			return -EPROTO;
		}
		if (i != in->cur) {
			in->cur = i;
			in->burst = 0;
		}
		/* A BCAST record (ring.c accepts it only on a node that takes
		 * marks) is a message: ring.c handed out the message alone. */
		if (r->q.peek_flags & (SHMRPC__REC_REQ | SHMRPC__REC_CANCEL)) {
			rx_hook(n, r, *data, *len);
			if (++hooked == RX_HOOK_MAX)
				return 0;
			goto again;
		}
		*rp = r;
		return 1;
	}
	/* A ring drained just now may be what a LEAVE or DEATH waited for. */
	return n->ev ? shmrpc__ev_next(n, rp, data, len) : 0;
}

/* Consume @r's peeked record in our view; its head store and the space
 * wake are rx_give_back's. An event (no ring: n->ev->src) is consumed. */
static void rx_take(struct shmrpc_node *n, struct shmrpc__inring *r, uint32_t len)
{
	/* n->in, or n->rep (rpc_call.c); an event's pseudo ring: n->in */
	struct shmrpc__inbound *in = r->set ? r->set : &n->in;

	if (in->peeked == r)
		in->peeked = NULL; /* a peek ends when its record is consumed */
	if (!r->q.hdr) {
		shmrpc__ev_consume(n);
		return;
	}
	/* rx_next put the cursor on r; its turn ends after RX_BURST. */
	if (r->idx == in->cur && ++in->burst >= RX_BURST) {
		in->cur = r->idx + 1 < in->n ? r->idx + 1 : 0;
		in->burst = 0;
	}
	r->unpub++;
	/* The record's bytes, as its sender counted them (a mark included) */
	r->unpub_bytes += r->q.peek_flags == SHMRPC__REC_BCAST ? r->q.peek_len : len;
	shmrpc__ring_take(&r->q);
}

/* Hand back what was taken from @r: one head store, at most one wake. */
static void rx_give_back(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	struct shmrpc__ring_hdr *h = r->q.hdr;
	_Atomic uint32_t *w = &h->space_seq;

	shmrpc__ctr_inc(&h->rx_msgs, r->unpub);
	shmrpc__ctr_inc(&h->rx_bytes, r->unpub_bytes);
	r->unpub = 0;
	r->unpub_bytes = 0;
	shmrpc__ring_give_back(&r->q);
	if (shmrpc__wake_prepare(w) != SHMRPC__WAKE_NONE) {
		shmrpc__ctr_inc(&h->rx_wakes, 1);
		n->be->wake(n, &w, 1);
	}
}

void shmrpc__rx_consume(struct shmrpc_node *n, struct shmrpc__inring *r, uint32_t len)
{
	rx_take(n, r, len);
	if (r->q.hdr)
		rx_give_back(n, r);
}

void shmrpc__rx_take(struct shmrpc_node *n, struct shmrpc__inring *r, uint32_t len)
{
	bool listed = r->unpub != 0;

	rx_take(n, r, len);
	if (r->q.hdr && !listed) {
		r->unpub_next = n->in.unpub;
		n->in.unpub = r;
	}
}

void shmrpc__rx_flush(struct shmrpc_node *n)
{
	struct shmrpc__inring *r;

	while ((r = n->in.unpub)) {
		n->in.unpub = r->unpub_next;
		r->unpub_next = NULL;
		rx_give_back(n, r);
	}
}

/* Anything to do: a record, a ring to drop, a new ring, or stop. */
static bool rx_pending(struct shmrpc_node *n)
{
	uint32_t i;

	if (atomic_load_explicit(&n->stop, memory_order_relaxed) ||
	    atomic_load_explicit(&n->seg->pend_hint, memory_order_relaxed))
		return true;
	if (n->ev && shmrpc__ev_pending(n))
		return true;
	for (i = 0; i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		/* nothing to do on it before the release, or before an event */
		if (r->doomed || (r->gate && shmrpc__ev_gated(n, r)))
			continue;
		if (r->draining || shmrpc__ring_ready(&r->q) ||
		    (atomic_load_explicit(&r->q.hdr->flags, memory_order_relaxed) &
		     SHMRPC__RING_TX_CLOSED))
			return true;
	}
	return false;
}

/*
 * The bell first: a producer that finds a ring word armed in bell mode and
 * clears it must find the bell armed too, or it skips the bell and nobody
 * wakes us (tests/model found that lost wakeup with the rings armed first).
 * The release of each arming CAS orders the bell's before the ring's; the
 * waker's acquire CAS on the ring word then sees the armed bell.
 */
static void arm_all(struct shmrpc_node *n)
{
	uint32_t i;

	n->bell_armed = shmrpc__wait_arm(&n->seg->bell, 0);
	/* Acquire: pairs with reg_bump's release; the look at the log after
	 * this load sees every event appended before this epoch (events.c). */
	if (n->ev_word)
		n->ev_armed = atomic_load_explicit(n->ev_word, memory_order_acquire);
	for (i = 0; i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		r->bell_mode = i >= n->ring_words;
		r->armed = shmrpc__wait_arm(&r->q.hdr->data_seq, r->bell_mode ? SHMRPC__W_BELL : 0);
	}
	shmrpc__wait_fence();
}

static void disarm_all(struct shmrpc_node *n)
{
	uint32_t i;

	for (i = 0; i < n->in.n; i++)
		shmrpc__wait_disarm(&n->in.v[i]->q.hdr->data_seq);
	shmrpc__wait_disarm(&n->seg->bell);
}

/* Spin until there is work or the adaptive bound passes: the time it took,
 * or -1. */
static int64_t rx_spin(struct shmrpc_node *n, int64_t start, int64_t deadline)
{
	int64_t end = start + n->spin_ns, now;
	unsigned k = 0;

	if (end > deadline)
		end = deadline;
	while (!rx_pending(n)) {
		cpu_relax();
		if ((++k & 15) == 0 && (now = shmrpc__now_ns()) >= end)
			return -1;
	}
	return shmrpc__now_ns() - start;
}

/*
 * The spin's bound learns from how long waits took: a message that came
 * within the configured maximum (caught by the spin, or soon after a sleep
 * began) raises it to twice that time, so the next one like it is caught
 * without a sleep; a wait longer than the maximum halves it. It never drops
 * below 1 us, so a short spin keeps probing for bursts.
 */
static void spin_adapt(struct shmrpc_node *n, int64_t waited)
{
	int64_t floor = n->spin_max_ns < 1000 ? n->spin_max_ns : 1000;

	if (!n->spin_max_ns)
		return;
	if (waited < n->spin_max_ns) {
		if (2 * waited > n->spin_ns)
			n->spin_ns = 2 * waited < n->spin_max_ns ? 2 * waited : n->spin_max_ns;
	} else {
		n->spin_ns /= 2;
	}
	if (n->spin_ns < floor)
		n->spin_ns = floor;
}

static int rx_wait(struct shmrpc_node *n, int64_t deadline)
{
	int64_t start = shmrpc__now_ns(), until, spun;
	int rc;

	if (n->spin_ns > 0 && (spun = rx_spin(n, start, deadline)) >= 0) {
		shmrpc__ctr_inc(&n->seg->ctr.spins, 1); /* the receiving thread's alone */
		spin_adapt(n, spun);
		return atomic_load_explicit(&n->stop, memory_order_relaxed) ? -EINTR : 0;
	}
	for (;;) {
		if (shmrpc__now_ns() >= deadline)
			return -ETIMEDOUT;
		arm_all(n);
		rc = 0;
		if (!rx_pending(n)) {
			atomic_fetch_add_explicit(&n->seg->ctr.sleeps, 1, memory_order_relaxed);
			until = shmrpc__sleep_until(deadline, n->safety_ns);
			rc = n->be->sleep(n, until);
			if (rc == -ETIMEDOUT && until < deadline)
				shmrpc__in_check_senders(n);
		}
		disarm_all(n);
		/* e.g. -ENOMEM setting up a ring: an error, not an endless retry */
		if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR)
			return rc;
		if (rx_pending(n)) {
			spin_adapt(n, shmrpc__now_ns() - start);
			return atomic_load_explicit(&n->stop, memory_order_relaxed) ? -EINTR : 0;
		}
		/* A ring we could not open yet: try it again after each sleep
		 * (the safety timeout bounds them), not in a loop. */
		if (n->in.retry)
			return 0;
	}
}

int shmrpc__rx_enter(struct shmrpc_node *n)
{
	int expected = 0;
	eventfd_t v;

	if (n->forked)
		return -ECHILD;
	/* Acquire: pairs with rx_exit's release; the previous receiving
	 * thread's changes to the inbound set are ours to see. */
	if (!atomic_compare_exchange_strong_explicit(&n->rx_busy, &expected, 1,
						     memory_order_acquire, memory_order_relaxed))
		return -EBUSY;
	if (atomic_load_explicit(&n->evfd, memory_order_relaxed) >= 0) {
		eventfd_read(n->evfd, &v); /* reset; non-blocking */
		if (n->parked) {
			disarm_all(n);
			n->parked = false;
		}
	}
	return 0;
}

/* fd mode: arm everything and leave it armed for the event loop. */
static void rx_park(struct shmrpc_node *n)
{
	arm_all(n);
	if (!rx_pending(n) && !n->be->park(n)) {
		n->parked = true;
		return;
	}
	disarm_all(n);
	eventfd_write(n->evfd, 1); /* work is waiting: come back at once */
}

void shmrpc__rx_exit(struct shmrpc_node *n)
{
	if (atomic_load_explicit(&n->evfd, memory_order_relaxed) >= 0 && !n->thread_on)
		rx_park(n);
	/* Release: pairs with rx_enter's acquire. */
	atomic_store_explicit(&n->rx_busy, 0, memory_order_release);
}

/*
 * An announced ring that could not be opened (inbound.c keeps it pending):
 * said once, by the first receiving call that has no record to return, with
 * text naming the sender (the public call's shmrpc__ret keeps it); later
 * calls retry it quietly until it opens.
 */
static int rx_open_err(struct shmrpc_node *n)
{
	n->in.open_told = true;
	return shmrpc__in_open_err(n, &n->in, "kept, retried by the next receiving calls");
}

int shmrpc__rx_get(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		   uint32_t *len, struct shmrpc__tmo *t)
{
	int rc;

	for (;;) {
		rc = rx_next(n, rp, data, len);
		if (rc)
			return rc;
		if (n->in.open_err && !n->in.open_told)
			return rx_open_err(n);
		if (t->ms == 0)
			return -EAGAIN;
		rc = rx_wait(n, shmrpc__tmo_deadline(t));
		if (rc)
			return rc == -ETIMEDOUT ? shmrpc__timeout_err(t->ms) : rc;
	}
}

int shmrpc__dispatch(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms)
{
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	int rc, count = 0;

	rc = shmrpc__rx_get(n, &r, &data, &len, &t);
	while (rc > 0) {
		fn(n, r->from, data, len, arg);
		shmrpc__rx_consume(n, r, len);
		if (++count >= DISPATCH_MAX)
			break;
		rc = rx_next(n, &r, &data, &len);
	}
	/* A corrupt ring met after some messages surfaces at the next call
	 * only if it is still corrupt then; it was dropped already. */
	return count ? count : rc;
}

int shmrpc__rx_next(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		    uint32_t *len)
{
	return rx_next(n, rp, data, len);
}
