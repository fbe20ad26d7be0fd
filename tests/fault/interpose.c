// SPDX-License-Identifier: MIT
/*
 * The interposer of the fault build (tests/fault/fault.h says what it
 * does; tests/fault/fault.mk builds it).
 *
 * Why objcopy --redefine-syms on the library's objects, rather than
 * -Wl,--wrap on the test's link: --wrap renames the undefined references
 * of every object in the link, the test's and the harness's too, and the
 * wrapper would then have to tell the library's calls from theirs (by
 * return address, which a static link and inlining make fragile). Renamed
 * in the library's objects alone, a reference can only be the library's:
 * every call that reaches fault_<name> is one the library made, whatever
 * the test or cmocka do meanwhile. The real function is then called by its
 * own name, from here.
 *
 * Which calls: every import of the library that can fail for want of a
 * resource, or be interrupted, on the paths it uses them (fault.mk lists
 * them, and the ones left out with why). Each fails the way the real one
 * does (return value, errno or -errno) with an errno it can return there:
 * ENOMEM for allocations, mappings, fstat/stat (kernel memory) and
 * io_uring registrations; EMFILE for descriptors; ENOSPC for a file
 * created or reserved on a full tmpfs; ENOLCK for a lock taken; EINTR for
 * sleeps and waits a signal ends; EAGAIN where that is the call's
 * transient failure (pthread_create, io_uring_submit, an empty eventfd).
 * A failed call does nothing, as the real one does when it fails.
 * $FAULT_ALT=1 (make faults runs it too) picks another errno where the call
 * has one with another meaning: ENFILE for descriptors, EFBIG for sizing,
 * EAGAIN for a futex wait whose word changed, ENOSPC for epoll's watches,
 * EMFILE for an io_uring, ENOMEM for opendir.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <sodium.h>

#include "fault.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* ------------------------------------------------------------ counting */

static struct fault_shared own;
static struct fault_shared *sh = &own;
static _Thread_local int role; /* enum fault_role of this thread */
static long api_target;	       /* written by the armed thread only */
static bool api_sticky;	       /* likewise */
static _Atomic bool bg_on, bg_sticky;
static _Atomic long bg_target, bg_count;
static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER; /* bg_log, the hit */

void fault_attach(struct fault_shared *s)
{
	sh = s ? s : &own;
}

static void reset_counts(void)
{
	sh->api_calls = sh->bg_calls = 0;
	sh->hit_n = 0;
	sh->hit_role = FAULT_NONE;
	memset(&sh->hit, 0, sizeof(sh->hit));
	sh->fails = 0;
	sh->errs = 0;
	atomic_store(&bg_count, 0);
}

void fault_api_arm(long n, bool sticky)
{
	reset_counts();
	api_target = n;
	api_sticky = sticky;
	role = FAULT_API;
}

long fault_api_disarm(void)
{
	role = FAULT_NONE;
	api_target = 0;
	api_sticky = false;
	return sh->api_calls;
}

/*
 * What a process or machine can stay out of (sticky failures): memory it
 * allocates, space, descriptors. A stat's ENOMEM (kernel memory for a call
 * that keeps nothing) stays a one-off: the library tries those again a few
 * times and then leaves a registry it cannot check to the next opener or
 * the reaper (regfile.c, shmrpc__reg_retire), by design.
 */
static bool resource(const char *sym, int err)
{
	if (!strncmp(sym, "fstat", 5) || !strncmp(sym, "stat", 4) || !strncmp(sym, "lstat", 5))
		return false;
	return err == ENOMEM || err == ENOSPC || err == EMFILE || err == ENFILE || err == EFBIG;
}

void fault_bg_arm(long n, bool sticky)
{
	atomic_store(&bg_count, 0);
	sh->bg_calls = 0;
	atomic_store(&bg_target, n);
	atomic_store(&bg_sticky, sticky);
	atomic_store(&bg_on, true);
}

long fault_bg_disarm(void)
{
	atomic_store(&bg_on, false);
	return atomic_load(&bg_count);
}

static void note(struct fault_call *c, const char *sym, int err)
{
	snprintf(c->sym, sizeof(c->sym), "%s", sym);
	c->err = err;
}

/* $FAULT_ALT=1: the alternative errno of the calls that have one (alt()). */
static bool use_alt(void)
{
	static int on = -1; /* racy but idempotent */

	if (on < 0)
		on = getenv("FAULT_ALT") && !strcmp(getenv("FAULT_ALT"), "1");
	return on;
}

