// SPDX-License-Identifier: MIT
/*
 * Joining a domain (lib/join.c's policy over lib/registry.c's slots): a
 * name held by a live node is refused and a dead holder's is taken over, a
 * full registry frees the slots of the dead, and joins and leaves of many
 * processes at once keep the registry consistent; a leave while others
 * live costs the same whatever the domain's size.
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
#include <linux/perf_event.h>
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

/* ==================================================== duplicate names */

static void test_dup_name_same_process(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a, *a2 = NULL;

	a = th_open(d, "x");
	assert_non_null(a);
	assert_int_equal(shmrpc_open("x", &d->opts, &a2), -EEXIST);
	assert_null(a2);
	assert_int_equal(th_dom_files(d->name, ".node."), 1);
	shmrpc_close(a);
	assert_int_equal(th_shm_count(d->name), 0);
	a2 = th_open(d, "x");
	assert_non_null(a2);
	shmrpc_close(a2);
}

static void test_dup_name_other_process(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p, *x = NULL;
	struct th_holder h;

	th_holder_start(&h, d, "x", NULL);
	assert_int_equal(shmrpc_open("x", &d->opts, &x), -EEXIST);
	p = th_open(d, "p");
	assert_non_null(p);
	assert_int_equal(shmrpc_open("x", &d->opts, &x), -EEXIST);
	assert_int_equal(shmrpc_is_local(p, "x"), 1);
	th_holder_stop(&h);
	assert_int_equal(shmrpc_is_local(p, "x"), 0);
	assert_int_equal(shmrpc_open("x", &d->opts, &x), 0);
	shmrpc_close(x);
	shmrpc_close(p);
}

/* The holder of "x" talks with "p", is SIGKILLed; "x" can be taken again
 * and nothing of the dead node stays. */
static void test_dup_name_free_after_sigkill(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *p = th_open(d, "p"), *x;
	char id[32], id2[32], buf[16], from[SHMRPC_NAME_MAX + 1];
	struct th_holder h;

	assert_non_null(p);
	th_holder_start(&h, d, "x", "p");
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), from, 5000), 5);
	assert_string_equal(from, "x");
	assert_int_equal(shmrpc_send(p, "x", "to-x", 4, 1000), 0); /* never received */
	assert_int_equal(th_node_id(d->name, "x", id), 0);
	assert_int_equal(th_id_files(d->name, id), 3); /* segment, ring to p, ring from p */
	th_holder_kill(&h);

	assert_int_equal(shmrpc_open("x", &d->opts, &x), 0);
	assert_int_equal(th_id_files(d->name, id), 0);
	assert_int_equal(th_node_id(d->name, "x", id2), 0);
	assert_string_not_equal(id, id2);
	/* p's connection was to the dead x: the very next send goes to the
	 * new x (shmrpc.h: -EPIPE only while no node has the name) */
	assert_int_equal(shmrpc_send(p, "x", "b", 1, 1000), 0);
	assert_int_equal(shmrpc_recv(x, buf, sizeof(buf), from, 1000), 1);
	assert_memory_equal(buf, "b", 1);
	assert_string_equal(from, "p");
	assert_int_equal(shmrpc_recv(x, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_recv(p, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(x);
	shmrpc_close(p);
}

/* ===================================================== full registry */

static void test_full_registry_enospc_until_one_leaves(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n[4], *e = NULL;
	char name[16];
	int i;

	o.max_nodes = 4;
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		assert_int_equal(shmrpc_open(name, &o, &n[i]), 0);
	}
	assert_int_equal(shmrpc_open("e", &o, &e), -ENOSPC);
	o.max_nodes = 8; /* the capacity is the creator's: asking more changes nothing */
	assert_int_equal(shmrpc_open("e", &o, &e), -ENOSPC);
	assert_int_equal(th_dom_files(d->name, ".node."), 4);
	shmrpc_close(n[2]);
	assert_int_equal(shmrpc_open("e", &o, &e), 0);
	assert_int_equal(shmrpc_open("f", &o, &n[2]), -ENOSPC);
	assert_int_equal(shmrpc_nodes(e, NULL, 0), 4);
	shmrpc_close(e);
	shmrpc_close(n[0]);
	shmrpc_close(n[1]);
	shmrpc_close(n[3]);
}

static void test_full_registry_reclaims_killed(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n[3], *e;
	struct th_holder h;
	char name[16], id[32];
	int i;

	o.max_nodes = 4;
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		assert_int_equal(shmrpc_open(name, &o, &n[i]), 0);
	}
	th_holder_start(&h, d, "k", "n0");
	assert_int_equal(shmrpc_open("e", &o, &e), -ENOSPC);
	assert_int_equal(th_node_id(d->name, "k", id), 0);
	th_holder_kill(&h);
	assert_int_equal(shmrpc_open("e", &o, &e), 0);
	assert_int_equal(th_id_files(d->name, id), 0);
	assert_int_equal(shmrpc_nodes(e, NULL, 0), 4);
	assert_int_equal(shmrpc_is_local(n[1], "k"), 0);
	shmrpc_close(e);
	for (i = 0; i < 3; i++)
		shmrpc_close(n[i]);
}

