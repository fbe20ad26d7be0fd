// SPDX-License-Identifier: MIT
/*
 * Scenario: the first send to a new peer (it connects on the way).
 *
 *   pn_connect [--iters N] [--ring BYTES]
 *
 * Node "r" (a child process pinned to CPU 1) receives, awake, until told
 * to stop. N times, this process (CPU 0) opens a fresh node "s<i>", times
 * its first shmrpc_send to "r" (connect: lookup, the receiver's node
 * segment, its liveness lock, a pidfd, the ring file with every page
 * reserved, the announcement, the watch) and a second one (warm, through
 * shmrpc_send_flags so that callgrind --toggle-collect=shmrpc_send sees
 * only first sends), then closes the node. Prints the medians.
 *
 * Under strace: `strace -f -T -e trace=all` shows each first send between
 * two getppid() markers.
 */
#include "pn.h"
#include "shmrpc.h"

struct ctl {
	_Atomic uint32_t bar;
	_Atomic uint64_t got;
	int err;
};

static char domain[64];
static uint32_t ring_bytes = 256 * 1024;
static struct ctl *C;

static int receiver(void *arg)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain, .spin_us = 1000000 };
	struct shmrpc_node *n;
	char b[64];
	int len;

	(void)arg;
	pn_pin(1);
	o.ring_bytes = ring_bytes;
	if ((C->err = shmrpc_open("r", &o, &n)))
		return 1;
	pn_barrier(&C->bar, 2);
	for (;;) {
		len = shmrpc_recv(n, b, sizeof(b), NULL, 1000);
		if (len == 4 && !memcmp(b, "stop", 4))
			break;
		if (len >= 0)
			atomic_fetch_add(&C->got, 1);
	}
	shmrpc_close(n);
	return 0;
}

int main(int argc, char **argv)
{
	struct shmrpc_opts o = { .sz = sizeof(o) };
	uint64_t iters = 200, i;
	int64_t *first, *warm, t0, t1, t2;
	struct shmrpc_node *n;
	char name[32], msg[64] = "hello";
	pid_t pid;
	int err = 0, a;

	for (a = 1; a + 1 < argc; a += 2) {
		if (!strcmp(argv[a], "--iters"))
			iters = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--ring"))
			ring_bytes = (uint32_t)strtoul(argv[a + 1], NULL, 0);
	}
	C = pn_shared(sizeof(*C));
	first = calloc(iters, sizeof(*first));
	warm = calloc(iters, sizeof(*warm));
	pn_domain(domain, sizeof(domain), "conn");
	o.domain = domain;
	o.ring_bytes = ring_bytes;
	pid = pn_fork(receiver, NULL);
	pn_pin(0);
	pn_barrier(&C->bar, 2);
	for (i = 0; i < iters && !err; i++) {
		snprintf(name, sizeof(name), "s%llu", (unsigned long long)i);
		if ((err = shmrpc_open(name, &o, &n)))
			break;
		getppid(); /* marker for strace */
		t0 = pn_now();
		err = shmrpc_send(n, "r", msg, sizeof(msg), -1);
		t1 = pn_now();
		getppid();
		if (!err)
			err = shmrpc_send_flags(n, "r", msg, sizeof(msg), -1, 0);
		t2 = pn_now();
		first[i] = t1 - t0;
		warm[i] = t2 - t1;
		while (!err && atomic_load(&C->got) < 2 * (i + 1))
			pn_relax();
		shmrpc_close(n);
	}
	if (!shmrpc_open("s-stop", &o, &n)) {
		shmrpc_send(n, "r", "stop", 4, -1);
		shmrpc_close(n);
	}
	pn_wait(pid);
	if (err) {
		fprintf(stderr, "failed at %llu: %s\n", (unsigned long long)i, strerror(-err));
		return 1;
	}
	pn_sort(first, iters);
	pn_sort(warm, iters);
	printf("first send: median %.1f us  p10 %.1f p90 %.1f | warm send median %.2f us | ring "
	       "%u KiB, %llu iterations\n",
	       (double)pn_q(first, iters, 0.5) / 1e3, (double)pn_q(first, iters, 0.1) / 1e3,
	       (double)pn_q(first, iters, 0.9) / 1e3, (double)pn_q(warm, iters, 0.5) / 1e3,
	       ring_bytes / 1024, (unsigned long long)iters);
	return 0;
}