/* @err, or under $FAULT_ALT=1 @alt: another errno the call returns there. */
static int alt(int err, int other)
{
	return use_alt() ? other : err;
}

/* Is this call of the library's, by the thread in @role, the one to fail?
 * Then errno is @err. */
static bool fail(const char *sym, int err)
{
	long n, t;

	if (role == FAULT_API) {
		n = ++sh->api_calls;
		if (n <= FAULT_LOG_MAX)
			note(&sh->api_log[n - 1], sym, err);
		if (n != api_target &&
		    !(api_sticky && api_target && n > api_target && resource(sym, err)))
			return false;
	} else if (role == FAULT_BG && atomic_load(&bg_on)) {
		n = atomic_fetch_add(&bg_count, 1) + 1;
		pthread_mutex_lock(&bg_lock);
		if (n > sh->bg_calls)
			sh->bg_calls = n;
		if (n <= FAULT_LOG_MAX)
			note(&sh->bg_log[n - 1], sym, err);
		pthread_mutex_unlock(&bg_lock);
		t = atomic_load(&bg_target);
		if (n != t && !(atomic_load(&bg_sticky) && t && n > t && resource(sym, err)))
			return false;
	} else {
		return false;
	}
	if (role == FAULT_BG) /* several threads */
		pthread_mutex_lock(&bg_lock);
	if (!sh->hit_n) {
		note(&sh->hit, sym, err);
		sh->hit_role = role;
		sh->hit_n = n;
	}
	sh->fails++;
	if (err > 0 && err < 64)
		sh->errs |= 1ull << err;
	if (role == FAULT_BG)
		pthread_mutex_unlock(&bg_lock);
	errno = err;
	return true;
}

/* ------------------------------------------------------------ the heap */

/* The library's live blocks: an open-addressing set of pointers (the
 * interposer allocates nothing itself on this path). */
#define HEAP_SLOTS (1u << 16)
#define HEAP_GONE ((void *)1)

static void *heap[HEAP_SLOTS];
static long heap_live;
static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t heap_hash(const void *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull >> 48) & (HEAP_SLOTS - 1);
}

static void heap_add(void *p)
{
	size_t i;

	if (!p)
		return;
	pthread_mutex_lock(&heap_lock);
	for (i = heap_hash(p); heap[i] && heap[i] != HEAP_GONE; i = (i + 1) & (HEAP_SLOTS - 1))
		;
	heap[i] = p;
	heap_live++;
	pthread_mutex_unlock(&heap_lock);
}

static void heap_del(void *p)
{
	size_t i;

	if (!p)
		return;
	pthread_mutex_lock(&heap_lock);
	for (i = heap_hash(p); heap[i]; i = (i + 1) & (HEAP_SLOTS - 1))
		if (heap[i] == p) {
			heap[i] = HEAP_GONE;
			heap_live--;
			break;
		}
	pthread_mutex_unlock(&heap_lock);
}

long fault_live_blocks(void)
{
	long n;

	pthread_mutex_lock(&heap_lock);
	n = heap_live;
	pthread_mutex_unlock(&heap_lock);
	return n;
}

/* A fork while another thread holds a lock of ours must not leave the
 * child's copy locked. */
static void lock_all(void)
{
	pthread_mutex_lock(&bg_lock);
	pthread_mutex_lock(&heap_lock);
}

static void unlock_all(void)
{
	pthread_mutex_unlock(&heap_lock);
	pthread_mutex_unlock(&bg_lock);
}

__attribute__((constructor)) static void fault_init(void)
{
	pthread_atfork(lock_all, unlock_all, unlock_all);
}

void *fault_calloc(size_t n, size_t size)
{
	void *p;

	if (fail("calloc", ENOMEM))
		return NULL;
	p = calloc(n, size);
	heap_add(p);
	return p;
}

void *fault_realloc(void *old, size_t size)
{
	void *p;

	if (fail("realloc", ENOMEM))
		return NULL;
	heap_del(old); /* before: its value is not to be used after realloc */
	p = realloc(old, size);
	heap_add(p ? p : old);
	return p;
}

void fault_free(void *p)
{
	heap_del(p);
	free(p);
}

/* ------------------------------------------------------------ threads */

struct tramp {
	void *(*fn)(void *);
	void *arg;
};

