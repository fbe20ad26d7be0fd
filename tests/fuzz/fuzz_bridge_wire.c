// SPDX-License-Identifier: MIT
/*
 * Fuzz what shmrpc-bridge accepts from NATS (tools/bridge/wire.c): any host
 * on the NATS account may publish anything, and wire.c is where it is
 * checked before any other file of the bridge sees it.
 *
 * Input: one NATS message, exactly as the bridge gets it from libnats (a
 * heap object of exactly its size: ASan sees a read past its end). It goes
 * to br_wire_get; if that accepts it, its body is walked as the bridge
 * walks it: a BATCH's entries with br_ent_get (dlv.c), a SNAP's with
 * br_snap_get (remote.c), until the walk fails or the body ends. Besides,
 * the input up to its first NUL is taken as a subject and its last token
 * (after the last '.', as dlv.c's target_ok takes it) goes to br_unesc.
 *
 * Checked: an accepted header has valid names and a body inside the
 * input, and br_wire_put of it decodes to the same fields and the same
 * bytes (but the reserved ones); each entry's name is valid, its data and
 * length lie inside the body and end where the next entry starts, a
 * REPLY's status is 0 or -errno (-4095..-1) and its flags only
 * SHMRPC_REPLY_MORE, re-encoding the entry's head gives its bytes back;
 * the walk always advances, a failure leaves the position where it was,
 * and a SNAP walk ends exactly at the body's end or fails; a token that
 * br_unesc accepts is a valid name that br_esc turns back into the token.
 */
#include <errno.h>
#include <limits.h>

#include "bridge.h"
#include "fuzz.h"

/* The smallest entries: kind, name length, 1 name byte, u32 length; a
 * snapshot entry's 21 fixed bytes and 1 name byte. */
#define ENT_MIN 7
#define SNAP_MIN 22

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

/* Touch every byte of [p, p + n): ASan reports any outside the input.
 * Summed into a global, so that the compiler keeps the reads. */
unsigned fuzz_bridge_wire_sum;

static void sum(const unsigned char *p, size_t n)
{
	while (n--)
		fuzz_bridge_wire_sum += *p++;
}

static void check_hdr(const uint8_t *data, int len, const struct br_hdr *h)
{
	unsigned char buf[BR_WIRE_MAX];
	struct br_hdr h2;
	const char *why = NULL;
	uint32_t n;

	FUZZ_CHECK(h->type >= BR_DATA && h->type <= BR_BCAST);
	FUZZ_CHECK(strlen(h->host) == h->host_len && br_name_ok(h->host));
	FUZZ_CHECK(strlen(h->name) == h->name_len && (!h->name_len || br_name_ok(h->name)));
	FUZZ_CHECK(h->body == data + BR_WIRE_FIXED + h->host_len + h->name_len);
	FUZZ_CHECK(h->body + h->body_len == data + len);
	sum(h->body, h->body_len);

	/* Encoded again: the same bytes (5..7 are reserved: the decoder does
	 * not look at them; the version is 3 for a BCAST and 2 for the rest,
	 * where 3 is read too), which decode to the same header. */
	FUZZ_CHECK(data[1] == 3 || (data[1] == 2 && h->type != BR_BCAST));
	n = br_wire_put(h, buf);
	FUZZ_CHECK(n == (uint32_t)(BR_WIRE_FIXED + h->host_len + h->name_len));
	FUZZ_CHECK(buf[1] == (h->type == BR_BCAST ? 3 : 2));
	FUZZ_CHECK(buf[0] == data[0] && !memcmp(buf + 2, data + 2, 3) &&
		   !memcmp(buf + 8, data + 8, n - 8));
	FUZZ_CHECK(br_wire_get(buf, (int)n, &h2, &why) == 0);
	FUZZ_CHECK(h2.type == h->type && h2.host_len == h->host_len && h2.name_len == h->name_len &&
		   h2.epoch == h->epoch && h2.stream == h->stream && h2.inc == h->inc &&
		   h2.seq == h->seq && h2.aux == h->aux);
	FUZZ_CHECK(!strcmp(h2.host, h->host) && !strcmp(h2.name, h->name));
	FUZZ_CHECK(h2.body == buf + n && h2.body_len == 0);
}

