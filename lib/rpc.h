/* SPDX-License-Identifier: MIT */
/*
 * Request/response (rpc_read.c, rpc_serve.c, rpc_call.c): the node's state
 * of both sides, process-local, and what the files say to each other and
 * to node.c.
 */
#ifndef SHMRPC_RPC_H
#define SHMRPC_RPC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "node_types.h"
#include "reply.h"
#include "shmrpc.h"

#define SHMRPC__MAX_CALLS_DEFAULT 1024u
#define SHMRPC__MAX_CALLS_MAX (1u << 20)

/* A reply that arrived before anyone waited for it (a copy). */
struct shmrpc__rep {
	struct shmrpc__rep *next;
	int32_t status; /* 0, or the server's error (then len 0) */
	uint32_t flags; /* SHMRPC_REPLY_MORE */
	uint32_t len;
	uint8_t data[];
};

struct shmrpc__waiter;

/* A call in flight (rpc_call.c), in the call table until it is retired. */
struct shmrpc__call {
	struct shmrpc__call *next; /* hash chain, or free list */
	uint64_t id;
	uint32_t srv_slot, srv_gen; /* the server's incarnation */
	int64_t deadline;	    /* CLOCK_MONOTONIC, SHMRPC__NEVER */
	int end;		    /* 0; or why no reply will come (-EPIPE...) */
	bool fin;		    /* the last reply came (queued or delivered) */
	bool gone;		    /* its server was seen gone: -EPIPE once drained */
	struct shmrpc__rep *head, *tail;
	size_t queued; /* bytes in head..tail */
	struct shmrpc__waiter *w;
	char to[SHMRPC_NAME_MAX + 1];
};

/* A thread in shmrpc_call_wait, on its stack; under rpc->lock but `got`. */
struct shmrpc__waiter {
	struct shmrpc__waiter *next, *prev; /* rpc->waiters */
	pthread_cond_t cv;
	struct shmrpc__call *call;
	void *buf;
	size_t cap;
	int rc;
	unsigned flags;
	/* the result is in rc/flags: set (release) under the lock by whoever
	 * ends the wait; the reader reads it without the lock (acquire) */
	_Atomic bool got;
};

#define SHMRPC__CALL_BUCKETS 256

/* A request in progress at the server (rpc_serve.c). */
struct shmrpc__prog {
	struct shmrpc__prog *next;
	uint32_t slot, gen; /* the caller's incarnation */
	uint64_t id;
	int64_t deadline;
	bool cancelled;
};

#define SHMRPC__PROG_BUCKETS 256

/* CANCEL records to send once the lock is released (rpc_read.c). */
#define SHMRPC__CANCEL_Q 32
struct shmrpc__cancel {
	uint64_t id;
	uint32_t slot, gen;
	char to[SHMRPC_NAME_MAX + 1];
};

struct shmrpc__rpc {
	/* caller: the calls, their queued replies, the reader's role */
	pthread_mutex_t lock;
	struct shmrpc__call *calls[SHMRPC__CALL_BUCKETS];
	struct shmrpc__call *free_calls;
	uint32_t ncalls, max_calls;
	uint64_t next_id;
	bool reader;			 /* a thread holds the reader's role */
	struct shmrpc__waiter *reader_w; /* its waiter */
	pthread_t reader_tid;		 /* that thread */
	struct shmrpc__waiter *waiters;	 /* every waiting thread */
	uint32_t epoch;			 /* the registry epoch the reader last checked */
	_Atomic uint32_t ncancel;	 /* changed under the lock; a hint without it */
	struct shmrpc__cancel cancel[SHMRPC__CANCEL_Q];
	/* server: the serve function (serve_lock: read while it runs), the
	 * requests in progress (prog_lock) */
	pthread_rwlock_t serve_lock;
	shmrpc_serve_fn fn;
	void *arg;
	pthread_mutex_t prog_lock;
	struct shmrpc__prog *prog[SHMRPC__PROG_BUCKETS];
	struct shmrpc__prog *free_prog;
	uint32_t nprog;
	struct shmrpc__reptab reps; /* reply connections (reply.c) */
};

