/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-reaper: frees the registry slot and unlinks the segments of every
 * node whose process dies, on every domain of the host, within a
 * millisecond (docs/reaper.md). Internal interface between its files:
 *
 *	main.c		start-up, the event loop, signals, systemd
 *	opts.c		the command line and its checks
 *	once.c		--once: one sweep of every domain, then exit
 *	discover.c	finding registries (scans, inotify), refusing planted files
 *	domain.c	following registries: epochs (io_uring FUTEX_WAIT),
 *			mirroring slots, status fields
 *	reclaim.c	liveness, reclaims, sweeps, retiring a registry
 *	procs.c		mirrored nodes and the processes that host them:
 *			watching, deaths, liveness re-checks, pid namespaces
 *	watch_bpf.c	deaths from the eBPF exit probe (tools/probe.h)
 *	watch_pidfd.c	deaths from pidfds, without BPF
 *	owner.c		acting as each domain's owner (setfsuid), and the
 *			bounds on what one owner's files may cost
 *	pidns.c		processes of other pid namespaces, a process's uid
 *	log.c		one line per event
 *
 * Single-threaded: everything runs in the event loop of main.c, so nothing
 * here takes a lock but the registries' own, and the fsuid owner.c sets
 * (per thread in Linux) is the whole reaper's. libbpf's ring buffer and
 * liburing start no threads.
 */
#ifndef SHMRPC_REAPER_H
#define SHMRPC_REAPER_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <liburing.h>

#include "inspect.h"
#include "layout.h"
#include "shmrpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* registry reaper_mode values (lib/layout.h): what shmrpc-top shows */
#define REAPER_MODE_BPF 1
#define REAPER_MODE_PIDFD 2

/* epoll data: kind in the top byte; a pidfd's carries the pid below */
enum {
	EV_SIGNAL = 1,
	EV_INOTIFY = 2,
	EV_URING = 3,
	EV_PROBE = 4,
	EV_PIDFD = 5,
};
#define EV_DATA(kind, low) (((uint64_t)(kind) << 56) | (uint32_t)(low))
#define EV_KIND(data) ((unsigned)((data) >> 56))
#define EV_LOW(data) ((uint32_t)(data))

struct reaper;
struct rdom;
struct rproc;

/* What the reaper saw of a node's file when it checked its lock. */
struct rfile {
	uid_t uid; /* its owner; (uid_t)-1: no file */
	dev_t dev;
	ino_t ino;
	int32_t lock_fd; /* the header's hint (lib/layout.h), -1 if none */
};

/* One mirrored node: a LIVE slot of a followed registry. */
struct rnode {
	struct rdom *dom;
	uint32_t slot, gen;
	pid_t pid;	     /* as its slot says: in the node's pid namespace */
	pid_t gpid;	     /* the same process in ours; 0: not visible */
	uint64_t pidns;	     /* the slot's pid namespace inode */
	uint64_t start_time; /* /proc/PID/stat field 22, from the slot */
	bool polled;	     /* lock-polled, counted in its owner's npolled */
	struct rfile file;   /* its node file, as first seen alive */
	bool held;	     /* its process held that file when watched (BPF) */
	char name[SHMRPC_NAME_MAX + 1];
	struct rproc *proc;	 /* the watched process; NULL: lock-polled */
	struct rnode *proc_next; /* the other nodes of that process */
	int64_t check_ns;	 /* next liveness-lock check; 0: none due */
};

/* How a death was learned, for the log line. */
struct exit_info {
	const char *via;      /* "bpf", "pidfd", "check", "reconcile" */
	int status;	      /* wait(2) status; -1: unknown */
	int64_t exit_ns;      /* CLOCK_MONOTONIC of the exit; 0: unknown */
	int64_t seen_ns;      /* CLOCK_MONOTONIC when the reaper learned it */
	uint64_t start_ticks; /* the dead process's start time; 0: unknown */
};

/* One watched process: its nodes die with it. */
struct rproc {
	pid_t gpid;
	int pidfd;	     /* in the epoll set (EV_PIDFD), or -1 */
	bool exiting;	     /* the probe saw it exit; waiting for its pidfd */
	struct exit_info ei; /* what the probe said, while exiting */
	struct rnode *nodes;
	struct rowner *owner; /* charged for it (OWNER_PROCS) */
	struct rproc *next;   /* hash chain */
};

