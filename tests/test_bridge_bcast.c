// SPDX-License-Identifier: MIT
/*
 * Broadcasts across hosts, published once (tools/bridge/bcast.c): a
 * broadcast of a node of host a reaches host b's nodes in one NATS message
 * that b's bridge fans out, in order with what the sender sent each of
 * them alone, with copies the library skipped (a full ring) left out and
 * copies that came late sent on their own. Two hosts (mount namespaces,
 * each its own /dev/shm and bridge) on a real nats-server; root only.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness_bridge.h"

#define T_MS 10000

/* Message @s: its number, then bytes th_check knows, 8 + len_of(s) long. */
static size_t msg_make(char *buf, uint64_t s, uint32_t max)
{
	size_t len = tb_len_of(s, max);

	memcpy(buf, &s, 8);
	th_fill(buf + 8, len, 7, s);
	return 8 + len;
}

static int msg_ok(const char *buf, int len, uint64_t s, uint32_t max)
{
	uint64_t got = UINT64_MAX;

	if (len >= 8)
		memcpy(&got, buf, 8);
	if (len >= 8 && (size_t)len == 8 + tb_len_of(s, max) && got == s &&
	    th_check(buf + 8, (size_t)len - 8, 7, s) == 0)
		return 1;
	fprintf(stderr, "message %llu expected (%zu bytes), got %d bytes, number %llu\n",
		(unsigned long long)s, 8 + (size_t)tb_len_of(s, max), len, (unsigned long long)got);
	return 0;
}

static struct shmrpc_node *open_ring(const char *domain, const char *name, uint32_t ring)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain, .ring_bytes = ring };
	struct shmrpc_node *n = NULL;

	return shmrpc_open(name, &o, &n) ? NULL : n;
}

#define LEN_MAX 1024 /* msg_make's @max, in every case */

/* A receiver's next message: tx's message @s (max: msg_make's). */
static void rx_expect(struct shmrpc_node *n, uint64_t s, uint32_t max)
{
	static char buf[8 + LEN_MAX];
	char from[SHMRPC_NAME_MAX + 1];
	int len = shmrpc_recv(n, buf, sizeof(buf), from, T_MS);

	CHILD_CHECK(!strcmp(from, "tx") && msg_ok(buf, len, s, max));
}

/* A receiver that had all it expects: nothing more comes (each once). */
static void rx_done(struct shmrpc_node *n, struct th_gate *done)
{
	char buf[8];

	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 300), -ETIMEDOUT);
	th_gate_open(done);
	shmrpc_close(n);
}

/* The receivers of host b, and the sender's wait for them (host a). */
static const char *const names[3] = { "r1", "r2", "r3" };

static int wait_receivers(struct shmrpc_node *n)
{
	int i, rc = 0;

	for (i = 0; i < 3 && !rc; i++)
		rc = shmrpc_wait_node(n, names[i], T_MS);
	return rc;
}

/* ------------------------------------------------------------ once */

#define S1 4000 /* messages: every fourth a broadcast, the others to r1..r3 */
#define MAX1 1024

struct rx_arg {
	const char *domain, *name;
	int idx;	       /* gets s % 4 == idx alone, and every broadcast */
	struct th_gate *done;  /* opened once it has everything */
	struct th_gate *go;    /* NULL, or wait for it before reading */
	const int *ret;	       /* NULL, or the broadcasts' returns: only ret == want */
	int want, n;	       /* messages to expect (slow case: broadcasts) */
	struct th_gate *ready; /* opened once it found the sender (kill case) */
};

static int once_rx(void *arg)
{
	struct rx_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, a->name);
	int s;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "tx", T_MS), 0);
	for (s = 0; s < S1; s++)
		if (s % 4 == a->idx || s % 4 == 3)
			rx_expect(n, (uint64_t)s, MAX1);
	rx_done(n, a->done);
	return 0;
}

