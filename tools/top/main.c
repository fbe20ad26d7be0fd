// SPDX-License-Identifier: MIT
/*
 * shmrpc-top: what top is for processes, for libshmrpc nodes and rings.
 * This file is the refresh loop of the batch modes and the entry point;
 * top.h lists what every other file does.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "top.h"

/* Sleep until CLOCK_MONOTONIC reaches @t seconds. */
static void sleep_until(double t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - floor(t)) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int emit(const struct top_snap *s, const struct top_opts *o, FILE *f)
{
	switch (o->mode) {
	case TOP_MODE_JSON:
		return top_out_json(f, s, o);
	case TOP_MODE_PROM:
		return top_out_prom(f, s, o);
	default:
		return top_out_text(f, s, o);
	}
}

/*
 * -o FILE: a reader (a textfile collector) sees the old file or the new
 * one, never half of one: write a temporary next to it, then rename. The
 * temporary is made by mkstemp (O_CREAT | O_EXCL, a random name): in a
 * directory others can write to, a planted symlink at a predictable
 * FILE.tmp.<pid> made root overwrite whatever it pointed to. It gets the
 * mode fopen would have given (0666 less the umask); rename replaces FILE
 * itself, never what a symlink at FILE points to.
 */
static int emit_file(const struct top_snap *s, const struct top_opts *o)
{
	char tmp[4096];
	mode_t mask;
	FILE *f;
	int fd, err;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", o->out) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) || !(f = fdopen(fd, "w"))) {
		err = -errno;
		close(fd);
		unlink(tmp);
		return err;
	}
	err = emit(s, o, f);
	if (fclose(f) || err) {
		unlink(tmp);
		return -EIO;
	}
	if (rename(tmp, o->out)) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	return 0;
}

static int scan(struct top_snap *s, const struct top_opts *o)
{
	int err = top_scan(s, o->domain);

	if (err)
		fprintf(stderr, "shmrpc-top: cannot scan %s: %s\n", TOP_SHM_DIR, strerror(-err));
	return err;
}

/*
 * Text and JSON show rates, which need two snapshots: the first output comes
 * one delay after a first, silent snapshot, so even -n 1 has them (like
 * `vmstat 1 2` without its since-boot line). --prom has no rates (Prometheus
 * derives them from the counters): it prints at once, as a cron job wants.
 */
static int batch(struct top_opts *o)
{
	struct top_snap cur = { 0 }, prev = { 0 };
	bool have_prev = false;
	double next = 0;
	long i;
	int err = 0;

	if (o->mode != TOP_MODE_PROM) {
		err = scan(&prev, o);
		top_rates(&prev, NULL);
		next = prev.mono + o->delay;
		have_prev = !err;
	}
	for (i = 0; !err && (!o->iterations || i < o->iterations); i++) {
		if (have_prev)
			sleep_until(next);
		err = scan(&cur, o);
		if (err)
			break;
		next = cur.mono + o->delay;
		top_rates(&cur, have_prev ? &prev : NULL);
		o->view.show_domain = !o->view.domain && cur.ndoms > 1;
		err = o->out ? emit_file(&cur, o) : emit(&cur, o, stdout);
		if (err) {
			fprintf(stderr, "shmrpc-top: cannot write %s: %s\n",
				o->out ? o->out : "the output", strerror(err < -1 ? -err : EIO));
			break;
		}
		top_snap_swap(&cur, &prev);
		have_prev = true;
	}
	top_snap_free(&cur);
	top_snap_free(&prev);
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct top_opts o;
	int rc = top_opts_parse(argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : 2;
	rc = top_guard_install();
	if (rc) {
		fprintf(stderr, "shmrpc-top: sigaction: %s\n", strerror(-rc));
		return 1;
	}
	if (o.mode != TOP_MODE_UI)
		return batch(&o);
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "shmrpc-top: not a terminal; use -b, --json or --prom\n");
		return 2;
	}
	return top_ui(&o) ? 1 : 0;
}
