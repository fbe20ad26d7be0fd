// SPDX-License-Identifier: MIT
/*
 * Scenario: a 64 B stream, libshmrpc (shmrpc_send/shmrpc_recv) or the bare
 * SPSC ring of shmrpc-bench's `spin` baseline (tools/bench/ring.c).
 *
 *   pn_stream lib|ring pair [--msgs N] [--size S] [--warm W]
 *	two processes, producer pinned to CPU 0, consumer to CPU 1; prints
 *	msgs/s over the consumer's window, CPU ns per message of each side
 *	and (lib) each side's library counters
 *   pn_stream lib|ring lockstep [--msgs N] [--batch K]
 *	one thread is both ends: K sends, then K receives, N messages in all.
 *	No waiting, no second CPU: exactly the instructions of the message
 *	path, for callgrind (valgrind --tool=callgrind pn_stream lib lockstep)
 *
 * Kinds "ring+X" are the bare ring with one of libshmrpc's per-message costs
 * added, to price each on the smallest code (X: letters, combined):
 *   f  producer: seq_cst fence and a load of a word on its own line after
 *      publishing tail (the wake check F of lib/wake.c)
 *   r  consumer: the same after storing head (the space wake check)
 *   l  producer: a process-private pthread mutex, trylock before / unlock
 *      after each send (the connection mutex of lib/conn.c)
 *   c  producer: three 64-bit counters on the tail's cache line, one of
 *      them after the fence (tx_msgs, tx_bytes, tx_skips); consumer: two
 *      on the head's line (rx_msgs, rx_bytes)
 *   b  consumer: a CAS and a release store of a private word around each
 *      receive (rx_busy of lib/recv.c)
 *
 * --vec K (lib only): the producer sends K messages per call and the
 * consumer takes up to K per call, through the experiment build's
 * emulations of shmrpc_peer_sendv and shmrpc_recv_batch (ablate.sh, knob
 * PN_BATCH: one lock, one tail store and one wake check per batch; one
 * rx_enter, one head store and one space check per batch). Without that
 * build it says so and fails.
 *
 * The lib runs use a fresh domain, ring_bytes 256 KiB (the bench's budget);
 * SHMRPC_BACKEND and SHMRPC_SPIN_US apply as for any program.
 */
#include <pthread.h>
#include <stdbool.h>

#include <sys/uio.h>

#include "pn.h"
#include "ring.h"
#include "shmrpc.h"

struct ctl {
	_Atomic uint32_t bar;
	int64_t t0, t1;		   /* consumer window */
	int64_t cpu[2];		   /* CPU ns of each side in its loop */
	uint64_t msgs[2];	   /* messages of each side's loop */
	struct shmrpc_stats st[2]; /* lib: counters at the end of each side */
	int err[2];
};

static const char *kind, *mode;
static uint64_t n_msgs = 10000000, n_warm = 200000, batch = 64;
static size_t msg_size = 64;
static char domain[64];
static struct ring_pair *rp;
static struct ctl *C;

#define RING_BYTES (256u * 1024)

static void stamp(unsigned char *b, uint64_t seq)
{
	memcpy(b, &seq, 8);
	memcpy(b + msg_size - 8, &seq, 8);
}

static int check(const unsigned char *b, int n, uint64_t seq)
{
	uint64_t a, z;

	if (n != (int)msg_size)
		return -1;
	memcpy(&a, b, 8);
	memcpy(&z, b + msg_size - 8, 8);
	return a == seq && z == seq ? 0 : -1;
}

/* ----------------------------------------------- the ring, plus lib costs */

/* the experiment build's batch calls (ablate.patch, PN_BATCH), if linked */
int shmrpc__pn_sendv(struct shmrpc_node *n, const char *to, const struct iovec *v, unsigned k)
	__attribute__((weak));
int shmrpc__pn_recv_batch(struct shmrpc_node *n, void **bufs, size_t cap, unsigned k,
			  int timeout_ms) __attribute__((weak));
static unsigned vec; /* --vec K */

static const char *extra = ""; /* letters after "ring+" */
static bool x_f, x_r, x_l, x_c, x_b;

