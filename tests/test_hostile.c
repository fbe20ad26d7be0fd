// SPDX-License-Identifier: MIT
/*
 * Shared memory is untrusted input: a peer that writes garbage into the
 * domain's files (opened by name in /dev/shm, offsets from lib/layout.h)
 * may make calls fail, never crash another process, and never make it
 * touch files outside the domain.
 *
 * Real processes and the public API throughout; the hostile side is either
 * a forked node that corrupts what it can reach, or the test process
 * itself writing to the files directly.
 *
 * Not tested here, on purpose: a peer that ftruncate()s a segment *after*
 * the victim mapped it makes the victim's next access raise SIGBUS (tmpfs
 * files opened by name cannot be sealed against shrinking). That is a known
 * limitation of the design; a test of it would only show the crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "futex.h"
#include "layout.h"
#include "node_types.h"
#include "names.h"
#include "nodeseg.h"
#include "registry.h"
#include "ring.h"
#include "seg.h"
#include "wake.h"

/* ------------------------------------------------------------- helpers */

/* Map a /dev/shm object by its shm name ("/shmrpc..."), read-write. */
static bool hx_exists(const char *name)
{
	char path[SHMRPC__PATH_MAX + 16];
	struct stat st;

	snprintf(path, sizeof(path), "/dev/shm%.*s", SHMRPC__PATH_MAX, name);
	return stat(path, &st) == 0;
}

/* (slot, gen) of the live node @name, as @me sees the registry. */
static int hx_id(struct shmrpc_node *me, const char *name, uint32_t *slot, uint32_t *gen)
{
	struct shmrpc__slot_view v;
	int rc = shmrpc__reg_find(me->reg, name, slot, &v);

	if (!rc)
		*gen = v.gen;
	return rc;
}

static void node_name(struct shmrpc_node *me, const char *who, char *path)
{
	uint32_t s = 0, g = 0;

	if (hx_id(me, who, &s, &g))
		fail_msg("no live node %s", who);
	shmrpc__node_path(path, me->reg, s, g);
}

static void ring_name(struct shmrpc_node *me, const char *from, const char *to, char *path)
{
	uint32_t fs = 0, fg = 0, ts = 0, tg = 0;

	if (hx_id(me, from, &fs, &fg) || hx_id(me, to, &ts, &tg))
		fail_msg("no live node %s or %s", from, to);
	shmrpc__ring_path(path, me->reg, fs, fg, ts, tg);
}

/* An honest sender: @n messages {seq, ~seq} to @to, then it leaves. */
struct honest {
	struct th_dom *d;
	const char *name, *to;
	int n;
};

static int honest_sender(void *arg)
{
	struct honest *h = arg;
	struct shmrpc_node *n = th_open(h->d, h->name);
	uint64_t msg[2];
	int i;

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, h->to, 5000) == 0);
	for (i = 0; i < h->n; i++) {
		msg[0] = (uint64_t)i;
		msg[1] = ~(uint64_t)i;
		CHILD_CHECK_RC(shmrpc_send(n, h->to, msg, sizeof(msg), 5000), 0);
	}
	shmrpc_close(n);
	return 0;
}

/* The victim still works: it receives @n messages from a new honest node. */
static void victim_still_receives(struct th_dom *d, struct shmrpc_node *rx, const char *name, int n)
{
	struct honest h = { d, name, shmrpc_name(rx), n };
	char from[SHMRPC_NAME_MAX + 1];
	uint64_t msg[2];
	pid_t pid = th_fork(honest_sender, &h);
	int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(shmrpc_recv(rx, msg, sizeof(msg), from, 10000), sizeof(msg));
		assert_string_equal(from, name);
		assert_int_equal(msg[0], (uint64_t)i);
		assert_int_equal(msg[1], ~(uint64_t)i);
	}
	assert_int_equal(th_wait(pid, 10000), 0);
}

/* ------------------------------------- a sender corrupts its own ring */

enum { CORRUPT_TAIL, CORRUPT_RECORD, CORRUPT_HEAD_UNALIGNED };

struct evil_ring {
	struct th_dom *d;
	int how;
	struct th_gate sent, got, dropped;
};

static int evil_ring_sender(void *arg)
{
	struct evil_ring *e = arg;
	struct shmrpc_node *n = th_open(e->d, "evil");
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__ring_hdr *h;
	struct shmrpc__rec rec = { 0xffffff00u, 0 };
	uint64_t size, tail;
	int i;

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "rx", 5000) == 0);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "hello", 5, 1000), 0);
	th_gate_open(&e->sent);
	CHILD_CHECK(th_gate_wait(&e->got, 10000) == 0);
	ring_name(n, "evil", "rx", path);
	h = th_shm_map(path, &size);
	CHILD_CHECK(h);
	/* sleeping wait until the receiver sleeps on this ring */
	for (i = 0; i < 5000 && !(atomic_load(&h->data_seq) & SHMRPC__W_SLEEP); i++)
		th_sleep_ms(1);
	CHILD_CHECK(atomic_load(&h->data_seq) & SHMRPC__W_SLEEP);
	tail = atomic_load(&h->tail);
	switch (e->how) {
	case CORRUPT_TAIL: /* more than one ring ahead */
		atomic_store(&h->tail, tail + h->size + 8);
		break;
	case CORRUPT_RECORD: /* a header with an absurd length, published */
		memcpy((uint8_t *)h + SHMRPC__PAGE + (tail & (h->size - 1)), &rec, sizeof(rec));
		atomic_store(&h->tail, tail + 16);
		break;
	case CORRUPT_HEAD_UNALIGNED: /* the consumer's index: ignored once attached */
		atomic_store(&h->head, tail + 4);
		atomic_store(&h->tail, tail + h->size * 2 + 4);
		break;
	}
	if (shmrpc__wake_prepare(&h->data_seq) != SHMRPC__WAKE_NONE)
		shmrpc__futex_wake(&h->data_seq);
	CHILD_CHECK(th_gate_wait(&e->dropped, 10000) == 0);
	/* the receiver dropped the ring and set RX_CLOSED */
	CHILD_CHECK(atomic_load(&h->flags) & SHMRPC__RING_RX_CLOSED);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "again", 5, 1000), -EPIPE);
	munmap(h, size);
	shmrpc_close(n);
	return 0;
}

/* The drop is logged (a warning naming the ring's sender). */
static int corrupt_logged;

static void count_corrupt(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level == SHMRPC_LOG_WARN && strstr(msg, "node rx: the ring from 'evil'") &&
	    strstr(msg, "is corrupt: dropped"))
		corrupt_logged++;
}

