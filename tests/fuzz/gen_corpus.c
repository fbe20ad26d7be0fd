// SPDX-License-Identifier: MIT
/*
 * Writes the seed corpora of the fuzz harnesses, tests/fuzz/corpus/<h>/:
 * a few valid and near-valid inputs each, in the input format its harness
 * describes at its top. `make fuzz-seeds` runs it; the files are in the
 * repository, so this only matters when a harness's format changes.
 * Usage: gen_corpus DIR (DIR/<harness>/<seed> files are overwritten).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layout.h"

static const char *out_dir;

struct buf {
	uint8_t b[8192];
	size_t n;
};

static void put(struct buf *s, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes && s->n < sizeof(s->b); i++)
		s->b[s->n++] = (uint8_t)(v >> (8 * i));
}

#define U8(s, v) put(s, v, 1)
#define U16(s, v) put(s, v, 2)
#define U32(s, v) put(s, v, 4)
#define U64(s, v) put(s, v, 8)

static void bytes(struct buf *s, const void *p, size_t n)
{
	if (n > sizeof(s->b) - s->n)
		n = sizeof(s->b) - s->n;
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

/* A length byte, then the string. */
static void str8(struct buf *s, const char *str)
{
	U8(s, strlen(str));
	bytes(s, str, strlen(str));
}

static void save(const char *harness, const char *seed, const struct buf *s)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, harness);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, harness, seed);
	f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* ------------------------------------------------------------ rings */

enum { C_PEEK, C_RELEASE, C_TAIL, C_TAIL_ADD, C_WRITE, C_REC, C_PRODUCE, C_HEAD, C_READY };

static void ring_consumer(void)
{
	struct buf s;

	s = (struct buf){ 0 }; /* empty ring */
	U8(&s, 0), U64(&s, 0), U64(&s, 0), U8(&s, C_PEEK), U8(&s, C_READY);
	save("ring_consumer", "empty", &s);

	s = (struct buf){ 0 }; /* three records, consumed */
	U8(&s, 1), U64(&s, 64), U64(&s, 64);
	U8(&s, C_PRODUCE), U16(&s, 10), U8(&s, C_PRODUCE), U16(&s, 100);
	U8(&s, C_PRODUCE), U16(&s, 0);
	for (int i = 0; i < 4; i++)
		U8(&s, C_PEEK), U8(&s, C_RELEASE);
	save("ring_consumer", "records", &s);

	s = (struct buf){ 0 }; /* a wrap record */
	U8(&s, 0), U64(&s, 4000), U64(&s, 4000);
	U8(&s, C_PRODUCE), U16(&s, 200), U8(&s, C_PEEK), U8(&s, C_RELEASE), U8(&s, C_PEEK);
	save("ring_consumer", "wrap", &s);

	s = (struct buf){ 0 }; /* a record header rewritten after publication */
	U8(&s, 0), U64(&s, 0), U64(&s, 0);
	U8(&s, C_PRODUCE), U16(&s, 16), U8(&s, C_REC), U16(&s, 0), U32(&s, 0x7fffffff), U32(&s, 0);
	U8(&s, C_PEEK), U8(&s, C_REC), U16(&s, 0), U32(&s, 0), U32(&s, 1), U8(&s, C_PEEK);
	save("ring_consumer", "bad-record", &s);

	s = (struct buf){ 0 }; /* tail beyond a ring, then unaligned */
	U8(&s, 2), U64(&s, 8), U64(&s, 8);
	U8(&s, C_TAIL_ADD), U16(&s, 20000), U8(&s, C_PEEK), U8(&s, C_TAIL), U64(&s, 13);
	U8(&s, C_PEEK), U8(&s, C_HEAD), U64(&s, 3), U8(&s, C_READY);
	save("ring_consumer", "bad-tail", &s);

	/* A consumer that takes marks (first byte's top bit; 32 KiB): a
	 * marked record, peeked twice, a plain one, then a BCAST header too
	 * short for its mark, published. */
	s = (struct buf){ 0 };
	U8(&s, 0x80), U64(&s, 0), U64(&s, 0);
	U8(&s, C_PRODUCE), U16(&s, 21), U8(&s, 1), U8(&s, C_PEEK), U8(&s, C_PEEK);
	U8(&s, C_RELEASE), U8(&s, C_PRODUCE), U16(&s, 5), U8(&s, 1), U8(&s, C_PEEK);
	U8(&s, C_RELEASE), U8(&s, C_REC), U16(&s, 6), U32(&s, 8), U32(&s, SHMRPC__REC_BCAST);
	U8(&s, C_TAIL_ADD), U16(&s, 16), U8(&s, C_PEEK);
	save("ring_consumer", "bcast-marks", &s);
}

