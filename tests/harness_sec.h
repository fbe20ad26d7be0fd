/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the multi-user security suite (tests/test_security*.c, issue
 * 15, docs/security.md): two throwaway users, a victim A and an attacker B,
 * and a group both belong to; real processes of those users; a private
 * /dev/shm; shmrpc-reaper in either mode; what "untouched" and "responsive"
 * mean, measured.
 *
 *	harness_sec.c		the environment: lock, users, mount namespace,
 *				sysctl, processes of a user
 *	harness_sec_snap.c	snapshots of /dev/shm, tmpfs used, /proc facts
 *	harness_sec_case.c	A's agent, the reaper, the kill-to-reclaimed
 *				delay, and the frame every reaper case follows
 *
 * Isolation: sec_init() moves the whole test (and every process it forks,
 * the reaper included) into a mount namespace of its own with a fresh tmpfs
 * on /dev/shm, mode 1777 like the real one. The reaper there can follow
 * every domain (no --domain), as on a real host, without meeting another
 * engineer's tests, and the attacks (a FIFO, thousands of fake registries)
 * reach no one else. fs.protected_symlinks is a machine-wide sysctl: it is
 * changed only under an exclusive lock, restored by the group teardown, at
 * exit, on SIGTERM/SIGINT, and by the next run if this one was SIGKILLed
 * (a state file in /run says what to restore).
 */
#ifndef SHMRPC_TEST_HARNESS_SEC_H
#define SHMRPC_TEST_HARNESS_SEC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* Who a forked process runs as. The _G variants also carry the shared group
 * (as their effective gid too, so their files get it): the members of a
 * group-mode domain. */
enum sec_who { SEC_A, SEC_B, SEC_A_G, SEC_B_G };

struct sec_env {
	uid_t a, b;	    /* users A (victim) and B (attacker) */
	gid_t ga, gb, g;    /* their primary groups, and the shared one */
	char ws[64];	    /* workspace: a private tmpfs, strictatime */
	int symlinks_found; /* fs.protected_symlinks at start */
	int symlinks_now;   /* as set by the running group */
	pid_t main_pid;
};
extern struct sec_env sec;

#define SEC_USER_A "shmrpcsec-a"
#define SEC_USER_B "shmrpcsec-b"
#define SEC_GROUP "shmrpcsec-g"

/*
 * Everything the suite needs, once, from main(): 0 to run, 1 to skip (the
 * reason is printed: not root, or the wake backend does not matter here),
 * -1 on a set-up failure (printed). Removes the leftovers of a crashed run,
 * creates the users and the group, isolates /dev/shm, makes the workspace,
 * and registers the clean-up (exit, SIGTERM, SIGINT).
 */
int sec_init(const char *prog);

/* Run @tests as a cmocka group twice: with fs.protected_symlinks as found,
 * then with the other setting (0 if it was not, else 1), restored after
 * each. $SHMRPC_SECURITY_SYMLINKS=N runs only the group with N; $TEST_FILTER
 * is cmocka's filter. 0 if everything passed. */
int sec_run_groups(const char *prog, const struct CMUnitTest *tests, size_t n);
int sec_group_symlinks(void **state);
int sec_group_restore(void **state);
/* "protected_symlinks=N" of the running group, for messages. */
const char *sec_symlinks_label(void);

/* Run fn(arg) in a forked child as @who (setgroups, setresgid, setresuid;
 * dumpable, dies with us). The child is tracked: sec_kill_all() ends it. */
pid_t sec_fork_as(enum sec_who who, int (*fn)(void *arg), void *arg);
/* The same, waited for: its exit code, 128 + signal, or -1 after timeout. */
int sec_run_as(enum sec_who who, int (*fn)(void *arg), void *arg, int timeout_ms);
uid_t sec_uid(enum sec_who who);
/* SIGKILL and reap every tracked child; empty /dev/shm (private). */
void sec_kill_all(void);
void sec_shm_wipe(void);
/* Track a child sec_fork_as did not start (the reaper), or stop tracking. */
void sec_track(pid_t pid);
void sec_untrack(pid_t pid);

/* "/dev/shm/shmrpc.<dom>.reg" */
void sec_reg_path(char *buf, size_t len, const char *dom);
/* The one file of ours in @dom but its registry (our node's), as a path. */
int sec_own_node_file(const char *dom, char *path, size_t len);

/* ---- a node of B (or A) in a process of its own, driven over a socket ---- */
struct sec_bnode {
	char dom[SHMRPC_NAME_MAX + 1];
	const char *name; /* NULL: "b1" */
	uint32_t mode;
	bool send_a1; /* after joining, send one message to a1 */
	bool fifo;    /* then replace our node's file by a FIFO */
	pid_t pid;
	int sock;
};
/* Fork it as @who: 0 once it joined (and did the above), or an error. */
int sec_bnode_start(struct sec_bnode *b, enum sec_who who);
/* 'u' unlink our registry's name, 't' truncate our registry to 0 bytes,
 * 'l' hold our registry's lock (its first byte) until we die: 0 or errno. */
int sec_bnode_act(struct sec_bnode *b, char op);
void sec_bnode_kill(struct sec_bnode *b);

/* A path in the workspace. */
const char *sec_ws(char *buf, size_t len, const char *name);

