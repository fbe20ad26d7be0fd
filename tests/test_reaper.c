// SPDX-License-Identifier: MIT
/*
 * Crash cleanup, every layer, with real processes killed by SIGKILL:
 *
 *  - shmrpc-reaper with the eBPF probe (self-loaded tp_btf, the tracepoint
 *    build, and a probe that bpftool loaded and pinned), and in pidfd mode;
 *  - no reaper: the peers' pidfds (lib/watch.c) and lazy reclaim on join
 *    and lookup;
 *  - the reaper restarting while a node dies, a reused pid, a node dying
 *    before the reaper mirrored it, a node in another pid namespace, new
 *    and removed domains, the registry's reaper status fields;
 *  - the kill-to-cleaned delay of each mode, printed (never asserted).
 *
 * The victim is SIGKILLed idle, blocked in a receive, and blocked in a send
 * on a full ring; the slot and every file of it must go and a peer blocked
 * sending to it must get -EPIPE (tools/reaper/killtime.c does a round).
 * Who cleaned up is checked too: in reaper tests the nodes run with
 * $SHMRPC_WATCH=0 and a 60 s safety timeout, so only the reaper can do it
 * in time, and its log must say it did, and how.
 *
 * BPF needs root: without it (or when the kernel refuses the probe) those
 * tests are skipped with the reason. The bpftool route needs bpftool, the
 * pid namespace test unshare(1).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "killtime.h"

#ifndef SHMRPC_REAPER_BIN
#define SHMRPC_REAPER_BIN "build/tools/shmrpc-reaper"
#endif
#ifndef SHMRPC_BPF_OBJ_DIR
#define SHMRPC_BPF_OBJ_DIR "build/bpf"
#endif

#define CLEAN_MS 5000 /* a reaper or a watcher cleans up well within this */
#define ROUNDS 3      /* killtime rounds per state in a functional test */

static pid_t main_pid;

struct fix {
	struct th_dom d;
	pid_t reaper;
	char log[128];
	char pin[128];
};

/* ------------------------------------------------------------ helpers */

static const char *reaper_bin(void)
{
	const char *s = getenv("SHMRPC_REAPER");

	return s && *s ? s : SHMRPC_REAPER_BIN;
}

static int setup(void **state)
{
	static int seq;
	struct fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	th_dom_init(&f->d);
	f->reaper = -1;
	snprintf(f->log, sizeof(f->log), "/tmp/shmrpc-test-reaper-%d-%d.log", (int)getpid(), seq);
	snprintf(f->pin, sizeof(f->pin), "/sys/fs/bpf/shmrpc-test-reaper-%d-%d", (int)getpid(),
		 seq++);
	unlink(f->log);
	/* Reaper tests: only the reaper may clean up (see the top). */
	setenv("SHMRPC_WATCH", "0", 1);
	*state = f;
	return 0;
}

/* Remove a bpffs pin directory and what is pinned in it. */
static void unpin(const char *dir)
{
	char path[300];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static void print_log(const struct fix *f)
{
	char buf[4096];
	ssize_t n;
	int fd = open(f->log, O_RDONLY);

	if (fd < 0)
		return;
	fprintf(stderr, "---- reaper log %s\n", f->log);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "----\n");
	close(fd);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	int left;

	if (getpid() != main_pid) {
		fprintf(stderr, "BUG: test code runs in child %d\n", (int)getpid());
		abort();
	}
	if (f->reaper > 0)
		shmrpc_kt_reaper_stop(f->reaper, SIGTERM, 5000);
	unpin(f->pin);
	unlink(f->log);
	unsetenv("SHMRPC_WATCH");
	left = th_shm_clean(f->d.name);
	free(f);
	return left == 0 ? 0 : -1;
}

/* Lines of the reaper's log that contain every one of the NULL-terminated
 * strings after @f. */
static int log_count(const struct fix *f, ...)
{
	char buf[1 << 16], *line, *save = NULL;
	const char *want[8];
	ssize_t n;
	int fd = open(f->log, O_RDONLY), count = 0, k, i;
	va_list ap;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	va_start(ap, f);
	for (k = 0; k < 7 && (want[k] = va_arg(ap, const char *)); k++)
		;
	va_end(ap);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		for (i = 0; i < k && strstr(line, want[i]); i++)
			;
		count += i == k;
	}
	return count;
}

/* Wait (sleeping) until the log has @n lines with all of a, b, c. */
static int log_wait_n(const struct fix *f, int n, const char *a, const char *b, const char *c,
		      int ms)
{
	double end = th_now_ms() + ms;

	while (log_count(f, a, b, c, NULL) < n) {
		if (th_now_ms() > end) {
			print_log(f);
			return -1;
		}
		th_sleep_ms(2);
	}
	return 0;
}

static int log_wait(const struct fix *f, const char *a, const char *b, const char *c, int ms)
{
	return log_wait_n(f, 1, a, b, c, ms);
}

/* Wait (sleeping) until nothing of @domain is left in /dev/shm. */
static int shm_wait_empty(const char *domain, int ms)
{
	double end = th_now_ms() + ms;

	while (th_shm_count(domain) != 0) {
		if (th_now_ms() > end)
			return -1;
		th_sleep_ms(1);
	}
	return 0;
}

static bool is_root(void)
{
	return geteuid() == 0;
}

