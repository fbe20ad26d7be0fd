// SPDX-License-Identifier: MIT
/*
 * Receiving calls: shmrpc_recv (a copy), shmrpc_recv_batch (copies, one
 * give-back per ring; shmrpc_recv_batch_marks, with broadcast marks),
 * shmrpc_peek and shmrpc_release (in place), shmrpc_dispatch (a handler per
 * record), shmrpc_fd (an eventfd for the caller's event loop). They check their arguments, take the
 * receiving side (rx.c, shmrpc__rx_enter: one thread at a time, -EBUSY
 * otherwise, -ECHILD in a forked child) and hand over what rx.c finds.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "error.h"
#include "inbound.h"
#include "layout.h"
#include "node_types.h"
#include "rx.h"

static int fd_do(struct shmrpc_node *n)
{
	SHMRPC__KEEP_ERRNO;
	int fd, rc = 0;

	if (!n)
		return -EINVAL;
	if (n->forked)
		return -ECHILD;
	pthread_mutex_lock(&n->ctl_lock);
	if (atomic_load_explicit(&n->evfd, memory_order_relaxed) < 0) {
		fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0)
			rc = -errno;
		else if ((rc = n->be->fd_enable(n, fd)))
			close(fd);
		else /* readable once: whatever waits already is seen */
			eventfd_write(fd, 1);
		if (!rc)
			atomic_store_explicit(&n->evfd, fd, memory_order_relaxed);
	}
	if (!rc)
		rc = atomic_load_explicit(&n->evfd, memory_order_relaxed);
	pthread_mutex_unlock(&n->ctl_lock);
	return rc;
}

int shmrpc_fd(struct shmrpc_node *n)
{
	return SHMRPC__RET(fd_do(n));
}

static int recv_do(struct shmrpc_node *n, void *buf, size_t cap, char *from, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	int rc;

	if (!n || (!buf && cap) || timeout_ms < -1)
		return -EINVAL;
	rc = shmrpc__rx_enter(n); /* -ECHILD in a forked child, -EBUSY */
	if (rc)
		return rc;
	rc = shmrpc__rx_get(n, &r, &data, &len, &t);
	if (rc > 0) {
		if (len > cap) {
			rc = -EMSGSIZE; /* left in place: peek tells the length */
		} else {
			if (len)
				memcpy(buf, data, len);
			if (from)
				memcpy(from, r->from, sizeof(r->from));
			shmrpc__rx_consume(n, r, len);
			rc = (int)len;
		}
	}
	shmrpc__rx_exit(n);
	return rc;
}

int shmrpc_recv(struct shmrpc_node *n, void *buf, size_t cap, char *from, int timeout_ms)
{
	return SHMRPC__RET(recv_do(n, buf, cap, from, timeout_ms));
}

/* The mark of the message just peeked from @r into @m (all 0 for a plain
 * one): true if it is a marked broadcast copy. */
static bool mark_of(const struct shmrpc__inring *r, struct shmrpc_mark *m)
{
	bool marked = r->q.peek_flags == SHMRPC__REC_BCAST;

	m->bcast = marked ? r->q.peek_bcast : 0;
	m->copies = marked ? r->q.peek_copies : 0;
	m->_reserved = 0;
	return marked;
}

/*
 * The first message as shmrpc_recv waits for it, then whatever is waiting
 * already; each ring's space goes back to its sender once, at the end
 * (rx.c: shmrpc__rx_take, shmrpc__rx_flush). With @marks, each message's
 * mark too, and a marked broadcast copy ends the batch.
 */
static int recv_batch_do(struct shmrpc_node *n, struct shmrpc_msg *msgs, struct shmrpc_mark *marks,
			 unsigned nr, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	unsigned i;
	bool last;
	int rc;

	if (!n || !msgs || !nr || timeout_ms < -1)
		return -EINVAL;
	for (i = 0; i < nr; i++)
		if (!msgs[i].buf && msgs[i].cap)
			return -EINVAL;
	rc = shmrpc__rx_enter(n); /* -ECHILD in a forked child, -EBUSY */
	if (rc)
		return rc;
	i = 0;
	rc = shmrpc__rx_get(n, &r, &data, &len, &t);
	while (rc > 0) {
		if (len > msgs[i].cap)
			break; /* left in place; -EMSGSIZE if it is the first */
		if (len)
			memcpy(msgs[i].buf, data, len);
		msgs[i].len = len;
		memcpy(msgs[i].from, r->from, sizeof(r->from));
		last = marks && mark_of(r, &marks[i]);
		shmrpc__rx_take(n, r, len);
		if (++i == nr || i == INT_MAX || last)
			break;
		rc = shmrpc__rx_next(n, &r, &data, &len);
	}
	shmrpc__rx_flush(n);
	shmrpc__rx_exit(n);
	/* Like dispatch: a corrupt ring met after some messages was dropped
	 * already, and surfaces at the next call if it is still corrupt. */
	if (i)
		return (int)i;
	return rc > 0 ? -EMSGSIZE : rc;
}

