// SPDX-License-Identifier: MIT
/*
 * shmrpc-bench: libshmrpc and the mechanisms it is compared with, measured
 * in one run. Calls go one way: the plan (plan.c) runs the scenarios
 * (run_pair.c, fanout.c, syscalls.c, idle.c, connect.c, memory.c,
 * crash.c), which measure with the harnesses (rounds.c, harness.c,
 * group.c) over the transports (transports.c, tr_*.c) and append results
 * (results.c); then the reports (targets.c, report_*.c) read the results.
 * docs/bench.md has the layers and what each number means.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* After the run: ratios, targets, the table, JSON and plots. 0 or 1. */
static int report(struct bench_report *rep, const struct bench_opts *o)
{
	int err = 0;

	bench_ratios(rep->r, rep->nr, o->baseline);
	bench_host_finish(&rep->host);
	bench_targets_eval(rep);
	bench_print_table(rep);
	if (o->json && bench_write_json(rep, o->json) < 0)
		err = 1;
	if (o->plots && bench_write_plots(rep, o->plots) < 0)
		err = 1;
	for (size_t i = 0; i < rep->nr; i++)
		err |= rep->r[i].status == BENCH_FAILED;
	return err;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .baseline = "futex" };
	struct bench_cfg cfg = { 0 };
	struct bench_results rs = { 0 };
	struct bench_report rep = { .cfg = &cfg, .transports = bench_transports };
	int64_t t0 = bench_now_ns();
	int err;

	if (argc > 1 && !strcmp(argv[1], "--strace-child"))
		return bench_strace_child(argc - 1, argv + 1);
	if (bench_opts_parse(argc, argv, &o))
		return 2; /* it said what was wrong */
	if (o.list) {
		bench_plan_list(stdout);
		return 0;
	}
	if (bench_plan_check(&o))
		return 2;
	bench_plan_configure(&o, &cfg);
	bench_host_probe(&rep.host, cfg.cpu);
	bench_plan_run(&rs, &o, &cfg);
	rep.baseline = o.baseline;
	rep.quick = o.quick;
	rep.stream_s = bench_plan_stream_s(&o);
	rep.r = rs.r;
	rep.nr = rs.n;
	rep.elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
	err = report(&rep, &o);
	bench_results_free(&rs);
	return err;
}
