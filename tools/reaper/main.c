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
 * nearest of the heartbeat, the reconcile, a due liveness check and a
 * pending registry. Every turn then syncs dirty domains and drops gone ones.
 */
#include <errno.h>
#include <getopt.h>
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
#define EXIT_NOBPF 3 /* --mode bpf, and the probe cannot be used */

static const char usage[] =
	"Usage: shmrpc-reaper [OPTION]...\n"
	"Free the slot and segments of every libshmrpc node whose process dies.\n"
	"\n"
	"  -m, --mode MODE       auto (default: bpf, else pidfd), bpf or pidfd\n"
	"  -p, --probe ROUTE     auto (default), tp_btf, tracepoint or pinned\n"
	"  -P, --pin-dir DIR     bpffs directory of the probe (default /sys/fs/bpf/shmrpc);\n"
	"                        a probe that bpftool loaded there is attached and used\n"
	"      --no-pin          load the probe without pinning it\n"
	"      --btf FILE        BTF of this kernel if it has no /sys/kernel/btf/vmlinux\n"
	"  -d, --domain NAME     follow only this domain (repeat for more; default: all)\n"
	"      --reconcile-ms N  sweep every registry every N ms (default 10000)\n"
	"      --poll-ms N       check nodes that cannot be watched every N ms (default 100)\n"
	"  -v, --verbose         also log every node watched and unwatched\n"
	"  -h, --help            this text\n"
	"\n"
	"Logs one line per event on stderr. Stops on SIGTERM or SIGINT; SIGHUP\n"
	"reconciles at once. Exit status: 0 stopped, 1 error, 2 usage,\n"
	"3 --mode bpf and the probe cannot be used.\n";

enum { OPT_NO_PIN = 256, OPT_BTF, OPT_RECONCILE, OPT_POLL };

static const struct option longopts[] = {
	{ "mode", required_argument, NULL, 'm' },
	{ "probe", required_argument, NULL, 'p' },
	{ "pin-dir", required_argument, NULL, 'P' },
	{ "no-pin", no_argument, NULL, OPT_NO_PIN },
	{ "btf", required_argument, NULL, OPT_BTF },
	{ "domain", required_argument, NULL, 'd' },
	{ "reconcile-ms", required_argument, NULL, OPT_RECONCILE },
	{ "poll-ms", required_argument, NULL, OPT_POLL },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int ms_arg(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || end == s || v < 1 || v > 3600 * 1000)
		return -1;
	*out = (int)v;
	return 0;
}

static int route_arg(const char *s, int *out)
{
	static const char *const names[] = { "auto", "tp_btf", "tracepoint", "pinned" };
	static const int routes[] = { SHMRPC_PROBE_AUTO, SHMRPC_PROBE_TP_BTF,
				      SHMRPC_PROBE_TRACEPOINT, SHMRPC_PROBE_PINNED };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*out = routes[i];
			return 0;
		}
	return -1;
}

static int parse(int argc, char **argv, struct reaper_opts *o)
{
	int c;

	*o = (struct reaper_opts){ .mode = "auto",
				   .route = SHMRPC_PROBE_AUTO,
				   .pin_dir = "/sys/fs/bpf/shmrpc",
				   .shm_dir = "/dev/shm",
				   .beat_ms = 1000,
				   .reconcile_ms = 10000,
				   .poll_ms = 100,
				   .recheck_ms = 50 };
	while ((c = getopt_long(argc, argv, "m:p:P:d:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "auto") && strcmp(optarg, "bpf") &&
			    strcmp(optarg, "pidfd"))
				goto bad;
			o->mode = optarg;
			break;
		case 'p':
			if (route_arg(optarg, &o->route))
				goto bad;
			break;
		case 'P':
			o->pin_dir = optarg;
			break;
		case OPT_NO_PIN:
			o->pin_dir = NULL;
			break;
		case OPT_BTF:
			o->btf_path = optarg;
			break;
		case 'd':
			if (shmrpc__name_check(optarg))
				goto bad;
			o->domains =
				realloc(o->domains, (size_t)(o->ndomains + 1) * sizeof(char *));
			if (!o->domains)
				return -1;
			o->domains[o->ndomains++] = optarg;
			break;
		case OPT_RECONCILE:
			if (ms_arg(optarg, &o->reconcile_ms))
				goto bad;
			break;
		case OPT_POLL:
			if (ms_arg(optarg, &o->poll_ms))
				goto bad;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind == argc && !(o->route == SHMRPC_PROBE_PINNED && !o->pin_dir))
		return 0;
bad:
	fputs(usage, stderr);
	return -1;
}

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

static int watcher_open(struct reaper *r)
{
	char why[256] = "", bwhy[256] = "";
	int err = -EOPNOTSUPP;

	if (strcmp(r->o.mode, "pidfd")) {
		err = reaper_bpf_open(r, bwhy, sizeof(bwhy));
		if (!err || err == -EBUSY || !strcmp(r->o.mode, "bpf")) {
			if (err)
				rlog("error: %s", bwhy);
			else
				rlog("watching with bpf: %s", bwhy);
			return err ? (err == -EBUSY ? 1 : EXIT_NOBPF) : 0;
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
	const struct reaper *r = arg;

	if (level >= SHMRPC_LOG_WARN)
		rlog("warning: %s", msg);
	else if (level == SHMRPC_LOG_INFO)
		rlogv(r, "lib: %s", msg);
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

	while (!r->stop) {
		now = rnow_ns();
		if (now >= beat) {
			dom_beat(r, false);
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

int main(int argc, char **argv)
{
	struct reaper r = { .epfd = -1, .sigfd = -1, .infd = -1 };
	uint32_t nodes = 0, ndoms = 0;
	int rc;

	if (parse(argc, argv, &r.o))
		return EXIT_USAGE;
	rlog_init("shmrpc-reaper");
	shmrpc_set_log(lib_log, &r);
	/* Root cleans up after every user, as each domain's owner (owner.c). */
	rc = owner_init(&r);
	if (rc) {
		rlog("error: dropping supplementary groups: %s", strerror(-rc));
		return 1;
	}
	raise_nofile();
	r.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r.epfd < 0 || sigbus_init() || signals_init(&r) || procs_init(&r)) {
		rlog("error: set-up: %s", strerror(errno));
		return 1;
	}
	rc = watcher_open(&r);
	if (rc)
		return rc;
	rc = dom_init(&r);
	if (rc) {
		rlog("error: watching %s: %s", r.o.shm_dir, strerror(-rc));
		r.w->close(&r);
		return 1;
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
	dom_fini(&r);
	r.w->close(&r);
	procs_fini(&r);
	owner_fini(&r);
	close(r.sigfd);
	close(r.epfd);
	free(r.o.domains);
	return rc;
}
