// SPDX-License-Identifier: MIT
/*
 * shmrpc-reaper's command line (issue 13, section 4): every bad option is
 * one line on stderr naming it and its value, a hint, exit status 2, and
 * nothing else (no usage dump); contradictions are refused; a probe route,
 * BTF file or pin directory the user asked for works or the reaper exits 3
 * with the reason, while the default falls back and says why; --help and
 * --version go to stdout with status 0.
 *
 * And --once, the clean-up command for a machine without the daemon: nodes
 * SIGKILLed with no peer and no reaper are reclaimed and their domain
 * retired, a domain that merely lost one node keeps its live nodes (files,
 * inodes, registry: untouched) and loses the dead one, an unused registry
 * is retired; a held registry lock is a failure (exit 1) and is reported;
 * a FIFO at a registry name is refused without blocking; run by another
 * user, root's domains are reported as not theirs and left alone.
 *
 * As root, the whole program runs in a mount namespace of its own with a
 * fresh tmpfs on /dev/shm, so that --once without --domain (every domain)
 * meets only this test's domains; otherwise those tests are skipped and
 * the rest use --domain in the shared /dev/shm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "names.h"
#include "reclaim.h"
#include "regfile.h"
#include "registry.h"

#ifndef SHMRPC_REAPER_BIN
#define SHMRPC_REAPER_BIN "build/tools/shmrpc-reaper"
#endif
#define NOBODY 65534
#define BPF_FS_MAGIC 0xcafe4a11

static bool private_shm; /* /dev/shm is ours alone (root) */

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ running it */

struct run {
	int status; /* exit code, 128 + signal, -1: timed out */
	char out[8192], err[32768];
};

