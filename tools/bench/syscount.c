// SPDX-License-Identifier: MIT
/*
 * Counting system calls exactly, without strace: a perf counter on the
 * raw_syscalls:sys_enter tracepoint for this process (and, through
 * `inherit`, the threads it creates afterwards), read with read(2). The
 * kernel counts every entry; nothing is sampled and the traced process is
 * never stopped, so a run measures the same with or without it.
 *
 * Needs tracefs (for the tracepoint's id) and permission for perf events on
 * tracepoints (root, or kernel.perf_event_paranoid <= -1 for others). Where
 * that is missing the count is -1 and reports say "-".
 *
 * It is not free: with the counter open, every system call of the process
 * runs the tracepoint's perf handler, about 0.1 us more per call here (a
 * pipe stream of 64 B messages, two calls per message, went from 0.60 to
 * 0.85 us of CPU per message on each side). So only runs that report
 * system calls open it (struct bench_cfg / bench_group count_syscalls),
 * and their other numbers are not compared with uncounted ones.
 *
 * Caveats, documented in docs/bench.md: counts of an inherited thread
 * are added to ours only when it exits (a libshmrpc watcher thread blocked
 * in poll(2) makes none meanwhile anyway), and the read(2) that ends a
 * window counts itself (bench_sysc_read callers subtract it).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

static int sysc_fd = -1;

static long tracepoint_id(const char *event)
{
	static const char *const roots[] = { "/sys/kernel/tracing/events",
					     "/sys/kernel/debug/tracing/events" };
	char path[256], buf[32];
	ssize_t n;
	int fd;

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s/id", roots[i], event);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			return strtol(buf, NULL, 10);
		}
	}
	return -1;
}

/*
 * bench_sysc_open - start counting this process's system calls (and those
 * of threads it creates from now on). Returns 0, or -errno when system
 * calls cannot be counted here (bench_sysc_read then returns -1).
 */
int bench_sysc_open(void)
{
	struct perf_event_attr a;
	long id;

	if (sysc_fd >= 0)
		return 0;
	id = tracepoint_id("raw_syscalls/sys_enter");
	if (id < 0)
		return -ENOENT;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = (uint64_t)id;
	a.inherit = 1;
	sysc_fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	return sysc_fd < 0 ? -errno : 0;
}

/* bench_sysc_read - system calls counted so far (the read(2) itself
 * included), or -1. */
int64_t bench_sysc_read(void)
{
	uint64_t v;

	if (sysc_fd < 0 || read(sysc_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return -1;
	return (int64_t)v;
}

void bench_sysc_close(void)
{
	if (sysc_fd >= 0)
		close(sysc_fd);
	sysc_fd = -1;
}
