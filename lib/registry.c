// SPDX-License-Identifier: MIT
/*
 * The registry of a domain: /dev/shm/shmrpc.<domain>.reg, a header and a
 * fixed array of slots (see lib/layout.h).
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
 * Writers (join, leave, reclaim) hold the registry lock: an OFD write lock
 * on the file's first byte, which the kernel drops when its holder dies. It
 * is not a pthread mutex in the shared header on purpose: a robust mutex
 * keeps list pointers there that glibc writes through at unlock, so any peer
 * could aim our writes (docs/untrusted-memory.md); the kernel's lock state is
 * out of every peer's reach. A joiner notes its slot in `joining` while it
 * fills it; whoever takes the lock and finds the note set knows that joiner
 * died holding the lock, and reclaims the slot. Readers take no lock: each
 * slot is a seqlock keyed on (state, gen), so a torn slot is re-read.
 *
 * Teardown race: the last node to leave sets `closed` and unlinks the file,
 * both under the lock. A joiner that opened the file before the unlink sees
 * `closed` once it holds the lock, and reopens by name (a fresh registry).
 * `closed` is shared memory that any member can write, so it is only a
 * hint: it is believed when the registry's name no longer names the file
 * we hold (shmrpc__reg_retired); a lie is repaired under the lock.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

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
	err = shmrpc__seg_create(path, size, mode, &map, &r->fd);
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
	    size != shmrpc__reg_size(h->capacity))
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

uint32_t shmrpc__reg_hi(const struct shmrpc__reg *r)
{
	uint32_t hi = atomic_load_explicit(&r->hdr->hi, memory_order_acquire);

	/* Untrusted: a corrupt hi must not index past the slots. */
	return hi < r->capacity ? hi : r->capacity;
}

/* The previous holder died while filling the slot it noted in `joining`. */
static void reg_repair(struct shmrpc__reg *r, uint32_t note)
{
	uint32_t slot = note - 1;

	if (slot < r->capacity &&
	    atomic_load_explicit(&r->slots[slot].state, memory_order_relaxed) != SHMRPC__SLOT_FREE)
		shmrpc__reclaim(r, slot,
				atomic_load_explicit(&r->slots[slot].gen, memory_order_relaxed));
	atomic_store_explicit(&r->hdr->joining, 0, memory_order_relaxed);
	shmrpc__reg_recount(r);
}

/*
 * The next slot from @i on that lies in a data extent of the registry file,
 * or the capacity. A full scan reads only those: not up to hi, which is
 * shared and untrusted; not every slot of the capacity either, which would
 * read every page of a 65536-slot registry (8 MiB) at every leave; and not
 * a hole between data extents: a slot that is not FREE was written, and a
 * written page is data. On tmpfs reading a hole through a shared mapping
 * allocates the page and charges it to the reader: a sparse registry that
 * someone crafted (ftruncate, no fallocate) would cost whoever scans it
 * (the root reaper) 8 MiB. Without SEEK_DATA (not tmpfs) every slot counts
 * as data.
 *
 * Every page is reserved at creation (seg.c). On tmpfs a reserved page
 * that nobody touched yet counts as a hole for SEEK_DATA (kernel 6.18 here:
 * tests/test_enospc.c prints what it observes), so the scan still stops at
 * the written slots; a kernel that counted reserved pages as data would
 * make it scan them: slower scans, the same answer.
 */