static void corrupt_ring_while_blocked(struct th_dom *d, int how)
{
	struct evil_ring e = { .d = d, .how = how };
	struct shmrpc_node *rx = th_open(d, "rx");
	char from[SHMRPC_NAME_MAX + 1], path[SHMRPC__PATH_MAX];
	struct shmrpc_stats st;
	char buf[64];
	pid_t pid;

	assert_non_null(rx);
	th_gate_init(&e.sent);
	th_gate_init(&e.got);
	th_gate_init(&e.dropped);
	pid = th_fork(evil_ring_sender, &e);
	assert_int_equal(th_gate_wait(&e.sent, 10000), 0);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 5000), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_string_equal(from, "evil");
	ring_name(rx, "evil", "rx", path);
	assert_true(hx_exists(path));
	th_gate_open(&e.got);
	corrupt_logged = 0;
	shmrpc_set_log(count_corrupt, NULL);
	/* blocks until the sender corrupts the ring and wakes us */
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 10000), -EPROTO);
	shmrpc_set_log(NULL, NULL);
	assert_int_equal(corrupt_logged, 1);
	assert_false(hx_exists(path)); /* dropped and unlinked */
	assert_int_equal(shmrpc_stats(rx, &st), 0);
	assert_int_equal(st.rings_in, 0);
	/* once: the corrupt ring is gone, nothing else is pending */
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 0), -EAGAIN);
	th_gate_open(&e.dropped);
	assert_int_equal(th_wait(pid, 10000), 0);
	victim_still_receives(d, rx, "honest", 100);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 0), -EAGAIN);
	shmrpc_close(rx);
	th_gate_close(&e.sent);
	th_gate_close(&e.got);
	th_gate_close(&e.dropped);
}

static void test_hostile_ring_tail_while_receiver_blocked(void **state)
{
	corrupt_ring_while_blocked(*state, CORRUPT_TAIL);
}

static void test_hostile_ring_record_while_receiver_blocked(void **state)
{
	corrupt_ring_while_blocked(*state, CORRUPT_RECORD);
}

static void test_hostile_ring_indices_while_receiver_blocked(void **state)
{
	corrupt_ring_while_blocked(*state, CORRUPT_HEAD_UNALIGNED);
}

/* --------------------------- a sender corrupts a record we hold a peek on */

#define PEEK_RING 4096
#define PEEK_LEN 2040 /* half the ring, less a header: two records fill it */

enum { GARBLE_HEADER, FAKE_END };

struct evil_peek {
	struct th_dom *d;
	int how;
	struct th_gate first, sent, peeked, garbled, dropped;
};

static int evil_peek_sender(void *arg)
{
	struct evil_peek *e = arg;
	struct shmrpc_node *n = th_open(e->d, "evil");
	struct shmrpc__rec garbage = { 0xffffff00u, 0 }, wrap = { 0, SHMRPC__REC_WRAP };
	char path[SHMRPC__PATH_MAX];
	uint8_t msg[PEEK_LEN];
	struct shmrpc__ring_hdr *h;
	uint64_t size, head;

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "rx", 5000) == 0);
	/* the first fills half the ring; once it is received, the second
	 * lies at offset 2048 and ends exactly at the ring's end */
	th_fill(msg, sizeof(msg), 7, 0);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", msg, sizeof(msg), 1000), 0);
	th_gate_open(&e->first);
	th_fill(msg, sizeof(msg), 7, 1);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", msg, sizeof(msg), 5000), 0);
	th_gate_open(&e->sent);
	CHILD_CHECK(th_gate_wait(&e->peeked, 10000) == 0);
	ring_name(n, "evil", "rx", path);
	h = th_shm_map(path, &size);
	CHILD_CHECK(h && h->size == PEEK_RING);
	head = atomic_load(&h->head);
	CHILD_CHECK((head & (PEEK_RING - 1)) == PEEK_RING / 2);
	if (e->how == GARBLE_HEADER) {
		/* the held record's header: an absurd length */
		memcpy((uint8_t *)h + SHMRPC__PAGE + PEEK_RING / 2, &garbage, sizeof(garbage));
	} else {
		/* a wrap record in its place, and "closed": to a second look
		 * the ring is drained and its sender gone */
		memcpy((uint8_t *)h + SHMRPC__PAGE + PEEK_RING / 2, &wrap, sizeof(wrap));
		atomic_fetch_or(&h->flags, SHMRPC__RING_TX_CLOSED);
	}
	th_gate_open(&e->garbled);
	CHILD_CHECK(th_gate_wait(&e->dropped, 10000) == 0);
	CHILD_CHECK(atomic_load(&h->flags) & SHMRPC__RING_RX_CLOSED);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "again", 5, 1000), -EPIPE);
	munmap(h, size);
	shmrpc_close(n);
	return 0;
}

/*
 * We hold a peek (rx1.data points into the ring); the sender then corrupts
 * the ring, and a second look finds it: -EPROTO. The ring used to be
 * unmapped right there, and reading rx1.data faulted. Its drop now waits
 * for the release of rx1 (0), the receiving calls say -EPROTO meanwhile,
 * and then others' messages flow again.
 */
static void corrupt_ring_under_peek(struct th_dom *d, int how)
{
	struct evil_peek e = { .d = d, .how = how };
	struct shmrpc_opts o = d->opts;
	char from[SHMRPC_NAME_MAX + 1], path[SHMRPC__PATH_MAX];
	struct shmrpc_rxbuf rx1, rx2;
	static uint8_t buf[PEEK_LEN];
	struct shmrpc_stats st;
	struct shmrpc_node *rx;
	pid_t pid;
	int rc;

	o.ring_bytes = PEEK_RING;
	assert_int_equal(shmrpc_open("rx", &o, &rx), 0);
	th_gate_init(&e.first);
	th_gate_init(&e.sent);
	th_gate_init(&e.peeked);
	th_gate_init(&e.garbled);
	th_gate_init(&e.dropped);
	pid = th_fork(evil_peek_sender, &e);
	assert_int_equal(th_gate_wait(&e.first, 10000), 0);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 5000), PEEK_LEN);
	assert_int_equal(th_check(buf, PEEK_LEN, 7, 0), 0);
	assert_int_equal(th_gate_wait(&e.sent, 10000), 0);
	assert_int_equal(shmrpc_peek(rx, &rx1, 5000), PEEK_LEN);
	assert_string_equal(rx1.from, "evil");
	ring_name(rx, "evil", "rx", path);
	th_gate_open(&e.peeked);
	assert_int_equal(th_gate_wait(&e.garbled, 10000), 0);

	rc = shmrpc_peek(rx, &rx2, 0);
	/* rx1 is still ours: every byte readable (the ring was unmapped) */
	assert_int_equal(rx1.len, PEEK_LEN);
	assert_int_equal(th_check(rx1.data, rx1.len, 7, 1), 0);
	assert_int_equal(rc, -EPROTO);
	/* until rx1 is released: the same answer, the ring still mapped */
	assert_int_equal(shmrpc_peek(rx, &rx2, 0), -EPROTO);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 0), -EPROTO);
	assert_int_equal(shmrpc_stats(rx, &st), 0);
	assert_int_equal(st.rings_in, 1);
	assert_int_equal(th_check(rx1.data, rx1.len, 7, 1), 0);
	assert_int_equal(shmrpc_release(rx, &rx1), 0);
	assert_int_equal(shmrpc_release(rx, &rx1), -EINVAL);
	assert_false(hx_exists(path)); /* dropped and unlinked now */
	assert_int_equal(shmrpc_stats(rx, &st), 0);
	assert_int_equal(st.rings_in, 0);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 0), -EAGAIN);
	th_gate_open(&e.dropped);
	assert_int_equal(th_wait(pid, 10000), 0);
	victim_still_receives(d, rx, "honest", 100);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 0), -EAGAIN);
	shmrpc_close(rx);
	th_gate_close(&e.first);
	th_gate_close(&e.sent);
	th_gate_close(&e.peeked);
	th_gate_close(&e.garbled);
	th_gate_close(&e.dropped);
}

