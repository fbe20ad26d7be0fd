// SPDX-License-Identifier: MIT
/*
 * Broadcast (lib/broadcast.c): to every other live node, -EMSGSIZE only
 * when it fits no ring, a full ring skipped without blocking the rest;
 * broadcast marks (opts.flags SHMRPC_OPEN_BCAST_MARKS,
 * shmrpc_recv_batch_marks).
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
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ====================================================== broadcast marks */

/* A node of @d that takes broadcast marks (NULL, said, on failure). */
static struct shmrpc_node *bm_open(const struct th_dom *d, const char *name, uint32_t ring)
{
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL;
	int rc;

	o.ring_bytes = ring;
	o.flags = SHMRPC_OPEN_BCAST_MARKS;
	rc = shmrpc_open(name, &o, &n);
	if (rc)
		fprintf(stderr, "shmrpc_open(%s, marks) = %d: %s\n", name, rc, shmrpc_last_error());
	return n;
}

#define BM_N 8
#define BM_CAP 256

/* Receive a batch into fresh buffers; the marks are poisoned first, so a
 * mark the call did not fill shows. */
struct bm_batch {
	char bufs[BM_N][BM_CAP];
	struct shmrpc_msg msgs[BM_N];
	struct shmrpc_mark marks[BM_N];
};

static int bm_recv(struct shmrpc_node *n, struct bm_batch *b, unsigned nr, int timeout_ms)
{
	unsigned i;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < BM_N; i++) {
		b->msgs[i].buf = b->bufs[i];
		b->msgs[i].cap = BM_CAP;
		b->marks[i].bcast = 0xdeadbeef;
		b->marks[i].copies = 0xdead;
		b->marks[i]._reserved = 0xdead;
	}
	return shmrpc_recv_batch_marks(n, b->msgs, b->marks, nr, timeout_ms);
}

static void bm_plain(const struct bm_batch *b, unsigned i, const char *text)
{
	assert_int_equal(b->msgs[i].len, strlen(text));
	assert_memory_equal(b->bufs[i], text, strlen(text));
	assert_int_equal(b->marks[i].bcast, 0);
	assert_int_equal(b->marks[i].copies, 0);
	assert_int_equal(b->marks[i]._reserved, 0);
}

/* A marked copy of @text: its number. */
static uint64_t bm_marked(const struct bm_batch *b, unsigned i, const char *text, uint32_t copies)
{
	assert_int_equal(b->msgs[i].len, strlen(text));
	assert_memory_equal(b->bufs[i], text, strlen(text));
	assert_int_not_equal(b->marks[i].bcast, 0);
	assert_int_not_equal(b->marks[i].bcast, 0xdeadbeef);
	assert_int_equal(b->marks[i].copies, copies);
	assert_int_equal(b->marks[i]._reserved, 0);
	return b->marks[i].bcast;
}

