// SPDX-License-Identifier: MIT
/*
 * shmrpc-bridge-bench: what the bridge costs, next to plain libnats in the
 * same run on loopback. Rows:
 *   round trip 64 B: libnats request/reply between two processes (both
 *     SendAsap, sync subscription), against a libshmrpc echo between
 *     two hosts through two bridges (client -> proxy -> bridge -> NATS ->
 *     bridge -> server and back); median and p99, one client alternating
 *     blocks of both so that both meet the same load;
 *   call 64 B: the same with shmrpc_call (request/response across the
 *     bridges: its ids, deadline and reply travel with it), in the same
 *     alternation, against the same plain NATS request/reply;
 *   throughput 64 B and 4 KiB: libnats publish/subscribe between two
 *     processes (buffered publisher, sync subscriber), against
 *     shmrpc_send/shmrpc_recv streaming through the two bridges; messages
 *     per second at the receiver, first to last;
 *   broadcast 256 B to K remote nodes (4; --bcast-k): shmrpc_broadcast
 *     from host 0 to K nodes of host 1, one BCAST per broadcast
 *     (bench_bcast.c), against one NATS publisher and K subscribers;
 *     broadcasts per second delivered to all K; reported only.
 * Targets (issue 14): bridge round trip <= 1.5x plain NATS; bridge
 * throughput >= 0.5x plain NATS publish/subscribe. Root only: the two
 * hosts are mount namespaces with their own /dev/shm.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "shmrpc.h"

struct res {
	double median, p99; /* microseconds, round trips */
	double rate;	    /* messages per second */
	uint64_t got, sent;
};

/* Round trips: BLOCKS blocks of each kind, in turn (plain NATS, bridged
 * send/recv, bridged call, ...), so that all see the same load. */
#define BLOCKS 10
static int rtt_block = 500, tp_n64 = 300000, tp_n4k = 60000;
static struct bb_bcast bc = { .k = 4, .n = 50000 };

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void summarise(double *v, int n, struct res *r)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	r->median = v[n / 2];
	r->p99 = v[(int)(n * 0.99)];
}

static int put(int fd, const struct res *r)
{
	return write(fd, r, sizeof(*r)) == sizeof(*r) ? 0 : 1;
}

static int get(int fd, struct res *r)
{
	return read(fd, r, sizeof(*r)) == sizeof(*r) ? 0 : -1;
}

/* ------------------------------------------------------------ libnats */

natsConnection *bb_nats_conn(const char *url, bool asap)
{
	natsConnection *nc = NULL;
	natsOptions *o = NULL;

	if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK ||
	    natsOptions_SetSendAsap(o, asap) != NATS_OK ||
	    natsConnection_Connect(&nc, o) != NATS_OK) {
		fprintf(stderr, "bridge-bench: connect %s: %s\n", url, nats_GetLastError(NULL));
		nc = NULL;
	}
	natsOptions_Destroy(o);
	return nc;
}

natsSubscription *bb_nats_sub(natsConnection *nc, const char *subj)
{
	natsSubscription *s = NULL;

	if (natsConnection_SubscribeSync(&s, nc, subj) != NATS_OK ||
	    natsSubscription_SetPendingLimits(s, -1, -1) != NATS_OK ||
	    natsConnection_Flush(nc) != NATS_OK)
		return NULL;
	return s;
}

static bool is_stop(const void *data, int len)
{
	return len == 4 && !memcmp(data, "stop", 4);
}

/* Echo until a "stop". */
static int nats_echo(const char *url, int ready)
{
	natsConnection *nc = bb_nats_conn(url, true);
	natsSubscription *s = nc ? bb_nats_sub(nc, "bb.echo") : NULL;
	natsMsg *m;

	if (!s || write(ready, "x", 1) != 1)
		return 1;
	for (;;) {
		if (natsSubscription_NextMsg(&m, s, 60000) != NATS_OK)
			return 1;
		if (is_stop(natsMsg_GetData(m), natsMsg_GetDataLength(m)))
			break;
		natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m),
				       natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
	}
	natsMsg_Destroy(m);
	natsConnection_Destroy(nc);
	return 0;
}

