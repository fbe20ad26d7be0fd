// SPDX-License-Identifier: MIT
/*
 * Zero-copy sending (lib/send.c, lib/tx.c): the rules of shmrpc_reserve,
 * shmrpc_commit and shmrpc_cancel, and senders to one receiver serialised.
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

/* ================================================== 4. zero-copy sending */

static void test_reserve_commit_shorter_length(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096);
	struct shmrpc_txbuf tx;
	struct shmrpc_stats st;
	uint8_t buf[4096];
	int max, k, len;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_reserve(a, "b", 1000, &tx, 0), 0);
	assert_non_null(tx.data);
	assert_int_equal(tx.cap, 1000);
	th_fill(tx.data, 10, 2, 0);
	assert_int_equal(shmrpc_commit(a, &tx, 10), 0);
	assert_int_equal(shmrpc_commit(a, &tx, 10), -EINVAL); /* already ended */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 10);
	assert_int_equal(th_check(buf, 10, 2, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = th_stats(a);
	assert_int_equal(st.msgs_sent, 1);
	assert_int_equal(st.bytes_sent, 10);

	max = shmrpc_max_size(a, "b");
	assert_int_equal(max, 2040);
	assert_int_equal(shmrpc_reserve(a, "b", (size_t)max + 1, &tx, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_reserve(a, "b", SIZE_MAX, &tx, 0), -EMSGSIZE);
	/* the largest reservation, committed short, over and over: every
	 * position of the ring, every wrap */
	for (k = 0; k < 300; k++) {
		len = (k * 37) % (max + 1);
		assert_int_equal(shmrpc_reserve(a, "b", (size_t)max, &tx, 0), 0);
		assert_int_equal(tx.cap, (size_t)max);
		th_fill(tx.data, (size_t)len, 3, (uint64_t)k);
		assert_int_equal(shmrpc_commit(a, &tx, (size_t)len), 0);
		assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), len);
		assert_int_equal(th_check(buf, (size_t)len, 3, (uint64_t)k), 0);
	}
	shmrpc_close(a);
	shmrpc_close(b);
}

static void test_reserve_cancel_sends_nothing(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096);
	struct shmrpc_txbuf tx, copy;
	uint8_t buf[4096];
	int k;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_reserve(a, "b", 100, &tx, 0), 0);
	memset(tx.data, 'C', 100);
	copy = tx;
	shmrpc_cancel(a, &tx);
	shmrpc_cancel(a, &tx); /* again: nothing */
	assert_int_equal(shmrpc_commit(a, &tx, 10), -EINVAL);
	assert_int_equal(shmrpc_commit(a, &copy, 10), -EINVAL); /* the copy too */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_stats(a).msgs_sent, 0);
	/* the target is free again at once */
	assert_int_equal(shmrpc_send(a, "b", "ok", 2, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 2);
	assert_memory_equal(buf, "ok", 2);
	/* cancelled reservations at every position, wrapping or not, leave
	 * no trace in the stream */
	for (k = 0; k < 200; k++) {
		assert_int_equal(shmrpc_reserve(a, "b", 1500, &tx, 0), 0);
		memset(tx.data, 'X', 1500);
		shmrpc_cancel(a, &tx);
		th_fill(buf, (size_t)(k % 300), 4, (uint64_t)k);
		assert_int_equal(shmrpc_send(a, "b", buf, (size_t)(k % 300), 0), 0);
		assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), k % 300);
		assert_int_equal(th_check(buf, (size_t)(k % 300), 4, (uint64_t)k), 0);
	}
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_stats(a).msgs_sent, 201);
	shmrpc_close(a);
	shmrpc_close(b);
}

static void test_reserve_then_send_same_target_is_edeadlk(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b"), *c = th_open(d, "c");
	struct shmrpc_txbuf tx, tx2;
	char buf[32];
	double t0;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(shmrpc_reserve(a, "b", 16, &tx, -1), 0);
	memset(tx.data, 'R', 16);
	t0 = th_now_ms();
	/* every timeout: the header promises -EDEADLK, not a wait */
	assert_int_equal(shmrpc_send(a, "b", "x", 1, 0), -EDEADLK);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, 50), -EDEADLK);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, -1), -EDEADLK);
	assert_int_equal(shmrpc_reserve(a, "b", 1, &tx2, 0), -EDEADLK);
	assert_int_equal(shmrpc_reserve(a, "b", 1, &tx2, -1), -EDEADLK);
	assert_true(th_now_ms() - t0 < TH_PROMPT_MS);
	/* other targets are fine meanwhile */
	assert_int_equal(shmrpc_send(a, "c", "y", 1, 0), 0);
	assert_int_equal(shmrpc_commit(a, &tx, 16), 0);
	assert_int_equal(shmrpc_send(a, "b", "z", 1, 0), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 16);
	assert_int_equal(buf[0], 'R');
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 1);
	assert_int_equal(buf[0], 'z');
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 1);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
}

struct foreign {
	struct shmrpc_node *n;
	struct shmrpc_txbuf *tx;
	int commit_rc, send0_rc, send30_rc;
};

static void *foreign_thread(void *arg)
{
	struct foreign *f = arg;

	f->commit_rc = shmrpc_commit(f->n, f->tx, 1);
	shmrpc_cancel(f->n, f->tx);
	/* the reservation still holds the target */
	f->send0_rc = shmrpc_send(f->n, "b", "t", 1, 0);
	f->send30_rc = shmrpc_send(f->n, "b", "t", 1, 30);
	return NULL;
}

