// SPDX-License-Identifier: MIT
/*
 * shmrpc-reaper between users (issue 15): root acts for each domain's owner
 * and never beyond, and one user's files can stop nobody's cleanup.
 *
 * The attacker is a real other user: forked children switch to nobody
 * (65534) and make their own domains with the library, then plant or
 * rewrite what that user may. The victim is a root domain whose node is
 * SIGKILLed while the attack goes on: the reaper must still reclaim it
 * within CLEAN_MS (its usual latency is well under a millisecond; the delay
 * is printed, the bound is only what an attack used to cost: seconds, or
 * for ever). Each test fails on the reaper of before the fix:
 *
 *  - a FIFO (or a symlink to one) at a registry name: the reaper hung in
 *    open(2) at start-up, for ever, in both modes;
 *  - a registry unlinked by its owner and replaced by another user's: the
 *    reaper retired the new one by name;
 *  - a live node's slot rewritten to JOINING: a sweep unlinked its files;
 *  - 4096 fake LIVE slots with invented pid namespaces (each one's node
 *    file locked, so each looks alive), leaving and coming back every
 *    50 ms: one /proc walk each, every time;
 *  - a sparse 65536-slot registry: 8 MiB of tmpfs allocated by the sync;
 *  - 400 domains: a descriptor and a mapping each, no bound;
 *  - the attacker's registry lock held for ever: the reaper blocked in it;
 *  - the attacker's registry truncated under the reaper: SIGBUS killed it.
 *
 * Needs root (setresuid; BPF for the bpf mode); skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h"
#include "names.h"
#include "regfile.h"
#include "seg.h"
#include "killtime.h"

#ifndef SHMRPC_REAPER_BIN
#define SHMRPC_REAPER_BIN "build/tools/shmrpc-reaper"
#endif

#define NOBODY 65534
#define CLEAN_MS 1000	/* a victim's reclaim under attack: well within this */
#define NDOMS 400	/* domains of the attacker (the cap is 256) */
#define FAKE_SLOTS 4095 /* fake LIVE slots of the attacker */

struct fix {
	struct th_dom v;		    /* the victim's domain (root) */
	char a[NDOMS][SHMRPC_NAME_MAX + 1]; /* the attacker's domains */
	pid_t reaper;
	char log[128];
	pid_t kids[8];
	int nkids;
};

/* ------------------------------------------------------------ helpers */

static int setup(void **state)
{
	static int seq;
	struct fix *f = calloc(1, sizeof(*f));
	char base[SHMRPC_NAME_MAX + 1];
	int i;

	if (!f)
		return -1;
	th_dom_init(&f->v);
	snprintf(base, sizeof(base), "%s", f->v.name);
	for (i = 0; i < NDOMS; i++)
		snprintf(f->a[i], sizeof(f->a[i]), "%.50s-a%d", base, i);
	f->reaper = -1;
	snprintf(f->log, sizeof(f->log), "/tmp/shmrpc-test-owner-%d-%d.log", (int)getpid(), seq++);
	unlink(f->log);
	setenv("SHMRPC_WATCH", "0", 1); /* only the reaper cleans up */
	*state = f;
	return 0;
}

static void print_log(const struct fix *f)
{
	char buf[4096];
	ssize_t n;
	int fd = open(f->log, O_RDONLY);

	if (fd < 0)
		return;
	fprintf(stderr, "---- reaper log\n");
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "----\n");
	close(fd);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	int left = 0, i;

	for (i = 0; i < f->nkids; i++) {
		kill(f->kids[i], SIGKILL);
		th_wait(f->kids[i], 5000);
	}
	if (f->reaper > 0)
		shmrpc_kt_reaper_stop(f->reaper, SIGTERM, 5000);
	unlink(f->log);
	unsetenv("SHMRPC_WATCH");
	left += th_shm_clean(f->v.name);
	for (i = 0; i < NDOMS; i++)
		th_shm_clean(f->a[i]); /* the attacker's own leftovers */
	free(f);
	return left == 0 ? 0 : -1;
}

