// SPDX-License-Identifier: MIT
/*
 * Loading, attaching and reading the eBPF exit probe; see tools/probe.h and
 * docs/bpf-probe.md. Three routes into the kernel:
 *
 *   tp_btf      the embedded skeleton of shmrpc_exit.bpf.o;
 *   tracepoint  the embedded skeleton of shmrpc_exit_tp.bpf.o, when tp_btf is
 *               refused (no kernel BTF, old kernel, policy);
 *   pinned      what bpftool (or an earlier open with pin_dir) left in bpffs.
 *               bpftool 7.1 pins programs and maps but cannot attach, so we
 *               attach the pinned program ourselves and pin the link, which
 *               keeps it attached across our restarts.
 *
 * Whatever the route, the handle ends up with three map fds (watched, events,
 * stats) and a libbpf ring_buffer on events.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "probe.h"
#include "shmrpc_exit.skel.h"
#include "shmrpc_exit_tp.skel.h"

#define PROG_PIN "shmrpc_exit"
#define LINK_PIN "link"

struct shmrpc_probe {
	struct shmrpc_exit_bpf *skel_btf;    /* tp_btf route */
	struct shmrpc_exit_tp_bpf *skel_tp;  /* tracepoint route */
	struct bpf_link *link;		     /* borrowed from the skeleton */
	int watched_fd, events_fd, stats_fd; /* owned only when `owned` */
	int link_fd;			     /* pinned route, or -1 */
	int owned;
	struct ring_buffer *rb;
	const char *mode;
	shmrpc_probe_fn fn; /* set for the length of a poll */
	void *fn_ctx;
};

static int pin_path(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);

	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* bpf_obj_get of dir/name: an fd or -errno. */
static int pin_get(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd, err = pin_path(path, dir, name);

	if (err)
		return err;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Why the last pin directory was refused, for the caller's log. */
static char pin_why[PATH_MAX + 128];

const char *shmrpc_probe_pin_error(void)
{
	return pin_why;
}

/*
 * Open pin directory @dir as itself: never through a symlink (bpffs may be
 * mounted 1777, where anyone can plant one), and only if root owns it and
 * nobody else may write to it (a directory a user made would receive root's
 * pins, or feed us that user's maps). The checks are on the descriptor,
 * not the name: nothing can be swapped between check and use. An fd, or
 * -EACCES (refused: pin_why says why), -errno.
 */
static int pin_dir_open(const char *dir)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		/* O_DIRECTORY | O_NOFOLLOW on a symlink: ELOOP or ENOTDIR */
		if (errno != ELOOP && errno != ENOTDIR)
			return -errno;
		snprintf(pin_why, sizeof(pin_why), "pin directory %s is %s: refused", dir,
			 !lstat(dir, &st) && S_ISLNK(st.st_mode) ? "a symbolic link" :
								   "not a directory");
		return -EACCES;
	}
	if (fstat(fd, &st)) {
		close(fd);
		return -errno;
	}
	if (st.st_uid != 0 || (st.st_mode & 0022)) {
		snprintf(pin_why, sizeof(pin_why),
			 "pin directory %s is owned by uid %u, mode 0%o: not root's own: refused",
			 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EACCES;
	}
	return fd;
}

/* Create pin_dir 0700 if needed; refuse one that is not root's alone;
 * close it to everyone else (fchmod on the checked descriptor). */
static int pin_dir_prepare(const char *dir)
{
	int fd, err = 0;
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	fd = pin_dir_open(dir);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) || ((st.st_mode & 077) && fchmod(fd, 0700)))
		err = -errno;
	close(fd);
	return err;
}

/* ---- map and link checks for the pinned route ---- */

/* Check fd is a map of this type and sizes (0: any); return its id or -errno. */
static int map_check(int fd, __u32 type, __u32 key_size, __u32 value_size)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != type || (key_size && info.key_size != key_size) ||
	    (value_size && info.value_size != value_size))
		return -EPROTO;
	return (int)info.id;
}

