// SPDX-License-Identifier: MIT
/*
 * The registry file of a domain: /dev/shm/shmrpc.<domain>.reg, a header and
 * a fixed array of slots (see lib/layout.h). This file makes it, opens and
 * checks it, closes it and retires it; registry.c works on its slots.
 *
 * Creation race: the creator makes the file with O_CREAT|O_EXCL, sizes it,
 * initialises the header and publishes `magic` last (release). Openers wait
 * for the magic (acquire), then verify every size against the file before
 * they use anything. A creator that died before publishing leaves a file
 * without magic: after a grace period an opener unlinks it and starts over.
 * Sizing reserves every page (seg.c) and the size appears only once all are
 * reserved: a creator that cannot reserve them (a full /dev/shm) removes
 * the file, which openers only ever saw empty (-EAGAIN: they wait), then
 * find gone and try to create themselves: each gets its own -ENOSPC.
 *
 * Teardown race: the last node to leave sets `closed` and unlinks the file,
 * both under the lock. A joiner that opened the file before the unlink sees
 * `closed` once it holds the lock, and reopens by name (a fresh registry).
 * `closed` is shared memory that any member can write, so it is only a
 * hint: it is believed when the registry's name no longer names the file
 * we hold (shmrpc__reg_retired); a lie is repaired under the lock.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "regfile.h"
#include "clock.h"
#include "error.h"
#include "layout.h"
#include "names.h"
#include "seg.h"

#define REG_GRACE_NS (1000 * 1000 * 1000ll) /* creator must publish within this */

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

static int reg_create(struct shmrpc__reg *r, const char *path, uint32_t capacity, uint32_t mode)
{
	struct shmrpc__reg_hdr *h;
	uint64_t size = shmrpc__reg_size(capacity);
	uint8_t key[SHMRPC__KEY_BYTES];
	uint32_t nonce;
	void *map;
	int err;

	/* The name key must be unpredictable (names.c): no fallback to a
	 * clock, which anyone could guess. getrandom only fails on kernels
	 * older than 3.17 or before the pool is ready at boot (it waits). */
	if (getrandom(key, sizeof(key), 0) != sizeof(key))
		return shmrpc__err(-errno, "getrandom: no random name key for %s: %s", path,
				   strerror(errno));
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = (uint32_t)(shmrpc__now_ns() ^ ((uint64_t)getpid() << 16));
	err = shmrpc__seg_create(path, size, mode, false, &map, &r->fd);
	if (err == -EEXIST)
		return err; /* lost the creation race: open theirs */
	if (err)
		return shmrpc__seg_err(err, size, "registry of domain '%s' (%u slots)", r->domain,
				       capacity);
	h = map;
	h->abi = SHMRPC__ABI;
	h->hdr_size = sizeof(*h);
	h->slot_size = sizeof(struct shmrpc__slot);
	h->capacity = capacity;
	h->total_size = size;
	h->ev_cap = SHMRPC__EV_LOG;
	h->ev_size = sizeof(struct shmrpc__ev_entry);
	h->nonce = nonce;
	h->mode = mode;
	memcpy(h->name_key, key, sizeof(key));
	/* Release: pairs with the acquire load in wait_magic(); everything
	 * above is visible to whoever sees the magic. */
	atomic_store_explicit(&h->magic, SHMRPC__REG_MAGIC, memory_order_release);
	r->hdr = h;
	r->size = size;
	r->capacity = capacity;
	r->nonce = nonce;
	r->mode = mode;
	memcpy(r->key, key, sizeof(key));
	return 0;
}

/* 0 once the magic is published, -EAGAIN after the grace period. */
static int wait_magic(struct shmrpc__reg_hdr *h)
{
	int64_t end = shmrpc__now_ns() + REG_GRACE_NS;
	uint64_t magic;

	/* One load per look: the creator may publish between two loads. */
	for (;;) {
		/* Acquire: pairs with the creator's release store of magic. */
		magic = atomic_load_explicit(&h->magic, memory_order_acquire);
		if (magic == SHMRPC__REG_MAGIC)
			return 0;
		if (magic != 0)
			return -EPROTO;
		if (shmrpc__now_ns() > end)
			return -EAGAIN;
		pause_us(50);
	}
}

/* Check the header and keep what it says in @r: checked and kept from one
 * copy, since any member can rewrite the file's header between a check of
 * it and a second read (a capacity past the mapping, a mode for others). */
