// SPDX-License-Identifier: MIT
/*
 * The bridge's one NATS connection (libnats 3.4): options, the callbacks
 * of its life (disconnected, reconnected), subscriptions, publishing, and
 * the event-loop adapter through which main.c's epoll loop drives the
 * socket.
 *
 * Why an event loop: libnats' own flusher thread waits 1 ms to gather
 * publishes before it writes, and SendAsap without a loop writes once per
 * publish. With the adapter and SendAsap, a publish appends to libnats'
 * buffer and asks for EPOLLOUT; main.c's loop writes everything published
 * in one pass with one write(2). Reads happen in main.c's thread too, and
 * the messages they bring are handled there (br_conn_poll).
 *
 * The adapter's callbacks are called by libnats from any of its threads,
 * with its connection lock held: they take only the adapter's own mutex
 * and call epoll_ctl(2), which is thread-safe. The reconnect thread calls
 * attach again with the new socket; detach comes once, at the close.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bridge.h"

#define DEFAULT_MAX_PAYLOAD (1u << 20)

/* ------------------------------------------------------------ adapter */

static void evl_apply(struct br_evl *e)
{
	struct epoll_event ev = { .events = e->events,
				  .data.u64 = (uint64_t)BR_TAG_NATS << BR_TAG_KIND_SHIFT };

	/* The socket may be closed already (a disconnect): nothing to do. */
	if (e->fd >= 0 && epoll_ctl(e->ep, EPOLL_CTL_MOD, e->fd, &ev) && errno == ENOENT)
		(void)epoll_ctl(e->ep, EPOLL_CTL_ADD, e->fd, &ev);
}

static natsStatus evl_attach(void **user, void *loop, natsConnection *nc, natsSock sock)
{
	struct br_evl *e = loop;

	pthread_mutex_lock(&e->mu);
	if (e->fd >= 0 && e->fd != sock)
		(void)epoll_ctl(e->ep, EPOLL_CTL_DEL, e->fd, NULL);
	e->fd = sock;
	e->nc = nc;
	e->events = EPOLLIN;
	evl_apply(e);
	pthread_mutex_unlock(&e->mu);
	*user = e;
	return NATS_OK;
}

static natsStatus evl_flag(void *user, uint32_t flag, bool add)
{
	struct br_evl *e = user;

	pthread_mutex_lock(&e->mu);
	e->events = add ? e->events | flag : e->events & ~flag;
	evl_apply(e);
	pthread_mutex_unlock(&e->mu);
	return NATS_OK;
}

static natsStatus evl_read(void *user, bool add)
{
	return evl_flag(user, EPOLLIN, add);
}

static natsStatus evl_write(void *user, bool add)
{
	return evl_flag(user, EPOLLOUT, add);
}

static natsStatus evl_detach(void *user)
{
	struct br_evl *e = user;

	pthread_mutex_lock(&e->mu);
	if (e->fd >= 0)
		(void)epoll_ctl(e->ep, EPOLL_CTL_DEL, e->fd, NULL);
	e->fd = -1;
	e->events = 0;
	pthread_mutex_unlock(&e->mu);
	return NATS_OK;
}

static natsConnection *evl_conn(struct bridge *br)
{
	natsConnection *nc;

	pthread_mutex_lock(&br->evl.mu);
	nc = br->evl.fd >= 0 ? br->evl.nc : NULL;
	pthread_mutex_unlock(&br->evl.mu);
	return nc;
}

void br_conn_read(struct bridge *br)
{
	natsConnection *nc = evl_conn(br);

	if (nc)
		natsConnection_ProcessReadEvent(nc);
}

void br_conn_write(struct bridge *br)
{
	natsConnection *nc = evl_conn(br);

	if (nc)
		natsConnection_ProcessWriteEvent(nc);
}

/* ------------------------------------------------------------ life */

static void wake_main(struct bridge *br)
{
	uint64_t one = 1;

	if (write(br->wfd, &one, sizeof(one)) < 0)
		return; /* the counter is full: main is awake anyway */
}

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct bridge *br = arg;

	(void)nc;
	atomic_store(&br->up, false);
	blog(BR_LOG_WARN, "nats-disconnected host=%s", br->o.host);
	wake_main(br);
}

