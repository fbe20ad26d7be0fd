// SPDX-License-Identifier: MIT
/*
 * Connections (lib/connect.c, lib/conntab.c): peers leaving and their
 * names taken again, generations and the chain of unopened rings
 * (prev_gen); and the connect protocol's own calls: what a connection
 * leaves in both node segments, a receiver already leaving, a dead one.
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here, so a
 * bound such as "stop returns within 2 s" checks a wake, not a speed.
 *
 * White box where the public API cannot tell: the tests read file names
 * and headers in /dev/shm (lib/layout.h) to know which files belong to which
 * node, and plant broken registries there.
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
#include "connect.h"
#include "layout.h"
#include "node_types.h"
#include "nodeseg.h"
#include "registry.h"

/* ========================================================= 9. peer leaving */

struct timed_send {
	struct shmrpc_node *n;
	int rc;
	double end_ms;
};

static void *timed_send_thread(void *arg)
{
	struct timed_send *t = arg;
	char buf[100];

	memset(buf, 'B', sizeof(buf));
	t->rc = shmrpc_send(t->n, "r", buf, sizeof(buf), 10000);
	t->end_ms = th_now_ms();
	return NULL;
}

static void test_leave_receiver_close_wakes_blocked_sender(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *s = th_open(d, "s"), *r = th_open_ring(d, "r", 4096), *r2;
	struct timed_send t = { s, 1, 0 };
	struct shmrpc_txbuf tx;
	char buf[128], from[SHMRPC_NAME_MAX + 1];
	pthread_t th;
	uint64_t sleeps;
	double t_close;

	assert_non_null(s);
	assert_non_null(r);
	assert_true(th_fill_ring(s, "r", 100) > 0);
	sleeps = th_stats(s).sleeps;
	assert_int_equal(pthread_create(&th, NULL, timed_send_thread, &t), 0);
	assert_true(th_wait_sleeps_above(s, sleeps, 5000)); /* blocked on the full ring */
	t_close = th_now_ms();
	shmrpc_close(r);
	pthread_join(th, NULL);
	print_message("blocked send returned %.2f ms after the receiver closed\n",
		      t.end_ms - t_close);
	assert_int_equal(t.rc, -EPIPE);
	assert_true(t.end_ms - t_close < TH_PROMPT_MS);
	/* the name stays gone for sends, whatever the timeout */
	assert_int_equal(shmrpc_send(s, "r", "x", 1, 0), -EPIPE);
	assert_int_equal(shmrpc_send(s, "r", "x", 1, -1), -EPIPE);
	assert_int_equal(shmrpc_reserve(s, "r", 1, &tx, -1), -EPIPE);
	assert_int_equal(shmrpc_is_local(s, "r"), 0);
	assert_int_equal(shmrpc_broadcast(s, "x", 1, 0), 0);
	/* until a node of that name joins: a fresh start, old queue gone */
	r2 = th_open(d, "r");
	assert_non_null(r2);
	assert_int_equal(shmrpc_send(s, "r", "new", 3, 0), 0);
	assert_int_equal(shmrpc_recv(r2, buf, sizeof(buf), from, 1000), 3);
	assert_memory_equal(buf, "new", 3);
	assert_string_equal(from, "s");
	assert_int_equal(shmrpc_recv(r2, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_stats(s).rings_out, 1);
	shmrpc_close(r2);
	shmrpc_close(s);
}

#define LEAVE_N 100

static void test_leave_sender_close_receiver_drains(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *s = th_open(d, "s"), *r = th_open(d, "r");
	struct shmrpc_stats st;
	uint8_t buf[512];
	int i;

	assert_non_null(s);
	assert_non_null(r);
	for (i = 0; i < LEAVE_N; i++) {
		th_fill(buf, (size_t)(i + 1), 20, (uint64_t)i);
		assert_int_equal(shmrpc_send(s, "r", buf, (size_t)(i + 1), 0), 0);
	}
	/* the receiver has the ring open (one message taken) */
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), 1);
	assert_int_equal(th_stats(r).rings_in, 1);
	shmrpc_close(s);
	for (i = 1; i < LEAVE_N; i++) {
		assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 1000), i + 1);
		assert_int_equal(th_check(buf, (size_t)(i + 1), 20, (uint64_t)i), 0);
	}
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = th_stats(r);
	assert_int_equal(st.rings_in, 0);
	assert_int_equal(st.msgs_recv, LEAVE_N);
	/* its ring is gone from /dev/shm: only the registry and r's segment */
	assert_int_equal(th_shm_count(d->name), 2);
	shmrpc_close(r);
}

