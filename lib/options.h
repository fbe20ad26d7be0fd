/* SPDX-License-Identifier: MIT */
/*
 * shmrpc_open's options (options.c): the caller's struct shmrpc_opts,
 * whatever its size, checked and completed from the environment.
 */
#ifndef SHMRPC_OPTIONS_H
#define SHMRPC_OPTIONS_H

#include <stdint.h>

#include "shmrpc.h"

/* What shmrpc_open goes by; the strings are the caller's or the
 * environment's, valid for the call. */
struct shmrpc__open_cfg {
	const char *domain;
	const char *backend;
	const char *proxy_host; /* NULL: none */
	uint32_t ring_bytes, capacity, mode, events;
	int64_t spin_ns;
	uint32_t max_calls;
	uint32_t flags; /* SHMRPC_OPEN_* */
};

/*
 * Check @o (NULL: all defaults) and fill @cfg: 0, -EINVAL (a bad field or
 * environment variable: $SHMRPC_DOMAIN, $SHMRPC_BACKEND, $SHMRPC_SPIN_US,
 * $SHMRPC_LOG), -E2BIG (a newer caller's non-zero tail). Records why.
 */
int shmrpc__opts_parse(const struct shmrpc_opts *o, struct shmrpc__open_cfg *cfg);

#endif