static void test_bmarks_two_marked_one_plain(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *m1 = bm_open(d, "m1", 0),
			   *m2 = bm_open(d, "m2", 0), *p = th_open(d, "p");
	struct bm_batch b;
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	uint64_t id1, id2;
	struct shmrpc_stats sa, sm;

	assert_non_null(a);
	assert_non_null(m1);
	assert_non_null(m2);
	assert_non_null(p);
	assert_int_equal(shmrpc_broadcast(a, "hello", 5, 1000), 3);
	assert_int_equal(bm_recv(m1, &b, BM_N, 1000), 1);
	id1 = bm_marked(&b, 0, "hello", 2);
	assert_string_equal(b.msgs[0].from, "a");
	assert_int_equal(bm_recv(m2, &b, BM_N, 1000), 1);
	assert_true(bm_marked(&b, 0, "hello", 2) == id1);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), from, 1000), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_string_equal(from, "a");

	/* the next broadcast has a larger number; a send is no broadcast */
	assert_int_equal(shmrpc_broadcast(a, "again!", 6, 1000), 3);
	assert_int_equal(shmrpc_send(a, "m1", "plain", 5, 1000), 0);
	assert_int_equal(bm_recv(m1, &b, BM_N, 1000), 1);
	id2 = bm_marked(&b, 0, "again!", 2);
	assert_true(id2 > id1);
	assert_int_equal(bm_recv(m1, &b, BM_N, 1000), 1);
	bm_plain(&b, 0, "plain");
	assert_int_equal(bm_recv(m2, &b, BM_N, 1000), 1);
	assert_true(bm_marked(&b, 0, "again!", 2) == id2);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), 6);
	assert_memory_equal(buf, "again!", 6);
	assert_int_equal(bm_recv(m1, &b, BM_N, 0), -EAGAIN);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 0), -EAGAIN);

	/* one marked sender, counted by the receiver as it sent (marks
	 * included): bytes out of a equal bytes into m1, m2 and p */
	sa = th_stats(a);
	sm = th_stats(m1);
	assert_int_equal(sm.msgs_recv, 3);
	sm.bytes_recv += th_stats(m2).bytes_recv + th_stats(p).bytes_recv;
	assert_int_equal(sa.bytes_sent, sm.bytes_recv);
	shmrpc_close(a);
	shmrpc_close(m1);
	shmrpc_close(m2);
	shmrpc_close(p);
}

/* A marked copy ends a batch: what came before it, then it; the rest at
 * the next call. */
static void test_bmarks_copy_ends_the_batch(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *m = bm_open(d, "m", 0);
	struct shmrpc_rxbuf rx;
	struct bm_batch b;

	assert_non_null(a);
	assert_non_null(m);
	assert_int_equal(shmrpc_send(a, "m", "m1", 2, 1000), 0);
	assert_int_equal(shmrpc_broadcast(a, "bc", 2, 1000), 1);
	assert_int_equal(shmrpc_send(a, "m", "m2", 2, 1000), 0);
	assert_int_equal(shmrpc_broadcast(a, "bd", 2, 1000), 1);
	assert_int_equal(bm_recv(m, &b, BM_N, 1000), 2);
	bm_plain(&b, 0, "m1");
	bm_marked(&b, 1, "bc", 1);
	assert_int_equal(b.marks[2].bcast, 0xdeadbeef); /* nothing past it */
	assert_int_equal(bm_recv(m, &b, BM_N, 0), 2);
	bm_plain(&b, 0, "m2");
	bm_marked(&b, 1, "bd", 1);
	assert_int_equal(bm_recv(m, &b, BM_N, 0), -EAGAIN);
	/* a batch of one: the copy alone, and a plain one after */
	assert_int_equal(shmrpc_broadcast(a, "be", 2, 1000), 1);
	assert_int_equal(shmrpc_send(a, "m", "m3", 2, 1000), 0);
	assert_int_equal(bm_recv(m, &b, 1, 1000), 1);
	bm_marked(&b, 0, "be", 1);
	assert_int_equal(bm_recv(m, &b, 1, 0), 1);
	bm_plain(&b, 0, "m3");
	/* a held peek of a marked copy: the batch begins with it, mark and
	 * all, and the peek is over (python/shmrpc relies on this) */
	assert_int_equal(shmrpc_broadcast(a, "bf", 2, 1000), 1);
	assert_int_equal(shmrpc_send(a, "m", "m4", 2, 1000), 0);
	assert_int_equal(shmrpc_peek(m, &rx, 1000), 2);
	assert_memory_equal(rx.data, "bf", 2);
	assert_int_equal(bm_recv(m, &b, BM_N, 0), 1);
	bm_marked(&b, 0, "bf", 1);
	assert_int_equal(shmrpc_release(m, &rx), -EINVAL);
	assert_int_equal(bm_recv(m, &b, BM_N, 0), 1);
	bm_plain(&b, 0, "m4");
	shmrpc_close(a);
	shmrpc_close(m);
}

struct bm_seen {
	int n;
	size_t len[4];
	char data[4][64];
};

static void bm_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		       void *arg)
{
	struct bm_seen *s = arg;

	(void)n;
	(void)from;
	if (s->n < 4 && len <= sizeof(s->data[0])) {
		s->len[s->n] = len;
		memcpy(s->data[s->n], data, len);
	}
	s->n++;
}

