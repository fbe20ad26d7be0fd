// SPDX-License-Identifier: MIT
/*
 * The uring backend's sending side: a sender that wakes several words at
 * once (broadcast, shmrpc_flush) submits all its FUTEX_WAKEs in one
 * io_uring_enter, on a ring of the node's own set up at the first batch
 * (a single wake is one futex(2): wake_uring.c). Any sending thread, under
 * the ring's mutex. Only failures post a completion.
 */
#include <limits.h>

#include "wake_uring_tx.h"
#include "futex.h"

#define TX_ENTRIES 256

void shmrpc__uring_tx_init(struct shmrpc__uring_tx *t)
{
	pthread_mutex_init(&t->lock, NULL);
	t->ready = false;
}

void shmrpc__uring_tx_fini(struct shmrpc__uring_tx *t)
{
	if (t->ready)
		io_uring_queue_exit(&t->ring);
	pthread_mutex_destroy(&t->lock);
}

static void wake_batch(struct shmrpc__uring_tx *t, _Atomic uint32_t *const *words, unsigned nr)
{
	struct io_uring_sqe *sqe;
	unsigned i;

	for (i = 0; i < nr; i++) {
		sqe = shmrpc__uring_get_sqe(&t->ring);
		if (!sqe) { /* cannot queue: wake the rest one by one */
			for (; i < nr; i++)
				shmrpc__futex_wake(words[i]);
			break;
		}
		shmrpc__prep_futex_wake(sqe, words[i], INT_MAX, 0);
		/* Only failures post a completion: nothing to reap normally. */
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
	/* Nothing went in (no memory for the requests: EAGAIN, ENOMEM): the
	 * receivers would sleep on. Wake them one by one now; the SQEs stay
	 * queued and go with the next batch, a wake more (harmless, as
	 * shmrpc_flush's words already may be). */
	if (io_uring_submit(&t->ring) < 0)
		for (i = 0; i < nr; i++)
			shmrpc__futex_wake(words[i]);
	if (io_uring_cq_ready(&t->ring))
		io_uring_cq_advance(&t->ring, io_uring_cq_ready(&t->ring));
}

void shmrpc__uring_tx_wake(struct shmrpc__uring_tx *t, _Atomic uint32_t *const *words, unsigned nr)
{
	unsigned i;

	pthread_mutex_lock(&t->lock);
	if (!t->ready)
		t->ready = io_uring_queue_init(TX_ENTRIES, &t->ring, IORING_SETUP_SUBMIT_ALL) == 0;
	if (t->ready) {
		wake_batch(t, words, nr);
	} else {
		for (i = 0; i < nr; i++)
			shmrpc__futex_wake(words[i]);
	}
	pthread_mutex_unlock(&t->lock);
}
