// SPDX-License-Identifier: MIT
/*
 * Unit tests of the SPSC ring (lib/ring.c), in one process: a producer and
 * a consumer view attached to the same MAP_SHARED anonymous region.
 *
 * The data area is followed by a PROT_NONE guard page, so a read or write
 * past its end faults at once (with or without AddressSanitizer, which does
 * not watch mmap'd memory); the corruption tests rely on it to prove that a
 * hostile header is refused *before* anything is read out of bounds.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "layout.h"
#include "ring.h"

#define PAGE SHMRPC__PAGE
#define SMALL 4096u /* smallest ring: wraps all the time */

struct tr {
	uint8_t *map; /* header page, data, guard page */
	uint32_t size;
	struct shmrpc__ring_hdr *h;
	uint8_t *data;
	struct shmrpc__ring p; /* producer view */
	struct shmrpc__ring c; /* consumer view */
};

static const struct shmrpc__ring_ids test_ids = {
	.nonce = 0x1234abcd,
	.tx_slot = 3,
	.tx_gen = 7,
	.rx_slot = 5,
	.rx_gen = 9,
	.prev_gen = 0,
	.tx_pid = 4242,
	.tx_name = "producer",
};

static uint64_t map_size(const struct tr *t)
{
	return (uint64_t)PAGE + t->size;
}

/* Format afresh with head == tail == @start and attach both views. */
static void tr_reset(struct tr *t, uint64_t start)
{
	memset(t->map, 0, map_size(t));
	shmrpc__ring_format(t->h, t->size, &test_ids);
	atomic_store(&t->h->head, start);
	atomic_store(&t->h->tail, start);
	assert_int_equal(shmrpc__ring_check(t->h, map_size(t), &test_ids), 0);
	shmrpc__ring_attach(&t->p, t->map, map_size(t), true);
	shmrpc__ring_attach(&t->c, t->map, map_size(t), false);
}

static void tr_open(struct tr *t, uint32_t size, uint64_t start)
{
	void *m = mmap(NULL, (size_t)PAGE + size + PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect((uint8_t *)m + PAGE + size, PAGE, PROT_NONE), 0);
	t->map = m;
	t->size = size;
	t->h = m;
	t->data = (uint8_t *)m + PAGE;
	tr_reset(t, start);
}

static void tr_close(struct tr *t)
{
	munmap(t->map, (size_t)PAGE + t->size + PAGE);
}

static uint32_t max_msg(const struct tr *t)
{
	return t->size / 2 - 8;
}

/* Produce one message of @len bytes (payload stream 1, sequence @seq). */
static void put(struct tr *t, size_t len, uint64_t seq)
{
	void *buf;

	assert_int_equal(shmrpc__ring_reserve(&t->p, len, &buf), 0);
	th_fill(buf, len, 1, seq);
	shmrpc__ring_commit(&t->p, len);
}

/* Consume one message and check it. */
static void get(struct tr *t, size_t len, uint64_t seq)
{
	const void *d;
	uint32_t l;

	assert_int_equal(shmrpc__ring_peek(&t->c, &d, &l), 1);
	assert_int_equal(l, len);
	assert_int_equal(th_check(d, len, 1, seq), 0);
	shmrpc__ring_release(&t->c);
}

static void expect_empty(struct tr *t)
{
	const void *d;
	uint32_t l;

	assert_int_equal(shmrpc__ring_peek(&t->c, &d, &l), 0);
}

/* A corrupt ring stays corrupt: the consumer never adopts a bad index, so
 * asking again is refused again rather than read from garbage. */
static void expect_eproto(struct tr *t)
{
	const void *d = NULL;
	uint32_t l = 0;

	assert_int_equal(shmrpc__ring_peek(&t->c, &d, &l), -EPROTO);
	assert_int_equal(shmrpc__ring_peek(&t->c, &d, &l), -EPROTO);
}

static void write_rec(struct tr *t, uint32_t off, uint32_t len, uint32_t flags)
{
	struct shmrpc__rec r = { len, flags };

	memcpy(t->data + off, &r, sizeof(r));
}

/* ---------------------------------------------------------- round trips */