struct tx_arg {
	const char *domain;
	int targets; /* what a broadcast returns */
	struct th_gate *done;
	int receivers;
};

static int once_tx(void *arg)
{
	struct tx_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, "tx");
	static char buf[8 + MAX1];
	size_t len;
	int s;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(wait_receivers(n), 0);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "z", T_MS), 0);
	for (s = 0; s < S1; s++) {
		len = msg_make(buf, (uint64_t)s, MAX1);
		if (s % 4 == 3)
			CHILD_CHECK_RC(shmrpc_broadcast(n, buf, len, T_MS), a->targets);
		else
			CHILD_CHECK_RC(shmrpc_send(n, names[s % 4], buf, len, T_MS), 0);
	}
	for (s = 0; s < a->receivers; s++)
		CHILD_CHECK_RC(th_gate_wait(a->done, 30000), 0);
	shmrpc_close(n);
	return 0;
}

/* Nothing lost, dropped or malformed on either host (the receivers have
 * closed: their rows are in the totals of nodes gone). */
static void no_loss(struct tb_case *t)
{
	struct tb_bcast a, b;

	assert_int_equal(tb_status_bcast(&t->a, t->dom.name, &a), 0);
	assert_int_equal(tb_status_bcast(&t->b, t->dom.name, &b), 0);
	assert_int_equal(a.gone_lost + a.gone_dropped + a.bad_msgs, 0);
	assert_int_equal(b.gone_lost + b.gone_dropped + b.bad_msgs, 0);
	assert_false(tb_log_has(&t->a, "lost domain"));
	assert_false(tb_log_has(&t->b, "lost domain"));
	assert_false(tb_log_has(&t->a, "drop domain"));
	assert_false(tb_log_has(&t->b, "drop domain"));
}

/*
 * Every broadcast of tx (host a) to r1, r2, r3 (host b) goes in one BCAST,
 * interleaved with messages to each of them alone: each receiver sees its
 * messages and the broadcasts in tx's order, once; z (host a) sees the
 * broadcasts. The barrier may wait 2 s, so that a stalled machine cannot
 * split a broadcast: the count of BCASTs is exact.
 */
static void test_bridge_bcast_once(void **state)
{
	struct tb_case *t = *state;
	struct th_gate done;
	struct rx_arg r[4];
	struct tx_arg x = { t->dom.name, 5, &done, 4 };
	struct tb_bcast bc;
	pid_t p[5];
	int i;

	tb_hosts_up(t, NULL, NULL, "--bcast-wait-us 2000000");
	th_gate_init(&done);
	for (i = 0; i < 4; i++) {
		r[i] = (struct rx_arg){ .domain = t->dom.name,
					.name = i < 3 ? names[i] : "z",
					.idx = i < 3 ? i : -1,
					.done = &done };
		p[i] = tb_run(i < 3 ? &t->b : &t->a, once_rx, &r[i]);
	}
	p[4] = tb_run(&t->a, once_tx, &x);
	for (i = 0; i < 5; i++)
		assert_int_equal(th_wait(p[i], 60000), 0);
	th_gate_close(&done);
	tb_sleep_ms(400); /* a status update */
	assert_int_equal(tb_status_bcast(&t->a, t->dom.name, &bc), 0);
	print_message("a: %llu broadcasts published once for %llu copies, %llu copies alone\n",
		      (unsigned long long)bc.bcasts, (unsigned long long)bc.sent,
		      (unsigned long long)bc.split);
	assert_int_equal(bc.bcasts, S1 / 4);
	assert_int_equal(bc.sent, 3 * (S1 / 4));
	assert_int_equal(bc.split, 0);
	no_loss(t);
}

/* ------------------------------------------------------------ slow */

#define NB 400 /* broadcasts */
#define MAX2 1000
_Static_assert(MAX1 <= LEN_MAX && MAX2 <= LEN_MAX, "rx_expect's buffer");

