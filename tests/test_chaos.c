// SPDX-License-Identifier: MIT
/*
 * Chaos: 16 processes exchange messages with each other for 30 s
 * ($SHMRPC_CHAOS_S) while random ones are SIGKILLed and restarted, with
 * shmrpc-reaper running (eBPF as root, else pidfds) and every other cleanup
 * layer on. Then every survivor sends a last message (FIN) to every other one,
 * and each checks what it received. Afterwards:
 *
 *  - no process hung (each finishes within a deadline);
 *  - every message between surviving pairs arrived, intact and in order:
 *    a sender marks the first message of each connection (FIRST: its send
 *    connected, as its connects counter tells) and numbers them; a
 *    receiver requires, per sender incarnation, FIRST then
 *    consecutive numbers with intact payloads, and FIN from every other
 *    survivor, so nothing was lost, duplicated, reordered or corrupted;
 *  - what survivors received from killed senders (drained rings) obeys the
 *    same rules as far as it goes;
 *  - nothing of the domain is left in /dev/shm.
 *
 * A message sent successfully to a receiver that then dies is lost with it;
 * that is the contract, and why only surviving pairs must see everything.
 */
#include <errno.h>
#include <stdlib.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "killtime.h"

#ifndef SHMRPC_REAPER_BIN
#define SHMRPC_REAPER_BIN "build/tools/shmrpc-reaper"
#endif

#define NPROC 16
#define MAX_INC 8192 /* incarnations over a run: 16 + one per kill */
#define MSG_MAX 2048
#define FIN_MS 30000	  /* a survivor must be done this long after FIN starts */
#define MAGIC 0x43484153u /* "CHAS" */

enum { F_FIRST = 1, F_FIN = 2 };

struct hdr {
	uint32_t magic;
	uint16_t from, to; /* process indexes */
	uint32_t inc;	   /* sender's incarnation */
	uint32_t flags;
	uint64_t seq; /* per (sender incarnation, receiver name) */
	uint32_t len; /* payload bytes after the header */
	uint32_t _pad;
};

/* Shared by the parent and every child (MAP_SHARED | MAP_ANONYMOUS). */
struct shared {
	_Atomic int fin; /* parent: 1 = no more kills, send FIN */
	_Atomic uint32_t next_inc;
	_Atomic uint64_t sent, received, drained_dead, epipes;
	_Atomic uint32_t errors;
	_Atomic int err_once;
	char err[256];
};

static struct shared *sh;
static struct th_dom dom;
static pid_t kids[NPROC]; /* the current incarnations, for the teardown */

static void fail_child(int idx, const char *fmt, uint32_t a, uint64_t b, uint64_t c)
{
	atomic_fetch_add(&sh->errors, 1);
	if (atomic_exchange(&sh->err_once, 1) == 0)
		snprintf(sh->err, sizeof(sh->err), "c%d: %s (%u, %llu, %llu)", idx, fmt, a,
			 (unsigned long long)b, (unsigned long long)c);
}

/* ------------------------------------------------------------ a process */

struct me {
	int idx;
	uint32_t inc;
	struct shmrpc_node *n;
	uint64_t seq[NPROC];	/* next seq to each receiver name */
	bool first[NPROC];	/* next success starts a connection */
	uint64_t last[MAX_INC]; /* per sender inc: last seq + 1; 0 none */
	bool fin_from[NPROC];	/* FIN seen from that sender (its live inc) */
	uint64_t rng;
	char buf[sizeof(struct hdr) + MSG_MAX];
};

static void name_of(char *out, int idx)
{
	snprintf(out, 16, "c%d", idx);
}

/* Rings this node has created so far (shmrpc_stats' connects). */
static uint64_t connects(struct me *m)
{
	struct shmrpc_stats st;

	return shmrpc_stats(m->n, &st) ? 0 : st.connects;
}

/*
 * One send to j; 0 sent, 1 would block, -1 gone (try later). A send to a
 * name whose holder changed connects to the new holder without -EPIPE
 * (shmrpc.h), so the sender learns of a new connection from its connects
 * counter: the reservation is where it connects, and FIRST is set then.
 */
