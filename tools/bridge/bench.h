/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-bridge-bench: the bridge's figures next to plain libnats between
 * two processes, in the same run, on loopback (make bench-bridge).
 *   bench.c      scenarios, the table, main
 *   bench_run.c  processes: nats-server, hosts (mount namespaces with
 *                their own /dev/shm), bridges; all die with the bench
 */
#ifndef SHMRPC_BRIDGE_BENCH_H
#define SHMRPC_BRIDGE_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct bb_env {
	const char *bridge_bin;
	char url[64]; /* the nats-server */
	pid_t nats;
	pid_t host[2]; /* mount namespace holders */
	pid_t bridge[2];
	char domain[64];
	char logdir[64];
	char spin_us[16]; /* the bridges' --spin-us, "": their default */
};

double bb_now_us(void);
/* fork(2), the child dies with the bench (PR_SET_PDEATHSIG). */
pid_t bb_fork(void);
int bb_wait(pid_t pid);
int bb_nats_start(struct bb_env *e);
/* Two hosts with a bridge each: 0, or -1 (the reason printed). */
int bb_hosts_start(struct bb_env *e);
/* In a forked child: enter host i. */
int bb_host_enter(const struct bb_env *e, int i);
void bb_stop_all(struct bb_env *e);

#endif