/*
 * Start shmrpc-reaper in @mode on this test's domain (plus NULL-terminated
 * extra arguments). Skips the test if BPF is not allowed here.
 */
static pid_t reaper_start_argv(struct fix *f, const char *mode, const char *const *extra)
{
	const char *argv[24] = { "-v", "--mode", mode, "--domain", f->d.name };
	int n = 5;
	pid_t pid;

	if (strcmp(mode, "pidfd") && !is_root()) {
		print_message("skip: the BPF probe needs root (CAP_BPF + CAP_PERFMON)\n");
		skip();
	}
	while (extra && *extra && n < 23)
		argv[n++] = *extra++;
	argv[n] = NULL;
	pid = shmrpc_kt_reaper_start(reaper_bin(), argv, f->log, 10000);
	if (pid == -ENOTSUP) {
		print_log(f);
		print_message("skip: the kernel refuses the BPF probe here (see the log)\n");
		skip();
	}
	if (pid < 0)
		print_log(f);
	assert_true(pid > 0);
	return pid;
}

static void reaper_start(struct fix *f, const char *mode, const char *pin)
{
	const char *nopin[] = { "--no-pin", NULL }, *withpin[] = { "--pin-dir", pin, NULL };

	f->reaper = reaper_start_argv(f, mode, pin ? withpin : nopin);
}

static int reaper_stop(struct fix *f, int sig)
{
	int st = shmrpc_kt_reaper_stop(f->reaper, sig, 5000);

	f->reaper = -1;
	return st;
}

/* A node in a child process: opens @name (and @name2 if set), connects to
 * @peer if set, signals, and waits to be killed. */
struct holder {
	const struct th_dom *d;
	const char *name, *name2, *peer;
	struct th_gate ready;
	pid_t pid;
};

static int holder_main(void *arg)
{
	struct holder *h = arg;
	struct shmrpc_node *n, *n2 = NULL;

	CHILD_CHECK_RC(shmrpc_open(h->name, &h->d->opts, &n), 0);
	if (h->name2)
		CHILD_CHECK_RC(shmrpc_open(h->name2, &h->d->opts, &n2), 0);
	if (h->peer)
		CHILD_CHECK_RC(shmrpc_send(n, h->peer, "hello", 5, 5000), 0);
	th_gate_open(&h->ready);
	for (;;)
		pause();
	return 0;
}

static void holder_start2(struct holder *h, const struct th_dom *d, const char *name,
			  const char *name2, const char *peer)
{
	h->d = d;
	h->name = name;
	h->name2 = name2;
	h->peer = peer;
	th_gate_init(&h->ready);
	h->pid = th_fork(holder_main, h);
	assert_true(h->pid > 0);
	assert_int_equal(th_gate_wait(&h->ready, 10000), 0);
}

static void holder_start(struct holder *h, const struct th_dom *d, const char *name,
			 const char *peer)
{
	holder_start2(h, d, name, NULL, peer);
}

/* SIGKILL it and reap it. */
static void holder_kill(struct holder *h)
{
	assert_int_equal(kill(h->pid, SIGKILL), 0);
	assert_int_equal(th_wait(h->pid, 10000), 128 + SIGKILL);
	th_gate_close(&h->ready);
}

static struct shmrpc_kt_obs *obs_open(const struct fix *f)
{
	struct shmrpc_kt_obs *o = NULL;

	assert_int_equal(shmrpc_kt_obs_open(&o, f->d.name), 0);
	return o;
}

static const char *const state_names[] = { "idle", "mid-receive", "mid-send" };

/*
 * ROUNDS kills of a victim in each state; the reaper (or the peers) must
 * clean each up, and kt-p must get -EPIPE. Prints the delays.
 */
static void kill_states(struct fix *f, const char *label, bool peer_watch, bool lazy)
{
	struct shmrpc_kt_round rd[ROUNDS];
	struct shmrpc_kt_opts o = { .sz = sizeof(o),
				    .domain = f->d.name,
				    .rounds = ROUNDS,
				    .peer_watch = peer_watch,
				    .lazy_join = lazy };
	int st, i, rc;

	for (st = SHMRPC_KT_IDLE; st <= SHMRPC_KT_SEND; st++) {
		o.state = st;
		rc = shmrpc_kt_run(&o, rd, NULL);
		if (rc)
			print_log(f);
		assert_int_equal(rc, 0);
		for (i = 0; i < ROUNDS; i++) {
			print_message("%s, victim %s: kill -> cleaned %.0f us", label,
				      state_names[st], rd[i].clean_us);
			if (rd[i].epipe_us >= 0)
				print_message(", blocked peer -EPIPE %.0f us", rd[i].epipe_us);
			print_message("\n");
		}
	}
	assert_int_equal(th_shm_count(f->d.name), 0);
}

/* ====================================================== kill, each mode */

static void test_bpf_kill_idle_recv_send(void **state)
{
	struct fix *f = *state;

	reaper_start(f, "bpf", NULL);
	kill_states(f, "bpf reaper", false, false);
	/* Every victim, each reaped by the reaper on the probe's event. */
	assert_int_equal(log_wait_n(f, 3 * ROUNDS, "reaped", "node=kt-v", "via=bpf", CLEAN_MS), 0);
	assert_int_equal(log_count(f, "reaped", "node=kt-v", "via=bpf", "exit=SIGKILL", NULL),
			 3 * ROUNDS);
	assert_int_equal(log_count(f, "reaped", "via=", NULL), 3 * ROUNDS);
}

