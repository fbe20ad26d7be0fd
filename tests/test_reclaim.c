// SPDX-License-Identifier: MIT
/*
 * Reclaiming dead nodes (lib/reclaim.c): a lookup (lib/join.c) reclaims a
 * node killed with SIGKILL, reaped or zombie, and wakes the senders blocked
 * on it; a reclaim keeps the dead sender's older unopened rings reachable;
 * and the module's own calls on planted dead nodes: the repair of a joiner
 * that died holding the lock, reclaim and its refusals, the sweep.
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here, so a
 * bound such as "stop returns within 2 s" checks a wake, not a speed.
 *
 * White box where the public API cannot tell: the tests read file names
 * and headers in /dev/shm (lib/layout.h) to know which files belong to which
 * node, and plant broken registries there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h"
#include "proc.h"
#include "reclaim.h"
#include "registry.h"

/* ===================================================== lookup reclaim */

static void test_lookup_reclaims_killed_nodes(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	char names[4][SHMRPC_NAME_MAX + 1], id[4][32], buf[16];
	struct th_holder h[4];
	int i;

	assert_non_null(p);
	th_holder_start(&h[0], d, "k0", "p"); /* found dead by shmrpc_is_local */
	for (i = 1; i < 4; i++) {	      /* by shmrpc_nodes */
		snprintf(names[i], sizeof(names[i]), "k%d", i);
		th_holder_start(&h[i], d, names[i], NULL);
	}
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 5000), 5);
	assert_int_equal(shmrpc_send(p, "k0", "x", 1, 0), 0);
	for (i = 0; i < 4; i++) {
		snprintf(names[i], sizeof(names[i]), "k%d", i);
		assert_int_equal(th_node_id(d->name, names[i], id[i]), 0);
		th_holder_kill(&h[i]);
	}
	/* k0 had rings with p: p's watcher (lib/watch.c) reclaims it at
	 * once. k1..k3 had none: nothing has looked at them yet (no reaper
	 * runs in the tests). */
	for (i = 0; i < 5000 && th_id_files(d->name, id[0]); i++)
		usleep(1000);
	assert_int_equal(th_id_files(d->name, id[0]), 0);
	assert_int_equal(th_dom_files(d->name, ".node."), 4);

	assert_int_equal(shmrpc_is_local(p, "k0"), 0);
	/* p's connection to k0 was closed by the reclaim */
	assert_int_equal(shmrpc_send(p, "k0", "x", 1, 0), -EPIPE);

	assert_int_equal(shmrpc_nodes(p, names, 4), 1);
	assert_string_equal(names[0], "p");
	for (i = 1; i < 4; i++)
		assert_int_equal(th_id_files(d->name, id[i]), 0);
	assert_int_equal(th_shm_count(d->name), 2);
	shmrpc_close(p);
}

static void test_lookup_reclaims_each_way(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct th_holder h;
	char id[32];

	assert_non_null(p);
	/* shmrpc_send to a dead node it never talked to: -ENOENT */
	th_holder_start(&h, d, "k", NULL);
	assert_int_equal(th_node_id(d->name, "k", id), 0);
	th_holder_kill(&h);
	assert_int_equal(shmrpc_send(p, "k", "x", 1, 1000), -ENOENT);
	assert_int_equal(th_id_files(d->name, id), 0);
	/* shmrpc_wait_node does not take a dead node for a live one */
	th_holder_start(&h, d, "k", NULL);
	assert_int_equal(th_node_id(d->name, "k", id), 0);
	th_holder_kill(&h);
	assert_int_equal(shmrpc_wait_node(p, "k", 0), -EAGAIN);
	assert_int_equal(th_id_files(d->name, id), 0);
	assert_int_equal(shmrpc_wait_node(p, "k", 50), -ETIMEDOUT);
	/* shmrpc_max_size neither */
	th_holder_start(&h, d, "k", NULL);
	th_holder_kill(&h);
	assert_int_equal(shmrpc_max_size(p, "k"), -ENOENT);
	assert_int_equal(th_shm_count(d->name), 2);
	shmrpc_close(p);
}

/*
 * A sender sleeps on the full ring of a node that then dies: whoever
 * reclaims the dead node wakes it (-EPIPE), as does a graceful close. The
 * safety timeout is an hour (see main): only that wake can end the send.
 */
