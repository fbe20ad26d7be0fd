// SPDX-License-Identifier: MIT
/*
 * One snapshot of /dev/shm: every domain's registry, its slots, the node
 * segment of every slot in use and (rings.c) every ring file, copied out
 * and checked
 * (lib/layout.h describes the files; lib/nodeseg.c, lib/connect.c and
 * lib/ring.c hold the checks the library itself makes, repeated here with
 * a reason for each, since an operator wants to know *what* is wrong).
 *
 * Order of a scan: list the directory once, then per domain read the
 * registry header and all its slots (the seqlock read of the library,
 * shmrpc_insp_reg_read), then each node segment's header, then each ring's.
 * Nothing read is trusted as a size, an offset or an index: capacity
 * bounds every slot index, the file names (not the headers) say which
 * nodes a ring joins, and every name is checked before it is shown.
 *
 * A node's counters are the library's (lib/stats.c): the node's folded
 * old_* totals plus the sums over its rings. The tool cannot see the rings
 * a node still maps after their files were unlinked, nor take the locks
 * that make the library's sum exact, so a raw total can dip for a moment
 * while a ring closes (rates.c keeps the totals it shows monotonic and
 * takes rates from the rings instead).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inspect.h"
#include "layout.h"
#include "top.h"

#define SLOT_TRIES 100 /* seqlock re-reads before a slot counts as changing */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Every "shmrpc.*" entry of /dev/shm, sorted. */
static int list_dir(struct top_names *l)
{
	struct dirent *e;
	DIR *dir = opendir(TOP_SHM_DIR);

	l->n = 0;
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		if (strncmp(e->d_name, "shmrpc.", 7) || strlen(e->d_name) >= TOP_FILE_MAX)
			continue;
		if (l->n == l->cap) {
			uint32_t cap = l->cap ? 2 * l->cap : 256;
			void *v = realloc(l->v, cap * sizeof(*l->v));

			if (!v) {
				closedir(dir);
				return -ENOMEM;
			}
			l->v = v;
			l->cap = cap;
		}
		snprintf(l->v[l->n++], TOP_FILE_MAX, "%s", e->d_name);
	}
	closedir(dir);
	if (l->n) /* l->v is NULL in an empty directory */
		qsort(l->v, l->n, sizeof(*l->v), cmp_name);
	return 0;
}

