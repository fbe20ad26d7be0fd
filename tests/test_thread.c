// SPDX-License-Identifier: MIT
/*
 * The receiving thread (lib/thread.c: shmrpc_start, shmrpc_stop), and many
 * threads sending and receiving at once (lib/conntab.c's per-thread cache
 * and locks, lib/rx.c's one receiving thread).
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here, so a
 * bound such as "stop returns within 2 s" checks a wake, not a speed.
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

/* ====================================================== 7. start / stop */

struct bg {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls, errors, stop_rc, recv_rc;
	uint32_t next;
	uint64_t sleeps_at; /* the node's sleep count in the last call */
	pthread_t self;
	bool try_stop;
};

static void bg_init(struct bg *g)
{
	pthread_condattr_t ca;

	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	g->stop_rc = 1;
	g->recv_rc = 1;
}

static void bg_fini(struct bg *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

static void bg_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		       void *arg)
{
	struct bg *g = arg;
	struct shmrpc_stats st;
	char buf[8];
	uint32_t v;
	int stop_rc = 1, recv_rc;

	if (g->try_stop)
		stop_rc = shmrpc_stop(n); /* would wait for itself */
	recv_rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 0);
	if (shmrpc_stats(n, &st))
		st.sleeps = UINT64_MAX;
	pthread_mutex_lock(&g->lock);
	g->sleeps_at = st.sleeps;
	g->self = pthread_self();
	g->stop_rc = stop_rc;
	g->recv_rc = recv_rc;
	if (len != sizeof(v) || strcmp(from, "s")) {
		g->errors++;
	} else {
		memcpy(&v, data, sizeof(v));
		if (v != g->next++)
			g->errors++;
	}
	g->calls++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Sleep until the handler ran @calls times; false after timeout_ms. */
static bool bg_wait(struct bg *g, int calls, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (g->calls < calls)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &ts))
			break;
	ok = g->calls >= calls;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

static void send_seq(struct shmrpc_node *s, const char *to, uint32_t from, uint32_t count)
{
	uint32_t v;

	for (v = from; v < from + count; v++)
		assert_int_equal(shmrpc_send(s, to, &v, sizeof(v), 5000), 0);
}

static void test_thread_runs_handler_and_owns_receiving(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct shmrpc_rxbuf rx;
	struct bg g;
	char buf[16];

	assert_non_null(r);
	assert_non_null(s);
	bg_init(&g);
	memset(&rx, 0, sizeof(rx));
	assert_int_equal(shmrpc_stop(r), -EALREADY);
	assert_int_equal(shmrpc_start(r, bg_handler, &g), 0);
	assert_int_equal(shmrpc_start(r, bg_handler, &g), -EALREADY);
	assert_int_equal(shmrpc_start(r, th_noop_handler, NULL), -EALREADY);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EBUSY);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, -1), -EBUSY); /* no wait */
	assert_int_equal(shmrpc_peek(r, &rx, 0), -EBUSY);
	assert_int_equal(shmrpc_release(r, &rx), -EBUSY);
	assert_int_equal(shmrpc_dispatch(r, th_noop_handler, NULL, 0), -EBUSY);
	send_seq(s, "r", 0, 500);
	assert_true(bg_wait(&g, 500, 10000));
	pthread_mutex_lock(&g.lock);
	assert_int_equal(g.calls, 500);
	assert_int_equal(g.errors, 0);
	assert_int_equal(g.recv_rc, -EBUSY); /* from inside the handler, too */
	assert_false(pthread_equal(g.self, pthread_self()));
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(shmrpc_stop(r), 0);
	assert_int_equal(shmrpc_stop(r), -EALREADY);
	/* ours again: nothing left over, then a message comes to recv */
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	send_seq(s, "r", 500, 1);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 1000), 4);
	assert_int_equal(g.calls, 500);
	assert_int_equal(th_stats(r).msgs_recv, 501);
	shmrpc_close(s);
	shmrpc_close(r);
	bg_fini(&g);
}

