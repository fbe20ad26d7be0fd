/* SPDX-License-Identifier: MIT */
/*
 * Fault injection into libshmrpc: the interposer's controls
 * (tests/fault/interpose.c; how it is built: tests/fault/fault.mk).
 *
 * The fault build of the library is libshmrpc.a with every reference its
 * objects make to an allocation or system call that can fail renamed to
 * fault_<name> (objcopy --redefine-syms), which interpose.c defines. So the
 * interposer sees the library's calls, and only those: the test's own, the
 * harness's and cmocka's go to libc directly. It counts them, per role:
 *  - API: the calls made by the thread that armed it (fault_api_arm), from
 *    the library's code on that thread: one thread, so the N-th call is
 *    the same call at every run of the same scenario;
 *  - BG: the calls made by the threads the library starts (the peers'
 *    watcher, the futex backend's shmrpc_fd helper, shmrpc_start's
 *    thread), counted together while fault_bg_arm is on; their order can
 *    vary from run to run, which is why they are a sweep of their own.
 * Calls from any other thread pass. The N-th counted call of an armed role
 * fails, as the real call fails (the same return convention, an errno the
 * real call can return); every other call goes through. Sticky: from the
 * N-th call on, every call that fails for want of a
 * resource (ENOMEM, ENOSPC, EMFILE, ENFILE, EFBIG) fails too, as when a
 * machine stays out of memory, space or descriptors; a transient failure
 * (EINTR, EAGAIN, ENOLCK...), and a stat's ENOMEM, still happen at the N-th
 * call only, since a loop that retries them is right.
 *
 * Heap: the blocks the library allocated (calloc, realloc) and has not
 * freed are counted (fault_live_blocks), for the leak check of builds
 * without LeakSanitizer.
 */
#ifndef SHMRPC_TEST_FAULT_H
#define SHMRPC_TEST_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#define FAULT_SYM_MAX 24
#define FAULT_LOG_MAX 512

/* One call the interposer counted: its name (with what it was asked, e.g.
 * "fcntl(OFD_GETLK)", "futex(WAIT)") and the errno it fails with. */
struct fault_call {
	char sym[FAULT_SYM_MAX];
	int err;
};

enum fault_role { FAULT_NONE, FAULT_API, FAULT_BG };

/*
 * What a run did, in memory shared with the process that forked it (the
 * test's parent maps it MAP_SHARED before the fork), so that a child that
 * hangs or crashes still says which call it was failing.
 */
struct fault_shared {
	long api_calls, bg_calls; /* counted so far */
	long hit_n;		  /* the (first) call failed (its number), 0: none yet */
	int hit_role;		  /* enum fault_role */
	struct fault_call hit;
	long fails;				  /* calls failed: 1, or more when sticky */
	uint64_t errs;				  /* the errnos they failed with (1 << errno) */
	struct fault_call api_log[FAULT_LOG_MAX]; /* the API calls, in order */
	struct fault_call bg_log[FAULT_LOG_MAX];  /* the BG calls, in order */
};

/* Count into @sh from now on (NULL: the interposer's own copy). */
void fault_attach(struct fault_shared *sh);
/* This thread's library calls are counted from 0; the @n-th fails (0:
 * none), and with @sticky the later ones a lack of resources fails too.
 * The counts of both roles and the hit are reset. */
void fault_api_arm(long n, bool sticky);
/* Stop counting this thread's calls: how many there were. */
long fault_api_disarm(void);
/* The library's threads' calls are counted from 0; the @n-th fails (and
 * with @sticky, the later ones a lack of resources fails too). */
void fault_bg_arm(long n, bool sticky);
long fault_bg_disarm(void);
/* Heap blocks the library allocated and still holds. */
long fault_live_blocks(void);

#endif
