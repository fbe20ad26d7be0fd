/* SPDX-License-Identifier: MIT */
/*
 * Model of the wake protocol of tools/bench/ring.c (futex and eventfd
 * baselines), for the spin model checker. Sequentially consistent, which is
 * what the seq_cst RMW + fences (W, F in ring.c) give the Dekker part.
 * A ring of CAP slots, N messages; both directions of waiting (consumer on
 * seq[DATA] when empty, producer on seq[SPACE] when full). A lost wake-up
 * leaves a side blocked forever: an invalid end state.
 *
 *	spin -a -DEVENTFD tools/bench/ring_wake.pml   (or without -DEVENTFD)
 *	gcc -O2 -o pan pan.c && ./pan -m100000
 *	expect: errors: 0
 */
#define N 4
#define CAP 1
#define SLEEP 8	/* flag bit; the count lives in the low 3 bits */
#define SEQ 7

byte tail, head;	/* published / consumed messages */
byte seq[2];		/* [0] DATA: consumer sleeps; [1] SPACE: producer sleeps */
bool blocked[2];	/* futex: a waiter is queued on seq[k] */
byte count[2];		/* eventfd: counter of the eventfd for k */

#ifdef EVENTFD
/* read(2): sleep until the counter is > 0, then take it all. */
#define BLOCK(k, v)	atomic { count[k] > 0 -> count[k] = 0 }
#define KICK(k)		count[k]++
#else
/* FUTEX_WAIT: queue only if the word still holds v (atomically), then
 * sleep until FUTEX_WAKE dequeues us. */
#define BLOCK(k, v)	atomic { if :: seq[k] == v -> blocked[k] = true :: else -> skip fi }; \
			!blocked[k]
#define KICK(k)		blocked[k] = false
#endif

/* ring_wait: announce, look again (moved?), else block. */
#define WAIT(k, moved)						\
	atomic { s = seq[k] | SLEEP; seq[k] = s };		\
	if							\
	:: moved -> atomic { if :: seq[k] == s -> seq[k] = s & ~SLEEP :: else -> skip fi } \
	:: else -> BLOCK(k, s)					\
	fi

/* ring_wake: after publishing an index. */
#define WAKE(k)							\
	w = seq[k];						\
	if							\
	:: (w & SLEEP) ->					\
		atomic { if :: seq[k] == w -> seq[k] = (w + 1) & SEQ; ok = true :: else -> ok = false fi }; \
		if :: ok -> KICK(k) :: else -> skip fi		\
	:: else -> skip						\
	fi

active proctype producer()
{
	byte s, w, h;
	bool ok;

	do
	:: tail == N -> break
	:: else ->
		h = head;
		if
		:: tail - h < CAP ->
			tail++;
			WAKE(0)
		:: else ->
			WAIT(1, head != h)
		fi
	od
}

active proctype consumer()
{
	byte s, w, t;
	bool ok;

	do
	:: head == N -> break
	:: else ->
		t = tail;
		if
		:: head != t ->
			head++;
			WAKE(1)
		:: else ->
			WAIT(0, tail != t)
		fi
	od
}
