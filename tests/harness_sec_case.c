// SPDX-License-Identifier: MIT
/*
 * What every reaper case of the security suite does around its attack
 * (harness_sec.h): the victim's agent, the reaper, the kill-to-reclaimed
 * delay, and the checks.
 *
 * The agent is a process of user A holding nodes a1 and a2 of domain D
 * (a ring each way) and a keeper node "k" of D's delay domain D-lat, driven
 * over a socket: one command byte, one int32 back. Between commands it
 * sits outside the library, so its files do not change unless someone else
 * writes them: the snapshot before and after an attack must be equal.
 *
 * Delay: the agent forks a victim node of A into D-lat, kills it, and
 * sleeps on the registry's epoch until the slot is free, then until its
 * files are gone (tools/reaper/killtime.h's observer, mapping the registry
 * as A). Nodes run with $SHMRPC_WATCH=0 and a 60 s safety timeout, and
 * nothing else joins or looks up in D-lat meanwhile: only the reaper can
 * reclaim the victim in time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_sec.h"
#include "killtime.h"

#ifndef SHMRPC_REAPER_BIN
#define SHMRPC_REAPER_BIN "build/tools/shmrpc-reaper"
#endif

#define CMD_MS 10000 /* any agent command */

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ the agent */

struct agent_cmd {
	char op; /* 'r' round trip, 'e' echo, 'k' kill a victim, 'q' quit */
	int timeout_ms;
};

struct agent_ctx {
	struct sec_agent *ag;
	struct shmrpc_node *a1, *a2, *k;
};

static int roundtrip(struct agent_ctx *c)
{
	char buf[16], from[SHMRPC_NAME_MAX + 1];
	int rc;

	rc = shmrpc_send(c->a1, "a2", "ping", 4, 2000);
	if (!rc)
		rc = shmrpc_recv(c->a2, buf, sizeof(buf), from, 2000);
	if (rc == 4)
		rc = strcmp(from, "a1") || memcmp(buf, "ping", 4) ? -EBADMSG : 0;
	if (!rc)
		rc = shmrpc_send(c->a2, "a1", "pong", 4, 2000);
	if (!rc)
		rc = shmrpc_recv(c->a1, buf, sizeof(buf), from, 2000);
	if (rc == 4)
		rc = strcmp(from, "a2") || memcmp(buf, "pong", 4) ? -EBADMSG : 0;
	return rc > 0 ? -EBADMSG : rc;
}

/* a1 answers one message from anyone, to its sender. */
static int echo(struct agent_ctx *c, int timeout_ms)
{
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	int len = shmrpc_recv(c->a1, buf, sizeof(buf), from, timeout_ms);

	if (len < 0)
		return len;
	return shmrpc_send(c->a1, from, buf, (size_t)len, 2000);
}

