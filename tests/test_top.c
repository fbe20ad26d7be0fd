// SPDX-License-Identifier: MIT
/*
 * shmrpc-top against real nodes: forked processes join a fresh domain and
 * exchange known numbers of messages while the tool (the built binary,
 * found next to this test) watches them in batch text, JSON and
 * Prometheus form; the ncurses screen is driven through tmux (send-keys,
 * capture-pane); nodes are SIGKILLed; segments are truncated or filled with
 * garbage, registries are planted by hand; and the SIGBUS guard is tested
 * on its own by linking the tool's core.
 *
 * Rates are checked for sanity (the count sent between two refreshes,
 * divided by an interval the test bounds), counts exactly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "layout.h" /* white box: layout.h, to plant files */
#include "names.h"
#include "seg.h"
#include "mini_json.h"
#include "top.h"

#define K1 1500 /* sent before the tool starts */
#define K2 2000 /* sent between its first two refreshes */
#define K3 300	/* from a sender whose ring appears between them */
#define MSG 48	/* payload bytes */
#define OUT_MAX (1 << 20)

static char tool[PATH_MAX];

/* ------------------------------------------------------------ helpers */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* The shmrpc-top built with this test: BUILD/tests/test_top -> BUILD/tools. */
static void find_tool(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		abort();
	self[n] = '\0';
	snprintf(tool, sizeof(tool), "%s/../tools/shmrpc-top", dirname(self));
}

/* Run the tool with @args; its stdout (and stderr) in a malloc'd string.
 * Returns its exit status (or -1). */
static int run_tool(const char *args, char **out)
{
	char cmd[PATH_MAX + 512];
	size_t n = 0, r;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "exec %s %s 2>&1", tool, args);
	*out = calloc(1, OUT_MAX);
	p = popen(cmd, "r");
	if (!p || !*out)
		return -1;
	while (n < OUT_MAX - 1 && (r = fread(*out + n, 1, OUT_MAX - 1 - n, p)) > 0)
		n += r;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The line of @text whose first word is @word (a node row), copied. */
static bool row_of(const char *text, const char *word, char *line, size_t len)
{
	size_t wl = strlen(word);
	const char *p = text;

	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t ll = end ? (size_t)(end - p) : strlen(p);

		if (ll > wl && !strncmp(p, word, wl) && p[wl] == ' ') {
			snprintf(line, len, "%.*s", (int)ll, p);
			return true;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* Whitespace-separated field @i (0-based) of @line. */
static void field(const char *line, int i, char *out, size_t len)
{
	char buf[1024], *save, *tok;
	int k = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	out[0] = '\0';
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save), k++)
		if (k == i) {
			snprintf(out, len, "%s", tok);
			return;
		}
}

/* A number as the table prints it: "1234", "12.5", "123k", "-" (= -1). */
static double num_of(const char *s)
{
	char *end;
	double v;

	if (!strcmp(s, "-"))
		return -1;
	v = strtod(s, &end);
	if (*end == 'k')
		v *= 1e3;
	else if (*end == 'M')
		v *= 1e6;
	return v;
}

/* ------------------------------------------------------------ nodes */

/* Shared with the forked nodes: the parent moves phase on, nodes count. */
struct shared {
	_Atomic int phase, ready, quit;
	_Atomic long got, sent;
};
static struct shared *sh;
static const struct th_dom *node_dom; /* the domain forked nodes join */

struct role {
	const char *name;
	const char *to; /* NULL: receive until quit */
	int sends[4];	/* messages to send at phase 1, 2, 3 */
	bool idle;	/* join, then never call the library again */
	pid_t pid;
};

#define RECEIVER(n)         \
	{                   \
		.name = (n) \
	}
#define SENDER(n, dst, s1, s2)                                          \
	{                                                               \
		.name = (n), .to = (dst), .sends = { 0, (s1), (s2), 0 } \
	}
#define IDLE(n)                           \
	{                                 \
		.name = (n), .idle = true \
	}

static void shared_init(const struct th_dom *d)
{
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	node_dom = d;
}

#define CHILD_LIFE_MS 90000 /* a node left behind by a failed test ends itself */

static void wait_quit(void)
{
	double end = th_now_ms() + CHILD_LIFE_MS;

	while (!atomic_load(&sh->quit))
		if (sleep_ms(2), th_now_ms() > end)
			_exit(1);
}

static void receive_all(struct shmrpc_node *n)
{
	char buf[4096], from[SHMRPC_NAME_MAX + 1];
	double end = th_now_ms() + CHILD_LIFE_MS;

	while (!atomic_load(&sh->quit)) {
		int rc = shmrpc_recv(n, buf, sizeof(buf), from, 20);

		if (th_now_ms() > end)
			_exit(1);

		if (rc >= 0) {
			CHILD_CHECK(rc == MSG);
			atomic_fetch_add(&sh->got, 1);
		} else {
			CHILD_CHECK(rc == -ETIMEDOUT);
		}
	}
}

static int node_child(void *arg)
{
	const struct role *r = arg;
	struct shmrpc_node *n = th_open(node_dom, r->name);
	char buf[MSG];
	int p, i;

	CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
	CHILD_CHECK(n);
	if (r->to)
		CHILD_CHECK_RC(shmrpc_wait_node(n, r->to, 5000), 0);
	atomic_fetch_add(&sh->ready, 1);
	if (r->idle) {
		wait_quit(); /* its segment may be broken now: do not touch it */
		shmrpc_close(n);
		return 0;
	}
	if (!r->to) {
		receive_all(n);
	} else {
		for (p = 1; p <= 3; p++) {
			while (atomic_load(&sh->phase) < p && !atomic_load(&sh->quit))
				sleep_ms(1);
			for (i = 0; i < r->sends[p]; i++) {
				th_fill(buf, MSG, 1, (uint64_t)i);
				CHILD_CHECK_RC(shmrpc_send(n, r->to, buf, MSG, 5000), 0);
			}
			atomic_fetch_add(&sh->sent, r->sends[p]);
		}
		wait_quit();
	}
	shmrpc_close(n);
	return 0;
}

/* Every child of the running test, for top_teardown after a failure. */
static pid_t kids[8];
static int nkids;

static pid_t fork_kid(int (*fn)(void *), void *arg)
{
	pid_t pid = th_fork(fn, arg);

	assert_true(pid > 0 && nkids < 8);
	kids[nkids++] = pid;
	return pid;
}

static void start(struct role *roles, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		roles[i].pid = fork_kid(node_child, &roles[i]);
		/* one at a time: slots (and so --sort pid ties) in role order */
		while (atomic_load(&sh->ready) < i + 1)
			sleep_ms(1);
	}
}

/* Wait until the receivers got @got and the senders sent @sent. */
static void wait_counts(long got, long sent)
{
	double end = th_now_ms() + 20000;

	while ((atomic_load(&sh->got) < got || atomic_load(&sh->sent) < sent) && th_now_ms() < end)
		sleep_ms(1);
	assert_int_equal(atomic_load(&sh->got), got);
	assert_int_equal(atomic_load(&sh->sent), sent);
}

static void stop(struct role *roles, int n)
{
	int i;

	atomic_store(&sh->quit, 1);
	for (i = 0; i < n; i++)
		if (roles[i].pid > 0)
			assert_int_equal(th_wait(roles[i].pid, 10000), 0);
	munmap(sh, sizeof(*sh));
	sh = NULL;
	nkids = 0;
}

static const char *expected_backend(void)
{
	const char *b = getenv("SHMRPC_BACKEND");

	return b && *b ? b : shmrpc_backend_default();
}

/* /dev/shm path of the segment of the node named @name in domain @d. */
static bool seg_of(const char *d, const char *name, char *path, size_t len)
{
	char pre[128], p[512];
	struct shmrpc__node_hdr h;
	struct dirent *e;
	bool found = false;
	DIR *dir = opendir("/dev/shm");
	int fd;

	snprintf(pre, sizeof(pre), "shmrpc.%s.", d);
	while (dir && !found && (e = readdir(dir))) {
		if (strncmp(e->d_name, pre, strlen(pre)) || !strstr(e->d_name, ".node."))
			continue;
		snprintf(p, sizeof(p), "/dev/shm/%s", e->d_name);
		fd = open(p, O_RDONLY);
		if (fd < 0)
			continue;
		if (pread(fd, &h, sizeof(h), 0) == sizeof(h) && h.magic == SHMRPC__NODE_MAGIC &&
		    !strcmp(h.name, name)) {
			snprintf(path, len, "%s", p);
			found = true;
		}
		close(fd);
	}
	if (dir)
		closedir(dir);
	return found;
}

