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
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
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

static void th_never_serve(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)n;
	(void)r;
	(void)arg;
	fail_msg("serve function called");
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

/* Requests up to the server's ring's limit (less the 16-byte header)
 * pass; one byte more is -EMSGSIZE, as is a reply longer than cap. */
static void test_rpc_sizes(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	static char big[8192], out[8192];
	struct srv s;
	int max;

	s.n = th_open_ring(d, "s", 8192);
	assert_non_null(s.n);
	assert_int_equal(shmrpc_serve(s.n, echo_fn, NULL), 0);
	assert_int_equal(shmrpc_start(s.n, th_never_handler, NULL), 0);
	max = shmrpc_max_size(c, "s") - 16;
	assert_int_equal(max, 8192 / 2 - 8 - 16);
	th_fill(big, (size_t)max, 5, 1);
	assert_int_equal(shmrpc_call(c, "s", big, (size_t)max, out, sizeof(out), 2000), max);
	assert_int_equal(th_check(out, (size_t)max, 5, 1), 0);
	assert_int_equal(shmrpc_call(c, "s", big, (size_t)max + 1, out, sizeof(out), 2000),
			 -EMSGSIZE);
	assert_non_null(strstr(shmrpc_last_error(), "request of"));
	/* the reply is dropped, the call over */
	assert_int_equal(shmrpc_call(c, "s", big, 100, out, 99, 2000), -EMSGSIZE);
	assert_int_equal(shmrpc_call(c, "s", big, 100, out, 100, 2000), 100);
	srv_close(&s);
	shmrpc_close(c);
}

static void test_rpc_errors(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *q = th_open(d, "quiet");
	char buf[16];
	uint64_t id;

	assert_int_equal(shmrpc_call(c, "nobody", "x", 1, buf, sizeof(buf), 100), -ENOENT);
	assert_int_equal(shmrpc_call(c, "quiet", "x", 1, buf, sizeof(buf), 100), -EOPNOTSUPP);
	assert_non_null(strstr(shmrpc_last_error(), "does not serve"));
	assert_int_equal(shmrpc_call(c, "c", "x", 1, buf, sizeof(buf), 100), -EINVAL);
	assert_int_equal(shmrpc_call(c, "bad name", "x", 1, buf, sizeof(buf), 100), -EINVAL);
	assert_int_equal(shmrpc_call(NULL, "quiet", "x", 1, buf, sizeof(buf), 100), -EINVAL);
	assert_int_equal(shmrpc_call(c, "quiet", NULL, 1, buf, sizeof(buf), 100), -EINVAL);
	assert_int_equal(shmrpc_call(c, "quiet", "x", 1, NULL, 1, 100), -EINVAL);
	assert_int_equal(shmrpc_call(c, "quiet", "x", 1, buf, sizeof(buf), -2), -EINVAL);
	assert_int_equal(shmrpc_call_start(c, "quiet", "x", 1, 100, NULL), -EINVAL);
	assert_int_equal(shmrpc_call_wait(c, 12345, buf, sizeof(buf), NULL, 0), -ENOENT);
	assert_int_equal(shmrpc_call_cancel(c, 12345), -ENOENT);
	assert_int_equal(shmrpc_serve(NULL, echo_fn, NULL), -EINVAL);
	assert_int_equal(shmrpc_reply(c, NULL, "x", 1, 0), -EINVAL);
	assert_int_equal(shmrpc_reply_error(c, NULL, -EIO), -EINVAL);
	assert_int_equal(shmrpc_req_cancelled(c, NULL), -EINVAL);
	/* nothing was left in flight by the refusals */
	assert_int_equal(shmrpc_call_start(c, "nobody", "x", 1, 100, &id), -ENOENT);
	shmrpc_close(q);
	shmrpc_close(c);
}

/* Requests queued when the server stops serving are answered -EOPNOTSUPP
 * by its receive path; the serve function is never called for them. */