static int nats_sink(const char *url, int ready, int out, int n)
{
	natsConnection *nc = bb_nats_conn(url, false);
	natsSubscription *s = nc ? bb_nats_sub(nc, "bb.tp") : NULL;
	struct res r = { 0 };
	double first = 0, last = 0;
	natsMsg *m;

	if (!s || write(ready, "x", 1) != 1)
		return 1;
	while (r.got < (uint64_t)n && natsSubscription_NextMsg(&m, s, 2000) == NATS_OK) {
		last = bb_now_us();
		if (!r.got++)
			first = last;
		natsMsg_Destroy(m);
	}
	r.rate = r.got > 1 ? (double)(r.got - 1) / ((last - first) / 1e6) : 0;
	natsConnection_Destroy(nc);
	return put(out, &r);
}

static int nats_source(const char *url, int n, int size)
{
	natsConnection *nc = bb_nats_conn(url, false);
	char *buf = calloc(1, (size_t)size);
	int i;

	if (!nc || !buf)
		return 1;
	for (i = 0; i < n; i++)
		if (natsConnection_Publish(nc, "bb.tp", buf, size) != NATS_OK)
			return 1;
	natsConnection_FlushTimeout(nc, 10000);
	natsConnection_Destroy(nc);
	return 0;
}

/* A pair of processes: the first signals ready, the second runs, the
 * result comes from whichever writes it. */
static int pair(int (*a)(int ready, int out), int (*b)(int out), struct res *r)
{
	int rp[2], op[2], ok;
	pid_t pa, pb;
	char c;

	if (pipe(rp) || pipe(op))
		return -1;
	if ((pa = bb_fork()) == 0)
		_exit(a(rp[1], op[1]));
	if (read(rp[0], &c, 1) != 1)
		return -1;
	if ((pb = bb_fork()) == 0)
		_exit(b(op[1]));
	ok = get(op[0], r);
	bb_wait(pa);
	bb_wait(pb);
	close(rp[0]), close(rp[1]), close(op[0]), close(op[1]);
	return ok;
}

static const struct bb_env *env;
static int cur_size, cur_n;

static int a_nats_sink(int ready, int out)
{
	return nats_sink(env->url, ready, out, cur_n);
}

static int b_nats_source(int out)
{
	(void)out;
	return nats_source(env->url, cur_n, cur_size);
}

/* ------------------------------------------------------------ bridged */

struct shmrpc_node *bb_node_in(const struct bb_env *e, int host, const char *name)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = e->domain };
	struct shmrpc_node *n = NULL;

	if (bb_host_enter(e, host) || shmrpc_open(name, &o, &n)) {
		fprintf(stderr, "bridge-bench: node %s: %s\n", name, shmrpc_last_error());
		return NULL;
	}
	return n;
}

static void echo_call(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	shmrpc_reply(n, r, r->data, r->len, 0);
}

static int shm_echo(int ready)
{
	struct shmrpc_node *n = bb_node_in(env, 1, "srv");
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	int len;

	if (!n || shmrpc_serve(n, echo_call, NULL) || write(ready, "x", 1) != 1)
		return 1;
	while ((len = shmrpc_recv(n, buf, sizeof(buf), from, 60000)) >= 0 && !is_stop(buf, len))
		if (shmrpc_send(n, from, buf, (size_t)len, 10000))
			return 1;
	usleep(100000); /* the last reply out before the node goes */
	shmrpc_close(n);
	return len < 0;
}

/* One round trip of each kind: microseconds, or < 0. */
static double trip_nats(natsConnection *nc, char *buf)
{
	double t0 = bb_now_us();
	natsMsg *m;

	if (natsConnection_Request(&m, nc, "bb.echo", buf, 64, 5000) != NATS_OK)
		return -1;
	natsMsg_Destroy(m);
	return bb_now_us() - t0;
}

static double trip_shm(struct shmrpc_node *n, char *buf)
{
	double t0 = bb_now_us();

	if (shmrpc_send(n, "srv", buf, 64, 10000) || shmrpc_recv(n, buf, 64, NULL, 10000) != 64)
		return -1;
	return bb_now_us() - t0;
}

static double trip_call(struct shmrpc_node *n, char *buf)
{
	double t0 = bb_now_us();

	if (shmrpc_call(n, "srv", buf, 64, buf, 64, 10000) != 64)
		return -1;
	return bb_now_us() - t0;
}

static double trip(int kind, natsConnection *nc, struct shmrpc_node *n, char *buf)
{
	return kind == 0 ? trip_nats(nc, buf) : kind == 1 ? trip_shm(n, buf) : trip_call(n, buf);
}

