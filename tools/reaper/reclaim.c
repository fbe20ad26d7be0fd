// SPDX-License-Identifier: MIT
/*
 * Reclaiming in the registries the reaper follows (domain.c follows them):
 * a node's liveness, its reclaim under the registry lock, the reconcile
 * sweep, and retiring a registry once no node is left.
 *
 * Each runs as the registry's owner (owner.c), entered and left here. The
 * registry lock is never waited on for long (its owner can hold it for
 * ever): a reclaim that finds it held is queued and tried again later, with
 * a backoff, and that owner's other domains stop waiting for their locks
 * meanwhile. A sweep reads only the slots in the registry file's data
 * extents, spends its owner's budget per turn and resumes where it stopped.
 * A registry is retired only when its slots say no node is left *and* no
 * node file of its domain is locked: any member can write every slot FREE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reaper.h"

int dom_node_alive(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen, struct rfile *f)
{
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__node_hdr h;
	struct stat st;
	int fd, rc;

	if (f)
		*f = (struct rfile){ (uid_t)-1, 0, 0, -1 };
	if (owner_enter(r, d->uid, d->gid, d))
		return -EPERM;
	shmrpc_insp_node_path(path, d->reg.domain, d->reg.key, slot, gen);
	fd = shmrpc_insp_file_open(&d->reg, path, &st);
	if (fd >= 0) {
		rc = shmrpc_insp_locked(fd);
		if (f) {
			*f = (struct rfile){ st.st_uid, st.st_dev, st.st_ino, -1 };
			/* pread: a hole reads as zeros, a short file as nothing */
			if (pread(fd, &h, sizeof(h), 0) == sizeof(h) &&
			    h.magic == SHMRPC__NODE_MAGIC && h.lock_fd < (1u << 30))
				f->lock_fd = (int32_t)h.lock_fd;
		}
		close(fd);
	} else {
		rc = fd == -ENOENT ? 0 : fd; /* cannot tell is never "dead" */
	}
	owner_leave(r);
	return rc;
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
	int rc = shmrpc_insp_lock(&d->reg, o->lock_backoff_ns ? 0 : LOCK_WAIT_NS);

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

/*
 * In the registry lock, as its owner: may @d be retired? Its slots say no
 * node is left, but any member can write them all FREE: the domain's node
 * files say more. If one of them is locked, a node is alive and the
 * registry stays (its slots are the member's lie). Every name
 * "shmrpc.<domain>.node.*" in /dev/shm is looked at (lib/reclaim.c; a newer
 * registry's nodes count too: keeping the old name then changes nothing,
 * reg_retire would leave it), and the directory read is charged to the
 * owner: one whose domains are retired often pays for it.
 */
static bool dom_may_retire(struct reaper *r, struct rdom *d)
{
	uint32_t looked = 0;
	bool locked = shmrpc_insp_any_locked(&d->reg, UINT32_MAX, &looked) != 0;

	owner_charge(r, d->owner, (int)(looked / 4)); /* ~1 us an entry, and opens */
	if (locked)
		rlogo(r, d->owner,
		      "domain-kept domain=%s reason=locked-node-without-slot: its slots were "
		      "rewritten",
		      d->reg.domain);
	return !locked;
}

int dom_reclaim(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen,
		const struct exit_info *ei, bool exited)
{
	struct shmrpc_insp_slot v;
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
			rlogo(r, d->owner, "error: domain=%s: registry lock: %s", d->reg.domain,
			      strerror(-rc));
		return rc;
	}
	if (shmrpc_insp_reg_read(&d->reg, slot, &v))
		memset(&v, 0, sizeof(v));
	rc = exited ? shmrpc_insp_reclaim_exited(&d->reg, slot, gen) :
		      shmrpc_insp_reclaim(&d->reg, slot, gen);
	if (rc == 1) {
		/* Done at once, whoever's node it was; paid after: that owner's
		 * other work waits instead. */
		owner_charge(r, d->owner, UNITS_MIRROR);
		/* Relaxed: a counter for shmrpc-top; we are its only writer. */
		atomic_fetch_add_explicit(&d->reg.hdr->reaped, 1, memory_order_relaxed);
		r->reaped++;
		if (!shmrpc_insp_recount(&d->reg) && dom_may_retire(r, d)) {
			shmrpc_insp_retire(&d->reg);
			d->gone = retired = true;
			r->retired++;
		}
	}
	shmrpc_insp_unlock(&d->reg);
	owner_leave(r);
	if (rc != 1)
		return rc;
	done = rnow_ns();
	if (ei->exit_ns && done > ei->exit_ns)
		snprintf(delay, sizeof(delay), " delay_us=%lld",
			 (long long)((done - ei->exit_ns) / 1000));
	rlogo(r, d->owner,
	      "reaped domain=%s node=%s slot=%u gen=%u pid=%d exit=%s via=%s%s work_us=%lld",
	      d->reg.domain, v.name[0] ? v.name : "?", slot, gen, (int)v.pid,
	      rlog_status(ei->status, st, sizeof(st)), ei->via, delay,
	      (long long)((done - ei->seen_ns) / 1000));
	if (retired)
		rlogo(r, d->owner, "domain-retired domain=%s reason=last-node-reaped",
		      d->reg.domain);
	return 1;
}

/* Reclaims of @d that met a held lock, once their owner's backoff ends. */
void dom_retries(struct reaper *r, struct rdom *d)
{
	struct rretry *t = d->retry, *next;

	if (!t)
		return;
	if (rnow_ns() < d->owner->lock_retry_ns) {
		/* Sleep until the backoff ends, not a turn a millisecond. */
		if (!r->wake_ns || d->owner->lock_retry_ns < r->wake_ns)
			r->wake_ns = d->owner->lock_retry_ns;
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
void dom_sweep(struct reaper *r, struct rdom *d)
{
	struct exit_info ei = { r->o.once ? "once" : "reconcile", -1, 0, rnow_ns(), 0 };
	struct rowner *o = d->owner;
	uint32_t i, st, gen;
	int freed = 0;

	for (i = shmrpc_insp_scan_next(&d->reg, &d->sweep_sc, d->sweep_pos); i < d->reg.capacity;
	     i = shmrpc_insp_scan_next(&d->reg, &d->sweep_sc, i + 1)) {
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
void dom_retire_empty(struct reaper *r, struct rdom *d)
{
	bool retired = false;

	d->retire_due = false;
	if (d->gone)
		return;
	/* A lock, a count of the slots, maybe a directory read: paid first,
	 * or in a later turn (dom_work), never all of an owner's domains in
	 * one turn of a reconcile. */
	if (!owner_spend(r, d->owner, UNITS_RETIRE)) {
		d->retire_due = true;
		return;
	}
	if (owner_enter(r, d->uid, d->gid, d))
		return;
	if (shmrpc_insp_lock(&d->reg, 0)) {
		owner_leave(r);
		return; /* busy: the next pass */
	}
	if (shmrpc_insp_recount(&d->reg)) {
		d->empty_passes = 0;
	} else if (++d->empty_passes >= 2 && dom_may_retire(r, d)) {
		shmrpc_insp_retire(&d->reg);
		d->gone = retired = true;
		r->retired++;
	}
	shmrpc_insp_unlock(&d->reg);
	owner_leave(r);
	if (retired)
		rlogo(r, d->owner, "domain-retired domain=%s reason=unused", d->reg.domain);
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
		d->sweep_sc = (struct shmrpc_insp_scan){ 0, 0 };
		dom_sweep(r, d);
		if (!d->sweeping)
			dom_retire_empty(r, d);
	}
}