static int leaving_sender(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n = th_open(d, "s");
	uint8_t buf[512];
	int i;

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "r", 5000) == 0);
	for (i = 0; i < LEAVE_N; i++) {
		th_fill(buf, (size_t)(i + 1), 21, (uint64_t)i);
		CHILD_CHECK_RC(shmrpc_send(n, "r", buf, (size_t)(i + 1), 5000), 0);
	}
	shmrpc_close(n);
	return 0;
}

/* The sender is another process, gone before the receiver ever looked. */
static void test_leave_sender_exit_before_receiver_looked(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r");
	char from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_stats st;
	uint8_t buf[512];
	pid_t pid;
	int i;

	assert_non_null(r);
	pid = th_fork(leaving_sender, d);
	assert_int_equal(th_wait(pid, 10000), 0);
	assert_int_equal(shmrpc_is_local(r, "s"), 0);
	for (i = 0; i < LEAVE_N; i++) {
		assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), from, 1000), i + 1);
		assert_int_equal(th_check(buf, (size_t)(i + 1), 21, (uint64_t)i), 0);
		assert_string_equal(from, "s");
	}
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = th_stats(r);
	assert_int_equal(st.rings_in, 0);
	assert_int_equal(st.msgs_recv, LEAVE_N);
	assert_int_equal(th_shm_count(d->name), 2);
	shmrpc_close(r);
}

/*
 * A node of the name we sent to left (closed, or SIGKILLed) and a new one
 * took the name: the header's promise is that the next send connects to
 * it. It used to return -EPIPE once (the old ring's RX_CLOSED, found at
 * send time) and drop the message. The same for reserve and broadcast.
 */
enum { GONE_CLOSE, GONE_KILL };
enum { VIA_SEND, VIA_RESERVE, VIA_BROADCAST };

struct incarnation {
	struct th_dom *d;
	const char *want; /* the one message it must receive */
	struct th_gate ready, go;
};

/* "b": receives exactly @want from "a", then waits for go and closes. */
static int incarnation_main(void *arg)
{
	struct incarnation *b = arg;
	struct shmrpc_node *n = th_open(b->d, "b");
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	size_t len = strlen(b->want);

	CHILD_CHECK(n);
	th_gate_open(&b->ready);
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, 10000), len);
	CHILD_CHECK(!memcmp(buf, b->want, len) && !strcmp(from, "a"));
	th_gate_open(&b->ready);
	CHILD_CHECK(th_gate_wait(&b->go, 10000) == 0);
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(n);
	return 0;
}

static pid_t incarnation_start(struct incarnation *b, struct th_dom *d, const char *want)
{
	pid_t pid;

	b->d = d;
	b->want = want;
	th_gate_init(&b->ready);
	th_gate_init(&b->go);
	pid = th_fork(incarnation_main, b);
	assert_int_equal(th_gate_wait(&b->ready, 10000), 0); /* joined */
	return pid;
}

static void incarnation_end(struct incarnation *b, pid_t pid, int how)
{
	if (how == GONE_KILL) {
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	} else {
		th_gate_open(&b->go);
		assert_int_equal(th_wait(pid, 10000), 0);
	}
	th_gate_close(&b->ready);
	th_gate_close(&b->go);
}

static int send_via(struct shmrpc_node *a, int via, const char *msg)
{
	struct shmrpc_txbuf tx;
	int rc;

	switch (via) {
	case VIA_SEND:
		return shmrpc_send(a, "b", msg, strlen(msg), 1000);
	case VIA_RESERVE:
		rc = shmrpc_reserve(a, "b", strlen(msg), &tx, 1000);
		if (rc)
			return rc;
		memcpy(tx.data, msg, strlen(msg));
		return shmrpc_commit(a, &tx, strlen(msg));
	default:
		rc = shmrpc_broadcast(a, msg, strlen(msg), 1000);
		return rc == 1 ? 0 : rc < 0 ? rc : -EPIPE;
	}
}

