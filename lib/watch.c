// SPDX-License-Identifier: MIT
/*
 * Peers' deaths, learned without a daemon: a node holds a pidfd of every
 * peer it has a ring with (either direction), and a watcher thread, started
 * with the first peer, sleeps in poll(2) on them. When one becomes readable
 * its process is gone: the watcher reclaims the peer's slot, which closes
 * every ring of the dead node (RX_CLOSED / TX_CLOSED) and wakes whoever
 * sleeps on them. So a send blocked on the full ring of a dead receiver
 * returns -EPIPE at once, later sends to it too, and a receiver drains what a
 * dead sender had published, then drops its ring.
 *
 * A pidfd is opened from the pid the peer recorded in its slot, which means
 * something only in our pid namespace. The pidfd is trusted once the peer's
 * liveness lock is seen held *after* opening it: a pid cannot be reused
 * while its process lives, so the pidfd names that process. Peers in
 * another pid namespace (or where pidfd_open is missing) are checked by
 * their liveness lock instead, every WATCH_POLL_MS: slower, never wrong.
 * Peers in our own process are not watched: they cannot die without us.
 *
 * Reclaiming is idempotent (under the registry lock, the slot's generation
 * is checked), so the reaper, other watchers and lazy reclaim may race us.
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
	uint32_t slot, gen;
	int pidfd; /* -1: check the liveness lock instead */
};

struct shmrpc__watch {
	pthread_mutex_t lock;
	struct peer *v; /* under lock */
	uint32_t n, cap;
	int evfd; /* tells the thread the set changed, or to quit */
	_Atomic bool quit;
	pthread_t thread;
	/* the watcher thread's own copy of the set, as poll(2) wants it */
	struct pollfd *fds;
	struct peer *peers;
	uint32_t fds_cap;
};

static int pidfd_of(const struct shmrpc__reg *r, uint32_t slot, const struct shmrpc__slot_view *v,
		    uint64_t my_pidns)
{
	int fd;

	if (v->pidns != my_pidns || v->pid <= 0)
		return -1;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)v->pid, 0);
	if (fd < 0)
		return -1;
	/* Still alive after we opened it: then the pid is still the node's. */
	if (shmrpc__node_alive(r, slot, v->gen) != 1) {
		close(fd);
		return -2; /* dead already */
	}
	return fd;
}

/* Under w->lock: drop peers that left (their slot changed). */
static void prune(struct shmrpc_node *n, struct shmrpc__watch *w)
{
	struct shmrpc__slot_view v;
	uint32_t i = 0;

	while (i < w->n) {
		struct peer *p = &w->v[i];

		if (shmrpc__reg_read(&n->reg, p->slot, &v) == 0 &&
		    (v.state == SHMRPC__SLOT_FREE || v.gen != p->gen)) {
			if (p->pidfd >= 0)
				close(p->pidfd);
			w->v[i] = w->v[--w->n];
			continue;
		}
		i++;
	}
}

static void watch_remove(struct shmrpc__watch *w, uint32_t slot, uint32_t gen)
{
	uint32_t i;

	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->n; i++)
		if (w->v[i].slot == slot && w->v[i].gen == gen) {
			if (w->v[i].pidfd >= 0)
				close(w->v[i].pidfd);
			w->v[i] = w->v[--w->n];
			break;
		}
	pthread_mutex_unlock(&w->lock);
}

/* Copy the set into w->fds/w->peers: [0] is the eventfd. 0: no memory. */
static uint32_t snapshot(struct shmrpc__watch *w, bool *lockers)
{
	uint32_t i, k = 1;
	void *p;

	pthread_mutex_lock(&w->lock);
	if (w->fds_cap < w->n + 1) {
		if ((p = realloc(w->fds, (w->n + 1) * sizeof(*w->fds))))
			w->fds = p;
		if (p && (p = realloc(w->peers, (w->n + 1) * sizeof(*w->peers))))
			w->peers = p;
		if (p)
			w->fds_cap = w->n + 1;
	}
	*lockers = false;
	if (w->fds_cap >= w->n + 1) {
		w->fds[0] = (struct pollfd){ w->evfd, POLLIN, 0 };
		for (i = 0; i < w->n; i++) {
			w->peers[k] = w->v[i];
			w->fds[k++] = (struct pollfd){ w->v[i].pidfd, POLLIN, 0 };
			*lockers |= w->v[i].pidfd < 0;
		}
	} else {
		k = 0;
	}
	pthread_mutex_unlock(&w->lock);
	return k;
}