enum { P_RESERVE, P_COMMIT, P_FITS, P_HEAD, P_HEAD_SUB, P_TAIL, P_CONSUME, P_WRITE };

static void ring_producer(void)
{
	struct buf s;
	int i;

	s = (struct buf){ 0 }; /* honest traffic */
	U8(&s, 0), U64(&s, 0), U64(&s, 0);
	U8(&s, P_RESERVE), U16(&s, 100), U8(&s, P_COMMIT), U8(&s, 0), U8(&s, P_CONSUME);
	U8(&s, P_RESERVE), U16(&s, 2000), U8(&s, P_COMMIT), U8(&s, 0);
	U8(&s, P_FITS), U16(&s, 1500), U8(&s, P_COMMIT), U8(&s, 0x80), U16(&s, 7);
	U8(&s, P_CONSUME), U8(&s, P_CONSUME), U8(&s, P_CONSUME);
	save("ring_producer", "honest", &s);

	s = (struct buf){ 0 }; /* wrap */
	U8(&s, 0), U64(&s, 4000), U64(&s, 4000);
	U8(&s, P_RESERVE), U16(&s, 100), U8(&s, P_COMMIT), U8(&s, 0), U8(&s, P_CONSUME);
	save("ring_producer", "wrap", &s);

	s = (struct buf){ 0 }; /* full, then drained */
	U8(&s, 0), U64(&s, 0), U64(&s, 0);
	for (i = 0; i < 6; i++)
		U8(&s, P_RESERVE), U16(&s, 1000), U8(&s, P_COMMIT), U8(&s, 0);
	for (i = 0; i < 6; i++)
		U8(&s, P_CONSUME);
	U8(&s, P_RESERVE), U16(&s, 2000), U8(&s, P_COMMIT), U8(&s, 0), U8(&s, P_CONSUME);
	save("ring_producer", "full", &s);

	s = (struct buf){ 0 }; /* a hostile head */
	U8(&s, 1), U64(&s, 0), U64(&s, 0);
	U8(&s, P_RESERVE), U16(&s, 10), U8(&s, P_COMMIT), U8(&s, 0);
	U8(&s, P_HEAD), U64(&s, UINT64_MAX), U8(&s, P_RESERVE), U16(&s, 10);
	U8(&s, P_HEAD_SUB), U16(&s, 9000), U8(&s, P_FITS), U16(&s, 8);
	U8(&s, P_HEAD), U64(&s, 4), U8(&s, P_RESERVE), U16(&s, 8000);
	save("ring_producer", "bad-head", &s);
}

