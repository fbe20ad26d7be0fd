// SPDX-License-Identifier: MIT
/*
 * The fault sweep's processes (runner.h): peers driven over pipes, the
 * test process's nodes, round trips, and the check of an armed call's
 * result. The baseline and the sweep loop are in sweep.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runner.h"

int fr_fail(struct fr_ctx *c, const char *fmt, ...)
{
	size_t len = strlen(c->why), cap = sizeof(c->res->why);
	va_list ap;

	if (len && len + 3 < cap) {
		memcpy(c->why + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(c->why + len, cap - len, fmt, ap);
	va_end(ap);
	return -1;
}

static int io_full(int fd, void *buf, size_t len, bool rd, int timeout_ms)
{
	struct pollfd p = { fd, rd ? POLLIN : POLLOUT, 0 };
	char *b = buf;
	ssize_t n;

	while (len) {
		if (timeout_ms >= 0 && poll(&p, 1, timeout_ms) != 1)
			return -1;
		n = rd ? read(fd, b, len) : write(fd, b, len);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------ the peer */

static struct shmrpc_node *pn[2];

static struct shmrpc_node *p_node(const char *domain, const char *name)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain };
	struct shmrpc_node *n = NULL;

	o.ring_bytes = 4096;
	o.max_nodes = 16;
	o.spin_us = SHMRPC_SPIN_NEVER;
	if (shmrpc_open(name, &o, &n))
		return NULL;
	return n;
}

/* The main thread of @pid is blocked in a wait of the library (futex,
 * futex_waitv, io_uring_enter) or an event loop's (poll, epoll): 0, or
 * -1 after @ms. Not "sleeping" as /proc's state says: a read of a pipe
 * sleeps too. A wait that io_uring's task_work interrupted (the uring
 * backend's completions run as the waiting thread's task_work) goes on as
 * restart_syscall (219): without it, the peer of test fd [uring] missed
 * the test's poll now and then (1 run in ~200), sent only after its own
 * timeout, and the test, whose poll had the same timeout, failed. */
