// SPDX-License-Identifier: MIT
/*
 * The list of results, and the runs of the pair scenarios (ping-pong,
 * paced ping-pong, stream, memcpy): which transports and sizes, in what
 * order, and how one run's shared control block becomes a result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const size_t pp_sizes[] = { 64, 4096 };
static const size_t st_sizes[] = { 8, 32, 64, 128, 512, 2048, 8192, 32768, 131072, 524288, 1048576 };
static const size_t st_quick[] = { 8, 64, 4096, 1048576 };
static const double paced_rates[] = { 1000, 10000, 100000 };
/* Seconds measured at each rate: at least ~1000 requests at 1k/s. */
static const double paced_secs[] = { 1.0, 0.5, 0.3 };
#define MEMCPY_SIZE (1024 * 1024)
#define PACED_WARM_MAX 2000 /* requests */
#define PP_ROUNDS 5	    /* ping-pong: runs per result, interleaved */
#define ST_ROUNDS 2	    /* stream: the same */
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct bench_result *bench_result_new(struct bench_results *rs, const char *scen, const char *tr,
				      size_t size)
{
	struct bench_result *r;

	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 64;
		rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
		if (!rs->r) {
			perror("shmrpc-bench");
			exit(1);
		}
	}
	r = &rs->r[rs->n++];
	memset(r, 0, sizeof(*r));
	r->scenario = scen;
	r->transport = tr;
	r->size = size;
	r->nsides = 2;
	r->ratio = r->ratio_p99 = r->ratio_floor = NAN;
	return r;
}

void bench_metric_set(struct bench_result *r, const char *key, double v)
{
	for (int i = 0; i < r->nm; i++)
		if (!strcmp(r->m[i].key, key)) {
			r->m[i].v = v;
			return;
		}
	if (r->nm < BENCH_MAX_METRICS)
		r->m[r->nm++] = (struct bench_metric){ key, v };
}

double bench_metric(const struct bench_result *r, const char *key)
{
	for (int i = 0; i < r->nm; i++)
		if (!strcmp(r->m[i].key, key))
			return r->m[i].v;
	return NAN;
}

void bench_progress(const struct bench_result *r)
{
	fprintf(stderr, "  %-9s %-18s %8zu B  ", r->scenario, r->transport, r->size);
	if (r->status != BENCH_OK)
		fprintf(stderr, "%s: %s\n", r->status == BENCH_SKIPPED ? "skipped" : "FAILED",
			r->why);
	else if (r->has_lat)
		fprintf(stderr, "median %.3f us, p99 %.3f us, n=%llu\n", r->lat.median, r->lat.p99,
			(unsigned long long)r->n);
	else if (r->nm && !(r->msgs_per_s > 0)) {
		for (int i = 0; i < r->nm && i < 4; i++)
			fprintf(stderr, "%s%s %.4g", i ? ", " : "", r->m[i].key, r->m[i].v);
		fprintf(stderr, "\n");
	} else
		fprintf(stderr, "%.0f msgs/s, %.3f GB/s\n", r->msgs_per_s, r->gb_per_s);
}

/* One result measured in one run (no rounds). */
static void run_one(struct bench_results *rs, struct bench_result *r,
		    const struct bench_transport *t, bench_side_fn fn, const struct bench_cfg *cfg,
		    uint64_t nsamples)
{
	struct bench_acc *a = bench_acc_new(rs, r, t, fn, cfg, nsamples);

	bench_acc_round(a);
	bench_acc_finish(a);
}

/* Spinning transports get the interleaved floor (pingpong.c). */
static int spins(const struct bench_transport *t)
{
	return !strcmp(t->name, "spin") || !strcmp(t->name, "shmrpc-spin");
}

/* Ping-pong in rounds (rounds.c): PP_ROUNDS short runs per result, round
 * 1 of every transport and size, then round 2, ... */