static void test_ring_size_classes_round_trip(void **state)
{
	static const uint32_t pow[] = { 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384 };
	size_t sizes[400], n = 0, i, k, batch;
	uint64_t seq = 0, start;
	struct tr t;

	(void)state;
	tr_open(&t, 64 * 1024, 0);
	for (i = 0; i <= 72; i++)
		sizes[n++] = i;
	for (i = 0; i < sizeof(pow) / sizeof(pow[0]); i++)
		for (k = 0; k < 17; k++)
			sizes[n++] = pow[i] - 8 + k;
	for (k = 0; k <= 8; k++)
		sizes[n++] = max_msg(&t) - k;
	for (i = 0; i < n; i++) {
		/* one at a time: the indices move by exactly one record */
		start = atomic_load(&t.h->tail);
		put(&t, sizes[i], seq);
		if ((start & (t.size - 1)) + shmrpc__rec_bytes(sizes[i]) <= t.size)
			assert_int_equal(atomic_load(&t.h->tail) - start,
					 shmrpc__rec_bytes(sizes[i]));
		get(&t, sizes[i], seq++);
		assert_int_equal(atomic_load(&t.h->head), atomic_load(&t.h->tail));
		expect_empty(&t);
		/* a batch of the same size: fill, then drain in order */
		batch = t.size / shmrpc__rec_bytes(sizes[i]) / 2;
		if (batch > 20)
			batch = 20;
		for (k = 0; k < batch; k++)
			put(&t, sizes[i], seq + k);
		for (k = 0; k < batch; k++)
			get(&t, sizes[i], seq + k);
		seq += batch;
		expect_empty(&t);
	}
	/* mixed sizes queued together keep their order */
	for (i = 0; i < n; i++) {
		put(&t, sizes[i] % 3000, seq + i);
		if (i % 5 == 4)
			for (k = i - 4; k <= i; k++)
				get(&t, sizes[k] % 3000, seq + k);
	}
	for (k = n - n % 5; k < n; k++)
		get(&t, sizes[k] % 3000, seq + k);
	expect_empty(&t);
	tr_close(&t);
}

static void test_ring_peek_twice_is_same_record(void **state)
{
	const void *d1, *d2;
	uint32_t l1, l2;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, SMALL - 24); /* the record wraps: peek skips WRAP */
	put(&t, 100, 1);
	put(&t, 5, 2);
	assert_int_equal(shmrpc__ring_peek(&t.c, &d1, &l1), 1);
	assert_int_equal(shmrpc__ring_peek(&t.c, &d2, &l2), 1);
	assert_ptr_equal(d1, d2);
	assert_int_equal(l1, 100);
	assert_int_equal(l2, 100);
	assert_ptr_equal(d1, t.data + 8);
	shmrpc__ring_release(&t.c);
	get(&t, 5, 2);
	expect_empty(&t);
	tr_close(&t);
}

/* ------------------------------------------------------------- wrapping */

static void test_ring_wrap_record_layout(void **state)
{
	struct shmrpc__rec r;
	const void *d;
	uint32_t l;
	void *buf;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, 0);
	/* tail to 4072, everything consumed: 24 bytes before the end */
	put(&t, 2040, 1); /* 2048 bytes */
	put(&t, 2016, 2); /* 2024 bytes: tail = 4072 */
	get(&t, 2040, 1);
	get(&t, 2016, 2);
	assert_int_equal(atomic_load(&t.h->tail), 4072);

	/* 100 bytes (112 with header) do not fit in 24: WRAP, then offset 0 */
	assert_int_equal(shmrpc__ring_reserve(&t.p, 100, &buf), 0);
	assert_ptr_equal(buf, t.data + 8);
	memcpy(&r, t.data + 4072, sizeof(r));
	assert_int_equal(r.len, 0);
	assert_int_equal(r.flags, SHMRPC__REC_WRAP);
	assert_int_equal(atomic_load(&t.h->tail), 4072); /* nothing published yet */
	th_fill(buf, 100, 1, 3);
	shmrpc__ring_commit(&t.p, 100);
	assert_int_equal(atomic_load(&t.h->tail), 4096 + 112);
	memcpy(&r, t.data, sizeof(r));
	assert_int_equal(r.len, 100);
	assert_int_equal(r.flags, 0);
	assert_int_equal(shmrpc__ring_peek(&t.c, &d, &l), 1);
	assert_ptr_equal(d, t.data + 8);
	assert_int_equal(l, 100);
	assert_int_equal(th_check(d, 100, 1, 3), 0);
	shmrpc__ring_release(&t.c);
	assert_int_equal(atomic_load(&t.h->head), 4096 + 112);

	/* exactly the room left before the end: no wrap */
	tr_reset(&t, 4072);
	assert_int_equal(shmrpc__ring_reserve(&t.p, 16, &buf), 0); /* 24 bytes */
	assert_ptr_equal(buf, t.data + 4072 + 8);
	th_fill(buf, 16, 1, 4);
	shmrpc__ring_commit(&t.p, 16);
	assert_int_equal(atomic_load(&t.h->tail), 4096);
	get(&t, 16, 4);

	/* 8 bytes left: an empty message fits, one byte more wraps */
	tr_reset(&t, 4088);
	put(&t, 0, 5);
	assert_int_equal(atomic_load(&t.h->tail), 4096);
	get(&t, 0, 5);
	tr_reset(&t, 4088);
	assert_int_equal(shmrpc__ring_reserve(&t.p, 1, &buf), 0);
	assert_ptr_equal(buf, t.data + 8);
	memcpy(&r, t.data + 4088, sizeof(r));
	assert_int_equal(r.flags, SHMRPC__REC_WRAP);
	th_fill(buf, 1, 1, 6);
	shmrpc__ring_commit(&t.p, 1);
	get(&t, 1, 6);
	assert_int_equal(atomic_load(&t.h->head), 4096 + 16);
	expect_empty(&t);
	tr_close(&t);
}

