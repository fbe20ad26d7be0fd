// SPDX-License-Identifier: MIT
/*
 * Rounds: one result measured in several short pair runs, interleaved with
 * the other results of its scenario (round 1 of every transport, then
 * round 2 of every transport, ...), and pooled: the samples of all rounds
 * together, CPU times and messages summed.
 *
 * Why: on this VM, other tasks and the hypervisor (steal time) take the
 * CPUs away in bursts of milliseconds, seconds apart. Measured in one
 * stretch each, a transport whose second happened to hold a burst gets a
 * p99 ten times its neighbour's; measured in rounds spread over the whole
 * scenario, every transport sees the same weather. Ratios between
 * transports of one run (the point of the tool) then compare like with
 * like. A round that fails fails the result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct bench_acc {
	struct bench_results *rs;
	size_t ri; /* the result, by index: rs->r moves as it grows */
	struct bench_measure m;
	struct bench_cfg cfg; /* of one round */
	uint64_t *rtt, n, cap;
	uint64_t *flr, nf;
	double *blk;
	uint64_t nb;
	uint64_t msgs;
	int64_t window_ns;
	struct bench_side_out side[2];
	int failed;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Does a run record latency samples (c->n samples), or count messages? */
static int latency(const struct bench_acc *a)
{
	return a->m.kind == BENCH_KIND_LATENCY || a->m.kind == BENCH_KIND_PACED;
}

static struct bench_result *res(struct bench_acc *a)
{
	return &a->rs->r[a->ri];
}

/* bench_acc_new - an empty accumulator for result @r of @rs, measured by
 * @m with @cfg in every round. Exits on out of memory. */
struct bench_acc *bench_acc_new(struct bench_results *rs, struct bench_result *r,
				const struct bench_measure *m, const struct bench_cfg *cfg)
{
	struct bench_acc *a = calloc(1, sizeof(*a));

	if (!a) {
		perror("shmrpc-bench");
		exit(1);
	}
	a->rs = rs;
	a->ri = (size_t)(r - rs->r);
	a->m = *m;
	a->cfg = *cfg;
	return a;
}

static void *grow(void *p, uint64_t n, size_t each)
{
	void *q = realloc(p, (n ? n : 1) * each);

	if (!q) {
		perror("shmrpc-bench");
		exit(1);
	}
	return q;
}

/* Per-block ratios transport / floor of one round (pingpong.c's blocks). */
static void add_blocks(struct bench_acc *a, struct bench_ctrl *c)
{
	uint64_t k = c->block, nb = k ? c->n / k : 0, *t, *f;

	a->blk = grow(a->blk, a->nb + nb, sizeof(*a->blk));
	for (uint64_t b = 0; b < nb; b++) {
		t = c->samples + b * k;
		f = c->samples + c->cap / 2 + b * k;
		qsort(t, k, sizeof(*t), cmp_u64); /* after the samples were copied */
		qsort(f, k, sizeof(*f), cmp_u64);
		a->blk[a->nb++] = (double)t[k / 2] / (double)(f[k / 2] ? f[k / 2] : 1);
	}
}

static void add_side(struct bench_side_out *s, const struct bench_side_out *o)
{
	s->wall_ns += o->wall_ns;
	s->user_ns += o->user_ns;
	s->sys_ns += o->sys_ns;
	s->msgs += o->msgs;
	s->preempt += o->preempt;
	s->pace_ns += o->pace_ns;
	s->syscalls = s->syscalls < 0 || o->syscalls < 0 ? -1 : s->syscalls + o->syscalls;
	s->has_lib = o->has_lib;
	s->lib.sleeps += o->lib.sleeps;
	s->lib.wakes += o->lib.wakes;
	s->lib.skips += o->lib.skips;
	s->lib.spins += o->lib.spins;
	s->lib.full += o->lib.full;
}

