// SPDX-License-Identifier: MIT
/*
 * The eBPF exit probe against the real kernel: real children are forked,
 * made to exit, exec and be SIGKILLed, and the probe must report each watched
 * process exactly once, when its last thread is gone. Needs root (CAP_BPF +
 * CAP_PERFMON); skips otherwise. The bpftool route runs `bpftool` (override
 * with $BPFTOOL) on the object $SHMRPC_BPF_OBJ (default SHMRPC_BPF_OBJ below).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>

#include "probe.h"

#ifndef SHMRPC_BPF_OBJ
#define SHMRPC_BPF_OBJ "build/bpf/shmrpc_exit.bpf.o"
#endif

#define MAX_KIDS 64
#define MAX_EVENTS 256
#define QUIET_MS 200  /* how long "no event" is watched for */
#define EVENT_MS 3000 /* how long an expected event may take, at most */

struct fixture {
	struct shmrpc_probe *p;
	struct shmrpc_probe *q; /* a second consumer */
	char pin_dir[96];
	pid_t kids[MAX_KIDS];
	int nkids;
};

struct events {
	struct shmrpc_exit_event ev[MAX_EVENTS];
	uint64_t seen_ns[MAX_EVENTS]; /* CLOCK_MONOTONIC when the callback ran */
	int n;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- fixture ---- */

static void on_alarm(int sig)
{
	(void)sig;
	fail_msg("hang guard: test took longer than 60 s");
}

static int setup(void **state)
{
	static int seq;
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->pin_dir, sizeof(f->pin_dir), "/sys/fs/bpf/shmrpc-test-%d-%d", (int)getpid(),
		 seq++);
	signal(SIGALRM, on_alarm);
	alarm(60);
	*state = f;
	return 0;
}

/* Runs after a failure too: kill and reap the children, close, unpin. */
static int teardown(void **state)
{
	struct fixture *f = *state;

	alarm(0);
	for (int i = 0; i < f->nkids; i++) {
		kill(f->kids[i], SIGKILL);
		waitpid(f->kids[i], NULL, 0);
	}
	shmrpc_probe_close(f->q);
	shmrpc_probe_close(f->p);
	shmrpc_probe_unpin(f->pin_dir);
	free(f);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("skip: BPF needs root (CAP_BPF + CAP_PERFMON)\n");
		skip();
	}
}

static void open_route(struct fixture *f, int route, const char *pin_dir)
{
	struct shmrpc_probe_opts o = { .sz = sizeof(o), .route = route, .pin_dir = pin_dir };
	int err;

	need_root();
	err = shmrpc_probe_open(&f->p, &o);
	if (err == -EPERM) {
		print_message("skip: BPF refused with EPERM (lockdown or no CAP_BPF?)\n");
		skip();
	}
	assert_int_equal(err, 0);
}

/* ---- children ---- */

/* Fork a child that runs fn(arg) then _exit(0); it dies with us. */
static pid_t spawn(struct fixture *f, void (*fn)(void *), void *arg)
{
	pid_t pid, parent;

	assert_true(f->nkids < MAX_KIDS);
	parent = getpid();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* we died before the prctl */
			_exit(1);
		fn(arg);
		_exit(0);
	}
	f->kids[f->nkids++] = pid;
	return pid;
}

/* Reap a child we made exit; drop it from the fixture's list. */
static int reap(struct fixture *f, pid_t pid)
{
	int status = -1;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (int i = 0; i < f->nkids; i++)
		if (f->kids[i] == pid)
			f->kids[i] = f->kids[--f->nkids];
	return status;
}

static void child_pause(void *arg)
{
	(void)arg;
	for (;;)
		pause();
}

