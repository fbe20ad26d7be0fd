// SPDX-License-Identifier: MIT
/*
 * The fault sweep (runner.h): a child per N, its baseline and its check
 * that nothing was left, and the loop over every N in the test process.
 *
 * What "nothing left" means, in the child, once every node of the scenario
 * (its own and its peers') is closed, compared with the baseline taken
 * before the scenario's setup (after a warm-up that starts what lives as
 * long as the process: the peers' watcher with its epoll and eventfd, its
 * table of peers):
 *  - /proc/self/fd: the same descriptors, to the same files (a descriptor
 *    missing is one the library closed twice);
 *  - /proc/self/maps: no mapping of a /dev/shm file nor of an io_uring;
 *  - /proc/self/task: the same number of threads;
 *  - the library's heap blocks (the interposer's count): the same number;
 *  - /dev/shm: no file of the scenario's domain, nor of the warm-up's.
 * A scenario without warm-up (FR_COLD) may end with the watcher started
 * (its thread, an eventpoll and an eventfd, its table of peers) when the
 * baseline had none.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"

#define SNAP_MAX 128
#define SNAP_LEN 96
#define CHILD_MS 60000 /* a child that takes longer hangs */

struct snap {
	int nfd, nmap, threads;
	long blocks;
	char fd[SNAP_MAX][SNAP_LEN];
	char map[SNAP_MAX][SNAP_LEN];
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void snap_fds(struct snap *s)
{
	char path[64], target[SNAP_LEN - 16];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	ssize_t n;
	int fd;

	s->nfd = 0;
	while (d && (e = readdir(d)) && s->nfd < SNAP_MAX) {
		fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		snprintf(s->fd[s->nfd++], SNAP_LEN, "%d %s", fd, target);
	}
	if (d)
		closedir(d);
	qsort(s->fd, (size_t)s->nfd, SNAP_LEN, cmp_str);
}

static void snap_maps(struct snap *s)
{
	char line[512], *p;
	FILE *f = fopen("/proc/self/maps", "re");

	s->nmap = 0;
	while (f && fgets(line, sizeof(line), f) && s->nmap < SNAP_MAX) {
		p = strstr(line, "/dev/shm/");
		if (!p)
			p = strstr(line, "[io_uring]");
		if (!p)
			continue;
		p[strcspn(p, "\n")] = '\0';
		snprintf(s->map[s->nmap++], SNAP_LEN, "%s", p);
	}
	if (f)
		fclose(f);
	qsort(s->map, (size_t)s->nmap, SNAP_LEN, cmp_str);
}

static void snap_take(struct snap *s)
{
	snap_fds(s);
	snap_maps(s);
	s->threads = th_count_threads();
	s->blocks = fault_live_blocks();
}

static bool has_kind(const struct snap *s, const char *kind)
{
	for (int i = 0; i < s->nfd; i++)
		if (strstr(s->fd[i], kind))
			return true;
	return false;
}

static bool snap_has_fd(const struct snap *s, const char *fd)
{
	return bsearch(fd, s->fd, (size_t)s->nfd, SNAP_LEN, cmp_str) != NULL;
}

/* The watcher started meanwhile (a cold baseline): its two descriptors. */
static bool watcher_fd(const struct snap *base, const char *fd)
{
	return !has_kind(base, "[eventpoll]") &&
	       (strstr(fd, "anon_inode:[eventpoll]") || strstr(fd, "anon_inode:[eventfd]"));
}

static int snap_diff(struct fr_ctx *c, const struct snap *base, const struct snap *end)
{
	int i, bad = 0, watcher = !has_kind(base, "[eventpoll]") && has_kind(end, "[eventpoll]");

	for (i = 0; i < end->nfd; i++)
		if (!snap_has_fd(base, end->fd[i]) && !watcher_fd(base, end->fd[i]))
			bad = fr_fail(c, "descriptor left open: %s", end->fd[i]);
	for (i = 0; i < base->nfd; i++)
		if (!snap_has_fd(end, base->fd[i]))
			bad = fr_fail(c, "descriptor closed by the library: %s", base->fd[i]);
	for (i = 0; i < end->nmap; i++)
		bad = fr_fail(c, "mapping left: %s", end->map[i]);
	if (end->threads != base->threads + watcher)
		bad = fr_fail(c, "%d threads, %d before", end->threads, base->threads);
	if (end->blocks != base->blocks + watcher)
		bad = fr_fail(c, "%ld heap blocks of the library, %ld before", end->blocks,
			      base->blocks);
	return bad;
}

/* The library's own threads and the watcher's queue settle a moment after
 * the last close: wait (sleeping) for the counts to come back (and, from a
 * cold baseline, for what the watcher may have added). */
static void settle(const struct snap *base)
{
	int cold = !has_kind(base, "[eventpoll]");
	double end = th_now_ms() + 2000;

	while (th_now_ms() < end && (fault_live_blocks() > base->blocks + cold ||
				     th_count_threads() > base->threads + cold))
		th_sleep_ms(2);
}

/*
 * What lives as long as the process, started before the baseline: the
 * watcher (at the first open), its table of peers (at the first connect to
 * another process), the uring backend's thread-exit key, liburing's and
 * libsodium's one-time set-up.
 */
static int warm_up(struct fr_ctx *c)
{
	struct shmrpc_node *w;
	struct fr_rep rep;
	int rc;

	if (fr_p_open(c, 0, 1, c->scratch, "wp") || fr_open_in(c, c->scratch, "w", &w))
		return -1;
	rc = shmrpc_send(w, "wp", "m0", 2, FR_IO_MS);
	if (rc)
		return fr_fail(c, "warm-up send: %d", rc);
	if (fr_p_recv(c, 0, 1, &rep) || rep.rc != 2)
		return fr_fail(c, "warm-up: the peer received %d", rep.rc);
	shmrpc_close(w);
	return fr_p_close(c, 0, 1);
}

static int teardown(struct fr_ctx *c)
{
	int p, bad = 0;

	shmrpc_close(c->a);
	shmrpc_close(c->x);
	c->a = c->x = NULL;
	for (p = 0; p < c->s->peers; p++)
		if (fr_peer_stop(c, p))
			bad = -1;
	return bad;
}

static int child_run(const struct fr_scen *s, long api_n, long bg_n, bool sticky,
		     struct fr_result *res)
{
	struct fr_ctx c = { .s = s, .res = res, .why = res->why };
	struct snap *base = calloc(2, sizeof(*base)), *end = base + 1;
	double t0;
	int p, bad = 0, rc;

