/* SPDX-License-Identifier: MIT */
/*
 * The "uring" wake backend (wake_uring.c).
 */
#ifndef SHMRPC_WAKE_URING_H
#define SHMRPC_WAKE_URING_H

#include <stdbool.h>

#include "backend.h"

extern const struct shmrpc__backend shmrpc__backend_uring;
/* In a forked child: forget the parent's nodes and what worked for it. */
void shmrpc__uring_fork_child(void);
/* Tests only: turn off (and on again) the uring backend's thread-exit hook,
 * to reach the path taken when it cannot run (wake_uring.c). */
void shmrpc__uring_exit_cancel(bool on);

#endif /* SHMRPC_WAKE_URING_H */
