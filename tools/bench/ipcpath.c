// SPDX-License-Identifier: MIT
/*
 * Where the ipc:// baselines (tr_zmq.c, tr_nng.c) put their Unix socket:
 * a private directory (mkdtemp, 0700) made by the driver for one run, so
 * that no other user can take or squat the name, removed with the socket
 * at teardown whatever the sides did. The side that connects waits for the
 * socket to appear (the other side binds it in its attach), so neither
 * library's reconnect timer is ever part of a run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* bench_ipc_make - a fresh private directory; @path gets "DIR/pair", the
 * socket's path. 0 or -errno. */
int bench_ipc_make(char *path, size_t len)
{
	char dir[] = "/tmp/shmrpc-bench.XXXXXX";

	if (!mkdtemp(dir))
		return -errno;
	if ((size_t)snprintf(path, len, "%s/pair", dir) >= len) {
		rmdir(dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* bench_ipc_wait - wait up to @ms for a socket at @path: 0 or -ETIMEDOUT. */
int bench_ipc_wait(const char *path, int ms)
{
	struct timespec tick = { 0, 1000000 };
	struct stat st;

	for (int i = 0; i <= ms; i++) {
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		nanosleep(&tick, NULL);
	}
	return -ETIMEDOUT;
}

/* bench_ipc_remove - remove the socket (if left) and its directory. */
void bench_ipc_remove(const char *path)
{
	char dir[256];

	snprintf(dir, sizeof(dir), "%s", path);
	if (!strrchr(dir, '/'))
		return;
	*strrchr(dir, '/') = 0;
	unlink(path);
	rmdir(dir);
}
