// SPDX-License-Identifier: MIT
/*
 * shmrpc-reaper: the first cleanup layer of libshmrpc (docs/reaper.md).
 *
 * A root daemon that watches the process of every node of every domain on
 * the host and, when one dies, frees its registry slot, unlinks its
 * segments, bumps the epoch and wakes every peer sleeping on a ring of it,
 * within a millisecond. Deaths come from the eBPF exit probe, or from pidfds
 * where BPF cannot be used.
 *
 * Start-up order matters: the watcher first (so nothing mirrored later goes
 * unwatched), then inotify on /dev/shm (so no registry created during the
 * scan is missed), then every registry: reconcile (reclaim the nodes that
 * died while no reaper ran), mirror, arm its epoch wait. Only then is
 * systemd told READY=1.
 *
 * The loop: one epoll_wait on the signalfd, inotify, the io_uring of epoch
 * waits, and the probe's ring buffer or the pidfds; its timeout is the
 * nearest of the heartbeat, the reconcile, a due liveness check, a pending
 * registry and the end of an owner's spent second or lock backoff. Every
 * turn then syncs dirty domains and drops gone ones.
 *
 * The options are checked before any of it (opts.c); --once (once.c) needs
 * none of it: no watcher, no inotify, no loop.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "probe.h"
#include "reaper.h"

#define EXIT_USAGE 2
#define EXIT_NOBPF 3 /* the probe cannot be used as asked (opts.c: asked) */

/* systemd's Type=notify, without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void sd_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof(a.sun_path))
		return;
	memcpy(a.sun_path, path, n);
	if (a.sun_path[0] == '@')
		a.sun_path[0] = '\0'; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		rlog("warning: sd_notify: %s", strerror(errno));
	close(fd);
}

/*
 * The probe, else pidfds. The fallback to pidfds is only for the default
 * choice (--mode auto, no probe option given): what the user asked for
 * (r->o.asked) works or the reaper stops with the reason.
 */
static int watcher_open(struct reaper *r)
{
	char why[256] = "", bwhy[PATH_MAX + 256] = "";
	int err = -EOPNOTSUPP;

	if (strcmp(r->o.mode, "pidfd")) {
		err = reaper_bpf_open(r, bwhy, sizeof(bwhy));
		if (!err) {
			rlog("watching with bpf: %s", bwhy);
			return 0;
		}
		if (err == -EBUSY) {
			rlog("error: %s", bwhy);
			return 1;
		}
		if (r->o.asked[0]) {
			rlog("error: the exit probe cannot be used as asked (%s): %s", r->o.asked,
			     bwhy);
			return EXIT_NOBPF;
		}
		rlog("fallback mode=pidfd reason=\"%s\"", bwhy);
	}
	err = reaper_pidfd_open(r, why, sizeof(why));
	if (err) {
		rlog("error: %s", why);
		return 1;
	}
	rlog("watching with pidfd: %s", why);
	return 0;
}

/* The default pin directory where bpffs is not mounted: an automatic
 * choice, so the probe goes unpinned, and the log says why. 0, or
 * EXIT_NOBPF when the pinned route was asked for. */
static int pin_dir_default(struct reaper *r)
{
	char why[PATH_MAX + 128];

	if (!strcmp(r->o.mode, "pidfd") || !r->o.pin_dir || r->o.pin_given ||
	    !reaper_pin_dir_check(r->o.pin_dir, why, sizeof(why)))
		return 0;
	if (r->o.route == SHMRPC_PROBE_PINNED) {
		rlog("error: the exit probe cannot be used as asked (%s): pin directory %s: %s",
		     r->o.asked, r->o.pin_dir, why);
		return EXIT_NOBPF;
	}
	rlog("warning: pin directory %s: %s: the probe is loaded unpinned", r->o.pin_dir, why);
	r->o.pin_dir = NULL;
	return 0;
}

/* Enough descriptors for one pidfd per watched process. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int signals_init(struct reaper *r)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(EV_SIGNAL, 0) };
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	r->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (r->sigfd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->sigfd, &ev))
		return -errno;
	return 0;
}

static void on_signal(struct reaper *r)
{
	struct signalfd_siginfo si;

	while (read(r->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			rlog("reconcile reason=SIGHUP");
			r->reconcile_now = true;
		} else {
			rlog("stopping signal=SIG%s reaped=%llu", sigabbrev_np((int)si.ssi_signo),
			     (unsigned long long)r->reaped);
			r->stop = true;
		}
	}
}

/*
 * A mapped file that shrank (its owner, or a member, truncated a registry
 * or a segment we map): the page we touched is gone and the kernel sends
 * SIGBUS. Put a private zero page in its place and let the access go on:
 * it reads zeros (a FREE slot, a bad magic), which every check already
 * handles. Without this, one ftruncate by any user would kill the reaper of
 * every user. Only for a fault at an address (BUS_ADRERR); async-signal-
 * safe: one mmap and an atomic counter, logged by the loop.
 */
static long page_size;
static _Atomic uint64_t sigbus_pages;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t page = (uintptr_t)si->si_addr & ~((uintptr_t)page_size - 1);

	(void)uc;
	if (si->si_code != BUS_ADRERR || !page ||
	    mmap((void *)page, (size_t)page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	/* Relaxed: a count read by the loop; the mmap is the effect. */
	atomic_fetch_add_explicit(&sigbus_pages, 1, memory_order_relaxed);
}

static int sigbus_init(void)
{
	struct sigaction sa;

	page_size = sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) ? -errno : 0;
}