/* A wrap needs room for the padding *and* the record. */
static void test_ring_wrap_needs_room_for_padding(void **state)
{
	void *buf;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, 0);
	put(&t, 96, 1);	  /* [0, 104) */
	put(&t, 2040, 2); /* [104, 2152) */
	put(&t, 1912, 3); /* [2152, 4072) */
	get(&t, 96, 1);	  /* head 104: 128 bytes free, 24 of them at the end */
	/* 112 bytes would fit in 128, but 24 + 112 do not */
	assert_false(shmrpc__ring_fits(&t.p, 100));
	assert_int_equal(shmrpc__ring_reserve(&t.p, 100, &buf), -EAGAIN);
	assert_int_equal(atomic_load(&t.h->tail), 4072);
	/* 16 bytes (24 with header) fit before the end */
	assert_true(shmrpc__ring_fits(&t.p, 16));
	get(&t, 2040, 2);
	assert_true(shmrpc__ring_fits(&t.p, 100));
	put(&t, 100, 4);
	get(&t, 1912, 3);
	get(&t, 100, 4);
	expect_empty(&t);
	tr_close(&t);
}

/* ------------------------------------------------------------- max size */

static void max_at(struct tr *t, uint64_t start)
{
	uint32_t max = max_msg(t);
	void *buf;

	tr_reset(t, start);
	assert_int_equal(shmrpc__ring_reserve(&t->p, (size_t)max + 1, &buf), -EMSGSIZE);
	assert_int_equal(shmrpc__ring_reserve(&t->p, SIZE_MAX, &buf), -EMSGSIZE);
	assert_int_equal(shmrpc__ring_reserve(&t->p, max, &buf), 0);
	th_fill(buf, max, 1, start);
	shmrpc__ring_commit(&t->p, max);
	get(t, max, start);
	expect_empty(t);
	/* and again from wherever that left the indices */
	put(t, max, start + 1);
	get(t, max, start + 1);
}

static void test_ring_max_message_fits_at_every_offset(void **state)
{
	uint64_t o;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, 0);
	assert_int_equal(max_msg(&t), SMALL / 2 - 8);
	assert_int_equal(shmrpc__ring_max_msg(SMALL), SMALL / 2 - 8);
	for (o = 0; o < SMALL; o += 8) {
		max_at(&t, o);
		max_at(&t, 0 - (uint64_t)SMALL + o); /* the 64-bit indices wrap */
	}
	tr_close(&t);
}

/* --------------------------------------------------------- full / empty */

static void test_ring_full_then_room_after_release(void **state)
{
	void *buf;
	int i, n;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, 1000 * 8);
	for (n = 0; shmrpc__ring_fits(&t.p, 56); n++)
		put(&t, 56, (uint64_t)n); /* 64 bytes each */
	assert_int_equal(n, SMALL / 64);
	assert_int_equal(shmrpc__ring_reserve(&t.p, 56, &buf), -EAGAIN);
	assert_int_equal(shmrpc__ring_reserve(&t.p, 0, &buf), -EAGAIN);
	assert_int_equal(atomic_load(&t.h->tail) - atomic_load(&t.h->head), SMALL);
	get(&t, 56, 0);
	assert_true(shmrpc__ring_fits(&t.p, 56));
	assert_false(shmrpc__ring_fits(&t.p, 57));
	put(&t, 56, (uint64_t)n);
	assert_int_equal(shmrpc__ring_reserve(&t.p, 0, &buf), -EAGAIN);
	for (i = 1; i <= n; i++)
		get(&t, 56, (uint64_t)i);
	expect_empty(&t);
	tr_close(&t);
}

/* ------------------------------------------------------ reserve/commit */

static void test_ring_commit_shorter_than_reserved(void **state)
{
	uint64_t tail0;
	void *buf;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, 0);
	assert_int_equal(shmrpc__ring_reserve(&t.p, 1000, &buf), 0);
	th_fill(buf, 10, 1, 1);
	shmrpc__ring_commit(&t.p, 10);
	assert_int_equal(atomic_load(&t.h->tail), shmrpc__rec_bytes(10));
	assert_int_equal(shmrpc__ring_reserve(&t.p, 2000, &buf), 0);
	shmrpc__ring_commit(&t.p, 0);
	put(&t, 33, 3);
	get(&t, 10, 1);
	get(&t, 0, 2);
	get(&t, 33, 3);
	expect_empty(&t);

	/* a reservation that wrapped, committed shorter than it would have
	 * needed before the end: still at offset 0 */
	tr_reset(&t, 4072);
	tail0 = 4072;
	assert_int_equal(shmrpc__ring_reserve(&t.p, 100, &buf), 0);
	assert_ptr_equal(buf, t.data + 8);
	th_fill(buf, 8, 1, 4);
	shmrpc__ring_commit(&t.p, 8);
	assert_int_equal(atomic_load(&t.h->tail), tail0 + 24 + 16);
	get(&t, 8, 4);
	expect_empty(&t);
	tr_close(&t);
}

