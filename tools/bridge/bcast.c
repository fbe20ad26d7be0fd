// SPDX-License-Identifier: MIT
/*
 * Broadcasts published once (docs/cross-host.md, "Broadcast").
 *
 * A local sender's shmrpc_broadcast leaves one copy in its ring to every
 * proxy, each marked by the library with the broadcast's number and how
 * many marked copies it made (the proxies are opened with
 * SHMRPC_OPEN_BCAST_MARKS). fwd.c takes a proxy's messages in ring order
 * and stops at a marked copy (the receive ends there): the messages before
 * it are published on the node's stream, and the proxy is held here at a
 * barrier of that broadcast (its fd leaves the epoll set only if the loop
 * finds it readable while it is held: usually the barrier is done first,
 * and two epoll_ctl per proxy and broadcast were a good part of the cost). When every copy
 * has come (or the barrier's time, --bcast-wait-us, is over), one BCAST on
 * shmrpc.<D>.b carries the payload and, per target, the sequence number
 * the copy takes on that node's stream; each remote bridge fans it out to
 * its own nodes as if each copy had come on its stream (dlv.c). So the
 * order per (sender, receiver) is the rings': what a sender sent to Y
 * before the broadcast was published before the BCAST, on the same NATS
 * connection; what it sent after waits in the ring until the barrier is
 * done.
 *
 * A copy that never comes (the library skipped a full ring past its
 * timeout, or the count was wrong: it is the sender's, untrusted) only
 * makes the barrier wait for its time; the copies that came go in the
 * BCAST. A copy that comes after its broadcast was published (its proxy
 * was out of credits, its ring full) goes on its node's stream at once:
 * one sender's broadcast numbers increase, so "at or below the last one
 * published" says late (within 2^32 of it: a new incarnation of the sender
 * starts elsewhere, at random). Targets that do not fit in one NATS message
 * go on their streams too, and so do those of a host whose bridge does not
 * read BCASTs (0.2.1's: see bcast_first). A proxy that closes while held
 * leaves the barrier (bc_forget). A BCAST that cannot be published counts
 * every copy dropped, as a batch does.
 *
 * Each held proxy is at one barrier, so there are never more barriers
 * than proxies. Two senders broadcasting at once can hold each other's
 * copies back: proxy P1 held at A's broadcast, P2 at B's, each barrier
 * waiting for the copy behind the other's. Once every proxy is held
 * nothing can come, so every barrier goes at once (not at its time).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

struct br_bc {
	struct br_bc *next;
	char from[BR_NAME]; /* the local sender */
	uint64_t id;	    /* its broadcast's number */
	uint32_t copies;    /* what the mark says will come */
	uint32_t n, cap;
	struct br_proxy **px; /* held here, in arrival order */
	int64_t deadline_ns;
	uint32_t len;
	unsigned char data[];
};

static void release(struct br_dom *d, struct br_proxy *px)
{
	px->held = NULL;
	d->nheld--;
	if (!px->blocked && !px->lingering && atomic_load(&d->br->up))
		br_proxy_enable(d, px, true); /* readable if its rings hold more */
	if (px->out)			      /* entries xcall.c put meanwhile */
		br_xc_out_list(d, px);
}

static void unlink_bc(struct br_dom *d, struct br_bc *bc)
{
	struct br_bc **pp;

	for (pp = &d->bcs; *pp; pp = &(*pp)->next)
		if (*pp == bc) {
			*pp = bc->next;
			return;
		}
}

static int by_host(const void *a, const void *b)
{
	const struct br_proxy *x = *(struct br_proxy *const *)a, *y = *(struct br_proxy *const *)b;

	return strcmp(x->host, y->host);
}

/*
 * Move the held proxies whose host reads BCASTs to the front, sorted by
 * host: how many (a bridge of 0.2.1 does not: it says nothing of
 * BR_FEAT_BCAST; its nodes' copies go alone, which it reads as any
 * message). remote.c keeps what each host said in d->hosts; this only
 * reads it.
 */
static uint32_t bcast_first(struct br_dom *d, struct br_bc *bc)
{
	struct br_proxy *t;
	struct br_host *hs;
	uint32_t i, m = 0;

	for (i = 0; i < bc->n; i++) {
		hs = br_map_get(&d->hosts, bc->px[i]->host);
		if (hs && hs->bcast) {
			t = bc->px[m];
			bc->px[m++] = bc->px[i];
			bc->px[i] = t;
		}
	}
	qsort(bc->px, m, sizeof(*bc->px), by_host);
	return m;
}

/* How many of px[0..n) (sorted by host) fit in @room bytes of targets. */
static uint32_t fitting(struct br_proxy **px, uint32_t n, uint64_t room)
{
	uint64_t used = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint64_t need = BR_BC_TARGET_MAX;

		if (!i || strcmp(px[i]->host, px[i - 1]->host))
			need += BR_BC_GROUP_MAX;
		if (used + need > room)
			break;
		used += need;
	}
	return i;
}

/* The BCAST for px[0..k), into fwd.c's batch buffer: its body's length. */
static uint32_t build(struct br_dom *d, struct br_bc *bc, uint32_t k)
{
	unsigned char *p = d->br->batch + BR_WIRE_MAX, *start = p;
	uint32_t i, j, n;

	p += br_bc_put_payload(p, bc->data, bc->len);
	for (i = 0; i < k; i = j) {
		for (j = i + 1; j < k && !strcmp(bc->px[j]->host, bc->px[i]->host); j++)
			;
		p += br_bc_put_group(p, bc->px[i]->host, j - i);
		for (n = i; n < j; n++)
			p += br_bc_put_target(p, bc->px[n]->name, bc->px[n]->inc, bc->px[n]->stream,
					      bc->px[n]->seq + 1);
	}
	return (uint32_t)(p - start);
}