/* bench_acc_round - one more round; after a failure, nothing. */
void bench_acc_round(struct bench_acc *a)
{
	struct bench_ctrl *c;
	struct bench_result *r = res(a);
	int err;

	if (a->failed)
		return;
	c = bench_ctrl_new(a->m.nsamples);
	if (!c) {
		r->status = BENCH_FAILED;
		snprintf(r->why, sizeof(r->why), "out of memory");
		a->failed = 1;
		return;
	}
	err = bench_pair(a->m.t, &a->cfg, a->m.fn, c, &r->buf_eff, r->why, sizeof(r->why));
	if (err) {
		r->status = err == -EMSGSIZE || err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
		a->failed = 1;
		bench_ctrl_free(c);
		return;
	}
	if (latency(a)) { /* c->n samples; for a stream, c->n is messages */
		a->rtt = grow(a->rtt, a->n + c->n, sizeof(*a->rtt));
		memcpy(a->rtt + a->n, c->samples, c->n * sizeof(*a->rtt));
		a->n += c->n;
	}
	if (c->n_floor && c->block) {
		a->flr = grow(a->flr, a->nf + c->n_floor, sizeof(*a->flr));
		memcpy(a->flr + a->nf, c->samples + c->cap / 2, c->n_floor * sizeof(*a->flr));
		a->nf += c->n_floor;
		add_blocks(a, c);
	}
	a->msgs += c->n;
	a->window_ns += c->window_ns;
	for (int s = 0; s < 2; s++)
		add_side(&a->side[s], &c->side[s]);
	bench_ctrl_free(c);
}

/* Library counters and system calls of both sides, per message. */
static void counter_metrics(struct bench_result *r, const struct bench_side_out *o, double msgs)
{
	if (o[0].syscalls >= 0 && o[1].syscalls >= 0 && msgs > 0)
		bench_metric_set(r, "syscalls_per_msg",
				 (double)(o[0].syscalls + o[1].syscalls) / msgs);
	if (!o[0].has_lib || !o[1].has_lib || msgs <= 0)
		return;
	bench_metric_set(r, "lib_sleeps_per_msg",
			 (double)(o[0].lib.sleeps + o[1].lib.sleeps) / msgs);
	bench_metric_set(r, "lib_wakes_per_msg", (double)(o[0].lib.wakes + o[1].lib.wakes) / msgs);
	bench_metric_set(r, "lib_spins_per_msg", (double)(o[0].lib.spins + o[1].lib.spins) / msgs);
	bench_metric_set(r, "lib_full_per_msg", (double)(o[0].lib.full + o[1].lib.full) / msgs);
}

static void finish_latency(struct bench_result *r, struct bench_acc *a)
{
	if (a->nb) {
		qsort(a->blk, a->nb, sizeof(*a->blk), bench_cmp_double);
		r->ratio_floor = a->blk[a->nb / 2];
	}
	if (a->nf) {
		bench_lat_summarise(a->flr, a->nf, &r->floor);
		r->has_floor = 1;
	}
	r->n = a->n;
	r->rtt_ns = a->rtt; /* the result owns them now */
	a->rtt = NULL;
	bench_lat_summarise(r->rtt_ns, r->n, &r->lat);
	r->has_lat = 1;
}

/* bench_acc_finish - turn the rounds into the result; frees @a. */
void bench_acc_finish(struct bench_acc *a)
{
	struct bench_result *r = res(a);
	int lat = latency(a);
	double msgs;

	if (!a->failed) {
		if (lat) {
			finish_latency(r, a);
		} else {
			r->msgs = a->msgs;
			r->window_s = (double)a->window_ns / 1e9;
			r->msgs_per_s = r->window_s > 0 ? (double)r->msgs / r->window_s : NAN;
			r->gb_per_s = r->msgs_per_s * (double)a->cfg.msg_size / 1e9;
		}
		for (int s = 0; s < 2; s++)
			bench_cpu_fill(&r->cpu[s], &a->side[s]);
		msgs = latency(a) ? 2.0 * (double)a->n : (double)a->side[1].msgs;
		if (a->m.t)
			counter_metrics(r, a->side, msgs);
		if (a->m.kind == BENCH_KIND_PACED) {
			bench_metric_set(r, "achieved_per_s", (double)a->n / r->cpu[0].wall_s);
			bench_metric_set(r, "cpu0_net_s_per_s",
					 r->cpu[0].cpu_per_s - (double)a->side[0].pace_ns / 1e9 /
								       r->cpu[0].wall_s);
		}
	}
	bench_progress(r);
	free(a->rtt);
	free(a->flr);
	free(a->blk);
	free(a);
}

/* bench_measure_once - result @r measured in one run (no rounds). */
void bench_measure_once(struct bench_results *rs, struct bench_result *r,
			const struct bench_measure *m, const struct bench_cfg *cfg)
{
	struct bench_acc *a = bench_acc_new(rs, r, m, cfg);

	bench_acc_round(a);
	bench_acc_finish(a);
}