static void test_thread_stop_prompt_when_idle_and_restart(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct bg g, g2;
	int threads;
	double t0, dt;
	uint64_t sleeps;

	assert_non_null(r);
	assert_non_null(s);
	bg_init(&g);
	bg_init(&g2);
	threads = th_count_threads();
	assert_int_equal(shmrpc_start(r, bg_handler, &g), 0);
	assert_int_equal(th_count_threads(), threads + 1);
	send_seq(s, "r", 0, 1);
	assert_true(bg_wait(&g, 1, 5000));
	/* the thread has nothing to do: it goes to sleep in the kernel */
	pthread_mutex_lock(&g.lock);
	sleeps = g.sleeps_at;
	pthread_mutex_unlock(&g.lock);
	assert_true(th_wait_sleeps_above(r, sleeps, 5000));
	th_sleep_ms(20);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_stop(r), 0);
	dt = th_now_ms() - t0;
	print_message("stop of an idle receiving thread took %.2f ms\n", dt);
	assert_true(dt < TH_PROMPT_MS);
	assert_true(th_wait_threads(threads, 2000)); /* it ended */

	/* again, with another handler that tries to stop itself */
	g2.try_stop = true;
	assert_int_equal(shmrpc_start(r, bg_handler, &g2), 0);
	send_seq(s, "r", 0, 3);
	assert_true(bg_wait(&g2, 3, 5000));
	pthread_mutex_lock(&g2.lock);
	assert_int_equal(g2.errors, 0);
	assert_int_equal(g2.stop_rc, -EDEADLK);
	pthread_mutex_unlock(&g2.lock);
	assert_int_equal(g.calls, 1); /* the old handler is out of the picture */
	assert_int_equal(shmrpc_stop(r), 0);
	assert_true(th_wait_threads(threads, 2000));
	shmrpc_close(s);
	shmrpc_close(r);
	bg_fini(&g);
	bg_fini(&g2);
}

static void test_thread_start_while_recv_blocks_is_ebusy(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct th_blocked_recv b = { r, 1 };
	pthread_t t;
	uint64_t sleeps;

	assert_non_null(r);
	assert_non_null(s);
	sleeps = th_stats(r).sleeps;
	assert_int_equal(pthread_create(&t, NULL, th_blocked_recv_thread, &b), 0);
	assert_true(th_wait_sleeps_above(r, sleeps, 5000));
	assert_int_equal(shmrpc_start(r, th_noop_handler, NULL), -EBUSY);
	assert_int_equal(shmrpc_stop(r), -EALREADY);
	assert_int_equal(shmrpc_send(s, "r", "wake", 4, 0), 0);
	pthread_join(t, NULL);
	assert_int_equal(b.rc, 4);
	shmrpc_close(s);
	shmrpc_close(r);
}

struct self_stop {
	struct th_gate in_handler, stopping;
	int rc;
};

static void self_stop_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			      void *arg)
{
	struct self_stop *x = arg;

	(void)from;
	(void)data;
	(void)len;
	th_gate_open(&x->in_handler);
	if (th_gate_wait(&x->stopping, 5000))
		return;
	th_sleep_ms(50); /* the application is inside shmrpc_stop by now */
	x->rc = shmrpc_stop(n);
}

/* Child: the application stops the thread while its handler calls
 * shmrpc_stop too. A deadlock shows as the child not finishing. */
static int self_stop_child(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct self_stop x = { .rc = 1 };

	CHILD_CHECK(r && s);
	th_gate_init(&x.in_handler);
	th_gate_init(&x.stopping);
	CHILD_CHECK_RC(shmrpc_start(r, self_stop_handler, &x), 0);
	CHILD_CHECK_RC(shmrpc_send(s, "r", "x", 1, 0), 0);
	CHILD_CHECK_RC(th_gate_wait(&x.in_handler, 5000), 0);
	th_gate_open(&x.stopping);
	CHILD_CHECK_RC(shmrpc_stop(r), 0);
	CHILD_CHECK_RC(x.rc, -EDEADLK);
	shmrpc_close(s);
	shmrpc_close(r);
	th_gate_close(&x.in_handler);
	th_gate_close(&x.stopping);
	return 0;
}

static void test_thread_handler_stop_while_stopping_is_edeadlk(void **state)
{
	struct th_dom *d = *state;
	pid_t pid = th_fork(self_stop_child, d);

	assert_int_equal(th_wait(pid, 10000), 0);
}

