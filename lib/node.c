// SPDX-License-Identifier: MIT
/*
 * A node's life: options, joining the registry, its node segment, the
 * liveness lock it holds, leaving, and what fork() does to it.
 *
 * Joining happens under the registry lock: take a slot (JOINING), create
 * the node segment and take its liveness lock, then publish the slot LIVE.
 * A peer therefore never finds a LIVE slot without a complete segment.
 *
 * Leaving: receivers first learn that no more rings come (NODE_CLOSING),
 * rings in both directions are closed (peers wake with -EPIPE or drain),
 * then, under the lock, the segment is unlinked and the slot freed. If no
 * live node remains (dead ones are reclaimed on the way), the registry is
 * marked closed and unlinked: nothing of the domain stays in /dev/shm.
 *
 * fork(): the child inherits the descriptor that holds the liveness lock,
 * which would keep a dead parent looking alive; an atfork handler closes it
 * in the child and marks the parent's nodes unusable there (-ECHILD). The
 * child also inherits the segment's mapping, which is why the lock is held
 * on a file description of its own, not the one the segment is mapped
 * through (seg.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "conntab.h"
#include "error.h"
#include "events.h"
#include "inbound.h"
#include "join.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "nodeseg.h"
#include "options.h"
#include "peer.h"
#include "proc.h"
#include "reclaim.h"
#include "regfile.h"
#include "registry.h"
#include "ring.h"
#include "rpc.h"
#include "seg.h"
#include "thread.h"
#include "wake_uring.h"
#include "watch.h"

static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmrpc_node *all_nodes;

static void fork_prepare(void)
{
	pthread_mutex_lock(&all_lock);
	shmrpc__watch_fork_prepare();
	shmrpc__reg_fork_prepare();
}

static void fork_parent(void)
{
	shmrpc__reg_fork_parent();
	shmrpc__watch_fork_parent();
	pthread_mutex_unlock(&all_lock);
}

static void fork_child(void)
{
	struct shmrpc_node *n;

	for (n = all_nodes; n; n = n->all_next) {
		if (n->seg_fd >= 0)
			close(n->seg_fd);
		n->seg_fd = -1;
		n->forked = true;
	}
	shmrpc__reg_fork_child();
	shmrpc__watch_fork_child();
	shmrpc__uring_fork_child();
	pthread_mutex_unlock(&all_lock);
}

/* Registered by the first open that can (pthread_atfork's ENOMEM fails the
 * open): without them a forked child keeps a dead parent looking alive. */
static int fork_setup(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static bool done; /* under lock */
	int err = 0;

	pthread_mutex_lock(&lock);
	if (!done)
		err = -pthread_atfork(fork_prepare, fork_parent, fork_child);
	done = !err;
	pthread_mutex_unlock(&lock);
	return err ? shmrpc__err(err, "fork handlers not registered: %s", strerror(-err)) : 0;
}

static void all_add(struct shmrpc_node *n)
{
	pthread_mutex_lock(&all_lock);
	n->all_next = all_nodes;
	all_nodes = n;
	pthread_mutex_unlock(&all_lock);
}

static void all_del(struct shmrpc_node *n)
{
	struct shmrpc_node **pp;

	pthread_mutex_lock(&all_lock);
	for (pp = &all_nodes; *pp; pp = &(*pp)->all_next)
		if (*pp == n) {
			*pp = n->all_next;
			break;
		}
	pthread_mutex_unlock(&all_lock);
}

/*
 * A file at our next node name: ours to replace only if it is our own (a
 * leftover of ours). Anyone else's, root never removes for us either, though
 * it could: it is skipped (join_seg_make moves to the next name), as any
 * other user must. Only its owner (or root) can swap the file between this
 * check and the unlink, so the unlink removes nothing the check did not.
 */
static bool seg_leftover(const char *path)
{
	char full[sizeof(SHMRPC__SHM_DIR) + SHMRPC__PATH_MAX];
	struct stat st;

	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	return !lstat(full, &st) && S_ISREG(st.st_mode) && st.st_uid == geteuid();
}