static void test_ring_cancelled_wrap_then_commit(void **state)
{
	struct shmrpc__rec r;
	void *buf;
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, 4072);
	put(&t, 0, 1); /* something queued before: [4072, 4080) */
	/* reserve wraps (WRAP written at 4080), then is abandoned */
	assert_int_equal(shmrpc__ring_reserve(&t.p, 100, &buf), 0);
	assert_ptr_equal(buf, t.data + 8);
	memset(buf, 0xee, 100);
	assert_int_equal(atomic_load(&t.h->tail), 4080);
	get(&t, 0, 1);
	expect_empty(&t); /* the WRAP is not published */
	/* a smaller record now goes to offset 0 as well */
	assert_int_equal(shmrpc__ring_reserve(&t.p, 8, &buf), 0);
	assert_ptr_equal(buf, t.data + 8);
	th_fill(buf, 8, 1, 2);
	shmrpc__ring_commit(&t.p, 8);
	memcpy(&r, t.data + 4080, sizeof(r));
	assert_int_equal(r.flags, SHMRPC__REC_WRAP);
	assert_int_equal(atomic_load(&t.h->tail), 4096 + 16);
	get(&t, 8, 2);
	assert_int_equal(atomic_load(&t.h->head), 4096 + 16);
	put(&t, 77, 3);
	get(&t, 77, 3);
	expect_empty(&t);
	tr_close(&t);
}

/* ----------------------------------------------------------- ring_check */

static void test_ring_check_rejects_bad_headers(void **state)
{
	struct shmrpc__ring_ids ids = test_ids;
	struct shmrpc__ring_hdr *h;
	uint64_t ms;
	struct tr t;

	(void)state;
	tr_open(&t, 8192, 0);
	h = t.h;
	ms = map_size(&t);
	assert_int_equal(shmrpc__ring_check(h, ms, &ids), 0);
	assert_int_equal(h->prev_gen, 0);
	assert_int_equal(h->tx_pid, 4242);

#define BAD(stmt)                                                           \
	do {                                                                \
		tr_reset(&t, 0);                                            \
		ms = map_size(&t);                                          \
		stmt;                                                       \
		assert_int_equal(shmrpc__ring_check(h, ms, &ids), -EPROTO); \
	} while (0)

	BAD(h->magic = SHMRPC__RING_MAGIC + 1);
	BAD(h->magic = 0);
	BAD(h->abi = SHMRPC__ABI + 1);
	BAD(h->hdr_size = 448);
	BAD(h->size = 8192 + 8); /* not a power of two */
	BAD(h->size = 3 * 4096); /* neither */
	BAD(h->size = 4096);	 /* a power of two, not the map's */
	BAD(h->size = 16384);	 /* larger than the map */
	BAD(h->size = 0);
	BAD(h->size = 0x80000000u); /* above SHMRPC__RING_MAX */
	BAD(ms = map_size(&t) - 8); /* map size mismatch */
	BAD(ms = map_size(&t) + PAGE);
	BAD(ms = 0);
	BAD(h->nonce ^= 1);
	BAD(h->tx_slot ^= 1);
	BAD(h->tx_gen ^= 1);
	BAD(h->rx_slot ^= 1);
	BAD(h->rx_gen ^= 1);
	BAD(memset(h->tx_name, 'a', sizeof(h->tx_name))); /* no NUL */
	BAD(strcpy(h->tx_name, "a/b"));
	BAD(strcpy(h->tx_name, "..x"));
	BAD(strcpy(h->tx_name, ""));
	BAD(strcpy(h->tx_name, "caf\xc3\xa9"));
#undef BAD
	ms = map_size(&t);

	/* and ids that are not the file's */
	tr_reset(&t, 0);
	ids.rx_gen++;
	assert_int_equal(shmrpc__ring_check(h, ms, &ids), -EPROTO);
	ids = test_ids;
	ids.nonce = 0;
	assert_int_equal(shmrpc__ring_check(h, ms, &ids), -EPROTO);
	/* the longest valid name is fine */
	ids = test_ids;
	memset(h->tx_name, 'z', SHMRPC_NAME_MAX);
	h->tx_name[SHMRPC_NAME_MAX] = '\0';
	assert_int_equal(shmrpc__ring_check(h, ms, &ids), 0);
	tr_close(&t);
}

/* --------------------------------------- consumer: corrupt from producer */

/* Start positions for the corruption tests: the very start, just before
 * the end of the data area, and before the 64-bit indices wrap. */
static const uint64_t starts[] = { 0, SMALL - 8, SMALL - 64, 0 - (uint64_t)16, 0 - (uint64_t)2048 };
#define NSTARTS (sizeof(starts) / sizeof(starts[0]))

static void test_ring_peek_rejects_tail_beyond_one_ring(void **state)
{
	struct tr t;
	size_t i;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++) {
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->tail, starts[i] + SMALL + 8);
		expect_eproto(&t);
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->tail, starts[i] + (1ull << 40));
		expect_eproto(&t);
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->tail, starts[i] + 0x8000000000000000ull);
		expect_eproto(&t);
	}
	/* exactly one ring ahead is a full ring, not corruption */
	tr_reset(&t, 0);
	while (shmrpc__ring_fits(&t.p, 0))
		put(&t, 0, 0);
	assert_int_equal(atomic_load(&t.h->tail), SMALL);
	get(&t, 0, 0);
	tr_close(&t);
}

