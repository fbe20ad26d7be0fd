/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared between the library's files (shmrpc__*). Nothing here
 * is exported from the shared library; tools link the static library.
 */
#ifndef SHMRPC_INTERNAL_H
#define SHMRPC_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "shmrpc.h"
#include "layout.h"

/* "/shmrpc." + domain + ".xxxxxxxx.ring.65535.4294967295-65535.4294967295" */
#define SHMRPC__PATH_MAX 160

/* names.c */
int shmrpc__name_check(const char *name);
int shmrpc__name_check_field(const char *field, size_t size);
void shmrpc__reg_path(char *buf, const char *domain);
void shmrpc__node_path(char *buf, const char *domain, uint32_t nonce, uint32_t slot, uint32_t gen);
void shmrpc__ring_path(char *buf, const char *domain, uint32_t nonce, uint32_t tx_slot,
		       uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen);

#endif /* SHMRPC_INTERNAL_H */
