/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-bridge-bench: the bridge's figures next to plain libnats between
 * two processes, in the same run, on loopback (make bench-bridge).
 *   bench.c        scenarios, the table, main
 *   bench_bcast.c  the broadcast row
 *   bench_run.c    processes: nats-server, hosts (mount namespaces with
 *                  their own /dev/shm), bridges; all die with the bench
 */
#ifndef SHMRPC_BRIDGE_BENCH_H
#define SHMRPC_BRIDGE_BENCH_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct shmrpc_node;

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

/* bench.c: a libnats connection (NULL: said why), a sync subscription
 * without pending limits, flushed (NULL: failed); in a forked child: enter
 * host i and open node name of the domain (NULL: said why). */
natsConnection *bb_nats_conn(const char *url, bool asap);
natsSubscription *bb_nats_sub(natsConnection *nc, const char *subj);
struct shmrpc_node *bb_node_in(const struct bb_env *e, int host, const char *name);

/* The broadcast row (bench_bcast.c): a sender broadcasting n messages of
 * 256 B to k nodes of the other host, next to one NATS publisher and k
 * subscribers. Rates: broadcasts per second delivered to all k, the
 * earliest first to the latest last message at the receivers. */
struct bb_bcast_side {
	double rate;	  /* min_got over the receivers' whole span */
	double slow_rate; /* the slowest receiver's own first to last */
	uint64_t min_got, max_got;
};

struct bb_bcast {
	int k, n;
	struct bb_bcast_side plain, bridged;
	/* the bridged sender: broadcasts whose return counted fewer than k + 1
	 * (k proxies and the bridge's control node), failed, least counted */
	uint64_t short_ret, failed;
	int min_ret;
	double tx_rate; /* its loop's broadcasts per second */
	/* the sending bridge's status segment, this row's share */
	bool status_ok;
	uint64_t bcasts, copies, alone;
};

int bb_bcast_run(const struct bb_env *e, struct bb_bcast *r);
void bb_bcast_print(const struct bb_bcast *r);

#endif
