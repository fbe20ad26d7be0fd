// SPDX-License-Identifier: MIT
/*
 * lib/error.c: shmrpc_last_error names what was wrong, per thread, and
 * survives later successes; the log hook gets what the library logs, and
 * $SHMRPC_LOG is checked like every other variable.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "harness.h"

static void test_last_error_names_the_option(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL;

	assert_string_equal(shmrpc_last_error(), "");
	o.ring_bytes = 5000;
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "opts.ring_bytes 5000"));
	o.ring_bytes = 0;
	o.mode = 0666;
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "opts.mode 0666"));
	o.mode = 0;
	o.backend = "URING";
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "opts.backend 'URING'"));
	o.backend = NULL;
	assert_int_equal(shmrpc_open("robot:1", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "node name 'robot:1'"));
	/* A success leaves the last failure's text. */
	assert_int_equal(shmrpc_open("a", &o, &n), 0);
	assert_non_null(strstr(shmrpc_last_error(), "robot:1"));
	shmrpc_close(n);
}

static void test_last_error_env_variables(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n = NULL;

	setenv("SHMRPC_SPIN_US", "abc", 1);
	assert_int_equal(shmrpc_open("a", &d->opts, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "SHMRPC_SPIN_US=abc"));
	setenv("SHMRPC_SPIN_US", "5000000", 1);
	assert_int_equal(shmrpc_open("a", &d->opts, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "SHMRPC_SPIN_US=5000000"));
	unsetenv("SHMRPC_SPIN_US");
	setenv("SHMRPC_BACKEND", "bogus", 1);
	assert_int_equal(shmrpc_open("a", &d->opts, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "SHMRPC_BACKEND=bogus"));
	unsetenv("SHMRPC_BACKEND");
}

static void *other_thread(void *arg)
{
	struct shmrpc_opts o = *(struct shmrpc_opts *)arg;
	struct shmrpc_node *n;

	/* Fresh thread: nothing failed here yet. */
	if (shmrpc_last_error()[0])
		return "not empty";
	o.max_nodes = 1u << 20;
	if (shmrpc_open("b", &o, &n) != -EINVAL)
		return "open";
	return strstr(shmrpc_last_error(), "opts.max_nodes") ? NULL : "text";
}

static void test_last_error_is_per_thread(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n;
	pthread_t t;
	void *res;

	o.ring_bytes = 3;
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &d->opts), 0);
	assert_int_equal(pthread_join(t, &res), 0);
	assert_null(res);
	assert_non_null(strstr(shmrpc_last_error(), "opts.ring_bytes 3"));
}

static void test_errno_untouched(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n;

	o.ring_bytes = 3;
	errno = 4242;
	assert_int_equal(shmrpc_open("a", &o, &n), -EINVAL);
	assert_int_equal(errno, 4242);
}

/* Every call that fails says so in its own words: never the text of an
 * earlier failure. */
static void test_last_error_is_the_last_calls(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n = th_open(d, "a");
	struct shmrpc_msg m;
	char buf[8];

	assert_non_null(n);
	assert_int_equal(shmrpc_call(n, "nobody", "x", 1, buf, sizeof(buf), 0), -ENOENT);
	assert_non_null(strstr(shmrpc_last_error(), "'nobody'"));
	assert_int_equal(shmrpc_recv(n, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_string_equal(shmrpc_last_error(), "shmrpc_recv: Resource temporarily unavailable");
	assert_int_equal(shmrpc_recv_batch(n, &m, 0, 0), -EINVAL);
	assert_string_equal(shmrpc_last_error(), "shmrpc_recv_batch: Invalid argument");
	assert_int_equal(shmrpc_call_wait(n, 42, buf, sizeof(buf), NULL, 0), -ENOENT);
	assert_non_null(strstr(shmrpc_last_error(), "call 42: no such call"));
	assert_int_equal(shmrpc_is_local(n, "a"), 1); /* a success leaves it */
	assert_non_null(strstr(shmrpc_last_error(), "call 42: no such call"));
	shmrpc_close(n);
}

/* What the library does on its own is logged: a dead node reclaimed. */
static char logged[4096];

static void log_keep(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level == SHMRPC_LOG_INFO && strlen(logged) + strlen(msg) + 2 < sizeof(logged)) {
		strcat(logged, msg);
		strcat(logged, "\n");
	}
}

struct doomed {
	struct th_dom *d;
	struct th_gate open;
};

static int doomed_node(void *arg)
{
	struct doomed *x = arg;

	CHILD_CHECK(th_open(x->d, "doomed"));
	th_gate_open(&x->open);
	pause(); /* until SIGKILL */
	return 0;
}

static void test_log_says_dead_node_reclaimed(void **state)
{
	struct th_dom *d = *state;
	struct doomed x = { .d = d };
	struct shmrpc_node *n;
	pid_t pid;
	char want[128];

	logged[0] = '\0';
	th_gate_init(&x.open);
	pid = th_fork(doomed_node, &x);
	assert_int_equal(th_gate_wait(&x.open, 10000), 0);
	th_gate_close(&x.open);
	shmrpc_set_log(log_keep, NULL);
	kill(pid, SIGKILL);
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	/* A join checks every slot of a small domain: it reclaims the dead. */
	n = th_open(d, "sweeper");
	assert_non_null(n);
	shmrpc_set_log(NULL, NULL);
	snprintf(want, sizeof(want), "domain %s: node 'doomed'", d->name);
	if (!strstr(logged, want) || !strstr(logged, "is dead (its lock is free): reclaimed"))
		fail_msg("log: \"%s\"", logged);
	shmrpc_close(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_last_error_names_the_option, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_last_error_env_variables, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_last_error_is_per_thread, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_errno_untouched, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_last_error_is_the_last_calls, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_log_says_dead_node_reclaimed, th_setup,
						th_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
