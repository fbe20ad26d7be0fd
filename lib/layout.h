/* SPDX-License-Identifier: MIT */
/*
 * Shared-memory layout of a libshmrpc domain. Everything here lives in
 * /dev/shm and is read by other processes (peers, shmrpc-top, the reaper),
 * so: fixed-width types only, no pointers, every offset and size asserted,
 * and every field documents who writes it. A reader treats all of it as
 * untrusted input: see shmrpc__*_check() before using any size or index.
 *
 * Files of domain D (lib/names.c makes every name):
 *	/dev/shm/shmrpc.D.reg			registry: header + slots + event log
 *	/dev/shm/shmrpc.D.node.<16 hex>		node segment of node (S, G)
 *	/dev/shm/shmrpc.D.ring.<16 hex>		ring from node (S, G) to node (R, H)
 *	/dev/shm/shmrpc.D.repl.<16 hex>		reply ring from server (S, G) to
 *						caller (R, H)
 * The 16 hex digits are SipHash-2-4 under the registry's random name key of
 * ("node", S, G), ("ring", S, G, R, H) or ("repl", S, G, R, H): only who can
 * read the registry (the domain's members) can tell the name of a node or ring before it
 * exists, so nobody else can squat it; and a recreated registry (a new key)
 * never meets the files of an old one. Observers learn a file's ids from
 * its header, then check that its name is the one those ids give.
 * A node id is (slot S, generation G); a slot index alone is never an id.
 */
#ifndef SHMRPC_LAYOUT_H
#define SHMRPC_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHMRPC__SHM_DIR "/dev/shm" /* where shm_open names live (glibc) */
/* "/shmrpc." + domain + ".ring." + 16 hex digits, with room to spare */
#define SHMRPC__PATH_MAX 160

#define SHMRPC__ABI 4 /* 3: the event log (issue 11); 4: reply rings, rpc fields (12) */
#define SHMRPC__CACHELINE 64
#define SHMRPC__PAGE 4096u
#define SHMRPC__KEY_BYTES 16 /* the registry's name key */

#define SHMRPC__REG_MAGIC 0x31474552434d5253ull	 /* "SRMCREG1" little-endian */
#define SHMRPC__NODE_MAGIC 0x3145444f4e4d5253ull /* "SRMNODE1" */
#define SHMRPC__RING_MAGIC 0x31474e49524d5253ull /* "SRMRING1" */
#define SHMRPC__REPL_MAGIC 0x314c5045524d5253ull /* "SRMREPL1": a reply ring */

#define SHMRPC__CAP_DEFAULT 1024u
#define SHMRPC__CAP_MAX 65536u
#define SHMRPC__RING_DEFAULT (256u * 1024)
#define SHMRPC__RING_MIN 4096u
#define SHMRPC__RING_MAX (1u << 30)

/*
 * Futex words (data_seq, space_seq, bell): bits 0..29 count wakes, bit 31
 * says the waiting side is (about to be) asleep on the word, bit 30 (data_seq
 * only) says it sleeps on its node's bell instead, so the waker must ring the
 * bell after bumping the word. See the protocol comment in lib/wake.c.
 */
#define SHMRPC__W_SLEEP 0x80000000u
#define SHMRPC__W_BELL 0x40000000u
#define SHMRPC__W_SEQ 0x3fffffffu

/* ---------------------------------------------------------------- registry */

enum shmrpc__slot_state {
	SHMRPC__SLOT_FREE = 0,	  /* never used, or left */
	SHMRPC__SLOT_JOINING = 1, /* taken; node segment being created */
	SHMRPC__SLOT_LIVE = 2,	  /* node segment complete; reachable */
};

/* Registry header. The creator writes the first line and publishes magic
 * last; everything after the lock line is written under the lock. */
struct shmrpc__reg_hdr {
	_Atomic uint64_t magic;		     /* creator: release-stored after all else */
	uint32_t abi;			     /* creator: SHMRPC__ABI */
	uint32_t hdr_size;		     /* creator: sizeof(struct shmrpc__reg_hdr) */
	uint32_t slot_size;		     /* creator: sizeof(struct shmrpc__slot) */
	uint32_t capacity;		     /* creator: number of slots */
	uint64_t total_size;		     /* creator: shmrpc__reg_size(capacity) */
	uint32_t nonce;			     /* creator: random, in every ring header */
	uint32_t mode;			     /* creator: permission bits of the domain */
	uint8_t name_key[SHMRPC__KEY_BYTES]; /* creator: random SipHash key of file names */
	uint32_t ev_cap;		     /* creator: SHMRPC__EV_LOG entries in the event log */
	uint32_t ev_size;		     /* creator: sizeof(struct shmrpc__ev_entry) */

