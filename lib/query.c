// SPDX-License-Identifier: MIT
/*
 * Registry queries: the list of live nodes, whether a node is local (and
 * where a proxy's node lives),
 * waiting for a node to appear, the largest message to a node, warming up
 * connections. Lookups by name (join.c) and the list reclaim a node whose
 * process is gone on the spot (lazy reclaim), so queries never report the
 * dead as live.
 */
#include <errno.h>
#include <string.h>

#include "clock.h"
#include "conntab.h"
#include "error.h"
#include "futex.h"
#include "join.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "nodeseg.h"
#include "reclaim.h"
#include "registry.h"
#include "ring.h"

static int nodes_do(struct shmrpc_node *n, char (*names)[SHMRPC_NAME_MAX + 1], size_t cap)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__slot_view v;
	uint32_t i, hi;
	int count = 0, tries, rc = 0;

	if (!n || (!names && cap))
		return -EINVAL;
	hi = shmrpc__reg_hi(n->reg);
	for (i = 0; i < hi; i++) {
		for (tries = 0; tries < 100; tries++)
			if ((rc = shmrpc__reg_read(n->reg, i, &v)) != -EAGAIN)
				break;
		/* -EPROTO: the slot's name is garbage (v.name is only its
		 * truncated copy); -EAGAIN: never read consistently. */
		if (rc || v.state != SHMRPC__SLOT_LIVE)
			continue;
		if (i != n->slot && shmrpc__node_alive(n->reg, i, v.gen) == 0) {
			shmrpc__reclaim_locked(n->reg, i, v.gen);
			continue;
		}
		if ((size_t)count < cap)
			memcpy(names[count], v.name, sizeof(names[count]));
		count++;
	}
	return count;
}

int shmrpc_nodes(struct shmrpc_node *n, char (*names)[SHMRPC_NAME_MAX + 1], size_t cap)
{
	return SHMRPC__RET(nodes_do(n, names, cap));
}

static int is_local_do(struct shmrpc_node *n, const char *name)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__slot_view v;
	uint32_t slot;
	int err;

	if (!n)
		return -EINVAL;
	err = shmrpc__name_check(name);
	if (err)
		return err;
	/* a proxy (opts.proxy_host) stands for a node of another host */
	return shmrpc__lookup(n->reg, n->slot, name, &slot, &v) == 0 &&
	       !(v.flags & SHMRPC__SLOT_PROXY);
}

int shmrpc_is_local(struct shmrpc_node *n, const char *name)
{
	return SHMRPC__RET(is_local_do(n, name));
}

/* The host in proxy (slot, gen)'s segment, checked: 0, or -errno. */
static int proxy_host(struct shmrpc_node *n, uint32_t slot, uint32_t gen, char *out)
{
	struct shmrpc__node_hdr *h;
	uint64_t size;
	char field[64];
	int err = shmrpc__node_map(n->reg, slot, gen, &h, &size, NULL);

	if (err)
		return err;
	/* Any peer can write the segment: a copy, then the name rules. */
	memcpy(field, h->host, sizeof(field));
	shmrpc__seg_unmap(h, size);
	if (shmrpc__name_check_field(field, sizeof(field)) || !field[0])
		return shmrpc__err(-EPROTO, "node '%s': its segment names no valid host", n->name);
	memcpy(out, field, sizeof(field));
	return 0;
}

static int node_host_do(struct shmrpc_node *n, const char *name, char *host, size_t cap)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__slot_view v;
	char far[64];
	uint32_t slot;
	int err;

	if (!n || (!host && cap))
		return -EINVAL;
	err = shmrpc__name_check(name);
	if (err)
		return err;
	if (shmrpc__lookup(n->reg, n->slot, name, &slot, &v))
		return shmrpc__err(-ENOENT, "no live node '%s' in domain '%s'", name,
				   n->reg->domain);
	if (!(v.flags & SHMRPC__SLOT_PROXY)) {
		if (!cap)
			return shmrpc__err(-ERANGE, "node '%s' is local: 0 bytes do not hold \"\"",
					   name);
		host[0] = '\0';
		return 0;
	}
	err = proxy_host(n, slot, v.gen, far);
	if (err)
		return err;
	if (strlen(far) >= cap)
		return shmrpc__err(-ERANGE, "node '%s' lives on '%s': %zu bytes do not hold it",
				   name, far, cap);
	memcpy(host, far, strlen(far) + 1);
	return 1;
}

int shmrpc_node_host(struct shmrpc_node *n, const char *name, char *host, size_t cap)
{
	return SHMRPC__RET(node_host_do(n, name, host, cap));
}

static int wait_node(struct shmrpc_node *n, const char *name, int timeout_ms)
{
	struct shmrpc__slot_view v;
	int64_t deadline;
	uint32_t slot, epoch;
	int err;

	if (!n || timeout_ms < -1)
		return -EINVAL;
	err = shmrpc__name_check(name);
	if (err)
		return err;
	deadline = shmrpc__deadline(timeout_ms);
	for (;;) {
		/* Acquire: pairs with the release bump in reg_bump; a join
		 * that bumped past this value is visible to the lookup. */
		epoch = atomic_load_explicit(&n->reg->hdr->epoch, memory_order_acquire);
		if (!shmrpc__lookup(n->reg, n->slot, name, &slot, &v))
			return 0;
		if (shmrpc__now_ns() >= deadline)
			return shmrpc__err(shmrpc__timeout_err(timeout_ms),
					   "node '%s': not in domain '%s' within %d ms", name,
					   n->reg->domain, timeout_ms);
		/* A join after the lookup changed the epoch: no wait. */
		shmrpc__futex_wait(&n->reg->hdr->epoch, epoch,
				   shmrpc__sleep_until(deadline, n->safety_ns));
	}
}

int shmrpc_wait_node(struct shmrpc_node *n, const char *name, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;

	return SHMRPC__RET(wait_node(n, name, timeout_ms));
}

int shmrpc_warmup(struct shmrpc_node *n)
{
	SHMRPC__KEEP_ERRNO;

	if (!n)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	return SHMRPC__RET(shmrpc__conn_warm(n));
}

static int max_size_do(struct shmrpc_node *n, const char *to)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__slot_view v;
	uint32_t slot;
	int err;

	if (!n)
		return -EINVAL;
	if (!to)
		return (int)shmrpc__ring_max_msg(n->ring_bytes);
	err = shmrpc__name_check(to);
	if (!err)
		err = shmrpc__lookup(n->reg, n->slot, to, &slot, &v);
	if (err)
		return err;
	if (!shmrpc__ring_size_ok(v.ring_bytes))
		return -EPROTO;
	return (int)shmrpc__ring_max_msg(v.ring_bytes);
}

int shmrpc_max_size(struct shmrpc_node *n, const char *to)
{
	return SHMRPC__RET(max_size_do(n, to));
}
