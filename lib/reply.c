// SPDX-License-Identifier: MIT
/*
 * A server's reply connections: one per caller incarnation (slot, gen) the
 * server has replied to, each the producer side of a reply ring to that
 * caller (connect.c makes and ends it: kind SHMRPC__KIND_REP, the tables,
 * name and bell of that kind). Replies may come from any thread of the
 * server, so this keeps what conntab.c keeps for message rings, keyed by
 * the caller's (slot, gen) instead of a name: a table under a rwlock,
 * type-stable structs recycled with a new generation, a one-entry cache per
 * thread in front, each connection's mutex held from reserve to commit
 * (tx.c).
 *
 * A reply connection is bound to one incarnation of its caller: when that
 * caller leaves, dies or drops the ring (RX_CLOSED), the connection is dead
 * and every reply to it is -EPIPE; a new incarnation in the same slot is
 * another key. Dead connections leave the table at once when a reply finds
 * them, and at every new connection, which sweeps the table for rings their
 * callers closed: a server that never replies to a caller again does not
 * keep its mapping.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "clock.h"
#include "connect.h"
#include "conntab.h"
#include "layout.h"
#include "node_types.h"
#include "registry.h"
#include "seg.h"

#define REP_CHUNK 16

struct shmrpc__rep_chunk {
	struct shmrpc__rep_chunk *next;
	struct shmrpc__conn c[REP_CHUNK];
};

/* The last reply connection this thread used: (node, caller) -> (c, gen). */
static _Thread_local struct {
	uint64_t uid;
	uint32_t slot, gen, cgen;
	struct shmrpc__conn *c;
} tls_rep;

void shmrpc__rep_init(struct shmrpc__reptab *tab)
{
	memset(tab, 0, sizeof(*tab));
	pthread_rwlock_init(&tab->lock, NULL);
}

static struct shmrpc__conn **rep_bucket(struct shmrpc__reptab *tab, uint32_t slot)
{
	return &tab->b[slot % SHMRPC__REP_BUCKETS];
}

static struct shmrpc__conn *rep_find(struct shmrpc__reptab *tab, uint32_t slot, uint32_t gen)
{
	struct shmrpc__conn *c;

	for (c = *rep_bucket(tab, slot); c; c = c->next)
		if (c->rx_slot == slot && c->rx_gen == gen)
			return c;
	return NULL;
}

/* Under the write lock: a fresh struct, its mutex initialised once. */
static struct shmrpc__conn *rep_alloc(struct shmrpc__reptab *tab)
{
	struct shmrpc__rep_chunk *k;
	struct shmrpc__conn *c;
	int i;

	if (!tab->free) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return NULL;
		for (i = 0; i < REP_CHUNK; i++) {
			pthread_mutex_init(&k->c[i].lock, NULL);
			k->c[i].kind = SHMRPC__KIND_REP;
			k->c[i].next = tab->free;
			tab->free = &k->c[i];
		}
		k->next = tab->chunks;
		tab->chunks = k;
	}
	c = tab->free;
	tab->free = c->next;
	c->next = NULL;
	return c;
}

/* Under the write lock, @c out of the table: unmap it and recycle it with
 * a new generation (a thread that cached it sees the change under its
 * mutex). */
