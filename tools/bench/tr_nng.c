// SPDX-License-Identifier: MIT
/*
 * Baseline "nng": nng (Debian libnng-dev), one pair0 socket per side over
 * ipc:// (a Unix stream socket in a private directory, ipcpath.c), one
 * blocking nng_send and one nng_recv per message, as an nng user moving
 * messages between two processes of one host would write it.
 *
 * How it moves a message: nng_send allocates an nng_msg, copies the data
 * in and queues it on the socket; nng's own threads (its task queue, which
 * inherits the side's CPU pinning) write it to the Unix socket, one writev
 * per message (a 9-byte header and the body), and on the other side read
 * the header, then the body, and queue the message for nng_recv, which
 * copies it out.
 * Every hand-over between the caller and nng's threads takes a mutex and a
 * condition variable: nothing is batched.
 *
 * Buffering: NNG_OPT_SENDBUF and NNG_OPT_RECVBUF are each half the run's
 * budget in messages (1..8192, pair0's limit), NNG_OPT_RECVMAXSZ the run's
 * message size (a larger one would be dropped). pair0 never drops what it
 * accepted: with its queues full, or with no peer, a blocking nng_send
 * waits (flags 0). Side 1 listens, side 0 waits for the socket and dials;
 * each side waits in attach until its pipe to the other is up
 * (nng_pipe_notify), so the run starts connected. nng_close discards what
 * is still queued (nng has no linger), and side 0 sends last in every
 * scenario (STOP, END): so at detach side 1 closes at once, and side 0
 * first waits (up to 2 s) until side 1 has hung up, i.e. has read all.
 *
 * Without libnng at build time (bench.mk looks for it) the transport is
 * there but every run of it is skipped, saying why.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#ifdef BENCH_HAVE_NNG
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>

#define NNG_WAIT_MS 10000 /* attach: the other side listens and connects within */
#define NNG_HANGUP_MS 2000
#define NNG_PAIR0_MAXBUF 8192

struct nng_chan {
	char path[128]; /* the socket: DIR/pair */
	char url[144];	/* ipc://DIR/pair */
	int depth;	/* messages, per socket and direction */
	nng_socket sock;
	int open;
	pthread_mutex_t mu; /* a side's, from attach on: */
	pthread_cond_t cv;
	int pipes; /* pipes to the peer: 0 or 1 */
};

/* nng's error codes as -errno, close enough for a reason on stderr. */
static int nerr(int rv)
{
	if (rv & NNG_ESYSERR)
		return -(rv & ~NNG_ESYSERR);
	switch (rv) {
	case 0:
		return 0;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECLOSED:
		return -EPIPE;
	case NNG_ENOTSUP:
		return -EOPNOTSUPP;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	}
	return -EIO;
}

static int nng_setup(struct bench_chan *ch)
{
	struct nng_chan *nc = calloc(1, sizeof(*nc));
	size_t depth = ch->p.buf_bytes / ch->p.msg_size / 2;
	int err;

	if (!nc)
		return -ENOMEM;
	err = bench_ipc_make(nc->path, sizeof(nc->path));
	if (err) {
		free(nc);
		return err;
	}
	snprintf(nc->url, sizeof(nc->url), "ipc://%s", nc->path);
	nc->depth = depth < 1 ? 1 : depth > NNG_PAIR0_MAXBUF ? NNG_PAIR0_MAXBUF : (int)depth;
	ch->priv = nc;
	ch->buf_eff = 2 * (size_t)nc->depth * ch->p.msg_size;
	return 0;
}

/* nng's thread: a pipe to the peer came or went. */
static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct nng_chan *nc = arg;

	(void)p;
	pthread_mutex_lock(&nc->mu);
	nc->pipes += ev == NNG_PIPE_EV_ADD_POST ? 1 : -1;
	pthread_cond_broadcast(&nc->cv);
	pthread_mutex_unlock(&nc->mu);
}

