/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-bench: declarations shared by the benchmark's files.
 *
 * Every measurement runs two processes forked from the driver, side 0 pinned
 * to the first allowed CPU and side 1 to the second. Whatever they share is
 * created by the driver before fork(): MAP_SHARED anonymous memory (struct
 * bench_ctrl, rings), pipes, sockets, eventfds, message queues. A
 * *transport* (struct bench_transport) is one way of carrying messages
 * between the two sides; a *scenario* (ping-pong, stream) drives a transport
 * from both sides and records what it measured in struct bench_ctrl.
 *
 * Plugging in a transport: implement struct bench_transport (contract
 * below), give it a name, add its address to bench_transports[] in
 * transports.c. Every scenario and every report then includes it.
 */
#ifndef SHMRPC_BENCH_H
#define SHMRPC_BENCH_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Smallest message: scenarios keep a sequence number in its first 8 bytes. */
#define BENCH_MIN_MSG 8
/* Seconds measured per stream run by default (--duration overrides). */
#define BENCH_STREAM_SECS 0.5
/* Messages per call of a transport's sendv/recvv in the stream scenario. */
#define BENCH_BATCH 32
/* Buffering budget per direction: max(BENCH_BUF_MIN, 4 x message size). */
#define BENCH_BUF_MIN (256u * 1024)

/* ------------------------------------------------------------- transport */

/* What the driver asks of a transport for one run (filled before setup). */
struct bench_params {
	size_t msg_size;  /* every message of the run is exactly this long */
	size_t buf_bytes; /* buffering to provide per direction (a budget) */
	unsigned run_id;  /* unique within this process: name kernel objects */
};

/* Counters a transport may keep about itself (libshmrpc: shmrpc_stats),
 * sampled by a side at the start and end of its window. */
struct bench_libctr {
	uint64_t sleeps; /* times this side slept in the kernel */
	uint64_t wakes;	 /* wakes it issued to a sleeping peer */
	uint64_t skips;	 /* publishes that needed no wake: the peer was awake */
	uint64_t spins;	 /* waits that ended while spinning */
	uint64_t full;	 /* sends that found the ring full */
};

/* Scenarios a transport is left out of unless --transport names it. */
#define BENCH_NOT_PINGPONG 0x1u
#define BENCH_NOT_PACED 0x2u
#define BENCH_NOT_STREAM 0x4u
#define BENCH_NOT_SYSCALLS 0x8u /* the syscalls scenario's runs (also NOT_STREAM) */

/* One bidirectional channel between side 0 and side 1. */
struct bench_chan {
	const struct bench_transport *t;
	struct bench_params p;
	int side;	/* -1 in the driver; 0 or 1 in a side, set before attach */
	size_t buf_eff; /* setup: buffering really obtained, bytes per direction
			   (0 when unknown); reported as is */
	void *priv;	/* the transport's own state */
	char why[120];	/* setup: optional reason for a refusal, reported */
};

/*
 * A transport. Call order and processes:
 *
 *   driver:  setup(ch)                         before fork; shared state
 *   side s:  attach(ch, s)                     after fork, in each side
 *            send / recv ...                   the scenario
 *            detach(ch)                        before the side exits
 *   driver:  teardown(ch)                      after both sides exited or
 *                                              were killed (SIGKILL)
 *
 * All return 0 / a length, or a negative errno value.
 * @setup: create what both sides need for messages of exactly
 *	ch->p.msg_size bytes in both directions, with about ch->p.buf_bytes of
 *	buffering per direction; set ch->priv and ch->buf_eff. Return
 *	-EMSGSIZE or -EOPNOTSUPP when this size or this machine cannot be
 *	served: the run is then reported as skipped, not failed (ch->why may
 *	say why, e.g. which system limit). On error,
 *	release everything itself (teardown is not called).
 * @attach: optional. Take side @side (0 or 1): close what this side does
 *	not use, open per-process handles. Both sides attach concurrently and
 *	meet at a barrier afterwards, so attach may wait for the peer.
 * @send: deliver one message of @len bytes to the other side, blocking
 *	while the transport has no room (back-pressure). Never drops.
 * @recv: block until one message arrives; copy it into @buf (@cap bytes,
 *	at least msg_size) and return its length.
 * @detach: optional; may be NULL. @teardown: release what setup made;
 *	accepts ch->priv == NULL.
 * @counters: optional; may be NULL. In a side: fill @out with the
 *	transport's own cumulative counters (deltas are taken by the caller).
 * @sendv, @recvv: optional; may be NULL. Batches (the stream scenario uses
 *	them when both are set, BENCH_BATCH messages a call): sendv sends
 *	the @n messages of @len bytes each that lie back to back in @buf, in
 *	order, and returns how many it sent (>= 1; blocks while none fits) or
 *	-errno; recvv blocks until at least one message arrives, takes up to
 *	@n of those waiting into @buf (slots of @cap bytes, back to back),
 *	their lengths into @lens, and returns how many.
 * send and recv are called by one thread per side; a side may send while
 * the other side sends too (ping-pong never does; stream sends one way).
 */
