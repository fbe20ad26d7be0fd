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
#include "uring_compat.h"

#define PENDING_MS 5	 /* look at an unpublished registry again */
#define ABANDON_S 5	 /* unpublished that long: its creator died */
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

/* "shmrpc.<domain>.reg" -> domain in @out; 0, or -EINVAL for other names. */
static int reg_name(const char *ent, char *out)
{
	size_t n = strlen(ent);

	if (n <= 11 || strncmp(ent, "shmrpc.", 7) || strcmp(ent + n - 4, ".reg") ||
	    n - 11 > SHMRPC_NAME_MAX)
		return -EINVAL;
	memcpy(out, ent + 7, n - 11);
	out[n - 11] = '\0';
	return shmrpc__name_check(out) ? -EINVAL : 0;
}

static bool wanted(const struct reaper *r, const char *domain)
{
	int i;

	if (!r->o.domains)
		return true;
	for (i = 0; i < r->o.ndomains; i++)
		if (!strcmp(r->o.domains[i], domain))
			return true;
	return false;
}

static bool ignored(const struct reaper *r, ino_t ino)
{
	for (uint32_t i = 0; i < r->nignored; i++)
		if (r->ignored[i] == ino)
			return true;
	return false;
}

static void ignore(struct reaper *r, ino_t ino)
{
	ino_t *v = realloc(r->ignored, (r->nignored + 1) * sizeof(*v));

	if (v) {
		r->ignored = v;
		r->ignored[r->nignored++] = ino;
	}
}

static struct rdom *dom_by_ino(struct reaper *r, dev_t dev, ino_t ino)
{
	struct rdom *d;

	for (d = r->doms; d; d = d->next)
		if (d->dev == dev && d->ino == ino)
			return d;
	return NULL;
}

