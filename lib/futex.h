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
/* Wait while *@w0 == @v0 and *@w1 == @v1 (futex_waitv(2), Linux 5.16):
 * as shmrpc__futex_wait, or -ENOSYS where the call is missing or
 * filtered (the caller then waits on one word, with a shorter timeout). */
int shmrpc__futex_wait2(_Atomic uint32_t *w0, uint32_t v0, _Atomic uint32_t *w1, uint32_t v1,
			int64_t deadline_ns);
/* Wake every waiter of @w: how many, or -errno. */
int shmrpc__futex_wake(_Atomic uint32_t *w);

#endif /* SHMRPC_FUTEX_H */
