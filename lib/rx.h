/* SPDX-License-Identifier: MIT */
/*
 * The receiving side, one thread at a time (rx.c).
 */
#ifndef SHMRPC_RX_H
#define SHMRPC_RX_H

#include <stdint.h>

#include "clock.h"
#include "node_types.h"

/* Take the receiving side: 0, -ECHILD (a forked child's copy of a node),
 * -EBUSY (another thread receives); in shmrpc_fd mode, unpark. */
int shmrpc__rx_enter(struct shmrpc_node *n);
/* Give it back; in shmrpc_fd mode, park (words armed for the eventfd). */
void shmrpc__rx_exit(struct shmrpc_node *n);
/* Wait (per @t) for the next record: 1 with it peeked in *rp (its data and
 * length), -EAGAIN, -ETIMEDOUT, -EINTR (stop), -EPROTO, or a ring that
 * could not be opened (said once). */
int shmrpc__rx_get(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		   uint32_t *len, struct shmrpc__tmo *t);
/* Consume the peeked record of @r, waking its sender if it waits. */
void shmrpc__rx_consume(struct shmrpc_node *n, struct shmrpc__inring *r, uint32_t len);
/* A batch: consume the peeked record of @r, its space handed back to its
 * sender by rx_flush, once per ring (a head store, at most one wake). */
void shmrpc__rx_take(struct shmrpc_node *n, struct shmrpc__inring *r, uint32_t len);
void shmrpc__rx_flush(struct shmrpc_node *n);
/* Without waiting: the next record (1, in *rp), 0 none, -EPROTO. */
int shmrpc__rx_next(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		    uint32_t *len);
/* Hand every waiting record (up to a bound) to @fn, waiting for the first
 * per @timeout_ms: how many, or -errno as rx_get says. */
int shmrpc__dispatch(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms);

#endif /* SHMRPC_RX_H */
