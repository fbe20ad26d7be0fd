/* SPDX-License-Identifier: MIT */
/*
 * The fault sweep's machinery (tests/fault/runner.c): a scenario is a
 * call of the API under test, run in a child process of its own for every
 * N, with its peers in processes of their own; the child checks what the
 * call returned, that the node keeps working (or closed cleanly), and that
 * nothing was left: descriptors, mappings, threads, heap blocks, files of
 * the domain in /dev/shm.
 *
 *   test (cmocka, never calls the library)
 *    `- child C, one per N: [warm-up], baseline, setup, ARMED call, after,
 *        |                  teardown, the same as the baseline?
 *        `- peers P0, P1: nodes of their own, driven over pipes
 */
#ifndef SHMRPC_TEST_FAULT_RUNNER_H
#define SHMRPC_TEST_FAULT_RUNNER_H

#include <stdbool.h>
#include <sys/types.h>

#include "harness.h"
#include "fault.h"

#define FR_PEERS 2
#define FR_MSG 32
#define FR_IO_MS 3000 /* every wait of a scenario: a lost wake shows as this */
#define FR_LSAN 23    /* LeakSanitizer's exit status (test_fault.c sets it) */

/* A peer process and the pipes that drive it. */
struct fr_peer {
	pid_t pid;
	int cmd, rep; /* to it, from it */
	bool busy;    /* a background command's result is still to come */
};

enum fr_op {
	PO_OPEN = 1,  /* open node idx as name in domain */
	PO_SEND,      /* idx sends msg to to (FR_IO_MS): rc */
	PO_SEND_LATE, /* ack; once the test process sleeps, idx sends msg to to */
	PO_RECV,      /* idx receives one (FR_IO_MS): rc, msg */
	PO_RECV_BG,   /* ack; idx receives one (FR_IO_MS), the result later */
	PO_ECHO,      /* idx receives until "rt" and sends it back: rc, skipped */
	PO_CLOSE,     /* close node idx */
	PO_SERVE,     /* node idx serves: replies "r" + the request, in its receives */
	PO_QUIT,      /* close every node, exit */
};

struct fr_cmd {
	int op, idx;
	char domain[SHMRPC_NAME_MAX + 1];
	char name[FR_MSG], to[FR_MSG], msg[FR_MSG];
};

struct fr_rep {
	int rc;
	int skipped; /* PO_ECHO: messages received before "rt" */
	char msg[FR_MSG];
};

/* Flags of a scenario. */
#define FR_COLD 0x1	/* no warm-up: the call is the process's first */
#define FR_BG_ONLY 0x2	/* only the sweep of the library's threads */
#define FR_NO_SWEEP 0x4 /* only the counting run (e.g. an untestable path) */

struct fr_ctx;

struct fr_scen {
	const char *name;
	int peers;
	unsigned flags;
	int (*setup)(struct fr_ctx *c);		/* 0, or -1 with c->why */
	int (*call)(struct fr_ctx *c);		/* the armed call: its result */
	int (*after)(struct fr_ctx *c, int rc); /* 0, or -1 with c->why */
};

/* What a child reports, shared with the test process. */
struct fr_result {
	struct fault_shared f;
	int rc;		/* the armed call's result */
	int outcome;	/* FR_OUT_* */
	char why[512];	/* what was wrong */
	long base_fds;	/* for the report */
	double call_ms; /* the armed call */
};

enum { FR_OUT_NONE, FR_OUT_OK, FR_OUT_ERR, FR_OUT_ABSORBED };

struct fr_ctx {
	const struct fr_scen *s;
	struct th_dom d;
	char scratch[SHMRPC_NAME_MAX + 1]; /* the warm-up's domain */
	struct fr_peer peer[FR_PEERS];
	struct shmrpc_node *a, *x; /* the test process's nodes */
	struct fr_result *res;
	char *why;
	bool sticky;	  /* the faults were sticky, and are over now */
	int aux[4];	  /* the scenario's */
	char buf[FR_MSG]; /* the scenario's */
};

/* Set c->why (appending) and return -1. */
int fr_fail(struct fr_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Peers: started before anything else in the test process (no thread
 * of the library runs yet), stopped at the end (their nodes closed). */
int fr_peer_start(struct fr_ctx *c, int p);
int fr_peer_stop(struct fr_ctx *c, int p); /* its pipes stay open: fr_peer_fini */
void fr_peer_fini(struct fr_ctx *c, int p);
int fr_peer_do(struct fr_ctx *c, int p, const struct fr_cmd *cmd, struct fr_rep *rep);
/* Common commands; -1 (c->why set) when the peer does not answer. */
int fr_p_open(struct fr_ctx *c, int p, int idx, const char *domain, const char *name);
int fr_p_send(struct fr_ctx *c, int p, int idx, const char *to, const char *msg);
int fr_p_recv(struct fr_ctx *c, int p, int idx, struct fr_rep *rep);
int fr_p_bg(struct fr_ctx *c, int p, int op, int idx, const char *to, const char *msg);
int fr_p_result(struct fr_ctx *c, int p, struct fr_rep *rep);
int fr_p_close(struct fr_ctx *c, int p, int idx);
/* Has the background command's result come (within @ms)? */
bool fr_p_ready(struct fr_ctx *c, int p, int ms);
/* Wait until peer @p's main thread blocks in a wait (its receive). */
int fr_p_blocked(struct fr_ctx *c, int p);

/* The test process's nodes (spin never, small rings, 16 slots). */
int fr_open(struct fr_ctx *c, const char *name, struct shmrpc_node **out);
int fr_open_in(struct fr_ctx *c, const char *domain, const char *name, struct shmrpc_node **out);
/* Those options, for an open of the scenario's own. */
int fr_opts(struct fr_ctx *c, struct shmrpc_opts *o);
/* Receive until @want arrives (FR_IO_MS each): 0; *others counts what came
 * before it (each must be one of "m..."). */
int fr_recv_until(struct fr_ctx *c, struct shmrpc_node *n, const char *want, int *others);
/* a sends "rt" to @to, which echoes it: 0, or -1. @skipped: what the peer
 * received before "rt". */
int fr_roundtrip(struct fr_ctx *c, struct shmrpc_node *n, int p, const char *to, int *skipped);

/*
 * Is @rc what the armed call may return? @doc: the errnos its header
 * documents (0-terminated; NULL: any). A failure must be documented, and,
 * if a call was failed, be its errno, unless @also names the errno the
 * header gives for it. @ok: the success value (-1: any >= 0).
 */
int fr_check_rc(struct fr_ctx *c, int rc, const int *doc, int ok, const int *also);

/* The sweep: the counting run, then a run failing each N (API, then BG).
 * Prints a summary; returns how many runs failed. */
int fr_sweep(const struct fr_scen *s);

#endif
