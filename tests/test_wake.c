// SPDX-License-Identifier: MIT
/*
 * Wake backends: which one is chosen (and the fallback when io_uring is
 * filtered by seccomp), many inbound rings, shmrpc_fd in an epoll loop,
 * deferred wakes with shmrpc_flush, the spin setting, and what the
 * receiver's system calls are (strace).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

static const char *self_exe;

/* ---------------------------------------------------- backend selection */

/* Make system call @nr fail with @err in this process (seccomp). */
static int block_syscall(int nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* Refuse io_uring_setup with EPERM, as Docker's default profile does. */
static int block_io_uring(void)
{
	return block_syscall(__NR_io_uring_setup, EPERM);
}

static char logged[512];

static void log_hook(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level == SHMRPC_LOG_INFO)
		snprintf(logged, sizeof(logged), "%s", msg);
}

static int seccomp_child(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	char buf[8];

	CHILD_CHECK(block_io_uring() == 0);
	CHILD_CHECK(shmrpc_backend_available("uring") == 0);
	CHILD_CHECK(!strcmp(shmrpc_backend_default(), "futex"));
	o.backend = "uring";
	CHILD_CHECK_RC(shmrpc_open("forced", &o, &a), -EOPNOTSUPP);
	CHILD_CHECK(strstr(shmrpc_last_error(), "backend uring: cannot work here"));
	o.backend = NULL;
	unsetenv("SHMRPC_BACKEND");
	/* The fallback is logged, and says why. */
	shmrpc_set_log(log_hook, NULL);
	CHILD_CHECK_RC(shmrpc_open("a", &o, &a), 0);
	shmrpc_set_log(NULL, NULL);
	CHILD_CHECK(strstr(logged, "backend uring unavailable"));
	CHILD_CHECK(!strcmp(shmrpc_backend(a), "futex"));
	CHILD_CHECK_RC(shmrpc_open("b", &o, &b), 0);
	CHILD_CHECK_RC(shmrpc_send(a, "b", "works", 5, 1000), 0);
	CHILD_CHECK_RC(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 5);
	shmrpc_close(a);
	shmrpc_close(b);
	return 0;
}

static void test_backend_falls_back_under_seccomp(void **state)
{
	assert_int_equal(th_wait(th_fork(seccomp_child, *state), 10000), 0);
}

static void count_one(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		      void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	++*(int *)arg;
}

/*
 * A kernel without futex_waitv (before 5.16), as a seccomp filter makes
 * it: the futex backend sleeps on the bell alone (every ring in bell
 * mode), a blocking receive still wakes, and shmrpc_fd is readable when a
 * message waits and not while the node is idle.
 */
static int no_waitv_child(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_opts o = d->opts;
	struct epoll_event ev = { .events = EPOLLIN }, out;
	struct shmrpc_node *a, *b;
	char buf[8];
	int ep, got = 0;

	CHILD_CHECK(block_syscall(__NR_futex_waitv, ENOSYS) == 0);
	o.backend = "futex";
	CHILD_CHECK_RC(shmrpc_open("a", &o, &a), 0);
	CHILD_CHECK_RC(shmrpc_open("b", &o, &b), 0);
	CHILD_CHECK_RC(shmrpc_recv(b, buf, sizeof(buf), NULL, 50), -ETIMEDOUT); /* it sleeps */
	CHILD_CHECK_RC(shmrpc_send(a, "b", "one", 3, 1000), 0);
	CHILD_CHECK_RC(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 3);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = shmrpc_fd(b);
	CHILD_CHECK(ev.data.fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) == 0);
	CHILD_CHECK_RC(shmrpc_dispatch(b, count_one, &got, 0), -EAGAIN); /* parks */
	CHILD_CHECK_RC(epoll_wait(ep, &out, 1, 200), 0);		 /* idle: quiet */
	CHILD_CHECK_RC(shmrpc_send(a, "b", "two", 3, 1000), 0);
	CHILD_CHECK_RC(epoll_wait(ep, &out, 1, 5000), 1);
	CHILD_CHECK_RC(shmrpc_dispatch(b, count_one, &got, 0), 1);
	CHILD_CHECK_RC(shmrpc_dispatch(b, count_one, &got, 0), -EAGAIN);
	CHILD_CHECK_RC(epoll_wait(ep, &out, 1, 200), 0);
	CHILD_CHECK(got == 1);
	close(ep);
	shmrpc_close(a);
	shmrpc_close(b);
	return 0;
}

