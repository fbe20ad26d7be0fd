// SPDX-License-Identifier: MIT
/*
 * Connecting: the protocol that makes an outbound connection, one per
 * receiver this node sends to, holding the producer side of the ring and a
 * mapping of the receiver's node segment (its bell and announcement
 * tables); and its end, when the receiver goes or we leave. conntab.c keeps
 * the connections (pool, table, per-thread cache, locking).
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
 * A connection whose receiver closed the ring (RX_CLOSED) or is gone is
 * dead: its ring is unlisted and unlinked at once (conn_kill), and sends get
 * -EPIPE; conntab.c swaps it for a tombstone.
 *
 * A reply ring (c->kind SHMRPC__KIND_REP: a server's ring to a caller, for
 * its replies; lib/reply.c keeps those connections) is made and ended the
 * same way, in the tables of its kind: our rep_out_gen, the caller's
 * rep_in_gen, rep_pend, rep_pend_hint and rep_bell (layout.h). Its counters
 * are not messages': they are never folded into the node's totals.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "connect.h"
#include "counters.h"
#include "error.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "nodeseg.h"
#include "reclaim.h"
#include "registry.h"
#include "ring.h"
#include "seg.h"
#include "waker.h"
#include "watch.h"

/* Map the receiver's node segment and check that it is alive. */
static int peer_open(struct shmrpc_node *n, uint32_t slot, uint32_t gen, struct shmrpc__conn *c)
{
	struct shmrpc__node_hdr *h;
	uint32_t ring_bytes;
	int fd, err, alive;

	err = shmrpc__node_map(n->reg, slot, gen, &h, &c->peer_size, &fd);
	if (err)
		return err;
	alive = shmrpc__seg_locked(fd);
	close(fd);
	/* Read once: the peer can change it between a check and a use. */
	ring_bytes = h->ring_bytes;
	if (!shmrpc__ring_size_ok(ring_bytes))
		err = -EPROTO;
	else if (alive < 0) /* cannot tell (no memory for the lock query): not gone */
		err = shmrpc__err(alive, "node in slot %u (gen %u): liveness not checked: %s", slot,
				  gen, strerror(-alive));
	else if (!alive)
		err = -ENOENT;
	if (err) {
		shmrpc__seg_unmap(h, c->peer_size);
		return err;
	}
	c->peer = h;
	c->rx_slot = slot;
	c->rx_gen = gen;
	c->ring_bytes = ring_bytes;
	return 0;
}

static int ring_create(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t prev_gen)
{
	struct shmrpc__ring_ids ids = {
		.nonce = n->reg->nonce,
		.tx_slot = n->slot,
		.tx_gen = n->gen,
		.rx_slot = c->rx_slot,
		.rx_gen = c->rx_gen,
		.prev_gen = prev_gen,
		.tx_pid = n->proc.pid,
		.tx_name = n->name,
		.kind = c->kind,
	};
	_Atomic uint32_t *out =
		shmrpc__node_tab(n->seg, shmrpc__node_out_off_k(n->reg->capacity, c->kind));
	uint64_t size = (uint64_t)SHMRPC__PAGE + c->ring_bytes;
	char path[SHMRPC__PATH_MAX];
	uint32_t old;
	void *map;
	int err;

	/* Relaxed: only this node writes its out_gen table, under the table's
	 * write lock. */
	old = atomic_load_explicit(&out[c->rx_slot], memory_order_relaxed);
	/* Release: a reaper reading our table after our death finds the ring
	 * (the file creation below is a system call, itself a barrier). */
	atomic_store_explicit(&out[c->rx_slot], c->rx_gen + 1, memory_order_release);
	shmrpc__ring_path_k(path, n->reg, c->kind, n->slot, n->gen, c->rx_slot, c->rx_gen);
	err = shmrpc__seg_create(path, size, n->reg->mode, true, &map, NULL);
	if (err == -EEXIST) { /* left by an earlier connection to this node */
		shmrpc__seg_unlink(path);
		err = shmrpc__seg_create(path, size, n->reg->mode, true, &map, NULL);
	}
	if (err) {
		/* No ring: no entry for reapers and observers to chase. Relaxed:
		 * one that read ours meanwhile finds no file, which it handles. */
		atomic_store_explicit(&out[c->rx_slot], old, memory_order_relaxed);
		return err == -EEXIST ? shmrpc__seg_taken(path, "ring") : err;
	}
	shmrpc__ring_format(map, c->ring_bytes, &ids);
	shmrpc__ring_attach(&c->q, map, size, true);
	return 0;
}

