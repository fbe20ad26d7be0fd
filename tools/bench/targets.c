// SPDX-License-Identifier: MIT
/*
 * The issue's targets for this machine, evaluated on the results of the
 * run: every ratio is between numbers measured in the same run. A target
 * whose inputs were not measured (scenario not run, failed, skipped) is
 * reported as such, never guessed.
 *
 *   1a  ping-pong, receiver awake and spinning: median <= 3x the busy-spin
 *       floor (shmrpc-spin; the floor from interleaved blocks, pingpong.c)
 *   1b  receiver asleep between messages: median <= 1.15x and p99 <= 1.5x
 *       futex(2)'s (shmrpc-sleep = uring, shmrpc-sleep-futex; 64 B, 4 KiB)
 *   2   stream 64 B: >= 10 M msgs/s and >= 30x pipe; 1 MiB: >= 50% of one
 *       core's memcpy bandwidth
 *   4   stream 64 B (saturation): < 0.01 system calls per message
 *   5   idle node: < 1 ms of CPU per second
 *   6   first send < 50 us; 1000 joins < 100 ms in total
 *   7   2 nodes <= 1 MiB; 256 nodes in a ring <= 80 MiB (default rings,
 *       every page of every ring touched)
 *   11  (issue 11) stream 64 B through shmrpc_send/shmrpc_recv: >= 3x
 *       ZeroMQ over ipc:// (zmq) and >= 0.5x the bare ring (spin);
 *       through shmrpc_peer_sendv/shmrpc_recv_batch in batches of 32
 *       (shmrpc-batch): >= 0.7x the bare ring; both backends each
 *   12  (issue 12) shmrpc_call 64 B, server awake: median <= 2.5x the
 *       one-way ping-pong median of shmrpc_send (shmrpc-spin; ping-pong
 *       medians are one-way: round trips halved); server asleep: median
 *       <= 1.2x futex(2)'s round trip (twice its one-way median);
 *       kill -9 of a server with 100 calls pending: the last -EPIPE within
 *       1 ms (median). Pipelined calls/s is reported next to a Unix socket's
 *       (rpc.c), without a limit.
 */
#include <math.h>
#include <string.h>

#include "bench.h"

static const struct bench_result *find(const struct bench_report *rep, const char *scen,
				       const char *tr, size_t size, const char *variant,
				       unsigned nodes)
{
	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (r->status != BENCH_OK || strcmp(r->scenario, scen) || strcmp(r->transport, tr))
			continue;
		if (size && r->size != size)
			continue;
		if (variant && (!r->variant || strcmp(r->variant, variant)))
			continue;
		if (nodes && r->nodes != nodes)
			continue;
		return r;
	}
	return NULL;
}

static void add(struct bench_report *rep, const char *id, const char *what, const char *unit,
		double value, double limit, int at_most)
{
	struct bench_target *t;

	if (rep->nt >= BENCH_MAX_TARGETS)
		return;
	t = &rep->t[rep->nt++];
	t->id = id;
	t->what = what;
	t->unit = unit;
	t->value = value;
	t->limit = limit;
	t->at_most = at_most;
	t->met = isnan(value) ? -1 : at_most ? value <= limit : value >= limit;
}

#define V(r, expr) ((r) ? (expr) : NAN)

