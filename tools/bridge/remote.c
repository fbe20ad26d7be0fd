// SPDX-License-Identifier: MIT
/*
 * The other hosts' bridges, per domain: what nodes each claims, and
 * whether it is still there.
 *
 * Each bridge publishes on m.<host>: JOIN/LEAVE/DEATH deltas numbered by
 * a membership sequence (mseq), a heartbeat (HB, carrying the current
 * mseq) every --heartbeat-ms, and BYE when it stops. A receiver applies a
 * delta only if it is the next number; a gap (a delta lost, a heartbeat
 * ahead of what it applied, a bridge never synchronised) makes it ask that
 * bridge for its snapshot (SNAPREQ to h.<host>), which replaces every claim
 * of that host as of the snapshot's mseq. Every bridge asks everybody (on
 * s) when it (re)connects. A new epoch in any message of a host means its
 * bridge restarted: its old claims go first. Every membership message
 * also says whether its bridge reads BCASTs (BR_FEAT_BCAST; 0.2.1's do not):
 * kept in the host's bcast, which bcast.c reads.
 *
 * A host not heard from for --dead-after heartbeats (3 s by default) is
 * dead: its claims go, so its proxies close here as dead (their local
 * subscribers get SHMRPC_EV_DEATH, sends and peer handles -EPIPE), and what
 * was in flight to it is counted lost. Bound: dead_after x heartbeat after
 * the last message it sent, plus one 10 ms tick. Proxies close as dead on a
 * DEATH from its bridge, a BYE (its nodes did not close: they are out of
 * reach) and a new epoch (its bridge restarted without a BYE) too; a LEAVE
 * stays a leave, and so does a claim a snapshot no longer has (how it went
 * is not known).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

#define SNAP_RETRY_NS (1000 * 1000000ll)

/* Every claim of hs goes; @dead: its proxies close as dead. */
static void claims_clear(struct br_dom *d, struct br_host *hs, bool dead)
{
	struct br_claim *c;
	uint32_t i = 0;

	while ((c = br_map_next(&hs->claims, &i))) {
		br_map_del(&hs->claims, c->name);
		if (dead)
			br_proxy_mark_dead(d, c->name, hs->name, c->inc);
		br_resolve(d, c->name);
		free(c);
		i = 0;
	}
}

static void ask_snapshot(struct br_dom *d, struct br_host *hs, int64_t now)
{
	struct br_hdr h = { .type = BR_SNAPREQ, .epoch = d->br->epoch };
	char subj[BR_SUBJ];

	if (hs->snap_ask_ns && now - hs->snap_ask_ns < SNAP_RETRY_NS)
		return;
	memcpy(h.host, d->br->o.host, sizeof(h.host));
	br_subj_host(d, hs->name, subj);
	if (!br_pub(d->br, subj, &h, NULL, 0))
		hs->snap_ask_ns = now ? now : 1;
}

/* The host h came from, made on first sight, reset on a new epoch. */
static struct br_host *host_get(struct br_dom *d, const struct br_hdr *h)
{
	struct br_host *hs = br_map_get(&d->hosts, h->host);

	if (!hs) {
		hs = calloc(1, sizeof(*hs));
		if (!hs)
			return NULL;
		memcpy(hs->name, h->host, sizeof(hs->name));
		br_map_init(&hs->claims, offsetof(struct br_claim, name));
		if (br_map_put(&d->hosts, hs)) {
			free(hs);
			return NULL;
		}
		blog(BR_LOG_INFO, "host-up domain=%s host=%s", d->name, hs->name);
	}
	if (hs->epoch != h->epoch) {
		if (hs->epoch)
			blog(BR_LOG_INFO, "host-restarted domain=%s host=%s", d->name, hs->name);
		claims_clear(d, hs, true); /* no BYE came from the old one */
		hs->epoch = h->epoch;
		hs->mseq = 0;
		hs->synced = hs->snap_in = false;
		hs->snap_ask_ns = 0;
		hs->npend = 0;
	}
	hs->heard_ns = br_now_ns();
	/* every message that comes here is a membership message */
	hs->bcast = (h->stream & BR_FEAT_BCAST) != 0;
	return hs;
}

static void host_remove(struct br_dom *d, struct br_host *hs, bool dead)
{
	struct br_proxy *px;
	uint32_t i = 0;

	while (dead && (px = br_map_next(&d->proxies, &i)))
		if (!strcmp(px->host, hs->name) && px->seq > px->acked) {
			px->ctr.lost += px->seq - px->acked; /* in flight to a dead host */
			blog(BR_LOG_WARN, "lost domain=%s to=%s@%s count=%llu why=host-dead",
			     d->name, px->name, px->host,
			     (unsigned long long)(px->seq - px->acked));
			px->acked = px->seq;
		}
	blog(dead ? BR_LOG_WARN : BR_LOG_INFO, "host-%s domain=%s host=%s nodes=%u",
	     dead ? "dead" : "bye", d->name, hs->name, hs->claims.n);
	br_map_del(&d->hosts, hs->name);
	claims_clear(d, hs, true); /* BYE too: its nodes are out of reach */
	br_map_free(&hs->claims);
	free(hs);
}

