// SPDX-License-Identifier: MIT
/*
 * Reclaiming what a dead node left behind: its registry slot, its node
 * segment and every ring it had, in either direction.
 *
 * Death is read from the kernel, not from heartbeats: a node holds an OFD
 * write lock on its node segment for as long as it lives (seg.c), and the
 * kernel drops the lock when the process goes, whatever the pid namespace of
 * the process asking. A slot is reclaimed only under the registry lock and
 * only after its generation has been re-checked there, so a node that is
 * merely slow, or a slot reused meanwhile, is never torn down.
 *
 * The dead node's segment tells which rings it had: out_gen[] lists the
 * receivers it created rings to (set before each file was created) and
 * in_gen[] the senders that announced rings to it; rep_out_gen[] and
 * rep_in_gen[] the same for reply rings (layout.h), which go at once (a
 * dead server's callers end their calls -EPIPE). Those tables are written
 * by peers and are untrusted: every index is bounded by the registry's
 * capacity and the names built from them stay inside the domain. Its rings
 * to live receivers that take events and were announced to them stay,
 * closed, until those receivers drained them (close_dead_tx): a death loses no message already
 * published. The freed slot leaves a DEATH event in the log (evlog.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "reclaim.h"
#include "error.h"
#include "futex.h"
#include "layout.h"
#include "names.h"
#include "nodeseg.h"
#include "regfile.h"
#include "registry.h"
#include "ring.h"
#include "seg.h"
#include "wake.h"

/* Wake whoever sleeps on @w (a word of a ring of kind @kind whose peer is
 * gone). */
static void wake_word(const struct shmrpc__reg *r, int kind, _Atomic uint32_t *w, uint32_t rx_slot,
		      uint32_t rx_gen)
{
	struct shmrpc__node_hdr *h;
	uint64_t size;

	switch (shmrpc__wake_prepare(w)) {
	case SHMRPC__WAKE_NONE:
		return;
	case SHMRPC__WAKE_WORD:
		shmrpc__futex_wake(w);
		return;
	case SHMRPC__WAKE_BELL:
		if (shmrpc__node_map(r, rx_slot, rx_gen, &h, &size, NULL))
			return;
		if (shmrpc__wake_prepare(shmrpc__node_bell(h, kind)))
			shmrpc__futex_wake(shmrpc__node_bell(h, kind));
		shmrpc__seg_unmap(h, size);
		return;
	}
}

/*
 * The dead sender's ring to a live receiver goes before that receiver opened
 * it. If the receiver's in_gen entry for the sender's slot still names it,
 * that ring was the only path to older unopened rings of the slot (its
 * prev_gen link): point the entry at the older ring and announce again.
 * Against a receiver that starts leaving now, the handshake of an announce
 * (connect.c): it sets CLOSING, fences (J), walks in_gen; we store the entry,
 * fence (I), read CLOSING and, if set, close the older rings ourselves.
 */
static void repoint(const struct shmrpc__reg *r, int kind, uint32_t tx_slot, uint32_t tx_gen,
		    uint32_t rx_slot, uint32_t rx_gen, uint32_t prev)
{
	uint32_t expect = tx_gen + 1;
	struct shmrpc__node_hdr *h;
	_Atomic uint32_t *in;
	uint64_t size;

	if (tx_slot >= r->capacity || shmrpc__node_map(r, rx_slot, rx_gen, &h, &size, NULL))
		return; /* the receiver is gone: its reclaim walks its chains */
	in = shmrpc__node_tab(h, shmrpc__node_in_off_k(r->capacity, kind));
	/* Release: pairs with the receiver's acquire load of in_gen, as an
	 * announce's store does. Only if it still names the dead ring. */
	if (atomic_compare_exchange_strong_explicit(&in[tx_slot], &expect, prev,
						    memory_order_release, memory_order_relaxed)) {
		/* Release: as an announce's (connect.c), pairs with the
		 * receiver's acquire exchange of the pend word. */
		atomic_fetch_or_explicit(
			&shmrpc__node_pend(h, shmrpc__node_pend_off_k(r->capacity,
								      kind))[tx_slot / 64],
			1ull << (tx_slot % 64), memory_order_release);
		/* Release: pairs with the receiver's exchange of pend_hint. */
		atomic_store_explicit(shmrpc__node_hint(h, kind), 1, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst); /* (I), pairs with (J) */
		if (atomic_load_explicit(&h->flags, memory_order_relaxed) & SHMRPC__NODE_CLOSING) {
			while (prev)
				prev = shmrpc__ring_kill_k(r, kind, tx_slot, prev - 1, rx_slot,
							   rx_gen, SHMRPC__RING_RX_CLOSED);
		} else if (shmrpc__wake_prepare(shmrpc__node_bell(h, kind)) != SHMRPC__WAKE_NONE) {
			shmrpc__futex_wake(shmrpc__node_bell(h, kind));
		}
	}
	shmrpc__seg_unmap(h, size);
}

