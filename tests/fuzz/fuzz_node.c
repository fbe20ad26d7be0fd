// SPDX-License-Identifier: MIT
/*
 * Fuzz what a node reads from node segments and the files they lead to,
 * with the real library on real files: a node "rx" joined with
 * shmrpc_open, and peers that exist only as what the input writes into
 * /dev/shm (a private one when the harness may mount it).
 *
 * What the input can do, step by step (the peer's writes between the
 * library's calls):
 *  - write anything into rx's own node segment (header, pend bitmap,
 *    in_gen, out_gen: every peer can), or announce a ring as a sender does;
 *  - create ring files to rx (valid header or not, honest records, then
 *    patches), write registry slots and the registry header;
 *  - overwrite any file of the domain but the registry (open rings
 *    included) at any time;
 *  - make rx receive (shmrpc_recv, shmrpc_peek/release, the scan of new
 *    rings shmrpc__in_scan_new, shmrpc__in_check_senders, shmrpc_nodes);
 *  - leave a dead node (segment with any header and tables, slot LIVE) and
 *    reclaim it: shmrpc__node_map's checks, close_dead and kill_rings over
 *    its in_gen/out_gen tables, ring_kill and repoint;
 *  - make a live fake peer "p" (its liveness lock held by the harness) with
 *    any segment, and a second real node "tx" send to it: peer_open's
 *    checks, ring creation, the announce into p's tables, the producer.
 *
 * A peek may be held across any of that (shmrpc_peek's promise: rx->data
 * stays readable until shmrpc_release, whatever the sender does).
 *
 * After each input everything is put back: a held peek released, rx's
 * inbound rings dropped, tx closed, rx's segment and the registry restored
 * from a snapshot, every other file of the domain removed. $SHMRPC_WATCH=0:
 * the peer watcher would reclaim in the background, and keep pidfds of
 * fuzzed pids.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inbound.h"
#include "layout.h"
#include "names.h"
#include "node_types.h"
#include "nodeseg.h"
#include "reclaim.h"
#include "regfile.h"
#include "ring.h"
#include "fuzz.h"

#define CAP 16 /* <= 16: a join checks every slot, in order (registry.c) */
#define RX_RING 4096u
#define MAX_FILE (SHMRPC__PAGE + 32768) /* largest file the input makes */
#define MAX_LOCKS 8

enum {
	OP_SEG_PATCH,
	OP_ANNOUNCE,
	OP_RING_FILE,
	OP_SLOT,
	OP_RECV,
	OP_PEEK,
	OP_SCAN,
	OP_FILE_POKE,
	OP_DEAD_NODE,
	OP_CONNECT,
	OP_SEND,
	OP_QUERY,
	OP_REG_PATCH,
	OP_COUNT
};

static struct {
	char dom[SHMRPC_NAME_MAX + 1];
	char prefix[SHMRPC_NAME_MAX + 16]; /* "shmrpc.<dom>." */
	bool private_shm;
	struct shmrpc_node *rx, *tx;
	struct shmrpc__reg *reg;
	uint8_t *seg_snap, *reg_snap;
	alignas(SHMRPC__PAGE) uint8_t file[MAX_FILE]; /* what the input makes a file of */
	int locks[MAX_LOCKS];			      /* liveness locks of fake live peers */
	int nlocks;
	uint32_t p_slot, p_gen; /* the fake peer "p", if any */
	bool p_made;
	bool held; /* a peek is held in rxb */
	struct shmrpc_rxbuf rxb;
} G;

static char reg_file[SHMRPC__PATH_MAX], rx_file[SHMRPC__PATH_MAX];

/* ------------------------------------------------------------ files */

/*
 * Create /dev/shm@path holding @len bytes of G.file, @size bytes long. A
 * file of that name is replaced, not truncated: a peer that truncates a
 * file others mapped makes them fault (SIGBUS), the one attack the library
 * documents it cannot stop (docs/untrusted-memory.md).
 */
static int make_file(const char *path, size_t len, uint64_t size)
{
	int fd;
	ssize_t w;

	shm_unlink(path);
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size))
		abort();
	w = pwrite(fd, G.file, len < size ? len : size, 0);
	(void)w;
	return fd;
}