static int seg_make(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	uint32_t cap = n->reg->capacity;
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__node_hdr *h;
	void *map;
	int err, map_fd;

	n->seg_size = shmrpc__node_size(cap);
	shmrpc__node_path(path, n->reg, slot, gen);
	err = shmrpc__seg_create(path, n->seg_size, n->mode, true, &map, &map_fd);
	if (err == -EEXIST && seg_leftover(path)) {
		shmrpc__seg_unlink(path);
		err = shmrpc__seg_create(path, n->seg_size, n->mode, true, &map, &map_fd);
	}
	if (err)
		return shmrpc__seg_err(err, n->seg_size, "node segment of '%s'", n->name);
	/* The lock on a description of its own: the mapping keeps map_fd's
	 * description alive in forked children (seg.c). */
	err = shmrpc__seg_lock_new(path, map_fd, &n->seg_fd);
	close(map_fd);
	if (err) {
		shmrpc__seg_unlink(path);
		shmrpc__seg_unmap(map, n->seg_size);
		n->seg_fd = -1;
		return err;
	}
	h = map;
	h->abi = SHMRPC__ABI;
	h->hdr_size = sizeof(*h);
	h->total_size = n->seg_size;
	h->slot = slot;
	h->gen = gen;
	h->capacity = cap;
	h->ring_bytes = n->ring_bytes;
	h->pid = n->proc.pid;
	h->backend = n->be->id;
	h->pend_off = shmrpc__node_pend_off();
	h->in_off = shmrpc__node_in_off(cap);
	h->out_off = shmrpc__node_out_off(cap);
	h->rep_pend_off = shmrpc__node_pend_off_k(cap, SHMRPC__KIND_REP);
	h->rep_in_off = shmrpc__node_in_off_k(cap, SHMRPC__KIND_REP);
	h->rep_out_off = shmrpc__node_out_off_k(cap, SHMRPC__KIND_REP);
	memcpy(h->name, n->name, sizeof(h->name));
	memcpy(h->host, n->proxy_host, sizeof(h->host));
	h->lock_fd = (uint32_t)n->seg_fd;
	/* Relaxed: published with the rest by the release store of LIVE. */
	atomic_store_explicit(&h->flags, n->ev_mask ? SHMRPC__NODE_EVENTS : 0,
			      memory_order_relaxed);
	/* A proxy serves from its birth: its bridge calls shmrpc_serve
	 * before its first receiving call, so no caller that finds it in
	 * between is refused -EOPNOTSUPP (relaxed: published with LIVE). */
	atomic_store_explicit(&h->serving, n->proxy_host[0] ? 1 : 0, memory_order_relaxed);
	/* Published to peers by the release store of LIVE in reg_publish. */
	h->magic = SHMRPC__NODE_MAGIC;
	n->seg = h;
	return 0;
}

#define JOIN_NAME_TRIES 8     /* generations a join tries when its file name is taken */
#define LEAVE_LOCKED_MAX 1024 /* node files a retiring leave checks, at most */

/*
 * May the count of @r's slots be a lie told by someone else? Only if
 * another user may write the registry file: a group-mode domain (its
 * file's group bits, which only its owner can change; with an ACL they are
 * its mask). In an owner-only domain every writer is us, who could remove
 * the registry anyway: the read of /dev/shm (~0.2 us an entry) is spared.
 */
static bool count_may_lie(const struct shmrpc__reg *r)
{
	struct timespec ms = { 0, 1000000 };
	struct stat st;
	int tries, err;

	/* A failed fstat (kernel memory) is tried again, as reg_retire does:
	 * "may lie" makes the last leave scan /dev/shm, which needs a
	 * directory descriptor and memory that may be out too, and then
	 * leave the registry behind (test_fault's sticky close_last). */
	for (tries = 0; (err = fstat(r->fd, &st)) && tries < 3; tries++)
		nanosleep(&ms, NULL);
	return err || (st.st_mode & 0060);
}

/* Retire @r if no node is left in it: no slot in use, and, where the slots
 * may lie, no node file of the domain locked. Under the lock. */