static int send_one(struct me *m, int j, uint32_t flags)
{
	struct hdr *h = (struct hdr *)m->buf;
	char to[16];
	uint32_t len = 16 + (uint32_t)(th_rand(&m->rng) % (MSG_MAX - 16));
	struct shmrpc_txbuf tx;
	uint64_t before = connects(m);
	int rc;

	name_of(to, j);
	rc = shmrpc_reserve(m->n, to, sizeof(*h) + len, &tx, 0);
	if (rc == 0) {
		if (connects(m) != before)
			m->first[j] = true;
		*h = (struct hdr){ MAGIC,
				   (uint16_t)m->idx,
				   (uint16_t)j,
				   m->inc,
				   flags | (m->first[j] ? F_FIRST : 0),
				   m->seq[j],
				   len,
				   0 };
		th_fill(m->buf + sizeof(*h), len, ((uint64_t)m->inc << 8) | (uint64_t)j, m->seq[j]);
		memcpy(tx.data, m->buf, sizeof(*h) + len);
		rc = shmrpc_commit(m->n, &tx, sizeof(*h) + len);
	}
	if (rc == 0) {
		m->seq[j]++;
		m->first[j] = false;
		atomic_fetch_add_explicit(&sh->sent, 1, memory_order_relaxed);
		return 0;
	}
	if (rc == -EAGAIN)
		return 1;
	if (rc == -EPIPE || rc == -ENOENT) {
		if (rc == -EPIPE)
			atomic_fetch_add_explicit(&sh->epipes, 1, memory_order_relaxed);
		m->first[j] = true; /* its next incarnation: a new connection */
		return -1;
	}
	fail_child(m->idx, "send failed", (uint32_t)j, (uint64_t)-rc, 0);
	return -1;
}

static void check_msg(struct me *m, const char *from, int len)
{
	const struct hdr *h = (const struct hdr *)m->buf;
	char want[16];

	if (len < (int)sizeof(*h) || h->magic != MAGIC || h->to != m->idx || h->from >= NPROC ||
	    h->inc == 0 || h->inc >= MAX_INC || (int)(sizeof(*h) + h->len) != len) {
		fail_child(m->idx, "bad header", (uint32_t)len, 0, 0);
		return;
	}
	name_of(want, h->from);
	if (strcmp(from, want))
		fail_child(m->idx, "sender name differs from header", h->from, 0, 0);
	if (th_check(m->buf + sizeof(*h), h->len, ((uint64_t)h->inc << 8) | h->to, h->seq))
		fail_child(m->idx, "payload corrupt", h->inc, h->seq, 0);
	/* FIRST opens the connection's stream (the first one has seq 0, later
	 * ones follow a reconnection); then one by one, last[] being the last
	 * seq seen + 1. */
	if ((h->flags & F_FIRST) ? m->last[h->inc] != 0 :
				   (h->seq == 0 || m->last[h->inc] != h->seq))
		fail_child(m->idx, "lost, duplicated or out of order: inc, seq, last+1", h->inc,
			   h->seq, m->last[h->inc]);
	m->last[h->inc] = h->seq + 1;
	if (h->flags & F_FIN)
		m->fin_from[h->from] = true;
	atomic_fetch_add_explicit(&sh->received, 1, memory_order_relaxed);
}

/* Receive what is there (up to a batch); waits up to wait_ms for the first. */
static int drain(struct me *m, int wait_ms)
{
	char from[SHMRPC_NAME_MAX + 1];
	int rc, n = 0;

	while (n < 64 &&
	       (rc = shmrpc_recv(m->n, m->buf, sizeof(m->buf), from, n ? 0 : wait_ms)) >= 0) {
		check_msg(m, from, rc);
		n++;
	}
	if (rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT)
		fail_child(m->idx, "recv failed", (uint32_t)-rc, 0, 0);
	return n;
}

static int fin_phase(struct me *m)
{
	double end = th_now_ms() + FIN_MS;
	bool sent[NPROC] = { false };
	int j, left;

	sent[m->idx] = true;
	m->fin_from[m->idx] = true;
	for (;;) {
		left = 0;
		for (j = 0; j < NPROC; j++)
			if (!sent[j])
				sent[j] = send_one(m, j, F_FIN) == 0;
		for (j = 0; j < NPROC; j++)
			left += !sent[j] + !m->fin_from[j];
		if (!left)
			return 0;
		if (th_now_ms() > end) {
			for (j = 0; j < NPROC && (sent[j] && m->fin_from[j]); j++)
				;
			fail_child(m->idx, "FIN phase hung: first missing peer, sent, got",
				   (uint32_t)j, sent[j], m->fin_from[j]);
			return 1;
		}
		drain(m, 2);
	}
}

