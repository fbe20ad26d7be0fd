// SPDX-License-Identifier: MIT
/*
 * Helpers of the bridge's tests: see harness_bridge.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_bridge.h"

#ifndef SHMRPC_BRIDGE_BIN
#define SHMRPC_BRIDGE_BIN "build/tools/shmrpc-bridge"
#endif
#define PIDFILE "/tmp/shmrpc-test-bridge.pids"
#define NO_NS_RC 77

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ sweep */

static bool is_nats_orphan(pid_t pid)
{
	char path[64], buf[256] = "";
	FILE *f;
	int ppid = 0;
	bool nats;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	nats = fread(buf, 1, sizeof(buf) - 1, f) > 0 && strstr(buf, "nats-server");
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!nats || !(f = fopen(path, "r")))
		return false;
	if (fscanf(f, "%*d (%*[^)]) %*c %d", &ppid) != 1)
		ppid = -1;
	fclose(f);
	return ppid == 1; /* its test is gone */
}

void tb_sweep(void)
{
	FILE *f = fopen(PIDFILE, "r");
	int pid;

	if (!f)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		if (pid > 1 && is_nats_orphan(pid)) {
			fprintf(stderr, "sweep: killing nats-server %d left by an earlier run\n",
				pid);
			kill(pid, SIGKILL);
		}
	fclose(f);
	unlink(PIDFILE);
}

static void pid_note(pid_t pid)
{
	FILE *f = fopen(PIDFILE, "a");

	if (f) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
}

/* ------------------------------------------------------------ nats */

static int ports_read(const char *dir, pid_t pid, struct tb_nats *s)
{
	char path[160], buf[512] = "", *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/nats-server_%d.ports", dir, (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strstr(buf, "\"nats\":[\"");
	if (!p || sscanf(p + 9, "%63[^\"]", s->url) != 1)
		return -1;
	p = strstr(buf, "\"cluster\":[\"");
	if (p && sscanf(p + 12, "%63[^\"]", s->cluster) != 1)
		return -1;
	unlink(path);
	return 0;
}

int tb_nats_start(struct tb_nats *s, const char *routes)
{
	const char *dir = "/tmp";
	char *argv[16];
	int argc = 0, i;

	memset(s, 0, sizeof(*s));
	snprintf(s->log, sizeof(s->log), "/tmp/shmrpc-test-nats.%d.%ld.log", (int)getpid(),
		 (long)(th_now_ms() * 1000) % 100000000);
	argv[argc++] = "nats-server";
	argv[argc++] = "-a";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "-p";
	argv[argc++] = "-1";
	argv[argc++] = "--ports_file_dir";
	argv[argc++] = (char *)dir;
	if (routes) {
		argv[argc++] = "--cluster";
		argv[argc++] = "nats://127.0.0.1:-1";
		argv[argc++] = "--cluster_name";
		argv[argc++] = "shmrpc-test";
		if (*routes) {
			argv[argc++] = "--routes";
			argv[argc++] = (char *)routes;
		}
	}
	argv[argc] = NULL;
	s->pid = th_fork_raw();
	if (s->pid == 0) {
		int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0)
			dup2(fd, 1), dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	pid_note(s->pid);
	for (i = 0; i < 500; i++) { /* 5 s */
		if (!ports_read(dir, s->pid, s))
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
			break;
		sleep_ms(10);
	}
	fprintf(stderr, "nats-server did not start (log %s)\n", s->log);
	tb_nats_kill(s);
	return -1;
}

void tb_nats_kill(struct tb_nats *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

/* ------------------------------------------------------------ hosts */

static int host_main(void *arg)
{
	struct th_gate *g = arg;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")) {
		fprintf(stderr, "host: mount namespace: %s\n", strerror(errno));
		return NO_NS_RC;
	}
	th_gate_open(g);
	for (;;)
		pause();
}

int tb_host_start(struct tb_host *h, const char *name)
{
	struct th_gate g;
	int rc = -1;

	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	if (geteuid() != 0)
		return -1;
	th_gate_init(&g);
	h->pid = th_fork(host_main, &g);
	if (th_gate_wait(&g, 5000) == 0)
		rc = 0;
	th_gate_close(&g);
	if (rc) {
		th_wait(h->pid, 1000);
		h->pid = 0;
	}
	return rc;
}

