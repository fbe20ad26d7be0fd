// SPDX-License-Identifier: MIT
/*
 * Test harness (harness.h): a domain's files in /dev/shm, known by their
 * names and headers (lib/layout.h; names carry a keyed hash of the ids,
 * lib/names.c), for the tests that must tell which file is whose.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "layout.h"
#include "names.h"

int th_shm_walk(const char *sub, void (*fn)(const char *ent, void *arg), void *arg)
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *e;
	int count = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		if (!strstr(e->d_name, sub))
			continue;
		count++;
		if (fn)
			fn(e->d_name, arg);
	}
	closedir(dir);
	return count;
}

struct dom_q {
	const char *dom, *sub;
	int count;
};

static void dom_one(const char *ent, void *arg)
{
	struct dom_q *q = arg;
	size_t n = strlen(q->dom);

	if (!strncmp(ent, "shmrpc.", 7) && !strncmp(ent + 7, q->dom, n) && ent[7 + n] == '.' &&
	    strstr(ent + 7 + n, q->sub))
		q->count++;
}

int th_dom_files(const char *dom, const char *sub)
{
	struct dom_q q = { dom, sub, 0 };

	th_shm_walk("shmrpc.", dom_one, &q);
	return q.count;
}

void th_shm_path(char *buf, size_t len, const char *dom, const char *suffix)
{
	snprintf(buf, len, "/dev/shm/shmrpc.%s.%s", dom, suffix);
}

int th_ent_ids(const char *ent, uint32_t ids[4])
{
	union {
		struct shmrpc__node_hdr n;
		struct shmrpc__ring_hdr q;
	} h;
	char path[300];
	int fd, kind = 0;

	snprintf(path, sizeof(path), "/dev/shm/%s", ent);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0;
	memset(&h, 0, sizeof(h));
	if (pread(fd, &h, sizeof(h), 0) > 0) {
		if (strstr(ent, ".node.") && h.n.magic == SHMRPC__NODE_MAGIC) {
			ids[0] = h.n.slot;
			ids[1] = h.n.gen;
			kind = 1;
		} else if (strstr(ent, ".ring.") && h.q.magic == SHMRPC__RING_MAGIC) {
			ids[0] = h.q.tx_slot;
			ids[1] = h.q.tx_gen;
			ids[2] = h.q.rx_slot;
			ids[3] = h.q.rx_gen;
			kind = 2;
		}
	}
	close(fd);
	return kind;
}

bool th_of_dom(const char *ent, const char *dom)
{
	size_t n = strlen(dom);

	return !strncmp(ent, "shmrpc.", 7) && !strncmp(ent + 7, dom, n) && ent[7 + n] == '.';
}

struct id_q {
	const char *dom, *name;
	char *id;
	char path[300];
	int found;
};

static void id_one(const char *ent, void *arg)
{
	struct id_q *q = arg;
	struct shmrpc__node_hdr h;
	char path[300];
	int fd;

	if (!th_of_dom(ent, q->dom) || !strstr(ent, ".node."))
		return;
	snprintf(path, sizeof(path), "/dev/shm/%s", ent);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;
	if (pread(fd, &h, sizeof(h), 0) == sizeof(h) && h.magic == SHMRPC__NODE_MAGIC &&
	    !strncmp(h.name, q->name, sizeof(h.name))) {
		snprintf(q->id, 32, "%u.%u", h.slot, h.gen);
		snprintf(q->path, sizeof(q->path), "%s", path);
		q->found++;
	}
	close(fd);
}

int th_node_id(const char *dom, const char *name, char id[32])
{
	struct id_q q = { dom, name, id, "", 0 };

	id[0] = '\0';
	th_shm_walk("shmrpc.", id_one, &q);
	return q.found == 1 ? 0 : -1;
}

int th_node_path(const char *dom, const char *name, char *path, size_t len)
{
	char id[32];
	struct id_q q = { dom, name, id, "", 0 };

	th_shm_walk("shmrpc.", id_one, &q);
	if (q.found != 1)
		return -1;
	snprintf(path, len, "%s", q.path);
	return 0;
}

int th_plant(const char *dom, const void *data, size_t len, off_t size)
{
	char path[300];
	int fd;

	th_shm_path(path, sizeof(path), dom, "reg");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	if ((len && pwrite(fd, data, len, 0) != (ssize_t)len) || ftruncate(fd, size)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

struct idf_q {
	const char *dom;
	uint32_t slot, gen;
	int count;
};

static void idf_one(const char *ent, void *arg)
{
	struct idf_q *q = arg;
	uint32_t ids[4];
	int k;

	if (!th_of_dom(ent, q->dom))
		return;
	k = th_ent_ids(ent, ids);
	if (k && ids[0] == q->slot && ids[1] == q->gen)
		q->count++;
	else if (k == 2 && ids[2] == q->slot && ids[3] == q->gen)
		q->count++;
}

int th_id_files(const char *dom, const char *id)
{
	struct idf_q q = { dom, 0, 0, 0 };

	if (sscanf(id, "%u.%u", &q.slot, &q.gen) != 2)
		return -1;
	th_shm_walk("shmrpc.", idf_one, &q);
	return q.count;
}

struct nonce_q {
	const char *dom;
	uint8_t key[SHMRPC__KEY_BYTES];
	int foreign;
};

static void nonce_one(const char *ent, void *arg)
{
	struct nonce_q *q = arg;
	char want[SHMRPC__PATH_MAX];
	uint32_t ids[4];

	if (!th_of_dom(ent, q->dom) || th_ent_ids(ent, ids) != 1)
		return;
	shmrpc__node_path_key(want, q->dom, q->key, ids[0], ids[1]);
	q->foreign += strcmp(want + 1, ent) != 0;
}

int th_dom_nonces(const char *dom)
{
	struct nonce_q q = { .dom = dom };
	struct shmrpc__reg_hdr h;
	char path[300];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s.reg", dom);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, &h, sizeof(h), 0) != sizeof(h))
		return -1;
	close(fd);
	memcpy(q.key, h.name_key, sizeof(q.key));
	th_shm_walk("shmrpc.", nonce_one, &q);
	return 1 + q.foreign;
}

struct mode_q {
	const char *dom;
	unsigned mode;
	int bad;
};

static void mode_one(const char *ent, void *arg)
{
	struct mode_q *q = arg;
	struct stat st;
	char path[300];
	size_t n = strlen(q->dom);

	if (strncmp(ent + 7, q->dom, n) || ent[7 + n] != '.')
		return;
	snprintf(path, sizeof(path), "/dev/shm/%s", ent);
	if (stat(path, &st) || (st.st_mode & 07777) != q->mode) {
		fprintf(stderr, "%s: mode %o, want %o\n", ent, st.st_mode & 07777, q->mode);
		q->bad++;
	}
}

int th_dom_mode_bad(const char *dom, unsigned mode)
{
	struct mode_q q = { dom, mode, 0 };

	th_shm_walk("shmrpc.", mode_one, &q);
	return q.bad;
}

off_t th_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : st.st_size;
}

void *th_shm_map(const char *name, uint64_t *size)
{
	struct stat st;
	void *p;
	int fd = shm_open(name, O_RDWR, 0);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || st.st_size == 0) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	*size = (uint64_t)st.st_size;
	return p;
}
