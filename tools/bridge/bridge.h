/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-bridge: one process per host that joins the same libshmrpc domains
 * on several hosts over NATS (docs/cross-host.md has the design, the
 * subjects and the guarantees). The types its files share.
 *
 *   main.c     the event loop: epoll over the NATS socket, every proxy's
 *              shmrpc_fd, a 10 ms tick, signals
 *   opts.c     command line
 *   log.c      log lines, clocks
 *   map.c      string-keyed hash table
 *   wire.c     what travels over NATS: headers, subjects (no state)
 *   conn.c     the NATS connection: options, reconnects, the event-loop
 *              adapter that lets main.c drive the socket
 *   remote.c   other hosts: membership, heartbeats, snapshots
 *   bcast.c    broadcasts published once: the barrier across a sender's
 *              proxies, the one BCAST that stands for their copies
 *   fwd.c      local sender -> proxy -> NATS, with credits
 *   local.c    this host's real nodes: membership events, registry polling,
 *              announcements
 *   names.c    who owns each name (collisions), proxies opened and closed
 *   dlv.c      NATS -> proxy of the sender -> local receiver, with queues
 *              for full rings, and the credits it grants; BCASTs fanned
 *              out to their local targets, in order on each one's stream
 *   xcall.c    calls across hosts: requests, replies, cancels, its threads
 *   status.c   the status segment that shmrpc-top reads
 *
 * Calls go one way: main -> remote -> bcast -> fwd -> local -> names -> dlv
 * -> xcall -> status, wire, conn -> map, log. conn.c calls back into the
 * others only through the handlers registered with it, fwd.c and names.c
 * into bcast.c only through the domain's bc_mark and bc_forget (function
 * pointers).
 *
 * Threads. main.c's thread does everything: it reads the NATS socket
 * (libnats' event-loop adapter) and handles the messages the read brought
 * (synchronous subscriptions polled right after the read), drains the
 * proxies, runs the tick. libnats' own threads (reconnect, pings, the
 * connection callbacks) only set atomics and write the wake eventfd. mu
 * is held around any use of the tables below; libnats' connection lock is
 * only ever taken inside it (publishing), and the event-loop adapter
 * (conn.c) takes neither.
 */
#ifndef SHMRPC_BRIDGE_H
#define SHMRPC_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "shmrpc.h"

#define BR_NAME (SHMRPC_NAME_MAX + 1)
/* A name or domain in a subject: each byte may become 3 ("_2e"). */
#define BR_ESC (3 * SHMRPC_NAME_MAX + 1)
#define BR_SUBJ (32 + 2 * BR_ESC)
/* The control node each bridge opens in each domain it bridges. */
#define BR_CTL_NAME "shmrpc-bridge"

/* ------------------------------------------------------------ options */

struct br_opts {
	const char **servers; /* NATS URLs */
	int nservers;
	const char **domains;
	int ndomains;
	char host[BR_NAME];
	const char *creds;			 /* NATS credentials file (JWT + seed) */
	const char *tls_ca, *tls_cert, *tls_key; /* TLS files for libnats */
	int hb_ms;				 /* heartbeat period */
	int dead_beats;				 /* silent for this many periods: dead */
	uint32_t window;			 /* credits per stream, messages */
	uint64_t window_bytes;			 /* and bytes */
	uint32_t status_rows;			 /* rows of the status segment */
	uint32_t call_threads;			 /* threads that wait for replies */
	int spin_us;				 /* polling after traffic, before sleeping */
	int bcast_wait_us;			 /* a broadcast's barrier waits this long */
	int log_level;
};

int br_opts_parse(int argc, char **argv, struct br_opts *o); /* 0, 1 (done), -EINVAL */
void br_opts_free(struct br_opts *o);

/* ------------------------------------------------------------ log.c */

enum { BR_LOG_DEBUG, BR_LOG_INFO, BR_LOG_WARN, BR_LOG_ERROR };
void br_log_level(int level);
void blog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t br_now_ns(void);  /* CLOCK_MONOTONIC */
int64_t br_wall_ns(void); /* CLOCK_REALTIME */

/* ------------------------------------------------------------ map.c */

