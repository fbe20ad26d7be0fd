// SPDX-License-Identifier: MIT
/*
 * This host's real nodes of a domain, as the bridge learns them from the
 * registry, and what it tells the other hosts about them.
 *
 * The control node subscribes to SHMRPC_EV_JOIN|LEAVE|DEATH and takes them
 * from its receive path (br_local_ctl_drain, when its fd is readable and
 * at every poll): a JOIN is announced at once, with the node's id, so that
 * a LEAVE or DEATH is matched to its incarnation (a node that restarts
 * under the same name is a new one) and a DEATH is announced as DEATH.
 * Events about our own proxies (nodes of this process) are not ours to
 * announce. shmrpc_nodes() is still polled every 20 ms through the control
 * node: it reclaims the dead it meets (their DEATH, taken right after) and
 * covers what an event queue that overflowed lost (a node's leave then
 * announced as LEAVE).
 *
 * A node that leaves is announced after what it sent through the proxies
 * is published (so that its LEAVE follows its last message, as a local
 * LEAVE event would): when no proxy is out of credits two polls later, or
 * after a second at most.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bridge.h"
#include "status.h"

#define POLL_NS (20 * 1000000ll)
#define LEAVE_MAX_NS (1000 * 1000000ll)
#define SNAP_CHUNK (64 * 1024)

int br_local_init(struct br_dom *d)
{
	struct shmrpc_opts so = { .sz = sizeof(so),
				  .domain = d->name,
				  .events = SHMRPC_EV_JOIN | SHMRPC_EV_LEAVE | SHMRPC_EV_DEATH };
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	br_map_init(&d->locals, offsetof(struct br_local, name));
	rc = shmrpc_open(BR_CTL_NAME, &so, &d->ctl);
	if (rc) {
		blog(BR_LOG_ERROR, "open domain=%s node=%s error=%s (%s)", d->name, BR_CTL_NAME,
		     strerror(-rc), shmrpc_last_error());
		return rc;
	}
	if ((d->ctl_fd = shmrpc_fd(d->ctl)) < 0)
		return d->ctl_fd;
	ev.data.u64 = (uint64_t)BR_TAG_CTL << BR_TAG_KIND_SHIFT | (uint32_t)d->idx;
	if (epoll_ctl(d->br->ep, EPOLL_CTL_ADD, d->ctl_fd, &ev))
		return -errno;
	d->names_cap = 256;
	d->names = calloc(d->names_cap, sizeof(*d->names));
	return d->names ? 0 : -ENOMEM;
}

static void announce(struct br_dom *d, int type, const struct br_local *l)
{
	struct br_hdr h = { .type = (uint8_t)type,
			    .epoch = d->br->epoch,
			    .stream = BR_FEAT_BCAST,
			    .inc = l->inc,
			    .seq = ++d->mseq,
			    .aux = (uint64_t)l->join_ns };
	uint32_t m = htole32(l->max_msg);
	char subj[BR_SUBJ];

	memcpy(h.host, d->br->o.host, sizeof(h.host));
	memcpy(h.name, l->name, sizeof(h.name));
	br_subj_members(d, d->br->o.host, subj);
	(void)br_pub(d->br, subj, &h, &m, sizeof(m)); /* a lost one: HB shows the gap */
}

void br_local_announce(struct br_dom *d, int type, const struct br_local *l)
{
	announce(d, type, l);
}

void br_local_heartbeat(struct br_dom *d)
{
	struct br_hdr h = {
		.type = BR_HB, .epoch = d->br->epoch, .stream = BR_FEAT_BCAST, .seq = d->mseq
	};
	char subj[BR_SUBJ];

	memcpy(h.host, d->br->o.host, sizeof(h.host));
	br_subj_members(d, d->br->o.host, subj);
	(void)br_pub(d->br, subj, &h, NULL, 0);
}

void br_local_bye(struct br_dom *d)
{
	struct br_hdr h = {
		.type = BR_BYE, .epoch = d->br->epoch, .stream = BR_FEAT_BCAST, .seq = ++d->mseq
	};
	char subj[BR_SUBJ];

	memcpy(h.host, d->br->o.host, sizeof(h.host));
	br_subj_members(d, d->br->o.host, subj);
	(void)br_pub(d->br, subj, &h, NULL, 0);
}

static struct br_local *join(struct br_dom *d, const char *name)
{
	struct br_local *l = calloc(1, sizeof(*l));
	char subj[BR_SUBJ];
	int max = shmrpc_max_size(d->ctl, name);

