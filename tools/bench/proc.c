// SPDX-License-Identifier: MIT
/*
 * Child processes of the benchmark: every process it forks (sides, group
 * members, victims, strace, gnuplot) dies with the process that forked it.
 * Calls no other file of the benchmark.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "bench.h"

pid_t bench_fork(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the driver died before the prctl */
			_exit(1);
	}
	return pid;
}
