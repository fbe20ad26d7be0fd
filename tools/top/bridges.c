// SPDX-License-Identifier: MIT
/*
 * shmrpc-bridge's status segments (/dev/shm/shmrpc-bridge.<domain>, the
 * layout in tools/bridge/status.h): what the bridge of each domain counts
 * per node, lost and dropped messages above all. Read like everything
 * else here: opened read-only with the checks of top_map_open, copied out
 * under the SIGBUS guard, every size and count checked against the file,
 * names against the name rules; a torn row (its seqlock moved) is read
 * again, a few times, then shown as unreadable.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "top.h"
#include "bridge/status.h"

#define TRIES 8
#define ROWS_MAX 65536u

static bool name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return i > 0;
}

static void unpack(char *dst, const uint64_t *w)
{
	memcpy(dst, w, SHMRPC_NAME_MAX);
	dst[SHMRPC_NAME_MAX] = '\0';
}

/* One row, consistent: 0, or -EAGAIN (kept changing), -EFAULT. */
static int row_read(const struct br_status_row *r, struct top_brow *o)
{
	uint64_t w[sizeof(*r) / 8], s1, s2;
	int t;

	for (t = 0; t < TRIES; t++) {
		/* seq is the low half of word 0. A relaxed load and an acquire
		 * fence: the row is read after seq (pairs with the writer's
		 * release store that made seq even). */
		if (top_copy(&s1, r, 8))
			return -EFAULT;
		atomic_thread_fence(memory_order_acquire);
		if (top_copy(w, r, sizeof(w)))
			return -EFAULT;
		/* and seq again after the row (pairs with the writer's release
		 * fence after it made seq odd) */
		atomic_thread_fence(memory_order_acquire);
		if (top_copy(&s2, r, 8) || (s1 & 1) || (uint32_t)s1 != (uint32_t)s2)
			continue;
		o->kind = (uint32_t)(w[0] >> 32);
		unpack(o->name, &w[1]);
		unpack(o->host, &w[9]);
		o->fwd_msgs = w[17];
		o->dlv_msgs = w[19];
		o->lost = w[21];
		o->dropped = w[22];
		o->stalls = w[23];
		o->queued = w[24];
		return 0;
	}
	return -EAGAIN;
}

static const char *check_hdr(const struct top_map *m, struct br_status_hdr *h)
{
	if (m->len < sizeof(*h) || top_copy(h, m->p, sizeof(*h)))
		return "shorter than its header";
	if (h->magic != BR_STATUS_MAGIC)
		return "no magic (being created, or not a bridge's)";
	if (h->version != BR_STATUS_VERSION || h->hdr_size != sizeof(*h) ||
	    h->row_size != sizeof(struct br_status_row))
		return "another version or layout";
	if (h->rows > ROWS_MAX || sizeof(*h) + (uint64_t)h->rows * h->row_size > m->len)
		return "more rows than the file holds";
	if (atomic_load_explicit(&h->used, memory_order_relaxed) > h->rows)
		return "rows in use past its capacity";
	return NULL;
}

static void copy_hdr(struct top_bridge *b, const struct br_status_hdr *h)
{
	unpack(b->host, h->host);
	unpack(b->domain, h->domain);
	b->pid = h->pid;
	/* relaxed: copied words, one writer; a torn header shows for one refresh */
	b->nats_up = atomic_load_explicit(&h->nats_up, memory_order_relaxed);
	b->hosts = atomic_load_explicit(&h->hosts, memory_order_relaxed);
	b->reconnects = atomic_load_explicit(&h->reconnects, memory_order_relaxed);
	b->bad_msgs = atomic_load_explicit(&h->bad_msgs, memory_order_relaxed);
	b->gone_lost = atomic_load_explicit(&h->gone_lost, memory_order_relaxed);
	b->gone_dropped = atomic_load_explicit(&h->gone_dropped, memory_order_relaxed);
	b->bcasts = atomic_load_explicit(&h->bcasts, memory_order_relaxed);
	b->bcast_sent = atomic_load_explicit(&h->bcast_sent, memory_order_relaxed);
	b->bcast_split = atomic_load_explicit(&h->bcast_split, memory_order_relaxed);
}

