/* SPDX-License-Identifier: MIT */
/*
 * The slots of a domain's registry (registry.c): lock-free reads, the
 * join/leave lock, taking and freeing slots, and the process's cache of
 * open registries.
 */
#ifndef SHMRPC_REGISTRY_H
#define SHMRPC_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"
#include "regfile.h"

/* A consistent copy of one slot. */
struct shmrpc__slot_view {
	uint32_t state, gen;
	int32_t pid;
	uint32_t uid, ring_bytes, backend, flags;
	uint64_t start_time, pidns, join_ns;
	char name[SHMRPC_NAME_MAX + 1];
};

/* What a joining node records about itself. */
struct shmrpc__join {
	const char *name;
	struct shmrpc__proc proc;
	uint32_t ring_bytes;
	uint32_t backend;
	uint32_t flags; /* SHMRPC__SLOT_* */
};

/*
 * The process's open registry of @domain, opened (or created) if it has
 * none or the one it has was retired: nodes of one process share one
 * mapping and one lock descriptor. Referenced; shmrpc__reg_put drops it.
 */
int shmrpc__reg_get(const char *domain, uint32_t capacity, uint32_t mode, struct shmrpc__reg **out);
void shmrpc__reg_put(struct shmrpc__reg *r);
/* fork(): the cache's lock around it; the child forgets the cache. */
void shmrpc__reg_fork_prepare(void);
void shmrpc__reg_fork_parent(void);
void shmrpc__reg_fork_child(void);
/*
 * Take the join/leave lock. *note: 0, or 1 + the slot that a joiner that
 * died holding the lock was filling, which the caller repairs before
 * anything else (reclaim.c: everyone above the registry locks with
 * shmrpc__dom_lock, which does). 0 or -errno.
 */
int shmrpc__reg_lock(struct shmrpc__reg *r, uint32_t *note);
/* The lock, giving up with -ETIMEDOUT after @timeout_ns. */
int shmrpc__reg_lock_for(struct shmrpc__reg *r, int64_t timeout_ns, uint32_t *note);
void shmrpc__reg_unlock(struct shmrpc__reg *r);
/* Under the lock: note the slot being filled (1 + slot), or 0 when done. */
void shmrpc__reg_joining(struct shmrpc__reg *r, uint32_t note);
/* Seqlock read of slot @i; -EAGAIN if it changed under us (retry), -EPROTO
 * if its name is garbage. */
int shmrpc__reg_read(const struct shmrpc__reg *r, uint32_t i, struct shmrpc__slot_view *v);
/* 1 + the highest slot ever used, bounded by the capacity (a hint: peers
 * can write it). */
uint32_t shmrpc__reg_hi(const struct shmrpc__reg *r);
/* The same on slot @s of a registry mapped by someone else (inspect.c). */
int shmrpc__slot_read(const struct shmrpc__slot *s, struct shmrpc__slot_view *v);
/* Data extents of the registry file: scans read only slots in them.
 * Start with { 0, 0 }. */
struct shmrpc__reg_scan {
	off_t data, hole;
};
/* The next slot from @i on in a data extent, or the capacity. */
uint32_t shmrpc__reg_scan_next(const struct shmrpc__reg *r, struct shmrpc__reg_scan *sc,
			       uint32_t i);
/* 1 + the last slot in a data extent (0: none). */
uint32_t shmrpc__reg_scan_end(const struct shmrpc__reg *r);
/* Find the LIVE slot named @name; -ENOENT. No liveness check. */
int shmrpc__reg_find(const struct shmrpc__reg *r, const char *name, uint32_t *slot,
		     struct shmrpc__slot_view *v);
/* Under the lock: take a free slot for @j (JOINING), *gen its new
 * generation. Returns the slot index, or -ENOSPC. (The policy of a join,
 * names and reclaims, is join.c's.) */
int shmrpc__reg_take(struct shmrpc__reg *r, const struct shmrpc__join *j, uint32_t *gen);
/* Under the lock: JOINING -> LIVE (a JOIN event in the log), or
 * JOINING/LIVE -> FREE (if @slot still holds @gen; a LIVE one leaves event
 * @ev, SHMRPC_EV_LEAVE or _DEATH, in the log; 0: none); waiters on the
 * epoch wake. */
void shmrpc__reg_publish(struct shmrpc__reg *r, uint32_t slot);
void shmrpc__reg_free(struct shmrpc__reg *r, uint32_t slot, uint32_t gen, uint32_t ev);
/* Under the lock: count the slots in use (not FREE), store the count in
 * hdr->live (a hint for readers: peers can write it) and return it. */
uint32_t shmrpc__reg_recount(struct shmrpc__reg *r);
/* Under the lock, for the joiner of JOINING slot @slot: move it to the next
 * generation (*gen updated), when the node file of *gen cannot be made. */
int shmrpc__reg_regen(struct shmrpc__reg *r, uint32_t slot, uint32_t *gen);

#endif /* SHMRPC_REGISTRY_H */
