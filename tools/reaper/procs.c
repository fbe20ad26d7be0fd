// SPDX-License-Identifier: MIT
/*
 * Mirrored nodes and the processes that host them.
 *
 * Every LIVE slot of a followed registry becomes a struct rnode; the
 * process it names becomes a struct rproc, watched by the watcher (BPF probe
 * or pidfd) once, however many nodes it hosts, in any number of domains.
 * When the watcher reports the process gone, each of its nodes is reclaimed.
 *
 * Which process? A slot records the pid in the node's own pid namespace
 * (and that namespace's inode). In ours it is the same pid; a node in a
 * container that shares /dev/shm but not the pid namespace is looked up in
 * /proc: the process whose /proc/PID/ns/pid is that inode and whose last
 * NSpid is that pid. A node we cannot place (its namespace is not visible
 * from ours, or it did not record one) is not watched but "polled": its
 * liveness lock is checked every poll_ms. Nothing here ever decides a node
 * is dead from a pid alone: a reclaim happens after shmrpc__node_alive()
 * says the node's liveness lock is free (lib/reclaim.c checks again under
 * the registry lock), which a reused pid cannot fake and which every pid
 * namespace sees alike; or, sooner, on a probe event whose tgid *and* start
 * time are the slot's pid and start time: the kernel's word that exactly
 * that process is past the point of no return (proc_reap).
 *
 * Trusting the watch: after the watcher holds the process (pidfd opened,
 * or tgid in the probe's map) the node's lock is checked. Held means the
 * node is alive now, hence its pid was not reused before we took hold: the
 * watch names the right process. Free means it died before we got there,
 * and no event would ever come: it is reclaimed at once ("a node dying
 * before the reaper mirrored it"). With BPF one gap remains: a process past
 * the exit tracepoint but not yet a zombie gives no event and looks alive
 * to both checks for a few microseconds; every BPF watch is therefore
 * checked once more recheck_ms later.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "reaper.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define PROC_BUCKETS_MIN 1024
#define POLL_GRID_NS (10 * 1000000ll)

static uint32_t proc_hash(const struct reaper *r, pid_t gpid)
{
	return ((uint32_t)gpid * 2654435761u) & (r->proc_buckets - 1);
}

int procs_init(struct reaper *r)
{
	struct stat st;

	r->proc_buckets = PROC_BUCKETS_MIN;
	r->procs = calloc(r->proc_buckets, sizeof(*r->procs));
	if (!r->procs)
		return -ENOMEM;
	r->mypidns = stat("/proc/self/ns/pid", &st) ? 0 : (uint64_t)st.st_ino;
	return 0;
}

void procs_forget_all(struct reaper *r)
{
	struct rproc *p, *next;

	for (uint32_t b = 0; r->procs && b < r->proc_buckets; b++) {
		for (p = r->procs[b]; p; p = next) {
			next = p->next;
			if (p->pidfd >= 0)
				close(p->pidfd);
			free(p);
		}
		r->procs[b] = NULL;
	}
	r->nprocs = 0;
}

void procs_fini(struct reaper *r)
{
	procs_forget_all(r);
	pidns_fini();
	free(r->procs);
	r->procs = NULL;
}

struct rproc *proc_find(struct reaper *r, pid_t gpid)
{
	struct rproc *p;

	for (p = r->procs[proc_hash(r, gpid)]; p; p = p->next)
		if (p->gpid == gpid)
			return p;
	return NULL;
}

bool procs_has(struct reaper *r, pid_t gpid)
{
	return proc_find(r, gpid) != NULL;
}

static void proc_unlink(struct reaper *r, struct rproc *p)
{
	struct rproc **pp = &r->procs[proc_hash(r, p->gpid)];

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	r->nprocs--;
}

/* A watched process for gpid: found, or new and watched. NULL: not watchable
 * (*err: -ESRCH gone, other -errno). */
static struct rproc *proc_get(struct reaper *r, pid_t gpid, uint64_t cookie, int *err)
{
	struct rproc *p = proc_find(r, gpid);