static void test_hostile_ring_record_garbled_under_peek(void **state)
{
	corrupt_ring_under_peek(*state, GARBLE_HEADER);
}

static void test_hostile_ring_faked_drained_under_peek(void **state)
{
	corrupt_ring_under_peek(*state, FAKE_END);
}

/* ------------------------------------------------- registry garbage */

static void slot_garbage(struct shmrpc__slot *s, uint32_t state, uint32_t gen, const void *name,
			 size_t name_len, int32_t pid)
{
	uint64_t w[8] = { 0 };
	int k;

	memcpy(w, name, name_len);
	atomic_store(&s->gen, gen);
	atomic_store(&s->pid, pid);
	atomic_store(&s->uid, 12345);
	atomic_store(&s->start_time, ~0ull);
	atomic_store(&s->ring_bytes, 3); /* not a ring size */
	for (k = 0; k < 8; k++)
		atomic_store(&s->name[k], w[k]);
	atomic_store(&s->state, state);
}

struct liar {
	struct th_dom *d;
	struct th_gate ready, done;
};

static int liar_node(void *arg)
{
	struct liar *l = arg;
	struct shmrpc_node *n = th_open(l->d, "liar");

	CHILD_CHECK(n);
	th_gate_open(&l->ready);
	CHILD_CHECK(th_gate_wait(&l->done, 20000) == 0);
	shmrpc_close(n);
	return 0;
}

struct ghost {
	struct th_dom *d;
};

/* Joins under a name that a garbage slot claims, talks to rx. */
static int ghost_node(void *arg)
{
	struct ghost *g = arg;
	struct shmrpc_node *n = th_open(g->d, "ghost");
	char from[SHMRPC_NAME_MAX + 1], buf[16];

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "boo", 3, 5000), 0);
	CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, 10000), 2); /* the broadcast */
	CHILD_CHECK(!strcmp(from, "rx"));
	shmrpc_close(n);
	return 0;
}

/*
 * What a peer could write into the registry: the live node "liar" loses its
 * name's NUL; dead LIVE slots without segments, odd states and odd names
 * after the slots in use; hi beyond the capacity.
 */
static void plant_registry_garbage(struct shmrpc_node *rx, const char *path)
{
	struct shmrpc__reg_hdr *hdr;
	struct shmrpc__slot *slots;
	uint64_t size, rnd = 7;
	char a64[64], junk[64];
	uint32_t base, ls = 0, lg;
	int k;

	hdr = th_shm_map(path, &size);
	assert_non_null(hdr);
	slots = (struct shmrpc__slot *)(hdr + 1);
	base = atomic_load(&hdr->hi);
	assert_true(base + 8 <= hdr->capacity);
	memset(a64, 'a', sizeof(a64));
	for (k = 0; k < 64; k++)
		junk[k] = (char)(th_rand(&rnd) | 0x80);
	assert_int_equal(hx_id(rx, "liar", &ls, &lg), 0);
	for (k = 0; k < 8; k++)
		atomic_store(&slots[ls].name[k], 0x6161616161616161ull);
	slot_garbage(&slots[base + 0], SHMRPC__SLOT_LIVE, 5, "bad/name", 8, -1);
	slot_garbage(&slots[base + 1], SHMRPC__SLOT_LIVE, 7, a64, 64, INT32_MAX);
	slot_garbage(&slots[base + 2], SHMRPC__SLOT_LIVE, 9, "ghost", 5, INT32_MIN);
	slot_garbage(&slots[base + 3], 0xdeadbeef, 0xfffffff0u, junk, 64, 0);
	slot_garbage(&slots[base + 4], SHMRPC__SLOT_LIVE, 0xffffffffu, "", 0, 0);
	slot_garbage(&slots[base + 5], SHMRPC__SLOT_LIVE, 3, ".hidden", 7, 1);
	slot_garbage(&slots[base + 6], SHMRPC__SLOT_LIVE, 11, "rx", 2, 1); /* a dead twin */
	slot_garbage(&slots[base + 7], SHMRPC__SLOT_JOINING, 1, "joiner", 6, 1);
	atomic_store(&hdr->hi, 0xffffffffu);
	munmap(hdr, size);
}

static void test_hostile_registry_garbage(void **state)
{
	struct th_dom *d = *state;
	char names[16][SHMRPC_NAME_MAX + 1], path[SHMRPC__PATH_MAX], from[SHMRPC_NAME_MAX + 1];
	char a63[SHMRPC_NAME_MAX + 1], buf[16];
	struct liar l = { .d = d };
	struct ghost g = { d };
	struct shmrpc_node *rx;
	pid_t lpid, gpid;
	int i, k;

	rx = th_open(d, "rx");
	assert_non_null(rx);
	th_gate_init(&l.ready);
	th_gate_init(&l.done);
	lpid = th_fork(liar_node, &l);
	assert_int_equal(th_gate_wait(&l.ready, 10000), 0);
	shmrpc__reg_path(path, d->name);
	plant_registry_garbage(rx, path);
	memset(a63, 'a', SHMRPC_NAME_MAX);
	a63[SHMRPC_NAME_MAX] = '\0';

	/* the listing holds the real, well-named nodes only */
	i = shmrpc_nodes(rx, names, 16);
	for (k = 0; k < i && k < 16; k++)
		if (strcmp(names[k], "rx"))
			fail_msg("shmrpc_nodes listed \"%s\"", names[k]);
	assert_int_equal(i, 1);
	assert_int_equal(shmrpc_is_local(rx, "rx"), 1);
	assert_int_equal(shmrpc_is_local(rx, "ghost"), 0);
	assert_int_equal(shmrpc_is_local(rx, a63), 0);
	assert_int_equal(shmrpc_is_local(rx, "joiner"), 0);
	assert_int_equal(shmrpc_is_local(rx, "bad/name"), -EINVAL);
	assert_int_equal(shmrpc_send(rx, "ghost", "x", 1, 0), -ENOENT);
	assert_int_equal(shmrpc_send(rx, a63, "x", 1, 0), -ENOENT);
	assert_int_equal(shmrpc_send(rx, "joiner", "x", 1, 0), -ENOENT);
	assert_int_equal(shmrpc_max_size(rx, "ghost"), -ENOENT);
	assert_int_equal(shmrpc_wait_node(rx, "ghost", 20), -ETIMEDOUT);
	assert_int_equal(shmrpc_warmup(rx), 0); /* the liar's name is garbage */

	/* a newcomer can take the name a garbage slot claimed */
	gpid = th_fork(ghost_node, &g);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 10000), 3);
	assert_string_equal(from, "ghost");
	assert_int_equal(shmrpc_broadcast(rx, "hi", 2, 5000), 1);
	assert_int_equal(th_wait(gpid, 10000), 0);

	th_gate_open(&l.done);
	assert_int_equal(th_wait(lpid, 10000), 0);
	/* the others left; rx is still here, so is the domain */
	assert_true(hx_exists(path));
	assert_int_equal(shmrpc_is_local(rx, "rx"), 1);
	shmrpc_close(rx);
	th_gate_close(&l.ready);
	th_gate_close(&l.done);
}

