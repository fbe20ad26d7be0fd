// SPDX-License-Identifier: MIT
/*
 * Queries (lib/query.c): waiting for a node, the list of live nodes,
 * connecting ahead (warmup), sizes and names, local nodes and proxies
 * (opts.proxy_host, shmrpc_node_host).
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
#include "node_types.h"

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
	st = th_stats(a);
	assert_int_equal(st.connects, 3);
	assert_int_equal(st.rings_out, 3);
	assert_int_equal(shmrpc_warmup(a), 3); /* nothing new */
	assert_int_equal(th_stats(a).connects, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(shmrpc_send(a, names[i], "w", 1, 0), 0);
	st = th_stats(a);
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
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open_ring(d, "b", 4096),
			   *c = th_open_ring(d, "c", 1u << 20), *e = NULL;
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

/* ========================================================= wait_node */

struct late {
	struct th_dom *d;
	int delay_ms;
	struct th_gate done;
};

static int late_main(void *arg)
{
	struct late *l = arg;
	struct shmrpc_node *n;

	th_sleep_ms(l->delay_ms);
	CHILD_CHECK_RC(shmrpc_open("late", &l->d->opts, &n), 0);
	CHILD_CHECK(th_gate_wait(&l->done, 10000) == 0);
	shmrpc_close(n);
	return 0;
}

static void test_wait_node_returns_when_it_appears(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *w = th_open(d, "w");
	struct late l = { d, 300, { { 0 } } };
	double t0, dt;
	pid_t pid;

	assert_non_null(w);
	assert_int_equal(shmrpc_wait_node(w, "w", 0), 0); /* itself */
	th_gate_init(&l.done);
	t0 = th_now_ms();
	pid = th_fork(late_main, &l);
	assert_int_equal(shmrpc_wait_node(w, "late", 10000), 0);
	dt = th_now_ms() - t0;
	assert_true(dt >= 250);
	assert_int_equal(shmrpc_is_local(w, "late"), 1);
	th_gate_open(&l.done);
	assert_int_equal(th_wait(pid, 5000), 0);
	th_gate_close(&l.done);
	/* it left: waiting for it again times out */
	assert_int_equal(shmrpc_wait_node(w, "late", 0), -EAGAIN);
	shmrpc_close(w);
}

static void test_wait_node_timeouts(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *w = th_open(d, "w");
	double t0, dt;

	assert_non_null(w);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_wait_node(w, "nobody", 0), -EAGAIN);
	assert_true(th_now_ms() - t0 < 100);
	t0 = th_now_ms();
	assert_int_equal(shmrpc_wait_node(w, "nobody", 200), -ETIMEDOUT);
	dt = th_now_ms() - t0;
	assert_true(dt >= 199 && dt < 2000);
	assert_int_equal(shmrpc_wait_node(w, "nobody", -2), -EINVAL);
	assert_int_equal(shmrpc_wait_node(NULL, "nobody", 0), -EINVAL);
	shmrpc_close(w);
}

struct waiter {
	struct th_dom *d;
	struct th_gate ready;
};

static int waiter_main(void *arg)
{
	struct waiter *wt = arg;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open("waiter", &wt->d->opts, &n), 0);
	th_gate_open(&wt->ready);
	/* only a wake on the epoch can end this: the safety timeout is an
	 * hour (see main) */
	CHILD_CHECK_RC(shmrpc_wait_node(n, "awaited", 30000), 0);
	shmrpc_close(n);
	return 0;
}

