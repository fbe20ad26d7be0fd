// SPDX-License-Identifier: MIT
/*
 * Fuzz the readers of a registry file (lib/registry.c): the checks of
 * shmrpc__reg_open (reg_attach, reg_verify) on a file of any size and
 * content, then, on a registry it accepted, the seqlock slot reads
 * (shmrpc__reg_read), lookups (shmrpc__reg_find), the bounds shmrpc__reg_hi
 * and shmrpc__reg_scan_end, and, as a lock holder would, the repair of a
 * `joining` note, the recount and the sweep (shmrpc__reclaim_sweep), which
 * reclaim slots that name no live node; and the event log's reads
 * (shmrpc__evlog_head, shmrpc__evlog_read) around its untrusted head.
 *
 * The file is real (/dev/shm/shmrpc.<domain>.reg, in a private /dev/shm
 * when the harness may have one), created and mapped once; each input
 * truncates it to its size and writes only the pages the input touches,
 * so the rest are holes, as in a registry that was never filled.
 *
 * Input: flags, a capacity, the file size, then operations that write the
 * image: raw patches anywhere, or one slot's state, gen, pid and name.
 * With bit 0 of flags the header starts valid for that capacity. A magic
 * of 0 is replaced by the valid one: an opener waits a second for an
 * unpublished registry (its creator may still be at work), which would
 * only slow the fuzzer down.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "evlog.h"
#include "layout.h"
#include "names.h"
#include "reclaim.h"
#include "regfile.h"
#include "registry.h"
#include "fuzz.h"

#define CAP_MAX 4096 /* larger registries: the same code, bigger files */
#define IMG_SIZE (sizeof(struct shmrpc__reg_hdr) + CAP_MAX * sizeof(struct shmrpc__slot))
#define IMG_PAGES ((IMG_SIZE + SHMRPC__PAGE - 1) / SHMRPC__PAGE)

enum { FL_TEMPLATE = 1, FL_EXACT_SIZE = 2, FL_LOCK = 4, FL_SWEEP = 8 };
enum { OP_PATCH, OP_SLOT, OP_COUNT };

static char domain[SHMRPC_NAME_MAX + 1];
static char path[SHMRPC__PATH_MAX];
static bool private_shm;
static int fd = -1;
static uint8_t *map;
static alignas(SHMRPC__PAGE) uint8_t img[IMG_SIZE]; /* the header's alignment */
static bool touched[IMG_PAGES];

static void cleanup(void)
{
	if (!private_shm)
		shm_unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	private_shm = fuzz_private_shm();
	if (private_shm)
		snprintf(domain, sizeof(domain), "fzreg");
	else
		fuzz_domain(domain, sizeof(domain), "fzreg");
	shmrpc__reg_path(path, domain);
	fd = shm_open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_SIZE)) {
		perror("fuzz_registry: shm_open");
		abort();
	}
	map = mmap(NULL, IMG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		perror("fuzz_registry: mmap");
		abort();
	}
	atexit(cleanup);
	return 0;
}

static void touch(size_t off, size_t len)
{
	size_t p;

	for (p = off / SHMRPC__PAGE; len && p <= (off + len - 1) / SHMRPC__PAGE && p < IMG_PAGES;
	     p++)
		touched[p] = true;
}

static void template_hdr(uint32_t capacity)
{
	struct shmrpc__reg_hdr *h = (struct shmrpc__reg_hdr *)img;

	h->magic = SHMRPC__REG_MAGIC;
	h->abi = SHMRPC__ABI;
	h->hdr_size = sizeof(*h);
	h->slot_size = sizeof(struct shmrpc__slot);
	h->ev_cap = SHMRPC__EV_LOG;
	h->ev_size = sizeof(struct shmrpc__ev_entry);
	h->capacity = capacity;
	h->total_size = shmrpc__reg_size(capacity);
	h->nonce = 0x12345678;
	h->mode = 0600;
}

/* One slot, as a joiner writes it: state, gen, pid, a name. */
static void write_slot(struct fz *f, uint32_t capacity)
{
	uint32_t i = fz_u16(f) % capacity;
	struct shmrpc__slot *s = (struct shmrpc__slot *)(img + sizeof(struct shmrpc__reg_hdr)) + i;
	uint8_t len = fz_u8(f) % 72;

	s->state = fz_u8(f) % 4;
	s->gen = fz_u32(f);
	s->pid = (int32_t)fz_u32(f);
	memset(s->name, 0, sizeof(s->name));
	fz_bytes(f, s->name, len < sizeof(s->name) ? len : sizeof(s->name));
	touch((size_t)((uint8_t *)s - img), sizeof(*s));
}

/* Truncate the file to @size and write the touched pages of the image. */
static void write_file(uint64_t size)
{
	size_t p, off, len;

	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)size))
		abort();
	for (p = 0; p < IMG_PAGES; p++) {
		off = p * SHMRPC__PAGE;
		if (!touched[p] || off >= size)
			continue;
		len = size - off < SHMRPC__PAGE ? size - off : SHMRPC__PAGE;
		if (len > IMG_SIZE - off)
			len = IMG_SIZE - off;
		memcpy(map + off, img + off, len);
	}
}

