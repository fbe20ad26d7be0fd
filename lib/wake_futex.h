/* SPDX-License-Identifier: MIT */
/*
 * The "futex" wake backend (wake_futex.c).
 */
#ifndef SHMRPC_WAKE_FUTEX_H
#define SHMRPC_WAKE_FUTEX_H

#include "backend.h"

extern const struct shmrpc__backend shmrpc__backend_futex;

#endif /* SHMRPC_WAKE_FUTEX_H */
