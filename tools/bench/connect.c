// SPDX-License-Identifier: MIT
/*
 * Connecting and joining.
 *
 * connect: the first send to a node, which connects on the way (looks the
 * receiver up, maps its node segment, creates and announces the ring,
 * starts watching the receiver's pidfd, and for a node's first peer, starts
 * its watcher thread). Receivers "r" and "r2" (one process, second CPU)
 * stay awake in shmrpc_recv; CONNECT_N times, the sender (first CPU) opens a
 * fresh node, times its first shmrpc_send to "r" (the call, and its
 * delivery: the receiver's clock minus the send's start, both
 * CLOCK_MONOTONIC), its first send to "r2" (a second peer: the watcher
 * thread runs already), its first send to "local", a node of its own
 * process (not watched: a node cannot outlive its own process), and a
 * second send to "r" (a warm one, for scale); it waits until the others
 * arrived, takes the local one and closes the node. Baseline "unix": what a first message to a new peer
 * costs with sockets: socket + connect + send of SOCK_SEQPACKET to a
 * listening abstract address, accepted by a third process.
 *
 * join: shmrpc_open of a node into a domain that exists (one node in it),
 * then shmrpc_close, JOIN_N times; per backend (the uring one sets up an
 * io_uring per node). join1000: 1000 nodes joining one domain, one after
 * the other from one process, total and per join; then all of them leave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "shmrpc.h"

#define CONNECT_N 200
#define JOIN_N 200
#define JOIN_MANY 1000
#define STOP UINT64_MAX
#define COUNTED \
	20 /* extra iterations whose system calls and page faults are
		      counted (not timed: counting slows every system call) */

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

struct conn {
	char domain[64];
	int many; /* join1000: how many (JOIN_MANY; fewer with --quick) */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t n;	     /* iterations */
	const char *backend; /* join runs */
};

static int fail(struct bench_group *g, int idx, int err, const char *what)
{
	return bench_gfail(g->c, idx, err, "%s: %s", what, strerror(-err));
}

/* Until the receivers counted @want messages (word[0]: shmrpc, word[1]: unix). */
static void wait_count(struct bench_gctrl *c, int w, uint64_t want)
{
	while (atomic_load_explicit(&c->word[w], memory_order_acquire) < want)
		bench_cpu_relax();
}

/* Iteration @i with a fresh node: the timed first send to "r", then the
 * first to "r2", to "local" and a warm one to "r" (see the top). Sample
 * arrays of n each at s: [0] first send, [2n] warm, [5n] second peer, [6n]
 * same process; iterations from n on only count system calls and faults. */
static int first_sends(struct bench_group *g, struct conn *cn, struct shmrpc_node *node,
		       struct shmrpc_node *local, uint64_t i)
{
	uint64_t *s = g->c->samples, n = cn->n, m[8] = { i };
	int64_t t0, t1, t2, c0, c1;
	long f0, f1;
	int err;

	c0 = bench_sysc_read();
	f0 = minflt();
	m[1] = (uint64_t)(t0 = bench_now_ns());
	err = shmrpc_send(node, "r", m, sizeof(m), -1);
	t1 = bench_now_ns();
	f1 = minflt();
	c1 = bench_sysc_read();
	if (i < n) {
		s[i] = (uint64_t)(t1 - t0);
	} else if (c0 >= 0 && c1 >= 0) {
		/* minus the closing read and the getrusage between */
		g->c->val[0][0] += c1 - c0 - 2;
		g->c->val[0][1] += f1 - f0;
		g->c->val[0][2]++;
	}
	m[1] = 0; /* no delivery time for the others */
	t0 = bench_now_ns();
	if (!err)
		err = shmrpc_send(node, "r2", m, sizeof(m), -1);
	t1 = bench_now_ns();
	if (!err)
		err = shmrpc_send(node, "local", m, sizeof(m), -1);
	t2 = bench_now_ns();
	if (!err)
		err = shmrpc_send(node, "r", m, sizeof(m), -1);
	if (i < n) {
		s[5 * n + i] = (uint64_t)(t1 - t0);
		s[6 * n + i] = (uint64_t)(t2 - t1);
		s[2 * n + i] = (uint64_t)(bench_now_ns() - t2);
	}
	if (!err && shmrpc_recv(local, m, sizeof(m), NULL, 1000) != (int)sizeof(m))
		err = -EBADMSG;
	return err;
}

