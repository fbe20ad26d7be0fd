// SPDX-License-Identifier: MIT
/*
 * Inbound: a message from node X of host A to local node Y arrives on
 * subject n.<Y>; it is sent into Y's ring from this host's proxy of X, so
 * that Y sees X's name. Runs in main.c's thread, under the bridge's lock:
 * right after a read of the socket, and in the retries.
 *
 * A stream is what one host sends to one local node: its messages carry
 * sequence numbers 1, 2, ... so that a gap (a message NATS lost: a slow
 * consumer, a server that died with it in flight) is counted, never
 * silent. Y's ring full: the message waits in the stream's queue (never
 * dropped), later ones queue behind it, and the main loop retries every
 * millisecond. The sender may only have `window` messages (and
 * window_bytes) not yet done here: this side grants more as it delivers
 * (GRANT to h.<A>, cumulative, so a lost grant is repaired by the next),
 * which bounds the queue and pushes back on the sender when Y is slow.
 *
 * A broadcast of a sender of host A comes once, on b (bcast.c), with the
 * sequence number each target's copy takes on its stream from A: each of
 * our targets gets it as if it had come on n.<Y>. A publishes the entries
 * before a copy first, on the same connection, and NATS keeps one
 * connection's order, so they were read before it or in the same read;
 * conn.c hands out a read's messages subscription by subscription, b
 * before the nodes' subjects, so a copy may be handled before entries
 * ahead of it: it waits for them (the stream's `ahead` list) until the end
 * of the round (br_dlv_round), when a gap still open is a loss.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"

/* How long a message may wait for its sender's JOIN before it is dropped. */
#define WAIT_JOIN_NS (3000 * 1000000ll)

static void grant(struct br_dom *d, struct br_rstream *rs)
{
	struct br_hdr h = { .type = BR_GRANT,
			    .epoch = rs->epoch,
			    .stream = rs->stream,
			    .inc = rs->dst->inc,
			    .seq = rs->done };
	char subj[BR_SUBJ];

	snprintf(h.host, sizeof(h.host), "%s", d->br->o.host);
	snprintf(h.name, sizeof(h.name), "%s", rs->dst->name);
	br_subj_host(d, rs->host, subj);
	if (br_pub(d->br, subj, &h, NULL, 0) == 0) {
		rs->granted = rs->done;
		rs->granted_bytes = rs->done_bytes;
		rs->grant_ns = br_now_ns();
	}
}

static void maybe_grant(struct br_dom *d, struct br_rstream *rs)
{
	if (rs->done - rs->granted >= d->br->o.window / 4 ||
	    rs->done_bytes - rs->granted_bytes >= d->br->o.window_bytes / 4)
		grant(d, rs);
}

static void mark_done(struct br_rstream *rs, uint64_t stream, uint64_t seq, uint32_t len)
{
	if (stream != rs->stream || seq <= rs->done)
		return; /* an older stream's message: its credits are gone with it */
	rs->done = seq;
	rs->done_bytes += len;
}

/*
 * Wakes are held back while a batch is delivered (SHMRPC_SEND_DEFER) and
 * issued once at its end: a receiver that sleeps costs one wake per batch,
 * not one per message.
 */
static void flush_wakes(struct br_dom *d)
{
	int i;

	for (i = 0; i < d->ntouched; i++) {
		shmrpc_flush(d->touched[i]->node);
		d->touched[i]->touched = false;
	}
	d->ntouched = 0;
}

static void touch(struct br_dom *d, struct br_proxy *px)
{
	if (px->touched)
		return;
	if (d->ntouched == (int)(sizeof(d->touched) / sizeof(d->touched[0])))
		flush_wakes(d);
	px->touched = true;
	d->touched[d->ntouched++] = px;
}

/* Into the local ring: 0 delivered, -EAGAIN later, else dropped (counted).
 * Requests, replies and cancels: xcall.c. */
