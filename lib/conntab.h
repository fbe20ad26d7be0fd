/* SPDX-License-Identifier: MIT */
/*
 * The connections a node keeps (conntab.c): pool, table, per-thread cache,
 * locking, tombstones, warm-up, teardown; the table type reply.c uses too.
 */
#ifndef SHMRPC_CONNTAB_H
#define SHMRPC_CONNTAB_H

#include <stdbool.h>

#include "clock.h"
#include "connect.h"

struct shmrpc__ctab;

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
/*
 * A table of connections (struct shmrpc__ctab, node_types.h), of kind @kind
 * with @nb chains in @b; @clear: recycling clears a struct for reuse.
 * The lock is initialised here, destroyed by shmrpc__ctab_free_all.
 */
void shmrpc__ctab_init(struct shmrpc__ctab *t, struct shmrpc__conn **b, uint32_t nb, uint8_t kind,
		       bool clear);
/* Under the write lock: a struct from the pool (its mutex initialised
 * once, its kind set), or NULL (no memory). */
struct shmrpc__conn *shmrpc__ctab_alloc(struct shmrpc__ctab *t);
/* Under the write lock: @c, taken but never put in a chain, back to the
 * pool as it is. */
void shmrpc__ctab_put(struct shmrpc__ctab *t, struct shmrpc__conn *c);
/* Under the write lock: take @c out of chain @b, if it is there. */
void shmrpc__ctab_unhook(struct shmrpc__ctab *t, unsigned b, struct shmrpc__conn *c);
/* Under the write lock, @c out of every chain: fold its counters, unmap
 * it, and put it back in the pool with a new generation (under its mutex:
 * a thread that has it cached, locks it and compares, sees the change). */
void shmrpc__ctab_recycle(struct shmrpc_node *n, struct shmrpc__ctab *t, struct shmrpc__conn *c);
/* shmrpc_close: close every connection of @t (the table's lock, then each
 * one's: TX_CLOSED, the receivers drain what we sent). */
void shmrpc__ctab_close_all(struct shmrpc_node *n, struct shmrpc__ctab *t);
/* In a forked child: unmap the parent's connections, nothing more. */
void shmrpc__ctab_forget_all(struct shmrpc__ctab *t);
/* Free the pool; @destroy: the mutexes and the table's lock too (not a
 * fork's copies: one may be a locked copy). */
void shmrpc__ctab_free_all(struct shmrpc__ctab *t, bool destroy);

#endif /* SHMRPC_CONNTAB_H */