/* ============================================================ churn */

#define CHURN_W 4
#define CHURN_N 1000

struct churn {
	struct th_dom *d;
	int id;
	bool keeper;
	_Atomic uint32_t *seq;	 /* shared: per worker, odd while its node is open */
	_Atomic uint32_t *alone; /* shared: joins that found nobody else */
};

static int churn_main(void *arg)
{
	struct churn *c = arg;
	struct shmrpc_opts o = c->d->opts;
	char me[16], other[16], buf[64];
	struct shmrpc_node *n;
	uint32_t s1, s2;
	uint64_t rnd = (uint64_t)c->id * 7919 + 1;
	int i, j, rc;

	o.ring_bytes = 4096;
	snprintf(me, sizeof(me), "w%d", c->id);
	for (i = 0; i < CHURN_N; i++) {
		rc = shmrpc_open(me, &o, &n);
		if (rc) {
			fprintf(stderr, "churn %s, round %d: shmrpc_open = %d\n", me, i, rc);
			_exit(1);
		}
		atomic_fetch_add(&c->seq[c->id], 1); /* odd: open */
		CHILD_CHECK_RC(shmrpc_is_local(n, me), 1);
		if (c->keeper)
			CHILD_CHECK_RC(shmrpc_is_local(n, "keeper"), 1);
		rc = shmrpc_nodes(n, NULL, 0);
		CHILD_CHECK(rc >= 1 && rc <= CHURN_W + 1);
		if (rc == 1)
			atomic_fetch_add(c->alone, 1);
		/* A worker open during the whole lookup must be seen: two live
		 * nodes in two different registries would not be. */
		for (j = 0; j < CHURN_W; j++) {
			if (j == c->id)
				continue;
			snprintf(other, sizeof(other), "w%d", j);
			s1 = atomic_load(&c->seq[j]);
			rc = shmrpc_is_local(n, other);
			s2 = atomic_load(&c->seq[j]);
			if ((s1 & 1) && s1 == s2 && rc != 1) {
				fprintf(stderr, "churn %s: %s open but not seen (%d)\n", me, other,
					rc);
				_exit(1);
			}
		}
		snprintf(other, sizeof(other), "w%d", (int)(th_rand(&rnd) % CHURN_W));
		if (strcmp(other, me)) {
			rc = shmrpc_send(n, other, me, strlen(me), 0);
			CHILD_CHECK(rc == 0 || rc == -ENOENT || rc == -EPIPE || rc == -EAGAIN);
		}
		while ((rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 0)) >= 0)
			CHILD_CHECK(rc >= 2 && buf[0] == 'w');
		CHILD_CHECK_RC(rc, -EAGAIN);
		atomic_fetch_add(&c->seq[c->id], 1); /* even: closing */
		shmrpc_close(n);
	}
	return 0;
}