/* The file's text (up to @len - 1 bytes) in @buf. */
static void peek(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* The same, then the file goes. */
static void slurp(const char *path, char *buf, size_t len)
{
	peek(path, buf, len);
	unlink(path);
}

/* Files for the child's stdout and stderr. */
static void out_paths(char *out, char *err, size_t len)
{
	static int seq;

	snprintf(out, len, "/tmp/shmrpc-test-cli-%d-%d.out", (int)getpid(), seq);
	snprintf(err, len, "/tmp/shmrpc-test-cli-%d-%d.err", (int)getpid(), seq++);
}

/* Fork shmrpc-reaper with @args (NULL-terminated), as @uid (0: as we are),
 * its stdout and stderr to @out and @err. */
static pid_t spawn(const char *const *args, uid_t uid, const char *out, const char *err)
{
	const char *bin = getenv("SHMRPC_REAPER"), *argv[32];
	int n = 1, fo, fe;
	pid_t pid;

	argv[0] = bin && *bin ? bin : SHMRPC_REAPER_BIN;
	while (args && *args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = th_fork_raw();
	if (pid == 0) {
		fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		fe = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(126);
		if (uid &&
		    (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	assert_true(pid > 0);
	return pid;
}

/* Run it to the end (at most @ms); its status and what it printed. */
static void run_as(struct run *r, uid_t uid, const char *const *args, int ms)
{
	char out[128], err[128];

	out_paths(out, err, sizeof(out));
	r->status = th_wait(spawn(args, uid, out, err), ms);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

static void run(struct run *r, const char *const *args)
{
	run_as(r, 0, args, 20000);
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ------------------------------------------------------------ option errors */

struct bad_case {
	const char *args[8];
	const char *says; /* in the first line, with the bad value */
};

static void test_bad_options_say_which(void **state)
{
	const struct bad_case cases[] = {
		{ { "--mode", "bogus" }, "unknown mode (auto, bpf, pidfd): bogus" },
		{ { "-m", "bogus" }, "unknown mode (auto, bpf, pidfd): bogus" },
		{ { "--probe", "kprobe" },
		  "unknown probe route (auto, tp_btf, tracepoint, pinned): kprobe" },
		{ { "--reconcile-ms", "0" }, "bad --reconcile-ms (milliseconds, 1 to 3600000): 0" },
		{ { "--reconcile-ms", "10s" },
		  "bad --reconcile-ms (milliseconds, 1 to 3600000): 10s" },
		{ { "--poll-ms", "-5" }, "bad --poll-ms (milliseconds, 1 to 3600000): -5" },
		{ { "-d", "../x" }, "bad domain name" },
		{ { "--domain", "" }, "bad domain name" },
		{ { "stray" }, "unexpected argument: stray" },
		{ { "-v", "stray", "more" }, "unexpected argument: stray" },
		{ { "--frobnicate" }, "unknown option: --frobnicate" },
		{ { "--mode" }, "option needs an argument: --mode" },
		{ { "--no-pin", "--pin-dir", "/sys/fs/bpf/x" },
		  "--no-pin cannot go with: --pin-dir /sys/fs/bpf/x" },
		{ { "--pin-dir", "/sys/fs/bpf/x", "--no-pin" },
		  "--no-pin cannot go with: --pin-dir /sys/fs/bpf/x" },
		{ { "--probe", "pinned", "--no-pin" },
		  "--probe pinned (the pin directory's probe) cannot go with: --no-pin" },
		{ { "--mode", "pidfd", "--probe", "tracepoint" },
		  "--mode pidfd (no probe) cannot go with: --probe tracepoint" },
		{ { "--mode", "pidfd", "--btf", "/etc/passwd" },
		  "--mode pidfd (no probe) cannot go with: --btf /etc/passwd" },
		{ { "--once", "--mode", "bpf" },
		  "--once (one sweep, then exit; nothing watched) cannot go with: --mode bpf" },
		{ { "--reconcile-ms", "5", "--once" }, "cannot go with: --reconcile-ms 5" },
		{ { "--btf", "/nonexistent/btf" },
		  "--btf /nonexistent/btf: No such file or directory" },
		{ { "--btf", "/tmp" }, "--btf /tmp: not a regular file" },
		{ { "--pin-dir", "/tmp/shmrpc-test-cli-pins" },
		  "--pin-dir /tmp/shmrpc-test-cli-pins: /tmp is not on a bpf filesystem (f_type 0x" },
		{ { "--pin-dir", "/nonexistent/pins" },
		  "--pin-dir /nonexistent/pins: /nonexistent: No such file or directory" },
	};
	struct run r;
	struct stat st;
	int bad = 0;

	(void)state;
	rmdir("/tmp/shmrpc-test-cli-pins"); /* what an older reaper made */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];

		run(&r, c->args);
		if (r.status != 2 || r.out[0] || lines(r.err) != 2 ||
		    strncmp(r.err, "shmrpc-reaper: ", 15) || !strstr(r.err, c->says) ||
		    strstr(r.err, c->says) > strchr(r.err, '\n') ||
		    !strstr(r.err, "\nTry 'shmrpc-reaper --help'") || strstr(r.err, "Usage")) {
			print_message("FAILED: %s %s %s ...: status %d, stdout \"%s\", stderr:\n%s"
				      "(wanted status 2 and one line with \"%s\", then the hint)\n",
				      c->args[0], c->args[1] ? c->args[1] : "",
				      c->args[1] && c->args[2] ? c->args[2] : "", r.status, r.out,
				      r.err, c->says);
			bad++;
		}
	}
	/* a refused pin directory is not made either */
	assert_int_not_equal(stat("/tmp/shmrpc-test-cli-pins", &st), 0);
	assert_int_equal(bad, 0);
}

static void test_help_and_version(void **state)
{
	static const char *const every[] = { "--mode", "--probe",   "--pin-dir",      "--no-pin",
					     "--btf",  "--domain",  "--reconcile-ms", "--poll-ms",
					     "--once", "--verbose", "--help",	      "--version" };
	const char *help[] = { "--help", NULL }, *h[] = { "-h", NULL };
	const char *version[] = { "--version", NULL }, *v[] = { "-V", NULL };
	struct run r;

	(void)state;
	run(&r, help);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	assert_non_null(strstr(r.out, "usage: shmrpc-reaper"));
	for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++)
		if (!strstr(r.out, every[i]))
			fail_msg("--help does not mention %s", every[i]);
	run(&r, h);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "usage: shmrpc-reaper"));
	run(&r, version);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	assert_int_equal(strncmp(r.out, "shmrpc-reaper (libshmrpc) ", 26), 0);
	assert_int_equal(lines(r.out), 1);
	run(&r, v);
	assert_int_equal(r.status, 0);
	assert_int_equal(strncmp(r.out, "shmrpc-reaper (libshmrpc) ", 26), 0);
}

/* ------------------------------------------------------------ routes */

/*
 * A probe route asked for must work or fail loudly: --probe tracepoint
 * with a BTF file that is not BTF used to fall back to pidfds in silence.
 * As any user (unprivileged, the load fails with EPERM: the same answer).
 */
static void test_asked_route_fails_loudly(void **state)
{
	struct th_dom *d = *state;
	const char *args[] = { "--probe",  "tracepoint", "--btf", NULL,
			       "--no-pin", "-d",	 d->name, NULL };
	char btf[64];
	struct run r;
	int fd;

	snprintf(btf, sizeof(btf), "/tmp/shmrpc-test-cli-%d.btf", (int)getpid());
	fd = open(btf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not BTF at all, just text\n", 26), 26);
	close(fd);
	args[3] = btf;
	run(&r, args);
	unlink(btf);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "error: the exit probe cannot be used as asked (--probe "
				      "tracepoint): loading the exit probe (route tracepoint"));
	assert_non_null(strstr(r.err, btf));
	assert_null(strstr(r.err, "fallback"));
	assert_null(strstr(r.err, "watching with"));
}

static bool bpffs_here(void)
{
	struct statfs sf;

	return !statfs("/sys/fs/bpf", &sf) && (unsigned long)sf.f_type == BPF_FS_MAGIC;
}

/* --probe pinned on a pin directory with nothing pinned: exit 3, named. */
static void test_pinned_route_without_pins_fails(void **state)
{
	char dir[96];
	const char *args[] = { "--probe", "pinned", "--pin-dir", dir, "-d", NULL, NULL };
	struct th_dom *d = *state;
	struct run r;

	if (geteuid() != 0 || !bpffs_here()) {
		print_message("skip: needs root and bpffs on /sys/fs/bpf\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/shmrpc-test-cli-%d", (int)getpid());
	assert_int_equal(mkdir(dir, 0700), 0);
	args[5] = d->name;
	run(&r, args);
	rmdir(dir);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "cannot be used as asked (--probe pinned)"));
	assert_non_null(strstr(r.err, dir));
	assert_null(strstr(r.err, "watching with"));
}

