// SPDX-License-Identifier: MIT
/*
 * The "futex" wake backend: plain system calls, for kernels where io_uring
 * is missing, disabled or filtered.
 *
 * The receiver sleeps in one futex_waitv(2) on its node's bell (and the
 * registry's epoch, for membership events) and on the data_seq words of
 * its first FUTEX_WAITV_MAX - 1 (or - 2) inbound rings; rings
 * beyond that are armed in bell mode (lib/wake.c), so their producers ring
 * the bell. On kernels before 5.16 (no futex_waitv) every ring is in bell
 * mode and the receiver sleeps in futex(2) on the bell alone. Wakes are one
 * FUTEX_WAKE each.
 *
 * shmrpc_fd: plain futexes cannot make a file descriptor readable, so the
 * simplest correct thing is a helper thread, started by the first
 * shmrpc_fd. When the receiving thread parks (it armed every word and found
 * nothing), the helper takes a copy of the wait vector and sleeps on it;
 * when a wake (or a word that moved meanwhile) ends its sleep, it writes the
 * eventfd. It sleeps on the same armed words as a receiver would, so wakers
 * need to know nothing of it. It costs one thread wake-up more than the
 * uring backend's registered eventfd.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wake_futex.h"
#include "backend.h"
#include "clock.h"
#include "futex.h"
#include "node_types.h"
#include "wake.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

struct futex_be {
	struct futex_waitv wv[FUTEX_WAITV_MAX];
	/* shmrpc_fd helper */
	pthread_t helper;
	bool helper_on, quit;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool parked; /* under lock: wv_park is current */
	struct futex_waitv wv_park[FUTEX_WAITV_MAX];
	uint32_t nr_park;
	int evfd;
};

static bool have_waitv(void)
{
	/* An empty vector is -EINVAL where the call exists. */
	return syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0) < 0 && errno != ENOSYS;
}

static int futex_init(struct shmrpc_node *n)
{
	struct futex_be *fb = calloc(1, sizeof(*fb));

	if (!fb)
		return -ENOMEM;
	pthread_mutex_init(&fb->lock, NULL);
	pthread_cond_init(&fb->cond, NULL);
	fb->evfd = -1;
	n->be_priv = fb;
	/* The bell, the registry's epoch for a node with events, the rings. */
	n->ring_words = have_waitv() ? FUTEX_WAITV_MAX - 1 - (n->ev_mask != 0) : 0;
	return 0;
}

static void futex_fini(struct shmrpc_node *n)
{
	struct futex_be *fb = n->be_priv;

	if (!fb)
		return;
	if (fb->helper_on && !n->forked) {
		pthread_mutex_lock(&fb->lock);
		fb->quit = true;
		pthread_cond_signal(&fb->cond);
		pthread_mutex_unlock(&fb->lock);
		/* it may sleep in futex_waitv: the bell always ends that */
		shmrpc__word_bump(&n->seg->bell);
		shmrpc__futex_wake(&n->seg->bell);
		pthread_join(fb->helper, NULL);
	}
	pthread_cond_destroy(&fb->cond);
	pthread_mutex_destroy(&fb->lock);
	free(fb);
	n->be_priv = NULL;
}

static int futex_ring_add(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	(void)n;
	(void)r;
	return 0; /* the wait vector is rebuilt at every sleep */
}

static void futex_ring_del(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	(void)n;
	(void)r;
}

static void wv_set(struct futex_waitv *w, _Atomic uint32_t *word, uint32_t val)
{
	w->val = val;
	w->uaddr = (uintptr_t)word;
	w->flags = FUTEX_32; /* FUTEX2_SIZE_U32, shared: never FUTEX2_PRIVATE */
	w->__reserved = 0;
}

/* The wait vector of the armed words: the bell, the registry's epoch (a
 * node with events, when futex_waitv exists), then the watched rings. */
static uint32_t build(struct shmrpc_node *n, struct futex_waitv *wv)
{
	uint32_t i, nr = 1;

	wv_set(&wv[0], &n->seg->bell, n->bell_armed);
	if (n->ev_word && n->ring_words)
		wv_set(&wv[nr++], n->ev_word, n->ev_armed);
	for (i = 0; i < n->in.n && i < n->ring_words; i++)
		wv_set(&wv[nr++], &n->in.v[i]->q.hdr->data_seq, n->in.v[i]->armed);
	return nr;
}

/* Wait on @nr words; one (the bell alone: no futex_waitv on this kernel,
 * n->ring_words == 0) is a plain futex wait. 0 woken or changed. */
static int waitv(struct futex_waitv *wv, uint32_t nr, int64_t deadline)
{
	struct timespec ts, *tsp = NULL;

	if (nr == 1)
		return shmrpc__futex_wait((_Atomic uint32_t *)(uintptr_t)wv[0].uaddr, wv[0].val,
					  deadline);
	if (deadline != SHMRPC__NEVER) {
		shmrpc__ts_from_ns(&ts, deadline);
		tsp = &ts;
	}
	if (syscall(SYS_futex_waitv, wv, nr, 0, tsp, CLOCK_MONOTONIC) >= 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

static int futex_sleep(struct shmrpc_node *n, int64_t deadline)
{
	struct futex_be *fb = n->be_priv;

	return waitv(fb->wv, build(n, fb->wv), deadline);
}

static void *helper(void *arg)
{
	struct shmrpc_node *n = arg;
	struct futex_be *fb = n->be_priv;
	struct futex_waitv wv[FUTEX_WAITV_MAX];
	uint32_t nr;
	int rc;

	pthread_mutex_lock(&fb->lock);
	while (!fb->quit) {
		if (!fb->parked) {
			pthread_cond_wait(&fb->cond, &fb->lock);
			continue;
		}
		nr = fb->nr_park;
		memcpy(wv, fb->wv_park, nr * sizeof(wv[0]));
		pthread_mutex_unlock(&fb->lock);
		rc = waitv(wv, nr, shmrpc__now_ns() + n->safety_ns);
		pthread_mutex_lock(&fb->lock);
		if (rc != -ETIMEDOUT && fb->parked) {
			fb->parked = false; /* until the receiver parks again */
			eventfd_write(fb->evfd, 1);
		}
	}
	pthread_mutex_unlock(&fb->lock);
	return NULL;
}

static int futex_park(struct shmrpc_node *n)
{
	struct futex_be *fb = n->be_priv;

	pthread_mutex_lock(&fb->lock);
	fb->nr_park = build(n, fb->wv_park);
	fb->parked = true;
	pthread_cond_signal(&fb->cond);
	pthread_mutex_unlock(&fb->lock);
	return 0;
}

static int futex_fd_enable(struct shmrpc_node *n, int evfd)
{
	struct futex_be *fb = n->be_priv;
	sigset_t all, old;
	int rc;

	fb->evfd = evfd;
	/* The helper takes no signals: they belong to the application. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&fb->helper, NULL, helper, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	fb->helper_on = !rc;
	return rc;
}

static void futex_wake(struct shmrpc_node *n, _Atomic uint32_t *const *words, unsigned nr)
{
	unsigned i;

	(void)n;
	for (i = 0; i < nr; i++)
		shmrpc__futex_wake(words[i]);
}

const struct shmrpc__backend shmrpc__backend_futex = {
	.name = "futex",
	.id = SHMRPC__BACKEND_FUTEX,
	.init = futex_init,
	.fini = futex_fini,
	.ring_add = futex_ring_add,
	.ring_del = futex_ring_del,
	.sleep = futex_sleep,
	.park = futex_park,
	.wake = futex_wake,
	.fd_enable = futex_fd_enable,
};