static void claim_set(struct br_dom *d, struct br_host *hs, const struct br_claim *in)
{
	struct br_claim *c = br_map_get(&hs->claims, in->name);

	if (!c) {
		if (!(c = malloc(sizeof(*c))))
			return;
		*c = *in;
		if (br_map_put(&hs->claims, c)) {
			free(c);
			return;
		}
	} else {
		*c = *in;
	}
	c->seen = true;
	br_resolve(d, c->name);
}

static void claim_drop(struct br_dom *d, struct br_host *hs, const char *name, bool dead)
{
	struct br_claim *c = br_map_del(&hs->claims, name);

	if (c) {
		if (dead)
			br_proxy_mark_dead(d, name, hs->name, c->inc);
		br_resolve(d, name);
		free(c);
	}
}

static void apply(struct br_dom *d, struct br_host *hs, const struct br_delta *dl)
{
	if (dl->type == BR_JOIN)
		claim_set(d, hs, &dl->c);
	else
		claim_drop(d, hs, dl->c.name, dl->type == BR_DEATH);
	blog(BR_LOG_DEBUG, "member domain=%s host=%s node=%s type=%d seq=%llu", d->name, hs->name,
	     dl->c.name, dl->type, (unsigned long long)dl->seq);
}

static void delta_get(const struct br_hdr *h, struct br_delta *dl)
{
	uint32_t m = 0;

	memset(dl, 0, sizeof(*dl));
	dl->type = h->type;
	dl->seq = h->seq;
	dl->c.inc = h->inc;
	dl->c.join_ns = (int64_t)h->aux;
	memcpy(dl->c.name, h->name, sizeof(dl->c.name));
	if (h->type == BR_JOIN && h->body_len >= 4)
		memcpy(&m, h->body, 4);
	dl->c.max_msg = le32toh(m);
}

/*
 * A delta met ahead of its turn: before any snapshot was applied, or past
 * a gap. Its bridge sent it after the snapshot it follows, but the loop
 * handles a read's messages subject by subject (conn.c), so a delta on
 * m.<host> can be handled before that snapshot, on h.<host>. It is kept
 * (BR_PEND at most; beyond that the next heartbeat asks for a snapshot
 * that covers it) and applied when its turn comes.
 */
static void pend_add(struct br_host *hs, const struct br_delta *dl)
{
	uint32_t i;

	for (i = 0; i < hs->npend; i++)
		if (hs->pend[i].seq == dl->seq)
			return;
	if (hs->npend < BR_PEND)
		hs->pend[hs->npend++] = *dl;
}

/* Apply the kept deltas that follow mseq, in order; drop those it passed. */
static void pend_run(struct br_dom *d, struct br_host *hs)
{
	struct br_delta dl;
	uint32_t i = 0;

	while (i < hs->npend) {
		if (hs->pend[i].seq > hs->mseq + 1) {
			i++;
			continue;
		}
		dl = hs->pend[i];
		hs->pend[i] = hs->pend[--hs->npend];
		if (dl.seq == hs->mseq + 1) {
			hs->mseq = dl.seq;
			apply(d, hs, &dl);
		}
		i = 0; /* mseq moved: an earlier one may be next now */
	}
}

static void on_members(struct br_dom *d, const char *subj, const struct br_hdr *h)
{
	int64_t now = br_now_ns();
	struct br_delta dl;
	struct br_host *hs;

	(void)subj;
	if (!(hs = host_get(d, h)))
		return;
	switch (h->type) {
	case BR_BYE:
		host_remove(d, hs, false);
		return;
	case BR_HB:
		if (!hs->synced || h->seq > hs->mseq)
			ask_snapshot(d, hs, now);
		return;
	case BR_JOIN:
	case BR_LEAVE:
	case BR_DEATH:
		if (!h->name_len)
			return;
		delta_get(h, &dl);
		if (!hs->synced || h->seq > hs->mseq + 1) {
			pend_add(hs, &dl);
			ask_snapshot(d, hs, now); /* for what is missing */
		} else if (h->seq == hs->mseq + 1) {
			hs->mseq = h->seq;
			apply(d, hs, &dl);
			pend_run(d, hs);
		}
		return;
	default:
		return;
	}
}

static void snap_end(struct br_dom *d, struct br_host *hs)
{
	struct br_claim *c;
	uint32_t i = 0;

	while ((c = br_map_next(&hs->claims, &i)))
		if (!c->seen) {
			claim_drop(d, hs, c->name, false);
			i = 0;
		}
	hs->mseq = hs->snap_seq;
	hs->synced = true;
	hs->snap_in = false;
	hs->snap_ask_ns = 0;
	blog(BR_LOG_DEBUG, "snapshot domain=%s host=%s nodes=%u mseq=%llu", d->name, hs->name,
	     hs->claims.n, (unsigned long long)hs->mseq);
	pend_run(d, hs);
}

