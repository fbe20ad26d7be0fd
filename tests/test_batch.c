// SPDX-License-Identifier: MIT
/*
 * Batch calls: shmrpc_peer_sendv (lib/peer.c: many records, one tail
 * store, one look at the receiver's sleep flag) and shmrpc_recv_batch
 * (lib/recv.c, lib/rx.c: many records, one head store and one space-wake
 * check per ring). A stream of random sizes across ring wraps, sent and
 * received in random batches and single calls mixed, must be the stream
 * plain shmrpc_send calls make (same bytes, same order); the calls' rules
 * (partial batches, errors, timeouts, deferred wakes, too small buffers,
 * a held peek); one wake per batch each way.
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"

#define RING 4096 /* a small ring: it wraps and fills all the time */
#define MAXMSG (RING / 2 - 8)
#define STREAM 7

/* The size of message @i of the stream: random, the same on both sides;
 * now and then empty, now and then the largest a ring takes. */
static size_t msg_size(uint64_t i)
{
	uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z ^= z >> 27;
	switch (z % 16) {
	case 0:
		return 0;
	case 1:
		return MAXMSG;
	case 2:
	case 3:
		return (size_t)(z >> 8) % (MAXMSG + 1);
	default:
		return (size_t)(z >> 8) % 200;
	}
}

struct stream {
	struct th_dom *d;
	uint64_t count;
	uint64_t seed;
	bool plain; /* plain shmrpc_send only: the reference */
};

/* A child: "s", sends messages 0..count-1 of the stream to "r" in random
 * batches through a handle, or with plain sends. */
static int sender_main(void *arg)
{
	struct stream *st = arg;
	static uint8_t bufs[64][MAXMSG];
	struct iovec iov[64];
	struct shmrpc_peer *p;
	struct shmrpc_node *n;
	uint64_t i = 0, rng = st->seed;
	unsigned k, want;
	int rc;

	CHILD_CHECK_RC(shmrpc_open("s", &st->d->opts, &n), 0);
	CHILD_CHECK_RC(shmrpc_peer_get(n, "r", 10000, &p), 0);
	while (i < st->count) {
		want = 1 + (unsigned)(th_rand(&rng) % 64);
		if (want > st->count - i)
			want = (unsigned)(st->count - i);
		for (k = 0; k < want; k++) {
			iov[k].iov_base = bufs[k];
			iov[k].iov_len = msg_size(i + k);
			th_fill(bufs[k], iov[k].iov_len, STREAM, i + k);
		}
		if (st->plain || th_rand(&rng) % 4 == 0) {
			for (k = 0; k < want; k++)
				CHILD_CHECK_RC(st->plain ? shmrpc_send(n, "r", iov[k].iov_base,
								       iov[k].iov_len, -1) :
							   shmrpc_peer_send(p, iov[k].iov_base,
									    iov[k].iov_len, -1, 0),
					       0);
			i += want;
			continue;
		}
		rc = shmrpc_peer_sendv(p, iov, want, -1, 0);
		CHILD_CHECK(rc >= 1 && (unsigned)rc <= want);
		i += (unsigned)rc; /* the rest goes in the next batch */
	}
	shmrpc_peer_put(p);
	shmrpc_close(n);
	return 0;
}

/* Receive messages 0..count-1 of the stream in random batches (random
 * counts, buffers now and then too small) and single receives: checked
 * one by one. The calls made, by kind. */
