/* SPDX-License-Identifier: MIT */
/*
 * libshmrpc: message passing between processes of one Linux host through
 * shared memory, with the kernel doing the waking and the cleaning.
 *
 * Nodes join a named *domain* (a registry in /dev/shm), find each other by
 * name and exchange variable-length messages over lock-free single-producer
 * single-consumer rings, one per (sender, receiver) pair, created on the
 * first send. Receivers never poll in a loop: they spin briefly, then sleep
 * on futex words until a sender wakes them. A sender issues no system call
 * at all while its receiver is awake.
 *
 * Conventions, for every function below:
 *  - functions returning int return >= 0 on success or a negative errno
 *    value on failure; they never read or set errno;
 *  - timeout_ms: 0 never blocks (-EAGAIN when the call would have to wait),
 *    -1 blocks until the call can complete, > 0 blocks at most that many
 *    milliseconds (-ETIMEDOUT);
 *  - node and domain names are 1 to SHMRPC_NAME_MAX characters of
 *    [A-Za-z0-9._-] and do not start with '.'; other names are -EINVAL
 *    (-ENAMETOOLONG when only the length is wrong);
 *  - a node handle is used by one process; shmrpc_send, shmrpc_broadcast,
 *    shmrpc_reserve/commit/cancel, the shmrpc_peer_* calls and the
 *    registry queries may be called from many threads at once; the
 *    receiving calls (shmrpc_recv, shmrpc_recv_batch, shmrpc_peek/release,
 *    shmrpc_dispatch) from one thread at a time, and not while
 *    shmrpc_start's thread runs (-EBUSY);
 *  - in a child forked from the process that opened it, a node can only be
 *    closed (shmrpc_close frees the child's copy and leaves the node to the
 *    parent); the queries shmrpc_nodes, shmrpc_is_local,
 *    shmrpc_node_host, shmrpc_wait_node, shmrpc_max_size and shmrpc_stats
 *    work, every other call on it returns -ECHILD.
 *
 * Shared memory (files in /dev/shm, a tmpfs) is reserved in full when the
 * library creates it, never taken page by page when first touched: a full
 * /dev/shm (Docker's default is 64 MiB) is -ENOSPC from the call that needed
 * the space, never a SIGBUS later, and nothing half-made is left. What is
 * reserved, and when:
 *  - the domain's registry, by the shmrpc_open that creates the domain:
 *    a 256-byte header, max_nodes x 128 bytes, and the event log (256
 *    entries of 96 bytes): 152 KiB by default;
 *  - each node's segment, by its shmrpc_open: a page, then for messages and
 *    for replies each a bitmap of max_nodes bits and 8 bytes per max_nodes,
 *    the whole rounded up to a page (24 KiB by default, 1044 KiB for 65536
 *    nodes);
 *  - each ring, by the first shmrpc_send, shmrpc_reserve, shmrpc_warmup or
 *    shmrpc_broadcast from a node to another: the receiver's ring_bytes plus
 *    one page (260 KiB by default).
 * A file larger than RLIMIT_FSIZE (ulimit -f) is -EFBIG, never SIGXFSZ.
 */
#ifndef SHMRPC_H
#define SHMRPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SHMRPC_API
#define SHMRPC_API __attribute__((visibility("default")))
#endif

#define SHMRPC_VERSION_MAJOR 0
#define SHMRPC_VERSION_MINOR 3

/* Longest node or domain name, without its terminating NUL. */
#define SHMRPC_NAME_MAX 63

/*
 * shmrpc_last_error - what went wrong in this thread's last failed call, in
 * words that name the culprit ("opts.ring_bytes 5000: not a power of two in
 * [4096, 1073741824]"), or "" if no call of this thread has failed. The text
 * stays until the next failure of this thread; never NULL.
 */
SHMRPC_API const char *shmrpc_last_error(void);

/*
 * Log of what the library does on its own: a dead node reclaimed, a corrupt
 * ring dropped, a backend fallback and why. Silent by default; with
 * $SHMRPC_LOG=debug|info|warn it goes to stderr from that level up, and
 * shmrpc_set_log(fn, arg) sends every level to fn instead (NULL: back to
 * $SHMRPC_LOG). fn may run in any thread, one call at a time, and must not
 * call libshmrpc; once shmrpc_set_log returns, the previous fn is not
 * running any more.
 */
#define SHMRPC_LOG_DEBUG 0
#define SHMRPC_LOG_INFO 1
#define SHMRPC_LOG_WARN 2
typedef void (*shmrpc_log_fn)(int level, const char *msg, void *arg);
SHMRPC_API void shmrpc_set_log(shmrpc_log_fn fn, void *arg);

/* A node: one process's membership of a domain. Opaque. */
struct shmrpc_node;

/*
 * Options of shmrpc_open. Zero-initialise, set sz = sizeof(struct
 * shmrpc_opts), then set the fields you need; a zero field takes its
 * default. A caller built against an older header passes a smaller sz and
 * gets the defaults for the fields it does not know; a larger sz is
 * accepted when the bytes this library does not know are zero (-E2BIG
 * otherwise).
 */
