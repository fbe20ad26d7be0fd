// SPDX-License-Identifier: MIT
/*
 * Every process a test or the demo starts ends when its parent dies (issue
 * 9): th_fork's children and shmrpc-demo's nodes get SIGKILL from the
 * kernel (PR_SET_PDEATHSIG) when their parent goes, so a failed or killed
 * run leaves no process behind blocked forever in a receive (the demo's
 * nodes were seen so, in io_cqring_wait, after the demo was killed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"

#define GONE_MS 2000 /* "within a second or two" */

/* 0 once every pidfd in @fds says its process ended, -1 after @ms. */
static int all_gone(const int *fds, int n, int ms)
{
	double end = th_now_ms() + ms;
	int i;

	for (i = 0; i < n; i++) {
		struct pollfd p = { fds[i], POLLIN, 0 };
		int left = (int)(end - th_now_ms());

		if (left < 0 || poll(&p, 1, left) != 1)
			return -1;
	}
	return 0;
}

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* ------------------------------------------------------------ th_fork */

static int sleeper(void *arg)
{
	(void)arg;
	sleep(30); /* without PDEATHSIG: outlives the test */
	return 0;
}

static int middle(void *arg)
{
	int *fd = arg;
	pid_t g = th_fork(sleeper, NULL);

	CHILD_CHECK(g > 0 && write(*fd, &g, sizeof(g)) == sizeof(g));
	for (;;)
		pause(); /* killed here */
}

static void test_th_fork_child_dies_with_its_parent(void **state)
{
	int fds[2], gfd;
	pid_t mid, g = -1;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	mid = th_fork(middle, &fds[1]);
	assert_int_equal(read(fds[0], &g, sizeof(g)), sizeof(g));
	gfd = pidfd_of(g);
	assert_true(gfd >= 0);
	assert_int_equal(kill(mid, SIGKILL), 0);
	assert_int_equal(th_wait(mid, 5000), 128 + SIGKILL);
	assert_int_equal(all_gone(&gfd, 1, GONE_MS), 0);
	close(gfd);
	close(fds[0]);
	close(fds[1]);
}

/* ------------------------------------------------------------ the demo */

/* Children of @parent, from /proc: their pidfds in @fds; how many. */
static int children_of(pid_t parent, int *fds, int max)
{
	char path[300], buf[512], *p;
	struct dirent *e;
	int n = 0, fd, ppid;
	DIR *dir = opendir("/proc");
	ssize_t len;

	while (dir && n < max && (e = readdir(dir))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		p = strrchr(buf, ')'); /* then " S ppid" */
		if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid != parent)
			continue;
		fds[n] = pidfd_of(atoi(e->d_name));
		if (fds[n] >= 0)
			n++;
	}
	if (dir)
		closedir(dir);
	return n;
}

/* Unlink every file of @domain in /dev/shm; how many. */
static int remove_domain(const char *domain)
{
	char prefix[64], path[300];
	DIR *dir = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	snprintf(prefix, sizeof(prefix), "shmrpc.%s.", domain);
	while (dir && (e = readdir(dir))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		n += unlink(path) == 0;
	}
	if (dir)
		closedir(dir);
	return n;
}

static void test_demo_nodes_die_with_the_demo(void **state)
{
	char self[PATH_MAX], bin[PATH_MAX + 32], domain[32];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	double end;
	int fds[8], n = 0, i, null;
	pid_t demo;

	(void)state;
	assert_true(len > 0);
	self[len] = '\0';
	snprintf(bin, sizeof(bin), "%s/../tools/shmrpc-demo", dirname(self));
	if (access(bin, X_OK)) {
		print_message("skip: %s not built\n", bin);
		skip();
	}
	demo = th_fork_raw();
	if (demo == 0) {
		null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(bin, bin, (char *)NULL);
		_exit(127);
	}
	assert_true(demo > 0);
	/* its three nodes (sensor, logger, actuator) */
	for (end = th_now_ms() + 20000; th_now_ms() < end; usleep(2000)) {
		for (i = 0; i < n; i++)
			close(fds[i]);
		n = children_of(demo, fds, 8);
		if (n >= 3)
			break;
	}
	print_message("demo %d runs %d child processes: killing it\n", (int)demo, n);
	assert_true(n >= 3);
	assert_int_equal(kill(demo, SIGKILL), 0);
	assert_int_equal(th_wait(demo, 5000), 128 + SIGKILL);
	assert_int_equal(all_gone(fds, n, GONE_MS), 0);
	for (i = 0; i < n; i++)
		close(fds[i]);
	/* Killed, they closed nothing: their files are the test's to remove
	 * (a later join of the domain or the reaper would reclaim them). */
	snprintf(domain, sizeof(domain), "demo-%d", (int)demo);
	print_message("removing the killed demo's %d files\n", remove_domain(domain));
	assert_int_equal(th_shm_count(domain), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_th_fork_child_dies_with_its_parent),
		cmocka_unit_test(test_demo_nodes_die_with_the_demo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