static int slow_rx(void *arg)
{
	struct rx_arg *a = arg;
	struct shmrpc_node *n = a->go ? open_ring(a->domain, a->name, 8192) :
					tb_open(a->domain, a->name);
	int s;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "tx", T_MS), 0);
	if (a->go) /* r3: reads only once tx is done */
		CHILD_CHECK_RC(th_gate_wait(a->go, 60000), 0);
	for (s = 0; s < NB; s++)
		/* not those the library skipped r3 for (its ring stayed full) */
		if (!a->ret || a->ret[s] == a->want)
			rx_expect(n, (uint64_t)s, MAX2);
	rx_done(n, a->done);
	return 0;
}

struct slow_tx_arg {
	const char *domain;
	int *ret;
	struct th_gate *go, *done;
};

static int slow_tx(void *arg)
{
	struct slow_tx_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, "tx");
	static char buf[8 + MAX2];
	int s;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(wait_receivers(n), 0);
	for (s = 0; s < NB; s++) {
		/* 5 ms: a copy to r3's full ring is skipped, as locally */
		a->ret[s] = shmrpc_broadcast(n, buf, msg_make(buf, (uint64_t)s, MAX2), 5);
		/* the control node, r1 and r2 always; r3 while there is room */
		CHILD_CHECK(a->ret[s] == 3 || a->ret[s] == 4);
	}
	th_gate_open(a->go);
	for (s = 0; s < 3; s++)
		CHILD_CHECK_RC(th_gate_wait(a->done, 60000), 0);
	shmrpc_close(n);
	return 0;
}

/*
 * r3 does not read until tx is done: its ring, its stream's credits (a
 * window of 16) and its proxy's ring fill, and the library skips r3 from
 * then on. The barriers of those broadcasts wait for r3's copy for 3 ms,
 * then go with r1's and r2's; r3's copies that were in the pipeline go on
 * its own stream when credits come back. r1 and r2 get every broadcast in
 * order, r3 exactly those the library gave it (their return counts it),
 * in order; every copy is published once, in a BCAST or alone.
 */
static void test_bridge_bcast_slow(void **state)
{
	struct tb_case *t = *state;
	struct th_gate go, done;
	int *ret = mmap(NULL, NB * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	struct slow_tx_arg x = { t->dom.name, ret, &go, &done };
	struct rx_arg r[3];
	struct tb_bcast bc;
	uint64_t fours = 0;
	pid_t p[4];
	int i;

	assert_true(ret != MAP_FAILED);
	tb_hosts_up(t, NULL, NULL, "--bcast-wait-us 3000 --window 16 --window-bytes 65536");
	th_gate_init(&go);
	th_gate_init(&done);
	for (i = 0; i < 3; i++) {
		r[i] = (struct rx_arg){ .domain = t->dom.name, .name = names[i], .done = &done };
		if (i == 2) {
			r[i].go = &go;
			r[i].ret = ret;
			r[i].want = 4;
		}
		p[i] = tb_run(&t->b, slow_rx, &r[i]);
	}
	p[3] = tb_run(&t->a, slow_tx, &x);
	for (i = 0; i < 4; i++)
		assert_int_equal(th_wait(p[i], 90000), 0);
	th_gate_close(&go);
	th_gate_close(&done);
	for (i = 0; i < NB; i++)
		fours += ret[i] == 4;
	tb_sleep_ms(400);
	assert_int_equal(tb_status_bcast(&t->a, t->dom.name, &bc), 0);
	print_message("a: r3 was given %llu of %d broadcasts; %llu published once for %llu "
		      "copies, %llu copies alone\n",
		      (unsigned long long)fours, NB, (unsigned long long)bc.bcasts,
		      (unsigned long long)bc.sent, (unsigned long long)bc.split);
	assert_true(fours < NB); /* the library did skip r3 */
	assert_true(bc.bcasts > 0);
	assert_int_equal(bc.sent + bc.split, 2 * NB + fours);
	no_loss(t);
	munmap(ret, NB * sizeof(int));
}

/* ------------------------------------------------------------ a target dies */

#define NK 3000

static int kill_rx(void *arg)
{
	struct rx_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, a->name);
	int s;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "tx", T_MS), 0);
	th_gate_open(a->ready);
	for (s = 0; s < a->n; s++)
		rx_expect(n, (uint64_t)s, MAX2);
	if (a->n < NK) {
		th_gate_open(a->go);
		for (;;)
			pause(); /* r3: killed here */
	}
	rx_done(n, a->done);
	return 0;
}

