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

#include "reply.h"
#include "clock.h"
#include "connect.h"
#include "conntab.h"
#include "layout.h"
#include "node_types.h"
#include "registry.h"

/* The last reply connection this thread used: (node, caller) -> (c, gen). */
static _Thread_local struct {
	uint64_t uid;
	uint32_t slot, gen, cgen;
	struct shmrpc__conn *c;
} tls_rep;

void shmrpc__rep_init(struct shmrpc__reptab *tab)
{
	shmrpc__ctab_init(&tab->t, tab->b, SHMRPC__REP_BUCKETS, SHMRPC__KIND_REP, true);
}

static unsigned rep_bucket(const struct shmrpc__reptab *tab, uint32_t slot)
{
	return slot % tab->t.nb;
}

static struct shmrpc__conn *rep_find(struct shmrpc__reptab *tab, uint32_t slot, uint32_t gen)
{
	struct shmrpc__conn *c;

	for (c = tab->b[rep_bucket(tab, slot)]; c; c = c->next)
		if (c->rx_slot == slot && c->rx_gen == gen)
			return c;
	return NULL;
}

/* Under the write lock: take @c out of the table and recycle it. */
static void rep_drop(struct shmrpc_node *n, struct shmrpc__reptab *tab, struct shmrpc__conn *c)
{
	shmrpc__ctab_unhook(&tab->t, rep_bucket(tab, c->rx_slot), c);
	shmrpc__ctab_recycle(n, &tab->t, c);
}

/* Under the write lock: recycle every connection whose caller closed its
 * ring (and that no thread holds right now). */
static void rep_sweep(struct shmrpc_node *n, struct shmrpc__reptab *tab)
{
	struct shmrpc__conn *c, *next;
	bool dead;
	unsigned b;

	for (b = 0; b < tab->t.nb; b++) {
		for (c = tab->b[b]; c; c = next) {
			next = c->next;
			if (pthread_mutex_trylock(&c->lock))
				continue;
			dead = shmrpc__conn_check_dead(n, c);
			pthread_mutex_unlock(&c->lock);
			if (dead)
				rep_drop(n, tab, c);
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
	c = shmrpc__ctab_alloc(&tab->t);
	if (!c)
		return -ENOMEM;
	err = shmrpc__conn_open(n, c, v.name, slot, &v);
	if (err) {
		shmrpc__ctab_put(&tab->t, c);
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

	pthread_rwlock_rdlock(&tab->t.lock);
	c = rep_find(tab, slot, gen);
	if (c && shmrpc__conn_usable(c)) {
		*cgen = atomic_load_explicit(&c->gen, memory_order_relaxed);
		pthread_rwlock_unlock(&tab->t.lock);
		*out = c;
		return 0;
	}
	pthread_rwlock_unlock(&tab->t.lock);
	pthread_rwlock_wrlock(&tab->t.lock);
	c = rep_find(tab, slot, gen);
	if (c && !shmrpc__conn_usable(c)) {
		rep_drop(n, tab, c);
		c = NULL;
		err = -EPIPE; /* its caller closed the ring: gone */
	}
	if (!c && !err) {
		rep_sweep(n, tab);
		err = rep_connect(n, tab, slot, gen, &c);
		if (!err) {
			c->next = tab->b[rep_bucket(tab, slot)];
			tab->b[rep_bucket(tab, slot)] = c;
		}
	}
	if (!err) {
		*cgen = atomic_load_explicit(&c->gen, memory_order_relaxed);
		*out = c;
	}
	pthread_rwlock_unlock(&tab->t.lock);
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
	pthread_rwlock_wrlock(&tab->t.lock);
	if (atomic_load_explicit(&c->gen, memory_order_relaxed) == gen &&
	    rep_find(tab, c->rx_slot, c->rx_gen) == c)
		rep_drop(n, tab, c);
	pthread_rwlock_unlock(&tab->t.lock);
}