static void latency_targets(struct bench_report *rep)
{
	static const char *const sleeps[2] = { "shmrpc-sleep", "shmrpc-sleep-futex" };
	static const char *const med[2][2] = {
		{ "receiver asleep, uring, 64 B: median / futex's",
		  "receiver asleep, uring, 4 KiB: median / futex's" },
		{ "receiver asleep, futex backend, 64 B: median / futex's",
		  "receiver asleep, futex backend, 4 KiB: median / futex's" }
	};
	static const char *const p99[2][2] = {
		{ "receiver asleep, uring, 64 B: p99 / futex's",
		  "receiver asleep, uring, 4 KiB: p99 / futex's" },
		{ "receiver asleep, futex backend, 64 B: p99 / futex's",
		  "receiver asleep, futex backend, 4 KiB: p99 / futex's" }
	};
	const struct bench_result *r;

	r = find(rep, "pingpong", "shmrpc-spin", 64, NULL, 0);
	add(rep, "1a", "receiver spinning, 64 B: median / busy-spin floor (interleaved)", "x",
	    V(r, r->ratio_floor), 3.0, 1);
	/* Against futex(2)'s results, whatever --baseline says. */
	for (int b = 0; b < 2; b++)
		for (int s = 0; s < 2; s++) {
			const struct bench_result *f =
				find(rep, "pingpong", "futex", s ? 4096 : 64, NULL, 0);

			r = find(rep, "pingpong", sleeps[b], s ? 4096 : 64, NULL, 0);
			add(rep, "1b", med[b][s], "x futex",
			    r && f ? r->lat.median / f->lat.median : NAN, 1.15, 1);
			add(rep, "1b", p99[b][s], "x futex", r && f ? r->lat.p99 / f->lat.p99 : NAN,
			    1.5, 1);
		}
}

static void stream_targets(struct bench_report *rep)
{
	const struct bench_result *r = find(rep, "stream", "shmrpc", 64, NULL, 0);
	const struct bench_result *p = find(rep, "stream", "pipe", 64, NULL, 0);
	const struct bench_result *zc = find(rep, "stream", "shmrpc-zc", 64, NULL, 0);
	const struct bench_result *m = find(rep, "memcpy", "memcpy", 0, NULL, 0);
	const struct bench_result *big = find(rep, "stream", "shmrpc", 1048576, NULL, 0);
	const struct bench_result *bigzc = find(rep, "stream", "shmrpc-zc", 1048576, NULL, 0);

	add(rep, "2", "stream 64 B, msgs/s (shmrpc_send/recv)", "M msgs/s",
	    V(r, r->msgs_per_s / 1e6), 10.0, 0);
	add(rep, "2", "stream 64 B, zero-copy calls", "M msgs/s", V(zc, zc->msgs_per_s / 1e6), 10.0,
	    0);
	add(rep, "2", "stream 64 B, msgs/s over pipe's", "x pipe",
	    r && p ? r->msgs_per_s / p->msgs_per_s : NAN, 30.0, 0);
	add(rep, "2", "stream 1 MiB, GB/s over one core's memcpy", "x memcpy",
	    big && m ? big->gb_per_s / m->gb_per_s : NAN, 0.5, 0);
	add(rep, "2", "stream 1 MiB zero-copy, GB/s over memcpy's", "x memcpy",
	    bigzc && m ? bigzc->gb_per_s / m->gb_per_s : NAN, 0.5, 0);
	r = find(rep, "syscalls", "shmrpc", 64, NULL, 0);
	add(rep, "4", "stream 64 B (saturated): system calls per message", "calls/msg",
	    V(r, bench_metric(r, "syscalls_per_msg")), 0.01, 1);
	r = find(rep, "syscalls", "shmrpc-futex", 64, NULL, 0);
	add(rep, "4", "the same, futex backend", "calls/msg",
	    V(r, bench_metric(r, "syscalls_per_msg")), 0.01, 1);
}

/* Issue 11: plain send/recv against ZeroMQ and against the bare ring, and
 * the batch calls against the bare ring, on each backend. */
