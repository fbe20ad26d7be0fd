// SPDX-License-Identifier: MIT
/*
 * shmrpc-kv: request/response worked through, a key-value service and its
 * client in one program.
 *
 *	shmrpc-kv serve                 the service: node "kv" (--name)
 *	shmrpc-kv set KEY VALUE         the client, one call per run
 *	shmrpc-kv get KEY
 *	shmrpc-kv del KEY
 *	shmrpc-kv scan                  a streamed reply: every pair, one a reply
 *
 * A request is text: "get KEY", "set KEY VALUE", "del KEY", "scan". The
 * serve function runs in the server's receiving call (shmrpc_recv here,
 * which returns the plain messages and serves the requests it meets), copies
 * the request out of the ring before it parses it (the caller could still
 * write there), and replies at once: a value, nothing, a stream of
 * "KEY=VALUE" replies with SHMRPC_REPLY_MORE, or an error (-ENOENT: no such
 * key, -ENOSPC: the table is full, -EINVAL: not a request) that the client's
 * shmrpc_call returns as it is. A client whose server dies mid-call gets
 * -EPIPE at once, never a timeout.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmrpc.h"
#include "version.h"

#define KEYS 1024
#define KEY_MAX 64
#define VAL_MAX 1024
#define REQ_MAX (8 + KEY_MAX + VAL_MAX)

struct pair {
	char key[KEY_MAX + 1];
	char val[VAL_MAX + 1];
};

static struct pair table[KEYS];
static int npairs;
static volatile sig_atomic_t stop;
static struct shmrpc_opts opts = { .sz = sizeof(opts) };
static const char *svc = "kv";
static int timeout_ms = 2000;

static struct pair *find(const char *key)
{
	int i;

	for (i = 0; i < npairs; i++)
		if (!strcmp(table[i].key, key))
			return &table[i];
	return NULL;
}

static int kv_set(const char *key, const char *val)
{
	struct pair *p = find(key);

	if (!p && npairs == KEYS)
		return -ENOSPC;
	if (!p)
		p = &table[npairs++];
	snprintf(p->key, sizeof(p->key), "%s", key);
	snprintf(p->val, sizeof(p->val), "%s", val);
	return 0;
}

static int kv_del(const char *key)
{
	struct pair *p = find(key);

	if (!p)
		return -ENOENT;
	*p = table[--npairs];
	return 0;
}

/* Stream every pair, then end the request (an empty last reply). */
static void kv_scan(struct shmrpc_node *n, const struct shmrpc_req *r)
{
	char line[KEY_MAX + VAL_MAX + 2];
	int i, len;

	for (i = 0; i < npairs && shmrpc_req_cancelled(n, r) == 0; i++) {
		len = snprintf(line, sizeof(line), "%s=%s", table[i].key, table[i].val);
		if (shmrpc_reply(n, r, line, (size_t)len, SHMRPC_REPLY_MORE))
			return; /* the caller left, or gave up: the request is over */
	}
	shmrpc_reply(n, r, "", 0, 0);
}

