// SPDX-License-Identifier: MIT
/*
 * System calls per message under saturation (scenario 4).
 *
 * Stream runs of their own (rows "syscalls"), with the system calls of
 * both sides counted in their windows (syscount.c: the raw_syscalls:
 * sys_enter tracepoint, exact) next to the library's own counters (sleeps,
 * wakes issued) and getrusage's CPU per message: 64-byte messages over
 * every streaming transport, and the libshmrpc variants also at 8 B, 4 KiB,
 * 64 KiB and 1 MiB. Counting costs each system call ~0.1 us, which is why
 * these runs are apart from the stream scenario's, whose numbers it would
 * bend for the mechanisms that make system calls.
 *
 * Cross-check, once: the same 64-byte stream of libshmrpc runs again under
 * `strace -f -c` (a child of this program, re-executed with
 * --strace-child). strace counts every system call of the whole run, setup
 * included, and slows each one down, so its run is not the measured one;
 * what must agree is, within that run, strace's count of the calls that
 * sleep and wake (futex, futex_waitv, io_uring_enter) with the library's
 * sleeps + wakes, and strace's total with the tracepoint's count. Both are
 * printed side by side.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define XCHECK_SIZE 64
#define XCHECK_SECS 0.5

/* --strace-child TRANSPORT SIZE SECONDS OUTFILE: one stream run; writes
 * "msgs syscalls lib_sleeps lib_wakes" of both sides together. */
int bench_strace_child(int argc, char **argv)
{
	const struct bench_transport *t = argc == 5 ? bench_transport_find(argv[1]) : NULL;
	struct bench_cfg cfg = { 0 };
	struct bench_ctrl *c;
	char why[200] = "";
	FILE *f;
	int err;

	if (!t)
		return 2;
	cfg.msg_size = (size_t)atol(argv[2]);
	cfg.duration = atof(argv[3]);
	cfg.warm_s = cfg.duration / 10;
	bench_pick_cpus(cfg.cpu);
	cfg.count_syscalls = 1;
	c = bench_ctrl_new(0);
	if (!c)
		return 1;
	err = bench_pair(t, &cfg, bench_stream_side, c, NULL, why, sizeof(why));
	f = fopen(argv[4], "w");
	if (!f)
		return 1;
	if (err)
		fprintf(f, "error %s\n", why);
	else
		fprintf(f, "%llu %lld %llu %llu\n", (unsigned long long)c->side[1].msgs,
			(long long)(c->side[0].syscalls + c->side[1].syscalls),
			(unsigned long long)(c->side[0].lib.sleeps + c->side[1].lib.sleeps),
			(unsigned long long)(c->side[0].lib.wakes + c->side[1].lib.wakes));
	fclose(f);
	bench_ctrl_free(c);
	return err ? 1 : 0;
}

struct strace_counts {
	long total, futex, waitv, uring_enter;
};

/* Parse `strace -c` output: "% time seconds usecs/call calls [errors] name". */
static int parse_strace(const char *path, struct strace_counts *sc)
{
	char line[256], name[64];
	double pct, secs;
	long usecs, calls;
	FILE *f = fopen(path, "r");

	memset(sc, 0, sizeof(*sc));
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lf %lf %ld %ld", &pct, &secs, &usecs, &calls) != 4)
			continue;
		/* the name is the last word of the line */
		line[strcspn(line, "\n")] = 0;
		snprintf(name, sizeof(name), "%.63s",
			 strrchr(line, ' ') ? strrchr(line, ' ') + 1 : line);
		if (!strcmp(name, "total"))
			continue;
		sc->total += calls;
		if (!strcmp(name, "futex"))
			sc->futex += calls;
		else if (!strcmp(name, "futex_waitv"))
			sc->waitv += calls;
		else if (!strcmp(name, "io_uring_enter"))
			sc->uring_enter += calls;
	}
	fclose(f);
	return 0;
}