/* Does program prog_fd use the map with this id? 1, 0 or -errno. */
static int prog_uses_map(int prog_fd, __u32 map_id, __u32 *prog_type)
{
	__u32 ids[16], len, i;
	struct bpf_prog_info info;

	memset(&info, 0, sizeof(info));
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -errno;
	if (prog_type)
		*prog_type = info.type;
	for (i = 0; i < info.nr_map_ids && i < sizeof(ids) / sizeof(ids[0]); i++)
		if (ids[i] == map_id)
			return 1;
	return 0;
}

/* Is link_fd a link whose program feeds the map watched_id? 0 or -EPROTO. */
static int link_check(int link_fd, __u32 watched_id)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	int prog_fd, ret;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len))
		return -errno;
	prog_fd = bpf_prog_get_fd_by_id(info.prog_id);
	if (prog_fd < 0)
		return -errno;
	ret = prog_uses_map(prog_fd, watched_id, NULL);
	close(prog_fd);
	if (ret < 0)
		return ret;
	return ret ? 0 : -EPROTO;
}

/* ---- attaching a pinned program ---- */

/* The id of tracepoint sched/sched_process_exit, from tracefs. */
static int tracepoint_id(void)
{
	static const char *const paths[] = {
		"/sys/kernel/tracing/events/sched/sched_process_exit/id",
		"/sys/kernel/debug/tracing/events/sched/sched_process_exit/id",
	};
	char buf[32];
	ssize_t n;
	int fd;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			return atoi(buf);
		}
	}
	return -ENOENT;
}

/*
 * A BPF_PROG_TYPE_TRACEPOINT program: perf event + BPF_PERF_EVENT link (5.15+;
 * the older PERF_EVENT_IOC_SET_BPF attachment cannot be pinned).
 */
static int attach_tracepoint(int prog_fd)
{
	struct perf_event_attr attr;
	int id = tracepoint_id(), pfd, link_fd;

	if (id < 0)
		return id;
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.size = sizeof(attr);
	attr.config = (__u64)id;
	attr.sample_period = 1;
	attr.wakeup_events = 1;
	pfd = (int)syscall(SYS_perf_event_open, &attr, -1 /* any pid */, 0 /* cpu */, -1,
			   PERF_FLAG_FD_CLOEXEC);
	if (pfd < 0)
		return -errno;
	/* The link holds the perf event; our fd to it is not needed. */
	link_fd = bpf_link_create(prog_fd, pfd, BPF_PERF_EVENT, NULL);
	link_fd = link_fd < 0 ? -errno : link_fd;
	close(pfd);
	return link_fd;
}

/*
 * Attach a pinned program; return a link fd or -errno. A tp_btf program
 * (BPF_PROG_TYPE_TRACING, expected attach type BPF_TRACE_RAW_TP) is attached
 * by BPF_LINK_CREATE with that attach type; kernels older than 5.x's
 * link_create support for it take BPF_RAW_TRACEPOINT_OPEN with a NULL name
 * (the program already names its tracepoint through attach_btf_id).
 */
static int attach_pinned_prog(int prog_fd, __u32 prog_type)
{
	int fd;

	switch (prog_type) {
	case BPF_PROG_TYPE_TRACING:
		fd = bpf_link_create(prog_fd, 0, BPF_TRACE_RAW_TP, NULL);
		if (fd >= 0)
			return fd;
		fd = bpf_raw_tracepoint_open(NULL, prog_fd);
		return fd < 0 ? -errno : fd;
	case BPF_PROG_TYPE_TRACEPOINT:
		return attach_tracepoint(prog_fd);
	default:
		return -EPROTO;
	}
}

/*
 * The pinned link of dir if there is one; else attach dir's pinned program and
 * pin the link. Two processes racing here: the loser's pin fails with EEXIST,
 * it drops its own link and takes the winner's.
 */
