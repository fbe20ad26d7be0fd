// SPDX-License-Identifier: MIT
/*
 * Single-producer single-consumer byte ring of variable-length records.
 *
 * `tail` and `head` count bytes ever written and consumed (64-bit, never
 * wrap); the offset in the data area is pos & mask. A record is an 8-byte
 * header {len, flags} and the payload padded to 8 bytes, always contiguous:
 * when it does not fit before the end of the data area, a WRAP record fills
 * the rest and the record starts at offset 0. A record takes at most half
 * the ring, so it always fits once the ring drains, wherever the indices
 * stand. Each side keeps its own index and a cached copy of the other's in
 * process-local memory (struct shmrpc__ring), and reads the shared copy only
 * when the cached one says full (producer) or empty (consumer).
 *
 *   producer                                consumer
 *   LOAD  ->head (A, acquire, pairs with D) LOAD  ->tail (C, acquire, pairs with B)
 *   STORE record                            LOAD  record
 *   STORE ->tail (B, release)               STORE ->head (D, release)
 *
 * A waits for D so the producer never overwrites bytes the consumer is
 * still reading; C waits for B so the consumer never reads a record before
 * its bytes are in place. Sleeping and waking ride on top (lib/wake.c).
 *
 * The consumer trusts nothing it reads: the published tail must lie within
 * one ring of head, every header must describe a record that lies inside
 * the data area and inside what was published, and the header is copied to
 * a local before it is checked, so a hostile producer rewriting it
 * meanwhile changes nothing. A record peeked again before its release must
 * read as it did (the caller holds a view of it). A violation is -EPROTO,
 * never a wild access. A BCAST record (a broadcast copy and its mark,
 * layout.h) is accepted only where the consumer says so (q->bcast_ok: a
 * message ring of a node that takes marks), -EPROTO elsewhere; its mark
 * is copied and checked like the header, and peek hands out the message
 * without it.
 * The producer checks head the same way. Each side's own index is read from
 * the file once, at attach (the peer could have planted it): it must be
 * 8-byte aligned, which both sides check whenever they load the other's.
 */
#include <errno.h>
#include <string.h>

#include "ring.h"
#include "layout.h"
#include "names.h"

void shmrpc__ring_format(struct shmrpc__ring_hdr *h, uint32_t size,
			 const struct shmrpc__ring_ids *ids)
{
	/* The file is fresh (zero-filled); only the constant line is set.
	 * Whoever opens it learns of it through the announce (release). */
	h->abi = SHMRPC__ABI;
	h->hdr_size = SHMRPC__PAGE;
	h->size = size;
	h->nonce = ids->nonce;
	h->tx_slot = ids->tx_slot;
	h->tx_gen = ids->tx_gen;
	h->rx_slot = ids->rx_slot;
	h->rx_gen = ids->rx_gen;
	h->tx_pid = ids->tx_pid;
	h->prev_gen = ids->prev_gen;
	strncpy(h->tx_name, ids->tx_name, sizeof(h->tx_name) - 1);
	h->magic = shmrpc__ring_magic(ids->kind);
}

int shmrpc__ring_check(const struct shmrpc__ring_hdr *h, uint64_t map_size,
		       const struct shmrpc__ring_ids *ids)
{
	uint32_t size = h->size;

	if (h->magic != shmrpc__ring_magic(ids->kind) || h->abi != SHMRPC__ABI ||
	    h->hdr_size != SHMRPC__PAGE || !shmrpc__ring_size_ok(size) ||
	    map_size != (uint64_t)SHMRPC__PAGE + size)
		return -EPROTO;
	if (h->nonce != ids->nonce || h->tx_slot != ids->tx_slot || h->tx_gen != ids->tx_gen ||
	    h->rx_slot != ids->rx_slot || h->rx_gen != ids->rx_gen)
		return -EPROTO;
	return shmrpc__name_check_field(h->tx_name, sizeof(h->tx_name));
}

void shmrpc__ring_attach(struct shmrpc__ring *q, void *map, uint64_t map_size, bool producer)
{
	struct shmrpc__ring_hdr *h = map;

	memset(q, 0, sizeof(*q));
	q->hdr = h;
	q->data = (uint8_t *)map + SHMRPC__PAGE;
	q->map_size = map_size;
	q->size = (uint32_t)(map_size - SHMRPC__PAGE); /* checked == h->size */
	q->mask = q->size - 1;
	/* Relaxed: our own index; only we write it. */
	q->pos = atomic_load_explicit(producer ? &h->tail : &h->head, memory_order_relaxed);
	/* Pretend full (producer) or empty (consumer), so that the first use
	 * loads the peer's index through the checked path. */
	q->cached = producer ? q->pos - q->size : q->pos;
}

