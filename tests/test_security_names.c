// SPDX-License-Identifier: MIT
/*
 * Security between users: names and tools (issue 15, attacks 5 and 6, and
 * the library's half of 1; docs/security.md). Real processes of a victim
 * A and an attacker B:
 *
 *  - squatting A's registry name (a file, a FIFO, a symlink, or B's own
 *    domain of that name): A's open fails at once with an error text that
 *    names the owner;
 *  - squatting every name B can see or guess for A's next node and rings
 *    (files and FIFOs, each number of each name B sees in /dev/shm varied):
 *    A's joins and sends still succeed;
 *  - a member of A's group-mode domain turns his own node file into a FIFO:
 *    A's next join (which checks that node's liveness) does not hang;
 *  - shmrpc-top -o FILE run by root, B's symlink at FILE.tmp.<pid>: root's
 *    file is untouched;
 *  - the reaper's probe pin directory on a bpffs mounted 1777 (private to
 *    the test): a symlink planted there, or the directory pre-created by B:
 *    nothing of root's goes into B's reach, no other directory is chmod-ed,
 *    and the reaper still starts (B cannot stop it).
 * Run with fs.protected_symlinks as found and with the other setting.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness_sec.h"

#ifndef SHMRPC_TOP_BIN
#define SHMRPC_TOP_BIN "build/tools/shmrpc-top"
#endif

static int setup(void **state)
{
	struct sec_case *c = calloc(1, sizeof(*c));

	*state = c;
	return c ? 0 : -1;
}

static int teardown(void **state)
{
	sec_case_end(*state);
	free(*state);
	return 0;
}

/* ====================================================== registry name */

struct squat {
	const char *dom;
	char kind; /* 'f' file, 'p' FIFO, 'l' symlink, 'd' B's own domain */
	struct th_gate ready;
};

static int b_squat_main(void *arg)
{
	struct squat *s = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = s->dom };
	struct shmrpc_node *n;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", s->dom);
	switch (s->kind) {
	case 'f':
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		CHILD_CHECK(fd >= 0 && write(fd, "squat", 5) == 5);
		close(fd);
		break;
	case 'p':
		CHILD_CHECK_RC(mkfifo(path, 0666), 0);
		break;
	case 'l':
		CHILD_CHECK_RC(symlink("/dev/null", path), 0);
		break;
	default:
		CHILD_CHECK_RC(shmrpc_open("b1", &o, &n), 0);
	}
	th_gate_open(&s->ready);
	for (;;)
		pause();
}

/* A's attempt: 0 if it failed at once with a message naming B. */
static int a_open_main(void *arg)
{
	const struct squat *s = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = s->dom };
	struct shmrpc_node *n = NULL;
	char uid[16];
	double t0 = th_now_ms(), ms;
	const char *msg;
	int rc;

	rc = shmrpc_open("a1", &o, &n);
	ms = th_now_ms() - t0;
	msg = shmrpc_last_error();
	snprintf(uid, sizeof(uid), "%d", (int)sec.b);
	printf("[observed] squat '%c': A's shmrpc_open = %d (%s) in %.1f ms: \"%s\"\n", s->kind, rc,
	       strerror(-rc), ms, msg);
	if (!rc)
		return 1; /* joined B's file?! */
	if (ms > 2000)
		return 2;
	if (!strstr(msg, uid) && !strstr(msg, SEC_USER_B)) {
		printf("FAILED CHECK: the error does not name the owner (uid %s, %s)\n", uid,
		       SEC_USER_B);
		return 3;
	}
	return 0;
}

static void test_squat_registry(void **state)
{
	static const char kinds[] = "fpld";
	int bad = 0, rc;

	(void)state;
	for (int i = 0; kinds[i]; i++) {
		struct squat s = { .kind = kinds[i] };
		char dom[16];

		snprintf(dom, sizeof(dom), "sq%c", kinds[i]);
		s.dom = dom;
		th_gate_init(&s.ready);
		sec_fork_as(SEC_B, b_squat_main, &s);
		assert_int_equal(th_gate_wait(&s.ready, 5000), 0);
		rc = sec_run_as(SEC_A, a_open_main, &s, 10000);
		if (rc && ++bad)
			print_message("FAILED CHECK: squat '%c': %d\n", kinds[i], rc);
		th_gate_close(&s.ready);
	}
	assert_int_equal(bad, 0);
}

/* ====================================================== guessed names */

/* Variants of @name: each number in it (a run of [0-9a-f] between '.' and
 * '-') replaced by 0..31 if short and decimal, else by itself +-1..8. */