static void test_futex_backend_without_waitv(void **state)
{
	assert_int_equal(th_wait(th_fork(no_waitv_child, *state), 20000), 0);
}

static void test_backend_choice(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n;
	const char *env = getenv("SHMRPC_BACKEND");

	assert_int_equal(shmrpc_backend_available("futex"), 1);
	assert_int_equal(shmrpc_backend_available("bogus"), -EINVAL);
	assert_int_equal(shmrpc_backend_available(NULL), -EINVAL);
	o.backend = "bogus";
	assert_int_equal(shmrpc_open("x", &o, &n), -EINVAL);
	o.backend = "futex";
	assert_int_equal(shmrpc_open("x", &o, &n), 0);
	assert_string_equal(shmrpc_backend(n), "futex");
	shmrpc_close(n);
	if (shmrpc_backend_available("uring") != 1) {
		print_message("io_uring futex operations missing here: uring not checked\n");
		return;
	}
	/* on this project's kernels (6.7+), automatic means uring */
	assert_string_equal(shmrpc_backend_default(), "uring");
	o.backend = NULL;
	assert_int_equal(shmrpc_open("y", &o, &n), 0);
	assert_string_equal(shmrpc_backend(n), env ? env : "uring");
	shmrpc_close(n);
}

/* ------------------------------------------------ 256 senders into one */

#define MANY 256
#define MANY_N 40

static int many_sender(void *arg)
{
	struct th_dom *d = arg;
	char name[16];
	struct shmrpc_node *n;
	int i, id = (int)(getpid() % 100000);
	uint32_t msg[2];

	snprintf(name, sizeof(name), "s%d", id);
	n = th_open(d, name);
	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "sink", 20000) == 0);
	for (i = 0; i < MANY_N; i++) {
		struct timespec ts = { 0, 1000000 * (id % 7) };

		msg[0] = (uint32_t)id;
		msg[1] = (uint32_t)i;
		CHILD_CHECK_RC(shmrpc_send(n, "sink", msg, sizeof(msg), 20000), 0);
		nanosleep(&ts, NULL); /* the receiver sleeps between messages */
	}
	shmrpc_close(n);
	return 0;
}

/* Beyond futex_waitv's 128 words: the futex backend rings the bell for the
 * rest, the uring backend arms one wait per ring. Nothing may be lost, with
 * the safety timeout off. */
static void test_many_senders_beyond_waitv_limit(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *sink = th_open(d, "sink");
	static int next[100000];
	struct shmrpc_stats st;
	pid_t pid[MANY];
	uint32_t msg[2];
	long total = 0;
	int i;

	assert_non_null(sink);
	memset(next, 0, sizeof(next));
	for (i = 0; i < MANY; i++)
		pid[i] = th_fork(many_sender, d);
	while (total < (long)MANY * MANY_N) {
		assert_int_equal(shmrpc_recv(sink, msg, sizeof(msg), NULL, 30000), sizeof(msg));
		assert_true(msg[0] < 100000);
		assert_int_equal(msg[1], next[msg[0]]);
		next[msg[0]]++;
		total++;
	}
	for (i = 0; i < MANY; i++)
		assert_int_equal(th_wait(pid[i], 30000), 0);
	assert_int_equal(shmrpc_stats(sink, &st), 0);
	print_message("%d senders (%s): %lu sleeps, %lu rings still open\n", MANY,
		      shmrpc_backend(sink), (unsigned long)st.sleeps, (unsigned long)st.rings_in);
	assert_true(st.sleeps > 0);
	shmrpc_close(sink);
}

