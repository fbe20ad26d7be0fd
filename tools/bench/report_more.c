// SPDX-License-Identifier: MIT
/*
 * The text tables of the scenarios beyond ping-pong, stream and memcpy:
 * paced ping-pong, fan-in, broadcast and its cost per wake, system calls
 * per message (and the strace cross-check), idle, connect and join,
 * memory, crash cleanup, request/response; then the targets with measured value and verdict.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define M(r, k) bench_metric((r), (k))

static int is(const struct bench_result *r, const char *scen)
{
	return !strcmp(r->scenario, scen);
}

/* Heading once, then 1 for rows that are OK (a failed row says why). */
static int row(const struct bench_result *r, int *any, const char *heading)
{
	char sz[16];

	if (!(*any)++)
		printf("%s", heading);
	return !bench_row_status(r, bench_fmt_size(sz, sizeof(sz), r->size));
}

static const char *num(char *b, const char *fmt, double v)
{
	return bench_fmt_num(b, 24, fmt, v);
}

void bench_print_paced(const struct bench_report *rep)
{
	char b[14][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "paced") ||
		    !row(r, &any,
			 "\npaced ping-pong: side 0 sends requests at the offered rate, side 1 "
			 "answers; one-way latency in us\n"
			 "mechanism            size  offered achieved  median      p90      p99    "
			 "p99.9   x med   x p99 | cpu0n  cpu1 us/msg1 slp/msg  spin/msg   pre\n"))
			continue;
		printf("%-18s %6s %8s %8s %7s %8s %8s %8s %7s %7s | %5s %5s %7s %7s %9s %5llu\n",
		       r->transport, bench_fmt_size(b[0], 24, r->size),
		       bench_fmt_rate(b[1], 24, r->rate),
		       bench_fmt_rate(b[2], 24, M(r, "achieved_per_s")),
		       bench_fmt_us(b[3], 24, r->lat.median), bench_fmt_us(b[4], 24, r->lat.p90),
		       bench_fmt_us(b[5], 24, r->lat.p99), bench_fmt_us(b[6], 24, r->lat.p999),
		       num(b[7], "%.3f", r->ratio), num(b[8], "%.3f", r->ratio_p99),
		       num(b[9], "%.2f", M(r, "cpu0_net_s_per_s")),
		       num(b[10], "%.2f", r->cpu[1].cpu_per_s),
		       num(b[11], "%.2f", r->cpu[1].us_per_msg),
		       num(b[12], "%.3f", M(r, "lib_sleeps_per_msg")),
		       num(b[13], "%.3f", M(r, "lib_spins_per_msg")),
		       (unsigned long long)(r->cpu[0].preempt + r->cpu[1].preempt));
	}
	if (any)
		printf("offered/achieved: requests per second; cpu0n: side 0's CPU-s/s without its "
		       "spinning for the schedule;\nslp/msg, spin/msg: libshmrpc's waits that "
		       "slept / ended while spinning, both sides, per message.\n");
}

static void print_fan(const struct bench_report *rep)
{
	double pipe = NAN;
	char b[10][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++)
		if (is(&rep->r[i], "fanin") && !strcmp(rep->r[i].transport, "pipe") &&
		    !rep->r[i].status)
			pipe = rep->r[i].msgs_per_s;
	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "fanin") ||
		    !row(r, &any,
			 "\nfan-in: 8 producers (CPU 0) -> 1 consumer (CPU 1), 64 B\n"
			 "mechanism            msgs/s   x pipe | consCPU us/msgC us/msgP  "
			 "wakes/msg sleeps/msg\n"))
			continue;
		printf("%-18s %9s %8s | %7s %7s %7s %10s %10s\n", r->transport,
		       bench_fmt_rate(b[0], 24, r->msgs_per_s),
		       num(b[1], "%.2f", r->msgs_per_s / pipe),
		       num(b[2], "%.2f", M(r, "cons_cpu_s_per_s")),
		       num(b[3], "%.3f", M(r, "cons_cpu_us_per_msg")),
		       num(b[4], "%.3f", M(r, "prod_cpu_us_per_msg")),
		       num(b[6], "%.4f", M(r, "lib_wakes_per_msg")),
		       num(b[7], "%.4f", M(r, "lib_sleeps_per_msg")));
	}
}