static int blocked_in_wait(pid_t pid, int ms)
{
	static const long waits[] = { 202, 449, 426, 7, 232, 271, 281, 441, 219 };
	char path[64], buf[128];
	double end = th_now_ms() + ms;
	long nr;
	size_t i;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	do {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if (n > 0 && sscanf(buf, "%ld", &nr) == 1)
			for (i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
				if (nr == waits[i])
					return 0;
		th_sleep_ms(1);
	} while (th_now_ms() < end);
	return -1;
}

static void p_recv(struct shmrpc_node *n, struct fr_rep *rep, int timeout_ms)
{
	char from[SHMRPC_NAME_MAX + 1];

	rep->rc = shmrpc_recv(n, rep->msg, sizeof(rep->msg) - 1, from, timeout_ms);
	rep->msg[rep->rc > 0 ? rep->rc : 0] = '\0';
}

static void p_echo(struct shmrpc_node *n, struct fr_rep *rep)
{
	char from[SHMRPC_NAME_MAX + 1];

	for (;;) {
		rep->rc = shmrpc_recv(n, rep->msg, sizeof(rep->msg) - 1, from, FR_IO_MS);
		if (rep->rc < 0)
			return;
		rep->msg[rep->rc] = '\0';
		if (!strcmp(rep->msg, "rt"))
			break;
		rep->skipped++;
	}
	rep->rc = shmrpc_send(n, from, "rt", 2, FR_IO_MS);
}

/* A call's reply: "r" and the request. */
static void p_serve(struct shmrpc_node *n, const struct shmrpc_req *req, void *arg)
{
	char out[FR_MSG];
	size_t len = req->len < FR_MSG - 1 ? req->len : FR_MSG - 1;

	(void)arg;
	out[0] = 'r';
	memcpy(out + 1, req->data, len);
	(void)shmrpc_reply(n, req, out, len + 1, 0);
}

/* One command; its reply in @rep (a background one has sent its ack). */
static void p_do(const struct fr_cmd *c, struct fr_rep *rep, int repfd)
{
	struct shmrpc_node *n = pn[c->idx & 1];

	switch (c->op) {
	case PO_OPEN:
		pn[c->idx & 1] = p_node(c->domain, c->name);
		rep->rc = pn[c->idx & 1] ? 0 : -1;
		break;
	case PO_SEND:
		rep->rc = shmrpc_send(n, c->to, c->msg, strlen(c->msg), FR_IO_MS);
		break;
	case PO_SEND_LATE:
	case PO_RECV_BG:
		/* The ack now, the result when it is done. */
		io_full(repfd, rep, sizeof(*rep), false, -1);
		memset(rep, 0, sizeof(*rep));
		if (c->op == PO_RECV_BG) {
			p_recv(n, rep, FR_IO_MS);
		} else {
			blocked_in_wait(getppid(), FR_IO_MS);
			rep->rc = shmrpc_send(n, c->to, c->msg, strlen(c->msg), FR_IO_MS);
		}
		break;
	case PO_RECV:
		p_recv(n, rep, FR_IO_MS);
		break;
	case PO_ECHO:
		p_echo(n, rep);
		break;
	case PO_CLOSE:
		shmrpc_close(n);
		pn[c->idx & 1] = NULL;
		break;
	case PO_SERVE:
		rep->rc = shmrpc_serve(n, p_serve, NULL);
		break;
	}
}

static int peer_main(int cmdfd, int repfd)
{
	struct fr_cmd c;
	struct fr_rep rep;

	fault_attach(NULL); /* never counts: it arms nothing */
	while (!io_full(cmdfd, &c, sizeof(c), true, -1) && c.op != PO_QUIT) {
		memset(&rep, 0, sizeof(rep));
		p_do(&c, &rep, repfd);
		if (io_full(repfd, &rep, sizeof(rep), false, -1))
			break;
	}
	shmrpc_close(pn[0]);
	shmrpc_close(pn[1]);
	return 0;
}

int fr_peer_start(struct fr_ctx *c, int p)
{
	struct fr_peer *pe = &c->peer[p];
	int to[2], from[2];
	pid_t pid;

	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		return fr_fail(c, "pipe: %s", strerror(errno));
	pid = th_fork_raw();
	if (pid < 0)
		return fr_fail(c, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(to[1]);
		close(from[0]);
		exit(peer_main(to[0], from[1])); /* exit: LeakSanitizer checks it */
	}
	close(to[0]);
	close(from[1]);
	pe->pid = pid;
	pe->cmd = to[1];
	pe->rep = from[0];
	return 0;
}

int fr_peer_stop(struct fr_ctx *c, int p)
{
	struct fr_peer *pe = &c->peer[p];
	struct fr_cmd cmd = { .op = PO_QUIT };
	int st;

	if (!pe->pid)
		return 0;
	/* The pipes stay open: they are in the baseline of descriptors. */
	io_full(pe->cmd, &cmd, sizeof(cmd), false, FR_IO_MS);
	st = th_wait(pe->pid, 2 * FR_IO_MS);
	pe->pid = 0;
	return st ? fr_fail(c, "peer %d ended with status %d", p, st) : 0;
}

void fr_peer_fini(struct fr_ctx *c, int p)
{
	struct fr_peer *pe = &c->peer[p];

	if (pe->pid)
		fr_peer_stop(c, p);
	if (pe->cmd > 0)
		close(pe->cmd);
	if (pe->rep > 0)
		close(pe->rep);
	pe->cmd = pe->rep = -1;
}

int fr_peer_do(struct fr_ctx *c, int p, const struct fr_cmd *cmd, struct fr_rep *rep)
{
	struct fr_peer *pe = &c->peer[p];

	if (pe->busy)
		return fr_fail(c, "peer %d: command %d while busy", p, cmd->op);
	memset(rep, 0, sizeof(*rep));
	if (io_full(pe->cmd, (void *)cmd, sizeof(*cmd), false, FR_IO_MS) ||
	    io_full(pe->rep, rep, sizeof(*rep), true, 3 * FR_IO_MS))
		return fr_fail(c, "peer %d does not answer command %d", p, cmd->op);
	pe->busy = cmd->op == PO_SEND_LATE || cmd->op == PO_RECV_BG;
	return 0;
}

int fr_p_open(struct fr_ctx *c, int p, int idx, const char *domain, const char *name)
{
	struct fr_cmd cmd = { .op = PO_OPEN, .idx = idx };
	struct fr_rep rep;

	snprintf(cmd.domain, sizeof(cmd.domain), "%s", domain);
	snprintf(cmd.name, sizeof(cmd.name), "%s", name);
	if (fr_peer_do(c, p, &cmd, &rep))
		return -1;
	return rep.rc ? fr_fail(c, "peer %d: open %s: %d", p, name, rep.rc) : 0;
}

int fr_p_send(struct fr_ctx *c, int p, int idx, const char *to, const char *msg)
{
	struct fr_cmd cmd = { .op = PO_SEND, .idx = idx };
	struct fr_rep rep;

	snprintf(cmd.to, sizeof(cmd.to), "%s", to);
	snprintf(cmd.msg, sizeof(cmd.msg), "%s", msg);
	if (fr_peer_do(c, p, &cmd, &rep))
		return -1;
	return rep.rc ? fr_fail(c, "peer %d: send to %s: %d", p, to, rep.rc) : 0;
}

int fr_p_recv(struct fr_ctx *c, int p, int idx, struct fr_rep *rep)
{
	struct fr_cmd cmd = { .op = PO_RECV, .idx = idx };

	return fr_peer_do(c, p, &cmd, rep);
}

int fr_p_bg(struct fr_ctx *c, int p, int op, int idx, const char *to, const char *msg)
{
	struct fr_cmd cmd = { .op = op, .idx = idx };
	struct fr_rep rep;

	snprintf(cmd.to, sizeof(cmd.to), "%s", to ? to : "");
	snprintf(cmd.msg, sizeof(cmd.msg), "%s", msg ? msg : "");
	return fr_peer_do(c, p, &cmd, &rep);
}

int fr_p_result(struct fr_ctx *c, int p, struct fr_rep *rep)
{
	if (!c->peer[p].busy)
		return fr_fail(c, "peer %d: no background command", p);
	c->peer[p].busy = false;
	if (io_full(c->peer[p].rep, rep, sizeof(*rep), true, 3 * FR_IO_MS))
		return fr_fail(c, "peer %d: no result", p);
	return 0;
}

bool fr_p_ready(struct fr_ctx *c, int p, int ms)
{
	struct pollfd pf = { c->peer[p].rep, POLLIN, 0 };

	return c->peer[p].busy && poll(&pf, 1, ms) == 1;
}

int fr_p_close(struct fr_ctx *c, int p, int idx)
{
	struct fr_cmd cmd = { .op = PO_CLOSE, .idx = idx };
	struct fr_rep rep;

	return fr_peer_do(c, p, &cmd, &rep);
}

int fr_p_blocked(struct fr_ctx *c, int p)
{
	if (blocked_in_wait(c->peer[p].pid, FR_IO_MS))
		return fr_fail(c, "peer %d never blocked in a wait", p);
	return 0;
}

/* ------------------------------------------------------------ our nodes */

int fr_open_in(struct fr_ctx *c, const char *domain, const char *name, struct shmrpc_node **out)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain };
	int rc;

	o.ring_bytes = 4096;
	o.max_nodes = 16;
	o.spin_us = SHMRPC_SPIN_NEVER;
	*out = NULL;
	rc = shmrpc_open(name, &o, out);
	return rc ? fr_fail(c, "open %s: %d (%s)", name, rc, shmrpc_last_error()) : 0;
}