static void on_snapshot(struct br_dom *d, struct br_host *hs, const struct br_hdr *h)
{
	const unsigned char *p = h->body, *end = h->body + h->body_len;
	uint64_t chunk = h->aux & ~BR_SNAP_LAST;
	struct br_claim c, *old;
	uint32_t i = 0;
	int rc;

	if (chunk == 0) {
		if (hs->synced && h->seq < hs->mseq)
			return; /* older than what we applied */
		while ((old = br_map_next(&hs->claims, &i)))
			old->seen = false;
		hs->snap_in = true;
		hs->snap_seq = h->seq;
	} else if (!hs->snap_in || h->seq != hs->snap_seq || chunk != hs->snap_chunk) {
		hs->snap_in = false; /* a chunk missing: ask again */
		hs->snap_ask_ns = 0;
		ask_snapshot(d, hs, br_now_ns());
		return;
	}
	hs->snap_chunk = chunk + 1;
	while ((rc = br_snap_get(&p, end, &c)) > 0)
		claim_set(d, hs, &c);
	if (rc < 0) {
		d->bad_msgs++;
		hs->snap_in = false;
		return;
	}
	if (h->aux & BR_SNAP_LAST)
		snap_end(d, hs);
}

static void on_snapreq(struct br_dom *d, const char *subj, const struct br_hdr *h)
{
	(void)subj;
	if (h->type == BR_SNAPREQ)
		br_local_snapshot(d, h->host);
}

static void on_host(struct br_dom *d, const char *subj, const struct br_hdr *h)
{
	struct br_host *hs;

	(void)subj;
	switch (h->type) {
	case BR_GRANT:
		br_fwd_grant(d, h);
		return;
	case BR_SNAPREQ:
		br_local_snapshot(d, h->host);
		return;
	case BR_SNAP:
		if ((hs = host_get(d, h)))
			on_snapshot(d, hs, h);
		return;
	default:
		return;
	}
}

int br_remote_init(struct br_dom *d)
{
	char subj[BR_SUBJ];
	int rc;

	br_map_init(&d->hosts, offsetof(struct br_host, name));
	d->br->handlers[BR_SUB_DATA] = br_dlv_data;
	d->br->handlers[BR_SUB_MEMBERS] = on_members;
	d->br->handlers[BR_SUB_SNAPREQ] = on_snapreq;
	d->br->handlers[BR_SUB_HOST] = on_host;
	d->br->handlers[BR_SUB_BCAST] = br_dlv_bcast;
	br_subj_members(d, NULL, subj);
	if ((rc = br_sub(d, subj, BR_SUB_MEMBERS, &d->sub_m)))
		return rc;
	br_subj_snap(d, subj);
	if ((rc = br_sub(d, subj, BR_SUB_SNAPREQ, &d->sub_s)))
		return rc;
	/* before the nodes' subjects in each round of reads (conn.c): a
	 * BCAST copy read with the entries before it on a stream waits for
	 * them (dlv.c), not the other way round */
	br_subj_bcast(d, subj);
	if ((rc = br_sub(d, subj, BR_SUB_BCAST, &d->sub_b)))
		return rc;
	br_subj_host(d, d->br->o.host, subj);
	return br_sub(d, subj, BR_SUB_HOST, &d->sub_h);
}

/* After a (re)connect: new streams to every proxy, everybody's snapshot. */
void br_remote_resync(struct br_dom *d)
{
	struct br_hdr h = { .type = BR_SNAPREQ, .epoch = d->br->epoch };
	struct br_proxy *px;
	struct br_host *hs;
	char subj[BR_SUBJ];
	uint32_t i = 0;

	while ((px = br_map_next(&d->proxies, &i)))
		br_fwd_reset(d, px);
	for (i = 0; (hs = br_map_next(&d->hosts, &i));)
		hs->snap_ask_ns = br_now_ns();
	memcpy(h.host, d->br->o.host, sizeof(h.host));
	br_subj_snap(d, subj);
	(void)br_pub(d->br, subj, &h, NULL, 0);
	br_local_heartbeat(d);
}

void br_remote_tick(struct br_dom *d, int64_t now)
{
	int64_t period = (int64_t)d->br->o.hb_ms * 1000000;
	struct br_host *hs;
	uint32_t i = 0;

	if (now - d->hb_ns >= period) {
		br_local_heartbeat(d);
		d->hb_ns = now;
	}
	while ((hs = br_map_next(&d->hosts, &i))) {
		if (now - hs->heard_ns > d->br->o.dead_beats * period) {
			host_remove(d, hs, true);
			i = 0;
		} else if (!hs->synced) {
			ask_snapshot(d, hs, now);
		}
	}
}

void br_remote_fini(struct br_dom *d)
{
	struct br_host *hs;
	struct br_claim *c;
	uint32_t i = 0, j;

	br_unsub(d->br, &d->sub_m);
	br_unsub(d->br, &d->sub_s);
	br_unsub(d->br, &d->sub_h);
	br_unsub(d->br, &d->sub_b);
	while ((hs = br_map_next(&d->hosts, &i))) {
		for (j = 0; (c = br_map_next(&hs->claims, &j));)
			free(c);
		br_map_free(&hs->claims);
		free(hs);
	}
	br_map_free(&d->hosts);
}
