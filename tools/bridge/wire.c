// SPDX-License-Identifier: MIT
/*
 * What travels over NATS, and nothing else: the header every bridge
 * message starts with, snapshot entries, and node names as subject tokens.
 * Everything received is checked here before any other file sees it: a
 * host on the same NATS account could send anything (docs/cross-host.md).
 *
 *	offset  size
 *	 0      1    magic 'S'
 *	 1      1    version: 3 for a BCAST, 2 for every other type (0.2.1's
 *	             bridges read those, and we read theirs; version 1's
 *	             are refused and counted malformed, and it refuses ours)
 *	 2      1    type (enum br_type)
 *	 3      1    host_len (1..63)
 *	 4      1    name_len (0..63)
 *	 5      3    zero
 *	 8      8    epoch       all integers little-endian
 *	16      8    stream
 *	24      8    inc
 *	32      8    seq
 *	40      8    aux
 *	48      host_len bytes, name_len bytes, then the body
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "bridge.h"

#define MAGIC 'S'
/* 2: batch entries have kinds (requests, replies); 3: BCAST, which only
 * bridges that say they read it are sent (BR_FEAT_BCAST): every other type
 * keeps version 2, so that bridges of 0.2.1 and later work together (a
 * rolling upgrade of a cluster does not split it) */
#define VERSION 2
#define VERSION_BCAST 3

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

int br_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return i >= 1 && i <= SHMRPC_NAME_MAX && s[0] != '.';
}

/* A name of len bytes off the wire: valid, and no NUL among its bytes (else
 * the rest of it would be silently cut off at the NUL). */
static int wire_name_ok(const char *s, size_t len)
{
	return strlen(s) == len && br_name_ok(s);
}

uint32_t br_wire_put(const struct br_hdr *h, unsigned char *buf)
{
	size_t hl = strlen(h->host), nl = strlen(h->name);

	buf[0] = MAGIC;
	buf[1] = h->type == BR_BCAST ? VERSION_BCAST : VERSION;
	buf[2] = h->type;
	buf[3] = (uint8_t)hl;
	buf[4] = (uint8_t)nl;
	buf[5] = buf[6] = buf[7] = 0;
	put64(buf + 8, h->epoch);
	put64(buf + 16, h->stream);
	put64(buf + 24, h->inc);
	put64(buf + 32, h->seq);
	put64(buf + 40, h->aux);
	memcpy(buf + BR_WIRE_FIXED, h->host, hl);
	memcpy(buf + BR_WIRE_FIXED + hl, h->name, nl);
	return (uint32_t)(BR_WIRE_FIXED + hl + nl);
}

static int bad(const char **why, const char *what)
{
	*why = what;
	return -EPROTO;
}

int br_wire_get(const void *data, int len, struct br_hdr *h, const char **why)
{
	const unsigned char *p = data;

	if (len < BR_WIRE_FIXED)
		return bad(why, "shorter than a header");
	if (p[0] != MAGIC || (p[1] != VERSION && p[1] != VERSION_BCAST))
		return bad(why, "not a bridge message of version 2 or 3");
	h->type = p[2];
	if (h->type == BR_BCAST && p[1] != VERSION_BCAST)
		return bad(why, "a BCAST of version 2");
	h->host_len = p[3];
	h->name_len = p[4];
	if (h->type < BR_DATA || h->type > BR_BCAST)
		return bad(why, "unknown type");
	if (!h->host_len || h->host_len > SHMRPC_NAME_MAX || h->name_len > SHMRPC_NAME_MAX ||
	    BR_WIRE_FIXED + h->host_len + h->name_len > len)
		return bad(why, "name lengths out of bounds");
	h->epoch = get64(p + 8);
	h->stream = get64(p + 16);
	h->inc = get64(p + 24);
	h->seq = get64(p + 32);
	h->aux = get64(p + 40);
	memcpy(h->host, p + BR_WIRE_FIXED, h->host_len);
	h->host[h->host_len] = '\0';
	memcpy(h->name, p + BR_WIRE_FIXED + h->host_len, h->name_len);
	h->name[h->name_len] = '\0';
	if (!wire_name_ok(h->host, h->host_len) ||
	    (h->name_len && !wire_name_ok(h->name, h->name_len)))
		return bad(why, "a name with bytes outside [A-Za-z0-9._-]");
	h->body = p + BR_WIRE_FIXED + h->host_len + h->name_len;
	h->body_len = (uint32_t)(len - (BR_WIRE_FIXED + h->host_len + h->name_len));
	return 0;
}