uint32_t shmrpc__reg_scan_next(const struct shmrpc__reg *r, struct shmrpc__reg_scan *sc, uint32_t i)
{
	const off_t hdr = sizeof(struct shmrpc__reg_hdr), ss = sizeof(struct shmrpc__slot);
	off_t off, data, hole;

	while (i < r->capacity) {
		off = hdr + (off_t)i * ss;
		if (off + ss > sc->data && off < sc->hole)
			return i;
		if (off + ss <= sc->data) { /* before the known extent: skip to it */
			i = (uint32_t)((sc->data - hdr) / ss);
			continue;
		}
		data = lseek(r->fd, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* holes to the end */
		if (data < 0) {
			sc->data = 0;
			sc->hole = INT64_MAX; /* cannot tell: everything is data */
			continue;
		}
		hole = lseek(r->fd, data, SEEK_HOLE);
		sc->data = data < off ? off : data;
		sc->hole = hole > data ? hole : INT64_MAX;
	}
	return r->capacity;
}

uint32_t shmrpc__reg_scan_end(const struct shmrpc__reg *r)
{
	struct shmrpc__reg_scan sc = { 0, 0 };
	uint32_t i, end = 0;

	for (i = shmrpc__reg_scan_next(r, &sc, 0); i < r->capacity;
	     i = shmrpc__reg_scan_next(r, &sc, i + 1))
		end = i + 1;
	return end;
}

uint32_t shmrpc__reg_recount(struct shmrpc__reg *r)
{
	struct shmrpc__reg_scan sc = { 0, 0 };
	uint32_t i, live = 0;

	/* Every written slot, not only those below hi: hi is shared and
	 * untrusted. */
	for (i = shmrpc__reg_scan_next(r, &sc, 0); i < r->capacity;
	     i = shmrpc__reg_scan_next(r, &sc, i + 1))
		live += atomic_load_explicit(&r->slots[i].state, memory_order_relaxed) !=
			SHMRPC__SLOT_FREE;
	atomic_store_explicit(&r->hdr->live, live, memory_order_relaxed);
	return live;
}

static int ofd_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	while (fcntl(fd, F_OFD_SETLKW, &fl)) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Just locked: did the previous holder die mid-join? */
static void lock_taken(struct shmrpc__reg *r)
{
	/* Relaxed: ordered by the lock (the kernel's, for other processes). */
	uint32_t note = atomic_load_explicit(&r->hdr->joining, memory_order_relaxed);

	if (note)
		reg_repair(r, note);
}

int shmrpc__reg_lock(struct shmrpc__reg *r)
{
	int err;

	pthread_mutex_lock(&r->local);
	err = ofd_lock(r->fd, F_WRLCK);
	if (err) {
		pthread_mutex_unlock(&r->local);
		return err;
	}
	lock_taken(r);
	return 0;
}

/*
 * The registry's owner (or any member) can hold its lock for ever: a
 * blocking wait would stop whoever waits, and the root reaper serves every
 * user. So: try, and sleep between tries (5 us doubling to 200 us: joins
 * and leaves hold it for microseconds), until @timeout_ns has passed.
 */
int shmrpc__reg_lock_for(struct shmrpc__reg *r, int64_t timeout_ns)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	int64_t end = shmrpc__now_ns() + timeout_ns;
	long us = 5;
	int err;

	pthread_mutex_lock(&r->local);
	while (fcntl(r->fd, F_OFD_SETLK, &fl)) {
		err = -errno;
		if (err != -EAGAIN && err != -EACCES && err != -EINTR) {
			pthread_mutex_unlock(&r->local);
			return err;
		}
		if (shmrpc__now_ns() >= end) {
			pthread_mutex_unlock(&r->local);
			return -ETIMEDOUT;
		}
		pause_us(us);
		us = us < 100 ? us * 2 : 200;
	}
	lock_taken(r);
	return 0;
}

void shmrpc__reg_unlock(struct shmrpc__reg *r)
{
	ofd_lock(r->fd, F_UNLCK);
	pthread_mutex_unlock(&r->local);
}

static void name_pack(uint64_t w[8], const char *name)
{
	memset(w, 0, 64);
	memcpy(w, name, strnlen(name, SHMRPC_NAME_MAX));
}