static int read_rows(struct top_bridge *b, const struct top_map *m, uint32_t used)
{
	const struct br_status_row *r =
		(const void *)((const char *)m->p + sizeof(struct br_status_hdr));
	struct top_brow row;
	uint32_t i;

	b->rows = calloc(used ? used : 1, sizeof(*b->rows));
	if (!b->rows)
		return -ENOMEM;
	for (i = 0; i < used; i++) {
		int rc = row_read(&r[i], &row);

		if (rc == -EFAULT) {
			snprintf(b->why, sizeof(b->why), "truncated while read");
			return 0;
		}
		if (rc || !row.kind)
			continue;
		if (row.kind > BR_STATUS_REFUSED || !name_ok(row.name) || !name_ok(row.host)) {
			snprintf(b->why, sizeof(b->why), "row %u: bad kind or name", i);
			continue;
		}
		b->rows[b->nrows++] = row;
	}
	return 0;
}

static int one(struct top_snap *s, const char *file)
{
	struct br_status_hdr h;
	struct top_bridge *b;
	struct top_map m;
	const char *why;
	int rc;

	b = top_grow(s->bridges, &s->cap_bridges, s->nbridges + 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	s->bridges = b;
	b = &s->bridges[s->nbridges++];
	memset(b, 0, sizeof(*b));
	snprintf(b->domain, sizeof(b->domain), "%s", file + strlen(BR_STATUS_PREFIX));
	if ((rc = top_map_open(file, 64u << 20, true, &m))) {
		snprintf(b->why, sizeof(b->why), "%s", strerror(-rc));
		return 0;
	}
	b->live = top_lock_held(m.fd) == 1;
	if ((why = check_hdr(&m, &h))) {
		snprintf(b->why, sizeof(b->why), "%s", why);
	} else {
		copy_hdr(b, &h);
		rc = read_rows(b, &m, atomic_load_explicit(&h.used, memory_order_relaxed));
	}
	top_map_close(&m);
	return rc;
}

int top__scan_bridges(struct top_snap *s, const char *domain)
{
	size_t n = strlen(BR_STATUS_PREFIX);
	DIR *dir = opendir(TOP_SHM_DIR);
	struct dirent *e;
	int rc = 0;

	top__bridges_free(s);
	if (!dir)
		return 0; /* the scan above said why */
	while (!rc && (e = readdir(dir)))
		if (!strncmp(e->d_name, BR_STATUS_PREFIX, n) && name_ok(e->d_name + n) &&
		    strlen(e->d_name + n) <= SHMRPC_NAME_MAX &&
		    (!domain || !strcmp(e->d_name + n, domain)))
			rc = one(s, e->d_name);
	closedir(dir);
	return rc;
}

void top__bridges_free(struct top_snap *s)
{
	uint32_t i;

	for (i = 0; i < s->nbridges; i++)
		free(s->bridges[i].rows);
	s->nbridges = 0;
}

static const char *kind_name(uint32_t k)
{
	return k == BR_STATUS_LOCAL ? "local" : k == BR_STATUS_REMOTE ? "remote" : "refused";
}

void top_bridges_text(FILE *f, const struct top_snap *s)
{
	const struct top_bridge *b;
	const struct top_brow *r;
	uint32_t i, k;

	for (i = 0; i < s->nbridges; i++) {
		b = &s->bridges[i];
		fprintf(f, "\nbridge %s  host %s  pid %u  %s  NATS %s  hosts %u  reconnects %llu",
			b->domain, b->host[0] ? b->host : "?", b->pid,
			b->live ? "live" : "not running", b->nats_up ? "up" : "down", b->hosts,
			(unsigned long long)b->reconnects);
		fprintf(f, "  malformed %llu  gone: lost %llu dropped %llu%s%s\n",
			(unsigned long long)b->bad_msgs, (unsigned long long)b->gone_lost,
			(unsigned long long)b->gone_dropped, b->why[0] ? "  problem: " : "",
			b->why);
		if (b->bcasts || b->bcast_split)
			fprintf(f,
				"  broadcasts published once %llu (for %llu copies), copies sent "
				"alone %llu\n",
				(unsigned long long)b->bcasts, (unsigned long long)b->bcast_sent,
				(unsigned long long)b->bcast_split);
		if (!b->nrows)
			continue;
		fprintf(f, "%-20s %-16s %-7s %10s %10s %8s %8s %8s %7s\n", "NODE", "LIVES ON",
			"KIND", "FWD", "DLV", "LOST", "DROPPED", "STALLS", "QUEUED");
		for (k = 0; k < b->nrows; k++) {
			r = &b->rows[k];
			fprintf(f, "%-20s %-16s %-7s %10llu %10llu %8llu %8llu %8llu %7llu\n",
				r->name, r->host, kind_name(r->kind),
				(unsigned long long)r->fwd_msgs, (unsigned long long)r->dlv_msgs,
				(unsigned long long)r->lost, (unsigned long long)r->dropped,
				(unsigned long long)r->stalls, (unsigned long long)r->queued);
		}
	}
}

void top_bridges_json(FILE *f, const struct top_snap *s)
{
	const struct top_bridge *b;
	const struct top_brow *r;
	uint32_t i, k;

	fprintf(f, "\"bridges\":[");
	for (i = 0; i < s->nbridges; i++) {
		b = &s->bridges[i];
		fprintf(f, "%s{\"domain\":", i ? "," : "");
		top_json_str(f, b->domain);
		fprintf(f, ",\"host\":");
		top_json_str(f, b->host);
		fprintf(f,
			",\"pid\":%u,\"live\":%s,\"nats_up\":%s,\"hosts\":%u,\"reconnects\":%llu,"
			"\"malformed\":%llu,\"gone_lost\":%llu,\"gone_dropped\":%llu,"
			"\"bcasts\":%llu,\"bcast_copies\":%llu,\"bcast_alone\":%llu,\"problem\":",
			b->pid, b->live ? "true" : "false", b->nats_up ? "true" : "false", b->hosts,
			(unsigned long long)b->reconnects, (unsigned long long)b->bad_msgs,
			(unsigned long long)b->gone_lost, (unsigned long long)b->gone_dropped,
			(unsigned long long)b->bcasts, (unsigned long long)b->bcast_sent,
			(unsigned long long)b->bcast_split);
		top_json_str(f, b->why);
		fprintf(f, ",\"nodes\":[");
		for (k = 0; k < b->nrows; k++) {
			r = &b->rows[k];
			fprintf(f, "%s{\"name\":", k ? "," : "");
			top_json_str(f, r->name);
			fprintf(f, ",\"lives_on\":");
			top_json_str(f, r->host);
			fprintf(f,
				",\"kind\":\"%s\",\"fwd\":%llu,\"dlv\":%llu,\"lost\":%llu,"
				"\"dropped\":%llu,\"stalls\":%llu,\"queued\":%llu}",
				kind_name(r->kind), (unsigned long long)r->fwd_msgs,
				(unsigned long long)r->dlv_msgs, (unsigned long long)r->lost,
				(unsigned long long)r->dropped, (unsigned long long)r->stalls,
				(unsigned long long)r->queued);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]");
}

void top_bridge_line(char *buf, size_t len, const struct top_bridge *b)
{
	uint64_t lost = b->gone_lost, dropped = b->gone_dropped;
	uint32_t k, here = 0, remote = 0;

	for (k = 0; k < b->nrows; k++) {
		lost += b->rows[k].lost;
		dropped += b->rows[k].dropped;
		remote += b->rows[k].kind == BR_STATUS_REMOTE;
		here += b->rows[k].kind != BR_STATUS_REMOTE;
	}
	snprintf(buf, len,
		 "bridge %s on %s: %s, NATS %s, hosts %u, nodes %u here %u remote, lost %llu "
		 "dropped %llu%s%s",
		 b->domain, b->host[0] ? b->host : "?", b->live ? "running" : "not running",
		 b->nats_up ? "up" : "down", b->hosts, here, remote, (unsigned long long)lost,
		 (unsigned long long)dropped, b->why[0] ? "  problem: " : "", b->why);
}
