// SPDX-License-Identifier: MIT
/*
 * Inbound rings (lib/inbound.c): a sender's announcement of a new ring is
 * never lost, whatever the receiver meets when it opens the ring.
 *
 * Real processes, real kernel limits: a receiver whose descriptor table is
 * full (RLIMIT_NOFILE) when it first looks at an announced ring cannot open
 * it (EMFILE). That failure is transient: the receiving call says so once
 * (-EMFILE, shmrpc_last_error naming the sender), keeps the announcement,
 * retries at every later call and after every sleep, and once descriptors
 * are free every message arrives, in order, and the sender never stays
 * blocked on its full ring. The same holds for the rings chained behind the
 * announced one (an earlier holder of the sender's slot: prev_gen).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h" /* white box: the sender's slot, for the chain case */

#define RING 4096 /* 36 messages of MSG bytes fill it */
#define MSG 100
#define FILL_MAX 1024

/* Descriptors that fill this process's table (RLIMIT_NOFILE lowered). */
struct filler {
	int fd[FILL_MAX];
	int n;
	long free_after_ms; /* the thread frees them after this long */
};

static void fill_fds(struct filler *f, rlim_t limit)
{
	struct rlimit rl;
	int fd;

	CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = limit;
	CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	f->n = 0;
	while (f->n < FILL_MAX && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		f->fd[f->n++] = fd;
	CHILD_CHECK(f->n < FILL_MAX && errno == EMFILE);
}

static void *free_fds(void *arg)
{
	struct filler *f = arg;

	th_sleep_ms(f->free_after_ms);
	while (f->n > 0)
		close(f->fd[--f->n]);
	return NULL;
}

struct emfile {
	struct th_dom *d;
	int n;	    /* messages per sender */
	bool chain; /* two senders in one slot, one after the other */
	struct th_gate rx_ready, sent;
};

/* Receive @count messages of the streams 1..@streams, each in order. */
static void recv_streams(struct shmrpc_node *n, int count, int streams)
{
	uint8_t buf[MSG];
	uint64_t next[3] = { 0, 0, 0 };
	char from[SHMRPC_NAME_MAX + 1];
	uint64_t stream;
	int i, rc;

	for (i = 0; i < count; i++) {
		rc = shmrpc_recv(n, buf, sizeof(buf), from, 10000);
		if (rc != MSG)
			fprintf(stderr, "message %d of %d: %d (%s)\n", i, count, rc,
				shmrpc_last_error());
		CHILD_CHECK_RC(rc, MSG);
		CHILD_CHECK(!strcmp(from, "tx"));
		stream = buf[0];
		CHILD_CHECK(stream >= 1 && stream <= (uint64_t)streams);
		CHILD_CHECK(!th_check(buf + 1, MSG - 1, stream, next[stream]));
		next[stream]++;
	}
}

static int emfile_receiver(void *arg)
{
	struct emfile *e = arg;
	struct shmrpc_opts o = e->d->opts;
	struct filler f = { .free_after_ms = 300 };
	struct shmrpc_node *n;
	char buf[MSG];
	pthread_t t;
	double t0;
	int rc;

	o.ring_bytes = RING;
	CHILD_CHECK_RC(shmrpc_open("rx", &o, &n), 0);
	fill_fds(&f, 64);
	th_gate_open(&e->rx_ready);
	CHILD_CHECK(th_gate_wait(&e->sent, 10000) == 0);

	/* the announced ring cannot be opened: said once, with who and why */
	rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 200);
	fprintf(stderr, "receive with a full descriptor table: %d (%s)\n", rc, shmrpc_last_error());
	CHILD_CHECK_RC(rc, -EMFILE);
	/* (in the chain case, that sender has left already) */
	CHILD_CHECK(strstr(shmrpc_last_error(), e->chain ? "gen 2" : "'tx'"));
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 0), -EAGAIN);
	/* a blocking call meanwhile sleeps (retrying after each sleep) */
	t0 = th_cpu_ms(getpid());
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 400), -ETIMEDOUT);
	fprintf(stderr, "blocked 400 ms with the ring unopened: %.1f ms CPU\n",
		th_cpu_ms(getpid()) - t0);
	CHILD_CHECK(th_cpu_ms(getpid()) - t0 < 200);

	/* descriptors come back while we sleep: the retry after the sleep
	 * opens the ring, and everything arrives */
	CHILD_CHECK(pthread_create(&t, NULL, free_fds, &f) == 0);
	recv_streams(n, e->chain ? 2 * e->n : e->n, e->chain ? 2 : 1);
	pthread_join(t, NULL);
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(n);
	return 0;
}

/* Sends stream @stream: @e->n messages, each within 10 s (never stuck). */
static void send_stream(struct emfile *e, struct shmrpc_node *n, uint8_t stream, bool gate)
{
	uint8_t msg[MSG];
	int i;

	for (i = 0; i < e->n; i++) {
		msg[0] = stream;
		th_fill(msg + 1, MSG - 1, stream, (uint64_t)i);
		CHILD_CHECK_RC(shmrpc_send(n, "rx", msg, sizeof(msg), 10000), 0);
		if (i == 0 && gate)
			th_gate_open(&e->sent);
	}
}

static int emfile_sender(void *arg)
{
	struct emfile *e = arg;
	struct shmrpc_node *n;
	uint32_t slot;

	CHILD_CHECK(th_gate_wait(&e->rx_ready, 10000) == 0);
	n = th_open(e->d, "tx");
	CHILD_CHECK(n);
	if (!e->chain) {
		send_stream(e, n, 1, true);
		shmrpc_close(n);
		return 0;
	}
	/* leaves with its messages unread, and its slot is taken again */
	slot = n->slot;
	send_stream(e, n, 1, false);
	shmrpc_close(n);
	n = th_open(e->d, "tx");
	CHILD_CHECK(n);
	CHILD_CHECK(n->slot == slot);
	send_stream(e, n, 2, true);
	shmrpc_close(n);
	return 0;
}

static void emfile_case(struct th_dom *d, int count, bool chain)
{
	struct emfile e = { .d = d, .n = count, .chain = chain };
	pid_t rx, tx;

	th_gate_init(&e.rx_ready);
	th_gate_init(&e.sent);
	rx = th_fork(emfile_receiver, &e);
	tx = th_fork(emfile_sender, &e);
	assert_int_equal(th_wait(tx, 30000), 0);
	assert_int_equal(th_wait(rx, 30000), 0);
	assert_int_equal(th_shm_count(d->name), 0);
	th_gate_close(&e.rx_ready);
	th_gate_close(&e.sent);
}

/* The sender streams through a small ring: it blocks on it until the
 * receiver, once it could open it, drains it. */
static void test_inbound_emfile_ring_opened_later(void **state)
{
	emfile_case(*state, 500, false);
}

/* A ring announced behind the one that could not be opened (an earlier
 * holder of the sender's slot, which left) is not lost either. */
static void test_inbound_emfile_chain_opened_later(void **state)
{
	emfile_case(*state, 20, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inbound_emfile_ring_opened_later, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_inbound_emfile_chain_opened_later, th_setup,
						th_teardown),
	};

	/* Retries follow sleeps, which the safety timeout bounds: short here. */
	setenv("SHMRPC_SAFETY_MS", "100", 0);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
