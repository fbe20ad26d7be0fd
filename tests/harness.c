// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

void th_dom_init(struct th_dom *d)
{
	static unsigned counter;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(d->name, sizeof(d->name), "t%d-%u-%lx", (int)getpid(), ++counter,
		 (unsigned long)(ts.tv_nsec & 0xfffff));
	memset(&d->opts, 0, sizeof(d->opts));
	d->opts.sz = sizeof(d->opts);
	d->opts.domain = d->name;
}

/* Is /dev/shm entry @ent a file of @domain? (exact domain, not a prefix) */
static int of_domain(const char *ent, const char *domain)
{
	size_t n = strlen(domain);

	if (strncmp(ent, "shmrpc.", 7) || strncmp(ent + 7, domain, n) || ent[7 + n] != '.')
		return 0;
	ent += 7 + n + 1;
	/* "reg", or "node." / "ring." / "repl." and 16 hex digits (lib/names.c) */
	return !strcmp(ent, "reg") || ((!strncmp(ent, "node.", 5) || !strncmp(ent, "ring.", 5) ||
					!strncmp(ent, "repl.", 5)) &&
				       strlen(ent) == 21);
}

static int walk(const char *domain, int unlink_them, uint64_t *bytes)
{
	char path[512];
	struct dirent *e;
	struct stat st;
	int count = 0;
	DIR *dir = opendir("/dev/shm");

	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		if (!of_domain(e->d_name, domain))
			continue;
		count++;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (bytes && !stat(path, &st))
			*bytes += (uint64_t)st.st_blocks * 512;
		if (unlink_them) {
			fprintf(stderr, "left in /dev/shm: %s\n", e->d_name);
			unlink(path);
		}
	}
	closedir(dir);
	return count;
}

int th_shm_count(const char *domain)
{
	return walk(domain, 0, NULL);
}

uint64_t th_shm_bytes(const char *domain)
{
	uint64_t bytes = 0;

	walk(domain, 0, &bytes);
	return bytes;
}

int th_shm_clean(const char *domain)
{
	return walk(domain, 1, NULL);
}

int th_setup(void **state)
{
	struct th_dom *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	th_dom_init(d);
	*state = d;
	return 0;
}

int th_teardown(void **state)
{
	struct th_dom *d = *state;
	int left = th_shm_clean(d->name);

	free(d);
	/* Nothing of a test's domain may outlive the test. */
	return left == 0 ? 0 : -1;
}

/*
 * fork() under AddressSanitizer, from a process with threads. GCC 12's
 * sanitizer runtime takes none of its locks around fork(): a lock that
 * another thread held at that instant (the allocator's, while that thread
 * was in malloc) stays held in the child forever. LeakSanitizer's check at
 * exit() locks the whole allocator first, so such a child hangs in exit()
 * (seen in CI: test_query's child, after its test had passed, waited in
 * __lsan::LockAllocator; its parent's watcher thread had been allocating
 * when the test forked). Newer sanitizer runtimes lock around fork.
 *
 * Two measures, in sanitizer builds only:
 * - before forking, wait (50 ms at most) until every other thread of the
 *   process sleeps: a thread that is in malloc is running, and the library's
 *   watcher and helper threads sleep when idle. This makes the bad instant
 *   rare; it cannot rule it out (a thread may wake just before the fork).
 * - a child ends with exit() as before, so LeakSanitizer checks it, but
 *   under a watchdog: a check that has not finished within 2 s is taken as
 *   that deadlock, said on stderr, and the child _exits with its own result.
 *   fn has returned by then: nothing of the library is hidden by this.
 */
#if defined(__SANITIZE_ADDRESS__)
#define TH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TH_ASAN 1
#endif
#endif

#ifdef TH_ASAN
/* Does every thread of this process but the caller sleep (state S)? */
static bool others_asleep(void)
{
	char path[300], buf[256], *st;
	struct dirent *e;
	bool all = true;
	DIR *d = opendir("/proc/self/task");
	pid_t self = gettid();
	int fd;
	ssize_t r;

	if (!d)
		return true;
	while (all && (e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* it ended */
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = 0;
		st = strrchr(buf, ')'); /* "tid (comm) S ..." */
		all = !st || st[1] != ' ' || st[2] == 'S';
	}
	closedir(d);
	return all;
}

static void san_quiesce(void)
{
	struct timespec ms = { 0, 1000 * 1000 };
	int i;

	for (i = 0; i < 50 && !others_asleep(); i++)
		nanosleep(&ms, NULL);
}

static volatile sig_atomic_t child_rc;

static void exit_watchdog(int sig)
{
	static const char msg[] = "th_fork: child's LeakSanitizer check did not end in 2 s "
				  "(a sanitizer lock held at fork): skipped\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing to do */
	}
	_exit(child_rc);
}

static void child_exit(int rc)
{
	sigset_t alrm;

	child_rc = rc;
	signal(SIGALRM, exit_watchdog);
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	alarm(2);
	exit(rc); /* not _exit: LeakSanitizer checks children too */
}
#else
static void san_quiesce(void)
{
}

