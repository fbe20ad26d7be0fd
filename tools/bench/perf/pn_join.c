// SPDX-License-Identifier: MIT
/*
 * Scenario: N nodes join one fresh domain, one after the other, from one
 * process (the bench's join1000), then leave.
 *
 *   pn_join [--nodes N] [--pregrow]   ($SHMRPC_BACKEND picks the backend)
 *
 * --pregrow: before the first shmrpc_open (which starts the library's
 * watcher thread: from then on the descriptor table is shared, and every
 * growth of it waits for an RCU grace period), grow the table to 2048
 * entries with one F_DUPFD: what the library could do itself.
 *
 * Prints the total join time, the median join of the first and last tenth
 * (growth with the domain's size), and the total leave time.
 */
#include <fcntl.h>
#include <sys/resource.h>

#include "pn.h"
#include "shmrpc.h"

int main(int argc, char **argv)
{
	struct shmrpc_opts o = { .sz = sizeof(o) };
	struct shmrpc_node **v;
	uint64_t n = 1000, i, k;
	int64_t *t, t0, tj, tl;
	char name[32], domain[64];
	int err = 0, a, pregrow = 0;

	for (a = 1; a < argc; a++)
		if (!strcmp(argv[a], "--nodes") && a + 1 < argc)
			n = strtoull(argv[++a], NULL, 0);
		else if (!strcmp(argv[a], "--pregrow"))
			pregrow = 1;
	v = calloc(n, sizeof(*v));
	t = calloc(n, sizeof(*t));
	pn_domain(domain, sizeof(domain), "join");
	o.domain = domain;
	pn_pin(0);
	{ /* the file limit: 1000 nodes hold 1000+ descriptors */
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (pregrow) {
			int fd = fcntl(0, F_DUPFD_CLOEXEC, 2047);

			if (fd >= 0)
				close(fd);
		}
	}
	t0 = pn_now();
	for (i = 0; i < n && !err; i++) {
		snprintf(name, sizeof(name), "n%llu", (unsigned long long)i);
		t[i] = pn_now();
		err = shmrpc_open(name, &o, &v[i]);
		t[i] = pn_now() - t[i];
	}
	tj = pn_now() - t0;
	getppid();	       /* marker for strace: joins before, leaves after */
	if (getenv("PN_SLOW")) /* the joins over 1 ms, by index */
		for (i = 0; i < n; i++)
			if (t[i] > 1000000)
				printf("slow join %llu: %.2f ms\n", (unsigned long long)i,
				       (double)t[i] / 1e6);
	if (err)
		fprintf(stderr, "join %llu: %s\n", (unsigned long long)i, strerror(-err));
	k = n / 10 ? n / 10 : 1;
	t0 = pn_now();
	for (i = 0; i < n; i++)
		shmrpc_close(v[i]);
	tl = pn_now() - t0;
	{
		int64_t *a0 = malloc(k * sizeof(*a0)), *a1 = malloc(k * sizeof(*a1));
		int64_t *all = malloc(n * sizeof(*all)), sum = 0, slow = 0;

		memcpy(all, t, n * sizeof(*all));
		pn_sort(all, n);
		for (i = 0; i < n; i++) {
			sum += all[i];
			if (all[i] > 4 * pn_q(all, n, 0.5))
				slow += all[i];
		}
		printf("join: first %.1f us, median %.1f p90 %.1f p99 %.1f max %.1f us; sum %.1f ms, "
		       "of which joins > 4x the median %.1f ms\n",
		       (double)t[0] / 1e3, (double)pn_q(all, n, 0.5) / 1e3,
		       (double)pn_q(all, n, 0.9) / 1e3, (double)pn_q(all, n, 0.99) / 1e3,
		       (double)all[n - 1] / 1e3, (double)sum / 1e6, (double)slow / 1e6);

		memcpy(a0, t, k * sizeof(*a0));
		memcpy(a1, t + n - k, k * sizeof(*a1));
		pn_sort(a0, k);
		pn_sort(a1, k);
		printf("%llu joins: total %.1f ms (%.1f us each) | median join, first tenth %.1f us, "
		       "last tenth %.1f us | %llu leaves %.1f ms | backend %s\n",
		       (unsigned long long)n, (double)tj / 1e6, (double)tj / 1e3 / (double)n,
		       (double)pn_q(a0, k, 0.5) / 1e3, (double)pn_q(a1, k, 0.5) / 1e3,
		       (unsigned long long)n, (double)tl / 1e6,
		       getenv("SHMRPC_BACKEND") ? getenv("SHMRPC_BACKEND") : "default");
	}
	return err != 0;
}
