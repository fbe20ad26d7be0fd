/* SPDX-License-Identifier: MIT */
/*
 * Counters in shared memory (counters.c): the one-writer increment, and the
 * folds of a ring's counters into its node's totals.
 */
#ifndef SHMRPC_COUNTERS_H
#define SHMRPC_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "layout.h"

struct shmrpc_node;

/*
 * Add to a counter in shared memory that has one writer at a time: a
 * ring's producer counters (the connection mutex orders successive
 * writers), its consumer counters and a node's spins (the receiving
 * thread). Relaxed load + store, no locked instruction: readers
 * (shmrpc_stats, shmrpc-top) only need each word whole.
 */
static inline void shmrpc__ctr_inc(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* Move a ring's counters into the node's totals, between fold_begin and
 * fold_end (the fold_seq seqlock, layout.h) together with whatever takes
 * the ring out of the node's listing. */
void shmrpc__fold_begin(struct shmrpc_node *n);
void shmrpc__fold_end(struct shmrpc_node *n);
void shmrpc__fold_tx(struct shmrpc_node *n, const struct shmrpc__ring_hdr *h);
void shmrpc__fold_rx(struct shmrpc_node *n, const struct shmrpc__ring_hdr *h);

#endif /* SHMRPC_COUNTERS_H */
