// SPDX-License-Identifier: MIT
/*
 * Choosing the wake backend: the one asked for (options, else
 * $SHMRPC_BACKEND), else the best this kernel supports: "uring" where
 * io_uring works and has the futex operations, "futex" elsewhere. Asking
 * for "uring" where it cannot work is -EOPNOTSUPP, never a silent fallback.
 */
#include <errno.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "node_types.h"
#include "uring_compat.h"
#include "wake_futex.h"
#include "wake_uring.h"

static const struct shmrpc__backend *backend_named(const char *name)
{
	if (!strcmp(name, "uring"))
		return &shmrpc__backend_uring;
	if (!strcmp(name, "futex"))
		return &shmrpc__backend_futex;
	return NULL;
}

int shmrpc__backend_init(struct shmrpc_node *n, const char *want)
{
	int err;

	if (want) {
		n->be = backend_named(want);
		if (!n->be)
			return -EINVAL;
		err = n->be->init(n);
		if (err == -EOPNOTSUPP)
			return shmrpc__err(err,
					   "backend %s: cannot work here (io_uring missing, "
					   "disabled, filtered, or without IORING_OP_FUTEX_WAIT)",
					   want);
		return err;
	}
	/* uring needs IORING_OP_FUTEX_WAIT (6.7) and an io_uring that is not
	 * disabled (kernel.io_uring_disabled) or filtered (seccomp). */
	n->be = &shmrpc__backend_uring;
	err = n->be->init(n);
	if (err != -EOPNOTSUPP)
		return err;
	shmrpc__log(SHMRPC_LOG_INFO,
		    "backend uring unavailable (io_uring missing, disabled, filtered, or "
		    "without IORING_OP_FUTEX_WAIT): using futex");
	n->be = &shmrpc__backend_futex;
	return n->be->init(n);
}

static int backend_available_do(const char *name)
{
	SHMRPC__KEEP_ERRNO;

	if (!name || !backend_named(name))
		return -EINVAL;
	if (!strcmp(name, "uring"))
		return shmrpc__uring_futex_supported();
	return 1;
}

int shmrpc_backend_available(const char *name)
{
	return SHMRPC__RET(backend_available_do(name));
}

const char *shmrpc_backend_default(void)
{
	return shmrpc_backend_available("uring") == 1 ? "uring" : "futex";
}
