// SPDX-License-Identifier: MIT
/*
 * The ring files of a domain, for a snapshot (scan.c does the rest): each
 * file name is parsed strictly (the names lib/names.c makes, nothing
 * else), its header page mapped, copied and checked, and the ring linked
 * to the nodes its *name* says it joins (a header can lie; a name that
 * lies fails the check that the header repeats it). Then each node's
 * totals: its folded old_* counters plus its rings', as lib/stats.c adds
 * them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
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

static bool parse_u32(const char **p, uint32_t *v)
{
	uint64_t x = 0;
	const char *q = *p;

	if (*q < '0' || *q > '9')
		return false;
	while (*q >= '0' && *q <= '9') {
		x = x * 10 + (uint64_t)(*q++ - '0');
		if (x > UINT32_MAX)
			return false;
	}
	*v = (uint32_t)x;
	*p = q;
	return true;
}

/* "xxxxxxxx." of the nonce; returns the rest, or NULL. */
static const char *parse_nonce(const char *p, uint32_t *nonce)
{
	char *end;
	int i;

	for (i = 0; i < 8; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return NULL;
	if (p[8] != '.')
		return NULL;
	*nonce = (uint32_t)strtoul(p, &end, 16);
	return p + 9;
}

enum file_kind { FILE_OTHER, FILE_NODE, FILE_RING };

/* Which file of domain @dom is @name: its nonce and ids. Strict: exactly
 * the names lib/names.c makes. */
static enum file_kind parse_file(const char *name, const char *dom, uint32_t *nonce, uint32_t id[4])
{
	size_t dl = strlen(dom);
	const char *p = name + 7;

	if (strncmp(p, dom, dl) || p[dl] != '.' || !(p = parse_nonce(p + dl + 1, nonce)))
		return FILE_OTHER;
	if (!strncmp(p, "node.", 5)) {
		p += 5;
		if (parse_u32(&p, &id[0]) && *p++ == '.' && parse_u32(&p, &id[1]) && !*p)
			return FILE_NODE;
	} else if (!strncmp(p, "ring.", 5)) {
		p += 5;
		if (parse_u32(&p, &id[0]) && *p++ == '.' && parse_u32(&p, &id[1]) && *p++ == '-' &&
		    parse_u32(&p, &id[2]) && *p++ == '.' && parse_u32(&p, &id[3]) && !*p)
			return FILE_RING;
	}
	return FILE_OTHER;
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

/* The checks of shmrpc__ring_check (lib/ring.c), each with its reason. */
static const char *ring_hdr_bad(const struct shmrpc__ring_hdr *h, uint64_t fsize, uint32_t nonce,
				const struct top_ring *r)
{
	uint32_t size = h->size;

	if (h->abi != SHMRPC__ABI || h->hdr_size != SHMRPC__PAGE)
		return "wrong ABI or header size";
	if (size < SHMRPC__RING_MIN || size > SHMRPC__RING_MAX || (size & (size - 1)))
		return "bad ring size";
	if (fsize != (uint64_t)SHMRPC__PAGE + size)
		return fsize < (uint64_t)SHMRPC__PAGE + size ? "truncated" : "file size differs";
	if (h->nonce != nonce || h->tx_slot != r->tx_slot || h->tx_gen != r->tx_gen ||
	    h->rx_slot != r->rx_slot || h->rx_gen != r->rx_gen)
		return "ids differ from its name";
	if (shmrpc__name_check_field(h->tx_name, sizeof(h->tx_name)))
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

static void scan_ring(struct top_ring *r, uint32_t nonce)
{
	struct ring_ctx c;
	struct top_map m;
	const char *bad;
	int err;

	err = top_map_open(r->file, SHMRPC__PAGE, false, &m);
	if (err) {
		r->status = err == -ENOENT ? TOP_RING_GONE : TOP_RING_CORRUPT;
		snprintf(r->why, TOP_WHY_MAX, "%s", strerror(-err));
		return;
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
	bad = ring_hdr_bad(&c.u.h, m.size, nonce, r);
	if (!bad && (c.tail < c.head || ((c.head | c.tail) & (SHMRPC__REC_ALIGN - 1))))
		bad = "head/tail out of range";
	if (bad) {
		r->status = TOP_RING_CORRUPT;
		snprintf(r->why, TOP_WHY_MAX, "%s", bad);
		goto out;
	}
	ring_values(r, &c);
out:
	top_map_close(&m);
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

int top__scan_rings(struct top_snap *s, uint32_t di, const struct top_names *l)
{
	struct top_domain *d = &s->doms[di];
	uint32_t i, nonce, id[4];
	enum file_kind k;

	d->ring_first = s->nrings;
	for (i = 0; i < l->n; i++) {
		struct top_ring *r;

		k = parse_file(l->v[i], d->name, &nonce, id);
		if (k == FILE_OTHER)
			continue;
		if (nonce != d->nonce || (k == FILE_NODE && node_find(s, d, id[0], id[1]) < 0)) {
			/* Left by an older registry, or by a node that is no
			 * longer in this one. Unless it left a moment ago. */
			char path[sizeof(TOP_SHM_DIR) + TOP_FILE_MAX];

			snprintf(path, sizeof(path), "%s/%s", TOP_SHM_DIR, l->v[i]);
			d->stray += !access(path, F_OK);
			continue;
		}
		if (k != FILE_RING)
			continue;
		r = top_grow(s->rings, &s->cap_rings, s->nrings + 1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		s->rings = r;
		d = &s->doms[di];
		r = &s->rings[s->nrings++];
		memset(r, 0, sizeof(*r));
		snprintf(r->file, sizeof(r->file), "%s", l->v[i]);
		r->tx_slot = id[0];
		r->tx_gen = id[1];
		r->rx_slot = id[2];
		r->rx_gen = id[3];
		scan_ring(r, d->nonce);
		r->tx_node = node_find(s, d, r->tx_slot, r->tx_gen);
		r->rx_node = node_find(s, d, r->rx_slot, r->rx_gen);
		r->next_in = r->next_out = -1;
	}
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
