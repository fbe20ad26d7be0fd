/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-top: the types its files share.
 *
 * One refresh is a snapshot (struct top_snap): every domain, node and ring
 * the tool could see in /dev/shm, copied out of shared memory into process
 * memory. Everything after the copy (rates, sorting, output) works on the
 * copy only, so nothing a node writes meanwhile can change a value between
 * its check and its use, and a segment truncated under the tool costs one
 * SIGBUS that the guard (shm.c) turns into a "corrupt" verdict.
 *
 *   shm.c      read-only opening, mapping and copying of segments; the
 *              SIGBUS guard; clocks
 *   scan.c     one snapshot: registries, slots, node segments
 *   rings.c    ... and ring files; each node's totals
 *   bridges.c  shmrpc-bridge status segments (lost and dropped per node)
 *   rates.c    deltas against the previous snapshot: rates, monotonic
 *              totals, ring idle times, the header summary
 *   table.c    columns, filtering, sorting, number formatting
 *   out_text.c / out_json.c / out_prom.c   batch outputs
 *   ui.c       the ncurses screen
 *   opts.c     command line
 *   main.c     the refresh loop
 *
 * The tool never writes to shared memory and takes no lock: files are
 * opened O_RDONLY, mapped PROT_READ, and liveness is asked with F_OFD_GETLK.
 */
#ifndef SHMRPC_TOP_H
#define SHMRPC_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "layout.h"
#include "shmrpc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TOP_SHM_DIR "/dev/shm"
#define TOP_FILE_MAX 256 /* a /dev/shm entry name, with its NUL */
#define TOP_WHY_MAX 64	 /* a verdict such as "size 100, want 8192" */

/* ------------------------------------------------------------ snapshot */

enum top_dom_status {
	TOP_DOM_OK = 0,
	TOP_DOM_EMPTY,	  /* size 0: a creator between create and size */
	TOP_DOM_CREATING, /* sized, magic not published yet */
	TOP_DOM_CORRUPT,  /* fails a check; why says which */
	TOP_DOM_GONE,	  /* vanished between listing and opening */
	TOP_DOM_ERROR,	  /* cannot be read (why: strerror) */
};

enum top_node_state {
	TOP_NODE_LIVE = 0,
	TOP_NODE_CLOSING, /* live, leaving (NODE_CLOSING set) */
	TOP_NODE_JOINING, /* slot taken, segment not complete yet */
	TOP_NODE_DEAD,	  /* slot LIVE, nobody holds its liveness lock */
	TOP_NODE_GONE,	  /* slot LIVE, segment already removed: leaving */
	TOP_NODE_CORRUPT, /* slot or segment fails a check; why says which */
	TOP_NODE_UNKNOWN, /* slot kept changing, or liveness unreadable */
};

/* A node's counters, summed the way shmrpc_stats() sums them. */
struct top_ctr {
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
	uint64_t wakes; /* futex wakes issued (data and space) */
	uint64_t skips; /* publishes that needed no wake */
	uint64_t full;	/* sends that found the ring full */
	uint64_t sleeps, spins, connects;
	/* request/response: calls started, ended (any way), failed (deadline,
	 * server gone, its error, cancelled, refused), requests served */
	uint64_t calls, calls_ended, calls_failed, served;
};

/* Per second over the last interval; `valid` is false without one. */
struct top_rate {
	bool valid;
	double msgs_in, msgs_out, bytes_in, bytes_out, wakes, sleeps, full;
	double calls, calls_failed, served;
	double skip_share;    /* skips / (skips + data wakes); < 0: no publish */
	struct top_ctr delta; /* the counts behind the rates */
};

enum top_ring_status {
	TOP_RING_OK = 0,
	TOP_RING_CREATING, /* empty, or magic not written yet */
	TOP_RING_CORRUPT,
	TOP_RING_GONE, /* listed, vanished before it was read */
};

