/* SPDX-License-Identifier: MIT */
/*
 * The single-producer single-consumer ring of variable-length records
 * (ring.c has the protocol and its barriers).
 */
#ifndef SHMRPC_RING_H
#define SHMRPC_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "seg.h"

/* One side's process-local view of a ring. */
struct shmrpc__ring {
	struct shmrpc__ring_hdr *hdr;
	uint8_t *data;
	uint64_t map_size;
	uint32_t size, mask;
	uint64_t pos;	     /* producer: next tail; consumer: next head */
	uint64_t cached;     /* producer: last head seen; consumer: last tail seen */
	uint64_t peek_end;   /* consumer: pos after the peeked record, 0 if none */
	uint32_t peek_len;   /* consumer: its length, as checked */
	uint32_t peek_flags; /* consumer: its flags (REQ, CANCEL, BCAST), as checked */
	/* consumer, a BCAST record peeked: its mark, copied once and checked */
	uint64_t peek_bcast;
	uint32_t peek_copies;
	/* consumer: BCAST records are accepted (a message ring of a node that
	 * takes marks: set after attach, inbound.c); else they are -EPROTO */
	bool bcast_ok;
};

/* Bytes a record of @len payload bytes takes: header and padding. */
static inline uint32_t shmrpc__rec_bytes(size_t len)
{
	return (uint32_t)(sizeof(struct shmrpc__rec) +
			  ((len + SHMRPC__REC_ALIGN - 1) & ~(size_t)(SHMRPC__REC_ALIGN - 1)));
}

/* A ring capacity we make or accept: a power of two in [RING_MIN, RING_MAX]. */
static inline bool shmrpc__ring_size_ok(uint64_t size)
{
	return size >= SHMRPC__RING_MIN && size <= SHMRPC__RING_MAX && !(size & (size - 1));
}

/* Map the ring file at @path, any capacity we accept (shmrpc__ring_check
 * then checks its header against the size). */
static inline int shmrpc__ring_seg_open(const char *path, uint32_t mode, void **map, uint64_t *size)
{
	return shmrpc__seg_open(path, SHMRPC__PAGE + SHMRPC__RING_MIN,
				SHMRPC__PAGE + (uint64_t)SHMRPC__RING_MAX, mode, false, map, size,
				NULL);
}

/* Largest payload of a ring of @size bytes: a record takes at most half. */
static inline uint32_t shmrpc__ring_max_msg(uint32_t size)
{
	return size / 2 - (uint32_t)sizeof(struct shmrpc__rec);
}

/*
 * A ring's prev_gen link (connect.c), if it is one to follow: gen + 1 of an
 * OLDER holder of the sender's slot, whose gen is smaller. Links only go
 * back in time, so walking a chain ends without a count limit, even on a
 * hostile one; in practice at the first ring that no longer exists. (A
 * fixed limit lost every ring beyond it: a slow receiver and a sender that
 * joins, sends and leaves again and again make chains of any length.)
 */
static inline uint32_t shmrpc__prev_link(uint32_t prev, uint32_t gen)
{
	return prev && prev - 1 < gen ? prev : 0;
}

/* What a ring's header says of its ends, written by its creator. */
struct shmrpc__ring_ids {
	uint32_t nonce, tx_slot, tx_gen, rx_slot, rx_gen;
	uint32_t prev_gen;
	int32_t tx_pid;
	const char *tx_name;
	int kind; /* enum shmrpc__kind: which magic */
};
/* The creator: the constant header of a fresh (zero-filled) ring file. */
void shmrpc__ring_format(struct shmrpc__ring_hdr *h, uint32_t size,
			 const struct shmrpc__ring_ids *ids);
/* Validate a mapped ring against what the opener expects; -EPROTO. */
int shmrpc__ring_check(const struct shmrpc__ring_hdr *h, uint64_t map_size,
		       const struct shmrpc__ring_ids *ids);
/* Our view @q of the mapped (and checked) ring, as its producer or consumer. */
void shmrpc__ring_attach(struct shmrpc__ring *q, void *map, uint64_t map_size, bool producer);
/* Producer: room for @len bytes at *buf: 0, -EAGAIN (full), -EMSGSIZE,
 * -EPROTO (a head that cannot be). */
int shmrpc__ring_reserve(struct shmrpc__ring *q, size_t len, void **buf);
/* Producer: publish the reserved record, @len bytes of it. */
void shmrpc__ring_commit(struct shmrpc__ring *q, size_t len);
/* The same, the record marked with @flags (SHMRPC__REC_REQ, _CANCEL). */
void shmrpc__ring_commit_flags(struct shmrpc__ring *q, size_t len, uint32_t flags);
/* Producer, a batch: the reserved record complete (@len bytes) but not
 * published yet; the next reserve goes after it. ring_publish then
 * publishes every record put since the last publish, with one tail store. */
void shmrpc__ring_put(struct shmrpc__ring *q, size_t len);
void shmrpc__ring_put_flags(struct shmrpc__ring *q, size_t len, uint32_t flags);
void shmrpc__ring_publish(struct shmrpc__ring *q);
/* Consumer: the next record (*data, *len, its flags in q->peek_flags):
 * 1, 0 (empty), -EPROTO. A BCAST record (only with q->bcast_ok) comes
 * without its mark: *data and *len are the message's, the mark is in
 * q->peek_bcast and q->peek_copies (q->peek_len stays the record's). */
int shmrpc__ring_peek(struct shmrpc__ring *q, const void **data, uint32_t *len);
/* Consumer, read-only: the record at *@pos, a position at or after the
 * head (the peeked record's end, q->peek_end, to look past it), up to the
 * tail published now: 1 (*data, *len, *flags; *pos moves past it), 0 (none
 * published there yet), -EPROTO. A BCAST record is checked as ring_peek
 * checks it, and returned whole (mark included). Consumes nothing, changes
 * nothing: a look ahead (lib/rpc_serve.c, for the cancels queued behind a
 * request). */
int shmrpc__ring_look(struct shmrpc__ring *q, uint64_t *pos, const void **data, uint32_t *len,
		      uint32_t *flags);
/* Consumer: done with the peeked record; its bytes go back to the producer. */
void shmrpc__ring_release(struct shmrpc__ring *q);
/* Consumer, a batch: done with the peeked record (the next peek looks past
 * it), its bytes kept from the producer until ring_give_back, which hands
 * back every record taken since the last one, with one head store. */
void shmrpc__ring_take(struct shmrpc__ring *q);
void shmrpc__ring_give_back(struct shmrpc__ring *q);
/* Consumer: anything published beyond what it consumed? (one acquire load) */
bool shmrpc__ring_ready(const struct shmrpc__ring *q);
/* Producer: would a record of @len bytes fit now? */
bool shmrpc__ring_fits(struct shmrpc__ring *q, size_t len);

#endif /* SHMRPC_RING_H */