static void receive_stream(struct shmrpc_node *r, uint64_t count, uint64_t seed, int calls[3])
{
	static uint8_t bufs[64][MAXMSG];
	struct shmrpc_msg m[64];
	uint64_t i = 0, rng = seed;
	unsigned k, nr;
	int rc;

	while (i < count) {
		nr = 1 + (unsigned)(th_rand(&rng) % 64);
		for (k = 0; k < nr; k++) {
			m[k].buf = bufs[k];
			m[k].cap = th_rand(&rng) % 8 ? MAXMSG : th_rand(&rng) % (MAXMSG + 1);
		}
		if (th_rand(&rng) % 4 == 0) {
			rc = shmrpc_recv(r, bufs[0], MAXMSG, m[0].from, 10000);
			assert_true(rc >= 0);
			m[0].len = (size_t)rc;
			rc = 1;
			calls[0]++;
		} else {
			rc = shmrpc_recv_batch(r, m, nr, 10000);
			if (rc == -EMSGSIZE) { /* the first did not fit: take it alone */
				assert_true(m[0].cap < msg_size(i));
				calls[2]++;
				continue;
			}
			assert_true(rc >= 1 && (unsigned)rc <= nr);
			calls[1]++;
		}
		for (k = 0; k < (unsigned)rc; k++, i++) {
			assert_string_equal(m[k].from, "s");
			assert_int_equal(m[k].len, msg_size(i));
			assert_int_equal(th_check(m[k].buf, m[k].len, STREAM, i), 0);
		}
	}
}

static void stream_round(struct th_dom *d, uint64_t count, bool plain, uint64_t seed)
{
	struct shmrpc_node *r = th_open_ring(d, "r", RING);
	struct stream st = { d, count, seed, plain };
	struct shmrpc_stats s;
	int calls[3] = { 0, 0, 0 };
	char buf[8];
	pid_t pid;

	assert_non_null(r);
	pid = th_fork(sender_main, &st);
	receive_stream(r, count, seed ^ 0x5555, calls);
	assert_int_equal(th_wait(pid, 30000), 0);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	s = th_stats(r);
	assert_int_equal(s.msgs_recv, count);
	print_message("%llu messages (%s), received by %d recv, %d recv_batch, %d -EMSGSIZE\n",
		      (unsigned long long)count, plain ? "plain sends" : "sendv and sends",
		      calls[0], calls[1], calls[2]);
	shmrpc_close(r);
}

/* The same stream, sent by plain sends and by handles in batches: the
 * receiver checks every message against the same reference. */
static void test_batch_stream_matches_plain_sends(void **state)
{
	struct th_dom *d = *state;

	stream_round(d, 20000, true, 1);
	stream_round(d, 60000, false, 2);
	stream_round(d, 60000, false, 3);
}

/* ==================================================== sendv's rules */