/* Open addressing, linear probing; keys are the items' own name fields. */
struct br_map {
	void **v;
	uint32_t cap, n;
	size_t key_off; /* offsetof(item, name) */
};
void br_map_init(struct br_map *m, size_t key_off);
void br_map_free(struct br_map *m);
void *br_map_get(const struct br_map *m, const char *key);
int br_map_put(struct br_map *m, void *item); /* 0, -EEXIST, -ENOMEM */
void *br_map_del(struct br_map *m, const char *key);
/* Iterate: for (i = 0; (it = br_map_next(m, &i));) - no put/del meanwhile. */
void *br_map_next(const struct br_map *m, uint32_t *i);

/* ------------------------------------------------------------ counters */

/* Per node, in the bridge's memory; status.c copies them out. */
struct br_ctr {
	uint64_t fwd_msgs, fwd_bytes; /* published over NATS (to/from this node) */
	uint64_t dlv_msgs, dlv_bytes; /* delivered into a local ring */
	uint64_t lost;		      /* never arrived: gaps, a host that died */
	uint64_t dropped;	      /* refused here: too big, name collision, gone */
	uint64_t stalls;	      /* times a sender ran out of credits */
	uint64_t queued;	      /* messages waiting for ring space now */
};

/* ------------------------------------------------------------ entries */

/*
 * A BATCH entry (wire.c): u8 kind, u8 name length, the name (the sender;
 * for a REPLY the server), u32 payload length (LE), the kind's fields,
 * the payload:
 *	MSG	-
 *	REQ	u64 id (the caller's), u64 time left to the deadline in us (0: none)
 *	REPLY	u64 id, i32 status (0 or -errno), u32 flags (SHMRPC_REPLY_MORE)
 *	CANCEL	u64 id
 */
enum br_ent_kind { BR_ENT_MSG, BR_ENT_REQ, BR_ENT_REPLY, BR_ENT_CANCEL, BR_ENT_KINDS };
#define BR_BATCH_ENTRY (2 + SHMRPC_NAME_MAX + 4 + 16)
struct br_ent {
	uint8_t kind;
	char from[BR_NAME];
	uint32_t len;
	uint64_t id;
	uint64_t tmo_us; /* REQ */
	int32_t status;	 /* REPLY */
	uint32_t flags;	 /* REPLY */
	const unsigned char *data;
};

/* ------------------------------------------------------------ tables */

struct br_qmsg { /* an entry waiting for space in a local ring */
	struct br_qmsg *next;
	uint64_t stream, seq;
	int64_t since_ns; /* queued at */
	struct br_ent e;  /* e.data points at data */
	unsigned char data[];
};

/* An entry to publish on a proxy's stream before its ring's next message:
 * a request its serve function took, a reply or a cancel (xcall.c puts,
 * fwd.c publishes). */
struct br_out {
	struct br_out *next;
	uint32_t len;  /* bytes at ent: head and payload */
	uint32_t size; /* payload bytes (credits) */
	uint32_t pos;  /* a request: messages of the same receive before it */
	bool backlog;  /* a reply counted in its proxy's backlog */
	unsigned char ent[];
};

struct br_local; /* local.c */

/* Messages from one remote host to one local node (dlv.c). */
struct br_rstream {
	char host[BR_NAME]; /* key in the local's streams */
	uint64_t epoch;	    /* the sending bridge's epoch */
	uint64_t stream;    /* its stream id (new after each reset) */
	uint64_t expect;    /* next sequence number */
	uint64_t done;	    /* every seq <= done is delivered or dropped */
	uint64_t sync_seq;  /* a SYNC said: nothing after this was sent */
	uint64_t granted;   /* done as last granted */
	uint64_t done_bytes, granted_bytes;
	int64_t grant_ns; /* when */
	struct br_qmsg *head, *tail;
	uint32_t queued;
	bool pending; /* on the domain's pending list */
	struct br_rstream *pend_next;
	/* BCAST copies that came before the entries ahead of them on the
	 * stream (another subject, read in the same round): by seq */
	struct br_qmsg *ahead;
	uint32_t nahead;
	bool ahead_listed; /* on the domain's aheads list */
	struct br_rstream *ahead_next;
	struct br_local *dst;
};