static void test_pidfd_kill_idle_recv_send(void **state)
{
	struct fix *f = *state;

	reaper_start(f, "pidfd", NULL);
	kill_states(f, "pidfd reaper", false, false);
	assert_int_equal(log_wait_n(f, 3 * ROUNDS, "reaped", "node=kt-v", "via=pidfd", CLEAN_MS),
			 0);
	assert_int_equal(log_count(f, "reaped", "node=kt-v", "via=pidfd", NULL), 3 * ROUNDS);
	assert_int_equal(log_count(f, "reaped", "via=", NULL), 3 * ROUNDS);
}

/* No reaper: kt-p's watcher (pidfd of kt-v) reclaims it. */
static void test_peers_kill_idle_recv_send(void **state)
{
	kill_states(*state, "peers only", true, false);
}

/* No reaper, no watching peer: the next join cleans up (lazy reclaim). */
static void test_lazy_join_kill_idle_recv_send(void **state)
{
	kill_states(*state, "lazy (a join)", false, true);
}

/* ...and without watching peers, nobody does until a shmrpc_kt_run times out. */
static void test_nobody_cleans_is_detected(void **state)
{
	struct fix *f = *state;
	struct shmrpc_kt_opts o = { .sz = sizeof(o),
				    .domain = f->d.name,
				    .rounds = 1,
				    .state = SHMRPC_KT_IDLE,
				    .timeout_ms = 300 };

	/* The check that makes the tests above able to fail. */
	assert_int_equal(shmrpc_kt_run(&o, NULL, NULL), -ETIMEDOUT);
	assert_int_equal(th_shm_count(f->d.name), 0); /* its sweep at the end */
}

/* ====================================================== dead sender */

#define DRAIN_N 50

struct sender {
	const struct th_dom *d;
	struct th_gate opened, ready;
};

/* "v": one message to p, wait until p opened the ring, DRAIN_N more. */
static int sender_main(void *arg)
{
	struct sender *s = arg;
	struct shmrpc_node *v;
	uint32_t i;

	CHILD_CHECK_RC(shmrpc_open("v", &s->d->opts, &v), 0);
	CHILD_CHECK_RC(shmrpc_send(v, "p", &(uint32_t){ 0 }, 4, 5000), 0);
	CHILD_CHECK(th_gate_wait(&s->opened, 10000) == 0);
	for (i = 1; i <= DRAIN_N; i++)
		CHILD_CHECK_RC(shmrpc_send(v, "p", &i, sizeof(i), 5000), 0);
	th_gate_open(&s->ready);
	for (;;)
		pause();
}

/*
 * A sender dies with messages queued: the receiver still gets every one, in
 * order, after the cleanup, and then forgets the ring (none open, no file).
 */
static void drain_case(struct fix *f, const char *mode)
{
	struct sender snd = { .d = &f->d };
	struct shmrpc_node *p;
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
	struct shmrpc_stats st;
	uint32_t m, i;
	pid_t pid;

	if (!mode)
		unsetenv("SHMRPC_WATCH"); /* p's watcher is the one that must find out */
	p = th_open(&f->d, "p");
	assert_non_null(p);
	if (mode)
		reaper_start(f, mode, NULL);
	th_gate_init(&snd.opened);
	th_gate_init(&snd.ready);
	pid = th_fork(sender_main, &snd);
	assert_int_equal(shmrpc_recv(p, &m, sizeof(m), NULL, 5000), 4);
	assert_int_equal(m, 0); /* the ring is open on our side now */
	th_gate_open(&snd.opened);
	assert_int_equal(th_gate_wait(&snd.ready, 10000), 0);
	o = obs_open(f);
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
	for (i = 1; i <= DRAIN_N; i++) {
		assert_int_equal(shmrpc_recv(p, &m, sizeof(m), NULL, 1000), 4);
		assert_int_equal(m, i);
	}
	assert_int_equal(shmrpc_recv(p, &m, sizeof(m), NULL, 0), -EAGAIN);
	assert_int_equal(shmrpc_stats(p, &st), 0);
	assert_int_equal(st.rings_in, 0); /* forgotten */
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	shmrpc_kt_obs_close(o);
	th_gate_close(&snd.opened);
	th_gate_close(&snd.ready);
	shmrpc_close(p);
	if (mode) {
		assert_int_equal(reaper_stop(f, SIGTERM), 0);
		unlink(f->log);
	}
	setenv("SHMRPC_WATCH", "0", 1);
}

static void test_dead_sender_drained_then_forgotten(void **state)
{
	struct fix *f = *state;

	drain_case(f, NULL);
	drain_case(f, "pidfd");
	if (is_root())
		drain_case(f, "bpf");
}

/* A child forked from a process whose watcher watches v: it joins, connects
 * to v (a watcher of its own), leaves and exits. */
static int forked_peer_main(void *arg)
{
	const struct th_dom *d = arg;
	struct shmrpc_node *c;

	CHILD_CHECK_RC(shmrpc_open("c", &d->opts, &c), 0);
	CHILD_CHECK_RC(shmrpc_send(c, "v", "c", 1, 5000), 0);
	shmrpc_close(c);
	return 0;
}

/*
 * The peer watcher's epoll set is shared with a forked child (the same open
 * file): the child must leave the parent's entries alone. p watches v; a
 * child of p's process joins, watches v too, leaves, exits; then v dies, and
 * p's watcher alone (no reaper, no join) must clean it up.
 */