/* --------------------------------- a bad node segment before a connect */

enum {
	SEG_MAGIC,
	SEG_SLOT,
	SEG_GEN,
	SEG_CAPACITY,
	SEG_PEND_OFF,
	SEG_IN_OFF,
	SEG_OUT_OFF,
	SEG_RING_BYTES,
	SEG_RING_BYTES_POW2,
	SEG_SHRUNK,
	SEG_EMPTY,
	SEG_GROWN,
	SEG_NKINDS
};
static const char *const seg_kind[] = {
	"magic",	   "slot",   "gen",	"capacity",
	"pend_off",	   "in_off", "out_off", "ring_bytes",
	"ring_bytes 2^31", "shrunk", "empty",	"grown",
};

struct sleeper {
	struct th_dom *d;
	const char *name;
	struct th_gate ready;
};

/* Joins, then waits to be killed. */
static int sleeper_node(void *arg)
{
	struct sleeper *s = arg;
	struct shmrpc_node *n;

	/* never outlive a test that failed before killing us */
	CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != 1);
	n = th_open(s->d, s->name);
	CHILD_CHECK(n);
	th_gate_open(&s->ready);
	for (;;)
		pause();
}

static void corrupt_seg(const char *path, int kind)
{
	struct shmrpc__node_hdr *h;
	uint64_t size;
	int fd;

	if (kind == SEG_SHRUNK || kind == SEG_EMPTY || kind == SEG_GROWN) {
		off_t len = kind == SEG_SHRUNK ? 4096 : kind == SEG_EMPTY ? 0 : 1 << 24;

		fd = shm_open(path, O_RDWR, 0);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, len), 0);
		close(fd);
		return;
	}
	h = th_shm_map(path, &size);
	assert_non_null(h);
	switch (kind) {
	case SEG_MAGIC:
		h->magic ^= 1;
		break;
	case SEG_SLOT:
		h->slot += 1;
		break;
	case SEG_GEN:
		h->gen += 1;
		break;
	case SEG_CAPACITY:
		h->capacity = 0xffffffffu;
		break;
	case SEG_PEND_OFF:
		h->pend_off = 0x7ffffff8u;
		break;
	case SEG_IN_OFF:
		h->in_off = 0xfffffff0u;
		break;
	case SEG_OUT_OFF:
		h->out_off = 8;
		break;
	case SEG_RING_BYTES:
		h->ring_bytes = 4097;
		break;
	case SEG_RING_BYTES_POW2:
		h->ring_bytes = 1u << 31;
		break;
	}
	munmap(h, size);
}

static void test_hostile_bad_node_segment_before_connect(void **state)
{
	struct th_dom *d = *state;
	char seg[SHMRPC__PATH_MAX], ring[SHMRPC__PATH_MAX];
	struct sleeper s = { d, "evil", { { -1, -1 } } };
	struct shmrpc_node *rx = th_open(d, "rx");
	uint32_t es = 0, eg = 0, rs = 0, rg = 0;
	int kind, rc;
	pid_t pid;

	assert_non_null(rx);
	assert_int_equal(hx_id(rx, "rx", &rs, &rg), 0);
	for (kind = 0; kind < SEG_NKINDS; kind++) {
		th_gate_init(&s.ready);
		pid = th_fork(sleeper_node, &s);
		assert_int_equal(th_gate_wait(&s.ready, 10000), 0);
		assert_int_equal(hx_id(rx, "evil", &es, &eg), 0);
		shmrpc__node_path(seg, rx->reg, es, eg);
		shmrpc__ring_path(ring, rx->reg, rs, rg, es, eg);
		corrupt_seg(seg, kind);

		rc = shmrpc_send(rx, "evil", "x", 1, 100);
		print_message("node segment with bad %s: send = %d\n", seg_kind[kind], rc);
		if (rc != -EPROTO && rc != -ENOENT)
			fail_msg("bad %s: shmrpc_send = %d (%s)", seg_kind[kind], rc,
				 strerror(-rc));
		assert_false(hx_exists(ring)); /* nothing was created for it */
		assert_int_equal(shmrpc_warmup(rx), 0);

		/* once dead, lazy reclaim removes it despite the garbage */
		kill(pid, SIGKILL);
		assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
		assert_int_equal(shmrpc_is_local(rx, "evil"), 0);
		assert_false(hx_exists(seg));
		th_gate_close(&s.ready);
	}
	victim_still_receives(d, rx, "honest", 10);
	shmrpc_close(rx);
}

/* ------------------- garbage tables of a dead node, then lazy reclaim */

struct evil_tables {
	struct th_dom *d;
	struct th_gate ready;
};

/* Opens rings to rx and to good, then waits to be killed. */
static int evil_connected(void *arg)
{
	struct evil_tables *e = arg;
	struct shmrpc_node *n;

	CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != 1);
	n = th_open(e->d, "evil");
	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "rx", 5000) == 0);
	CHILD_CHECK(shmrpc_wait_node(n, "good", 5000) == 0);
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "evil", 4, 1000), 0);
	CHILD_CHECK_RC(shmrpc_warmup(n), 2);
	th_gate_open(&e->ready);
	for (;;)
		pause();
}

struct good_peer {
	struct th_dom *d;
	struct th_gate ready, go;
	int n;
};

/* Sends one message, waits, sends n more, leaves. */
static int good_peer(void *arg)
{
	struct good_peer *g = arg;
	struct shmrpc_node *n = th_open(g->d, "good");
	uint64_t msg[2];
	int i;

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "rx", 5000) == 0);
	for (i = 0; i <= g->n; i++) {
		msg[0] = (uint64_t)i;
		msg[1] = ~(uint64_t)i;
		CHILD_CHECK_RC(shmrpc_send(n, "rx", msg, sizeof(msg), 5000), 0);
		if (i == 0) {
			th_gate_open(&g->ready);
			CHILD_CHECK(th_gate_wait(&g->go, 20000) == 0);
		}
	}
	shmrpc_close(n);
	return 0;
}

static int make_decoy(const char *name)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, SHMRPC__PAGE)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

