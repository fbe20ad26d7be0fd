// SPDX-License-Identifier: MIT
/*
 * Messaging between real processes: ordering and integrity over ring
 * wraps, size limits, back-pressure, fan-in, broadcast, many processes,
 * memory, idle CPU and lost-wakeup stress.
 */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

/* ------------------------------------------------ 1,000,000 random sizes */

#define BIG_N 1000000
#define BIG_RING (16 * 1024) /* small ring: wraps constantly, max 8184 B */

struct big {
	struct th_dom *d;
	long n;
};

static int big_receiver(void *arg)
{
	struct big *b = arg;
	struct shmrpc_opts o = b->d->opts;
	struct shmrpc_node *n;
	char from[SHMRPC_NAME_MAX + 1];
	static uint8_t buf[BIG_RING];
	uint64_t rnd = 42;
	long i;
	int max;

	o.ring_bytes = BIG_RING;
	CHILD_CHECK(shmrpc_open("rx", &o, &n) == 0);
	max = shmrpc_max_size(n, NULL);
	CHILD_CHECK(max == BIG_RING / 2 - 8);
	for (i = 0; i < b->n; i++) {
		size_t want = 1 + th_rand(&rnd) % (uint64_t)max;
		int rc = shmrpc_recv(n, buf, sizeof(buf), from, 10000);

		if (rc != (int)want || th_check(buf, want, 1, (uint64_t)i) || strcmp(from, "tx")) {
			fprintf(stderr, "message %ld: rc %d, want %zu\n", i, rc, want);
			_exit(1);
		}
	}
	/* nothing extra arrived */
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(n);
	return 0;
}

static void test_stream_million_random_sizes(void **state)
{
	struct th_dom *d = *state;
	struct big b = { d, BIG_N };
	static uint8_t buf[BIG_RING];
	struct shmrpc_node *tx = th_open(d, "tx");
	uint64_t rnd = 42;
	struct shmrpc_stats st;
	pid_t pid;
	long i;
	int max;

	assert_non_null(tx);
	pid = th_fork(big_receiver, &b);
	assert_int_equal(shmrpc_wait_node(tx, "rx", 10000), 0);
	max = shmrpc_max_size(tx, "rx");
	assert_int_equal(max, BIG_RING / 2 - 8);
	for (i = 0; i < b.n; i++) {
		size_t len = 1 + th_rand(&rnd) % (uint64_t)max;

		th_fill(buf, len, 1, (uint64_t)i);
		assert_int_equal(shmrpc_send(tx, "rx", buf, len, 10000), 0);
	}
	assert_int_equal(th_wait(pid, 60000), 0);
	assert_int_equal(shmrpc_stats(tx, &st), 0);
	assert_int_equal(st.msgs_sent, BIG_N);
	shmrpc_close(tx);
}

/* ------------------------------------------------------------ -EMSGSIZE */

