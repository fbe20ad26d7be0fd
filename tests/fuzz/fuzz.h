/* SPDX-License-Identifier: MIT */
/*
 * What the libFuzzer harnesses (tests/fuzz/fuzz_*.c) share: reading the
 * fuzzer's input as a stream of numbers and byte strings, a private
 * /dev/shm, unique domain names, and checks that abort.
 *
 * Every harness is built twice from the same source: by `make fuzz` with
 * clang -fsanitize=fuzzer,address,undefined (build-fuzz/), and by `make
 * tests` with the normal compiler into tests/test_fuzz_replay, which feeds
 * it the files of tests/fuzz/corpus/<harness>/ and tests/fuzz/regress/
 * <harness>/ (there LLVMFuzzerTestOneInput is renamed fuzz_one_<harness>
 * on the command line, so one program holds them all).
 */
#ifndef SHMRPC_FUZZ_H
#define SHMRPC_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The entry points of every harness (renamed in the replay build). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise of the code under test: report it and abort, which
 * libFuzzer records as a crash (with the input that caused it). */
#define FUZZ_CHECK(cond)                                                                      \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                       \
			abort();                                                              \
		}                                                                             \
	} while (0)

/* The input, consumed from the front. Past its end every read gives
 * zeros, so any input is a complete script. */
struct fz {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz *f)
{
	return f->n > 0;
}

static inline uint8_t fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

/* Little-endian, so that the seed generators can write numbers plainly. */
static inline uint64_t fz_uint(struct fz *f, int bytes)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < bytes; i++)
		v |= (uint64_t)fz_u8(f) << (8 * i);
	return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
	return (uint16_t)fz_uint(f, 2);
}

static inline uint32_t fz_u32(struct fz *f)
{
	return (uint32_t)fz_uint(f, 4);
}

static inline uint64_t fz_u64(struct fz *f)
{
	return fz_uint(f, 8);
}

/* Up to @max bytes of the input into @dst; how many there were. */
static inline size_t fz_bytes(struct fz *f, void *dst, size_t max)
{
	size_t n = f->n < max ? f->n : max;

	memcpy(dst, f->p, n);
	f->p += n;
	f->n -= n;
	return n;
}

/*
 * A patch: u16 offset, u8 length, that many bytes, written into @buf of
 * @size bytes at offset % size, cut at its end. The harnesses describe
 * shared memory as a valid template plus such patches, so the fuzzer can
 * change one field without rebuilding the rest. Returns the patch's
 * offset, or -1 if the input had ended.
 */
static inline long fz_patch(struct fz *f, uint8_t *buf, size_t size)
{
	size_t off, len;

	if (!f->n || !size)
		return -1;
	off = fz_u16(f) % size;
	len = fz_u8(f);
	if (len > size - off)
		len = size - off;
	fz_bytes(f, buf + off, len);
	return (long)off;
}

/*
 * Give the calling thread a /dev/shm of its own: a new mount namespace
 * with a fresh tmpfs there (needs CAP_SYS_ADMIN; root in CI). Then the
 * harness may name files freely and nothing it makes outlives it, even if
 * it crashes. Once per process; true if it worked. Without it a harness
 * uses unique domain names in the host's /dev/shm and removes its files.
 */
bool fuzz_private_shm(void);

/* A domain name unique to this process: "<prefix>-<pid>". */
void fuzz_domain(char *buf, size_t len, const char *prefix);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_FUZZ_H */
