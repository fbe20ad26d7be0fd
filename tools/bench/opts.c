// SPDX-License-Identifier: MIT
/*
 * The command line: options into struct bench_opts, and the two questions
 * every runner asks of them (is this name in a comma list; does this run
 * include this transport in this scenario). Calls no other file of the
 * benchmark: what the names mean is the plan's business (plan.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../version.h"
#include "bench.h"

void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: shmrpc-bench [options]\n"
		"  --quick            reduced run, a smoke test (< 30 s)\n"
		"  --scenario LIST    of pingpong, paced, stream, memcpy, fanin, broadcast,\n"
		"                     syscalls, idle, connect, memory, crash, events, rpc\n"
		"                     (default: all)\n"
		"  --transport LIST   transports to run (default: all; see --list)\n"
		"  --iters N          ping-pong round trips measured (default 50000, quick 2000)\n"
		"  --duration S       seconds per stream, fan-in and broadcast run, cap per\n"
		"                     ping-pong run and measured time of paced runs\n"
		"                     (defaults: stream 0.5, ping-pong 1, paced 1/0.5/0.3)\n"
		"  --baseline NAME    transport that ratios refer to (default futex)\n"
		"  --json FILE        write all results as one JSON document\n"
		"  --plots DIR        write gnuplot data, script and SVGs to DIR\n"
		"  --kills N          crash, events: kills per cleanup mode (default 50 and\n"
		"                     30, quick 10 and 5); rpc: servers killed (default 20,\n"
		"                     quick 3, at most 64)\n"
		"  --no-strace        syscalls: skip the strace -c -f cross-check\n"
		"  --list             list the transports and exit\n"
		"  -h, --help         this help\n"
		"  -V, --version      version\n");
}

/* A usage error: one line that says what was wrong. */
static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "shmrpc-bench: %s: %s (see --help)\n", what, arg);
	return -EINVAL;
}

int bench_in_list(const char *list, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, len) && (p[len] == ',' || !p[len]))
			return 1;
	return !list;
}

int bench_want(const struct bench_opts *o, const char *name, unsigned not_in, unsigned bit)
{
	if (o->transports)
		return bench_in_list(o->transports, name);
	return !(not_in & bit);
}

/* One option with its argument (getopt's optarg); -EINVAL if bad. */
static int set_opt(struct bench_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'q':
		o->quick = 1;
		return 0;
	case 's':
		o->scenarios = arg;
		return 0;
	case 't':
		o->transports = arg;
		return 0;
	case 'i':
		o->iters = atoll(arg);
		return o->iters < 1 ? bad("bad --iters (a count, at least 1)", arg) : 0;
	case 'd':
		o->duration = atof(arg);
		return !(o->duration > 0) ? bad("bad --duration (seconds, more than 0)", arg) : 0;
	case 'b':
		o->baseline = arg;
		return 0;
	case 'j':
		o->json = arg;
		return 0;
	case 'p':
		o->plots = arg;
		return 0;
	case 'k':
		o->kills = atoi(arg);
		return o->kills < 1 ? bad("bad --kills (a count, at least 1)", arg) : 0;
	case 'S':
		o->no_strace = 1;
		return 0;
	case 'h':
		bench_usage(stdout);
		exit(0);
	case 'V':
		printf("shmrpc-bench (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
		exit(0);
	}
	return -EINVAL;
}

/* bench_opts_parse - the command line into @o (defaults set by the caller).
 * 0, or -EINVAL on an unknown option, a bad value or an extra argument,
 * after one line on stderr that says which. --list stops the parsing
 * (o->list), --help and --version print and exit. */
int bench_opts_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option lo[] = {
		{ "quick", no_argument, 0, 'q' },
		{ "scenario", required_argument, 0, 's' },
		{ "transport", required_argument, 0, 't' },
		{ "iters", required_argument, 0, 'i' },
		{ "duration", required_argument, 0, 'd' },
		{ "baseline", required_argument, 0, 'b' },
		{ "json", required_argument, 0, 'j' },
		{ "plots", required_argument, 0, 'p' },
		{ "kills", required_argument, 0, 'k' },
		{ "no-strace", no_argument, 0, 'S' },
		{ "list", no_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qs:t:i:d:b:j:p:k:SlhV", lo, NULL)) != -1) {
		if (c == 'l') { /* the rest of the line does not matter */
			o->list = 1;
			return 0;
		}
		if (c == ':')
			return bad("option needs an argument", argv[optind - 1]);
		if (c == '?')
			return bad("unknown option", argv[optind - 1]);
		if (set_opt(o, c, optarg))
			return -EINVAL;
	}
	return optind < argc ? bad("unexpected argument", argv[optind]) : 0;
}
