// SPDX-License-Identifier: MIT
/*
 * Request/response (issue 12): shmrpc_call between two processes.
 *
 * A server member (second CPU) serves an echo from its receiving call
 * (shmrpc_recv); a caller member (first CPU) calls it. Runs:
 *   shmrpc-awake    64 B calls back to back, the server spinning (spin_us
 *                   1 s): round trips, against the one-way ping-pong of
 *                   shmrpc_send (pingpong shmrpc-spin, its median halved)
 *   shmrpc-asleep   64 B calls GAP_US apart, the server asleep between
 *                   them: round trips, against futex(2)'s round trip
 *   pipelined       one caller thread keeps PIPE calls in flight
 *                   (shmrpc_call_start, then shmrpc_call_wait on the
 *                   oldest and start another), the server spinning: calls/s
 *   unix-pipelined  the same request/reply pipeline over a Unix stream
 *                   socket pair (64 B each way): calls/s
 *   kill            a server keeps (never answers) KILL_PENDING calls, then
 *                   is SIGKILLed: from kill(2) to the last of them returned
 *                   -EPIPE (the caller's watcher notices the death), per
 *                   kill; the servers are the caller's forked children.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "shmrpc.h"

#define MSG 64
#define GAP_US 300
#define PIPE 32
#define KILL_PENDING 100
#define SPIN_AWAKE 1000000 /* spin_us: stays awake */

enum rpc_mode { M_AWAKE, M_ASLEEP, M_PIPE, M_UNIX, M_KILL };

static const char *const mode_name[] = { "shmrpc-awake", "shmrpc-asleep", "pipelined",
					 "unix-pipelined", "kill" };

struct rpc {
	enum rpc_mode mode;
	char domain[64];
	uint64_t iters; /* calls measured (latency runs, pipelines) */
	int kills;
	int sock[2]; /* unix-pipelined: a stream socket pair */
};

static void echo(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	shmrpc_reply(n, r, r->data, r->len, 0);
}

static int open_node(const struct rpc *x, const char *name, int32_t spin_us, struct shmrpc_node **n)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = x->domain, .spin_us = spin_us };

	return shmrpc_open(name, &o, n);
}

/* ------------------------------------------------------------ server */

static int unix_server(struct bench_group *g, struct rpc *x)
{
	char buf[MSG];
	size_t got;
	ssize_t k;

	(void)g;
	for (;;) {
		for (got = 0; got < MSG; got += (size_t)k) {
			k = read(x->sock[1], buf + got, MSG - got);
			if (k <= 0)
				return 0; /* the caller closed its end: done */
		}
		if (write(x->sock[1], buf, MSG) != MSG)
			return -errno;
	}
}

static int server_member(struct bench_group *g, struct rpc *x)
{
	struct shmrpc_node *n;
	char buf[MSG];
	int rc;

	if (x->mode == M_UNIX)
		return unix_server(g, x);
	rc = open_node(x, "srv", x->mode == M_ASLEEP ? 0 : SPIN_AWAKE, &n);
	if (!rc)
		rc = shmrpc_serve(n, echo, NULL);
	if (rc)
		return bench_gfail(g->c, 0, rc, "server: %s", shmrpc_last_error());
	/* Release: pairs with the caller's acquire load; the node serves. */
	atomic_store_explicit(&g->c->word[1], 1, memory_order_release);
	/* Acquire: pairs with the caller's release store when it is done. */
	while (!atomic_load_explicit(&g->c->word[0], memory_order_acquire)) {
		rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 100);
		if (rc >= 0 || rc == -ETIMEDOUT || rc == -EAGAIN)
			continue;
		shmrpc_close(n);
		return bench_gfail(g->c, 0, rc, "server recv: %s", shmrpc_last_error());
	}
	shmrpc_close(n);
	return 0;
}

/* ------------------------------------------------------------ caller */

/* Round trips of x->iters calls (GAP_US apart when asleep) into samples. */
static int call_lat(struct bench_group *g, struct rpc *x, struct shmrpc_node *n)
{
	char req[MSG] = { 0 }, resp[MSG];
	uint64_t i, warm = x->iters / 10 + 10;
	int64_t t0;
	int rc;

	for (i = 0; i < warm + x->iters; i++) {
		if (x->mode == M_ASLEEP)
			usleep(GAP_US);
		t0 = bench_now_ns();
		rc = shmrpc_call(n, "srv", req, sizeof(req), resp, sizeof(resp), 10000);
		if (rc != MSG)
			return bench_gfail(g->c, 1, rc, "call %llu: %d", (unsigned long long)i, rc);
		if (i >= warm)
			g->c->samples[i - warm] = (uint64_t)(bench_now_ns() - t0);
	}
	g->c->val[1][0] = (int64_t)x->iters;
	return 0;
}