static void test_send_too_big_is_emsgsize(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	static uint8_t buf[8192];
	int max;

	o.ring_bytes = 8192;
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	a = th_open(d, "a");
	assert_non_null(a);
	max = shmrpc_max_size(a, "b");
	assert_int_equal(max, 4096 - 8);
	assert_int_equal(shmrpc_send(a, "b", buf, (size_t)max + 1, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_send(a, "b", buf, SIZE_MAX, 0), -EMSGSIZE);
	th_fill(buf, (size_t)max, 7, 7);
	assert_int_equal(shmrpc_send(a, "b", buf, (size_t)max, 0), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), max);
	assert_int_equal(th_check(buf, (size_t)max, 7, 7), 0);
	/* zero-length messages are messages */
	assert_int_equal(shmrpc_send(a, "b", NULL, 0, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 0);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ---------------------------------------------------- full ring, blocking */

struct full {
	struct th_dom *d;
	struct th_gate filled, drained;
	int count;
};

/* Fill b's ring from a, check -EAGAIN and -ETIMEDOUT, then block. */
static int full_sender(void *arg)
{
	struct full *f = arg;
	struct shmrpc_node *a = th_open(f->d, "a");
	struct shmrpc_stats st;
	char msg[1000];
	int i, rc;

	CHILD_CHECK(a);
	CHILD_CHECK(shmrpc_wait_node(a, "b", 5000) == 0);
	for (i = 0;; i++) {
		th_fill(msg, sizeof(msg), 3, (uint64_t)i);
		rc = shmrpc_send(a, "b", msg, sizeof(msg), 0);
		if (rc)
			break;
	}
	CHILD_CHECK_RC(rc, -EAGAIN);
	CHILD_CHECK(i > 8);
	CHILD_CHECK_RC(shmrpc_send(a, "b", msg, sizeof(msg), 50), -ETIMEDOUT);
	th_gate_open(&f->filled);
	/* blocks until the receiver drains */
	th_fill(msg, sizeof(msg), 3, (uint64_t)i);
	CHILD_CHECK_RC(shmrpc_send(a, "b", msg, sizeof(msg), -1), 0);
	CHILD_CHECK_RC(shmrpc_send(a, "b", NULL, 0, -1), 0); /* the end */
	CHILD_CHECK(shmrpc_stats(a, &st) == 0);
	CHILD_CHECK(st.send_full >= 3 && st.sleeps >= 1);
	CHILD_CHECK(th_gate_wait(&f->drained, 10000) == 0);
	shmrpc_close(a);
	return 0;
}

static void test_full_ring_blocks_until_drained(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct full f = { .d = d };
	struct shmrpc_node *b;
	char buf[1000];
	int i, rc;
	pid_t pid;

	th_gate_init(&f.filled);
	th_gate_init(&f.drained);
	o.ring_bytes = 16384;
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	pid = th_fork(full_sender, &f);
	assert_int_equal(th_gate_wait(&f.filled, 10000), 0);
	/* Drain only once the sender sleeps in its blocking send (it does
	 * nothing else after the gate): drained earlier, its send would find
	 * room and never block. */
	assert_int_equal(th_wait_asleep(pid, 10000), 0);
	for (i = 0;; i++) {
		rc = shmrpc_recv(b, buf, sizeof(buf), NULL, 10000);
		if (rc == 0)
			break;
		assert_int_equal(rc, sizeof(buf));
		assert_int_equal(th_check(buf, sizeof(buf), 3, (uint64_t)i), 0);
	}
	assert_int_equal(i, 17); /* 16 fit in 16 KiB, then the blocked one */
	th_gate_open(&f.drained);
	assert_int_equal(th_wait(pid, 10000), 0);
	th_gate_close(&f.filled);
	th_gate_close(&f.drained);
	shmrpc_close(b);
}

/* ------------------------------------------------------- 8 senders -> 1 */

#define FANIN 8
#define FANIN_N 20000

struct fan {
	struct th_dom *d;
	int id;
};

static int fan_sender(void *arg)
{
	struct fan *f = arg;
	char name[16];
	struct shmrpc_node *n;
	uint64_t msg[4];
	int i;

	snprintf(name, sizeof(name), "s%d", f->id);
	n = th_open(f->d, name);
	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "sink", 5000) == 0);
	for (i = 0; i < FANIN_N; i++) {
		msg[0] = (uint64_t)f->id;
		msg[1] = (uint64_t)i;
		msg[2] = msg[0] * 1000003 + msg[1];
		CHILD_CHECK_RC(shmrpc_send(n, "sink", msg, 8 * (2 + i % 3), 10000), 0);
	}
	shmrpc_close(n);
	return 0;
}

static void test_fan_in_keeps_per_sender_order(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *sink = th_open(d, "sink");
	struct fan f[FANIN];
	pid_t pid[FANIN];
	long next[FANIN] = { 0 }, total = 0;
	char from[SHMRPC_NAME_MAX + 1];
	uint64_t msg[4];
	int i, rc, id;

	assert_non_null(sink);
	for (i = 0; i < FANIN; i++) {
		f[i].d = d;
		f[i].id = i;
		pid[i] = th_fork(fan_sender, &f[i]);
	}
	while (total < (long)FANIN * FANIN_N) {
		rc = shmrpc_recv(sink, msg, sizeof(msg), from, 10000);
		assert_true(rc >= 16);
		id = (int)msg[0];
		assert_true(id >= 0 && id < FANIN);
		assert_int_equal(from[0], 's');
		assert_int_equal(atoi(from + 1), id);
		assert_int_equal(msg[1], (uint64_t)next[id]);
		assert_int_equal(rc, 8 * (2 + next[id] % 3));
		if (rc >= 24)
			assert_int_equal(msg[2], msg[0] * 1000003 + msg[1]);
		next[id]++;
		total++;
	}
	for (i = 0; i < FANIN; i++)
		assert_int_equal(th_wait(pid[i], 20000), 0);
	assert_int_equal(shmrpc_recv(sink, msg, sizeof(msg), NULL, 0), -EAGAIN);
	shmrpc_close(sink);
}

/* ------------------------------------------------- broadcast to 8 nodes */

#define BC_RX 8
#define BC_N 2000

struct bc {
	struct th_dom *d;
	int id;
	struct th_gate ready;
};