static void test_watcher_survives_fork(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *p;
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
	struct holder h;

	unsetenv("SHMRPC_WATCH"); /* p's watcher is the one that must find out */
	p = th_open(&f->d, "p");
	assert_non_null(p);
	holder_start(&h, &f->d, "v", NULL);
	assert_int_equal(shmrpc_send(p, "v", "p", 1, 5000), 0); /* p watches v now */
	assert_int_equal(th_wait(th_fork(forked_peer_main, (void *)&f->d), 10000), 0);
	o = obs_open(f);
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	holder_kill(&h);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
	assert_int_equal(shmrpc_send(p, "v", "p", 1, 0), -EPIPE);
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
	setenv("SHMRPC_WATCH", "0", 1);
}

/* ====================================================== lazy reclaim */

static void test_lazy_join_reclaims_dead_slot(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *p = th_open(&f->d, "p"), *w;
	struct shmrpc_kt_obs *o = obs_open(f);
	struct shmrpc_kt_id id;
	struct holder h;

	assert_non_null(p);
	holder_start(&h, &f->d, "v", "p"); /* a ring v -> p, never opened by p */
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	holder_kill(&h);
	th_sleep_ms(50);
	/* No reaper, no watcher: still there. */
	assert_int_equal(shmrpc_kt_obs_holds(o, &id), 1);
	assert_true(shmrpc_kt_obs_files(o, &id) >= 2);
	/* Another name joins: the dead slot goes with its files. */
	w = th_open(&f->d, "w");
	assert_non_null(w);
	assert_int_equal(shmrpc_kt_obs_holds(o, &id), 0);
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	shmrpc_kt_obs_close(o);
	shmrpc_close(w);
	shmrpc_close(p);
}

static void test_lazy_lookup_reclaims_dead_slot(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *p = th_open(&f->d, "p");
	struct shmrpc_kt_obs *o = obs_open(f);
	struct shmrpc_kt_id id;
	struct holder h;

	assert_non_null(p);
	holder_start(&h, &f->d, "v", "p");
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	holder_kill(&h);
	assert_int_equal(shmrpc_kt_obs_holds(o, &id), 1);
	assert_int_equal(shmrpc_is_local(p, "v"), 0);
	assert_int_equal(shmrpc_kt_obs_holds(o, &id), 0);
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
}

/* ====================================================== bpftool, tracepoint */

