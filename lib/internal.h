/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared between the library's files (shmrpc__*). Nothing here
 * is exported from the shared library; in-tree tools link the static one.
 *
 * Who owns what, inside one process:
 *  - struct shmrpc_node: created by shmrpc_open, freed by shmrpc_close;
 *  - outbound connections (conn.c): any sending thread, table under conn_lock,
 *    each connection's ring under its own mutex;
 *  - inbound rings (inbound.c): the one receiving thread; add/remove also
 *    take in_lock so that shmrpc_stats can read them from any thread.
 */
#ifndef SHMRPC_INTERNAL_H
#define SHMRPC_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "shmrpc.h"
#include "error.h"
#include "layout.h"

#define SHMRPC__SHM_DIR "/dev/shm" /* where shm_open names live (glibc) */
/* "/shmrpc." + domain + ".ring." + 16 hex digits, with room to spare */
#define SHMRPC__PATH_MAX 160

/* Every sleep ends after this long at most; the sleeper then re-checks its
 * words and its peers' liveness (a lost wake can delay, never hang). */
#define SHMRPC__SAFETY_NS (500 * 1000 * 1000ll)
/* Default bound of a receiver's adaptive spin before it sleeps. */
#define SHMRPC__SPIN_US_DEFAULT 20

#define SHMRPC__NEVER INT64_MAX
/*
 * A ring's prev_gen link (conn.c), if it is one to follow: gen + 1 of an
 * OLDER holder of the sender's slot, whose gen is smaller. Links only go
 * back in time, so walking a chain ends without a count limit, even on a
 * hostile one; in practice at the first ring that no longer exists. (A
 * fixed limit lost every ring beyond it: a slow receiver and a sender that
 * joins, sends and leaves again and again make chains of any length.)
 */
static inline uint32_t shmrpc__prev_link(uint32_t prev, uint32_t gen)
{
	return prev && prev - 1 < gen ? prev : 0;
}

/*
 * Public functions promise never to touch errno; the system calls beneath
 * them do. This restores it when the function's scope ends.
 */
static inline void shmrpc__errno_restore(const int *saved)
{
	extern int *__errno_location(void);
	*__errno_location() = *saved;
}
#define SHMRPC__KEEP_ERRNO \
	int shmrpc__saved_errno __attribute__((cleanup(shmrpc__errno_restore))) = errno

/*
 * Add to a counter in shared memory that has one writer at a time: a
 * ring's producer counters (the connection mutex orders successive
 * writers), its consumer counters and a node's spins (the receiving
 * thread). Relaxed load + store, no locked instruction: readers
 * (shmrpc_stats, shmrpc-top) only need each word whole.
 */
static inline void shmrpc__ctr_inc(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* ------------------------------------------------------------ names.c */
int shmrpc__name_check(const char *name);
int shmrpc__name_check_field(const char *field, size_t size);
struct shmrpc__reg;
void shmrpc__reg_path(char *buf, const char *domain);
/* The names of node (slot, gen) and of the ring (tx) -> (rx) of registry
 * @r: keyed hashes of the ids under its name key (names.c says why). The
 * _key forms, for observers that read a registry without opening it. */
void shmrpc__node_path(char *buf, const struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
void shmrpc__ring_path(char *buf, const struct shmrpc__reg *r, uint32_t tx_slot, uint32_t tx_gen,
		       uint32_t rx_slot, uint32_t rx_gen);
void shmrpc__node_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t slot,
			   uint32_t gen);
void shmrpc__ring_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen);
/* Observers (tools, tests): the ids of /dev/shm entry @ent of registry @r,
 * read from its header and checked against its name: 1 node (ids[0..1]),
 * 2 ring (ids[0..3]), 0 not a node or ring name of @r's domain, -EPROTO
 * not what its name says, -errno. */
int shmrpc__file_ids(const struct shmrpc__reg *r, const char *ent, uint32_t ids[4]);

/* ------------------------------------------------------------ time.c */
int64_t shmrpc__now_ns(void);
/* Absolute CLOCK_MONOTONIC deadline of a timeout_ms argument: SHMRPC__NEVER
 * for -1, now for 0; -EINVAL for < -1 is the caller's check. */