/* Caps per owner (owner.c); root's domains are exempt from OWNER_DOMS. */
#define OWNER_DOMS 256	  /* domains followed */
#define OWNER_PENDING 256 /* registries waiting (unpublished, or no budget yet) */
#define OWNER_PROCS 8192  /* processes watched (the BPF map holds 65536) */
#define OWNER_POLLED 64	  /* lock-polled nodes per poll period; more stretch it */
#define OWNER_SWEEP 65536 /* liveness checks per reconcile pass */
/* Work per owner per loop turn, a few hundred microseconds of it here (a
 * death that comes meanwhile waits for the turn to end): a slot read costs
 * 1 unit (~50 ns), a liveness check 16 (an open, a lock query, as the
 * owner: ~5 us), a mirror or a sweep step 128 (two checks, maybe a
 * reclaim: ~30 us). */
#define OWNER_TURN_UNITS 1024
#define UNITS_CHECK 16
#define UNITS_MIRROR 128
/* A sync's fixed cost: the wake-up that asked for it and the re-arm of its
 * epoch wait (~20 us here), whatever the slots cost. */
#define UNITS_SYNC 64
/* A retire check: the registry lock, a count of its slots; the read of
 * /dev/shm for locked node files it may need is charged after it. */
#define UNITS_RETIRE 256
/* Work per owner per second, once started (a turn's budget alone would let
 * one owner keep the loop turning every millisecond: a user bumping his
 * epoch held the reaper at 20-45% of a core). About 5% of a core here.
 * What does not fit waits for the next second, and an epoch whose sync
 * waits is not re-armed meanwhile, so its owner's bumps wake nobody. The
 * reaper's own uid (root's domains, or a user's own reaper) is exempt. */
#define OWNER_SEC_UNITS (160 * 1024)
/* Log lines per owner per second (the reaper's own uid exempt); the rest
 * are counted and told in one line: one user must not drown the others'
 * lines in journald's rate limit (10000 lines in 30 s per service). */
#define OWNER_LOG_LINES 40

enum owner_cap {
	OWNER_CAP_DOMS,
	OWNER_CAP_PENDING,
	OWNER_CAP_PROCS,
	OWNER_CAP_WORK,
	OWNER_CAP_POLLED,
	OWNER_CAP_LOCK,
	OWNER_CAP_SWEEP,
	OWNER_CAP_SECOND,
	OWNER_CAP_KINDS
};

/* One owner (uid) of registries we follow. */
struct rowner {
	uid_t uid;
	uint32_t ndoms, npending, nprocs, npolled;
	uint32_t sweep_checks;		 /* in the current reconcile pass */
	int units;			 /* work left in this turn */
	bool starved;			 /* ran out in this turn */
	bool metered;			 /* not the reaper's own uid: per-second bounds */
	int64_t sec_ns;			 /* start of its current second of work */
	int64_t sec_units;		 /* work left in it (charges may overdraw it) */
	int64_t log_ns;			 /* start of its current second of log lines */
	uint32_t log_lines;		 /* lines logged in it */
	uint32_t log_dropped;		 /* lines left out in it */
	int64_t lock_retry_ns;		 /* a registry lock was held: no waits before this */
	int64_t lock_backoff_ns;	 /* doubling while locks stay held */
	int64_t cap_ns[OWNER_CAP_KINDS]; /* last log line of each cap */
	struct rowner *next;
};

/* One followed registry, i.e. one domain (two while one is being replaced). */
struct rdom {
	struct shmrpc_insp_reg reg;
	uint64_t id; /* io_uring user_data; never reused */
	dev_t dev;
	ino_t ino; /* identity of the registry file */
	uid_t uid; /* its owner: we act as this user on its files */
	gid_t gid; /* its group */
	struct rowner *owner;
	uint32_t sync_pos; /* a sync cut short by the budget resumes here */
	bool syncing;	   /* a sync is under way (sync_pos valid) */
	struct shmrpc_insp_scan sync_sc;
	bool sweeping; /* a reconcile sweep is under way */
	uint32_t sweep_pos;
	struct shmrpc_insp_scan sweep_sc;
	struct rretry *retry; /* reclaims that met a held registry lock */
	uint32_t epoch_seen;  /* epoch when slots[] was last synced */
	bool armed;	      /* a FUTEX_WAIT on the epoch is in flight */
	bool dirty;	      /* sync slots[] with the registry soon */
	bool gone;	      /* unlinked or closed: drop once nothing is mirrored */
	uint32_t mirrored;    /* non-NULL entries of slots[] */
	struct rnode **slots; /* [reg.capacity] */
	int empty_passes;     /* reconcile passes in a row that found it empty */
	bool retire_due;      /* a retire check waits for its owner's budget */
	struct rdom *next;
};

