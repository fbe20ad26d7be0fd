// SPDX-License-Identifier: MIT
/*
 * shmrpc-reaper for the scenarios that measure cleanup (crash.c, evlat.c):
 * the modes (who cleans up after a killed node), the reaper's command line
 * for a mode, starting it and waiting until it announces itself in the
 * registry (reaper_pid), stopping it.
 *
 * A reaper mode runs only when shmrpc-reaper is built next to this program
 * (and reaper-bpf only as root). Its command is the mode's cmd
 * (docs/reaper.md), or $SHMRPC_BENCH_REAPER_BPF / $SHMRPC_BENCH_REAPER_PIDFD
 * ("{bin}" and "{domain}" in it are replaced by the reaper's path and the
 * run's domain). Otherwise the mode is reported as not available. The
 * caller starts it (unpinned, /bin/sh -c) once the domain exists; it has
 * REAPER_WAIT_NS to announce itself, and is stopped with SIGTERM.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define REAPER_WAIT_NS 2000000000ll

const struct bench_reaper_mode bench_reaper_modes[BENCH_REAPER_MODES] = {
	{ "peers", NULL, NULL, false },
	/* A private probe (--no-pin): never one a system reaper pinned. */
	{ "reaper-bpf", "SHMRPC_BENCH_REAPER_BPF", "{bin} --mode bpf --no-pin --domain {domain}",
	  true },
	{ "reaper-pidfd", "SHMRPC_BENCH_REAPER_PIDFD", "{bin} --mode pidfd --domain {domain}",
	  false },
};

/* Replace every "{key}" of @in by @val into @out. */
static void subst(char *out, size_t len, const char *in, const char *key, const char *val)
{
	size_t o = 0, k = strlen(key);

	for (; *in && o + 1 < len; in++) {
		if (!strncmp(in, key, k)) {
			o += (size_t)snprintf(out + o, len - o, "%s", val);
			in += k - 1;
		} else {
			out[o++] = *in;
		}
		if (o >= len)
			o = len - 1;
	}
	out[o] = 0;
}

/* bench_reaper_cmd - the reaper command of mode @m for @domain into @out
 * (empty for "peers": no reaper); -EOPNOTSUPP with @why when the mode
 * cannot run here. */
int bench_reaper_cmd(const struct bench_reaper_mode *m, const char *domain, char *out,
		     size_t outlen, char *why, size_t len)
{
	char self[3800], bin[3900], tmp[1024];
	const char *cmd = m->env ? getenv(m->env) : NULL;
	ssize_t n;

	out[0] = 0;
	if (!m->env)
		return 0;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	if (strrchr(self, '/'))
		*strrchr(self, '/') = 0;
	snprintf(bin, sizeof(bin), "%s/shmrpc-reaper", self);
	if (access(bin, X_OK) != 0) {
		snprintf(why, len, "not available: %.100s is not built", bin);
		return -EOPNOTSUPP;
	}
	if (m->root && geteuid() != 0) {
		snprintf(why, len, "not available: the reaper's BPF mode needs root");
		return -EOPNOTSUPP;
	}
	cmd = cmd && *cmd ? cmd : m->cmd;
	if (!cmd) {
		snprintf(why, len,
			 "not available: the reaper's command line is not connected "
			 "(set $%s, see docs/bench.md)",
			 m->env);
		return -EOPNOTSUPP;
	}
	/* exec: the reaper itself gets the SIGTERM, not a shell around it */
	snprintf(self, sizeof(self), "exec %s", cmd);
	subst(tmp, sizeof(tmp), self, "{bin}", bin);
	subst(out, outlen, tmp, "{domain}", domain);
	return 0;
}

/* bench_reaper_start - start @cmd, unpinned, and wait until the registry
 * @rv names a reaper: 0 with *pid, -ESRCH (it exited or stayed silent:
 * killed), -errno. */
int bench_reaper_start(const char *cmd, const struct bench_regview *rv, pid_t *pid)
{
	int64_t end = bench_now_ns() + REAPER_WAIT_NS;
	cpu_set_t all;

	*pid = bench_fork();
	if (*pid < 0)
		return -errno;
	if (*pid == 0) {
		CPU_ZERO(&all);
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &all);
		sched_setaffinity(0, sizeof(all), &all);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (!bench_reg_reaper_pid(rv) && bench_now_ns() < end &&
	       waitpid(*pid, NULL, WNOHANG) == 0)
		usleep(1000);
	if (bench_reg_reaper_pid(rv))
		return 0;
	/* Exited or silent: its rows would show the peers' delays. */
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
	return -ESRCH;
}

/* bench_reaper_stop - SIGTERM to a started reaper (pid > 0), and wait. */
void bench_reaper_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}