static void child_exit(int rc)
{
	exit(rc);
}
#endif

pid_t th_fork_raw(void)
{
	static const int crash[] = { SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGSYS };
	pid_t parent = getpid(), pid;
	size_t i;

	/* PR_SET_PDEATHSIG fires when the *thread* that forked exits: from a
	 * thread other than the main one, the child would die with it. No
	 * test does that; say so loudly if one starts to. */
	if (gettid() != parent) {
		fprintf(stderr,
			"th_fork: called from a thread other than main (tid %d): its "
			"children would die when that thread exits\n",
			(int)gettid());
		abort();
	}
	fflush(stdout);
	fflush(stderr);
	san_quiesce();
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* it died before the prctl */
			_exit(1);
		/* cmocka catches these in the test's process and jumps back
		 * into its test loop: a child would go on running the next
		 * tests instead of dying of the signal its parent looks for. */
		for (i = 0; i < sizeof(crash) / sizeof(crash[0]); i++)
			signal(crash[i], SIG_DFL);
	}
	return pid;
}

pid_t th_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid = th_fork_raw();

	if (pid == 0)
		child_exit(fn(arg));
	return pid;
}

int th_wait(pid_t pid, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;
	struct timespec ms = { 0, 1000 * 1000 };
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			return -1;
		if (th_now_ms() > end) {
			fprintf(stderr, "child %d did not finish in %d ms: killed\n", (int)pid,
				timeout_ms);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		nanosleep(&ms, NULL);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

void th_gate_init(struct th_gate *g)
{
	if (pipe(g->fd))
		abort();
}

void th_gate_open(struct th_gate *g)
{
	if (write(g->fd[1], "x", 1) != 1)
		abort();
}

int th_gate_wait(struct th_gate *g, int timeout_ms)
{
	struct pollfd p = { g->fd[0], POLLIN, 0 };
	char c;

	if (poll(&p, 1, timeout_ms) != 1 || read(g->fd[0], &c, 1) != 1)
		return -1;
	return 0;
}

void th_gate_close(struct th_gate *g)
{
	close(g->fd[0]);
	close(g->fd[1]);
}

double th_cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, stt = 0;
	int fd, i;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');	      /* the end of field 2 */
	for (i = 2; i < 14 && p; i++) /* to the space before field 14: utime, then stime */
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%lu %lu", &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

int th_proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	p = strrchr(buf, ')'); /* the name may hold anything but not end in ')' */
	return p && p[1] == ' ' && p[2] ? p[2] : -EPROTO;
}

int th_wait_asleep(pid_t pid, int timeout_ms)
{
	struct timespec ms = { 0, 1000000 };
	double end = th_now_ms() + timeout_ms;
	int st;

	do {
		st = th_proc_state(pid);
		if (st < 0 || st == 'S')
			return st < 0 ? st : 0;
		nanosleep(&ms, NULL);
	} while (th_now_ms() < end);
	return -ETIMEDOUT;
}

double th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int64_t th_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t th_rand(uint64_t *s)
{
	/* xorshift64*: fast, deterministic, good enough for payloads */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

void th_fill(void *buf, size_t len, uint64_t stream, uint64_t seq)
{
	uint64_t s = (stream << 40) ^ seq ^ 0x9e3779b97f4a7c15ull, w;
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		w = th_rand(&s);
		memcpy(p + i, &w, 8);
	}
	w = th_rand(&s);
	memcpy(p + i, &w, len - i);
}

int th_check(const void *buf, size_t len, uint64_t stream, uint64_t seq)
{
	uint64_t s = (stream << 40) ^ seq ^ 0x9e3779b97f4a7c15ull, w;
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		w = th_rand(&s);
		if (memcmp(p + i, &w, 8))
			return -1;
	}
	w = th_rand(&s);
	return memcmp(p + i, &w, len - i) ? -1 : 0;
}

struct shmrpc_node *th_open(const struct th_dom *d, const char *name)
{
	struct shmrpc_node *n = NULL;
	int rc = shmrpc_open(name, &d->opts, &n);

	if (rc)
		fprintf(stderr, "%d: shmrpc_open(%s, %s) = %d (%s)\n", (int)getpid(), name, d->name,
			rc, strerror(-rc));
	return n;
}

/* ------------------------------------------------------------ waiting */

void th_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

int th_wait_zombie(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT))
		return -1;
	return th_proc_state(pid) == 'Z' ? 0 : -1;
}

void th_bar_init(struct th_bar *b)
{
	if (pipe(b->fd))
		abort();
}

int th_bar_wait(struct th_bar *b, int timeout_ms)
{
	struct pollfd p = { b->fd[0], POLLIN, 0 };
	char c;

	close(b->fd[1]);
	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return read(b->fd[0], &c, 1) == 0 ? 0 : -1;
}

void th_bar_release(struct th_bar *b)
{
	close(b->fd[1]);
}

void th_bar_fini(struct th_bar *b)
{
	close(b->fd[0]);
}

/* ------------------------------------------------------------ environment */

