/* SPDX-License-Identifier: MIT */
/*
 * shmrpc-info: what libshmrpc can do on this machine, and why not.
 *
 *   main.c     command line and report
 *   checks.c   why a wake backend is unavailable; whether the eBPF exit
 *              probe loads here (both objects, loaded and dropped, never
 *              attached or pinned)
 *
 * The domains present come from shmrpc-top's scan (tools/top), read-only.
 */
#ifndef SHMRPC_INFO_H
#define SHMRPC_INFO_H

#include <stdbool.h>
#include <stddef.h>

#define INFO_WHY_MAX 160

/*
 * Why io_uring's futex operations cannot be used here ("" when they can):
 * io_uring_setup's error and its likely cause (kernel.io_uring_disabled,
 * seccomp, no io_uring), or the missing opcode and the kernel's version.
 * Returns 1 when usable, 0 when not.
 */
int info_uring_why(char *why, size_t len);
/* futex_waitv(2) (Linux 5.16+): 1 present, 0 missing. */
int info_futex_waitv(void);

/* One object of the exit probe: "tp_btf" or "tracepoint". */
struct info_probe {
	const char *name;
	bool loads;
	char why[INFO_WHY_MAX]; /* when it does not */
};
/* Load each object of the probe (not attached, not pinned), then drop it. */
void info_probe_check(struct info_probe out[2]);
/* Is @dir on a bpffs mount? */
bool info_is_bpffs(const char *dir);
/* Is a probe pinned in @dir (its `watched` map)? 1, 0, or -errno when this
 * user cannot look. */
int info_probe_pinned(const char *dir);

#endif /* SHMRPC_INFO_H */
