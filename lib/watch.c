// SPDX-License-Identifier: MIT
/*
 * Peers' deaths, learned without a daemon: a node holds a pidfd of every
 * peer it has a ring with (either direction), and one watcher thread per
 * process, started with the process's first node, sleeps in poll(2) on all
 * of them. When one becomes readable its process is gone: the watcher
 * reclaims the peer's slot, which closes every ring of the dead node
 * (RX_CLOSED / TX_CLOSED) and wakes whoever sleeps on them. So a send
 * blocked on the full ring of a dead receiver returns -EPIPE at once, later
 * sends to it too, and a receiver drains what a dead sender had published,
 * then drops its ring. Starting the thread at join keeps its cost (tens of
 * microseconds in a VM) off the first send.
 *
 * A pidfd is opened from the pid the peer recorded in its slot, which means
 * something only in our pid namespace. The pidfd is trusted once the peer's
 * liveness lock is seen held *after* opening it: a pid cannot be reused
 * while its process lives, so the pidfd names that process. Peers in
 * another pid namespace (or where pidfd_open is missing) are checked by
 * their liveness lock instead, every WATCH_POLL_MS: slower, never wrong.
 * Peers in our own process are not watched: they cannot die without us.
 *
 * The watcher holds the table lock while it reclaims, and shmrpc_close
 * drops its node's entries under the same lock first, so the watcher never
 * touches a node being freed. Reclaiming is idempotent (under the registry
 * lock, the slot's generation is checked), so the reaper, other watchers
 * and lazy reclaim may race us.
 *
 * fork(): the child has no watcher thread; the atfork handlers (node.c)
 * take the table lock around fork and reset the table in the child, whose
 * first node starts a watcher of its own.
 *
 * $SHMRPC_WATCH=0 turns the watcher off in this process, like
 * $SHMRPC_SAFETY_MS a knob for tests and benchmarks: they measure
 * shmrpc-reaper alone, and with watching peers they could not tell who
 * cleaned up. A deployment has no reason to set it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define WATCH_POLL_MS 100 /* liveness-lock checks of peers without a pidfd */

struct peer {
	struct shmrpc_node *n; /* the watching node */
	uint32_t slot, gen;    /* the watched peer */
	int pidfd;	       /* -1: check the liveness lock instead */
};

static struct {
	pthread_mutex_t lock;
	struct peer *v; /* under lock */
	uint32_t n, cap;
	int evfd; /* tells the thread the set changed */
	bool started;
	pthread_t thread;
	/* the thread's own copy of the set, as poll(2) wants it */
	struct pollfd *fds;
	struct peer *snap;
	uint32_t snap_cap;
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .evfd = -1 };

