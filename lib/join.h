/* SPDX-License-Identifier: MIT */
/*
 * Joining and finding nodes by name (join.c): the policy above the slots.
 */
#ifndef SHMRPC_JOIN_H
#define SHMRPC_JOIN_H

#include <stdint.h>

#include "registry.h"

/* Under the lock: take a slot for @j (JOINING), after reclaiming a dead
 * holder of its name and the gone nodes a join checks (lazy reclaim); a
 * full registry is swept first. Returns the slot index; -EEXIST (the name
 * is held by a live node, or one that cannot be told dead), -ENOSPC. */
int shmrpc__join_take(struct shmrpc__reg *r, const struct shmrpc__join *j, uint32_t *gen);
/* The live node named @name (lazily reclaiming a dead one; node @self, the
 * caller's own slot, is not checked). 0 with *slot and *v, -ENOENT. */
int shmrpc__lookup(struct shmrpc__reg *r, uint32_t self, const char *name, uint32_t *slot,
		   struct shmrpc__slot_view *v);

#endif /* SHMRPC_JOIN_H */
