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
 * when a local receiver is slow. A GRANT puts the fd back. A stall that no grant ends within a second sends a
 * SYNC, which makes Y's bridge grant what it did (grants may be lost too).
 *
 * The messages found in the rings in one pass travel in one NATS message
 * (BATCH): NATS' cost per message is paid per batch. Each keeps its own
 * sequence number, taken only once the batch is published: a batch that
 * could not be (too large for NATS, the client's buffer full) is counted
 * as dropped here and leaves no gap there.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "bridge.h"

#define BATCH 256	  /* messages per proxy per loop pass: fairness */
#define BATCH_BYTES 65536 /* past this, a batch goes out */
#define STALL_SYNC_NS 1000000000ll

/* Messages taken out of the rings, not published yet: one NATS message. */
struct batch {
	uint32_t len;	/* body bytes at br->batch + BR_WIRE_MAX */
	uint32_t count; /* entries */
	uint64_t bytes; /* their payload bytes */
	uint32_t sizes[BATCH];
	struct br_local *from[BATCH];
	char names[BATCH][BR_NAME]; /* for the log of a failed publish */
};

static bool credit(const struct br_dom *d, const struct br_proxy *px, const struct batch *b)
{
	return px->seq + b->count - px->acked < d->br->o.window &&
	       px->inflight_bytes + b->bytes < d->br->o.window_bytes;
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

static void account(struct br_dom *d, struct br_proxy *px, struct br_local *l, uint32_t len)
{
	px->seq++;
	px->sizes[px->seq % d->br->o.window] = len;
	px->inflight_bytes += len;
	px->ctr.fwd_msgs++;
	px->ctr.fwd_bytes += len;
	if (l) {
		l->ctr.fwd_msgs++;
		l->ctr.fwd_bytes += len;
	}
}

/* Publish the batch; its messages take their sequence numbers only now. */
static void flush(struct br_dom *d, struct br_proxy *px, struct batch *b)
{
	struct br_hdr h = { .type = BR_BATCH,
			    .epoch = d->br->epoch,
			    .stream = px->stream,
			    .inc = px->inc,
			    .seq = px->seq + 1,
			    .aux = b->count };
	uint32_t i;
	int rc;

	if (!b->count)
		return;
	memcpy(h.host, d->br->o.host, sizeof(h.host));
	rc = br_pub_batch(d->br, px->subj, &h, b->len);
	for (i = 0; i < b->count; i++)
		if (rc)
			drop(d, px, b->from[i], b->names[i], b->sizes[i],
			     rc == -EMSGSIZE ? "larger-than-nats-max-payload" :
					       "nats-publish-failed");
		else
			account(d, px, b->from[i], b->sizes[i]);
	b->count = b->len = 0;
	b->bytes = 0;
}

/* Room for @n more bytes and one more entry, or the batch goes out first. */
static unsigned char *room(struct br_dom *d, struct br_proxy *px, struct batch *b, uint64_t n)
{
	uint64_t cap = d->br->max_payload - BR_WIRE_MAX;

	if (b->len + n > cap || b->len >= BATCH_BYTES || b->count == BATCH)
		flush(d, px, b);
	return d->br->batch + BR_WIRE_MAX + b->len;
}

static void added(struct batch *b, uint32_t n, uint32_t size, struct br_local *l, const char *from)
{
	b->len += n;
	b->sizes[b->count] = size;
	b->from[b->count] = l;
	snprintf(b->names[b->count], BR_NAME, "%s", from);
	b->count++;
	b->bytes += size;
}

/* Copy one message into the batch (publishing the batch first if full). */
static void add(struct br_dom *d, struct br_proxy *px, struct batch *b, const char *from,
		const void *data, uint32_t len, struct br_local *l)
{
	struct br_ent e = { .kind = BR_ENT_MSG, .len = len };
	unsigned char *p;
	uint32_t n;

	snprintf(e.from, sizeof(e.from), "%s", from);
	p = room(d, px, b, BR_BATCH_ENTRY + (uint64_t)len);
	n = br_ent_put(p, &e);
	memcpy(p + n, data, len);
	added(b, n + len, len, l, from);
}

/*
 * The entries xcall.c put ahead of the ring's next message (requests the
 * serve function took in the last receive, replies, cancels) into the batch,
 * as credits allow (@force: whatever they say), those served before
 * message @upto of the current receive: true when all of those went.
 */
static bool out_move(struct br_dom *d, struct br_proxy *px, struct batch *b, bool force,
		     uint32_t upto)
{
	uint64_t bytes = 0;
	struct br_out *o;
	unsigned char *p;
	uint32_t n = 0;
	bool all = true;

	while ((o = px->out) && o->pos <= upto) {
		if (!force && !credit(d, px, b)) {
			all = false;
			break;
		}
		p = room(d, px, b, o->len);
		memcpy(p, o->ent, o->len);
		added(b, o->len, o->size, NULL, px->name);
		if (!(px->out = o->next))
			px->out_tail = NULL;
		if (o->backlog)
			n++, bytes += o->size;
		free(o);
	}
	if (n)
		br_xc_sent(d, px, n, bytes);
	return all;
}

/* The receive buffer: message 0 may be as large as NATS takes, the others
 * SLOT bytes (a larger one ends the receive before it, for the next). */
#define SLOT 4096

static bool rx_setup(struct bridge *br, struct shmrpc_msg *m, unsigned n)
{
	size_t need = br->max_payload + (size_t)(BATCH - 1) * SLOT;
	unsigned i;

	if (br->rxbuf_len < need) {
		void *p = realloc(br->rxbuf, need);

		if (!p)
			return false;
		br->rxbuf = p;
		br->rxbuf_len = need;
	}
	for (i = 0; i < n; i++) {
		m[i].buf = br->rxbuf + (i ? br->max_payload + (size_t)(i - 1) * SLOT : 0);
		m[i].cap = i ? SLOT : br->max_payload;
		m[i].len = SIZE_MAX; /* not filled: xcall.c's serve function looks */
	}
	return true;
}

/* The next message cannot be carried (the server's max_payload shrank
 * after a reconnect): dropped, counted, so that the ring goes on. */
static void too_big(struct br_dom *d, struct br_proxy *px)
{
	struct shmrpc_rxbuf rx;
	int len = shmrpc_peek(px->node, &rx, 0);

	if (len < 0)
		return;
	drop(d, px, br_local_sender(d, rx.from), rx.from, (uint32_t)len,
	     "larger-than-nats-max-payload");
	shmrpc_release(px->node, &rx);
}

/*
 * One message of the receive, after the requests served before it. A
 * marked broadcast copy (@mk->bcast: the last message of its receive):
 * the batch before it goes out, then bcast.c may hold px there until the
 * copy goes in one BCAST with the broadcast's other copies; if it does
 * not, the copy is an ordinary message.
 */
static void one(struct br_dom *d, struct br_proxy *px, struct batch *b, const struct shmrpc_msg *m,
		const struct shmrpc_mark *mk, uint32_t i)
{
	struct br_local *l;

	/* Requests served before it in the ring go first, past the credits
	 * if need be, by at most the proxy's max_calls (names.c makes it the
	 * window), which the receiving side's queue bound allows. */
	(void)out_move(d, px, b, true, i);
	if (!strcmp(m->from, SHMRPC_EVENT_FROM)) /* names.c: not for remote nodes */
		return;
	l = br_local_sender(d, m->from);
	if (l && l->refused) {
		drop(d, px, l, m->from, (uint32_t)m->len, "sender-name-lives-on-another-host");
		return;
	}
	if (mk->bcast && d->bc_mark) {
		flush(d, px, b);
		if (d->bc_mark(d, px, mk, m))
			return;
		d->bcast_split++; /* late, alone, or no memory */
	}
	add(d, px, b, m->from, m->buf, (uint32_t)m->len, l);
}

/*
 * What the rings hold for px, up to BATCH messages and the credits, in
 * ring order, into one NATS message (a message is never held back waiting
 * for more: the batch goes out as soon as the rings are empty). One
 * shmrpc_recv_batch_marks: each sender's ring gets its space back once,
 * with at most one wake, not once per message. A proxy held at a broadcast
 * copy (bcast.c) publishes only what xcall.c put before its ring's next
 * message.
 */
void br_fwd_drain(struct br_dom *d, struct br_proxy *px)
{
	struct shmrpc_msg m[BATCH];
	struct shmrpc_mark mk[BATCH];
	struct batch b;
	unsigned want;
	int got, i;

	b.count = b.len = 0;
	b.bytes = 0;
	if (px->lingering)
		return;
	if (!atomic_load(&d->br->up)) { /* resumed by the resync */
		br_proxy_enable(d, px, false);
		return;
	}
	if (!out_move(d, px, &b, false, UINT32_MAX) || !credit(d, px, &b) || px->held) {
		flush(d, px, &b);
		if (!px->held)
			stall(d, px);
		else /* readable while held: no polling until bcast.c releases it */
			br_proxy_enable(d, px, false);
		return;
	}
	/* no more than the credits left (credit() said at least one) */
	want = d->br->o.window - (px->seq + b.count - px->acked);
	if (want > BATCH)
		want = BATCH;
	if (!rx_setup(d->br, m, want)) {
		flush(d, px, &b);
		return; /* memory: the fd stays readable, retried */
	}
	px->rxm = m;
	px->rxn = want;
	got = shmrpc_recv_batch_marks(px->node, m, mk, want, 0);
	px->rxm = NULL;
	if (got == -EMSGSIZE) /* larger than NATS takes now (a smaller server) */
		too_big(d, px);
	else if (got < 0 && got != -EAGAIN)
		blog(BR_LOG_WARN, "receive domain=%s node=%s error=%s (%s)", d->name, px->name,
		     strerror(-got), shmrpc_last_error()); /* -EPROTO: that ring is dropped */
	for (i = 0; i < got; i++)
		one(d, px, &b, &m[i], &mk[i], (uint32_t)i);
	if (!out_move(d, px, &b, false, UINT32_MAX) && !px->held) /* served after the last */
		stall(d, px);
	flush(d, px, &b);
}

void br_fwd_one(struct br_dom *d, struct br_proxy *px, const char *from, const void *data,
		uint32_t len)
{
	struct batch b;

	b.count = b.len = 0;
	b.bytes = 0;
	add(d, px, &b, from, data, len, br_local_sender(d, from));
	flush(d, px, &b);
}

void br_fwd_sent(struct br_dom *d, struct br_proxy *px, const char *from, uint32_t len, int rc)
{
	struct br_local *l = br_local_sender(d, from);

	if (rc)
		drop(d, px, l, from, len,
		     rc == -EMSGSIZE ? "larger-than-nats-max-payload" : "nats-publish-failed");
	else
		account(d, px, l, len);
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
	if (px->blocked && px->seq - px->acked < w && px->inflight_bytes < d->br->o.window_bytes) {
		px->blocked = false;
		if (!px->lingering && !px->held && atomic_load(&d->br->up))
			br_proxy_enable(d, px, true);
		if (px->out) /* no ring message may come to make the fd ready */
			br_fwd_drain(d, px);
	}
}

void br_fwd_out(struct br_dom *d)
{
	struct br_proxy *px, *next;

	px = d->outl;
	d->outl = NULL;
	for (; px; px = next) {
		next = px->out_next;
		px->out_listed = false;
		if (!px->blocked)
			br_fwd_drain(d, px);
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
	if (!px->lingering && !px->held)
		br_proxy_enable(d, px, true);
	if (px->out && !px->lingering)
		br_fwd_drain(d, px); /* replies, cancels: no ring message may come */
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