static void test_rpc_stop_serving_answers_queued(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *s = th_open(d, "s");
	uint64_t id[3];
	char buf[16];
	int i;

	assert_int_equal(shmrpc_serve(s, echo_fn, NULL), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(shmrpc_call_start(c, "s", "abc", 3, -1, &id[i]), 0);
	assert_int_equal(shmrpc_serve(s, NULL, NULL), 0);
	assert_int_equal(shmrpc_recv(s, buf, sizeof(buf), NULL, 0), -EAGAIN);
	for (i = 0; i < 3; i++) {
		assert_int_equal(shmrpc_call_wait(c, id[i], buf, sizeof(buf), NULL, 2000),
				 -EOPNOTSUPP);
		assert_int_equal(shmrpc_call_wait(c, id[i], buf, sizeof(buf), NULL, 0), -ENOENT);
	}
	assert_int_equal(shmrpc_call(c, "s", "x", 1, buf, sizeof(buf), 100), -EOPNOTSUPP);
	shmrpc_close(s);
	shmrpc_close(c);
}

/* 32 calls in flight, their replies collected in another order. */
static void test_rpc_pipeline(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	uint64_t id[32];
	unsigned flags;
	char buf[64];
	int i, round;
	struct srv s;

	srv_open(&s, d, "s", echo_fn, NULL);
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 32; i++) {
			th_fill(buf, 40, (uint64_t)round, (uint64_t)i);
			assert_int_equal(shmrpc_call_start(c, "s", buf, 40, 5000, &id[i]), 0);
			if (i)
				assert_true(id[i] != id[i - 1]);
		}
		for (i = 31; i >= 0; i--) {
			flags = 99;
			assert_int_equal(shmrpc_call_wait(c, id[i], buf, sizeof(buf), &flags, 5000),
					 40);
			assert_int_equal(flags, 0);
			assert_int_equal(th_check(buf, 40, (uint64_t)round, (uint64_t)i), 0);
		}
	}
	srv_close(&s);
	shmrpc_close(c);
}

static void test_rpc_max_calls(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *c;
	uint64_t id[5];
	char buf[8];
	struct srv s;
	int i;

	o.max_calls = 4;
	assert_int_equal(shmrpc_open("c", &o, &c), 0);
	o.max_calls = (1u << 20) + 1;
	assert_int_equal(shmrpc_open("c2", &o, &s.n), -EINVAL);
	srv_open(&s, d, "s", echo_fn, NULL);
	for (i = 0; i < 4; i++)
		assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id[i]), 0);
	assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id[4]), -EAGAIN);
	assert_non_null(strstr(shmrpc_last_error(), "max_calls"));
	assert_int_equal(shmrpc_call(c, "s", "x", 1, buf, sizeof(buf), 100), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(c, id[0], buf, sizeof(buf), NULL, 2000), 1);
	assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id[0]), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(shmrpc_call_wait(c, id[i], buf, sizeof(buf), NULL, 2000), 1);
	srv_close(&s);
	shmrpc_close(c);
}

/* ------------------------------------------------------------ streams */

/* Streams n replies ("0", "1", ...): n from the request's first byte. */
static void stream_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	int i, count = r->len ? ((const uint8_t *)r->data)[0] : 0;
	char b[12];

	(void)arg;
	for (i = 0; i < count; i++) {
		snprintf(b, sizeof(b), "%d", i);
		if (shmrpc_reply(n, r, b, strlen(b), i + 1 < count ? SHMRPC_REPLY_MORE : 0))
			return;
	}
}

static void test_rpc_stream(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	uint8_t count = 50;
	unsigned flags;
	char buf[8];
	uint64_t id;
	struct srv s;
	int i, rc;

	srv_open(&s, d, "s", stream_fn, NULL);
	assert_int_equal(shmrpc_call_start(c, "s", &count, 1, 5000, &id), 0);
	for (i = 0; i < count; i++) {
		rc = shmrpc_call_wait(c, id, buf, sizeof(buf), &flags, 5000);
		assert_true(rc > 0);
		buf[rc] = '\0';
		assert_int_equal(atoi(buf), i);
		assert_int_equal(flags, i + 1 < count ? SHMRPC_REPLY_MORE : 0);
	}
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), &flags, 0), -ENOENT);
	/* shmrpc_call takes the first, the rest is cancelled and dropped */
	assert_int_equal(shmrpc_call(c, "s", &count, 1, buf, sizeof(buf), 5000), 1);
	assert_memory_equal(buf, "0", 1);
	count = 3;
	assert_int_equal(shmrpc_call(c, "s", &count, 1, buf, sizeof(buf), 5000), 1);
	srv_close(&s);
	shmrpc_close(c);
}