static void rejoin_case(struct th_dom *d, int how, int via)
{
	struct shmrpc_node *a = th_open(d, "a");
	struct incarnation b1, b2;
	pid_t p1, p2;

	assert_non_null(a);
	p1 = incarnation_start(&b1, d, "old");
	assert_int_equal(send_via(a, via, "old"), 0);
	assert_int_equal(th_gate_wait(&b1.ready, 10000), 0); /* received: ring open */
	incarnation_end(&b1, p1, how);
	p2 = incarnation_start(&b2, d, "new");
	assert_int_equal(shmrpc_is_local(a, "b"), 1);
	assert_int_equal(send_via(a, via, "new"), 0); /* the very next one */
	assert_int_equal(th_gate_wait(&b2.ready, 10000), 0);
	incarnation_end(&b2, p2, GONE_CLOSE);
	assert_int_equal(th_stats(a).rings_out, 1);
	shmrpc_close(a);
}

static void test_leave_rejoined_name_next_send_connects(void **state)
{
	int how, via;

	for (how = GONE_CLOSE; how <= GONE_KILL; how++)
		for (via = VIA_SEND; via <= VIA_BROADCAST; via++)
			rejoin_case(*state, how, via);
}

/* Nobody of the name is back: -EPIPE, and again, until one joins. */
static void test_leave_name_gone_epipe_until_rejoin(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a");
	struct incarnation b1, b2;
	struct shmrpc_txbuf tx;
	int how;
	pid_t p;

	assert_non_null(a);
	for (how = GONE_CLOSE; how <= GONE_KILL; how++) {
		p = incarnation_start(&b1, d, "old");
		assert_int_equal(shmrpc_send(a, "b", "old", 3, 1000), 0);
		assert_int_equal(th_gate_wait(&b1.ready, 10000), 0);
		incarnation_end(&b1, p, how);
		assert_int_equal(shmrpc_is_local(a, "b"), 0);
		assert_int_equal(shmrpc_send(a, "b", "x", 1, 1000), -EPIPE);
		assert_int_equal(shmrpc_send(a, "b", "x", 1, 1000), -EPIPE);
		assert_int_equal(shmrpc_reserve(a, "b", 1, &tx, 1000), -EPIPE);
		assert_int_equal(shmrpc_broadcast(a, "x", 1, 1000), 0);
		p = incarnation_start(&b2, d, "new");
		assert_int_equal(shmrpc_send(a, "b", "new", 3, 1000), 0);
		assert_int_equal(th_gate_wait(&b2.ready, 10000), 0);
		incarnation_end(&b2, p, GONE_CLOSE);
	}
	shmrpc_close(a);
}

/* ======================================================= generations */

struct reopener {
	struct th_dom *d;
	bool recv_first;
	struct th_gate joined, closed, go_reopen, rejoined, done;
};

static int reopener_main(void *arg)
{
	struct reopener *r = arg;
	struct shmrpc_node *n;
	char buf[16], from[SHMRPC_NAME_MAX + 1];

	CHILD_CHECK_RC(shmrpc_open("b", &r->d->opts, &n), 0);
	if (r->recv_first)
		CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 5000), 3);
	th_gate_open(&r->joined);
	CHILD_CHECK(th_gate_wait(&r->closed, 10000) == 0); /* "close now" */
	shmrpc_close(n);
	th_gate_open(&r->joined);
	CHILD_CHECK(th_gate_wait(&r->go_reopen, 10000) == 0);
	CHILD_CHECK_RC(shmrpc_open("b", &r->d->opts, &n), 0);
	th_gate_open(&r->rejoined);
	/* only what was sent to this incarnation arrives */
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, 5000), 3);
	CHILD_CHECK(!memcmp(buf, "new", 3) && !strcmp(from, "p"));
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 100), -ETIMEDOUT);
	CHILD_CHECK(th_gate_wait(&r->done, 10000) == 0);
	shmrpc_close(n);
	return 0;
}

