// SPDX-License-Identifier: MIT
/*
 * The life of a node (lib/node.c) and the public API's contract at its
 * edges, as a demanding user relies on it: every call's argument checks,
 * errno left alone by every call, the names and options of shmrpc_open,
 * the last node out leaving nothing behind (fork: test_fork.c). Every
 * expectation comes from include/shmrpc.h; where a test pins something the
 * header leaves open, a comment says so.
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
#include "layout.h"

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
	assert_int_equal(shmrpc_dispatch(NULL, th_never_handler, NULL, 0), -EINVAL);
	assert_int_equal(shmrpc_start(NULL, th_never_handler, NULL), -EINVAL);
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
	assert_int_equal(shmrpc_dispatch(a, th_never_handler, NULL, INT_MIN), -EINVAL);
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
	st = th_stats(a);
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
	st = th_stats(a);
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
	assert_int_equal(th_stats(a).connects, 0);
	shmrpc_close(a);
}

static void test_args_timeouts_eagain_and_etimedout(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096);
	struct shmrpc_txbuf tx;
	struct shmrpc_rxbuf rx;
	char buf[128];
	double t0, dt;

	assert_non_null(a);
	assert_non_null(b);
	/* receiving on an empty node */
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_peek(b, &rx, 0), -EAGAIN);
	assert_int_equal(shmrpc_dispatch(b, th_never_handler, NULL, 0), -EAGAIN);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 50), -ETIMEDOUT);
	dt = th_now_ms() - t0;
	print_message("recv timeout 50 ms took %.1f ms\n", dt);
	assert_true(dt >= 49.9);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_peek(b, &rx, 20), -ETIMEDOUT);
	assert_int_equal(shmrpc_dispatch(b, th_never_handler, NULL, 20), -ETIMEDOUT);
	assert_true(th_now_ms() - t0 >= 39.9);

	/* sending to a full ring */
	assert_true(th_fill_ring(a, "b", 100) > 0);
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
		errno = TH_SENTINEL;                                   \
		long rc_ = (long)(expr);                               \
		int e_ = errno;                                        \
		assert_int_equal(rc_, (long)(want));                   \
		if (e_ != TH_SENTINEL)                                 \
			fail_msg("%s changed errno to %d", #expr, e_); \
	} while (0)

#define KEEPS_VOID(stmt)                                               \
	do {                                                           \
		errno = TH_SENTINEL;                                   \
		stmt;                                                  \
		int e_ = errno;                                        \
		if (e_ != TH_SENTINEL)                                 \
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

/* ============================================================== names */

static void test_names_bad_node_name_rejected(void **state)
{
	struct th_dom *d = *state;
	static const char *const bad[] = {
		"",   ".",   "..",  ".hidden", "a/b", "/a",	     "a b",
		" a", "a\n", "a\t", "a*",      "a:b", "caf\xc3\xa9", "a\\b",
	};
	char longest[SHMRPC_NAME_MAX + 2], much[200];
	struct shmrpc_node *n;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = NULL;
		assert_int_equal(shmrpc_open(bad[i], &d->opts, &n), -EINVAL);
		assert_null(n);
		assert_int_equal(th_shm_walk(d->name, NULL, NULL), 0); /* not even a registry */
	}
	assert_int_equal(shmrpc_open(NULL, &d->opts, &n), -EINVAL);
	memset(longest, 'a', SHMRPC_NAME_MAX + 1);
	longest[SHMRPC_NAME_MAX + 1] = '\0'; /* 64 characters */
	assert_int_equal(shmrpc_open(longest, &d->opts, &n), -ENAMETOOLONG);
	memset(much, 'b', sizeof(much) - 1);
	much[sizeof(much) - 1] = '\0';
	assert_int_equal(shmrpc_open(much, &d->opts, &n), -ENAMETOOLONG);
	assert_int_equal(th_shm_walk(d->name, NULL, NULL), 0);

	/* 63 characters, every allowed kind */
	memset(longest, 'z', SHMRPC_NAME_MAX);
	memcpy(longest, "Az09._-", 7);
	longest[SHMRPC_NAME_MAX] = '\0';
	assert_int_equal(shmrpc_open(longest, &d->opts, &n), 0);
	assert_string_equal(shmrpc_name(n), longest);
	assert_int_equal(shmrpc_is_local(n, longest), 1);
	assert_int_equal(th_dom_files(d->name, ".node."), 1);
	assert_int_equal(shmrpc_open("x", &d->opts, NULL), -EINVAL);
	/* the lookups check names the same way */
	assert_int_equal(shmrpc_is_local(n, "a/b"), -EINVAL);
	assert_int_equal(shmrpc_is_local(n, much), -ENAMETOOLONG);
	assert_int_equal(shmrpc_wait_node(n, ".x", 0), -EINVAL);
	assert_int_equal(shmrpc_send(n, "a b", "x", 1, 0), -EINVAL);
	assert_int_equal(shmrpc_send(n, longest, "x", 1, 0), -EINVAL); /* itself */
	shmrpc_close(n);
	assert_int_equal(th_shm_count(d->name), 0);
}

