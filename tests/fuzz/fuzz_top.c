// SPDX-License-Identifier: MIT
/*
 * Fuzz shmrpc-top's reading of /dev/shm (tools/top: scan.c, rings.c,
 * shm.c) and what it makes of it (rates.c, table.c, the text, JSON and
 * Prometheus outputs): the input is a set of files the harness creates in
 * /dev/shm, under names and with contents it describes, then the tool's
 * real scan (top_scan) runs over them, twice, with files changed in
 * between so that the second refresh has rates.
 *
 * In a private /dev/shm (fuzz.h) the files may have any name starting with
 * "shmrpc." and every domain is scanned; without one, they all belong to a
 * domain of this process and only that domain is scanned.
 *
 * The input: an options byte, then records until it ends, each one of
 *   REG   the domain's registry: a valid header for a capacity or zeros,
 *         slots (state, gen, pid, join time, name), patches, a size;
 *   NODE  a node segment (slot, gen, named under the registry's key or
 *         another), a valid header or zeros, counters, patches, a size; its
 *         liveness lock held by the harness or not;
 *   RING  a ring file (ids, named under the registry's key or another), a
 *         valid header or zeros, head, tail, counters, patches, a size (the
 *         tool reads only its first page);
 *   RAW   any other "shmrpc." name, any content;
 *   SCAN  take the first snapshot now (later records change the files).
 * Files are written page by page, only the pages the record touched: the
 * rest are holes, which the tool must not read (that would allocate them).
 *
 * Checked: every index in the snapshot points inside its arrays, ring lists
 * end, names are printable, the text and Prometheus outputs hold no control
 * character but newlines (they go to terminals and scrapers), and every
 * JSON line parses.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "names.h"
#include "ring.h"
#include "top.h"
#include "fuzz.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the lookups: unused here */
#include "../mini_json.h"
#pragma GCC diagnostic pop

#define MAX_FILES 32
#define IMG_MAX (64 * 1024) /* bytes of a file the input can write */
#define IMG_PAGES (IMG_MAX / SHMRPC__PAGE)
#define NONCE 0x1234abcdu
/* The registry's name key: node and ring files are named by a keyed hash
 * of their ids (lib/names.c); a record may use another key (a file that
 * no registry names). */
static const uint8_t KEY[SHMRPC__KEY_BYTES] = "fuzz-top-namekey";
#define MAX_LOCKS 16

enum { REC_REG, REC_NODE, REC_RING, REC_RAW, REC_SCAN, REC_COUNT };

static struct {
	bool private_shm;
	char dom[SHMRPC_NAME_MAX + 1];
	char files[MAX_FILES][TOP_FILE_MAX + 1]; /* "/" + the name */
	int nfiles;
	int locks[MAX_LOCKS];
	int nlocks;
	uint32_t cap; /* capacity of the last registry written */
	alignas(SHMRPC__PAGE) uint8_t img[IMG_MAX];
	bool touched[IMG_PAGES];
	struct top_snap snap[2];
} G;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	G.private_shm = fuzz_private_shm();
	if (G.private_shm)
		snprintf(G.dom, sizeof(G.dom), "fz");
	else
		fuzz_domain(G.dom, sizeof(G.dom), "fztop");
	/* As shmrpc-top does: a file truncated under the scan is a verdict,
	 * not a crash. */
	if (top_guard_install())
		abort();
	return 0;
}

/* ------------------------------------------------------------ files */

static void img_reset(void)
{
	memset(G.img, 0, sizeof(G.img));
	memset(G.touched, 0, sizeof(G.touched));
}

static void touch(size_t off, size_t len)
{
	size_t p;

	for (p = off / SHMRPC__PAGE; len && p <= (off + len - 1) / SHMRPC__PAGE && p < IMG_PAGES;
	     p++)
		G.touched[p] = true;
}

static void patches(struct fz *f)
{
	long off;

	while (fz_u8(f) & 1)
		if ((off = fz_patch(f, G.img, IMG_MAX)) >= 0)
			touch((size_t)off, 256);
}