static int deliver(struct br_dom *d, struct br_rstream *rs, const struct br_ent *e,
		   int64_t since_ns)
{
	struct br_local *l = rs->dst;
	const char *from = e->from;
	struct br_proxy *px = br_map_get(&d->proxies, from);
	uint32_t len = e->len;
	int rc;

	if (!px || strcmp(px->host, rs->host)) {
		if (!px && br_now_ns() - since_ns < WAIT_JOIN_NS)
			return -EAGAIN; /* its JOIN may still be on the way */
		l->ctr.dropped++;
		blog(BR_LOG_WARN, "drop domain=%s from=%s@%s to=%s why=%s name-at=%s", d->name,
		     from, rs->host, l->name, px ? "name-collision" : "sender-unknown",
		     px ? px->host : "-");
		return -ENOENT;
	}
	if (e->kind != BR_ENT_MSG)
		return br_xc_deliver(d, px, l, e, since_ns);
	rc = shmrpc_send_flags(px->node, l->name, e->data, len, 0, SHMRPC_SEND_DEFER);
	switch (rc) {
	case 0:
		touch(d, px);
		l->ctr.dlv_msgs++;
		l->ctr.dlv_bytes += len;
		px->ctr.dlv_msgs++;
		px->ctr.dlv_bytes += len;
		return 0;
	case -EAGAIN: /* full: back-pressure, the normal case */
	case -ENOENT: /* the node is gone: held (no credit back to its sender) */
	case -EPIPE:  /* until the registry poll drops it with the node */
	case -ENOSPC: /* /dev/shm, memory, descriptors: the library retries too */
	case -ENOMEM:
	case -EMFILE:
	case -ENFILE:
	case -EFBIG:
		return -EAGAIN;
	default:
		l->ctr.dropped++;
		blog(BR_LOG_WARN, "drop domain=%s from=%s to=%s len=%u error=%s", d->name, from,
		     l->name, len, strerror(-rc));
		return rc;
	}
}

static void pend(struct br_dom *d, struct br_rstream *rs)
{
	uint64_t one = 1;

	if (rs->pending)
		return;
	/* The first queued message: main's loop retries every millisecond
	 * from now on; wake it, it may sleep until the next tick. */
	if (!d->pending && write(d->br->wfd, &one, sizeof(one)) < 0)
		blog(BR_LOG_DEBUG, "wake: %s", strerror(errno));
	rs->pending = true;
	rs->pend_next = d->pending;
	d->pending = rs;
}

static void enqueue(struct br_dom *d, struct br_rstream *rs, uint64_t stream, uint64_t seq,
		    const struct br_ent *e, int64_t since_ns)
{
	struct br_qmsg *q = NULL;
	const char *from = e->from;
	uint32_t len = e->len;

	/* A bridge that keeps to its credits never has more than a window
	 * here (two across a reconnect); one that does not is refused. */
	if (rs->queued >= 2 * d->br->o.window + 1) {
		if (rs->dst->ctr.dropped++ % 1000 == 0)
			blog(BR_LOG_WARN, "drop domain=%s from=%s@%s to=%s why=over-its-credits",
			     d->name, from, rs->host, rs->dst->name);
		mark_done(rs, stream, seq, len);
		return;
	}
	q = malloc(sizeof(*q) + len);
	if (!q) {
		rs->dst->ctr.dropped++;
		blog(BR_LOG_ERROR, "drop domain=%s to=%s why=out-of-memory", d->name,
		     rs->dst->name);
		mark_done(rs, stream, seq, len);
		return;
	}
	q->next = NULL;
	q->stream = stream;
	q->seq = seq;
	q->since_ns = since_ns;
	q->e = *e;
	q->e.data = q->data;
	memcpy(q->data, e->data, len);
	if (rs->tail)
		rs->tail->next = q;
	else
		rs->head = q;
	rs->tail = q;
	rs->queued++;
	rs->dst->ctr.queued++;
	pend(d, rs);
}

static void ahead_run(struct br_dom *d, struct br_rstream *rs, uint64_t below);

/* The stream h belongs to, made or reset; NULL for a stale one. */
static struct br_rstream *rstream(struct br_dom *d, struct br_local *l, const struct br_hdr *h)
{
	struct br_rstream *rs = br_map_get(&l->streams, h->host);

