// SPDX-License-Identifier: MIT
/*
 * Segments: POSIX shared memory files in /dev/shm, created exclusively and
 * reserved in full at creation (a full /dev/shm is -ENOSPC then, never a
 * SIGBUS later), checked before they are mapped (owner and size: a file
 * somebody else planted, or one of the wrong size, is refused rather than
 * trusted), and the liveness lock a node holds on its own segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/*
 * Reserve every page of a new segment, and size it, in one step. tmpfs
 * allocates a page when it is first touched, and a page it cannot allocate
 * then is a SIGBUS in whoever touches it: this process, or a peer that
 * writes to our segment. fallocate() allocates them all now, or fails with
 * ENOSPC (ENOMEM under a memory cgroup's limit) and frees what it took; the
 * size changes only once every page is there (shmem_fallocate sets it last),
 * so an opener sees size 0 (-EAGAIN to it, or -EPROTO where a size is
 * required) or a complete file, never a half-reserved one. tests/test_enospc
 * observes both on the running kernel. EINTR (a signal during a large
 * reservation) undoes it all too: retry.
 *
 * Without fallocate (/dev/shm is not tmpfs), size first, then
 * posix_fallocate's emulation writes a byte per block: a full file system
 * is then ENOSPC from pwrite(2), not a signal, though openers may meet the
 * file sized before it is reserved.
 */
static int seg_reserve(int fd, uint64_t size)
{
	int rc;

	do
		rc = fallocate(fd, 0, 0, (off_t)size) ? errno : 0;
	while (rc == EINTR);
	if (rc != EOPNOTSUPP && rc != ENOSYS)
		return -rc;
	if (ftruncate(fd, (off_t)size))
		return -errno;
	do
		rc = posix_fallocate(fd, 0, (off_t)size);
	while (rc == EINTR);
	return -rc;
}

/* Sizing a file past RLIMIT_FSIZE raises SIGXFSZ (default action: core
 * dump) before the call fails with EFBIG: refuse first. */
static int fsize_ok(uint64_t size)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_FSIZE, &rl) || rl.rlim_cur == RLIM_INFINITY || size <= rl.rlim_cur)
		return 0;
	return -EFBIG;
}

/*
 * Remove a segment that we failed to make, if @path still names it: an
 * opener that found a registry file empty for a second unlinks it and may
 * have created its own since (registry.c).
 */
static void unlink_own(const char *path, int fd)
{
	struct stat a, b;
	int fd2;

	fd2 = shm_open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	if (fd2 < 0)
		return;
	if (!fstat(fd, &a) && !fstat(fd2, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		shm_unlink(path);
	close(fd2);
}

int shmrpc__seg_create(const char *path, uint64_t size, uint32_t mode, void **map, int *fd_out)
{
	void *p;
	int fd, err;

	err = fsize_ok(size);
	if (err)
		return err;
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	/* shm_open applied the umask; the domain's mode is what was asked. */
	err = fchmod(fd, mode) ? -errno : seg_reserve(fd, size);
	if (err)
		goto out_unlink;
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
	unlink_own(path, fd);
	close(fd);
	return err;
}

const char *shmrpc__seg_why(int err)
{
	switch (err) {
	case -ENOSPC:
		return "/dev/shm is full";
	case -ENOMEM:
		return "out of memory (a memory cgroup limit?)";
	case -EFBIG:
		return "larger than RLIMIT_FSIZE (ulimit -f)";
	default:
		return strerror(-err);
	}
}

int shmrpc__seg_err(int err, uint64_t size, const char *fmt, ...)
{
	char what[160], sz[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (size >= (1u << 20) && !(size & ((1u << 20) - 1)))
		snprintf(sz, sizeof(sz), "%llu MiB", (unsigned long long)(size >> 20));
	else
		snprintf(sz, sizeof(sz), "%llu KiB", (unsigned long long)((size + 1023) >> 10));
	return shmrpc__err(err, "%s (%s): %s", what, sz, shmrpc__seg_why(err));
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
