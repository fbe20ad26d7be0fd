/* SPDX-License-Identifier: MIT */
/*
 * Promela model of the libshmrpc wake protocol (docs/wake-protocol.md).
 *
 * Processes: one consumer C (id 0) owning two inbound rings; producer P0
 * (id 1) on ring 0, known to C from the start, waited on with futex_waitv
 * on its data_seq; producer P1 (id 2) on ring 1, a new ring that P1
 * announces through the pending bitmap and the bell, in bell mode (C sleeps
 * on the bell, not on ring 1's data_seq). Each producer sends N records
 * through a ring of CAP slots, so it fills the ring and sleeps on space_seq.
 *
 * Memory model: sequentially consistent by default; with -DTSO every
 * process's plain stores go through a FIFO store buffer (x86-TSO) flushed
 * by a separate flusher process at any time, loads forward from the own
 * buffer, and FENCE, every locked RMW and every futex syscall wait until
 * the own buffer is empty.
 *
 * Futexes: futex_wait(v) checks the words and blocks atomically (as the
 * kernel does under the hash-bucket lock); only a FUTEX_WAKE on a waited
 * address unblocks. No timeouts, no spurious wakeups: either would hide a
 * lost wakeup.
 *
 * Checks: assertions (records in order, none lost or duplicated; flag
 * invariants, see INV), and deadlock: C stops only after consuming all
 * 2*N records and no state other than a flusher's idle loop is a valid end
 * state, so a lost wakeup shows up as an invalid end state. With -DNP,
 * progress labels let pan look for cycles that consume nothing.
 *
 * Barrier letters are those of the diagrams in docs/wake-protocol.md.
 *
 * Variants (-D), run by run.sh with their expected verdicts:
 *   (none)        the protocol, with C arming the bell before the ring words
 *   BELL_LAST     C arms the bell after the ring words, as first specified:
 *                 loses a bell-mode wakeup (docs/wake-protocol.md)
 *   M1            C skips the re-check after arming
 *   M2            producer: no FENCE (A) after publishing tail; TSO only
 *   M3            wakers clear SLEEP without bumping the sequence: passes,
 *                 the bump is redundant (see the doc)
 *   M4            bell-mode wake bumps data_seq but does not ring the bell
 *   M5            wake by plain store instead of CAS (H); TSO only
 *   M6            C: no FENCE (F) after storing head; TSO only
 *   M7            tail published before the record is written
 * Configurations: TSO; RING0_BELL (ring 0 in bell mode too, two wakers
 * race on the bell); ANNOUNCE_LATE (P1 announces after its first record);
 * N, CAP; NOGHOST (drop INV_SLEEP: only a deadlock or a bad record fails).
 */

#ifndef N
#define N 2		/* records per producer */
#endif
#ifndef CAP
#define CAP 1		/* ring capacity in records */
#endif
#define D 2		/* store-buffer depth (a producer's record + tail) */
#ifdef RING0_BELL
#define MODE0 64	/* ring 0 in bell mode too: two wakers race on the bell */
#else
#define MODE0 0
#endif

/* futex word: SLEEP bit 7, BELL bit 6, sequence bits 0..5 */
#define SLEEP 128
#define BELL 64
#define SEQ 63
#ifdef M3
#define BUMP(v) ((v) & SEQ)
#else
#define BUMP(v) ((((v) & SEQ) + 1) & SEQ)
#endif

/* shared memory, one byte per word */
#define TAIL(r) (r)
#define HEAD(r) (2 + (r))
#define BUF(r, i) (4 + (r) * CAP + (i))
#define DS(r) (4 + 2 * CAP + (r))
#define SS(r) (6 + 2 * CAP + (r))
#define BELLW (8 + 2 * CAP)
#define PEND (9 + 2 * CAP)
#define NADDR (10 + 2 * CAP)
#define FBIT(a) (1 << ((a) - DS(0)))	/* futex words DS0..BELLW -> bits 0..4 */

byte mem[NADDR];

/* store buffers, flat [process * D + slot] */
byte sb_a[3 * D];
byte sb_v[3 * D];
byte sb_len[3];

/* futex waiters: wmask[p] = words process p is blocked on, 0 = running */
byte wmask[3];

/* ghosts for INV: a waker between clearing SLEEP and its FUTEX_WAKE */
bit owes_ds[2];		/* producer r cleared data_seq[r] */
bit owes_bell[3];	/* process p cleared the bell */
#define OWES_BELL (owes_bell[1] || owes_bell[2])
bit owes_ss[2];		/* consumer cleared space_seq[r] */
bit in1;		/* C has taken ring 1 into its set */
bit g_none;		/* ghost sink for the announcer's ring_bell() */