static int child_main(int idx)
{
	struct me *m = calloc(1, sizeof(*m));
	struct shmrpc_opts o = dom.opts;
	char name[16];
	int rc, j;

	CHILD_CHECK(m != NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	m->idx = idx;
	m->inc = atomic_fetch_add(&sh->next_inc, 1);
	CHILD_CHECK(m->inc < MAX_INC);
	m->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)m->inc << 17) ^ (uint64_t)getpid();
	for (j = 0; j < NPROC; j++)
		m->first[j] = true;
	name_of(name, idx);
	o.ring_bytes = 16384;
	o.spin_us = SHMRPC_SPIN_NEVER;
	rc = shmrpc_open(name, &o, &m->n);
	if (rc) {
		fail_child(idx, "open failed", (uint32_t)-rc, 0, 0);
		return 1;
	}
	while (!atomic_load(&sh->fin)) {
		j = (int)(th_rand(&m->rng) % NPROC);
		if (j != idx)
			send_one(m, j, 0);
		drain(m, 1);
	}
	rc = fin_phase(m);
	shmrpc_close(m->n);
	free(m);
	return rc;
}

static pid_t spawn(int idx)
{
	pid_t pid;

	fflush(NULL);
	pid = th_fork_raw(); /* dies with us */
	if (pid == 0)
		exit(child_main(idx)); /* exit: LeakSanitizer checks children */
	return pid;
}

/* ------------------------------------------------------------ the test */

static int chaos_seconds(void)
{
	const char *s = getenv("SHMRPC_CHAOS_S");
	int v = s ? atoi(s) : 0;

	return v > 0 ? v : 30;
}

static pid_t start_reaper(const char *log)
{
	const char *argv[] = { "-v",	   "--mode",   geteuid() == 0 ? "auto" : "pidfd",
			       "--no-pin", "--domain", dom.name,
			       NULL };
	const char *bin = getenv("SHMRPC_REAPER");
	pid_t pid;

	if (getenv("SHMRPC_CHAOS_NO_REAPER"))
		return -1;
	pid = shmrpc_kt_reaper_start(bin && *bin ? bin : SHMRPC_REAPER_BIN, argv, log, 10000);
	assert_true(pid > 0);
	return pid;
}

/* Wait (sleeping) until name c<idx> is LIVE with pid @pid; its id in *id. */
static int wait_held(struct shmrpc_kt_obs *o, int idx, pid_t pid, struct shmrpc_kt_id *id)
{
	double end = th_now_ms() + 10000;
	char name[16];

	name_of(name, idx);
	while (shmrpc_kt_obs_find(o, name, id) || id->pid != pid) {
		if (th_now_ms() > end)
			return -1;
		th_sleep_ms(1);
	}
	return 0;
}

/* Files naming dead incarnations, after waiting up to 5 s for them to go. */
static int wait_no_stale(struct shmrpc_kt_obs *o, const struct shmrpc_kt_id *ids)
{
	double end = th_now_ms() + 5000;
	int n;

	while ((n = shmrpc_kt_obs_stale(o, ids, NPROC)) != 0 && th_now_ms() < end)
		th_sleep_ms(5);
	if (n) { /* say which: the live ids, every file with a ring's flags */
		char cmd[200];

		for (int i = 0; i < NPROC; i++)
			fprintf(stderr, "live c%d = %u.%u\n", i, ids[i].slot, ids[i].gen);
		snprintf(cmd, sizeof(cmd),
			 "cd /dev/shm && for f in shmrpc.%s.*.*; do echo $f flags $(od -A n -t x4 "
			 "-j 384 -N 4 $f); done >&2",
			 dom.name);
		if (system(cmd) < 0)
			perror("system");
	}
	return n;
}