static void test_ring_peek_rejects_unaligned_tail(void **state)
{
	struct tr t;
	size_t i;
	int k;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++)
		for (k = 1; k < 8; k++) {
			tr_reset(&t, starts[i]);
			write_rec(&t, (uint32_t)(starts[i] & (SMALL - 1)), 0, 0);
			atomic_store(&t.h->tail, starts[i] + 8 + (uint64_t)k);
			expect_eproto(&t);
		}
	tr_close(&t);
}

static void test_ring_peek_rejects_tail_behind_head(void **state)
{
	struct tr t;
	size_t i;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++) {
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->tail, starts[i] - 8);
		expect_eproto(&t);
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->tail, starts[i] - SMALL);
		expect_eproto(&t);
	}
	/* behind what the consumer already consumed */
	tr_reset(&t, 0);
	put(&t, 8, 1);
	put(&t, 8, 2);
	get(&t, 8, 1);
	get(&t, 8, 2);
	atomic_store(&t.h->tail, 16);
	expect_eproto(&t);
	tr_close(&t);
}

static void test_ring_peek_rejects_oversized_len(void **state)
{
	static const uint32_t bad[] = { SMALL / 2 - 7, SMALL / 2,   SMALL,	0x7ffffff8u,
					0xfffffff8u,   0xfffffff9u, 0xffffffffu };
	struct tr t;
	size_t i, k;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++)
		for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			tr_reset(&t, starts[i]);
			write_rec(&t, (uint32_t)(starts[i] & (SMALL - 1)), bad[k], 0);
			atomic_store(&t.h->tail, starts[i] + SMALL); /* all published */
			expect_eproto(&t);
		}
	tr_close(&t);
}

static void test_ring_peek_rejects_record_past_end(void **state)
{
	struct tr t;
	uint32_t off;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (off = SMALL - 8; off >= SMALL - 256; off -= 8) {
		/* a record of at most max bytes, but crossing the end */
		tr_reset(&t, off);
		write_rec(&t, off, SMALL - off, 0);
		atomic_store(&t.h->tail, off + SMALL);
		expect_eproto(&t);
		tr_reset(&t, off);
		write_rec(&t, off, SMALL / 2 - 8, 0);
		atomic_store(&t.h->tail, off + SMALL);
		expect_eproto(&t);
	}
	tr_close(&t);
}

static void test_ring_peek_rejects_record_past_tail(void **state)
{
	struct tr t;
	size_t i;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++) {
		uint32_t off = (uint32_t)(starts[i] & (SMALL - 1));

		if (off > SMALL - 112)
			continue;
		tr_reset(&t, starts[i]);
		write_rec(&t, off, 100, 0); /* 112 bytes */
		atomic_store(&t.h->tail, starts[i] + 104);
		expect_eproto(&t);
		tr_reset(&t, starts[i]);
		write_rec(&t, off, 1, 0); /* 16 bytes */
		atomic_store(&t.h->tail, starts[i] + 8);
		expect_eproto(&t);
	}
	/* a second record beyond the published one */
	tr_reset(&t, 0);
	put(&t, 8, 1);
	write_rec(&t, 16, 64, 0);
	atomic_store(&t.h->tail, 16 + 40);
	get(&t, 8, 1);
	expect_eproto(&t);
	tr_close(&t);
}

static void test_ring_peek_rejects_wrap_with_len(void **state)
{
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, SMALL - 24);
	put(&t, 100, 1); /* WRAP at 4072, record at 0 */
	write_rec(&t, SMALL - 24, 5, SHMRPC__REC_WRAP);
	expect_eproto(&t);
	tr_reset(&t, SMALL - 24);
	put(&t, 100, 1);
	write_rec(&t, SMALL - 24, 0x80000000u, SHMRPC__REC_WRAP);
	expect_eproto(&t);
	tr_close(&t);
}

static void test_ring_peek_rejects_wrap_past_tail(void **state)
{
	struct tr t;

	(void)state;
	tr_open(&t, SMALL, SMALL - 64);
	/* WRAP at 4032 pads 64 bytes, but only 16 are published */
	write_rec(&t, SMALL - 64, 0, SHMRPC__REC_WRAP);
	atomic_store(&t.h->tail, (uint64_t)SMALL - 64 + 16);
	expect_eproto(&t);
	/* the padding is published, the record after it is not */
	tr_reset(&t, SMALL - 64);
	write_rec(&t, SMALL - 64, 0, SHMRPC__REC_WRAP);
	write_rec(&t, 0, 100, 0);
	atomic_store(&t.h->tail, (uint64_t)SMALL + 8);
	expect_eproto(&t);
	tr_close(&t);
}

