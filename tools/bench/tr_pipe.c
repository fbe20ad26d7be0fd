// SPDX-License-Identifier: MIT
/*
 * Baseline "pipe": one pipe per direction, one write(2) per message and
 * read(2) until the message is complete. A pipe has no message boundaries;
 * this relies on the transport contract that every message of a run is
 * ch->p.msg_size bytes long. The pipe is resized to the buffering budget
 * with F_SETPIPE_SZ (root may exceed /proc/sys/fs/pipe-max-size).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

struct pipe_chan {
	int fd[2][2]; /* fd[d]: from side d to side 1 - d; [0] read, [1] write */
	int side;
};

static void pipe_close_all(struct pipe_chan *pc)
{
	for (int d = 0; d < 2; d++)
		for (int e = 0; e < 2; e++)
			if (pc->fd[d][e] >= 0) {
				close(pc->fd[d][e]);
				pc->fd[d][e] = -1;
			}
}

static int pipe_setup(struct bench_chan *ch)
{
	struct pipe_chan *pc = malloc(sizeof(*pc));
	int err, sz, eff = -1;

	if (!pc)
		return -ENOMEM;
	for (int d = 0; d < 2; d++)
		pc->fd[d][0] = pc->fd[d][1] = -1;
	for (int d = 0; d < 2; d++) {
		if (pipe2(pc->fd[d], O_CLOEXEC) < 0) {
			err = -errno;
			pipe_close_all(pc);
			free(pc);
			return err;
		}
		/* The budget, or the largest size below it the kernel allows
		 * (pipe-max-size without CAP_SYS_RESOURCE). */
		for (sz = (int)ch->p.buf_bytes; sz > 4096; sz /= 2)
			if (fcntl(pc->fd[d][1], F_SETPIPE_SZ, sz) >= 0)
				break;
		sz = fcntl(pc->fd[d][1], F_GETPIPE_SZ);
		if (eff < 0 || sz < eff)
			eff = sz;
	}
	ch->priv = pc;
	ch->buf_eff = eff > 0 ? (size_t)eff : 0;
	return 0;
}

static int pipe_attach(struct bench_chan *ch, int side)
{
	struct pipe_chan *pc = ch->priv;

	/* Keep only our write end of fd[side] and our read end of the other,
	 * so that a peer's death reads as EOF / EPIPE instead of a hang. */
	close(pc->fd[side][0]);
	close(pc->fd[1 - side][1]);
	pc->fd[side][0] = pc->fd[1 - side][1] = -1;
	pc->side = side;
	return 0;
}

static int pipe_send(struct bench_chan *ch, const void *buf, size_t len)
{
	struct pipe_chan *pc = ch->priv;
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(pc->fd[pc->side][1], p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int pipe_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	struct pipe_chan *pc = ch->priv;
	size_t want = ch->p.msg_size, got = 0;
	ssize_t n;

	if (cap < want)
		return -EMSGSIZE;
	while (got < want) {
		n = read(pc->fd[1 - pc->side][0], (char *)buf + got, want - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return (int)got;
}

static void pipe_teardown(struct bench_chan *ch)
{
	if (!ch->priv)
		return;
	pipe_close_all(ch->priv);
	free(ch->priv);
	ch->priv = NULL;
}

const struct bench_transport bench_tr_pipe = {
	.name = "pipe",
	.what = "one pipe per direction, write(2)/read(2) per message",
	.setup = pipe_setup,
	.attach = pipe_attach,
	.send = pipe_send,
	.recv = pipe_recv,
	.teardown = pipe_teardown,
};
