// SPDX-License-Identifier: MIT
/*
 * Request/response between real processes: echo with random sizes across
 * ring wraps, 8 calling threads against 2 server processes while a
 * receiving thread takes plain messages, a server SIGKILLed with calls
 * pending (-EPIPE promptly, never a timeout, after the replies it sent),
 * a server that leaves, a caller SIGKILLed with requests at the server
 * (replies -EPIPE, nothing kept).
 *
 * The echo makes 1,000,000 calls (about 15 s a backend; $SHMRPC_RPC_CALLS
 * sets another count). The safety timeout is off (th_main_env): a lost wake
 * hangs.
 *
 * Every child is forked before the test opens a node of its own: a fork
 * from a process whose library threads (the watcher, a receiving thread)
 * may hold the allocator's lock leaves the child's first malloc waiting
 * forever under ASan (its allocator has no fork handlers).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "harness.h"

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)
#define LONG_MS 30000 /* a call's timeout that no test may reach */

static void echo_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	shmrpc_reply(n, r, r->data, r->len, 0);
}

/* A server child: joins as name (ring bytes ring, if not 0), serves echo
 * from its receiving thread, opens ready, stays until release. */
struct server {
	const struct th_dom *d;
	const char *name;
	uint32_t ring;
	shmrpc_serve_fn fn;
	const char *chat; /* if set: a plain message to it per request */
	struct th_gate ready, release;
};

static struct server *chat_srv;

static void echo_chat_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	shmrpc_send(n, chat_srv->chat, "msg", 3, -1);
	shmrpc_reply(n, r, r->data, r->len, 0);
}

static int server_main(void *arg)
{
	struct server *s = arg;
	struct shmrpc_opts o = s->d->opts;
	struct shmrpc_node *n;

	if (s->ring)
		o.ring_bytes = s->ring;
	chat_srv = s;
	CHILD_CHECK_RC(shmrpc_open(s->name, &o, &n), 0);
	CHILD_CHECK_RC(shmrpc_serve(n, s->chat ? echo_chat_fn : s->fn ? s->fn : echo_fn, NULL), 0);
	CHILD_CHECK_RC(shmrpc_start(n, th_never_handler, NULL), 0);
	th_gate_open(&s->ready);
	th_gate_wait(&s->release, 600000);
	shmrpc_close(n);
	return 0;
}

static pid_t server_start(struct server *s, const struct th_dom *d, const char *name)
{
	pid_t pid;

	s->d = d;
	s->name = name;
	th_gate_init(&s->ready);
	th_gate_init(&s->release);
	pid = th_fork(server_main, s);
	assert_int_equal(th_gate_wait(&s->ready, 10000), 0);
	return pid;
}

static void server_stop(struct server *s, pid_t pid)
{
	th_gate_open(&s->release);
	assert_int_equal(th_wait(pid, 10000), 0);
	th_gate_close(&s->ready);
	th_gate_close(&s->release);
}

/* ------------------------------------------------------------ echo */

#define SMALL_RING (16 * 1024) /* wraps constantly; requests up to 8168 B */

static long calls_count(void)
{
	const char *s = getenv("SHMRPC_RPC_CALLS");

	return s && *s ? atol(s) : 1000000;
}

static void test_rpc_proc_echo_random_sizes(void **state)
{
	struct th_dom *d = *state;
	static uint8_t req[SMALL_RING], out[SMALL_RING];
	struct server s = { .ring = SMALL_RING };
	long i, n = calls_count();
	struct shmrpc_node *c;
	struct shmrpc_stats st;
	uint64_t rnd = 7;
	pid_t pid;
	int max;

	pid = server_start(&s, d, "s");
	c = th_open_ring(d, "c", SMALL_RING);
	assert_non_null(c);
	max = shmrpc_max_size(c, "s") - 16;
	assert_int_equal(max, SMALL_RING / 2 - 8 - 16);
	for (i = 0; i < n; i++) {
		size_t len = th_rand(&rnd) % ((uint64_t)max + 1);
		int rc;

		th_fill(req, len, 9, (uint64_t)i);
		rc = shmrpc_call(c, "s", req, len, out, sizeof(out), LONG_MS);
		if (rc != (int)len || th_check(out, len, 9, (uint64_t)i))
			fail_msg("call %ld: %d, want %zu", i, rc, len);
	}
	st = th_stats(c);
	assert_int_equal(st.calls, n);
	assert_int_equal(st.calls_in_flight, 0);
	assert_int_equal(st.calls_late, 0);
	server_stop(&s, pid);
	shmrpc_close(c);
}

/* ------------------------------------------------------------ threads */

