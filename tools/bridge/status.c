// SPDX-License-Identifier: MIT
/*
 * The bridge's side of the status segment (status.h): created and locked
 * at start, a row per node (local or proxy) while it exists, counters
 * copied in by the tick every 250 ms, removed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"
#include "status.h"

struct br_status {
	int fd;
	size_t size;
	struct br_status_hdr *hdr;
	struct br_status_row *rows;
	char path[64 + BR_NAME];
};

static void pack(_Atomic uint64_t *dst, const char *s)
{
	uint64_t w[8] = { 0 };
	int k;

	memcpy(w, s, strnlen(s, sizeof(w) - 1));
	for (k = 0; k < 8; k++) /* relaxed: inside the row's seqlock */
		atomic_store_explicit(&dst[k], w[k], memory_order_relaxed);
}

static void begin(_Atomic uint32_t *seq)
{
	/* Relaxed store, then a release fence: a reader that sees any field
	 * written below also sees the odd seq (pairs with its acquire fence). */
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void end(_Atomic uint32_t *seq)
{
	/* Release: the fields are complete before seq is even again (pairs
	 * with the reader's acquire load of seq). */
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
			      memory_order_release);
}

/* The file of a previous run: stale (unlocked, ours) is replaced, live or
 * foreign is refused. 0 to retry the creation, or -errno. */
static int stale(const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct stat st;
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		blog(BR_LOG_ERROR, "status-refused path=%s why=not-a-file-of-ours", path);
		rc = -EPERM;
	} else if (fcntl(fd, F_OFD_SETLK, &fl)) {
		blog(BR_LOG_ERROR, "status-refused path=%s why=another-bridge-runs-this-domain",
		     path);
		rc = -EBUSY;
	} else {
		unlink(path);
	}
	close(fd);
	return rc;
}

static int create(struct br_status *s, uint32_t rows)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int tries, rc;

	for (tries = 0; tries < 3; tries++) {
		s->fd = open(s->path,
			     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
		if (s->fd >= 0 || errno != EEXIST)
			break;
		if ((rc = stale(s->path)))
			return rc;
	}
	if (s->fd < 0)
		return -errno;
	s->size = sizeof(struct br_status_hdr) + (size_t)rows * sizeof(struct br_status_row);
	if (fcntl(s->fd, F_OFD_SETLK, &fl) || (errno = posix_fallocate(s->fd, 0, (off_t)s->size)))
		goto fail;
	s->hdr = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (s->hdr == MAP_FAILED)
		goto fail;
	s->rows = (struct br_status_row *)(s->hdr + 1);
	return 0;
fail:
	rc = -errno;
	unlink(s->path);
	close(s->fd);
	return rc;
}

int br_status_open(struct br_dom *d)
{
	struct br_status *s = calloc(1, sizeof(*s));
	struct br_status_hdr *h;
	int rc;

	if (!s)
		return -ENOMEM;
	snprintf(s->path, sizeof(s->path), "/dev/shm/" BR_STATUS_PREFIX "%s", d->name);
	if ((rc = create(s, d->br->o.status_rows))) {
		blog(BR_LOG_ERROR, "status-create path=%s error=%s", s->path, strerror(-rc));
		free(s);
		return rc;
	}
	h = s->hdr;
	h->version = BR_STATUS_VERSION;
	h->hdr_size = sizeof(*h);
	h->row_size = sizeof(struct br_status_row);
	h->rows = d->br->o.status_rows;
	h->pid = (uint32_t)getpid();
	h->started_ns = br_wall_ns();
	memcpy(h->host, d->br->o.host, strlen(d->br->o.host)); /* <= 63: NUL-padded */
	memcpy(h->domain, d->name, strlen(d->name));
	/* Release: the constant fields above are complete once magic shows
	 * (pairs with the reader's acquire load of magic). */
	atomic_store_explicit((_Atomic uint64_t *)&h->magic, BR_STATUS_MAGIC, memory_order_release);
	d->st = s;
	return 0;
}

void br_status_close(struct br_dom *d)
{
	struct br_status *s = d->st;

	if (!s)
		return;
	unlink(s->path); /* before the close drops the lock */
	munmap(s->hdr, s->size);
	close(s->fd);
	free(s);
	d->st = NULL;
}