static int reg_verify(struct shmrpc__reg *r, const struct shmrpc__reg_hdr *map, uint64_t size)
{
	struct shmrpc__reg_hdr hc, *h = &hc;

	memcpy(&hc, map, sizeof(hc));
	if (h->abi != SHMRPC__ABI || h->hdr_size != sizeof(*h) ||
	    h->slot_size != sizeof(struct shmrpc__slot) || h->capacity == 0 ||
	    h->capacity > SHMRPC__CAP_MAX || h->total_size != size ||
	    size != shmrpc__reg_size(h->capacity) || h->ev_cap != SHMRPC__EV_LOG ||
	    h->ev_size != sizeof(struct shmrpc__ev_entry))
		return -EPROTO;
	/* Every ring this process creates gets this mode: only what a creator
	 * could have asked for (owner read-write, group bits), never bits for
	 * other users, setuid or sticky. */
	if ((h->mode & ~0770u) || (h->mode & 0600) != 0600)
		return -EPROTO;
	r->capacity = h->capacity;
	r->nonce = h->nonce;
	r->mode = h->mode;
	memcpy(r->key, h->name_key, sizeof(r->key));
	return 0;
}

/*
 * Why the registry at @path was refused, for shmrpc_last_error: the usual
 * cause is another user's domain of the same name. lstat, not the file we
 * opened (we may not have got that far): only the message depends on it.
 */
static int attach_err(int err, const char *path, const char *domain)
{
	char full[sizeof(SHMRPC__SHM_DIR) + SHMRPC__PATH_MAX];
	struct stat st;

	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	if (lstat(full, &st))
		return err;
	if (!S_ISREG(st.st_mode))
		return shmrpc__err(err,
				   "registry %s is not a regular file (mode 0%o, uid %u): refused; "
				   "domain '%s' cannot be used until it is removed",
				   full, (unsigned)st.st_mode, (unsigned)st.st_uid, domain);
	if ((err == -EPERM || err == -EACCES) && st.st_uid != geteuid() && st.st_uid != 0)
		return shmrpc__err(
			err,
			"registry %s is owned by uid %u (not us, not root): another user "
			"holds domain '%s'",
			full, (unsigned)st.st_uid, domain);
	return err;
}

/* One attempt: 0, -ENOENT (nothing there), -EAGAIN (try again), -errno.
 * Without @wait, a registry whose magic is not published yet is -EAGAIN at
 * once (and left alone). */
static int reg_attach(struct shmrpc__reg *r, const char *path, uint32_t mode, bool wait)
{
	uint64_t size;
	void *map;
	int err;

	err = shmrpc__seg_open(path, sizeof(struct shmrpc__reg_hdr),
			       shmrpc__reg_size(SHMRPC__CAP_MAX), mode, false, &map, &size, &r->fd);
	if (err)
		return err == -ENOENT || err == -EAGAIN ? err : attach_err(err, path, r->domain);
	if (!wait)
		/* Acquire: pairs with the creator's release store of magic. */
		err = atomic_load_explicit(&((struct shmrpc__reg_hdr *)map)->magic,
					   memory_order_acquire) == SHMRPC__REG_MAGIC ?
			      0 :
			      -EAGAIN;
	else if ((err = wait_magic(map)) == -EAGAIN) /* the creator died before publishing */
		shmrpc__seg_unlink(path);
	if (!err)
		err = reg_verify(r, map, size);
	if (err) {
		shmrpc__seg_unmap(map, size);
		close(r->fd);
		r->fd = -1;
		return err == -EPROTO ? shmrpc__err(err,
						    "registry %s%s: not a registry of this "
						    "version (magic, ABI %u, sizes or mode)",
						    SHMRPC__SHM_DIR, path, SHMRPC__ABI) :
					err;
	}
	r->hdr = map;
	r->size = size;
	return 0;
}

/* Capacity, nonce, mode and key: set by reg_create or reg_verify. */
static void reg_opened(struct shmrpc__reg *r)
{
	pthread_mutex_init(&r->local, NULL);
	r->slots = (struct shmrpc__slot *)(r->hdr + 1);
	r->evlog = (struct shmrpc__ev_entry *)((char *)r->hdr + shmrpc__reg_evlog_off(r->capacity));
}

int shmrpc__reg_open_nowait(struct shmrpc__reg *r, const char *domain, uint32_t mode)
{
	char path[SHMRPC__PATH_MAX];
	int err;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	shmrpc__reg_path(path, domain);
	err = reg_attach(r, path, mode, false);
	if (!err)
		reg_opened(r);
	return err;
}

