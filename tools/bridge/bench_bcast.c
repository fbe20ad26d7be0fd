// SPDX-License-Identifier: MIT
/*
 * The broadcast row of shmrpc-bridge-bench. Bridged: a sender on host 0
 * calls shmrpc_broadcast (256 B) n times; the sending bridge publishes
 * each as one BCAST on shmrpc.<D>.b (bcast.c) and the bridge of host 1
 * fans it out to k receiver nodes (dlv.c). Plain: one libnats publisher
 * publishes n messages of 256 B on one subject, k processes take them on
 * sync subscriptions: NATS' own fan-out. Each receiver is a process that
 * counts what it gets, first to last; the row is broadcasts per second
 * delivered to all k (the fewest any receiver got, over the earliest first
 * to the latest last), and the slowest receiver's own rate.
 *
 * The sender's shmrpc_broadcast counts the k proxies and the control node
 * of host 0's bridge: a return below k + 1 is a broadcast not delivered
 * to all, counted. The sending bridge's status segment (read-only, its
 * seqlock) says how many BCASTs went out and how many copies went alone on
 * their node's stream: the point of the row is one NATS message per
 * broadcast. Reported only, no target.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "shmrpc.h"
#include "status.h"

#define SIZE 256
#define SUBJ "bb.bc"
#define RESULT_MS 120000 /* the longest a side may take */

/* What a receiver writes back. */
struct rx {
	uint64_t got;
	double first, last; /* bb_now_us() */
};

/* What the bridged sender writes back. */
struct tx {
	uint64_t short_ret, failed;
	int min_ret;
	double us; /* the n calls */
};

struct bc_cnt {
	uint64_t bcasts, copies, alone;
};

static bool is_stop(const void *data, int len)
{
	return len == 4 && !memcmp(data, "stop", 4);
}

static void count(struct rx *r)
{
	r->last = bb_now_us();
	if (!r->got++)
		r->first = r->last;
}

/* read(2) of exactly len bytes within ms: 0, or -1 */
static int get_within(int fd, void *p, size_t len, int ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	if (poll(&pf, 1, ms) != 1)
		return -1;
	return read(fd, p, len) == (ssize_t)len ? 0 : -1;
}

/* ------------------------------------------------------------ receivers */

/* Node bc<i> on host 1: count 256 B messages until "stop" (its sender's
 * order: after every broadcast) or 5 s without any. */
static int shm_rx(const struct bb_env *e, int i, int ready, int out)
{
	char name[16], buf[SIZE];
	struct shmrpc_node *nd;
	struct rx r = { 0 };
	int len, ms = 30000; /* the sender first waits for its proxies */

	snprintf(name, sizeof(name), "bc%d", i);
	if (!(nd = bb_node_in(e, 1, name)) || write(ready, "x", 1) != 1)
		return 1;
	while ((len = shmrpc_recv(nd, buf, sizeof(buf), NULL, ms)) >= 0 && !is_stop(buf, len)) {
		if (len == SIZE)
			count(&r);
		ms = 5000;
	}
	shmrpc_close(nd);
	return write(out, &r, sizeof(r)) != sizeof(r);
}

static int nats_rx(const struct bb_env *e, int ready, int out)
{
	natsConnection *nc = bb_nats_conn(e->url, false);
	natsSubscription *s = nc ? bb_nats_sub(nc, SUBJ) : NULL;
	struct rx r = { 0 };
	int ms = 30000;
	natsMsg *m;
	bool stop;

	if (!s || write(ready, "x", 1) != 1)
		return 1;
	while (natsSubscription_NextMsg(&m, s, ms) == NATS_OK) {
		stop = is_stop(natsMsg_GetData(m), natsMsg_GetDataLength(m));
		if (natsMsg_GetDataLength(m) == SIZE)
			count(&r);
		natsMsg_Destroy(m);
		if (stop)
			break;
		ms = 5000;
	}
	natsSubscription_Destroy(s);
	natsConnection_Destroy(nc);
	return write(out, &r, sizeof(r)) != sizeof(r);
}

/* ------------------------------------------------------------ senders */

static int nats_tx(const struct bb_env *e, int n)
{
	natsConnection *nc = bb_nats_conn(e->url, false);
	char buf[SIZE] = { 0 };
	int i;

	if (!nc)
		return 1;
	for (i = 0; i < n; i++)
		if (natsConnection_Publish(nc, SUBJ, buf, SIZE) != NATS_OK)
			return 1;
	natsConnection_Publish(nc, SUBJ, "stop", 4);
	natsConnection_FlushTimeout(nc, 10000);
	natsConnection_Destroy(nc);
	return 0;
}

