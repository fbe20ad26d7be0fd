// SPDX-License-Identifier: MIT
/*
 * Security between users: exhausting the root reaper (issue 15, attack 4;
 * docs/security.md). An unprivileged user B may make the reaper do work for
 * his own domains, bounded per owner; he must not make it slow for another
 * user A, nor make it hold descriptors, memory or CPU without bound. Each
 * attack runs as a real process of B against shmrpc-reaper in BPF and in
 * pidfd mode, with the checks of test_security.c (A's node killed during
 * the attack still reclaimed within SEC_RECLAIM_BOUND_MS, her files and
 * ring untouched, SIGTERM stops the reaper) and, measured from /proc:
 *
 *  - fake LIVE slots: 4095 slots of B's registry claim nodes in invented
 *    pid namespaces, re-claimed as fast as the reaper frees them: the
 *    reaper's CPU stays well below one core, and its log lines about B's
 *    files stay within their per-user budget while A's are all there;
 *  - an epoch storm: B bumps his registry's epoch as fast as he can: the
 *    reaper's work for him is bounded per second, its CPU stays low;
 *  - a sparse registry of 65536 slots (B punches its reserved pages out:
 *    8 MiB of holes, one written page at its end): the reaper must not
 *    allocate its holes (tmpfs pages charged to root), at start-up nor
 *    while following it;
 *  - many fake domains (3000 valid, empty, sparse 128 KiB registries, and
 *    1000 never published): the reaper's descriptors, the tmpfs it makes
 *    allocate and its shared memory stay bounded, and a domain A makes
 *    after the flood is followed at once;
 *  - a storm of registry names made and removed (more events than the
 *    reaper's inotify queue holds): a domain A makes meanwhile is followed
 *    at once.
 * Every number is printed ([observed]); the bounds asserted are generous
 * and far from what an unbounded reaper does.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "harness_sec.h"
#include "layout.h"

#define FAKE_SLOTS 4096	   /* capacity of B's registry of fake nodes */
#define SPARSE_SLOTS 65536 /* SHMRPC__CAP_MAX */
#define FAKE_DOMAINS 3000
#define EMPTY_DOMAINS 1000 /* registries never published (size 0) */
#define FDS_BOUND (FAKE_DOMAINS / 2)
#define ALLOC_BOUND_KB (32 * 1024)

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

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

/* ------------------------------------------------------------ B's registry */

struct b_reg {
	char dom[SHMRPC_NAME_MAX + 1];
	uint32_t capacity;
	int extra_slot;	      /* with a written page this far: -1 none */
	bool fake;	      /* keep FAKE_SLOTS - 1 slots claiming LIVE */
	bool bump;	      /* bump the epoch (and wake) as fast as it can */
	struct th_gate ready; /* joined, first claims made */
	struct th_gate stop;
	struct th_gate more; /* sparse: write one more far slot */
};

struct reg_map {
	struct shmrpc__reg_hdr *h;
	struct shmrpc__slot *slots;
	size_t size;
	int fd;
};

static void reg_map_own(const char *dom, struct reg_map *m)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", dom);
	fd = open(path, O_RDWR | O_NOFOLLOW);
	CHILD_CHECK(fd >= 0 && !fstat(fd, &st));
	m->size = (size_t)st.st_size;
	m->h = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHILD_CHECK(m->h != MAP_FAILED);
	m->fd = fd;
	m->slots = (struct shmrpc__slot *)(m->h + 1);
}

