// SPDX-License-Identifier: MIT
/*
 * A value read from shared memory is checked in the copy that is used: a
 * peer rewriting the field between the library's check and its use must
 * gain nothing. The fuzz harnesses (tests/fuzz/) rewrite shared memory
 * between the library's calls; these tests rewrite it *during* them, from
 * another process that flips one field as fast as it can while a victim
 * runs the call in a loop, and fail if the flipped value ever gets past a
 * check.
 *
 * Each is a race: it shows a bug with high probability, not certainty (the
 * loops run until the deadline; without the fixes they failed within a few
 * hundred iterations here).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "registry.h"
#include "regfile.h"

#define RACE_MS 1500 /* how long each victim loop runs */

/* A 32-bit word of a shared struct that is not _Atomic in the layout:
 * stored whole, as a peer's store would land. */
static void store32(void *field, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)field, v, memory_order_relaxed);
}

/* Flip @field between @good and @bad until @ms have passed. */
static void flip(void *field, uint32_t good, uint32_t bad, int ms)
{
	double end = th_now_ms() + ms;
	unsigned k = 0;

	while ((++k & 1023) || th_now_ms() < end) {
		store32(field, bad);
		store32(field, good);
	}
}

/* Flipper and victim on different CPUs, where there are two: the race
 * needs both running at once. */
static void pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % CPU_SETSIZE, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/*
 * The children are forked before the parent opens its node: a fork from a
 * process whose library threads (the watcher) may hold the allocator's
 * lock leaves the child's first malloc waiting forever under ASan (its
 * allocator has no fork handlers). What they need of the parent's node
 * they find in memory shared with it, once their gate opens.
 */
static void *shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

/* ----------------------------------------------- registry capacity */

struct reg_race {
	struct th_dom *d;
	struct th_gate go[2]; /* flipper's, victim's: the keeper is open */
	char path[SHMRPC__PATH_MAX];
	uint32_t capacity;
};

static int capacity_flipper(void *arg)
{
	struct reg_race *rr = arg;
	uint64_t size;
	struct shmrpc__reg_hdr *h;

	CHILD_CHECK_RC(th_gate_wait(&rr->go[0], 20000), 0);
	h = th_shm_map(rr->path, &size);
	CHILD_CHECK(h);
	pin_cpu(1);
	/* A hi past every slot: only the capacity bounds a scan then. */
	atomic_store(&h->hi, UINT32_MAX);
	flip(&h->capacity, rr->capacity, SHMRPC__CAP_MAX, RACE_MS + 500);
	return 0;
}

static int reg_victim(void *arg)
{
	struct reg_race *rr = arg;
	double end;
	struct shmrpc_node *n;
	int opened = 0, tries = 0;

	CHILD_CHECK_RC(th_gate_wait(&rr->go[1], 20000), 0);
	end = th_now_ms() + RACE_MS;
	pin_cpu(0);
	/* Each open maps the registry afresh (no other node of the domain
	 * in this process) and checks its header. */
	while (th_now_ms() < end) {
		tries++;
		if (!shmrpc_open("victim", &rr->d->opts, &n)) {
			opened++;
			/* The capacity it uses is the one it checked. */
			CHILD_CHECK(n->reg->capacity == rr->capacity);
			shmrpc_close(n);
		}
	}
	printf("[info] registry race: %d opens of %d tries\n", opened, tries);
	return 0;
}

static void test_toctou_registry_capacity(void **state)
{
	struct th_dom *d = *state;
	struct reg_race *rr = shared_alloc(sizeof(*rr));
	struct shmrpc_node *keeper;
	pid_t flipper, victim;

	rr->d = d;
	th_gate_init(&rr->go[0]);
	th_gate_init(&rr->go[1]);
	flipper = th_fork(capacity_flipper, rr);
	victim = th_fork(reg_victim, rr);
	keeper = th_open(d, "keeper");
	rr->capacity = keeper->reg->capacity;
	shmrpc__reg_path(rr->path, d->name);
	th_gate_open(&rr->go[0]);
	th_gate_open(&rr->go[1]);
	/* A victim that used the flipped capacity read slots past its
	 * mapping: it died of SIGSEGV or SIGBUS. */
	assert_int_equal(th_wait(victim, RACE_MS + 20000), 0);
	assert_int_equal(th_wait(flipper, 20000), 0);
	atomic_store(&keeper->reg->hdr->hi, 1);
	shmrpc_close(keeper);
	th_gate_close(&rr->go[0]);
	th_gate_close(&rr->go[1]);
	munmap(rr, sizeof(*rr));
}

