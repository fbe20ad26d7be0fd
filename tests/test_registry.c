// SPDX-License-Identifier: MIT
/*
 * The registry file and its lock (lib/regfile.c, lib/registry.c): a lock
 * holder killed mid-join is repaired by the next one, sixteen processes
 * create one domain at once, and leftover, broken or foreign registry files
 * are recovered or refused.
 *
 * The safety timeout is off (th_main_env): a lost wake is a hang here, so a
 * bound such as "stop returns within 2 s" checks a wake, not a speed.
 *
 * White box where the public API cannot tell: the tests read file names
 * and headers in /dev/shm (lib/layout.h) to know which files belong to which
 * node, and plant broken registries there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "join.h"
#include "layout.h"
#include "proc.h"
#include "reclaim.h"
#include "regfile.h"
#include "registry.h"

/* ============================================ registry lock, robust */

struct lockdie {
	struct th_dom *d;
	bool take; /* also take a slot (JOINING) before dying */
	struct th_gate locked, never;
};

/* Hold the registry lock (white box) until killed. */
static int lock_and_die(void *arg)
{
	struct lockdie *l = arg;
	struct shmrpc__join j = { "ghost", { 0 }, 4096, SHMRPC__BACKEND_FUTEX, 0 };
	struct shmrpc__reg r;
	uint32_t gen;

	CHILD_CHECK_RC(shmrpc__reg_open(&r, l->d->name, 16, 0600, false), 0);
	CHILD_CHECK_RC(shmrpc__dom_lock(&r), 0);
	if (l->take) {
		CHILD_CHECK_RC(shmrpc__proc_self(&j.proc), 0);
		CHILD_CHECK(shmrpc__join_take(&r, &j, &gen) >= 0);
	}
	th_gate_open(&l->locked);
	CHILD_CHECK(th_gate_wait(&l->never, 30000) == 0);
	return 1;
}

static int open_b(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *b;

	CHILD_CHECK_RC(shmrpc_open("b", &d->opts, &b), 0);
	CHILD_CHECK_RC(shmrpc_nodes(b, NULL, 0), 2);
	shmrpc_close(b);
	return 0;
}

static void lock_holder_killed(struct th_dom *d, bool take)
{
	struct lockdie l = { .d = d, .take = take };
	struct shmrpc_node *a = th_open(d, "a"), *c;
	pid_t holder, opener;
	int status;

	assert_non_null(a);
	th_gate_init(&l.locked);
	th_gate_init(&l.never);
	holder = th_fork(lock_and_die, &l);
	assert_int_equal(th_gate_wait(&l.locked, 5000), 0);
	opener = th_fork(open_b, d);
	assert_int_equal(th_wait_asleep(opener, 5000), 0); /* waits for the lock */
	assert_int_equal(waitpid(opener, &status, WNOHANG), 0);
	assert_int_equal(kill(holder, SIGKILL), 0);
	assert_int_equal(th_wait(holder, 5000), 128 + SIGKILL);
	assert_int_equal(th_wait(opener, 5000), 0);
	th_gate_close(&l.locked);
	th_gate_close(&l.never);
	/* the ghost's slot is free again and the live count right: the last
	 * close below must remove the registry */
	assert_int_equal(shmrpc_open("c", &d->opts, &c), 0);
	assert_int_equal(shmrpc_nodes(a, NULL, 0), 2);
	shmrpc_close(c);
	shmrpc_close(a);
	assert_int_equal(th_shm_count(d->name), 0);
}

static void test_reg_lock_holder_killed_is_repaired(void **state)
{
	lock_holder_killed(*state, false);
	lock_holder_killed(*state, true);
}

/* =================================================== registry files */

/* ============================================== concurrent creation */

#define CREATORS 16

struct creator {
	struct th_dom *d;
	int id;
	struct th_bar *go, *leave;
	struct th_gate *joined;
};

static int creator_main(void *arg)
{
	struct creator *c = arg;
	char names[CREATORS][SHMRPC_NAME_MAX + 1], name[16];
	struct shmrpc_node *n;
	int i, k, rc;

	CHILD_CHECK(th_bar_wait(c->go, 10000) == 0);
	snprintf(name, sizeof(name), "c%d", c->id);
	rc = shmrpc_open(name, &c->d->opts, &n);
	CHILD_CHECK_RC(rc, 0);
	for (i = 0; i < CREATORS; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		CHILD_CHECK_RC(shmrpc_wait_node(n, name, 10000), 0);
	}
	CHILD_CHECK_RC(shmrpc_nodes(n, names, CREATORS), CREATORS);
	for (i = 0; i < CREATORS; i++) { /* each name exactly once */
		snprintf(name, sizeof(name), "c%d", i);
		for (rc = 0, k = 0; k < CREATORS; k++)
			rc += !strcmp(names[k], name);
		CHILD_CHECK_RC(rc, 1);
	}
	th_gate_open(c->joined);
	CHILD_CHECK(th_bar_wait(c->leave, 10000) == 0);
	shmrpc_close(n);
	return 0;
}

