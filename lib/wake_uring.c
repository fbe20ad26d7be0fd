// SPDX-License-Identifier: MIT
/*
 * The "uring" wake backend: every inbound ring's data_seq word, the node's
 * bell (and, for a node with events, the registry's epoch) have one armed
 * IORING_OP_FUTEX_WAIT in the node's own io_uring; a completion names its
 * word (user_data), and one io_uring_enter both re-arms the waits that fired
 * and sleeps. Waits that did not fire stay armed across sleeps: the kernel
 * compares the word only when a wait is armed, and every change of a word
 * comes with a wake (lib/wake.c). Several wakes (broadcast, shmrpc_flush) go
 * in one io_uring_enter (wake_uring_tx.c); a single wake is one futex(2).
 *
 * Waits belong to threads. A wait's completion runs as task_work of the
 * thread that submitted it (docs/uring-notes.md, tests/test_uring_compat.c):
 * while that thread lives, the completion needs it to run; once it has
 * exited, kernels differ. Some builds cancel its waits as it exits
 * (-ECANCELED); others, this machine's 6.18.44 among them, leave them armed
 * and complete them through the ring's fallback worker (a kworker, a jiffy
 * or two later) when they are woken. So we never leave that to the kernel:
 *
 *   receiving thread T (owner token O; tokens are never reused, unlike tids)
 *   sleep/park: reap CQEs; owner != O ?  adopt: under own_lock, every
 *               wait in flight gets a fresh waiter (the old one is orphaned),
 *               SYNC_CANCEL(ANY) ends the predecessor's waits at once,
 *               owner = O, and T's exit hook is set
 *             arm the words with no wait in flight; submit + sleep (one call)
 *   T exits:    exit hook (pthread key destructor): for every node whose
 *               owner is O, under all_lock then own_lock: SYNC_CANCEL(ANY),
 *               owner = 0. The -ECANCELED completions run as T's task_work
 *               before it is gone, whatever the kernel build
 *   ring_del:   its waiter, if in flight, is orphaned and SYNC_CANCELled by
 *               user_data before the caller unmaps the ring
 *   fini:       off the exit hook's list, SYNC_CANCEL(ANY) (no wait outlives
 *               the words it watches: the bell's segment is unmapped next),
 *               exit the ring, free every waiter
 *
 * The sync cancels go through io_uring_register, not the SQ, so the exit
 * hook may run while another thread receives; own_lock orders it against
 * adopt: when the hook finds owner == O, no other thread has armed a wait
 * since T did (a thread arms only after adopting), so ANY hits only T's
 * waits. If the hook cannot (no key, a failed cancel, no key destructors
 * run), the next receiver's adopt cancels T's waits, armed or cancelled by
 * the kernel already: one completion per wait either way, as below.
 *
 * Each wait's user_data points to a small heap waiter, and every submitted
 * wait ends in exactly one completion (woken, -EAGAIN, -ECANCELED), or with
 * the ring at fini. A waiter in flight is never reused or freed: one taken
 * out of use (ring_del, adopt) is orphaned and freed at that completion, or
 * at fini after the ring is exited (no completion is read after that). A
 * completion just means "not armed any more": the next sleep re-checks the
 * rings and re-arms. Each completion is reaped once (reap); a late one of an
 * orphan only frees it. Cancelled waits also signal shmrpc_fd's registered
 * eventfd: a spurious readiness, which the header allows.
 *
 * The hot path is untouched by all this: a receive that finds a message
 * never enters the backend; only a change of thread pays for the lock and
 * the cancel.
 *
 * No DEFER_TASKRUN: it would make the ring fd unpollable and fire the
 * eventfd before the completion exists. COOP_TASKRUN spares a running owner
 * the interrupt; a sleeping one is still woken (epoll_wait may say EINTR).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wake_uring.h"
#include "backend.h"
#include "clock.h"
#include "error.h"
#include "futex.h"
#include "node_types.h"
#include "uring_compat.h"
#include "wake_uring_tx.h"

#define RX_ENTRIES 256

struct waiter {
	struct shmrpc__inring *r; /* NULL: the bell or the epoch, or orphaned */
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
	_Atomic bool rx_ready; /* rx is set up (lazily but for the first node) */
	struct io_uring rx;    /* waits; used by the receiving thread */
	/* token of the thread whose waits are in flight, 0 if none: written
	 * under own_lock (adopt, the exit hook), read without it only by the
	 * receiving thread */
	_Atomic uint64_t owner;
	pthread_mutex_t own_lock; /* adopt vs the exit hook; rx_setup */
	struct waiter *node_w[2]; /* the bell's waiter; the epoch's (events) */
	/* waits in flight that nobody owns: freed at completion, or at fini */
	struct waiter *orphans;
	struct shmrpc__uring_tx tx; /* batched wakes (wake_uring_tx.c) */
	/* the exit hook's list of every node of the process, under all_lock */
	struct uring_be *all_prev, *all_next;
	bool listed;
};

