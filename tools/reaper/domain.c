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
 * Reclaiming: shmrpc__reclaim() under the registry lock does what a node's
 * own leave would have done (close and unlink its rings and segment, wake
 * their sleepers, free the slot, bump the epoch). If that was the last node
 * in use, the reaper also retires the registry like the last leaver does,
 * so a domain whose nodes were all killed leaves nothing in /dev/shm. A
 * registry that no node has used for two reconcile passes (its creator died
 * before joining) is retired then too.
 *
 * Every file operation on a domain runs as the registry's owner (owner.c):
 * dom_reclaim, dom_node_alive and the sweep enter that identity and leave
 * it before returning. The registry lock is never waited on for long (its
 * owner can hold it for ever): a reclaim that finds it held is queued and
 * tried again later, with a backoff, and that owner's other domains stop
 * waiting for their locks meanwhile. Syncs and sweeps read only the slots in
 * the registry file's data extents (never a hole: reading one through the
 * mapping allocates a page charged to us), spend their owner's budget per
 * turn and resume where they stopped. Discovery is in discover.c.
 */
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
#include "uring_compat.h"

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
	shmrpc__prep_futex_wait(sqe, &d->reg.hdr->epoch, d->epoch_seen, d->id);
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

int dom_node_alive(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen, uid_t *owner)
{
	char path[SHMRPC__PATH_MAX];
	struct stat st;
	int fd, rc;

	if (owner)
		*owner = (uid_t)-1;
	if (owner_enter(r, d->uid, d->gid, d))
		return -EPERM;
	shmrpc__node_path(path, &d->reg, slot, gen);
	fd = shmrpc__seg_open_fd(path, O_RDONLY, d->reg.mode, &st);
	if (fd >= 0) {
		rc = shmrpc__seg_locked(fd);
		close(fd);
		if (owner)
			*owner = st.st_uid;
	} else {
		rc = fd == -ENOENT ? 0 : fd; /* cannot tell is never "dead" */
	}
	owner_leave(r);
	return rc;
}

/*
 * Mirror what d's slots hold now; see the top of the file. Spends d's
 * owner's budget (a slot read each, a mirror as a lock check): cut short,
 * it stays dirty and resumes at sync_pos in a later turn.
 */
