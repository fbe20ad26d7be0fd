// SPDX-License-Identifier: MIT
/*
 * --json: one JSON document per refresh, each on a line of its own (JSON
 * Lines), so that `shmrpc-top --json -n 1 | jq .` and a reader that splits
 * on newlines both work. The schema is documented in docs/shmrpc-top.md;
 * "schema" names its version. Unknown values are null, never a guess:
 * rates and deltas are null on the first refresh and for a node whose
 * segment could not be read.
 */
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "top.h"

#define SCHEMA "shmrpc-top/1"

void top_json_str(FILE *f, const char *str)
{
	const unsigned char *p = (const unsigned char *)str;

	for (; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x",
				*p); /* names are ASCII; anything else is shown as is */
		else
			fputc(*p, f);
	}
}

static void jstr(FILE *f, const char *key, const char *val, bool comma)
{
	fprintf(f, "\"%s\":", key);
	if (val) {
		fputc('"', f);
		top_json_str(f, val);
		fputc('"', f);
	} else {
		fputs("null", f);
	}
	if (comma)
		fputc(',', f);
}

static void jnum(FILE *f, const char *key, double v, bool known, bool comma)
{
	if (known)
		fprintf(f, "\"%s\":%.6g%s", key, v, comma ? "," : "");
	else
		fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
}

/* A rate, or null when not known. */
static void jrate_or_null(FILE *f, const char *key, double v, bool known, bool comma)
{
	if (known)
		fprintf(f, "\"%s\":%.3f%s", key, v, comma ? "," : "");
	else
		fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
}

static void jrate(FILE *f, const char *key, double v, bool comma)
{
	/* Rates keep three decimals: a rate times the interval gives back
	 * the delta to better than one message. */
	fprintf(f, "\"%s\":%.3f%s", key, v, comma ? "," : "");
}

static void ju(FILE *f, const char *key, unsigned long long v, bool comma)
{
	fprintf(f, "\"%s\":%llu%s", key, v, comma ? "," : "");
}

static void reaper(FILE *f, const struct top_reaper *r)
{
	static const char *const st[] = { "none", "stale", "running" };

	fprintf(f, "\"reaper\":{");
	jstr(f, "state", st[r->state], true);
	jstr(f, "mode", r->mode == 1 ? "bpf" : r->mode == 2 ? "pidfd" : NULL, true);
	jnum(f, "pid", r->pid, r->pid != 0, true);
	jnum(f, "beat_age", r->beat_age, r->beat_age >= 0, true);
	ju(f, "reaped", r->reaped, false);
	fputc('}', f);
}

static void ctr(FILE *f, const char *key, const struct top_ctr *c)
{
	fprintf(f, "\"%s\":{", key);
	ju(f, "msgs_in", c->msgs_in, true);
	ju(f, "msgs_out", c->msgs_out, true);
	ju(f, "bytes_in", c->bytes_in, true);
	ju(f, "bytes_out", c->bytes_out, true);
	ju(f, "wakes", c->wakes, true);
	ju(f, "wakes_skipped", c->skips, true);
	ju(f, "send_full", c->full, true);
	ju(f, "sleeps", c->sleeps, true);
	ju(f, "spins", c->spins, true);
	ju(f, "connects", c->connects, true);
	ju(f, "calls", c->calls, true);
	ju(f, "calls_ended", c->calls_ended, true);
	ju(f, "calls_failed", c->calls_failed, true);
	ju(f, "calls_served", c->served, false);
	fputc('}', f);
}

static void rates(FILE *f, const struct top_rate *r)
{
	fprintf(f, "\"rates\":{");
	jrate(f, "msgs_in", r->msgs_in, true);
	jrate(f, "msgs_out", r->msgs_out, true);
	jrate(f, "bytes_in", r->bytes_in, true);
	jrate(f, "bytes_out", r->bytes_out, true);
	jrate(f, "wakes", r->wakes, true);
	jnum(f, "skip_share", r->skip_share, r->skip_share >= 0, true);
	jrate(f, "sleeps", r->sleeps, true);
	jrate(f, "send_full", r->full, true);
	jrate(f, "calls", r->calls, true);
	jrate(f, "calls_failed", r->calls_failed, true);
	jrate(f, "calls_served", r->served, false);
	fputc('}', f);
}

static void flags(FILE *f, const struct top_ring *r)
{
	const struct {
		bool on;
		const char *name;
	} v[] = {
		{ r->flags & SHMRPC__RING_TX_CLOSED, "tx-closed" },
		{ r->flags & SHMRPC__RING_RX_CLOSED, "rx-closed" },
		{ !(r->flags & SHMRPC__RING_RX_OPENED), "unopened" },
		{ r->rx_sleeping, "rx-asleep" },
		{ r->tx_sleeping, "tx-blocked" },
	};
	bool first = true;
	size_t i;

	fprintf(f, "\"flags\":[");
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (!v[i].on)
			continue;
		fprintf(f, "%s\"%s\"", first ? "" : ",", v[i].name);
		first = false;
	}
	fputc(']', f);
}