int64_t shmrpc__deadline(int timeout_ms);
/*
 * A call's timeout, its deadline read from the clock only when the call
 * first has to wait: the fast paths (a message waiting, room in the ring)
 * never pay for clock_gettime. The timeout counts from that first wait.
 */
struct shmrpc__tmo {
	int ms;
	bool set;
	int64_t deadline;
};
#define SHMRPC__TMO(timeout_ms) ((struct shmrpc__tmo){ .ms = (timeout_ms) })
int64_t shmrpc__tmo_deadline(struct shmrpc__tmo *t);
/* -EAGAIN for a non-blocking call, -ETIMEDOUT for a timed one. */
int shmrpc__timeout_err(int timeout_ms);
void shmrpc__ts_from_ns(struct timespec *ts, int64_t ns);
/* Min of deadline and now + the node's safety timeout. */
int64_t shmrpc__sleep_until(const struct shmrpc_node *n, int64_t deadline);
int64_t shmrpc__safety_ns(void);

/* ------------------------------------------------------------ seg.c */
/* Create a segment (O_EXCL), size it with every page reserved, map it
 * read-write. The file keeps mode exactly (umask ignored). On success
 * *fd_out (if not NULL) gets the open descriptor, else it is closed. On
 * failure the file is gone: -ENOSPC (/dev/shm full), -ENOMEM, -EFBIG
 * (RLIMIT_FSIZE), -EEXIST, -errno. */
int shmrpc__seg_create(const char *path, uint64_t size, uint32_t mode, void **map, int *fd_out);
/* Why a segment creation failed, in words ("/dev/shm is full"). */
const char *shmrpc__seg_why(int err);
/* Record "<what> (<size>): <why>" for shmrpc_last_error; returns err. */
int shmrpc__seg_err(int err, uint64_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Open @path (O_RDONLY or O_RDWR in @flags) without following a symlink or
 * blocking on a FIFO, and check the descriptor: a regular file with at most
 * one link, whose owner is acceptable (this euid or root, or a group member
 * when @mode grants group access; the actor's identity instead when one is
 * set). Returns the descriptor, *st_out (if not NULL) its fstat; -ENOENT,
 * -EPROTO (symlink, FIFO, device, directory, hard link), -EPERM (owner),
 * -EACCES, -errno, with shmrpc_last_error text naming the file.
 */
int shmrpc__seg_open_fd(const char *path, int flags, uint32_t mode, struct stat *st_out);
/* The same, then map it, after checking that its size is within [min, max]
 * (-EAGAIN for an empty file: being created). */
int shmrpc__seg_open(const char *path, uint64_t min, uint64_t max, uint32_t mode, bool rdonly,
		     void **map, uint64_t *size, int *fd_out);
/*
 * shmrpc-reaper only: the identity this thread acts as (seg.c). While @on,
 * segments are accepted as if this process were @uid with group @gid, and
 * shmrpc__seg_unlink unlinks only files of @uid (after an lstat); a file of
 * another owner goes to @unlink_other, or is left. NULL: back to our own.
 */
struct shmrpc__seg_actor {
	bool on;
	uid_t uid;
	gid_t gid;
	int (*unlink_other)(const char *path, const struct stat *st);
};
void shmrpc__seg_act_as(const struct shmrpc__seg_actor *a);
/* -EEXIST, with shmrpc_last_error text naming the @what file at @path that
 * we could not create and its owner. */
int shmrpc__seg_taken(const char *path, const char *what);
void shmrpc__seg_unmap(void *map, uint64_t size);
int shmrpc__seg_unlink(const char *path);
/* Liveness lock: the owner of a node segment holds an OFD write lock on
 * its first byte for its whole life; the kernel drops it when the process
 * dies, whatever its pid namespace. */
/* Take the liveness lock of the segment at @path on a new open file
 * description (never the one it is mapped through: see seg.c), after
 * checking that @path is still the file open as @same_as. *fd_out holds it. */
int shmrpc__seg_lock_new(const char *path, int same_as, int *fd_out);
/* 1 if somebody holds the lock, 0 if nobody does, -errno. */
int shmrpc__seg_locked(int fd);

/* ------------------------------------------------------------ proc.c */
struct shmrpc__proc {
	pid_t pid;
	uint32_t uid;
	uint64_t start_time; /* clock ticks after boot, /proc/PID/stat field 22 */
	uint64_t pidns;	     /* inode of /proc/self/ns/pid */
};
int shmrpc__proc_self(struct shmrpc__proc *p);
int shmrpc__proc_start_time(pid_t pid, uint64_t *start);

/* ------------------------------------------------------------ futex.c */
int shmrpc__futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t deadline_ns);
int shmrpc__futex_wake(_Atomic uint32_t *w);