struct caller {
	struct shmrpc_node *n;
	const char *to;
	int id, calls, bad;
};

static void *caller_thread(void *arg)
{
	struct caller *k = arg;
	uint8_t req[300], out[300];
	uint64_t rnd = (uint64_t)k->id * 77 + 1;
	int i, rc;

	for (i = 0; i < k->calls; i++) {
		size_t len = th_rand(&rnd) % sizeof(req);

		th_fill(req, len, (uint64_t)k->id, (uint64_t)i);
		rc = shmrpc_call(k->n, k->to, req, len, out, sizeof(out), LONG_MS);
		if (rc != (int)len || th_check(out, len, (uint64_t)k->id, (uint64_t)i))
			k->bad++;
	}
	return NULL;
}

struct msgs {
	_Atomic int n, bad;
};

static void count_msgs(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		       void *arg)
{
	struct msgs *m = arg;

	(void)n;
	(void)from;
	if (len == 3 && !memcmp(data, "msg", 3))
		atomic_fetch_add(&m->n, 1);
	else
		atomic_fetch_add(&m->bad, 1);
}

static void test_rpc_proc_eight_threads_two_servers(void **state)
{
	struct th_dom *d = *state;
	struct server s1 = { .chat = "c" }, s2 = { .chat = "c" };
	struct msgs m = { 0, 0 };
	struct shmrpc_node *c;
	struct caller k[8];
	pthread_t t[8];
	pid_t p1, p2;
	int i, per = 2500;

	p1 = server_start(&s1, d, "s1");
	p2 = server_start(&s2, d, "s2");
	c = th_open(d, "c");
	assert_int_equal(shmrpc_start(c, count_msgs, &m), 0);
	for (i = 0; i < 8; i++) {
		k[i] = (struct caller){ c, i % 2 ? "s2" : "s1", i, per, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, caller_thread, &k[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(k[i].bad, 0);
	}
	/* one plain message per request, each sent before its reply */
	for (i = 0; i < 1000 && atomic_load(&m.n) < 8 * per; i++)
		th_sleep_ms(10);
	assert_int_equal(atomic_load(&m.n), 8 * per);
	assert_int_equal(atomic_load(&m.bad), 0);
	assert_int_equal(th_stats(c).calls_in_flight, 0);
	assert_int_equal(shmrpc_stop(c), 0);
	server_stop(&s1, p1);
	server_stop(&s2, p2);
	shmrpc_close(c);
}

/* ------------------------------------------------------------ deaths */

/* Replies at once to the first `first` requests, keeps the others. */
static int replied_first = 10;
static _Atomic int seen;
static struct th_gate all_seen;
static int want_seen;

static void keep_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&seen, 1) < replied_first)
		shmrpc_reply(n, r, &r->id, sizeof(r->id), 0);
	if (atomic_load(&seen) == want_seen)
		th_gate_open(&all_seen);
}

struct waiters {
	struct shmrpc_node *n;
	uint64_t *id;
	int from, to;
	int rc[100];
	double ms; /* when the last returned */
};

static void *waiter_thread(void *arg)
{
	struct waiters *w = arg;
	uint64_t v;
	int i;

	for (i = w->from; i < w->to; i++)
		w->rc[i] = shmrpc_call_wait(w->n, w->id[i], &v, sizeof(v), NULL, LONG_MS);
	w->ms = th_now_ms();
	return NULL;
}

/* 100 calls pending in 4 waiting threads; the server dies: the first 10
 * get their replies, the other 90 -EPIPE, promptly. */
static void test_rpc_proc_server_killed(void **state)
{
	struct th_dom *d = *state;
	struct server s = { .fn = keep_fn };
	struct shmrpc_node *c;
	struct waiters w[4];
	uint64_t id[100];
	pthread_t t[4];
	double t0, last = 0;
	pid_t pid;
	int i, k;

	th_gate_init(&all_seen);
	want_seen = 100;
	pid = server_start(&s, d, "s");
	c = th_open(d, "c");
	for (i = 0; i < 100; i++)
		assert_int_equal(shmrpc_call_start(c, "s", "x", 1, LONG_MS, &id[i]), 0);
	assert_int_equal(th_gate_wait(&all_seen, 10000), 0);
	for (k = 0; k < 4; k++) {
		w[k] = (struct waiters){ .n = c, .id = id, .from = k * 25, .to = k * 25 + 25 };
		assert_int_equal(pthread_create(&t[k], NULL, waiter_thread, &w[k]), 0);
	}
	th_sleep_ms(100); /* the waiters asleep: one reader, three followers */
	t0 = th_now_ms();
	kill(pid, SIGKILL);
	for (k = 0; k < 4; k++) {
		pthread_join(t[k], NULL);
		if (w[k].ms > last)
			last = w[k].ms;
	}
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	for (k = 0; k < 4; k++)
		for (i = w[k].from; i < w[k].to; i++)
			assert_int_equal(w[k].rc[i], i < 10 ? (int)sizeof(uint64_t) : -EPIPE);
	printf("[observed] 90 calls pending on a killed server: the last -EPIPE %.2f ms after "
	       "the kill\n",
	       last - t0);
	assert_true(last - t0 < TH_PROMPT_MS); /* far below the calls' timeout */
	assert_int_equal(th_stats(c).calls_pipe, 90);
	/* a new call to the name: nobody has it */
	assert_int_equal(shmrpc_call(c, "s", "x", 1, id, sizeof(id), 100), -ENOENT);
	th_gate_close(&all_seen);
	th_gate_close(&s.ready);
	th_gate_close(&s.release);
	shmrpc_close(c);
}