struct shmrpc_opts {
	size_t sz;	     /* sizeof(struct shmrpc_opts), for ABI growth */
	const char *domain;  /* NULL: $SHMRPC_DOMAIN, else "default" */
	uint32_t ring_bytes; /* capacity of each ring that delivers TO this node; 0: 256 KiB */
	uint32_t max_nodes;  /* registry capacity if this call creates it; 0: 1024 */
	uint32_t mode;	     /* permission bits of created segments; 0: 0600 */
	const char *backend; /* "uring", "futex", or NULL: automatic, $SHMRPC_BACKEND overrides */
	int32_t spin_us;     /* longest receiver spin before sleeping; see below */
	uint32_t events;     /* SHMRPC_EV_* bits: membership events this node receives; 0: none */
	uint32_t _reserved;  /* 0 (see below) */
	const char *proxy_host; /* NULL: a node of this host; see below */
	uint32_t max_calls;	/* calls in flight, and requests in progress; 0: 1024 */
	uint32_t flags;		/* SHMRPC_OPEN_* bits; 0: none (see below) */
	uint64_t _reserved2;	/* 0 (see below) */
};
/*
 * ring_bytes: a power of two in [4 KiB, 1 GiB]. max_nodes: at most 65536.
 * mode: only owner and group bits (07x0), owner read-write. spin_us: in
 * microseconds; the spin adapts below it (see shmrpc_recv); 0: take
 * $SHMRPC_SPIN_US, else 20; SHMRPC_SPIN_NEVER: never spin. events: see
 * "Membership events" below; bits other than SHMRPC_EV_* are -EINVAL.
 * _reserved: must be 0 (-EINVAL). It makes the struct larger than it was
 * before events: events lies in what used to be the tail padding, which a
 * caller built against the older header may have left uninitialised, so
 * events is read only from a caller whose sz covers _reserved too.
 * proxy_host: this node stands for a node of that name on host proxy_host
 * (a name of the node-name rules); shmrpc-bridge opens such proxies
 * (docs/cross-host.md). It is an ordinary node in every other way;
 * shmrpc_is_local answers 0 for it and shmrpc_node_host names its host,
 * and callers see it as serving from its open (its opener is expected to
 * call shmrpc_serve before its first receiving call; a request met before
 * that is answered -EOPNOTSUPP, as always).
 * max_calls: at most 1048576; bounds this node's calls in flight
 * (shmrpc_call_start past it: -EAGAIN) and, as a server, its requests in
 * progress (a request past it is answered -EBUSY).
 * flags: SHMRPC_OPEN_* bits (others: -EINVAL). Like events, flags lies in
 * what used to be tail padding, so it is read only from a caller whose sz
 * covers _reserved2 too; _reserved2 must be 0 (-EINVAL).
 */

/*
 * opts.flags: SHMRPC_OPEN_BCAST_MARKS: this node takes broadcast marks.
 * Every shmrpc_broadcast copy to it is marked with the broadcast's number
 * and its count of marked copies, which shmrpc_recv_batch_marks reports
 * (every other receiving call delivers the copy as a plain message). For a
 * node that forwards what it receives and must know which messages were
 * one broadcast (shmrpc-bridge's proxies: docs/cross-host.md).
 */
#define SHMRPC_OPEN_BCAST_MARKS 0x1u

/* opts.spin_us: sleep at once, never spin ($SHMRPC_SPIN_US=0 says the same). */
#define SHMRPC_SPIN_NEVER (-1)

/*
 * Membership events. A node whose opts.events is not 0 receives, through
 * every receiving call (shmrpc_recv, shmrpc_peek, shmrpc_dispatch,
 * shmrpc_start's handler, shmrpc_recv_batch; they make shmrpc_fd readable),
 * one message per change of the domain's membership that it subscribed
 * to: its sender is SHMRPC_EVENT_FROM, its payload one struct shmrpc_event
 * (len == sizeof(struct shmrpc_event)). Every node of the domain is in
 * scope, but not the receiver itself, and only changes after it joined.
 *
 * Order: events come in the order the domain's registry recorded them. A
 * JOIN of node X comes before any message from X; a LEAVE or DEATH of X
 * comes after every message X had published to this node (they are
 * drained first, including those in a ring this node had not opened yet)
 * and none of X's comes after it. A DEATH is recorded when X is cleaned up:
 * by a peer's watcher, shmrpc-reaper, or the next lazy check, whichever is
 * first (about a millisecond with a watcher or the reaper). A node that
 * joined and died before it was complete produces no event.
 * (Without events, a node loses what a dead sender left in a ring it had
 * not opened yet: that ring goes at the cleanup, as it always did.)
 *
 * Overflow: the domain keeps its last 256 events (SHMRPC_EV_LOG) in shared
 * memory, whoever subscribes; nothing waits for a slow receiver. A receiver
 * more than 256 events behind loses the oldest: the next event it gets says
 * in `dropped` how many were lost just before it (events of any type, its
 * own included, since they could not be read).
 *
 * Waking: a subscribed receiver also sleeps on the registry's epoch word,
 * which every join and leave of the domain bumps: one more futex word per
 * sleep (futex backend: one ring fewer watched directly, 126). On kernels
 * without futex_waitv(2) (before 5.16) an event waits for the next message
 * or the safety timeout (500 ms).
 *
 * A node closed with shmrpc_close_flags(node, SHMRPC_CLOSE_DEAD) is a
 * SHMRPC_EV_DEATH too (a bridge's proxy of a remote node that died).
 */
#define SHMRPC_EV_JOIN 0x1u	   /* a node joined the domain */
#define SHMRPC_EV_LEAVE 0x2u	   /* a node closed */
#define SHMRPC_EV_DEATH 0x4u	   /* a node's process died without closing it */
#define SHMRPC_EVENT_FROM ".event" /* the sender name of events; no node can have it */
#define SHMRPC_EV_LOG 256	   /* events a domain keeps for its slow receivers */

struct shmrpc_event {
	uint32_t type;			/* one SHMRPC_EV_* */
	uint32_t pid;			/* the node's process id, as its own pid namespace saw it */
	uint64_t id;			/* the node's id: slot << 32 | generation */
	char name[SHMRPC_NAME_MAX + 1]; /* the node's name */
	uint32_t dropped;		/* events lost just before this one (overflow) */
};

/*
 * Receive callback of shmrpc_dispatch and shmrpc_start. data points into
 * the shared ring and is valid only until the callback returns; the sender
 * could still write to it, so validate what you read from it before trusting
 * it (or copy it first). from is the sender's name.
 */
typedef void (*shmrpc_handler)(struct shmrpc_node *node, const char *from, const void *data,
			       size_t len, void *arg);

/*
 * Counters of one node since it joined (shmrpc_stats). The struct grows at
 * its end, as the library does: a binary built against an older header
 * gets the fields it knows, and shmrpc_stats_size fills any size.
 */