#define LATE_SPAN (1ull << 32)

/* Publish what came, release the proxies, free the barrier. */
static void resolve(struct br_dom *d, struct br_bc *bc)
{
	struct br_local *l = br_local_sender(d, bc->from);
	struct br_hdr h = { .type = BR_BCAST, .epoch = d->br->epoch, .seq = bc->id };
	uint64_t cap = d->br->max_payload - BR_WIRE_MAX;
	uint32_t i, m, k = 0;
	char subj[BR_SUBJ];
	int rc = 0;

	unlink_bc(d, bc);
	if (l && (!l->bc_done || bc->id - l->bc_done < (1ull << 63)))
		l->bc_done = bc->id;
	m = bcast_first(d, bc);
	if (m > 1 && 4 + (uint64_t)bc->len < cap)
		k = fitting(bc->px, m, cap - 4 - bc->len);
	if (k > 1) {
		memcpy(h.host, d->br->o.host, sizeof(h.host));
		snprintf(h.name, sizeof(h.name), "%s", bc->from);
		h.aux = k;
		br_subj_bcast(d, subj);
		rc = br_pub_batch(d->br, subj, &h, build(d, bc, k));
		for (i = 0; i < k; i++)
			br_fwd_sent(d, bc->px[i], bc->from, bc->len, rc);
		if (!rc) {
			d->bcasts++;
			d->bcast_sent += k;
		}
	} else {
		k = 0; /* one copy alone: on its stream, as any message */
	}
	for (i = k; i < bc->n; i++) {
		br_fwd_one(d, bc->px[i], bc->from, bc->data, bc->len);
		d->bcast_split++;
	}
	for (i = 0; i < bc->n; i++)
		release(d, bc->px[i]);
	free(bc->px);
	free(bc);
}

static struct br_bc *find(struct br_dom *d, const char *from, uint64_t id)
{
	struct br_bc *bc;

	for (bc = d->bcs; bc; bc = bc->next)
		if (bc->id == id && !strcmp(bc->from, from))
			return bc;
	return NULL;
}

static struct br_bc *make(struct br_dom *d, const struct shmrpc_mark *mk,
			  const struct shmrpc_msg *m)
{
	struct br_bc *bc = calloc(1, sizeof(*bc) + m->len);

	if (!bc)
		return NULL;
	snprintf(bc->from, sizeof(bc->from), "%s", m->from);
	bc->id = mk->bcast;
	bc->copies = mk->copies;
	bc->len = (uint32_t)m->len;
	memcpy(bc->data, m->buf, m->len);
	bc->deadline_ns = br_now_ns() + (int64_t)d->br->o.bcast_wait_us * 1000;
	bc->next = d->bcs;
	d->bcs = bc;
	return bc;
}

/* fwd.c met px's copy of a broadcast: true if px is held here now. */
static bool on_mark(struct br_dom *d, struct br_proxy *px, const struct shmrpc_mark *mk,
		    const struct shmrpc_msg *m)
{
	struct br_bc *bc = find(d, m->from, mk->bcast);
	struct br_local *l;

	if (!bc && mk->copies < 2)
		return false; /* nothing to share */
	if (!bc && (l = br_local_sender(d, m->from)) && l->bc_done &&
	    l->bc_done - mk->bcast < LATE_SPAN)
		return false;	     /* late: its broadcast went */
	if (bc && bc->len != m->len) /* not the same broadcast after all */
		return false;
	if (!bc && !(bc = make(d, mk, m)))
		return false; /* memory: an ordinary message */
	if (bc->n == bc->cap) {
		uint32_t cap = bc->cap ? 2 * bc->cap : 8;
		struct br_proxy **v = realloc(bc->px, cap * sizeof(*v));

		if (!v) {
			if (!bc->n) {
				unlink_bc(d, bc);
				free(bc);
			}
			return false;
		}
		bc->px = v;
		bc->cap = cap;
	}
	bc->px[bc->n++] = px;
	px->held = bc;
	d->nheld++;
	if (bc->n >= bc->copies)
		resolve(d, bc);
	else if (d->nheld >= d->proxies.n) /* nothing else can come */
		while (d->bcs)
			resolve(d, d->bcs);
	return true;
}

/* A held proxy closes: it leaves its barrier (its copy goes with it). */
static void on_forget(struct br_dom *d, struct br_proxy *px)
{
	struct br_bc *bc = px->held;
	uint32_t i;

	if (!bc)
		return;
	for (i = 0; i < bc->n; i++)
		if (bc->px[i] == px) {
			bc->px[i] = bc->px[--bc->n];
			break;
		}
	px->held = NULL;
	d->nheld--;
	if (!bc->n) {
		unlink_bc(d, bc);
		free(bc->px);
		free(bc);
	}
}

void br_bc_init(struct br_dom *d)
{
	d->bc_mark = on_mark;
	d->bc_forget = on_forget;
}

void br_bc_tick(struct br_dom *d, int64_t now)
{
	struct br_bc *bc = d->bcs, *next;

	for (; bc; bc = next) {
		next = bc->next;
		if (now >= bc->deadline_ns)
			resolve(d, bc);
	}
}

void br_bc_fini(struct br_dom *d)
{
	while (d->bcs)
		resolve(d, d->bcs);
}