#define NDECOY 40

struct ids {
	uint32_t es, eg; /* evil */
	uint32_t rs, rg; /* rx */
	uint32_t gs, gg; /* good */
};

/*
 * Fill the dead node's in_gen/out_gen tables with garbage, plus entries
 * that name real nodes, and create decoy files of other domains, named as
 * those entries would name them. Returns the number of decoys.
 */
static int scribble_tables(struct th_dom *d, struct shmrpc_node *rx, const struct ids *id,
			   char (*decoy)[SHMRPC__PATH_MAX])
{
	char seg[SHMRPC__PATH_MAX], other[SHMRPC__PATH_MAX], lookalike[SHMRPC__PATH_MAX];
	uint32_t cap = rx->reg->capacity, nonce = rx->reg->nonce, i;
	struct shmrpc__node_hdr *h;
	_Atomic uint32_t *in, *out;
	uint64_t size, rnd = 12345;
	int nd = 0;

	shmrpc__node_path(seg, rx->reg, id->es, id->eg);
	h = th_shm_map(seg, &size);
	assert_non_null(h);
	in = shmrpc__node_tab(h, shmrpc__node_in_off(cap));
	out = shmrpc__node_tab(h, shmrpc__node_out_off(cap));
	for (i = 0; i < cap; i++) {
		atomic_store(&in[i], (uint32_t)th_rand(&rnd));
		atomic_store(&out[i], i % 3 ? (uint32_t)th_rand(&rnd) : 0xffffffffu);
	}
	atomic_store(&out[id->rs], id->rg + 1);
	atomic_store(&in[id->gs], id->gg + 1);
	atomic_store(&in[id->rs], 0);

	snprintf(other, sizeof(other), "%sx", d->name);
	snprintf(lookalike, sizeof(lookalike), "%s.%08x", d->name, nonce);
	shmrpc__reg_path(decoy[nd++], other);
	shmrpc__reg_path(decoy[nd++], lookalike); /* /shmrpc.<domain>.<nonce>.reg */
	shmrpc__node_path_key(decoy[nd++], other, rx->reg->key, id->es, id->eg);
	for (i = 0; nd < NDECOY - 1; i++) {
		shmrpc__ring_path_key(decoy[nd++], other, rx->reg->key, id->es, id->eg, i,
				      atomic_load(&out[i]) - 1);
		shmrpc__ring_path_key(decoy[nd++], other, rx->reg->key, i, atomic_load(&in[i]) - 1,
				      id->es, id->eg);
	}
	shmrpc__ring_path_key(decoy[nd++], other, rx->reg->key, id->gs, id->gg, id->rs, id->rg);
	for (i = 0; i < (uint32_t)nd; i++)
		assert_int_equal(make_decoy(decoy[i]), 0);
	munmap(h, size);
	return nd;
}

/* rx receives the first message of evil and of good: both rings open. */
static void open_both_rings(struct shmrpc_node *rx)
{
	char from[SHMRPC_NAME_MAX + 1], buf[16];
	int got_evil = 0, got_good = 0, rc;

	while (got_evil + got_good < 2) {
		rc = shmrpc_recv(rx, buf, sizeof(buf), from, 5000);
		assert_true(rc == 4 || rc == 16);
		got_evil += !strcmp(from, "evil");
		got_good += !strcmp(from, "good");
	}
	assert_int_equal(got_evil, 1);
}

static void test_hostile_reclaim_with_garbage_tables(void **state)
{
	struct th_dom *d = *state;
	struct evil_tables e = { .d = d };
	struct good_peer g = { .d = d, .n = 50 };
	char seg[SHMRPC__PATH_MAX], decoy[NDECOY][SHMRPC__PATH_MAX], from[SHMRPC_NAME_MAX + 1];
	char good_ring[SHMRPC__PATH_MAX], rx_seg[SHMRPC__PATH_MAX], good_seg[SHMRPC__PATH_MAX];
	struct shmrpc_node *rx = th_open(d, "rx");
	struct ids id = { 0 };
	uint64_t msg[2];
	pid_t epid, gpid;
	int nd, i, rc, missing;

	assert_non_null(rx);
	th_gate_init(&e.ready);
	th_gate_init(&g.ready);
	th_gate_init(&g.go);
	gpid = th_fork(good_peer, &g);
	assert_int_equal(th_gate_wait(&g.ready, 10000), 0);
	epid = th_fork(evil_connected, &e);
	assert_int_equal(th_gate_wait(&e.ready, 10000), 0);
	open_both_rings(rx);
	assert_int_equal(hx_id(rx, "evil", &id.es, &id.eg), 0);
	assert_int_equal(hx_id(rx, "rx", &id.rs, &id.rg), 0);
	assert_int_equal(hx_id(rx, "good", &id.gs, &id.gg), 0);
	shmrpc__node_path(seg, rx->reg, id.es, id.eg);
	ring_name(rx, "good", "rx", good_ring);
	node_name(rx, "rx", rx_seg);
	node_name(rx, "good", good_seg);

	/* Scribble while it is stopped: once it dies, its peers' watchers
	 * (lib/watch.c) reclaim it at once, garbage tables and all. */
	kill(epid, SIGSTOP);
	nd = scribble_tables(d, rx, &id, decoy);
	kill(epid, SIGKILL);
	assert_int_equal(th_wait(epid, 5000), 128 + SIGKILL);
	for (i = 0; i < 5000 && hx_exists(seg); i++)
		usleep(1000);

	/* reclaimed (by a watcher, else lazily by this lookup); the decoys
	 * go before anything can fail */
	rc = shmrpc_is_local(rx, "evil");
	missing = -1;
	for (i = nd - 1; i >= 0; i--)
		if (shm_unlink(decoy[i]))
			missing = i;
	if (missing >= 0)
		fail_msg("reclaim removed %s, outside the domain", decoy[missing]);
	assert_int_equal(rc, 0);
	assert_false(hx_exists(seg));
	assert_true(hx_exists(good_ring));
	assert_true(hx_exists(rx_seg));
	assert_true(hx_exists(good_seg));
	victim_still_receives(d, rx, "late", 1);

	/* the honest ring still carries traffic */
	th_gate_open(&g.go);
	for (i = 1; i <= g.n; i++) {
		assert_int_equal(shmrpc_recv(rx, msg, sizeof(msg), from, 10000), sizeof(msg));
		assert_string_equal(from, "good");
		assert_int_equal(msg[0], (uint64_t)i);
	}
	assert_int_equal(th_wait(gpid, 10000), 0);
	shmrpc_close(rx);
	th_gate_close(&e.ready);
	th_gate_close(&g.ready);
	th_gate_close(&g.go);
}

/* ---------------- an announced ring replaced before the receiver opens it */

enum {
	RING_TINY,
	RING_EMPTY,
	RING_HUGE,
	RING_GARBAGE,
	RING_SIZE_FIELD,
	RING_OTHER_IDS,
	RING_BAD_NAME,
	RING_BAD_INDICES,
	RING_NKINDS
};
static const char *const ring_kind[] = {
	"tiny file",  "empty file", "huge file",   "garbage header",
	"size field", "other ids",  "sender name", "bad indices",
};