/* Bad domain names built on the test's domain, so any file they produced
 * would contain its name. */
static void bad_domains(const struct th_dom *d, char bad[][128], int *err, int *nbad)
{
	static const char *const fmt[] = { ".%s", "%s/x", "%s x", "%s*", "%s\n" };
	size_t len = strlen(d->name);
	int k;

	for (k = 0; k < 5; k++) {
		snprintf(bad[k], 128, fmt[k], d->name);
		err[k] = -EINVAL;
	}
	memcpy(bad[k], d->name, len); /* 64 characters */
	memset(bad[k] + len, 'x', SHMRPC_NAME_MAX + 1 - len);
	bad[k][SHMRPC_NAME_MAX + 1] = '\0';
	err[k++] = -ENAMETOOLONG;
	*nbad = k;
}

static void test_names_bad_domain_via_opts_rejected(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	char bad[8][128], ok[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n = NULL;
	int err[8], nbad, i, rc;

	bad_domains(d, bad, err, &nbad);
	for (i = 0; i < nbad; i++) {
		o.domain = bad[i];
		assert_int_equal(shmrpc_open("a", &o, &n), err[i]);
		assert_int_equal(th_shm_walk(d->name, NULL, NULL), 0);
	}
	/* An empty domain is a bad name too: it must not silently mean the
	 * production domain "default". */
	o.domain = "";
	rc = shmrpc_open("a", &o, &n);
	if (rc == 0)
		shmrpc_close(n); /* joined "default": undo it before failing */
	assert_int_equal(rc, -EINVAL);

	/* 63 characters is a good domain */
	memset(ok, 'd', SHMRPC_NAME_MAX);
	memcpy(ok, d->name, strlen(d->name));
	ok[SHMRPC_NAME_MAX] = '\0';
	o.domain = ok;
	assert_int_equal(shmrpc_open("a", &o, &n), 0);
	assert_string_equal(shmrpc_domain(n), ok);
	assert_int_equal(th_dom_files(ok, ".reg"), 1);
	shmrpc_close(n);
	assert_int_equal(th_shm_walk(d->name, NULL, NULL), 0);
}

static void test_names_bad_domain_via_env_rejected(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct th_env e;
	char bad[8][128];
	struct shmrpc_node *n = NULL;
	int err[8], nbad, i;

	th_env_save(&e, "SHMRPC_DOMAIN");
	bad_domains(d, bad, err, &nbad);
	o.domain = NULL;
	for (i = 0; i < nbad; i++) {
		setenv("SHMRPC_DOMAIN", bad[i], 1);
		assert_int_equal(shmrpc_open("a", NULL, &n), err[i]);
		assert_int_equal(shmrpc_open("a", &o, &n), err[i]);
		assert_int_equal(th_shm_walk(d->name, NULL, NULL), 0);
	}
	/* the options win over the environment */
	setenv("SHMRPC_DOMAIN", bad[0], 1);
	assert_int_equal(shmrpc_open("a", &d->opts, &n), 0);
	assert_string_equal(shmrpc_domain(n), d->name);
	shmrpc_close(n);
	th_env_restore(&e);
}

/* ============================================================ options */

static void test_opts_null_takes_domain_from_env(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	struct th_env e;

	th_env_save(&e, "SHMRPC_DOMAIN");
	setenv("SHMRPC_DOMAIN", d->name, 1);
	assert_int_equal(shmrpc_open("a", NULL, &a), 0);
	assert_string_equal(shmrpc_domain(a), d->name);
	assert_int_equal(th_shm_count(d->name), 2); /* registry + node */
	o.domain = NULL;
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	assert_string_equal(shmrpc_domain(b), d->name);
	assert_int_equal(shmrpc_is_local(a, "b"), 1);
	th_env_restore(&e);
	shmrpc_close(a);
	shmrpc_close(b);
	assert_int_equal(th_shm_count(d->name), 0);
}

static void test_opts_older_caller_gets_defaults(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o;
	struct shmrpc_node *n;
	char path[300];
	struct th_env e;

	/* fields beyond sz hold garbage the library must not read */
	memset(&o, 0, sizeof(o));
	o.domain = d->name;
	o.ring_bytes = 3;
	o.max_nodes = 1u << 20;
	o.mode = 0777;
	o.backend = "bogus";
	o.sz = offsetof(struct shmrpc_opts, ring_bytes);
	assert_int_equal(shmrpc_open("a", &o, &n), 0);
	assert_int_equal(shmrpc_max_size(n, NULL), SHMRPC__RING_DEFAULT / 2 - 8);
	th_shm_path(path, sizeof(path), d->name, "reg");
	assert_int_equal(th_file_size(path), shmrpc__reg_size(SHMRPC__CAP_DEFAULT));
	assert_int_equal(th_dom_mode_bad(d->name, 0600), 0);
	shmrpc_close(n);

	/* a caller that knows only sz: the domain comes from the environment */
	th_env_save(&e, "SHMRPC_DOMAIN");
	setenv("SHMRPC_DOMAIN", d->name, 1);
	o.domain = "not a name";
	o.sz = sizeof(o.sz);
	assert_int_equal(shmrpc_open("a", &o, &n), 0);
	assert_string_equal(shmrpc_domain(n), d->name);
	shmrpc_close(n);
	o.sz = 0; /* not even sz itself */
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	th_env_restore(&e);
	assert_int_equal(th_shm_count(d->name), 0);
}

static void test_opts_newer_caller_zero_tail_only(void **state)
{
	struct th_dom *d = *state;
	struct {
		struct shmrpc_opts o;
		uint8_t tail[24];
	} big;
	struct shmrpc_node *n;

	memset(&big, 0, sizeof(big));
	big.o = d->opts;
	big.o.sz = sizeof(big);
	assert_int_equal(shmrpc_open("a", &big.o, &n), 0);
	shmrpc_close(n);
	big.tail[23] = 1;
	assert_int_equal(shmrpc_open("a", &big.o, &n), -E2BIG);
	big.tail[23] = 0;
	big.tail[0] = 0x80;
	assert_int_equal(shmrpc_open("a", &big.o, &n), -E2BIG);
	assert_int_equal(th_shm_count(d->name), 0);
}

static void test_opts_ring_bytes_checked(void **state)
{
	struct th_dom *d = *state;
	static const uint32_t bad[] = {
		1, 2048, 4095, 4097, 6144, 3u << 20, (1u << 30) + 4096, 1u << 31, UINT32_MAX
	};
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.ring_bytes = bad[i];
		assert_int_equal(shmrpc_open("a", &o, &a), -EINVAL);
		assert_int_equal(th_shm_count(d->name), 0);
	}
	o.ring_bytes = 4096;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	o.ring_bytes = 1u << 30; /* allowed; nothing is allocated until a send */
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	assert_int_equal(shmrpc_max_size(a, NULL), 4096 / 2 - 8);
	assert_int_equal(shmrpc_max_size(b, "a"), 4096 / 2 - 8);
	assert_int_equal(shmrpc_max_size(a, "b"), (1 << 29) - 8);
	shmrpc_close(a);
	shmrpc_close(b);
}

