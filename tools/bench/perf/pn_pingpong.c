// SPDX-License-Identifier: MIT
/*
 * Scenario: 64 B ping-pong between two processes pinned to CPU 0 (side 0,
 * pings and times) and CPU 1 (side 1, echoes).
 *
 *   pn_pingpong KIND [--iters N] [--warm W] [--size S]
 *	KIND: cacheline  one 64-bit word handed back and forth (the floor)
 *	      ring       the bench's spin ring (tools/bench/ring.c), both spin
 *	      slot       a ring whose consumer polls the next record's own
 *	                 header (a sequence number the producer stores last,
 *	                 release) instead of the producer's tail index: arrival
 *	                 and payload in one cache-line transfer (64 B slots;
 *	                 a 64 B message takes 2). The design question of the
 *	                 awake target, not a transport anyone uses
 *	      futex      the same ring, a side with nothing to do sleeps in
 *	                 FUTEX_WAIT at once; FUTEX_WAKE only a sleeper (the
 *	                 bench's "futex" baseline: raw futex(2))
 *	      futex-to   the same, FUTEX_WAIT_BITSET with an absolute timeout
 *	                 500 ms ahead (a clock read per sleep), as the library
 *	                 sleeps (its safety timeout)
 *	      waitv      the same, futex_waitv on 2 words (the node's bell,
 *	                 never woken here, and the ring's), absolute timeout
 *	      uring      the same, an io_uring FUTEX_WAIT re-armed and waited
 *	                 for in one io_uring_enter with a 500 ms timeout, a
 *	                 second wait (the bell) armed once and left armed
 *	      lib        libshmrpc, receivers awake (spin_us 1 s)
 *	      lib-sleep  libshmrpc, receivers sleep at once (SHMRPC_SPIN_NEVER)
 *	      lib-def    libshmrpc defaults (adaptive spin up to 20 us)
 *	(the lib kinds use $SHMRPC_BACKEND like any program)
 * Prints the one-way latency (RTT / 2) median and p10/p90/p99, and per
 * round trip each side's CPU (user and system, getrusage: all threads),
 * voluntary context switches, and (lib) sleeps and wakes.
 */
#include <liburing.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <stdbool.h>

#include "pn.h"
#include "ring.h"
#include "shmrpc.h"

struct ctl {
	_Atomic uint32_t bar;
	_Alignas(64) _Atomic uint64_t line;
	_Alignas(64) int64_t user[2], sys[2], vcsw[2];
	struct shmrpc_stats st[2];
	int err[2];
	uint64_t n;
	int64_t samples[];
};

static const char *kind;
static uint64_t iters = 100000, warm = 5000;
static size_t msg_size = 64;
static char domain[64];
static struct ring_pair *rp;
static struct ctl *C;

static void fwait(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val)
{
	(void)arg;
	syscall(SYS_futex, &r->seq[k], FUTEX_WAIT, val, NULL, NULL, 0);
}

static void fwake(void *arg, struct ring_shm *r, enum ring_kind k)
{
	(void)arg;
	syscall(SYS_futex, &r->seq[k], FUTEX_WAKE, 1, NULL, NULL, 0);
}

static const struct ring_waiter futex_waiter = { fwait, fwake };