static void on_connected(natsConnection *nc, void *arg)
{
	struct bridge *br = arg;
	char url[256] = "?";

	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	atomic_fetch_add(&br->reconnects, 1);
	atomic_store(&br->up, true);
	atomic_store(&br->resync, true);
	blog(BR_LOG_INFO, "nats-connected host=%s server=%s", br->o.host, url);
	wake_main(br);
}

static void on_closed(natsConnection *nc, void *arg)
{
	(void)nc;
	(void)arg;
	blog(BR_LOG_DEBUG, "nats-closed");
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
	int64_t dropped = 0;

	(void)nc;
	(void)arg;
	if (sub)
		natsSubscription_GetDropped(sub, &dropped);
	blog(BR_LOG_WARN, "nats-error status=%s subject=%s dropped=%lld", natsStatus_GetText(err),
	     sub ? natsSubscription_GetSubject(sub) : "-", (long long)dropped);
}

static natsStatus set_security(struct bridge *br, natsOptions *no)
{
	natsStatus s = NATS_OK;

	if (br->o.creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, br->o.creds, NULL);
	if (s == NATS_OK && br->o.tls_ca)
		s = natsOptions_SetSecure(no, true);
	if (s == NATS_OK && br->o.tls_ca)
		s = natsOptions_LoadCATrustedCertificates(no, br->o.tls_ca);
	if (s == NATS_OK && br->o.tls_cert)
		s = natsOptions_LoadCertificatesChain(no, br->o.tls_cert, br->o.tls_key);
	return s;
}

static natsStatus set_options(struct bridge *br, natsOptions *no)
{
	char name[BR_NAME + 16];
	int ping = br->o.hb_ms * 2 < 1000 ? 1000 : br->o.hb_ms * 2;
	natsStatus s;

	snprintf(name, sizeof(name), "shmrpc-bridge %s", br->o.host);
	s = natsOptions_SetServers(no, br->o.servers, br->o.nservers);
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(no, true); /* the order given is the order tried */
	if (s == NATS_OK)
		s = natsOptions_SetName(no, name);
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(no, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no, 250);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(no, ping);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(no, 2);
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(no, true);
	if (s == NATS_OK)
		s = natsOptions_SetEventLoop(no, &br->evl, evl_attach, evl_read, evl_write,
					     evl_detach);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(no, on_disconnected, br);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(no, on_connected, br);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(no, on_closed, br);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(no, on_error, br);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(no, true, on_connected, br);
	return s == NATS_OK ? set_security(br, no) : s;
}

int br_conn_open(struct bridge *br)
{
	natsStatus s;

	br->evl.fd = -1;
	br->evl.ep = br->ep;
	pthread_mutex_init(&br->evl.mu, NULL);
	br->max_payload = DEFAULT_MAX_PAYLOAD;
	br->scratch = malloc(br->max_payload);
	br->batch = malloc(BR_WIRE_MAX + (size_t)br->max_payload);
	if (!br->scratch || !br->batch)
		return -ENOMEM;
	s = nats_Open(-1);
	if (s == NATS_OK)
		s = natsOptions_Create(&br->nopts);
	if (s == NATS_OK)
		s = set_options(br, br->nopts);
	if (s == NATS_OK) {
		s = natsConnection_Connect(&br->nc, br->nopts);
		if (s == NATS_NOT_YET_CONNECTED) { /* retried in the background */
			blog(BR_LOG_WARN, "nats-not-yet-connected server=%s: retrying",
			     br->o.servers[0]);
			s = NATS_OK;
		} else if (s == NATS_OK) {
			on_connected(br->nc, br);
		}
	}
	if (s != NATS_OK) {
		blog(BR_LOG_ERROR, "nats-setup status=%s detail=%s", natsStatus_GetText(s),
		     nats_GetLastError(NULL));
		return -EIO;
	}
	return 0;
}