static void ring_check(void)
{
	struct buf s;

	s = (struct buf){ 0 }; /* valid, 4 KiB */
	U8(&s, 1), U8(&s, 0);
	U32(&s, 0xabcd), U32(&s, 3), U32(&s, 7), U32(&s, 1), U32(&s, 2), U32(&s, 0), U32(&s, 99);
	save("ring_check", "valid", &s);

	s = (struct buf){ 0 }; /* valid but the sender name has no NUL */
	U8(&s, 1), U8(&s, 4);
	U32(&s, 1), U32(&s, 0), U32(&s, 1), U32(&s, 1), U32(&s, 1), U32(&s, 0), U32(&s, 1);
	U16(&s, 48), U8(&s, 64);
	for (int i = 0; i < 64; i++)
		U8(&s, 'x');
	save("ring_check", "name-unterminated", &s);

	s = (struct buf){ 0 }; /* the file's size differs from the header's */
	U8(&s, 1 | 4), U8(&s, 2), U64(&s, 4096 + 8192);
	U32(&s, 1), U32(&s, 0), U32(&s, 1), U32(&s, 1), U32(&s, 1), U32(&s, 0), U32(&s, 1);
	save("ring_check", "size-mismatch", &s);

	s = (struct buf){ 0 }; /* a size that is no power of two */
	U8(&s, 1 | 2), U32(&s, 12288);
	U32(&s, 1), U32(&s, 0), U32(&s, 1), U32(&s, 1), U32(&s, 1), U32(&s, 0), U32(&s, 1);
	save("ring_check", "size-odd", &s);
}

/* ------------------------------------------------------------ registry */

enum { RG_TEMPLATE = 1, RG_EXACT = 2, RG_LOCK = 4, RG_SWEEP = 8 };

static void reg_slot(struct buf *s, uint16_t i, uint8_t state, uint32_t gen, const char *name)
{
	U8(s, 1), U16(s, i), U8(s, strlen(name)), U8(s, state), U32(s, gen), U32(s, 1);
	bytes(s, name, strlen(name));
}

static void reg_hi(struct buf *s, uint32_t hi)
{
	U8(s, 0), U32(s, offsetof(struct shmrpc__reg_hdr, hi)), U8(s, 4), U32(s, hi);
}

static void registry(void)
{
	struct buf s;

	s = (struct buf){ 0 }; /* two live nodes */
	U8(&s, RG_TEMPLATE | RG_EXACT), U16(&s, 3), U32(&s, 0);
	reg_slot(&s, 0, 2, 1, "alpha"), reg_slot(&s, 1, 2, 5, "beta"), reg_hi(&s, 2);
	save("registry", "two-nodes", &s);

	s = (struct buf){ 0 }; /* the same, swept: no node files, so reclaimed */
	U8(&s, RG_TEMPLATE | RG_EXACT | RG_SWEEP), U16(&s, 3), U32(&s, 0);
	reg_slot(&s, 0, 2, 1, "alpha"), reg_slot(&s, 2, 1, 5, "joining"), reg_hi(&s, 3);
	save("registry", "sweep", &s);

	s = (struct buf){ 0 }; /* a joiner died holding the lock */
	U8(&s, RG_TEMPLATE | RG_EXACT | RG_LOCK), U16(&s, 7), U32(&s, 0);
	reg_slot(&s, 3, 1, 2, "x"), reg_hi(&s, 4);
	U8(&s, 0), U32(&s, offsetof(struct shmrpc__reg_hdr, joining)), U8(&s, 4), U32(&s, 4);
	save("registry", "joining-note", &s);

	s = (struct buf){ 0 }; /* garbage names, hi past the capacity */
	U8(&s, RG_TEMPLATE | RG_EXACT), U16(&s, 1), U32(&s, 0);
	reg_slot(&s, 0, 2, 1, "bad/name"), reg_slot(&s, 1, 2, 1, ".dot"), reg_hi(&s, 1000);
	save("registry", "bad-names", &s);

	s = (struct buf){ 0 }; /* a truncated file */
	U8(&s, RG_TEMPLATE), U16(&s, 63), U32(&s, 300);
	save("registry", "truncated", &s);

	s = (struct buf){ 0 }; /* a mode with bits for others */
	U8(&s, RG_TEMPLATE | RG_EXACT), U16(&s, 0), U32(&s, 0);
	U8(&s, 0), U32(&s, offsetof(struct shmrpc__reg_hdr, mode)), U8(&s, 4), U32(&s, 0666);
	save("registry", "bad-mode", &s);
}

/* ------------------------------------------------------------ node */

enum {
	N_SEG_PATCH,
	N_ANNOUNCE,
	N_RING_FILE,
	N_SLOT,
	N_RECV,
	N_PEEK,
	N_SCAN,
	N_FILE_POKE,
	N_DEAD_NODE,
	N_CONNECT,
	N_SEND,
	N_QUERY,
	N_REG_PATCH
};