static void test_opts_max_nodes_checked(void **state)
{
	struct th_dom *d = *state;
	static const uint32_t bad[] = { SHMRPC__CAP_MAX + 1, 1u << 31, UINT32_MAX };
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	char path[300];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.max_nodes = bad[i];
		assert_int_equal(shmrpc_open("a", &o, &a), -EINVAL);
		assert_int_equal(th_shm_count(d->name), 0);
	}
	th_shm_path(path, sizeof(path), d->name, "reg");
	o.max_nodes = SHMRPC__CAP_MAX;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	assert_int_equal(th_file_size(path), shmrpc__reg_size(SHMRPC__CAP_MAX));
	shmrpc_close(a);
	o.max_nodes = 1;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	assert_int_equal(th_file_size(path), shmrpc__reg_size(1));
	assert_int_equal(shmrpc_open("b", &o, &b), -ENOSPC);
	shmrpc_close(a);
	assert_int_equal(th_shm_count(d->name), 0);
}

static void test_opts_mode_checked_and_exact(void **state)
{
	struct th_dom *d = *state;
	static const uint32_t bad[] = { 0666, 0777, 0707,  0604,  0606,	 0400,	 0200,
					0060, 0460, 01600, 02600, 04600, 0100600 };
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	char buf[8];
	mode_t old;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.mode = bad[i];
		assert_int_equal(shmrpc_open("a", &o, &a), -EINVAL);
		assert_int_equal(th_shm_count(d->name), 0);
	}
	old = umask(077); /* must not matter */
	o.mode = 0660;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, 1000), 0);
	assert_int_equal(shmrpc_send(b, "a", "y", 1, 1000), 0);
	assert_int_equal(th_dom_files(d->name, ".ring."), 2);
	assert_int_equal(th_dom_files(d->name, ".node."), 2);
	assert_int_equal(th_dom_mode_bad(d->name, 0660), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 1);
	shmrpc_close(a);
	shmrpc_close(b);
	o.mode = 0640;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	assert_int_equal(th_dom_mode_bad(d->name, 0640), 0);
	shmrpc_close(a);
	umask(old);
}