/* Does a line of the reaper's log (all of it: with -v it is long) hold
 * @a and @b (if not NULL)? */
static bool log_has(const struct fix *f, const char *a, const char *b)
{
	char *buf, *line, *save = NULL;
	bool found = false;
	struct stat st;
	ssize_t n = -1;
	int fd = open(f->log, O_RDONLY);

	if (fd < 0)
		return false;
	buf = fstat(fd, &st) ? NULL : malloc((size_t)st.st_size + 1);
	if (buf)
		n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (!buf)
		return false;
	buf[n > 0 ? n : 0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save))
		found = strstr(line, a) && (!b || strstr(line, b));
	free(buf);
	return found;
}

/* Lines of the log with @a and @b. */
static int log_count(const struct fix *f, const char *a, const char *b)
{
	char *buf, *line, *save = NULL;
	struct stat st;
	ssize_t n = -1;
	int fd = open(f->log, O_RDONLY), count = 0;

	if (fd < 0)
		return 0;
	buf = fstat(fd, &st) ? NULL : malloc((size_t)st.st_size + 1);
	if (buf)
		n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (!buf)
		return 0;
	buf[n > 0 ? n : 0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		count += strstr(line, a) && strstr(line, b);
	free(buf);
	return count;
}

/* Print the last line of the log with @a and @b. */
static void log_print_last(const struct fix *f, const char *a, const char *b)
{
	char *buf, *line, *save = NULL, *last = NULL;
	struct stat st;
	ssize_t n = -1;
	int fd = open(f->log, O_RDONLY);

	if (fd < 0)
		return;
	buf = fstat(fd, &st) ? NULL : malloc((size_t)st.st_size + 1);
	if (buf)
		n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (!buf)
		return;
	buf[n > 0 ? n : 0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, a) && strstr(line, b))
			last = line;
	if (last)
		print_message("  %s\n", last);
	free(buf);
}

static int log_wait(const struct fix *f, const char *a, const char *b, int ms)
{
	double end = th_now_ms() + ms;

	while (!log_has(f, a, b)) {
		if (th_now_ms() > end) {
			print_log(f);
			return -1;
		}
		th_sleep_ms(5);
	}
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("skip: other users are made with setresuid (needs root)\n");
		skip();
	}
}

/* Start the reaper in @mode on the victim's domain and the first @na of
 * the attacker's. */
static void reaper_start(struct fix *f, const char *mode, int na)
{
	const char **argv = calloc((size_t)(2 * na + 8), sizeof(*argv));
	const char *bin = getenv("SHMRPC_REAPER");
	int n = 0, i;

	assert_non_null(argv);
	argv[n++] = "-v";
	argv[n++] = "--mode";
	argv[n++] = mode;
	argv[n++] = "--no-pin";
	argv[n++] = "--domain";
	argv[n++] = f->v.name;
	for (i = 0; i < na; i++) {
		argv[n++] = "--domain";
		argv[n++] = f->a[i];
	}
	f->reaper =
		shmrpc_kt_reaper_start(bin && *bin ? bin : SHMRPC_REAPER_BIN, argv, f->log, 10000);
	free(argv);
	if (f->reaper == -ENOTSUP) {
		print_message("skip: the kernel refuses the BPF probe here\n");
		skip();
	}
	if (f->reaper < 0)
		print_log(f);
	assert_true(f->reaper > 0);
}

/* In a forked child: become @uid for good. */
static void become(uid_t uid)
{
	CHILD_CHECK(!setgroups(0, NULL) && !setresgid(uid, uid, uid) && !setresuid(uid, uid, uid));
}

/* A victim node "v" of the root domain, in a child, killed on demand. */
struct victim {
	struct th_gate ready;
	const struct th_dom *d;
	pid_t pid;
	struct shmrpc_kt_obs *o;
	struct shmrpc_kt_id id;
};