/*
 * Invariants over every write to a shared word:
 * - BELL only with SLEEP, only on the bell-mode ring's data_seq;
 * - records: head <= tail <= head + CAP as seen in memory;
 * - while a process is blocked in the kernel, every word whose waker
 *   would wake it keeps SLEEP (so the next waker wakes), unless a wake is
 *   already under way. For C's bell-mode ring this is what the kernel's
 *   value check cannot see: data_seq[1] is not in C's futex_waitv set.
 */
#define INV_FLAGS ( \
	(MODE0 || !(mem[DS(0)] & BELL)) && !(mem[SS(0)] & BELL) && \
	!(mem[SS(1)] & BELL) && !(mem[BELLW] & BELL) && \
	(!(mem[DS(0)] & BELL) || (mem[DS(0)] & SLEEP)) && \
	(!(mem[DS(1)] & BELL) || (mem[DS(1)] & SLEEP)) && \
	mem[HEAD(0)] <= mem[TAIL(0)] && mem[TAIL(0)] <= mem[HEAD(0)] + CAP && \
	mem[HEAD(1)] <= mem[TAIL(1)] && mem[TAIL(1)] <= mem[HEAD(1)] + CAP)
#define ARMED(a, owes) ((mem[a] & SLEEP) || (owes))
#define INV_SLEEP ( \
	(wmask[0] == 0 || !in1 || ARMED(DS(1), owes_ds[1] || OWES_BELL)) && \
	(wmask[0] == 0 || !MODE0 || ARMED(DS(0), owes_ds[0] || OWES_BELL)) && \
	(wmask[1] == 0 || ARMED(SS(0), owes_ss[0])) && \
	(wmask[2] == 0 || ARMED(SS(1), owes_ss[1])))
#ifdef NOGHOST	/* deadlock detection alone: show the lost wakeup itself */
#define INV INV_FLAGS
#else
#define INV (INV_FLAGS && INV_SLEEP)
#endif

/* ------------------------------------------------------------ memory ops */

/* plain load: newest own buffered store to @a, else memory */
inline load(p, a, dst)
{
	d_step {
		dst = mem[a];
		k = 0;
		do
		:: k < sb_len[p] ->
			if
			:: sb_a[p * D + k] == a -> dst = sb_v[p * D + k]
			:: else
			fi;
			k++
		:: else -> break
		od;
		k = 0
	}
}

#ifdef TSO
/* plain store: into the buffer (blocks while full, a legal TSO stall) */
inline store(p, a, val)
{
	d_step {
		sb_len[p] < D;
		sb_a[p * D + sb_len[p]] = a;
		sb_v[p * D + sb_len[p]] = val;
		sb_len[p]++
	}
}
#else
inline store(p, a, val)
{
	d_step { mem[a] = val; assert(INV) }
}
#endif

/* store() that also sets ghost @g in the same step (M5 only) */
inline store_owe(p, a, val, g)
{
#ifdef TSO
	d_step {
		sb_len[p] < D;
		sb_a[p * D + sb_len[p]] = a;
		sb_v[p * D + sb_len[p]] = val;
		sb_len[p]++;
		g = 1
	}
#else
	d_step { mem[a] = val; g = 1; assert(INV) }
#endif
}

/* seq_cst fence: on TSO, wait until the own buffer has drained */
#define fence(p) (sb_len[p] == 0)

/* locked RMWs drain the buffer first; @expv gets the current value on failure */
inline cas(p, a, expv, newv, ok)
{
	d_step {
		sb_len[p] == 0;
		if
		:: mem[a] == expv -> mem[a] = newv; ok = 1
		:: else -> expv = mem[a]; ok = 0
		fi;
		assert(INV)
	}
}

/* cas() that also sets ghost @g in the same step when it succeeds */
inline cas_owe(p, a, expv, newv, ok, g)
{
	d_step {
		sb_len[p] == 0;
		if
		:: mem[a] == expv -> mem[a] = newv; ok = 1; g = 1
		:: else -> expv = mem[a]; ok = 0
		fi;
		assert(INV)
	}
}

inline fetch_and(p, a, mask)
{
	d_step { sb_len[p] == 0; mem[a] = mem[a] & (mask); assert(INV) }
}

inline fetch_or(p, a, bits)
{
	d_step { sb_len[p] == 0; mem[a] = mem[a] | (bits); assert(INV) }
}

inline xchg(p, a, val, old)
{
	d_step { sb_len[p] == 0; old = mem[a]; mem[a] = val; assert(INV) }
}

/* FUTEX_WAKE(@a, INT_MAX); the kernel's smp_mb() drains the buffer. @owes is
 * the waker's ghost, cleared in the same step: the wake is done. */
