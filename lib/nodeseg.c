// SPDX-License-Identifier: MIT
/*
 * Another node's segment, seen from outside: whether its node is alive, a
 * checked mapping of it, and whether any node file of a domain is locked
 * (what its slots say is a claim).
 *
 * Alive means its liveness lock is held (seg.c): the owner holds an OFD
 * write lock on the segment for its whole life, and the kernel drops it
 * when the process goes, whatever the pid namespace of whoever asks. A
 * missing segment is a node gone (or never completed); anything that cannot
 * be checked is "cannot tell", never "dead".
 *
 * Mapped, a segment is written by every peer, header included: its header
 * fields are checked once, at the map, and the tables in it are located
 * from the layout (layout.h), never from those fields.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nodeseg.h"
#include "error.h"
#include "layout.h"
#include "names.h"
#include "regfile.h"
#include "seg.h"

int shmrpc__node_alive(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen)
{
	char path[SHMRPC__PATH_MAX];
	int fd, rc;

	shmrpc__node_path(path, r, slot, gen);
	/* Never blocks: a FIFO at the name is refused (-EPROTO), not waited
	 * on. Anything we cannot check says "cannot tell", never "dead". */
	fd = shmrpc__seg_open_fd(path, O_RDONLY, r->mode, NULL);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	rc = shmrpc__seg_locked(fd);
	close(fd);
	return rc;
}

int shmrpc__node_map(const struct shmrpc__reg *r, uint32_t slot, uint32_t gen,
		     struct shmrpc__node_hdr **out, uint64_t *size, int *fd_out)
{
	uint64_t want = shmrpc__node_size(r->capacity);
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__node_hdr *h;
	void *map;
	int err;

	shmrpc__node_path(path, r, slot, gen);
	err = shmrpc__seg_open(path, want, want, r->mode, false, &map, size, fd_out);
	if (err)
		return err == -EAGAIN ? -EPROTO : err; /* a node is sized before it is LIVE */
	h = map;
	if (h->magic != SHMRPC__NODE_MAGIC || h->slot != slot || h->gen != gen ||
	    h->capacity != r->capacity || h->pend_off != shmrpc__node_pend_off() ||
	    h->in_off != shmrpc__node_in_off(r->capacity) ||
	    h->out_off != shmrpc__node_out_off(r->capacity) ||
	    h->rep_pend_off != shmrpc__node_pend_off_k(r->capacity, SHMRPC__KIND_REP) ||
	    h->rep_in_off != shmrpc__node_in_off_k(r->capacity, SHMRPC__KIND_REP) ||
	    h->rep_out_off != shmrpc__node_out_off_k(r->capacity, SHMRPC__KIND_REP)) {
		shmrpc__seg_unmap(map, *size);
		if (fd_out)
			close(*fd_out);
		return -EPROTO;
	}
	*out = h;
	return 0;
}

/* "shmrpc.<domain>.node.<16 hex>" (names.c) for @pre = "shmrpc.<domain>.node." */
static bool node_name(const char *ent, const char *pre, size_t n)
{
	size_t i;

	if (strncmp(ent, pre, n))
		return false;
	for (i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)ent[n + i]))
			return false;
	return ent[n + 16] == '\0';
}

/*
 * The slots are claims; the node files are what is left of live nodes
 * whatever the slots say, and their names cannot be listed from the slots
 * (keyed by the registry's key, which a member can rewrite too): read the
 * directory. Each candidate is opened as any liveness check opens (never
 * blocking, never following, owner checked) and its lock tested; files of
 * other users are refused by the owner check, so only our domain's members
 * can keep the registry in place by a lock, which they could anyway. Past
 * @max candidate names (which anyone can plant) the answer is "cannot
 * tell": the registry stays, for the next leaver or the reaper.
 */
int shmrpc__reg_any_locked(const struct shmrpc__reg *r, uint32_t max, uint32_t *looked)
{
	char pre[SHMRPC_NAME_MAX + 16], path[NAME_MAX + 2];
	uint32_t seen = 0, checked = 0;
	struct dirent *e;
	int rc = 0, fd;
	size_t n;
	DIR *dir = opendir(SHMRPC__SHM_DIR);

	if (!dir)
		return 1;
	n = (size_t)snprintf(pre, sizeof(pre), "shmrpc.%s.node.", r->domain);
	while (!rc && (e = readdir(dir))) {
		seen++;
		if ((e->d_type != DT_REG && e->d_type != DT_UNKNOWN) ||
		    !node_name(e->d_name, pre, n))
			continue;
		if (checked++ >= max) {
			rc = 2;
			break;
		}
		snprintf(path, sizeof(path), "/%s", e->d_name);
		fd = shmrpc__seg_open_fd(path, O_RDONLY, r->mode, NULL);
		if (fd >= 0) {
			rc = shmrpc__seg_locked(fd) != 0;
			close(fd);
		}
	}
	closedir(dir);
	if (looked)
		*looked = seen;
	if (rc == 2)
		shmrpc__log(SHMRPC_LOG_INFO,
			    "domain '%s': no slot in use, but more than %u node files: registry "
			    "kept",
			    r->domain, max);
	else if (rc)
		shmrpc__log(SHMRPC_LOG_INFO,
			    "domain '%s': no slot in use, but a node file is locked (its slots "
			    "were rewritten): registry kept",
			    r->domain);
	return rc ? 1 : 0;
}