static void epoch_bump(struct reg_map *m)
{
	atomic_fetch_add(&m->h->epoch, 1);
	syscall(SYS_futex, &m->h->epoch, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* Slot i claims a LIVE node "f<i>" of a pid namespace nobody has. */
static void fake_claim(struct shmrpc__slot *s, uint32_t i)
{
	uint64_t name = 0;
	char buf[8];
	int n = snprintf(buf, sizeof(buf), "f%u", i);

	memcpy(&name, buf, (size_t)n);
	atomic_store(&s->gen, atomic_load(&s->gen) + 1);
	atomic_store(&s->pid, (int32_t)(3000000 + i));
	atomic_store(&s->uid, (uint32_t)getuid());
	atomic_store(&s->start_time, 12345);
	atomic_store(&s->pidns, 0xf000000000ull + i);
	atomic_store(&s->ring_bytes, SHMRPC__RING_DEFAULT);
	for (int k = 0; k < 8; k++)
		atomic_store(&s->name[k], k ? 0 : name);
	atomic_store(&s->state, SHMRPC__SLOT_LIVE);
}

/* Re-claim every fake slot the reaper freed; how many. */
static int fake_refill(struct reg_map *m)
{
	int n = 0;

	for (uint32_t i = 1; i < FAKE_SLOTS; i++)
		if (atomic_load(&m->slots[i].state) == SHMRPC__SLOT_FREE) {
			fake_claim(&m->slots[i], i);
			n++;
		}
	if (n)
		epoch_bump(m);
	return n;
}

static int b_reg_main(void *arg)
{
	struct b_reg *b = arg;
	struct shmrpc_opts o = {
		.sz = sizeof(o), .domain = b->dom, .max_nodes = b->capacity, .backend = "futex"
	};
	struct shmrpc_node *n;
	struct reg_map m;
	long refills = 0;

	CHILD_CHECK_RC(shmrpc_open("b1", &o, &n), 0);
	reg_map_own(b->dom, &m);
	if (b->extra_slot >= 0) {
		/* Sparse: the library reserves a registry's pages at creation;
		 * B gives them back (his own file), all but the first (header,
		 * his slot) and one at the far end. */
		CHILD_CHECK_RC(fallocate(m.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 SHMRPC__PAGE, (off_t)m.size - SHMRPC__PAGE),
			       0);
		atomic_store(&m.slots[b->extra_slot].state, SHMRPC__SLOT_FREE); /* a page */
	}
	if (b->fake)
		refills += fake_refill(&m);
	th_gate_open(&b->ready);
	for (long bumps = 0; b->bump;) {
		for (int k = 0; k < 256; k++, bumps++)
			epoch_bump(&m);
		if (!th_gate_wait(&b->stop, 0)) {
			printf("[observed] B bumped his epoch %ld times\n", bumps);
			return 0;
		}
	}
	for (;;) {
		if (!th_gate_wait(&b->stop, b->fake ? 20 : 10))
			break;
		if (b->fake)
			refills += fake_refill(&m);
		if (!th_gate_wait(&b->more, 0)) {
			atomic_store(&m.slots[SPARSE_SLOTS / 2 + 77].state, SHMRPC__SLOT_FREE);
			epoch_bump(&m);
		}
	}
	if (b->fake)
		printf("[observed] B claimed %ld fake LIVE slots in all\n", refills);
	return 0;
}

static pid_t b_reg_start(struct b_reg *b)
{
	pid_t pid;

	th_gate_init(&b->ready);
	th_gate_init(&b->stop);
	th_gate_init(&b->more);
	pid = sec_fork_as(SEC_B, b_reg_main, b);
	assert_true(pid > 0);
	assert_int_equal(th_gate_wait(&b->ready, 20000), 0);
	return pid;
}

static void b_reg_stop(struct b_reg *b, pid_t pid)
{
	th_gate_open(&b->stop);
	th_wait(pid, 10000);
	sec_untrack(pid);
}

/* The reaper's share of one CPU over @ms, in percent. */
static double cpu_pct(pid_t pid, int ms)
{
	double c0 = sec_cpu_ms(pid), t0 = th_now_ms();

	nap_ms(ms);
	return 100.0 * (sec_cpu_ms(pid) - c0) / (th_now_ms() - t0);
}

/* ====================================================== fake LIVE slots */

/*
 * The reaper's log about one user's files is bounded (OWNER_LOG_LINES a
 * second in tools/reaper/reaper.h, then one "log-limit" line): lines
 * naming B's domain @bdom, per second of the attack, and the limit's line;
 * A's own lines (her victims' reclaims in @alat) are all there. Failed
 * checks are printed and counted.
 */
static int log_bounded(struct sec_case *c, const char *bdom, int lines_b, double secs)
{
	char want[SHMRPC_NAME_MAX + 16], lat[SHMRPC_NAME_MAX + 32];
	int bad = 0, limit = sec_log_count(&c->r, "log-limit uid=", NULL, NULL);

	snprintf(want, sizeof(want), "domain=%s ", bdom);
	snprintf(lat, sizeof(lat), "reaped domain=%s ", c->ag.lat);
	print_message("[observed] %s reaper: %d lines about B's domain in %.1f s (%.0f a second), "
		      "%d log-limit lines\n",
		      c->mode, lines_b, secs, lines_b / secs, limit);
	if (lines_b > 80 * secs + 80 && ++bad)
		print_message("FAILED CHECK: %.0f lines a second about B's files\n",
			      lines_b / secs);
	if (!limit && ++bad)
		print_message("FAILED CHECK: no log-limit line saying what was left out\n");
	if (sec_log_count(&c->r, lat, NULL, NULL) < 2 && ++bad)
		print_message("FAILED CHECK: A's reclaims are missing from the log\n");
	return bad;
}

static void fake_live(struct sec_case *c, const char *mode)
{
	struct b_reg b = { .dom = "bx", .capacity = FAKE_SLOTS, .extra_slot = -1, .fake = true };
	double pct, cpu0, t0, secs;
	long log0;
	int bad, lines0, lines;
	pid_t pid;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A, "xl", 0);
	c->label = "4095 fake LIVE slots in invented pid namespaces, re-claimed every 20 ms";
	cpu0 = sec_cpu_ms(c->r.pid);
	log0 = sec_log_bytes(&c->r);
	lines0 = sec_log_count(&c->r, "domain=bx ", NULL, NULL);
	t0 = th_now_ms();
	pid = b_reg_start(&b);
	nap_ms(300);
	pct = cpu_pct(c->r.pid, 1000);
	print_message("[observed] %s reaper, %s: CPU %.0f%% of a core during the attack "
		      "(%.0f ms since it began); it logged %ld KiB in %.1f s\n",
		      mode, sec_symlinks_label(), pct, sec_cpu_ms(c->r.pid) - cpu0,
		      (sec_log_bytes(&c->r) - log0) / 1024, (th_now_ms() - t0) / 1000);
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	lines = sec_log_count(&c->r, "domain=bx ", NULL, NULL) - lines0;
	secs = (th_now_ms() - t0) / 1000;
	b_reg_stop(&b, pid);
	if (pct > 80 && ++bad)
		print_message("FAILED CHECK: the reaper spent %.0f%% of a core on B's fake slots\n",
			      pct);
	bad += log_bounded(c, "bx", lines, secs);
	assert_int_equal(bad, 0);
}

/* ====================================================== epoch storm */

/*
 * B bumps his registry's epoch (and wakes its sleepers) as fast as he can:
 * each bump asks the reaper for a sync of his 4096 slots. The reaper's
 * work for him is bounded per second (OWNER_SEC_UNITS), not only per loop
 * turn: its CPU stays low, and A's node killed meanwhile is reclaimed at
 * once. Before that bound it spent 20-45% of a core on B.
 */
#define STORM_CPU_BOUND 15 /* percent of a core; the budget is ~5% */

static void epoch_storm(struct sec_case *c, const char *mode)
{
	struct b_reg b = { .dom = "be", .capacity = FAKE_SLOTS, .extra_slot = -1, .bump = true };
	double pct;
	int bad;
	pid_t pid;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A, "es", 0);
	c->label = "B bumps his epoch as fast as he can";
	pid = b_reg_start(&b);
	nap_ms(300);
	pct = cpu_pct(c->r.pid, 2000);
	print_message("[observed] %s reaper, %s: CPU %.1f%% of a core while B bumps his epoch\n",
		      mode, sec_symlinks_label(), pct);
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	b_reg_stop(&b, pid);
	if (pct > STORM_CPU_BOUND && ++bad)
		print_message("FAILED CHECK: the reaper spent %.0f%% of a core on B's epoch "
			      "(bound %d%%)\n",
			      pct, STORM_CPU_BOUND);
	assert_int_equal(bad, 0);
}