	if (!rs) {
		rs = calloc(1, sizeof(*rs));
		if (!rs)
			return NULL;
		snprintf(rs->host, sizeof(rs->host), "%s", h->host);
		rs->dst = l;
		if (br_map_put(&l->streams, rs)) {
			free(rs);
			return NULL;
		}
	} else if (rs->epoch == h->epoch && rs->stream == h->stream) {
		return rs;
	} else if (rs->epoch == h->epoch && h->stream < rs->stream) {
		return NULL; /* an older stream of the same bridge: stale */
	}
	/* A new stream (the sender reconnected or restarted): what is queued
	 * of the old one stays ahead of it. */
	ahead_run(d, rs, UINT64_MAX);
	rs->epoch = h->epoch;
	rs->stream = h->stream;
	rs->expect = 1;
	rs->done = rs->granted = rs->sync_seq = 0;
	rs->done_bytes = rs->granted_bytes = 0;
	return rs;
}

/* SYNC: the sender sent nothing after h->seq; what did not come is lost. */
static void sync_stream(struct br_dom *d, struct br_rstream *rs, const struct br_hdr *h)
{
	/* broadcast copies of the stream read in this round came first */
	if (rs->ahead)
		ahead_run(d, rs, h->seq + 1);
	if (h->seq >= rs->expect) {
		rs->dst->ctr.lost += h->seq - rs->expect + 1;
		blog(BR_LOG_WARN, "lost domain=%s from-host=%s to=%s count=%llu", d->name, rs->host,
		     rs->dst->name, (unsigned long long)(h->seq - rs->expect + 1));
		rs->expect = h->seq + 1;
	}
	rs->sync_seq = h->seq;
	if (!rs->head && rs->done < h->seq)
		rs->done = h->seq;
	grant(d, rs);
}

/* Local node @name if it is still incarnation @inc; else NULL, and the
 * @n entries for it are lost with it, as for a local receiver that left
 * (the sender learns it from the membership). */
static struct br_local *target(struct br_dom *d, const char *name, uint64_t inc, uint64_t n)
{
	struct br_local *l = br_map_get(&d->locals, name);

	if (l && !l->leaving && l->inc == inc)
		return l;
	(l ? &l->ctr : &d->gone)->lost += n;
	return NULL;
}

static bool target_ok(struct br_dom *d, const char *subj, const struct br_hdr *h,
		      struct br_local **out)
{
	const char *tok = strrchr(subj, '.');
	char dst[BR_NAME];

	if (!tok || br_unesc(tok + 1, dst)) {
		d->bad_msgs++;
		return false;
	}
	*out = target(d, dst, h->inc, h->type == BR_BATCH ? h->aux : 0);
	return *out != NULL;
}

/* One entry of a stream, in sequence order (a gap before it is lost). */
static void at(struct br_dom *d, struct br_rstream *rs, uint64_t stream, uint64_t seq,
	       const struct br_ent *e)
{
	struct br_local *l = rs->dst;
	int64_t now = br_now_ns();

	if (seq < rs->expect)
		return; /* a duplicate: never delivered twice */
	if (seq > rs->expect) {
		l->ctr.lost += seq - rs->expect;
		blog(BR_LOG_WARN, "lost domain=%s from-host=%s to=%s count=%llu", d->name, rs->host,
		     l->name, (unsigned long long)(seq - rs->expect));
	}
	rs->expect = seq + 1;
	if (!rs->head && deliver(d, rs, e, now) != -EAGAIN) {
		mark_done(rs, stream, seq, e->len);
		return;
	}
	enqueue(d, rs, stream, seq, e, now);
}

/* Copies ahead go once the stream reaches them, and those before @below
 * whatever the gap before them. */
static void ahead_run(struct br_dom *d, struct br_rstream *rs, uint64_t below)
{
	struct br_qmsg *q;

	while ((q = rs->ahead) && (q->seq < below || q->seq <= rs->expect)) {
		rs->ahead = q->next;
		rs->nahead--;
		if (q->stream == rs->stream)
			at(d, rs, q->stream, q->seq, &q->e);
		free(q);
	}
}

