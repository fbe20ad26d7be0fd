// SPDX-License-Identifier: MIT
/*
 * Deaths from pidfds, when the eBPF probe cannot be used (not root, no BTF,
 * BPF refused by policy): one pidfd per watched process, in the main epoll
 * set with the process's pid as its data. A pidfd becomes readable when its
 * process has exited and stays readable, so unlike the probe there is no
 * window in which a death goes unseen. Cost: one file descriptor and one
 * epoll entry per process (main.c raises RLIMIT_NOFILE), and an epoll
 * wake-up of its own per death.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "reaper.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static int pw_add(struct reaper *r, struct rproc *p, uint64_t cookie)
{
	(void)cookie;
	return proc_pidfd_open(r, p);
}

/* procs.c closes the pidfd; EV_PIDFD events go to procs_pidfd(). */
static void pw_nothing(struct reaper *r)
{
	(void)r;
}

static void pw_del(struct reaper *r, struct rproc *p)
{
	(void)r;
	(void)p;
}

static void pw_event(struct reaper *r, uint64_t data)
{
	(void)r;
	(void)data;
}

const struct reaper_watcher reaper_watch_pidfd = {
	.name = "pidfd",
	.mode = REAPER_MODE_PIDFD,
	.add = pw_add,
	.del = pw_del,
	.event = pw_event,
	.started = pw_nothing,
	.tick = pw_nothing,
	.close = pw_nothing,
};

int reaper_pidfd_open(struct reaper *r, char *why, size_t len)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (fd < 0) {
		snprintf(why, len, "pidfd_open: %s", strerror(errno));
		return -errno;
	}
	close(fd);
	r->w = &reaper_watch_pidfd;
	r->wpriv = NULL;
	snprintf(why, len, "pidfds in epoll");
	return 0;
}