static void printable(char *dst, size_t len, const char *src, size_t max)
{
	size_t i;

	for (i = 0; i + 1 < len && i < max && src[i]; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

/* ------------------------------------------------------------ registry */

struct slots_ctx {
	struct shmrpc_insp_reg reg; /* only hdr, slots and capacity are set */
	const bool *pages;	    /* pages of the file that hold data */
	struct shmrpc_insp_slot *views;
	int *rc;
	uint32_t *idx;
	uint32_t n;
};

static int read_slots(void *arg)
{
	struct slots_ctx *c = arg;
	uint32_t i;
	int t, rc = 0;

	for (i = 0; i < c->reg.capacity; i++) {
		/* A slot in a hole is zeros (FREE); reading it would allocate
		 * the page. Slots never straddle pages (128 B, 128-aligned). */
		if (!c->pages[(sizeof(struct shmrpc__reg_hdr) +
			       (size_t)i * sizeof(struct shmrpc__slot)) /
			      SHMRPC__PAGE])
			continue;
		/* Relaxed: a cheap filter; shmrpc_insp_reg_read's seqlock decides. */
		if (atomic_load_explicit(&c->reg.slots[i].state, memory_order_relaxed) ==
		    SHMRPC__SLOT_FREE)
			continue;
		for (t = 0; t < SLOT_TRIES; t++)
			if ((rc = shmrpc_insp_reg_read(&c->reg, i, &c->views[c->n])) != -EAGAIN)
				break;
		if (c->views[c->n].state == SHMRPC__SLOT_FREE && !rc)
			continue; /* freed while we looked */
		c->rc[c->n] = rc;
		c->idx[c->n++] = i;
	}
	return 0;
}

static struct top_node *node_add(struct top_snap *s, uint32_t dom)
{
	struct top_node *v = top_grow(s->nodes, &s->cap_nodes, s->nnodes + 1, sizeof(*v));

	if (!v)
		return NULL;
	s->nodes = v;
	v = &s->nodes[s->nnodes++];
	memset(v, 0, sizeof(*v));
	v->dom = dom;
	v->first_in = v->first_out = -1;
	v->uptime = -1;
	return v;
}

static void why(char *buf, const char *fmt, unsigned long long a, unsigned long long b)
{
	snprintf(buf, TOP_WHY_MAX, fmt, a, b);
}

static bool ring_bytes_ok(uint32_t b)
{
	return b >= SHMRPC__RING_MIN && b <= SHMRPC__RING_MAX && !(b & (b - 1));
}

/* The checks of peer_open (lib/connect.c) and map_dead (lib/reclaim.c). */
static const char *node_hdr_bad(const struct shmrpc__node_hdr *h, const struct top_domain *d,
				const struct top_node *n)
{
	if (h->magic != SHMRPC__NODE_MAGIC)
		return h->magic ? "bad magic" : "no magic (never completed)";
	if (h->abi != SHMRPC__ABI || h->hdr_size != sizeof(*h))
		return "wrong ABI or header size";
	if (h->slot != n->slot || h->gen != n->gen)
		return "slot/gen differ from its name";
	if (h->capacity != d->capacity)
		return "capacity differs from the registry";
	if (h->pend_off != shmrpc__node_pend_off() ||
	    h->in_off != shmrpc__node_in_off(d->capacity) ||
	    h->out_off != shmrpc__node_out_off(d->capacity))
		return "table offsets differ from the layout";
	if (!ring_bytes_ok(h->ring_bytes))
		return "bad ring size";
	if (shmrpc_insp_name_check_field(h->name, sizeof(h->name)))
		return "bad name";
	if (strcmp(h->name, n->name))
		return "name differs from the registry";
	return NULL;
}

static void node_counters(struct top_node *n, const struct shmrpc__node_hdr *h)
{
	const struct shmrpc__node_ctr *c = &h->ctr;

	/* Local copy: relaxed loads of words nobody else writes any more. */
#define LD(f) atomic_load_explicit(&c->f, memory_order_relaxed)
	n->sleeps = LD(sleeps);
	n->spins = LD(spins);
	n->connects = LD(connects);
	n->rings_in_open = LD(rings_in);
	n->rings_out_open = LD(rings_out);
	n->old_tx_msgs = LD(old_tx_msgs);
	n->old_tx_bytes = LD(old_tx_bytes);
	n->old_tx_full = LD(old_tx_full);
	n->old_tx_wakes = LD(old_tx_wakes);
	n->old_tx_skips = LD(old_tx_skips);
	n->old_rx_msgs = LD(old_rx_msgs);
	n->old_rx_bytes = LD(old_rx_bytes);
	n->old_rx_wakes = LD(rx_wakes);
#undef LD
#define LD(f) atomic_load_explicit(&h->rpc.f, memory_order_relaxed)
	n->calls = LD(calls);
	n->calls_ended = LD(calls_ended);
	n->calls_failed = LD(fail_timeout) + LD(fail_pipe) + LD(fail_remote) + LD(fail_cancel) +
			  LD(fail_refused);
	n->served = LD(served);
#undef LD
	n->seg_ok = true;
}

/* Read the segment of a LIVE slot and decide the node's state. */
static void scan_node(const struct top_domain *d, struct top_node *n)
{
	union {
		struct shmrpc__node_hdr h;
		uint64_t w[sizeof(struct shmrpc__node_hdr) / 8];
	} u;
	uint64_t want = shmrpc__node_size(d->capacity);
	char path[SHMRPC__PATH_MAX];
	struct top_map m;
	const char *bad;
	int err, alive;

	shmrpc_insp_node_path(path, d->name, d->key, n->slot, n->gen);
	err = top_map_open(path + 1, sizeof(u), true, &m);
	if (err) {
		n->state = err == -ENOENT ? TOP_NODE_GONE : TOP_NODE_UNKNOWN;
		snprintf(n->why, TOP_WHY_MAX, "%s",
			 err == -ENOENT ? "segment removed" : strerror(-err));
		return;
	}
	if (m.size != want) {
		n->state = TOP_NODE_CORRUPT;
		why(n->why,
		    m.size < want ? "truncated: %llu of %llu bytes" : "size %llu, want %llu",
		    m.size, want);
		goto out;
	}
	if (!m.head_data) {
		memset(&u, 0, sizeof(u)); /* a hole: zeros, not to be touched */
	} else if (top_copy(u.w, m.p, sizeof(u))) {
		n->state = TOP_NODE_CORRUPT;
		snprintf(n->why, TOP_WHY_MAX, "truncated while reading");
		goto out;
	}
	bad = node_hdr_bad(&u.h, d, n);
	if (bad) {
		n->state = TOP_NODE_CORRUPT;
		snprintf(n->why, TOP_WHY_MAX, "%s", bad);
		goto out;
	}
	node_counters(n, &u.h);
	alive = top_lock_held(m.fd);
	if (alive < 0) {
		n->state = TOP_NODE_UNKNOWN;
		snprintf(n->why, TOP_WHY_MAX, "liveness: %s", strerror(-alive));
	} else if (!alive) {
		n->state = TOP_NODE_DEAD;
		snprintf(n->why, TOP_WHY_MAX, "process gone, not reclaimed yet");
	} else if (atomic_load_explicit(&u.h.flags, memory_order_relaxed) & SHMRPC__NODE_CLOSING) {
		n->state = TOP_NODE_CLOSING;
	}
out:
	top_map_close(&m);
}

static void slot_to_node(struct top_snap *s, const struct top_domain *d, struct top_node *n,
			 const struct shmrpc_insp_slot *v, int rc)
{
	uint64_t now_ns = (uint64_t)(s->mono * 1e9);

	n->slot_state = v->state;
	n->gen = v->gen;
	n->pid = v->pid;
	n->uid = v->uid;
	n->backend = v->backend;
	n->ring_bytes = v->ring_bytes;
	n->join_ns = v->join_ns;
	if (v->join_ns && v->join_ns <= now_ns)
		n->uptime = (double)(now_ns - v->join_ns) / 1e9;
	printable(n->name, sizeof(n->name), v->name, SHMRPC_NAME_MAX);
	if (rc == -EAGAIN) {
		n->state = TOP_NODE_UNKNOWN;
		snprintf(n->why, TOP_WHY_MAX, "slot kept changing while read");
	} else if (rc) {
		n->state = TOP_NODE_CORRUPT;
		snprintf(n->why, TOP_WHY_MAX, "bad name in the registry");
	} else if (v->state == SHMRPC__SLOT_JOINING) {
		n->state = TOP_NODE_JOINING;
	} else if (v->state != SHMRPC__SLOT_LIVE) {
		n->state = TOP_NODE_CORRUPT;
		why(n->why, "slot state %llu", v->state, 0);
	} else {
		scan_node(d, n);
	}
}

static const char *reg_hdr_bad(const struct shmrpc__reg_hdr *h, uint64_t size)
{
	if (h->abi != SHMRPC__ABI || h->hdr_size != sizeof(*h) ||
	    h->slot_size != sizeof(struct shmrpc__slot))
		return "wrong ABI or header sizes";
	if (h->capacity == 0 || h->capacity > SHMRPC__CAP_MAX)
		return "bad capacity";
	if (h->total_size != size || size != shmrpc__reg_size(h->capacity))
		return size < shmrpc__reg_size(h->capacity) ? "truncated" :
							      "size differs from header";
	return NULL;
}

static void reaper_of(struct top_domain *d, const struct shmrpc__reg_hdr *h, double mono)
{
	struct top_reaper *r = &d->reaper;
	uint64_t beat = atomic_load_explicit(&h->reaper_beat, memory_order_relaxed);

	r->pid = atomic_load_explicit(&h->reaper_pid, memory_order_relaxed);
	r->mode = atomic_load_explicit(&h->reaper_mode, memory_order_relaxed);
	r->reaped = atomic_load_explicit(&h->reaped, memory_order_relaxed);
	/* CLOCK_MONOTONIC seconds; a beat from the future is garbage. */
	if (!beat || (double)beat > mono + 1)
		r->beat_age = -1;
	else
		r->beat_age = mono > (double)beat ? mono - (double)beat : 0;
	if (!r->pid) {
		r->state = TOP_REAPER_NONE;
		r->beat_age = -1;
		return;
	}
	/* shmrpc-reaper beats every second (its beat_ms), in whole seconds of
	 * CLOCK_MONOTONIC, so a running one reads up to about 2 s old; more
	 * than 5 s, or no such process (kill 0 asks, sends nothing), is a
	 * reaper that stopped. */
	r->state = r->beat_age >= 0 && r->beat_age <= 5 &&
				   (kill((pid_t)r->pid, 0) == 0 || errno == EPERM) ?
			   TOP_REAPER_RUNNING :
			   TOP_REAPER_STALE;
}

/* Header checks; on success d is filled and 0 returned, else d says why. */
static int reg_header(struct top_snap *s, struct top_domain *d, const struct top_map *m,
		      struct shmrpc__reg_hdr *h)
{
	const char *bad;

	if (m->size == 0) {
		d->status = TOP_DOM_EMPTY;
		return -1;
	}
	if (m->size < sizeof(*h)) {
		d->status = TOP_DOM_CORRUPT;
		why(d->why, "truncated: %llu bytes", m->size, 0);
		return -1;
	}
	if (!m->head_data) {
		memset(h, 0, sizeof(*h)); /* a hole: zeros, not to be touched */
	} else if (top_copy(h, m->p, sizeof(*h))) {
		d->status = TOP_DOM_CORRUPT;
		snprintf(d->why, TOP_WHY_MAX, "truncated while reading");
		return -1;
	}
	if (h->magic != SHMRPC__REG_MAGIC) {
		d->status = h->magic ? TOP_DOM_CORRUPT : TOP_DOM_CREATING;
		snprintf(d->why, TOP_WHY_MAX, "%s", h->magic ? "bad magic" : "magic not published");
		return -1;
	}
	bad = reg_hdr_bad(h, m->size);
	if (bad) {
		d->status = TOP_DOM_CORRUPT;
		snprintf(d->why, TOP_WHY_MAX, "%s", bad);
		return -1;
	}
	d->capacity = h->capacity;
	d->nonce = h->nonce;
	memcpy(d->key, h->name_key, sizeof(d->key));
	d->epoch = atomic_load_explicit(&h->epoch, memory_order_relaxed);
	reaper_of(d, h, s->mono);
	return 0;
}

static int scan_registry(struct top_snap *s, uint32_t di, const char *file)
{
	struct top_domain *d = &s->doms[di];
	struct shmrpc__reg_hdr h;
	struct slots_ctx c;
	struct top_map m;
	bool *pages;
	uint32_t i;
	int err;

	err = top_map_open(file, shmrpc__reg_size(SHMRPC__CAP_MAX), true, &m);
	if (err) {
		d->status = err == -ENOENT ? TOP_DOM_GONE : TOP_DOM_ERROR;
		snprintf(d->why, TOP_WHY_MAX, "%s",
			 err == -ENOENT ? "no registry" : strerror(-err));
		return 0;
	}
	if (reg_header(s, d, &m, &h)) {
		top_map_close(&m);
		return 0;
	}
	memset(&c, 0, sizeof(c));
	c.reg.hdr = (struct shmrpc__reg_hdr *)m.p;
	c.reg.slots = (struct shmrpc__slot *)(c.reg.hdr + 1);
	c.reg.capacity = d->capacity;
	/* Sized for every slot before the guarded read: nothing is allocated
	 * under the guard. Untouched pages of a large array cost nothing. */
	c.views = malloc(d->capacity * sizeof(*c.views));
	c.rc = malloc(d->capacity * sizeof(*c.rc));
	c.idx = malloc(d->capacity * sizeof(*c.idx));
	c.pages = pages = malloc((m.len + SHMRPC__PAGE - 1) / SHMRPC__PAGE * sizeof(*pages));
	err = c.views && c.rc && c.idx && pages ? 0 : -ENOMEM;
	if (!err)
		top_data(m.fd, m.len, pages);
	if (!err && top_guard(read_slots, &c)) {
		d->status = TOP_DOM_CORRUPT;
		snprintf(d->why, TOP_WHY_MAX, "truncated while reading");
		c.n = 0;
	}
	if (!err && d->status == TOP_DOM_OK)
		top__scan_events(d, &m, pages, &h, s->mono);
	top_map_close(&m);
	d->node_first = s->nnodes;
	for (i = 0; !err && i < c.n; i++) {
		struct top_node *n = node_add(s, di);

		if (!n) {
			err = -ENOMEM;
			break;
		}
		d = &s->doms[di];
		n->slot = c.idx[i];
		slot_to_node(s, d, n, &c.views[i], c.rc[i]);
	}
	d->node_count = s->nnodes - d->node_first;
	free(c.views);
	free(c.rc);
	free(c.idx);
	free(pages);
	return err;
}

/* ------------------------------------------------------------ snapshot */

static int domain_add(struct top_snap *s, const char *name)
{
	struct top_domain *d = top_grow(s->doms, &s->cap_doms, s->ndoms + 1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	s->doms = d;
	d = &s->doms[s->ndoms++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	return 0;
}

/* The domain of registry file @file ("shmrpc.<domain>.reg"), or false. */
static bool reg_domain(const char *file, char *dom)
{
	size_t n = strlen(file);

	if (n <= 7 + 4 || strcmp(file + n - 4, ".reg") || n - 11 > SHMRPC_NAME_MAX)
		return false;
	memcpy(dom, file + 7, n - 11);
	dom[n - 11] = '\0';
	return !shmrpc_insp_name_check(dom);
}

int top_scan(struct top_snap *s, const char *domain)
{
	static struct top_names l; /* reused from one scan to the next */
	char dom[SHMRPC_NAME_MAX + 1], file[TOP_FILE_MAX];
	uint32_t i, k;
	int err;

	s->ndoms = s->nnodes = s->nrings = 0;
	s->mono = top_now_mono();
	s->wall = top_now_wall();
	s->interval = -1;
	err = list_dir(&l);
	if (err)
		return err;
	for (i = 0; i < l.n && !err; i++)
		if (reg_domain(l.v[i], dom) && (!domain || !strcmp(dom, domain)))
			err = domain_add(s, dom);
	if (!err && domain && !s->ndoms) /* asked for, not there: say so */
		err = domain_add(s, domain);
	for (i = 0; i < s->ndoms && !err; i++) {
		snprintf(file, sizeof(file), "shmrpc.%s.reg", s->doms[i].name);
		err = scan_registry(s, i, file);
		if (!err && s->doms[i].status == TOP_DOM_OK)
			err = top__scan_rings(s, i, &l);
	}
	if (err)
		return err;
	for (k = 0; k < s->nnodes; k++)
		top__node_sum(s, &s->nodes[k]);
	return top__scan_bridges(s, domain);
}

void top_snap_free(struct top_snap *s)
{
	top__bridges_free(s);
	free(s->bridges);
	free(s->doms);
	free(s->nodes);
	free(s->rings);
	memset(s, 0, sizeof(*s));
}

void top_snap_swap(struct top_snap *a, struct top_snap *b)
{
	struct top_snap t = *a;

	*a = *b;
	*b = t;
}

const char *top_state_name(enum top_node_state st)
{
	static const char *const names[] = { "live", "closing", "joining", "dead",
					     "gone", "corrupt", "unknown" };

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

const char *top_dom_status_name(enum top_dom_status st)
{
	static const char *const names[] = {
		"ok", "empty", "creating", "corrupt", "absent", "error"
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

const char *top_backend_name(uint32_t id)
{
	return id == SHMRPC__BACKEND_FUTEX ? "futex" : id == SHMRPC__BACKEND_URING ? "uring" : "?";
}