static void one(struct br_dom *d, struct br_rstream *rs, uint64_t stream, uint64_t seq,
		const struct br_ent *e)
{
	if (rs->ahead)
		ahead_run(d, rs, seq);
	at(d, rs, stream, seq, e);
	if (rs->ahead)
		ahead_run(d, rs, 0);
}

/* A copy read before an entry ahead of it: kept, in seq order, until the
 * stream reaches it or the round ends. */
static void ahead_put(struct br_dom *d, struct br_rstream *rs, uint64_t stream, uint64_t seq,
		      const struct br_ent *e)
{
	struct br_qmsg *q, **pp;

	for (pp = &rs->ahead; *pp && (*pp)->seq < seq; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->seq == seq)
		return; /* a duplicate */
	/* bounded as the queue is; past it (a sender off its credits) or
	 * without memory, it goes now and what it passes counts lost */
	if (rs->nahead >= 2 * d->br->o.window + 1 || !(q = malloc(sizeof(*q) + e->len))) {
		one(d, rs, stream, seq, e);
		return;
	}
	q->stream = stream;
	q->seq = seq;
	q->since_ns = br_now_ns();
	q->e = *e;
	memcpy(q->data, e->data, e->len);
	q->e.data = q->data;
	q->next = *pp;
	*pp = q;
	rs->nahead++;
	if (!rs->ahead_listed) {
		rs->ahead_listed = true;
		rs->ahead_next = d->aheads;
		d->aheads = rs;
	}
}

/* A BATCH: its entries (wire.c), sequence numbers h->seq, h->seq + 1... */
static void batch(struct br_dom *d, struct br_rstream *rs, const struct br_hdr *h)
{
	const unsigned char *p = h->body, *end = h->body + h->body_len;
	struct br_ent e;
	uint64_t i;

	for (i = 0; i < h->aux; i++) {
		if (br_ent_get(&p, end, &e) != 1)
			break;
		one(d, rs, h->stream, h->seq + i, &e);
	}
	if (i < h->aux || p != end)
		d->bad_msgs++; /* the rest is garbage: what follows counts it lost */
	flush_wakes(d);
	maybe_grant(d, rs);
}

void br_dlv_data(struct br_dom *d, const char *subj, const struct br_hdr *h)
{
	struct br_local *l;
	struct br_rstream *rs;

	if ((h->type != BR_BATCH && h->type != BR_SYNC) || !target_ok(d, subj, h, &l))
		return;
	if (!(rs = rstream(d, l, h)))
		return;
	if (h->type == BR_SYNC)
		sync_stream(d, rs, h);
	else
		batch(d, rs, h);
}

/* A BCAST's target of this host: its copy, on its stream from h->host. */
static void bc_target(struct br_dom *d, const struct br_hdr *h, const struct br_bt *t,
		      const struct br_ent *e)
{
	struct br_local *l = target(d, t->name, t->inc, 1);
	struct br_hdr sh = *h;
	struct br_rstream *rs;

	if (!l)
		return;
	sh.stream = t->stream;
	if (!(rs = rstream(d, l, &sh)))
		return;
	if (t->seq > rs->expect)
		ahead_put(d, rs, t->stream, t->seq, e);
	else
		one(d, rs, t->stream, t->seq, e);
	maybe_grant(d, rs);
}

void br_dlv_bcast(struct br_dom *d, const char *subj, const struct br_hdr *h)
{
	struct br_ent e = { .kind = BR_ENT_MSG };
	struct br_bc_iter it;
	struct br_bt t;
	int rc;

	(void)subj;
	/* ours, back from the server: none of its targets is here */
	if (h->type != BR_BCAST || !strcmp(h->host, d->br->o.host))
		return;
	if (!h->name[0] || br_bc_get_payload(h, &e.data, &e.len, &it)) {
		d->bad_msgs++;
		return;
	}
	snprintf(e.from, sizeof(e.from), "%s", h->name);
	while ((rc = br_bc_next(&it, &t)) == 1)
		if (!strcmp(t.host, d->br->o.host))
			bc_target(d, h, &t, &e);
	if (rc)
		d->bad_msgs++; /* the rest is garbage: what follows counts it lost */
	flush_wakes(d);
}

