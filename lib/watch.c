// SPDX-License-Identifier: MIT
/*
 * Peers' deaths, learned without a daemon: a node holds a pidfd of every
 * peer it has a ring with (either direction), and one watcher thread per
 * process, started with the process's first node, sleeps in epoll_wait(2)
 * on all of them. When one becomes readable its process is gone: the
 * watcher reclaims the peer's slot, which closes every ring of the dead node
 * (RX_CLOSED / TX_CLOSED) and wakes whoever sleeps on them. So a send
 * blocked on the full ring of a dead receiver returns -EPIPE at once, later
 * sends to it too, and a receiver drains what a dead sender had published,
 * then drops its ring. Starting the thread at join keeps its cost (tens of
 * microseconds in a VM) off the first send, and epoll lets a connecting
 * thread add a pidfd with one epoll_ctl(2), without waking the watcher
 * (waking it cost a first send ~30 us here).
 *
 * A receiver learns of a sender when it opens the sender's ring, in a
 * receiving call: there it only queues "watch (slot, gen)" (a short-locked
 * queue, and a poke of the watcher's eventfd), and the watcher thread does
 * the rest (the registry read, pidfd_open, the table under its lock), off
 * the receive path. A connecting sender, which has opened the receiver's
 * pidfd already, adds it itself: one epoll_ctl, no wake of the watcher.
 *
 * A pidfd is opened from the pid the peer recorded in its slot, which means
 * something only in our pid namespace. The pidfd is trusted once the peer's
 * liveness lock is seen held *after* opening it: a pid cannot be reused
 * while its process lives, so the pidfd names that process. A connecting
 * sender opens it before it checks the receiver's lock anyway (connect.c,
 * shmrpc__watch_pidfd), and hands it over. Peers in another pid namespace
 * (or where pidfd_open is missing) are checked by their liveness lock
 * instead, every WATCH_POLL_MS: slower, never wrong. Peers in our own
 * process are not watched: they cannot die without us.
 *
 * The watcher holds the table lock while it reclaims and while it serves
 * the queue, and shmrpc_close drops its node's entries and queued requests
 * under the same lock first, so the watcher never touches a node being
 * freed. Lock order: the table's, then the queue's. An event names its entry by a number never
 * reused (epoll_data), so an event of an entry dropped meanwhile finds
 * nothing. Reclaiming is idempotent (under the registry lock, the slot's
 * generation is checked), so the reaper, other watchers and lazy reclaim
 * may race us.
 *
 * fork(): the child has no watcher thread; the atfork handlers (node.c)
 * take both locks around fork and reset the table and queue in the child, whose
 * first node starts a watcher of its own. The child's epoll descriptor is
 * the parent's epoll instance: the child only closes its copies (an
 * EPOLL_CTL_DEL there would remove the parent's entries).
 *
 * $SHMRPC_WATCH=0 turns the watcher off in this process, like
 * $SHMRPC_SAFETY_MS a knob for tests and benchmarks: they measure
 * shmrpc-reaper alone, and with watching peers they could not tell who
 * cleaned up. A deployment has no reason to set it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "watch.h"
#include "layout.h"
#include "node_types.h"
#include "nodeseg.h"
#include "proc.h"
#include "reclaim.h"
#include "registry.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define WATCH_POLL_MS 100 /* liveness-lock checks of peers without a pidfd */
#define WATCH_EVENTS 32	  /* events taken per epoll_wait */
#define EV_WAKE 0	  /* epoll_data of the eventfd; entries count from 1 */

struct peer {
	struct shmrpc_node *n; /* the watching node */
	uint32_t slot, gen;    /* the watched peer */
	int pidfd;	       /* -1: check the liveness lock instead */
	uint64_t id;	       /* its epoll_data, never reused */
};

static struct {
	pthread_mutex_t lock;
	struct peer *v; /* under lock */
	uint32_t n, cap;
	uint32_t lockers; /* entries without a pidfd */
	uint64_t next_id;
	int epfd; /* the pidfds and the eventfd */
	int evfd; /* tells the thread that lockers appeared */
	bool started;
	pthread_t thread;
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .evfd = -1 };

/* A receiver's request: watch peer (slot, gen) for node n. */
struct ask {
	struct shmrpc_node *n;
	uint32_t slot, gen;
};

/* Requests for the watcher thread, from the receive path: held for a push
 * or a swap, never across a system call. */
static struct {
	pthread_mutex_t lock;
	struct ask *v; /* under lock */
	uint32_t n, cap;
	int evfd; /* W.evfd once the watcher runs, else -1: under lock */
} Q = { .lock = PTHREAD_MUTEX_INITIALIZER, .evfd = -1 };

