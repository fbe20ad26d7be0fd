// SPDX-License-Identifier: MIT
/*
 * Receiving threads come and go: a thread that slept in a receiving call
 * (and so armed waits in the kernel) exits, and another thread receives,
 * or closes the node. What becomes of the exited thread's io_uring waits
 * depends on the kernel build (docs/uring-notes.md 3.3): some cancel them
 * as it exits, others (this machine's) leave them armed and complete them
 * later in a kernel worker. lib/wake_uring.c must be right either way: no
 * lost wake, no message twice, no leaked waiter (LeakSanitizer), no
 * completion pointing at freed memory (AddressSanitizer), no wait left on a
 * word of a closed node.
 *
 * Both paths are exercised on this machine:
 *  - hook: the library's own thread-exit hook cancels the waits as the
 *    thread exits, which is what a cancelling kernel does, on every kernel;
 *  - armed: the hook is off (shmrpc__uring_exit_cancel(false)): the waits
 *    stay as the kernel leaves them (here: armed), and the next receiver's
 *    adoption must end them;
 *  - cancelled: the hook is off, and the test cancels the exited thread's
 *    waits itself with IORING_REGISTER_SYNC_CANCEL on the node's io_uring,
 *    as a cancelling kernel would at exit; the -ECANCELED completions then
 *    come from the kernel's fallback worker, before or after the next
 *    receiver adopts the ring (both orders are run). Only the completions'
 *    timing differs from such a kernel's, and the library must take either.
 * With the futex backend the same scenarios run (its waits are system calls
 * that end with their thread) and the uring-only modes are skipped.
 *
 * Senders are nodes of this process on the futex backend, so that the
 * receiver's io_uring is the process's only one. No fork: ThreadSanitizer
 * runs this program too. The safety timeout is an hour (main), so a lost
 * wake is a receive that times out after RECV_MS, not 500 ms of latency.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include <liburing.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h"
#include "names.h"
#include "regfile.h"
#include "seg.h"
#include "wake_uring.h"

#define SENDERS 3
#define WARM_MSGS 6   /* per sender, received by the first thread */
#define MSGS 40	      /* per sender, after the change of thread */
#define GAP_US 700    /* between sends: the receiver sleeps for each */
#define RECV_MS 10000 /* a receive that waits this long lost a wake */
#define ARMED_MS 30   /* the first thread's last, empty, sleep */
#define SETTLE_MS 50  /* for the fallback worker's completions */

enum mode {
	MODE_HOOK,	      /* the library's exit hook cancels */
	MODE_ARMED,	      /* no hook: the waits stay as the kernel leaves them */
	MODE_CANCELLED,	      /* no hook: cancelled after the exit, adopted at once */
	MODE_CANCELLED_SETTLE /* the same, adopted once the completions are in */
};

static const char *const mode_name[] = { "hook", "armed", "cancelled", "cancelled+settled" };

struct payload {
	uint32_t sender, seq;
};

struct rig {
	struct th_dom *d;
	struct shmrpc_node *rx;
	struct shmrpc_node *tx[SENDERS];
	uint32_t sent[SENDERS], got[SENDERS];
	int received, bad;    /* bad: a message out of order, twice or garbled */
	int ep;		      /* fd mode: epoll set holding shmrpc_fd */
	bool uring;	      /* the receiver's backend */
	bool old_rings[1024]; /* io_uring descriptors open before rig_open */
};

static void nap_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Call @fn for every io_uring descriptor of this process. */
static void each_io_uring(void (*fn)(int fd, void *arg), void *arg)
{
	char path[300], link[64];
	struct dirent *e;
	DIR *dir = opendir("/proc/self/fd");
	ssize_t len;

	assert_non_null(dir);
	while ((e = readdir(dir))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (!strcmp(link, "anon_inode:[io_uring]"))
			fn(atoi(e->d_name), arg);
	}
	closedir(dir);
}

static void note_old(int fd, void *arg)
{
	struct rig *g = arg;

	if (fd < (int)sizeof(g->old_rings))
		g->old_rings[fd] = true;
}

