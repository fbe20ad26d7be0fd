// SPDX-License-Identifier: MIT
/*
 * Segments: POSIX shared memory files in /dev/shm, created exclusively and
 * reserved in full at creation (a full /dev/shm is -ENOSPC then, never a
 * SIGBUS later), opened without following a symlink or blocking on a FIFO,
 * checked before they are used (a regular file with one name, its owner,
 * its size: a file
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

#include "seg.h"
#include "error.h"

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
 * have created its own since (registry.c). Checked by lstat, not by
 * opening the name again: a failure for want of descriptors (EMFILE) must
 * not leave the file behind. If even that cannot be checked (no kernel
 * memory), a @unique name (a node's or a ring's: it hashes this node's
 * slot and generation, so no other node makes it) is unlinked anyway; a
 * registry's is left for the next opener, which finds it empty and
 * removes it. (test_fault's sticky sweep found the file left.)
 */
static void unlink_own(const char *path, int fd, bool unique)
{
	char full[sizeof(SHMRPC__SHM_DIR) + SHMRPC__PATH_MAX];
	struct stat a, b;

	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	if (!fstat(fd, &a) && !lstat(full, &b)) {
		if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			shm_unlink(path);
	} else if (unique) {
		shm_unlink(path);
	}
}

int shmrpc__seg_create(const char *path, uint64_t size, uint32_t mode, bool unique, void **map,
		       int *fd_out)
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
	unlink_own(path, fd, unique);
	close(fd);
	return err;
}

/* Why a segment creation failed, in words ("/dev/shm is full"). */
static const char *seg_why(int err)
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
	return shmrpc__err(err, "%s (%s): %s", what, sz, seg_why(err));
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
 * Whose files this thread trusts and acts for. A node: its own euid and
 * groups. shmrpc-reaper, run by root, cleans up after every user; for each
 * domain it sets its filesystem identity to the registry owner's
 * (setfsuid/setfsgid, tools/reaper/owner.c) and tells us here, so the
 * checks below accept exactly the files that owner's nodes would, and
 * unlinks are checked against that owner too. The kernel enforces the rest:
 * with a non-zero fsuid the reaper's thread has lost CAP_DAC_OVERRIDE and
 * CAP_FOWNER, so it can open only what the owner could, and in the sticky
 * /dev/shm unlink only the owner's files. So a planted file can make the
 * reaper do no more than the domain's own members can. Per thread, like
 * the fsuid it mirrors.
 */
static _Thread_local struct shmrpc__seg_actor act;

void shmrpc__seg_act_as(const struct shmrpc__seg_actor *a)
{
	if (a)
		act = *a;
	else
		memset(&act, 0, sizeof(act));
}

/* A segment is ours to trust when we (or root) own it, or, in a domain
 * opened with group access, when it belongs to one of our groups. */
static int owner_ok(const struct stat *st, uint32_t mode)
{
	uid_t me = act.on ? act.uid : geteuid();

	if (st->st_uid == me || st->st_uid == 0)
		return 0;
	if ((mode & 0070) && (st->st_mode & 0060) &&
	    (act.on ? st->st_gid == act.gid : in_group(st->st_gid)))
		return 0;
	return -EPERM;
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" :
	       S_ISDIR(m)  ? "a directory" :
	       S_ISCHR(m)  ? "a character device" :
	       S_ISBLK(m)  ? "a block device" :
	       S_ISSOCK(m) ? "a socket" :
	       S_ISLNK(m)  ? "a symbolic link" :
			     "not a regular file";
}

