// SPDX-License-Identifier: MIT
/*
 * The ring files of a domain, for a snapshot (scan.c does the rest): each
 * file name is checked strictly (the names lib/names.c makes, nothing
 * else), its header page mapped, copied and checked, and the ring linked
 * to the nodes its header says it joins. Names carry a keyed hash of the
 * ids, not the ids (lib/names.c): the ids are read from the header and
 * must give back the file's name under the registry's key, so a header
 * that lies about them is reported as corrupt. Then each node's totals:
 * its folded old_* counters plus its rings', as lib/stats.c adds them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inspect.h"
#include "layout.h"
#include "top.h"

void *top_grow(void *v, uint32_t *cap, uint32_t need, size_t size)
{
	uint32_t c = *cap ? *cap : 16;

	if (need <= *cap)
		return v;
	while (c < need)
		c *= 2;
	v = realloc(v, (size_t)c * size);
	if (v)
		*cap = c;
	return v;
}

enum file_kind { FILE_OTHER, FILE_NODE, FILE_RING };

/* Which kind of file of domain @dom is @name: exactly the names lib/names.c
 * makes ("shmrpc.<dom>.node." or ".ring." and 16 hex digits). Its ids are
 * not in its name: a ring's come from its header (scan_ring), a node's
 * name is compared with those of the registry's nodes. */
static enum file_kind parse_file(const char *name, const char *dom)
{
	size_t dl = strlen(dom);
	const char *p = name + 7;
	enum file_kind k;
	int i;