/* Wait up to @ms until the count of pipes is (@up ? > 0 : 0). */
static int wait_pipes(struct nng_chan *nc, int up, int ms)
{
	struct timespec end;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&nc->mu);
	while ((nc->pipes > 0) != up && !err)
		err = pthread_cond_timedwait(&nc->cv, &nc->mu, &end);
	pthread_mutex_unlock(&nc->mu);
	return err ? -err : 0;
}

static int nng_options(struct nng_chan *nc, size_t msg_size)
{
	int rv = nng_socket_set_int(nc->sock, NNG_OPT_SENDBUF, nc->depth);

	if (!rv)
		rv = nng_socket_set_int(nc->sock, NNG_OPT_RECVBUF, nc->depth);
	if (!rv)
		rv = nng_socket_set_size(nc->sock, NNG_OPT_RECVMAXSZ, msg_size);
	if (!rv)
		rv = nng_pipe_notify(nc->sock, NNG_PIPE_EV_ADD_POST, pipe_event, nc);
	if (!rv)
		rv = nng_pipe_notify(nc->sock, NNG_PIPE_EV_REM_POST, pipe_event, nc);
	return nerr(rv);
}

static int nng_attach(struct bench_chan *ch, int side)
{
	struct nng_chan *nc = ch->priv;
	int err;

	pthread_mutex_init(&nc->mu, NULL);
	pthread_cond_init(&nc->cv, NULL);
	err = nerr(nng_pair0_open(&nc->sock));
	if (err)
		return err;
	nc->open = 1;
	err = nng_options(nc, ch->p.msg_size);
	if (!err && side == 1)
		err = nerr(nng_listen(nc->sock, nc->url, NULL, 0));
	if (!err && side == 0) {
		err = bench_ipc_wait(nc->path, NNG_WAIT_MS);
		if (!err)
			err = nerr(nng_dial(nc->sock, nc->url, NULL, 0));
	}
	return err ? err : wait_pipes(nc, 1, NNG_WAIT_MS);
}

static int nng_tr_send(struct bench_chan *ch, const void *buf, size_t len)
{
	struct nng_chan *nc = ch->priv;

	/* Without NNG_FLAG_ALLOC nng_send copies @buf and never writes it. */
	return nerr(nng_send(nc->sock, (void *)buf, len, 0));
}

static int nng_tr_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	struct nng_chan *nc = ch->priv;
	size_t n = cap;
	int err = nerr(nng_recv(nc->sock, buf, &n, 0));

	if (err)
		return err;
	return n > cap ? -EMSGSIZE : (int)n; /* n > cap: it was truncated */
}

static void nng_detach(struct bench_chan *ch)
{
	struct nng_chan *nc = ch->priv;

	if (!nc->open)
		return;
	if (ch->side == 0)
		wait_pipes(nc, 0, NNG_HANGUP_MS); /* side 1 has read everything */
	nng_close(nc->sock);
	nc->open = 0;
}

static void nng_teardown(struct bench_chan *ch)
{
	struct nng_chan *nc = ch->priv;

	if (!nc)
		return;
	bench_ipc_remove(nc->path);
	free(nc);
	ch->priv = NULL;
}

const struct bench_transport bench_tr_nng = {
	.name = "nng",
	.what = "nng pair0 over ipc://, blocking nng_send/nng_recv per message",
	.setup = nng_setup,
	.attach = nng_attach,
	.send = nng_tr_send,
	.recv = nng_tr_recv,
	.detach = nng_detach,
	.teardown = nng_teardown,
	.not_in = BENCH_NOT_SYSCALLS,
};

#else /* !BENCH_HAVE_NNG */

static int nng_missing(struct bench_chan *ch)
{
	snprintf(ch->why, sizeof(ch->why),
		 "built without nng (libnng-dev; scripts/deps.sh bench installs it)");
	return -EOPNOTSUPP;
}

const struct bench_transport bench_tr_nng = {
	.name = "nng",
	.what = "nng pair0 over ipc:// (not built: libnng-dev missing)",
	.setup = nng_missing,
	.not_in = BENCH_NOT_SYSCALLS,
};

#endif /* BENCH_HAVE_NNG */
