// SPDX-License-Identifier: MIT
/*
 * Outbound: local node X sends to proxy-Y (an ordinary send into an
 * ordinary ring: back-pressure as with any slow receiver); main.c's loop
 * sees proxy-Y's fd readable and comes here to take the messages out of
 * its rings and publish each on n.<Y>, with X's name, in ring order.
 *
 * Credits: a stream (this host -> Y) may have `window` messages and
 * `window_bytes` bytes published and not yet granted back by Y's bridge.
 * Out of credits, proxy-Y's fd leaves the epoll set and its rings stay as
 * they are: they fill, and X's next send blocks (or times out), exactly as
 * when a local receiver is slow. A GRANT (on libnats' delivery thread)
 * puts the fd back. A stall that no grant ends within a second sends a
 * SYNC, which makes Y's bridge grant what it did (grants may be lost too).
 *
 * The sequence number of a message is taken only once it is published: a
 * message that could not be (too large for NATS, the client's buffer full)
 * is counted as dropped here and leaves no gap there.
 */
#include <errno.h>
#include <string.h>

#include "bridge.h"

#define BATCH 256 /* messages per proxy per loop pass: fairness */
#define STALL_SYNC_NS 1000000000ll

static bool credit(const struct br_dom *d, const struct br_proxy *px)
{
	return px->seq - px->acked < d->br->o.window && px->inflight_bytes < d->br->o.window_bytes;
}

static void stall(struct br_dom *d, struct br_proxy *px)
{
	if (px->blocked)
		return;
	px->blocked = true;
	px->ctr.stalls++;
	px->stall_ns = br_now_ns();
	br_proxy_enable(d, px, false);
}

static void drop(struct br_dom *d, struct br_proxy *px, struct br_local *from, const char *name,
		 uint32_t len, const char *why)
{
	struct br_ctr *c = from ? &from->ctr : &px->ctr;

	if (c->dropped++ % 1000 == 0)
		blog(BR_LOG_WARN, "drop domain=%s from=%s to=%s@%s len=%u why=%s count=%llu",
		     d->name, name, px->name, px->host, len, why, (unsigned long long)c->dropped);
}

static void forward(struct br_dom *d, struct br_proxy *px, const struct shmrpc_rxbuf *rx,
		    uint32_t len)
{
	struct bridge *br = d->br;
	struct br_local *l = br_local_sender(d, rx->from);
	struct br_hdr h = { .type = BR_DATA,
			    .epoch = br->epoch,
			    .stream = px->stream,
			    .inc = px->inc,
			    .seq = px->seq + 1 };
	int rc;

	if (l && l->refused) {
		drop(d, px, l, rx->from, len, "sender-name-lives-on-another-host");
		return;
	}
	memcpy(h.host, br->o.host, sizeof(h.host));
	memcpy(h.name, rx->from, sizeof(h.name));
	rc = br_pub(br, px->subj, &h, rx->data, len);
	if (rc) {
		drop(d, px, l, rx->from, len,
		     rc == -EMSGSIZE ? "larger-than-nats-max-payload" : "nats-publish-failed");
		return;
	}
	px->seq++;
	px->sizes[px->seq % br->o.window] = len;
	px->inflight_bytes += len;
	px->ctr.fwd_msgs++;
	px->ctr.fwd_bytes += len;
	if (l) {
		l->ctr.fwd_msgs++;
		l->ctr.fwd_bytes += len;
	}
}

void br_fwd_drain(struct br_dom *d, struct br_proxy *px)
{
	struct shmrpc_rxbuf rx;
	int n, len;

	if (px->lingering)
		return;
	if (!atomic_load(&d->br->up)) { /* resumed by the resync */
		br_proxy_enable(d, px, false);
		return;
	}
	for (n = 0; n < BATCH; n++) {
		if (!credit(d, px)) {
			stall(d, px);
			return;
		}
		len = shmrpc_peek(px->node, &rx, 0);
		if (len == -EAGAIN)
			return;
		if (len < 0) { /* -EPROTO: that ring is dropped, the others go on */
			blog(BR_LOG_WARN, "receive domain=%s node=%s error=%s (%s)", d->name,
			     px->name, strerror(-len), shmrpc_last_error());
			if (len == -EPROTO)
				continue;
			return;
		}
		forward(d, px, &rx, (uint32_t)len);
		shmrpc_release(px->node, &rx);
	}
}

void br_fwd_grant(struct br_dom *d, const struct br_hdr *h)
{
	struct br_proxy *px = br_map_get(&d->proxies, h->name);
	uint32_t w = d->br->o.window;

	if (!px || strcmp(px->host, h->host) || px->inc != h->inc || h->epoch != d->br->epoch ||
	    h->stream != px->stream)
		return; /* for an older stream or incarnation */
	while (px->acked < h->seq && px->acked < px->seq) {
		px->acked++;
		px->inflight_bytes -= px->sizes[px->acked % w];
	}
	if (px->blocked && credit(d, px)) {
		px->blocked = false;
		if (!px->lingering && atomic_load(&d->br->up))
			br_proxy_enable(d, px, true);
	}
}

static void send_sync(struct br_dom *d, struct br_proxy *px)
{
	struct br_hdr h = { .type = BR_SYNC,
			    .epoch = d->br->epoch,
			    .stream = px->stream,
			    .inc = px->inc,
			    .seq = px->seq };

	memcpy(h.host, d->br->o.host, sizeof(h.host));
	(void)br_pub(d->br, px->subj, &h, NULL, 0);
}

void br_fwd_reset(struct br_dom *d, struct br_proxy *px)
{
	if (px->seq)
		send_sync(d, px); /* what did not arrive of the old stream is counted there */
	px->stream = ++d->br->next_stream;
	px->seq = px->acked = 0;
	px->inflight_bytes = 0;
	px->blocked = false;
	if (!px->lingering)
		br_proxy_enable(d, px, true);
}

void br_fwd_tick(struct br_dom *d, int64_t now)
{
	struct br_proxy *px;
	uint32_t i = 0;

	while ((px = br_map_next(&d->proxies, &i)))
		if (px->blocked && now - px->stall_ns > STALL_SYNC_NS) {
			send_sync(d, px);
			px->stall_ns = now;
		}
}

static void discard(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		    void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	(void)arg;
}

/* The control node takes broadcasts too (it is a node of the domain):
 * nothing to do with them, every proxy got its own copy. */
void br_fwd_ctl_drain(struct br_dom *d)
{
	while (shmrpc_dispatch(d->ctl, discard, NULL, 0) > 0)
		;
}
