// SPDX-License-Identifier: MIT
/*
 * Fuzz the consumer side of a ring (lib/ring.c) against a hostile producer.
 *
 * The ring lives in a heap buffer of exactly one header page plus the data
 * area, so AddressSanitizer catches any access outside it. The input is a
 * script: a ring size and the indices found in the file at attach, then
 * operations until the input ends. The consumer's calls (peek, release,
 * ready) alternate with the peer's stores to anything it can write (tail,
 * head, record headers, payload) and with records published by an honest
 * producer on the same ring (so that valid traffic, wraps included, is
 * easy to reach and then to corrupt).
 *
 * Checked after every successful peek: the record lies inside the data
 * area and inside what the consumer saw published, the payload pointer is
 * where the record is, and every payload byte is read (ASan would see a
 * read outside the buffer). A peek repeated before the release describes
 * the same record, or says -EPROTO.
 *
 * The first byte's top bit says whether the consumer takes broadcast marks
 * (q.bcast_ok, a message ring of a node opened with
 * SHMRPC_OPEN_BCAST_MARKS): then BCAST records are accepted when whole,
 * peek hands out the message after the mark, and the honest producer
 * publishes marked records too (a byte per record says which).
 */
#include <errno.h>

#include "layout.h"
#include "ring.h"
#include "fuzz.h"

enum {
	OP_PEEK,
	OP_RELEASE,
	OP_TAIL,     /* peer: any tail */
	OP_TAIL_ADD, /* peer: tail = what the consumer saw + a little */
	OP_WRITE,    /* peer: bytes anywhere in the data area */
	OP_REC,	     /* peer: a record header at an aligned offset */
	OP_PRODUCE,  /* an honest producer publishes a record */
	OP_HEAD,     /* peer: the consumer's own index */
	OP_READY,
	OP_COUNT
};

#define SIZE_LOG_MIN 12 /* SHMRPC__RING_MIN */
#define SIZE_LOGS 5	/* 4 KiB .. 64 KiB: beyond, the same arithmetic */

static uint8_t *bufs[SIZE_LOGS];
static volatile uint8_t sink;

static void read_all(const uint8_t *p, uint32_t len)
{
	uint8_t x = 0;
	uint32_t i;

	for (i = 0; i < len; i++)
		x ^= p[i];
	sink = x;
}

static void check_peek(const struct shmrpc__ring *q, const void *data, uint32_t len)
{
	uint32_t off = (uint32_t)(q->pos & q->mask), mark = 0;

	if (q->peek_flags == SHMRPC__REC_BCAST) {
		/* only where marks are taken; a whole mark, not numbered 0 */
		FUZZ_CHECK(q->bcast_ok);
		FUZZ_CHECK(q->peek_bcast != 0);
		mark = sizeof(struct shmrpc__bcast_rec);
	} else {
		FUZZ_CHECK(q->peek_bcast == 0 && q->peek_copies == 0);
	}
	FUZZ_CHECK(q->peek_len == len + mark);
	len += mark; /* the record, from here on */
	data = (const uint8_t *)data - mark;
	FUZZ_CHECK(len <= shmrpc__ring_max_msg(q->size));
	FUZZ_CHECK((const uint8_t *)data == q->data + off + sizeof(struct shmrpc__rec));
	FUZZ_CHECK(off + shmrpc__rec_bytes(len) <= q->size);
	FUZZ_CHECK(q->peek_end - q->pos == shmrpc__rec_bytes(len));
	FUZZ_CHECK(q->cached - q->pos <= q->size);
	FUZZ_CHECK(q->peek_end - q->pos <= q->cached - q->pos);
	read_all(data, len);
}

static void produce(struct shmrpc__ring *p, bool ok, bool marks, struct fz *f)
{
	uint32_t len = fz_u16(f) % (shmrpc__ring_max_msg(p->size) + 1);
	struct shmrpc__bcast_rec m = { 0, 2, 0 };
	bool marked = marks && (fz_u8(f) & 1) && len >= sizeof(m);
	static uint64_t id;
	void *buf;

	if (ok && !shmrpc__ring_reserve(p, len, &buf)) {
		memset(buf, 0xa5, len);
		if (marked) {
			m.id = ++id;
			memcpy(buf, &m, sizeof(m));
		}
		shmrpc__ring_commit_flags(p, len, marked ? SHMRPC__REC_BCAST : 0);
	}
}

static void run(struct shmrpc__ring *q, struct shmrpc__ring *p, bool prod_ok, struct fz *f)
{
	struct shmrpc__ring_hdr *h = q->hdr;
	const void *data, *held_data = NULL;
	bool held = false;
	uint32_t len, held_len = 0;
	uint64_t held_bcast = 0;
	uint64_t off;
	int rc;

	while (fz_more(f)) {
		switch (fz_u8(f) % OP_COUNT) {
		case OP_PEEK:
			rc = shmrpc__ring_peek(q, &data, &len);
			FUZZ_CHECK(rc == 1 || rc == 0 || rc == -EPROTO);
			/* Peeking again before the release describes the same
			 * record, or finds that the producer rewrote it. */
			if (held) {
				FUZZ_CHECK(rc == -EPROTO ||
					   (rc == 1 && data == held_data && len == held_len &&
					    q->peek_bcast == held_bcast));
				break; /* held until released, either way */
			}
			held = rc == 1;
			if (held)
				check_peek(q, data, len);
			held_data = data;
			held_len = len;
			held_bcast = q->peek_bcast;
			break;
		case OP_RELEASE:
			if (held) {
				shmrpc__ring_release(q);
				FUZZ_CHECK(atomic_load(&h->head) == q->pos);
				FUZZ_CHECK(!(q->pos & (SHMRPC__REC_ALIGN - 1)));
			}
			held = false;
			break;
		case OP_TAIL:
			atomic_store(&h->tail, fz_u64(f));
			break;
		case OP_TAIL_ADD:
			atomic_store(&h->tail, q->cached + fz_u16(f));
			break;
		case OP_WRITE:
			fz_patch(f, q->data, q->size);
			break;
		case OP_REC:
			off = (fz_u16(f) * SHMRPC__REC_ALIGN) & q->mask;
			fz_bytes(f, q->data + off, sizeof(struct shmrpc__rec));
			break;
		case OP_PRODUCE:
			produce(p, prod_ok, q->bcast_ok, f);
			break;
		case OP_HEAD:
			atomic_store(&h->head, fz_u64(f));
			break;
		case OP_READY:
			shmrpc__ring_ready(q);
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
	uint8_t first = fz_u8(&f);
	unsigned k = first % SIZE_LOGS;
	uint32_t rsize = 1u << (SIZE_LOG_MIN + k);
	struct shmrpc__ring q, p;
	struct shmrpc__ring_hdr *h;
	uint64_t head, tail;
	bool prod_ok;

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
	shmrpc__ring_attach(&q, bufs[k], SHMRPC__PAGE + rsize, false);
	shmrpc__ring_attach(&p, bufs[k], SHMRPC__PAGE + rsize, true);
	FUZZ_CHECK(q.pos == head && q.size == rsize && q.data == bufs[k] + SHMRPC__PAGE);
	q.bcast_ok = first & 0x80;
	/* The honest producer needs sane indices to start from (it trusts
	 * its own, as the library's producer trusts the ring it created). */
	prod_ok = tail - head <= rsize && !((head | tail) & (SHMRPC__REC_ALIGN - 1));
	run(&q, &p, prod_ok, &f);
	return 0;
}