struct br_local { /* a real node of this host */
	char name[BR_NAME];
	uint64_t inc;	 /* incarnation we announced */
	int64_t join_ns; /* CLOCK_REALTIME when first seen */
	uint32_t max_msg;
	bool refused;	  /* an earlier node of another host has the name */
	bool leaving;	  /* gone from the registry, LEAVE not announced yet */
	bool seen;	  /* in the last registry poll */
	bool died;	  /* its process died (a DEATH event): announced as DEATH */
	uint64_t bc_done; /* its last broadcast published (bcast.c), 0: none */
	uint64_t id;	  /* the library's id of it (its JOIN event), 0: unknown */
	int64_t leave_ns;
	natsSubscription *sub;
	struct br_map streams; /* host -> struct br_rstream */
	struct br_ctr ctr;
	int row; /* in the status segment, or -1 */
};

struct br_claim { /* a node another host announced */
	char name[BR_NAME];
	uint64_t inc;
	int64_t join_ns;
	uint32_t max_msg;
	bool seen; /* in the snapshot being applied */
};

struct br_delta { /* a JOIN, LEAVE or DEATH kept until its turn (remote.c) */
	struct br_claim c;
	uint64_t seq;
	uint8_t type;
};

#define BR_PEND 16 /* deltas kept per host */

struct br_host { /* another host's bridge, for one domain */
	char name[BR_NAME];
	uint64_t epoch;
	uint64_t mseq;	     /* last membership sequence applied */
	int64_t heard_ns;    /* last message from it */
	int64_t snap_ask_ns; /* snapshot asked for (0: none outstanding) */
	bool synced;	     /* a snapshot was applied */
	bool snap_in;	     /* chunks of snapshot snap_seq are coming */
	uint64_t snap_seq, snap_chunk;
	bool bcast;	      /* it reads BCASTs: BR_FEAT_BCAST in its last membership message */
	struct br_map claims; /* name -> struct br_claim */
	struct br_delta pend[BR_PEND]; /* met ahead of their turn */
	uint32_t npend;
};

struct br_proxy { /* a node of another host, held here under its name */
	char name[BR_NAME];
	struct br_dom *d;
	char host[BR_NAME];
	uint64_t inc; /* its incarnation there */
	uint32_t max_msg;
	struct shmrpc_node *node;
	int fd;
	uint32_t tag; /* index in struct bridge's tags */
	char subj[BR_SUBJ];
	/* the stream to it (fwd.c) */
	uint64_t stream, seq, acked;
	uint64_t inflight_bytes;
	uint32_t *sizes; /* payload sizes of seq acked+1.., a ring of window entries */
	bool blocked;	 /* out of credits: fd not polled */
	bool enabled;	 /* fd in the epoll set with EPOLLIN */
	int64_t stall_ns;
	/* removal waits until queued messages from it are delivered (dlv.c) */
	bool lingering;
	bool touched; /* on its domain's touched list (dlv.c) */
	bool dead;    /* its node died or its host went: closed as dead */
	int64_t linger_ns;
	/* calls (xcall.c): requests local callers sent it (it serves), calls
	 * its node made to local servers; entries to publish first */
	struct br_map jobs;
	struct br_out *out, *out_tail;
	bool out_listed; /* on its domain's out list */
	struct br_proxy *out_next;
	/* replies its calls' threads took and fwd.c has not published yet,
	 * under the pool's lock: past a bound, those threads wait */
	uint32_t backlog;
	uint64_t backlog_bytes;
	/* the receive in progress (fwd.c), for the serve function: a request
	 * served in it goes after the messages msgs[0..k) it filled */
	struct shmrpc_msg *rxm;
	unsigned rxn;
	struct br_bc *held; /* stopped at a copy of this broadcast (bcast.c) */
	bool zombie;	    /* closed but for its node: a reply is still being sent */
	struct br_proxy *zombie_next;
	struct br_ctr ctr;
	int row;
};

struct br_status; /* status.c */
struct br_hdr;	  /* wire.c */

enum br_sub_kind {
	BR_SUB_DATA,
	BR_SUB_MEMBERS,
	BR_SUB_SNAPREQ,
	BR_SUB_HOST,
	BR_SUB_BCAST,
	BR_SUB_KINDS
};
struct br_subctx { /* a subscription's closure: lives as long as its domain */
	struct br_dom *d;
	int kind;
};
typedef void (*br_msg_fn)(struct br_dom *d, const char *subj, const struct br_hdr *h);
struct br_subrec { /* a subscription main's loop polls (conn.c) */
	natsSubscription *sub;
	struct br_subctx *ctx;
};

