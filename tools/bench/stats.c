// SPDX-License-Identifier: MIT
/*
 * Statistics over recorded samples (no histograms: every round trip is
 * kept and sorted), CPU-time ratios, and ratios to the baseline transport
 * measured in the same run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * bench_quantile_us - the q-quantile (0 < q <= 1) of sorted round trips,
 * as one-way microseconds, by the nearest-rank method: the smallest sample
 * with at least q * n samples at or below it. NAN when n == 0.
 */
double bench_quantile_us(const uint64_t *sorted_rtt_ns, uint64_t n, double q)
{
	double want = q * (double)n;
	uint64_t k = (uint64_t)want;

	if (!n)
		return NAN;
	if ((double)k < want)
		k++;
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)sorted_rtt_ns[k - 1] / 2000.0;
}

/* bench_lat_summarise - sort @rtt_ns in place and summarise it as one-way
 * latency (RTT / 2) in microseconds. */
void bench_lat_summarise(uint64_t *rtt_ns, uint64_t n, struct bench_lat *out)
{
	double sum = 0;

	memset(out, 0, sizeof(*out));
	if (!n) {
		out->min = out->mean = out->median = NAN;
		out->p90 = out->p99 = out->p999 = out->max = NAN;
		return;
	}
	qsort(rtt_ns, n, sizeof(*rtt_ns), cmp_u64);
	for (uint64_t i = 0; i < n; i++)
		sum += (double)rtt_ns[i];
	out->mean = sum / (double)n / 2000.0;
	out->min = (double)rtt_ns[0] / 2000.0;
	out->median = bench_quantile_us(rtt_ns, n, 0.5);
	out->p90 = bench_quantile_us(rtt_ns, n, 0.9);
	out->p99 = bench_quantile_us(rtt_ns, n, 0.99);
	out->p999 = bench_quantile_us(rtt_ns, n, 0.999);
	out->max = (double)rtt_ns[n - 1] / 2000.0;
}

/* bench_lat_summarise_ns - the same for one-way samples (ns): sorted in
 * place, summarised in microseconds without halving. */
void bench_lat_summarise_ns(uint64_t *ns, uint64_t n, struct bench_lat *out)
{
	bench_lat_summarise(ns, n, out);
	out->min *= 2;
	out->mean *= 2;
	out->median *= 2;
	out->p90 *= 2;
	out->p99 *= 2;
	out->p999 *= 2;
	out->max *= 2;
}

/* bench_cpu_fill - CPU use of one side from what it measured itself. */
void bench_cpu_fill(struct bench_cpu *cpu, const struct bench_side_out *o)
{
	double used;

	cpu->user_s = (double)o->user_ns / 1e9;
	cpu->sys_s = (double)o->sys_ns / 1e9;
	cpu->wall_s = (double)o->wall_ns / 1e9;
	cpu->msgs = o->msgs;
	cpu->preempt = o->preempt;
	used = cpu->user_s + cpu->sys_s;
	cpu->cpu_per_s = cpu->wall_s > 0 ? used / cpu->wall_s : NAN;
	cpu->us_per_msg = o->msgs ? used * 1e6 / (double)o->msgs : NAN;
}

static const struct bench_result *find_base(const struct bench_result *r, size_t nr,
					    const struct bench_result *x, const char *baseline)
{
	for (size_t i = 0; i < nr; i++)
		if (r[i].status == BENCH_OK && r[i].size == x->size && r[i].rate == x->rate &&
		    !strcmp(r[i].scenario, x->scenario) && !strcmp(r[i].transport, baseline))
			return &r[i];
	return NULL;
}

/*
 * bench_ratios - for every result, its ratio to the @baseline transport's
 * result of the same scenario and size: ping-pong median / baseline median
 * (and p99 / p99): below 1 is faster; stream msgs/s / baseline msgs/s:
 * above 1 is faster. NAN where there is no such baseline result.
 */
void bench_ratios(struct bench_result *r, size_t nr, const char *baseline)
{
	const struct bench_result *b;

	for (size_t i = 0; i < nr; i++) {
		r[i].ratio = r[i].ratio_p99 = NAN;
		b = r[i].status == BENCH_OK ? find_base(r, nr, &r[i], baseline) : NULL;
		if (!b)
			continue;
		if (!strcmp(r[i].scenario, "pingpong") || !strcmp(r[i].scenario, "paced")) {
			r[i].ratio = r[i].lat.median / b->lat.median;
			r[i].ratio_p99 = r[i].lat.p99 / b->lat.p99;
		} else if (!strcmp(r[i].scenario, "stream")) {
			r[i].ratio = r[i].msgs_per_s / b->msgs_per_s;
		}
	}
}
