// SPDX-License-Identifier: MIT
/*
 * shmrpc-demo: a guided tour. Starts node processes in a fresh domain,
 * exchanges messages, measures latency (against futex(2) in the same run),
 * throughput and memory, kills a node, and leaves /dev/shm clean.
 *
 * The parent is node "planner"; forked children are "sensor" (echoes and
 * sinks), "logger" and "actuator" (broadcast receivers; actuator is the one
 * that gets SIGKILLed). Children take commands as messages, and die with
 * the parent (tests/test_pdeath.c).
 *
 * --domain NAME and --hold SECONDS are for watching it with shmrpc-top: a
 * known domain, and traffic that lasts long enough to be seen (each step
 * that exchanges messages goes on for SECONDS; the nodes stay SECONDS before
 * they leave).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmrpc.h"
#include "version.h"

#define PINGS 5000
#define STREAM 1000000
#define BCASTS 1000
#define GAP_US 300 /* between pings in sleeping mode: the peer goes to sleep */

static struct shmrpc_opts opts = { .sz = sizeof(opts) };
static char domain[SHMRPC_NAME_MAX + 1];
static double hold_s; /* --hold */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void pause_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static void die(const char *what, int rc)
{
	const char *why = shmrpc_last_error();

	fprintf(stderr, "shmrpc-demo: %s: %s\n", what, why[0] ? why : strerror(rc < 0 ? -rc : rc));
	exit(1);
}

/* ------------------------------------------------------------ children */

static void child_loop(const char *name)
{
	char cmd[64], from[SHMRPC_NAME_MAX + 1];
	static char buf[65536];
	struct shmrpc_node *n;
	long i, count, got;
	int rc;

	rc = shmrpc_open(name, &opts, &n);
	if (rc)
		die("child open", rc);
	for (;;) {
		rc = shmrpc_recv(n, cmd, sizeof(cmd) - 1, from, -1);
		if (rc < 0)
			die("child recv", rc);
		cmd[rc] = '\0';
		if (sscanf(cmd, "echo %ld", &count) == 1) {
			for (i = 0; i < count; i++) {
				rc = shmrpc_recv(n, buf, sizeof(buf), from, -1);
				if (rc < 0 || (rc = shmrpc_send(n, from, buf, (size_t)rc, -1)))
					die("echo", rc);
			}
		} else if (sscanf(cmd, "sink %ld", &count) == 1 ||
			   sscanf(cmd, "hear %ld", &count) == 1) {
			for (got = 0; got < count; got++) {
				rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 5000);
				if (rc < 0 || (cmd[0] == 'h' && *(long *)buf != got))
					break; /* broadcasts must come in order */
			}
			snprintf(buf, sizeof(buf), "%ld", got);
			shmrpc_send(n, from, buf, strlen(buf) + 1, -1);
		} else if (!strcmp(cmd, "quit")) {
			break;
		}
	}
	shmrpc_close(n);
	exit(0);
}

/*
 * fork(), the child dying with the demo (PR_SET_PDEATHSIG): a demo killed
 * or crashed leaves no node process behind, blocked forever in a receive.
 * Called from the main thread only: the signal follows the thread that
 * forked, not the process.
 */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the demo died before the prctl */
			_exit(1);
	}
	return pid;
}

static pid_t spawn(const char *name)
{
	pid_t pid = fork_child();

	if (pid == 0)
		child_loop(name);
	return pid;
}

/* ------------------------------------------------------------ numbers */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	return v[(int)(p / 100.0 * (n - 1) + 0.5)];
}

static void print_lat(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("    %-34s median %6.2f us   p99 %7.2f us   p99.9 %7.2f us\n", what, pct(v, n, 50),
	       pct(v, n, 99), pct(v, n, 99.9));
}

/* One-way latency of @count pings: half the round trip through the
 * "sensor" echo node. */
static void ping_pong(struct shmrpc_node *n, double *lat, int count, int gap_us)
{
	char cmd[32], buf[64] = { 0 };
	int i, rc;

	snprintf(cmd, sizeof(cmd), "echo %d", count);
	if ((rc = shmrpc_send(n, "sensor", cmd, strlen(cmd), -1)))
		die("send", rc);
	for (i = 0; i < count; i++) {
		double t0 = now_us();

		if ((rc = shmrpc_send(n, "sensor", buf, sizeof(buf), -1)) ||
		    (rc = shmrpc_recv(n, buf, sizeof(buf), NULL, 5000)) < 0)
			die("ping", rc);
		lat[i] = (now_us() - t0) / 2;
		if (gap_us)
			pause_us(gap_us);
	}
}

