// SPDX-License-Identifier: MIT
/*
 * The public API's contract, as a demanding user relies on it: argument
 * checks, errno, timeouts, zero-copy sending and receiving, dispatch, the
 * receiving thread, many threads, peers leaving, counters, warmup, sizes and
 * names, broadcast. Every expectation below comes from include/shmrpc.h;
 * where a test pins something the header leaves open, a comment says so.
 *
 * The safety timeout is off (see main): a lost wake is a hang here, so a
 * bound such as "stop returns within 2 s" checks a wake, not a speed.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define SENTINEL 4242  /* an errno value no call would set */
#define PROMPT_MS 2000 /* "promptly": far below every timeout in play */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static struct shmrpc_node *open_ring(const struct th_dom *d, const char *name, uint32_t ring)
{
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL;
	int rc;

	o.ring_bytes = ring;
	rc = shmrpc_open(name, &o, &n);
	if (rc)
		fprintf(stderr, "shmrpc_open(%s, ring %u) = %d\n", name, ring, rc);
	return n;
}

static struct shmrpc_stats stats_of(struct shmrpc_node *n)
{
	struct shmrpc_stats st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(shmrpc_stats(n, &st), 0);
	return st;
}

/* Sleep-poll until n's sleep counter passes @above: its receiving (or
 * blocked sending) thread is asleep in the kernel, or about to be. */
static bool wait_sleeps_above(struct shmrpc_node *n, uint64_t above, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;
	struct shmrpc_stats st;

	for (;;) {
		if (shmrpc_stats(n, &st) == 0 && st.sleeps > above)
			return true;
		if (th_now_ms() > end)
			return false;
		sleep_ms(2);
	}
}

/* Send @len-byte messages with timeout 0 until the ring is full. */
static int fill_ring(struct shmrpc_node *n, const char *to, size_t len)
{
	static uint8_t buf[4096];
	int count = 0, rc;

	assert_true(len <= sizeof(buf));
	while ((rc = shmrpc_send(n, to, buf, len, 0)) == 0)
		count++;
	assert_int_equal(rc, -EAGAIN);
	return count;
}

/* Then with empty messages: afterwards not even those fit. */
static int fill_ring_full(struct shmrpc_node *n, const char *to, size_t len, int *empties)
{
	int count = fill_ring(n, to, len);

	*empties = fill_ring(n, to, 0);
	return count;
}

static void never_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			  void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	(void)arg;
	fail_msg("handler called");
}

static int count_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* Sleep-poll until the process has @want threads: a joined thread leaves
 * /proc/self/task a moment after pthread_join returns (the kernel wakes
 * the joiner before it releases the task). */
