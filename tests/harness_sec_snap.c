// SPDX-License-Identifier: MIT
/*
 * What "untouched" and "bounded" mean in the security suite (harness_sec.h):
 * snapshots of /dev/shm compared file by file (name, inode, owner, mode,
 * content), the tmpfs allocated to a user's files, and a process's
 * descriptors and memory from /proc.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "harness_sec.h"
#include "layout.h"

/* ------------------------------------------------------------ snapshots */

struct sec_file {
	char name[256];
	ino_t ino;
	uid_t uid;
	mode_t mode;
	off_t size;
	uint64_t hash; /* 0 for non-regular files */
};

struct sec_snap {
	int n;
	struct sec_file f[];
};

/* FNV-1a of the file; a registry's reaper status line counts as zeros. */
static uint64_t file_hash(const char *path, bool reg)
{
	static uint8_t buf[65536];
	const size_t skip_a = offsetof(struct shmrpc__reg_hdr, reaper_pid),
		     skip_b = sizeof(struct shmrpc__reg_hdr);
	uint64_t h = 0xcbf29ce484222325ull;
	size_t off = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return 1;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++, off++) {
			uint8_t c = reg && off >= skip_a && off < skip_b ? 0 : buf[i];

			h = (h ^ c) * 0x100000001b3ull;
		}
	}
	close(fd);
	return h;
}

struct sec_snap *sec_snap_take(uid_t except)
{
	char path[PATH_MAX];
	struct sec_snap *s = calloc(1, sizeof(*s) + 4096 * sizeof(struct sec_file));
	struct dirent *e;
	struct stat st;
	DIR *d = opendir("/dev/shm");

	while (s && d && (e = readdir(d)) && s->n < 4096) {
		struct sec_file *f = &s->f[s->n];
		size_t len = strlen(e->d_name);

		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (e->d_name[0] == '.' || lstat(path, &st) || st.st_uid == except)
			continue;
		snprintf(f->name, sizeof(f->name), "%s", e->d_name);
		f->ino = st.st_ino;
		f->uid = st.st_uid;
		f->mode = st.st_mode;
		f->size = st.st_size;
		f->hash = S_ISREG(st.st_mode) ?
				  file_hash(path, len > 4 && !strcmp(e->d_name + len - 4, ".reg")) :
				  0;
		s->n++;
	}
	if (d)
		closedir(d);
	return s;
}

static const struct sec_file *snap_find(const struct sec_snap *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->f[i].name, name))
			return &s->f[i];
	return NULL;
}

int sec_snap_diff(const struct sec_snap *a, const struct sec_snap *b, bool reg_content)
{
	const struct sec_file *x, *y;
	int diffs = 0, i;
	size_t len;

	for (i = 0; i < a->n; i++) {
		x = &a->f[i];
		len = strlen(x->name);
		y = snap_find(b, x->name);
		if (!y) {
			print_message("  touched: %s (uid %d) is gone\n", x->name, (int)x->uid);
		} else if (y->ino != x->ino || y->uid != x->uid || y->mode != x->mode) {
			print_message(
				"  touched: %s replaced or changed (inode %lu -> %lu, uid %d -> "
				"%d, mode 0%o -> 0%o)\n",
				x->name, (unsigned long)x->ino, (unsigned long)y->ino, (int)x->uid,
				(int)y->uid, (unsigned)x->mode, (unsigned)y->mode);
		} else if ((y->size != x->size || y->hash != x->hash) &&
			   (reg_content || len < 4 || strcmp(x->name + len - 4, ".reg"))) {
			print_message("  touched: %s content changed (size %lld -> %lld)\n",
				      x->name, (long long)x->size, (long long)y->size);
		} else {
			continue;
		}
		diffs++;
	}
	for (i = 0; i < b->n; i++)
		if (!snap_find(a, b->f[i].name)) {
			print_message("  touched: %s (uid %d) appeared\n", b->f[i].name,
				      (int)b->f[i].uid);
			diffs++;
		}
	return diffs;
}

void sec_snap_free(struct sec_snap *s)
{
	free(s);
}

int sec_shm_names(uid_t uid, const char *prefix, char *buf, size_t len)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat st;
	size_t off = 0;
	int n = 0;
	DIR *d = opendir("/dev/shm");

	if (len)
		buf[0] = '\0';
	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (strncmp(e->d_name, prefix, strlen(prefix)) || lstat(path, &st) ||
		    st.st_uid != uid)
			continue;
		if (off + strlen(e->d_name) + 2 < len)
			off += (size_t)snprintf(buf + off, len - off, "%s\n", e->d_name);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

long sec_shm_kb(uid_t uid, const char *prefix)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat st;
	long kb = 0;
	DIR *d = opendir("/dev/shm");

	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (!strncmp(e->d_name, prefix, strlen(prefix)) && !lstat(path, &st) &&
		    st.st_uid == uid)
			kb += (long)st.st_blocks / 2;
	}
	if (d)
		closedir(d);
	return kb;
}

/* ------------------------------------------------------------ /proc */

int sec_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

long sec_proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

long sec_shm_used_kb(void)
{
	struct statvfs s;

	if (statvfs("/dev/shm", &s))
		return -1;
	return (long)((s.f_blocks - s.f_bfree) * s.f_frsize / 1024);
}
