// SPDX-License-Identifier: MIT
/*
 * Crash cleanup delay: from kill(SIGKILL) of a node's process to its
 * registry slot freed and every file of it gone from /dev/shm.
 *
 * A peer node "peer" (second CPU) answers every message it gets. A killer
 * process (first CPU) forks victims one after the other: each opens node
 * "v<i>", sends the peer a hello and waits for the answer (so there are
 * rings both ways and the peer watches the victim's pidfd, as any node
 * watches the peers it talks to), then waits to be killed. The killer
 * finds the victim's slot in the registry (mapped read-only: looking has
 * no side effect, unlike a lookup, which reclaims), kills it, and spins on
 * the slot until it is freed, then scans /dev/shm until no file of the
 * victim's node id is left. Delays: kill -> slot freed, kill -> files gone.
 * The killer shares the victim's CPU, so it spins as SCHED_IDLE: the dying
 * victim (its exit runs on that CPU, in its own context) always goes
 * first; a killer spinning at normal priority held the victim's exit back
 * by a time slice (~1 ms here) and measured itself.
 *
 * Modes (who does the cleaning):
 *   peers         no reaper: the peer's pidfd watcher (lib/watch.c)
 *   reaper-bpf    shmrpc-reaper with the eBPF exit probe, and the peers
 *   reaper-pidfd  shmrpc-reaper watching pidfds, and the peers
 * A reaper mode runs only when shmrpc-reaper is built next to this program
 * (and reaper-bpf only as root). Its command is reaper_cmd in modes[] below
 * (docs/reaper.md), or $SHMRPC_BENCH_REAPER_BPF / $SHMRPC_BENCH_REAPER_PIDFD
 * ("{bin}" and "{domain}" in it are replaced by the reaper's path and the
 * run's domain). Otherwise the mode is reported as not available. The
 * killer starts it (unpinned, /bin/sh -c) once the peer has created the
 * domain, waits up to REAPER_WAIT_NS for it to announce itself in the
 * registry (reaper_pid), and stops it with SIGTERM after the last kill.
 * Whoever frees a slot first wins; the registry's `reaped` counter tells
 * how many the reaper freed.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "shmrpc.h"

#define GIVE_UP_NS 2000000000ll /* a kill not cleaned after this: counted, not waited */
#define REAPER_WAIT_NS 2000000000ll

struct mode {
	const char *name;
	const char *env;	/* overrides the command */
	const char *reaper_cmd; /* NULL: no reaper */
	bool root;		/* the mode needs root */
};

static const struct mode modes[] = {
	{ "peers", NULL, NULL, false },
	/* A private probe (--no-pin): never one a system reaper pinned. */
	{ "reaper-bpf", "SHMRPC_BENCH_REAPER_BPF", "{bin} --mode bpf --no-pin --domain {domain}",
	  true },
	{ "reaper-pidfd", "SHMRPC_BENCH_REAPER_PIDFD", "{bin} --mode pidfd --domain {domain}",
	  false },
};

struct crash {
	char domain[64];
	int kills;
	char reaper[1024]; /* the command, "{...}" replaced; empty: none */
};

static int peer_member(struct bench_group *g, struct crash *cr)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = cr->domain };
	char from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n;
	uint64_t m[8];
	int err, len;

	err = shmrpc_open("peer", &o, &n);
	if (err)
		return bench_gfail(g->c, 0, err, "peer: open: %s", strerror(-err));
	atomic_store_explicit(&g->c->word[1], 1, memory_order_release); /* peer is up */
	/* Answer everyone until the killer says stop; a victim that died
	 * meanwhile makes the answer fail (-EPIPE): that is expected. */
	while (!atomic_load_explicit(&g->c->word[0], memory_order_acquire)) {
		len = shmrpc_recv(n, m, sizeof(m), from, 200);
		if (len > 0)
			shmrpc_send(n, from, m, (size_t)len, 100);
		else if (len != -ETIMEDOUT && len != -EAGAIN)
			err = len;
	}
	shmrpc_close(n);
	return err ? bench_gfail(g->c, 0, err, "peer: recv: %s", strerror(-err)) : 0;
}