/* Every other receiving call hands a marked copy over as the message it
 * carries: same length, same bytes, no mark. */
static void test_bmarks_other_calls_strip_the_mark(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *m = bm_open(d, "m", 0);
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_msg msgs[2] = { { .buf = buf, .cap = sizeof(buf) } };
	struct bm_seen seen = { 0 };
	struct shmrpc_rxbuf rx;

	assert_non_null(a);
	assert_non_null(m);
	assert_int_equal(shmrpc_broadcast(a, "recv", 4, 1000), 1);
	assert_int_equal(shmrpc_recv(m, buf, sizeof(buf), from, 1000), 4);
	assert_memory_equal(buf, "recv", 4);
	assert_string_equal(from, "a");
	/* too small by one: -EMSGSIZE, the message's own length counts */
	assert_int_equal(shmrpc_broadcast(a, "small", 5, 1000), 1);
	assert_int_equal(shmrpc_recv(m, buf, 4, NULL, 1000), -EMSGSIZE);
	assert_int_equal(shmrpc_recv(m, buf, 5, NULL, 0), 5);
	assert_memory_equal(buf, "small", 5);

	assert_int_equal(shmrpc_broadcast(a, "peeked", 6, 1000), 1);
	assert_int_equal(shmrpc_peek(m, &rx, 1000), 6);
	assert_int_equal(rx.len, 6);
	assert_memory_equal(rx.data, "peeked", 6);
	assert_int_equal(shmrpc_peek(m, &rx, 0), 6); /* the same, again */
	assert_memory_equal(rx.data, "peeked", 6);
	assert_int_equal(shmrpc_release(m, &rx), 0);

	assert_int_equal(shmrpc_broadcast(a, "batch", 5, 1000), 1);
	assert_int_equal(shmrpc_recv_batch(m, msgs, 1, 1000), 1);
	assert_int_equal(msgs[0].len, 5);
	assert_memory_equal(buf, "batch", 5);

	assert_int_equal(shmrpc_broadcast(a, "dispatched", 10, 1000), 1);
	assert_int_equal(shmrpc_broadcast(a, "", 0, 1000), 1);
	assert_int_equal(shmrpc_dispatch(m, bm_handler, &seen, 1000), 2);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.len[0], 10);
	assert_memory_equal(seen.data[0], "dispatched", 10);
	assert_int_equal(seen.len[1], 0);
	assert_int_equal(shmrpc_recv(m, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_stats(m).msgs_recv, 6);
	shmrpc_close(a);
	shmrpc_close(m);
}

/* A message within 16 bytes of a target's largest travels unmarked there
 * and is not counted; a target with a larger ring gets it marked. */
