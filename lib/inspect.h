/* SPDX-License-Identifier: MIT */
/*
 * The tools' view of a domain (inspect.c): what shmrpc-top, shmrpc-reaper
 * and shmrpc-bench may use of the library besides its public API. With
 * lib/layout.h (the files' format, which is the tools' business) and
 * include/shmrpc.h it is all they see: the Makefile gives the tools an
 * include directory with these three headers only, so a change inside the
 * library breaks no tool unless it changes this file.
 *
 * Read-mostly: open a registry and read its slots; name, open and check a
 * domain's files; ask whether a node is alive. The reaper also writes:
 * under the registry lock it reclaims dead nodes, sweeps, and retires an
 * empty registry, acting as the registry's owner (shmrpc_insp_act_as).
 *
 * Everything mapped is shared memory that any member of the domain can
 * write: the library's own checks run on every call here, and a tool that
 * reads the mapping directly checks what it reads (tools/top does).
 * Errors are -errno, as in the library; nothing here touches errno's value
 * on return but where it says so.
 */
#ifndef SHMRPC_INSPECT_H
#define SHMRPC_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "layout.h"
#include "shmrpc.h"

struct shmrpc__reg;
struct io_uring_sqe;

/*
 * A registry a tool opened (shmrpc_insp_reg_open). Every field is set at
 * the open, from what the library checked then, and stays: the header may
 * say otherwise later (any member can write it). A tool that maps the file
 * itself may fill some fields by hand for the calls that say they read
 * only those (shmrpc_insp_reg_read, shmrpc_insp_file_ids).
 */
struct shmrpc_insp_reg {
	struct shmrpc__reg_hdr *hdr; /* the mapping, read-write: untrusted */
	struct shmrpc__slot *slots;  /* [capacity], after the header */
	uint32_t capacity, nonce, mode;
	uint8_t key[SHMRPC__KEY_BYTES]; /* the name key (lib/names.c) */
	char domain[SHMRPC_NAME_MAX + 1];
	int fd;			 /* the registry file, open read-write */
	struct shmrpc__reg *lib; /* the library's handle, for the calls */
};

/* A consistent copy of one slot (shmrpc_insp_reg_read). */
struct shmrpc_insp_slot {
	uint32_t state, gen; /* enum shmrpc__slot_state; its generation */
	int32_t pid;	     /* in the node's pid namespace (pidns) */
	uint32_t uid, ring_bytes, backend;
	uint64_t start_time, pidns, join_ns;
	char name[SHMRPC_NAME_MAX + 1]; /* checked only for a LIVE slot */
};

/* Where a scan of a registry's slots is (shmrpc_insp_scan_next): start
 * with { 0, 0 }; keep it between calls to resume. */
struct shmrpc_insp_scan {
	off_t data, hole;
};

/* ------------------------------------------------------------ names */

/* A node or domain name: 1 to SHMRPC_NAME_MAX of [A-Za-z0-9._-], not
 * starting with '.': 0, -EINVAL, -ENAMETOOLONG. */
int shmrpc_insp_name_check(const char *name);
/* A name read from shared memory: NUL-terminated within @size bytes and
 * valid: 0, else -EPROTO. */
int shmrpc_insp_name_check_field(const char *field, size_t size);
/* The shm_open name ("/shmrpc.<domain>.node.<16 hex>", at most
 * SHMRPC__PATH_MAX bytes with its NUL) of node (slot, gen) of the domain
 * whose registry has name key @key; of the ring from (tx) to (rx). */
void shmrpc_insp_node_path(char *buf, const char *domain, const uint8_t *key, uint32_t slot,
			   uint32_t gen);
void shmrpc_insp_ring_path(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen);
/* Which file of @r's domain /dev/shm entry @ent is, from its header, checked
 * against its name: 1 a node (ids[0..1]: slot, gen), 2 a ring (ids[0..3]:
 * tx slot, gen, rx slot, gen), 0 not a node or ring name of the domain,
 * -EPROTO not what its name says (or of another registry), -ENOENT,
 * -errno. Reads only @r's domain, key, nonce and mode. */
int shmrpc_insp_file_ids(const struct shmrpc_insp_reg *r, const char *ent, uint32_t ids[4]);

/* ------------------------------------------------------------ the registry */

/* Open the registry of @domain read-write (no file is created). @wait:
 * wait (up to a few seconds) for a creator to publish it, and remove what a
 * creator that died left; else once: -EAGAIN if not published yet. 0,
 * -ENOENT, -EPROTO (not a registry of this version), -EPERM (another
 * owner), -ENOMEM, -errno. @mode: the domain's, if known (group access),
 * else 0600. */
int shmrpc_insp_reg_open(struct shmrpc_insp_reg *r, const char *domain, uint32_t mode, bool wait);
/* Unmap and close (nothing if @r is not open). */
void shmrpc_insp_reg_close(struct shmrpc_insp_reg *r);
/* Was @r retired (its last node left and unlinked it)? The header's
 * `closed` believed only if the registry's name no longer names @r's file. */
bool shmrpc_insp_reg_retired(const struct shmrpc_insp_reg *r);
/* Seqlock read of slot @i (< capacity): 0, -EAGAIN (changed under us:
 * retry), -EPROTO (a LIVE slot whose name is garbage; *v holds the rest).
 * Reads only @r's slots. */
int shmrpc_insp_reg_read(const struct shmrpc_insp_reg *r, uint32_t i, struct shmrpc_insp_slot *v);
/* The LIVE slot named @name (no liveness check): 0 with *slot and *v,
 * -ENOENT. */
