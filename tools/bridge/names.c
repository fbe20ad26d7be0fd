// SPDX-License-Identifier: MIT
/*
 * Who owns each name of a bridged domain, and the proxies that make remote
 * owners visible here.
 *
 * A name may be claimed by a node of this host and by nodes of other hosts
 * (announced with the time each bridge first saw its node join, in
 * CLOCK_REALTIME). The owner is the earliest claim, ties broken by the host
 * name: every bridge computes the same owner from the same claims. A proxy
 * (a node opened here under the owner's name) exists exactly when the owner
 * is on another host and no node of this host holds the name; a node of
 * this host that is not the owner is "refused": it keeps working locally,
 * but the bridge forwards nothing from it and announces it as refused
 * (docs/cross-host.md, "Names").
 *
 * A proxy that must go (its node left, its host died, its name changed
 * owner) first lingers while messages from it wait in a delivery queue
 * (dlv.c), at most a second, so that what its node sent before leaving is
 * delivered under its name.
 *
 * A proxy that fails to open (a full /dev/shm, out of descriptors or
 * memory) is tried again from the tick, 100 ms later, then at doubling
 * intervals up to 3.2 s, for as long as the name is owned by another host
 * and no node of this host holds it: the names waiting are in the domain's
 * retry table, empty (and never scanned) when nothing failed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "bridge.h"
#include "status.h"

#define LINGER_NS (1000 * 1000000ll)
#define RETRY_FIRST_NS (100 * 1000000ll)
#define RETRY_MAX_NS (3200 * 1000000ll)

/* A name whose proxy failed to open (the domain's retry table). */
struct retry {
	char name[BR_NAME]; /* the key: first */
	uint32_t retried;   /* opens tried again so far */
	int64_t wait_ns;    /* before the next */
	int64_t due_ns;
};

struct owner {
	const char *host;
	uint64_t inc;
	int64_t join_ns;
	uint32_t max_msg;
	bool local;
};

static bool earlier(int64_t ja, const char *ha, int64_t jb, const char *hb)
{
	return ja < jb || (ja == jb && strcmp(ha, hb) < 0);
}

static bool find_owner(struct br_dom *d, const char *name, struct owner *o)
{
	struct br_local *l = br_map_get(&d->locals, name);
	struct br_host *hs;
	struct br_claim *c;
	bool found = false;
	uint32_t i = 0;

	if (l && !l->leaving) {
		*o = (struct owner){ d->br->o.host, l->inc, l->join_ns, l->max_msg, true };
		found = true;
	}
	while ((hs = br_map_next(&d->hosts, &i))) {
		c = br_map_get(&hs->claims, name);
		if (c && (!found || earlier(c->join_ns, hs->name, o->join_ns, o->host))) {
			*o = (struct owner){ hs->name, c->inc, c->join_ns, c->max_msg, false };
			found = true;
		}
	}
	return found;
}

/* The proxy's ring: like the node's own (max_msg = ring / 2 - 8), but
 * every message must fit in one NATS message with its headers. */
static uint32_t ring_for(const struct br_dom *d, uint32_t max_msg)
{
	uint64_t want = 2 * ((uint64_t)max_msg + 8), r = 4096;
	uint64_t cap = 2 * ((uint64_t)d->br->max_payload - BR_WIRE_MAX - BR_BATCH_ENTRY);

	while (2 * r <= want && 2 * r <= cap && r < (1u << 30))
		r *= 2;
	return (uint32_t)r;
}

static int tag_alloc(struct bridge *br, struct br_proxy *px)
{
	uint32_t i;
	struct br_proxy **t;

	for (i = 0; i < br->ntags; i++)
		if (!br->tags[i])
			break;
	if (i == br->ntags) {
		t = realloc(br->tags, (br->ntags ? 2 * br->ntags : 64) * sizeof(*t));
		if (!t)
			return -ENOMEM;
		memset(t + br->ntags, 0, (br->ntags ? br->ntags : 64) * sizeof(*t));
		br->ntags = br->ntags ? 2 * br->ntags : 64;
		br->tags = t;
	}
	br->tags[i] = px;
	px->tag = i;
	return 0;
}