/* The default choice falls back, and says why: run by a user (no BPF), the
 * reaper of --mode auto watches with pidfds, after a "fallback" line. */
static void test_default_falls_back_and_says_why(void **state)
{
	struct th_dom *d = *state;
	const char *args[] = { "-d", d->name, NULL };
	char out[128], err[128], buf[8192] = "", junk[64];
	double end = th_now_ms() + 10000;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		print_message("skip: runs the reaper as nobody (needs root)\n");
		skip();
	}
	out_paths(out, err, sizeof(out));
	pid = spawn(args, NOBODY, out, err);
	while (!strstr(buf, " started ") && th_now_ms() < end) {
		nap_ms(10);
		peek(err, buf, sizeof(buf));
	}
	kill(pid, SIGTERM);
	st = th_wait(pid, 5000);
	slurp(err, buf, sizeof(buf));
	slurp(out, junk, sizeof(junk));
	print_message("[observed] %s", buf);
	assert_int_equal(st, 0);
	assert_non_null(strstr(buf, "fallback mode=pidfd reason=\""));
	assert_non_null(strstr(buf, "watching with pidfd"));
	assert_non_null(strstr(buf, "started mode=pidfd"));
}

/* ------------------------------------------------------------ --once */

/* A node in a child process: opens @name in @d, then waits to be killed. */
struct holder {
	const struct th_dom *d;
	const char *name;
	struct th_gate ready;
	pid_t pid;
};