/* A serve function that streams inline, in the receiving call, until the
 * caller cancels: it sees the cancel queued behind its request. */
struct inline_st {
	_Atomic int sent, done;
};

static void inline_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	struct inline_st *st = arg;
	int i;

	for (i = 0; i < 100000 && shmrpc_req_cancelled(n, r) == 0; i++) {
		if (shmrpc_reply(n, r, &i, sizeof(i), SHMRPC_REPLY_MORE))
			break;
		atomic_store(&st->sent, i + 1);
		th_sleep_ms(1);
	}
	shmrpc_reply(n, r, NULL, 0, 0);
	atomic_store(&st->done, 1);
}

static void test_rpc_stream_inline_cancel(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct inline_st st = { 0, 0 };
	struct shmrpc_stats cs;
	char buf[8];
	struct srv s;
	int i;

	srv_open(&s, d, "s", inline_fn, &st);
	/* the first reply, then the rest cancelled */
	assert_int_equal(shmrpc_call(c, "s", "go", 2, buf, sizeof(buf), 5000), (int)sizeof(int));
	for (i = 0; i < 500 && !atomic_load(&st.done); i++)
		th_sleep_ms(10);
	assert_int_equal(atomic_load(&st.done), 1);
	assert_true(atomic_load(&st.sent) < 1000);
	/* the replies it sent meanwhile are late; a call reads them */
	assert_int_equal(shmrpc_call(c, "s", "go", 2, buf, sizeof(buf), 5000), (int)sizeof(int));
	cs = th_stats(c);
	assert_true(cs.calls_late >= 1);
	srv_close(&s);
	shmrpc_close(c);
}

/* Deferred replies: the serve function keeps copies; another thread
 * streams or replies to them. */
struct defer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct shmrpc_node *n;
	struct shmrpc_req req[64];
	int nreq, want;
	int rc[64];
	bool stop;
};

static void defer_init(struct defer *f, int want)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->want = want;
}

static void defer_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	struct defer *f = arg;

	pthread_mutex_lock(&f->lock);
	if (f->nreq < 64)
		f->req[f->nreq++] = *r; /* a copy of the request, not of its data */
	f->n = n;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* Wait until @f holds @k requests. */
static void defer_wait(struct defer *f, int k)
{
	pthread_mutex_lock(&f->lock);
	while (f->nreq < k)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

/* Replies to every request, last first, each with its index. */
static void *reverse_thread(void *arg)
{
	struct defer *f = arg;
	int i;

	defer_wait(f, f->want);
	for (i = f->want - 1; i >= 0; i--)
		f->rc[i] = shmrpc_reply(f->n, &f->req[i], &i, sizeof(i), 0);
	return NULL;
}

static void test_rpc_deferred_reverse(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct defer f;
	uint64_t id[16];
	pthread_t t;
	int i, v;
	struct srv s;

	defer_init(&f, 16);
	srv_open(&s, d, "s", defer_fn, &f);
	assert_int_equal(pthread_create(&t, NULL, reverse_thread, &f), 0);
	for (i = 0; i < 16; i++)
		assert_int_equal(shmrpc_call_start(c, "s", &i, sizeof(i), 5000, &id[i]), 0);
	for (i = 0; i < 16; i++) {
		assert_int_equal(shmrpc_call_wait(c, id[i], &v, sizeof(v), NULL, 5000), sizeof(v));
		assert_int_equal(v, i);
	}
	pthread_join(t, NULL);
	for (i = 0; i < 16; i++)
		assert_int_equal(f.rc[i], 0);
	/* over: a second last reply is refused */
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], "x", 1, 0), -ENOENT);
	srv_close(&s);
	shmrpc_close(c);
}