/* A registry not published yet, and its owner. */
struct rpending {
	char name[SHMRPC_NAME_MAX + 1];
	uid_t uid;
};

/* A reclaim to try again: the registry lock was held too long. */
struct rretry {
	uint32_t slot, gen;
	bool exited;
	struct exit_info ei;
	struct rretry *next;
};

/* A source of deaths: the eBPF probe or pidfds. */
struct reaper_watcher {
	const char *name; /* "bpf", "pidfd" */
	uint32_t mode;	  /* REAPER_MODE_* */
	/* Watch p->gpid. 0; -ESRCH when it is already gone (no death will be
	 * reported); another -errno when it cannot be watched. */
	int (*add)(struct reaper *r, struct rproc *p, uint64_t cookie);
	void (*del)(struct reaper *r, struct rproc *p);
	/* An epoll event of kind EV_PROBE (EV_PIDFD goes to procs_pidfd). */
	void (*event)(struct reaper *r, uint64_t data);
	/* Once the first mirror of every domain is done (start-up). */
	void (*started)(struct reaper *r);
	/* Every heartbeat. */
	void (*tick)(struct reaper *r);
	void (*close)(struct reaper *r);
};

extern const struct reaper_watcher reaper_watch_bpf;
extern const struct reaper_watcher reaper_watch_pidfd;

/* Set r->w up (after r->epfd exists). 0, with a description of what was
 * opened in @why; or -errno, with the reason in @why. The BPF one fails
 * with -EBUSY when another reaper consumes the same pinned probe. */
int reaper_bpf_open(struct reaper *r, char *why, size_t len);
int reaper_pidfd_open(struct reaper *r, char *why, size_t len);

struct reaper_opts {
	const char *mode;    /* "auto", "bpf", "pidfd" */
	int route;	     /* enum shmrpc_probe_route */
	const char *pin_dir; /* bpffs directory, or NULL: pin nothing */
	const char *btf_path;
	const char *shm_dir;  /* "/dev/shm" */
	const char **domains; /* only these; NULL: every domain */
	int ndomains;
	bool verbose;
	int beat_ms;	  /* status fields and watcher tick */
	int reconcile_ms; /* full sweep of every registry */
	int poll_ms;	  /* lock checks of nodes we cannot watch */
	int recheck_ms;	  /* second lock check after a BPF watch */
	bool once;	  /* --once: one sweep of every domain, then exit (once.c) */
	bool pin_given;	  /* pin_dir comes from --pin-dir */
	/* The first option that asked for the probe ("--probe tracepoint"):
	 * it must work as asked; "" if every choice was the default's. */
	char asked[PATH_MAX + 16];
	char **argv;
};

/* ------------------------------------------------------------ opts.c */
/* Parse the command line into @o: 0 run, 1 done (--help or --version
 * printed), -1 bad usage (one line naming it printed on stderr). */
int reaper_opts_parse(int argc, char **argv, struct reaper_opts *o);
/* Is pin directory @dir (or, if it is not a directory yet, where it would
 * be made) on bpffs? 0, or -errno with the reason in @why. */
int reaper_pin_dir_check(const char *dir, char *why, size_t len);

struct reaper {
	struct reaper_opts o;
	bool privileged; /* root: acts as each domain's owner (owner.c) */
	struct rowner *owners;
	bool deferred;	 /* work left for a later turn (budgets, held locks) */
	bool metered;	 /* per-second budgets apply (after start-up; not --once) */
	int64_t wake_ns; /* deferred work is due then (a second's budget, a lock
			  * backoff), if not sooner; 0: none */
	uint64_t sigbus; /* mapped pages that vanished (a file shrank): patched */
	const struct reaper_watcher *w;
	void *wpriv; /* the watcher's state */
	int epfd, sigfd, infd;
	struct io_uring ring;
	bool uring; /* epochs wait in ring; else polled */
	bool stop;
	bool reconcile_now;
	struct rdom *doms;
	uint64_t next_dom_id;
	struct rproc **procs; /* hash of watched processes by gpid */
	uint32_t proc_buckets, nprocs;
	uint32_t nchecks; /* nodes with check_ns set */
	uint64_t mypidns; /* inode of our pid namespace */
	uint64_t reaped;  /* slots freed since start */
	uint64_t retired; /* registries retired since start */
	ino_t *ignored;	  /* registries we cannot or will not follow: a hash set */
	uint32_t nignored, cap_ignored;
	void *disc;		  /* DIR of a discovery under way */
	struct rpending *pending; /* registries not published yet */
	uint32_t npending;
	int64_t pending_ns; /* next look at them */
};