/* ------------------------------------------------------------ rpc_tab.c */

/* Under rpc->lock: the call of @id, or NULL. */
struct shmrpc__call *shmrpc__call_find(struct shmrpc__rpc *rpc, uint64_t id);
/* Under rpc->lock: take @c out of the table and free it (its waiter, if
 * any, has its result already). */
void shmrpc__call_retire(struct shmrpc_node *n, struct shmrpc__call *c);
/* Under rpc->lock: end call @c with @err (< 0) and hand the result to its
 * waiter, if it has one (the call is retired then; otherwise when a wait
 * takes what it queued and the error). An end by deadline, cancel or lack
 * of room queues a CANCEL record for the server (shmrpc__cancels_flush). */
void shmrpc__call_end(struct shmrpc_node *n, struct shmrpc__call *c, int err);
/* Under rpc->lock: retire @c (no waiter) whatever it had queued, telling
 * its server if it was still open: the rest of a stream nobody wants. */
void shmrpc__call_abandon(struct shmrpc_node *n, struct shmrpc__call *c);
/* Under rpc->lock: waiter @w has its result (rc, flags): wake it. */
void shmrpc__waiter_done(struct shmrpc_node *n, struct shmrpc__waiter *w, int rc, unsigned flags);
/* Under rpc->lock: waiter @w (its call @c, its buffer) joins the waiting
 * threads; leaves them again (handing the reader's role on if nobody holds
 * it). */
void shmrpc__waiter_join(struct shmrpc__rpc *rpc, struct shmrpc__waiter *w, struct shmrpc__call *c);
void shmrpc__waiter_leave(struct shmrpc__rpc *rpc, struct shmrpc__waiter *w);
/* Under rpc->lock: wake a waiting thread that has no result yet, to take
 * the reader's role. */
void shmrpc__waiter_hand_off(struct shmrpc__rpc *rpc);
/* Send the CANCEL records of calls ended meanwhile (best effort, never
 * blocking for long); without rpc->lock. */
void shmrpc__cancels_flush(struct shmrpc_node *n);

/* ------------------------------------------------------------ rpc_read.c */

/* The reader's role, held by the calling thread with waiter @w under
 * rpc->lock (held at the call and the return): read every reply ring,
 * route each reply to its call, end the calls of servers that are gone,
 * and sleep on the rep_bell and the registry's epoch until @w got its
 * result or @deadline (CLOCK_MONOTONIC) passes. */
void shmrpc__rpc_read(struct shmrpc_node *n, struct shmrpc__waiter *w, int64_t deadline);

/* ------------------------------------------------------------ rpc_serve.c */

/* The receive path's hook for REQ and CANCEL records (rx.c). */
void shmrpc__rpc_hook(struct shmrpc_node *n, struct shmrpc__inring *r, const void *data,
		      uint32_t len);
/* Server state: set up, free. */
void shmrpc__serve_init(struct shmrpc__rpc *rpc);
void shmrpc__serve_free(struct shmrpc__rpc *rpc, bool destroy);

/* ------------------------------------------------------------ rpc_call.c */

/* shmrpc_open: the node's rpc state, and the receive path's hook. */
int shmrpc__rpc_init(struct shmrpc_node *n, uint32_t max_calls);
/* shmrpc_close, after the other connections: no more serving, the reply
 * connections closed (their callers drain them). */
void shmrpc__rpc_close(struct shmrpc_node *n);
/* In a forked child: unmap the parent's reply connections. */
void shmrpc__rpc_forget(struct shmrpc_node *n);
/* Free it all (accepts a node whose init failed or never ran). */
void shmrpc__rpc_free(struct shmrpc_node *n);

#endif /* SHMRPC_RPC_H */