static void reopen_case(struct th_dom *d, bool recv_first, bool reopen_before_send)
{
	struct reopener r = { .d = d, .recv_first = recv_first };
	struct shmrpc_node *p = th_open(d, "p");
	char id[32], id2[32];
	pid_t pid;

	assert_non_null(p);
	th_gate_init(&r.joined);
	th_gate_init(&r.closed);
	th_gate_init(&r.go_reopen);
	th_gate_init(&r.rejoined);
	th_gate_init(&r.done);
	pid = th_fork(reopener_main, &r);
	assert_int_equal(shmrpc_wait_node(p, "b", 5000), 0);
	assert_int_equal(shmrpc_send(p, "b", "old", 3, 1000), 0);
	assert_int_equal(th_gate_wait(&r.joined, 5000), 0);
	assert_int_equal(th_node_id(d->name, "b", id), 0);
	th_gate_open(&r.closed);
	assert_int_equal(th_gate_wait(&r.joined, 5000), 0); /* b has left */
	assert_int_equal(th_id_files(d->name, id), 0);
	if (reopen_before_send) {
		th_gate_open(&r.go_reopen);
		assert_int_equal(th_gate_wait(&r.rejoined, 5000), 0);
	}
	if (!reopen_before_send) {
		/* the connection p had is to the old b, and no b is back */
		assert_int_equal(shmrpc_send(p, "b", "bad", 3, 1000), -EPIPE);
		assert_int_equal(shmrpc_send(p, "b", "bad", 3, 1000), -EPIPE);
		th_gate_open(&r.go_reopen);
		assert_int_equal(th_gate_wait(&r.rejoined, 5000), 0);
	}
	assert_int_equal(th_node_id(d->name, "b", id2), 0);
	assert_string_not_equal(id, id2); /* a new (slot, gen) */
	/* the very next send goes to the new b, whichever came first */
	assert_int_equal(shmrpc_send(p, "b", "new", 3, 1000), 0);
	th_gate_open(&r.done);
	assert_int_equal(th_wait(pid, 10000), 0);
	th_gate_close(&r.joined);
	th_gate_close(&r.closed);
	th_gate_close(&r.go_reopen);
	th_gate_close(&r.rejoined);
	th_gate_close(&r.done);
	shmrpc_close(p);
}

static void test_gen_reopen_gets_new_id_and_epipe(void **state)
{
	reopen_case(*state, false, false);
	reopen_case(*state, true, false);
	reopen_case(*state, false, true);
	reopen_case(*state, true, true);
}

/*
 * A receiver that does not look for a while, and a sender that joins, sends
 * and leaves many times in the same slot: each new ring links to the older
 * unopened one (prev_gen). Every message must still arrive and every ring
 * file must be removed in the end.
 */
#define REOPENS 24

static int resender_main(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n;
	int i;

	for (i = 0; i < REOPENS; i++) {
		CHILD_CHECK_RC(shmrpc_open("s", &d->opts, &n), 0);
		CHILD_CHECK_RC(shmrpc_send(n, "r", &i, sizeof(i), 1000), 0);
		shmrpc_close(n);
	}
	return 0;
}

static void test_gen_reopened_sender_rings_all_delivered(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *r;
	int got[REOPENS] = { 0 }, v, i, rc;

	o.ring_bytes = 4096;
	assert_int_equal(shmrpc_open("r", &o, &r), 0);
	assert_int_equal(th_wait(th_fork(resender_main, d), 10000), 0);
	while ((rc = shmrpc_recv(r, &v, sizeof(v), NULL, 0)) == sizeof(v)) {
		assert_true(v >= 0 && v < REOPENS);
		got[v]++;
	}
	assert_int_equal(rc, -EAGAIN);
	for (i = 0; i < REOPENS; i++)
		if (got[i] != 1)
			print_message("message %d from sender incarnation %d arrived %d times\n", i,
				      i + 1, got[i]);
	for (i = 0; i < REOPENS; i++)
		assert_int_equal(got[i], 1);
	shmrpc_close(r);
	assert_int_equal(th_shm_count(d->name), 0);
}