static int victim_main(const struct sec_agent *ag, const char *name, int ready_fd)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = ag->lat, .mode = ag->mode };
	struct shmrpc_node *n;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (shmrpc_open(name, &o, &n))
		_exit(1);
	if (write(ready_fd, "r", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

/* Kill a fresh victim in the delay domain: microseconds to reclaimed. */
static int reclaim_us(struct agent_ctx *c, int timeout_ms)
{
	struct shmrpc_kt_obs *o = NULL;
	struct shmrpc_kt_id id;
	struct th_gate ready;
	char name[16];
	double t0, end;
	pid_t pid;
	int rc;

	snprintf(name, sizeof(name), "v%d", ++c->ag->victims);
	th_gate_init(&ready);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		victim_main(c->ag, name, ready.fd[1]);
	rc = pid > 0 && !th_gate_wait(&ready, 5000) ? 0 : -EIO;
	if (!rc)
		rc = shmrpc_kt_obs_open(&o, c->ag->lat);
	if (!rc)
		rc = shmrpc_kt_obs_find(o, name, &id);
	if (!rc) {
		nap_ms(30); /* the reaper mirrors it meanwhile (it usually takes < 1 ms) */
		t0 = th_now_ms();
		end = t0 + timeout_ms;
		kill(pid, SIGKILL);
		rc = shmrpc_kt_obs_wait_gone(o, &id, timeout_ms, NULL);
		while (!rc && shmrpc_kt_obs_files(o, &id) > 0 && th_now_ms() < end)
			nap_ms(1);
		if (!rc && shmrpc_kt_obs_files(o, &id) > 0)
			rc = -ETIMEDOUT;
		if (!rc)
			rc = (int)((th_now_ms() - t0) * 1000);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	shmrpc_kt_obs_close(o);
	th_gate_close(&ready);
	return rc;
}

static int agent_main(void *arg)
{
	struct sec_agent *ag = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = ag->dom, .mode = ag->mode };
	struct shmrpc_opts ol = { .sz = sizeof(o), .domain = ag->lat, .mode = ag->mode };
	struct agent_ctx c = { .ag = ag };
	struct agent_cmd cmd;
	int32_t rc;

	CHILD_CHECK_RC(shmrpc_open("a1", &o, &c.a1), 0);
	CHILD_CHECK_RC(shmrpc_open("a2", &o, &c.a2), 0);
	CHILD_CHECK_RC(shmrpc_open("k", &ol, &c.k), 0);
	CHILD_CHECK_RC(roundtrip(&c), 0);
	rc = 0;
	CHILD_CHECK(write(ag->sock, &rc, sizeof(rc)) == sizeof(rc));
	while (read(ag->sock, &cmd, sizeof(cmd)) == sizeof(cmd)) {
		switch (cmd.op) {
		case 'r':
			rc = roundtrip(&c);
			break;
		case 'e':
			rc = echo(&c, cmd.timeout_ms);
			break;
		case 'k':
			rc = reclaim_us(&c, cmd.timeout_ms);
			break;
		default:
			shmrpc_close(c.k);
			shmrpc_close(c.a2);
			shmrpc_close(c.a1);
			return 0;
		}
		CHILD_CHECK(write(ag->sock, &rc, sizeof(rc)) == sizeof(rc));
	}
	return 0;
}

/* One command: the agent's int32 answer, or -ETIMEDOUT/-EPIPE. */
static int agent_cmd(struct sec_agent *ag, char op, int timeout_ms)
{
	struct agent_cmd cmd = { op, timeout_ms };
	struct pollfd p = { ag->sock, POLLIN, 0 };
	int32_t rc;

	if (ag->pid <= 0 || send(ag->sock, &cmd, sizeof(cmd), MSG_NOSIGNAL) != sizeof(cmd))
		return -EPIPE;
	if (poll(&p, 1, timeout_ms + CMD_MS) != 1)
		return -ETIMEDOUT;
	return read(ag->sock, &rc, sizeof(rc)) == sizeof(rc) ? rc : -EPIPE;
}

int sec_agent_start(struct sec_agent *ag, enum sec_who who, const char *dom, uint32_t mode)
{
	struct pollfd p;
	int32_t rc = -EIO;
	int sv[2];

	memset(ag, 0, sizeof(*ag));
	ag->who = who;
	ag->mode = mode;
	snprintf(ag->dom, sizeof(ag->dom), "%s", dom);
	snprintf(ag->lat, sizeof(ag->lat), "%.50s-lat", dom);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	ag->sock = sv[1];
	ag->pid = sec_fork_as(who, agent_main, ag);
	close(sv[1]);
	ag->sock = sv[0];
	p = (struct pollfd){ ag->sock, POLLIN, 0 };
	if (ag->pid > 0 && poll(&p, 1, CMD_MS) == 1 &&
	    read(ag->sock, &rc, sizeof(rc)) != sizeof(rc))
		rc = -EPIPE;
	return rc;
}

int sec_agent_roundtrip(struct sec_agent *ag)
{
	return agent_cmd(ag, 'r', 0);
}

struct joiner {
	struct sec_agent *ag;
	const char *name;
};

static int joiner_main(void *arg)
{
	struct joiner *j = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = j->ag->dom, .mode = j->ag->mode };
	struct shmrpc_node *n;
	char buf[16];
	int rc = shmrpc_open(j->name, &o, &n);

	if (rc) {
		fprintf(stderr, "joiner %s: shmrpc_open = %d (%s): %s\n", j->name, rc,
			strerror(-rc), shmrpc_last_error());
		return 10;
	}
	rc = shmrpc_wait_node(n, "a1", 2000);
	if (rc < 0)
		return fprintf(stderr, "joiner %s: a1 not seen: %d\n", j->name, rc), 11;
	rc = shmrpc_send(n, "a1", "hi", 2, 2000);
	if (rc)
		return fprintf(stderr, "joiner %s: send to a1 = %d\n", j->name, rc), 12;
	rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 5000);
	if (rc != 2 || memcmp(buf, "hi", 2))
		return fprintf(stderr, "joiner %s: echo from a1 = %d\n", j->name, rc), 13;
	shmrpc_close(n);
	return 0;
}

