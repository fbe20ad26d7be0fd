// SPDX-License-Identifier: MIT
/*
 * Deaths from the eBPF exit probe (bpf/shmrpc_exit.bpf.c, tools/probe.h):
 * every watched process's tgid is in the probe's `watched` map with a cookie
 * naming one of its nodes, and the probe writes one event into its ring
 * buffer when the whole process has exited. The ring buffer's epoll fd sits
 * in the main epoll set. Cost per watched process: one hash map entry, no
 * file descriptor, no wake-up until it dies.
 *
 * The reaper is the probe's only consumer (a BPF ring buffer has one
 * consumer position: a second reader splits and duplicates the events). With
 * a pin directory it holds an flock on that directory for its whole life, so
 * a second reaper on the same pins refuses to start instead of stealing half
 * of the events.
 *
 * Pinned, the probe outlives the reaper: while it is down, deaths of watched
 * processes queue in the ring buffer and are handled at the next start (the
 * start-up reconcile finds them too). The map then still holds tgids of our
 * previous run: at start-up the ones that are no longer nodes are dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "probe.h"
#include "reaper.h"

struct bpfw {
	struct shmrpc_probe *p;
	int lock_fd;	  /* flock on the pin directory, or -1 */
	uint64_t drops;	  /* stats.drops last seen */
	long ns_per_tick; /* start_boottime_ns -> /proc/PID/stat ticks */
};

static struct bpfw *bw(struct reaper *r)
{
	return r->wpriv;
}

static int bw_add(struct reaper *r, struct rproc *p, uint64_t cookie)
{
	return shmrpc_probe_watch(bw(r)->p, p->gpid, cookie);
}

static void bw_del(struct reaper *r, struct rproc *p)
{
	/* -ENOENT: the probe deleted it when it reported the exit. */
	shmrpc_probe_unwatch(bw(r)->p, p->gpid);
}

static int on_event(void *ctx, const struct shmrpc_exit_event *ev)
{
	struct reaper *r = ctx;
	struct exit_info ei = {
		.via = "bpf",
		.status = ev->exit_code,
		.exit_ns = (int64_t)ev->ktime_ns,
		.seen_ns = rnow_ns(),
		.start_ticks = ev->start_boottime_ns / (uint64_t)bw(r)->ns_per_tick,
	};

	procs_exited(r, (pid_t)ev->tgid, ev->cookie, &ei);
	return 0;
}

static void bw_event(struct reaper *r, uint64_t data)
{
	int n;

	(void)data;
	n = shmrpc_probe_poll(bw(r)->p, 0, on_event, r);
	if (n < 0 && n != -EINTR)
		rlog("error: reading the probe's events: %s", strerror(-n));
}

/* Drop the tgids a previous run left in a pinned map that are no nodes now. */
static void bw_started(struct reaper *r)
{
	pid_t *v = NULL, key = 0;
	uint32_t n = 0, cap = 0, i, dropped = 0;
	void *t;

	while (n < 2 * SHMRPC_EXIT_MAX_WATCHED &&
	       shmrpc_probe_watched_next(bw(r)->p, key, &key, NULL) == 0) {
		if (procs_has(r, key))
			continue;
		if (n == cap) {
			t = realloc(v, (cap = cap ? 2 * cap : 256) * sizeof(*v));
			if (!t)
				break;
			v = t;
		}
		v[n++] = key;
	}
	for (i = 0; i < n; i++)
		dropped += shmrpc_probe_unwatch(bw(r)->p, v[i]) == 0;
	free(v);
	if (dropped)
		rlog("pruned %u stale entries from the probe's watched map", dropped);
}

static void bw_tick(struct reaper *r)
{
	struct shmrpc_exit_stats st;

	if (shmrpc_probe_stats(bw(r)->p, &st) || st.drops <= bw(r)->drops)
		return;
	/* The probe keeps a dropped tgid in `watched`; a sweep finds the node. */
	rlog("warning: the probe dropped %llu exit events (ring buffer full): reconciling",
	     (unsigned long long)(st.drops - bw(r)->drops));
	bw(r)->drops = st.drops;
	r->reconcile_now = true;
}

static void bw_close(struct reaper *r)
{
	struct bpfw *b = bw(r);

	if (!b)
		return;
	shmrpc_probe_close(b->p);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	free(b);
	r->wpriv = NULL;
}