struct blocked {
	struct th_dom *d;
	struct th_gate full;
};

static int blocked_sender(void *arg)
{
	struct blocked *b = arg;
	struct shmrpc_node *s;
	char msg[1000] = { 0 };
	int rc, i = 0;

	CHILD_CHECK_RC(shmrpc_open("s", &b->d->opts, &s), 0);
	while ((rc = shmrpc_send(s, "k", msg, sizeof(msg), 0)) == 0)
		i++;
	CHILD_CHECK_RC(rc, -EAGAIN);
	CHILD_CHECK(i >= 2);
	th_gate_open(&b->full);
	CHILD_CHECK_RC(shmrpc_send(s, "k", msg, sizeof(msg), 30000), -EPIPE);
	shmrpc_close(s);
	return 0;
}

static void blocked_case(struct th_dom *d, bool kill_it)
{
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *p = th_open(d, "p");
	struct blocked b = { .d = d };
	struct th_env e;
	struct th_holder h;
	char id[32];
	pid_t pid;

	assert_non_null(p);
	th_watch_off(&e); /* the blocked sender must learn it from p's lookup */
	o.ring_bytes = 4096;
	th_holder_start_opts(&h, &o, "k", NULL);
	th_gate_init(&b.full);
	pid = th_fork(blocked_sender, &b);
	assert_int_equal(th_gate_wait(&b.full, 5000), 0);
	assert_int_equal(th_wait_asleep(pid, 5000), 0); /* asleep on the full ring */
	assert_int_equal(th_node_id(d->name, "k", id), 0);
	if (kill_it) {
		th_holder_kill(&h);
		assert_int_equal(shmrpc_is_local(p, "k"), 0); /* reclaims, wakes s */
	} else {
		th_holder_stop(&h);
	}
	assert_int_equal(th_wait(pid, 3000), 0);
	assert_int_equal(th_id_files(d->name, id), 0);
	th_gate_close(&b.full);
	shmrpc_close(p);
	th_env_restore(&e);
}

static void test_lookup_reclaim_wakes_blocked_sender(void **state)
{
	blocked_case(*state, true);
	blocked_case(*state, false);
}

/* SIGKILLed but not reaped: the process is gone, its liveness lock too. */
static void test_lookup_zombie_is_dead(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct th_env e;
	struct th_holder h;
	char id[32], buf[8];

	assert_non_null(p);
	th_watch_off(&e); /* only the lookup may find z dead */
	th_holder_start(&h, d, "z", "p");
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 5000), 5);
	assert_int_equal(th_node_id(d->name, "z", id), 0);
	assert_int_equal(kill(h.pid, SIGKILL), 0);
	assert_int_equal(th_wait_zombie(h.pid), 0);
	assert_int_equal(shmrpc_is_local(p, "z"), 0);
	assert_int_equal(th_id_files(d->name, id), 0);
	assert_int_equal(th_wait(h.pid, 1000), 128 + SIGKILL); /* reap it now */
	th_holder_fini(&h);
	shmrpc_close(p);
	th_env_restore(&e);
}

/*
 * The same chain, broken by a crash: a sender leaves a ring the receiver has
 * not opened yet, the next holder of its slot sends too and is SIGKILLed,
 * and its reclaim must not lose the older ring.
 *
 * KNOWN BUG, left failing on purpose (not a small fix): kill_rings()
 * (lib/reclaim.c) unlinks the dead sender's ring to each receiver, which is
 * the head of that receiver's prev_gen chain for the dead node's slot; the
 * receiver's in_gen entry still names it, so neither the receiver's scan nor
 * its close reaches the older ring: s1's message is lost and its ring file
 * stays in /dev/shm after the last node left. The reclaimer must point the
 * receiver's in_gen entry at the older ring and re-announce it (as connect.c's
 * announce() does, pairing with CLOSING) before it unlinks the dead ring.
 */
