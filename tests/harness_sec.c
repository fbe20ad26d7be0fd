// SPDX-License-Identifier: MIT
/*
 * The environment of the security suite (harness_sec.h): an exclusive lock,
 * the throwaway users and group, a private /dev/shm, fs.protected_symlinks,
 * processes of a user.
 *
 * Clean-up runs whatever happens: at exit of the main process (never of a
 * forked child: they exit() too), on SIGTERM and SIGINT, and at the next
 * start for a run that was SIGKILLed (leftover users and groups are found
 * by their fixed prefix, the sysctl's value by a state file). The users are
 * made and removed with useradd/userdel/groupadd/groupdel only, and only
 * names that start with "shmrpcsec-" are ever removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_sec.h"

#define LOCK_FILE "/run/lock/shmrpc-test-security.lock"
#define STATE_FILE "/run/lock/shmrpc-test-security.state"
#define SYSCTL_SYMLINKS "/proc/sys/fs/protected_symlinks"
#define PREFIX "shmrpcsec-"
#define MAX_KIDS 512

struct sec_env sec = { .symlinks_found = -1, .symlinks_now = -1 };
static const char *prog = "test_security";

static pid_t kids[MAX_KIDS];
static int nkids;
static bool users_made, ws_mounted;

/* ------------------------------------------------------------ commands */

/* Run a command (absolute path), its stdout to /dev/null: exit code or -1. */
static int run(const char *const argv[])
{
	pid_t pid;
	int st, fd;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (pid < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Names in /etc/passwd or /etc/group (@file) that start with PREFIX. */
static int prefixed(const char *file, char names[][33], int max)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(file, "r");

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon || strncmp(line, PREFIX, strlen(PREFIX)) || colon - line > 32)
			continue;
		*colon = '\0';
		snprintf(names[n++], 33, "%.32s", line);
	}
	fclose(f);
	return n;
}

static void users_remove(bool say)
{
	char names[16][33];
	int i, n;

	n = prefixed("/etc/passwd", names, 16);
	for (i = 0; i < n; i++) {
		const char *argv[] = { "/usr/sbin/userdel", names[i], NULL };

		if (say)
			fprintf(stderr, "%s: removing leftover user %s\n", prog, names[i]);
		run(argv);
	}
	n = prefixed("/etc/group", names, 16);
	for (i = 0; i < n; i++) {
		const char *argv[] = { "/usr/sbin/groupdel", names[i], NULL };

		if (say)
			fprintf(stderr, "%s: removing leftover group %s\n", prog, names[i]);
		run(argv);
	}
}

static int users_make(void)
{
	const char *grp[] = { "/usr/sbin/groupadd", SEC_GROUP, NULL };
	const char *ua[] = { "/usr/sbin/useradd", "-M", "-U",		"-G",	    SEC_GROUP, "-s",
			     "/usr/sbin/nologin", "-d", "/nonexistent", SEC_USER_A, NULL };
	const char *ub[] = { "/usr/sbin/useradd", "-M", "-U",		"-G",	    SEC_GROUP, "-s",
			     "/usr/sbin/nologin", "-d", "/nonexistent", SEC_USER_B, NULL };
	struct passwd *pa, *pb;
	struct group *g;

	users_made = true;
	if (run(grp) || run(ua) || run(ub)) {
		fprintf(stderr, "%s: groupadd/useradd failed\n", prog);
		return -1;
	}
	pa = getpwnam(SEC_USER_A);
	if (pa) {
		sec.a = pa->pw_uid;
		sec.ga = pa->pw_gid;
	}
	pb = getpwnam(SEC_USER_B);
	if (pb) {
		sec.b = pb->pw_uid;
		sec.gb = pb->pw_gid;
	}
	g = getgrnam(SEC_GROUP);
	if (!pa || !pb || !g)
		return -1;
	sec.g = g->gr_gid;
	return 0;
}

/* ------------------------------------------------------------ sysctl */