/* The same ping-pong over bare futex(2) words, for a same-run ratio. */
static void futex_ping_pong(double *lat)
{
	_Atomic uint32_t *w =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int i;

	if (w == MAP_FAILED)
		die("mmap", errno);
	w[0] = w[1] = 0;
	pid = fork_child();
	if (pid == 0) {
		for (i = 1; i <= PINGS; i++) {
			while (atomic_load(&w[0]) != (uint32_t)i)
				syscall(SYS_futex, &w[0], FUTEX_WAIT, i - 1, NULL, NULL, 0);
			atomic_store(&w[1], (uint32_t)i);
			syscall(SYS_futex, &w[1], FUTEX_WAKE, 1, NULL, NULL, 0);
		}
		_exit(0);
	}
	for (i = 1; i <= PINGS; i++) {
		double t0 = now_us();

		atomic_store(&w[0], (uint32_t)i);
		syscall(SYS_futex, &w[0], FUTEX_WAKE, 1, NULL, NULL, 0);
		while (atomic_load(&w[1]) != (uint32_t)i)
			syscall(SYS_futex, &w[1], FUTEX_WAIT, i - 1, NULL, NULL, 0);
		lat[i - 1] = (now_us() - t0) / 2;
		pause_us(GAP_US);
	}
	waitpid(pid, NULL, 0);
	munmap((void *)w, 4096);
}

/* Allocated bytes and number of this domain's files in /dev/shm. */
static long shm_usage(long *files)
{
	char prefix[128], path[512];
	struct dirent *e;
	struct stat st;
	long bytes = 0;
	DIR *d = opendir("/dev/shm");

	*files = 0;
	snprintf(prefix, sizeof(prefix), "shmrpc.%s.", domain);
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (!stat(path, &st)) {
			bytes += (long)st.st_blocks * 512;
			(*files)++;
		}
	}
	if (d)
		closedir(d);
	return bytes;
}

/* ------------------------------------------------------------ the tour */

static void step_join(struct shmrpc_node **out, pid_t *kids)
{
	static const char *const names[] = { "sensor", "logger", "actuator" };
	char list[8][SHMRPC_NAME_MAX + 1];
	double t0 = now_us();
	int i, n, rc;

	/* Fork before this process opens a node (and so runs the library's
	 * peer-watcher thread): a child forked from a threaded process may
	 * only call async-signal-safe functions in theory, and in practice
	 * ASan's allocator lock, held by another thread at the fork, then
	 * deadlocks the child (seen in test_tools under ASan). */
	for (i = 0; i < 3; i++)
		kids[i] = spawn(names[i]);
	if ((rc = shmrpc_open("planner", &opts, out)))
		die("open", rc);
	for (i = 0; i < 3; i++)
		if ((rc = shmrpc_wait_node(*out, names[i], 5000)))
			die("wait_node", rc);
	printf("[1] join: 4 processes joined domain \"%s\" in %.2f ms (backend %s)\n", domain,
	       (now_us() - t0) / 1000, shmrpc_backend(*out));
	if (hold_s > 0)
		printf("    watch it from another terminal: shmrpc-top --domain %s\n", domain);
	n = shmrpc_nodes(*out, list, 8);
	printf("    shmrpc_nodes():");
	for (i = 0; i < n && i < 8; i++)
		printf(" %s", list[i]);
	printf("\n");
}

/* --hold: the sleeping ping-pong goes on (unmeasured) until hold_s seconds
 * have passed since @t0 (us). */
static void hold_pings(struct shmrpc_node *n, double t0)
{
	static double scratch[PINGS];
	long rounds = 0;

	while (now_us() - t0 < hold_s * 1e6) {
		ping_pong(n, scratch, PINGS / 10, GAP_US);
		rounds++;
	}
	if (rounds)
		printf("    (held: %ld more pings, 300 us apart, over %.1f s)\n",
		       rounds * (PINGS / 10), (now_us() - t0) / 1e6);
}

