// SPDX-License-Identifier: MIT
/*
 * The wake protocol: how a side that found nothing to do goes to sleep in
 * the kernel without missing the wake, and how the other side skips the
 * wake system call whenever nobody sleeps.
 *
 * Each futex word (a ring's data_seq and space_seq, a node's bell) holds a
 * sequence in bits 0..29 and a SLEEP flag in bit 31 (layout.h). Only a
 * waker changes the sequence; only a sleeper sets SLEEP; either may clear it.
 * Shown for data_seq (the consumer sleeps, the producer wakes); space_seq
 * is the same with the roles swapped, and the bell with many wakers.
 *
 *   consumer (found the ring empty)           producer (has published)
 *   v = LOAD data_seq                          STORE tail (B, release; ring.c)
 *   CAS data_seq: v -> v|SLEEP  (E)            FENCE (F, seq_cst, pairs with G)
 *   FENCE (G, seq_cst, pairs with F)           w = LOAD data_seq  (H)
 *   LOAD tail  (C)                             if (w & SLEEP)
 *   if a record is there: clear SLEEP, run       CAS data_seq: w -> (w+1) & SEQ
 *   else FUTEX_WAIT(data_seq, v|SLEEP)            FUTEX_WAKE(data_seq)
 *   clear SLEEP (fetch_and), look again         else: no system call at all
 *
 * Why nothing is lost: F and G are seq_cst fences, so one precedes the
 * other. If G comes first, the producer's load (H) after F sees SLEEP (E
 * is before G) and it bumps and wakes. If F comes first, the consumer's
 * load of tail (C) after G sees the record (B is before F) and it does not
 * sleep. The bump makes FUTEX_WAIT return at once if the wake came between
 * the consumer's check and its wait: the kernel compares the word with
 * v|SLEEP atomically with queueing the waiter.
 *
 * Bell mode: a consumer that cannot watch a ring's own word (the futex
 * backend beyond FUTEX_WAITV_MAX words) arms that word with SLEEP|BELL and
 * sleeps on its node's bell instead; a producer that clears BELL then wakes
 * the bell the same way, with the same fence F already behind it. The
 * consumer arms its bell *before* its ring words (release CAS, pairing with
 * the producer's acquire CAS), so a producer that clears a bell-mode word
 * always finds the bell armed; armed the other way round, a producer could
 * clear the word, find the bell idle, and leave the consumer asleep on a
 * bell nobody rings (docs/wake-protocol.md has spin's counter-example).
 *
 * Every sleep also has a safety timeout (SHMRPC__SAFETY_NS), after which
 * the sleeper re-checks everything: a bug here costs latency, not a hang.
 * tests/model/ checks this protocol exhaustively with spin.
 */
#include "wake.h"
#include "layout.h"

enum shmrpc__wake_kind shmrpc__wake_prepare(_Atomic uint32_t *w)
{
	uint32_t v;

	/* (F) Full fence: pairs with the sleeper's (G) in shmrpc__wait_fence;
	 * orders what we published before our look at the SLEEP flag. */
	atomic_thread_fence(memory_order_seq_cst);
	v = atomic_load_explicit(w, memory_order_relaxed);
	while (v & SHMRPC__W_SLEEP) {
		uint32_t next = ((v & SHMRPC__W_SEQ) + 1) & SHMRPC__W_SEQ;

		/* Release: the sleeper's acquire in shmrpc__wait_disarm (or its
		 * failed FUTEX_WAIT followed by that) sees what we published.
		 * Acquire: pairs with the release of the sleeper's arming CAS
		 * (E); in bell mode we then see its bell armed (it arms the bell
		 * first), so ringing the bell cannot miss it.
		 * On failure v is reloaded: another waker bumped (the sleeper is
		 * theirs to wake) or the sleeper re-armed (look again). */
		if (atomic_compare_exchange_weak_explicit(w, &v, next, memory_order_acq_rel,
							  memory_order_relaxed))
			return (v & SHMRPC__W_BELL) ? SHMRPC__WAKE_BELL : SHMRPC__WAKE_WORD;
	}
	return SHMRPC__WAKE_NONE;
}

uint32_t shmrpc__wait_arm(_Atomic uint32_t *w, uint32_t flags)
{
	uint32_t v = atomic_load_explicit(w, memory_order_relaxed), armed;

	for (;;) {
		armed = (v & SHMRPC__W_SEQ) | SHMRPC__W_SLEEP | flags;
		if (v == armed)
			return armed;
		/* (E) Release: pairs with the waker's acquire CAS, so that the
		 * words armed before this one (the bell) are seen armed. The
		 * re-check is ordered after all arms by the fence (G). */
		if (atomic_compare_exchange_weak_explicit(w, &v, armed, memory_order_release,
							  memory_order_relaxed))
			return armed;
	}
}

void shmrpc__wait_fence(void)
{
	/* (G) Full fence: pairs with the waker's (F) in shmrpc__wake_prepare. */
	atomic_thread_fence(memory_order_seq_cst);
}

void shmrpc__wait_disarm(_Atomic uint32_t *w)
{
	/* Acquire: pairs with the waker's release CAS; a wake we slept
	 * through is visible with what it published. */
	atomic_fetch_and_explicit(w, ~(SHMRPC__W_SLEEP | SHMRPC__W_BELL), memory_order_acquire);
}

void shmrpc__word_bump(_Atomic uint32_t *w)
{
	uint32_t v = atomic_load_explicit(w, memory_order_relaxed);

	/* Relaxed: whoever sleeps on @w is woken by the FUTEX_WAKE that
	 * follows and re-checks everything; only the value must change. */
	while (!atomic_compare_exchange_weak_explicit(
		w, &v, (v & ~SHMRPC__W_SEQ) | ((v + 1) & SHMRPC__W_SEQ), memory_order_relaxed,
		memory_order_relaxed))
		;
}