static void test_gen_reclaim_keeps_older_unopened_ring(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r");
	struct th_holder h1, h2;
	int v, rc, got = 0;

	assert_non_null(r);
	memset(&h1, 0, sizeof(h1));
	h1.o = d->opts;
	snprintf(h1.name, sizeof(h1.name), "s1");
	h1.value = 1;
	assert_int_equal(th_wait(th_fork(th_send_once_main, &h1), 10000), 0);
	memset(&h2, 0, sizeof(h2));
	h2.o = d->opts;
	snprintf(h2.name, sizeof(h2.name), "s2");
	h2.stay = true;
	h2.value = 2;
	th_gate_init(&h2.ready);
	th_gate_init(&h2.release);
	h2.pid = th_fork(th_send_once_main, &h2);
	assert_int_equal(th_gate_wait(&h2.ready, 10000), 0);
	th_holder_kill(&h2);
	assert_int_equal(shmrpc_is_local(r, "s2"), 0); /* reclaims s2 */
	while ((rc = shmrpc_recv(r, &v, sizeof(v), NULL, 0)) == sizeof(v))
		got |= 1 << v;
	assert_int_equal(rc, -EAGAIN);
	/* s1 left in good order: its message must arrive (s2's may or may
	 * not: it died) */
	assert_true(got & 2);
	shmrpc_close(r);
	assert_int_equal(th_shm_count(d->name), 0);
}

/* ================================================ the module's own calls */

/* Node @name's slot and generation, from the registry (no lookup: that
 * would reclaim a dead node itself). */
static void slot_of(struct shmrpc_node *n, const char *name, uint32_t *slot, uint32_t *gen)
{
	struct shmrpc__slot_view v;

	assert_int_equal(shmrpc__reg_find(n->reg, name, slot, &v), 0);
	*gen = v.gen;
}

static uint32_t slot_state(struct shmrpc_node *n, uint32_t slot)
{
	struct shmrpc__slot_view v;

	while (shmrpc__reg_read(n->reg, slot, &v) == -EAGAIN)
		;
	return v.state;
}

/*
 * A dead node planted for shmrpc__reclaim: v joined, had rings both ways
 * with p, and was SIGKILLed; no watcher, no lookup, no join after it. Under
 * the lock, reclaim frees its slot and removes its node file and both
 * rings; p's ring from v is closed (p drops it at its next look) and p's
 * ring to v is closed (p's next send says -EPIPE). A second reclaim of the
 * same (slot, gen) finds nothing to do.
 */
static void test_reclaim_planted_dead_node(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p;
	struct th_holder v;
	struct th_env e;
	char id[32], buf[16];
	uint32_t vs, vg;

	th_watch_off(&e);
	p = th_open(d, "p");
	assert_non_null(p);
	th_holder_start(&v, d, "v", "p");				   /* v -> p: "hello" */
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), 5); /* opened */
	assert_int_equal(shmrpc_send(p, "v", "hi", 2, 1000), 0);	   /* p -> v */
	assert_int_equal(th_node_id(d->name, "v", id), 0);
	assert_int_equal(th_id_files(d->name, id), 3); /* its node, both rings */
	slot_of(p, "v", &vs, &vg);
	th_holder_kill(&v);
	assert_int_equal(th_id_files(d->name, id), 3); /* nobody reclaimed it */

	assert_int_equal(shmrpc__dom_lock(p->reg), 0);
	assert_int_equal(shmrpc__reclaim(p->reg, vs, vg), 1);
	assert_int_equal(shmrpc__reclaim(p->reg, vs, vg), 0);
	shmrpc__reg_unlock(p->reg);
	assert_int_equal(slot_state(p, vs), SHMRPC__SLOT_FREE);
	/* The ring v -> p is unlinked, mapped by p until its next look. */
	assert_int_equal(th_stats(p).rings_in, 1);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_send(p, "v", "hi", 2, 0), -EPIPE);
	assert_int_equal(th_id_files(d->name, id), 0);
	assert_int_equal(th_stats(p).rings_in, 0);
	shmrpc_close(p);
	th_env_restore(&e);
}

/*
 * What reclaim refuses: a live node (its lock is held, whatever its slot
 * says), a generation the slot no longer holds, a FREE slot.
 */