	/* Line 1 is reserved. The join/leave lock is not in shared memory: it
	 * is an OFD lock on the first byte of this file (registry.c). */
	uint8_t _reserved[64];

	/* Line 2, written by the lock holder. closed: 1 once the last node
	 * left and unlinked this file (reopen by name). joining: 1 + the
	 * slot the holder is filling; found set by the next holder, that one
	 * died mid-join: repair. ev_head: events ever appended to the log
	 * (the next one goes to entry ev_head % ev_cap; lib/evlog.c). */
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t epoch; /* futex: +1 at join/leave */
	_Atomic uint32_t live;				   /* slots JOINING or LIVE */
	_Atomic uint32_t hi;				   /* 1 + highest slot ever used */
	_Atomic uint32_t closed;
	_Atomic uint32_t joining;
	uint32_t _pad1a;
	_Atomic uint64_t ev_head;
	uint8_t _pad1[32];

	/* shmrpc-reaper (tools/): who watches this domain, for shmrpc-top */
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t reaper_pid; /* reaper */
	_Atomic uint32_t reaper_mode;				/* reaper: 1 bpf, 2 pidfd */
	_Atomic uint64_t reaper_beat;				/* reaper: CLOCK_MONOTONIC s */
	_Atomic uint64_t reaped;				/* reaper: slots it freed */
	uint8_t _pad2[40];
};

/* What a slot and a node segment say of their node's wake backend
 * (informational: for shmrpc-top). */
enum shmrpc__backend_id {
	SHMRPC__BACKEND_FUTEX = 1,
	SHMRPC__BACKEND_URING = 2,
};

/* One registry slot. Written by the joining node under the lock; read by
 * anyone without it, as a seqlock keyed on (state, gen). */
struct shmrpc__slot {
	_Atomic uint32_t state;	     /* enum shmrpc__slot_state */
	_Atomic uint32_t gen;	     /* bumped at every join of this slot */
	_Atomic int32_t pid;	     /* in the pid namespace of pidns */
	_Atomic uint32_t uid;	     /* euid of the node's process */
	_Atomic uint64_t start_time; /* /proc/PID/stat field 22: pid-reuse guard */
	_Atomic uint64_t pidns;	     /* inode of the node's /proc/self/ns/pid */
	_Atomic uint64_t join_ns;    /* CLOCK_MONOTONIC at join */
	_Atomic uint32_t ring_bytes; /* capacity of rings to this node */
	_Atomic uint32_t backend;    /* enum shmrpc__backend_id, informational */
	_Atomic uint64_t name[8];    /* NUL-padded name, copied as words */
	_Atomic uint32_t flags;	     /* SHMRPC__SLOT_PROXY, _BMARKS */
	uint8_t _pad[12];
};

/* slot flags (written with the other fields, under the seqlock).
 * SHMRPC__SLOT_PROXY: a proxy for a node of another host; its segment's
 * host names the host. */
#define SHMRPC__SLOT_PROXY 1u
/* SHMRPC__SLOT_BMARKS: the node takes broadcast marks (opts.flags
 * SHMRPC_OPEN_BCAST_MARKS): its message rings may carry REC_BCAST records.
 * Came with 0.3; readers test bits, so 0.2 peers ignore it. */
#define SHMRPC__SLOT_BMARKS 2u

/*
 * The event log: SHMRPC__EV_LOG entries after the slots, a ring of the
 * domain's membership changes (JOIN, LEAVE, DEATH: SHMRPC_EV_*), appended
 * by the registry lock's holder as it publishes or frees a slot, read by
 * every node that subscribes (opts.events) with a cursor of its own. An
 * entry is a seqlock: seq is 0 while it is written, then index + 1
 * (release) once complete; a reader that finds another seq lost it to a
 * newer event (lib/evlog.c). 256 entries of 96 bytes: 24 KiB a domain.
 */
#define SHMRPC__EV_LOG 256u

