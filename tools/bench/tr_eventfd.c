// SPDX-License-Identifier: MIT
/*
 * Baseline "eventfd": the shared-memory ring of ring.c and its wake
 * protocol, but a side sleeps in read(2) on an eventfd and is woken by a
 * write(2) of 1 to it: the doorbell an epoll-based program would use. One
 * eventfd per (direction, data|space); in ping-pong every message is one
 * write plus one wake-up of a reader blocked in read.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ring.h"

static void efd_block(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val)
{
	struct ring_pair *rp = arg;
	uint64_t v;

	(void)val; /* a kick before the read leaves the count > 0: no loss */
	while (read(rp->fd[r->id & 1][k], &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void efd_kick(void *arg, struct ring_shm *r, enum ring_kind k)
{
	struct ring_pair *rp = arg;
	uint64_t one = 1;

	while (write(rp->fd[r->id & 1][k], &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static const struct ring_waiter efd_waiter = {
	.block = efd_block,
	.kick = efd_kick,
};

static void efd_teardown(struct bench_chan *ch)
{
	struct ring_pair *rp = ch->priv;

	if (!rp)
		return;
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++)
			if (rp->fd[i][k] >= 0)
				close(rp->fd[i][k]);
	ring_chan_teardown(ch);
}

static int efd_setup(struct bench_chan *ch)
{
	struct ring_pair *rp;
	int err = ring_chan_setup(ch);

	if (err)
		return err;
	rp = ch->priv;
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 2; k++) {
			rp->fd[i][k] = eventfd(0, EFD_CLOEXEC);
			if (rp->fd[i][k] < 0) {
				err = -errno;
				efd_teardown(ch);
				return err;
			}
		}
	}
	return 0;
}

static int efd_attach(struct bench_chan *ch, int side)
{
	ring_port_attach(ch->priv, side, &efd_waiter, ch->priv);
	return 0;
}

const struct bench_transport bench_tr_eventfd = {
	.name = "eventfd",
	.what = "shared-memory ring, sleep in read(eventfd), write(eventfd) only a sleeper",
	.setup = efd_setup,
	.attach = efd_attach,
	.send = ring_chan_send,
	.recv = ring_chan_recv,
	.teardown = efd_teardown,
};