static int holder_main(void *arg)
{
	struct holder *h = arg;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open(h->name, &h->d->opts, &n), 0);
	th_gate_open(&h->ready);
	for (;;)
		pause();
	return 0;
}

static void holder_start(struct holder *h, const struct th_dom *d, const char *name)
{
	h->d = d;
	h->name = name;
	th_gate_init(&h->ready);
	h->pid = th_fork(holder_main, h);
	assert_int_equal(th_gate_wait(&h->ready, 10000), 0);
}

static void holder_kill(struct holder *h)
{
	kill(h->pid, SIGKILL);
	assert_int_equal(th_wait(h->pid, 10000), 128 + SIGKILL);
	th_gate_close(&h->ready);
}

/* The node file of live node @name of @dom, and its inode. */
static void node_file(const char *dom, const char *name, char *path, ino_t *ino)
{
	char full[SHMRPC__PATH_MAX + 16];
	struct shmrpc__slot_view v;
	struct shmrpc__reg reg;
	struct stat st;
	uint32_t slot;

	memset(&reg, 0, sizeof(reg));
	assert_int_equal(shmrpc__reg_open_nowait(&reg, dom, 0600), 0);
	assert_int_equal(shmrpc__reg_find(&reg, name, &slot, &v), 0);
	shmrpc__node_path(path, &reg, slot, v.gen);
	shmrpc__reg_close(&reg);
	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	assert_int_equal(stat(full, &st), 0);
	*ino = st.st_ino;
}

static bool file_is(const char *path, ino_t ino)
{
	char full[SHMRPC__PATH_MAX + 16];
	struct stat st;

	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	return !stat(full, &st) && (!ino || st.st_ino == ino);
}

static ino_t reg_ino(const char *dom)
{
	char path[300];
	struct stat st;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", dom);
	return stat(path, &st) ? 0 : st.st_ino;
}

/* A registry whose creator died before joining: made, never used. */
static void unused_registry(const char *dom)
{
	struct shmrpc__reg reg;

	memset(&reg, 0, sizeof(reg));
	assert_int_equal(shmrpc__reg_open(&reg, dom, 64, 0600, true), 0);
	shmrpc__reg_close(&reg);
	assert_int_equal(th_shm_count(dom), 1);
}

/* A domain whose two nodes were SIGKILLed (no peer, no reaper, no join
 * since: their files stay), one that lost one node of three, and one never
 * used; *live gets the survivors. */
struct scene {
	struct th_dom dead, some, unused;
	struct holder x, y, p, q, r;
	char p_file[SHMRPC__PATH_MAX], q_file[SHMRPC__PATH_MAX], r_file[SHMRPC__PATH_MAX];
	ino_t p_ino, q_ino, r_ino, some_reg;
};

static void scene_make(struct scene *s, const struct th_dom *d)
{
	s->dead = *d;
	th_dom_init(&s->some);
	th_dom_init(&s->unused);
	holder_start(&s->x, &s->dead, "x");
	holder_start(&s->y, &s->dead, "y");
	holder_start(&s->p, &s->some, "p");
	holder_start(&s->q, &s->some, "q");
	holder_start(&s->r, &s->some, "r");
	node_file(s->some.name, "p", s->p_file, &s->p_ino);
	node_file(s->some.name, "q", s->q_file, &s->q_ino);
	node_file(s->some.name, "r", s->r_file, &s->r_ino);
	s->some_reg = reg_ino(s->some.name);
	unused_registry(s->unused.name);
	holder_kill(&s->x);
	holder_kill(&s->y);
	holder_kill(&s->r);
	assert_int_equal(th_shm_count(s->dead.name), 3); /* nobody cleaned up */
	assert_true(file_is(s->r_file, s->r_ino));
}

