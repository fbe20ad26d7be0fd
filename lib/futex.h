/* SPDX-License-Identifier: MIT */
/*
 * futex(2) on words in shared memory (futex.c): never a private futex.
 */
#ifndef SHMRPC_FUTEX_H
#define SHMRPC_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

/* Wait while *@w == @val, until @deadline_ns (CLOCK_MONOTONIC, or
 * SHMRPC__NEVER): 0 (woken, or the word differed), -ETIMEDOUT, -EINTR. */
int shmrpc__futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t deadline_ns);
/* Wake every waiter of @w: how many, or -errno. */
int shmrpc__futex_wake(_Atomic uint32_t *w);

#endif /* SHMRPC_FUTEX_H */