struct shmrpc_stats {
	uint64_t msgs_sent;	/* messages committed to outbound rings */
	uint64_t msgs_recv;	/* messages consumed from inbound rings */
	uint64_t bytes_sent;	/* payload bytes of msgs_sent */
	uint64_t bytes_recv;	/* payload bytes of msgs_recv */
	uint64_t send_full;	/* sends that found the target's ring full */
	uint64_t wakes_sent;	/* futex wakes issued to sleeping receivers/senders */
	uint64_t wakes_skipped; /* publishes that needed no wake: the peer was awake */
	uint64_t sleeps;	/* times this node went to sleep in the kernel */
	uint64_t spins;		/* waits that ended while spinning, before any sleep */
	uint64_t connects;	/* outbound rings created */
	uint64_t rings_in;	/* inbound rings currently open */
	uint64_t rings_out;	/* outbound rings currently open */
	/* request/response (libshmrpc 0.2): requests count in msgs_sent and
	 * msgs_recv, replies do not */
	uint64_t calls;		  /* calls started: requests sent */
	uint64_t calls_in_flight; /* calls started and not over */
	uint64_t calls_timeout;	  /* calls ended by their deadline (-ETIMEDOUT) */
	uint64_t calls_pipe;	  /* calls ended because the server left or died */
	uint64_t calls_remote;	  /* calls ended by the server's error reply */
	uint64_t calls_cancelled; /* calls cancelled, or ended by -ENOBUFS */
	uint64_t calls_refused;	  /* calls not sent: no such node, not serving... */
	uint64_t calls_late;	  /* replies dropped: their call was over */
	uint64_t calls_served;	  /* requests this node's serve function ran on */
	uint64_t calls_expired;	  /* requests dropped unserved: deadline passed */
	uint64_t calls_rejected;  /* requests answered -EOPNOTSUPP or -EBUSY */
	uint64_t replies_sent;	  /* replies this node sent */
	uint64_t replies_failed;  /* replies refused: caller gone, deadline... */
};

/*
 * shmrpc_open - join a domain under a unique name.
 * @name: this node's name, unique among the live nodes of the domain.
 * @opts: NULL for all defaults.
 * @out: receives the node handle.
 *
 * Creates the domain's registry if it does not exist, and this node's
 * segment, both reserved in full (see the top of this file). A slot left by
 * a process that died is reclaimed here. Returns 0, or -EINVAL/-ENAMETOOLONG
 * (bad name or options), -EEXIST (a live node has this name), -ENOSPC (the
 * registry is full, or /dev/shm cannot hold the registry or the node
 * segment: shmrpc_last_error says which; a domain whose first node could
 * not be made is not left in /dev/shm), -EFBIG (RLIMIT_FSIZE), -EOPNOTSUPP
 * (the requested backend cannot work here), -EPROTO (the registry in
 * /dev/shm is not one this library can use), -EACCES/-EPERM (a segment
 * belongs to somebody else), -ENOMEM, or another -errno of the underlying
 * system calls.
 */
SHMRPC_API int shmrpc_open(const char *name, const struct shmrpc_opts *opts,
			   struct shmrpc_node **out);

/*
 * shmrpc_close - leave the domain. Stops shmrpc_start's thread, issues the
 * wakes held back by SHMRPC_SEND_DEFER, wakes peers blocked on this node
 * (their calls return -EPIPE), unlinks this node's segments and frees its
 * slot. When the last node of a domain closes, no file of the domain is left
 * in /dev/shm. Accepts NULL. Messages queued to this node and not yet
 * received are discarded; messages it sent are still delivered. No other
 * call on the node may run or start meanwhile, and the handler of
 * shmrpc_start must not call it.
 */
SHMRPC_API void shmrpc_close(struct shmrpc_node *node);

#define SHMRPC_CLOSE_DEAD 0x1u /* shmrpc_close_flags: the domain sees a DEATH */

/*
 * shmrpc_close_flags - shmrpc_close, with @flags: 0 is shmrpc_close;
 * SHMRPC_CLOSE_DEAD makes the domain's subscribers get SHMRPC_EV_DEATH for
 * this node instead of SHMRPC_EV_LEAVE, as if its process had died: for a
 * node that stands for another (shmrpc-bridge closes a proxy so when the
 * remote node died or its host went silent). Everything else is
 * shmrpc_close's: its queued messages are discarded, what it sent is still
 * delivered before the event (drain first), peers' calls and handles get
 * -EPIPE. Returns 0 (NULL @node: nothing done), or -EINVAL for an unknown
 * flag, the node then left open. In a forked child the flag changes nothing
 * (the node stays the parent's).
 */
SHMRPC_API int shmrpc_close_flags(struct shmrpc_node *node, unsigned flags);

/*
 * shmrpc_send - copy one message of len bytes (0 allowed) to node @to.
 *
 * Connects on first use (see shmrpc_warmup): creates the ring to @to and
 * reserves it in full, the receiver's ring_bytes plus one page. Blocks, per
 * timeout_ms, only while the target's ring is full, sleeping in the kernel.
 * Returns 0, or -EMSGSIZE (larger than shmrpc_max_size(node, to)), -ENOENT
 * (no live node has that name), -EINVAL (bad arguments, or @to is this
 * node), -EAGAIN / -ETIMEDOUT (ring still full), -EPIPE (the node we were
 * connected to under that name left or died, and no live node has that name
 * now: every send to the name returns -EPIPE until a node of that name joins
 * again; or that node, still there, dropped our ring as corrupt: -EPIPE
 * once, and the next send connects to it afresh), -EPROTO (the target's ring
 * is corrupt), -ENOSPC (/dev/shm cannot hold the ring; -ENOMEM, -EFBIG,
 * and -EMFILE/-ENFILE (no file descriptor left to open the receiver's
 * segment or create the ring) likewise: nothing of the attempt is left, the
 * node works on, and the next send to @to tries again; shmrpc_last_error
 * says "ring to '<to>' (<size>): /dev/shm is full"). Once a node of that
 * name has joined again (shmrpc_wait_node returns), the next send connects
 * to it and sends to it, without -EPIPE; so does a send blocked on the old
 * node's full ring when the old node leaves. Messages queued to the old node
 * and not received are lost with it.
 */