/* After --once: the dead domain and the unused one gone, the other one's
 * dead node gone and everything else of it as it was; p and q reachable. */
static void scene_check(struct scene *s)
{
	struct shmrpc_node *n;

	assert_int_equal(th_shm_count(s->dead.name), 0);
	assert_int_equal(th_shm_count(s->unused.name), 0);
	assert_int_equal(reg_ino(s->some.name), s->some_reg);
	assert_true(file_is(s->p_file, s->p_ino));
	assert_true(file_is(s->q_file, s->q_ino));
	assert_false(file_is(s->r_file, 0));
	assert_int_equal(th_shm_count(s->some.name), 3); /* registry, p, q */
	n = th_open(&s->some, "n");
	assert_non_null(n);
	assert_int_equal(shmrpc_wait_node(n, "p", 0), 0);
	assert_int_equal(shmrpc_wait_node(n, "q", 0), 0);
	assert_int_equal(shmrpc_send(n, "p", "hi", 2, 1000), 0);
	assert_int_not_equal(shmrpc_wait_node(n, "r", 0), 0);
	shmrpc_close(n);
}

/* p and q killed too: a second --once leaves nothing of the domain. */
static void scene_end(struct scene *s)
{
	const char *args[] = { "--once", "-d", s->some.name, NULL };
	struct run r;

	holder_kill(&s->p);
	holder_kill(&s->q);
	run(&r, args);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "once domains=1 reclaimed=2 retired=1 skipped=0 "));
	assert_int_equal(th_shm_count(s->some.name), 0);
}

static void test_once_cleans_the_dead_touches_the_living(void **state)
{
	struct scene s;
	const char *args[] = { "--once", "-d", NULL, "-d", NULL, "--domain", NULL, NULL };
	char want[256];
	struct run r;

	scene_make(&s, *state);
	args[2] = s.dead.name;
	args[4] = s.some.name;
	args[6] = s.unused.name;
	run(&r, args);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "once domains=3 reclaimed=3 retired=2 skipped=0 refused=0 "
				      "unpublished=0 not-ours=0 lock-held=0 capped=0 errors=0\n"));
	snprintf(want, sizeof(want), "reaped domain=%s node=x ", s.dead.name);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "via=once"));
	snprintf(want, sizeof(want), "domain-retired domain=%s reason=last-node-reaped",
		 s.dead.name);
	assert_non_null(strstr(r.err, want));
	snprintf(want, sizeof(want), "domain-retired domain=%s reason=unused", s.unused.name);
	assert_non_null(strstr(r.err, want));
	scene_check(&s);
	scene_end(&s);
}

/* Without --domain: every domain of this (private) /dev/shm. */
static void test_once_every_domain(void **state)
{
	const char *args[] = { "--once", NULL };
	struct scene s;
	struct run r;

	if (!private_shm) {
		print_message("skip: --once over every domain needs a private /dev/shm (root)\n");
		skip();
	}
	scene_make(&s, *state);
	run(&r, args);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "once domains=3 reclaimed=3 retired=2 skipped=0 "));
	scene_check(&s);
	scene_end(&s);
}

/* Holds @dom's registry lock until killed. */
static int locker_main(void *arg)
{
	struct th_gate *g = ((void **)arg)[1];
	struct shmrpc__reg reg;

	memset(&reg, 0, sizeof(reg));
	CHILD_CHECK_RC(shmrpc__reg_open_nowait(&reg, ((void **)arg)[0], 0600), 0);
	CHILD_CHECK_RC(shmrpc__dom_lock(&reg), 0);
	th_gate_open(g);
	for (;;)
		pause();
	return 0;
}