/* The client: blocks of plain, bridged and called round trips in turn. */
static int mixed_rtt(int out)
{
	struct shmrpc_node *n = bb_node_in(env, 0, "cli");
	natsConnection *nc = bb_nats_conn(env->url, true);
	int total = BLOCKS * rtt_block, b, i, k[3] = { 0, 0, 0 };
	double *v[3] = { calloc((size_t)total, sizeof(double)),
			 calloc((size_t)total, sizeof(double)),
			 calloc((size_t)total, sizeof(double)) };
	struct res r[3] = { { 0 } };
	char buf[64] = { 0 };

	if (!n || !nc || !v[0] || !v[1] || !v[2] || shmrpc_wait_node(n, "srv", 10000))
		return 1;
	for (i = 0; i < 200; i++) /* warm every path */
		for (b = 0; b < 3; b++)
			if (trip(b, nc, n, buf) < 0)
				return 1;
	for (b = 0; b < 3 * BLOCKS; b++)
		for (i = 0; i < rtt_block; i++) {
			double t = trip(b % 3, nc, n, buf);

			if (t < 0)
				return 1;
			v[b % 3][k[b % 3]++] = t;
		}
	for (b = 0; b < 3; b++)
		summarise(v[b], total, &r[b]);
	natsConnection_Publish(nc, "bb.echo", "stop", 4);
	natsConnection_FlushTimeout(nc, 5000);
	shmrpc_send(n, "srv", "stop", 4, 10000);
	usleep(100000);
	shmrpc_close(n);
	natsConnection_Destroy(nc);
	return put(out, &r[0]) || put(out, &r[1]) || put(out, &r[2]);
}

/* Both echo servers, then the client; its three results. */
static int rtt_run(struct res *plain, struct res *bridged, struct res *called)
{
	int rp[2], op[2], rc;
	pid_t pa, pb, pc;
	char c;

	if (pipe(rp) || pipe(op))
		return -1;
	if ((pa = bb_fork()) == 0)
		_exit(nats_echo(env->url, rp[1]));
	if ((pb = bb_fork()) == 0)
		_exit(shm_echo(rp[1]));
	if (read(rp[0], &c, 1) != 1 || read(rp[0], &c, 1) != 1)
		return -1;
	if ((pc = bb_fork()) == 0)
		_exit(mixed_rtt(op[1]));
	rc = get(op[0], plain) || get(op[0], bridged) || get(op[0], called) ? -1 : 0;
	bb_wait(pa);
	bb_wait(pb);
	bb_wait(pc);
	close(rp[0]), close(rp[1]), close(op[0]), close(op[1]);
	return rc;
}

static int a_shm_sink(int ready, int out)
{
	struct shmrpc_node *n = bb_node_in(env, 1, "sink");
	static char buf[8192];
	struct res r = { 0 };
	double first = 0, last = 0;

	if (!n || write(ready, "x", 1) != 1)
		return 1;
	while (r.got < (uint64_t)cur_n && shmrpc_recv(n, buf, sizeof(buf), NULL, 5000) >= 0) {
		last = bb_now_us();
		if (!r.got++)
			first = last;
	}
	r.rate = r.got > 1 ? (double)(r.got - 1) / ((last - first) / 1e6) : 0;
	shmrpc_close(n);
	return put(out, &r);
}

static int b_shm_source(int out)
{
	struct shmrpc_node *n = bb_node_in(env, 0, "src");
	static char buf[8192];
	int i;

	(void)out;
	if (!n || shmrpc_wait_node(n, "sink", 10000))
		return 1;
	for (i = 0; i < cur_n; i++)
		if (shmrpc_send(n, "sink", buf, (size_t)cur_size, 10000))
			return 1;
	usleep(200000); /* what the proxy holds goes out before the node leaves */
	shmrpc_close(n);
	return 0;
}

/* ------------------------------------------------------------ report */

/* target: the bound on the ratio, or 0 for a row only reported */
static void row_rtt(const char *what, const struct res *p, const struct res *b, double target)
{
	double q = b->median / p->median;

	if (target > 0)
		printf("%-22s %9.1f us %9.1f us  %5.2fx  <= %.1fx  %s\n", what, p->median,
		       b->median, q, target, q <= target ? "met" : "MISSED");
	else
		printf("%-22s %9.1f us %9.1f us  %5.2fx  (reported)\n", what, p->median, b->median,
		       q);
	printf("%-22s %9.1f us %9.1f us  %5.2fx\n", "  p99", p->p99, b->p99, b->p99 / p->p99);
}

