// SPDX-License-Identifier: MIT
/*
 * The aligned text report on stdout: a header about the machine, then one
 * table per scenario (ping-pong, the floor, stream and memcpy here; paced
 * and the other scenarios in report_more.c), then what the columns mean,
 * then the targets. Reads the results only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static void print_header(const struct bench_report *rep)
{
	const struct bench_host *h = &rep->host;
	const struct bench_cfg *c = rep->cfg;

	printf("shmrpc-bench %s%s: Linux %s, %s, %d CPUs online, clocksource %s\n", h->date,
	       rep->quick ? " (--quick)" : "", h->kernel, h->cpu_model, h->cpus_online,
	       h->clocksource);
	printf("side 0 on CPU %d, side 1 on CPU %d; clock_gettime(CLOCK_MONOTONIC) costs %.1f ns\n",
	       h->side_cpu[0], h->side_cpu[1], h->clock_read_ns);
	printf("ping-pong: up to %llu measured round trips or %.3g s per result, %s; "
	       "stream: %.3g s per result, %s; whole run %.1f s\n",
	       (unsigned long long)c->iters, c->duration,
	       rep->quick ? "one run" : "in 5 interleaved rounds", rep->stream_s,
	       rep->quick ? "one run" : "in 2 rounds", rep->elapsed_s);
	printf("load average at start %.2f, at the end %.2f; during the run, other tasks used "
	       "%.1f CPU-s (this program %.1f), the hypervisor stole %.1f s%s\n",
	       h->load_start, h->load_end, h->others_cpu_s, h->own_cpu_s, h->steal_s,
	       h->others_cpu_s + h->steal_s > 0.1 + 0.01 * rep->elapsed_s * h->cpus_online ?
		       ": DISTURBED, see 'pre'" :
		       "");
}

static void print_pingpong(const struct bench_report *rep)
{
	char sz[16], b[12][24];
	const struct bench_result *r;
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		r = &rep->r[i];
		if (strcmp(r->scenario, "pingpong"))
			continue;
		if (!any++) {
			printf("\nping-pong: one-way latency in us (RTT/2 of every round trip)\n");
			printf("%-18s %6s %7s %8s %8s %8s %8s %8s %7s %7s | %5s %5s %7s %7s %7s "
			       "%5s\n",
			       "mechanism", "size", "samples", "median", "p90", "p99", "p99.9",
			       "max", "x med", "x p99", "cpu0", "cpu1", "us/msg0", "us/msg1",
			       "slp/msg", "pre");
		}
		bench_fmt_size(sz, sizeof(sz), r->size);
		if (bench_row_status(r, sz))
			continue;
		printf("%-18s %6s %7llu %8s %8s %8s %8s %8s %7s %7s | %5s %5s %7s %7s %7s %5llu\n",
		       r->transport, sz, (unsigned long long)r->n,
		       bench_fmt_us(b[0], 24, r->lat.median), bench_fmt_us(b[1], 24, r->lat.p90),
		       bench_fmt_us(b[2], 24, r->lat.p99), bench_fmt_us(b[3], 24, r->lat.p999),
		       bench_fmt_us(b[4], 24, r->lat.max),
		       bench_fmt_num(b[5], 24, "%.3f", r->ratio),
		       bench_fmt_num(b[6], 24, "%.3f", r->ratio_p99),
		       bench_fmt_num(b[7], 24, "%.2f", r->cpu[0].cpu_per_s),
		       bench_fmt_num(b[8], 24, "%.2f", r->cpu[1].cpu_per_s),
		       bench_fmt_num(b[9], 24, "%.2f", r->cpu[0].us_per_msg),
		       bench_fmt_num(b[10], 24, "%.2f", r->cpu[1].us_per_msg),
		       bench_fmt_num(b[11], 24, "%.3f", bench_metric(r, "lib_sleeps_per_msg")),
		       (unsigned long long)(r->cpu[0].preempt + r->cpu[1].preempt));
	}
}

static void print_stream(const struct bench_report *rep)
{
	char sz[16], buf[16], b[9][24];
	const struct bench_result *r;
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		r = &rep->r[i];
		if (strcmp(r->scenario, "stream"))
			continue;
		if (!any++) {
			printf("\nstream: side 0 produces, side 1 consumes; delivered messages\n");
			printf("%-18s %6s %6s %9s %8s %8s %7s | %5s %5s %7s %7s %8s %5s\n",
			       "mechanism", "size", "buffer", "msgs/s", "GB/s", "x msgs", "x spin",
			       "cpuP", "cpuC", "us/msgP", "us/msgC", "slp/msg", "pre");
		}
		bench_fmt_size(sz, sizeof(sz), r->size);
		if (bench_row_status(r, sz))
			continue;
		printf("%-18s %6s %6s %9s %8s %8s %7s | %5s %5s %7s %7s %8s %5llu\n", r->transport,
		       sz, r->buf_eff ? bench_fmt_size(buf, sizeof(buf), r->buf_eff) : "?",
		       bench_fmt_rate(b[0], 24, r->msgs_per_s),
		       bench_fmt_num(b[1], 24, "%.3f", r->gb_per_s),
		       bench_fmt_num(b[2], 24, "%.3f", r->ratio),
		       bench_fmt_num(b[8], 24, "%.3f", bench_metric(r, "x_spin")),
		       bench_fmt_num(b[3], 24, "%.2f", r->cpu[0].cpu_per_s),
		       bench_fmt_num(b[4], 24, "%.2f", r->cpu[1].cpu_per_s),
		       bench_fmt_num(b[5], 24, "%.3f", r->cpu[0].us_per_msg),
		       bench_fmt_num(b[6], 24, "%.3f", r->cpu[1].us_per_msg),
		       bench_fmt_num(b[7], 24, "%.4f", bench_metric(r, "lib_sleeps_per_msg")),
		       (unsigned long long)(r->cpu[0].preempt + r->cpu[1].preempt));
	}
}

/* Spinning transports: their ping-pong next to the cache-line floor
 * measured in interleaved blocks by the same processes. */
