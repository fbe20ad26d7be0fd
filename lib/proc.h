/* SPDX-License-Identifier: MIT */
/*
 * This process's identity as a registry slot records it, and what /proc
 * says of other processes (proc.c).
 */
#ifndef SHMRPC_PROC_H
#define SHMRPC_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct shmrpc__proc {
	pid_t pid;
	uint32_t uid;
	uint64_t start_time; /* clock ticks after boot, /proc/PID/stat field 22 */
	uint64_t pidns;	     /* inode of /proc/self/ns/pid */
};

/* This process's identity (read once per process; the euid every time). */
int shmrpc__proc_self(struct shmrpc__proc *p);
/* Start time of @pid, /proc/PID/stat field 22: 0 or -errno. */
int shmrpc__proc_start_time(pid_t pid, uint64_t *start);
/* How many threads this process has (/proc/self/stat field 20), or -1. */
int shmrpc__proc_threads(void);

#endif /* SHMRPC_PROC_H */