static void step_latency(struct shmrpc_node *n)
{
	static double awake[PINGS], asleep[PINGS], fx[PINGS];
	double t0 = now_us();
	int rc;

	if ((rc = shmrpc_send(n, "sensor", "echo 0", 6, -1)))
		die("first send", rc);
	printf("[2] first send to a new peer (creates the ring): %.1f us\n", now_us() - t0);
	printf("[3] ping-pong, 64 B, %d round trips each, one-way = RTT/2:\n", PINGS);
	ping_pong(n, awake, PINGS, 0);
	print_lat("back to back (peer spinning)", awake, PINGS);
	t0 = now_us();
	ping_pong(n, asleep, PINGS, GAP_US);
	print_lat("300 us apart (peer asleep)", asleep, PINGS);
	hold_pings(n, t0);
	futex_ping_pong(fx);
	print_lat("same, bare futex(2), same run", fx, PINGS);
	printf("    asleep vs futex(2): %.2fx the median (a VM's vCPU wake-up dominates both)\n",
	       pct(asleep, PINGS, 50) / pct(fx, PINGS, 50));
}

/* One round of @count 64-byte messages to the "sensor" sink; its reply
 * (how many it got) in @reply. */
static void stream_round(struct shmrpc_node *n, long count, char *reply, size_t len)
{
	char cmd[32], buf[64] = { 0 };
	long i;
	int rc;

	snprintf(cmd, sizeof(cmd), "sink %ld", count);
	if ((rc = shmrpc_send(n, "sensor", cmd, strlen(cmd), -1)))
		die("stream", rc);
	for (i = 0; i < count; i++)
		if ((rc = shmrpc_send(n, "sensor", buf, sizeof(buf), -1)))
			die("stream", rc);
	if ((rc = shmrpc_recv(n, reply, len, NULL, 10000)) < 0)
		die("stream reply", rc);
}

static void step_stream(struct shmrpc_node *n)
{
	struct shmrpc_stats a, b;
	char reply[32];
	double t0, dt;
	long more = 0;

	shmrpc_stats(n, &a);
	t0 = now_us();
	stream_round(n, STREAM, reply, sizeof(reply));
	dt = now_us() - t0;
	shmrpc_stats(n, &b);
	printf("[4] streaming 64 B: %s of %d delivered in %.0f ms = %.2f M msgs/s\n", reply, STREAM,
	       dt / 1000, STREAM / dt);
	printf("    sender: %lu wakes issued, %lu skipped (receiver awake), %lu times ring full\n",
	       (unsigned long)(b.wakes_sent - a.wakes_sent),
	       (unsigned long)(b.wakes_skipped - a.wakes_skipped),
	       (unsigned long)(b.send_full - a.send_full));
	while (now_us() - t0 < hold_s * 1e6) { /* --hold */
		stream_round(n, STREAM / 10, reply, sizeof(reply));
		more += atol(reply);
	}
	if (more)
		printf("    (held: %ld more delivered over %.1f s)\n", more, (now_us() - t0) / 1e6);
}

static void step_broadcast(struct shmrpc_node *n)
{
	static const char *const who[] = { "logger", "actuator" };
	char cmd[32], reply[32];
	long i;
	int k, rc;

	snprintf(cmd, sizeof(cmd), "hear %d", BCASTS);
	for (k = 0; k < 2; k++)
		shmrpc_send(n, who[k], cmd, strlen(cmd), -1);
	shmrpc_send(n, "sensor", "sink 0", 6, -1); /* sensor answers at once */
	shmrpc_recv(n, reply, sizeof(reply), NULL, 5000);
	for (i = 0; i < BCASTS; i++)
		if ((rc = shmrpc_broadcast(n, &i, sizeof(i), 5000)) != 3)
			die("broadcast", rc < 0 ? rc : -EPIPE);
	printf("[5] broadcast: %d messages to 3 nodes;", BCASTS);
	for (k = 0; k < 2; k++) {
		rc = shmrpc_recv(n, reply, sizeof(reply), NULL, 5000);
		printf(" %s got %s in order%s", who[k], rc > 0 ? reply : "?", k ? "\n" : ",");
	}
	/* the sensor was not listening for them: drain its copies */
	snprintf(cmd, sizeof(cmd), "sink %d", BCASTS);
	shmrpc_send(n, "sensor", cmd, strlen(cmd), -1);
	shmrpc_recv(n, reply, sizeof(reply), NULL, 5000);
}