	if (!l)
		return NULL;
	if (max < 0) /* gone already (a sender met in a ring): the default ring's */
		max = (1 << 17) - 8;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->inc = d->br->epoch + ++d->next_inc;
	l->join_ns = br_wall_ns();
	l->max_msg = (uint32_t)max;
	l->seen = true;
	br_map_init(&l->streams, offsetof(struct br_rstream, host));
	if (br_map_put(&d->locals, l)) {
		free(l);
		return NULL;
	}
	l->row = br_status_row(d, name, d->br->o.host, BR_STATUS_LOCAL);
	br_subj_node(d, name, subj);
	(void)br_sub(d, subj, BR_SUB_DATA, &l->sub); /* logged; it gets nothing */
	blog(BR_LOG_INFO, "join domain=%s node=%s", d->name, name);
	announce(d, BR_JOIN, l);
	br_resolve(d, name); /* refused if an earlier node of another host has it */
	return l;
}

/*
 * A sender found in a proxy's ring that no poll has seen (it joined, sent
 * and maybe left within 20 ms): announced now, before its message goes
 * out, so that the receiving host knows its name (one publisher: NATS
 * keeps the order). The next poll starts its leave if it is gone.
 */
struct br_local *br_local_sender(struct br_dom *d, const char *name)
{
	struct br_local *l = br_map_get(&d->locals, name);

	if (l || !strcmp(name, BR_CTL_NAME) || br_map_get(&d->proxies, name))
		return l;
	return join(d, name);
}

static void start_leave(struct br_dom *d, struct br_local *l, int64_t now)
{
	l->leaving = true;
	l->leave_ns = now;
	br_unsub(d->br, &l->sub);
	br_dlv_drop_local(d, l);
	br_resolve(d, l->name); /* a node of another host may own the name now */
}

static bool proxies_flowing(struct br_dom *d)
{
	struct br_proxy *px;
	uint32_t i = 0;

	while ((px = br_map_next(&d->proxies, &i)))
		if (px->blocked)
			return false;
	return true;
}

static void finish_leave(struct br_dom *d, struct br_local *l)
{
	blog(BR_LOG_INFO, "%s domain=%s node=%s", l->died ? "death" : "leave", d->name, l->name);
	announce(d, l->died ? BR_DEATH : BR_LEAVE, l);
	d->gone.lost += l->ctr.lost;
	d->gone.dropped += l->ctr.dropped;
	br_status_free_row(d, l->row);
	br_map_del(&d->locals, l->name);
	br_map_free(&l->streams);
	free(l);
}

static int poll_registry(struct br_dom *d)
{
	int n = shmrpc_nodes(d->ctl, d->names, d->names_cap);

	while (n > (int)d->names_cap) {
		void *p = realloc(d->names, 2 * (size_t)n * sizeof(*d->names));

		if (!p)
			return -ENOMEM;
		d->names = p;
		d->names_cap = 2 * (size_t)n;
		n = shmrpc_nodes(d->ctl, d->names, d->names_cap);
	}
	return n;
}

static void leaves(struct br_dom *d, int64_t now)
{
	bool flowing = proxies_flowing(d);
	struct br_local *l;
	uint32_t i = 0;

	while ((l = br_map_next(&d->locals, &i))) {
		if (!l->seen && !l->leaving)
			start_leave(d, l, now);
		if (l->leaving && ((flowing && now - l->leave_ns >= 2 * POLL_NS) ||
				   now - l->leave_ns >= LEAVE_MAX_NS)) {
			finish_leave(d, l);
			i = 0; /* the table changed */
		}
	}
}

/* A membership event of the domain, in the log's order. */
static void on_event(struct br_dom *d, const struct shmrpc_event *ev)
{
	struct br_local *l = br_map_get(&d->locals, ev->name);

	if (ev->dropped)
		blog(BR_LOG_WARN, "events-dropped domain=%s count=%u", d->name, ev->dropped);
	/* our proxies (pid: nodes of this process), and our control node */
	if (ev->pid == (uint32_t)getpid() || !strcmp(ev->name, BR_CTL_NAME))
		return;
	if (ev->type == SHMRPC_EV_JOIN) {
		if (l && (l->leaving || (l->id && l->id != ev->id))) {
			finish_leave(d, l); /* a new incarnation: the old one is gone */
			l = NULL;
		}
		if (!l && !br_map_get(&d->proxies, ev->name))
			l = join(d, ev->name);
		if (l && !l->id)
			l->id = ev->id;
		return;
	}
	if (!l || (l->id && l->id != ev->id))
		return; /* about an incarnation we did not announce */
	if (!l->leaving)
		start_leave(d, l, br_now_ns());
	l->died = ev->type == SHMRPC_EV_DEATH;
}