SHMRPC_API int shmrpc_send(struct shmrpc_node *node, const char *to, const void *data, size_t len,
			   int timeout_ms);

/*
 * shmrpc_broadcast - send one message to every other live node of the
 * domain. timeout_ms bounds the whole call. Returns how many nodes got it
 * (0 when there is nobody else), or -EMSGSIZE if it fits no target's ring,
 * -ENOMEM (no memory for the list of targets: nobody got it), or -EINVAL.
 * A target whose ring stays full past the timeout, that leaves meanwhile,
 * or whose ring could not be created (a full /dev/shm: see shmrpc_send's
 * -ENOSPC; the next broadcast tries again) is not counted.
 */
SHMRPC_API int shmrpc_broadcast(struct shmrpc_node *node, const void *data, size_t len,
				int timeout_ms);

/*
 * Deferred wakes. shmrpc_send_flags and shmrpc_commit_flags with
 * SHMRPC_SEND_DEFER publish the message but hold back the wake a sleeping
 * receiver needs; shmrpc_flush then issues every wake held back by this node
 * (from any thread) at once: with the uring backend, in one io_uring_enter.
 * A producer that publishes to many rings pays one system call instead of
 * one per sleeping receiver. Until the flush the receiver may sleep on,
 * though never longer than its safety timeout; shmrpc_close flushes.
 * shmrpc_flush returns how many wakes it issued.
 */
#define SHMRPC_SEND_DEFER 0x1u
SHMRPC_API int shmrpc_send_flags(struct shmrpc_node *node, const char *to, const void *data,
				 size_t len, int timeout_ms, unsigned flags);
SHMRPC_API int shmrpc_flush(struct shmrpc_node *node);

/*
 * shmrpc_fd - a file descriptor for an event loop (epoll, poll, select):
 * an eventfd that becomes readable whenever messages may be waiting. When it
 * does, call shmrpc_dispatch(node, fn, arg, 0) (or shmrpc_recv with timeout
 * 0 until -EAGAIN) from the loop's thread; the receiving calls reset it and,
 * before they return, re-arm it (it is made readable again at once if
 * messages are still waiting). Readable can be spurious; never block on it
 * with the receiving calls' timeouts. Returns the descriptor (owned by the
 * node: do not close it), the same at every call, or -errno.
 *
 * With the uring backend the eventfd is registered on the node's io_uring;
 * with the futex backend a helper thread (started by the first call) sleeps
 * on the receiver's futex words for it. Either way the kernel may interrupt
 * the loop's epoll_wait with EINTR when a wake arrives: retry it.
 *
 * A receiving call that returned -EMFILE/-ENFILE/-ENOMEM (a sender's ring
 * could not be opened: see shmrpc_recv) left it pending; the descriptor
 * does not become readable for its retry. Call a receiving call again once
 * resources are freed, or from a timer (each call retries it).
 */
SHMRPC_API int shmrpc_fd(struct shmrpc_node *node);

/*
 * shmrpc_recv - receive one message from any sender into buf.
 * @from: NULL, or at least SHMRPC_NAME_MAX + 1 bytes for the sender's name.
 *
 * Waiting: the receiver first spins, checking its rings, for at most
 * opts.spin_us; the bound it actually uses adapts to how soon messages came
 * after past waits began (it grows while they come within it, shrinks when
 * they do not), so bursts are caught without a sleep and idle nodes do not
 * burn CPU. Then it sleeps in the kernel until a sender wakes it.
 *
 * Returns the message's length, or -EMSGSIZE when cap is too small (the
 * message stays queued: retry with a larger buffer; shmrpc_peek tells the
 * length), -EAGAIN/-ETIMEDOUT, -EPROTO (a sender's ring is corrupt: that
 * ring is dropped, the others go on), -EBUSY (another thread receives),
 * -EMFILE/-ENFILE/-ENOMEM (see below).
 *
 * A sender's new ring that this process cannot open for now (no file
 * descriptor or memory left) is not lost: the receiving calls retry it, at
 * every call and after every sleep (sleeps last at most the safety
 * timeout, 500 ms), and its messages arrive in order once it opens. The
 * first receiving call that meets the failure with no message to return
 * returns it (-EMFILE, -ENFILE, -ENOMEM; shmrpc_last_error names the
 * sender and the cause); later calls retry quietly, and block or time out
 * as usual, until the ring opens (a new failure after that is reported
 * again). Messages from other senders flow meanwhile.
 */
SHMRPC_API int shmrpc_recv(struct shmrpc_node *node, void *buf, size_t cap, char *from,
			   int timeout_ms);

/*
 * shmrpc_dispatch - wait up to timeout_ms for the first message, then call
 * fn for it and for every message already waiting. Returns how many
 * messages fn handled (>= 1), or -EAGAIN/-ETIMEDOUT when none came, -EPROTO,
 * -EBUSY, -EMFILE/-ENFILE/-ENOMEM (a sender's ring cannot be opened for
 * now: said once, retried; see shmrpc_recv). fn may send, but must not
 * receive.
 */
SHMRPC_API int shmrpc_dispatch(struct shmrpc_node *node, shmrpc_handler fn, void *arg,
			       int timeout_ms);

/*
 * shmrpc_start - run a background thread that calls fn for every message
 * (the receiving calls then return -EBUSY). -EALREADY if one runs.
 * shmrpc_stop - stop and join it; -EALREADY if none runs, -EDEADLK when
 * called from fn (it would wait for itself). fn must not call shmrpc_close.
 */
SHMRPC_API int shmrpc_start(struct shmrpc_node *node, shmrpc_handler fn, void *arg);
SHMRPC_API int shmrpc_stop(struct shmrpc_node *node);