struct top_ring {
	char file[TOP_FILE_MAX];
	uint64_t ino;
	uint32_t tx_slot, tx_gen, rx_slot, rx_gen; /* from its header (the name is checked) */
	enum top_ring_status status;
	char why[TOP_WHY_MAX];
	/* copied from the header; valid for TOP_RING_OK */
	uint32_t size, flags;
	bool rx_sleeping, tx_sleeping; /* SLEEP bit of data_seq / space_seq */
	uint64_t head, tail, depth;
	uint64_t tx_msgs, tx_bytes, tx_full, tx_wakes, tx_skips;
	uint64_t rx_msgs, rx_bytes, rx_wakes;
	char tx_name[SHMRPC_NAME_MAX + 1];
	/* links, set by scan.c: indices into snap->nodes, or -1 */
	int tx_node, rx_node;
	int next_out, next_in; /* next ring of the same sender / receiver */
	/* history, set by rates.c */
	bool have_delta; /* readable now and at the previous refresh */
	uint64_t d_tx_msgs, d_tx_bytes, d_tx_full, d_tx_wakes, d_tx_skips;
	uint64_t d_rx_msgs, d_rx_bytes, d_rx_wakes;
	double changed;	     /* monotonic s of the last change seen */
	bool changed_before; /* unchanged since the tool first saw it */
};

struct top_node {
	uint32_t dom; /* index into snap->doms */
	uint32_t slot, gen, slot_state;
	enum top_node_state state;
	char why[TOP_WHY_MAX];
	char name[SHMRPC_NAME_MAX + 1]; /* printable ASCII only */
	int32_t pid;
	uint32_t uid, backend, ring_bytes;
	uint64_t join_ns;
	double uptime; /* seconds, < 0 unknown */
	/* node segment counters (valid when the segment was read) */
	bool seg_ok;
	uint64_t sleeps, spins, connects, rings_in_open, rings_out_open;
	uint64_t old_tx_msgs, old_tx_bytes, old_tx_full, old_tx_wakes, old_tx_skips;
	uint64_t old_rx_msgs, old_rx_bytes, old_rx_wakes;
	uint64_t calls, calls_ended, calls_failed, served; /* the segment's rpc counters */
	/* derived */
	struct top_ctr raw;	      /* old_* + sum over its ring files, this scan */
	struct top_ctr tot;	      /* raw, but never below the previous refresh */
	struct top_rate rate;	      /* rates.c */
	uint32_t rings_in, rings_out; /* ring files naming it */
	int first_out, first_in;      /* ring lists, indices or -1 */
};

struct top_reaper {
	enum { TOP_REAPER_NONE = 0, TOP_REAPER_STALE, TOP_REAPER_RUNNING } state;
	uint32_t pid, mode; /* mode: 1 bpf, 2 pidfd */
	double beat_age;    /* seconds since its last beat, < 0 unknown */
	uint64_t reaped;
};

/* One membership event of a domain's log (events.c). */
struct top_event {
	uint32_t type; /* SHMRPC_EV_* */
	int32_t pid;
	uint64_t id;			/* slot << 32 | gen */
	double age;			/* seconds since it was recorded, < 0 unknown */
	char name[SHMRPC_NAME_MAX + 1]; /* checked */
};
#define TOP_EV_SHOW 5 /* latest events kept per domain */

/* A domain's event log: the domain's membership, not any receiver's
 * subscription (which is process memory: not visible to the tool). */
struct top_events {
	bool ok; /* the log was read; else why */
	char why[TOP_WHY_MAX];
	uint64_t total;			    /* events ever recorded (ev_head) */
	uint32_t joins, leaves, deaths;	    /* of those still in the log */
	uint32_t garbage;		    /* entries no writer of ours makes */
	struct top_event last[TOP_EV_SHOW]; /* newest first */
	uint32_t nlast;
};

struct top_domain {
	char name[SHMRPC_NAME_MAX + 1];
	enum top_dom_status status;
	char why[TOP_WHY_MAX];
	uint32_t capacity, nonce, epoch;
	uint8_t key[SHMRPC__KEY_BYTES]; /* the registry's name key (lib/names.c) */
	struct top_reaper reaper;
	uint32_t node_first, node_count; /* into snap->nodes */
	uint32_t ring_first, ring_count; /* into snap->rings */
	uint32_t stray;			 /* its files that belong to no registry we see */
	struct top_events ev;		 /* events.c */
};