	if (strncmp(name, "shmrpc.", 7) || strncmp(p, dom, dl) || p[dl] != '.')
		return FILE_OTHER;
	p += dl + 1;
	if (!strncmp(p, "node.", 5))
		k = FILE_NODE;
	else if (!strncmp(p, "ring.", 5))
		k = FILE_RING;
	else
		return FILE_OTHER;
	for (p += 5, i = 0; i < 16; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return FILE_OTHER;
	return p[16] ? FILE_OTHER : k;
}

struct ring_ctx {
	const struct shmrpc__ring_hdr *h;
	union {
		struct shmrpc__ring_hdr h;
		uint64_t w[sizeof(struct shmrpc__ring_hdr) / 8];
	} u;
	uint64_t head, tail;
};

static int read_ring(void *arg)
{
	struct ring_ctx *c = arg;

	/* Acquire: head first, then tail. tail only grows and never passes
	 * head + size, so tail read after head is >= head: a depth read this
	 * way is never negative (it may exceed the size if both moved a lot
	 * between the two loads; the caller clamps that). */
	c->head = atomic_load_explicit(&c->h->head, memory_order_acquire);
	c->tail = atomic_load_explicit(&c->h->tail, memory_order_relaxed);
	return top_copy(c->u.w, c->h, sizeof(c->u)) ? -EFAULT : 0;
}

/* The checks of shmrpc__ring_check (lib/ring.c), each with its reason; the
 * ids come from the header and must give the file's name. */
static const char *ring_hdr_bad(const struct shmrpc__ring_hdr *h, uint64_t fsize,
				const struct top_domain *d, const struct top_ring *r)
{
	char want[SHMRPC__PATH_MAX];
	uint32_t size = h->size;

	if (h->abi != SHMRPC__ABI || h->hdr_size != SHMRPC__PAGE)
		return "wrong ABI or header size";
	if (size < SHMRPC__RING_MIN || size > SHMRPC__RING_MAX || (size & (size - 1)))
		return "bad ring size";
	if (fsize != (uint64_t)SHMRPC__PAGE + size)
		return fsize < (uint64_t)SHMRPC__PAGE + size ? "truncated" : "file size differs";
	shmrpc_insp_ring_path(want, d->name, d->key, h->tx_slot, h->tx_gen, h->rx_slot, h->rx_gen);
	if (strcmp(want + 1, r->file))
		return "ids differ from its name";
	if (shmrpc_insp_name_check_field(h->tx_name, sizeof(h->tx_name)))
		return "bad sender name";
	return NULL;
}

static void ring_values(struct top_ring *r, const struct ring_ctx *c)
{
	const struct shmrpc__ring_hdr *h = &c->u.h;
	uint32_t d, sp;

#define LD(f) atomic_load_explicit(&h->f, memory_order_relaxed)
	r->size = h->size;
	r->flags = LD(flags);
	d = LD(data_seq);
	sp = LD(space_seq);
	r->tx_msgs = LD(tx_msgs);
	r->tx_bytes = LD(tx_bytes);
	r->tx_full = LD(tx_full);
	r->tx_wakes = LD(tx_wakes);
	r->tx_skips = LD(tx_skips);
	r->rx_msgs = LD(rx_msgs);
	r->rx_bytes = LD(rx_bytes);
	r->rx_wakes = LD(rx_wakes);
#undef LD
	r->rx_sleeping = d & SHMRPC__W_SLEEP;
	r->tx_sleeping = sp & SHMRPC__W_SLEEP;
	r->head = c->head;
	r->tail = c->tail;
	r->depth = c->tail - c->head;
	if (r->depth > r->size)
		r->depth = r->size; /* both moved between the loads: torn */
	memcpy(r->tx_name, h->tx_name, sizeof(r->tx_name));
	r->tx_name[SHMRPC_NAME_MAX] = '\0';
}

/* Map ring file r->file and read its header: its ids, status and values.
 * Returns 1 if it is a complete ring of another registry (a stray). */
static int scan_ring(struct top_ring *r, const struct top_domain *d)
{
	struct ring_ctx c;
	struct top_map m;
	const char *bad;
	int err, stray = 0;

	err = top_map_open(r->file, SHMRPC__PAGE, false, &m);
	if (err) {
		r->status = err == -ENOENT ? TOP_RING_GONE : TOP_RING_CORRUPT;
		snprintf(r->why, TOP_WHY_MAX, "%s", strerror(-err));
		return 0;
	}
	r->ino = m.ino;
	if (m.size == 0) {
		r->status = TOP_RING_CREATING;
		snprintf(r->why, TOP_WHY_MAX, "empty");
		goto out;
	}
	if (m.size < sizeof(c.u)) {
		r->status = TOP_RING_CORRUPT;
		snprintf(r->why, TOP_WHY_MAX, "truncated: %llu bytes", (unsigned long long)m.size);
		goto out;
	}
	c.h = m.p;
	if (!m.head_data) {
		/* A hole: zeros. A creator sizes the file, then writes it. */
		r->status = TOP_RING_CREATING;
		snprintf(r->why, TOP_WHY_MAX, "being created");
		goto out;
	}
	if (top_guard(read_ring, &c)) {
		r->status = TOP_RING_CORRUPT;
		snprintf(r->why, TOP_WHY_MAX, "truncated while reading");
		goto out;
	}
	if (c.u.h.magic != SHMRPC__RING_MAGIC) {
		/* The creator writes the magic last, just before announcing. */
		r->status = c.u.h.magic ? TOP_RING_CORRUPT : TOP_RING_CREATING;
		snprintf(r->why, TOP_WHY_MAX, "%s", c.u.h.magic ? "bad magic" : "being created");
		goto out;
	}
	if (c.u.h.nonce != d->nonce) {
		stray = 1; /* left by an older registry of the domain */
		goto out;
	}
	r->tx_slot = c.u.h.tx_slot;
	r->tx_gen = c.u.h.tx_gen;
	r->rx_slot = c.u.h.rx_slot;
	r->rx_gen = c.u.h.rx_gen;
	bad = ring_hdr_bad(&c.u.h, m.size, d, r);
	if (!bad && (c.tail < c.head || ((c.head | c.tail) & (SHMRPC__REC_ALIGN - 1))))
		bad = "head/tail out of range";
	if (bad) {
		r->status = TOP_RING_CORRUPT;
		snprintf(r->why, TOP_WHY_MAX, "%s", bad);
		r->tx_slot = r->tx_gen = r->rx_slot = r->rx_gen = 0;
		goto out;
	}
	ring_values(r, &c);
out:
	top_map_close(&m);
	return stray;
}

/* Index of the domain's node (slot, gen), or -1. Nodes are in slot order. */
static int node_find(const struct top_snap *s, const struct top_domain *d, uint32_t slot,
		     uint32_t gen)
{
	uint32_t lo = d->node_first, hi = d->node_first + d->node_count, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (s->nodes[mid].slot < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < d->node_first + d->node_count && s->nodes[lo].slot == slot &&
	    s->nodes[lo].gen == gen)
		return (int)lo;
	return -1;
}

static void ring_link(struct top_snap *s, uint32_t i)
{
	struct top_ring *r = &s->rings[i];
	struct top_node *n;

	if (r->status == TOP_RING_GONE)
		return;
	if (r->tx_node >= 0) {
		n = &s->nodes[r->tx_node];
		r->next_out = n->first_out;
		n->first_out = (int)i;
		n->rings_out++;
	}
	if (r->rx_node >= 0) {
		n = &s->nodes[r->rx_node];
		r->next_in = n->first_in;
		n->first_in = (int)i;
		n->rings_in++;
	}
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names of the domain's nodes, sorted, for bsearch; NULL if none
 * (or no memory: then every node file counts as a node's). */
static char **node_names(const struct top_snap *s, const struct top_domain *d,
			 char (*buf)[TOP_FILE_MAX])
{
	char **v = malloc((d->node_count + 1) * sizeof(*v)), path[SHMRPC__PATH_MAX];
	uint32_t i;

	if (!v)
		return NULL;
	for (i = 0; i < d->node_count; i++) {
		const struct top_node *n = &s->nodes[d->node_first + i];

		shmrpc_insp_node_path(path, d->name, d->key, n->slot, n->gen);
		snprintf(buf[i], TOP_FILE_MAX, "%s", path + 1);
		v[i] = buf[i];
	}
	qsort(v, d->node_count, sizeof(*v), cmp_name);
	return v;
}

/* A file of another registry, or of a node no longer in this one: counted,
 * unless it left a moment ago. */
static void stray_file(struct top_domain *d, const char *file)
{
	char path[sizeof(TOP_SHM_DIR) + TOP_FILE_MAX];

	snprintf(path, sizeof(path), "%s/%s", TOP_SHM_DIR, file);
	d->stray += !access(path, F_OK);
}

int top__scan_rings(struct top_snap *s, uint32_t di, const struct top_names *l)
{
	struct top_domain *d = &s->doms[di];
	char(*buf)[TOP_FILE_MAX] = malloc((d->node_count + 1) * sizeof(*buf));
	char **names = buf ? node_names(s, d, buf) : NULL;
	const char *key;
	enum file_kind k;
	uint32_t i;

	d->ring_first = s->nrings;
	for (i = 0; i < l->n; i++) {
		struct top_ring *r;

		k = parse_file(l->v[i], d->name);
		if (k == FILE_OTHER)
			continue;
		key = l->v[i];
		if (k == FILE_NODE) {
			if (names && !bsearch(&key, names, d->node_count, sizeof(*names), cmp_name))
				stray_file(d, l->v[i]);
			continue;
		}
		r = top_grow(s->rings, &s->cap_rings, s->nrings + 1, sizeof(*r));
		if (!r) {
			free(names);
			free(buf);
			return -ENOMEM;
		}
		s->rings = r;
		d = &s->doms[di];
		r = &s->rings[s->nrings];
		memset(r, 0, sizeof(*r));
		snprintf(r->file, sizeof(r->file), "%s", l->v[i]);
		if (scan_ring(r, d)) {
			stray_file(d, l->v[i]);
			continue;
		}
		s->nrings++;
		/* Corrupt or still being created: its ids are unknown, and no
		 * node's. */
		r->tx_node = r->status == TOP_RING_OK ? node_find(s, d, r->tx_slot, r->tx_gen) : -1;
		r->rx_node = r->status == TOP_RING_OK ? node_find(s, d, r->rx_slot, r->rx_gen) : -1;
		r->next_in = r->next_out = -1;
	}
	free(names);
	free(buf);
	d->ring_count = s->nrings - d->ring_first;
	for (i = d->ring_first; i < s->nrings; i++)
		ring_link(s, i);
	return 0;
}

/* ------------------------------------------------------------ totals */

void top__node_sum(struct top_snap *s, struct top_node *n)
{
	struct top_ctr *t = &n->raw;
	const struct top_ring *r;
	int i;

	memset(t, 0, sizeof(*t));
	t->msgs_out = n->old_tx_msgs;
	t->bytes_out = n->old_tx_bytes;
	t->full = n->old_tx_full;
	t->wakes = n->old_tx_wakes + n->old_rx_wakes;
	t->skips = n->old_tx_skips;
	t->msgs_in = n->old_rx_msgs;
	t->bytes_in = n->old_rx_bytes;
	t->sleeps = n->sleeps;
	t->spins = n->spins;
	t->connects = n->connects;
	t->calls = n->calls;
	t->calls_ended = n->calls_ended;
	t->calls_failed = n->calls_failed;
	t->served = n->served;
	for (i = n->first_out; i >= 0; i = r->next_out) {
		r = &s->rings[i];
		if (r->status != TOP_RING_OK)
			continue;
		t->msgs_out += r->tx_msgs;
		t->bytes_out += r->tx_bytes;
		t->full += r->tx_full;
		t->wakes += r->tx_wakes;
		t->skips += r->tx_skips;
	}
	for (i = n->first_in; i >= 0; i = r->next_in) {
		r = &s->rings[i];
		if (r->status != TOP_RING_OK)
			continue;
		t->msgs_in += r->rx_msgs;
		t->bytes_in += r->rx_bytes;
		t->wakes += r->rx_wakes;
	}
	n->tot = *t;
}

const char *top_ring_peer(const struct top_snap *s, const struct top_ring *r, int self, char *buf,
			  size_t len)
{
	bool out = r->tx_node == self;
	int peer = out ? r->rx_node : r->tx_node;

	if (peer >= 0)
		return s->nodes[peer].name;
	if (!out && r->status == TOP_RING_OK) {
		snprintf(buf, len, "%s (gone)", r->tx_name); /* checked by scan_ring */
		return buf;
	}
	snprintf(buf, len, "(gone %u.%u)", out ? r->rx_slot : r->tx_slot,
		 out ? r->rx_gen : r->tx_gen);
	return buf;
}
