// SPDX-License-Identifier: MIT
/*
 * libshmrpc as a pair transport: each side opens one node ("a" or "b") in a
 * domain of its own (bench_domain: fresh for every run), waits for the
 * other and connects ahead of time (shmrpc_warmup), so that no measured
 * message pays for connecting. Rings are the run's buffering budget (a
 * power of two, at least 256 KiB: the library's default ring size).
 *
 * Variants differ only in options and calls:
 *   shmrpc             defaults: wake backend "uring" where it works, the
 *                      receiver spins adaptively up to 20 us, then sleeps
 *   shmrpc-futex       the same on the futex backend (futex_waitv)
 *   shmrpc-spin        spin_us = 1 s: a receiver that stays awake spinning
 *   shmrpc-sleep       SHMRPC_SPIN_NEVER: a receiver that sleeps at once
 *                      (uring backend)
 *   shmrpc-sleep-futex the same on the futex backend
 *   shmrpc-zc          defaults, zero-copy calls: the sender builds the
 *                      message in place (reserve, memset of every byte, the
 *                      stamps, commit), the receiver reads every byte in
 *                      place (peek, memchr over it, release); no copy
 *   shmrpc-batch       defaults, batch calls (issue 11): the sender holds a
 *                      peer handle (shmrpc_peer_get) and publishes through
 *                      shmrpc_peer_sendv, the receiver takes them with
 *                      shmrpc_recv_batch, BENCH_BATCH messages a call in
 *                      the stream scenario (one message a call through
 *                      shmrpc_peer_send / shmrpc_recv_batch elsewhere)
 *   shmrpc-batch-futex the same on the futex backend
 *
 * After both sides closed, the driver checks that the domain left nothing
 * in /dev/shm (and removes what a killed side left).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "bench.h"
#include "shmrpc.h"

struct shm_variant {
	const char *backend; /* NULL: the library's default */
	int32_t spin_us;     /* 0: default (adaptive, up to 20 us) */
	int zc;
	int batch; /* peer handle, shmrpc_peer_sendv, shmrpc_recv_batch */
};

struct shm_tr {
	const struct shm_variant *v;
	char domain[64];
	struct shmrpc_node *node;
	const char *peer;
	struct shmrpc_peer *ph; /* batch variants: the handle to the peer */
};

static const struct shm_variant v_default = { NULL, 0, 0, 0 };
static const struct shm_variant v_futex = { "futex", 0, 0, 0 };
static const struct shm_variant v_spin = { NULL, 1000000, 0, 0 };
static const struct shm_variant v_sleep = { "uring", SHMRPC_SPIN_NEVER, 0, 0 };
static const struct shm_variant v_sleep_futex = { "futex", SHMRPC_SPIN_NEVER, 0, 0 };
static const struct shm_variant v_zc = { NULL, 0, 1, 0 };
static const struct shm_variant v_batch = { NULL, 0, 0, 1 };
static const struct shm_variant v_batch_futex = { "futex", 0, 0, 1 };

#define ZC_FILL 0x5a   /* what a zero-copy sender writes between the stamps */
#define ZC_ABSENT 0xa5 /* what its receiver looks for, in vain */

static int shm_setup_v(struct bench_chan *ch, const struct shm_variant *v)
{
	struct shm_tr *st;

	if (v->backend && shmrpc_backend_available(v->backend) != 1) {
		snprintf(ch->why, sizeof(ch->why), "backend %s not available here", v->backend);
		return -EOPNOTSUPP;
	}
	if (ch->p.buf_bytes > (1u << 30))
		return -EMSGSIZE;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->v = v;
	bench_domain(st->domain, sizeof(st->domain), "pair");
	ch->priv = st;
	ch->buf_eff = ch->p.buf_bytes; /* the ring: max message = ring / 2 - 8 */
	return 0;
}

#define SETUP(name, var)                       \
	static int name(struct bench_chan *ch) \
	{                                      \
		return shm_setup_v(ch, &var);  \
	}
SETUP(setup_default, v_default)
SETUP(setup_futex, v_futex)
SETUP(setup_spin, v_spin)
SETUP(setup_sleep, v_sleep)
SETUP(setup_sleep_futex, v_sleep_futex)
SETUP(setup_zc, v_zc)
SETUP(setup_batch, v_batch)
SETUP(setup_batch_futex, v_batch_futex)