static int pinned_link(const char *dir, __u32 watched_id)
{
	char path[PATH_MAX];
	__u32 type = 0;
	int fd, prog_fd, err;

	fd = pin_get(dir, LINK_PIN);
	if (fd != -ENOENT)
		return fd;
	prog_fd = pin_get(dir, PROG_PIN);
	if (prog_fd < 0)
		return prog_fd;
	err = prog_uses_map(prog_fd, watched_id, &type);
	fd = err < 0 ? err : err == 0 ? -EPROTO : attach_pinned_prog(prog_fd, type);
	close(prog_fd);
	if (fd < 0)
		return fd;
	err = pin_path(path, dir, LINK_PIN);
	if (!err && bpf_obj_pin(fd, path))
		err = -errno;
	if (err) {
		close(fd);
		return err == -EEXIST ? pin_get(dir, LINK_PIN) : err;
	}
	return fd;
}

/* The pinned route: maps from dir, then its link (attaching if needed). */
static int open_pinned(struct shmrpc_probe *p, const char *dir)
{
	int watched_id, err;

	if (!dir)
		return -EINVAL;
	err = pin_dir_open(dir);
	if (err < 0)
		return err;
	close(err);
	p->owned = 1;
	p->watched_fd = pin_get(dir, "watched");
	p->events_fd = pin_get(dir, "events");
	p->stats_fd = pin_get(dir, "stats");
	if (p->watched_fd < 0)
		return p->watched_fd;
	if (p->events_fd < 0)
		return p->events_fd;
	if (p->stats_fd < 0)
		return p->stats_fd;
	watched_id = map_check(p->watched_fd, BPF_MAP_TYPE_HASH, 4, 8);
	err = map_check(p->events_fd, BPF_MAP_TYPE_RINGBUF, 0, 0);
	if (err >= 0)
		err = map_check(p->stats_fd, BPF_MAP_TYPE_ARRAY, 4,
				sizeof(struct shmrpc_exit_stats));
	if (watched_id < 0 || err < 0)
		return watched_id < 0 ? watched_id : err;
	p->link_fd = pinned_link(dir, (__u32)watched_id);
	if (p->link_fd < 0)
		return p->link_fd;
	err = link_check(p->link_fd, (__u32)watched_id);
	if (err)
		return err;
	p->mode = "pinned";
	return 0;
}

/* ---- loading the embedded objects ---- */

/* Pin a self-loaded probe's maps and link into dir, for open_pinned later. */
static int pin_loaded(struct bpf_map *const maps[3], struct bpf_link *link, const char *dir)
{
	static const char *const names[3] = { "watched", "events", "stats" };
	char path[PATH_MAX];
	int i, err = pin_dir_prepare(dir);

	for (i = 0; !err && i < 3; i++) {
		err = pin_path(path, dir, names[i]);
		if (!err)
			err = bpf_map__pin(maps[i], path);
	}
	if (!err)
		err = pin_path(path, dir, LINK_PIN);
	if (!err)
		err = bpf_link__pin(link, path);
	if (err) {
		while (--i >= 0)
			bpf_map__unpin(maps[i], NULL);
	}
	return err;
}

static int open_tp_btf(struct shmrpc_probe *p, const struct bpf_object_open_opts *oo)
{
	struct shmrpc_exit_bpf *s;
	int err;

	s = shmrpc_exit_bpf__open_opts(oo);
	if (!s)
		return -errno;
	p->skel_btf = s;
	err = shmrpc_exit_bpf__load(s);
	if (!err)
		err = shmrpc_exit_bpf__attach(s);
	if (err)
		return err;
	p->link = s->links.shmrpc_exit;
	p->watched_fd = bpf_map__fd(s->maps.watched);
	p->events_fd = bpf_map__fd(s->maps.events);
	p->stats_fd = bpf_map__fd(s->maps.stats);
	p->mode = "tp_btf";
	return 0;
}

static int open_tracepoint(struct shmrpc_probe *p, const struct bpf_object_open_opts *oo)
{
	struct shmrpc_exit_tp_bpf *s;
	int err;

	s = shmrpc_exit_tp_bpf__open_opts(oo);
	if (!s)
		return -errno;
	p->skel_tp = s;
	err = shmrpc_exit_tp_bpf__load(s);
	if (!err)
		err = shmrpc_exit_tp_bpf__attach(s);
	if (err)
		return err;
	p->link = s->links.shmrpc_exit;
	p->watched_fd = bpf_map__fd(s->maps.watched);
	p->events_fd = bpf_map__fd(s->maps.events);
	p->stats_fd = bpf_map__fd(s->maps.stats);
	p->mode = "tracepoint";
	return 0;
}

