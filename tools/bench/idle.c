// SPDX-License-Identifier: MIT
/*
 * Idle: the CPU a node burns with nothing to do. Each subject is a node
 * connected both ways to a peer (its rings open, the peer watched through
 * a pidfd: everything a working node has), and then waits IDLE_S seconds
 * for a message that never comes, as an application would:
 *
 *   shmrpc, shmrpc-futex      blocked in shmrpc_recv (timeout IDLE_S)
 *   shmrpc-fd, shmrpc-futex-fd shmrpc_fd in an epoll set, blocked in
 *                             epoll_wait; on readiness it drains with
 *                             shmrpc_recv(timeout 0), as a loop would
 *   futex                     the floor: FUTEX_WAIT on a word nobody wakes
 *
 * All subjects idle at the same time (idleness does not disturb idleness),
 * each with its peer, in a domain of its own. Reported per subject: CPU
 * time of the whole process (all its threads, getrusage) per second, the
 * times it slept (libshmrpc's counter: each one is a wake-up, mostly the
 * safety timeout), and the system calls of its main thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "bench.h"
#include "futex.h"
#include "shmrpc.h"

#define IDLE_S 10.0
#define NSUBJ 5

struct subject {
	const char *name;    /* result's transport column */
	const char *backend; /* NULL: the futex(2) floor */
	int fd_mode;
};

static const struct subject subjects[NSUBJ] = {
	{ "shmrpc", "uring", 0 },    { "shmrpc-futex", "futex", 0 },
	{ "shmrpc-fd", "uring", 1 }, { "shmrpc-futex-fd", "futex", 1 },
	{ "futex", NULL, 0 },
};

struct idle {
	double secs;
	char domain[NSUBJ][64];
	int nsubj; /* members [0, nsubj) are subjects, then their peers */
};

static int open_node(struct bench_group *g, int idx, const char *dom, const char *be,
		     const char *name, struct shmrpc_node **n)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = dom, .backend = be };
	int err = shmrpc_open(name, &o, n);

	return err ? bench_gfail(g->c, idx, err, "%s: open: %s", name, strerror(-err)) : 0;
}

/* Connected both ways: our ring to the peer, its ring to us (hello). */
static int connect_pair(struct bench_group *g, int idx, struct shmrpc_node *n, const char *peer)
{
	uint64_t hello = 1;
	int err = shmrpc_wait_node(n, peer, 10000);

	if (!err)
		err = shmrpc_send(n, peer, &hello, sizeof(hello), 10000);
	if (!err)
		err = shmrpc_recv(n, &hello, sizeof(hello), NULL, 10000) == 8 ? 0 : -EBADMSG;
	return err ? bench_gfail(g->c, idx, err, "connect to %s: %s", peer, strerror(-err)) : 0;
}

static int wait_fd(struct shmrpc_node *n, int64_t end)
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t buf[8];
	int ep, fd = shmrpc_fd(n), ms;

	if (fd < 0)
		return fd;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	while ((ms = (int)((end - bench_now_ns()) / 1000000)) > 0) {
		if (epoll_wait(ep, &ev, 1, ms) > 0) /* EINTR: again */
			while (shmrpc_recv(n, buf, sizeof(buf), NULL, 0) >= 0)
				;
	}
	close(ep);
	return 0;
}