/* futex-to: the library's futex(2) sleep (lib/futex.c) */
static void fwait_to(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val)
{
	int64_t d = pn_now() + 500000000;
	struct timespec ts = { d / 1000000000, d % 1000000000 };

	(void)arg;
	syscall(SYS_futex, &r->seq[k], FUTEX_WAIT_BITSET, val, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

static const struct ring_waiter futex_to_waiter = { fwait_to, fwake };

/* waitv: the futex backend's sleep (lib/wake_futex.c), bell + ring word */
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
static _Atomic uint32_t bell; /* never woken: a second word in the set */

static void fwaitv(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val)
{
	int64_t d = pn_now() + 500000000;
	struct timespec ts = { d / 1000000000, d % 1000000000 };
	struct futex_waitv wv[2] = {
		{ .val = 0, .uaddr = (uintptr_t)&bell, .flags = FUTEX_32 },
		{ .val = val, .uaddr = (uintptr_t)&r->seq[k], .flags = FUTEX_32 },
	};

	(void)arg;
	syscall(SYS_futex_waitv, wv, 2, 0, &ts, CLOCK_MONOTONIC);
}

static const struct ring_waiter waitv_waiter = { fwaitv, fwake };

/* uring: the uring backend's sleep (lib/wake_uring.c), minus the library */
static struct io_uring U;
static bool u_bell_armed;

static void prep_wait(struct io_uring_sqe *sqe, _Atomic uint32_t *w, uint32_t val, uint64_t ud)
{
	if (!sqe)
		abort(); /* 64 entries, at most 2 in flight */
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = 51; /* IORING_OP_FUTEX_WAIT */
	sqe->fd = 2;	  /* FUTEX2_SIZE_U32 */
	sqe->off = val;
	sqe->addr = (uint64_t)(uintptr_t)w;
	sqe->addr3 = 0xffffffffu;
	sqe->user_data = ud;
}

static void uwait(void *arg, struct ring_shm *r, enum ring_kind k, uint32_t val)
{
	struct __kernel_timespec ts = { 0, 500000000 };
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	(void)arg;
	if (!u_bell_armed) {
		prep_wait(io_uring_get_sqe(&U), &bell, 0, 2);
		u_bell_armed = true;
	}
	prep_wait(io_uring_get_sqe(&U), &r->seq[k], val, 1);
	io_uring_submit_and_wait_timeout(&U, &cqe, 1, &ts, NULL);
	io_uring_for_each_cqe(&U, head, cqe) seen++;
	io_uring_cq_advance(&U, seen);
}

static const struct ring_waiter uring_waiter = { uwait, fwake };

/* slot: per direction, SLOTS records of 128 B: {seq, len, payload} */
#define SLOTS 1024
struct slot {
	_Atomic uint64_t seq; /* producer: i + 1 once record i is in place */
	uint32_t len;
	unsigned char data[116];
};
struct slotring {
	_Alignas(128) struct slot s[SLOTS];
};
static struct slotring *SR; /* [2]: side 0 -> 1, side 1 -> 0 */

static int slot_send(int side, uint64_t *seq, const void *b, size_t len)
{
	struct slot *sl = &SR[side].s[*seq % SLOTS];

	sl->len = (uint32_t)len;
	memcpy(sl->data, b, len < sizeof(sl->data) ? len : sizeof(sl->data));
	/* Release: the record before its sequence number. (A full ring is
	 * not handled: ping-pong keeps one message in flight.) */
	atomic_store_explicit(&sl->seq, ++*seq, memory_order_release);
	return 0;
}

static int slot_recv(int side, uint64_t *seq, void *b)
{
	struct slot *sl = &SR[1 - side].s[*seq % SLOTS];

	/* Acquire: pairs with the release above. */
	while (atomic_load_explicit(&sl->seq, memory_order_acquire) != *seq + 1)
		pn_relax();
	memcpy(b, sl->data, sl->len < sizeof(sl->data) ? sl->len : sizeof(sl->data));
	++*seq;
	return (int)sl->len;
}

struct ep {
	uint64_t sseq, rseq; /* slot */
	int side;
	struct shmrpc_node *node;
	struct ring_port port;
	const char *peer;
};

static int ep_open(struct ep *e, int side)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain, .ring_bytes = 256 * 1024 };
	int err;

	if (!strcmp(kind, "ring") || !strcmp(kind, "futex") || !strcmp(kind, "futex-to") ||
	    !strcmp(kind, "waitv") || !strcmp(kind, "uring")) {
		const struct ring_waiter *w = !strcmp(kind, "futex")	? &futex_waiter :
					      !strcmp(kind, "futex-to") ? &futex_to_waiter :
					      !strcmp(kind, "waitv")	? &waitv_waiter :
					      !strcmp(kind, "uring")	? &uring_waiter :
									  NULL;

		if (w == &uring_waiter &&
		    io_uring_queue_init(64, &U,
					IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL))
			return -EOPNOTSUPP;
		ring_port_attach(rp, side, w, NULL);
		e->port = rp->port;
		return 0;
	}
	e->side = side;
	if (!strcmp(kind, "cacheline") || !strcmp(kind, "slot"))
		return 0;
	o.spin_us = !strcmp(kind, "lib")       ? 1000000 :
		    !strcmp(kind, "lib-sleep") ? SHMRPC_SPIN_NEVER :
						 0;
	e->peer = side ? "a" : "b";
	err = shmrpc_open(side ? "b" : "a", &o, &e->node);
	if (!err)
		err = shmrpc_wait_node(e->node, e->peer, 10000);
	if (!err)
		err = shmrpc_warmup(e->node) == 1 ? 0 : -ENOTCONN;
	return err;
}

static int ep_send(struct ep *e, void *b)
{
	if (SR)
		return slot_send(e->side, &e->sseq, b, msg_size);
	if (e->node)
		return shmrpc_send(e->node, e->peer, b, msg_size, -1);
	return ring_send(&e->port, b, msg_size);
}

static int ep_recv(struct ep *e, void *b)
{
	if (SR)
		return slot_recv(e->side, &e->rseq, b);
	if (e->node)
		return shmrpc_recv(e->node, b, msg_size, NULL, -1);
	return ring_recv(&e->port, b, msg_size);
}

static void account(int side)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	C->user[side] += (int64_t)ru.ru_utime.tv_sec * 1000000000 + ru.ru_utime.tv_usec * 1000;
	C->sys[side] += (int64_t)ru.ru_stime.tv_sec * 1000000000 + ru.ru_stime.tv_usec * 1000;
	C->vcsw[side] += ru.ru_nvcsw;
}