struct xside {
	_Alignas(64) _Atomic uint32_t word[2]; /* [0] data_seq, [1] space_seq */
	_Alignas(64) _Atomic uint64_t ctr_tail[3];
	_Alignas(64) _Atomic uint64_t ctr_head[2];
	_Alignas(64) _Atomic int busy;
};
static struct xside *X; /* shared: the words; counters faked at a fixed offset */
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;

static inline void xctr(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static int xring_send(struct ring_port *p, const void *b)
{
	_Atomic uint64_t *ct = (_Atomic uint64_t *)((char *)&p->tx->tail + 8);
	int err;

	if (x_l && pthread_mutex_trylock(&xlock))
		return -EAGAIN;
	err = ring_send(p, b, msg_size);
	if (x_c) {
		xctr(&ct[0], 1);
		xctr(&ct[1], msg_size);
	}
	if (x_f) {
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&X->word[0], memory_order_relaxed) & 0x80000000u)
			err = -EIO;
	}
	if (x_c)
		xctr(&ct[2], 1);
	if (x_l)
		pthread_mutex_unlock(&xlock);
	return err;
}

static int xring_recv(struct ring_port *p, void *b)
{
	_Atomic uint64_t *ch = (_Atomic uint64_t *)((char *)&p->rx->head + 8);
	int n, e = 0;

	if (x_b && !atomic_compare_exchange_strong_explicit(&X->busy, &e, 1, memory_order_acquire,
							    memory_order_relaxed))
		return -EBUSY;
	n = ring_recv(p, b, msg_size);
	if (x_c) {
		xctr(&ch[0], 1);
		xctr(&ch[1], (uint64_t)n);
	}
	if (x_r) {
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&X->word[1], memory_order_relaxed) & 0x80000000u)
			n = -EIO;
	}
	if (x_b)
		atomic_store_explicit(&X->busy, 0, memory_order_release);
	return n;
}

/* ------------------------------------------------------------- endpoints */

struct ep {
	struct shmrpc_node *node;
	struct ring_port port;
};

static int ep_open(struct ep *e, int side)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain, .ring_bytes = RING_BYTES };
	int err;

	if (!strncmp(kind, "ring", 4)) {
		ring_port_attach(rp, side, NULL, NULL);
		e->port = rp->port;
		return 0;
	}
	err = shmrpc_open(side ? "b" : "a", &o, &e->node);
	if (err)
		return err;
	err = shmrpc_wait_node(e->node, side ? "a" : "b", 10000);
	if (!err && side == 0)
		err = shmrpc_warmup(e->node);
	return err < 0 ? err : 0;
}

static inline int ep_send(struct ep *e, const void *b)
{
	if (e->node)
		return shmrpc_send(e->node, "b", b, msg_size, -1);
	if (*extra)
		return xring_send(&e->port, b);
	return ring_send(&e->port, b, msg_size);
}

static inline int ep_recv(struct ep *e, void *b)
{
	if (e->node)
		return shmrpc_recv(e->node, b, msg_size, NULL, -1);
	if (*extra)
		return xring_recv(&e->port, b);
	return ring_recv(&e->port, b, msg_size);
}

static void ep_close(struct ep *e, int side)
{
	if (e->node) {
		shmrpc_stats(e->node, &C->st[side]);
		shmrpc_close(e->node);
	}
}

/* ------------------------------------------------------------- pair run */

static int producer(void *arg)
{
	unsigned char b[4096];
	struct ep e = { 0 };
	uint64_t i, total = n_warm + n_msgs;
	int64_t c0;
	int err;

	(void)arg;
	pn_pin(0);
	err = ep_open(&e, 0);
	pn_barrier(&C->bar, 2);
	if (err)
		return C->err[0] = err;
	c0 = pn_cpu();
	if (vec) {
		static unsigned char vb[256][256];
		struct iovec v[256];
		unsigned k, j;
		int rc;

		for (i = 0; i < total && !err;) {
			k = total - i < vec ? (unsigned)(total - i) : vec;
			for (j = 0; j < k; j++) {
				stamp(vb[j], i + j);
				v[j].iov_base = vb[j];
				v[j].iov_len = msg_size;
			}
			for (j = 0; j < k && !err; j += (unsigned)rc) {
				rc = shmrpc__pn_sendv(e.node, "b", v + j, k - j);
				if (rc < 0)
					err = rc;
			}
			i += k;
		}
	} else {
		for (i = 0; i < total && !err; i++) {
			stamp(b, i);
			err = ep_send(&e, b);
		}
	}
	C->cpu[0] = pn_cpu() - c0;
	C->msgs[0] = total;
	ep_close(&e, 0);
	return C->err[0] = err;
}