void bench_run_pingpong(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	int rounds = o->quick ? 1 : PP_ROUNDS, na = 0;
	struct bench_acc *a[64];
	const struct bench_transport *t;
	struct bench_cfg c = *cfg;

	c.iters = (cfg->iters + (uint64_t)rounds - 1) / (uint64_t)rounds;
	c.duration = cfg->duration / rounds;
	c.warmup = cfg->warmup / (uint64_t)rounds < 100 ? 100 : cfg->warmup / (uint64_t)rounds;
	if (bench_in_list(o->transports, "cacheline")) {
		c.msg_size = 8;
		a[na++] = bench_acc_new(rs, bench_result_new(rs, "pingpong", "cacheline", 8), NULL,
					bench_cacheline_side, &c, c.iters);
	}
	for (size_t s = 0; s < NELEM(pp_sizes); s++) {
		for (size_t i = 0; (t = bench_transports[i]) && na < 64; i++) {
			if (!bench_want(o, t->name, t->not_in, BENCH_NOT_PINGPONG))
				continue;
			c.msg_size = pp_sizes[s];
			c.floor_blocks = spins(t) ? (o->quick ? 10 : 50) / rounds : 0;
			a[na++] = bench_acc_new(
				rs, bench_result_new(rs, "pingpong", t->name, pp_sizes[s]), t,
				bench_pingpong_side, &c, 2 * c.iters);
		}
	}
	for (int k = 0; k < rounds; k++) {
		fprintf(stderr, "  pingpong round %d of %d\n", k + 1, rounds);
		for (int i = 0; i < na; i++)
			bench_acc_round(a[i]);
	}
	for (int i = 0; i < na; i++)
		bench_acc_finish(a[i]);
}

void bench_run_paced(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	const struct bench_transport *t;
	struct bench_cfg pc;
	struct bench_result *r;

	for (size_t s = 0; s < (o->quick ? 1 : NELEM(pp_sizes)); s++) {
		for (size_t k = 0; k < NELEM(paced_rates); k++) {
			for (size_t i = 0; (t = bench_transports[i]); i++) {
				if (!bench_want(o, t->name, t->not_in, BENCH_NOT_PACED))
					continue;
				pc = *cfg;
				pc.msg_size = pp_sizes[s];
				pc.rate = paced_rates[k];
				pc.duration = o->duration > 0 ?
						      o->duration :
						      paced_secs[k] * (o->quick ? 0.2 : 1);
				pc.warmup = (uint64_t)(pc.rate * (o->quick ? 0.02 : 0.1));
				pc.warmup = pc.warmup < 50 ? 50 : pc.warmup;
				pc.warmup = pc.warmup > PACED_WARM_MAX ? PACED_WARM_MAX : pc.warmup;
				r = bench_result_new(rs, "paced", t->name, pp_sizes[s]);
				r->rate = pc.rate;
				run_one(rs, r, t, bench_paced_side, &pc,
					(uint64_t)(pc.rate * pc.duration * 1.1) + 64);
			}
		}
	}
}

void bench_run_stream_one(struct bench_results *rs, const char *scen,
			  const struct bench_transport *t, struct bench_cfg *cfg, size_t size)
{
	cfg->msg_size = size;
	run_one(rs, bench_result_new(rs, scen, t->name, size), t, bench_stream_side, cfg, 0);
}

/* Stream in rounds too (rounds.c): ST_ROUNDS runs of half the time each. */
void bench_run_stream(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	const size_t *sizes = o->quick ? st_quick : st_sizes;
	size_t n = o->quick ? NELEM(st_quick) : NELEM(st_sizes);
	int rounds = o->quick ? 1 : ST_ROUNDS, na = 0;
	const struct bench_transport *t;
	struct bench_acc *a[160];

	cfg->duration = (o->duration > 0 ? o->duration :
			 o->quick	 ? 0.1 :
					   BENCH_STREAM_SECS) /
			rounds;
	cfg->warm_s = cfg->duration / 5 < 0.02 ? 0.02 : cfg->duration / 5;
	for (size_t s = 0; s < n; s++) {
		for (size_t i = 0; (t = bench_transports[i]) && na < 160; i++) {
			if (!bench_want(o, t->name, t->not_in, BENCH_NOT_STREAM))
				continue;
			cfg->msg_size = sizes[s];
			a[na++] = bench_acc_new(rs,
						bench_result_new(rs, "stream", t->name, sizes[s]),
						t, bench_stream_side, cfg, 0);
		}
	}
	for (int k = 0; k < rounds; k++) {
		fprintf(stderr, "  stream round %d of %d\n", k + 1, rounds);
		for (int i = 0; i < na; i++)
			bench_acc_round(a[i]);
	}
	for (int i = 0; i < na; i++)
		bench_acc_finish(a[i]);
}

void bench_run_memcpy(struct bench_results *rs, struct bench_cfg *cfg)
{
	struct bench_result *r = bench_result_new(rs, "memcpy", "memcpy", MEMCPY_SIZE);

	cfg->msg_size = MEMCPY_SIZE;
	r->nsides = 1;
	run_one(rs, r, NULL, bench_memcpy_side, cfg, 0);
}
