// SPDX-License-Identifier: MIT
/*
 * Event latency (issue 11): from kill(SIGKILL) of a sender to its DEATH
 * event returned by the receiver's blocked shmrpc_recv.
 *
 * A receiver node "rx" (second CPU) subscribes to SHMRPC_EV_DEATH on the
 * backend of the row and sits in shmrpc_recv. A killer process (first
 * CPU) forks victims one after the other: each opens node "v<i>", sends rx
 * a hello and waits for the answer (so rx has opened its ring and watches
 * its pidfd, as a receiver does for every sender), then waits to be killed.
 * The killer lets rx fall asleep in shmrpc_recv (SETTLE_US), stamps the
 * time, kills the victim and waits for rx to say it got the DEATH of that
 * victim (matched by name and pid); rx takes the time when shmrpc_recv
 * returns the event. Delay: kill -> DEATH returned. A victim whose DEATH
 * did not come within GIVE_UP_NS is counted, not waited for.
 *
 * rx, the victims and the killer's start and end are reaper_run.c's
 * (shared with crash.c); the kills and rx's events are this file's.
 *
 * Modes (reaper_run.c), as for the crash scenario: "peers" (no reaper:
 * rx's own watcher, lib/watch.c), "reaper-bpf" and "reaper-pidfd"
 * (shmrpc-reaper too; whoever cleans first records the DEATH). Each mode
 * on both backends: rows "<mode>" with variant "uring" / "futex".
 *
 * Shared words of the group (g->c->word): [0] stop, [1] rx is up,
 * [2] victim ready (i + 1), [3] the kill's time (ns), [4] which victim rx
 * waits for (i + 1), [5] the last victim rx saw die (i + 1).
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

#define GIVE_UP_NS 2000000000ll
#define SETTLE_US 2000 /* rx spins at most 20 us, then sleeps: asleep by then */

struct evlat {
	char domain[64];
	const char *backend;
	int kills;
	char reaper[1024]; /* the command; empty: none */
};

/* rx's events: time the DEATH of the victim the killer named. */
static void rx_event(struct bench_group *g, const void *m, int len)
{
	const struct shmrpc_event *e = m;
	char want[16];
	uint64_t w;

	/* Acquire: pairs with the killer's release of word[4] (and so of
	 * word[3], the kill's time, stored before it). */
	w = atomic_load_explicit(&g->c->word[4], memory_order_acquire);
	snprintf(want, sizeof(want), "v%llu", (unsigned long long)(w - 1));
	if (len != (int)sizeof(*e) || e->type != SHMRPC_EV_DEATH || !w || strcmp(e->name, want))
		return; /* late, or not the one waited for */
	g->c->samples[w - 1] =
		(uint64_t)(bench_now_ns() -
			   (int64_t)atomic_load_explicit(&g->c->word[3], memory_order_relaxed));
	/* Release: the sample above before the killer reads it. */
	atomic_store_explicit(&g->c->word[5], w, memory_order_release);
}

/* rx: reaper_run.c's receiver, answering hellos, its events to rx_event. */
static int rx_member(struct bench_group *g, struct evlat *ev)
{
	struct shmrpc_opts o = { .sz = sizeof(o),
				 .domain = ev->domain,
				 .backend = ev->backend,
				 .events = SHMRPC_EV_DEATH };

	return bench_receiver(g, "rx", &o, rx_event, true);
}

/* One kill: the delay in *ns (-1: no DEATH within GIVE_UP_NS). 0, -errno. */
static int one_kill(struct bench_group *g, struct evlat *ev, int i, int64_t *ns)
{
	_Atomic uint64_t *w = g->c->word;
	pid_t pid = bench_victim_start(g, ev->domain, "rx", i);
	int64_t give_up;

	if (pid < 0)
		return pid;
	usleep(SETTLE_US);
	atomic_store_explicit(&w[3], (uint64_t)bench_now_ns(), memory_order_relaxed);
	/* Release: the time above before rx reads it (its acquire of w[4]). */
	atomic_store_explicit(&w[4], (uint64_t)i + 1, memory_order_release);
	kill(pid, SIGKILL);
	*ns = -1;
	give_up = bench_now_ns() + GIVE_UP_NS;
	/* Acquire: pairs with rx's release once it has the sample. Sleeping
	 * polls: the victim's exit runs on this CPU. */
	while (bench_now_ns() < give_up) {
		if (atomic_load_explicit(&w[5], memory_order_acquire) == (uint64_t)i + 1) {
			*ns = (int64_t)g->c->samples[i];
			break;
		}
		usleep(100);
	}
	waitpid(pid, NULL, 0);
	return 0;
}

