/* SPDX-License-Identifier: MIT */
/*
 * futex(2) wrappers for words in MAP_SHARED memory. Never FUTEX_PRIVATE_FLAG:
 * the words are shared between processes, and a private wait is keyed on
 * (mm, address), so it would never match the other process's wake.
 */
#ifndef SHMRPC_BENCH_FUTEX_H
#define SHMRPC_BENCH_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * bench_futex_wait - sleep while *word == val. Returns 0 when woken (or
 * spuriously), -EAGAIN when *word != val already, -EINTR on a signal.
 * Callers always re-check their condition afterwards.
 */
static inline int bench_futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	if (syscall(SYS_futex, word, FUTEX_WAIT, val, NULL, NULL, 0) < 0)
		return -errno;
	return 0;
}

/* bench_futex_wait_ms - the same, for at most @ms milliseconds (-ETIMEDOUT). */
static inline int bench_futex_wait_ms(_Atomic uint32_t *word, uint32_t val, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	if (syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, NULL, 0) < 0)
		return -errno;
	return 0;
}

/* bench_futex_wake - wake up to n sleepers; returns how many, or -errno. */
static inline int bench_futex_wake(_Atomic uint32_t *word, int n)
{
	long r = syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);

	return r < 0 ? -errno : (int)r;
}

#endif /* SHMRPC_BENCH_FUTEX_H */