struct br_proxy *br_proxy_by_tag(struct bridge *br, uint32_t tag)
{
	return tag < br->ntags ? br->tags[tag] : NULL;
}

void br_proxy_enable(struct br_dom *d, struct br_proxy *px, bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0,
				  .data.u64 = (uint64_t)BR_TAG_PROXY << BR_TAG_KIND_SHIFT |
					      px->tag };

	if (px->enabled == on)
		return;
	if (epoll_ctl(d->br->ep, EPOLL_CTL_MOD, px->fd, &ev))
		blog(BR_LOG_ERROR, "epoll node=%s error=%s", px->name, strerror(errno));
	px->enabled = on;
}

static int proxy_setup(struct br_dom *d, struct br_proxy *px)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = (uint64_t)BR_TAG_PROXY << BR_TAG_KIND_SHIFT };

	if ((px->fd = shmrpc_fd(px->node)) < 0)
		return px->fd;
	if (tag_alloc(d->br, px))
		return -ENOMEM;
	ev.data.u64 |= px->tag;
	if (epoll_ctl(d->br->ep, EPOLL_CTL_ADD, px->fd, &ev)) {
		d->br->tags[px->tag] = NULL;
		return -errno;
	}
	px->enabled = true;
	px->sizes = calloc(d->br->o.window, sizeof(*px->sizes));
	if (!px->sizes)
		return -ENOMEM; /* the epoll entry goes with the node's close */
	px->stream = ++d->br->next_stream;
	br_subj_node(d, px->name, px->subj);
	/* it answers local callers through its remote node (xcall.c) */
	if (shmrpc_serve(px->node, br_xc_serve, px))
		return -EINVAL;
	return br_map_put(&d->proxies, px);
}

/* The proxy of @name failed to open (@rc, @why): tried again later. The
 * first failure is an ERROR line, the next ones DEBUG lines until it opens
 * (INFO "proxy-open ... retried=N") or is not wanted any more. */
static void retry_later(struct br_dom *d, const char *name, const char *host, int rc,
			const char *why)
{
	struct retry *r = br_map_get(&d->retry, name);
	bool first = !r;

	if (r) {
		r->retried++;
		r->wait_ns = r->wait_ns < RETRY_MAX_NS / 2 ? 2 * r->wait_ns : RETRY_MAX_NS;
	} else if ((r = calloc(1, sizeof(*r)))) {
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->wait_ns = RETRY_FIRST_NS;
		if (br_map_put(&d->retry, r)) {
			free(r);
			r = NULL;
		}
	}
	if (r)
		r->due_ns = br_now_ns() + r->wait_ns;
	blog(first ? BR_LOG_ERROR : BR_LOG_DEBUG,
	     "proxy-failed domain=%s node=%s host=%s error=%s (%s) retried=%u retry-in-ms=%lld",
	     d->name, name, host, strerror(-rc), why, r ? r->retried : 0,
	     r ? (long long)(r->wait_ns / 1000000) : -1ll);
}

/* @name's proxy opened, or is not wanted any more: no retry. How many
 * retries it took, or -1 if none was pending. */
static long retry_drop(struct br_dom *d, const char *name)
{
	struct retry *r = d->retry.n ? br_map_del(&d->retry, name) : NULL;
	long n = r ? (long)r->retried : -1;

	free(r);
	return n;
}