void th_env_save(struct th_env *e, const char *name)
{
	const char *v = getenv(name);

	e->name = name;
	e->val = v ? strdup(v) : NULL;
}

void th_env_restore(struct th_env *e)
{
	if (e->val)
		setenv(e->name, e->val, 1);
	else
		unsetenv(e->name);
	free(e->val);
}

void th_watch_off(struct th_env *e)
{
	th_env_save(e, "SHMRPC_WATCH");
	setenv("SHMRPC_WATCH", "0", 1);
}

void th_main_env(void)
{
	/* No safety net: every wait must end by a wake (lib/wake.c). */
	setenv("SHMRPC_SAFETY_MS", "3600000", 0);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
}

void th_subreaper(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/* ------------------------------------------------------------ nodes */

struct shmrpc_node *th_open_ring(const struct th_dom *d, const char *name, uint32_t ring)
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

struct shmrpc_stats th_stats(struct shmrpc_node *n)
{
	struct shmrpc_stats st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(shmrpc_stats(n, &st), 0);
	return st;
}

bool th_wait_sleeps_above(struct shmrpc_node *n, uint64_t above, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;
	struct shmrpc_stats st;

	for (;;) {
		if (shmrpc_stats(n, &st) == 0 && st.sleeps > above)
			return true;
		if (th_now_ms() > end)
			return false;
		th_sleep_ms(2);
	}
}

int th_fill_ring(struct shmrpc_node *n, const char *to, size_t len)
{
	static uint8_t buf[4096];
	int count = 0, rc;

	assert_true(len <= sizeof(buf));
	while ((rc = shmrpc_send(n, to, buf, len, 0)) == 0)
		count++;
	assert_int_equal(rc, -EAGAIN);
	return count;
}

int th_fill_ring_full(struct shmrpc_node *n, const char *to, size_t len, int *empties)
{
	int count = th_fill_ring(n, to, len);

	*empties = th_fill_ring(n, to, 0);
	return count;
}

void th_never_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		      void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	(void)arg;
	fail_msg("handler called");
}

void th_noop_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		     void *arg)
{
	(void)n;
	(void)from;
	(void)data;
	(void)len;
	(void)arg;
}

void *th_blocked_recv_thread(void *arg)
{
	struct th_blocked_recv *b = arg;
	char buf[16];

	b->rc = shmrpc_recv(b->n, buf, sizeof(buf), NULL, 10000);
	return NULL;
}

int th_count_threads(void)
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

bool th_wait_threads(int want, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;

	while (th_count_threads() != want) {
		if (th_now_ms() > end)
			return false;
		th_sleep_ms(1);
	}
	return true;
}

static int holder_main(void *arg)
{
	struct th_holder *h = arg;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open(h->name, &h->o, &n), 0);
	if (h->hello[0]) {
		CHILD_CHECK_RC(shmrpc_wait_node(n, h->hello, 10000), 0);
		CHILD_CHECK_RC(shmrpc_send(n, h->hello, "hello", 5, 10000), 0);
	}
	th_gate_open(&h->ready);
	CHILD_CHECK(th_gate_wait(&h->release, 30000) == 0);
	shmrpc_close(n);
	return 0;
}

void th_holder_start_opts(struct th_holder *h, const struct shmrpc_opts *o, const char *name,
			  const char *hello)
{
	memset(h, 0, sizeof(*h));
	h->o = *o;
	snprintf(h->name, sizeof(h->name), "%s", name);
	snprintf(h->hello, sizeof(h->hello), "%s", hello ? hello : "");
	th_gate_init(&h->ready);
	th_gate_init(&h->release);
	h->pid = th_fork(holder_main, h);
	assert_true(h->pid > 0);
	assert_int_equal(th_gate_wait(&h->ready, 10000), 0);
}

void th_holder_start(struct th_holder *h, const struct th_dom *d, const char *name,
		     const char *hello)
{
	th_holder_start_opts(h, &d->opts, name, hello);
}

void th_holder_fini(struct th_holder *h)
{
	th_gate_close(&h->ready);
	th_gate_close(&h->release);
}

void th_holder_stop(struct th_holder *h)
{
	th_gate_open(&h->release);
	assert_int_equal(th_wait(h->pid, 10000), 0);
	th_holder_fini(h);
}

void th_holder_kill(struct th_holder *h)
{
	assert_int_equal(kill(h->pid, SIGKILL), 0);
	assert_int_equal(th_wait(h->pid, 10000), 128 + SIGKILL);
	th_holder_fini(h);
}

int th_send_once_main(void *arg)
{
	struct th_holder *h = arg;
	struct shmrpc_node *n;
	int v = h->value;

	CHILD_CHECK_RC(shmrpc_open(h->name, &h->o, &n), 0);
	CHILD_CHECK_RC(shmrpc_send(n, "r", &v, sizeof(v), 1000), 0);
	if (!h->stay) {
		shmrpc_close(n);
		return 0;
	}
	th_gate_open(&h->ready);
	CHILD_CHECK(th_gate_wait(&h->release, 30000) == 0); /* killed here */
	return 1;
}
