// SPDX-License-Identifier: MIT
/*
 * Formatting for the text report: sizes, latencies, rates and numbers that
 * may be missing ("-"), and the line of a row that was skipped or failed.
 * Shared by report_table.c and report_more.c; calls no other file of the
 * benchmark.
 */
#include <math.h>
#include <stdio.h>

#include "bench.h"

/* bench_fmt_size - 8, 512, 2K, 1M (binary units, exact values only). */
const char *bench_fmt_size(char *b, size_t len, size_t v)
{
	if (v >= 1048576 && v % 1048576 == 0)
		snprintf(b, len, "%zuM", v / 1048576);
	else if (v >= 1024 && v % 1024 == 0)
		snprintf(b, len, "%zuK", v / 1024);
	else
		snprintf(b, len, "%zu", v);
	return b;
}

const char *bench_fmt_us(char *b, size_t len, double v)
{
	if (isnan(v))
		snprintf(b, len, "-");
	else if (v < 1)
		snprintf(b, len, "%.3f", v);
	else if (v < 100)
		snprintf(b, len, "%.2f", v);
	else
		snprintf(b, len, "%.1f", v);
	return b;
}

const char *bench_fmt_num(char *b, size_t len, const char *fmt, double v)
{
	if (isnan(v))
		snprintf(b, len, "-");
	else
		snprintf(b, len, fmt, v);
	return b;
}

const char *bench_fmt_rate(char *b, size_t len, double v)
{
	if (isnan(v))
		return bench_fmt_num(b, len, "", v);
	if (v >= 1e6)
		snprintf(b, len, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(b, len, "%.1fk", v / 1e3);
	else
		snprintf(b, len, "%.0f", v);
	return b;
}

/* bench_row_status - 0 for an ok row; otherwise print why it was skipped
 * or failed, and return 1. */
int bench_row_status(const struct bench_result *r, const char *size)
{
	if (r->status == BENCH_OK)
		return 0;
	printf("%-18s %6s  %s: %s\n", r->transport, size,
	       r->status == BENCH_SKIPPED ? "skipped" : "FAILED", r->why);
	return 1;
}