static void check_ent(const unsigned char *at, const unsigned char *next, const unsigned char *end,
		      const struct br_ent *e)
{
	unsigned char head[BR_BATCH_ENTRY];
	uint32_t hl;

	FUZZ_CHECK(next > at && next <= end);
	FUZZ_CHECK(e->kind < BR_ENT_KINDS && br_name_ok(e->from));
	FUZZ_CHECK(e->data > at && e->data <= next && e->len == (size_t)(next - e->data));
	sum(e->data, e->len);
	if (e->kind == BR_ENT_REPLY)
		FUZZ_CHECK(e->status <= 0 && e->status >= -4095 &&
			   !(e->flags & ~(uint32_t)SHMRPC_REPLY_MORE));
	else
		FUZZ_CHECK(!e->status && !e->flags);
	if (e->kind != BR_ENT_REQ)
		FUZZ_CHECK(!e->tmo_us);
	if (e->kind == BR_ENT_MSG)
		FUZZ_CHECK(!e->id);

	/* The head encoded again: its bytes (a REPLY's flags: the bits the
	 * decoder keeps). */
	hl = br_ent_put(head, e);
	FUZZ_CHECK(hl <= sizeof(head) && e->data == at + hl);
	if (e->kind == BR_ENT_REPLY) {
		FUZZ_CHECK(!memcmp(head, at, hl - 4));
		FUZZ_CHECK((head[hl - 4] & SHMRPC_REPLY_MORE) == (at[hl - 4] & SHMRPC_REPLY_MORE));
	} else {
		FUZZ_CHECK(!memcmp(head, at, hl));
	}
}

/* A BATCH body, as dlv.c's batch() reads it (without its count: to the end). */
static void walk_batch(const struct br_hdr *h)
{
	const unsigned char *p = h->body, *end = h->body + h->body_len, *at;
	uint32_t count = 0;
	struct br_ent e;
	int rc;

	while (p != end) {
		at = p;
		rc = br_ent_get(&p, end, &e);
		if (rc != 1) {
			FUZZ_CHECK(rc == -EPROTO && p == at);
			break;
		}
		check_ent(at, p, end, &e);
		FUZZ_CHECK(++count <= h->body_len / ENT_MIN);
	}
}

/* A SNAP body, as remote.c's on_snapshot() reads it. */
static void walk_snap(const struct br_hdr *h)
{
	const unsigned char *p = h->body, *end = h->body + h->body_len, *at = p;
	unsigned char again[32 + BR_NAME];
	uint32_t count = 0, n;
	struct br_claim c;
	int rc;

	while ((rc = br_snap_get(&p, end, &c)) > 0) {
		FUZZ_CHECK(rc == 1 && p > at && p <= end);
		FUZZ_CHECK(br_name_ok(c.name));
		n = br_snap_put(again, &c);
		FUZZ_CHECK(n == (size_t)(p - at) && !memcmp(again, at, n));
		FUZZ_CHECK(++count <= h->body_len / SNAP_MIN);
		at = p;
	}
	FUZZ_CHECK(p == at && (rc == 0 ? p == end : rc == -EPROTO));
}

/* A BCAST body, as dlv.c's br_dlv_bcast() reads it; each target encoded
 * again gives its bytes. */
static void walk_bcast(const struct br_hdr *h)
{
	unsigned char again[BR_BC_GROUP_MAX + BR_BC_TARGET_MAX];
	const unsigned char *data, *at;
	struct br_bc_iter it;
	struct br_bt t;
	uint32_t len, count = 0, n;
	int rc;

	if (br_bc_get_payload(h, &data, &len, &it))
		return;
	FUZZ_CHECK(data == h->body + 4 && (uint64_t)len + 4 <= h->body_len);
	sum(data, len);
	for (;;) {
		at = it.p;
		n = it.left;
		rc = br_bc_next(&it, &t);
		if (rc != 1) {
			FUZZ_CHECK(rc == 0 ? it.p == it.end : rc == -EPROTO);
			break;
		}
		FUZZ_CHECK(br_name_ok(t.host) && br_name_ok(t.name));
		FUZZ_CHECK(it.p > at && it.p <= it.end);
		if (n) { /* no group head on the way: the target alone */
			FUZZ_CHECK(br_bc_put_target(again, t.name, t.inc, t.stream, t.seq) ==
				   (uint32_t)(it.p - at));
			FUZZ_CHECK(!memcmp(again, at, (size_t)(it.p - at)));
		}
		FUZZ_CHECK(++count <= h->body_len / 26);
	}
}

/* The last token of the input's first string, as a subject's. */
static void check_token(const uint8_t *data, size_t size)
{
	char *subj = malloc(size + 1), *tok, out[BR_NAME], esc[BR_ESC];

	FUZZ_CHECK(subj != NULL);
	memcpy(subj, data, size);
	subj[size] = '\0';
	tok = strrchr(subj, '.');
	tok = tok ? tok + 1 : subj;
	if (br_unesc(tok, out) == 0) {
		FUZZ_CHECK(br_name_ok(out));
		br_esc(out, esc);
		FUZZ_CHECK(!strcmp(esc, tok));
	}
	free(subj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct br_hdr h;
	const char *why = NULL;

	check_token(data, size);
	if (size > INT_MAX)
		return 0; /* libnats' lengths are ints */
	if (br_wire_get(data, (int)size, &h, &why)) {
		FUZZ_CHECK(why != NULL);
		return 0;
	}
	check_hdr(data, (int)size, &h);
	if (h.type == BR_BATCH)
		walk_batch(&h);
	else if (h.type == BR_SNAP)
		walk_snap(&h);
	else if (h.type == BR_BCAST)
		walk_bcast(&h);
	return 0;
}