static void *watcher(void *arg)
{
	struct shmrpc_node *n = arg;
	struct shmrpc__watch *w = n->watch;
	uint32_t nr, i;
	bool lockers;
	eventfd_t e;

	for (;;) {
		/* Acquire: pairs with watch_stop's release store. Checked
		 * before every poll: stop sets quit, then writes the eventfd,
		 * so a write consumed below is always followed by this check. */
		if (atomic_load_explicit(&w->quit, memory_order_acquire))
			break;
		nr = snapshot(w, &lockers);
		if (!nr) /* out of memory: try again a little later */
			poll(NULL, 0, WATCH_POLL_MS);
		else
			poll(w->fds, nr, lockers ? WATCH_POLL_MS : -1);
		if (nr && (w->fds[0].revents & POLLIN))
			eventfd_read(w->evfd, &e);
		for (i = 1; i < nr; i++) {
			struct peer *p = &w->peers[i];
			bool dead = p->pidfd >= 0 ? w->fds[i].revents != 0 :
				    shmrpc__node_alive(&n->reg, p->slot, p->gen) == 0;

			if (!dead)
				continue;
			shmrpc__reclaim_locked(&n->reg, p->slot, p->gen);
			watch_remove(w, p->slot, p->gen);
		}
	}
	return NULL;
}

static int watch_start(struct shmrpc_node *n)
{
	struct shmrpc__watch *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int rc;

	if (!w)
		return -ENOMEM;
	w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->evfd < 0) {
		rc = -errno;
		free(w);
		return rc;
	}
	pthread_mutex_init(&w->lock, NULL);
	n->watch = w;
	/* The watcher takes no signals: they belong to the application. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&w->thread, NULL, watcher, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		close(w->evfd);
		pthread_mutex_destroy(&w->lock);
		free(w);
		n->watch = NULL;
	}
	return rc;
}

static bool watch_disabled(void)
{
	const char *s = getenv("SHMRPC_WATCH");

	return s && !strcmp(s, "0");
}

int shmrpc__watch_peer(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	struct shmrpc__slot_view v;
	struct shmrpc__watch *w;
	uint32_t i;
	int fd, rc = 0;

	if (watch_disabled())
		return 0;
	if (shmrpc__reg_read(&n->reg, slot, &v) || v.state != SHMRPC__SLOT_LIVE || v.gen != gen)
		return 0; /* changing or gone: the reader of its rings sees it */
	if (v.pidns == n->proc.pidns && v.pid == n->proc.pid)
		return 0; /* ours: it cannot die without us */
	pthread_mutex_lock(&n->ctl_lock);
	if (!n->watch)
		rc = watch_start(n);
	pthread_mutex_unlock(&n->ctl_lock);
	if (rc)
		return rc;
	w = n->watch;
	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->n; i++)
		if (w->v[i].slot == slot && w->v[i].gen == gen)
			goto out; /* watched already */
	prune(n, w);
	if (w->n == w->cap) {
		struct peer *p = realloc(w->v, (w->cap ? w->cap * 2 : 8) * sizeof(*p));

		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		w->v = p;
		w->cap = w->cap ? w->cap * 2 : 8;
	}
	fd = pidfd_of(&n->reg, slot, &v, n->proc.pidns);
	/* -2: it died between its lookup and now; the watcher reclaims it
	 * at once through the liveness-lock path. */
	w->v[w->n++] = (struct peer){ slot, gen, fd >= 0 ? fd : -1 };
	eventfd_write(w->evfd, 1);
out:
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void shmrpc__watch_stop(struct shmrpc_node *n)
{
	struct shmrpc__watch *w = n->watch;
	uint32_t i;

	if (!w)
		return;
	if (!n->forked) { /* a fork's copy has no thread */
		/* Release: pairs with the watcher's acquire load. */
		atomic_store_explicit(&w->quit, true, memory_order_release);
		eventfd_write(w->evfd, 1);
		pthread_join(w->thread, NULL);
	}
	for (i = 0; i < w->n; i++)
		if (w->v[i].pidfd >= 0)
			close(w->v[i].pidfd);
	close(w->evfd);
	pthread_mutex_destroy(&w->lock);
	free(w->v);
	free(w->fds);
	free(w->peers);
	free(w);
	n->watch = NULL;
}