static void retire_if_empty(struct shmrpc__reg *r)
{
	if (!shmrpc__reg_recount(r) &&
	    !(count_may_lie(r) && shmrpc__reg_any_locked(r, LEAVE_LOCKED_MAX, NULL)))
		shmrpc__reg_retire(r);
}

/*
 * Make the node's segment, moving the slot to the next generation (and so
 * to another, unpredictable name: names.c) while the name is taken by a
 * file that seg_make could not replace: only a member of the domain can
 * tell our next name, and one that squats it may delay us, never stop us.
 */
static int join_seg_make(struct shmrpc_node *n, uint32_t slot, uint32_t *gen)
{
	char path[SHMRPC__PATH_MAX];
	int err, tries;

	for (tries = 1;; tries++) {
		err = seg_make(n, slot, *gen);
		if (err != -EEXIST)
			return err;
		shmrpc__node_path(path, n->reg, slot, *gen);
		if (tries == JOIN_NAME_TRIES)
			return shmrpc__err(-EEXIST,
					   "domain '%s': %d node file names in a row were taken by "
					   "files we may not replace (last %s%s)",
					   n->reg->domain, tries, SHMRPC__SHM_DIR, path);
		shmrpc__log(SHMRPC_LOG_WARN,
			    "domain '%s': %s%s exists and is not ours: slot %u goes to gen %u",
			    n->reg->domain, SHMRPC__SHM_DIR, path, slot, *gen + 1);
		shmrpc__reg_regen(n->reg, slot, gen);
	}
}

/* Take a slot and publish this node in it, under the registry lock. */
static int join_locked(struct shmrpc_node *n)
{
	struct shmrpc__join j = { n->name, n->proc, n->ring_bytes, n->be->id,
				  (n->proxy_host[0] ? SHMRPC__SLOT_PROXY : 0) |
					  (n->bmarks ? SHMRPC__SLOT_BMARKS : 0) };
	uint32_t gen;
	int slot, err;

	slot = shmrpc__join_take(n->reg, &j, &gen);
	if (slot == -ENOSPC)
		return shmrpc__err(slot, "domain '%s': registry full (%u nodes)", n->reg->domain,
				   n->reg->capacity);
	if (slot < 0)
		return slot;
	/* Should we die before the note is cleared, the next lock holder
	 * reclaims the slot (reclaim.c, shmrpc__dom_lock). */
	shmrpc__reg_joining(n->reg, (uint32_t)slot + 1);
	err = join_seg_make(n, (uint32_t)slot, &gen);
	if (err) {
		shmrpc__reg_free(n->reg, (uint32_t)slot, gen, 0);
		/* As the last leave does: a domain with no node left goes (a
		 * first node that could not be made leaves no registry). */
		retire_if_empty(n->reg);
	} else {
		n->slot = (uint32_t)slot;
		n->gen = gen;
		shmrpc__reg_publish(n->reg, n->slot);
		shmrpc__ev_start(n); /* events after our JOIN, under the lock */
	}
	shmrpc__reg_joining(n->reg, 0);
	return err;
}

static int join(struct shmrpc_node *n, const struct shmrpc__open_cfg *cfg)
{
	int err, tries;

	for (tries = 0; tries < 100; tries++) {
		err = shmrpc__reg_get(cfg->domain, cfg->capacity, cfg->mode, &n->reg);
		if (err)
			return err;
		err = shmrpc__dom_lock(n->reg);
		if (!err && !shmrpc__reg_retired(n->reg, true)) {
			err = join_locked(n);
			shmrpc__reg_unlock(n->reg);
			if (err) {
				shmrpc__reg_put(n->reg);
				n->reg = NULL;
			}
			return err;
		}
		/* The last node left and unlinked this registry meanwhile:
		 * open (or create) the new one. */
		if (!err)
			shmrpc__reg_unlock(n->reg);
		shmrpc__reg_put(n->reg);
		n->reg = NULL;
		if (err)
			return err;
	}
	return -EAGAIN;
}