inline futex_wake(p, a, owes)
{
	d_step {
		sb_len[p] == 0;
		if :: wmask[0] & FBIT(a) -> wmask[0] = 0 :: else fi;
		if :: wmask[1] & FBIT(a) -> wmask[1] = 0 :: else fi;
		if :: wmask[2] & FBIT(a) -> wmask[2] = 0 :: else fi;
		owes = 0;
		assert(INV)
	}
}

#ifdef TSO
proctype flusher(byte p)
{
	byte k;

end:	do
	:: d_step {
		sb_len[p] > 0;
		mem[sb_a[p * D]] = sb_v[p * D];
		k = 1;
		do
		:: k < sb_len[p] ->
			sb_a[p * D + k - 1] = sb_a[p * D + k];
			sb_v[p * D + k - 1] = sb_v[p * D + k];
			k++
		:: else -> break
		od;
		sb_len[p]--;
		sb_a[p * D + sb_len[p]] = 0;
		sb_v[p * D + sb_len[p]] = 0;
		k = 0;
		assert(INV)
	}
	od
}
#endif

/* ------------------------------------------------------------ wake paths */

/*
 * ring_bell(): the caller has fenced. Bump the bell if C is asleep on it.
 * @owes is the caller's ghost, handed to owes_bell[p] (or dropped when C is
 * found awake) in the step that decides.
 */
inline ring_bell(p, owes)
{
	d_step {
		v = mem[BELLW];	/* only ever written by RMW: never buffered */
		if :: !(v & SLEEP) -> owes = 0 :: else fi
	}
	do
	:: !(v & SLEEP) -> break	/* C awake: its re-check sees our tail */
	:: else ->
		d_step {
			sb_len[p] == 0;
			if
			:: mem[BELLW] == v -> mem[BELLW] = BUMP(v); ok = 1; owes_bell[p] = 1; owes = 0
			:: else -> v = mem[BELLW]; ok = 0; if :: !(v & SLEEP) -> owes = 0 :: else fi
			fi;
			assert(INV)
		}
		if
		:: ok -> futex_wake(p, BELLW, owes_bell[p]); break
		:: else
		fi
	od
}

/* producer r after publishing tail and fencing: wake C if it sleeps */
inline wake_data(p, r)
{
	load(p, DS(r), v);
	do
	:: !(v & SLEEP) -> break	/* C awake: its re-check sees our tail */
	:: else ->
#ifdef M5
		/* plain store: on TSO it can land after C re-armed the word */
		store_owe(p, DS(r), BUMP(v), owes_ds[r]); ok = 1;
#else
		cas_owe(p, DS(r), v, BUMP(v), ok, owes_ds[r]);	/* (H) pairs with (G) */
#endif
		if
		:: ok ->
#ifndef M4
			if
			:: v & BELL -> ring_bell(p, owes_ds[r])
			:: else -> futex_wake(p, DS(r), owes_ds[r])
			fi;
#else
			futex_wake(p, DS(r), owes_ds[r]);	/* wrong word in bell mode */
#endif
			break
		:: else
		fi
	od
}

/* consumer after releasing a record of ring r and fencing (F): wake its
 * producer if asleep */
inline wake_space(r)
{
	load(0, SS(r), v);
	do
	:: !(v & SLEEP) -> break
	:: else ->
		cas_owe(0, SS(r), v, BUMP(v), ok, owes_ss[r]);
		if
		:: ok -> futex_wake(0, SS(r), owes_ss[r]); break
		:: else
		fi
	od
}

/* ------------------------------------------------------------ consumer */

/* take one record from ring r if there is one: check it, release, wake */
inline consume(r, h)
{
	load(0, TAIL(r), t);	/* acquire, pairs with (B) */
	if
	:: t != h ->
		assert(t > h && t <= N);
		load(0, BUF(r, h % CAP), x);
		assert(x == h + 1);	/* in order: none lost, none repeated */
		h++;
		store(0, HEAD(r), h);	/* (D) release */
#ifndef M6
		fence(0);		/* (F) pairs with (E) */
#endif
		wake_space(r);
		found = 1
	:: else
	fi;
	t = 0; x = 0; v = 0; ok = 0	/* dead: keep them out of the state */
}

/* arm one word: set SLEEP (+ @flag); @armed is the value to wait for */
inline arm(a, flag, armed)
{
	load(0, a, v);
	assert(!(v & (SLEEP | BELL)));	/* disarmed since the last sleep */
	do
	:: cas(0, a, v, v | SLEEP | flag, ok);
		if
		:: ok -> armed = v | SLEEP | flag; break
		:: else
		fi
	od;
	v = 0; ok = 0
}

inline disarm_all()
{
	fetch_and(0, DS(0), ~(SLEEP | BELL));
	if :: in1 -> fetch_and(0, DS(1), ~(SLEEP | BELL)) :: else fi;
	fetch_and(0, BELLW, ~SLEEP)
}