static bool wait_threads(int want, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;

	while (count_threads() != want) {
		if (th_now_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* ================================================== 1. argument checking */

static void test_args_open_rejects_bad_names_and_options(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL, *m = NULL;
	char name63[SHMRPC_NAME_MAX + 1], name64[SHMRPC_NAME_MAX + 2];
	struct {
		struct shmrpc_opts o;
		uint64_t extra[2];
	} big;

	memset(name63, 'x', SHMRPC_NAME_MAX);
	name63[SHMRPC_NAME_MAX] = '\0';
	memset(name64, 'y', SHMRPC_NAME_MAX + 1);
	name64[SHMRPC_NAME_MAX + 1] = '\0';

	assert_int_equal(shmrpc_open("a", &o, NULL), -EINVAL);
	assert_int_equal(shmrpc_open(NULL, &o, &n), -EINVAL);
	assert_int_equal(shmrpc_open("", &o, &n), -EINVAL);
	assert_int_equal(shmrpc_open(".a", &o, &n), -EINVAL);
	assert_int_equal(shmrpc_open("a/b", &o, &n), -EINVAL);
	assert_int_equal(shmrpc_open("a b", &o, &n), -EINVAL);
	assert_int_equal(shmrpc_open("caf\xc3\xa9", &o, &n), -EINVAL);
	assert_int_equal(shmrpc_open(name64, &o, &n), -ENAMETOOLONG);

	o.ring_bytes = 3000; /* not a power of two */
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o.ring_bytes = 2048; /* below 4 KiB */
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o.ring_bytes = 1u << 31; /* above 1 GiB */
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o = d->opts;
	o.max_nodes = 65537;
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o = d->opts;
	o.mode = 0644; /* other bits */
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o = d->opts;
	o.backend = "bogus";
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o = d->opts;
	o.domain = "a/b";
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	o.domain = name64;
	assert_int_equal(shmrpc_open("a", &o, &n), -ENAMETOOLONG);
	/* none of the refusals left anything behind */
	assert_int_equal(th_shm_count(d->name), 0);

	/* longest name; then the same name again is taken */
	assert_int_equal(shmrpc_open(name63, &d->opts, &n), 0);
	assert_string_equal(shmrpc_name(n), name63);
	assert_int_equal(shmrpc_open(name63, &d->opts, &m), -EEXIST);

	/* ABI growth: a larger struct with zero tail is fine, a non-zero
	 * tail is -E2BIG; a smaller one gets defaults beyond its size */
	memset(&big, 0, sizeof(big));
	big.o = d->opts;
	big.o.sz = sizeof(big);
	assert_int_equal(shmrpc_open("big", &big.o, &m), 0);
	shmrpc_close(m);
	big.extra[1] = 1;
	assert_int_equal(shmrpc_open("big", &big.o, &m), -E2BIG);
	o = d->opts;
	o.sz = offsetof(struct shmrpc_opts, ring_bytes);
	o.ring_bytes = 3000; /* beyond sz: must not be read */
	assert_int_equal(shmrpc_open("old", &o, &m), 0);
	assert_int_equal(shmrpc_max_size(m, NULL), 256 * 1024 / 2 - 8);
	shmrpc_close(m);
	shmrpc_close(n);
}

static void test_args_calls_reject_null_and_bad_values(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	char name64[SHMRPC_NAME_MAX + 2], buf[16], names[4][SHMRPC_NAME_MAX + 1];
	const char *bad[] = { NULL, "", ".b", "a/b", "b c", "b\n" };
	struct shmrpc_txbuf tx;
	struct shmrpc_rxbuf rx;
	struct shmrpc_stats st;
	size_t i;

	assert_non_null(a);
	assert_non_null(b);
	memset(name64, 'z', SHMRPC_NAME_MAX + 1);
	name64[SHMRPC_NAME_MAX + 1] = '\0';
	memset(&tx, 0, sizeof(tx));
	memset(&rx, 0, sizeof(rx));

	/* NULL node */
	assert_int_equal(shmrpc_send(NULL, "b", "x", 1, 0), -EINVAL);
	assert_int_equal(shmrpc_broadcast(NULL, "x", 1, 0), -EINVAL);
	assert_int_equal(shmrpc_recv(NULL, buf, sizeof(buf), NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_dispatch(NULL, never_handler, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_start(NULL, never_handler, NULL), -EINVAL);
	assert_int_equal(shmrpc_stop(NULL), -EINVAL);
	assert_int_equal(shmrpc_nodes(NULL, names, 4), -EINVAL);
	assert_int_equal(shmrpc_is_local(NULL, "b"), -EINVAL);
	assert_int_equal(shmrpc_wait_node(NULL, "b", 0), -EINVAL);
	assert_int_equal(shmrpc_warmup(NULL), -EINVAL);
	assert_int_equal(shmrpc_stats(NULL, &st), -EINVAL);
	assert_int_equal(shmrpc_max_size(NULL, NULL), -EINVAL);
	assert_int_equal(shmrpc_reserve(NULL, "b", 1, &tx, 0), -EINVAL);
	assert_int_equal(shmrpc_commit(NULL, &tx, 0), -EINVAL);
	assert_int_equal(shmrpc_peek(NULL, &rx, 0), -EINVAL);
	assert_int_equal(shmrpc_release(NULL, &rx), -EINVAL);
	shmrpc_cancel(NULL, &tx);
	shmrpc_close(NULL);
	assert_null(shmrpc_name(NULL));
	assert_null(shmrpc_domain(NULL));
	assert_null(shmrpc_backend(NULL));

	/* NULL buffers with a non-zero length, NULL out-structs and handlers */
	assert_int_equal(shmrpc_send(a, "b", NULL, 1, 0), -EINVAL);
	assert_int_equal(shmrpc_broadcast(a, NULL, 1, 0), -EINVAL);
	assert_int_equal(shmrpc_recv(a, NULL, 1, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_nodes(a, NULL, 1), -EINVAL);
	assert_int_equal(shmrpc_stats(a, NULL), -EINVAL);
	assert_int_equal(shmrpc_reserve(a, "b", 1, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_commit(a, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_peek(a, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_release(a, NULL), -EINVAL);
	assert_int_equal(shmrpc_dispatch(a, NULL, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_start(a, NULL, NULL), -EINVAL);
	shmrpc_cancel(a, NULL);
	/* ... but NULL with length 0 is fine */
	assert_int_equal(shmrpc_recv(a, NULL, 0, NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_nodes(a, NULL, 0), 2);
	/* a release or commit of something never peeked or reserved */
	assert_int_equal(shmrpc_release(a, &rx), -EINVAL);
	assert_int_equal(shmrpc_commit(a, &tx, 0), -EINVAL);

	/* timeout < -1, even INT_MIN; nothing blocks */
	assert_int_equal(shmrpc_send(a, "b", "x", 1, -2), -EINVAL);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, INT_MIN), -EINVAL);
	assert_int_equal(shmrpc_broadcast(a, "x", 1, -2), -EINVAL);
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, -2), -EINVAL);
	assert_int_equal(shmrpc_peek(a, &rx, -2), -EINVAL);
	assert_int_equal(shmrpc_dispatch(a, never_handler, NULL, INT_MIN), -EINVAL);
	assert_int_equal(shmrpc_wait_node(a, "b", -2), -EINVAL);
	assert_int_equal(shmrpc_reserve(a, "b", 1, &tx, -2), -EINVAL);

	/* bad names for @to: -EINVAL, or -ENAMETOOLONG when only too long */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(shmrpc_send(a, bad[i], "x", 1, -1), -EINVAL);
		assert_int_equal(shmrpc_reserve(a, bad[i], 1, &tx, -1), -EINVAL);
		assert_int_equal(shmrpc_is_local(a, bad[i]), -EINVAL);
		assert_int_equal(shmrpc_wait_node(a, bad[i], -1), -EINVAL);
		if (bad[i]) /* NULL is "self" for max_size */
			assert_int_equal(shmrpc_max_size(a, bad[i]), -EINVAL);
	}
	assert_int_equal(shmrpc_send(a, name64, "x", 1, -1), -ENAMETOOLONG);
	assert_int_equal(shmrpc_reserve(a, name64, 1, &tx, -1), -ENAMETOOLONG);
	assert_int_equal(shmrpc_is_local(a, name64), -ENAMETOOLONG);
	assert_int_equal(shmrpc_wait_node(a, name64, -1), -ENAMETOOLONG);
	assert_int_equal(shmrpc_max_size(a, name64), -ENAMETOOLONG);

	assert_int_equal(shmrpc_backend_available("bogus"), -EINVAL);
	assert_int_equal(shmrpc_backend_available("futex"), 1);

	/* none of it sent or connected anything */
	st = stats_of(a);
	assert_int_equal(st.msgs_sent, 0);
	assert_int_equal(st.connects, 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(a);
	shmrpc_close(b);
}

static void test_args_send_to_self_is_einval(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a");
	struct shmrpc_txbuf tx;
	struct shmrpc_stats st;
	char buf[8];

	assert_non_null(a);
	assert_int_equal(shmrpc_send(a, "a", "x", 1, 0), -EINVAL);
	assert_int_equal(shmrpc_send(a, "a", "x", 1, -1), -EINVAL); /* no hang */
	assert_int_equal(shmrpc_reserve(a, "a", 1, &tx, -1), -EINVAL);
	assert_int_equal(shmrpc_broadcast(a, "x", 1, -1), 0); /* nobody else */
	assert_int_equal(shmrpc_warmup(a), 0);
	assert_int_equal(shmrpc_is_local(a, "a"), 1);
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = stats_of(a);
	assert_int_equal(st.connects, 0);
	assert_int_equal(st.rings_out, 0);
	assert_int_equal(st.rings_in, 0);
	assert_int_equal(st.msgs_sent, 0);
	shmrpc_close(a);
}

static void test_args_unknown_target_is_enoent(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct shmrpc_txbuf tx;
	double t0;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_send(a, "nobody", "x", 1, -1), -ENOENT);
	assert_int_equal(shmrpc_reserve(a, "nobody", 1, &tx, -1), -ENOENT);
	assert_int_equal(shmrpc_max_size(a, "nobody"), -ENOENT);
	assert_int_equal(shmrpc_is_local(a, "nobody"), 0);
	assert_int_equal(shmrpc_wait_node(a, "nobody", 0), -EAGAIN);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_wait_node(a, "nobody", 30), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 29.9);
	/* a node that left before anybody sent to it is just unknown */
	shmrpc_close(b);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, -1), -ENOENT);
	assert_int_equal(shmrpc_is_local(a, "b"), 0);
	assert_int_equal(stats_of(a).connects, 0);
	shmrpc_close(a);
}

static void test_args_timeouts_eagain_and_etimedout(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = open_ring(d, "b", 4096);
	struct shmrpc_txbuf tx;
	struct shmrpc_rxbuf rx;
	char buf[128];
	double t0, dt;

	assert_non_null(a);
	assert_non_null(b);
	/* receiving on an empty node */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_peek(b, &rx, 0), -EAGAIN);
	assert_int_equal(shmrpc_dispatch(b, never_handler, NULL, 0), -EAGAIN);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 50), -ETIMEDOUT);
	dt = th_now_ms() - t0;
	print_message("recv timeout 50 ms took %.1f ms\n", dt);
	assert_true(dt >= 49.9);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_peek(b, &rx, 20), -ETIMEDOUT);
	assert_int_equal(shmrpc_dispatch(b, never_handler, NULL, 20), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 39.9);

	/* sending to a full ring */
	assert_true(fill_ring(a, "b", 100) > 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 100, 0), -EAGAIN);
	assert_int_equal(shmrpc_reserve(a, "b", 100, &tx, 0), -EAGAIN);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_send(a, "b", buf, 100, 30), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 29.9);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_reserve(a, "b", 100, &tx, 30), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 29.9);
	/* a broadcast does not count a target whose ring stays full */
	assert_int_equal(shmrpc_broadcast(a, buf, 100, 0), 0);
	assert_int_equal(shmrpc_broadcast(a, buf, 100, 20), 0);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ================================================================ 2. errno */