/* A valid ring from (s, g) to rx, with @n honest records; announced. */
static void n_ring(struct buf *b, uint8_t flags, uint8_t s, uint32_t g, uint32_t prev, int n)
{
	U8(b, N_RING_FILE), U8(b, flags), U8(b, s), U32(b, g), U32(b, prev), U8(b, 0);
	if (flags & 1) {
		U8(b, n);
		for (int i = 0; i < n; i++)
			U16(b, 24 * i);
	}
	U8(b, 0); /* no patches */
}

/* A node image: template, table entries (which: bit 0 in/out), no patches. */
static void n_image(struct buf *b, int entries, const uint8_t *which, const uint32_t *val)
{
	U8(b, entries);
	for (int i = 0; i < entries; i++)
		U8(b, which[i]), U32(b, val[i]);
	U8(b, 0);
}

static void node(void)
{
	struct buf s;

	/* rx is slot 0, gen 1, in the harness's fresh domain */
	s = (struct buf){ 0 }; /* a sender's ring, received */
	n_ring(&s, 1 | 4, 3, 7, 0, 3);
	U8(&s, N_RECV), U8(&s, 1), U8(&s, N_RECV), U8(&s, 1), U8(&s, N_PEEK), U8(&s, 0);
	U8(&s, N_RECV), U8(&s, 0), U8(&s, 8), U8(&s, N_RECV), U8(&s, 1);
	save("node", "receive", &s);

	s = (struct buf){ 0 }; /* a chain of rings from one slot (prev_gen) */
	n_ring(&s, 1, 2, 3, 0, 1), n_ring(&s, 1, 2, 5, 4, 1), n_ring(&s, 1 | 4, 2, 9, 6, 2);
	U8(&s, N_SCAN), U8(&s, N_RECV), U8(&s, 1), U8(&s, N_RECV), U8(&s, 1);
	U8(&s, N_RECV), U8(&s, 1), U8(&s, N_QUERY);
	save("node", "chain", &s);

	s = (struct buf){ 0 }; /* an open ring rewritten by its sender */
	n_ring(&s, 1 | 4, 1, 1, 0, 2);
	U8(&s, N_SCAN), U8(&s, N_FILE_POKE), U8(&s, 0),
		U32(&s, offsetof(struct shmrpc__ring_hdr, tail));
	U8(&s, 8), U64(&s, 12345), U8(&s, N_RECV), U8(&s, 1), U8(&s, N_PEEK), U8(&s, 0);
	save("node", "ring-poked", &s);

	s = (struct buf){ 0 }; /* a peek held while its sender garbles the ring */
	n_ring(&s, 1 | 4, 1, 1, 0, 2);
	U8(&s, N_PEEK), U8(&s, 1);
	U8(&s, N_FILE_POKE), U8(&s, 0), U32(&s, SHMRPC__PAGE + 24 + 8); /* record 2 */
	U8(&s, 8), U32(&s, 0x7fffffff), U32(&s, 0);
	U8(&s, N_PEEK), U8(&s, 0), U8(&s, N_RECV), U8(&s, 1), U8(&s, N_PEEK), U8(&s, 0);
	U8(&s, N_FILE_POKE), U8(&s, 0), U32(&s, offsetof(struct shmrpc__ring_hdr, tail));
	U8(&s, 8), U64(&s, 3), U8(&s, N_RECV), U8(&s, 1), U8(&s, N_PEEK), U8(&s, 2);
	U8(&s, N_RECV), U8(&s, 1);
	save("node", "held-peek", &s);

	s = (struct buf){ 0 }; /* a dead node with rings both ways, reclaimed */
	{
		/* its ring to rx (out_gen[0] = 2), and one to it from slot 5 */
		const uint8_t which[] = { 0 << 1 | 0, 5 << 1 | 1 };
		const uint32_t val[] = { 2, 3 };

		n_ring(&s, 1 | 4, 4, 9, 0, 1);
		U8(&s, N_RING_FILE), U8(&s, 1 | 8), U8(&s, 5), U32(&s, 2), U32(&s, 0), U8(&s, 0);
		U8(&s, 4), U32(&s, 9), U8(&s, 0), U8(&s, 0);
		U8(&s, N_DEAD_NODE), U8(&s, 1), U8(&s, 4), U32(&s, 9);
		n_image(&s, 2, which, val);
		U8(&s, N_RECV), U8(&s, 1), U8(&s, N_RECV), U8(&s, 1);
	}
	save("node", "dead-node", &s);

	s = (struct buf){ 0 }; /* a live peer "p", sent to */
	{
		const uint8_t which[] = { 1 << 1 | 1 };
		const uint32_t val[] = { 0 };

		U8(&s, N_CONNECT), U8(&s, 1), U8(&s, 6), U32(&s, 4), U8(&s, 0);
		n_image(&s, 1, which, val);
		U16(&s, 100);
		U8(&s, N_SEND), U8(&s, 0), U16(&s, 3000), U8(&s, N_SEND), U8(&s, 1);
		/* files but rx's: tx's node, p's node, the ring tx -> p */
		U8(&s, N_FILE_POKE), U8(&s, 2), U32(&s, offsetof(struct shmrpc__ring_hdr, head));
		U8(&s, 8), U64(&s, 77), U8(&s, N_SEND), U8(&s, 0), U16(&s, 10);
	}
	save("node", "connect", &s);

	s = (struct buf){ 0 }; /* registry slots, a garbage pend bitmap */
	U8(&s, N_SLOT), U8(&s, 2), U8(&s, 2), U32(&s, 1), str8(&s, "other");
	U8(&s, N_SLOT), U8(&s, 3), U8(&s, 2), U32(&s, 1), str8(&s, "bad name");
	U8(&s, N_ANNOUNCE), U8(&s, 40), U32(&s, 5), U8(&s, 1);
	U8(&s, N_SEG_PATCH), U16(&s, 4096), U8(&s, 8), U64(&s, UINT64_MAX);
	U8(&s, N_SCAN), U8(&s, N_QUERY), U8(&s, N_RECV), U8(&s, 1);
	save("node", "slots", &s);
}