static int variants(const char *name, void (*fn)(const char *v, void *arg), void *arg)
{
	char out[256], tok[32];
	int count = 0;

	for (const char *p = name; *p;) {
		size_t n = strspn(p, "0123456789abcdef");
		bool dec = strspn(p, "0123456789") == n;

		if (!n || n >= sizeof(tok) || (p > name && p[-1] != '.' && p[-1] != '-') ||
		    (p[n] && p[n] != '.' && p[n] != '-')) {
			p += n ? n : 1;
			continue;
		}
		for (int k = 0; k < 32; k++) {
			unsigned long long v = strtoull(p, NULL, dec ? 10 : 16);

			if (dec && n <= 5)
				snprintf(tok, sizeof(tok), "%d", k);
			else if (k < 16)
				snprintf(tok, sizeof(tok), "%0*llx", (int)n,
					 v + (unsigned long long)(k < 8 ? k + 1 : 7 - k));
			else
				break;
			snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - name), name, tok, p + n);
			fn(out, arg);
			count++;
		}
		p += n;
	}
	return count;
}

static void squat_one(const char *name, void *arg)
{
	char path[PATH_MAX];
	int *made = arg, fd;

	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	if (*made % 2) {
		*made += !mkfifo(path, 0666);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
	if (fd >= 0) {
		close(fd);
		++*made;
	}
}

static int b_guess_main(void *arg)
{
	char pfx[64], names[16384], *p, *nl;
	int made = 0;

	snprintf(pfx, sizeof(pfx), "shmrpc.%s.", (const char *)arg);
	sec_shm_names(sec.a, pfx, names, sizeof(names));
	printf("[observed] B sees of A's domain:\n%s", names);
	for (p = names; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		variants(p, squat_one, &made);
	}
	printf("[observed] B squats %d names guessed from them (files and FIFOs)\n", made);
	return made > 0 ? 0 : 1;
}

static void test_squat_guessed_names(void **state)
{
	struct sec_case *c = *state;
	int bad = 0, rc;

	assert_int_equal(sec_agent_start(&c->ag, SEC_A, "sg", 0), 0);
	assert_int_equal(sec_run_as(SEC_B, b_guess_main, "sg", 10000), 0);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "a%d", 3 + i);
		rc = sec_agent_join(&c->ag, name); /* joins, a1 connects back to it */
		if (rc && ++bad)
			print_message("FAILED CHECK: A's next node %s: %d\n", name, rc);
	}
	rc = sec_agent_roundtrip(&c->ag);
	if (rc && ++bad)
		print_message("FAILED CHECK: a1 <-> a2: %d\n", rc);
	assert_int_equal(bad, 0);
}

/* ====================================================== member's FIFO */

struct b_fifo {
	struct th_gate ready;
};

static int b_fifo_main(void *arg)
{
	struct b_fifo *b = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = "gf", .mode = 0660 };
	char names[512], path[PATH_MAX], *p, *nl;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open("b1", &o, &n), 0);
	sec_shm_names(getuid(), "shmrpc.gf.", names, sizeof(names));
	for (p = names; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (strcmp(nl - 4, ".reg")) { /* our node's file: ours to replace */
			snprintf(path, sizeof(path), "/dev/shm/%.200s", p);
			CHILD_CHECK_RC(unlink(path), 0);
			CHILD_CHECK_RC(mkfifo(path, 0660), 0);
		}
	}
	th_gate_open(&b->ready);
	for (;;)
		pause();
}

/* A's next join checks the member's node (lazy reclaim): it must not hang
 * on the FIFO that node's file now is. */
static void test_member_fifo_node_join(void **state)
{
	struct sec_case *c = *state;
	struct b_fifo b;
	double t0;
	int rc;

	assert_int_equal(sec_agent_start(&c->ag, SEC_A_G, "gf", 0660), 0);
	th_gate_init(&b.ready);
	sec_fork_as(SEC_B_G, b_fifo_main, &b);
	assert_int_equal(th_gate_wait(&b.ready, 5000), 0);
	t0 = th_now_ms();
	rc = sec_agent_join(&c->ag, "a3");
	print_message("[observed] A's join next to B's FIFO node: %d in %.0f ms\n", rc,
		      th_now_ms() - t0);
	assert_int_equal(rc, 0);
	assert_int_equal(sec_agent_roundtrip(&c->ag), 0);
}

/* ====================================================== shmrpc-top -o */

struct b_link {
	char target[256], at[512];
};

static int b_link_main(void *arg)
{
	struct b_link *l = arg;

	return symlink(l->target, l->at) ? errno : 0;
}