/* Tell the receiver about the ring; -ENOENT if it is leaving. */
static int announce(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	struct shmrpc__node_hdr *p = c->peer;
	uint32_t cap = n->reg->capacity;
	/* Not p->in_off: checked in peer_open, but the peer can change it. */
	_Atomic uint32_t *in = shmrpc__node_tab(p, shmrpc__node_in_off_k(cap, c->kind));
	_Atomic uint64_t *pend = shmrpc__node_pend(p, shmrpc__node_pend_off_k(cap, c->kind));

	/* Release: pairs with the receiver's acquire load of in_gen; the ring
	 * file is complete before it learns the name. */
	atomic_store_explicit(&in[n->slot], n->gen + 1, memory_order_release);
	/* Release: pairs with the receiver's acquire exchange of the pend
	 * word (inbound.c); who sees our bit sees our in_gen entry. No full
	 * barrier needed here: the handshake against CLOSING is the fence (I)
	 * below, on in_gen and flags, not on this word. */
	atomic_fetch_or_explicit(&pend[n->slot / 64], 1ull << (n->slot % 64), memory_order_release);
	/* Release: pairs with the receiver's exchange of pend_hint. */
	atomic_store_explicit(shmrpc__node_hint(p, c->kind), 1, memory_order_release);
	/* (I) pairs with (J) in inbound.c: see the diagram above. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&p->flags, memory_order_relaxed) & SHMRPC__NODE_CLOSING)
		return -ENOENT;
	shmrpc__bell_ring_k(n, p, c->kind);
	return 0;
}

void shmrpc__conn_unmap(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	if (c->q.hdr) {
		shmrpc__seg_unmap(c->q.hdr, c->q.map_size);
		c->q.hdr = NULL;
		atomic_fetch_sub_explicit(&n->seg->ctr.rings_out, 1, memory_order_relaxed);
	}
	shmrpc__seg_unmap(c->peer, c->peer_size);
	c->peer = NULL;
}

void shmrpc__conn_unlist(struct shmrpc_node *n, struct shmrpc__conn *c, bool unlink)
{
	_Atomic uint32_t *out =
		shmrpc__node_tab(n->seg, shmrpc__node_out_off_k(n->reg->capacity, c->kind));
	uint32_t g = c->rx_gen + 1;
	char path[SHMRPC__PATH_MAX];

	shmrpc__fold_begin(n);
	if (unlink) {
		shmrpc__ring_path_k(path, n->reg, c->kind, n->slot, n->gen, c->rx_slot, c->rx_gen);
		shmrpc__seg_unlink(path);
	}
	/* Relaxed CAS: only a newer connection to this slot may have changed
	 * it, and then it is not ours to clear. */
	atomic_compare_exchange_strong_explicit(&out[c->rx_slot], &g, 0, memory_order_relaxed,
						memory_order_relaxed);
	if (c->q.hdr && !atomic_load_explicit(&c->folded, memory_order_relaxed)) {
		if (c->kind == SHMRPC__KIND_MSG) /* replies are not messages */
			shmrpc__fold_tx(n, c->q.hdr);
		atomic_store_explicit(&c->folded, true, memory_order_relaxed);
	}
	shmrpc__fold_end(n);
}

/* Our ring to @c is finished: unlist it and unlink it. */
static void conn_forget(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	shmrpc__conn_unlist(n, c, true);
}

/*
 * The receiver is leaving (our announce saw CLOSING). Our announce
 * overwrote its in_gen entry for our slot, the head of the chain to older
 * unopened rings from earlier holders of our slot (@prev). Its close may
 * have read our entry, and then reaches those rings only through our ring,
 * which we unlink now: close them ourselves (twice is harmless).
 */