/* The server's max_payload, once connected (under mu). */
void br_conn_limits(struct bridge *br)
{
	int64_t mp = natsConnection_GetMaxPayload(br->nc);
	unsigned char *p;

	if (mp <= 0 || (uint64_t)mp == br->max_payload || mp > (1 << 30))
		return;
	p = realloc(br->scratch, (size_t)mp);
	if (!p)
		return;
	br->scratch = p;
	p = realloc(br->batch, BR_WIRE_MAX + (size_t)mp);
	if (!p)
		return; /* the old size stays: batches stay smaller */
	br->batch = p;
	br->max_payload = (uint32_t)mp;
	blog(BR_LOG_DEBUG, "nats-max-payload bytes=%u", br->max_payload);
}

void br_conn_close(struct bridge *br)
{
	if (br->nc) {
		natsConnection_Close(br->nc);
		natsConnection_Destroy(br->nc);
		br->nc = NULL;
	}
	natsOptions_Destroy(br->nopts);
	br->nopts = NULL;
	/* waits for libnats' threads: no handler runs after this */
	nats_CloseAndWait(2000);
	free(br->scratch);
	free(br->batch);
	free(br->rxbuf);
	br->rxbuf = NULL;
	br->rxbuf_len = 0;
	free(br->subs);
	br->scratch = br->batch = NULL;
	br->subs = NULL;
}

/* ------------------------------------------------------------ messages */

/* One message: checked, then to its handler (under mu, main's thread). */
static void on_msg(struct br_subrec *r, natsMsg *msg)
{
	struct br_dom *d = r->ctx->d;
	struct bridge *br = d->br;
	const char *why = NULL;
	struct br_hdr h;

	if (br_wire_get(natsMsg_GetData(msg), natsMsg_GetDataLength(msg), &h, &why)) {
		if (d->bad_msgs++ % 1000 == 0)
			blog(BR_LOG_WARN, "bad-message domain=%s subject=%s why=%s count=%llu",
			     d->name, natsMsg_GetSubject(msg), why,
			     (unsigned long long)d->bad_msgs);
	} else if (strcmp(h.host, br->o.host)) {
		br->handlers[r->ctx->kind](d, natsMsg_GetSubject(msg), &h);
	} else if (h.epoch != br->epoch && d->bad_msgs++ % 1000 == 0) {
		/* NoEcho: never our own. Another bridge with our name. */
		blog(BR_LOG_ERROR,
		     "duplicate-host domain=%s host=%s: another bridge uses this "
		     "host name (give each a unique -H)",
		     d->name, h.host);
	}
}

/*
 * Every message the last read brought, subscription by subscription, the
 * membership ones of each domain first (a JOIN before the messages of the
 * node it announces, when one read brought both). Subscriptions are
 * synchronous: the messages are handled here, in main's thread, right
 * after natsConnection_ProcessReadEvent parsed them: no hand-over to a
 * delivery thread (a wake-up per message on an idle bridge).
 */
void br_conn_poll(struct bridge *br)
{
	natsMsg *msg;
	uint32_t i;
	int n;

	for (i = 0; i < br->nsubs; i++) {
		struct br_subrec *r = &br->subs[i];

		/* GetPending first: NextMsg on an empty one records an error */
		if (natsSubscription_GetPending(r->sub, &n, NULL) != NATS_OK)
			continue;
		while (n-- > 0 && natsSubscription_NextMsg(&msg, r->sub, 0) == NATS_OK) {
			on_msg(r, msg);
			natsMsg_Destroy(msg);
		}
	}
}