/*
 * shmrpc_nodes - names of the live nodes of the domain, this one included.
 * Fills at most cap entries; returns the total count, which may be > cap.
 */
SHMRPC_API int shmrpc_nodes(struct shmrpc_node *node, char (*names)[SHMRPC_NAME_MAX + 1],
			    size_t cap);

/* shmrpc_is_local - 1 if a live node of that name is in the domain and runs
 * on this host, else 0: no such node, or a proxy for a node of another host
 * (opts.proxy_host; shmrpc_node_host tells which host). -EINVAL for a bad
 * name. */
SHMRPC_API int shmrpc_is_local(struct shmrpc_node *node, const char *name);

/*
 * shmrpc_node_host - where the live node @name runs. Returns 0 for a node
 * of this host (@host gets ""), 1 for a proxy of a node of another host
 * (@host gets that host's name, at most SHMRPC_NAME_MAX + 1 bytes with its
 * NUL), -ENOENT when no live node has that name, -ERANGE when @cap is too
 * small for the host's name, -EPROTO when the proxy's segment holds no
 * valid host name, -EINVAL for a bad name or a NULL @host with @cap > 0.
 */
SHMRPC_API int shmrpc_node_host(struct shmrpc_node *node, const char *name, char *host, size_t cap);

/*
 * shmrpc_wait_node - return 0 as soon as a node of that name is live,
 * sleeping on the registry's epoch futex meanwhile (-EAGAIN/-ETIMEDOUT).
 */
SHMRPC_API int shmrpc_wait_node(struct shmrpc_node *node, const char *name, int timeout_ms);

/*
 * shmrpc_warmup - open rings to every other live node now, so no later send
 * pays for connecting. Returns how many connections are open afterwards,
 * or, when some could not be made for lack of resources, -ENOSPC (/dev/shm
 * cannot hold a ring) or -ENOMEM, -EMFILE, -ENFILE, -EFBIG: every other
 * node is still tried and the connections made stay open (later sends use
 * them); shmrpc_last_error names the first node missed. Nodes that leave or
 * are not usable meanwhile are left out without an error.
 */
SHMRPC_API int shmrpc_warmup(struct shmrpc_node *node);

/*
 * shmrpc_stats - this node's counters since it joined, the whole struct as
 * this header declares it (a binary built against the 0.1 header, without
 * the calls' counters, is linked to a version of it that fills only what
 * that header knew).
 * shmrpc_stats_size - the same into the first @size bytes of @st (for
 * bindings that size the struct themselves): at least the 0.1 fields (96
 * bytes), else -EINVAL; bytes past what this library knows are zeroed.
 */
SHMRPC_API int shmrpc_stats(struct shmrpc_node *node, struct shmrpc_stats *st);
SHMRPC_API int shmrpc_stats_size(struct shmrpc_node *node, struct shmrpc_stats *st, size_t size);

/* shmrpc_backend - "uring" or "futex": the wake backend this node uses. */
SHMRPC_API const char *shmrpc_backend(struct shmrpc_node *node);

/*
 * shmrpc_backend_available - 1 if wake backend @name ("uring", "futex") can
 * work on this machine, 0 if not, -EINVAL for NULL or an unknown name.
 */
SHMRPC_API int shmrpc_backend_available(const char *name);
/* shmrpc_backend_default - the backend shmrpc_open picks when none is asked
 * for ($SHMRPC_BACKEND is not consulted). */
SHMRPC_API const char *shmrpc_backend_default(void);

/* shmrpc_name, shmrpc_domain - this node's name and domain. */
SHMRPC_API const char *shmrpc_name(struct shmrpc_node *node);
SHMRPC_API const char *shmrpc_domain(struct shmrpc_node *node);

/*
 * shmrpc_max_size - largest message that node @to can receive (half its
 * ring, less an 8-byte record header), or, for @to == NULL, that this node
 * can receive. -ENOENT when @to is not live.
 */
SHMRPC_API int shmrpc_max_size(struct shmrpc_node *node, const char *to);

/*
 * Zero-copy sending: reserve space in the target's ring, write the message
 * in place, commit it.
 *
 *	struct shmrpc_txbuf tx;
 *	int err = shmrpc_reserve(node, "cam", 4096, &tx, -1);
 *	if (!err) {
 *		n = fill(tx.data, tx.cap);
 *		err = shmrpc_commit(node, &tx, n);   // n <= tx.cap
 *	}
 *
 * shmrpc_reserve - reserve len bytes (tx->cap == len) for node @to. Same
 * errors as shmrpc_send (the first reserve to @to connects as the first
 * send does: -ENOSPC when /dev/shm cannot hold the ring). Until shmrpc_commit or shmrpc_cancel, other sends
 * to @to (from any thread) wait, and the calling thread must not send to @to
 * itself (-EDEADLK).
 * shmrpc_commit - publish the first len bytes (len <= tx->cap) as one
 * message and wake the receiver if it sleeps. -EINVAL if len > cap.
 * shmrpc_cancel - drop the reservation; nothing is sent.
 * Both end the reservation, which must be ended by the thread that made it.
 */
struct shmrpc_txbuf {
	void *data;	/* where to write the message */
	size_t cap;	/* bytes reserved */
	void *_priv[2]; /* library-owned */
};
SHMRPC_API int shmrpc_reserve(struct shmrpc_node *node, const char *to, size_t len,
			      struct shmrpc_txbuf *tx, int timeout_ms);
SHMRPC_API int shmrpc_commit(struct shmrpc_node *node, struct shmrpc_txbuf *tx, size_t len);
/* shmrpc_commit with flags: SHMRPC_SEND_DEFER (see shmrpc_flush). */
SHMRPC_API int shmrpc_commit_flags(struct shmrpc_node *node, struct shmrpc_txbuf *tx, size_t len,
				   unsigned flags);
SHMRPC_API void shmrpc_cancel(struct shmrpc_node *node, struct shmrpc_txbuf *tx);