/* /dev/shm/@name: @size bytes, the touched pages of the image written. */
static int write_file(const char *name, uint64_t size)
{
	char path[TOP_FILE_MAX + 1];
	size_t p, off, len;
	int fd;

	if (G.nfiles == MAX_FILES || strlen(name) >= TOP_FILE_MAX)
		return -1;
	snprintf(path, sizeof(path), "/%s", name);
	shm_unlink(path); /* replaced, never truncated under a mapping */
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	memcpy(G.files[G.nfiles++], path, sizeof(path));
	if (ftruncate(fd, (off_t)size))
		abort();
	for (p = 0; p < IMG_PAGES; p++) {
		off = p * SHMRPC__PAGE;
		if (!G.touched[p] || off >= size)
			continue;
		len = size - off < SHMRPC__PAGE ? size - off : SHMRPC__PAGE;
		if (pwrite(fd, G.img + off, len, (off_t)off) < 0)
			abort();
	}
	return fd;
}

static void done_file(int fd, bool lock)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	if (fd < 0)
		return;
	/* A live node: its liveness lock held (by us, on this description). */
	if (lock && G.nlocks < MAX_LOCKS && !fcntl(fd, F_OFD_SETLK, &fl)) {
		G.locks[G.nlocks++] = fd;
		return;
	}
	close(fd);
}

/* A size: the one the record's template wants, or any. */
static uint64_t size_of(struct fz *f, uint8_t flags, uint64_t want)
{
	if (!(flags & 2))
		return want;
	return flags & 4 ? fz_u32(f) % (16u << 20) : fz_u16(f);
}

/* ------------------------------------------------------------ records */

static void rec_reg(struct fz *f)
{
	struct shmrpc__reg_hdr *h = (struct shmrpc__reg_hdr *)G.img;
	uint8_t flags = fz_u8(f), n;
	uint32_t cap = 1 + fz_u8(f) % 64;
	char name[TOP_FILE_MAX];

	img_reset();
	if (flags & 1) {
		h->magic = SHMRPC__REG_MAGIC;
		h->abi = SHMRPC__ABI;
		h->hdr_size = sizeof(*h);
		h->slot_size = sizeof(struct shmrpc__slot);
		h->ev_cap = SHMRPC__EV_LOG;
		h->ev_size = sizeof(struct shmrpc__ev_entry);
		h->capacity = cap;
		h->total_size = shmrpc__reg_size(cap);
		h->nonce = NONCE;
		h->mode = 0600;
		memcpy(h->name_key, KEY, sizeof(KEY));
		h->reaper_pid = fz_u32(f);
		h->reaper_beat = fz_u64(f);
		G.cap = cap;
	}
	touch(0, sizeof(*h));
	for (n = fz_u8(f) % 16; n; n--) {
		uint32_t i = fz_u8(f) % cap;
		struct shmrpc__slot *s = (struct shmrpc__slot *)(h + 1) + i;

		s->state = fz_u8(f) % 4;
		s->gen = fz_u32(f);
		s->pid = (int32_t)fz_u32(f);
		s->join_ns = fz_u64(f);
		s->backend = fz_u8(f) % 4;
		memset(s->name, 0, sizeof(s->name));
		fz_bytes(f, s->name, fz_u8(f) % (sizeof(s->name) + 1));
		touch((size_t)((uint8_t *)s - G.img), sizeof(*s));
	}
	patches(f);
	snprintf(name, sizeof(name), "shmrpc.%s.reg", G.dom);
	done_file(write_file(name, size_of(f, flags, shmrpc__reg_size(cap))), false);
}

