// SPDX-License-Identifier: MIT
/*
 * Kill-to-cleaned delay; see killtime.h (the observer functions are in
 * killtime_obs.c). The helpers are forked processes
 * driven over pipes, one byte (or one struct report) per step, and every
 * wait has a timeout: a step that never comes fails the run, never hangs it.
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
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmrpc.h"
#include "killtime.h"

/* CLOCK_MONOTONIC, in nanoseconds. */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define STEP_MS 10000 /* any helper step */
#define MSG 1000      /* bytes of each filler message */

/* ---------------------------------------------------- pipes */

struct report {
	char tag;     /* 'b': about to block / ready; 'e': result */
	int rc, rc2;  /* the blocked send, the send after it */
	int64_t t_ns; /* CLOCK_MONOTONIC when the blocked send returned */
};

static int xread(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	n = read(fd, buf, len);
	return n == (ssize_t)len ? 0 : -EPIPE;
}

static void xwrite(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		_exit(3);
}

/* The controller's writes: a helper that died must not SIGPIPE the caller. */
static int ctl_write(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EPIPE;
}

static void report(int fd, char tag, int rc, int rc2, int64_t t)
{
	struct report r = { tag, rc, rc2, t };

	xwrite(fd, &r, sizeof(r));
}

/* ---------------------------------------------------- helpers */

struct kt {
	const struct shmrpc_kt_opts *o;
	struct shmrpc_opts nopts;
	int p_cmd[2], p_rep[2], s_cmd[2], s_rep[2], v_rep[2];
	pid_t p, s;
};

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "killtime %d: %s:%d: %s failed\n", (int)getpid(), \
				__FILE__, __LINE__, #cond);                               \
			_exit(2);                                                         \
		}                                                                         \
	} while (0)

static void child_env(const struct kt *k)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setenv("SHMRPC_SAFETY_MS", "60000", 1);
	if (k->o->peer_watch)
		unsetenv("SHMRPC_WATCH");
	else
		setenv("SHMRPC_WATCH", "0", 1);
}

static struct shmrpc_node *child_open(const struct kt *k, const char *name)
{
	struct shmrpc_node *n = NULL;
	int rc = shmrpc_open(name, &k->nopts, &n);

	if (rc)
		fprintf(stderr, "killtime: shmrpc_open(%s) = %d\n", name, rc);
	CHECK(rc == 0);
	return n;
}

/* Fill the ring to @to (non-blocking sends) until it is full. */
static void fill(struct shmrpc_node *n, const char *to)
{
	static char msg[MSG];
	int rc, i = 0;

	while ((rc = shmrpc_send(n, to, msg, sizeof(msg), 0)) == 0)
		i++;
	CHECK(rc == -EAGAIN && i > 0);
}

static void peer_round(struct kt *k, struct shmrpc_node *p, int state)
{
	static char msg[MSG];
	char buf[16], from[SHMRPC_NAME_MAX + 1], c;
	int64_t t;
	int rc, rc2;

	CHECK(shmrpc_recv(p, buf, sizeof(buf), from, STEP_MS) == 5 && !strcmp(from, "kt-v"));
	CHECK(shmrpc_send(p, "kt-v", "ok", 2, STEP_MS) == 0);
	if (state == SHMRPC_KT_RECV) {
		report(k->p_rep[1], 'b', 0, 0, 0);
		CHECK(xread(k->p_cmd[0], &c, 1, -1) == 0 && c == 'c');
		rc = shmrpc_send(p, "kt-v", "x", 1, 0);
		rc2 = shmrpc_send(p, "kt-v", "x", 1, 0);
		report(k->p_rep[1], 'e', rc, rc2, 0);
		return;
	}
	fill(p, "kt-v");
	report(k->p_rep[1], 'b', 0, 0, 0);
	rc = shmrpc_send(p, "kt-v", msg, sizeof(msg), -1); /* until it dies */
	t = mono_ns();
	/* The later send only once the round is measured: it would compete
	 * with the cleanup for the CPUs. */
	CHECK(xread(k->p_cmd[0], &c, 1, -1) == 0 && c == 'c');
	report(k->p_rep[1], 'e', rc, shmrpc_send(p, "kt-v", "x", 1, 0), t);
}

static int peer_main(struct kt *k)
{
	struct shmrpc_node *p;
	char c[2];

	child_env(k);
	p = child_open(k, "kt-p");
	report(k->p_rep[1], 'b', 0, 0, 0);
	while (xread(k->p_cmd[0], c, 2, -1) == 0 && c[0] == 'r')
		peer_round(k, p, c[1]);
	shmrpc_close(p);
	return 0;
}