static void sigbus_report(struct reaper *r)
{
	uint64_t n = atomic_load_explicit(&sigbus_pages, memory_order_relaxed);

	if (n != r->sigbus) {
		rlog("warning: %llu mapped pages vanished (a file was truncated under us): read "
		     "as zeros",
		     (unsigned long long)(n - r->sigbus));
		r->sigbus = n;
	}
}

/* The library's own log lines (a refused file, a name left alone):
 * warnings always, the rest with -v. */
static void lib_log(int level, const char *msg, void *arg)
{
	struct reaper *r = arg;

	/* About the files of the owner we act for: within his budget. */
	if (level >= SHMRPC_LOG_WARN)
		rlogo(r, owner_current(r), "warning: %s", msg);
	else if (level == SHMRPC_LOG_INFO)
		rlogov(r, owner_current(r), "lib: %s", msg);
}

static bool is_death(uint64_t data)
{
	return EV_KIND(data) == EV_PROBE || EV_KIND(data) == EV_PIDFD;
}

static void dispatch(struct reaper *r, uint64_t data)
{
	switch (EV_KIND(data)) {
	case EV_SIGNAL:
		on_signal(r);
		break;
	case EV_INOTIFY:
		dom_inotify(r);
		break;
	case EV_URING:
		break; /* dom_epochs() reaps the ring every turn */
	case EV_PIDFD:
		procs_pidfd(r, (pid_t)EV_LOW(data));
		break;
	default:
		r->w->event(r, data);
		break;
	}
}

static int min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int run(struct reaper *r)
{
	int64_t now = rnow_ns(), beat = now, reconcile = now + r->o.reconcile_ms * 1000000ll;
	struct epoll_event ev[64];
	int n, i, timeout;

	r->metered = true; /* per-second budgets, from now on (owner.c) */
	while (!r->stop) {
		now = rnow_ns();
		if (now >= beat) {
			dom_beat(r, false);
			owner_beat(r);
			r->w->tick(r);
			beat = now + r->o.beat_ms * 1000000ll;
		}
		if (now >= reconcile || r->reconcile_now) {
			r->reconcile_now = false;
			dom_reconcile(r);
			reconcile = now + r->o.reconcile_ms * 1000000ll;
		}
		timeout = (int)((beat < reconcile ? beat : reconcile) - now) / 1000000 + 1;
		timeout = min_timeout(timeout, procs_checks(r));
		timeout = min_timeout(timeout, dom_timeout_ms(r));
		n = epoll_wait(r->epfd, ev, 64, timeout);
		/* EINTR: io_uring task work (an epoch wait completing) can
		 * interrupt the wait of the ring's owner: just go on. */
		if (n < 0 && errno != EINTR) {
			rlog("error: epoll_wait: %s", strerror(errno));
			return 1;
		}
		owner_turn(r);
		/* Deaths first: whatever else this turn holds (a burst of
		 * registries, a user's budget of syncs) comes after them. */
		for (i = 0; i < n; i++)
			if (is_death(ev[i].data.u64))
				dispatch(r, ev[i].data.u64);
		for (i = 0; i < n; i++)
			if (!is_death(ev[i].data.u64))
				dispatch(r, ev[i].data.u64);
		dom_epochs(r);
		dom_work(r);
		sigbus_report(r);
	}
	return 0;
}

/* Undo whatever main() set up (each part takes what was never made). */
static int finish(struct reaper *r, int rc)
{
	dom_fini(r);
	if (r->w)
		r->w->close(r);
	procs_fini(r);
	owner_fini(r);
	if (r->sigfd >= 0)
		close(r->sigfd);
	if (r->epfd >= 0)
		close(r->epfd);
	free(r->o.domains);
	return rc;
}

int main(int argc, char **argv)
{
	struct reaper r = { .epfd = -1, .sigfd = -1, .infd = -1 };
	uint32_t nodes = 0, ndoms = 0;
	int rc;

	rc = reaper_opts_parse(argc, argv, &r.o);
	if (rc) {
		free(r.o.domains);
		return rc > 0 ? 0 : EXIT_USAGE;
	}
	rlog_init("shmrpc-reaper");
	shmrpc_set_log(lib_log, &r);
	/* Root cleans up after every user, as each domain's owner (owner.c). */
	rc = owner_init(&r);
	if (rc) {
		rlog("error: dropping supplementary groups: %s", strerror(-rc));
		return finish(&r, 1);
	}
	if (sigbus_init()) {
		rlog("error: set-up: %s", strerror(errno));
		return finish(&r, 1);
	}
	if (r.o.once)
		return finish(&r, reaper_once(&r));
	rc = pin_dir_default(&r);
	if (rc)
		return finish(&r, rc);
	raise_nofile();
	r.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r.epfd < 0 || signals_init(&r) || procs_init(&r)) {
		rlog("error: set-up: %s", strerror(errno));
		return finish(&r, 1);
	}
	rc = watcher_open(&r);
	if (rc)
		return finish(&r, rc);
	rc = dom_init(&r);
	if (rc) {
		rlog("error: watching %s: %s", r.o.shm_dir, strerror(-rc));
		return finish(&r, 1);
	}
	dom_discover(&r);
	while (dom_busy(&r)) { /* everything, before READY: one owner's turn at a time */
		owner_turn(&r);
		dom_work(&r);
	}
	r.w->started(&r);
	for (struct rdom *d = r.doms; d; d = d->next, ndoms++)
		nodes += d->mirrored;
	rlog("started mode=%s domains=%u nodes=%u reaped=%llu epochs=%s", r.w->name, ndoms, nodes,
	     (unsigned long long)r.reaped, r.uring ? "io_uring" : "polled");
	sd_notify("READY=1");
	rc = run(&r);
	sd_notify("STOPPING=1");
	dom_beat(&r, true);
	return finish(&r, rc);
}
