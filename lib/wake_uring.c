// SPDX-License-Identifier: MIT
/*
 * The "uring" wake backend: every inbound ring's data_seq word and the
 * node's bell have one armed IORING_OP_FUTEX_WAIT in the node's own
 * io_uring; a completion names its word (user_data), and one io_uring_enter
 * both re-arms the waits that fired and sleeps. Waits that did not fire stay
 * armed across sleeps: the kernel compares the word only when a wait is
 * armed, and wakers only wake words whose SLEEP flag is set (lib/wake.c).
 * Senders that wake several words at once (broadcast, shmrpc_flush) submit
 * all FUTEX_WAKEs in one io_uring_enter; a single wake is one futex(2).
 *
 * What the kernel does here (docs/uring-notes.md, tests/test_uring_compat.c):
 *  - a wait belongs to the thread that submitted it: its completion runs as
 *    task_work of that thread, and it is cancelled (-ECANCELED) when that
 *    thread exits. So waits are armed by the receiving thread; when another
 *    thread starts receiving, the old waits are cancelled and armed anew;
 *  - no DEFER_TASKRUN: it would make the ring fd unpollable and fire the
 *    eventfd before the completion exists. COOP_TASKRUN spares a running
 *    owner thread the interrupt; a sleeping one is still woken (and its
 *    epoll_wait may return EINTR, as the header says);
 *  - -EAGAIN (the word moved before arming) and -ECANCELED completions just
 *    mean "not armed any more": the next sleep re-arms.
 *
 * Each wait's user_data points to a small heap waiter. A ring that leaves
 * the set while its wait is in flight orphans its waiter (and cancels the
 * wait); the waiter is freed when its last completion arrives, so a late
 * completion never points into freed memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "uring_compat.h"

#define RX_ENTRIES 256
#define TX_ENTRIES 256

struct waiter {
	struct shmrpc__inring *r; /* NULL: the bell, or orphaned */
	bool inflight;
	bool orphan;		    /* free at its completion */
	struct waiter *prev, *next; /* on the orphan list */
};

/*
 * Does io_uring with the futex operations work in this process? Found out
 * by the process's first node, on the ring it then keeps; later nodes set
 * their rings up when they first sleep, which keeps ~20-50 us (a VM's ring
 * setup) off every other join. Reset in a forked child, which may have
 * tightened its seccomp filter since.
 */
static _Atomic int uring_works; /* 0 unknown, 1 yes, -1 no */

struct uring_be {
	bool rx_ready;	    /* rx is set up (lazily but for the first node) */
	struct io_uring rx; /* waits; used by the receiving thread */
	pid_t owner;	    /* thread whose waits are in flight */
	struct waiter *bell;
	/* waits in flight that nobody owns: freed at completion, or at fini */
	struct waiter *orphans;
	pthread_mutex_t tx_lock;
	struct io_uring tx; /* batched wakes; any sending thread, under tx_lock */
	bool tx_ready;
};

static pid_t self_tid(void)
{
	static _Thread_local pid_t tid;

	if (!tid)
		tid = (pid_t)syscall(SYS_gettid);
	return tid;
}

static bool ring_has_futex(struct io_uring *ring)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	bool ok = p && io_uring_opcode_supported(p, IORING_OP_FUTEX_WAIT) &&
		  io_uring_opcode_supported(p, IORING_OP_FUTEX_WAKE);

	io_uring_free_probe(p);
	return ok;
}

/* Set up the receiving ring; probe on it, as it is the ring we keep (a
 * throwaway ring's teardown would send this thread a late task_work
 * interrupt: EINTR in its epoll_wait). */
static int rx_setup(struct uring_be *ub)
{
	int err;

	if (ub->rx_ready)
		return 0;
	err = io_uring_queue_init(RX_ENTRIES, &ub->rx,
				  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL);
	if (err) /* missing, disabled (EPERM), filtered by seccomp (EPERM/ENOSYS) */
		return err == -ENOMEM || err == -EMFILE || err == -ENFILE ? err : -EOPNOTSUPP;
	if (!ring_has_futex(&ub->rx)) {
		io_uring_queue_exit(&ub->rx);
		return -EOPNOTSUPP;
	}
	ub->rx_ready = true;
	return 0;
}