/* A file there that could not be opened or mapped for want of descriptors
 * or memory: it can be later. A reclaim that met one stops short of
 * unlinking it (its live end would never learn the ring closed) and of
 * freeing the slot, and is done again (the watcher retries). Found by
 * tests/test_fault.c: peer_death, the watcher's open, fstat or mmap failing:
 * the dead node's rings were unlinked unflagged, or never visited and left
 * in /dev/shm, and a live sender's sends to it kept returning 0. */
static bool transient(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM;
}

/* Keep the first transient failure in *@err. */
static void keep_err(int *err, int rc)
{
	if (!*err)
		*err = rc;
}

/* Set @flag on the ring at @path and wake both of its sleepers: *old its
 * flags before (RX_OPENED when it cannot be read: nothing to repoint then),
 * *prev its prev_gen link. 0, or a transient failure to open it (then it is
 * left as it is). */
static int ring_close(const struct shmrpc__reg *r, int kind, const char *path, uint32_t tx_gen,
		      uint32_t rx_slot, uint32_t rx_gen, uint32_t flag, uint32_t *prev,
		      uint32_t *old)
{
	struct shmrpc__ring_hdr *h;
	uint64_t size;
	void *map;
	int rc;

	*prev = 0;
	*old = SHMRPC__RING_RX_OPENED;
	rc = shmrpc__ring_seg_open(path, r->mode, &map, &size);
	if (rc)
		return transient(rc) ? rc : 0;
	h = map;
	if (h->magic == shmrpc__ring_magic(kind)) {
		*prev = shmrpc__prev_link(h->prev_gen, tx_gen);
		/* Release: pairs with the ends' acquire loads of the flags
		 * (rx.c's TX_CLOSED, connect.c's RX_CLOSED). The sleepers'
		 * arm-fence-recheck (G) pairs with the fence (F) that begins
		 * each wake_word's wake_prepare: no full barrier needed in this
		 * RMW. Its old RX_OPENED: the receiver took the chain over
		 * (inbound.c). */
		*old = atomic_fetch_or_explicit(&h->flags, flag, memory_order_release);
		wake_word(r, kind, &h->data_seq, rx_slot, rx_gen);
		wake_word(r, kind, &h->space_seq, rx_slot, rx_gen);
	}
	shmrpc__seg_unmap(map, size);
	return 0;
}

/* shmrpc__ring_kill_k; with @err, a transient failure leaves the ring as it
 * is and is kept in *@err (the first one). */
static uint32_t ring_kill_try(const struct shmrpc__reg *r, int kind, uint32_t tx_slot,
			      uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen, uint32_t flag,
			      int *err)
{
	char path[SHMRPC__PATH_MAX];
	uint32_t prev, old;
	int rc;

	shmrpc__ring_path_k(path, r, kind, tx_slot, tx_gen, rx_slot, rx_gen);
	rc = ring_close(r, kind, path, tx_gen, rx_slot, rx_gen, flag, &prev, &old);
	if (rc && err) {
		keep_err(err, rc);
		return 0;
	}
	shmrpc__seg_unlink(path);
	if (flag == SHMRPC__RING_TX_CLOSED && !(old & SHMRPC__RING_RX_OPENED) && prev)
		repoint(r, kind, tx_slot, tx_gen, rx_slot, rx_gen, prev);
	return prev;
}

uint32_t shmrpc__ring_kill_k(const struct shmrpc__reg *r, int kind, uint32_t tx_slot,
			     uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen, uint32_t flag)
{
	return ring_kill_try(r, kind, tx_slot, tx_gen, rx_slot, rx_gen, flag, NULL);
}