/* Producer: free bytes from our point of view, refreshing head if needed. */
static int ring_room(struct shmrpc__ring *q, uint64_t need)
{
	uint64_t head;

	if (q->pos + need - q->cached <= q->size)
		return 0;
	/* (A) Acquire: pairs with the consumer's release of head (D). */
	head = atomic_load_explicit(&q->hdr->head, memory_order_acquire);
	/* Head ahead of tail, lagging past a ring, or unaligned; our own pos
	 * came from the file at attach, so it is checked too (an unaligned one
	 * would put a header across the end of the data area). A bad head is
	 * never cached: every later call reloads it and fails again. */
	if (q->pos - head > q->size || ((head | q->pos) & (SHMRPC__REC_ALIGN - 1)))
		return -EPROTO;
	q->cached = head;
	return q->pos + need - q->cached <= q->size ? 0 : -EAGAIN;
}

int shmrpc__ring_reserve(struct shmrpc__ring *q, size_t len, void **buf)
{
	uint32_t rec, off, contig;
	uint64_t need;
	int err;

	if (len > shmrpc__ring_max_msg(q->size))
		return -EMSGSIZE;
	rec = shmrpc__rec_bytes(len);
	off = (uint32_t)(q->pos & q->mask);
	contig = q->size - off;
	need = rec <= contig ? rec : (uint64_t)contig + rec;
	err = ring_room(q, need);
	if (err)
		return err;
	if (rec > contig) {
		struct shmrpc__rec wrap = { 0, SHMRPC__REC_WRAP };

		/* Published together with the record, by the commit's (B). */
		memcpy(q->data + off, &wrap, sizeof(wrap));
		q->pos += contig;
		off = 0;
	}
	*buf = q->data + off + sizeof(struct shmrpc__rec);
	return 0;
}

void shmrpc__ring_put_flags(struct shmrpc__ring *q, size_t len, uint32_t flags)
{
	struct shmrpc__rec rec = { (uint32_t)len, flags };

	memcpy(q->data + (q->pos & q->mask), &rec, sizeof(rec));
	q->pos += shmrpc__rec_bytes(len);
}

void shmrpc__ring_put(struct shmrpc__ring *q, size_t len)
{
	shmrpc__ring_put_flags(q, len, 0);
}

void shmrpc__ring_publish(struct shmrpc__ring *q)
{
	/* (B) Release: pairs with the consumer's acquire of tail (C); the
	 * records' bytes are visible before the tail that covers them. */
	atomic_store_explicit(&q->hdr->tail, q->pos, memory_order_release);
}

void shmrpc__ring_commit(struct shmrpc__ring *q, size_t len)
{
	shmrpc__ring_put(q, len);
	shmrpc__ring_publish(q);
}

void shmrpc__ring_commit_flags(struct shmrpc__ring *q, size_t len, uint32_t flags)
{
	shmrpc__ring_put_flags(q, len, flags);
	shmrpc__ring_publish(q);
}

bool shmrpc__ring_fits(struct shmrpc__ring *q, size_t len)
{
	uint32_t rec = shmrpc__rec_bytes(len), contig = q->size - (uint32_t)(q->pos & q->mask);

	return ring_room(q, rec <= contig ? rec : (uint64_t)contig + rec) != -EAGAIN;
}

bool shmrpc__ring_ready(const struct shmrpc__ring *q)
{
	if (q->pos != q->cached)
		return true;
	/* Acquire: pairs with (B), like (C). */
	return atomic_load_explicit(&q->hdr->tail, memory_order_acquire) != q->pos;
}

/* Consumer: make sure something is published beyond pos. 1, 0 or -EPROTO. */
static int ring_fill(struct shmrpc__ring *q)
{
	uint64_t tail, avail;

	if (q->pos != q->cached)
		return 1;
	/* (C) Acquire: pairs with the producer's release of tail (B). */
	tail = atomic_load_explicit(&q->hdr->tail, memory_order_acquire);
	avail = tail - q->pos;
	/* Our pos came from the file at attach: unaligned, a header read at
	 * it could straddle the end of the data area. A bad tail is never
	 * cached, so asking again fails again instead of trusting it. */
	if (avail > q->size || ((tail | q->pos) & (SHMRPC__REC_ALIGN - 1)))
		return -EPROTO;
	q->cached = tail;
	return avail != 0;
}

/*
 * A record header, copied to a local, at data offset @off with @avail bytes
 * published from there: one we accept? At most one of REQ and CANCEL: what
 * they mean is the receive path's to check (lib/rpc_serve.c), against the
 * record's length. BCAST only where marks are taken (q->bcast_ok), and
 * long enough for its mark.
 */