struct replacer {
	struct th_dom *d;
	int kind;
	struct th_gate replaced, done;
};

static void replace_ring(const char *path, int kind)
{
	struct shmrpc__ring_hdr *h, copy;
	uint64_t size, rnd = 99, fsize;
	uint8_t *p;
	int fd;
	size_t i;

	h = th_shm_map(path, &size);
	CHILD_CHECK(h);
	memcpy(&copy, h, sizeof(copy));
	munmap(h, size);
	CHILD_CHECK(shm_unlink(path) == 0);
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHILD_CHECK(fd >= 0);
	fsize = kind == RING_TINY  ? 100 :
		kind == RING_EMPTY ? 0 :
		kind == RING_HUGE  ? (uint64_t)SHMRPC__PAGE + 2 * (uint64_t)SHMRPC__RING_MAX :
				     size;
	CHILD_CHECK(ftruncate(fd, (off_t)fsize) == 0);
	if (kind == RING_TINY || kind == RING_EMPTY || kind == RING_HUGE) {
		close(fd);
		return;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	CHILD_CHECK(p != MAP_FAILED);
	h = (struct shmrpc__ring_hdr *)p;
	memcpy(h, &copy, sizeof(copy));
	switch (kind) {
	case RING_GARBAGE:
		for (i = 0; i < size; i += 8) {
			uint64_t w = th_rand(&rnd);

			memcpy(p + i, &w, 8);
		}
		break;
	case RING_SIZE_FIELD:
		h->size = 1u << 20;
		break;
	case RING_OTHER_IDS:
		h->rx_gen += 1;
		break;
	case RING_BAD_NAME:
		memset(h->tx_name, 'x', sizeof(h->tx_name));
		break;
	case RING_BAD_INDICES: /* valid header; head misaligned at the end */
		atomic_store(&h->head, h->size - 4);
		atomic_store(&h->tail, h->size + 4);
		break;
	}
	munmap(p, size);
}

static int replacing_sender(void *arg)
{
	struct replacer *r = arg;
	struct shmrpc_node *n = th_open(r->d, "evil");
	char path[SHMRPC__PATH_MAX];

	CHILD_CHECK(n);
	CHILD_CHECK(shmrpc_wait_node(n, "rx", 5000) == 0);
	/* connects and announces; the receiver is not looking yet */
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "first", 5, 1000), 0);
	ring_name(n, "evil", "rx", path);
	replace_ring(path, r->kind);
	th_gate_open(&r->replaced);
	CHILD_CHECK(th_gate_wait(&r->done, 20000) == 0);
	shmrpc_close(n);
	return 0;
}

static void test_hostile_inbound_ring_replaced_before_open(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *rx = th_open(d, "rx");
	struct replacer r = { .d = d };
	char buf[64], from[SHMRPC_NAME_MAX + 1], name[16], path[SHMRPC__PATH_MAX];
	int rc;
	pid_t pid;

	assert_non_null(rx);
	for (r.kind = 0; r.kind < RING_NKINDS; r.kind++) {
		th_gate_init(&r.replaced);
		th_gate_init(&r.done);
		pid = th_fork(replacing_sender, &r);
		assert_int_equal(th_gate_wait(&r.replaced, 10000), 0);
		ring_name(rx, "evil", "rx", path);
		assert_true(hx_exists(path));
		rc = shmrpc_recv(rx, buf, sizeof(buf), from, 0);
		print_message("inbound ring replaced by a %s: recv = %d\n", ring_kind[r.kind], rc);
		if (r.kind == RING_BAD_INDICES)
			assert_int_equal(rc, -EPROTO); /* opened, then refused */
		else
			assert_int_equal(rc, -EAGAIN); /* never opened */
		/* refused files are removed: nobody would look at them again */
		assert_false(hx_exists(path));
		assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 20), -ETIMEDOUT);
		snprintf(name, sizeof(name), "honest%d", r.kind);
		victim_still_receives(d, rx, name, 5);
		th_gate_open(&r.done);
		assert_int_equal(th_wait(pid, 10000), 0);
		th_gate_close(&r.replaced);
		th_gate_close(&r.done);
	}
	shmrpc_close(rx);
}

/* ------------------------- pend bits, in_gen entries, header offsets */

static void test_hostile_pend_and_in_gen_garbage(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	char seg[SHMRPC__PATH_MAX];
	struct shmrpc__node_hdr *h;
	struct shmrpc_node *rx;
	_Atomic uint64_t *pend;
	_Atomic uint32_t *in;
	uint64_t size, rnd = 5;
	char buf[16];
	uint32_t i, cap;

	o.max_nodes = 5; /* the pend word has 59 bits beyond capacity */
	assert_int_equal(shmrpc_open("rx", &o, &rx), 0);
	cap = rx->reg->capacity;
	assert_int_equal(cap, 5);
	node_name(rx, "rx", seg);
	h = th_shm_map(seg, &size);
	assert_non_null(h);
	pend = shmrpc__node_pend(h, shmrpc__node_pend_off());
	in = shmrpc__node_tab(h, shmrpc__node_in_off(cap));

	/* every pend bit, in_gen entries naming rings that do not exist */
	atomic_store(&pend[0], ~0ull);
	for (i = 0; i < cap; i++)
		atomic_store(&in[i], (uint32_t)th_rand(&rnd));
	atomic_store(&h->pend_hint, 1);
	if (shmrpc__wake_prepare(&h->bell))
		shmrpc__futex_wake(&h->bell);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 0), -EAGAIN);
	atomic_store(&pend[0], ~0ull);
	atomic_store(&h->pend_hint, 1);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 20), -ETIMEDOUT);
	victim_still_receives(d, rx, "honest", 10);

	/* the victim's own header: offsets and sizes that peers could write */
	h->pend_off = 0x7ffffff8u;
	h->in_off = 0xfffffff0u;
	h->out_off = 0x80000000u;
	h->capacity = 0xffffffffu;
	atomic_store(&pend[0], ~0ull);
	atomic_store(&h->pend_hint, 1);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 0), -EAGAIN);
	/* it can still send (its out_gen table), and leave (its in_gen table) */
	{
		struct sleeper s = { d, "peer", { { -1, -1 } } };
		pid_t pid;

		th_gate_init(&s.ready);
		pid = th_fork(sleeper_node, &s);
		assert_int_equal(th_gate_wait(&s.ready, 10000), 0);
		assert_int_equal(shmrpc_send(rx, "peer", "x", 1, 1000), 0);
		kill(pid, SIGKILL);
		assert_int_equal(th_wait(pid, 5000), 128 + SIGKILL);
		th_gate_close(&s.ready);
	}
	munmap(h, size);
	shmrpc_close(rx);
}

/* ------------------------------------------------------ file modes */

