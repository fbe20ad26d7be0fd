// SPDX-License-Identifier: MIT
/*
 * Fuzz the producer side of a ring (lib/ring.c) against a hostile consumer.
 *
 * As fuzz_ring_consumer, the ring is a heap buffer of exactly its size.
 * The script: a ring size, the indices at attach, then reserve / commit /
 * fits calls of the producer interleaved with the peer's stores to head
 * (the index it owns) and tail (ours, which it can write too), and with
 * records consumed by an honest consumer on the same ring.
 *
 * Checked: a reservation lies inside the data area and inside the room the
 * last head seen allowed (the producer never overwrites what the consumer
 * may still read), the buffer is written whole (ASan), commit publishes
 * exactly the producer's position. While nobody misbehaved (sane indices
 * at attach, no store by the peer) the honest consumer must receive every
 * committed record, in order, with its length and bytes.
 */
#include <errno.h>

#include "layout.h"
#include "ring.h"
#include "fuzz.h"

enum {
	OP_RESERVE,
	OP_COMMIT,
	OP_FITS,
	OP_HEAD,     /* peer: any head */
	OP_HEAD_SUB, /* peer: head = the producer's position - a little */
	OP_TAIL,     /* peer: the producer's own index */
	OP_CONSUME,  /* the honest consumer takes one record */
	OP_WRITE,    /* peer: bytes in the data area */
	OP_COUNT
};

#define SIZE_LOG_MIN 12
#define SIZE_LOGS 5
#define FIFO_MAX 4096 /* records in flight: at most 64 KiB / 8 B */

static uint8_t *bufs[SIZE_LOGS];

struct state {
	struct shmrpc__ring p, c;
	bool honest;
	/* reservation open: its length and payload byte */
	bool resv;
	uint32_t resv_len;
	uint8_t *resv_buf;
	uint8_t seq;
	/* committed, not yet consumed: length and byte of each */
	uint32_t fifo_len[FIFO_MAX];
	uint8_t fifo_byte[FIFO_MAX];
	uint32_t head, n;
};

static struct state S;

static void reserve(struct state *s, size_t len)
{
	uint64_t before = s->p.pos;
	void *buf;
	int rc;

	if (s->resv)
		return; /* one reservation at a time, as conn.c's lock ensures */
	rc = shmrpc__ring_reserve(&s->p, len, &buf);
	FUZZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EPROTO || rc == -EMSGSIZE);
	if (s->honest)
		FUZZ_CHECK(rc != -EPROTO);
	/* A record takes at most half the ring: it fits once the ring drained. */
	if (s->honest && !s->n && len <= shmrpc__ring_max_msg(s->p.size))
		FUZZ_CHECK(rc == 0);
	if (rc) {
		FUZZ_CHECK(s->p.pos == before);
		return;
	}
	FUZZ_CHECK(len <= shmrpc__ring_max_msg(s->p.size));
	FUZZ_CHECK((uint8_t *)buf ==
		   s->p.data + (s->p.pos & s->p.mask) + sizeof(struct shmrpc__rec));
	FUZZ_CHECK((s->p.pos & s->p.mask) + shmrpc__rec_bytes(len) <= s->p.size);
	/* Inside what the consumer freed, as far as the last head said. */
	FUZZ_CHECK(s->p.pos + shmrpc__rec_bytes(len) - s->p.cached <= s->p.size);
	FUZZ_CHECK(s->p.pos - before < s->p.size);
	s->seq++;
	memset(buf, s->seq, len);
	s->resv = true;
	s->resv_len = (uint32_t)len;
	s->resv_buf = buf;
}

static void commit(struct state *s, uint32_t shrink)
{
	uint32_t len;

	if (!s->resv)
		return;
	/* A commit may publish less than was reserved (shmrpc_commit). */
	len = s->resv_len - (shrink % (s->resv_len + 1));
	shmrpc__ring_commit(&s->p, len);
	FUZZ_CHECK(atomic_load(&s->p.hdr->tail) == s->p.pos);
	s->resv = false;
	if (s->honest) {
		FUZZ_CHECK(s->n < FIFO_MAX);
		s->fifo_len[(s->head + s->n) % FIFO_MAX] = len;
		s->fifo_byte[(s->head + s->n) % FIFO_MAX] = s->seq;
		s->n++;
	}
}

static void consume(struct state *s)
{
	const uint8_t *data;
	uint32_t len, i;
	int rc;

	rc = shmrpc__ring_peek(&s->c, (const void **)&data, &len);
	if (!s->honest)
		goto out;
	FUZZ_CHECK(rc == (s->n ? 1 : 0));
	if (rc != 1)
		return;
	FUZZ_CHECK(len == s->fifo_len[s->head]);
	for (i = 0; i < len; i++)
		FUZZ_CHECK(data[i] == s->fifo_byte[s->head]);
	s->head = (s->head + 1) % FIFO_MAX;
	s->n--;
out:
	if (rc == 1)
		shmrpc__ring_release(&s->c);
}

static void run(struct state *s, struct fz *f)
{
	struct shmrpc__ring_hdr *h = s->p.hdr;
	uint32_t v;

	while (fz_more(f)) {
		switch (fz_u8(f) % OP_COUNT) {
		case OP_RESERVE:
			v = fz_u16(f);
			/* now and then far too large, for -EMSGSIZE */
			reserve(s, v & 0x8000 ? (size_t)v << 8 : v % (s->p.size / 2));
			break;
		case OP_COMMIT:
			commit(s, fz_u8(f) & 0x80 ? fz_u16(f) : 0);
			break;
		case OP_FITS:
			v = fz_u16(f);
			/* fits() says yes to a reserve that then succeeds */
			if (shmrpc__ring_fits(&s->p, v) && s->honest && !s->resv &&
			    v <= shmrpc__ring_max_msg(s->p.size)) {
				reserve(s, v);
				FUZZ_CHECK(s->resv);
			}
			break;
		case OP_HEAD:
			atomic_store(&h->head, fz_u64(f));
			s->honest = false;
			break;
		case OP_HEAD_SUB:
			atomic_store(&h->head, s->p.pos - fz_u16(f));
			s->honest = false;
			break;
		case OP_TAIL:
			atomic_store(&h->tail, fz_u64(f));
			s->honest = false;
			break;
		case OP_CONSUME:
			if (!s->resv)
				consume(s);
			break;
		case OP_WRITE:
			fz_patch(f, s->p.data, s->p.size);
			s->honest = false;
			break;
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	unsigned k = fz_u8(&f) % SIZE_LOGS;
	uint32_t rsize = 1u << (SIZE_LOG_MIN + k);
	struct shmrpc__ring_hdr *h;
	uint64_t head, tail;

	if (!bufs[k]) {
		bufs[k] = aligned_alloc(SHMRPC__PAGE, SHMRPC__PAGE + rsize);
		if (!bufs[k])
			abort();
	}
	memset(bufs[k], 0, SHMRPC__PAGE + rsize);
	h = (struct shmrpc__ring_hdr *)bufs[k];
	head = fz_u64(&f);
	tail = fz_u64(&f);
	atomic_store(&h->head, head);
	atomic_store(&h->tail, tail);
	memset(&S, 0, sizeof(S));
	shmrpc__ring_attach(&S.p, bufs[k], SHMRPC__PAGE + rsize, true);
	shmrpc__ring_attach(&S.c, bufs[k], SHMRPC__PAGE + rsize, false);
	/* Sane indices: an empty ring at an aligned position. */
	S.honest = head == tail && !(head & (SHMRPC__REC_ALIGN - 1));
	run(&S, &f);
	return 0;
}
