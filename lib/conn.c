// SPDX-License-Identifier: MIT
/*
 * Outbound connections: one per receiver this node has sent to, holding the
 * producer side of the ring and a mapping of the receiver's node segment
 * (its bell and announcement tables).
 *
 * Connecting (first send, or warmup): find the receiver's slot, open its
 * node segment and check it is alive (its liveness lock is held), note the
 * ring in our out_gen[] table (before the file exists, so whoever reclaims
 * us finds it), create the ring file sized by the receiver's ring_bytes,
 * and announce it: our gen in the receiver's in_gen[our slot], our bit in
 * its pend bitmap, then ring its bell.
 *
 * Announce against the receiver leaving (it sets NODE_CLOSING, then walks
 * in_gen[] to close every ring announced to it):
 *
 *   sender                                  receiver (shmrpc_close)
 *   STORE in_gen[me] (release)              RMW flags |= CLOSING
 *   RMW pend |= bit                         FENCE (J, seq_cst, pairs with I)
 *   FENCE (I, seq_cst, pairs with J)        LOAD in_gen[*]: close those rings
 *   LOAD flags: CLOSING? close the ring
 *
 * Either the receiver sees our in_gen entry, or we see CLOSING; both may,
 * and closing a ring twice is harmless.
 *
 * A slot's previous owner may have announced a ring that the receiver has
 * not opened yet; overwriting in_gen[me] would hide it. So the new ring's
 * header carries the previous value (prev_gen) and the receiver follows it.
 *
 * Node segments are writable by every peer, headers included: peer_open
 * checks a receiver's header once, but the tables in any node segment are
 * always located from the layout (lib/layout.h), never from header fields.
 *
 * The table is a small chained hash under a rwlock; sends take it shared.
 * A connection whose receiver left stays as a tombstone, so later sends to
 * that name get -EPIPE until a node of that name joins again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static unsigned name_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h % SHMRPC__CONN_BUCKETS;
}

static struct shmrpc__conn *conn_find(struct shmrpc_node *n, const char *to, unsigned b)
{
	struct shmrpc__conn *c;

	for (c = n->conns[b]; c; c = c->next)
		if (!strcmp(c->to, to))
			return c;
	return NULL;
}

/* Map the receiver's node segment and check that it is alive. */
static int peer_open(struct shmrpc_node *n, uint32_t slot, uint32_t gen, struct shmrpc__conn *c)
{
	struct shmrpc__reg *r = &n->reg;
	uint64_t want = shmrpc__node_size(r->capacity);
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__node_hdr *h;
	void *map;
	int fd, err, alive;

	shmrpc__node_path(path, r->domain, r->nonce, slot, gen);
	err = shmrpc__seg_open(path, want, want, r->mode, false, &map, &c->peer_size, &fd);
	/* A LIVE node's segment was sized before it was published: empty
	 * (seg_open's "not sized yet") is as corrupt as any other size. */
	if (err == -EAGAIN)
		err = -EPROTO;
	if (err)
		return err;
	alive = shmrpc__seg_locked(fd);
	close(fd);
	h = map;
	if (h->magic != SHMRPC__NODE_MAGIC || h->slot != slot || h->gen != gen ||
	    h->capacity != r->capacity || h->pend_off != shmrpc__node_pend_off() ||
	    h->in_off != shmrpc__node_in_off(r->capacity) ||
	    h->out_off != shmrpc__node_out_off(r->capacity) || h->ring_bytes < SHMRPC__RING_MIN ||
	    h->ring_bytes > SHMRPC__RING_MAX || (h->ring_bytes & (h->ring_bytes - 1)))
		err = -EPROTO;
	else if (alive <= 0)
		err = -ENOENT;
	if (err) {
		shmrpc__seg_unmap(map, c->peer_size);
		return err;
	}
	c->peer = h;
	c->rx_slot = slot;
	c->rx_gen = gen;
	c->ring_bytes = h->ring_bytes;
	return 0;
}

