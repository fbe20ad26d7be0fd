/* SPDX-License-Identifier: MIT */
/*
 * The user-space half of the eBPF exit probe (bpf/shmrpc_exit.bpf.c): load or
 * find the probe, attach it, fill its `watched` map and consume its `events`
 * ring buffer. Linked into shmrpc-reaper, the probe's only consumer: a BPF
 * ring buffer has one consumer position, so two consumers split (and may
 * duplicate) the events between them.
 *
 * Functions returning int return >= 0 on success or a negative errno value;
 * they do not set errno on purpose (libbpf calls may still clobber it).
 * A handle is used by one thread at a time.
 */
#ifndef SHMRPC_PROBE_H
#define SHMRPC_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../bpf/shmrpc_exit.h"

#ifdef __cplusplus
extern "C" {
#endif

struct shmrpc_probe;

/* How the probe gets into the kernel; shmrpc_probe_mode() names the one used. */
enum shmrpc_probe_route {
	/* pin_dir holds a probe: use it; else tp_btf, else tracepoint. */
	SHMRPC_PROBE_AUTO = 0,
	/* Load the embedded tp_btf object ("tp_btf"). */
	SHMRPC_PROBE_TP_BTF,
	/* Load the embedded tracepoint object ("tracepoint"). */
	SHMRPC_PROBE_TRACEPOINT,
	/* Use what is pinned in pin_dir, e.g. by bpftool ("pinned"). */
	SHMRPC_PROBE_PINNED,
};

/*
 * Options of shmrpc_probe_open. Zero-initialise, set sz = sizeof(struct
 * shmrpc_probe_opts), then the fields you need. NULL opts means all defaults.
 */
struct shmrpc_probe_opts {
	size_t sz;
	/* enum shmrpc_probe_route; 0 = SHMRPC_PROBE_AUTO. */
	int route;
	/*
	 * A bpffs directory, e.g. /sys/fs/bpf/shmrpc. For PINNED (and AUTO when
	 * it holds a probe): the maps `watched`, `events`, `stats` and either a
	 * link `link` or the program `shmrpc_exit`, which is then attached and
	 * the link pinned as `link`. For a probe this call loads itself: if set,
	 * its maps and link are pinned there, so the probe (and events that
	 * happen while no one reads) survive the caller's restart. NULL: pin
	 * nothing; closing the handle detaches the probe.
	 */
	const char *pin_dir;
	/*
	 * BTF of the running kernel for a kernel built without
	 * /sys/kernel/btf/vmlinux (e.g. made by `bpftool gen min_core_btf`).
	 * Only the tracepoint object can use it: tp_btf needs the kernel's own.
	 */
	const char *btf_path;
};

/*
 * Called once per event by shmrpc_probe_poll. ev is valid during the call
 * only. Return 0 to go on, a negative errno value to stop: poll returns it.
 */
typedef int (*shmrpc_probe_fn)(void *ctx, const struct shmrpc_exit_event *ev);

/*
 * shmrpc_probe_open - load (or find) the exit probe and attach it.
 * @out:  receives the handle on success.
 * @opts: see struct shmrpc_probe_opts; NULL for the defaults.
 *
 * Needs CAP_BPF + CAP_PERFMON (or root). AUTO tries, in order: the probe
 * pinned in pin_dir, the tp_btf object, the tracepoint object; and reports
 * the error of the last one tried.
 *
 * Return: 0; -EINVAL (bad opts); -EPERM (not privileged); -ENOENT (PINNED and
 * nothing pinned); -EPROTO (pinned objects are not the probe's); other
 * -errno from libbpf or the kernel.
 */
int shmrpc_probe_open(struct shmrpc_probe **out, const struct shmrpc_probe_opts *opts);

/*
 * shmrpc_probe_watch - report the exit of process tgid with this cookie.
 *
 * Replaces the cookie of a tgid already watched. After inserting it checks the
 * process still runs, since a process that died before the insert produces
 * no event. A process that dies during the call (between its last thread's
 * exit and its becoming a zombie, microseconds) can still be missed: the
 * reaper's reconcile pass covers that window.
 *
 * Return: 0 (an event will come, or is already queued); -ESRCH (the process
 * is gone and will produce no event; nothing stays in the map); -E2BIG (the
 * map is full); -EINVAL (tgid <= 0); other -errno.
 */
int shmrpc_probe_watch(struct shmrpc_probe *p, pid_t tgid, uint64_t cookie);

/*
 * shmrpc_probe_unwatch - stop watching tgid.
 * Return: 0; -ENOENT (not watched, or its event has already been queued).
 */
int shmrpc_probe_unwatch(struct shmrpc_probe *p, pid_t tgid);

/*
 * shmrpc_probe_watched_next - walk the `watched` map: the tgid after @prev
 * (0: the first) in *next and its cookie in *cookie (may be NULL). A pinned
 * map outlives its consumer, so a restarted consumer walks it to drop the
 * tgids it no longer wants. Collect first, delete after: for a hash map, a
 * @prev that was deleted meanwhile restarts the walk from the beginning. The
 * probe deletes entries concurrently, so a walk may miss or repeat a key.
 * Return: 0; -ENOENT after the last; other -errno.
 */
int shmrpc_probe_watched_next(const struct shmrpc_probe *p, pid_t prev, pid_t *next,
			      uint64_t *cookie);

/*
 * shmrpc_probe_fd - an epoll fd that is readable when events may be waiting;
 * then call shmrpc_probe_poll(p, 0, ...). Owned by the handle.
 */
int shmrpc_probe_fd(const struct shmrpc_probe *p);

/*
 * shmrpc_probe_poll - wait up to timeout_ms (-1: forever, 0: never) for
 * events and call fn for each one queued.
 * Return: the number of events handled (0 on timeout); -EINTR; fn's negative
 * value; other -errno.
 */
int shmrpc_probe_poll(struct shmrpc_probe *p, int timeout_ms, shmrpc_probe_fn fn, void *ctx);

/*
 * shmrpc_probe_stats - read the probe's counters. A growing drops means events
 * were lost to a full ring buffer: reconcile the watched set.
 * Return: 0 or -errno.
 */
int shmrpc_probe_stats(const struct shmrpc_probe *p, struct shmrpc_exit_stats *out);

/*
 * shmrpc_probe_mode - the route that was taken: "tp_btf", "tracepoint" or
 * "pinned". A static string.
 */
const char *shmrpc_probe_mode(const struct shmrpc_probe *p);

/*
 * shmrpc_probe_pin_error - why the pin directory was refused, when
 * shmrpc_probe_open failed with -EACCES because of it (a symlink, not a
 * directory, not owned by root, writable by others); "" otherwise.
 */
const char *shmrpc_probe_pin_error(void);

/*
 * shmrpc_probe_close - release the handle; NULL is accepted. An unpinned
 * probe is detached and its maps freed; a pinned one stays attached and keeps
 * queueing events for the next open.
 */
void shmrpc_probe_close(struct shmrpc_probe *p);

/*
 * shmrpc_probe_unpin - detach a pinned probe: remove `link`, `shmrpc_exit`,
 * the maps and then pin_dir itself. Missing files are not an error.
 * Return: 0 or the first -errno met.
 */
int shmrpc_probe_unpin(const char *pin_dir);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_PROBE_H */
