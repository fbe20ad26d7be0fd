// SPDX-License-Identifier: MIT
/*
 * SPSC byte ring for the spin, futex and eventfd baselines.
 *
 * Records are 8-byte aligned: an 8-byte header {u32 len, u32 flags} and the
 * payload. A record that would not fit before the end of the ring is
 * preceded by a WRAP header that fills the rest; hence the largest message
 * is size / 2 - 8. ->tail and ->head count bytes forever (no masking).
 *
 *   producer (ring_send)                     consumer (ring_recv)
 *   LOAD  ->head        (C, acquire; pairs D) LOAD  ->tail        (A, acquire; pairs B)
 *   STORE record                              LOAD  record
 *   STORE ->tail        (B, release; pairs A) STORE ->head        (D, release; pairs C)
 *   FENCE               (F, seq_cst; pairs W) FENCE               (F, seq_cst; pairs W)
 *   LOAD  seq[DATA]: SLEEP set? bump, kick    LOAD  seq[SPACE]: SLEEP set? bump, kick
 *
 * Waiting (ring_wait), by the consumer on seq[DATA] when the ring is empty,
 * by the producer on seq[SPACE] when it is full:
 *   RMW   seq |= SLEEP ; FENCE                (W, seq_cst; pairs F)
 *   LOAD  the other side's index again: moved? clear SLEEP, return
 *   block(seq == value with SLEEP)            futex: FUTEX_WAIT; eventfd: read
 *
 * W and F are a store-buffering pair: in the single order of seq_cst
 * operations either F comes first, and the waiter's second look at the
 * index sees the store before F, or W comes first, and the waker sees
 * SLEEP and kicks. The waker clears SLEEP and bumps the count in one CAS,
 * so a FUTEX_WAIT that has not started yet fails its compare (-EAGAIN) and
 * a started one is woken: no lost wakeup. A kick nobody needed (the waiter
 * found data and returned) costs at most one spurious return from block(),
 * after which the caller looks again. With no waiter (spin), both sides
 * poll the index and never make a system call. ring_wake.pml is this
 * protocol as a spin model, with futex and with eventfd sleeps: no
 * invalid end state (a side blocked forever) is reachable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ring.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define RING_F_WRAP 1u

static inline uint64_t rec_bytes(size_t len)
{
	return 8 + (((uint64_t)len + 7) & ~(uint64_t)7);
}

size_t ring_max_msg(uint64_t size)
{
	return (size_t)(size / 2 - 8);
}

int ring_pair_create(struct ring_pair **out, size_t msg_size, size_t buf_bytes)
{
	struct ring_pair *rp;
	uint64_t size = 4096;
	size_t one;

	while (size < buf_bytes || ring_max_msg(size) < msg_size)
		size <<= 1;
	one = (sizeof(struct ring_shm) + size + 4095) & ~(size_t)4095;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->map_len = 2 * one;
	rp->map = mmap(NULL, rp->map_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (rp->map == MAP_FAILED) {
		free(rp);
		return -ENOMEM;
	}
	for (int i = 0; i < 2; i++) {
		rp->r[i] = (struct ring_shm *)((char *)rp->map + (size_t)i * one);
		rp->r[i]->size = size;
		rp->r[i]->id = (uint32_t)i;
		rp->fd[i][0] = rp->fd[i][1] = -1;
	}
	*out = rp;
	return 0;
}

void ring_pair_destroy(struct ring_pair *rp)
{
	if (!rp)
		return;
	munmap(rp->map, rp->map_len);
	free(rp);
}

void ring_port_attach(struct ring_pair *rp, int side, const struct ring_waiter *w, void *arg)
{
	struct ring_port *p = &rp->port;

	/* Shared anonymous pages are not copied into the child's page tables
	 * at fork: map them all now so the first laps take no page faults.
	 * Best effort (the kernel may predate MADV_POPULATE_WRITE). */
	madvise(rp->map, rp->map_len, MADV_POPULATE_WRITE);
	p->tx = rp->r[side];
	p->rx = rp->r[1 - side];
	p->tail = p->head_cache = 0;
	p->head = p->tail_cache = 0;
	p->w = w;
	p->arg = arg;
}

/* Has the other side moved its index since we last loaded it? */
static int ring_moved(struct ring_port *p, enum ring_kind k)
{
	/* Acquire: pairs with B (data) or D (space), like A and C. */
	if (k == RING_DATA)
		return atomic_load_explicit(&p->rx->tail, memory_order_acquire) != p->tail_cache;
	return atomic_load_explicit(&p->tx->head, memory_order_acquire) != p->head_cache;
}

/* Wait for the other side to move: one relax, or one sleep. The caller
 * loads the index again afterwards. */
static void ring_wait(struct ring_port *p, struct ring_shm *r, enum ring_kind k)
{
	uint32_t s, e;

	if (!p->w) {
		bench_cpu_relax();
		return;
	}
	/* W: announce the sleep, then look again; pairs with F in ring_wake. */
	s = atomic_fetch_or_explicit(&r->seq[k], RING_W_SLEEP, memory_order_seq_cst);
	s |= RING_W_SLEEP;
	atomic_thread_fence(memory_order_seq_cst);
	if (ring_moved(p, k)) {
		/* Not sleeping after all; take the flag back so the other side
		 * skips its kick. Losing this race to the waker is harmless.
		 * Relaxed: only the flag's value matters, nothing is published. */
		e = s;
		atomic_compare_exchange_strong_explicit(&r->seq[k], &e, s & ~RING_W_SLEEP,
							memory_order_relaxed, memory_order_relaxed);
		return;
	}
	p->w->block(p->arg, r, k, s);
}