struct br_dom {
	struct bridge *br;
	int idx;
	char name[BR_NAME];
	char esc[BR_ESC]; /* the name, encoded for subjects */
	struct shmrpc_node *ctl;
	int ctl_fd;
	struct br_map locals;  /* struct br_local */
	struct br_map hosts;   /* struct br_host */
	struct br_map proxies; /* struct br_proxy */
	struct br_map retry;   /* names whose proxy failed to open (names.c) */
	uint64_t mseq;	       /* our membership sequence */
	uint64_t next_inc;
	natsSubscription *sub_m, *sub_s, *sub_h, *sub_b;
	struct br_subctx subctx[BR_SUB_KINDS];
	uint64_t bad_msgs;	      /* failed br_wire_get */
	struct br_rstream *pending;   /* streams with queued messages */
	struct br_proxy *touched[16]; /* proxies with wakes held back (dlv.c) */
	int ntouched;
	char (*names)[BR_NAME]; /* registry poll buffer */
	size_t names_cap;
	int64_t hb_ns, poll_ns;
	struct br_ctr gone;	  /* counters of nodes that left */
	struct br_proxy *outl;	  /* proxies with entries to publish (xcall.c) */
	struct br_proxy *zombies; /* proxies waiting for their last reply */
	struct br_status *st;
	/* broadcasts (bcast.c): barriers waiting; what fwd.c calls when a
	 * proxy meets a marked copy (true: held there) and names.c when a
	 * held proxy closes */
	struct br_bc *bcs;
	uint32_t nheld; /* proxies held at a barrier */
	bool (*bc_mark)(struct br_dom *d, struct br_proxy *px, const struct shmrpc_mark *mk,
			const struct shmrpc_msg *m);
	void (*bc_forget)(struct br_dom *d, struct br_proxy *px);
	uint64_t bcasts;	   /* BCASTs published */
	uint64_t bcast_sent;	   /* the copies they stood for */
	uint64_t bcast_split;	   /* copies of broadcasts sent on their node's stream */
	struct br_rstream *aheads; /* streams with BCAST copies ahead (dlv.c) */
};

#define BR_TAG_KIND_SHIFT 56
enum br_tag_kind {
	BR_TAG_NATS = 1,
	BR_TAG_TIMER,
	BR_TAG_SIGNAL,
	BR_TAG_WAKE,
	BR_TAG_PROXY,
	BR_TAG_CTL
};

struct br_evl { /* the event-loop adapter's state (conn.c) */
	pthread_mutex_t mu;
	int ep, fd;
	uint32_t events;
	natsConnection *nc;
};

struct bridge {
	struct br_opts o;
	uint64_t epoch; /* random, per run */
	pthread_mutex_t mu;
	natsConnection *nc;
	natsOptions *nopts;
	atomic_bool up;		 /* connected to a server */
	atomic_bool resync;	 /* reconnected: main thread resynchronises */
	atomic_uint reconnects;	 /* written by libnats' callback thread */
	atomic_ullong nats_drop; /* slow consumer drops libnats reported */
	int ep, tfd, sfd, wfd;
	struct br_evl evl;
	struct br_dom *doms;
	int ndoms;
	struct br_proxy **tags; /* proxies by tag, NULL: free */
	uint32_t ntags;
	br_msg_fn handlers[BR_SUB_KINDS];
	struct br_subrec *subs; /* membership ones first */
	uint32_t nsubs;
	unsigned char *scratch; /* publish buffer, max_payload bytes, under mu */
	unsigned char *batch;	/* fwd.c's batch: BR_WIRE_MAX + max_payload bytes */
	unsigned char *rxbuf;	/* fwd.c's receive buffer */
	size_t rxbuf_len;
	uint32_t max_payload;
	uint64_t next_stream;
	struct br_pool *pool; /* xcall.c's threads */
	bool quit;
};

/* ------------------------------------------------------------ wire.c */

