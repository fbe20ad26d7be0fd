// SPDX-License-Identifier: MIT
/*
 * /dev/shm is shared by every user: what the library opens there by name
 * may have been planted by someone else (issue 15). Each test plants what an
 * attacker would, under one of a domain's names, and checks that the
 * library neither follows it, nor blocks on it, nor deletes what is not its
 * own, and that a name squatted by another user only delays a join:
 *
 *  - a FIFO at a node's name (a join's lazy reclaim opened it and hung);
 *  - a FIFO, a symlink, a directory at the registry's name;
 *  - a registry of another user: refused with a message that says so;
 *  - a registry retired while its name names a newer registry;
 *  - a live node's slot rewritten to JOINING (a state is a claim);
 *  - another user's files at the next node name and at a ring name, also
 *    when root joins (root must not remove them either);
 *  - a live node's slot written FREE, then the last leave by the count: the
 *    registry stays while a node file is locked;
 *  - a sparse registry: full scans never read (allocate) its holes.
 *
 * Other users are real: forked children switch to nobody (65534) or daemon
 * (1) with setresuid. Needs root; skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "node_types.h"
#include "names.h"
#include "regfile.h"
#include "registry.h"
#include "seg.h"

#define NOBODY 65534
#define DAEMON 1

/* ------------------------------------------------------------- helpers */

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("skip: other users are made with setresuid (needs root)\n");
		skip();
	}
}

/* In a forked child: become @uid (and group @uid), for good. */
static void become(uid_t uid)
{
	CHILD_CHECK(!setgroups(0, NULL) && !setresgid(uid, uid, uid) && !setresuid(uid, uid, uid));
}

static void shm_file(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s%s", SHMRPC__SHM_DIR, name);
}

/* The registry of @dom, mapped read-write (white box), with its key. */
struct regmap {
	struct shmrpc__reg_hdr *h;
	struct shmrpc__slot *s;
	uint64_t size;
	struct shmrpc__reg r; /* domain, key, nonce: for the path functions */
};