static void row_tp(const char *what, const struct res *p, const struct res *b, int n)
{
	double q = b->rate / p->rate;

	printf("%-22s %10.0f/s %10.0f/s  %5.2fx  >= 0.5x  %s", what, p->rate, b->rate, q,
	       q >= 0.5 ? "met" : "MISSED");
	if (p->got < (uint64_t)n || b->got < (uint64_t)n)
		printf("  (received %llu and %llu of %d)", (unsigned long long)p->got,
		       (unsigned long long)b->got, n);
	printf("\n");
}

static int run(struct bb_env *e)
{
	struct res p[3], b[3], call;
	int sizes[2] = { 64, 4096 }, ns[2] = { tp_n64, tp_n4k }, i;

	env = e;
	if (rtt_run(&p[0], &b[0], &call))
		return -1;
	for (i = 0; i < 2; i++) {
		cur_size = sizes[i];
		cur_n = ns[i];
		if (pair(a_nats_sink, b_nats_source, &p[1 + i]) ||
		    pair(a_shm_sink, b_shm_source, &b[1 + i]))
			return -1;
	}
	if (bc.k > 0 && bb_bcast_run(e, &bc))
		return -1;
	printf("\nshmrpc-bridge-bench: loopback, one nats-server, libnats %s; same run\n",
	       nats_GetVersion());
	printf("%-22s %12s %12s  %6s  %7s\n", "", "plain NATS", "2 bridges", "ratio", "target");
	row_rtt("round trip 64 B", &p[0], &b[0], 1.5);
	row_rtt("call 64 B", &p[0], &call, 0);
	row_tp("throughput 64 B", &p[1], &b[1], tp_n64);
	row_tp("throughput 4 KiB", &p[2], &b[2], tp_n4k);
	if (bc.k > 0)
		bb_bcast_print(&bc);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = { { "bridge", required_argument, NULL, 'b' },
					       { "quick", no_argument, NULL, 'q' },
					       { "spin-us", required_argument, NULL, 's' },
					       { "tp-n", required_argument, NULL, 'n' },
					       { "bcast-k", required_argument, NULL, 'k' },
					       { "bcast-n", required_argument, NULL, 'N' },
					       { "help", no_argument, NULL, 'h' },
					       { NULL, 0, NULL, 0 } };
	struct bb_env e = { 0 };
	char bin[PATH_MAX];
	int c, rc;

	while ((c = getopt_long(argc, argv, "b:qs:n:k:N:h", longs, NULL)) != -1) {
		if (c == 'n') {
			tp_n64 = atoi(optarg) > 0 ? atoi(optarg) : tp_n64;
		} else if (c == 'k' && atoi(optarg) >= 0 && atoi(optarg) <= 64) {
			bc.k = atoi(optarg); /* 0: no broadcast row */
		} else if (c == 'N' && atoi(optarg) > 1) {
			bc.n = atoi(optarg);
		} else if (c == 's') {
			snprintf(e.spin_us, sizeof(e.spin_us), "%s", optarg);
		} else if (c == 'b' && realpath(optarg, bin)) {
			e.bridge_bin = bin;
		} else if (c == 'q') {
			rtt_block = 100, tp_n64 = 50000, tp_n4k = 10000, bc.n = 10000;
		} else {
			printf("usage: shmrpc-bridge-bench --bridge PATH [--quick] [--spin-us N] "
			       "[--tp-n N] [--bcast-k K (0-64, 0: no broadcast row)] [--bcast-n N]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!e.bridge_bin) {
		fprintf(stderr, "shmrpc-bridge-bench: --bridge PATH (the shmrpc-bridge binary)\n");
		return 2;
	}
	if (geteuid() != 0) {
		printf("shmrpc-bridge-bench: skipped: the two hosts are mount namespaces (root)\n");
		return 0;
	}
	snprintf(e.logdir, sizeof(e.logdir), "/tmp/shmrpc-bridge-bench.%d", (int)getpid());
	snprintf(e.domain, sizeof(e.domain), "bbench%d", (int)getpid());
	if (mkdir(e.logdir, 0755) || bb_nats_start(&e) || bb_hosts_start(&e)) {
		bb_stop_all(&e);
		return 1;
	}
	rc = run(&e);
	bb_stop_all(&e);
	if (rc)
		fprintf(stderr, "shmrpc-bridge-bench: a run failed (logs in %s)\n", e.logdir);
	return rc ? 1 : 0;
}