int shmrpc_insp_reg_find(const struct shmrpc_insp_reg *r, const char *name, uint32_t *slot,
			 struct shmrpc_insp_slot *v);
/* The next slot from @i on in a data extent of the registry file (a slot
 * never written is in a hole: reading it would allocate its page), or the
 * capacity when there is none. */
uint32_t shmrpc_insp_scan_next(const struct shmrpc_insp_reg *r, struct shmrpc_insp_scan *sc,
			       uint32_t i);
/* Wait until the registry's epoch (bumped at every join and leave) differs
 * from @seen, or @deadline_ns (CLOCK_MONOTONIC) passes: 0, -ETIMEDOUT,
 * -EINTR. */
int shmrpc_insp_epoch_wait(const struct shmrpc_insp_reg *r, uint32_t seen, int64_t deadline_ns);
/* Does this process's io_uring have the futex operations (Linux 6.7)? 1/0. */
int shmrpc_insp_uring_futex(void);
/* Make @sqe an IORING_OP_FUTEX_WAIT on @r's epoch while it is @seen, with
 * @user_data; only where shmrpc_insp_uring_futex() says 1. */
void shmrpc_insp_prep_epoch_wait(struct io_uring_sqe *sqe, const struct shmrpc_insp_reg *r,
				 uint32_t seen, uint64_t user_data);

/* ------------------------------------------------------------ liveness */

/*
 * Open the domain file @path (a shm_open name, "/shmrpc....") read-only as
 * the library opens a segment: no symlink followed, no FIFO waited on, a
 * regular file of one link whose owner @r's domain accepts (as the actor,
 * if one is set). The descriptor, *st (if not NULL) its fstat; -ENOENT,
 * -EPROTO, -EPERM, -errno.
 */
int shmrpc_insp_file_open(const struct shmrpc_insp_reg *r, const char *path, struct stat *st);
/* Is the liveness lock of the node file open as @fd held? 1, 0, -errno. */
int shmrpc_insp_locked(int fd);
/* Liveness of node (slot, gen), as the library decides it: 1 alive (its
 * lock is held), 0 gone (no lock, or no file), -errno: cannot tell (never
 * take that for dead). */
int shmrpc_insp_node_alive(const struct shmrpc_insp_reg *r, uint32_t slot, uint32_t gen);
/* Is a node of @r's domain alive, whatever its slots say (any member can
 * write a slot FREE)? Every node file of the domain in /dev/shm, at most
 * @max of them, opened as above and its lock tested: 1 if one is locked, or
 * there are more, or /dev/shm cannot be read (cannot tell: keep the
 * registry); 0 if none. *looked (may be NULL): directory entries read.
 * Before retiring a registry whose count says no node is left. */
int shmrpc_insp_any_locked(const struct shmrpc_insp_reg *r, uint32_t max, uint32_t *looked);
/* /proc/PID/stat's start time of @pid (clock ticks after boot): 0, -errno. */
int shmrpc_insp_start_time(pid_t pid, uint64_t *start);

/* ------------------------------------------------------------ the reaper */

/*
 * The identity this thread acts as for the library's file checks and
 * unlinks (the reaper runs as root for every user: tools/reaper/owner.c).
 * Files are accepted as if this process were @uid with group @gid; an
 * unlink removes only a file of @uid, and a file of another owner goes to
 * @unlink_other (NULL: left). shmrpc_insp_act_self: back to our own.
 */
void shmrpc_insp_act_as(uid_t uid, gid_t gid,
			int (*unlink_other)(const char *path, const struct stat *st));
void shmrpc_insp_act_self(void);
/* Take @r's lock (the join/leave lock, an OFD lock on the file), repairing
 * what a joiner that died holding it left, as every library caller does.
 * @timeout_ns < 0: wait; else give up after it (0: one try): 0,
 * -ETIMEDOUT, -errno. shmrpc_insp_unlock ends it. */
int shmrpc_insp_lock(struct shmrpc_insp_reg *r, int64_t timeout_ns);
void shmrpc_insp_unlock(struct shmrpc_insp_reg *r);
/* Under the lock: free slot @slot if it still holds @gen and its node is
 * gone, closing (peers wake with -EPIPE) and unlinking every ring of it and
 * its node file. 1 freed, 0 not (the slot changed, or the node lives),
 * -errno (its liveness or a file of it could not be checked for want of
 * descriptors or memory: try again later). */
int shmrpc_insp_reclaim(struct shmrpc_insp_reg *r, uint32_t slot, uint32_t gen);
/* The same without the liveness check, for a node whose process is known
 * to have exited though its lock may still be held: an exit event of the
 * eBPF probe whose tgid and start time match the slot's. Never on a guess:
 * a live node would be torn down. */
int shmrpc_insp_reclaim_exited(struct shmrpc_insp_reg *r, uint32_t slot, uint32_t gen);
/* Under the lock: reclaim every slot whose node is gone, and every slot
 * neither FREE nor LIVE. How many. */
int shmrpc_insp_sweep(struct shmrpc_insp_reg *r);
/* Under the lock: the slots in use (not FREE), counted (hdr->live set). */
uint32_t shmrpc_insp_recount(struct shmrpc_insp_reg *r);
/* Under the lock, with no slot in use: mark @r closed and unlink its name,
 * if the name still names @r's file. */
void shmrpc_insp_retire(struct shmrpc_insp_reg *r);

#endif /* SHMRPC_INSPECT_H */