static void test_bmarks_near_max_size_unmarked(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *m = bm_open(d, "m", 4096),
			   *p = th_open_ring(d, "p", 4096), *big = bm_open(d, "big", 16384);
	static char msg[4096], buf[4096];
	struct shmrpc_msg mm = { .buf = buf, .cap = sizeof(buf) };
	struct shmrpc_mark mark;
	int max, len;

	assert_non_null(a);
	assert_non_null(m);
	assert_non_null(p);
	assert_non_null(big);
	max = shmrpc_max_size(a, "m");
	assert_int_equal(max, 2040);
	for (len = max - 15; len <= max; len += 15) {
		th_fill(msg, (size_t)len, 7, (uint64_t)len);
		assert_int_equal(shmrpc_broadcast(a, msg, (size_t)len, 1000), 3);
		memset(&mark, 0xa5, sizeof(mark));
		assert_int_equal(shmrpc_recv_batch_marks(m, &mm, &mark, 1, 1000), 1);
		assert_int_equal(mm.len, len);
		assert_int_equal(th_check(buf, (size_t)len, 7, (uint64_t)len), 0);
		assert_int_equal(mark.bcast, 0);
		assert_int_equal(mark.copies, 0);
		assert_int_equal(shmrpc_recv_batch_marks(big, &mm, &mark, 1, 1000), 1);
		assert_int_equal(mm.len, len);
		assert_int_equal(th_check(buf, (size_t)len, 7, (uint64_t)len), 0);
		assert_int_not_equal(mark.bcast, 0);
		assert_int_equal(mark.copies, 1); /* big alone */
		assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), len);
		assert_int_equal(th_check(buf, (size_t)len, 7, (uint64_t)len), 0);
	}
	/* 16 bytes short of it: marked there too */
	len = max - 16;
	th_fill(msg, (size_t)len, 8, 0);
	assert_int_equal(shmrpc_broadcast(a, msg, (size_t)len, 1000), 3);
	assert_int_equal(shmrpc_recv_batch_marks(m, &mm, &mark, 1, 1000), 1);
	assert_int_equal(mm.len, len);
	assert_int_equal(th_check(buf, (size_t)len, 8, 0), 0);
	assert_int_equal(mark.copies, 2);
	assert_int_equal(shmrpc_recv_batch_marks(big, &mm, &mark, 1, 1000), 1);
	assert_int_equal(mark.copies, 2);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), len);
	shmrpc_close(a);
	shmrpc_close(m);
	shmrpc_close(p);
	shmrpc_close(big);
}

/* A marked copy counted but not delivered (its ring full) still counts. */
static void test_bmarks_copies_count_the_undelivered(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *m = bm_open(d, "m", 0),
			   *full = bm_open(d, "full", 4096);
	struct bm_batch b;
	int empties;

	assert_non_null(a);
	assert_non_null(m);
	assert_non_null(full);
	assert_true(th_fill_ring_full(a, "full", 100, &empties) > 0);
	assert_int_equal(shmrpc_broadcast(a, "x", 1, 0), 1);
	assert_int_equal(bm_recv(m, &b, BM_N, 1000), 1);
	bm_marked(&b, 0, "x", 2);
	shmrpc_close(a);
	shmrpc_close(m);
	shmrpc_close(full);
}

/* A sender in another process (exec'd: this one has threads). */
static int bm_child(const char *domain)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain };
	struct shmrpc_node *n;
	int i;

	if (shmrpc_open("s", &o, &n))
		return 2;
	for (i = 0; i < 3; i++)
		if (shmrpc_broadcast(n, "far", 3, 5000) != 3)
			return 3;
	shmrpc_close(n);
	return 0;
}

static void test_bmarks_sender_in_another_process(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *m1 = bm_open(d, "m1", 0), *m2 = bm_open(d, "m2", 0),
			   *p = th_open(d, "p");
	char self[PATH_MAX], buf[16];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	struct bm_batch b1, b2;
	uint64_t last = 0, id;
	pid_t pid;
	int i;

	assert_non_null(m1);
	assert_non_null(m2);
	assert_non_null(p);
	assert_true(len > 0);
	self[len] = '\0';
	pid = th_fork_raw();
	if (pid == 0) {
		execl(self, self, "--bmarks-sender", d->name, (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	assert_int_equal(th_wait(pid, 20000), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(bm_recv(m1, &b1, BM_N, 1000), 1);
		assert_int_equal(bm_recv(m2, &b2, BM_N, 1000), 1);
		assert_string_equal(b1.msgs[0].from, "s");
		id = bm_marked(&b1, 0, "far", 2);
		assert_true(bm_marked(&b2, 0, "far", 2) == id);
		assert_true(id > last);
		last = id;
		assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 1000), 3);
		assert_memory_equal(buf, "far", 3);
	}
	assert_int_equal(bm_recv(m1, &b1, BM_N, 0), -EAGAIN);
	shmrpc_close(m1);
	shmrpc_close(m2);
	shmrpc_close(p);
}

/* On a node without the flag, every mark is 0; marks NULL is -EINVAL. */
static void test_bmarks_plain_node_and_bad_args(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *p = th_open(d, "p");
	struct bm_batch b;

	assert_non_null(a);
	assert_non_null(p);
	assert_int_equal(shmrpc_broadcast(a, "b1", 2, 1000), 1);
	assert_int_equal(shmrpc_send(a, "p", "s1", 2, 1000), 0);
	assert_int_equal(shmrpc_broadcast(a, "b2", 2, 1000), 1);
	assert_int_equal(bm_recv(p, &b, BM_N, 1000), 3);
	bm_plain(&b, 0, "b1");
	bm_plain(&b, 1, "s1");
	bm_plain(&b, 2, "b2");
	assert_int_equal(shmrpc_broadcast(a, "b3", 2, 1000), 1);
	assert_int_equal(shmrpc_recv_batch_marks(p, b.msgs, NULL, BM_N, 0), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "marks"));
	assert_int_equal(shmrpc_recv_batch_marks(NULL, b.msgs, b.marks, BM_N, 0), -EINVAL);
	assert_int_equal(shmrpc_recv_batch_marks(p, b.msgs, b.marks, 0, 0), -EINVAL);
	assert_int_equal(bm_recv(p, &b, BM_N, 0), 1); /* still there */
	bm_plain(&b, 0, "b3");
	shmrpc_close(a);
	shmrpc_close(p);
}

