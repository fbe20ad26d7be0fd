// SPDX-License-Identifier: MIT
/*
 * The results of a run: a growing list of struct bench_result that the
 * runners fill and the reports only read, the named numbers (metrics) of a
 * result, and the progress line each finished result prints on stderr.
 * Calls no other file of the benchmark.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* bench_result_new - append a result (zeroed, ratios NAN, two sides) and
 * return it. Exits on out of memory. The pointer is valid until the next
 * call: the list moves as it grows. */
struct bench_result *bench_result_new(struct bench_results *rs, const char *scen, const char *tr,
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
	r->ratio = r->ratio_p99 = r->ratio_floor = NAN;
	return r;
}

/* bench_results_free - free every result's samples and the list. */
void bench_results_free(struct bench_results *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->r[i].rtt_ns);
	free(rs->r);
	rs->r = NULL;
	rs->n = rs->cap = 0;
}

/* bench_metric_set - set metric @key (a static string) of @r; the first
 * BENCH_MAX_METRICS keys are kept, later new ones dropped. */
void bench_metric_set(struct bench_result *r, const char *key, double v)
{
	for (int i = 0; i < r->nm; i++)
		if (!strcmp(r->m[i].key, key)) {
			r->m[i].v = v;
			return;
		}
	if (r->nm < BENCH_MAX_METRICS)
		r->m[r->nm++] = (struct bench_metric){ key, v };
}

double bench_metric(const struct bench_result *r, const char *key)
{
	for (int i = 0; i < r->nm; i++)
		if (!strcmp(r->m[i].key, key))
			return r->m[i].v;
	return NAN;
}

/* bench_progress - one line on stderr about a finished result. */
void bench_progress(const struct bench_result *r)
{
	fprintf(stderr, "  %-9s %-18s %8zu B  ", r->scenario, r->transport, r->size);
	if (r->status != BENCH_OK)
		fprintf(stderr, "%s: %s\n", r->status == BENCH_SKIPPED ? "skipped" : "FAILED",
			r->why);
	else if (r->has_lat)
		fprintf(stderr, "median %.3f us, p99 %.3f us, n=%llu\n", r->lat.median, r->lat.p99,
			(unsigned long long)r->n);
	else if (r->nm && !(r->msgs_per_s > 0)) {
		for (int i = 0; i < r->nm && i < 4; i++)
			fprintf(stderr, "%s%s %.4g", i ? ", " : "", r->m[i].key, r->m[i].v);
		fprintf(stderr, "\n");
	} else
		fprintf(stderr, "%.0f msgs/s, %.3f GB/s\n", r->msgs_per_s, r->gb_per_s);
}