active proctype consumer()
{
	byte h0, h1, t, x, v, a0, ab, k;
	bit found, ok;

scan:
	found = 0;
	load(0, PEND, x);
	if
	:: x != 0 -> xchg(0, PEND, 0, x); assert(x == 1); in1 = 1; found = 1
	:: else
	fi;
	x = 0;
	consume(0, h0);
	if :: in1 -> consume(1, h1) :: else fi;
	if
	:: h0 == N && h1 == N -> goto done
	:: else
	fi;
	if
	:: found ->
progress_c:	goto scan
	:: else
	fi;

	/* going to sleep: arm every word, fence, re-check */
#ifndef BELL_LAST
	arm(BELLW, 0, ab);	/* first: a waker that clears a bell-mode word
				   after (G) finds SLEEP on the bell */
#endif
	arm(DS(0), MODE0, a0);					/* (G) */
	if :: in1 -> arm(DS(1), BELL, x) :: else fi;		/* (G) */
#ifdef BELL_LAST
	arm(BELLW, 0, ab);
#endif
	fence(0);	/* (C) pairs with (A) and (A') */
#ifndef M1
	load(0, TAIL(0), t);
	if :: t != h0 -> a0 = 0; ab = 0; x = 0; t = 0; disarm_all(); goto scan :: else fi;
	if
	:: in1 ->
		load(0, TAIL(1), t);
		if :: t != h1 -> a0 = 0; ab = 0; x = 0; t = 0; disarm_all(); goto scan :: else fi
	:: else
	fi;
	load(0, PEND, x);
	if :: x != 0 -> a0 = 0; ab = 0; x = 0; t = 0; disarm_all(); goto scan :: else fi;
#endif
	/* futex_waitv([bell, non-bell rings]): check and block atomically */
	d_step {
		sb_len[0] == 0;
		if
		:: MODE0 && mem[BELLW] == ab -> wmask[0] = FBIT(BELLW)
		:: !MODE0 && mem[BELLW] == ab && mem[DS(0)] == a0 ->
			wmask[0] = FBIT(BELLW) | FBIT(DS(0))
		:: else
		fi;
		assert(INV)
	}
	wmask[0] == 0;	/* asleep until a FUTEX_WAKE on bell or data_seq[0] */
	a0 = 0; ab = 0; x = 0; t = 0;
	disarm_all();
	goto scan;
done:
	skip
}

/* ------------------------------------------------------------ producers */

/* a sender that created ring 1: pending bit, fence (A', pairs with C), bell */
inline announce(p)
{
	fetch_or(p, PEND, 1);
	fence(p);
	ring_bell(p, g_none);
	v = 0; ok = 0
}

proctype producer(byte r)
{
	byte p = r + 1;
	byte t, h, v, k, expv;
	bit ok;

#ifndef ANNOUNCE_LATE
	if :: r == 1 -> announce(p) :: else fi;
#endif
	do
	:: t == N -> break
	:: else ->
space:		load(p, HEAD(r), h);
		if
		:: t - h >= CAP ->
			/* full: arm space_seq, fence (E, pairs with F), re-check head */
			load(p, SS(r), v);
			assert(!(v & SLEEP));
			do
			:: cas(p, SS(r), v, v | SLEEP, ok);
				if :: ok -> break :: else fi
			od;
			expv = v | SLEEP;
			fence(p);
			load(p, HEAD(r), h);
			if
			:: t - h < CAP -> expv = 0; fetch_and(p, SS(r), ~SLEEP)
			:: else ->
				d_step {
					sb_len[p] == 0;
					if
					:: mem[SS(r)] == expv -> wmask[p] = FBIT(SS(r))
					:: else
					fi;
					assert(INV)
				}
				wmask[p] == 0;
				expv = 0; h = 0;
				fetch_and(p, SS(r), ~SLEEP);
				goto space
			fi
		:: else
		fi;
		h = 0; v = 0; ok = 0;
#ifdef M7
		store(p, TAIL(r), t + 1);	/* published before written */
		store(p, BUF(r, t % CAP), t + 1);
#else
		store(p, BUF(r, t % CAP), t + 1);
		store(p, TAIL(r), t + 1);	/* (B) release */
#endif
		t++;
progress_p:
#ifndef M2
		fence(p);	/* (A) pairs with (C) */
#endif
		wake_data(p, r);
		v = 0; ok = 0;
#ifdef ANNOUNCE_LATE
		if :: r == 1 && t == 1 -> announce(p) :: else fi;
#endif
	od
}

init
{
	atomic {
		run producer(0);
		run producer(1);
#ifdef TSO
		run flusher(0);
		run flusher(1);
		run flusher(2);
#endif
	}
}