struct shmrpc__ev_entry {
	_Atomic uint64_t seq;	  /* lock holder: index + 1, stored last; 0 while written */
	_Atomic uint32_t type;	  /* lock holder: one SHMRPC_EV_* */
	_Atomic int32_t pid;	  /* lock holder: the slot's pid */
	_Atomic uint64_t id;	  /* lock holder: slot << 32 | gen */
	_Atomic uint64_t ns;	  /* lock holder: CLOCK_MONOTONIC of the append */
	_Atomic uint64_t name[8]; /* lock holder: the slot's name, NUL-padded */
};

/* ------------------------------------------------------------ node segment */

/*
 * Owner-written counters (relaxed: single writer per field or fetch_add).
 * Rings carry their own per-message counters; a node's totals are the old_*
 * totals here plus the counters of its rings: those listed in its out_gen
 * table (sent) and those from in_gen whose files exist (received). When a
 * ring leaves that set (unlinked, or out_gen cleared) its counters move
 * into old_* in the same step, under fold_seq, a seqlock (odd while a move
 * is under way): read fold_seq, the totals and the rings, then fold_seq
 * again, and retry if it changed or was odd.
 */
struct shmrpc__node_ctr {
	_Atomic uint64_t sleeps, spins, connects;
	_Atomic uint64_t rings_in, rings_out;
	_Atomic uint64_t old_tx_msgs, old_tx_bytes, old_tx_full, old_tx_wakes, old_tx_skips;
	_Atomic uint64_t old_rx_msgs, old_rx_bytes;
	_Atomic uint64_t rx_wakes; /* space wakes this node sent to its senders */
	_Atomic uint64_t fold_seq;
	uint8_t _pad[16];
};

/*
 * Request/response counters of a node (owner-written from any of its
 * threads: relaxed fetch_add; statistics). Calls in flight: calls -
 * calls_ended.
 */
struct shmrpc__rpc_ctr {
	_Atomic uint64_t calls;	       /* caller: requests sent */
	_Atomic uint64_t calls_ended;  /* caller: calls retired, any way */
	_Atomic uint64_t fail_timeout; /* caller: ended by their deadline */
	_Atomic uint64_t fail_pipe;    /* caller: the server left or died */
	_Atomic uint64_t fail_remote;  /* caller: the server's error reply */
	_Atomic uint64_t fail_cancel;  /* caller: cancelled */
	_Atomic uint64_t fail_refused; /* caller: not sent (no node, not serving...) */
	_Atomic uint64_t late;	       /* caller: replies dropped, their call over */
	_Atomic uint64_t served;       /* server: requests handed to the serve function */
	_Atomic uint64_t expired;      /* server: requests dropped, deadline passed */
	_Atomic uint64_t refused;      /* server: requests answered -EOPNOTSUPP/-EBUSY */
	_Atomic uint64_t replies;      /* server: replies sent */
	_Atomic uint64_t reply_fail;   /* server: replies refused (caller gone...) */
	uint8_t _pad[24];
};

/*
 * Node segment header, followed (at the offsets given) by tables of
 * @capacity entries, indexed by the *peer's* slot:
 *	pend[(capacity+63)/64] uint64 bitmap: peer announced a new ring to us
 *			     (peers: fetch_or; owner: exchange to 0)
 *	rep_pend[...]	     the same for reply rings, right after pend
 *	in_gen[capacity]     uint32: gen + 1 of the peer whose ring to us is
 *			     announced (written by that peer only)
 *	out_gen[capacity]    uint32: gen + 1 of the peer we created a ring to
 *			     (owner only; set before the file exists, so a
 *			     reaper of a crashed node finds every ring)
 *	rep_in_gen[capacity] as in_gen, for the reply rings of servers to us
 *	rep_out_gen[capacity] as out_gen, for the reply rings we (as a server)
 *			     created to callers
 * Each kind of ring (enum shmrpc__kind) has its own pend bitmap, pend hint,
 * in and out tables and bell: a reply ring is announced, opened, drained,
 * closed and reclaimed as a message ring is, in tables of its own, and read
 * by the calling threads (lib/rpc_call.c), never by the receiving calls.
 */
struct shmrpc__node_hdr {
	uint64_t magic; /* owner, before the slot goes LIVE */
	uint32_t abi, hdr_size;
	uint64_t total_size;
	uint32_t slot, gen, capacity, ring_bytes;
	int32_t pid;
	uint32_t backend;
	uint32_t pend_off, in_off, out_off;
	/* owner: the descriptor number that holds its liveness lock, a hint
	 * for shmrpc-reaper (which checks it in /proc, never trusts it) */
	uint32_t lock_fd;
	char name[64];