/* ====================================================== sparse registry */

static void sparse(struct sec_case *c, const char *mode)
{
	struct b_reg b = { .dom = "bs", .capacity = SPARSE_SLOTS, .extra_slot = SPARSE_SLOTS - 1 };
	long kb0, kb1, kb2, rss;
	pid_t pid;
	int bad;

	/* Made before the reaper starts: its start-up scan meets it. */
	pid = b_reg_start(&b);
	kb0 = sec_shm_kb(sec.b, "shmrpc.bs.");
	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A, "sp", 0);
	c->label = "sparse 65536-slot registry";
	sec_reaper_barrier(&c->r, 3000);
	kb1 = sec_shm_kb(sec.b, "shmrpc.bs.");
	/* ...and while it follows it: another far page, an epoch bump. */
	th_gate_open(&b.more);
	nap_ms(100);
	sec_reaper_barrier(&c->r, 3000);
	kb2 = sec_shm_kb(sec.b, "shmrpc.bs.");
	rss = sec_proc_kb(c->r.pid, "RssShmem");
	print_message("[observed] %s reaper, %s: B's files hold %ld KiB; after the reaper's "
		      "start %ld KiB, after a sync %ld KiB (4 KiB B's own); reaper RssShmem "
		      "%ld KiB\n",
		      mode, sec_symlinks_label(), kb0, kb1, kb2, rss);
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	b_reg_stop(&b, pid);
	if (kb1 - kb0 > 1024 && ++bad)
		print_message("FAILED CHECK: the reaper's start allocated %ld KiB of B's holes\n",
			      kb1 - kb0);
	if (kb2 - kb1 > 1024 + 4 && ++bad)
		print_message("FAILED CHECK: following it allocated %ld KiB of B's holes\n",
			      kb2 - kb1 - 4);
	assert_int_equal(bad, 0);
}