int sec_agent_join(struct sec_agent *ag, const char *name)
{
	struct joiner j = { ag, name };
	pid_t pid = sec_fork_as(ag->who, joiner_main, &j);
	int echo_rc = agent_cmd(ag, 'e', 3000), rc = th_wait(pid, 10000);

	sec_untrack(pid);
	if (rc == 0 && echo_rc)
		rc = 20;
	return rc;
}

double sec_agent_reclaim_ms(struct sec_agent *ag, int timeout_ms)
{
	int rc = agent_cmd(ag, 'k', timeout_ms);

	return rc < 0 ? -1 : rc / 1000.0;
}

void sec_agent_stop(struct sec_agent *ag)
{
	if (ag->pid > 0) {
		agent_cmd(ag, 'q', 0);
		th_wait(ag->pid, 5000);
		sec_untrack(ag->pid);
		close(ag->sock);
	}
	ag->pid = -1;
}

/* ------------------------------------------------------------ the reaper */

int sec_reaper_start(struct sec_reaper *r, const char *mode, const char *const *extra)
{
	static int seq;
	const char *argv[16] = { "-v", "--mode", mode };
	const char *bin = getenv("SHMRPC_REAPER");
	int n = 3;
	pid_t pid;

	r->mode = mode;
	r->hup_off = 0;
	r->hups = 0;
	snprintf(r->log, sizeof(r->log), "%s/reaper-%d.log", sec.ws, ++seq);
	unlink(r->log);
	if (!extra)
		argv[n++] = "--no-pin";
	while (extra && *extra && n < 15)
		argv[n++] = *extra++;
	argv[n] = NULL;
	pid = shmrpc_kt_reaper_start(bin && *bin ? bin : SHMRPC_REAPER_BIN, argv, r->log, 5000);
	if (pid == -ENOTSUP) {
		sec_log_print(r);
		print_message("skip: the kernel refuses the BPF probe here (see the log)\n");
		skip();
	}
	r->pid = pid > 0 ? pid : -1;
	sec_track(r->pid);
	return pid > 0 ? 0 : pid;
}

int sec_reaper_stop(struct sec_reaper *r, int timeout_ms)
{
	int st;

	if (r->pid <= 0)
		return -ESRCH;
	st = shmrpc_kt_reaper_stop(r->pid, SIGTERM, timeout_ms);
	sec_untrack(r->pid);
	r->pid = -1;
	if (st < 0)
		return st;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Lines of @f from @*off on that hold a (and b, c if set); *off moves past
 * the last complete line read. */
static int count_from(FILE *f, long *off, const char *a, const char *b, const char *c)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int count = 0;

	if (fseek(f, *off, SEEK_SET))
		return 0;
	while ((n = getline(&line, &cap, f)) > 0 && line[n - 1] == '\n') {
		*off += n;
		count += strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c));
	}
	free(line);
	return count;
}

int sec_log_count(const struct sec_reaper *r, const char *a, const char *b, const char *c)
{
	FILE *f = fopen(r->log, "r");
	long off = 0;
	int n;

	if (!f)
		return 0;
	n = count_from(f, &off, a, b, c);
	fclose(f);
	return n;
}

/* SIGHUP lines logged so far, read incrementally: an attacked reaper's log
 * can grow by megabytes. */
static int hups(struct sec_reaper *r)
{
	FILE *f = fopen(r->log, "r");

	if (f) {
		r->hups += count_from(f, &r->hup_off, "reconcile reason=SIGHUP", NULL, NULL);
		fclose(f);
	}
	return r->hups;
}

static int hups_wait(struct sec_reaper *r, int n, int ms)
{
	double end = th_now_ms() + ms;

	while (hups(r) < n) {
		if (th_now_ms() > end)
			return -ETIMEDOUT;
		nap_ms(5);
	}
	return 0;
}

int sec_log_wait(const struct sec_reaper *r, int n, const char *a, const char *b, const char *c,
		 int ms)
{
	double end = th_now_ms() + ms;

	while (sec_log_count(r, a, b, c) < n) {
		if (th_now_ms() > end)
			return -ETIMEDOUT;
		nap_ms(5);
	}
	return 0;
}

void sec_log_print(const struct sec_reaper *r)
{
	char buf[2048];
	struct stat st;
	ssize_t n;
	int fd = open(r->log, O_RDONLY);

	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(stderr, "---- reaper log %s (%lld bytes)\n", r->log, (long long)st.st_size);
	if ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	if (st.st_size > 2 * (off_t)sizeof(buf)) {
		fprintf(stderr, "\n[... %lld bytes ...]\n",
			(long long)st.st_size - 2 * (long long)sizeof(buf));
		lseek(fd, st.st_size - (off_t)sizeof(buf), SEEK_SET);
	}
	if ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "----\n");
	close(fd);
}

