/* SPDX-License-Identifier: MIT */
/*
 * The wake backends' interface, and choosing one (backend.c).
 */
#ifndef SHMRPC_BACKEND_H
#define SHMRPC_BACKEND_H

#include <stdatomic.h>
#include <stdint.h>

#include "layout.h" /* enum shmrpc__backend_id */

struct shmrpc_node;
struct shmrpc__inring;

/*
 * A wake backend (wake_futex.c, wake_uring.c). The receiving side keeps its
 * inbound rings in the backend's wait set; the common code (rx.c) arms
 * every word before calling sleep() and disarms them after. A backend is
 * how the layers below the connections reach the node's wakes: through
 * these pointers, never by name.
 */
struct shmrpc__backend {
	const char *name;
	enum shmrpc__backend_id id;
	int (*init)(struct shmrpc_node *n);
	void (*fini)(struct shmrpc_node *n);
	/* Receiving thread: a ring joins or leaves the wait set. Rings the
	 * backend cannot watch (beyond n->ring_words) sleep in bell mode. */
	int (*ring_add)(struct shmrpc_node *n, struct shmrpc__inring *r);
	void (*ring_del)(struct shmrpc_node *n, struct shmrpc__inring *r);
	/* Receiving thread: sleep until a wake hits an armed word or the
	 * deadline (CLOCK_MONOTONIC ns) passes. 0, -ETIMEDOUT, -EINTR. */
	int (*sleep)(struct shmrpc_node *n, int64_t deadline);
	/* Receiving thread, shmrpc_fd mode: the caller armed every word and
	 * found nothing to do; make the next wake make the eventfd readable,
	 * without sleeping. */
	int (*park)(struct shmrpc_node *n);
	/* Any thread: FUTEX_WAKE each word, in as few syscalls as it can. */
	void (*wake)(struct shmrpc_node *n, _Atomic uint32_t *const *words, unsigned nr);
	/* Once, at the first shmrpc_fd: signal @evfd on wakes while parked. */
	int (*fd_enable)(struct shmrpc_node *n, int evfd);
};

/* Set up the backend asked for (NULL: uring where it works, else futex):
 * 0, -EOPNOTSUPP (that one cannot work here), -errno. */
int shmrpc__backend_init(struct shmrpc_node *n, const char *want);

#endif /* SHMRPC_BACKEND_H */