static int shm_sender(struct bench_group *g, struct conn *cn)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = cn->domain };
	struct shmrpc_node *node, *local;
	uint64_t m[8] = { STOP };
	char name[32];
	int err;

	err = shmrpc_open("local", &o, &local);
	if (err)
		return fail(g, 0, err, "open local");
	err = shmrpc_wait_node(local, "r", 10000);
	if (!err)
		err = shmrpc_wait_node(local, "r2", 10000);
	if (err)
		return fail(g, 0, err, "waiting for r");
	for (uint64_t i = 0; i < cn->n + COUNTED; i++) {
		snprintf(name, sizeof(name), "s%llu", (unsigned long long)i);
		err = shmrpc_open(name, &o, &node);
		if (err)
			return fail(g, 0, err, "open");
		if (i == cn->n)
			bench_sysc_open();
		err = first_sends(g, cn, node, local, i);
		if (err)
			return fail(g, 0, err, "send");
		wait_count(g->c, 0, 3 * (i + 1));
		shmrpc_close(node);
	}
	err = shmrpc_send(local, "r", m, sizeof(m), -1);
	shmrpc_close(local);
	return err ? fail(g, 0, err, "send STOP") : 0;
}

static int unix_sender(struct bench_group *g, struct conn *cn)
{
	uint64_t *s = g->c->samples + 3 * cn->n, n = cn->n, m[8] = { 0 };
	int64_t t0;
	int fd, err = 0;

	for (uint64_t i = 0; i <= n && !err; i++) {
		m[0] = i < n ? i : STOP;
		m[1] = (uint64_t)(t0 = bench_now_ns());
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&cn->addr, cn->addr_len) < 0 ||
		    send(fd, m, sizeof(m), 0) != (ssize_t)sizeof(m))
			err = -errno;
		if (i < n)
			s[i] = (uint64_t)(bench_now_ns() - t0);
		if (fd >= 0)
			close(fd);
		if (!err && i < n)
			wait_count(g->c, 1, i + 1);
	}
	return err ? fail(g, 0, err, "unix first send") : 0;
}

/* One message for receiver @k (0: "r", 1: "r2"); 1 on STOP. */
static int recv_one(struct bench_group *g, struct conn *cn, struct shmrpc_node *node)
{
	uint64_t *d = g->c->samples + cn->n, m[8];
	int len = shmrpc_recv(node, m, sizeof(m), NULL, 60000);

	if (len != (int)sizeof(m))
		return len < 0 ? len : -EBADMSG;
	if (m[0] == STOP)
		return 1;
	if (m[1] && m[0] < cn->n)
		d[m[0]] = (uint64_t)(bench_now_ns() - (int64_t)m[1]);
	/* Release: the sender may close its node once it sees this. */
	atomic_fetch_add_explicit(&g->c->word[0], 1, memory_order_release);
	return 0;
}

static int shm_receiver(struct bench_group *g, struct conn *cn)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = cn->domain, .spin_us = 1000000 };
	struct shmrpc_node *r, *r2 = NULL;
	int err;

	err = shmrpc_open("r", &o, &r);
	if (!err)
		err = shmrpc_open("r2", &o, &r2);
	/* Per iteration: first to r, first to r2, warm to r; STOP to r. */
	while (!err && !(err = recv_one(g, cn, r)) && !(err = recv_one(g, cn, r2)))
		err = recv_one(g, cn, r);
	shmrpc_close(r2);
	shmrpc_close(r);
	return err < 0 ? fail(g, 1, err, "recv") : 0;
}

static int unix_listener(struct bench_group *g, struct conn *cn)
{
	uint64_t *d = g->c->samples + 4 * cn->n, m[8];
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), fd, err = 0;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&cn->addr, cn->addr_len) < 0 ||
	    listen(lfd, 64) < 0)
		return fail(g, 2, -errno, "unix listen");
	bench_gbarrier(g->c, 1, 2); /* listening before the sender connects */
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 || recv(fd, m, sizeof(m), 0) != (ssize_t)sizeof(m)) {
			err = -errno;
			break;
		}
		close(fd);
		if (m[0] == STOP)
			break;
		if (m[0] < cn->n)
			d[m[0]] = (uint64_t)(bench_now_ns() - (int64_t)m[1]);
		atomic_fetch_add_explicit(&g->c->word[1], 1, memory_order_release);
	}
	close(lfd);
	return err ? fail(g, 2, err, "unix accept/recv") : 0;
}