/* PIPE calls in flight for x->iters calls: the time in val[1][1] (ns). */
static int call_pipe(struct bench_group *g, struct rpc *x, struct shmrpc_node *n)
{
	char req[MSG] = { 0 }, resp[MSG];
	uint64_t id[PIPE], i, total = x->iters;
	int64_t t0 = 0;
	int rc = 0;

	for (i = 0; i < PIPE && !rc; i++)
		rc = shmrpc_call_start(n, "srv", req, sizeof(req), -1, &id[i]);
	for (i = 0; i < total + PIPE && !rc; i++) {
		if (i == PIPE) /* the pipeline full: measure from here */
			t0 = bench_now_ns();
		rc = shmrpc_call_wait(n, id[i % PIPE], resp, sizeof(resp), NULL, 10000);
		if (rc != MSG)
			break;
		rc = i < total ? shmrpc_call_start(n, "srv", req, sizeof(req), -1, &id[i % PIPE]) :
				 0;
	}
	if (rc)
		return bench_gfail(g->c, 1, rc, "pipelined call %llu: %d", (unsigned long long)i,
				   rc);
	g->c->val[1][0] = (int64_t)total;
	g->c->val[1][1] = bench_now_ns() - t0;
	return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -EIO;
}

static int read_all(int fd, char *buf, size_t len)
{
	size_t got;
	ssize_t k;

	for (got = 0; got < len; got += (size_t)k) {
		k = read(fd, buf + got, len - got);
		if (k <= 0)
			return -EIO;
	}
	return 0;
}

/* The same pipeline over the socket pair. */
static int unix_pipe(struct bench_group *g, struct rpc *x)
{
	char req[MSG] = { 0 }, resp[MSG];
	uint64_t i, total = x->iters;
	int64_t t0 = 0;
	int rc = 0;

	for (i = 0; i < PIPE && !rc; i++)
		rc = write_all(x->sock[0], req, MSG);
	for (i = 0; i < total + PIPE && !rc; i++) {
		if (i == PIPE)
			t0 = bench_now_ns();
		rc = read_all(x->sock[0], resp, MSG);
		if (!rc && i < total)
			rc = write_all(x->sock[0], req, MSG);
	}
	shutdown(x->sock[0], SHUT_RDWR);
	if (rc)
		return bench_gfail(g->c, 1, rc, "unix pipeline broke at %llu",
				   (unsigned long long)i);
	g->c->val[1][0] = (int64_t)total;
	g->c->val[1][1] = bench_now_ns() - t0;
	return 0;
}

/* A kill's server: node "v<i>" keeps every request, counts them in *seen. */
static void keep(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)n;
	(void)r;
	atomic_fetch_add_explicit((_Atomic int *)arg, 1, memory_order_relaxed);
}

static void victim(struct rpc *x, int i, _Atomic int *seen)
{
	struct shmrpc_node *n;
	char name[16], buf[MSG];

	snprintf(name, sizeof(name), "v%d", i);
	if (open_node(x, name, 0, &n) || shmrpc_serve(n, keep, seen))
		_exit(1);
	for (;;)
		shmrpc_recv(n, buf, sizeof(buf), NULL, -1);
}

/* One kill: KILL_PENDING calls kept by victim @i, then SIGKILL: the time
 * until the last returned -EPIPE, in *ns. */
static int kill_one(struct rpc *x, struct shmrpc_node *n, int i, pid_t pid, _Atomic int *seen,
		    int64_t *ns)
{
	uint64_t id[KILL_PENDING];
	char name[16], resp[MSG];
	int64_t t0;
	int k, rc;

	(void)x;
	snprintf(name, sizeof(name), "v%d", i);
	rc = shmrpc_wait_node(n, name, 10000);
	for (k = 0; k < KILL_PENDING && !rc; k++)
		rc = shmrpc_call_start(n, name, "x", 1, -1, &id[k]);
	/* Relaxed: a count; the victim's requests are what it counts. */
	for (k = 0; !rc && atomic_load_explicit(seen, memory_order_relaxed) < KILL_PENDING; k++) {
		if (k > 100000)
			return -ETIMEDOUT;
		usleep(100);
	}
	if (rc)
		return rc;
	t0 = bench_now_ns();
	kill(pid, SIGKILL);
	for (k = 0; k < KILL_PENDING; k++) {
		rc = shmrpc_call_wait(n, id[k], resp, sizeof(resp), NULL, 10000);
		if (rc != -EPIPE)
			return rc < 0 ? rc : -EPROTO;
	}
	*ns = bench_now_ns() - t0;
	return 0;
}

/* The victims are forked first, before this process opens its node (no
 * fork from a process with the library's threads). */
static int call_kill(struct bench_group *g, struct rpc *x)
{
	_Atomic int *seen =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct shmrpc_node *n = NULL;
	pid_t pid[64];
	int i, ok = 0, rc = 0;
	int64_t ns;

	if (seen == MAP_FAILED)
		return bench_gfail(g->c, 1, -errno, "mmap: %s", strerror(errno));
	for (i = 0; i < x->kills; i++) {
		pid[i] = bench_fork();
		if (pid[i] == 0)
			victim(x, i, &seen[i]);
	}
	rc = open_node(x, "caller", 0, &n);
	for (i = 0; i < x->kills && !rc; i++) {
		rc = kill_one(x, n, i, pid[i], &seen[i], &ns);
		if (!rc)
			g->c->samples[ok++] = (uint64_t)ns;
	}
	for (i = 0; i < x->kills; i++) {
		kill(pid[i], SIGKILL);
		waitpid(pid[i], NULL, 0);
	}
	shmrpc_close(n);
	munmap(seen, 4096);
	g->c->val[1][0] = ok;
	return rc ? bench_gfail(g->c, 1, rc, "kill #%d: %s", ok, strerror(-rc)) : 0;
}