int shmrpc__reg_read(const struct shmrpc__reg *r, uint32_t i, struct shmrpc__slot_view *v)
{
	struct shmrpc__slot *s = &r->slots[i];
	uint64_t w[8];
	int k;

	/* Acquire: pairs with the release store of state in reg_publish, so
	 * a LIVE slot's fields are complete. */
	v->state = atomic_load_explicit(&s->state, memory_order_acquire);
	v->gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
	/* Relaxed: validated by the gen/state re-check below. */
	v->pid = atomic_load_explicit(&s->pid, memory_order_relaxed);
	v->uid = atomic_load_explicit(&s->uid, memory_order_relaxed);
	v->start_time = atomic_load_explicit(&s->start_time, memory_order_relaxed);
	v->pidns = atomic_load_explicit(&s->pidns, memory_order_relaxed);
	v->join_ns = atomic_load_explicit(&s->join_ns, memory_order_relaxed);
	v->ring_bytes = atomic_load_explicit(&s->ring_bytes, memory_order_relaxed);
	v->backend = atomic_load_explicit(&s->backend, memory_order_relaxed);
	for (k = 0; k < 8; k++)
		w[k] = atomic_load_explicit(&s->name[k], memory_order_relaxed);
	/* Acquire fence: pairs with the release fence in slot_begin(); if we
	 * read any field of a newer writer, we see its state/gen change. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->gen, memory_order_relaxed) != v->gen ||
	    atomic_load_explicit(&s->state, memory_order_relaxed) != v->state)
		return -EAGAIN;
	memcpy(v->name, w, 64);
	v->name[SHMRPC_NAME_MAX] = '\0';
	if (v->state == SHMRPC__SLOT_LIVE && shmrpc__name_check_field((char *)w, 64))
		return -EPROTO;
	return 0;
}

int shmrpc__reg_find(const struct shmrpc__reg *r, const char *name, uint32_t *slot,
		     struct shmrpc__slot_view *v)
{
	uint32_t i, hi = shmrpc__reg_hi(r);
	uint64_t want[8];
	int k, tries;

	name_pack(want, name);
	for (i = 0; i < hi; i++) {
		struct shmrpc__slot *s = &r->slots[i];

		if (atomic_load_explicit(&s->state, memory_order_relaxed) != SHMRPC__SLOT_LIVE)
			continue;
		/* Relaxed: a cheap filter; the seqlock read below decides. */
		for (k = 0; k < 8; k++)
			if (atomic_load_explicit(&s->name[k], memory_order_relaxed) != want[k])
				break;
		if (k < 8)
			continue;
		for (tries = 0; tries < 100; tries++)
			if (shmrpc__reg_read(r, i, v) != -EAGAIN)
				break;
		if (v->state == SHMRPC__SLOT_LIVE && !strcmp(v->name, name)) {
			*slot = i;
			return 0;
		}
	}
	return -ENOENT;
}

/* Seqlock writer: announce the change of (state, gen) before any field. */
static void slot_begin(struct shmrpc__slot *s, uint32_t state, uint32_t gen)
{
	atomic_store_explicit(&s->state, state, memory_order_relaxed);
	atomic_store_explicit(&s->gen, gen, memory_order_relaxed);
	/* Release fence: pairs with the acquire fence in shmrpc__reg_read. */
	atomic_thread_fence(memory_order_release);
}

static void slot_fill(struct shmrpc__slot *s, const struct shmrpc__join *j)
{
	uint64_t w[8];
	int k;

	/* Relaxed: published by the release store of LIVE in reg_publish. */
	atomic_store_explicit(&s->pid, j->proc.pid, memory_order_relaxed);
	atomic_store_explicit(&s->uid, j->proc.uid, memory_order_relaxed);
	atomic_store_explicit(&s->start_time, j->proc.start_time, memory_order_relaxed);
	atomic_store_explicit(&s->pidns, j->proc.pidns, memory_order_relaxed);
	atomic_store_explicit(&s->join_ns, (uint64_t)shmrpc__now_ns(), memory_order_relaxed);
	atomic_store_explicit(&s->ring_bytes, j->ring_bytes, memory_order_relaxed);
	atomic_store_explicit(&s->backend, j->backend, memory_order_relaxed);
	name_pack(w, j->name);
	for (k = 0; k < 8; k++)
		atomic_store_explicit(&s->name[k], w[k], memory_order_relaxed);
}

/* Under the lock: is @name taken by a live node? Reclaims a dead holder. */
static int name_taken(struct shmrpc__reg *r, const char *name)
{
	struct shmrpc__slot_view v;
	uint32_t i;

	while (!shmrpc__reg_find(r, name, &i, &v)) {
		if (shmrpc__node_alive(r, i, v.gen) != 0)
			return -EEXIST; /* alive, or cannot tell: never steal */
		shmrpc__reclaim(r, i, v.gen);
	}
	return 0;
}

bool shmrpc__pid_gone(int32_t pid)
{
	return pid <= 0 || (kill(pid, 0) && errno == ESRCH);
}

/* Other nodes' slots a join looks at (join_reclaim): all of them in a
 * domain of up to JOIN_ALL slots, else JOIN_CHECKS. */
#define JOIN_ALL 16
#define JOIN_CHECKS 2

