// SPDX-License-Identifier: MIT
/*
 * The reaper's command line: parsing, and every check that can be made
 * before anything runs. A bad option is one line that names it and its
 * value, then a hint, and exit status 2, as shmrpc-top does; --help goes to
 * stdout with status 0. Options that contradict each other are refused
 * rather than one of them silently winning.
 *
 * What the user asked for is remembered (opts->asked): a probe route, a BTF
 * file or a pin directory named on the command line must then work, or the
 * reaper stops with the reason (main.c, watch_bpf.c); only the defaults may
 * fall back (to an unpinned probe, to pidfds), and they log why.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "probe.h"
#include "reaper.h"
#include "version.h"

static const char usage[] =
	"usage: shmrpc-reaper [OPTION]...\n"
	"Free the slot and segments of every libshmrpc node whose process dies.\n"
	"\n"
	"  -m, --mode MODE       auto (default: bpf, else pidfd), bpf or pidfd\n"
	"  -p, --probe ROUTE     auto (default), tp_btf, tracepoint or pinned\n"
	"  -P, --pin-dir DIR     directory on bpffs for the probe (default\n"
	"                        /sys/fs/bpf/shmrpc); a probe that bpftool pinned there\n"
	"                        is attached and used; one that is not root's own is\n"
	"                        refused (logged) and the probe goes unpinned\n"
	"      --no-pin          load the probe without pinning it\n"
	"      --btf FILE        BTF of this kernel if it has no /sys/kernel/btf/vmlinux\n"
	"  -d, --domain NAME     only this domain (repeat for more; default: all)\n"
	"      --reconcile-ms N  sweep every registry every N ms (default 10000)\n"
	"      --poll-ms N       check nodes that cannot be watched every N ms (default 100)\n"
	"      --once            sweep every domain (or the --domain ones) once, reclaim\n"
	"                        the dead nodes, retire the empty registries, then exit\n"
	"  -v, --verbose         also log every node watched and unwatched\n"
	"  -h, --help            this text\n"
	"  -V, --version         the version\n"
	"\n"
	"A probe route, BTF file or pin directory given here must work, or the reaper\n"
	"exits with the reason; only the defaults fall back (logged). Contradicting\n"
	"options are refused. Logs one line per event on stderr. Stops on SIGTERM or\n"
	"SIGINT; SIGHUP reconciles at once.\n"
	"Exit status: 0 stopped (--once: everything swept), 1 error (--once: something\n"
	"was left: a registry lock held, an error), 2 usage, 3 the probe cannot be used\n"
	"as asked (--mode bpf, --probe, --btf, --pin-dir).\n";

enum { OPT_NO_PIN = 256, OPT_BTF, OPT_RECONCILE, OPT_POLL, OPT_ONCE };

static const struct option longopts[] = {
	{ "mode", required_argument, NULL, 'm' },
	{ "probe", required_argument, NULL, 'p' },
	{ "pin-dir", required_argument, NULL, 'P' },
	{ "no-pin", no_argument, NULL, OPT_NO_PIN },
	{ "btf", required_argument, NULL, OPT_BTF },
	{ "domain", required_argument, NULL, 'd' },
	{ "reconcile-ms", required_argument, NULL, OPT_RECONCILE },
	{ "poll-ms", required_argument, NULL, OPT_POLL },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* The options given, as written, for the messages: "--probe tracepoint". */
struct given {
	char mode[48], probe[48], pin_dir[PATH_MAX + 16], no_pin[16], btf[PATH_MAX + 16];
	char reconcile[48], poll[48];
};

static int bad(const char *what, const char *arg)
{
	fprintf(stderr,
		"shmrpc-reaper: %s: %s\n"
		"Try 'shmrpc-reaper --help' for the options.\n",
		what, arg);
	return -1;
}

static int ms_arg(const char *opt, const char *s, int *out)
{
	char what[64];
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 3600 * 1000) {
		snprintf(what, sizeof(what), "bad %s (milliseconds, 1 to 3600000)", opt);
		return bad(what, s);
	}
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
	return bad("unknown probe route (auto, tp_btf, tracepoint, pinned)", s);
}

/* A BTF file must be there and be a file: checked now, not as a silent
 * failure of the probe later. */
static int btf_arg(const char *path)
{
	char what[PATH_MAX + 16];
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	snprintf(what, sizeof(what), "--btf %s", path);
	if (fd < 0)
		return bad(what, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return bad(what, "not a regular file");
	}
	close(fd);
	return 0;
}

int reaper_pin_dir_check(const char *dir, char *why, size_t len)
{
	char copy[PATH_MAX];
	const char *where = dir;
	struct statfs sf;
	struct stat st;

	/* The directory itself if it is one (not through a symlink: the
	 * probe refuses those anyway), else where mkdir would make it. */
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(copy, sizeof(copy), "%s", dir);
		where = dirname(copy);
	}
	if (statfs(where, &sf)) {
		snprintf(why, len, "%s: %s", where, strerror(errno));
		return -errno;
	}
	if ((unsigned long)sf.f_type != BPF_FS_MAGIC) {
		snprintf(
			why, len,
			"%s is not on a bpf filesystem (f_type 0x%lx; mount -t bpf bpf /sys/fs/bpf)",
			where, (unsigned long)sf.f_type);
		return -ENOTDIR;
	}
	return 0;
}

