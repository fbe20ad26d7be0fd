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
 * in_gen[] the senders that announced rings to it. Those tables are written
 * by peers and are untrusted: every index is bounded by the registry's
 * capacity and the names built from them stay inside the domain.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

int shmrpc__node_alive(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	char path[SHMRPC__PATH_MAX];
	int fd, rc;

	shmrpc__node_path(path, r, slot, gen);
	/* Never blocks: a FIFO at the name is refused (-EPROTO), not waited
	 * on. Anything we cannot check says "cannot tell", never "dead". */
	fd = shmrpc__seg_open_fd(path, O_RDONLY, r->mode, NULL);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	rc = shmrpc__seg_locked(fd);
	close(fd);
	return rc;
}

/* "shmrpc.<domain>.node.<16 hex>" (names.c) for @pre = "shmrpc.<domain>.node." */
static bool node_name(const char *ent, const char *pre, size_t n)
{
	size_t i;

	if (strncmp(ent, pre, n))
		return false;
	for (i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)ent[n + i]))
			return false;
	return ent[n + 16] == '\0';
}

/*
 * The slots are claims; the node files are what is left of live nodes
 * whatever the slots say, and their names cannot be listed from the slots
 * (keyed by the registry's key, which a member can rewrite too): read the
 * directory. Each candidate is opened as any liveness check opens (never
 * blocking, never following, owner checked) and its lock tested; files of
 * other users are refused by the owner check, so only our domain's members
 * can keep the registry in place by a lock, which they could anyway. Past
 * @max candidate names (which anyone can plant) the answer is "cannot
 * tell": the registry stays, for the next leaver or the reaper.
 */
int shmrpc__reg_any_locked(const struct shmrpc__reg *r, uint32_t max, uint32_t *looked)
{
	char pre[SHMRPC_NAME_MAX + 16], path[NAME_MAX + 2];
	uint32_t seen = 0, checked = 0;
	struct dirent *e;
	int rc = 0, fd;
	size_t n;
	DIR *dir = opendir(SHMRPC__SHM_DIR);

	if (!dir)
		return 1;
	n = (size_t)snprintf(pre, sizeof(pre), "shmrpc.%s.node.", r->domain);
	while (!rc && (e = readdir(dir))) {
		seen++;
		if ((e->d_type != DT_REG && e->d_type != DT_UNKNOWN) ||
		    !node_name(e->d_name, pre, n))
			continue;
		if (checked++ >= max) {
			rc = 2;
			break;
		}
		snprintf(path, sizeof(path), "/%s", e->d_name);
		fd = shmrpc__seg_open_fd(path, O_RDONLY, r->mode, NULL);
		if (fd >= 0) {
			rc = shmrpc__seg_locked(fd) != 0;
			close(fd);
		}
	}
	closedir(dir);
	if (looked)
		*looked = seen;
	if (rc == 2)
		shmrpc__log(SHMRPC_LOG_INFO,
			    "domain '%s': no slot in use, but more than %u node files: registry "
			    "kept",
			    r->domain, max);
	else if (rc)
		shmrpc__log(SHMRPC_LOG_INFO,
			    "domain '%s': no slot in use, but a node file is locked (its slots "
			    "were rewritten): registry kept",
			    r->domain);
	return rc ? 1 : 0;
}

int shmrpc__node_map(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen,
		     struct shmrpc__node_hdr **out, uint64_t *size, int *fd_out)
{
	uint64_t want = shmrpc__node_size(r->capacity);
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__node_hdr *h;
	void *map;
	int err;

	shmrpc__node_path(path, r, slot, gen);
	err = shmrpc__seg_open(path, want, want, r->mode, false, &map, size, fd_out);
	if (err)
		return err == -EAGAIN ? -EPROTO : err; /* a node is sized before it is LIVE */
	h = map;
	if (h->magic != SHMRPC__NODE_MAGIC || h->slot != slot || h->gen != gen ||
	    h->capacity != r->capacity || h->pend_off != shmrpc__node_pend_off() ||
	    h->in_off != shmrpc__node_in_off(r->capacity) ||
	    h->out_off != shmrpc__node_out_off(r->capacity)) {
		shmrpc__seg_unmap(map, *size);
		if (fd_out)
			close(*fd_out);
		return -EPROTO;
	}
	*out = h;
	return 0;
}