static int victim_main(void *arg)
{
	struct victim *v = arg;
	struct shmrpc_node *n;

	CHILD_CHECK_RC(shmrpc_open("v", &v->d->opts, &n), 0);
	th_gate_open(&v->ready);
	for (;;)
		pause();
	return 0;
}

/* A fresh victim node, once the reaper watches it (a node seen after it
 * died is reclaimed too, later: the usual path is what is measured). */
static void victim_start(struct fix *f, struct victim *v)
{
	int watched = log_count(f, ": watch ", "node=v");
	double end = th_now_ms() + 5000;

	v->d = &f->v;
	th_gate_init(&v->ready);
	v->pid = th_fork(victim_main, v);
	assert_int_equal(th_gate_wait(&v->ready, 10000), 0);
	assert_int_equal(shmrpc_kt_obs_open(&v->o, f->v.name), 0);
	assert_int_equal(shmrpc_kt_obs_find(v->o, "v", &v->id), 0);
	while (log_count(f, ": watch ", "node=v") == watched && th_now_ms() < end)
		th_sleep_ms(2);
	if (log_count(f, ": watch ", "node=v") == watched)
		print_log(f);
	assert_true(log_count(f, ": watch ", "node=v") > watched);
}

/* SIGKILL it: the ms until its slot was free (its files went first). */
static void victim_kill(struct fix *f, struct victim *v, const char *what)
{
	double t0 = th_now_ms(), ms, end;
	int64_t gone_ns = 0;
	int rc;

	kill(v->pid, SIGKILL);
	rc = shmrpc_kt_obs_wait_gone(v->o, &v->id, 10000, &gone_ns);
	th_wait(v->pid, 5000);
	th_gate_close(&v->ready);
	shmrpc_kt_obs_close(v->o);
	ms = rc ? -1 : (double)gone_ns / 1e6 - t0;
	print_message("%s: victim's kill -> cleaned %.2f ms\n", what, ms);
	if (rc)
		print_log(f);
	else
		log_print_last(f, "reaped", "node=v");
	assert_true(ms >= 0 && ms < CLEAN_MS);
	/* and its registry, retired in the same hold of the lock */
	end = th_now_ms() + CLEAN_MS;
	while (th_shm_count(f->v.name) && th_now_ms() < end)
		th_sleep_ms(1);
	assert_int_equal(th_shm_count(f->v.name), 0);
}

static void check_victim(struct fix *f, const char *what)
{
	struct victim v;

	victim_start(f, &v);
	victim_kill(f, &v, what);
}

/* The reaper still stops at once on SIGTERM. */
static void reaper_stop_clean(struct fix *f)
{
	int st = shmrpc_kt_reaper_stop(f->reaper, SIGTERM, 5000);

	f->reaper = -1;
	if (st)
		print_log(f);
	assert_int_equal(st, 0);
}

static void kid_add(struct fix *f, pid_t pid)
{
	assert_true(pid > 0 && f->nkids < 8);
	f->kids[f->nkids++] = pid;
}

/* The attacker: nobody, in its own domain @a[0] (and more), with a node
 * that holds, then whatever @attack does; then waits to be killed. */
struct attacker {
	const struct fix *f;
	int (*attack)(struct attacker *a, struct shmrpc_node *n);
	void (*again)(struct attacker *a, struct shmrpc_node *n); /* then, in a loop */
	int ndoms;
	uint32_t max_nodes; /* of its first domain */
	struct th_gate ready;
	_Atomic int *stop; /* shared: end a loop */
};

static int attacker_main(void *arg)
{
	struct attacker *a = arg;
	struct shmrpc_opts o = { .sz = sizeof(o) };
	struct shmrpc_node *n = NULL, *m;
	int i;
	struct rlimit rl = { 8192, 8192 };

	setrlimit(RLIMIT_NOFILE, &rl); /* as root still: two per domain */
	setenv("SHMRPC_BACKEND", "futex", 1);
	become(NOBODY);
	for (i = 0; i < a->ndoms; i++) {
		o.domain = a->f->a[i];
		o.max_nodes = i ? 0 : a->max_nodes;
		CHILD_CHECK_RC(shmrpc_open("a", &o, i ? &m : &n), 0);
	}
	if (a->attack)
		CHILD_CHECK_RC(a->attack(a, n), 0);
	th_gate_open(&a->ready);
	for (;;)
		if (a->again)
			a->again(a, n);
		else
			pause();
	return 0;
}

