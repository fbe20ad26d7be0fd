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

#include "../version.h"
#include "bench.h"

/* The scenarios, in the order they run. */
struct scenario {
	const char *name;
	void (*run)(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
};

static void run_memcpy(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	(void)o;
	bench_run_memcpy(rs, cfg);
}

static const struct scenario scenarios[] = {
	{ "pingpong", bench_run_pingpong }, { "paced", bench_run_paced },
	{ "stream", bench_run_stream },	    { "memcpy", run_memcpy },
	{ "fanin", bench_run_fanin },	    { "broadcast", bench_run_broadcast },
	{ "syscalls", bench_run_syscalls }, { "idle", bench_run_idle },
	{ "connect", bench_run_connect },   { "memory", bench_run_memory },
	{ "crash", bench_run_crash },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmrpc-bench [options]\n"
		"  --quick            reduced run, a smoke test (< 30 s)\n"
		"  --scenario LIST    of pingpong, paced, stream, memcpy, fanin, broadcast,\n"
		"                     syscalls, idle, connect, memory, crash (default: all)\n"
		"  --transport LIST   transports to run (default: all; see --list)\n"
		"  --iters N          ping-pong round trips measured (default 50000, quick 2000)\n"
		"  --duration S       seconds per stream, fan-in and broadcast run, cap per\n"
		"                     ping-pong run and measured time of paced runs\n"
		"                     (defaults: stream 0.5, ping-pong 1, paced 1/0.5/0.3)\n"
		"  --baseline NAME    transport that ratios refer to (default futex)\n"
		"  --json FILE        write all results as one JSON document\n"
		"  --plots DIR        write gnuplot data, script and SVGs to DIR\n"
		"  --kills N          crash: kills per cleanup mode (default 50, quick 10)\n"
		"  --no-strace        syscalls: skip the strace -c -f cross-check\n"
		"  --list             list the transports and exit\n"
		"  -h, --help         this help\n"
		"  -V, --version      version\n");
}

/* A usage error: one line that says what was wrong. */
static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "shmrpc-bench: %s: %s (see --help)\n", what, arg);
	return -EINVAL;
}

int bench_in_list(const char *list, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, len) && (p[len] == ',' || !p[len]))
			return 1;
	return !list;
}

int bench_want(const struct bench_opts *o, const char *name, unsigned not_in, unsigned bit)
{
	if (o->transports)
		return bench_in_list(o->transports, name);
	return !(not_in & bit);
}

static int parse(int argc, char **argv, struct bench_opts *o)
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
		{ "kills", required_argument, 0, 'k' },
		{ "no-strace", no_argument, 0, 'S' },
		{ "list", no_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qs:t:i:d:b:j:p:k:SlhV", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = 1;
			break;
		case 's':
			o->scenarios = optarg;
			break;
		case 't':
			o->transports = optarg;
			break;
		case 'i':
			o->iters = atoll(optarg);
			if (o->iters < 1)
				return bad("bad --iters (a count, at least 1)", optarg);
			break;
		case 'd':
			o->duration = atof(optarg);
			if (!(o->duration > 0))
				return bad("bad --duration (seconds, more than 0)", optarg);
			break;
		case 'b':
			o->baseline = optarg;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'p':
			o->plots = optarg;
			break;
		case 'k':
			o->kills = atoi(optarg);
			if (o->kills < 1)
				return bad("bad --kills (a count, at least 1)", optarg);
			break;
		case 'S':
			o->no_strace = 1;
			break;
		case 'l':
			for (size_t i = 0; bench_transports[i]; i++)
				printf("%-10s %s\n", bench_transports[i]->name,
				       bench_transports[i]->what);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("shmrpc-bench (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
			exit(0);
		case ':':
			return bad("option needs an argument", argv[optind - 1]);
		default:
			return bad("unknown option", argv[optind - 1]);
		}
	}
	return optind < argc ? bad("unexpected argument", argv[optind]) : 0;
}

/* Every name of @list is a scenario (@scen) or a transport (!@scen). */
static int check_list(const char *list, int scen)
{
	char name[64];
	size_t len;
	int ok;

	for (const char *p = list; p && *p; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		ok = 0;
		for (size_t i = 0; scen && i < NSCEN; i++)
			ok |= !strcmp(scenarios[i].name, name);
		ok |= !scen && (bench_transport_find(name) || bench_gtransport_find(name) ||
				!strcmp(name, "cacheline") || !strcmp(name, "peers") ||
				!strncmp(name, "reaper-", 7));
		if (!ok) {
			fprintf(stderr, "shmrpc-bench: unknown %s '%s'\n",
				scen ? "scenario" : "transport", name);
			return -EINVAL;
		}
	}
	return 0;
}

static void configure(const struct bench_opts *o, struct bench_cfg *cfg)
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
	struct bench_opts o = { .baseline = "futex" };
	struct bench_cfg cfg = { 0 };
	struct bench_results rs = { 0 };
	struct bench_report rep = { .cfg = &cfg };
	int64_t t0 = bench_now_ns();
	int err = 0;

	if (argc > 1 && !strcmp(argv[1], "--strace-child"))
		return bench_strace_child(argc - 1, argv + 1);
	if (parse(argc, argv, &o))
		return 2;
	if (check_list(o.scenarios, 1) || check_list(o.transports, 0))
		return 2;
	if (!bench_transport_find(o.baseline))
		fprintf(stderr, "shmrpc-bench: baseline '%s' is not a transport: no ratios\n",
			o.baseline);
	configure(&o, &cfg);
	bench_host_probe(&rep.host, cfg.cpu);
	for (size_t i = 0; i < NSCEN; i++)
		if (bench_in_list(o.scenarios, scenarios[i].name)) {
			struct bench_cfg c = cfg;

			scenarios[i].run(&rs, &o, &c);
		}
	bench_ratios(rs.r, rs.n, o.baseline);
	rep.baseline = o.baseline;
	rep.quick = o.quick;
	rep.stream_s = o.duration > 0 ? o.duration : o.quick ? 0.1 : BENCH_STREAM_SECS;
	rep.r = rs.r;
	rep.nr = rs.n;
	rep.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
	bench_host_finish(&rep.host);
	bench_targets_eval(&rep);
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
