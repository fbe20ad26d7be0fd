// SPDX-License-Identifier: MIT
/*
 * Segments: POSIX shared memory files in /dev/shm, created exclusively,
 * checked before they are mapped (owner and size: a file somebody else
 * planted, or one of the wrong size, is refused rather than trusted), and
 * the liveness lock a node holds on its own segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int shmrpc__seg_create(const char *path, uint64_t size, uint32_t mode, void **map, int *fd_out)
{
	void *p;
	int fd, err;

	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	/* shm_open applied the umask; the domain's mode is what was asked. */
	if (fchmod(fd, mode) || ftruncate(fd, (off_t)size)) {
		err = -errno;
		goto out_unlink;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		goto out_unlink;
	}
	*map = p;
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return 0;

out_unlink:
	shm_unlink(path);
	close(fd);
	return err;
}

static bool in_group(gid_t gid)
{
	gid_t groups[64];
	int i, n;

	if (gid == getegid())
		return true;
	n = getgroups(64, groups);
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/*
 * shmrpc-reaper, run by root, cleans up after the nodes of every user, so it
 * must map segments it does not own. The owner check protects a node from
 * files that another user planted to feed it crafted headers; the reaper
 * reads those files like any node does (every size, index and name from
 * shared memory is bounds-checked before use: docs/untrusted-memory.md), it
 * creates nothing, and it only wakes futex words in, and unlinks, files
 * named after the domain it found. A planted file can therefore make it do
 * no more than the domain's own members can. Nodes never set this: a root
 * node still refuses files of other users (test_regfile_other_owner_refused).
 * Set once at start-up, before threads exist; read without synchronisation.
 */
static bool any_owner;

void shmrpc__seg_any_owner(bool on)
{
	any_owner = on;
}

/* A segment is ours to trust when we (or root) own it, or, in a domain
 * opened with group access, when it belongs to one of our groups. */
static int owner_ok(const struct stat *st, uint32_t mode)
{
	if (any_owner || st->st_uid == geteuid() || st->st_uid == 0)
		return 0;
	if ((mode & 0070) && (st->st_mode & 0060) && in_group(st->st_gid))
		return 0;
	return -EPERM;
}

int shmrpc__seg_open(const char *path, uint64_t min, uint64_t max, uint32_t mode, bool rdonly,
		     void **map, uint64_t *size, int *fd_out)
{
	struct stat st;
	void *p;
	int fd, err;

	fd = shm_open(path, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto out;
	}
	err = owner_ok(&st, mode);
	if (err)
		goto out;
	if (st.st_size < 0 || (uint64_t)st.st_size < min || (uint64_t)st.st_size > max) {
		/* a creator sizes before it publishes anything: wrong is corrupt */
		err = st.st_size == 0 ? -EAGAIN : -EPROTO;
		goto out;
	}
	p = mmap(NULL, (size_t)st.st_size, rdonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	*map = p;
	*size = (uint64_t)st.st_size;
	if (fd_out) {
		*fd_out = fd;
		return 0;
	}
	err = 0;
out:
	close(fd);
	return err;
}

void shmrpc__seg_unmap(void *map, uint64_t size)
{
	if (map)
		munmap(map, size);
}

int shmrpc__seg_unlink(const char *path)
{
	return shm_unlink(path) ? -errno : 0;
}

static void lock_desc(struct flock *fl)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = F_WRLCK;
	fl->l_whence = SEEK_SET;
	fl->l_start = 0;
	fl->l_len = 1;
}

/*
 * An open-file-description lock rather than a classic POSIX one: it
 * conflicts with probes from other descriptors of the same process (two
 * nodes in one process must see each other alive), and closing some other
 * descriptor of the file does not drop it. It is inherited across fork with
 * the descriptor, which is why node.c closes it in forked children.
 *
 * The lock is dropped when its open file description is released, and a
 * mapping holds a reference to the description it was made through: the
 * lock must therefore never be taken on the description the segment is
 * mapped through, or a forked child (which inherits the mapping) would keep
 * a dead parent's node alive. shmrpc__seg_lock_new opens a description of
 * its own for it.
 */
static int seg_lock(int fd)
{
	struct flock fl;

	lock_desc(&fl);
	return fcntl(fd, F_OFD_SETLK, &fl) ? -errno : 0;
}

int shmrpc__seg_lock_new(const char *path, int same_as, int *fd_out)
{
	struct stat a, b;
	int fd, err;

	fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &a) || fstat(same_as, &b)) {
		err = -errno;
		goto out;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		err = -ESTALE; /* replaced under our feet */
		goto out;
	}
	err = seg_lock(fd);
	if (!err) {
		*fd_out = fd;
		return 0;
	}
out:
	close(fd);
	return err;
}

int shmrpc__seg_locked(int fd)
{
	struct flock fl;

	lock_desc(&fl);
	if (fcntl(fd, F_OFD_GETLK, &fl))
		return -errno;
	return fl.l_type != F_UNLCK;
}
