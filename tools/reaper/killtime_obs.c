// SPDX-License-Identifier: MIT
/*
 * An observer's view of a domain (killtime.h): the registry mapped by a
 * process that is not a node, to find nodes, sleep until one is gone, count
 * the files it left and read the reaper's status fields.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inspect.h"
#include "killtime.h"

struct shmrpc_kt_obs {
	struct shmrpc_insp_reg reg;
};

/* CLOCK_MONOTONIC, in nanoseconds. */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int shmrpc_kt_obs_open(struct shmrpc_kt_obs **out, const char *domain)
{
	struct shmrpc_kt_obs *o = calloc(1, sizeof(*o));
	int err;

	if (!o)
		return -ENOMEM;
	err = shmrpc_insp_reg_open(&o->reg, domain, 0600, true);
	if (err) {
		free(o);
		return err;
	}
	*out = o;
	return 0;
}

void shmrpc_kt_obs_close(struct shmrpc_kt_obs *o)
{
	if (!o)
		return;
	shmrpc_insp_reg_close(&o->reg);
	free(o);
}

int shmrpc_kt_obs_find(struct shmrpc_kt_obs *o, const char *name, struct shmrpc_kt_id *id)
{
	struct shmrpc_insp_slot v;
	uint32_t slot;
	int err = shmrpc_insp_reg_find(&o->reg, name, &slot, &v);

	if (err)
		return err;
	id->slot = slot;
	id->gen = v.gen;
	id->pid = v.pid;
	id->start_time = v.start_time;
	return 0;
}

int shmrpc_kt_obs_holds(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *id)
{
	struct shmrpc__slot *s = &o->reg.slots[id->slot];
	/* Acquire: pairs with the release fence of the slot's writer; a FREE
	 * state or another gen is final for this node. */
	uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);

	return st != SHMRPC__SLOT_FREE &&
	       atomic_load_explicit(&s->gen, memory_order_relaxed) == id->gen;
}

int shmrpc_kt_obs_wait_gone(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *id, int timeout_ms,
			    int64_t *at_ns)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000, now, until;
	_Atomic uint32_t *ep = &o->reg.hdr->epoch;
	uint32_t e;

	for (;;) {
		/* Acquire: pairs with reg_bump's release, after the free. */
		e = atomic_load_explicit(ep, memory_order_acquire);
		now = mono_ns();
		if (!shmrpc_kt_obs_holds(o, id)) {
			if (at_ns)
				*at_ns = now;
			return 0;
		}
		if (now >= deadline)
			return -ETIMEDOUT;
		/* Woken by the bump of the reclaim's reg_free; 100 ms safety. */
		until = now + 100 * 1000000ll;
		shmrpc_insp_epoch_wait(&o->reg, e, until < deadline ? until : deadline);
	}
}

/*
 * The ids of /dev/shm entry @ent of the observed domain, from its header
 * (names carry a keyed hash, not ids: lib/names.c). A file whose header
 * does not match its name may be one being created (sized, not yet
 * written): looked at again a few times before it counts as garbage.
 * 1 node, 2 ring, 0 not a node or ring of the domain, -EPROTO garbage.
 */
static int file_ids(struct shmrpc_kt_obs *o, const char *ent, uint32_t ids[4])
{
	struct timespec ms = { 0, 1000000 };
	int k, tries;

	for (tries = 0;; tries++) {
		k = shmrpc_insp_file_ids(&o->reg, ent, ids);
		if (k != -EPROTO || tries == 5)
			return k == -ENOENT ? 0 : k;
		nanosleep(&ms, NULL);
	}
}

static bool is_id(uint32_t slot, uint32_t gen, const struct shmrpc_kt_id *id)
{
	return slot == id->slot && gen == id->gen;
}

int shmrpc_kt_obs_files(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *id)
{
	struct dirent *e;
	uint32_t ids[4];
	int count = 0, k;
	DIR *dir = opendir("/dev/shm");

	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		k = file_ids(o, e->d_name, ids);
		count += (k == 1 && is_id(ids[0], ids[1], id)) ||
			 (k == 2 && (is_id(ids[0], ids[1], id) || is_id(ids[2], ids[3], id)));
	}
	closedir(dir);
	return count;
}

static bool is_live(const struct shmrpc_kt_id *live, int n, unsigned slot, unsigned gen)
{
	for (int i = 0; i < n; i++)
		if (live[i].slot == slot && live[i].gen == gen)
			return true;
	return false;
}

int shmrpc_kt_obs_stale(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *live, int n)
{
	struct dirent *e;
	uint32_t ids[4];
	int stale = 0, k;
	DIR *dir = opendir("/dev/shm");

	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		k = file_ids(o, e->d_name, ids);
		if (k == 1)
			stale += !is_live(live, n, ids[0], ids[1]);
		else if (k == 2)
			stale += !is_live(live, n, ids[0], ids[1]) ||
				 !is_live(live, n, ids[2], ids[3]);
		else if (k < 0)
			stale++; /* one of our names, not what it says */
	}
	closedir(dir);
	return stale;
}

void shmrpc_kt_obs_reaper(struct shmrpc_kt_obs *o, struct shmrpc_kt_reaper *out)
{
	struct shmrpc__reg_hdr *h = o->reg.hdr;

	/* Relaxed: status words, each read alone (as shmrpc-top does). */
	out->pid = atomic_load_explicit(&h->reaper_pid, memory_order_relaxed);
	out->mode = atomic_load_explicit(&h->reaper_mode, memory_order_relaxed);
	out->beat_s = atomic_load_explicit(&h->reaper_beat, memory_order_relaxed);
	out->reaped = atomic_load_explicit(&h->reaped, memory_order_relaxed);
}

int shmrpc_kt_obs_sweep(struct shmrpc_kt_obs *o)
{
	int n = shmrpc_insp_lock(&o->reg, -1);

	if (n)
		return n;
	n = shmrpc_insp_sweep(&o->reg);
	if (!shmrpc_insp_recount(&o->reg))
		shmrpc_insp_retire(&o->reg);
	shmrpc_insp_unlock(&o->reg);
	return n;
}
