// SPDX-License-Identifier: MIT
/*
 * The runs of the pair scenarios: ping-pong, paced ping-pong, stream and
 * memcpy. Which transports and sizes, in what order, with which times and
 * warm-ups; the measuring itself is rounds.c (one result from interleaved
 * runs) over harness.c (one run) and the scenario sides (pingpong.c,
 * paced.c, stream.c, memcpy.c).
 */
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

/* The results of one scenario, measured in rounds (rounds.c). */
struct accs {
	struct bench_acc **a;
	int n;
};

static void accs_add(struct accs *s, struct bench_acc *a)
{
	s->a = realloc(s->a, (size_t)(s->n + 1) * sizeof(*s->a));
	if (!s->a) {
		perror("shmrpc-bench");
		exit(1);
	}
	s->a[s->n++] = a;
}

/* Round 1 of every result, then round 2, ...; then the results. */
static void accs_run(struct accs *s, const char *scen, int rounds)
{
	for (int k = 0; k < rounds; k++) {
		fprintf(stderr, "  %s round %d of %d\n", scen, k + 1, rounds);
		for (int i = 0; i < s->n; i++)
			bench_acc_round(s->a[i]);
	}
	for (int i = 0; i < s->n; i++)
		bench_acc_finish(s->a[i]);
	free(s->a);
}

/* Spinning transports get the interleaved floor (pingpong.c). */
static int spins(const struct bench_transport *t)
{
	return !strcmp(t->name, "spin") || !strcmp(t->name, "shmrpc-spin");
}

/* Ping-pong in rounds: PP_ROUNDS short runs per result, round 1 of every
 * transport and size, then round 2, ... */
void bench_run_pingpong(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	int rounds = o->quick ? 1 : PP_ROUNDS;
	struct bench_measure m = { .fn = bench_cacheline_side, .kind = BENCH_KIND_LATENCY };
	const struct bench_transport *t;
	struct bench_cfg c = *cfg;
	struct accs s = { 0 };

	c.iters = (cfg->iters + (uint64_t)rounds - 1) / (uint64_t)rounds;
	c.duration = cfg->duration / rounds;
	c.warmup = cfg->warmup / (uint64_t)rounds < 100 ? 100 : cfg->warmup / (uint64_t)rounds;
	if (bench_in_list(o->transports, "cacheline")) {
		c.msg_size = 8;
		m.nsamples = c.iters;
		accs_add(&s, bench_acc_new(rs, bench_result_new(rs, "pingpong", "cacheline", 8), &m,
					   &c));
	}
	m.fn = bench_pingpong_side;
	m.nsamples = 2 * c.iters;
	for (size_t k = 0; k < NELEM(pp_sizes); k++) {
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!bench_want(o, t->name, t->not_in, BENCH_NOT_PINGPONG))
				continue;
			c.msg_size = pp_sizes[k];
			c.floor_blocks = spins(t) ? (o->quick ? 10 : 50) / rounds : 0;
			m.t = t;
			accs_add(&s, bench_acc_new(rs,
						   bench_result_new(rs, "pingpong", t->name,
								    pp_sizes[k]),
						   &m, &c));
		}
	}
	accs_run(&s, "pingpong", rounds);
}

/* One paced result: @rate requests per second of @size bytes over @t. */
static void paced_one(struct bench_results *rs, const struct bench_opts *o,
		      const struct bench_cfg *cfg, const struct bench_transport *t, size_t size,
		      size_t k)
{
	struct bench_measure m = { .t = t, .fn = bench_paced_side, .kind = BENCH_KIND_PACED };
	struct bench_cfg pc = *cfg;
	struct bench_result *r;

	pc.msg_size = size;
	pc.rate = paced_rates[k];
	pc.duration = o->duration > 0 ? o->duration : paced_secs[k] * (o->quick ? 0.2 : 1);
	pc.warmup = (uint64_t)(pc.rate * (o->quick ? 0.02 : 0.1));
	pc.warmup = pc.warmup < 50 ? 50 : pc.warmup;
	pc.warmup = pc.warmup > PACED_WARM_MAX ? PACED_WARM_MAX : pc.warmup;
	r = bench_result_new(rs, "paced", t->name, size);
	r->rate = pc.rate;
	m.nsamples = (uint64_t)(pc.rate * pc.duration * 1.1) + 64;
	bench_measure_once(rs, r, &m, &pc);
}

void bench_run_paced(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	const struct bench_transport *t;

	for (size_t s = 0; s < (o->quick ? 1 : NELEM(pp_sizes)); s++)
		for (size_t k = 0; k < NELEM(paced_rates); k++)
			for (size_t i = 0; (t = bench_transports[i]); i++)
				if (bench_want(o, t->name, t->not_in, BENCH_NOT_PACED))
					paced_one(rs, o, cfg, t, pp_sizes[s], k);
}

/* Every stream result's msgs/s over @base's at the same size, as metric
 * @key (issue 11: against the bare ring and ZeroMQ, whatever --baseline). */
static void same_run_ratios(struct bench_results *rs, const char *base, const char *key)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct bench_result *b = &rs->r[i];

		if (strcmp(b->scenario, "stream") || strcmp(b->transport, base) || b->status ||
		    !(b->msgs_per_s > 0))
			continue;
		for (size_t j = 0; j < rs->n; j++) {
			struct bench_result *r = &rs->r[j];

			if (!strcmp(r->scenario, "stream") && r->size == b->size && !r->status &&
			    r != b)
				bench_metric_set(r, key, r->msgs_per_s / b->msgs_per_s);
		}
	}
}

/* Stream in rounds too: ST_ROUNDS runs of half the time each. */
void bench_run_stream(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	const size_t *sizes = o->quick ? st_quick : st_sizes;
	size_t n = o->quick ? NELEM(st_quick) : NELEM(st_sizes);
	int rounds = o->quick ? 1 : ST_ROUNDS;
	struct bench_measure m = { .fn = bench_stream_side, .kind = BENCH_KIND_STREAM };
	const struct bench_transport *t;
	struct accs s = { 0 };

	cfg->duration = (o->duration > 0 ? o->duration :
			 o->quick	 ? 0.1 :
					   BENCH_STREAM_SECS) /
			rounds;
	cfg->warm_s = cfg->duration / 5 < 0.02 ? 0.02 : cfg->duration / 5;
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!bench_want(o, t->name, t->not_in, BENCH_NOT_STREAM))
				continue;
			cfg->msg_size = sizes[k];
			m.t = t;
			accs_add(&s, bench_acc_new(
					     rs, bench_result_new(rs, "stream", t->name, sizes[k]),
					     &m, cfg));
		}
	}
	accs_run(&s, "stream", rounds);
	same_run_ratios(rs, "spin", "x_spin");
	same_run_ratios(rs, "zmq", "x_zmq");
}

void bench_run_memcpy(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	struct bench_measure m = { .fn = bench_memcpy_side, .kind = BENCH_KIND_STREAM };
	struct bench_result *r = bench_result_new(rs, "memcpy", "memcpy", MEMCPY_SIZE);

	(void)o;
	cfg->msg_size = MEMCPY_SIZE;
	r->nsides = 1;
	bench_measure_once(rs, r, &m, cfg);
}
