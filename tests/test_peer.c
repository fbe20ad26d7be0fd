// SPDX-License-Identifier: MIT
/*
 * Peer handles (lib/peer.c): arguments and errors, waiting for a node to
 * join, sending and reserving through a handle, a handle bound to one
 * incarnation across a restart under the same name (graceful and
 * SIGKILLed), a handle outliving its node's close, one handle used by many
 * threads, a receiver that dropped our ring as corrupt, and the connection
 * shmrpc__peer_acquire hands out (the seam the RPC calls use).
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"
#include "connect.h"
#include "conntab.h"
#include "peer.h"

/* ======================================================== arguments */

static void test_peer_args(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a");
	struct shmrpc_peer *p = (struct shmrpc_peer *)1;
	struct shmrpc_txbuf tx;
	struct iovec iov = { NULL, 1 };

	assert_non_null(a);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, NULL), -EINVAL);
	assert_int_equal(shmrpc_peer_get(NULL, "b", 0, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(shmrpc_peer_get(a, NULL, 0, &p), -EINVAL);
	assert_int_equal(shmrpc_peer_get(a, "b", -2, &p), -EINVAL);
	assert_int_equal(shmrpc_peer_get(a, "a", 0, &p), -EINVAL); /* itself */
	assert_int_equal(shmrpc_peer_get(a, ".event", 0, &p), -EINVAL);
	assert_int_equal(shmrpc_peer_get(a, "b/c", 0, &p), -EINVAL);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), -EAGAIN);
	assert_int_equal(shmrpc_peer_get(a, "b", 50, &p), -ETIMEDOUT);
	assert_non_null(strstr(shmrpc_last_error(), "'b'"));
	assert_null(p);
	shmrpc_peer_put(NULL);
	assert_int_equal(shmrpc_peer_alive(NULL), -EINVAL);
	assert_null(shmrpc_peer_name(NULL));
	assert_int_equal(shmrpc_peer_send(NULL, "x", 1, 0, 0), -EINVAL);
	assert_int_equal(shmrpc_peer_sendv(NULL, &iov, 1, 0, 0), -EINVAL);
	assert_int_equal(shmrpc_peer_reserve(NULL, 1, &tx, 0), -EINVAL);
	shmrpc_close(a);
}

static void test_peer_send_reserve(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct iovec iov[2] = { { NULL, 1 }, { "y", 1 } };
	struct shmrpc_txbuf tx;
	struct shmrpc_peer *p;
	char buf[16], from[SHMRPC_NAME_MAX + 1];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	assert_string_equal(shmrpc_peer_name(p), "b");
	assert_int_equal(shmrpc_peer_alive(p), 1);
	assert_int_equal(shmrpc_peer_send(p, NULL, 1, 0, 0), -EINVAL);
	assert_int_equal(shmrpc_peer_send(p, "x", 1, -2, 0), -EINVAL);
	assert_int_equal(shmrpc_peer_send(p, "x", 1, 0, 0x2), -EINVAL);
	assert_int_equal(shmrpc_peer_sendv(p, iov, 0, 0, 0), -EINVAL);
	assert_int_equal(shmrpc_peer_sendv(p, NULL, 1, 0, 0), -EINVAL);
	assert_int_equal(shmrpc_peer_sendv(p, iov, 2, 0, 0), -EINVAL); /* NULL base, length 1 */
	assert_int_equal(shmrpc_peer_send(p, "hello", 5, 0, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), from, 0), 5);
	assert_string_equal(from, "a");
	/* zero-copy through the handle, ended by the node's calls */
	assert_int_equal(shmrpc_peer_reserve(p, 8, &tx, 0), 0);
	assert_int_equal(tx.cap, 8);
	/* the same thread sending to the connection it holds: -EDEADLK */
	assert_int_equal(shmrpc_peer_send(p, "x", 1, -1, 0), -EDEADLK);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, -1), -EDEADLK);
	memcpy(tx.data, "zc", 2);
	assert_int_equal(shmrpc_commit(a, &tx, 2), 0);
	assert_int_equal(shmrpc_peer_reserve(p, 8, &tx, 0), 0);
	shmrpc_cancel(a, &tx);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 2);
	assert_memory_equal(buf, "zc", 2);
	/* a name send and a handle send share the connection: one ring */
	assert_int_equal(shmrpc_send(a, "b", "n", 1, 0), 0);
	assert_int_equal(shmrpc_peer_send(p, "h", 1, 0, SHMRPC_SEND_DEFER), 0);
	assert_int_equal(th_stats(a).rings_out, 1);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 1);
	assert_int_equal(buf[0], 'n');
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 1);
	assert_int_equal(buf[0], 'h');
	shmrpc_peer_put(p);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ====================================================== one incarnation */