static void test_wait_node_sleeps_on_epoch(void **state)
{
	struct th_dom *d = *state;
	struct waiter wt = { d, { { 0 } } };
	struct shmrpc_node *other, *awaited;
	double c0, used;
	int status;
	pid_t pid;

	th_gate_init(&wt.ready);
	pid = th_fork(waiter_main, &wt);
	assert_int_equal(th_gate_wait(&wt.ready, 10000), 0);
	th_sleep_ms(100);
	c0 = th_cpu_ms(pid);
	/* joins and leaves of other nodes wake it, it looks, sleeps again */
	other = th_open(d, "other");
	assert_non_null(other);
	th_sleep_ms(500);
	shmrpc_close(other);
	th_sleep_ms(500);
	used = th_cpu_ms(pid) - c0;
	print_message("shmrpc_wait_node: %.1f ms CPU in 1 s of waiting\n", used);
	assert_true(c0 >= 0 && used < 20.0);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still waiting */
	awaited = th_open(d, "awaited");
	assert_non_null(awaited);
	assert_int_equal(th_wait(pid, 2000), 0);
	th_gate_close(&wt.ready);
	shmrpc_close(awaited);
}

/* ====================================================== shmrpc_nodes */

static void test_nodes_cap_smaller_than_count(void **state)
{
	struct th_dom *d = *state;
	char names[6][SHMRPC_NAME_MAX + 1], want[5][4] = { "me", "a", "b", "h0", "h1" };
	struct shmrpc_node *me = th_open(d, "me"), *a = th_open(d, "a"), *b = th_open(d, "b");
	struct th_holder h[2];
	int i, k, seen;

	assert_non_null(me);
	assert_non_null(a);
	assert_non_null(b);
	th_holder_start(&h[0], d, "h0", NULL);
	th_holder_start(&h[1], d, "h1", NULL);
	memset(names, '#', sizeof(names));
	assert_int_equal(shmrpc_nodes(me, names, 2), 5);
	for (i = 0; i < 2; i++) {
		for (seen = 0, k = 0; k < 5; k++)
			seen += !strcmp(names[i], want[k]);
		assert_int_equal(seen, 1);
	}
	assert_int_equal(strcmp(names[0], names[1]) != 0, 1);
	for (i = 2; i < 6; i++) /* untouched beyond cap */
		for (k = 0; k < SHMRPC_NAME_MAX + 1; k++)
			assert_int_equal(names[i][k], '#');
	assert_int_equal(shmrpc_nodes(me, NULL, 0), 5);
	assert_int_equal(shmrpc_nodes(me, NULL, 1), -EINVAL);
	assert_int_equal(shmrpc_nodes(me, names, 6), 5);
	for (k = 0; k < 5; k++) { /* every one, self included, once */
		for (seen = 0, i = 0; i < 5; i++)
			seen += !strcmp(names[i], want[k]);
		assert_int_equal(seen, 1);
	}
	th_holder_stop(&h[0]);
	assert_int_equal(shmrpc_nodes(me, names, 6), 4);
	th_holder_stop(&h[1]);
	shmrpc_close(a);
	assert_int_equal(shmrpc_nodes(b, names, 6), 2);
	shmrpc_close(b);
	assert_int_equal(shmrpc_nodes(me, names, 6), 1);
	assert_string_equal(names[0], "me");
	shmrpc_close(me);
}

/* ============================================================== proxies */

static struct shmrpc_node *open_proxy(const struct th_dom *d, const char *name, const char *host)
{
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL;

	o.proxy_host = host;
	return shmrpc_open(name, &o, &n) ? NULL : n;
}

