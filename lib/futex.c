// SPDX-License-Identifier: MIT
/*
 * futex(2) on shared memory. Never FUTEX_PRIVATE_FLAG: these words live in
 * MAP_SHARED segments and are waited on and woken from different processes
 * (a private futex is keyed on the address space and would never match).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "futex.h"
#include "clock.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

/* 0 when woken (or the word already differs: -EAGAIN is folded into 0, the
 * caller re-checks either way), -ETIMEDOUT at @deadline, -EINTR. */
int shmrpc__futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	long rc;

	if (deadline != SHMRPC__NEVER) {
		shmrpc__ts_from_ns(&ts, deadline);
		tsp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout. */
	rc = syscall(SYS_futex, w, FUTEX_WAIT_BITSET, val, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
	if (rc == 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

int shmrpc__futex_wake(_Atomic uint32_t *w)
{
	long rc = syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);

	return rc < 0 ? -errno : (int)rc;
}

int shmrpc__futex_wait2(_Atomic uint32_t *w0, uint32_t v0, _Atomic uint32_t *w1, uint32_t v1,
			int64_t deadline)
{
	struct futex_waitv wv[2] = {
		/* FUTEX2_SIZE_U32, shared: never FUTEX2_PRIVATE */
		{ .val = v0, .uaddr = (uintptr_t)w0, .flags = FUTEX_32 },
		{ .val = v1, .uaddr = (uintptr_t)w1, .flags = FUTEX_32 },
	};
	struct timespec ts, *tsp = NULL;
	long rc;

	if (deadline != SHMRPC__NEVER) {
		shmrpc__ts_from_ns(&ts, deadline);
		tsp = &ts;
	}
	rc = syscall(SYS_futex_waitv, wv, 2, 0, tsp, CLOCK_MONOTONIC);
	if (rc >= 0 || errno == EAGAIN)
		return 0;
	if (errno == ENOSYS || errno == EPERM)
		return -ENOSYS;
	return -errno;
}