/*
 * Zero-copy receiving: look at the next message in place, then release it.
 *
 * shmrpc_peek - wait (per timeout_ms) for a message and describe it in @rx
 * without consuming it; returns its length. rx->data stays valid until
 * shmrpc_release; the sender could still write to it (see shmrpc_handler).
 * Peeking again before releasing describes the same message. Errors as
 * shmrpc_recv's, -EMFILE/-ENFILE/-ENOMEM included. Any other receiving call
 * before the release (shmrpc_recv, shmrpc_dispatch, shmrpc_recv_batch,
 * shmrpc_recv_batch_marks) receives that message first and ends the peek.
 * shmrpc_release - consume the message described by @rx (-EINVAL if @rx is
 * not the current peek).
 *
 * If the sender corrupts its ring while a peek is held, the receiving call
 * that finds it returns -EPROTO, and so does every receiving call but
 * shmrpc_release until the peek is released: rx->data stays mapped (and
 * readable, with whatever the sender wrote there) until then. shmrpc_release
 * then returns 0, ends the peek and drops the ring (its sender gets -EPIPE);
 * messages from other senders flow again.
 */
struct shmrpc_rxbuf {
	const void *data;		/* the message, in the ring */
	size_t len;			/* its length */
	char from[SHMRPC_NAME_MAX + 1]; /* the sender's name */
	void *_priv[2];			/* library-owned */
};
SHMRPC_API int shmrpc_peek(struct shmrpc_node *node, struct shmrpc_rxbuf *rx, int timeout_ms);
SHMRPC_API int shmrpc_release(struct shmrpc_node *node, struct shmrpc_rxbuf *rx);

/*
 * shmrpc_recv_batch - receive up to n messages from any senders, copying
 * each into msgs[i].buf (msgs[i].cap bytes; buf may be NULL when cap is 0):
 * waits per timeout_ms for the first, as shmrpc_recv does, then takes what
 * is already waiting, without waiting again. Sets msgs[i].len and
 * msgs[i].from for each; returns the count (>= 1). Messages come in the
 * order shmrpc_recv would return them, events included. A message larger
 * than its msgs[i].cap ends the batch before it and stays queued: if it is
 * the first, the call returns -EMSGSIZE, as shmrpc_recv does. Errors as
 * shmrpc_recv's, -EINVAL for n == 0 or msgs NULL. A ring's space goes back
 * to its sender once per call, not once per message: one store and at most
 * one wake per sender's ring. A request met on the way is served in its
 * place: the serve function finds msgs[0..k) filled in (len, from) with
 * the messages taken before it, and msgs[k..n) as the caller left them.
 */
struct shmrpc_msg {
	void *buf;			/* in: where to copy the message */
	size_t cap;			/* in: its size */
	size_t len;			/* out: the message's length */
	char from[SHMRPC_NAME_MAX + 1]; /* out: the sender's name */
};
SHMRPC_API int shmrpc_recv_batch(struct shmrpc_node *node, struct shmrpc_msg *msgs, unsigned n,
				 int timeout_ms);

/*
 * shmrpc_recv_batch_marks - shmrpc_recv_batch, also filling marks[i] for
 * each message returned: bcast 0 for a message that is no marked
 * broadcast copy; else the broadcast's number (not 0; one sender's
 * broadcasts have distinct, increasing numbers, unique per incarnation of
 * the sender) and copies, how many marked copies that broadcast made: the
 * targets it found that take marks (opts.flags SHMRPC_OPEN_BCAST_MARKS)
 * and whose ring takes the message with its mark, including those it then
 * could not reach (a ring full past its timeout, a target that left). Only
 * a node opened with SHMRPC_OPEN_BCAST_MARKS gets marked copies; on other
 * nodes every mark is 0. A marked copy ends the batch: it is the last
 * message returned. A copy whose message is within 16 bytes of the
 * target's largest (shmrpc_max_size) travels unmarked and is not counted.
 * Errors as shmrpc_recv_batch's, -EINVAL for marks NULL.
 */
struct shmrpc_mark {
	uint64_t bcast;	 /* 0: not a marked broadcast copy; else its number */
	uint32_t copies; /* the broadcast's marked copies, this one included */
	uint32_t _reserved;
};
SHMRPC_API int shmrpc_recv_batch_marks(struct shmrpc_node *node, struct shmrpc_msg *msgs,
				       struct shmrpc_mark *marks, unsigned n, int timeout_ms);

/*
 * Peer handles: one incarnation of a named node, connected. A send through
 * a handle skips the name lookup and goes to that incarnation (its slot and
 * generation) or nowhere: once it has left or died, every call through the
 * handle returns -EPIPE, even after a node of the same name joined again
 * (shmrpc_peer_get gives a handle to the new one). A handle is used from
 * many threads, as a node's send calls are.
 *
 * shmrpc_peer_get - wait per timeout_ms for a live node @name (as
 * shmrpc_wait_node does), connect to it (as a first send does, creating
 * the ring: see shmrpc_send), and return a handle in *out bound to the
 * incarnation it connected to. 0, or -EINVAL (bad arguments, @name is this
 * node), -EAGAIN/-ETIMEDOUT (no such node in time), -ENOSPC/-ENOMEM/-EMFILE
 * (see shmrpc_send), -ECHILD, -errno.
 * shmrpc_peer_put - end the handle (NULL accepted). Any reservation made
 * through it must be committed or cancelled first. It may come after
 * shmrpc_close(node): a handle whose node closed returns -EPIPE from every
 * call and 0 from shmrpc_peer_alive, until it is put.
 * shmrpc_peer_alive - 1 while the incarnation is live as far as the domain
 * knows, 0 once it left or its death was noticed (see Membership events);
 * no system call.
 * shmrpc_peer_name - the node's name (valid until shmrpc_peer_put).
 * shmrpc_peer_send - shmrpc_send_flags to that incarnation (flags:
 * SHMRPC_SEND_DEFER or 0): 0, -EPIPE (it left or died; or, as for
 * shmrpc_send, once when it dropped our ring as corrupt: the next call
 * connects to it afresh), the other errors of shmrpc_send but -ENOENT.
 * shmrpc_peer_reserve - shmrpc_reserve to that incarnation; end it with
 * shmrpc_commit(node, tx, len) or shmrpc_cancel(node, tx), as usual.
 * shmrpc_peer_sendv - publish msgs[0..n) in order as n messages (each
 * iovec one message), with one check of the receiver's sleep flag and at
 * most one wake for the whole batch. Returns how many it published (>= 1):
 * fewer than n when the ring filled up (or a message was too large for it)
 * after the first; or -errno when none could be: timeout_ms applies while
 * the ring is full before the first (-EAGAIN/-ETIMEDOUT), -EMSGSIZE if the
 * first is too large, -EPIPE, -EINVAL (n == 0, msgs NULL, a NULL iov_base
 * with a length, a message over 2 GiB). SHMRPC_SEND_DEFER holds the wake
 * back for shmrpc_flush, as for shmrpc_send_flags.
 */