static int reg_map(const char *dom, struct regmap *m)
{
	char path[SHMRPC__PATH_MAX + 16];
	struct stat st;
	void *p;
	int fd;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", dom);
	fd = open(path, O_RDWR | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	m->h = p;
	m->s = (struct shmrpc__slot *)(m->h + 1);
	m->size = (uint64_t)st.st_size;
	snprintf(m->r.domain, sizeof(m->r.domain), "%s", dom);
	memcpy(m->r.key, m->h->name_key, sizeof(m->r.key));
	m->r.nonce = m->h->nonce;
	m->r.mode = m->h->mode;
	m->r.capacity = m->h->capacity;
	return 0;
}

static void reg_unmap(struct regmap *m)
{
	munmap(m->h, m->size);
}

/* Slot and gen of the live node @name. */
static int slot_of(const struct regmap *m, const char *name, uint32_t *slot, uint32_t *gen)
{
	for (uint32_t i = 0; i < m->h->capacity; i++)
		if (atomic_load(&m->s[i].state) == SHMRPC__SLOT_LIVE &&
		    !strncmp((const char *)m->s[i].name, name, 64)) {
			*slot = i;
			*gen = atomic_load(&m->s[i].gen);
			return 0;
		}
	return -1;
}

static bool exists(const char *shm_name)
{
	char path[SHMRPC__PATH_MAX + 16];
	struct stat st;

	shm_file(path, sizeof(path), shm_name);
	return lstat(path, &st) == 0;
}

/* A node in a child (as @uid, unless 0): opens @name, signals, and waits
 * for SIGKILL, or for @go: then closes and exits. */
struct holder {
	const struct th_dom *d;
	const char *name;
	uid_t uid;
	struct th_gate ready, go;
	pid_t pid;
};

static int holder_main(void *arg)
{
	struct holder *h = arg;
	struct shmrpc_node *n;

	if (h->uid)
		become(h->uid);
	CHILD_CHECK_RC(shmrpc_open(h->name, &h->d->opts, &n), 0);
	th_gate_open(&h->ready);
	CHILD_CHECK_RC(th_gate_wait(&h->go, 60000), 0);
	shmrpc_close(n);
	return 0;
}

static void holder_start(struct holder *h, const struct th_dom *d, const char *name, uid_t uid)
{
	h->d = d;
	h->name = name;
	h->uid = uid;
	th_gate_init(&h->ready);
	th_gate_init(&h->go);
	h->pid = th_fork(holder_main, h);
	assert_int_equal(th_gate_wait(&h->ready, 10000), 0);
}

static void holder_close(struct holder *h)
{
	th_gate_open(&h->go);
	assert_int_equal(th_wait(h->pid, 10000), 0);
	th_gate_close(&h->ready);
	th_gate_close(&h->go);
}

static void holder_kill(struct holder *h)
{
	kill(h->pid, SIGKILL);
	assert_int_equal(th_wait(h->pid, 10000), 128 + SIGKILL);
	th_gate_close(&h->ready);
	th_gate_close(&h->go);
}

/* Open and close one node: its join reclaims what is dead, and its leave
 * sweeps and retires the registry if it was the last. */
static void join_and_leave(const struct th_dom *d, const char *name)
{
	struct shmrpc_node *n = th_open(d, name);

	assert_non_null(n);
	shmrpc_close(n);
}

/* ------------------------------------------------------------- tests */

struct opener {
	const struct th_dom *d;
	const char *name;
	int want;
	const char *text; /* in shmrpc_last_error, if want < 0 */
};

static int opener_main(void *arg)
{
	struct opener *o = arg;
	struct shmrpc_node *n = NULL;
	int rc = shmrpc_open(o->name, &o->d->opts, &n);

	if (rc != o->want)
		fprintf(stderr, "shmrpc_open = %d (%s), want %d\n", rc, shmrpc_last_error(),
			o->want);
	CHILD_CHECK(rc == o->want);
	if (o->text && !strstr(shmrpc_last_error(), o->text))
		fprintf(stderr, "last error \"%s\" lacks \"%s\"\n", shmrpc_last_error(), o->text);
	CHILD_CHECK(!o->text || strstr(shmrpc_last_error(), o->text));
	shmrpc_close(n);
	return 0;
}

/* A FIFO at a dead node's name: a join's lazy reclaim opened it without
 * O_NONBLOCK and waited for a writer for ever. */
static void test_fifo_at_node_name_never_blocks(void **state)
{
	struct th_dom *d = *state;
	struct opener o = { d, "c", 0, NULL };
	char name[SHMRPC__PATH_MAX], path[SHMRPC__PATH_MAX + 16];
	struct holder a, b;
	struct regmap m;
	uint32_t slot, gen;
	pid_t pid;
	int rc;

	setenv("SHMRPC_WATCH", "0", 1); /* b's death is left to the join */
	holder_start(&a, d, "a", 0);
	holder_start(&b, d, "b", 0);
	assert_int_equal(reg_map(d->name, &m), 0);
	assert_int_equal(slot_of(&m, "b", &slot, &gen), 0);
	holder_kill(&b);
	shmrpc__node_path(name, &m.r, slot, gen);
	shm_file(path, sizeof(path), name);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);

	pid = th_fork(opener_main, &o);
	rc = th_wait(pid, 5000);
	print_message("join with a FIFO at a dead node's name: child status %d\n", rc);
	assert_int_equal(rc, 0); /* -1: it hung in open(2) */
	/* Cannot tell what it is: never reclaimed on its account, never
	 * removed by us. */
	assert_true(exists(name));
	assert_int_equal(atomic_load(&m.s[slot].state), SHMRPC__SLOT_LIVE);

	unlink(path);
	reg_unmap(&m);
	join_and_leave(d, "d"); /* reclaims b now that its name is free */
	holder_close(&a);
	unsetenv("SHMRPC_WATCH");
}

