// SPDX-License-Identifier: MIT
/*
 * The tools' command lines, run as a user would run the built binaries
 * (found next to this test): --help on stdout with status 0, --version,
 * one line that names what was wrong for a bad option (status 2, nothing
 * started); shmrpc-info's report, also with io_uring refused by a seccomp
 * filter and as an unprivileged user; shmrpc-demo in a domain of our
 * choosing, held long enough for shmrpc-top to watch its traffic;
 * shmrpc-bench's issue 11 rows, briefly (a smoke run, no timing checked).
 * (shmrpc-top's own options and screen: test_top.c.)
 */
#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../tools/version.h"
#include "harness.h"
#include "mini_json.h"

#define OUT_MAX (256 * 1024)

static char tools_dir[PATH_MAX];

static const char *const tools[] = { "shmrpc-top",   "shmrpc-info",   "shmrpc-demo",
				     "shmrpc-bench", "shmrpc-reaper", "shmrpc-kv" };
#define NTOOLS (sizeof(tools) / sizeof(tools[0]))

/* ------------------------------------------------------------ running */

enum run_as {
	RUN_PLAIN,
	RUN_NO_URING, /* io_uring_setup refused with EPERM, as Docker's profile does */
	RUN_NOBODY,   /* uid and gid 65534, no capabilities */
};

struct run {
	pid_t pid;
	int out_fd, err_fd;
	int status;
	char out[OUT_MAX], err[OUT_MAX];
};

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* In the child: refuse io_uring_setup() with EPERM. 0 or -1. */
static int no_uring(void)
{
#ifdef TEST_AUDIT_ARCH
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
#else
	return -1;
#endif
}

/* Start tool @argv[0] (a name in tools_dir); stdout and stderr to memfds. */
static void run_start(struct run *r, enum run_as as, const char *const *argv)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", tools_dir, argv[0]);
	r->out_fd = memfd_create("out", MFD_CLOEXEC);
	r->err_fd = memfd_create("err", MFD_CLOEXEC);
	assert_true(r->out_fd >= 0 && r->err_fd >= 0);
	r->pid = th_fork_raw();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		if (dup2(r->out_fd, STDOUT_FILENO) < 0 || dup2(r->err_fd, STDERR_FILENO) < 0)
			_exit(126);
		if (as == RUN_NO_URING && no_uring())
			_exit(125);
		if (as == RUN_NOBODY && (setgroups(0, NULL) || setgid(65534) || setuid(65534)))
			_exit(125);
		execv(path, (char *const *)argv);
		_exit(127);
	}
}