static void test_reclaim_refuses_live_and_stale(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct th_holder v;
	uint32_t vs, vg;

	assert_non_null(p);
	th_holder_start(&v, d, "v", NULL);
	slot_of(p, "v", &vs, &vg);
	assert_int_equal(shmrpc__dom_lock(p->reg), 0);
	assert_int_equal(shmrpc__reclaim(p->reg, vs, vg), 0);	  /* alive */
	assert_int_equal(shmrpc__reclaim(p->reg, vs, vg + 1), 0); /* not its gen */
	assert_int_equal(shmrpc__reclaim(p->reg, vs + 1, 1), 0);  /* FREE */
	shmrpc__reg_unlock(p->reg);
	assert_int_equal(slot_state(p, vs), SHMRPC__SLOT_LIVE);
	assert_int_equal(shmrpc_is_local(p, "v"), 1);
	th_holder_stop(&v);
	shmrpc_close(p);
}

/*
 * A joiner that died holding the lock left its slot JOINING and its note in
 * the registry (planted here by hand: take a slot, note it, let go of the
 * lock without finishing). registry.c hands the note to the next taker of
 * the lock and repairs nothing; shmrpc__dom_lock (reclaim.c) repairs it:
 * the slot is FREE again and the note gone.
 */
static void test_reclaim_dom_lock_repairs_dead_joiner(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct shmrpc__join j = { "ghost", { 0 }, 4096, SHMRPC__BACKEND_FUTEX, 0 };
	uint32_t note, gen;
	int slot;

	assert_non_null(p);
	assert_int_equal(shmrpc__proc_self(&j.proc), 0);
	assert_int_equal(shmrpc__reg_lock(p->reg, &note), 0);
	assert_int_equal(note, 0);
	slot = shmrpc__reg_take(p->reg, &j, &gen);
	assert_true(slot >= 0);
	shmrpc__reg_joining(p->reg, (uint32_t)slot + 1);
	shmrpc__reg_unlock(p->reg); /* "died": the note stays */

	assert_int_equal(shmrpc__reg_lock(p->reg, &note), 0);
	assert_int_equal(note, (uint32_t)slot + 1); /* handed over, not repaired */
	assert_int_equal(slot_state(p, (uint32_t)slot), SHMRPC__SLOT_JOINING);
	shmrpc__reg_unlock(p->reg);

	assert_int_equal(shmrpc__dom_lock(p->reg), 0);
	assert_int_equal(slot_state(p, (uint32_t)slot), SHMRPC__SLOT_FREE);
	assert_int_equal(atomic_load(&p->reg->hdr->joining), 0);
	assert_int_equal(atomic_load(&p->reg->hdr->live), 1); /* p */
	shmrpc__reg_unlock(p->reg);
	shmrpc_close(p);
}

/*
 * The sweep: under the lock, every slot whose node is gone, and only those,
 * in one call; how many it freed.
 */
static void test_reclaim_sweep_frees_the_dead_only(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p;
	struct th_holder k1, k2, live;
	struct th_env e;

	th_watch_off(&e);
	p = th_open(d, "p");
	assert_non_null(p);
	th_holder_start(&k1, d, "k1", NULL);
	th_holder_start(&k2, d, "k2", NULL);
	th_holder_start(&live, d, "live", NULL);
	th_holder_kill(&k1);
	th_holder_kill(&k2);
	assert_int_equal(th_dom_files(d->name, ".node."), 4);
	assert_int_equal(shmrpc__dom_lock(p->reg), 0);
	assert_int_equal(shmrpc__reclaim_sweep(p->reg, UINT32_MAX), 2);
	assert_int_equal(shmrpc__reclaim_sweep(p->reg, UINT32_MAX), 0);
	assert_int_equal(shmrpc__reg_recount(p->reg), 2); /* p, live */
	shmrpc__reg_unlock(p->reg);
	assert_int_equal(th_dom_files(d->name, ".node."), 2);
	assert_int_equal(shmrpc_is_local(p, "live"), 1);
	th_holder_stop(&live);
	shmrpc_close(p);
	th_env_restore(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_lookup_reclaims_killed_nodes),
		T(test_lookup_reclaims_each_way),
		T(test_lookup_reclaim_wakes_blocked_sender),
		T(test_lookup_zombie_is_dead),
		T(test_gen_reclaim_keeps_older_unopened_ring),
		T(test_reclaim_planted_dead_node),
		T(test_reclaim_refuses_live_and_stale),
		T(test_reclaim_dom_lock_repairs_dead_joiner),
		T(test_reclaim_sweep_frees_the_dead_only),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