static void print_bcast(const struct bench_report *rep)
{
	char b[10][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "broadcast") ||
		    !row(r, &any,
			 "\nbroadcast: 1 producer (CPU 0) -> 8 consumers (CPU 1), 64 B, "
			 "back to back\n"
			 "mechanism         delivered/s  bcasts/s | us/bcastP us/msgC "
			 "wakes/msg\n"))
			continue;
		printf("%-18s %11s %9s | %9s %7s %9s\n", r->transport,
		       bench_fmt_rate(b[0], 24, r->msgs_per_s),
		       bench_fmt_rate(b[1], 24, M(r, "bcasts_per_s")),
		       num(b[2], "%.3f", M(r, "prod_cpu_us_per_bcast")),
		       num(b[3], "%.3f", M(r, "cons_cpu_us_per_msg")),
		       num(b[5], "%.4f", M(r, "lib_wakes_per_msg")));
	}
	any = 0;
	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "bcast-cost") ||
		    !row(r, &any,
			 "\nbroadcast cost: 1000 broadcasts/s to 8 sleeping consumers; one "
			 "call as its caller sees it (us)\n"
			 "mechanism         wall med  wall p99 | CPU mean  CPU med  CPU p99 "
			 "wakes/call CPU/wake calls/call\n"))
			continue;
		printf("%-18s %8s %9s | %8s %8s %8s %10s %8s %10s\n", r->transport,
		       bench_fmt_us(b[0], 24, r->lat.median), bench_fmt_us(b[1], 24, r->lat.p99),
		       num(b[2], "%.2f", M(r, "call_cpu_us_mean")),
		       num(b[3], "%.2f", M(r, "call_cpu_us_median")),
		       num(b[4], "%.2f", M(r, "call_cpu_us_p99")),
		       num(b[5], "%.2f", M(r, "wakes_per_call")),
		       num(b[6], "%.2f", M(r, "cpu_us_per_wake")),
		       num(b[7], "%.2f", M(r, "syscalls_per_call")));
	}
	if (any)
		printf("CPU: the calling thread's (CLOCK_THREAD_CPUTIME_ID); calls/call: system calls "
		       "inside one call (counted\nduring the warm-up calls only); wakes/call: "
		       "libshmrpc's counters (not seen for the kernel baselines).\n");
}

static void print_syscalls(const struct bench_report *rep)
{
	char b[10][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "syscalls") ||
		    !row(r, &any,
			 "\nsystem calls per message, streaming (saturated), both sides: runs of "
			 "their own, counted\n"
			 "mechanism            size    msgs/s  sys/msg sleep/msg  wake/msg  "
			 "spin/msg  full/msg us/msgP us/msgC\n"))
			continue;
		printf("%-18s %6s %9s %8s %9s %9s %9s %9s %7s %7s\n", r->transport,
		       bench_fmt_size(b[0], 24, r->size), bench_fmt_rate(b[1], 24, r->msgs_per_s),
		       num(b[2], "%.4f", M(r, "syscalls_per_msg")),
		       num(b[3], "%.4f", M(r, "lib_sleeps_per_msg")),
		       num(b[4], "%.4f", M(r, "lib_wakes_per_msg")),
		       num(b[5], "%.4f", M(r, "lib_spins_per_msg")),
		       num(b[6], "%.4f", M(r, "lib_full_per_msg")),
		       num(b[7], "%.3f", r->cpu[0].us_per_msg),
		       num(b[8], "%.3f", r->cpu[1].us_per_msg));
	}
	if (any)
		printf("counting costs each system call ~0.1 us of CPU: for CPU and throughput "
		       "compare the stream table.\n");
	any = 0;
	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "strace") ||
		    !row(r, &any,
			 "\ncross-check: one 64 B stream run under strace -f -c (a slower "
			 "run of its own)\n"
			 "mechanism              msgs  lib sleeps+wakes  strace futex+waitv+"
			 "uring_enter  tracepoint (windows)  strace (whole run)\n"))
			continue;
		printf("%-18s %8.0f %17.0f %31.0f %21.0f %19.0f\n", r->transport, M(r, "msgs"),
		       M(r, "lib_sleeps_plus_wakes"), M(r, "strace_sleep_wake_calls"),
		       M(r, "tracepoint_syscalls_in_windows"), M(r, "strace_total_whole_run"));
	}
}