/* Node bcsrc on host 0, once the k proxies are there and the proxies of
 * the earlier rows' nodes have gone (k + 2 nodes: it, the proxies and
 * the bridge's control node; 5 s at most). Its result, then it stays
 * until the bench has the receivers' counts (@done). */
static int shm_tx(const struct bb_env *e, int k, int n, int out, int done)
{
	struct shmrpc_node *nd = bb_node_in(e, 0, "bcsrc");
	struct tx t = { .min_ret = k + 1 };
	char name[16], buf[SIZE] = { 0 }, c;
	int i, ret, rc;

	if (!nd)
		return 1;
	for (i = 0; i < k; i++) {
		snprintf(name, sizeof(name), "bc%d", i);
		if (shmrpc_wait_node(nd, name, 10000))
			return 1;
	}
	for (i = 0; i < 500 && shmrpc_nodes(nd, NULL, 0) != k + 2; i++)
		usleep(10000);
	t.us = bb_now_us();
	for (i = 0; i < n; i++) {
		ret = shmrpc_broadcast(nd, buf, SIZE, 10000);
		t.failed += ret < 0;
		t.short_ret += ret >= 0 && ret < k + 1;
		if (ret >= 0 && ret < t.min_ret)
			t.min_ret = ret;
	}
	t.us = bb_now_us() - t.us;
	for (i = 0; i < k; i++) { /* after the broadcasts, in each ring */
		snprintf(name, sizeof(name), "bc%d", i);
		shmrpc_send(nd, name, "stop", 4, 10000);
	}
	rc = write(out, &t, sizeof(t)) != sizeof(t);
	if (read(done, &c, 1) < 0)
		rc = 1;
	shmrpc_close(nd);
	return rc;
}

/* ------------------------------------------------------------ status */

/* The broadcast counters of host 0's bridge: 0, or -1. The segment is
 * another process's: checked, and a seqlock that stays odd (a bridge that
 * died mid-update) is given up after a second. */
static int status_read(const struct bb_env *e, struct bc_cnt *c)
{
	const struct br_status_hdr *h;
	char path[192];
	struct stat st;
	uint32_t s1;
	int fd, i, rc = -1;

	snprintf(path, sizeof(path), "/proc/%d/root/dev/shm/" BR_STATUS_PREFIX "%s",
		 (int)e->host[0], e->domain);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || st.st_size < (off_t)sizeof(*h)) {
		close(fd);
		return -1;
	}
	h = mmap(NULL, sizeof(*h), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (h == MAP_FAILED)
		return -1;
	if (h->magic != BR_STATUS_MAGIC || h->version != BR_STATUS_VERSION)
		goto out;
	for (i = 0; i < 1000; i++, usleep(1000)) {
		/* acquire: pairs with the writer's release store of an even seq */
		s1 = atomic_load_explicit(&h->seq, memory_order_acquire);
		c->bcasts = atomic_load_explicit(&h->bcasts, memory_order_relaxed);
		c->copies = atomic_load_explicit(&h->bcast_sent, memory_order_relaxed);
		c->alone = atomic_load_explicit(&h->bcast_split, memory_order_relaxed);
		/* the fields before the re-load: pairs with the writer's release
		 * fence before its first field store */
		atomic_thread_fence(memory_order_acquire);
		if (!(s1 & 1) && s1 == atomic_load_explicit(&h->seq, memory_order_relaxed)) {
			rc = 0;
			break;
		}
	}
out:
	munmap((void *)h, sizeof(*h));
	return rc;
}

/* ------------------------------------------------------------ a side */

static void summarise(const struct rx *r, int k, struct bb_bcast_side *s)
{
	double first = r[0].first, last = r[0].last, own;
	int i;

	s->min_got = s->max_got = r[0].got;
	s->slow_rate = -1;
	for (i = 0; i < k; i++) {
		first = r[i].first < first ? r[i].first : first;
		last = r[i].last > last ? r[i].last : last;
		s->min_got = r[i].got < s->min_got ? r[i].got : s->min_got;
		s->max_got = r[i].got > s->max_got ? r[i].got : s->max_got;
		own = r[i].got > 1 ? (double)(r[i].got - 1) / ((r[i].last - r[i].first) / 1e6) : 0;
		if (s->slow_rate < 0 || own < s->slow_rate)
			s->slow_rate = own;
	}
	s->rate = 0;
	if (s->min_got > 1 && last > first)
		s->rate = (double)(s->min_got - 1) / ((last - first) / 1e6);
}

enum { RDY, RXS, TXS, DONE, NPIPES }; /* ready, receivers' results, tx, done */

struct side {
	int p[NPIPES][2];
	pid_t *pid; /* k receivers, then the sender */
	int forked;
};

