// SPDX-License-Identifier: MIT
/*
 * Batch text (-b): one block per refresh, like top -b. A block is the two
 * header lines, an empty line, the node table, with --rings each node's
 * rings under it, then one "problem:" line per domain or ring that is not
 * usable, each domain's membership events ("events:" with the counts, an
 * "event:" line for each of the latest), the bridges, and an empty line
 * that ends the block.
 */
#include <stdlib.h>
#include <string.h>

#include "top.h"

#define LINE 512

static void rings_of(FILE *f, const struct top_snap *s, uint32_t ni)
{
	const struct top_node *n = &s->nodes[ni];
	const struct top_ring *r;
	char line[LINE];
	int i;

	for (i = n->first_out; i >= 0; i = r->next_out) {
		r = &s->rings[i];
		top_fmt_ring(line, sizeof(line), s, r, (int)ni, 0);
		fprintf(f, "    %s\n", line);
	}
	for (i = n->first_in; i >= 0; i = r->next_in) {
		r = &s->rings[i];
		top_fmt_ring(line, sizeof(line), s, r, (int)ni, 0);
		fprintf(f, "    %s\n", line);
	}
}

static void problems(FILE *f, const struct top_snap *s, const struct top_view *v)
{
	uint32_t i, k;

	for (i = 0; i < s->ndoms; i++) {
		const struct top_domain *d = &s->doms[i];

		if (v->domain && strcmp(v->domain, d->name))
			continue;
		if (d->status != TOP_DOM_OK)
			fprintf(f, "problem: domain %s: %s%s%s\n", d->name,
				top_dom_status_name(d->status), d->why[0] ? ": " : "", d->why);
		if (d->stray)
			fprintf(f, "problem: domain %s: %u stray files (in no registry)\n", d->name,
				d->stray);
		for (k = d->ring_first; k < d->ring_first + d->ring_count; k++)
			if (s->rings[k].status == TOP_RING_CORRUPT)
				fprintf(f, "problem: ring %s: corrupt: %s\n", s->rings[k].file,
					s->rings[k].why);
	}
}

int top_out_text(FILE *f, const struct top_snap *s, const struct top_opts *o)
{
	uint32_t *rows = malloc((s->nnodes ? s->nnodes : 1) * sizeof(*rows)), n, i;
	char l1[LINE], l2[LINE];
	struct top_summary sum;

	if (!rows)
		return -1;
	top_summarize(s, o->view.domain, &sum);
	top_fmt_summary(l1, l2, sizeof(l1), s, &sum, &o->view, o->delay);
	fprintf(f, "%s\n%s\n\n", l1, l2);
	top_fmt_head(l1, sizeof(l1), &o->view);
	fprintf(f, "%s\n", l1);
	n = top_rows(s, &o->view, rows);
	for (i = 0; i < n; i++) {
		top_fmt_row(l1, sizeof(l1), s, &s->nodes[rows[i]], &o->view);
		fprintf(f, "%s\n", l1);
		if (o->rings)
			rings_of(f, s, rows[i]);
	}
	problems(f, s, &o->view);
	top_events_text(f, s, o->view.domain);
	top_bridges_text(f, s);
	fprintf(f, "\n");
	free(rows);
	return fflush(f) ? -1 : 0;
}