static void test_create_sixteen_at_once(void **state)
{
	struct th_dom *d = *state;
	struct creator c[CREATORS];
	pid_t pid[CREATORS];
	struct th_gate joined;
	struct th_bar go, leave;
	int round, i;

	for (round = 0; round < 4; round++) {
		th_bar_init(&go);
		th_bar_init(&leave);
		th_gate_init(&joined);
		for (i = 0; i < CREATORS; i++) {
			c[i] = (struct creator){ d, i, &go, &leave, &joined };
			pid[i] = th_fork(creator_main, &c[i]);
		}
		th_bar_release(&go);
		for (i = 0; i < CREATORS; i++)
			assert_int_equal(th_gate_wait(&joined, 20000), 0);
		assert_int_equal(th_dom_files(d->name, ".reg"), 1);
		assert_int_equal(th_dom_files(d->name, ".node."), CREATORS);
		assert_int_equal(th_dom_nonces(d->name), 1);
		th_bar_release(&leave);
		for (i = 0; i < CREATORS; i++)
			assert_int_equal(th_wait(pid[i], 20000), 0);
		assert_int_equal(th_shm_count(d->name), 0);
		th_bar_fini(&go);
		th_bar_fini(&leave);
		th_gate_close(&joined);
	}
}

static void open_after_leftover(struct th_dom *d)
{
	struct shmrpc_node *a, *b;
	double t0 = th_now_ms();

	assert_int_equal(shmrpc_open("a", &d->opts, &a), 0);
	print_message("recovered a dead creator's registry in %.0f ms\n", th_now_ms() - t0);
	assert_int_equal(shmrpc_open("b", &d->opts, &b), 0);
	assert_int_equal(shmrpc_is_local(b, "a"), 1);
	assert_int_equal(th_dom_files(d->name, ".reg"), 1);
	shmrpc_close(a);
	shmrpc_close(b);
}

static void test_regfile_empty_leftover_recovered(void **state)
{
	struct th_dom *d = *state;

	/* the creator died between O_CREAT|O_EXCL and ftruncate */
	assert_int_equal(th_plant(d->name, NULL, 0, 0), 0);
	open_after_leftover(d);
}

static void test_regfile_unpublished_leftover_recovered(void **state)
{
	struct th_dom *d = *state;

	/* the creator died after sizing, before publishing the magic */
	assert_int_equal(th_plant(d->name, NULL, 0, (off_t)shmrpc__reg_size(4)), 0);
	open_after_leftover(d);
}

/*
 * Leaving scans the registry for nodes left behind: only its written part
 * (shmrpc__reg_scan_end), not all 65536 slots (8 MiB) at every leave. Every
 * page is reserved at creation; one that the scan read turns from a
 * reserved hole into data (tmpfs clears a page at its first fault), so the
 * file's data extent tells how far the scan went, on a kernel that reports
 * reserved, untouched pages as holes (observed).
 */
static void test_regfile_leave_does_not_fill_registry(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	off_t data, end = 0;
	char path[300];
	struct shmrpc_node *a, *b;
	struct stat st;
	int fd;

	o.max_nodes = 65536;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	shmrpc_close(b); /* a leave with a live node left: recount and sweep */
	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", d->name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	/* The slots' extents only: the event log after them is written at
	 * every join and leave. */
	while ((data = lseek(fd, end, SEEK_DATA)) >= 0 &&
	       data < (off_t)(shmrpc__reg_evlog_off(65536) & ~(uint64_t)(SHMRPC__PAGE - 1)))
		end = lseek(fd, data, SEEK_HOLE);
	close(fd);
	print_message("65536-slot registry after a leave: %ld bytes reserved of %ld, slots' "
		      "data up to %ld\n",
		      (long)st.st_blocks * 512, (long)st.st_size, (long)end);
	assert_true(st.st_size > 8 * 1024 * 1024);
	assert_true((long)st.st_blocks * 512 >= (long)st.st_size); /* reserved at creation */
	if (end == st.st_size)
		print_message("[observed] reserved, untouched pages count as data here: the "
			      "scan's extent cannot be seen\n");
	else
		assert_true(end <= 64 * 1024);
	shmrpc_close(a);
}

static void test_regfile_garbage_is_eproto(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *n = NULL;
	uint64_t magic = 0x0123456789abcdefull;
	uint8_t junk[100];
	char path[300];

	th_shm_path(path, sizeof(path), d->name, "reg");
	assert_int_equal(th_plant(d->name, &magic, sizeof(magic), (off_t)shmrpc__reg_size(4)), 0);
	assert_int_equal(shmrpc_open("a", &d->opts, &n), -EPROTO);
	assert_null(n);
	/* not ours to remove, and nothing was added */
	assert_int_equal(th_file_size(path), shmrpc__reg_size(4));
	assert_int_equal(th_shm_count(d->name), 1);
	assert_int_equal(unlink(path), 0);

	memset(junk, 0x5a, sizeof(junk)); /* smaller than a header */
	assert_int_equal(th_plant(d->name, junk, sizeof(junk), sizeof(junk)), 0);
	assert_int_equal(shmrpc_open("a", &d->opts, &n), -EPROTO);
	assert_int_equal(th_shm_count(d->name), 1);
	assert_int_equal(unlink(path), 0);
}

