// SPDX-License-Identifier: MIT
/*
 * Deadlines. Every timeout becomes an absolute CLOCK_MONOTONIC time in
 * nanoseconds once, at the start of a call, so loops that wake early
 * (safety timeouts, spurious wakes) never stretch the caller's timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"

int64_t shmrpc__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t shmrpc__deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return SHMRPC__NEVER;
	return shmrpc__now_ns() + (int64_t)timeout_ms * 1000000;
}

int64_t shmrpc__tmo_deadline(struct shmrpc__tmo *t)
{
	if (!t->set) {
		t->deadline = shmrpc__deadline(t->ms);
		t->set = true;
	}
	return t->deadline;
}

int shmrpc__timeout_err(int timeout_ms)
{
	return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
}

void shmrpc__ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
}

int64_t shmrpc__sleep_until(int64_t deadline, int64_t safety_ns)
{
	int64_t safety = shmrpc__now_ns() + safety_ns;

	return deadline < safety ? deadline : safety;
}

/*
 * $SHMRPC_SAFETY_MS: the safety timeout, for debugging and for tests that
 * must see a lost wakeup as a hang rather than as 500 ms of latency.
 */
int64_t shmrpc__safety_ns(void)
{
	const char *s = getenv("SHMRPC_SAFETY_MS");
	char *end;
	long v;

	if (!s || !*s)
		return SHMRPC__SAFETY_NS;
	v = strtol(s, &end, 10);
	if (*end || v <= 0 || v > 3600 * 1000)
		return SHMRPC__SAFETY_NS;
	return (int64_t)v * 1000000;
}