static void attacker_start(struct fix *f, struct attacker *a)
{
	a->f = f;
	if (!a->ndoms)
		a->ndoms = 1;
	th_gate_init(&a->ready);
	kid_add(f, th_fork(attacker_main, a));
	assert_int_equal(th_gate_wait(&a->ready, 30000), 0);
}

/* The attacker's registry, mapped read-write as its owner may. */
static struct shmrpc__reg_hdr *own_registry(struct shmrpc_node *n, int *fd_out)
{
	char path[300];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", n->reg->domain);
	fd = open(path, O_RDWR);
	if (fd < 0 || fstat(fd, &st))
		return NULL;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static void epoch_bump(struct shmrpc__reg_hdr *h)
{
	atomic_fetch_add(&h->epoch, 1);
	syscall(SYS_futex, &h->epoch, 1 /* FUTEX_WAKE */, 1 << 30, NULL, NULL, 0);
}

/* ------------------------------------------------------------ tests */

/* A FIFO, and a symlink to one, at registry names: the reaper starts,
 * says what it refused, cleans up after the victim, stops on SIGTERM. */
static int plant_fifos(struct attacker *a, struct shmrpc_node *n)
{
	char reg[300], fifo[300];

	(void)n;
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", a->f->a[1]);
	if (mkfifo(reg, 0666))
		return -errno;
	snprintf(fifo, sizeof(fifo), "/tmp/%s-fifo", a->f->a[2]);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", a->f->a[2]);
	if (mkfifo(fifo, 0666) || symlink(fifo, reg))
		return -errno;
	return 0;
}

static void fifo_case(struct fix *f, const char *mode)
{
	struct attacker a = { .attack = plant_fifos };
	char path[300];

	need_root();
	attacker_start(f, &a);
	reaper_start(f, mode, 3); /* hung here, in open(2) */
	assert_int_equal(log_wait(f, "is a fifo", f->a[1], 2000), 0);
	assert_int_equal(log_wait(f, "is a symlink", f->a[2], 2000), 0);
	check_victim(f, "FIFO registries");
	reaper_stop_clean(f);
	snprintf(path, sizeof(path), "/tmp/%s-fifo", f->a[2]);
	unlink(path);
	for (int i = 1; i <= 2; i++) {
		snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", f->a[i]);
		assert_int_equal(unlink(path), 0); /* left where they were */
	}
}

static void test_fifo_registry_pidfd(void **state)
{
	fifo_case(*state, "pidfd");
}

static void test_fifo_registry_bpf(void **state)
{
	fifo_case(*state, "bpf");
}

/* Attack 2: B's registry, followed by the reaper, is unlinked by B; A (the
 * victim, root) makes a new one under the name; B's node is killed, the
 * reaper reclaims it and retires B's registry: A's must stay. */
static void test_replaced_registry_kept(void **state)
{
	struct fix *f = *state;
	struct attacker b = { 0 };
	struct shmrpc_node *a1, *a2;
	struct th_dom d;
	char reg[300];
	struct stat st, st2;

	need_root();
	th_dom_init(&d);
	snprintf(d.name, sizeof(d.name), "%s", f->a[0]);
	d.opts.domain = d.name;
	attacker_start(f, &b);
	reaper_start(f, "pidfd", 1);
	assert_int_equal(log_wait(f, ": watch ", f->a[0], 5000), 0);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", f->a[0]);
	assert_int_equal(unlink(reg), 0); /* B's own rm (root does it for B here) */
	a1 = th_open(&d, "a1");		  /* the victim's domain of that name now */
	assert_non_null(a1);
	assert_int_equal(stat(reg, &st), 0);
	assert_int_equal(st.st_uid, 0);
	kill(f->kids[--f->nkids], SIGKILL); /* B's node dies */
	th_wait(f->kids[f->nkids], 5000);
	assert_int_equal(log_wait(f, "reaped", f->a[0], 5000), 0);
	assert_int_equal(log_wait(f, "domain-retired", f->a[0], 5000), 0);
	assert_int_equal(stat(reg, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino);
	a2 = th_open(&d, "a2");
	assert_non_null(a2);
	assert_int_equal(shmrpc_wait_node(a2, "a1", 0), 0); /* one domain still */
	shmrpc_close(a2);
	shmrpc_close(a1);
	reaper_stop_clean(f);
}

/* Attack 3: a live node's slot claims JOINING; a reconcile must not take
 * its files. */
static void test_forged_joining_kept(void **state)
{
	struct fix *f = *state;
	struct shmrpc_node *v = th_open(&f->v, "w"), *p;
	char name[SHMRPC__PATH_MAX], path[SHMRPC__PATH_MAX + 16];
	struct shmrpc__slot *s;
	struct stat st;

	assert_non_null(v);
	p = th_open(&f->v, "p"); /* keeps the domain when w's slot is freed */
	assert_non_null(p);
	reaper_start(f, "pidfd", 0);
	assert_int_equal(log_wait(f, ": watch ", "node=w", 5000), 0);
	s = &v->reg->slots[v->slot];
	atomic_store(&s->state, SHMRPC__SLOT_JOINING);
	kill(f->reaper, SIGHUP); /* reconcile: a sweep of every slot */
	assert_int_equal(log_wait(f, "reconcile reason=SIGHUP", NULL, 5000), 0);
	th_sleep_ms(300);
	shmrpc__node_path(name, v->reg, v->slot, v->gen);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(atomic_load(&s->state), SHMRPC__SLOT_JOINING);
	assert_false(log_has(f, "reaped", "node=w"));
	atomic_store(&s->state, SHMRPC__SLOT_LIVE);
	shmrpc_close(v);
	shmrpc_close(p);
	reaper_stop_clean(f);
}

/* Attack 4a: FAKE_SLOTS slots claim LIVE nodes of invented pid
 * namespaces, each with a locked node file (so each looks alive and needs
 * its process found), rewritten and re-announced for as long as it runs. */
static int fake_slots(struct attacker *a, struct shmrpc_node *n)
{
	struct rlimit rl = { FAKE_SLOTS + 64, FAKE_SLOTS + 64 };
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1 };
	struct shmrpc__reg_hdr *h = own_registry(n, NULL);
	struct shmrpc__slot *s = (struct shmrpc__slot *)(h + 1);
	char name[SHMRPC__PATH_MAX];
	uint32_t i;
	int fd;

	(void)a;
	if (!h || setrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	for (i = 1; i <= FAKE_SLOTS; i++) {
		shmrpc__node_path(name, n->reg, i, 7);
		shm_unlink(name); /* an earlier attacker's */
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl))
			return -1;
		atomic_store(&s[i].gen, 7);
		atomic_store(&s[i].pid, (int32_t)(1000 + i));
		atomic_store(&s[i].pidns, 0xbad0000ull + i);
		atomic_store(&s[i].start_time, 12345);
		s[i].name[0] = 'f';
		s[i].name[1] = '0' + (i % 10);
		atomic_store(&s[i].state, SHMRPC__SLOT_LIVE);
	}
	atomic_store(&h->hi, FAKE_SLOTS + 1);
	epoch_bump(h);
	return 0;
}

