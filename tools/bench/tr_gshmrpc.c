// SPDX-License-Identifier: MIT
/*
 * libshmrpc for the group scenarios. Every member opens one node in a
 * fresh domain: producers "p<i>", consumers "c<j>" (fan-in's consumer is
 * "c0"). Connections are made before the run starts: in fan-in each
 * producer sends one hello (consumed by the consumer's attach); in
 * broadcast the producer waits for every consumer and calls shmrpc_warmup.
 *
 *   shmrpc        uring backend; broadcast = shmrpc_broadcast: all wakes of
 *                 one call in one io_uring_enter (batched)
 *   shmrpc-futex  futex backend; shmrpc_broadcast wakes with one futex(2)
 *                 per sleeping consumer
 *   shmrpc-loop   (broadcast) uring backend, one shmrpc_send per consumer:
 *                 each wake is its own futex(2) (one system call each)
 *   shmrpc-defer  (broadcast) uring backend, shmrpc_send_flags(DEFER) to
 *                 each consumer, then shmrpc_flush: one io_uring_enter
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "shmrpc.h"

#define HELLO 0x6f6c6c6568ull /* "hello" */

enum how { H_BCAST, H_LOOP, H_DEFER };

struct gshm {
	const char *backend;
	enum how how;
	char domain[64];
	struct shmrpc_node *node;
	char names[BENCH_GROUP_MAX][16]; /* consumers' names */
};