	th_dom_init(&c.d);
	snprintf(c.scratch, sizeof(c.scratch), "%.60sw", c.d.name);
	if (!base)
		return fr_fail(&c, "no memory");
	for (p = 0; p < s->peers; p++)
		if (fr_peer_start(&c, p))
			return -1;
	if (!(s->flags & FR_COLD) && warm_up(&c))
		return -1;
	snap_take(base);
	if (s->setup && s->setup(&c))
		return -1;
	c.sticky = sticky;
	fault_api_arm(api_n, sticky);
	fault_bg_arm(bg_n, sticky);
	t0 = th_now_ms();
	rc = s->call(&c);
	res->call_ms = th_now_ms() - t0;
	fault_api_disarm();
	/* Sticky: the resources come back once the call is over, and what
	 * follows checks that the node recovers. A one-off fault of the
	 * library's threads stays armed (it may come later). */
	if (sticky)
		fault_bg_disarm();
	res->rc = rc;
	bad = s->after(&c, rc);
	if (teardown(&c))
		bad = -1;
	fault_bg_disarm();
	settle(base);
	snap_take(end);
	if (snap_diff(&c, base, end))
		bad = -1;
	if (th_shm_count(c.d.name) || th_shm_count(c.scratch))
		bad = fr_fail(&c, "left in /dev/shm: %d files of the domain, %d of the warm-up's",
			      th_shm_clean(c.d.name), th_shm_clean(c.scratch));
	for (p = 0; p < s->peers; p++)
		fr_peer_fini(&c, p);
	res->outcome = !res->f.hit_n ? FR_OUT_NONE : rc < 0 ? FR_OUT_ERR : FR_OUT_ABSORBED;
	free(base);
	return bad;
}

/* ------------------------------------------------------------ the sweep */

struct tally {
	int runs, failed, errs, absorbed, missed;
};

static const char *errname(int e)
{
	static const struct {
		int e;
		const char *n;
	} t[] = { { ENOMEM, "ENOMEM" }, { EMFILE, "EMFILE" }, { ENOSPC, "ENOSPC" },
		  { EINTR, "EINTR" },	{ EAGAIN, "EAGAIN" }, { ENOLCK, "ENOLCK" },
		  { ENOSYS, "ENOSYS" }, { EBUSY, "EBUSY" },   { ENOENT, "ENOENT" },
		  { ENFILE, "ENFILE" }, { EFBIG, "EFBIG" } };

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].e == e)
			return t[i].n;
	return "?";
}

#define SPIN_FAILS 10000

/* One run in a child: 0 passed, else failed (said). */
static int run_one(const struct fr_scen *s, long api_n, long bg_n, bool sticky,
		   struct fr_result *res, struct tally *t)
{
	const char *be = getenv("SHMRPC_BACKEND"), *how, *mode;
	pid_t pid;
	int st;

