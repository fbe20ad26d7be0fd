/* SPDX-License-Identifier: MIT */
/*
 * io_uring futex opcodes for liburing 2.3 (Debian 12), which predates them:
 * the opcode numbers, the futex2 size flag, and SQE builders that fill every
 * byte the way the kernel's io_uring/futex.c reads it:
 *
 *	field (offset)	FUTEX_WAIT / FUTEX_WAKE		FUTEX_WAITV
 *	opcode (0)	51 / 52				53
 *	flags (1)	0 (caller may add IOSQE_* after prep)
 *	fd (4)		futex2 flags: FUTEX2_SIZE_U32	0
 *	off (8)		expected value / wake count	0
 *	addr (16)	address of the 32-bit word	address of futex_waitv[]
 *	len (24)	0 (else -EINVAL)		number of entries, 1..128
 *	op_flags (28)	0 (sqe->futex_flags, else -EINVAL)
 *	user_data (32)	caller's
 *	addr3 (48)	bitset mask 0xffffffff		0 (else -EINVAL)
 *	everything else 0 (buf_index and file_index must be, ioprio and
 *	personality are generic and must stay 0 for us)
 *
 * The futex2 flags never include FUTEX2_PRIVATE: our words live in MAP_SHARED
 * memory and are woken from other processes. A private futex is keyed by
 * (mm, address) and a shared one by (inode, offset), so a private waiter never
 * sees a shared wake or any wake from another process; on one build of
 * 6.18.44 (not another) a private io_uring wait armed before the process's
 * first thread starts is even lost to private wakes (tests/test_uring_compat.c
 * observes all three). The kernel compares the word with the expected value
 * only when the wait is armed; see docs/uring-notes.md for what else was
 * measured.
 *
 * The SQE builders are header-only; shmrpc__uring_futex_supported() has a body
 * (lib/uring_probe.c) because it sets up and tears down a ring, which no
 * caller wants inlined, and its prototype sits here so that the io_uring
 * backend needs one include. Internal and C11 only (_Atomic, _Static_assert),
 * like every lib/ header, hence no extern "C". liburing 2.3's own header needs
 * _GNU_SOURCE (sigset_t, AT_FDCWD), which the Makefile defines.
 *
 * Checked against liburing 2.3 (macros) and liburing master (its enum).
 */
#ifndef SHMRPC_URING_COMPAT_H
#define SHMRPC_URING_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <liburing.h>
#include <linux/futex.h>

/*
 * Opcodes. The kernel's uapi enum io_uring_op numbers them ... URING_CMD 46,
 * SEND_ZC 47, SENDMSG_ZC 48, READ_MULTISHOT 49, WAITID 50, FUTEX_WAIT 51,
 * FUTEX_WAKE 52, FUTEX_WAITV 53 (Linux 6.7). liburing's header has them as
 * enum constants from 2.6 on, which #ifndef cannot see, so the version macros
 * (liburing >= 2.4) decide; older headers get macros.
 */
#if defined(IO_URING_VERSION_MAJOR) && defined(IO_URING_CHECK_VERSION)
#if !IO_URING_CHECK_VERSION(2, 6)
#define SHMRPC__LIBURING_HAS_FUTEX 1
#endif
#endif

#ifndef SHMRPC__LIBURING_HAS_FUTEX
/* The header stops before the futex opcodes, so 51..53 cannot collide. */
_Static_assert(IORING_OP_SENDMSG_ZC == 48, "uapi io_uring_op numbering changed");
_Static_assert(IORING_OP_LAST <= 51, "installed io_uring.h already has op 51");
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef IORING_OP_FUTEX_WAKE
#define IORING_OP_FUTEX_WAKE 52
#endif
#ifndef IORING_OP_FUTEX_WAITV
#define IORING_OP_FUTEX_WAITV 53
#endif
#endif /* !SHMRPC__LIBURING_HAS_FUTEX */

_Static_assert(IORING_OP_FUTEX_WAIT == 51, "uapi: IORING_OP_FUTEX_WAIT is 51");
_Static_assert(IORING_OP_FUTEX_WAKE == 52, "uapi: IORING_OP_FUTEX_WAKE is 52");
_Static_assert(IORING_OP_FUTEX_WAITV == 53, "uapi: IORING_OP_FUTEX_WAITV is 53");

/* futex2 flags (uapi linux/futex.h, 6.7): size 0x03 mask, PRIVATE = 128. */
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
_Static_assert(FUTEX2_SIZE_U32 == 2, "uapi: FUTEX2_SIZE_U32 is 2");
#ifdef FUTEX_32
_Static_assert(FUTEX_32 == FUTEX2_SIZE_U32, "futex_waitv's FUTEX_32 is FUTEX2_SIZE_U32");
#endif

/* Wait and wake with all bits: plain FUTEX_WAIT/FUTEX_WAKE semantics. */
#define SHMRPC__FUTEX_MASK_ANY 0xffffffffu
#ifdef FUTEX_BITSET_MATCH_ANY
_Static_assert(FUTEX_BITSET_MATCH_ANY == SHMRPC__FUTEX_MASK_ANY, "uapi bitset mask");
#endif