#define KEEPS(expr, want)                                              \
	do {                                                           \
		errno = SENTINEL;                                      \
		long rc_ = (long)(expr);                               \
		int e_ = errno;                                        \
		assert_int_equal(rc_, (long)(want));                   \
		if (e_ != SENTINEL)                                    \
			fail_msg("%s changed errno to %d", #expr, e_); \
	} while (0)

#define KEEPS_VOID(stmt)                                               \
	do {                                                           \
		errno = SENTINEL;                                      \
		stmt;                                                  \
		int e_ = errno;                                        \
		if (e_ != SENTINEL)                                    \
			fail_msg("%s changed errno to %d", #stmt, e_); \
	} while (0)

static void count_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			  void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	atomic_fetch_add((_Atomic int *)arg, 1);
}

static void test_errno_never_modified(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a = NULL, *b = NULL, *x = NULL;
	static char buf[4096];
	char from[SHMRPC_NAME_MAX + 1], names[4][SHMRPC_NAME_MAX + 1];
	struct shmrpc_txbuf tx;
	struct shmrpc_rxbuf rx;
	struct shmrpc_stats st;
	_Atomic int handled = 0;
	const char *s;

	memset(buf, 7, sizeof(buf));
	KEEPS(shmrpc_open("bad/name", &o, &x), -EINVAL);
	o.ring_bytes = 4096;
	KEEPS(shmrpc_open("a", &o, &a), 0); /* creates the registry */
	KEEPS(shmrpc_open("a", &o, &x), -EEXIST);
	KEEPS(shmrpc_open("b", &d->opts, &b), 0);
	KEEPS(shmrpc_send(b, "nobody", buf, 1, 0), -ENOENT);
	KEEPS(shmrpc_send(b, "b", buf, 1, 0), -EINVAL);
	KEEPS(shmrpc_send(b, "a", buf, 100, 0), 0); /* connects */
	KEEPS(shmrpc_send(b, "a", buf, 4000, 0), -EMSGSIZE);
	while (shmrpc_send(b, "a", buf, 100, 0) == 0)
		;
	KEEPS(shmrpc_send(b, "a", buf, 100, 0), -EAGAIN);
	KEEPS(shmrpc_send(b, "a", buf, 100, 20), -ETIMEDOUT); /* slept */
	KEEPS(shmrpc_recv(a, buf, 10, from, 0), -EMSGSIZE);
	KEEPS(shmrpc_recv(a, buf, sizeof(buf), from, 0), 100);
	while (shmrpc_recv(a, buf, sizeof(buf), NULL, 0) > 0)
		;
	KEEPS(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN);
	KEEPS(shmrpc_recv(a, buf, sizeof(buf), NULL, 20), -ETIMEDOUT); /* slept */
	KEEPS(shmrpc_send(b, "a", buf, 10, 0), 0);
	KEEPS(shmrpc_peek(a, &rx, 100), 10);
	KEEPS(shmrpc_release(a, &rx), 0);
	KEEPS(shmrpc_release(a, &rx), -EINVAL);
	KEEPS(shmrpc_peek(a, &rx, 20), -ETIMEDOUT);
	KEEPS(shmrpc_reserve(b, "a", 10, &tx, 0), 0);
	KEEPS(shmrpc_commit(b, &tx, 11), -EINVAL);
	KEEPS(shmrpc_commit(b, &tx, 10), 0);
	KEEPS(shmrpc_reserve(b, "a", 10, &tx, 0), 0);
	KEEPS_VOID(shmrpc_cancel(b, &tx));
	KEEPS(shmrpc_dispatch(a, count_handler, &handled, 100), 1);
	KEEPS(shmrpc_dispatch(a, count_handler, &handled, 20), -ETIMEDOUT);
	KEEPS(shmrpc_start(a, count_handler, &handled), 0);
	KEEPS(shmrpc_start(a, count_handler, &handled), -EALREADY);
	KEEPS(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EBUSY);
	KEEPS(shmrpc_stop(a), 0);
	KEEPS(shmrpc_stop(a), -EALREADY);
	KEEPS(shmrpc_broadcast(b, buf, 10, 100), 1);
	KEEPS(shmrpc_broadcast(b, buf, 4000, 100), -EMSGSIZE);
	KEEPS(shmrpc_nodes(a, names, 4), 2);
	KEEPS(shmrpc_is_local(a, "b"), 1);
	KEEPS(shmrpc_is_local(a, "zz"), 0);
	KEEPS(shmrpc_wait_node(a, "b", 0), 0);
	KEEPS(shmrpc_wait_node(a, "zz", 20), -ETIMEDOUT); /* slept */
	KEEPS(shmrpc_warmup(a), 1);
	KEEPS(shmrpc_stats(a, &st), 0);
	KEEPS(shmrpc_max_size(a, NULL), 2040);
	KEEPS(shmrpc_max_size(b, "a"), 2040);
	KEEPS(shmrpc_max_size(a, "zz"), -ENOENT);
	KEEPS_VOID(s = shmrpc_backend(a));
	assert_non_null(s);
	KEEPS_VOID(s = shmrpc_name(a));
	KEEPS_VOID(s = shmrpc_domain(a));
	KEEPS_VOID(s = shmrpc_backend_default());
	KEEPS(shmrpc_backend_available("futex"), 1);
	KEEPS(shmrpc_backend_available("bogus"), -EINVAL);
	KEEPS_VOID(shmrpc_close(a)); /* unlinks its rings, wakes peers */
	KEEPS(shmrpc_send(b, "a", buf, 10, 0), -EPIPE);
	KEEPS_VOID(shmrpc_close(b)); /* the last one: unlinks the registry */
	KEEPS_VOID(shmrpc_close(NULL));
	assert_int_equal(th_shm_count(d->name), 0);
}

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
	st = stats_of(b);
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
	st = stats_of(b);
	assert_int_equal(st.msgs_recv, 3);
	assert_int_equal(st.bytes_recv, 150);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ================================================== 4. zero-copy sending */

static void test_reserve_commit_shorter_length(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = open_ring(d, "b", 4096);
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
	st = stats_of(a);
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
	struct shmrpc_node *a = th_open(d, "a"), *b = open_ring(d, "b", 4096);
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
	assert_int_equal(stats_of(a).msgs_sent, 0);
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
	assert_int_equal(stats_of(a).msgs_sent, 201);
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
	assert_true(th_now_ms() - t0 < PROMPT_MS);
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
	assert_int_equal(stats_of(a).msgs_sent, 0);
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
	struct shmrpc_node *a = th_open(d, "a"), *b = open_ring(d, "b", 4096);
	struct shmrpc_txbuf tx, stale, tx2;
	static uint8_t buf[4096];
	int k, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_reserve(a, "b", 2000, &tx, 0), 0);
	stale = tx;
	memset(tx.data, 's', 1);
	assert_int_equal(shmrpc_commit(a, &tx, 1), 0);
	k = fill_ring(a, "b", 1000);
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
	assert_int_equal(stats_of(b).msgs_recv, 0);
	assert_int_equal(shmrpc_release(b, &rx2), 0);
	assert_int_equal(stats_of(b).msgs_recv, 1);
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
	st = stats_of(b);
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
	assert_int_equal(stats_of(r).msgs_recv, DISP_SENDERS * DISP_N);
	for (k = 0; k < DISP_SENDERS; k++)
		shmrpc_close(s[k]);
	shmrpc_close(r);
}

