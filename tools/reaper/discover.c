// SPDX-License-Identifier: MIT
/*
 * Finding the registries to follow: /dev/shm/shmrpc.<domain>.reg.
 *
 * A scan of /dev/shm at start-up and at every reconcile (DISC_TURN entries
 * per loop turn, so a /dev/shm full of one user's files delays nobody's
 * cleanup by more than one turn), and an inotify watch in between, which
 * reports a registry as soon as its creator makes the file. The creator then
 * sizes it and publishes its magic within microseconds; until then the name
 * waits in a pending list, looked at again every PENDING_MS (never with the
 * library's waiting open, whose grace period would stall the loop). A name
 * that stays unpublished for ABANDON_S is left to the next joiner, whose
 * open repairs it.
 *
 * Everything here is planted by users: a registry name may be a FIFO (an
 * open without O_NONBLOCK waits for a writer for ever), a symlink (to
 * /etc/shadow), a directory, a hard link to another user's file. So: lstat
 * first (as root: no follow, no open), regular files with one link only,
 * then open as the file's owner (owner.c) with O_NOFOLLOW | O_NONBLOCK and
 * check that the descriptor is the file lstat saw. Whatever is refused is
 * logged once and its inode remembered (a hash set), so it costs an lstat
 * at the next scan and nothing more. Per owner: OWNER_PENDING unpublished
 * registries waited on, OWNER_DOMS domains followed (root's exempt).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reaper.h"

#define PENDING_MS 5	       /* look at an unpublished registry again */
#define ABANDON_S 5	       /* unpublished that long: its creator died */
#define DISC_TURN 256	       /* directory entries looked at per loop turn */
#define IGNORED_MAX (1u << 20) /* remembered refused inodes; then forget all */

/* "shmrpc.<domain>.reg" -> domain in @out; 0, or -EINVAL for other names. */
int dom_reg_name(const char *ent, char *out)
{
	size_t n = strlen(ent);

	if (n <= 11 || strncmp(ent, "shmrpc.", 7) || strcmp(ent + n - 4, ".reg") ||
	    n - 11 > SHMRPC_NAME_MAX)
		return -EINVAL;
	memcpy(out, ent + 7, n - 11);
	out[n - 11] = '\0';
	return shmrpc_insp_name_check(out) ? -EINVAL : 0;
}

bool dom_wanted(const struct reaper *r, const char *domain)
{
	int i;

	if (!r->o.domains)
		return true;
	for (i = 0; i < r->o.ndomains; i++)
		if (!strcmp(r->o.domains[i], domain))
			return true;
	return false;
}

/* ---------------------------------------------------- refused inodes */