static void expect_private_files(const char *domain, int want)
{
	char path[512];
	struct dirent *e;
	struct stat st;
	int n = 0;
	DIR *dir = opendir("/dev/shm");
	size_t len = strlen(domain);

	assert_non_null(dir);
	while ((e = readdir(dir))) {
		if (strncmp(e->d_name, "shmrpc.", 7) || strncmp(e->d_name + 7, domain, len) ||
		    e->d_name[7 + len] != '.')
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		assert_int_equal(stat(path, &st), 0);
		if ((st.st_mode & 07777) != 0600 || st.st_uid != geteuid())
			fail_msg("%s: mode %04o uid %u", e->d_name, st.st_mode & 07777,
				 (unsigned)st.st_uid);
		n++;
	}
	closedir(dir);
	assert_int_equal(n, want);
}

static void test_hostile_files_are_private_by_default(void **state)
{
	struct th_dom *d = *state;
	mode_t old = umask(0); /* the mode must not depend on the umask */
	struct shmrpc_node *a = th_open(d, "a"), *b = th_open(d, "b");
	char buf[8];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(shmrpc_send(a, "b", "x", 1, 0), 0);
	assert_int_equal(shmrpc_send(b, "a", "y", 1, 0), 0);
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), NULL, 1000), 1);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), NULL, 1000), 1);
	expect_private_files(d->name, 5); /* registry, 2 nodes, 2 rings */
	shmrpc_close(a);
	shmrpc_close(b);
	umask(old);
}

struct joiner {
	struct th_dom *d;
	int status[2]; /* pipe: 'J' joined and sent, 'R' refused */
	struct th_gate done;
};

static int late_joiner(void *arg)
{
	struct joiner *j = arg;
	struct shmrpc_node *n = NULL;
	int rc = shmrpc_open("late", &j->d->opts, &n);
	char c = rc ? 'R' : 'J';

	if (rc) {
		CHILD_CHECK(write(j->status[1], &c, 1) == 1);
		return 0; /* refused the registry: nothing was created */
	}
	CHILD_CHECK_RC(shmrpc_send(n, "rx", "x", 1, 1000), 0);
	CHILD_CHECK(write(j->status[1], &c, 1) == 1);
	CHILD_CHECK(th_gate_wait(&j->done, 10000) == 0);
	shmrpc_close(n);
	return 0;
}

/* A peer that rewrites the registry's mode must not make others create
 * segments that other users can open. */
static void test_hostile_registry_mode_not_trusted(void **state)
{
	struct th_dom *d = *state;
	struct joiner j = { .d = d };
	struct shmrpc__reg_hdr *hdr;
	struct shmrpc_node *rx = th_open(d, "rx");
	char path[SHMRPC__PATH_MAX], buf[8], c = 0;
	uint64_t size;
	pid_t pid;

	assert_non_null(rx);
	assert_int_equal(pipe(j.status), 0);
	th_gate_init(&j.done);
	shmrpc__reg_path(path, d->name);
	hdr = th_shm_map(path, &size);
	assert_non_null(hdr);
	hdr->mode = 0666;
	pid = th_fork(late_joiner, &j);
	assert_int_equal(read(j.status[0], &c, 1), 1);
	print_message("join after the registry's mode became 0666: %s\n",
		      c == 'J' ? "joined" : "refused");
	if (c == 'J') {
		assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 1000), 1);
		expect_private_files(d->name, 4); /* registry, rx, late, late->rx */
	} else {
		assert_int_equal(c, 'R');
		expect_private_files(d->name, 2); /* registry, rx */
	}
	th_gate_open(&j.done);
	assert_int_equal(th_wait(pid, 10000), 0);
	hdr->mode = 0600;
	munmap(hdr, size);
	shmrpc_close(rx);
	close(j.status[0]);
	close(j.status[1]);
	th_gate_close(&j.done);
}

/* --------------------------------- the registry's `closed` is a hint */

struct closer {
	struct th_dom *d;
	struct th_gate again, written, done;
};

static void closed_store(const char *domain, uint32_t v)
{
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__reg_hdr *hdr;
	uint64_t size;

	shmrpc__reg_path(path, domain);
	hdr = th_shm_map(path, &size);
	CHILD_CHECK(hdr);
	atomic_store(&hdr->closed, v);
	munmap(hdr, size);
}

/* A member of the domain that says, twice, that the registry is closed. */
static int closer_node(void *arg)
{
	struct closer *c = arg;
	struct shmrpc_node *n = th_open(c->d, "closer");

	CHILD_CHECK(n);
	closed_store(c->d->name, 1);
	th_gate_open(&c->written);
	CHILD_CHECK(th_gate_wait(&c->again, 10000) == 0);
	closed_store(c->d->name, 1);
	th_gate_open(&c->written);
	CHILD_CHECK(th_gate_wait(&c->done, 10000) == 0);
	shmrpc_close(n);
	return 0;
}

static int warned;

static void count_warn(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level == SHMRPC_LOG_WARN && strstr(msg, "closed"))
		warned++;
}

static uint32_t closed_load(struct shmrpc_node *n)
{
	return atomic_load(&n->reg->hdr->closed);
}

/*
 * One store of 1 into the registry's `closed` by another member made our
 * next shmrpc_open free the registry that our first node still used, then
 * fail with -EAGAIN. The flag is only believed when the registry's name no
 * longer names the file we hold; a lie is repaired under the lock.
 */
