// SPDX-License-Identifier: MIT
/*
 * The tools' view of a domain (inspect.h says what and why): each call is
 * the library's own, on the library's handle behind the tool's struct, with
 * the library's types turned into the header's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "clock.h"
#include "futex.h"
#include "names.h"
#include "nodeseg.h"
#include "proc.h"
#include "reclaim.h"
#include "regfile.h"
#include "registry.h"
#include "seg.h"
#include "uring_compat.h"

_Static_assert(sizeof(struct shmrpc_insp_scan) == sizeof(struct shmrpc__reg_scan),
	       "a scan is the registry's scan");

static void slot_copy(struct shmrpc_insp_slot *o, const struct shmrpc__slot_view *v)
{
	o->state = v->state;
	o->gen = v->gen;
	o->pid = v->pid;
	o->uid = v->uid;
	o->ring_bytes = v->ring_bytes;
	o->backend = v->backend;
	o->start_time = v->start_time;
	o->pidns = v->pidns;
	o->join_ns = v->join_ns;
	memcpy(o->name, v->name, sizeof(o->name));
}

/* ------------------------------------------------------------ names */

int shmrpc_insp_name_check(const char *name)
{
	return shmrpc__name_check(name);
}

int shmrpc_insp_name_check_field(const char *field, size_t size)
{
	return shmrpc__name_check_field(field, size);
}

void shmrpc_insp_node_path(char *buf, const char *domain, const uint8_t *key, uint32_t slot,
			   uint32_t gen)
{
	shmrpc__node_path_key(buf, domain, key, slot, gen);
}

void shmrpc_insp_ring_path(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen)
{
	shmrpc__ring_path_key(buf, domain, key, tx_slot, tx_gen, rx_slot, rx_gen);
}

int shmrpc_insp_file_ids(const struct shmrpc_insp_reg *r, const char *ent, uint32_t ids[4])
{
	struct shmrpc__reg k;

	/* What file_ids reads of a registry: its domain, key, nonce, mode. */
	memset(&k, 0, sizeof(k));
	memcpy(k.domain, r->domain, sizeof(k.domain));
	memcpy(k.key, r->key, sizeof(k.key));
	k.nonce = r->nonce;
	k.mode = r->mode;
	return shmrpc__file_ids(&k, ent, ids);
}

/* ------------------------------------------------------------ the registry */

int shmrpc_insp_reg_open(struct shmrpc_insp_reg *r, const char *domain, uint32_t mode, bool wait)
{
	struct shmrpc__reg *lib;
	int err;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	lib = calloc(1, sizeof(*lib));
	if (!lib)
		return -ENOMEM;
	err = wait ? shmrpc__reg_open(lib, domain, 0, mode, false) :
		     shmrpc__reg_open_nowait(lib, domain, mode);
	if (err) {
		free(lib);
		return err;
	}
	r->hdr = lib->hdr;
	r->slots = lib->slots;
	r->capacity = lib->capacity;
	r->nonce = lib->nonce;
	r->mode = lib->mode;
	memcpy(r->key, lib->key, sizeof(r->key));
	memcpy(r->domain, lib->domain, sizeof(r->domain));
	r->fd = lib->fd;
	r->lib = lib;
	return 0;
}