static void test_sendv_partial_and_errors(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", RING);
	static uint8_t big[MAXMSG + 1];
	struct iovec iov[300];
	struct shmrpc_peer *p;
	struct shmrpc_stats s;
	uint64_t v[300];
	int i;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	for (i = 0; i < 300; i++) {
		v[i] = (uint64_t)i;
		iov[i].iov_base = &v[i];
		iov[i].iov_len = sizeof(v[i]); /* a 16-byte record: 256 fill the ring */
	}
	assert_int_equal(shmrpc_peer_sendv(p, iov, 300, 0, 0), RING / 16);
	assert_int_equal(shmrpc_peer_sendv(p, iov, 1, 0, 0), -EAGAIN);
	assert_int_equal(shmrpc_peer_sendv(p, iov, 1, 50, 0), -ETIMEDOUT);
	s = th_stats(a);
	assert_int_equal(s.msgs_sent, RING / 16);
	assert_int_equal(s.bytes_sent, RING / 16 * 8);
	assert_true(s.send_full >= 3);
	for (i = 0; i < RING / 16; i++) {
		uint64_t got;

		assert_int_equal(shmrpc_recv(b, &got, sizeof(got), NULL, 0), sizeof(got));
		assert_int_equal(got, (uint64_t)i);
	}
	/* too large: the first is -EMSGSIZE; a later one ends the batch */
	iov[1].iov_base = big;
	iov[1].iov_len = sizeof(big);
	assert_int_equal(shmrpc_peer_sendv(p, &iov[1], 2, 0, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_peer_sendv(p, iov, 3, 0, 0), 1);
	/* empty messages and a NULL base with no length are messages too */
	iov[1].iov_base = NULL;
	iov[1].iov_len = 0;
	assert_int_equal(shmrpc_peer_sendv(p, iov, 2, 0, 0), 2);
	assert_int_equal(shmrpc_recv(b, v, sizeof(v[0]), NULL, 0), 8);
	assert_int_equal(shmrpc_recv(b, v, sizeof(v[0]), NULL, 0), 8);
	assert_int_equal(shmrpc_recv(b, v, sizeof(v[0]), NULL, 0), 0);
	assert_int_equal(shmrpc_recv(b, v, sizeof(v[0]), NULL, 0), -EAGAIN);
	shmrpc_peer_put(p);
	shmrpc_close(a);
	shmrpc_close(b);
}

struct batch_rx {
	struct shmrpc_node *n;
	struct shmrpc_msg m[64];
	uint64_t bufs[64];
	int rc;
	atomic_int done;
};

static void *batch_rx_thread(void *arg)
{
	struct batch_rx *x = arg;
	int k;

	for (k = 0; k < 64; k++) {
		x->m[k].buf = &x->bufs[k];
		x->m[k].cap = sizeof(x->bufs[k]);
	}
	x->rc = shmrpc_recv_batch(x->n, x->m, 64, 10000);
	atomic_store(&x->done, 1);
	return NULL;
}

/* A receiver asleep: a batch of 32 costs its sender one wake, and the
 * receiver finds all 32 at once (one tail store). With SHMRPC_SEND_DEFER
 * the wake waits for shmrpc_flush. */
static void test_sendv_one_wake(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct batch_rx x;
	struct iovec iov[32];
	uint64_t v[32], wakes, sleeps;
	struct shmrpc_peer *p;
	pthread_t t;
	int i, round;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_peer_get(a, "b", 0, &p), 0);
	for (i = 0; i < 32; i++) {
		v[i] = (uint64_t)i;
		iov[i].iov_base = &v[i];
		iov[i].iov_len = sizeof(v[i]);
	}
	for (round = 0; round < 2; round++) {
		x.n = b;
		atomic_store(&x.done, 0);
		sleeps = th_stats(b).sleeps;
		assert_int_equal(pthread_create(&t, NULL, batch_rx_thread, &x), 0);
		assert_true(th_wait_sleeps_above(b, sleeps, 5000));
		th_sleep_ms(20); /* asleep in the kernel, not about to be */
		wakes = th_stats(a).wakes_sent;
		assert_int_equal(shmrpc_peer_sendv(p, iov, 32, 0, round ? SHMRPC_SEND_DEFER : 0),
				 32);
		if (round) { /* held back: the receiver sleeps on */
			th_sleep_ms(200);
			assert_int_equal(atomic_load(&x.done), 0);
			assert_int_equal(shmrpc_flush(a), 1);
		}
		pthread_join(t, NULL);
		/* counted when found needed (deferred or not) */
		assert_int_equal(th_stats(a).wakes_sent, wakes + 1);
		assert_int_equal(x.rc, 32);
		for (i = 0; i < 32; i++) {
			assert_int_equal(x.m[i].len, 8);
			assert_int_equal(x.bufs[i], (uint64_t)i);
		}
	}
	shmrpc_peer_put(p);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ================================================= recv_batch's rules */

static void test_recv_batch_rules(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *c = th_open(d, "c"), *b = th_open(d, "b");
	struct shmrpc_msg m[8];
	struct shmrpc_rxbuf rx;
	char bufs[8][128];
	int i;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	for (i = 0; i < 8; i++) {
		m[i].buf = bufs[i];
		m[i].cap = sizeof(bufs[i]);
	}
	assert_int_equal(shmrpc_recv_batch(NULL, m, 8, 0), -EINVAL);
	assert_int_equal(shmrpc_recv_batch(b, NULL, 8, 0), -EINVAL);
	assert_int_equal(shmrpc_recv_batch(b, m, 0, 0), -EINVAL);
	assert_int_equal(shmrpc_recv_batch(b, m, 8, -2), -EINVAL);
	m[3].buf = NULL;
	assert_int_equal(shmrpc_recv_batch(b, m, 8, 0), -EINVAL);
	m[3].cap = 0; /* NULL with no room: fine, for empty messages */
	assert_int_equal(shmrpc_recv_batch(b, m, 8, 0), -EAGAIN);
	assert_int_equal(shmrpc_recv_batch(b, m, 8, 50), -ETIMEDOUT);
	m[3].buf = bufs[3];
	m[3].cap = sizeof(bufs[3]);
	/* from two senders, up to n */
	for (i = 0; i < 3; i++) {
		assert_int_equal(shmrpc_send(a, "b", "aaaa", 4, 0), 0);
		assert_int_equal(shmrpc_send(c, "b", "cc", 2, 0), 0);
	}
	assert_int_equal(shmrpc_recv_batch(b, m, 4, 0), 4);
	assert_int_equal(shmrpc_recv_batch(b, m + 4, 4, 0), 2);
	for (i = 0; i < 6; i++)
		assert_int_equal(m[i].len, strcmp(m[i].from, "a") ? 2 : 4);
	/* a message too large for its buffer ends the batch before it */
	assert_int_equal(shmrpc_send(a, "b", "1", 1, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", bufs[7], 100, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", "3", 1, 0), 0);
	m[1].cap = 50;
	assert_int_equal(shmrpc_recv_batch(b, m, 8, 0), 1);
	assert_int_equal(shmrpc_recv_batch(b, m + 1, 7, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_peek(b, &rx, 0), 100); /* still queued */
	/* a held peek: the batch begins with the peeked message, ending it */
	m[1].cap = sizeof(bufs[1]);
	assert_int_equal(shmrpc_recv_batch(b, m, 8, 0), 2);
	assert_int_equal(m[0].len, 100);
	assert_int_equal(m[1].len, 1);
	assert_int_equal(shmrpc_release(b, &rx), -EINVAL);
	shmrpc_close(a);
	shmrpc_close(c);
	shmrpc_close(b);
}

struct full_sender {
	struct shmrpc_node *n;
	int rc;
};

static void *full_sender_thread(void *arg)
{
	struct full_sender *f = arg;
	uint64_t v = 1;

	f->rc = shmrpc_send(f->n, "b", &v, sizeof(v), 10000); /* blocks: full */
	return NULL;
}

/* A sender asleep on a full ring: a batch that takes 64 of its records
 * hands the space back once, with one wake. */
static void test_recv_batch_one_give_back(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", RING);
	struct full_sender f = { a, 1 };
	uint64_t bufs[64], wakes, sleeps;
	struct shmrpc_msg m[64];
	pthread_t t;
	int i, full;

	assert_non_null(a);
	assert_non_null(b);
	full = th_fill_ring(a, "b", 8);
	assert_int_equal(full, RING / 16);
	sleeps = th_stats(a).sleeps;
	assert_int_equal(pthread_create(&t, NULL, full_sender_thread, &f), 0);
	assert_true(th_wait_sleeps_above(a, sleeps, 5000));
	th_sleep_ms(20);
	for (i = 0; i < 64; i++) {
		m[i].buf = &bufs[i];
		m[i].cap = sizeof(bufs[i]);
	}
	wakes = th_stats(b).wakes_sent;
	assert_int_equal(shmrpc_recv_batch(b, m, 64, 0), 64);
	pthread_join(t, NULL);
	assert_int_equal(f.rc, 0);
	assert_int_equal(th_stats(b).wakes_sent, wakes + 1);
	assert_int_equal(th_stats(b).msgs_recv, 64);
	shmrpc_close(a);
	shmrpc_close(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_batch_stream_matches_plain_sends),
		T(test_sendv_partial_and_errors),
		T(test_sendv_one_wake),
		T(test_recv_batch_rules),
		T(test_recv_batch_one_give_back),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