static int sysctl_read(void)
{
	char buf[16] = "";
	int fd = open(SYSCTL_SYMLINKS, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	return n > 0 ? atoi(buf) : -1;
}

/* Async-signal-safe: used by the signal handler too. */
static int sysctl_write(int v)
{
	char c = (char)('0' + v);
	int fd = open(SYSCTL_SYMLINKS, O_WRONLY), rc = -1;

	if (fd >= 0) {
		rc = write(fd, &c, 1) == 1 ? 0 : -1;
		close(fd);
	}
	return rc;
}

static void state_save(int found)
{
	char buf[32];
	int fd = open(STATE_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return;
	snprintf(buf, sizeof(buf), "%d\n", found);
	if (write(fd, buf, strlen(buf)) < 0)
		fprintf(stderr, "%s: %s: %s\n", prog, STATE_FILE, strerror(errno));
	close(fd);
}

/* A run that was SIGKILLed left the sysctl changed: put it back. */
static void state_recover(void)
{
	char buf[16] = "";
	int fd = open(STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), v;
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd < 0)
		return;
	close(fd);
	v = n > 0 ? atoi(buf) : -1;
	if (v >= 0 && v <= 2 && sysctl_read() != v) {
		fprintf(stderr, "%s: a crashed run left fs.protected_symlinks at %d: %d\n", prog,
			sysctl_read(), v);
		sysctl_write(v);
	}
	unlink(STATE_FILE);
}

static void symlinks_restore(void)
{
	if (sec.symlinks_found >= 0 && sec.symlinks_now != sec.symlinks_found) {
		sysctl_write(sec.symlinks_found);
		sec.symlinks_now = sec.symlinks_found;
	}
	unlink(STATE_FILE);
}

static int group_value;

int sec_group_symlinks(void **state)
{
	int v = group_value;

	(void)state;
	if (v != sec.symlinks_found)
		state_save(sec.symlinks_found);
	if (sysctl_write(v) || sysctl_read() != v) {
		fprintf(stderr, "%s: cannot set fs.protected_symlinks=%d\n", prog, v);
		symlinks_restore();
		return -1;
	}
	sec.symlinks_now = v;
	print_message("[ group ] fs.protected_symlinks=%d (found %d)\n", v, sec.symlinks_found);
	return 0;
}

int sec_group_restore(void **state)
{
	(void)state;
	symlinks_restore();
	return sysctl_read() == sec.symlinks_found ? 0 : -1;
}

int sec_run_groups(const char *title, const struct CMUnitTest *tests, size_t n)
{
	int vals[2] = { sec.symlinks_found, sec.symlinks_found ? 0 : 1 }, fails = 0;
	const char *only = getenv("SHMRPC_SECURITY_SYMLINKS");
	char name[128];

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	for (int i = 0; i < 2; i++) {
		if (only && *only && atoi(only) != vals[i])
			continue;
		group_value = vals[i];
		snprintf(name, sizeof(name), "%s, fs.protected_symlinks=%d%s", title, vals[i],
			 i ? "" : " (as found)");
		fails += _cmocka_run_group_tests(name, tests, n, sec_group_symlinks,
						 sec_group_restore);
	}
	return fails ? 1 : 0;
}

const char *sec_symlinks_label(void)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "protected_symlinks=%d", sec.symlinks_now);
	return buf;
}

/* ------------------------------------------------------------ clean-up */

void sec_track(pid_t pid)
{
	if (pid > 0 && nkids < MAX_KIDS)
		kids[nkids++] = pid;
}

void sec_untrack(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid) {
			kids[i] = kids[--nkids];
			return;
		}
}

void sec_kill_all(void)
{
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < nkids; i++)
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
	nkids = 0;
}

void sec_shm_wipe(void)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;

	/* Only ever our private tmpfs (sec_init mounted it). */
	if (!ws_mounted || !(d = opendir("/dev/shm")))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
			if (unlink(path) && errno == EISDIR)
				rmdir(path);
		}
	closedir(d);
}

