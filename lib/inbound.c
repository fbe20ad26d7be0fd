// SPDX-License-Identifier: MIT
/*
 * Inbound rings: the receiving side of every ring that delivers to this
 * node, owned by the one receiving thread.
 *
 * A sender announces a new ring by writing its gen into our in_gen[its
 * slot], setting its bit in our pend bitmap and pend_hint, and ringing our
 * bell (connect.c). We learn of rings without polling: the bell wakes us, and
 * a receiving call looks at pend_hint (one load) before anything else.
 *
 * A ring from (slot, gen) is dropped once it is empty and its sender is
 * known to be gone: it set TX_CLOSED, or a newer node holds its slot, or
 * the registry no longer lists it. Everything it had published is consumed
 * first. Dropping unlinks the file: the sender left it for us, since we
 * marked it RX_OPENED when we mapped it.
 *
 * The files we open were created by peers: each is checked against the ids
 * its name promises before it is used (shmrpc__ring_check). Our own node
 * segment is writable by every peer, its header too: the tables in it are
 * located from our layout (lib/layout.h), never from the header's offsets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inbound.h"
#include "backend.h"
#include "counters.h"
#include "error.h"
#include "futex.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "nodeseg.h"
#include "reclaim.h"
#include "registry.h"
#include "ring.h"
#include "seg.h"
#include "wake.h"
#include "watch.h"

static struct shmrpc__inring *in_find(struct shmrpc__inbound *in, uint32_t slot, uint32_t gen)
{
	uint32_t i;

	for (i = 0; i < in->n; i++)
		if (in->v[i]->tx_slot == slot && in->v[i]->tx_gen == gen)
			return in->v[i];
	return NULL;
}

static bool in_newer(struct shmrpc__inbound *in, uint32_t slot, uint32_t gen)
{
	uint32_t i;

	for (i = 0; i < in->n; i++)
		if (in->v[i]->tx_slot == slot && (int32_t)(in->v[i]->tx_gen - gen) > 0)
			return true;
	return false;
}

/* @r into set @in; a message ring into the backend's wait set too (reply
 * rings are the calling threads', who sleep on the rep_bell alone). */