static void churn(struct th_dom *d, bool keeper)
{
	struct churn c[CHURN_W];
	pid_t pid[CHURN_W];
	_Atomic uint32_t *shared;
	struct shmrpc_node *k = NULL;
	double t0 = th_now_ms();
	int i;

	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared != MAP_FAILED);
	if (keeper) {
		k = th_open(d, "keeper");
		assert_non_null(k);
	}
	for (i = 0; i < CHURN_W; i++) {
		c[i] = (struct churn){ d, i, keeper, shared, shared + CHURN_W };
		pid[i] = th_fork(churn_main, &c[i]);
	}
	for (i = 0; i < CHURN_W; i++)
		assert_int_equal(th_wait(pid[i], 60000), 0);
	print_message("churn (%s keeper): %d joins in %.0f ms, %u found the domain empty\n",
		      keeper ? "with" : "without", CHURN_W * CHURN_N, th_now_ms() - t0,
		      (unsigned)atomic_load(shared + CHURN_W));
	if (keeper) {
		assert_int_equal(shmrpc_nodes(k, NULL, 0), 1);
		shmrpc_close(k);
	} else {
		/* without a keeper the domain must have emptied now and then */
		assert_true(atomic_load(shared + CHURN_W) > 0);
	}
	munmap((void *)shared, 4096);
	assert_int_equal(th_shm_count(d->name), 0);
}

static void test_churn_with_keeper(void **state)
{
	churn(*state, true);
}

static void test_churn_without_keeper(void **state)
{
	churn(*state, false);
}

/* ============================================================ leaving */

/* A counter of this thread's system calls (a perf counter on the
 * raw_syscalls:sys_enter tracepoint), or -1 where that is not allowed. */
static int sysc_open(void)
{
	struct perf_event_attr a;
	char buf[32];
	ssize_t len;
	int fd = open("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id", O_RDONLY);

	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = strtoull(buf, NULL, 10);
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* The system calls of shmrpc_close(@n), counted by @fd. */
static long close_calls(int fd, struct shmrpc_node *n)
{
	uint64_t a, b;

	assert_int_equal(read(fd, &a, sizeof(a)), sizeof(a));
	shmrpc_close(n);
	assert_int_equal(read(fd, &b, sizeof(b)), sizeof(b));
	return (long)(b - a) - 1; /* the second read counts itself */
}

#define LEAVE_BIG 300

/*
 * A leave while other nodes live asks "is anyone left?", and one liveness
 * check answers it: its system calls do not grow with the domain. Each
 * leave used to check every slot (kill(2) on each pid, or each lock with 64
 * or fewer left): 1000 leaves took 160-270 ms. The nodes are in this
 * process, the watcher off: nothing else makes system calls meanwhile.
 */
static void test_leave_cost_independent_of_domain_size(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node **n = calloc(LEAVE_BIG, sizeof(*n));
	long small = -1, big;
	struct th_env e;
	char name[16];
	int fd, i;

	assert_non_null(n);
	th_watch_off(&e);
	fd = sysc_open();
	if (fd < 0) {
		th_env_restore(&e);
		free(n);
		skip(); /* no perf tracepoint counters here (not root?) */
	}
	for (i = 0; i < LEAVE_BIG; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		n[i] = th_open(d, name);
		assert_non_null(n[i]);
		if (i == 8)
			small = close_calls(fd, n[4]); /* 8 others live */
	}
	big = close_calls(fd, n[LEAVE_BIG / 2]); /* 298 others live */
	print_message("system calls of a leave: %ld with 8 others live, %ld with %d\n", small, big,
		      LEAVE_BIG - 2);
	assert_true(big <= small + 4);
	for (i = 0; i < LEAVE_BIG; i++)
		if (i != 4 && i != LEAVE_BIG / 2)
			shmrpc_close(n[i]);
	close(fd);
	th_env_restore(&e);
	free(n);
	assert_int_equal(th_shm_count(d->name), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_dup_name_same_process),
		T(test_dup_name_other_process),
		T(test_dup_name_free_after_sigkill),
		T(test_full_registry_enospc_until_one_leaves),
		T(test_full_registry_reclaims_killed),
		T(test_churn_with_keeper),
		T(test_churn_without_keeper),
		T(test_leave_cost_independent_of_domain_size),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