static int ring_create(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t prev_gen)
{
	struct shmrpc__ring_ids ids = {
		.nonce = n->reg.nonce, .tx_slot = n->slot, .tx_gen = n->gen,
		.rx_slot = c->rx_slot, .rx_gen = c->rx_gen, .prev_gen = prev_gen,
		.tx_pid = n->proc.pid, .tx_name = n->name,
	};
	_Atomic uint32_t *out = shmrpc__node_tab(n->seg, shmrpc__node_out_off(n->reg.capacity));
	uint64_t size = (uint64_t)SHMRPC__PAGE + c->ring_bytes;
	char path[SHMRPC__PATH_MAX];
	void *map;
	int err;

	/* Release: a reaper reading our table after our death finds the ring
	 * (the file creation below is a system call, itself a barrier). */
	atomic_store_explicit(&out[c->rx_slot], c->rx_gen + 1, memory_order_release);
	shmrpc__ring_path(path, n->reg.domain, n->reg.nonce, n->slot, n->gen, c->rx_slot,
			  c->rx_gen);
	err = shmrpc__seg_create(path, size, n->reg.mode, &map, NULL);
	if (err == -EEXIST) { /* left by an earlier connection to this node */
		shmrpc__seg_unlink(path);
		err = shmrpc__seg_create(path, size, n->reg.mode, &map, NULL);
	}
	if (err)
		return err;
	shmrpc__ring_format(map, c->ring_bytes, &ids);
	shmrpc__ring_attach(&c->q, map, size, true);
	return 0;
}

