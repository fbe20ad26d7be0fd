// SPDX-License-Identifier: MIT
/*
 * Choosing the wake backend: the one asked for (options, else
 * $SHMRPC_BACKEND), else the best this kernel supports.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

int shmrpc__backend_pick(const char *want, const struct shmrpc__backend **out)
{
	if (!want || !strcmp(want, "futex")) {
		*out = &shmrpc__backend_futex;
		return 0;
	}
	if (!strcmp(want, "uring"))
		return -EOPNOTSUPP; /* not built yet: lib/wake_uring.c */
	return -EINVAL;
}