struct bench_transport {
	const char *name; /* [a-z0-9_-], used in tables, file names, --transport */
	const char *what; /* one line: the mechanism and how it waits */
	int (*setup)(struct bench_chan *ch);
	int (*attach)(struct bench_chan *ch, int side);
	int (*send)(struct bench_chan *ch, const void *buf, size_t len);
	int (*recv)(struct bench_chan *ch, void *buf, size_t cap);
	void (*detach)(struct bench_chan *ch);
	void (*teardown)(struct bench_chan *ch);
	int (*counters)(struct bench_chan *ch, struct bench_libctr *out);
	int (*sendv)(struct bench_chan *ch, const void *buf, size_t len, unsigned n);
	int (*recvv)(struct bench_chan *ch, void *buf, size_t cap, size_t *lens, unsigned n);
	unsigned not_in; /* BENCH_NOT_*: left out of those scenarios by default */
};

/* transports.c: NULL-terminated, in report order. */
extern const struct bench_transport *const bench_transports[];
const struct bench_transport *bench_transport_find(const char *name);

/* The baselines (tr_*.c). */
extern const struct bench_transport bench_tr_spin, bench_tr_futex, bench_tr_eventfd;
extern const struct bench_transport bench_tr_pipe, bench_tr_unix, bench_tr_mqueue;
/* Messaging libraries over ipc:// (tr_zmq.c, tr_nng.c; built without the
 * library, every run of it is skipped) and where their socket goes. */
extern const struct bench_transport bench_tr_zmq, bench_tr_nng;
int bench_ipc_make(char *path, size_t len);
int bench_ipc_wait(const char *path, int ms);
void bench_ipc_remove(const char *path);
/* libshmrpc (tr_shmrpc.c) */
extern const struct bench_transport bench_tr_shm, bench_tr_shm_futex, bench_tr_shm_spin;
extern const struct bench_transport bench_tr_shm_sleep, bench_tr_shm_sleep_futex, bench_tr_shm_zc;
extern const struct bench_transport bench_tr_shm_batch, bench_tr_shm_batch_futex;

/* ------------------------------------------------------------ run config */

struct bench_cfg {
	uint64_t iters;	    /* ping-pong: measured round trips (upper bound) */
	uint64_t warmup;    /* ping-pong: round trips before measuring */
	double duration;    /* stream: seconds measured; ping-pong: time cap */
	double warm_s;	    /* stream: seconds streamed before measuring */
	double rate;	    /* paced: requests per second offered by side 0 */
	int count_syscalls; /* count each side's system calls (syscount.c): it
			       costs every system call ~0.1 us, so only the
			       runs that report system calls do it */
	int floor_blocks;   /* pingpong: interleave this many blocks of cache-line
			       round trips (0: none; spinning transports) */
	int cpu[2];	    /* CPU of side 0 and side 1 */
	size_t msg_size;    /* the run's message size */
};

/* --------------------------------------------------- shared control block */