static void rec_node(struct fz *f)
{
	struct shmrpc__node_hdr *h = (struct shmrpc__node_hdr *)G.img;
	uint8_t flags = fz_u8(f);
	uint32_t slot = fz_u8(f) % 64, gen = fz_u32(f);
	char name[TOP_FILE_MAX];
	uint8_t key[SHMRPC__KEY_BYTES];

	img_reset();
	if (flags & 1) {
		h->magic = SHMRPC__NODE_MAGIC;
		h->abi = SHMRPC__ABI;
		h->hdr_size = sizeof(*h);
		h->total_size = shmrpc__node_size(G.cap);
		h->slot = slot;
		h->gen = gen;
		h->capacity = G.cap;
		h->ring_bytes = 4096u << (fz_u8(f) % 8);
		h->pend_off = shmrpc__node_pend_off();
		h->in_off = shmrpc__node_in_off(G.cap);
		h->out_off = shmrpc__node_out_off(G.cap);
		fz_bytes(f, h->name, fz_u8(f) % (sizeof(h->name) + 1));
		fz_bytes(f, &h->ctr, fz_u8(f) % (sizeof(h->ctr) + 1));
	}
	touch(0, sizeof(*h));
	patches(f);
	memcpy(key, KEY, sizeof(key));
	if (flags & 8)
		key[0] ^= fz_u8(f) | 1;
	shmrpc__node_path_key(name, G.dom, key, slot, gen);
	done_file(write_file(name + 1, size_of(f, flags, shmrpc__node_size(G.cap))), flags & 16);
}

static void rec_ring(struct fz *f)
{
	struct shmrpc__ring_hdr *h = (struct shmrpc__ring_hdr *)G.img;
	uint8_t flags = fz_u8(f);
	uint32_t id[4], i, size = 1u << (12 + fz_u8(f) % 9);
	uint8_t key[SHMRPC__KEY_BYTES];
	char name[TOP_FILE_MAX];

	for (i = 0; i < 4; i++)
		id[i] = i % 2 ? fz_u32(f) : fz_u8(f) % 64;
	img_reset();
	if (flags & 1) {
		struct shmrpc__ring_ids ids = {
			.nonce = NONCE,
			.tx_slot = id[0],
			.tx_gen = id[1],
			.rx_slot = id[2],
			.rx_gen = id[3],
			.tx_pid = 1,
			.tx_name = "tx",
			.kind = SHMRPC__KIND_MSG,
		};

		shmrpc__ring_format(h, size, &ids);
		atomic_store(&h->head, fz_u64(f));
		atomic_store(&h->tail, fz_u64(f));
		fz_bytes(f, &h->tx_msgs, 5 * 8);
		fz_bytes(f, &h->rx_msgs, 3 * 8);
		fz_bytes(f, &h->data_seq, 4);
		fz_bytes(f, &h->space_seq, 4);
		fz_bytes(f, &h->flags, 4);
	}
	touch(0, sizeof(*h));
	patches(f);
	memcpy(key, KEY, sizeof(key));
	if (flags & 8)
		key[0] ^= fz_u8(f) | 1;
	shmrpc__ring_path_key(name, G.dom, key, id[0], id[1], id[2], id[3]);
	done_file(write_file(name + 1, size_of(f, flags, SHMRPC__PAGE + (uint64_t)size)), false);
}

static void rec_raw(struct fz *f)
{
	uint8_t flags = fz_u8(f);
	char raw[200] = "", name[TOP_FILE_MAX + 256]; /* write_file refuses what is too long */
	size_t i, n = fz_bytes(f, raw, fz_u8(f) % (sizeof(raw) - 1));

	for (i = 0; i < n; i++)
		if (raw[i] == '/' || raw[i] == '\0')
			raw[i] = '_';
	raw[n] = '\0';
	img_reset();
	patches(f);
	if (G.private_shm)
		snprintf(name, sizeof(name), "shmrpc.%s", raw);
	else
		snprintf(name, sizeof(name), "shmrpc.%s.%s", G.dom, raw);
	done_file(write_file(name, size_of(f, flags | 2, 0)), flags & 16);
}

/* ------------------------------------------------------------ checks */

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void check_list(const struct top_snap *s, int first, bool out)
{
	uint32_t steps = 0;
	int i;

	for (i = first; i >= 0; i = out ? s->rings[i].next_out : s->rings[i].next_in) {
		FUZZ_CHECK((uint32_t)i < s->nrings);
		FUZZ_CHECK(steps++ < s->nrings); /* no cycle */
	}
}