/*
 * Lazy reclaim (brief, Cleanup 3): under the lock, a joiner frees the slot
 * and files of every node that is gone, not only a dead holder of its own
 * name, so a domain with neither a reaper nor a peer watching the dead node
 * gets them back at the next join. "Gone" is decided by the liveness lock
 * (shmrpc__node_alive), which a reused pid cannot fake and which works
 * across pid namespaces; the slot's pid and start time are informational.
 * Each check is an open and a lock query (~4 us here) under the registry
 * lock, so a join checks every slot of a small domain (up to JOIN_ALL: one
 * join surely cleans it), but only JOIN_CHECKS slots from a random start in
 * a larger one: joining a domain of thousands stays cheap, and a slot beyond
 * the budget is reached by a later join, a lookup, the peers' watchers, the
 * reaper, or the full sweep of a full registry. (No kill(pid, 0) shortcut:
 * a reused pid would look alive.)
 */
static void join_reclaim(struct shmrpc__reg *r)
{
	uint32_t hi = shmrpc__reg_hi(r), i, k, checks = 0, start, budget;

	if (!hi)
		return;
	budget = hi <= JOIN_ALL ? hi : JOIN_CHECKS;
	start = (uint32_t)((uint64_t)shmrpc__now_ns() % hi);
	for (k = 0; k < hi && checks < budget; k++) {
		struct shmrpc__slot *s;

		i = start + k < hi ? start + k : start + k - hi;
		s = &r->slots[i];
		/* Relaxed: under the lock, and shmrpc__reclaim re-reads both. */
		if (atomic_load_explicit(&s->state, memory_order_relaxed) == SHMRPC__SLOT_FREE)
			continue;
		checks++;
		shmrpc__reclaim(r, i, atomic_load_explicit(&s->gen, memory_order_relaxed));
	}
}

static int free_slot(struct shmrpc__reg *r)
{
	uint32_t i, hi = shmrpc__reg_hi(r);

	for (i = 0; i < hi; i++)
		if (atomic_load_explicit(&r->slots[i].state, memory_order_relaxed) ==
		    SHMRPC__SLOT_FREE)
			return (int)i;
	return hi < r->capacity ? (int)hi : -ENOSPC;
}

int shmrpc__reg_take(struct shmrpc__reg *r, const struct shmrpc__join *j, uint32_t *gen)
{
	struct shmrpc__slot *s;
	int err, i;

	err = name_taken(r, j->name);
	if (err)
		return err;
	join_reclaim(r);
	i = free_slot(r);
	if (i == -ENOSPC && shmrpc__reclaim_sweep(r, UINT32_MAX, 0) > 0)
		i = free_slot(r);
	if (i < 0)
		return i;
	s = &r->slots[i];
	*gen = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
	if (*gen == 0)
		*gen = 1; /* 0 means "none" in the node tables */
	slot_begin(s, SHMRPC__SLOT_JOINING, *gen);
	slot_fill(s, j);
	if ((uint32_t)i >= shmrpc__reg_hi(r))
		atomic_store_explicit(&r->hdr->hi, (uint32_t)i + 1, memory_order_release);
	atomic_fetch_add_explicit(&r->hdr->live, 1, memory_order_relaxed);
	return i;
}

void shmrpc__reg_bump(struct shmrpc__reg *r)
{
	/* Release: a waiter that sees the new epoch sees the slot change. */
	atomic_fetch_add_explicit(&r->hdr->epoch, 1, memory_order_release);
	shmrpc__futex_wake(&r->hdr->epoch);
}

void shmrpc__reg_publish(struct shmrpc__reg *r, uint32_t slot)
{
	/* Release: pairs with the acquire load of state in reg_read. */
	atomic_store_explicit(&r->slots[slot].state, SHMRPC__SLOT_LIVE, memory_order_release);
	shmrpc__reg_bump(r);
}