/* @ev: the event the domain gets, SHMRPC_EV_LEAVE or _DEATH. */
static void leave(struct shmrpc_node *n, uint32_t ev)
{
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__reg *r = n->reg;
	bool locked = !shmrpc__dom_lock(r);

	shmrpc__node_path(path, r, n->slot, n->gen);
	shmrpc__seg_unlink(path);
	if (!locked)
		return; /* the registry lock is unusable: leave the slot to reclaim */
	shmrpc__reg_free(r, n->slot, n->gen, ev);
	/* Count what is left rather than trust hdr->live, which any peer can
	 * write: a wrong count would unlink the registry under live nodes (and
	 * later joiners would start a second domain of the same name), or
	 * leave it in /dev/shm after the last node. Are we the last live one?
	 * The dead met are reclaimed, each by its lock, until the first live
	 * one, from our neighbour on: while others live, that one check is
	 * all (a check of every slot at each leave made 1000 leaves O(n^2),
	 * 160-270 ms). Only once every slot was found dead is there a count
	 * to take, of slots, which any member can write FREE. */
	if (!shmrpc__reclaim_any_alive(r, n->slot + 1))
		retire_if_empty(r);
	shmrpc__reg_unlock(r);
}

static void node_free(struct shmrpc_node *n)
{
	shmrpc__rpc_free(n);
	shmrpc__ctab_free_all(&n->conns, !n->forked);
	shmrpc__seg_unmap(n->seg, n->seg_size);
	if (n->seg_fd >= 0)
		close(n->seg_fd);
	shmrpc__reg_put(n->reg);
	free(n->in.v);
	pthread_mutex_destroy(&n->in_lock);
	pthread_mutex_destroy(&n->fold_lock);
	pthread_mutex_destroy(&n->ctl_lock);
	pthread_mutex_destroy(&n->deferred.lock);
	pthread_mutex_destroy(&n->peer_lock);
	if (n->evfd >= 0)
		close(n->evfd);
	shmrpc__ev_free(n);
	free(n);
}

/*
 * The first number of @n's broadcasts: unique to this incarnation (random;
 * without getrandom, this process's identity, the node's and the time,
 * mixed), the top bit clear so that counting up never reaches 0 (which
 * says "no mark") in practice. broadcast.c skips 0 should it come.
 */
static uint64_t bcast_seed(const struct shmrpc_node *n)
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
		v = (uint64_t)shmrpc__now_ns() ^ ((uint64_t)n->proc.pid << 32) ^
		    n->proc.start_time ^ (n->uid << 48);
		/* splitmix64's finaliser: neighbours end up far apart */
		v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
		v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
		v ^= v >> 31;
	}
	v &= ~(1ull << 63);
	return v ? v : 1;
}

static struct shmrpc_node *node_alloc(const char *name, const struct shmrpc__open_cfg *cfg)
{
	struct shmrpc_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	static _Atomic uint64_t uids;

	snprintf(n->name, sizeof(n->name), "%s", name);
	/* Relaxed: only uniqueness matters (thread caches key on it). */
	n->uid = atomic_fetch_add_explicit(&uids, 1, memory_order_relaxed) + 1;
	n->seg_fd = -1;
	n->ring_bytes = cfg->ring_bytes;
	if (cfg->proxy_host)
		snprintf(n->proxy_host, sizeof(n->proxy_host), "%s", cfg->proxy_host);
	n->mode = cfg->mode;
	n->spin_max_ns = cfg->spin_ns;
	n->spin_ns = cfg->spin_ns / 4;
	n->safety_ns = shmrpc__safety_ns();
	n->evfd = -1;
	n->ev_mask = cfg->events;
	n->bmarks = cfg->flags & SHMRPC_OPEN_BCAST_MARKS;
	pthread_mutex_init(&n->peer_lock, NULL);
	pthread_mutex_init(&n->deferred.lock, NULL);
	shmrpc__ctab_init(&n->conns, n->conn_b, SHMRPC__CONN_BUCKETS, SHMRPC__KIND_MSG, false);
	pthread_mutex_init(&n->in_lock, NULL);
	pthread_mutex_init(&n->fold_lock, NULL);
	pthread_mutex_init(&n->ctl_lock, NULL);
	return n;
}