static int sink_main(struct kt *k)
{
	struct shmrpc_node *s;
	char c;

	child_env(k);
	s = child_open(k, "kt-s");
	report(k->s_rep[1], 'b', 0, 0, 0);
	xread(k->s_cmd[0], &c, 1, -1); /* never receives: kt-v fills it */
	shmrpc_close(s);
	return 0;
}

static void victim_main(struct kt *k, int state)
{
	static char msg[MSG];
	char buf[16];
	struct shmrpc_node *v;

	child_env(k);
	v = child_open(k, "kt-v");
	CHECK(shmrpc_send(v, "kt-p", "hello", 5, STEP_MS) == 0);
	CHECK(shmrpc_recv(v, buf, sizeof(buf), NULL, STEP_MS) == 2);
	if (state == SHMRPC_KT_SEND)
		fill(v, "kt-s");
	xwrite(k->v_rep[1], "r", 1);
	switch (state) {
	case SHMRPC_KT_RECV:
		shmrpc_recv(v, buf, sizeof(buf), NULL, -1);
		break;
	case SHMRPC_KT_SEND:
		shmrpc_send(v, "kt-s", msg, sizeof(msg), -1);
		break;
	default:
		for (;;)
			pause();
	}
	_exit(4); /* it was to be killed in there */
}

static pid_t spawn(struct kt *k, int (*fn)(struct kt *))
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(fn(k));
	return pid < 0 ? -errno : pid;
}

/* Wait for a child with a timeout; its status, or -ETIMEDOUT (killed then). */
static int reap(pid_t pid, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), status = -1;
	struct pollfd p = { fd, POLLIN, 0 };

	if (fd >= 0) {
		if (poll(&p, 1, timeout_ms) != 1)
			kill(pid, SIGKILL);
		close(fd);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -ECHILD;
	return p.revents ? status : -ETIMEDOUT;
}

/* The channels: the controller writes cmd[1] and reads rep[0]; helpers the others. */
#define KT_CHANNELS(k)                                                     \
	{                                                                  \
		(k)->p_cmd, (k)->p_rep, (k)->s_cmd, (k)->s_rep, (k)->v_rep \
	}

static void kt_close_pipes(struct kt *k)
{
	int *fds[] = KT_CHANNELS(k);

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (fds[i][0] >= 0)
			close(fds[i][0]);
		if (fds[i][1] >= 0)
			close(fds[i][1]);
		fds[i][0] = fds[i][1] = -1;
	}
}

static int kt_start(struct kt *k)
{
	int *fds[] = KT_CHANNELS(k);
	struct report r;

	/* Stream socket pairs rather than pipes: see ctl_write. */
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[i]))
			return -errno;
	k->nopts = (struct shmrpc_opts){ .sz = sizeof(k->nopts),
					 .domain = k->o->domain,
					 .ring_bytes = 4096,
					 .backend = k->o->backend };
	k->p = spawn(k, peer_main);
	if (k->p < 0 || xread(k->p_rep[0], &r, sizeof(r), STEP_MS))
		return -EPROTO;
	k->s = spawn(k, sink_main);
	if (k->s < 0 || xread(k->s_rep[0], &r, sizeof(r), STEP_MS))
		return -EPROTO;
	return 0;
}

static void kt_stop(struct kt *k)
{
	if (k->p > 0) {
		ctl_write(k->p_cmd[1], "q", 2);
		reap(k->p, STEP_MS);
	}
	if (k->s > 0) {
		ctl_write(k->s_cmd[1], "q", 1);
		reap(k->s, STEP_MS);
	}
	kt_close_pipes(k);
}

/* ---------------------------------------------------- one round */

/*
 * The reclaim unlinks every file of the node before it frees the slot. A
 * peer that was connecting to the node meanwhile may still create a ring
 * named after it, see NODE_CLOSING and unlink that ring itself a moment
 * later (lib/reclaim.c, close_dead): allow that, not a leak.
 */
static int files_wait_gone(struct shmrpc_kt_obs *obs, const struct shmrpc_kt_id *id)
{
	struct timespec ms = { 0, 1000000 };
	int i, n;

	for (i = 0; (n = shmrpc_kt_obs_files(obs, id)) > 0 && i < 1000; i++)
		nanosleep(&ms, NULL);
	return n;
}