/* ... and again and again: every 50 ms all of them leave and come back
 * (each comeback is a new node to place, as far as the reaper knows). */
static void fake_churn(struct attacker *a, struct shmrpc_node *n)
{
	static struct shmrpc__reg_hdr *h;
	struct shmrpc__slot *s;
	uint32_t i;

	(void)a;
	if (!h)
		h = own_registry(n, NULL);
	s = (struct shmrpc__slot *)(h + 1);
	for (i = 1; i <= FAKE_SLOTS; i++)
		atomic_store(&s[i].state, SHMRPC__SLOT_FREE);
	epoch_bump(h);
	th_sleep_ms(25);
	for (i = 1; i <= FAKE_SLOTS; i++)
		atomic_store(&s[i].state, SHMRPC__SLOT_LIVE);
	epoch_bump(h);
	th_sleep_ms(25);
}

/* CROWD sleeping processes, as a busy host has: each walk of /proc costs
 * what it costs there. In one process group, killed at the end. */
#define CROWD 1000

static pid_t crowd_start(void)
{
	struct th_gate g;
	pid_t pid;
	int i;

	th_gate_init(&g);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		for (i = 1; i < CROWD; i++)
			if (fork() == 0)
				for (;;)
					pause();
		th_gate_open(&g);
		for (;;)
			pause();
	}
	assert_int_equal(th_gate_wait(&g, 30000), 0);
	th_gate_close(&g);
	return pid;
}

