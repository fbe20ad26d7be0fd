// SPDX-License-Identifier: MIT
/*
 * Membership events, delivered as messages from SHMRPC_EVENT_FROM to a
 * node that subscribed (opts.events). The producer is the registry's event
 * log (evlog.c): every join, leave and reclaim appends to it under the
 * registry lock and bumps the epoch. A subscriber keeps a cursor into it,
 * starting after its own JOIN, and sleeps on the epoch word besides its
 * rings (rx.c arms it with the value read before its last look at the log:
 * the epoch has no SLEEP flag, and needs none, since every change of it is
 * followed by a FUTEX_WAKE; a bump after our read makes the kernel's
 * compare fail and the wait return at once).
 *
 * The receive scan (rx.c) asks here first, so events come before the
 * messages scanned after them; two rules make the order exact:
 *  - held: a LEAVE or DEATH of X waits (and every event behind it) until X
 *    has nothing more for us: no ring from X's slot at X's generation or
 *    older in our set, and no announcement pending from that slot (its pend
 *    bit). X left or was reclaimed before the event was appended, so its
 *    rings are closed (TX_CLOSED), or announced and closed (reclaim.c): they
 *    drain and go. A ring from X not closed yet is marked draining here,
 *    since X's slot says X is gone.
 *  - gated: a ring opened while its sender's JOIN is still ahead of the
 *    cursor is not read until the cursor passed that JOIN (and every event
 *    before it).
 * A held event waits only on rings of nodes older than itself, and a gate
 * only on an event older than its node's LEAVE or DEATH: neither can wait
 * on the other in a circle.
 *
 * The log is shared memory that any member writes: entries are checked
 * (evlog.c), a LEAVE or DEATH of a node whose slot still holds it live is
 * ignored (no writer of ours appends one before the slot is freed), and a
 * call reads at most a log's worth of entries. A reader that fell behind by
 * more than the log loses the oldest; the next event says how many.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "evlog.h"
#include "layout.h"
#include "node_types.h"
#include "nodeseg.h"
#include "registry.h"

int shmrpc__ev_init(struct shmrpc_node *n)
{
	struct shmrpc__events *ev;

	if (!n->ev_mask)
		return 0;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	memcpy(ev->src.from, SHMRPC_EVENT_FROM, sizeof(SHMRPC_EVENT_FROM));
	n->ev = ev;
	return 0;
}

void shmrpc__ev_start(struct shmrpc_node *n)
{
	if (!n->ev)
		return;
	n->ev->cursor = shmrpc__evlog_head(n->reg);
	n->ev_word = &n->reg->hdr->epoch;
}

void shmrpc__ev_free(struct shmrpc_node *n)
{
	free(n->ev);
	n->ev = NULL;
	n->ev_word = NULL;
}

static void drop_add(struct shmrpc__events *ev, uint64_t k)
{
	ev->dropped = k > UINT32_MAX - ev->dropped ? UINT32_MAX : ev->dropped + (uint32_t)k;
}

/* A LEAVE or DEATH of a node its slot still holds live: not one of ours. */
static bool ev_bogus(struct shmrpc_node *n, const struct shmrpc_event *e)
{
	struct shmrpc__slot_view v;

	if (e->type == SHMRPC_EV_JOIN)
		return false;
	return !shmrpc__reg_read(n->reg, (uint32_t)(e->id >> 32), &v) &&
	       v.state == SHMRPC__SLOT_LIVE && v.gen == (uint32_t)e->id;
}

/* Is the entry at the cursor, just read into @e, one to deliver? */
static bool ev_wanted(struct shmrpc_node *n, const struct shmrpc_event *e)
{
	return (e->type & n->ev_mask) && e->id != ((uint64_t)n->slot << 32 | n->gen) &&
	       !ev_bogus(n, e);
}

/* Read the log from the cursor to the next event to deliver (into cur):
 * true if there is one. At most a log's worth of entries a call. */