static int connect_member(struct bench_group *g, int idx)
{
	struct conn *cn = g->arg;
	int err;

	if (idx == 1)
		return shm_receiver(g, cn);
	if (idx == 2)
		return unix_listener(g, cn);
	err = shm_sender(g, cn);
	bench_sysc_close();
	bench_gbarrier(g->c, 1, 2); /* with the listener */
	return err ? err : unix_sender(g, cn);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Member 0 alone: JOIN_N join/leave pairs, then JOIN_MANY joins. */
static int join_member(struct bench_group *g, int idx)
{
	struct conn *cn = g->arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = cn->domain, .backend = cn->backend };
	uint64_t *s = g->c->samples, n = cn->n;
	struct shmrpc_node *base, *node, **many;
	char name[32];
	int64_t t0, t1;
	int err;

	(void)idx;
	raise_nofile();
	err = shmrpc_open("base", &o, &base);
	if (err)
		return fail(g, 0, err, "open base");
	for (uint64_t i = 0; i < n && !err; i++) {
		t0 = bench_now_ns();
		err = shmrpc_open("j", &o, &node);
		t1 = bench_now_ns();
		shmrpc_close(node);
		s[i] = (uint64_t)(t1 - t0);		    /* join */
		s[n + i] = (uint64_t)(bench_now_ns() - t1); /* leave */
	}
	bench_sysc_open(); /* counted join/leave pairs, not timed */
	for (int i = 0; i < COUNTED && !err; i++) {
		int64_t c0 = bench_sysc_read(), c1, c2;

		err = shmrpc_open("j", &o, &node);
		c1 = bench_sysc_read();
		shmrpc_close(node);
		c2 = bench_sysc_read();
		if (c0 >= 0 && c2 >= 0) {
			g->c->val[0][2] += c1 - c0 - 1;
			g->c->val[0][3] += c2 - c1 - 1;
			g->c->val[0][4]++;
		}
	}
	bench_sysc_close();
	many = calloc((size_t)cn->many, sizeof(*many));
	if (!err && !many)
		err = -ENOMEM;
	t0 = bench_now_ns();
	for (int i = 0; i < cn->many && !err; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		t1 = bench_now_ns();
		err = shmrpc_open(name, &o, &many[i]);
		s[2 * n + (uint64_t)i] = (uint64_t)(bench_now_ns() - t1);
	}
	g->c->val[0][0] = bench_now_ns() - t0;
	t0 = bench_now_ns();
	for (int i = 0; many && i < cn->many; i++)
		shmrpc_close(many[i]);
	g->c->val[0][1] = bench_now_ns() - t0;
	free(many);
	shmrpc_close(base);
	return err ? fail(g, 0, err, "join") : 0;
}

static struct bench_result *lat_result(struct bench_results *rs, const char *scen, const char *tr,
				       uint64_t *ns, uint64_t n)
{
	struct bench_result *r = bench_result_new(rs, scen, tr, 64);

	r->nsides = 0;
	r->n = n;
	r->has_lat = 1;
	bench_lat_summarise_ns(ns, n, &r->lat);
	return r;
}

static void lat_metrics(struct bench_result *r, const char *med, const char *p99, uint64_t *ns,
			uint64_t n)
{
	struct bench_lat l;

	bench_lat_summarise_ns(ns, n, &l);
	bench_metric_set(r, med, l.median);
	bench_metric_set(r, p99, l.p99);
}

static void failed(struct bench_results *rs, const char *scen, const char *tr, const char *why)
{
	struct bench_result *r = bench_result_new(rs, scen, tr, 64);

	r->nsides = 0;
	r->status = BENCH_FAILED;
	snprintf(r->why, sizeof(r->why), "%s", why);
	bench_progress(r);
}