static void crowd_stop(pid_t pid)
{
	kill(-pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void test_fake_live_slots_of_other_pidns(void **state)
{
	struct fix *f = *state;
	struct attacker a = { .attack = fake_slots, .max_nodes = FAKE_SLOTS + 1 };
	struct victim v;
	double cpu0, t0;
	pid_t crowd;

	need_root();
	crowd = crowd_start();
	reaper_start(f, "pidfd", 1);
	victim_start(f, &v);
	t0 = th_now_ms();
	cpu0 = th_cpu_ms(f->reaper);
	attacker_start(f, &a); /* its slots planted and announced */
	th_sleep_ms(100);      /* the reaper is at them */
	victim_kill(f, &v, "4095 fake LIVE slots");
	print_message(
		"[observed] reaper CPU %.0f ms in %.0f ms; %d nodes of the attacker mirrored\n",
		th_cpu_ms(f->reaper) - cpu0, th_now_ms() - t0, log_count(f, ": watch ", f->a[0]));
	/* and while they come and go (a new node to place each time) */
	a.again = fake_churn;
	kill(f->kids[--f->nkids], SIGKILL);
	th_wait(f->kids[f->nkids], 5000);
	attacker_start(f, &a);
	check_victim(f, "4095 fake LIVE slots coming and going");
	th_sleep_ms(500);
	print_message(
		"[observed] reaper CPU %.0f ms in %.0f ms; %d nodes of the attacker mirrored\n",
		th_cpu_ms(f->reaper) - cpu0, th_now_ms() - t0, log_count(f, ": watch ", f->a[0]));
	reaper_stop_clean(f);
	crowd_stop(crowd);
}

/* Attack 4b: a sparse 65536-slot registry (made by hand: the library
 * reserves every page of the ones it makes) whose last page is written. */
static int sparse_main(void *arg)
{
	const struct fix *f = arg;
	uint64_t size = shmrpc__reg_size(SHMRPC__CAP_MAX);
	struct shmrpc__reg_hdr h = { 0 };
	char reg[300], zero[128] = { 0 };
	int fd;

	become(NOBODY);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", f->a[0]);
	fd = open(reg, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHILD_CHECK(fd >= 0 && !ftruncate(fd, (off_t)size));
	h.abi = SHMRPC__ABI;
	h.hdr_size = sizeof(h);
	h.slot_size = sizeof(struct shmrpc__slot);
	h.ev_cap = SHMRPC__EV_LOG;
	h.ev_size = sizeof(struct shmrpc__ev_entry);
	h.capacity = SHMRPC__CAP_MAX;
	h.total_size = size;
	h.nonce = 0x5a5a5a5a;
	h.mode = 0600;
	h.magic = SHMRPC__REG_MAGIC;
	CHILD_CHECK(pwrite(fd, &h, sizeof(h), 0) == sizeof(h));
	CHILD_CHECK(pwrite(fd, zero, sizeof(zero), (off_t)size - sizeof(zero)) == sizeof(zero));
	return 0;
}

static void test_sparse_registry_costs_nothing(void **state)
{
	struct fix *f = *state;
	char reg[300];
	struct stat st;

	need_root();
	assert_int_equal(th_wait(th_fork(sparse_main, f), 10000), 0);
	reaper_start(f, "pidfd", 1);
	assert_int_equal(log_wait(f, "domain-added", f->a[0], 5000), 0);
	check_victim(f, "sparse registry");
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", f->a[0]);
	assert_int_equal(stat(reg, &st), 0);
	print_message("attacker's 65536-slot registry, followed: %lld KiB allocated\n",
		      (long long)st.st_blocks / 2);
	assert_true(st.st_blocks * 512 < 1024 * 1024);
	reaper_stop_clean(f);
}

/* Attack 4c: NDOMS domains of one user. */
static void test_many_domains_capped(void **state)
{
	struct fix *f = *state;
	struct attacker a = { .ndoms = NDOMS };
	char path[64];
	struct dirent *e;
	DIR *dir;
	int fds = 0;

	need_root();
	attacker_start(f, &a);
	reaper_start(f, "pidfd", NDOMS);
	assert_int_equal(log_wait(f, "cap uid=65534", "domains", 5000), 0);
	check_victim(f, "400 domains of one user");
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)f->reaper);
	dir = opendir(path);
	while (dir && (e = readdir(dir)))
		fds += e->d_name[0] != '.';
	if (dir)
		closedir(dir);
	print_message("[observed] reaper descriptors with %d domains of one user: %d\n", NDOMS,
		      fds);
	assert_true(fds < 256 + 64);
	reaper_stop_clean(f);
}

/* The attacker holds its registry lock for ever, then one of its nodes
 * dies: the reaper must go on with everyone else's cleanup. */
static int hold_lock(struct attacker *a, struct shmrpc_node *n)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1 };
	char path[300];
	int fd;

	(void)a;
	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", n->reg->domain);
	fd = open(path, O_RDWR);
	return fd >= 0 && !fcntl(fd, F_OFD_SETLKW, &fl) ? 0 : -1;
}