static void test_opts_backend_checked(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n;
	struct th_env e;
	int avail;

	th_env_save(&e, "SHMRPC_BACKEND");
	unsetenv("SHMRPC_BACKEND");
	o.backend = "bogus";
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_int_equal(shmrpc_backend_available("bogus"), -EINVAL);
	assert_int_equal(th_shm_count(d->name), 0);
	o.backend = "futex";
	assert_int_equal(shmrpc_open("a", &o, &n), 0);
	assert_string_equal(shmrpc_backend(n), "futex");
	shmrpc_close(n);
	o.backend = "uring";
	avail = shmrpc_backend_available("uring");
	if (avail == 1) {
		assert_int_equal(shmrpc_open("a", &o, &n), 0);
		assert_string_equal(shmrpc_backend(n), "uring");
		shmrpc_close(n);
	} else {
		assert_int_equal(avail, 0);
		assert_int_equal(shmrpc_open("a", &o, &n), -EOPNOTSUPP);
	}
	assert_int_equal(th_shm_count(d->name), 0);
	/* $SHMRPC_BACKEND replaces NULL only */
	setenv("SHMRPC_BACKEND", "bogus", 1);
	o.backend = NULL;
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_int_equal(th_shm_count(d->name), 0);
	o.backend = "futex";
	assert_int_equal(shmrpc_open("a", &o, &n), 0);
	shmrpc_close(n);
	th_env_restore(&e);
}

/* ===================================================== last node out */

struct trio {
	struct th_dom *d;
	int id;
	struct th_gate talked, turn, closed;
};

static const char *const trio_names[3] = { "ta", "tb", "tc" };

