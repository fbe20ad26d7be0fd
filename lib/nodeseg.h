/* SPDX-License-Identifier: MIT */
/*
 * Another node's segment, seen from outside (nodeseg.c): is its node alive,
 * and a checked mapping of it; and where its tables are (from the layout,
 * never from its header: any peer can write that).
 */
#ifndef SHMRPC_NODESEG_H
#define SHMRPC_NODESEG_H

#include <stdatomic.h>
#include <stdint.h>

#include "layout.h"
#include "regfile.h"

/*
 * Liveness of the node in slot @slot, gen @gen: 1 alive, 0 gone (process
 * dead, segment missing or never completed), -errno when it cannot be told.
 */
int shmrpc__node_alive(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/* Map node (slot, gen)'s segment read-write at exactly its size and check
 * the header fields we index by (magic, ids, capacity, table offsets):
 * 0, -ENOENT, -EPROTO (wrong size or fields), -errno. @fd_out, if not
 * NULL, gets the descriptor (the caller closes it). */
int shmrpc__node_map(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen,
		     struct shmrpc__node_hdr **out, uint64_t *size, int *fd_out);

/*
 * Is a node of @r's domain alive, whatever its slots say (any member can
 * write a slot FREE)? Checks the lock of every node file of the domain
 * in /dev/shm, at most @max of them: 1 if one is locked, or there are more,
 * or /dev/shm cannot be read (cannot tell: keep the registry); 0 if none.
 * *looked (may be NULL) gets how many directory entries were read. Before
 * retiring a registry whose count says no node is left.
 */
int shmrpc__reg_any_locked(const struct shmrpc__reg *r, uint32_t max, uint32_t *looked);

/* The pend bitmap of node segment @h, at offset @off (shmrpc__node_pend_off). */
static inline _Atomic uint64_t *shmrpc__node_pend(struct shmrpc__node_hdr *h, uint32_t off)
{
	return (_Atomic uint64_t *)((uint8_t *)h + off);
}

/* Its in_gen or out_gen table, at offset @off (shmrpc__node_in_off/out_off). */
static inline _Atomic uint32_t *shmrpc__node_tab(struct shmrpc__node_hdr *h, uint32_t off)
{
	return (_Atomic uint32_t *)((uint8_t *)h + off);
}

#endif /* SHMRPC_NODESEG_H */