static int pidfd_of(const struct shmrpc__reg *r, uint32_t slot, const struct shmrpc__slot_view *v,
		    uint64_t my_pidns)
{
	int fd;

	if (v->pidns != my_pidns || v->pid <= 0)
		return -1;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)v->pid, 0);
	if (fd < 0)
		return -1;
	/* Still alive after we opened it: then the pid is still the node's.
	 * Dead already: -1, so the watcher finds it by its lock, at once. */
	if (shmrpc__node_alive(r, slot, v->gen) != 1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Under W.lock: drop entry @i. */
static void drop(uint32_t i)
{
	if (W.v[i].pidfd >= 0)
		close(W.v[i].pidfd);
	W.v[i] = W.v[--W.n];
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

/* Copy the set into W.fds/W.snap: [0] is the eventfd. 0: no memory. */
static uint32_t snapshot(bool *lockers)
{
	uint32_t i, k = 1;
	void *p;

	pthread_mutex_lock(&W.lock);
	if (W.snap_cap < W.n + 1) {
		if ((p = realloc(W.fds, (W.n + 1) * sizeof(*W.fds))))
			W.fds = p;
		if (p && (p = realloc(W.snap, (W.n + 1) * sizeof(*W.snap))))
			W.snap = p;
		if (p)
			W.snap_cap = W.n + 1;
	}
	*lockers = false;
	if (W.snap_cap >= W.n + 1) {
		W.fds[0] = (struct pollfd){ W.evfd, POLLIN, 0 };
		for (i = 0; i < W.n; i++) {
			W.snap[k] = W.v[i];
			W.fds[k++] = (struct pollfd){ W.v[i].pidfd, POLLIN, 0 };
			*lockers |= W.v[i].pidfd < 0;
		}
	} else {
		k = 0;
	}
	pthread_mutex_unlock(&W.lock);
	return k;
}

/*
 * Peer @p's pidfd fired (@fired), or it has none: if its watching node still
 * watches it and it is dead, reclaim it. All under W.lock: shmrpc_close
 * drops its node's entries under it before freeing the node.
 */
static void check(const struct peer *p, bool fired)
{
	struct peer *e = NULL;
	uint32_t i;

	pthread_mutex_lock(&W.lock);
	for (i = 0; i < W.n && !e; i++)
		if (W.v[i].n == p->n && W.v[i].slot == p->slot && W.v[i].gen == p->gen)
			e = &W.v[i];
	if (!e || (!fired && shmrpc__node_alive(e->n->reg, e->slot, e->gen) != 0))
		goto out;
	shmrpc__reclaim_locked(e->n->reg, e->slot, e->gen);
	if (shmrpc__node_alive(e->n->reg, e->slot, e->gen) != 1) {
		drop((uint32_t)(e - W.v));
	} else if (e->pidfd >= 0) {
		/* Alive after all (never seen): watch its lock instead, rather
		 * than poll a descriptor that keeps firing. */
		close(e->pidfd);
		e->pidfd = -1;
	}
out:
	pthread_mutex_unlock(&W.lock);
}

static void *watcher(void *arg)
{
	uint32_t nr, i;
	bool lockers;
	eventfd_t e;

	(void)arg;
	for (;;) {
		nr = snapshot(&lockers);
		if (!nr) /* out of memory: try again a little later */
			poll(NULL, 0, WATCH_POLL_MS);
		else
			poll(W.fds, nr, lockers ? WATCH_POLL_MS : -1);
		if (nr && (W.fds[0].revents & POLLIN))
			eventfd_read(W.evfd, &e);
		for (i = 1; i < nr; i++)
			if (W.snap[i].pidfd < 0 || W.fds[i].revents)
				check(&W.snap[i], W.snap[i].pidfd >= 0);
	}
	return NULL;
}

static bool watch_disabled(void)
{
	const char *s = getenv("SHMRPC_WATCH");

	return s && !strcmp(s, "0");
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
	if (W.evfd < 0)
		W.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (W.evfd < 0) {
		rc = -errno;
		goto out;
	}
	/* The watcher takes no signals: they belong to the application. It
	 * lives as long as the process (a detached thread, mostly asleep). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&W.thread, NULL, watcher, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc) {
		pthread_detach(W.thread);
		W.started = true;
	}
out:
	pthread_mutex_unlock(&W.lock);
	return rc;
}

int shmrpc__watch_peer(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	struct shmrpc__slot_view v;
	uint32_t i;
	int rc = 0;

	if (watch_disabled())
		return 0;
	if (shmrpc__reg_read(n->reg, slot, &v) || v.state != SHMRPC__SLOT_LIVE || v.gen != gen)
		return 0; /* changing or gone: the reader of its rings sees it */
	if (v.pidns == n->proc.pidns && v.pid == n->proc.pid)
		return 0;	    /* ours: it cannot die without us */
	rc = shmrpc__watch_start(); /* started at join already, normally */
	if (rc)
		return rc;
	pthread_mutex_lock(&W.lock);
	for (i = 0; i < W.n; i++)
		if (W.v[i].n == n && W.v[i].slot == slot && W.v[i].gen == gen)
			goto out; /* watched already */
	prune(n);
	if (W.n == W.cap) {
		struct peer *p = realloc(W.v, (W.cap ? W.cap * 2 : 8) * sizeof(*p));

		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		W.v = p;
		W.cap = W.cap ? W.cap * 2 : 8;
	}
	W.v[W.n++] = (struct peer){ n, slot, gen, pidfd_of(n->reg, slot, &v, n->proc.pidns) };
	eventfd_write(W.evfd, 1);
out:
	pthread_mutex_unlock(&W.lock);
	return rc;
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
	pthread_mutex_unlock(&W.lock);
}

void shmrpc__watch_fork_prepare(void)
{
	pthread_mutex_lock(&W.lock);
}

void shmrpc__watch_fork_parent(void)
{
	pthread_mutex_unlock(&W.lock);
}

/* In the child: no watcher runs; the parent's nodes are unusable here.
 * The eventfd is the parent's open file: a watcher of ours reading it
 * would eat the parent's notifications. The child makes its own. */
void shmrpc__watch_fork_child(void)
{
	while (W.n)
		drop(W.n - 1);
	if (W.evfd >= 0)
		close(W.evfd);
	W.evfd = -1;
	W.started = false;
	pthread_mutex_unlock(&W.lock);
}