static void child(const struct bb_env *e, struct bb_bcast *r, struct side *s, bool shm, int i)
{
	int rc;

	if (i < r->k)
		rc = shm ? shm_rx(e, i, s->p[RDY][1], s->p[RXS][1]) :
			   nats_rx(e, s->p[RDY][1], s->p[RXS][1]);
	else
		rc = shm ? shm_tx(e, r->k, r->n, s->p[TXS][1], s->p[DONE][0]) : nats_tx(e, r->n);
	_exit(rc);
}

/* The receivers, then the sender; the results. 0, or -1. */
static int side_run(const struct bb_env *e, struct bb_bcast *r, struct side *s, bool shm)
{
	struct rx *rx = calloc((size_t)r->k, sizeof(*rx));
	struct bc_cnt before = { 0 }, after = { 0 };
	struct tx t;
	int i, rc = -1;
	char c;

	if (!rx)
		return -1;
	for (i = 0; i <= r->k; i++) {
		if ((s->pid[i] = bb_fork()) == 0)
			child(e, r, s, shm, i);
		if (s->pid[i] < 0)
			goto out;
		s->forked++;
		if (i < r->k && get_within(s->p[RDY][0], &c, 1, 30000))
			goto out;
		if (i == r->k - 1 && shm)
			r->status_ok = !status_read(e, &before);
	}
	for (i = 0; i < r->k; i++)
		if (get_within(s->p[RXS][0], &rx[i], sizeof(rx[i]), RESULT_MS))
			goto out;
	summarise(rx, r->k, shm ? &r->bridged : &r->plain);
	if (shm) {
		if (get_within(s->p[TXS][0], &t, sizeof(t), RESULT_MS))
			goto out;
		r->short_ret = t.short_ret, r->failed = t.failed, r->min_ret = t.min_ret;
		r->tx_rate = t.us > 0 ? r->n / (t.us / 1e6) : 0;
		usleep(600000); /* a status update (every 250 ms) after the last */
		r->status_ok = r->status_ok && !status_read(e, &after);
		r->bcasts = after.bcasts - before.bcasts;
		r->copies = after.copies - before.copies;
		r->alone = after.alone - before.alone;
		if (write(s->p[DONE][1], "x", 1) != 1)
			goto out;
	}
	rc = 0;
out:
	free(rx);
	return rc;
}

static int side(const struct bb_env *e, struct bb_bcast *r, bool shm)
{
	struct side s = { .forked = 0 };
	int i, rc = -1, np = 0;

	s.pid = calloc((size_t)r->k + 1, sizeof(*s.pid));
	while (s.pid && np < NPIPES && !pipe(s.p[np]))
		np++;
	if (np == NPIPES)
		rc = side_run(e, r, &s, shm);
	for (i = 0; i < s.forked; i++) {
		if (rc)
			kill(s.pid[i], SIGKILL);
		if (bb_wait(s.pid[i]))
			rc = -1;
	}
	for (i = 0; i < np; i++)
		close(s.p[i][0]), close(s.p[i][1]);
	free(s.pid);
	return rc;
}

int bb_bcast_run(const struct bb_env *e, struct bb_bcast *r)
{
	if (r->k < 1 || r->k > 64 || r->n < 2)
		return -1;
	if (side(e, r, false))
		return -1;
	return side(e, r, true);
}

void bb_bcast_print(const struct bb_bcast *r)
{
	const struct bb_bcast_side *p = &r->plain, *b = &r->bridged;
	char what[32];

	snprintf(what, sizeof(what), "broadcast 256 B to %d", r->k);
	printf("%-22s %10.0f/s %10.0f/s  %5.2fx  (none)\n", what, p->rate, b->rate,
	       p->rate > 0 ? b->rate / p->rate : 0);
	printf("%-22s %10.0f/s %10.0f/s  %5.2fx\n", "  slowest receiver", p->slow_rate,
	       b->slow_rate, p->slow_rate > 0 ? b->slow_rate / p->slow_rate : 0);
	printf("  received (fewest-most of %d per receiver): %llu-%llu, %llu-%llu\n", r->n,
	       (unsigned long long)p->min_got, (unsigned long long)p->max_got,
	       (unsigned long long)b->min_got, (unsigned long long)b->max_got);
	printf("  bridged sender: %d broadcasts (%.0f/s in its loop), %llu counted fewer than %d "
	       "nodes (least %d), %llu failed\n",
	       r->n, r->tx_rate, (unsigned long long)r->short_ret, r->k + 1, r->min_ret,
	       (unsigned long long)r->failed);
	if (r->status_ok)
		printf("  host 0's bridge: %llu BCASTs published for %llu copies, %llu copies "
		       "alone\n",
		       (unsigned long long)r->bcasts, (unsigned long long)r->copies,
		       (unsigned long long)r->alone);
	else
		printf("  host 0's bridge: status segment not read\n");
}
