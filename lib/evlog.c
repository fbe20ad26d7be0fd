// SPDX-License-Identifier: MIT
/*
 * The event log of a domain's registry (lib/layout.h): a ring of
 * SHMRPC__EV_LOG fixed entries after the slots, and ev_head, the count of
 * events ever appended. Writers are the registry lock's holders (a join
 * publishing its slot, a leave or a reclaim freeing one: registry.c), so
 * appends never race each other; a writer never waits for a reader, and an
 * append costs the same few stores whoever subscribes. Readers (events.c)
 * keep a cursor of their own and take no lock.
 *
 * Each entry is a seqlock, the whole log a ring that overwrites its oldest:
 *
 *   writer (lock held)                     reader of entry i
 *   i = LOAD ev_head (relaxed: the lock)   h = LOAD ev_head (acquire, pairs with W4)
 *   STORE e->seq = 0             (W1)      s = LOAD e->seq (R1, acquire, pairs with W3)
 *   FENCE release                (W2)      s != i + 1: overwritten, or not yet there
 *   STORE fields (relaxed)                 LOAD fields (relaxed)
 *   STORE e->seq = i + 1 (W3, release)     FENCE acquire (R2, pairs with W2)
 *   STORE ev_head = i + 1 (W4, release)    LOAD e->seq again: changed? overwritten
 *
 * A reader that read any field of a newer writer sees (through W2/R2) at
 * least that writer's seq = 0, so its re-check fails: a torn entry is never
 * taken for a whole one. Everything here is written by members of the
 * domain, any of whom can write garbage: an entry is checked (type, id,
 * name) before it is believed, and a reader bounds its own work (events.c).
 */
#include <errno.h>
#include <string.h>

#include "evlog.h"
#include "clock.h"
#include "layout.h"
#include "names.h"
#include "regfile.h"

void shmrpc__evlog_append(struct shmrpc__reg *r, uint32_t type, uint32_t slot, uint32_t gen)
{
	struct shmrpc__slot *s = &r->slots[slot];
	/* Relaxed: only the lock's holders write it; the lock orders them. */
	uint64_t i = atomic_load_explicit(&r->hdr->ev_head, memory_order_relaxed);
	struct shmrpc__ev_entry *e = &r->evlog[i % SHMRPC__EV_LOG];
	int k;

	atomic_store_explicit(&e->seq, 0, memory_order_relaxed); /* (W1) */
	/* (W2) Release fence: pairs with the reader's acquire fence (R2). */
	atomic_thread_fence(memory_order_release);
	/* Relaxed: published by the release store of seq (W3). The slot's
	 * fields are stable: we hold the lock its writers hold. */
	atomic_store_explicit(&e->type, type, memory_order_relaxed);
	atomic_store_explicit(&e->pid, atomic_load_explicit(&s->pid, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&e->id, (uint64_t)slot << 32 | gen, memory_order_relaxed);
	atomic_store_explicit(&e->ns, (uint64_t)shmrpc__now_ns(), memory_order_relaxed);
	for (k = 0; k < 8; k++)
		atomic_store_explicit(&e->name[k],
				      atomic_load_explicit(&s->name[k], memory_order_relaxed),
				      memory_order_relaxed);
	/* (W3) Release: pairs with the reader's acquire load of seq (R1). */
	atomic_store_explicit(&e->seq, i + 1, memory_order_release);
	/* (W4) Release: pairs with the reader's acquire load of ev_head. */
	atomic_store_explicit(&r->hdr->ev_head, i + 1, memory_order_release);
}

uint64_t shmrpc__evlog_head(const struct shmrpc__reg *r)
{
	/* Acquire: pairs with the writer's release store (W4). */
	return atomic_load_explicit(&r->hdr->ev_head, memory_order_acquire);
}

static bool type_ok(uint32_t t)
{
	return t == SHMRPC_EV_JOIN || t == SHMRPC_EV_LEAVE || t == SHMRPC_EV_DEATH;
}

int shmrpc__evlog_read(const struct shmrpc__reg *r, uint64_t idx, struct shmrpc_event *ev,
		       uint64_t *ns)
{
	const struct shmrpc__ev_entry *e = &r->evlog[idx % SHMRPC__EV_LOG];
	uint64_t seq, w[8];
	int k;

	/* (R1) Acquire: pairs with the writer's release store of seq (W3). */
	seq = atomic_load_explicit(&e->seq, memory_order_acquire);
	if (seq != idx + 1)
		return -ESTALE;
	/* Relaxed: validated by the re-check of seq below. */
	ev->type = atomic_load_explicit(&e->type, memory_order_relaxed);
	ev->pid = (uint32_t)atomic_load_explicit(&e->pid, memory_order_relaxed);
	ev->id = atomic_load_explicit(&e->id, memory_order_relaxed);
	*ns = atomic_load_explicit(&e->ns, memory_order_relaxed);
	for (k = 0; k < 8; k++)
		w[k] = atomic_load_explicit(&e->name[k], memory_order_relaxed);
	/* (R2) Acquire fence: pairs with the writer's release fence (W2). */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&e->seq, memory_order_relaxed) != seq)
		return -ESTALE;
	memcpy(ev->name, w, sizeof(ev->name));
	ev->dropped = 0;
	if (!type_ok(ev->type) || (ev->id >> 32) >= r->capacity || !(uint32_t)ev->id ||
	    shmrpc__name_check_field((const char *)w, sizeof(w)))
		return -EPROTO;
	return 0;
}