/* Drop whatever a failed route left behind, so the next route starts clean. */
static void release_route(struct shmrpc_probe *p)
{
	shmrpc_exit_bpf__destroy(p->skel_btf);
	shmrpc_exit_tp_bpf__destroy(p->skel_tp);
	p->skel_btf = NULL;
	p->skel_tp = NULL;
	p->link = NULL;
	if (p->owned) {
		close_fd(&p->watched_fd);
		close_fd(&p->events_fd);
		close_fd(&p->stats_fd);
	}
	close_fd(&p->link_fd);
	p->watched_fd = p->events_fd = p->stats_fd = -1;
	p->owned = 0;
	p->mode = NULL;
}

/* Load one of the embedded objects; pin it when asked. */
static int open_embedded(struct shmrpc_probe *p, int route, const struct shmrpc_probe_opts *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .btf_custom_path = o->btf_path);
	struct bpf_map *maps[3];
	int err;

	if (route == SHMRPC_PROBE_TP_BTF) {
		err = open_tp_btf(p, &oo);
		if (!err) {
			maps[0] = p->skel_btf->maps.watched;
			maps[1] = p->skel_btf->maps.events;
			maps[2] = p->skel_btf->maps.stats;
		}
	} else {
		err = open_tracepoint(p, &oo);
		if (!err) {
			maps[0] = p->skel_tp->maps.watched;
			maps[1] = p->skel_tp->maps.events;
			maps[2] = p->skel_tp->maps.stats;
		}
	}
	if (!err && o->pin_dir)
		err = pin_loaded(maps, p->link, o->pin_dir);
	return err;
}

/* Does dir hold a probe (at least its `watched` map)? */
static int pin_dir_has_probe(const char *dir)
{
	char path[PATH_MAX];

	return dir && !pin_path(path, dir, "watched") && access(path, F_OK) == 0;
}

static int open_route(struct shmrpc_probe *p, const struct shmrpc_probe_opts *o)
{
	int err;

	switch (o->route) {
	case SHMRPC_PROBE_PINNED:
		return open_pinned(p, o->pin_dir);
	case SHMRPC_PROBE_TP_BTF:
	case SHMRPC_PROBE_TRACEPOINT:
		return open_embedded(p, o->route, o);
	case SHMRPC_PROBE_AUTO:
		if (pin_dir_has_probe(o->pin_dir))
			return open_pinned(p, o->pin_dir);
		err = open_embedded(p, SHMRPC_PROBE_TP_BTF, o);
		if (!err || err == -EPERM)
			return err;
		release_route(p);
		return open_embedded(p, SHMRPC_PROBE_TRACEPOINT, o);
	default:
		return -EINVAL;
	}
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct shmrpc_probe *p = ctx;
	struct shmrpc_exit_event ev;

	/* The record comes from our own program, but check before copying. */
	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	return p->fn ? p->fn(p->fn_ctx, &ev) : 0;
}

int shmrpc_probe_open(struct shmrpc_probe **out, const struct shmrpc_probe_opts *opts)
{
	struct shmrpc_probe_opts o;
	struct shmrpc_probe *p;
	int err;

	if (!out || (opts && opts->sz < offsetof(struct shmrpc_probe_opts, pin_dir)))
		return -EINVAL;
	memset(&o, 0, sizeof(o));
	if (opts)
		memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->watched_fd = p->events_fd = p->stats_fd = p->link_fd = -1;
	err = open_route(p, &o);
	if (err)
		goto out_free;
	p->rb = ring_buffer__new(p->events_fd, on_record, p, NULL);
	if (!p->rb) {
		err = -errno;
		goto out_free;
	}
	*out = p;
	return 0;

out_free:
	shmrpc_probe_close(p);
	return err < 0 ? err : -EINVAL;
}

