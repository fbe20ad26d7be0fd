// SPDX-License-Identifier: MIT
/*
 * Receiving: find the next record among the inbound rings, hand it over
 * (copied, in place, or to a handler), release it, and wake its sender if
 * that one sleeps on a full ring.
 *
 * Waiting: spin for a short bounded time (SHMRPC_SPIN_NS / opts), then arm
 * every inbound word and the bell, fence, look once more, and sleep in the
 * backend (lib/wake.c has the protocol). Each sleep is bounded by the
 * safety timeout, after which senders are re-checked against the registry.
 *
 * Fairness: the scan stays on a ring that has data for up to RX_BURST
 * records, then moves on, so one busy sender cannot starve the others.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define RX_BURST 64
#define DISPATCH_MAX 65536 /* one dispatch call handles at most this many */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

int shmrpc__rx_enter(struct shmrpc_node *n)
{
	int expected = 0;

	/* Acquire: pairs with rx_exit's release; the previous receiving
	 * thread's changes to the inbound set are ours to see. */
	if (!atomic_compare_exchange_strong_explicit(&n->rx_busy, &expected, 1,
						     memory_order_acquire, memory_order_relaxed))
		return -EBUSY;
	return 0;
}

void shmrpc__rx_exit(struct shmrpc_node *n)
{
	/* Release: pairs with rx_enter's acquire. */
	atomic_store_explicit(&n->rx_busy, 0, memory_order_release);
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

static void drop_corrupt(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	/* Its sender gets -EPIPE rather than writing into the void. */
	atomic_fetch_or(&r->q.hdr->flags, SHMRPC__RING_RX_CLOSED);
	if (shmrpc__wake_prepare(&r->q.hdr->space_seq) != SHMRPC__WAKE_NONE)
		shmrpc__futex_wake(&r->q.hdr->space_seq);
	shmrpc__in_drop(n, r);
}

/* The next record of any ring: 1 (peeked, in *rp), 0 none, -EPROTO. */
static int rx_next(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		   uint32_t *len)
{
	struct shmrpc__inbound *in = &n->in;
	struct shmrpc__inring *r;
	uint32_t k, i;
	int rc;

	shmrpc__in_scan_new(n);
again:
	for (k = 0; k < in->n; k++) {
		i = in->cur + k < in->n ? in->cur + k : in->cur + k - in->n;
		r = in->v[i];
		rc = ring_next(r, data, len);
		if (rc == 0)
			continue;
		if (rc == -ENOENT) {
			shmrpc__in_drop(n, r);
			goto again;
		}
		if (rc < 0) {
			drop_corrupt(n, r);
			return rc;
		}
		if (i != in->cur) {
			in->cur = i;
			in->burst = 0;
		}
		if (++in->burst >= RX_BURST) {
			in->cur = i + 1 < in->n ? i + 1 : 0;
			in->burst = 0;
		}
		*rp = r;
		return 1;
	}
	return 0;
}

static void ctr_inc(_Atomic uint64_t *c, uint64_t v)
{
	/* Relaxed load + store: consumer counters have one writer, the
	 * receiving thread. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* Consume the peeked record of @r, waking its sender if it waits. */
static void rx_consume(struct shmrpc_node *n, struct shmrpc__inring *r, uint32_t len)
{
	struct shmrpc__ring_hdr *h = r->q.hdr;
	_Atomic uint32_t *w = &h->space_seq;

	ctr_inc(&h->rx_msgs, 1);
	ctr_inc(&h->rx_bytes, len);
	shmrpc__ring_release(&r->q);
	if (shmrpc__wake_prepare(w) != SHMRPC__WAKE_NONE) {
		ctr_inc(&h->rx_wakes, 1);
		n->be->wake(n, &w, 1);
	}
}

/* Anything to do: a record, a ring to drop, a new ring, or stop. */
static bool rx_pending(struct shmrpc_node *n)
{
	uint32_t i;

	if (atomic_load_explicit(&n->stop, memory_order_relaxed) ||
	    atomic_load_explicit(&n->seg->pend_hint, memory_order_relaxed))
		return true;
	for (i = 0; i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		if (r->draining || shmrpc__ring_ready(&r->q) ||
		    (atomic_load_explicit(&r->q.hdr->flags, memory_order_relaxed) &
		     SHMRPC__RING_TX_CLOSED))
			return true;
	}
	return false;
}

static void arm_all(struct shmrpc_node *n)
{
	uint32_t i;

	for (i = 0; i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		r->bell_mode = i >= n->ring_words;
		r->armed = shmrpc__wait_arm(&r->q.hdr->data_seq, r->bell_mode ? SHMRPC__W_BELL : 0);
	}
	n->bell_armed = shmrpc__wait_arm(&n->seg->bell, 0);
	shmrpc__wait_fence();
}

static void disarm_all(struct shmrpc_node *n)
{
	uint32_t i;

	for (i = 0; i < n->in.n; i++)
		shmrpc__wait_disarm(&n->in.v[i]->q.hdr->data_seq);
	shmrpc__wait_disarm(&n->seg->bell);
}

static bool rx_spin(struct shmrpc_node *n, int64_t deadline)
{
	int64_t end = shmrpc__now_ns() + n->spin_ns;
	unsigned k = 0;

	if (end > deadline)
		end = deadline;
	while (!rx_pending(n)) {
		cpu_relax();
		if ((++k & 15) == 0 && shmrpc__now_ns() >= end)
			return false;
	}
	return true;
}

int shmrpc__rx_wait(struct shmrpc_node *n, int64_t deadline)
{
	int64_t until;
	int rc;

	if (n->spin_ns > 0 && rx_spin(n, deadline)) {
		atomic_fetch_add_explicit(&n->seg->ctr.spins, 1, memory_order_relaxed);
		return atomic_load_explicit(&n->stop, memory_order_relaxed) ? -EINTR : 0;
	}
	for (;;) {
		if (shmrpc__now_ns() >= deadline)
			return -ETIMEDOUT;
		arm_all(n);
		if (!rx_pending(n)) {
			atomic_fetch_add_explicit(&n->seg->ctr.sleeps, 1, memory_order_relaxed);
			until = shmrpc__sleep_until(n, deadline);
			rc = n->be->sleep(n, until);
			if (rc == -ETIMEDOUT && until < deadline)
				shmrpc__in_check_senders(n);
		}
		disarm_all(n);
		if (rx_pending(n))
			return atomic_load_explicit(&n->stop, memory_order_relaxed) ? -EINTR : 0;
	}
}

/* Wait (per timeout) for the next record; rx_busy held. */
static int rx_get(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		  uint32_t *len, int timeout_ms, int64_t deadline)
{
	int rc;

	for (;;) {
		rc = rx_next(n, rp, data, len);
		if (rc)
			return rc;
		if (timeout_ms == 0)
			return -EAGAIN;
		rc = shmrpc__rx_wait(n, deadline);
		if (rc)
			return rc == -ETIMEDOUT ? shmrpc__timeout_err(timeout_ms) : rc;
	}
}

int shmrpc_recv(struct shmrpc_node *n, void *buf, size_t cap, char *from, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	int rc;

	if (!n || (!buf && cap) || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = shmrpc__rx_enter(n);
	if (rc)
		return rc;
	rc = rx_get(n, &r, &data, &len, timeout_ms, shmrpc__deadline(timeout_ms));
	if (rc > 0) {
		if (len > cap) {
			rc = -EMSGSIZE; /* left in place: peek tells the length */
		} else {
			if (len)
				memcpy(buf, data, len);
			if (from)
				memcpy(from, r->from, sizeof(r->from));
			rx_consume(n, r, len);
			rc = (int)len;
		}
	}
	shmrpc__rx_exit(n);
	return rc;
}

int shmrpc_peek(struct shmrpc_node *n, struct shmrpc_rxbuf *rx, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	int rc;

	if (!n || !rx || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = shmrpc__rx_enter(n);
	if (rc)
		return rc;
	rc = rx_get(n, &r, &data, &len, timeout_ms, shmrpc__deadline(timeout_ms));
	if (rc > 0) {
		rx->data = data;
		rx->len = len;
		memcpy(rx->from, r->from, sizeof(rx->from));
		rx->_priv[0] = r;
		rx->_priv[1] = (void *)(uintptr_t)r->q.peek_end;
		n->in.peeked = r;
		rc = (int)len;
	}
	shmrpc__rx_exit(n);
	return rc;
}

int shmrpc_release(struct shmrpc_node *n, struct shmrpc_rxbuf *rx)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__inring *r;
	int rc;

	if (!n || !rx)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = shmrpc__rx_enter(n);
	if (rc)
		return rc;
	r = rx->_priv[0];
	if (!r || r != n->in.peeked || r->q.peek_end != (uintptr_t)rx->_priv[1]) {
		rc = -EINVAL;
	} else {
		rx_consume(n, r, (uint32_t)rx->len);
		n->in.peeked = NULL;
		rx->_priv[0] = NULL;
	}
	shmrpc__rx_exit(n);
	return rc;
}

/* rx_busy held. */
int shmrpc__dispatch(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms,
		     int64_t deadline)
{
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	int rc, count = 0;

	rc = rx_get(n, &r, &data, &len, timeout_ms, deadline);
	while (rc > 0) {
		fn(n, r->from, data, len, arg);
		rx_consume(n, r, len);
		if (++count >= DISPATCH_MAX)
			break;
		rc = rx_next(n, &r, &data, &len);
	}
	/* A corrupt ring met after some messages surfaces at the next call
	 * only if it is still corrupt then; it was dropped already. */
	return count ? count : rc;
}

int shmrpc_dispatch(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	int rc;

	if (!n || !fn || timeout_ms < -1)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	rc = shmrpc__rx_enter(n);
	if (rc)
		return rc;
	rc = shmrpc__dispatch(n, fn, arg, timeout_ms, shmrpc__deadline(timeout_ms));
	shmrpc__rx_exit(n);
	return rc;
}
