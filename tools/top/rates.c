// SPDX-License-Identifier: MIT
/*
 * What changed since the previous refresh: rates, the totals shown, and
 * how long each ring has been idle.
 *
 * Identity. A domain is (name, registry nonce): a recreated registry is a
 * new domain. A node is (domain, slot, generation). A ring is its file
 * name plus its inode: a file recreated under the same name is a new ring.
 *
 * Rates come from the rings, not from the nodes' totals. A node's total is
 * its folded old_* counters plus its ring files (scan.c), and a ring
 * closing moves its counts from the file to old_* in steps the tool cannot
 * watch atomically: for a moment they are in neither (dip) or in both
 * (spike). Differences of such totals would show a dip as nothing and a
 * spike as millions of messages per second. Each ring's counters, though,
 * are single-writer and only grow, so a node's delta is the sum of its
 * rings' deltas: rings seen both times contribute the difference, rings
 * created since the previous refresh all they carry. A ring that closed
 * during the interval takes its last partial interval with it: rates can
 * under-count for one refresh, never go negative or jump.
 *
 * Totals shown never go down for the same node: each is the larger of
 * this refresh's raw total and the one shown last time. (A raw total can
 * dip for as long as a sender keeps a dead ring unfolded; see the report
 * in docs/shmrpc-top.md.)
 */
#include <string.h>

#include "top.h"

static const struct top_domain *dom_match(const struct top_snap *prev, const struct top_domain *d)
{
	uint32_t i;

	if (!prev || d->status != TOP_DOM_OK)
		return NULL;
	for (i = 0; i < prev->ndoms; i++) {
		const struct top_domain *p = &prev->doms[i];

		if (p->status == TOP_DOM_OK && p->nonce == d->nonce && !strcmp(p->name, d->name))
			return p;
	}
	return NULL;
}

static const struct top_node *node_match(const struct top_snap *prev, const struct top_domain *pd,
					 const struct top_node *n)
{
	uint32_t lo = pd->node_first, hi = pd->node_first + pd->node_count, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (prev->nodes[mid].slot < n->slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < pd->node_first + pd->node_count && prev->nodes[lo].slot == n->slot &&
	    prev->nodes[lo].gen == n->gen)
		return &prev->nodes[lo];
	return NULL;
}