static int caller_member(struct bench_group *g, struct rpc *x)
{
	struct shmrpc_node *n;
	int rc;

	if (x->mode == M_UNIX)
		return unix_pipe(g, x);
	if (x->mode == M_KILL)
		return call_kill(g, x);
	/* Acquire: pairs with the server's release store once it serves. */
	while (!atomic_load_explicit(&g->c->word[1], memory_order_acquire))
		usleep(100);
	rc = open_node(x, "cli", x->mode == M_ASLEEP ? 0 : SPIN_AWAKE, &n);
	if (rc)
		return bench_gfail(g->c, 1, rc, "caller: %s", shmrpc_last_error());
	rc = x->mode == M_PIPE ? call_pipe(g, x, n) : call_lat(g, x, n);
	shmrpc_close(n);
	/* Release: the server stops; pairs with its acquire load. */
	atomic_store_explicit(&g->c->word[0], 1, memory_order_release);
	return rc;
}

static int rpc_member(struct bench_group *g, int idx)
{
	struct rpc *x = g->arg;

	if (x->mode == M_KILL)
		return idx == 1 ? caller_member(g, x) : 0;
	return idx == 0 ? server_member(g, x) : caller_member(g, x);
}

/* ------------------------------------------------------------ the runs */

static void rpc_run(struct bench_results *rs, const struct bench_opts *o,
		    const struct bench_cfg *cfg, enum rpc_mode mode)
{
	struct rpc x = { .mode = mode, .sock = { -1, -1 } };
	struct bench_group g = { .n = 2, .fn = rpc_member, .arg = &x, .timeout_s = 120 };
	struct bench_result *r =
		bench_result_new(rs, "rpc", mode_name[mode], mode == M_KILL ? 0 : MSG);
	int err, n;

	r->nsides = 0;
	x.iters = mode == M_ASLEEP ? (o->quick ? 500 : 5000) : (o->quick ? 5000 : 100000);
	if (o->iters && mode != M_KILL)
		x.iters = (uint64_t)o->iters;
	x.kills = o->kills ? (o->kills > 64 ? 64 : o->kills) : o->quick ? 3 : 20;
	bench_domain(x.domain, sizeof(x.domain), "rpc");
	if (mode == M_UNIX && socketpair(AF_UNIX, SOCK_STREAM, 0, x.sock)) {
		snprintf(r->why, sizeof(r->why), "socketpair: %s", strerror(errno));
		r->status = BENCH_FAILED;
		bench_progress(r);
		return;
	}
	g.cpu[0] = cfg->cpu[1];
	g.cpu[1] = cfg->cpu[0];
	g.c = bench_gctrl_new(mode == M_KILL ? 64 : x.iters);
	err = g.c ? bench_group_run(&g, r->why, sizeof(r->why)) : -ENOMEM;
	if (err) {
		r->status = BENCH_FAILED;
	} else if (mode == M_PIPE || mode == M_UNIX) {
		r->msgs = (uint64_t)g.c->val[1][0];
		r->window_s = (double)g.c->val[1][1] / 1e9;
		r->msgs_per_s = r->window_s > 0 ? (double)r->msgs / r->window_s : 0;
		bench_metric_set(r, "calls_per_s", r->msgs_per_s);
		bench_metric_set(r, "in_flight", PIPE);
	} else {
		n = (int)g.c->val[1][0];
		r->n = (uint64_t)n;
		r->has_lat = n > 0;
		bench_lat_summarise_ns(g.c->samples, (uint64_t)n, &r->lat);
		if (mode == M_KILL) {
			bench_metric_set(r, "kills", n);
			bench_metric_set(r, "pending", KILL_PENDING);
		}
	}
	for (int i = 0; i < 2; i++)
		if (x.sock[i] >= 0)
			close(x.sock[i]);
	if (bench_shm_cleanup(x.domain) > 0)
		fprintf(stderr, "shmrpc-bench: rpc domain left files (removed)\n");
	bench_gctrl_free(g.c);
	bench_progress(r);
}

int bench_rpc_known(const char *name)
{
	for (size_t m = 0; m < sizeof(mode_name) / sizeof(mode_name[0]); m++)
		if (!strcmp(mode_name[m], name))
			return 1;
	return 0;
}

void bench_run_rpc(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	for (int m = M_AWAKE; m <= M_KILL; m++)
		if (bench_in_list(o->transports, mode_name[m]))
			rpc_run(rs, o, cfg, (enum rpc_mode)m);
}
