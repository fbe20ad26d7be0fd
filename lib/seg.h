/* SPDX-License-Identifier: MIT */
/*
 * Segments (seg.c): files in /dev/shm, created exclusively and reserved in
 * full, opened without following a link and checked before use, and the
 * liveness lock a node holds on its own.
 */
#ifndef SHMRPC_SEG_H
#define SHMRPC_SEG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "layout.h" /* SHMRPC__SHM_DIR, SHMRPC__PATH_MAX */

/* Create a segment (O_EXCL), size it with every page reserved, map it
 * read-write. The file keeps mode exactly (umask ignored). On success
 * *fd_out (if not NULL) gets the open descriptor, else it is closed. On
 * failure the file is gone: -ENOSPC (/dev/shm full), -ENOMEM, -EFBIG
 * (RLIMIT_FSIZE), -EEXIST, -errno. @unique: no other node makes that name
 * (a node's, a ring's): removed even when it cannot be checked first. */
int shmrpc__seg_create(const char *path, uint64_t size, uint32_t mode, bool unique, void **map,
		       int *fd_out);
/* Record "<what> (<size>): <why>" for shmrpc_last_error, <why> saying in
 * words why a segment creation failed ("/dev/shm is full"); returns err. */
int shmrpc__seg_err(int err, uint64_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Open @path (O_RDONLY or O_RDWR in @flags) without following a symlink or
 * blocking on a FIFO, and check the descriptor: a regular file with at most
 * one link, whose owner is acceptable (this euid or root, or a group member
 * when @mode grants group access; the actor's identity instead when one is
 * set). Returns the descriptor, *st_out (if not NULL) its fstat; -ENOENT,
 * -EPROTO (symlink, FIFO, device, directory, hard link), -EPERM (owner),
 * -EACCES, -errno, with shmrpc_last_error text naming the file.
 */
int shmrpc__seg_open_fd(const char *path, int flags, uint32_t mode, struct stat *st_out);
/* The same, then map it, after checking that its size is within [min, max]
 * (-EAGAIN for an empty file: being created). */
int shmrpc__seg_open(const char *path, uint64_t min, uint64_t max, uint32_t mode, bool rdonly,
		     void **map, uint64_t *size, int *fd_out);
/*
 * shmrpc-reaper only: the identity this thread acts as (seg.c). While @on,
 * segments are accepted as if this process were @uid with group @gid, and
 * shmrpc__seg_unlink unlinks only files of @uid (after an lstat); a file of
 * another owner goes to @unlink_other, or is left. NULL: back to our own.
 */
struct shmrpc__seg_actor {
	bool on;
	uid_t uid;
	gid_t gid;
	int (*unlink_other)(const char *path, const struct stat *st);
};
void shmrpc__seg_act_as(const struct shmrpc__seg_actor *a);
/* -EEXIST, with shmrpc_last_error text naming the @what file at @path that
 * we could not create and its owner. */
int shmrpc__seg_taken(const char *path, const char *what);
/* Unmap a segment (NULL: nothing). */
void shmrpc__seg_unmap(void *map, uint64_t size);
/* Remove @path's name (as the actor, if one is set): 0 or -errno. */
int shmrpc__seg_unlink(const char *path);
/* Liveness lock: the owner of a node segment holds an OFD write lock on
 * its first byte for its whole life; the kernel drops it when the process
 * dies, whatever its pid namespace. */
/* Take the liveness lock of the segment at @path on a new open file
 * description (never the one it is mapped through: see seg.c), after
 * checking that @path is still the file open as @same_as. *fd_out holds it. */
int shmrpc__seg_lock_new(const char *path, int same_as, int *fd_out);
/* 1 if somebody holds the lock, 0 if nobody does, -errno. */
int shmrpc__seg_locked(int fd);

#endif /* SHMRPC_SEG_H */
