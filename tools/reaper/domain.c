// SPDX-License-Identifier: MIT
/*
 * The registries the reaper follows: every /dev/shm/shmrpc.<domain>.reg on
 * the host (or those named with --domain).
 *
 * Discovery: a scan of /dev/shm at start-up and at every reconcile, and an
 * inotify watch on /dev/shm in between, which reports a registry as soon as
 * its creator makes the file. The creator then sizes it and publishes its
 * magic within microseconds; until then the name waits in a pending list,
 * looked at again every PENDING_MS (never with the library's blocking open,
 * whose grace period would stall the loop). A name that stays unpublished
 * for ABANDON_S is left to the next joiner, whose open repairs it.
 *
 * Following: each registry's epoch word changes at every join and leave.
 * The reaper keeps one io_uring FUTEX_WAIT armed on each (user_data: the
 * domain's id), with the ring's fd in the main epoll set, so one epoll_wait
 * sleeps on the probe, the pidfds, inotify and every epoch at once. A
 * completion marks the domain dirty; a sync then reads every slot and
 * mirrors new LIVE nodes and forgets departed ones (procs.c), and re-arms
 * with the epoch read *before* the sync: a change during the sync makes the
 * new wait complete at once (-EAGAIN), so none is missed. Without io_uring
 * futex support (old kernel, io_uring disabled) the epochs are compared on
 * every loop turn, at most EPOCH_POLL_MS apart.
 *
 * Reclaiming (reclaim.c): shmrpc_insp_reclaim() under the registry lock does
 * what a node's own leave would have done; the last node reaped retires
 * the registry too. Every file operation on a domain runs as the registry's
 * owner (owner.c). Syncs read only the slots in the registry file's data
 * extents (never a hole: reading one through the mapping allocates a page
 * charged to us), spend their owner's budget per turn and resume where they
 * stopped. Discovery is in discover.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reaper.h"

#define EPOCH_POLL_MS 20 /* without io_uring: epochs compared this often */
#define URING_ENTRIES 256

/* ---------------------------------------------------- helpers */

uint64_t dom_cookie(const struct rdom *d, uint32_t slot, uint32_t gen)
{
	/* 16 bits of the registry's random nonce name the domain across our
	 * restarts (a pinned map keeps cookies of our previous run); slot <
	 * 65536. A collision only makes a stale event look at one more slot,
	 * and reclaiming checks liveness anyway. */
	return (uint64_t)(d->reg.nonce & 0xffff) << 48 | (uint64_t)slot << 32 | gen;
}

struct rdom *dom_by_nonce16(struct reaper *r, uint32_t nonce16, struct rdom *after)
{
	struct rdom *d = after ? after->next : r->doms;

	for (; d; d = d->next)
		if ((d->reg.nonce & 0xffff) == nonce16)
			return d;
	return NULL;
}

struct rdom *dom_by_ino(struct reaper *r, dev_t dev, ino_t ino)
{
	struct rdom *d;

	for (d = r->doms; d; d = d->next)
		if (d->dev == dev && d->ino == ino)
			return d;
	return NULL;
}

/* ---------------------------------------------------- epochs */

static void uring_submit(struct reaper *r)
{
	int rc;

	/* EINTR/EBUSY: the SQEs stay queued for the next submit. */
	rc = io_uring_submit(&r->ring);
	if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
		rlog("error: io_uring_submit: %s", strerror(-rc));
}

static struct io_uring_sqe *uring_sqe(struct reaper *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		uring_submit(r);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

/* Sleep on d's epoch until it moves from epoch_seen. */
static void dom_arm(struct reaper *r, struct rdom *d)
{
	struct io_uring_sqe *sqe;

	if (!r->uring || d->armed)
		return;
	sqe = uring_sqe(r);
	if (!sqe) {
		d->dirty = true; /* no room: the next turn tries again */
		return;
	}
	shmrpc_insp_prep_epoch_wait(sqe, &d->reg, d->epoch_seen, d->id);
	d->armed = true;
	uring_submit(r);
}

void dom_epochs(struct reaper *r)
{
	struct io_uring_cqe *cqe;
	struct rdom *d;
	unsigned head, seen = 0;

	if (!r->uring) {
		for (d = r->doms; d; d = d->next)
			/* Acquire: pairs with reg_bump's release; the sync
			 * then sees the slots as of that epoch. */
			if (atomic_load_explicit(&d->reg.hdr->epoch, memory_order_acquire) !=
			    d->epoch_seen)
				d->dirty = true;
		return;
	}
	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		seen++;
		if (!cqe->user_data)
			continue; /* a cancel's own completion */
		for (d = r->doms; d; d = d->next)
			if (d->id == cqe->user_data) {
				d->armed = false;
				d->dirty = true;
			}
	}
	io_uring_cq_advance(&r->ring, seen);
}

/* ---------------------------------------------------- syncing */

