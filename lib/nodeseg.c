// SPDX-License-Identifier: MIT
/*
 * Another node's segment, seen from outside: whether its node is alive, and
 * a checked mapping of it.
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
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "nodeseg.h"
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
	    h->out_off != shmrpc__node_out_off(r->capacity)) {
		shmrpc__seg_unmap(map, *size);
		if (fd_out)
			close(*fd_out);
		return -EPROTO;
	}
	*out = h;
	return 0;
}