static void unaccount(int side)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	C->user[side] -= (int64_t)ru.ru_utime.tv_sec * 1000000000 + ru.ru_utime.tv_usec * 1000;
	C->sys[side] -= (int64_t)ru.ru_stime.tv_sec * 1000000000 + ru.ru_stime.tv_usec * 1000;
	C->vcsw[side] -= ru.ru_nvcsw;
}

static int side_run(void *arg)
{
	int side = (int)(intptr_t)arg;
	unsigned char b[4096];
	struct ep e = { 0 };
	uint64_t i, total = warm + iters, v;
	int64_t t0;
	int err;

	pn_pin(side);
	err = ep_open(&e, side);
	pn_barrier(&C->bar, 2);
	if (err)
		return C->err[side] = err;
	memset(b, 0, sizeof(b));
	for (i = 0; i < total && !err; i++) {
		if (i == warm)
			unaccount(side);
		if (!strcmp(kind, "cacheline")) {
			if (side == 0) {
				t0 = pn_now();
				atomic_store_explicit(&C->line, 2 * i + 1, memory_order_release);
				while (atomic_load_explicit(&C->line, memory_order_acquire) !=
				       2 * i + 2)
					pn_relax();
			} else {
				while ((v = atomic_load_explicit(&C->line, memory_order_acquire)) !=
				       2 * i + 1)
					pn_relax();
				atomic_store_explicit(&C->line, v + 1, memory_order_release);
				continue;
			}
		} else if (side == 0) {
			memcpy(b, &i, 8);
			t0 = pn_now();
			err = ep_send(&e, b);
			if (!err && ep_recv(&e, b) != (int)msg_size)
				err = -EBADMSG;
		} else {
			if (ep_recv(&e, b) != (int)msg_size)
				err = -EBADMSG;
			else
				err = ep_send(&e, b);
			continue;
		}
		if (i >= warm)
			C->samples[i - warm] = (pn_now() - t0) / 2;
	}
	account(side);
	if (e.node) {
		shmrpc_stats(e.node, &C->st[side]);
		shmrpc_close(e.node);
	}
	return C->err[side] = err;
}

int main(int argc, char **argv)
{
	struct pn_others o;
	uint64_t n;
	pid_t p0, p1;
	int i, rc0, rc1;

	if (argc < 2) {
		fprintf(stderr,
			"usage: %s cacheline|ring|futex|futex-to|waitv|uring|lib|lib-sleep|lib-def [--iters N] "
			"[--warm W] [--size S]\n",
			argv[0]);
		return 2;
	}
	kind = argv[1];
	for (i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--iters"))
			iters = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--warm"))
			warm = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--size"))
			msg_size = strtoull(argv[i + 1], NULL, 0);
	}
	C = pn_shared(sizeof(*C) + iters * sizeof(int64_t));
	pn_domain(domain, sizeof(domain), "pp");
	if (ring_pair_create(&rp, msg_size, 256 * 1024))
		return 1;
	if (!strcmp(kind, "slot"))
		SR = pn_shared(2 * sizeof(struct slotring));
	pn_others_begin(&o);
	p1 = pn_fork(side_run, (void *)(intptr_t)1);
	p0 = pn_fork(side_run, (void *)(intptr_t)0);
	rc0 = pn_wait(p0);
	rc1 = pn_wait(p1);
	if (rc0 || rc1) {
		fprintf(stderr, "failed: side 0 %d (%d), side 1 %d (%d)\n", rc0, C->err[0], rc1,
			C->err[1]);
		return 1;
	}
	n = iters;
	pn_sort(C->samples, n);
	printf("%s pingpong size %zu n %llu: one-way median %lld ns  p10 %lld p90 %lld p99 %lld | "
	       "per round trip: side0 user %.2f sys %.2f us, side1 user %.2f sys %.2f us, vcsw "
	       "%.2f/%.2f",
	       kind, msg_size, (unsigned long long)n, (long long)pn_q(C->samples, n, 0.5),
	       (long long)pn_q(C->samples, n, 0.1), (long long)pn_q(C->samples, n, 0.9),
	       (long long)pn_q(C->samples, n, 0.99), (double)C->user[0] / 1e3 / (double)n,
	       (double)C->sys[0] / 1e3 / (double)n, (double)C->user[1] / 1e3 / (double)n,
	       (double)C->sys[1] / 1e3 / (double)n, (double)C->vcsw[0] / (double)n,
	       (double)C->vcsw[1] / (double)n);
	if (!strncmp(kind, "lib", 3))
		printf(" | sleeps %.2f/%.2f wakes %.2f/%.2f per rt",
		       (double)C->st[0].sleeps / (double)(n + warm),
		       (double)C->st[1].sleeps / (double)(n + warm),
		       (double)C->st[0].wakes_sent / (double)(n + warm),
		       (double)C->st[1].wakes_sent / (double)(n + warm));
	printf(" | cpu/rt cpu0 %.2f cpu1 %.2f us | others %.0f%%\n",
	       (double)(C->user[0] + C->sys[0]) / 1e3 / (double)n,
	       (double)(C->user[1] + C->sys[1]) / 1e3 / (double)n, pn_others_pct(&o));
	return 0;
}
