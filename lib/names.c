// SPDX-License-Identifier: MIT
/*
 * Names: validation of node and domain names, and the names of a domain's
 * files in /dev/shm (see lib/layout.h for the scheme).
 *
 * Node and ring names carry a keyed hash of their ids, not the ids: the key
 * is in the registry, which only the domain's members may read (its mode),
 * so a user outside the domain who lists /dev/shm cannot tell the name of
 * the next node or ring and squat it (a file planted there made every join
 * fail with -EEXIST). Members can tell: they can also write each other's
 * segments, and docs/security.md says what that lets them do. SipHash-2-4
 * is libsodium's crypto_shorthash, made for exactly this (short inputs, a
 * secret key, outputs an attacker must not predict).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "names.h"
#include "error.h"
#include "layout.h"
#include "regfile.h"
#include "seg.h"

_Static_assert(crypto_shorthash_KEYBYTES == SHMRPC__KEY_BYTES, "registry name key size");
_Static_assert(crypto_shorthash_BYTES == 8, "16 hex digits");

int shmrpc__name_check(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.')
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= SHMRPC_NAME_MAX)
			return -ENAMETOOLONG;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}

/* A name read from shared memory: NUL-terminated within its field and
 * valid, else it is garbage and the caller treats the record as corrupt. */
int shmrpc__name_check_field(const char *field, size_t size)
{
	if (!memchr(field, '\0', size))
		return -EPROTO;
	return shmrpc__name_check(field) ? -EPROTO : 0;
}

void shmrpc__reg_path(char *buf, const char *domain)
{
	snprintf(buf, SHMRPC__PATH_MAX, "/shmrpc.%s.reg", domain);
}

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void sodium_start(void)
{
	/* crypto_shorthash needs nothing it sets up, but the library asks
	 * for it first; it cannot fail in a way that matters here. */
	if (sodium_init() < 0)
		shmrpc__log(SHMRPC_LOG_WARN, "sodium_init failed (names are still hashed)");
}

/* "/shmrpc.<domain>.<kind>.<16 hex>": SipHash-2-4 of @kind and @n ids,
 * each as 4 little-endian bytes, under @key. */
static void hashed_path(char *buf, const char *domain, const uint8_t *key, const char *kind,
			const uint32_t *ids, int n)
{
	unsigned char in[4 + 4 * 4], out[crypto_shorthash_BYTES];
	size_t len = 4;
	uint64_t h = 0;
	int i, b;

	pthread_once(&sodium_once, sodium_start);
	memcpy(in, kind, 4);
	for (i = 0; i < n; i++)
		for (b = 0; b < 4; b++)
			in[len++] = (unsigned char)(ids[i] >> (8 * b));
	crypto_shorthash(out, in, len, key);
	for (b = 7; b >= 0; b--)
		h = h << 8 | out[b];
	snprintf(buf, SHMRPC__PATH_MAX, "/shmrpc.%s.%s.%016llx", domain, kind,
		 (unsigned long long)h);
}

void shmrpc__node_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t slot,
			   uint32_t gen)
{
	const uint32_t ids[2] = { slot, gen };

	hashed_path(buf, domain, key, "node", ids, 2);
}

void shmrpc__ring_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen)
{
	const uint32_t ids[4] = { tx_slot, tx_gen, rx_slot, rx_gen };

	hashed_path(buf, domain, key, "ring", ids, 4);
}

void shmrpc__repl_path_key(char *buf, const char *domain, const uint8_t *key, uint32_t tx_slot,
			   uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen)
{
	const uint32_t ids[4] = { tx_slot, tx_gen, rx_slot, rx_gen };

	hashed_path(buf, domain, key, "repl", ids, 4);
}

/*
 * Which file of the registry of (@domain, @key, @nonce) is /dev/shm entry @ent, from its content: a
 * node's header gives (slot, gen), a ring's (tx_slot, tx_gen, rx_slot,
 * rx_gen), a reply ring's the same; then the name those ids make must be
 * @ent. Read with pread (no mapping: a file that shrinks cannot hurt, a hole
 * reads as zeros and allocates nothing). 1 node, 2 ring, 3 reply ring, 0
 * another name, -EPROTO a file with
 * one of our names that is not what its name says (or of another registry),
 * -ENOENT, -errno.
 */
int shmrpc__file_ids_key(const char *domain, const uint8_t *key, uint32_t nonce, uint32_t mode,
			 const char *ent, uint32_t ids[4])
{
	char path[SHMRPC__PATH_MAX], want[SHMRPC__PATH_MAX];
	union {
		struct shmrpc__node_hdr n;
		struct shmrpc__ring_hdr q;
	} h;
	size_t dl = strlen(domain);
	int kind, fd;
	ssize_t got;

	if (strncmp(ent, "shmrpc.", 7) || strncmp(ent + 7, domain, dl) || ent[7 + dl] != '.')
		return 0;
	kind = !strncmp(ent + 8 + dl, "node.", 5) ? 1 :
	       !strncmp(ent + 8 + dl, "ring.", 5) ? 2 :
	       !strncmp(ent + 8 + dl, "repl.", 5) ? 3 :
						    0;
	if (!kind)
		return 0;
	snprintf(path, sizeof(path), "/%s", ent);
	fd = shmrpc__seg_open_fd(path, O_RDONLY, mode, NULL);
	if (fd < 0)
		return fd;
	memset(&h, 0, sizeof(h));
	got = pread(fd, &h, sizeof(h), 0);
	close(fd);
	if (got < 0)
		return -errno;
	if (kind == 1 && h.n.magic == SHMRPC__NODE_MAGIC) {
		ids[0] = h.n.slot;
		ids[1] = h.n.gen;
		ids[2] = ids[3] = 0;
		shmrpc__node_path_key(want, domain, key, ids[0], ids[1]);
	} else if (kind >= 2 &&
		   h.q.magic == (kind == 2 ? SHMRPC__RING_MAGIC : SHMRPC__REPL_MAGIC) &&
		   h.q.nonce == nonce) {
		ids[0] = h.q.tx_slot;
		ids[1] = h.q.tx_gen;
		ids[2] = h.q.rx_slot;
		ids[3] = h.q.rx_gen;
		(kind == 2 ? shmrpc__ring_path_key : shmrpc__repl_path_key)(
			want, domain, key, ids[0], ids[1], ids[2], ids[3]);
	} else {
		return -EPROTO;
	}
	return strcmp(want, path) ? -EPROTO : kind;
}