static void test_ring_peek_rejects_unknown_flags(void **state)
{
	static const uint32_t bad[] = {
		SHMRPC__REC_REQ | SHMRPC__REC_CANCEL,
		8,
		0x80000000u,
		SHMRPC__REC_WRAP | SHMRPC__REC_REQ,
		SHMRPC__REC_WRAP | SHMRPC__REC_CANCEL,
		SHMRPC__REC_WRAP | 0x80000000u,
		0xffffffffu,
	};
	struct tr t;
	size_t i, k;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++)
		for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			uint32_t off = (uint32_t)(starts[i] & (SMALL - 1));

			tr_reset(&t, starts[i]);
			write_rec(&t, off, 0, bad[k]);
			atomic_store(&t.h->tail, starts[i] + SMALL - off);
			expect_eproto(&t);
		}
	tr_close(&t);
}

/* Request records (REQ, CANCEL: lib/rpc_*.c) are records like any other,
 * their flag handed to the consumer, across wraps. */
static void test_ring_request_flags(void **state)
{
	static const uint32_t fl[] = { 0, SHMRPC__REC_REQ, SHMRPC__REC_CANCEL };
	struct tr t;
	const void *d;
	uint32_t l, k;
	void *buf;

	(void)state;
	tr_open(&t, SMALL, SMALL - 64);
	for (k = 0; k < 30; k++) {
		assert_int_equal(shmrpc__ring_reserve(&t.p, 300, &buf), 0);
		th_fill(buf, 300, 2, k);
		shmrpc__ring_commit_flags(&t.p, 300, fl[k % 3]);
		assert_int_equal(shmrpc__ring_peek(&t.c, &d, &l), 1);
		assert_int_equal(l, 300);
		assert_int_equal(t.c.peek_flags, fl[k % 3]);
		assert_int_equal(th_check(d, 300, 2, k), 0);
		shmrpc__ring_release(&t.c);
	}
	tr_close(&t);
}

/* The look ahead past the peeked record reads what is published, checked
 * as a peek checks it, across a wrap, and consumes nothing. */
static void test_ring_look_ahead(void **state)
{
	struct tr t;
	const void *d;
	uint32_t l, f, k;
	uint64_t pos, head;
	void *buf;

	(void)state;
	tr_open(&t, SMALL, SMALL - 64);
	for (k = 0; k < 5; k++) {
		assert_int_equal(shmrpc__ring_reserve(&t.p, 500, &buf), 0);
		th_fill(buf, 500, 3, k);
		shmrpc__ring_commit_flags(&t.p, 500, k ? SHMRPC__REC_CANCEL : SHMRPC__REC_REQ);
	}
	assert_int_equal(shmrpc__ring_peek(&t.c, &d, &l), 1);
	head = atomic_load(&t.h->head);
	pos = t.c.peek_end;
	for (k = 1; k < 5; k++) {
		assert_int_equal(shmrpc__ring_look(&t.c, &pos, &d, &l, &f), 1);
		assert_int_equal(l, 500);
		assert_int_equal(f, SHMRPC__REC_CANCEL);
		assert_int_equal(th_check(d, 500, 3, k), 0);
	}
	assert_int_equal(shmrpc__ring_look(&t.c, &pos, &d, &l, &f), 0);
	assert_int_equal(atomic_load(&t.h->head), head);
	/* the peek is still the first record */
	assert_int_equal(shmrpc__ring_peek(&t.c, &d, &l), 1);
	assert_int_equal(th_check(d, 500, 3, 0), 0);
	/* a header beyond the tail's bounds is refused */
	pos = t.c.peek_end;
	write_rec(&t, (uint32_t)(pos & (SMALL - 1)), SMALL, 0);
	assert_int_equal(shmrpc__ring_look(&t.c, &pos, &d, &l, &f), -EPROTO);
	pos = t.c.peek_end + 4;
	assert_int_equal(shmrpc__ring_look(&t.c, &pos, &d, &l, &f), -EPROTO);
	tr_close(&t);
}

/*
 * The consumer's own index comes from the file at attach: the ring was
 * created by the producer, which may have left a head that is not 8-byte
 * aligned. A header read there would straddle the end of the data area.
 */
static void test_ring_peek_rejects_unaligned_head_at_attach(void **state)
{
	struct tr t;
	int k;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (k = 1; k < 8; k++) {
		tr_reset(&t, 0);
		atomic_store(&t.h->head, (uint64_t)SMALL - (uint64_t)k);
		atomic_store(&t.h->tail, (uint64_t)SMALL - (uint64_t)k + 8);
		shmrpc__ring_attach(&t.c, t.map, map_size(&t), false);
		expect_eproto(&t);
	}
	tr_close(&t);
}

/* --------------------------------------- producer: corrupt from consumer */

/* Like expect_eproto: a corrupt index is refused every time it is met. */
static void expect_reserve(struct tr *t, size_t len, int want)
{
	void *buf = NULL;

	assert_int_equal(shmrpc__ring_reserve(&t->p, len, &buf), want);
	if (want == -EPROTO)
		assert_int_equal(shmrpc__ring_reserve(&t->p, len, &buf), want);
}

static void test_ring_reserve_rejects_head_ahead_of_tail(void **state)
{
	struct tr t;
	size_t i;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++) {
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->head, starts[i] + 8);
		expect_reserve(&t, 8, -EPROTO);
		/* also once the producer has a cached head that says full */
		tr_reset(&t, starts[i]);
		while (shmrpc__ring_fits(&t.p, 504))
			put(&t, 504, 0);
		atomic_store(&t.h->head, atomic_load(&t.h->tail) + 512);
		expect_reserve(&t, 504, -EPROTO);
	}
	tr_close(&t);
}

