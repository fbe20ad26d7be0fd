// SPDX-License-Identifier: MIT
/*
 * Counters (lib/stats.c, lib/counters.c): shmrpc_stats matches what was
 * done, counts wakes only to sleepers, and never drops when peers leave.
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

/* =============================================================== 10. stats */

static void test_stats_counters_match_what_was_done(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open_ring(d, "a", 4096), *b = th_open(d, "b"),
			   *c = th_open(d, "c");
	struct shmrpc_stats sa, sb, z;
	uint8_t buf[256];
	int k, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	memset(&z, 0, sizeof(z));
	sa = th_stats(a);
	assert_memory_equal(&sa, &z, sizeof(z)); /* all zero at join */

	memset(buf, 1, sizeof(buf));
	assert_int_equal(shmrpc_send(a, "b", buf, 10, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 20, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 30, 0), 0);
	sa = th_stats(a);
	assert_int_equal(sa.msgs_sent, 3);
	assert_int_equal(sa.bytes_sent, 60);
	assert_int_equal(sa.connects, 1);
	assert_int_equal(sa.rings_out, 1);
	assert_int_equal(sa.rings_in, 0);
	assert_int_equal(sa.send_full, 0);
	/* b was not receiving at all: no wake was needed for any of them */
	assert_int_equal(sa.wakes_skipped, 3);
	assert_int_equal(sa.wakes_sent, 0);
	assert_int_equal(sa.msgs_recv, 0);

	for (k = 0; k < 3; k++)
		assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 10 * (k + 1));
	sb = th_stats(b);
	assert_int_equal(sb.msgs_recv, 3);
	assert_int_equal(sb.bytes_recv, 60);
	assert_int_equal(sb.rings_in, 1);
	assert_int_equal(sb.rings_out, 0);
	assert_int_equal(sb.msgs_sent, 0);
	assert_int_equal(sb.connects, 0);

	assert_int_equal(shmrpc_send(a, "c", buf, 1, 0), 0);
	sa = th_stats(a);
	assert_int_equal(sa.connects, 2);
	assert_int_equal(sa.rings_out, 2);

	/* b fills a's small ring: refused sends are counted, one each */
	k = th_fill_ring(b, "a", 100);
	sb = th_stats(b);
	assert_int_equal(sb.msgs_sent, (uint64_t)k);
	assert_int_equal(sb.bytes_sent, 100 * (uint64_t)k);
	assert_int_equal(sb.send_full, 1);
	assert_int_equal(shmrpc_send(b, "a", buf, 100, 0), -EAGAIN);
	assert_int_equal(shmrpc_send(b, "a", buf, 100, 10), -ETIMEDOUT);
	sb = th_stats(b);
	assert_int_equal(sb.send_full, 3);
	assert_true(sb.sleeps >= 1); /* the timed one slept */
	assert_int_equal(sb.msgs_sent, (uint64_t)k);
	for (i = 0; i < k; i++)
		assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), 100);
	sa = th_stats(a);
	assert_int_equal(sa.msgs_recv, (uint64_t)k);
	assert_int_equal(sa.bytes_recv, 100 * (uint64_t)k);
	assert_int_equal(sa.rings_in, 1);

	/* an idle receive sleeps */
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 1);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 30), -ETIMEDOUT);
	assert_true(th_stats(c).sleeps >= 1);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
}

static void test_stats_wake_sent_only_to_sleeper(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct th_blocked_recv r = { b, 1 };
	struct shmrpc_stats before, after;
	pthread_t t;
	uint64_t sleeps;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_warmup(a), 1);
	sleeps = th_stats(b).sleeps;
	assert_int_equal(pthread_create(&t, NULL, th_blocked_recv_thread, &r), 0);
	assert_true(th_wait_sleeps_above(b, sleeps, 5000));
	before = th_stats(a);
	assert_int_equal(shmrpc_send(a, "b", "wake", 4, 0), 0);
	after = th_stats(a);
	pthread_join(t, NULL);
	assert_int_equal(r.rc, 4);
	assert_int_equal(after.wakes_sent, before.wakes_sent + 1);
	assert_int_equal(after.wakes_skipped, before.wakes_skipped);
	shmrpc_close(a);
	shmrpc_close(b);
}

#define STREAM_N 20000