static void rep_recycle(struct shmrpc_node *n, struct shmrpc__reptab *tab, struct shmrpc__conn *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->q.hdr && !atomic_load_explicit(&c->folded, memory_order_relaxed))
		shmrpc__conn_unlist(n, c, false);
	shmrpc__conn_unmap(n, c);
	/* Relaxed: read under this mutex, or as a hint before taking it. */
	atomic_store_explicit(&c->gen, atomic_load_explicit(&c->gen, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	memset(&c->q, 0, sizeof(c->q));
	c->rx_slot = c->rx_gen = 0;
	atomic_store_explicit(&c->dead, false, memory_order_relaxed);
	atomic_store_explicit(&c->folded, false, memory_order_relaxed);
	c->to[0] = '\0';
	pthread_mutex_unlock(&c->lock);
	c->next = tab->free;
	tab->free = c;
}

/* Under the write lock: take @c out of its bucket. */
static void rep_unhook(struct shmrpc__reptab *tab, struct shmrpc__conn *c)
{
	struct shmrpc__conn **pp = rep_bucket(tab, c->rx_slot);

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
}

/* Under the write lock: recycle every connection whose caller closed its
 * ring (and that no thread holds right now). */
static void rep_sweep(struct shmrpc_node *n, struct shmrpc__reptab *tab)
{
	struct shmrpc__conn *c, *next;
	bool dead;
	unsigned b;

	for (b = 0; b < SHMRPC__REP_BUCKETS; b++) {
		for (c = tab->b[b]; c; c = next) {
			next = c->next;
			if (pthread_mutex_trylock(&c->lock))
				continue;
			dead = shmrpc__conn_check_dead(n, c);
			pthread_mutex_unlock(&c->lock);
			if (dead) {
				rep_unhook(tab, c);
				rep_recycle(n, tab, c);
			}
		}
	}
}

/* Under the write lock: connect to caller (slot, gen), in a fresh struct. */
static int rep_connect(struct shmrpc_node *n, struct shmrpc__reptab *tab, uint32_t slot,
		       uint32_t gen, struct shmrpc__conn **out)
{
	struct shmrpc__slot_view v;
	struct shmrpc__conn *c;
	int err;

	if (slot >= n->reg->capacity || slot == n->slot)
		return -EPIPE;
	err = shmrpc__reg_read(n->reg, slot, &v);
	if (err == -EAGAIN)
		return -EAGAIN; /* changing right now */
	if (err || v.state != SHMRPC__SLOT_LIVE || v.gen != gen)
		return -EPIPE; /* that incarnation left */
	c = rep_alloc(tab);
	if (!c)
		return -ENOMEM;
	err = shmrpc__conn_open(n, c, v.name, slot, &v);
	if (err) {
		c->next = tab->free;
		tab->free = c;
		return err == -ENOENT ? -EPIPE : err;
	}
	*out = c;
	return 0;
}

/* The connection to (slot, gen) and its generation, connecting if the
 * table has none or a dead one. Not locked: the caller locks and checks. */
static int rep_find_or_connect(struct shmrpc_node *n, struct shmrpc__reptab *tab, uint32_t slot,
			       uint32_t gen, struct shmrpc__conn **out, uint32_t *cgen)
{
	struct shmrpc__conn *c;
	int err = 0;

	pthread_rwlock_rdlock(&tab->lock);
	c = rep_find(tab, slot, gen);
	if (c && shmrpc__conn_usable(c)) {
		*cgen = atomic_load_explicit(&c->gen, memory_order_relaxed);
		pthread_rwlock_unlock(&tab->lock);
		*out = c;
		return 0;
	}
	pthread_rwlock_unlock(&tab->lock);
	pthread_rwlock_wrlock(&tab->lock);
	c = rep_find(tab, slot, gen);
	if (c && !shmrpc__conn_usable(c)) {
		rep_unhook(tab, c);
		rep_recycle(n, tab, c);
		c = NULL;
		err = -EPIPE; /* its caller closed the ring: gone */
	}
	if (!c && !err) {
		rep_sweep(n, tab);
		err = rep_connect(n, tab, slot, gen, &c);
		if (!err) {
			c->next = *rep_bucket(tab, slot);
			*rep_bucket(tab, slot) = c;
		}
	}
	if (!err) {
		*cgen = atomic_load_explicit(&c->gen, memory_order_relaxed);
		*out = c;
	}
	pthread_rwlock_unlock(&tab->lock);
	return err;
}

int shmrpc__rep_acquire(struct shmrpc_node *n, struct shmrpc__reptab *tab, uint32_t slot,
			uint32_t gen, struct shmrpc__tmo *t, struct shmrpc__conn **out)
{
	struct shmrpc__conn *c;
	uint32_t cgen;
	bool dead;
	int rc, tries;

	for (tries = 0; tries < 16; tries++) {
		if (tls_rep.uid == n->uid && tls_rep.c && tls_rep.slot == slot &&
		    tls_rep.gen == gen) {
			c = tls_rep.c; /* type-stable: safe to lock, checked below */
			cgen = tls_rep.cgen;
		} else {
			rc = rep_find_or_connect(n, tab, slot, gen, &c, &cgen);
			if (rc)
				return rc;
		}
		rc = shmrpc__conn_lock(c, t);
		if (rc)
			return rc;
		/* The same generation is the same connection, to the same
		 * caller; one whose caller closed the ring is dead. */
		if (atomic_load_explicit(&c->gen, memory_order_relaxed) == cgen &&
		    shmrpc__conn_usable(c) && !shmrpc__conn_check_dead(n, c)) {
			tls_rep.uid = n->uid;
			tls_rep.slot = slot;
			tls_rep.gen = gen;
			tls_rep.c = c;
			tls_rep.cgen = cgen;
			*out = c;
			return 0;
		}
		tls_rep.c = NULL;
		dead = atomic_load_explicit(&c->gen, memory_order_relaxed) == cgen;
		shmrpc__rep_unlock(n, tab, c);
		if (dead)
			return -EPIPE;
	}
	return -EAGAIN; /* recycled under us again and again */
}

void shmrpc__rep_unlock(struct shmrpc_node *n, struct shmrpc__reptab *tab, struct shmrpc__conn *c)
{
	bool dead = atomic_load_explicit(&c->dead, memory_order_relaxed);
	uint32_t gen = atomic_load_explicit(&c->gen, memory_order_relaxed);

	/* Relaxed: only this thread stored its token (conntab.c). */
	atomic_store_explicit(&c->owner, NULL, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	if (!dead)
		return;
	pthread_rwlock_wrlock(&tab->lock);
	if (atomic_load_explicit(&c->gen, memory_order_relaxed) == gen &&
	    rep_find(tab, c->rx_slot, c->rx_gen) == c) {
		rep_unhook(tab, c);
		rep_recycle(n, tab, c);
	}
	pthread_rwlock_unlock(&tab->lock);
}

void shmrpc__rep_close_all(struct shmrpc_node *n, struct shmrpc__reptab *tab)
{
	struct shmrpc__conn *all = NULL, *c;
	unsigned b;

	pthread_rwlock_wrlock(&tab->lock);
	for (b = 0; b < SHMRPC__REP_BUCKETS; b++) {
		while ((c = tab->b[b])) {
			tab->b[b] = c->next;
			c->next = all;
			all = c;
		}
	}
	pthread_rwlock_unlock(&tab->lock);
	while ((c = all)) {
		all = c->next;
		shmrpc__conn_close(n, c);
	}
}

void shmrpc__rep_forget_all(struct shmrpc__reptab *tab)
{
	struct shmrpc__conn *c;
	unsigned b;

	for (b = 0; b < SHMRPC__REP_BUCKETS; b++) {
		for (c = tab->b[b]; c; c = c->next) {
			/* Not conn_unmap: it counts in the parent's segment. */
			shmrpc__seg_unmap(c->q.hdr, c->q.map_size);
			shmrpc__seg_unmap(c->peer, c->peer_size);
		}
		tab->b[b] = NULL;
	}
}

void shmrpc__rep_free_all(struct shmrpc__reptab *tab, bool destroy)
{
	struct shmrpc__rep_chunk *k;
	int i;

	while ((k = tab->chunks)) {
		tab->chunks = k->next;
		for (i = 0; destroy && i < REP_CHUNK; i++)
			pthread_mutex_destroy(&k->c[i].lock);
		free(k);
	}
	tab->free = NULL;
	if (destroy)
		pthread_rwlock_destroy(&tab->lock);
}
