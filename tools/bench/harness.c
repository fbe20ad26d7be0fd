// SPDX-License-Identifier: MIT
/*
 * Two-process harness: one run = setup the transport in the driver, fork
 * side 0 and side 1, pin each to its CPU, attach, meet at a barrier, run
 * the scenario, exit; the driver waits with a watchdog, kills the survivor
 * if one side fails, and tears the transport down.
 *
 * The driver sleeps in poll(2) on pidfds while the sides run, so on a
 * 2-CPU machine it never takes a CPU from them.
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
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "futex.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static size_t ctrl_len(uint64_t nsamples)
{
	size_t len = sizeof(struct bench_ctrl) + (size_t)nsamples * sizeof(uint64_t);

	return (len + 4095) & ~(size_t)4095;
}

/* bench_ctrl_new - shared control block with room for nsamples samples;
 * NULL when out of memory. Pages are populated now, not during the run. */
struct bench_ctrl *bench_ctrl_new(uint64_t nsamples)
{
	struct bench_ctrl *c = mmap(NULL, ctrl_len(nsamples), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (c == MAP_FAILED)
		return NULL;
	c->cap = nsamples;
	return c;
}

void bench_ctrl_free(struct bench_ctrl *c)
{
	if (c)
		munmap(c, ctrl_len(c->cap));
}

/* bench_fail - record why @side fails (the first reason wins); returns
 * @err, or -EIO when @err is not negative. */
int bench_fail(struct bench_ctrl *c, int side, int err, const char *fmt, ...)
{
	va_list ap;

	if (!c->err[side][0]) {
		va_start(ap, fmt);
		vsnprintf(c->err[side], sizeof(c->err[side]), fmt, ap);
		va_end(ap);
	}
	return err < 0 ? err : -EIO;
}

static long cpu_times(int64_t *user, int64_t *sys)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*user = (int64_t)ru.ru_utime.tv_sec * 1000000000 + (int64_t)ru.ru_utime.tv_usec * 1000;
	*sys = (int64_t)ru.ru_stime.tv_sec * 1000000000 + (int64_t)ru.ru_stime.tv_usec * 1000;
	return ru.ru_nivcsw;
}

/* The channel of this side (one per forked side process): its counters
 * are sampled with the CPU times. NULL in the driver. */
static struct bench_chan *side_chan;

static int lib_read(struct bench_libctr *out)
{
	memset(out, 0, sizeof(*out));
	if (!side_chan || !side_chan->t || !side_chan->t->counters)
		return 0;
	return side_chan->t->counters(side_chan, out) == 0;
}

/*
 * bench_acct_begin/end - account one side's window: wall time, CPU time
 * (getrusage), involuntary context switches, system calls (syscount.c)
 * and the transport's own counters. The system-call counter is read last
 * at the beginning and first at the end, so the window holds only the
 * calls between the two reads, plus the closing read (subtracted).
 */
void bench_acct_begin(struct bench_acct *a)
{
	a->has_lib = lib_read(&a->lib0);
	a->nivcsw0 = cpu_times(&a->user0, &a->sys0);
	a->wall0 = bench_now_ns();
	a->sys_calls0 = bench_sysc_read();
}

void bench_acct_end(const struct bench_acct *a, struct bench_side_out *out, uint64_t msgs)
{
	int64_t calls = bench_sysc_read();
	int64_t wall = bench_now_ns(), user, sys;
	long nivcsw = cpu_times(&user, &sys);
	struct bench_libctr l;

	out->syscalls = calls >= 0 && a->sys_calls0 >= 0 ? calls - a->sys_calls0 - 1 : -1;
	out->wall_ns = wall - a->wall0;
	out->user_ns = user - a->user0;
	out->sys_ns = sys - a->sys0;
	out->msgs = msgs;
	out->preempt = (uint64_t)(nivcsw - a->nivcsw0);
	out->has_lib = a->has_lib && lib_read(&l);
	if (out->has_lib) {
		out->lib.sleeps = l.sleeps - a->lib0.sleeps;
		out->lib.wakes = l.wakes - a->lib0.wakes;
		out->lib.skips = l.skips - a->lib0.skips;
		out->lib.spins = l.spins - a->lib0.spins;
		out->lib.full = l.full - a->lib0.full;
	}
}