static int killer_member(struct bench_group *g, struct evlat *ev)
{
	int err, ok = 0, lost = 0;
	struct bench_regview *rv;
	pid_t reaper;
	int64_t ns = -1;

	err = bench_killer_begin(g, ev->domain, ev->reaper, &rv, &reaper);
	for (int i = 0; i < ev->kills && !err; i++) {
		err = one_kill(g, ev, i, &ns);
		if (err)
			err = bench_gfail(g->c, 1, err, "kill #%d: %s", i, strerror(-err));
		else if (ns < 0)
			lost++;
		else
			g->c->samples[ev->kills + ok++] = (uint64_t)ns;
	}
	g->c->val[1][0] = ok;
	g->c->val[1][1] = lost;
	return bench_killer_end(g, rv, reaper, err);
}

static int evlat_member(struct bench_group *g, int idx)
{
	return idx == 0 ? rx_member(g, g->arg) : killer_member(g, g->arg);
}

static void evlat_row(struct bench_results *rs, const struct bench_opts *o,
		      const struct bench_cfg *cfg, const struct bench_reaper_mode *m,
		      const char *backend)
{
	struct evlat ev = { .kills = o->kills ? o->kills : o->quick ? 5 : 30, .backend = backend };
	struct bench_group g = { .n = 2, .fn = evlat_member, .arg = &ev, .timeout_s = 120 };
	struct bench_result *r = bench_result_new(rs, "events", m->name, 0);
	int err, ok;

	r->nsides = 0;
	r->variant = backend;
	bench_domain(ev.domain, sizeof(ev.domain), "events");
	if (shmrpc_backend_available(backend) != 1) {
		r->status = BENCH_SKIPPED;
		snprintf(r->why, sizeof(r->why), "backend %s not available here", backend);
		bench_progress(r);
		return;
	}
	err = bench_reaper_cmd(m, ev.domain, ev.reaper, sizeof(ev.reaper), r->why, sizeof(r->why));
	if (err) {
		r->status = err == -EOPNOTSUPP ? BENCH_SKIPPED : BENCH_FAILED;
		bench_progress(r);
		return;
	}
	g.cpu[0] = cfg->cpu[1];
	g.cpu[1] = cfg->cpu[0];
	/* samples: [0, kills) rx's, by victim; [kills, 2 kills) the kept ones */
	g.c = bench_gctrl_new(2 * (uint64_t)ev.kills);
	err = g.c ? bench_group_run(&g, r->why, sizeof(r->why)) : -ENOMEM;
	if (err) {
		r->status = BENCH_FAILED;
	} else {
		ok = (int)g.c->val[1][0];
		r->n = (uint64_t)ok;
		r->has_lat = ok > 0;
		bench_lat_summarise_ns(g.c->samples + ev.kills, (uint64_t)ok, &r->lat);
		bench_metric_set(r, "kills", ev.kills);
		bench_metric_set(r, "no_event_2s", (double)g.c->val[1][1]);
		bench_metric_set(r, "reaped_by_reaper", (double)g.c->val[1][2]);
	}
	if (bench_shm_cleanup(ev.domain) > 0)
		fprintf(stderr, "shmrpc-bench: events domain left files (removed)\n");
	bench_gctrl_free(g.c);
	bench_progress(r);
}

/* The event-latency rows: each mode --transport allows, on both backends. */
void bench_run_events(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	static const char *const backends[] = { "uring", "futex" };

	for (size_t i = 0; i < BENCH_REAPER_MODES; i++)
		if (bench_in_list(o->transports, bench_reaper_modes[i].name))
			for (size_t b = 0; b < 2; b++)
				evlat_row(rs, o, cfg, &bench_reaper_modes[i], backends[b]);
}