/* Every thread the library starts counts as BG, whoever started it. */
static void *tramp_main(void *p)
{
	struct tramp t = *(struct tramp *)p;

	free(p);
	role = FAULT_BG;
	return t.fn(t.arg);
}

int fault_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct tramp *t;
	int rc;

	if (fail("pthread_create", EAGAIN))
		return EAGAIN;
	t = malloc(sizeof(*t));
	if (!t)
		return EAGAIN;
	t->fn = fn;
	t->arg = arg;
	rc = pthread_create(th, attr, tramp_main, t);
	if (rc)
		free(t);
	return rc;
}

int fault_pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
	if (fail("pthread_key_create", EAGAIN))
		return EAGAIN;
	return pthread_key_create(key, destructor);
}

int fault_pthread_setspecific(pthread_key_t key, const void *value)
{
	if (fail("pthread_setspecific", ENOMEM))
		return ENOMEM;
	return pthread_setspecific(key, value);
}

int fault_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	if (fail("pthread_atfork", ENOMEM))
		return ENOMEM;
	return pthread_atfork(prepare, parent, child);
}

/* ------------------------------------------------------------ files */

int fault_shm_open(const char *name, int oflag, mode_t mode)
{
	/* Creating on a tmpfs out of inodes is ENOSPC (alt: the system's
	 * file table, ENFILE); opening, EMFILE (alt: ENFILE). */
	if (oflag & O_CREAT ? fail("shm_open(CREAT)", alt(ENOSPC, ENFILE)) :
			      fail("shm_open", alt(EMFILE, ENFILE)))
		return -1;
	return shm_open(name, oflag, mode);
}

int fault_open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (fail("open", alt(EMFILE, ENFILE)))
		return -1;
	return open(path, flags, mode);
}

DIR *fault_opendir(const char *name)
{
	if (fail("opendir", alt(EMFILE, ENOMEM)))
		return NULL;
	return opendir(name);
}

ssize_t fault_read(int fd, void *buf, size_t len)
{
	if (fail("read", ENOMEM))
		return -1;
	return read(fd, buf, len);
}

ssize_t fault_pread(int fd, void *buf, size_t len, off_t off)
{
	if (fail("pread", ENOMEM))
		return -1;
	return pread(fd, buf, len, off);
}

int fault_fstat(int fd, struct stat *st)
{
	if (fail("fstat", ENOMEM))
		return -1;
	return fstat(fd, st);
}

int fault_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	if (fail("fstatat", ENOMEM))
		return -1;
	return fstatat(dirfd, path, st, flags);
}

int fault_stat(const char *path, struct stat *st)
{
	if (fail("stat", ENOMEM))
		return -1;
	return stat(path, st);
}

int fault_lstat(const char *path, struct stat *st)
{
	if (fail("lstat", ENOMEM))
		return -1;
	return lstat(path, st);
}

int fault_fallocate(int fd, int mode, off_t off, off_t len)
{
	if (fail("fallocate", alt(ENOSPC, EFBIG))) /* alt: RLIMIT_FSIZE */
		return -1;
	return fallocate(fd, mode, off, len);
}

int fault_posix_fallocate(int fd, off_t off, off_t len)
{
	if (fail("posix_fallocate", alt(ENOSPC, EFBIG)))
		return errno;
	return posix_fallocate(fd, off, len);
}

int fault_ftruncate(int fd, off_t len)
{
	if (fail("ftruncate", alt(EINTR, EFBIG)))
		return -1;
	return ftruncate(fd, len);
}

void *fault_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fail("mmap", ENOMEM))
		return MAP_FAILED;
	return mmap(addr, len, prot, flags, fd, off);
}

/* Taking a lock: ENOLCK (the kernel's lock records), or for F_OFD_GETLK,
 * which allocates one too, ENOMEM. Unlocking never fails on a whole lock,
 * and passes. */
int fault_fcntl(int fd, int cmd, ...)
{
	struct flock *fl;
	va_list ap;

	va_start(ap, cmd);
	fl = va_arg(ap, struct flock *);
	va_end(ap);
	if (cmd == F_OFD_GETLK && fail("fcntl(GETLK)", ENOMEM))
		return -1;
	if (cmd == F_OFD_SETLK && fl->l_type != F_UNLCK && fail("fcntl(SETLK)", ENOLCK))
		return -1;
	if (cmd == F_OFD_SETLKW && fl->l_type != F_UNLCK && fail("fcntl(SETLKW)", ENOLCK))
		return -1;
	return fcntl(fd, cmd, fl);
}