int br_status_row(struct br_dom *d, const char *name, const char *host, int kind)
{
	struct br_status *s = d->st;
	uint32_t i, used;

	if (!s)
		return -1;
	used = atomic_load_explicit(&s->hdr->used, memory_order_relaxed);
	for (i = 0; i < s->hdr->rows; i++)
		if (!atomic_load_explicit(&s->rows[i].kind, memory_order_relaxed))
			break;
	if (i == s->hdr->rows)
		return -1; /* full: the node's counters go to the header's totals */
	begin(&s->rows[i].seq);
	pack(s->rows[i].name, name);
	pack(s->rows[i].host, host);
	atomic_store_explicit(&s->rows[i].kind, (uint32_t)kind, memory_order_relaxed);
	end(&s->rows[i].seq);
	if (i >= used) { /* only main's tick and this write used: under mu */
		begin(&s->hdr->seq);
		atomic_store_explicit(&s->hdr->used, i + 1, memory_order_relaxed);
		end(&s->hdr->seq);
	}
	return (int)i;
}

void br_status_free_row(struct br_dom *d, int row)
{
	struct br_status_row *r;

	if (!d->st || row < 0)
		return;
	r = &d->st->rows[row];
	begin(&r->seq);
	atomic_store_explicit(&r->kind, BR_STATUS_FREE, memory_order_relaxed);
	end(&r->seq);
}

void br_status_set_kind(struct br_dom *d, int row, int kind, const char *host)
{
	struct br_status_row *r;

	if (!d->st || row < 0)
		return;
	r = &d->st->rows[row];
	begin(&r->seq);
	atomic_store_explicit(&r->kind, (uint32_t)kind, memory_order_relaxed);
	pack(r->host, host);
	end(&r->seq);
}

static void put_ctr(struct br_status *s, int row, const struct br_ctr *c)
{
	struct br_status_row *r = &s->rows[row];

	begin(&r->seq);
	/* relaxed: inside the row's seqlock */
	atomic_store_explicit(&r->fwd_msgs, c->fwd_msgs, memory_order_relaxed);
	atomic_store_explicit(&r->fwd_bytes, c->fwd_bytes, memory_order_relaxed);
	atomic_store_explicit(&r->dlv_msgs, c->dlv_msgs, memory_order_relaxed);
	atomic_store_explicit(&r->dlv_bytes, c->dlv_bytes, memory_order_relaxed);
	atomic_store_explicit(&r->lost, c->lost, memory_order_relaxed);
	atomic_store_explicit(&r->dropped, c->dropped, memory_order_relaxed);
	atomic_store_explicit(&r->stalls, c->stalls, memory_order_relaxed);
	atomic_store_explicit(&r->queued, c->queued, memory_order_relaxed);
	end(&r->seq);
}

void br_status_update(struct br_dom *d)
{
	struct br_status *s = d->st;
	struct br_status_hdr *h;
	struct br_local *l;
	struct br_proxy *px;
	uint32_t i = 0, conns = atomic_load(&d->br->reconnects);

	if (!s)
		return;
	while ((l = br_map_next(&d->locals, &i)))
		if (l->row >= 0)
			put_ctr(s, l->row, &l->ctr);
	i = 0;
	while ((px = br_map_next(&d->proxies, &i)))
		if (px->row >= 0)
			put_ctr(s, px->row, &px->ctr);
	h = s->hdr;
	begin(&h->seq);
	atomic_store_explicit(&h->nats_up, atomic_load(&d->br->up), memory_order_relaxed);
	atomic_store_explicit(&h->hosts, d->hosts.n, memory_order_relaxed);
	atomic_store_explicit(&h->updated_ns, br_wall_ns(), memory_order_relaxed);
	/* br->reconnects counts every connect, the first one too */
	atomic_store_explicit(&h->reconnects, conns ? conns - 1 : 0, memory_order_relaxed);
	atomic_store_explicit(&h->bad_msgs, d->bad_msgs, memory_order_relaxed);
	atomic_store_explicit(&h->gone_lost, d->gone.lost, memory_order_relaxed);
	atomic_store_explicit(&h->gone_dropped, d->gone.dropped, memory_order_relaxed);
	atomic_store_explicit(&h->bcasts, d->bcasts, memory_order_relaxed);
	atomic_store_explicit(&h->bcast_sent, d->bcast_sent, memory_order_relaxed);
	atomic_store_explicit(&h->bcast_split, d->bcast_split, memory_order_relaxed);
	end(&h->seq);
}
