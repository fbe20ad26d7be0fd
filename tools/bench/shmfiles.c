// SPDX-License-Identifier: MIT
/*
 * The files of a libshmrpc domain in /dev/shm, seen from outside: fresh
 * domain names for runs, what a domain occupies (allocated blocks, the
 * memory tmpfs really holds, and apparent sizes), and removing what a
 * killed run left behind. Every libshmrpc run of the benchmark uses a domain
 * of its own, so that it never touches a real deployment or another run.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define SHM_DIR "/dev/shm"

/* bench_domain - a fresh domain name: "bench.<pid>.<tag>.<n>". */
void bench_domain(char *buf, size_t len, const char *tag)
{
	static unsigned n;

	snprintf(buf, len, "bench.%d.%s.%u", (int)getpid(), tag, ++n);
}

static int prefix(char *buf, size_t len, const char *domain)
{
	int n = snprintf(buf, len, "shmrpc.%s.", domain);

	return n > 0 && (size_t)n < len ? n : -ENAMETOOLONG;
}

/*
 * bench_shm_usage - what the files of @domain occupy now: how many there
 * are of each kind, their allocated blocks (st_blocks, what tmpfs holds in
 * memory) and their apparent sizes. 0 or -errno.
 */
int bench_shm_usage(const char *domain, struct bench_shm_usage *u)
{
	char pre[128], path[512];
	struct dirent *e;
	struct stat st;
	DIR *d;
	int plen = prefix(pre, sizeof(pre), domain);

	memset(u, 0, sizeof(*u));
	if (plen < 0)
		return plen;
	d = opendir(SHM_DIR);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, pre, (size_t)plen))
			continue;
		snprintf(path, sizeof(path), SHM_DIR "/%s", e->d_name);
		if (stat(path, &st) < 0)
			continue; /* gone meanwhile */
		u->files++;
		u->blocks_bytes += (uint64_t)st.st_blocks * 512;
		u->apparent_bytes += (uint64_t)st.st_size;
		if (!strncmp(e->d_name + plen, "ring.", 5)) /* lib/names.c */
			u->rings++, u->ring_blocks += (uint64_t)st.st_blocks * 512;
		else if (!strncmp(e->d_name + plen, "node.", 5))
			u->nodes++, u->node_blocks += (uint64_t)st.st_blocks * 512;
		else if (!strcmp(e->d_name + plen, "reg"))
			u->reg_blocks += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return 0;
}

/* bench_shm_cleanup - unlink every file of @domain; returns how many there
 * were (0 after a clean run), or -errno. */
int bench_shm_cleanup(const char *domain)
{
	char pre[128], path[512];
	struct dirent *e;
	int n = 0, plen = prefix(pre, sizeof(pre), domain);
	DIR *d;

	if (plen < 0)
		return plen;
	d = opendir(SHM_DIR);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, pre, (size_t)plen))
			continue;
		snprintf(path, sizeof(path), SHM_DIR "/%s", e->d_name);
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}
