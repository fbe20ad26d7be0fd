/* SPDX-License-Identifier: MIT */
/*
 * An outbound connection (connect.c): making it (connect and announce),
 * and its end (the receiver closed or gone, or our leaving).
 */
#ifndef SHMRPC_CONNECT_H
#define SHMRPC_CONNECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"
#include "ring.h"

struct shmrpc_node;

/* Type-stable (conntab.c): never freed before shmrpc_close, recycled with a
 * new gen. Fields below `lock` change under it, or under the table's
 * write lock while out of every thread's reach. */
struct shmrpc__conn {
	struct shmrpc__conn *next;     /* hash chain or free list, under its table's lock */
	pthread_mutex_t lock;	       /* serialises sends to this receiver */
	_Atomic uint32_t gen;	       /* changes when the struct is recycled */
	struct shmrpc__ring q;	       /* producer view, under lock */
	struct shmrpc__node_hdr *peer; /* receiver's node segment */
	uint64_t peer_size;
	uint32_t rx_slot, rx_gen;
	uint32_t ring_bytes;
	uint8_t kind;	       /* enum shmrpc__kind, for the life of the struct */
	bool bmarks;	       /* this receiver takes broadcast marks (SLOT_BMARKS) */
	_Atomic bool dead;     /* receiver left: -EPIPE; set under lock */
	_Atomic bool folded;   /* its counters are in old_* now */
	bool tomb;	       /* a name-only placeholder (never mapped) */
	_Atomic(void *) owner; /* token of the thread holding lock */
	void *resv;	       /* under lock: data of the open reservation */
	size_t resv_cap;       /* under lock: bytes it reserved */
	char to[SHMRPC_NAME_MAX + 1];
};

/* Neither a tombstone nor dead (relaxed: a hint, or read under c->lock). */
static inline bool shmrpc__conn_usable(const struct shmrpc__conn *c)
{
	return !c->tomb && !atomic_load_explicit(&c->dead, memory_order_relaxed);
}

/* Connect fresh struct @c to @to, found at @slot with view @v: map and
 * check the receiver's node segment, create our ring to it (of c->kind: a
 * message ring, or a reply ring to a caller), announce it, watch the
 * receiver. 0, or -errno with @c as it was (nothing mapped). */
int shmrpc__conn_open(struct shmrpc_node *n, struct shmrpc__conn *c, const char *to, uint32_t slot,
		      const struct shmrpc__slot_view *v);
/* Unmap @c's ring (counted out of rings_out) and the receiver's segment. */
void shmrpc__conn_unmap(struct shmrpc_node *n, struct shmrpc__conn *c);
/* Drop @c from our out_gen table (our listing of the rings we send on);
 * with @unlink, remove its file too. Its counters move into our totals in
 * the same step (fold_seq). */
void shmrpc__conn_unlist(struct shmrpc_node *n, struct shmrpc__conn *c, bool unlink);
/* Under c->lock: has the receiver closed the ring (RX_CLOSED)? Then @c is
 * dead from now on (its ring unlisted and unlinked). */
bool shmrpc__conn_check_dead(struct shmrpc_node *n, struct shmrpc__conn *c);
/* Under c->lock, after a sleep timed out: is the receiver gone (its lock
 * released)? Then it is reclaimed, and @c dead. */
bool shmrpc__conn_peer_gone(struct shmrpc_node *n, struct shmrpc__conn *c);
/* At our leaving, out of the table: TX_CLOSED (the receiver drains what we
 * sent, then unlinks), unlisted, unmapped. */
void shmrpc__conn_close(struct shmrpc_node *n, struct shmrpc__conn *c);

#endif /* SHMRPC_CONNECT_H */
