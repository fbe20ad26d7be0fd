// SPDX-License-Identifier: MIT
/*
 * Fuzz shmrpc__ring_check (lib/ring.c), the validation of a ring file's
 * header page before a receiver (inbound.c) attaches to it.
 *
 * Input: a flags byte, the size of the file and the ids its name promises,
 * then patches over the header. With bit 0 of flags the header starts as
 * a valid one for those ids (shmrpc__ring_format), so that the fuzzer
 * changes fields of a good header rather than having to build one. The
 * header is a heap object of exactly its size (ASan).
 *
 * Checked: an accepted header is what the receiver then relies on: the
 * magic, ABI and header size, a ring size it accepts that matches the
 * file, the ids of the name, a NUL-terminated valid sender name.
 */
#include <errno.h>

#include "layout.h"
#include "names.h"
#include "ring.h"
#include "fuzz.h"

static struct shmrpc__ring_hdr *hdr;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Exactly its size, at its alignment (cache lines). */
	hdr = aligned_alloc(SHMRPC__CACHELINE, sizeof(*hdr));
	if (!hdr)
		abort();
	return 0;
}

static void check_accepted(const struct shmrpc__ring_hdr *h, uint64_t map_size,
			   const struct shmrpc__ring_ids *ids)
{
	FUZZ_CHECK(h->magic == SHMRPC__RING_MAGIC && h->abi == SHMRPC__ABI);
	FUZZ_CHECK(h->hdr_size == SHMRPC__PAGE);
	FUZZ_CHECK(shmrpc__ring_size_ok(h->size) && !(h->size & (h->size - 1)));
	FUZZ_CHECK(h->size >= SHMRPC__RING_MIN && h->size <= SHMRPC__RING_MAX);
	FUZZ_CHECK(map_size == SHMRPC__PAGE + (uint64_t)h->size);
	FUZZ_CHECK(h->nonce == ids->nonce && h->tx_slot == ids->tx_slot &&
		   h->tx_gen == ids->tx_gen && h->rx_slot == ids->rx_slot &&
		   h->rx_gen == ids->rx_gen);
	FUZZ_CHECK(memchr(h->tx_name, '\0', sizeof(h->tx_name)) != NULL);
	FUZZ_CHECK(shmrpc__name_check(h->tx_name) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct shmrpc__ring_ids ids = { 0 };
	uint8_t flags = fz_u8(&f);
	uint32_t rsize;
	uint64_t map_size;

	/* The file's size: mostly a plausible ring, sometimes anything. */
	rsize = flags & 2 ? fz_u32(&f) : 1u << (12 + fz_u8(&f) % 20);
	map_size = flags & 4 ? fz_u64(&f) : SHMRPC__PAGE + (uint64_t)rsize;
	ids.nonce = fz_u32(&f);
	ids.tx_slot = fz_u32(&f);
	ids.tx_gen = fz_u32(&f);
	ids.rx_slot = fz_u32(&f);
	ids.rx_gen = fz_u32(&f);
	ids.prev_gen = fz_u32(&f);
	ids.tx_pid = (int32_t)fz_u32(&f);
	ids.tx_name = "sender";
	memset(hdr, 0, sizeof(*hdr));
	if (flags & 1)
		shmrpc__ring_format(hdr, rsize, &ids);
	while (fz_patch(&f, (uint8_t *)hdr, sizeof(*hdr)) >= 0)
		;
	if (!shmrpc__ring_check(hdr, map_size, &ids))
		check_accepted(hdr, map_size, &ids);
	return 0;
}
