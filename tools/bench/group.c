// SPDX-License-Identifier: MIT
/*
 * Group harness: one run of N member processes (fan-in, broadcast, idle,
 * connect, memory, crash), the N-process sibling of harness.c. The driver
 * creates the shared control block, forks every member, pins each to its
 * CPU, and sleeps in poll(2) on their pidfds; members meet at a barrier,
 * run the scenario's function and exit. If one member fails, the others
 * (likely blocked on it) are killed; a watchdog kills all of them if the
 * run hangs. Members report through the control block only.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "futex.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static size_t gctrl_len(uint64_t nsamples)
{
	size_t len = sizeof(struct bench_gctrl) + (size_t)nsamples * sizeof(uint64_t);

	return (len + 4095) & ~(size_t)4095;
}

struct bench_gctrl *bench_gctrl_new(uint64_t nsamples)
{
	struct bench_gctrl *c = mmap(NULL, gctrl_len(nsamples), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (c == MAP_FAILED)
		return NULL;
	c->cap = nsamples;
	return c;
}

void bench_gctrl_free(struct bench_gctrl *c)
{
	if (c)
		munmap(c, gctrl_len(c->cap));
}

int bench_gfail(struct bench_gctrl *c, int idx, int err, const char *fmt, ...)
{
	va_list ap;

	if (!c->err[idx][0]) {
		va_start(ap, fmt);
		vsnprintf(c->err[idx], sizeof(c->err[idx]), fmt, ap);
		va_end(ap);
	}
	return err < 0 ? err : -EIO;
}

/* bench_gbarrier - wait until @n members arrived at barrier @b (each
 * barrier word is used once per run). Sleeps: a spinning member could
 * hold the CPU another member needs to arrive. */
void bench_gbarrier(struct bench_gctrl *c, int b, uint32_t n)
{
	_Atomic uint32_t *w = &c->bar[b];
	/* acq_rel: what each member did before arriving happens before any
	 * member leaves (pairs with the acquire load below). */
	uint32_t v = atomic_fetch_add_explicit(w, 1, memory_order_acq_rel) + 1;

	if (v >= n) {
		bench_futex_wake(w, INT32_MAX);
		return;
	}
	while ((v = atomic_load_explicit(w, memory_order_acquire)) < n)
		bench_futex_wait(w, v);
}

static _Noreturn void member_main(struct bench_group *g, int idx)
{
	cpu_set_t set;
	int err = 0;

	if (g->count_syscalls)
		bench_sysc_open();
	g->idx = idx;
	if (g->cpu[idx] >= 0) {
		CPU_ZERO(&set);
		CPU_SET(g->cpu[idx], &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			err = bench_gfail(g->c, idx, -errno, "member %d: sched_setaffinity: %s",
					  idx, strerror(errno));
	}
	if (!err && g->attach)
		err = g->attach(g, idx);
	if (!err) {
		bench_gbarrier(g->c, 0, (uint32_t)g->n);
		err = g->fn(g, idx);
	}
	if (g->detach)
		g->detach(g, idx);
	_exit(err ? 1 : 0);
}

static void kill_rest(const pid_t *pid, int *alive, int n)
{
	for (int i = 0; i < n; i++)
		if (alive[i]) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], NULL, 0);
			alive[i] = 0;
		}
}

static void why_member(const struct bench_gctrl *c, int i, int st, char *why, size_t len)
{
	if (c->err[i][0])
		snprintf(why, len, "%s", c->err[i]);
	else if (WIFSIGNALED(st))
		snprintf(why, len, "member %d killed by signal %d", i, WTERMSIG(st));
	else
		snprintf(why, len, "member %d exited with status %d", i, WEXITSTATUS(st));
}

/* Wait for all members (see the top of the file). 0, -EIO, -ETIMEDOUT. */
static int wait_all(struct bench_group *g, const pid_t *pid, char *why, size_t len)
{
	int alive[BENCH_GROUP_MAX], fd[BENCH_GROUP_MAX], left = g->n, bad = -1, st, ms, rc;
	int64_t deadline = bench_now_ns() + (int64_t)(g->timeout_s * 1e9);
	struct pollfd pfd[BENCH_GROUP_MAX];

	for (int i = 0; i < g->n; i++) {
		alive[i] = 1;
		fd[i] = (int)syscall(SYS_pidfd_open, pid[i], 0);
	}
	while (left > 0) {
		for (int i = 0; i < g->n; i++)
			pfd[i] = (struct pollfd){ .fd = alive[i] ? fd[i] : -1, .events = POLLIN };
		ms = (int)((deadline - bench_now_ns()) / 1000000);
		rc = poll(pfd, (nfds_t)g->n, ms > 0 ? ms : 0);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			kill_rest(pid, alive, g->n);
			snprintf(why, len, "watchdog: the run did not end within %.0f s",
				 g->timeout_s);
			bad = -2;
			break;
		}
		for (int i = 0; i < g->n; i++) {
			if (!alive[i] || !pfd[i].revents)
				continue;
			waitpid(pid[i], &st, 0);
			alive[i] = 0;
			left--;
			if ((!WIFEXITED(st) || WEXITSTATUS(st)) && bad < 0) {
				bad = i;
				why_member(g->c, i, st, why, len);
				kill_rest(pid, alive, g->n);
				left = 0;
			}
		}
	}
	for (int i = 0; i < g->n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return bad == -2 ? -ETIMEDOUT : bad >= 0 ? -EIO : 0;
}

/*
 * bench_group_run - fork g->n members (g->cpu[i]: CPU of member i, -1 for
 * any), each running g->attach (optional), the barrier, then g->fn; wait
 * for all of them. Returns 0, -EIO (a member failed: @why says why) or
 * -ETIMEDOUT (after g->timeout_s, or 60 s when 0).
 */
int bench_group_run(struct bench_group *g, char *why, size_t whylen)
{
	pid_t pid[BENCH_GROUP_MAX];
	int err = 0, i;

	if (g->n < 1 || g->n > BENCH_GROUP_MAX)
		return -EINVAL;
	if (g->timeout_s <= 0)
		g->timeout_s = 60;
	fflush(NULL);
	for (i = 0; i < g->n; i++) {
		pid[i] = bench_fork();
		if (pid[i] == 0)
			member_main(g, i);
		if (pid[i] < 0) {
			err = -errno;
			snprintf(why, whylen, "fork: %s", strerror(errno));
			break;
		}
	}
	if (err) {
		for (int k = 0; k < i; k++) {
			kill(pid[k], SIGKILL);
			waitpid(pid[k], NULL, 0);
		}
		return err;
	}
	return wait_all(g, pid, why, whylen);
}
