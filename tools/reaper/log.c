// SPDX-License-Identifier: MIT
/*
 * The reaper's log: one line per event on stderr, which journald (or a
 * file the caller redirects to) keeps:
 *
 *	2026-11-26T22:00:00.123Z shmrpc-reaper[812]: reaped domain=foo ...
 *
 * UTC with milliseconds, the program and pid, then an event word and
 * key=value pairs whose values never hold spaces (names are [A-Za-z0-9._-]),
 * so `grep`, `awk` and the tests read it without a parser. Each line is
 * written with a single write(2), so lines never interleave. Lines about
 * one owner's files (rlogo) are bounded per second (owner.c).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reaper.h"

static const char *prog = "shmrpc-reaper";

void rlog_init(const char *name)
{
	prog = name;
}

int64_t rnow_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rlog_va(const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, prog, (int)getpid());
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	n = m < 0 ? n : n + m < (int)sizeof(line) - 1 ? n + m : (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* stderr may be a pipe nobody reads any more: never die of it. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void rlog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rlog_va(fmt, ap);
	va_end(ap);
}

void rlogv(const struct reaper *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->o.verbose)
		return;
	va_start(ap, fmt);
	rlog_va(fmt, ap);
	va_end(ap);
}

void rlogo(struct reaper *r, struct rowner *o, const char *fmt, ...)
{
	va_list ap;

	if (o && !owner_log_ok(r, o))
		return;
	va_start(ap, fmt);
	rlog_va(fmt, ap);
	va_end(ap);
}

void rlogov(struct reaper *r, struct rowner *o, const char *fmt, ...)
{
	va_list ap;

	if (!r->o.verbose || (o && !owner_log_ok(r, o)))
		return;
	va_start(ap, fmt);
	rlog_va(fmt, ap);
	va_end(ap);
}

const char *rlog_status(int status, char *buf, size_t len)
{
	const char *name;

	if (status < 0) {
		snprintf(buf, len, "-");
	} else if (WIFSIGNALED(status)) {
		name = sigabbrev_np(WTERMSIG(status));
		if (name)
			snprintf(buf, len, "SIG%s%s", name, WCOREDUMP(status) ? "+core" : "");
		else
			snprintf(buf, len, "signal%d", WTERMSIG(status));
	} else {
		snprintf(buf, len, "%d", WEXITSTATUS(status));
	}
	return buf;
}
