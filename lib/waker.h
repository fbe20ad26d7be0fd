/* SPDX-License-Identifier: MIT */
/*
 * The waker half of the wake protocol, for senders (waker.c).
 */
#ifndef SHMRPC_WAKER_H
#define SHMRPC_WAKER_H

#include <stdatomic.h>
#include <stdint.h>

#include "layout.h"

struct shmrpc_node;

/* Ring @h's bell (a node's) if its receiver sleeps on it. */
void shmrpc__bell_ring(struct shmrpc_node *n, struct shmrpc__node_hdr *h);
/* The same for the bell of ring kind @kind (enum shmrpc__kind). */
void shmrpc__bell_ring_k(struct shmrpc_node *n, struct shmrpc__node_hdr *h, int kind);
/* After a commit to ring @h of kind @kind (enum shmrpc__kind), whose
 * receiver's node segment is @peer: the word to FUTEX_WAKE (data_seq, or in
 * bell mode the bell of that kind: a reply ring's is the caller's
 * rep_bell), or NULL when the receiver is awake. Counts the wake (tx_wakes)
 * or the skip (tx_skips). */
_Atomic uint32_t *shmrpc__wake_collect_k(struct shmrpc__ring_hdr *h, struct shmrpc__node_hdr *peer,
					 int kind);
/* The same, and the wake issued now. */
void shmrpc__wake_consumer_k(struct shmrpc_node *n, struct shmrpc__ring_hdr *h,
			     struct shmrpc__node_hdr *peer, int kind);

#endif /* SHMRPC_WAKER_H */