/* What one side measured about itself; written only by that side. */
struct bench_side_out {
	int64_t wall_ns; /* this side's accounting window */
	int64_t user_ns; /* getrusage(RUSAGE_SELF) over that window */
	int64_t sys_ns;
	uint64_t msgs;	  /* messages delivered in that window, both directions */
	uint64_t preempt; /* involuntary context switches in that window: time
			     another task took this side's CPU */
	int64_t syscalls; /* system calls in that window (raw_syscalls:sys_enter
			     tracepoint), -1 when it cannot be counted */
	int64_t pace_ns;  /* paced: time side 0 spent spinning for its next send
			     time (CPU of the load generator, not of the transport) */
	uint32_t has_lib; /* lib is valid */
	uint32_t _pad;
	struct bench_libctr lib; /* the transport's counters over the window */
};

/* MAP_SHARED anonymous, created by the driver before fork, one per run. */
struct bench_ctrl {
	alignas(64) _Atomic uint32_t arrived;	   /* start barrier (futex word) */
	alignas(64) _Atomic uint64_t line;	   /* cacheline scenario's word */
	alignas(64) struct bench_side_out side[2]; /* side i writes side[i] */
	uint64_t n;				   /* pingpong: samples[] used (side 0); stream:
				   messages in the measured window (side 1) */
	int64_t window_ns;			   /* stream: the consumer's measured window */
	char err[2][160];			   /* side i: why it failed */
	uint64_t cap;				   /* driver: capacity of samples[] */
	uint64_t n_floor;			   /* pingpong with floor blocks: floor samples, at
				   samples[cap / 2]; block = samples per block */
	uint64_t block;
	alignas(64) uint64_t samples[]; /* side 0: round-trip times, ns */
};

/*
 * A side of a scenario: runs in a forked child after attach and the
 * barrier; @ch is NULL for scenarios without a transport. Returns 0, or
 * -errno after bench_fail() explained why.
 */
typedef int (*bench_side_fn)(struct bench_chan *ch, struct bench_ctrl *c, int side,
			     const struct bench_cfg *cfg);

/* proc.c: fork(), the child getting SIGKILL when the driver dies
 * (PR_SET_PDEATHSIG; from the driver's main thread only: the signal follows
 * the thread). */
pid_t bench_fork(void);

/* harness.c */
struct bench_ctrl *bench_ctrl_new(uint64_t nsamples);
void bench_ctrl_free(struct bench_ctrl *c);
/*
 * bench_pair - one run: setup @t (NULL: none), fork both sides, run @fn in
 * each, wait (with a watchdog), teardown. Returns 0; -EMSGSIZE/-EOPNOTSUPP
 * when setup declined (skip); another -errno on failure. @why gets a reason
 * for anything but 0. @buf_eff (may be NULL) gets ch->buf_eff.
 */
int bench_pair(const struct bench_transport *t, const struct bench_cfg *cfg, bench_side_fn fn,
	       struct bench_ctrl *c, size_t *buf_eff, char *why, size_t whylen);