/* A FIFO, a symlink and a directory at the registry's name. */
static void test_registry_name_planted(void **state)
{
	struct th_dom *d = *state;
	char reg[300], target[300], buf[16];
	struct opener o = { d, "x", -EPROTO, NULL };
	const char *kinds[] = { "fifo", "symlink", "directory" };
	int k, fd, rc;
	double t0;
	pid_t pid;

	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d->name);
	snprintf(target, sizeof(target), "/dev/shm/%s-target", d->name);
	o.text = reg;
	for (k = 0; k < 3; k++) {
		if (k == 0) {
			assert_int_equal(mkfifo(reg, 0666), 0);
		} else if (k == 1) {
			fd = open(target, O_CREAT | O_EXCL | O_WRONLY, 0600);
			assert_true(fd >= 0);
			assert_int_equal(write(fd, "secret", 6), 6);
			close(fd);
			assert_int_equal(symlink(target, reg), 0);
		} else {
			assert_int_equal(mkdir(reg, 0777), 0);
		}
		t0 = th_now_ms();
		pid = th_fork(opener_main, &o);
		rc = th_wait(pid, 10000);
		print_message("registry name is a %s: join refused after %.0f ms (child %d)\n",
			      kinds[k], th_now_ms() - t0, rc);
		assert_int_equal(rc, 0);
		/* refused at once, not after the library's grace period */
		assert_true(th_now_ms() - t0 < 900);
		if (k == 1) {
			fd = open(target, O_RDONLY);
			assert_int_equal(read(fd, buf, sizeof(buf)), 6);
			assert_memory_equal(buf, "secret", 6);
			close(fd);
			assert_int_equal(unlink(target), 0);
		}
		/* still there: not ours to remove */
		assert_int_equal(k == 2 ? rmdir(reg) : unlink(reg), 0);
	}
}

/* Another user's registry: refused, and the message says whose it is. */
static void test_registry_of_another_user(void **state)
{
	struct th_dom *d = *state;
	struct opener o = { d, "r", -EPERM, "owned by uid 65534 (not us, not root): another user" };
	struct holder h;

	need_root();
	holder_start(&h, d, "n", NOBODY);
	assert_int_equal(th_wait(th_fork(opener_main, &o), 10000), 0);
	holder_close(&h);
}

/* A registry that was unlinked (and its name taken by a new registry) is
 * retired by its last node: the new one must stay. */
static void test_retire_leaves_a_newer_registry(void **state)
{
	struct th_dom *d = *state;
	char reg[300];
	struct holder a;
	struct shmrpc_node *b, *c;
	struct stat st2, st;

	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d->name);
	holder_start(&a, d, "a", 0);
	assert_int_equal(unlink(reg), 0); /* its owner's rm, say */
	b = th_open(d, "b");		  /* a new registry under the name */
	assert_non_null(b);
	assert_int_equal(stat(reg, &st2), 0);
	holder_close(&a); /* the last node of the old one: it retires it */
	assert_int_equal(stat(reg, &st), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	c = th_open(d, "c");
	assert_non_null(c);
	assert_int_equal(shmrpc_wait_node(c, "b", 0), 0); /* same domain still */
	shmrpc_close(c);
	shmrpc_close(b);
}

/* A live node's slot rewritten to JOINING: not reclaimed by a join. */
static void test_joining_slot_of_live_node_kept(void **state)
{
	struct th_dom *d = *state;
	char name[SHMRPC__PATH_MAX];
	struct holder a;
	struct regmap m;
	uint32_t slot, gen;

	holder_start(&a, d, "a", 0);
	assert_int_equal(reg_map(d->name, &m), 0);
	assert_int_equal(slot_of(&m, "a", &slot, &gen), 0);
	shmrpc__node_path(name, &m.r, slot, gen);
	atomic_store(&m.s[slot].state, SHMRPC__SLOT_JOINING);
	join_and_leave(d, "c"); /* its join looks at every slot of a small domain */
	assert_true(exists(name));
	assert_int_equal(atomic_load(&m.s[slot].state), SHMRPC__SLOT_JOINING);
	assert_int_equal(atomic_load(&m.s[slot].gen), gen);
	atomic_store(&m.s[slot].state, SHMRPC__SLOT_LIVE);
	reg_unmap(&m);
	holder_close(&a);
}

/* Another user's files at the name of the next node and at a ring's name:
 * the join goes to the next generation; the connect is -EEXIST, saying
 * whose file is in the way. */
struct squat {
	const struct th_dom *d;
	struct th_gate a_in, squat1, b_in, squat2;
};