void *bench_msg_alloc(size_t size)
{
	size_t len = (size + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, len ? len : 64);

	if (p)
		memset(p, 0x5a, len);
	return p;
}

void bench_msg_stamp(void *buf, size_t len, uint64_t seq)
{
	memcpy(buf, &seq, sizeof(seq));
	memcpy((char *)buf + len - sizeof(seq), &seq, sizeof(seq));
}

uint64_t bench_msg_seq(const void *buf)
{
	uint64_t seq;

	memcpy(&seq, buf, sizeof(seq));
	return seq;
}

/* 0 when both ends of the message carry @seq, -EBADMSG otherwise. */
int bench_msg_check(const void *buf, size_t len, uint64_t seq)
{
	uint64_t tail;

	memcpy(&tail, (const char *)buf + len - sizeof(tail), sizeof(tail));
	return bench_msg_seq(buf) == seq && tail == seq ? 0 : -EBADMSG;
}

/* Both sides arrive; the second wakes the first. Sleeping, not spinning:
 * attach may need the CPU the first side would spin on. */
static void barrier(struct bench_ctrl *c)
{
	/* acq_rel: whatever either side did in attach happens before the
	 * other side leaves the barrier (pairs with the acquire load below). */
	uint32_t v = atomic_fetch_add_explicit(&c->arrived, 1, memory_order_acq_rel) + 1;

	if (v >= 2) {
		bench_futex_wake(&c->arrived, 1);
		return;
	}
	while ((v = atomic_load_explicit(&c->arrived, memory_order_acquire)) < 2)
		bench_futex_wait(&c->arrived, v);
}