static void test_reserve_commit_cancel_other_thread_einval(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc_txbuf tx;
	struct foreign f;
	pthread_t t;
	char buf[32];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_reserve(a, "b", 8, &tx, 0), 0);
	memcpy(tx.data, "mainmain", 8);
	f.n = a;
	f.tx = &tx;
	assert_int_equal(pthread_create(&t, NULL, foreign_thread, &f), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(f.commit_rc, -EINVAL);
	assert_int_equal(f.send0_rc, -EAGAIN);
	assert_int_equal(f.send30_rc, -ETIMEDOUT);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_stats(a).msgs_sent, 0);
	/* the reservation survived both: its owner commits it */
	assert_int_equal(shmrpc_commit(a, &tx, 8), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 8);
	assert_memory_equal(buf, "mainmain", 8);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(a);
	shmrpc_close(b);
}

static void test_reserve_commit_over_cap_keeps_reservation(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc_txbuf tx;
	char buf[32];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_reserve(a, "b", 10, &tx, 0), 0);
	memcpy(tx.data, "0123456789", 10);
	assert_int_equal(shmrpc_commit(a, &tx, 11), -EINVAL);
	assert_int_equal(shmrpc_commit(a, &tx, SIZE_MAX), -EINVAL);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_commit(a, &tx, 10), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 10);
	assert_memory_equal(buf, "0123456789", 10);
	shmrpc_close(a);
	shmrpc_close(b);
}

/*
 * A copy of an ended reservation is not a reservation. The header does not
 * spell this out for txbufs as it does for rxbufs, but the alternative is
 * the library writing a record past the space it reserved: the receiver
 * then finds its ring corrupt (-EPROTO) and drops it, queued messages and
 * all. Equally, the library must check len against what it reserved, not
 * against a cap the caller can overwrite.
 */
static void test_reserve_commit_stale_copy_einval(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096);
	struct shmrpc_txbuf tx, stale, tx2;
	static uint8_t buf[4096];
	int k, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_reserve(a, "b", 2000, &tx, 0), 0);
	stale = tx;
	memset(tx.data, 's', 1);
	assert_int_equal(shmrpc_commit(a, &tx, 1), 0);
	k = th_fill_ring(a, "b", 1000);
	assert_int_equal(shmrpc_reserve(a, "b", 8, &tx2, 0), 0);
	memcpy(tx2.data, "current!", 8);
	assert_int_equal(shmrpc_commit(a, &stale, 2000), -EINVAL);
	assert_int_equal(shmrpc_commit(a, &stale, 1), -EINVAL);
	shmrpc_cancel(a, &stale); /* not ours to end */
	tx2.cap = 4000;		  /* a cap the library did not grant */
	assert_int_equal(shmrpc_commit(a, &tx2, 4000), -EINVAL);
	assert_int_equal(shmrpc_commit(a, &tx2, 8), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 1);
	for (i = 0; i < k; i++)
		assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 1000);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 8);
	assert_memory_equal(buf, "current!", 8);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_send(a, "b", "ok", 2, 0), 0);
	shmrpc_close(a);
	shmrpc_close(b);
}

struct blocked_send {
	struct shmrpc_node *n;
	const char *to, *msg;
	int timeout_ms, rc;
	struct th_gate done;
};

static void *blocked_send_thread(void *arg)
{
	struct blocked_send *s = arg;

	s->rc = shmrpc_send(s->n, s->to, s->msg, strlen(s->msg), s->timeout_ms);
	th_gate_open(&s->done);
	return NULL;
}

static void test_reserve_serialises_senders_to_same_target(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b"), *c = th_open(d, "c");
	struct blocked_send sb = { a, "b", "second", -1, 1, { { -1, -1 } } };
	struct blocked_send sc = { a, "c", "other", -1, 1, { { -1, -1 } } };
	struct shmrpc_txbuf tx;
	pthread_t tb, tc;
	char buf[32];

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	th_gate_init(&sb.done);
	th_gate_init(&sc.done);
	assert_int_equal(shmrpc_reserve(a, "b", 5, &tx, 0), 0);
	memcpy(tx.data, "first", 5);
	assert_int_equal(pthread_create(&tb, NULL, blocked_send_thread, &sb), 0);
	assert_int_equal(pthread_create(&tc, NULL, blocked_send_thread, &sc), 0);
	/* to another target: proceeds */
	assert_int_equal(th_gate_wait(&sc.done, 5000), 0);
	assert_int_equal(sc.rc, 0);
	/* to the reserved one: waits for the commit */
	assert_int_equal(th_gate_wait(&sb.done, 200), -1);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_commit(a, &tx, 5), 0);
	assert_int_equal(th_gate_wait(&sb.done, 5000), 0);
	assert_int_equal(sb.rc, 0);
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 5);
	assert_memory_equal(buf, "first", 5);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), 6);
	assert_memory_equal(buf, "second", 6);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 5);
	assert_memory_equal(buf, "other", 5);
	th_gate_close(&sb.done);
	th_gate_close(&sc.done);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_reserve_commit_shorter_length),
		T(test_reserve_cancel_sends_nothing),
		T(test_reserve_then_send_same_target_is_edeadlk),
		T(test_reserve_commit_cancel_other_thread_einval),
		T(test_reserve_commit_over_cap_keeps_reservation),
		T(test_reserve_commit_stale_copy_einval),
		T(test_reserve_serialises_senders_to_same_target),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