static void check_snap(const struct top_snap *s)
{
	uint32_t i;

	for (i = 0; i < s->ndoms; i++) {
		const struct top_domain *d = &s->doms[i];

		FUZZ_CHECK(!shmrpc__name_check(d->name));
		FUZZ_CHECK(d->node_first + d->node_count <= s->nnodes);
		FUZZ_CHECK(d->ring_first + d->ring_count <= s->nrings);
		FUZZ_CHECK(printable(d->why));
	}
	for (i = 0; i < s->nnodes; i++) {
		const struct top_node *n = &s->nodes[i];

		FUZZ_CHECK(n->dom < s->ndoms && printable(n->name) && printable(n->why));
		check_list(s, n->first_out, true);
		check_list(s, n->first_in, false);
	}
	for (i = 0; i < s->nrings; i++) {
		const struct top_ring *r = &s->rings[i];

		FUZZ_CHECK(r->tx_node >= -1 && r->tx_node < (int)s->nnodes);
		FUZZ_CHECK(r->rx_node >= -1 && r->rx_node < (int)s->nnodes);
		FUZZ_CHECK(printable(r->file) && printable(r->why));
		if (r->status != TOP_RING_OK)
			continue;
		FUZZ_CHECK(shmrpc__ring_size_ok(r->size) && r->depth <= r->size);
		FUZZ_CHECK(!shmrpc__name_check(r->tx_name));
	}
}

/* Text for terminals and scrapers: printable ASCII and newlines only. */
static void check_text(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		FUZZ_CHECK(buf[i] == '\n' ||
			   ((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f));
}

static void check_json(char *buf)
{
	char *line, *save = NULL;
	struct mj doc;

	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		FUZZ_CHECK(mj_parse(line, &doc) == 0);
		mj_free(&doc);
	}
}

static void outputs(const struct top_snap *s, struct fz *f)
{
	uint8_t o8 = fz_u8(f);
	struct top_opts o = {
		.delay = 1,
		.domain = G.private_shm ? NULL : G.dom,
		.rings = o8 & 1,
		.view = { .domain = G.private_shm ? NULL : G.dom,
			  .sort = (o8 >> 1) % TOP_COL_COUNT,
			  .reverse = o8 & 0x80,
			  .show_domain = o8 & 0x40 },
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	int mode;

	for (mode = 0; mode < 3; mode++) {
		m = open_memstream(&buf, &len);
		if (!m)
			abort();
		if (mode == 0)
			top_out_text(m, s, &o);
		else if (mode == 1)
			top_out_prom(m, s, &o);
		else
			top_out_json(m, s, &o);
		fclose(m);
		/* $FUZZ_TOP_PRINT: what the tool made of an input (to read a
		 * seed or a crash). */
		if (mode == 0 && getenv("FUZZ_TOP_PRINT"))
			fwrite(buf, 1, len, stderr);
		if (mode < 2)
			check_text(buf, len);
		else
			check_json(buf);
		free(buf);
		buf = NULL;
	}
}

/* ------------------------------------------------------------ the run */

static void scan(struct top_snap *s)
{
	int err = top_scan(s, G.private_shm ? NULL : G.dom);

	FUZZ_CHECK(err == 0);
	check_snap(s);
}

static void cleanup(void)
{
	while (G.nfiles)
		shm_unlink(G.files[--G.nfiles]);
	while (G.nlocks)
		close(G.locks[--G.nlocks]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	uint8_t opts = fz_u8(&f);
	bool first = false;

	G.cap = 16;
	while (fz_more(&f)) {
		switch (fz_u8(&f) % REC_COUNT) {
		case REC_REG:
			rec_reg(&f);
			break;
		case REC_NODE:
			rec_node(&f);
			break;
		case REC_RING:
			rec_ring(&f);
			break;
		case REC_RAW:
			rec_raw(&f);
			break;
		case REC_SCAN:
			if (!first)
				scan(&G.snap[0]);
			first = true;
			break;
		}
	}
	scan(&G.snap[1]);
	top_rates(&G.snap[1], first ? &G.snap[0] : NULL);
	f.p = &opts;
	f.n = 1;
	outputs(&G.snap[1], &f);
	cleanup();
	return 0;
}