/* A shmrpc-bridge's status segment (tools/bridge/status.h), copied out. */
struct top_brow {
	uint32_t kind; /* 1 local, 2 remote, 3 refused */
	char name[SHMRPC_NAME_MAX + 1], host[SHMRPC_NAME_MAX + 1];
	uint64_t fwd_msgs, dlv_msgs, lost, dropped, stalls, queued;
};
struct top_bridge {
	char domain[SHMRPC_NAME_MAX + 1], host[SHMRPC_NAME_MAX + 1];
	char why[TOP_WHY_MAX]; /* "" when the segment checked out */
	bool live;	       /* its bridge holds the lock */
	uint32_t pid, nats_up, hosts;
	uint64_t reconnects, bad_msgs, gone_lost, gone_dropped;
	uint64_t bcasts, bcast_sent, bcast_split; /* broadcasts published once */
	struct top_brow *rows;
	uint32_t nrows;
};

struct top_snap {
	double mono, wall; /* CLOCK_MONOTONIC / CLOCK_REALTIME seconds */
	double interval;   /* seconds since the previous snapshot, < 0 none */
	struct top_domain *doms;
	uint32_t ndoms, cap_doms;
	struct top_node *nodes;
	uint32_t nnodes, cap_nodes;
	struct top_ring *rings;
	uint32_t nrings, cap_rings;
	struct top_bridge *bridges; /* bridges.c */
	uint32_t nbridges, cap_bridges;
};

/* ------------------------------------------------------------ shm.c */

/* Install the SIGBUS handler that top_guard() relies on. 0 or -errno. */
int top_guard_install(void);
/*
 * Run fn(ctx) with SIGBUS caught: a fault inside it (a mapped file that
 * shrank) makes top_guard return -EFAULT at once; otherwise fn's result.
 * fn must leave nothing half-done that matters when cut short (no locks,
 * no allocations): it only copies out of mappings.
 */
int top_guard(int (*fn)(void *ctx), void *ctx);
/* Copy @len bytes (a multiple of 8, both 8-aligned) from a mapping word by
 * word with relaxed atomic loads, under the guard. 0 or -EFAULT. */
int top_copy(void *dst, const void *src, size_t len);

/* A read-only view of one /dev/shm file. */
struct top_map {
	const void *p;
	size_t len;    /* bytes mapped */
	uint64_t size; /* the file's size when it was mapped */
	uint64_t ino;
	uint32_t uid;
	int fd;		/* kept open only when asked (liveness probe) */
	bool head_data; /* its first page holds data (is not a hole) */
};
/*
 * Open /dev/shm/@file read-only (no symlinks, no FIFOs, regular files only),
 * fstat it and map at most @max bytes of what is there. A file of size 0 is
 * not mapped (m->p NULL, m->len 0). With @keep_fd the descriptor stays open
 * in m->fd (else -1). 0, or -errno (-ENOENT when it vanished).
 *
 * Reading a mapped hole of a tmpfs file allocates a page for it: the tool
 * would grow the files it watches. So before a page is read, ask whether
 * it holds data (m->head_data for the first page, top_data() for others);
 * a hole reads as zeros without being touched.
 */
int top_map_open(const char *file, size_t max, bool keep_fd, struct top_map *m);
/* Mark in @pages (one bool per page of the first @len bytes) the pages of
 * open file @fd that hold data. A file system that cannot tell (no
 * SEEK_DATA) has data everywhere. */
void top_data(int fd, uint64_t len, bool *pages);
void top_map_close(struct top_map *m);
/* 1 if somebody holds the liveness lock of the open file, 0 if nobody,
 * -errno. Asks (F_OFD_GETLK); never takes it. */
int top_lock_held(int fd);

double top_now_mono(void);
double top_now_wall(void);

/* ------------------------------------------------------------ scan.c */

/* Scan /dev/shm: every domain, or only @domain when not NULL. Fills @s
 * (emptied first; its arrays are reused). 0 or -errno (-ENOMEM, or the
 * directory cannot be read). */