/* ------------------------------------------------------------- threads */

static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uring_be *all_head;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static _Atomic bool exit_key_ok;	/* set under exit_once, cleared at unload */
static _Atomic bool exit_cancel = true; /* tests turn the hook off */
static _Thread_local bool exit_hooked;

/* This thread's owner token: unique for the process's life (a tid is
 * reused once its thread is gone, and would hide a change of thread). */
static uint64_t self_token(void)
{
	static _Atomic uint64_t next;
	static _Thread_local uint64_t token;

	/* Relaxed: only uniqueness matters. */
	if (!token)
		token = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
	return token;
}

/* End every wait of @ub matching @ud (or all of them, ANY) now: when this
 * returns, none of them is queued on its word any more; their completions
 * (-ECANCELED) run as task_work of the threads that armed them, or in the
 * kernel's fallback worker if those have exited. Needs no SQE, so any
 * thread may call it. A futex wait is cancelled at once or not at all:
 * never wait (timeout 0) for one that is "running". */
static int cancel_sync(struct uring_be *ub, uint64_t ud, uint32_t flags)
{
	struct io_uring_sync_cancel_reg reg;

	memset(&reg, 0, sizeof(reg));
	reg.addr = ud;
	reg.fd = -1;
	reg.flags = flags;
	return io_uring_register_sync_cancel(&ub->rx, &reg);
}

/* Pthread key destructor: this thread is exiting; cancel the waits it
 * owns, so that none outlives it (see the top of the file). */
static void exit_hook(void *unused)
{
	uint64_t me = self_token();
	struct uring_be *ub;

	(void)unused;
	if (!atomic_load_explicit(&exit_cancel, memory_order_relaxed))
		return;
	pthread_mutex_lock(&all_lock);
	for (ub = all_head; ub; ub = ub->all_next) {
		pthread_mutex_lock(&ub->own_lock);
		/* Relaxed: under own_lock, which adopt holds to write it. */
		if (atomic_load_explicit(&ub->owner, memory_order_relaxed) == me) {
			cancel_sync(ub, 0, IORING_ASYNC_CANCEL_ANY);
			atomic_store_explicit(&ub->owner, 0, memory_order_relaxed);
		}
		pthread_mutex_unlock(&ub->own_lock);
	}
	pthread_mutex_unlock(&all_lock);
}

static void exit_setup(void)
{
	int err = pthread_key_create(&exit_key, exit_hook);

	/* Relaxed: pthread_once orders it for every caller of uring_init. */
	atomic_store_explicit(&exit_key_ok, !err, memory_order_relaxed);
	/* Still correct without: the next receiver's adopt ends the waits. */
	if (err)
		shmrpc__log(SHMRPC_LOG_INFO,
			    "uring backend: no thread-exit hook (pthread_key_create: %s)",
			    strerror(err));
}

/* A library unloaded by dlclose must not leave its destructor on threads
 * that outlive it (it also runs at exit, when it no longer matters). */
__attribute__((destructor)) static void exit_unload(void)
{
	/* Relaxed: a thread still adopting then merely misses the hook. */
	if (atomic_exchange_explicit(&exit_key_ok, false, memory_order_relaxed))
		pthread_key_delete(exit_key);
}

void shmrpc__uring_exit_cancel(bool on)
{
	atomic_store_explicit(&exit_cancel, on, memory_order_relaxed);
}

static void all_add(struct uring_be *ub)
{
	pthread_mutex_lock(&all_lock);
	ub->all_next = all_head;
	if (all_head)
		all_head->all_prev = ub;
	all_head = ub;
	ub->listed = true;
	pthread_mutex_unlock(&all_lock);
}

