/* SPDX-License-Identifier: MIT */
/*
 * The uring backend's sending side (wake_uring_tx.c): several FUTEX_WAKEs in
 * one io_uring_enter.
 */
#ifndef SHMRPC_WAKE_URING_TX_H
#define SHMRPC_WAKE_URING_TX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "uring_compat.h"

/* A node's ring for batched wakes: any sending thread, under @lock. */
struct shmrpc__uring_tx {
	pthread_mutex_t lock;
	struct io_uring ring; /* set up at the first batch */
	bool ready;
};

void shmrpc__uring_tx_init(struct shmrpc__uring_tx *t);
/* Exit the ring, if it was set up. */
void shmrpc__uring_tx_fini(struct shmrpc__uring_tx *t);
/* FUTEX_WAKE each of @words in one io_uring_enter (one futex(2) each if the
 * ring cannot be set up or is full). */
void shmrpc__uring_tx_wake(struct shmrpc__uring_tx *t, _Atomic uint32_t *const *words, unsigned nr);

#endif /* SHMRPC_WAKE_URING_TX_H */
