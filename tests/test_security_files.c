// SPDX-License-Identifier: MIT
/*
 * Security between users: the root reaper acts for each user and never
 * beyond them (issue 15, attacks 2 and 3; docs/security.md). An
 * unprivileged user B must not make shmrpc-reaper remove or change another
 * user A's files. Each attack runs as a real process of B against the
 * reaper in BPF mode and in pidfd mode, with the checks of
 * test_security.c: A's files in /dev/shm unchanged (name, inode, content),
 * A's nodes reachable, A's next node in the same registry, the reaper
 * responsive. Run with fs.protected_symlinks as found and changed.
 *
 *  - the retire-by-name race: B's registry is unlinked while his node
 *    lives, A's registry takes the name, B's node dies;
 *  - a planted registry: the name of A's registry is free while her nodes
 *    run, and B puts there a copy of it (its secrets included: the worst
 *    case, a former member) whose slots claim JOINING or garbage;
 *  - members of A's group-mode (0660) domain: B rewrites the state words of
 *    A's slots, or the registry's name key. Members can deny each other
 *    service by design (docs/untrusted-memory.md), but not make root remove
 *    A's files, which B cannot remove himself (sticky /dev/shm). And when
 *    B's own node there dies, the reaper still removes B's files.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "harness_sec.h"
#include "layout.h"

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

/* ====================================================== retire by name */

/*
 * B's domain "shared" has a live node b1; B removes his registry file; A
 * creates her registry under that name and joins; b1 is killed. The reaper
 * reclaims b1 in B's old registry, which is then empty: retiring it must
 * not remove A's registry, which now has the name.
 */
static void retire_race(struct sec_case *c, const char *mode)
{
	struct sec_bnode b = { .dom = "shared" };
	int bad, rc;

	sec_case_reaper(c, mode, NULL);
	assert_int_equal(sec_bnode_start(&b, SEC_B), 0);
	assert_int_equal(sec_log_wait(&c->r, 1, ": watch ", "node=b1 ", NULL, 3000), 0);
	assert_int_equal(sec_bnode_act(&b, 'u'), 0);
	nap_ms(20);
	sec_case_victim(c, SEC_A, "shared", 0);
	c->label = "retire by name";
	sec_bnode_kill(&b);
	rc = sec_log_wait(&c->r, 1, "reaped", "node=b1 ", NULL, 3000);
	print_message("[observed] %s reaper: B's node in his unlinked registry %s\n", mode,
		      rc ? "was not reaped within 3 s" : "was reaped");
	bad = sec_case_check(c, SEC_CHECK_ROUNDTRIP | SEC_CHECK_REG_CONTENT);
	/* A's next node joins the same registry: it sees a1. */
	rc = sec_agent_join(&c->ag, "a3");
	if (rc && ++bad)
		print_message("FAILED CHECK: A's next node a3 does not reach a1: %d\n", rc);
	assert_int_equal(bad, 0);
}

/* ====================================================== planted slots */

struct b_plant {
	char dom[SHMRPC_NAME_MAX + 1];
	uint8_t *bytes; /* A's registry as it was */
	size_t len;
};

/* LIVE slots now claim JOINING, or garbage. */
static void plant_states(uint8_t *reg, size_t len)
{
	const uint32_t claims[] = { SHMRPC__SLOT_JOINING, 0x5a5a5a5a, 7 };
	const size_t at = offsetof(struct shmrpc__slot, state);
	size_t off = sizeof(struct shmrpc__reg_hdr);
	uint32_t st;
	int k = 0;

	for (; off + sizeof(struct shmrpc__slot) <= len; off += sizeof(struct shmrpc__slot)) {
		memcpy(&st, reg + off + at, 4);
		if (st == SHMRPC__SLOT_LIVE)
			memcpy(reg + off + at, &claims[k++ % 3], 4);
	}
}

static int b_plant_main(void *arg)
{
	struct b_plant *p = arg;
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd;

	snprintf(tmp, sizeof(tmp), "/dev/shm/b-plant-%d", (int)getpid());
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHILD_CHECK(fd >= 0);
	plant_states(p->bytes, p->len);
	CHILD_CHECK(write(fd, p->bytes, p->len) == (ssize_t)p->len);
	close(fd);
	sec_reg_path(path, sizeof(path), p->dom);
	CHILD_CHECK_RC(rename(tmp, path), 0);
	return 0;
}