/* Tell the receiver about the ring; -ENOENT if it is leaving. */
static int announce(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	struct shmrpc__node_hdr *p = c->peer;
	/* Not p->in_off: checked in peer_open, but the peer can change it. */
	_Atomic uint32_t *in = shmrpc__node_tab(p, shmrpc__node_in_off(n->reg.capacity));
	_Atomic uint64_t *pend = shmrpc__node_pend(p, shmrpc__node_pend_off());

	/* Release: pairs with the receiver's acquire load of in_gen; the ring
	 * file is complete before it learns the name. */
	atomic_store_explicit(&in[n->slot], n->gen + 1, memory_order_release);
	atomic_fetch_or(&pend[n->slot / 64], 1ull << (n->slot % 64));
	/* Release: pairs with the receiver's exchange of pend_hint. */
	atomic_store_explicit(&p->pend_hint, 1, memory_order_release);
	/* (I) pairs with (J) in inbound.c: see the diagram above. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&p->flags, memory_order_relaxed) & SHMRPC__NODE_CLOSING)
		return -ENOENT;
	shmrpc__bell_ring(n, p);
	return 0;
}

static void conn_unmap(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	if (c->q.hdr) {
		shmrpc__seg_unmap(c->q.hdr, c->q.map_size);
		c->q.hdr = NULL;
		atomic_fetch_sub_explicit(&n->seg->ctr.rings_out, 1, memory_order_relaxed);
	}
	shmrpc__seg_unmap(c->peer, c->peer_size);
	c->peer = NULL;
}

/* Our ring to @c is finished: drop it from our out_gen table, unlink it. */
static void conn_forget(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	_Atomic uint32_t *out = shmrpc__node_tab(n->seg, shmrpc__node_out_off(n->reg.capacity));
	uint32_t g = c->rx_gen + 1;
	char path[SHMRPC__PATH_MAX];

	shmrpc__ring_path(path, n->reg.domain, n->reg.nonce, n->slot, n->gen, c->rx_slot,
			  c->rx_gen);
	shmrpc__seg_unlink(path);
	/* Relaxed CAS: only a newer connection to this slot may have changed
	 * it, and then it is not ours to clear. */
	atomic_compare_exchange_strong_explicit(&out[c->rx_slot], &g, 0, memory_order_relaxed,
						memory_order_relaxed);
}

static int conn_connect(struct shmrpc_node *n, const char *to, struct shmrpc__conn **out)
{
	_Atomic uint32_t *in;
	struct shmrpc__slot_view v;
	struct shmrpc__conn *c;
	uint32_t slot, prev;
	int err;

	err = shmrpc__lookup(n, to, &slot, &v);
	if (err)
		return err;
	if (slot == n->slot)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = peer_open(n, slot, v.gen, c);
	if (err == -ENOENT)
		shmrpc__reclaim_locked(&n->reg, slot, v.gen);
	if (err)
		goto out_free;
	/* Before the announce: past it, failing would cut a prev_gen chain. */
	err = shmrpc__mutex_errorcheck(&c->lock);
	if (err)
		goto out_unmap;
	in = shmrpc__node_tab(c->peer, shmrpc__node_in_off(n->reg.capacity));
	/* Relaxed: only a holder of our slot writes this entry. */
	prev = atomic_load_explicit(&in[n->slot], memory_order_relaxed);
	if (prev == n->gen + 1)
		prev = 0;
	err = ring_create(n, c, prev);
	if (err)
		goto out_mutex;
	atomic_fetch_add_explicit(&n->seg->ctr.connects, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n->seg->ctr.rings_out, 1, memory_order_relaxed);
	err = announce(n, c);
	if (err)
		goto out_closing;
	snprintf(c->to, sizeof(c->to), "%s", to);
	/* Best effort: without it, a dead receiver is still found by a send
	 * that waits (its safety timeout) and by every other watcher. */
	shmrpc__watch_peer(n, slot, v.gen);
	*out = c;
	return 0;

out_closing:
	/*
	 * The receiver is leaving. Our announce overwrote its in_gen entry
	 * for our slot, the head of the chain to older unopened rings from
	 * earlier holders of our slot (prev). Its close may have read our
	 * entry, and then reaches those rings only through our ring, which
	 * we unlink now: close them ourselves (twice is harmless).
	 */
	while (prev)
		prev = shmrpc__ring_kill(&n->reg, n->slot, prev - 1, c->rx_slot, c->rx_gen,
					 SHMRPC__RING_RX_CLOSED);
	conn_forget(n, c);
out_mutex:
	pthread_mutex_destroy(&c->lock);
out_unmap:
	conn_unmap(n, c);
out_free:
	free(c);
	return err;
}

/* Under the write lock: put @nc where @old was (or at the head). */
static void table_swap(struct shmrpc_node *n, unsigned b, struct shmrpc__conn *old,
		       struct shmrpc__conn *nc)
{
	struct shmrpc__conn **pp = &n->conns[b];

	if (old) {
		while (*pp != old)
			pp = &(*pp)->next;
		*pp = old->next;
		/* Counted in the node's totals from now on, not per ring:
		 * stats read the table under the read lock, so nothing is
		 * counted twice or missed. */
		if (old->q.hdr)
			shmrpc__fold_tx(n, old->q.hdr);
		shmrpc__conn_put(n, old);
	}
	atomic_init(&nc->refs, 1);
	nc->next = n->conns[b];
	n->conns[b] = nc;
}

static struct shmrpc__conn *tombstone(const char *to)
{
	struct shmrpc__conn *t = calloc(1, sizeof(*t));

	if (t) {
		snprintf(t->to, sizeof(t->to), "%s", to);
		atomic_init(&t->dead, true);
		t->tomb = true;
	}
	return t;
}

int shmrpc__conn_get(struct shmrpc_node *n, const char *to, struct shmrpc__conn **out)
{
	unsigned b = name_hash(to);
	struct shmrpc__conn *c, *nc;
	int err = 0;

	pthread_rwlock_rdlock(&n->conn_lock);
	c = conn_find(n, to, b);
	if (c && !atomic_load_explicit(&c->dead, memory_order_relaxed)) {
		/* Relaxed: the table lock keeps c alive while we take a ref. */
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
		pthread_rwlock_unlock(&n->conn_lock);
		*out = c;
		return 0;
	}
	pthread_rwlock_unlock(&n->conn_lock);

	pthread_rwlock_wrlock(&n->conn_lock);
	c = conn_find(n, to, b);
	if (!c || atomic_load_explicit(&c->dead, memory_order_relaxed)) {
		err = conn_connect(n, to, &nc);
		if (err == -ENOENT && c)
			err = -EPIPE; /* it was there, and left */
		if (!err) {
			table_swap(n, b, c, nc);
			c = nc;
		}
	}
	if (!err)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	pthread_rwlock_unlock(&n->conn_lock);
	*out = err ? NULL : c;
	return err;
}

void shmrpc__conn_retire(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	unsigned b = name_hash(c->to);
	struct shmrpc__conn *t;

	pthread_rwlock_wrlock(&n->conn_lock);
	if (conn_find(n, c->to, b) == c && (t = tombstone(c->to)))
		table_swap(n, b, c, t);
	pthread_rwlock_unlock(&n->conn_lock);
}

void shmrpc__conn_put(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	/* Acq_rel: the last one out sees every other user's writes. */
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	conn_unmap(n, c);
	if (!c->tomb)
		pthread_mutex_destroy(&c->lock);
	free(c);
}

void shmrpc__conn_kill(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	if (atomic_load_explicit(&c->dead, memory_order_relaxed))
		return;
	conn_forget(n, c);
	atomic_store_explicit(&c->dead, true, memory_order_relaxed);
}

bool shmrpc__conn_check_dead(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	if (atomic_load_explicit(&c->dead, memory_order_relaxed))
		return true;
	/* Acquire: pairs with the receiver's (or reclaimer's) fetch_or. */
	if (!(atomic_load_explicit(&c->q.hdr->flags, memory_order_acquire) &
	      SHMRPC__RING_RX_CLOSED))
		return false;
	shmrpc__conn_kill(n, c);
	return true;
}

bool shmrpc__conn_peer_gone(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	if (shmrpc__node_alive(&n->reg, c->rx_slot, c->rx_gen) != 0)
		return false;
	shmrpc__reclaim_locked(&n->reg, c->rx_slot, c->rx_gen);
	shmrpc__conn_kill(n, c);
	return true;
}

int shmrpc__conn_warm(struct shmrpc_node *n)
{
	uint32_t i, hi = shmrpc__reg_hi(&n->reg);
	struct shmrpc__slot_view v;
	struct shmrpc__conn *c;
	int count = 0;

	for (i = 0; i < hi; i++) {
		if (i == n->slot || shmrpc__reg_read(&n->reg, i, &v) ||
		    v.state != SHMRPC__SLOT_LIVE)
			continue;
		if (!shmrpc__conn_get(n, v.name, &c)) {
			count++;
			shmrpc__conn_put(n, c);
		}
	}
	return count;
}

/* Close one connection at our leaving: the receiver drains what we sent. */
static void conn_close(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	uint32_t old;

	if (c->tomb)
		return;
	pthread_mutex_lock(&c->lock);
	if (!atomic_load_explicit(&c->dead, memory_order_relaxed)) {
		/* seq_cst RMW, then the fence (F) inside the wake: pairs with
		 * a sleeping receiver's arm-fence-recheck. */
		old = atomic_fetch_or(&c->q.hdr->flags, SHMRPC__RING_TX_CLOSED);
		shmrpc__wake_consumer(n, c);
		if (old & SHMRPC__RING_RX_CLOSED)
			conn_forget(n, c);
		atomic_store_explicit(&c->dead, true, memory_order_relaxed);
	}
	if (c->q.hdr) /* out of the table: count it in the totals now */
		shmrpc__fold_tx(n, c->q.hdr);
	pthread_mutex_unlock(&c->lock);
}

void shmrpc__conn_forget_all(struct shmrpc_node *n)
{
	struct shmrpc__conn *c;
	unsigned b;

	for (b = 0; b < SHMRPC__CONN_BUCKETS; b++) {
		while ((c = n->conns[b])) {
			n->conns[b] = c->next;
			/* Not conn_unmap: it counts in the parent's segment. The
			 * mutex may be a locked copy: nothing to destroy. */
			shmrpc__seg_unmap(c->q.hdr, c->q.map_size);
			shmrpc__seg_unmap(c->peer, c->peer_size);
			free(c);
		}
	}
}

void shmrpc__conn_close_all(struct shmrpc_node *n)
{
	struct shmrpc__conn *all = NULL, *c;
	unsigned b;

	/* Detach the table first, then take each connection's lock without
	 * the table's: a sender holds its connection's lock and may then take
	 * the table's (shmrpc_stats), never the other way round. */
	pthread_rwlock_wrlock(&n->conn_lock);
	for (b = 0; b < SHMRPC__CONN_BUCKETS; b++) {
		while ((c = n->conns[b])) {
			n->conns[b] = c->next;
			c->next = all;
			all = c;
		}
	}
	pthread_rwlock_unlock(&n->conn_lock);
	while ((c = all)) {
		all = c->next;
		conn_close(n, c);
		shmrpc__conn_put(n, c);
	}
}
