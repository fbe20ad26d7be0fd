// SPDX-License-Identifier: MIT
/*
 * Outbound connections kept: the pool of connection structs, the table of
 * this node's connections by receiver name, the per-thread cache in front
 * of it, their locking, tombstones, warm-up, and teardown. Connecting
 * itself, and a connection's end, is connect.c's.
 *
 * Finding a connection is the hot part of every send, so it takes no lock
 * and no reference count on the way: connection structs are type-stable
 * (allocated in chunks, recycled through a free list, freed only by
 * shmrpc_close), each with a generation that changes when it is recycled.
 * A thread caches (node, name) -> (connection, generation) in thread-local
 * storage and checks both under the connection's own mutex, which a send
 * takes anyway. A miss looks in the table, a small chained hash under a
 * rwlock, and connects if needed.
 *
 * A connection whose receiver left is swapped for a tombstone, so later
 * sends to that name get -EPIPE until a node of that name joins again; a
 * send that finds its connection dead (RX_CLOSED) connects to the node now
 * holding the name, if one does: -EPIPE only while nobody holds it, or once
 * when the holder is the receiver that closed the ring (it dropped it as
 * corrupt, or is leaving). The dead connection's ring is unmapped and its
 * counters folded into the node's totals only then, under both the table's
 * write lock and its own mutex: shmrpc_stats, which reads the table under
 * the read lock, counts every message exactly once.
 * Lock order: table, then connection; a thread holding a connection's mutex
 * never takes the table's lock for writing.
 *
 * The table type itself (struct shmrpc__ctab: chains, pool, recycling,
 * teardown) is shared with reply.c, whose reply connections are keyed by a
 * caller's (slot, gen) rather than a name: each user keeps its own key,
 * hash and lookup.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conntab.h"
#include "clock.h"
#include "connect.h"
#include "join.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "registry.h"
#include "seg.h"

/* ------------------------------------------------- a table, its pool */

#define CONN_CHUNK 16

struct shmrpc__conn_chunk {
	struct shmrpc__conn_chunk *next;
	struct shmrpc__conn c[CONN_CHUNK];
};

void shmrpc__ctab_init(struct shmrpc__ctab *t, struct shmrpc__conn **b, uint32_t nb, uint8_t kind,
		       bool clear)
{
	memset(t, 0, sizeof(*t));
	memset(b, 0, nb * sizeof(*b));
	t->b = b;
	t->nb = nb;
	t->kind = kind;
	t->clear = clear;
	pthread_rwlock_init(&t->lock, NULL);
}

struct shmrpc__conn *shmrpc__ctab_alloc(struct shmrpc__ctab *t)
{
	struct shmrpc__conn_chunk *k;
	struct shmrpc__conn *c;
	int i;

	if (!t->free) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return NULL;
		for (i = 0; i < CONN_CHUNK; i++) {
			pthread_mutex_init(&k->c[i].lock, NULL);
			k->c[i].kind = t->kind;
			k->c[i].next = t->free;
			t->free = &k->c[i];
		}
		k->next = t->chunks;
		t->chunks = k;
	}
	c = t->free;
	t->free = c->next;
	c->next = NULL;
	return c;
}

void shmrpc__ctab_put(struct shmrpc__ctab *t, struct shmrpc__conn *c)
{
	c->next = t->free;
	t->free = c;
}

void shmrpc__ctab_unhook(struct shmrpc__ctab *t, unsigned b, struct shmrpc__conn *c)
{
	struct shmrpc__conn **pp = &t->b[b];

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
}