static int kill_tx(void *arg)
{
	struct slow_tx_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, "tx");
	static char buf[8 + MAX2];
	int s;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(wait_receivers(n), 0);
	CHILD_CHECK_RC(th_gate_wait(a->go, T_MS), 0); /* r1, r2, r3 found tx */
	CHILD_CHECK_RC(th_gate_wait(a->go, T_MS), 0);
	CHILD_CHECK_RC(th_gate_wait(a->go, T_MS), 0);
	for (s = 0; s < NK; s++) {
		a->ret[s] = shmrpc_broadcast(n, buf, msg_make(buf, (uint64_t)s, MAX2), T_MS);
		if (s % 64 == 0)
			tb_sleep_ms(1); /* a few seconds of traffic, not one burst */
	}
	for (s = 0; s < 2; s++)
		CHILD_CHECK_RC(th_gate_wait(a->done, 60000), 0);
	shmrpc_close(n);
	return 0;
}

/*
 * r3 is killed mid-traffic (after 500 broadcasts): its proxy on host a
 * closes, maybe while held at a barrier; r1 and r2 go on getting every
 * broadcast in order, and the broadcasts count r3 until its death is
 * known, then never again.
 */
static void test_bridge_bcast_target_dies(void **state)
{
	struct tb_case *t = *state;
	struct th_gate ready, done, got;
	int *ret = mmap(NULL, NK * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	struct slow_tx_arg x = { t->dom.name, ret, &ready, &done };
	struct rx_arg r[3];
	pid_t p[4];
	int i, fell = -1;

	assert_true(ret != MAP_FAILED);
	tb_hosts_up(t, NULL, NULL, "");
	th_gate_init(&ready);
	th_gate_init(&done);
	th_gate_init(&got);
	for (i = 0; i < 3; i++) {
		r[i] = (struct rx_arg){ .domain = t->dom.name,
					.name = names[i],
					.done = &done,
					.ready = &ready,
					.go = &got,
					.n = i == 2 ? 500 : NK };
		p[i] = tb_run(&t->b, kill_rx, &r[i]);
	}
	p[3] = tb_run(&t->a, kill_tx, &x);
	assert_int_equal(th_gate_wait(&got, 60000), 0); /* r3 got its 500 */
	kill(p[2], SIGKILL);
	assert_int_equal(th_wait(p[2], T_MS), 128 + SIGKILL);
	for (i = 0; i < 4; i++)
		if (i != 2)
			assert_int_equal(th_wait(p[i], 90000), 0);
	for (i = 0; i < NK; i++) {
		assert_true(ret[i] == 3 || ret[i] == 4);
		if (ret[i] == 3 && fell < 0)
			fell = i;
		if (fell >= 0)
			assert_int_equal(ret[i], 3); /* never counted again */
	}
	print_message("r3's death known to tx's broadcasts from broadcast %d on\n", fell);
	th_gate_close(&ready);
	th_gate_close(&done);
	th_gate_close(&got);
	munmap(ret, NK * sizeof(int));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bridge_bcast_once, tb_case_setup,
						tb_case_teardown),
		cmocka_unit_test_setup_teardown(test_bridge_bcast_slow, tb_case_setup,
						tb_case_teardown),
		cmocka_unit_test_setup_teardown(test_bridge_bcast_target_dies, tb_case_setup,
						tb_case_teardown),
	};

	return cmocka_run_group_tests(tests, tb_group_setup, tb_group_teardown);
}
