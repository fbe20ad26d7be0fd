// SPDX-License-Identifier: MIT
/*
 * The reaper acts as the owner of each domain, and one owner's files can
 * only slow that owner's cleanup.
 *
 * Identity. Root follows every user's domains in a world-writable, sticky
 * /dev/shm. Every file operation on a domain (open, map, unlink of its
 * registry, node and ring files) runs with the registry owner's filesystem
 * identity: fsuid = the registry's owner, fsgid = the registry's group (the
 * group a group-mode domain shares its files through), no supplementary
 * groups (dropped once at start-up: root needs none). With a non-zero fsuid
 * the kernel clears CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER
 * from the thread's effective set, so it can open only what that user could
 * and, in the sticky /dev/shm, unlink only that user's files: exactly what
 * the domain's own members can do. lib/seg.c's actor makes the library's
 * owner checks agree (accept the owner's files and the registry group's,
 * unlink only the owner's after an lstat). Back to fsuid 0 only for what
 * needs root: the BPF maps, /proc, pidfds.
 *
 * setfsuid and setfsgid act on the calling thread only (Linux keeps
 * credentials per thread; glibc does not broadcast these two). The reaper
 * is single-threaded (reaper.h): libbpf's ring buffer and liburing start no
 * threads. So a per-owner worker process would only add IPC to every
 * reclaim; switching the thread's fsuid costs two system calls.
 *
 * Other members' files. In a group-mode domain, nodes of other users (in
 * the registry's group) own their segments and the rings they send on. The
 * reaper opens and marks them with the group's permission, as any member
 * can; unlinking one needs its owner's identity (the sticky bit), so
 * unlink_member() unlinks such a file as its owner, and only if the user
 * database says that owner is a member of the registry's group (its primary
 * group or a supplementary one) and the file carries that group. A file of
 * anyone else is left where it is, logged.
 *
 * Bounds. Per owner: at most OWNER_DOMS domains followed (root's exempt:
 * root is trusted), OWNER_PENDING registries waiting to be published,
 * OWNER_PROCS processes watched (the BPF map is shared by everyone), and a
 * budget of work units per loop turn (a slot read 1, a liveness check 16)
 * for syncs, sweeps and lock polls; what does not fit waits for a later
 * turn (reaper.h: owner_spend). Once started, also OWNER_SEC_UNITS per
 * second: a turn's budget alone bounds a turn, not how many turns one
 * owner's epoch bumps make; what does not fit waits for the next second,
 * and the loop sleeps until then (owner_defer). Deaths are handled before
 * any of it, every turn; work done outside a budget (a retire check) is
 * charged after the fact (owner_charge). One line is logged when a cap is
 * first hit (again after 10 s). Log lines about an owner's files are
 * bounded too: OWNER_LOG_LINES a second, then one line saying how many were
 * left out. The reaper's own uid (root's domains) has no per-second bounds.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reaper.h"

#define CAP_LOG_NS (10 * 1000000000ll) /* a cap's log line, at most this often */
#define MEMBER_TTL_NS (60 * 1000000000ll)
#define MEMBER_CACHE 64

#define SEC_NS 1000000000ll

static const char *const cap_names[OWNER_CAP_KINDS] = {
	"domains",	"pending registries", "watched processes",	   "work per turn",
	"polled nodes", "registry lock held", "liveness checks per sweep", "work per second",
};

struct rowner *owner_get(struct reaper *r, uid_t uid)
{
	struct rowner *o;

	for (o = r->owners; o; o = o->next)
		if (o->uid == uid)
			return o;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->uid = uid;
	o->units = OWNER_TURN_UNITS;
	o->metered = uid != geteuid();
	o->sec_ns = o->log_ns = rnow_ns();
	o->sec_units = OWNER_SEC_UNITS;
	o->next = r->owners;
	r->owners = o;
	return o;
}

void owner_cap(struct reaper *r, struct rowner *o, enum owner_cap kind, const char *what)
{
	int64_t now = rnow_ns();

	(void)r;
	if (o->cap_ns[kind] && now - o->cap_ns[kind] < CAP_LOG_NS)
		return;
	o->cap_ns[kind] = now;
	rlog("cap uid=%u limit=\"%s\" %s: only this user's cleanup waits", (unsigned)o->uid,
	     cap_names[kind], what);
}