static void reg_path(const struct reaper *r, char *buf, size_t len, const char *domain)
{
	snprintf(buf, len, "%s/shmrpc.%s.reg", r->o.shm_dir, domain);
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

/* Mirror what d's slots hold now; see the top of the file. */
static void dom_sync(struct reaper *r, struct rdom *d)
{
	struct shmrpc__slot_view v;
	struct rnode *n;
	uint32_t i, st;
	int rc, tries;

	d->dirty = false;
	/* Acquire: pairs with the release bump of every join/leave. */
	d->epoch_seen = atomic_load_explicit(&d->reg.hdr->epoch, memory_order_acquire);
	/* Relaxed: a hint; set under the lock by the last leaver (or us). */
	if (atomic_load_explicit(&d->reg.hdr->closed, memory_order_relaxed))
		d->gone = true;
	/* Every slot, not only below the shared (untrusted) hi. */
	for (i = 0; i < d->reg.capacity; i++) {
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
		if (!rc && v.state == SHMRPC__SLOT_LIVE && !d->slots[i])
			node_mirror(r, d, i, &v);
	}
	if (!d->gone)
		dom_arm(r, d);
}

/* ---------------------------------------------------- reclaiming */

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
	rc = shmrpc__reg_lock(&d->reg);
	if (rc) {
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

/* Reclaim every node of d that is gone, under one hold of the lock. */
static void dom_sweep(struct reaper *r, struct rdom *d)
{
	struct exit_info ei = { "reconcile", -1, 0, rnow_ns(), 0 };
	uint32_t i, st, gen;
	int freed = 0;

	for (i = 0; i < d->reg.capacity; i++) {
		/* Relaxed: dom_reclaim re-reads both under the lock. */
		st = atomic_load_explicit(&d->reg.slots[i].state, memory_order_relaxed);
		gen = atomic_load_explicit(&d->reg.slots[i].gen, memory_order_relaxed);
		/* Alive, or cannot be told: never reclaimed. */
		if (st == SHMRPC__SLOT_FREE ||
		    (st == SHMRPC__SLOT_LIVE && shmrpc__node_alive(&d->reg, i, gen) != 0))
			continue;
		if (d->slots[i])
			node_unmirror(r, d->slots[i], "dead");
		freed += dom_reclaim(r, d, i, gen, &ei, false) == 1;
	}
	if (freed)
		d->dirty = true;
}

/* Retire d if no slot has been in use for two reconcile passes in a row. */
static void dom_retire_empty(struct rdom *d)
{
	bool retired = false;

	if (d->gone || shmrpc__reg_lock(&d->reg))
		return;
	if (shmrpc__reg_recount(&d->reg)) {
		d->empty_passes = 0;
	} else if (++d->empty_passes >= 2) {
		shmrpc__reg_retire(&d->reg);
		d->gone = retired = true;
	}
	shmrpc__reg_unlock(&d->reg);
	if (retired)
		rlog("domain-retired domain=%s reason=unused", d->reg.domain);
}

void dom_reconcile(struct reaper *r)
{
	struct rdom *d;

	dom_discover(r);
	for (d = r->doms; d; d = d->next) {
		if (d->gone)
			continue;
		dom_sweep(r, d);
		dom_retire_empty(d);
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

	for (uint32_t i = 0; i < d->reg.capacity && d->mirrored; i++)
		if (d->slots[i])
			node_unmirror(r, d->slots[i], "domain-gone");
	for (pp = &r->doms; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	rlog("domain-removed domain=%s", d->reg.domain);
	dom_free(r, d);
}

/* Published yet? 1 yes, 0 not yet, -errno. Never blocks. */
static int reg_ready(const char *path, struct stat *st)
{
	uint64_t magic = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st))
		err = -errno;
	else if ((uint64_t)st->st_size >= sizeof(struct shmrpc__reg_hdr) &&
		 pread(fd, &magic, sizeof(magic), 0) != sizeof(magic))
		err = -EIO;
	close(fd);
	/* The creator sizes the file, fills it, and stores the magic last. */
	return err ? err : magic != 0;
}

static void pending_add(struct reaper *r, const char *domain)
{
	void *v;

	for (uint32_t i = 0; i < r->npending; i++)
		if (!strcmp(r->pending[i], domain))
			return;
	v = realloc(r->pending, (r->npending + 1) * sizeof(*r->pending));
	if (!v)
		return; /* the next reconcile finds it */
	r->pending = v;
	snprintf(r->pending[r->npending++], sizeof(*r->pending), "%s", domain);
	if (!r->pending_ns)
		r->pending_ns = rnow_ns() + PENDING_MS * 1000000ll;
}

/* Start following registry @domain (reconcile, then mirror). 0, or -EAGAIN:
 * not published yet. */
static int dom_add(struct reaper *r, const char *domain)
{
	char path[PATH_MAX];
	struct stat st;
	struct rdom *d;
	int err;

	reg_path(r, path, sizeof(path), domain);
	err = reg_ready(path, &st);
	if (err < 0 || dom_by_ino(r, st.st_dev, st.st_ino) || ignored(r, st.st_ino)) {
		rlogv(r, "skip domain=%s: %s", domain, err < 0 ? strerror(-err) : "known");
		return 0; /* gone again, or known */
	}
	if (!err) {
		rlogv(r, "pending domain=%s", domain);
		if (st.st_ctime + ABANDON_S > time(NULL))
			return -EAGAIN;
		rlogv(r,
		      "ignore domain=%s: never published (its creator died); the next joiner "
		      "repairs it",
		      domain);
		ignore(r, st.st_ino);
		return 0;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return 0;
	/* 0660: also follow a group-mode domain (only matters unprivileged). */
	err = shmrpc__reg_open(&d->reg, domain, 0, 0660, false);
	if (!err && fstat(d->reg.fd, &st))
		err = -errno;
	if (err) {
		/* Not ours (unprivileged), or not a registry we can read:
		 * say so once. Anything else may pass: look again later. */
		rlog("%s domain=%s: %s", err == -EACCES || err == -EPERM ? "ignore" : "error",
		     domain, strerror(-err));
		if (err == -EACCES || err == -EPERM || err == -EPROTO)
			ignore(r, st.st_ino);
		if (d->reg.hdr)
			shmrpc__reg_close(&d->reg);
		free(d);
		return 0;
	}
	d->slots = calloc(d->reg.capacity, sizeof(*d->slots));
	if (!d->slots || dom_by_ino(r, st.st_dev, st.st_ino)) {
		shmrpc__reg_close(&d->reg);
		free(d->slots);
		free(d);
		return 0;
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->id = ++r->next_dom_id;
	d->next = r->doms;
	r->doms = d;
	dom_sweep(r, d); /* nodes that died while nobody watched */
	dom_sync(r, d);
	dom_beat_one(r, d, false);
	rlog("domain-added domain=%s capacity=%u nodes=%u", domain, d->reg.capacity, d->mirrored);
	return 0;
}

static void dom_try(struct reaper *r, const char *ent)
{
	char domain[SHMRPC_NAME_MAX + 1];

	if (reg_name(ent, domain) || !wanted(r, domain))
		return;
	if (dom_add(r, domain) == -EAGAIN)
		pending_add(r, domain);
}

void dom_discover(struct reaper *r)
{
	DIR *dir = opendir(r->o.shm_dir);
	struct dirent *e;

	if (!dir) {
		rlog("error: %s: %s", r->o.shm_dir, strerror(errno));
		return;
	}
	while ((e = readdir(dir)))
		dom_try(r, e->d_name);
	closedir(dir);
}

/* A registry name was unlinked or renamed: which followed ones are gone? */
static void dom_check_unlinked(struct reaper *r, const char *domain)
{
	char path[PATH_MAX];
	struct stat st;
	struct rdom *d;

	reg_path(r, path, sizeof(path), domain);
	for (d = r->doms; d; d = d->next) {
		if (strcmp(d->reg.domain, domain))
			continue;
		if (stat(path, &st) || st.st_dev != d->dev || st.st_ino != d->ino)
			d->gone = true;
	}
}

void dom_inotify(struct reaper *r)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	char domain[SHMRPC_NAME_MAX + 1];
	const struct inotify_event *ev;
	ssize_t n;

	while ((n = read(r->infd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				r->reconcile_now = true;
				continue;
			}
			if (!ev->len || reg_name(ev->name, domain))
				continue; /* rings and node segments: not ours to follow */
			if (ev->mask & (IN_CREATE | IN_MOVED_TO))
				dom_try(r, ev->name);
			if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
				dom_check_unlinked(r, domain);
		}
	}
}

void dom_work(struct reaper *r)
{
	struct rdom *d, *next;
	uint32_t i, n;
	char(*names)[SHMRPC_NAME_MAX + 1];

	for (d = r->doms; d; d = next) {
		next = d->next;
		if (d->dirty)
			dom_sync(r, d);
		/* Gone: keep following while it still has live nodes. */
		if (d->gone && !d->mirrored)
			dom_drop(r, d);
	}
	if (!r->npending || rnow_ns() < r->pending_ns)
		return;
	names = r->pending;
	n = r->npending;
	r->pending = NULL;
	r->npending = 0;
	r->pending_ns = 0;
	for (i = 0; i < n; i++)
		if (dom_add(r, names[i]) == -EAGAIN)
			pending_add(r, names[i]);
	free(names);
}

int dom_timeout_ms(const struct reaper *r)
{
	int64_t left;

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
	free(r->ignored);
	free(r->pending);
}