static void cleanup(void)
{
	if (getpid() != sec.main_pid)
		return; /* a forked child exiting */
	symlinks_restore();
	sec_kill_all();
	if (users_made) {
		users_remove(false);
		users_made = false;
	}
	if (ws_mounted) {
		umount2(sec.ws, MNT_DETACH);
		rmdir(sec.ws);
		ws_mounted = false;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ------------------------------------------------------------ set-up */

static int lock_take(void)
{
	int fd = open(LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600), i;

	if (fd < 0)
		return -1;
	for (i = 0; flock(fd, LOCK_EX | LOCK_NB); i++) {
		if (i == 0)
			fprintf(stderr, "%s: waiting for another run (%s)\n", prog, LOCK_FILE);
		if (i > 6000)
			return -1; /* 10 min */
		usleep(100000);
	}
	return 0; /* held until we exit */
}

/* Workspaces of runs that died: empty directories named after a dead pid. */
static void ws_leftovers(void)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir("/tmp");
	int pid;

	while (d && (e = readdir(d))) {
		if (sscanf(e->d_name, "shmrpc-sec-%d", &pid) != 1 || pid <= 0 || !kill(pid, 0))
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
		rmdir(path);
	}
	if (d)
		closedir(d);
}

static int isolate(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		fprintf(stderr, "%s: private mount namespace: %s\n", prog, strerror(errno));
		return -1;
	}
	if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")) {
		fprintf(stderr, "%s: tmpfs on /dev/shm: %s\n", prog, strerror(errno));
		return -1;
	}
	snprintf(sec.ws, sizeof(sec.ws), "/tmp/shmrpc-sec-%d", (int)getpid());
	if (mkdir(sec.ws, 0755) ||
	    mount("tmpfs", sec.ws, "tmpfs", MS_STRICTATIME, "mode=0755,size=64m")) {
		fprintf(stderr, "%s: workspace %s: %s\n", prog, sec.ws, strerror(errno));
		rmdir(sec.ws);
		return -1;
	}
	ws_mounted = true;
	return 0;
}

int sec_init(const char *name)
{
	const char *be = getenv("SHMRPC_BACKEND");

	prog = name;
	if (geteuid() != 0) {
		printf("%s: skipped: needs root (it creates two users and a group, mounts a private "
		       "/dev/shm and runs shmrpc-reaper as root)\n",
		       prog);
		return 1;
	}
	if (be && !strcmp(be, "uring") && !getenv("SHMRPC_SECURITY_ALL_BACKENDS")) {
		printf("%s: skipped under SHMRPC_BACKEND=uring: the attacks do not depend on the "
		       "wake backend, and make test runs them with futex (force: "
		       "SHMRPC_SECURITY_ALL_BACKENDS=1)\n",
		       prog);
		return 1;
	}
	sec.main_pid = getpid();
	if (lock_take()) {
		fprintf(stderr, "%s: cannot take %s\n", prog, LOCK_FILE);
		return -1;
	}
	state_recover();
	users_remove(true);
	ws_leftovers();
	sec.symlinks_found = sec.symlinks_now = sysctl_read();
	atexit(cleanup);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN); /* our output piped to head: still clean up */
	if (sec.symlinks_found < 0 || users_make() || isolate())
		return -1;
	/* Only the reaper cleans up after A's victims; every node sleeps up
	 * to a minute between its own re-checks. */
	setenv("SHMRPC_WATCH", "0", 1);
	setenv("SHMRPC_SAFETY_MS", "60000", 1);
	printf("%s: users %s (%d) and %s (%d), group %s (%d); private /dev/shm; workspace %s\n",
	       prog, SEC_USER_A, (int)sec.a, SEC_USER_B, (int)sec.b, SEC_GROUP, (int)sec.g, sec.ws);
	return 0;
}

const char *sec_ws(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", sec.ws, name);
	return buf;
}

/* ------------------------------------------------------------ processes */

uid_t sec_uid(enum sec_who who)
{
	return who == SEC_A || who == SEC_A_G ? sec.a : sec.b;
}

static int become(enum sec_who who)
{
	bool a = who == SEC_A || who == SEC_A_G, grp = who == SEC_A_G || who == SEC_B_G;
	gid_t prim = a ? sec.ga : sec.gb, groups[2] = { prim, sec.g };
	gid_t eg = grp ? sec.g : prim;
	uid_t u = a ? sec.a : sec.b;

	if (setgroups(grp ? 2 : 1, groups) || setresgid(eg, eg, eg) || setresuid(u, u, u))
		return -errno;
	/* As a process that user started itself: dumpable, and ours to end. */
	prctl(PR_SET_DUMPABLE, 1);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	umask(022);
	return getppid() == 1 ? -ESRCH : 0;
}