static void print_idle(const struct bench_report *rep)
{
	char b[4][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "idle") ||
		    !row(r, &any,
			 "\nidle: a connected node with nothing to do\n"
			 "mechanism          seconds  CPU ms/s  wakeups/s  syscalls/s\n"))
			continue;
		printf("%-18s %7s %9s %10s %11s\n", r->transport, num(b[0], "%.1f", M(r, "wall_s")),
		       num(b[1], "%.4f", M(r, "cpu_ms_per_s")),
		       num(b[2], "%.2f", M(r, "wakeups_per_s")),
		       num(b[3], "%.2f", M(r, "syscalls_per_s")));
	}
	if (any)
		printf("CPU: the whole process, all threads (getrusage); wakeups: libshmrpc sleeps; "
		       "syscalls: its main thread.\n");
}

static void print_connect(const struct bench_report *rep)
{
	char b[10][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];
		int j = is(r, "join"), k = is(r, "join1000");

		if (!(is(r, "connect") || j || k) ||
		    !row(r, &any,
			 "\nconnect and join (us)\n"
			 "what      mechanism        samples   median      p90      p99      "
			 "max | more\n"))
			continue;
		printf("%-9s %-16s %7llu %8s %8s %8s %8s | ", r->scenario, r->transport,
		       (unsigned long long)r->n, bench_fmt_us(b[0], 24, r->lat.median),
		       bench_fmt_us(b[1], 24, r->lat.p90), bench_fmt_us(b[2], 24, r->lat.p99),
		       bench_fmt_us(b[3], 24, r->lat.max));
		if (k)
			printf("total %s ms, all leave %s ms\n",
			       num(b[4], "%.1f", M(r, "total_ms")),
			       num(b[5], "%.1f", M(r, "leave_total_ms")));
		else if (j)
			printf("leave median %s us; syscalls: join %s, leave %s\n",
			       bench_fmt_us(b[4], 24, M(r, "leave_median_us")),
			       num(b[5], "%.1f", M(r, "syscalls_per_join")),
			       num(b[6], "%.1f", M(r, "syscalls_per_leave")));
		else
			printf("delivered med %s; 2nd peer %s; same process %s; warm %s; "
			       "syscalls %s, faults %s\n",
			       bench_fmt_us(b[4], 24, M(r, "delivered_median_us")),
			       bench_fmt_us(b[6], 24, M(r, "second_peer_median_us")),
			       bench_fmt_us(b[7], 24, M(r, "same_process_median_us")),
			       bench_fmt_us(b[5], 24, M(r, "warm_send_median_us")),
			       num(b[8], "%.1f", M(r, "syscalls_per_first_send")),
			       num(b[9], "%.1f", M(r, "page_faults_per_first_send")));
	}
	if (any)
		printf("connect: the first shmrpc_send to a node (unix: socket + connect + send); "
		       "2nd peer: the first send to\nanother node, the watcher thread running; same "
		       "process: to a node of the sender's process (not\nwatched); join: shmrpc_open "
		       "into a live domain; join1000: 1000 opens in a row, one process.\n");
}

static void print_memory(const struct bench_report *rep)
{
	char b[10][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "memory") ||
		    !row(r, &any,
			 "\nmemory: allocated blocks of the domain's files in /dev/shm, MiB "
			 "(default 256 KiB rings)\n"
			 "topology nodes rings files | no msg  1 msg/ring  busy: total  "
			 "rings  nodes registry | apparent left\n"))
			continue;
		printf("%-8s %5u %5.0f %5.0f | %6s %11s %12s %6s %6s %8s | %8s %4.0f\n", r->variant,
		       r->nodes, M(r, "rings"), M(r, "files"),
		       num(b[0], "%.3f", M(r, "mib_nodes_only")),
		       num(b[1], "%.3f", M(r, "mib_one_msg")), num(b[2], "%.3f", M(r, "mib_full")),
		       num(b[3], "%.2f", M(r, "mib_full_rings")),
		       num(b[4], "%.3f", M(r, "mib_full_nodes")),
		       num(b[5], "%.3f", M(r, "mib_full_registry")),
		       num(b[6], "%.2f", M(r, "mib_apparent")), M(r, "files_left"));
	}
	if (any)
		printf("busy: after every ring carried more than its size; apparent: sum of file "
		       "sizes; left: files after all nodes closed.\n");
}

