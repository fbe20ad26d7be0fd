// SPDX-License-Identifier: MIT
/*
 * Kernel baselines for the group scenarios (fan-in 8 -> 1, broadcast
 * 1 -> 8), the way a user would build them without libshmrpc:
 *
 *   pipe    fan-in: one pipe, every producer writes to it (a write of at most
 *           PIPE_BUF bytes is atomic, so messages never interleave);
 *           broadcast: one pipe per consumer, one write(2) each
 *   unix    fan-in: one SOCK_SEQPACKET socketpair, producers share one end
 *           (each send(2) is one whole message); broadcast: one socketpair
 *           per consumer, one send(2) each
 *   mqueue  fan-in: one POSIX queue; broadcast: one queue per consumer,
 *           one mq_send(3) each (depth as in tr_mqueue.c: at most
 *           fs.mqueue.msg_max without CAP_SYS_RESOURCE)
 *
 * A broadcast is therefore one system call per consumer, each waking a
 * consumer that sleeps. Channels are created by the driver before fork and
 * inherited; queue names are unlinked at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

enum kind { K_PIPE, K_UNIX, K_MQ };

struct kgroup {
	enum kind kind;
	int nch;		  /* channels: 1 (fan-in) or ncons */
	int rfd[BENCH_GROUP_MAX]; /* read end (mqueue: the queue) */
	int wfd[BENCH_GROUP_MAX]; /* write end (mqueue: the queue) */
	int mine;		  /* consumer: its channel */
};

static void kg_close(struct kgroup *k)
{
	for (int i = 0; i < k->nch; i++) {
		if (k->rfd[i] >= 0)
			close(k->rfd[i]);
		if (k->wfd[i] >= 0 && k->wfd[i] != k->rfd[i])
			close(k->wfd[i]);
		k->rfd[i] = k->wfd[i] = -1;
	}
}

static int kg_open_one(struct kgroup *k, int i, const struct bench_gchan *g)
{
	int fd[2], v = (int)(g->buf_bytes / 2);
	struct mq_attr a = { .mq_msgsize = (long)g->msg_size, .mq_maxmsg = 10 };
	char name[64];
	mqd_t q;

	switch (k->kind) {
	case K_PIPE:
		if (pipe2(fd, O_CLOEXEC) < 0)
			return -errno;
		fcntl(fd[1], F_SETPIPE_SZ, (int)g->buf_bytes);
		k->rfd[i] = fd[0];
		k->wfd[i] = fd[1];
		return 0;
	case K_UNIX:
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fd) < 0)
			return -errno;
		if (setsockopt(fd[0], SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
			setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
		k->wfd[i] = fd[0];
		k->rfd[i] = fd[1];
		return 0;
	case K_MQ:
		snprintf(name, sizeof(name), "/shmrpc-bench.%d.g%d", (int)getpid(), i);
		q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
		if (q == (mqd_t)-1)
			return errno == EINVAL ? -EOPNOTSUPP : -errno;
		mq_unlink(name);
		k->rfd[i] = k->wfd[i] = (int)q;
		return 0;
	}
	return -EINVAL;
}

static int kg_setup(struct bench_gchan *g, enum kind kind)
{
	struct kgroup *k = calloc(1, sizeof(*k));
	int err = 0;

	if (!k)
		return -ENOMEM;
	if (kind == K_MQ && g->msg_size > 8192)
		err = -EMSGSIZE;
	k->kind = kind;
	k->nch = g->topo == BENCH_FANIN ? 1 : g->ncons;
	for (int i = 0; i < k->nch; i++)
		k->rfd[i] = k->wfd[i] = -1;
	for (int i = 0; i < k->nch && !err; i++)
		err = kg_open_one(k, i, g);
	if (err) {
		kg_close(k);
		free(k);
		return err;
	}
	g->priv = k;
	return 0;
}

static int pipe_gsetup(struct bench_gchan *g)
{
	return kg_setup(g, K_PIPE);
}

static int unix_gsetup(struct bench_gchan *g)
{
	return kg_setup(g, K_UNIX);
}

static int mq_gsetup(struct bench_gchan *g)
{
	return kg_setup(g, K_MQ);
}

static int kg_attach(struct bench_gchan *g, int idx)
{
	struct kgroup *k = g->priv;

	k->mine = g->topo == BENCH_FANIN ? 0 : idx - g->nprod;
	return 0;
}

static int kg_send_one(struct kgroup *k, int i, const void *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;

	if (k->kind == K_MQ)
		return mq_send((mqd_t)k->wfd[i], buf, len, 0) < 0 ? -errno : 0;
	while (off < len) {
		n = k->kind == K_PIPE ? write(k->wfd[i], (const char *)buf + off, len - off) :
					send(k->wfd[i], buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

static int kg_send(struct bench_gchan *g, const void *buf, size_t len)
{
	struct kgroup *k = g->priv;
	int err;

	for (int i = 0; i < k->nch; i++) {
		err = kg_send_one(k, i, buf, len);
		if (err)
			return err;
	}
	return k->nch;
}

static int kg_recv(struct bench_gchan *g, void *buf, size_t cap)
{
	struct kgroup *k = g->priv;
	int fd = k->rfd[k->mine];
	size_t off = 0;
	ssize_t n;

	if (k->kind == K_MQ) {
		n = mq_receive((mqd_t)fd, buf, cap < 8192 ? 8192 : cap, NULL);
		return n < 0 ? -errno : (int)n;
	}
	if (k->kind == K_UNIX) {
		n = recv(fd, buf, cap, 0);
		return n < 0 ? -errno : (int)n;
	}
	while (off < g->msg_size) { /* every message is msg_size bytes */
		n = read(fd, (char *)buf + off, g->msg_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		off += (size_t)n;
	}
	return (int)off;
}

static void kg_teardown(struct bench_gchan *g)
{
	if (g->priv) {
		kg_close(g->priv);
		free(g->priv);
		g->priv = NULL;
	}
}

#define KGROUP(var, nm, desc, setupfn)              \
	static const struct bench_gtr var = {       \
		.name = nm,                         \
		.what = desc,                       \
		.topos = BENCH_FANIN | BENCH_BCAST, \
		.setup = setupfn,                   \
		.attach = kg_attach,                \
		.send = kg_send,                    \
		.recv = kg_recv,                    \
		.teardown = kg_teardown,            \
	}

KGROUP(g_pipe, "pipe", "fan-in: one pipe; broadcast: a pipe per consumer", pipe_gsetup);
KGROUP(g_unix, "unix", "SOCK_SEQPACKET; fan-in: one shared socketpair; broadcast: one each",
       unix_gsetup);
KGROUP(g_mq, "mqueue", "POSIX queue; fan-in: one queue; broadcast: a queue per consumer",
       mq_gsetup);

extern const struct bench_gtr bench_g_shm, bench_g_shm_futex, bench_g_shm_loop, bench_g_shm_defer;

const struct bench_gtr *const bench_gtransports[] = {
	&g_pipe,
	&g_unix,
	&g_mq,
	&bench_g_shm,
	&bench_g_shm_futex,
	&bench_g_shm_loop,
	&bench_g_shm_defer,
	NULL,
};

const struct bench_gtr *bench_gtransport_find(const char *name)
{
	for (size_t i = 0; bench_gtransports[i]; i++)
		if (!strcmp(bench_gtransports[i]->name, name))
			return bench_gtransports[i];
	return NULL;
}