/* ---------------------------------------------------- shmrpc_fd + epoll */

struct loop {
	int got, bytes;
	char sock_buf[64];
};

static void count(struct shmrpc_node *n, const char *from, const void *data, size_t len, void *arg)
{
	struct loop *l = arg;

	(void)n;
	(void)from;
	(void)data;
	l->got++;
	l->bytes += (int)len;
}

static int fd_peer(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n = th_open(d, "peer");
	struct timespec gap = { 0, 3000000 };
	int i;

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "loop", 5000) == 0);
	for (i = 0; i < 200; i++) {
		CHILD_CHECK_RC(shmrpc_send(n, "loop", "event", 5, 5000), 0);
		if (i % 10 == 0) /* now and then the loop goes back to epoll_wait */
			nanosleep(&gap, NULL);
	}
	shmrpc_close(n);
	return 0;
}

/* An event loop over a socket and shmrpc_fd: both kinds of events arrive,
 * epoll_wait's EINTR is retried (the kernel may interrupt it when a wake
 * completes a wait of ours), and nothing is lost. */
static void test_fd_in_epoll_loop(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n;
	struct epoll_event ev, out[4];
	struct loop l = { 0 };
	int ep, fd, sv[2], k, rc, eintr = 0, socket_msgs = 0, poked = 0;
	double end;
	pid_t pid;

	/* The peer first: forking once this process runs threads (the
	 * watcher, the futex backend's shmrpc_fd helper) can deadlock the
	 * child in AddressSanitizer's allocator (gcc 12's libasan). */
	pid = th_fork(fd_peer, d);
	n = th_open(d, "loop");
	assert_non_null(n);
	fd = shmrpc_fd(n);
	assert_true(fd >= 0);
	assert_int_equal(shmrpc_fd(n), fd); /* the same one */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.fd = fd;
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	ev.data.fd = sv[0];
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev), 0);
	end = th_now_ms() + 20000;
	while ((l.got < 200 || socket_msgs < 1) && th_now_ms() < end) {
		if (l.got >= 100 && !poked++)
			assert_int_equal(write(sv[1], "s", 1), 1);
		rc = epoll_wait(ep, out, 4, 1000);
		if (rc < 0) {
			assert_int_equal(errno, EINTR);
			eintr++;
			continue;
		}
		for (k = 0; k < rc; k++) {
			ssize_t got;
			int handled;

			if (out[k].data.fd == sv[0]) {
				got = read(sv[0], l.sock_buf, sizeof(l.sock_buf));
				assert_true(got > 0 || (got < 0 && errno == EAGAIN));
				socket_msgs += got > 0 ? (int)got : 0;
				continue;
			}
			handled = shmrpc_dispatch(n, count, &l, 0);
			assert_true(handled > 0 || handled == -EAGAIN);
		}
	}
	print_message("epoll loop: %d messages, %d socket bytes, %d EINTR retried (%s)\n", l.got,
		      socket_msgs, eintr, shmrpc_backend(n));
	assert_int_equal(l.got, 200);
	assert_int_equal(l.bytes, 1000);
	assert_int_equal(socket_msgs, 1);
	assert_int_equal(th_wait(pid, 10000), 0);
	/* quiet now: the descriptor does not stay readable */
	assert_int_equal(shmrpc_dispatch(n, count, &l, 0), -EAGAIN);
	assert_int_equal(epoll_wait(ep, out, 4, 100) >= 0 ? 0 : errno == EINTR ? 0 : -1, 0);
	close(ep);
	close(sv[0]);
	close(sv[1]);
	shmrpc_close(n);
}

/* ---------------------------------------------- deferred wakes + flush */

#define DEFER_RX 4

struct drx {
	struct th_dom *d;
	int id;
};