static void test_top_output_symlink(void **state)
{
	char pub[256], out[384], buf[64] = "";
	struct b_link l;
	struct th_gate go;
	struct stat st0, st1;
	pid_t pid;
	int fd, rc;

	(void)state;
	sec_ws(pub, sizeof(pub), "pub");
	sec_ws(l.target, sizeof(l.target), "root-file");
	mkdir(pub, 01777);
	assert_int_equal(chmod(pub, 01777), 0);
	unlink(l.target);
	fd = open(l.target, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0 && write(fd, "ROOTDATA\n", 9) == 9);
	close(fd);
	assert_int_equal(stat(l.target, &st0), 0);
	snprintf(out, sizeof(out), "%s/shmrpc.prom", pub);
	th_gate_init(&go);
	fflush(NULL);
	pid = fork();
	if (pid == 0) { /* root's shmrpc-top, once B's link waits for it */
		if (th_gate_wait(&go, 10000))
			_exit(126);
		execl(SHMRPC_TOP_BIN, "shmrpc-top", "--prom", "-n", "1", "-o", out, (char *)NULL);
		_exit(127);
	}
	sec_track(pid);
	snprintf(l.at, sizeof(l.at), "%s.tmp.%d", out, (int)pid);
	assert_int_equal(sec_run_as(SEC_B, b_link_main, &l, 5000), 0);
	th_gate_open(&go);
	rc = th_wait(pid, 10000);
	sec_untrack(pid);
	th_gate_close(&go);
	fd = open(l.target, O_RDONLY);
	assert_true(fd >= 0 && read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_int_equal(stat(l.target, &st1), 0);
	print_message("[observed] %s: shmrpc-top -o exit %d; %s %s; root's file holds \"%.8s\"\n",
		      sec_symlinks_label(), rc, out, access(out, F_OK) ? "not written" : "written",
		      buf);
	if (strcmp(buf, "ROOTDATA\n") || st1.st_ino != st0.st_ino)
		print_message("FAILED CHECK: root's %s was overwritten through B's symlink\n",
			      l.target);
	assert_string_equal(buf, "ROOTDATA\n");
	assert_int_equal(st1.st_ino, st0.st_ino);
	unlink(out);
	unlink(l.at);
}

/* ====================================================== probe pins */

struct pins {
	char fs[256], dir[384], other[256];
};

/* A bpffs of our own (private mount namespace), 1777 like a careless host's. */
static void pins_mount(struct pins *p)
{
	sec_ws(p->fs, sizeof(p->fs), "bpf");
	mkdir(p->fs, 0755);
	if (mount("bpf", p->fs, "bpf", 0, "mode=1777")) {
		print_message("skip: cannot mount a bpffs (%s)\n", strerror(errno));
		skip();
	}
	snprintf(p->dir, sizeof(p->dir), "%s/shmrpc", p->fs);
	sec_ws(p->other, sizeof(p->other), "other-dir");
	mkdir(p->other, 0755);
	assert_int_equal(chmod(p->other, 0755), 0);
}

/* Entries of @dir not owned by @uid (any entry if @uid is -1): printed,
 * counted. */
static int foreign_entries(const char *dir, uid_t uid)
{
	char path[1024];
	struct dirent *e;
	struct stat st;
	int n = 0;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || lstat(path, &st) || st.st_uid == uid)
			continue;
		print_message("FAILED CHECK: %s (uid %d) in a directory of uid %d\n", path,
			      (int)st.st_uid, (int)uid);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

static void pins_umount(const struct pins *p)
{
	char path[1024];
	struct dirent *e;
	DIR *d;

	/* The pins keep the probe attached: remove them, then the mount. */
	for (int k = 0; k < 2; k++) {
		d = opendir(k ? p->other : p->dir);
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", k ? p->other : p->dir,
					 e->d_name);
				unlink(path);
			}
		if (d)
			closedir(d);
	}
	unlink(p->dir);
	rmdir(p->dir);
	umount2(p->fs, MNT_DETACH);
}

static int b_mkdir_main(void *arg)
{
	return mkdir(arg, 0755) ? errno : 0;
}

static void pin_case(struct sec_case *c, bool link)
{
	const char *extra[] = { "--pin-dir", NULL, NULL };
	struct b_link l;
	struct pins p;
	struct stat st;
	int bad;

	pins_mount(&p);
	extra[1] = p.dir;
	if (link) {
		snprintf(l.target, sizeof(l.target), "%s", p.other);
		snprintf(l.at, sizeof(l.at), "%s", p.dir);
		assert_int_equal(sec_run_as(SEC_B, b_link_main, &l, 5000), 0);
	} else {
		assert_int_equal(sec_run_as(SEC_B, b_mkdir_main, p.dir, 5000), 0);
	}
	sec_case_reaper(c, "bpf", extra); /* B cannot stop it */
	sec_case_victim(c, SEC_A, link ? "pl" : "pd", 0);
	c->label = link ? "symlink as the pin directory" : "pin directory made by B";
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	bad += foreign_entries(p.other, (uid_t)-1); /* root pinned nothing there */
	if (!link)
		bad += foreign_entries(p.dir, sec.b);
	assert_int_equal(stat(p.other, &st), 0);
	if ((st.st_mode & 07777) != 0755 && ++bad)
		print_message("FAILED CHECK: %s chmod-ed to 0%o through B's symlink\n", p.other,
			      (unsigned)(st.st_mode & 07777));
	pins_umount(&p);
	assert_int_equal(bad, 0);
}

static void test_pin_dir_symlink(void **state)
{
	pin_case(*state, true);
}

static void test_pin_dir_made_by_user(void **state)
{
	pin_case(*state, false);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_squat_registry),	       T(test_squat_guessed_names),
		T(test_member_fifo_node_join), T(test_top_output_symlink),
		T(test_pin_dir_symlink),       T(test_pin_dir_made_by_user),
	};
#undef T
	int rc = sec_init("test_security_names");

	if (rc)
		return rc > 0 ? 0 : 1;
	return sec_run_groups("test_security_names", tests, sizeof(tests) / sizeof(tests[0]));
}