static uint32_t ino_hash(ino_t ino, uint32_t cap)
{
	return (uint32_t)(((uint64_t)ino * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static bool ignored(const struct reaper *r, ino_t ino)
{
	uint32_t i;

	if (!r->cap_ignored)
		return false;
	for (i = ino_hash(ino, r->cap_ignored); r->ignored[i]; i = (i + 1) & (r->cap_ignored - 1))
		if (r->ignored[i] == ino)
			return true;
	return false;
}

static void ignore(struct reaper *r, ino_t ino)
{
	uint32_t i, cap;
	ino_t *old = r->ignored, *v;

	if (!ino || ignored(r, ino))
		return;
	if (2 * (r->nignored + 1) > r->cap_ignored) {
		cap = r->cap_ignored ? 2 * r->cap_ignored : 256;
		if (cap > IGNORED_MAX)
			cap = 256; /* forget them all: each costs one more look */
		v = calloc(cap, sizeof(*v));
		if (!v)
			return;
		r->ignored = v;
		r->nignored = 0;
		r->cap_ignored = cap;
		for (i = 0; old && cap > 256 && i < cap / 2; i++)
			if (old[i])
				ignore(r, old[i]);
		free(old);
	}
	for (i = ino_hash(ino, r->cap_ignored); r->ignored[i]; i = (i + 1) & (r->cap_ignored - 1))
		;
	r->ignored[i] = ino;
	r->nignored++;
}

/* ---------------------------------------------------- one registry */

void dom_reg_path(const struct reaper *r, char *buf, size_t len, const char *domain)
{
	snprintf(buf, len, "%s/shmrpc.%s.reg", r->o.shm_dir, domain);
}

static const char *kind_of(mode_t m)
{
	return S_ISFIFO(m) ? "fifo" :
	       S_ISDIR(m)  ? "directory" :
	       S_ISLNK(m)  ? "symlink" :
	       S_ISCHR(m)  ? "char-device" :
	       S_ISBLK(m)  ? "block-device" :
	       S_ISSOCK(m) ? "socket" :
	       S_ISREG(m)  ? "hard-linked-file" :
			     "unknown";
}

/* The registry name @path, without following it: a regular file with one
 * name (0), else -EPROTO (logged once: then its inode is ignored). */
int dom_look(struct reaper *r, const char *path, const char *domain, struct stat *st)
{
	if (lstat(path, st))
		return -errno;
	if (S_ISREG(st->st_mode) && st->st_nlink <= 1)
		return 0;
	if (!ignored(r, st->st_ino))
		rlogo(r, owner_get(r, st->st_uid), "ignore domain=%s: %s is a %s (uid %u): refused",
		      domain, path, kind_of(st->st_mode), (unsigned)st->st_uid);
	return -EPROTO;
}

/*
 * Published yet? 1 yes, 0 not yet, -errno. Never blocks, never follows a
 * link, opens as the file's owner, and only the file lstat saw (@st).
 */
int dom_ready(struct reaper *r, const char *path, const struct stat *st)
{
	uint64_t magic = 0;
	struct stat fst;
	int fd, err = 0;

	if (owner_enter(r, st->st_uid, st->st_gid, NULL))
		return -EPERM;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		err = -errno;
	else if (fstat(fd, &fst))
		err = -errno;
	else if (!S_ISREG(fst.st_mode) || fst.st_ino != st->st_ino || fst.st_dev != st->st_dev)
		err = -EAGAIN; /* replaced since lstat: look again */
	else if ((uint64_t)fst.st_size >= sizeof(struct shmrpc__reg_hdr) &&
		 pread(fd, &magic, sizeof(magic), 0) != sizeof(magic))
		err = -EIO;
	if (fd >= 0)
		close(fd);
	owner_leave(r);
	/* The creator sizes the file, fills it, and stores the magic last. */
	return err ? err : magic != 0;
}

static void pending_add(struct reaper *r, const char *domain, uid_t uid)
{
	struct rowner *o = owner_get(r, uid);
	void *v;

	for (uint32_t i = 0; i < r->npending; i++)
		if (!strcmp(r->pending[i].name, domain))
			return;
	if (!o || (uid && o->npending >= OWNER_PENDING)) {
		if (o)
			owner_cap(r, o, OWNER_CAP_PENDING, domain);
		return; /* the next reconcile or inotify event finds it */
	}
	v = realloc(r->pending, (r->npending + 1) * sizeof(*r->pending));
	if (!v)
		return;
	r->pending = v;
	snprintf(r->pending[r->npending].name, sizeof(r->pending->name), "%s", domain);
	r->pending[r->npending++].uid = uid;
	o->npending++;
	if (!r->pending_ns)
		r->pending_ns = rnow_ns() + PENDING_MS * 1000000ll;
}

/* Open registry @domain (seen as @st) as its owner into a new rdom. */
int dom_open(struct reaper *r, const char *domain, const struct stat *st, struct rowner *o,
	     struct rdom **out)
{
	struct rdom *d = calloc(1, sizeof(*d));
	struct stat fst;
	int err;

	if (!d)
		return -ENOMEM;
	d->uid = st->st_uid;
	d->gid = st->st_gid;
	d->owner = o;
	err = owner_enter(r, d->uid, d->gid, NULL);
	if (err) {
		free(d);
		return err;
	}
	/* 0660: also a group-mode domain's registry, whose group is the
	 * identity's (the library checks its mode bits). */
	err = shmrpc_insp_reg_open(&d->reg, domain, 0660, false);
	if (!err && fstat(d->reg.fd, &fst))
		err = -errno;
	else if (!err && (fst.st_ino != st->st_ino || fst.st_uid != d->uid || fst.st_gid != d->gid))
		err = -EAGAIN; /* replaced since lstat */
	owner_leave(r);
	if (!err)
		d->slots = calloc(d->reg.capacity, sizeof(*d->slots));
	if (!err && !d->slots)
		err = -ENOMEM;
	if (err) {
		if (d->reg.hdr)
			shmrpc_insp_reg_close(&d->reg);
		free(d);
		return err;
	}
	d->dev = st->st_dev;
	d->ino = st->st_ino;
	*out = d;
	return 0;
}

/* Start following registry @domain. 0, or -EAGAIN: not published yet (or
 * its owner's budget is spent for this turn). */
static int dom_add(struct reaper *r, const char *domain)
{
	char path[PATH_MAX];
	struct stat st;
	struct rowner *o;
	struct rdom *d;
	int err;

	dom_reg_path(r, path, sizeof(path), domain);
	err = dom_look(r, path, domain, &st);
	if (err == -EPROTO)
		ignore(r, st.st_ino);
	if (err || dom_by_ino(r, st.st_dev, st.st_ino) || ignored(r, st.st_ino))
		return 0; /* gone again, refused, or known */
	o = owner_get(r, st.st_uid);
	if (!o)
		return 0;
	if (st.st_uid != 0 && o->ndoms >= OWNER_DOMS) {
		owner_cap(r, o, OWNER_CAP_DOMS, domain); /* looked at again at the next scan */
		return 0;
	}
	if (!owner_spend(r, o, 4 * UNITS_CHECK))
		return -EAGAIN;
	err = dom_ready(r, path, &st);
	if (err < 0) {
		rlogov(r, o, "skip domain=%s: %s", domain, strerror(-err));
		return err == -EAGAIN ? -EAGAIN : 0;
	}
	if (!err) {
		rlogov(r, o, "pending domain=%s", domain);
		if (st.st_ctime + ABANDON_S > time(NULL))
			return -EAGAIN;
		rlogov(r, o,
		       "ignore domain=%s: never published (its creator died); the next joiner "
		       "repairs it",
		       domain);
		ignore(r, st.st_ino);
		return 0;
	}
	err = dom_open(r, domain, &st, o, &d);
	if (err) {
		/* Not a registry we can use: say so once. Anything else may
		 * pass: look again later. */
		rlogo(r, o, "%s domain=%s: %s",
		      err == -EACCES || err == -EPERM || err == -EPROTO ? "ignore" : "error",
		      domain, err == -EPROTO ? shmrpc_last_error() : strerror(-err));
		if (err == -EACCES || err == -EPERM || err == -EPROTO)
			ignore(r, st.st_ino);
		return err == -EAGAIN ? -EAGAIN : 0;
	}
	if (dom_by_ino(r, d->dev, d->ino)) {
		shmrpc_insp_reg_close(&d->reg);
		free(d->slots);
		free(d);
		return 0;
	}
	dom_follow(r, d);
	return 0;
}

static void dom_try(struct reaper *r, const char *ent, uid_t *pending_uid)
{
	char domain[SHMRPC_NAME_MAX + 1], path[PATH_MAX];
	struct stat st;

	if (dom_reg_name(ent, domain) || !dom_wanted(r, domain))
		return;
	if (dom_add(r, domain) != -EAGAIN)
		return;
	dom_reg_path(r, path, sizeof(path), domain);
	if (pending_uid)
		st.st_uid = *pending_uid;
	else if (lstat(path, &st))
		return;
	pending_add(r, domain, st.st_uid);
}

/* ---------------------------------------------------- scans */

void dom_discover(struct reaper *r)
{
	if (r->disc)
		return; /* one under way: it will see what is there */
	r->disc = opendir(r->o.shm_dir);
	if (!r->disc)
		rlog("error: %s: %s", r->o.shm_dir, strerror(errno));
}

bool dom_discover_step(struct reaper *r)
{
	struct dirent *e;
	int n;

	if (!r->disc)
		return false;
	for (n = 0; n < DISC_TURN; n++) {
		e = readdir(r->disc);
		if (!e) {
			closedir(r->disc);
			r->disc = NULL;
			return false;
		}
		dom_try(r, e->d_name, NULL);
	}
	return true;
}

void dom_pending(struct reaper *r)
{
	struct rpending *v;
	uint32_t i, n;

	if (!r->npending || rnow_ns() < r->pending_ns)
		return;
	v = r->pending;
	n = r->npending;
	r->pending = NULL;
	r->npending = 0;
	r->pending_ns = 0;
	for (i = 0; i < n; i++) {
		struct rowner *o = owner_get(r, v[i].uid);

		if (o && o->npending)
			o->npending--;
	}
	for (i = 0; i < n; i++) {
		char ent[SHMRPC_NAME_MAX + 16];

		snprintf(ent, sizeof(ent), "shmrpc.%s.reg", v[i].name);
		dom_try(r, ent, &v[i].uid);
	}
	free(v);
}

/* A registry name was unlinked or renamed: which followed ones are gone? */
static void dom_check_unlinked(struct reaper *r, const char *domain)
{
	char path[PATH_MAX];
	struct stat st;
	struct rdom *d;

	dom_reg_path(r, path, sizeof(path), domain);
	for (d = r->doms; d; d = d->next) {
		if (strcmp(d->reg.domain, domain))
			continue;
		if (lstat(path, &st) || st.st_dev != d->dev || st.st_ino != d->ino)
			d->gone = true;
	}
}

void dom_inotify(struct reaper *r)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	char domain[SHMRPC_NAME_MAX + 1];
	const struct inotify_event *ev;
	ssize_t n;

	while ((n = read(r->infd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				r->reconcile_now = true;
				continue;
			}
			if (!ev->len || dom_reg_name(ev->name, domain))
				continue; /* rings and node segments: not ours to follow */
			if (ev->mask & (IN_CREATE | IN_MOVED_TO))
				dom_try(r, ev->name, NULL);
			if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
				dom_check_unlinked(r, domain);
		}
	}
}

void dom_discover_fini(struct reaper *r)
{
	if (r->disc)
		closedir(r->disc);
	r->disc = NULL;
	free(r->ignored);
	free(r->pending);
}
