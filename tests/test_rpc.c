// SPDX-License-Identifier: MIT
/*
 * Request/response in one process (lib/rpc_*.c, lib/reply.c): the calls'
 * contract, error by error; streams, cancels, deferred replies, deadlines
 * and late replies; replies and messages kept apart; many calling threads;
 * counters. Servers and callers are nodes of this process, each server with
 * a receiving thread (or a receiving call of the test's own); the
 * multi-process cases (deaths, 1,000,000 calls) are in test_rpc_proc.c.
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

/* ------------------------------------------------------------ servers */

/* Echo: the request back, or, for a request starting "err:", that error. */
static void echo_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	int err;

	(void)arg;
	if (r->len >= 4 && !memcmp(r->data, "err:", 4)) {
		err = -atoi((const char *)r->data + 4);
		shmrpc_reply_error(n, r, err);
		return;
	}
	shmrpc_reply(n, r, r->data, r->len, 0);
}

struct srv {
	struct shmrpc_node *n;
	shmrpc_serve_fn fn;
	void *arg;
};

/* A serving node @name with a receiving thread that fails on messages. */
static void srv_open(struct srv *s, const struct th_dom *d, const char *name, shmrpc_serve_fn fn,
		     void *arg)
{
	s->n = th_open(d, name);
	assert_non_null(s->n);
	s->fn = fn;
	s->arg = arg;
	assert_int_equal(shmrpc_serve(s->n, fn, arg), 0);
	assert_int_equal(shmrpc_start(s->n, th_never_handler, NULL), 0);
}

static void srv_close(struct srv *s)
{
	shmrpc_close(s->n);
}

/* ------------------------------------------------------------ basics */

static void test_rpc_echo(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	char buf[64];
	struct srv s;

	srv_open(&s, d, "s", echo_fn, NULL);
	assert_int_equal(shmrpc_call(c, "s", "hello", 5, buf, sizeof(buf), 2000), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(shmrpc_call(c, "s", "", 0, buf, sizeof(buf), -1), 0);
	assert_int_equal(shmrpc_call(c, "s", "err:5", 5, buf, sizeof(buf), 2000), -EIO);
	assert_int_equal(shmrpc_call(c, "s", "err:71", 6, buf, sizeof(buf), 2000), -EPROTO);
	srv_close(&s);
	shmrpc_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rpc_echo),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