/*
 * Subject tokens. NATS splits subjects at '.', and names may hold dots:
 * '.' becomes "_2e" and '_' becomes "_5f" (so that '_' always starts an
 * escape and the mapping is one-to-one); letters, digits and '-' stay.
 */
void br_esc(const char *name, char *out)
{
	for (; *name; name++) {
		if (*name == '.' || *name == '_') {
			*out++ = '_';
			*out++ = *name == '.' ? '2' : '5';
			*out++ = *name == '.' ? 'e' : 'f';
		} else {
			*out++ = *name;
		}
	}
	*out = '\0';
}

int br_unesc(const char *tok, char *out)
{
	size_t n = 0;

	for (; *tok && n < SHMRPC_NAME_MAX; n++) {
		if (*tok != '_') {
			out[n] = *tok++;
		} else if (!strncmp(tok, "_2e", 3) || !strncmp(tok, "_5f", 3)) {
			out[n] = tok[1] == '2' ? '.' : '_';
			tok += 3;
		} else {
			return -EINVAL;
		}
	}
	out[n] = '\0';
	return *tok || !br_name_ok(out) ? -EINVAL : 0;
}

static const uint8_t ent_fixed[BR_ENT_KINDS] = { 0, 16, 16, 8 };

uint32_t br_ent_put(unsigned char *p, const struct br_ent *e)
{
	size_t fl = strlen(e->from);
	uint32_t v = htole32(e->len);
	unsigned char *q;

	p[0] = e->kind;
	p[1] = (uint8_t)fl;
	memcpy(p + 2, e->from, fl);
	memcpy(p + 2 + fl, &v, 4);
	q = p + 6 + fl;
	if (e->kind != BR_ENT_MSG)
		put64(q, e->id);
	if (e->kind == BR_ENT_REQ)
		put64(q + 8, e->tmo_us);
	if (e->kind == BR_ENT_REPLY) {
		v = htole32((uint32_t)e->status);
		memcpy(q + 8, &v, 4);
		v = htole32(e->flags);
		memcpy(q + 12, &v, 4);
	}
	return (uint32_t)(6 + fl + ent_fixed[e->kind]);
}

int br_ent_get(const unsigned char **p, const unsigned char *end, struct br_ent *e)
{
	const unsigned char *q = *p;
	uint32_t v, fix;

	if (end - q < 6 || q[0] >= BR_ENT_KINDS || !q[1] || q[1] > SHMRPC_NAME_MAX ||
	    end - q < 6 + q[1] + ent_fixed[q[0]])
		return -EPROTO;
	e->kind = q[0];
	fix = ent_fixed[e->kind];
	memcpy(e->from, q + 2, q[1]);
	e->from[q[1]] = '\0';
	memcpy(&v, q + 2 + q[1], 4);
	e->len = le32toh(v);
	q += 6 + q[1];
	if (!wire_name_ok(e->from, (*p)[1]) || (uint64_t)(end - q) < fix + (uint64_t)e->len)
		return -EPROTO;
	e->id = fix ? get64(q) : 0;
	e->tmo_us = e->kind == BR_ENT_REQ ? get64(q + 8) : 0;
	e->status = 0;
	e->flags = 0;
	if (e->kind == BR_ENT_REPLY) {
		memcpy(&v, q + 8, 4);
		e->status = (int32_t)le32toh(v);
		memcpy(&v, q + 12, 4);
		e->flags = le32toh(v) & SHMRPC_REPLY_MORE;
		if (e->status > 0 || e->status < -4095)
			return -EPROTO;
	}
	e->data = q + fix;
	*p = q + fix + e->len;
	return 1;
}

/* A snapshot entry: inc, join time, max_msg, name length, name. */
#define SNAP_FIXED 21

uint32_t br_snap_put(unsigned char *p, const struct br_claim *c)
{
	size_t nl = strlen(c->name);
	uint32_t m = htole32(c->max_msg);

	put64(p, c->inc);
	put64(p + 8, (uint64_t)c->join_ns);
	memcpy(p + 16, &m, 4);
	p[20] = (uint8_t)nl;
	memcpy(p + SNAP_FIXED, c->name, nl);
	return (uint32_t)(SNAP_FIXED + nl);
}