static int subject(struct bench_group *g, struct idle *id, int idx)
{
	const struct subject *s = &subjects[idx];
	struct shmrpc_stats st0 = { 0 }, st1 = { 0 };
	struct shmrpc_node *n = NULL;
	_Atomic uint32_t word = 0;
	struct bench_acct a;
	uint64_t buf[8];
	int err = 0, rc;

	if (s->backend) {
		err = open_node(g, idx, id->domain[idx], s->backend, "idle", &n);
		if (!err)
			err = connect_pair(g, idx, n, "peer");
	}
	bench_gbarrier(g->c, 1, (uint32_t)g->n);
	if (err)
		return err;
	if (n)
		shmrpc_stats(n, &st0);
	bench_acct_begin(&a);
	if (!n)
		bench_futex_wait_ms(&word, 0, (int)(id->secs * 1000));
	else if (s->fd_mode)
		err = wait_fd(n, a.wall0 + (int64_t)(id->secs * 1e9));
	else if ((rc = shmrpc_recv(n, buf, sizeof(buf), NULL, (int)(id->secs * 1000))) !=
		 -ETIMEDOUT)
		err = rc < 0 ? rc : -EBADMSG;
	bench_acct_end(&a, &g->c->out[idx], 0);
	if (n)
		shmrpc_stats(n, &st1);
	g->c->val[idx][0] = (int64_t)(st1.sleeps - st0.sleeps);
	bench_gbarrier(g->c, 2, (uint32_t)g->n);
	shmrpc_close(n);
	return err ? bench_gfail(g->c, idx, err, "%s: %s", s->name, strerror(-err)) : 0;
}

static int peer(struct bench_group *g, struct idle *id, int idx)
{
	const struct subject *s = &subjects[idx - id->nsubj];
	struct shmrpc_node *n = NULL;
	int err = 0;

	if (s->backend) {
		err = open_node(g, idx, id->domain[idx - id->nsubj], s->backend, "peer", &n);
		if (!err)
			err = connect_pair(g, idx, n, "idle");
	}
	bench_gbarrier(g->c, 1, (uint32_t)g->n);
	bench_gbarrier(g->c, 2, (uint32_t)g->n); /* idle too, until the subjects are done */
	shmrpc_close(n);
	return err;
}

static int idle_member(struct bench_group *g, int idx)
{
	struct idle *id = g->arg;

	return idx < id->nsubj ? subject(g, id, idx) : peer(g, id, idx);
}

void bench_run_idle(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	struct idle id = { .secs = o->quick ? 1.0 : IDLE_S, .nsubj = NSUBJ };
	struct bench_group g = {
		.n = 2 * NSUBJ, .fn = idle_member, .arg = &id, .count_syscalls = 1
	}; /* idle: nearly no calls to slow */
	struct bench_result *r[NSUBJ];
	char why[200] = "";
	int err, left;

	g.timeout_s = id.secs + 60;
	for (int i = 0; i < NSUBJ; i++) {
		bench_domain(id.domain[i], sizeof(id.domain[i]), "idle");
		g.cpu[i] = cfg->cpu[i % 2];
		g.cpu[NSUBJ + i] = cfg->cpu[(i + 1) % 2];
	}
	g.c = bench_gctrl_new(0);
	err = g.c ? bench_group_run(&g, why, sizeof(why)) : -ENOMEM;
	for (int i = 0; i < NSUBJ; i++) {
		struct bench_side_out *out = g.c ? &g.c->out[i] : NULL;
		double wall;

		r[i] = bench_result_new(rs, "idle", subjects[i].name, 0);
		r[i]->nsides = 0;
		if (err || !out) {
			r[i]->status = BENCH_FAILED;
			snprintf(r[i]->why, sizeof(r[i]->why), "%s", err ? why : "out of memory");
		} else {
			wall = (double)out->wall_ns / 1e9;
			bench_metric_set(r[i], "wall_s", wall);
			bench_metric_set(r[i], "cpu_ms_per_s",
					 (double)(out->user_ns + out->sys_ns) / 1e6 / wall);
			if (subjects[i].backend)
				bench_metric_set(r[i], "wakeups_per_s",
						 (double)g.c->val[i][0] / wall);
			if (out->syscalls >= 0)
				bench_metric_set(r[i], "syscalls_per_s",
						 (double)out->syscalls / wall);
		}
		left = bench_shm_cleanup(id.domain[i]);
		if (left > 0)
			fprintf(stderr, "shmrpc-bench: idle domain %s left %d file(s)\n",
				id.domain[i], left);
		bench_progress(r[i]);
	}
	bench_gctrl_free(g.c);
}