static int run_cmd(const char *const argv[])
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = th_fork_raw();
	if (pid == 0) {
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *bpftool(void)
{
	const char *s = getenv("BPFTOOL");

	return s && *s ? s : "bpftool";
}

/* bpftool 7.1 loads and pins, the reaper attaches and pins the link. */
static void bpftool_case(struct fix *f, const char *obj_name, const char *probe)
{
	const char *pinned[] = { "--probe", "pinned", "--pin-dir", f->pin, NULL };
	const char *version[] = { bpftool(), "version", NULL };
	char obj[256], link[300];
	struct stat st;

	if (!is_root()) {
		print_message("skip: bpftool prog loadall needs root\n");
		skip();
	}
	if (run_cmd(version) != 0) {
		print_message("skip: %s not found\n", bpftool());
		skip();
	}
	snprintf(obj, sizeof(obj), "%s/%s", SHMRPC_BPF_OBJ_DIR, obj_name);
	unpin(f->pin);
	{
		const char *load[] = { bpftool(), "prog",    "loadall", obj,
				       f->pin,	  "pinmaps", f->pin,	NULL };

		assert_int_equal(run_cmd(load), 0);
	}
	snprintf(link, sizeof(link), "%s/link", f->pin);
	assert_int_not_equal(stat(link, &st), 0); /* bpftool 7.1 does not attach */
	f->reaper = reaper_start_argv(f, "bpf", pinned);
	assert_int_equal(log_count(f, "watching with bpf", "probe=pinned", NULL), 1);
	assert_int_equal(stat(link, &st), 0); /* the reaper attached and pinned it */
	kill_states(f, probe, false, false);
	assert_int_equal(log_wait_n(f, 3 * ROUNDS, "reaped", "node=kt-v", "via=bpf", CLEAN_MS), 0);
	/* Stopped, the reaper leaves the probe attached for its next run. */
	assert_int_equal(reaper_stop(f, SIGTERM), 0);
	assert_int_equal(stat(link, &st), 0);
}

static void test_bpftool_route_tp_btf(void **state)
{
	bpftool_case(*state, "shmrpc_exit.bpf.o", "bpftool tp_btf");
}

static void test_bpftool_route_tracepoint(void **state)
{
	bpftool_case(*state, "shmrpc_exit_tp.bpf.o", "bpftool tracepoint");
}

/* The tracepoint build, loaded and attached by the reaper itself. */
static void test_tracepoint_build(void **state)
{
	struct fix *f = *state;
	const char *tp[] = { "--no-pin", "--probe", "tracepoint", NULL };

	f->reaper = reaper_start_argv(f, "bpf", tp);
	assert_int_equal(log_count(f, "watching with bpf", "probe=tracepoint", NULL), 1);
	kill_states(f, "tracepoint build", false, false);
	assert_int_equal(log_wait_n(f, 3 * ROUNDS, "reaped", "node=kt-v", "via=bpf", CLEAN_MS), 0);
}

/* ====================================================== restart */

/*
 * The reaper goes down (@sig), a node dies meanwhile, a new reaper starts:
 * the death is not lost. With a pinned probe the event waited in its ring
 * buffer; either way the start-up reconcile finds it.
 */
static void restart_case(struct fix *f, const char *mode, int sig, bool kill_during_start)
{
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
	struct holder h;
	pid_t rpid = -1;

	reaper_start(f, mode, strcmp(mode, "pidfd") ? f->pin : NULL);
	holder_start(&h, &f->d, "v", NULL);
	o = obs_open(f);
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	assert_int_equal(log_wait(f, ": watch ", "node=v", "", CLEAN_MS), 0);
	assert_int_equal(reaper_stop(f, sig), sig == SIGKILL ? SIGKILL : 0);
	if (kill_during_start) {
		/* the new reaper races the death */
		const char *argv[] = { "-v",	  "--mode",    mode,   "--domain",
				       f->d.name, "--pin-dir", f->pin, NULL };

		if (!strcmp(mode, "pidfd"))
			argv[5] = "--no-pin", argv[6] = NULL;
		kill(h.pid, SIGKILL);
		rpid = shmrpc_kt_reaper_start(reaper_bin(), argv, f->log, 10000);
		assert_true(rpid > 0);
		f->reaper = rpid;
		assert_int_equal(th_wait(h.pid, 10000), 128 + SIGKILL);
	} else {
		holder_kill(&h);
		th_sleep_ms(50);
		assert_int_equal(shmrpc_kt_obs_holds(o, &id), 1); /* nobody else cleans */
		reaper_start(f, mode, strcmp(mode, "pidfd") ? f->pin : NULL);
	}
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	assert_int_equal(log_wait(f, "reaped", "node=v", "", CLEAN_MS), 0);
	assert_int_equal(log_count(f, "reaped", "node=v", NULL), 1);
	shmrpc_kt_obs_close(o);
	assert_int_equal(reaper_stop(f, SIGTERM), 0);
	unlink(f->log);
}

static void test_restart_bpf_pinned_loses_no_death(void **state)
{
	struct fix *f = *state;

	restart_case(f, "bpf", SIGKILL, false);
	/* the second run took the pinned probe over */
	restart_case(f, "bpf", SIGTERM, false);
	restart_case(f, "bpf", SIGTERM, true);
}

static void test_restart_pidfd_loses_no_death(void **state)
{
	struct fix *f = *state;

	restart_case(f, "pidfd", SIGKILL, false);
	restart_case(f, "pidfd", SIGTERM, true);
}

/* Two reapers on one pinned probe would split its events: the second refuses. */
static void test_second_reaper_on_same_pins_refused(void **state)
{
	struct fix *f = *state;
	const char *argv[] = { "--mode", "bpf", "--domain", f->d.name, "--pin-dir", f->pin, NULL };

	reaper_start(f, "bpf", f->pin);
	assert_int_equal(shmrpc_kt_reaper_start(reaper_bin(), argv, f->log, 10000), -ECHILD);
	assert_int_equal(log_count(f, "another shmrpc-reaper consumes the probe", NULL), 1);
}

/* ====================================================== pid reuse */

/* Field 22 of /proc/self/stat, parsed here independently of lib/proc.c. */
static uint64_t my_start_time(void)
{
	char buf[1024], *p;
	unsigned long long v = 0;
	int fd = open("/proc/self/stat", O_RDONLY), i;
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')') + 2; /* field 3 */
	for (i = 3; i < 22; i++)
		p = strchr(p, ' ') + 1;
	sscanf(p, "%llu", &v);
	return v;
}

/* The slot's pid + start time name the process: what the reaper matches an
 * exit event against (and the pid-reuse guard). */
static void test_slot_start_time_is_procs(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *p = th_open(&f->d, "p");
	struct shmrpc_kt_obs *o = obs_open(f);
	struct shmrpc_kt_id id;

	assert_non_null(p);
	assert_int_equal(shmrpc_kt_obs_find(o, "p", &id), 0);
	assert_int_equal(id.pid, getpid());
	assert_true(id.start_time > 0);
	assert_int_equal(id.start_time, my_start_time());
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
}

/* Make the next fork in our pid namespace get @pid. Root only. */
static pid_t fork_with_pid(pid_t want)
{
	char buf[32];
	pid_t pid;
	int fd, i;

	for (i = 0; i < 200; i++) { /* a loaded machine forks a lot */
		fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
		if (fd < 0)
			return -1;
		snprintf(buf, sizeof(buf), "%d", (int)want - 1);
		if (write(fd, buf, strlen(buf)) < 0) {
			close(fd);
			return -1;
		}
		close(fd);
		fflush(NULL);
		pid = th_fork_raw();
		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid == want)
			return pid;
		kill(pid, SIGKILL); /* somebody else forked first: again */
		waitpid(pid, NULL, 0);
	}
	return -1;
}

/*
 * The dead node's pid now belongs to an unrelated, live process: the reaper
 * (started after the death), and a lookup without reaper, must still see
 * the node as dead, and must leave the new process alone.
 */