/* A child "x": echoes every int it receives back to "p", adding @add; -1
 * closes it. */
struct echo {
	struct th_dom *d;
	int add;
	struct th_gate ready;
};

static int echo_main(void *arg)
{
	struct echo *e = arg;
	struct shmrpc_node *n;
	int v;

	CHILD_CHECK_RC(shmrpc_open("x", &e->d->opts, &n), 0);
	th_gate_open(&e->ready);
	for (;;) {
		CHILD_CHECK_RC(shmrpc_recv(n, &v, sizeof(v), NULL, 30000), sizeof(v));
		if (v < 0)
			break;
		v += e->add;
		CHILD_CHECK_RC(shmrpc_send(n, "p", &v, sizeof(v), 10000), 0);
	}
	shmrpc_close(n);
	return 0;
}

static pid_t echo_start(struct echo *e, struct th_dom *d, int add)
{
	pid_t pid;

	e->d = d;
	e->add = add;
	th_gate_init(&e->ready);
	pid = th_fork(echo_main, e);
	assert_true(pid > 0);
	assert_int_equal(th_gate_wait(&e->ready, 10000), 0);
	return pid;
}

static void round_trip(struct shmrpc_node *n, struct shmrpc_peer *p, int v, int want)
{
	int got = 0;

	assert_int_equal(shmrpc_peer_send(p, &v, sizeof(v), 10000, 0), 0);
	assert_int_equal(shmrpc_recv(n, &got, sizeof(got), NULL, 10000), sizeof(got));
	assert_int_equal(got, want);
}

/* The old handle says -EPIPE once its node is gone, also after a node of
 * that name joined again; a new handle reaches the new one. */