/* Is @o's work of this second spent? (Only once started: the start-up
 * reconcile, and --once, do every owner's work in full, a turn each.) */
static bool sec_spent(const struct reaper *r, const struct rowner *o, int units)
{
	return r->metered && o->metered && o->sec_units < units;
}

int64_t owner_ready_ns(const struct reaper *r, const struct rowner *o)
{
	return o && sec_spent(r, o, 1) ? o->sec_ns + SEC_NS : 0;
}

void owner_defer(struct reaper *r, struct rowner *o)
{
	int64_t when = owner_ready_ns(r, o);

	if (!when)
		r->deferred = true;
	else if (!r->wake_ns || when < r->wake_ns)
		r->wake_ns = when;
}

bool owner_spend(struct reaper *r, struct rowner *o, int units)
{
	if (!o)
		return true;
	if (sec_spent(r, o, units)) {
		if (!o->starved)
			owner_cap(r, o, OWNER_CAP_SECOND, "rest waits for the next second");
		o->starved = true;
		owner_defer(r, o);
		return false;
	}
	if (o->units < units) {
		if (!o->starved)
			owner_cap(r, o, OWNER_CAP_WORK, "rest deferred to a later turn");
		o->starved = true;
		r->deferred = true;
		return false;
	}
	owner_charge(r, o, units);
	return true;
}

void owner_charge(struct reaper *r, struct rowner *o, int units)
{
	if (!o)
		return;
	o->units -= units;
	if (r->metered && o->metered)
		o->sec_units -= units;
}

void owner_turn(struct reaper *r)
{
	int64_t now = r->metered ? rnow_ns() : 0;

	for (struct rowner *o = r->owners; o; o = o->next) {
		o->units = OWNER_TURN_UNITS;
		o->starved = false;
		if (now - o->sec_ns >= SEC_NS) {
			/* Refilled, less what was overdrawn (deaths, retire
			 * checks, charged after the fact). */
			o->sec_units = o->sec_units < 0 ? OWNER_SEC_UNITS + o->sec_units :
							  OWNER_SEC_UNITS;
			o->sec_ns = now;
		}
	}
	r->deferred = false;
	r->wake_ns = 0;
}

/* ---------------------------------------------------- log budget */

/* The lines @o's budget left out in the second that ended, in one line. */
static void log_flush(struct rowner *o, int64_t now)
{
	if (o->log_dropped)
		rlog("log-limit uid=%u suppressed=%u: more than %d lines a second about this "
		     "user's files",
		     (unsigned)o->uid, o->log_dropped, OWNER_LOG_LINES);
	o->log_dropped = 0;
	o->log_lines = 0;
	o->log_ns = now;
}

bool owner_log_ok(struct reaper *r, struct rowner *o)
{
	int64_t now;

	(void)r;
	if (!o->metered)
		return true;
	now = rnow_ns();
	if (now - o->log_ns >= SEC_NS)
		log_flush(o, now);
	if (o->log_lines >= OWNER_LOG_LINES) {
		o->log_dropped++;
		return false;
	}
	o->log_lines++;
	return true;
}

void owner_beat(struct reaper *r)
{
	int64_t now = rnow_ns();

	for (struct rowner *o = r->owners; o; o = o->next)
		if (o->log_dropped && now - o->log_ns >= SEC_NS)
			log_flush(o, now);
}

void owner_fini(struct reaper *r)
{
	struct rowner *o;

	while ((o = r->owners)) {
		r->owners = o->next;
		free(o);
	}
}

/* ---------------------------------------------------- identity */

/* Is @uid a member of group @gid per the user database? Cached: a look-up
 * may go to NSS (files, LDAP). */
