// SPDX-License-Identifier: MIT
/*
 * Receiving (lib/recv.c, lib/rx.c): shmrpc_recv with a small buffer,
 * shmrpc_peek and shmrpc_release, shmrpc_dispatch.
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

/* ================================================ 3. recv with a small buffer */

static void test_recv_emsgsize_keeps_message_queued(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	char from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_rxbuf rx;
	struct shmrpc_stats st;
	uint8_t buf[256];

	assert_non_null(a);
	assert_non_null(b);
	th_fill(buf, 100, 1, 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 100, 0), 0);
	th_fill(buf, 50, 1, 1);
	assert_int_equal(shmrpc_send(a, "b", buf, 50, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", NULL, 0, 0), 0);

	memset(buf, 0, sizeof(buf));
	assert_int_equal(shmrpc_recv(b, buf, 99, from, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_recv(b, buf, 99, from, 1000), -EMSGSIZE); /* no wait */
	assert_int_equal(shmrpc_recv(b, NULL, 0, NULL, 0), -EMSGSIZE);
	st = th_stats(b);
	assert_int_equal(st.msgs_recv, 0);
	assert_int_equal(shmrpc_peek(b, &rx, 0), 100);
	assert_int_equal(rx.len, 100);
	assert_string_equal(rx.from, "a");
	assert_int_equal(th_check(rx.data, 100, 1, 0), 0);
	/* an exact fit, the sender's name copied out */
	memset(from, '#', sizeof(from));
	assert_int_equal(shmrpc_recv(b, buf, 100, from, 0), 100);
	assert_string_equal(from, "a");
	assert_int_equal(th_check(buf, 100, 1, 0), 0);
	/* from NULL */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 50);
	assert_int_equal(th_check(buf, 50, 1, 1), 0);
	/* a zero-length message fits a NULL buffer of capacity 0 */
	assert_int_equal(shmrpc_recv(b, NULL, 0, NULL, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = th_stats(b);
	assert_int_equal(st.msgs_recv, 3);
	assert_int_equal(st.bytes_recv, 150);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ================================================= 5. zero-copy receiving */

static void test_peek_release_rules(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc_rxbuf rx1, rx2, saved2, rx3, zero;
	struct shmrpc_stats st;
	uint8_t buf[64];
	int i;

	assert_non_null(a);
	assert_non_null(b);
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(shmrpc_peek(b, &rx1, 0), -EAGAIN);
	for (i = 1; i <= 3; i++) {
		th_fill(buf, (size_t)(10 * i), 5, (uint64_t)i);
		assert_int_equal(shmrpc_send(a, "b", buf, (size_t)(10 * i), 0), 0);
	}
	/* peek, peek again: the same message, in place */
	assert_int_equal(shmrpc_peek(b, &rx1, 1000), 10);
	assert_int_equal(shmrpc_peek(b, &rx2, 0), 10);
	saved2 = rx2;
	assert_ptr_equal(rx1.data, rx2.data);
	assert_int_equal(rx1.len, 10);
	assert_int_equal(rx2.len, 10);
	assert_string_equal(rx1.from, "a");
	assert_string_equal(rx2.from, "a");
	assert_int_equal(th_check(rx2.data, 10, 5, 1), 0);
	assert_int_equal(th_stats(b).msgs_recv, 0);
	assert_int_equal(shmrpc_release(b, &rx2), 0);
	assert_int_equal(th_stats(b).msgs_recv, 1);
	/* twice, or a description of the message just consumed */
	assert_int_equal(shmrpc_release(b, &rx2), -EINVAL);
	assert_int_equal(shmrpc_release(b, &rx1), -EINVAL);
	assert_int_equal(shmrpc_release(b, &saved2), -EINVAL);
	assert_int_equal(shmrpc_release(b, &zero), -EINVAL);
	/* the next message; the old descriptions stay stale */
	assert_int_equal(shmrpc_peek(b, &rx3, 0), 20);
	assert_int_equal(th_check(rx3.data, 20, 5, 2), 0);
	assert_int_equal(shmrpc_release(b, &saved2), -EINVAL);
	assert_int_equal(shmrpc_release(b, &rx1), -EINVAL);
	/* recv after peek consumes the peeked message; its release is stale */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 20);
	assert_int_equal(th_check(buf, 20, 5, 2), 0);
	assert_int_equal(shmrpc_release(b, &rx3), -EINVAL);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 30);
	assert_int_equal(th_check(buf, 30, 5, 3), 0);
	assert_int_equal(shmrpc_release(b, &rx3), -EINVAL);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = th_stats(b);
	assert_int_equal(st.msgs_recv, 3);
	assert_int_equal(st.bytes_recv, 60);
	shmrpc_close(a);
	shmrpc_close(b);
}

/*
 * With two senders queued, whatever mix of -EMSGSIZE, peeks and receives
 * the application does, "peek again" and "recv after peek" are about the
 * message peeked first: never the other sender's.
 */
#define MIX_N 150

static void test_peek_same_message_among_senders(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *s[2] = { th_open(d, "s0"), th_open(d, "s1") };
	struct shmrpc_node *r = th_open(d, "r");
	struct shmrpc_rxbuf rx1, rx2;
	char from[SHMRPC_NAME_MAX + 1];
	uint64_t next[2] = { 0, 0 };
	uint8_t buf[256];
	int i, k, p, id, len;

	assert_non_null(s[0]);
	assert_non_null(s[1]);
	assert_non_null(r);
	for (i = 0; i < MIX_N; i++)
		for (k = 0; k < 2; k++) {
			len = 1 + (i * 7 + k * 3) % 200;
			th_fill(buf, (size_t)len, (uint64_t)(10 + k), (uint64_t)i);
			assert_int_equal(shmrpc_send(s[k], "r", buf, (size_t)len, 0), 0);
		}
	for (i = 0; i < 2 * MIX_N; i++) {
		if (i % 2)
			assert_int_equal(shmrpc_recv(r, buf, 0, NULL, 0), -EMSGSIZE);
		len = shmrpc_peek(r, &rx1, 1000);
		assert_true(len > 0);
		id = rx1.from[1] - '0';
		assert_true(id == 0 || id == 1);
		assert_int_equal(len, 1 + ((int)next[id] * 7 + id * 3) % 200);
		assert_int_equal(th_check(rx1.data, (size_t)len, (uint64_t)(10 + id), next[id]), 0);
		for (p = 0; p < i % 4; p++) {
			assert_int_equal(shmrpc_peek(r, &rx2, 0), len);
			assert_ptr_equal(rx2.data, rx1.data);
			assert_string_equal(rx2.from, rx1.from);
		}
		if (i % 3 == 0) {
			assert_int_equal(shmrpc_release(r, i % 4 ? &rx2 : &rx1), 0);
		} else {
			assert_int_equal(shmrpc_recv(r, buf, (size_t)len, from, 0), len);
			assert_string_equal(from, rx1.from);
			assert_int_equal(th_check(buf, (size_t)len, (uint64_t)(10 + id), next[id]),
					 0);
		}
		next[id]++;
	}
	assert_int_equal(next[0], MIX_N);
	assert_int_equal(next[1], MIX_N);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(s[0]);
	shmrpc_close(s[1]);
	shmrpc_close(r);
}

/* ============================================================ 6. dispatch */

#define DISP_SENDERS 3
#define DISP_N 50

struct disp {
	struct shmrpc_node *self;
	int calls, errors;
	uint32_t next[DISP_SENDERS];
	int rc_recv, rc_peek, rc_dispatch, rc_release, rc_start, rc_send, rc_stop;
};

static void order_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			  void *arg)
{
	struct disp *x = arg;
	uint32_t m[2];

	x->calls++;
	if (n != x->self || len != sizeof(m) || from[0] != 's') {
		x->errors++;
		return;
	}
	memcpy(m, data, sizeof(m));
	if (m[0] >= DISP_SENDERS || (int)m[0] != from[1] - '0' || m[1] != x->next[m[0]])
		x->errors++;
	else
		x->next[m[0]]++;
}

static void test_dispatch_handles_all_waiting_in_order(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s[DISP_SENDERS];
	struct disp x;
	char name[16];
	uint32_t m[2];
	int i, k;

	assert_non_null(r);
	for (k = 0; k < DISP_SENDERS; k++) {
		snprintf(name, sizeof(name), "s%d", k);
		s[k] = th_open(d, name);
		assert_non_null(s[k]);
	}
	for (i = 0; i < DISP_N; i++)
		for (k = 0; k < DISP_SENDERS; k++) {
			m[0] = (uint32_t)k;
			m[1] = (uint32_t)i;
			assert_int_equal(shmrpc_send(s[k], "r", m, sizeof(m), 0), 0);
		}
	memset(&x, 0, sizeof(x));
	x.self = r;
	assert_int_equal(shmrpc_dispatch(r, order_handler, &x, 1000), DISP_SENDERS * DISP_N);
	assert_int_equal(x.calls, DISP_SENDERS * DISP_N);
	assert_int_equal(x.errors, 0);
	for (k = 0; k < DISP_SENDERS; k++)
		assert_int_equal(x.next[k], DISP_N);
	assert_int_equal(shmrpc_dispatch(r, order_handler, &x, 0), -EAGAIN);
	assert_int_equal(shmrpc_dispatch(r, order_handler, &x, 20), -ETIMEDOUT);
	assert_int_equal(x.calls, DISP_SENDERS * DISP_N);
	assert_int_equal(th_stats(r).msgs_recv, DISP_SENDERS * DISP_N);
	for (k = 0; k < DISP_SENDERS; k++)
		shmrpc_close(s[k]);
	shmrpc_close(r);
}

static void receiving_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			      void *arg)
{
	struct disp *x = arg;
	struct shmrpc_rxbuf rx;
	char buf[64];

	(void)from;
	(void)data;
	(void)len;
	memset(&rx, 0, sizeof(rx));
	x->calls++;
	x->rc_recv = shmrpc_recv(n, buf, sizeof(buf), NULL, 0);
	x->rc_peek = shmrpc_peek(n, &rx, 0);
	x->rc_release = shmrpc_release(n, &rx);
	x->rc_dispatch = shmrpc_dispatch(n, th_noop_handler, NULL, 0);
	x->rc_start = shmrpc_start(n, th_noop_handler, NULL);
}