static void run_first_send(struct bench_results *rs, const struct bench_opts *o,
			   const struct bench_cfg *cfg)
{
	struct conn cn = { .n = o->quick ? 20 : CONNECT_N };
	struct bench_group g = { .n = 3, .fn = connect_member, .arg = &cn, .timeout_s = 120 };
	uint64_t *s, n = cn.n;
	struct bench_result *r;
	char why[200] = "";
	int err;

	bench_domain(cn.domain, sizeof(cn.domain), "conn");
	cn.addr.sun_family = AF_UNIX;
	snprintf(cn.addr.sun_path + 1, sizeof(cn.addr.sun_path) - 1, "shmrpc-bench.%d",
		 (int)getpid());
	cn.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				  strlen(cn.addr.sun_path + 1));
	g.cpu[0] = cfg->cpu[0];
	g.cpu[1] = g.cpu[2] = cfg->cpu[1];
	g.c = bench_gctrl_new(7 * n);
	err = g.c ? bench_group_run(&g, why, sizeof(why)) : -ENOMEM;
	if (bench_shm_cleanup(cn.domain) > 0)
		fprintf(stderr, "shmrpc-bench: connect domain left files\n");
	if (err) {
		failed(rs, "connect", "shmrpc", why);
		bench_gctrl_free(g.c);
		return;
	}
	s = g.c->samples;
	r = lat_result(rs, "connect", "shmrpc", s, n);
	lat_metrics(r, "delivered_median_us", "delivered_p99_us", s + n, n);
	lat_metrics(r, "warm_send_median_us", "warm_send_p99_us", s + 2 * n, n);
	lat_metrics(r, "second_peer_median_us", "second_peer_p99_us", s + 5 * n, n);
	lat_metrics(r, "same_process_median_us", "same_process_p99_us", s + 6 * n, n);
	if (g.c->val[0][2]) {
		bench_metric_set(r, "syscalls_per_first_send",
				 (double)g.c->val[0][0] / (double)g.c->val[0][2]);
		bench_metric_set(r, "page_faults_per_first_send",
				 (double)g.c->val[0][1] / (double)g.c->val[0][2]);
	}
	bench_progress(r);
	r = lat_result(rs, "connect", "unix", s + 3 * n, n);
	lat_metrics(r, "delivered_median_us", "delivered_p99_us", s + 4 * n, n);
	bench_progress(r);
	bench_gctrl_free(g.c);
}

static void run_join(struct bench_results *rs, const struct bench_opts *o,
		     const struct bench_cfg *cfg, const char *backend, const char *tr)
{
	struct conn cn = { .n = o->quick ? 20 : JOIN_N,
			   .backend = backend,
			   .many = o->quick ? 100 : JOIN_MANY };
	struct bench_group g = { .n = 1, .fn = join_member, .arg = &cn, .timeout_s = 120 };
	uint64_t *s, n = cn.n;
	struct bench_result *r;
	char why[200] = "";
	int err;

	if (shmrpc_backend_available(backend) != 1) {
		r = bench_result_new(rs, "join", tr, 64);
		r->nsides = 0;
		r->status = BENCH_SKIPPED;
		snprintf(r->why, sizeof(r->why), "backend %s not available here", backend);
		bench_progress(r);
		return;
	}
	bench_domain(cn.domain, sizeof(cn.domain), "join");
	g.cpu[0] = cfg->cpu[0];
	g.c = bench_gctrl_new(2 * n + (uint64_t)cn.many);
	err = g.c ? bench_group_run(&g, why, sizeof(why)) : -ENOMEM;
	if (bench_shm_cleanup(cn.domain) > 0)
		fprintf(stderr, "shmrpc-bench: join domain left files\n");
	if (err) {
		failed(rs, "join", tr, why);
		bench_gctrl_free(g.c);
		return;
	}
	s = g.c->samples;
	r = lat_result(rs, "join", tr, s, n);
	lat_metrics(r, "leave_median_us", "leave_p99_us", s + n, n);
	if (g.c->val[0][4]) {
		bench_metric_set(r, "syscalls_per_join",
				 (double)g.c->val[0][2] / (double)g.c->val[0][4]);
		bench_metric_set(r, "syscalls_per_leave",
				 (double)g.c->val[0][3] / (double)g.c->val[0][4]);
	}
	bench_progress(r);
	r = lat_result(rs, "join1000", tr, s + 2 * n, (uint64_t)cn.many);
	r->nodes = (unsigned)cn.many;
	bench_metric_set(r, "total_ms", (double)g.c->val[0][0] / 1e6);
	bench_metric_set(r, "leave_total_ms", (double)g.c->val[0][1] / 1e6);
	bench_progress(r);
	bench_gctrl_free(g.c);
}

void bench_run_connect(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	run_first_send(rs, o, cfg);
	run_join(rs, o, cfg, "uring", "shmrpc");
	run_join(rs, o, cfg, "futex", "shmrpc-futex");
}