struct find {
	const struct rig *g;
	int fd, found;
};

static void note_new(int fd, void *arg)
{
	struct find *f = arg;

	if (fd >= (int)sizeof(f->g->old_rings) || !f->g->old_rings[fd]) {
		f->fd = fd;
		f->found++;
	}
}

/* The receiver's io_uring: the one that appeared since rig_open (its
 * senders have none: futex backend). */
static int rx_io_uring_fd(const struct rig *g)
{
	struct find f = { g, -1, 0 };

	each_io_uring(note_new, &f);
	if (f.found != 1)
		fail_msg("%d new io_uring descriptors, expected the receiver's alone", f.found);
	return f.fd;
}

static void rig_open(struct rig *g, struct th_dom *d)
{
	struct shmrpc_opts o = d->opts;
	char name[16];
	int i;

	memset(g, 0, sizeof(*g));
	g->d = d;
	g->ep = -1;
	each_io_uring(note_old, g);
	o.spin_us = SHMRPC_SPIN_NEVER; /* sleep for every message */
	assert_int_equal(shmrpc_open("rx", &o, &g->rx), 0);
	g->uring = !strcmp(shmrpc_backend(g->rx), "uring");
	o = d->opts;
	o.backend = "futex"; /* the receiver's io_uring stays the only one */
	for (i = 0; i < SENDERS; i++) {
		snprintf(name, sizeof(name), "tx%d", i);
		assert_int_equal(shmrpc_open(name, &o, &g->tx[i]), 0);
	}
}

static void rig_close_senders(struct rig *g)
{
	int i;

	for (i = 0; i < SENDERS; i++)
		shmrpc_close(g->tx[i]);
}

/* Account for one received message. */
static void take(struct rig *g, const void *data, size_t len)
{
	struct payload p;

	if (len != sizeof(p)) {
		g->bad++;
		return;
	}
	memcpy(&p, data, sizeof(p));
	if (p.sender >= SENDERS || p.seq != g->got[p.sender]) {
		g->bad++;
		return;
	}
	g->got[p.sender]++;
	g->received++;
}

/* --------------------------------------------------------------- sending */

struct pump {
	struct rig *g;
	int per_sender;
	int rc;
};

/* Round robin over the senders, a pause after each message. */
static void *pump_run(void *arg)
{
	struct pump *p = arg;
	struct rig *g = p->g;
	int k, i;

	for (k = 0; k < p->per_sender && !p->rc; k++) {
		for (i = 0; i < SENDERS && !p->rc; i++) {
			struct payload m = { (uint32_t)i, g->sent[i] };

			p->rc = shmrpc_send(g->tx[i], "rx", &m, sizeof(m), RECV_MS);
			g->sent[i]++;
			nap_us(GAP_US);
		}
	}
	return NULL;
}

static void pump_start(pthread_t *t, struct pump *p, struct rig *g, int per_sender)
{
	*p = (struct pump){ .g = g, .per_sender = per_sender };
	assert_int_equal(pthread_create(t, NULL, pump_run, p), 0);
}

static void pump_join(pthread_t t, struct pump *p)
{
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p->rc, 0);
}

/* ------------------------------------------------------------- receiving */

/* Receive until @g has @total messages; 0, or the failing call's result
 * (-ETIMEDOUT: a lost wake). */
static int recv_until(struct rig *g, int total)
{
	struct payload p;
	int rc;

	while (g->received < total) {
		rc = shmrpc_recv(g->rx, &p, sizeof(p), NULL, RECV_MS);
		if (rc < 0)
			return rc;
		take(g, &p, (size_t)rc);
	}
	return 0;
}

static void on_msg(struct shmrpc_node *n, const char *from, const void *data, size_t len, void *arg)
{
	(void)n;
	(void)from;
	take(arg, data, len);
}

/* fd mode: an epoll loop until @g has @total messages; each dispatch ends
 * parked, with this thread's waits armed. */
