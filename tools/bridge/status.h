/* SPDX-License-Identifier: MIT */
/*
 * The status segment of a bridge: /dev/shm/shmrpc-bridge.<domain>, one per
 * bridged domain on each host, written by shmrpc-bridge alone and read by
 * shmrpc-top (read-only; everything in it is checked as untrusted input:
 * sizes against the file, counts against capacities, names against the
 * name rules). Outside the library's "shmrpc.<domain>.*" files on purpose:
 * the library and the reaper never touch it.
 *
 * The bridge holds an OFD write lock on the whole file while it runs (a
 * reader asks with F_OFD_GETLK whether it is alive; a second bridge of the
 * same domain on the host finds it held and refuses to start). Created
 * O_CREAT|O_EXCL|O_NOFOLLOW, 0600, reserved in full (fallocate).
 *
 * Every field is a fixed-width atomic. The header's live fields and each
 * row are seqlocks: the writer makes seq odd, fences (release), stores the
 * fields (relaxed), fences (release) and makes seq even (release); a
 * reader loads seq (acquire), the fields (relaxed), fences (acquire) and
 * re-loads seq: an odd or changed seq means a torn copy: read again.
 */
#ifndef SHMRPC_BRIDGE_STATUS_H
#define SHMRPC_BRIDGE_STATUS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define BR_STATUS_PREFIX "shmrpc-bridge."
#define BR_STATUS_MAGIC 0x3153555441545342ull /* "BSTATUS1", little-endian */
#define BR_STATUS_VERSION 1u

struct br_status_hdr {
	/* set at creation, constant after */
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size; /* sizeof(struct br_status_hdr) */
	uint32_t row_size; /* sizeof(struct br_status_row) */
	uint32_t rows;	   /* capacity */
	uint32_t pid;
	uint32_t pad0;
	int64_t started_ns;    /* CLOCK_REALTIME */
	uint64_t host[8];      /* this host's bridge name, NUL-padded */
	uint64_t domain[8];    /* the domain */
	_Atomic uint32_t seq;  /* seqlock of everything below */
	_Atomic uint32_t used; /* rows [0, used) may be in use */
	_Atomic uint32_t nats_up;
	_Atomic uint32_t hosts;	    /* other hosts heard from */
	_Atomic int64_t updated_ns; /* CLOCK_REALTIME of the last update */
	_Atomic uint64_t reconnects;
	_Atomic uint64_t bad_msgs;     /* malformed messages received */
	_Atomic uint64_t gone_lost;    /* lost and dropped counts of nodes no */
	_Atomic uint64_t gone_dropped; /* longer listed (left, or no row) */
	_Atomic uint64_t bcasts;       /* broadcasts published once (BCAST) */
	_Atomic uint64_t bcast_sent;   /* the copies they stood for */
	_Atomic uint64_t bcast_split;  /* copies sent on their node's stream */
	uint64_t reserved[1];
};

enum br_status_kind {
	BR_STATUS_FREE = 0,
	BR_STATUS_LOCAL = 1,   /* a node of this host */
	BR_STATUS_REMOTE = 2,  /* a proxy: the node lives on host */
	BR_STATUS_REFUSED = 3, /* a node of this host whose name lives on host */
};

struct br_status_row {
	_Atomic uint32_t seq;
	_Atomic uint32_t kind; /* enum br_status_kind */
	_Atomic uint64_t name[8];
	_Atomic uint64_t host[8];	      /* where the node lives (REFUSED: the owner) */
	_Atomic uint64_t fwd_msgs, fwd_bytes; /* published over NATS */
	_Atomic uint64_t dlv_msgs, dlv_bytes; /* delivered into a local ring */
	_Atomic uint64_t lost;		      /* never arrived */
	_Atomic uint64_t dropped;	      /* refused by the bridge */
	_Atomic uint64_t stalls;	      /* a sender ran out of credits */
	_Atomic uint64_t queued;	      /* waiting for ring space now */
	uint64_t reserved[7];
};

_Static_assert(sizeof(struct br_status_hdr) == 256, "status header layout");
_Static_assert(sizeof(struct br_status_row) == 256, "status row layout");
_Static_assert(offsetof(struct br_status_row, fwd_msgs) == 136, "status row layout");

#endif /* SHMRPC_BRIDGE_STATUS_H */