static void test_regfile_wrong_size_is_eproto(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc__reg_hdr *h;
	struct shmrpc_node *a, *b = NULL;
	alignas(SHMRPC__CACHELINE)
		uint8_t img[sizeof(struct shmrpc__reg_hdr) + 4 * sizeof(struct shmrpc__slot) +
			    SHMRPC__EV_LOG * sizeof(struct shmrpc__ev_entry)];
	char path[300];
	int fd;

	/* a real registry of capacity 4, copied while it lived */
	o.max_nodes = 4;
	assert_int_equal(shmrpc_open("a", &o, &a), 0);
	th_shm_path(path, sizeof(path), d->name, "reg");
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, img, sizeof(img), 0), sizeof(img));
	close(fd);
	shmrpc_close(a);
	h = (struct shmrpc__reg_hdr *)img;
	assert_int_equal(h->capacity, 4);
	memset(img + sizeof(*h), 0, sizeof(img) - sizeof(*h)); /* no slots in use */
	h->live = 0;
	h->hi = 0;
	h->ev_head = 0;

	/* one slot more than its capacity says */
	assert_int_equal(sizeof(img), shmrpc__reg_size(4));
	assert_int_equal(th_plant(d->name, img, sizeof(img), (off_t)shmrpc__reg_size(5)), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), -EPROTO);
	assert_int_equal(unlink(path), 0);
	/* one slot less */
	assert_int_equal(th_plant(d->name, img, sizeof(img) - 128, (off_t)shmrpc__reg_size(3)), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), -EPROTO);
	assert_int_equal(unlink(path), 0);
	/* right size, but the header disagrees with itself */
	h->total_size += 128;
	assert_int_equal(th_plant(d->name, img, sizeof(img), sizeof(img)), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), -EPROTO);
	assert_int_equal(unlink(path), 0);
	h->total_size -= 128;
	/* an event log of another size */
	h->ev_cap /= 2;
	assert_int_equal(th_plant(d->name, img, sizeof(img), sizeof(img)), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), -EPROTO);
	assert_int_equal(unlink(path), 0);
	h->ev_cap *= 2;
	h->abi = SHMRPC__ABI + 1;
	assert_int_equal(th_plant(d->name, img, sizeof(img), sizeof(img)), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), -EPROTO);
	assert_int_equal(unlink(path), 0);
	/* and the copy as it was is usable (the check is not too strict) */
	h->abi = SHMRPC__ABI;
	assert_int_equal(th_plant(d->name, img, sizeof(img), sizeof(img)), 0);
	assert_int_equal(shmrpc_open("b", &o, &b), 0);
	shmrpc_close(b);
	assert_int_equal(th_shm_count(d->name), 0);
}

static int unprivileged_open(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *n;

	CHILD_CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0);
	prctl(PR_SET_DUMPABLE, 1); /* LeakSanitizer must still see itself */
	CHILD_CHECK_RC(shmrpc_open("u", &d->opts, &n), -EACCES);
	return 0;
}

/* A process that opens the registry first: the check is made then (nodes of
 * one process share the registry they opened). */
static int open_b_refused(void *arg)
{
	struct th_dom *d = arg;
	struct shmrpc_node *b = NULL;

	CHILD_CHECK_RC(shmrpc_open("b", &d->opts, &b), -EPERM);
	return 0;
}

static void test_regfile_other_owner_refused(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *a;
	char path[300];

	th_shm_path(path, sizeof(path), d->name, "reg");
	a = th_open(d, "a");
	assert_non_null(a);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(th_wait(th_fork(open_b_refused, d), 10000), 0);
	assert_int_equal(th_dom_files(d->name, ".node."), 1);
	assert_int_equal(chown(path, 0, 0), 0);
	if (geteuid() == 0) /* somebody else cannot even open ours */
		assert_int_equal(th_wait(th_fork(unprivileged_open, d), 10000), 0);
	assert_int_equal(th_dom_files(d->name, ".node."), 1);
	shmrpc_close(a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_reg_lock_holder_killed_is_repaired),
		T(test_create_sixteen_at_once),
		T(test_regfile_empty_leftover_recovered),
		T(test_regfile_unpublished_leftover_recovered),
		T(test_regfile_leave_does_not_fill_registry),
		T(test_regfile_garbage_is_eproto),
		T(test_regfile_wrong_size_is_eproto),
		T(test_regfile_other_owner_refused),
	};

	th_main_env();
	th_subreaper();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
