// SPDX-License-Identifier: MIT
/*
 * What the scenarios that measure cleanup (crash.c, evlat.c) share: the
 * modes (who cleans up after a killed node), the reaper's command line for
 * a mode, starting it and waiting until it announces itself in the
 * registry (reaper_pid), stopping it; and the processes of a run, a group
 * of two members and the victims:
 *   member 0, the receiver  a node that answers every victim's hello (and,
 *                           in evlat.c, takes the DEATH events);
 *   member 1, the killer    forks the victims one after the other, kills
 *                           each once it is connected (the scenario's own
 *                           part), and starts and stops the reaper;
 *   a victim                node "v<i>": a hello to the receiver, its
 *                           answer (rings both ways, and the receiver
 *                           watches its pidfd), then it waits for SIGKILL.
 * Shared words (g->c->word): [0] stop (killer -> receiver), [1] the
 * receiver is up, [2] the victim that is ready (i + 1); the scenarios use
 * the others.
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
#include "shmrpc.h"

#define REAPER_WAIT_NS 2000000000ll
#define VICTIM_WAIT_NS 20000000000ll /* a victim not connected by then: failed */

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

/* --------------------------------------------------- the run's processes */

/* bench_receiver - member 0: node @name with @o, up (word[1]), answering
 * every message until the killer says stop (word[0]); one from
 * SHMRPC_EVENT_FROM goes to @event instead (NULL: no events subscribed).
 * A receive error other than a timeout ends the loop with @err_stops, or
 * is kept while the loop goes on. 0, or the error (recorded). */
int bench_receiver(struct bench_group *g, const char *name, const struct shmrpc_opts *o,
		   bench_event_fn event, bool err_stops)
{
	char from[SHMRPC_NAME_MAX + 1];
	union {
		struct shmrpc_event e;
		uint64_t m[8];
	} u;
	struct shmrpc_node *n;
	int err, len;

	err = shmrpc_open(name, o, &n);
	if (err)
		return bench_gfail(g->c, 0, err, "%s: open: %s", name, strerror(-err));
	atomic_store_explicit(&g->c->word[1], 1, memory_order_release); /* up */
	/* Acquire: pairs with the killer's release of the stop word. A
	 * victim that died meanwhile makes the answer fail (-EPIPE): that is
	 * expected. */
	while (!atomic_load_explicit(&g->c->word[0], memory_order_acquire)) {
		len = shmrpc_recv(n, &u, sizeof(u), from, 200);
		if (len == -ETIMEDOUT || len == -EAGAIN)
			continue;
		if (len < 0) {
			err = len;
			if (err_stops)
				break;
		} else if (event && !strcmp(from, SHMRPC_EVENT_FROM)) {
			event(g, &u, len);
		} else {
			shmrpc_send(n, from, &u, (size_t)len, 100); /* a hello */
		}
	}
	shmrpc_close(n);
	return err ? bench_gfail(g->c, 0, err, "%s: recv: %s", name, strerror(-err)) : 0;
}

static _Noreturn void victim(const char *domain, const char *to, int i, _Atomic uint64_t *ready)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain };
	struct shmrpc_node *n;
	uint64_t m[8] = { (uint64_t)i };
	char name[16];

	snprintf(name, sizeof(name), "v%d", i);
	if (shmrpc_open(name, &o, &n) || shmrpc_send(n, to, m, sizeof(m), 5000) ||
	    shmrpc_recv(n, m, sizeof(m), NULL, 5000) != (int)sizeof(m))
		_exit(1);
	/* Release: pairs with bench_victim_start's acquire load. */
	atomic_store_explicit(ready, (uint64_t)i + 1, memory_order_release);
	for (;;)
		pause(); /* until SIGKILL */
}

/* bench_victim_start - fork victim @i of @domain and wait until it is
 * connected to the receiver @to (word[2]): its pid, or -errno (-ETIMEDOUT:
 * it died or took over VICTIM_WAIT_NS). */
pid_t bench_victim_start(struct bench_group *g, const char *domain, const char *to, int i)
{
	_Atomic uint64_t *ready = &g->c->word[2];
	int64_t give_up;
	pid_t pid;
	int st;

	pid = bench_fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		victim(domain, to, i, ready);
	give_up = bench_now_ns() + VICTIM_WAIT_NS;
	/* Acquire: pairs with the victim's release store once it is ready. */
	while (atomic_load_explicit(ready, memory_order_acquire) != (uint64_t)i + 1) {
		if (bench_now_ns() > give_up || waitpid(pid, &st, WNOHANG) == pid) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -ETIMEDOUT;
		}
		usleep(50);
	}
	return pid;
}

/* bench_killer_begin - member 1, before the kills: wait until the
 * receiver is up (word[1]), open the registry of @domain into *rv and
 * start the reaper @cmd, if any (*reaper, else 0). 0, or the error
 * (recorded); either way bench_killer_end follows. */
int bench_killer_begin(struct bench_group *g, const char *domain, const char *cmd,
		       struct bench_regview **rv, pid_t *reaper)
{
	int err;

	*rv = NULL;
	*reaper = 0;
	/* Acquire: pairs with the receiver's release store once it is up. */
	while (!atomic_load_explicit(&g->c->word[1], memory_order_acquire))
		usleep(100);
	err = bench_reg_open(domain, rv);
	if (err)
		return bench_gfail(g->c, 1, err, "registry of %s: %s", domain, strerror(-err));
	if (cmd[0]) {
		err = bench_reaper_start(cmd, *rv, reaper);
		if (err)
			err = bench_gfail(g->c, 1, err,
					  "the reaper did not announce itself in the registry: %s",
					  strerror(-err));
	}
	return err;
}

/* bench_killer_end - member 1, after the kills (@err: their result): stop
 * the reaper, count the slots it freed into val[1][2] (unless @err), close
 * the registry, and stop the receiver (word[0]). @err. */
int bench_killer_end(struct bench_group *g, struct bench_regview *rv, pid_t reaper, int err)
{
	bench_reaper_stop(reaper);
	if (!err)
		g->c->val[1][2] = (int64_t)bench_reg_reaped(rv);
	bench_reg_close(rv);
	/* Release: the receiver stops; pairs with its acquire load. */
	atomic_store_explicit(&g->c->word[0], 1, memory_order_release);
	return err;
}