static bool rec_ok(const struct shmrpc__ring *q, const struct shmrpc__rec *rec, uint32_t off,
		   uint64_t avail)
{
	uint32_t bytes;

	if (rec->flags != 0 && rec->flags != SHMRPC__REC_REQ && rec->flags != SHMRPC__REC_CANCEL &&
	    (rec->flags != SHMRPC__REC_BCAST || !q->bcast_ok ||
	     rec->len < sizeof(struct shmrpc__bcast_rec)))
		return false;
	if (rec->len > shmrpc__ring_max_msg(q->size))
		return false;
	bytes = shmrpc__rec_bytes(rec->len);
	return off + bytes <= q->size && bytes <= avail;
}

/* The mark of the BCAST record at @off (rec_ok checked its length), copied
 * once to @m: 0, or -EPROTO (a number 0, which no broadcast has, or its
 * zero word set). */
static int mark_read(const struct shmrpc__ring *q, uint32_t off, struct shmrpc__bcast_rec *m)
{
	memcpy(m, q->data + off + sizeof(struct shmrpc__rec), sizeof(*m));
	return m->id && !m->zero ? 0 : -EPROTO;
}

int shmrpc__ring_peek(struct shmrpc__ring *q, const void **data, uint32_t *len)
{
	struct shmrpc__bcast_rec m = { 0 };
	struct shmrpc__rec rec;
	uint32_t off, bytes, mark;
	int rc;

	for (;;) {
		rc = ring_fill(q);
		if (rc <= 0)
			return rc;
		off = (uint32_t)(q->pos & q->mask);
		memcpy(&rec, q->data + off, sizeof(rec)); /* one copy, then trust it */
		if (rec.flags != SHMRPC__REC_WRAP)
			break;
		/* A record peeked (not released) is no wrap: it was rewritten. */
		if (q->peek_end)
			return -EPROTO;
		bytes = q->size - off;
		if (rec.len != 0 || bytes > q->cached - q->pos)
			return -EPROTO;
		q->pos += bytes; /* head follows at the next release */
	}
	if (!rec_ok(q, &rec, off, q->cached - q->pos))
		return -EPROTO;
	bytes = shmrpc__rec_bytes(rec.len);
	mark = rec.flags == SHMRPC__REC_BCAST ? sizeof(m) : 0;
	if (mark && mark_read(q, off, &m))
		return -EPROTO;
	/* Peeked before and not released: the same record, or the producer
	 * rewrote what it had published (and the caller's view of it). */
	if (q->peek_end && (rec.len != q->peek_len || rec.flags != q->peek_flags ||
			    (mark && (m.id != q->peek_bcast || m.copies != q->peek_copies))))
		return -EPROTO;
	*data = q->data + off + sizeof(rec) + mark;
	*len = rec.len - mark;
	q->peek_flags = rec.flags;
	q->peek_end = q->pos + bytes;
	q->peek_len = rec.len;
	q->peek_bcast = mark ? m.id : 0;
	q->peek_copies = mark ? m.copies : 0;
	return 1;
}

void shmrpc__ring_take(struct shmrpc__ring *q)
{
	q->pos = q->peek_end;
	q->peek_end = 0;
}

void shmrpc__ring_give_back(struct shmrpc__ring *q)
{
	/* (D) Release: pairs with the producer's acquire of head (A); we are
	 * done reading the records before the producer may reuse their bytes. */
	atomic_store_explicit(&q->hdr->head, q->pos, memory_order_release);
}

int shmrpc__ring_look(struct shmrpc__ring *q, uint64_t *pos, const void **data, uint32_t *len,
		      uint32_t *flags)
{
	struct shmrpc__bcast_rec m;
	struct shmrpc__rec rec;
	uint64_t tail;
	uint32_t off, bytes;

	/* Acquire: pairs with the producer's release of tail (B), as (C). */
	tail = atomic_load_explicit(&q->hdr->tail, memory_order_acquire);
	if (tail - q->pos > q->size || ((tail | *pos) & (SHMRPC__REC_ALIGN - 1)) ||
	    *pos - q->pos > tail - q->pos)
		return -EPROTO;
	for (;;) {
		if (*pos == tail)
			return 0;
		off = (uint32_t)(*pos & q->mask);
		memcpy(&rec, q->data + off, sizeof(rec)); /* one copy, then trust it */
		if (rec.flags != SHMRPC__REC_WRAP)
			break;
		bytes = q->size - off;
		if (rec.len != 0 || bytes > tail - *pos)
			return -EPROTO;
		*pos += bytes;
	}
	if (!rec_ok(q, &rec, off, tail - *pos) ||
	    (rec.flags == SHMRPC__REC_BCAST && mark_read(q, off, &m)))
		return -EPROTO;
	bytes = shmrpc__rec_bytes(rec.len);
	*data = q->data + off + sizeof(rec);
	*len = rec.len;
	*flags = rec.flags;
	*pos += bytes;
	return 1;
}

void shmrpc__ring_release(struct shmrpc__ring *q)
{
	shmrpc__ring_take(q);
	shmrpc__ring_give_back(q);
}
