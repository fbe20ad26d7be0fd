// SPDX-License-Identifier: MIT
/*
 * Baseline "zmq": ZeroMQ (libzmq, Debian libzmq3-dev), one ZMQ_PAIR socket
 * per side over ipc:// (a Unix stream socket in a private directory,
 * ipcpath.c), one zmq_send and one zmq_recv per message, as a ZeroMQ user
 * moving messages between two processes of one host would write it.
 *
 * How it moves a message: zmq_send copies it into a zmq_msg and queues it
 * on an in-process pipe to the context's I/O thread, which encodes queued
 * messages back to back into one buffer and writes them with one send(2)
 * (up to 8 KiB at a time: ZeroMQ batches writes, which is why it streams
 * well); the receiving I/O thread reads as much as there is, decodes it,
 * and hands the messages over a pipe to zmq_recv. Each hand-over between a
 * caller and its I/O thread is signalled through an eventfd (the mailbox),
 * only when the reader of that pipe may be asleep. Every side has its own
 * context (created after fork: a context cannot cross fork), so its I/O
 * thread inherits the side's CPU pinning.
 *
 * Buffering: ZMQ_SNDHWM and ZMQ_RCVHWM are each half the run's budget in
 * messages (at least 1), set before bind/connect; the kernel's socket
 * buffers come on top. A PAIR socket never drops: at its high-water mark,
 * or with no peer, zmq_send blocks (zmq_socket(3)). Side 1 binds, side 0
 * waits for the socket and connects; a hello each way in attach makes the
 * connection exist before the run starts. ZMQ_LINGER is 1 s, so that
 * zmq_ctx_term at detach delivers what is still queued (a stream's END).
 *
 * Without libzmq at build time (bench.mk looks for it) the transport is
 * there but every run of it is skipped, saying why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef BENCH_HAVE_ZMQ
#include <zmq.h>

#define ZMQ_WAIT_MS 10000 /* attach: the other side binds and answers within */
#define ZMQ_LINGER_MS 1000

struct zmq_chan {
	char path[128];	    /* the socket: DIR/pair */
	char endpoint[144]; /* ipc://DIR/pair */
	int hwm;	    /* messages, per socket and direction */
	void *ctx, *sock;   /* a side's, after attach */
};

static int zmq_setup(struct bench_chan *ch)
{
	struct zmq_chan *zc = calloc(1, sizeof(*zc));
	size_t hwm = ch->p.buf_bytes / ch->p.msg_size / 2;
	int err;

	if (!zc)
		return -ENOMEM;
	err = bench_ipc_make(zc->path, sizeof(zc->path));
	if (err) {
		free(zc);
		return err;
	}
	snprintf(zc->endpoint, sizeof(zc->endpoint), "ipc://%s", zc->path);
	zc->hwm = hwm < 1 ? 1 : hwm > INT32_MAX ? INT32_MAX : (int)hwm;
	ch->priv = zc;
	ch->buf_eff = 2 * (size_t)zc->hwm * ch->p.msg_size;
	return 0;
}

static int zopt(void *sock, int opt, int v)
{
	return zmq_setsockopt(sock, opt, &v, sizeof(v)) ? -zmq_errno() : 0;
}

/* One hello each way: side 0 asks, side 1 answers. */
static int zmq_hello(struct zmq_chan *zc, int side)
{
	char b[8] = "hello";
	int err = 0;

	for (int step = 0; step < 2 && !err; step++) {
		if (step == side) /* side 0 sends first, side 1 second */
			err = zmq_send(zc->sock, b, sizeof(b), 0) < 0 ? -zmq_errno() : 0;
		else
			err = zmq_recv(zc->sock, b, sizeof(b), 0) < 0 ? -zmq_errno() : 0;
	}
	return err ? err : zopt(zc->sock, ZMQ_RCVTIMEO, -1);
}

static int zmq_attach(struct bench_chan *ch, int side)
{
	struct zmq_chan *zc = ch->priv;
	int err;

	zc->ctx = zmq_ctx_new();
	if (!zc->ctx)
		return -zmq_errno();
	zc->sock = zmq_socket(zc->ctx, ZMQ_PAIR);
	if (!zc->sock)
		return -zmq_errno();
	err = zopt(zc->sock, ZMQ_SNDHWM, zc->hwm);
	err = err ? err : zopt(zc->sock, ZMQ_RCVHWM, zc->hwm);
	err = err ? err : zopt(zc->sock, ZMQ_LINGER, ZMQ_LINGER_MS);
	err = err ? err : zopt(zc->sock, ZMQ_RCVTIMEO, ZMQ_WAIT_MS);
	if (!err && side == 1 && zmq_bind(zc->sock, zc->endpoint))
		err = -zmq_errno();
	if (!err && side == 0) {
		err = bench_ipc_wait(zc->path, ZMQ_WAIT_MS);
		if (!err && zmq_connect(zc->sock, zc->endpoint))
			err = -zmq_errno();
	}
	return err ? err : zmq_hello(zc, side);
}

static int zmq_tr_send(struct bench_chan *ch, const void *buf, size_t len)
{
	struct zmq_chan *zc = ch->priv;
	int n;

	do
		n = zmq_send(zc->sock, buf, len, 0);
	while (n < 0 && zmq_errno() == EINTR);
	return n < 0 ? -zmq_errno() : 0;
}

static int zmq_tr_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	struct zmq_chan *zc = ch->priv;
	int n;

	do
		n = zmq_recv(zc->sock, buf, cap, 0);
	while (n < 0 && zmq_errno() == EINTR);
	if (n < 0)
		return -zmq_errno();
	return (size_t)n > cap ? -EMSGSIZE : n; /* n > cap: it was truncated */
}

/* zmq_ctx_term waits up to the linger time for queued messages to go. */
static void zmq_detach(struct bench_chan *ch)
{
	struct zmq_chan *zc = ch->priv;

	if (zc->sock)
		zmq_close(zc->sock);
	if (zc->ctx)
		while (zmq_ctx_term(zc->ctx) < 0 && zmq_errno() == EINTR)
			;
	zc->sock = zc->ctx = NULL;
}

static void zmq_teardown(struct bench_chan *ch)
{
	struct zmq_chan *zc = ch->priv;

	if (!zc)
		return;
	bench_ipc_remove(zc->path);
	free(zc);
	ch->priv = NULL;
}

const struct bench_transport bench_tr_zmq = {
	.name = "zmq",
	.what = "ZeroMQ ZMQ_PAIR over ipc://, zmq_send/zmq_recv per message (I/O thread batches)",
	.setup = zmq_setup,
	.attach = zmq_attach,
	.send = zmq_tr_send,
	.recv = zmq_tr_recv,
	.detach = zmq_detach,
	.teardown = zmq_teardown,
	.not_in = BENCH_NOT_SYSCALLS,
};

#else /* !BENCH_HAVE_ZMQ */

static int zmq_missing(struct bench_chan *ch)
{
	snprintf(ch->why, sizeof(ch->why),
		 "built without ZeroMQ (libzmq3-dev; scripts/deps.sh bench installs it)");
	return -EOPNOTSUPP;
}

const struct bench_transport bench_tr_zmq = {
	.name = "zmq",
	.what = "ZeroMQ ZMQ_PAIR over ipc:// (not built: libzmq3-dev missing)",
	.setup = zmq_missing,
	.not_in = BENCH_NOT_SYSCALLS,
};

#endif /* BENCH_HAVE_ZMQ */
