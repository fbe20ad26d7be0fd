/* SPDX-License-Identifier: MIT */
/*
 * Sending on a connection locked by this thread (tx.c).
 */
#ifndef SHMRPC_TX_H
#define SHMRPC_TX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "connect.h"
#include "shmrpc.h"

/* Under c->lock: reserve @len bytes (*buf), waiting for room per @t (the
 * receiver leaving ends the wait: -EPIPE). 0, -EAGAIN, -ETIMEDOUT,
 * -EMSGSIZE, -EPIPE, -EPROTO. (Whether the receiver left was checked when
 * the connection was acquired.) */
int shmrpc__tx_reserve(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len, void **buf,
		       struct shmrpc__tmo *t);
/* The same into @tx, for a reservation handed to the caller; unlocks @c
 * on failure. */
int shmrpc__reserve_locked(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len,
			   struct shmrpc_txbuf *tx, struct shmrpc__tmo *t);
/* Publish @len bytes reserved on the locked @c, count them, unlock: the
 * word to wake, or NULL (the wake goes outside the lock: other senders to
 * this receiver need not wait for our system call). Once unlocked, the
 * word may be unmapped by a recycling: a FUTEX_WAKE there is harmless
 * (EFAULT, or a spurious wake that every sleeper tolerates). */
_Atomic uint32_t *shmrpc__tx_commit(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len);
/* The same, the record marked with @rec_flags (SHMRPC__REC_REQ, _CANCEL:
 * lib/rpc_call.c). */
_Atomic uint32_t *shmrpc__tx_commit_flags(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len,
					  uint32_t rec_flags);
/* The same for a batch: publish every record put on the locked @c since
 * its last publish (shmrpc__ring_put: @msgs records, @bytes of payload)
 * with one tail store, one look at the receiver's sleep flag, unlock. */
_Atomic uint32_t *shmrpc__tx_publish(struct shmrpc_node *n, struct shmrpc__conn *c, uint32_t msgs,
				     uint64_t bytes);
/* The same for the reservation @tx (ended by it). */
_Atomic uint32_t *shmrpc__commit_nowake(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len);
/* The same, the record marked with @rec_flags (SHMRPC__REC_BCAST:
 * lib/broadcast.c). */
_Atomic uint32_t *shmrpc__commit_nowake_flags(struct shmrpc_node *n, struct shmrpc_txbuf *tx,
					      size_t len, uint32_t rec_flags);
/* Wake @w (if not NULL) now, or, with SHMRPC_SEND_DEFER in @flags, hold it
 * for shmrpc_flush (now if that fails). */
void shmrpc__tx_wake(struct shmrpc_node *n, _Atomic uint32_t *w, unsigned flags);
/* Issue the wakes held back (one io_uring_enter with uring): how many. */
int shmrpc__tx_flush(struct shmrpc_node *n);

#endif /* SHMRPC_TX_H */
