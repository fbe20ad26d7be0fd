// SPDX-License-Identifier: MIT
/*
 * Processes of other pid namespaces, and whose a process is.
 *
 * A slot records its node's pid in the node's own pid namespace and that
 * namespace's inode. For a node of another namespace (a container sharing
 * /dev/shm) the reaper needs the same process's pid in its own: the one
 * whose /proc/PID/ns/pid is that inode and whose last NSpid is that pid.
 * Looking that up walks /proc. Walking it once per node let one user's 4096
 * slots with invented namespaces cost 4096 walks (the reaper at 100% CPU,
 * another user's reclaim 2.1 s late). So one walk builds a table of every
 * process outside our namespace, and a node is looked up in it; the table is
 * rebuilt when a look-up misses, at most once a second, whoever asks.
 * What a stale table misses is lock-polled meanwhile and looked up again at
 * its next poll (procs.c). Reads /proc as root (never as a domain's owner:
 * /proc/PID/ns needs ptrace access).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reaper.h"

#define NSTAB_AGE_NS (1000 * 1000000ll)

struct nsent {
	uint64_t ns;
	pid_t nspid, gpid;
};

static struct {
	struct nsent *v;
	uint32_t n, cap;
	int64_t built_ns;
} tab;

/* /proc/PID/status into @buf; its length, or -1. */
static ssize_t status_read(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* The numbers after "\n<key>" in a status text, up to @max of them. */
static int status_nums(const char *buf, const char *key, long *v, int max)
{
	const char *p = strstr(buf, key);
	char *end;
	int k = 0;

	if (!p)
		return 0;
	for (p += strlen(key); k < max; p = end) {
		v[k] = strtol(p, &end, 10);
		if (end == p)
			break;
		k++;
		if (*end == '\n' || !*end)
			break;
	}
	return k;
}

/* The last number of the NSpid line of /proc/PID/status, or -1. */
static pid_t nspid_last(pid_t pid)
{
	char buf[2048];
	long v[32];
	int k;

	if (status_read(pid, buf, sizeof(buf)) < 0)
		return -1;
	k = status_nums(buf, "\nNSpid:", v, 32);
	return k ? (pid_t)v[k - 1] : -1;
}

bool proc_uid_is(pid_t gpid, uid_t uid)
{
	char buf[2048];
	long v[4];

	/* Uid: real, effective, saved, filesystem. A node's files are made
	 * with its fsuid, which is its euid unless it changed one of them. */
	if (status_read(gpid, buf, sizeof(buf)) < 0 || status_nums(buf, "\nUid:", v, 4) != 4)
		return false;
	return (uid_t)v[1] == uid || (uid_t)v[3] == uid;
}

static int cmp_ent(const void *a, const void *b)
{
	const struct nsent *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return (x->nspid > y->nspid) - (x->nspid < y->nspid);
}

static void tab_build(struct reaper *r)
{
	char path[64];
	struct dirent *e;
	struct stat st;
	struct nsent *v;
	pid_t pid;
	DIR *dir = opendir("/proc");

	tab.n = 0;
	tab.built_ns = rnow_ns();
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
		if (stat(path, &st) || (uint64_t)st.st_ino == r->mypidns)
			continue;
		if (tab.n == tab.cap) {
			v = realloc(tab.v, (tab.cap ? 2 * tab.cap : 256) * sizeof(*v));
			if (!v)
				break;
			tab.v = v;
			tab.cap = tab.cap ? 2 * tab.cap : 256;
		}
		tab.v[tab.n++] = (struct nsent){ (uint64_t)st.st_ino, nspid_last(pid), pid };
	}
	closedir(dir);
	if (tab.n)
		qsort(tab.v, tab.n, sizeof(*tab.v), cmp_ent);
}

static pid_t tab_find(pid_t nspid, uint64_t ns, uint64_t start)
{
	struct nsent key = { ns, nspid, 0 }, *e;
	uint64_t t;

	e = tab.n ? bsearch(&key, tab.v, tab.n, sizeof(*tab.v), cmp_ent) : NULL;
	if (!e)
		return 0;
	/* A reused pid in that namespace is no match: same start or none. */
	if (start && (shmrpc_insp_start_time(e->gpid, &t) || t != start))
		return 0;
	return nspid_last(e->gpid) == nspid ? e->gpid : 0;
}

pid_t pidns_gpid(struct reaper *r, pid_t nspid, uint64_t ns, uint64_t start)
{
	pid_t gpid = tab_find(nspid, ns, start);

	if (gpid || rnow_ns() - tab.built_ns < NSTAB_AGE_NS)
		return gpid;
	tab_build(r);
	return tab_find(nspid, ns, start);
}

void pidns_fini(void)
{
	free(tab.v);
	memset(&tab, 0, sizeof(tab));
}