void br_local_ctl_drain(struct br_dom *d)
{
	struct shmrpc_rxbuf rx;
	struct shmrpc_event ev;
	bool is_ev;

	/* Broadcasts come here too (the control node is a node of the
	 * domain): nothing to do with them, every proxy got its own copy. */
	while (shmrpc_peek(d->ctl, &rx, 0) >= 0) {
		is_ev = rx.len == sizeof(ev) && !strcmp(rx.from, SHMRPC_EVENT_FROM);
		if (is_ev)
			memcpy(&ev, rx.data, sizeof(ev));
		if (shmrpc_release(d->ctl, &rx))
			return;
		if (is_ev)
			on_event(d, &ev);
	}
}

void br_local_poll(struct br_dom *d, int64_t now)
{
	struct br_local *l;
	uint32_t i = 0;
	int n, k;

	if (now - d->poll_ns < POLL_NS)
		return;
	d->poll_ns = now;
	br_local_ctl_drain(d); /* the names read next are newer than these */
	if ((n = poll_registry(d)) < 0)
		return;
	br_local_ctl_drain(d); /* the DEATHs of the dead it reclaimed */
	while ((l = br_map_next(&d->locals, &i)))
		l->seen = false;
	for (k = 0; k < n && k < (int)d->names_cap; k++) {
		const char *name = d->names[k];

		if (!strcmp(name, BR_CTL_NAME) || br_map_get(&d->proxies, name))
			continue;
		l = br_map_get(&d->locals, name);
		/* Known by its event: its successor's JOIN event says when a
		 * new one came (it may have left since the names were read). */
		if (l && l->leaving && l->id)
			continue;
		if (l && l->leaving) { /* back under the same name: a new node */
			finish_leave(d, l);
			l = NULL;
		}
		if (l)
			l->seen = true;
		else
			join(d, name);
	}
	leaves(d, now);
}

static void snap_send(struct br_dom *d, const char *subj, unsigned char *buf, uint32_t len,
		      uint64_t chunk, bool last)
{
	struct br_hdr h = { .type = BR_SNAP,
			    .epoch = d->br->epoch,
			    .stream = BR_FEAT_BCAST,
			    .seq = d->mseq,
			    .aux = chunk | (last ? BR_SNAP_LAST : 0) };

	memcpy(h.host, d->br->o.host, sizeof(h.host));
	(void)br_pub(d->br, subj, &h, buf, len);
}

void br_local_snapshot(struct br_dom *d, const char *to)
{
	unsigned char buf[SNAP_CHUNK + BR_WIRE_MAX];
	char subj[BR_SUBJ];
	struct br_claim c;
	struct br_local *l;
	uint32_t i = 0, len = 0;
	uint64_t chunk = 0;

	br_subj_host(d, to, subj);
	/* Leaving nodes too: their LEAVE is not in mseq yet, it follows the
	 * snapshot (a snapshot without them closed their proxies elsewhere
	 * before their last messages arrived there). */
	while ((l = br_map_next(&d->locals, &i))) {
		if (len > SNAP_CHUNK - BR_WIRE_MAX) {
			snap_send(d, subj, buf, len, chunk++, false);
			len = 0;
		}
		memcpy(c.name, l->name, sizeof(c.name));
		c.inc = l->inc;
		c.join_ns = l->join_ns;
		c.max_msg = l->max_msg;
		len += br_snap_put(buf + len, &c);
	}
	snap_send(d, subj, buf, len, chunk, true);
}

void br_local_fini_subs(struct br_dom *d)
{
	struct br_local *l;
	uint32_t i = 0;

	while ((l = br_map_next(&d->locals, &i)))
		br_unsub(d->br, &l->sub);
}

void br_local_fini(struct br_dom *d)
{
	struct br_local *l;
	uint32_t i = 0;

	while ((l = br_map_next(&d->locals, &i))) {
		struct br_rstream *rs;
		uint32_t j = 0;

		br_unsub(d->br, &l->sub);
		while ((rs = br_map_next(&l->streams, &j)))
			br_rstream_free(rs);
		br_map_free(&l->streams);
		free(l);
	}
	br_map_free(&d->locals);
	free(d->names);
	d->names = NULL;
	shmrpc_close(d->ctl);
	d->ctl = NULL;
}