static bool ev_fetch(struct shmrpc_node *n, struct shmrpc__events *ev)
{
	uint64_t head = shmrpc__evlog_head(n->reg), ns;
	uint32_t budget = SHMRPC__EV_LOG + 1;
	int rc;

	while (ev->cursor != head && budget--) {
		/* Backwards: garbage (any member can write ev_head); wait for
		 * writers to pass the cursor again. */
		if ((int64_t)(head - ev->cursor) < 0)
			return false;
		if (head - ev->cursor > SHMRPC__EV_LOG) { /* overwritten */
			drop_add(ev, head - SHMRPC__EV_LOG - ev->cursor);
			ev->cursor = head - SHMRPC__EV_LOG;
		}
		rc = shmrpc__evlog_read(n->reg, ev->cursor, &ev->cur, &ns);
		ev->cursor++;
		if (rc) { /* overwritten since we read head, or garbage */
			drop_add(ev, 1);
			continue;
		}
		if (!ev_wanted(n, &ev->cur))
			continue;
		ev->at = ev->cursor - 1;
		ev->cur.dropped = ev->dropped;
		ev->dropped = 0;
		ev->have = true;
		/* peek/release tell one event from the next by it */
		ev->src.q.peek_end = ev->at + 1;
		return true;
	}
	return false;
}

/* cur is a LEAVE or DEATH of X: has X anything more for us? */
static bool ev_held(struct shmrpc_node *n, const struct shmrpc_event *e)
{
	uint32_t slot = (uint32_t)(e->id >> 32), gen = (uint32_t)e->id, i;
	_Atomic uint64_t *pend = shmrpc__node_pend(n->seg, shmrpc__node_pend_off());

	if (e->type == SHMRPC_EV_JOIN)
		return false;
	/* Relaxed: our own segment's word; a bit set is an announcement the
	 * next scan (rx.c, right after us) opens with its acquire exchange. */
	if (atomic_load_explicit(&pend[slot / 64], memory_order_relaxed) & (1ull << (slot % 64)))
		return true;
	for (i = 0; i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		if (r->tx_slot == slot && (int32_t)(r->tx_gen - gen) <= 0) {
			r->draining = true; /* X is gone (ev_bogus): drain, then drop */
			return true;
		}
	}
	return false;
}

int shmrpc__ev_next(struct shmrpc_node *n, struct shmrpc__inring **rp, const void **data,
		    uint32_t *len)
{
	struct shmrpc__events *ev = n->ev;

	if (!ev->have && !ev_fetch(n, ev))
		return 0;
	/* Once handed out (a peek of it may be held), it stays deliverable. */
	if (!ev->ready && ev_held(n, &ev->cur))
		return 0;
	ev->ready = true;
	*rp = &ev->src;
	*data = &ev->cur;
	*len = sizeof(ev->cur);
	return 1;
}

bool shmrpc__ev_pending(struct shmrpc_node *n)
{
	struct shmrpc__events *ev = n->ev;

	if (ev->have)
		return ev->ready || !ev_held(n, &ev->cur);
	/* Not merely !=: a head moved backwards (garbage) is no work. */
	return (int64_t)(shmrpc__evlog_head(n->reg) - ev->cursor) > 0;
}

void shmrpc__ev_consume(struct shmrpc_node *n)
{
	struct shmrpc__events *ev = n->ev;

	ev->have = false;
	ev->ready = false;
	ev->src.q.peek_end = 0;
}

/* Log index of the first entry not yet delivered or passed over. */
static uint64_t ev_done(const struct shmrpc__events *ev)
{
	return ev->have ? ev->at : ev->cursor;
}

void shmrpc__ev_gate(struct shmrpc_node *n, uint32_t from)
{
	struct shmrpc__events *ev = n->ev;
	uint64_t head, i, ns;
	struct shmrpc_event e;
	uint32_t k;

	if (!ev || from >= n->in.n)
		return;
	/* The announcement we opened these rings by came after their
	 * senders' JOINs were appended: this head covers them. */
	head = shmrpc__evlog_head(n->reg);
	i = ev_done(ev);
	if ((int64_t)(head - i) <= 0)
		return;
	if (head - i > SHMRPC__EV_LOG)
		i = head - SHMRPC__EV_LOG;
	for (; i != head; i++) {
		if (shmrpc__evlog_read(n->reg, i, &e, &ns) || e.type != SHMRPC_EV_JOIN)
			continue;
		for (k = from; k < n->in.n; k++)
			if (e.id == ((uint64_t)n->in.v[k]->tx_slot << 32 | n->in.v[k]->tx_gen))
				n->in.v[k]->gate = i + 1;
	}
}

bool shmrpc__ev_gated(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	if (n->ev && r->gate > ev_done(n->ev))
		return true;
	r->gate = 0;
	return false;
}