long sec_log_bytes(const struct sec_reaper *r)
{
	struct stat st;

	return stat(r->log, &st) ? 0 : (long)st.st_size;
}

int sec_reaper_barrier(struct sec_reaper *r, int ms)
{
	int n = hups(r);

	if (r->pid <= 0 || kill(r->pid, SIGHUP) || hups_wait(r, n + 1, ms) ||
	    kill(r->pid, SIGHUP) || hups_wait(r, n + 2, ms))
		return -ETIMEDOUT;
	return 0;
}

double sec_cpu_ms(pid_t pid)
{
	return th_cpu_ms(pid);
}

/* ------------------------------------------------------------ the frame */

void sec_case_reaper(struct sec_case *c, const char *mode, const char *const *extra)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->ag.pid = -1;
	c->mode = mode;
	rc = sec_reaper_start(&c->r, mode, extra);
	if (rc) {
		sec_log_print(&c->r);
		print_message("FAILED CHECK: %s reaper, %s: not READY within 5 s (%s)\n", mode,
			      sec_symlinks_label(), strerror(-rc));
	}
	assert_int_equal(rc, 0);
}

void sec_case_victim(struct sec_case *c, enum sec_who who, const char *dom, uint32_t mode)
{
	assert_int_equal(sec_agent_start(&c->ag, who, dom, mode), 0);
	/* Followed: its keeper is watched (the delay domain is the last one
	 * the agent joins). */
	if (sec_log_wait(&c->r, 1, ": watch ", "node=k ", NULL, 3000))
		sec_log_print(&c->r);
	assert_int_equal(sec_log_wait(&c->r, 1, ": watch ", "node=k ", NULL, 0), 0);
	c->base_ms = sec_agent_reclaim_ms(&c->ag, 3000);
	assert_true(c->base_ms >= 0);
	c->s0 = sec_snap_take(sec.b);
	assert_non_null(c->s0);
}

int sec_case_check(struct sec_case *c, int flags)
{
	struct sec_snap *s1;
	int barrier, diffs, rt = 0, stop, bad = 0;

	barrier = sec_reaper_barrier(&c->r, 3000);
	s1 = sec_snap_take(sec.b);
	diffs = sec_snap_diff(c->s0, s1, flags & SEC_CHECK_REG_CONTENT);
	sec_snap_free(s1);
	c->after_ms = sec_agent_reclaim_ms(&c->ag, SEC_RECLAIM_BOUND_MS + 500);
	print_message("[observed] %s reaper, %s, %s: A's node killed -> reclaimed in %.2f ms "
		      "before the attack, %s%.2f ms after\n",
		      c->mode, sec_symlinks_label(), c->label ? c->label : "attack", c->base_ms,
		      c->after_ms < 0 ? "not within 2.5 s: " : "", c->after_ms);
	if (flags & SEC_CHECK_ROUNDTRIP)
		rt = sec_agent_roundtrip(&c->ag);
	stop = sec_reaper_stop(&c->r, 3000);
	if (barrier && ++bad)
		print_message("FAILED CHECK: the reaper did not answer two SIGHUPs in 3 s\n");
	if (diffs && ++bad)
		print_message("FAILED CHECK: %d of A's files (or root's) touched\n", diffs);
	if ((c->after_ms < 0 || c->after_ms > SEC_RECLAIM_BOUND_MS) && ++bad)
		print_message("FAILED CHECK: A's node was not reclaimed within %d ms\n",
			      SEC_RECLAIM_BOUND_MS);
	if (rt && ++bad)
		print_message("FAILED CHECK: a1 -> a2 -> a1 round trip: %d (%s)\n", rt,
			      strerror(-rt));
	if (stop && ++bad)
		print_message("FAILED CHECK: SIGTERM did not stop the reaper cleanly: %d\n", stop);
	if (bad)
		sec_log_print(&c->r);
	return bad;
}

void sec_case_end(struct sec_case *c)
{
	if (c->r.pid > 0) {
		kill(c->r.pid, SIGKILL);
		waitpid(c->r.pid, NULL, 0);
		sec_untrack(c->r.pid);
		c->r.pid = -1;
	}
	sec_snap_free(c->s0);
	c->s0 = NULL;
	sec_kill_all();
	sec_shm_wipe();
}