static int run_strace(const char *tr, char *st_path, char *res_path, char *why, size_t len)
{
	char self[4096], size[16], secs[16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int st, fd;
	pid_t pid;

	if (n <= 0)
		return -errno;
	self[n] = 0;
	if ((fd = mkstemp(st_path)) < 0 || close(fd) || (fd = mkstemp(res_path)) < 0 || close(fd))
		return -errno;
	snprintf(size, sizeof(size), "%d", XCHECK_SIZE);
	snprintf(secs, sizeof(secs), "%g", XCHECK_SECS);
	fflush(NULL);
	pid = bench_fork();
	if (pid == 0) {
		execlp("strace", "strace", "-f", "-c", "-o", st_path, self, "--strace-child", tr,
		       size, secs, res_path, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		snprintf(why, len, "strace not found (scripts/deps.sh bench installs it)");
		return -EOPNOTSUPP;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(why, len, "the run under strace failed (status %d)", st);
		return -EIO;
	}
	return 0;
}

static void cross_check(struct bench_results *rs, const char *tr)
{
	char st_path[] = "/tmp/shmrpc-bench.strace.XXXXXX",
	     res_path[] = "/tmp/shmrpc-bench.res.XXXXXX";
	struct bench_result *r = bench_result_new(rs, "strace", tr, XCHECK_SIZE);
	unsigned long long msgs, sleeps, wakes;
	struct strace_counts sc;
	long long calls;
	FILE *f;
	int err;

	r->nsides = 0;
	err = run_strace(tr, st_path, res_path, r->why, sizeof(r->why));
	if (!err && !(f = fopen(res_path, "r")))
		err = -errno;
	if (!err) {
		if (fscanf(f, "%llu %lld %llu %llu", &msgs, &calls, &sleeps, &wakes) != 4) {
			snprintf(r->why, sizeof(r->why), "no result from the run under strace");
			err = -EIO;
		}
		fclose(f);
	}
	if (!err)
		err = parse_strace(st_path, &sc);
	unlink(st_path);
	unlink(res_path);
	if (err) {
		r->status = err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
		bench_progress(r);
		return;
	}
	r->msgs = msgs;
	bench_metric_set(r, "msgs", (double)msgs);
	bench_metric_set(r, "lib_sleeps_plus_wakes", (double)(sleeps + wakes));
	bench_metric_set(r, "tracepoint_syscalls_in_windows", (double)calls);
	bench_metric_set(r, "strace_sleep_wake_calls",
			 (double)(sc.futex + sc.waitv + sc.uring_enter));
	bench_metric_set(r, "strace_futex", (double)sc.futex);
	bench_metric_set(r, "strace_futex_waitv", (double)sc.waitv);
	bench_metric_set(r, "strace_io_uring_enter", (double)sc.uring_enter);
	bench_metric_set(r, "strace_total_whole_run", (double)sc.total);
	bench_progress(r);
}

void bench_run_syscalls(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	static const size_t sizes[] = { 8, 64, 4096, 65536, 1048576 };
	struct bench_measure m = { .fn = bench_stream_side, .kind = BENCH_KIND_STREAM };
	const struct bench_transport *t;
	struct bench_cfg c = *cfg;

	c.count_syscalls = 1;
	c.duration = o->duration > 0 ? o->duration : o->quick ? 0.1 : BENCH_STREAM_SECS;
	c.warm_s = c.duration / 10 < 0.02 ? 0.02 : c.duration / 10;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		if (o->quick && sizes[k] != XCHECK_SIZE)
			continue;
		for (size_t i = 0; (t = bench_transports[i]); i++) {
			if (!bench_want(o, t->name, t->not_in,
					BENCH_NOT_STREAM | BENCH_NOT_SYSCALLS))
				continue;
			if (sizes[k] != XCHECK_SIZE && strncmp(t->name, "shmrpc", 6))
				continue;
			c.msg_size = sizes[k];
			m.t = t;
			bench_measure_once(rs, bench_result_new(rs, "syscalls", t->name, sizes[k]),
					   &m, &c);
		}
	}
	if (!o->no_strace) {
		cross_check(rs, "shmrpc");
		cross_check(rs, "shmrpc-futex");
	}
}