/* ------------------------------------------------------------ top */

enum { T_REG, T_NODE, T_RING, T_RAW, T_SCAN };

static void t_slot(struct buf *b, uint8_t i, uint8_t state, uint32_t gen, const char *name)
{
	U8(b, i), U8(b, state), U32(b, gen), U32(b, 1), U64(b, 1000), U8(b, 1), str8(b, name);
}

static void t_node(struct buf *b, uint8_t flags, uint8_t slot, uint32_t gen, const char *name)
{
	U8(b, T_NODE), U8(b, flags), U8(b, slot), U32(b, gen);
	if (flags & 1) {
		U8(b, 0), str8(b, name), U8(b, 16), U64(b, 5), U64(b, 6);
	}
	U8(b, 0);
}

static void t_ring(struct buf *b, uint8_t flags, uint32_t tx, uint32_t txg, uint32_t rx,
		   uint32_t rxg, uint64_t msgs)
{
	U8(b, T_RING), U8(b, flags), U8(b, 0);
	U8(b, tx), U32(b, txg), U8(b, rx), U32(b, rxg);
	if (flags & 1) {
		U64(b, 64), U64(b, 128);
		U64(b, msgs), U64(b, msgs * 64), U64(b, 1), U64(b, 2), U64(b, 3);
		U64(b, msgs / 2), U64(b, msgs * 32), U64(b, 4);
		U32(b, 0x80000001u), U32(b, 0), U32(b, 4);
	}
	U8(b, 0);
}