/* The name key of @d's registry (lib/names.c). */
static void key_of(const char *d, uint8_t key[SHMRPC__KEY_BYTES])
{
	struct shmrpc__reg_hdr h;
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", d);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &h, sizeof(h), 0), sizeof(h));
	close(fd);
	memcpy(key, h.name_key, SHMRPC__KEY_BYTES);
}

/* "/dev/shm" + the name lib/names.c gives node (@a, @b) (@ring false) or
 * ring (@a, @b) -> (@c, @e) of domain @dom under @key. */
static void shm_name(char *buf, size_t len, const char *dom, const uint8_t *key, bool ring,
		     uint32_t a, uint32_t b, uint32_t c, uint32_t e)
{
	char p[SHMRPC__PATH_MAX];

	if (ring)
		shmrpc__ring_path_key(p, dom, key, a, b, c, e);
	else
		shmrpc__node_path_key(p, dom, key, a, b);
	snprintf(buf, len, "/dev/shm%s", p);
}

static void write_file(const char *path, const void *data, size_t len, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	if (len)
		assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

/* Remove the files of domain @d that a test planted; returns how many. */
static int unlink_domain(const char *d)
{
	char pre[128], path[512];
	struct dirent *e;
	DIR *dir = opendir("/dev/shm");
	int n = 0;

	snprintf(pre, sizeof(pre), "shmrpc.%s.", d);
	while (dir && (e = readdir(dir))) {
		if (strncmp(e->d_name, pre, strlen(pre)))
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		n += !unlink(path);
	}
	if (dir)
		closedir(dir);
	return n;
}

/* One text block: it ends at its second empty line. */
static bool read_block(FILE *p, char *buf, size_t len)
{
	char line[2048];
	size_t n = 0;
	int empty = 0;

	buf[0] = '\0';
	while (empty < 2 && fgets(line, sizeof(line), p)) {
		empty += line[0] == '\n';
		if (n + strlen(line) < len) {
			memcpy(buf + n, line, strlen(line) + 1);
			n += strlen(line);
		}
	}
	return empty == 2;
}

/* Field @i of the row of node @name in @text, as a number. */
static double col(const char *text, const char *name, int i)
{
	char row[1024], f[64];

	if (!row_of(text, name, row, sizeof(row)))
		fail_msg("no row for node %s in:\n%s", name, text);
	field(row, i, f, sizeof(f));
	return num_of(f);
}

/* Columns of a single-domain table (no DOMAIN column). */
enum {
	C_NAME,
	C_PID,
	C_STATE,
	C_UPTIME,
	C_MSGIN,
	C_MSGOUT,
	C_MBIN,
	C_MBOUT,
	C_WAKE,
	C_SKIP,
	C_SLEEP,
	C_FULL,
	C_RIN,
	C_ROUT
};

/* ------------------------------------------------------------ batch text */

static void test_batch_reports_nodes_and_rates(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("rx"), SENDER("tx", "rx", K1, K2) };
	char cmd[PATH_MAX + 128], row[1024], f[64], want[64];
	char *b1 = calloc(1, OUT_MAX), *b2 = calloc(1, OUT_MAX);
	double rate;
	FILE *p;

	assert_true(b1 && b2);
	shared_init(d);
	start(roles, 2);
	atomic_store(&sh->phase, 1);
	wait_counts(K1, K1);
	snprintf(cmd, sizeof(cmd), "exec %s -b -n 2 -d 2 --domain %s", tool, d->name);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_true(read_block(p, b1, OUT_MAX));
	atomic_store(&sh->phase, 2);
	wait_counts(K1 + K2, K1 + K2);
	assert_true(read_block(p, b2, OUT_MAX));
	assert_int_equal(pclose(p), 0);

	/* First refresh, one delay after the tool's first look: who is there,
	 * and rates already (nothing was sent meanwhile: 0, not "-"). */
	assert_non_null(strstr(b1, "nodes 2 live, 0 dead, 0 other"));
	snprintf(want, sizeof(want), "backend %s", expected_backend());
	assert_non_null(strstr(b1, want));
	assert_true(row_of(b1, "tx", row, sizeof(row)));
	field(row, C_STATE, f, sizeof(f));
	assert_string_equal(f, "live");
	assert_int_equal(col(b1, "tx", C_PID), roles[1].pid);
	assert_int_equal(col(b1, "rx", C_PID), roles[0].pid);
	assert_true(col(b1, "tx", C_MSGOUT) == 0);
	assert_true(col(b1, "rx", C_MSGIN) == 0);
	assert_int_equal(col(b1, "tx", C_ROUT), 1);
	assert_int_equal(col(b1, "tx", C_RIN), 0);
	assert_int_equal(col(b1, "rx", C_RIN), 1);
	assert_int_equal(col(b1, "rx", C_ROUT), 0);

	/* Second: K2 messages in an interval of at least 2 s (the tool sleeps
	 * to an absolute time) and, on a sane machine, well under 4 s. */
	rate = col(b2, "tx", C_MSGOUT);
	if (rate < K2 / 4.0 || rate > K2 / 2.0)
		fail_msg("tx MSGOUT/s %.0f, want %d..%d:\n%s", rate, K2 / 4, K2 / 2, b2);
	rate = col(b2, "rx", C_MSGIN);
	if (rate < K2 / 4.0 || rate > K2 / 2.0)
		fail_msg("rx MSGIN/s %.0f, want %d..%d:\n%s", rate, K2 / 4, K2 / 2, b2);
	assert_true(col(b2, "tx", C_MSGIN) == 0 && col(b2, "rx", C_MSGOUT) == 0);
	assert_true(col(b2, "tx", C_MBOUT) > 0 && col(b2, "tx", C_MBOUT) <= K2 * MSG / 2e6 + 0.01);
	assert_true(col(b2, "tx", C_SKIP) >= 0 && col(b2, "tx", C_SKIP) <= 100);
	assert_true(col(b2, "rx", C_SKIP) < 0); /* it published nothing */
	assert_true(col(b2, "tx", C_FULL) == 0);
	stop(roles, 2);
	free(b1);
	free(b2);
}

/* ------------------------------------------------------------ JSON */

static const struct mj *jnode(const struct mj *doc, const char *name)
{
	const struct mj *doms = mj_get(doc, "domains"), *nodes;
	size_t i, k;

	for (i = 0; doms && i < doms->n; i++) {
		nodes = mj_get(&doms->kids[i], "nodes");
		for (k = 0; nodes && k < nodes->n; k++)
			if (mj_str(&nodes->kids[k], "name") &&
			    !strcmp(mj_str(&nodes->kids[k], "name"), name))
				return &nodes->kids[k];
	}
	return NULL;
}

static double jpath(const struct mj *node, const char *obj, const char *key)
{
	return mj_num(mj_get(node, obj), key, -1);
}

static void read_doc(FILE *p, struct mj *doc)
{
	char *line = NULL;
	size_t cap = 0;

	assert_true(getline(&line, &cap, p) > 0);
	if (mj_parse(line, doc))
		fail_msg("not one JSON document: %s", line);
	free(line);
}

static void check_first_doc(const struct mj *doc)
{
	const struct mj *tx = jnode(doc, "tx"), *rx = jnode(doc, "rx"), *tx2 = jnode(doc, "tx2");

	assert_string_equal(mj_str(doc, "schema"), "shmrpc-top/1");
	/* rates over the delay before the first output (nothing sent in it) */
	assert_true(mj_num(doc, "interval", -1) >= 3.0);
	assert_true(tx && rx && tx2);
	assert_int_equal(jpath(tx, "totals", "msgs_out"), K1);
	assert_int_equal(jpath(tx, "totals", "bytes_out"), K1 * MSG);
	assert_int_equal(jpath(rx, "totals", "msgs_in"), K1);
	assert_int_equal(jpath(tx2, "totals", "msgs_out"), 0);
	assert_int_equal(mj_num(tx2, "rings_out", -1), 0);
	assert_int_equal(jpath(tx, "rates", "msgs_out"), 0);
	assert_int_equal(jpath(tx, "deltas", "msgs_out"), 0);
}

