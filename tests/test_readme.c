// SPDX-License-Identifier: MIT
/*
 * The README's example, as the README shows it: scripts/readme-example.sh
 * cuts it out of README.md into readme_example(), which this test runs
 * against a real "camera" node, and without one (its wait fails, and the
 * example must say so and return the error). The example's domain is
 * "robot", a name a real deployment may use: each run is in a private
 * mount namespace with its own tmpfs at /dev/shm (root only; elsewhere the
 * build of the example is the whole check).
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>

#include "harness.h"

#define SKIP_RC 77

int readme_example(void);

/* The node the example talks to: gets "start", answers, gets "stop". */
static int camera(void *arg)
{
	struct shmrpc_opts o = { .sz = sizeof(o), .domain = "robot" };
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	struct shmrpc_node *n;
	int len;

	(void)arg;
	CHILD_CHECK_RC(shmrpc_open("camera", &o, &n), 0);
	len = shmrpc_recv(n, buf, sizeof(buf), from, 10000);
	CHILD_CHECK(len == 5 && !memcmp(buf, "start", 5) && !strcmp(from, "planner"));
	shmrpc_send(n, from, "ok", 2, 1000); /* the example may have stopped listening */
	len = shmrpc_recv(n, buf, sizeof(buf), from, 10000);
	CHILD_CHECK(len == 4 && !memcmp(buf, "stop", 4));
	shmrpc_close(n);
	return 0;
}

/* In a child: a private /dev/shm, then @with_camera or not. */
static int in_private_shm(void *arg)
{
	bool with_camera = arg != NULL;
	pid_t cam = 0;
	int rc;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=1777")) {
		fprintf(stderr, "private /dev/shm: %s\n", strerror(errno));
		return SKIP_RC;
	}
	if (with_camera)
		cam = th_fork(camera, NULL);
	rc = readme_example();
	if (with_camera) {
		CHILD_CHECK_RC(rc, 0);
		CHILD_CHECK_RC(th_wait(cam, 20000), 0);
	} else {
		CHILD_CHECK_RC(rc, -ETIMEDOUT);
		CHILD_CHECK(strstr(shmrpc_last_error(), "camera") != NULL);
	}
	CHILD_CHECK_RC(th_shm_count("robot"), 0); /* the private /dev/shm */
	return 0;
}

static void run_case(bool with_camera)
{
	int rc;

	if (geteuid() != 0)
		skip();
	rc = th_wait(th_fork(in_private_shm, with_camera ? "yes" : NULL), 30000);
	if (rc == SKIP_RC)
		skip();
	assert_int_equal(rc, 0);
}

static void test_readme_example_talks_to_camera(void **state)
{
	(void)state;
	run_case(true);
}

static void test_readme_example_reports_a_missing_camera(void **state)
{
	(void)state;
	run_case(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readme_example_talks_to_camera),
		cmocka_unit_test(test_readme_example_reports_a_missing_camera),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
