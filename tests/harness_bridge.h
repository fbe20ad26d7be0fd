/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the bridge's tests (tests/test_bridge.c): real nats-server
 * processes on 127.0.0.1, "hosts" made of a mount namespace each with its
 * own tmpfs at /dev/shm, a shmrpc-bridge per host, and programs run in a
 * host. Every process started here dies with the test (PR_SET_PDEATHSIG
 * through th_fork_raw); nats-servers are also listed in a pid file that
 * the next run sweeps (tb_sweep), should anything survive.
 */
#ifndef SHMRPC_TEST_HARNESS_BRIDGE_H
#define SHMRPC_TEST_HARNESS_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "bridge/status.h"

struct tb_nats {
	pid_t pid;
	char url[64];	  /* nats://127.0.0.1:PORT */
	char cluster[64]; /* its route URL, "" without a cluster */
	char log[96];
};

/* Start a server; @routes: NULL alone, "" first of a cluster, or the
 * route URL of a running one to join its cluster. 0 or -1. */
int tb_nats_start(struct tb_nats *s, const char *routes);
void tb_nats_kill(struct tb_nats *s);

struct tb_host {
	pid_t pid; /* holds the mount namespace */
	char name[16];
	pid_t bridge;
	char log[96];
};

/* A host: a process in a new mount namespace with a 256 MiB tmpfs at
 * /dev/shm. 0, or -1 (not root, or no namespaces: the test skips). */
int tb_host_start(struct tb_host *h, const char *name);
/* Stop its bridge (SIGTERM) and the host; 0 if the bridge exited 0 and
 * the host's /dev/shm was empty after it. */
int tb_host_stop(struct tb_host *h);
/* In a forked, single-threaded child: enter host h's mount namespace. */
int tb_host_enter(const struct tb_host *h);
/* Run fn(arg) in a th_fork child inside host h. */
pid_t tb_run(const struct tb_host *h, int (*fn)(void *arg), void *arg);

/* Start host h's bridge of @domain to @urls (comma-separated) with
 * heartbeats every 100 ms, hosts dead after 20 of them missed, and @extra
 * options ("" or space-separated; they override those). */
int tb_bridge_start(struct tb_host *h, const char *domain, const char *urls, const char *extra);
/* SIGKILL it (a crash); 0. */
int tb_bridge_kill(struct tb_host *h);
bool tb_log_has(const struct tb_host *h, const char *text);
/* The sum of the count=N of the log lines holding every word of @words
 * (space-separated). */
uint64_t tb_log_sum(const struct tb_host *h, const char *words);
/* Wait until the bridge's log has @text: 0, or -1 after timeout_ms. */
int tb_log_wait(const struct tb_host *h, const char *text, int timeout_ms);

/* A row of host h's status segment of @domain, copied out (0, -1). */
struct tb_row {
	uint32_t kind;
	char name[64], host[64];
	uint64_t fwd_msgs, dlv_msgs, lost, dropped, stalls, queued;
};
int tb_status_row(const struct tb_host *h, const char *domain, const char *node,
		  struct tb_row *out);
/* The broadcast counters of host h's status segment of @domain (0, -1):
 * broadcasts published once, the copies they stood for, copies that went
 * alone on their node's stream. */
struct tb_bcast {
	uint64_t bcasts, sent, split;
	uint64_t gone_lost, gone_dropped, bad_msgs; /* and these totals */
};
int tb_status_bcast(const struct tb_host *h, const char *domain, struct tb_bcast *out);

/* shmrpc-top -b -n 1 --domain @domain run in host h: its output in
 * @out (NUL-terminated), 0 or -1. */
int tb_top(const struct tb_host *h, const char *domain, char *out, size_t cap);

/* Kill what an earlier run left (nats-servers whose test is gone). */
void tb_sweep(void);

/*
 * A test case of the bridge's tests (tests/test_bridge*.c): a fresh domain
 * and two hosts, a and b, on the group's nats-server (tb_server).
 * tb_group_setup starts that server (or notes why the group skips),
 * tb_case_setup/teardown make and stop a case's hosts (teardown fails if a
 * bridge did not exit 0 or a host's /dev/shm was not empty).
 */
struct tb_case {
	struct th_dom dom;
	struct tb_host a, b;
};
extern struct tb_nats tb_server;
extern const char *tb_skip_why; /* NULL: the group runs */
int tb_group_setup(void **state);
int tb_group_teardown(void **state);
int tb_case_setup(void **state);
int tb_case_teardown(void **state);
/* Both hosts and their bridges (urls NULL: tb_server); skips the test
 * where that cannot be. */
void tb_hosts_up(struct tb_case *t, const char *urls_a, const char *urls_b, const char *extra);
/* A node of @domain, or NULL (the reason on stderr). */
struct shmrpc_node *tb_open(const char *domain, const char *name);
/* A pseudo-random length in [0, max] for message @seq, the same each run. */
uint32_t tb_len_of(uint64_t seq, uint32_t max);
void tb_sleep_ms(int ms);

#endif