	*err = 0;
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	p->gpid = gpid;
	p->pidfd = -1;
	*err = r->w->add(r, p, cookie);
	if (*err) {
		free(p);
		return NULL;
	}
	p->next = r->procs[proc_hash(r, gpid)];
	r->procs[proc_hash(r, gpid)] = p;
	r->nprocs++;
	return p;
}

/* Stop watching p (no node left in it) and free it. */
static void proc_put(struct reaper *r, struct rproc *p)
{
	if (p->owner)
		p->owner->nprocs--;
	proc_unlink(r, p);
	r->w->del(r, p);
	if (p->pidfd >= 0)
		close(p->pidfd); /* which takes it out of the epoll set */
	free(p);
}

int proc_pidfd_open(struct reaper *r, struct rproc *p)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(EV_PIDFD, p->gpid) };
	int fd, err;

	fd = (int)syscall(SYS_pidfd_open, p->gpid, 0);
	if (fd < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	/* An exited process's pidfd is readable at once: the event comes with
	 * the next epoll_wait. */
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		err = -errno;
		close(fd);
		return err;
	}
	p->pidfd = fd;
	return 0;
}

/* ---------------------------------------------------- pid namespaces */

/* Our pid of the node in @v, or 0 (pidns.c for other namespaces). */
static pid_t node_gpid(struct reaper *r, pid_t pid, uint64_t pidns, uint64_t start)
{
	if (pid <= 0 || !pidns || !r->mypidns)
		return 0; /* nothing we could trust: poll its lock */
	if (pidns == r->mypidns)
		return pid;
	return pidns_gpid(r, pid, pidns, start);
}

/* ---------------------------------------------------- mirroring */

static void check_at(struct reaper *r, struct rnode *n, int64_t when)
{
	if (!n->check_ns && when)
		r->nchecks++;
	else if (n->check_ns && !when)
		r->nchecks--;
	n->check_ns = when;
}

/* Lock-polled (not watched): every poll_ms, stretched so that one owner's
 * polled nodes cost at most OWNER_POLLED checks per poll_ms. */
static void poll_at(struct reaper *r, struct rnode *n, int64_t now)
{
	struct rowner *o = n->dom->owner;
	int64_t every = (int64_t)r->o.poll_ms * 1000000;

	if (!n->polled) {
		n->polled = true;
		if (++o->npolled == OWNER_POLLED + 1)
			owner_cap(r, o, OWNER_CAP_POLLED, "their lock checks are spread out");
	}
	if (o->npolled > OWNER_POLLED)
		every = every * o->npolled / OWNER_POLLED;
	/* On a 10 ms grid: many polled nodes, few wake-ups. */
	check_at(r, n, (now + every) / POLL_GRID_NS * POLL_GRID_NS + POLL_GRID_NS);
}

static void node_free(struct reaper *r, struct rnode *n)
{
	struct rdom *d = n->dom;

	if (n->polled)
		d->owner->npolled--;
	check_at(r, n, 0);
	d->slots[n->slot] = NULL;
	d->mirrored--;
	free(n);
}

/* Take @n out of its process; the process goes when it hosts no node. */
static void node_detach(struct reaper *r, struct rnode *n)
{
	struct rproc *p = n->proc;
	struct rnode **pp;

	if (!p)
		return;
	for (pp = &p->nodes; *pp != n; pp = &(*pp)->proc_next)
		;
	*pp = n->proc_next;
	n->proc = NULL;
	if (!p->nodes)
		proc_put(r, p);
}

void node_unmirror(struct reaper *r, struct rnode *n, const char *why)
{
	rlogov(r, n->dom->owner, "unwatch domain=%s node=%s slot=%u gen=%u pid=%d reason=%s",
	       n->dom->reg.domain, n->name, n->slot, n->gen, (int)n->pid, why);
	node_detach(r, n);
	node_free(r, n);
}

/* @n is (probably) dead: stop mirroring it and reclaim its slot. */
static void node_reap(struct reaper *r, struct rnode *n, const struct exit_info *ei)
{
	struct rdom *d = n->dom;
	uint32_t slot = n->slot, gen = n->gen;

	node_detach(r, n);
	node_free(r, n);
	/* 0: alive after all, or its slot moved on; either way the next sync
	 * mirrors whatever the slot now holds. */
	if (dom_reclaim(r, d, slot, gen, ei, false) != 1)
		d->dirty = true;
}