/* Streams to the deferred request until the caller cancels it. */
static void *stream_thread(void *arg)
{
	struct defer *f = arg;
	int i;

	defer_wait(f, 1);
	for (i = 0; i < 1000000; i++) {
		if (shmrpc_req_cancelled(f->n, &f->req[0]) == 1)
			break;
		f->rc[0] = shmrpc_reply(f->n, &f->req[0], &i, sizeof(i), SHMRPC_REPLY_MORE);
		if (f->rc[0])
			break;
		th_sleep_ms(1);
	}
	f->rc[1] = i;
	f->rc[2] = shmrpc_reply(f->n, &f->req[0], NULL, 0, 0);
	return NULL;
}

static void test_rpc_stream_cancel_midway(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	unsigned flags;
	struct defer f;
	pthread_t t;
	uint64_t id;
	int i, v;
	struct srv s;

	defer_init(&f, 1);
	srv_open(&s, d, "s", defer_fn, &f);
	assert_int_equal(pthread_create(&t, NULL, stream_thread, &f), 0);
	assert_int_equal(shmrpc_call_start(c, "s", "go", 2, -1, &id), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(shmrpc_call_wait(c, id, &v, sizeof(v), &flags, 5000), sizeof(v));
		assert_int_equal(v, i);
		assert_int_equal(flags, SHMRPC_REPLY_MORE);
	}
	assert_int_equal(shmrpc_call_cancel(c, id), 0);
	assert_int_equal(shmrpc_call_wait(c, id, &v, sizeof(v), &flags, 0), -ENOENT);
	assert_int_equal(shmrpc_call_cancel(c, id), -ENOENT);
	pthread_join(t, NULL);
	assert_int_equal(f.rc[0], 0);	/* it stopped because it saw the cancel */
	assert_true(f.rc[1] < 1000000); /* long before the end */
	assert_int_equal(f.rc[2], 0);	/* its last reply went (and was dropped) */
	srv_close(&s);
	shmrpc_close(c);
}

/* SHMRPC_REPLY_NOWAIT: a full reply ring is -EAGAIN at once, the request
 * stays open, nothing counted as failed; once the caller reads, it goes. */
static void test_rpc_reply_nowait(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	char buf[1000] = { 0 };
	unsigned flags;
	struct defer f;
	uint64_t id;
	int k, i, rc;
	struct srv s;

	defer_init(&f, 1);
	srv_open(&s, d, "s", defer_fn, &f);
	assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id), 0);
	defer_wait(&f, 1);
	/* nobody waits at the caller: its reply ring fills */
	for (k = 0; k < 100000; k++) {
		memcpy(buf, &k, sizeof(k));
		rc = shmrpc_reply(s.n, &f.req[0], buf, sizeof(buf),
				  SHMRPC_REPLY_MORE | SHMRPC_REPLY_NOWAIT);
		if (rc)
			break;
	}
	assert_int_equal(rc, -EAGAIN);
	assert_true(k > 0);
	assert_int_equal(shmrpc_req_cancelled(s.n, &f.req[0]), 0); /* still open */
	assert_int_equal(th_stats(s.n).replies_failed, 0);
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], buf, 1, 0x4), -EINVAL);
	/* the caller reads (all that came, into its queue): room again */
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), &flags, 5000), sizeof(buf));
	assert_int_equal(flags, SHMRPC_REPLY_MORE);
	memcpy(&i, buf, sizeof(i));
	assert_int_equal(i, 0);
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], "end", 3, SHMRPC_REPLY_NOWAIT), 0);
	for (i = 1; i < k; i++) {
		assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), &flags, 5000),
				 sizeof(buf));
		assert_int_equal(*(int *)buf, i);
	}
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), &flags, 5000), 3);
	assert_int_equal(flags, 0);
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], "x", 1, SHMRPC_REPLY_NOWAIT), -ENOENT);
	srv_close(&s);
	shmrpc_close(c);
}

/* ------------------------------------------------------------ deadlines */