static void noop_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			 void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	(void)arg;
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
	x->rc_dispatch = shmrpc_dispatch(n, noop_handler, NULL, 0);
	x->rc_start = shmrpc_start(n, noop_handler, NULL);
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

/* ====================================================== 7. start / stop */

struct bg {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls, errors, stop_rc, recv_rc;
	uint32_t next;
	uint64_t sleeps_at; /* the node's sleep count in the last call */
	pthread_t self;
	bool try_stop;
};

static void bg_init(struct bg *g)
{
	pthread_condattr_t ca;

	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	g->stop_rc = 1;
	g->recv_rc = 1;
}

static void bg_fini(struct bg *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

static void bg_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		       void *arg)
{
	struct bg *g = arg;
	struct shmrpc_stats st;
	char buf[8];
	uint32_t v;
	int stop_rc = 1, recv_rc;

	if (g->try_stop)
		stop_rc = shmrpc_stop(n); /* would wait for itself */
	recv_rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 0);
	if (shmrpc_stats(n, &st))
		st.sleeps = UINT64_MAX;
	pthread_mutex_lock(&g->lock);
	g->sleeps_at = st.sleeps;
	g->self = pthread_self();
	g->stop_rc = stop_rc;
	g->recv_rc = recv_rc;
	if (len != sizeof(v) || strcmp(from, "s")) {
		g->errors++;
	} else {
		memcpy(&v, data, sizeof(v));
		if (v != g->next++)
			g->errors++;
	}
	g->calls++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Sleep until the handler ran @calls times; false after timeout_ms. */
static bool bg_wait(struct bg *g, int calls, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (g->calls < calls)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &ts))
			break;
	ok = g->calls >= calls;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

static void send_seq(struct shmrpc_node *s, const char *to, uint32_t from, uint32_t count)
{
	uint32_t v;

	for (v = from; v < from + count; v++)
		assert_int_equal(shmrpc_send(s, to, &v, sizeof(v), 5000), 0);
}

static void test_thread_runs_handler_and_owns_receiving(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct shmrpc_rxbuf rx;
	struct bg g;
	char buf[16];

	assert_non_null(r);
	assert_non_null(s);
	bg_init(&g);
	memset(&rx, 0, sizeof(rx));
	assert_int_equal(shmrpc_stop(r), -EALREADY);
	assert_int_equal(shmrpc_start(r, bg_handler, &g), 0);
	assert_int_equal(shmrpc_start(r, bg_handler, &g), -EALREADY);
	assert_int_equal(shmrpc_start(r, noop_handler, NULL), -EALREADY);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EBUSY);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, -1), -EBUSY); /* no wait */
	assert_int_equal(shmrpc_peek(r, &rx, 0), -EBUSY);
	assert_int_equal(shmrpc_release(r, &rx), -EBUSY);
	assert_int_equal(shmrpc_dispatch(r, noop_handler, NULL, 0), -EBUSY);
	send_seq(s, "r", 0, 500);
	assert_true(bg_wait(&g, 500, 10000));
	pthread_mutex_lock(&g.lock);
	assert_int_equal(g.calls, 500);
	assert_int_equal(g.errors, 0);
	assert_int_equal(g.recv_rc, -EBUSY); /* from inside the handler, too */
	assert_false(pthread_equal(g.self, pthread_self()));
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(shmrpc_stop(r), 0);
	assert_int_equal(shmrpc_stop(r), -EALREADY);
	/* ours again: nothing left over, then a message comes to recv */
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	send_seq(s, "r", 500, 1);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 1000), 4);
	assert_int_equal(g.calls, 500);
	assert_int_equal(stats_of(r).msgs_recv, 501);
	shmrpc_close(s);
	shmrpc_close(r);
	bg_fini(&g);
}

