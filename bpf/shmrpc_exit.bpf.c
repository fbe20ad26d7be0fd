// SPDX-License-Identifier: GPL-2.0
/*
 * shmrpc exit probe: report the exit of a *whole process* (thread group)
 * whose tgid user space put in `watched`, through the `events` ring buffer.
 *
 * Built twice from this file (bpf/bpf.mk):
 *   shmrpc_exit.bpf.o     SEC("tp_btf/sched_process_exit"), BTF-typed raw
 *                         tracepoint: the task is an argument;
 *   shmrpc_exit_tp.bpf.o  -DSHMRPC_EXIT_TRACEPOINT, SEC("tracepoint/sched/
 *                         sched_process_exit"), for kernels that refuse
 *                         tp_btf; the task is `current`.
 * Both read the kernel through CO-RE relocations (BPF_CORE_READ), so both need
 * a BTF description of the running kernel: /sys/kernel/btf/vmlinux or, on a
 * kernel built without it, a file given to libbpf as btf_custom_path (see
 * docs/bpf-probe.md).
 *
 * When is the process gone? kernel/exit.c, do_exit(), in every 6.x (and long
 * before) runs, on the exiting thread itself:
 *
 *     exit_signals(tsk);                           PF_EXITING
 *     group_dead = atomic_dec_and_test(&tsk->signal->live);
 *     ...
 *     tsk->exit_code = code;
 *     taskstats_exit(tsk, group_dead);
 *     trace_sched_process_exit(tsk, group_dead);   <- we run here
 *     ...exit_mm(), exit_files()...
 *     exit_notify(tsk, group_dead);                zombie, SIGCHLD, pidfd
 *
 * (A 2025 change moved the tracepoint up before exit_mm() and gave it
 * group_dead, as in 6.18; before, it sat after exit_mm(), still after the
 * decrement.) So when the
 * tracepoint fires, this thread has already taken itself out of
 * signal->live, and live == 0 means every thread of the group has passed the
 * point of no return. We read live instead of using group_dead so the same
 * code works on kernels whose tracepoint has no group_dead argument.
 *
 * Why not `pid == tgid` (the leader exits)? A leader that calls
 * pthread_exit() leaves while other threads run: that would fire early. And a
 * non-leader thread that calls execve() kills the old leader (de_thread) and
 * takes over its pid: that would fire for a process that lives on.
 *
 * Two threads can both see live == 0 (A decrements to 1, B to 0, then both
 * reach the tracepoint). The hash map delete is atomic, so whoever deletes
 * the tgid from `watched` owns the event; the other discards its reservation.
 * Exactly one event per watched process.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "shmrpc_exit.h"

char LICENSE[] SEC("license") = "GPL"; /* bpf_probe_read_kernel, ringbuf */

/*
 * include/linux/sched/signal.h: "group exit in progress". A macro, so not in
 * BTF and not relocatable: 0x4 in the 5.x and 6.x sources (tp_btf needs 5.5+);
 * much older kernels had 0x8.
 */
#define SHMRPC_SIGNAL_GROUP_EXIT 0x00000004

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHMRPC_EXIT_MAX_WATCHED);
	__type(key, __u32);		     /* tgid */
	__type(value, shmrpc_exit_cookie_t); /* cookie */
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SHMRPC_EXIT_RINGBUF_SIZE);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shmrpc_exit_stats);
} stats SEC(".maps");

/*
 * The wait(2) status the parent will see, computed as wait_task_zombie()
 * does: with SIGNAL_GROUP_EXIT, signal->group_exit_code; else the group
 * leader's exit_code. A group exit (exit_group(), a fatal signal, a core
 * dump) sets the flag. Since 6.0 so does the last thread leaving by SYS_exit
 * (synchronize_group_exit(), with its own code: measured here, a leader's
 * pthread_exit then a thread's SYS_exit(5) gives 0x500); before 6.0 that case
 * reports the leader's code, which is set: the leader has exited already or
 * is this task (do_exit() sets tsk->exit_code before the tracepoint).
 */
static __always_inline int exit_status(struct task_struct *task)
{
	unsigned int flags = BPF_CORE_READ(task, signal, flags);

	if (flags & SHMRPC_SIGNAL_GROUP_EXIT)
		return BPF_CORE_READ(task, signal, group_exit_code);
	return BPF_CORE_READ(task, group_leader, exit_code);
}

static __always_inline void count(int drop)
{
	__u32 zero = 0;
	struct shmrpc_exit_stats *s = bpf_map_lookup_elem(&stats, &zero);

	if (!s)
		return;
	/* Relaxed: plain counters, read by user space as they come. A C11
	 * atomic add whose result is unused is BPF_ATOMIC_ADD (XADD). It is
	 * clang's builtin behind <stdatomic.h>'s atomic_fetch_add_explicit:
	 * that header cannot be included here (it pulls in libc's stdint.h,
	 * whose types clash with vmlinux.h's). */
	__c11_atomic_fetch_add((_Atomic __u64 *)(drop ? &s->drops : &s->events), 1,
			       __ATOMIC_RELAXED);
}

static __always_inline int report_exit(struct task_struct *task)
{
	struct shmrpc_exit_event *e;
	__u64 *cookie;
	__u32 tgid;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0; /* other threads of the group still run */
	tgid = BPF_CORE_READ(task, tgid);
	cookie = bpf_map_lookup_elem(&watched, &tgid);
	if (!cookie)
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		/* Keep the tgid in `watched` so a reconcile pass finds it. */
		count(1);
		return 0;
	}
	e->tgid = tgid;
	e->tid = BPF_CORE_READ(task, pid);
	e->exit_code = exit_status(task);
	e->reserved = 0;
	e->cookie = *cookie;
	e->ktime_ns = bpf_ktime_get_ns();
	e->start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);

	/* The delete is the arbiter between two threads that both saw live == 0. */
	if (bpf_map_delete_elem(&watched, &tgid) != 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	/* submit publishes the record to the consumer (release, pairs with
	 * the acquire of the producer position in libbpf's ringbuf_process_ring) */
	bpf_ringbuf_submit(e, 0);
	count(0);
	return 0;
}

#ifdef SHMRPC_EXIT_TRACEPOINT
SEC("tracepoint/sched/sched_process_exit")
int shmrpc_exit(void *ctx)
{
	/* do_exit() runs on the exiting task, so current is the task. */
	return report_exit((struct task_struct *)bpf_get_current_task());
}
#else
SEC("tp_btf/sched_process_exit")
int BPF_PROG(shmrpc_exit, struct task_struct *task)
{
	/* Only the first argument: recent kernels added a second (group_dead). */
	return report_exit(task);
}
#endif
