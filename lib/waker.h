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
/* After a commit to ring @h, whose receiver's node segment is @peer: the
 * word to FUTEX_WAKE (data_seq, or the bell in bell mode), or NULL when the
 * receiver is awake. Counts the wake (tx_wakes) or the skip (tx_skips). */
_Atomic uint32_t *shmrpc__wake_collect(struct shmrpc__ring_hdr *h, struct shmrpc__node_hdr *peer);
/* The same, and the wake issued now. */
void shmrpc__wake_consumer(struct shmrpc_node *n, struct shmrpc__ring_hdr *h,
			   struct shmrpc__node_hdr *peer);

#endif /* SHMRPC_WAKER_H */
