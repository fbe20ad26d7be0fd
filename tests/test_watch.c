// SPDX-License-Identifier: MIT
/*
 * The peers' watcher (lib/watch.c): a node learns of a peer's death from
 * the kernel (a pidfd), with no daemon and no lookup, and reclaims it.
 *
 * Real processes, killed with SIGKILL; no reaper runs, $SHMRPC_WATCH is
 * unset (the watcher on), and the domain stays small, so nothing but the
 * watcher reclaims a dead node here: no join happens after a kill (a join
 * would sweep it), and nobody looks the dead node up. Each test also shows
 * that a peer the watcher was not told about stays (the check that makes
 * the others able to fail).
 *
 *  - a receiver blocked in shmrpc_recv on the ring of a sender that is
 *    killed: the receiver's watcher, told of the sender when the receiver
 *    opened its ring (queued from the receive path), reclaims it; the
 *    receiver drops the ring and goes on receiving;
 *  - the queue itself: a request queued for a peer makes the watcher
 *    thread watch it; requests of a node closed right away are dropped with
 *    it (run under ASan: no use after free);
 *  - a sender's connect watches the receiver at once: a killed receiver
 *    turns sends to it into -EPIPE;
 *  - the watcher's start grows a one-thread process's descriptor table
 *    (for the joins to come) and leaves a threaded one's alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h" /* white box: the queue, and the registry's view of a node */
#include "registry.h"
#include "watch.h"

#define CLEAN_MS 5000 /* a watcher cleans up well within this */

static int watch_setup(void **state)
{
	unsetenv("SHMRPC_WATCH"); /* the watcher is what is tested */
	return th_setup(state);
}

/* A node in a child process, "name", that sends one message to @to (if
 * not NULL), opens @sent, then waits to be killed. */
struct peer {
	const struct th_dom *d;
	const char *name, *to;
	struct th_gate sent;
};

static int peer_main(void *arg)
{
	struct peer *p = arg;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open(p->name, &p->d->opts, &n), 0);
	if (p->to)
		CHILD_CHECK_RC(shmrpc_send(n, p->to, p->name, strlen(p->name) + 1, 5000), 0);
	th_gate_open(&p->sent);
	for (;;)
		pause();
}

static pid_t peer_start(struct peer *p, const struct th_dom *d, const char *name, const char *to)
{
	pid_t pid;

	p->d = d;
	p->name = name;
	p->to = to;
	th_gate_init(&p->sent);
	pid = th_fork(peer_main, p);
	assert_true(pid > 0);
	assert_int_equal(th_gate_wait(&p->sent, 10000), 0);
	return pid;
}

static void peer_kill(struct peer *p, pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	th_gate_close(&p->sent);
}

/* Is @name's slot still held (LIVE, or anything but FREE)? Read from the
 * registry's slots directly: a lookup would reclaim a dead node itself. */
static bool slot_held(struct shmrpc_node *n, uint32_t slot, uint32_t gen)
{
	struct shmrpc__slot_view v;

	while (shmrpc__reg_read(n->reg, slot, &v) == -EAGAIN)
		;
	return v.state != SHMRPC__SLOT_FREE && v.gen == gen;
}

/* Wait until (slot, gen) is freed: 0, or -ETIMEDOUT. */
static int wait_freed(struct shmrpc_node *n, uint32_t slot, uint32_t gen, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;

	while (slot_held(n, slot, gen)) {
		if (th_now_ms() > end)
			return -ETIMEDOUT;
		th_sleep_ms(5);
	}
	return 0;
}

static void find(struct shmrpc_node *n, const char *name, uint32_t *slot, uint32_t *gen)
{
	struct shmrpc__slot_view v;

	assert_int_equal(shmrpc__reg_find(n->reg, name, slot, &v), 0);
	*gen = v.gen;
}

/* ============================================= a receiver blocked in recv */

struct blocked {
	struct shmrpc_node *p;
	_Atomic pid_t tid;
	_Atomic int got; /* results of the second recv: length, or -errno */
	char from[SHMRPC_NAME_MAX + 1];
	char buf[64];
};