int bench_fail(struct bench_ctrl *c, int side, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* CPU-time accounting of one side over a window. */
struct bench_acct {
	int64_t wall0, user0, sys0;
	long nivcsw0;
	int64_t sys_calls0;
	struct bench_libctr lib0;
	int has_lib;
};
void bench_acct_begin(struct bench_acct *a);
void bench_acct_end(const struct bench_acct *a, struct bench_side_out *out, uint64_t msgs);

/* syscount.c: system calls of this process, counted by the kernel. */
int bench_sysc_open(void);
int64_t bench_sysc_read(void);
void bench_sysc_close(void);

/* shmview.c: a libshmrpc domain seen from outside (its files in /dev/shm,
 * its registry read-only); the benchmark's only use of lib/inspect.h. */
struct bench_shm_usage {
	unsigned files, rings, nodes;
	uint64_t blocks_bytes;	 /* allocated blocks of all files (st_blocks) */
	uint64_t apparent_bytes; /* sum of st_size */
	uint64_t ring_blocks, node_blocks, reg_blocks;
};
void bench_domain(char *buf, size_t len, const char *tag);
int bench_shm_usage(const char *domain, struct bench_shm_usage *u);
int bench_shm_cleanup(const char *domain);
struct bench_regview;
int bench_node_files(const struct bench_regview *v, const char *domain, uint32_t slot,
		     uint32_t gen);
int bench_reg_open(const char *domain, struct bench_regview **out);
void bench_reg_close(struct bench_regview *v);
int bench_reg_find(const struct bench_regview *v, const char *name, uint32_t *gen);
int bench_reg_holds(const struct bench_regview *v, int slot, uint32_t gen);
uint32_t bench_reg_reaper_pid(const struct bench_regview *v);
uint64_t bench_reg_reaped(const struct bench_regview *v);

/* reaper_run.c: who cleans up after a killed node (crash.c, evlat.c) */
struct bench_reaper_mode {
	const char *name; /* "peers" (no reaper), "reaper-bpf", "reaper-pidfd" */
	const char *env;  /* overrides the command; NULL: no reaper */
	const char *cmd;
	bool root; /* the mode needs root */
};
#define BENCH_REAPER_MODES 3
extern const struct bench_reaper_mode bench_reaper_modes[BENCH_REAPER_MODES];
int bench_reaper_cmd(const struct bench_reaper_mode *m, const char *domain, char *out,
		     size_t outlen, char *why, size_t len);
int bench_reaper_start(const char *cmd, const struct bench_regview *rv, pid_t *pid);
void bench_reaper_stop(pid_t pid);

/* Message buffer of a side: msg_size bytes, cache-line aligned, touched. */
void *bench_msg_alloc(size_t size);

/* Scenario sides: pingpong.c, stream.c, memcpy.c */
int bench_pingpong_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
			const struct bench_cfg *cfg);
int bench_cacheline_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
			 const struct bench_cfg *cfg);
int bench_stream_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
		      const struct bench_cfg *cfg);
int bench_memcpy_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
		      const struct bench_cfg *cfg);
int bench_paced_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
		     const struct bench_cfg *cfg);

/* ------------------------------------------------------- group harness */

#define BENCH_GROUP_MAX 16

/* MAP_SHARED anonymous control block of a group run (group.c). */
struct bench_gctrl {
	alignas(64) _Atomic uint32_t bar[4];  /* barriers (futex words); [0]: start */
	alignas(64) _Atomic uint64_t word[8]; /* the scenario's shared words */
	alignas(64) struct bench_side_out out[BENCH_GROUP_MAX]; /* member i writes [i] */
	int64_t val[BENCH_GROUP_MAX][8]; /* the scenario's values, member i: [i] */
	char err[BENCH_GROUP_MAX][160];	 /* member i: why it failed */
	uint64_t cap;			 /* samples[] */
	alignas(64) uint64_t samples[];
};

/* One group run: n members, member i on CPU cpu[i] (-1: any). */
struct bench_group {
	int n;
	int cpu[BENCH_GROUP_MAX];
	double timeout_s;   /* watchdog; 0: 60 s */
	int count_syscalls; /* members count their system calls (syscount.c) */
	int (*attach)(struct bench_group *g, int idx);	/* optional, before the barrier */
	int (*fn)(struct bench_group *g, int idx);	/* after the barrier */
	void (*detach)(struct bench_group *g, int idx); /* optional */
	struct bench_gctrl *c;
	void *arg; /* the scenario's */
	int idx;   /* in a member: its index */
};