static int trio_main(void *arg)
{
	struct trio *t = arg;
	struct shmrpc_node *n;
	char buf[16], from[SHMRPC_NAME_MAX + 1];
	int i;

	CHILD_CHECK_RC(shmrpc_open(trio_names[t->id], &t->d->opts, &n), 0);
	for (i = 0; i < 3; i++) {
		if (i == t->id)
			continue;
		CHILD_CHECK_RC(shmrpc_wait_node(n, trio_names[i], 10000), 0);
		CHILD_CHECK_RC(shmrpc_send(n, trio_names[i], trio_names[t->id], 2, 10000), 0);
	}
	for (i = 0; i < 2; i++) {
		CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, 10000), 2);
		CHILD_CHECK(!memcmp(buf, from, 2));
	}
	th_gate_open(&t->talked);
	CHILD_CHECK(th_gate_wait(&t->turn, 20000) == 0);
	shmrpc_close(n);
	th_gate_open(&t->closed);
	return 0;
}

static void test_last_out_every_close_order(void **state)
{
	struct th_dom *d = *state;
	static const int order[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
					 { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
	struct trio t[3];
	pid_t pid[3];
	int o, i;

	for (o = 0; o < 6; o++) {
		for (i = 0; i < 3; i++) {
			t[i].d = d;
			t[i].id = i;
			th_gate_init(&t[i].talked);
			th_gate_init(&t[i].turn);
			th_gate_init(&t[i].closed);
			pid[i] = th_fork(trio_main, &t[i]);
		}
		for (i = 0; i < 3; i++)
			assert_int_equal(th_gate_wait(&t[i].talked, 20000), 0);
		assert_int_equal(th_dom_files(d->name, ".node."), 3);
		for (i = 0; i < 3; i++) {
			int k = order[o][i];

			th_gate_open(&t[k].turn);
			assert_int_equal(th_gate_wait(&t[k].closed, 10000), 0);
			assert_int_equal(th_dom_files(d->name, ".node."), 2 - i);
			assert_int_equal(th_dom_files(d->name, ".reg"), i < 2);
		}
		for (i = 0; i < 3; i++) {
			assert_int_equal(th_wait(pid[i], 10000), 0);
			th_gate_close(&t[i].talked);
			th_gate_close(&t[i].turn);
			th_gate_close(&t[i].closed);
		}
		assert_int_equal(th_shm_count(d->name), 0);
	}
}

/* A node that talked with the others is SIGKILLed (reaped, or left a
 * zombie); nobody looks it up; the last graceful close sweeps it. */
static void last_out_sweeps(struct th_dom *d, bool reap, int survivors)
{
	struct shmrpc_node *a = th_open(d, "a"), *b = NULL;
	struct th_env e;
	struct th_holder k;
	char buf[8];

	assert_non_null(a);
	th_watch_off(&e); /* k is left for the leaves' sweeps */
	if (survivors > 1) {
		b = th_open(d, "b");
		assert_non_null(b);
	}
	th_holder_start(&k, d, "k", "a");
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 5000), 5);
	assert_int_equal(shmrpc_send(a, "k", "x", 1, 0), 0);
	if (b)
		assert_int_equal(shmrpc_send(b, "k", "y", 1, 0), 0);
	assert_int_equal(kill(k.pid, SIGKILL), 0);
	if (reap)
		assert_int_equal(th_wait(k.pid, 5000), 128 + SIGKILL);
	else
		assert_int_equal(th_wait_zombie(k.pid), 0);
	if (b) {
		shmrpc_close(b);
		assert_true(th_shm_count(d->name) > 0);
	}
	shmrpc_close(a);
	assert_int_equal(th_shm_count(d->name), 0);
	if (!reap)
		assert_int_equal(th_wait(k.pid, 5000), 128 + SIGKILL);
	th_holder_fini(&k);
	th_env_restore(&e);
}

static void test_last_out_sweeps_killed_node(void **state)
{
	last_out_sweeps(*state, true, 2);
	last_out_sweeps(*state, true, 1);
	last_out_sweeps(*state, false, 2);
	last_out_sweeps(*state, false, 1);
}

/*
 * Two threads of one process each join and leave the same domain in a loop:
 * the last one out retires the registry (closed, unlinked) and the other's
 * next join must open a fresh one without taking the leaver's reference to
 * the old one from under it (that was a use after free in shmrpc__reg_put,
 * or a crash reading the freed registry). In a child: a crash is an exit
 * status here, and the node of each round must work.
 */