/* The lock check of node @n: reclaim it if dead. */
static void node_check(struct reaper *r, struct rnode *n, const char *via)
{
	struct exit_info ei = { via, -1, 0, rnow_ns(), 0 };

	if (dom_node_alive(r, n->dom, n->slot, n->gen, NULL) == 0)
		node_reap(r, n, &ei);
}

/*
 * Watch @n's process, if it can be trusted to be the node's: its uid must
 * be the node file's owner's (@fowner), since a slot's pid is written by
 * whoever can write the registry and could name another user's process
 * (whose exit would then reclaim this node without a lock check: the BPF
 * fast path), and its owner must be under OWNER_PROCS watched processes
 * (the probe's map is shared by every user). NULL: poll its lock instead.
 */
static struct rproc *node_watch(struct reaper *r, struct rnode *n, uid_t fowner)
{
	struct rowner *o = n->dom->owner;
	struct rproc *p;
	int err = 0;

	if (n->gpid <= 0)
		return NULL;
	if (fowner == (uid_t)-1 || !proc_uid_is(n->gpid, fowner)) {
		rlogov(r, o,
		       "domain=%s node=%s pid=%d: not a process of the file's owner uid=%d: polled",
		       n->dom->reg.domain, n->name, (int)n->gpid, (int)fowner);
		return NULL;
	}
	p = proc_find(r, n->gpid);
	if (!p && o->nprocs >= OWNER_PROCS) {
		owner_cap(r, o, OWNER_CAP_PROCS, n->dom->reg.domain);
		return NULL;
	}
	if (!p && (p = proc_get(r, n->gpid, dom_cookie(n->dom, n->slot, n->gen), &err))) {
		p->owner = o;
		o->nprocs++;
	}
	if (!p && err && err != -ESRCH)
		rlogo(r, o,
		      "warning: cannot watch domain=%s node=%s pid=%d: %s; checking its lock every "
		      "%d ms",
		      n->dom->reg.domain, n->name, (int)n->gpid, strerror(-err), r->o.poll_ms);
	return p;
}

/*
 * Does process @gpid hold node @n's file open? Asked when the node is
 * watched by the probe (not when it dies: that costs ~30 us of /proc per
 * death): a slot's pid and start time are written by whoever can write the
 * registry, so a member could name another process of the node's owner,
 * whose exit would reclaim a live node without a lock check (the BPF fast
 * path). The node's own process holds its liveness lock on a descriptor of
 * that file: the header's lock_fd names it (a hint, checked here), else
 * every descriptor is looked at (peers map the file but keep no descriptor
 * of it). Only a node whose process passed is reclaimed on the probe's
 * event alone; the others wait for their lock. The slot's pid can only be
 * pointed elsewhere by a new state or gen, which makes a new mirror and a
 * new check. Read as root (ptrace access to /proc).
 */
static bool proc_holds(pid_t gpid, const struct rnode *n)
{
	char path[64];
	struct dirent *e;
	struct stat st;
	bool found = false;
	DIR *dir;

	if (!n->file.ino)
		return false;
	if (n->file.lock_fd >= 0) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)gpid, (int)n->file.lock_fd);
		if (!stat(path, &st) && st.st_dev == n->file.dev && st.st_ino == n->file.ino)
			return true;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)gpid);
	dir = opendir(path);
	while (dir && !found && (e = readdir(dir)))
		found = e->d_name[0] != '.' && !fstatat(dirfd(dir), e->d_name, &st, 0) &&
			st.st_dev == n->file.dev && st.st_ino == n->file.ino;
	if (dir)
		closedir(dir);
	return found;
}

