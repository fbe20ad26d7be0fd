/* SPDX-License-Identifier: MIT */
/*
 * Names (names.c): checks of node and domain names, and the names of a
 * domain's files in /dev/shm (lib/layout.h has the scheme).
 */
#ifndef SHMRPC_NAMES_H
#define SHMRPC_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "seg.h"

/* A node or domain name: 1 to SHMRPC_NAME_MAX of [A-Za-z0-9._-], not
 * starting with '.': 0, -EINVAL, -ENAMETOOLONG. */
int shmrpc__name_check(const char *name);
/* A name read from shared memory: NUL-terminated within its @size bytes
 * and valid, else -EPROTO (the caller treats the record as corrupt). */
int shmrpc__name_check_field(const char *field, size_t size);
/* "/shmrpc.<domain>.reg", in a buffer of SHMRPC__PATH_MAX. */
void shmrpc__reg_path(char *buf, const char *domain);
/* The names of node (slot, gen) and of the ring (tx) -> (rx) of a domain
 * whose registry holds name key @key: keyed hashes of the ids (names.c says
 * why). regfile.h has the forms that take an open registry. */
void shmrpc__node_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t slot,
			   uint32_t gen);
void shmrpc__ring_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen);
/* The name of the reply ring from server (tx) to caller (rx). */
void shmrpc__repl_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen);
/* Observers (tools, tests): the ids of /dev/shm entry @ent of the registry
 * of (@domain, @key, @nonce, @mode), read from its header and checked against
 * its name: 1 node (ids[0..1]), 2 ring (ids[0..3]), 3 reply ring (ids[0..3]),
 * 0 not a node or ring name of that domain, -EPROTO not what its name says,
 * -errno. */
int shmrpc__file_ids_key(const char *domain, const uint8_t *key, uint32_t nonce, uint32_t mode,
			 const char *ent, uint32_t ids[4]);

#endif /* SHMRPC_NAMES_H */