static void check_second_doc(const struct mj *doc, const struct role *roles)
{
	const struct mj *tx = jnode(doc, "tx"), *rx = jnode(doc, "rx"), *tx2 = jnode(doc, "tx2");
	const struct mj *ring, *sum = mj_get(doc, "summary");
	double t = mj_num(doc, "interval", -1), share;

	assert_true(tx && rx && tx2 && t >= 3.0);
	/* exact counts */
	assert_int_equal(jpath(tx, "totals", "msgs_out"), K1 + K2);
	assert_int_equal(jpath(tx, "totals", "bytes_out"), (K1 + K2) * MSG);
	assert_int_equal(jpath(tx, "deltas", "msgs_out"), K2);
	assert_int_equal(jpath(tx2, "totals", "msgs_out"), K3);
	assert_int_equal(jpath(tx2, "deltas", "msgs_out"), K3); /* its ring is new */
	assert_int_equal(jpath(rx, "totals", "msgs_in"), K1 + K2 + K3);
	assert_int_equal(jpath(rx, "totals", "bytes_in"), (K1 + K2 + K3) * MSG);
	assert_int_equal(jpath(rx, "deltas", "msgs_in"), K2 + K3);
	assert_int_equal(jpath(rx, "deltas", "msgs_out"), 0);
	/* rates agree with the deltas over the interval the tool measured */
	assert_true(fabs(jpath(tx, "rates", "msgs_out") * t - K2) < 1);
	assert_true(fabs(jpath(rx, "rates", "msgs_in") * t - (K2 + K3)) < 1);
	assert_true(fabs(jpath(rx, "rates", "bytes_in") * t - (K2 + K3) * MSG) < 1);
	assert_true(fabs(mj_num(sum, "msgs_per_s", -1) * t - (K2 + K3)) < 1);
	share = jpath(tx, "rates", "skip_share");
	assert_true(share >= 0 && share <= 1);
	/* who, where */
	assert_int_equal(mj_num(rx, "pid", 0), roles[0].pid);
	assert_string_equal(mj_str(rx, "state"), "live");
	assert_string_equal(mj_str(rx, "backend"), expected_backend());
	assert_int_equal(mj_num(sum, "nodes_live", -1), 3);
	assert_int_equal(mj_num(rx, "rings_in", -1), 2);
	assert_int_equal(mj_num(tx2, "rings_out", -1), 1);
	ring = &mj_get(tx2, "rings")->kids[0];
	assert_string_equal(mj_str(ring, "dir"), "out");
	assert_string_equal(mj_str(ring, "peer"), "rx");
	assert_string_equal(mj_str(ring, "status"), "ok");
	assert_int_equal(jpath(ring, "tx", "msgs"), K3);
	assert_int_equal(mj_num(ring, "depth", -1), 0);
	assert_int_equal(mj_num(ring, "size", -1), 256 * 1024);
}

static void test_json_counts_exact(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("rx"), SENDER("tx", "rx", K1, K2),
				SENDER("tx2", "rx", 0, K3) };
	char cmd[PATH_MAX + 128];
	struct mj d1, d2;
	double done;
	FILE *p;

	shared_init(d);
	start(roles, 3);
	atomic_store(&sh->phase, 1);
	wait_counts(K1, K1);
	snprintf(cmd, sizeof(cmd), "exec %s --json -n 2 -d 3 --domain %s", tool, d->name);
	p = popen(cmd, "r");
	assert_non_null(p);
	read_doc(p, &d1);
	atomic_store(&sh->phase, 2);
	wait_counts(K1 + K2 + K3, K1 + K2 + K3);
	done = th_now_ms() / 1000;
	read_doc(p, &d2);
	assert_int_equal(pclose(p), 0);
	check_first_doc(&d1);
	/* The counts must all have been in place before the second scan. */
	if (mj_num(&d2, "monotonic", 0) < done)
		fail_msg(
			"sending took longer than the 3 s refresh: machine too slow for this test");
	check_second_doc(&d2, roles);
	mj_free(&d1);
	mj_free(&d2);
	stop(roles, 3);
}

/* ------------------------------------------------------------ Prometheus */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Check the text exposition format; returns the number of samples. */
static int prom_check(char *text)
{
	char *save, *line, fam[128] = "", help[128] = "", **series = NULL;
	int n = 0, i;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[16], *sp, *end;
		size_t nl;

		if (sscanf(line, "# HELP %127s", name) == 1) {
			assert_string_not_equal(name, help); /* once per family */
			snprintf(help, sizeof(help), "%s", name);
			continue;
		}
		if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			assert_string_equal(name, help); /* HELP, then TYPE */
			assert_true(!strcmp(type, "gauge") || !strcmp(type, "counter"));
			snprintf(fam, sizeof(fam), "%s", name);
			continue;
		}
		nl = strcspn(line, "{ ");
		if (strncmp(line, fam, nl) || nl != strlen(fam))
			fail_msg("sample outside its family %s: %s", fam, line);
		sp = strrchr(line, ' ');
		assert_non_null(sp);
		assert_true(line[nl] == ' ' || (line[nl] == '{' && sp[-1] == '}'));
		strtod(sp + 1, &end);
		if (*end || end == sp + 1)
			fail_msg("bad value: %s", line);
		series = realloc(series, (size_t)(n + 1) * sizeof(*series));
		series[n++] = strndup(line, (size_t)(sp - line));
	}
	qsort(series, (size_t)n, sizeof(*series), cmp_str);
	for (i = 1; i < n; i++)
		if (!strcmp(series[i - 1], series[i]))
			fail_msg("duplicate series %s", series[i]);
	for (i = 0; i < n; i++)
		free(series[i]);
	free(series);
	return n;
}

/* Value of the first sample whose line starts with @pre and contains @has. */
static double prom_value(const char *text, const char *pre, const char *has)
{
	const char *p = text;

	while ((p = strstr(p, pre))) {
		const char *end = strchr(p, '\n');
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", end ? (int)(end - p) : (int)strlen(p), p);
		if ((p == text || p[-1] == '\n') && (!has || strstr(line, has)))
			return strtod(strrchr(line, ' ') + 1, NULL);
		p++;
	}
	fail_msg("no sample %s... %s", pre, has ? has : "");
	return -1;
}

static void test_prom_exposition(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("rx"), SENDER("tx", "rx", K1, 0) };
	char args[256], pre[256], *out, *copy;

	shared_init(d);
	start(roles, 2);
	atomic_store(&sh->phase, 1);
	wait_counts(K1, K1);
	snprintf(args, sizeof(args), "--prom --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	copy = strdup(out);
	assert_true(prom_check(copy) > 20);
	free(copy);
#define PRE(fam, node) snprintf(pre, sizeof(pre), fam "{domain=\"%s\",node=\"%s\",", d->name, node)
	PRE("shmrpc_node_messages_sent_total", "tx");
	assert_int_equal(prom_value(out, pre, NULL), K1);
	PRE("shmrpc_node_bytes_sent_total", "tx");
	assert_int_equal(prom_value(out, pre, NULL), K1 * MSG);
	PRE("shmrpc_node_messages_received_total", "rx");
	assert_int_equal(prom_value(out, pre, NULL), K1);
	PRE("shmrpc_node_up", "rx");
	assert_int_equal(prom_value(out, pre, NULL), 1);
	PRE("shmrpc_node_rings", "rx");
	assert_int_equal(prom_value(out, pre, "direction=\"in\""), 1);
#undef PRE
	snprintf(pre, sizeof(pre), "shmrpc_ring_messages_total{domain=\"%s\",", d->name);
	assert_int_equal(prom_value(out, pre, "from=\"tx\",to=\"rx\""), K1);
	snprintf(pre, sizeof(pre), "shmrpc_ring_depth_bytes{domain=\"%s\",", d->name);
	assert_int_equal(prom_value(out, pre, "from=\"tx\",to=\"rx\""), 0);
	snprintf(pre, sizeof(pre), "shmrpc_domain_up{domain=\"%s\"}", d->name);
	assert_int_equal(prom_value(out, pre, NULL), 1);
	free(out);
	stop(roles, 2);
}

/* ------------------------------------------------------------ no trace */

/* Watching must cost the watched nothing: reading a hole of a tmpfs file
 * through a mapping allocates it. The library reserves every page of what
 * it creates (a registry of 65536 slots: 8 MiB), but shmrpc-top reads only
 * data extents anyway. The domain's allocated bytes stay what they were. */
static void test_watching_allocates_nothing(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("rx"), SENDER("tx", "rx", 10, 0) };
	char args[256], *out;
	uint64_t before;

	d->opts.max_nodes = 65536;
	shared_init(d);
	start(roles, 2);
	atomic_store(&sh->phase, 1);
	wait_counts(10, 10);
	before = th_shm_bytes(d->name);
	snprintf(args, sizeof(args), "-b -n 2 -d 0.1 -R --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	assert_non_null(strstr(out, "nodes 2 live"));
	free(out);
	snprintf(args, sizeof(args), "--json -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	free(out);
	assert_int_equal(th_shm_bytes(d->name), before);
	stop(roles, 2);
}

/* ------------------------------------------------------------ the screen */

static char tmux_sock[64];

static int tmux(const char *fmt, ...)
{
	char args[1024], cmd[1200];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "tmux -L %s -f /dev/null %s", tmux_sock, args);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void capture(char *buf, size_t len)
{
	char cmd[256];
	size_t n = 0, r;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "tmux -L %s capture-pane -p -t top 2>/dev/null", tmux_sock);
	buf[0] = '\0';
	p = popen(cmd, "r");
	if (!p)
		return;
	while (n < len - 1 && (r = fread(buf + n, 1, len - 1 - n, p)) > 0)
		n += r;
	buf[n] = '\0';
	pclose(p);
}