void shmrpc__ctab_recycle(struct shmrpc_node *n, struct shmrpc__ctab *t, struct shmrpc__conn *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->q.hdr && !atomic_load_explicit(&c->folded, memory_order_relaxed))
		shmrpc__conn_unlist(n, c, false);
	shmrpc__conn_unmap(n, c);
	/* Relaxed: read under this mutex, or as a hint before taking it. */
	atomic_store_explicit(&c->gen, atomic_load_explicit(&c->gen, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (t->clear) {
		memset(&c->q, 0, sizeof(c->q));
		c->rx_slot = c->rx_gen = 0;
		atomic_store_explicit(&c->dead, false, memory_order_relaxed);
		atomic_store_explicit(&c->folded, false, memory_order_relaxed);
	}
	c->to[0] = '\0';
	pthread_mutex_unlock(&c->lock);
	shmrpc__ctab_put(t, c);
}

void shmrpc__ctab_close_all(struct shmrpc_node *n, struct shmrpc__ctab *t)
{
	struct shmrpc__conn *all = NULL, *c;
	unsigned b;

	/* Detach the table first, then take each connection's lock without
	 * the table's (the lock order is table, then connection). */
	pthread_rwlock_wrlock(&t->lock);
	for (b = 0; b < t->nb; b++) {
		while ((c = t->b[b])) {
			t->b[b] = c->next;
			c->next = all;
			all = c;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	while ((c = all)) {
		all = c->next;
		shmrpc__conn_close(n, c);
	}
}

void shmrpc__ctab_forget_all(struct shmrpc__ctab *t)
{
	struct shmrpc__conn *c;
	unsigned b;

	for (b = 0; b < t->nb; b++) {
		for (c = t->b[b]; c; c = c->next) {
			/* Not conn_unmap: it counts in the parent's segment. */
			shmrpc__seg_unmap(c->q.hdr, c->q.map_size);
			shmrpc__seg_unmap(c->peer, c->peer_size);
		}
		t->b[b] = NULL;
	}
}

void shmrpc__ctab_free_all(struct shmrpc__ctab *t, bool destroy)
{
	struct shmrpc__conn_chunk *k;
	int i;

	while ((k = t->chunks)) {
		t->chunks = k->next;
		/* A fork's copy may hold a locked copy of a mutex: not ours to
		 * destroy, only to free with the memory. */
		for (i = 0; destroy && i < CONN_CHUNK; i++)
			pthread_mutex_destroy(&k->c[i].lock);
		free(k);
	}
	t->free = NULL;
	if (destroy)
		pthread_rwlock_destroy(&t->lock);
}

/* ------------------------------------------- the node's, by receiver name */

static unsigned name_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static unsigned conn_bucket(const struct shmrpc_node *n, const char *to)
{
	return name_hash(to) % n->conns.nb;
}

static struct shmrpc__conn *conn_find(struct shmrpc_node *n, const char *to, unsigned b)
{
	struct shmrpc__conn *c;

	for (c = n->conns.b[b]; c; c = c->next)
		if (!strcmp(c->to, to))
			return c;
	return NULL;
}

/* Fields of a fresh or recycled struct; the mutex and gen stay. */
static void conn_reset(struct shmrpc__conn *c)
{
	memset(&c->q, 0, sizeof(c->q));
	c->peer = NULL;
	c->peer_size = 0;
	c->rx_slot = c->rx_gen = c->ring_bytes = 0;
	c->bmarks = false;
	atomic_store_explicit(&c->dead, false, memory_order_relaxed);
	atomic_store_explicit(&c->folded, false, memory_order_relaxed);
	c->tomb = false;
	atomic_store_explicit(&c->owner, NULL, memory_order_relaxed);
	c->resv = NULL;
	c->resv_cap = 0;
	c->to[0] = '\0';
}

/*
 * Under the write lock: did the receiver that closed our ring to @to just
 * now (tombstone @old) still hold the name in (slot, gen)? Then it dropped
 * the ring itself (as corrupt, or it is leaving): -EPIPE, once; the next
 * send connects to it afresh. A new holder of the name is connected to.
 */
static bool tomb_same_holder(struct shmrpc__conn *old, uint32_t slot, uint32_t gen)
{
	if (!old || !old->tomb || !old->rx_gen || old->rx_slot != slot || old->rx_gen != gen)
		return false;
	old->rx_gen = 0; /* out of every thread's reach: tombs are never locked */
	return true;
}

/* Under the write lock: connect to @to, in a struct not yet in the table;
 * @old is what the table holds for @to (a tombstone, a dead one) or NULL. */
static int conn_connect(struct shmrpc_node *n, const char *to, struct shmrpc__conn *old,
			struct shmrpc__conn **out)
{
	struct shmrpc__slot_view v;
	struct shmrpc__conn *c;
	uint32_t slot;
	int err;

	err = shmrpc__lookup(n->reg, n->slot, to, &slot, &v);
	if (err)
		return err;
	if (slot == n->slot)
		return -EINVAL;
	if (tomb_same_holder(old, slot, v.gen))
		return -EPIPE;
	c = shmrpc__ctab_alloc(&n->conns);
	if (!c)
		return -ENOMEM;
	conn_reset(c);
	err = shmrpc__conn_open(n, c, to, slot, &v);
	if (err) {
		shmrpc__ctab_put(&n->conns, c);
		return err;
	}
	*out = c;
	return 0;
}

/* Under the write lock: put @nc where @old was (or at the head), and
 * recycle @old. */
static void table_swap(struct shmrpc_node *n, unsigned b, struct shmrpc__conn *old,
		       struct shmrpc__conn *nc)
{
	if (old) {
		shmrpc__ctab_unhook(&n->conns, b, old);
		shmrpc__ctab_recycle(n, &n->conns, old);
	}
	nc->next = n->conns.b[b];
	n->conns.b[b] = nc;
}

/*
 * A candidate for @to and its generation, from the table, connecting if it
 * holds none (or only a tombstone, or a dead one). Not locked: the caller
 * locks it and checks the generation.
 */
static int conn_find_or_connect(struct shmrpc_node *n, const char *to, struct shmrpc__conn **out,
				uint32_t *gen)
{
	unsigned b = conn_bucket(n, to);
	struct shmrpc__conn *c, *nc = NULL;
	int err;

	pthread_rwlock_rdlock(&n->conns.lock);
	c = conn_find(n, to, b);
	if (c && shmrpc__conn_usable(c)) {
		*gen = atomic_load_explicit(&c->gen, memory_order_relaxed);
		pthread_rwlock_unlock(&n->conns.lock);
		*out = c;
		return 0;
	}
	pthread_rwlock_unlock(&n->conns.lock);

	/* Not in the table, so not known good: the name is checked here, on
	 * the slow path, rather than on every send. */
	err = shmrpc__name_check(to);
	if (err)
		return err;
	pthread_rwlock_wrlock(&n->conns.lock);
	c = conn_find(n, to, b);
	if (!c || !shmrpc__conn_usable(c)) {
		err = conn_connect(n, to, c, &nc);
		if (err == -ENOENT && c)
			err = -EPIPE; /* it was there, and left */
		if (!err) {
			table_swap(n, b, c, nc);
			c = nc;
		}
	}
	if (!err) {
		*gen = atomic_load_explicit(&c->gen, memory_order_relaxed);
		*out = c;
	}
	pthread_rwlock_unlock(&n->conns.lock);
	return err;
}

/* ------------------------------------------------ the per-thread cache */

#define TX_CACHE 4

struct tx_cache {
	uint64_t uid; /* the node's: never reused, unlike its address */
	struct shmrpc__conn *c;
	uint32_t gen;
	char to[SHMRPC_NAME_MAX + 1];
};

static _Thread_local struct tx_cache tls_cache[TX_CACHE];
static _Thread_local char tls_token; /* its address names the thread */

static struct tx_cache *cache_slot(const struct shmrpc_node *n, const char *to)
{
	return &tls_cache[(name_hash(to) ^ (unsigned)n->uid) % TX_CACHE];
}

/* Names are short: a byte loop beats a libc strcmp call on them. */
static bool name_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* ------------------------------------------------------------ locking */

#if defined(__SANITIZE_THREAD__)
#define SHMRPC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMRPC__TSAN 1
#endif
#endif

/*
 * Lock with a CLOCK_MONOTONIC deadline (a wall-clock jump must not stretch
 * or cut a timeout). ThreadSanitizer (gcc 12, clang 14) does not intercept
 * pthread_mutex_clocklock and then reports false races on everything the
 * mutex guards; its builds take the CLOCK_REALTIME equivalent instead.
 */
static int lock_until(pthread_mutex_t *m, int64_t deadline)
{
	struct timespec ts;
#ifdef SHMRPC__TSAN
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	shmrpc__ts_from_ns(&ts, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
					(deadline - shmrpc__now_ns()));
	return pthread_mutex_timedlock(m, &ts);
#else
	shmrpc__ts_from_ns(&ts, deadline);
	return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
#endif
}

int shmrpc__conn_lock(struct shmrpc__conn *c, struct shmrpc__tmo *t)
{
	int rc;

	/* Our own reservation: -EDEADLK whatever the timeout (a trylock
	 * would say EBUSY, and a caller retrying on -EAGAIN spin forever).
	 * Relaxed: only this thread stores its own token, and it clears it
	 * before it unlocks. */
	if (atomic_load_explicit(&c->owner, memory_order_relaxed) == &tls_token)
		return -EDEADLK;
	rc = pthread_mutex_trylock(&c->lock);
	if (rc == EBUSY && t->ms != 0)
		rc = t->ms < 0 ? pthread_mutex_lock(&c->lock) :
				 lock_until(&c->lock, shmrpc__tmo_deadline(t));
	if (rc == EBUSY)
		return -EAGAIN;
	if (rc)
		return rc == ETIMEDOUT ? shmrpc__timeout_err(t->ms) : -rc;
	atomic_store_explicit(&c->owner, &tls_token, memory_order_relaxed);
	return 0;
}

int shmrpc__conn_lock_gen(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t gen,
			  struct shmrpc__tmo *t)
{
	int rc = shmrpc__conn_lock(c, t); /* type-stable: safe to lock, checked below */

	if (rc)
		return rc;
	/* As in conn_acquire: the same generation is the same connection. */
	if (atomic_load_explicit(&c->gen, memory_order_relaxed) == gen && shmrpc__conn_usable(c) &&
	    !shmrpc__conn_check_dead(n, c))
		return 0;
	shmrpc__conn_unlock(n, c);
	return -ESTALE;
}

bool shmrpc__conn_held(const struct shmrpc__conn *c)
{
	return atomic_load_explicit(&c->owner, memory_order_relaxed) == &tls_token;
}

int shmrpc__conn_acquire(struct shmrpc_node *n, const char *to, struct shmrpc__tmo *t,
			 struct shmrpc__conn **out)
{
	struct tx_cache *e;
	struct shmrpc__conn *c;
	uint32_t gen;
	int rc, tries;

	if (!to)
		return -EINVAL;
	e = cache_slot(n, to);
	for (tries = 0; tries < 16; tries++) {
		if (e->uid == n->uid && e->c && name_eq(e->to, to)) {
			c = e->c; /* type-stable: safe to lock, checked below */
			gen = e->gen;
		} else {
			rc = conn_find_or_connect(n, to, &c, &gen);
			if (rc)
				return rc;
		}
		rc = shmrpc__conn_lock(c, t);
		if (rc)
			return rc;
		/* The same generation is the same connection (a struct changes
		 * it when it is recycled), hence the same name. One whose
		 * receiver left (RX_CLOSED) is dead: the unlock below swaps it
		 * for a tombstone, and the next round connects to the node now
		 * holding the name, or says -EPIPE if none does. */
		if (atomic_load_explicit(&c->gen, memory_order_relaxed) == gen &&
		    shmrpc__conn_usable(c) && !shmrpc__conn_check_dead(n, c)) {
			if (e->c != c || e->gen != gen || e->uid != n->uid) {
				e->uid = n->uid;
				e->c = c;
				e->gen = gen;
				snprintf(e->to, sizeof(e->to), "%s", to);
			}
			*out = c;
			return 0;
		}
		/* recycled, or found dead: look again (connecting anew) */
		e->c = NULL;
		shmrpc__conn_unlock(n, c);
	}
	return -EAGAIN; /* churning faster than we can follow */
}

void shmrpc__conn_unlock(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	bool dead = !c->tomb && atomic_load_explicit(&c->dead, memory_order_relaxed);
	unsigned b;
	struct shmrpc__conn *t;
	uint32_t gen = atomic_load_explicit(&c->gen, memory_order_relaxed);

	atomic_store_explicit(&c->owner, NULL, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	if (!dead)
		return;
	/* Swap the dead connection for a tombstone (same name: -EPIPE). */
	pthread_rwlock_wrlock(&n->conns.lock);
	b = conn_bucket(n, c->to);
	if (atomic_load_explicit(&c->gen, memory_order_relaxed) == gen &&
	    conn_find(n, c->to, b) == c && (t = shmrpc__ctab_alloc(&n->conns))) {
		conn_reset(t);
		snprintf(t->to, sizeof(t->to), "%s", c->to);
		atomic_store_explicit(&t->dead, true, memory_order_relaxed);
		t->tomb = true;
		/* whom it was to: the holder of the name then (conn_connect) */
		t->rx_slot = c->rx_slot;
		t->rx_gen = c->rx_gen;
		table_swap(n, b, c, t);
	}
	pthread_rwlock_unlock(&n->conns.lock);
}

/* A connection that failed for want of a resource, not because of the
 * peer (gone, leaving, corrupt, not ours to trust). */
static bool lack_of(int err)
{
	return err == -ENOSPC || err == -ENOMEM || err == -EMFILE || err == -ENFILE ||
	       err == -EFBIG;
}

int shmrpc__conn_warm(struct shmrpc_node *n)
{
	uint32_t i, hi = shmrpc__reg_hi(n->reg), gen, failed = 0, bytes = 0;
	char first[SHMRPC_NAME_MAX + 1] = "";
	struct shmrpc__slot_view v;
	struct shmrpc__conn *c;
	int count = 0, err, lack = 0;

	for (i = 0; i < hi; i++) {
		if (i == n->slot || shmrpc__reg_read(n->reg, i, &v) || v.state != SHMRPC__SLOT_LIVE)
			continue;
		err = conn_find_or_connect(n, v.name, &c, &gen);
		count += err == 0;
		if (!lack_of(err))
			continue;
		if (!failed++) {
			lack = err;
			bytes = v.ring_bytes;
			memcpy(first, v.name, sizeof(first));
		}
	}
	if (!failed)
		return count;
	/* Every other node was tried; the connections made stay open. */
	return shmrpc__seg_err(lack, bytes,
			       "shmrpc_warmup: %d connected, %u not; first: ring to '%s'", count,
			       failed, first);
}