static void test_thread_stop_prompt_when_idle_and_restart(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct bg g, g2;
	int threads;
	double t0, dt;
	uint64_t sleeps;

	assert_non_null(r);
	assert_non_null(s);
	bg_init(&g);
	bg_init(&g2);
	threads = count_threads();
	assert_int_equal(shmrpc_start(r, bg_handler, &g), 0);
	assert_int_equal(count_threads(), threads + 1);
	send_seq(s, "r", 0, 1);
	assert_true(bg_wait(&g, 1, 5000));
	/* the thread has nothing to do: it goes to sleep in the kernel */
	pthread_mutex_lock(&g.lock);
	sleeps = g.sleeps_at;
	pthread_mutex_unlock(&g.lock);
	assert_true(wait_sleeps_above(r, sleeps, 5000));
	sleep_ms(20);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_stop(r), 0);
	dt = th_now_ms() - t0;
	print_message("stop of an idle receiving thread took %.2f ms\n", dt);
	assert_true(dt < PROMPT_MS);
	assert_true(wait_threads(threads, 2000)); /* it ended */

	/* again, with another handler that tries to stop itself */
	g2.try_stop = true;
	assert_int_equal(shmrpc_start(r, bg_handler, &g2), 0);
	send_seq(s, "r", 0, 3);
	assert_true(bg_wait(&g2, 3, 5000));
	pthread_mutex_lock(&g2.lock);
	assert_int_equal(g2.errors, 0);
	assert_int_equal(g2.stop_rc, -EDEADLK);
	pthread_mutex_unlock(&g2.lock);
	assert_int_equal(g.calls, 1); /* the old handler is out of the picture */
	assert_int_equal(shmrpc_stop(r), 0);
	assert_true(wait_threads(threads, 2000));
	shmrpc_close(s);
	shmrpc_close(r);
	bg_fini(&g);
	bg_fini(&g2);
}

struct blocked_recv {
	struct shmrpc_node *n;
	int rc;
};

static void *blocked_recv_thread(void *arg)
{
	struct blocked_recv *b = arg;
	char buf[16];

	b->rc = shmrpc_recv(b->n, buf, sizeof(buf), NULL, 10000);
	return NULL;
}

static void test_thread_start_while_recv_blocks_is_ebusy(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct blocked_recv b = { r, 1 };
	pthread_t t;
	uint64_t sleeps;

	assert_non_null(r);
	assert_non_null(s);
	sleeps = stats_of(r).sleeps;
	assert_int_equal(pthread_create(&t, NULL, blocked_recv_thread, &b), 0);
	assert_true(wait_sleeps_above(r, sleeps, 5000));
	assert_int_equal(shmrpc_start(r, noop_handler, NULL), -EBUSY);
	assert_int_equal(shmrpc_stop(r), -EALREADY);
	assert_int_equal(shmrpc_send(s, "r", "wake", 4, 0), 0);
	pthread_join(t, NULL);
	assert_int_equal(b.rc, 4);
	shmrpc_close(s);
	shmrpc_close(r);
}

struct self_stop {
	struct th_gate in_handler, stopping;
	int rc;
};

static void self_stop_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			      void *arg)
{
	struct self_stop *x = arg;

	(void)from;
	(void)data;
	(void)len;
	th_gate_open(&x->in_handler);
	if (th_gate_wait(&x->stopping, 5000))
		return;
	sleep_ms(50); /* the application is inside shmrpc_stop by now */
	x->rc = shmrpc_stop(n);
}

/* Child: the application stops the thread while its handler calls
 * shmrpc_stop too. A deadlock shows as the child not finishing. */
static int self_stop_child(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct self_stop x = { .rc = 1 };

	CHILD_CHECK(r && s);
	th_gate_init(&x.in_handler);
	th_gate_init(&x.stopping);
	CHILD_CHECK_RC(shmrpc_start(r, self_stop_handler, &x), 0);
	CHILD_CHECK_RC(shmrpc_send(s, "r", "x", 1, 0), 0);
	CHILD_CHECK_RC(th_gate_wait(&x.in_handler, 5000), 0);
	th_gate_open(&x.stopping);
	CHILD_CHECK_RC(shmrpc_stop(r), 0);
	CHILD_CHECK_RC(x.rc, -EDEADLK);
	shmrpc_close(s);
	shmrpc_close(r);
	th_gate_close(&x.in_handler);
	th_gate_close(&x.stopping);
	return 0;
}

static void test_thread_handler_stop_while_stopping_is_edeadlk(void **state)
{
	struct th_dom *d = *state;
	pid_t pid = th_fork(self_stop_child, d);

	assert_int_equal(th_wait(pid, 10000), 0);
}

static void test_thread_close_stops_it(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = th_open(d, "r"), *s = th_open(d, "s");
	struct bg g;
	int threads;
	double t0;
	uint64_t sleeps;

	assert_non_null(r);
	assert_non_null(s);
	bg_init(&g);
	threads = count_threads();
	assert_int_equal(shmrpc_start(r, bg_handler, &g), 0);
	send_seq(s, "r", 0, 10);
	assert_true(bg_wait(&g, 10, 5000));
	pthread_mutex_lock(&g.lock);
	sleeps = g.sleeps_at;
	pthread_mutex_unlock(&g.lock);
	assert_true(wait_sleeps_above(r, sleeps, 5000));
	t0 = th_now_ms();
	shmrpc_close(r);
	assert_true(th_now_ms() - t0 < PROMPT_MS);
	assert_true(wait_threads(threads, 2000));
	assert_int_equal(g.calls, 10);
	assert_int_equal(g.errors, 0);
	assert_int_equal(shmrpc_send(s, "r", "late", 4, 0), -EPIPE);
	shmrpc_close(s);
	bg_fini(&g);
}

/* ============================================================= 8. threads */

#define MT_THREADS 4
#define MT_N 20000

/* Message of sender thread @tid: {tid, seq} then a payload of a length and
 * content that both depend on (tid, seq). */
static size_t mt_make(uint8_t *buf, uint32_t tid, uint32_t seq)
{
	size_t extra = (seq * 13 + tid) % 120;

	memcpy(buf, &tid, 4);
	memcpy(buf + 4, &seq, 4);
	th_fill(buf + 8, extra, 100 + tid, seq);
	return 8 + extra;
}

struct mt_rx {
	struct th_dom *d;
	char name[16];
	uint32_t ring;
	int tids;     /* senders' tid values 0..tids-1 */
	long per_tid; /* messages each */
	struct th_gate ready;
};

/* Child: receive tids * per_tid messages, each tid's in order, intact. */
static int mt_receiver(void *arg)
{
	struct mt_rx *x = arg;
	struct shmrpc_opts o = x->d->opts;
	char from[SHMRPC_NAME_MAX + 1];
	uint32_t next[MT_THREADS] = { 0 }, tid, seq;
	struct shmrpc_node *n;
	uint8_t buf[256], want[256];
	long i;
	int rc;

	o.ring_bytes = x->ring;
	CHILD_CHECK_RC(shmrpc_open(x->name, &o, &n), 0);
	th_gate_open(&x->ready);
	for (i = 0; i < x->tids * x->per_tid; i++) {
		rc = shmrpc_recv(n, buf, sizeof(buf), from, 20000);
		CHILD_CHECK(rc >= 8);
		memcpy(&tid, buf, 4);
		memcpy(&seq, buf + 4, 4);
		CHILD_CHECK((int)tid < x->tids);
		CHILD_CHECK_RC(seq, next[tid]);
		CHILD_CHECK_RC(rc, mt_make(want, tid, seq));
		CHILD_CHECK(!memcmp(buf, want, (size_t)rc));
		CHILD_CHECK(!strcmp(from, "tx"));
		next[tid]++;
	}
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 100), -ETIMEDOUT);
	shmrpc_close(n);
	return 0;
}

