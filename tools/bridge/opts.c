// SPDX-License-Identifier: MIT
/*
 * Command line of shmrpc-bridge (docs/man/shmrpc-bridge.1 is the long
 * form). Every option is checked before anything runs: a bad one is one
 * line naming it, and exit status 2.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "bridge.h"
#include "../version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmrpc-bridge -d DOMAIN [-d DOMAIN...] [-s URL[,URL...]] [-H HOST]\n"
		"                     [--creds FILE] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
		"                     [--heartbeat-ms N] [--dead-after N] [--window N]\n"
		"                     [--window-bytes N] [--status-rows N] [--spin-us N]\n"
		"                     [--call-threads N] [--bcast-wait-us N]\n"
		"                     [--log LEVEL] [-v] [-h] [-V]\n"
		"Joins libshmrpc domains of several hosts over NATS: every node of another\n"
		"host appears here as a node of the same name (docs/cross-host.md).\n"
		"\n"
		"  -d, --domain NAME     a domain to bridge (repeat for more)\n"
		"  -s, --server URL      NATS server(s): repeat, or a comma-separated list of\n"
		"                        one cluster (default nats://127.0.0.1:4222)\n"
		"  -H, --host NAME       this host's name among the bridges (default: the\n"
		"                        hostname; [A-Za-z0-9._-], unique per deployment)\n"
		"      --creds FILE      NATS user credentials (JWT and NKey seed)\n"
		"      --tls-ca FILE     CA certificates to verify the servers (turns TLS on)\n"
		"      --tls-cert FILE   client certificate chain, with --tls-key FILE\n"
		"      --heartbeat-ms N  heartbeat period, 50 to 60000 (default 1000)\n"
		"      --dead-after N    heartbeats missed before a host's nodes are removed,\n"
		"                        2 to 100 (default 3)\n"
		"      --window N        messages in flight per sender host and receiver,\n"
		"                        16 to 65536 (default 1024)\n"
		"      --window-bytes N  bytes in flight likewise, 65536 to 1073741824\n"
		"                        (default 4194304)\n"
		"      --status-rows N   nodes the status segment shows, 16 to 65536\n"
		"                        (default 1024)\n"
		"      --spin-us N       after traffic, poll this long before sleeping,\n"
		"                        0 to 1000 (default 50 with 4 CPUs or more, else 0:\n"
		"                        a polling bridge takes the CPU its peers need)\n"
		"      --call-threads N  threads that carry calls across hosts (each waits for\n"
		"                        one call's replies, or sends one request's), 1 to 1024\n"
		"                        (default 16; started at the first call)\n"
		"      --bcast-wait-us N a broadcast waits this long at most for all its copies\n"
		"                        before it is published (the copies that came go in\n"
		"                        one message, the others on their own), 0 to 10000000\n"
		"                        (default 5000)\n"
		"      --log LEVEL       debug, info (default), warn or error\n"
		"  -v, --verbose         --log debug\n"
		"  -h, --help            this help\n"
		"  -V, --version         version\n"
		"\n"
		"Built with libnats %s. Logs go to stderr, one line per event.\n",
		nats_GetVersion());
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "shmrpc-bridge: %s: %s (shmrpc-bridge --help)\n", what, arg);
	return -EINVAL;
}

static int num(const char *what, const char *arg, long long lo, long long hi, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || *v < lo || *v > hi) {
		char why[96];

		snprintf(why, sizeof(why), "%s: a number from %lld to %lld", what, lo, hi);
		return bad(why, arg);
	}
	return 0;
}

static int push(const char ***v, int *n, const char *s)
{
	const char **w = realloc(*v, (size_t)(*n + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	w[(*n)++] = s;
	*v = w;
	return 0;
}

/* -s: repeatable, and each may be a comma-separated list. */
static int add_servers(struct br_opts *o, char *arg)
{
	char *save = NULL, *tok;

	for (tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (push(&o->servers, &o->nservers, tok))
			return -ENOMEM;
	return 0;
}

static int add_domain(struct br_opts *o, const char *arg)
{
	int i;

	if (!br_name_ok(arg))
		return bad("bad domain name ([A-Za-z0-9._-], 1 to 63, not starting with '.')", arg);
	for (i = 0; i < o->ndomains; i++)
		if (!strcmp(o->domains[i], arg))
			return bad("domain given twice", arg);
	return push(&o->domains, &o->ndomains, arg);
}

static int level(const char *arg, int *lv)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	int i;

	for (i = 0; i < 4; i++)
		if (!strcmp(arg, names[i])) {
			*lv = i;
			return 0;
		}
	return bad("bad log level (debug, info, warn, error)", arg);
}

enum {
	O_CREDS = 256,
	O_CA,
	O_CERT,
	O_KEY,
	O_HB,
	O_DEAD,
	O_WIN,
	O_WINB,
	O_ROWS,
	O_LOG,
	O_SPIN,
	O_CALLT,
	O_BCW
};

