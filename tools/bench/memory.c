// SPDX-License-Identifier: MIT
/*
 * Memory: the shared memory a domain really holds, i.e. the allocated
 * blocks of its files in /dev/shm (st_blocks: the library reserves every
 * page of a file when it creates it, so a ring costs all of its pages from
 * its first message on), for 2, 16 and 256 nodes with default options
 * (256 KiB rings), in two topologies:
 *
 *   ring   node i sends to node i + 1 (mod N): N rings
 *   star   node 0 is a hub: every other node sends to it and it answers
 *          each one: 2 (N - 1) rings
 *
 * Measured twice per case: after one 64-byte message over every ring
 * (every ring exists, every page of it reserved), and after every ring
 * carried more than its size in 4 KiB messages (every page touched: the
 * same, unless something was not reserved).
 * The nodes live in one process (a child of the driver); the domain is
 * fresh, and after they all closed it must have left nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "shmrpc.h"

#define BIG 4096
#define BURST 32
#define ROUNDS 3 /* 3 x 32 x 4 KiB > 256 KiB: every ring wraps */

static const unsigned mem_nodes[] = { 2, 16, 256 };
static const char *const topos[] = { "ring", "star" };

struct mem {
	unsigned nodes;
	int star;
	char domain[64];
};

/* The k-th ring of the topology: from -> to; how many rings. */
static unsigned edge(const struct mem *m, unsigned k, unsigned *from, unsigned *to)
{
	unsigned n = m->nodes;

	if (!m->star) {
		*from = k;
		*to = (k + 1) % n;
		return n;
	}
	/* star: k < n - 1: leaf k + 1 -> hub; else hub -> leaf k - n + 2 */
	*from = k < n - 1 ? k + 1 : 0;
	*to = k < n - 1 ? 0 : k - (n - 1) + 1;
	return 2 * (n - 1);
}

/* Every ring carries @count messages of @len bytes, received at once in
 * bursts of BURST. */
static int traffic(struct shmrpc_node **nd, const struct mem *m, size_t len, unsigned count)
{
	static unsigned char buf[BIG];
	char to[16];
	unsigned from, dst, nr = edge(m, 0, &from, &dst);
	int err = 0;

	for (unsigned k = 0; k < nr && !err; k++) {
		edge(m, k, &from, &dst);
		snprintf(to, sizeof(to), "n%u", dst);
		for (unsigned done = 0; done < count && !err; done += BURST) {
			unsigned b = count - done < BURST ? count - done : BURST;

			for (unsigned i = 0; i < b && !err; i++)
				err = shmrpc_send(nd[from], to, buf, len, 1000);
			for (unsigned i = 0; i < b && !err; i++) {
				int r = shmrpc_recv(nd[dst], buf, sizeof(buf), NULL, 1000);

				err = r < 0 ? r : 0;
			}
		}
	}
	return err;
}

static void store(struct bench_gctrl *c, int k, const struct bench_shm_usage *u)
{
	c->val[0][k] = (int64_t)u->blocks_bytes;
	c->val[1][k] = (int64_t)u->apparent_bytes;
	c->val[2][k] = u->rings;
	c->val[3][k] = u->files;
	c->val[4][k] = (int64_t)u->ring_blocks;
	c->val[5][k] = (int64_t)u->node_blocks;
	c->val[6][k] = (int64_t)u->reg_blocks;
}

static int mem_member(struct bench_group *g, int idx)
{
	struct mem *m = g->arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = m->domain };
	struct shmrpc_node **nd = calloc(m->nodes, sizeof(*nd));
	struct bench_shm_usage u;
	struct rlimit rl;
	char name[16];
	int err = nd ? 0 : -ENOMEM;

	(void)idx;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (unsigned i = 0; i < m->nodes && !err; i++) {
		snprintf(name, sizeof(name), "n%u", i);
		err = shmrpc_open(name, &o, &nd[i]);
	}
	if (!err && !(err = bench_shm_usage(m->domain, &u)))
		store(g->c, 0, &u); /* nodes only, no rings */
	if (!err)
		err = traffic(nd, m, 64, 1);
	if (!err && !(err = bench_shm_usage(m->domain, &u)))
		store(g->c, 1, &u);
	if (!err)
		err = traffic(nd, m, BIG, ROUNDS * BURST);
	if (!err && !(err = bench_shm_usage(m->domain, &u)))
		store(g->c, 2, &u);
	for (unsigned i = 0; nd && i < m->nodes; i++)
		shmrpc_close(nd[i]);
	free(nd);
	if (!err && !(err = bench_shm_usage(m->domain, &u)))
		g->c->val[7][0] = u.files; /* left after every node closed */
	return err ? bench_gfail(g->c, 0, err, "%u nodes, %s: %s", m->nodes,
				 m->star ? "star" : "ring", strerror(-err)) :
		     0;
}

static double mib(int64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

static void mem_result(struct bench_result *r, const struct bench_gctrl *c)
{
	bench_metric_set(r, "rings", (double)c->val[2][2]);
	bench_metric_set(r, "files", (double)c->val[3][2]);
	bench_metric_set(r, "mib_nodes_only", mib(c->val[0][0]));
	bench_metric_set(r, "mib_one_msg", mib(c->val[0][1]));
	bench_metric_set(r, "mib_full", mib(c->val[0][2]));
	bench_metric_set(r, "mib_full_rings", mib(c->val[4][2]));
	bench_metric_set(r, "mib_full_nodes", mib(c->val[5][2]));
	bench_metric_set(r, "mib_full_registry", mib(c->val[6][2]));
	bench_metric_set(r, "mib_apparent", mib(c->val[1][2]));
	bench_metric_set(r, "files_left", (double)c->val[7][0]);
}

void bench_run_memory(struct bench_results *rs, const struct bench_opts *o, struct bench_cfg *cfg)
{
	for (size_t t = 0; t < 2; t++) {
		for (size_t k = 0; k < sizeof(mem_nodes) / sizeof(mem_nodes[0]); k++) {
			struct mem m = { .nodes = mem_nodes[k], .star = t == 1 };
			struct bench_group g = {
				.n = 1, .fn = mem_member, .arg = &m, .timeout_s = 120
			};
			struct bench_result *r;
			int err, left;

			if (o->quick && m.nodes > 16)
				continue;
			r = bench_result_new(rs, "memory", "shmrpc", 0);
			r->nsides = 0;
			r->nodes = m.nodes;
			r->variant = topos[t];
			bench_domain(m.domain, sizeof(m.domain), "mem");
			g.cpu[0] = cfg->cpu[0];
			g.c = bench_gctrl_new(0);
			err = g.c ? bench_group_run(&g, r->why, sizeof(r->why)) : -ENOMEM;
			if (err)
				r->status = BENCH_FAILED;
			else
				mem_result(r, g.c);
			left = bench_shm_cleanup(m.domain);
			if (left > 0)
				fprintf(stderr, "shmrpc-bench: memory domain left %d file(s)\n",
					left);
			bench_gctrl_free(g.c);
			bench_progress(r);
		}
	}
}