static void proxy_open(struct br_dom *d, const char *name, const struct owner *o)
{
	struct shmrpc_opts so = { .sz = sizeof(so), .domain = d->name };
	struct br_proxy *px = calloc(1, sizeof(*px));
	long retried;
	int rc;

	if (!px) {
		retry_later(d, name, o->host, -ENOMEM, "the proxy's memory");
		return;
	}
	snprintf(px->name, sizeof(px->name), "%s", name);
	px->d = d;
	snprintf(px->host, sizeof(px->host), "%s", o->host);
	px->inc = o->inc;
	px->max_msg = o->max_msg;
	px->row = -1;
	br_map_init(&px->jobs, 0); /* keys at the start of struct br_job */
	so.ring_bytes = ring_for(d, o->max_msg);
	/* Requests served in one peek may pass the credits by this much
	 * (fwd.c); the receiving side queues up to twice the window. */
	so.max_calls = d->br->o.window;
	/* Events (one kind, the rarest; fwd.c discards them) make the library
	 * keep a dead sender's ring this proxy had not opened yet until it is
	 * drained: without them, a local node killed right after its sends
	 * lost them silently when its reclaim came before our first read. */
	so.events = SHMRPC_EV_DEATH;
	so.proxy_host = o->host; /* shmrpc_is_local 0, shmrpc_node_host names it */
	/* broadcasts reach it marked: bcast.c publishes their copies once */
	so.flags = SHMRPC_OPEN_BCAST_MARKS;
	rc = shmrpc_open(name, &so, &px->node);
	if (rc == -EEXIST) {
		/* a node of this host took the name since the last poll; the
		 * poll finds it and settles who owns the name */
		blog(BR_LOG_INFO, "proxy-failed domain=%s node=%s host=%s error=%s (%s)", d->name,
		     name, o->host, strerror(-rc), shmrpc_last_error());
		retry_drop(d, name);
		free(px);
		return;
	}
	if (rc) {
		retry_later(d, name, o->host, rc, shmrpc_last_error());
		free(px);
		return;
	}
	if ((rc = proxy_setup(d, px))) {
		retry_later(d, name, o->host, rc, "setting the proxy up");
		if (d->br->tags && px->tag < d->br->ntags && d->br->tags[px->tag] == px)
			d->br->tags[px->tag] = NULL;
		shmrpc_close(px->node);
		free(px->sizes);
		free(px);
		return;
	}
	px->row = br_status_row(d, name, o->host, BR_STATUS_REMOTE);
	retried = retry_drop(d, name);
	if (retried < 0)
		blog(BR_LOG_INFO, "proxy-open domain=%s node=%s host=%s ring=%u", d->name, name,
		     o->host, so.ring_bytes);
	else
		blog(BR_LOG_INFO, "proxy-open domain=%s node=%s host=%s ring=%u retried=%ld",
		     d->name, name, o->host, so.ring_bytes, retried + 1);
}

/*
 * Close now. Messages its local senders queued to it and the bridge did
 * not take yet go with it, as messages queued to a local node that leaves
 * do (shmrpc_close): the bridge must not drain them to count them, since
 * that would complete a blocked send that then reports success for a
 * message nobody will receive.
 */
/* The node itself, once no call of xcall.c's threads uses it. */
static void proxy_free(struct br_dom *d, struct br_proxy *px)
{
	/* local subscribers get DEATH for a node that died or whose host
	 * went, LEAVE for one that closed */
	if (px->dead)
		(void)shmrpc_close_flags(px->node, SHMRPC_CLOSE_DEAD);
	else
		shmrpc_close(px->node);
	blog(BR_LOG_INFO, "proxy-close domain=%s node=%s host=%s%s", d->name, px->name, px->host,
	     px->dead ? " dead=1" : "");
	free(px->sizes);
	free(px);
}

static void proxy_close(struct br_dom *d, struct br_proxy *px)
{
	if (px->held && d->bc_forget)
		d->bc_forget(d, px);
	d->gone.lost += px->ctr.lost;
	d->gone.dropped += px->ctr.dropped;
	br_map_del(&d->proxies, px->name);
	d->br->tags[px->tag] = NULL;
	br_status_free_row(d, px->row);
	if (br_xc_proxy_gone(d, px)) {
		proxy_free(d, px); /* its fd leaves the epoll set with it */
		return;
	}
	/* a zombie until its last reply is out: out of the epoll set now */
	if (epoll_ctl(d->br->ep, EPOLL_CTL_DEL, px->fd, NULL))
		blog(BR_LOG_ERROR, "epoll node=%s error=%s", px->name, strerror(errno));
}