void node_mirror(struct reaper *r, struct rdom *d, uint32_t slot, const struct shmrpc_insp_slot *v)
{
	struct rnode *n = calloc(1, sizeof(*n));
	int64_t now = rnow_ns();
	struct rproc *p = NULL;
	uid_t fowner;
	int alive;

	if (!n) {
		d->dirty = true; /* try again at the next sync */
		return;
	}
	n->dom = d;
	n->slot = slot;
	n->gen = v->gen;
	n->pid = v->pid;
	n->pidns = v->pidns;
	n->start_time = v->start_time;
	memcpy(n->name, v->name, sizeof(n->name));
	d->slots[slot] = n;
	d->mirrored++;
	/* The lock first: a dead node (or an invented one, with no file)
	 * costs no /proc look-up. */
	alive = dom_node_alive(r, d, slot, n->gen, &n->file);
	fowner = n->file.uid;
	if (alive == 0) {
		node_check(r, n, "check");
		return;
	}
	if (alive > 0)
		n->gpid = node_gpid(r, v->pid, v->pidns, v->start_time);
	p = node_watch(r, n, alive > 0 ? fowner : (uid_t)-1);
	if (p) {
		n->proc_next = p->nodes;
		p->nodes = n;
		n->proc = p;
		n->held = r->w->mode == REAPER_MODE_BPF && proc_holds(n->gpid, n);
		/* Before the watch took hold, it may have died: no event would
		 * come. */
		alive = dom_node_alive(r, d, slot, n->gen, NULL);
	}
	rlogov(r, d->owner, "watch domain=%s node=%s slot=%u gen=%u pid=%d gpid=%d via=%s alive=%d",
	       d->reg.domain, n->name, slot, n->gen, (int)n->pid, (int)n->gpid,
	       p ? r->w->name : "lock", alive);
	if (alive == 0) {
		node_check(r, n, "check");
		return;
	}
	if (!p)
		poll_at(r, n, now);
	else if (r->w->mode == REAPER_MODE_BPF)
		check_at(r, n, now + (int64_t)r->o.recheck_ms * 1000000);
}

/* A polled node of another pid namespace: placed now? Then watch it. */
static void node_replace(struct reaper *r, struct rnode *n)
{
	struct rproc *p;

	if (n->proc || !n->pidns || n->pidns == r->mypidns)
		return;
	n->gpid = node_gpid(r, n->pid, n->pidns, n->start_time);
	if (n->gpid <= 0 || dom_node_alive(r, n->dom, n->slot, n->gen, &n->file) != 1)
		return;
	p = node_watch(r, n, n->file.uid);
	if (!p)
		return;
	n->proc_next = p->nodes;
	p->nodes = n;
	n->proc = p;
	n->held = r->w->mode == REAPER_MODE_BPF && proc_holds(n->gpid, n);
	n->polled = false;
	n->dom->owner->npolled--;
	check_at(r, n, 0);
}

int procs_checks(struct reaper *r)
{
	int64_t now = rnow_ns(), next = INT64_MAX;
	struct rdom *d;
	struct rnode *n;
	uint32_t i;

	if (!r->nchecks)
		return -1;
	for (d = r->doms; d; d = d->next) {
		for (i = 0; i < d->reg.capacity && r->nchecks; i++) {
			n = d->slots[i];
			if (!n || !n->check_ns)
				continue;
			if (n->check_ns > now) {
				next = n->check_ns < next ? n->check_ns : next;
				continue;
			}
			/* Watched nodes are checked once; polled ones forever,
			 * within their owner's budget. */
			if (!n->proc && !owner_spend(r, d->owner, UNITS_CHECK)) {
				int64_t when = owner_ready_ns(r, d->owner);

				when = when ? when : now; /* its second, or the next turn */
				next = when < next ? when : next;
				continue;
			}
			if (n->proc)
				check_at(r, n, 0);
			else
				poll_at(r, n, now);
			if (n->check_ns && n->check_ns < next)
				next = n->check_ns;
			node_check(r, n, "check");
			if (d->slots[i] == n) /* still mirrored */
				node_replace(r, n);
		}
	}
	if (!r->nchecks || next == INT64_MAX)
		return -1;
	return (int)((next - now) / 1000000) + 1;
}

/* ---------------------------------------------------- deaths */

/* An event whose tgid we do not mirror: a previous run of the reaper put it
 * in the (pinned) map. Its cookie names (domain, slot, gen). */
