/* SPDX-License-Identifier: MIT */
/*
 * Membership events for a subscribed node's receiving thread (events.c):
 * reading the registry's event log with a cursor of its own, holding a
 * LEAVE or DEATH until its node's messages are drained, and gating a new
 * sender's ring behind its JOIN.
 */
#ifndef SHMRPC_EVENTS_H
#define SHMRPC_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "node_types.h"
#include "shmrpc.h"

/* A subscribed node's state, the receiving thread's alone (but ev_start,
 * at the join). */
struct shmrpc__events {
	uint64_t cursor;	   /* log index of the next entry to look at */
	uint64_t at;		   /* with have: log index of cur */
	uint32_t dropped;	   /* entries lost since the last event delivered */
	bool have;		   /* cur is the next event to deliver */
	bool ready;		   /* cur is not held (any more): deliver it */
	struct shmrpc_event cur;   /* a copy: the log may overwrite it */
	struct shmrpc__inring src; /* what rx.c hands out for cur: from ".event" */
};

/* shmrpc_open: set up events for the SHMRPC_EV_* bits in n->ev_mask (none:
 * nothing): 0, -ENOMEM. */
int shmrpc__ev_init(struct shmrpc_node *n);
/* Under the registry lock, once n's JOIN is in the log: events start after
 * it; the receiver sleeps on the registry's epoch from now on. */
void shmrpc__ev_start(struct shmrpc_node *n);
void shmrpc__ev_free(struct shmrpc_node *n);
/* The next event to deliver: 1 with *rp (n->ev->src), *data and *len, or
 * 0 (none, or the next one is held until its node's rings are drained). */
int shmrpc__ev_next(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		    uint32_t *len);
/* Work for ev_next: an event to deliver, or log entries not looked at. */
bool shmrpc__ev_pending(struct shmrpc_node *n);
/* The event ev_next returned is consumed. */
void shmrpc__ev_consume(struct shmrpc_node *n);
/* Rings in.v[@from..in.n) were just opened: each waits behind its sender's
 * JOIN, if the cursor has not passed it yet. */
void shmrpc__ev_gate(struct shmrpc_node *n, uint32_t from);
/* Is @r (r->gate != 0) still behind its sender's JOIN? Clears a gate
 * passed. */
bool shmrpc__ev_gated(struct shmrpc_node *n, struct shmrpc__inring *r);

#endif /* SHMRPC_EVENTS_H */