void shmrpc__reg_free(struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	struct shmrpc__slot *s = &r->slots[slot];

	if (atomic_load_explicit(&s->gen, memory_order_relaxed) != gen ||
	    atomic_load_explicit(&s->state, memory_order_relaxed) == SHMRPC__SLOT_FREE)
		return;
	slot_begin(s, SHMRPC__SLOT_FREE, gen);
	atomic_fetch_sub_explicit(&r->hdr->live, 1, memory_order_relaxed);
	shmrpc__reg_bump(r);
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
	char path[SHMRPC__PATH_MAX];

	/* Relaxed: read under the same lock by a joiner (the mutex orders it). */
	atomic_store_explicit(&r->hdr->closed, 1, memory_order_relaxed);
	shmrpc__reg_path(path, r->domain);
	if (reg_named(r) != 1) {
		shmrpc__log(SHMRPC_LOG_INFO,
			    "domain '%s': %s%s names another file now (or none): left alone",
			    r->domain, SHMRPC__SHM_DIR, path);
		return;
	}
	shmrpc__seg_unlink(path);
}

int shmrpc__reg_regen(struct shmrpc__reg *r, uint32_t slot, uint32_t *gen)
{
	struct shmrpc__slot *s = &r->slots[slot];
	uint32_t g = *gen + 1;

	if (g == 0)
		g = 1; /* 0 means "none" in the node tables */
	slot_begin(s, SHMRPC__SLOT_JOINING, g);
	*gen = g;
	return 0;
}

/*
 * Nodes of one process share a domain's registry: one mapping, one lock
 * descriptor, opened once. Opening it again for every node cost a join
 * three system calls and a mapping (a third of its time). The descriptor's
 * OFD lock then excludes other processes, and the mutex in front of it the
 * threads of this one, whichever node they act for. Never shared with a
 * forked child: its copy of the descriptor is the same open file
 * description, whose lock would not exclude the parent. The child forgets
 * the cache (its copies of the parent's nodes still point at theirs).
 *
 * References, under cache_lock: one per node holding the registry, and one
 * of the cache itself while the registry is in it (`cached`). The cache lets
 * go of its reference when the registry turns out retired (a holder may
 * still use it until it leaves) or when its last holder puts it.
 */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmrpc__reg *cache;

/* Under cache_lock: take @r out of the cache; true if that was its last
 * reference (the caller frees it, outside the lock if it likes). */
static bool cache_drop(struct shmrpc__reg *r)
{
	struct shmrpc__reg **pp;

	for (pp = &cache; *pp; pp = &(*pp)->cache_next)
		if (*pp == r) {
			*pp = r->cache_next;
			break;
		}
	r->cache_next = NULL;
	r->cached = false;
	return !--r->refs;
}

static void reg_free(struct shmrpc__reg *r)
{
	shmrpc__reg_close(r);
	free(r);
}

int shmrpc__reg_get(const char *domain, uint32_t capacity, uint32_t mode, struct shmrpc__reg **out)
{
	struct shmrpc__reg *r;
	int err = 0;

	pthread_mutex_lock(&cache_lock);
	for (r = cache; r; r = r->cache_next)
		if (!strcmp(r->domain, domain))
			break;
	/* Retired: whoever holds it keeps it; the cache lets go. */
	if (r && shmrpc__reg_retired(r, false)) {
		if (cache_drop(r))
			reg_free(r);
		r = NULL;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		err = r ? shmrpc__reg_open(r, domain, capacity, mode, true) : -ENOMEM;
		if (err) {
			free(r);
			r = NULL;
		} else {
			r->cache_next = cache;
			cache = r;
			r->cached = true;
			r->refs = 1; /* the cache's */
		}
	}
	if (r)
		r->refs++;
	pthread_mutex_unlock(&cache_lock);
	*out = r;
	return err;
}

void shmrpc__reg_put(struct shmrpc__reg *r)
{
	bool last;

	if (!r)
		return;
	pthread_mutex_lock(&cache_lock);
	last = !--r->refs;
	/* Only the cache's reference left: no node uses it any more. */
	if (!last && r->cached && r->refs == 1)
		last = cache_drop(r);
	pthread_mutex_unlock(&cache_lock);
	if (last)
		reg_free(r);
}

void shmrpc__reg_fork_prepare(void)
{
	pthread_mutex_lock(&cache_lock);
}

void shmrpc__reg_fork_parent(void)
{
	pthread_mutex_unlock(&cache_lock);
}

void shmrpc__reg_fork_child(void)
{
	struct shmrpc__reg *r;

	/* The copies of the parent's nodes keep their references; the cache
	 * drops its own (a cached registry always has a holder too). */
	while ((r = cache))
		if (cache_drop(r))
			reg_free(r);
	pthread_mutex_unlock(&cache_lock);
}