static const struct option longs[] = {
	{ "domain", required_argument, NULL, 'd' },
	{ "server", required_argument, NULL, 's' },
	{ "host", required_argument, NULL, 'H' },
	{ "creds", required_argument, NULL, O_CREDS },
	{ "tls-ca", required_argument, NULL, O_CA },
	{ "tls-cert", required_argument, NULL, O_CERT },
	{ "tls-key", required_argument, NULL, O_KEY },
	{ "heartbeat-ms", required_argument, NULL, O_HB },
	{ "dead-after", required_argument, NULL, O_DEAD },
	{ "window", required_argument, NULL, O_WIN },
	{ "window-bytes", required_argument, NULL, O_WINB },
	{ "status-rows", required_argument, NULL, O_ROWS },
	{ "log", required_argument, NULL, O_LOG },
	{ "spin-us", required_argument, NULL, O_SPIN },
	{ "call-threads", required_argument, NULL, O_CALLT },
	{ "bcast-wait-us", required_argument, NULL, O_BCW },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* One option: 0, 1 (done), -EINVAL. */
static int one(int c, struct br_opts *o)
{
	long long v;
	int rc;

	switch (c) {
	case 'd':
		return add_domain(o, optarg);
	case 's':
		return add_servers(o, optarg);
	case 'H':
		if (!br_name_ok(optarg))
			return bad("bad host name ([A-Za-z0-9._-], 1 to 63)", optarg);
		snprintf(o->host, sizeof(o->host), "%s", optarg);
		return 0;
	case O_CREDS:
		o->creds = optarg;
		return 0;
	case O_CA:
		o->tls_ca = optarg;
		return 0;
	case O_CERT:
		o->tls_cert = optarg;
		return 0;
	case O_KEY:
		o->tls_key = optarg;
		return 0;
	case O_HB:
		rc = num("--heartbeat-ms", optarg, 50, 60000, &v);
		o->hb_ms = (int)v;
		return rc;
	case O_DEAD:
		rc = num("--dead-after", optarg, 2, 100, &v);
		o->dead_beats = (int)v;
		return rc;
	case O_WIN:
		rc = num("--window", optarg, 16, 65536, &v);
		o->window = (uint32_t)v;
		return rc;
	case O_WINB:
		rc = num("--window-bytes", optarg, 65536, 1ll << 30, &v);
		o->window_bytes = (uint64_t)v;
		return rc;
	case O_ROWS:
		rc = num("--status-rows", optarg, 16, 65536, &v);
		o->status_rows = (uint32_t)v;
		return rc;
	case O_LOG:
		return level(optarg, &o->log_level);
	case O_SPIN:
		rc = num("--spin-us", optarg, 0, 1000, &v);
		o->spin_us = (int)v;
		return rc;
	case O_CALLT:
		rc = num("--call-threads", optarg, 1, 1024, &v);
		o->call_threads = (uint32_t)v;
		return rc;
	case O_BCW:
		rc = num("--bcast-wait-us", optarg, 0, 10000000, &v);
		o->bcast_wait_us = (int)v;
		return rc;
	case 'v':
		o->log_level = BR_LOG_DEBUG;
		return 0;
	case 'h':
		usage(stdout);
		return 1;
	case 'V':
		printf("shmrpc-bridge (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
		return 1;
	default:
		return -EINVAL; /* getopt printed it */
	}
}

static int check(struct br_opts *o)
{
	if (!o->ndomains)
		return bad("no domain to bridge", "give -d DOMAIN");
	if (!!o->tls_cert != !!o->tls_key)
		return bad("--tls-cert and --tls-key go together",
			   o->tls_cert ? o->tls_cert : o->tls_key);
	if (!o->host[0]) {
		char h[256] = "";

		if (gethostname(h, sizeof(h) - 1) || !br_name_ok(h))
			return bad("the hostname is no bridge host name: give -H NAME", h);
		memcpy(o->host, h, strlen(h) + 1); /* br_name_ok: at most 63 */
	}
	if (!o->nservers && push(&o->servers, &o->nservers, "nats://127.0.0.1:4222"))
		return -ENOMEM;
	return 0;
}

int br_opts_parse(int argc, char **argv, struct br_opts *o)
{
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->hb_ms = 1000;
	o->dead_beats = 3;
	o->window = 1024;
	o->window_bytes = 4 << 20;
	o->status_rows = 1024;
	/* Polling pays where a CPU would idle; with fewer than 4, the
	 * bridge's peers (its nodes, nats-server) need it (docs/cross-host.md). */
	o->spin_us = get_nprocs() >= 4 ? 50 : 0;
	o->call_threads = 16;
	o->bcast_wait_us = 5000;
	o->log_level = BR_LOG_INFO;
	while ((c = getopt_long(argc, argv, "d:s:H:vhV", longs, NULL)) != -1)
		if ((rc = one(c, o)))
			return rc;
	if (optind < argc)
		return bad("unexpected argument", argv[optind]);
	return check(o);
}

void br_opts_free(struct br_opts *o)
{
	free(o->servers);
	free(o->domains);
	o->servers = o->domains = NULL;
}