static int loop_until(struct rig *g, int total)
{
	struct epoll_event ev;
	int rc;

	while (g->received < total) {
		rc = epoll_wait(g->ep, &ev, 1, RECV_MS);
		if (rc < 0 && errno == EINTR)
			continue; /* a completion of ours interrupted it */
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		rc = shmrpc_dispatch(g->rx, on_msg, g, 0);
		if (rc < 0 && rc != -EAGAIN)
			return rc;
	}
	return 0;
}

struct rx_thread {
	struct rig *g;
	bool fd_mode;
	int total;
	int rc;
};

/*
 * The first receiving thread: takes @total messages (sleeping for each),
 * then sleeps once more until its timeout with every word armed (blocking
 * mode; in fd mode its last dispatch left them armed), and exits so.
 */
static void *rx_first(void *arg)
{
	struct rx_thread *t = arg;
	struct payload p;

	t->rc = t->fd_mode ? loop_until(t->g, t->total) : recv_until(t->g, t->total);
	if (!t->rc && !t->fd_mode) {
		t->rc = shmrpc_recv(t->g->rx, &p, sizeof(p), NULL, ARMED_MS);
		t->rc = t->rc == -ETIMEDOUT ? 0 : t->rc < 0 ? t->rc : -EEXIST;
	}
	return NULL;
}

static void *rx_second(void *arg)
{
	struct rx_thread *t = arg;

	t->rc = t->fd_mode ? loop_until(t->g, t->total) : recv_until(t->g, t->total);
	return NULL;
}

/* Run @fn in a new thread while the pump sends @per_sender messages. */
static void rx_phase(struct rig *g, void *(*fn)(void *), bool fd_mode, int per_sender)
{
	struct rx_thread t = { g, fd_mode, g->received + per_sender * SENDERS, 0 };
	struct pump p;
	pthread_t rt, pt;

	assert_int_equal(pthread_create(&rt, NULL, fn, &t), 0);
	pump_start(&pt, &p, g, per_sender);
	pump_join(pt, &p);
	assert_int_equal(pthread_join(rt, NULL), 0);
	if (t.rc)
		fail_msg("receiving thread: %s after %d of %d messages (%s)", strerror(-t.rc),
			 g->received, t.total, t.rc == -ETIMEDOUT ? "a lost wake" : "an error");
	assert_int_equal(g->bad, 0);
	assert_int_equal(g->received, t.total);
}

/* ------------------------------------------- the kernel's side, inspected */

/* What a kernel that cancels an exiting thread's waits does: cancel every
 * wait of the receiver's io_uring now (the thread has gone). How many were
 * still armed. */
static int cancel_like_kernel(const struct rig *g)
{
	struct io_uring_sync_cancel_reg reg;
	long rc;

	memset(&reg, 0, sizeof(reg));
	reg.fd = -1;
	reg.flags = IORING_ASYNC_CANCEL_ANY;
	rc = syscall(__NR_io_uring_register, rx_io_uring_fd(g), IORING_REGISTER_SYNC_CANCEL, &reg,
		     1);
	if (rc < 0 && errno == ENOENT)
		return 0;
	assert_true(rc >= 0);
	return (int)rc;
}

/* Our own mappings of the words the receiver sleeps on (its bell, its
 * rings' data_seq), made from their files: they outlive shmrpc_close. */
struct words {
	void *map[SENDERS + 1];
	_Atomic uint32_t *w[SENDERS + 1];
	int nr;
};

/* @name: as the library names it, "/shmrpc.<domain>...". */
static void words_add(struct words *ws, const char *name, size_t off)
{
	char path[SHMRPC__PATH_MAX + 16];
	struct stat st;
	void *m;
	int fd;

	snprintf(path, sizeof(path), "/dev/shm%s", name);
	fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISREG(st.st_mode) && st.st_size >= 4096);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(m != MAP_FAILED);
	ws->map[ws->nr] = m;
	ws->w[ws->nr++] = (_Atomic uint32_t *)((uint8_t *)m + off);
}

