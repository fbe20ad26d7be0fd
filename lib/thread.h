/* SPDX-License-Identifier: MIT */
/*
 * The receiving thread of shmrpc_start (thread.c).
 */
#ifndef SHMRPC_THREAD_H
#define SHMRPC_THREAD_H

struct shmrpc_node;

/* shmrpc_close: stop the thread if one runs (detached if called from its
 * own handler). */
void shmrpc__thread_stop(struct shmrpc_node *n);

#endif /* SHMRPC_THREAD_H */