static void ring(FILE *f, const struct top_snap *s, const struct top_ring *r, int self)
{
	static const char *const st[] = { "ok", "creating", "corrupt", "gone" };
	bool out = r->tx_node == self, ok = r->status == TOP_RING_OK, d = r->have_delta;
	char peer[SHMRPC_NAME_MAX + 16];
	double t = s->interval;

	fputc('{', f);
	jstr(f, "dir", out ? "out" : "in", true);
	jstr(f, "peer", top_ring_peer(s, r, self, peer, sizeof(peer)), true);
	ju(f, "peer_slot", out ? r->rx_slot : r->tx_slot, true);
	ju(f, "peer_gen", out ? r->rx_gen : r->tx_gen, true);
	jstr(f, "file", r->file, true);
	jstr(f, "status", st[r->status], true);
	jstr(f, "problem", ok ? NULL : r->why, ok);
	if (ok) {
		ju(f, "size", r->size, true);
		ju(f, "depth", r->depth, true);
		fprintf(f, "\"tx\":{");
		ju(f, "msgs", r->tx_msgs, true);
		ju(f, "bytes", r->tx_bytes, true);
		ju(f, "full", r->tx_full, true);
		ju(f, "wakes", r->tx_wakes, true);
		ju(f, "skips", r->tx_skips, false);
		fprintf(f, "},\"rx\":{");
		ju(f, "msgs", r->rx_msgs, true);
		ju(f, "bytes", r->rx_bytes, true);
		ju(f, "wakes", r->rx_wakes, false);
		fprintf(f, "},");
		jrate_or_null(f, "msgs_per_s", (double)(out ? r->d_tx_msgs : r->d_rx_msgs) / t,
			      d && t > 0, true);
		jrate_or_null(f, "bytes_per_s", (double)(out ? r->d_tx_bytes : r->d_rx_bytes) / t,
			      d && t > 0, true);
		jnum(f, "idle", s->mono - r->changed, true, true);
		fprintf(f, "\"idle_at_least\":%s,", r->changed_before ? "true" : "false");
		flags(f, r);
	}
	fputc('}', f);
}

static void node(FILE *f, const struct top_snap *s, uint32_t ni)
{
	const struct top_node *n = &s->nodes[ni];
	const struct top_ring *r;
	bool first = true;
	int i;

	fputc('{', f);
	jstr(f, "name", n->name, true);
	ju(f, "slot", n->slot, true);
	ju(f, "gen", n->gen, true);
	fprintf(f, "\"pid\":%d,", n->pid);
	ju(f, "uid", n->uid, true);
	jstr(f, "state", top_state_name(n->state), true);
	jstr(f, "problem", n->why[0] ? n->why : NULL, true);
	jstr(f, "backend", n->backend == 1 || n->backend == 2 ? top_backend_name(n->backend) : NULL,
	     true);
	jnum(f, "uptime", n->uptime, n->uptime >= 0, true);
	ju(f, "ring_bytes", n->ring_bytes, true);
	if (n->seg_ok) {
		ctr(f, "totals", &n->tot);
		fputc(',', f);
	} else {
		fprintf(f, "\"totals\":null,");
	}
	if (n->rate.valid) {
		rates(f, &n->rate);
		fputc(',', f);
		ctr(f, "deltas", &n->rate.delta);
		fputc(',', f);
	} else {
		fprintf(f, "\"rates\":null,\"deltas\":null,");
	}
	ju(f, "rings_in", n->rings_in, true);
	ju(f, "rings_out", n->rings_out, true);
	/* The node's own count of rings it has mapped: more than the files
	 * above while it keeps a ring whose file is already gone. */
	jnum(f, "rings_in_open", (double)n->rings_in_open, n->seg_ok, true);
	jnum(f, "rings_out_open", (double)n->rings_out_open, n->seg_ok, true);
	fprintf(f, "\"rings\":[");
	for (i = n->first_out; i >= 0; i = r->next_out, first = false) {
		r = &s->rings[i];
		if (!first)
			fputc(',', f);
		ring(f, s, r, (int)ni);
	}
	for (i = n->first_in; i >= 0; i = r->next_in, first = false) {
		r = &s->rings[i];
		if (!first)
			fputc(',', f);
		ring(f, s, r, (int)ni);
	}
	fprintf(f, "]}");
}