static bool member_of(uid_t uid, gid_t gid)
{
	static struct {
		uid_t uid;
		gid_t gid;
		bool yes;
		int64_t t;
	} cache[MEMBER_CACHE];
	static unsigned next;
	struct passwd pw, *res = NULL;
	gid_t groups[256];
	int64_t now = rnow_ns();
	int n = 256, i;
	char buf[4096];
	bool yes = false;

	for (i = 0; i < MEMBER_CACHE; i++)
		if (cache[i].t && cache[i].uid == uid && cache[i].gid == gid &&
		    now - cache[i].t < MEMBER_TTL_NS)
			return cache[i].yes;
	if (!getpwuid_r(uid, &pw, buf, sizeof(buf), &res) && res) {
		yes = pw.pw_gid == gid;
		if (!yes && getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0)
			for (i = 0; i < n && !yes; i++)
				yes = groups[i] == gid;
	}
	i = (int)(next++ % MEMBER_CACHE);
	cache[i].uid = uid;
	cache[i].gid = gid;
	cache[i].yes = yes;
	cache[i].t = now;
	return yes;
}

static struct reaper *cur_r;	 /* for unlink_member */
static const struct rdom *cur_d; /* the domain we act for, or NULL */
static struct rowner *cur_o;	 /* the owner we act for, or NULL */

/* The thread's current fsuid and fsgid, as set here (root's at start). */
static uid_t cur_uid;
static gid_t cur_gid;

static int fs_ids(uid_t uid, gid_t gid)
{
	if (uid == cur_uid && gid == cur_gid)
		return 0; /* a root domain, or the same owner again: no system call */
	setfsgid(gid);
	setfsuid(uid);
	/* Both return the previous id whether or not they worked: ask with
	 * an invalid id, which changes nothing and returns the current one. */
	cur_uid = (uid_t)setfsuid((uid_t)-1);
	cur_gid = (gid_t)setfsgid((gid_t)-1);
	return cur_uid == uid && cur_gid == gid ? 0 : -EPERM;
}

static int unlink_member(const char *path, const struct stat *st)
{
	int err = -EPERM;

	if (cur_d && (cur_d->reg.mode & 0070) && st->st_gid == cur_d->gid &&
	    member_of(st->st_uid, cur_d->gid)) {
		if (!fs_ids(st->st_uid, cur_d->gid))
			err = shm_unlink(path) ? -errno : 0;
		if (fs_ids(cur_d->uid, cur_d->gid))
			rlog("error: cannot return to uid=%u's identity", (unsigned)cur_d->uid);
	}
	rlogov(cur_r, cur_o, "%s domain=%s file=%s%s uid=%u: %s",
	       err ? "left" : "unlinked-as-member", cur_d ? cur_d->reg.domain : "?",
	       SHMRPC__SHM_DIR, path, (unsigned)st->st_uid,
	       err ? "not the domain owner's, nor a member's of its group" : "a member's file");
	return err;
}

int owner_enter(struct reaper *r, uid_t uid, gid_t gid, const struct rdom *d)
{
	if (!r->privileged)
		return 0; /* an unprivileged reaper is its own user: the kernel decides */
	if (fs_ids(uid, gid)) {
		rlog("error: domain=%s: cannot act as uid=%u gid=%u: skipped",
		     d ? d->reg.domain : "?", (unsigned)uid, (unsigned)gid);
		owner_leave(r);
		return -EPERM;
	}
	cur_r = r;
	cur_d = d;
	cur_o = d ? d->owner : NULL;
	for (struct rowner *o = r->owners; !cur_o && o; o = o->next)
		if (o->uid == uid)
			cur_o = o;
	shmrpc_insp_act_as(uid, gid, unlink_member);
	return 0;
}

struct rowner *owner_current(struct reaper *r)
{
	(void)r;
	return cur_o;
}

void owner_leave(struct reaper *r)
{
	if (!r->privileged)
		return;
	shmrpc_insp_act_self();
	cur_d = NULL;
	cur_o = NULL;
	if (fs_ids(0, 0)) {
		/* Cannot happen for root; never go on as someone else. */
		rlog("error: cannot return to fsuid 0: exiting");
		exit(1);
	}
}

int owner_init(struct reaper *r)
{
	r->privileged = geteuid() == 0;
	if (!r->privileged)
		return 0;
	/* Root's supplementary groups would follow us into every owner's
	 * identity; root needs none of them. */
	if (setgroups(0, NULL))
		return -errno;
	/* Start from what the thread really has. */
	cur_uid = (uid_t)setfsuid((uid_t)-1);
	cur_gid = (gid_t)setfsgid((gid_t)-1);
	return fs_ids(0, 0);
}