struct mt_tx {
	struct shmrpc_node *n;
	const char *to; /* NULL: broadcast */
	uint32_t tid;
	long count;
	int expect; /* broadcast: receivers */
	long failures;
	int first_rc;
};

static void *mt_sender(void *arg)
{
	struct mt_tx *t = arg;
	uint8_t buf[256];
	long i;
	int rc;

	for (i = 0; i < t->count; i++) {
		size_t len = mt_make(buf, t->tid, (uint32_t)i);

		if (t->to)
			rc = shmrpc_send(t->n, t->to, buf, len, 20000);
		else
			rc = shmrpc_broadcast(t->n, buf, len, 20000) == t->expect ? 0 : -1;
		if (rc && !t->failures++)
			t->first_rc = rc;
	}
	return NULL;
}

static void mt_start_receivers(struct th_dom *d, struct mt_rx *rx, pid_t *pid, int nrx, int tids,
			       long per_tid, uint32_t ring, const char *prefix)
{
	int i;

	for (i = 0; i < nrx; i++) {
		rx[i].d = d;
		snprintf(rx[i].name, sizeof(rx[i].name), "%s%d", prefix, i);
		rx[i].ring = ring;
		rx[i].tids = tids;
		rx[i].per_tid = per_tid;
		th_gate_init(&rx[i].ready);
		pid[i] = th_fork(mt_receiver, &rx[i]);
	}
	for (i = 0; i < nrx; i++)
		assert_int_equal(th_gate_wait(&rx[i].ready, 10000), 0);
}

static void mt_run(struct mt_tx *t, int nthreads)
{
	pthread_t th[MT_THREADS];
	int i;

	for (i = 0; i < nthreads; i++)
		assert_int_equal(pthread_create(&th[i], NULL, mt_sender, &t[i]), 0);
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < nthreads; i++) {
		if (t[i].failures)
			fprintf(stderr, "thread %d: %ld failures, first rc %d\n", i, t[i].failures,
				t[i].first_rc);
		assert_int_equal(t[i].failures, 0);
	}
}

static void test_threads_four_senders_one_receiver(void **state)
{
	struct th_dom *d = *state;
	struct mt_rx rx[1];
	struct mt_tx t[MT_THREADS];
	struct shmrpc_node *tx;
	struct shmrpc_stats st;
	pid_t pid[1];
	int i;

	mt_start_receivers(d, rx, pid, 1, MT_THREADS, MT_N, 16384, "rx");
	tx = th_open(d, "tx");
	assert_non_null(tx);
	for (i = 0; i < MT_THREADS; i++)
		t[i] = (struct mt_tx){ tx, "rx0", (uint32_t)i, MT_N, 0, 0, 0 };
	mt_run(t, MT_THREADS);
	assert_int_equal(th_wait(pid[0], 30000), 0);
	st = stats_of(tx);
	assert_int_equal(st.msgs_sent, MT_THREADS * MT_N);
	assert_int_equal(st.connects, 1); /* one connection, shared */
	assert_true(st.send_full > 0);	  /* the small ring pushed back */
	th_gate_close(&rx[0].ready);
	shmrpc_close(tx);
}

static void test_threads_four_senders_four_receivers(void **state)
{
	struct th_dom *d = *state;
	struct mt_rx rx[MT_THREADS];
	struct mt_tx t[MT_THREADS];
	struct shmrpc_node *tx;
	struct shmrpc_stats st;
	pid_t pid[MT_THREADS];
	int i;

	mt_start_receivers(d, rx, pid, MT_THREADS, 1, MT_N, 16384, "rx");
	tx = th_open(d, "tx");
	assert_non_null(tx);
	for (i = 0; i < MT_THREADS; i++)
		t[i] = (struct mt_tx){ tx, rx[i].name, 0, MT_N, 0, 0, 0 };
	mt_run(t, MT_THREADS);
	for (i = 0; i < MT_THREADS; i++) {
		assert_int_equal(th_wait(pid[i], 30000), 0);
		th_gate_close(&rx[i].ready);
	}
	st = stats_of(tx);
	assert_int_equal(st.msgs_sent, MT_THREADS * MT_N);
	assert_int_equal(st.connects, MT_THREADS);
	shmrpc_close(tx);
}

#define BC_THREADS 2
#define BC_RX 3
#define BC_N 5000

static void test_threads_broadcast_from_two_threads(void **state)
{
	struct th_dom *d = *state;
	struct mt_rx rx[BC_RX];
	struct mt_tx t[BC_THREADS];
	struct shmrpc_node *tx;
	pid_t pid[BC_RX];
	int i;

	mt_start_receivers(d, rx, pid, BC_RX, BC_THREADS, BC_N, 16384, "b");
	tx = th_open(d, "tx");
	assert_non_null(tx);
	for (i = 0; i < BC_THREADS; i++)
		t[i] = (struct mt_tx){ tx, NULL, (uint32_t)i, BC_N, BC_RX, 0, 0 };
	mt_run(t, BC_THREADS);
	for (i = 0; i < BC_RX; i++) {
		assert_int_equal(th_wait(pid[i], 30000), 0);
		th_gate_close(&rx[i].ready);
	}
	assert_int_equal(stats_of(tx).msgs_sent, BC_THREADS * BC_N * BC_RX);
	shmrpc_close(tx);
}

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
	struct shmrpc_node *s = th_open(d, "s"), *r = open_ring(d, "r", 4096), *r2;
	struct timed_send t = { s, 1, 0 };
	struct shmrpc_txbuf tx;
	char buf[128], from[SHMRPC_NAME_MAX + 1];
	pthread_t th;
	uint64_t sleeps;
	double t_close;

	assert_non_null(s);
	assert_non_null(r);
	assert_true(fill_ring(s, "r", 100) > 0);
	sleeps = stats_of(s).sleeps;
	assert_int_equal(pthread_create(&th, NULL, timed_send_thread, &t), 0);
	assert_true(wait_sleeps_above(s, sleeps, 5000)); /* blocked on the full ring */
	t_close = th_now_ms();
	shmrpc_close(r);
	pthread_join(th, NULL);
	print_message("blocked send returned %.2f ms after the receiver closed\n",
		      t.end_ms - t_close);
	assert_int_equal(t.rc, -EPIPE);
	assert_true(t.end_ms - t_close < PROMPT_MS);
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
	assert_int_equal(stats_of(s).rings_out, 1);
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
	assert_int_equal(stats_of(r).rings_in, 1);
	shmrpc_close(s);
	for (i = 1; i < LEAVE_N; i++) {
		assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 1000), i + 1);
		assert_int_equal(th_check(buf, (size_t)(i + 1), 20, (uint64_t)i), 0);
	}
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	st = stats_of(r);
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
	st = stats_of(r);
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
	assert_int_equal(stats_of(a).rings_out, 1);
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

