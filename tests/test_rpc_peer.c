// SPDX-License-Identifier: MIT
/*
 * Request/response with the calls of issue 11: calls through a peer handle
 * (shmrpc_peer_call, shmrpc_peer_call_start: bound to one incarnation of
 * the server, -EPIPE once it is gone, whoever holds the name then), and
 * requests served by shmrpc_recv_batch, in one batch with plain messages
 * from the same ring and from others.
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

static void echo_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	shmrpc_reply(n, r, r->data, r->len, 0);
}

static struct shmrpc_node *server(const struct th_dom *d, const char *name)
{
	struct shmrpc_node *s = th_open(d, name);

	assert_non_null(s);
	assert_int_equal(shmrpc_serve(s, echo_fn, NULL), 0);
	assert_int_equal(shmrpc_start(s, th_never_handler, NULL), 0);
	return s;
}

static void test_rpc_peer_call(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *s = server(d, "s"), *s2, *q = th_open(d, "q");
	struct shmrpc_peer *p, *pq;
	uint64_t id[4];
	unsigned flags = 7;
	char buf[64];
	int i;

	assert_int_equal(shmrpc_peer_get(c, "s", 1000, &p), 0);
	assert_int_equal(shmrpc_peer_call(p, "hello", 5, buf, sizeof(buf), 2000), 5);
	assert_memory_equal(buf, "hello", 5);
	for (i = 0; i < 4; i++)
		assert_int_equal(shmrpc_peer_call_start(p, &i, sizeof(i), 2000, &id[i]), 0);
	for (i = 3; i >= 0; i--) {
		int v = -1;

		assert_int_equal(shmrpc_call_wait(c, id[i], &v, sizeof(v), &flags, -1),
				 (int)sizeof(v));
		assert_int_equal(v, i);
		assert_int_equal(flags, 0);
		assert_int_equal(shmrpc_call_wait(c, id[i], &v, sizeof(v), NULL, 0), -ENOENT);
	}
	/* arguments; a node that does not serve */
	assert_int_equal(shmrpc_peer_call(NULL, "x", 1, buf, sizeof(buf), 0), -EINVAL);
	assert_int_equal(shmrpc_peer_call(p, NULL, 1, buf, sizeof(buf), 0), -EINVAL);
	assert_int_equal(shmrpc_peer_call_start(p, "x", 1, 0, NULL), -EINVAL);
	assert_int_equal(shmrpc_peer_call_start(p, "x", 1, -2, &id[0]), -EINVAL);
	assert_int_equal(shmrpc_peer_get(c, "q", 1000, &pq), 0);
	assert_int_equal(shmrpc_peer_call(pq, "x", 1, buf, sizeof(buf), 2000), -EOPNOTSUPP);
	/* the server leaves, another takes its name: the handle's calls end
	 * -EPIPE, calls by name reach the new one */
	shmrpc_close(s);
	s2 = server(d, "s");
	assert_int_equal(shmrpc_peer_call(p, "x", 1, buf, sizeof(buf), 2000), -EPIPE);
	assert_int_equal(shmrpc_peer_call_start(p, "x", 1, 2000, &id[0]), -EPIPE);
	assert_int_equal(shmrpc_call(c, "s", "new", 3, buf, sizeof(buf), 2000), 3);
	assert_int_equal(th_stats(c).calls_in_flight, 0);
	shmrpc_peer_put(p);
	shmrpc_peer_put(pq);
	shmrpc_close(s2);
	shmrpc_close(q);
	shmrpc_close(c);
}

/* A handle whose node closed: -EPIPE, then put. */
static void test_rpc_peer_call_node_closed(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *s = server(d, "s");
	struct shmrpc_peer *p;
	uint64_t id;
	char buf[8];

	assert_int_equal(shmrpc_peer_get(c, "s", 1000, &p), 0);
	shmrpc_close(c);
	assert_int_equal(shmrpc_peer_call(p, "x", 1, buf, sizeof(buf), 100), -EPIPE);
	assert_int_equal(shmrpc_peer_call_start(p, "x", 1, 100, &id), -EPIPE);
	shmrpc_peer_put(p);
	shmrpc_close(s);
}

#define NMSG 1000 /* calls in flight at once: below opts.max_calls */

/* The server receives with shmrpc_recv_batch only: requests from the
 * caller's ring between its plain messages, in the same batches. */
static void test_rpc_recv_batch_serves(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *o = th_open(d, "o"), *s = th_open(d, "s");
	static uint64_t id[NMSG];
	struct shmrpc_msg m[16];
	uint32_t buf[16], v, want_c = 0, want_o = 0;
	int i, k, rc, got = 0;

	assert_int_equal(shmrpc_serve(s, echo_fn, NULL), 0);
	for (i = 0; i < 16; i++)
		m[i] = (struct shmrpc_msg){ .buf = &buf[i], .cap = sizeof(buf[i]) };
	for (i = 0; i < NMSG; i++) {
		v = (uint32_t)i;
		assert_int_equal(shmrpc_send(c, "s", &v, sizeof(v), -1), 0);
		assert_int_equal(shmrpc_call_start(c, "s", &v, sizeof(v), -1, &id[i]), 0);
		assert_int_equal(shmrpc_send(o, "s", &v, sizeof(v), -1), 0);
		/* the rings hold them all? drain now and then */
		if (i % 256 != 255)
			continue;
		while (got < 2 * (i + 1)) {
			rc = shmrpc_recv_batch(s, m, 16, 10000);
			assert_true(rc >= 1);
			for (k = 0; k < rc; k++) {
				assert_int_equal(m[k].len, sizeof(uint32_t));
				if (!strcmp(m[k].from, "c"))
					assert_int_equal(buf[k], want_c++);
				else
					assert_int_equal(buf[k], want_o++);
			}
			got += rc;
		}
	}
	while (got < 2 * NMSG) {
		rc = shmrpc_recv_batch(s, m, 16, 10000);
		assert_true(rc >= 1);
		for (k = 0; k < rc; k++)
			assert_int_equal(buf[k], !strcmp(m[k].from, "c") ? want_c++ : want_o++);
		got += rc;
	}
	assert_int_equal(want_c, NMSG);
	assert_int_equal(want_o, NMSG);
	/* the last request, behind the last message: served, not returned */
	assert_int_equal(shmrpc_recv_batch(s, m, 16, 0), -EAGAIN);
	for (i = 0; i < NMSG; i++) {
		assert_int_equal(shmrpc_call_wait(c, id[i], &v, sizeof(v), NULL, 10000),
				 (int)sizeof(v));
		assert_int_equal(v, (uint32_t)i);
	}
	assert_int_equal(th_stats(s).calls_served, NMSG);
	shmrpc_close(s);
	shmrpc_close(o);
	shmrpc_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rpc_peer_call),
		T(test_rpc_peer_call_node_closed),
		T(test_rpc_recv_batch_serves),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