static bool keep(const char *name)
{
	return !strcmp(name, reg_file + 1) || !strcmp(name, rx_file + 1);
}

static int domain_filter(const struct dirent *e)
{
	return !strncmp(e->d_name, G.prefix, strlen(G.prefix));
}

/* The domain's files but the registry and rx's segment, sorted. */
static int list_files(struct dirent ***v)
{
	int n = scandir("/dev/shm", v, domain_filter, alphasort), i, k = 0;

	for (i = 0; i < n; i++) {
		if (keep((*v)[i]->d_name))
			free((*v)[i]);
		else
			(*v)[k++] = (*v)[i];
	}
	return n < 0 ? 0 : k;
}

static void remove_files(void)
{
	char path[NAME_MAX + 2];
	struct dirent **v;
	int n = list_files(&v), i;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/%s", v[i]->d_name);
		shm_unlink(path);
		free(v[i]);
	}
	free(v);
}

/* A peer's store into any file of the domain (not the registry). */
static void file_poke(struct fz *f)
{
	char path[NAME_MAX + 2];
	uint8_t pick = fz_u8(f), buf[256];
	uint32_t off = fz_u32(f);
	size_t len = fz_bytes(f, buf, fz_u8(f));
	struct dirent **v;
	struct stat st;
	int n = list_files(&v), i, fd;

	if (n) {
		snprintf(path, sizeof(path), "/%s", v[pick % n]->d_name);
		fd = shm_open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
		if (fd >= 0 && !fstat(fd, &st) && st.st_size > 0) {
			off %= (uint64_t)st.st_size;
			if (len > (uint64_t)st.st_size - off)
				len = (uint64_t)st.st_size - off;
			if (pwrite(fd, buf, len, off) < 0)
				abort();
		}
		if (fd >= 0)
			close(fd);
	}
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ------------------------------------------------------------ registry */

static struct shmrpc__slot *slot_of(uint32_t s)
{
	return &G.reg->slots[s];
}

/* A slot a fake peer may use: never rx's, nor tx's while it lives. */
static bool fake_slot(uint32_t s)
{
	return s != G.rx->slot && !(G.tx && s == G.tx->slot);
}

static void slot_write(uint32_t s, uint32_t state, uint32_t gen, const char *name)
{
	struct shmrpc__slot *sl = slot_of(s);

	atomic_store(&sl->state, state);
	atomic_store(&sl->gen, gen);
	atomic_store(&sl->pid, (int32_t)getpid());
	atomic_store(&sl->ring_bytes, RX_RING);
	memset(sl->name, 0, sizeof(sl->name));
	memcpy(sl->name, name, strnlen(name, sizeof(sl->name)));
	if (atomic_load(&G.reg->hdr->hi) <= s)
		atomic_store(&G.reg->hdr->hi, s + 1);
}

static void op_slot(struct fz *f)
{
	uint32_t s = fz_u8(f) % CAP, state = fz_u8(f) % 4, gen = fz_u32(f);
	char name[72] = "";

	fz_bytes(f, name, fz_u8(f) % sizeof(name));
	name[sizeof(name) - 1] = '\0';
	if (fake_slot(s))
		slot_write(s, state, gen, name);
}

/* Anything in the registry but the live nodes' slots (a peer may free
 * them too; rx would then be gone for others, which is not our subject). */
static void op_reg_patch(struct fz *f)
{
	uint8_t buf[256];
	uint32_t off = fz_u32(f) % G.reg->size, i;
	size_t len = fz_bytes(f, buf, fz_u8(f));

	if (len > G.reg->size - off)
		len = G.reg->size - off;
	for (i = 0; i < len; i++) {
		size_t at = off + i;
		uint32_t s = (uint32_t)((at - sizeof(struct shmrpc__reg_hdr)) /
					sizeof(struct shmrpc__slot));

		if (at >= sizeof(struct shmrpc__reg_hdr) && !fake_slot(s))
			continue;
		((uint8_t *)G.reg->hdr)[at] = buf[i];
	}
}

/* ------------------------------------------------------------ rings to rx */

/* Honest records, as a producer publishes them. */
static void publish(struct fz *f, uint64_t size)
{
	struct shmrpc__ring q;
	uint8_t n = fz_u8(f) % 16;
	void *buf;
	uint32_t len;

	shmrpc__ring_attach(&q, G.file, size, true);
	while (n--) {
		len = fz_u16(f) % (shmrpc__ring_max_msg(q.size) + 1);
		if (shmrpc__ring_reserve(&q, len, &buf))
			break;
		memset(buf, 'm', len);
		shmrpc__ring_commit(&q, len);
	}
}

static void op_ring_file(struct fz *f)
{
	uint8_t flags = fz_u8(f);
	uint32_t s = fz_u8(f) % CAP, g = fz_u32(f), prev = fz_u32(f);
	uint32_t rsize = 1u << (12 + fz_u8(f) % 4);
	uint64_t size = SHMRPC__PAGE + (uint64_t)rsize;
	char path[SHMRPC__PATH_MAX], name[16];
	struct shmrpc__ring_ids ids = {
		.nonce = G.reg->nonce,
		.tx_slot = s,
		.tx_gen = g,
		.rx_slot = G.rx->slot,
		.rx_gen = G.rx->gen,
		.prev_gen = prev,
		.tx_pid = 1,
		.tx_name = name,
		.kind = SHMRPC__KIND_MSG,
	};
	int fd;

	snprintf(name, sizeof(name), "s%u", s);
	if (flags & 8) { /* a ring between two other nodes */
		ids.rx_slot = fz_u8(f) % CAP;
		ids.rx_gen = fz_u32(f);
	}
	memset(G.file, 0, sizeof(G.file));
	if (flags & 1) {
		shmrpc__ring_format((struct shmrpc__ring_hdr *)G.file, rsize, &ids);
		publish(f, size);
	}
	while (fz_u8(f) & 1)
		fz_patch(f, G.file, size);
	if (flags & 2)
		size = 1 + fz_u16(f) % MAX_FILE; /* a file of the wrong size */
	shmrpc__ring_path(path, G.reg, s, g, ids.rx_slot, ids.rx_gen);
	fd = make_file(path, size, size);
	if (fd >= 0)
		close(fd);
	if ((flags & 4) && !(flags & 8)) { /* and announce it */
		_Atomic uint32_t *in = shmrpc__node_tab(G.rx->seg, shmrpc__node_in_off(CAP));

		atomic_store(&in[s], g + 1);
		atomic_fetch_or(&shmrpc__node_pend(G.rx->seg, shmrpc__node_pend_off())[s / 64],
				1ull << (s % 64));
		atomic_store(&G.rx->seg->pend_hint, 1);
	}
}

static void op_announce(struct fz *f)
{
	uint32_t s = fz_u8(f) % 64, g = fz_u32(f); /* pend bits past CAP too */
	_Atomic uint32_t *in = shmrpc__node_tab(G.rx->seg, shmrpc__node_in_off(CAP));

	if (s < CAP)
		atomic_store(&in[s], g);
	atomic_fetch_or(&shmrpc__node_pend(G.rx->seg, shmrpc__node_pend_off())[s / 64],
			1ull << (s % 64));
	atomic_store(&G.rx->seg->pend_hint, fz_u8(f) | 1);
}

/* ------------------------------------------------------------ receiving */

static volatile uint8_t sink;

static void check_rx(void)
{
	uint32_t i;

	FUZZ_CHECK(G.rx->in.n <= G.rx->in.cap);
	for (i = 0; i < G.rx->in.n; i++) {
		struct shmrpc__inring *r = G.rx->in.v[i];

		FUZZ_CHECK(r->idx == i && r->tx_slot < CAP && r->tx_slot != G.rx->slot);
		FUZZ_CHECK(shmrpc__ring_size_ok(r->q.size));
		FUZZ_CHECK(r->q.map_size == SHMRPC__PAGE + (uint64_t)r->q.size);
		FUZZ_CHECK(!shmrpc__name_check(r->from));
	}
	/* A held peek's ring stays open (so mapped) until its release. */
	if (G.held) {
		for (i = 0; i < G.rx->in.n && G.rx->in.v[i] != G.rx->in.peeked; i++)
			;
		FUZZ_CHECK(i < G.rx->in.n);
	}
}

/* Only the errors include/shmrpc.h documents for the call. */
#define RX_ERRS -EMSGSIZE, -EAGAIN, -EPROTO, -EMFILE, -ENFILE, -ENOMEM
#define TX_ERRS \
	-EMSGSIZE, -ENOENT, -EINVAL, -EAGAIN, -ETIMEDOUT, -EPIPE, -EPROTO, -ENOSPC, -ENOMEM, -EFBIG
#define WARM_ERRS -ENOSPC, -ENOMEM, -EMFILE, -ENFILE, -EFBIG
#define DOCUMENTED(rc, ...)                          \
	documented(rc, (const int[]){ __VA_ARGS__ }, \
		   sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

static bool documented(int rc, const int *errs, size_t n)
{
	size_t i;

	if (rc >= 0)
		return true;
	for (i = 0; i < n; i++)
		if (rc == errs[i])
			return true;
	fprintf(stderr, "undocumented error %d (%s)\n", rc, strerror(-rc));
	return false;
}

static void op_recv(struct fz *f)
{
	char buf[16384], from[SHMRPC_NAME_MAX + 1];
	size_t cap = fz_u8(f) & 1 ? sizeof(buf) : fz_u8(f);
	int rc = shmrpc_recv(G.rx, buf, cap, from, 0);

	FUZZ_CHECK(DOCUMENTED(rc, RX_ERRS));
	if (rc >= 0) {
		FUZZ_CHECK((size_t)rc <= cap);
		FUZZ_CHECK(!shmrpc__name_check(from));
		G.held = false; /* a recv receives the peeked message: peek over */
	}
	check_rx();
}

/* Every byte of a peeked message: it must still be mapped. */
static void read_view(const struct shmrpc_rxbuf *rx)
{
	const uint8_t *p = rx->data;
	uint8_t x = 0;
	size_t i;

	for (i = 0; i < rx->len; i++)
		x ^= p[i];
	sink = x;
}

static void release_held(void)
{
	if (!G.held)
		return;
	read_view(&G.rxb);
	FUZZ_CHECK(shmrpc_release(G.rx, &G.rxb) == 0);
	G.held = false;
}

/* Peek; release at once, or hold the view across what follows. */
static void op_peek(struct fz *f)
{
	uint8_t how = fz_u8(f);
	struct shmrpc_rxbuf rx;
	int rc;

	if (G.held && (how & 2)) {
		release_held();
		check_rx();
		return;
	}
	rc = shmrpc_peek(G.rx, &rx, 0);
	FUZZ_CHECK(DOCUMENTED(rc, RX_ERRS));
	if (G.held) {
		/* The same message again, or its ring was found corrupt. */
		FUZZ_CHECK(rc == -EPROTO ||
			   (rc >= 0 && rx.data == G.rxb.data && rx.len == G.rxb.len));
		read_view(&G.rxb);
	} else if (rc >= 0) {
		FUZZ_CHECK((size_t)rc == rx.len && !shmrpc__name_check(rx.from));
		read_view(&rx);
		if (how & 1) {
			G.rxb = rx;
			G.held = true;
		} else {
			FUZZ_CHECK(shmrpc_release(G.rx, &rx) == 0);
		}
	}
	check_rx();
}

static void op_query(void)
{
	char names[4][SHMRPC_NAME_MAX + 1];
	int n = shmrpc_nodes(G.rx, names, 4), i;

	FUZZ_CHECK(n >= 0);
	for (i = 0; i < n && i < 4; i++)
		FUZZ_CHECK(!shmrpc__name_check(names[i]));
	shmrpc_is_local(G.rx, "p");
	shmrpc_max_size(G.rx, "p");
	shmrpc__in_check_senders(G.rx);
	check_rx();
}

/* ------------------------------------------------------------ other nodes */

static void node_template(uint32_t s, uint32_t g, const char *name, uint32_t ring_bytes)
{
	struct shmrpc__node_hdr *h = (struct shmrpc__node_hdr *)G.file;

	h->magic = SHMRPC__NODE_MAGIC;
	h->abi = SHMRPC__ABI;
	h->hdr_size = sizeof(*h);
	h->total_size = shmrpc__node_size(CAP);
	h->slot = s;
	h->gen = g;
	h->capacity = CAP;
	h->ring_bytes = ring_bytes;
	h->pid = (int32_t)getpid();
	h->backend = SHMRPC__BACKEND_FUTEX;
	h->pend_off = shmrpc__node_pend_off();
	h->in_off = shmrpc__node_in_off(CAP);
	h->out_off = shmrpc__node_out_off(CAP);
	snprintf(h->name, sizeof(h->name), "%s", name);
}

/* A node segment: template or zeros, table entries, patches. Its size. */
static uint64_t node_image(struct fz *f, uint8_t flags, uint32_t s, uint32_t g, const char *name,
			   uint32_t ring_bytes)
{
	uint64_t size = shmrpc__node_size(CAP);
	uint32_t *in = (uint32_t *)(G.file + shmrpc__node_in_off(CAP));
	uint32_t *out = (uint32_t *)(G.file + shmrpc__node_out_off(CAP));
	uint8_t n = fz_u8(f) % 16, which, i;

	memset(G.file, 0, sizeof(G.file));
	if (flags & 1)
		node_template(s, g, name, ring_bytes);
	while (n--) {
		which = fz_u8(f);
		i = (which >> 1) % CAP;
		if (which & 1)
			in[i] = fz_u32(f);
		else
			out[i] = fz_u32(f);
	}
	while (fz_u8(f) & 1)
		fz_patch(f, G.file, size);
	if (flags & 2)
		size = 1 + fz_u16(f) % MAX_FILE;
	return size;
}

static void op_dead_node(struct fz *f)
{
	uint8_t flags = fz_u8(f);
	uint32_t s = fz_u8(f) % CAP, g = fz_u32(f);
	char path[SHMRPC__PATH_MAX];
	uint64_t size = node_image(f, flags, s, g, "d", RX_RING);
	int fd, rc;

	if (!fake_slot(s))
		return;
	shmrpc__node_path(path, G.reg, s, g);
	fd = make_file(path, size, size);
	if (fd >= 0)
		close(fd); /* nobody holds its lock: dead */
	slot_write(s, flags & 4 ? SHMRPC__SLOT_JOINING : SHMRPC__SLOT_LIVE, g, "d");
	rc = shmrpc__reclaim_locked(G.reg, s, g);
	FUZZ_CHECK(rc == 0 || rc == 1);
	if (rc == 1)
		FUZZ_CHECK(atomic_load(&slot_of(s)->state) == SHMRPC__SLOT_FREE);
	check_rx();
}

static void ensure_tx(void)
{
	struct shmrpc_opts o = { .sz = sizeof(o),
				 .domain = G.dom,
				 .ring_bytes = RX_RING,
				 .max_nodes = CAP,
				 .spin_us = SHMRPC_SPIN_NEVER };

	if (!G.tx && shmrpc_open("tx", &o, &G.tx))
		G.tx = NULL;
}

static void send_p(struct fz *f)
{
	static const char msg[8192];
	int rc;

	if (!G.tx)
		return;
	rc = shmrpc_send(G.tx, "p", msg, fz_u16(f) % sizeof(msg), 0);
	FUZZ_CHECK(DOCUMENTED(rc, TX_ERRS));
}

/* The fake live peer "p": a segment of any content, its lock held. */
static void op_connect(struct fz *f)
{
	uint8_t flags = fz_u8(f);
	uint32_t s = fz_u8(f) % CAP, g = fz_u32(f);
	uint32_t rb = flags & 8 ? fz_u32(f) : RX_RING << (fz_u8(f) % 3);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char path[SHMRPC__PATH_MAX];
	uint64_t size;
	int fd;

	ensure_tx();
	if (!G.p_made && G.nlocks < MAX_LOCKS && fake_slot(s)) {
		size = node_image(f, flags, s, g, "p", rb);
		shmrpc__node_path(path, G.reg, s, g);
		fd = make_file(path, size, size);
		if (fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl))
			abort();
		if (fd >= 0)
			G.locks[G.nlocks++] = fd;
		slot_write(s, SHMRPC__SLOT_LIVE, g, "p");
		G.p_made = true;
	}
	send_p(f);
}

static void op_send(struct fz *f)
{
	if (fz_u8(f) & 1) {
		if (G.tx)
			FUZZ_CHECK(DOCUMENTED(shmrpc_warmup(G.tx), WARM_ERRS));
		return;
	}
	send_p(f);
}

/* ------------------------------------------------------------ the run */

static void reset(void)
{
	release_held();
	while (G.rx->in.n)
		shmrpc__in_drop(G.rx, G.rx->in.v[0]);
	G.rx->in.peeked = NULL;
	if (G.tx) {
		shmrpc_close(G.tx);
		G.tx = NULL;
	}
	while (G.nlocks)
		close(G.locks[--G.nlocks]);
	G.p_made = false;
	memcpy(G.rx->seg, G.seg_snap, G.rx->seg_size);
	memcpy(G.reg->hdr, G.reg_snap, G.reg->size);
	remove_files();
}

static void finish(void)
{
	reset();
	shmrpc_close(G.rx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct shmrpc_opts o = { .sz = sizeof(o),
				 .ring_bytes = RX_RING,
				 .max_nodes = CAP,
				 .spin_us = SHMRPC_SPIN_NEVER };
	int err;

	(void)argc;
	(void)argv;
	setenv("SHMRPC_WATCH", "0", 1);
	G.private_shm = fuzz_private_shm();
	if (G.private_shm)
		snprintf(G.dom, sizeof(G.dom), "fznode");
	else
		fuzz_domain(G.dom, sizeof(G.dom), "fznode");
	snprintf(G.prefix, sizeof(G.prefix), "shmrpc.%s.", G.dom);
	o.domain = G.dom;
	err = shmrpc_open("rx", &o, &G.rx);
	if (err) {
		fprintf(stderr, "fuzz_node: shmrpc_open: %s\n", strerror(-err));
		abort();
	}
	G.reg = G.rx->reg;
	shmrpc__reg_path(reg_file, G.dom);
	shmrpc__node_path(rx_file, G.reg, G.rx->slot, G.rx->gen);
	G.seg_snap = malloc(G.rx->seg_size);
	G.reg_snap = malloc(G.reg->size);
	if (!G.seg_snap || !G.reg_snap)
		abort();
	memcpy(G.seg_snap, G.rx->seg, G.rx->seg_size);
	memcpy(G.reg_snap, G.reg->hdr, G.reg->size);
	atexit(finish);
	return 0;
}

static void step(struct fz *f)
{
	switch (fz_u8(f) % OP_COUNT) {
	case OP_SEG_PATCH:
		fz_patch(f, (uint8_t *)G.rx->seg, G.rx->seg_size);
		break;
	case OP_ANNOUNCE:
		op_announce(f);
		break;
	case OP_RING_FILE:
		op_ring_file(f);
		break;
	case OP_SLOT:
		op_slot(f);
		break;
	case OP_RECV:
		op_recv(f);
		break;
	case OP_PEEK:
		op_peek(f);
		break;
	case OP_SCAN:
		shmrpc__in_scan_new(G.rx);
		check_rx();
		break;
	case OP_FILE_POKE:
		file_poke(f);
		break;
	case OP_DEAD_NODE:
		op_dead_node(f);
		break;
	case OP_CONNECT:
		op_connect(f);
		break;
	case OP_SEND:
		op_send(f);
		break;
	case OP_QUERY:
		op_query();
		break;
	case OP_REG_PATCH:
		op_reg_patch(f);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	char buf[8];
	int steps = 0;

	/* A bound on the work of one input: a few dozen file operations. */
	while (fz_more(&f) && steps++ < 64)
		step(&f);
	reset();
	/* Whatever happened, rx works on: nothing is left waiting for it. */
	FUZZ_CHECK(G.rx->in.n == 0 && !G.rx->in.peeked);
	FUZZ_CHECK(shmrpc_recv(G.rx, buf, sizeof(buf), NULL, 0) == -EAGAIN);
	return 0;
}
