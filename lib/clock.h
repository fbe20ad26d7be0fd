/* SPDX-License-Identifier: MIT */
/*
 * Deadlines (clock.c): every timeout becomes an absolute CLOCK_MONOTONIC
 * time in nanoseconds, read from the clock only when a call first waits.
 */
#ifndef SHMRPC_CLOCK_H
#define SHMRPC_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define SHMRPC__NEVER INT64_MAX
/* Every sleep ends after this long at most; the sleeper then re-checks its
 * words and its peers' liveness (a lost wake can delay, never hang). */
#define SHMRPC__SAFETY_NS (500 * 1000 * 1000ll)

int64_t shmrpc__now_ns(void);
/* Absolute CLOCK_MONOTONIC deadline of a timeout_ms argument: SHMRPC__NEVER
 * for -1, now for 0; -EINVAL for < -1 is the caller's check. */
int64_t shmrpc__deadline(int timeout_ms);
/*
 * A call's timeout, its deadline read from the clock only when the call
 * first has to wait: the fast paths (a message waiting, room in the ring)
 * never pay for clock_gettime. The timeout counts from that first wait.
 */
struct shmrpc__tmo {
	int ms;
	bool set;
	int64_t deadline;
};
#define SHMRPC__TMO(timeout_ms) ((struct shmrpc__tmo){ .ms = (timeout_ms) })
/* @t's deadline, read from the clock at the first call. */
int64_t shmrpc__tmo_deadline(struct shmrpc__tmo *t);
/* -EAGAIN for a non-blocking call, -ETIMEDOUT for a timed one. */
int shmrpc__timeout_err(int timeout_ms);
/* A CLOCK_MONOTONIC time in nanoseconds as a timespec. */
void shmrpc__ts_from_ns(struct timespec *ts, int64_t ns);
/* Min of @deadline and now + @safety_ns (a node's safety timeout). */
int64_t shmrpc__sleep_until(int64_t deadline, int64_t safety_ns);
/* The safety timeout: $SHMRPC_SAFETY_MS (tests, debugging), else
 * SHMRPC__SAFETY_NS. */
int64_t shmrpc__safety_ns(void);

#endif /* SHMRPC_CLOCK_H */
