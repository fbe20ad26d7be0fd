/* SPDX-License-Identifier: MIT */
/*
 * The node, and the receiving side's types every layer from the backends up
 * reads (struct shmrpc_node, struct shmrpc__inring, struct shmrpc__inbound).
 * Types only: the functions are in each module's header.
 *
 * Who owns what, inside one process:
 *  - struct shmrpc_node: created by shmrpc_open, freed by shmrpc_close
 *    (node.c); its fields below are marked with the file that writes them;
 *  - outbound connections (connect.c, conntab.c): any sending thread, the
 *    table under conns.lock, each connection's ring under its own mutex;
 *  - inbound rings (inbound.c, rx.c): the one receiving thread; add/remove
 *    also take in_lock so that shmrpc_stats can read them from any thread.
 */
#ifndef SHMRPC_NODE_TYPES_H
#define SHMRPC_NODE_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "layout.h"
#include "proc.h"
#include "ring.h"
#include "shmrpc.h"

struct shmrpc__reg;
struct shmrpc__backend;
struct shmrpc__conn;
struct shmrpc__conn_chunk;
struct shmrpc__rpc;
struct shmrpc__inbound;
struct shmrpc__events;

/* An inbound ring (inbound.c opens and drops it; rx.c reads it; the
 * backend keeps its wait state in `be`). */
struct shmrpc__inring {
	struct shmrpc__ring q; /* consumer view */
	uint32_t tx_slot, tx_gen;
	uint32_t prev;	/* its prev_gen link (shmrpc__prev_link), read at open */
	uint32_t armed; /* value data_seq was armed with (rx.c) */
	bool bell_mode; /* sleeping on the node bell, not data_seq (rx.c) */
	bool draining;	/* sender gone: drop once empty */
	bool doomed;	/* corrupt, dropped when the peek into it ends */
	uint32_t idx;	/* index in its set's v */
	char from[SHMRPC_NAME_MAX + 1];
	void *be;		     /* backend's per-ring state */
	struct shmrpc__inbound *set; /* the set it is in (n->in, n->rep) */
	/* events (events.c): read it only once the event cursor passed its
	 * sender's JOIN, at log index gate - 1; 0: no gate */
	uint64_t gate;
	/* shmrpc_recv_batch (rx.c): records consumed since the last head
	 * store, their bytes, and the next ring with such (in.unpub) */
	uint32_t unpub;
	uint64_t unpub_bytes;
	struct shmrpc__inring *unpub_next;
};

/* The inbound rings of a node of one kind: n->in, the message rings (the
 * receiving thread's); n->rep, the reply rings (read by the one calling
 * thread that holds the reader's role: lib/rpc_call.c). */
struct shmrpc__inbound {
	struct shmrpc__inring **v;
	uint32_t n, cap;
	int kind;		       /* enum shmrpc__kind (node.c sets it) */
	uint32_t cur;		       /* round-robin cursor (rx.c) */
	uint32_t burst;		       /* records taken from v[cur] in a row (rx.c) */
	struct shmrpc__inring *peeked; /* ring of the held peek, if any (recv.c) */
	uint64_t last_check;	       /* last liveness check of senders */
	/* An announced ring that could not be opened for a reason that may
	 * pass (EMFILE, ENOMEM...): its pend bit is set again and the next
	 * scan retries it (inbound.c). open_err: that failure, 0 when every
	 * announced ring is open; open_told: a receiving call returned it. */
	bool retry;
	bool open_told;
	int open_err;
	uint32_t open_slot, open_gen;
	struct shmrpc__inring *unpub; /* rings with consumption to publish (rx.c) */
};

#define SHMRPC__CONN_BUCKETS 64

/*
 * A table of connections of one kind (conntab.c's; the node's message
 * connections, n->conns, and a server's reply connections, reply.c): hash
 * chains under a rwlock, and the pool of type-stable structs behind them.
 * Each user keys and hashes its own chains (a name, a caller's slot); the
 * pool and the teardown are common.
 */
