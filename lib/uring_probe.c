// SPDX-License-Identifier: MIT
/*
 * Runtime probe for io_uring futex support (declared in lib/uring_compat.h).
 *
 * Compile-time headers say nothing about the running kernel: io_uring may be
 * missing (< 5.1, or CONFIG_IO_URING=n), switched off by sysctl
 * kernel.io_uring_disabled (2: setup fails with EPERM; 1: only for members of
 * kernel.io_uring_group), refused by a seccomp filter (Docker's default
 * profile answers EPERM), or too old for the futex opcodes (< 6.7, or
 * CONFIG_FUTEX=n, where the kernel marks them unsupported). Each of these
 * shows up either as a failing io_uring_setup() or as a clear bit in
 * IORING_REGISTER_PROBE, so the probe needs nothing else.
 */
#include <errno.h>
#include <string.h>

#include "uring_compat.h"

/* Room for every opcode a u8 can name; the kernel fills up to its last op. */
#define PROBE_OPS 256

int shmrpc__uring_ring_futex(struct io_uring *ring)
{
	union {
		struct io_uring_probe p;
		unsigned char raw[sizeof(struct io_uring_probe) +
				  PROBE_OPS * sizeof(struct io_uring_probe_op)];
	} probe;
	int err;

	/* The kernel rejects a probe buffer that is not all zero. */
	memset(&probe, 0, sizeof(probe));
	err = io_uring_register_probe(ring, &probe.p, PROBE_OPS);
	if (err == -ENOMEM || err == -EAGAIN)
		return -ENOMEM; /* the kernel's copy of the table: try again later */
	if (err < 0)
		return 0; /* no IORING_REGISTER_PROBE (before 5.6): no futex ops either */
	return io_uring_opcode_supported(&probe.p, IORING_OP_FUTEX_WAIT) &&
	       io_uring_opcode_supported(&probe.p, IORING_OP_FUTEX_WAKE);
}

int shmrpc__uring_futex_supported(void)
{
	struct io_uring ring;
	int saved_errno = errno; /* liburing may be built on libc syscalls */
	int ok = 0;

	if (io_uring_queue_init(2, &ring, 0) < 0)
		goto out;
	ok = shmrpc__uring_ring_futex(&ring) > 0;
	io_uring_queue_exit(&ring);
out:
	errno = saved_errno;
	return ok;
}