/* opts.flags: unknown bits and _reserved2 refused; from a caller whose
 * struct ends before them (an older one: flags was tail padding), ignored. */
static void test_bmarks_opts(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL, *a;
	struct bm_batch b;

	o.flags = 0x2;
	assert_int_equal(shmrpc_open("n", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "opts.flags"));
	assert_null(n);
	o.flags = SHMRPC_OPEN_BCAST_MARKS | 0x80000000u;
	assert_int_equal(shmrpc_open("n", &o, &n), -EINVAL);
	o.flags = SHMRPC_OPEN_BCAST_MARKS;
	o._reserved2 = 1;
	assert_int_equal(shmrpc_open("n", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "_reserved2"));
	assert_null(n);
	/* The 0.2 struct ended at max_calls, padded to 8 bytes: flags is that
	 * padding, and may hold anything. Ignored: a plain node. */
	o._reserved2 = 0;
	o.flags = 0xdeadbeef;
	o.sz = offsetof(struct shmrpc_opts, _reserved2);
	assert_int_equal(shmrpc_open("n", &o, &n), 0);
	a = th_open(d, "a");
	assert_non_null(a);
	assert_int_equal(shmrpc_broadcast(a, "b1", 2, 1000), 1);
	assert_int_equal(bm_recv(n, &b, BM_N, 1000), 1);
	bm_plain(&b, 0, "b1");
	shmrpc_close(n);
	n = NULL;
	o.sz = offsetof(struct shmrpc_opts, flags);
	assert_int_equal(shmrpc_open("n", &o, &n), 0);
	shmrpc_close(n);
	n = NULL;
	/* the whole struct, the flag set: marks */
	o.sz = sizeof(o);
	o.flags = SHMRPC_OPEN_BCAST_MARKS;
	assert_int_equal(shmrpc_open("n", &o, &n), 0);
	assert_int_equal(shmrpc_broadcast(a, "b2", 2, 1000), 1);
	assert_int_equal(bm_recv(n, &b, BM_N, 1000), 1);
	bm_marked(&b, 0, "b2", 1);
	shmrpc_close(n);
	shmrpc_close(a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_broadcast_counts_receivers),
		T(test_broadcast_emsgsize_when_it_fits_no_ring),
		T(test_broadcast_partial_when_one_ring_is_full),
		T(test_bmarks_two_marked_one_plain),
		T(test_bmarks_copy_ends_the_batch),
		T(test_bmarks_other_calls_strip_the_mark),
		T(test_bmarks_near_max_size_unmarked),
		T(test_bmarks_copies_count_the_undelivered),
		T(test_bmarks_sender_in_another_process),
		T(test_bmarks_plain_node_and_bad_args),
		T(test_bmarks_opts),
	};

	if (argc == 3 && !strcmp(argv[1], "--bmarks-sender"))
		return bm_child(argv[2]);
	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