static int shm_attach(struct bench_chan *ch, int side)
{
	struct shm_tr *st = ch->priv;
	struct shmrpc_opts o = {
		.sz = sizeof(o),
		.domain = st->domain,
		.ring_bytes = (uint32_t)ch->p.buf_bytes,
		.backend = st->v->backend,
		.spin_us = st->v->spin_us,
	};
	int err = shmrpc_open(side ? "b" : "a", &o, &st->node);

	st->peer = side ? "a" : "b";
	if (err)
		return err;
	err = shmrpc_wait_node(st->node, st->peer, 10000);
	if (!err)
		err = shmrpc_warmup(st->node);
	if (err == 1 && st->v->batch) {
		err = shmrpc_peer_get(st->node, st->peer, 10000, &st->ph);
		err = err < 0 ? err : 1;
	}
	return err < 0 ? err : err == 1 ? 0 : -ENOTCONN;
}

static int shm_send(struct bench_chan *ch, const void *buf, size_t len)
{
	struct shm_tr *st = ch->priv;
	struct shmrpc_txbuf tx;
	int err;

	if (st->ph)
		return shmrpc_peer_send(st->ph, buf, len, -1, 0);
	if (!st->v->zc)
		return shmrpc_send(st->node, st->peer, buf, len, -1);
	err = shmrpc_reserve(st->node, st->peer, len, &tx, -1);
	if (err)
		return err;
	/* Built in place: every byte written once, the stamps from @buf. */
	memset(tx.data, ZC_FILL, len);
	if (len >= 8) {
		memcpy(tx.data, buf, 8);
		memcpy((char *)tx.data + len - 8, (const char *)buf + len - 8, 8);
	}
	return shmrpc_commit(st->node, &tx, len);
}

static int zc_recv(struct shm_tr *st, void *buf, size_t cap)
{
	struct shmrpc_rxbuf rx;
	int n, err;

	n = shmrpc_peek(st->node, &rx, -1);
	if (n < 0)
		return n;
	if ((size_t)n > cap) {
		shmrpc_release(st->node, &rx);
		return -EMSGSIZE;
	}
	/* Used in place: every byte read once, then only the stamps copied
	 * out for the scenario's check. The read is glibc's vectorized memchr
	 * for a byte the payload never holds (it is ZC_FILL between the
	 * stamps), the read-side twin of the memset that built it: as fast
	 * as memcpy reads, so the comparison with the copying calls is about
	 * the copies saved, not about a slow loop of ours. Finding the byte
	 * would mean a corrupt payload: an error, which also keeps the
	 * compiler from dropping the scan. */
	if (n > 16 && memchr((const char *)rx.data + 8, ZC_ABSENT, (size_t)n - 16)) {
		shmrpc_release(st->node, &rx); /* the sender wrote only ZC_FILL there */
		return -EPROTO;
	}
	if (n >= 8) {
		memcpy(buf, rx.data, 8);
		memcpy((char *)buf + n - 8, (const char *)rx.data + n - 8, 8);
	} else {
		memcpy(buf, rx.data, (size_t)n);
	}
	err = shmrpc_release(st->node, &rx);
	return err ? err : n;
}

static int shm_recvv(struct bench_chan *ch, void *buf, size_t cap, size_t *lens, unsigned n);

static int shm_recv(struct bench_chan *ch, void *buf, size_t cap)
{
	struct shm_tr *st = ch->priv;
	size_t len;
	int n;

	if (st->v->zc)
		return zc_recv(st, buf, cap);
	if (st->v->batch) {
		n = shm_recvv(ch, buf, cap, &len, 1);
		return n < 0 ? n : (int)len;
	}
	return shmrpc_recv(st->node, buf, cap, NULL, -1);
}

/* Batch variants: @n messages of @len bytes, back to back in @buf, as n
 * messages through the handle. */
static int shm_sendv(struct bench_chan *ch, const void *buf, size_t len, unsigned n)
{
	struct shm_tr *st = ch->priv;
	struct iovec iov[BENCH_BATCH];

	if (!st->ph)
		return -EOPNOTSUPP;
	n = n > BENCH_BATCH ? BENCH_BATCH : n;
	for (unsigned i = 0; i < n; i++)
		iov[i] = (struct iovec){ (char *)buf + i * len, len };
	return shmrpc_peer_sendv(st->ph, iov, n, -1, 0);
}