static void issue11_targets(struct bench_report *rep)
{
	static const char *const plain[2] = { "shmrpc", "shmrpc-futex" };
	static const char *const batch[2] = { "shmrpc-batch", "shmrpc-batch-futex" };
	static const char *const what[3][2] = {
		{ "stream 64 B, shmrpc_send/recv (uring) msgs/s over ZeroMQ's (ipc)",
		  "stream 64 B, shmrpc_send/recv (futex) msgs/s over ZeroMQ's (ipc)" },
		{ "stream 64 B, shmrpc_send/recv (uring) msgs/s over the bare ring's",
		  "stream 64 B, shmrpc_send/recv (futex) msgs/s over the bare ring's" },
		{ "stream 64 B, peer_sendv/recv_batch x32 (uring) over the bare ring's",
		  "stream 64 B, peer_sendv/recv_batch x32 (futex) over the bare ring's" },
	};
	const struct bench_result *z = find(rep, "stream", "zmq", 64, NULL, 0);
	const struct bench_result *s = find(rep, "stream", "spin", 64, NULL, 0);
	const struct bench_result *r, *b;

	for (int k = 0; k < 2; k++) {
		r = find(rep, "stream", plain[k], 64, NULL, 0);
		b = find(rep, "stream", batch[k], 64, NULL, 0);
		add(rep, "11", what[0][k], "x zmq", r && z ? r->msgs_per_s / z->msgs_per_s : NAN,
		    3.0, 0);
		add(rep, "11", what[1][k], "x spin", r && s ? r->msgs_per_s / s->msgs_per_s : NAN,
		    0.5, 0);
		add(rep, "11", what[2][k], "x spin", b && s ? b->msgs_per_s / s->msgs_per_s : NAN,
		    0.7, 0);
	}
}

/* Issue 12: calls (whole round trips) against ping-pong and futex(2)
 * (one-way medians); a server's death. */
static void issue12_targets(struct bench_report *rep)
{
	const struct bench_result *aw = find(rep, "rpc", "shmrpc-awake", 64, NULL, 0);
	const struct bench_result *as = find(rep, "rpc", "shmrpc-asleep", 64, NULL, 0);
	const struct bench_result *k = find(rep, "rpc", "kill", 0, NULL, 0);
	const struct bench_result *pp = find(rep, "pingpong", "shmrpc-spin", 64, NULL, 0);
	const struct bench_result *f = find(rep, "pingpong", "futex", 64, NULL, 0);

	add(rep, "12", "call 64 B, server awake: median / one-way ping-pong median", "x 1-way",
	    aw && pp ? aw->lat.median / pp->lat.median : NAN, 2.5, 1);
	add(rep, "12", "call 64 B, server asleep: median / futex round trip median", "x futex",
	    as && f ? as->lat.median / (2 * f->lat.median) : NAN, 1.2, 1);
	add(rep, "12", "kill -9, 100 calls pending: the last -EPIPE, median", "us",
	    V(k, k->lat.median), 1000.0, 1);
}

static void other_targets(struct bench_report *rep)
{
	const struct bench_result *r;

	r = find(rep, "idle", "shmrpc", 0, NULL, 0);
	add(rep, "5", "idle node (uring), CPU per second", "ms/s",
	    V(r, bench_metric(r, "cpu_ms_per_s")), 1.0, 1);
	r = find(rep, "idle", "shmrpc-futex", 0, NULL, 0);
	add(rep, "5", "idle node (futex backend), CPU per second", "ms/s",
	    V(r, bench_metric(r, "cpu_ms_per_s")), 1.0, 1);
	r = find(rep, "connect", "shmrpc", 0, NULL, 0);
	add(rep, "6", "first send (connects), median", "us", V(r, r->lat.median), 50.0, 1);
	r = find(rep, "join1000", "shmrpc", 0, NULL, 1000);
	add(rep, "6", "1000 nodes join one domain (uring), total", "ms",
	    V(r, bench_metric(r, "total_ms")), 100.0, 1);
	r = find(rep, "join1000", "shmrpc-futex", 0, NULL, 1000);
	add(rep, "6", "1000 nodes join one domain (futex backend), total", "ms",
	    V(r, bench_metric(r, "total_ms")), 100.0, 1);
	r = find(rep, "memory", "shmrpc", 0, "ring", 2);
	add(rep, "7", "2 nodes, every ring page touched", "MiB", V(r, bench_metric(r, "mib_full")),
	    1.0, 1);
	r = find(rep, "memory", "shmrpc", 0, "ring", 256);
	add(rep, "7", "256 nodes, ring topology, every ring page touched", "MiB",
	    V(r, bench_metric(r, "mib_full")), 80.0, 1);
}

void bench_targets_eval(struct bench_report *rep)
{
	rep->nt = 0;
	latency_targets(rep);
	stream_targets(rep);
	other_targets(rep);
	issue11_targets(rep);
	issue12_targets(rep);
}
