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

int shmrpc_backend_available(const char *name)
{
	SHMRPC__KEEP_ERRNO;
	const struct shmrpc__backend *be;
	int rc;

	if (!name)
		return -EINVAL;
	rc = shmrpc__backend_pick(name, &be);
	if (rc == -EOPNOTSUPP)
		return 0;
	return rc ? rc : 1;
}

const char *shmrpc_backend_default(void)
{
	const struct shmrpc__backend *be;

	return shmrpc__backend_pick(NULL, &be) ? NULL : be->name;
}