static void test_rpc_deadline_and_late(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct shmrpc_stats cs, ss;
	struct defer f;
	char buf[8];
	double t0;
	struct srv s;

	defer_init(&f, 1);
	srv_open(&s, d, "s", defer_fn, &f);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_call(c, "s", "x", 1, buf, sizeof(buf), 100), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 99);
	defer_wait(&f, 1);
	assert_true(f.req[0].deadline_ns > 0);
	assert_int_equal(shmrpc_req_cancelled(s.n, &f.req[0]), 1); /* past its deadline */
	/* the caller gave up: the late reply is dropped, counted; the next
	 * call gets its own reply, never that one */
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], "late", 4, 0), 0);
	shmrpc_serve(s.n, echo_fn, NULL);
	assert_int_equal(shmrpc_call(c, "s", "now", 3, buf, sizeof(buf), 2000), 3);
	assert_memory_equal(buf, "now", 3);
	cs = th_stats(c);
	assert_int_equal(cs.calls_late, 1);
	assert_int_equal(cs.calls_timeout, 1);
	ss = th_stats(s.n);
	assert_int_equal(ss.calls_served, 2);
	srv_close(&s);
	shmrpc_close(c);
}

/* A request whose deadline passed before the server got to it is dropped
 * unserved. A wait that times out leaves the call going. */
static void test_rpc_expired_unserved(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *s = th_open(d, "s");
	struct shmrpc_stats ss;
	char buf[8];
	uint64_t id;

	assert_int_equal(shmrpc_serve(s, th_never_serve, NULL), 0);
	assert_int_equal(shmrpc_call(c, "s", "x", 1, buf, sizeof(buf), 50), -ETIMEDOUT);
	assert_int_equal(shmrpc_recv(s, buf, sizeof(buf), NULL, 0), -EAGAIN);
	ss = th_stats(s);
	assert_int_equal(ss.calls_expired, 1);
	assert_int_equal(ss.calls_served, 0);
	/* call_wait's own timeout: the call goes on */
	assert_int_equal(shmrpc_serve(s, echo_fn, NULL), 0);
	assert_int_equal(shmrpc_call_start(c, "s", "y", 1, -1, &id), 0);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 20), -ETIMEDOUT);
	assert_int_equal(shmrpc_recv(s, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 2000), 1);
	shmrpc_close(s);
	shmrpc_close(c);
}

/* ------------------------------------------------------------ apart */

/* Plain messages and replies travel apart: a caller with no receiving
 * thread calls while messages to it pile up, and none is consumed; then a
 * receiving thread takes the messages while calls go on, and sees no
 * reply. The server serves from shmrpc_recv, which returns its messages
 * only. */
struct rx_loop {
	struct shmrpc_node *n;
	_Atomic int msgs, bad;
	_Atomic bool stop;
};

static void *recv_loop(void *arg)
{
	struct rx_loop *l = arg;
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	int rc;

	while (!atomic_load(&l->stop)) {
		rc = shmrpc_recv(l->n, buf, sizeof(buf), from, 20);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc != 3 || memcmp(buf, "msg", 3))
			atomic_fetch_add(&l->bad, 1);
		else
			atomic_fetch_add(&l->msgs, 1);
	}
	return NULL;
}

static void count_msgs(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		       void *arg)
{
	struct rx_loop *l = arg;

	(void)n;
	(void)from;
	if (len != 3 || memcmp(data, "msg", 3))
		atomic_fetch_add(&l->bad, 1);
	else
		atomic_fetch_add(&l->msgs, 1);
}

static void test_rpc_replies_apart_from_messages(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *s = th_open(d, "s");
	struct rx_loop sl = { s, 0, 0, false }, cl = { c, 0, 0, false };
	char buf[64];
	pthread_t t;
	int i;

	assert_int_equal(shmrpc_serve(s, echo_fn, NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, recv_loop, &sl), 0);
	for (i = 0; i < 200; i++) {
		assert_int_equal(shmrpc_send(s, "c", "msg", 3, -1), 0);
		assert_int_equal(shmrpc_send(c, "s", "msg", 3, -1), 0);
		assert_int_equal(shmrpc_call(c, "s", "call", 4, buf, sizeof(buf), 5000), 4);
		assert_memory_equal(buf, "call", 4);
	}
	/* all 200 messages still queued at the caller, in order, nothing else */
	for (i = 0; i < 200; i++)
		assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 3);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), -EAGAIN);
	/* now with a receiving thread at the caller */
	assert_int_equal(shmrpc_start(c, count_msgs, &cl), 0);
	for (i = 0; i < 200; i++) {
		assert_int_equal(shmrpc_send(s, "c", "msg", 3, -1), 0);
		assert_int_equal(shmrpc_call(c, "s", "call", 4, buf, sizeof(buf), 5000), 4);
	}
	for (i = 0; i < 500 && atomic_load(&cl.msgs) < 200; i++)
		th_sleep_ms(10);
	assert_int_equal(shmrpc_stop(c), 0);
	atomic_store(&sl.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&cl.msgs), 200);
	assert_int_equal(atomic_load(&cl.bad), 0);
	assert_int_equal(atomic_load(&sl.msgs), 200);
	assert_int_equal(atomic_load(&sl.bad), 0);
	shmrpc_close(s);
	shmrpc_close(c);
}

