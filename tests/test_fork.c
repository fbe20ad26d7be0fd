// SPDX-License-Identifier: MIT
/*
 * fork() and a node (lib/node.c's atfork handlers, with the registry
 * cache's, the peers' watcher's and the uring backend's): a forked child
 * cannot use its parent's node (-ECHILD) but may open its own, its close of
 * the copy unmaps the parent's connections (reply connections too) and
 * nothing more, and a parent killed while its child lives is seen dead
 * (the child does not hold the parent's liveness lock).
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here.
 *
 * ThreadSanitizer cannot follow fork() from a process that runs threads:
 * these run under ASan only (the Makefile's TSAN_TESTS).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "layout.h"

/* ============================================================== fork */

struct forkuse {
	struct shmrpc_node *p, *q, *t; /* t runs a receiving thread */
	struct shmrpc_txbuf held;      /* a reservation of p's, made before fork */
	struct th_dom *d;
};

/* Lines of /proc/self/maps that map a file of @dom. */
static int maps_of(const char *dom)
{
	char line[512], pat[128];
	FILE *f = fopen("/proc/self/maps", "r");
	int count = 0;

	if (!f)
		return -1;
	snprintf(pat, sizeof(pat), "/shmrpc.%s.", dom);
	while (fgets(line, sizeof(line), f))
		count += strstr(line, pat) != NULL;
	fclose(f);
	return count;
}

/* Counts the messages its receive thread handled. */
static void fork_count_handler(struct shmrpc_node *n, const char *from, const void *data,
			       size_t len, void *arg)
{
	(void)n, (void)from, (void)data, (void)len;
	/* Release: pairs with the test's acquire load. */
	atomic_fetch_add_explicit((_Atomic int *)arg, 1, memory_order_release);
}

static int forked_user(void *arg)
{
	struct forkuse *f = arg;
	struct shmrpc_node *c;
	struct shmrpc_rxbuf rx;
	struct shmrpc_txbuf tx;
	char buf[16];

	memset(&rx, 0, sizeof(rx));
	CHILD_CHECK_RC(shmrpc_send(f->p, "q", "x", 1, 0), -ECHILD);
	CHILD_CHECK_RC(shmrpc_reserve(f->p, "q", 1, &tx, 0), -ECHILD);
	memcpy(f->held.data, "C", 1);
	CHILD_CHECK_RC(shmrpc_commit(f->p, &f->held, 1), -ECHILD);
	shmrpc_cancel(f->p, &f->held);
	CHILD_CHECK_RC(shmrpc_broadcast(f->p, "x", 1, 0), -ECHILD);
	CHILD_CHECK_RC(shmrpc_warmup(f->p), -ECHILD);
	/* the parent's queued message must stay the parent's */
	CHILD_CHECK_RC(shmrpc_recv(f->p, buf, sizeof(buf), NULL, 0), -ECHILD);
	CHILD_CHECK_RC(shmrpc_peek(f->p, &rx, 0), -ECHILD);
	CHILD_CHECK_RC(shmrpc_release(f->p, &rx), -ECHILD);
	CHILD_CHECK_RC(shmrpc_dispatch(f->p, th_noop_handler, NULL, 0), -ECHILD);
	CHILD_CHECK_RC(shmrpc_start(f->p, th_noop_handler, NULL), -ECHILD);
	CHILD_CHECK_RC(shmrpc_stop(f->p), -ECHILD);
	/* the thread is the parent's: there is none here to stop */
	CHILD_CHECK_RC(shmrpc_stop(f->t), -ECHILD);
	CHILD_CHECK_RC(shmrpc_recv(f->t, buf, sizeof(buf), NULL, 0), -ECHILD);
	shmrpc_close(f->t);
	shmrpc_close(f->p); /* this process's copy only */
	shmrpc_close(f->q);
	CHILD_CHECK_RC(maps_of(f->d->name), 0); /* nothing of the domain stays mapped */
	CHILD_CHECK_RC(shmrpc_open("c", &f->d->opts, &c), 0);
	CHILD_CHECK_RC(shmrpc_is_local(c, "p"), 1);
	CHILD_CHECK_RC(shmrpc_send(c, "p", "from-child", 10, 1000), 0);
	shmrpc_close(c);
	return 0;
}