/* ----------------------------------------------- a ring's sender name */

/* One byte each way over a pipe: a sleeping rendezvous. */
static int pipe_put(int fd)
{
	return write(fd, "x", 1) == 1 ? 0 : -1;
}

static int pipe_get(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return read(fd, &c, 1) == 1 ? 0 : -1;
}

struct name_race {
	struct th_dom *d;
	int go[2], done[2]; /* sender -> receiver, receiver -> sender */
	struct th_gate rx_open;
	int rounds;
};

#define NAME_SENDERS 16 /* rings the receiver opens per round */

/* Flip the first word of each of @n fields, as flip() does one. */
static void flip_all(void *const *fields, int n, uint32_t good, uint32_t bad, int ms)
{
	double end = th_now_ms() + ms;
	unsigned k = 0;
	int i;

	while ((++k & 255) || th_now_ms() < end) {
		for (i = 0; i < n; i++)
			store32(fields[i], bad);
		for (i = 0; i < n; i++)
			store32(fields[i], good);
	}
}

/* Each round: NAME_SENDERS nodes join and send one message each (a new
 * ring each), then the sender name in every ring file flips between a
 * valid and an invalid one while the receiver opens the rings. */
static int name_flipper(void *arg)
{
	struct name_race *nr = arg;
	struct shmrpc_node *tx[NAME_SENDERS];
	struct shmrpc__ring_hdr *h[NAME_SENDERS];
	char path[SHMRPC__PATH_MAX], name[16];
	void *fields[NAME_SENDERS];
	struct shmrpc__slot_view v;
	uint64_t size;
	uint32_t rs = 0;
	double end;
	int r, i;

	CHILD_CHECK_RC(th_gate_wait(&nr->rx_open, 20000), 0);
	pin_cpu(1);
	for (r = 0; r < nr->rounds; r++) {
		for (i = 0; i < NAME_SENDERS; i++) {
			snprintf(name, sizeof(name), "tx%d", i);
			tx[i] = th_open(nr->d, name);
			CHILD_CHECK(tx[i]);
			CHILD_CHECK_RC(shmrpc_send(tx[i], "rx", "hello", 5, 1000), 0);
			CHILD_CHECK_RC(shmrpc__reg_find(tx[i]->reg, "rx", &rs, &v), 0);
			shmrpc__ring_path(path, tx[i]->reg, tx[i]->slot, tx[i]->gen, rs, v.gen);
			h[i] = th_shm_map(path, &size);
			CHILD_CHECK(h[i]);
			fields[i] = &h[i]->tx_name[0];
		}
		CHILD_CHECK_RC(pipe_put(nr->go[1]), 0);
		/* "tx<i>" <-> "t/<i>": the second byte decides. Until the
		 * receiver is done, or has given up. */
		end = th_now_ms() + 20000;
		while (pipe_get(nr->done[0], 0) && th_now_ms() < end)
			flip_all(fields, NAME_SENDERS, 't' | 'x' << 8, 't' | '/' << 8, 1);
		for (i = 0; i < NAME_SENDERS; i++) {
			store32(fields[i], 't' | 'x' << 8 | (uint32_t)(uint8_t)name[2] << 16);
			munmap(h[i], size);
			shmrpc_close(tx[i]);
		}
	}
	return 0;
}

static void test_toctou_ring_sender_name(void **state)
{
	struct th_dom *d = *state;
	struct name_race nr = { .d = d, .rounds = 12 };
	struct shmrpc_node *rx;
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	int i, k, rc, got = 0;
	pid_t pid;

	cpu_set_t was;

	assert_int_equal(pipe(nr.go), 0);
	assert_int_equal(pipe(nr.done), 0);
	th_gate_init(&nr.rx_open);
	pid = th_fork(name_flipper, &nr);
	rx = th_open(d, "rx");
	th_gate_open(&nr.rx_open);
	sched_getaffinity(0, sizeof(was), &was);
	pin_cpu(0);
	for (i = 0; i < nr.rounds; i++) {
		assert_int_equal(pipe_get(nr.go[0], 20000), 0);
		/* Opening a ring checks its header; the name kept must be the
		 * one checked. (A ring refused for a bad name is dropped: its
		 * message is lost, the sender's doing.) */
		for (k = 0; k < NAME_SENDERS; k++) {
			rc = shmrpc_recv(rx, buf, sizeof(buf), from, 50);
			if (rc < 0)
				break;
			got++;
			if (shmrpc__name_check(from))
				fail_msg("round %d: a message from \"%.64s\", not a node name", i,
					 from);
		}
		assert_int_equal(pipe_put(nr.done[1]), 0);
	}
	sched_setaffinity(0, sizeof(was), &was);
	assert_int_equal(th_wait(pid, 30000), 0);
	printf("[info] sender name race: %d of %d messages delivered\n", got,
	       nr.rounds * NAME_SENDERS);
	while (shmrpc_recv(rx, buf, sizeof(buf), from, 0) >= 0)
		;
	shmrpc_close(rx);
	for (i = 0; i < 2; i++) {
		close(nr.go[i]);
		close(nr.done[i]);
	}
	th_gate_close(&nr.rx_open);
}