	memset(res, 0, sizeof(*res));
	pid = th_fork_raw();
	if (pid == 0) {
		fault_attach(&res->f);
		exit(child_run(s, api_n, bg_n, sticky, res) ? 1 : 0);
	}
	st = pid < 0 ? -1 : th_wait(pid, CHILD_MS);
	t->runs++;
	t->errs += st == 0 && res->outcome == FR_OUT_ERR;
	t->absorbed += st == 0 && res->outcome == FR_OUT_ABSORBED;
	t->missed += st == 0 && (api_n || bg_n) && res->outcome == FR_OUT_NONE;
	mode = bg_n ? (sticky ? "bg-sticky" : "bg") : sticky ? "api-sticky" : "api";
	/* A call failed this often: a loop retries it without end (a core
	 * spent on it), which nothing else here would notice. */
	if (st == 0 && res->f.fails > SPIN_FAILS) {
		st = 1;
		snprintf(res->why, sizeof(res->why),
			 "calls failed %ld times: a loop retries them without waiting",
			 res->f.fails);
	}
	if (st == 0) {
		if (getenv("FAULT_VERBOSE"))
			printf("[fault] %s %s N=%ld: %s %s (%ld failed) -> rc %d (%.1f ms)\n",
			       s->name, mode, bg_n ? bg_n : api_n, res->f.hit.sym,
			       errname(res->f.hit.err), res->f.fails, res->rc, res->call_ms);
		return 0;
	}
	t->failed++;
	how = st < 0	    ? "hung (killed); " :
	      st > 128	    ? "died of a signal; " :
	      st == FR_LSAN ? "LeakSanitizer found a leak (its report above); " :
			      "";
	printf("[fault] FAILED %s [%s] %s N=%ld: %s failed with %s (%ld calls failed); the call "
	       "returned %d; %s%s\n",
	       s->name, be ? be : "default", mode, bg_n ? bg_n : api_n,
	       res->f.hit_n ? res->f.hit.sym : "(no call)",
	       res->f.hit_n ? errname(res->f.hit.err) : "-", res->f.fails, res->rc, how, res->why);
	return -1;
}

static void print_log(const char *what, const struct fault_call *log, long n)
{
	long i;

	printf("[fault]   %s calls:", what);
	for (i = 0; i < n && i < FAULT_LOG_MAX; i++)
		printf("%s %ld:%s", i % 6 ? "" : "\n[fault]    ", i + 1, log[i].sym);
	printf("\n");
}

int fr_sweep(const struct fr_scen *s)
{
	const char *be = getenv("SHMRPC_BACKEND"), *only = getenv("FAULT_N");
	struct fr_result *res =
		mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct tally ta = { 0 }, tb = { 0 }, tc = { 0 }, td = { 0 };
	long api, bg, n;
	double t0 = th_now_ms();

	if (res == MAP_FAILED)
		return 1;
	if (run_one(s, 0, 0, false, res, &ta)) {
		printf("[fault] %s: the run without a fault fails\n", s->name);
		munmap(res, sizeof(*res));
		return 1;
	}
	api = res->f.api_calls;
	bg = res->f.bg_calls;
	if (getenv("FAULT_VERBOSE")) {
		print_log("API", res->f.api_log, api);
		print_log("BG", res->f.bg_log, bg);
	}
	ta.runs = 0;
	for (n = 1; !(s->flags & (FR_BG_ONLY | FR_NO_SWEEP)) && n <= api; n++)
		if (!only || atol(only) == n)
			run_one(s, n, 0, false, res, &ta);
	/* Sticky: the same N, and every later call out of resources fails too
	 * (a failure path that needs what just ran out). */
	for (n = 1; !(s->flags & (FR_BG_ONLY | FR_NO_SWEEP)) && n <= api; n++)
		if (!only || atol(only) == n)
			run_one(s, n, 0, true, res, &tc);
	for (n = 1; !(s->flags & FR_NO_SWEEP) && n <= bg; n++)
		if (!only || atol(only) == n)
			run_one(s, 0, n, false, res, &tb);
	for (n = 1; !(s->flags & FR_NO_SWEEP) && n <= bg; n++)
		if (!only || atol(only) == n)
			run_one(s, 0, n, true, res, &td);
	printf("[fault] %-16s [%s] %3ld API calls, %3d runs: %d errors, %d absorbed, %d not "
	       "reached, %d FAILED; sticky: %d errors, %d absorbed, %d FAILED; %3ld BG calls, "
	       "%d runs, %d FAILED, sticky %d FAILED (%.1f s)\n",
	       s->name, be ? be : "default", api, ta.runs, ta.errs, ta.absorbed, ta.missed,
	       ta.failed, tc.errs, tc.absorbed, tc.failed, bg, tb.runs, tb.failed, td.failed,
	       (th_now_ms() - t0) / 1000);
	fflush(stdout);
	munmap(res, sizeof(*res));
	return ta.failed + tb.failed + tc.failed + td.failed;
}