static int uring_init(struct shmrpc_node *n)
{
	int works = atomic_load_explicit(&uring_works, memory_order_relaxed);
	struct uring_be *ub;
	int err;

	if (works < 0)
		return -EOPNOTSUPP;
	ub = calloc(1, sizeof(*ub));
	if (!ub)
		return -ENOMEM;
	ub->bell = calloc(1, sizeof(*ub->bell));
	err = ub->bell ? 0 : -ENOMEM;
	if (!err && !works) {
		err = rx_setup(ub);
		/* Relaxed: a hint; a racing first node finds out the same. */
		if (err == 0 || err == -EOPNOTSUPP)
			atomic_store_explicit(&uring_works, err ? -1 : 1, memory_order_relaxed);
	}
	if (err) {
		free(ub->bell);
		free(ub);
		return err;
	}
	pthread_mutex_init(&ub->tx_lock, NULL);
	n->be_priv = ub;
	n->ring_words = UINT32_MAX; /* every ring has its own wait: no bell mode */
	return 0;
}

void shmrpc__uring_fork_child(void)
{
	atomic_store_explicit(&uring_works, 0, memory_order_relaxed);
}

static void uring_fini(struct shmrpc_node *n)
{
	struct uring_be *ub = n->be_priv;

	if (!ub)
		return;
	/* Exiting the ring cancels every wait and no completion is read
	 * after it: what is still in flight can go. */
	if (ub->rx_ready)
		io_uring_queue_exit(&ub->rx);
	while (ub->orphans) {
		struct waiter *w = ub->orphans;

		ub->orphans = w->next;
		free(w);
	}
	if (ub->tx_ready)
		io_uring_queue_exit(&ub->tx);
	pthread_mutex_destroy(&ub->tx_lock);
	free(ub->bell);
	free(ub);
	n->be_priv = NULL;
}

static int uring_ring_add(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	struct waiter *w = calloc(1, sizeof(*w));

	(void)n;
	if (!w)
		return -ENOMEM;
	w->r = r;
	r->be = w;
	return 0;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe && io_uring_submit(ring) >= 0)
		sqe = io_uring_get_sqe(ring);
	return sqe;
}

static void orphan(struct uring_be *ub, struct waiter *w)
{
	w->r = NULL;
	w->orphan = true;
	w->prev = NULL;
	w->next = ub->orphans;
	if (w->next)
		w->next->prev = w;
	ub->orphans = w;
}

static void orphan_free(struct uring_be *ub, struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		ub->orphans = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

static void cancel(struct uring_be *ub, struct waiter *w)
{
	struct io_uring_sqe *sqe = get_sqe(&ub->rx);

	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)w, 0);
		io_uring_sqe_set_data64(sqe, 0);
		io_uring_submit(&ub->rx);
	}
}

static void uring_ring_del(struct shmrpc_node *n, struct shmrpc__inring *r)
{
	struct uring_be *ub = n->be_priv;
	struct waiter *w = r->be;

	r->be = NULL;
	if (!w)
		return;
	if (!w->inflight) {
		free(w);
		return;
	}
	orphan(ub, w);
	cancel(ub, w);
}

/* Account for every completion already posted; never blocks. */
static void reap(struct uring_be *ub)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&ub->rx, head, cqe)
	{
		struct waiter *w = io_uring_cqe_get_data(cqe);

		seen++;
		if (!w) /* a cancel request's own completion */
			continue;
		w->inflight = false; /* fired, -EAGAIN, or -ECANCELED: re-arm */
		if (w->orphan)
			orphan_free(ub, w);
	}
	io_uring_cq_advance(&ub->rx, seen);
}

/* Another thread receives now: its predecessor's waits would complete as
 * that thread's task_work, or die with it. Cancel them, arm afresh. */
static int adopt(struct shmrpc_node *n, struct uring_be *ub)
{
	struct io_uring_sqe *sqe;
	struct waiter *w;
	uint32_t i;

	for (i = 0; i < n->in.n; i++) {
		w = n->in.v[i]->be;
		if (!w->inflight)
			continue;
		if (!(n->in.v[i]->be = calloc(1, sizeof(*w)))) {
			n->in.v[i]->be = w;
			return -ENOMEM;
		}
		((struct waiter *)n->in.v[i]->be)->r = n->in.v[i];
		orphan(ub, w);
	}
	if (ub->bell->inflight) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		orphan(ub, ub->bell);
		ub->bell = w;
	}
	sqe = get_sqe(&ub->rx);
	if (sqe) { /* every request of the ring: only waits are in it */
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data64(sqe, 0);
	}
	ub->owner = self_tid();
	return 0;
}

