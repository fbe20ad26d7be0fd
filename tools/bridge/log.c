// SPDX-License-Identifier: MIT
/*
 * The bridge's log: one line per event on stderr, like shmrpc-reaper's:
 *
 *	2026-12-06T10:00:00.123Z shmrpc-bridge[812]: join domain=robot node=cam
 *
 * UTC with milliseconds, the program and pid, an event word and key=value
 * pairs without spaces, each line in one write(2) so lines never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"

static int min_level = BR_LOG_INFO;

void br_log_level(int level)
{
	min_level = level;
}

int64_t br_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t br_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void blog(int level, const char *fmt, ...)
{
	static const char *const word[] = { "debug: ", "", "warning: ", "error: " };
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ shmrpc-bridge[%d]: %s",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, (int)getpid(), word[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = m < 0 ? n : n + m < (int)sizeof(line) - 1 ? n + m : (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* stderr may be a pipe nobody reads any more: never die of it */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