static void test_fork_child_cannot_use_parent_node(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p"), *q = th_open(d, "q"), *t = th_open(d, "t");
	struct forkuse f = { .p = p, .q = q, .t = t, .d = d };
	char buf[16], from[SHMRPC_NAME_MAX + 1];
	struct timespec ms = { 0, 1000000 };
	int i, rc, got = 0;
	_Atomic int handled = 0;

	assert_non_null(p);
	assert_non_null(q);
	assert_non_null(t);
	/* rings both ways, one of them opened: the child inherits all that */
	assert_int_equal(shmrpc_send(p, "q", "hi", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(q, buf, sizeof(buf), NULL, 1000), 2);
	assert_int_equal(shmrpc_send(q, "p", "m1", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), 2);
	assert_int_equal(shmrpc_send(q, "p", "m2", 2, 1000), 0); /* queued at fork */
	assert_int_equal(shmrpc_start(t, fork_count_handler, (void *)&handled), 0);
	/* Fork only once t's thread runs its loop: a thread still starting up
	 * may hold AddressSanitizer's allocator lock, which the child would
	 * inherit held (and deadlock in its exit-time leak check). */
	assert_int_equal(shmrpc_send(q, "t", "w", 1, 1000), 0);
	/* Acquire: pairs with the handler's release add. */
	for (i = 0; i < 5000 && !atomic_load_explicit(&handled, memory_order_acquire); i++)
		nanosleep(&ms, NULL);
	assert_int_equal(atomic_load_explicit(&handled, memory_order_acquire), 1);
	assert_int_equal(shmrpc_reserve(p, "q", 1, &f.held, 1000), 0);

	assert_int_equal(th_wait(th_fork(forked_user, &f), 10000), 0);

	memcpy(f.held.data, "P", 1);
	assert_int_equal(shmrpc_commit(p, &f.held, 1), 0);
	assert_int_equal(shmrpc_recv(q, buf, sizeof(buf), NULL, 1000), 1);
	assert_memory_equal(buf, "P", 1);
	assert_int_equal(shmrpc_recv(q, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_stop(t), 0);
	shmrpc_close(t);

	assert_int_equal(shmrpc_is_local(q, "p"), 1);
	for (i = 0; i < 2; i++) { /* q's m2 and the child's node's message, any order */
		rc = shmrpc_recv(p, buf, sizeof(buf), from, 1000);
		if (!strcmp(from, "q")) {
			assert_int_equal(rc, 2);
			assert_memory_equal(buf, "m2", 2);
			got |= 1;
		} else {
			assert_string_equal(from, "c");
			assert_int_equal(rc, 10);
			got |= 2;
		}
	}
	assert_int_equal(got, 3);
	assert_int_equal(shmrpc_send(q, "p", "m3", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), 2);
	assert_int_equal(shmrpc_send(p, "q", "m4", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(q, buf, sizeof(buf), NULL, 1000), 2);
	shmrpc_close(p);
	shmrpc_close(q);
}

/* A server's reply connections are its node's too: a forked child's close
 * of its copy unmaps them (lib/reply.c's table, forgotten as the message
 * table is) and leaves the parent's ring open. */
struct forkrep {
	struct shmrpc_node *s, *c;
	struct th_dom *d;
};

static void fork_echo(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	shmrpc_reply(n, r, r->data, r->len, 0);
}

static int forked_server(void *arg)
{
	struct forkrep *f = arg;

	shmrpc_close(f->s); /* this process's copies only */
	shmrpc_close(f->c);
	CHILD_CHECK_RC(maps_of(f->d->name), 0);
	return 0;
}

/* One call of c to s, served by s's own receiving call. */
static void fork_call(struct shmrpc_node *s, struct shmrpc_node *c)
{
	char buf[16];
	uint64_t id;

	assert_int_equal(shmrpc_call_start(c, "s", "hi", 2, 1000, &id), 0);
	assert_int_equal(shmrpc_recv(s, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 1000), 2);
	assert_memory_equal(buf, "hi", 2);
}

static void test_fork_child_forgets_reply_connections(void **state)
{
	struct th_dom *d = *state;
	struct forkrep f = { .s = th_open(d, "s"), .c = th_open(d, "c"), .d = d };
	int i;

	assert_non_null(f.s);
	assert_non_null(f.c);
	assert_int_equal(shmrpc_serve(f.s, fork_echo, NULL), 0);
	fork_call(f.s, f.c); /* s now holds a reply connection to c */
	assert_int_equal(th_wait(th_fork(forked_server, &f), 10000), 0);
	/* On the same reply ring (the child left it open: a TX_CLOSED one
	 * would be dropped by c once drained) */
	for (i = 0; i < 3; i++)
		fork_call(f.s, f.c);
	shmrpc_close(f.s);
	shmrpc_close(f.c);
}

struct forkpar {
	struct th_dom *d;
	struct th_gate ready, started, release, never;
	int pidpipe[2];
	pid_t test; /* the test's process: the grandchild ends with it */
};

static void forkpar_grandchild(struct forkpar *f)
{
	int pidfd = (int)syscall(SYS_pidfd_open, f->test, 0);
	struct pollfd p[2] = { { f->release.fd[0], POLLIN, 0 }, { pidfd, POLLIN, 0 } };

	/* Running: fork() has returned here, so the atfork handler has
	 * closed this process's copy of the liveness lock descriptor. Until
	 * then the copy exists (fork duplicates the descriptor table) and a
	 * parent killed in that window stays alive until the child runs: no
	 * library can close that before the kernel has a close-on-fork. */
	th_gate_open(&f->started);
	/* Outlives its parent, holding its copy of the parent's node, until
	 * released, or until the test's process goes (no PDEATHSIG here: it
	 * would die with its parent). */
	CHILD_CHECK(pidfd >= 0 && poll(p, 2, 30000) > 0 && (p[0].revents & POLLIN));
	/* _exit: this process was forked from a threaded one (the library's
	 * watcher thread), which may have held the sanitizers' allocator lock
	 * at that instant; LeakSanitizer's check at exit() then waits for it
	 * forever (seen under ASan: __lsan::LockAllocator in a futex wait, the
	 * test's 5 s bound reached, about 1 run in 20). It allocated nothing
	 * since the fork: there is nothing for the check to find. */
	_exit(0);
}

static int forkpar_main(void *arg)
{
	struct forkpar *f = arg;
	struct shmrpc_node *n;
	pid_t g;

	CHILD_CHECK_RC(shmrpc_open("par", &f->d->opts, &n), 0);
	CHILD_CHECK_RC(shmrpc_send(n, "obs", "hi", 2, 1000), 0);
	fflush(NULL);
	g = fork(); /* not th_fork: see forkpar_grandchild */
	if (g == 0)
		forkpar_grandchild(f);
	CHILD_CHECK(g > 0);
	CHILD_CHECK(write(f->pidpipe[1], &g, sizeof(g)) == sizeof(g));
	th_gate_open(&f->ready);
	CHILD_CHECK(th_gate_wait(&f->never, 30000) == 0); /* killed here */
	return 1;
}

static void test_fork_parent_killed_while_child_lives(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *obs = th_open(d, "obs");
	struct forkpar f = { .d = d, .test = getpid() };
	char id[32], buf[8];
	pid_t pid, g = -1;
	int rc;

	assert_non_null(obs);
	th_gate_init(&f.ready);
	th_gate_init(&f.started);
	th_gate_init(&f.release);
	th_gate_init(&f.never);
	assert_int_equal(pipe(f.pidpipe), 0);
	pid = th_fork(forkpar_main, &f);
	assert_int_equal(th_gate_wait(&f.ready, 10000), 0);
	assert_int_equal(read(f.pidpipe[0], &g, sizeof(g)), sizeof(g));
	assert_int_equal(th_gate_wait(&f.started, 10000), 0);
	assert_int_equal(shmrpc_recv(obs, buf, sizeof(buf), NULL, 1000), 2);
	assert_int_equal(shmrpc_send(obs, "par", "x", 1, 0), 0);
	assert_int_equal(th_node_id(d->name, "par", id), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
	assert_int_equal(kill(g, 0), 0); /* the forked child lives on */

	rc = shmrpc_is_local(obs, "par");
	if (rc != 0)
		print_message("the dead parent's node still looks alive while its forked "
			      "child lives\n");
	th_gate_open(&f.release);
	assert_int_equal(th_wait(g, 5000), 0); /* we are its subreaper */
	assert_int_equal(rc, 0);
	assert_int_equal(th_id_files(d->name, id), 0);
	th_gate_close(&f.ready);
	th_gate_close(&f.started);
	th_gate_close(&f.release);
	th_gate_close(&f.never);
	close(f.pidpipe[0]);
	close(f.pidpipe[1]);
	shmrpc_close(obs);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fork_child_cannot_use_parent_node),
		T(test_fork_parent_killed_while_child_lives),
		T(test_fork_child_forgets_reply_connections),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