static void print_crash(const struct bench_report *rep)
{
	char b[8][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "crash") ||
		    !row(r, &any,
			 "\ncrash cleanup: kill(SIGKILL) -> slot freed / files gone (us)\n"
			 "mode               kills   median      p90      p99      max | "
			 "files gone med  p99 | >2s by reaper\n"))
			continue;
		printf("%-18s %5.0f %8s %8s %8s %8s | %14s %4s | %3.0f %9.0f\n", r->transport,
		       M(r, "kills"), bench_fmt_us(b[0], 24, r->lat.median),
		       bench_fmt_us(b[1], 24, r->lat.p90), bench_fmt_us(b[2], 24, r->lat.p99),
		       bench_fmt_us(b[3], 24, r->lat.max),
		       bench_fmt_us(b[4], 24, M(r, "files_gone_median_us")),
		       bench_fmt_us(b[5], 24, M(r, "files_gone_p99_us")), M(r, "not_cleaned_2s"),
		       M(r, "reaped_by_reaper"));
	}
}

/* Issue 11: kill -9 of a sender -> its DEATH event out of shmrpc_recv. */
static void print_events(const struct bench_report *rep)
{
	char b[6][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "events") ||
		    !row(r, &any,
			 "\nevents: kill(SIGKILL) of a sender -> its DEATH event returned by the "
			 "receiver's blocked shmrpc_recv (us)\n"
			 "mode         backend kills   median      p90      p99      max | "
			 "none>2s by reaper\n"))
			continue;
		printf("%-12s %-7s %5.0f %8s %8s %8s %8s | %7.0f %9.0f\n", r->transport,
		       r->variant ? r->variant : "?", M(r, "kills"),
		       bench_fmt_us(b[0], 24, r->lat.median), bench_fmt_us(b[1], 24, r->lat.p90),
		       bench_fmt_us(b[2], 24, r->lat.p99), bench_fmt_us(b[3], 24, r->lat.max),
		       M(r, "no_event_2s"), M(r, "reaped_by_reaper"));
	}
}

static void print_rpc(const struct bench_report *rep)
{
	char b[4][24];
	int any = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!is(r, "rpc") ||
		    !row(r, &any,
			 "\nrequest/response: shmrpc_call round trips (us), pipelined calls/s (32 in "
			 "flight), kill -9 of a server with 100 calls pending -> the last -EPIPE (us)\n"
			 "run                  calls   median      p90      p99      max |  calls/s\n"))
			continue;
		if (r->has_lat)
			printf("%-18s %7llu %8s %8s %8s %8s |\n", r->transport,
			       (unsigned long long)r->n, bench_fmt_us(b[0], 24, r->lat.median),
			       bench_fmt_us(b[1], 24, r->lat.p90),
			       bench_fmt_us(b[2], 24, r->lat.p99),
			       bench_fmt_us(b[3], 24, r->lat.max));
		else
			printf("%-18s %7llu %8s %8s %8s %8s | %8s\n", r->transport,
			       (unsigned long long)r->msgs, "-", "-", "-", "-",
			       bench_fmt_rate(b[0], 24, r->msgs_per_s));
	}
}

void bench_print_more(const struct bench_report *rep)
{
	print_fan(rep);
	print_bcast(rep);
	print_syscalls(rep);
	print_idle(rep);
	print_connect(rep);
	print_memory(rep);
	print_crash(rep);
	print_events(rep);
	print_rpc(rep);
}

void bench_print_targets(const struct bench_report *rep)
{
	char b[2][24];

	if (!rep->nt)
		return;
	printf("\ntargets (issue), ratios between numbers of this run\n"
	       "id  target                                                        measured     "
	       "limit  unit       verdict\n");
	for (int i = 0; i < rep->nt; i++) {
		const struct bench_target *t = &rep->t[i];

		printf("%-3s %-60s %9s %3s%6s  %-10s ", t->id, t->what, num(b[0], "%.4g", t->value),
		       t->at_most ? "<=" : ">=", num(b[1], "%.4g", t->limit), t->unit);
		if (t->met < 0)
			printf("not measured\n");
		else if (t->met)
			printf("met\n");
		else
			printf("MISSED (%.2fx the limit)\n", t->value / t->limit);
	}
}