static void slurp(int fd, char *buf)
{
	ssize_t n = pread(fd, buf, OUT_MAX - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* Wait for it (killed after @timeout_ms); its status and output. */
static void run_finish(struct run *r, int timeout_ms)
{
	r->status = th_wait(r->pid, timeout_ms);
	slurp(r->out_fd, r->out);
	slurp(r->err_fd, r->err);
	if (r->status == 125)
		skip(); /* the restriction could not be set up here */
}

static struct run *run(enum run_as as, const char *const *argv)
{
	static struct run r;

	run_start(&r, as, argv);
	run_finish(&r, 30000);
	return &r;
}

#define RUN(...) run(RUN_PLAIN, (const char *const[]){ __VA_ARGS__, NULL })

/* ------------------------------------------------------------ help, version */

static void test_help_and_version_every_tool(void **state)
{
	char want[128];
	struct run *r;
	size_t i;

	(void)state;
	for (i = 0; i < NTOOLS; i++) {
		snprintf(want, sizeof(want), "usage: %s", tools[i]);
		r = RUN(tools[i], "--help");
		if (r->status || strncmp(r->out, want, strlen(want)) || r->err[0])
			fail_msg("%s --help: status %d, stdout:\n%s\nstderr:\n%s", tools[i],
				 r->status, r->out, r->err);
		r = RUN(tools[i], "-h");
		assert_int_equal(r->status, 0);
		assert_true(!strncmp(r->out, want, strlen(want)));

		snprintf(want, sizeof(want), "%s (libshmrpc) %s\n", tools[i], SHMRPC_TOOLS_VERSION);
		r = RUN(tools[i], "--version");
		if (r->status || strcmp(r->out, want) || r->err[0])
			fail_msg("%s --version: status %d, stdout \"%s\", stderr \"%s\"", tools[i],
				 r->status, r->out, r->err);
		r = RUN(tools[i], "-V");
		assert_int_equal(r->status, 0);
		assert_string_equal(r->out, want);
	}
}

/* ------------------------------------------------------------ bad usage */

/* Refused: status 2, nothing on stdout, one line on stderr that starts
 * with the tool's name and says @why. */
static void refused(const char *why, const char *const *argv)
{
	struct run *r = run(RUN_PLAIN, argv);
	size_t n = strlen(argv[0]);
	char cmd[256] = "";
	int i;

	for (i = 0; argv[i]; i++)
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s ", argv[i]);
	if (r->status != 2 || r->out[0] || strncmp(r->err, argv[0], n) || r->err[n] != ':' ||
	    !strstr(r->err, why) || strchr(r->err, '\n') != r->err + strlen(r->err) - 1)
		fail_msg("%s: want status 2 and one line saying \"%s\"; status %d, stdout:\n%s\n"
			 "stderr:\n%s",
			 cmd, why, r->status, r->out, r->err);
}

#define REFUSED(why, ...) refused(why, (const char *const[]){ __VA_ARGS__, NULL })

static void test_bad_options_say_what(void **state)
{
	(void)state;
	REFUSED("unknown option: --bogus", "shmrpc-top", "--bogus");
	REFUSED("bad delay", "shmrpc-top", "-b", "-d", "0");
	REFUSED("unexpected argument: stray", "shmrpc-top", "-b", "stray");
	REFUSED("-b and --json: choose one output", "shmrpc-top", "-b", "--json");

	REFUSED("unknown option: --bogus", "shmrpc-info", "--bogus");
	REFUSED("unexpected argument: stray", "shmrpc-info", "stray");
	REFUSED("option needs an argument: --backend", "shmrpc-info", "--backend");
	REFUSED("unknown backend: URING", "shmrpc-info", "--backend", "URING");

	/* the demo starts nothing when its command line is wrong */
	REFUSED("unknown option: --bogus", "shmrpc-demo", "--bogus");
	REFUSED("bad --hold", "shmrpc-demo", "--hold", "-1");
	REFUSED("bad --hold", "shmrpc-demo", "--hold", "2x");
	REFUSED("bad domain name", "shmrpc-demo", "--domain", "../x");
	REFUSED("option needs an argument: --domain", "shmrpc-demo", "--domain");
	REFUSED("unexpected argument: stray", "shmrpc-demo", "stray");
	REFUSED("a command is needed", "shmrpc-kv");
	REFUSED("unknown command, or wrong arguments: get", "shmrpc-kv", "get");
	REFUSED("bad --timeout", "shmrpc-kv", "--timeout", "x", "scan");

	REFUSED("unknown option: --bogus", "shmrpc-bench", "--bogus");
	REFUSED("bad --iters", "shmrpc-bench", "--iters", "0");
	REFUSED("unexpected argument: stray", "shmrpc-bench", "stray");
	REFUSED("unknown scenario 'nope'", "shmrpc-bench", "--scenario", "nope");
}

/* ------------------------------------------------------------ shmrpc-info */

/* The line of @text that contains @needle, copied. */
static bool line_with(const char *text, const char *needle, char *line, size_t len)
{
	const char *p = strstr(text, needle), *b, *e;

	if (!p)
		return false;
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	snprintf(line, len, "%.*s", (int)(e ? e - b : (long)strlen(b)), b);
	return true;
}

static void test_info_reports(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n = th_open(d, "one");
	char line[512], want[256];
	struct run *r;

	assert_non_null(n);
	r = RUN("shmrpc-info");
	assert_int_equal(r->status, 0);
	snprintf(want, sizeof(want), "libshmrpc %s", SHMRPC_TOOLS_VERSION);
	assert_true(!strncmp(r->out, want, strlen(want)));
	assert_non_null(strstr(r->out, "wake backends:\n"));
	assert_true(line_with(r->out, "  tp_btf ", line, sizeof(line)));
	print_message("[observed] as uid %d: %s\n", (int)getuid(), line);
	assert_true(strstr(line, "loads here") || strstr(line, "does not load: "));
	assert_true(line_with(r->out, d->name, line, sizeof(line)));
	assert_non_null(strstr(line, "1 live, 0 dead, 0 other nodes"));
	snprintf(want, sizeof(want), "default %s", shmrpc_backend_default());
	assert_non_null(strstr(r->out, want));

	/* io_uring refused as in a container: said so, futex the default */
	r = run(RUN_NO_URING, (const char *const[]){ "shmrpc-info", NULL });
	assert_int_equal(r->status, 0);
	if (!strstr(r->out, "  uring   not available: io_uring_setup refused (EPERM): a "
			    "seccomp filter") ||
	    !strstr(r->out, "  default futex"))
		fail_msg("under seccomp:\n%s", r->out);
	r = run(RUN_NO_URING, (const char *const[]){ "shmrpc-info", "--backend", "uring", NULL });
	assert_int_equal(r->status, 1);
	assert_string_equal(r->out, "");

	/* without privileges, the probe cannot load, and the tool says why */
	if (getuid() == 0) {
		r = run(RUN_NOBODY, (const char *const[]){ "shmrpc-info", NULL });
		assert_int_equal(r->status, 0);
		if (!line_with(r->out, "  tp_btf ", line, sizeof(line)) ||
		    !strstr(line, "does not load: not permitted") ||
		    !strstr(r->out, "falls back to pidfds"))
			fail_msg("as nobody:\n%s", r->out);
	}
	shmrpc_close(n);
}

/* ------------------------------------------------------------ shmrpc-kv */

#define KV(...) RUN("shmrpc-kv", "--domain", d->name, __VA_ARGS__)

/* shmrpc-top's count of requests node "kv" of @dom served (-1: none). */
static double kv_served(const char *dom)
{
	const struct mj *doms, *nodes, *nd;
	struct mj doc;
	struct run *r;
	double v = -1;
	size_t i;

	r = RUN("shmrpc-top", "--json", "-n", "1", "--domain", dom);
	if (r->status || mj_parse(r->out, &doc))
		fail_msg("shmrpc-top: status %d:\n%s\n%s", r->status, r->out, r->err);
	doms = mj_get(&doc, "domains");
	nodes = doms && doms->n ? mj_get(&doms->kids[0], "nodes") : NULL;
	for (i = 0; nodes && i < nodes->n; i++) {
		nd = &nodes->kids[i];
		if (!strcmp(mj_str(nd, "name"), "kv"))
			v = mj_num(mj_get(nd, "totals"), "calls_served", -1);
	}
	mj_free(&doc);
	return v;
}

/* The worked example of request/response: the service in one process, a
 * client per command; the client of a service that is gone says so. */
static void test_kv_service_and_client(void **state)
{
	struct th_dom *d = *state;
	static struct run srv;
	struct run *r;
	int i;

	run_start(&srv, RUN_PLAIN,
		  (const char *const[]){ "shmrpc-kv", "--domain", d->name, "serve", NULL });
	for (i = 0; i < 500; i++) { /* until it serves */
		r = KV("set", "color", "blue");
		if (!r->status)
			break;
		th_sleep_ms(20);
	}
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "");
	assert_int_equal(KV("set", "size", "very big")->status, 0);
	r = KV("get", "color");
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "blue\n");
	r = KV("get", "nope");
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "get nope: "));
	r = KV("scan");
	assert_int_equal(r->status, 0);
	assert_true(!strcmp(r->out, "color=blue\nsize=very big\n") ||
		    !strcmp(r->out, "size=very big\ncolor=blue\n"));
	assert_int_equal(KV("del", "color")->status, 0);
	assert_int_equal(KV("del", "color")->status, 1);
	r = KV("scan");
	assert_string_equal(r->out, "size=very big\n");
	/* shmrpc-top counts what it served (8 requests, maybe a refused one
	 * before it served) */
	assert_true(kv_served(d->name) >= 8);
	kill(srv.pid, SIGTERM);
	run_finish(&srv, 10000);
	assert_int_equal(srv.status, 0);
	assert_non_null(strstr(srv.out, "serving as 'kv'"));
	r = KV("get", "size");
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "no live node of that name"));
}