struct shmrpc_peer;
SHMRPC_API int shmrpc_peer_get(struct shmrpc_node *node, const char *name, int timeout_ms,
			       struct shmrpc_peer **out);
SHMRPC_API void shmrpc_peer_put(struct shmrpc_peer *peer);
SHMRPC_API int shmrpc_peer_alive(struct shmrpc_peer *peer);
SHMRPC_API const char *shmrpc_peer_name(struct shmrpc_peer *peer);
SHMRPC_API int shmrpc_peer_send(struct shmrpc_peer *peer, const void *data, size_t len,
				int timeout_ms, unsigned flags);
SHMRPC_API int shmrpc_peer_sendv(struct shmrpc_peer *peer, const struct iovec *msgs, unsigned n,
				 int timeout_ms, unsigned flags);
SHMRPC_API int shmrpc_peer_reserve(struct shmrpc_peer *peer, size_t len, struct shmrpc_txbuf *tx,
				   int timeout_ms);

/*
 * Request/response.
 *
 * A server registers a serve function (shmrpc_serve); a caller sends a
 * request to it by name and waits for its reply (shmrpc_call), or starts
 * calls and collects their replies later (shmrpc_call_start,
 * shmrpc_call_wait), one reply or a stream of them (SHMRPC_REPLY_MORE).
 *
 *	// server                              // caller
 *	static void echo(struct shmrpc_node *n,  char buf[256];
 *			 const struct shmrpc_req *r,  int len = shmrpc_call(n, "echo", "hi", 2,
 *			 void *arg)                                   buf, sizeof(buf), 1000);
 *	{                                        // len 2, or -errno: see shmrpc_call
 *		shmrpc_reply(n, r, r->data, r->len, 0);
 *	}
 *	shmrpc_serve(n, echo, NULL);
 *	shmrpc_start(n, on_message, NULL);     // or any receiving call
 *
 * Requests travel on the ring that carries the caller's messages to the
 * server, in order with them; replies on a ring of their own from the
 * server to the caller, which only calling threads read: replies never show
 * up in shmrpc_recv, and calls never consume messages, whether or not the
 * caller has a receiving thread.
 *
 * Delivery is at most once: after -EPIPE or -ETIMEDOUT the request may or
 * may not have run. A server's death is seen by its callers within the
 * cleanup latency (the peers' watcher, shmrpc-reaper: about a millisecond):
 * every call pending on it returns -EPIPE, after the replies it sent before
 * dying.
 */

/* A request, as the serve function sees it. */
struct shmrpc_req {
	const void *data; /* the request, valid until the serve function returns */
	size_t len;
	char from[SHMRPC_NAME_MAX + 1]; /* the caller's name */
	uint64_t id;			/* unique among the calls of that caller */
	int64_t deadline_ns;		/* CLOCK_MONOTONIC; 0: the caller waits forever */
	void *_priv[2];			/* library-owned */
};
/*
 * The serve function: runs in whichever receiving call the server runs
 * (shmrpc_recv, shmrpc_peek, shmrpc_dispatch, shmrpc_recv_batch,
 * shmrpc_start's thread; shmrpc_fd becomes readable for a request as for a
 * message), never returned as a message.
 * req->data points into the shared ring, valid until fn returns, and the
 * caller could still write to it: validate it (or copy it) first. fn may
 * reply at once, or keep a copy of *req (not of req->data) and reply later,
 * from any thread, in any order. It must not receive (-EBUSY).
 */
typedef void (*shmrpc_serve_fn)(struct shmrpc_node *node, const struct shmrpc_req *req, void *arg);

#define SHMRPC_REPLY_MORE 0x1u	 /* more replies to this request follow */
#define SHMRPC_REPLY_NOWAIT 0x2u /* shmrpc_reply: -EAGAIN rather than wait for room */

/*
 * shmrpc_serve - handle requests with fn(node, req, arg) from now on; fn
 * NULL: stop (callers then get -EOPNOTSUPP, and requests already queued are
 * answered -EOPNOTSUPP). May be called at any time, from any thread; a
 * request sees the old or the new function. Returns 0, -EINVAL, -ECHILD.
 */
SHMRPC_API int shmrpc_serve(struct shmrpc_node *node, shmrpc_serve_fn fn, void *arg);

/*
 * shmrpc_reply - send one reply of len bytes (0 allowed) to @req, from any
 * thread. flags: SHMRPC_REPLY_MORE while more replies follow (a stream);
 * the reply without it is the last and ends the request. Blocks while the
 * caller's reply ring is full, at most until the request's deadline (with
 * none, until the caller reads or goes); with SHMRPC_REPLY_NOWAIT (0.2.1)
 * it returns -EAGAIN at once instead, and the request stays open (an event
 * loop retries later). Returns 0, or -EPIPE (the caller
 * left or died: nothing is kept of the request), -ENOENT (the request is
 * over: its last reply was sent, or it was never one of this node's),
 * -EMSGSIZE (larger than shmrpc_max_size(node, req->from) less 16 bytes:
 * the request stays open, reply again or shmrpc_reply_error), -ETIMEDOUT
 * (the deadline passed while the caller's ring was full: the request is
 * over), -EINVAL, -ENOSPC/-ENOMEM/-EMFILE (the reply ring to the caller
 * could not be made: the request stays open).
 * shmrpc_reply_error - end @req with err (< 0), which the caller's call
 * returns as it is. Same returns.
 */
