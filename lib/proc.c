// SPDX-License-Identifier: MIT
/*
 * This process's identity as a registry slot records it: pid, start time
 * (so that a reused pid is never mistaken for the node that died), euid and
 * pid namespace (a pid means nothing outside its namespace).
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

/* Field @want (>= 3) of /proc/@pid/stat ("self" for 0) as a number: 0 or
 * -errno. */
static int stat_field(pid_t pid, int want, uint64_t *v)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, field;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	/* comm (field 2) may hold spaces and parentheses: skip to the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	/* p is the end of field 2; each step lands on the space before the
	 * next field, so want - 2 steps reach the one before field @want. */
	for (field = 2; field < want && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -EIO;
	*v = strtoull(p + 1, NULL, 10);
	return 0;
}

int shmrpc__proc_start_time(pid_t pid, uint64_t *start)
{
	return stat_field(pid, 22, start); /* starttime */
}

int shmrpc__proc_threads(void)
{
	uint64_t v;

	return stat_field(0, 20, &v) ? -1 : (int)v; /* num_threads */
}

static int proc_read_self(struct shmrpc__proc *p)
{
	struct stat st;

	p->pid = getpid();
	p->uid = geteuid();
	/* informational (tools, the reaper): a missing /proc is no reason to fail */
	if (shmrpc__proc_start_time(p->pid, &p->start_time))
		p->start_time = 0;
	p->pidns = stat("/proc/self/ns/pid", &st) ? 0 : (uint64_t)st.st_ino;
	return 0;
}

/* Once per process: its pid tells a forked child, which reads its own. */
int shmrpc__proc_self(struct shmrpc__proc *p)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct shmrpc__proc cache;
	pid_t pid = getpid();
	int err = 0;

	pthread_mutex_lock(&lock);
	if (cache.pid != pid)
		err = proc_read_self(&cache);
	*p = cache;
	p->uid = geteuid(); /* may change (seteuid): not cached */
	pthread_mutex_unlock(&lock);
	return err;
}