static int consumer(void *arg)
{
	unsigned char b[4096];
	struct ep e = { 0 };
	uint64_t i, total = n_warm + n_msgs;
	int64_t c0 = 0;
	int n, err;

	(void)arg;
	pn_pin(1);
	err = ep_open(&e, 1);
	pn_barrier(&C->bar, 2);
	if (err)
		return C->err[1] = err;
	if (vec) {
		static unsigned char vb[256][256];
		void *bufs[256];
		unsigned j;

		for (j = 0; j < vec; j++)
			bufs[j] = vb[j];
		for (i = 0; i < total;) {
			if (i >= n_warm && !c0) {
				C->t0 = pn_now();
				c0 = pn_cpu();
			}
			n = shmrpc__pn_recv_batch(e.node, bufs, msg_size, vec, -1);
			if (n <= 0)
				return C->err[1] = n ? n : -EIO;
			for (j = 0; j < (unsigned)n; j++, i++)
				if (check(vb[j], (int)msg_size, i)) {
					fprintf(stderr, "message %llu: bad\n",
						(unsigned long long)i);
					return C->err[1] = -EBADMSG;
				}
		}
	} else {
		for (i = 0; i < total; i++) {
			if (i == n_warm) {
				C->t0 = pn_now();
				c0 = pn_cpu();
			}
			n = ep_recv(&e, b);
			if (check(b, n, i)) {
				fprintf(stderr, "message %llu: bad (%d)\n", (unsigned long long)i,
					n);
				return C->err[1] = -EBADMSG;
			}
		}
	}
	C->t1 = pn_now();
	C->cpu[1] = pn_cpu() - c0;
	C->msgs[1] = n_msgs;
	ep_close(&e, 1);
	return 0;
}

static int run_pair(void)
{
	struct pn_others o;
	pid_t p0, p1;
	double secs;
	int rc0, rc1;

	pn_others_begin(&o);
	p1 = pn_fork(consumer, NULL);
	p0 = pn_fork(producer, NULL);
	rc0 = pn_wait(p0);
	rc1 = pn_wait(p1);
	if (rc0 || rc1 || C->err[0] || C->err[1]) {
		fprintf(stderr, "failed: producer %d (%d), consumer %d (%d)\n", rc0, C->err[0], rc1,
			C->err[1]);
		return 1;
	}
	secs = (double)(C->t1 - C->t0) / 1e9;
	printf("%s%s pair size %zu msgs %llu: %.2f M msgs/s  ns/msg %.1f  cpu ns/msg prod %.1f "
	       "cons %.1f",
	       kind, vec ? " vec" : "", msg_size, (unsigned long long)n_msgs,
	       (double)n_msgs / secs / 1e6, secs * 1e9 / (double)n_msgs,
	       (double)C->cpu[0] / (double)C->msgs[0], (double)C->cpu[1] / (double)C->msgs[1]);
	if (!strcmp(kind, "lib"))
		printf("  | prod: full %llu sleeps %llu wakes %llu | cons: sleeps %llu spins %llu "
		       "wakes %llu",
		       (unsigned long long)C->st[0].send_full, (unsigned long long)C->st[0].sleeps,
		       (unsigned long long)C->st[0].wakes_sent, (unsigned long long)C->st[1].sleeps,
		       (unsigned long long)C->st[1].spins, (unsigned long long)C->st[1].wakes_sent);
	printf("  | others %.0f%%\n", pn_others_pct(&o));
	return 0;
}

/* --------------------------------------------------------- lockstep run */

