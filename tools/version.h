/* SPDX-License-Identifier: MIT */
/*
 * The version every tool's --version prints: the Makefile's VERSION
 * (passed as -DSHMRPC_TOOLS_VERSION), else the header's major.minor.
 */
#ifndef SHMRPC_TOOLS_VERSION_H
#define SHMRPC_TOOLS_VERSION_H

#include "shmrpc.h"

#ifndef SHMRPC_TOOLS_VERSION
#define SHMRPC_TOOLS_STR2(x) #x
#define SHMRPC_TOOLS_STR(x) SHMRPC_TOOLS_STR2(x)
#define SHMRPC_TOOLS_VERSION \
	SHMRPC_TOOLS_STR(SHMRPC_VERSION_MAJOR) "." SHMRPC_TOOLS_STR(SHMRPC_VERSION_MINOR)
#endif

#endif /* SHMRPC_TOOLS_VERSION_H */
