// SPDX-License-Identifier: MIT
/*
 * --prom: the Prometheus text exposition format (version 0.0.4), as
 * node_exporter's textfile collector reads it: every family once, its
 * HELP and TYPE lines before its samples, all samples of a family
 * together, no timestamps (the collector adds the file's mtime). Rates
 * are not exported: Prometheus derives them from the counters (rate()).
 *
 * Series are keyed so that two never collide within one exposition: a node
 * by (domain, node, slot) since a dead node and its successor of the same
 * name can both be listed for a moment, a ring by its ids "S.G-R.H".
 * Counters are the totals the tool shows, which never go down while it
 * runs; across runs (-n 1 from cron) a node's counter can dip for as long
 * as a ring of it is closing (see rates.c), which rate() reads as a reset.
 */
#include <stdlib.h>
#include <string.h>

#include "top.h"

static void lv(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void dom_labels(FILE *f, const char *name, const struct top_domain *d)
{
	fprintf(f, "%s{domain=\"", name);
	lv(f, d->name);
	fputc('"', f);
}

static void node_labels(FILE *f, const char *name, const struct top_snap *s,
			const struct top_node *n)
{
	dom_labels(f, name, &s->doms[n->dom]);
	fprintf(f, ",node=\"");
	lv(f, n->name);
	fprintf(f, "\",slot=\"%u\"", n->slot);
}

static bool dom_shown(const struct top_domain *d, const struct top_opts *o)
{
	return !o->view.domain || !strcmp(o->view.domain, d->name);
}

static void domains(FILE *f, const struct top_snap *s, const struct top_opts *o)
{
	static const char *const states[] = { "live", "closing", "joining", "dead",
					      "gone", "corrupt", "unknown" };
	uint32_t i, k, st, count;

	family(f, "shmrpc_domain_up", "gauge", "1 if the domain's registry was read and checked.");
	for (i = 0; i < s->ndoms; i++)
		if (dom_shown(&s->doms[i], o)) {
			dom_labels(f, "shmrpc_domain_up", &s->doms[i]);
			fprintf(f, "} %d\n", s->doms[i].status == TOP_DOM_OK);
		}
	family(f, "shmrpc_domain_nodes", "gauge", "Registry slots in use, by node state.");
	for (i = 0; i < s->ndoms; i++) {
		const struct top_domain *d = &s->doms[i];

		if (!dom_shown(d, o) || d->status != TOP_DOM_OK)
			continue;
		for (st = 0; st < sizeof(states) / sizeof(states[0]); st++) {
			for (count = 0, k = d->node_first; k < d->node_first + d->node_count; k++)
				count += s->nodes[k].state == st;
			dom_labels(f, "shmrpc_domain_nodes", d);
			fprintf(f, ",state=\"%s\"} %u\n", states[st], count);
		}
	}
	family(f, "shmrpc_domain_corrupt_rings", "gauge", "Ring files that fail their checks.");
	for (i = 0; i < s->ndoms; i++) {
		const struct top_domain *d = &s->doms[i];

		if (!dom_shown(d, o) || d->status != TOP_DOM_OK)
			continue;
		for (count = 0, k = d->ring_first; k < d->ring_first + d->ring_count; k++)
			count += s->rings[k].status == TOP_RING_CORRUPT;
		dom_labels(f, "shmrpc_domain_corrupt_rings", d);
		fprintf(f, "} %u\n", count);
	}
	family(f, "shmrpc_domain_stray_files", "gauge",
	       "Files named after the domain that no slot of its registry accounts for.");
	for (i = 0; i < s->ndoms; i++)
		if (dom_shown(&s->doms[i], o) && s->doms[i].status == TOP_DOM_OK) {
			dom_labels(f, "shmrpc_domain_stray_files", &s->doms[i]);
			fprintf(f, "} %u\n", s->doms[i].stray);
		}
}

static void reapers(FILE *f, const struct top_snap *s, const struct top_opts *o)
{
	uint32_t i;

	family(f, "shmrpc_reaper_up", "gauge",
	       "1 if shmrpc-reaper watches the domain and beat within 5 s.");
	for (i = 0; i < s->ndoms; i++)
		if (dom_shown(&s->doms[i], o) && s->doms[i].status == TOP_DOM_OK) {
			const struct top_reaper *r = &s->doms[i].reaper;

			dom_labels(f, "shmrpc_reaper_up", &s->doms[i]);
			fprintf(f, ",mode=\"%s\"} %d\n",
				r->mode == 1 ? "bpf" :
				r->mode == 2 ? "pidfd" :
					       "none",
				r->state == TOP_REAPER_RUNNING);
		}
	family(f, "shmrpc_domain_events_total", "counter",
	       "Membership events (join, leave, death) the domain's registry recorded.");
	for (i = 0; i < s->ndoms; i++)
		if (dom_shown(&s->doms[i], o) && s->doms[i].ev.ok) {
			dom_labels(f, "shmrpc_domain_events_total", &s->doms[i]);
			fprintf(f, "} %llu\n", (unsigned long long)s->doms[i].ev.total);
		}
	family(f, "shmrpc_domain_event_log_deaths", "gauge",
	       "DEATH events among the last 256 the domain's event log holds.");
	for (i = 0; i < s->ndoms; i++)
		if (dom_shown(&s->doms[i], o) && s->doms[i].ev.ok) {
			dom_labels(f, "shmrpc_domain_event_log_deaths", &s->doms[i]);
			fprintf(f, "} %u\n", s->doms[i].ev.deaths);
		}
	family(f, "shmrpc_reaper_reaped_total", "counter", "Slots the reaper freed in the domain.");
	for (i = 0; i < s->ndoms; i++)
		if (dom_shown(&s->doms[i], o) && s->doms[i].status == TOP_DOM_OK) {
			dom_labels(f, "shmrpc_reaper_reaped_total", &s->doms[i]);
			fprintf(f, "} %llu\n", (unsigned long long)s->doms[i].reaper.reaped);
		}
}

enum {
	F_MSGS_IN,
	F_MSGS_OUT,
	F_BYTES_IN,
	F_BYTES_OUT,
	F_WAKES,
	F_SKIPS,
	F_FULL,
	F_SLEEPS,
	F_SPINS,
	F_CONNECTS,
	F_CALLS,
	F_CALLS_ENDED,
	F_CALLS_FAILED,
	F_SERVED,
	F_COUNT
};

static const struct {
	const char *name, *help;
} node_ctrs[F_COUNT] = {
	[F_MSGS_IN] = { "shmrpc_node_messages_received_total",
			"Messages consumed from inbound rings." },
	[F_MSGS_OUT] = { "shmrpc_node_messages_sent_total",
			 "Messages committed to outbound rings." },
	[F_BYTES_IN] = { "shmrpc_node_bytes_received_total", "Payload bytes received." },
	[F_BYTES_OUT] = { "shmrpc_node_bytes_sent_total", "Payload bytes sent." },
	[F_WAKES] = { "shmrpc_node_wakes_total", "Futex wakes issued to sleeping peers." },
	[F_SKIPS] = { "shmrpc_node_wakes_skipped_total",
		      "Publishes that needed no wake: the receiver was awake." },
	[F_FULL] = { "shmrpc_node_send_full_total", "Sends that found the ring full." },
	[F_SLEEPS] = { "shmrpc_node_sleeps_total", "Times the node slept in the kernel." },
	[F_SPINS] = { "shmrpc_node_spins_total", "Waits that ended while spinning." },
	[F_CONNECTS] = { "shmrpc_node_connects_total", "Outbound rings created." },
	[F_CALLS] = { "shmrpc_node_calls_total", "Calls (requests) started." },
	[F_CALLS_ENDED] = { "shmrpc_node_calls_ended_total",
			    "Calls over, any way (in flight: calls less ended)." },
	[F_CALLS_FAILED] = { "shmrpc_node_calls_failed_total",
			     "Calls failed: deadline, server gone, its error, cancelled, refused." },
	[F_SERVED] = { "shmrpc_node_calls_served_total", "Requests its serve function ran on." },
};

static uint64_t ctr_of(const struct top_ctr *c, int k)
{
	const uint64_t v[F_COUNT] = { c->msgs_in,      c->msgs_out, c->bytes_in, c->bytes_out,
				      c->wakes,	       c->skips,    c->full,	 c->sleeps,
				      c->spins,	       c->connects, c->calls,	 c->calls_ended,
				      c->calls_failed, c->served };

	return v[k];
}

static void nodes(FILE *f, const struct top_snap *s, const uint32_t *rows, uint32_t n)
{
	uint32_t i;
	int k;

	family(f, "shmrpc_node_info", "gauge", "One series per registry slot in use; value 1.");
	for (i = 0; i < n; i++) {
		const struct top_node *nd = &s->nodes[rows[i]];

		node_labels(f, "shmrpc_node_info", s, nd);
		fprintf(f, ",gen=\"%u\",pid=\"%d\",state=\"%s\",backend=\"%s\"} 1\n", nd->gen,
			nd->pid, top_state_name(nd->state), top_backend_name(nd->backend));
	}
	family(f, "shmrpc_node_up", "gauge", "1 if the node's process holds its liveness lock.");
	for (i = 0; i < n; i++) {
		const struct top_node *nd = &s->nodes[rows[i]];

		node_labels(f, "shmrpc_node_up", s, nd);
		fprintf(f, "} %d\n", nd->state == TOP_NODE_LIVE || nd->state == TOP_NODE_CLOSING);
	}
	family(f, "shmrpc_node_uptime_seconds", "gauge", "Seconds since the node joined.");
	for (i = 0; i < n; i++)
		if (s->nodes[rows[i]].uptime >= 0) {
			node_labels(f, "shmrpc_node_uptime_seconds", s, &s->nodes[rows[i]]);
			fprintf(f, "} %.3f\n", s->nodes[rows[i]].uptime);
		}
	for (k = 0; k < F_COUNT; k++) {
		family(f, node_ctrs[k].name, "counter", node_ctrs[k].help);
		for (i = 0; i < n; i++)
			if (s->nodes[rows[i]].seg_ok) {
				node_labels(f, node_ctrs[k].name, s, &s->nodes[rows[i]]);
				fprintf(f, "} %llu\n",
					(unsigned long long)ctr_of(&s->nodes[rows[i]].tot, k));
			}
	}
	family(f, "shmrpc_node_rings", "gauge", "Ring files to (in) and from (out) the node.");
	for (i = 0; i < n; i++) {
		const struct top_node *nd = &s->nodes[rows[i]];

		node_labels(f, "shmrpc_node_rings", s, nd);
		fprintf(f, ",direction=\"in\"} %u\n", nd->rings_in);
		node_labels(f, "shmrpc_node_rings", s, nd);
		fprintf(f, ",direction=\"out\"} %u\n", nd->rings_out);
	}
}

static void ring_labels(FILE *f, const char *name, const struct top_snap *s,
			const struct top_ring *r)
{
	char a[SHMRPC_NAME_MAX + 16], b[SHMRPC_NAME_MAX + 16];

	dom_labels(f, name,
		   &s->doms[r->tx_node >= 0 ? s->nodes[r->tx_node].dom : s->nodes[r->rx_node].dom]);
	fprintf(f, ",ring=\"%u.%u-%u.%u\",from=\"", r->tx_slot, r->tx_gen, r->rx_slot, r->rx_gen);
	lv(f, top_ring_peer(s, r, r->rx_node, a, sizeof(a)));
	fprintf(f, "\",to=\"");
	lv(f, top_ring_peer(s, r, r->tx_node, b, sizeof(b)));
	fputc('"', f);
}

/* A readable ring of a node the view shows. */
static bool ring_shown(const struct top_ring *r, const bool *node_on)
{
	if (r->status != TOP_RING_OK || (r->tx_node < 0 && r->rx_node < 0))
		return false;
	return (r->tx_node >= 0 && node_on[r->tx_node]) || (r->rx_node >= 0 && node_on[r->rx_node]);
}

static void rings(FILE *f, const struct top_snap *s, const bool *on)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "shmrpc_ring_depth_bytes", "gauge", "Bytes published and not yet consumed." },
		{ "shmrpc_ring_capacity_bytes", "gauge", "Data bytes of the ring." },
		{ "shmrpc_ring_messages_total", "counter", "Messages committed to the ring." },
		{ "shmrpc_ring_full_total", "counter", "Sends that found the ring full." },
	};
	uint32_t i, k;

	for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		family(f, fam[k].name, fam[k].type, fam[k].help);
		for (i = 0; i < s->nrings; i++) {
			const struct top_ring *r = &s->rings[i];
			const uint64_t v[] = { r->depth, r->size, r->tx_msgs, r->tx_full };

			if (!ring_shown(r, on))
				continue;
			ring_labels(f, fam[k].name, s, r);
			fprintf(f, "} %llu\n", (unsigned long long)v[k]);
		}
	}
}

int top_out_prom(FILE *f, const struct top_snap *s, const struct top_opts *o)
{
	uint32_t *rows = malloc((s->nnodes ? s->nnodes : 1) * sizeof(*rows)), n, i;
	bool *on = calloc(s->nnodes ? s->nnodes : 1, sizeof(*on));
	int err = -1;

	if (!rows || !on)
		goto out;
	n = top_rows(s, &o->view, rows);
	for (i = 0; i < n; i++)
		on[rows[i]] = true;
	domains(f, s, o);
	reapers(f, s, o);
	nodes(f, s, rows, n);
	rings(f, s, on);
	err = fflush(f) ? -1 : 0;
out:
	free(rows);
	free(on);
	return err;
}