static void print_floor(const struct bench_report *rep)
{
	char sz[16], b[4][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (strcmp(r->scenario, "pingpong") || r->status || !r->has_floor)
			continue;
		if (!any++)
			printf("\nping-pong of spinning mechanisms against the floor, in interleaved "
			       "blocks (same processes, same CPUs)\n%-18s %6s %8s %12s %8s\n",
			       "mechanism", "size", "median", "floor median", "x floor");
		printf("%-18s %6s %8s %12s %8s\n", r->transport,
		       bench_fmt_size(sz, sizeof(sz), r->size),
		       bench_fmt_us(b[0], 24, r->lat.median),
		       bench_fmt_us(b[1], 24, r->floor.median),
		       bench_fmt_num(b[2], 24, "%.2f", r->ratio_floor));
	}
}

static void print_memcpy(const struct bench_report *rep)
{
	char sz[16];

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (strcmp(r->scenario, "memcpy"))
			continue;
		bench_fmt_size(sz, sizeof(sz), r->size);
		printf("\nmemcpy: one core (CPU %d), %s to %s\n", rep->host.side_cpu[0], sz, sz);
		if (bench_row_status(r, sz))
			continue;
		printf("%-18s %6s %9.0f copies/s %8.3f GB/s | cpu %.2f, pre %llu\n", r->transport,
		       sz, r->msgs_per_s, r->gb_per_s, r->cpu[0].cpu_per_s,
		       (unsigned long long)r->cpu[0].preempt);
	}
}

void bench_print_table(const struct bench_report *rep)
{
	print_header(rep);
	print_pingpong(rep);
	print_floor(rep);
	bench_print_paced(rep);
	print_stream(rep);
	print_memcpy(rep);
	bench_print_more(rep);
	printf("\nx med, x p99: median and p99 over %s's at the same size (< 1: faster); "
	       "x msgs: msgs/s over %s's (> 1: faster); x spin: over the bare ring's (spin).\n"
	       "cpu0/cpu1 (cpuP/cpuC): CPU-seconds per second of the side's own window, from "
	       "getrusage(RUSAGE_SELF);\nus/msg: that CPU time per message delivered (ping-pong "
	       "counts both directions). GB/s: payload, 1e9 B.\n"
	       "pre: involuntary context switches of both sides in their windows (another task "
	       "took a side's CPU);\n0 on an idle machine, and numbers of rows with many are "
	       "disturbed.\n",
	       rep->baseline, rep->baseline);
	printf("slp/msg: libshmrpc's sleeps of both sides per message (its counters).\n");
	bench_print_targets(rep);
	fflush(stdout);
}