static int shm_recvv(struct bench_chan *ch, void *buf, size_t cap, size_t *lens, unsigned n)
{
	struct shm_tr *st = ch->priv;
	struct shmrpc_msg m[BENCH_BATCH];
	int k;

	n = n > BENCH_BATCH ? BENCH_BATCH : n;
	for (unsigned i = 0; i < n; i++) {
		m[i].buf = (char *)buf + i * cap;
		m[i].cap = cap;
	}
	k = shmrpc_recv_batch(st->node, m, n, -1);
	for (int i = 0; i < k; i++)
		lens[i] = m[i].len;
	return k;
}

static int shm_counters(struct bench_chan *ch, struct bench_libctr *out)
{
	struct shm_tr *st = ch->priv;
	struct shmrpc_stats s;
	int err = shmrpc_stats(st->node, &s);

	if (err)
		return err;
	out->sleeps = s.sleeps;
	out->wakes = s.wakes_sent;
	out->skips = s.wakes_skipped;
	out->spins = s.spins;
	out->full = s.send_full;
	return 0;
}

static void shm_detach(struct bench_chan *ch)
{
	struct shm_tr *st = ch->priv;

	shmrpc_peer_put(st->ph);
	st->ph = NULL;
	shmrpc_close(st->node);
	st->node = NULL;
}

static void shm_teardown(struct bench_chan *ch)
{
	struct shm_tr *st = ch->priv;
	int left;

	if (!st)
		return;
	left = bench_shm_cleanup(st->domain);
	if (left > 0)
		fprintf(stderr, "shmrpc-bench: domain %s left %d file(s) in /dev/shm (removed)\n",
			st->domain, left);
	free(st);
	ch->priv = NULL;
}

#define SHM_TRANSPORT_V(var, nm, desc, setupfn, skip, sv, rv) \
	const struct bench_transport var = {                  \
		.name = nm,                                   \
		.what = desc,                                 \
		.setup = setupfn,                             \
		.attach = shm_attach,                         \
		.send = shm_send,                             \
		.recv = shm_recv,                             \
		.detach = shm_detach,                         \
		.teardown = shm_teardown,                     \
		.counters = shm_counters,                     \
		.sendv = sv,                                  \
		.recvv = rv,                                  \
		.not_in = skip,                               \
	}
#define SHM_TRANSPORT(var, nm, desc, setupfn, skip) \
	SHM_TRANSPORT_V(var, nm, desc, setupfn, skip, NULL, NULL)

SHM_TRANSPORT(bench_tr_shm, "shmrpc",
	      "libshmrpc defaults: uring wakes, adaptive spin (<= 20 us) then sleep", setup_default,
	      0);
SHM_TRANSPORT(bench_tr_shm_futex, "shmrpc-futex",
	      "libshmrpc, futex backend (futex_waitv), adaptive spin then sleep", setup_futex, 0);
SHM_TRANSPORT(bench_tr_shm_spin, "shmrpc-spin",
	      "libshmrpc, receiver stays awake spinning (spin_us = 1 s)", setup_spin,
	      BENCH_NOT_PACED | BENCH_NOT_STREAM);
SHM_TRANSPORT(bench_tr_shm_sleep, "shmrpc-sleep",
	      "libshmrpc, uring backend, receiver sleeps at once (SHMRPC_SPIN_NEVER)", setup_sleep,
	      BENCH_NOT_PACED | BENCH_NOT_STREAM);
SHM_TRANSPORT(bench_tr_shm_sleep_futex, "shmrpc-sleep-futex",
	      "libshmrpc, futex backend, receiver sleeps at once (SHMRPC_SPIN_NEVER)",
	      setup_sleep_futex, BENCH_NOT_PACED | BENCH_NOT_STREAM);
SHM_TRANSPORT(bench_tr_shm_zc, "shmrpc-zc",
	      "libshmrpc defaults, zero-copy: reserve/commit, peek/release, data used in place",
	      setup_zc, BENCH_NOT_PACED);
SHM_TRANSPORT_V(bench_tr_shm_batch, "shmrpc-batch",
		"libshmrpc defaults, batches of 32: shmrpc_peer_sendv / shmrpc_recv_batch",
		setup_batch, BENCH_NOT_PINGPONG | BENCH_NOT_PACED | BENCH_NOT_SYSCALLS, shm_sendv,
		shm_recvv);
SHM_TRANSPORT_V(bench_tr_shm_batch_futex, "shmrpc-batch-futex",
		"libshmrpc, futex backend, batches of 32: shmrpc_peer_sendv / shmrpc_recv_batch",
		setup_batch_futex, BENCH_NOT_PINGPONG | BENCH_NOT_PACED | BENCH_NOT_SYSCALLS,
		shm_sendv, shm_recvv);
