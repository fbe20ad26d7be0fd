// SPDX-License-Identifier: MIT
/*
 * The shared library loaded with dlopen and unloaded with dlclose, as a
 * binding's runtime may do (cffi at interpreter exit): threads it started
 * (the peers' watcher, the futex backend's shmrpc_fd helper) outlive every
 * node by design, so its code must stay mapped after dlclose, or the next
 * time one of them wakes the process dies with SIGSEGV (seen once in
 * test_python's echo peer). libshmrpc.so is linked with -z nodelete.
 *
 * Links no libshmrpc itself: it dlopens the build's libshmrpc.so.
 */
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "shmrpc.h"

typedef int (*open_fn)(const char *, const struct shmrpc_opts *, struct shmrpc_node **);
typedef void (*close_fn)(struct shmrpc_node *);
typedef int (*send_fn)(struct shmrpc_node *, const char *, const void *, size_t, int);
typedef int (*recv_fn)(struct shmrpc_node *, void *, size_t, char *, int);
typedef int (*fd_fn)(struct shmrpc_node *);

static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, "libshmrpc.so") != NULL;
	if (f)
		fclose(f);
	return n;
}

static void test_dlclose_keeps_the_code_its_threads_run(void **state)
{
	struct shmrpc_opts o = { .sz = sizeof(o) };
	struct shmrpc_node *a = NULL, *b = NULL;
	struct timespec ts = { 0, 300 * 1000000L };
	char dom[32], buf[8];
	void *h;
	int before;

	(void)state;
	snprintf(dom, sizeof(dom), "unload%d", (int)getpid());
	o.domain = dom;
	before = threads();
	h = dlopen(SHMRPC_LIB_SO, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	open_fn op = (open_fn)dlsym(h, "shmrpc_open");
	close_fn cl = (close_fn)dlsym(h, "shmrpc_close");
	send_fn sd = (send_fn)dlsym(h, "shmrpc_send");
	recv_fn rv = (recv_fn)dlsym(h, "shmrpc_recv");
	fd_fn fd = (fd_fn)dlsym(h, "shmrpc_fd");
	assert_true(op && cl && sd && rv && fd);
	assert_int_equal(op("a", &o, &a), 0);
	assert_int_equal(op("b", &o, &b), 0);
	assert_true(fd(b) >= 0); /* the futex backend's helper thread, if that backend */
	assert_int_equal(sd(a, "b", "hi", 2, 1000), 0);
	assert_int_equal(rv(b, buf, sizeof(buf), NULL, 1000), 2);
	cl(a);
	cl(b);
	print_message("[observed] threads: %d before, %d after the nodes closed\n", before,
		      threads());
	assert_true(mapped() > 0);
	assert_int_equal(dlclose(h), 0);
	/* ours: the code stays for the threads that outlive the nodes */
	assert_true(mapped() > 0);
	nanosleep(&ts, NULL); /* they may wake meanwhile: still here */
	assert_true(mapped() > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dlclose_keeps_the_code_its_threads_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
