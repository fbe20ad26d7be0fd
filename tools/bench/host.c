// SPDX-License-Identifier: MIT
/*
 * What the report says about the machine: kernel, CPU, clock source, the
 * cost of one clock read, and which CPUs the two sides run on.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

/* bench_pick_cpus - the first two CPUs this process may run on (the same
 * one twice on a single-CPU machine). Returns how many distinct: 1 or 2. */
int bench_pick_cpus(int cpu[2])
{
	cpu_set_t set;
	int n = 0;

	cpu[0] = cpu[1] = 0;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, &set))
			cpu[n++] = i;
	if (n < 2)
		cpu[1] = cpu[0];
	return n < 2 ? 1 : 2;
}

static void read_line(const char *path, const char *key, char *out, size_t len)
{
	char line[512], *p;
	FILE *f = fopen(path, "r");

	snprintf(out, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (key && strncmp(line, key, strlen(key)))
			continue;
		p = key ? strchr(line, ':') : NULL;
		p = p ? p + 1 : line;
		p += strspn(p, " \t");
		p[strcspn(p, "\n")] = 0;
		snprintf(out, len, "%s", p);
		break;
	}
	fclose(f);
}

static double clock_cost_ns(void)
{
	enum { N = 200000 };
	int64_t t0 = bench_now_ns(), t = t0;

	for (int i = 0; i < N; i++)
		t = bench_now_ns();
	return (double)(t - t0) / N;
}

/* All CPUs' non-idle and steal time so far, seconds (/proc/stat). */
static void stat_times(double *busy, double *steal)
{
	unsigned long long v[8] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	*busy = *steal = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		/* user nice system [idle iowait] irq softirq steal */
		*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / (double)hz;
		*steal = (double)v[7] / (double)hz;
	}
	fclose(f);
}

/* CPU of this process and of its (waited-for) descendants, seconds. */
static double own_cpu(void)
{
	struct rusage s, c;

	getrusage(RUSAGE_SELF, &s);
	getrusage(RUSAGE_CHILDREN, &c);
	return (double)(s.ru_utime.tv_sec + s.ru_stime.tv_sec + c.ru_utime.tv_sec +
			c.ru_stime.tv_sec) +
	       (double)(s.ru_utime.tv_usec + s.ru_stime.tv_usec + c.ru_utime.tv_usec +
			c.ru_stime.tv_usec) /
		       1e6;
}

void bench_host_probe(struct bench_host *h, const int side_cpu[2])
{
	struct utsname u;
	time_t now = time(NULL);
	char load[128];

	memset(h, 0, sizeof(*h));
	if (uname(&u) == 0)
		snprintf(h->kernel, sizeof(h->kernel), "%s", u.release);
	read_line("/proc/cpuinfo", "model name", h->cpu_model, sizeof(h->cpu_model));
	read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", NULL,
		  h->clocksource, sizeof(h->clocksource));
	h->cpus_online = (int)sysconf(_SC_NPROCESSORS_ONLN);
	read_line("/proc/loadavg", NULL, load, sizeof(load));
	h->load_start = atof(load);
	h->side_cpu[0] = side_cpu[0];
	h->side_cpu[1] = side_cpu[1];
	h->clock_read_ns = clock_cost_ns();
	stat_times(&h->stat0[0], &h->stat0[1]);
	h->own0 = own_cpu();
	strftime(h->date, sizeof(h->date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
}

void bench_host_finish(struct bench_host *h)
{
	double busy, steal;
	char load[128];

	read_line("/proc/loadavg", NULL, load, sizeof(load));
	h->load_end = atof(load);
	stat_times(&busy, &steal);
	h->own_cpu_s = own_cpu() - h->own0;
	h->others_cpu_s = busy - h->stat0[0] - h->own_cpu_s;
	if (h->others_cpu_s < 0)
		h->others_cpu_s = 0; /* tick-sampled /proc/stat vs exact rusage */
	h->steal_s = steal - h->stat0[1];
}
