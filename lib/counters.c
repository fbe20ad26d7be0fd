// SPDX-License-Identifier: MIT
/*
 * Counters. Per-message counters live in each ring's header, on the line
 * its writer owns (no extra cache traffic on the fast path); per-node ones
 * in the node segment. A ring's counters are moved into the node's "old_*"
 * totals in the same step that takes it out of the node's listing, inside
 * the fold_seq seqlock (layout.h), so that a node's totals never drop and
 * nothing is counted twice, for shmrpc_stats (stats.c) and for outside
 * observers.
 */
#include "counters.h"
#include "layout.h"
#include "node_types.h"

static uint64_t ld(const _Atomic uint64_t *c)
{
	/* Relaxed: counters are statistics; each is single-writer. */
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void shmrpc__fold_begin(struct shmrpc_node *n)
{
	_Atomic uint64_t *seq = &n->seg->ctr.fold_seq;

	pthread_mutex_lock(&n->fold_lock);
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	/* Release fence: pairs with the readers' acquire fence; a reader that
	 * sees any change below sees the odd fold_seq. */
	atomic_thread_fence(memory_order_release);
}

void shmrpc__fold_end(struct shmrpc_node *n)
{
	_Atomic uint64_t *seq = &n->seg->ctr.fold_seq;

	/* Release: pairs with the readers' acquire load of fold_seq. */
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
			      memory_order_release);
	pthread_mutex_unlock(&n->fold_lock);
}

void shmrpc__fold_tx(struct shmrpc_node *n, const struct shmrpc__ring_hdr *h)
{
	struct shmrpc__node_ctr *c = &n->seg->ctr;

	add(&c->old_tx_msgs, ld(&h->tx_msgs));
	add(&c->old_tx_bytes, ld(&h->tx_bytes));
	add(&c->old_tx_full, ld(&h->tx_full));
	add(&c->old_tx_wakes, ld(&h->tx_wakes));
	add(&c->old_tx_skips, ld(&h->tx_skips));
}

void shmrpc__fold_rx(struct shmrpc_node *n, const struct shmrpc__ring_hdr *h)
{
	struct shmrpc__node_ctr *c = &n->seg->ctr;

	add(&c->old_rx_msgs, ld(&h->rx_msgs));
	add(&c->old_rx_bytes, ld(&h->rx_bytes));
	add(&c->rx_wakes, ld(&h->rx_wakes));
}