/* ----------------------------------------------- a receiver's ring size */

struct rb_race {
	struct th_dom *d;
	struct th_gate go[2];	     /* flipper's, victim's: rx is open */
	char path[SHMRPC__PATH_MAX]; /* rx's node segment */
};

static int ring_bytes_flipper(void *arg)
{
	struct rb_race *rr = arg;
	uint64_t size;
	struct shmrpc__node_hdr *h;

	CHILD_CHECK_RC(th_gate_wait(&rr->go[0], 20000), 0);
	h = th_shm_map(rr->path, &size);
	CHILD_CHECK(h);
	pin_cpu(1);
	/* 3 pages: not a power of two, refused by every check */
	flip(&h->ring_bytes, 4096, 3 * 4096, RACE_MS + 500);
	return 0;
}

/* Connect again and again; the ring made must have a size the receiver
 * accepts: a page plus a power of two. */
static int ring_bytes_victim(void *arg)
{
	struct rb_race *rr = arg;
	double end;
	char path[SHMRPC__PATH_MAX + 16], name[SHMRPC__PATH_MAX];
	struct shmrpc__slot_view v;
	struct shmrpc_node *tx;
	struct stat st;
	uint32_t rs = 0;
	int sent = 0;

	CHILD_CHECK_RC(th_gate_wait(&rr->go[1], 20000), 0);
	end = th_now_ms() + RACE_MS;
	pin_cpu(0);
	while (th_now_ms() < end) {
		tx = th_open(rr->d, "tx");
		CHILD_CHECK(tx);
		if (!shmrpc_send(tx, "rx", "x", 1, 0)) {
			sent++;
			CHILD_CHECK_RC(shmrpc__reg_find(tx->reg, "rx", &rs, &v), 0);
			shmrpc__ring_path(name, tx->reg, tx->slot, tx->gen, rs, v.gen);
			snprintf(path, sizeof(path), "/dev/shm%s", name);
			CHILD_CHECK_RC(stat(path, &st), 0);
			CHILD_CHECK(st.st_size == SHMRPC__PAGE + 4096);
		}
		shmrpc_close(tx);
	}
	printf("[info] ring size race: %d connects\n", sent);
	return 0;
}

static void test_toctou_peer_ring_bytes(void **state)
{
	struct th_dom *d = *state;
	struct rb_race *rr = shared_alloc(sizeof(*rr));
	struct shmrpc_node *rx;
	struct shmrpc__slot_view v;
	uint32_t s = 0;
	char buf[8];
	pid_t flipper, victim;
	double end;

	d->opts.ring_bytes = 4096;
	rr->d = d;
	th_gate_init(&rr->go[0]);
	th_gate_init(&rr->go[1]);
	flipper = th_fork(ring_bytes_flipper, rr);
	victim = th_fork(ring_bytes_victim, rr);
	rx = th_open(d, "rx");
	assert_int_equal(shmrpc__reg_find(rx->reg, "rx", &s, &v), 0);
	shmrpc__node_path(rr->path, rx->reg, s, v.gen);
	th_gate_open(&rr->go[0]);
	th_gate_open(&rr->go[1]);
	/* Drain as it goes: every sender leaves a ring for us. */
	end = th_now_ms() + RACE_MS + 300;
	while (th_now_ms() < end)
		shmrpc_recv(rx, buf, sizeof(buf), NULL, 10);
	assert_int_equal(th_wait(victim, 20000), 0);
	while (shmrpc_recv(rx, buf, sizeof(buf), NULL, 0) >= 0)
		;
	assert_int_equal(th_wait(flipper, 20000), 0);
	shmrpc_close(rx);
	th_gate_close(&rr->go[0]);
	th_gate_close(&rr->go[1]);
	munmap(rr, sizeof(*rr));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_toctou_registry_capacity, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_toctou_ring_sender_name, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_toctou_peer_ring_bytes, th_setup, th_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
