// SPDX-License-Identifier: MIT
/*
 * A libshmrpc domain seen from outside: fresh domain names for runs, the
 * files of a domain in /dev/shm (what they occupy: allocated blocks, the
 * memory tmpfs really holds, and apparent sizes; which of them belong to
 * one node; removing what a killed run left behind), and its registry,
 * mapped read-only (crash.c watches a victim's slot through it).
 *
 * This is the benchmark's only use of the library beyond its API: the
 * tools' header lib/inspect.h (which file of a domain a /dev/shm entry is)
 * and the registry layout of lib/layout.h (the bench, like every tool, is
 * built with those two and shmrpc.h only, see the Makefile). Every
 * libshmrpc run of the benchmark uses a domain of its own, so that it
 * never touches a real deployment or another run.
 *
 * /dev/shm is shared by all users: files are looked at with lstat and
 * opened with O_NOFOLLOW | O_NONBLOCK, then checked with fstat.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "inspect.h" /* shmrpc_insp_file_ids */
#include "layout.h"
#include "shmrpc.h"

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
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue; /* gone meanwhile, or not one of the library's */
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

/* The domain's registry, mapped read-only: looking has no side effect
 * (a lookup through the library would reclaim what it finds dead). */
struct bench_regview {
	const struct shmrpc__reg_hdr *h;
	const struct shmrpc__slot *slots;
	size_t len;
	uint32_t cap;
};

/* bench_node_files - how many files of node (slot, gen) of @domain are
 * still in /dev/shm: its segment, the rings it sends on and the rings it
 * receives on, known by their headers (names carry a keyed hash of the ids,
 * lib/names.c). -errno if /dev/shm or the registry cannot be read. */
int bench_node_files(const struct bench_regview *v, const char *domain, uint32_t slot, uint32_t gen)
{
	struct shmrpc_insp_reg r = { 0 };
	struct dirent *e;
	uint32_t ids[4];
	int n = 0, k;
	DIR *d = opendir(SHM_DIR);

	if (!d)
		return -errno;
	snprintf(r.domain, sizeof(r.domain), "%s", domain);
	memcpy(r.key, v->h->name_key, sizeof(r.key));
	r.nonce = v->h->nonce;
	r.mode = v->h->mode;
	while ((e = readdir(d))) {
		k = shmrpc_insp_file_ids(&r, e->d_name, ids);
		n += (k == 1 && ids[0] == slot && ids[1] == gen) ||
		     (k == 2 &&
		      ((ids[0] == slot && ids[1] == gen) || (ids[2] == slot && ids[3] == gen)));
	}
	closedir(d);
	return n;
}

/* ------------------------------------------------------------- registry */

/* bench_reg_open - map the registry of @domain read-only. 0, -ENOENT (no
 * such domain), -EPROTO (not a registry: wrong type or too small),
 * -ENOMEM, or another -errno. */
int bench_reg_open(const char *domain, struct bench_regview **out)
{
	char path[160];
	struct stat st;
	struct bench_regview *v;
	void *map;
	int fd, err;

	*out = NULL;
	snprintf(path, sizeof(path), SHM_DIR "/shmrpc.%s.reg", domain);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof(struct shmrpc__reg_hdr)) {
		close(fd);
		return -EPROTO;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	err = map == MAP_FAILED ? -errno : 0;
	close(fd);
	v = err ? NULL : malloc(sizeof(*v));
	if (!v) {
		if (!err)
			munmap(map, (size_t)st.st_size);
		return err ? err : -ENOMEM;
	}
	v->len = (size_t)st.st_size;
	v->h = map;
	v->cap = (uint32_t)((v->len - sizeof(*v->h)) / sizeof(struct shmrpc__slot));
	v->slots = (const struct shmrpc__slot *)(v->h + 1);
	*out = v;
	return 0;
}

void bench_reg_close(struct bench_regview *v)
{
	if (!v)
		return;
	munmap((void *)v->h, v->len);
	free(v);
}

/* bench_reg_find - the LIVE slot named @name: its index, and its
 * generation in *gen; -ENOENT if there is none. */
int bench_reg_find(const struct bench_regview *v, const char *name, uint32_t *gen)
{
	char nm[SHMRPC_NAME_MAX + 1];

	for (uint32_t i = 0; i < v->cap; i++) {
		const struct shmrpc__slot *s = &v->slots[i];

		/* Acquire: pairs with the release store of LIVE when the node
		 * joined (lib/registry.c): its name and generation are set. */
		if (atomic_load_explicit(&s->state, memory_order_acquire) != SHMRPC__SLOT_LIVE)
			continue;
		for (int k = 0; k < 8; k++) {
			uint64_t w = atomic_load_explicit(&s->name[k], memory_order_relaxed);

			memcpy(nm + 8 * k, &w, 8);
		}
		nm[SHMRPC_NAME_MAX] = 0;
		if (!strcmp(nm, name)) {
			*gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
			return (int)i;
		}
	}
	return -ENOENT;
}

/* bench_reg_holds - 1 while slot @slot is LIVE with generation @gen (the
 * node found by bench_reg_find is still there), 0 once it was freed or
 * reused. */
int bench_reg_holds(const struct bench_regview *v, int slot, uint32_t gen)
{
	const struct shmrpc__slot *s = &v->slots[slot];
	/* Acquire, as in bench_reg_find; gen relaxed: compared, not used to
	 * read anything else. */
	uint32_t state = atomic_load_explicit(&s->state, memory_order_acquire);
	uint32_t g = atomic_load_explicit(&s->gen, memory_order_relaxed);

	return state == SHMRPC__SLOT_LIVE && g == gen;
}

/* bench_reg_reaper_pid - pid of the reaper watching the domain, 0: none.
 * Relaxed: a value to look at, nothing read through it. */
uint32_t bench_reg_reaper_pid(const struct bench_regview *v)
{
	return atomic_load_explicit(&v->h->reaper_pid, memory_order_relaxed);
}

/* bench_reg_reaped - slots the reaper freed so far (relaxed: a count). */
uint64_t bench_reg_reaped(const struct bench_regview *v)
{
	return atomic_load_explicit(&v->h->reaped, memory_order_relaxed);
}
