// SPDX-License-Identifier: MIT
/*
 * Request/response across hosts through shmrpc-bridge: a caller on host a
 * calls a server on host b exactly as it would a local one (each host a
 * mount namespace with its own /dev/shm and bridge, a real nats-server).
 * Root only; skipped without nats-server or the bridge, as test_bridge.
 *
 * Checked: replies of random sizes, order with the caller's messages,
 * streamed replies, the server's error, -EOPNOTSUPP from a node that does
 * not serve, the deadline, pipelined calls, a cancel that reaches the
 * server, -EPIPE to a pending call when the server is killed, and nothing
 * left in either /dev/shm (teardown).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness_bridge.h"

#define T_MS 10000
#define NCALLS 300
#define STREAM 50
#define PIPE 32

/* ------------------------------------------------------------ server */

/*
 * srv on host b. Requests start with a command byte:
 *   'e' echo the rest        'o' reply with how many messages came before
 *   's' N replies (stream)   'x' reply_error(-EADDRINUSE)
 *   'd' reply after 300 ms   'c' stream until cancelled, then tell the
 *   'k' die (SIGKILL)            caller with a message "cancelled"
 *   'n' reply with how many    'S' 4000-byte replies until one fails
 *       'c' streams ended by a cancel
 */
static int msgs_seen, cancels;

static void serve(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	const char *p = r->data;
	char buf[4200];
	uint32_t i, k;
	int rc;

	(void)arg;
	if (r->len < 1 || r->len > sizeof(buf)) {
		shmrpc_reply_error(n, r, -EINVAL);
		return;
	}
	memcpy(buf, p, r->len);
	switch (buf[0]) {
	case 'e':
		shmrpc_reply(n, r, buf + 1, r->len - 1, 0);
		break;
	case 'o':
		shmrpc_reply(n, r, &msgs_seen, sizeof(msgs_seen), 0);
		break;
	case 's':
		memcpy(&k, buf + 1, 4);
		for (i = 0; i < k; i++)
			if (shmrpc_reply(n, r, &i, 4, i + 1 < k ? SHMRPC_REPLY_MORE : 0))
				break;
		break;
	case 'x':
		shmrpc_reply_error(n, r, -EADDRINUSE);
		break;
	case 'd':
		tb_sleep_ms(300);
		shmrpc_reply(n, r, "late", 4, 0);
		break;
	case 'c':
		for (i = 0; i < 100000; i++) {
			if (shmrpc_req_cancelled(n, r) == 1) {
				cancels++;
				shmrpc_send(n, r->from, "cancelled", 9, 100);
				return;
			}
			rc = shmrpc_reply(n, r, &i, 4, SHMRPC_REPLY_MORE);
			if (rc == -EPIPE || rc == -ENOENT || rc == -ETIMEDOUT)
				break;
			tb_sleep_ms(2);
		}
		shmrpc_reply(n, r, NULL, 0, 0);
		break;
	case 'k':
		kill(getpid(), SIGKILL);
		break;
	case 'n':
		shmrpc_reply(n, r, &cancels, sizeof(cancels), 0);
		break;
	case 'S':
		memset(buf, 'S', 4000);
		while (shmrpc_reply(n, r, buf, 4000, SHMRPC_REPLY_MORE) == 0)
			;
		break;
	}
}

static int srv_main(void *arg)
{
	struct shmrpc_node *n = tb_open(arg, "srv");
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	int len;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_serve(n, serve, NULL), 0);
	for (;;) { /* until 'k' */
		len = shmrpc_recv(n, buf, sizeof(buf), from, 1000);
		if (len >= 0)
			msgs_seen++;
		else
			CHILD_CHECK(len == -ETIMEDOUT);
	}
}

/* quiet on host b: a node that does not serve */
static int quiet_main(void *arg)
{
	struct shmrpc_node *n = tb_open(arg, "quiet");
	char buf[64], from[SHMRPC_NAME_MAX + 1];

	CHILD_CHECK(n);
	/* until the caller says it is done */
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, 60000), 4);
	shmrpc_close(n);
	return 0;
}

/* ------------------------------------------------------------ caller */

static void call_echoes(struct shmrpc_node *n)
{
	char req[4200], resp[4200];
	uint32_t i, want;

	for (i = 0; i < NCALLS; i++) { /* random sizes, 0 included */
		want = tb_len_of(i, 4096);
		req[0] = 'e';
		th_fill(req + 1, want, 2, i);
		CHILD_CHECK_RC(shmrpc_call(n, "srv", req, want + 1, resp, sizeof(resp), T_MS),
			       want);
		CHILD_CHECK(th_check(resp, want, 2, i) == 0);
	}
}