const struct reaper_watcher reaper_watch_bpf = {
	.name = "bpf",
	.mode = REAPER_MODE_BPF,
	.add = bw_add,
	.del = bw_del,
	.event = bw_event,
	.started = bw_started,
	.tick = bw_tick,
	.close = bw_close,
};

static const struct reaper *log_r; /* for libbpf_log */

/* libbpf's messages as our log lines, one each, with -v only: the reaper's
 * own line (fallback, error) already says what happened. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	if (level == LIBBPF_DEBUG || !log_r || !log_r->o.verbose)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	for (n = strlen(buf); n && buf[n - 1] == '\n'; n--)
		buf[n - 1] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	rlogv(log_r, "%s", buf); /* libbpf starts its lines with "libbpf: " */
	return 0;
}

/* One consumer per pinned probe: hold an flock on its directory. */
static int pin_lock(const char *dir, int *fd_out)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

static const char *route_name(int route)
{
	switch (route) {
	case SHMRPC_PROBE_TP_BTF:
		return "tp_btf";
	case SHMRPC_PROBE_TRACEPOINT:
		return "tracepoint";
	case SHMRPC_PROBE_PINNED:
		return "pinned";
	default:
		return "auto";
	}
}

int reaper_bpf_open(struct reaper *r, char *why, size_t len)
{
	struct shmrpc_probe_opts o = { .sz = sizeof(o),
				       .route = r->o.route,
				       .pin_dir = r->o.pin_dir,
				       .btf_path = r->o.btf_path };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(EV_PROBE, 0) };
	struct shmrpc_exit_stats st;
	struct bpfw *b = calloc(1, sizeof(*b));
	int err;

	if (!b)
		return -ENOMEM;
	log_r = r;
	libbpf_set_print(libbpf_log);
	b->lock_fd = -1;
	b->ns_per_tick = 1000000000 / sysconf(_SC_CLK_TCK);
	err = shmrpc_probe_open(&b->p, &o);
	if (err == -EACCES && shmrpc_probe_pin_error()[0] && o.route != SHMRPC_PROBE_PINNED) {
		/* A pin directory that is not root's alone (a user's symlink or
		 * directory on a bpffs mounted 1777): loud, but no reason to
		 * stop, or any user could stop the reaper by planting one. */
		rlog("error: %s: loading the probe unpinned", shmrpc_probe_pin_error());
		o.pin_dir = NULL;
		err = shmrpc_probe_open(&b->p, &o);
	} else if (err == -EACCES && shmrpc_probe_pin_error()[0]) {
		snprintf(why, len, "%s", shmrpc_probe_pin_error());
		goto out_free;
	}
	/* The default pin directory only: one named with --pin-dir must work. */
	if (err && o.pin_dir && !r->o.pin_given && o.route != SHMRPC_PROBE_PINNED &&
	    err != -EPERM) {
		rlog("warning: probe in %s unusable (%s): loading one unpinned", o.pin_dir,
		     strerror(-err));
		o.pin_dir = NULL;
		err = shmrpc_probe_open(&b->p, &o);
	}
	if (err) {
		char text[128];

		/* libbpf's own codes (LIBBPF_ERRNO__*) too: "Unknown error 4001" says nothing */
		libbpf_strerror(err, text, sizeof(text));
		snprintf(why, len, "loading the exit probe (route %s, pin directory %s%s%s): %s",
			 route_name(o.route), o.pin_dir ? o.pin_dir : "none",
			 o.btf_path ? ", BTF " : "", o.btf_path ? o.btf_path : "", text);
		goto out_free;
	}
	if (o.pin_dir) {
		err = pin_lock(o.pin_dir, &b->lock_fd);
		if (err) {
			snprintf(why, len,
				 err == -EBUSY ?
					 "another shmrpc-reaper consumes the probe pinned in %s" :
					 "locking %s: %s",
				 o.pin_dir, strerror(-err));
			goto out_close;
		}
	}
	if (!shmrpc_probe_stats(b->p, &st))
		b->drops = st.drops;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, shmrpc_probe_fd(b->p), &ev)) {
		err = -errno;
		snprintf(why, len, "epoll: %s", strerror(-err));
		goto out_close;
	}
	r->w = &reaper_watch_bpf;
	r->wpriv = b;
	snprintf(why, len, "probe=%s pin=%s", shmrpc_probe_mode(b->p),
		 o.pin_dir ? o.pin_dir : "none");
	return 0;

out_close:
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	shmrpc_probe_close(b->p);
out_free:
	free(b);
	return err;
}
