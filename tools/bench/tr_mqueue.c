// SPDX-License-Identifier: MIT
/*
 * Baseline "mqueue": one POSIX message queue per direction, mq_send(3) and
 * mq_receive(3) per message. Queue depth = budget / message size (at most
 * 65536, the kernel's hard limit), halved until the kernel accepts it: an
 * unprivileged run is held to /proc/sys/fs/mqueue/msg_max and msgsize_max,
 * root (CAP_SYS_RESOURCE) is not, and RLIMIT_MSGQUEUE is raised first when
 * allowed. Each name is unlinked right after mq_open: the open descriptors,
 * inherited by both sides at fork, keep the queue alive, and nothing is left
 * in /dev/mqueue whatever happens to the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

#define MQ_HARD_MAXMSG 65536

struct mq_chan {
	mqd_t q[2]; /* q[d]: from side d to side 1 - d */
	int side;
};

static void mq_raise_rlimit(void)
{
	static int done;
	struct rlimit rl;

	if (done++ || getrlimit(RLIMIT_MSGQUEUE, &rl) < 0)
		return;
	rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_MSGQUEUE, &rl) < 0 && getrlimit(RLIMIT_MSGQUEUE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MSGQUEUE, &rl);
	}
}

static long proc_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Open (and at once unlink) one queue; *depth is lowered until accepted:
 * first to msg_max (the usual EINVAL without CAP_SYS_RESOURCE), then by
 * halves (EMFILE: RLIMIT_MSGQUEUE; ENOMEM). */
static int mq_open_one(mqd_t *q, struct bench_chan *ch, int d, long *depth)
{
	struct mq_attr a = { .mq_msgsize = (long)ch->p.msg_size };
	long msg_max = proc_long("/proc/sys/fs/mqueue/msg_max");
	char name[64];
	int err;

	snprintf(name, sizeof(name), "/shmrpc-bench.%d.%u.%d", (int)getpid(), ch->p.run_id, d);
	for (;;) {
		a.mq_maxmsg = *depth;
		*q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
		if (*q != (mqd_t)-1) {
			mq_unlink(name);
			return 0;
		}
		err = -errno;
		if ((err != -EINVAL && err != -EMFILE && err != -ENOMEM) || *depth == 1)
			break;
		*depth = err == -EINVAL && msg_max > 0 && *depth > msg_max ? msg_max : *depth / 2;
	}
	if (err != -EINVAL && err != -EMFILE)
		return err;
	/* Refused at depth 1: the message size itself is over a limit. */
	snprintf(ch->why, sizeof(ch->why),
		 "over fs.mqueue.msgsize_max (%ld) without "
		 "CAP_SYS_RESOURCE",
		 proc_long("/proc/sys/fs/mqueue/msgsize_max"));
	return -EMSGSIZE;
}

static int mqueue_setup(struct bench_chan *ch)
{
	struct mq_chan *mc = malloc(sizeof(*mc));
	long depth = (long)(ch->p.buf_bytes / ch->p.msg_size);
	int err = 0;

	if (!mc)
		return -ENOMEM;
	mq_raise_rlimit();
	if (depth < 1)
		depth = 1;
	if (depth > MQ_HARD_MAXMSG)
		depth = MQ_HARD_MAXMSG;
	mc->q[0] = mc->q[1] = (mqd_t)-1;
	for (int d = 0; d < 2 && !err; d++)
		err = mq_open_one(&mc->q[d], ch, d, &depth);
	if (err) {
		if (mc->q[0] != (mqd_t)-1)
			mq_close(mc->q[0]);
		free(mc);
		return err;
	}
	ch->priv = mc;
	ch->buf_eff = (size_t)depth * ch->p.msg_size;
	return 0;
}

static int mqueue_attach(struct bench_chan *ch, int side)
{
	((struct mq_chan *)ch->priv)->side = side;
	return 0;
}

static int mqueue_send(struct bench_chan *ch, const void *buf, size_t len)
{
	struct mq_chan *mc = ch->priv;
	int r;

	do
		r = mq_send(mc->q[mc->side], buf, len, 0);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int mqueue_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	struct mq_chan *mc = ch->priv;
	ssize_t n;

	do
		n = mq_receive(mc->q[1 - mc->side], buf, cap, NULL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

static void mqueue_teardown(struct bench_chan *ch)
{
	struct mq_chan *mc = ch->priv;

	if (!mc)
		return;
	for (int d = 0; d < 2; d++)
		if (mc->q[d] != (mqd_t)-1)
			mq_close(mc->q[d]);
	free(mc);
	ch->priv = NULL;
}

const struct bench_transport bench_tr_mqueue = {
	.name = "mqueue",
	.what = "POSIX message queue per direction, mq_send/mq_receive per message",
	.setup = mqueue_setup,
	.attach = mqueue_attach,
	.send = mqueue_send,
	.recv = mqueue_recv,
	.teardown = mqueue_teardown,
};