static void reuse_case(struct fix *f, const char *mode)
{
	struct shmrpc_node *p = NULL;
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
	struct holder h;
	pid_t other;

	holder_start(&h, &f->d, "v", NULL);
	o = obs_open(f);
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	holder_kill(&h);
	other = fork_with_pid(h.pid);
	if (other < 0) {
		shmrpc_kt_obs_close(o);
		print_message("skip: could not make a process reuse pid %d\n", (int)h.pid);
		/* the dead v's files: a join reclaims them, the last out the
		 * domain */
		p = th_open(&f->d, "p");
		shmrpc_close(p);
		skip();
	}
	assert_int_equal(other, id.pid); /* the slot's pid is alive again */
	if (mode) {
		reaper_start(f, mode, NULL);
		assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
		assert_int_equal(log_wait(f, "reaped", "node=v", "", CLEAN_MS), 0);
		assert_int_equal(reaper_stop(f, SIGTERM), 0);
		unlink(f->log);
	} else {
		p = th_open(&f->d, "p"); /* its join reclaims v */
		assert_non_null(p);
		assert_int_equal(shmrpc_kt_obs_holds(o, &id), 0);
	}
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	assert_int_equal(kill(other, 0), 0); /* untouched */
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
}

static void test_pid_reuse_not_mistaken_for_node(void **state)
{
	struct fix *f = *state;

	if (!is_root()) {
		print_message("skip: forcing a pid to be reused needs root (ns_last_pid)\n");
		skip();
	}
	reuse_case(f, NULL);
	reuse_case(f, "pidfd");
	reuse_case(f, "bpf");
}

/* ====================================================== dies before mirrored */

static void unmirrored_case(struct fix *f, const char *mode)
{
	struct shmrpc_node *p = th_open(&f->d, "p"); /* the reaper follows the domain */
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
	struct holder h;

	assert_non_null(p);
	reaper_start(f, mode, NULL);
	assert_int_equal(log_wait(f, ": watch ", "node=p", "", CLEAN_MS), 0);
	assert_int_equal(kill(f->reaper, SIGSTOP), 0);
	holder_start(&h, &f->d, "v", NULL); /* joins while the reaper is stopped */
	o = obs_open(f);
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	holder_kill(&h);
	assert_int_equal(kill(f->reaper, SIGCONT), 0);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	/* found dead by the lock check after the watch, not by an event */
	assert_int_equal(log_wait(f, "reaped", "node=v", "via=check", CLEAN_MS), 0);
	shmrpc_kt_obs_close(o);
	assert_int_equal(reaper_stop(f, SIGTERM), 0);
	unlink(f->log);
	shmrpc_close(p);
}

static void test_node_dies_before_mirrored(void **state)
{
	unmirrored_case(*state, "pidfd");
	unmirrored_case(*state, "bpf");
}

/* ====================================================== pid namespaces */

/* Helper mode of this binary (run under unshare): be node argv[3] of domain
 * argv[2], write 'r' to fd argv[4], wait to be killed. */
static int node_main(char **argv)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = argv[2] };
	struct shmrpc_node *n;
	int fd = atoi(argv[4]);

	if (shmrpc_open(argv[3], &o, &n))
		return 1;
	if (write(fd, "r", 1) != 1)
		return 1;
	close(fd);
	for (;;)
		pause();
}

/* The one child of @pid (unshare --fork's), or -1. */
static pid_t only_child(pid_t pid)
{
	char path[64], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (pid_t)atoi(buf) : -1;
}

struct container {
	pid_t unshare; /* our child: unshare(1) */
	pid_t node;    /* its child, pid 1 of the new namespace: the node */
};

/* Run node @name in a new pid namespace that shares our /dev/shm. */
static int container_start(struct container *c, const struct fix *f, const char *name)
{
	char fdarg[16], exe[PATH_MAX];
	struct th_gate ready;
	ssize_t n;
	int rc;

	if (access("/usr/bin/unshare", X_OK) && access("/bin/unshare", X_OK))
		return -ENOENT;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	th_gate_init(&ready);
	snprintf(fdarg, sizeof(fdarg), "%d", ready.fd[1]);
	fflush(NULL);
	c->unshare = th_fork_raw();
	if (c->unshare == 0) {
		/* --kill-child: the node goes with unshare, which goes with us */
		execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", exe,
		       "--node", f->d.name, name, fdarg, (char *)NULL);
		_exit(127);
	}
	rc = th_gate_wait(&ready, 10000);
	th_gate_close(&ready);
	if (rc)
		return -ETIMEDOUT;
	c->node = only_child(c->unshare);
	return c->node > 0 ? 0 : -ESRCH;
}

static void container_kill(struct container *c)
{
	kill(c->node, SIGKILL);
	/* unshare --fork exits with its child's status (SIGKILL: 128 + 9 or the signal) */
	th_wait(c->unshare, 10000);
}

/*
 * A node in another pid namespace records pid 1 (its own namespace's);
 * whoever watches it must find its real process, never take our pid 1
 * (init) or a missing pid for it, and clean up when it dies.
 */