/* 1 and the entry, 0 at the end, -EPROTO for garbage. */
int br_snap_get(const unsigned char **p, const unsigned char *end, struct br_claim *c)
{
	const unsigned char *q = *p;
	uint32_t m;

	if (q == end)
		return 0;
	if (end - q < SNAP_FIXED || q[20] == 0 || q[20] > SHMRPC_NAME_MAX ||
	    end - q < SNAP_FIXED + q[20])
		return -EPROTO;
	c->inc = get64(q);
	c->join_ns = (int64_t)get64(q + 8);
	memcpy(&m, q + 16, 4);
	c->max_msg = le32toh(m);
	memcpy(c->name, q + SNAP_FIXED, q[20]);
	c->name[q[20]] = '\0';
	if (!wire_name_ok(c->name, q[20]))
		return -EPROTO;
	*p = q + SNAP_FIXED + q[20];
	return 1;
}

/*
 * A BCAST's body: u32 payload length, the payload, then one group per
 * host: u8 host length, the host, u32 count, and count targets: u8 name
 * length, the name, u64 inc, u64 stream, u64 seq (the entry the copy is on
 * that node's stream from the sending host).
 */
uint32_t br_bc_put_payload(unsigned char *p, const void *data, uint32_t len)
{
	uint32_t v = htole32(len);

	memcpy(p, &v, 4);
	memcpy(p + 4, data, len);
	return 4 + len;
}

uint32_t br_bc_put_group(unsigned char *p, const char *host, uint32_t n)
{
	size_t hl = strlen(host);
	uint32_t v = htole32(n);

	p[0] = (uint8_t)hl;
	memcpy(p + 1, host, hl);
	memcpy(p + 1 + hl, &v, 4);
	return (uint32_t)(5 + hl);
}

uint32_t br_bc_put_target(unsigned char *p, const char *name, uint64_t inc, uint64_t stream,
			  uint64_t seq)
{
	size_t nl = strlen(name);

	p[0] = (uint8_t)nl;
	memcpy(p + 1, name, nl);
	put64(p + 1 + nl, inc);
	put64(p + 9 + nl, stream);
	put64(p + 17 + nl, seq);
	return (uint32_t)(25 + nl);
}

int br_bc_get_payload(const struct br_hdr *h, const unsigned char **data, uint32_t *len,
		      struct br_bc_iter *it)
{
	const unsigned char *p = h->body, *end = h->body + h->body_len;
	uint32_t v;

	if (end - p < 4)
		return -EPROTO;
	memcpy(&v, p, 4);
	*len = le32toh(v);
	if ((uint64_t)(end - p - 4) < *len)
		return -EPROTO;
	*data = p + 4;
	it->p = p + 4 + *len;
	it->end = end;
	it->left = 0;
	it->host[0] = '\0';
	return 0;
}

/* A name of the wire: u8 length, then its bytes; into out. */
static int get_name(const unsigned char **p, const unsigned char *end, char *out, size_t fixed)
{
	const unsigned char *q = *p;

	if (end - q < 1 || !q[0] || q[0] > SHMRPC_NAME_MAX || (size_t)(end - q) < 1 + q[0] + fixed)
		return -EPROTO;
	memcpy(out, q + 1, q[0]);
	out[q[0]] = '\0';
	if (!wire_name_ok(out, q[0]))
		return -EPROTO;
	*p = q + 1 + q[0];
	return 0;
}

int br_bc_next(struct br_bc_iter *it, struct br_bt *t)
{
	uint32_t v;

	while (!it->left) {
		if (it->p == it->end)
			return 0;
		if (get_name(&it->p, it->end, it->host, 4))
			return -EPROTO;
		memcpy(&v, it->p, 4);
		it->left = le32toh(v);
		it->p += 4;
	}
	if (get_name(&it->p, it->end, t->name, 24))
		return -EPROTO;
	memcpy(t->host, it->host, sizeof(t->host));
	t->inc = get64(it->p);
	t->stream = get64(it->p + 8);
	t->seq = get64(it->p + 16);
	it->p += 24;
	it->left--;
	return 1;
}