/* Has process tgid already exited (or is it not a process)? 1, 0. */
static int process_gone(pid_t tgid)
{
	struct pollfd pfd;
	int fd = (int)syscall(SYS_pidfd_open, tgid, 0);

	if (fd < 0) {
		if (errno == ENOSYS)
			return kill(tgid, 0) && errno == ESRCH;
		return 1; /* ESRCH, or EINVAL: tgid names a thread, not a process */
	}
	/* Readable once the whole group has exited (zombie or reaped). */
	pfd.fd = fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	fd = poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP));
	close(pfd.fd);
	return fd;
}

int shmrpc_probe_watch(struct shmrpc_probe *p, pid_t tgid, uint64_t cookie)
{
	__u32 key = (__u32)tgid;
	__u64 val = cookie;
	int err;

	if (!p || tgid <= 0)
		return -EINVAL;
	if (bpf_map_update_elem(p->watched_fd, &key, &val, BPF_ANY))
		return -errno;
	if (!process_gone(tgid))
		return 0;
	/*
	 * Gone. If our delete finds the entry, the probe never saw the exit
	 * (it ran before our insert): no event will come. If the probe deleted
	 * it first, its event is queued.
	 */
	err = bpf_map_delete_elem(p->watched_fd, &key);
	return err == 0 ? -ESRCH : 0;
}

int shmrpc_probe_unwatch(struct shmrpc_probe *p, pid_t tgid)
{
	__u32 key = (__u32)tgid;

	if (!p || tgid <= 0)
		return -EINVAL;
	return bpf_map_delete_elem(p->watched_fd, &key) ? -errno : 0;
}

int shmrpc_probe_watched_next(const struct shmrpc_probe *p, pid_t prev, pid_t *next,
			      uint64_t *cookie)
{
	__u32 key = (__u32)prev, nk;
	__u64 val;

	if (!p || !next || prev < 0)
		return -EINVAL;
	if (bpf_map_get_next_key(p->watched_fd, prev ? &key : NULL, &nk))
		return -errno;
	/* Deleted by the probe between the two calls: report no cookie. */
	if (cookie)
		*cookie = bpf_map_lookup_elem(p->watched_fd, &nk, &val) ? 0 : val;
	*next = (pid_t)nk;
	return 0;
}

int shmrpc_probe_fd(const struct shmrpc_probe *p)
{
	return p ? ring_buffer__epoll_fd(p->rb) : -EINVAL;
}

int shmrpc_probe_poll(struct shmrpc_probe *p, int timeout_ms, shmrpc_probe_fn fn, void *ctx)
{
	int n;

	if (!p)
		return -EINVAL;
	p->fn = fn;
	p->fn_ctx = ctx;
	n = ring_buffer__poll(p->rb, timeout_ms);
	p->fn = NULL;
	p->fn_ctx = NULL;
	return n;
}

int shmrpc_probe_stats(const struct shmrpc_probe *p, struct shmrpc_exit_stats *out)
{
	__u32 zero = 0;

	if (!p || !out)
		return -EINVAL;
	return bpf_map_lookup_elem(p->stats_fd, &zero, out) ? -errno : 0;
}

const char *shmrpc_probe_mode(const struct shmrpc_probe *p)
{
	return p && p->mode ? p->mode : "none";
}

void shmrpc_probe_close(struct shmrpc_probe *p)
{
	if (!p)
		return;
	ring_buffer__free(p->rb);
	/* A pinned link outlives our fd: the probe stays attached. */
	release_route(p);
	free(p);
}

int shmrpc_probe_unpin(const char *dir)
{
	static const char *const names[] = { LINK_PIN, PROG_PIN, "watched", "events", "stats" };
	char path[PATH_MAX];
	int err = 0, e;

	if (!dir)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		e = pin_path(path, dir, names[i]);
		if (!e && unlink(path) && errno != ENOENT)
			e = -errno;
		err = err ? err : e;
	}
	if (rmdir(dir) && errno != ENOENT)
		err = err ? err : -errno;
	return err;
}
