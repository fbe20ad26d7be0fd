/* SPDX-License-Identifier: MIT */
/*
 * The connections a node keeps (conntab.c): pool, table, per-thread cache,
 * locking, tombstones, warm-up, teardown.
 */
#ifndef SHMRPC_CONNTAB_H
#define SHMRPC_CONNTAB_H

#include <stdbool.h>

#include "clock.h"
#include "connect.h"

/* The connection to @to, connecting if needed, locked by this thread:
 * 0, -EDEADLK (this thread holds a reservation on it), -EAGAIN,
 * -ETIMEDOUT, -ENOENT, -EPIPE, -EINVAL (@to is us, or a bad name), -errno. */
int shmrpc__conn_acquire(struct shmrpc_node *n, const char *to, struct shmrpc__tmo *t,
			 struct shmrpc__conn **out);
/* Lock @c, known by its generation @gen (a peer handle's: peer.c), without
 * the name: 0, -ESTALE (recycled, or its receiver closed it: unlocked),
 * -EDEADLK, -EAGAIN, -ETIMEDOUT. */
int shmrpc__conn_lock_gen(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t gen,
			  struct shmrpc__tmo *t);
/* Unlock; a connection found dead is swapped for a tombstone. */
void shmrpc__conn_unlock(struct shmrpc_node *n, struct shmrpc__conn *c);
/* Lock @c per @t as this thread (its owner): 0, -EDEADLK (this thread
 * holds it for a reservation), -EAGAIN, -ETIMEDOUT, -errno. (reply.c locks
 * its reply connections with it.) */
int shmrpc__conn_lock(struct shmrpc__conn *c, struct shmrpc__tmo *t);
/* Does this thread hold @c's mutex? */
bool shmrpc__conn_held(const struct shmrpc__conn *c);
/* shmrpc_warmup: connect to every live node; how many, or -errno. */
int shmrpc__conn_warm(struct shmrpc_node *n);
/* shmrpc_close: close every connection (the table's lock, then each one's). */
void shmrpc__conn_close_all(struct shmrpc_node *n);
/* In a forked child: unmap the parent's connections, nothing more. */
void shmrpc__conn_forget_all(struct shmrpc_node *n);
/* Free the pool; @destroy: the mutexes too (not a fork's copies). */
void shmrpc__conn_free_all(struct shmrpc_node *n, bool destroy);

#endif /* SHMRPC_CONNTAB_H */