static void test_thread_close_stops_it(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct bg g;
	int threads;
	double t0;
	uint64_t sleeps;

	assert_non_null(r);
	assert_non_null(s);
	bg_init(&g);
	threads = th_count_threads();
	assert_int_equal(shmrpc_start(r, bg_handler, &g), 0);
	send_seq(s, "r", 0, 10);
	assert_true(bg_wait(&g, 10, 5000));
	pthread_mutex_lock(&g.lock);
	sleeps = g.sleeps_at;
	pthread_mutex_unlock(&g.lock);
	assert_true(th_wait_sleeps_above(r, sleeps, 5000));
	t0 = th_now_ms();
	shmrpc_close(r);
	assert_true(th_now_ms() - t0 < TH_PROMPT_MS);
	assert_true(th_wait_threads(threads, 2000));
	assert_int_equal(g.calls, 10);
	assert_int_equal(g.errors, 0);
	assert_int_equal(shmrpc_send(s, "r", "late", 4, 0), -EPIPE);
	shmrpc_close(s);
	bg_fini(&g);
}

/* ============================================================= 8. threads */

#define MT_THREADS 4
#define MT_N 20000

/* Message of sender thread @tid: {tid, seq} then a payload of a length and
 * content that both depend on (tid, seq). */
static size_t mt_make(uint8_t *buf, uint32_t tid, uint32_t seq)
{
	size_t extra = (seq * 13 + tid) % 120;

	memcpy(buf, &tid, 4);
	memcpy(buf + 4, &seq, 4);
	th_fill(buf + 8, extra, 100 + tid, seq);
	return 8 + extra;
}

struct mt_rx {
	struct th_dom *d;
	char name[16];
	uint32_t ring;
	int tids;     /* senders' tid values 0..tids-1 */
	long per_tid; /* messages each */
	struct th_gate ready;
};

/* Child: receive tids * per_tid messages, each tid's in order, intact. */
static int mt_receiver(void *arg)
{
	struct mt_rx *x = arg;
	struct shmrpc_opts o = x->d->opts;
	char from[SHMRPC_NAME_MAX + 1];
	uint32_t next[MT_THREADS] = { 0 }, tid, seq;
	struct shmrpc_node *n;
	uint8_t buf[256], want[256];
	long i;
	int rc;

	o.ring_bytes = x->ring;
	CHILD_CHECK_RC(shmrpc_open(x->name, &o, &n), 0);
	th_gate_open(&x->ready);
	for (i = 0; i < x->tids * x->per_tid; i++) {
		rc = shmrpc_recv(n, buf, sizeof(buf), from, 20000);
		CHILD_CHECK(rc >= 8);
		memcpy(&tid, buf, 4);
		memcpy(&seq, buf + 4, 4);
		CHILD_CHECK((int)tid < x->tids);
		CHILD_CHECK_RC(seq, next[tid]);
		CHILD_CHECK_RC(rc, mt_make(want, tid, seq));
		CHILD_CHECK(!memcmp(buf, want, (size_t)rc));
		CHILD_CHECK(!strcmp(from, "tx"));
		next[tid]++;
	}
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 100), -ETIMEDOUT);
	shmrpc_close(n);
	return 0;
}

struct mt_tx {
	struct shmrpc_node *n;
	const char *to; /* NULL: broadcast */
	uint32_t tid;
	long count;
	int expect; /* broadcast: receivers */
	long failures;
	int first_rc;
};

static void *mt_sender(void *arg)
{
	struct mt_tx *t = arg;
	uint8_t buf[256];
	long i;
	int rc;

	for (i = 0; i < t->count; i++) {
		size_t len = mt_make(buf, t->tid, (uint32_t)i);

		if (t->to)
			rc = shmrpc_send(t->n, t->to, buf, len, 20000);
		else
			rc = shmrpc_broadcast(t->n, buf, len, 20000) == t->expect ? 0 : -1;
		if (rc && !t->failures++)
			t->first_rc = rc;
	}
	return NULL;
}

static void mt_start_receivers(struct th_dom *d, struct mt_rx *rx, pid_t *pid, int nrx, int tids,
			       long per_tid, uint32_t ring, const char *prefix)
{
	int i;

	for (i = 0; i < nrx; i++) {
		rx[i].d = d;
		snprintf(rx[i].name, sizeof(rx[i].name), "%s%d", prefix, i);
		rx[i].ring = ring;
		rx[i].tids = tids;
		rx[i].per_tid = per_tid;
		th_gate_init(&rx[i].ready);
		pid[i] = th_fork(mt_receiver, &rx[i]);
	}
	for (i = 0; i < nrx; i++)
		assert_int_equal(th_gate_wait(&rx[i].ready, 10000), 0);
}