/* ------------------------------------------------------------ registry.c */
struct shmrpc__reg {
	struct shmrpc__reg_hdr *hdr;
	struct shmrpc__slot *slots;
	int fd; /* holds the OFD join/leave lock */
	/* the OFD lock is per open file: threads of this process queue here */
	pthread_mutex_t local;
	uint64_t size;
	uint32_t capacity;
	uint32_t nonce;
	uint32_t mode;
	/* copied at open: a member rewriting the header's key later cannot
	 * change the names this process uses */
	uint8_t key[SHMRPC__KEY_BYTES];
	char domain[SHMRPC_NAME_MAX + 1];
	/* the process's cache of open registries (shmrpc__reg_get), under
	 * its lock: refs counts the holders, and the cache while cached */
	struct shmrpc__reg *cache_next;
	uint32_t refs;
	bool cached;
};

/* A consistent copy of one slot. */
struct shmrpc__slot_view {
	uint32_t state, gen;
	int32_t pid;
	uint32_t uid, ring_bytes, backend;
	uint64_t start_time, pidns, join_ns;
	char name[SHMRPC_NAME_MAX + 1];
};

/* What a joining node records about itself. */
struct shmrpc__join {
	const char *name;
	struct shmrpc__proc proc;
	uint32_t ring_bytes;
	uint32_t backend;
};

int shmrpc__reg_open(struct shmrpc__reg *r, const char *domain, uint32_t capacity, uint32_t mode,
		     bool create);
void shmrpc__reg_close(struct shmrpc__reg *r);
/*
 * The process's open registry of @domain, opened (or created) if it has
 * none or the one it has was retired: nodes of one process share one
 * mapping and one lock descriptor. Referenced; shmrpc__reg_put drops it.
 */
int shmrpc__reg_get(const char *domain, uint32_t capacity, uint32_t mode, struct shmrpc__reg **out);
void shmrpc__reg_put(struct shmrpc__reg *r);
void shmrpc__reg_fork_prepare(void);
void shmrpc__reg_fork_parent(void);
void shmrpc__reg_fork_child(void);
/* Open registry @domain once, without waiting or repairing anything: 0,
 * -ENOENT, -EAGAIN (not published yet), -errno. For shmrpc-reaper. */
int shmrpc__reg_open_nowait(struct shmrpc__reg *r, const char *domain, uint32_t mode);
int shmrpc__reg_lock(struct shmrpc__reg *r);
/* The lock, giving up with -ETIMEDOUT after @timeout_ns (registry.c). */
int shmrpc__reg_lock_for(struct shmrpc__reg *r, int64_t timeout_ns);
void shmrpc__reg_unlock(struct shmrpc__reg *r);
/* Seqlock read of slot @i; -EAGAIN if it changed under us (retry), -EPROTO
 * if its name is garbage. */
int shmrpc__reg_read(const struct shmrpc__reg *r, uint32_t i, struct shmrpc__slot_view *v);
uint32_t shmrpc__reg_hi(const struct shmrpc__reg *r);
/* Data extents of the registry file (registry.c): scans read only slots
 * in them. Start with { 0, 0 }. */
struct shmrpc__reg_scan {
	off_t data, hole;
};
uint32_t shmrpc__reg_scan_next(const struct shmrpc__reg *r, struct shmrpc__reg_scan *sc,
			       uint32_t i);
/* 1 + the last slot in a data extent (0: none). */
uint32_t shmrpc__reg_scan_end(const struct shmrpc__reg *r);
/* Find the LIVE slot named @name; -ENOENT. No liveness check. */
int shmrpc__reg_find(const struct shmrpc__reg *r, const char *name, uint32_t *slot,
		     struct shmrpc__slot_view *v);