/* Once this returns, no exit hook looks at @ub any more. */
static void all_del(struct uring_be *ub)
{
	pthread_mutex_lock(&all_lock);
	if (ub->all_prev)
		ub->all_prev->all_next = ub->all_next;
	else
		all_head = ub->all_next;
	if (ub->all_next)
		ub->all_next->all_prev = ub->all_prev;
	ub->listed = false;
	pthread_mutex_unlock(&all_lock);
}

/* Set up the receiving ring; probe on it, as it is the ring we keep (a
 * throwaway ring's teardown would send this thread a late task_work
 * interrupt: EINTR in its epoll_wait). */
static int rx_init(struct io_uring *rx)
{
	int err = io_uring_queue_init(RX_ENTRIES, rx,
				      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL);

	if (err) /* missing, disabled (EPERM), filtered by seccomp (EPERM/ENOSYS) */
		return err == -ENOMEM || err == -EMFILE || err == -ENFILE ? err : -EOPNOTSUPP;
	/* No memory for the probe is no answer: -ENOMEM, not "unsupported". */
	err = shmrpc__uring_ring_futex(rx);
	if (err <= 0) {
		io_uring_queue_exit(rx);
		return err < 0 ? err : -EOPNOTSUPP;
	}
	return 0;
}

/* The receiving thread (sleep, park) and shmrpc_fd's caller may both get
 * here first: own_lock makes one of them set the ring up. */
static int rx_setup(struct uring_be *ub)
{
	int err = 0;

	/* Acquire: pairs with the release below; the ring is seen whole. */
	if (atomic_load_explicit(&ub->rx_ready, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&ub->own_lock);
	if (!atomic_load_explicit(&ub->rx_ready, memory_order_relaxed)) {
		err = rx_init(&ub->rx);
		/* Release: pairs with the acquire above. */
		if (!err)
			atomic_store_explicit(&ub->rx_ready, true, memory_order_release);
	}
	pthread_mutex_unlock(&ub->own_lock);
	return err;
}

static void ub_free(struct uring_be *ub)
{
	pthread_mutex_destroy(&ub->own_lock);
	free(ub->node_w[0]);
	free(ub->node_w[1]);
	free(ub);
}

static int uring_init(struct shmrpc_node *n)
{
	int works = atomic_load_explicit(&uring_works, memory_order_relaxed);
	struct uring_be *ub;
	int err;

	if (works < 0)
		return -EOPNOTSUPP;
	pthread_once(&exit_once, exit_setup);
	ub = calloc(1, sizeof(*ub));
	if (!ub)
		return -ENOMEM;
	pthread_mutex_init(&ub->own_lock, NULL);
	ub->node_w[0] = calloc(1, sizeof(struct waiter));
	ub->node_w[1] = calloc(1, sizeof(struct waiter));
	err = ub->node_w[0] && ub->node_w[1] ? 0 : -ENOMEM;
	if (!err && !works) {
		err = rx_setup(ub);
		/* Relaxed: a hint; a racing first node finds out the same. */
		if (err == 0 || err == -EOPNOTSUPP)
			atomic_store_explicit(&uring_works, err ? -1 : 1, memory_order_relaxed);
	}
	if (err) {
		ub_free(ub);
		return err;
	}
	shmrpc__uring_tx_init(&ub->tx);
	all_add(ub);
	n->be_priv = ub;
	n->ring_words = UINT32_MAX; /* every ring has its own wait: no bell mode */
	return 0;
}

/* In a forked child (one thread): the parent's nodes are unusable here and
 * their rings are the parent's; the exit hook forgets them (uring_fini
 * leaves them off the list and cancels nothing in them). */
void shmrpc__uring_fork_child(void)
{
	atomic_store_explicit(&uring_works, 0, memory_order_relaxed);
	pthread_mutex_init(&all_lock, NULL);
	all_head = NULL;
}

static void orphans_free(struct uring_be *ub)
{
	while (ub->orphans) {
		struct waiter *w = ub->orphans;

		ub->orphans = w->next;
		free(w);
	}
}

static void uring_fini(struct shmrpc_node *n)
{
	struct uring_be *ub = n->be_priv;

	if (!ub)
		return;
	if (ub->listed && !n->forked)
		all_del(ub);
	/* Acquire: pairs with rx_setup's release store; the ring is whole. */
	if (atomic_load_explicit(&ub->rx_ready, memory_order_acquire)) {
		/* No wait may outlive the words it watches (node_free unmaps
		 * the bell next), nor its thread: end them all now, rather
		 * than when the kernel gets round to tearing the ring down. A
		 * forked child's ring is its parent's: hands off. */
		if (!n->forked)
			cancel_sync(ub, 0, IORING_ASYNC_CANCEL_ANY);
		/* No completion is read after this: every waiter can go. */
		io_uring_queue_exit(&ub->rx);
	}
	orphans_free(ub);
	shmrpc__uring_tx_fini(&ub->tx);
	ub_free(ub);
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
	/* Now, before the caller unmaps the ring: no wait stays on its word. */
	cancel_sync(ub, (uint64_t)(uintptr_t)w, 0);
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
		if (!w) /* not a wait of ours (we submit nothing else) */
			continue;
		w->inflight = false; /* fired, -EAGAIN, or -ECANCELED: re-arm */
		if (w->orphan)
			orphan_free(ub, w);
	}
	io_uring_cq_advance(&ub->rx, seen);
}