static int arm(struct uring_be *ub, struct waiter *w, _Atomic uint32_t *word, uint32_t val)
{
	struct io_uring_sqe *sqe;

	if (w->inflight)
		return 0;
	sqe = get_sqe(&ub->rx);
	if (!sqe)
		return -EBUSY;
	shmrpc__prep_futex_wait(sqe, word, val, (uint64_t)(uintptr_t)w);
	w->inflight = true;
	return 0;
}

/* Arm every word that has no wait in flight (the caller set SLEEP in them
 * already, shmrpc__wait_arm); the submission is left to the caller. */
static int arm_all(struct shmrpc_node *n, struct uring_be *ub)
{
	uint32_t i;
	int err = 0;

	reap(ub);
	if (ub->owner != self_tid())
		err = adopt(n, ub);
	for (i = 0; !err && i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		err = arm(ub, r->be, &r->q.hdr->data_seq, r->armed);
	}
	if (!err)
		err = arm(ub, ub->bell, &n->seg->bell, n->bell_armed);
	return err;
}

static int uring_sleep(struct shmrpc_node *n, int64_t deadline)
{
	struct uring_be *ub = n->be_priv;
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	int64_t left;
	int rc;

	rc = rx_setup(ub);
	if (!rc)
		rc = arm_all(n, ub);
	if (rc)
		return rc;
	if (deadline != SHMRPC__NEVER) {
		left = deadline - shmrpc__now_ns();
		if (left < 0)
			left = 0;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		tsp = &ts;
	}
	/* One system call: submit the (re-)arms, sleep until a completion. */
	rc = io_uring_submit_and_wait_timeout(&ub->rx, &cqe, 1, tsp, NULL);
	reap(ub);
	if (rc == -ETIME)
		return -ETIMEDOUT;
	return rc < 0 && rc != -EINTR ? rc : 0;
}

static int uring_park(struct shmrpc_node *n)
{
	struct uring_be *ub = n->be_priv;
	int rc = rx_setup(ub);

	if (!rc)
		rc = arm_all(n, ub);

	if (!rc && io_uring_sq_ready(&ub->rx))
		rc = io_uring_submit(&ub->rx);
	return rc < 0 ? rc : 0;
}

static void wake_batch(struct uring_be *ub, _Atomic uint32_t *const *words, unsigned nr)
{
	struct io_uring_sqe *sqe;
	unsigned i;

	for (i = 0; i < nr; i++) {
		sqe = get_sqe(&ub->tx);
		if (!sqe) { /* cannot queue: wake the rest one by one */
			for (; i < nr; i++)
				shmrpc__futex_wake(words[i]);
			break;
		}
		shmrpc__prep_futex_wake(sqe, words[i], INT_MAX, 0);
		/* Only failures post a completion: nothing to reap normally. */
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
	io_uring_submit(&ub->tx);
	if (io_uring_cq_ready(&ub->tx))
		io_uring_cq_advance(&ub->tx, io_uring_cq_ready(&ub->tx));
}

static void uring_wake(struct shmrpc_node *n, _Atomic uint32_t *const *words, unsigned nr)
{
	struct uring_be *ub = n->be_priv;
	unsigned i;

	if (nr == 1) { /* one futex(2) costs less than a ring submission */
		shmrpc__futex_wake(words[0]);
		return;
	}
	pthread_mutex_lock(&ub->tx_lock);
	if (!ub->tx_ready)
		ub->tx_ready = io_uring_queue_init(TX_ENTRIES, &ub->tx, IORING_SETUP_SUBMIT_ALL) ==
			       0;
	if (ub->tx_ready) {
		wake_batch(ub, words, nr);
	} else {
		for (i = 0; i < nr; i++)
			shmrpc__futex_wake(words[i]);
	}
	pthread_mutex_unlock(&ub->tx_lock);
}

static int uring_fd_enable(struct shmrpc_node *n, int evfd)
{
	struct uring_be *ub = n->be_priv;
	int rc = rx_setup(ub);

	if (!rc)
		rc = io_uring_register_eventfd(&ub->rx, evfd);
	return rc;
}

const struct shmrpc__backend shmrpc__backend_uring = {
	.name = "uring",
	.id = SHMRPC__BACKEND_URING,
	.init = uring_init,
	.fini = uring_fini,
	.ring_add = uring_ring_add,
	.ring_del = uring_ring_del,
	.sleep = uring_sleep,
	.park = uring_park,
	.wake = uring_wake,
	.fd_enable = uring_fd_enable,
};