static int squat_victim(void *arg)
{
	struct squat *q = arg;
	struct shmrpc_node *a, *b;
	struct shmrpc__slot_view v;
	uint32_t slot;

	become(NOBODY);
	CHILD_CHECK_RC(shmrpc_open("a", &q->d->opts, &a), 0);
	th_gate_open(&q->a_in);
	CHILD_CHECK_RC(th_gate_wait(&q->squat1, 10000), 0);
	CHILD_CHECK_RC(shmrpc_open("b", &q->d->opts, &b), 0);
	CHILD_CHECK_RC(shmrpc__reg_find(b->reg, "b", &slot, &v), 0);
	CHILD_CHECK(slot == 1 && v.gen == 2); /* gen 1's name was taken */
	th_gate_open(&q->b_in);
	CHILD_CHECK_RC(th_gate_wait(&q->squat2, 10000), 0);
	CHILD_CHECK_RC(shmrpc_send(a, "b", "x", 1, 1000), -EEXIST);
	if (!strstr(shmrpc_last_error(), "owned by uid 1"))
		fprintf(stderr, "last error: %s\n", shmrpc_last_error());
	CHILD_CHECK(strstr(shmrpc_last_error(), "owned by uid 1"));
	shmrpc_close(b);
	shmrpc_close(a);
	return 0;
}

static void plant(const char *name, uid_t uid)
{
	char path[SHMRPC__PATH_MAX + 16];
	int fd;

	shm_file(path, sizeof(path), name);
	fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fchown(fd, uid, uid), 0);
	close(fd);
}

static void test_squatted_names(void **state)
{
	struct th_dom *d = *state;
	struct squat q = { .d = d };
	char node1[SHMRPC__PATH_MAX], ring[SHMRPC__PATH_MAX], path[SHMRPC__PATH_MAX + 16];
	uint32_t as, ag, bs, bg;
	struct regmap m;
	pid_t pid;

	need_root();
	th_gate_init(&q.a_in);
	th_gate_init(&q.squat1);
	th_gate_init(&q.b_in);
	th_gate_init(&q.squat2);
	pid = th_fork(squat_victim, &q);
	assert_int_equal(th_gate_wait(&q.a_in, 10000), 0);
	assert_int_equal(reg_map(d->name, &m), 0); /* a member could read the key */
	shmrpc__node_path(node1, &m.r, 1, 1);
	plant(node1, DAEMON);
	th_gate_open(&q.squat1);
	assert_int_equal(th_gate_wait(&q.b_in, 10000), 0);
	assert_int_equal(slot_of(&m, "a", &as, &ag), 0);
	assert_int_equal(slot_of(&m, "b", &bs, &bg), 0);
	shmrpc__ring_path(ring, &m.r, as, ag, bs, bg);
	plant(ring, DAEMON);
	th_gate_open(&q.squat2);
	assert_int_equal(th_wait(pid, 20000), 0);
	reg_unmap(&m);
	shm_file(path, sizeof(path), node1);
	assert_int_equal(unlink(path), 0); /* left alone by the victim */
	shm_file(path, sizeof(path), ring);
	assert_int_equal(unlink(path), 0);
	th_gate_close(&q.a_in);
	th_gate_close(&q.squat1);
	th_gate_close(&q.b_in);
	th_gate_close(&q.squat2);
}

/* Root joins where another user squats its next node name: root must not
 * remove that file (the user could not), but go to the next generation as
 * any user does. */
static void test_root_join_leaves_squatted_name(void **state)
{
	struct th_dom *d = *state;
	char node1[SHMRPC__PATH_MAX], path[SHMRPC__PATH_MAX + 16];
	struct shmrpc__slot_view v;
	struct shmrpc_node *a, *b;
	struct stat st0, st;
	struct regmap m;
	uint32_t slot;

	need_root();
	a = th_open(d, "a");
	assert_non_null(a);
	assert_int_equal(reg_map(d->name, &m), 0);
	shmrpc__node_path(node1, &m.r, 1, 1); /* b's name, if it were made at gen 1 */
	plant(node1, DAEMON);
	shm_file(path, sizeof(path), node1);
	assert_int_equal(lstat(path, &st0), 0);
	b = th_open(d, "b");
	assert_non_null(b);
	assert_int_equal(shmrpc__reg_find(b->reg, "b", &slot, &v), 0);
	assert_int_equal(lstat(path, &st), 0); /* still there, still the squatter's */
	assert_int_equal(st.st_ino, st0.st_ino);
	assert_int_equal(st.st_uid, DAEMON);
	assert_int_equal(slot, 1);
	assert_int_equal(v.gen, 2);
	shmrpc_close(b);
	shmrpc_close(a);
	reg_unmap(&m);
	assert_int_equal(unlink(path), 0);
}

/*
 * A member of a group-mode domain writes a live node's slot FREE, then
 * leaves last by the count: no slot says a node is left, but a's node file
 * is locked. The leave must keep the registry (the reaper already does), so
 * that a new node joins the same domain and reaches a once its slot says
 * LIVE again. (Two processes of one user: the library's leave is the same
 * whoever the member is, and a's own last leave is the one that could
 * unlink the registry in the sticky /dev/shm.)
 */