static void *blocked_recv(void *arg)
{
	struct blocked *b = arg;
	int rc;

	atomic_store(&b->tid, (pid_t)syscall(SYS_gettid));
	rc = shmrpc_recv(b->p, b->buf, sizeof(b->buf), b->from, 20000);
	atomic_store(&b->got, rc);
	return NULL;
}

/*
 * v sends to p (p opens v's ring: the receive path queues "watch v" for
 * p's watcher), then p blocks in shmrpc_recv, and v is killed. p's watcher
 * reclaims v: v's ring is closed and p, still in the same call, drops it;
 * then a message from w, a node that joined before v died, ends that call.
 * u, a peer p has no ring with, dies too: nobody is told of it, and it
 * stays (no lookup, no join after the kills).
 */
static void test_watch_receiver_learns_dead_sender_while_blocked(void **state)
{
	struct th_dom *d = *state;
	struct peer v, u;
	struct blocked b = { .got = 1 };
	struct shmrpc_stats st;
	struct shmrpc_node *w;
	uint32_t vs, vg, us, ug;
	pthread_t t;
	char buf[64];
	pid_t vpid, upid;

	b.p = th_open(d, "p");
	w = th_open(d, "w");
	assert_non_null(b.p);
	assert_non_null(w);
	upid = peer_start(&u, d, "u", NULL);
	vpid = peer_start(&v, d, "v", "p");
	assert_int_equal(shmrpc_recv(b.p, buf, sizeof(buf), NULL, 5000), 2); /* "v" */
	find(b.p, "v", &vs, &vg);
	find(b.p, "u", &us, &ug);

	assert_int_equal(pthread_create(&t, NULL, blocked_recv, &b), 0);
	while (!atomic_load(&b.tid))
		th_sleep_ms(1);
	assert_int_equal(th_wait_asleep(atomic_load(&b.tid), 5000), 0);
	peer_kill(&u, upid);
	peer_kill(&v, vpid);

	assert_int_equal(wait_freed(b.p, vs, vg, CLEAN_MS), 0);
	/* Dropped by the blocked call itself: the ring and v's files go. */
	for (int i = 0; i < CLEAN_MS / 5; i++) {
		assert_int_equal(shmrpc_stats(b.p, &st), 0);
		if (!st.rings_in)
			break;
		th_sleep_ms(5);
	}
	assert_int_equal(st.rings_in, 0);
	assert_int_equal(atomic_load(&b.got), 1); /* still in that recv */
	/* reg, p, w, u: v's node and ring files are gone, u's node is not */
	assert_int_equal(th_shm_count(d->name), 4);
	assert_true(slot_held(b.p, us, ug));

	assert_int_equal(shmrpc_send(w, "p", "w", 2, 1000), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&b.got), 2);
	assert_string_equal(b.from, "w");
	assert_string_equal(b.buf, "w");

	shmrpc_close(w);
	shmrpc_close(b.p); /* the last leave sweeps u */
}

/* ============================================================ the queue */

/*
 * A request queued (as the receive path does) for peer v makes p's watcher
 * watch it: killed, v is reclaimed. u, not queued, stays.
 */
static void test_watch_queue_watches_peer(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct peer v, u;
	uint32_t vs, vg, us, ug;
	pid_t vpid, upid;

	assert_non_null(p);
	vpid = peer_start(&v, d, "v", NULL);
	upid = peer_start(&u, d, "u", NULL);
	find(p, "v", &vs, &vg);
	find(p, "u", &us, &ug);
	shmrpc__watch_queue(p, vs, vg);
	/* the watcher reads v's slot while it is alive: its pidfd is taken */
	th_sleep_ms(100);
	peer_kill(&v, vpid);
	peer_kill(&u, upid);
	assert_int_equal(wait_freed(p, vs, vg, CLEAN_MS), 0);
	assert_true(slot_held(p, us, ug));
	shmrpc_close(p);
}

/*
 * Requests of a node that closes before the watcher serves them go with
 * it: shmrpc_close drops them (under the watcher's lock), and the watcher
 * never reads the freed node (ASan would say so). Many rounds, so that
 * some close before the watcher thread runs and some while it serves.
 */