/* Requests are served by every receiving call, which returns only the
 * messages around them; shmrpc_fd becomes readable for a request alone. */
static void count_dispatched(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			     void *arg)
{
	(void)n;
	(void)from;
	if (len != 2 || memcmp(data, "m", 1))
		fail_msg("dispatched %zu bytes", len);
	(*(int *)arg)++;
}

static void test_rpc_every_receiving_call(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c"), *s = th_open(d, "s");
	struct pollfd pfd = { .fd = -1, .events = POLLIN };
	struct shmrpc_rxbuf rx;
	uint64_t id;
	char buf[64];
	int seen = 0;

	assert_int_equal(shmrpc_serve(s, echo_fn, NULL), 0);
	pfd.fd = shmrpc_fd(s);
	assert_true(pfd.fd >= 0);
	/* shmrpc_fd, then shmrpc_peek: served, nothing returned */
	assert_int_equal(shmrpc_call_start(c, "s", "a", 1, 5000, &id), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(shmrpc_peek(s, &rx, 0), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 5000), 1);
	assert_int_equal(buf[0], 'a');
	/* shmrpc_dispatch: the messages on either side of a request */
	assert_int_equal(shmrpc_send(c, "s", "m1", 2, -1), 0);
	assert_int_equal(shmrpc_call_start(c, "s", "b", 1, 5000, &id), 0);
	assert_int_equal(shmrpc_send(c, "s", "m2", 2, -1), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	while (seen < 2)
		assert_true(shmrpc_dispatch(s, count_dispatched, &seen, 5000) > 0);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 5000), 1);
	assert_int_equal(buf[0], 'b');
	/* shmrpc_peek returns the message behind a request, serving it */
	assert_int_equal(shmrpc_call_start(c, "s", "c", 1, 5000, &id), 0);
	assert_int_equal(shmrpc_send(c, "s", "m3", 2, -1), 0);
	assert_int_equal(shmrpc_peek(s, &rx, 5000), 2);
	assert_int_equal(rx.len, 2);
	assert_memory_equal(rx.data, "m3", 2);
	assert_int_equal(shmrpc_release(s, &rx), 0);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 5000), 1);
	assert_int_equal(buf[0], 'c');
	/* shmrpc_recv: the same */
	assert_int_equal(shmrpc_call_start(c, "s", "d", 1, 5000, &id), 0);
	assert_int_equal(shmrpc_recv(s, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 5000), 1);
	assert_int_equal(buf[0], 'd');
	assert_int_equal(th_stats(s).calls_served, 4);
	assert_int_equal(th_stats(s).msgs_recv, 3 + 4); /* requests count as messages */
	shmrpc_close(s);
	shmrpc_close(c);
}

/* Many calling threads, no receiving thread at the caller: one reads for
 * the others, and each reply reaches its own call. */
struct caller {
	struct shmrpc_node *n;
	const char *to;
	int id, calls, bad;
};

static void *caller_thread(void *arg)
{
	struct caller *k = arg;
	uint8_t req[200], out[200];
	uint64_t rnd = (uint64_t)k->id + 1;
	int i, rc;

	for (i = 0; i < k->calls; i++) {
		size_t len = th_rand(&rnd) % sizeof(req);

		th_fill(req, len, (uint64_t)k->id, (uint64_t)i);
		rc = shmrpc_call(k->n, k->to, req, len, out, sizeof(out), 10000);
		if (rc != (int)len || th_check(out, len, (uint64_t)k->id, (uint64_t)i))
			k->bad++;
	}
	return NULL;
}

