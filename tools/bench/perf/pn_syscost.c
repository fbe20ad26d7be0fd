// SPDX-License-Identifier: MIT
/*
 * The price list: the system calls a join and a first send make, one kind
 * at a time, each timed around the call (CLOCK_MONOTONIC, median of N),
 * on files of a private name prefix in /dev/shm (removed at the end).
 *
 *   pn_syscost [--iters N]
 *
 * Also: growing the file descriptor table past 64/128/.../1024 entries
 * with and without a second thread sharing it (the kernel waits for an
 * RCU grace period when the table is shared: synchronize_rcu()).
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "pn.h"

#define T(label, setup, call, undo)                                                  \
	do {                                                                         \
		for (i = 0; i < n; i++) {                                            \
			setup;                                                       \
			t0 = pn_now();                                               \
			call;                                                        \
			v[i] = pn_now() - t0;                                        \
			undo;                                                        \
		}                                                                    \
		pn_sort(v, n);                                                       \
		printf("%-44s median %7.2f us  p10 %7.2f  p90 %7.2f\n", label,       \
		       (double)pn_q(v, n, 0.5) / 1e3, (double)pn_q(v, n, 0.1) / 1e3, \
		       (double)pn_q(v, n, 0.9) / 1e3);                               \
	} while (0)

static char *path(int i)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "/pn.syscost.%d.%d", (int)getpid(), i);
	return buf;
}

static void *idle_thread(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

static void fd_growth(const char *label)
{
	int base = open("/dev/null", O_RDONLY), fd, k;
	int64_t t0;

	printf("%s:", label);
	for (k = 128; k <= 2048; k *= 2) {
		t0 = pn_now();
		fd = fcntl(base, F_DUPFD, k - 1); /* table must hold k entries */
		printf("  %d: %.1f us", k, (double)(pn_now() - t0) / 1e3);
		fflush(stdout);
		if (fd >= 0)
			close(fd);
	}
	printf("\n");
	fflush(stdout);
	close(base);
}

int main(int argc, char **argv)
{
	int n = 1000, i, fd = -1, fd2 = -1, ep, pfd = -1;
	int64_t *v, t0;
	void *m = NULL;
	struct stat st;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	struct flock ul = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	struct flock gl;
	_Atomic uint32_t word = 0;
	volatile char sink;
	pthread_t th;
	pid_t child;

	if (argc == 3 && !strcmp(argv[1], "--iters"))
		n = atoi(argv[2]);
	v = calloc((size_t)n, sizeof(*v));
	pn_pin(0);
	/* in a fresh process (files not shared yet), then with a thread */
	if (fork() == 0) {
		fd_growth("fd table growth, one thread  ");
		_exit(0);
	}
	wait(NULL);
	if (fork() == 0) {
		pthread_create(&th, NULL, idle_thread, NULL);
		fd_growth("fd table growth, two threads");
		_exit(0);
	}
	wait(NULL);
	T("getppid (a system call)", , getppid(), );
	T("clock_gettime (vDSO)", , pn_now(), );
	T("shm_open O_CREAT|O_EXCL (new file)", ,
	  fd = shm_open(path(i), O_RDWR | O_CREAT | O_EXCL, 0600), close(fd));
	T("shm_open existing O_RDONLY|O_NOFOLLOW", ,
	  fd = shm_open(path(i), O_RDONLY | O_NONBLOCK | O_NOFOLLOW, 0), close(fd));
	T("close", fd = shm_open(path(i), O_RDONLY, 0), close(fd), );
	T("fstat", fd = shm_open(path(i), O_RDWR, 0), fstat(fd, &st), close(fd));
	T("geteuid", , geteuid(), );
	T("getrlimit(RLIMIT_FSIZE)", struct rlimit rl, getrlimit(RLIMIT_FSIZE, &rl), );
	T("fchmod", fd = shm_open(path(i), O_RDWR, 0), fchmod(fd, 0600), close(fd));
	T("fallocate 16 KiB (node segment)", fd = shm_open(path(i), O_RDWR, 0),
	  fallocate(fd, 0, 0, 16384), close(fd));
	for (i = 0; i < n; i++)
		shm_unlink(path(i));
	T("fallocate 260 KiB (ring)", fd = shm_open(path(i), O_RDWR | O_CREAT, 0600),
	  fallocate(fd, 0, 0, 266240), close(fd));
	T("ftruncate 260 KiB, no reservation (before)",
	  fd = shm_open(path(i + n), O_RDWR | O_CREAT, 0600), ftruncate(fd, 266240), close(fd));
	T("mmap 260 KiB MAP_SHARED", fd = shm_open(path(i), O_RDWR, 0),
	  m = mmap(NULL, 266240, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
	  (munmap(m, 266240), close(fd)));
	T("munmap 260 KiB (header page touched)",
	  (fd = shm_open(path(i), O_RDWR, 0),
	   m = mmap(NULL, 266240, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), ((char *)m)[0] = 1),
	  munmap(m, 266240), close(fd));
	T("first touch of a reserved page (fault)",
	  (fd = shm_open(path(i), O_RDWR, 0),
	   m = mmap(NULL, 266240, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)),
	  ((char *)m)[8192] = 1, (munmap(m, 266240), close(fd)));
	T("first touch of a page never reserved",
	  (fd = shm_open(path(i + n), O_RDWR, 0),
	   m = mmap(NULL, 266240, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)),
	  ((char *)m)[8192] = 1, (munmap(m, 266240), close(fd)));
	T("fcntl F_OFD_SETLK (take)", fd = shm_open(path(i), O_RDWR, 0),
	  fcntl(fd, F_OFD_SETLK, &fl), );
	T("fcntl F_OFD_GETLK (another's lock)", fd2 = shm_open(path(i), O_RDONLY, 0),
	  (gl = fl, fcntl(fd2, F_OFD_GETLK, &gl)), close(fd2));
	T("fcntl F_OFD_SETLK unlock", fd = shm_open(path(i), O_RDWR, 0),
	  fcntl(fd, F_OFD_SETLK, &ul), close(fd));
	T("shm_unlink", , shm_unlink(path(i)), );
	for (i = 0; i < n; i++)
		shm_unlink(path(i + n));
	T("futex wake, nobody waiting", ,
	  syscall(SYS_futex, &word, FUTEX_WAKE, 1, NULL, NULL, 0), );
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	T("pidfd_open", , pfd = (int)syscall(SYS_pidfd_open, child, 0), close(pfd));
	ep = epoll_create1(0);
	T("epoll_ctl ADD (pidfd)", pfd = (int)syscall(SYS_pidfd_open, child, 0),
	  epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &(struct epoll_event){ .events = EPOLLIN }),
	  (epoll_ctl(ep, EPOLL_CTL_DEL, pfd, NULL), close(pfd)));
	T("kill(pid, 0)", , kill(child, 0), );
	kill(child, SIGKILL);
	wait(NULL);
	(void)sink;
	return 0;
}