/* =============================================================== 10. stats */

static void test_stats_counters_match_what_was_done(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = open_ring(d, "a", 4096), *b = th_open(d, "b"), *c = th_open(d, "c");
	struct shmrpc_stats sa, sb, z;
	uint8_t buf[256];
	int k, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	memset(&z, 0, sizeof(z));
	sa = stats_of(a);
	assert_memory_equal(&sa, &z, sizeof(z)); /* all zero at join */

	memset(buf, 1, sizeof(buf));
	assert_int_equal(shmrpc_send(a, "b", buf, 10, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 20, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 30, 0), 0);
	sa = stats_of(a);
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
	sb = stats_of(b);
	assert_int_equal(sb.msgs_recv, 3);
	assert_int_equal(sb.bytes_recv, 60);
	assert_int_equal(sb.rings_in, 1);
	assert_int_equal(sb.rings_out, 0);
	assert_int_equal(sb.msgs_sent, 0);
	assert_int_equal(sb.connects, 0);

	assert_int_equal(shmrpc_send(a, "c", buf, 1, 0), 0);
	sa = stats_of(a);
	assert_int_equal(sa.connects, 2);
	assert_int_equal(sa.rings_out, 2);

	/* b fills a's small ring: refused sends are counted, one each */
	k = fill_ring(b, "a", 100);
	sb = stats_of(b);
	assert_int_equal(sb.msgs_sent, (uint64_t)k);
	assert_int_equal(sb.bytes_sent, 100 * (uint64_t)k);
	assert_int_equal(sb.send_full, 1);
	assert_int_equal(shmrpc_send(b, "a", buf, 100, 0), -EAGAIN);
	assert_int_equal(shmrpc_send(b, "a", buf, 100, 10), -ETIMEDOUT);
	sb = stats_of(b);
	assert_int_equal(sb.send_full, 3);
	assert_true(sb.sleeps >= 1); /* the timed one slept */
	assert_int_equal(sb.msgs_sent, (uint64_t)k);
	for (i = 0; i < k; i++)
		assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), 100);
	sa = stats_of(a);
	assert_int_equal(sa.msgs_recv, (uint64_t)k);
	assert_int_equal(sa.bytes_recv, 100 * (uint64_t)k);
	assert_int_equal(sa.rings_in, 1);

	/* an idle receive sleeps */
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 1);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 30), -ETIMEDOUT);
	assert_true(stats_of(c).sleeps >= 1);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
}

static void test_stats_wake_sent_only_to_sleeper(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	struct blocked_recv r = { b, 1 };
	struct shmrpc_stats before, after;
	pthread_t t;
	uint64_t sleeps;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_warmup(a), 1);
	sleeps = stats_of(b).sleeps;
	assert_int_equal(pthread_create(&t, NULL, blocked_recv_thread, &r), 0);
	assert_true(wait_sleeps_above(b, sleeps, 5000));
	before = stats_of(a);
	assert_int_equal(shmrpc_send(a, "b", "wake", 4, 0), 0);
	after = stats_of(a);
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
	st = stats_of(a);
	print_message("stream of %d: %lu wakes, %lu skipped\n", STREAM_N,
		      (unsigned long)st.wakes_sent, (unsigned long)st.wakes_skipped);
	assert_true(st.wakes_skipped > 0);
	/* each publish either woke the receiver or found it awake */
	assert_int_equal(st.wakes_sent + st.wakes_skipped, STREAM_N);
	assert_int_equal(stats_of(b).msgs_recv, STREAM_N);
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
	struct shmrpc_node *a = open_ring(d, "a", 4096), *b = th_open(d, "b"), *c = th_open(d, "c");
	struct shmrpc_stats s0, s1;
	uint8_t buf[128];
	int i, k, bytes = 0;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	memset(buf, 2, sizeof(buf));
	for (i = 0; i < 5; i++)
		assert_int_equal(shmrpc_send(a, "b", buf, 7, 0), 0);
	k = fill_ring(b, "a", 100);
	assert_int_equal(shmrpc_send(c, "a", buf, 9, 0), 0); /* its own ring */
	for (i = 0; i < 3; i++)
		bytes += shmrpc_recv(a, buf, sizeof(buf), NULL, 0);
	s0 = stats_of(a);
	assert_int_equal(s0.msgs_sent, 5);
	assert_int_equal(s0.msgs_recv, 3);
	assert_int_equal(s0.rings_in, 2);

	/* a receiver leaves with our messages unread */
	shmrpc_close(b);
	s1 = stats_of(a);
	assert_not_below(&s1, &s0);
	assert_int_equal(s1.msgs_sent, 5);
	assert_int_equal(s1.bytes_sent, 35);
	assert_int_equal(shmrpc_send(a, "b", buf, 7, 0), -EPIPE);
	s1 = stats_of(a);
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
	s1 = stats_of(a);
	assert_not_below(&s1, &s0);
	assert_int_equal(s1.msgs_recv, (uint64_t)k + 1);
	assert_int_equal(s1.bytes_recv, 100 * (uint64_t)k + 9);
	assert_int_equal(s1.rings_in, 0);
	assert_int_equal(s1.msgs_sent, 5);
	shmrpc_close(a);
}

/* ============================================================== 11. warmup */