static void test_chaos_kill_restart(void **state)
{
	struct shmrpc_kt_obs *o = NULL;
	struct shmrpc_kt_reaper st = { 0 };
	struct shmrpc_kt_id ids[NPROC];
	pid_t *pid = kids, reaper;
	char log[96];
	uint64_t rng = 0x243f6a8885a308d3ull ^ (uint64_t)getpid();
	double end;
	int i, k, kills = 0, bad = 0, rc, stale;

	(void)state;
	th_dom_init(&dom);
	snprintf(log, sizeof(log), "/tmp/shmrpc-test-chaos-%d.log", (int)getpid());
	unlink(log);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	atomic_store(&sh->next_inc, 1);
	reaper = start_reaper(log);
	for (i = 0; i < NPROC; i++)
		pid[i] = spawn(i);
	end = th_now_ms() + chaos_seconds() * 1000.0;
	while (th_now_ms() < end) {
		th_sleep_ms(20 + (int)(th_rand(&rng) % 130));
		/* one at a time, sometimes two at once */
		for (k = 0; k < 1 + (th_rand(&rng) % 4 == 0); k++) {
			i = (int)(th_rand(&rng) % NPROC);
			kill(pid[i], SIGKILL);
			rc = th_wait(pid[i], 10000);
			if (rc != 128 + SIGKILL) {
				fprintf(stderr, "c%d exited %d before it was killed\n", i, rc);
				bad++;
			}
			kills++;
			if (th_rand(&rng) % 2)
				th_sleep_ms((int)(th_rand(&rng) % 30));
			pid[i] = spawn(i);
		}
	}
	/* FIN only once every name is held by its current process: its join
	 * reclaimed the killed holder of the name, whose rings then say
	 * RX_CLOSED, so no FIN goes into the ring of a dead incarnation. */
	assert_int_equal(shmrpc_kt_obs_open(&o, dom.name), 0);
	for (i = 0; i < NPROC; i++)
		if (wait_held(o, i, pid[i], &ids[i])) {
			fprintf(stderr, "c%d (pid %d) never joined\n", i, (int)pid[i]);
			bad++;
		}
	/* Nothing of a dead incarnation left while the survivors run: rings
	 * from dead senders are drained and dropped by their receivers, the
	 * rest went with each reclaim. */
	stale = wait_no_stale(o, ids);
	shmrpc_kt_obs_reaper(o, &st);
	shmrpc_kt_obs_close(o);
	atomic_store(&sh->fin, 1);
	for (i = 0; i < NPROC; i++) {
		rc = th_wait(pid[i], FIN_MS + 10000);
		pid[i] = -1;
		if (rc != 0) {
			fprintf(stderr, "survivor c%d ended with %d (-1: hung, killed)\n", i, rc);
			bad++;
		}
	}
	print_message("chaos %d s: %d kills, %llu messages sent, %llu received, %llu -EPIPE, "
		      "reaper %s reaped %llu\n",
		      chaos_seconds(), kills, (unsigned long long)atomic_load(&sh->sent),
		      (unsigned long long)atomic_load(&sh->received),
		      (unsigned long long)atomic_load(&sh->epipes),
		      reaper > 0 ? (st.mode == 1 ? "(bpf)" : "(pidfd)") : "none",
		      (unsigned long long)st.reaped);
	if (atomic_load(&sh->errors))
		fprintf(stderr, "%u errors; first: %s\n", atomic_load(&sh->errors), sh->err);
	if (reaper > 0)
		assert_int_equal(shmrpc_kt_reaper_stop(reaper, SIGTERM, 10000), 0);
	if (stale || bad || atomic_load(&sh->errors))
		fprintf(stderr, "the reaper's log is kept: %s\n", log);
	else
		unlink(log);
	if (stale)
		fprintf(stderr, "%d files of dead incarnations outlived them\n", stale);
	assert_int_equal(stale, 0);
	assert_int_equal(bad, 0);
	assert_int_equal(atomic_load(&sh->errors), 0);
	assert_true(kills > 0 && atomic_load(&sh->received) > 0);
	/* every survivor closed; the killed were cleaned up: nothing left */
	assert_int_equal(th_shm_count(dom.name), 0);
	munmap(sh, sizeof(*sh));
}

/* After a failure too: no child left running, nothing left in /dev/shm. */
static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NPROC; i++)
		if (kids[i] > 0 && kill(kids[i], SIGKILL) == 0)
			waitpid(kids[i], NULL, 0);
	return th_shm_clean(dom.name) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_chaos_kill_restart, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
