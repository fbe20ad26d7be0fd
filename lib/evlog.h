/* SPDX-License-Identifier: MIT */
/*
 * The registry's event log (evlog.c): appending a membership event under
 * the registry lock, reading one without it.
 */
#ifndef SHMRPC_EVLOG_H
#define SHMRPC_EVLOG_H

#include <stdint.h>

#include "regfile.h"
#include "shmrpc.h"

/* Under the registry lock: append an event of @type (SHMRPC_EV_*) about
 * node (@slot, @gen), its pid and name read from the slot, and publish it
 * (ev_head). The caller bumps the epoch afterwards, which wakes readers. */
void shmrpc__evlog_append(struct shmrpc__reg *r, uint32_t type, uint32_t slot, uint32_t gen);
/* Events appended so far (acquire): every entry below it is complete, or
 * was overwritten by a newer one. Untrusted: any member can write it. */
uint64_t shmrpc__evlog_head(const struct shmrpc__reg *r);
/*
 * Copy entry @idx into @ev (dropped set to 0) and its time into *ns: 0,
 * -ESTALE (the entry holds another event: @idx was overwritten, or never
 * written), -EPROTO (garbage: a type, id or name no writer of ours makes).
 */
int shmrpc__evlog_read(const struct shmrpc__reg *r, uint64_t idx, struct shmrpc_event *ev,
		       uint64_t *ns);

#endif /* SHMRPC_EVLOG_H */
