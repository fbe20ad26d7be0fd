// SPDX-License-Identifier: MIT
/*
 * Fan-in (8 producers -> 1 consumer) and broadcast (1 producer -> 8
 * consumers), 64-byte messages, over the group transports (tr_group.c,
 * tr_gshmrpc.c). Producers run on the first CPU, consumers on the second.
 *
 *  fanin      every producer sends back to back for warm-up + duration,
 *             then END; the consumer checks each producer's sequence and
 *             measures from the end of the warm-up to the first END:
 *             delivered msgs/s, CPU per message on each side, system calls
 *             and (libshmrpc) wakes and sleeps per message
 *  broadcast  the producer broadcasts back to back; each consumer measures
 *             its own window; delivered msgs/s is the sum over consumers
 *  bcast-cost the producer broadcasts BCAST_RATE times a second, so every
 *             consumer sleeps between messages and every delivery needs a
 *             wake: the cost of one call as its caller sees it, wall time
 *             and the thread's CPU time (CLOCK_THREAD_CPUTIME_ID around
 *             the call, the cost of reading that clock subtracted), and
 *             per wake: call CPU / wakes (libshmrpc counts them; a kernel
 *             broadcast wakes each consumer once); system calls inside one
 *             call are counted (syscount.c, read around each call) during
 *             the warm-up calls only, as counting slows every call
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "bench.h"

#define FAN_N 8
#define FAN_SIZE 64
#define FAN_END UINT64_MAX
#define BCAST_RATE 1000.0
#define COST_WARM 50 /* calls before measuring; their system calls are counted */
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum mode { M_FANIN, M_BCAST, M_COST };

struct fan {
	struct bench_gchan ch;
	enum mode mode;
	double warm_s, duration;
	uint64_t calls; /* bcast-cost: measured calls */
};

static void stamp(uint64_t *m, uint64_t seq, uint64_t who)
{
	m[0] = seq;
	m[1] = who;
	m[FAN_SIZE / 8 - 1] = seq;
}

static void lib_snap(struct fan *f, int64_t *v)
{
	struct bench_libctr l = { 0 };

	if (f->ch.t->counters)
		f->ch.t->counters(&f->ch, &l);
	v[0] = (int64_t)l.wakes;
	v[1] = (int64_t)l.sleeps;
	v[2] = (int64_t)l.spins;
}

static int producer(struct bench_group *g, struct fan *f, int idx, uint64_t *m)
{
	struct bench_acct a;
	int64_t end, l0[3], l1[3];
	uint64_t seq = 0;
	int rc;

	lib_snap(f, l0);
	bench_acct_begin(&a);
	end = a.wall0 + (int64_t)((f->warm_s + f->duration) * 1e9);
	for (;; seq++) {
		stamp(m, seq, (uint64_t)idx);
		rc = f->ch.t->send(&f->ch, m, FAN_SIZE);
		if (rc < 0)
			return bench_gfail(g->c, idx, rc, "producer %d: send #%llu: %s", idx,
					   (unsigned long long)seq, strerror(-rc));
		if (seq % 64 == 63 && bench_now_ns() >= end)
			break;
	}
	seq++;
	bench_acct_end(&a, &g->c->out[idx], seq);
	lib_snap(f, l1);
	for (int k = 0; k < 3; k++)
		g->c->val[idx][k] = l1[k] - l0[k];
	stamp(m, FAN_END, (uint64_t)idx);
	rc = f->ch.t->send(&f->ch, m, FAN_SIZE);
	return rc < 0 ? bench_gfail(g->c, idx, rc, "producer %d: send END", idx) : 0;
}