static int in_add(struct shmrpc_node *n, struct shmrpc__inbound *in, struct shmrpc__inring *r)
{
	struct shmrpc__inring **v;
	uint32_t cap;
	int err;

	if (in->n == in->cap) {
		cap = in->cap ? in->cap * 2 : 16;
		v = realloc(in->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pthread_mutex_lock(&n->in_lock);
		in->v = v;
		in->cap = cap;
		pthread_mutex_unlock(&n->in_lock);
	}
	err = in->kind == SHMRPC__KIND_MSG ? n->be->ring_add(n, r) : 0;
	if (err)
		return err;
	pthread_mutex_lock(&n->in_lock);
	r->set = in;
	r->idx = in->n;
	in->v[in->n++] = r;
	pthread_mutex_unlock(&n->in_lock);
	atomic_fetch_add_explicit(&n->seg->ctr.rings_in, 1, memory_order_relaxed);
	return 0;
}

/*
 * A ring we could not open, for a reason that may pass (no descriptor, no
 * memory)? Then the announcement stays pending. Any other failure is for
 * good: the file is gone, or is not a ring from that sender, or is not
 * ours to trust.
 */
static bool in_transient(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -ENOBUFS ||
	       err == -EINTR;
}

/* Opening the ring at @path failed with @err: 0 (its chain ends here) or
 * @err, transient. */
static int in_open_failed(const char *path, int err)
{
	/* A ring is complete (sized) before it is announced: an empty file
	 * is garbage too. */
	if (err == -EAGAIN)
		err = -EPROTO;
	/* -ENOENT: gone already, its sender died before we looked. -EPROTO:
	 * not a ring from (slot, gen); nobody else will look at this name. */
	if (err == -EPROTO)
		shmrpc__seg_unlink(path);
	return in_transient(err) ? err : 0;
}

/* @r, attached to the checked ring @h from (slot, gen): its ids, chain
 * link, and which of that slot's rings drain. */
static void in_setup(struct shmrpc__inbound *in, struct shmrpc__inring *r,
		     const struct shmrpc__ring_hdr *h, uint32_t slot, uint32_t gen)
{
	struct shmrpc__inring *old;

	r->tx_slot = slot;
	r->tx_gen = gen;
	r->prev = shmrpc__prev_link(h->prev_gen, gen);
	for (uint32_t i = 0; i < in->n; i++) {
		old = in->v[i];
		/* An older holder of that slot has left: drain its ring. (The
		 * prev_gen chain opens older rings after newer ones: those newer
		 * ones are alive and must not be touched.) */
		if (old->tx_slot == slot && (int32_t)(old->tx_gen - gen) < 0)
			old->draining = true;
	}
	if (in_newer(in, slot, gen))
		r->draining = true; /* we are the older one */
}

/*
 * Open the ring from (slot, gen) and add it, unless it is open already.
 * 0: *link is the next (older) ring of its chain to look at, or 0. A ring
 * that is gone or garbage ends the chain (0, *link 0). -errno: a failure
 * that may pass (in_transient); the ring is left as it was, the caller
 * keeps the announcement, and a later scan tries this ring again.
 */
static int in_open(struct shmrpc_node *n, struct shmrpc__inbound *in, uint32_t slot, uint32_t gen,
		   uint32_t *link)
{
	struct shmrpc__ring_ids ids = { n->reg->nonce, slot,	gen, n->slot, n->gen, 0, 0,
					NULL,	       in->kind };
	struct shmrpc__inring *r;
	struct shmrpc__ring_hdr *h;
	char path[SHMRPC__PATH_MAX];
	uint64_t size;
	void *map;
	int err;

	*link = 0;
	if (slot >= n->reg->capacity || slot == n->slot)
		return 0;
	r = in_find(in, slot, gen);
	if (r) {
		/* Open already; its chain may not be, if a scan failed on it. */
		*link = r->prev;
		return 0;
	}
	shmrpc__ring_path_k(path, n->reg, in->kind, slot, gen, n->slot, n->gen);
	err = shmrpc__ring_seg_open(path, n->reg->mode, &map, &size);
	if (err)
		return in_open_failed(path, err);
	h = map;
	r = calloc(1, sizeof(*r));
	err = r ? shmrpc__ring_check(h, size, &ids) : -ENOMEM;
	if (!err) {
		/* The sender's name as we keep it, checked again: the sender
		 * can rewrite the file between ring_check and this copy. */
		memcpy(r->from, h->tx_name, sizeof(r->from));
		r->from[SHMRPC_NAME_MAX] = '\0';
		err = shmrpc__name_check(r->from) ? -EPROTO : 0;
	}
	if (!err) {
		shmrpc__ring_attach(&r->q, map, size, false);
		/* Marked broadcast copies: message rings of a node that takes
		 * them only; on any other ring a BCAST record is corrupt. */
		r->q.bcast_ok = n->bmarks && in->kind == SHMRPC__KIND_MSG;
		in_setup(in, r, h, slot, gen);
		err = in_add(n, in, r);
	}
	if (err) {
		free(r);
		shmrpc__seg_unmap(map, size);
		return in_open_failed(path, err);
	}
	/* From here the ring's chain (r->prev) is ours to follow: a reclaim of
	 * its sender that finds RX_OPENED leaves our in_gen entry alone
	 * (reclaim.c, ring_kill). Only now: a ring we failed to add stays the
	 * sender's (or its reclaimer's). Relaxed: only the bit matters, and two
	 * RMWs of one word see each other in its modification order; nothing
	 * we wrote before must be seen with it (the chain link was written by
	 * the ring's creator, before the announce). */
	atomic_fetch_or_explicit(&h->flags, SHMRPC__RING_RX_OPENED, memory_order_relaxed);
	/* Best effort, as in connect.c; the watcher thread does it. */
	shmrpc__watch_queue(n, slot, gen);
	*link = r->prev;
	return 0;
}

/* After a scan of @set whose first failure was @first (0: none): log the
 * change, and note it for the receiving calls (rx.c says it once). */
static void scan_told(struct shmrpc_node *n, struct shmrpc__inbound *set, int first)
{
	const char *what = set->kind == SHMRPC__KIND_REP ? "reply ring" : "ring";

	if (first && !set->open_err)
		shmrpc__log(SHMRPC_LOG_WARN,
			    "node %s: %s from slot %u gen %u announced but not opened (%s): "
			    "kept, retried at the next receiving call",
			    n->name, what, set->open_slot, set->open_gen, strerror(-first));
	else if (!first && set->open_err)
		shmrpc__log(SHMRPC_LOG_INFO, "node %s: the %ss kept pending are open now", n->name,
			    what);
	set->open_err = first;
	if (!first)
		set->open_told = false;
}

/* Open every ring of @slot's chain; -errno: the one of *gen could not
 * be, for now. */
static int in_walk(struct shmrpc_node *n, struct shmrpc__inbound *set, _Atomic uint32_t *in,
		   uint32_t slot, uint32_t *gen)
{
	uint32_t g;
	int err;

	/* Acquire: pairs with the announcer's release store. */
	g = atomic_load_explicit(&in[slot], memory_order_acquire);
	while (g) {
		*gen = g - 1;
		err = in_open(n, set, slot, *gen, &g);
		if (err)
			return err;
	}
	return 0;
}

int shmrpc__in_scan(struct shmrpc_node *n, struct shmrpc__inbound *set)
{
	struct shmrpc__node_hdr *h = n->seg;
	uint32_t cap = n->reg->capacity;
	/* Offsets from our own layout, never from the header: peers can
	 * write our segment, header included. */
	_Atomic uint64_t *pend = shmrpc__node_pend(h, shmrpc__node_pend_off_k(cap, set->kind));
	_Atomic uint32_t *in = shmrpc__node_tab(h, shmrpc__node_in_off_k(cap, set->kind));
	_Atomic uint32_t *hint = shmrpc__node_hint(h, set->kind);
	uint32_t w, words = (cap + 63) / 64, slot, gen;
	uint64_t bits, bit;
	int err, first = 0;

	/* A plain load first: this runs on every receive, and an exchange is
	 * a locked write to a line the announcers write. Acquire: pairs with
	 * the announcer's release store of pend_hint. A ring kept pending
	 * (below) is looked at again whatever the hint says. */
	if (!set->retry && (!atomic_load_explicit(hint, memory_order_relaxed) ||
			    !atomic_exchange_explicit(hint, 0, memory_order_acquire)))
		return 0;
	set->retry = false;
	for (w = 0; w < words; w++) {
		if (!atomic_load_explicit(&pend[w], memory_order_relaxed))
			continue;
		/* Acquire: pairs with the announcer's release fetch_or. */
		bits = atomic_exchange_explicit(&pend[w], 0, memory_order_acquire);
		while (bits) {
			slot = w * 64 + (uint32_t)__builtin_ctzll(bits);
			bit = bits & -bits;
			bits &= bits - 1;
			err = in_walk(n, set, in, slot, &gen);
			if (!err)
				continue;
			/* Keep the announcement: its bit again, and retry set
			 * rather than pend_hint, which would keep the receiver
			 * from sleeping (rx_pending) while the failure lasts.
			 * Relaxed: only this thread consumes it, in program
			 * order. */
			atomic_fetch_or_explicit(&pend[w], bit, memory_order_relaxed);
			set->retry = true;
			if (!first) {
				first = err;
				set->open_slot = slot;
				set->open_gen = gen;
			}
		}
	}
	scan_told(n, set, first);
	return first;
}

int shmrpc__in_open_err(struct shmrpc_node *n, const struct shmrpc__inbound *set, const char *then)
{
	struct shmrpc__slot_view v;
	const char *who = "a node that left since";
	int err = set->open_err;

	if (!shmrpc__reg_read(n->reg, set->open_slot, &v) && v.state == SHMRPC__SLOT_LIVE &&
	    v.gen == set->open_gen)
		who = v.name;
	return shmrpc__err(
		err, "ring from '%s' (slot %u, gen %u) announced, cannot be opened now: %s; %s",
		who, set->open_slot, set->open_gen, strerror(-err), then);
}

int shmrpc__in_scan_new(struct shmrpc_node *n)
{
	return shmrpc__in_scan(n, &n->in);
}

void shmrpc__in_drop(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	struct shmrpc__inbound *in = r->set;
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__inring *last;

	/* The caller's rxbuf points into this mapping until shmrpc_release
	 * (recv.c), whatever the sender did to the ring since: drop it then.
	 * Every path to an unmap comes here; shmrpc_close ends the peek. */
	if (r == in->peeked) {
		r->doomed = true;
		return;
	}
	/* The name goes first: a sender that sees RX_CLOSED may connect
	 * again at once, creating a ring of the same name, which an unlink
	 * after that would take from its receiver. Its counters move into our
	 * totals in the same step (fold_seq): an observer adds the rings it
	 * finds by name to our totals (reply rings' are not messages). */
	shmrpc__fold_begin(n);
	shmrpc__ring_path_k(path, n->reg, in->kind, r->tx_slot, r->tx_gen, n->slot, n->gen);
	shmrpc__seg_unlink(path);
	pthread_mutex_lock(&n->in_lock);
	last = in->v[--in->n];
	in->v[r->idx] = last;
	last->idx = r->idx;
	if (in->cur >= in->n)
		in->cur = 0;
	if (in->kind == SHMRPC__KIND_MSG)
		shmrpc__fold_rx(n, r->q.hdr);
	pthread_mutex_unlock(&n->in_lock);
	shmrpc__fold_end(n);
	/* Should its sender still be there after all, it gets -EPIPE rather
	 * than writing into a ring nobody reads. Release: pairs with the
	 * sender's acquire load of RX_CLOSED (connect.c, check_dead), after
	 * our unlink of the name. A sender blocked on the full ring wakes: the
	 * fence (F) that begins wake_prepare pairs with its (G), so this RMW
	 * needs no full barrier of its own. */
	atomic_fetch_or_explicit(&r->q.hdr->flags, SHMRPC__RING_RX_CLOSED, memory_order_release);
	if (shmrpc__wake_prepare(&r->q.hdr->space_seq) != SHMRPC__WAKE_NONE)
		shmrpc__futex_wake(&r->q.hdr->space_seq);
	if (in->kind == SHMRPC__KIND_MSG)
		n->be->ring_del(n, r);
	atomic_fetch_sub_explicit(&n->seg->ctr.rings_in, 1, memory_order_relaxed);
	shmrpc__seg_unmap(r->q.hdr, r->q.map_size);
	free(r);
}

/* Cheap check of every sender against the registry (no system call). */
void shmrpc__in_check_set(struct shmrpc_node *n, struct shmrpc__inbound *in)
{
	struct shmrpc__slot_view v;
	uint32_t i;

	for (i = 0; i < in->n; i++) {
		struct shmrpc__inring *r = in->v[i];

		if (r->draining)
			continue;
		if (shmrpc__reg_read(n->reg, r->tx_slot, &v) == -EAGAIN)
			continue; /* changing right now: look next time */
		if (v.state == SHMRPC__SLOT_FREE || v.gen != r->tx_gen)
			r->draining = true;
	}
}

void shmrpc__in_check_senders(struct shmrpc_node *n)
{
	shmrpc__in_check_set(n, &n->in);
}

static void forget_set(struct shmrpc__inbound *in)
{
	uint32_t i;

	for (i = 0; i < in->n; i++) {
		shmrpc__seg_unmap(in->v[i]->q.hdr, in->v[i]->q.map_size);
		/* Not ring_del: the uring backend would submit a cancel to the
		 * io_uring this process shares with its parent. */
		free(in->v[i]->be);
		free(in->v[i]);
	}
	in->n = 0;
}

void shmrpc__in_forget_all(struct shmrpc_node *n)
{
	forget_set(&n->in);
	forget_set(&n->rep);
}

/* Drop every ring of @set, and close those announced but never opened
 * (and their prev_gen chains), after CLOSING and its fence (J). */
static void close_set(struct shmrpc_node *n, struct shmrpc__inbound *set)
{
	_Atomic uint32_t *in =
		shmrpc__node_tab(n->seg, shmrpc__node_in_off_k(n->reg->capacity, set->kind));
	uint32_t i, g;

	set->peeked = NULL; /* a held peek ends with the node */
	while (set->n) {
		struct shmrpc__inring *r = set->v[0];

		shmrpc__in_drop(n, r); /* RX_CLOSED: blocked senders wake */
	}
	for (i = 0; i < n->reg->capacity; i++) {
		/* Acquire: pairs with the announcer's release store (connect.c,
		 * announce; reclaim.c, repoint): the ring named is complete. */
		g = atomic_load_explicit(&in[i], memory_order_acquire);
		while (g)
			g = shmrpc__ring_kill_k(n->reg, set->kind, i, g - 1, n->slot, n->gen,
						SHMRPC__RING_RX_CLOSED);
	}
}

void shmrpc__in_close_all(struct shmrpc_node *n)
{
	/* Relaxed: ordered before our walk of in_gen by the fence (J) below,
	 * as the announcer's in_gen store is before its load of flags by (I):
	 * fence to fence, one of us sees the other. */
	atomic_fetch_or_explicit(&n->seg->flags, SHMRPC__NODE_CLOSING, memory_order_relaxed);
	/* (J) pairs with (I) in connect.c: an announce we do not see below sees
	 * CLOSING and closes its ring itself. Either kind of ring. */
	atomic_thread_fence(memory_order_seq_cst);
	close_set(n, &n->in);
	close_set(n, &n->rep);
}
