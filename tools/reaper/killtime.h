/* SPDX-License-Identifier: MIT */
/*
 * Kill-to-cleaned delay: how long after a node's process is SIGKILLed its
 * registry slot is free and every file of it is gone, and how long a peer
 * blocked sending to it waits for -EPIPE. Used by tests/test_reaper.c (which
 * prints it) and meant for tools/shmrpc-bench (scenario 8). Two objects,
 * killtime.o and killtime_obs.o; they link the static libshmrpc (they read
 * the registry directly), no libbpf.
 *
 * Whoever cleans up is the caller's choice, made before shmrpc_kt_run:
 *	BPF reaper	run `shmrpc-reaper --mode bpf --domain D` (e.g. with
 *			shmrpc_kt_reaper_start) and set opts.peer_watch = false
 *	pidfd reaper	the same with --mode pidfd
 *	peers only	no reaper, opts.peer_watch = true (lib/watch.c)
 *	lazy		no reaper, opts.lazy_join = true: a join cleans up
 * With peer_watch false the nodes run with $SHMRPC_WATCH=0, so the reaper is
 * the only one to clean up; every node runs with a 60 s safety timeout
 * ($SHMRPC_SAFETY_MS), so no lazy re-check interferes either.
 *
 * What a round does: a peer "kt-p" and a sink "kt-s" live for the whole run;
 * a victim "kt-v" is forked, exchanges one message each way with kt-p (so
 * each holds a ring of the other), gets into its state, and after
 * settle_ms is SIGKILLed. clean_us runs from just before kill() to the
 * moment the caller, asleep on the registry's epoch futex, sees the slot
 * freed; it therefore includes one futex wake-up (~20-30 us on the project
 * VM, brief section 3), as any peer waiting for the news would. The reclaim
 * unlinks every file before it frees the slot; the round then checks none
 * is left.
 *
 * Functions return >= 0 or -errno, never touch errno on purpose, and are for
 * one thread at a time. They fork: call them from a process whose other
 * threads hold no locks you need in the children.
 */
#ifndef SHMRPC_KILLTIME_H
#define SHMRPC_KILLTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the victim is doing when it is killed. */
enum shmrpc_kt_state {
	SHMRPC_KT_IDLE = 0, /* outside the library (pause); kt-p blocked sending to it */
	SHMRPC_KT_RECV = 1, /* blocked in shmrpc_recv; kt-p idle */
	SHMRPC_KT_SEND = 2, /* blocked in shmrpc_send to kt-s (full); kt-p blocked sending to it */
	SHMRPC_KT_ROTATE = 3, /* round i uses state i % 3 */
};

struct shmrpc_kt_opts {
	size_t sz;	     /* sizeof(struct shmrpc_kt_opts) */
	const char *domain;  /* required; a domain of its own */
	int rounds;	     /* > 0 */
	int state;	     /* enum shmrpc_kt_state */
	bool peer_watch;     /* nodes watch their peers (the "peers only" mode) */
	int settle_ms;	     /* victim ready -> kill; 0: 20 (a reaper mirrors it) */
	int timeout_ms;	     /* per round, for the cleanup; 0: 5000 */
	const char *backend; /* the nodes' wake backend; NULL: default */
	/* After each kill, the caller joins a fresh node (leaving after the
	 * round): its join must clean up (use without a reaper and without
	 * peer_watch); clean_us then includes that join. */
	bool lazy_join;
};

struct shmrpc_kt_round {
	int state;	    /* enum shmrpc_kt_state used */
	pid_t pid;	    /* the victim */
	uint32_t slot, gen; /* its node id */
	double clean_us;    /* kill -> slot seen free, files gone */
	double epipe_us;    /* kill -> kt-p's blocked send returned -EPIPE; -1: kt-p was
				   not blocked (RECV: its next send was -EPIPE) */
};

struct shmrpc_kt_result {
	int rounds;
	double clean_median_us, clean_p99_us, clean_min_us, clean_max_us;
	double epipe_median_us, epipe_p99_us; /* over the rounds with a blocked kt-p */
};

