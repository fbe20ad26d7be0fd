// SPDX-License-Identifier: MIT
/*
 * The waker half of the wake protocol (lib/wake.c), for a sender: after it
 * published a record, or announced a ring, wake the receiver only if it
 * sleeps, and through the node's backend (one futex(2), or one
 * io_uring_enter for several words).
 *
 * A receiver sleeps on a ring's data_seq, or, in bell mode (the futex
 * backend beyond FUTEX_WAITV_MAX words), on its node's bell: the word's
 * BELL flag, cleared by wake_prepare, says which one to wake. A reply ring
 * is always in bell mode, and its bell is the caller's rep_bell (the _k
 * forms, with the ring's kind).
 */
#include "waker.h"
#include "backend.h"
#include "counters.h"
#include "layout.h"
#include "node_types.h"
#include "wake.h"

void shmrpc__bell_ring_k(struct shmrpc_node *n, struct shmrpc__node_hdr *h, int kind)
{
	_Atomic uint32_t *w = shmrpc__node_bell(h, kind);

	if (shmrpc__wake_prepare(w) != SHMRPC__WAKE_NONE)
		n->be->wake(n, &w, 1);
}

void shmrpc__bell_ring(struct shmrpc_node *n, struct shmrpc__node_hdr *h)
{
	shmrpc__bell_ring_k(n, h, SHMRPC__KIND_MSG);
}

_Atomic uint32_t *shmrpc__wake_collect_k(struct shmrpc__ring_hdr *h, struct shmrpc__node_hdr *peer,
					 int kind)
{
	_Atomic uint32_t *bell;

	switch (shmrpc__wake_prepare(&h->data_seq)) {
	case SHMRPC__WAKE_WORD:
		shmrpc__ctr_inc(&h->tx_wakes, 1);
		return &h->data_seq;
	case SHMRPC__WAKE_BELL:
		shmrpc__ctr_inc(&h->tx_wakes, 1);
		bell = shmrpc__node_bell(peer, kind);
		if (shmrpc__wake_prepare(bell) != SHMRPC__WAKE_NONE)
			return bell;
		return NULL;
	default:
		shmrpc__ctr_inc(&h->tx_skips, 1);
		return NULL;
	}
}

void shmrpc__wake_consumer_k(struct shmrpc_node *n, struct shmrpc__ring_hdr *h,
			     struct shmrpc__node_hdr *peer, int kind)
{
	_Atomic uint32_t *w = shmrpc__wake_collect_k(h, peer, kind);

	if (w)
		n->be->wake(n, &w, 1);
}
