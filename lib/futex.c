// SPDX-License-Identifier: MIT
/*
 * futex(2) on shared memory. Never FUTEX_PRIVATE_FLAG: these words live in
 * MAP_SHARED segments and are waited on and woken from different processes
 * (a private futex is keyed on the address space and would never match).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "futex.h"
#include "clock.h"

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