static int a_unlink_reg(void *arg)
{
	char path[PATH_MAX];

	sec_reg_path(path, sizeof(path), arg);
	return unlink(path) ? errno : 0;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_NOFOLLOW);

	*len = 0;
	if (fd >= 0 && !fstat(fd, &st) && (buf = malloc((size_t)st.st_size)) &&
	    read(fd, buf, (size_t)st.st_size) == st.st_size)
		*len = (size_t)st.st_size;
	if (fd >= 0)
		close(fd);
	return buf;
}

/*
 * The name of A's registry is free while her nodes run (her own script
 * removed it, or the race above did), and B puts there a copy of it with
 * A's LIVE slots turned JOINING or garbage. A slot's state is a claim,
 * never proof: A's live nodes and their rings stay.
 */
static void planted(struct sec_case *c, const char *mode)
{
	struct b_plant p = { .dom = "pl" };
	char path[PATH_MAX];

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A, "pl", 0);
	c->label = "planted registry, JOINING and garbage slots";
	sec_reg_path(path, sizeof(path), "pl");
	p.bytes = read_all(path, &p.len);
	assert_true(p.len > 0);
	assert_int_equal(sec_run_as(SEC_A, a_unlink_reg, "pl", 5000), 0);
	sec_snap_free(c->s0);
	c->s0 = sec_snap_take(sec.b); /* A's own act is not the attack */
	assert_int_equal(sec_run_as(SEC_B, b_plant_main, &p, 5000), 0);
	free(p.bytes);
	nap_ms(50);
	assert_int_equal(sec_case_check(c, SEC_CHECK_ROUNDTRIP), 0);
}

/* ====================================================== group members */

struct b_member {
	char dom[SHMRPC_NAME_MAX + 1];
	char what; /* 's' state words of a1 and a2, 'k' the name key, 'f' all FREE */
};

static void *map_reg(const char *dom, size_t *size)
{
	char path[PATH_MAX];
	struct stat st;
	void *p;
	int fd;

	sec_reg_path(path, sizeof(path), dom);
	fd = open(path, O_RDWR | O_NOFOLLOW);
	CHILD_CHECK(fd >= 0 && !fstat(fd, &st));
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHILD_CHECK(p != MAP_FAILED);
	close(fd);
	*size = (size_t)st.st_size;
	return p;
}

/* Member B writes what a member can write, then tries to rm A's files:
 * how many he removed himself. */
static int b_member_main(void *arg)
{
	struct b_member *m = arg;
	char path[PATH_MAX], pfx[128], names[4096], *p, *nl;
	struct shmrpc__reg_hdr *h;
	struct shmrpc__slot *slot;
	size_t size, i;
	int removed = 0;

	h = map_reg(m->dom, &size);
	slot = (struct shmrpc__slot *)(h + 1);
	for (i = 0; m->what == 's' && (i + 1) * sizeof(*slot) + sizeof(*h) <= size; i++) {
		uint64_t w = atomic_load(&slot[i].name[0]);
		char name[9] = "";

		memcpy(name, &w, 8);
		if (!strcmp(name, "a1"))
			atomic_store(&slot[i].state, SHMRPC__SLOT_JOINING);
		else if (!strcmp(name, "a2"))
			atomic_store(&slot[i].state, 0x5a5a5a5a);
	}
	/* Every slot FREE: the registry looks unused. */
	for (i = 0; m->what == 'f' && (i + 1) * sizeof(*slot) + sizeof(*h) <= size; i++)
		atomic_store(&slot[i].state, SHMRPC__SLOT_FREE);
	/* The nonce and whatever follows it up to the lock line: the names
	 * of the domain's files derive from them. */
	for (i = offsetof(struct shmrpc__reg_hdr, nonce); m->what == 'k' && i < 64; i++)
		if (i < offsetof(struct shmrpc__reg_hdr, mode) ||
		    i >= offsetof(struct shmrpc__reg_hdr, mode) + 4)
			((uint8_t *)h)[i] ^= 0xa5;
	atomic_fetch_add(&h->epoch, 1);
	munmap(h, size);
	snprintf(pfx, sizeof(pfx), "shmrpc.%s.", m->dom);
	sec_shm_names(sec.a, pfx, names, sizeof(names));
	for (p = names; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		snprintf(path, sizeof(path), "/dev/shm/%.200s", p);
		removed += !unlink(path);
	}
	return removed;
}