int shmrpc__reg_open(struct shmrpc__reg *r, const char *domain, uint32_t capacity, uint32_t mode,
		     bool create)
{
	char path[SHMRPC__PATH_MAX];
	int64_t start = shmrpc__now_ns(), empty_since = 0, now;
	int err, i;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	shmrpc__reg_path(path, domain);
	for (i = 0;; i++) {
		err = reg_attach(r, path, mode, true);
		if (err == -ENOENT && create) {
			err = reg_create(r, path, capacity, mode);
			if (err == -EEXIST)
				continue; /* lost the creation race: open theirs */
		}
		if (err != -EAGAIN)
			break;
		/* The file exists but is not sized yet. A creator does that in
		 * microseconds; one that died there left an empty file. */
		now = shmrpc__now_ns();
		if (!empty_since) {
			empty_since = now;
		} else if (now - empty_since > REG_GRACE_NS) {
			shmrpc__seg_unlink(path);
			empty_since = 0;
		}
		if (now - start > 3 * REG_GRACE_NS)
			break;
		pause_us(i < 10 ? 10 : 200);
	}
	if (err)
		return err;
	reg_opened(r);
	return 0;
}

void shmrpc__reg_close(struct shmrpc__reg *r)
{
	if (!r->hdr)
		return;
	shmrpc__seg_unmap(r->hdr, r->size);
	close(r->fd);
	pthread_mutex_destroy(&r->local);
	r->hdr = NULL;
	r->slots = NULL;
	r->fd = -1;
}

/*
 * Does the registry's name still name the file we hold (same device and
 * inode)? 1 yes; 0 no (unlinked, or replaced by a newer registry); -errno
 * when it cannot be told. Nothing is opened and no link is followed.
 */
static int reg_named(const struct shmrpc__reg *r)
{
	char name[SHMRPC__PATH_MAX], path[SHMRPC__PATH_MAX + 16];
	struct stat ours, named;

	shmrpc__reg_path(name, r->domain);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	if (fstat(r->fd, &ours))
		return -errno;
	if (fstatat(AT_FDCWD, path, &named, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -errno;
	return ours.st_dev == named.st_dev && ours.st_ino == named.st_ino;
}

bool shmrpc__reg_retired(struct shmrpc__reg *r, bool locked)
{
	/* Relaxed: a hint, checked against the name below. (A leaver sets it
	 * and unlinks the name under the lock: a holder of the lock sees
	 * both or neither.) */
	if (!atomic_load_explicit(&r->hdr->closed, memory_order_relaxed))
		return false;
	if (reg_named(r) != 1)
		return true; /* unlinked, replaced, or cannot tell: believe it */
	/* The name is still ours: no leaver unlinked it (or one is doing it
	 * right now, which only the lock can tell). Set by a corrupt or
	 * hostile member: ignore it, and repair it while we hold the lock. */
	if (locked) {
		shmrpc__log(SHMRPC_LOG_WARN,
			    "domain %s: registry marked closed but still in /dev/shm: "
			    "written by a member, not by a leaver; ignored and cleared",
			    r->domain);
		atomic_store_explicit(&r->hdr->closed, 0, memory_order_relaxed);
	}
	return false;
}

/*
 * The name is unlinked only if it still names the file we hold: a registry
 * we retire may have been unlinked already (by its owner) and the name
 * taken by a new registry, maybe another user's, which an unlink by name
 * would delete under its live nodes. Whoever could swap the file between
 * the check and the unlink can unlink ours anyway (the sticky /dev/shm lets
 * only a file's owner, or root, remove it).
 */
void shmrpc__reg_retire(struct shmrpc__reg *r)
{
	struct timespec ms = { 0, 1000000 };
	char path[SHMRPC__PATH_MAX];
	int named, tries;

	/* Relaxed: read under the same lock by a joiner (the mutex orders it). */
	atomic_store_explicit(&r->hdr->closed, 1, memory_order_relaxed);
	shmrpc__reg_path(path, r->domain);
	/* "Cannot tell" (fstat's ENOMEM) is tried again a few times: the last
	 * leave cannot return it, and would leave the registry in /dev/shm
	 * (found by tests/test_fault.c: close_last, fstat/fstatat failing). */
	for (tries = 0; (named = reg_named(r)) < 0 && tries < 3; tries++)
		nanosleep(&ms, NULL);
	if (named != 1) {
		shmrpc__log(SHMRPC_LOG_INFO,
			    "domain '%s': %s%s names another file now (or none): left alone",
			    r->domain, SHMRPC__SHM_DIR, path);
		return;
	}
	shmrpc__seg_unlink(path);
}
