// SPDX-License-Identifier: MIT
/*
 * The tools' view of a domain (lib/inspect.h), as shmrpc-top, shmrpc-reaper
 * and the bench use it: open a registry and read its slots, tell a domain's
 * files by their headers, ask whether a node is alive, and, as the reaper,
 * lock the registry, reclaim the dead, sweep and retire an empty registry.
 *
 * Real nodes, in this process and in children killed with SIGKILL; the
 * peers' watchers are off where a test needs the dead left to it.
 */
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "inspect.h"

static void find(const struct shmrpc_insp_reg *r, const char *name, uint32_t *slot,
		 struct shmrpc_insp_slot *v)
{
	assert_int_equal(shmrpc_insp_reg_find(r, name, slot, v), 0);
	assert_string_equal(v->name, name);
	assert_int_equal(v->state, SHMRPC__SLOT_LIVE);
}

/* ============================================================ registry */

/*
 * Open, once (as the reaper) and waiting (as killtime), read every slot in
 * the file's data extents, find by name; a view filled by hand with the
 * slots alone (as shmrpc-top, which maps the file itself) reads the same.
 */
static void test_inspect_registry_read(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p"), *q = th_open(d, "q");
	struct shmrpc_insp_reg r, w, top = { 0 };
	struct shmrpc_insp_scan sc = { 0, 0 };
	struct shmrpc_insp_slot v, tv;
	uint32_t i, slot, live = 0;

	assert_non_null(p);
	assert_non_null(q);
	assert_int_equal(shmrpc_insp_reg_open(&r, "no-such-domain-here", 0600, false), -ENOENT);
	assert_int_equal(shmrpc_insp_reg_open(&r, d->name, 0600, false), 0);
	assert_int_equal(shmrpc_insp_reg_open(&w, d->name, 0600, true), 0);
	assert_string_equal(r.domain, d->name);
	assert_int_equal(r.capacity, w.capacity);
	assert_int_equal(r.nonce, w.nonce);
	assert_memory_equal(r.key, w.key, sizeof(r.key));
	assert_false(shmrpc_insp_reg_retired(&r));
	for (i = shmrpc_insp_scan_next(&r, &sc, 0); i < r.capacity;
	     i = shmrpc_insp_scan_next(&r, &sc, i + 1)) {
		while (shmrpc_insp_reg_read(&r, i, &v) == -EAGAIN)
			;
		live += v.state == SHMRPC__SLOT_LIVE;
	}
	assert_int_equal(live, 2);
	find(&r, "q", &slot, &v);
	assert_int_equal(v.pid, getpid());
	assert_int_equal(shmrpc_insp_reg_find(&r, "nobody", &slot, &v), -ENOENT);
	top.slots = r.slots;
	top.capacity = r.capacity;
	find(&r, "p", &slot, &v);
	assert_int_equal(shmrpc_insp_reg_read(&top, slot, &tv), 0);
	assert_string_equal(tv.name, "p");
	assert_int_equal(tv.gen, v.gen);
	shmrpc_insp_reg_close(&w);
	shmrpc_insp_reg_close(&r);
	shmrpc_insp_reg_close(&r); /* twice: nothing */
	shmrpc_close(q);
	shmrpc_close(p);
}

/* A node joining bumps the epoch: a wait on the old value ends. */
static void test_inspect_epoch_wait(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct shmrpc_insp_reg r;
	struct th_holder h;
	uint32_t seen;

	assert_non_null(p);
	assert_int_equal(shmrpc_insp_reg_open(&r, d->name, 0600, false), 0);
	seen = atomic_load(&r.hdr->epoch);
	assert_int_equal(shmrpc_insp_epoch_wait(&r, seen, th_mono_ns() + 20 * 1000000ll),
			 -ETIMEDOUT);
	th_holder_start(&h, d, "h", NULL);
	assert_int_equal(shmrpc_insp_epoch_wait(&r, seen, th_mono_ns() + 5000 * 1000000ll), 0);
	assert_int_not_equal(atomic_load(&r.hdr->epoch), seen);
	th_holder_stop(&h);
	shmrpc_insp_reg_close(&r);
	shmrpc_close(p);
}

/* ============================================================ files */

struct files {
	const struct shmrpc_insp_reg *r;
	int nodes, rings, other;
	uint32_t ring_ids[4];
};

static void file_one(const char *ent, void *arg)
{
	struct files *f = arg;
	char want[SHMRPC__PATH_MAX];
	uint32_t ids[4];
	int k;

	if (!th_of_dom(ent, f->r->domain))
		return;
	k = shmrpc_insp_file_ids(f->r, ent, ids);
	if (k == 1) {
		shmrpc_insp_node_path(want, f->r->domain, f->r->key, ids[0], ids[1]);
		assert_string_equal(want + 1, ent);
		f->nodes++;
	} else if (k == 2) {
		shmrpc_insp_ring_path(want, f->r->domain, f->r->key, ids[0], ids[1], ids[2],
				      ids[3]);
		assert_string_equal(want + 1, ent);
		memcpy(f->ring_ids, ids, sizeof(ids));
		f->rings++;
	} else {
		assert_int_equal(k, 0);
		f->other++;
	}
}

/*
 * Every file of the domain known by its header and its name: two node
 * files, one ring (p -> q) with both ids, the registry; a live node's file
 * opens checked and its lock is held.
 */