static int defer_rx(void *arg)
{
	struct drx *r = arg;
	char name[16], buf[16];
	struct shmrpc_node *n;
	int i;

	snprintf(name, sizeof(name), "r%d", r->id);
	n = th_open(r->d, name);
	CHILD_CHECK(n);
	for (i = 0; i < 50; i++)
		CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), NULL, 10000), 4);
	shmrpc_close(n);
	return 0;
}

static void test_deferred_wakes_flush_together(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *tx = th_open(d, "tx");
	char names[DEFER_RX + 1][SHMRPC_NAME_MAX + 1];
	struct timespec nap = { 0, 5000000 };
	struct shmrpc_stats a, b;
	struct drx r[DEFER_RX];
	pid_t pid[DEFER_RX];
	int i, k, nn, flushed = 0;

	assert_non_null(tx);
	assert_int_equal(shmrpc_flush(tx), 0);
	assert_int_equal(shmrpc_send_flags(tx, "nobody", "x", 1, 0, 0x80), -EINVAL);
	for (i = 0; i < DEFER_RX; i++) {
		r[i].d = d;
		r[i].id = i;
		pid[i] = th_fork(defer_rx, &r[i]);
	}
	do {
		nanosleep(&nap, NULL);
		nn = shmrpc_nodes(tx, names, DEFER_RX + 1);
	} while (nn < DEFER_RX + 1);
	assert_int_equal(shmrpc_warmup(tx), DEFER_RX);
	shmrpc_stats(tx, &a);
	for (k = 0; k < 50; k++) {
		nanosleep(&nap, NULL); /* the receivers are asleep by now */
		for (i = 0; i < DEFER_RX + 1; i++)
			if (strcmp(names[i], "tx"))
				assert_int_equal(shmrpc_send_flags(tx, names[i], "data", 4, 5000,
								   SHMRPC_SEND_DEFER),
						 0);
		flushed += shmrpc_flush(tx);
	}
	shmrpc_stats(tx, &b);
	print_message("deferred: %d wakes flushed in 50 batches (%s)\n", flushed,
		      shmrpc_backend(tx));
	/* every sleeping receiver was woken by a flush, none by the send */
	assert_true(flushed > 0 && flushed <= 50 * DEFER_RX);
	assert_int_equal(b.wakes_sent - a.wakes_sent, (uint64_t)flushed);
	for (i = 0; i < DEFER_RX; i++)
		assert_int_equal(th_wait(pid[i], 20000), 0);
	shmrpc_close(tx);
}

/* ---------------------------------------------------------------- spin */

static void test_spin_never_means_no_spin(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *a, *b;
	struct shmrpc_stats st;
	char buf[8];
	int i;

	o.spin_us = -2;
	assert_int_equal(shmrpc_open("a", &o, &a), -EINVAL);
	o.spin_us = SHMRPC_SPIN_NEVER;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	o.spin_us = 0;
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	for (i = 0; i < 20; i++) {
		assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 1), -ETIMEDOUT);
		assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 1), -ETIMEDOUT);
	}
	assert_int_equal(shmrpc_stats(a, &st), 0);
	assert_int_equal(st.spins, 0);
	assert_true(st.sleeps >= 20);
	shmrpc_close(a);
	shmrpc_close(b);
	/* $SHMRPC_SPIN_US=0 says the same */
	setenv("SHMRPC_SPIN_US", "0", 1);
	assert_int_equal(shmrpc_open("c", &o, &a), 0);
	unsetenv("SHMRPC_SPIN_US");
	assert_int_equal(shmrpc_open("d", &o, &b), 0);
	for (i = 0; i < 200; i++) { /* d sends to c back to back: c would spin */
		assert_int_equal(shmrpc_send(b, "c", "x", 1, 1000), 0);
		assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 1000), 1);
	}
	assert_int_equal(shmrpc_stats(a, &st), 0);
	assert_int_equal(st.spins, 0);
	shmrpc_close(a);
	shmrpc_close(b);
}