/* The domain's membership events (its registry's log); null if unread. */
static void events(FILE *f, const struct top_events *e)
{
	fprintf(f, "\"events\":");
	if (!e->ok) {
		fprintf(f, "null,");
		return;
	}
	fputc('{', f);
	ju(f, "total", e->total, true);
	ju(f, "log_joins", e->joins, true);
	ju(f, "log_leaves", e->leaves, true);
	ju(f, "log_deaths", e->deaths, true);
	ju(f, "log_garbage", e->garbage, true);
	fprintf(f, "\"latest\":[");
	for (uint32_t i = 0; i < e->nlast; i++) {
		const struct top_event *ev = &e->last[i];

		fprintf(f, "%s{", i ? "," : "");
		jstr(f, "type", top_event_name(ev->type), true);
		jstr(f, "name", ev->name, true);
		jnum(f, "pid", ev->pid, true, true);
		ju(f, "slot", ev->id >> 32, true);
		ju(f, "gen", ev->id & 0xffffffffu, true);
		jnum(f, "age", ev->age, ev->age >= 0, false);
		fputc('}', f);
	}
	fprintf(f, "]},");
}

static void domain(FILE *f, const struct top_snap *s, uint32_t di, const uint32_t *rows,
		   uint32_t nrows)
{
	const struct top_domain *d = &s->doms[di];
	char nonce[16];
	bool first = true;
	uint32_t i;

	fputc('{', f);
	jstr(f, "name", d->name, true);
	jstr(f, "status", top_dom_status_name(d->status), true);
	jstr(f, "problem", d->why[0] ? d->why : NULL, true);
	snprintf(nonce, sizeof(nonce), "%08x", d->nonce);
	jstr(f, "nonce", d->status == TOP_DOM_OK ? nonce : NULL, true);
	ju(f, "capacity", d->capacity, true);
	ju(f, "epoch", d->epoch, true);
	ju(f, "stray_files", d->stray, true);
	events(f, &d->ev);
	reaper(f, &d->reaper);
	fprintf(f, ",\"nodes\":[");
	for (i = 0; i < nrows; i++) {
		if (s->nodes[rows[i]].dom != di)
			continue;
		if (!first)
			fputc(',', f);
		first = false;
		node(f, s, rows[i]);
	}
	fprintf(f, "],\"corrupt_rings\":[");
	first = true;
	for (i = d->ring_first; i < d->ring_first + d->ring_count; i++) {
		if (s->rings[i].status != TOP_RING_CORRUPT)
			continue;
		fprintf(f, "%s{", first ? "" : ",");
		first = false;
		jstr(f, "file", s->rings[i].file, true);
		jstr(f, "problem", s->rings[i].why, false);
		fputc('}', f);
	}
	fprintf(f, "]}");
}

int top_out_json(FILE *f, const struct top_snap *s, const struct top_opts *o)
{
	uint32_t *rows = malloc((s->nnodes ? s->nnodes : 1) * sizeof(*rows)), n, i;
	struct top_summary sum;
	bool first = true;

	if (!rows)
		return -1;
	n = top_rows(s, &o->view, rows);
	top_summarize(s, o->view.domain, &sum);
	fprintf(f, "{\"schema\":\"" SCHEMA "\",\"time\":%.3f,\"monotonic\":%.6f,", s->wall,
		s->mono);
	jnum(f, "interval", s->interval, s->interval > 0, true);
	fprintf(f, "\"summary\":{");
	ju(f, "domains", sum.domains, true);
	ju(f, "domains_unusable", sum.domains_bad, true);
	ju(f, "nodes_live", sum.live, true);
	ju(f, "nodes_dead", sum.dead, true);
	ju(f, "nodes_other", sum.other, true);
	fprintf(f, "\"backends\":{\"uring\":%u,\"futex\":%u},", sum.uring, sum.futex);
	ju(f, "rings", sum.rings, true);
	ju(f, "rings_corrupt", sum.rings_bad, true);
	jrate_or_null(f, "msgs_per_s", sum.msgs, sum.rates, true);
	jrate_or_null(f, "bytes_per_s", sum.bytes, sum.rates, true);
	ju(f, "events", sum.events, true);
	reaper(f, &sum.reaper);
	fprintf(f, "},\"domains\":[");
	for (i = 0; i < s->ndoms; i++) {
		if (o->view.domain && strcmp(o->view.domain, s->doms[i].name))
			continue;
		if (!first)
			fputc(',', f);
		first = false;
		domain(f, s, i, rows, n);
	}
	fprintf(f, "],");
	top_bridges_json(f, s);
	fprintf(f, "}\n");
	free(rows);
	return fflush(f) ? -1 : 0;
}