/* The kernel ABI the builders and tests rely on (struct io_uring_sqe). */
_Static_assert(sizeof(struct io_uring_sqe) == 64, "io_uring_sqe is 64 bytes");
_Static_assert(offsetof(struct io_uring_sqe, fd) == 4, "sqe->fd at 4");
_Static_assert(offsetof(struct io_uring_sqe, off) == 8, "sqe->off at 8");
_Static_assert(offsetof(struct io_uring_sqe, addr) == 16, "sqe->addr at 16");
_Static_assert(offsetof(struct io_uring_sqe, len) == 24, "sqe->len at 24");
_Static_assert(offsetof(struct io_uring_sqe, rw_flags) == 28, "sqe op flags at 28");
_Static_assert(offsetof(struct io_uring_sqe, user_data) == 32, "sqe->user_data at 32");
_Static_assert(offsetof(struct io_uring_sqe, addr3) == 48, "sqe->addr3 at 48");

/*
 * shmrpc__prep_futex_wait - make @sqe wait on the shared 32-bit word @uaddr
 * @val:	the value the caller last read from @uaddr
 *
 * When submitted, the kernel compares *@uaddr with @val once: if they differ
 * the CQE (res -EAGAIN) is posted before io_uring_enter() returns; otherwise
 * the wait stays armed, whatever later happens to the word, until a futex
 * wake (futex(2) FUTEX_WAKE without the private flag, or an io_uring
 * FUTEX_WAKE) posts res 0, or it is cancelled (res -ECANCELED).
 * Overwrites all 64 bytes of @sqe; set sqe->flags (IOSQE_IO_LINK...) after.
 */
static inline void shmrpc__prep_futex_wait(struct io_uring_sqe *sqe, const _Atomic uint32_t *uaddr,
					   uint32_t val, uint64_t user_data)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_FUTEX_WAIT;
	sqe->fd = FUTEX2_SIZE_U32;
	sqe->off = val;
	sqe->addr = (uint64_t)(uintptr_t)uaddr;
	sqe->addr3 = SHMRPC__FUTEX_MASK_ANY;
	sqe->user_data = user_data;
}

/*
 * shmrpc__prep_futex_wake - make @sqe wake up to @nr waiters of @uaddr
 *
 * Wakes waiters in any process, whether they sleep in futex(2), futex_waitv(2)
 * or an io_uring FUTEX_WAIT/WAITV. The CQE's res is the number woken (0 when
 * nobody waited) or -errno. Overwrites all 64 bytes of @sqe.
 */
static inline void shmrpc__prep_futex_wake(struct io_uring_sqe *sqe, const _Atomic uint32_t *uaddr,
					   uint32_t nr, uint64_t user_data)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_FUTEX_WAKE;
	sqe->fd = FUTEX2_SIZE_U32;
	sqe->off = nr;
	sqe->addr = (uint64_t)(uintptr_t)uaddr;
	sqe->addr3 = SHMRPC__FUTEX_MASK_ANY;
	sqe->user_data = user_data;
}

/*
 * shmrpc__futex_waitv_set - fill one entry of a futex_waitv array
 *
 * Shared (non-private) 32-bit futex, as for the single wait.
 */
static inline void shmrpc__futex_waitv_set(struct futex_waitv *w, const _Atomic uint32_t *uaddr,
					   uint32_t val)
{
	memset(w, 0, sizeof(*w));
	w->val = val;
	w->uaddr = (uint64_t)(uintptr_t)uaddr;
	w->flags = FUTEX2_SIZE_U32;
}

/*
 * shmrpc__prep_futex_waitv - make @sqe wait on any of @nr words in @vec
 * @nr:		1..FUTEX_WAITV_MAX (128), else the CQE carries -EINVAL
 *
 * The kernel copies @vec at submission, so it may be reused once
 * io_uring_submit() returns. res is the index of the woken entry, -EAGAIN
 * when an entry did not match at arm time, or -ECANCELED.
 * Overwrites all 64 bytes of @sqe.
 */
static inline void shmrpc__prep_futex_waitv(struct io_uring_sqe *sqe, const struct futex_waitv *vec,
					    uint32_t nr, uint64_t user_data)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_FUTEX_WAITV;
	sqe->addr = (uint64_t)(uintptr_t)vec;
	sqe->len = nr;
	sqe->user_data = user_data;
}

/*
 * shmrpc__uring_get_sqe - a free SQE of @ring, submitting what is queued
 * first if there is none; NULL if that fails too.
 */
static inline struct io_uring_sqe *shmrpc__uring_get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe && io_uring_submit(ring) >= 0)
		sqe = io_uring_get_sqe(ring);
	return sqe;
}

/*
 * shmrpc__uring_futex_supported - can this process use io_uring futex ops?
 *
 * Returns 1 if io_uring_setup() works here and the kernel lists
 * IORING_OP_FUTEX_WAIT and IORING_OP_FUTEX_WAKE as supported, else 0 (old
 * kernel, io_uring_disabled, seccomp, out of memory). Never fails otherwise,
 * never touches errno. Costs a ring setup and teardown: call once per open,
 * not per operation. Not cached, so that a child that tightened its seccomp
 * filter after fork gets its own answer. Defined in lib/uring_probe.c.
 */
int shmrpc__uring_futex_supported(void);

/*
 * shmrpc__uring_ring_futex - does @ring's kernel have IORING_OP_FUTEX_WAIT
 * and IORING_OP_FUTEX_WAKE? 1 yes, 0 no, -ENOMEM when the kernel could not
 * allocate the probe (not an answer: ask again later). Defined in
 * lib/uring_probe.c.
 */
int shmrpc__uring_ring_futex(struct io_uring *ring);

#endif /* SHMRPC_URING_COMPAT_H */
