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
 * Modes (who does the cleaning; reaper_run.c starts the reaper):
 *   peers         no reaper: the peer's pidfd watcher (lib/watch.c)
 *   reaper-bpf    shmrpc-reaper with the eBPF exit probe, and the peers
 *   reaper-pidfd  shmrpc-reaper watching pidfds, and the peers
 * The killer starts the reaper once the peer has created the domain and
 * stops it after the last kill. Whoever frees a slot first wins; the
 * registry's `reaped` counter tells how many the reaper freed.
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
		err = bench_reaper_start(cr->reaper, rv, &reaper);
		if (err)
			err = bench_gfail(g->c, 1, err,
					  "the reaper did not announce itself in the registry: %s",
					  strerror(-err));
	}
	if (!err)
		err = kill_all(g, cr, rv);
	bench_reaper_stop(reaper);
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

static void crash_mode(struct bench_results *rs, const struct bench_opts *o,
		       const struct bench_cfg *cfg, const struct bench_reaper_mode *m)
{
	struct crash cr = { .kills = o->kills ? o->kills : o->quick ? 10 : 50 };
	struct bench_group g = { .n = 2, .fn = crash_member, .arg = &cr, .timeout_s = 120 };
	struct bench_result *r = bench_result_new(rs, "crash", m->name, 0);
	int err, ok;

	r->nsides = 0;
	r->variant = m->name;
	bench_domain(cr.domain, sizeof(cr.domain), "crash");
	err = bench_reaper_cmd(m, cr.domain, cr.reaper, sizeof(cr.reaper), r->why, sizeof(r->why));
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
	for (size_t i = 0; i < BENCH_REAPER_MODES; i++)
		if (bench_in_list(o->transports, bench_reaper_modes[i].name))
			crash_mode(rs, o, cfg, &bench_reaper_modes[i]);
}