/* Wait for a byte on fd[0]: the parent's "go". */
static void wait_go(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void child_exit3(void *arg)
{
	wait_go(*(int *)arg);
	exit(3);
}

/* ---- collecting events ---- */

static int collect_cb(void *ctx, const struct shmrpc_exit_event *ev)
{
	struct events *c = ctx;

	if (c->n < MAX_EVENTS) {
		c->ev[c->n] = *ev;
		c->seen_ns[c->n] = now_ns();
		c->n++;
	}
	return 0;
}

/* Poll until c holds `want` events or ms pass; return c->n. */
static int collect(struct shmrpc_probe *p, struct events *c, int want, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
	int n;

	while (c->n < want) {
		int64_t left = (int64_t)(end - now_ns());

		if (left <= 0)
			break;
		n = shmrpc_probe_poll(p, (int)(left / 1000000) + 1, collect_cb, c);
		assert_true(n >= 0 || n == -EINTR);
	}
	return c->n;
}

/* Exactly one event, for pid with cookie, whose status equals wait's. */
static void expect_one(struct fixture *f, pid_t pid, uint64_t cookie, int status)
{
	struct events c = { .n = 0 };

	assert_int_equal(collect(f->p, &c, 1, EVENT_MS), 1);
	assert_int_equal(collect(f->p, &c, 2, QUIET_MS), 1); /* and no second one */
	assert_int_equal(c.ev[0].tgid, pid);
	assert_int_equal(c.ev[0].cookie, cookie);
	assert_int_equal(c.ev[0].exit_code, status);
	assert_true(c.ev[0].ktime_ns > 0);
	assert_true(c.ev[0].start_boottime_ns > 0);
}

static void expect_none(struct fixture *f)
{
	struct events c = { .n = 0 };

	assert_int_equal(collect(f->p, &c, 1, QUIET_MS), 0);
}

/* Watch a paused child, SIGKILL it, expect its one event. */
static void kill_case(struct fixture *f, uint64_t cookie)
{
	pid_t pid = spawn(f, child_pause, NULL);
	int status;

	assert_int_equal(shmrpc_probe_watch(f->p, pid, cookie), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	status = reap(f, pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	expect_one(f, pid, cookie, status);
}

/* ---- basic cases ---- */

static void test_probe_sigkill_reports_once(void **state)
{
	struct fixture *f = *state;

	open_route(f, SHMRPC_PROBE_AUTO, NULL);
	print_message("probe route: %s\n", shmrpc_probe_mode(f->p));
	kill_case(f, 0xc0ffee0012345678ull);
}

static void test_probe_exit_code(void **state)
{
	struct fixture *f = *state;
	int go[2], status;
	pid_t pid;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	assert_int_equal(pipe(go), 0);
	pid = spawn(f, child_exit3, &go[0]);
	assert_int_equal(shmrpc_probe_watch(f->p, pid, 42), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	status = reap(f, pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	expect_one(f, pid, 42, status);
	close(go[0]);
	close(go[1]);
}

static void test_probe_unwatched_silent(void **state)
{
	struct fixture *f = *state;
	pid_t watched = spawn(f, child_pause, NULL);
	pid_t other = spawn(f, child_pause, NULL);

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	assert_int_equal(shmrpc_probe_watch(f->p, watched, 1), 0);
	assert_int_equal(shmrpc_probe_watch(f->p, other, 2), 0);
	assert_int_equal(shmrpc_probe_unwatch(f->p, other), 0);
	assert_int_equal(shmrpc_probe_unwatch(f->p, other), -ENOENT);
	kill(other, SIGKILL);
	reap(f, other);
	expect_none(f);
}

static void test_probe_watch_dead_is_esrch(void **state)
{
	struct fixture *f = *state;
	pid_t zombie = spawn(f, child_pause, NULL);
	pid_t reaped = spawn(f, child_pause, NULL);
	struct events c = { .n = 0 };
	siginfo_t si;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	kill(zombie, SIGKILL);
	kill(reaped, SIGKILL);
	reap(f, reaped);
	/* Wait until the zombie is one, without reaping it. */
	assert_int_equal(waitid(P_PID, (id_t)zombie, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(shmrpc_probe_watch(f->p, zombie, 1), -ESRCH);
	assert_int_equal(shmrpc_probe_watch(f->p, reaped, 2), -ESRCH);
	assert_int_equal(shmrpc_probe_unwatch(f->p, zombie), -ENOENT);
	assert_int_equal(collect(f->p, &c, 1, QUIET_MS), 0);
}

/* The walk sees every watched tgid once with its cookie, then -ENOENT. */
static void test_probe_watched_next_walks_all(void **state)
{
	struct fixture *f = *state;
	pid_t kids[3], next = 0;
	uint64_t cookie, seen = 0;
	int i, n = 0;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	assert_int_equal(shmrpc_probe_watched_next(f->p, 0, &next, NULL), -ENOENT);
	for (i = 0; i < 3; i++) {
		kids[i] = spawn(f, child_pause, NULL);
		assert_int_equal(shmrpc_probe_watch(f->p, kids[i], 100 + (uint64_t)i), 0);
	}
	while (shmrpc_probe_watched_next(f->p, next, &next, &cookie) == 0) {
		for (i = 0; i < 3; i++)
			if (kids[i] == next) {
				assert_int_equal(cookie, 100 + (uint64_t)i);
				seen |= 1u << i;
			}
		assert_true(++n <= 3);
	}
	assert_int_equal(n, 3);
	assert_int_equal(seen, 7);
}

/* ---- threads and exec ---- */

/* The id of a thread of pid other than its leader, or -1. */
static pid_t other_task(pid_t pid)
{
	char path[64];
	struct dirent *de;
	pid_t tid = -1;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && atoi(de->d_name) != pid)
			tid = atoi(de->d_name);
	closedir(d);
	return tid;
}

struct mt_child {
	int go[2];	/* parent -> child */
	int ready[2];	/* child -> parent */
	int release[2]; /* parent -> child's last thread */
	int nthreads;
};

static void *thread_exit_now(void *arg)
{
	(void)arg;
	return NULL;
}

static void *thread_sleep(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A non-leader thread starts and exits; the process lives on. */
static void child_thread_exits(void *arg)
{
	struct mt_child *m = arg;
	pthread_t t;

	wait_go(m->go[0]);
	pthread_create(&t, NULL, thread_exit_now, NULL);
	pthread_join(t, NULL);
	if (write(m->ready[1], "r", 1) != 1)
		_exit(99);
	child_pause(NULL);
}

static void mt_pipes(struct mt_child *m)
{
	assert_int_equal(pipe(m->go), 0);
	assert_int_equal(pipe(m->ready), 0);
	assert_int_equal(pipe(m->release), 0);
}

static void mt_close(struct mt_child *m)
{
	int *fds[] = { m->go, m->ready, m->release };

	for (int i = 0; i < 3; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

static void test_probe_thread_exit_not_process_exit(void **state)
{
	struct fixture *f = *state;
	struct mt_child m = { .nthreads = 1 };
	pid_t pid;
	char c;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	mt_pipes(&m);
	pid = spawn(f, child_thread_exits, &m);
	assert_int_equal(shmrpc_probe_watch(f->p, pid, 7), 0);
	assert_int_equal(write(m.go[1], "g", 1), 1);
	assert_int_equal(read(m.ready[0], &c, 1), 1); /* the thread is gone */
	expect_none(f);
	kill(pid, SIGKILL);
	expect_one(f, pid, 7, reap(f, pid));
	mt_close(&m);
}

static void *thread_wait_release(void *arg)
{
	struct mt_child *m = arg;

	wait_go(m->release[0]);
	/*
	 * The last thread leaves by SYS_exit, not exit_group (returning would
	 * make glibc call exit(0)). Which code wait(2) reports then depends on
	 * the kernel; the probe must report the same.
	 */
	syscall(SYS_exit, 5);
	return NULL;
}

/* The leader leaves with pthread_exit while another thread runs. */
static void child_leader_leaves(void *arg)
{
	struct mt_child *m = arg;
	pthread_t t;

	wait_go(m->go[0]);
	pthread_create(&t, NULL, thread_wait_release, m);
	pthread_exit(NULL);
}

/* State letter of /proc/pid/stat ('Z' for a zombie leader), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *rp;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp[2] : 0;
}

static void test_probe_leader_pthread_exit_waits_for_last(void **state)
{
	struct fixture *f = *state;
	struct mt_child m = { .nthreads = 1 };
	int status, i;
	pid_t pid;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	mt_pipes(&m);
	pid = spawn(f, child_leader_leaves, &m);
	assert_int_equal(shmrpc_probe_watch(f->p, pid, 8), 0);
	assert_int_equal(write(m.go[1], "g", 1), 1);
	for (i = 0; i < 500 && proc_state(pid) != 'Z'; i++)
		sleep_ms(2);
	assert_int_equal(proc_state(pid), 'Z'); /* leader gone, thread alive */
	expect_none(f);
	assert_int_equal(write(m.release[1], "r", 1), 1);
	status = reap(f, pid);
	/* 6.0+ (synchronize_group_exit) reports the last thread's 5, older 0. */
	assert_true(WIFEXITED(status));
	expect_one(f, pid, 8, status);
	mt_close(&m);
}

static void *thread_exec(void *arg)
{
	char *argv[] = { "sleep", "1000", NULL };
	char *envp[] = { NULL };

	(void)arg;
	execve("/bin/sleep", argv, envp);
	_exit(98);
}

/* A non-leader thread calls execve: de_thread kills the old leader. */
static void child_thread_execs(void *arg)
{
	struct mt_child *m = arg;
	pthread_t t;

	wait_go(m->go[0]);
	pthread_create(&t, NULL, thread_exec, NULL);
	child_pause(NULL);
}

static int proc_comm_is(pid_t pid, const char *want)
{
	char path[64], buf[32] = "";
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return 0;
	if (!fgets(buf, sizeof(buf), fp))
		buf[0] = '\0';
	fclose(fp);
	buf[strcspn(buf, "\n")] = '\0';
	return strcmp(buf, want) == 0;
}

static void test_probe_thread_execve_no_event(void **state)
{
	struct fixture *f = *state;
	struct mt_child m = { .nthreads = 1 };
	pid_t pid;
	int i;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	mt_pipes(&m);
	pid = spawn(f, child_thread_execs, &m);
	assert_int_equal(shmrpc_probe_watch(f->p, pid, 9), 0);
	assert_int_equal(write(m.go[1], "g", 1), 1);
	for (i = 0; i < 1000 && !proc_comm_is(pid, "sleep"); i++)
		sleep_ms(2);
	assert_true(proc_comm_is(pid, "sleep")); /* same tgid, new program */
	expect_none(f);
	kill(pid, SIGKILL);
	expect_one(f, pid, 9, reap(f, pid));
	mt_close(&m);
}

static int count_tasks(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Every thread dies at once: several may see live == 0, one event only. */
static void child_threads_pause(void *arg)
{
	pthread_t t;

	for (int i = 0; i < *(int *)arg; i++)
		pthread_create(&t, NULL, thread_sleep, NULL);
	child_pause(NULL);
}

static void test_probe_multithread_sigkill_once(void **state)
{
	struct fixture *f = *state;
	int nthreads = 4;

	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	for (int round = 0; round < 20; round++) {
		pid_t pid = spawn(f, child_threads_pause, &nthreads);
		int i;

		/* Kill only once every thread exists. */
		for (i = 0; i < 500 && count_tasks(pid) != nthreads + 1; i++)
			sleep_ms(1);
		assert_int_equal(count_tasks(pid), nthreads + 1);
		assert_int_equal(shmrpc_probe_watch(f->p, pid, (uint64_t)round), 0);
		kill(pid, SIGKILL);
		expect_one(f, pid, (uint64_t)round, reap(f, pid));
	}
}

/* A thread id that is not a process id is refused, not watched. */
static void test_probe_watch_thread_id_refused(void **state)
{
	struct fixture *f = *state;
	int nthreads = 1, i;
	pid_t pid = spawn(f, child_threads_pause, &nthreads);
	pid_t tid = other_task(pid);

	for (i = 0; i < 500 && tid <= 0; i++) {
		sleep_ms(1);
		tid = other_task(pid);
	}
	assert_true(tid > 0);
	open_route(f, SHMRPC_PROBE_TP_BTF, NULL);
	assert_int_equal(shmrpc_probe_watch(f->p, tid, 1), -ESRCH);
	assert_int_equal(shmrpc_probe_unwatch(f->p, tid), -ENOENT);
}

/* ---- the tracepoint variant ---- */

static void test_probe_tracepoint_sigkill(void **state)
{
	struct fixture *f = *state;

	open_route(f, SHMRPC_PROBE_TRACEPOINT, NULL);
	assert_string_equal(shmrpc_probe_mode(f->p), "tracepoint");
	kill_case(f, 0x7470);
}

static const char *bpftool(void)
{
	const char *b = getenv("BPFTOOL");

	return b && *b ? b : "bpftool";
}

static const char *bpf_obj(const char *suffix)
{
	static char path[512];
	const char *o = getenv("SHMRPC_BPF_OBJ");

	snprintf(path, sizeof(path), "%s", o && *o ? o : SHMRPC_BPF_OBJ);
	if (suffix) /* shmrpc_exit.bpf.o -> shmrpc_exit<suffix>.bpf.o */
		snprintf(strstr(path, ".bpf.o"), sizeof(path) - strlen(path), "%s.bpf.o", suffix);
	return path;
}

static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	print_message("+ %s\n", cmd);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * A kernel without /sys/kernel/btf/vmlinux: the tracepoint object relocated
 * against a BTF file made for it by `bpftool gen min_core_btf` (here from this
 * kernel's BTF, as one would from a BTFHub file).
 */
static void test_probe_tracepoint_custom_btf(void **state)
{
	struct fixture *f = *state;
	char btf[64];
	struct shmrpc_probe_opts o = { .sz = sizeof(o), .route = SHMRPC_PROBE_TRACEPOINT };
	int err;

	need_root();
	snprintf(btf, sizeof(btf), "/tmp/shmrpc-test-%d.btf", (int)getpid());
	err = run("%s gen min_core_btf /sys/kernel/btf/vmlinux %s %s", bpftool(), btf,
		  bpf_obj("_tp"));
	o.btf_path = btf;
	if (err == 0)
		err = shmrpc_probe_open(&f->p, &o);
	unlink(btf);
	assert_int_equal(err, 0);
	assert_string_equal(shmrpc_probe_mode(f->p), "tracepoint");
	kill_case(f, 0xb7f);
}

/* ---- bpftool-pinned probe and restarts ---- */

/* Load and pin with bpftool, as an operator would; suffix "_tp" for the
 * tracepoint object. */
static void bpftool_loadall(struct fixture *f, const char *suffix)
{
	need_root();
	assert_int_equal(run("%s prog loadall %s %s pinmaps %s", bpftool(), bpf_obj(suffix),
			     f->pin_dir, f->pin_dir),
			 0);
}

static void assert_mode(const char *dir, const char *name, unsigned int mode)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "", name ? name : "");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, mode);
}

static void test_probe_bpftool_pinned(void **state)
{
	struct fixture *f = *state;
	static const char *const pins[] = { "link", "shmrpc_exit", "watched", "events", "stats" };

	bpftool_loadall(f, NULL);
	open_route(f, SHMRPC_PROBE_PINNED, f->pin_dir);
	assert_string_equal(shmrpc_probe_mode(f->p), "pinned");
	assert_mode(f->pin_dir, NULL, 0700);
	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++)
		assert_mode(f->pin_dir, pins[i], 0600);
	kill_case(f, 0xb9f7001);
}

/* The tracepoint program pinned by bpftool: attached through a perf event. */
static void test_probe_bpftool_pinned_tracepoint(void **state)
{
	struct fixture *f = *state;

	bpftool_loadall(f, "_tp");
	open_route(f, SHMRPC_PROBE_PINNED, f->pin_dir);
	assert_string_equal(shmrpc_probe_mode(f->p), "pinned");
	assert_mode(f->pin_dir, "link", 0600);
	kill_case(f, 0xb9f7002);
}

/* The id of the link pinned in dir, or -1. */
static int pinned_link_id(const char *dir)
{
	char path[256];
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	int fd, id = -1;

	snprintf(path, sizeof(path), "%s/link", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		id = (int)info.id;
	close(fd);
	return id;
}

/*
 * Watch, close the handle (the reaper stops), the process dies meanwhile,
 * reopen: the pinned link kept the probe attached and the event waited in
 * the ring buffer.
 */
static void restart_case(struct fixture *f, int route)
{
	pid_t pid = spawn(f, child_pause, NULL);
	int link_id, status;

	open_route(f, route, f->pin_dir);
	link_id = pinned_link_id(f->pin_dir);
	assert_true(link_id > 0);
	assert_int_equal(shmrpc_probe_watch(f->p, pid, 0x5e57a27), 0);
	shmrpc_probe_close(f->p);
	f->p = NULL;

	kill(pid, SIGKILL);
	status = reap(f, pid);

	open_route(f, SHMRPC_PROBE_AUTO, f->pin_dir);
	assert_string_equal(shmrpc_probe_mode(f->p), "pinned");
	assert_int_equal(pinned_link_id(f->pin_dir), link_id); /* reused, not re-attached */
	expect_one(f, pid, 0x5e57a27, status);
	kill_case(f, 0x5e57a28);
}

static void test_probe_restart_reuses_pinned_link(void **state)
{
	struct fixture *f = *state;

	bpftool_loadall(f, NULL);
	restart_case(f, SHMRPC_PROBE_PINNED);
}

static void test_probe_restart_self_loaded(void **state)
{
	struct fixture *f = *state;

	restart_case(f, SHMRPC_PROBE_TP_BTF);
}

/* ---- two consumers of one ring buffer ---- */

static void wait_events_total(struct shmrpc_probe *p, uint64_t total)
{
	struct shmrpc_exit_stats st = { 0, 0 };

	for (int i = 0; i < 1000; i++) {
		assert_int_equal(shmrpc_probe_stats(p, &st), 0);
		if (st.events >= total)
			break;
		sleep_ms(2);
	}
	assert_int_equal(st.events, total);
	assert_int_equal(st.drops, 0);
}

/* Kill n watched children, reaped; their pids go to pids[]. */
static void kill_batch(struct fixture *f, int n, pid_t *pids, int gap_ms)
{
	for (int i = 0; i < n; i++) {
		pids[i] = spawn(f, child_pause, NULL);
		assert_int_equal(shmrpc_probe_watch(f->p, pids[i], (uint64_t)pids[i]), 0);
		kill(pids[i], SIGKILL);
		reap(f, pids[i]);
		if (gap_ms)
			sleep_ms(gap_ms);
	}
}

struct consumer {
	struct shmrpc_probe *p;
	struct events c;
	atomic_int *stop;
	pthread_t thread;
};

static void *consume(void *arg)
{
	struct consumer *k = arg;

	while (!atomic_load_explicit(k->stop, memory_order_relaxed)) /* just a flag */
		shmrpc_probe_poll(k->p, 20, collect_cb, &k->c);
	return NULL;
}

static int seen_count(const struct events *c, pid_t pid)
{
	int n = 0;

	for (int i = 0; i < c->n; i++)
		n += c->ev[i].tgid == (__u32)pid;
	return n;
}

/* Whoever polls first takes what is queued: the other never sees it. */
static void two_consumers_sequential(struct fixture *f, struct shmrpc_probe *q)
{
	struct events a = { .n = 0 }, b = { .n = 0 };
	pid_t pids[5];

	kill_batch(f, 5, pids, 0);
	wait_events_total(f->p, 5);
	assert_int_equal(shmrpc_probe_poll(f->p, 0, collect_cb, &a), 5);
	assert_int_equal(shmrpc_probe_poll(q, 0, collect_cb, &b), 0);
	kill_batch(f, 5, pids, 0);
	wait_events_total(f->p, 10);
	assert_int_equal(shmrpc_probe_poll(q, 0, collect_cb, &b), 5);
	assert_int_equal(shmrpc_probe_poll(f->p, 0, collect_cb, &a), 0);
	print_message("two consumers, sequential: A saw %d of 10, B saw %d of 10\n", a.n, b.n);
}

static void test_probe_two_consumers_split(void **state)
{
	struct fixture *f = *state;
	enum { N = 40 };
	static struct consumer k[2];
	atomic_int stop = 0;
	pid_t pids[N];
	int missing = 0, dups = 0, i;

	open_route(f, SHMRPC_PROBE_TP_BTF, f->pin_dir);
	k[0].p = f->p;
	assert_int_equal(shmrpc_probe_open(&f->q,
					   &(struct shmrpc_probe_opts){
						   .sz = sizeof(struct shmrpc_probe_opts),
						   .pin_dir = f->pin_dir }),
			 0);
	assert_string_equal(shmrpc_probe_mode(f->q), "pinned");
	k[1].p = f->q;
	two_consumers_sequential(f, f->q);

	for (i = 0; i < 2; i++) {
		k[i].c.n = 0;
		k[i].stop = &stop;
		assert_int_equal(pthread_create(&k[i].thread, NULL, consume, &k[i]), 0);
	}
	kill_batch(f, N, pids, 5);
	wait_events_total(f->p, 10 + N);
	for (i = 0; i < 250 && k[0].c.n + k[1].c.n < N; i++)
		sleep_ms(2);
	sleep_ms(QUIET_MS); /* let any duplicate arrive */
	atomic_store_explicit(&stop, 1, memory_order_relaxed);
	for (i = 0; i < 2; i++)
		pthread_join(k[i].thread, NULL);

	for (i = 0; i < N; i++) {
		int n = seen_count(&k[0].c, pids[i]) + seen_count(&k[1].c, pids[i]);

		missing += n == 0;
		dups += n > 1 ? n - 1 : 0;
	}
	print_message("two consumers, concurrent: A saw %d, B saw %d of %d; %d duplicated\n",
		      k[0].c.n, k[1].c.n, N, dups);
	assert_int_equal(missing, 0);			 /* every event reached one of them... */
	assert_int_equal(k[0].c.n + k[1].c.n, N + dups); /* ...none of another process */
}

/* ---- latency, printed only ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_probe_latency(void **state)
{
	struct fixture *f = *state;
	enum { ROUNDS = 50 };
	uint64_t probe[ROUNDS], consumer[ROUNDS];

	open_route(f, SHMRPC_PROBE_AUTO, NULL);
	for (int i = 0; i < ROUNDS; i++) {
		pid_t pid = spawn(f, child_pause, NULL);
		struct events c = { .n = 0 };
		uint64_t t0;

		assert_int_equal(shmrpc_probe_watch(f->p, pid, 1), 0);
		sleep_ms(2); /* the child is asleep in pause() */
		t0 = now_ns();
		kill(pid, SIGKILL);
		assert_int_equal(collect(f->p, &c, 1, EVENT_MS), 1);
		probe[i] = c.ev[0].ktime_ns - t0;
		consumer[i] = c.seen_ns[0] - t0;
		reap(f, pid);
	}
	qsort(probe, ROUNDS, sizeof(probe[0]), cmp_u64);
	qsort(consumer, ROUNDS, sizeof(consumer[0]), cmp_u64);
	print_message("latency over %d SIGKILLs (%s): kill->probe median %.1f us p90 %.1f us; "
		      "kill->consumer median %.1f us p90 %.1f us\n",
		      ROUNDS, shmrpc_probe_mode(f->p), probe[ROUNDS / 2] / 1e3,
		      probe[ROUNDS * 9 / 10] / 1e3, consumer[ROUNDS / 2] / 1e3,
		      consumer[ROUNDS * 9 / 10] / 1e3);
}

/* As root, mount bpffs and tracefs where they are missing (a fresh VM/CI). */
static int mount_fs(void **state)
{
	static const struct {
		const char *dir, *type;
		long magic;
	} fs[] = {
		{ "/sys/fs/bpf", "bpf", 0xcafe4a11 },		  /* BPF_FS_MAGIC */
		{ "/sys/kernel/tracing", "tracefs", 0x74726163 }, /* TRACEFS_MAGIC */
	};
	struct statfs sf;

	(void)state;
	if (geteuid() != 0)
		return 0;
	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
		if (statfs(fs[i].dir, &sf) == 0 && sf.f_type == fs[i].magic)
			continue;
		if (mount(fs[i].type, fs[i].dir, fs[i].type, 0, NULL))
			fprintf(stderr, "mount %s on %s: %s\n", fs[i].type, fs[i].dir,
				strerror(errno));
	}
	return 0;
}

/*
 * A pin directory someone else prepared (bpffs may be mounted 1777): a
 * symlink (to a directory root's pins would go into, chmodded on the way)
 * and a directory owned by another user. Both refused, loudly, and nothing
 * pinned or chmodded through them.
 */
static int dir_entries(const char *dir)
{
	struct dirent *e;
	int n = 0;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void test_probe_pin_dir_planted(void **state)
{
	struct fixture *f = *state;
	struct shmrpc_probe_opts o = { .sz = sizeof(o), .route = SHMRPC_PROBE_TP_BTF };
	char target[128];
	struct stat st;
	int err;

	need_root();
	o.pin_dir = f->pin_dir;
	snprintf(target, sizeof(target), "%s-target", f->pin_dir);
	assert_int_equal(mkdir(target, 0755), 0);
	if (symlink(target, f->pin_dir)) {
		print_message("[observed] bpffs refuses a symlink here (%s)\n", strerror(errno));
	} else {
		err = shmrpc_probe_open(&f->p, &o);
		print_message("pin dir a symlink: %d (%s)\n", err, shmrpc_probe_pin_error());
		assert_int_equal(err, -EACCES);
		assert_non_null(strstr(shmrpc_probe_pin_error(), "symbolic link"));
		assert_int_equal(stat(target, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0755); /* not chmodded through it */
		assert_int_equal(dir_entries(target), 0);   /* nothing pinned in it */
		assert_int_equal(unlink(f->pin_dir), 0);
	}
	assert_int_equal(rmdir(target), 0);

	assert_int_equal(mkdir(f->pin_dir, 0700), 0);
	assert_int_equal(chown(f->pin_dir, 65534, 65534), 0);
	err = shmrpc_probe_open(&f->p, &o);
	print_message("pin dir of uid 65534: %d (%s)\n", err, shmrpc_probe_pin_error());
	assert_int_equal(err, -EACCES);
	assert_non_null(strstr(shmrpc_probe_pin_error(), "owned by uid 65534"));
	assert_int_equal(dir_entries(f->pin_dir), 0);
	assert_int_equal(rmdir(f->pin_dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_probe_sigkill_reports_once),
		T(test_probe_exit_code),
		T(test_probe_unwatched_silent),
		T(test_probe_watch_dead_is_esrch),
		T(test_probe_watched_next_walks_all),
		T(test_probe_watch_thread_id_refused),
		T(test_probe_thread_exit_not_process_exit),
		T(test_probe_leader_pthread_exit_waits_for_last),
		T(test_probe_thread_execve_no_event),
		T(test_probe_multithread_sigkill_once),
		T(test_probe_tracepoint_sigkill),
		T(test_probe_tracepoint_custom_btf),
		T(test_probe_bpftool_pinned),
		T(test_probe_bpftool_pinned_tracepoint),
		T(test_probe_restart_reuses_pinned_link),
		T(test_probe_restart_self_loaded),
		T(test_probe_two_consumers_split),
		T(test_probe_pin_dir_planted),
		T(test_probe_latency),
#undef T
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, mount_fs, NULL);
}