static void proxy_retire(struct br_dom *d, struct br_proxy *px)
{
	if (!br_dlv_holds(d, px->name)) {
		proxy_close(d, px);
		return;
	}
	if (!px->lingering) {
		px->lingering = true;
		px->linger_ns = br_now_ns();
		br_proxy_enable(d, px, false); /* its node is gone: nothing more to it */
	}
}

void br_proxy_mark_dead(struct br_dom *d, const char *name, const char *host, uint64_t inc)
{
	struct br_proxy *px = br_map_get(&d->proxies, name);

	if (px && !strcmp(px->host, host) && px->inc == inc)
		px->dead = true;
}

static void set_refused(struct br_dom *d, struct br_local *l, bool refused, const char *owner)
{
	if (l->refused == refused)
		return;
	l->refused = refused;
	br_status_set_kind(d, l->row, refused ? BR_STATUS_REFUSED : BR_STATUS_LOCAL,
			   refused ? owner : d->br->o.host);
	if (refused)
		blog(BR_LOG_WARN,
		     "collision domain=%s node=%s lives-on=%s: this host's node of that name "
		     "joined later, the bridge forwards nothing from it",
		     d->name, l->name, owner);
	else
		blog(BR_LOG_INFO, "collision-over domain=%s node=%s", d->name, l->name);
}

void br_resolve(struct br_dom *d, const char *name)
{
	struct br_local *l = br_map_get(&d->locals, name);
	struct br_proxy *px = br_map_get(&d->proxies, name);
	bool live_local = l && !l->leaving;
	struct owner o = { 0 };
	bool have = find_owner(d, name, &o);

	if (live_local)
		set_refused(d, l, have && !o.local, have ? o.host : "");
	if (px && px->lingering)
		return; /* decided again when it closes */
	if (px && (!have || o.local || strcmp(px->host, o.host) || px->inc != o.inc)) {
		proxy_retire(d, px);
		if (br_map_get(&d->proxies, name))
			return;
		px = NULL;
	}
	if (have && !o.local && !live_local && !px)
		proxy_open(d, name, &o);
	else if (retry_drop(d, name) >= 0)
		blog(BR_LOG_INFO, "proxy-retry-over domain=%s node=%s: no proxy wanted any more",
		     d->name, name);
}

/* Names whose proxy failed to open, due now: resolved again. */
static void retry_due(struct br_dom *d, int64_t now)
{
	char name[BR_NAME];
	struct retry *r;
	uint32_t i = 0;

	while (d->retry.n && (r = br_map_next(&d->retry, &i))) {
		if (r->due_ns > now)
			continue;
		snprintf(name, sizeof(name), "%s", r->name);
		r->due_ns = now + r->wait_ns; /* not due again in this loop, whatever happens */
		br_resolve(d, name);
		/* br_resolve deleted this name or rescheduled it, and put no
		 * other (a put is for a name not in the table): a delete moves
		 * later items back into this slot, so look at it again. Items
		 * met twice are not due the second time. No restart from 0:
		 * thousands of names due at once stay linear. */
		i--;
	}
}

void br_names_tick(struct br_dom *d, int64_t now)
{
	char name[BR_NAME];
	struct br_proxy *px;
	uint32_t i = 0;

	br_xc_reap(d, false, proxy_free);
	while ((px = br_map_next(&d->proxies, &i))) {
		if (!px->lingering ||
		    (br_dlv_holds(d, px->name) && now - px->linger_ns < LINGER_NS))
			continue;
		snprintf(name, sizeof(name), "%s", px->name);
		proxy_close(d, px);
		br_resolve(d, name);
		i = 0; /* the table changed: start over */
	}
	retry_due(d, now);
}

void br_names_fini(struct br_dom *d)
{
	struct retry *r;
	struct br_proxy *px;
	uint32_t i = 0;

	while ((px = br_map_next(&d->proxies, &i))) {
		px->dead = true; /* unreachable from here on, not closed there */
		proxy_close(d, px);
		i = 0;
	}
	br_map_free(&d->proxies);
	br_xc_reap(d, true, proxy_free);
	i = 0;
	while ((r = br_map_next(&d->retry, &i)))
		free(r); /* the table goes at once: no del */
	br_map_free(&d->retry);
}
