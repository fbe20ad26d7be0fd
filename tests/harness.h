/* SPDX-License-Identifier: MIT */
/*
 * Test harness shared by the test programs: fresh domains, forked peers,
 * sleeping synchronisation between processes, /dev/shm accounting.
 *
 * cmocka's assertions may only run in the test's own process. A forked
 * child checks with CHILD_CHECK, which prints where it failed and exits
 * non-zero; the parent asserts on the child's exit status.
 */
#ifndef SHMRPC_TEST_HARNESS_H
#define SHMRPC_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmrpc.h"

#define CHILD_CHECK(cond)                                                                     \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "child %d: %s:%d: check failed: %s\n", (int)getpid(), \
				__FILE__, __LINE__, #cond);                                   \
			_exit(1);                                                             \
		}                                                                             \
	} while (0)

#define CHILD_CHECK_RC(expr, want)                                                              \
	do {                                                                                    \
		long rc_ = (long)(expr);                                                        \
		if (rc_ != (long)(want)) {                                                      \
			fprintf(stderr, "child %d: %s:%d: %s = %ld, want %ld\n", (int)getpid(), \
				__FILE__, __LINE__, #expr, rc_, (long)(want));                  \
			_exit(1);                                                               \
		}                                                                               \
	} while (0)

/* A fresh domain for one test: unique per process and call. */
struct th_dom {
	char name[SHMRPC_NAME_MAX + 1];
	struct shmrpc_opts opts;
};

void th_dom_init(struct th_dom *d);
/* Files of the domain in /dev/shm, and their allocated bytes. */
int th_shm_count(const char *domain);
uint64_t th_shm_bytes(const char *domain);
/* Remove whatever the domain left (after a failed test); returns count. */
int th_shm_clean(const char *domain);

/* cmocka fixtures: state is a struct th_dom; teardown fails the test if
 * anything of the domain is left in /dev/shm. */
int th_setup(void **state);
int th_teardown(void **state);

/*
 * fork(2) for tests and their children: the child gets SIGKILL when its
 * parent dies (PR_SET_PDEATHSIG), so a test that fails or is killed leaves
 * no process behind. Only from a process's main thread (the signal follows
 * the forking thread, not the process): anything else aborts. A child that
 * must outlive its parent uses fork() and ends some other way.
 */
pid_t th_fork_raw(void);
/* Run fn(arg) in a th_fork_raw child that exits with its return value. */
pid_t th_fork(int (*fn)(void *arg), void *arg);
/* Wait for a child; its exit code, 128 + signal, or -1 if it did not end
 * within timeout_ms (it is then killed). */
int th_wait(pid_t pid, int timeout_ms);

/* One-shot cross-process signal over a pipe (sleeping waits only). */
struct th_gate {
	int fd[2];
};
void th_gate_init(struct th_gate *g);
void th_gate_open(struct th_gate *g);
/* 0 once opened, -1 after timeout_ms. */
int th_gate_wait(struct th_gate *g, int timeout_ms);
void th_gate_close(struct th_gate *g);

/* CPU time (user + system) a process has used, in milliseconds. */
double th_cpu_ms(pid_t pid);
double th_now_ms(void);
/* State letter of @pid's main thread in /proc/PID/stat ('R', 'S', 'Z'...),
 * or -errno. */
int th_proc_state(pid_t pid);
/* Wait until the main thread of @pid sleeps (state S in /proc/PID/stat):
 * 0, or -ETIMEDOUT. */
int th_wait_asleep(pid_t pid, int timeout_ms);

/* Deterministic payloads: fill/check len bytes for (stream, seq). */
void th_fill(void *buf, size_t len, uint64_t stream, uint64_t seq);
int th_check(const void *buf, size_t len, uint64_t stream, uint64_t seq);
uint64_t th_rand(uint64_t *state);

/* Open a node, retrying never: a failure is printed with its name. */
struct shmrpc_node *th_open(const struct th_dom *d, const char *name);

#endif
