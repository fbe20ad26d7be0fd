// SPDX-License-Identifier: MIT
/*
 * The harnesses' private /dev/shm and unique names (fuzz.h).
 */
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include "fuzz.h"

bool fuzz_private_shm(void)
{
	static int done; /* 0 not tried, 1 private, -1 not possible */

	if (done)
		return done > 0;
	done = -1;
	if (getenv("SHMRPC_FUZZ_SHARED_SHM"))
		return false; /* asked to use the host's /dev/shm */
	/* The namespace is the calling thread's (unshare(2) leaves other
	 * threads where they were); threads it starts later inherit it. */
	if (unshare(CLONE_NEWNS))
		return false;
	/* Our mounts must not propagate back to the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("shmrpc-fuzz", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=256m,mode=1777")) {
		fprintf(stderr, "fuzz: no private /dev/shm (%s): unique names instead\n",
			strerror(errno));
		return false;
	}
	done = 1;
	return true;
}

void fuzz_domain(char *buf, size_t len, const char *prefix)
{
	snprintf(buf, len, "%s-%d", prefix, (int)getpid());
}