/*
 * The dead node (slot, gen)'s ring to (rx_slot, rx_gen). A receiver that
 * is still there, takes events (NODE_EVENTS: a DEATH must come after every
 * message), and to which the ring was announced (its in_gen entry for
 * our slot names the ring: the dead node was the newest of its slot) gets
 * it as a graceful leave leaves it: closed (TX_CLOSED), in place, announced
 * again (the dead node may have died between its in_gen store and its
 * bell), so that the receiver opens it if it had not, drains it and unlinks
 * it: every message the dead node published arrives, before its DEATH
 * event. (A receiver that opened it already has it mapped: its name goes.) Against a receiver that starts leaving now, an announce's
 * handshake (connect.c): its close sets CLOSING, fences (J), walks in_gen;
 * we fence (I) after our pend bit, read CLOSING and, if set, remove the
 * ring and its chain ourselves. Any other ring goes at once (ring_kill).
 */
static void close_dead_tx(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen,
			  uint32_t rx_slot, uint32_t rx_gen, int *err)
{
	struct shmrpc__node_hdr *h;
	char path[SHMRPC__PATH_MAX];
	uint32_t prev, old, g;
	uint64_t size;
	int rc;

	rc = rx_slot < r->capacity ? shmrpc__node_map(r, rx_slot, rx_gen, &h, &size, NULL) :
				     -EINVAL;
	if (rc) { /* transient: it may be a receiver to leave the ring to */
		if (transient(rc))
			keep_err(err, rc);
		else
			ring_kill_try(r, SHMRPC__KIND_MSG, slot, gen, rx_slot, rx_gen,
				      SHMRPC__RING_TX_CLOSED, err);
		return;
	}
	/* Acquire: pairs with the announcer's release store of in_gen. A
	 * receiver that takes no events gets what it always got: the ring
	 * goes (relaxed: the flag was set before its slot went LIVE). */
	if (!(atomic_load_explicit(&h->flags, memory_order_relaxed) & SHMRPC__NODE_EVENTS) ||
	    atomic_load_explicit(&shmrpc__node_tab(h, shmrpc__node_in_off(r->capacity))[slot],
				 memory_order_acquire) != gen + 1) {
		shmrpc__seg_unmap(h, size);
		ring_kill_try(r, SHMRPC__KIND_MSG, slot, gen, rx_slot, rx_gen,
			      SHMRPC__RING_TX_CLOSED, err);
		return;
	}
	shmrpc__ring_path(path, r, slot, gen, rx_slot, rx_gen);
	rc = ring_close(r, SHMRPC__KIND_MSG, path, gen, rx_slot, rx_gen, SHMRPC__RING_TX_CLOSED,
			&prev, &old);
	if (rc || (old & SHMRPC__RING_RX_OPENED)) {
		if (rc)
			keep_err(err, rc);
		else /* it has the ring mapped: the name can go now, as before */
			shmrpc__seg_unlink(path);
		shmrpc__seg_unmap(h, size);
		return;
	}
	/* Release, as an announce's (connect.c): pairs with the receiver's
	 * acquire exchange of the pend word, then of pend_hint. */
	atomic_fetch_or_explicit(&shmrpc__node_pend(h, shmrpc__node_pend_off())[slot / 64],
				 1ull << (slot % 64), memory_order_release);
	atomic_store_explicit(&h->pend_hint, 1, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst); /* (I), pairs with (J) */
	if (atomic_load_explicit(&h->flags, memory_order_relaxed) & SHMRPC__NODE_CLOSING) {
		for (g = gen + 1; g;)
			g = ring_kill_try(r, SHMRPC__KIND_MSG, slot, g - 1, rx_slot, rx_gen,
					  SHMRPC__RING_RX_CLOSED, err);
	} else if (shmrpc__wake_prepare(&h->bell) != SHMRPC__WAKE_NONE) {
		shmrpc__futex_wake(&h->bell);
	}
	shmrpc__seg_unmap(h, size);
}