pid_t sec_fork_as(enum sec_who who, int (*fn)(void *arg), void *arg)
{
	pid_t pid;
	int err;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		err = become(who);
		if (err) {
			fprintf(stderr, "child %d: cannot become uid %d: %s\n", (int)getpid(),
				(int)sec_uid(who), strerror(-err));
			_exit(126);
		}
		exit(fn(arg));
	}
	sec_track(pid);
	return pid;
}

int sec_run_as(enum sec_who who, int (*fn)(void *arg), void *arg, int timeout_ms)
{
	pid_t pid = sec_fork_as(who, fn, arg);
	int rc = pid > 0 ? th_wait(pid, timeout_ms) : -1;

	if (pid > 0)
		sec_untrack(pid);
	return rc;
}

/* ------------------------------------------------------------ B's node */

void sec_reg_path(char *buf, size_t len, const char *dom)
{
	snprintf(buf, len, "/dev/shm/shmrpc.%s.reg", dom);
}

int sec_own_node_file(const char *dom, char *path, size_t len)
{
	char pfx[128], names[512], *p, *nl;

	snprintf(pfx, sizeof(pfx), "shmrpc.%s.", dom);
	sec_shm_names(getuid(), pfx, names, sizeof(names));
	for (p = names; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (nl - p > 4 && strcmp(nl - 4, ".reg")) {
			snprintf(path, len, "/dev/shm/%.200s", p);
			return 0;
		}
	}
	return -ENOENT;
}

/* Act on our registry: 'u' unlink its name, 't' truncate it, 'l' take its
 * lock (the first byte, as the library does) for good. 0 or an errno. */
static int bnode_act(struct sec_bnode *b, char op, int *reg_fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char path[PATH_MAX];

	sec_reg_path(path, sizeof(path), b->dom);
	switch (op) {
	case 'u':
		return unlink(path) ? errno : 0;
	case 't':
		return truncate(path, 0) ? errno : 0;
	case 'l':
		*reg_fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (*reg_fd < 0)
			return errno;
		return fcntl(*reg_fd, F_OFD_SETLK, &fl) ? errno : 0;
	default:
		return EINVAL;
	}
}

static int bnode_main(void *arg)
{
	struct sec_bnode *b = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = b->dom, .mode = b->mode };
	struct shmrpc_node *n;
	char path[PATH_MAX], op;
	int32_t rc;
	int reg_fd = -1;

	rc = shmrpc_open(b->name ? b->name : "b1", &o, &n);
	if (!rc && b->send_a1)
		rc = shmrpc_send(n, "a1", "b", 1, 2000);
	if (!rc && b->fifo) {
		/* Ours to replace: B owns it (the sticky bit allows it). */
		rc = sec_own_node_file(b->dom, path, sizeof(path));
		if (!rc && (unlink(path) || mkfifo(path, 0660)))
			rc = -errno;
	}
	if (write(b->sock, &rc, sizeof(rc)) != sizeof(rc) || rc)
		return 1;
	while (read(b->sock, &op, 1) == 1) {
		rc = bnode_act(b, op, &reg_fd);
		if (write(b->sock, &rc, sizeof(rc)) != sizeof(rc))
			break;
	}
	for (;;)
		pause();
}

static int bnode_reply(struct sec_bnode *b, int timeout_ms)
{
	struct pollfd p = { b->sock, POLLIN, 0 };
	int32_t rc;

	if (poll(&p, 1, timeout_ms) != 1 || read(b->sock, &rc, sizeof(rc)) != sizeof(rc))
		return -ETIMEDOUT;
	return rc;
}

int sec_bnode_start(struct sec_bnode *b, enum sec_who who)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	b->sock = sv[1];
	b->pid = sec_fork_as(who, bnode_main, b);
	close(sv[1]);
	b->sock = sv[0];
	return b->pid > 0 ? bnode_reply(b, 10000) : -ECHILD;
}

int sec_bnode_act(struct sec_bnode *b, char op)
{
	if (send(b->sock, &op, 1, MSG_NOSIGNAL) != 1)
		return -EPIPE;
	return bnode_reply(b, 5000);
}

void sec_bnode_kill(struct sec_bnode *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
		sec_untrack(b->pid);
		close(b->sock);
	}
	b->pid = -1;
}