struct bench_gctrl *bench_gctrl_new(uint64_t nsamples);
void bench_gctrl_free(struct bench_gctrl *c);
int bench_group_run(struct bench_group *g, char *why, size_t whylen);
int bench_gfail(struct bench_gctrl *c, int idx, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void bench_gbarrier(struct bench_gctrl *c, int b, uint32_t n);

/* reaper_run.c: the processes of a cleanup run (crash.c, evlat.c), each
 * word's owner there. @event gets a message of the receiver's from
 * SHMRPC_EVENT_FROM (a struct shmrpc_event of @len bytes, if that long). */
struct shmrpc_opts;
typedef void (*bench_event_fn)(struct bench_group *g, const void *m, int len);
int bench_receiver(struct bench_group *g, const char *name, const struct shmrpc_opts *o,
		   bench_event_fn event, bool err_stops);
pid_t bench_victim_start(struct bench_group *g, const char *domain, const char *to, int i);
int bench_killer_begin(struct bench_group *g, const char *domain, const char *cmd,
		       struct bench_regview **rv, pid_t *reaper);
int bench_killer_end(struct bench_group *g, struct bench_regview *rv, pid_t reaper, int err);

/* Group transports (tr_group.c): fan-in (nprod producers -> 1 consumer) and
 * broadcast (1 producer -> ncons consumers). Members [0, nprod) produce,
 * [nprod, nprod + ncons) consume. */
enum bench_topo { BENCH_FANIN = 1, BENCH_BCAST = 2 };

struct bench_gchan {
	const struct bench_gtr *t;
	enum bench_topo topo;
	int nprod, ncons;
	size_t msg_size, buf_bytes;
	int idx; /* member index in a member, -1 in the driver */
	void *priv;
	char why[120];
};

struct bench_gtr {
	const char *name, *what;
	unsigned topos;				       /* BENCH_FANIN | BENCH_BCAST it serves */
	int (*setup)(struct bench_gchan *g);	       /* driver, before fork */
	int (*attach)(struct bench_gchan *g, int idx); /* member */
	/* fan-in: to the consumer; broadcast: to every consumer. Blocks while
	 * full. Returns how many consumers got it, or -errno. */
	int (*send)(struct bench_gchan *g, const void *buf, size_t len);
	int (*recv)(struct bench_gchan *g, void *buf, size_t cap); /* length or -errno */
	void (*detach)(struct bench_gchan *g);
	void (*teardown)(struct bench_gchan *g);
	int (*counters)(struct bench_gchan *g, struct bench_libctr *out); /* optional */
};

extern const struct bench_gtr *const bench_gtransports[];
const struct bench_gtr *bench_gtransport_find(const char *name);

/* ---------------------------------------------------------------- results */

enum bench_status { BENCH_OK, BENCH_SKIPPED, BENCH_FAILED };

/* One-way latency summary, microseconds (RTT / 2). */
struct bench_lat {
	double min, mean, median, p90, p99, p999, max;
};

/* CPU use of one side. */
struct bench_cpu {
	double user_s, sys_s, wall_s;
	double cpu_per_s;  /* (user + sys) / wall */
	double us_per_msg; /* (user + sys) / messages of the window, us */
	uint64_t msgs;
	uint64_t preempt; /* involuntary context switches */
};

/* A named number of a result (scenarios beyond pingpong/stream/memcpy keep
 * their figures as metrics; the JSON lists them under "metrics"). NAN:
 * not measured. @key is a static string. */
struct bench_metric {
	const char *key;
	double v;
};
#define BENCH_MAX_METRICS 24

struct bench_result {
	const char *scenario;  /* "pingpong", "paced", "stream", "memcpy", "fanin", ... */
	const char *transport; /* a transport name, "cacheline", "memcpy", a mode */
	size_t size;
	enum bench_status status;
	char why[200]; /* skipped/failed: the reason */
	size_t buf_eff;
	/* pingpong, paced */
	uint64_t *rtt_ns; /* sorted round trips (owned), NULL otherwise */
	uint64_t n;
	struct bench_lat lat; /* also: other latency samples (has_lat) */
	int has_lat;
	/* pingpong of a spinning transport: the cache-line floor measured in
	 * blocks interleaved with the transport's, same processes and CPUs */
	int has_floor;
	struct bench_lat floor;
	double ratio_floor; /* median of per-block (transport / floor) medians */
	/* stream, memcpy */
	uint64_t msgs; /* in the measured window */
	double window_s;
	double msgs_per_s, gb_per_s;
	struct bench_cpu cpu[2];
	int nsides;	  /* 2, 1 for memcpy, 0 for scenarios without sides */
	double ratio;	  /* median (pingpong) or msgs/s (stream) over the
				  baseline's at the same size; NAN if none */
	double ratio_p99; /* pingpong: p99 over the baseline's p99 */
	/* paced: offered requests per second; memory, fanin, broadcast: nodes */
	double rate;
	unsigned nodes;
	const char *variant; /* memory: "ring"/"star"; crash: mode; NULL */
	struct bench_metric m[BENCH_MAX_METRICS];
	int nm;
};

struct bench_host {
	char kernel[128];
	char cpu_model[128];
	char clocksource[64];
	int cpus_online;
	double load_start; /* 1-minute load average when the run started */
	int side_cpu[2];
	double clock_read_ns; /* cost of one clock_gettime(CLOCK_MONOTONIC) */
	char date[32];	      /* UTC, ISO 8601 */
	double load_end;      /* 1-minute load average when the run ended */
	/* Disturbance over the whole run, from /proc/stat and getrusage: CPU
	 * time of all tasks that are not this program or its children, and
	 * time the hypervisor took the vCPUs away (steal). */
	double others_cpu_s, steal_s, own_cpu_s;
	double stat0[2]; /* at the start: non-idle, steal seconds */
	double own0;	 /* at the start: own CPU seconds */
};

/* One target of the issue, evaluated on the run's results (targets.c). */
struct bench_target {
	const char *id;	  /* "1a", "2-64B", ... */
	const char *what; /* the target, in words */
	const char *unit;
	double value; /* measured; NAN: not measured in this run */
	double limit;
	int at_most; /* 1: value <= limit is met; 0: value >= limit */
	int met;     /* 1 met, 0 missed, -1 not measured */
};
#define BENCH_MAX_TARGETS 40

struct bench_report {
	struct bench_host host;
	const struct bench_transport *const *transports; /* the pair transports, NULL-ended */
	struct bench_target t[BENCH_MAX_TARGETS];
	int nt;
	const struct bench_cfg *cfg;
	const char *baseline;
	int quick;
	double stream_s;  /* seconds measured per stream run */
	double elapsed_s; /* whole run, wall */
	struct bench_result *r;
	size_t nr;
};

/* opts.c: the command line */
struct bench_opts {
	int quick;
	const char *scenarios;	/* comma list, NULL: the standard set */
	const char *transports; /* comma list, NULL: each scenario's default */
	const char *baseline;
	const char *json, *plots;
	long long iters; /* 0: default */
	double duration; /* 0: default */
	int kills;	 /* crash: kills per mode (0: default) */
	int no_strace;	 /* syscalls: skip the strace cross-check */
	int list;	 /* --list: print the transports, run nothing */
};
void bench_usage(FILE *f);
int bench_opts_parse(int argc, char **argv, struct bench_opts *o);
/* Is @name in the comma-separated @list (NULL: everything is)? */
int bench_in_list(const char *list, const char *name);
/* Does this run include transport @name (left out of this scenario by
 * default when @not_in has a bit of @bits) in a scenario? */
int bench_want(const struct bench_opts *o, const char *name, unsigned not_in, unsigned bits);

/* results.c: the results of a run; runners append, reports read */
struct bench_results {
	struct bench_result *r;
	size_t n, cap;
};
struct bench_result *bench_result_new(struct bench_results *rs, const char *scen, const char *tr,
				      size_t size);
void bench_results_free(struct bench_results *rs);
void bench_metric_set(struct bench_result *r, const char *key, double v);
double bench_metric(const struct bench_result *r, const char *key); /* NAN if absent */
void bench_progress(const struct bench_result *r);

/* plan.c: the scenarios in order, the names, the starting configuration */
int bench_plan_check(const struct bench_opts *o);
void bench_plan_configure(const struct bench_opts *o, struct bench_cfg *cfg);
double bench_plan_stream_s(const struct bench_opts *o);
void bench_plan_run(struct bench_results *rs, const struct bench_opts *o,
		    const struct bench_cfg *cfg);
void bench_plan_list(FILE *f);

/* The runners, one per scenario (or family), called by the plan with a
 * copy of the configuration: run_pair.c, fanout.c, syscalls.c, idle.c,
 * connect.c, memory.c, crash.c, evlat.c. */
void bench_run_pingpong(struct bench_results *rs, const struct bench_opts *o,
			struct bench_cfg *cfg);
void bench_run_paced(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_stream(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_memcpy(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_fanin(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_broadcast(struct bench_results *rs, const struct bench_opts *o,
			 struct bench_cfg *cfg);
void bench_run_syscalls(struct bench_results *rs, const struct bench_opts *o,
			struct bench_cfg *cfg);
int bench_strace_child(int argc, char **argv);
void bench_run_idle(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_connect(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_memory(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_crash(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
void bench_run_events(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
/* rpc.c: request/response (issue 12); is @name one of its runs? */
void bench_run_rpc(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg);
int bench_rpc_known(const char *name);

/* rounds.c: one result from one run, or from several interleaved runs
 * (rounds), pooled */
enum bench_kind {
	BENCH_KIND_LATENCY, /* samples are round trips (pingpong, cacheline) */
	BENCH_KIND_PACED,   /* the same, at an offered rate */
	BENCH_KIND_STREAM,  /* messages in a window (stream, memcpy) */
};
struct bench_measure {
	const struct bench_transport *t; /* NULL: none (cacheline, memcpy) */
	bench_side_fn fn;		 /* both sides run it */
	enum bench_kind kind;
	uint64_t nsamples; /* room for samples per run */
};
struct bench_acc;
struct bench_acc *bench_acc_new(struct bench_results *rs, struct bench_result *r,
				const struct bench_measure *m, const struct bench_cfg *cfg);
void bench_acc_round(struct bench_acc *a);
void bench_acc_finish(struct bench_acc *a);
void bench_measure_once(struct bench_results *rs, struct bench_result *r,
			const struct bench_measure *m, const struct bench_cfg *cfg);

/* stats.c */
int bench_cmp_double(const void *a, const void *b); /* for qsort */
/* Summary of one-way samples in ns (not round trips): us, not halved. */
void bench_lat_summarise_ns(uint64_t *ns, uint64_t n, struct bench_lat *out);
void bench_lat_summarise(uint64_t *rtt_ns, uint64_t n, struct bench_lat *out);
double bench_quantile_us(const uint64_t *sorted_rtt_ns, uint64_t n, double q);
void bench_cpu_fill(struct bench_cpu *cpu, const struct bench_side_out *o);
void bench_ratios(struct bench_result *r, size_t nr, const char *baseline);

/* host.c */
void bench_host_probe(struct bench_host *h, const int side_cpu[2]);
void bench_host_finish(struct bench_host *h); /* load average at the end */
int bench_pick_cpus(int cpu[2]);

/* targets.c: the targets, evaluated on a report's results */
void bench_targets_eval(struct bench_report *rep);

/* report_table.c (the text report; calls report_more.c), report_more.c,
 * report_fmt.c, report_json.c, report_plot.c: they read the results */
void bench_print_table(const struct bench_report *rep);
void bench_print_paced(const struct bench_report *rep);
void bench_print_more(const struct bench_report *rep);
void bench_print_targets(const struct bench_report *rep);
const char *bench_fmt_size(char *buf, size_t len, size_t v);
const char *bench_fmt_us(char *b, size_t len, double v);
const char *bench_fmt_num(char *b, size_t len, const char *fmt, double v);
const char *bench_fmt_rate(char *b, size_t len, double v);
int bench_row_status(const struct bench_result *r, const char *size);
int bench_write_json(const struct bench_report *rep, const char *path);
int bench_write_plots(const struct bench_report *rep, const char *dir);

/* ---------------------------------------------------------------- helpers */

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spin-wait hint: tells the core (and an SMT sibling) that we are polling. */
static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__("yield" ::: "memory"); /* no outputs: never dropped */
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Sequence number stored at both ends of a message, so that a receiver can
 * check the whole message arrived (scenarios only use messages >= 8 B). */
void bench_msg_stamp(void *buf, size_t len, uint64_t seq);
uint64_t bench_msg_seq(const void *buf);
int bench_msg_check(const void *buf, size_t len, uint64_t seq);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_BENCH_H */