/* Consumer: receive until every producer's END (fan-in) or the END. */
static int consumer(struct bench_group *g, struct fan *f, int idx, uint64_t *m)
{
	int nprod = f->ch.nprod, ends = 0, n;
	uint64_t want[FAN_N] = { 0 }, total = 0, n0 = 0, nwin = 0, p;
	int64_t warm_end, t0 = -1, t1 = -1, l0[3], l1[3];
	struct bench_acct a;

	lib_snap(f, l0);
	bench_acct_begin(&a);
	warm_end = a.wall0 + (int64_t)(f->warm_s * 1e9);
	while (ends < nprod) {
		n = f->ch.t->recv(&f->ch, m, FAN_SIZE);
		if (n < 0)
			return bench_gfail(g->c, idx, n, "consumer %d: recv: %s", idx,
					   strerror(-n));
		p = f->mode == M_FANIN ? m[1] : 0;
		if (n != FAN_SIZE || p >= (uint64_t)nprod)
			return bench_gfail(g->c, idx, -EBADMSG, "consumer %d: bad message", idx);
		if (m[0] == FAN_END) {
			if (!ends++) { /* the window closes at the first END */
				t1 = bench_now_ns();
				nwin = total - n0;
			}
			continue;
		}
		if (m[0] != want[p] || m[FAN_SIZE / 8 - 1] != want[p])
			return bench_gfail(g->c, idx, -EBADMSG,
					   "consumer %d: from %llu got #%llu, want #%llu", idx,
					   (unsigned long long)p, (unsigned long long)m[0],
					   (unsigned long long)want[p]);
		want[p]++;
		if (++total % 256 == 0 && t0 < 0 && bench_now_ns() >= warm_end) {
			t0 = bench_now_ns();
			n0 = total;
		}
	}
	if (t0 < 0) { /* too few to warm up: everything counts */
		t0 = a.wall0;
		nwin = total;
	}
	bench_acct_end(&a, &g->c->out[idx], total);
	lib_snap(f, l1);
	for (int k = 0; k < 3; k++)
		g->c->val[idx][k] = l1[k] - l0[k];
	g->c->val[idx][4] = (int64_t)nwin;
	g->c->val[idx][5] = t1 - t0;
	return 0;
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* bcast-cost producer: one timed call every 1 / BCAST_RATE s. */
static int cost_producer(struct bench_group *g, struct fan *f, uint64_t *m)
{
	int64_t gap = (int64_t)(1e9 / BCAST_RATE), due = bench_now_ns(), c0, c1, w0, w1, s0, s1;
	int64_t clk = INT64_MAX, calls_sys = 0, l0[3], l1[3];
	uint64_t warm = COST_WARM, total = warm + f->calls, k;
	struct timespec ts;
	int rc;

	prctl(PR_SET_TIMERSLACK, 1UL);
	for (int i = 0; i < 1000; i++) { /* what reading the clock costs */
		c0 = thread_cpu_ns();
		c1 = thread_cpu_ns();
		clk = c1 - c0 < clk ? c1 - c0 : clk;
	}
	bench_sysc_open(); /* for the warm-up calls only: it costs each call */
	for (k = 0; k < total; k++) {
		if (k == warm)
			bench_sysc_close();
		ts.tv_sec = due / 1000000000;
		ts.tv_nsec = due % 1000000000;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		due += gap;
		if (k == warm)
			lib_snap(f, l0);
		stamp(m, k, 0);
		s0 = bench_sysc_read();
		c0 = thread_cpu_ns();
		w0 = bench_now_ns();
		rc = f->ch.t->send(&f->ch, m, FAN_SIZE);
		w1 = bench_now_ns();
		c1 = thread_cpu_ns();
		s1 = bench_sysc_read();
		if (rc != f->ch.ncons)
			return bench_gfail(g->c, 0, rc < 0 ? rc : -EIO, "broadcast #%llu: %d",
					   (unsigned long long)k, rc);
		if (k < warm) {
			/* minus the closing read and the two clock reads between */
			calls_sys += s0 >= 0 && s1 >= 0 ? s1 - s0 - 3 : 0;
			continue;
		}
		g->c->samples[k - warm] = (uint64_t)(w1 - w0);
		g->c->samples[g->c->cap / 2 + k - warm] =
			(uint64_t)(c1 - c0 > clk ? c1 - c0 - clk : 0);
	}
	lib_snap(f, l1);
	for (int i = 0; i < 3; i++)
		g->c->val[0][i] = l1[i] - l0[i];
	g->c->val[0][3] = calls_sys;
	g->c->val[0][6] = clk;
	stamp(m, FAN_END, 0);
	rc = f->ch.t->send(&f->ch, m, FAN_SIZE);
	return rc < 0 ? bench_gfail(g->c, 0, rc, "broadcast END") : 0;
}

static int fan_attach(struct bench_group *g, int idx)
{
	struct fan *f = g->arg;
	int err;

	f->ch.idx = idx;
	err = f->ch.t->attach ? f->ch.t->attach(&f->ch, idx) : 0;
	return err ? bench_gfail(g->c, idx, err, "member %d: attach: %s", idx, strerror(-err)) : 0;
}

static void fan_detach(struct bench_group *g, int idx)
{
	struct fan *f = g->arg;

	(void)idx;
	if (f->ch.t->detach)
		f->ch.t->detach(&f->ch);
}

static int fan_member(struct bench_group *g, int idx)
{
	struct fan *f = g->arg;
	uint64_t m[FAN_SIZE / 8] = { 0 };

	if (idx >= f->ch.nprod)
		return consumer(g, f, idx, m);
	if (f->mode == M_COST)
		return cost_producer(g, f, m);
	return producer(g, f, idx, m);
}

/* Sum of a per-member value over members [a, b). */
static double vsum(const struct bench_gctrl *c, int a, int b, int k)
{
	double s = 0;

	for (int i = a; i < b; i++)
		s += (double)c->val[i][k];
	return s;
}

static double cpu_s(const struct bench_side_out *o)
{
	return (double)(o->user_ns + o->sys_ns) / 1e9;
}

/* CPU seconds, messages and system calls of members [a, b). */
static void side_sums(const struct bench_gctrl *c, int a, int b, double *cpu, double *msgs,
		      double *calls)
{
	*cpu = *msgs = *calls = 0;
	for (int i = a; i < b; i++) {
		*cpu += cpu_s(&c->out[i]);
		*msgs += (double)c->out[i].msgs;
		*calls = *calls < 0 || c->out[i].syscalls < 0 ? -1 :
								*calls + (double)c->out[i].syscalls;
	}
}

static void fan_results(struct bench_result *r, const struct fan *f, const struct bench_gctrl *c)
{
	int np = f->ch.nprod, nc = f->ch.ncons, n = np + nc;
	double pcpu, pmsgs, pcalls, ccpu, cmsgs, ccalls, rate = 0, wall = 0;

	side_sums(c, 0, np, &pcpu, &pmsgs, &pcalls);
	side_sums(c, np, n, &ccpu, &cmsgs, &ccalls);
	for (int i = np; i < n; i++) {
		if (c->val[i][5] > 0)
			rate += (double)c->val[i][4] / ((double)c->val[i][5] / 1e9);
		wall += (double)c->out[i].wall_ns / 1e9 / nc;
	}
	r->msgs_per_s = rate;
	r->gb_per_s = rate * FAN_SIZE / 1e9;
	bench_metric_set(r, "prod_cpu_us_per_msg", pcpu * 1e6 / pmsgs);
	bench_metric_set(r, "cons_cpu_us_per_msg", ccpu * 1e6 / cmsgs);
	bench_metric_set(r, "cons_cpu_s_per_s", ccpu / nc / wall);
	if (pcalls >= 0 && ccalls >= 0)
		bench_metric_set(r, "syscalls_per_msg", (pcalls + ccalls) / cmsgs);
	if (f->mode == M_BCAST) {
		bench_metric_set(r, "bcasts_per_s", rate / nc);
		bench_metric_set(r, "prod_cpu_us_per_bcast", pcpu * 1e6 / pmsgs);
	}
	if (f->ch.t->counters) {
		bench_metric_set(r, "lib_wakes_per_msg", (vsum(c, 0, n, 0)) / cmsgs);
		bench_metric_set(r, "lib_sleeps_per_msg", (vsum(c, 0, n, 1)) / cmsgs);
	}
}

static void cost_results(struct bench_result *r, const struct fan *f, struct bench_gctrl *c)
{
	uint64_t k = f->calls, *cpu = c->samples + c->cap / 2;
	double mean = 0, wakes;
	struct bench_lat l;

	for (uint64_t i = 0; i < k; i++)
		mean += (double)cpu[i] / 1e3 / (double)k;
	r->n = k;
	bench_lat_summarise_ns(c->samples, k, &r->lat); /* wall time of each call */
	r->has_lat = 1;
	bench_lat_summarise_ns(cpu, k, &l);
	/* Counted by libshmrpc only; a kernel baseline's wakes are not seen. */
	wakes = f->ch.t->counters ? (double)c->val[0][0] / (double)k : NAN;
	bench_metric_set(r, "call_cpu_us_mean", mean);
	bench_metric_set(r, "call_cpu_us_median", l.median);
	bench_metric_set(r, "call_cpu_us_p99", l.p99);
	bench_metric_set(r, "wakes_per_call", wakes);
	bench_metric_set(r, "cpu_us_per_wake", wakes > 0 ? mean / wakes : NAN); /* NAN > 0: false */
	bench_metric_set(r, "syscalls_per_call", (double)c->val[0][3] / COST_WARM);
	bench_metric_set(r, "thread_clock_ns", (double)c->val[0][6]);
	r->rate = BCAST_RATE; /* offered, a parameter of the row */
}

static void fan_run(struct bench_results *rs, const struct bench_opts *o, const struct bench_gtr *t,
		    enum mode mode, const char *scen)
{
	struct bench_result *r = bench_result_new(rs, scen, t->name, FAN_SIZE);
	struct fan f = { .mode = mode };
	struct bench_group g = { 0 };
	int np = mode == M_FANIN ? FAN_N : 1, nc = mode == M_FANIN ? 1 : FAN_N, err;
	int cpu[2];

	r->nsides = 0;
	r->nodes = (unsigned)(np + nc);
	f.ch = (struct bench_gchan){ .t = t,
				     .topo = mode == M_FANIN ? BENCH_FANIN : BENCH_BCAST,
				     .nprod = np,
				     .ncons = nc,
				     .msg_size = FAN_SIZE,
				     .buf_bytes = BENCH_BUF_MIN,
				     .idx = -1 };
	f.duration = o->duration > 0 ? o->duration : o->quick ? 0.1 : 0.5;
	f.warm_s = f.duration / 10 < 0.02 ? 0.02 : f.duration / 10;
	f.calls = (uint64_t)(BCAST_RATE * (o->quick ? 0.2 : 1.0));
	bench_pick_cpus(cpu);
	g.n = np + nc;
	for (int i = 0; i < g.n; i++)
		g.cpu[i] = cpu[i >= np];
	g.attach = fan_attach;
	g.fn = fan_member;
	g.detach = fan_detach;
	g.arg = &f;
	g.timeout_s = 60;
	g.c = bench_gctrl_new(mode == M_COST ? 2 * f.calls : 0);
	err = g.c ? t->setup(&f.ch) : -ENOMEM;
	if (err) {
		r->status = err == -EMSGSIZE || err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
		snprintf(r->why, sizeof(r->why), "setup: %s%s%s", strerror(-err),
			 f.ch.why[0] ? ": " : "", f.ch.why);
	} else {
		err = bench_group_run(&g, r->why, sizeof(r->why));
		if (err)
			r->status = BENCH_FAILED;
		else if (mode == M_COST)
			cost_results(r, &f, g.c);
		else
			fan_results(r, &f, g.c);
		t->teardown(&f.ch);
	}
	bench_gctrl_free(g.c);
	bench_progress(r);
}

static void fan_all(struct bench_results *rs, const struct bench_opts *o, enum mode mode,
		    const char *scen)
{
	unsigned topo = mode == M_FANIN ? BENCH_FANIN : BENCH_BCAST;
	const struct bench_gtr *t;

	for (size_t i = 0; (t = bench_gtransports[i]); i++)
		if ((t->topos & topo) && bench_in_list(o->transports, t->name))
			fan_run(rs, o, t, mode, scen);
}

void bench_run_fanin(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	(void)cfg;
	fan_all(rs, o, M_FANIN, "fanin");
}

void bench_run_broadcast(struct bench_results *rs, const struct bench_opts *o,
			 struct bench_cfg *cfg)
{
	(void)cfg;
	fan_all(rs, o, M_BCAST, "broadcast");
	fan_all(rs, o, M_COST, "bcast-cost");
}