/* ====================================================== many domains */

struct b_doms {
	int made;
};

/* A published, empty registry of the default capacity, sparse: its first
 * page copied from a real one, FAKE_DOMAINS times under other names. */
static int b_doms_main(void *arg)
{
	struct b_doms *b = arg;
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = "bseed", .backend = "futex" };
	static uint8_t page[SHMRPC__PAGE];
	char path[PATH_MAX];
	struct shmrpc_node *n;
	struct reg_map m;
	int fd;

	CHILD_CHECK_RC(shmrpc_open("b1", &o, &n), 0);
	reg_map_own("bseed", &m);
	memcpy(page, m.h, sizeof(page));
	shmrpc_close(n);
	((struct shmrpc__slot *)(page + sizeof(struct shmrpc__reg_hdr)))->state = 0;
	for (b->made = 0; b->made < FAKE_DOMAINS; b->made++) {
		snprintf(path, sizeof(path), "/dev/shm/shmrpc.bf%d.reg", b->made);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(!ftruncate(fd, (off_t)m.size));
		CHILD_CHECK(pwrite(fd, page, sizeof(page), 0) == sizeof(page));
		close(fd);
	}
	for (int i = 0; i < EMPTY_DOMAINS; i++) {
		snprintf(path, sizeof(path), "/dev/shm/shmrpc.bu%d.reg", i);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		CHILD_CHECK(fd >= 0);
		close(fd);
	}
	return 0;
}

/* A domain A makes after B's flood is followed like any: the caps are B's. */
static double new_domain_ms(struct sec_case *c, const char *dom)
{
	char lat[SHMRPC_NAME_MAX + 32];
	struct sec_agent ag;
	double ms = -1;

	if (sec_agent_start(&ag, SEC_A, dom, 0))
		return -1;
	snprintf(lat, sizeof(lat), ": watch domain=%s-lat ", dom);
	if (!sec_log_wait(&c->r, 1, lat, "node=k ", NULL, 3000))
		ms = sec_agent_reclaim_ms(&ag, SEC_RECLAIM_BOUND_MS + 500);
	sec_agent_stop(&ag);
	return ms;
}

static void many_domains(struct sec_case *c, const char *mode)
{
	struct b_doms b;
	int fds0, fds, fds_max = 0, bad;
	long rss0, rss, rss_max = 0, kb;
	double cpu0, t0, new_ms, cpu, wall;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A, "md", 0);
	c->label = "3000 fake domains and 1000 unpublished ones";
	fds0 = sec_proc_fds(c->r.pid);
	rss0 = sec_proc_kb(c->r.pid, "RssShmem");
	cpu0 = sec_cpu_ms(c->r.pid);
	t0 = th_now_ms();
	assert_int_equal(sec_run_as(SEC_B, b_doms_main, &b, 20000), 0);
	for (int i = 0; i < 30; i++) { /* 1.5 s: what it holds while it follows them */
		fds = sec_proc_fds(c->r.pid);
		rss = sec_proc_kb(c->r.pid, "RssShmem");
		fds_max = fds > fds_max ? fds : fds_max;
		rss_max = rss > rss_max ? rss : rss_max;
		nap_ms(50);
	}
	kb = sec_shm_kb(sec.b, "shmrpc.bf") - FAKE_DOMAINS * (long)SHMRPC__PAGE / 1024;
	cpu = sec_cpu_ms(c->r.pid) - cpu0;
	wall = th_now_ms() - t0;
	new_ms = new_domain_ms(c, "md2");
	print_message("[observed] %s reaper, %s: A's domain made after the flood: its node "
		      "killed -> reclaimed in %.2f ms\n",
		      mode, sec_symlinks_label(), new_ms);
	print_message("[observed] %s reaper, %s: %d fake domains made; reaper descriptors %d -> "
		      "max %d, RssShmem %ld -> max %ld KiB, CPU %.0f ms in %.0f ms; it made "
		      "tmpfs allocate %ld KiB of B's holes\n",
		      mode, sec_symlinks_label(), FAKE_DOMAINS, fds0, fds_max, rss0, rss_max, cpu,
		      wall, kb);
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	if ((new_ms < 0 || new_ms > SEC_RECLAIM_BOUND_MS) && ++bad)
		print_message("FAILED CHECK: A's new domain is not followed in time\n");
	if (fds_max - fds0 > FDS_BOUND && ++bad)
		print_message("FAILED CHECK: the reaper opened %d descriptors for B's domains\n",
			      fds_max - fds0);
	if (kb > ALLOC_BOUND_KB && ++bad)
		print_message("FAILED CHECK: the reaper made tmpfs allocate %ld KiB of B's holes\n",
			      kb);
	if (cpu > 0.8 * wall && ++bad)
		print_message("FAILED CHECK: the reaper spent %.0f ms of CPU in %.0f ms\n", cpu,
			      wall);
	if (rss_max - rss0 > 2 * ALLOC_BOUND_KB && ++bad)
		print_message("FAILED CHECK: the reaper mapped %ld KiB of B's registries\n",
			      rss_max - rss0);
	assert_int_equal(bad, 0);
}

