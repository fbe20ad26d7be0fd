// SPDX-License-Identifier: MIT
/*
 * The processes of shmrpc-bridge-bench: one nats-server on 127.0.0.1 at a
 * free port, two "hosts" (a mount namespace each, with a tmpfs at
 * /dev/shm), a shmrpc-bridge in each. Every one dies with the bench
 * (PR_SET_PDEATHSIG) and is killed by bb_stop_all.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bb_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

pid_t bb_fork(void)
{
	pid_t parent = getpid(), pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
	}
	return pid;
}

int bb_wait(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void to_log(const struct bb_env *e, const char *name)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s.log", e->logdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
}

int bb_nats_start(struct bb_env *e)
{
	char path[160], buf[256] = "", *p;
	int i;
	FILE *f;

	e->nats = bb_fork();
	if (e->nats == 0) {
		to_log(e, "nats-server");
		execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", "-1",
		       "--ports_file_dir", e->logdir, (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/nats-server_%d.ports", e->logdir, (int)e->nats);
	for (i = 0; i < 500; i++, sleep_ms(10)) {
		if (!(f = fopen(path, "r")))
			continue;
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
		fclose(f);
		p = strstr(buf, "\"nats\":[\"");
		if (p && sscanf(p + 9, "%63[^\"]", e->url) == 1)
			return 0;
	}
	fprintf(stderr, "bridge-bench: nats-server did not start (%s/nats-server.log)\n",
		e->logdir);
	return -1;
}

static int host_main(int fd)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=1777")) {
		fprintf(stderr, "bridge-bench: mount namespace: %s\n", strerror(errno));
		_exit(1);
	}
	if (write(fd, "x", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

int bb_host_enter(const struct bb_env *e, int i)
{
	char path[64];
	int fd, rc;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)e->host[i]);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNS);
	close(fd);
	return rc;
}

static int bridge_start(struct bb_env *e, int i)
{
	char name[16], log[24];

	snprintf(name, sizeof(name), "h%d", i);
	snprintf(log, sizeof(log), "bridge-%d", i);
	e->bridge[i] = bb_fork();
	if (e->bridge[i] == 0) {
		to_log(e, log);
		if (bb_host_enter(e, i))
			_exit(98);
		if (e->spin_us[0]) /* else the bridge's default */
			execl(e->bridge_bin, e->bridge_bin, "-d", e->domain, "-s", e->url, "-H",
			      name, "--log", "warn", "--spin-us", e->spin_us, (char *)NULL);
		else
			execl(e->bridge_bin, e->bridge_bin, "-d", e->domain, "-s", e->url, "-H",
			      name, "--log", "warn", (char *)NULL);
		_exit(127);
	}
	return 0;
}

int bb_hosts_start(struct bb_env *e)
{
	int i, p[2];
	char c;

	for (i = 0; i < 2; i++) {
		if (pipe(p))
			return -1;
		e->host[i] = bb_fork();
		if (e->host[i] == 0)
			host_main(p[1]);
		close(p[1]);
		if (read(p[0], &c, 1) != 1) {
			close(p[0]);
			return -1;
		}
		close(p[0]);
		bridge_start(e, i);
	}
	sleep_ms(300); /* both bridges connected and subscribed */
	return 0;
}

void bb_stop_all(struct bb_env *e)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (e->bridge[i] > 0) {
			kill(e->bridge[i], SIGTERM);
			bb_wait(e->bridge[i]);
		}
		if (e->host[i] > 0) {
			kill(e->host[i], SIGKILL);
			bb_wait(e->host[i]);
		}
	}
	if (e->nats > 0) {
		kill(e->nats, SIGKILL);
		bb_wait(e->nats);
	}
}