static void test_rpc_threads(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct caller k[8];
	pthread_t t[8];
	struct shmrpc_stats st;
	struct srv s1, s2;
	int i;

	srv_open(&s1, d, "s1", echo_fn, NULL);
	srv_open(&s2, d, "s2", echo_fn, NULL);
	for (i = 0; i < 8; i++) {
		k[i] = (struct caller){ c, i % 2 ? "s2" : "s1", i, 2000, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, caller_thread, &k[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(k[i].bad, 0);
	}
	st = th_stats(c);
	assert_int_equal(st.calls, 16000);
	assert_int_equal(st.calls_in_flight, 0);
	assert_int_equal(st.calls_late, 0);
	st = th_stats(s1.n);
	assert_int_equal(st.calls_served, 8000);
	assert_int_equal(st.replies_sent, 8000);
	srv_close(&s1);
	srv_close(&s2);
	shmrpc_close(c);
}

/* A thread waiting for a call gets -ECANCELED when another cancels it;
 * a second waiter for the same call is -EBUSY. */
struct waiter_arg {
	struct shmrpc_node *n;
	uint64_t id;
	int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter_arg *w = arg;
	char buf[8];

	w->rc = shmrpc_call_wait(w->n, w->id, buf, sizeof(buf), NULL, 10000);
	return NULL;
}

static void test_rpc_cancel_wakes_waiter(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct waiter_arg w[2];
	struct shmrpc_stats st;
	struct defer f;
	pthread_t t[2];
	char buf[8];
	struct srv s;
	int i;

	defer_init(&f, 2);
	srv_open(&s, d, "s", defer_fn, &f);
	/* twice: the waiter is the reader (alone), then a follower */
	for (i = 0; i < 2; i++) {
		w[i].n = c;
		assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &w[i].id), 0);
		assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
		th_sleep_ms(50);
		assert_int_equal(shmrpc_call_wait(c, w[i].id, buf, sizeof(buf), NULL, 0), -EBUSY);
	}
	for (i = 1; i >= 0; i--) {
		assert_int_equal(shmrpc_call_cancel(c, w[i].id), 0);
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].rc, -ECANCELED);
	}
	defer_wait(&f, 2);
	for (i = 0; i < 2; i++) {
		for (int k = 0; k < 200 && shmrpc_req_cancelled(s.n, &f.req[i]) != 1; k++)
			th_sleep_ms(5);
		assert_int_equal(shmrpc_req_cancelled(s.n, &f.req[i]), 1);
		assert_int_equal(shmrpc_reply(s.n, &f.req[i], "x", 1, 0), 0); /* late */
	}
	st = th_stats(c);
	assert_int_equal(st.calls_cancelled, 2);
	assert_int_equal(st.calls_in_flight, 0);
	srv_close(&s);
	shmrpc_close(c);
}

/* Replies nobody collects are queued, up to the caller's ring_bytes: past
 * that the call ends (-ENOBUFS) and its server is told. */
static void *flood_thread(void *arg)
{
	struct defer *f = arg;
	char buf[1000] = { 0 };
	int i;

	defer_wait(f, 2);
	for (i = 0; i < 40; i++)
		f->rc[0] |= shmrpc_reply(f->n, &f->req[0], buf, sizeof(buf), SHMRPC_REPLY_MORE);
	f->rc[1] = shmrpc_reply(f->n, &f->req[1], "y", 1, 0);
	return NULL;
}

static void test_rpc_enobufs(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open_ring(d, "c", 16384);
	struct defer f;
	char buf[1000];
	uint64_t id, other;
	int rc, got = 0;
	pthread_t t;
	struct srv s;

	defer_init(&f, 2);
	srv_open(&s, d, "s", defer_fn, &f);
	assert_int_equal(pthread_create(&t, NULL, flood_thread, &f), 0);
	assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id), 0);
	assert_int_equal(shmrpc_call_start(c, "s", "y", 1, -1, &other), 0);
	/* this wait reads the ring, queueing the first call's replies */
	assert_int_equal(shmrpc_call_wait(c, other, buf, sizeof(buf), NULL, 5000), 1);
	pthread_join(t, NULL);
	assert_int_equal(f.rc[0], 0);
	assert_int_equal(f.rc[1], 0);
	while ((rc = shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 5000)) == 1000)
		got++;
	assert_int_equal(rc, -ENOBUFS);
	assert_int_equal(got, 16);
	assert_true(th_stats(c).calls_late >= 23);
	for (int k = 0; k < 200 && shmrpc_req_cancelled(s.n, &f.req[0]) != 1; k++)
		th_sleep_ms(5);
	assert_int_equal(shmrpc_req_cancelled(s.n, &f.req[0]), 1);
	srv_close(&s);
	shmrpc_close(c);
}

