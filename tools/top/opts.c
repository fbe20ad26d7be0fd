// SPDX-License-Identifier: MIT
/*
 * Command line of shmrpc-top (docs/man/shmrpc-top.1 is the long form).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "top.h"
#include "../version.h"

#define DELAY_MIN 0.05
#define DELAY_MAX 86400.0

void top_usage(FILE *f)
{
	int i;

	fprintf(f,
		"usage: shmrpc-top [-b | --json | --prom] [-n N] [-d SECS] [--domain NAME]\n"
		"                  [-s COLUMN] [-r] [-f TEXT] [-R] [-o FILE] [-h] [-V]\n"
		"Live view of every libshmrpc node and ring on this host (read-only).\n"
		"\n"
		"  -b, --batch         plain text, one block per refresh (like top -b)\n"
		"      --json          one JSON document per refresh, one per line\n"
		"      --prom          Prometheus text exposition (node_exporter textfile)\n"
		"  -n, --iterations N  stop after N refreshes (batch default: until killed;\n"
		"                      --prom without -o: 1)\n"
		"  -d, --delay SECS    seconds between refreshes (default 1, at least %.2f)\n"
		"      --domain NAME   only this domain (default: every domain)\n"
		"  -s, --sort COLUMN   sort by COLUMN (default out); one of:\n"
		"                     ",
		DELAY_MIN);
	for (i = 0; i < TOP_COL_COUNT; i++)
		fprintf(f, " %s", top_cols[i].id);
	fprintf(f, "\n"
		   "  -r, --reverse       reverse the sort order\n"
		   "  -f, --filter TEXT   only nodes whose name contains TEXT (any case)\n"
		   "  -R, --rings         batch text: list each node's rings under it\n"
		   "  -o, --output FILE   batch: write each refresh to FILE (replaced atomically)\n"
		   "  -h, --help          this help\n"
		   "  -V, --version       version\n"
		   "\n"
		   "Keys: q quit, Up/Down select, Enter rings of the node, Esc back, / filter,\n"
		   "d next domain, < > sort column, r reverse, ? all keys.\n");
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "shmrpc-top: %s: %s\n", what, arg);
	return -EINVAL;
}

static int parse_delay(const char *arg, double *d)
{
	char *end;

	errno = 0;
	*d = strtod(arg, &end);
	if (errno || end == arg || *end || !(*d >= DELAY_MIN && *d <= DELAY_MAX))
		return bad("bad delay (seconds, 0.05 to 86400)", arg);
	return 0;
}

static int parse_count(const char *arg, long *n)
{
	char *end;

	errno = 0;
	*n = strtol(arg, &end, 10);
	if (errno || end == arg || *end || *n < 1)
		return bad("bad number of iterations", arg);
	return 0;
}

static void defaults(struct top_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = TOP_MODE_UI;
	o->delay = 1.0;
	o->view.sort = TOP_COL_MSGS_OUT;
}

enum { OPT_JSON = 256, OPT_PROM, OPT_DOMAIN };

/* The option that chose each output mode, for the messages. */
static const char *const mode_opt[] = {
	[TOP_MODE_UI] = "the screen",
	[TOP_MODE_TEXT] = "-b",
	[TOP_MODE_JSON] = "--json",
	[TOP_MODE_PROM] = "--prom",
};

/* -b, --json and --prom each choose the output: two of them contradict. */
static int set_mode(struct top_opts *o, enum top_mode m)
{
	if (o->mode != TOP_MODE_UI && o->mode != m) {
		fprintf(stderr, "shmrpc-top: %s and %s: choose one output\n", mode_opt[o->mode],
			mode_opt[m]);
		return -EINVAL;
	}
	o->mode = m;
	return 0;
}

/* One option: 0, 1 (done: help or version printed), -EINVAL. */
static int one(int c, char **argv, struct top_opts *o, bool *n_given)
{
	switch (c) {
	case 'b':
		return set_mode(o, TOP_MODE_TEXT);
	case OPT_JSON:
		return set_mode(o, TOP_MODE_JSON);
	case OPT_PROM:
		return set_mode(o, TOP_MODE_PROM);
	case 'n':
		*n_given = true;
		return parse_count(optarg, &o->iterations);
	case 'd':
		return parse_delay(optarg, &o->delay);
	case OPT_DOMAIN:
		o->domain = o->view.domain = optarg;
		return shmrpc_insp_name_check(optarg) ? bad("bad domain name", optarg) : 0;
	case 's':
		o->view.sort = top_col_by_id(optarg);
		return o->view.sort < 0 ? bad("unknown column (see -h)", optarg) : 0;
	case 'r':
		o->view.reverse = true;
		return 0;
	case 'f':
		o->view.filter = optarg;
		return 0;
	case 'R':
		o->rings = true;
		return 0;
	case 'o':
		o->out = optarg;
		return 0;
	case 'h':
		top_usage(stdout);
		return 1;
	case 'V':
		printf("shmrpc-top (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
		return 1;
	case ':':
		return bad("option needs an argument", argv[optind - 1]);
	default:
		return bad("unknown option", argv[optind - 1]);
	}
}

/* 0: run; 1: done (help or version printed); -EINVAL: bad usage. */
int top_opts_parse(int argc, char **argv, struct top_opts *o)
{
	static const struct option longs[] = {
		{ "batch", no_argument, NULL, 'b' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "delay", required_argument, NULL, 'd' },
		{ "domain", required_argument, NULL, OPT_DOMAIN },
		{ "sort", required_argument, NULL, 's' },
		{ "reverse", no_argument, NULL, 'r' },
		{ "filter", required_argument, NULL, 'f' },
		{ "rings", no_argument, NULL, 'R' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "prom", no_argument, NULL, OPT_PROM },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool n_given = false;
	int c, err = 0;

	defaults(o);
	opterr = 0;
	optind = 1;
	while (!err && (c = getopt_long(argc, argv, ":bn:d:s:rf:Ro:hV", longs, NULL)) != -1)
		err = one(c, argv, o, &n_given);
	if (err)
		return err;
	if (optind < argc)
		return bad("unexpected argument", argv[optind]);
	if (o->out && o->mode == TOP_MODE_UI)
		return bad("-o needs a batch mode", "use -b, --json or --prom");
	if (n_given && o->mode == TOP_MODE_UI)
		return bad("-n needs a batch mode (the screen runs until q)",
			   "use -b, --json or --prom");
	if (o->rings && o->mode != TOP_MODE_TEXT)
		return bad("-R lists rings in -b text only",
			   o->mode == TOP_MODE_UI ? "the screen shows them on Enter" :
						    "--json and --prom always have them");
	/* One exposition is what a textfile collector wants from a cron run;
	 * with -o, each refresh replaces the file, so keep going. */
	if (!n_given && o->mode == TOP_MODE_PROM && !o->out)
		o->iterations = 1;
	return 0;
}