#define CHURN_ROUNDS 400

struct churn2 {
	const struct th_dom *d;
	char name[8];
	int fails;
};

static void *churn2_thread(void *arg)
{
	struct churn2 *c = arg;
	char names[4][SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n;
	int i, k;

	for (i = 0; i < CHURN_ROUNDS; i++) {
		if (shmrpc_open(c->name, &c->d->opts, &n)) {
			c->fails++;
			continue;
		}
		k = shmrpc_nodes(n, names, 4);
		if (shmrpc_is_local(n, c->name) != 1 || k < 1 || k > 2)
			c->fails++;
		shmrpc_close(n);
	}
	return NULL;
}

static int churn2_main(void *arg)
{
	struct churn2 c[2] = { { .d = arg, .name = "t0" }, { .d = arg, .name = "t1" } };
	pthread_t t[2];
	int i;

	for (i = 0; i < 2; i++)
		CHILD_CHECK(pthread_create(&t[i], NULL, churn2_thread, &c[i]) == 0);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHILD_CHECK_RC(c[0].fails, 0);
	CHILD_CHECK_RC(c[1].fails, 0);
	return 0;
}

static void test_last_out_two_threads_churn_one_domain(void **state)
{
	struct th_dom *d = *state;

	assert_int_equal(th_wait(th_fork(churn2_main, d), 120000), 0);
	assert_int_equal(th_shm_count(d->name), 0);
}

/* ============================================================= errno */

#define ERRNO_CALL(call, want)                    \
	do {                                      \
		errno = 12345;                    \
		assert_int_equal((call), (want)); \
		assert_int_equal(errno, 12345);   \
	} while (0)

static void test_errno_never_changed(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts, big[2];
	char names[2][SHMRPC_NAME_MAX + 1], buf[16], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *a, *b, *x;
	struct shmrpc_rxbuf rx;
	struct shmrpc_txbuf tx;
	struct shmrpc_stats st;
	struct th_holder h;
	uint64_t magic = 1;
	char path[300];
	struct th_env e;

	th_watch_off(&e); /* the reclaim of k runs in this thread, by the lookup */
	ERRNO_CALL(shmrpc_open("a b", &d->opts, &a), -EINVAL);
	ERRNO_CALL(shmrpc_open("a", &d->opts, NULL), -EINVAL);
	o.ring_bytes = 5000;
	ERRNO_CALL(shmrpc_open("a", &o, &a), -EINVAL);
	memset(big, 0xff, sizeof(big));
	big[0] = d->opts;
	big[0].sz = sizeof(big);
	ERRNO_CALL(shmrpc_open("a", big, &a), -E2BIG);
	/* system calls fail inside these */
	assert_int_equal(th_plant(d->name, &magic, sizeof(magic), 4096), 0);
	ERRNO_CALL(shmrpc_open("a", &d->opts, &a), -EPROTO);
	th_shm_path(path, sizeof(path), d->name, "reg");
	unlink(path);
	o = d->opts;
	o.max_nodes = 2;
	ERRNO_CALL(shmrpc_open("a", &o, &a), 0);
	ERRNO_CALL(shmrpc_open("b", &o, &b), 0);
	ERRNO_CALL(shmrpc_open("a", &o, &x), -EEXIST);
	ERRNO_CALL(shmrpc_open("c", &o, &x), -ENOSPC);
	ERRNO_CALL(shmrpc_is_local(a, "b"), 1);
	ERRNO_CALL(shmrpc_is_local(a, "zz"), 0);
	ERRNO_CALL(shmrpc_nodes(a, names, 2), 2);
	ERRNO_CALL(shmrpc_wait_node(a, "zz", 0), -EAGAIN);
	ERRNO_CALL(shmrpc_wait_node(a, "zz", 10), -ETIMEDOUT);
	ERRNO_CALL(shmrpc_wait_node(a, "b", 10), 0);
	ERRNO_CALL(shmrpc_send(a, "zz", "x", 1, 0), -ENOENT);
	ERRNO_CALL(shmrpc_send(a, "b", "x", 1, 0), 0);
	ERRNO_CALL(shmrpc_max_size(a, "b"), SHMRPC__RING_DEFAULT / 2 - 8);
	ERRNO_CALL(shmrpc_max_size(a, "zz"), -ENOENT);
	ERRNO_CALL(shmrpc_recv(b, buf, sizeof(buf), from, 1000), 1);
	ERRNO_CALL(shmrpc_recv(b, buf, sizeof(buf), from, 0), -EAGAIN);
	ERRNO_CALL(shmrpc_recv(b, buf, sizeof(buf), from, 10), -ETIMEDOUT);
	ERRNO_CALL(shmrpc_reserve(a, "b", 4, &tx, 0), 0);
	memcpy(tx.data, "abcd", 4);
	ERRNO_CALL(shmrpc_commit(a, &tx, 4), 0);
	ERRNO_CALL(shmrpc_peek(b, &rx, 1000), 4);
	ERRNO_CALL(shmrpc_release(b, &rx), 0);
	ERRNO_CALL(shmrpc_release(b, &rx), -EINVAL);
	ERRNO_CALL(shmrpc_broadcast(a, "y", 1, 0), 1);
	ERRNO_CALL(shmrpc_dispatch(b, th_noop_handler, NULL, 1000), 1);
	ERRNO_CALL(shmrpc_warmup(b), 1);
	ERRNO_CALL(shmrpc_stats(a, &st), 0);
	ERRNO_CALL(shmrpc_start(b, th_noop_handler, NULL), 0);
	ERRNO_CALL(shmrpc_start(b, th_noop_handler, NULL), -EALREADY);
	ERRNO_CALL(shmrpc_recv(b, buf, sizeof(buf), NULL, 0), -EBUSY);
	ERRNO_CALL(shmrpc_stop(b), 0);
	ERRNO_CALL(shmrpc_stop(b), -EALREADY);
	ERRNO_CALL(shmrpc_backend_available("bogus"), -EINVAL);
	ERRNO_CALL(shmrpc_backend_available("futex"), 1);
	errno = 12345;
	assert_non_null(shmrpc_backend_default());
	assert_int_equal(errno, 12345);
	shmrpc_cancel(a, &tx); /* not a reservation any more: ignored */
	assert_int_equal(errno, 12345);
	/* a dead peer: its reclaim unlinks files and fails probes */
	shmrpc_close(b);
	assert_int_equal(errno, 12345);
	th_holder_start(&h, d, "k", "a");
	ERRNO_CALL(shmrpc_recv(a, buf, sizeof(buf), NULL, 1000), 5);
	ERRNO_CALL(shmrpc_send(a, "k", "x", 1, 0), 0);
	th_holder_kill(&h);
	ERRNO_CALL(shmrpc_is_local(a, "k"), 0);
	ERRNO_CALL(shmrpc_send(a, "k", "x", 1, 0), -EPIPE);
	ERRNO_CALL(shmrpc_send(a, "k", "x", 1, 0), -EPIPE);
	ERRNO_CALL(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN);
	errno = 12345;
	shmrpc_close(a); /* the last one: unlinks the registry */
	shmrpc_close(NULL);
	assert_int_equal(errno, 12345);
	assert_int_equal(th_shm_count(d->name), 0);
	th_env_restore(&e);
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
		T(test_names_bad_node_name_rejected),
		T(test_names_bad_domain_via_opts_rejected),
		T(test_names_bad_domain_via_env_rejected),
		T(test_opts_null_takes_domain_from_env),
		T(test_opts_older_caller_gets_defaults),
		T(test_opts_newer_caller_zero_tail_only),
		T(test_opts_ring_bytes_checked),
		T(test_opts_max_nodes_checked),
		T(test_opts_mode_checked_and_exact),
		T(test_opts_backend_checked),
		T(test_last_out_every_close_order),
		T(test_last_out_sweeps_killed_node),
		T(test_last_out_two_threads_churn_one_domain),
		T(test_errno_never_changed),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