/*
 * Every message starts with this header (little-endian), then host_len
 * bytes of the sending host, name_len bytes of a node name, then the body.
 */
enum br_type {
	BR_DATA = 1, /* unused (version 1 sends every message in a BATCH) */
	BR_SYNC,     /* n.<node>: seq = last seq sent on the stream */
	BR_GRANT,    /* h.<host>: seq = done; name = receiver */
	BR_JOIN,     /* m.<host>: seq = mseq; name, inc, aux = join time; body = max_msg */
	BR_LEAVE,    /* m.<host>: a node closed */
	BR_DEATH,    /* m.<host>: a node's process died */
	BR_HB,	     /* m.<host>: seq = mseq; heartbeat */
	BR_BYE,	     /* m.<host>: the bridge stops; its nodes leave */
	BR_SNAPREQ,  /* s, or h.<host>: send me your snapshot */
	BR_SNAP,     /* h.<host>: seq = mseq, aux = chunk | LAST; body = entries */
	BR_BATCH,    /* n.<node>: seq = first, aux = count; body = entries */
	BR_BCAST,    /* b: name = sender, seq = its broadcast's number; body:
		      * the payload and the targets (wire.c) */
};
#define BR_SNAP_LAST (1ull << 63)
/* What a bridge can read, in the stream field of its membership messages
 * (JOIN, LEAVE, DEATH, HB, BYE, SNAP), where bridges of wire version 2
 * write 0 and read nothing. */
#define BR_FEAT_BCAST 1ull /* BCASTs on b (wire version 3) */

struct br_hdr {
	uint8_t type;
	uint8_t host_len, name_len;
	uint64_t epoch;	 /* the sending bridge's epoch (GRANT: the receiver's) */
	uint64_t stream; /* DATA, SYNC, GRANT */
	uint64_t inc;	 /* incarnation of the node concerned */
	uint64_t seq;
	uint64_t aux;
	char host[BR_NAME]; /* decoded, NUL-terminated */
	char name[BR_NAME];
	const unsigned char *body;
	uint32_t body_len;
};

#define BR_WIRE_FIXED 48 /* bytes before the names */
#define BR_WIRE_MAX (BR_WIRE_FIXED + 2 * SHMRPC_NAME_MAX)

/* Encode h (host, name, no body) into buf (>= BR_WIRE_MAX): its length. */
uint32_t br_wire_put(const struct br_hdr *h, unsigned char *buf);
/* Decode and check: 0, or -EPROTO (why in *why). */
int br_wire_get(const void *data, int len, struct br_hdr *h, const char **why);
/* A name ([A-Za-z0-9._-]) as one subject token: '.' -> "_2e", '_' -> "_5f". */
void br_esc(const char *name, char *out);
/* Back from a token: 0, or -EINVAL. */
int br_unesc(const char *tok, char *out);
int br_name_ok(const char *s);
/* A batch entry's head (<= BR_BATCH_ENTRY bytes; the payload follows it):
 * its length. */
uint32_t br_ent_put(unsigned char *p, const struct br_ent *e);
/* The next entry of a batch: 1, or -EPROTO (garbage: the rest is lost). */
int br_ent_get(const unsigned char **p, const unsigned char *end, struct br_ent *e);
/* BCAST bodies: the payload, then per host a group head and its targets
 * (the sizes below at most); read back with an iterator. */
#define BR_BC_GROUP_MAX (5 + SHMRPC_NAME_MAX)
#define BR_BC_TARGET_MAX (25 + SHMRPC_NAME_MAX)
struct br_bt { /* a target: node name of host, the copy's place on its stream */
	char host[BR_NAME];
	char name[BR_NAME];
	uint64_t inc, stream, seq;
};
struct br_bc_iter {
	const unsigned char *p, *end;
	uint32_t left; /* targets left in the group */
	char host[BR_NAME];
};
uint32_t br_bc_put_payload(unsigned char *p, const void *data, uint32_t len);
uint32_t br_bc_put_group(unsigned char *p, const char *host, uint32_t n);
uint32_t br_bc_put_target(unsigned char *p, const char *name, uint64_t inc, uint64_t stream,
			  uint64_t seq);