/* Wait until the screen shows @needle (and not @absent, if given). */
static bool screen_shows(char *buf, size_t len, const char *needle, const char *absent)
{
	double end = th_now_ms() + 8000;

	do {
		capture(buf, len);
		if (strstr(buf, needle) && (!absent || !strstr(buf, absent))) {
			/* tmux may have caught the screen mid-update: look once
			 * more, a moment later, at the finished picture */
			sleep_ms(100);
			capture(buf, len);
			return true;
		}
		sleep_ms(50);
	} while (th_now_ms() < end);
	fprintf(stderr, "screen never showed \"%s\":\n%s\n", needle, buf);
	return false;
}

/* Where the row of @name starts on the screen (-1: not there). */
static long row_pos(const char *screen, const char *name)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", name);
	p = strstr(screen, pat);
	return p ? p - screen : -1;
}

/* ncurses keeps its allocations until exit; LeakSanitizer would make a
 * sanitized tool's exit status say so. Suppress exactly those. */
static void lsan_suppress_ncurses(char *env, size_t len)
{
	char path[] = "/tmp/shmrpc-top-lsan-XXXXXX";
	int fd = mkstemp(path);

	env[0] = '\0';
	if (fd < 0)
		return;
	if (write(fd, "leak:libncursesw\nleak:libtinfo\n", 31) == 31)
		snprintf(env, len, "LSAN_OPTIONS=suppressions=%s ", path);
	close(fd);
}

static void test_screen_draws_sorts_selects_quits(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("beta"), SENDER("alpha", "beta", 1000, 0),
				SENDER("gamma", "beta", 10, 0) };
	static char scr[65536];
	char env[128];

	if (system("tmux -V >/dev/null 2>&1"))
		skip();
	shared_init(d);
	start(roles, 3);
	atomic_store(&sh->phase, 1);
	wait_counts(1010, 1010);
	lsan_suppress_ncurses(env, sizeof(env));
	snprintf(tmux_sock, sizeof(tmux_sock), "shmrpc-top-test-%d-draw", (int)getpid());
	/* The shell reports the tool's exit status on the screen once it quits
	 * (tmux itself does not always learn it: it may not reap the pane's
	 * process before the pane is reported dead). */
	assert_int_equal(tmux("new-session -d -s top -x 160 -y 40 \"env TERM=screen %s%s "
			      "--domain %s -d 0.5; echo top exited: \\$?; sleep 60\"",
			      env, tool, d->name),
			 0);

	/* draws: header, headings, every node, the help line */
	assert_true(screen_shows(scr, sizeof(scr), "gamma", NULL));
	assert_non_null(strstr(scr, "nodes 3 live, 0 dead"));
	assert_non_null(strstr(scr, "NAME"));
	assert_non_null(strstr(scr, "q quit"));
	assert_true(row_pos(scr, "alpha") > 0 && row_pos(scr, "beta") > 0);

	/* sorts: by name (n), then the other way (n again) */
	tmux("send-keys -t top n");
	assert_true(screen_shows(scr, sizeof(scr), "<NAME", NULL));
	assert_true(row_pos(scr, "alpha") < row_pos(scr, "beta") &&
		    row_pos(scr, "beta") < row_pos(scr, "gamma"));
	tmux("send-keys -t top n");
	assert_true(screen_shows(scr, sizeof(scr), ">NAME", NULL));
	assert_true(row_pos(scr, "gamma") < row_pos(scr, "beta") &&
		    row_pos(scr, "beta") < row_pos(scr, "alpha"));
	tmux("send-keys -t top n");
	assert_true(screen_shows(scr, sizeof(scr), "<NAME", NULL));

	/* selects beta (second row) and shows its rings: from alpha and gamma */
	tmux("send-keys -t top Home Down Enter");
	assert_true(screen_shows(scr, sizeof(scr), "node beta", NULL));
	assert_non_null(strstr(scr, "in  alpha"));
	assert_non_null(strstr(scr, "in  gamma"));
	assert_non_null(strstr(scr, "1000 ")); /* alpha's messages */
	assert_non_null(strstr(scr, "/256K"));
	assert_non_null(strstr(scr, "[....")); /* an empty depth bar */
	assert_non_null(strstr(scr, "rings in 2 out 0"));

	/* back, then filter by name */
	tmux("send-keys -t top Escape");
	assert_true(screen_shows(scr, sizeof(scr), "<NAME", "node beta"));
	tmux("send-keys -t top / g a m Enter");
	assert_true(screen_shows(scr, sizeof(scr), "filter: gam", "\nalpha "));
	assert_true(row_pos(scr, "gamma") > 0 && row_pos(scr, "beta") < 0);

	/* quits on q, with status 0 */
	tmux("send-keys -t top q");
	assert_true(screen_shows(scr, sizeof(scr), "top exited: ", NULL));
	assert_non_null(strstr(scr, "top exited: 0\n"));
	tmux("kill-server");
	tmux_sock[0] = '\0';
	if (env[0]) /* "LSAN_OPTIONS=suppressions=PATH " */
		unlink(strchr(env, '=') + strlen("=suppressions="));
	stop(roles, 3);
}

/* The line of the screen that starts with the word @head, its words
 * separated by one space. */
static bool screen_line(const char *scr, const char *head, char *line, size_t len)
{
	char raw[1024];
	size_t n = 0;
	int i;

	if (!row_of(scr, head, raw, sizeof(raw)))
		return false;
	for (i = 0; raw[i] && n + 1 < len; i++)
		if (raw[i] != ' ' || (raw[i + 1] && raw[i + 1] != ' '))
			line[n++] = raw[i];
	line[n] = '\0';
	return true;
}

/* Start the screen in a @cols x @rows terminal on domain @dom. */
static void screen_start(const char *env, int cols, int rows, const char *dom)
{
	static int screens;

	/* A server of its own each time: a killed one may still be going
	 * away with its socket, and a client that meets it fails ("server
	 * exited unexpectedly"). */
	snprintf(tmux_sock, sizeof(tmux_sock), "shmrpc-top-test-%d-%d", (int)getpid(), ++screens);
	assert_int_equal(tmux("new-session -d -s top -x %d -y %d \"env TERM=screen %s%s "
			      "--domain %s -d 0.5; echo top exited: \\$?; sleep 60\"",
			      cols, rows, env, tool, dom),
			 0);
}

static void screen_quit(char *scr, size_t len)
{
	tmux("send-keys -t top q");
	assert_true(screen_shows(scr, len, "top exited: ", NULL));
	assert_non_null(strstr(scr, "top exited: 0\n"));
	tmux("kill-server");
}

/* Every line of @scr is at most @cols wide, and the header is whole. */
static void check_whole(const char *scr, int cols)
{
	char want[64];
	const char *p = scr;

	while (*p) {
		size_t n = strcspn(p, "\n");

		if ((int)n > cols)
			fail_msg("a line wider than %d:\n%s", cols, scr);
		p += n + (p[n] == '\n');
	}
	snprintf(want, sizeof(want), "backend %s", expected_backend());
	assert_non_null(strstr(scr, want)); /* the end of the header's first line */
	assert_non_null(strstr(scr, "nodes 2 live, 0 dead, 1 other"));
	assert_non_null(strstr(scr, "reaper "));
	assert_non_null(strstr(scr, "? help"));
}

/*
 * At 80x24 the table holds the columns that fit, by priority, none cut; the
 * header wraps instead of losing its end; a corrupt node's reason is
 * whole; the sorted column is shown whatever its rank. At 200 columns,
 * every column.
 */