/* ------------------------------------------------ strace of a receiver */

static int strace_rx(const char *domain)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain };
	struct shmrpc_node *n;
	char buf[64];
	long got = 0;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with strace, its parent */
	if (shmrpc_open("rx", &o, &n))
		return 1;
	while ((rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 10000)) > 0)
		got++;
	shmrpc_close(n);
	return rc == 0 && got == 20000 ? 0 : 2;
}

static void test_receiver_sleeps_in_io_uring_enter(void **state)
{
	struct th_dom *d = *state;
	char out[] = "/tmp/shmrpc-strace-XXXXXX", line[256];
	struct timespec gap = { 0, 100000 };
	struct shmrpc_node *tx;
	int fd, i, status, enters = -1, futexes = 0;
	FILE *f;
	pid_t pid;
	const char *be = getenv("SHMRPC_BACKEND");

	if ((be && strcmp(be, "uring")) || shmrpc_backend_available("uring") != 1 ||
	    system("strace -V >/dev/null 2>&1"))
		skip(); /* the futex backend sleeps in futex_waitv, by design */
	fd = mkstemp(out);
	assert_true(fd >= 0);
	close(fd);
	tx = th_open(d, "tx");
	assert_non_null(tx);
	pid = th_fork_raw();
	if (pid == 0) {
		/* LeakSanitizer cannot work under ptrace (ASan builds) */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		execlp("strace", "strace", "-f", "-e", "trace=futex,futex_waitv,io_uring_enter",
		       "-o", out, self_exe, "--strace-rx", d->name, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(shmrpc_wait_node(tx, "rx", 20000), 0);
	for (i = 0; i < 20000; i++) {
		assert_int_equal(shmrpc_send(tx, "rx", "stream", 6, 10000), 0);
		if (i % 50 == 0)
			nanosleep(&gap, NULL); /* let it fall asleep now and then */
	}
	assert_int_equal(shmrpc_send(tx, "rx", NULL, 0, 10000), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	f = fopen(out, "r");
	assert_non_null(f);
	enters = 0;
	while (fgets(line, sizeof(line), f)) {
		enters += strstr(line, "io_uring_enter(") != NULL;
		/* A wait of ours is futex_waitv, or FUTEX_WAIT_BITSET on a
		 * shared word with a CLOCK_MONOTONIC deadline. libc's are
		 * _PRIVATE, or (pthread_join's wait on a thread id, which the
		 * kernel wakes as a shared futex) FUTEX_CLOCK_REALTIME. */
		futexes += strstr(line, "futex_waitv(") ||
			   (strstr(line, "FUTEX_WAIT") && !strstr(line, "_PRIVATE") &&
			    !strstr(line, "FUTEX_CLOCK_REALTIME"));
	}
	fclose(f);
	unlink(out);
	print_message("receiver under strace: %d io_uring_enter, %d waits on shared futexes\n",
		      enters, futexes);
	assert_true(enters > 0);
	assert_int_equal(futexes, 0);
	shmrpc_close(tx);
}

int main(int argc, char **argv)
{
	/* The two that fork before this process has opened a node come
	 * first: the watcher thread stays once started, and a fork while it
	 * holds an ASan lock leaves the child stuck (one CI run). */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backend_falls_back_under_seccomp, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_futex_backend_without_waitv, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_backend_choice, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_spin_never_means_no_spin, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_deferred_wakes_flush_together, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_fd_in_epoll_loop, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_many_senders_beyond_waitv_limit, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_receiver_sleeps_in_io_uring_enter, th_setup,
						th_teardown),
	};

	self_exe = argv[0];
	if (argc == 3 && !strcmp(argv[1], "--strace-rx"))
		return strace_rx(argv[2]);
	/* No safety net: every wait must end by a wake. */
	setenv("SHMRPC_SAFETY_MS", "3600000", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