/* 0 (the payload in *data, *len; the iterator set), or -EPROTO */
int br_bc_get_payload(const struct br_hdr *h, const unsigned char **data, uint32_t *len,
		      struct br_bc_iter *it);
/* The next target: 1, 0 at the end, -EPROTO for garbage. */
int br_bc_next(struct br_bc_iter *it, struct br_bt *t);
/* Snapshot entries: put one (<= 32 + name bytes), get the next. */
uint32_t br_snap_put(unsigned char *p, const struct br_claim *c);
int br_snap_get(const unsigned char **p, const unsigned char *end, struct br_claim *c);

/* ------------------------------------------------------------ conn.c */

/* Subscribe subj to br->handlers[kind] for domain d; 0 or -EIO. Handlers
 * run in main's thread (br_conn_poll) with br->mu held, on checked headers. */
int br_sub(struct br_dom *d, const char *subj, int kind, natsSubscription **out);
int br_conn_open(struct bridge *br);
void br_conn_close(struct bridge *br);
/* Once connected: the server's max_payload (under mu). */
void br_conn_limits(struct bridge *br);
void br_unsub(struct bridge *br, natsSubscription **sub);
/* Handle what the last read brought (main's thread, under mu). */
void br_conn_poll(struct bridge *br);
/* Publish header h and body; 0, -EMSGSIZE, -ENOTCONN, -EIO. */
int br_pub(struct bridge *br, const char *subj, const struct br_hdr *h, const void *body,
	   uint32_t len);
/* Publish h and the len bytes at br->batch + BR_WIRE_MAX (no copy). */
int br_pub_batch(struct bridge *br, const char *subj, const struct br_hdr *h, uint32_t len);
void br_conn_read(struct bridge *br);
void br_conn_write(struct bridge *br);

/* ------------------------------------------------------------ subjects */

void br_subj_node(const struct br_dom *d, const char *node, char *out);
void br_subj_host(const struct br_dom *d, const char *host, char *out);
void br_subj_members(const struct br_dom *d, const char *host, char *out); /* NULL: all */
void br_subj_snap(const struct br_dom *d, char *out);
void br_subj_bcast(const struct br_dom *d, char *out);

/* ------------------------------------------------------------ status.c */

int br_status_open(struct br_dom *d);
void br_status_close(struct br_dom *d);
int br_status_row(struct br_dom *d, const char *name, const char *host, int kind);
void br_status_free_row(struct br_dom *d, int row);
void br_status_update(struct br_dom *d);
void br_status_set_kind(struct br_dom *d, int row, int kind, const char *host);
/* kinds: enum br_status_kind (status.h) */

/* ------------------------------------------------------------ xcall.c */

/* The serve function of every proxy (arg: the proxy). */
void br_xc_serve(struct shmrpc_node *node, const struct shmrpc_req *req, void *arg);
/* A REQ, REPLY or CANCEL entry for local node @l from proxy @px's node:
 * 0 done (delivered, answered or dropped), -EAGAIN later (full). */
int br_xc_deliver(struct br_dom *d, struct br_proxy *px, struct br_local *l, const struct br_ent *e,
		  int64_t since_ns);
/* What the threads finished: replies out, requests over (main's thread). */
void br_xc_ingest(struct br_dom *d);
/* Every tick: requests whose callers cancelled, zombies to close. */
void br_xc_tick(struct br_dom *d);
/* Proxy @px closes: its calls end. true: its node may close now; false:
 * a thread still replies through it (a zombie, closed by br_xc_tick). */
bool br_xc_proxy_gone(struct br_dom *d, struct br_proxy *px);
/* The zombies whose threads are done: closed (with @close_fn). */
void br_xc_reap(struct br_dom *d, bool all, void (*close_fn)(struct br_dom *, struct br_proxy *));
void br_xc_stop(struct bridge *br);
/* px has out entries: on its domain's out list (fwd.c's br_fwd_out
 * publishes them), once. */
void br_xc_out_list(struct br_dom *d, struct br_proxy *px);
/* fwd.c published @n backlog replies of @bytes from px's out entries. */
void br_xc_sent(struct br_dom *d, struct br_proxy *px, uint32_t n, uint64_t bytes);

/* ------------------------------------------------------------ dlv.c */