/* Between receiving calls (the test thread reads the node's inbound set). */
static void words_map(struct words *ws, const struct rig *g)
{
	const struct shmrpc_node *n = g->rx;
	char path[SHMRPC__PATH_MAX];
	uint32_t i;

	memset(ws, 0, sizeof(*ws));
	shmrpc__node_path(path, n->reg, n->slot, n->gen);
	words_add(ws, path, offsetof(struct shmrpc__node_hdr, bell));
	assert_int_equal(n->in.n, SENDERS);
	for (i = 0; i < n->in.n; i++) {
		const struct shmrpc__inring *r = n->in.v[i];

		shmrpc__ring_path(path, n->reg, r->tx_slot, r->tx_gen, n->slot, n->gen);
		words_add(ws, path, offsetof(struct shmrpc__ring_hdr, data_seq));
	}
}

/* How many waits are queued on the words: FUTEX_WAKE counts (and ends)
 * them, io_uring ones included. A spurious wake, which every sleeper of
 * the protocol tolerates. */
static int words_queued(const struct words *ws)
{
	int i, sum = 0;
	long rc;

	for (i = 0; i < ws->nr; i++) {
		rc = syscall(SYS_futex, ws->w[i], FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		assert_true(rc >= 0);
		sum += (int)rc;
	}
	return sum;
}

static void words_unmap(struct words *ws)
{
	int i;

	for (i = 0; i < ws->nr; i++)
		munmap(ws->map[i], 4096);
}

/* ------------------------------------------------------------- scenarios */

static bool mode_setup(const struct rig *g, enum mode m)
{
	if (m != MODE_HOOK && !g->uring)
		return false; /* the futex backend has no waits to leave behind */
	shmrpc__uring_exit_cancel(m == MODE_HOOK);
	return true;
}

/* After the first receiving thread has exited (joined). */
static void mode_after_exit(const struct rig *g, enum mode m, bool fd_mode)
{
	bool helper = fd_mode && !g->uring;
	struct words ws;
	int left;

	if (m == MODE_HOOK) {
		/* The library's promise, whatever the kernel: nothing of the
		 * exited thread is left on the node's words. (The futex
		 * backend's shmrpc_fd helper thread, alive, sleeps on them.) */
		words_map(&ws, g);
		left = words_queued(&ws);
		words_unmap(&ws);
		print_message("[observed] %s backend%s: waits on the node's words after the "
			      "receiving thread exited: %d\n",
			      shmrpc_backend(g->rx), helper ? " (fd helper)" : "", left);
		if (!helper)
			assert_int_equal(left, 0);
	} else if (m == MODE_CANCELLED || m == MODE_CANCELLED_SETTLE) {
		left = cancel_like_kernel(g);
		print_message("[observed] waits the exited thread left armed: %d (of %d)\n", left,
			      SENDERS + 1);
		if (m == MODE_CANCELLED_SETTLE)
			nap_us(SETTLE_MS * 1000);
	}
}

/*
 * A thread receives (sleeping in shmrpc_recv, or in an epoll loop over
 * shmrpc_fd) and exits with its waits armed; another thread receives the
 * rest: every message exactly once, in order, none lost.
 */
static void run_change(void **state, enum mode m, bool fd_mode)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct payload p;
	struct rig g;

	rig_open(&g, *state);
	if (!mode_setup(&g, m)) {
		shmrpc_close(g.rx);
		rig_close_senders(&g);
		skip();
	}
	if (fd_mode) {
		g.ep = epoll_create1(EPOLL_CLOEXEC);
		assert_true(g.ep >= 0);
		ev.data.fd = shmrpc_fd(g.rx);
		assert_true(ev.data.fd >= 0);
		assert_int_equal(epoll_ctl(g.ep, EPOLL_CTL_ADD, ev.data.fd, &ev), 0);
	}
	rx_phase(&g, rx_first, fd_mode, WARM_MSGS);
	mode_after_exit(&g, m, fd_mode);
	rx_phase(&g, rx_second, fd_mode, MSGS);
	assert_int_equal(shmrpc_recv(g.rx, &p, sizeof(p), NULL, 0), -EAGAIN); /* none twice */
	print_message("%s, %s, %s: %d messages across the change of thread\n", shmrpc_backend(g.rx),
		      fd_mode ? "epoll loop" : "shmrpc_recv", mode_name[m], g.received);
	shmrpc__uring_exit_cancel(true);
	if (g.ep >= 0)
		close(g.ep);
	shmrpc_close(g.rx);
	rig_close_senders(&g);
}