/* @w itself if no wait of it is in flight, else a fresh waiter for the same
 * word (@w is orphaned: freed at its completion); NULL: no memory. */
static struct waiter *renew(struct uring_be *ub, struct waiter *w)
{
	struct waiter *fresh;

	if (!w->inflight)
		return w;
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return NULL;
	fresh->r = w->r;
	orphan(ub, w);
	return fresh;
}

/*
 * This thread receives now, and another armed the waits in flight: they
 * would complete as that thread's task_work (late, if it is busy or blocked
 * elsewhere), or, if it has exited, be cancelled or not depending on the
 * kernel. End them all and arm afresh, whichever it was.
 */
static int adopt(struct shmrpc_node *n, struct uring_be *ub, uint64_t me)
{
	struct waiter *w;
	uint32_t i;
	int err = 0;

	pthread_mutex_lock(&ub->own_lock);
	for (i = 0; !err && i < n->in.n; i++) {
		w = renew(ub, n->in.v[i]->be);
		if (w)
			n->in.v[i]->be = w;
		else
			err = -ENOMEM;
	}
	for (i = 0; !err && i < 2; i++) {
		w = renew(ub, ub->node_w[i]);
		if (w)
			ub->node_w[i] = w;
		else
			err = -ENOMEM;
	}
	/* Every wait of the ring is a predecessor's or an orphan's (this
	 * thread arms only once it owns the ring); after a failure too, as the
	 * waits orphaned so far must end. Should the cancel fail, they fire
	 * with the fresh ones or end at fini: one completion each, anyway. */
	cancel_sync(ub, 0, IORING_ASYNC_CANCEL_ANY);
	/* Relaxed: under own_lock, which the exit hook holds to read it. */
	if (!err)
		atomic_store_explicit(&ub->owner, me, memory_order_relaxed);
	pthread_mutex_unlock(&ub->own_lock);
	/* Any non-NULL value makes the destructor run at this thread's exit. */
	if (!err && !exit_hooked && atomic_load_explicit(&exit_key_ok, memory_order_relaxed))
		exit_hooked = !pthread_setspecific(exit_key, &exit_key);
	return err;
}

static int arm(struct uring_be *ub, struct waiter *w, _Atomic uint32_t *word, uint32_t val)
{
	struct io_uring_sqe *sqe;

	if (w->inflight)
		return 0;
	sqe = shmrpc__uring_get_sqe(&ub->rx);
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
	/* Relaxed: only this thread stores its own token; another thread
	 * changes owner only while it receives (rx_busy's acquire/release
	 * orders that before our look) or, being the owner, as it exits. */
	if (atomic_load_explicit(&ub->owner, memory_order_relaxed) != self_token())
		err = adopt(n, ub, self_token());
	for (i = 0; !err && i < n->in.n; i++) {
		struct shmrpc__inring *r = n->in.v[i];

		err = arm(ub, r->be, &r->q.hdr->data_seq, r->armed);
	}
	if (!err)
		err = arm(ub, ub->node_w[0], &n->seg->bell, n->bell_armed);
	if (!err && n->ev_word)
		err = arm(ub, ub->node_w[1], n->ev_word, n->ev_armed);
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

static void uring_wake(struct shmrpc_node *n, _Atomic uint32_t *const *words, unsigned nr)
{
	struct uring_be *ub = n->be_priv;

	if (nr == 1) { /* one futex(2) costs less than a ring submission */
		shmrpc__futex_wake(words[0]);
		return;
	}
	shmrpc__uring_tx_wake(&ub->tx, words, nr);
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