/* $SHMRPC_WATCH=0: no watcher in this process (see the top). */
static bool watch_disabled(void)
{
	const char *s = getenv("SHMRPC_WATCH");

	return s && !strcmp(s, "0");
}

/* A pidfd of the process recorded in view @v, or -1 (another pid
 * namespace, our own process, no pidfd_open). Not trusted until the node's
 * liveness lock is seen held after this call. */
static int pidfd_open_view(const struct shmrpc_node *n, const struct shmrpc__slot_view *v)
{
	if (v->pidns != n->proc.pidns || v->pid <= 0 || v->pid == n->proc.pid)
		return -1;
	return (int)syscall(SYS_pidfd_open, (pid_t)v->pid, 0);
}

int shmrpc__watch_pidfd(const struct shmrpc_node *n, const struct shmrpc__slot_view *v)
{
	return watch_disabled() ? -1 : pidfd_open_view(n, v);
}

/* Under W.lock: stop polling entry @p's pidfd (not in a forked child). */
static void unpoll(struct peer *p)
{
	if (p->pidfd < 0)
		return;
	epoll_ctl(W.epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
	close(p->pidfd);
	p->pidfd = -1;
}

/* Under W.lock: drop entry @i. */
static void drop(uint32_t i)
{
	if (W.v[i].pidfd >= 0)
		unpoll(&W.v[i]);
	else
		W.lockers--;
	W.v[i] = W.v[--W.n];
}

/* Under W.lock: watch entry @p by its liveness lock from now on. */
static void to_locker(struct peer *p)
{
	unpoll(p);
	if (!W.lockers++)
		eventfd_write(W.evfd, 1); /* it may wait without a timeout */
}

/* Under W.lock: drop @n's peers that left (their slot changed). */
static void prune(struct shmrpc_node *n)
{
	struct shmrpc__slot_view v;
	uint32_t i = 0;

	while (i < W.n) {
		struct peer *p = &W.v[i];

		if (p->n == n && shmrpc__reg_read(n->reg, p->slot, &v) == 0 &&
		    (v.state == SHMRPC__SLOT_FREE || v.gen != p->gen)) {
			drop(i);
			continue;
		}
		i++;
	}
}

/* Is peer (slot, gen) one to watch: LIVE in that generation (changing or
 * gone: the reader of its rings sees it), and not of our own process (it
 * cannot die without us)? Its view in *v. */
static bool peer_wanted(struct shmrpc_node *n, uint32_t slot, uint32_t gen,
			struct shmrpc__slot_view *v)
{
	if (shmrpc__reg_read(n->reg, slot, v) || v->state != SHMRPC__SLOT_LIVE || v->gen != gen)
		return false;
	return !(v->pidns == n->proc.pidns && v->pid == n->proc.pid);
}

/* @pidfd (from shmrpc__watch_pidfd, checked since), or one opened now and
 * trusted only if the node is seen alive after the open; -1 when there is
 * none (dead already: the watcher then finds it by its lock). */
static int peer_pidfd(struct shmrpc_node *n, uint32_t slot, uint32_t gen,
		      const struct shmrpc__slot_view *v, int pidfd)
{
	if (pidfd >= 0)
		return pidfd;
	pidfd = pidfd_open_view(n, v);
	if (pidfd >= 0 && shmrpc__node_alive(n->reg, slot, gen) != 1) {
		close(pidfd);
		pidfd = -1;
	}
	return pidfd;
}

/* Under W.lock: watch peer (slot, gen) for @n by @pidfd (or its lock if
 * -1), unless it is watched already. Takes @pidfd in every case. */
static int peer_add(struct shmrpc_node *n, uint32_t slot, uint32_t gen, int pidfd)
{
	struct peer *e;
	uint32_t i;
	int rc = 0;

	for (i = 0; i < W.n; i++)
		if (W.v[i].n == n && W.v[i].slot == slot && W.v[i].gen == gen)
			goto out_close; /* watched already */
	prune(n);
	if (W.n == W.cap) {
		struct peer *p = realloc(W.v, (W.cap ? W.cap * 2 : 8) * sizeof(*p));

		if (!p) {
			rc = -ENOMEM;
			goto out_close;
		}
		W.v = p;
		W.cap = W.cap ? W.cap * 2 : 8;
	}
	e = &W.v[W.n++];
	*e = (struct peer){ n, slot, gen, pidfd, ++W.next_id };
	/* Level-triggered: a pidfd of a process that died before this call
	 * is reported at once. */
	if (e->pidfd < 0 ||
	    epoll_ctl(W.epfd, EPOLL_CTL_ADD, e->pidfd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = e->id })) {
		if (e->pidfd >= 0)
			close(e->pidfd);
		e->pidfd = -1;
		if (!W.lockers++)
			eventfd_write(W.evfd, 1);
	}
	return 0;
out_close:
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

/*
 * Under W.lock: entry @i's pidfd fired (@fired), or it has none. If it is
 * dead, reclaim it. shmrpc_close drops its node's entries under W.lock
 * before freeing the node, so e->n is valid here. Returns true if entry
 * @i was dropped (another entry is at @i now).
 */
static bool check(uint32_t i, bool fired)
{
	struct peer *e = &W.v[i];

	if (!fired && shmrpc__node_alive(e->n->reg, e->slot, e->gen) != 0)
		return false;
	if (shmrpc__reclaim_locked(e->n->reg, e->slot, e->gen) >= 0 &&
	    shmrpc__node_alive(e->n->reg, e->slot, e->gen) == 0) {
		drop(i);
		return true;
	}
	/* Alive after all (never seen), or not reclaimed: the lock, its
	 * liveness or its files could not be had (-errno). Watch its lock
	 * instead, every WATCH_POLL_MS, rather than poll a descriptor that
	 * keeps firing: a failed reclaim is tried again then. (It was dropped
	 * and never reclaimed: found by tests/test_fault.c, peer_death.) */
	if (e->pidfd >= 0)
		to_locker(e);
	return false;
}

static void fired(uint64_t id)
{
	uint32_t i;

	pthread_mutex_lock(&W.lock);
	for (i = 0; i < W.n; i++)
		if (W.v[i].id == id) {
			check(i, true);
			break;
		}
	pthread_mutex_unlock(&W.lock);
}

static bool check_lockers(void)
{
	uint32_t i = 0;
	bool any;

	pthread_mutex_lock(&W.lock);
	while (i < W.n)
		if (W.v[i].pidfd >= 0 || !check(i, false))
			i++;
	any = W.lockers > 0;
	pthread_mutex_unlock(&W.lock);
	return any;
}

/* The watcher thread: serve the queued requests, under W.lock from the
 * swap to the last one, so that shmrpc_close (watch_forget) waits for
 * them or finds them still queued. */
static void serve_queue(void)
{
	struct shmrpc__slot_view v;
	struct ask *a;
	uint32_t i, nr;

	pthread_mutex_lock(&W.lock);
	pthread_mutex_lock(&Q.lock);
	a = Q.v;
	nr = Q.n;
	Q.v = NULL;
	Q.n = Q.cap = 0;
	pthread_mutex_unlock(&Q.lock);
	for (i = 0; i < nr; i++)
		if (peer_wanted(a[i].n, a[i].slot, a[i].gen, &v))
			peer_add(a[i].n, a[i].slot, a[i].gen,
				 peer_pidfd(a[i].n, a[i].slot, a[i].gen, &v, -1));
	pthread_mutex_unlock(&W.lock);
	free(a);
}

static void *watcher(void *arg)
{
	struct epoll_event ev[WATCH_EVENTS];
	bool lockers = false;
	eventfd_t e;
	int nr, i;

	(void)arg;
	for (;;) {
		nr = epoll_wait(W.epfd, ev, WATCH_EVENTS, lockers ? WATCH_POLL_MS : -1);
		for (i = 0; i < nr; i++) {
			if (ev[i].data.u64 == EV_WAKE) {
				eventfd_read(W.evfd, &e);
				serve_queue();
			} else {
				fired(ev[i].data.u64);
			}
		}
		lockers = check_lockers();
	}
	return NULL;
}

/*
 * Every node holds a descriptor (its liveness lock), so the process's
 * descriptor table grows, doubling, as nodes join. Once a second thread
 * shares the table, each growth waits for an RCU grace period
 * (expand_fdtable): 6-15 ms in a VM, at the joins that passed 256 and 512
 * descriptors. With one thread it takes microseconds: grow the table once,
 * to FDTAB_ENTRIES (or RLIMIT_NOFILE's soft limit, if lower), before the
 * watcher becomes the second thread; a process that has threads already
 * would wait for the grace period now, at its first join: it is left as
 * it is. About 8 bytes of kernel memory per entry. Best effort.
 */
#define FDTAB_ENTRIES 4096

static void fdtab_grow(int fd)
{
	struct rlimit rl;
	rlim_t k = FDTAB_ENTRIES;
	int big;

	if (getrlimit(RLIMIT_NOFILE, &rl) || shmrpc__proc_threads() != 1)
		return;
	if (rl.rlim_cur < k)
		k = rl.rlim_cur;
	if (k < 2)
		return;
	big = fcntl(fd, F_DUPFD_CLOEXEC, (int)(k - 1)); /* the lowest free from k - 1 */
	if (big >= 0)
		close(big);
}

int shmrpc__watch_start(void)
{
	sigset_t all, old;
	int rc = 0;

	if (watch_disabled())
		return 0;
	pthread_mutex_lock(&W.lock);
	if (W.started)
		goto out;
	if (W.epfd < 0)
		W.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (W.epfd >= 0 && W.evfd < 0) {
		W.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (W.evfd >= 0 &&
		    epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.evfd,
			      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_WAKE })) {
			close(W.evfd);
			W.evfd = -1;
		}
	}
	if (W.epfd < 0 || W.evfd < 0) {
		rc = -errno;
		goto out;
	}
	fdtab_grow(W.epfd);
	/* The watcher takes no signals: they belong to the application. It
	 * lives as long as the process (a detached thread, mostly asleep). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&W.thread, NULL, watcher, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc) {
		pthread_detach(W.thread);
		W.started = true;
		pthread_mutex_lock(&Q.lock);
		Q.evfd = W.evfd; /* receivers may queue requests now */
		pthread_mutex_unlock(&Q.lock);
	}
