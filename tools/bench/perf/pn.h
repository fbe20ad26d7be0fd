/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the perf-notes scenario programs (docs/perf-notes.md): each
 * program runs exactly one scenario, prints one result line per run, and
 * is built by tools/bench/perf/build.sh against build/libshmrpc.a. Not part
 * of make test or make bench.
 */
#ifndef SHMRPC_PN_H
#define SHMRPC_PN_H

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline int64_t pn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling process (all its threads), ns. */
static inline int64_t pn_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void pn_relax(void)
{
	__builtin_ia32_pause();
}

static inline void pn_pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s))
		perror("sched_setaffinity");
}

/* Shared anonymous memory, for control blocks between forked sides. */
static inline void *pn_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE,
		       -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

/* Fork a child that dies with its parent and runs @fn(@arg). */
static inline pid_t pn_fork(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg) ? 1 : 0);
	}
	return pid;
}

static inline int pn_wait(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Spin barrier on a shared word: each of @n parties calls it once. */
static inline void pn_barrier(_Atomic uint32_t *w, uint32_t n)
{
	atomic_fetch_add(w, 1);
	while (atomic_load(w) < n)
		pn_relax();
}

static int pn_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts @v; the q-quantile (nearest rank). */
static inline int64_t pn_q(int64_t *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(q * (double)n);
	if (i >= n)
		i = n - 1;
	return v[i];
}

static inline void pn_sort(int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), pn_cmp_i64);
}

/*
 * How much CPU others used while we ran: busy time of all CPUs from
 * /proc/stat (user, nice, system, irq, softirq, steal) minus our own and our
 * reaped children's. pn_others_begin() before a run, pn_others_pct() after
 * the children were reaped: percent of the machine (all CPUs x wall).
 */
struct pn_others {
	int64_t busy, own, wall;
};

static inline int64_t pn_busy_ns(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	long hz = sysconf(_SC_CLK_TCK);

	if (!f)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8)
		v[0] = v[1] = v[2] = v[5] = v[6] = v[7] = 0;
	fclose(f);
	return (int64_t)((v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) *
			 (1000000000ull / (unsigned long long)hz));
}

static inline int64_t pn_own_ns(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (int64_t)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
			 b.ru_stime.tv_sec) *
		       1000000000 +
	       (int64_t)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
			 b.ru_stime.tv_usec) *
		       1000;
}

static inline void pn_others_begin(struct pn_others *o)
{
	o->busy = pn_busy_ns();
	o->own = pn_own_ns();
	o->wall = pn_now();
}

static inline double pn_others_pct(const struct pn_others *o)
{
	int64_t busy = pn_busy_ns() - o->busy, own = pn_own_ns() - o->own;
	int64_t wall = pn_now() - o->wall;
	double pct = 100.0 * (double)(busy - own) /
		     ((double)wall * (double)sysconf(_SC_NPROCESSORS_ONLN));

	return pct < 0 ? 0 : pct;
}

/* A domain name nobody else uses. */
static inline void pn_domain(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "pn.%d.%s.%lld", (int)getpid(), tag, (long long)(pn_now() % 1000000));
}

#endif /* SHMRPC_PN_H */