/* After publishing an index: wake the other side if it sleeps on (r, k). */
static void ring_wake(struct ring_port *p, struct ring_shm *r, enum ring_kind k)
{
	uint32_t s;

	if (!p->w)
		return;
	/* F: pairs with W; orders our index store (B or D) before this load. */
	atomic_thread_fence(memory_order_seq_cst);
	s = atomic_load_explicit(&r->seq[k], memory_order_relaxed);
	if (!(s & RING_W_SLEEP))
		return;
	/* Clear SLEEP and bump the count at once, so a block() not yet
	 * started sees a different value. Relaxed: F already ordered the
	 * index store; a failed CAS means the waiter took its flag back. */
	if (atomic_compare_exchange_strong_explicit(&r->seq[k], &s, (s + 1) & RING_W_SEQ,
						    memory_order_relaxed, memory_order_relaxed))
		p->w->kick(p->arg, r, k);
}

static inline void put_hdr(struct ring_shm *r, uint64_t off, uint32_t len, uint32_t flags)
{
	uint64_t h = (uint64_t)len | (uint64_t)flags << 32;

	memcpy(r->data + off, &h, sizeof(h));
}

/*
 * ring_send - copy one message into the outbound ring, waiting while it is
 * full. Returns 0, or -EMSGSIZE when len exceeds ring_max_msg().
 */
int ring_send(struct ring_port *p, const void *buf, size_t len)
{
	struct ring_shm *r = p->tx;
	uint64_t size = r->size, rec = rec_bytes(len);
	uint64_t off = p->tail & (size - 1), need = rec;

	if (len > ring_max_msg(size))
		return -EMSGSIZE;
	if (size - off < rec)
		need += size - off; /* a WRAP record fills the rest */
	while (size - (p->tail - p->head_cache) < need) {
		/* C: pairs with D; the consumer has finished reading what it
		 * released, so we may overwrite it. */
		p->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (size - (p->tail - p->head_cache) >= need)
			break;
		ring_wait(p, r, RING_SPACE);
	}
	if (need != rec) {
		put_hdr(r, off, 0, RING_F_WRAP);
		p->tail += size - off;
		off = 0;
	}
	put_hdr(r, off, (uint32_t)len, 0);
	memcpy(r->data + off + 8, buf, len);
	p->tail += rec;
	/* B: publish header and payload; pairs with A. */
	atomic_store_explicit(&r->tail, p->tail, memory_order_release);
	ring_wake(p, r, RING_DATA);
	return 0;
}

/*
 * ring_recv - wait for one message and copy it to buf. Returns its length,
 * -EMSGSIZE if cap is too small (it stays queued), -EPROTO if the header is
 * out of bounds (a corrupt ring: never trust shared memory).
 */
int ring_recv(struct ring_port *p, void *buf, size_t cap)
{
	struct ring_shm *r = p->rx;
	uint64_t size = r->size, off, h;
	uint32_t len;

	for (;;) {
		while (p->head == p->tail_cache) {
			/* A: pairs with B; the record is complete. */
			p->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (p->head != p->tail_cache)
				break;
			ring_wait(p, r, RING_DATA);
		}
		off = p->head & (size - 1);
		memcpy(&h, r->data + off, sizeof(h));
		if ((h >> 32) & RING_F_WRAP) {
			if (size - off > p->tail_cache - p->head)
				return -EPROTO;
			p->head += size - off;
			continue;
		}
		len = (uint32_t)h;
		if (len > ring_max_msg(size) || rec_bytes(len) > p->tail_cache - p->head)
			return -EPROTO;
		if (len > cap)
			return -EMSGSIZE;
		memcpy(buf, r->data + off + 8, len);
		p->head += rec_bytes(len);
		/* D: release the space; pairs with C. */
		atomic_store_explicit(&r->head, p->head, memory_order_release);
		ring_wake(p, r, RING_SPACE);
		return (int)len;
	}
}

/* ------------------------------------------------ transport glue (tr_*.c) */

int ring_chan_setup(struct bench_chan *ch)
{
	struct ring_pair *rp;
	int err = ring_pair_create(&rp, ch->p.msg_size, ch->p.buf_bytes);

	if (err)
		return err;
	ch->priv = rp;
	ch->buf_eff = (size_t)rp->r[0]->size;
	return 0;
}

int ring_chan_send(struct bench_chan *ch, const void *buf, size_t len)
{
	return ring_send(&((struct ring_pair *)ch->priv)->port, buf, len);
}

int ring_chan_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	return ring_recv(&((struct ring_pair *)ch->priv)->port, buf, cap);
}

void ring_chan_teardown(struct bench_chan *ch)
{
	ring_pair_destroy(ch->priv);
	ch->priv = NULL;
}