static void test_hostile_registry_closed_flag_lies(void **state)
{
	struct th_dom *d = *state;
	struct closer c = { .d = d };
	struct shmrpc_node *a = th_open(d, "a"), *b = NULL, *e = NULL;
	char buf[16], from[SHMRPC_NAME_MAX + 1];
	pid_t pid;

	assert_non_null(a);
	th_gate_init(&c.again);
	th_gate_init(&c.written);
	th_gate_init(&c.done);
	warned = 0;
	shmrpc_set_log(count_warn, NULL);
	pid = th_fork(closer_node, &c);
	assert_int_equal(th_gate_wait(&c.written, 10000), 0);
	assert_int_equal(closed_load(a), 1);
	assert_int_equal(shmrpc_open("b", &d->opts, &b), 0);
	assert_ptr_equal(b->reg, a->reg);    /* the same registry, not a second one */
	assert_int_equal(closed_load(a), 0); /* repaired */
	assert_true(warned >= 1);
	/* the first node still works, with the second and with the liar */
	assert_int_equal(shmrpc_is_local(a, "closer"), 1);
	assert_int_equal(shmrpc_send(a, "b", "ab", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(b, buf, sizeof(buf), from, 1000), 2);
	assert_string_equal(from, "a");
	th_gate_open(&c.again);
	assert_int_equal(th_gate_wait(&c.written, 10000), 0);
	assert_int_equal(shmrpc_open("e", &d->opts, &e), 0);
	assert_int_equal(closed_load(a), 0);
	assert_int_equal(shmrpc_send(e, "a", "ea", 2, 1000), 0);
	assert_int_equal(shmrpc_recv(a, buf, sizeof(buf), from, 1000), 2);
	assert_string_equal(from, "e");
	shmrpc_set_log(NULL, NULL);
	th_gate_open(&c.done);
	assert_int_equal(th_wait(pid, 10000), 0);
	shmrpc_close(b);
	shmrpc_close(e);
	shmrpc_close(a); /* the last one: the registry goes for real */
	assert_int_equal(th_shm_count(d->name), 0);
	th_gate_close(&c.again);
	th_gate_close(&c.written);
	th_gate_close(&c.done);
}

/* ---------------------------- broadcast marks: BCAST records written raw */

/*
 * A BCAST record (layout.h) is accepted only on a message ring of a node
 * that takes marks (opts.flags SHMRPC_OPEN_BCAST_MARKS), and only whole: a
 * plain node, or a short one, a mark with its zero word set or a number 0,
 * make the ring corrupt (dropped, its sender's next send -EPIPE), as any
 * other bad record. The test process writes the records into the ring of
 * its own node "evil" to "rx", behind evil's back.
 */
enum { RAW_OK, RAW_SHORT, RAW_ZERO_SET, RAW_ID_0 };

static void raw_bcast(struct shmrpc_node *tx, int how)
{
	struct shmrpc__bcast_rec m = { 0x1234567890ull, 7, 0 };
	struct shmrpc__rec rec = { sizeof(m) + 5, SHMRPC__REC_BCAST };
	char path[SHMRPC__PATH_MAX];
	struct shmrpc__ring_hdr *h;
	uint64_t size, tail;
	uint8_t *p;

	if (how == RAW_SHORT)
		rec.len = sizeof(m) - 8;
	m.zero = how == RAW_ZERO_SET;
	if (how == RAW_ID_0)
		m.id = 0;
	ring_name(tx, "evil", "rx", path);
	h = th_shm_map(path, &size);
	assert_non_null(h);
	tail = atomic_load(&h->tail);
	assert_true((tail & (h->size - 1)) + 64 <= h->size); /* a fresh ring: no wrap */
	p = (uint8_t *)h + SHMRPC__PAGE + (tail & (h->size - 1));
	memcpy(p, &rec, sizeof(rec));
	memcpy(p + sizeof(rec), &m, sizeof(m));
	memcpy(p + sizeof(rec) + sizeof(m), "hello", 5);
	atomic_store(&h->tail, tail + shmrpc__rec_bytes(rec.len));
	munmap(h, size);
}

/* rx (with marks or not) and evil, connected: a first message went. */
static void raw_pair(struct th_dom *d, bool marks, struct shmrpc_node **rx, struct shmrpc_node **tx)
{
	struct shmrpc_opts o = d->opts;
	char buf[16];

	o.flags = marks ? SHMRPC_OPEN_BCAST_MARKS : 0;
	*rx = NULL;
	assert_int_equal(shmrpc_open("rx", &o, rx), 0);
	*tx = th_open(d, "evil");
	assert_non_null(*tx);
	assert_int_equal(shmrpc_send(*tx, "rx", "first", 5, 1000), 0);
	assert_int_equal(shmrpc_recv(*rx, buf, sizeof(buf), NULL, 1000), 5);
}

static void raw_bcast_dropped(struct th_dom *d, bool marks, int how)
{
	struct shmrpc_node *rx, *tx;
	char buf[64], path[SHMRPC__PATH_MAX], from[SHMRPC_NAME_MAX + 1];

	raw_pair(d, marks, &rx, &tx);
	ring_name(rx, "evil", "rx", path);
	raw_bcast(tx, how);
	corrupt_logged = 0;
	shmrpc_set_log(count_corrupt, NULL);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 0), -EPROTO);
	shmrpc_set_log(NULL, NULL);
	assert_int_equal(corrupt_logged, 1);
	assert_false(hx_exists(path)); /* dropped and unlinked */
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 0), -EAGAIN);
	/* the sender learns it once, then connects afresh */
	assert_int_equal(shmrpc_send(tx, "rx", "again", 5, 1000), -EPIPE);
	assert_int_equal(shmrpc_send(tx, "rx", "fresh", 5, 1000), 0);
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), from, 1000), 5);
	assert_memory_equal(buf, "fresh", 5);
	assert_string_equal(from, "evil");
	shmrpc_close(tx);
	shmrpc_close(rx);
}

static void test_hostile_bcast_record_to_plain_node(void **state)
{
	raw_bcast_dropped(*state, false, RAW_OK);
}

static void test_hostile_bcast_record_short(void **state)
{
	raw_bcast_dropped(*state, true, RAW_SHORT);
}

static void test_hostile_bcast_record_zero_word_set(void **state)
{
	raw_bcast_dropped(*state, true, RAW_ZERO_SET);
}

static void test_hostile_bcast_record_number_0(void **state)
{
	raw_bcast_dropped(*state, true, RAW_ID_0);
}

/* A valid one, written raw, to a node that takes marks: its mark. */
static void test_hostile_bcast_record_valid_raw(void **state)
{
	struct shmrpc_node *rx, *tx;
	char buf[64], path[SHMRPC__PATH_MAX];
	struct shmrpc_msg msg = { .buf = buf, .cap = sizeof(buf) };
	struct shmrpc_mark mark;

	raw_pair(*state, true, &rx, &tx);
	ring_name(rx, "evil", "rx", path);
	raw_bcast(tx, RAW_OK);
	memset(&mark, 0xa5, sizeof(mark));
	assert_int_equal(shmrpc_recv_batch_marks(rx, &msg, &mark, 1, 0), 1);
	assert_int_equal(msg.len, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_string_equal(msg.from, "evil");
	assert_int_equal(mark.bcast, 0x1234567890ull);
	assert_int_equal(mark.copies, 7);
	assert_int_equal(mark._reserved, 0);
	assert_true(hx_exists(path)); /* not corrupt: kept */
	assert_int_equal(shmrpc_recv(rx, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(tx);
	shmrpc_close(rx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hostile_ring_tail_while_receiver_blocked,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_ring_record_while_receiver_blocked,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_ring_indices_while_receiver_blocked,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_ring_record_garbled_under_peek,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_ring_faked_drained_under_peek,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_registry_garbage, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_bad_node_segment_before_connect,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_reclaim_with_garbage_tables, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_inbound_ring_replaced_before_open,
						th_setup, th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_pend_and_in_gen_garbage, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_files_are_private_by_default, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_registry_mode_not_trusted, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_registry_closed_flag_lies, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_bcast_record_to_plain_node, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_bcast_record_short, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_bcast_record_zero_word_set, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_bcast_record_number_0, th_setup,
						th_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_bcast_record_valid_raw, th_setup,
						th_teardown),
	};

	/* No safety net: every wait in these tests must end by a wake. */
	setenv("SHMRPC_SAFETY_MS", "3600000", 0);
	/* $TEST_FILTER: run only the tests matching this pattern ('*', '?') */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
