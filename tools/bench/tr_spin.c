// SPDX-License-Identifier: MIT
/*
 * Baseline "spin": the shared-memory ring of ring.c, both sides polling the
 * other's index on its cache line, never entering the kernel. The floor of
 * any shared-memory transport, and 1 CPU-second per second on each side.
 */
#include "ring.h"

static int spin_attach(struct bench_chan *ch, int side)
{
	ring_port_attach(ch->priv, side, NULL, NULL);
	return 0;
}

const struct bench_transport bench_tr_spin = {
	.name = "spin",
	.what = "shared-memory ring, both sides busy-poll the index cache line",
	.setup = ring_chan_setup,
	.attach = spin_attach,
	.send = ring_chan_send,
	.recv = ring_chan_recv,
	.teardown = ring_chan_teardown,
};