ssize_t fault_getrandom(void *buf, size_t len, unsigned flags)
{
	/* What a kernel before 3.17 says. */
	if (fail("getrandom", ENOSYS))
		return -1;
	return getrandom(buf, len, flags);
}

int fault_nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (fail("nanosleep", EINTR))
		return -1;
	return nanosleep(req, rem);
}

/* ------------------------------------------------------------ events */

int fault_eventfd(unsigned initval, int flags)
{
	if (fail("eventfd", alt(EMFILE, ENFILE)))
		return -1;
	return eventfd(initval, flags);
}

/* Non-blocking: EAGAIN is an eventfd with nothing in it. */
int fault_eventfd_read(int fd, eventfd_t *value)
{
	if (fail("eventfd_read", EAGAIN))
		return -1;
	return eventfd_read(fd, value);
}

int fault_epoll_create1(int flags)
{
	if (fail("epoll_create1", alt(EMFILE, ENFILE)))
		return -1;
	return epoll_create1(flags);
}

int fault_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	/* Removing never fails on a descriptor that is in the set. */
	/* alt: ENOSPC, past max_user_watches */
	if (op == EPOLL_CTL_ADD && fail("epoll_ctl(ADD)", alt(ENOMEM, ENOSPC)))
		return -1;
	return epoll_ctl(epfd, op, fd, ev);
}

int fault_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	if (fail("epoll_wait", EINTR))
		return -1;
	return epoll_wait(epfd, ev, max, timeout);
}

/*
 * syscall(2): the waits can be interrupted (EINTR); futex_waitv's probe
 * with no words gets ENOSYS, as on a kernel before 5.16 (the futex backend
 * then sleeps on the bell alone: every ring in bell mode); pidfd_open is
 * out of descriptors. Wakes cannot fail (FUTEX_WAKE on a valid word), and
 * pass.
 */
long fault_syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	int i, op;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_futex) {
		op = (int)a[1] & FUTEX_CMD_MASK;
		/* alt: EAGAIN, the word changed before the wait */
		if ((op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET) &&
		    fail("futex(WAIT)", alt(EINTR, EAGAIN)))
			return -1;
	} else if (nr == SYS_futex_waitv) {
		if (a[1] == 0 ? fail("futex_waitv(probe)", ENOSYS) :
				fail("futex_waitv", alt(EINTR, EAGAIN)))
			return -1;
	} else if (nr == SYS_pidfd_open) {
		if (fail("pidfd_open", alt(EMFILE, ENFILE)))
			return -1;
	}
	return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ------------------------------------------------------------ io_uring */

int fault_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	if (fail("io_uring_queue_init", alt(ENOMEM, EMFILE))) /* a ring is a descriptor */
		return -errno;
	return io_uring_queue_init(entries, ring, flags);
}

int fault_io_uring_register_probe(struct io_uring *ring, struct io_uring_probe *p, unsigned nr)
{
	if (fail("io_uring_register_probe", ENOMEM))
		return -ENOMEM;
	return io_uring_register_probe(ring, p, nr);
}

int fault_io_uring_register_eventfd(struct io_uring *ring, int fd)
{
	if (fail("io_uring_register_eventfd", ENOMEM))
		return -ENOMEM;
	return io_uring_register_eventfd(ring, fd);
}

/* A signal during the cancel's wait: nothing cancelled. */
int fault_io_uring_register_sync_cancel(struct io_uring *ring, struct io_uring_sync_cancel_reg *reg)
{
	if (fail("io_uring_register_sync_cancel", EINTR))
		return -EINTR;
	return io_uring_register_sync_cancel(ring, reg);
}

/* No memory for the requests: nothing submitted, the SQEs stay queued. */
int fault_io_uring_submit(struct io_uring *ring)
{
	if (fail("io_uring_submit", EAGAIN))
		return -EAGAIN;
	return io_uring_submit(ring);
}

/* A signal: nothing submitted, nothing waited for. */
int fault_io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe,
					   unsigned nr, struct __kernel_timespec *ts,
					   sigset_t *sigmask)
{
	if (fail("io_uring_submit_and_wait", EINTR))
		return -EINTR;
	return io_uring_submit_and_wait_timeout(ring, cqe, nr, ts, sigmask);
}

/* ------------------------------------------------------------ libsodium */

int fault_sodium_init(void)
{
	if (fail("sodium_init", ENOMEM))
		return -1;
	return sodium_init();
}