/* The serve function: runs in the server's receiving call. */
static void serve(struct shmrpc_node *n, const struct shmrpc_req *r, void *arg)
{
	char req[REQ_MAX + 1], *key, *val;
	struct pair *p;

	(void)arg;
	/* r->data is in the shared ring, and the caller may still write to
	 * it: one copy, then parse the copy. */
	if (r->len > REQ_MAX || memchr(r->data, '\0', r->len)) {
		shmrpc_reply_error(n, r, -EINVAL);
		return;
	}
	memcpy(req, r->data, r->len);
	req[r->len] = '\0';
	key = strchr(req, ' ');
	if (key)
		*key++ = '\0';
	val = key ? strchr(key, ' ') : NULL;
	if (val)
		*val++ = '\0';
	if (key && (!*key || strlen(key) > KEY_MAX || (val && strlen(val) > VAL_MAX))) {
		shmrpc_reply_error(n, r, -EINVAL);
	} else if (!strcmp(req, "get") && key && !val) {
		p = find(key);
		if (p)
			shmrpc_reply(n, r, p->val, strlen(p->val), 0);
		else
			shmrpc_reply_error(n, r, -ENOENT);
	} else if ((!strcmp(req, "set") && val) || (!strcmp(req, "del") && key && !val)) {
		int err = val ? kv_set(key, val) : kv_del(key);

		if (err)
			shmrpc_reply_error(n, r, err);
		else
			shmrpc_reply(n, r, "", 0, 0);
	} else if (!strcmp(req, "scan") && !key) {
		kv_scan(n, r);
	} else {
		shmrpc_reply_error(n, r, -EINVAL);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int run_server(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	char buf[256], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n;
	int rc;

	rc = shmrpc_open(svc, &opts, &n);
	if (rc) {
		fprintf(stderr, "shmrpc-kv: serve as '%s': %s\n", svc, shmrpc_last_error());
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	shmrpc_serve(n, serve, NULL);
	printf("serving as '%s' in domain '%s'\n", svc, shmrpc_domain(n));
	fflush(stdout);
	/* The receiving call serves the requests; plain messages come back. */
	while (!stop) {
		rc = shmrpc_recv(n, buf, sizeof(buf), from, 200);
		if (rc >= 0)
			printf("message from %s (%d bytes): ignored\n", from, rc);
		else if (rc != -ETIMEDOUT && rc != -EAGAIN && rc != -EMSGSIZE)
			fprintf(stderr, "shmrpc-kv: recv: %s\n", shmrpc_last_error());
	}
	shmrpc_close(n);
	return 0;
}

/* One call to the service; prints the reply, or the stream of a scan. */
static int run_client(const char *req, bool stream)
{
	static char out[KEY_MAX + VAL_MAX + 2];
	struct shmrpc_node *n;
	char me[32];
	unsigned more = 0;
	uint64_t id;
	int rc;

	snprintf(me, sizeof(me), "kv-client-%d", (int)getpid());
	rc = shmrpc_open(me, &opts, &n);
	if (rc) {
		fprintf(stderr, "shmrpc-kv: %s\n", shmrpc_last_error());
		return 1;
	}
	if (!stream) {
		rc = shmrpc_call(n, svc, req, strlen(req), out, sizeof(out), timeout_ms);
		if (rc >= 0 && rc)
			printf("%.*s\n", rc, out);
	} else {
		rc = shmrpc_call_start(n, svc, req, strlen(req), timeout_ms, &id);
		while (!rc) {
			rc = shmrpc_call_wait(n, id, out, sizeof(out), &more, -1);
			if (rc > 0)
				printf("%.*s\n", rc, out);
			if (rc >= 0 && !more)
				break;
			rc = rc > 0 ? 0 : rc;
		}
	}
	/* The library's words if it has some (no such node...), else the
	 * errno's (the server's error: no such key...). */
	if (rc < 0)
		fprintf(stderr, "shmrpc-kv: %s: %s\n", req,
			shmrpc_last_error()[0] ? shmrpc_last_error() : strerror(-rc));
	shmrpc_close(n);
	return rc < 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: shmrpc-kv [--domain NAME] [--name NAME] [--timeout MS] COMMAND\n"
		   "A key-value service over libshmrpc's request/response, and its client.\n"
		   "\n"
		   "  serve                 be the service (until SIGINT or SIGTERM)\n"
		   "  set KEY VALUE         store VALUE under KEY\n"
		   "  get KEY               print KEY's value\n"
		   "  del KEY               remove KEY\n"
		   "  scan                  print every KEY=VALUE (a streamed reply)\n"
		   "\n"
		   "      --domain NAME     the domain (default $SHMRPC_DOMAIN, else default)\n"
		   "      --name NAME       the service's node name (default kv)\n"
		   "      --timeout MS      a call's timeout (default 2000)\n"
		   "  -h, --help            this help\n"
		   "  -V, --version         version\n"
		   "Exit status: 0, 1 if the call failed (the reason on stderr), 2 bad usage.\n");
}

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "shmrpc-kv: %s: %s (see --help)\n", what, arg);
	return 2;
}

/* 0: run; 1: done (help, version); 2: bad usage. */
static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "domain", required_argument, NULL, 'D' },
		{ "name", required_argument, NULL, 'N' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", lo, NULL)) != -1) {
		switch (c) {
		case 'D':
			opts.domain = optarg;
			break;
		case 'N':
			svc = optarg;
			break;
		case 'T':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < -1 || v > 3600000)
				return bad_usage("bad --timeout (ms, -1 to 3600000)", optarg);
			timeout_ms = (int)v;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("shmrpc-kv (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
			return 1;
		case ':':
			return bad_usage("option needs an argument", argv[optind - 1]);
		default:
			return bad_usage("unknown option", argv[optind - 1]);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	char req[REQ_MAX + 1];
	const char *cmd;
	int rc = parse(argc, argv), nargs;

	if (rc)
		return rc == 1 ? 0 : 2;
	if (optind >= argc)
		return bad_usage("a command is needed", "serve, set, get, del or scan");
	cmd = argv[optind];
	nargs = argc - optind - 1;
	if (!strcmp(cmd, "serve") && !nargs)
		return run_server();
	if (!strcmp(cmd, "scan") && !nargs)
		return run_client("scan", true);
	if (((!strcmp(cmd, "get") || !strcmp(cmd, "del")) && nargs == 1) ||
	    (!strcmp(cmd, "set") && nargs == 2)) {
		if (strchr(argv[optind + 1], ' ') || strlen(argv[optind + 1]) > KEY_MAX ||
		    (nargs == 2 && strlen(argv[optind + 2]) > VAL_MAX))
			return bad_usage("bad key or value (a key has no space, at most 64 "
					 "bytes; a value at most 1024)",
					 argv[optind + 1]);
		snprintf(req, sizeof(req), "%s %s%s%s", cmd, argv[optind + 1],
			 nargs == 2 ? " " : "", nargs == 2 ? argv[optind + 2] : "");
		return run_client(req, false);
	}
	return bad_usage("unknown command, or wrong arguments", cmd);
}
