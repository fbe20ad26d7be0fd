// SPDX-License-Identifier: MIT
/*
 * Baseline "futex": the shared-memory ring of ring.c; a side that finds
 * nothing to do sleeps at once in FUTEX_WAIT on a sequence word, and the
 * other side issues FUTEX_WAKE only when that word says somebody sleeps
 * (the wake protocol is in ring.c). No spinning: in ping-pong every message
 * is one FUTEX_WAKE plus one wake-up of a sleeping process, the raw cost of
 * a kernel wake-up that every sleeping-mode number is compared with.
 * Shared (not private) futexes: the word lives in MAP_SHARED memory.
 */
#include "futex.h"
#include "ring.h"

static void futex_block(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val)
{
	(void)arg;
	/* -EAGAIN (the word moved on) and -EINTR: the caller looks again. */
	bench_futex_wait(&r->seq[k], val);
}

static void futex_kick(void *arg, struct ring_shm *r, enum ring_kind k)
{
	(void)arg;
	bench_futex_wake(&r->seq[k], 1);
}

static const struct ring_waiter futex_waiter = {
	.block = futex_block,
	.kick = futex_kick,
};

static int futex_attach(struct bench_chan *ch, int side)
{
	ring_port_attach(ch->priv, side, &futex_waiter, NULL);
	return 0;
}

const struct bench_transport bench_tr_futex = {
	.name = "futex",
	.what = "shared-memory ring, sleep in FUTEX_WAIT, FUTEX_WAKE only a sleeper",
	.setup = ring_chan_setup,
	.attach = futex_attach,
	.send = ring_chan_send,
	.recv = ring_chan_recv,
	.teardown = ring_chan_teardown,
};