static void stale_event(struct reaper *r, pid_t gpid, uint64_t cookie, const struct exit_info *ei)
{
	uint32_t slot = (uint32_t)(cookie >> 32) & 0xffff, gen = (uint32_t)cookie;
	struct rdom *d = NULL;

	rlogv(r, "event pid=%d cookie=%016llx: not a mirrored process", (int)gpid,
	      (unsigned long long)cookie);
	if (!cookie)
		return;
	while ((d = dom_by_nonce16(r, (uint32_t)(cookie >> 48), d))) {
		if (slot >= d->reg.capacity)
			continue;
		if (d->slots[slot] && d->slots[slot]->gen == gen)
			node_reap(r, d->slots[slot], ei);
		else
			dom_reclaim(r, d, slot, gen, ei, false);
	}
}

/*
 * Reclaim the nodes of p, which has exited.
 *
 * From the probe (@final false), at do_exit()'s exit tracepoint: the process
 * still holds its files, hence the nodes' liveness locks, for as long as
 * exit_mm() and exit_files() take. A node whose slot names this very process
 * (the event's start time equals the slot's: pid + start time, so no older or
 * newer holder of the pid), and whose process was seen holding the node's
 * file when it was watched (proc_holds: the slot could lie), is reclaimed
 * at once, without waiting for its lock (shmrpc__reclaim_exited). Any other node (start time unknown, or another
 * one: a reused pid, a time namespace) is reclaimed if its lock is already
 * free, else it stays in p->nodes until p's pidfd says the exit is complete.
 *
 * From the pidfd (@final true): the exit is complete; the lock decides, and a
 * node still locked (by some other process) is mirrored afresh.
 */
static void proc_reap(struct reaper *r, struct rproc *p, const struct exit_info *ei, bool final)
{
	struct rnode *n = p->nodes, *next, *locked = NULL;
	bool exited;
	struct rdom *d;
	uint32_t slot, gen;

	p->nodes = NULL;
	for (; n; n = next) {
		next = n->proc_next;
		d = n->dom;
		exited = !final && n->held && ei->start_ticks && n->start_time == ei->start_ticks;
		if (!final && !exited && dom_node_alive(r, d, n->slot, n->gen, NULL) == 1) {
			n->proc_next = locked;
			locked = n;
			continue;
		}
		slot = n->slot;
		gen = n->gen;
		n->proc = NULL;
		node_free(r, n);
		/* 0: alive after all (its lock is held by some other process)
		 * or its slot moved on: the next sync mirrors what is there. */
		if (dom_reclaim(r, d, slot, gen, ei, exited) != 1)
			d->dirty = true;
	}
	p->nodes = locked;
}

void procs_exited(struct reaper *r, pid_t gpid, uint64_t cookie, const struct exit_info *ei)
{
	struct rproc *p = proc_find(r, gpid);

	if (!p) {
		stale_event(r, gpid, cookie, ei);
		return;
	}
	proc_reap(r, p, ei, false);
	if (!p->nodes) {
		proc_put(r, p);
		return;
	}
	/* Its pidfd becomes readable at exit_notify(), after the files are
	 * released. Opened now, it is the dying process's, unless that one
	 * was reaped already and the pid reused: then it is the live holder's,
	 * and readable when that one dies, which is just as right. */
	rlogov(r, p->owner, "exiting pid=%d: a node's lock is still held; waiting for its pidfd",
	       (int)gpid);
	p->exiting = true;
	p->ei = *ei;
	if (p->pidfd < 0 && proc_pidfd_open(r, p)) {
		/* Reaped already (so its files are closed), or no pidfd at
		 * all: the lock decides now. */
		proc_reap(r, p, ei, true);
		proc_put(r, p);
	}
}

void procs_pidfd(struct reaper *r, pid_t gpid)
{
	struct exit_info ei = { "pidfd", -1, 0, rnow_ns(), 0 };
	struct rproc *p = proc_find(r, gpid);
	struct pollfd pfd;

	/* An event of a pidfd that an earlier entry of the same batch closed,
	 * whose pid now belongs to a new, live process: not a death. */
	if (!p || p->pidfd < 0)
		return;
	pfd = (struct pollfd){ p->pidfd, POLLIN, 0 };
	if (poll(&pfd, 1, 0) != 1)
		return;
	proc_reap(r, p, p->exiting ? &p->ei : &ei, true);
	proc_put(r, p);
}