/* Wake whoever sleeps on @w (a ring word whose peer is gone). */
static void wake_word(const struct shmrpc__reg *r, _Atomic uint32_t *w, uint32_t rx_slot,
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
		if (shmrpc__wake_prepare(&h->bell))
			shmrpc__futex_wake(&h->bell);
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
 * (conn.c): it sets CLOSING, fences (J), walks in_gen; we store the entry,
 * fence (I), read CLOSING and, if set, close the older rings ourselves.
 */
static void repoint(const struct shmrpc__reg *r, uint32_t tx_slot, uint32_t tx_gen,
		    uint32_t rx_slot, uint32_t rx_gen, uint32_t prev)
{
	uint32_t expect = tx_gen + 1;
	struct shmrpc__node_hdr *h;
	_Atomic uint32_t *in;
	uint64_t size;

	if (tx_slot >= r->capacity || shmrpc__node_map(r, rx_slot, rx_gen, &h, &size, NULL))
		return; /* the receiver is gone: its reclaim walks its chains */
	in = shmrpc__node_tab(h, shmrpc__node_in_off(r->capacity));
	/* Release: pairs with the receiver's acquire load of in_gen, as an
	 * announce's store does. Only if it still names the dead ring. */
	if (atomic_compare_exchange_strong_explicit(&in[tx_slot], &expect, prev,
						    memory_order_release, memory_order_relaxed)) {
		atomic_fetch_or(&shmrpc__node_pend(h, shmrpc__node_pend_off())[tx_slot / 64],
				1ull << (tx_slot % 64));
		/* Release: pairs with the receiver's exchange of pend_hint. */
		atomic_store_explicit(&h->pend_hint, 1, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst); /* (I), pairs with (J) */
		if (atomic_load_explicit(&h->flags, memory_order_relaxed) & SHMRPC__NODE_CLOSING) {
			while (prev)
				prev = shmrpc__ring_kill(r, tx_slot, prev - 1, rx_slot, rx_gen,
							 SHMRPC__RING_RX_CLOSED);
		} else if (shmrpc__wake_prepare(&h->bell) != SHMRPC__WAKE_NONE) {
			shmrpc__futex_wake(&h->bell);
		}
	}
	shmrpc__seg_unmap(h, size);
}

uint32_t shmrpc__ring_kill(const struct shmrpc__reg *r, uint32_t tx_slot, uint32_t tx_gen,
			   uint32_t rx_slot, uint32_t rx_gen, uint32_t flag)
{
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__ring_hdr *h;
	uint32_t prev = 0, old = SHMRPC__RING_RX_OPENED;
	uint64_t size;
	void *map;

	shmrpc__ring_path(path, r, tx_slot, tx_gen, rx_slot, rx_gen);
	if (!shmrpc__ring_seg_open(path, r->mode, &map, &size)) {
		h = map;
		if (h->magic == SHMRPC__RING_MAGIC) {
			prev = shmrpc__prev_link(h->prev_gen, tx_gen);
			/* seq_cst RMW: a full barrier before the wake checks,
			 * pairing with the sleepers' arm-fence-recheck. */
			old = atomic_fetch_or(&h->flags, flag);
			wake_word(r, &h->data_seq, rx_slot, rx_gen);
			wake_word(r, &h->space_seq, rx_slot, rx_gen);
		}
		shmrpc__seg_unmap(map, size);
	}
	shmrpc__seg_unlink(path);
	if (flag == SHMRPC__RING_TX_CLOSED && !(old & SHMRPC__RING_RX_OPENED) && prev)
		repoint(r, tx_slot, tx_gen, rx_slot, rx_gen, prev);
	return prev;
}

/*
 * Close the dead node to announces before walking its in_gen table, as a
 * leaving receiver does (inbound.c): a peer that is connecting to it right
 * now (it passed the liveness check before the death, or, for
 * shmrpc__reclaim_exited, while the dying process still held its lock)
 * either stores its in_gen entry before our walk reads it, or reads CLOSING
 * after its store and closes its own ring (conn.c, announce). Without this,
 * such a peer's ring outlived the reclaim, unclosed: its sends went into it
 * and never failed.
 */
static void close_dead(struct shmrpc__node_hdr *h)
{
	atomic_fetch_or(&h->flags, SHMRPC__NODE_CLOSING);
	atomic_thread_fence(memory_order_seq_cst); /* (J), pairs with announce's (I) */
}

static void kill_rings(const struct shmrpc__reg *r, const struct shmrpc__node_hdr *h, uint32_t slot,
		       uint32_t gen)
{
	/* From the layout, not h->in_off/out_off: node_map checked those, but
	 * a live peer can still rewrite the file under our map. */
	_Atomic uint32_t *in =
		shmrpc__node_tab((struct shmrpc__node_hdr *)h, shmrpc__node_in_off(r->capacity));
	_Atomic uint32_t *out =
		shmrpc__node_tab((struct shmrpc__node_hdr *)h, shmrpc__node_out_off(r->capacity));
	uint32_t i, g;

	for (i = 0; i < r->capacity; i++) {
		/* Relaxed: the node is dead, its own writes long done; a racing
		 * peer's announce is ordered by close_dead's fence (J). */
		g = atomic_load_explicit(&out[i], memory_order_relaxed);
		if (g)
			shmrpc__ring_kill(r, slot, gen, i, g - 1, SHMRPC__RING_TX_CLOSED);
		g = atomic_load_explicit(&in[i], memory_order_relaxed);
		while (g)
			g = shmrpc__ring_kill(r, i, g - 1, slot, gen, SHMRPC__RING_RX_CLOSED);
	}
}

static int reclaim(struct shmrpc__reg *r, uint32_t slot, uint32_t gen, bool exited)
{
	struct shmrpc__slot *s = &r->slots[slot];
	struct shmrpc__node_hdr *h;
	char path[SHMRPC__PATH_MAX];
	uint64_t size;
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);

	if (st == SHMRPC__SLOT_FREE || atomic_load_explicit(&s->gen, memory_order_relaxed) != gen)
		return 0;
	/* Whatever the state says (any member can write it: a state is a
	 * claim, never proof), a node whose lock is held is alive. That holds
	 * for JOINING too: a joiner creates and locks its segment before it
	 * goes LIVE, so a JOINING slot seen under the registry lock whose
	 * segment is missing or unlocked lost its joiner (reg_repair). */
	if (!exited && shmrpc__node_alive(r, slot, gen) != 0)
		return 0;
	shmrpc__node_path(path, r, slot, gen);
	/* Read-write: close_dead marks it. */
	if (!shmrpc__node_map(r, slot, gen, &h, &size, NULL)) {
		close_dead(h);
		kill_rings(r, h, slot, gen);
		shmrpc__seg_unmap(h, size);
	}
	shmrpc__seg_unlink(path);
	shmrpc__reg_free(r, slot, gen);
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

int shmrpc__reclaim_sweep(struct shmrpc__reg *r, uint32_t self_slot, uint64_t cheap_pidns)
{
	struct shmrpc__reg_scan sc = { 0, 0 };
	uint32_t i;
	int n = 0;

	/* Every written slot, not only those below the shared (untrusted) hi.
	 * A slot neither FREE nor LIVE is a joiner that died (joiners hold the
	 * lock from JOINING to LIVE) or garbage: shmrpc__reclaim frees it once
	 * its node's lock says so. */
	for (i = shmrpc__reg_scan_next(r, &sc, 0); i < r->capacity;
	     i = shmrpc__reg_scan_next(r, &sc, i + 1)) {
		uint32_t st = atomic_load_explicit(&r->slots[i].state, memory_order_relaxed);

		if (i == self_slot || st == SHMRPC__SLOT_FREE)
			continue;
		/* Cheap: a node of that pid namespace whose pid still exists
		 * is taken as alive without the lock check. */
		if (cheap_pidns && st == SHMRPC__SLOT_LIVE &&
		    atomic_load_explicit(&r->slots[i].pidns, memory_order_relaxed) == cheap_pidns &&
		    !shmrpc__pid_gone(atomic_load_explicit(&r->slots[i].pid, memory_order_relaxed)))
			continue;
		n += shmrpc__reclaim(r, i,
				     atomic_load_explicit(&r->slots[i].gen, memory_order_relaxed));
	}
	return n;
}

int shmrpc__reclaim_locked(struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	int rc = shmrpc__reg_lock(r);

	if (rc)
		return rc;
	rc = shmrpc__reclaim(r, slot, gen);
	shmrpc__reg_unlock(r);
	return rc;
}