static void test_proxy_is_not_local(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *me = th_open(d, "me"), *loc = th_open(d, "loc");
	struct shmrpc_node *cam = open_proxy(d, "cam", "board-b.lab");
	char host[SHMRPC_NAME_MAX + 1], names[4][SHMRPC_NAME_MAX + 1], buf[8];
	uint64_t id;

	assert_non_null(me);
	assert_non_null(loc);
	assert_non_null(cam);
	/* where each lives */
	assert_int_equal(shmrpc_is_local(me, "loc"), 1);
	assert_int_equal(shmrpc_is_local(me, "cam"), 0);
	assert_int_equal(shmrpc_is_local(me, "nobody"), 0);
	memset(host, '#', sizeof(host));
	assert_int_equal(shmrpc_node_host(me, "cam", host, sizeof(host)), 1);
	assert_string_equal(host, "board-b.lab");
	assert_int_equal(shmrpc_node_host(me, "loc", host, sizeof(host)), 0);
	assert_string_equal(host, "");
	assert_int_equal(shmrpc_node_host(cam, "loc", host, sizeof(host)), 0);
	assert_int_equal(shmrpc_node_host(loc, "cam", host, sizeof(host)), 1);
	assert_int_equal(shmrpc_node_host(me, "nobody", host, sizeof(host)), -ENOENT);
	assert_int_equal(shmrpc_node_host(me, "cam", host, 11), -ERANGE); /* 11 + NUL */
	assert_int_equal(shmrpc_node_host(me, "cam", host, 12), 1);
	assert_int_equal(shmrpc_node_host(me, "loc", NULL, 0), -ERANGE);
	assert_int_equal(shmrpc_node_host(me, "loc", NULL, 4), -EINVAL);
	assert_int_equal(shmrpc_node_host(me, "bad name", host, sizeof(host)), -EINVAL);
	/* an ordinary node otherwise: listed, waited for, sent to */
	assert_int_equal(shmrpc_nodes(me, names, 4), 3);
	assert_int_equal(shmrpc_wait_node(me, "cam", 0), 0);
	assert_int_equal(shmrpc_send(me, "cam", "hi", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(cam, buf, sizeof(buf), host, 1000), 2);
	assert_string_equal(host, "me");
	/* serving from its open: a call is sent (not refused at once), and
	 * answered -EOPNOTSUPP by its receiving call while it has no serve
	 * function; a local node without one is refused at once */
	assert_int_equal(shmrpc_call(me, "loc", "q", 1, buf, sizeof(buf), 1000), -EOPNOTSUPP);
	assert_int_equal(shmrpc_call_start(me, "cam", "q", 1, 1000, &id), 0);
	assert_int_equal(shmrpc_recv(cam, buf, sizeof(buf), host, 0), -EAGAIN);
	assert_int_equal(shmrpc_call_wait(me, id, buf, sizeof(buf), NULL, 1000), -EOPNOTSUPP);
	/* gone: not found any more */
	shmrpc_close(cam);
	assert_int_equal(shmrpc_node_host(me, "cam", host, sizeof(host)), -ENOENT);
	shmrpc_close(loc);
	shmrpc_close(me);
}

static void test_proxy_host_option_checked(void **state)
{
	struct th_dom *d = *state;
	const char *bad[] = { "", ".dot", "has space", "x/y" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(open_proxy(d, "p", bad[i]));
		assert_non_null(strstr(shmrpc_last_error(), "opts.proxy_host"));
	}
}

/* A peer that scribbles over a proxy's host (any member can write its
 * segment) gets -EPROTO from shmrpc_node_host, never a crash or garbage. */
static void test_proxy_host_forged(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *me = th_open(d, "me"), *cam = open_proxy(d, "cam", "far");
	char host[SHMRPC_NAME_MAX + 1];

	assert_non_null(me);
	assert_non_null(cam);
	memset(cam->seg->host, 'x', sizeof(cam->seg->host)); /* no NUL */
	assert_int_equal(shmrpc_node_host(me, "cam", host, sizeof(host)), -EPROTO);
	memcpy(cam->seg->host, "a b", 4); /* not a name */
	assert_int_equal(shmrpc_node_host(me, "cam", host, sizeof(host)), -EPROTO);
	memset(cam->seg->host, 0, sizeof(cam->seg->host));
	assert_int_equal(shmrpc_node_host(me, "cam", host, sizeof(host)), -EPROTO);
	memcpy(cam->seg->host, "far", 4);
	assert_int_equal(shmrpc_node_host(me, "cam", host, sizeof(host)), 1);
	assert_string_equal(host, "far");
	shmrpc_close(cam);
	shmrpc_close(me);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_warmup_connects_ahead),
		T(test_info_max_size_backend_names),
		T(test_wait_node_returns_when_it_appears),
		T(test_wait_node_timeouts),
		T(test_wait_node_sleeps_on_epoch),
		T(test_nodes_cap_smaller_than_count),
		T(test_proxy_is_not_local),
		T(test_proxy_host_option_checked),
		T(test_proxy_host_forged),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