static void test_inspect_files_and_liveness(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p"), *q = th_open(d, "q");
	struct shmrpc_insp_reg r;
	struct shmrpc_insp_slot pv, qv;
	struct files f = { 0 };
	char path[SHMRPC__PATH_MAX];
	uint32_t ps, qs;
	struct stat st;
	int fd;

	assert_non_null(p);
	assert_non_null(q);
	assert_int_equal(shmrpc_send(p, "q", "x", 1, 1000), 0);
	assert_int_equal(shmrpc_insp_reg_open(&r, d->name, 0600, false), 0);
	find(&r, "p", &ps, &pv);
	find(&r, "q", &qs, &qv);
	f.r = &r;
	th_shm_walk("shmrpc.", file_one, &f);
	assert_int_equal(f.nodes, 2);
	assert_int_equal(f.rings, 1);
	assert_int_equal(f.other, 1); /* the registry */
	assert_int_equal(f.ring_ids[0], ps);
	assert_int_equal(f.ring_ids[1], pv.gen);
	assert_int_equal(f.ring_ids[2], qs);
	assert_int_equal(f.ring_ids[3], qv.gen);

	shmrpc_insp_node_path(path, r.domain, r.key, qs, qv.gen);
	fd = shmrpc_insp_file_open(&r, path, &st);
	assert_true(fd >= 0);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(shmrpc_insp_locked(fd), 1);
	close(fd);
	assert_int_equal(shmrpc_insp_node_alive(&r, qs, qv.gen), 1);
	assert_int_equal(shmrpc_insp_node_alive(&r, qs, qv.gen + 1), 0); /* no such file */
	shmrpc_insp_node_path(path, r.domain, r.key, qs, qv.gen + 1);
	assert_int_equal(shmrpc_insp_file_open(&r, path, NULL), -ENOENT);
	shmrpc_insp_reg_close(&r);
	shmrpc_close(p);
	shmrpc_close(q);
}

/* ============================================================ the reaper */

/*
 * What the reaper does to a domain whose nodes all died: each is found dead
 * (its lock released); under the registry lock one is reclaimed by name,
 * the other by the sweep; nothing is in use, and the registry is retired:
 * nothing of the domain is left in /dev/shm.
 */
static void test_inspect_reaper_cycle(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_insp_reg r;
	struct shmrpc_insp_slot av, bv;
	struct th_holder a, b;
	struct th_env e;
	uint32_t as, bs;

	th_watch_off(&e);
	th_holder_start(&a, d, "a", NULL);
	th_holder_start(&b, d, "b", "a");
	assert_int_equal(shmrpc_insp_reg_open(&r, d->name, 0600, false), 0);
	find(&r, "a", &as, &av);
	find(&r, "b", &bs, &bv);
	assert_int_equal(shmrpc_insp_node_alive(&r, as, av.gen), 1);
	assert_int_equal(shmrpc_insp_any_locked(&r, 100, NULL), 1);
	th_holder_kill(&a);
	th_holder_kill(&b);
	assert_int_equal(shmrpc_insp_node_alive(&r, as, av.gen), 0);
	assert_int_equal(shmrpc_insp_node_alive(&r, bs, bv.gen), 0);
	assert_int_equal(shmrpc_insp_any_locked(&r, 100, NULL), 0);
	assert_int_equal(th_shm_count(d->name), 4); /* reg, two nodes, b -> a */

	assert_int_equal(shmrpc_insp_lock(&r, 0), 0);
	assert_int_equal(shmrpc_insp_reclaim(&r, as, av.gen), 1);
	assert_int_equal(shmrpc_insp_reclaim(&r, as, av.gen), 0);
	assert_int_equal(shmrpc_insp_sweep(&r), 1);
	assert_int_equal(shmrpc_insp_recount(&r), 0);
	shmrpc_insp_retire(&r);
	shmrpc_insp_unlock(&r);
	assert_true(shmrpc_insp_reg_retired(&r));
	assert_int_equal(th_shm_count(d->name), 0);
	shmrpc_insp_reg_close(&r);
	th_env_restore(&e);
}

/* A child that holds the registry lock of @d until released. */
struct locker {
	const struct th_dom *d;
	struct th_gate locked, release;
};

static int locker_main(void *arg)
{
	struct locker *l = arg;
	struct shmrpc_insp_reg r;

	CHILD_CHECK_RC(shmrpc_insp_reg_open(&r, l->d->name, 0600, false), 0);
	CHILD_CHECK_RC(shmrpc_insp_lock(&r, -1), 0);
	th_gate_open(&l->locked);
	CHILD_CHECK(th_gate_wait(&l->release, 30000) == 0);
	shmrpc_insp_unlock(&r);
	shmrpc_insp_reg_close(&r);
	return 0;
}

/*
 * The lock held by somebody else (the registry's owner can hold it for
 * ever): the reaper's try gives up, -ETIMEDOUT, after the time it gave.
 */
static void test_inspect_lock_gives_up(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct locker l = { .d = d };
	struct shmrpc_insp_reg r;
	double t0;
	pid_t pid;

	assert_non_null(p);
	th_gate_init(&l.locked);
	th_gate_init(&l.release);
	pid = th_fork(locker_main, &l);
	assert_int_equal(th_gate_wait(&l.locked, 10000), 0);
	assert_int_equal(shmrpc_insp_reg_open(&r, d->name, 0600, false), 0);
	assert_int_equal(shmrpc_insp_lock(&r, 0), -ETIMEDOUT);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_insp_lock(&r, 50 * 1000000ll), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 50);
	th_gate_open(&l.release);
	assert_int_equal(th_wait(pid, 10000), 0);
	assert_int_equal(shmrpc_insp_lock(&r, 1000 * 1000000ll), 0);
	shmrpc_insp_unlock(&r);
	shmrpc_insp_reg_close(&r);
	th_gate_close(&l.locked);
	th_gate_close(&l.release);
	shmrpc_close(p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_inspect_registry_read),	    T(test_inspect_epoch_wait),
		T(test_inspect_files_and_liveness), T(test_inspect_reaper_cycle),
		T(test_inspect_lock_gives_up),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