static void container_case(struct fix *f, const char *mode)
{
	struct shmrpc_node *p = th_open(&f->d, "p");
	struct shmrpc_kt_obs *o = obs_open(f);
	struct container c = { -1, -1 };
	struct shmrpc_kt_id id;
	char gpid[32];
	int rc;

	assert_non_null(p);
	if (mode)
		reaper_start(f, mode, NULL);
	else
		unsetenv("SHMRPC_WATCH"); /* p's watcher is the one that must find out */
	rc = container_start(&c, f, "c");
	if (rc == -ENOENT) {
		print_message("skip: unshare(1) not found\n");
		skip();
	}
	assert_int_equal(rc, 0);
	assert_int_equal(shmrpc_kt_obs_find(o, "c", &id), 0);
	assert_int_equal(id.pid, 1); /* in its own namespace */
	assert_int_equal(shmrpc_send(p, "c", "x", 1, 1000), 0);
	snprintf(gpid, sizeof(gpid), "gpid=%d ", (int)c.node);
	if (mode) {
		/* watched as its real process, by the probe or a pidfd */
		assert_int_equal(log_wait(f, ": watch ", "node=c", gpid, CLEAN_MS), 0);
		assert_int_equal(log_count(f, ": watch ", "node=c", "via=lock", NULL), 0);
	}
	th_sleep_ms(300); /* more than the watcher's lock polling: still alive */
	assert_int_equal(shmrpc_is_local(p, "c"), 1);
	assert_int_equal(shmrpc_kt_obs_holds(o, &id), 1);
	container_kill(&c);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
	assert_int_equal(shmrpc_kt_obs_files(o, &id), 0);
	assert_int_equal(shmrpc_send(p, "c", "x", 1, 0), -EPIPE);
	if (mode) {
		snprintf(gpid, sizeof(gpid), "via=%s", mode);
		assert_int_equal(log_wait(f, "reaped domain", "gen=1 pid=1 exit=", gpid, CLEAN_MS),
				 0);
		assert_int_equal(log_count(f, "reaped", "node=c", NULL), 1);
		assert_int_equal(reaper_stop(f, SIGTERM), 0);
		unlink(f->log);
	}
	setenv("SHMRPC_WATCH", "0", 1);
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
}

static void test_pidns_node_in_container(void **state)
{
	struct fix *f = *state;

	if (!is_root()) {
		print_message("skip: a new pid namespace needs root\n");
		skip();
	}
	container_case(f, "bpf");
	container_case(f, "pidfd");
	container_case(f, NULL); /* peers: by its liveness lock */
}

/* ====================================================== domains */

/* Domains that do not exist yet when the reaper starts, that end (the last
 * node leaves or is reaped) and come back with a new registry. */
static void test_domains_appear_and_go(void **state)
{
	struct fix *f = *state;
	struct th_dom d2;
	const char *argv[] = { "--no-pin", "--domain", NULL, NULL };
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
	struct shmrpc_node *n;
	struct holder h;
	int round;

	th_dom_init(&d2);
	argv[2] = d2.name;
	f->reaper = reaper_start_argv(f, "pidfd", argv);
	for (round = 0; round < 2; round++) {
		/* created after the start: found through inotify */
		holder_start(&h, &f->d, "v", NULL);
		assert_int_equal(
			log_wait_n(f, round + 1, ": watch ", "node=v", f->d.name, CLEAN_MS), 0);
		o = obs_open(f);
		assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
		holder_kill(&h);
		assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
		shmrpc_kt_obs_close(o);
		/* the last node reaped: the registry too (in the same hold of
		 * the lock, just after the slot's free woke us) */
		assert_int_equal(shm_wait_empty(f->d.name, CLEAN_MS), 0);
		/* a node of the second domain joins and leaves: its registry
		 * goes with it, and the reaper lets go of it */
		n = th_open(&d2, "w");
		assert_non_null(n);
		assert_int_equal(log_wait_n(f, round + 1, ": watch ", "node=w", d2.name, CLEAN_MS),
				 0);
		shmrpc_close(n);
		assert_int_equal(th_shm_count(d2.name), 0);
	}
	assert_int_equal(log_wait_n(f, 2, "domain-removed", d2.name, "", CLEAN_MS), 0);
	if (log_count(f, "domain-retired", f->d.name, "last-node-reaped", NULL) != 2)
		print_log(f);
	if (log_count(f, "reaped", "node=v", "via=pidfd", NULL) != 2)
		print_log(f);
	assert_int_equal(log_wait_n(f, 2, "domain-retired", f->d.name, "last-node-reaped", 1000),
			 0);
	assert_int_equal(log_count(f, "reaped", "node=v", "via=pidfd", NULL), 2);
	assert_int_equal(log_count(f, "reaped", "node=w", NULL), 0); /* it left by itself */
}

/* One process with two nodes: its death takes both. */
static void test_two_nodes_one_process(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *p = th_open(&f->d, "p");
	struct shmrpc_kt_obs *o = obs_open(f);
	struct shmrpc_kt_id a, b;
	struct holder h;

	assert_non_null(p);
	reaper_start(f, is_root() ? "bpf" : "pidfd", NULL);
	holder_start2(&h, &f->d, "v1", "v2", NULL);
	assert_int_equal(shmrpc_kt_obs_find(o, "v1", &a), 0);
	assert_int_equal(shmrpc_kt_obs_find(o, "v2", &b), 0);
	assert_int_equal(log_wait(f, ": watch ", "node=v2", "", CLEAN_MS), 0);
	holder_kill(&h);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &a, CLEAN_MS, NULL), 0);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &b, CLEAN_MS, NULL), 0);
	assert_int_equal(shmrpc_kt_obs_files(o, &a) + shmrpc_kt_obs_files(o, &b), 0);
	/* logged after the reclaim that woke us */
	assert_int_equal(log_wait_n(f, 2, "reaped", "node=v", "", CLEAN_MS), 0);
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
}