	/* pend_hint: peers store 1 after setting a pend bit; the owner
	 * exchanges it to 0 before a scan. */
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t bell; /* futex; see W_* */
	_Atomic uint32_t flags; /* owner: NODE_EVENTS, NODE_CLOSING (fetch_or) */
	_Atomic uint32_t pend_hint;
	uint8_t _pad1[52];

	alignas(SHMRPC__CACHELINE) struct shmrpc__node_ctr ctr;

	/* owner, before the slot goes LIVE: the host a proxy stands for,
	 * NUL-padded; "" for a node of this host (opts.proxy_host) */
	char host[64];

	/* Request/response (lib/rpc_*.c). rep_bell: the futex a calling
	 * thread of ours sleeps on for replies; every reply ring to us is
	 * armed in bell mode (SLEEP|BELL), so servers ring it (see W_*).
	 * rep_pend_hint: as pend_hint, for reply rings. serving: owner, 1
	 * while shmrpc_serve has a function (callers read it: a hint, their
	 * requests are answered -EOPNOTSUPP anyway). The offsets: owner, at
	 * creation, like pend_off (checked, never used to locate). */
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t rep_bell;
	_Atomic uint32_t rep_pend_hint;
	_Atomic uint32_t serving;
	uint32_t rep_pend_off, rep_in_off, rep_out_off;
	uint8_t _pad2[40];

	alignas(SHMRPC__CACHELINE) struct shmrpc__rpc_ctr rpc;
};

#define SHMRPC__NODE_CLOSING 1u /* leaving: announce no more rings to it */
/* set at creation: the node subscribed to events (opts.events); a dead
 * sender's unopened rings to it are kept for it to drain (reclaim.c) */
#define SHMRPC__NODE_EVENTS 2u

/* The kinds of ring between two nodes: messages (and requests), and
 * replies from a server to its caller. Each has its tables (above). */
enum shmrpc__kind {
	SHMRPC__KIND_MSG = 0,
	SHMRPC__KIND_REP = 1,
};

/* ------------------------------------------------------------------ ring */

enum {
	SHMRPC__RING_TX_CLOSED = 1, /* sender left: drain, then drop */
	SHMRPC__RING_RX_CLOSED = 2, /* receiver left: sends get -EPIPE */
	SHMRPC__RING_RX_OPENED = 4, /* receiver mapped it: it unlinks it */
};

/*
 * Ring segment: this header (one page) then @size data bytes. Each line
 * after the first has one writer, so producer and consumer never share a
 * written cache line on the fast path.
 */
struct shmrpc__ring_hdr {
	/* written once by the creating sender, before it announces the ring */
	uint64_t magic;
	uint32_t abi, hdr_size;
	uint32_t size;	/* data bytes, power of two */
	uint32_t nonce; /* registry nonce */
	uint32_t tx_slot, tx_gen, rx_slot, rx_gen;
	int32_t tx_pid;
	/* gen + 1 of the previous sender in this slot whose ring to the same
	 * receiver may be unopened (the receiver follows it) */
	uint32_t prev_gen;
	char tx_name[64];

	/* producer line */
	alignas(SHMRPC__CACHELINE) _Atomic uint64_t tail; /* bytes ever written */
	_Atomic uint64_t tx_msgs, tx_bytes, tx_full, tx_wakes, tx_skips;
	uint8_t _pad2[16];

	/* consumer line */
	alignas(SHMRPC__CACHELINE) _Atomic uint64_t head; /* bytes ever consumed */
	_Atomic uint64_t rx_msgs, rx_bytes, rx_wakes;
	uint8_t _pad3[32];

	/* futex the consumer sleeps on: consumer sets SLEEP, producer bumps */
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t data_seq;
	uint8_t _pad4[60];
	/* futex the producer sleeps on when full: producer sets SLEEP, consumer bumps */
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t space_seq;
	uint8_t _pad5[60];
	alignas(SHMRPC__CACHELINE) _Atomic uint32_t flags; /* SHMRPC__RING_*: fetch_or */
	uint8_t _pad6[60];
};