static void test_dispatch_handler_cannot_receive(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct disp x;
	char buf[16];

	assert_non_null(a);
	assert_non_null(b);
	memset(&x, 0, sizeof(x));
	assert_int_equal(shmrpc_send(a, "b", "one", 3, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", "two", 3, 0), 0);
	assert_int_equal(shmrpc_dispatch(b, receiving_handler, &x, 1000), 2);
	assert_int_equal(x.calls, 2);
	assert_int_equal(x.rc_recv, -EBUSY);
	assert_int_equal(x.rc_peek, -EBUSY);
	assert_int_equal(x.rc_release, -EBUSY);
	assert_int_equal(x.rc_dispatch, -EBUSY);
	assert_int_equal(x.rc_start, -EBUSY);
	/* receiving works again once dispatch returned */
	assert_int_equal(shmrpc_send(a, "b", "three", 5, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 5);
	shmrpc_close(a);
	shmrpc_close(b);
}

static void echo_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			 void *arg)
{
	struct disp *x = arg;

	x->calls++;
	if (shmrpc_send(n, from, data, len, 1000) != 0)
		x->errors++;
}

static void test_dispatch_handler_may_send(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	struct disp x;
	int i;

	assert_non_null(a);
	assert_non_null(b);
	memset(&x, 0, sizeof(x));
	for (i = 0; i < 5; i++) {
		snprintf(buf, sizeof(buf), "msg-%d", i);
		assert_int_equal(shmrpc_send(a, "b", buf, strlen(buf), 0), 0);
	}
	assert_int_equal(shmrpc_dispatch(b, echo_handler, &x, 1000), 5);
	assert_int_equal(x.calls, 5);
	assert_int_equal(x.errors, 0);
	for (i = 0; i < 5; i++) {
		char want[16];

		snprintf(want, sizeof(want), "msg-%d", i);
		assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), from, 1000), (int)strlen(want));
		assert_memory_equal(buf, want, strlen(want));
		assert_string_equal(from, "b");
	}
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(a);
	shmrpc_close(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_recv_emsgsize_keeps_message_queued),
		T(test_peek_release_rules),
		T(test_peek_same_message_among_senders),
		T(test_dispatch_handles_all_waiting_in_order),
		T(test_dispatch_handler_cannot_receive),
		T(test_dispatch_handler_may_send),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