static void test_watch_queue_dropped_with_node(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *keep = th_open(d, "keep"), *p;
	struct peer v;
	uint32_t vs, vg;
	pid_t vpid;
	int i, k;

	assert_non_null(keep);
	vpid = peer_start(&v, d, "v", NULL);
	find(keep, "v", &vs, &vg);
	for (i = 0; i < 200; i++) {
		p = th_open(d, "p");
		assert_non_null(p);
		for (k = 0; k < 4; k++)
			shmrpc__watch_queue(p, vs, vg);
		if (i & 1)
			th_sleep_ms(1);
		shmrpc_close(p);
	}
	/* The watcher still works for the node that stayed. */
	shmrpc__watch_queue(keep, vs, vg);
	th_sleep_ms(100);
	peer_kill(&v, vpid);
	assert_int_equal(wait_freed(keep, vs, vg, CLEAN_MS), 0);
	shmrpc_close(keep);
}

/* ============================================================= connect */

/*
 * A sender's first send watches the receiver (connect.c hands its pidfd
 * over): the receiver killed, the sender's watcher reclaims it, and the
 * next send says -EPIPE without waiting for anything.
 */
static void test_watch_connect_watches_receiver(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p");
	struct peer v, u;
	uint32_t vs, vg, us, ug;
	pid_t vpid, upid;

	assert_non_null(p);
	vpid = peer_start(&v, d, "v", NULL);
	upid = peer_start(&u, d, "u", NULL);
	assert_int_equal(shmrpc_send(p, "v", "p", 2, 1000), 0);
	find(p, "v", &vs, &vg);
	find(p, "u", &us, &ug);
	peer_kill(&v, vpid);
	peer_kill(&u, upid);
	assert_int_equal(wait_freed(p, vs, vg, CLEAN_MS), 0);
	assert_int_equal(shmrpc_send(p, "v", "p", 2, 0), -EPIPE);
	assert_true(slot_held(p, us, ug));
	shmrpc_close(p);
}

/* The size of this process's descriptor table (FDSize), or -1. */
static long fd_table_size(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "FDSize:", 7))
			v = strtol(line + 7, NULL, 10);
	fclose(f);
	return v;
}

static void *idle_thread(void *arg)
{
	pause();
	return arg;
}

/* In a fresh child (no watcher yet): its first node starts the watcher.
 * With @thread, the process has a second thread before that. */
struct grow {
	const struct th_dom *d;
	bool thread;
};

static int grow_main(void *arg)
{
	const struct grow *g = arg;
	bool thread = g->thread;
	struct shmrpc_node *n;
	struct rlimit rl;
	long before, after, want;
	pthread_t t;

	CHILD_CHECK(!getrlimit(RLIMIT_NOFILE, &rl));
	want = rl.rlim_cur < 4096 ? (long)rl.rlim_cur : 4096;
	if (thread)
		CHILD_CHECK(!pthread_create(&t, NULL, idle_thread, NULL));
	before = fd_table_size();
	CHILD_CHECK(before > 0 && before < want);
	CHILD_CHECK_RC(shmrpc_open("g", &g->d->opts, &n), 0);
	after = fd_table_size();
	fprintf(stderr, "[observed] descriptor table %ld -> %ld entries (%s)\n", before, after,
		thread ? "two threads" : "one thread");
	if (thread)
		CHILD_CHECK(after == before);
	else
		CHILD_CHECK(after >= want);
	/* Nothing left open at the top: the table grew, no descriptor stayed. */
	CHILD_CHECK(fcntl(want - 1, F_GETFD) < 0 && errno == EBADF);
	shmrpc_close(n);
	return 0;
}

static void test_watch_start_grows_fd_table_of_one_thread(void **state)
{
	struct grow g = { *state, false };

	assert_int_equal(th_wait(th_fork(grow_main, &g), 10000), 0);
	g.thread = true;
	assert_int_equal(th_wait(th_fork(grow_main, &g), 10000), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, watch_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_watch_receiver_learns_dead_sender_while_blocked),
		T(test_watch_queue_watches_peer),
		T(test_watch_queue_dropped_with_node),
		T(test_watch_connect_watches_receiver),
		T(test_watch_start_grows_fd_table_of_one_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