/* ====================================================== inotify storm */

struct b_storm {
	int ms;
};

/* Registry names made and removed as fast as B can: more events than the
 * reaper's inotify queue holds (fs.inotify.max_queued_events). */
static int b_storm_main(void *arg)
{
	const struct b_storm *s = arg;
	double end = th_now_ms() + s->ms;
	char path[PATH_MAX];
	long n = 0;
	int fd;

	while (th_now_ms() < end)
		for (int k = 0; k < 256; k++, n++) {
			snprintf(path, sizeof(path), "/dev/shm/shmrpc.st%d.reg", k);
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
			if (fd >= 0)
				close(fd);
			unlink(path);
		}
	printf("[observed] B made and removed %ld registry names in %d ms\n", n, s->ms);
	return 0;
}

/* During the storm (its events overflow the reaper's inotify queue), A
 * makes a new domain: it is followed in time anyway. */
static void storm(struct sec_case *c, const char *mode)
{
	struct b_storm s = { 2500 };
	double new_ms;
	int bad;
	pid_t pid;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A, "so", 0);
	c->label = "inotify storm of registry names";
	pid = sec_fork_as(SEC_B, b_storm_main, &s);
	assert_true(pid > 0);
	nap_ms(300);
	new_ms = new_domain_ms(c, "so2");
	print_message("[observed] %s reaper, %s: A's domain made during B's storm: its node "
		      "killed -> reclaimed in %.2f ms; the reaper logged %d reconciles\n",
		      mode, sec_symlinks_label(), new_ms,
		      sec_log_count(&c->r, "reconcile", NULL, NULL));
	th_wait(pid, 10000);
	sec_untrack(pid);
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	if ((new_ms < 0 || new_ms > SEC_RECLAIM_BOUND_MS) && ++bad)
		print_message("FAILED CHECK: A's new domain is not followed in time\n");
	assert_int_equal(bad, 0);
}

/* ====================================================== main */

#define BOTH(fn)                                    \
	static void test_##fn##_bpf(void **state)   \
	{                                           \
		fn(*state, "bpf");                  \
	}                                           \
	static void test_##fn##_pidfd(void **state) \
	{                                           \
		fn(*state, "pidfd");                \
	}

BOTH(fake_live)
BOTH(epoch_storm)
BOTH(sparse)
BOTH(many_domains)
BOTH(storm)

int main(void)
{
#define T(fn)                                                              \
	cmocka_unit_test_setup_teardown(test_##fn##_bpf, setup, teardown), \
		cmocka_unit_test_setup_teardown(test_##fn##_pidfd, setup, teardown)
	const struct CMUnitTest tests[] = { T(fake_live), T(epoch_storm), T(sparse),
					    T(many_domains), T(storm) };
#undef T
	int rc = sec_init("test_security_exhaust");

	if (rc)
		return rc > 0 ? 0 : 1;
	return sec_run_groups("test_security_exhaust", tests, sizeof(tests) / sizeof(tests[0]));
}