static void step_crash(struct shmrpc_node *n, pid_t victim)
{
	long files_before, files_after;
	double t0, gone = -1;
	int rc;

	shm_usage(&files_before);
	t0 = now_us();
	kill(victim, SIGKILL);
	/* No daemon: the planner holds a pidfd of every peer it has a ring
	 * with; its watcher thread reclaims the dead one. Watch it happen. */
	while (now_us() - t0 < 1e6) {
		shm_usage(&files_after);
		if (files_after < files_before - 2) {
			gone = now_us() - t0;
			break;
		}
		pause_us(20);
	}
	waitpid(victim, NULL, 0);
	rc = shmrpc_send(n, "actuator", "hello?", 6, 1000);
	printf("[7] crash: actuator SIGKILLed; its slot, segment and rings gone after %.0f us\n",
	       gone);
	printf("    (%ld -> %ld files, reclaimed by the planner's peer watcher, no daemon);\n",
	       files_before, files_after);
	printf("    a send to it now: %s; is_local(actuator) = %d\n",
	       rc ? strerror(-rc) : "accepted", shmrpc_is_local(n, "actuator"));
}

static void usage(FILE *f)
{
	fprintf(f, "usage: shmrpc-demo [--domain NAME] [--hold SECONDS] [-h] [-V]\n"
		   "A guided tour of libshmrpc: four node processes join a domain, then\n"
		   "latency (against futex(2)), streaming, broadcast, memory, a SIGKILLed\n"
		   "node cleaned up, and /dev/shm left clean.\n"
		   "\n"
		   "      --domain NAME     the domain to use (default demo-PID); watch it\n"
		   "                        with: shmrpc-top --domain NAME\n"
		   "      --hold SECONDS    keep each step going for SECONDS (idle nodes after\n"
		   "                        the join, the sleeping ping-pong, the streaming,\n"
		   "                        the nodes before they leave), 0 to 3600\n"
		   "  -h, --help            this help\n"
		   "  -V, --version         version\n");
}

/* A usage error: one line that says what, exit status 2. */
static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "shmrpc-demo: %s: %s (see --help)\n", what, arg);
	return 2;
}

static bool name_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");

	return n && !s[n] && n <= SHMRPC_NAME_MAX && s[0] != '.';
}

/* 0: run; 1: done (help, version); 2: bad usage. */
static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "domain", required_argument, NULL, 'D' },
		{ "hold", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", lo, NULL)) != -1) {
		switch (c) {
		case 'D':
			if (!name_ok(optarg))
				return bad_usage("bad domain name ([A-Za-z0-9._-], 1 to 63, "
						 "not starting with '.')",
						 optarg);
			snprintf(domain, sizeof(domain), "%s", optarg);
			break;
		case 'H':
			errno = 0;
			hold_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(hold_s >= 0 && hold_s <= 3600))
				return bad_usage("bad --hold (seconds, 0 to 3600)", optarg);
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("shmrpc-demo (libshmrpc) %s\n", SHMRPC_TOOLS_VERSION);
			return 1;
		case ':':
			return bad_usage("option needs an argument", argv[optind - 1]);
		default:
			return bad_usage("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument", argv[optind]);
	return 0;
}

/* --hold: the nodes stay, idle, for hold_s seconds. */
static void hold_idle(const char *what)
{
	if (hold_s <= 0)
		return;
	printf("    (holding %.1f s: %s)\n", hold_s, what);
	fflush(stdout);
	pause_us((long)(hold_s * 1e6));
}

int main(int argc, char **argv)
{
	struct shmrpc_node *n;
	long files, bytes;
	pid_t kids[3];
	int i, rc = parse(argc, argv);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (!domain[0])
		snprintf(domain, sizeof(domain), "demo-%d", (int)getpid());
	opts.domain = domain;
	printf("libshmrpc demo: %s\n\n", "shared memory, woken by the kernel");
	step_join(&n, kids);
	hold_idle("four idle nodes");
	step_latency(n);
	step_stream(n);
	step_broadcast(n);
	bytes = shm_usage(&files);
	printf("[6] memory: %ld files of the domain occupy %.0f KiB in /dev/shm (allocated blocks,\n"
	       "    all reserved when each file was created: a full /dev/shm is -ENOSPC then)\n",
	       files, bytes / 1024.0);
	step_crash(n, kids[2]);
	hold_idle("three nodes left, about to leave");
	for (i = 0; i < 2; i++)
		shmrpc_send(n, i ? "logger" : "sensor", "quit", 4, 1000);
	for (i = 0; i < 2; i++)
		waitpid(kids[i], NULL, 0);
	shmrpc_close(n);
	bytes = shm_usage(&files);
	printf("[8] shutdown: every node closed; left in /dev/shm: %s\n",
	       files ? "SOMETHING (bug)" : "nothing");
	return files ? 1 : 0;
}