static int subrec_add(struct bridge *br, natsSubscription *sub, struct br_subctx *ctx)
{
	struct br_subrec *v;
	uint32_t i, at = br->nsubs;

	if (ctx->kind != BR_SUB_DATA) /* membership first: a domain's three */
		for (i = 0; i < br->nsubs; i++)
			if (br->subs[i].ctx->kind == BR_SUB_DATA) {
				at = i;
				break;
			}
	v = realloc(br->subs, (br->nsubs + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	br->subs = v;
	memmove(&v[at + 1], &v[at], (br->nsubs - at) * sizeof(*v));
	v[at].sub = sub;
	v[at].ctx = ctx;
	br->nsubs++;
	return 0;
}

int br_sub(struct br_dom *d, const char *subj, int kind, natsSubscription **out)
{
	natsStatus s;

	d->subctx[kind].d = d;
	d->subctx[kind].kind = kind;
	s = natsConnection_SubscribeSync(out, d->br->nc, subj);
	/* Credits bound what a bridge may send; the limits only stop a
	 * runaway peer from eating our memory. */
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(*out, 1 << 20, 1 << 30);
	if (s == NATS_OK && subrec_add(d->br, *out, &d->subctx[kind]))
		s = NATS_NO_MEMORY;
	if (s != NATS_OK) {
		blog(BR_LOG_ERROR, "subscribe subject=%s status=%s", subj, natsStatus_GetText(s));
		if (*out) {
			natsSubscription_Unsubscribe(*out);
			natsSubscription_Destroy(*out);
			*out = NULL;
		}
		return -EIO;
	}
	return 0;
}

void br_unsub(struct bridge *br, natsSubscription **sub)
{
	uint32_t i;

	if (!*sub)
		return;
	for (i = 0; i < br->nsubs; i++)
		if (br->subs[i].sub == *sub) {
			memmove(&br->subs[i], &br->subs[i + 1],
				(br->nsubs - i - 1) * sizeof(br->subs[0]));
			br->nsubs--;
			break;
		}
	natsSubscription_Unsubscribe(*sub);
	natsSubscription_Destroy(*sub);
	*sub = NULL;
}

static int status(natsStatus s)
{
	switch (s) {
	case NATS_OK:
		return 0;
	case NATS_MAX_PAYLOAD:
		return -EMSGSIZE;
	case NATS_CONNECTION_CLOSED:
	case NATS_NOT_YET_CONNECTED:
	case NATS_INSUFFICIENT_BUFFER:
		return -ENOTCONN;
	default:
		return -EIO;
	}
}

int br_pub(struct bridge *br, const char *subj, const struct br_hdr *h, const void *body,
	   uint32_t len)
{
	uint32_t n = br_wire_put(h, br->scratch);

	if ((uint64_t)n + len > br->max_payload)
		return -EMSGSIZE;
	if (len)
		memcpy(br->scratch + n, body, len);
	return status(natsConnection_Publish(br->nc, subj, br->scratch, (int)(n + len)));
}

int br_pub_batch(struct bridge *br, const char *subj, const struct br_hdr *h, uint32_t len)
{
	unsigned char hdr[BR_WIRE_MAX];
	uint32_t n = br_wire_put(h, hdr);
	unsigned char *start = br->batch + BR_WIRE_MAX - n;

	if ((uint64_t)n + len > br->max_payload)
		return -EMSGSIZE;
	memcpy(start, hdr, n);
	return status(natsConnection_Publish(br->nc, subj, start, (int)(n + len)));
}

/* ------------------------------------------------------------ subjects */

void br_subj_node(const struct br_dom *d, const char *node, char *out)
{
	char e[BR_ESC];

	br_esc(node, e);
	snprintf(out, BR_SUBJ, "shmrpc.%s.n.%s", d->esc, e);
}

void br_subj_host(const struct br_dom *d, const char *host, char *out)
{
	char e[BR_ESC];

	br_esc(host, e);
	snprintf(out, BR_SUBJ, "shmrpc.%s.h.%s", d->esc, e);
}

void br_subj_members(const struct br_dom *d, const char *host, char *out)
{
	char e[BR_ESC];

	if (host)
		br_esc(host, e);
	snprintf(out, BR_SUBJ, "shmrpc.%s.m.%s", d->esc, host ? e : "*");
}

void br_subj_snap(const struct br_dom *d, char *out)
{
	snprintf(out, BR_SUBJ, "shmrpc.%s.s", d->esc);
}

void br_subj_bcast(const struct br_dom *d, char *out)
{
	snprintf(out, BR_SUBJ, "shmrpc.%s.b", d->esc);
}