static void top(void)
{
	struct buf s;

	s = (struct buf){ 0 }; /* a healthy domain, two refreshes */
	U8(&s, 1);
	U8(&s, T_REG), U8(&s, 1), U8(&s, 3), U32(&s, 1), U64(&s, 1), U8(&s, 3);
	t_slot(&s, 0, 2, 1, "a"), t_slot(&s, 1, 2, 1, "b"), t_slot(&s, 2, 1, 1, "c");
	U8(&s, 0);
	t_node(&s, 1 | 16, 0, 1, "a"), t_node(&s, 1, 1, 1, "b");
	t_ring(&s, 1, 0, 1, 1, 1, 10), t_ring(&s, 1, 1, 1, 0, 1, 3);
	U8(&s, T_SCAN);
	t_ring(&s, 1, 0, 1, 1, 1, 1000);
	save("top", "domain", &s);

	s = (struct buf){ 0 }; /* broken files: sizes, names, magic */
	U8(&s, 0x80 | 3);
	U8(&s, T_REG), U8(&s, 1 | 2), U8(&s, 3), U32(&s, 0), U64(&s, 0), U8(&s, 1);
	t_slot(&s, 0, 2, 1, "a\x1b[2J"), U8(&s, 0), U16(&s, 700);
	t_node(&s, 0, 0, 1, "a");
	U8(&s, T_RING), U8(&s, 1 | 2), U8(&s, 0), U8(&s, 0), U32(&s, 1), U8(&s, 1), U32(&s, 1);
	U64(&s, 1024), U64(&s, 8); /* tail behind head */
	for (int i = 0; i < 8; i++)
		U64(&s, 0);
	U32(&s, 0), U32(&s, 0), U32(&s, 0), U8(&s, 0), U16(&s, 100);
	U8(&s, T_RAW), U8(&s, 0), str8(&s, "fz.zzzzzzzz.ring.1.2-3.4"), U8(&s, 0), U16(&s, 8192);
	U8(&s, T_RAW), U8(&s, 0), str8(&s, "x\".reg"), U8(&s, 0), U16(&s, 0);
	save("top", "broken", &s);

	s = (struct buf){ 0 }; /* another domain, nodes with holes */
	U8(&s, 0x40);
	U8(&s, T_RAW), U8(&s, 0), str8(&s, "other.reg"), U8(&s, 1), U16(&s, 0), U8(&s, 8);
	U64(&s, SHMRPC__REG_MAGIC), U8(&s, 0), U16(&s, 8448);
	U8(&s, T_REG), U8(&s, 1), U8(&s, 15), U32(&s, 0), U64(&s, 0), U8(&s, 1);
	t_slot(&s, 9, 2, 3, "n"), U8(&s, 0);
	U8(&s, T_NODE), U8(&s, 2), U8(&s, 9), U32(&s, 3), U8(&s, 0), U16(&s, 12288);
	save("top", "holes", &s);
}

/* ------------------------------------------------------------ bridge_wire */

/* shmrpc-bridge's messages, written out by hand from the format at the top
 * of tools/bridge/wire.c (and the entries' in tools/bridge/bridge.h), not
 * with wire.c's encoders: this file builds without libnats' headers. */
enum {
	W_SYNC = 2,
	W_GRANT,
	W_JOIN,
	W_LEAVE,
	W_DEATH,
	W_HB,
	W_BYE,
	W_SNAPREQ,
	W_SNAP,
	W_BATCH,
	W_BCAST
};
enum { E_MSG, E_REQ, E_REPLY, E_CANCEL };

static void w_hdr(struct buf *b, uint8_t type, const char *host, const char *name, uint64_t seq,
		  uint64_t aux)
{
	/* version 3 for a BCAST, 2 for the rest (tools/bridge/wire.c) */
	U8(b, 'S'), U8(b, type == W_BCAST ? 3 : 2), U8(b, type), U8(b, strlen(host)),
		U8(b, strlen(name));
	U8(b, 0), U8(b, 0), U8(b, 0);
	U64(b, 0x1122334455667788ull), U64(b, 5), U64(b, 9), U64(b, seq), U64(b, aux);
	bytes(b, host, strlen(host));
	bytes(b, name, strlen(name));
}

/* A batch entry's head: kind, sender, payload length (the kind's fields
 * and the payload follow). */
