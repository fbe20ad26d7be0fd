/* SPDX-License-Identifier: MIT */
/*
 * Types shared by the exit probe (bpf/shmrpc_exit.bpf.c) and user space
 * (tools/probe.c). Fixed-width __u32/__s32/__u64 only: the same bytes are
 * written by the BPF program and read by a C11 program, so layout is pinned
 * by _Static_assert below. Included from BPF C after vmlinux.h (which
 * defines the __u* types) and from user space, where <linux/types.h> does.
 */
#ifndef SHMRPC_EXIT_H
#define SHMRPC_EXIT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Capacity of the `watched` map: one entry per watched process. */
#define SHMRPC_EXIT_MAX_WATCHED 65536
/* Size of the `events` ring buffer in bytes (power of two, >= page size). */
#define SHMRPC_EXIT_RINGBUF_SIZE (256 * 1024)

/*
 * Value of the `watched` map (key: __u32 tgid). Written by user space
 * (shmrpc_probe_watch), read and deleted by the probe on exit.
 */
typedef __u64 shmrpc_exit_cookie_t;

/*
 * One whole-process exit, written by the probe into `events` and read by the
 * single consumer (the reaper). All fields written by the probe.
 *
 * exit_code is in wait(2) status form, exactly what the parent's waitpid()
 * reports: WIFEXITED/WEXITSTATUS for exit(n), WIFSIGNALED/WTERMSIG for a
 * fatal signal (0x80 is added when a core was dumped).
 *
 * start_boottime_ns is the group leader's start time in ns since boot
 * (CLOCK_BOOTTIME). Divided by 1e9 / sysconf(_SC_CLK_TCK) it equals field 22
 * of /proc/PID/stat, the registry's pid-reuse guard.
 */
struct shmrpc_exit_event {
	__u32 tgid;	 /* thread-group id: the process id */
	__u32 tid;	 /* the last thread to exit */
	__s32 exit_code; /* wait(2) status */
	__u32 reserved;	 /* zero */
	__u64 cookie;	 /* the value user space stored in `watched` */
	__u64 ktime_ns;	 /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 start_boottime_ns;
	char comm[16]; /* last thread's comm, for logs only */
};

/*
 * Value of the one-entry `stats` array map; bumped atomically by the probe,
 * read by user space. A non-zero `drops` means an exit was seen but the ring
 * buffer was full: that tgid stays in `watched`, so a reconcile pass (check
 * every watched tgid is still alive) finds it.
 */
struct shmrpc_exit_stats {
	__u64 events; /* events submitted */
	__u64 drops;  /* exits lost because the ring buffer was full */
};

#ifndef __cplusplus
_Static_assert(sizeof(struct shmrpc_exit_event) == 56, "shmrpc_exit_event layout");
_Static_assert(__builtin_offsetof(struct shmrpc_exit_event, cookie) == 16,
	       "shmrpc_exit_event.cookie offset");
_Static_assert(__builtin_offsetof(struct shmrpc_exit_event, comm) == 40,
	       "shmrpc_exit_event.comm offset");
_Static_assert(sizeof(struct shmrpc_exit_stats) == 16, "shmrpc_exit_stats layout");
#endif

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_EXIT_H */