/* What shmrpc-top shows: who reaps, how, alive since when, how many. */
static void test_status_fields(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *p = th_open(&f->d, "p");
	struct shmrpc_kt_obs *o = obs_open(f);
	struct shmrpc_kt_reaper st, st2;
	struct shmrpc_kt_id id;
	struct holder h;
	int i;

	assert_non_null(p);
	shmrpc_kt_obs_reaper(o, &st);
	assert_int_equal(st.pid, 0);
	reaper_start(f, "pidfd", NULL);
	assert_int_equal(log_wait(f, "domain-added", f->d.name, "", CLEAN_MS), 0);
	shmrpc_kt_obs_reaper(o, &st);
	assert_int_equal(st.pid, (uint32_t)f->reaper);
	assert_int_equal(st.mode, 2);
	assert_int_equal(st.reaped, 0);
	for (i = 0; i < 30; i++) { /* it beats at least every 2 s */
		shmrpc_kt_obs_reaper(o, &st2);
		if (st2.beat_s > st.beat_s)
			break;
		th_sleep_ms(100);
	}
	assert_true(st2.beat_s > st.beat_s);
	holder_start(&h, &f->d, "v", NULL);
	assert_int_equal(shmrpc_kt_obs_find(o, "v", &id), 0);
	assert_int_equal(log_wait(f, ": watch ", "node=v", "", CLEAN_MS), 0);
	holder_kill(&h);
	assert_int_equal(shmrpc_kt_obs_wait_gone(o, &id, CLEAN_MS, NULL), 0);
	/* counted just after the reclaim that woke us */
	assert_int_equal(log_wait(f, "reaped", "node=v", "", CLEAN_MS), 0);
	shmrpc_kt_obs_reaper(o, &st);
	assert_int_equal(st.reaped, 1);
	assert_int_equal(reaper_stop(f, SIGTERM), 0);
	shmrpc_kt_obs_reaper(o, &st);
	assert_int_equal(st.pid, 0); /* a clean stop says nobody reaps now */
	assert_int_equal(st.mode, 0);
	assert_int_equal(st.reaped, 1);
	shmrpc_kt_obs_close(o);
	shmrpc_close(p);
}

/* ====================================================== delays */

static void delay_mode(struct fix *f, const char *label, const char *mode)
{
	struct shmrpc_kt_opts o = { .sz = sizeof(o),
				    .domain = f->d.name,
				    .rounds = 90,
				    .state = SHMRPC_KT_ROTATE,
				    .peer_watch = !mode,
				    .settle_ms = 10 };
	struct shmrpc_kt_result res;
	int rc;

	if (mode && strcmp(mode, "pidfd") && !is_root()) {
		print_message("%-13s skipped: BPF needs root\n", label);
		return;
	}
	if (mode)
		reaper_start(f, mode, NULL);
	rc = shmrpc_kt_run(&o, NULL, &res);
	if (rc)
		print_log(f);
	assert_int_equal(rc, 0);
	print_message("%-13s kill->cleaned median %6.0f us  p99 %6.0f us  (min %.0f, max %.0f)"
		      "   blocked peer -EPIPE median %6.0f us  p99 %6.0f us  [%d kills]\n",
		      label, res.clean_median_us, res.clean_p99_us, res.clean_min_us,
		      res.clean_max_us, res.epipe_median_us, res.epipe_p99_us, res.rounds);
	if (mode) {
		assert_int_equal(reaper_stop(f, SIGTERM), 0);
		unlink(f->log);
	}
}

/* Printed for docs/reaper.md and the "done when"; not asserted. */
static void test_delay_each_mode(void **state)
{
	struct fix *f = *state;

	delay_mode(f, "bpf reaper", "bpf");
	delay_mode(f, "pidfd reaper", "pidfd");
	delay_mode(f, "peers only", NULL);
}

/* Group setup: bpffs for the pins, tracefs for the tracepoint build (root). */
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
	if (!is_root())
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

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_bpf_kill_idle_recv_send),
		T(test_pidfd_kill_idle_recv_send),
		T(test_peers_kill_idle_recv_send),
		T(test_lazy_join_kill_idle_recv_send),
		T(test_dead_sender_drained_then_forgotten),
		T(test_watcher_survives_fork),
		T(test_nobody_cleans_is_detected),
		T(test_lazy_join_reclaims_dead_slot),
		T(test_lazy_lookup_reclaims_dead_slot),
		T(test_bpftool_route_tp_btf),
		T(test_bpftool_route_tracepoint),
		T(test_tracepoint_build),
		T(test_restart_bpf_pinned_loses_no_death),
		T(test_restart_pidfd_loses_no_death),
		T(test_second_reaper_on_same_pins_refused),
		T(test_slot_start_time_is_procs),
		T(test_pid_reuse_not_mistaken_for_node),
		T(test_node_dies_before_mirrored),
		T(test_pidns_node_in_container),
		T(test_domains_appear_and_go),
		T(test_two_nodes_one_process),
		T(test_status_fields),
		T(test_delay_each_mode),
#undef T
	};

	if (argc == 5 && !strcmp(argv[1], "--node"))
		return node_main(argv);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	main_pid = getpid();
	/* Every node here sleeps at most a minute before re-checking its
	 * peers: cleanup must come from the mechanism under test. */
	setenv("SHMRPC_SAFETY_MS", "60000", 1);
	return cmocka_run_group_tests(tests, mount_fs, NULL);
}