SHMRPC_API int shmrpc_reply(struct shmrpc_node *node, const struct shmrpc_req *req,
			    const void *data, size_t len, unsigned flags);
SHMRPC_API int shmrpc_reply_error(struct shmrpc_node *node, const struct shmrpc_req *req, int err);

/*
 * shmrpc_req_cancelled - 1 if the caller no longer wants replies to @req:
 * it cancelled the call (shmrpc_call_cancel, or shmrpc_call after a first
 * reply with SHMRPC_REPLY_MORE), the request's deadline passed, the caller
 * is gone, or the request is over; else 0; -EINVAL. A streaming server asks
 * between replies. A cancel is seen once the server's receiving call has
 * taken it from the caller's ring; a serve function that streams inline
 * (in the receiving call) sees the cancels queued behind its request too.
 */
SHMRPC_API int shmrpc_req_cancelled(struct shmrpc_node *node, const struct shmrpc_req *req);

/*
 * shmrpc_call - send request @req (@len bytes) to node @to and wait for its
 * first reply, copied into @resp (@cap bytes); if more were to follow, the
 * rest of the stream is cancelled. timeout_ms covers the whole call, and
 * travels with the request as its deadline (the server may skip a request
 * whose deadline passed). Returns the reply's length, or -ENOENT (no live
 * node of that name), -EOPNOTSUPP (it does not serve), -ETIMEDOUT/-EAGAIN
 * (timeout), -EPIPE (the server left or died before replying), -EMSGSIZE
 * (the request is larger than shmrpc_max_size(node, to) less 16 bytes, or
 * the reply longer than cap: the reply is then dropped), -ECANCELED (the
 * call was cancelled by another thread), -EAGAIN (this node has
 * opts.max_calls calls in flight), -EBUSY (the server has as many requests
 * in progress as it allows), -EPROTO (the server's ring is corrupt),
 * -ENOSPC/-ENOMEM/-EFBIG/-EMFILE/-ENFILE (the ring to the server, or the
 * mapping of its reply ring, could not be made, as shmrpc_send says:
 * nothing of the call is left, and the next call tries again), or the
 * error the server replied with (shmrpc_reply_error). Calls may be made
 * from any number of threads at once, with or without a receiving call
 * running.
 */
SHMRPC_API int shmrpc_call(struct shmrpc_node *node, const char *to, const void *req, size_t len,
			   void *resp, size_t cap, int timeout_ms);
/*
 * shmrpc_call_start - send a request and return at once with its id (in
 * *id), unique among this node's calls. timeout_ms bounds the send while
 * the server's ring is full and, when > 0, is the call's deadline: it
 * travels with the request, and shmrpc_call_wait never waits past it (the
 * call then ends with -ETIMEDOUT). 0: the send never blocks and the call has
 * no deadline (its waits bound themselves); -1: no deadline. Returns 0, or
 * shmrpc_call's errors of sending (-ENOENT, -EOPNOTSUPP, -EMSGSIZE, -EAGAIN,
 * -ETIMEDOUT, -EPIPE, -EINVAL, -EPROTO, -ENOSPC, -ENOMEM, -EFBIG, -EMFILE,
 * -ENFILE).
 * shmrpc_call_wait - wait (per timeout_ms) for the next reply of call @id,
 * copied into @resp; *flags (may be NULL) gets SHMRPC_REPLY_MORE while more
 * follow. Returns its length, or -EMSGSIZE (longer than cap: that reply is
 * dropped; *flags says whether more follow), -EAGAIN/-ETIMEDOUT (nothing
 * yet: the call goes on, unless its own deadline passed: then -ETIMEDOUT
 * ends it), -EPIPE, -ECANCELED, -ENOBUFS (replies that nobody collected
 * grew past the caller's ring_bytes: the call was cancelled), the server's
 * error, -ENOENT (no such call: never started, or over: after its last
 * reply, an error or a cancel the id is retired), -EBUSY (another thread
 * waits for that call). A call's replies come in the order the server sent
 * them; replies of different calls in any order.
 * shmrpc_call_cancel - end call @id: its waiter gets -ECANCELED, replies
 * still to come are dropped (counted as late), and the server is told (a
 * best effort that never blocks: shmrpc_req_cancelled). 0, -ENOENT.
 */
SHMRPC_API int shmrpc_call_start(struct shmrpc_node *node, const char *to, const void *req,
				 size_t len, int timeout_ms, uint64_t *id);
SHMRPC_API int shmrpc_call_wait(struct shmrpc_node *node, uint64_t id, void *resp, size_t cap,
				unsigned *flags, int timeout_ms);
SHMRPC_API int shmrpc_call_cancel(struct shmrpc_node *node, uint64_t id);

/*
 * shmrpc_peer_call, shmrpc_peer_call_start - shmrpc_call and
 * shmrpc_call_start to the incarnation a peer handle is bound to (see Peer
 * handles): the same returns, but -EPIPE, never -ENOENT, once that
 * incarnation left or died (even if a node of the same name joined since),
 * or the handle's node closed. The call is the handle's node's:
 * shmrpc_call_wait and shmrpc_call_cancel on that node take its id.
 */
SHMRPC_API int shmrpc_peer_call(struct shmrpc_peer *peer, const void *req, size_t len, void *resp,
				size_t cap, int timeout_ms);
SHMRPC_API int shmrpc_peer_call_start(struct shmrpc_peer *peer, const void *req, size_t len,
				      int timeout_ms, uint64_t *id);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_H */
