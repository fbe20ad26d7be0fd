/* SPDX-License-Identifier: MIT */
/*
 * The registry file of a domain (regfile.c): create, open and check, close,
 * retire. struct shmrpc__reg, the process's handle on an open registry.
 */
#ifndef SHMRPC_REGFILE_H
#define SHMRPC_REGFILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "layout.h"
#include "names.h"
#include "shmrpc.h"

/*
 * An open registry. regfile.c fills it at open (everything but the cache
 * fields) and never changes it after; registry.c's cache owns cache_next,
 * refs and cached, under its lock.
 */
struct shmrpc__reg {
	struct shmrpc__reg_hdr *hdr;
	struct shmrpc__slot *slots;
	struct shmrpc__ev_entry *evlog; /* [SHMRPC__EV_LOG], after the slots */
	int fd;				/* holds the OFD join/leave lock */
	/* the OFD lock is per open file: threads of this process queue here */
	pthread_mutex_t local;
	uint64_t size;
	uint32_t capacity;
	uint32_t nonce;
	uint32_t mode;
	/* copied at open: a member rewriting the header's key later cannot
	 * change the names this process uses */
	uint8_t key[SHMRPC__KEY_BYTES];
	char domain[SHMRPC_NAME_MAX + 1];
	/* the process's cache of open registries (shmrpc__reg_get), under
	 * its lock: refs counts the holders, and the cache while cached */
	struct shmrpc__reg *cache_next;
	uint32_t refs;
	bool cached;
};

/* The names of node (slot, gen) and of ring (tx) -> (rx) of open registry
 * @r, and the ids of /dev/shm entry @ent of its domain (names.h). */
static inline void shmrpc__node_path(char *buf, const struct shmrpc__reg *r, uint32_t slot,
				     uint32_t gen)
{
	shmrpc__node_path_key(buf, r->domain, r->key, slot, gen);
}

static inline void shmrpc__ring_path(char *buf, const struct shmrpc__reg *r, uint32_t tx_slot,
				     uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen)
{
	shmrpc__ring_path_key(buf, r->domain, r->key, tx_slot, tx_gen, rx_slot, rx_gen);
}

/* The name of the ring of kind @kind (enum shmrpc__kind) from (tx) to (rx). */
static inline void shmrpc__ring_path_k(char *buf, const struct shmrpc__reg *r, int kind,
				       uint32_t tx_slot, uint32_t tx_gen, uint32_t rx_slot,
				       uint32_t rx_gen)
{
	if (kind == SHMRPC__KIND_REP)
		shmrpc__repl_path_key(buf, r->domain, r->key, tx_slot, tx_gen, rx_slot, rx_gen);
	else
		shmrpc__ring_path_key(buf, r->domain, r->key, tx_slot, tx_gen, rx_slot, rx_gen);
}

static inline int shmrpc__file_ids(const struct shmrpc__reg *r, const char *ent, uint32_t ids[4])
{
	return shmrpc__file_ids_key(r->domain, r->key, r->nonce, r->mode, ent, ids);
}

/* Open registry @domain (or, with @create, create it), waiting for a
 * creator to publish it and removing what a dead creator left: 0, -ENOENT,
 * -EPROTO (not a registry of this version), -ENOSPC, -errno. */
int shmrpc__reg_open(struct shmrpc__reg *r, const char *domain, uint32_t capacity, uint32_t mode,
		     bool create);
/* Open registry @domain once, without waiting or repairing anything: 0,
 * -ENOENT, -EAGAIN (not published yet), -errno. For shmrpc-reaper. */
int shmrpc__reg_open_nowait(struct shmrpc__reg *r, const char *domain, uint32_t mode);
/* Unmap and close @r (nothing if it is not open). */
void shmrpc__reg_close(struct shmrpc__reg *r);
/* Under the lock: mark the registry closed and unlink its name, if the
 * name still names this registry's file. */
void shmrpc__reg_retire(struct shmrpc__reg *r);
/* Was @r retired? Its `closed` is believed only if the registry's name no
 * longer names @r's file; with @locked (the lock held), a lie is logged
 * and cleared. */
bool shmrpc__reg_retired(struct shmrpc__reg *r, bool locked);

#endif /* SHMRPC_REGFILE_H */