static int doomed_main(void *arg)
{
	const struct fix *f = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = f->a[0] };
	struct shmrpc_node *n;

	become(NOBODY);
	CHILD_CHECK_RC(shmrpc_open("doomed", &o, &n), 0);
	for (;;)
		pause();
	return 0;
}

static void test_registry_lock_held_for_ever(void **state)
{
	struct fix *f = *state;
	struct attacker a = { .attack = hold_lock };
	pid_t doomed;

	need_root();
	doomed = th_fork(doomed_main, f);
	th_sleep_ms(200);
	attacker_start(f, &a); /* holds the lock from now on */
	reaper_start(f, "pidfd", 1);
	assert_int_equal(log_wait(f, ": watch ", "node=doomed", 5000), 0);
	kill(doomed, SIGKILL);
	th_wait(doomed, 5000);
	assert_int_equal(log_wait(f, "cap uid=65534", "registry lock held", 5000), 0);
	check_victim(f, "a registry lock held for ever");
	reaper_stop_clean(f);
}

/* The attacker truncates its registry, which the reaper maps. */
static void test_truncated_registry_survived(void **state)
{
	struct fix *f = *state;
	struct attacker a = { 0 };
	char reg[300];
	int st;

	need_root();
	attacker_start(f, &a);
	reaper_start(f, "pidfd", 1);
	assert_int_equal(log_wait(f, "domain-added", f->a[0], 5000), 0);
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", f->a[0]);
	assert_int_equal(truncate(reg, 0), 0); /* its owner may */
	th_sleep_ms(1500);		       /* the reaper's heartbeat writes the header */
	assert_int_equal(waitpid(f->reaper, &st, WNOHANG), 0); /* alive */
	assert_int_equal(log_wait(f, "mapped pages vanished", NULL, 3000), 0);
	check_victim(f, "a truncated registry");
	reaper_stop_clean(f);
}

