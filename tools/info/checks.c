// SPDX-License-Identifier: MIT
/*
 * shmrpc-info's checks (info.h). The library answers "can this backend
 * work" (shmrpc_backend_available); these say why not, in the terms an
 * administrator can act on.
 */
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <liburing.h>

#include "info.h"
#include "shmrpc_exit.skel.h"
#include "shmrpc_exit_tp.skel.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* liburing 2.3's headers predate it */
#define IORING_OP_FUTEX_WAKE 52
#endif
#define PROBE_OPS 256

/* The first line of /proc/sys/kernel/@name as a number, or -1. */
static long sysctl_num(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void setup_why(char *why, size_t len, int err)
{
	long disabled = sysctl_num("io_uring_disabled");

	if (err == -ENOSYS)
		snprintf(why, len, "io_uring_setup: not in this kernel (CONFIG_IO_URING=n)");
	else if (err == -EPERM && disabled == 2)
		snprintf(why, len, "io_uring disabled: kernel.io_uring_disabled = 2");
	else if (err == -EPERM && disabled == 1)
		snprintf(why, len,
			 "io_uring disabled for this user: kernel.io_uring_disabled = 1 and not "
			 "in kernel.io_uring_group (%ld)",
			 sysctl_num("io_uring_group"));
	else if (err == -EPERM)
		snprintf(why, len,
			 "io_uring_setup refused (EPERM): a seccomp filter (Docker's default "
			 "profile) or a security module");
	else
		snprintf(why, len, "io_uring_setup: %s", strerror(-err));
}

int info_uring_why(char *why, size_t len)
{
	union {
		struct io_uring_probe p;
		unsigned char raw[sizeof(struct io_uring_probe) +
				  PROBE_OPS * sizeof(struct io_uring_probe_op)];
	} probe;
	struct io_uring ring;
	struct utsname u;
	int err, ok = 0;

	why[0] = '\0';
	err = io_uring_queue_init(2, &ring, 0);
	if (err < 0) {
		setup_why(why, len, err);
		return 0;
	}
	memset(&probe, 0, sizeof(probe));
	err = io_uring_register_probe(&ring, &probe.p, PROBE_OPS);
	if (err < 0) {
		snprintf(why, len, "IORING_REGISTER_PROBE: %s", strerror(-err));
	} else if (!io_uring_opcode_supported(&probe.p, IORING_OP_FUTEX_WAIT) ||
		   !io_uring_opcode_supported(&probe.p, IORING_OP_FUTEX_WAKE)) {
		uname(&u);
		snprintf(why, len,
			 "io_uring has no IORING_OP_FUTEX_WAIT/WAKE (Linux 6.7+ with "
			 "CONFIG_FUTEX; this is %s)",
			 u.release);
	} else {
		ok = 1;
	}
	io_uring_queue_exit(&ring);
	return ok;
}

int info_futex_waitv(void)
{
	/* No futexes is EINVAL where the call exists. */
	return syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0) == 0 || errno != ENOSYS;
}

/* ------------------------------------------------------------ BPF */

/* libbpf's last warning, which names what the kernel refused. */
static char bpf_msg[INFO_WHY_MAX];

static int bpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strcspn(line, "\n");
	if (n && strncmp(line, "libbpf: prog", 12) && !strstr(line, "-- BEGIN") &&
	    !strstr(line, "-- END"))
		snprintf(bpf_msg, sizeof(bpf_msg), "%.*s", (int)n, line);
	return 0;
}

static void probe_why(struct info_probe *p, int err, bool tp_btf)
{
	if (err == -EPERM || err == -EACCES)
		snprintf(p->why, sizeof(p->why),
			 "not permitted (%s): needs root, or CAP_BPF and CAP_PERFMON",
			 strerror(-err));
	else if (tp_btf && access("/sys/kernel/btf/vmlinux", R_OK))
		snprintf(p->why, sizeof(p->why),
			 "no /sys/kernel/btf/vmlinux: tp_btf needs the kernel's own BTF");
	else
		snprintf(p->why, sizeof(p->why), "%s%s%.100s", strerror(-err),
			 bpf_msg[0] ? ": " : "", bpf_msg);
}

void info_probe_check(struct info_probe out[2])
{
	libbpf_print_fn_t old = libbpf_set_print(bpf_print);
	struct shmrpc_exit_bpf *b;
	struct shmrpc_exit_tp_bpf *t;
	int err;

	out[0] = (struct info_probe){ .name = "tp_btf" };
	out[1] = (struct info_probe){ .name = "tracepoint" };
	bpf_msg[0] = '\0';
	b = shmrpc_exit_bpf__open();
	err = b ? shmrpc_exit_bpf__load(b) : -errno;
	out[0].loads = !err;
	if (err)
		probe_why(&out[0], err, true);
	shmrpc_exit_bpf__destroy(b);
	bpf_msg[0] = '\0';
	t = shmrpc_exit_tp_bpf__open();
	err = t ? shmrpc_exit_tp_bpf__load(t) : -errno;
	out[1].loads = !err;
	if (err)
		probe_why(&out[1], err, false);
	shmrpc_exit_tp_bpf__destroy(t);
	libbpf_set_print(old);
}

bool info_is_bpffs(const char *dir)
{
	struct statfs st;

	return !statfs(dir, &st) && st.f_type == BPF_FS_MAGIC;
}

int info_probe_pinned(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/watched", dir);
	if (!access(path, F_OK))
		return 1;
	return errno == ENOENT ? 0 : -errno;
}