/*
 * Mirror what d's slots hold now; see the top of the file. Spends d's
 * owner's budget (a slot read each, a mirror as a lock check): cut short,
 * it stays dirty and resumes at sync_pos in a later turn.
 */
static void dom_sync(struct reaper *r, struct rdom *d)
{
	struct shmrpc_insp_slot v;
	struct rnode *n;
	uint32_t i, st;
	int rc, tries;

	if (!d->syncing) {
		/* Paid first: an owner whose second is spent is not synced,
		 * hence not re-armed: his bumps wake nobody until then. */
		if (!owner_spend(r, d->owner, UNITS_SYNC))
			return;
		d->syncing = true;
		d->dirty = false;
		d->sync_pos = 0;
		d->sync_sc = (struct shmrpc_insp_scan){ 0, 0 };
		/* Acquire: pairs with the release bump of every join/leave. */
		d->epoch_seen = atomic_load_explicit(&d->reg.hdr->epoch, memory_order_acquire);
		/* A hint, believed only if the name no longer names the file. */
		if (shmrpc_insp_reg_retired(&d->reg))
			d->gone = true;
	}
	/* Every slot in the file's data, not only below the shared hi. */
	for (i = shmrpc_insp_scan_next(&d->reg, &d->sync_sc, d->sync_pos); i < d->reg.capacity;
	     i = shmrpc_insp_scan_next(&d->reg, &d->sync_sc, i + 1)) {
		if (!owner_spend(r, d->owner, 1)) {
			d->sync_pos = i;
			d->dirty = true; /* resumed in a later turn */
			return;
		}
		n = d->slots[i];
		/* Relaxed: a filter; reg_read below is the seqlock read. */
		st = atomic_load_explicit(&d->reg.slots[i].state, memory_order_relaxed);
		if (st == SHMRPC__SLOT_FREE && !n)
			continue;
		for (tries = 0; tries < 100; tries++)
			if ((rc = shmrpc_insp_reg_read(&d->reg, i, &v)) != -EAGAIN)
				break;
		if (rc == -EAGAIN) {
			d->dirty = true; /* changing under us: again next turn */
			continue;
		}
		if (n && (rc || v.state != SHMRPC__SLOT_LIVE || v.gen != n->gen))
			node_unmirror(r, n, v.state == SHMRPC__SLOT_FREE ? "left" : "replaced");
		/* -EPROTO: a garbage name; not a node we can report on. A
		 * JOINING slot becomes LIVE or FREE with an epoch bump, or its
		 * joiner died holding the lock and a reconcile frees it. */
		/* A mirror is a lock check or two, maybe a reclaim: paid first,
		 * or left for a later turn. */
		if (!rc && v.state == SHMRPC__SLOT_LIVE && !d->slots[i]) {
			if (!owner_spend(r, d->owner, UNITS_MIRROR)) {
				d->sync_pos = i;
				d->dirty = true;
				return;
			}
			node_mirror(r, d, i, &v);
		}
	}
	d->syncing = false;
	d->sync_pos = 0;
	if (!d->gone)
		dom_arm(r, d);
}

/* ---------------------------------------------------- following */

static void dom_beat_one(struct reaper *r, struct rdom *d, bool stopping);

static void dom_free(struct reaper *r, struct rdom *d)
{
	struct io_uring_sqe *sqe;

	/* The wait keys on the file, not on our mapping: cancel it so the
	 * kernel forgets it; its completion finds no domain of that id. */
	if (d->armed && r->uring && (sqe = uring_sqe(r))) {
		io_uring_prep_cancel64(sqe, d->id, 0);
		sqe->user_data = 0;
		uring_submit(r);
	}
	shmrpc_insp_reg_close(&d->reg);
	free(d->slots);
	free(d);
}