static int gshm_setup_v(struct bench_gchan *g, const char *backend, enum how how)
{
	struct gshm *s;

	if (shmrpc_backend_available(backend) != 1) {
		snprintf(g->why, sizeof(g->why), "backend %s not available here", backend);
		return -EOPNOTSUPP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->backend = backend;
	s->how = how;
	bench_domain(s->domain, sizeof(s->domain), "group");
	for (int j = 0; j < g->ncons; j++)
		snprintf(s->names[j], sizeof(s->names[j]), "c%d", j);
	g->priv = s;
	return 0;
}

static int setup_uring(struct bench_gchan *g)
{
	return gshm_setup_v(g, "uring", H_BCAST);
}

static int setup_futex(struct bench_gchan *g)
{
	return gshm_setup_v(g, "futex", H_BCAST);
}

static int setup_loop(struct bench_gchan *g)
{
	return gshm_setup_v(g, "uring", H_LOOP);
}

static int setup_defer(struct bench_gchan *g)
{
	return gshm_setup_v(g, "uring", H_DEFER);
}

static int consumer_attach(struct bench_gchan *g, struct gshm *s)
{
	uint64_t hello[8];
	int n;

	if (g->topo == BENCH_BCAST)
		return 0;
	for (int i = 0; i < g->nprod; i++) { /* each producer's hello */
		n = shmrpc_recv(s->node, hello, sizeof(hello), NULL, 10000);
		if (n < 0)
			return n;
		if (n != 8 || hello[0] != HELLO)
			return -EBADMSG;
	}
	return 0;
}

static int producer_attach(struct bench_gchan *g, struct gshm *s)
{
	uint64_t hello = HELLO;
	int err = 0;

	if (g->topo == BENCH_FANIN) {
		err = shmrpc_wait_node(s->node, "c0", 10000);
		return err ? err : shmrpc_send(s->node, "c0", &hello, sizeof(hello), 10000);
	}
	for (int j = 0; j < g->ncons && !err; j++)
		err = shmrpc_wait_node(s->node, s->names[j], 10000);
	if (!err)
		err = shmrpc_warmup(s->node);
	return err < 0 ? err : err == g->ncons ? 0 : -ENOTCONN;
}

static int gshm_attach(struct bench_gchan *g, int idx)
{
	struct gshm *s = g->priv;
	struct shmrpc_opts o = {
		.sz = sizeof(o),
		.domain = s->domain,
		.ring_bytes = (uint32_t)g->buf_bytes,
		.backend = s->backend,
	};
	char name[16];
	int err;

	if (idx < g->nprod)
		snprintf(name, sizeof(name), "p%d", idx);
	else
		snprintf(name, sizeof(name), "c%d", idx - g->nprod);
	err = shmrpc_open(name, &o, &s->node);
	if (err)
		return err;
	return idx < g->nprod ? producer_attach(g, s) : consumer_attach(g, s);
}

static int gshm_send(struct bench_gchan *g, const void *buf, size_t len)
{
	struct gshm *s = g->priv;
	int err = 0;

	if (g->topo == BENCH_FANIN) {
		err = shmrpc_send(s->node, "c0", buf, len, -1);
		return err ? err : 1;
	}
	switch (s->how) {
	case H_BCAST:
		return shmrpc_broadcast(s->node, buf, len, -1);
	case H_LOOP:
		for (int j = 0; j < g->ncons && !err; j++)
			err = shmrpc_send(s->node, s->names[j], buf, len, -1);
		return err ? err : g->ncons;
	case H_DEFER:
		for (int j = 0; j < g->ncons && !err; j++)
			err = shmrpc_send_flags(s->node, s->names[j], buf, len, -1,
						SHMRPC_SEND_DEFER);
		if (!err)
			err = shmrpc_flush(s->node);
		return err < 0 ? err : g->ncons;
	}
	return -EINVAL;
}

static int gshm_recv(struct bench_gchan *g, void *buf, size_t cap)
{
	struct gshm *s = g->priv;

	return shmrpc_recv(s->node, buf, cap, NULL, -1);
}

static int gshm_counters(struct bench_gchan *g, struct bench_libctr *out)
{
	struct gshm *s = g->priv;
	struct shmrpc_stats st;
	int err = shmrpc_stats(s->node, &st);

	if (err)
		return err;
	out->sleeps = st.sleeps;
	out->wakes = st.wakes_sent;
	out->skips = st.wakes_skipped;
	out->spins = st.spins;
	out->full = st.send_full;
	return 0;
}

static void gshm_detach(struct bench_gchan *g)
{
	struct gshm *s = g->priv;

	shmrpc_close(s->node);
	s->node = NULL;
}

static void gshm_teardown(struct bench_gchan *g)
{
	struct gshm *s = g->priv;
	int left;

	if (!s)
		return;
	left = bench_shm_cleanup(s->domain);
	if (left > 0)
		fprintf(stderr, "shmrpc-bench: domain %s left %d file(s) in /dev/shm (removed)\n",
			s->domain, left);
	free(s);
	g->priv = NULL;
}

#define GSHM(var, nm, desc, topo, setupfn) \
	const struct bench_gtr var = {     \
		.name = nm,                \
		.what = desc,              \
		.topos = topo,             \
		.setup = setupfn,          \
		.attach = gshm_attach,     \
		.send = gshm_send,         \
		.recv = gshm_recv,         \
		.detach = gshm_detach,     \
		.teardown = gshm_teardown, \
		.counters = gshm_counters, \
	}

GSHM(bench_g_shm, "shmrpc", "libshmrpc, uring; broadcast: shmrpc_broadcast, wakes batched",
     BENCH_FANIN | BENCH_BCAST, setup_uring);
GSHM(bench_g_shm_futex, "shmrpc-futex",
     "libshmrpc, futex backend; broadcast: shmrpc_broadcast, one futex(2) per wake",
     BENCH_FANIN | BENCH_BCAST, setup_futex);
GSHM(bench_g_shm_loop, "shmrpc-loop", "libshmrpc, uring; one shmrpc_send per consumer", BENCH_BCAST,
     setup_loop);
GSHM(bench_g_shm_defer, "shmrpc-defer",
     "libshmrpc, uring; shmrpc_send_flags(DEFER) per consumer + shmrpc_flush", BENCH_BCAST,
     setup_defer);