static int run_lockstep(void)
{
	unsigned char b[4096];
	struct ep tx = { 0 }, rx = { 0 };
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain, .ring_bytes = RING_BYTES };
	uint64_t s = 0, r = 0, k;
	int64_t t0;
	int err = 0;

	if (!strncmp(kind, "ring", 4)) {
		ring_port_attach(rp, 0, NULL, NULL);
		tx.port = rp->port;
		ring_port_attach(rp, 1, NULL, NULL);
		rx.port = rp->port;
	} else {
		err = shmrpc_open("b", &o, &rx.node);
		if (!err)
			err = shmrpc_open("a", &o, &tx.node);
		if (!err)
			err = shmrpc_warmup(tx.node) == 1 ? 0 : -ENOTCONN;
		if (err) {
			fprintf(stderr, "open: %s\n", strerror(-err));
			return 1;
		}
		/* the receiver takes the announced ring before the measured loop */
		if (shmrpc_recv(rx.node, b, sizeof(b), NULL, 0) != -EAGAIN)
			return 1;
	}
	t0 = pn_now();
	while (vec && s < n_msgs) {
		static unsigned char vb[256][256];
		struct iovec v[256];
		void *bufs[256];
		unsigned j, m = n_msgs - s < vec ? (unsigned)(n_msgs - s) : vec;
		int got;

		for (j = 0; j < m; j++) {
			stamp(vb[j], s + j);
			v[j].iov_base = vb[j];
			v[j].iov_len = msg_size;
			bufs[j] = vb[j];
		}
		if (shmrpc__pn_sendv(tx.node, "b", v, m) != (int)m) {
			err = -EIO;
			goto out;
		}
		s += m;
		got = shmrpc__pn_recv_batch(rx.node, bufs, msg_size, m, 0);
		for (j = 0; j < (unsigned)(got > 0 ? got : 0); j++)
			if (check(vb[j], (int)msg_size, r++)) {
				err = -EBADMSG;
				goto out;
			}
		if (got != (int)m) {
			err = -EIO;
			goto out;
		}
	}
	while (s < n_msgs) {
		for (k = 0; k < batch && s < n_msgs; k++) {
			stamp(b, s++);
			if ((err = ep_send(&tx, b)))
				goto out;
		}
		while (r < s) {
			int n = ep_recv(&rx, b);

			if (check(b, n, r++)) {
				err = -EBADMSG;
				goto out;
			}
		}
	}
out:
	printf("%s lockstep size %zu batch %llu msgs %llu: %.1f ns/msg (one CPU, both ends) %s\n",
	       kind, msg_size, (unsigned long long)batch, (unsigned long long)n_msgs,
	       (double)(pn_now() - t0) / (double)n_msgs, err ? strerror(-err) : "");
	if (tx.node) {
		shmrpc_close(tx.node);
		shmrpc_close(rx.node);
	}
	return err != 0;
}

int main(int argc, char **argv)
{
	int i;

	if (argc < 3 || (strcmp(argv[1], "lib") && strncmp(argv[1], "ring", 4)) ||
	    (strcmp(argv[2], "pair") && strcmp(argv[2], "lockstep"))) {
		fprintf(stderr,
			"usage: %s lib|ring|ring+LETTERS pair|lockstep [--msgs N] [--warm W] "
			"[--size S] [--batch K]\n",
			argv[0]);
		return 2;
	}
	kind = argv[1];
	mode = argv[2];
	if (!strncmp(kind, "ring+", 5)) {
		extra = kind + 5;
		x_f = strchr(extra, 'f');
		x_r = strchr(extra, 'r');
		x_l = strchr(extra, 'l');
		x_c = strchr(extra, 'c');
		x_b = strchr(extra, 'b');
	}
	X = pn_shared(sizeof(*X));
	for (i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--msgs"))
			n_msgs = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--warm"))
			n_warm = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--size"))
			msg_size = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--batch"))
			batch = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--vec"))
			vec = (unsigned)strtoul(argv[i + 1], NULL, 0);
	}
	if (msg_size < 16 || msg_size > 4096 || vec > 256 || (vec && msg_size > 256))
		return 2;
	if (vec && (strcmp(kind, "lib") || !shmrpc__pn_sendv || !shmrpc__pn_recv_batch)) {
		fprintf(stderr, "--vec needs kind lib and an experiment build with PN_BATCH "
				"(tools/bench/perf/ablate.sh)\n");
		return 2;
	}
	C = pn_shared(sizeof(*C));
	pn_domain(domain, sizeof(domain), "stream");
	if (!strncmp(kind, "ring", 4) && ring_pair_create(&rp, msg_size, RING_BYTES))
		return 1;
	return !strcmp(mode, "pair") ? run_pair() : run_lockstep();
}
