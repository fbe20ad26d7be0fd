// SPDX-License-Identifier: MIT
/*
 * shmrpc_stats: a node's totals, the old_* ones of its segment plus the
 * counters of the rings it has open, read inside the fold_seq seqlock
 * (layout.h, counters.c), so that nothing is counted twice or missed.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>

#include "connect.h"
#include "error.h"
#include "layout.h"
#include "node_types.h"

static uint64_t ld(const _Atomic uint64_t *c)
{
	/* Relaxed: counters are statistics; each is single-writer. */
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void sum_out(struct shmrpc_node *n, struct shmrpc_stats *st)
{
	const struct shmrpc__node_ctr *oc = &n->seg->ctr;
	const struct shmrpc__conn *c;
	unsigned b;

	pthread_rwlock_rdlock(&n->conns.lock);
	st->msgs_sent = ld(&oc->old_tx_msgs);
	st->bytes_sent = ld(&oc->old_tx_bytes);
	st->send_full = ld(&oc->old_tx_full);
	st->wakes_sent += ld(&oc->old_tx_wakes);
	st->wakes_skipped = ld(&oc->old_tx_skips);
	for (b = 0; b < n->conns.nb; b++)
		for (c = n->conns.b[b]; c; c = c->next) {
			/* Relaxed: checked by the fold_seq seqlock. */
			if (!c->q.hdr || atomic_load_explicit(&c->folded, memory_order_relaxed))
				continue;
			st->msgs_sent += ld(&c->q.hdr->tx_msgs);
			st->bytes_sent += ld(&c->q.hdr->tx_bytes);
			st->send_full += ld(&c->q.hdr->tx_full);
			st->wakes_sent += ld(&c->q.hdr->tx_wakes);
			st->wakes_skipped += ld(&c->q.hdr->tx_skips);
		}
	pthread_rwlock_unlock(&n->conns.lock);
}

static void sum_in(struct shmrpc_node *n, struct shmrpc_stats *st)
{
	const struct shmrpc__node_ctr *oc = &n->seg->ctr;
	uint32_t i;

	pthread_mutex_lock(&n->in_lock);
	st->msgs_recv = ld(&oc->old_rx_msgs);
	st->bytes_recv = ld(&oc->old_rx_bytes);
	st->wakes_sent += ld(&oc->rx_wakes);
	for (i = 0; i < n->in.n; i++) {
		const struct shmrpc__ring_hdr *h = n->in.v[i]->q.hdr;

		st->msgs_recv += ld(&h->rx_msgs);
		st->bytes_recv += ld(&h->rx_bytes);
		st->wakes_sent += ld(&h->rx_wakes);
	}
	pthread_mutex_unlock(&n->in_lock);
}

/* The calls' counters (layout.h: struct shmrpc__rpc_ctr). */
static void sum_rpc(struct shmrpc_node *n, struct shmrpc_stats *st)
{
	const struct shmrpc__rpc_ctr *k = &n->seg->rpc;
	uint64_t ended;

	st->calls = ld(&k->calls);
	ended = ld(&k->calls_ended);
	st->calls_in_flight = st->calls > ended ? st->calls - ended : 0;
	st->calls_timeout = ld(&k->fail_timeout);
	st->calls_pipe = ld(&k->fail_pipe);
	st->calls_remote = ld(&k->fail_remote);
	st->calls_cancelled = ld(&k->fail_cancel);
	st->calls_refused = ld(&k->fail_refused);
	st->calls_late = ld(&k->late);
	st->calls_served = ld(&k->served);
	st->calls_expired = ld(&k->expired);
	st->calls_rejected = ld(&k->refused);
	st->replies_sent = ld(&k->replies);
	st->replies_failed = ld(&k->reply_fail);
}

static void stats_fill(struct shmrpc_node *n, struct shmrpc_stats *st)
{
	const struct shmrpc__node_ctr *c;

	c = &n->seg->ctr;
	/* A seqlock read (fold_seq, layout.h): a ring moved into the totals
	 * meanwhile would be counted twice or missed; then read again. */
	for (;;) {
		/* Acquire: pairs with fold_end's release store (counters.c);
		 * an even value is a fold completed, its moves visible. */
		uint64_t seq = atomic_load_explicit(&c->fold_seq, memory_order_acquire);

		if (seq & 1) {
			sched_yield(); /* a fold is a few stores: it ends soon */
			continue;
		}
		memset(st, 0, sizeof(*st));
		sum_out(n, st);
		sum_in(n, st);
		/* Acquire fence: pairs with fold_begin's release fence. */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&c->fold_seq, memory_order_relaxed) == seq)
			break;
	}
	st->sleeps = ld(&c->sleeps);
	st->spins = ld(&c->spins);
	st->connects = ld(&c->connects);
	st->rings_in = ld(&c->rings_in);
	st->rings_out = ld(&c->rings_out);
	sum_rpc(n, st);
}

/* What the 0.1 header's struct shmrpc_stats had: up to rings_out. */
#define STATS_V1_SIZE offsetof(struct shmrpc_stats, calls)

static int stats_size_do(struct shmrpc_node *n, struct shmrpc_stats *st, size_t size)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc_stats all;

	if (!n || !st || size < STATS_V1_SIZE)
		return -EINVAL;
	stats_fill(n, &all);
	if (size > sizeof(all)) { /* a newer header's: what we know, then zeros */
		memset((uint8_t *)st + sizeof(all), 0, size - sizeof(all));
		size = sizeof(all);
	}
	memcpy(st, &all, size);
	return 0;
}

int shmrpc_stats_size(struct shmrpc_node *n, struct shmrpc_stats *st, size_t size)
{
	return SHMRPC__RET(stats_size_do(n, st, size));
}

/*
 * shmrpc_stats, for the binaries built against each header (symbol
 * versions, lib/libshmrpc.map): the 0.1 header's struct ends at rings_out,
 * the 0.2 header's has the calls' counters too. A binary built against the
 * 0.1 library is bound to shmrpc_stats@LIBSHMRPC_0.1 and gets its size; one
 * built now (and a static link) to the default, shmrpc_stats@@LIBSHMRPC_0.2.
 */
SHMRPC_API int shmrpc_stats_v1(struct shmrpc_node *n, struct shmrpc_stats *st);
SHMRPC_API int shmrpc_stats_v2(struct shmrpc_node *n, struct shmrpc_stats *st);
__asm__(".symver shmrpc_stats_v1, shmrpc_stats@LIBSHMRPC_0.1");
__asm__(".symver shmrpc_stats_v2, shmrpc_stats@@LIBSHMRPC_0.2");

int shmrpc_stats_v1(struct shmrpc_node *n, struct shmrpc_stats *st)
{
	return shmrpc_stats_size(n, st, STATS_V1_SIZE);
}

int shmrpc_stats_v2(struct shmrpc_node *n, struct shmrpc_stats *st)
{
	return shmrpc_stats_size(n, st, sizeof(*st));
}