int top_scan(struct top_snap *s, const char *domain);
void top_snap_free(struct top_snap *s);
void top_snap_swap(struct top_snap *a, struct top_snap *b);
const char *top_state_name(enum top_node_state st);
const char *top_dom_status_name(enum top_dom_status st);
const char *top_backend_name(uint32_t id);
/* Name of the node at the other end of ring @r, seen from node @self. */
const char *top_ring_peer(const struct top_snap *s, const struct top_ring *r, int self, char *buf,
			  size_t len);

/* ------------------------------------------------------------ rings.c */

/* The sorted listing of /dev/shm ("shmrpc.*" entries) a scan works from. */
struct top_names {
	char (*v)[TOP_FILE_MAX];
	uint32_t n, cap;
};
/* For scan.c: read domain @di's ring files and link them to its nodes;
 * then, node by node, sum the totals. 0 or -ENOMEM. */
int top__scan_rings(struct top_snap *s, uint32_t di, const struct top_names *l);
void top__node_sum(struct top_snap *s, struct top_node *n);
/* realloc @v to hold at least @need entries of @size (doubling *cap), or
 * NULL (then @v is untouched). */
void *top_grow(void *v, uint32_t *cap, uint32_t need, size_t size);

/* ------------------------------------------------------------ events.c */

struct top_map;
/* For scan.c: domain @d's event log from its checked registry mapping. */
void top__scan_events(struct top_domain *d, const struct top_map *m, const bool *pages,
		      const struct shmrpc__reg_hdr *h, double mono);
const char *top_event_name(uint32_t type);
void top_fmt_event(char *buf, size_t len, const struct top_event *ev);
/* Batch text: per domain, the counts and the latest events. */
void top_events_text(FILE *f, const struct top_snap *s, const char *domain);

/* ------------------------------------------------------------ bridges.c */

/* For scan.c: every /dev/shm/shmrpc-bridge.<domain> (only @domain's when
 * not NULL) into s->bridges. 0 or -ENOMEM. */
int top__scan_bridges(struct top_snap *s, const char *domain);
void top__bridges_free(struct top_snap *s);
/* Text: a block per bridge (out_text.c); JSON: the "bridges" array. */
void top_bridges_text(FILE *f, const struct top_snap *s);
void top_bridges_json(FILE *f, const struct top_snap *s);
/* One line for the screen: "bridge D on H: NATS up, hosts 2, nodes 3 here
 * 5 remote, lost 0 dropped 0". */
void top_bridge_line(char *buf, size_t len, const struct top_bridge *b);

/* ------------------------------------------------------------ rates.c */

/* Derive @cur's totals, rates and ring histories from @prev (NULL on the
 * first refresh). */
void top_rates(struct top_snap *cur, const struct top_snap *prev);

struct top_summary {
	uint32_t domains, domains_bad;
	uint32_t live, dead, other; /* nodes: live+closing, dead+gone, the rest */
	uint32_t futex, uring;	    /* backends of live nodes */
	uint32_t rings, rings_bad;
	bool rates;
	double msgs, bytes;	  /* per second, counted once, at the sender */
	struct top_reaper reaper; /* the best one seen */
	uint64_t events;	  /* membership events recorded, all domains */
	bool have_last;		  /* last: the latest event of any domain */
	struct top_event last;
};
/* Summary of the domains selected by @domain (NULL: all). */
void top_summarize(const struct top_snap *s, const char *domain, struct top_summary *sum);

/* ------------------------------------------------------------ table.c */

enum top_col_id {
	TOP_COL_NAME = 0,
	TOP_COL_DOMAIN,
	TOP_COL_PID,
	TOP_COL_STATE,
	TOP_COL_UPTIME,
	TOP_COL_MSGS_IN,
	TOP_COL_MSGS_OUT,
	TOP_COL_MB_IN,
	TOP_COL_MB_OUT,
	TOP_COL_WAKES,
	TOP_COL_SKIP,
	TOP_COL_SLEEPS,
	TOP_COL_FULL,
	TOP_COL_RINGS_IN,
	TOP_COL_RINGS_OUT,
	TOP_COL_CALLS,
	TOP_COL_INFLIGHT,
	TOP_COL_CFAIL,
	TOP_COL_COUNT,
};

