// SPDX-License-Identifier: MIT
/*
 * shmrpc_start/shmrpc_stop: a background thread that receives for the
 * application and calls its handler (the origin's setReceiveCallback +
 * startReceiving). The thread owns the receiving side for its whole life,
 * so the receiving calls return -EBUSY meanwhile. Stopping sets `stop` and
 * rings our own bell; the thread sees `stop` at its next look (the bell's
 * wake protocol makes sure it does not sleep through it).
 */
#include <errno.h>

#include "thread.h"
#include "error.h"
#include "node_types.h"
#include "rx.h"
#include "waker.h"

/* In a receiving thread, its node: the handler's calls to shmrpc_stop are
 * recognised before they take ctl_lock, which the application's own
 * shmrpc_stop may hold while it joins this very thread. */
static _Thread_local struct shmrpc_node *tls_rx_node;

static void *rx_thread(void *arg)
{
	struct shmrpc_node *n = arg;
	int rc;

	tls_rx_node = n;
	while (!atomic_load_explicit(&n->stop, memory_order_relaxed)) {
		rc = shmrpc__dispatch(n, n->fn, n->fn_arg, -1);
		if (rc == -EINTR)
			break;
	}
	return NULL;
}

static int start_do(struct shmrpc_node *n, shmrpc_handler fn, void *arg)
{
	SHMRPC__KEEP_ERRNO;
	int rc;

	if (!n || !fn)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	pthread_mutex_lock(&n->ctl_lock);
	if (n->thread_on) {
		rc = -EALREADY;
		goto out;
	}
	rc = shmrpc__rx_enter(n);
	if (rc)
		goto out;
	n->fn = fn;
	n->fn_arg = arg;
	atomic_store_explicit(&n->stop, false, memory_order_relaxed);
	rc = -pthread_create(&n->thread, NULL, rx_thread, n);
	if (rc)
		shmrpc__rx_exit(n);
	else
		n->thread_on = true;
out:
	pthread_mutex_unlock(&n->ctl_lock);
	return rc;
}

int shmrpc_start(struct shmrpc_node *n, shmrpc_handler fn, void *arg)
{
	return SHMRPC__RET(start_do(n, fn, arg));
}

/* Stop the thread if one runs; the caller holds ctl_lock. */
static int thread_stop_locked(struct shmrpc_node *n)
{
	if (!n->thread_on)
		return -EALREADY;
	if (pthread_equal(n->thread, pthread_self()))
		return -EDEADLK;
	atomic_store_explicit(&n->stop, true, memory_order_relaxed);
	/* The fence (F) in wake_prepare orders the store of stop before
	 * the look at the bell: pairs with the thread's (G) before it
	 * re-checks stop. */
	shmrpc__bell_ring(n, n->seg);
	pthread_join(n->thread, NULL);
	n->thread_on = false;
	atomic_store_explicit(&n->stop, false, memory_order_relaxed);
	shmrpc__rx_exit(n);
	return 0;
}

static int stop_do(struct shmrpc_node *n)
{
	SHMRPC__KEEP_ERRNO;
	int rc;

	if (!n)
		return -EINVAL;
	if (n->forked)
		return -ECHILD; /* the thread, if any, is the parent's */
	if (tls_rx_node == n)
		return -EDEADLK; /* from the handler: it would wait for itself */
	pthread_mutex_lock(&n->ctl_lock);
	rc = thread_stop_locked(n);
	pthread_mutex_unlock(&n->ctl_lock);
	return rc;
}

int shmrpc_stop(struct shmrpc_node *n)
{
	return SHMRPC__RET(stop_do(n));
}

void shmrpc__thread_stop(struct shmrpc_node *n)
{
	pthread_mutex_lock(&n->ctl_lock);
	if (thread_stop_locked(n) == -EDEADLK) {
		/* shmrpc_close from the handler: the thread ends when the
		 * handler returns into a closed node. Not allowed (see the
		 * header); detach rather than deadlock. */
		atomic_store_explicit(&n->stop, true, memory_order_relaxed);
		pthread_detach(n->thread);
		n->thread_on = false;
	}
	pthread_mutex_unlock(&n->ctl_lock);
}
