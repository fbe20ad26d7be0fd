// SPDX-License-Identifier: MIT
/*
 * shmrpc-bench: the baselines (and later libshmrpc) measured in one run.
 * Options and the plan of runs; the measuring is in harness.c and the
 * scenario files, the output in report_*.c. See docs/bench.md.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const size_t pp_sizes[] = { 64, 4096 };
static const size_t st_sizes[] = { 8,	  32,	  128,	   512,	     2048,
				   8192, 32768, 131072, 524288, 1048576 };
static const size_t st_quick[] = { 8, 512, 32768, 1048576 };
#define MEMCPY_SIZE (1024 * 1024)

struct opts {
	int quick;
	const char *scenarios;	/* comma list, NULL: all */
	const char *transports; /* comma list, NULL: all */
	const char *baseline;
	const char *json, *plots;
	long long iters;	/* 0: default */
	double duration;	/* 0: default */
};

struct results {
	struct bench_result *r;
	size_t n, cap;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmrpc-bench [options]\n"
		"  --quick            reduced run for CI smoke tests (a few seconds)\n"
		"  --scenario LIST    pingpong,stream,memcpy (default: all)\n"
		"  --transport LIST   transports to run (default: all; see --list)\n"
		"  --iters N          ping-pong round trips measured (default 50000, quick 2000)\n"
		"  --duration S       seconds per stream run, and cap per ping-pong run\n"
		"                     (default 1, quick 0.1)\n"
		"  --baseline NAME    transport that ratios refer to (default futex)\n"
		"  --json FILE        write all results as one JSON document\n"
		"  --plots DIR        write gnuplot data, script and SVGs to DIR\n"
		"  --list             list the transports and exit\n");
}

/* Is @name in the comma-separated @list (NULL: everything is)? */
static int in_list(const char *list, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, len) && (p[len] == ',' || !p[len]))
			return 1;
	return !list;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "quick", no_argument, 0, 'q' },
		{ "scenario", required_argument, 0, 's' },
		{ "transport", required_argument, 0, 't' },
		{ "iters", required_argument, 0, 'i' },
		{ "duration", required_argument, 0, 'd' },
		{ "baseline", required_argument, 0, 'b' },
		{ "json", required_argument, 0, 'j' },
		{ "plots", required_argument, 0, 'p' },
		{ "list", no_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "qs:t:i:d:b:j:p:lh", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = 1; break;
		case 's': o->scenarios = optarg; break;
		case 't': o->transports = optarg; break;
		case 'i': o->iters = atoll(optarg); if (o->iters < 1) return -EINVAL; break;
		case 'd': o->duration = atof(optarg); if (!(o->duration > 0)) return -EINVAL; break;
		case 'b': o->baseline = optarg; break;
		case 'j': o->json = optarg; break;
		case 'p': o->plots = optarg; break;
		case 'l':
			for (size_t i = 0; bench_transports[i]; i++)
				printf("%-10s %s\n", bench_transports[i]->name,
				       bench_transports[i]->what);
			exit(0);
		case 'h': usage(stdout); exit(0);
		default: return -EINVAL;
		}
	}
	return optind < argc ? -EINVAL : 0;
}

/* Every name of @list is a scenario (@scen) or a transport (!@scen). */
static int check_list(const char *list, int scen)
{
	static const char *const scens[] = { "pingpong", "stream", "memcpy", NULL };
	char name[64];
	size_t len;
	int ok;

	for (const char *p = list; p && *p; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		ok = 0;
		for (size_t i = 0; scen && scens[i]; i++)
			ok |= !strcmp(scens[i], name);
		ok |= !scen && (bench_transport_find(name) || !strcmp(name, "cacheline"));
		if (!ok) {
			fprintf(stderr, "shmrpc-bench: unknown %s '%s'\n",
				scen ? "scenario" : "transport", name);
			return -EINVAL;
		}
	}
	return 0;
}

static struct bench_result *result_new(struct results *rs, const char *scen, const char *tr,
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
	r->ratio = r->ratio_p99 = NAN;
	return r;
}

static void progress(const struct bench_result *r)
{
	fprintf(stderr, "  %-8s %-9s %8zu B  ", r->scenario, r->transport, r->size);
	if (r->status != BENCH_OK)
		fprintf(stderr, "%s: %s\n", r->status == BENCH_SKIPPED ? "skipped" : "FAILED",
			r->why);
	else if (r->rtt_ns)
		fprintf(stderr, "median %.3f us, p99 %.3f us, n=%llu\n", r->lat.median, r->lat.p99,
			(unsigned long long)r->n);
	else
		fprintf(stderr, "%.0f msgs/s, %.3f GB/s\n", r->msgs_per_s, r->gb_per_s);
}

