// SPDX-License-Identifier: MIT
/*
 * Joining and finding nodes by name: the policy above the registry's slots.
 *
 * A join takes a slot under the registry lock: its name must not be held by
 * a live node (a dead holder is reclaimed on the way), and it frees the
 * slots of nodes that are gone (lazy reclaim, below) before it looks for a
 * free one; a full registry gets a full sweep before it says -ENOSPC.
 *
 * A lookup by name (a send that connects, shmrpc_is_local, wait_node,
 * max_size) that finds a node whose process is gone reclaims its slot on
 * the spot, so queries never report the dead as live.
 */
#include <errno.h>

#include "join.h"
#include "clock.h"
#include "layout.h"
#include "nodeseg.h"
#include "reclaim.h"
#include "regfile.h"
#include "registry.h"

/* Under the lock: is @name taken by a live node? Reclaims a dead holder. */
static int name_taken(struct shmrpc__reg *r, const char *name)
{
	struct shmrpc__slot_view v;
	uint32_t i;

	while (!shmrpc__reg_find(r, name, &i, &v)) {
		if (shmrpc__node_alive(r, i, v.gen) != 0)
			return -EEXIST; /* alive, or cannot tell: never steal */
		shmrpc__reclaim(r, i, v.gen);
	}
	return 0;
}

/* Other nodes' slots a join looks at (join_reclaim): all of them in a
 * domain of up to JOIN_ALL slots, else JOIN_CHECKS. */
#define JOIN_ALL 16
#define JOIN_CHECKS 2

/*
 * Lazy reclaim (brief, Cleanup 3): under the lock, a joiner frees the slot
 * and files of every node that is gone, not only a dead holder of its own
 * name, so a domain with neither a reaper nor a peer watching the dead node
 * gets them back at the next join. "Gone" is decided by the liveness lock
 * (shmrpc__node_alive), which a reused pid cannot fake and which works
 * across pid namespaces; the slot's pid and start time are informational.
 * Each check is an open and a lock query (~4 us here) under the registry
 * lock, so a join checks every slot of a small domain (up to JOIN_ALL: one
 * join surely cleans it), but only JOIN_CHECKS slots from a random start in
 * a larger one: joining a domain of thousands stays cheap, and a slot beyond
 * the budget is reached by a later join, a lookup, the peers' watchers, the
 * reaper, or the full sweep of a full registry. (No kill(pid, 0) shortcut:
 * a reused pid would look alive.)
 */
static void join_reclaim(struct shmrpc__reg *r)
{
	uint32_t hi = shmrpc__reg_hi(r), i, k, checks = 0, start, budget;

	if (!hi)
		return;
	budget = hi <= JOIN_ALL ? hi : JOIN_CHECKS;
	start = (uint32_t)((uint64_t)shmrpc__now_ns() % hi);
	for (k = 0; k < hi && checks < budget; k++) {
		struct shmrpc__slot *s;

		i = start + k < hi ? start + k : start + k - hi;
		s = &r->slots[i];
		/* Relaxed: under the lock, and shmrpc__reclaim re-reads both. */
		if (atomic_load_explicit(&s->state, memory_order_relaxed) == SHMRPC__SLOT_FREE)
			continue;
		checks++;
		shmrpc__reclaim(r, i, atomic_load_explicit(&s->gen, memory_order_relaxed));
	}
}

int shmrpc__join_take(struct shmrpc__reg *r, const struct shmrpc__join *j, uint32_t *gen)
{
	int err, i;

	err = name_taken(r, j->name);
	if (err)
		return err;
	join_reclaim(r);
	i = shmrpc__reg_take(r, j, gen);
	if (i == -ENOSPC && shmrpc__reclaim_sweep(r, UINT32_MAX) > 0)
		i = shmrpc__reg_take(r, j, gen);
	return i;
}

int shmrpc__lookup(struct shmrpc__reg *r, uint32_t self, const char *name, uint32_t *slot,
		   struct shmrpc__slot_view *v)
{
	int tries, err;

	for (tries = 0; tries < 4; tries++) {
		err = shmrpc__reg_find(r, name, slot, v);
		if (err)
			return err;
		/* Alive, or cannot be told (never steal then). */
		if (*slot == self || shmrpc__node_alive(r, *slot, v->gen) != 0)
			return 0;
		shmrpc__reclaim_locked(r, *slot, v->gen);
	}
	return -ENOENT;
}