static _Noreturn void victim(struct crash *cr, int i, _Atomic uint64_t *ready)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = cr->domain };
	struct shmrpc_node *n;
	uint64_t m[8] = { (uint64_t)i };
	char name[16];

	snprintf(name, sizeof(name), "v%d", i);
	if (shmrpc_open(name, &o, &n) || shmrpc_send(n, "peer", m, sizeof(m), 5000) ||
	    shmrpc_recv(n, m, sizeof(m), NULL, 5000) != (int)sizeof(m))
		_exit(1);
	/* Release: pairs with victim_start's acquire load. */
	atomic_store_explicit(ready, (uint64_t)i + 1, memory_order_release);
	for (;;)
		pause(); /* until SIGKILL */
}

/* Fork victim @i and wait until it is connected to the peer: its pid, or
 * -errno (-ETIMEDOUT: it died or took over 20 s). */
static pid_t victim_start(struct bench_group *g, struct crash *cr, int i)
{
	_Atomic uint64_t *ready = &g->c->word[2];
	int64_t give_up;
	pid_t pid;
	int st;

	pid = bench_fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		victim(cr, i, ready);
	give_up = bench_now_ns() + 10 * GIVE_UP_NS;
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

/* One kill; delays in ns in *slot_ns and *files_ns (-1: not within 2 s). */
static int one_kill(struct bench_group *g, struct crash *cr, const struct bench_regview *rv, int i,
		    int64_t *slot_ns, int64_t *files_ns)
{
	struct sched_param idle = { 0 }, normal = { 0 };
	pid_t pid = victim_start(g, cr, i);
	int64_t t0, t;
	char name[16];
	uint32_t gen;
	int slot;

	if (pid < 0)
		return pid;
	snprintf(name, sizeof(name), "v%d", i);
	slot = bench_reg_find(rv, name, &gen);
	if (slot < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return slot;
	}
	sched_setscheduler(0, SCHED_IDLE, &idle);
	t0 = bench_now_ns();
	kill(pid, SIGKILL);
	*slot_ns = *files_ns = -1;
	do {
		t = bench_now_ns();
		if (!bench_reg_holds(rv, slot, gen)) {
			*slot_ns = t - t0;
			break;
		}
		bench_cpu_relax();
	} while (t - t0 < GIVE_UP_NS);
	while (*slot_ns >= 0 && (t = bench_now_ns()) - t0 < GIVE_UP_NS) {
		if (bench_node_files(rv, cr->domain, (uint32_t)slot, gen) == 0) {
			*files_ns = t - t0;
			break;
		}
	}
	sched_setscheduler(0, SCHED_OTHER, &normal);
	waitpid(pid, NULL, 0);
	return 0;
}

static int reaper_start(struct crash *cr, const struct bench_regview *rv, pid_t *pid);

/* The kills, samples into g->c; counts into val[1][0..1]. 0 or -errno. */
static int kill_all(struct bench_group *g, struct crash *cr, const struct bench_regview *rv)
{
	uint64_t *s = g->c->samples, *f = g->c->samples + cr->kills;
	int64_t slot_ns = -1, files_ns = -1;
	int err = 0, ok = 0, lost = 0;

	for (int i = 0; i < cr->kills && !err; i++) {
		err = one_kill(g, cr, rv, i, &slot_ns, &files_ns);
		if (err)
			break;
		if (slot_ns < 0 || files_ns < 0) {
			lost++;
			continue;
		}
		s[ok] = (uint64_t)slot_ns;
		f[ok++] = (uint64_t)files_ns;
	}
	g->c->val[1][0] = ok;
	g->c->val[1][1] = lost;
	return err ? bench_gfail(g->c, 1, err, "kill #%d: %s", ok + lost, strerror(-err)) : 0;
}

static int killer_member(struct bench_group *g, struct crash *cr)
{
	struct bench_regview *rv = NULL;
	pid_t reaper = 0;
	int err;

	/* Acquire: pairs with the peer's release store once it is up. */
	while (!atomic_load_explicit(&g->c->word[1], memory_order_acquire))
		usleep(100);
	err = bench_reg_open(cr->domain, &rv);
	if (err)
		err = bench_gfail(g->c, 1, err, "registry of %s: %s", cr->domain, strerror(-err));
	if (!err && cr->reaper[0]) {
		err = reaper_start(cr, rv, &reaper);
		if (err)
			err = bench_gfail(g->c, 1, err,
					  "the reaper did not announce itself in the registry: %s",
					  strerror(-err));
	}
	if (!err)
		err = kill_all(g, cr, rv);
	if (reaper > 0) {
		kill(reaper, SIGTERM);
		waitpid(reaper, NULL, 0);
	}
	if (!err)
		g->c->val[1][2] = (int64_t)bench_reg_reaped(rv);
	bench_reg_close(rv);
	/* Release: the peer stops; pairs with its acquire load. */
	atomic_store_explicit(&g->c->word[0], 1, memory_order_release);
	return err;
}

static int crash_member(struct bench_group *g, int idx)
{
	return idx == 0 ? peer_member(g, g->arg) : killer_member(g, g->arg);
}

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

/* The reaper command of mode @m for @cr (none for "peers"); -EOPNOTSUPP
 * with @why when the mode cannot run here. */
static int reaper_cmd(const struct mode *m, struct crash *cr, char *why, size_t len)
{
	char self[3800], bin[3900], tmp[1024];
	const char *cmd = m->env ? getenv(m->env) : NULL;
	ssize_t n;

	cr->reaper[0] = 0;
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
	cmd = cmd && *cmd ? cmd : m->reaper_cmd;
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
	subst(cr->reaper, sizeof(cr->reaper), tmp, "{domain}", cr->domain);
	return 0;
}

/* Killer: start the reaper, unpinned, and wait until the registry names it. */
static int reaper_start(struct crash *cr, const struct bench_regview *rv, pid_t *pid)
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
		execl("/bin/sh", "sh", "-c", cr->reaper, (char *)NULL);
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

static void crash_mode(struct bench_results *rs, const struct bench_opts *o,
		       const struct bench_cfg *cfg, const struct mode *m)
{
	struct crash cr = { .kills = o->kills ? o->kills : o->quick ? 10 : 50 };
	struct bench_group g = { .n = 2, .fn = crash_member, .arg = &cr, .timeout_s = 120 };
	struct bench_result *r = bench_result_new(rs, "crash", m->name, 0);
	int err, ok;

	r->nsides = 0;
	r->variant = m->name;
	bench_domain(cr.domain, sizeof(cr.domain), "crash");
	err = reaper_cmd(m, &cr, r->why, sizeof(r->why));
	if (err) {
		r->status = err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
		bench_progress(r);
		return;
	}
	g.cpu[0] = cfg->cpu[1];
	g.cpu[1] = cfg->cpu[0];
	g.c = bench_gctrl_new(2 * (uint64_t)cr.kills);
	err = g.c ? bench_group_run(&g, r->why, sizeof(r->why)) : -ENOMEM;
	if (err) {
		r->status = BENCH_FAILED;
	} else {
		ok = (int)g.c->val[1][0];
		r->n = (uint64_t)ok;
		r->has_lat = ok > 0;
		bench_lat_summarise_ns(g.c->samples, (uint64_t)ok, &r->lat);
		{
			struct bench_lat fl;

			bench_lat_summarise_ns(g.c->samples + cr.kills, (uint64_t)ok, &fl);
			bench_metric_set(r, "files_gone_median_us", fl.median);
			bench_metric_set(r, "files_gone_p99_us", fl.p99);
			bench_metric_set(r, "files_gone_max_us", fl.max);
		}
		bench_metric_set(r, "kills", cr.kills);
		bench_metric_set(r, "not_cleaned_2s", (double)g.c->val[1][1]);
		bench_metric_set(r, "reaped_by_reaper", (double)g.c->val[1][2]);
	}
	if (bench_shm_cleanup(cr.domain) > 0)
		fprintf(stderr, "shmrpc-bench: crash domain left files (removed)\n");
	bench_gctrl_free(g.c);
	bench_progress(r);
}

void bench_run_crash(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (bench_in_list(o->transports, modes[i].name))
			crash_mode(rs, o, cfg, &modes[i]);
}