/* A server that leaves with calls pending: they end -EPIPE. */
static void test_rpc_proc_server_leaves(void **state)
{
	struct th_dom *d = *state;
	struct server s = { .fn = keep_fn };
	struct shmrpc_node *c;
	uint64_t id[20], v;
	pid_t pid;
	int i;

	th_gate_init(&all_seen);
	atomic_store(&seen, 0);
	want_seen = 20;
	pid = server_start(&s, d, "s");
	c = th_open(d, "c");
	for (i = 0; i < 20; i++)
		assert_int_equal(shmrpc_call_start(c, "s", "x", 1, LONG_MS, &id[i]), 0);
	assert_int_equal(th_gate_wait(&all_seen, 10000), 0);
	server_stop(&s, pid);
	for (i = 0; i < 20; i++)
		assert_int_equal(shmrpc_call_wait(c, id[i], &v, sizeof(v), NULL, LONG_MS),
				 i < 10 ? (int)sizeof(v) : -EPIPE);
	th_gate_close(&all_seen);
	shmrpc_close(c);
}

/* The caller child: one call (so that a reply ring exists), then `kept`
 * calls the server keeps, then, the server's receiving stopped, `queued`
 * more that stay in its ring; then it waits to be killed. */
struct victim {
	const struct th_dom *d;
	int kept, queued;
	struct th_gate up, sent, stopped; /* up: the server serves */
};

static int victim_main(void *arg)
{
	struct victim *v = arg;
	struct shmrpc_node *n;
	uint64_t id;
	char buf[8];
	int i;

	CHILD_CHECK_RC(shmrpc_open("victim", &v->d->opts, &n), 0);
	CHILD_CHECK_RC(th_gate_wait(&v->up, 10000), 0);
	CHILD_CHECK_RC(shmrpc_call(n, "s", "hi", 2, buf, sizeof(buf), LONG_MS), 8);
	for (i = 0; i < v->kept; i++)
		CHILD_CHECK_RC(shmrpc_call_start(n, "s", "k", 1, -1, &id), 0);
	th_gate_open(&v->sent);
	CHILD_CHECK_RC(th_gate_wait(&v->stopped, 10000), 0);
	for (i = 0; i < v->queued; i++)
		CHILD_CHECK_RC(shmrpc_call_start(n, "s", "q", 1, -1, &id), 0);
	th_gate_open(&v->sent);
	for (;;)
		pause();
}

struct kept {
	pthread_mutex_t lock;
	struct shmrpc_req req[64];
	int n;
};