static void mt_run(struct mt_tx *t, int nthreads)
{
	pthread_t th[MT_THREADS];
	int i;

	for (i = 0; i < nthreads; i++)
		assert_int_equal(pthread_create(&th[i], NULL, mt_sender, &t[i]), 0);
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < nthreads; i++) {
		if (t[i].failures)
			fprintf(stderr, "thread %d: %ld failures, first rc %d\n", i, t[i].failures,
				t[i].first_rc);
		assert_int_equal(t[i].failures, 0);
	}
}

static void test_threads_four_senders_one_receiver(void **state)
{
	struct th_dom *d = *state;
	struct mt_rx rx[1];
	struct mt_tx t[MT_THREADS];
	struct shmrpc_node *tx;
	struct shmrpc_stats st;
	pid_t pid[1];
	int i;

	mt_start_receivers(d, rx, pid, 1, MT_THREADS, MT_N, 16384, "rx");
	tx = th_open(d, "tx");
	assert_non_null(tx);
	for (i = 0; i < MT_THREADS; i++)
		t[i] = (struct mt_tx){ tx, "rx0", (uint32_t)i, MT_N, 0, 0, 0 };
	mt_run(t, MT_THREADS);
	assert_int_equal(th_wait(pid[0], 30000), 0);
	st = th_stats(tx);
	assert_int_equal(st.msgs_sent, MT_THREADS * MT_N);
	assert_int_equal(st.connects, 1); /* one connection, shared */
	assert_true(st.send_full > 0);	  /* the small ring pushed back */
	th_gate_close(&rx[0].ready);
	shmrpc_close(tx);
}

static void test_threads_four_senders_four_receivers(void **state)
{
	struct th_dom *d = *state;
	struct mt_rx rx[MT_THREADS];
	struct mt_tx t[MT_THREADS];
	struct shmrpc_node *tx;
	struct shmrpc_stats st;
	pid_t pid[MT_THREADS];
	int i;

	mt_start_receivers(d, rx, pid, MT_THREADS, 1, MT_N, 16384, "rx");
	tx = th_open(d, "tx");
	assert_non_null(tx);
	for (i = 0; i < MT_THREADS; i++)
		t[i] = (struct mt_tx){ tx, rx[i].name, 0, MT_N, 0, 0, 0 };
	mt_run(t, MT_THREADS);
	for (i = 0; i < MT_THREADS; i++) {
		assert_int_equal(th_wait(pid[i], 30000), 0);
		th_gate_close(&rx[i].ready);
	}
	st = th_stats(tx);
	assert_int_equal(st.msgs_sent, MT_THREADS * MT_N);
	assert_int_equal(st.connects, MT_THREADS);
	shmrpc_close(tx);
}

#define BC_THREADS 2
#define BC_RX 3
#define BC_N 5000

static void test_threads_broadcast_from_two_threads(void **state)
{
	struct th_dom *d = *state;
	struct mt_rx rx[BC_RX];
	struct mt_tx t[BC_THREADS];
	struct shmrpc_node *tx;
	pid_t pid[BC_RX];
	int i;

	mt_start_receivers(d, rx, pid, BC_RX, BC_THREADS, BC_N, 16384, "b");
	tx = th_open(d, "tx");
	assert_non_null(tx);
	for (i = 0; i < BC_THREADS; i++)
		t[i] = (struct mt_tx){ tx, NULL, (uint32_t)i, BC_N, BC_RX, 0, 0 };
	mt_run(t, BC_THREADS);
	for (i = 0; i < BC_RX; i++) {
		assert_int_equal(th_wait(pid[i], 30000), 0);
		th_gate_close(&rx[i].ready);
	}
	assert_int_equal(th_stats(tx).msgs_sent, BC_THREADS * BC_N * BC_RX);
	shmrpc_close(tx);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_thread_runs_handler_and_owns_receiving),
		T(test_thread_stop_prompt_when_idle_and_restart),
		T(test_thread_start_while_recv_blocks_is_ebusy),
		T(test_thread_handler_stop_while_stopping_is_edeadlk),
		T(test_thread_close_stops_it),
		T(test_threads_four_senders_one_receiver),
		T(test_threads_four_senders_four_receivers),
		T(test_threads_broadcast_from_two_threads),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