static void restart(struct th_dom *d, bool kill_it)
{
	struct shmrpc_node *n = th_open(d, "p");
	struct shmrpc_peer *h1, *h2;
	struct echo e1, e2;
	struct shmrpc_txbuf tx;
	struct iovec iov = { "v", 1 };
	pid_t pid;
	int v = -1;

	assert_non_null(n);
	pid = echo_start(&e1, d, 1000);
	assert_int_equal(shmrpc_peer_get(n, "x", 10000, &h1), 0);
	round_trip(n, h1, 1, 1001);
	if (kill_it) {
		kill(pid, SIGKILL);
		assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
		/* the lookup reclaims it, if our watcher has not yet */
		assert_int_equal(shmrpc_is_local(n, "x"), 0);
	} else {
		assert_int_equal(shmrpc_peer_send(h1, &v, sizeof(v), 10000, 0), 0);
		assert_int_equal(th_wait(pid, 10000), 0);
	}
	assert_int_equal(shmrpc_peer_send(h1, &v, sizeof(v), 1000, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_alive(h1), 0);
	pid = echo_start(&e2, d, 2000); /* x again */
	assert_int_equal(shmrpc_peer_alive(h1), 0);
	assert_int_equal(shmrpc_peer_send(h1, &v, sizeof(v), 1000, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_sendv(h1, &iov, 1, 1000, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_reserve(h1, 4, &tx, 1000), -EPIPE);
	assert_string_equal(shmrpc_peer_name(h1), "x");
	assert_int_equal(shmrpc_peer_get(n, "x", 10000, &h2), 0);
	assert_int_equal(shmrpc_peer_alive(h2), 1);
	round_trip(n, h2, 2, 2002);
	assert_int_equal(shmrpc_peer_send(h1, &v, sizeof(v), 1000, 0), -EPIPE);
	/* sends by name follow the name (that is what handles are not) */
	v = 3;
	assert_int_equal(shmrpc_send(n, "x", &v, sizeof(v), 10000), 0);
	assert_int_equal(shmrpc_recv(n, &v, sizeof(v), NULL, 10000), sizeof(v));
	assert_int_equal(v, 2003);
	v = -1;
	assert_int_equal(shmrpc_peer_send(h2, &v, sizeof(v), 10000, 0), 0);
	assert_int_equal(th_wait(pid, 10000), 0);
	assert_int_equal(shmrpc_peer_alive(h2), 0);
	shmrpc_peer_put(h1);
	shmrpc_peer_put(h2);
	th_gate_close(&e1.ready);
	th_gate_close(&e2.ready);
	shmrpc_close(n);
}

static void test_peer_restart_after_leave(void **state)
{
	restart(*state, false);
}

static void test_peer_restart_after_kill(void **state)
{
	restart(*state, true);
}

/* The incarnation binds at the connect: a node that joins later under the
 * same name is never the handle's. */
static void test_peer_get_waits_for_join(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n = th_open(d, "p");
	struct shmrpc_peer *h;
	struct echo e;
	pid_t pid;
	int v = -1;

	assert_non_null(n);
	/* not there yet: a child joins 200 ms later */
	pid = th_fork_raw();
	if (pid == 0) {
		struct echo *ce = &e;

		th_sleep_ms(200);
		ce->d = d;
		ce->add = 7;
		th_gate_init(&ce->ready);
		exit(echo_main(ce));
	}
	assert_int_equal(shmrpc_peer_get(n, "x", 10000, &h), 0);
	round_trip(n, h, 1, 8);
	assert_int_equal(shmrpc_peer_send(h, &v, sizeof(v), 10000, 0), 0);
	assert_int_equal(th_wait(pid, 10000), 0);
	shmrpc_peer_put(h);
	shmrpc_close(n);
}

/* shmrpc_close with handles outstanding: they stay valid memory, every call
 * through them is -EPIPE, and shmrpc_peer_put frees them afterwards. */
static void test_peer_handle_outlives_node(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc_peer *p, *q;
	struct iovec iov = { "v", 1 };
	struct shmrpc_txbuf tx;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &q), 0);
	assert_int_equal(shmrpc_peer_send(p, "x", 1, 0, 0), 0);
	shmrpc_peer_put(q); /* one put before, one after */
	shmrpc_close(a);
	assert_int_equal(shmrpc_peer_send(p, "x", 1, 0, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_sendv(p, &iov, 1, 0, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_reserve(p, 1, &tx, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_alive(p), 0);
	assert_string_equal(shmrpc_peer_name(p), "b");
	shmrpc_peer_put(p);
	shmrpc_close(b);
}

/* ============================================================= threads */

#define TH_THREADS 4
#define TH_MSGS 3000

struct sender {
	struct shmrpc_peer *p;
	int id, rc;
};

static void *sender_thread(void *arg)
{
	struct sender *s = arg;
	struct iovec iov[8];
	int msg[8][2], i, k, n;

	for (i = 0; i < TH_MSGS && !s->rc;) {
		if (i % 3) { /* a batch of up to 8, the rest a plain send */
			n = TH_MSGS - i < 8 ? TH_MSGS - i : 8;
			for (k = 0; k < n; k++) {
				msg[k][0] = s->id;
				msg[k][1] = i + k;
				iov[k].iov_base = msg[k];
				iov[k].iov_len = sizeof(msg[k]);
			}
			n = shmrpc_peer_sendv(s->p, iov, (unsigned)n, -1, 0);
			if (n < 1)
				s->rc = n;
			else
				i += n;
		} else {
			msg[0][0] = s->id;
			msg[0][1] = i;
			s->rc = shmrpc_peer_send(s->p, msg[0], sizeof(msg[0]), -1, 0);
			i++;
		}
	}
	return NULL;
}

/* One handle, many threads, plain sends and batches: every message once,
 * each thread's in its order. */
static void test_peer_many_threads(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096);
	struct sender s[TH_THREADS];
	pthread_t t[TH_THREADS];
	int next[TH_THREADS] = { 0 }, msg[2], i, total = 0;
	struct shmrpc_peer *p;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	for (i = 0; i < TH_THREADS; i++) {
		s[i].p = p;
		s[i].id = i;
		s[i].rc = 0;
		assert_int_equal(pthread_create(&t[i], NULL, sender_thread, &s[i]), 0);
	}
	while (total < TH_THREADS * TH_MSGS) {
		assert_int_equal(shmrpc_recv(b, msg, sizeof(msg), NULL, 10000), sizeof(msg));
		assert_true(msg[0] >= 0 && msg[0] < TH_THREADS);
		assert_int_equal(msg[1], next[msg[0]]);
		next[msg[0]]++;
		total++;
	}
	for (i = 0; i < TH_THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].rc, 0);
	}
	shmrpc_peer_put(p);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ============================================================ the seams */

/* The receiver, still there, dropped our ring as corrupt: -EPIPE once, as
 * for a send by name, then the handle connects to the same node afresh. */
static void test_peer_reconnects_same_node(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc__tmo t = SHMRPC__TMO(0);
	struct shmrpc__conn *c;
	struct shmrpc_peer *p;
	char buf[8];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	assert_int_equal(shmrpc_peer_send(p, "1", 1, 0, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 1);
	/* a tail no producer of ours writes */
	assert_int_equal(shmrpc__peer_acquire(p, &t, &c), 0);
	atomic_store(&c->q.hdr->tail, c->q.pos + 3);
	shmrpc__conn_unlock(a, c);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EPROTO);
	assert_int_equal(shmrpc_peer_alive(p), 1);
	assert_int_equal(shmrpc_peer_send(p, "2", 1, 0, 0), -EPIPE);
	assert_int_equal(shmrpc_peer_send(p, "3", 1, 0, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 1);
	assert_int_equal(buf[0], '3');
	assert_int_equal(shmrpc_peer_alive(p), 1);
	shmrpc_peer_put(p);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* shmrpc__peer_acquire: a locked connection to exactly the handle's
 * incarnation, no lookup by name; -EPIPE once it is gone. */
static void test_peer_acquire_is_the_incarnation(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc__tmo t = SHMRPC__TMO(0);
	struct shmrpc__conn *c;
	struct shmrpc_peer *p;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	assert_int_equal(shmrpc__peer_acquire(p, &t, &c), 0);
	assert_true(shmrpc__conn_held(c));
	assert_int_equal(c->rx_slot, p->slot);
	assert_int_equal(c->rx_gen, p->gen);
	shmrpc__conn_unlock(a, c);
	shmrpc_close(b);
	b = th_open(d, "b");
	assert_non_null(b);
	assert_int_equal(shmrpc__peer_acquire(p, &t, &c), -EPIPE);
	shmrpc_peer_put(p);
	shmrpc_close(a);
	shmrpc_close(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_peer_args),
		T(test_peer_send_reserve),
		T(test_peer_restart_after_leave),
		T(test_peer_restart_after_kill),
		T(test_peer_get_waits_for_join),
		T(test_peer_handle_outlives_node),
		T(test_peer_many_threads),
		T(test_peer_reconnects_same_node),
		T(test_peer_acquire_is_the_incarnation),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