/*
 * A group-mode domain (0660, group nogroup) of root with a member, nobody
 * (whose primary group it is). The member's node dies: its segment,
 * nobody's file, is unlinked as nobody (the reaper acts as root here, whom
 * the sticky bit would let unlink it anyway: this is the path, not the
 * limit, which the multi-user suite tests with two plain users).
 */
struct grp_node {
	const struct th_dom *d;
	uid_t uid; /* 0: root with group nogroup */
	const char *name;
	struct th_gate ready;
};

static int grp_main(void *arg)
{
	struct grp_node *g = arg;
	struct shmrpc_node *n;

	if (g->uid)
		become(g->uid);
	else
		CHILD_CHECK(!setresgid(NOBODY, NOBODY, NOBODY)); /* files get group nogroup */
	CHILD_CHECK_RC(shmrpc_open(g->name, &g->d->opts, &n), 0);
	th_gate_open(&g->ready);
	for (;;)
		pause();
	return 0;
}

static void test_group_member_files_unlinked_as_member(void **state)
{
	struct fix *f = *state;
	struct grp_node o = { .d = &f->v, .uid = 0, .name = "o" };
	struct grp_node m = { .d = &f->v, .uid = NOBODY, .name = "m" };
	double end;
	char name[SHMRPC__PATH_MAX], path[SHMRPC__PATH_MAX + 16];
	struct shmrpc_kt_obs *obs = NULL;
	struct shmrpc__reg_hdr h;
	struct shmrpc_kt_id id;
	struct stat st;
	int fd;

	need_root();
	f->v.opts.mode = 0660;
	th_gate_init(&o.ready);
	th_gate_init(&m.ready);
	kid_add(f, th_fork(grp_main, &o));
	assert_int_equal(th_gate_wait(&o.ready, 10000), 0);
	kid_add(f, th_fork(grp_main, &m));
	assert_int_equal(th_gate_wait(&m.ready, 10000), 0);
	reaper_start(f, "pidfd", 0);
	assert_int_equal(log_wait(f, ": watch ", "node=m", 5000), 0);
	assert_int_equal(shmrpc_kt_obs_open(&obs, f->v.name), 0);
	assert_int_equal(shmrpc_kt_obs_find(obs, "m", &id), 0);
	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", f->v.name);
	fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, &h, sizeof(h), 0), sizeof(h));
	close(fd);
	shmrpc__node_path_key(name, f->v.name, h.name_key, id.slot, id.gen);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, NOBODY);
	kill(f->kids[1], SIGKILL);
	assert_int_equal(shmrpc_kt_obs_wait_gone(obs, &id, 5000, NULL), 0);
	assert_int_equal(stat(path, &st), -1); /* gone, unlinked as its owner */
	assert_int_equal(log_wait(f, "unlinked-as-member", "uid=65534", 2000), 0);
	shmrpc_kt_obs_close(obs);
	kill(f->kids[0], SIGKILL); /* the owner's node too: the domain goes */
	end = th_now_ms() + 5000;
	while (th_shm_count(f->v.name) && th_now_ms() < end)
		th_sleep_ms(2);
	reaper_stop_clean(f);
	th_gate_close(&o.ready);
	th_gate_close(&m.ready);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_fifo_registry_pidfd),
		T(test_fifo_registry_bpf),
		T(test_replaced_registry_kept),
		T(test_forged_joining_kept),
		T(test_fake_live_slots_of_other_pidns),
		T(test_sparse_registry_costs_nothing),
		T(test_many_domains_capped),
		T(test_registry_lock_held_for_ever),
		T(test_truncated_registry_survived),
		T(test_group_member_files_unlinked_as_member),
#undef T
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	setenv("SHMRPC_SAFETY_MS", "60000", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