/*
 * Close the dead node to announces before walking its in_gen table, as a
 * leaving receiver does (inbound.c): a peer that is connecting to it right
 * now (it passed the liveness check before the death, or, for
 * shmrpc__reclaim_exited, while the dying process still held its lock)
 * either stores its in_gen entry before our walk reads it, or reads CLOSING
 * after its store and closes its own ring (connect.c, announce). Without this,
 * such a peer's ring outlived the reclaim, unclosed: its sends went into it
 * and never failed.
 */
static void close_dead(struct shmrpc__node_hdr *h)
{
	/* Relaxed: the fence (J) below orders it, as in inbound.c. */
	atomic_fetch_or_explicit(&h->flags, SHMRPC__NODE_CLOSING, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst); /* (J), pairs with announce's (I) */
}

/* 0, or the first transient failure (the rings it hit are left as they are). */
static int kill_rings(const struct shmrpc__reg *r, int kind, struct shmrpc__node_hdr *h,
		      uint32_t slot, uint32_t gen)
{
	/* From the layout, not h->in_off/out_off: node_map checked those, but
	 * a live peer can still rewrite the file under our map. */
	_Atomic uint32_t *in = shmrpc__node_tab(h, shmrpc__node_in_off_k(r->capacity, kind));
	_Atomic uint32_t *out = shmrpc__node_tab(h, shmrpc__node_out_off_k(r->capacity, kind));
	uint32_t i, g;
	int err = 0;

	for (i = 0; i < r->capacity; i++) {
		/* Relaxed: the node is dead, its own writes long done; a racing
		 * peer's announce is ordered by close_dead's fence (J). */
		g = atomic_load_explicit(&out[i], memory_order_relaxed);
		/* A dead server's reply rings go at once: its callers end
		 * their calls -EPIPE after what they read (rpc_read.c). */
		if (g && kind == SHMRPC__KIND_MSG)
			close_dead_tx(r, slot, gen, i, g - 1, &err);
		else if (g)
			ring_kill_try(r, kind, slot, gen, i, g - 1, SHMRPC__RING_TX_CLOSED, &err);
		g = atomic_load_explicit(&in[i], memory_order_relaxed);
		while (g)
			g = ring_kill_try(r, kind, i, g - 1, slot, gen, SHMRPC__RING_RX_CLOSED,
					  &err);
	}
	return err;
}

static int reclaim(struct shmrpc__reg *r, uint32_t slot, uint32_t gen, bool exited)
{
	struct shmrpc__slot *s = &r->slots[slot];
	struct shmrpc__node_hdr *h;
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__slot_view v = { .pid = 0 };
	uint64_t size;
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	int err = 0, rc;

	if (st == SHMRPC__SLOT_FREE || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen)
		return 0;
	/* Whatever the state says (any member can write it: a state is a
	 * claim, never proof), a node whose lock is held is alive. That holds
	 * for JOINING too: a joiner creates and locks its segment before it
	 * goes LIVE, so a JOINING slot seen under the registry lock whose
	 * segment is missing or unlocked lost its joiner (dom_repair). */
	if (!exited)
		err = shmrpc__node_alive(r, slot, gen);
	if (err) /* alive (1), or cannot tell (-errno: try again) */
		return err < 0 ? err : 0;
	/* For the log only: a name that fails the check is not printed. */
	if (shmrpc__log_on(SHMRPC_LOG_INFO) && shmrpc__reg_read(r, slot, &v))
		v.name[0] = '\0', v.pid = 0;
	shmrpc__node_path(path, r, slot, gen);
	/* Read-write: close_dead marks it. Its rings are only known from
	 * it: a transient failure leaves everything for the next try. */
	err = shmrpc__node_map(r, slot, gen, &h, &size, NULL);
	if (transient(err))
		return err;
	if (!err) {
		close_dead(h);
		err = kill_rings(r, SHMRPC__KIND_MSG, h, slot, gen);
		rc = kill_rings(r, SHMRPC__KIND_REP, h, slot, gen);
		err = err ? err : rc;
		shmrpc__seg_unmap(h, size);
		if (err)
			return err;
	}
	shmrpc__seg_unlink(path);
	shmrpc__reg_free(r, slot, gen, SHMRPC_EV_DEATH);
	shmrpc__log(SHMRPC_LOG_INFO, "domain %s: node '%s' (slot %u, pid %d) %s: reclaimed",
		    r->domain, v.name[0] ? v.name : "?", slot, (int)v.pid,
		    exited ? "exited (the exit probe's report)" : "is dead (its lock is free)");
	return 1;
}