/* Requests travel in order with the caller's messages. */
static void call_order(struct shmrpc_node *n)
{
	int seen = -1, i;

	for (i = 0; i < 3; i++)
		CHILD_CHECK_RC(shmrpc_send(n, "srv", "m", 1, T_MS), 0);
	CHILD_CHECK_RC(shmrpc_call(n, "srv", "o", 1, &seen, sizeof(seen), T_MS), sizeof(seen));
	CHILD_CHECK_RC(seen, 3);
}

static void call_stream(struct shmrpc_node *n)
{
	char req[5] = { 's' };
	uint32_t i, k = STREAM, v;
	unsigned flags;
	uint64_t id;

	memcpy(req + 1, &k, 4);
	CHILD_CHECK_RC(shmrpc_call_start(n, "srv", req, sizeof(req), T_MS, &id), 0);
	for (i = 0; i < k; i++) {
		CHILD_CHECK_RC(shmrpc_call_wait(n, id, &v, sizeof(v), &flags, T_MS), 4);
		CHILD_CHECK_RC(v, i);
		CHILD_CHECK_RC(!!(flags & SHMRPC_REPLY_MORE), i + 1 < k);
	}
	CHILD_CHECK_RC(shmrpc_call_wait(n, id, &v, sizeof(v), &flags, 0), -ENOENT);
}

static void call_errors(struct shmrpc_node *n)
{
	char resp[16];

	CHILD_CHECK_RC(shmrpc_call(n, "srv", "x", 1, resp, sizeof(resp), T_MS), -EADDRINUSE);
	CHILD_CHECK_RC(shmrpc_call(n, "quiet", "e", 1, resp, sizeof(resp), T_MS), -EOPNOTSUPP);
	/* the deadline travels: the caller's own, met here */
	CHILD_CHECK_RC(shmrpc_call(n, "srv", "d", 1, resp, sizeof(resp), 100), -ETIMEDOUT);
	/* its late reply is dropped; the next call gets its own */
	CHILD_CHECK_RC(shmrpc_call(n, "srv", "eok", 3, resp, sizeof(resp), T_MS), 2);
	CHILD_CHECK(!memcmp(resp, "ok", 2));
}

static void call_pipelined(struct shmrpc_node *n)
{
	uint64_t id[PIPE];
	char req[9];
	uint64_t i, v;

	req[0] = 'e';
	for (i = 0; i < PIPE; i++) {
		memcpy(req + 1, &i, 8);
		CHILD_CHECK_RC(shmrpc_call_start(n, "srv", req, sizeof(req), T_MS, &id[i]), 0);
	}
	for (i = PIPE; i-- > 0;) { /* collected in reverse */
		CHILD_CHECK_RC(shmrpc_call_wait(n, id[i], &v, sizeof(v), NULL, T_MS), 8);
		CHILD_CHECK_RC(v, i);
	}
}

/* A cancel crosses: the server's shmrpc_req_cancelled sees it. */
static void call_cancel(struct shmrpc_node *n)
{
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	uint32_t v, i;
	uint64_t id;

	CHILD_CHECK_RC(shmrpc_call_start(n, "srv", "c", 1, -1, &id), 0);
	for (i = 0; i < 3; i++)
		CHILD_CHECK_RC(shmrpc_call_wait(n, id, &v, sizeof(v), NULL, T_MS), 4);
	CHILD_CHECK_RC(shmrpc_call_cancel(n, id), 0);
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, T_MS), 9);
	CHILD_CHECK(!memcmp(buf, "cancelled", 9) && !strcmp(from, "srv"));
}

/* cli2 on host a: a streaming call, then its process dies. */
static int cli2_main(void *arg)
{
	struct shmrpc_node *n = tb_open(arg, "cli2");
	uint32_t v, i;
	uint64_t id;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "srv", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_call_start(n, "srv", "c", 1, -1, &id), 0);
	for (i = 0; i < 3; i++)
		CHILD_CHECK_RC(shmrpc_call_wait(n, id, &v, sizeof(v), NULL, T_MS), 4);
	_exit(0); /* no close: as a crash */
}

/* A caller that died (cli2, run alongside): the server's host is told,
 * as for a cancel; with call_cancel's, two streams ended by a cancel. */
static void call_caller_died(struct shmrpc_node *n)
{
	int k = 0, i;

	for (i = 0; i < 500 && k < 2; i++) {
		CHILD_CHECK_RC(shmrpc_call(n, "srv", "n", 1, &k, sizeof(k), T_MS), sizeof(k));
		if (k < 2)
			tb_sleep_ms(20);
	}
	CHILD_CHECK_RC(k, 2);
}

/* The server dies with a call pending (no deadline): -EPIPE. */
static void call_server_killed(struct shmrpc_node *n)
{
	char resp[16];
	uint64_t id;
	int rc;

	CHILD_CHECK_RC(shmrpc_call_start(n, "srv", "k", 1, -1, &id), 0);
	CHILD_CHECK_RC(shmrpc_call_wait(n, id, resp, sizeof(resp), NULL, T_MS), -EPIPE);
	/* gone: -EPIPE while its proxy closes here, then -ENOENT */
	rc = shmrpc_call(n, "srv", "e", 1, resp, sizeof(resp), 1000);
	CHILD_CHECK(rc == -EPIPE || rc == -ENOENT);
}