static void test_freed_slot_last_leave_keeps_registry(void **state)
{
	struct th_dom *d = *state;
	char reg[300], node[SHMRPC__PATH_MAX];
	struct shmrpc_node *b, *c;
	struct stat st0, st;
	uint32_t slot, gen;
	struct holder a;
	struct regmap m;

	d->opts.mode = 0660; /* group mode: other users may write the slots */
	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", d->name);
	holder_start(&a, d, "a", 0);
	b = th_open(d, "b");
	assert_non_null(b);
	assert_int_equal(stat(reg, &st0), 0);
	assert_int_equal(reg_map(d->name, &m), 0);
	assert_int_equal(slot_of(&m, "a", &slot, &gen), 0);
	shmrpc__node_path(node, &m.r, slot, gen);
	atomic_store(&m.s[slot].state, SHMRPC__SLOT_FREE); /* b's lie */
	shmrpc_close(b);				   /* the last node, says the count */
	assert_int_equal(stat(reg, &st), 0);
	assert_int_equal(st.st_ino, st0.st_ino);
	assert_true(exists(node));
	atomic_store(&m.s[slot].state, SHMRPC__SLOT_LIVE); /* the lie undone */
	c = th_open(d, "c");
	assert_non_null(c);
	assert_int_equal(shmrpc_wait_node(c, "a", 0), 0); /* same registry: a is there */
	reg_unmap(&m);
	holder_close(&a);
	shmrpc_close(c);
}

/*
 * A 65536-slot registry made sparse (by hand: the library reserves every
 * page at creation, but a member, or an older library, may make one that is
 * 8 MiB of holes but for a page or two), with its last page written so the
 * data is not all at the front. A node joins and leaves: the leave's full
 * scans (recount, sweep) must not read the holes, which on tmpfs would
 * allocate them.
 */
static int craft_sparse_registry(const char *dom)
{
	uint64_t size = shmrpc__reg_size(SHMRPC__CAP_MAX);
	struct shmrpc__reg_hdr h = { 0 };
	char reg[300], zero[128] = { 0 };
	int fd;

	snprintf(reg, sizeof(reg), "/dev/shm/shmrpc.%s.reg", dom);
	fd = open(reg, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size))
		return -1;
	h.abi = SHMRPC__ABI;
	h.hdr_size = sizeof(h);
	h.slot_size = sizeof(struct shmrpc__slot);
	h.ev_cap = SHMRPC__EV_LOG;
	h.ev_size = sizeof(struct shmrpc__ev_entry);
	h.capacity = SHMRPC__CAP_MAX;
	h.total_size = size;
	h.nonce = 0x5a5a5a5a;
	h.mode = 0600;
	memcpy(h.name_key, "sparse-registry!", sizeof(h.name_key));
	h.magic = SHMRPC__REG_MAGIC;
	if (pwrite(fd, &h, sizeof(h), 0) != sizeof(h) ||
	    pwrite(fd, zero, sizeof(zero), (off_t)size - sizeof(zero)) != sizeof(zero))
		return -1;
	return fd;
}

static void test_sparse_registry_scans_skip_holes(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a, *b;
	struct stat st;
	int fd = craft_sparse_registry(d->name);

	assert_true(fd >= 0);
	a = th_open(d, "a");
	assert_non_null(a);
	b = th_open(d, "b");
	assert_non_null(b);
	shmrpc_close(b); /* a leave: recount, sweep */
	assert_int_equal(fstat(fd, &st), 0);
	print_message("65536-slot sparse registry after a leave's scans: %lld KiB allocated\n",
		      (long long)st.st_blocks / 2);
	assert_true(st.st_blocks * 512 < 1024 * 1024);
	close(fd);
	shmrpc_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, th_setup, th_teardown)
		T(test_fifo_at_node_name_never_blocks),
		T(test_registry_name_planted),
		T(test_registry_of_another_user),
		T(test_retire_leaves_a_newer_registry),
		T(test_joining_slot_of_live_node_kept),
		T(test_squatted_names),
		T(test_sparse_registry_scans_skip_holes),
		T(test_root_join_leaves_squatted_name),
		T(test_freed_slot_last_leave_keeps_registry),
#undef T
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
