/* SPDX-License-Identifier: MIT */
/*
 * A minimal SPSC byte ring in MAP_SHARED memory, one per direction, used by
 * the spin, futex and eventfd baselines. They differ only in how a side
 * waits: spinning on the index (no waiter), or sleeping on a sequence word
 * and being woken by the other side (struct ring_waiter). See ring.c for
 * the protocol.
 */
#ifndef SHMRPC_BENCH_RING_H
#define SHMRPC_BENCH_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/* Sequence words: bit 31 = "the waiting side is (about to be) asleep",
 * bits 0..30 count wakes. Clearing bit 31 alone already makes a late
 * FUTEX_WAIT fail its compare (ring_wake.pml checks both variants); the
 * count costs nothing and shows in a debugger how many wakes happened. */
#define RING_W_SLEEP 0x80000000u
#define RING_W_SEQ 0x7fffffffu

enum ring_kind { RING_DATA = 0, RING_SPACE = 1 };

/* One direction. Each cache line has one writer. */
struct ring_shm {
	alignas(64) _Atomic uint64_t tail;   /* producer: bytes published */
	alignas(64) _Atomic uint64_t head;   /* consumer: bytes consumed */
	alignas(64) _Atomic uint32_t seq[2]; /* [RING_DATA]: consumer sleeps on it,
						producer bumps it; [RING_SPACE]:
						the reverse. Written by both. */
	alignas(64) uint64_t size;	     /* setup: data bytes, a power of two */
	uint32_t id;			     /* setup: 0 (side 0 -> 1) or 1 (1 -> 0) */
	alignas(64) unsigned char data[];
};

_Static_assert(offsetof(struct ring_shm, head) == 64, "ring head line");
_Static_assert(offsetof(struct ring_shm, seq) == 128, "ring seq line");
_Static_assert(offsetof(struct ring_shm, data) == 256, "ring data offset");

/* How a side sleeps and wakes the other; NULL in struct ring_port: spin. */
struct ring_waiter {
	/* Sleep until kicked; may return early. @val: the word as set to
	 * sleeping (a futex compares it; an eventfd ignores it). */
	void (*block)(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val);
	/* Wake the side sleeping on (r, k). */
	void (*kick)(void *arg, struct ring_shm *r, enum ring_kind k);
};

/* One side's view of both rings; process-local (each side has its copy). */
struct ring_port {
	struct ring_shm *tx, *rx;
	uint64_t tail, head_cache; /* producer: own tail, last head seen */
	uint64_t head, tail_cache; /* consumer: own head, last tail seen */
	const struct ring_waiter *w;
	void *arg;
};

/* Both directions, as set up by the driver. */
struct ring_pair {
	void *map;
	size_t map_len;
	struct ring_shm *r[2];
	struct ring_port port;
	int fd[2][2]; /* for waiters that need descriptors: [ring id][kind] */
};

int ring_pair_create(struct ring_pair **out, size_t msg_size, size_t buf_bytes);
void ring_pair_destroy(struct ring_pair *rp);
void ring_port_attach(struct ring_pair *rp, int side, const struct ring_waiter *w, void *arg);
int ring_send(struct ring_port *p, const void *buf, size_t len);
int ring_recv(struct ring_port *p, void *buf, size_t cap);
size_t ring_max_msg(uint64_t size);

/* A struct bench_chan whose priv is a struct ring_pair (ring.c). */
int ring_chan_setup(struct bench_chan *ch);
int ring_chan_send(struct bench_chan *ch, const void *buf, size_t len);
int ring_chan_recv(struct bench_chan *ch, void *buf, size_t cap);
void ring_chan_teardown(struct bench_chan *ch);

#endif /* SHMRPC_BENCH_RING_H */