/* ------------------------------------------------------------ shmrpc-demo */

/* shmrpc-top's view of domain @dom: 1 once the demo's four nodes are live
 * and the planner sends (a rate over the tool's first delay). */
static int demo_busy(const char *dom)
{
	const struct mj *doms, *nodes, *nd, *sum;
	struct mj doc;
	struct run *r;
	size_t i;
	int busy = 0;

	r = RUN("shmrpc-top", "--json", "-n", "1", "-d", "0.3", "--domain", dom);
	if (r->status || mj_parse(r->out, &doc))
		fail_msg("shmrpc-top: status %d:\n%s\n%s", r->status, r->out, r->err);
	sum = mj_get(&doc, "summary");
	doms = mj_get(&doc, "domains");
	nodes = doms && doms->n ? mj_get(&doms->kids[0], "nodes") : NULL;
	for (i = 0; nodes && i < nodes->n; i++) {
		nd = &nodes->kids[i];
		if (!strcmp(mj_str(nd, "name"), "planner") &&
		    mj_num(mj_get(nd, "rates"), "msgs_out", -1) > 0 &&
		    mj_num(sum, "nodes_live", 0) == 4)
			busy = 1;
	}
	mj_free(&doc);
	return busy;
}

/* Has child @pid exited? (Left to be reaped by th_wait.) */
static bool ended(pid_t pid)
{
	siginfo_t si = { 0 };

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

static void test_demo_domain_and_hold(void **state)
{
	struct th_dom *d = *state;
	static struct run demo;
	char want[128];
	double end = th_now_ms() + 60000;
	int busy = 0;

	run_start(&demo, RUN_PLAIN,
		  (const char *const[]){ "shmrpc-demo", "--domain", d->name, "--hold", "2", NULL });
	while (!busy && th_now_ms() < end && !ended(demo.pid))
		busy = demo_busy(d->name);
	run_finish(&demo, 60000);
	if (demo.status || !busy)
		fail_msg("demo: status %d, seen busy by shmrpc-top: %d\n%s\n%s", demo.status, busy,
			 demo.out, demo.err);
	snprintf(want, sizeof(want), "joined domain \"%s\"", d->name);
	assert_non_null(strstr(demo.out, want));
	assert_non_null(strstr(demo.out, "(holding 2.0 s"));
	assert_non_null(strstr(demo.out, "left in /dev/shm: nothing"));
}

/* ------------------------------------------------------------ shmrpc-bench */

/* The result of @scen over @tr (and @variant, if not NULL) at @size in the
 * bench's JSON document, or NULL. */
static const struct mj *bench_row(const struct mj *doc, const char *scen, const char *tr,
				  double size, const char *variant)
{
	const struct mj *rs = mj_get(doc, "results"), *r;

	for (size_t i = 0; rs && i < rs->n; i++) {
		r = &rs->kids[i];
		if (!strcmp(mj_str(r, "scenario"), scen) && !strcmp(mj_str(r, "transport"), tr) &&
		    mj_num(r, "size", -1) == size &&
		    (!variant || (mj_get(r, "variant") && !strcmp(mj_str(r, "variant"), variant))))
			return r;
	}
	return NULL;
}

/* Issue 11's rows, run briefly (no timing is checked): the batch calls in
 * the stream scenario next to the bare ring, with every message checked by
 * the consumer (a lost, torn or reordered one fails the row), and the
 * event-latency rows (a DEATH event per kill, on each backend here). */
static void test_bench_issue11_rows(void **state)
{
	static const char *const be[2] = { "uring", "futex" };
	static struct run r;
	char json[] = "/tmp/test_tools_bench.XXXXXX", *text = NULL;
	const struct mj *row;
	struct mj doc;
	size_t len = 0;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(json);
	assert_true(fd >= 0);
	close(fd);
	run_start(&r, RUN_PLAIN,
		  (const char *const[]){ "shmrpc-bench", "--quick", "--scenario", "stream,events",
					 "--transport",
					 "spin,shmrpc-batch,shmrpc-batch-futex,peers", "--duration",
					 "0.05", "--kills", "2", "--json", json, NULL });
	run_finish(&r, 300000);
	f = fopen(json, "r");
	if (r.status || !f || getdelim(&text, &len, '\0', f) < 0 || mj_parse(text, &doc))
		fail_msg("shmrpc-bench: status %d, stdout:\n%s\nstderr:\n%s", r.status, r.out,
			 r.err);
	fclose(f);
	unlink(json);
	free(text);
	assert_non_null(strstr(r.out, "x spin"));
	assert_non_null(strstr(r.out, "peer_sendv/recv_batch x32 (uring) over the bare ring"));
	for (int b = 0; b < 2; b++) {
		row = bench_row(&doc, "stream", b ? "shmrpc-batch-futex" : "shmrpc-batch", 64,
				NULL);
		if (!row ||
		    (strcmp(mj_str(row, "status"), "ok") && shmrpc_backend_available(be[b]) == 1))
			fail_msg("stream %s 64 B: %s\n%s", be[b],
				 row ? mj_str(row, "status") : "none", r.err);
		row = bench_row(&doc, "events", "peers", 0, be[b]);
		if (!row ||
		    (shmrpc_backend_available(be[b]) == 1 &&
		     (strcmp(mj_str(row, "status"), "ok") || mj_num(row, "samples", 0) != 2)))
			fail_msg("events peers %s: %s, %g samples\n%s", be[b],
				 row ? mj_str(row, "status") : "none",
				 row ? mj_num(row, "samples", 0) : 0, r.err);
	}
	assert_non_null(bench_row(&doc, "stream", "spin", 64, NULL));
	mj_free(&doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_and_version_every_tool),
		cmocka_unit_test(test_bad_options_say_what),
		cmocka_unit_test_setup_teardown(test_info_reports, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_demo_domain_and_hold, th_setup, th_teardown),
		cmocka_unit_test(test_bench_issue11_rows),
		cmocka_unit_test_setup_teardown(test_kv_service_and_client, th_setup, th_teardown),
	};
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return 1;
	self[n] = '\0';
	snprintf(tools_dir, sizeof(tools_dir), "%s/../tools", dirname(self));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