static int bc_receiver(void *arg)
{
	struct bc *b = arg;
	char name[16], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n;
	uint64_t msg[2];
	int i;

	snprintf(name, sizeof(name), "r%d", b->id);
	n = th_open(b->d, name);
	CHILD_CHECK(n);
	th_gate_open(&b->ready);
	for (i = 0; i < BC_N; i++) {
		CHILD_CHECK_RC(shmrpc_recv(n, msg, sizeof(msg), from, 10000), sizeof(msg));
		CHILD_CHECK(!strcmp(from, "caster"));
		CHILD_CHECK_RC(msg[0], i);
		CHILD_CHECK_RC(msg[1], ~(uint64_t)i);
	}
	CHILD_CHECK_RC(shmrpc_recv(n, msg, sizeof(msg), NULL, 100), -ETIMEDOUT);
	shmrpc_close(n);
	return 0;
}

static void test_broadcast_exactly_once_each(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "caster");
	struct bc b[BC_RX];
	pid_t pid[BC_RX];
	uint64_t msg[2];
	int i;

	assert_non_null(c);
	assert_int_equal(shmrpc_broadcast(c, "x", 1, 0), 0); /* nobody else yet */
	for (i = 0; i < BC_RX; i++) {
		b[i].d = d;
		b[i].id = i;
		th_gate_init(&b[i].ready);
		pid[i] = th_fork(bc_receiver, &b[i]);
	}
	for (i = 0; i < BC_RX; i++)
		assert_int_equal(th_gate_wait(&b[i].ready, 10000), 0);
	for (i = 0; i < BC_N; i++) {
		msg[0] = (uint64_t)i;
		msg[1] = ~(uint64_t)i;
		assert_int_equal(shmrpc_broadcast(c, msg, sizeof(msg), 10000), BC_RX);
	}
	for (i = 0; i < BC_RX; i++) {
		assert_int_equal(th_wait(pid[i], 20000), 0);
		th_gate_close(&b[i].ready);
	}
	shmrpc_close(c);
}

/* ------------------------------------------- 64 processes in a ring */

#define RING_PROCS 64

struct rp {
	struct th_dom *d;
	int id;
};

static int ring_member(void *arg)
{
	struct rp *r = arg;
	char me[16], next[16], prev[16], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n;
	int round, v;

	snprintf(me, sizeof(me), "m%d", r->id);
	snprintf(next, sizeof(next), "m%d", (r->id + 1) % RING_PROCS);
	snprintf(prev, sizeof(prev), "m%d", (r->id + RING_PROCS - 1) % RING_PROCS);
	n = th_open(r->d, me);
	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, next, 20000) == 0);
	for (round = 0; round < 20; round++) {
		v = r->id * 100 + round;
		CHILD_CHECK_RC(shmrpc_send(n, next, &v, sizeof(v), 10000), 0);
		CHILD_CHECK_RC(shmrpc_recv(n, &v, sizeof(v), from, 20000), sizeof(v));
		CHILD_CHECK(!strcmp(from, prev));
		CHILD_CHECK_RC(v, ((r->id + RING_PROCS - 1) % RING_PROCS) * 100 + round);
	}
	/* do not leave before the neighbour got everything */
	CHILD_CHECK(shmrpc_send(n, next, "bye", 3, 10000) == 0);
	CHILD_CHECK_RC(shmrpc_recv(n, &v, sizeof(v), NULL, 20000), 3);
	shmrpc_close(n);
	return 0;
}

static void test_sixty_four_processes(void **state)
{
	struct th_dom *d = *state;
	struct rp r[RING_PROCS];
	pid_t pid[RING_PROCS];
	int i;

	for (i = 0; i < RING_PROCS; i++) {
		r[i].d = d;
		r[i].id = i;
		pid[i] = th_fork(ring_member, &r[i]);
	}
	for (i = 0; i < RING_PROCS; i++)
		assert_int_equal(th_wait(pid[i], 60000), 0);
	assert_int_equal(th_shm_count(d->name), 0);
}

/* -------------------------------------------------------------- memory */

static int echo(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n = th_open(d, "echo");
	char buf[4096], from[SHMRPC_NAME_MAX + 1];
	int rc;

	CHILD_CHECK(n);
	for (;;) {
		rc = shmrpc_recv(n, buf, sizeof(buf), from, 10000);
		CHILD_CHECK(rc >= 0);
		if (rc == 0)
			break;
		CHILD_CHECK_RC(shmrpc_send(n, from, buf, (size_t)rc, 10000), 0);
	}
	shmrpc_close(n);
	return 0;
}