int tb_host_enter(const struct tb_host *h)
{
	char path[64];
	int fd, rc;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)h->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNS);
	close(fd);
	return rc;
}

struct run_arg {
	const struct tb_host *h;
	int (*fn)(void *);
	void *arg;
};

static int run_main(void *arg)
{
	struct run_arg *r = arg;

	if (tb_host_enter(r->h)) {
		fprintf(stderr, "setns into host %s: %s\n", r->h->name, strerror(errno));
		return 99;
	}
	return r->fn(r->arg);
}

pid_t tb_run(const struct tb_host *h, int (*fn)(void *arg), void *arg)
{
	struct run_arg r = { h, fn, arg };

	return th_fork(run_main, &r); /* r is copied with the process */
}

static int shm_entries(const struct tb_host *h)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/root/dev/shm", (int)h->pid);
	if (!(dir = opendir(path)))
		return -1;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.') {
			fprintf(stderr, "host %s: left in /dev/shm: %s\n", h->name, e->d_name);
			n++;
		}
	closedir(dir);
	return n;
}

int tb_host_stop(struct tb_host *h)
{
	int rc = 0, st;

	if (h->bridge > 0) {
		kill(h->bridge, SIGTERM);
		st = th_wait(h->bridge, 5000);
		if (st != 0) {
			fprintf(stderr, "host %s: bridge exit %d (log %s)\n", h->name, st, h->log);
			rc = -1;
		}
		h->bridge = 0;
	}
	if (h->pid > 0) {
		if (shm_entries(h) != 0)
			rc = -1;
		kill(h->pid, SIGKILL);
		th_wait(h->pid, 5000);
		h->pid = 0;
	}
	return rc;
}

/* ------------------------------------------------------------ bridges */

