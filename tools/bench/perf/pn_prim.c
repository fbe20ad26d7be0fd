// SPDX-License-Identifier: MIT
/*
 * The price of the primitives the message path is made of, on this CPU:
 * a store, a seq_cst fence (what gcc emits: lock or), mfence, an
 * uncontended pthread trylock + unlock, clock_gettime, and a store + fence
 * to a cache line that a process on the other CPU keeps reading (the
 * round trip a fence waits for); then membarrier(GLOBAL_EXPEDITED) with a
 * registered peer process running, and asleep (docs/perf-notes.md, P6).
 *
 *   pn_prim
 */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>

#include "pn.h"

#define N 20000000

struct sh {
	_Alignas(64) _Atomic uint64_t a;
	_Alignas(64) _Atomic int stop;
};

static _Alignas(64) _Atomic uint64_t loc;

static void report(const char *what, int64_t t0, long n)
{
	printf("%-46s %7.2f ns\n", what, (double)(pn_now() - t0) / (double)n);
}

static int mb(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

static void mb_run(const char *what)
{
	int64_t v[2000], t;
	int i;

	for (i = 0; i < 2000; i++) {
		t = pn_now();
		mb(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
		v[i] = pn_now() - t;
	}
	pn_sort(v, 2000);
	printf("%-46s %7.2f us (p90 %.2f)\n", what, (double)pn_q(v, 2000, 0.5) / 1e3,
	       (double)pn_q(v, 2000, 0.9) / 1e3);
}

int main(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct sh *s = pn_shared(sizeof(*s));
	volatile uint64_t sink = 0;
	int64_t t0;
	pid_t p;
	long i;

	pn_pin(0);
	t0 = pn_now();
	for (i = 0; i < N; i++)
		atomic_store_explicit(&loc, (uint64_t)i, memory_order_relaxed);
	report("store, own line", t0, N);
	t0 = pn_now();
	for (i = 0; i < N; i++) {
		atomic_store_explicit(&loc, (uint64_t)i, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
	}
	report("store + seq_cst fence, own line", t0, N);
	t0 = pn_now();
	for (i = 0; i < N; i++) {
		atomic_store_explicit(&loc, (uint64_t)i, memory_order_relaxed);
		__asm__ volatile("mfence" ::: "memory");
	}
	report("store + mfence, own line", t0, N);
	t0 = pn_now();
	for (i = 0; i < N; i++) {
		pthread_mutex_trylock(&m);
		pthread_mutex_unlock(&m);
	}
	report("pthread_mutex_trylock + unlock", t0, N);
	t0 = pn_now();
	for (i = 0; i < N; i++)
		sink += (uint64_t)pn_now();
	report("clock_gettime(CLOCK_MONOTONIC)", t0, N);

	p = fork();
	if (p == 0) {
		uint64_t x = 0;

		pn_pin(1);
		while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
			x += atomic_load_explicit(&s->a, memory_order_acquire);
			pn_relax();
		}
		_exit(x == 1);
	}
	usleep(100000);
	t0 = pn_now();
	for (i = 0; i < N; i++) {
		atomic_store_explicit(&s->a, (uint64_t)i, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
	}
	report("store + fence, line polled by the other CPU", t0, N);
	atomic_store(&s->stop, 1);
	waitpid(p, NULL, 0);

	if (mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) {
		perror("membarrier register");
		return 0;
	}
	atomic_store(&s->stop, 0);
	p = fork();
	if (p == 0) {
		pn_pin(1);
		mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
		while (!atomic_load(&s->stop))
			pn_relax();
		_exit(0);
	}
	usleep(50000);
	mb_run("membarrier GLOBAL_EXPEDITED, peer running");
	atomic_store(&s->stop, 1);
	waitpid(p, NULL, 0);
	atomic_store(&s->stop, 0);
	p = fork();
	if (p == 0) {
		pn_pin(1);
		mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
		while (!atomic_load(&s->stop))
			usleep(1000);
		_exit(0);
	}
	usleep(50000);
	mb_run("membarrier GLOBAL_EXPEDITED, peer asleep");
	atomic_store(&s->stop, 1);
	waitpid(p, NULL, 0);
	(void)sink;
	return 0;
}