/*
 * shmrpc_kt_run - measure opts->rounds kills.
 * @rounds: NULL, or opts->rounds entries to fill.
 * @res:    summary; NULL allowed.
 *
 * Return: 0; -EINVAL (bad opts); -ETIMEDOUT (a victim was not cleaned up
 * within timeout_ms: nobody does it); -EIO (a file of a victim outlived its
 * slot); -EPROTO (kt-p's send to a dead victim did not return -EPIPE, or a
 * helper failed: see stderr); other -errno of the set-up.
 */
int shmrpc_kt_run(const struct shmrpc_kt_opts *opts, struct shmrpc_kt_round *rounds,
		  struct shmrpc_kt_result *res);

/* The p-th percentile (0..100) of n values, nearest rank; sorts v. */
double shmrpc_kt_percentile(double *v, int n, double p);

/* ---- an observer's view of a domain, for tests ---- */

struct shmrpc_kt_obs;

struct shmrpc_kt_id {
	uint32_t slot, gen;
	int32_t pid;	     /* in the node's own pid namespace */
	uint64_t start_time; /* as the slot records it (/proc/PID/stat field 22) */
};

/* Map the registry of @domain (it must exist); -ENOENT otherwise. */
int shmrpc_kt_obs_open(struct shmrpc_kt_obs **out, const char *domain);
void shmrpc_kt_obs_close(struct shmrpc_kt_obs *o);
/* The live node @name: -ENOENT if none. */
int shmrpc_kt_obs_find(struct shmrpc_kt_obs *o, const char *name, struct shmrpc_kt_id *id);
/* 1 while slot id->slot holds id->gen (not FREE), else 0. */
int shmrpc_kt_obs_holds(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *id);
/*
 * Sleep on the registry's epoch until node @id no longer holds its slot.
 * *at_ns (may be NULL): CLOCK_MONOTONIC when that was seen.
 * Return: 0, or -ETIMEDOUT after timeout_ms.
 */
int shmrpc_kt_obs_wait_gone(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *id, int timeout_ms,
			    int64_t *at_ns);
/* Files of node @id left in /dev/shm: its segment and rings either way. */
int shmrpc_kt_obs_files(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *id);

/* Files of the domain (but the registry) that name a node other than the
 * @n nodes in @live, at either end of a ring: leftovers of dead nodes. */
int shmrpc_kt_obs_stale(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *live, int n);

/* Reclaim every dead node of the domain, as a joiner would, and remove the
 * registry if no node is left. The number reclaimed, or -errno. */
int shmrpc_kt_obs_sweep(struct shmrpc_kt_obs *o);

/* The registry's reaper fields (lib/layout.h), as shmrpc-top shows them. */
struct shmrpc_kt_reaper {
	uint32_t pid, mode; /* mode: 1 bpf, 2 pidfd, 0 none */
	uint64_t beat_s;    /* CLOCK_MONOTONIC seconds of its last beat */
	uint64_t reaped;    /* slots it freed */
};
void shmrpc_kt_obs_reaper(struct shmrpc_kt_obs *o, struct shmrpc_kt_reaper *out);

/* ---- running a reaper ---- */

/*
 * shmrpc_kt_reaper_start - fork and exec @bin (a shmrpc-reaper) with @argv
 * (NULL-terminated, without argv[0]), its stderr appended to @log (NULL:
 * inherited), and wait up to timeout_ms for its systemd READY=1.
 * Return: its pid; -ENOTSUP (it exited with status 3: the BPF probe cannot
 * be used here); -ECHILD (it exited otherwise); -ETIMEDOUT; -errno.
 */
pid_t shmrpc_kt_reaper_start(const char *bin, const char *const *argv, const char *log,
			     int timeout_ms);
/*
 * shmrpc_kt_reaper_stop - send @sig (SIGTERM: clean stop) and reap it.
 * Return: its wait(2) status, or -ETIMEDOUT (then it was SIGKILLed).
 */
int shmrpc_kt_reaper_stop(pid_t pid, int sig, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_KILLTIME_H */