static void kept_fn(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	struct kept *k = arg;

	if (r->len == 2) { /* "hi" */
		shmrpc_reply(n, r, &r->id, sizeof(r->id), 0);
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (r->len != 1 || ((const char *)r->data)[0] != 'k' || k->n == 64)
		fail_msg("request '%.*s' served", (int)r->len, (const char *)r->data);
	k->req[k->n++] = *r;
	pthread_mutex_unlock(&k->lock);
}

static void test_rpc_proc_caller_killed(void **state)
{
	struct th_dom *d = *state;
	struct victim v = { .d = d, .kept = 20, .queued = 30 };
	struct kept k = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct shmrpc_node *s;
	struct shmrpc_stats st;
	pid_t pid;
	int i;

	th_gate_init(&v.up);
	th_gate_init(&v.sent);
	th_gate_init(&v.stopped);
	pid = th_fork(victim_main, &v);
	s = th_open(d, "s");
	assert_int_equal(shmrpc_serve(s, kept_fn, &k), 0);
	assert_int_equal(shmrpc_start(s, th_never_handler, NULL), 0);
	th_gate_open(&v.up);
	assert_int_equal(th_gate_wait(&v.sent, 10000), 0);
	for (i = 0; i < 1000 && k.n < 20; i++)
		th_sleep_ms(5);
	assert_int_equal(k.n, 20);
	assert_int_equal(shmrpc_stop(s), 0);
	th_gate_open(&v.stopped);
	assert_int_equal(th_gate_wait(&v.sent, 10000), 0);
	kill(pid, SIGKILL);
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	/* the watcher reclaims it (the server has its ring) */
	for (i = 0; i < 1000 && shmrpc_is_local(s, "victim") == 1; i++)
		th_sleep_ms(5);
	assert_int_equal(shmrpc_is_local(s, "victim"), 0);
	/* its queued requests are dropped unserved (kept_fn fails if not) */
	char buf[8];
	assert_int_equal(shmrpc_recv(s, buf, sizeof(buf), NULL, 0), -EAGAIN);
	for (i = 0; i < 20; i++) {
		assert_int_equal(shmrpc_req_cancelled(s, &k.req[i]), 1);
		assert_int_equal(shmrpc_reply(s, &k.req[i], "late", 4, 0), -EPIPE);
	}
	st = th_stats(s);
	assert_int_equal(st.replies_failed, 20);
	assert_int_equal(st.calls_expired, 30);
	/* nothing of the victim is left: its rings, its reply ring */
	assert_int_equal(th_dom_files(d->name, "repl."), 0);
	assert_int_equal(th_dom_files(d->name, "ring."), 0);
	th_gate_close(&v.up);
	th_gate_close(&v.sent);
	th_gate_close(&v.stopped);
	shmrpc_close(s);
}

/* ------------------------------------------------------------ no descriptor left */

/*
 * Leave this process no descriptor: every free number below the highest
 * open one taken by /dev/null, and RLIMIT_NOFILE just above it (the kernel
 * gives the lowest free number, below the soft limit). The fillers in
 * @fill (their count returned), the old limit in @old.
 */
static int fds_exhaust(int *fill, int cap, struct rlimit *old)
{
	DIR *dir = opendir("/proc/self/fd");
	struct rlimit rl;
	struct dirent *e;
	int k = 0, fd, top = -1;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(dir) && atoi(e->d_name) > top)
			top = atoi(e->d_name);
	closedir(dir);
	while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && fd < top && k < cap)
		fill[k++] = fd;
	assert_true(fd > top); /* past the holes: not needed */
	close(fd);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, old), 0);
	rl = *old;
	rl.rlim_cur = (rlim_t)top + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return k;
}

static void fds_restore(int *fill, int k, const struct rlimit *old)
{
	while (k > 0)
		close(fill[--k]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, old), 0);
}

/*
 * The server's reply ring cannot be opened by the caller (no descriptor
 * left): the call ends with -EMFILE, at once, not at its timeout (the
 * reader spun until then and said -ETIMEDOUT, found by test_fault's sticky
 * sweep); with descriptors back, the next call works.
 */
static void test_rpc_proc_reply_ring_emfile(void **state)
{
	struct th_dom *d = *state;
	struct server s = { 0 };
	struct shmrpc_node *c;
	struct rlimit old;
	int fill[4096], k, rc;
	char buf[8];
	pid_t pid;

	pid = server_start(&s, d, "s");
	c = th_open(d, "c");
	assert_non_null(c);
	assert_int_equal(shmrpc_warmup(c), 1); /* the request ring; no reply ring yet */
	th_sleep_ms(100);		       /* the watcher's descriptor for s, if any */
	k = fds_exhaust(fill, 4096, &old);
	assert_int_equal(open("/dev/null", O_RDONLY | O_CLOEXEC), -1);
	assert_int_equal(errno, EMFILE);
	rc = shmrpc_call(c, "s", "no", 2, buf, sizeof(buf), LONG_MS);
	fds_restore(fill, k, &old);
	print_message("call with no descriptor for the reply ring: %d (%s)\n", rc,
		      shmrpc_last_error());
	assert_int_equal(rc, -EMFILE);
	assert_non_null(strstr(shmrpc_last_error(), "ring from 's'")); /* says which */
	assert_int_equal(shmrpc_call(c, "s", "ok", 2, buf, sizeof(buf), LONG_MS), 2);
	assert_memory_equal(buf, "ok", 2);
	shmrpc_close(c);
	server_stop(&s, pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rpc_proc_echo_random_sizes), T(test_rpc_proc_eight_threads_two_servers),
		T(test_rpc_proc_server_killed),	    T(test_rpc_proc_server_leaves),
		T(test_rpc_proc_caller_killed),	    T(test_rpc_proc_reply_ring_emfile),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