static void test_warmup_connects_ahead(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *p[3];
	const char *names[3] = { "p0", "p1", "p2" };
	struct shmrpc_stats st;
	char buf[8];
	int i;

	assert_non_null(a);
	assert_int_equal(shmrpc_warmup(a), 0); /* alone */
	for (i = 0; i < 3; i++) {
		p[i] = th_open(d, names[i]);
		assert_non_null(p[i]);
	}
	assert_int_equal(shmrpc_warmup(a), 3);
	st = stats_of(a);
	assert_int_equal(st.connects, 3);
	assert_int_equal(st.rings_out, 3);
	assert_int_equal(shmrpc_warmup(a), 3); /* nothing new */
	assert_int_equal(stats_of(a).connects, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(shmrpc_send(a, names[i], "w", 1, 0), 0);
	st = stats_of(a);
	assert_int_equal(st.connects, 3);
	assert_int_equal(st.msgs_sent, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(shmrpc_recv(p[i], buf, sizeof(buf), NULL, 0), 1);
	/* a receiver's rings exist before the first message too */
	assert_int_equal(shmrpc_warmup(p[0]), 3);
	shmrpc_close(p[2]);
	assert_int_equal(shmrpc_warmup(a), 2);
	for (i = 0; i < 2; i++)
		shmrpc_close(p[i]);
	shmrpc_close(a);
}

/* ===================================================== 12. sizes and names */

static void test_info_max_size_backend_names(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = open_ring(d, "b", 4096),
			   *c = open_ring(d, "c", 1u << 20), *e = NULL;
	char names[2][SHMRPC_NAME_MAX + 1];
	const char *env = getenv("SHMRPC_BACKEND"), *be;
	static uint8_t buf[1 << 19];

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(shmrpc_max_size(a, NULL), 131064);
	assert_int_equal(shmrpc_max_size(a, "a"), 131064);
	assert_int_equal(shmrpc_max_size(a, "b"), 2040);
	assert_int_equal(shmrpc_max_size(a, "c"), 524280);
	assert_int_equal(shmrpc_max_size(b, NULL), 2040);
	assert_int_equal(shmrpc_max_size(b, "a"), 131064);
	assert_int_equal(shmrpc_max_size(c, NULL), 524280);
	/* the limits are exact */
	assert_int_equal(shmrpc_send(a, "b", buf, 2040, 0), 0);
	assert_int_equal(shmrpc_send(a, "b", buf, 2041, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_send(a, "c", buf, 524280, 0), 0);
	assert_int_equal(shmrpc_send(a, "c", buf, 524281, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_send(b, "a", buf, 131064, 0), 0);
	assert_int_equal(shmrpc_send(b, "a", buf, 131065, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_recv(c, buf, sizeof(buf), NULL, 0), 524280);

	be = shmrpc_backend(a);
	assert_non_null(be);
	assert_true(!strcmp(be, "futex") || !strcmp(be, "uring"));
	if (env && env[0])
		assert_string_equal(be, env);
	assert_int_equal(shmrpc_backend_available(be), 1);
	assert_non_null(shmrpc_backend_default());

	assert_string_equal(shmrpc_name(a), "a");
	assert_string_equal(shmrpc_name(c), "c");
	assert_string_equal(shmrpc_domain(a), d->name);
	/* no options: the domain comes from $SHMRPC_DOMAIN */
	setenv("SHMRPC_DOMAIN", d->name, 1);
	assert_int_equal(shmrpc_open("e", NULL, &e), 0);
	unsetenv("SHMRPC_DOMAIN");
	assert_string_equal(shmrpc_domain(e), d->name);
	assert_int_equal(shmrpc_is_local(a, "e"), 1);
	assert_int_equal(shmrpc_nodes(a, names, 2), 4);
	assert_int_equal(shmrpc_is_local(a, names[0]), 1);
	assert_int_equal(shmrpc_is_local(a, names[1]), 1);
	assert_string_not_equal(names[0], names[1]);
	shmrpc_close(e);
	shmrpc_close(a);
	shmrpc_close(b);
	shmrpc_close(c);
}

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
	assert_int_equal(stats_of(a).msgs_sent, 8);
	shmrpc_close(p[0]);
	shmrpc_close(p[2]);
	shmrpc_close(a);
}

static void test_broadcast_emsgsize_when_it_fits_no_ring(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = open_ring(d, "b", 4096),
			   *c = open_ring(d, "c", 4096), *big;
	static uint8_t buf[4096];

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(shmrpc_broadcast(a, buf, 3000, 100), -EMSGSIZE);
	assert_int_equal(shmrpc_broadcast(a, buf, 2040, 100), 2);
	big = open_ring(d, "big", 16384);
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
	assert_true(fill_ring(a, "big", 3000) > 0);
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
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b"), *c = open_ring(d, "c", 4096),
			   *e = th_open(d, "e");
	char buf[128];
	int filled, empties, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(e);
	filled = fill_ring_full(a, "c", 100, &empties);
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
		T(test_args_open_rejects_bad_names_and_options),
		T(test_args_calls_reject_null_and_bad_values),
		T(test_args_send_to_self_is_einval),
		T(test_args_unknown_target_is_enoent),
		T(test_args_timeouts_eagain_and_etimedout),
		T(test_errno_never_modified),
		T(test_recv_emsgsize_keeps_message_queued),
		T(test_reserve_commit_shorter_length),
		T(test_reserve_cancel_sends_nothing),
		T(test_reserve_then_send_same_target_is_edeadlk),
		T(test_reserve_commit_cancel_other_thread_einval),
		T(test_reserve_commit_over_cap_keeps_reservation),
		T(test_reserve_commit_stale_copy_einval),
		T(test_reserve_serialises_senders_to_same_target),
		T(test_peek_release_rules),
		T(test_peek_same_message_among_senders),
		T(test_dispatch_handles_all_waiting_in_order),
		T(test_dispatch_handler_cannot_receive),
		T(test_dispatch_handler_may_send),
		T(test_thread_runs_handler_and_owns_receiving),
		T(test_thread_stop_prompt_when_idle_and_restart),
		T(test_thread_start_while_recv_blocks_is_ebusy),
		T(test_thread_handler_stop_while_stopping_is_edeadlk),
		T(test_thread_close_stops_it),
		T(test_threads_four_senders_one_receiver),
		T(test_threads_four_senders_four_receivers),
		T(test_threads_broadcast_from_two_threads),
		T(test_leave_receiver_close_wakes_blocked_sender),
		T(test_leave_sender_close_receiver_drains),
		T(test_leave_sender_exit_before_receiver_looked),
		T(test_leave_rejoined_name_next_send_connects),
		T(test_leave_name_gone_epipe_until_rejoin),
		T(test_stats_counters_match_what_was_done),
		T(test_stats_wake_sent_only_to_sleeper),
		T(test_stats_stream_to_busy_receiver_skips_wakes),
		T(test_stats_survive_peers_leaving),
		T(test_warmup_connects_ahead),
		T(test_info_max_size_backend_names),
		T(test_broadcast_counts_receivers),
		T(test_broadcast_emsgsize_when_it_fits_no_ring),
		T(test_broadcast_partial_when_one_ring_is_full),
	};

	/* No safety net: every wait must end by a wake (lib/wake.c). */
	setenv("SHMRPC_SAFETY_MS", "3600000", 0);
	/* $TEST_FILTER: run only the tests matching this pattern ('*', '?') */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