/* ------------------------------------------------------------ log.c */
void rlog_init(const char *prog);
/* One line: "<UTC time> shmrpc-reaper[pid]: <fmt>". */
void rlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, only with -v. */
void rlogv(const struct reaper *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line about owner @o's files (rlogov: with -v only), within its log
 * budget (OWNER_LOG_LINES a second; owner.c). @o NULL: no budget. */
void rlogo(struct reaper *r, struct rowner *o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void rlogov(struct reaper *r, struct rowner *o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void rlog_va(const char *fmt, va_list ap);
/* "SIGKILL", "SIGSEGV+core", "0".."255", or "-" for -1. */
const char *rlog_status(int status, char *buf, size_t len);
int64_t rnow_ns(void);

/* ------------------------------------------------------------ owner.c */
int owner_init(struct reaper *r);
void owner_fini(struct reaper *r);
struct rowner *owner_get(struct reaper *r, uid_t uid);
/* Act as @uid/@gid (fsuid, fsgid, lib/seg.c's actor) for domain @d (NULL:
 * a registry not followed yet). 0, or -EPERM (then we are root again). */
int owner_enter(struct reaper *r, uid_t uid, gid_t gid, const struct rdom *d);
/* Back to root's own identity. */
void owner_leave(struct reaper *r);
/* Take @units of @o's budget for this turn (and second); false when they
 * are not there: do the rest in a later turn (r->deferred) or second
 * (r->wake_ns). @o NULL: free. */
bool owner_spend(struct reaper *r, struct rowner *o, int units);
/* Take @units of @o's budgets for work already done (may overdraw them). */
void owner_charge(struct reaper *r, struct rowner *o, int units);
/* @o has work left: in the next turn (r->deferred), or, when its second's
 * work is spent, once it is refilled (r->wake_ns). */
void owner_defer(struct reaper *r, struct rowner *o);
/* When @o may work again: 0 now, else the CLOCK_MONOTONIC ns. */
int64_t owner_ready_ns(const struct reaper *r, const struct rowner *o);
/* A new loop turn: turn budgets back to full, seconds refilled when due. */
void owner_turn(struct reaper *r);
/* Every heartbeat: say how many lines each owner's budget left out. */
void owner_beat(struct reaper *r);
/* May a line about @o be logged now? Counts it, or counts it left out. */
bool owner_log_ok(struct reaper *r, struct rowner *o);
/* The owner the reaper acts for now (owner_enter), or NULL. */
struct rowner *owner_current(struct reaper *r);
/* Log that @o hit cap @kind (at most once per 10 s per cap). */
void owner_cap(struct reaper *r, struct rowner *o, enum owner_cap kind, const char *what);

/* ------------------------------------------------------------ domain.c */
int dom_init(struct reaper *r);
void dom_fini(struct reaper *r);
/* ------------------------------------------------------------ discover.c */
/* Follow every registry in shm_dir not followed yet (start-up, reconcile):
 * starts a scan of shm_dir that dom_discover_step goes on with. */
void dom_discover(struct reaper *r);
/* A bounded part of the scan; true while there is more. */
bool dom_discover_step(struct reaper *r);
/* Look at pending registries again, when due. */
void dom_pending(struct reaper *r);
void dom_inotify(struct reaper *r);
void dom_discover_fini(struct reaper *r);
/* The pieces of a discovery, for once.c. "shmrpc.<domain>.reg" -> domain
 * in @out (SHMRPC_NAME_MAX + 1): 0, or -EINVAL for other names. */
int dom_reg_name(const char *ent, char *out);
/* Is @domain one of --domain's (or is there no --domain)? */
bool dom_wanted(const struct reaper *r, const char *domain);
void dom_reg_path(const struct reaper *r, char *buf, size_t len, const char *domain);
/* lstat of registry name @path: a regular file with one name (0), else
 * -EPROTO (logged once) or -errno. */
int dom_look(struct reaper *r, const char *path, const char *domain, struct stat *st);
/* Published yet? 1, 0 not yet, -errno; as the owner, never blocking. */
int dom_ready(struct reaper *r, const char *path, const struct stat *st);
/* Open registry @domain, seen as @st, as its owner into a new rdom. */
int dom_open(struct reaper *r, const char *domain, const struct stat *st, struct rowner *o,
	     struct rdom **out);
/* domain.c, for discover.c */
struct rdom *dom_by_ino(struct reaper *r, dev_t dev, ino_t ino);
void dom_follow(struct reaper *r, struct rdom *d);
/* Completions of epoch waits (uring), or a look at every epoch (polled). */
void dom_epochs(struct reaper *r);
/* Sync every dirty domain, go on with sweeps and discovery, retry held
 * reclaims; drop the gone ones; retry pending registries. Bounded by the
 * owners' budgets (r->deferred: more to do). */
void dom_work(struct reaper *r);
/* ------------------------------------------------------------ reclaim.c */
/* A step of @d's reconcile sweep, within its owner's budget. */
void dom_sweep(struct reaper *r, struct rdom *d);
/* Retire @d if no slot has been in use for two reconcile passes. */
void dom_retire_empty(struct reaper *r, struct rdom *d);
/* Reclaims of @d that met a held lock, once their owner's backoff ends. */
void dom_retries(struct reaper *r, struct rdom *d);

/* Syncs, sweeps or a discovery under way (start-up runs them to the end). */
bool dom_busy(const struct reaper *r);
/* Liveness of node (slot, gen) of @d, checked as @d's owner: 1, 0, -errno
 * (the library's, shmrpc_insp_node_alive). *f, if not NULL, gets what was
 * seen of the node file. */
int dom_node_alive(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen, struct rfile *f);
/* Sweep every registry: reclaim every node that is gone. */
void dom_reconcile(struct reaper *r);
/* How long the loop may sleep for domain work (pending registries, polled
 * epochs); -1: no limit. */
int dom_timeout_ms(const struct reaper *r);
/* Status fields of every followed registry. */
void dom_beat(struct reaper *r, bool stopping);
/*
 * Reclaim node (slot, gen) of @d if it is gone, logging it; retire the
 * registry if it was the last node. @exited: its process is known to have
 * exited (shmrpc__reclaim_exited), else its liveness lock decides. 1 if
 * freed, 0 if not (alive, or its slot changed), -errno if the registry lock
 * failed.
 */
int dom_reclaim(struct reaper *r, struct rdom *d, uint32_t slot, uint32_t gen,
		const struct exit_info *ei, bool exited);
/* The registry of cookie's domain, or NULL. */
struct rdom *dom_by_nonce16(struct reaper *r, uint32_t nonce16, struct rdom *after);
uint64_t dom_cookie(const struct rdom *d, uint32_t slot, uint32_t gen);

/* ------------------------------------------------------------ once.c */
/* --once: sweep every wanted registry once (reclaim dead nodes, retire
 * empty registries), log a summary line; the exit status: 0 everything
 * swept, 1 something was left (a lock held, an error, a cap). */
int reaper_once(struct reaper *r);

/* ------------------------------------------------------------ procs.c */
int procs_init(struct reaper *r);
void procs_fini(struct reaper *r);
/* Free every watched process without unwatching it (shutdown). */
void procs_forget_all(struct reaper *r);
/* Mirror the LIVE slot @slot (view @v) of @d: watch its process. */
void node_mirror(struct reaper *r, struct rdom *d, uint32_t slot, const struct shmrpc_insp_slot *v);
/* Stop mirroring @n and free it (it left, or its slot changed). */
void node_unmirror(struct reaper *r, struct rnode *n, const char *why);
/* The probe says process gpid has exited (it may still hold its files). */
void procs_exited(struct reaper *r, pid_t gpid, uint64_t cookie, const struct exit_info *ei);
/* The pidfd of gpid (EV_PIDFD) is readable: it has exited, files released. */
void procs_pidfd(struct reaper *r, pid_t gpid);
/* Open a pidfd of p->gpid into the epoll set: 0, -ESRCH (gone), -errno. */
int proc_pidfd_open(struct reaper *r, struct rproc *p);
/* Lock checks that are due; returns ms until the next one, or -1. */
int procs_checks(struct reaper *r);
struct rproc *proc_find(struct reaper *r, pid_t gpid);
/* Is gpid a watched process? (start-up pruning of the BPF map) */
bool procs_has(struct reaper *r, pid_t gpid);

/* ------------------------------------------------------------ pidns.c */
/* Our pid of the process that is @nspid in pid namespace @ns (and started
 * at @start, if not 0), or 0 when none is visible. */
pid_t pidns_gpid(struct reaper *r, pid_t nspid, uint64_t ns, uint64_t start);
/* Is process @gpid running as @uid (its euid or fsuid)? */
bool proc_uid_is(pid_t gpid, uid_t uid);
void pidns_fini(void);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_REAPER_H */
