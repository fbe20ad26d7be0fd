// SPDX-License-Identifier: MIT
/*
 * Reading /dev/shm without trusting it and without disturbing anyone.
 *
 * Files are opened O_RDONLY | O_NOFOLLOW | O_NONBLOCK (a planted symlink is
 * not followed, a planted FIFO does not block us) and must be regular
 * files with one link;
 * they are mapped PROT_READ, never beyond the size fstat just reported.
 *
 * A file can still shrink after fstat: a node's ftruncate, a hostile
 * writer, a test. Touching a mapped page past the new end raises SIGBUS on
 * tmpfs. The tool owns its signal handling (a library could not), so every
 * read of a mapping runs under top_guard(): the handler jumps back out of
 * the read and the caller reports the file as truncated. The tool is
 * single-threaded; the armed jump buffer is one static atomic pointer.
 *
 * Counters are read word by word with relaxed atomic loads: each 64-bit
 * counter has a single writer and an aligned load never tears it. Sets of
 * counters may be torn (read while a node updates them); callers order
 * the few loads where that matters (ring head before tail) and tolerate
 * the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "top.h"

/* Set only around a guarded read; the handler, which interrupts this
 * thread, reads it. A lock-free atomic is safe in a signal handler; the
 * signal fences keep the compiler from moving the read past its arming. */
static _Atomic(sigjmp_buf *) armed;

static void on_sigbus(int sig)
{
	sigjmp_buf *jb = atomic_load_explicit(&armed, memory_order_relaxed);

	if (jb)
		siglongjmp(*jb, 1);
	/* Not ours: die of it as we would have without the handler. */
	signal(sig, SIG_DFL);
	raise(sig);
}

int top_guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) ? -errno : 0;
}

int top_guard(int (*fn)(void *ctx), void *ctx)
{
	sigjmp_buf jb;
	int rc;

	/* savesigs = 1: the jump out of the handler unblocks SIGBUS again. */
	if (sigsetjmp(jb, 1)) {
		atomic_store_explicit(&armed, NULL, memory_order_relaxed);
		return -EFAULT;
	}
	atomic_store_explicit(&armed, &jb, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst); /* pairs with the handler's load */
	rc = fn(ctx);
	atomic_signal_fence(memory_order_seq_cst); /* the reads are done */
	atomic_store_explicit(&armed, NULL, memory_order_relaxed);
	return rc;
}

struct copy_ctx {
	uint64_t *dst;
	const _Atomic uint64_t *src;
	size_t words;
};

static int copy_words(void *arg)
{
	struct copy_ctx *c = arg;
	size_t i;

	/* Relaxed: each word is one writer's counter or a constant; no order
	 * between words is promised to the caller. */
	for (i = 0; i < c->words; i++)
		c->dst[i] = atomic_load_explicit(&c->src[i], memory_order_relaxed);
	return 0;
}

int top_copy(void *dst, const void *src, size_t len)
{
	struct copy_ctx c = { dst, src, len / 8 };

	return top_guard(copy_words, &c);
}

int top_map_open(const char *file, size_t max, bool keep_fd, struct top_map *m)
{
	char path[sizeof(TOP_SHM_DIR) + TOP_FILE_MAX];
	struct stat st;
	void *p;
	int err;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (!file[0] || strchr(file, '/'))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%s", TOP_SHM_DIR, file);
	m->fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (m->fd < 0)
		return -errno;
	if (fstat(m->fd, &st)) {
		err = -errno;
		goto out_close;
	}
	/* One name only: a hard link could show another file under ours. */
	if (!S_ISREG(st.st_mode) || st.st_nlink > 1 || st.st_size < 0) {
		err = -EBADF;
		goto out_close;
	}
	m->size = (uint64_t)st.st_size;
	m->ino = (uint64_t)st.st_ino;
	m->uid = st.st_uid;
	m->len = m->size < max ? (size_t)m->size : max;
	top_data(m->fd, m->len < 4096 ? m->len : 4096, &m->head_data);
	if (m->len) {
		p = mmap(NULL, m->len, PROT_READ, MAP_SHARED, m->fd, 0);
		if (p == MAP_FAILED) {
			err = -errno;
			goto out_close;
		}
		m->p = p;
	}
	if (!keep_fd) {
		close(m->fd);
		m->fd = -1;
	}
	return 0;

out_close:
	close(m->fd);
	m->fd = -1;
	return err;
}

void top_data(int fd, uint64_t len, bool *pages)
{
	uint64_t npages = (len + 4095) / 4096, i;
	off_t off = 0, data, hole;

	memset(pages, 0, npages * sizeof(*pages));
	while ((uint64_t)off < len) {
		data = lseek(fd, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			return; /* holes to the end */
		if (data < 0) {
			/* SEEK_DATA unsupported here: assume data everywhere. */
			for (i = 0; i < npages; i++)
				pages[i] = true;
			return;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)len;
		for (i = (uint64_t)data / 4096; i < npages && i * 4096 < (uint64_t)hole; i++)
			pages[i] = true;
		off = hole;
	}
}

void top_map_close(struct top_map *m)
{
	if (m->p)
		munmap((void *)m->p, m->len);
	if (m->fd >= 0)
		close(m->fd);
	m->p = NULL;
	m->len = 0;
	m->fd = -1;
}

int top_lock_held(int fd)
{
	/* The same question the library asks (shmrpc__seg_locked): who would
	 * stop a write lock on byte 0? GETLK only looks; it takes nothing. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	if (fcntl(fd, F_OFD_GETLK, &fl))
		return -errno;
	return fl.l_type != F_UNLCK;
}

static double now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double top_now_mono(void)
{
	return now(CLOCK_MONOTONIC);
}

double top_now_wall(void)
{
	return now(CLOCK_REALTIME);
}