static void test_screen_fits_width(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("beta"), SENDER("alpha", "beta", 1000, 0), IDLE("t1") };
	static char scr[65536];
	char env[128], seg[512], line[1024], f[64];
	int i;

	if (system("tmux -V >/dev/null 2>&1"))
		skip();
	shared_init(d);
	start(roles, 3);
	atomic_store(&sh->phase, 1);
	wait_counts(1000, 1000);
	assert_true(seg_of(d->name, "t1", seg, sizeof(seg)));
	assert_int_equal(truncate(seg, 100), 0); /* t1 is idle: it never looks again */
	lsan_suppress_ncurses(env, sizeof(env));

	screen_start(env, 80, 24, d->name);
	assert_true(screen_shows(scr, sizeof(scr), "\nt1 ", NULL));
	check_whole(scr, 80);
	assert_true(screen_line(scr, "NAME", line, sizeof(line)));
	assert_string_equal(line, "NAME PID STATE MSGIN/s >MSGOUT/s MBIN/s MBOUT/s WAKE/s");
	assert_true(screen_line(scr, "t1", line, sizeof(line)));
	assert_non_null(strstr(line, "corrupt truncated: 100 of "));
	assert_non_null(strstr(line, " bytes"));
	assert_true(screen_line(scr, "alpha", line, sizeof(line)));
	field(line, 7, f, sizeof(f)); /* WAKE/s, the last one */
	assert_true(f[0] != '\0');
	/* sorted by outbound rings, ranked late: shown, something else not */
	tmux("send-keys -t top y");
	assert_true(screen_shows(scr, sizeof(scr), ">ROUT", NULL));
	assert_true(screen_line(scr, "NAME", line, sizeof(line)));
	assert_null(strstr(line, "WAKE/s"));
	check_whole(scr, 80);
	screen_quit(scr, sizeof(scr));

	screen_start(env, 200, 50, d->name);
	assert_true(screen_shows(scr, sizeof(scr), "\nt1 ", NULL));
	check_whole(scr, 200);
	assert_true(screen_line(scr, "NAME", line, sizeof(line)));
	for (i = 0; i < TOP_COL_COUNT; i++)
		if (i != TOP_COL_DOMAIN && !strstr(line, top_cols[i].head))
			fail_msg("no %s at 200 columns:\n%s", top_cols[i].head, scr);
	assert_true(screen_line(scr, "alpha", line, sizeof(line)));
	field(line, TOP_COL_RINGS_OUT - 1, f, sizeof(f)); /* ROUT (DOMAIN is not shown) */
	assert_string_equal(f, "1");
	/* the header takes two lines again */
	assert_true(screen_line(scr, "shmrpc-top", line, sizeof(line)));
	assert_non_null(strstr(line, "backend"));
	screen_quit(scr, sizeof(scr));
	tmux_sock[0] = '\0';
	if (env[0])
		unlink(strchr(env, '=') + strlen("=suppressions="));

	kill(roles[2].pid, SIGKILL);
	th_wait(roles[2].pid, 5000);
	roles[2].pid = 0;
	stop(roles, 3); /* beta leaves last: it reclaims t1 */
}

/* The table alone, at 80 columns, several domains: DOMAIN ranks after
 * STATE; a reason too long for where counters start takes UPTIME's place. */
static void test_table_fits_width(void **state)
{
	struct top_domain dom = { .name = "a-domain-name" };
	struct top_node n[2] = {
		{ .name = "ok", .pid = 42, .uptime = 3, .seg_ok = true },
		{ .name = "broken",
		  .pid = 43,
		  .uptime = 3,
		  .state = TOP_NODE_CORRUPT,
		  .why = "slot state 12345678901234567890" },
	};
	struct top_snap s = { .doms = &dom, .ndoms = 1, .nodes = n, .nnodes = 2 };
	struct top_view v = { .sort = TOP_COL_MSGS_OUT, .show_domain = true, .width = 80 };
	bool shown[TOP_COL_COUNT];
	char line[512];

	(void)state;
	top_cols_fit(&v, shown);
	assert_true(shown[TOP_COL_NAME] && shown[TOP_COL_DOMAIN] && shown[TOP_COL_STATE]);
	assert_false(shown[TOP_COL_RINGS_OUT]);
	top_fmt_head(line, sizeof(line), &v);
	assert_true(strlen(line) <= 80);
	top_fmt_row(line, sizeof(line), &s, &n[1], &v);
	assert_true(strlen(line) <= 80);
	assert_non_null(strstr(line, "corrupt slot state 12345678901234567890"));
	v.width = 0; /* no limit: UPTIME stays, the reason follows it */
	top_fmt_row(line, sizeof(line), &s, &n[1], &v);
	assert_non_null(strstr(line, "3.0s slot state 12345678901234567890"));
	v.width = 60; /* too narrow even so: cut, and marked */
	top_fmt_row(line, sizeof(line), &s, &n[1], &v);
	assert_true(strlen(line) <= 60);
	assert_int_equal(line[strlen(line) - 1], '~');
}

/* ------------------------------------------------------------ crashes */

static void test_killed_node_gone_at_next_refresh(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("b"), SENDER("a", "b", 5, 0), RECEIVER("c") };
	char cmd[PATH_MAX + 128];
	const struct mj *c;
	struct shmrpc_node *cleaner;
	struct mj d1, d2;
	FILE *p;

	shared_init(d);
	start(roles, 3);
	atomic_store(&sh->phase, 1);
	wait_counts(5, 5);
	snprintf(cmd, sizeof(cmd), "exec %s --json -n 2 -d 1.5 --domain %s", tool, d->name);
	p = popen(cmd, "r");
	assert_non_null(p);
	read_doc(p, &d1);
	assert_true(jnode(&d1, "a") && jnode(&d1, "b") && jnode(&d1, "c"));
	assert_int_equal(mj_num(jnode(&d1, "a"), "rings_out", -1), 1);
	/* b has a peer (a watches it through a pidfd); c has none */
	kill(roles[0].pid, SIGKILL);
	kill(roles[2].pid, SIGKILL);
	assert_int_equal(th_wait(roles[0].pid, 5000), 128 + SIGKILL);
	assert_int_equal(th_wait(roles[2].pid, 5000), 128 + SIGKILL);
	roles[0].pid = roles[2].pid = 0;
	read_doc(p, &d2);
	assert_int_equal(pclose(p), 0);
	/* b: reclaimed by its peer, gone from the registry and from a's rings */
	assert_null(jnode(&d2, "b"));
	assert_string_equal(mj_str(jnode(&d2, "a"), "state"), "live");
	assert_int_equal(mj_num(jnode(&d2, "a"), "rings_out", -1), 0);
	/* c: nobody reclaims it (unless a reaper runs): shown dead, or gone */
	c = jnode(&d2, "c");
	if (c)
		assert_string_equal(mj_str(c, "state"), "dead");
	mj_free(&d1);
	mj_free(&d2);
	stop(roles, 3);
	cleaner = th_open(d, "cleaner"); /* its lookup reclaims c */
	assert_non_null(cleaner);
	assert_int_equal(shmrpc_is_local(cleaner, "c"), 0);
	shmrpc_close(cleaner);
}

/* ------------------------------------------------------------ broken files */

static void other_domain(const struct th_dom *d, const char *tag, char *name, size_t len)
{
	snprintf(name, len, "%s-%s", d->name, tag);
}

static void test_truncated_and_garbage_reported(void **state)
{
	struct th_dom *d = *state;
	struct role roles[] = { RECEIVER("ok"), IDLE("t1"), IDLE("t2") };
	char seg1[512], seg2[512], ring[512], reg[512], args[256], d2[96], d3[96], d4[96];
	uint8_t key[SHMRPC__KEY_BYTES];
	char row[1024], garbage[8192], want[600], *out;
	struct shmrpc__reg_hdr h;
	const struct mj *bad;
	struct mj doc;
	int fd;

	shared_init(d);
	start(roles, 3);
	assert_true(seg_of(d->name, "t1", seg1, sizeof(seg1)));
	assert_true(seg_of(d->name, "t2", seg2, sizeof(seg2)));
	/* t1's segment truncated, t2's header overwritten (their nodes are
	 * idle and never look at them again); a ring from t2 to ok planted */
	assert_int_equal(truncate(seg1, 100), 0);
	memset(garbage, 0xa5, sizeof(garbage));
	fd = open(seg2, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, garbage, 64, 0), 64);
	close(fd);
	key_of(d->name, key);
	shm_name(ring, sizeof(ring), d->name, key, true, 2, 1, 0, 1);
	write_file(ring, garbage, sizeof(garbage), sizeof(garbage));

	snprintf(args, sizeof(args), "-b -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	assert_true(row_of(out, "t1", row, sizeof(row)));
	assert_non_null(strstr(row, "corrupt"));
	assert_non_null(strstr(row, "truncated: 100 of"));
	assert_true(row_of(out, "t2", row, sizeof(row)));
	assert_non_null(strstr(row, "corrupt"));
	assert_non_null(strstr(row, "bad magic"));
	assert_true(row_of(out, "ok", row, sizeof(row)));
	assert_non_null(strstr(row, "live"));
	snprintf(want, sizeof(want), "problem: ring %s: corrupt: bad magic", ring + 9);
	assert_non_null(strstr(out, want));
	free(out);

	snprintf(args, sizeof(args), "--json -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	assert_int_equal(mj_parse(out, &doc), 0);
	assert_string_equal(mj_str(jnode(&doc, "t1"), "state"), "corrupt");
	assert_int_equal(mj_get(jnode(&doc, "t1"), "totals")->t, MJ_NULL);
	bad = mj_get(&mj_get(&doc, "domains")->kids[0], "corrupt_rings");
	assert_int_equal(bad->n, 1);
	assert_string_equal(mj_str(&bad->kids[0], "problem"), "bad magic");
	mj_free(&doc);
	free(out);

	/* Registries: garbage, truncated (a real header's first 100 bytes),
	 * empty (a creator that never sized it). */
	other_domain(d, "g", d2, sizeof(d2));
	other_domain(d, "t", d3, sizeof(d3));
	other_domain(d, "e", d4, sizeof(d4));
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d2);
	write_file(reg, garbage, 4096, 4096);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d->name);
	fd = open(reg, O_RDONLY);
	assert_int_equal(pread(fd, &h, sizeof(h), 0), sizeof(h));
	close(fd);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d3);
	write_file(reg, &h, 100, 100);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d4);
	write_file(reg, NULL, 0, 0);
	assert_int_equal(run_tool("-b -n 1", &out), 0); /* every domain on the host */
	snprintf(want, sizeof(want), "problem: domain %s: corrupt: bad magic\n", d2);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "problem: domain %s: corrupt: truncated: 100 bytes\n", d3);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "problem: domain %s: empty\n", d4);
	assert_non_null(strstr(out, want));
	free(out);
	assert_int_equal(unlink_domain(d2) + unlink_domain(d3) + unlink_domain(d4), 3);

	unlink(ring);
	kill(roles[1].pid, SIGKILL);
	kill(roles[2].pid, SIGKILL);
	th_wait(roles[1].pid, 5000);
	th_wait(roles[2].pid, 5000);
	roles[1].pid = roles[2].pid = 0;
	stop(roles, 3); /* ok leaves last: it reclaims t1 and t2 */
}