/* Once the victim is gone (reaped: its lock released), a node joins: its
 * join must reclaim the victim's slot. It leaves only after the round is
 * measured, as leaving sweeps too. */
static struct shmrpc_node *lazy_join(struct kt *k, pid_t v)
{
	struct shmrpc_node *j = NULL;
	int rc;

	if (waitpid(v, NULL, 0) != v)
		return NULL;
	rc = shmrpc_open("kt-j", &k->nopts, &j);
	if (rc)
		fprintf(stderr, "killtime: kt-j joins: %d\n", rc);
	return j;
}

/* Start a victim in @state and get kt-p ready; its pid, or -errno. */
static pid_t round_setup(struct kt *k, int state)
{
	char cmd[2] = { 'r', (char)state }, c;
	struct report r;
	pid_t v;

	if (ctl_write(k->p_cmd[1], cmd, 2))
		return -EPROTO;
	fflush(NULL);
	v = fork();
	if (v < 0)
		return -errno;
	if (v == 0)
		victim_main(k, state);
	if (xread(k->v_rep[0], &c, 1, STEP_MS) || xread(k->p_rep[0], &r, sizeof(r), STEP_MS) ||
	    r.tag != 'b') {
		kill(v, SIGKILL);
		reap(v, STEP_MS);
		return -EPROTO;
	}
	return v;
}

static int one_round(struct kt *k, struct shmrpc_kt_obs *obs, int state,
		     struct shmrpc_kt_round *out)
{
	const struct shmrpc_kt_opts *o = k->o;
	struct timespec settle = { o->settle_ms / 1000, (long)(o->settle_ms % 1000) * 1000000 };
	struct shmrpc_node *joiner = NULL;
	struct report r = { 0 };
	struct shmrpc_kt_id id;
	int64_t t0, t1 = 0;
	int err;
	pid_t v = round_setup(k, state);

	if (v < 0)
		return (int)v;
	err = shmrpc_kt_obs_find(obs, "kt-v", &id);
	if (err) {
		kill(v, SIGKILL);
		reap(v, STEP_MS);
		return -EPROTO;
	}
	/* kt-p asleep on the full ring; a reaper has mirrored kt-v. */
	nanosleep(&settle, NULL);
	t0 = mono_ns();
	kill(v, SIGKILL);
	if (o->lazy_join)
		joiner = lazy_join(k, v);
	err = shmrpc_kt_obs_wait_gone(obs, &id, o->timeout_ms, &t1);
	if (o->lazy_join)
		shmrpc_close(joiner);
	else
		reap(v, STEP_MS);
	if (err)
		return err; /* kt-p stays blocked: the caller kills it */
	if (files_wait_gone(obs, &id) != 0)
		return -EIO;
	if (ctl_write(k->p_cmd[1], "c", 1))
		return -EPROTO;
	if (xread(k->p_rep[0], &r, sizeof(r), STEP_MS) || r.tag != 'e' || r.rc != -EPIPE ||
	    r.rc2 != -EPIPE) {
		fprintf(stderr, "killtime: kt-p's sends to the dead kt-v: %d, %d (want -EPIPE)\n",
			r.rc, r.rc2);
		return -EPROTO;
	}
	*out = (struct shmrpc_kt_round){ state,
					 v,
					 id.slot,
					 id.gen,
					 (double)(t1 - t0) / 1e3,
					 r.t_ns ? (double)(r.t_ns - t0) / 1e3 : -1 };
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double shmrpc_kt_percentile(double *v, int n, double p)
{
	int rank;

	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	rank = (int)(p / 100.0 * n + 0.999999); /* nearest rank, 1-based */
	rank = rank < 1 ? 1 : rank > n ? n : rank;
	return v[rank - 1];
}

static void summarise(const struct shmrpc_kt_round *rd, int n, struct shmrpc_kt_result *res)
{
	double *c = calloc((size_t)n + 1, sizeof(*c)), *e = calloc((size_t)n + 1, sizeof(*e));
	int i, ne = 0;

	memset(res, 0, sizeof(*res));
	res->rounds = n;
	if (!c || !e)
		goto out;
	for (i = 0; i < n; i++) {
		c[i] = rd[i].clean_us;
		if (rd[i].epipe_us >= 0)
			e[ne++] = rd[i].epipe_us;
	}
	res->clean_median_us = shmrpc_kt_percentile(c, n, 50);
	res->clean_p99_us = shmrpc_kt_percentile(c, n, 99);
	res->clean_min_us = c[0];
	res->clean_max_us = c[n - 1];
	res->epipe_median_us = shmrpc_kt_percentile(e, ne, 50);
	res->epipe_p99_us = shmrpc_kt_percentile(e, ne, 99);
out:
	free(c);
	free(e);
}

int shmrpc_kt_run(const struct shmrpc_kt_opts *opts, struct shmrpc_kt_round *rounds,
		  struct shmrpc_kt_result *res)
{
	struct shmrpc_kt_opts o = { 0 };
	struct shmrpc_kt_round *rd = rounds;
	struct shmrpc_kt_obs *obs = NULL;
	struct kt k = { .o = &o, .p = -1, .s = -1 };
	int i, err;