struct top_col {
	const char *head; /* column heading */
	const char *id;	  /* name for --sort */
	char key;	  /* interactive key that sorts by it */
	int width;
	bool left;	  /* left-aligned (text) */
	bool desc;	  /* natural order is descending (numbers) */
	const char *what; /* one line for the help screen */
};
extern const struct top_col top_cols[TOP_COL_COUNT];

/* Column by --sort name or by key; -1 if none. */
int top_col_by_id(const char *id);
int top_col_by_key(int key);

struct top_view {
	const char *domain; /* NULL: all */
	const char *filter; /* substring of the name, NULL or "": none */
	int sort;	    /* enum top_col_id */
	bool reverse;	    /* against the column's natural order */
	bool show_domain;   /* add the DOMAIN column */
	int width;	    /* columns available (the screen's), 0: no limit */
};
/* Indices of the nodes @v selects, sorted; returns how many (<= nnodes).
 * @rows must hold s->nnodes entries. */
uint32_t top_rows(const struct top_snap *s, const struct top_view *v, uint32_t *rows);
/* The columns shown: those that fit v->width, by priority (table.c). */
void top_cols_fit(const struct top_view *v, bool shown[TOP_COL_COUNT]);
/* The heading line and one node's line, at most @len - 1 characters and
 * v->width columns (the columns that fit, a reason cut to fit). */
void top_fmt_head(char *buf, size_t len, const struct top_view *v);
void top_fmt_row(char *buf, size_t len, const struct top_snap *s, const struct top_node *n,
		 const struct top_view *v);
/* Header lines of the screen and of each text block. */
void top_fmt_summary(char *l1, char *l2, size_t len, const struct top_snap *s,
		     const struct top_summary *sum, const struct top_view *v, double delay);
/* @line folded at its double-space separators onto lines of at most @width
 * columns (0: one line), '\n' between them in @buf; returns how many. */
int top_wrap(char *buf, size_t len, const char *line, int width);
/* The rings of a node: heading and one line per ring. @bar is the width of
 * the depth bar (0: none). */
void top_fmt_ring_head(char *buf, size_t len, int bar);
void top_fmt_ring(char *buf, size_t len, const struct top_snap *s, const struct top_ring *r,
		  int self, int bar);
/* Numbers in a fixed width: 1234 -> "1234", 123456 -> "123k"; MB/s. */
void top_fmt_count(char *buf, size_t len, double v);
/* A node's calls in flight now (-1 unknown): its counters read apart,
 * the ended one may run ahead of the started one it follows. */
static inline double top_inflight(const struct top_node *n)
{
	if (!n->seg_ok)
		return -1;
	return n->tot.calls > n->tot.calls_ended ? (double)(n->tot.calls - n->tot.calls_ended) : 0;
}
void top_fmt_mb(char *buf, size_t len, double bytes);
void top_fmt_age(char *buf, size_t len, double secs);

/* ------------------------------------------------------------ outputs */

enum top_mode { TOP_MODE_UI = 0, TOP_MODE_TEXT, TOP_MODE_JSON, TOP_MODE_PROM };

struct top_opts {
	enum top_mode mode;
	long iterations; /* -n; 0: until interrupted */
	double delay;	 /* -d, seconds */
	const char *domain;
	const char *out; /* -o FILE, or NULL for stdout */
	bool rings;	 /* --rings: text blocks list every node's rings */
	struct top_view view;
};

int top_opts_parse(int argc, char **argv, struct top_opts *o);
void top_usage(FILE *f);

int top_out_text(FILE *f, const struct top_snap *s, const struct top_opts *o);
int top_out_json(FILE *f, const struct top_snap *s, const struct top_opts *o);
int top_out_prom(FILE *f, const struct top_snap *s, const struct top_opts *o);
/* JSON string body of @str (quotes not included). */
void top_json_str(FILE *f, const char *str);

/* ------------------------------------------------------------ ui.c */

/* The interactive screen until 'q' or a signal. 0 or -errno. */
int top_ui(struct top_opts *o);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_TOP_H */