static void test_ring_reserve_rejects_head_lagging(void **state)
{
	struct tr t;
	size_t i;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (i = 0; i < NSTARTS; i++) {
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->head, starts[i] - SMALL - 8);
		expect_reserve(&t, 8, -EPROTO);
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->head, starts[i] - (1ull << 40));
		expect_reserve(&t, 0, -EPROTO);
		/* exactly one ring behind: full, not corrupt */
		tr_reset(&t, starts[i]);
		atomic_store(&t.h->head, starts[i] - SMALL);
		expect_reserve(&t, 0, -EAGAIN);
	}
	tr_close(&t);
}

static void test_ring_reserve_rejects_unaligned_head(void **state)
{
	struct tr t;
	int k;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (k = 1; k < 8; k++) {
		tr_reset(&t, 64);
		atomic_store(&t.h->head, 64 - (uint64_t)k);
		expect_reserve(&t, 8, -EPROTO);
	}
	tr_close(&t);
}

/*
 * The producer's index also comes from the file at attach. A tail that is
 * not 8-byte aligned would make the WRAP header (or a record header) land
 * across the end of the data area.
 */
static void test_ring_reserve_rejects_unaligned_tail_at_attach(void **state)
{
	struct tr t;
	int k;

	(void)state;
	tr_open(&t, SMALL, 0);
	for (k = 1; k < 8; k++) {
		/* head is fine: only the producer's own index is off */
		tr_reset(&t, 0);
		atomic_store(&t.h->head, (uint64_t)SMALL - 8);
		atomic_store(&t.h->tail, (uint64_t)SMALL - (uint64_t)k);
		shmrpc__ring_attach(&t.p, t.map, map_size(&t), true);
		expect_reserve(&t, 100, -EPROTO); /* would wrap */
		expect_reserve(&t, 0, -EPROTO);
	}
	tr_close(&t);
}

/* ------------------------------------------------------- differential */

#define DIFF_OPS 1000000
#define QCAP 1024

/* The model: a queue of messages and the byte layout a ring must use
 * (records contiguous, 8-byte aligned, a WRAP pad when one does not fit
 * before the end; a reservation that wrapped keeps its pad when abandoned). */
struct mmsg {
	uint64_t seq;
	uint32_t len;
	uint32_t off; /* offset of its header in the data area */
	uint64_t end; /* index after it */
};

struct model {
	struct mmsg q[QCAP];
	uint32_t first, n;
	uint64_t tail; /* producer's index, including abandoned pads */
	uint64_t head; /* after the last released message */
	/* what the run exercised, so that a weak run is noticed */
	long sent, full, too_big, wraps, cancels, shorter, received, empty, repeeks;
};

static size_t pick_len(uint64_t *rnd, uint32_t max)
{
	uint64_t r = th_rand(rnd), k = r % 100;

	r >>= 8;
	if (k < 50)
		return r % 65;
	if (k < 80)
		return r % 513;
	if (k < 95)
		return r % (max + 1);
	return max - 8 + r % 24; /* around the limit, some above */
}

static void diff_send(struct tr *t, struct model *m, uint64_t *rnd, uint64_t seq)
{
	uint32_t max = max_msg(t), rec, off, contig, doff, clen;
	size_t len = pick_len(rnd, max);
	uint64_t need, how = th_rand(rnd) % 10;
	bool fits;
	void *buf;
	int rc;

	rc = shmrpc__ring_reserve(&t->p, len, &buf);
	if (len > max) {
		assert_int_equal(rc, -EMSGSIZE);
		m->too_big++;
		return;
	}
	rec = shmrpc__rec_bytes(len);
	off = (uint32_t)(m->tail & (t->size - 1));
	contig = t->size - off;
	need = rec <= contig ? rec : (uint64_t)contig + rec;
	fits = m->tail + need - m->head <= t->size;
	assert_int_equal(shmrpc__ring_fits(&t->p, len), fits);
	if (!fits) {
		assert_int_equal(rc, -EAGAIN);
		m->full++;
		return;
	}
	assert_int_equal(rc, 0);
	doff = rec <= contig ? off : 0;
	if (rec > contig) {
		m->tail += contig;
		m->wraps++;
	}
	assert_ptr_equal(buf, t->data + doff + 8);
	if (how == 0) {
		m->cancels++;
		return; /* abandoned: the pad stays, nothing is published */
	}
	clen = how == 1 ? (uint32_t)(th_rand(rnd) % (len + 1)) : (uint32_t)len;
	m->shorter += clen < len;
	m->sent++;
	th_fill(buf, clen, 2, seq);
	shmrpc__ring_commit(&t->p, clen);
	m->tail += shmrpc__rec_bytes(clen);
	assert_int_equal(atomic_load(&t->h->tail), m->tail);
	assert_true(m->n < QCAP);
	m->q[(m->first + m->n++) % QCAP] = (struct mmsg){ seq, clen, doff, m->tail };
}

