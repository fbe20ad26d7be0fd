// SPDX-License-Identifier: MIT
/*
 * shmrpc-info: what libshmrpc can do on this machine, and why not.
 *	shmrpc-info			the report (info.h lists what it checks)
 *	shmrpc-info --backend NAME	exit 0 if backend NAME works here, else 1
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "info.h"
#include "shmrpc.h"
#include "top.h"
#include "version.h"

#define PIN_DIR "/sys/fs/bpf/shmrpc"

static void usage(FILE *f)
{
	fprintf(f, "usage: shmrpc-info [--backend NAME] [-h] [-V]\n"
		   "What libshmrpc can do on this machine: its version, the wake backends\n"
		   "(and why one is unavailable), whether the eBPF exit probe of\n"
		   "shmrpc-reaper loads here, and the domains present in /dev/shm.\n"
		   "\n"
		   "      --backend NAME  print nothing; exit 0 if backend NAME (uring, futex)\n"
		   "                      works here, 1 if not\n"
		   "  -h, --help          this help\n"
		   "  -V, --version       version\n");
}

static void backends(void)
{
	char why[INFO_WHY_MAX];
	const char *env = getenv("SHMRPC_BACKEND");
	int lib = shmrpc_backend_available("uring"), mine = info_uring_why(why, sizeof(why));

	printf("wake backends:\n");
	if (lib == 1)
		printf("  uring   available (io_uring with IORING_OP_FUTEX_WAIT/WAKE)\n");
	else
		printf("  uring   not available: %s\n",
		       mine ? "the library's probe failed; this one did not (a transient error?)" :
			      why);
	printf("  futex   available%s\n", info_futex_waitv() ?
						  " (futex_waitv)" :
						  ", but futex_waitv(2) is missing (Linux 5.16+)");
	printf("  default %s%s%s%s\n", shmrpc_backend_default(), env ? " ($SHMRPC_BACKEND=" : "",
	       env ? env : "", env ? " overrides it)" : "");
}

static void probe(void)
{
	struct info_probe p[2];
	int i, pinned;

	info_probe_check(p);
	printf("eBPF exit probe (shmrpc-reaper --mode bpf):\n");
	for (i = 0; i < 2; i++)
		printf("  %-10s %s%s\n", p[i].name,
		       p[i].loads ? "loads here" : "does not load: ", p[i].loads ? "" : p[i].why);
	if (!info_is_bpffs("/sys/fs/bpf"))
		printf("  pins       /sys/fs/bpf is not a bpffs mount: the probe cannot be pinned\n");
	else if ((pinned = info_probe_pinned(PIN_DIR)) > 0)
		printf("  pinned     a probe is pinned in %s (shmrpc-reaper's)\n", PIN_DIR);
	else if (pinned < 0)
		printf("  pinned     cannot look in %s: %s\n", PIN_DIR, strerror(-pinned));
	else
		printf("  pinned     nothing in %s\n", PIN_DIR);
	printf("  so         %s\n",
	       p[0].loads || p[1].loads ?
		       "shmrpc-reaper can watch with BPF here" :
		       "shmrpc-reaper falls back to pidfds here (--mode pidfd; slower, no exit status)");
}

static const char *reaper_text(const struct top_reaper *r, char *buf, size_t len)
{
	const char *mode = r->mode == 1 ? "bpf" : r->mode == 2 ? "pidfd" : "?";

	if (r->state == TOP_REAPER_RUNNING)
		snprintf(buf, len, "reaper running (%s, pid %u)", mode, r->pid);
	else if (r->state == TOP_REAPER_STALE)
		snprintf(buf, len, "reaper stale (pid %u)", r->pid);
	else
		snprintf(buf, len, "no reaper");
	return buf;
}

static int domains(void)
{
	struct top_snap s = { 0 };
	struct top_summary sum;
	char rp[64];
	uint32_t i;
	int err = top_guard_install();

	if (!err)
		err = top_scan(&s, NULL);
	if (err) {
		printf("domains in /dev/shm: cannot scan: %s\n", strerror(-err));
		return 1;
	}
	printf("domains in /dev/shm: %u%s\n", s.ndoms, s.ndoms ? "" : " (none)");
	for (i = 0; i < s.ndoms; i++) {
		const struct top_domain *d = &s.doms[i];

		if (d->status != TOP_DOM_OK) {
			printf("  %-24s %s%s%s\n", d->name, top_dom_status_name(d->status),
			       d->why[0] ? ": " : "", d->why);
			continue;
		}
		top_summarize(&s, d->name, &sum);
		printf("  %-24s %u live, %u dead, %u other nodes, %u rings, %s\n", d->name,
		       sum.live, sum.dead, sum.other, sum.rings,
		       reaper_text(&d->reaper, rp, sizeof(rp)));
	}
	top_snap_free(&s);
	return 0;
}

/* The exit status when the command line is all there is to do (help,
 * version, --backend, bad usage: 2), else -1: print the report. */
static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", lo, NULL)) != -1) {
		switch (c) {
		case 'b':
			c = shmrpc_backend_available(optarg);
			if (c >= 0)
				return c == 1 ? 0 : 1;
			fprintf(stderr, "shmrpc-info: unknown backend: %s (uring, futex)\n",
				optarg);
			return 2;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("shmrpc-info (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "shmrpc-info: option needs an argument: %s\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "shmrpc-info: unknown option: %s (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmrpc-info: unexpected argument: %s (see --help)\n",
			argv[optind]);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct utsname u;
	int rc = parse(argc, argv);

	if (rc >= 0)
		return rc;
	uname(&u);
	printf("libshmrpc %s (header %d.%d), Linux %s %s\n\n", SHMRPC_TOOLS_VERSION,
	       SHMRPC_VERSION_MAJOR, SHMRPC_VERSION_MINOR, u.release, u.machine);
	backends();
	printf("\n");
	probe();
	printf("\n");
	return domains();
}