void shmrpc_insp_reg_close(struct shmrpc_insp_reg *r)
{
	if (!r->lib)
		return;
	shmrpc__reg_close(r->lib);
	free(r->lib);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

bool shmrpc_insp_reg_retired(const struct shmrpc_insp_reg *r)
{
	return shmrpc__reg_retired(r->lib, false);
}

int shmrpc_insp_reg_read(const struct shmrpc_insp_reg *r, uint32_t i, struct shmrpc_insp_slot *v)
{
	struct shmrpc__slot_view sv = { 0 };
	int rc = shmrpc__slot_read(&r->slots[i], &sv);

	slot_copy(v, &sv); /* as the library's: whatever was read, whatever rc */
	return rc;
}

int shmrpc_insp_reg_find(const struct shmrpc_insp_reg *r, const char *name, uint32_t *slot,
			 struct shmrpc_insp_slot *v)
{
	struct shmrpc__slot_view sv;
	int rc = shmrpc__reg_find(r->lib, name, slot, &sv);

	if (!rc)
		slot_copy(v, &sv);
	return rc;
}

uint32_t shmrpc_insp_scan_next(const struct shmrpc_insp_reg *r, struct shmrpc_insp_scan *sc,
			       uint32_t i)
{
	struct shmrpc__reg_scan s = { sc->data, sc->hole };

	i = shmrpc__reg_scan_next(r->lib, &s, i);
	sc->data = s.data;
	sc->hole = s.hole;
	return i;
}

int shmrpc_insp_epoch_wait(const struct shmrpc_insp_reg *r, uint32_t seen, int64_t deadline_ns)
{
	return shmrpc__futex_wait(&r->hdr->epoch, seen, deadline_ns);
}

int shmrpc_insp_uring_futex(void)
{
	return shmrpc__uring_futex_supported();
}

void shmrpc_insp_prep_epoch_wait(struct io_uring_sqe *sqe, const struct shmrpc_insp_reg *r,
				 uint32_t seen, uint64_t user_data)
{
	shmrpc__prep_futex_wait(sqe, &r->hdr->epoch, seen, user_data);
}

/* ------------------------------------------------------------ liveness */

int shmrpc_insp_file_open(const struct shmrpc_insp_reg *r, const char *path, struct stat *st)
{
	return shmrpc__seg_open_fd(path, O_RDONLY, r->mode, st);
}

int shmrpc_insp_locked(int fd)
{
	return shmrpc__seg_locked(fd);
}

int shmrpc_insp_node_alive(const struct shmrpc_insp_reg *r, uint32_t slot, uint32_t gen)
{
	return shmrpc__node_alive(r->lib, slot, gen);
}

int shmrpc_insp_any_locked(const struct shmrpc_insp_reg *r, uint32_t max, uint32_t *looked)
{
	return shmrpc__reg_any_locked(r->lib, max, looked);
}

int shmrpc_insp_start_time(pid_t pid, uint64_t *start)
{
	return shmrpc__proc_start_time(pid, start);
}

/* ------------------------------------------------------------ the reaper */

void shmrpc_insp_act_as(uid_t uid, gid_t gid,
			int (*unlink_other)(const char *path, const struct stat *st))
{
	struct shmrpc__seg_actor a = { true, uid, gid, unlink_other };

	shmrpc__seg_act_as(&a);
}

void shmrpc_insp_act_self(void)
{
	shmrpc__seg_act_as(NULL);
}

int shmrpc_insp_lock(struct shmrpc_insp_reg *r, int64_t timeout_ns)
{
	return timeout_ns < 0 ? shmrpc__dom_lock(r->lib) : shmrpc__dom_lock_for(r->lib, timeout_ns);
}

void shmrpc_insp_unlock(struct shmrpc_insp_reg *r)
{
	shmrpc__reg_unlock(r->lib);
}

int shmrpc_insp_reclaim(struct shmrpc_insp_reg *r, uint32_t slot, uint32_t gen)
{
	return shmrpc__reclaim(r->lib, slot, gen);
}

int shmrpc_insp_reclaim_exited(struct shmrpc_insp_reg *r, uint32_t slot, uint32_t gen)
{
	return shmrpc__reclaim_exited(r->lib, slot, gen);
}

int shmrpc_insp_sweep(struct shmrpc_insp_reg *r)
{
	return shmrpc__reclaim_sweep(r->lib, UINT32_MAX);
}

uint32_t shmrpc_insp_recount(struct shmrpc_insp_reg *r)
{
	return shmrpc__reg_recount(r->lib);
}

void shmrpc_insp_retire(struct shmrpc_insp_reg *r)
{
	shmrpc__reg_retire(r->lib);
}