/*
 * And broken by a receiver that is closing: a new holder of the sender's
 * slot announces its ring (overwriting the receiver's in_gen entry, which
 * linked to an older unopened ring), sees the receiver CLOSING and removes
 * its ring again; the receiver's close must still reach the older ring.
 * White box: the receiver is frozen just after setting CLOSING, which is
 * where that race leaves it; the churn tests meet the race itself.
 */
static int send_to_closing(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open("s", &d->opts, &n), 0);
	CHILD_CHECK_RC(shmrpc_send(n, "r", "x", 1, 1000), -ENOENT); /* r is leaving */
	shmrpc_close(n);
	return 0;
}

/* Map the header of node @name's segment read-write (white box). */
static struct shmrpc__node_hdr *node_hdr_map(const char *dom, const char *name)
{
	char path[300];
	void *map;
	int fd;

	if (th_node_path(dom, name, path, sizeof(path)))
		return NULL;
	fd = open(path, O_RDWR);
	if (fd < 0)
		return NULL;
	map = mmap(NULL, sizeof(struct shmrpc__node_hdr), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   0);
	close(fd);
	return map == MAP_FAILED ? NULL : map;
}

static void test_gen_closing_receiver_keeps_older_ring(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r");
	struct shmrpc__node_hdr *h;
	struct th_holder h1;

	assert_non_null(r);
	memset(&h1, 0, sizeof(h1));
	h1.o = d->opts;
	snprintf(h1.name, sizeof(h1.name), "s");
	assert_int_equal(th_wait(th_fork(th_send_once_main, &h1), 10000), 0);
	assert_int_equal(th_dom_files(d->name, ".ring."), 1); /* unopened, from s gen 1 */
	h = node_hdr_map(d->name, "r");
	assert_non_null(h);
	atomic_fetch_or(&h->flags, SHMRPC__NODE_CLOSING);
	munmap(h, sizeof(*h));
	assert_int_equal(th_wait(th_fork(send_to_closing, d), 10000), 0);
	shmrpc_close(r);
	assert_int_equal(th_shm_count(d->name), 0);
}

/* ================================================ the protocol's own calls */