static void test_recv_after_exit_hook(void **state)
{
	run_change(state, MODE_HOOK, false);
}

static void test_recv_after_exit_waits_armed(void **state)
{
	run_change(state, MODE_ARMED, false);
}

static void test_recv_after_exit_waits_cancelled(void **state)
{
	run_change(state, MODE_CANCELLED, false);
}

static void test_recv_after_exit_waits_cancelled_settled(void **state)
{
	run_change(state, MODE_CANCELLED_SETTLE, false);
}

static void test_fd_loop_after_exit_hook(void **state)
{
	run_change(state, MODE_HOOK, true);
}

static void test_fd_loop_after_exit_waits_armed(void **state)
{
	run_change(state, MODE_ARMED, true);
}

static void test_fd_loop_after_exit_waits_cancelled(void **state)
{
	run_change(state, MODE_CANCELLED, true);
}

/*
 * The thread that armed the waits has exited; another closes the node: no
 * wait may be left on its words (the bell's segment and the rings are
 * unmapped by the close), and nothing leaks. In fd mode with the futex
 * backend, the waits are the shmrpc_fd helper thread's, which the close
 * joins.
 */
static void run_close(void **state, enum mode m, bool fd_mode)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct words ws;
	struct rig g;
	int left;

	rig_open(&g, *state);
	if (!mode_setup(&g, m)) {
		shmrpc_close(g.rx);
		rig_close_senders(&g);
		skip();
	}
	if (fd_mode) {
		g.ep = epoll_create1(EPOLL_CLOEXEC);
		assert_true(g.ep >= 0);
		assert_int_equal(epoll_ctl(g.ep, EPOLL_CTL_ADD, shmrpc_fd(g.rx), &ev), 0);
	}
	rx_phase(&g, rx_first, fd_mode, WARM_MSGS);
	if (m == MODE_CANCELLED)
		print_message("[observed] waits the exited thread left armed: %d\n",
			      cancel_like_kernel(&g));
	words_map(&ws, &g);
	shmrpc_close(g.rx);
	left = words_queued(&ws);
	words_unmap(&ws);
	print_message("%s, %s, %s: waits left on the closed node's words: %d\n",
		      g.uring ? "uring" : "futex", fd_mode ? "epoll loop" : "shmrpc_recv",
		      mode_name[m], left);
	shmrpc__uring_exit_cancel(true);
	if (g.ep >= 0)
		close(g.ep);
	rig_close_senders(&g);
	assert_int_equal(left, 0);
}

static void test_close_after_exit_hook(void **state)
{
	run_close(state, MODE_HOOK, false);
}

static void test_close_after_exit_waits_armed(void **state)
{
	run_close(state, MODE_ARMED, false);
}

static void test_close_after_exit_waits_cancelled(void **state)
{
	run_close(state, MODE_CANCELLED, false);
}

static void test_close_after_fd_loop_exit_hook(void **state)
{
	run_close(state, MODE_HOOK, true);
}

static void test_close_after_fd_loop_exit_waits_armed(void **state)
{
	run_close(state, MODE_ARMED, true);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_recv_after_exit_hook),
		T(test_recv_after_exit_waits_armed),
		T(test_recv_after_exit_waits_cancelled),
		T(test_recv_after_exit_waits_cancelled_settled),
		T(test_fd_loop_after_exit_hook),
		T(test_fd_loop_after_exit_waits_armed),
		T(test_fd_loop_after_exit_waits_cancelled),
		T(test_close_after_exit_hook),
		T(test_close_after_exit_waits_armed),
		T(test_close_after_exit_waits_cancelled),
		T(test_close_after_fd_loop_exit_hook),
		T(test_close_after_fd_loop_exit_waits_armed),
	};

	/* No safety net: every sleep must end by a wake. */
	setenv("SHMRPC_SAFETY_MS", "3600000", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