void br_dlv_data(struct br_dom *d, const char *subj, const struct br_hdr *h);
/* A BCAST: its copies to this host's nodes, each on its stream. */
void br_dlv_bcast(struct br_dom *d, const char *subj, const struct br_hdr *h);
/* After each round of received messages: copies still ahead of a gap
 * go now (what they waited for is lost). */
void br_dlv_round(struct br_dom *d);
/* Queued messages, into rings that have room now: how many went. */
uint32_t br_dlv_retry(struct br_dom *d);
void br_dlv_idle_grants(struct br_dom *d, int64_t now);
/* A local node left: drop its streams (counted lost). */
void br_dlv_drop_local(struct br_dom *d, struct br_local *l);
/* Messages queued from proxy px's node still wait: true. */
bool br_dlv_holds(struct br_dom *d, const char *from);
void br_rstream_free(struct br_rstream *rs);

/* ------------------------------------------------------------ fwd.c */

/* ------------------------------------------------------------ names.c */

/* The owner of a name may have changed: make the proxy agree. */
void br_resolve(struct br_dom *d, const char *name);
struct br_proxy *br_proxy_by_tag(struct bridge *br, uint32_t tag);
/* Lingering proxies whose queued messages are out, or too old: closed;
 * proxies that failed to open and are due: opened again. */
void br_names_tick(struct br_dom *d, int64_t now);
void br_names_fini(struct br_dom *d);
/* Poll (on) or stop polling (off) px's fd. */
void br_proxy_enable(struct br_dom *d, struct br_proxy *px, bool on);
/* The proxy of @name, if it stands for (@host, @inc), is to be closed as
 * dead (SHMRPC_CLOSE_DEAD): call before the br_resolve that retires it. */
void br_proxy_mark_dead(struct br_dom *d, const char *name, const char *host, uint64_t inc);

/* ------------------------------------------------------------ fwd.c */

void br_fwd_drain(struct br_dom *d, struct br_proxy *px);
void br_fwd_grant(struct br_dom *d, const struct br_hdr *h);
/* A new stream to px (after a reconnect): SYNC for the old one first. */
void br_fwd_reset(struct br_dom *d, struct br_proxy *px);
void br_fwd_tick(struct br_dom *d, int64_t now);
/* Proxies with entries to publish (replies, cancels): published. */
void br_fwd_out(struct br_dom *d);
/* A message from local sender @from to px, alone, on px's stream (past
 * the credits: a held broadcast copy that does not go in the BCAST). */
void br_fwd_one(struct br_dom *d, struct br_proxy *px, const char *from, const void *data,
		uint32_t len);
/* A BCAST that stood for px's copy of @len bytes from @from was published
 * (rc 0: the copy takes its sequence number) or not (rc: counted dropped). */
void br_fwd_sent(struct br_dom *d, struct br_proxy *px, const char *from, uint32_t len, int rc);

/* ------------------------------------------------------------ bcast.c */

void br_bc_init(struct br_dom *d);
/* Barriers past their time: published with the copies they have. */
void br_bc_tick(struct br_dom *d, int64_t now);
void br_bc_fini(struct br_dom *d);

/* ------------------------------------------------------------ remote.c */

int br_remote_init(struct br_dom *d);
void br_remote_fini(struct br_dom *d);
void br_remote_tick(struct br_dom *d, int64_t now);
void br_remote_resync(struct br_dom *d);

/* ------------------------------------------------------------ local.c */

int br_local_init(struct br_dom *d);
void br_local_fini_subs(struct br_dom *d); /* before the connection closes */
void br_local_fini(struct br_dom *d);
void br_local_poll(struct br_dom *d, int64_t now);
/* What the control node received: membership events, handled; the rest
 * (messages and broadcasts to it) discarded. */
void br_local_ctl_drain(struct br_dom *d);
void br_local_announce(struct br_dom *d, int type, const struct br_local *l);
/* Snapshot of our nodes to host (NULL: to whoever asked on s). */
void br_local_snapshot(struct br_dom *d, const char *to);
void br_local_bye(struct br_dom *d);
void br_local_heartbeat(struct br_dom *d);
/* The local node of a sender met in a ring, announced now if need be. */
struct br_local *br_local_sender(struct br_dom *d, const char *name);

#endif /* SHMRPC_BRIDGE_H */
