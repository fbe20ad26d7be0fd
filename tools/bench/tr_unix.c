// SPDX-License-Identifier: MIT
/*
 * Baseline "unix": socketpair(AF_UNIX, SOCK_SEQPACKET), one send(2) and one
 * recv(2) per message; the kernel keeps message boundaries. The send buffer
 * is set so that the kernel's sk_sndbuf equals the buffering budget (it
 * doubles what SO_SNDBUF asks, for its own bookkeeping; SO_SNDBUFFORCE lets
 * root exceed net.core.wmem_max). Queued messages are charged to the
 * sender at their skb truesize, so small messages buffer far fewer than
 * budget / size. A message larger than sk_sndbuf - 32 is refused by the
 * kernel (-EMSGSIZE): such sizes are skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

struct unix_chan {
	int sv[2];
	int fd; /* this side's end, after attach */
};

static int unix_set_sndbuf(int fd, size_t budget)
{
	int v = (int)(budget / 2), eff = 0;
	socklen_t len = sizeof(eff);

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &eff, &len) < 0)
		return -errno;
	return eff;
}

static int unix_setup(struct bench_chan *ch)
{
	struct unix_chan *uc = malloc(sizeof(*uc));
	int err = 0, eff = -1, e;

	if (!uc)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, uc->sv) < 0) {
		err = -errno;
		free(uc);
		return err;
	}
	for (int i = 0; i < 2 && !err; i++) {
		e = unix_set_sndbuf(uc->sv[i], ch->p.buf_bytes);
		if (e < 0)
			err = e;
		else if (eff < 0 || e < eff)
			eff = e;
	}
	if (!err && ch->p.msg_size + 32 > (size_t)eff)
		err = -EMSGSIZE;
	if (err) {
		close(uc->sv[0]);
		close(uc->sv[1]);
		free(uc);
		return err;
	}
	uc->fd = -1;
	ch->priv = uc;
	ch->buf_eff = (size_t)eff;
	return 0;
}

static int unix_attach(struct bench_chan *ch, int side)
{
	struct unix_chan *uc = ch->priv;

	close(uc->sv[1 - side]);
	uc->sv[1 - side] = -1;
	uc->fd = uc->sv[side];
	return 0;
}

static int unix_send(struct bench_chan *ch, const void *buf, size_t len)
{
	struct unix_chan *uc = ch->priv;
	ssize_t n;

	do
		n = send(uc->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int unix_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	struct unix_chan *uc = ch->priv;
	ssize_t n;

	do
		n = recv(uc->fd, buf, cap, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -EPIPE : (int)n;
}

static void unix_teardown(struct bench_chan *ch)
{
	struct unix_chan *uc = ch->priv;

	if (!uc)
		return;
	for (int i = 0; i < 2; i++)
		if (uc->sv[i] >= 0)
			close(uc->sv[i]);
	free(uc);
	ch->priv = NULL;
}

const struct bench_transport bench_tr_unix = {
	.name = "unix",
	.what = "AF_UNIX SOCK_SEQPACKET socketpair, send(2)/recv(2) per message",
	.setup = unix_setup,
	.attach = unix_attach,
	.send = unix_send,
	.recv = unix_recv,
	.teardown = unix_teardown,
};
