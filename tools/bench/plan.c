// SPDX-License-Identifier: MIT
/*
 * The plan of a run: the scenarios in the order they run, the names the
 * command line may use (scenarios, pair and group transports, crash
 * modes), and the configuration every scenario starts from. Running the
 * plan calls each chosen scenario's runner (run_pair.c, fanout.c,
 * syscalls.c, idle.c, connect.c, memory.c, crash.c, evlat.c), which appends its
 * results; the reports read them afterwards (main.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* The scenarios, in the order they run. */
struct scenario {
	const char *name;
	void (*run)(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
};

static const struct scenario scenarios[] = {
	{ "pingpong", bench_run_pingpong }, { "paced", bench_run_paced },
	{ "stream", bench_run_stream },	    { "memcpy", bench_run_memcpy },
	{ "fanin", bench_run_fanin },	    { "broadcast", bench_run_broadcast },
	{ "syscalls", bench_run_syscalls }, { "idle", bench_run_idle },
	{ "connect", bench_run_connect },   { "memory", bench_run_memory },
	{ "crash", bench_run_crash },	    { "events", bench_run_events },
	{ "rpc", bench_run_rpc },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

static int is_scenario(const char *name)
{
	for (size_t i = 0; i < NSCEN; i++)
		if (!strcmp(scenarios[i].name, name))
			return 1;
	return 0;
}

static int is_transport(const char *name)
{
	return bench_transport_find(name) || bench_gtransport_find(name) ||
	       !strcmp(name, "cacheline") || !strcmp(name, "peers") ||
	       !strncmp(name, "reaper-", 7) || bench_rpc_known(name);
}

/* Every name of @list is a scenario (@scen) or a transport (!@scen). */
static int check_list(const char *list, int scen)
{
	char name[64];
	size_t len;

	for (const char *p = list; p && *p; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		if (scen ? !is_scenario(name) : !is_transport(name)) {
			fprintf(stderr, "shmrpc-bench: unknown %s '%s'\n",
				scen ? "scenario" : "transport", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* bench_plan_check - -EINVAL (said on stderr) when --scenario or
 * --transport names something unknown; warns about an unknown baseline. */
int bench_plan_check(const struct bench_opts *o)
{
	if (check_list(o->scenarios, 1) || check_list(o->transports, 0))
		return -EINVAL;
	if (!bench_transport_find(o->baseline))
		fprintf(stderr, "shmrpc-bench: baseline '%s' is not a transport: no ratios\n",
			o->baseline);
	return 0;
}

/* bench_plan_configure - the configuration every scenario starts from. */
void bench_plan_configure(const struct bench_opts *o, struct bench_cfg *cfg)
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

/* bench_plan_stream_s - seconds measured per stream result. */
double bench_plan_stream_s(const struct bench_opts *o)
{
	return o->duration > 0 ? o->duration : o->quick ? 0.1 : BENCH_STREAM_SECS;
}

/* bench_plan_run - every chosen scenario, in order, each from a copy of
 * @cfg, appending to @rs. */
void bench_plan_run(struct bench_results *rs, const struct bench_opts *o,
		    const struct bench_cfg *cfg)
{
	for (size_t i = 0; i < NSCEN; i++)
		if (bench_in_list(o->scenarios, scenarios[i].name)) {
			struct bench_cfg c = *cfg;

			scenarios[i].run(rs, o, &c);
		}
}

/* bench_plan_list - --list: the pair transports, one line each. */
void bench_plan_list(FILE *f)
{
	for (size_t i = 0; bench_transports[i]; i++)
		fprintf(f, "%-10s %s\n", bench_transports[i]->name, bench_transports[i]->what);
}
