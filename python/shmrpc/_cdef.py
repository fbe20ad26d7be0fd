# SPDX-License-Identifier: MIT
"""The C declarations of include/shmrpc.h, for cffi's ABI mode.

Written as the header writes them, comments and SHMRPC_API left out, so
tests/python/test_cdef.py can compare the two declaration by declaration
(and struct layouts through a C program): a function, field or constant
added to the header fails that test until it is added here too.
"""
import re

CDEF = r"""
#define SHMRPC_VERSION_MAJOR 0
#define SHMRPC_VERSION_MINOR 3
#define SHMRPC_NAME_MAX 63

const char *shmrpc_last_error(void);

#define SHMRPC_LOG_DEBUG 0
#define SHMRPC_LOG_INFO 1
#define SHMRPC_LOG_WARN 2
typedef void (*shmrpc_log_fn)(int level, const char *msg, void *arg);
void shmrpc_set_log(shmrpc_log_fn fn, void *arg);

struct shmrpc_node;

struct shmrpc_opts {
	size_t sz;
	const char *domain;
	uint32_t ring_bytes;
	uint32_t max_nodes;
	uint32_t mode;
	const char *backend;
	int32_t spin_us;
	uint32_t events;
	uint32_t _reserved;
	const char *proxy_host;
	uint32_t max_calls;
	uint32_t flags;
	uint64_t _reserved2;
};

#define SHMRPC_OPEN_BCAST_MARKS 0x1u

#define SHMRPC_SPIN_NEVER -1  /* the header: (-1); cffi takes no parentheses */

#define SHMRPC_EV_JOIN 0x1
#define SHMRPC_EV_LEAVE 0x2
#define SHMRPC_EV_DEATH 0x4
#define SHMRPC_EV_LOG 256

struct shmrpc_event {
	uint32_t type;
	uint32_t pid;
	uint64_t id;
	char name[SHMRPC_NAME_MAX + 1];
	uint32_t dropped;
};

typedef void (*shmrpc_handler)(struct shmrpc_node *node, const char *from, const void *data,
			       size_t len, void *arg);

struct shmrpc_stats {
	uint64_t msgs_sent;
	uint64_t msgs_recv;
	uint64_t bytes_sent;
	uint64_t bytes_recv;
	uint64_t send_full;
	uint64_t wakes_sent;
	uint64_t wakes_skipped;
	uint64_t sleeps;
	uint64_t spins;
	uint64_t connects;
	uint64_t rings_in;
	uint64_t rings_out;
	uint64_t calls;
	uint64_t calls_in_flight;
	uint64_t calls_timeout;
	uint64_t calls_pipe;
	uint64_t calls_remote;
	uint64_t calls_cancelled;
	uint64_t calls_refused;
	uint64_t calls_late;
	uint64_t calls_served;
	uint64_t calls_expired;
	uint64_t calls_rejected;
	uint64_t replies_sent;
	uint64_t replies_failed;
};

int shmrpc_open(const char *name, const struct shmrpc_opts *opts,
			   struct shmrpc_node **out);
void shmrpc_close(struct shmrpc_node *node);

#define SHMRPC_CLOSE_DEAD 0x1u
int shmrpc_close_flags(struct shmrpc_node *node, unsigned flags);
int shmrpc_send(struct shmrpc_node *node, const char *to, const void *data, size_t len,
			   int timeout_ms);
int shmrpc_broadcast(struct shmrpc_node *node, const void *data, size_t len,
				int timeout_ms);

#define SHMRPC_SEND_DEFER 0x1u
int shmrpc_send_flags(struct shmrpc_node *node, const char *to, const void *data,
				 size_t len, int timeout_ms, unsigned flags);
int shmrpc_flush(struct shmrpc_node *node);
int shmrpc_fd(struct shmrpc_node *node);
int shmrpc_recv(struct shmrpc_node *node, void *buf, size_t cap, char *from,
			   int timeout_ms);
int shmrpc_dispatch(struct shmrpc_node *node, shmrpc_handler fn, void *arg,
			       int timeout_ms);
int shmrpc_start(struct shmrpc_node *node, shmrpc_handler fn, void *arg);
int shmrpc_stop(struct shmrpc_node *node);
int shmrpc_nodes(struct shmrpc_node *node, char (*names)[SHMRPC_NAME_MAX + 1],
			    size_t cap);
int shmrpc_is_local(struct shmrpc_node *node, const char *name);
int shmrpc_node_host(struct shmrpc_node *node, const char *name, char *host, size_t cap);
int shmrpc_wait_node(struct shmrpc_node *node, const char *name, int timeout_ms);
int shmrpc_warmup(struct shmrpc_node *node);
int shmrpc_stats(struct shmrpc_node *node, struct shmrpc_stats *st);
int shmrpc_stats_size(struct shmrpc_node *node, struct shmrpc_stats *st, size_t size);
const char *shmrpc_backend(struct shmrpc_node *node);
int shmrpc_backend_available(const char *name);
const char *shmrpc_backend_default(void);
const char *shmrpc_name(struct shmrpc_node *node);
const char *shmrpc_domain(struct shmrpc_node *node);
int shmrpc_max_size(struct shmrpc_node *node, const char *to);

struct shmrpc_txbuf {
	void *data;
	size_t cap;
	void *_priv[2];
};
int shmrpc_reserve(struct shmrpc_node *node, const char *to, size_t len,
			      struct shmrpc_txbuf *tx, int timeout_ms);
int shmrpc_commit(struct shmrpc_node *node, struct shmrpc_txbuf *tx, size_t len);
int shmrpc_commit_flags(struct shmrpc_node *node, struct shmrpc_txbuf *tx, size_t len,
				   unsigned flags);
void shmrpc_cancel(struct shmrpc_node *node, struct shmrpc_txbuf *tx);

struct shmrpc_rxbuf {
	const void *data;
	size_t len;
	char from[SHMRPC_NAME_MAX + 1];
	void *_priv[2];
};
int shmrpc_peek(struct shmrpc_node *node, struct shmrpc_rxbuf *rx, int timeout_ms);
int shmrpc_release(struct shmrpc_node *node, struct shmrpc_rxbuf *rx);

struct shmrpc_msg {
	void *buf;
	size_t cap;
	size_t len;
	char from[SHMRPC_NAME_MAX + 1];
};
int shmrpc_recv_batch(struct shmrpc_node *node, struct shmrpc_msg *msgs, unsigned n,
				 int timeout_ms);

struct shmrpc_mark {
	uint64_t bcast;
	uint32_t copies;
	uint32_t _reserved;
};
int shmrpc_recv_batch_marks(struct shmrpc_node *node, struct shmrpc_msg *msgs,
				       struct shmrpc_mark *marks, unsigned n, int timeout_ms);

struct shmrpc_peer;
int shmrpc_peer_get(struct shmrpc_node *node, const char *name, int timeout_ms,
			       struct shmrpc_peer **out);
void shmrpc_peer_put(struct shmrpc_peer *peer);
int shmrpc_peer_alive(struct shmrpc_peer *peer);
const char *shmrpc_peer_name(struct shmrpc_peer *peer);
int shmrpc_peer_send(struct shmrpc_peer *peer, const void *data, size_t len,
				int timeout_ms, unsigned flags);
int shmrpc_peer_sendv(struct shmrpc_peer *peer, const struct iovec *msgs, unsigned n,
				 int timeout_ms, unsigned flags);
int shmrpc_peer_reserve(struct shmrpc_peer *peer, size_t len, struct shmrpc_txbuf *tx,
				   int timeout_ms);

struct shmrpc_req {
	const void *data;
	size_t len;
	char from[SHMRPC_NAME_MAX + 1];
	uint64_t id;
	int64_t deadline_ns;
	void *_priv[2];
};
typedef void (*shmrpc_serve_fn)(struct shmrpc_node *node, const struct shmrpc_req *req, void *arg);

#define SHMRPC_REPLY_MORE 0x1u
#define SHMRPC_REPLY_NOWAIT 0x2u

int shmrpc_serve(struct shmrpc_node *node, shmrpc_serve_fn fn, void *arg);
int shmrpc_reply(struct shmrpc_node *node, const struct shmrpc_req *req,
			    const void *data, size_t len, unsigned flags);
int shmrpc_reply_error(struct shmrpc_node *node, const struct shmrpc_req *req, int err);
int shmrpc_req_cancelled(struct shmrpc_node *node, const struct shmrpc_req *req);
int shmrpc_call(struct shmrpc_node *node, const char *to, const void *req, size_t len,
			   void *resp, size_t cap, int timeout_ms);
int shmrpc_call_start(struct shmrpc_node *node, const char *to, const void *req,
				 size_t len, int timeout_ms, uint64_t *id);
int shmrpc_call_wait(struct shmrpc_node *node, uint64_t id, void *resp, size_t cap,
				unsigned *flags, int timeout_ms);
int shmrpc_call_cancel(struct shmrpc_node *node, uint64_t id);
int shmrpc_peer_call(struct shmrpc_peer *peer, const void *req, size_t len, void *resp,
				size_t cap, int timeout_ms);
int shmrpc_peer_call_start(struct shmrpc_peer *peer, const void *req, size_t len,
				      int timeout_ms, uint64_t *id);
"""

# What the header takes from the system (<sys/uio.h>), declared before CDEF;
# not part of the comparison with include/shmrpc.h.
CDEF_SYS = r"""
struct iovec {
	void *iov_base;
	size_t iov_len;
};
"""

# The header's string constants (cffi's cdef takes integer ones only).
EVENT_FROM = ".event"  # SHMRPC_EVENT_FROM

# Every function above: the loaded library must export them all.
FUNCTIONS = tuple(re.findall(r"\b(shmrpc_\w+)\(", CDEF))