/* A registry written by hand: a half-created slot, a slot whose segment is
 * gone, one with a garbage name, one with a truncated segment, stray files,
 * and the reaper's fields. */
#define CRAFT_NONCE 0x12345678u
static const uint8_t craft_key[SHMRPC__KEY_BYTES] = "0123456789abcdef";

/* The event log of a crafted registry of @cap slots (its geometry set by
 * the caller): 1000 events claimed, the newest a garbage type, the one
 * before it a DEATH of "zz", the rest overwritten (their seq names other
 * indices). */
static void craft_events(struct shmrpc__reg_hdr *h, uint32_t cap)
{
	struct shmrpc__ev_entry *log = (void *)((char *)h + shmrpc__reg_evlog_off(cap)), *e;

	h->ev_head = 1000;
	e = &log[999 % SHMRPC__EV_LOG];
	e->seq = 1000;
	e->type = 9;
	memcpy(e->name, "yy", 2);
	e = &log[998 % SHMRPC__EV_LOG];
	e->seq = 999;
	e->type = SHMRPC_EV_DEATH;
	e->pid = 4242;
	e->id = (uint64_t)3 << 32 | 2;
	e->ns = (uint64_t)th_mono_ns();
	memcpy(e->name, "zz", 2);
	log[997 % SHMRPC__EV_LOG].seq = 5; /* another event's */
}

static void craft_registry(const char *dom, uint32_t reaper_pid, uint64_t beat)
{
	uint64_t size = shmrpc__reg_size(4);
	uint8_t *buf = calloc(1, size);
	struct shmrpc__reg_hdr *h = (void *)buf;
	struct shmrpc__slot *s = (void *)(h + 1);
	char path[512];
	int i;

	h->abi = SHMRPC__ABI;
	h->hdr_size = sizeof(*h);
	h->slot_size = sizeof(*s);
	h->ev_cap = SHMRPC__EV_LOG;
	h->ev_size = sizeof(struct shmrpc__ev_entry);
	h->capacity = 4;
	h->total_size = size;
	h->nonce = CRAFT_NONCE;
	memcpy(h->name_key, craft_key, sizeof(h->name_key));
	h->mode = 0600;
	h->reaper_pid = reaper_pid;
	h->reaper_mode = 1;
	h->reaper_beat = beat;
	h->reaped = 7;
	craft_events(h, 4);
	h->magic = SHMRPC__REG_MAGIC;
	for (i = 0; i < 4; i++) {
		s[i].pid = getpid();
		s[i].join_ns = (uint64_t)(th_now_ms() * 1e6);
		s[i].ring_bytes = 4096;
		s[i].backend = 1;
	}
	s[0].state = SHMRPC__SLOT_JOINING;
	s[0].gen = 1;
	memcpy(s[0].name, "j1", 2);
	s[1].state = SHMRPC__SLOT_LIVE;
	s[1].gen = 3;
	memcpy(s[1].name, "g1", 2);
	s[2].state = SHMRPC__SLOT_LIVE;
	s[2].gen = 1;
	memset(s[2].name, 0xff, sizeof(s[2].name));
	s[3].state = SHMRPC__SLOT_LIVE;
	s[3].gen = 2;
	memcpy(s[3].name, "c1", 2);
	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", dom);
	write_file(path, buf, size, (off_t)size);
	free(buf);
}

static void test_half_created_and_reaper(void **state)
{
	struct th_dom *d = *state;
	char path[512], args[256], row[1024], want[256], *out;
	uint64_t now = (uint64_t)(th_now_ms() / 1000);
	struct shmrpc__ring_hdr stray_hdr = { 0 }, *stray = &stray_hdr;

	craft_registry(d->name, (uint32_t)getpid(), now);
	shm_name(path, sizeof(path), d->name, craft_key, false, 3, 2, 0, 0);
	write_file(path, "x", 1, 100);
	shm_name(path, sizeof(path), d->name, craft_key, false, 9, 9, 0, 0);
	write_file(path, NULL, 0, 0);
	/* a complete ring of another registry (its nonce) */
	stray->magic = SHMRPC__RING_MAGIC;
	stray->nonce = 0xdeadbeef;
	shm_name(path, sizeof(path), d->name, craft_key, true, 0, 1, 1, 1);
	write_file(path, stray, sizeof(*stray), SHMRPC__PAGE + 4096);

	snprintf(args, sizeof(args), "-b -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	assert_true(row_of(out, "j1", row, sizeof(row)));
	assert_non_null(strstr(row, "joining"));
	assert_true(row_of(out, "g1", row, sizeof(row)));
	assert_non_null(strstr(row, "gone"));
	assert_non_null(strstr(row, "segment removed"));
	assert_true(row_of(out, "c1", row, sizeof(row)));
	assert_non_null(strstr(row, "truncated: 100 of"));
	assert_non_null(strstr(out, "bad name in the registry"));
	assert_non_null(strstr(out, "nodes 0 live, 1 dead, 3 other"));
	snprintf(want, sizeof(want), "reaper running (bpf, pid %d, reaped 7)", (int)getpid());
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "problem: domain %s: 2 stray files", d->name);
	assert_non_null(strstr(out, want));
	/* the event log, untrusted: garbage counted, not shown */
	snprintf(want, sizeof(want),
		 "events: domain %s: 1000 recorded; in the log (last 256): 0 join, 0 leave, "
		 "1 death, some garbage\n",
		 d->name);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\nevent: death zz (pid 4242) "));
	assert_null(strstr(out, "yy"));
	assert_non_null(strstr(out, "events 1000, last: death zz (pid 4242)"));
	free(out);

	craft_registry(d->name, (uint32_t)getpid(), now - 60); /* silent for a minute */
	assert_int_equal(run_tool(args, &out), 0);
	assert_non_null(strstr(out, "reaper stale (bpf"));
	free(out);
	craft_registry(d->name, 0, 0);
	assert_int_equal(run_tool(args, &out), 0);
	assert_non_null(strstr(out, "reaper not running"));
	free(out);
	assert_int_equal(unlink_domain(d->name), 4);
}

/* ------------------------------------------------------------ SIGBUS */

/* The guard on its own: a mapping whose file shrank faults; inside the
 * guard that is -EFAULT, outside it the process still dies of it. */
static int read_after_truncate(void *arg)
{
	const char *file = arg;
	struct top_map m;
	char path[512];
	uint64_t x;

	if (top_map_open(file, 8192, false, &m))
		return 2;
	snprintf(path, sizeof(path), "/dev/shm/%s", file);
	if (truncate(path, 0))
		return 3;
	/* unguarded; an atomic load is never optimised away */
	x = atomic_load_explicit((const _Atomic uint64_t *)((const char *)m.p + 4096),
				 memory_order_relaxed);
	(void)x;
	return 0;
}