/* A server allows opts.max_calls requests in progress: past that, -EBUSY. */
static void test_rpc_server_busy(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct shmrpc_opts o = d->opts;
	struct defer f;
	struct srv s;
	uint64_t id[3];
	char buf[8];
	int i;

	defer_init(&f, 2);
	o.max_calls = 2;
	assert_int_equal(shmrpc_open("s", &o, &s.n), 0);
	assert_int_equal(shmrpc_serve(s.n, defer_fn, &f), 0);
	assert_int_equal(shmrpc_start(s.n, th_never_handler, NULL), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id[i]), 0);
	assert_int_equal(shmrpc_call_wait(c, id[2], buf, sizeof(buf), NULL, 5000), -EBUSY);
	defer_wait(&f, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(shmrpc_reply_error(s.n, &f.req[i], -ENOSYS), 0);
		assert_int_equal(shmrpc_call_wait(c, id[i], buf, sizeof(buf), NULL, 5000), -ENOSYS);
	}
	assert_int_equal(th_stats(s.n).calls_rejected, 1);
	assert_int_equal(th_stats(c).calls_remote, 3);
	srv_close(&s);
	shmrpc_close(c);
}

/* A reply to a caller that left is -EPIPE, and nothing of it is kept: the
 * in-progress entry, the reply connection (teardown checks /dev/shm). */
static void test_rpc_reply_to_gone_caller(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *c = th_open(d, "c");
	struct defer f;
	struct srv s;
	uint64_t id;
	char buf[8];

	defer_init(&f, 2);
	srv_open(&s, d, "s", defer_fn, &f);
	/* one reply first, so that the reply ring exists */
	assert_int_equal(shmrpc_call_start(c, "s", "x", 1, -1, &id), 0);
	defer_wait(&f, 1);
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], "a", 1, SHMRPC_REPLY_MORE), 0);
	assert_int_equal(shmrpc_call_wait(c, id, buf, sizeof(buf), NULL, 5000), 1);
	assert_int_equal(shmrpc_call_start(c, "s", "y", 1, -1, &id), 0);
	defer_wait(&f, 2);
	shmrpc_close(c);
	assert_int_equal(shmrpc_req_cancelled(s.n, &f.req[1]), 1);
	assert_int_equal(shmrpc_reply(s.n, &f.req[0], "b", 1, 0), -EPIPE);
	assert_int_equal(shmrpc_reply(s.n, &f.req[1], "b", 1, 0), -EPIPE);
	assert_int_equal(shmrpc_reply(s.n, &f.req[1], "b", 1, 0), -EPIPE);
	assert_int_equal(th_stats(s.n).replies_failed, 3);
	srv_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rpc_echo),
		T(test_rpc_sizes),
		T(test_rpc_errors),
		T(test_rpc_stop_serving_answers_queued),
		T(test_rpc_pipeline),
		T(test_rpc_max_calls),
		T(test_rpc_stream),
		T(test_rpc_stream_inline_cancel),
		T(test_rpc_deferred_reverse),
		T(test_rpc_reply_nowait),
		T(test_rpc_stream_cancel_midway),
		T(test_rpc_deadline_and_late),
		T(test_rpc_expired_unserved),
		T(test_rpc_replies_apart_from_messages),
		T(test_rpc_every_receiving_call),
		T(test_rpc_threads),
		T(test_rpc_cancel_wakes_waiter),
		T(test_rpc_enobufs),
		T(test_rpc_server_busy),
		T(test_rpc_reply_to_gone_caller),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