static void diff_recv(struct tr *t, struct model *m, uint64_t *rnd)
{
	const struct mmsg *e = &m->q[m->first];
	const void *d, *d2;
	uint32_t l, l2;
	int rc = shmrpc__ring_peek(&t->c, &d, &l);

	if (!m->n) {
		assert_int_equal(rc, 0);
		m->empty++;
		return;
	}
	assert_int_equal(rc, 1);
	assert_int_equal(l, e->len);
	assert_ptr_equal(d, t->data + e->off + 8);
	assert_int_equal(th_check(d, l, 2, e->seq), 0);
	if (th_rand(rnd) % 4 == 0) {
		assert_int_equal(shmrpc__ring_peek(&t->c, &d2, &l2), 1);
		assert_ptr_equal(d2, d);
		assert_int_equal(l2, l);
	}
	if (th_rand(rnd) % 8 == 0) {
		m->repeeks++;
		return; /* peeked, not released: the next peek sees it again */
	}
	shmrpc__ring_release(&t->c);
	m->received++;
	m->head = e->end;
	assert_int_equal(atomic_load(&t->h->head), m->head);
	m->first = (m->first + 1) % QCAP;
	m->n--;
}

static void diff_run(uint64_t seed, uint64_t start, long ops)
{
	struct model *m = calloc(1, sizeof(*m));
	uint64_t rnd = seed | 1, seq = 0, bias;
	struct tr t;
	long i;

	assert_non_null(m);
	tr_open(&t, SMALL, start);
	m->tail = m->head = start;
	for (i = 0; i < ops; i++) {
		/* phases that lean to filling or to draining */
		bias = (uint64_t)(i / 5000 % 3);
		if (th_rand(&rnd) % 100 < 35 + 15 * bias)
			diff_send(&t, m, &rnd, seq++);
		else
			diff_recv(&t, m, &rnd);
	}
	while (m->n)
		diff_recv(&t, m, &rnd);
	expect_empty(&t);
	print_message("  %ld sent (%ld wrapped, %ld shorter), %ld received, %ld full, %ld too "
		      "big, %ld cancelled, %ld empty, %ld peeked twice\n",
		      m->sent, m->wraps, m->shorter, m->received, m->full, m->too_big, m->cancels,
		      m->empty, m->repeeks);
	assert_int_equal(m->sent, m->received);
	/* the mix must reach every case, or the run proves little */
	assert_true(m->wraps > 1000 && m->full > 1000 && m->too_big > 1000 && m->cancels > 1000 &&
		    m->shorter > 1000 && m->empty > 1000);
	tr_close(&t);
	free(m);
}

static void test_ring_differential_random_ops(void **state)
{
	const char *s = getenv("TEST_RING_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : 0x5eed5eedull;

	(void)state;
	print_message("differential: seed %#llx (TEST_RING_SEED)\n", (unsigned long long)seed);
	diff_run(seed, 0, DIFF_OPS / 2);
	/* start where the 64-bit indices wrap within the run */
	diff_run(seed ^ 0xabcdef, 0 - (uint64_t)(16 << 20), DIFF_OPS / 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_size_classes_round_trip),
		cmocka_unit_test(test_ring_peek_twice_is_same_record),
		cmocka_unit_test(test_ring_wrap_record_layout),
		cmocka_unit_test(test_ring_wrap_needs_room_for_padding),
		cmocka_unit_test(test_ring_max_message_fits_at_every_offset),
		cmocka_unit_test(test_ring_full_then_room_after_release),
		cmocka_unit_test(test_ring_commit_shorter_than_reserved),
		cmocka_unit_test(test_ring_cancelled_wrap_then_commit),
		cmocka_unit_test(test_ring_check_rejects_bad_headers),
		cmocka_unit_test(test_ring_peek_rejects_tail_beyond_one_ring),
		cmocka_unit_test(test_ring_peek_rejects_unaligned_tail),
		cmocka_unit_test(test_ring_peek_rejects_tail_behind_head),
		cmocka_unit_test(test_ring_peek_rejects_oversized_len),
		cmocka_unit_test(test_ring_peek_rejects_record_past_end),
		cmocka_unit_test(test_ring_peek_rejects_record_past_tail),
		cmocka_unit_test(test_ring_peek_rejects_wrap_with_len),
		cmocka_unit_test(test_ring_peek_rejects_wrap_past_tail),
		cmocka_unit_test(test_ring_peek_rejects_unknown_flags),
		cmocka_unit_test(test_ring_request_flags),
		cmocka_unit_test(test_ring_look_ahead),
		cmocka_unit_test(test_ring_peek_rejects_unaligned_head_at_attach),
		cmocka_unit_test(test_ring_reserve_rejects_head_ahead_of_tail),
		cmocka_unit_test(test_ring_reserve_rejects_head_lagging),
		cmocka_unit_test(test_ring_reserve_rejects_unaligned_head),
		cmocka_unit_test(test_ring_reserve_rejects_unaligned_tail_at_attach),
		cmocka_unit_test(test_ring_differential_random_ops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