static void dom_drop(struct reaper *r, struct rdom *d)
{
	struct rdom **pp;
	struct rretry *t;

	while ((t = d->retry)) {
		d->retry = t->next;
		free(t);
	}
	d->owner->ndoms--;

	for (uint32_t i = 0; i < d->reg.capacity && d->mirrored; i++)
		if (d->slots[i])
			node_unmirror(r, d->slots[i], "domain-gone");
	for (pp = &r->doms; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	rlogo(r, d->owner, "domain-removed domain=%s", d->reg.domain);
	dom_free(r, d);
}

/* Start following @d, just opened (discover.c): sweep it for nodes that
 * died while nobody watched, mirror it, tell shmrpc-top. */
void dom_follow(struct reaper *r, struct rdom *d)
{
	d->id = ++r->next_dom_id;
	d->next = r->doms;
	r->doms = d;
	d->owner->ndoms++;
	d->sweeping = true;
	dom_sweep(r, d);
	dom_sync(r, d);
	dom_beat_one(r, d, false);
	rlogo(r, d->owner, "domain-added domain=%s capacity=%u nodes=%u uid=%u", d->reg.domain,
	      d->reg.capacity, d->mirrored, (unsigned)d->uid);
}

bool dom_busy(const struct reaper *r)
{
	if (r->disc)
		return true;
	for (const struct rdom *d = r->doms; d; d = d->next)
		if (!d->gone && (d->dirty || d->sweeping || d->retire_due))
			return true;
	return false;
}

void dom_work(struct reaper *r)
{
	struct rdom *d, *next;

	for (d = r->doms; d; d = next) {
		next = d->next;
		dom_retries(r, d);
		if (d->dirty)
			dom_sync(r, d);
		if (d->sweeping && !d->gone) {
			dom_sweep(r, d);
			if (!d->sweeping)
				dom_retire_empty(r, d);
		} else if (d->retire_due) {
			dom_retire_empty(r, d);
		}
		if (d->dirty || d->sweeping || d->retire_due)
			owner_defer(r, d->owner);
		/* Gone: keep following while it still has live nodes. */
		if (d->gone && !d->mirrored)
			dom_drop(r, d);
	}
	dom_discover_step(r);
	dom_pending(r);
}

/* ms until @when, at least 0 */
static int64_t ms_until(int64_t when, int64_t now)
{
	int64_t left = (when - now) / 1000000 + 1;

	return left < 0 ? 0 : left;
}

int dom_timeout_ms(const struct reaper *r)
{
	int64_t now = rnow_ns(), left = r->uring ? -1 : EPOCH_POLL_MS, t;

	if (r->deferred || r->disc)
		return 1; /* budgets: the rest in the next turn, after the events */
	/* An owner's second spent, a lock's backoff: sleep until then. */
	if (r->wake_ns) {
		t = ms_until(r->wake_ns, now);
		left = left < 0 || t < left ? t : left;
	}
	if (r->npending) {
		t = ms_until(r->pending_ns, now);
		left = left < 0 || t < left ? t : left;
	}
	return (int)left;
}

/* ---------------------------------------------------- status */

static void dom_beat_one(struct reaper *r, struct rdom *d, bool stopping)
{
	struct shmrpc__reg_hdr *h = d->reg.hdr;
	uint32_t me = (uint32_t)getpid();

	/* Relaxed: status for shmrpc-top, which reads each field alone. */
	if (stopping) {
		if (atomic_load_explicit(&h->reaper_pid, memory_order_relaxed) == me) {
			atomic_store_explicit(&h->reaper_mode, 0, memory_order_relaxed);
			atomic_store_explicit(&h->reaper_pid, 0, memory_order_relaxed);
		}
		return;
	}
	atomic_store_explicit(&h->reaper_pid, me, memory_order_relaxed);
	atomic_store_explicit(&h->reaper_mode, r->w->mode, memory_order_relaxed);
	atomic_store_explicit(&h->reaper_beat, (uint64_t)(rnow_ns() / 1000000000),
			      memory_order_relaxed);
}

void dom_beat(struct reaper *r, bool stopping)
{
	for (struct rdom *d = r->doms; d; d = d->next)
		if (!d->gone)
			dom_beat_one(r, d, stopping);
}

/* ---------------------------------------------------- set-up */

int dom_init(struct reaper *r)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int err;

	r->infd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->infd < 0)
		return -errno;
	if (inotify_add_watch(r->infd, r->o.shm_dir,
			      IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) < 0)
		return -errno;
	ev.data.u64 = EV_DATA(EV_INOTIFY, 0);
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->infd, &ev))
		return -errno;
	/* No IORING_SETUP_DEFER_TASKRUN: its ring fd never polls readable. */
	if (shmrpc_insp_uring_futex()) {
		err = io_uring_queue_init(URING_ENTRIES, &r->ring, 0);
		r->uring = err == 0;
		ev.data.u64 = EV_DATA(EV_URING, 0);
		if (r->uring && epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->ring.ring_fd, &ev)) {
			io_uring_queue_exit(&r->ring);
			r->uring = false;
		}
	}
	if (!r->uring)
		rlog("warning: no io_uring futex wait here: comparing epochs every %d ms",
		     EPOCH_POLL_MS);
	return 0;
}

void dom_fini(struct reaper *r)
{
	struct rdom *d;

	/* Processes stay watched (a pinned probe keeps reporting while we are
	 * down): forget our copies only. */
	procs_forget_all(r);
	while ((d = r->doms)) {
		r->doms = d->next;
		while (d->retry) {
			struct rretry *t = d->retry;

			d->retry = t->next;
			free(t);
		}
		for (uint32_t i = 0; i < d->reg.capacity && d->mirrored; i++)
			if (d->slots[i]) {
				free(d->slots[i]);
				d->slots[i] = NULL;
				d->mirrored--;
			}
		dom_free(r, d);
	}
	if (r->uring)
		io_uring_queue_exit(&r->ring);
	if (r->infd >= 0)
		close(r->infd);
	dom_discover_fini(r);
}
