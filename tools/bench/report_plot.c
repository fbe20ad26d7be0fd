// SPDX-License-Identifier: MIT
/*
 * --plots DIR: gnuplot data files, a gnuplot script (DIR/plots.gp) and,
 * when gnuplot is installed, the SVGs it draws:
 *	pingpong_<size>_cdf.svg   one-way latency CDF, one line per mechanism
 *	pingpong_<size>_tail.svg  the same as 1 - CDF on a log scale (the tail)
 *	stream_msgs.svg           messages/s by message size
 *	stream_gbps.svg           GB/s by message size, with memcpy for scale
 * Data: lat_<size>_<mechanism>.dat ("one-way-us fraction", the CDF of all
 * samples thinned to ~2000 points plus every one of the top 1000) and
 * stream_<mechanism>.dat ("size msgs/s GB/s"). Without gnuplot the data and
 * script stay, and a message says so.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* A line style per mechanism: the kernel baselines dashed, the messaging
 * libraries dash-dotted, libshmrpc's variants solid and thicker, each its
 * own colour. */
static const char *style(const char *name)
{
	static const struct {
		const char *name, *style;
	} st[] = {
		{ "cacheline", "lw 2 dt 3 lc rgb 'black'" },
		{ "spin", "lw 2 dt 2 lc rgb '#7f7f7f'" },
		{ "futex", "lw 2 dt 2 lc rgb '#1f77b4'" },
		{ "eventfd", "lw 2 dt 2 lc rgb '#17becf'" },
		{ "pipe", "lw 2 dt 2 lc rgb '#2ca02c'" },
		{ "unix", "lw 2 dt 2 lc rgb '#8c564b'" },
		{ "mqueue", "lw 2 dt 2 lc rgb '#bcbd22'" },
		{ "zmq", "lw 2 dt 4 lc rgb '#e6550d'" },
		{ "nng", "lw 2 dt 4 lc rgb '#31a354'" },
		{ "shmrpc", "lw 3 lc rgb '#d62728'" },
		{ "shmrpc-futex", "lw 3 lc rgb '#ff7f0e'" },
		{ "shmrpc-spin", "lw 3 lc rgb '#e377c2'" },
		{ "shmrpc-sleep", "lw 3 lc rgb '#9467bd'" },
		{ "shmrpc-sleep-futex", "lw 3 lc rgb '#4b0082'" },
		{ "shmrpc-zc", "lw 3 lc rgb '#ff00ff'" },
	};

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		if (!strcmp(st[i].name, name))
			return st[i].style;
	return "lw 2";
}

static FILE *open_in(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "shmrpc-bench: %s: %s\n", path, strerror(errno));
	return f;
}

static int write_cdf(const char *dir, const struct bench_result *r)
{
	uint64_t n = r->n, tail = n > 1000 ? 1000 : n, body = n - tail, i;
	double step = body > 2000 ? (double)body / 2000 : 1;
	char name[128];
	FILE *f;

	snprintf(name, sizeof(name), "lat_%zu_%s.dat", r->size, r->transport);
	f = open_in(dir, name);
	if (!f)
		return -errno;
	fprintf(f, "# %s %zu B: one-way latency (us), fraction of samples at or below\n",
		r->transport, r->size);
	for (double x = 0; x < (double)body; x += step) {
		i = (uint64_t)x;
		fprintf(f, "%.4f %.7f\n", (double)r->rtt_ns[i] / 2000, (double)(i + 1) / (double)n);
	}
	for (i = body; i < n; i++)
		fprintf(f, "%.4f %.7f\n", (double)r->rtt_ns[i] / 2000, (double)(i + 1) / (double)n);
	return fclose(f) ? -errno : 0;
}

/* Write stream_<t>.dat; 1 if it has points, 0 if none, -errno. */
static int write_stream(const char *dir, const struct bench_report *rep, const char *t)
{
	char name[128];
	FILE *f = NULL;
	int pts = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (strcmp(r->scenario, "stream") || strcmp(r->transport, t) || r->status)
			continue;
		if (!f) {
			snprintf(name, sizeof(name), "stream_%s.dat", t);
			f = open_in(dir, name);
			if (!f)
				return -errno;
			fprintf(f, "# %s: size(B) msgs/s GB/s\n", t);
		}
		fprintf(f, "%zu %.1f %.6f\n", r->size, r->msgs_per_s, r->gb_per_s);
		pts++;
	}
	if (f && fclose(f))
		return -errno;
	return pts > 0;
}

/* Plot commands for the ping-pong results of one size (plus the
 * cacheline floor); returns how many lines. */
static int gp_latency(FILE *gp, const struct bench_report *rep, size_t size, const char *col)
{
	const char *sep = "plot ";
	int lines = 0;

	for (size_t i = 0; i < rep->nr; i++) {
		const struct bench_result *r = &rep->r[i];

		if (strcmp(r->scenario, "pingpong") || r->status || !r->rtt_ns)
			continue;
		if (r->size != size && strcmp(r->transport, "cacheline"))
			continue;
		fprintf(gp, "%s'lat_%zu_%s.dat' using 1:%s with lines %s title '%s%s'", sep,
			r->size, r->transport, col, style(r->transport), r->transport,
			strcmp(r->transport, "cacheline") ? "" : " (8 B word)");
		sep = ", \\\n     ";
		lines++;
	}
	if (lines)
		fprintf(gp, "\n");
	return lines;
}