/* One option; 0, 1 (help or version printed), -1 (bad, printed). */
static int one(int c, struct reaper_opts *o, struct given *g)
{
	switch (c) {
	case 'm':
		snprintf(g->mode, sizeof(g->mode), "--mode %s", optarg);
		if (strcmp(optarg, "auto") && strcmp(optarg, "bpf") && strcmp(optarg, "pidfd"))
			return bad("unknown mode (auto, bpf, pidfd)", optarg);
		o->mode = optarg;
		return 0;
	case 'p':
		/* "auto" is the default: it asks for nothing */
		if (strcmp(optarg, "auto"))
			snprintf(g->probe, sizeof(g->probe), "--probe %s", optarg);
		return route_arg(optarg, &o->route);
	case 'P':
		snprintf(g->pin_dir, sizeof(g->pin_dir), "--pin-dir %s", optarg);
		o->pin_dir = optarg;
		return 0;
	case OPT_NO_PIN:
		snprintf(g->no_pin, sizeof(g->no_pin), "--no-pin");
		return 0;
	case OPT_BTF:
		snprintf(g->btf, sizeof(g->btf), "--btf %s", optarg);
		o->btf_path = optarg;
		return btf_arg(optarg);
	case 'd':
		if (shmrpc_insp_name_check(optarg))
			return bad("bad domain name (1 to 63 of [A-Za-z0-9._-], not starting "
				   "with '.')",
				   optarg);
		o->domains = realloc(o->domains, (size_t)(o->ndomains + 1) * sizeof(char *));
		if (!o->domains)
			return bad("out of memory", optarg);
		o->domains[o->ndomains++] = optarg;
		return 0;
	case OPT_RECONCILE:
		snprintf(g->reconcile, sizeof(g->reconcile), "--reconcile-ms %s", optarg);
		return ms_arg("--reconcile-ms", optarg, &o->reconcile_ms);
	case OPT_POLL:
		snprintf(g->poll, sizeof(g->poll), "--poll-ms %s", optarg);
		return ms_arg("--poll-ms", optarg, &o->poll_ms);
	case OPT_ONCE:
		o->once = true;
		return 0;
	case 'v':
		o->verbose = true;
		return 0;
	case 'h':
		fputs(usage, stdout);
		return 1;
	case 'V':
		printf("shmrpc-reaper (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
		return 1;
	case ':':
		return bad("option needs an argument", o->argv[optind - 1]);
	default:
		return bad("unknown option", o->argv[optind - 1]);
	}
}

/* The first of @n given options (as written), or NULL. */
static const char *first(const char *const *v, int n)
{
	for (int i = 0; i < n; i++)
		if (v[i][0])
			return v[i];
	return NULL;
}

/* Options that cannot go together, and what was asked for. */
static int combine(struct reaper_opts *o, const struct given *g)
{
	/* --no-pin asks for nothing (nor does --probe auto, not recorded): it
	 * goes with anything but --pin-dir. */
	const char *probe_opts[] = { g->probe, g->pin_dir, g->btf };
	const char *loop_opts[] = { g->mode, g->probe, g->pin_dir, g->btf, g->reconcile, g->poll };
	const char *any;
	char what[PATH_MAX + 64];

	if (o->once && (any = first(loop_opts, 6)))
		return bad("--once (one sweep, then exit; nothing watched) cannot go with", any);
	if (!strcmp(o->mode, "pidfd") && (any = first(probe_opts, 3)))
		return bad("--mode pidfd (no probe) cannot go with", any);
	if (g->no_pin[0] && g->pin_dir[0])
		return bad("--no-pin cannot go with", g->pin_dir);
	if (g->no_pin[0])
		o->pin_dir = NULL;
	if (o->route == SHMRPC_PROBE_PINNED && !o->pin_dir)
		return bad("--probe pinned (the pin directory's probe) cannot go with", g->no_pin);
	if (g->pin_dir[0] && reaper_pin_dir_check(o->pin_dir, what, sizeof(what)))
		return bad(g->pin_dir, what);
	/* What the user asked of the probe: it must work as asked. */
	any = !strcmp(o->mode, "bpf") ? "--mode bpf" :
	      g->probe[0]	      ? g->probe :
	      g->btf[0]		      ? g->btf :
	      g->pin_dir[0]	      ? g->pin_dir :
					"";
	snprintf(o->asked, sizeof(o->asked), "%s", any);
	o->pin_given = g->pin_dir[0] != '\0';
	return 0;
}

int reaper_opts_parse(int argc, char **argv, struct reaper_opts *o)
{
	static struct given g;
	int c, rc = 0;

	*o = (struct reaper_opts){ .mode = "auto",
				   .route = SHMRPC_PROBE_AUTO,
				   .pin_dir = "/sys/fs/bpf/shmrpc",
				   .shm_dir = "/dev/shm",
				   .beat_ms = 1000,
				   .reconcile_ms = 10000,
				   .poll_ms = 100,
				   .recheck_ms = 50,
				   .argv = argv };
	memset(&g, 0, sizeof(g));
	opterr = 0;
	while (!rc && (c = getopt_long(argc, argv, ":m:p:P:d:vhV", longopts, NULL)) != -1)
		rc = one(c, o, &g);
	if (rc)
		return rc;
	if (optind < argc)
		return bad("unexpected argument", argv[optind]);
	return combine(o, &g);
}
