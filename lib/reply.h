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
#include "node_types.h"

#define SHMRPC__REP_BUCKETS 64

/* The table of a node's reply connections (in its struct shmrpc__rpc): a
 * conntab.c table of kind SHMRPC__KIND_REP, chained by caller slot. */
struct shmrpc__reptab {
	struct shmrpc__ctab t;
	struct shmrpc__conn *b[SHMRPC__REP_BUCKETS];
};

/* An empty table (conntab.c's shmrpc__ctab_close_all, _forget_all and
 * _free_all on tab->t end it). */
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

#endif /* SHMRPC_REPLY_H */
