// SPDX-License-Identifier: MIT
/*
 * A C peer for the binding tests (tests/python, tests/test_cpp.cc): joins
 * DOMAIN as NAME, prints "ready", then sends every message back to its
 * sender through the zero-copy calls (peek, reserve, commit, release) until
 * one reads "quit". Messages reading "nodes" get the domain's node names,
 * comma-separated. Exits 0 when done, 1 on an error (printed), 3 if nothing
 * came for 30 s (its test is gone).
 * Usage: echo_peer DOMAIN NAME [RING_BYTES]
 */
#include <shmrpc.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define IDLE_MS 30000

static int fail(struct shmrpc_node *n, const char *what, int rc)
{
	fprintf(stderr, "echo_peer: %s: %d (%s)\n", what, rc, shmrpc_last_error());
	shmrpc_close(n);
	return 1;
}

static int reply_nodes(struct shmrpc_node *n, const char *to)
{
	char names[64][SHMRPC_NAME_MAX + 1], out[64 * (SHMRPC_NAME_MAX + 1)];
	int count = shmrpc_nodes(n, names, 64), i;
	size_t len = 0;

	if (count < 0)
		return count;
	for (i = 0; i < count && i < 64; i++)
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? "," : "",
					names[i]);
	return shmrpc_send(n, to, out, len, IDLE_MS);
}

static int echo(struct shmrpc_node *n, const struct shmrpc_rxbuf *rx)
{
	struct shmrpc_txbuf tx;
	int rc = shmrpc_reserve(n, rx->from, rx->len, &tx, IDLE_MS);

	if (rc)
		return rc;
	if (rx->len)
		memcpy(tx.data, rx->data, rx->len);
	return shmrpc_commit(n, &tx, rx->len);
}

int main(int argc, char **argv)
{
	struct shmrpc_opts o = { .sz = sizeof(o) };
	struct shmrpc_rxbuf rx;
	struct shmrpc_node *n;
	int rc, quit = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed midway leaves no peer */
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: echo_peer DOMAIN NAME [RING_BYTES]\n");
		return 2;
	}
	o.domain = argv[1];
	if (argc == 4)
		o.ring_bytes = (uint32_t)strtoul(argv[3], NULL, 0);
	if ((rc = shmrpc_open(argv[2], &o, &n)))
		return fail(NULL, "open", rc);
	printf("ready\n");
	fflush(stdout);
	while (!quit) {
		rc = shmrpc_peek(n, &rx, IDLE_MS);
		if (rc == -ETIMEDOUT) {
			shmrpc_close(n);
			return 3;
		}
		if (rc < 0)
			return fail(n, "peek", rc);
		if (rx.len == 4 && !memcmp(rx.data, "quit", 4))
			quit = 1;
		else if (rx.len == 5 && !memcmp(rx.data, "nodes", 5))
			rc = reply_nodes(n, rx.from);
		else
			rc = echo(n, &rx);
		if (rc < 0)
			return fail(n, "reply", rc);
		if ((rc = shmrpc_release(n, &rx)))
			return fail(n, "release", rc);
	}
	shmrpc_close(n);
	return 0;
}
