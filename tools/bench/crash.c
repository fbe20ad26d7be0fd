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
 * The peer, the victims and the killer's start and end are reaper_run.c's
 * (shared with evlat.c); the kills are this file's.
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

/* The peer: reaper_run.c's receiver, answering the victims' hellos. */
static int peer_member(struct bench_group *g, struct crash *cr)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = cr->domain };

	return bench_receiver(g, "peer", &o, NULL, false);
}

/* One kill; delays in ns in *slot_ns and *files_ns (-1: not within 2 s). */
static int one_kill(struct bench_group *g, struct crash *cr, const struct bench_regview *rv, int i,
		    int64_t *slot_ns, int64_t *files_ns)
{
	struct sched_param idle = { 0 }, normal = { 0 };
	pid_t pid = bench_victim_start(g, cr->domain, "peer", i);
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
	struct bench_regview *rv;
	pid_t reaper;
	int err = bench_killer_begin(g, cr->domain, cr->reaper, &rv, &reaper);

	if (!err)
		err = kill_all(g, cr, rv);
	return bench_killer_end(g, rv, reaper, err);
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
