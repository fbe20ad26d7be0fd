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
#include <stdbool.h>
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
/* Map /dev/shm entry @name (shm_open name) read-write whole, as a peer
 * would: NULL if absent or empty; its size in *size. */
void *th_shm_map(const char *name, uint64_t *size);
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
/* CLOCK_MONOTONIC in nanoseconds (the library's deadlines). */
int64_t th_mono_ns(void);
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

/* ------------------------------------------------------------ waiting */

/* Sleep @ms milliseconds. */
void th_sleep_ms(int ms);
/* A zombie: wait for @pid to die without reaping it: 0, or -1. */
int th_wait_zombie(pid_t pid);

/* A one-to-many release across processes: children block in th_bar_wait
 * until the parent closes the write end (th_bar_release): all of them see
 * EOF at once. */
struct th_bar {
	int fd[2];
};
void th_bar_init(struct th_bar *b);
/* Child side: 0 once released, -1 after @timeout_ms. */
int th_bar_wait(struct th_bar *b, int timeout_ms);
void th_bar_release(struct th_bar *b);
void th_bar_fini(struct th_bar *b);

/* ------------------------------------------------------------ environment */

/* An environment variable a test changes, put back afterwards. */
struct th_env {
	const char *name;
	char *val;
};
void th_env_save(struct th_env *e, const char *name);
void th_env_restore(struct th_env *e);
/* Peers' watchers off (lib/watch.c), for this process and the children it
 * forks, so that the reclaim a test expects from a lookup or a leave is
 * not done first by a watcher; th_env_restore(e) ends it. */
void th_watch_off(struct th_env *e);
/* A test program's main: no safety net unless $SHMRPC_SAFETY_MS says (every
 * wait must end by a wake: a lost wake is a hang), and $TEST_FILTER: only
 * the tests matching it ('*', '?'). */
void th_main_env(void);
/* Grandchildren whose parent a test kills are reaped by this process
 * (PR_SET_CHILD_SUBREAPER), for the tests that th_wait() them. */
void th_subreaper(void);

/* ------------------------------------------------------------ nodes */

#define TH_SENTINEL 4242  /* an errno value no call would set */
#define TH_PROMPT_MS 2000 /* "promptly": far below every timeout in play */
#define TH_NAMES_MAX 64

/* Open @name in @d with rings of @ring bytes (NULL, said, on failure). */
struct shmrpc_node *th_open_ring(const struct th_dom *d, const char *name, uint32_t ring);
/* shmrpc_stats of @n (asserted to succeed). */
struct shmrpc_stats th_stats(struct shmrpc_node *n);
/* Sleep-poll until n's sleep counter passes @above: its receiving (or
 * blocked sending) thread is asleep in the kernel, or about to be. */
bool th_wait_sleeps_above(struct shmrpc_node *n, uint64_t above, int timeout_ms);
/* Send @len-byte messages with timeout 0 until the ring is full: how many. */
int th_fill_ring(struct shmrpc_node *n, const char *to, size_t len);
/* Then with empty messages (*empties of them): afterwards not even those fit. */
int th_fill_ring_full(struct shmrpc_node *n, const char *to, size_t len, int *empties);
/* A handler that fails the test if it is called. */
void th_never_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		      void *arg);
/* A handler that does nothing. */
void th_noop_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		     void *arg);
/* A thread blocked in shmrpc_recv(n, ..., 10 s): its result in rc. */
struct th_blocked_recv {
	struct shmrpc_node *n;
	int rc;
};
void *th_blocked_recv_thread(void *arg);
/* Threads of this process (/proc/self/task). */
int th_count_threads(void);
/* Sleep-poll until the process has @want threads: a joined thread leaves
 * /proc/self/task a moment after pthread_join returns (the kernel wakes
 * the joiner before it releases the task). */
bool th_wait_threads(int want, int timeout_ms);

/*
 * A node in a child: it joins as @name, optionally says hello to @hello
 * (so that rings exist in both directions once the parent answers), opens
 * @ready and stays until @release (then closes), or until it is killed.
 */
struct th_holder {
	struct shmrpc_opts o;
	char name[TH_NAMES_MAX];
	char hello[TH_NAMES_MAX];
	int value; /* a test's own child main: what it sends */
	bool stay; /* a test's own child main: stay (to be killed) rather than close */
	struct th_gate ready, release;
	pid_t pid;
};
void th_holder_start_opts(struct th_holder *h, const struct shmrpc_opts *o, const char *name,
			  const char *hello);
void th_holder_start(struct th_holder *h, const struct th_dom *d, const char *name,
		     const char *hello);
void th_holder_fini(struct th_holder *h);
/* Let it close and exit normally. */
void th_holder_stop(struct th_holder *h);
/* SIGKILL it and reap it. */
void th_holder_kill(struct th_holder *h);
/* A child main (th_fork) for a th_holder: it joins as h->name and sends
 * h->value (an int) to "r"; then it closes, or, with h->stay, opens
 * h->ready and waits to be killed. */
int th_send_once_main(void *arg);

/* ------------------------------------------------------------ /dev/shm (harness_shm.c) */

/* Calls fn(entry, arg) for every /dev/shm entry whose name contains @sub;
 * returns how many there were. */
int th_shm_walk(const char *sub, void (*fn)(const char *ent, void *arg), void *arg);
/* Files of domain @dom (exact: "shmrpc.<dom>.") whose name contains @sub. */
int th_dom_files(const char *dom, const char *sub);
/* "/dev/shm/shmrpc.<dom>.<suffix>" */
void th_shm_path(char *buf, size_t len, const char *dom, const char *suffix);
/* The header of /dev/shm entry @ent (names carry a keyed hash, not ids:
 * lib/names.c): 1 a node (ids[0..1]), 2 a ring (ids[0..3]), 0 neither. */
int th_ent_ids(const char *ent, uint32_t ids[4]);
/* Is /dev/shm entry @ent a file of domain @dom (exact)? */
bool th_of_dom(const char *ent, const char *dom);
/* The id "S.G" (from its header) of the live node segment of the node
 * named @name: 0, or -1 (none, or more than one). */
int th_node_id(const char *dom, const char *name, char id[32]);
/* Files of @dom that belong to node @id ("S.G"): its segment, rings either
 * way. */
int th_id_files(const char *dom, const char *id);
/* The path of the live node segment of the node named @name: 0, or -1
 * (none, or more than one). */
int th_node_path(const char *dom, const char *name, char *path, size_t len);
/* Plant a registry file for @dom: @len bytes of @data, sized @size: 0, -1. */
int th_plant(const char *dom, const void *data, size_t len, off_t size);
/* Registries the node segments of @dom were named under: 1 when every one
 * carries the name its header's ids give under the registry's key. */
int th_dom_nonces(const char *dom);
/* Files of @dom whose mode is not exactly @mode (each one said). */
int th_dom_mode_bad(const char *dom, unsigned mode);
/* The size of the file at @path, or -1. */
off_t th_file_size(const char *path);

#endif