/*
 * A group-mode (0660) domain of A, B a member (he can write the registry
 * and A's segments) with a ring to a1. B rewrites @what: the reaper must
 * still not remove A's live files, which B cannot remove himself; and when
 * B's node dies there, the reaper removes B's files.
 */
static void group_case(struct sec_case *c, const char *mode, char what)
{
	struct sec_bnode b = { .dom = "gm", .mode = 0660, .send_a1 = true };
	struct b_member m = { .dom = "gm", .what = what };
	int bad, rt, rc;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A_G, "gm", 0660);
	c->label = what == 's' ? "member's state words in A's slots" :
		   what == 'k' ? "member's name key" :
				 "member frees every slot: the registry looks unused";
	assert_int_equal(sec_bnode_start(&b, SEC_B_G), 0);
	sec_snap_free(c->s0);
	c->s0 = sec_snap_take(sec.b); /* b1's announce wrote to a1's segment */
	rc = sec_run_as(SEC_B_G, b_member_main, &m, 5000);
	print_message("[observed] member B removed %d of A's files himself (sticky /dev/shm)\n",
		      rc);
	nap_ms(50);
	/* Members may deny each other service: the registry's content and the
	 * round trip are only observed. */
	bad = sec_case_check(c, 0) + (rc != 0);
	rt = sec_agent_roundtrip(&c->ag);
	print_message("[observed] a1 <-> a2 round trip after B's writes: %d\n", rt);
	assert_int_equal(bad, 0);
}

static void group_state(struct sec_case *c, const char *mode)
{
	group_case(c, mode, 's');
}

static void group_key(struct sec_case *c, const char *mode)
{
	group_case(c, mode, 'k');
}

/* Every slot FREE while A's nodes live: two reconcile passes later the
 * reaper retires a registry it thinks unused. It is A's, her nodes hold
 * their locks, and B cannot remove it himself. */
static void group_free(struct sec_case *c, const char *mode)
{
	group_case(c, mode, 'f');
}

/* A member's own node dies in A's group-mode domain: the reaper (acting as
 * the domain's owner, A) still removes B's files and frees his slot. */
static void group_member_dies(struct sec_case *c, const char *mode)
{
	struct sec_bnode b = { .dom = "gd", .mode = 0660, .send_a1 = true };
	char names[1024];
	int bad, left, rc;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A_G, "gd", 0660);
	c->label = "a member's node dies in A's domain";
	assert_int_equal(sec_bnode_start(&b, SEC_B_G), 0);
	assert_int_equal(sec_log_wait(&c->r, 1, ": watch ", "node=b1 ", NULL, 3000), 0);
	sec_snap_free(c->s0);
	c->s0 = sec_snap_take(sec.b);
	sec_bnode_kill(&b);
	rc = sec_log_wait(&c->r, 1, "reaped", "node=b1 ", NULL, 3000);
	nap_ms(20);
	left = sec_shm_names(sec.b, "shmrpc.gd.", names, sizeof(names));
	print_message("[observed] %s reaper: B's node in A's group domain %s; %d files of B "
		      "left:\n%s",
		      mode, rc ? "not reaped within 3 s" : "reaped", left, names);
	/* A's files: a1's in_gen entry for b1 is A's own, and the ring b1 -> a1
	 * B's; A's registry changed (b1's slot freed). */
	bad = sec_case_check(c, 0);
	if ((rc || left) && ++bad)
		print_message("FAILED CHECK: B's dead node not cleaned up in A's group domain\n");
	assert_int_equal(bad, 0);
}

/* Field 22 of /proc/PID/stat: what a slot's start_time records. */
static uint64_t start_time_of(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	int fd, i;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	for (i = 2; p && i < 22; i++) /* to the space before field 22 */
		p = strchr(p + 1, ' ');
	return p && sscanf(p + 1, "%llu", &v) == 1 ? v : 0;
}

struct b_claim {
	pid_t victim_pid; /* a process of A that is no node */
};