/* Record header at an 8-byte aligned ring offset; payload follows, padded
 * to 8 bytes. A WRAP record fills the rest of the ring up to its end.
 * flags: 0 (a message, or a reply on a reply ring), WRAP, or on a message
 * ring REQ (a request: struct shmrpc__req_hdr, then its payload) or CANCEL
 * (struct shmrpc__cancel_rec), or BCAST on a message ring to a node that
 * takes marks (SHMRPC__SLOT_BMARKS: struct shmrpc__bcast_rec, then the
 * message); nothing else (the consumer checks). */
struct shmrpc__rec {
	uint32_t len;
	uint32_t flags;
};
#define SHMRPC__REC_WRAP 1u
#define SHMRPC__REC_REQ 2u
#define SHMRPC__REC_CANCEL 4u
#define SHMRPC__REC_BCAST 16u
#define SHMRPC__REC_ALIGN 8u

/* ------------------------------------------------------- request/response */

/* Head of a REQ record's payload, written by the caller. id: unique among
 * the caller's calls; deadline_ns: CLOCK_MONOTONIC, 0 for none. */
struct shmrpc__req_hdr {
	uint64_t id;
	int64_t deadline_ns;
};

/* A CANCEL record's payload: the caller gave up on call @id. */
struct shmrpc__cancel_rec {
	uint64_t id;
};

/* Head of a BCAST record's payload, written by the broadcasting node: a
 * copy of its broadcast number @id (not 0), one of @copies marked copies;
 * zero: 0 (else the ring is corrupt). The message follows. */
struct shmrpc__bcast_rec {
	uint64_t id;
	uint32_t copies;
	uint32_t zero;
};

/* Head of every record of a reply ring, written by the server. status: 0,
 * or a negative errno that ends the call (then no payload); flags:
 * REP_MORE while more replies to @id follow. */
struct shmrpc__rep_hdr {
	uint64_t id;
	int32_t status;
	uint32_t flags;
};
#define SHMRPC__REP_MORE 1u

/* ------------------------------------------------------------ assertions */

_Static_assert(offsetof(struct shmrpc__reg_hdr, name_key) == 40, "reg name key offset");
_Static_assert(offsetof(struct shmrpc__reg_hdr, ev_cap) == 56, "reg event log size offset");
_Static_assert(offsetof(struct shmrpc__reg_hdr, _reserved) == 64, "reg reserved line");
_Static_assert(offsetof(struct shmrpc__reg_hdr, epoch) == 128, "reg epoch offset");
_Static_assert(offsetof(struct shmrpc__reg_hdr, ev_head) == 152, "reg event head offset");
_Static_assert(offsetof(struct shmrpc__reg_hdr, reaper_pid) == 192, "reg reaper offset");
_Static_assert(sizeof(struct shmrpc__reg_hdr) == 256, "reg header size");
_Static_assert(offsetof(struct shmrpc__slot, name) == 48, "slot name offset");
_Static_assert(sizeof(struct shmrpc__slot) == 128, "slot size");
_Static_assert(offsetof(struct shmrpc__ev_entry, name) == 32, "event entry name offset");
_Static_assert(sizeof(struct shmrpc__ev_entry) == 96, "event entry size");
_Static_assert(sizeof(struct shmrpc__node_ctr) == 128, "node counters size");
_Static_assert(offsetof(struct shmrpc__node_hdr, bell) == 128, "node bell offset");
_Static_assert(offsetof(struct shmrpc__node_hdr, ctr) == 192, "node counters offset");
_Static_assert(offsetof(struct shmrpc__node_hdr, host) == 320, "node host offset");
_Static_assert(offsetof(struct shmrpc__node_hdr, rep_bell) == 384, "node rep_bell offset");
_Static_assert(offsetof(struct shmrpc__node_hdr, rpc) == 448, "node rpc counters offset");
_Static_assert(sizeof(struct shmrpc__rpc_ctr) == 128, "node rpc counters size");
_Static_assert(sizeof(struct shmrpc__node_hdr) == 576, "node header size");
_Static_assert(sizeof(struct shmrpc__node_hdr) <= SHMRPC__PAGE, "node header fits a page");
_Static_assert(offsetof(struct shmrpc__ring_hdr, tx_name) == 48, "ring name offset");
_Static_assert(offsetof(struct shmrpc__ring_hdr, tail) == 128, "ring tail offset");
_Static_assert(offsetof(struct shmrpc__ring_hdr, head) == 192, "ring head offset");
_Static_assert(offsetof(struct shmrpc__ring_hdr, data_seq) == 256, "ring data_seq offset");
_Static_assert(offsetof(struct shmrpc__ring_hdr, space_seq) == 320, "ring space_seq offset");
_Static_assert(offsetof(struct shmrpc__ring_hdr, flags) == 384, "ring flags offset");
_Static_assert(sizeof(struct shmrpc__ring_hdr) == 448, "ring header size");
_Static_assert(sizeof(struct shmrpc__ring_hdr) <= SHMRPC__PAGE, "ring header fits a page");
_Static_assert(sizeof(struct shmrpc__rec) == SHMRPC__REC_ALIGN, "record header size");
_Static_assert(sizeof(struct shmrpc__req_hdr) == 16, "request header size");
_Static_assert(sizeof(struct shmrpc__cancel_rec) == 8, "cancel record size");
_Static_assert(sizeof(struct shmrpc__rep_hdr) == 16, "reply header size");
_Static_assert(sizeof(struct shmrpc__bcast_rec) == 16, "broadcast mark size");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4,
	       "atomics are plain words in shared memory");

