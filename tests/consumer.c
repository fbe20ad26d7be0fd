// SPDX-License-Identifier: MIT
/*
 * A program built against the *installed* library only (shmrpc.h and
 * pkg-config), as a user would: scripts/install-check.sh compiles and runs
 * it. Two processes exchange, zero-copy and a marked broadcast included;
 * exits 0 on success.
 */
#include <shmrpc.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define FAIL(...)                             \
	do {                                  \
		fprintf(stderr, __VA_ARGS__); \
		exit(1);                      \
	} while (0)

static void child(const struct shmrpc_opts *opts)
{
	struct shmrpc_opts o = *opts;
	struct shmrpc_node *n;
	struct shmrpc_rxbuf rx;
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_msg msg = { .buf = buf, .cap = sizeof(buf) };
	struct shmrpc_mark mark;
	int rc;

	o.flags = SHMRPC_OPEN_BCAST_MARKS;
	if ((rc = shmrpc_open("pong", &o, &n)))
		FAIL("child open: %d\n", rc);
	rc = shmrpc_recv(n, buf, sizeof(buf), from, 5000);
	if (rc != 4 || memcmp(buf, "ping", 4) || strcmp(from, "ping"))
		FAIL("child recv: %d\n", rc);
	if ((rc = shmrpc_send(n, from, "pong", 4, 5000)))
		FAIL("child send: %d\n", rc);
	rc = shmrpc_peek(n, &rx, 5000);
	if (rc != 5 || memcmp(rx.data, "zcopy", 5) || shmrpc_release(n, &rx))
		FAIL("child peek: %d\n", rc);
	rc = shmrpc_recv_batch_marks(n, &msg, &mark, 1, 5000);
	if (rc != 1 || msg.len != 5 || memcmp(buf, "bcast", 5) || !mark.bcast || mark.copies != 1)
		FAIL("child recv_batch_marks: %d\n", rc);
	shmrpc_close(n);
	exit(0);
}

int main(void)
{
	char domain[32], buf[64];
	struct shmrpc_opts o = { .sz = sizeof(o) };
	struct shmrpc_txbuf tx;
	struct shmrpc_node *n;
	int rc, status;
	pid_t pid, parent = getpid();

	snprintf(domain, sizeof(domain), "consumer-%d", (int)getpid());
	o.domain = domain;
	if ((rc = shmrpc_open("ping", &o, &n)))
		FAIL("open: %d\n", rc);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with us */
		if (getppid() != parent)
			exit(1);
		child(&o);
	}
	if ((rc = shmrpc_wait_node(n, "pong", 5000)) ||
	    (rc = shmrpc_send(n, "pong", "ping", 4, 5000)))
		FAIL("send: %d\n", rc);
	if ((rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 5000)) != 4 || memcmp(buf, "pong", 4))
		FAIL("recv: %d\n", rc);
	if ((rc = shmrpc_reserve(n, "pong", 5, &tx, 5000)))
		FAIL("reserve: %d\n", rc);
	memcpy(tx.data, "zcopy", 5);
	if ((rc = shmrpc_commit(n, &tx, 5)))
		FAIL("commit: %d\n", rc);
	if ((rc = shmrpc_broadcast(n, "bcast", 5, 5000)) != 1)
		FAIL("broadcast: %d\n", rc);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("child failed\n");
	printf("consumer: ok (backend %s, libshmrpc %d.%d)\n", shmrpc_backend(n),
	       SHMRPC_VERSION_MAJOR, SHMRPC_VERSION_MINOR);
	shmrpc_close(n);
	return 0;
}
