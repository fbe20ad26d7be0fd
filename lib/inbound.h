/* SPDX-License-Identifier: MIT */
/*
 * A node's inbound rings, for the receiving thread (inbound.c): opening the
 * announced ones, dropping them, teardown.
 */
#ifndef SHMRPC_INBOUND_H
#define SHMRPC_INBOUND_H

#include "node_types.h"

/* Open the rings announced since the last scan, and those kept pending
 * after a failure that may pass: 0, or that failure (n->in.open_err). */
int shmrpc__in_scan_new(struct shmrpc_node *n);
/* The same for the rings of set @set (n->in, or n->rep: reply rings). */
int shmrpc__in_scan(struct shmrpc_node *n, struct shmrpc__inbound *set);
/* Record, for shmrpc_last_error, that @set's ring from open_slot could not
 * be opened (naming its sender if it is still there), and what follows
 * (@then): returns set->open_err. */
int shmrpc__in_open_err(struct shmrpc_node *n, const struct shmrpc__inbound *set, const char *then);
/* Drop @r (unlink, RX_CLOSED, unmap) from its set, or, while a peek into
 * it is held (n->in.peeked), only mark it doomed: its release drops it. */
void shmrpc__in_drop(struct shmrpc_node *n, struct shmrpc__inring *r);
/* Cheap check of every sender against the registry (no system call): a
 * sender whose slot changed is drained, then dropped. */
void shmrpc__in_check_senders(struct shmrpc_node *n);
/* The same for the rings of set @in. */
void shmrpc__in_check_set(struct shmrpc_node *n, struct shmrpc__inbound *in);
/* shmrpc_close: CLOSING, then drop every ring (of both sets), and close
 * those announced but never opened (and their chains). */
void shmrpc__in_close_all(struct shmrpc_node *n);
/* In a forked child: unmap the parent's inbound rings (both sets), nothing
 * more. */
void shmrpc__in_forget_all(struct shmrpc_node *n);

#endif /* SHMRPC_INBOUND_H */