static void test_guard_turns_sigbus_into_efault(void **state)
{
	struct th_dom *d = *state;
	char file[256], path[512];
	uint64_t buf[8];
	struct top_map m;
	pid_t pid;

	snprintf(file, sizeof(file), "shmrpc.%s.reg", d->name);
	snprintf(path, sizeof(path), "/dev/shm/%s", file);
	write_file(path, "data", 4, 8192);
	assert_int_equal(top_guard_install(), 0);
	assert_int_equal(top_map_open(file, 8192, false, &m), 0);
	assert_int_equal(m.len, 8192);
	assert_int_equal(top_copy(buf, m.p, sizeof(buf)), 0);
	assert_memory_equal(buf, "data", 4);
	assert_int_equal(truncate(path, 4096), 0);
	assert_int_equal(top_copy(buf, m.p, sizeof(buf)), 0); /* still there */
	assert_int_equal(top_copy(buf, (const char *)m.p + 4096, sizeof(buf)), -EFAULT);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(top_copy(buf, m.p, sizeof(buf)), -EFAULT);
	assert_int_equal(top_copy(buf, m.p, sizeof(buf)), -EFAULT); /* and again */
	top_map_close(&m);
	/* a FIFO or a symlink planted in /dev/shm is refused, not followed */
	unlink(path);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(top_map_open(file, 8192, false, &m), -ELOOP);
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(top_map_open(file, 8192, false, &m), -EBADF);
	unlink(path);

	write_file(path, "data", 4, 8192);
	pid = th_fork(read_after_truncate, file);
	assert_int_not_equal(th_wait(pid, 10000), 0); /* SIGBUS (or ASan's report of it) */
	unlink(path);
}

/* The tool under fire: a node segment, a ring and the registry shrink and
 * grow back thousands of times a second while it refreshes every 50 ms. */
static int flipper(void *arg)
{
	const char *dom = arg;
	char paths[3][512];
	uint8_t *saved[3];
	size_t sizes[3];
	int fds[3], i;

	snprintf(paths[0], sizeof(paths[0]), "/dev/shm/shmrpc.%s.reg", dom);
	shm_name(paths[1], sizeof(paths[1]), dom, craft_key, false, 3, 2, 0, 0);
	shm_name(paths[2], sizeof(paths[2]), dom, craft_key, true, 3, 2, 1, 3);
	for (i = 0; i < 3; i++) {
		struct stat st;

		fds[i] = open(paths[i], O_RDWR);
		CHILD_CHECK(fds[i] >= 0 && !fstat(fds[i], &st));
		sizes[i] = (size_t)st.st_size;
		saved[i] = malloc(sizes[i]);
		CHILD_CHECK(pread(fds[i], saved[i], sizes[i], 0) == (ssize_t)sizes[i]);
	}
	/* Whole and readable most of the time (so the tool maps it), then cut
	 * for a moment (so its reads fault). */
	while (!atomic_load(&sh->quit)) {
		double until = th_now_ms() + 0.05;

		while (th_now_ms() < until)
			;
		for (i = 0; i < 3; i++) {
			CHILD_CHECK(!ftruncate(fds[i], 0) && !ftruncate(fds[i], (off_t)sizes[i]));
			CHILD_CHECK(pwrite(fds[i], saved[i], sizes[i], 0) == (ssize_t)sizes[i]);
		}
	}
	for (i = 0; i < 3; i++) {
		close(fds[i]);
		free(saved[i]);
	}
	return 0;
}

static void craft_live_parts(const char *dom)
{
	uint64_t size = shmrpc__node_size(4);
	struct shmrpc__node_hdr *n = calloc(1, size);
	struct shmrpc__ring_hdr *r = calloc(1, SHMRPC__PAGE + 4096);
	char path[512];

	n->magic = SHMRPC__NODE_MAGIC;
	n->abi = SHMRPC__ABI;
	n->hdr_size = sizeof(*n);
	n->total_size = size;
	n->slot = 3;
	n->gen = 2;
	n->capacity = 4;
	n->ring_bytes = 4096;
	n->pend_off = shmrpc__node_pend_off();
	n->in_off = shmrpc__node_in_off(4);
	n->out_off = shmrpc__node_out_off(4);
	strcpy(n->name, "c1");
	shm_name(path, sizeof(path), dom, craft_key, false, 3, 2, 0, 0);
	write_file(path, n, size, (off_t)size);
	r->magic = SHMRPC__RING_MAGIC;
	r->abi = SHMRPC__ABI;
	r->hdr_size = SHMRPC__PAGE;
	r->size = 4096;
	r->nonce = CRAFT_NONCE;
	r->tx_slot = 3;
	r->tx_gen = 2;
	r->rx_slot = 1;
	r->rx_gen = 3;
	strcpy(r->tx_name, "c1");
	shm_name(path, sizeof(path), dom, craft_key, true, 3, 2, 1, 3);
	write_file(path, r, SHMRPC__PAGE + 4096, SHMRPC__PAGE + 4096);
	free(n);
	free(r);
}

static void test_files_shrinking_under_the_tool(void **state)
{
	struct th_dom *d = *state;
	char cmd[PATH_MAX + 128], *line = NULL;
	int docs = 0, cut = 0, round;
	struct mj doc;
	size_t cap = 0;
	pid_t pid;
	FILE *p;

	craft_registry(d->name, 0, 0);
	craft_live_parts(d->name);
	shared_init(d);
	pid = fork_kid(flipper, d->name);
	snprintf(cmd, sizeof(cmd), "exec %s --json -n 80 -d 0.05 --domain %s", tool, d->name);
	/* About one refresh in five catches a file shrinking here; a loaded
	 * machine may need more rounds (at most 4) to put the guard to the
	 * test. */
	for (round = 0; round < 4 && !cut; round++) {
		p = popen(cmd, "r");
		assert_non_null(p);
		while (getline(&line, &cap, p) > 0) {
			if (mj_parse(line, &doc))
				fail_msg("not JSON: %s", line);
			docs++;
			cut += strstr(line, "while reading") != NULL;
			mj_free(&doc);
		}
		assert_int_equal(pclose(p), 0); /* no SIGBUS escaped */
	}
	free(line);
	atomic_store(&sh->quit, 1);
	assert_int_equal(th_wait(pid, 10000), 0);
	munmap(sh, sizeof(*sh));
	sh = NULL;
	nkids = 0;
	assert_int_equal(docs, 80 * round);
	printf("# %d of %d refreshes caught a file shrinking while reading it\n", cut, docs);
	/* None in 320: the race was not met this time (timing; the guard
	 * itself is test_guard_turns_sigbus_into_efault's). Said, not failed. */
	if (!cut)
		printf("[info] no refresh met a shrinking file: the race was not put to the test\n");
	assert_int_equal(unlink_domain(d->name), 3);
}

/* ------------------------------------------------------------ options */

/* @args is refused (exit 2) with one line that says @why. */
static void refused(const char *args, const char *why)
{
	char *out;

	assert_int_equal(run_tool(args, &out), 2);
	if (!strstr(out, why) || strchr(out, '\n') != out + strlen(out) - 1)
		fail_msg("shmrpc-top %s: want the one line \"...%s...\", got:\n%s", args, why, out);
	free(out);
}

