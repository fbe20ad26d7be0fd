// SPDX-License-Identifier: MIT
/*
 * shmrpc_last_error and the log hook (see error.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define MSG_MAX 256

/*
 * pending: text recorded during the current call; last: what
 * shmrpc_last_error shows, replaced only when a call fails, so a call that
 * recorded text and then succeeded (a retry) leaves the last failure's text.
 */
static _Thread_local struct {
	bool fresh;
	char pending[MSG_MAX];
	char last[MSG_MAX];
	/* A failure with no text of its own: "<call>: <strerror>", formatted
	 * when asked (a receive loop's -EAGAIN costs no snprintf). */
	const char *lazy_call;
	int lazy_rc;
} tls;

int shmrpc__err(int err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tls.pending, sizeof(tls.pending), fmt, ap);
	va_end(ap);
	tls.fresh = true;
	errno = saved;
	return err;
}

int shmrpc__ret(int rc, const char *call)
{
	if (rc >= 0) {
		if (tls.fresh)
			tls.fresh = false;
		return rc;
	}
	if (tls.fresh) {
		memcpy(tls.last, tls.pending, sizeof(tls.last));
		tls.lazy_call = NULL;
		tls.fresh = false;
	} else {
		tls.lazy_call = call;
		tls.lazy_rc = rc;
	}
	return rc;
}

const char *shmrpc_last_error(void)
{
	int saved = errno;

	if (tls.lazy_call) {
		snprintf(tls.last, sizeof(tls.last), "%s: %s", tls.lazy_call,
			 strerror(-tls.lazy_rc));
		tls.lazy_call = NULL;
	}
	errno = saved;
	return tls.last;
}

/* ------------------------------------------------------------------ log */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static shmrpc_log_fn log_fn; /* under log_lock */
static void *log_arg;	     /* under log_lock */
/* Lowest level delivered: SHMRPC_LOG_WARN + 1 means nobody listens. Read
 * without the lock as a filter (relaxed: a log line more or less around a
 * shmrpc_set_log call is fine); the hook itself is read under the lock. */
static _Atomic int log_min = -1; /* -1: $SHMRPC_LOG not read yet */
static int env_min = SHMRPC_LOG_WARN + 1;
static bool env_bad;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = { "debug", "info", "warn" };

static void env_read(void)
{
	const char *s = getenv("SHMRPC_LOG");
	int i;

	if (!s || !*s)
		goto out;
	for (i = SHMRPC_LOG_DEBUG; i <= SHMRPC_LOG_WARN; i++)
		if (!strcmp(s, level_names[i]))
			env_min = i;
	env_bad = env_min > SHMRPC_LOG_WARN;
out:
	pthread_mutex_lock(&log_lock);
	if (atomic_load_explicit(&log_min, memory_order_relaxed) < 0)
		atomic_store_explicit(&log_min, log_fn ? SHMRPC_LOG_DEBUG : env_min,
				      memory_order_relaxed);
	pthread_mutex_unlock(&log_lock);
}

int shmrpc__log_env_check(void)
{
	pthread_once(&env_once, env_read);
	if (!env_bad)
		return 0;
	return shmrpc__err(-EINVAL, "SHMRPC_LOG=%s: unknown level (debug, info, warn)",
			   getenv("SHMRPC_LOG") ? getenv("SHMRPC_LOG") : "");
}

bool shmrpc__log_on(int level)
{
	int min = atomic_load_explicit(&log_min, memory_order_relaxed);

	if (min < 0) {
		pthread_once(&env_once, env_read);
		min = atomic_load_explicit(&log_min, memory_order_relaxed);
	}
	return level >= min;
}

void shmrpc_set_log(shmrpc_log_fn fn, void *arg)
{
	pthread_once(&env_once, env_read);
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_arg = arg;
	atomic_store_explicit(&log_min, fn ? SHMRPC_LOG_DEBUG : env_min, memory_order_relaxed);
	pthread_mutex_unlock(&log_lock);
}

void shmrpc__log(int level, const char *fmt, ...)
{
	char msg[MSG_MAX];
	int saved = errno;
	va_list ap;

	if (level < SHMRPC_LOG_DEBUG || level > SHMRPC_LOG_WARN || !shmrpc__log_on(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The hook runs under the lock: shmrpc_set_log(NULL) returning means
	 * it is not running any more, so its argument may be freed. */
	pthread_mutex_lock(&log_lock);
	if (log_fn)
		log_fn(level, msg, log_arg);
	else if (level >= env_min)
		fprintf(stderr, "libshmrpc: %s: %s\n", level_names[level], msg);
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}