out:
	pthread_mutex_unlock(&W.lock);
	return rc;
}

int shmrpc__watch_peer(struct shmrpc_node *n, uint32_t slot, uint32_t gen, int pidfd)
{
	struct shmrpc__slot_view v;
	int rc = 0;

	if (watch_disabled() || !peer_wanted(n, slot, gen, &v))
		goto out_close;
	rc = shmrpc__watch_start(); /* started at join already, normally */
	if (rc)
		goto out_close;
	pidfd = peer_pidfd(n, slot, gen, &v, pidfd);
	pthread_mutex_lock(&W.lock);
	rc = peer_add(n, slot, gen, pidfd);
	pthread_mutex_unlock(&W.lock);
	return rc;
out_close:
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

/* Queue a request: the eventfd to poke, or -ESRCH (no watcher runs),
 * -ENOMEM. */
static int queue_push(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	struct ask *v;
	int rc;

	pthread_mutex_lock(&Q.lock);
	rc = Q.evfd < 0 ? -ESRCH : 0;
	if (!rc && Q.n == Q.cap) {
		v = realloc(Q.v, (Q.cap ? Q.cap * 2 : 8) * sizeof(*v));
		if (v) {
			Q.v = v;
			Q.cap = Q.cap ? Q.cap * 2 : 8;
		} else {
			rc = -ENOMEM;
		}
	}
	if (!rc) {
		Q.v[Q.n++] = (struct ask){ n, slot, gen };
		rc = Q.evfd;
	}
	pthread_mutex_unlock(&Q.lock);
	return rc;
}

void shmrpc__watch_queue(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	int fd;

	if (watch_disabled())
		return;
	fd = queue_push(n, slot, gen);
	/* No watcher: it could not start at join (rare); try again, as a
	 * connecting sender does. */
	if (fd == -ESRCH && !shmrpc__watch_start())
		fd = queue_push(n, slot, gen);
	if (fd >= 0)
		eventfd_write(fd, 1);
}

void shmrpc__watch_forget(struct shmrpc_node *n)
{
	uint32_t i = 0;

	pthread_mutex_lock(&W.lock);
	while (i < W.n) {
		if (W.v[i].n == n)
			drop(i);
		else
			i++;
	}
	pthread_mutex_lock(&Q.lock);
	for (i = 0; i < Q.n;) {
		if (Q.v[i].n == n)
			Q.v[i] = Q.v[--Q.n];
		else
			i++;
	}
	pthread_mutex_unlock(&Q.lock);
	pthread_mutex_unlock(&W.lock);
}

void shmrpc__watch_fork_prepare(void)
{
	pthread_mutex_lock(&W.lock);
	pthread_mutex_lock(&Q.lock);
}

void shmrpc__watch_fork_parent(void)
{
	pthread_mutex_unlock(&Q.lock);
	pthread_mutex_unlock(&W.lock);
}

/* In the child: no watcher runs; the parent's nodes are unusable here, and
 * so are the requests queued for them.
 * The epoll instance and the eventfd are the parent's open files: the
 * child closes its copies (never EPOLL_CTL_DEL: that would change the
 * parent's set) and makes its own when it needs them. */
void shmrpc__watch_fork_child(void)
{
	uint32_t i;

	for (i = 0; i < W.n; i++)
		if (W.v[i].pidfd >= 0)
			close(W.v[i].pidfd);
	W.n = 0;
	W.lockers = 0;
	if (W.evfd >= 0)
		close(W.evfd);
	if (W.epfd >= 0)
		close(W.epfd);
	W.evfd = W.epfd = -1;
	W.started = false;
	Q.n = 0; /* requests of the parent's nodes */
	Q.evfd = -1;
	pthread_mutex_unlock(&Q.lock);
	pthread_mutex_unlock(&W.lock);
}