/* Sizes derived from a capacity; the node segment is page-rounded. The
 * registry: header, slots, event log. */
static inline uint64_t shmrpc__reg_evlog_off(uint32_t capacity)
{
	return sizeof(struct shmrpc__reg_hdr) + (uint64_t)capacity * sizeof(struct shmrpc__slot);
}

static inline uint64_t shmrpc__reg_size(uint32_t capacity)
{
	return shmrpc__reg_evlog_off(capacity) +
	       (uint64_t)SHMRPC__EV_LOG * sizeof(struct shmrpc__ev_entry);
}

/* Bytes of one pend bitmap of a node segment of @capacity slots. */
static inline uint32_t shmrpc__node_pend_bytes(uint32_t capacity)
{
	return (capacity + 63) / 64 * 8;
}

static inline uint32_t shmrpc__node_pend_off(void)
{
	return SHMRPC__PAGE;
}

static inline uint32_t shmrpc__node_in_off(uint32_t capacity)
{
	uint32_t pend_bytes = 2 * shmrpc__node_pend_bytes(capacity); /* pend, rep_pend */

	return SHMRPC__PAGE + ((pend_bytes + SHMRPC__PAGE - 1) & ~(SHMRPC__PAGE - 1));
}

static inline uint32_t shmrpc__node_out_off(uint32_t capacity)
{
	return shmrpc__node_in_off(capacity) + capacity * 4;
}

/* The tables of ring kind @kind (enum shmrpc__kind): its pend bitmap, its
 * in_gen and out_gen tables. */
static inline uint32_t shmrpc__node_pend_off_k(uint32_t capacity, int kind)
{
	return shmrpc__node_pend_off() + (uint32_t)kind * shmrpc__node_pend_bytes(capacity);
}

static inline uint32_t shmrpc__node_in_off_k(uint32_t capacity, int kind)
{
	return shmrpc__node_in_off(capacity) + (uint32_t)kind * 2 * capacity * 4;
}

static inline uint32_t shmrpc__node_out_off_k(uint32_t capacity, int kind)
{
	return shmrpc__node_in_off_k(capacity, kind) + capacity * 4;
}

static inline uint64_t shmrpc__node_size(uint32_t capacity)
{
	uint64_t end = shmrpc__node_out_off_k(capacity, SHMRPC__KIND_REP) + (uint64_t)capacity * 4;
	return (end + SHMRPC__PAGE - 1) & ~(uint64_t)(SHMRPC__PAGE - 1);
}

/* The bell and the pend hint of ring kind @kind in node header @h. */
static inline _Atomic uint32_t *shmrpc__node_bell(struct shmrpc__node_hdr *h, int kind)
{
	return kind == SHMRPC__KIND_REP ? &h->rep_bell : &h->bell;
}

static inline _Atomic uint32_t *shmrpc__node_hint(struct shmrpc__node_hdr *h, int kind)
{
	return kind == SHMRPC__KIND_REP ? &h->rep_pend_hint : &h->pend_hint;
}

/* The magic of a ring file of kind @kind. */
static inline uint64_t shmrpc__ring_magic(int kind)
{
	return kind == SHMRPC__KIND_REP ? SHMRPC__REPL_MAGIC : SHMRPC__RING_MAGIC;
}

#endif /* SHMRPC_LAYOUT_H */
