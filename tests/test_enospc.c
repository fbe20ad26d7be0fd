// SPDX-License-Identifier: MIT
/*
 * A full /dev/shm (issue 9): every segment the library creates (registry,
 * node segment, ring) is reserved in full when it is created, so a lack of
 * space is -ENOSPC from the call that asked for it (shmrpc_open, the first
 * send or reserve to a node, shmrpc_warmup; shmrpc_broadcast does not count
 * that target), never a SIGBUS in whoever touches a page later; nothing
 * half-made stays in /dev/shm, and the node that got -ENOSPC keeps working.
 *
 * Each case runs in a child that enters a private mount namespace and
 * mounts a small tmpfs at /dev/shm, then forks the nodes as separate
 * processes in it. Root only (mount(2)); skipped otherwise, or where the
 * namespace is refused (a container without CAP_SYS_ADMIN).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h" /* white box: a node's out_gen table, the registry's scan bound */
#include "names.h"
#include "nodeseg.h"
#include "registry.h"
#include "seg.h"

#define SKIP_RC 77
#define BIG 60000 /* the message size */
#define NMSG 20

/* Entries in /dev/shm (in a case's private tmpfs, all are ours), each
 * named on stderr: they are left over. */
static int shm_entries(void)
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *e;
	int count = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		fprintf(stderr, "left in /dev/shm: %s\n", e->d_name);
		count++;
	}
	closedir(dir);
	return count;
}

/* A fresh tmpfs of @size at /dev/shm, over the previous one. */
static int shm_mount(const char *size)
{
	char opts[64];

	umount2("/dev/shm", MNT_DETACH); /* the previous case's, if any */
	snprintf(opts, sizeof(opts), "size=%s,mode=1777", size);
	if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
		fprintf(stderr, "mount tmpfs %s at /dev/shm: %s\n", opts, strerror(errno));
		return -1;
	}
	return 0;
}

struct ns_case {
	struct th_dom *d;
	int (*body)(struct th_dom *d);
};

static int ns_main(void *arg)
{
	struct ns_case *c = arg;
	int rc;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		fprintf(stderr, "private mount namespace: %s\n", strerror(errno));
		return SKIP_RC;
	}
	rc = c->body(c->d);
	/* every node closed: nothing of it is left */
	CHILD_CHECK(shm_entries() == 0);
	return rc;
}

/* Run @body in a child with a private mount namespace. */
static void run_in_ns(struct th_dom *d, int (*body)(struct th_dom *d))
{
	struct ns_case c = { d, body };
	int rc;

	if (geteuid() != 0) {
		print_message("skip: mounting a small tmpfs at /dev/shm needs root\n");
		skip();
	}
	rc = th_wait(th_fork(ns_main, &c), 120000);
	if (rc == SKIP_RC) {
		print_message("skip: no private mount namespace here (the reason is above)\n");
		skip();
	}
	assert_int_equal(rc, 0); /* 128 + 7 would be SIGBUS */
}

static struct shmrpc_node *node(const struct th_dom *d, const char *name, uint32_t ring_bytes,
				uint32_t max_nodes)
{
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL;
	int rc;

	o.ring_bytes = ring_bytes;
	o.max_nodes = max_nodes;
	rc = shmrpc_open(name, &o, &n);
	if (rc)
		fprintf(stderr, "open %s: %s (%s)\n", name, strerror(-rc), shmrpc_last_error());
	return n;
}

static bool said(const char *text)
{
	if (strstr(shmrpc_last_error(), text))
		return true;
	fprintf(stderr, "shmrpc_last_error() is \"%s\", without \"%s\"\n", shmrpc_last_error(),
		text);
	return false;
}

/* Our out_gen entry for node @to: what a reaper of ours, or shmrpc-top,
 * would take for a ring of ours to it. */
static uint32_t out_gen(struct shmrpc_node *n, const char *to)
{
	struct shmrpc__slot_view v;
	uint32_t slot;

	if (shmrpc__reg_find(n->reg, to, &slot, &v))
		return UINT32_MAX;
	return atomic_load(&shmrpc__node_tab(n->seg, shmrpc__node_out_off(n->reg->capacity))[slot]);
}