static bool zero_padded(const struct shmrpc__slot *s, size_t len)
{
	const uint8_t *b = (const uint8_t *)s->name;
	size_t i;

	for (i = len; i < sizeof(s->name); i++)
		if (b[i])
			return false;
	return true;
}

/* The event log, as a subscriber reads it: the last entries below the
 * (untrusted) head, and some past it. What is returned is what a writer
 * of ours could have made. */
static void read_events(struct shmrpc__reg *r)
{
	uint64_t head = shmrpc__evlog_head(r), idx, ns;
	struct shmrpc_event ev;
	int k, rc;

	for (k = -(int)SHMRPC__EV_LOG - 2; k < 4; k++) {
		idx = head + (uint64_t)(int64_t)k;
		rc = shmrpc__evlog_read(r, idx, &ev, &ns);
		FUZZ_CHECK(rc == 0 || rc == -ESTALE || rc == -EPROTO);
		if (rc)
			continue;
		FUZZ_CHECK(ev.type == SHMRPC_EV_JOIN || ev.type == SHMRPC_EV_LEAVE ||
			   ev.type == SHMRPC_EV_DEATH);
		FUZZ_CHECK(strlen(ev.name) <= SHMRPC_NAME_MAX && !shmrpc__name_check(ev.name));
		FUZZ_CHECK((ev.id >> 32) < r->capacity);
	}
}

static void read_all(struct shmrpc__reg *r, uint8_t flags)
{
	uint32_t hi = shmrpc__reg_hi(r), end = shmrpc__reg_scan_end(r), i, n, slot;
	struct shmrpc__slot_view v, w;
	char live[SHMRPC_NAME_MAX + 1] = "";
	int rc;

	FUZZ_CHECK(hi <= r->capacity && end <= r->capacity);
	n = hi > end ? hi : end;
	for (i = 0; i < n; i++) {
		rc = shmrpc__reg_read(r, i, &v);
		/* Nobody writes while we read: no retry is ever needed. */
		FUZZ_CHECK(rc == 0 || rc == -EPROTO);
		if (rc || v.state != SHMRPC__SLOT_LIVE)
			continue;
		FUZZ_CHECK(strlen(v.name) <= SHMRPC_NAME_MAX && !shmrpc__name_check(v.name));
		/* A lookup compares whole name fields: one with bytes after its
		 * NUL (a writer always zero-pads) can be listed but not found. */
		if (!live[0] && i < hi && zero_padded(&r->slots[i], strlen(v.name)))
			memcpy(live, v.name, sizeof(live));
	}
	if (live[0]) {
		FUZZ_CHECK(shmrpc__reg_find(r, live, &slot, &w) == 0);
		FUZZ_CHECK(slot < hi && w.state == SHMRPC__SLOT_LIVE && !strcmp(w.name, live));
	}
	rc = shmrpc__reg_find(r, "a", &slot, &w);
	FUZZ_CHECK(rc == -ENOENT || (rc == 0 && slot < hi && !strcmp(w.name, "a")));
	read_events(r);
	if (flags & (FL_LOCK | FL_SWEEP)) {
		/* As a joiner: the lock repairs a `joining` note. */
		FUZZ_CHECK(shmrpc__dom_lock(r) == 0);
		if (flags & FL_SWEEP)
			shmrpc__reclaim_sweep(r, UINT32_MAX);
		FUZZ_CHECK(shmrpc__reg_recount(r) <= r->capacity);
		shmrpc__reg_unlock(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct shmrpc__reg_hdr *h = (struct shmrpc__reg_hdr *)img;
	uint8_t flags = fz_u8(&f);
	uint32_t capacity = 1 + fz_u16(&f) % CAP_MAX;
	uint64_t fsize = 1 + fz_u32(&f) % IMG_SIZE;
	struct shmrpc__reg r;
	size_t off, len;
	int rc;

	memset(img, 0, sizeof(img));
	memset(touched, 0, sizeof(touched));
	if (flags & FL_TEMPLATE)
		template_hdr(capacity);
	if (flags & FL_EXACT_SIZE)
		fsize = shmrpc__reg_size(capacity);
	touch(0, sizeof(*h));
	while (fz_more(&f)) {
		if (fz_u8(&f) % OP_COUNT == OP_SLOT) {
			write_slot(&f, capacity);
			continue;
		}
		off = fz_u32(&f) % IMG_SIZE;
		len = fz_u8(&f);
		len = fz_bytes(&f, img + off, len < IMG_SIZE - off ? len : IMG_SIZE - off);
		touch(off, len);
	}
	if (!h->magic)
		h->magic = SHMRPC__REG_MAGIC;
	write_file(fsize);
	rc = shmrpc__reg_open(&r, domain, 0, 0600, false);
	if (rc)
		return 0;
	FUZZ_CHECK(r.capacity >= 1 && r.capacity <= SHMRPC__CAP_MAX);
	FUZZ_CHECK(r.size == fsize && r.size == shmrpc__reg_size(r.capacity));
	FUZZ_CHECK(!(r.mode & ~0770u) && (r.mode & 0600) == 0600);
	FUZZ_CHECK((uint8_t *)r.slots == (uint8_t *)r.hdr + sizeof(struct shmrpc__reg_hdr));
	read_all(&r, flags);
	shmrpc__reg_close(&r);
	return 0;
}
