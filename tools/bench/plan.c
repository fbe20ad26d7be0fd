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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median of per-block ratios transport / floor (unsorted samples, blocks
 * of c->block each). Sorts the blocks of both arrays in place. */
static double block_ratio(struct bench_ctrl *c)
{
	uint64_t k = c->block, nb = k ? c->n / k : 0, *t, *f;
	double *q = malloc((nb ? nb : 1) * sizeof(*q)), r;

	if (!q || !nb) {
		free(q);
		return NAN;
	}
	for (uint64_t b = 0; b < nb; b++) {
		t = c->samples + b * k;
		f = c->samples + c->cap / 2 + b * k;
		qsort(t, k, sizeof(*t), cmp_u64);
		qsort(f, k, sizeof(*f), cmp_u64);
		q[b] = (double)t[k / 2] / (double)(f[k / 2] ? f[k / 2] : 1);
	}
	qsort(q, nb, sizeof(*q), (int (*)(const void *, const void *))bench_cmp_double);
	r = q[nb / 2];
	free(q);
	return r;
}

static void take_samples(struct bench_result *r, struct bench_ctrl *c)
{
	uint64_t *f;

	if (c->n_floor && c->block) {
		r->ratio_floor = block_ratio(c);
		f = malloc(c->n_floor * sizeof(*f));
		if (f) {
			memcpy(f, c->samples + c->cap / 2, c->n_floor * sizeof(*f));
			bench_lat_summarise(f, c->n_floor, &r->floor);
			r->has_floor = 1;
			free(f);
		}
	}
	r->n = c->n;
	r->rtt_ns = malloc((c->n ? c->n : 1) * sizeof(uint64_t));
	if (r->rtt_ns)
		memcpy(r->rtt_ns, c->samples, c->n * sizeof(uint64_t));
	bench_lat_summarise(r->rtt_ns, r->n, &r->lat);
	r->has_lat = 1;
}

/* Library counters and system calls of both sides, per message. */
static void counter_metrics(struct bench_result *r, const struct bench_ctrl *c, double msgs)
{
	const struct bench_side_out *o = c->side;

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

/* One run of @fn over @t (NULL: none); the result goes to @r. */
static void run_one(struct bench_result *r, const struct bench_transport *t, bench_side_fn fn,
		    const struct bench_cfg *cfg, uint64_t nsamples)
{
	struct bench_ctrl *c = bench_ctrl_new(nsamples);
	double msgs;
	int err;

	if (!c) {
		r->status = BENCH_FAILED;
		snprintf(r->why, sizeof(r->why), "out of memory");
		return;
	}
	err = bench_pair(t, cfg, fn, c, &r->buf_eff, r->why, sizeof(r->why));
	if (err) {
		r->status = err == -EMSGSIZE || err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
	} else if (fn == bench_pingpong_side || fn == bench_cacheline_side ||
		   fn == bench_paced_side) {
		take_samples(r, c);
	} else {
		r->msgs = c->n;
		r->window_s = (double)c->window_ns / 1e9;
		r->msgs_per_s = r->window_s > 0 ? (double)r->msgs / r->window_s : NAN;
		r->gb_per_s = r->msgs_per_s * (double)cfg->msg_size / 1e9;
	}
	for (int s = 0; s < 2 && !err; s++)
		bench_cpu_fill(&r->cpu[s], &c->side[s]);
	if (!err && t) {
		msgs = fn == bench_stream_side ? (double)c->side[1].msgs : 2.0 * (double)c->n;
		counter_metrics(r, c, msgs);
	}
	if (!err && fn == bench_paced_side) {
		bench_metric_set(r, "achieved_per_s", (double)c->n / r->cpu[0].wall_s);
		bench_metric_set(r, "cpu0_net_s_per_s",
				 r->cpu[0].cpu_per_s -
					 (double)c->side[0].pace_ns / 1e9 / r->cpu[0].wall_s);
	}
	bench_ctrl_free(c);
	bench_progress(r);
}

/* Spinning transports get the interleaved floor (pingpong.c). */
static int spins(const struct bench_transport *t)
{
	return !strcmp(t->name, "spin") || !strcmp(t->name, "shmrpc-spin");
}

void bench_run_pingpong(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	const struct bench_transport *t;

	if (bench_in_list(o->transports, "cacheline")) {
		cfg->msg_size = 8;
		run_one(bench_result_new(rs, "pingpong", "cacheline", 8), NULL,
			bench_cacheline_side, cfg, cfg->iters);
	}
	for (size_t s = 0; s < NELEM(pp_sizes); s++) {
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!bench_want(o, t->name, t->not_in, BENCH_NOT_PINGPONG))
				continue;
			cfg->msg_size = pp_sizes[s];
			cfg->floor_blocks = spins(t) ? (o->quick ? 10 : 50) : 0;
			run_one(bench_result_new(rs, "pingpong", t->name, pp_sizes[s]), t,
				bench_pingpong_side, cfg, 2 * cfg->iters);
			cfg->floor_blocks = 0;
		}
	}
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
				run_one(r, t, bench_paced_side, &pc,
					(uint64_t)(pc.rate * pc.duration * 1.1) + 64);
			}
		}
	}
}

void bench_run_stream_one(struct bench_results *rs, const char *scen,
			  const struct bench_transport *t, struct bench_cfg *cfg, size_t size)
{
	cfg->msg_size = size;
	run_one(bench_result_new(rs, scen, t->name, size), t, bench_stream_side, cfg, 0);
}

void bench_run_stream(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	const size_t *sizes = o->quick ? st_quick : st_sizes;
	size_t n = o->quick ? NELEM(st_quick) : NELEM(st_sizes);
	const struct bench_transport *t;

	/* Half a second per run unless told: 11 sizes x 9 transports. */
	cfg->duration = o->duration > 0 ? o->duration : o->quick ? 0.1 : BENCH_STREAM_SECS;
	cfg->warm_s = cfg->duration / 10 < 0.02 ? 0.02 : cfg->duration / 10;

	for (size_t s = 0; s < n; s++) {
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!bench_want(o, t->name, t->not_in, BENCH_NOT_STREAM))
				continue;
			bench_run_stream_one(rs, "stream", t, cfg, sizes[s]);
		}
	}
}

void bench_run_memcpy(struct bench_results *rs, struct bench_cfg *cfg)
{
	struct bench_result *r = bench_result_new(rs, "memcpy", "memcpy", MEMCPY_SIZE);

	cfg->msg_size = MEMCPY_SIZE;
	r->nsides = 1;
	run_one(r, NULL, bench_memcpy_side, cfg, 0);
}
