/* SPDX-License-Identifier: MIT */
/*
 * Peer handles (peer.c): struct shmrpc_peer, and a locked connection to
 * exactly its incarnation, for the calls that send through a handle.
 */
#ifndef SHMRPC_PEER_H
#define SHMRPC_PEER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "connect.h"
#include "shmrpc.h"

/*
 * One incarnation (slot, gen) of a named node, and the connection to it:
 * the type-stable struct and its generation (conntab.c), as the per-thread
 * cache keeps them, so a send locks it without any lookup. Written by
 * shmrpc_peer_get, then: c and cgen when a send reconnects to the same
 * incarnation, gone once it is known gone, node by shmrpc_close (detached).
 * Read by any thread using the handle (relaxed: a stale pair fails the
 * generation check under the connection's lock, and is looked up again).
 */
struct shmrpc_peer {
	_Atomic(struct shmrpc_node *) node; /* NULL once the node closed */
	uint32_t slot, gen;
	_Atomic(struct shmrpc__conn *) c;
	_Atomic uint32_t cgen;
	_Atomic bool gone;		 /* it left or died: -EPIPE for good */
	struct shmrpc_peer *prev, *next; /* the node's handles, under peer_lock */
	char name[SHMRPC_NAME_MAX + 1];
};

/* The connection to @p's incarnation, locked by this thread, per @t as a
 * send waits for a connection's lock: 0 (*out), -EPIPE (gone, or the node
 * closed), -ECHILD, -EDEADLK, -EAGAIN, -ETIMEDOUT, -errno of a reconnect.
 * shmrpc__conn_unlock (or a commit) ends it. */
int shmrpc__peer_acquire(struct shmrpc_peer *p, struct shmrpc__tmo *t, struct shmrpc__conn **out);
/* shmrpc_close: every handle of @n detached (their calls return -EPIPE;
 * shmrpc_peer_put frees them as usual). */
void shmrpc__peer_detach_all(struct shmrpc_node *n);

#endif /* SHMRPC_PEER_H */
