/* SPDX-License-Identifier: MIT */
/*
 * A server's reply connections (reply.c): one per caller incarnation
 * (slot, gen) it replies to, each holding the producer side of a reply ring
 * (connect.c, kind SHMRPC__KIND_REP).
 */
#ifndef SHMRPC_REPLY_H
#define SHMRPC_REPLY_H

#include <pthread.h>
#include <stdint.h>

#include "clock.h"
#include "connect.h"

#define SHMRPC__REP_BUCKETS 64

struct shmrpc__rep_chunk;

/* The table of a node's reply connections (in its struct shmrpc__rpc). */
struct shmrpc__reptab {
	pthread_rwlock_t lock; /* the buckets, the pool */
	struct shmrpc__conn *b[SHMRPC__REP_BUCKETS];
	struct shmrpc__conn *free;
	struct shmrpc__rep_chunk *chunks;
};

void shmrpc__rep_init(struct shmrpc__reptab *tab);
/* The reply connection to caller (slot, gen), connecting if needed, locked
 * by this thread (per @t): 0, -EPIPE (that caller is gone: it left, died,
 * or closed its reply ring), -EAGAIN, -ETIMEDOUT, -EDEADLK, -errno of
 * connecting (-ENOSPC...). */
int shmrpc__rep_acquire(struct shmrpc_node *n, struct shmrpc__reptab *tab, uint32_t slot,
			uint32_t gen, struct shmrpc__tmo *t, struct shmrpc__conn **out);
/* Unlock @c without committing (after a failed reserve); a dead one leaves
 * the table. (A commit unlocks through shmrpc__tx_commit_flags.) */
void shmrpc__rep_unlock(struct shmrpc_node *n, struct shmrpc__reptab *tab, struct shmrpc__conn *c);
/* shmrpc_close: close every reply connection (TX_CLOSED: the callers
 * drain what we sent). */
void shmrpc__rep_close_all(struct shmrpc_node *n, struct shmrpc__reptab *tab);
/* In a forked child: unmap the parent's reply connections, nothing more. */
void shmrpc__rep_forget_all(struct shmrpc__reptab *tab);
/* Free the pool; @destroy: the locks too (not a fork's copies). */
void shmrpc__rep_free_all(struct shmrpc__reptab *tab, bool destroy);

#endif /* SHMRPC_REPLY_H */
