/* SPDX-License-Identifier: MIT */
/*
 * Reclaiming a dead node (reclaim.c): its slot, its segment, every ring it
 * had; the registry lock with the repair of a joiner that died holding it.
 */
#ifndef SHMRPC_RECLAIM_H
#define SHMRPC_RECLAIM_H

#include <stdbool.h>
#include <stdint.h>

#include "regfile.h"

/*
 * Under the registry lock: free slot @slot if it still holds generation
 * @gen (a DEATH event in the log), after closing and unlinking every ring
 * of that node (peers blocked on them wake with -EPIPE) and its node
 * segment; a ring it had announced to a live receiver that takes events
 * stays, closed, for that receiver to drain and unlink. Returns 1 if it
 * freed the slot, 0 if the slot had changed meanwhile or its node is alive,
 * -errno if its liveness could not be told or a file of it could not be
 * opened for want of descriptors or memory (-EMFILE, -ENFILE, -ENOMEM):
 * then the slot, its node file and the rings not reached are left as they
 * are, for a later try (rings reached are closed already).
 */
int shmrpc__reclaim(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/*
 * The same without the liveness check, for a caller that knows the node's
 * process has exited though its lock may still be held: shmrpc-reaper, on an
 * exit event of the eBPF probe whose tgid and start time match the slot's
 * (see reclaim.c). Never on a guess: a live node would be torn down.
 */
int shmrpc__reclaim_exited(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/* Under the lock: reclaim every slot whose node is gone, and every slot
 * that is neither FREE nor LIVE (no joiner can be at work while we hold the
 * lock). Returns how many. */
int shmrpc__reclaim_sweep(struct shmrpc__reg *r, uint32_t self_slot);
/* Under the lock: is a node of @r alive, or not to be told dead? Slot by
 * slot from @from on (wrapping), each dead one met is reclaimed until the
 * first that is not: a leaver's "is anyone left?" while others live costs
 * one liveness check. false: every slot was checked and none is left. */
bool shmrpc__reclaim_any_alive(struct shmrpc__reg *r, uint32_t from);
/* shmrpc__reclaim under the lock it takes: 1, 0, or -errno (the lock, or
 * shmrpc__reclaim's). */
int shmrpc__reclaim_locked(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/* The registry lock, with the repair of a joiner that died holding it
 * (shmrpc__reg_lock's note): how every caller above the registry locks it.
 * 0 or -errno (-ETIMEDOUT for the _for form); shmrpc__reg_unlock ends it. */
int shmrpc__dom_lock(struct shmrpc__reg *r);
int shmrpc__dom_lock_for(struct shmrpc__reg *r, int64_t timeout_ns);
/* Set @flag on the ring of kind @kind (enum shmrpc__kind: its file name,
 * magic, bell and tables) from (tx) to (rx), wake both of its sleepers,
 * unlink it. Returns the ring's prev_gen link (gen + 1 of an older ring
 * from the same slot to follow), or 0. */
uint32_t shmrpc__ring_kill_k(const struct shmrpc__reg *r, int kind, uint32_t tx_slot,
			     uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen, uint32_t flag);

#endif /* SHMRPC_RECLAIM_H */