int shmrpc__reclaim(struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	return reclaim(r, slot, gen, false);
}

/*
 * The eBPF exit probe reports a process at do_exit()'s exit tracepoint, past
 * the point of no return but before exit_files() drops the node's liveness
 * lock, which can take milliseconds more for a process with a large address
 * space (exit_mm() comes first). The reaper knows the node's process from the
 * event's tgid and start time matching the slot's pid and start time: no
 * user code of that process runs again, so the node is as dead as a released
 * lock would say, only sooner. Its files may be unlinked while it still maps
 * them; it will not write to them.
 */
int shmrpc__reclaim_exited(struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	return reclaim(r, slot, gen, true);
}

/*
 * Reclaim the dead among the written slots in [@from, @to) but @self_slot;
 * with @until_live, stop at the first that is not dead: -EBUSY then, else
 * how many were reclaimed. Every written slot, not only those below the
 * shared (untrusted) hi. A slot neither FREE nor LIVE is a joiner that died
 * (joiners hold the lock from JOINING to LIVE) or garbage: shmrpc__reclaim
 * frees it once its node's lock says so.
 */
static int sweep(struct shmrpc__reg *r, uint32_t from, uint32_t to, uint32_t self_slot,
		 bool until_live)
{
	struct shmrpc__reg_scan sc = { 0, 0 };
	uint32_t i;
	int n = 0, rc;

	for (i = shmrpc__reg_scan_next(r, &sc, from); i < to;
	     i = shmrpc__reg_scan_next(r, &sc, i + 1)) {
		if (i == self_slot ||
		    atomic_load_explicit(&r->slots[i].state, memory_order_relaxed) ==
			    SHMRPC__SLOT_FREE)
			continue;
		rc = shmrpc__reclaim(r, i,
				     atomic_load_explicit(&r->slots[i].gen, memory_order_relaxed));
		/* Not FREE, the gen just read (under the lock): alive, or
		 * cannot be told dead, or not reclaimed for now (-errno: it
		 * counts as not reclaimed). */
		if (rc <= 0 && until_live)
			return -EBUSY;
		if (rc > 0)
			n++;
	}
	return n;
}

int shmrpc__reclaim_sweep(struct shmrpc__reg *r, uint32_t self_slot)
{
	return sweep(r, 0, r->capacity, self_slot, false);
}

bool shmrpc__reclaim_any_alive(struct shmrpc__reg *r, uint32_t from)
{
	if (from >= r->capacity)
		from = 0;
	return sweep(r, from, r->capacity, UINT32_MAX, true) == -EBUSY ||
	       sweep(r, 0, from, UINT32_MAX, true) == -EBUSY;
}

/*
 * The previous holder of the registry lock died while filling the slot it
 * noted in `joining` (registry.c): free that slot, whatever its state, once
 * its node is seen gone, and count the slots again.
 */
static void dom_repair(struct shmrpc__reg *r, uint32_t note)
{
	uint32_t slot = note - 1;

	if (slot < r->capacity &&
	    atomic_load_explicit(&r->slots[slot].state, memory_order_relaxed) != SHMRPC__SLOT_FREE)
		shmrpc__reclaim(r, slot,
				atomic_load_explicit(&r->slots[slot].gen, memory_order_relaxed));
	shmrpc__reg_joining(r, 0);
	shmrpc__reg_recount(r);
}

int shmrpc__dom_lock(struct shmrpc__reg *r)
{
	uint32_t note;
	int err = shmrpc__reg_lock(r, &note);

	if (!err && note)
		dom_repair(r, note);
	return err;
}

int shmrpc__dom_lock_for(struct shmrpc__reg *r, int64_t timeout_ns)
{
	uint32_t note;
	int err = shmrpc__reg_lock_for(r, timeout_ns, &note);

	if (!err && note)
		dom_repair(r, note);
	return err;
}

int shmrpc__reclaim_locked(struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	int rc = shmrpc__dom_lock(r);

	if (rc)
		return rc;
	rc = shmrpc__reclaim(r, slot, gen);
	shmrpc__reg_unlock(r);
	return rc;
}