static int cli_main(void *arg)
{
	struct shmrpc_node *n = tb_open(arg, "cli");

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "srv", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "quiet", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_is_local(n, "srv"), 0);
	call_echoes(n);
	call_order(n);
	call_stream(n);
	call_errors(n);
	call_pipelined(n);
	call_cancel(n);
	call_caller_died(n);
	call_server_killed(n);
	CHILD_CHECK_RC(shmrpc_send(n, "quiet", "done", 4, T_MS), 0);
	shmrpc_close(n);
	return 0;
}

static void test_bridge_call(void **state)
{
	struct tb_case *t = *state;
	pid_t s, q, c, c2;

	tb_hosts_up(t, NULL, NULL, "");
	s = tb_run(&t->b, srv_main, t->dom.name);
	q = tb_run(&t->b, quiet_main, t->dom.name);
	c = tb_run(&t->a, cli_main, t->dom.name);
	c2 = tb_run(&t->a, cli2_main, t->dom.name);
	assert_int_equal(th_wait(c2, 60000), 0);
	assert_int_equal(th_wait(c, 120000), 0);
	assert_int_equal(th_wait(q, 10000), 0);
	assert_int_equal(th_wait(s, 10000), 128 + SIGKILL);
	/* the bridges kept no call: nothing left when they stop (teardown) */
	tb_sleep_ms(200);
}

/* ------------------------------------------------------------ zombie */

struct hog_arg {
	const char *domain;
	struct th_gate started;
};

/* hog on host a: a stream of 4000-byte replies it never reads. */
static int hog_main(void *arg)
{
	struct hog_arg *h = arg;
	struct shmrpc_node *n = tb_open(h->domain, "hog");
	uint64_t id;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "srv", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_call_start(n, "srv", "S", 1, -1, &id), 0);
	th_gate_open(&h->started);
	for (;;)
		pause();
}

/*
 * A caller that never reads its replies holds back only its own stream:
 * the replies fill hog's reply ring, host a's bridge finds no room
 * (SHMRPC_REPLY_NOWAIT) and keeps them queued, credits stop b's stream to
 * hog, b's thread stops taking replies, srv blocks. Killed, srv leaves
 * host a (its proxy closes, nothing waits for hog), and a's bridge still
 * carries calls. Nothing is left behind once hog dies too (teardown).
 */
static int cli3_main(void *arg)
{
	struct shmrpc_node *n = tb_open(arg, "cli3");
	char resp[8];

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "quiet", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_call(n, "quiet", "e", 1, resp, sizeof(resp), T_MS), -EOPNOTSUPP);
	CHILD_CHECK_RC(shmrpc_send(n, "quiet", "done", 4, T_MS), 0);
	shmrpc_close(n);
	return 0;
}

static void test_bridge_call_slow_caller(void **state)
{
	struct tb_case *t = *state;
	struct hog_arg h = { .domain = t->dom.name };
	char text[160];
	pid_t s, g, q, c;

	th_gate_init(&h.started);
	tb_hosts_up(t, NULL, NULL, "");
	s = tb_run(&t->b, srv_main, t->dom.name);
	q = tb_run(&t->b, quiet_main, t->dom.name);
	g = tb_run(&t->a, hog_main, &h);
	assert_int_equal(th_gate_wait(&h.started, T_MS), 0);
	tb_sleep_ms(1000); /* the pipeline fills in milliseconds */
	assert_int_equal(th_wait_asleep(s, T_MS), 0);
	kill(s, SIGKILL);
	assert_int_equal(th_wait(s, T_MS), 128 + SIGKILL);
	snprintf(text, sizeof(text), "proxy-close domain=%s node=srv", t->dom.name);
	assert_int_equal(tb_log_wait(&t->a, text, T_MS), 0);
	assert_false(tb_log_has(&t->a, "proxy-zombie"));
	c = tb_run(&t->a, cli3_main, t->dom.name); /* a's bridge still works */
	assert_int_equal(th_wait(c, 30000), 0);
	assert_int_equal(th_wait(q, T_MS), 0);
	kill(g, SIGKILL);
	assert_int_equal(th_wait(g, T_MS), 128 + SIGKILL);
	th_gate_close(&h.started);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bridge_call, tb_case_setup, tb_case_teardown),
		cmocka_unit_test_setup_teardown(test_bridge_call_slow_caller, tb_case_setup,
						tb_case_teardown),
	};

	return cmocka_run_group_tests(tests, tb_group_setup, tb_group_teardown);
}