/* One run of @fn over @t (NULL: none); the result goes to @r. */
static void run_one(struct bench_result *r, const struct bench_transport *t, bench_side_fn fn,
		    const struct bench_cfg *cfg, uint64_t nsamples)
{
	struct bench_ctrl *c = bench_ctrl_new(nsamples);
	int err;

	if (!c) {
		r->status = BENCH_FAILED;
		snprintf(r->why, sizeof(r->why), "out of memory");
		return;
	}
	err = bench_pair(t, cfg, fn, c, &r->buf_eff, r->why, sizeof(r->why));
	if (err) {
		r->status = err == -EMSGSIZE || err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
	} else if (fn == bench_pingpong_side || fn == bench_cacheline_side) {
		r->n = c->n;
		r->rtt_ns = malloc((c->n ? c->n : 1) * sizeof(uint64_t));
		if (r->rtt_ns)
			memcpy(r->rtt_ns, c->samples, c->n * sizeof(uint64_t));
		bench_lat_summarise(r->rtt_ns, r->n, &r->lat);
	} else {
		r->msgs = c->n;
		r->window_s = (double)c->window_ns / 1e9;
		r->msgs_per_s = r->window_s > 0 ? (double)r->msgs / r->window_s : NAN;
		r->gb_per_s = r->msgs_per_s * (double)cfg->msg_size / 1e9;
	}
	for (int s = 0; s < 2 && !err; s++)
		bench_cpu_fill(&r->cpu[s], &c->side[s]);
	bench_ctrl_free(c);
	progress(r);
}

static void run_pingpong(struct results *rs, const struct opts *o, struct bench_cfg *cfg)
{
	const struct bench_transport *t;

	if (in_list(o->transports, "cacheline")) {
		cfg->msg_size = 8;
		run_one(result_new(rs, "pingpong", "cacheline", 8), NULL, bench_cacheline_side,
			cfg, cfg->iters);
	}
	for (size_t s = 0; s < sizeof(pp_sizes) / sizeof(pp_sizes[0]); s++) {
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!in_list(o->transports, t->name))
				continue;
			cfg->msg_size = pp_sizes[s];
			run_one(result_new(rs, "pingpong", t->name, pp_sizes[s]), t,
				bench_pingpong_side, cfg, cfg->iters);
		}
	}
}

static void run_stream(struct results *rs, const struct opts *o, struct bench_cfg *cfg)
{
	const size_t *sizes = o->quick ? st_quick : st_sizes;
	size_t n = o->quick ? sizeof(st_quick) / sizeof(st_quick[0])
			    : sizeof(st_sizes) / sizeof(st_sizes[0]);
	const struct bench_transport *t;

	for (size_t s = 0; s < n; s++) {
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!in_list(o->transports, t->name))
				continue;
			cfg->msg_size = sizes[s];
			run_one(result_new(rs, "stream", t->name, sizes[s]), t, bench_stream_side,
				cfg, 0);
		}
	}
}

static void run_memcpy(struct results *rs, struct bench_cfg *cfg)
{
	struct bench_result *r = result_new(rs, "memcpy", "memcpy", MEMCPY_SIZE);

	cfg->msg_size = MEMCPY_SIZE;
	r->nsides = 1;
	run_one(r, NULL, bench_memcpy_side, cfg, 0);
}

static void configure(const struct opts *o, struct bench_cfg *cfg)
{
	cfg->iters = o->iters ? (uint64_t)o->iters : o->quick ? 2000 : 50000;
	cfg->duration = o->duration > 0 ? o->duration : o->quick ? 0.1 : 1.0;
	cfg->warmup = cfg->iters / 10;
	cfg->warmup = cfg->warmup < 100 ? 100 : cfg->warmup > 5000 ? 5000 : cfg->warmup;
	cfg->warm_s = cfg->duration / 10 < 0.02 ? 0.02 : cfg->duration / 10;
	if (bench_pick_cpus(cfg->cpu) < 2)
		fprintf(stderr, "shmrpc-bench: one CPU only: both sides share CPU %d\n",
			cfg->cpu[0]);
}

int main(int argc, char **argv)
{
	struct opts o = { .baseline = "futex" };
	struct bench_cfg cfg = { 0 };
	struct results rs = { 0 };
	struct bench_report rep = { .cfg = &cfg };
	int64_t t0 = bench_now_ns();
	int err = 0;

	if (parse(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (check_list(o.scenarios, 1) || check_list(o.transports, 0))
		return 2;
	if (!bench_transport_find(o.baseline))
		fprintf(stderr, "shmrpc-bench: baseline '%s' is not a transport: no ratios\n",
			o.baseline);
	configure(&o, &cfg);
	bench_host_probe(&rep.host, cfg.cpu);
	if (in_list(o.scenarios, "pingpong"))
		run_pingpong(&rs, &o, &cfg);
	if (in_list(o.scenarios, "stream"))
		run_stream(&rs, &o, &cfg);
	if (in_list(o.scenarios, "memcpy"))
		run_memcpy(&rs, &cfg);
	bench_ratios(rs.r, rs.n, o.baseline);
	rep.baseline = o.baseline;
	rep.quick = o.quick;
	rep.r = rs.r;
	rep.nr = rs.n;
	rep.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
	bench_print_table(&rep);
	if (o.json && bench_write_json(&rep, o.json) < 0)
		err = 1;
	if (o.plots && bench_write_plots(&rep, o.plots) < 0)
		err = 1;
	for (size_t i = 0; i < rs.n; i++) {
		err |= rs.r[i].status == BENCH_FAILED;
		free(rs.r[i].rtt_ns);
	}
	free(rs.r);
	return err;
}