/* ---- snapshots of /dev/shm: what "nothing else was touched" means ---- */

struct sec_snap;
/* Every file of /dev/shm not owned by @except: name, inode, owner, mode,
 * size, and a hash of its content (of a registry, "*.reg", without the
 * reaper's status line: the reaper writes it every second). */
struct sec_snap *sec_snap_take(uid_t except);
/* Differences (printed), as a count. @reg_content: compare registries'
 * content too (off where the attacker may write them: a group member). */
int sec_snap_diff(const struct sec_snap *before, const struct sec_snap *after, bool reg_content);
void sec_snap_free(struct sec_snap *s);
/* Names of /dev/shm files owned by @uid whose name starts with @prefix, one
 * per line in @buf; their count. */
int sec_shm_names(uid_t uid, const char *prefix, char *buf, size_t len);

/* Memory allocated to those files (st_blocks), in KiB. */
long sec_shm_kb(uid_t uid, const char *prefix);

/* ---- /proc facts of a process ---- */
int sec_proc_fds(pid_t pid);
long sec_proc_kb(pid_t pid, const char *field); /* "RssShmem", "VmSize"...: kB, -1 */
long sec_shm_used_kb(void);			/* tmpfs /dev/shm in use */

/* ---- A's agent: nodes a1 and a2 (ring both ways) in domain @dom, and a
 * keeper "k" in @lat (the domain victims of the delay measurement join) ---- */
struct sec_agent {
	pid_t pid;
	int sock;
	enum sec_who who;
	char dom[SHMRPC_NAME_MAX + 1], lat[SHMRPC_NAME_MAX + 1];
	uint32_t mode;
	int victims;
};
int sec_agent_start(struct sec_agent *ag, enum sec_who who, const char *dom, uint32_t mode);
/* a1 -> a2 -> a1: 0 or -errno (of the failing call). */
int sec_agent_roundtrip(struct sec_agent *ag);
/* A new process of A joins @name in the agent's domain and exchanges a
 * message with a1 (it must see a1: same registry): 0 or a code. */
int sec_agent_join(struct sec_agent *ag, const char *name);
/* Kill-to-reclaimed of a fresh victim node of A in the agent's delay
 * domain: ms until its slot is free and its files gone; -1 if not within
 * @timeout_ms. */
double sec_agent_reclaim_ms(struct sec_agent *ag, int timeout_ms);
void sec_agent_stop(struct sec_agent *ag);

/* ---- the reaper ---- */
struct sec_reaper {
	pid_t pid;
	const char *mode; /* "bpf", "pidfd" */
	char log[PATH_MAX];
	long hup_off; /* SIGHUP lines counted up to here */
	int hups;
};
/* Start build/tools/shmrpc-reaper -v --mode @mode --no-pin (or @extra, a
 * NULL-terminated list replacing --no-pin) and wait for READY: 0, or the
 * error of shmrpc_kt_reaper_start (-ETIMEDOUT: it never said READY). A
 * refused BPF probe skips the test. */
int sec_reaper_start(struct sec_reaper *r, const char *mode, const char *const *extra);
/* SIGTERM; its exit code (0 expected), 128 + signal, or -ETIMEDOUT (then
 * SIGKILLed) after @timeout_ms. */
int sec_reaper_stop(struct sec_reaper *r, int timeout_ms);
int sec_log_count(const struct sec_reaper *r, const char *a, const char *b, const char *c);
int sec_log_wait(const struct sec_reaper *r, int n, const char *a, const char *b, const char *c,
		 int ms);
void sec_log_print(const struct sec_reaper *r);
long sec_log_bytes(const struct sec_reaper *r);
/* Two SIGHUPs, each logged by the loop: when the second is logged, the
 * reconcile (every registry swept) of the first is done. 0, -ETIMEDOUT. */
int sec_reaper_barrier(struct sec_reaper *r, int ms);
double sec_cpu_ms(pid_t pid);

/* ---- the frame of a reaper case ---- */
#define SEC_RECLAIM_BOUND_MS 2000 /* "not at the periodic sweep, or never" */

struct sec_case {
	const char *mode;
	struct sec_reaper r;
	struct sec_agent ag;
	struct sec_snap *s0;
	double base_ms, after_ms;
	const char *label;
};

enum {
	SEC_CHECK_ROUNDTRIP = 1,   /* a1 <-> a2 after the attack */
	SEC_CHECK_REG_CONTENT = 2, /* A's registries' content unchanged too */
};

/* Reaper @mode up (@extra as for sec_reaper_start): asserts it is READY. */
void sec_case_reaper(struct sec_case *c, const char *mode, const char *const *extra);
/* A's agent in @dom, mirrored by the reaper, the baseline delay measured,
 * the snapshot taken. */
void sec_case_victim(struct sec_case *c, enum sec_who who, const char *dom, uint32_t mode);
/* After the attack: barrier, snapshot compared, delay measured again (both
 * printed, bounded by SEC_RECLAIM_BOUND_MS), round trip, and a SIGTERM that
 * stops the reaper. Prints each check that fails ("FAILED CHECK: ...") and
 * returns their number: the caller adds its own and asserts the total. */
int sec_case_check(struct sec_case *c, int flags);
/* Teardown: whatever is left of the case. */
void sec_case_end(struct sec_case *c);

#endif