static void conn_abandon(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t prev)
{
	while (prev)
		prev = shmrpc__ring_kill_k(n->reg, c->kind, n->slot, prev - 1, c->rx_slot,
					   c->rx_gen, SHMRPC__RING_RX_CLOSED);
	conn_forget(n, c);
}

int shmrpc__conn_open(struct shmrpc_node *n, struct shmrpc__conn *c, const char *to, uint32_t slot,
		      const struct shmrpc__slot_view *v)
{
	_Atomic uint32_t *in;
	uint32_t prev;
	int err, pidfd;

	/* Before peer_open sees the peer's lock held: that makes it the
	 * peer's (watch.c), with no check of its own. */
	pidfd = shmrpc__watch_pidfd(n, v);
	err = peer_open(n, slot, v->gen, c);
	if (err == -ENOENT)
		shmrpc__reclaim_locked(n->reg, slot, v->gen);
	if (err)
		goto out_close;
	in = shmrpc__node_tab(c->peer, shmrpc__node_in_off_k(n->reg->capacity, c->kind));
	/* Relaxed: only a holder of our slot writes this entry. */
	prev = atomic_load_explicit(&in[n->slot], memory_order_relaxed);
	if (prev == n->gen + 1)
		prev = 0;
	err = ring_create(n, c, prev);
	if (err) {
		if (err != -EEXIST) /* that one names the file in the way */
			err = shmrpc__seg_err(err, c->ring_bytes, "ring to '%s'", to);
		goto out_unmap;
	}
	atomic_fetch_add_explicit(&n->seg->ctr.connects, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n->seg->ctr.rings_out, 1, memory_order_relaxed);
	err = announce(n, c);
	if (err) {
		conn_abandon(n, c, prev);
		goto out_unmap;
	}
	snprintf(c->to, sizeof(c->to), "%s", to);
	/* The incarnation we are connected to, as its slot said when we
	 * looked it up: a broadcast marks its copy only if this one takes
	 * marks (its rings accept BCAST records only then). */
	c->bmarks = c->kind == SHMRPC__KIND_MSG && (v->flags & SHMRPC__SLOT_BMARKS);
	/* Best effort: without it, a dead receiver is still found by a send
	 * that waits (its safety timeout) and by every other watcher. */
	shmrpc__watch_peer(n, slot, v->gen, pidfd);
	return 0;

out_unmap:
	shmrpc__conn_unmap(n, c);
out_close:
	if (pidfd >= 0)
		close(pidfd);
	return err;
}

static void conn_kill(struct shmrpc_node *n, struct shmrpc__conn *c)
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
	conn_kill(n, c);
	return true;
}

bool shmrpc__conn_peer_gone(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	if (shmrpc__node_alive(n->reg, c->rx_slot, c->rx_gen) != 0)
		return false;
	shmrpc__reclaim_locked(n->reg, c->rx_slot, c->rx_gen);
	conn_kill(n, c);
	return true;
}

/* Close one connection at our leaving: the receiver drains what we sent. */
void shmrpc__conn_close(struct shmrpc_node *n, struct shmrpc__conn *c)
{
	uint32_t old;

	pthread_mutex_lock(&c->lock);
	if (shmrpc__conn_usable(c)) {
		/* Release: pairs with the receiver's acquire load of TX_CLOSED
		 * (rx.c, ring_next): our last commit is seen with it. A
		 * sleeping receiver's arm-fence-recheck (G) pairs with the
		 * fence (F) that begins the wake below: no full barrier is
		 * needed in this RMW. */
		old = atomic_fetch_or_explicit(&c->q.hdr->flags, SHMRPC__RING_TX_CLOSED,
					       memory_order_release);
		shmrpc__wake_consumer_k(n, c->q.hdr, c->peer, c->kind);
		/* The ring stays for its receiver, which drains and unlinks
		 * it, unless the receiver left (RX_CLOSED): then it goes now. */
		shmrpc__conn_unlist(n, c, old & SHMRPC__RING_RX_CLOSED);
		atomic_store_explicit(&c->dead, true, memory_order_relaxed);
	}
	if (c->q.hdr && !atomic_load_explicit(&c->folded, memory_order_relaxed))
		shmrpc__conn_unlist(n, c, false);
	shmrpc__conn_unmap(n, c);
	pthread_mutex_unlock(&c->lock);
}