static void gp_pingpong(FILE *gp, const struct bench_report *rep)
{
	size_t done[16];
	int nd = 0, seen;

	for (size_t i = 0; i < rep->nr && nd < 16; i++) {
		const struct bench_result *r = &rep->r[i];

		if (strcmp(r->scenario, "pingpong") || r->status ||
		    !strcmp(r->transport, "cacheline"))
			continue;
		seen = 0;
		for (int k = 0; k < nd; k++)
			seen |= done[k] == r->size;
		if (seen)
			continue;
		done[nd++] = r->size;
		fprintf(gp,
			"\nset output 'pingpong_%zu_cdf.svg'\n"
			"set title 'ping-pong one-way latency (RTT/2), %zu B messages'\n"
			"set logscale x; unset logscale y; set yrange [0:1]\n"
			"set key outside right\n"
			"set xlabel 'one-way latency (us)'\n"
			"set ylabel 'fraction of round trips at or below'\n",
			r->size, r->size);
		gp_latency(gp, rep, r->size, "2");
		fprintf(gp,
			"\nset output 'pingpong_%zu_tail.svg'\n"
			"set title 'ping-pong one-way latency tail, %zu B messages'\n"
			"set logscale xy; set yrange [*:1]; set key inside top right\n"
			"set ylabel 'fraction of round trips above (1 - CDF)'\n",
			r->size, r->size);
		gp_latency(gp, rep, r->size, "(1-$2)");
	}
}

static void gp_stream(FILE *gp, const struct bench_report *rep, const int *has, double memcpy_gb)
{
	static const char *const col[2] = { "2", "3" };
	static const char *const what[2] = { "msgs", "gbps" };
	static const char *const key[2] = { "inside bottom left opaque", "inside top left opaque" };
	static const char *const ylabel[2] = { "messages per second",
					       "GB/s of payload (1 GB = 1e9 B)" };
	const char *sep;

	for (int k = 0; k < 2; k++) {
		fprintf(gp,
			"\nset output 'stream_%s.svg'\n"
			"set title 'streaming, one producer -> one consumer (delivered)'\n"
			"set logscale xy; set yrange [*:*]; set key %s\n"
			"set xlabel 'message size (bytes)'; set ylabel '%s'\n"
			"set xtics (\"8\" 8, \"32\" 32, \"128\" 128, \"512\" 512, \"2K\" 2048, "
			"\"8K\" 8192, \"32K\" 32768, \"128K\" 131072, \"512K\" 524288, "
			"\"1M\" 1048576)\n",
			what[k], key[k], ylabel[k]);
		sep = "plot ";
		for (size_t i = 0; rep->transports[i]; i++) {
			const char *name = rep->transports[i]->name;

			if (!has[i])
				continue;
			fprintf(gp, "%s'stream_%s.dat' using 1:%s with linespoints %s title '%s'",
				sep, name, col[k], style(name), name);
			sep = ", \\\n     ";
		}
		if (k == 1 && memcpy_gb > 0)
			fprintf(gp,
				"%s%.6f with lines dt 2 lc rgb 'black' title 'memcpy 1 MiB, "
				"one core'",
				sep, memcpy_gb);
		fprintf(gp, "\nunset xtics; set xtics\n");
	}
}

static int run_gnuplot(const char *dir)
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = bench_fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (chdir(dir) == 0)
			execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		fprintf(stderr,
			"shmrpc-bench: gnuplot not found: SVGs skipped; data and "
			"plots.gp are in %s\n",
			dir);
		return 0;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "shmrpc-bench: gnuplot failed on %s/plots.gp\n", dir);
		return -EIO;
	}
	fprintf(stderr, "shmrpc-bench: plots written to %s\n", dir);
	return 0;
}

/* bench_write_plots - see the top of this file. 0 or -errno (reported). */
int bench_write_plots(const struct bench_report *rep, const char *dir)
{
	int has[64] = { 0 }, err = 0, any = 0;
	double memcpy_gb = 0;
	FILE *gp;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "shmrpc-bench: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < rep->nr && !err; i++) {
		const struct bench_result *r = &rep->r[i];

		if (!strcmp(r->scenario, "pingpong") && !r->status && r->rtt_ns)
			err = write_cdf(dir, r);
		if (!strcmp(r->scenario, "memcpy") && !r->status)
			memcpy_gb = r->gb_per_s;
	}
	for (size_t i = 0; rep->transports[i] && i < 64 && !err; i++) {
		has[i] = write_stream(dir, rep, rep->transports[i]->name);
		err = has[i] < 0 ? has[i] : 0;
		any |= has[i] > 0;
	}
	gp = err ? NULL : open_in(dir, "plots.gp");
	if (!gp)
		return err ? err : -errno;
	fprintf(gp,
		"# generated by shmrpc-bench %s; run: gnuplot plots.gp\n"
		"set terminal svg size 960,600 dynamic noenhanced font 'sans,12' "
		"background rgb 'white'\nset grid\n",
		rep->host.date);
	gp_pingpong(gp, rep);
	if (any)
		gp_stream(gp, rep, has, memcpy_gb);
	if (fclose(gp))
		return -errno;
	return run_gnuplot(dir);
}