static void bump(struct shmrpc__reg_hdr *h)
{
	atomic_fetch_add(&h->epoch, 1);
	syscall(SYS_futex, &h->epoch, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* Member B makes a1's slot name another process of A (pid and start time
 * are public in /proc), so that the reaper watches that one for a1: out
 * of the slot (FREE) and back (LIVE, same generation), one sync each. */
static int b_claim_main(void *arg)
{
	const struct b_claim *cl = arg;
	uint64_t start = start_time_of(cl->victim_pid);
	struct shmrpc__reg_hdr *h;
	struct shmrpc__slot *slot, *a1 = NULL;
	size_t size, i;

	CHILD_CHECK(start != 0);
	h = map_reg("gp", &size);
	slot = (struct shmrpc__slot *)(h + 1);
	for (i = 0; (i + 1) * sizeof(*slot) + sizeof(*h) <= size && !a1; i++)
		if (atomic_load(&slot[i].name[0]) == 0x3161 /* "a1" */)
			a1 = &slot[i];
	CHILD_CHECK(a1 != NULL);
	atomic_store(&a1->state, SHMRPC__SLOT_FREE);
	bump(h);
	nap_ms(100);
	atomic_store(&a1->pid, cl->victim_pid);
	atomic_store(&a1->start_time, start);
	atomic_store(&a1->state, SHMRPC__SLOT_LIVE);
	bump(h);
	nap_ms(100);
	munmap(h, size);
	return 0;
}

static int sleeper_main(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

/*
 * Member B points a1's slot at another process, and that process exits:
 * its exit is proof that process is gone, not that a1 is, and a1's files
 * and rings must stay (a1's lock is held). @whose: a process of A (a job
 * of hers that is no node: same uid as a1's file), or B's own. The BPF
 * path reclaims a node whose slot's pid and start time match an exit event
 * without a lock check; the pidfd path always checks the lock.
 */
static void pid_claim(struct sec_case *c, const char *mode, enum sec_who whose)
{
	struct sec_bnode b = { .dom = "gp", .mode = 0660 };
	struct b_claim cl;
	int bad, rt;

	sec_case_reaper(c, mode, NULL);
	sec_case_victim(c, SEC_A_G, "gp", 0660);
	c->label = whose == SEC_A ? "member points a1's slot at another process of A, which exits" :
				    "member points a1's slot at his own process, which exits";
	assert_int_equal(sec_bnode_start(&b, SEC_B_G), 0);
	cl.victim_pid = sec_fork_as(whose, sleeper_main, NULL);
	assert_true(cl.victim_pid > 0);
	sec_snap_free(c->s0);
	c->s0 = sec_snap_take(sec.b);
	assert_int_equal(sec_run_as(SEC_B_G, b_claim_main, &cl, 5000), 0);
	kill(cl.victim_pid, SIGKILL);
	th_wait(cl.victim_pid, 5000);
	sec_untrack(cl.victim_pid);
	nap_ms(100);
	bad = sec_case_check(c, 0);
	rt = sec_agent_roundtrip(&c->ag);
	print_message("[observed] a1 <-> a2 round trip after: %d\n", rt);
	assert_int_equal(bad, 0);
}

static void claim_a_pid(struct sec_case *c, const char *mode)
{
	pid_claim(c, mode, SEC_A);
}

static void claim_b_pid(struct sec_case *c, const char *mode)
{
	pid_claim(c, mode, SEC_B);
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

BOTH(retire_race)
BOTH(planted)
BOTH(group_state)
BOTH(group_key)
BOTH(group_free)
BOTH(group_member_dies)
BOTH(claim_a_pid)
BOTH(claim_b_pid)

int main(void)
{
#define T(fn)                                                              \
	cmocka_unit_test_setup_teardown(test_##fn##_bpf, setup, teardown), \
		cmocka_unit_test_setup_teardown(test_##fn##_pidfd, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(retire_race), T(planted),	      T(group_state), T(group_key),
		T(group_free),	T(group_member_dies), T(claim_a_pid), T(claim_b_pid),
	};
#undef T
	int rc = sec_init("test_security_files");

	if (rc)
		return rc > 0 ? 0 : 1;
	return sec_run_groups("test_security_files", tests, sizeof(tests) / sizeof(tests[0]));
}