struct shmrpc__ctab {
	pthread_rwlock_t lock;	 /* the chains, the pool */
	struct shmrpc__conn **b; /* nb chains (the user's array) */
	uint32_t nb;
	uint8_t kind; /* enum shmrpc__kind of every struct of the pool */
	/* a recycled struct is cleared (ring view, key, flags) for reuse:
	 * reply.c's; conntab.c resets its own when it takes one */
	bool clear;
	struct shmrpc__conn *free;
	struct shmrpc__conn_chunk *chunks;
};

/* Wakes held back by SHMRPC_SEND_DEFER until shmrpc_flush (tx.c). A word
 * may be unmapped meanwhile (its connection recycled): a wake there is
 * harmless. */
struct shmrpc__deferred {
	pthread_mutex_t lock;
	_Atomic uint32_t **words;
	uint32_t n, cap;
};

/* Set by node.c at shmrpc_open and constant after, unless marked. */
struct shmrpc_node {
	char name[SHMRPC_NAME_MAX + 1];
	char proxy_host[SHMRPC_NAME_MAX + 1]; /* opts.proxy_host, "" for none */
	struct shmrpc__reg *reg;	      /* shared by the process's nodes of the domain */
	uint32_t slot, gen;
	struct shmrpc__proc proc;
	struct shmrpc__node_hdr *seg; /* our node segment */
	uint64_t seg_size;
	int seg_fd; /* holds the liveness lock; -1 in a forked child */
	uint32_t ring_bytes, mode;
	int64_t spin_max_ns; /* configured bound of the spin; 0: never */
	int64_t spin_ns;     /* current, adaptive bound (rx.c) */
	int64_t safety_ns;   /* bound of every sleep */
	_Atomic int evfd;    /* shmrpc_fd, or -1 (recv.c) */
	bool parked;	     /* fd mode: words armed between calls (rx.c) */
	struct shmrpc__deferred deferred;

	const struct shmrpc__backend *be;
	void *be_priv; /* the backend's */
	/* inbound rings the backend watches directly; others: bell mode */
	uint32_t ring_words;
	uint32_t bell_armed; /* value our bell was armed with (rx.c) */
	/* membership events (events.c): ev_mask from the options; with it,
	 * the registry's epoch word, armed with ev_armed (rx.c) */
	uint32_t ev_mask;
	struct shmrpc__events *ev;
	_Atomic uint32_t *ev_word;
	uint32_t ev_armed;
	/* broadcast marks: opts.flags SHMRPC_OPEN_BCAST_MARKS, our message
	 * rings accept BCAST records (inbound.c); bcast_seq: the number of our
	 * next broadcast (broadcast.c; a random start, node.c) */
	bool bmarks;
	_Atomic uint64_t bcast_seq;

	uint64_t uid;		   /* unique in the process, unlike the address */
	struct shmrpc__ctab conns; /* conntab.c's table, by receiver name */
	struct shmrpc__conn *conn_b[SHMRPC__CONN_BUCKETS]; /* its chains */

	pthread_mutex_t in_lock;   /* guards in.v/in.n against shmrpc_stats */
	pthread_mutex_t fold_lock; /* writers of ctr.fold_seq (counters.c) */
	struct shmrpc__inbound in;
	_Atomic int rx_busy; /* a thread is in a receiving call (rx.c) */

	/* Request/response (lib/rpc_*.c, set up by shmrpc__rpc_init): the
	 * reply rings to us, read by the calling thread that holds the
	 * reader's role; the state of both sides; and the receive path's
	 * hook for REQ and CANCEL records, which rx.c calls, then consumes
	 * the record (a function pointer: the way up the layers). */
	struct shmrpc__inbound rep;
	struct shmrpc__rpc *rpc;
	void (*rpc_hook)(struct shmrpc_node *n, struct shmrpc__inring *r, const void *data,
			 uint32_t len);

	pthread_mutex_t ctl_lock; /* shmrpc_start/stop (thread.c), shmrpc_fd */
	pthread_t thread;
	bool thread_on;
	bool forked; /* this is a fork's copy: unusable (node.c's atfork) */
	_Atomic bool stop;
	shmrpc_handler fn;
	void *fn_arg;

	struct shmrpc_node *all_next; /* process-wide list, for fork (node.c) */

	pthread_mutex_t peer_lock; /* the node's peer handles (peer.c) */
	struct shmrpc_peer *peers;
};

#endif /* SHMRPC_NODE_TYPES_H */
