// SPDX-License-Identifier: MIT
/*
 * shmrpc-reaper --once: the clean-up command for a machine that runs no
 * reaper. One sweep of every registry in /dev/shm (or of the --domain
 * ones), with the daemon's own pieces and rules: registries found and
 * opened as a discovery does (planted files refused, each opened as its
 * owner), every slot but FREE checked by its node's liveness lock and
 * reclaimed only if that lock is free (reclaim.c), a registry retired once
 * no slot is in use and no node file of its domain is locked. Nothing is
 * watched (no probe, no pidfd), nothing is written to the registries'
 * reaper status fields, and nothing live is touched.
 *
 * It ends with one summary line,
 *
 *	once domains=3 reclaimed=2 retired=1 skipped=1 refused=0 unpublished=0
 *	     not-ours=0 lock-held=1 capped=0 errors=0
 *
 * (one line in the log) and an exit status that says whether anything was
 * left that a sweep should have done: 1 if a registry's lock stayed held
 * (its dead nodes are still there), a per-owner cap cut a sweep short, or
 * an error stopped one; else 0. Refused names (FIFOs, symlinks, hard links
 * at a registry name), registries not published yet and, run by a user,
 * other users' registries are reported in the line but are not failures:
 * they are nobody's leftovers we may clean.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reaper.h"

#define ONCE_LOCK_TRIES 4 /* a held registry lock: tries after the first */

enum skip {
	SKIP_REFUSED,
	SKIP_UNPUBLISHED,
	SKIP_NOT_OURS,
	SKIP_LOCK_HELD,
	SKIP_CAPPED,
	SKIP_ERROR,
	SKIP_KINDS
};

static const char *const skip_names[SKIP_KINDS] = {
	"refused", "unpublished", "not-ours", "lock-held", "capped", "error",
};

struct tally {
	uint32_t domains, retired, skipped[SKIP_KINDS];
};

static void skip(struct tally *t, const char *domain, enum skip why, const char *detail)
{
	t->skipped[why]++;
	rlog("skip domain=%s reason=%s%s%s", domain, skip_names[why], detail ? ": " : "",
	     detail ? detail : "");
}

static void nap_until(int64_t ns)
{
	int64_t left = ns - rnow_ns();
	struct timespec ts;

	if (left <= 0)
		return;
	ts.tv_sec = (time_t)(left / 1000000000);
	ts.tv_nsec = (long)(left % 1000000000);
	nanosleep(&ts, NULL);
}

static void dom_close(struct rdom *d)
{
	struct rretry *t;

	while ((t = d->retry)) {
		d->retry = t->next;
		free(t);
	}
	shmrpc_insp_reg_close(&d->reg);
	free(d->slots);
	free(d);
}

/* Sweep @d to the end, one owner's turn after another; reclaims that met
 * a held lock are tried again a few times (the owner's backoff: 10 ms,
 * doubling). */
static void sweep(struct reaper *r, struct rdom *d, struct tally *t)
{
	uint64_t retired = r->retired;

	d->sweeping = true;
	while (d->sweeping) {
		owner_turn(r);
		dom_sweep(r, d);
	}
	for (int i = 0; d->retry && i < ONCE_LOCK_TRIES; i++) {
		nap_until(d->owner->lock_retry_ns);
		owner_turn(r);
		dom_retries(r, d);
	}
	if (d->retry)
		skip(t, d->reg.domain, SKIP_LOCK_HELD, "its dead nodes are left");
	else if (d->owner->sweep_checks >= OWNER_SWEEP)
		skip(t, d->reg.domain, SKIP_CAPPED, "liveness checks per sweep");
	if (!d->gone && !d->retry) {
		d->empty_passes = 1; /* this sweep is the only pass: retire it now */
		owner_turn(r);
		dom_retire_empty(r, d);
	}
	t->retired += (uint32_t)(r->retired - retired);
}

/* Open registry @domain as a discovery does: 0 and *out, or why not
 * (*detail: what to add to the line). */
static int open_one(struct reaper *r, const char *domain, struct rdom **out, const char **detail)
{
	char path[PATH_MAX];
	struct rowner *o;
	struct stat st;
	int err;

	*detail = NULL;
	dom_reg_path(r, path, sizeof(path), domain);
	err = dom_look(r, path, domain, &st);
	if (err == -ENOENT || err == -EPROTO)
		return err; /* gone since the directory was read; refused (logged) */
	o = err ? NULL : owner_get(r, st.st_uid);
	if (!err && !o)
		err = -ENOMEM;
	if (!err)
		err = dom_ready(r, path, &st);
	if (err == 0) {
		*detail = "its creator is making it, or died";
		return -EINPROGRESS;
	}
	if (err > 0)
		err = dom_open(r, domain, &st, o, out);
	if (err == -EPROTO)
		*detail = shmrpc_last_error();
	else if (err == -EAGAIN)
		*detail = "replaced while looked at";
	else if (err)
		*detail = strerror(-err);
	return err;
}

static enum skip skip_kind(const struct reaper *r, int err)
{
	switch (err) {
	case -EPROTO:
		return SKIP_REFUSED;
	case -EINPROGRESS:
	case -EAGAIN:
		return SKIP_UNPUBLISHED;
	case -EACCES:
	case -EPERM:
		/* A user's reaper cannot open other users' registries; root
		 * acting as the owner always should. */
		return r->privileged ? SKIP_ERROR : SKIP_NOT_OURS;
	default:
		return SKIP_ERROR;
	}
}

static void once_domain(struct reaper *r, const char *domain, struct tally *t)
{
	const char *detail;
	struct rdom *d;
	int err = open_one(r, domain, &d, &detail);

	if (err == -ENOENT)
		return;
	t->domains++;
	if (err) {
		skip(t, domain, skip_kind(r, err), detail);
		return;
	}
	sweep(r, d, t);
	dom_close(d);
}

int reaper_once(struct reaper *r)
{
	char domain[SHMRPC_NAME_MAX + 1];
	uint32_t skipped = 0, bad;
	struct tally t = { 0 };
	struct dirent *e;
	DIR *dir = opendir(r->o.shm_dir);

	if (!dir) {
		rlog("error: %s: %s", r->o.shm_dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(dir)))
		if (!dom_reg_name(e->d_name, domain) && dom_wanted(r, domain))
			once_domain(r, domain, &t);
	closedir(dir);
	for (int i = 0; i < SKIP_KINDS; i++)
		skipped += t.skipped[i];
	bad = t.skipped[SKIP_LOCK_HELD] + t.skipped[SKIP_CAPPED] + t.skipped[SKIP_ERROR];
	rlog("once domains=%u reclaimed=%llu retired=%u skipped=%u refused=%u unpublished=%u "
	     "not-ours=%u lock-held=%u capped=%u errors=%u",
	     t.domains, (unsigned long long)r->reaped, t.retired, skipped, t.skipped[SKIP_REFUSED],
	     t.skipped[SKIP_UNPUBLISHED], t.skipped[SKIP_NOT_OURS], t.skipped[SKIP_LOCK_HELD],
	     t.skipped[SKIP_CAPPED], t.skipped[SKIP_ERROR]);
	return bad ? 1 : 0;
}