int shmrpc_recv_batch(struct shmrpc_node *n, struct shmrpc_msg *msgs, unsigned nr, int timeout_ms)
{
	return SHMRPC__RET(recv_batch_do(n, msgs, NULL, nr, timeout_ms));
}

int shmrpc_recv_batch_marks(struct shmrpc_node *n, struct shmrpc_msg *msgs,
			    struct shmrpc_mark *marks, unsigned nr, int timeout_ms)
{
	if (!marks)
		return SHMRPC__RET(shmrpc__err(-EINVAL, "shmrpc_recv_batch_marks: marks is NULL"));
	return SHMRPC__RET(recv_batch_do(n, msgs, marks, nr, timeout_ms));
}

static int peek_do(struct shmrpc_node *n, struct shmrpc_rxbuf *rx, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__tmo t = SHMRPC__TMO(timeout_ms);
	struct shmrpc__inring *r;
	const void *data;
	uint32_t len;
	int rc;

	if (!n || !rx || timeout_ms < -1)
		return -EINVAL;
	rc = shmrpc__rx_enter(n); /* -ECHILD in a forked child, -EBUSY */
	if (rc)
		return rc;
	rc = shmrpc__rx_get(n, &r, &data, &len, &t);
	if (rc > 0) {
		rx->data = data;
		rx->len = len;
		memcpy(rx->from, r->from, sizeof(rx->from));
		rx->_priv[0] = r;
		rx->_priv[1] = (void *)(uintptr_t)r->q.peek_end;
		n->in.peeked = r;
		rc = (int)len;
	}
	shmrpc__rx_exit(n);
	return rc;
}

int shmrpc_peek(struct shmrpc_node *n, struct shmrpc_rxbuf *rx, int timeout_ms)
{
	return SHMRPC__RET(peek_do(n, rx, timeout_ms));
}

static int release_do(struct shmrpc_node *n, struct shmrpc_rxbuf *rx)
{
	SHMRPC__KEEP_ERRNO;
	struct shmrpc__inring *r;
	int rc;

	if (!n || !rx)
		return -EINVAL;
	rc = shmrpc__rx_enter(n); /* -ECHILD in a forked child, -EBUSY */
	if (rc)
		return rc;
	r = rx->_priv[0];
	if (!r || r != n->in.peeked || r->q.peek_end != (uintptr_t)rx->_priv[1]) {
		rc = -EINVAL;
	} else if (r->doomed) {
		/* Found corrupt while the peek was held (that call returned
		 * -EPROTO): the peek ends, and the drop it held back is done. */
		n->in.peeked = NULL;
		shmrpc__in_drop(n, r);
		rx->_priv[0] = NULL;
	} else {
		shmrpc__rx_consume(n, r, (uint32_t)rx->len); /* ends the peek */
		rx->_priv[0] = NULL;
	}
	shmrpc__rx_exit(n);
	return rc;
}

int shmrpc_release(struct shmrpc_node *n, struct shmrpc_rxbuf *rx)
{
	return SHMRPC__RET(release_do(n, rx));
}

static int dispatch_do(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms)
{
	SHMRPC__KEEP_ERRNO;
	int rc;

	if (!n || !fn || timeout_ms < -1)
		return -EINVAL;
	rc = shmrpc__rx_enter(n); /* -ECHILD in a forked child, -EBUSY */
	if (rc)
		return rc;
	rc = shmrpc__dispatch(n, fn, arg, timeout_ms);
	shmrpc__rx_exit(n);
	return rc;
}

int shmrpc_dispatch(struct shmrpc_node *n, shmrpc_handler fn, void *arg, int timeout_ms)
{
	return SHMRPC__RET(dispatch_do(n, fn, arg, timeout_ms));
}