	if (!opts || opts->sz < offsetof(struct shmrpc_kt_opts, settle_ms) || !opts->domain ||
	    opts->rounds <= 0 || opts->state < 0 || opts->state > SHMRPC_KT_ROTATE)
		return -EINVAL;
	memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
	o.settle_ms = o.settle_ms ? o.settle_ms : 20;
	o.timeout_ms = o.timeout_ms ? o.timeout_ms : 5000;
	{
		int *fds[] = KT_CHANNELS(&k);

		for (size_t c = 0; c < sizeof(fds) / sizeof(fds[0]); c++)
			fds[c][0] = fds[c][1] = -1;
	}
	if (!rd && !(rd = calloc((size_t)o.rounds, sizeof(*rd))))
		return -ENOMEM;
	err = kt_start(&k);
	if (!err)
		err = shmrpc_kt_obs_open(&obs, o.domain);
	for (i = 0; !err && i < o.rounds; i++)
		err = one_round(&k, obs, o.state == SHMRPC_KT_ROTATE ? i % 3 : o.state, &rd[i]);
	if (err) {
		/* kt-p may be blocked on a victim nobody cleaned up. */
		if (k.p > 0)
			kill(k.p, SIGKILL);
		if (k.s > 0)
			kill(k.s, SIGKILL);
	}
	kt_stop(&k);
	/* A failed run leaves what nobody cleaned. */
	if (err && obs)
		shmrpc_kt_obs_sweep(obs);
	shmrpc_kt_obs_close(obs);
	if (!err && res)
		summarise(rd, o.rounds, res);
	if (rd != rounds)
		free(rd);
	return err;
}

/* ---------------------------------------------------- a reaper */

static int child_wait_ready(int sfd, pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status;
	struct pollfd p[2] = { { sfd, POLLIN, 0 }, { pfd, POLLIN, 0 } };
	char buf[256];
	ssize_t n;

	for (;;) {
		if (poll(p, 2, timeout_ms) <= 0) {
			close(pfd);
			return -ETIMEDOUT;
		}
		if (p[0].revents) {
			n = recv(sfd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			if (strstr(buf, "READY=1")) {
				close(pfd);
				return 0;
			}
		}
		if (p[1].revents) {
			close(pfd);
			waitpid(pid, &status, 0);
			return WIFEXITED(status) && WEXITSTATUS(status) == 3 ? -ENOTSUP : -ECHILD;
		}
	}
}

pid_t shmrpc_kt_reaper_start(const char *bin, const char *const *argv, const char *log,
			     int timeout_ms)
{
	static unsigned seq;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const char **args;
	int sfd, fd, n = 0, err;
	pid_t pid;

	while (argv && argv[n])
		n++;
	args = calloc((size_t)n + 2, sizeof(*args));
	if (!args)
		return -ENOMEM;
	n = 0;

	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/shmrpc-kt-%d-%u.sock", (int)getpid(), ++seq);
	unlink(a.sun_path);
	sfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sfd < 0) {
		free(args);
		return -errno;
	}
	if (bind(sfd, (struct sockaddr *)&a, sizeof(a))) {
		err = -errno;
		close(sfd);
		free(args);
		return err;
	}
	args[n++] = bin;
	while (argv && *argv)
		args[n++] = *argv++;
	args[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* it goes when we go */
		fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		setenv("NOTIFY_SOCKET", a.sun_path, 1);
		execv(bin, (char *const *)args);
		_exit(127);
	}
	err = pid < 0 ? -errno : child_wait_ready(sfd, pid, timeout_ms);
	free(args);
	close(sfd);
	unlink(a.sun_path);
	if (err && err != -ENOTSUP && err != -ECHILD && pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return err ? err : pid;
}

int shmrpc_kt_reaper_stop(pid_t pid, int sig, int timeout_ms)
{
	kill(pid, sig);
	return reap(pid, timeout_ms);
}