static void test_options(void **state)
{
	struct th_dom *d = *state;
	char args[256], *out;

	/* contradictions: one output mode; -n, -R where they cannot apply */
	refused("-b --json", "-b and --json: choose one output");
	refused("--json --prom", "--json and --prom: choose one output");
	refused("--prom -b -n 1", "--prom and -b: choose one output");
	refused("-n 2", "-n needs a batch mode");
	refused("--json -R", "-R lists rings in -b text only");
	refused("-R", "-R lists rings in -b text only");
	refused("-b -x", "unknown option: -x");
	refused("-b stray", "unexpected argument: stray");
	assert_int_equal(run_tool("-b -b -n 1 -d 0.05 --domain nosuchdomain-x", &out), 0);
	free(out);

	assert_int_equal(run_tool("-h", &out), 0);
	assert_non_null(strstr(out, "usage: shmrpc-top"));
	free(out);
	assert_int_equal(run_tool("-d 0", &out), 2);
	free(out);
	assert_int_equal(run_tool("-b -n 0", &out), 2);
	free(out);
	assert_int_equal(run_tool("-b --sort nope", &out), 2);
	free(out);
	assert_int_equal(run_tool("--domain ../x -b", &out), 2);
	free(out);
	assert_int_equal(run_tool("-o /tmp/x", &out), 2); /* -o needs a batch mode */
	free(out);
	assert_int_equal(run_tool("< /dev/null", &out), 2); /* the screen needs a terminal */
	assert_non_null(strstr(out, "not a terminal"));
	free(out);
	/* a domain asked for and not there is said so, not an error */
	snprintf(args, sizeof(args), "-b -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	assert_non_null(strstr(out, "absent: no registry"));
	free(out);
}

/* -o FILE in a directory everyone may write to (a shared /tmp): a symlink
 * planted at the temporary name the tool used to take (FILE.tmp.<pid>,
 * the pid known before it runs) must not make root write through it. */
struct out_kid {
	struct th_gate go;
	char args[PATH_MAX + 256];
};

static int out_kid_main(void *arg)
{
	struct out_kid *k = arg;
	char cmd[2 * PATH_MAX + 300];

	CHILD_CHECK_RC(th_gate_wait(&k->go, 10000), 0);
	snprintf(cmd, sizeof(cmd), "exec %s %s", tool, k->args); /* same pid */
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	return 127;
}

static void test_output_file_not_through_planted_symlink(void **state)
{
	struct th_dom *d = *state;
	char dir[] = "/tmp/shmrpc-top-o-XXXXXX", victim[] = "/tmp/shmrpc-top-victim-XXXXXX";
	char out[PATH_MAX], link[PATH_MAX + 32], buf[64] = "", sysctl[8] = "?";
	struct shmrpc_node *n = th_open(d, "x");
	struct out_kid k;
	struct stat st;
	pid_t pid;
	int fd, rc;

	assert_non_null(n);
	if (geteuid() != 0) {
		shmrpc_close(n);
		skip(); /* the planter is another user (lchown) */
	}
	fd = open("/proc/sys/fs/protected_symlinks", O_RDONLY);
	if (fd >= 0) {
		rc = (int)read(fd, sysctl, sizeof(sysctl) - 1);
		sysctl[rc > 0 ? rc - 1 : 0] = '\0';
		close(fd);
	}
	print_message("[observed] fs.protected_symlinks = %s\n", sysctl);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 01777), 0);
	fd = mkstemp(victim);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	snprintf(out, sizeof(out), "%s/shmrpc.prom", dir);
	th_gate_init(&k.go);
	snprintf(k.args, sizeof(k.args), "--prom -n 1 --domain %s -o %s", d->name, out);
	pid = th_fork(out_kid_main, &k);
	snprintf(link, sizeof(link), "%s.tmp.%d", out, (int)pid);
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(lchown(link, 65534, 65534), 0); /* nobody's */
	th_gate_open(&k.go);
	rc = th_wait(pid, 10000);
	fd = open(victim, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8);
	close(fd);
	print_message("shmrpc-top -o with a planted symlink: exit %d, victim \"%.8s\"\n", rc, buf);
	assert_memory_equal(buf, "precious", 8);
	assert_int_equal(rc, 0);
	assert_int_equal(lstat(out, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(lstat(link, &st), 0); /* not ours: left there */
	unlink(link);
	unlink(out);
	unlink(victim);
	assert_int_equal(rmdir(dir), 0); /* and no temporary left behind */
	th_gate_close(&k.go);
	shmrpc_close(n);
}

/* ------------------------------------------------------------ events */

/* A node that says hello to "ev-rx" and waits to be killed. */
static int ev_victim(void *arg)
{
	const struct th_dom *d = arg;
	struct shmrpc_node *n = th_open(d, "ev-v");
	uint64_t hello = 1;

	if (!n || shmrpc_wait_node(n, "ev-rx", 10000) ||
	    shmrpc_send(n, "ev-rx", &hello, sizeof(hello), 10000))
		return 1;
	for (;;)
		pause();
}

/* Receive on @n until an event of @type about @name (10 s at most); or,
 * @type 0, until the victim's hello (*hello: seen, at any time). */
static bool ev_wait(struct shmrpc_node *n, uint32_t type, const char *name, bool *hello)
{
	char from[SHMRPC_NAME_MAX + 1];
	double end = th_now_ms() + 10000;
	union {
		struct shmrpc_event e;
		uint64_t hello;
	} u;
	int len;

	while (th_now_ms() < end) {
		len = shmrpc_recv(n, &u, sizeof(u), from, 1000);
		if (len > 0 && !strcmp(from, "ev-v"))
			*hello = true;
		if (!type && *hello)
			return true;
		if (type && len == (int)sizeof(u.e) && !strcmp(from, SHMRPC_EVENT_FROM) &&
		    u.e.type == type && !strcmp(u.e.name, name))
			return true;
	}
	return false;
}

/* The domain's membership as its event log has it: three joins, a leave
 * and a death (a sender killed), in the text, JSON and Prometheus outputs. */
static void test_events_of_the_domain(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *rx, *l;
	const struct mj *dom, *ev, *last;
	char args[256], want[256], *out;
	bool hello = false;
	struct mj doc;
	pid_t v;

	v = th_fork(ev_victim, d); /* before this process runs threads */
	assert_true(v > 0);
	o.events = SHMRPC_EV_JOIN | SHMRPC_EV_LEAVE | SHMRPC_EV_DEATH;
	assert_int_equal(shmrpc_open("ev-rx", &o, &rx), 0);
	l = th_open(d, "ev-l");
	assert_non_null(l);
	shmrpc_close(l);
	assert_true(ev_wait(rx, SHMRPC_EV_LEAVE, "ev-l", &hello));
	assert_true(ev_wait(rx, 0, NULL, &hello)); /* its ring is open: we watch it */
	kill(v, SIGKILL);
	assert_true(ev_wait(rx, SHMRPC_EV_DEATH, "ev-v", &hello));
	assert_int_equal(th_wait(v, 10000), 128 + SIGKILL);

	snprintf(args, sizeof(args), "-b -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	snprintf(want, sizeof(want),
		 "events: domain %s: 5 recorded; in the log (last 256): 3 join, 1 leave, 1 death\n",
		 d->name);
	if (!strstr(out, want))
		fail_msg("want \"%s\" in:\n%s", want, out);
	snprintf(want, sizeof(want), "\nevent: death ev-v (pid %d) ", (int)v);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "events 5, last: death ev-v (pid %d)", (int)v);
	assert_non_null(strstr(out, want));
	free(out);

	snprintf(args, sizeof(args), "--json -n 1 --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	assert_int_equal(mj_parse(out, &doc), 0);
	assert_int_equal(mj_num(mj_get(&doc, "summary"), "events", -1), 5);
	dom = &mj_get(&doc, "domains")->kids[0];
	ev = mj_get(dom, "events");
	assert_non_null(ev);
	assert_int_equal(mj_num(ev, "total", -1), 5);
	assert_int_equal(mj_num(ev, "log_joins", -1), 3);
	assert_int_equal(mj_num(ev, "log_leaves", -1), 1);
	assert_int_equal(mj_num(ev, "log_deaths", -1), 1);
	last = &mj_get(ev, "latest")->kids[0];
	assert_string_equal(mj_str(last, "type"), "death");
	assert_string_equal(mj_str(last, "name"), "ev-v");
	assert_int_equal(mj_num(last, "pid", -1), v);
	assert_true(mj_num(last, "age", -1) >= 0);
	mj_free(&doc);
	free(out);

	snprintf(args, sizeof(args), "--prom --domain %s", d->name);
	assert_int_equal(run_tool(args, &out), 0);
	snprintf(want, sizeof(want), "shmrpc_domain_events_total{domain=\"%s\"} 5\n", d->name);
	assert_non_null(strstr(out, want));
	free(out);
	shmrpc_close(rx);
}

/* After a failed test: no node, flipper or tmux server outlives it. */
static int top_teardown(void **state)
{
	int i;

	if (sh)
		atomic_store(&sh->quit, 1);
	for (i = 0; i < nkids; i++)
		th_wait(kids[i], 3000); /* kills it if it does not end */
	nkids = 0;
	if (tmux_sock[0]) {
		tmux("kill-server");
		tmux_sock[0] = '\0';
	}
	return th_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_options, th_setup, top_teardown),
		cmocka_unit_test_setup_teardown(test_guard_turns_sigbus_into_efault, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_batch_reports_nodes_and_rates, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_json_counts_exact, th_setup, top_teardown),
		cmocka_unit_test_setup_teardown(test_prom_exposition, th_setup, top_teardown),
		cmocka_unit_test_setup_teardown(test_watching_allocates_nothing, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_screen_draws_sorts_selects_quits, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_screen_fits_width, th_setup, top_teardown),
		cmocka_unit_test_setup_teardown(test_table_fits_width, th_setup, top_teardown),
		cmocka_unit_test_setup_teardown(test_killed_node_gone_at_next_refresh, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_truncated_and_garbage_reported, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_half_created_and_reaper, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_files_shrinking_under_the_tool, th_setup,
						top_teardown),
		cmocka_unit_test_setup_teardown(test_output_file_not_through_planted_symlink,
						th_setup, top_teardown),
		cmocka_unit_test_setup_teardown(test_events_of_the_domain, th_setup, top_teardown),
	};

	find_tool();
	if (getenv("TOP_TEST_FILTER")) /* e.g. TOP_TEST_FILTER='*screen*' */
		cmocka_set_test_filter(getenv("TOP_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
