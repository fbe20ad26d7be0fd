// SPDX-License-Identifier: MIT
/*
 * Broadcast (lib/broadcast.c): to every other live node, -EMSGSIZE only
 * when it fits no ring, a full ring skipped without blocking the rest.
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

/* =========================================================== 13. broadcast */

static void test_broadcast_counts_receivers(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *p[3];
	char buf[16], from[SHMRPC_NAME_MAX + 1], name[16];
	int i;

	assert_non_null(a);
	assert_int_equal(shmrpc_broadcast(a, "hi", 2, 100), 0);
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		p[i] = th_open(d, name);
		assert_non_null(p[i]);
	}
	assert_int_equal(shmrpc_broadcast(a, "hi", 2, 100), 3);
	assert_int_equal(shmrpc_broadcast(a, NULL, 0, 0), 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(shmrpc_recv(p[i], buf, sizeof(buf), from, 0), 2);
		assert_memory_equal(buf, "hi", 2);
		assert_string_equal(from, "a");
		assert_int_equal(shmrpc_recv(p[i], buf, sizeof(buf), from, 0), 0);
		assert_int_equal(shmrpc_recv(p[i], buf, sizeof(buf), NULL, 0), -EAGAIN);
	}
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN); /* not to self */
	shmrpc_close(p[1]);
	assert_int_equal(shmrpc_broadcast(a, "x", 1, 100), 2);
	assert_int_equal(th_stats(a).msgs_sent, 8);
	shmrpc_close(p[0]);
	shmrpc_close(p[2]);
	shmrpc_close(a);
}

static void test_broadcast_emsgsize_when_it_fits_no_ring(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096),
			   *c = th_open_ring(d, "c", 4096), *big;
	static uint8_t buf[4096];

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(shmrpc_broadcast(a, buf, 3000, 100), -EMSGSIZE);
	assert_int_equal(shmrpc_broadcast(a, buf, 2040, 100), 2);
	big = th_open_ring(d, "big", 16384);
	assert_non_null(big);
	th_fill(buf, 3000, 30, 0);
	assert_int_equal(shmrpc_broadcast(a, buf, 3000, 100), 1);
	assert_int_equal(shmrpc_recv(big, buf, sizeof(buf), NULL, 0), 3000);
	assert_int_equal(th_check(buf, 3000, 30, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 2040);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 2040);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), -EAGAIN);

	/* it fits big's ring, which is merely full right now: not -EMSGSIZE,
	 * just nobody reached within the timeout */
	assert_true(th_fill_ring(a, "big", 3000) > 0);
	assert_int_equal(shmrpc_broadcast(a, buf, 3000, 0), 0);
	assert_int_equal(shmrpc_broadcast(a, buf, 3000, 20), 0);
	shmrpc_close(big);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
}

static void test_broadcast_partial_when_one_ring_is_full(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b"),
			   *c = th_open_ring(d, "c", 4096), *e = th_open(d, "e");
	char buf[128];
	int filled, empties, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(e);
	filled = th_fill_ring_full(a, "c", 100, &empties);
	assert_int_equal(shmrpc_broadcast(a, "cast", 4, 0), 2);
	assert_int_equal(shmrpc_broadcast(a, "timed", 5, 20), 2);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 4);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 5);
	assert_int_equal(shmrpc_recv(e, buf, sizeof(buf), NULL, 0), 4);
	assert_int_equal(shmrpc_recv(e, buf, sizeof(buf), NULL, 0), 5);
	for (i = 0; i < filled + empties; i++)
		assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), i < filled ? 100 : 0);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), -EAGAIN);
	/* room again: everybody */
	assert_int_equal(shmrpc_broadcast(a, "all", 3, 0), 3);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 3);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
	shmrpc_close(e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_broadcast_counts_receivers),
		T(test_broadcast_emsgsize_when_it_fits_no_ring),
		T(test_broadcast_partial_when_one_ring_is_full),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