static void dom_sync(struct reaper *r, struct rdom *d)
{
	struct shmrpc__slot_view v;
	struct rnode *n;
	uint32_t i, st;
	int rc, tries;

	if (!d->syncing) {
		d->syncing = true;
		d->dirty = false;
		d->sync_pos = 0;
		d->sync_sc = (struct shmrpc__reg_scan){ 0, 0 };
		/* Acquire: pairs with the release bump of every join/leave. */
		d->epoch_seen = atomic_load_explicit(&d->reg.hdr->epoch, memory_order_acquire);
		/* A hint, believed only if the name no longer names the file. */
		if (shmrpc__reg_retired(&d->reg, false))
			d->gone = true;
	}
	/* Every slot in the file's data, not only below the shared hi. */
	for (i = shmrpc__reg_scan_next(&d->reg, &d->sync_sc, d->sync_pos); i < d->reg.capacity;
	     i = shmrpc__reg_scan_next(&d->reg, &d->sync_sc, i + 1)) {
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
			if ((rc = shmrpc__reg_read(&d->reg, i, &v)) != -EAGAIN)
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

/* ---------------------------------------------------- reclaiming */

#define LOCK_WAIT_NS (1000 * 1000ll)	    /* a reclaim waits this long for the lock */
#define RETRY_MIN_NS (10 * 1000 * 1000ll)   /* then tries again after this */
#define RETRY_MAX_NS (1000 * 1000 * 1000ll) /* doubling up to this */
#define RETRY_MAX 4096			    /* queued reclaims per domain */

/* Queue reclaim (slot, gen) of @d for a later try: its lock was held. */
static void retry_add(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen,
		      const struct exit_info *ei, bool exited)
{
	struct rretry *t;
	uint32_t n = 0;

	for (t = d->retry; t; t = t->next, n++)
		if (t->slot == slot && t->gen == gen)
			return;
	if (n >= RETRY_MAX || !(t = calloc(1, sizeof(*t))))
		return; /* a reconcile finds it */
	*t = (struct rretry){ slot, gen, exited, *ei, d->retry };
	d->retry = t;
	r->deferred = true;
}

/* The registry lock of @d, waiting at most LOCK_WAIT_NS, and not at all
 * once one of its owner's locks was found held (until one is taken again):
 * an owner who holds its locks costs us one such wait, not one per try. */
static int dom_lock(struct reaper *r, struct rdom *d)
{
	struct rowner *o = d->owner;
	int rc = shmrpc__reg_lock_for(&d->reg, o->lock_backoff_ns ? 0 : LOCK_WAIT_NS);

	if (rc == -ETIMEDOUT) {
		o->lock_backoff_ns = o->lock_backoff_ns ? o->lock_backoff_ns * 2 : RETRY_MIN_NS;
		if (o->lock_backoff_ns > RETRY_MAX_NS)
			o->lock_backoff_ns = RETRY_MAX_NS;
		o->lock_retry_ns = rnow_ns() + o->lock_backoff_ns;
		owner_cap(r, o, OWNER_CAP_LOCK, d->reg.domain);
	} else if (!rc) {
		o->lock_backoff_ns = 0;
	}
	return rc;
}

int dom_reclaim(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen,
		const struct exit_info *ei, bool exited)
{
	struct shmrpc__slot_view v;
	char st[32], delay[48] = "";
	bool retired = false;
	int64_t done;
	int rc;

	if (slot >= d->reg.capacity)
		return 0;
	if (owner_enter(r, d->uid, d->gid, d))
		return -EPERM;
	rc = dom_lock(r, d);
	if (rc) {
		owner_leave(r);
		if (rc == -ETIMEDOUT)
			retry_add(r, d, slot, gen, ei, exited);
		else
			rlog("error: domain=%s: registry lock: %s", d->reg.domain, strerror(-rc));
		return rc;
	}
	if (shmrpc__reg_read(&d->reg, slot, &v))
		memset(&v, 0, sizeof(v));
	rc = exited ? shmrpc__reclaim_exited(&d->reg, slot, gen) :
		      shmrpc__reclaim(&d->reg, slot, gen);
	if (rc == 1) {
		/* Relaxed: a counter for shmrpc-top; we are its only writer. */
		atomic_fetch_add_explicit(&d->reg.hdr->reaped, 1, memory_order_relaxed);
		r->reaped++;
		if (!shmrpc__reg_recount(&d->reg)) {
			shmrpc__reg_retire(&d->reg);
			d->gone = retired = true;
		}
	}
	shmrpc__reg_unlock(&d->reg);
	owner_leave(r);
	if (rc != 1)
		return rc;
	done = rnow_ns();
	if (ei->exit_ns && done > ei->exit_ns)
		snprintf(delay, sizeof(delay), " delay_us=%lld",
			 (long long)((done - ei->exit_ns) / 1000));
	rlog("reaped domain=%s node=%s slot=%u gen=%u pid=%d exit=%s via=%s%s work_us=%lld",
	     d->reg.domain, v.name[0] ? v.name : "?", slot, gen, (int)v.pid,
	     rlog_status(ei->status, st, sizeof(st)), ei->via, delay,
	     (long long)((done - ei->seen_ns) / 1000));
	if (retired)
		rlog("domain-retired domain=%s reason=last-node-reaped", d->reg.domain);
	return 1;
}

/* Reclaims of @d that met a held lock, once their owner's backoff ends. */
static void dom_retries(struct reaper *r, struct rdom *d)
{
	struct rretry *t = d->retry, *next;

	if (!t)
		return;
	if (rnow_ns() < d->owner->lock_retry_ns) {
		r->deferred = true;
		return;
	}
	d->retry = NULL;
	for (; t; t = next) {
		next = t->next;
		/* A failure queues it again (retry_add). */
		if (dom_reclaim(r, d, t->slot, t->gen, &t->ei, t->exited) == 1)
			d->dirty = true;
		free(t);
	}
}

/*
 * Reclaim every node of d that is gone: a step of the reconcile sweep,
 * within d's owner's budget (a lock check per slot in use) and at most
 * OWNER_SWEEP checks per owner per pass.
 */
static void dom_sweep(struct reaper *r, struct rdom *d)
{
	struct exit_info ei = { "reconcile", -1, 0, rnow_ns(), 0 };
	struct rowner *o = d->owner;
	uint32_t i, st, gen;
	int freed = 0;

	for (i = shmrpc__reg_scan_next(&d->reg, &d->sweep_sc, d->sweep_pos); i < d->reg.capacity;
	     i = shmrpc__reg_scan_next(&d->reg, &d->sweep_sc, i + 1)) {
		/* Relaxed: dom_reclaim re-reads both under the lock. */
		st = atomic_load_explicit(&d->reg.slots[i].state, memory_order_relaxed);
		if (st == SHMRPC__SLOT_FREE)
			continue;
		if (o->sweep_checks >= OWNER_SWEEP) {
			owner_cap(r, o, OWNER_CAP_SWEEP, d->reg.domain);
			break; /* the rest waits for the next pass */
		}
		if (!owner_spend(r, o, UNITS_MIRROR)) {
			d->sweep_pos = i;
			goto out;
		}
		o->sweep_checks++;
		gen = atomic_load_explicit(&d->reg.slots[i].gen, memory_order_relaxed);
		/* Whatever its state: alive, or cannot be told, is never
		 * reclaimed (the state is a claim, the lock is proof). */
		if (dom_node_alive(r, d, i, gen, NULL) != 0)
			continue;
		if (d->slots[i])
			node_unmirror(r, d->slots[i], "dead");
		freed += dom_reclaim(r, d, i, gen, &ei, false) == 1;
	}
	d->sweeping = false;
	d->sweep_pos = 0;
out:
	if (freed)
		d->dirty = true;
}

/* Retire d if no slot has been in use for two reconcile passes in a row. */
static void dom_retire_empty(struct reaper *r, struct rdom *d)
{
	bool retired = false;

	if (d->gone || owner_enter(r, d->uid, d->gid, d))
		return;
	if (shmrpc__reg_lock_for(&d->reg, 0)) {
		owner_leave(r);
		return; /* busy: the next pass */
	}
	if (shmrpc__reg_recount(&d->reg)) {
		d->empty_passes = 0;
	} else if (++d->empty_passes >= 2) {
		shmrpc__reg_retire(&d->reg);
		d->gone = retired = true;
	}
	shmrpc__reg_unlock(&d->reg);
	owner_leave(r);
	if (retired)
		rlog("domain-retired domain=%s reason=unused", d->reg.domain);
}

void dom_reconcile(struct reaper *r)
{
	struct rdom *d;

	for (struct rowner *o = r->owners; o; o = o->next)
		o->sweep_checks = 0;
	dom_discover(r);
	for (d = r->doms; d; d = d->next) {
		if (d->gone)
			continue;
		d->sweeping = true;
		d->sweep_pos = 0;
		d->sweep_sc = (struct shmrpc__reg_scan){ 0, 0 };
		dom_sweep(r, d);
		if (!d->sweeping)
			dom_retire_empty(r, d);
	}
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
	shmrpc__reg_close(&d->reg);
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
	rlog("domain-removed domain=%s", d->reg.domain);
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
	rlog("domain-added domain=%s capacity=%u nodes=%u uid=%u", d->reg.domain, d->reg.capacity,
	     d->mirrored, (unsigned)d->uid);
}

bool dom_busy(const struct reaper *r)
{
	if (r->disc)
		return true;
	for (const struct rdom *d = r->doms; d; d = d->next)
		if (!d->gone && (d->dirty || d->sweeping))
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
		}
		if (d->dirty || d->sweeping)
			r->deferred = true;
		/* Gone: keep following while it still has live nodes. */
		if (d->gone && !d->mirrored)
			dom_drop(r, d);
	}
	dom_discover_step(r);
	dom_pending(r);
}

int dom_timeout_ms(const struct reaper *r)
{
	int64_t left;

	if (r->deferred || r->disc)
		return 1; /* budgets: the rest in the next turn, after the events */
	if (!r->npending)
		return r->uring ? -1 : EPOCH_POLL_MS;
	left = (r->pending_ns - rnow_ns()) / 1000000 + 1;
	left = left < 0 ? 0 : left;
	return !r->uring && left > EPOCH_POLL_MS ? EPOCH_POLL_MS : (int)left;
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
	if (shmrpc__uring_futex_supported()) {
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
