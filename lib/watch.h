/* SPDX-License-Identifier: MIT */
/*
 * The peers' watcher (watch.c): one thread per process learns of a peer's
 * death from its pidfd (or its liveness lock) and reclaims it.
 */
#ifndef SHMRPC_WATCH_H
#define SHMRPC_WATCH_H

#include <stdint.h>

#include "registry.h"

struct shmrpc_node;

/* Start the process's watcher thread, if not running (and not turned off
 * by $SHMRPC_WATCH=0): 0 or -errno. */
int shmrpc__watch_start(void);
/* A pidfd of the process in @v (opened before its liveness lock is checked,
 * which makes it trustworthy), or -1; for shmrpc__watch_peer. */
int shmrpc__watch_pidfd(const struct shmrpc_node *n, const struct shmrpc__slot_view *v);
/* Watch peer (slot, gen) for @n; @pidfd: from shmrpc__watch_pidfd, checked
 * since, or -1: opened here. Takes @pidfd in every case. 0 or -errno. */
int shmrpc__watch_peer(struct shmrpc_node *n, uint32_t slot, uint32_t gen, int pidfd);
/* From the receive path: have the watcher thread watch peer (slot, gen)
 * for @n (it reads the registry and opens the pidfd); a short lock and an
 * eventfd write here. Best effort: nothing if no watcher runs. */
void shmrpc__watch_queue(struct shmrpc_node *n, uint32_t slot, uint32_t gen);
/* Drop @n's entries and queued requests (shmrpc_close, before freeing). */
void shmrpc__watch_forget(struct shmrpc_node *n);
/* fork(): both locks around it; the child resets the table and queue. */
void shmrpc__watch_fork_prepare(void);
void shmrpc__watch_fork_parent(void);
void shmrpc__watch_fork_child(void);

#endif /* SHMRPC_WATCH_H */