static void w_ent(struct buf *b, uint8_t kind, const char *from, const char *payload)
{
	U8(b, kind), str8(b, from), U32(b, strlen(payload));
}

static void w_claim(struct buf *b, uint64_t inc, uint64_t join_ns, uint32_t max_msg,
		    const char *name)
{
	U64(b, inc), U64(b, join_ns), U32(b, max_msg), str8(b, name);
}

static void bridge_wire(void)
{
	struct buf s;

	s = (struct buf){ 0 }; /* one entry of each kind */
	w_hdr(&s, W_BATCH, "host-a", "rx_1", 1, 4);
	w_ent(&s, E_MSG, "tx", "hello"), bytes(&s, "hello", 5);
	w_ent(&s, E_REQ, "cli.1", "req"), U64(&s, 7), U64(&s, 250000), bytes(&s, "req", 3);
	w_ent(&s, E_REPLY, "srv", "rep"), U64(&s, 7), U32(&s, (uint32_t)-110), U32(&s, 1);
	bytes(&s, "rep", 3);
	w_ent(&s, E_CANCEL, "cli.1", ""), U64(&s, 7);
	save("bridge_wire", "batch", &s);

	s = (struct buf){ 0 }; /* a last entry cut short: the rest is garbage */
	w_hdr(&s, W_BATCH, "h", "rx", 10, 2);
	w_ent(&s, E_REPLY, "srv", ""), U64(&s, 3), U32(&s, 0), U32(&s, 0);
	w_ent(&s, E_MSG, "tx", "longer"), bytes(&s, "lon", 3);
	save("bridge_wire", "batch-cut", &s);

	s = (struct buf){ 0 }; /* two claims, the last chunk */
	w_hdr(&s, W_SNAP, "host-b", "", 3, 1ull << 63);
	w_claim(&s, 2, 1700000000000000000ull, 65536, "svc.kv");
	w_claim(&s, 8, 1700000000500000000ull, 4096, "worker_7");
	save("bridge_wire", "snap", &s);

	s = (struct buf){ 0 }; /* a broadcast once: payload, two hosts' targets */
	w_hdr(&s, W_BCAST, "host-a", "tx", 77, 3);
	U32(&s, 5), bytes(&s, "hello", 5);
	str8(&s, "host-b"), U32(&s, 2);
	str8(&s, "rx_1"), U64(&s, 4), U64(&s, 9), U64(&s, 31);
	str8(&s, "rx.2"), U64(&s, 6), U64(&s, 9), U64(&s, 1);
	str8(&s, "host-c"), U32(&s, 1);
	str8(&s, "svc"), U64(&s, 2), U64(&s, 3), U64(&s, 12);
	save("bridge_wire", "bcast", &s);

	s = (struct buf){ 0 };
	w_hdr(&s, W_JOIN, "host-a", "svc.kv", 12, 1700000000000000000ull);
	U32(&s, 65536);
	save("bridge_wire", "join", &s);

	s = (struct buf){ 0 };
	w_hdr(&s, W_HB, "host-a", "", 12, 0);
	save("bridge_wire", "hb", &s);

	s = (struct buf){ 0 };
	w_hdr(&s, W_GRANT, "host-b", "rx_1", 40, 4096);
	save("bridge_wire", "grant", &s);

	s = (struct buf){ 0 };
	w_hdr(&s, W_SYNC, "host-a", "rx_1", 41, 0);
	save("bridge_wire", "sync", &s);

	s = (struct buf){ 0 };
	w_hdr(&s, W_SNAPREQ, "host-c", "", 0, 0);
	save("bridge_wire", "snapreq", &s);

	s = (struct buf){ 0 }; /* a subject: its last token is an escaped name */
	bytes(&s, "shmrpc.d_5f1.n.svc_2ekv_5f2", 27);
	save("bridge_wire", "subject", &s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	ring_consumer();
	ring_producer();
	ring_check();
	registry();
	node();
	top();
	bridge_wire();
	return 0;
}