static _Noreturn void side_main(struct bench_chan *ch, struct bench_ctrl *c, int side,
				bench_side_fn fn, const struct bench_cfg *cfg)
{
	cpu_set_t set;
	int err = 0;

	if (cfg->count_syscalls)
		bench_sysc_open(); /* before attach: threads it starts are counted */
	side_chan = ch;
	CPU_ZERO(&set);
	CPU_SET(cfg->cpu[side], &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		err = bench_fail(c, side, -errno, "side %d: sched_setaffinity(CPU %d): %s", side,
				 cfg->cpu[side], strerror(errno));
	ch->side = side;
	if (!err && ch->t && ch->t->attach) {
		err = ch->t->attach(ch, side);
		if (err)
			bench_fail(c, side, err, "side %d: attach: %s", side, strerror(-err));
	}
	if (!err) {
		barrier(c);
		err = fn(ch->t ? ch : NULL, c, side, cfg);
	}
	if (ch->t && ch->t->detach)
		ch->t->detach(ch);
	_exit(err ? 1 : 0);
}

static int clean_exit(int st)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void describe(const struct bench_ctrl *c, int side, int st, char *why, size_t len)
{
	if (c->err[side][0])
		snprintf(why, len, "%s", c->err[side]);
	else if (WIFSIGNALED(st))
		snprintf(why, len, "side %d killed by signal %d", side, WTERMSIG(st));
	else
		snprintf(why, len, "side %d exited with status %d", side, WEXITSTATUS(st));
}

/* Kill what still runs and collect it. */
static void kill_all(const pid_t pid[2], int alive[2], int st[2])
{
	for (int s = 0; s < 2; s++)
		if (alive[s]) {
			kill(pid[s], SIGKILL);
			waitpid(pid[s], &st[s], 0);
			alive[s] = 0;
		}
}

/*
 * Wait for both sides, sleeping in poll(2) on their pidfds. When one side
 * fails, the other (likely blocked on it) is killed. Returns 0, -EIO (a
 * side failed: @why says why) or -ETIMEDOUT (watchdog).
 */
static int reap(const pid_t pid[2], int timeout_ms, const struct bench_ctrl *c, char *why,
		size_t len)
{
	int st[2] = { 0, 0 }, alive[2] = { 1, 1 }, fd[2], bad = -1, n, ms;
	int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
	struct pollfd pfd[2];

	for (int s = 0; s < 2; s++)
		fd[s] = (int)syscall(SYS_pidfd_open, pid[s], 0);
	while (alive[0] || alive[1]) {
		if (fd[0] < 0 || fd[1] < 0) { /* no pidfds: plain wait, no watchdog */
			for (int s = 0; s < 2; s++)
				alive[s] = alive[s] && waitpid(pid[s], &st[s], 0) < 0 &&
					   errno == EINTR;
			continue;
		}
		for (int s = 0; s < 2; s++)
			pfd[s] = (struct pollfd){ .fd = alive[s] ? fd[s] : -1, .events = POLLIN };
		ms = (int)((deadline - bench_now_ns()) / 1000000);
		n = poll(pfd, 2, ms > 0 ? ms : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			kill_all(pid, alive, st);
			snprintf(why, len, "watchdog: the run did not end within %d s",
				 timeout_ms / 1000);
			bad = -2;
			break;
		}
		for (int s = 0; s < 2; s++) {
			if (!alive[s] || !pfd[s].revents)
				continue;
			waitpid(pid[s], &st[s], 0);
			alive[s] = 0;
			if (!clean_exit(st[s]) && bad < 0) {
				bad = s;
				kill_all(pid, alive, st);
			}
		}
	}
	for (int s = 0; s < 2; s++)
		if (fd[s] >= 0)
			close(fd[s]);
	if (bad == -1 && !(clean_exit(st[0]) && clean_exit(st[1])))
		bad = clean_exit(st[0]) ? 1 : 0;
	if (bad >= 0)
		describe(c, bad, st[bad], why, len);
	return bad == -2 ? -ETIMEDOUT : bad >= 0 ? -EIO : 0;
}

static size_t buf_budget(size_t msg)
{
	size_t b = BENCH_BUF_MIN;

	while (b < 4 * msg)
		b <<= 1;
	return b;
}

int bench_pair(const struct bench_transport *t, const struct bench_cfg *cfg, bench_side_fn fn,
	       struct bench_ctrl *c, size_t *buf_eff, char *why, size_t whylen)
{
	static unsigned run_id;
	struct bench_chan ch = { .t = t, .side = -1 };
	int timeout_ms = (int)(30000 + 3000 * (cfg->duration + cfg->warm_s));
	pid_t pid[2];
	int err = 0;

	ch.p.msg_size = cfg->msg_size;
	ch.p.buf_bytes = buf_budget(cfg->msg_size);
	ch.p.run_id = ++run_id;
	if (t) {
		err = t->setup(&ch);
		if (err) {
			snprintf(why, whylen, "setup: %s%s%s", strerror(-err),
				 ch.why[0] ? ": " : "", ch.why);
			return err;
		}
	}
	if (buf_eff)
		*buf_eff = ch.buf_eff;
	fflush(NULL);
	for (int s = 0; s < 2; s++) {
		pid[s] = bench_fork(); /* never outlives the driver */
		if (pid[s] == 0)
			side_main(&ch, c, s, fn, cfg);
		if (pid[s] < 0) {
			err = -errno;
			snprintf(why, whylen, "fork: %s", strerror(errno));
			if (s == 1) {
				kill(pid[0], SIGKILL);
				waitpid(pid[0], NULL, 0);
			}
			break;
		}
	}
	if (!err)
		err = reap(pid, timeout_ms, c, why, whylen);
	if (t)
		t->teardown(&ch);
	return err;
}