static void *stream_receiver(void *arg)
{
	struct shmrpc_node *n = arg;
	uint64_t buf[8];
	long i;

	for (i = 0; i < STREAM_N; i++)
		if (shmrpc_recv(n, buf, sizeof(buf), NULL, 10000) != 16 || buf[0] != (uint64_t)i)
			return (void *)1;
	return NULL;
}

static void test_stats_stream_to_busy_receiver_skips_wakes(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc_stats st;
	uint64_t msg[2];
	void *res;
	pthread_t t;
	long i;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(pthread_create(&t, NULL, stream_receiver, b), 0);
	for (i = 0; i < STREAM_N; i++) {
		msg[0] = (uint64_t)i;
		msg[1] = 0;
		assert_int_equal(shmrpc_send(a, "b", msg, sizeof(msg), 10000), 0);
	}
	pthread_join(t, &res);
	assert_null(res);
	st = th_stats(a);
	print_message("stream of %d: %lu wakes, %lu skipped\n", STREAM_N,
		      (unsigned long)st.wakes_sent, (unsigned long)st.wakes_skipped);
	assert_true(st.wakes_skipped > 0);
	/* each publish either woke the receiver or found it awake */
	assert_int_equal(st.wakes_sent + st.wakes_skipped, STREAM_N);
	assert_int_equal(th_stats(b).msgs_recv, STREAM_N);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* No counter but rings_in/rings_out may drop, whoever leaves. */
static void assert_not_below(const struct shmrpc_stats *now, const struct shmrpc_stats *then)
{
	assert_true(now->msgs_sent >= then->msgs_sent);
	assert_true(now->msgs_recv >= then->msgs_recv);
	assert_true(now->bytes_sent >= then->bytes_sent);
	assert_true(now->bytes_recv >= then->bytes_recv);
	assert_true(now->send_full >= then->send_full);
	assert_true(now->wakes_sent >= then->wakes_sent);
	assert_true(now->wakes_skipped >= then->wakes_skipped);
	assert_true(now->sleeps >= then->sleeps);
	assert_true(now->spins >= then->spins);
	assert_true(now->connects >= then->connects);
}

static void test_stats_survive_peers_leaving(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open_ring(d, "a", 4096), *b = th_open(d, "b"),
			   *c = th_open(d, "c");
	struct shmrpc_stats s0, s1;
	uint8_t buf[128];
	int i, k, bytes = 0;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	memset(buf, 2, sizeof(buf));
	for (i = 0; i < 5; i++)
		assert_int_equal(shmrpc_send(a, "b", buf, 7, 0), 0);
	k = th_fill_ring(b, "a", 100);
	assert_int_equal(shmrpc_send(c, "a", buf, 9, 0), 0); /* its own ring */
	for (i = 0; i < 3; i++)
		bytes += shmrpc_recv(a, buf, sizeof(buf), NULL, 0);
	s0 = th_stats(a);
	assert_int_equal(s0.msgs_sent, 5);
	assert_int_equal(s0.msgs_recv, 3);
	assert_int_equal(s0.rings_in, 2);

	/* a receiver leaves with our messages unread */
	shmrpc_close(b);
	s1 = th_stats(a);
	assert_not_below(&s1, &s0);
	assert_int_equal(s1.msgs_sent, 5);
	assert_int_equal(s1.bytes_sent, 35);
	assert_int_equal(shmrpc_send(a, "b", buf, 7, 0), -EPIPE);
	s1 = th_stats(a);
	assert_not_below(&s1, &s0);
	assert_int_equal(s1.msgs_sent, 5);
	assert_int_equal(s1.bytes_sent, 35);
	assert_int_equal(s1.rings_out, 0);

	/* senders left: we drain what they sent, their rings go, totals stay */
	shmrpc_close(c);
	for (i = 3; i < k + 1; i++)
		bytes += shmrpc_recv(a, buf, sizeof(buf), NULL, 1000);
	assert_int_equal(bytes, 100 * k + 9);
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN);
	s1 = th_stats(a);
	assert_not_below(&s1, &s0);
	assert_int_equal(s1.msgs_recv, (uint64_t)k + 1);
	assert_int_equal(s1.bytes_recv, 100 * (uint64_t)k + 9);
	assert_int_equal(s1.rings_in, 0);
	assert_int_equal(s1.msgs_sent, 5);
	shmrpc_close(a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_stats_counters_match_what_was_done),
		T(test_stats_wake_sent_only_to_sleeper),
		T(test_stats_stream_to_busy_receiver_skips_wakes),
		T(test_stats_survive_peers_leaving),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