/* Rings of a domain are in file name order (scan.c sorts the listing). */
static const struct top_ring *ring_match(const struct top_snap *prev, const struct top_domain *pd,
					 const struct top_ring *r)
{
	uint32_t lo = pd->ring_first, hi = pd->ring_first + pd->ring_count, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(prev->rings[mid].file, r->file);
		if (!c)
			return &prev->rings[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static uint64_t up(uint64_t now, uint64_t before)
{
	/* A counter below its last value is not one that grew: a hostile
	 * writer, or garbage. Count nothing rather than 2^64 - x. */
	return now > before ? now - before : 0;
}

static void ring_history(struct top_snap *cur, struct top_ring *r, const struct top_snap *prev,
			 const struct top_domain *pd)
{
	const struct top_ring *p = pd ? ring_match(prev, pd, r) : NULL;
	bool ok = r->status == TOP_RING_OK;
	/* The same file as last time (an inode of 0 was never read). */
	bool same = p && p->ino && p->ino == r->ino;

	r->changed = cur->mono;
	r->changed_before = !pd; /* first sight: idle for at least this long */
	if (same && p->status == TOP_RING_OK && ok) {
		r->have_delta = true;
		r->d_tx_msgs = up(r->tx_msgs, p->tx_msgs);
		r->d_tx_bytes = up(r->tx_bytes, p->tx_bytes);
		r->d_tx_full = up(r->tx_full, p->tx_full);
		r->d_tx_wakes = up(r->tx_wakes, p->tx_wakes);
		r->d_tx_skips = up(r->tx_skips, p->tx_skips);
		r->d_rx_msgs = up(r->rx_msgs, p->rx_msgs);
		r->d_rx_bytes = up(r->rx_bytes, p->rx_bytes);
		r->d_rx_wakes = up(r->rx_wakes, p->rx_wakes);
		if (r->head == p->head && r->tail == p->tail) {
			r->changed = p->changed;
			r->changed_before = p->changed_before;
		}
	} else if (pd && ok &&
		   (!p || p->status == TOP_RING_GONE || (p->ino && !same) ||
		    (same && p->status == TOP_RING_CREATING))) {
		/* Created since the previous refresh (or still being created
		 * then, with nothing counted yet): all of it is new. A ring
		 * unreadable last time for another reason counts nothing. */
		r->have_delta = true;
		r->d_tx_msgs = r->tx_msgs;
		r->d_tx_bytes = r->tx_bytes;
		r->d_tx_full = r->tx_full;
		r->d_tx_wakes = r->tx_wakes;
		r->d_tx_skips = r->tx_skips;
		r->d_rx_msgs = r->rx_msgs;
		r->d_rx_bytes = r->rx_bytes;
		r->d_rx_wakes = r->rx_wakes;
	} else if (same) {
		r->changed = p->changed; /* unreadable now or then */
		r->changed_before = p->changed_before;
	}
}

#define MAX_OF(f) t->f = t->f > p->f ? t->f : p->f
static void keep_monotonic(struct top_ctr *t, const struct top_ctr *p)
{
	MAX_OF(msgs_in);
	MAX_OF(msgs_out);
	MAX_OF(bytes_in);
	MAX_OF(bytes_out);
	MAX_OF(wakes);
	MAX_OF(skips);
	MAX_OF(full);
	MAX_OF(sleeps);
	MAX_OF(spins);
	MAX_OF(connects);
	MAX_OF(calls);
	MAX_OF(calls_ended);
	MAX_OF(calls_failed);
	MAX_OF(served);
}
#undef MAX_OF

static void node_delta(const struct top_snap *s, struct top_node *n, const struct top_node *p)
{
	struct top_ctr *d = &n->rate.delta;
	uint64_t data_wakes = 0;
	const struct top_ring *r;
	int i;

	memset(d, 0, sizeof(*d));
	for (i = n->first_out; i >= 0; i = r->next_out) {
		r = &s->rings[i];
		if (!r->have_delta)
			continue;
		d->msgs_out += r->d_tx_msgs;
		d->bytes_out += r->d_tx_bytes;
		d->full += r->d_tx_full;
		d->skips += r->d_tx_skips;
		data_wakes += r->d_tx_wakes;
	}
	for (i = n->first_in; i >= 0; i = r->next_in) {
		r = &s->rings[i];
		if (!r->have_delta)
			continue;
		d->msgs_in += r->d_rx_msgs;
		d->bytes_in += r->d_rx_bytes;
		d->wakes += r->d_rx_wakes;
	}
	d->wakes += data_wakes;
	/* The node's own counters: single writer, only grow. A node that
	 * joined during the interval (no readable previous copy) started
	 * them at zero. */
	d->sleeps = p && p->seg_ok ? up(n->sleeps, p->sleeps) : n->sleeps;
	d->spins = p && p->seg_ok ? up(n->spins, p->spins) : n->spins;
	d->connects = p && p->seg_ok ? up(n->connects, p->connects) : n->connects;
	d->calls = p && p->seg_ok ? up(n->calls, p->calls) : n->calls;
	d->calls_ended = p && p->seg_ok ? up(n->calls_ended, p->calls_ended) : n->calls_ended;
	d->calls_failed = p && p->seg_ok ? up(n->calls_failed, p->calls_failed) : n->calls_failed;
	d->served = p && p->seg_ok ? up(n->served, p->served) : n->served;
	n->rate.skip_share =
		d->skips + data_wakes ? (double)d->skips / (double)(d->skips + data_wakes) : -1;
}

static void node_history(struct top_snap *cur, struct top_node *n, const struct top_snap *prev,
			 const struct top_domain *pd)
{
	const struct top_node *p = pd ? node_match(prev, pd, n) : NULL;
	struct top_rate *rt = &n->rate;
	double t = cur->interval;

	if (p && p->seg_ok && n->seg_ok)
		keep_monotonic(&n->tot, &p->tot);
	memset(rt, 0, sizeof(*rt));
	if (!pd || !n->seg_ok || t <= 0)
		return;
	node_delta(cur, n, p);
	rt->valid = true;
	rt->msgs_in = (double)rt->delta.msgs_in / t;
	rt->msgs_out = (double)rt->delta.msgs_out / t;
	rt->bytes_in = (double)rt->delta.bytes_in / t;
	rt->bytes_out = (double)rt->delta.bytes_out / t;
	rt->wakes = (double)rt->delta.wakes / t;
	rt->sleeps = (double)rt->delta.sleeps / t;
	rt->full = (double)rt->delta.full / t;
	rt->calls = (double)rt->delta.calls / t;
	rt->calls_failed = (double)rt->delta.calls_failed / t;
	rt->served = (double)rt->delta.served / t;
}

void top_rates(struct top_snap *cur, const struct top_snap *prev)
{
	uint32_t i, k;

	cur->interval = prev && prev->mono > 0 ? cur->mono - prev->mono : -1;
	for (i = 0; i < cur->ndoms; i++) {
		const struct top_domain *d = &cur->doms[i], *pd = dom_match(prev, d);

		for (k = d->ring_first; k < d->ring_first + d->ring_count; k++)
			ring_history(cur, &cur->rings[k], prev, pd);
		for (k = d->node_first; k < d->node_first + d->node_count; k++)
			node_history(cur, &cur->nodes[k], prev, pd);
	}
}

static int reaper_rank(const struct top_reaper *r)
{
	return (int)r->state;
}

void top_summarize(const struct top_snap *s, const char *domain, struct top_summary *sum)
{
	uint32_t i, k;

	memset(sum, 0, sizeof(*sum));
	sum->reaper.beat_age = -1;
	sum->rates = s->interval > 0;
	for (i = 0; i < s->ndoms; i++) {
		const struct top_domain *d = &s->doms[i];

		if (domain && strcmp(domain, d->name))
			continue;
		sum->domains++;
		sum->domains_bad += d->status != TOP_DOM_OK;
		sum->events += d->ev.ok ? d->ev.total : 0;
		if (d->ev.ok && d->ev.nlast &&
		    (!sum->have_last || d->ev.last[0].age < sum->last.age)) {
			sum->last = d->ev.last[0];
			sum->have_last = true;
		}
		if (reaper_rank(&d->reaper) > reaper_rank(&sum->reaper) ||
		    (d->reaper.state && d->reaper.state == sum->reaper.state &&
		     d->reaper.beat_age < sum->reaper.beat_age))
			sum->reaper = d->reaper;
		for (k = d->node_first; k < d->node_first + d->node_count; k++) {
			const struct top_node *n = &s->nodes[k];

			switch (n->state) {
			case TOP_NODE_LIVE:
			case TOP_NODE_CLOSING:
				sum->live++;
				sum->futex += n->backend == 1;
				sum->uring += n->backend == 2;
				break;
			case TOP_NODE_DEAD:
			case TOP_NODE_GONE:
				sum->dead++;
				break;
			default:
				sum->other++;
			}
		}
		for (k = d->ring_first; k < d->ring_first + d->ring_count; k++) {
			const struct top_ring *r = &s->rings[k];

			sum->rings += r->status == TOP_RING_OK;
			sum->rings_bad += r->status == TOP_RING_CORRUPT;
			/* Each message once, where it was sent. */
			if (r->have_delta && s->interval > 0) {
				sum->msgs += (double)r->d_tx_msgs / s->interval;
				sum->bytes += (double)r->d_tx_bytes / s->interval;
			}
		}
	}
}
