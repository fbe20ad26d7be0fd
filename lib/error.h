/* SPDX-License-Identifier: MIT */
/*
 * Errors that explain themselves, and the library's log.
 *
 * A failing path records why with shmrpc__err(err, fmt, ...), which returns
 * err, so `return shmrpc__err(-EINVAL, "opts.mode %o: ...", m);` reads as
 * the return it is. The text becomes shmrpc_last_error()'s when the public
 * call returns through SHMRPC__RET (a failure with no text recorded gets
 * "<call>: <strerror>"). Thread-local; nothing is formatted on success.
 *
 * shmrpc__log: what the library does on its own (a dead node reclaimed, a
 * corrupt ring dropped, a backend fallback), to the application's hook
 * (shmrpc_set_log) or, with $SHMRPC_LOG, to stderr. Silent by default, and
 * then costs one load.
 */
#ifndef SHMRPC_ERROR_H
#define SHMRPC_ERROR_H

#include <errno.h>
#include <stdbool.h>

#include "shmrpc.h"

int shmrpc__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* End of a public call: @rc as it is, after settling shmrpc_last_error. */
int shmrpc__ret(int rc, const char *call);
#define SHMRPC__RET(rc) shmrpc__ret((rc), __func__)

/* What the library does on its own, at @level (SHMRPC_LOG_*). */
void shmrpc__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Is anything listening at @level? (Skip building costly arguments.) */
bool shmrpc__log_on(int level);
/* $SHMRPC_LOG: 0 if unset or valid, else -EINVAL with the message set. */
int shmrpc__log_env_check(void);

/*
 * Public functions promise never to touch errno; the system calls beneath
 * them do. This restores it when the function's scope ends.
 */
static inline void shmrpc__errno_restore(const int *saved)
{
	extern int *__errno_location(void);
	*__errno_location() = *saved;
}
#define SHMRPC__KEEP_ERRNO \
	int shmrpc__saved_errno __attribute__((cleanup(shmrpc__errno_restore))) = errno

#endif /* SHMRPC_ERROR_H */