static void test_two_node_ping_pong_memory(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a");
	char buf[64] = "ping";
	uint64_t bytes;
	pid_t pid;
	int i;

	assert_non_null(a);
	pid = th_fork(echo, d);
	assert_int_equal(shmrpc_wait_node(a, "echo", 5000), 0);
	for (i = 0; i < 20000; i++) {
		assert_int_equal(shmrpc_send(a, "echo", buf, sizeof(buf), 5000), 0);
		assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 5000), sizeof(buf));
	}
	bytes = th_shm_bytes(d->name);
	print_message("two nodes, default rings, after ping-pong: %lu KiB allocated in /dev/shm\n",
		      (unsigned long)(bytes / 1024));
	assert_true(bytes > 0 && bytes <= 1024 * 1024);
	assert_int_equal(shmrpc_send(a, "echo", NULL, 0, 5000), 0);
	assert_int_equal(th_wait(pid, 10000), 0);
	shmrpc_close(a);
}

/* ------------------------------------------------------------ idle CPU */

static int idle_receiver(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n = th_open(d, "idle");
	char buf[16];

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, -1), 4);
	shmrpc_close(n);
	return 0;
}

static void test_idle_receiver_sleeps(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a");
	struct timespec two = { 2, 0 };
	double before, used;
	pid_t pid;

	assert_non_null(a);
	pid = th_fork(idle_receiver, d);
	assert_int_equal(shmrpc_wait_node(a, "idle", 5000), 0);
	assert_int_equal(shmrpc_warmup(a), 1); /* its inbound ring exists */
	before = th_cpu_ms(pid);
	nanosleep(&two, NULL);
	used = th_cpu_ms(pid) - before;
	print_message("idle blocked receiver used %.1f ms CPU in 2 s\n", used);
	assert_true(before >= 0 && used < 20.0);
	assert_int_equal(shmrpc_send(a, "idle", "done", 4, 1000), 0);
	assert_int_equal(th_wait(pid, 5000), 0);
	shmrpc_close(a);
}

/* ------------------------------------------- burst/idle lost-wake stress */

#define STRESS_N 200000

static int stress_receiver(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n = th_open(d, "rx");
	uint8_t buf[2048];
	uint64_t rnd = 99;
	long i;

	CHILD_CHECK(n);
	for (i = 0; i < STRESS_N; i++) {
		size_t want = 1 + th_rand(&rnd) % sizeof(buf);
		/* the safety timeout is off (SHMRPC_SAFETY_MS, see main): a
		 * lost wakeup is a 20 s stall, i.e. a failure */
		int rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 20000);

		if (rc != (int)want || th_check(buf, want, 5, (uint64_t)i)) {
			fprintf(stderr, "stress message %ld: rc %d want %zu\n", i, rc, want);
			_exit(1);
		}
	}
	shmrpc_close(n);
	return 0;
}

static void test_burst_idle_no_lost_wakeup(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *tx = th_open(d, "tx");
	uint64_t rnd = 99, pat = 5;
	struct shmrpc_stats st;
	uint8_t buf[2048];
	pid_t pid;
	long i = 0;

	assert_non_null(tx);
	pid = th_fork(stress_receiver, d);
	assert_int_equal(shmrpc_wait_node(tx, "rx", 5000), 0);
	while (i < STRESS_N) {
		long burst = 1 + (long)(th_rand(&pat) % 300), k;
		struct timespec gap = { 0, (long)(th_rand(&pat) % 300) * 1000 };

		for (k = 0; k < burst && i < STRESS_N; k++, i++) {
			size_t len = 1 + th_rand(&rnd) % sizeof(buf);

			th_fill(buf, len, 5, (uint64_t)i);
			assert_int_equal(shmrpc_send(tx, "rx", buf, len, 20000), 0);
		}
		if (th_rand(&pat) % 4 == 0) /* idle now and then: the receiver sleeps */
			nanosleep(&gap, NULL);
	}
	assert_int_equal(th_wait(pid, 120000), 0);
	assert_int_equal(shmrpc_stats(tx, &st), 0);
	print_message("stress: %lu wakes sent, %lu skipped\n", (unsigned long)st.wakes_sent,
		      (unsigned long)st.wakes_skipped);
	assert_true(st.wakes_sent > 0 && st.wakes_skipped > 0);
	shmrpc_close(tx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_send_too_big_is_emsgsize, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_full_ring_blocks_until_drained, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_fan_in_keeps_per_sender_order, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_broadcast_exactly_once_each, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_sixty_four_processes, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_two_node_ping_pong_memory, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_idle_receiver_sleeps, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_burst_idle_no_lost_wakeup, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_stream_million_random_sizes, th_setup,
						th_teardown),
	};

	/* No safety net: every wait must end by a wake (see wake.c). */
	setenv("SHMRPC_SAFETY_MS", "3600000", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