/* Under the lock: take a slot for @j (JOINING); reclaims stale slots.
 * Returns the slot index; -EEXIST, -ENOSPC. */
int shmrpc__reg_take(struct shmrpc__reg *r, const struct shmrpc__join *j, uint32_t *gen);
/* Under the lock: JOINING -> LIVE, or JOINING/LIVE -> FREE. */
void shmrpc__reg_publish(struct shmrpc__reg *r, uint32_t slot);
void shmrpc__reg_free(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
void shmrpc__reg_bump(struct shmrpc__reg *r);
/* Under the lock: count the slots in use (not FREE), store the count in
 * hdr->live (a hint for readers: peers can write it) and return it. */
uint32_t shmrpc__reg_recount(struct shmrpc__reg *r);
/* Under the lock: mark the registry closed and unlink its name, if the
 * name still names this registry's file. */
void shmrpc__reg_retire(struct shmrpc__reg *r);
/* Under the lock, for the joiner of JOINING slot @slot: move it to the next
 * generation (*gen updated), when the node file of *gen cannot be made. */
int shmrpc__reg_regen(struct shmrpc__reg *r, uint32_t slot, uint32_t *gen);
/* Was @r retired? Its `closed` is believed only if the registry's name no
 * longer names @r's file; with @locked (the lock held), a lie is logged
 * and cleared. */
bool shmrpc__reg_retired(struct shmrpc__reg *r, bool locked);

/* ------------------------------------------------------------ reclaim.c */
/*
 * Liveness of the node in slot @slot, gen @gen: 1 alive, 0 gone (process
 * dead, segment missing or never completed), -errno when it cannot be told.
 */
int shmrpc__node_alive(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/* Map node (slot, gen)'s segment read-write at exactly its size and check
 * the header fields we index by (magic, ids, capacity, table offsets):
 * 0, -ENOENT, -EPROTO (wrong size or fields), -errno. @fd_out, if not
 * NULL, gets the descriptor (the caller closes it). */
int shmrpc__node_map(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen,
		     struct shmrpc__node_hdr **out, uint64_t *size, int *fd_out);
/*
 * Under the registry lock: free slot @slot if it still holds generation
 * @gen, after closing and unlinking every ring of that node (peers blocked
 * on them wake with -EPIPE) and its node segment. Returns 1 if it freed
 * the slot, 0 if the slot had changed meanwhile.
 */
int shmrpc__reclaim(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/*
 * The same without the liveness check, for a caller that knows the node's
 * process has exited though its lock may still be held: shmrpc-reaper, on an
 * exit event of the eBPF probe whose tgid and start time match the slot's
 * (see reclaim.c). Never on a guess: a live node would be torn down.
 */
int shmrpc__reclaim_exited(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/* Under the lock: reclaim every slot whose node is gone, and every slot
 * that is neither FREE nor LIVE (no joiner can be at work while we hold the
 * lock). Returns how many. @cheap_pidns non-zero: nodes of that pid
 * namespace whose pid exists are taken as alive without the (dearer) lock
 * check. */
int shmrpc__reclaim_sweep(struct shmrpc__reg *r, uint32_t self_slot, uint64_t cheap_pidns);
/* No process of our pid namespace has @pid, as far as kill(2) says (a
 * zombie still has it). */
bool shmrpc__pid_gone(int32_t pid);
int shmrpc__reclaim_locked(struct shmrpc__reg *r, uint32_t slot, uint32_t gen);
/*
 * Is a node of @r's domain alive, whatever its slots say (any member can
 * write a slot FREE)? Checks the lock of every node file of the domain
 * in /dev/shm, at most @max of them: 1 if one is locked, or there are more,
 * or /dev/shm cannot be read (cannot tell: keep the registry); 0 if none.
 * *looked (may be NULL) gets how many directory entries were read. Before
 * retiring a registry whose count says no node is left.
 */
int shmrpc__reg_any_locked(const struct shmrpc__reg *r, uint32_t max, uint32_t *looked);
/* Set @flag on ring (tx, rx), wake both of its sleepers, unlink it.
 * Returns the ring's prev_gen link (gen + 1 of an older ring from the same
 * slot to follow), or 0. */
uint32_t shmrpc__ring_kill(const struct shmrpc__reg *r, uint32_t tx_slot, uint32_t tx_gen,
			   uint32_t rx_slot, uint32_t rx_gen, uint32_t flag);

/* ------------------------------------------------------------ ring.c */
/* One side's process-local view of a ring. */
struct shmrpc__ring {
	struct shmrpc__ring_hdr *hdr;
	uint8_t *data;
	uint64_t map_size;
	uint32_t size, mask;
	uint64_t pos;	   /* producer: next tail; consumer: next head */
	uint64_t cached;   /* producer: last head seen; consumer: last tail seen */
	uint64_t peek_end; /* consumer: pos after the peeked record, 0 if none */
	uint32_t peek_len; /* consumer: its length, as checked */
};

static inline uint32_t shmrpc__rec_bytes(size_t len)
{
	return (uint32_t)(sizeof(struct shmrpc__rec) +
			  ((len + SHMRPC__REC_ALIGN - 1) & ~(size_t)(SHMRPC__REC_ALIGN - 1)));
}

/* Largest payload of a ring of @size bytes: a record takes at most half. */
/* A ring capacity we make or accept: a power of two in [RING_MIN, RING_MAX]. */
static inline bool shmrpc__ring_size_ok(uint64_t size)
{
	return size >= SHMRPC__RING_MIN && size <= SHMRPC__RING_MAX && !(size & (size - 1));
}

/* Map the ring file at @path, any capacity we accept (shmrpc__ring_check
 * then checks its header against the size). */
static inline int shmrpc__ring_seg_open(const char *path, uint32_t mode, void **map, uint64_t *size)
{
	return shmrpc__seg_open(path, SHMRPC__PAGE + SHMRPC__RING_MIN,
				SHMRPC__PAGE + (uint64_t)SHMRPC__RING_MAX, mode, false, map, size,
				NULL);
}

static inline uint32_t shmrpc__ring_max_msg(uint32_t size)
{
	return size / 2 - (uint32_t)sizeof(struct shmrpc__rec);
}

struct shmrpc__ring_ids {
	uint32_t nonce, tx_slot, tx_gen, rx_slot, rx_gen;
	uint32_t prev_gen;
	int32_t tx_pid;
	const char *tx_name;
};
void shmrpc__ring_format(struct shmrpc__ring_hdr *h, uint32_t size,
			 const struct shmrpc__ring_ids *ids);
/* Validate a mapped ring against what the opener expects; -EPROTO. */
int shmrpc__ring_check(const struct shmrpc__ring_hdr *h, uint64_t map_size,
		       const struct shmrpc__ring_ids *ids);
void shmrpc__ring_attach(struct shmrpc__ring *q, void *map, uint64_t map_size, bool producer);
int shmrpc__ring_reserve(struct shmrpc__ring *q, size_t len, void **buf);
void shmrpc__ring_commit(struct shmrpc__ring *q, size_t len);
int shmrpc__ring_peek(struct shmrpc__ring *q, const void **data, uint32_t *len);
void shmrpc__ring_release(struct shmrpc__ring *q);
/* Consumer: anything published beyond what it consumed? (one acquire load) */
bool shmrpc__ring_ready(const struct shmrpc__ring *q);
/* Producer: would a record of @len bytes fit now? */
bool shmrpc__ring_fits(struct shmrpc__ring *q, size_t len);

/* ------------------------------------------------------------ wake.c */
enum shmrpc__wake_kind {
	SHMRPC__WAKE_NONE = 0, /* the other side is awake: no syscall */
	SHMRPC__WAKE_WORD = 1, /* FUTEX_WAKE the word */
	SHMRPC__WAKE_BELL = 2, /* the sleeper watches its bell: ring that */
};
/* Waker side, after publishing what the sleeper waits for. */
enum shmrpc__wake_kind shmrpc__wake_prepare(_Atomic uint32_t *w);
/* Sleeper side: announce the sleep, returning the value to wait on. */
uint32_t shmrpc__wait_arm(_Atomic uint32_t *w, uint32_t flags);
void shmrpc__wait_disarm(_Atomic uint32_t *w);
void shmrpc__wait_fence(void);
/* Change @w's sequence, keeping its flags (to end a sleep on it). */
void shmrpc__word_bump(_Atomic uint32_t *w);

/* ------------------------------------------------------------ backends */
struct shmrpc__inring;

enum shmrpc__backend_id {
	SHMRPC__BACKEND_FUTEX = 1,
	SHMRPC__BACKEND_URING = 2,
};

/*
 * A wake backend (wake_futex.c, wake_uring.c). The receiving side keeps its
 * inbound rings in the backend's wait set; the common code (recv.c) arms
 * every word before calling sleep() and disarms them after.
 */
struct shmrpc__backend {
	const char *name;
	enum shmrpc__backend_id id;
	int (*init)(struct shmrpc_node *n);
	void (*fini)(struct shmrpc_node *n);
	/* Receiving thread: a ring joins or leaves the wait set. ring_add sets
	 * r->bell_mode when the backend cannot watch the ring's own word. */
	int (*ring_add)(struct shmrpc_node *n, struct shmrpc__inring *r);
	void (*ring_del)(struct shmrpc_node *n, struct shmrpc__inring *r);
	/* Receiving thread: sleep until a wake hits an armed word or the
	 * deadline (CLOCK_MONOTONIC ns) passes. 0, -ETIMEDOUT, -EINTR. */
	int (*sleep)(struct shmrpc_node *n, int64_t deadline);
	/* Receiving thread, shmrpc_fd mode: the caller armed every word and
	 * found nothing to do; make the next wake make the eventfd readable,
	 * without sleeping. */
	int (*park)(struct shmrpc_node *n);
	/* Any thread: FUTEX_WAKE each word, in as few syscalls as it can. */
	void (*wake)(struct shmrpc_node *n, _Atomic uint32_t *const *words, unsigned nr);
	/* Once, at the first shmrpc_fd: signal @evfd on wakes while parked. */
	int (*fd_enable)(struct shmrpc_node *n, int evfd);
};

extern const struct shmrpc__backend shmrpc__backend_futex;
extern const struct shmrpc__backend shmrpc__backend_uring;
void shmrpc__uring_fork_child(void);
/* Tests only: turn off (and on again) the uring backend's thread-exit hook,
 * to reach the path taken when it cannot run (wake_uring.c). */
void shmrpc__uring_exit_cancel(bool on);
/* Set up the backend asked for (NULL: uring where it works, else futex). */
int shmrpc__backend_init(struct shmrpc_node *n, const char *want);

/* ------------------------------------------------------------ node */
struct shmrpc__inring {
	struct shmrpc__ring q; /* consumer view */
	uint32_t tx_slot, tx_gen;
	uint32_t prev;	/* its prev_gen link (shmrpc__prev_link), read at open */
	uint32_t armed; /* value data_seq was armed with */
	bool bell_mode; /* sleeping on the node bell, not data_seq */
	bool draining;	/* sender gone: drop once empty */
	bool doomed;	/* corrupt, dropped when the peek into it ends */
	uint32_t idx;	/* index in node->in.v */
	char from[SHMRPC_NAME_MAX + 1];
	void *be; /* backend's per-ring state */
};

/* Type-stable (conn.c): never freed before shmrpc_close, recycled with a
 * new gen. Fields below `lock` change under it, or under the table's
 * write lock while out of every thread's reach. */
struct shmrpc__conn {
	struct shmrpc__conn *next;     /* hash chain or free list, under conn_lock */
	pthread_mutex_t lock;	       /* serialises sends to this receiver */
	_Atomic uint32_t gen;	       /* changes when the struct is recycled */
	struct shmrpc__ring q;	       /* producer view, under lock */
	struct shmrpc__node_hdr *peer; /* receiver's node segment */
	uint64_t peer_size;
	uint32_t rx_slot, rx_gen;
	uint32_t ring_bytes;
	_Atomic bool dead;     /* receiver left: -EPIPE; set under lock */
	_Atomic bool folded;   /* its counters are in old_* now */
	bool tomb;	       /* a name-only placeholder (never mapped) */
	_Atomic(void *) owner; /* token of the thread holding lock */
	void *resv;	       /* under lock: data of the open reservation */
	size_t resv_cap;       /* under lock: bytes it reserved */
	char to[SHMRPC_NAME_MAX + 1];
};

struct shmrpc__inbound {
	struct shmrpc__inring **v;
	uint32_t n, cap;
	uint32_t cur;		       /* round-robin cursor */
	uint32_t burst;		       /* records taken from v[cur] in a row */
	struct shmrpc__inring *peeked; /* ring of the held peek, if any */
	uint64_t last_check;	       /* last liveness check of senders */
	/* An announced ring that could not be opened for a reason that may
	 * pass (EMFILE, ENOMEM...): its pend bit is set again and the next
	 * scan retries it (inbound.c). open_err: that failure, 0 when every
	 * announced ring is open; open_told: a receiving call returned it. */
	bool retry;
	bool open_told;
	int open_err;
	uint32_t open_slot, open_gen;
};

#define SHMRPC__CONN_BUCKETS 64

/* Wakes held back by SHMRPC_SEND_DEFER until shmrpc_flush. A word may be
 * unmapped meanwhile (its connection recycled): a wake there is harmless. */
struct shmrpc__deferred {
	pthread_mutex_t lock;
	_Atomic uint32_t **words;
	uint32_t n, cap;
};

struct shmrpc_node {
	char name[SHMRPC_NAME_MAX + 1];
	struct shmrpc__reg *reg; /* shared by the process's nodes of the domain */
	uint32_t slot, gen;
	struct shmrpc__proc proc;
	struct shmrpc__node_hdr *seg; /* our node segment */
	uint64_t seg_size;
	int seg_fd; /* holds the liveness lock */
	uint32_t ring_bytes, mode;
	int64_t spin_max_ns; /* configured bound of the spin; 0: never */
	int64_t spin_ns;     /* current, adaptive bound (recv.c) */
	int64_t safety_ns;   /* bound of every sleep */
	_Atomic int evfd;    /* shmrpc_fd, or -1 */
	bool parked;	     /* fd mode: words armed between calls */
	struct shmrpc__deferred deferred;

	const struct shmrpc__backend *be;
	void *be_priv;
	/* inbound rings the backend watches directly; others: bell mode */
	uint32_t ring_words;
	uint32_t bell_armed; /* value our bell was armed with */

	uint64_t uid; /* unique in the process, unlike the address */
	pthread_rwlock_t conn_lock;
	struct shmrpc__conn *conns[SHMRPC__CONN_BUCKETS];
	struct shmrpc__conn_chunk *conn_chunks; /* under conn_lock */
	struct shmrpc__conn *conn_free;		/* under conn_lock */

	pthread_mutex_t in_lock;   /* guards in.v/in.n against shmrpc_stats */
	pthread_mutex_t fold_lock; /* writers of ctr.fold_seq (stats.c) */
	struct shmrpc__inbound in;
	_Atomic int rx_busy; /* a thread is in a receiving call */

	pthread_mutex_t ctl_lock; /* shmrpc_start/stop */
	pthread_t thread;
	bool thread_on;
	bool forked; /* this is a fork's copy: unusable */
	_Atomic bool stop;
	shmrpc_handler fn;
	void *fn_arg;

	struct shmrpc_node *all_next; /* process-wide list, for fork */
};

static inline _Atomic uint64_t *shmrpc__node_pend(struct shmrpc__node_hdr *h, uint32_t off)
{
	return (_Atomic uint64_t *)((uint8_t *)h + off);
}

static inline _Atomic uint32_t *shmrpc__node_tab(struct shmrpc__node_hdr *h, uint32_t off)
{
	return (_Atomic uint32_t *)((uint8_t *)h + off);
}

/* node.c, thread.c */
void shmrpc__thread_stop(struct shmrpc_node *n);

/* watch.c: learn of the death of peer (slot, gen) at once; one watcher
 * thread per process */
int shmrpc__watch_start(void);
bool shmrpc__watch_disabled(void);
/* A pidfd of the process in @v (opened before its liveness lock is checked,
 * which makes it trustworthy), or -1; for shmrpc__watch_peer. */
int shmrpc__watch_pidfd(const struct shmrpc_node *n, const struct shmrpc__slot_view *v);
/* Watch peer (slot, gen); @pidfd: from shmrpc__watch_pidfd, checked since,
 * or -1: opened here. Takes @pidfd in every case. */
int shmrpc__watch_peer(struct shmrpc_node *n, uint32_t slot, uint32_t gen, int pidfd);
void shmrpc__watch_forget(struct shmrpc_node *n);
void shmrpc__watch_fork_prepare(void);
void shmrpc__watch_fork_parent(void);
void shmrpc__watch_fork_child(void);

/* query.c: the live node named @name (lazily reclaiming a dead one). */
int shmrpc__lookup(struct shmrpc_node *n, const char *name, uint32_t *slot,
		   struct shmrpc__slot_view *v);

/* conn.c: outbound connections */
struct shmrpc__conn_chunk;
/* The connection to @to, connecting if needed, locked by this thread. */
int shmrpc__conn_acquire(struct shmrpc_node *n, const char *to, struct shmrpc__tmo *t,
			 struct shmrpc__conn **out);
/* Unlock; a connection found dead is swapped for a tombstone. */
void shmrpc__conn_unlock(struct shmrpc_node *n, struct shmrpc__conn *c);
/* Does this thread hold @c's mutex? */
bool shmrpc__conn_held(const struct shmrpc__conn *c);
int shmrpc__conn_warm(struct shmrpc_node *n);
void shmrpc__conn_close_all(struct shmrpc_node *n);
void shmrpc__conn_forget_all(struct shmrpc_node *n);
void shmrpc__conn_free_all(struct shmrpc_node *n, bool destroy);
/* Under c->lock: */
void shmrpc__conn_kill(struct shmrpc_node *n, struct shmrpc__conn *c);
bool shmrpc__conn_check_dead(struct shmrpc_node *n, struct shmrpc__conn *c);
bool shmrpc__conn_peer_gone(struct shmrpc_node *n, struct shmrpc__conn *c);

/* inbound.c: inbound rings (receiving thread) */
/* Open the rings announced since the last scan, and those kept pending
 * after a failure that may pass: 0, or that failure (n->in.open_err). */
int shmrpc__in_scan_new(struct shmrpc_node *n);
/* Drop @r (unlink, RX_CLOSED, unmap), or, while a peek into it is held
 * (n->in.peeked), only mark it doomed: its release drops it. */
void shmrpc__in_drop(struct shmrpc_node *n, struct shmrpc__inring *r);
void shmrpc__in_check_senders(struct shmrpc_node *n);
void shmrpc__in_close_all(struct shmrpc_node *n);
/* In a forked child: the same for the inbound rings. */
void shmrpc__in_forget_all(struct shmrpc_node *n);

/* send.c */
void shmrpc__bell_ring(struct shmrpc_node *n, struct shmrpc__node_hdr *h);
void shmrpc__wake_consumer(struct shmrpc_node *n, struct shmrpc__conn *c);
/* Under c->lock after a commit: the word to FUTEX_WAKE, or NULL. */
_Atomic uint32_t *shmrpc__wake_collect(struct shmrpc__conn *c);
/* Reserve on the locked @c, waiting for room per @t; unlocks on failure. */
int shmrpc__reserve_locked(struct shmrpc_node *n, struct shmrpc__conn *c, size_t len,
			   struct shmrpc_txbuf *tx, struct shmrpc__tmo *t);
/* Commit and unlock, returning the wake to issue. Once unlocked, the word
 * may be unmapped by a recycling: a FUTEX_WAKE there is harmless (EFAULT,
 * or a spurious wake that every sleeper tolerates). */
_Atomic uint32_t *shmrpc__commit_nowake(struct shmrpc_node *n, struct shmrpc_txbuf *tx, size_t len);

/* recv.c, thread.c */
int shmrpc__rx_enter(struct shmrpc_node *n);
void shmrpc__rx_exit(struct shmrpc_node *n);
int shmrpc__dispatch(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms);

/* stats.c: move a ring's counters into the node's totals, between
 * fold_begin and fold_end (the fold_seq seqlock, layout.h) together with
 * whatever takes the ring out of the node's listing */
void shmrpc__fold_begin(struct shmrpc_node *n);
void shmrpc__fold_end(struct shmrpc_node *n);
void shmrpc__fold_tx(struct shmrpc_node *n, const struct shmrpc__ring_hdr *h);
void shmrpc__fold_rx(struct shmrpc_node *n, const struct shmrpc__ring_hdr *h);

#endif /* SHMRPC_INTERNAL_H */