int tb_bridge_start(struct tb_host *h, const char *domain, const char *urls, const char *extra)
{
	const char *path = SHMRPC_BRIDGE_BIN, *other = getenv("SHMRPC_TEST_BRIDGE_B");
	char *argv[40], ex[256], bin[4096];
	int argc = 0, fd;
	char *save = NULL, *tok;

	/* By hand, for bridges of two versions together: host b runs
	 * $SHMRPC_TEST_BRIDGE_B (an older build of shmrpc-bridge). */
	if (other && *other && !strcmp(h->name, "b"))
		path = other;
	/* setns() moves the child's cwd to the host's root: a full path */
	if (!realpath(path, bin))
		return -1;

	snprintf(h->log, sizeof(h->log), "/tmp/shmrpc-test-bridge.%s.%s.log", domain, h->name);
	snprintf(ex, sizeof(ex), "%s", extra ? extra : "");
	argv[argc++] = bin;
	argv[argc++] = "-d";
	argv[argc++] = (char *)domain;
	argv[argc++] = "-s";
	argv[argc++] = (char *)urls;
	argv[argc++] = "-H";
	argv[argc++] = h->name;
	argv[argc++] = "--heartbeat-ms";
	argv[argc++] = "100";
	/* Hosts die after 2 s of silence here, not 300 ms: a loaded CI
	 * machine can stall that long, and a host declared dead by a stall
	 * fails a test that is about something else. A test about host death
	 * passes its own --dead-after (later options win). */
	argv[argc++] = "--dead-after";
	argv[argc++] = "20";
	argv[argc++] = "--log";
	argv[argc++] = "debug";
	for (tok = strtok_r(ex, " ", &save); tok && argc < 38; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	/* the log is emptied here, not in the child: a wait that reads it
	 * right after the fork must not find the last run's lines */
	fd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	h->bridge = th_fork_raw();
	if (h->bridge == 0) {
		if (tb_host_enter(h))
			_exit(98);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd);
	return tb_log_wait(h, "bridging domain=", 5000);
}

int tb_bridge_kill(struct tb_host *h)
{
	if (h->bridge > 0) {
		kill(h->bridge, SIGKILL);
		th_wait(h->bridge, 5000);
		h->bridge = 0;
	}
	return 0;
}

bool tb_log_has(const struct tb_host *h, const char *text)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(h->log, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

static bool has_all(const char *line, const char *words)
{
	char w[256], *save = NULL, *tok;

	snprintf(w, sizeof(w), "%s", words);
	for (tok = strtok_r(w, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (!strstr(line, tok))
			return false;
	return true;
}

uint64_t tb_log_sum(const struct tb_host *h, const char *words)
{
	char line[1024];
	const char *c;
	uint64_t sum = 0;
	FILE *f = fopen(h->log, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (has_all(line, words) && (c = strstr(line, " count=")))
			sum += strtoull(c + 7, NULL, 10);
	fclose(f);
	return sum;
}

int tb_log_wait(const struct tb_host *h, const char *text, int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;

	while (!tb_log_has(h, text)) {
		if (th_now_ms() > end) {
			fprintf(stderr, "host %s: no \"%s\" in %s\n", h->name, text, h->log);
			return -1;
		}
		sleep_ms(5);
	}
	return 0;
}

/* ------------------------------------------------------------ status */

static void unpack(char *dst, const _Atomic uint64_t *w)
{
	uint64_t v[8];
	int k;

	for (k = 0; k < 8; k++)
		v[k] = atomic_load_explicit(&w[k], memory_order_relaxed);
	memcpy(dst, v, 63);
	dst[63] = '\0';
}

static bool row_copy(const struct br_status_row *r, struct tb_row *o)
{
	uint32_t s1 = atomic_load_explicit(&r->seq, memory_order_acquire);

	o->kind = atomic_load_explicit(&r->kind, memory_order_relaxed);
	unpack(o->name, r->name);
	unpack(o->host, r->host);
	o->fwd_msgs = atomic_load_explicit(&r->fwd_msgs, memory_order_relaxed);
	o->dlv_msgs = atomic_load_explicit(&r->dlv_msgs, memory_order_relaxed);
	o->lost = atomic_load_explicit(&r->lost, memory_order_relaxed);
	o->dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed);
	o->stalls = atomic_load_explicit(&r->stalls, memory_order_relaxed);
	o->queued = atomic_load_explicit(&r->queued, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return !(s1 & 1) && s1 == atomic_load_explicit(&r->seq, memory_order_relaxed);
}

/* Host h's status segment of @domain, mapped (NULL: none); its size. */
static struct br_status_hdr *status_map(const struct tb_host *h, const char *domain, size_t *size)
{
	char path[192];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/root/dev/shm/" BR_STATUS_PREFIX "%s", (int)h->pid,
		 domain);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) || st.st_size < (off_t)sizeof(struct br_status_hdr)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	*size = (size_t)st.st_size;
	return p == MAP_FAILED ? NULL : p;
}

int tb_status_bcast(const struct tb_host *h, const char *domain, struct tb_bcast *out)
{
	struct br_status_hdr *hdr;
	size_t size;
	uint32_t s1;

	if (!(hdr = status_map(h, domain, &size)))
		return -1;
	do {
		s1 = atomic_load_explicit(&hdr->seq, memory_order_acquire);
		out->bcasts = atomic_load_explicit(&hdr->bcasts, memory_order_relaxed);
		out->sent = atomic_load_explicit(&hdr->bcast_sent, memory_order_relaxed);
		out->split = atomic_load_explicit(&hdr->bcast_split, memory_order_relaxed);
		out->gone_lost = atomic_load_explicit(&hdr->gone_lost, memory_order_relaxed);
		out->gone_dropped = atomic_load_explicit(&hdr->gone_dropped, memory_order_relaxed);
		out->bad_msgs = atomic_load_explicit(&hdr->bad_msgs, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
	} while ((s1 & 1) || s1 != atomic_load_explicit(&hdr->seq, memory_order_relaxed));
	munmap(hdr, size);
	return 0;
}

int tb_status_row(const struct tb_host *h, const char *domain, const char *node, struct tb_row *out)
{
	struct br_status_hdr *hdr;
	size_t size;
	int rc = -1;
	uint32_t i, used;

	if (!(hdr = status_map(h, domain, &size)))
		return -1;
	used = atomic_load_explicit(&hdr->used, memory_order_relaxed);
	for (i = 0; hdr->magic == BR_STATUS_MAGIC && i < used && i < hdr->rows &&
		    sizeof(*hdr) + (i + 1) * sizeof(struct br_status_row) <= size;
	     i++) {
		const struct br_status_row *r =
			(const void *)((const char *)(hdr + 1) + i * sizeof(struct br_status_row));

		while (!row_copy(r, out))
			sleep_ms(1);
		if (out->kind && !strcmp(out->name, node)) {
			rc = 0;
			break;
		}
	}
	munmap(hdr, size);
	return rc;
}

/* ------------------------------------------------------------ top */

#ifndef SHMRPC_TOP_BIN
#define SHMRPC_TOP_BIN "build/tools/shmrpc-top"
#endif

int tb_top(const struct tb_host *h, const char *domain, char *out, size_t cap)
{
	char bin[4096], path[96];
	int fd, n;
	pid_t pid;

	snprintf(path, sizeof(path), "/tmp/shmrpc-test-top.%s.out", domain);
	if (!realpath(SHMRPC_TOP_BIN, bin))
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	pid = th_fork_raw();
	if (pid == 0) {
		if (tb_host_enter(h))
			_exit(98);
		dup2(fd, 1);
		execl(bin, bin, "-b", "-n", "1", "-d", "0.3", "--domain", domain, (char *)NULL);
		_exit(127);
	}
	if (th_wait(pid, 10000) != 0) {
		close(fd);
		return -1;
	}
	n = (int)pread(fd, out, cap - 1, 0);
	close(fd);
	unlink(path);
	if (n < 0)
		return -1;
	out[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------ cases */

struct tb_nats tb_server;
const char *tb_skip_why;

int tb_group_setup(void **state)
{
	(void)state;
	tb_sweep();
	if (geteuid() != 0)
		tb_skip_why = "hosts are mount namespaces: root only";
	else if (access(SHMRPC_BRIDGE_BIN, X_OK))
		tb_skip_why = "no " SHMRPC_BRIDGE_BIN " (libnats-dev missing at build time)";
	else if (tb_nats_start(&tb_server, NULL))
		tb_skip_why = "nats-server does not start here (apt-get install nats-server)";
	return 0;
}

int tb_group_teardown(void **state)
{
	(void)state;
	tb_nats_kill(&tb_server);
	return 0;
}

int tb_case_setup(void **state)
{
	struct tb_case *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	th_dom_init(&t->dom);
	*state = t;
	return 0;
}

int tb_case_teardown(void **state)
{
	struct tb_case *t = *state;
	int rc = tb_host_stop(&t->a) | tb_host_stop(&t->b);

	free(t);
	return rc ? -1 : 0;
}

void tb_hosts_up(struct tb_case *t, const char *urls_a, const char *urls_b, const char *extra)
{
	if (tb_skip_why) {
		print_message("skip: %s\n", tb_skip_why);
		skip();
	}
	if (tb_host_start(&t->a, "a") || tb_host_start(&t->b, "b")) {
		print_message("skip: no mount namespace here\n");
		skip();
	}
	assert_int_equal(
		tb_bridge_start(&t->a, t->dom.name, urls_a ? urls_a : tb_server.url, extra), 0);
	assert_int_equal(
		tb_bridge_start(&t->b, t->dom.name, urls_b ? urls_b : tb_server.url, extra), 0);
}

struct shmrpc_node *tb_open(const char *domain, const char *name)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = domain };
	struct shmrpc_node *n = NULL;
	int rc = shmrpc_open(name, &o, &n);

	if (rc)
		fprintf(stderr, "open %s: %s (%s)\n", name, strerror(-rc), shmrpc_last_error());
	return n;
}

uint32_t tb_len_of(uint64_t seq, uint32_t max)
{
	uint64_t s = seq * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(th_rand(&s) % (max + 1));
}

void tb_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}