/* A connection made by hand: connect.c alone, outside conntab.c's table. */
static struct shmrpc__conn *conn_new(void)
{
	struct shmrpc__conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void conn_free(struct shmrpc__conn *c)
{
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void view_of(struct shmrpc_node *n, const char *name, uint32_t *slot,
		    struct shmrpc__slot_view *v)
{
	assert_int_equal(shmrpc__reg_find(n->reg, name, slot, v), 0);
}

/*
 * What a connection leaves in both node segments: our out_gen entry names
 * the receiver (set before the ring file existed), the receiver's in_gen
 * entry names us, our bit is in its pend bitmap and its pend_hint is set,
 * and the ring file carries both ids. Its end at our leaving: TX_CLOSED for
 * the receiver (which drops the ring once drained), our entry cleared, the
 * counts back.
 */
static void test_connect_open_fills_both_tables(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc__conn *c = conn_new();
	struct shmrpc__slot_view v;
	struct shmrpc_stats before;
	_Atomic uint32_t *out, *in;
	_Atomic uint64_t *pend;
	uint32_t bs, cap;
	char buf[8];

	assert_non_null(a);
	assert_non_null(b);
	cap = a->reg->capacity;
	before = th_stats(a);
	view_of(a, "b", &bs, &v);
	assert_int_equal(shmrpc__conn_open(a, c, "b", bs, &v), 0);
	out = shmrpc__node_tab(a->seg, shmrpc__node_out_off(cap));
	in = shmrpc__node_tab(b->seg, shmrpc__node_in_off(cap));
	pend = shmrpc__node_pend(b->seg, shmrpc__node_pend_off());
	assert_int_equal(atomic_load(&out[bs]), b->gen + 1);
	assert_int_equal(atomic_load(&in[a->slot]), a->gen + 1);
	assert_true(atomic_load(&pend[a->slot / 64]) & (1ull << (a->slot % 64)));
	assert_int_equal(atomic_load(&b->seg->pend_hint), 1);
	assert_string_equal(c->to, "b");
	assert_int_equal(c->q.hdr->tx_slot, a->slot);
	assert_int_equal(c->q.hdr->tx_gen, a->gen);
	assert_int_equal(c->q.hdr->rx_slot, bs);
	assert_int_equal(c->q.hdr->rx_gen, b->gen);
	assert_int_equal(th_dom_files(d->name, ".ring."), 1);
	assert_int_equal(th_stats(a).rings_out, before.rings_out + 1);
	assert_int_equal(th_stats(a).connects, before.connects + 1);

	shmrpc__conn_close(a, c);
	assert_true(atomic_load(&c->dead));
	assert_null(c->q.hdr);
	assert_int_equal(atomic_load(&out[bs]), 0);
	assert_int_equal(th_stats(a).rings_out, before.rings_out);
	assert_int_equal(th_dom_files(d->name, ".ring."), 1); /* b's to drain */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_dom_files(d->name, ".ring."), 0);
	conn_free(c);
	shmrpc_close(a);
	shmrpc_close(b);
}

/*
 * A receiver that started leaving (NODE_CLOSING, set by hand as its close
 * would) before our announce: the announce sees it, and the connection
 * takes back all it did: no ring file, our out_gen entry cleared, nothing
 * mapped, -ENOENT.
 */
static void test_connect_to_leaving_receiver(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc__conn *c = conn_new();
	struct shmrpc__slot_view v;
	struct shmrpc_stats before;
	_Atomic uint32_t *out;
	uint32_t bs;

	assert_non_null(a);
	assert_non_null(b);
	before = th_stats(a);
	view_of(a, "b", &bs, &v);
	atomic_fetch_or(&b->seg->flags, SHMRPC__NODE_CLOSING);
	assert_int_equal(shmrpc__conn_open(a, c, "b", bs, &v), -ENOENT);
	out = shmrpc__node_tab(a->seg, shmrpc__node_out_off(a->reg->capacity));
	assert_int_equal(atomic_load(&out[bs]), 0);
	assert_null(c->q.hdr);
	assert_null(c->peer);
	assert_int_equal(th_dom_files(d->name, ".ring."), 0);
	assert_int_equal(th_stats(a).rings_out, before.rings_out);
	conn_free(c);
	shmrpc_close(b);
	shmrpc_close(a);
}

/*
 * A receiver that died (no watcher, no lookup since): its node file is
 * there, its lock is not held. The connection finds it so, reclaims it on
 * the way (its slot free, its files gone) and says -ENOENT.
 */
static void test_connect_to_dead_receiver(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a;
	struct shmrpc__conn *c = conn_new();
	struct shmrpc__slot_view v;
	struct th_holder b;
	struct th_env e;
	uint32_t bs;

	th_watch_off(&e);
	a = th_open(d, "a");
	assert_non_null(a);
	th_holder_start(&b, d, "b", NULL);
	view_of(a, "b", &bs, &v);
	th_holder_kill(&b);
	assert_int_equal(th_dom_files(d->name, ".node."), 2);
	assert_int_equal(shmrpc__conn_open(a, c, "b", bs, &v), -ENOENT);
	assert_null(c->q.hdr);
	assert_int_equal(th_dom_files(d->name, ".node."), 1);
	assert_int_equal(shmrpc__reg_find(a->reg, "b", &bs, &v), -ENOENT);
	conn_free(c);
	shmrpc_close(a);
	th_env_restore(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_leave_receiver_close_wakes_blocked_sender),
		T(test_leave_sender_close_receiver_drains),
		T(test_leave_sender_exit_before_receiver_looked),
		T(test_leave_rejoined_name_next_send_connects),
		T(test_leave_name_gone_epipe_until_rejoin),
		T(test_gen_reopen_gets_new_id_and_epipe),
		T(test_gen_reopened_sender_rings_all_delivered),
		T(test_gen_closing_receiver_keeps_older_ring),
		T(test_connect_open_fills_both_tables),
		T(test_connect_to_leaving_receiver),
		T(test_connect_to_dead_receiver),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