/* A registry lock held for good: the dead node cannot be reclaimed; --once
 * says so and exits 1. Once the lock is gone, --once cleans up. */
static void test_once_lock_held_is_a_failure(void **state)
{
	struct th_dom *d = *state;
	const char *args[] = { "--once", "-d", d->name, NULL };
	char file[SHMRPC__PATH_MAX], want[256];
	struct th_gate locked;
	void *arg[2] = { d->name, &locked };
	struct holder z;
	struct run r;
	ino_t ino;
	pid_t pid;

	holder_start(&z, d, "z");
	node_file(d->name, "z", file, &ino);
	holder_kill(&z);
	th_gate_init(&locked);
	pid = th_fork(locker_main, arg);
	assert_int_equal(th_gate_wait(&locked, 10000), 0);
	run(&r, args);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 1);
	snprintf(want, sizeof(want), "skip domain=%s reason=lock-held", d->name);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "once domains=1 reclaimed=0 retired=0 skipped=1 "));
	assert_non_null(strstr(r.err, " lock-held=1 "));
	assert_true(file_is(file, ino)); /* left as it was */
	kill(pid, SIGKILL);
	th_wait(pid, 10000);
	th_gate_close(&locked);
	run(&r, args);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "once domains=1 reclaimed=1 retired=1 skipped=0 "));
	assert_int_equal(th_shm_count(d->name), 0);
}

/* A FIFO at a registry name: refused at once, not waited on; not a failure. */
static void test_once_refuses_a_fifo(void **state)
{
	struct th_dom *d = *state;
	const char *args[] = { "--once", "-d", d->name, NULL };
	char path[300], want[256];
	struct run r;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", d->name);
	assert_int_equal(mkfifo(path, 0666), 0);
	run_as(&r, 0, args, 10000);
	unlink(path);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 0);
	snprintf(want, sizeof(want), "skip domain=%s reason=refused", d->name);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, " refused=1 "));
}

/* Run by another user, --once leaves root's domain alone (and says so);
 * root's own --once then cleans it. */
static void test_once_as_user_leaves_others_domains(void **state)
{
	struct th_dom *d = *state;
	const char *args[] = { "--once", "-d", d->name, NULL };
	char file[SHMRPC__PATH_MAX];
	struct holder z;
	struct run r;
	ino_t ino;

	if (geteuid() != 0) {
		print_message("skip: runs --once as nobody on root's domain (needs root)\n");
		skip();
	}
	holder_start(&z, d, "z");
	node_file(d->name, "z", file, &ino);
	holder_kill(&z);
	run_as(&r, NOBODY, args, 20000);
	print_message("[observed] %s", r.err);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, " not-ours=1 "));
	assert_true(file_is(file, ino));
	run(&r, args);
	assert_int_equal(r.status, 0);
	assert_int_equal(th_shm_count(d->name), 0);
}

/* ------------------------------------------------------------ main */

/* As root: this program's /dev/shm is a tmpfs of its own (see the top). */
static void private_dev_shm(void)
{
	if (geteuid() != 0)
		return;
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")) {
		fprintf(stderr, "private /dev/shm: %s: --once over every domain is skipped\n",
			strerror(errno));
		return;
	}
	private_shm = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, th_setup, th_teardown)
		T(test_bad_options_say_which),
		T(test_help_and_version),
		T(test_asked_route_fails_loudly),
		T(test_pinned_route_without_pins_fails),
		T(test_default_falls_back_and_says_why),
		T(test_once_cleans_the_dead_touches_the_living),
		T(test_once_every_domain),
		T(test_once_lock_held_is_a_failure),
		T(test_once_refuses_a_fifo),
		T(test_once_as_user_leaves_others_domains),
#undef T
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	/* No peer watcher: only --once may clean up after the nodes killed
	 * here (a node without rings has no peers anyway). */
	setenv("SHMRPC_WATCH", "0", 1);
	private_dev_shm();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