int fr_open(struct fr_ctx *c, const char *name, struct shmrpc_node **out)
{
	return fr_open_in(c, c->d.name, name, out);
}

int fr_opts(struct fr_ctx *c, struct shmrpc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->domain = c->d.name;
	o->ring_bytes = 4096;
	o->max_nodes = 16;
	o->spin_us = SHMRPC_SPIN_NEVER;
	return 0;
}

int fr_recv_until(struct fr_ctx *c, struct shmrpc_node *n, const char *want, int *others)
{
	char buf[FR_MSG], from[SHMRPC_NAME_MAX + 1];
	int rc, k;

	for (k = 0; k < 16; k++) {
		rc = shmrpc_recv(n, buf, sizeof(buf) - 1, from, FR_IO_MS);
		if (rc < 0)
			return fr_fail(c, "recv waiting for '%s': %d (%s)", want, rc,
				       shmrpc_last_error());
		buf[rc] = '\0';
		if (!strcmp(buf, want))
			return 0;
		if (buf[0] != 'm')
			return fr_fail(c, "recv waiting for '%s': got '%s'", want, buf);
		if (others)
			++*others;
	}
	return fr_fail(c, "recv waiting for '%s': too many others", want);
}

int fr_roundtrip(struct fr_ctx *c, struct shmrpc_node *n, int p, const char *to, int *skipped)
{
	struct fr_cmd cmd = { .op = PO_ECHO, .idx = 0 };
	struct fr_rep rep;
	int rc;

	rc = shmrpc_send(n, to, "rt", 2, FR_IO_MS);
	if (rc)
		return fr_fail(c, "round trip: send to %s: %d (%s)", to, rc, shmrpc_last_error());
	if (fr_peer_do(c, p, &cmd, &rep))
		return -1;
	if (rep.rc)
		return fr_fail(c, "round trip: %s echoes: %d", to, rep.rc);
	if (skipped)
		*skipped = rep.skipped;
	return fr_recv_until(c, n, "rt", NULL);
}

/* ------------------------------------------------------------ results */

static bool in_list(const int *l, int e)
{
	for (; l && *l; l++)
		if (*l == e)
			return true;
	return false;
}

int fr_check_rc(struct fr_ctx *c, int rc, const int *doc, int ok, const int *also)
{
	const struct fault_shared *f = &c->res->f;
	bool hit = f->hit_n && f->hit_role == FAULT_API;

	if (rc >= 0) {
		if (ok >= 0 && rc != ok && !hit)
			return fr_fail(c, "returned %d, want %d", rc, ok);
		return 0;
	}
	if (doc && !in_list(doc, -rc))
		return fr_fail(c, "returned %d (%s): not an error its header documents", rc,
			       strerror(-rc));
	if (!hit)
		return fr_fail(c, "returned %d (%s) with no call failed", rc, strerror(-rc));
	/* sticky: any of the calls failed may be the one it reports */
	if (rc != -f->hit.err && !(-rc < 64 && (f->errs >> -rc & 1)) && !in_list(also, -rc))
		return fr_fail(c, "returned %d (%s), not the failed call's errno %d (%s)", rc,
			       strerror(-rc), f->hit.err, strerror(f->hit.err));
	return 0;
}
