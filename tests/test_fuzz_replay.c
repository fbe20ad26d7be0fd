// SPDX-License-Identifier: MIT
/*
 * The fuzz harnesses (tests/fuzz/fuzz_*.c), built with the normal compiler,
 * fed every file of their seed corpus (tests/fuzz/corpus/<harness>/) and of
 * their regression inputs (tests/fuzz/regress/<harness>/): inputs that once
 * crashed a harness or broke one of its checks, kept so that the bug stays
 * fixed. A harness aborts on a broken check; under `make asan` the
 * sanitizers watch the replay too. `make fuzz` runs the same harnesses
 * under libFuzzer (README.md, "Fuzzing").
 *
 * bridge_wire is built only where libnats is installed (FUZZ_BRIDGE_WIRE,
 * tests/fuzz/fuzz.mk), as shmrpc-bridge is.
 *
 * $SHMRPC_FUZZ_DIR: another tests/fuzz directory to read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#ifndef FUZZ_DIR
#define FUZZ_DIR "tests/fuzz"
#endif

/* Each harness's entry points, renamed by the build (tests/fuzz/fuzz.mk). */
#define HARNESS(h)                                  \
	int fuzz_init_##h(int *argc, char ***argv); \
	int fuzz_one_##h(const uint8_t *data, size_t size)
HARNESS(ring_consumer);
HARNESS(ring_producer);
HARNESS(ring_check);
HARNESS(registry);
HARNESS(node);
HARNESS(top);
#ifdef FUZZ_BRIDGE_WIRE
HARNESS(bridge_wire);
#endif

struct harness {
	const char *name;
	int (*init)(int *argc, char ***argv);
	int (*one)(const uint8_t *data, size_t size);
};

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dot(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

/* Run every file of @dir through @h; how many, or -errno. */
static int replay_dir(const struct harness *h, const char *dir)
{
	char path[4096];
	struct dirent **v;
	int n = scandir(dir, &v, not_dot, name_cmp), i, count = 0;

	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	for (i = 0; i < n; i++) {
		struct stat st;
		uint8_t *buf;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, v[i]->d_name);
		free(v[i]);
		if (stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		buf = malloc(st.st_size ? (size_t)st.st_size : 1);
		f = fopen(path, "rb");
		assert_non_null(buf);
		assert_non_null(f);
		assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
		fclose(f);
		/* Named first: if the harness dies, the log says on what. */
		printf("  %s\n", path);
		fflush(stdout);
		h->one(buf, (size_t)st.st_size);
		free(buf);
		count++;
	}
	free(v);
	return count;
}

static void replay(const struct harness *h)
{
	const char *base = getenv("SHMRPC_FUZZ_DIR") ? getenv("SHMRPC_FUZZ_DIR") : FUZZ_DIR;
	char dir[4096];
	int argc = 1, seeds, regress;
	char *args[] = { (char *)"test_fuzz_replay", NULL }, **argv = args;

	h->init(&argc, &argv);
	snprintf(dir, sizeof(dir), "%s/corpus/%s", base, h->name);
	seeds = replay_dir(h, dir);
	snprintf(dir, sizeof(dir), "%s/regress/%s", base, h->name);
	regress = replay_dir(h, dir);
	printf("[replay] %s: %d seeds, %d regression inputs\n", h->name, seeds, regress);
	assert_true(seeds > 0); /* a harness without seeds is a harness not run */
	assert_true(regress >= 0);
}

#define REPLAY_TEST(h)                                                               \
	static void test_replay_##h(void **state)                                    \
	{                                                                            \
		static const struct harness H = { #h, fuzz_init_##h, fuzz_one_##h }; \
		(void)state;                                                         \
		replay(&H);                                                          \
	}
REPLAY_TEST(ring_consumer)
REPLAY_TEST(ring_producer)
REPLAY_TEST(ring_check)
REPLAY_TEST(registry)
REPLAY_TEST(node)
REPLAY_TEST(top)
#ifdef FUZZ_BRIDGE_WIRE
REPLAY_TEST(bridge_wire)
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_ring_consumer),
		cmocka_unit_test(test_replay_ring_producer),
		cmocka_unit_test(test_replay_ring_check),
		cmocka_unit_test(test_replay_registry),
		cmocka_unit_test(test_replay_node),
		cmocka_unit_test(test_replay_top),
#ifdef FUZZ_BRIDGE_WIRE
		cmocka_unit_test(test_replay_bridge_wire),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