int shmrpc__seg_open_fd(const char *path, int flags, uint32_t mode, struct stat *st_out)
{
	char why[SHMRPC__PATH_MAX + 96];
	struct stat st;
	int fd, err;

	/* shm_open adds O_NOFOLLOW and O_CLOEXEC itself and passes the rest
	 * to open(2): a symlink fails with ELOOP, a FIFO opens at once. */
	fd = shm_open(path, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP || err == -EINVAL) { /* symlink; EISDIR becomes EINVAL */
			shmrpc__log(SHMRPC_LOG_WARN, "%s%s: a symbolic link or directory: refused",
				    SHMRPC__SHM_DIR, path);
			return shmrpc__err(-EPROTO, "%s%s: a symbolic link or directory: refused",
					   SHMRPC__SHM_DIR, path);
		}
		return err;
	}
	if (fstat(fd, &st)) {
		err = -errno;
		goto out;
	}
	/* One name only: a hard link could put another file of its owner
	 * (a registry, a live node's segment) under a name of ours. */
	if (!S_ISREG(st.st_mode) || st.st_nlink > 1) {
		snprintf(why, sizeof(why), "%s%s: %s (uid %u, %u links): refused", SHMRPC__SHM_DIR,
			 path, S_ISREG(st.st_mode) ? "a hard-linked file" : file_kind(st.st_mode),
			 (unsigned)st.st_uid, (unsigned)st.st_nlink);
		shmrpc__log(SHMRPC_LOG_WARN, "%s", why);
		err = shmrpc__err(-EPROTO, "%s", why);
		goto out;
	}
	err = owner_ok(&st, mode);
	if (err) {
		shmrpc__err(err, "%s%s is owned by uid %u gid %u, not by uid %u%s: refused",
			    SHMRPC__SHM_DIR, path, (unsigned)st.st_uid, (unsigned)st.st_gid,
			    (unsigned)(act.on ? act.uid : geteuid()),
			    mode & 0070 ? " or a group of ours" : "");
		goto out;
	}
	if (st_out)
		*st_out = st;
	return fd;
out:
	close(fd);
	return err;
}

int shmrpc__seg_open(const char *path, uint64_t min, uint64_t max, uint32_t mode, bool rdonly,
		     void **map, uint64_t *size, int *fd_out)
{
	struct stat st;
	void *p;
	int fd, err;

	fd = shmrpc__seg_open_fd(path, rdonly ? O_RDONLY : O_RDWR, mode, &st);
	if (fd < 0)
		return fd;
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

int shmrpc__seg_taken(const char *path, const char *what)
{
	char full[sizeof(SHMRPC__SHM_DIR) + SHMRPC__PATH_MAX];
	struct stat st;

	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	if (lstat(full, &st))
		return shmrpc__err(-EEXIST, "%s %s existed and could not be replaced", what, full);
	return shmrpc__err(-EEXIST, "%s %s exists and is %s owned by uid %u (not us: uid %u)", what,
			   full, S_ISREG(st.st_mode) ? "a file" : file_kind(st.st_mode),
			   (unsigned)st.st_uid, (unsigned)geteuid());
}

void shmrpc__seg_unmap(void *map, uint64_t size)
{
	if (map)
		munmap(map, size);
}

/*
 * For an actor (the reaper): unlink only a name whose file (or symlink: an
 * unlink removes the link, never its target) belongs to the owner it acts
 * for; a file of another member of a group-mode domain goes through the
 * actor's unlink_other, which decides and acts as that file's owner.
 */
static int act_unlink(const char *path)
{
	char full[sizeof(SHMRPC__SHM_DIR) + SHMRPC__PATH_MAX];
	struct stat st;

	snprintf(full, sizeof(full), "%s%s", SHMRPC__SHM_DIR, path);
	if (lstat(full, &st))
		return -errno;
	if (st.st_uid == act.uid)
		return shm_unlink(path) ? -errno : 0;
	if (act.unlink_other)
		return act.unlink_other(path, &st);
	shmrpc__log(SHMRPC_LOG_INFO, "%s: owned by uid %u, not uid %u: not unlinked", full,
		    (unsigned)st.st_uid, (unsigned)act.uid);
	return -EPERM;
}

int shmrpc__seg_unlink(const char *path)
{
	if (act.on)
		return act_unlink(path);
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

	fd = shm_open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
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