void br_dlv_round(struct br_dom *d)
{
	struct br_rstream *rs;

	while ((rs = d->aheads)) {
		d->aheads = rs->ahead_next;
		rs->ahead_listed = false;
		ahead_run(d, rs, UINT64_MAX);
		maybe_grant(d, rs);
	}
	flush_wakes(d);
}

/* Deliver what rs holds, in order, until a ring is full: how many went. */
static uint32_t flush(struct br_dom *d, struct br_rstream *rs)
{
	struct br_qmsg *q;
	uint32_t k = 0;

	while ((q = rs->head)) {
		if (deliver(d, rs, &q->e, q->since_ns) == -EAGAIN)
			break;
		mark_done(rs, q->stream, q->seq, q->e.len);
		rs->head = q->next;
		if (!rs->head)
			rs->tail = NULL;
		rs->queued--;
		rs->dst->ctr.queued--;
		free(q);
		k++;
	}
	if (!rs->head && rs->done < rs->sync_seq)
		rs->done = rs->sync_seq;
	return k;
}

uint32_t br_dlv_retry(struct br_dom *d)
{
	struct br_rstream **pp = &d->pending, *rs;
	uint32_t k = 0;

	while ((rs = *pp)) {
		k += flush(d, rs);
		flush_wakes(d);
		maybe_grant(d, rs);
		if (rs->head) {
			pp = &rs->pend_next;
		} else {
			rs->pending = false;
			*pp = rs->pend_next;
		}
	}
	return k;
}

/* Every 10 ms: a stream whose credits lag and that nothing else grants. */
void br_dlv_idle_grants(struct br_dom *d, int64_t now)
{
	struct br_local *l;
	struct br_rstream *rs;
	uint32_t i = 0, j;

	while ((l = br_map_next(&d->locals, &i)))
		for (j = 0; (rs = br_map_next(&l->streams, &j));)
			if (rs->done > rs->granted && now - rs->grant_ns > 10 * 1000000ll)
				grant(d, rs);
}

static void unpend(struct br_dom *d, struct br_rstream *rs)
{
	struct br_rstream **pp;

	for (pp = &d->pending; *pp; pp = &(*pp)->pend_next)
		if (*pp == rs) {
			*pp = rs->pend_next;
			break;
		}
	rs->pending = false;
}

void br_rstream_free(struct br_rstream *rs)
{
	struct br_qmsg *q;

	while ((q = rs->head)) {
		rs->head = q->next;
		free(q);
	}
	while ((q = rs->ahead)) {
		rs->ahead = q->next;
		free(q);
	}
	free(rs);
}

static void unahead(struct br_dom *d, struct br_rstream *rs)
{
	struct br_rstream **pp;

	for (pp = &d->aheads; *pp; pp = &(*pp)->ahead_next)
		if (*pp == rs) {
			*pp = rs->ahead_next;
			break;
		}
	rs->ahead_listed = false;
}

void br_dlv_drop_local(struct br_dom *d, struct br_local *l)
{
	struct br_rstream *rs;
	uint32_t i = 0;

	while ((rs = br_map_next(&l->streams, &i))) {
		if (rs->pending)
			unpend(d, rs);
		if (rs->ahead_listed)
			unahead(d, rs);
		l->ctr.lost += rs->nahead;
		/* Lost with the node, as in its ring. No grant: credits for a
		 * node that is gone would let its senders' proxies take more
		 * messages from their rings, and report those as sent. */
		l->ctr.lost += rs->queued;
		l->ctr.queued -= rs->queued;
		if (rs->queued)
			blog(BR_LOG_WARN,
			     "lost domain=%s from-host=%s to=%s count=%u why=node-gone", d->name,
			     rs->host, l->name, rs->queued);
		br_rstream_free(rs);
	}
	br_map_free(&l->streams);
	br_map_init(&l->streams, offsetof(struct br_rstream, host));
}

bool br_dlv_holds(struct br_dom *d, const char *from)
{
	struct br_rstream *rs;
	struct br_qmsg *q;

	for (rs = d->pending; rs; rs = rs->pend_next)
		for (q = rs->head; q; q = q->next)
			if (!strcmp(q->e.from, from))
				return true;
	return false;
}