int shmrpc_open(const char *name, const struct shmrpc_opts *opts, struct shmrpc_node **out)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc_node *n;
	struct shmrpc__open_cfg cfg = { 0 };
	int err;

	if (!out)
		return SHMRPC__RET(shmrpc__err(-EINVAL, "shmrpc_open: out is NULL"));
	*out = NULL;
	err = shmrpc__name_check(name);
	if (err)
		err = shmrpc__err(err,
				  "node name '%.64s': 1 to %d characters of [A-Za-z0-9._-], "
				  "not starting with '.'",
				  name ? name : "(null)", SHMRPC_NAME_MAX);
	else
		err = shmrpc__opts_parse(opts, &cfg);
	if (!err)
		err = fork_setup();
	if (err)
		return SHMRPC__RET(err);
	n = node_alloc(name, &cfg);
	if (!n)
		return SHMRPC__RET(-ENOMEM);
	err = shmrpc__proc_self(&n->proc);
	if (!err)
		err = shmrpc__rpc_init(n, cfg.max_calls);
	if (!err)
		err = shmrpc__ev_init(n);
	if (!err)
		err = shmrpc__backend_init(n, cfg.backend);
	if (err) {
		node_free(n);
		return SHMRPC__RET(err);
	}
	atomic_init(&n->bcast_seq, bcast_seed(n)); /* before anyone sees n */
	err = join(n, &cfg);
	if (err) {
		n->be->fini(n);
		node_free(n);
		return SHMRPC__RET(err);
	}
	/* The process's peer watcher, if not running yet: best effort (a
	 * dead peer is still found by a waiting send and by lazy reclaim). */
	shmrpc__watch_start();
	all_add(n);
	*out = n;
	return SHMRPC__RET(0);
}

static void close_as(struct shmrpc_node *n, uint32_t ev)
{
	all_del(n);
	if (n->forked) {
		/* The parent's node: only this process's copy goes, mappings
		 * included (they would pin the parent's rings in /dev/shm for
		 * as long as this process lives). The backend's fini releases
		 * process-local resources only. */
		shmrpc__peer_detach_all(n);
		shmrpc__in_forget_all(n);
		shmrpc__ctab_forget_all(&n->conns);
		shmrpc__rpc_forget(n);
		n->be->fini(n);
		node_free(n);
		return;
	}
	shmrpc__thread_stop(n);
	shmrpc__peer_detach_all(n); /* handles outlive the node: -EPIPE */
	shmrpc__watch_forget(n);
	shmrpc_flush(n);
	shmrpc__in_close_all(n);
	shmrpc__ctab_close_all(n, &n->conns);
	shmrpc__rpc_close(n); /* the reply connections, as the others */
	leave(n, ev);
	n->be->fini(n);
	node_free(n);
}

void shmrpc_close(struct shmrpc_node *n)
{
	SHMRPC__KEEP_ERRNO;

	if (n)
		close_as(n, SHMRPC_EV_LEAVE);
}

int shmrpc_close_flags(struct shmrpc_node *n, unsigned flags)
{
	SHMRPC__KEEP_ERRNO;

	if (flags & ~SHMRPC_CLOSE_DEAD)
		return SHMRPC__RET(shmrpc__err(-EINVAL, "close flags 0x%x: unknown bits", flags));
	if (n)
		close_as(n, flags & SHMRPC_CLOSE_DEAD ? SHMRPC_EV_DEATH : SHMRPC_EV_LEAVE);
	return SHMRPC__RET(0);
}

const char *shmrpc_backend(struct shmrpc_node *n)
{
	return n ? n->be->name : NULL;
}

const char *shmrpc_name(struct shmrpc_node *n)
{
	return n ? n->name : NULL;
}

const char *shmrpc_domain(struct shmrpc_node *n)
{
	return n ? n->reg->domain : NULL;
}