/* ------------------------------------------------------------ open */

struct opener {
	struct th_dom *d;
	struct th_gate go;
	const char *name;
	const char *why;
};

static int open_refused(void *arg)
{
	struct opener *o = arg;
	struct shmrpc_node *n = NULL;

	CHILD_CHECK(th_gate_wait(&o->go, 10000) == 0);
	CHILD_CHECK_RC(shmrpc_open(o->name, &o->d->opts, &n), -ENOSPC);
	CHILD_CHECK(!n && said(o->why) && said("/dev/shm is full"));
	return 0;
}

static int small_pair_talks(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *a = node(d, "a", 0, 64), *b = node(d, "b", 4096, 64);
	char buf[8];

	CHILD_CHECK(a && b);
	CHILD_CHECK_RC(shmrpc_send(a, "b", "hello", 5, 1000), 0);
	CHILD_CHECK_RC(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 5);
	shmrpc_close(a);
	shmrpc_close(b);
	return 0;
}

/*
 * What openers of a file being reserved can meet (seg.c relies on the size
 * appearing only once every page is reserved; were it otherwise, the
 * racing creators below would see a half-made registry).
 */
static void observe_failed_reserve(void)
{
	int fd = shm_open("/probe", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	struct stat st = { 0 };
	int rc = fd < 0 ? -1 : fallocate(fd, 0, 0, 1 << 20);

	rc = rc ? -errno : 0;
	if (fd >= 0)
		fstat(fd, &st);
	print_message("[observed] fallocate of 1 MiB on a 96 KiB tmpfs: %s; size after %ld, "
		      "blocks after %ld\n",
		      strerror(-rc), (long)st.st_size, (long)st.st_blocks);
	shm_unlink("/probe");
	if (fd >= 0)
		close(fd);
}

/* The registry does not fit: every opener gets -ENOSPC, also when several
 * race to create it, and none uses a half-made one. */
static int registry_body(struct th_dom *d)
{
	struct opener o = { .d = d, .name = "a", .why = "registry of domain" };
	struct statvfs sv;
	pid_t pid[4];
	int i;

	/* the default registry: 1024 slots and the event log, 39 pages; the
	 * tmpfs has 24 (a domain of 64 slots fits: registry 9, two node
	 * segments 6, a ring 2) */
	CHILD_CHECK(shm_mount("96k") == 0);
	observe_failed_reserve();
	th_gate_init(&o.go);
	for (i = 0; i < 4; i++)
		pid[i] = th_fork(open_refused, &o);
	for (i = 0; i < 4; i++)
		th_gate_open(&o.go);
	for (i = 0; i < 4; i++)
		CHILD_CHECK_RC(th_wait(pid[i], 20000), 0);
	th_gate_close(&o.go);
	CHILD_CHECK(shm_entries() == 0);
	CHILD_CHECK(statvfs("/dev/shm", &sv) == 0);
	print_message("4 racing creators of a registry too big for the tmpfs: all -ENOSPC, "
		      "%lu of %lu blocks in use after\n",
		      (unsigned long)(sv.f_blocks - sv.f_bfree), (unsigned long)sv.f_blocks);
	CHILD_CHECK(sv.f_bfree == sv.f_blocks);
	/* a domain that fits works on the same tmpfs */
	CHILD_CHECK_RC(th_wait(th_fork(small_pair_talks, d), 20000), 0);
	return 0;
}

static void test_open_registry_enospc(void **state)
{
	run_in_ns(*state, registry_body);
}

struct lone {
	struct th_dom *d;
	struct th_gate ready, done;
};

static int lone_node(void *arg)
{
	struct lone *l = arg;
	struct shmrpc_node *a = node(l->d, "a", 0, 64);
	char names[4][SHMRPC_NAME_MAX + 1];

	CHILD_CHECK(a);
	th_gate_open(&l->ready);
	CHILD_CHECK(th_gate_wait(&l->done, 20000) == 0);
	/* b's slot went back: a is alone, and still a working node */
	CHILD_CHECK_RC(shmrpc_nodes(a, names, 4), 1);
	CHILD_CHECK_RC(shmrpc_is_local(a, "b"), 0);
	CHILD_CHECK_RC(shmrpc_warmup(a), 0);
	shmrpc_close(a);
	return 0;
}

/* The registry fits, a node segment does not. */
static int node_segment_body(struct th_dom *d)
{
	struct opener o = { .d = d, .name = "a", .why = "node segment of 'a'" };
	struct lone l = { .d = d };
	pid_t pa;

	d->opts.max_nodes = 64; /* registry 9 pages (the event log 6), node segment 3 */
	/* the first node: its registry fits, its segment does not, and the
	 * registry goes with it (no node left in the domain) */
	CHILD_CHECK(shm_mount("44k") == 0);
	th_gate_init(&o.go);
	th_gate_open(&o.go);
	CHILD_CHECK_RC(th_wait(th_fork(open_refused, &o), 20000), 0);
	th_gate_close(&o.go);
	CHILD_CHECK(shm_entries() == 0);
	/* a second node, while a first one lives */
	CHILD_CHECK(shm_mount("56k") == 0);
	th_gate_init(&l.ready);
	th_gate_init(&l.done);
	pa = th_fork(lone_node, &l);
	CHILD_CHECK(th_gate_wait(&l.ready, 20000) == 0);
	o.name = "b";
	o.why = "node segment of 'b'";
	th_gate_init(&o.go);
	th_gate_open(&o.go);
	CHILD_CHECK_RC(th_wait(th_fork(open_refused, &o), 20000), 0);
	th_gate_close(&o.go);
	th_gate_open(&l.done);
	CHILD_CHECK_RC(th_wait(pa, 20000), 0);
	th_gate_close(&l.ready);
	th_gate_close(&l.done);
	return 0;
}

static void test_open_node_segment_enospc(void **state)
{
	run_in_ns(*state, node_segment_body);
}

/* ---------------------------------------- connect, warmup, broadcast */

/*
 * The setup on a 512 KiB tmpfs: "a" takes 1 MiB rings, "c" 128 KiB
 * ones, "b" sends 60000-byte messages. Registry (156 KiB) and three node
 * segments (48 KiB) fit, a ring to "a" (1028 KiB) never does, a ring to
 * "c" (132 KiB) does. Every node is a process of its own.
 */
struct trio {
	struct th_dom *d;
	struct th_gate done; /* b is finished */
	int (*b_body)(struct shmrpc_node *b, char *msg);
};

static int trio_a(void *arg)
{
	struct trio *t = arg;
	struct shmrpc_node *a = node(t->d, "a", 1u << 20, 0);
	char buf[16];

	CHILD_CHECK(a);
	CHILD_CHECK(th_gate_wait(&t->done, 60000) == 0);
	CHILD_CHECK_RC(shmrpc_recv(a, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(a);
	return 0;
}

static int trio_c(void *arg)
{
	struct trio *t = arg;
	struct shmrpc_node *c = node(t->d, "c", 128u << 10, 0);
	static char buf[BIG];
	char from[SHMRPC_NAME_MAX + 1];
	int i;

	CHILD_CHECK(c);
	for (i = 0; i < NMSG; i++) {
		CHILD_CHECK_RC(shmrpc_recv(c, buf, sizeof(buf), from, 20000), BIG);
		CHILD_CHECK(!strcmp(from, "b") && th_check(buf, BIG, 1, (uint64_t)i) == 0);
	}
	shmrpc_close(c);
	return 0;
}

static int trio_b(void *arg)
{
	struct trio *t = arg;
	struct shmrpc_node *b = node(t->d, "b", 0, 0);
	static char msg[BIG];
	int rc;

	CHILD_CHECK(b);
	CHILD_CHECK_RC(shmrpc_wait_node(b, "a", 20000), 0);
	CHILD_CHECK_RC(shmrpc_wait_node(b, "c", 20000), 0);
	rc = t->b_body(b, msg);
	shmrpc_close(b);
	return rc;
}

static int trio_run(struct th_dom *d, int (*b_body)(struct shmrpc_node *b, char *msg))
{
	struct trio t = { .d = d, .b_body = b_body };
	pid_t pa, pb, pc;

	CHILD_CHECK(shm_mount("512k") == 0);
	th_gate_init(&t.done);
	pa = th_fork(trio_a, &t);
	pc = th_fork(trio_c, &t);
	pb = th_fork(trio_b, &t);
	/* none dies of a signal: SIGBUS would be 135 */
	CHILD_CHECK_RC(th_wait(pb, 60000), 0);
	th_gate_open(&t.done);
	CHILD_CHECK_RC(th_wait(pc, 20000), 0);
	CHILD_CHECK_RC(th_wait(pa, 20000), 0);
	th_gate_close(&t.done);
	return 0;
}

/* Does the file of @n's ring to @to exist? */
static bool ring_file(struct shmrpc_node *n, const char *to)
{
	char path[SHMRPC__PATH_MAX], file[SHMRPC__PATH_MAX + 16];
	struct shmrpc__slot_view v;
	uint32_t slot;

	CHILD_CHECK(shmrpc__reg_find(n->reg, to, &slot, &v) == 0);
	shmrpc__ring_path(path, n->reg, n->slot, n->gen, slot, v.gen);
	snprintf(file, sizeof(file), "/dev/shm%s", path);
	return access(file, F_OK) == 0;
}

/* @n's state after its ring to @to could not be made: no trace of that
 * ring, and @rings others (a receiver unlinks a ring's file once it has
 * opened it: the stats count them). */
static bool no_ring_to(struct shmrpc_node *n, const char *to, uint64_t rings)
{
	struct shmrpc_stats st;

	CHILD_CHECK_RC(out_gen(n, to), 0); /* no ghost entry for reapers to chase */
	CHILD_CHECK(!ring_file(n, to));
	CHILD_CHECK_RC(shmrpc_stats(n, &st), 0);
	CHILD_CHECK(st.connects == rings && st.rings_out == rings);
	return true;
}

static int to_c(struct shmrpc_node *b, char *msg)
{
	int i;

	for (i = 0; i < NMSG; i++) {
		th_fill(msg, BIG, 1, (uint64_t)i);
		CHILD_CHECK_RC(shmrpc_send(b, "c", msg, BIG, 20000), 0);
	}
	return 0;
}

static int connect_b(struct shmrpc_node *b, char *msg)
{
	struct shmrpc_txbuf tx;
	int i, rc[NMSG];

	/* The run: b sends 60000-byte messages to a, which does not
	 * read them. Touching the pages of a ring that was only sized, b died
	 * of SIGBUS at the 6th; now each send is -ENOSPC. */
	th_fill(msg, BIG, 1, 0);
	for (i = 0; i < NMSG; i++)
		rc[i] = shmrpc_send(b, "a", msg, BIG, 0);
	for (i = 0; i < NMSG; i++)
		CHILD_CHECK_RC(rc[i], -ENOSPC);
	CHILD_CHECK(said("ring to 'a' (1 MiB): /dev/shm is full"));
	CHILD_CHECK(no_ring_to(b, "a", 0));
	CHILD_CHECK_RC(shmrpc_reserve(b, "a", BIG, &tx, 1000), -ENOSPC);
	CHILD_CHECK(no_ring_to(b, "a", 0));
	/* b keeps working: a ring that fits */
	CHILD_CHECK_RC(to_c(b, msg), 0);
	CHILD_CHECK_RC(shmrpc_send(b, "a", msg, BIG, 0), -ENOSPC);
	CHILD_CHECK(no_ring_to(b, "a", 1));
	return 0;
}

static int connect_body(struct th_dom *d)
{
	return trio_run(d, connect_b);
}

static void test_connect_enospc(void **state)
{
	run_in_ns(*state, connect_body);
}

static int warmup_b(struct shmrpc_node *b, char *msg)
{
	/* a's ring cannot be made, c's is, and stays */
	CHILD_CHECK_RC(shmrpc_warmup(b), -ENOSPC);
	CHILD_CHECK(said("1 connected, 1 not; first: ring to 'a' (1 MiB): /dev/shm is full"));
	CHILD_CHECK(no_ring_to(b, "a", 1));
	CHILD_CHECK_RC(to_c(b, msg), 0);
	CHILD_CHECK(no_ring_to(b, "a", 1)); /* no second connect to c */
	CHILD_CHECK_RC(shmrpc_warmup(b), -ENOSPC);
	return 0;
}

static int warmup_body(struct th_dom *d)
{
	return trio_run(d, warmup_b);
}

static void test_warmup_enospc(void **state)
{
	run_in_ns(*state, warmup_body);
}

static int broadcast_b(struct shmrpc_node *b, char *msg)
{
	int i;

	/* c gets every one, a none; a is not counted */
	for (i = 0; i < NMSG; i++) {
		th_fill(msg, BIG, 1, (uint64_t)i);
		CHILD_CHECK_RC(shmrpc_broadcast(b, msg, BIG, 20000), 1);
	}
	CHILD_CHECK(no_ring_to(b, "a", 1));
	return 0;
}

static int broadcast_body(struct th_dom *d)
{
	return trio_run(d, broadcast_b);
}

static void test_broadcast_enospc(void **state)
{
	run_in_ns(*state, broadcast_body);
}

/* ------------------------------------------------------- RLIMIT_FSIZE */

static int fsize_child(void *arg)
{
	struct th_dom *d = arg;
	struct rlimit rl = { 64 << 10, 64 << 10 };
	struct shmrpc_node *a, *b, *n = NULL;

	CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	/* a registry of 1024 slots is 152 KiB */
	CHILD_CHECK_RC(shmrpc_open("a", &d->opts, &n), -EFBIG);
	CHILD_CHECK(!n && said("RLIMIT_FSIZE"));
	a = node(d, "a", 4096, 64);
	b = node(d, "b", 1u << 20, 64);
	CHILD_CHECK(a && b);
	CHILD_CHECK_RC(shmrpc_send(a, "b", "x", 1, 1000), -EFBIG);
	CHILD_CHECK(said("ring to 'b' (1 MiB)") && no_ring_to(a, "b", 0));
	CHILD_CHECK_RC(shmrpc_send(b, "a", "x", 1, 1000), 0); /* 8 KiB: fits */
	shmrpc_close(a);
	shmrpc_close(b);
	return 0;
}

/* Sizing a file past RLIMIT_FSIZE raises SIGXFSZ (a core dump by default)
 * before the system call fails: the library refuses first. */
static void test_fsize_limit_is_efbig_not_sigxfsz(void **state)
{
	assert_int_equal(th_wait(th_fork(fsize_child, *state), 20000), 0);
}

/* ------------------------------------------- what reserving costs and keeps */

/*
 * Every page of the registry is reserved at creation; the scan bound
 * (lseek SEEK_DATA/SEEK_HOLE) must still cover every slot in use, whether
 * the kernel reports reserved, untouched tmpfs pages as holes or as data.
 */
static void test_reserved_registry_scan_bound(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n[40];
	char path[300], name[16];
	uint64_t size = shmrpc__reg_size(SHMRPC__CAP_DEFAULT);
	off_t last = (off_t)((size - 1) & ~(uint64_t)(SHMRPC__PAGE - 1)), data;
	struct stat st;
	uint32_t end;
	int fd, i;

	for (i = 0; i < 40; i++) { /* 40 slots: two pages of them */
		snprintf(name, sizeof(name), "n%d", i);
		n[i] = th_open(d, name);
		assert_non_null(n[i]);
	}
	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", d->name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, size);
	assert_true((uint64_t)st.st_blocks * 512 >= size); /* reserved at creation */
	data = lseek(fd, last, SEEK_DATA);
	print_message("[observed] the registry's last page, reserved and never touched, is %s "
		      "for lseek(SEEK_DATA)\n",
		      data < 0 && errno == ENXIO ? "a hole" : "data");
	close(fd);
	end = shmrpc__reg_scan_end(n[0]->reg);
	print_message("scan bound: %u of %u slots (40 in use)\n", end, n[0]->reg->capacity);
	assert_true(end >= 40 && end <= n[0]->reg->capacity);
	for (i = 0; i < 40; i++)
		shmrpc_close(n[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_registry_enospc, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_open_node_segment_enospc, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_connect_enospc, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_warmup_enospc, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_broadcast_enospc, th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_fsize_limit_is_efbig_not_sigxfsz, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_reserved_registry_scan_bound, th_setup,
						th_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
