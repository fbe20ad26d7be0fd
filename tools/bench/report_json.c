// SPDX-License-Identifier: MIT
/*
 * --json FILE: every result of the run as one JSON document. Numbers that
 * could not be measured (no baseline, no messages) are null. Schema
 * "shmrpc-bench/2", documented field by field in docs/bench.md: the
 * "shmrpc-bench/1" fields, plus per result "variant", "rate_per_s",
 * "nodes", "floor_one_way_us", "ratio_floor", "latency_us" (one-way
 * samples of the scenarios beyond ping-pong) and "metrics" (named numbers,
 * per scenario), and at the top level "targets".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void jnum(FILE *f, const char *key, double v, const char *sep)
{
	if (isfinite(v))
		fprintf(f, "\"%s\": %.6g%s", key, v, sep);
	else
		fprintf(f, "\"%s\": null%s", key, sep);
}

static void json_head(FILE *f, const struct bench_report *rep)
{
	const struct bench_host *h = &rep->host;
	const struct bench_cfg *c = rep->cfg;

	fprintf(f, "{\n  \"schema\": \"shmrpc-bench/2\",\n  \"date\": ");
	jstr(f, h->date);
	fprintf(f, ",\n  ");
	jnum(f, "elapsed_s", rep->elapsed_s, ", ");
	fprintf(f, "\"quick\": %s,\n  \"host\": {\"kernel\": ", rep->quick ? "true" : "false");
	jstr(f, h->kernel);
	fprintf(f, ", \"cpu_model\": ");
	jstr(f, h->cpu_model);
	fprintf(f, ", \"cpus_online\": %d, \"clocksource\": ", h->cpus_online);
	jstr(f, h->clocksource);
	fprintf(f, ", ");
	jnum(f, "clock_read_ns", h->clock_read_ns, ", ");
	jnum(f, "loadavg_start", h->load_start, ", ");
	jnum(f, "loadavg_end", h->load_end, ", ");
	jnum(f, "others_cpu_s", h->others_cpu_s, ", ");
	jnum(f, "own_cpu_s", h->own_cpu_s, ", ");
	jnum(f, "steal_s", h->steal_s, ", ");
	fprintf(f, "\"side_cpus\": [%d, %d]},\n", h->side_cpu[0], h->side_cpu[1]);
	fprintf(f, "  \"config\": {\"iters\": %llu, \"warmup_iters\": %llu, ",
		(unsigned long long)c->iters, (unsigned long long)c->warmup);
	jnum(f, "duration_s", c->duration, ", ");
	jnum(f, "stream_s", rep->stream_s, ", ");
	fprintf(f, "\"baseline\": ");
	jstr(f, rep->baseline);
	fprintf(f, "},\n  \"transports\": [");
	for (size_t i = 0; rep->transports[i]; i++) {
		fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
		jstr(f, rep->transports[i]->name);
		fprintf(f, ", \"what\": ");
		jstr(f, rep->transports[i]->what);
		fprintf(f, "}");
	}
	fprintf(f, "\n  ],\n");
}

static void json_sides(FILE *f, const struct bench_result *r, const struct bench_report *rep)
{
	fprintf(f, ",\n      \"sides\": [");
	for (int s = 0; s < r->nsides; s++) {
		const struct bench_cpu *c = &r->cpu[s];

		fprintf(f, "%s\n        {\"side\": %d, \"cpu\": %d, ", s ? "," : "", s,
			rep->host.side_cpu[s]);
		jnum(f, "user_s", c->user_s, ", ");
		jnum(f, "sys_s", c->sys_s, ", ");
		jnum(f, "wall_s", c->wall_s, ", ");
		jnum(f, "cpu_s_per_s", c->cpu_per_s, ", ");
		jnum(f, "cpu_us_per_msg", c->us_per_msg, ", ");
		fprintf(f, "\"msgs\": %llu, \"preempted\": %llu}", (unsigned long long)c->msgs,
			(unsigned long long)c->preempt);
	}
	fprintf(f, "]");
}

static void json_lat(FILE *f, const char *key, const struct bench_lat *l)
{
	fprintf(f, "\"%s\": {", key);
	jnum(f, "min", l->min, ", ");
	jnum(f, "mean", l->mean, ", ");
	jnum(f, "median", l->median, ", ");
	jnum(f, "p90", l->p90, ", ");
	jnum(f, "p99", l->p99, ", ");
	jnum(f, "p99_9", l->p999, ", ");
	jnum(f, "max", l->max, "}");
}

static void json_metrics(FILE *f, const struct bench_result *r)
{
	if (!r->nm)
		return;
	fprintf(f, ",\n      \"metrics\": {");
	for (int i = 0; i < r->nm; i++)
		jnum(f, r->m[i].key, r->m[i].v, i + 1 < r->nm ? ", " : "}");
}

static void json_params(FILE *f, const struct bench_result *r)
{
	if (r->variant) {
		fprintf(f, ", \"variant\": ");
		jstr(f, r->variant);
	}
	if (r->rate > 0)
		fprintf(f, ", \"rate_per_s\": %.0f", r->rate);
	if (r->nodes)
		fprintf(f, ", \"nodes\": %u", r->nodes);
}

static void json_pingpong(FILE *f, const struct bench_result *r)
{
	fprintf(f, "\"samples\": %llu, ", (unsigned long long)r->n);
	json_lat(f, "one_way_us", &r->lat);
	fprintf(f, ", ");
	jnum(f, "ratio_median", r->ratio, ", ");
	jnum(f, "ratio_p99", r->ratio_p99, "");
	if (r->has_floor) {
		fprintf(f, ",\n      ");
		json_lat(f, "floor_one_way_us", &r->floor);
		fprintf(f, ", ");
		jnum(f, "ratio_floor", r->ratio_floor, "");
	}
}

static void json_result(FILE *f, const struct bench_result *r, const struct bench_report *rep)
{
	static const char *const st[] = { "ok", "skipped", "failed" };
	int memcpy_ = !strcmp(r->scenario, "memcpy"), pair = r->nsides > 0;

	fprintf(f, "    {\"scenario\": \"%s\", \"transport\": ", r->scenario);
	jstr(f, r->transport);
	fprintf(f, ", \"size\": %zu, \"status\": \"%s\"", r->size, st[r->status]);
	json_params(f, r);
	if (r->status != BENCH_OK) {
		fprintf(f, ", \"reason\": ");
		jstr(f, r->why);
		fprintf(f, "}");
		return;
	}
	if (pair && r->buf_eff)
		fprintf(f, ", \"buffer_bytes\": %zu", r->buf_eff);
	else if (pair)
		fprintf(f, ", \"buffer_bytes\": null");
	fprintf(f, ",\n      ");
	if (!strcmp(r->scenario, "pingpong") || !strcmp(r->scenario, "paced")) {
		json_pingpong(f, r);
	} else if (r->has_lat) {
		fprintf(f, "\"samples\": %llu, ", (unsigned long long)r->n);
		json_lat(f, "latency_us", &r->lat);
	} else if (pair) {
		fprintf(f, "\"%s\": %llu, ", memcpy_ ? "copies" : "msgs",
			(unsigned long long)r->msgs);
		jnum(f, "window_s", r->window_s, ", ");
		jnum(f, memcpy_ ? "copies_per_s" : "msgs_per_s", r->msgs_per_s, ", ");
		jnum(f, "gb_per_s", r->gb_per_s, memcpy_ ? "" : ", ");
		if (!memcpy_)
			jnum(f, "ratio", r->ratio, "");
	} else {
		jnum(f, "msgs_per_s", r->msgs_per_s, ", ");
		jnum(f, "gb_per_s", r->gb_per_s, "");
	}
	json_metrics(f, r);
	if (pair)
		json_sides(f, r, rep);
	fprintf(f, "}");
}

static void json_targets(FILE *f, const struct bench_report *rep)
{
	fprintf(f, "  \"targets\": [");
	for (int i = 0; i < rep->nt; i++) {
		const struct bench_target *t = &rep->t[i];

		fprintf(f, "%s\n    {\"id\": ", i ? "," : "");
		jstr(f, t->id);
		fprintf(f, ", \"what\": ");
		jstr(f, t->what);
		fprintf(f, ", \"unit\": ");
		jstr(f, t->unit);
		fprintf(f, ", ");
		jnum(f, "value", t->value, ", ");
		jnum(f, "limit", t->limit, ", ");
		fprintf(f, "\"at_most\": %s, \"met\": %s}", t->at_most ? "true" : "false",
			t->met < 0 ? "null" :
			t->met	   ? "true" :
				     "false");
	}
	fprintf(f, "\n  ],\n");
}

/* bench_write_json - write the report to @path; 0 or -errno (reported). */
int bench_write_json(const struct bench_report *rep, const char *path)
{
	FILE *f = fopen(path, "w");
	int err;

	if (!f) {
		err = -errno;
		fprintf(stderr, "shmrpc-bench: %s: %s\n", path, strerror(errno));
		return err;
	}
	json_head(f, rep);
	json_targets(f, rep);
	fprintf(f, "  \"results\": [\n");
	for (size_t i = 0; i < rep->nr; i++) {
		json_result(f, &rep->r[i], rep);
		fprintf(f, "%s\n", i + 1 < rep->nr ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	err = ferror(f) ? -EIO : 0;
	if (fclose(f) && !err)
		err = -errno;
	if (err)
		fprintf(stderr, "shmrpc-bench: %s: %s\n", path, strerror(-err));
	return err;
}
