// SPDX-License-Identifier: MIT
/*
 * The slots of a domain's registry (lib/layout.h; regfile.c opens the
 * file): reading them without a lock, taking and freeing them under the
 * registry lock, and the process's cache of open registries.
 *
 * Writers (join, leave, reclaim) hold the registry lock: an OFD write lock
 * on the file's first byte, which the kernel drops when its holder dies. It
 * is not a pthread mutex in the shared header on purpose: a robust mutex
 * keeps list pointers there that glibc writes through at unlock, so any peer
 * could aim our writes (docs/untrusted-memory.md); the kernel's lock state is
 * out of every peer's reach. A joiner notes its slot in `joining` while it
 * fills it; whoever takes the lock and finds the note set knows that joiner
 * died holding the lock: the lock hands the note to its taker, and the layer
 * above repairs (reclaim.c: shmrpc__dom_lock reclaims the slot). Readers
 * take no lock: each slot is a seqlock keyed on (state, gen), so a torn slot
 * is re-read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"
#include "clock.h"
#include "evlog.h"
#include "futex.h"
#include "layout.h"
#include "names.h"
#include "regfile.h"

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

uint32_t shmrpc__reg_hi(const struct shmrpc__reg *r)
{
	/* Acquire: pairs with the release store of hi in shmrpc__reg_take: a
	 * reader that sees a slot below hi sees that slot taken (JOINING). */
	uint32_t hi = atomic_load_explicit(&r->hdr->hi, memory_order_acquire);

	/* Untrusted: a corrupt hi must not index past the slots. */
	return hi < r->capacity ? hi : r->capacity;
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

#define LOCK_NOLCK_TRIES 4 /* takes of the lock that ENOLCK fails, 1 ms apart */

/*
 * ENOLCK is the kernel out of memory for the lock record (fs/locks.c):
 * transient, and tried again a few times, because a leave cannot return it
 * (shmrpc_close is void) and without the lock it leaves its slot, and the
 * last node the registry, in /dev/shm (found by tests/test_fault.c:
 * close_last, F_OFD_SETLKW failing with ENOLCK).
 */
static int ofd_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	int tries = 0;

	while (fcntl(fd, F_OFD_SETLKW, &fl)) {
		if (errno == ENOLCK && ++tries < LOCK_NOLCK_TRIES)
			pause_us(1000);
		else if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Just locked: did the previous holder die mid-join? Its note, or 0. */
static uint32_t lock_taken(struct shmrpc__reg *r)
{
	/* Relaxed: ordered by the lock (the kernel's, for other processes). */
	return atomic_load_explicit(&r->hdr->joining, memory_order_relaxed);
}

int shmrpc__reg_lock(struct shmrpc__reg *r, uint32_t *note)
{
	int err;

	pthread_mutex_lock(&r->local);
	err = ofd_lock(r->fd, F_WRLCK);
	if (err) {
		pthread_mutex_unlock(&r->local);
		return err;
	}
	*note = lock_taken(r);
	return 0;
}

void shmrpc__reg_joining(struct shmrpc__reg *r, uint32_t note)
{
	/* Relaxed: under the lock, which orders it for the next holder. */
	atomic_store_explicit(&r->hdr->joining, note, memory_order_relaxed);
}

/*
 * The registry's owner (or any member) can hold its lock for ever: a
 * blocking wait would stop whoever waits, and the root reaper serves every
 * user. So: try, and sleep between tries (5 us doubling to 200 us: joins
 * and leaves hold it for microseconds), until @timeout_ns has passed.
 */
int shmrpc__reg_lock_for(struct shmrpc__reg *r, int64_t timeout_ns, uint32_t *note)
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
	*note = lock_taken(r);
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
	return shmrpc__slot_read(&r->slots[i], v);
}

int shmrpc__slot_read(const struct shmrpc__slot *s, struct shmrpc__slot_view *v)
{
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
	v->flags = atomic_load_explicit(&s->flags, memory_order_relaxed);
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
	atomic_store_explicit(&s->flags, j->flags, memory_order_relaxed);
	name_pack(w, j->name);
	for (k = 0; k < 8; k++)
		atomic_store_explicit(&s->name[k], w[k], memory_order_relaxed);
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
	int i = free_slot(r);

	if (i < 0)
		return i;
	s = &r->slots[i];
	*gen = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
	if (*gen == 0)
		*gen = 1; /* 0 means "none" in the node tables */
	slot_begin(s, SHMRPC__SLOT_JOINING, *gen);
	slot_fill(s, j);
	if ((uint32_t)i >= shmrpc__reg_hi(r))
		/* Release: pairs with the acquire load in shmrpc__reg_hi; the
		 * slot's JOINING state and fields above are seen with it. */
		atomic_store_explicit(&r->hdr->hi, (uint32_t)i + 1, memory_order_release);
	atomic_fetch_add_explicit(&r->hdr->live, 1, memory_order_relaxed);
	return i;
}

/* The epoch changed: wake its waiters (shmrpc_wait_node, the reaper). */
static void reg_bump(struct shmrpc__reg *r)
{
	/* Release: a waiter that sees the new epoch sees the slot change. */
	atomic_fetch_add_explicit(&r->hdr->epoch, 1, memory_order_release);
	shmrpc__futex_wake(&r->hdr->epoch);
}

/* The event goes to the log after the slot changed and before the bump:
 * a reader that gets it finds the slot as the event says (a LEAVE's slot
 * FREE), and the bump wakes the readers asleep on the epoch (evlog.c). */
void shmrpc__reg_publish(struct shmrpc__reg *r, uint32_t slot)
{
	/* Release: pairs with the acquire load of state in reg_read. */
	atomic_store_explicit(&r->slots[slot].state, SHMRPC__SLOT_LIVE, memory_order_release);
	shmrpc__evlog_append(r, SHMRPC_EV_JOIN, slot,
			     atomic_load_explicit(&r->slots[slot].gen, memory_order_relaxed));
	reg_bump(r);
}

void shmrpc__reg_free(struct shmrpc__reg *r, uint32_t slot, uint32_t gen, uint32_t ev)
{
	struct shmrpc__slot *s = &r->slots[slot];
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);

	if (atomic_load_explicit(&s->gen, memory_order_relaxed) != gen || st == SHMRPC__SLOT_FREE)
		return;
	slot_begin(s, SHMRPC__SLOT_FREE, gen);
	atomic_fetch_sub_explicit(&r->hdr->live, 1, memory_order_relaxed);
	/* Only a node that was LIVE was ever seen: a joiner that never
	 * completed leaves no event. */
	if (ev && st == SHMRPC__SLOT_LIVE)
		shmrpc__evlog_append(r, ev, slot, gen);
	reg_bump(r);
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
