// SPDX-License-Identifier: MIT
/*
 * Fault injection (issue 9, section 4): every allocation and system call
 * the library makes in a call of the API fails in turn, the N-th in the
 * N-th run, and each time the call returns an error its header documents
 * (that of the call that failed), the node keeps working (a round trip
 * through a peer) or is closed cleanly, and nothing is left behind:
 * descriptors, mappings, threads, heap blocks, /dev/shm files
 * (tests/fault/sweep.c). The same for the calls of the library's own
 * threads (the watcher, the shmrpc_fd helper), which must neither crash
 * nor hang the process. tests/fault/interpose.c says how calls are failed,
 * tests/fault/fault.mk which ones.
 *
 * Heap: the fault build has AddressSanitizer (tests/fault/fault.mk), and
 * LeakSanitizer checks every process of a run (the child, its peers) when
 * it exits: a block the library leaked fails the run (exit status
 * FR_LSAN); the interposer's count of the library's live blocks is
 * compared too, before the exit.
 *
 * $FAULT_N=n runs only that N of each sweep; $FAULT_VERBOSE=1 lists the
 * calls each scenario makes and what every run did; $TEST_FILTER picks
 * scenarios.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "runner.h"

#ifdef __SANITIZE_ADDRESS__
/* Whatever $ASAN_OPTIONS says otherwise (it overrides these). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=1:exitcode=23"; /* FR_LSAN */
}
#endif

/* What each call's header documents (include/shmrpc.h). shmrpc_open and
 * shmrpc_fd return "another -errno of the underlying system calls" too. */
static const int send_doc[] = { EMSGSIZE, ENOENT, EINVAL, EAGAIN, ETIMEDOUT, EPIPE, EPROTO,
				ENOSPC,	  ENOMEM, EFBIG,  EMFILE, ENFILE,    0 };
static const int recv_doc[] = { EMSGSIZE, EAGAIN, ETIMEDOUT, EPROTO, EBUSY,
				EMFILE,	  ENFILE, ENOMEM,    0 };
static const int warm_doc[] = { ENOSPC, ENOMEM, EMFILE, ENFILE, EFBIG, 0 };
static const int bcast_doc[] = { EMSGSIZE, ENOMEM, EINVAL, 0 };
static const int call_doc[] = { ENOENT,	  EOPNOTSUPP, ETIMEDOUT, EAGAIN, EPIPE,
				EMSGSIZE, ECANCELED,  EBUSY,	 EPROTO, ENOSPC,
				ENOMEM,	  EFBIG,      EMFILE,	 ENFILE, 0 };

/* ------------------------------------------------------------ open */

static int open_call(struct fr_ctx *c)
{
	struct shmrpc_opts o;

	fr_opts(c, &o);
	return shmrpc_open("a", &o, &c->a);
}

/* A forked child's copy of the node is unusable (node.c's atfork
 * handlers): its send says -ECHILD. */
static int fork_check(struct fr_ctx *c)
{
	pid_t pid = th_fork_raw();
	int st;

	if (pid == 0)
		_exit(shmrpc_send(c->a, "b", "m9", 2, 0) == -ECHILD ? 0 : 1);
	st = th_wait(pid, FR_IO_MS);
	return st ? fr_fail(c, "a forked child's copy of the node: send not -ECHILD (%d)", st) : 0;
}

/* Failed: nothing returned, and the next open works (nothing poisoned:
 * no lock held, no registry cached that is not there). Then a round trip
 * with "b", opened now if the scenario did not. */
static int open_after(struct fr_ctx *c, int rc)
{
	int bad = fr_check_rc(c, rc, NULL, 0, NULL);

	if (rc && c->a)
		bad = fr_fail(c, "failed, and *out is not NULL");
	if (rc && fr_open(c, "a", &c->a))
		return -1;
	if (fork_check(c))
		bad = -1;
	if (!c->aux[0] && fr_p_open(c, 0, 0, c->d.name, "b"))
		return -1;
	if (fr_roundtrip(c, c->a, 0, "b", NULL))
		return -1;
	return bad;
}

/* The domain exists: "b" of another process made it. */
static int open_later_setup(struct fr_ctx *c)
{
	c->aux[0] = 1;
	return fr_p_open(c, 0, 0, c->d.name, "b");
}

/* The domain exists and this process has a node in it: the registry is
 * this process's already. */
static int open_cached_setup(struct fr_ctx *c)
{
	return open_later_setup(c) || fr_open(c, "x", &c->x);
}

/* ------------------------------------------------------------ send */

static int ab_setup(struct fr_ctx *c)
{
	return fr_open(c, "a", &c->a) || fr_p_open(c, 0, 0, c->d.name, "b");
}

static int send_call(struct fr_ctx *c)
{
	return shmrpc_send(c->a, "b", "m1", 2, FR_IO_MS);
}

/* A send that failed left nothing of its message; one that succeeded
 * delivered it. */
static int send_after(struct fr_ctx *c, int rc)
{
	int bad = fr_check_rc(c, rc, send_doc, 0, NULL), skipped = -1;

	if (fr_roundtrip(c, c->a, 0, "b", &skipped))
		return -1;
	if (skipped != (rc == 0))
		bad = fr_fail(c,
			      "send returned %d, and \"b\" received %d messages before "
			      "the round trip's",
			      rc, skipped);
	return bad;
}

/* ------------------------------------------------------------ recv */

static int recv_call(struct fr_ctx *c)
{
	char from[SHMRPC_NAME_MAX + 1];
	int rc = shmrpc_recv(c->a, c->buf, sizeof(c->buf) - 1, from, FR_IO_MS);

	c->buf[rc > 0 ? rc : 0] = '\0';
	return rc;
}

/* "m1" arrives once: from the armed call, or from the next receive. */
static int recv_after(struct fr_ctx *c, int rc)
{
	struct fr_rep rep;
	int bad = fr_check_rc(c, rc, recv_doc, 2, NULL);

	if (rc > 0 && strcmp(c->buf, "m1"))
		bad = fr_fail(c, "received '%s', not 'm1'", c->buf);
	if (rc <= 0 && fr_recv_until(c, c->a, "m1", NULL))
		return -1;
	if (c->peer[0].busy && (fr_p_result(c, 0, &rep) || rep.rc))
		return fr_fail(c, "the peer's late send: %d", rep.rc);
	if (fr_roundtrip(c, c->a, 0, "b", NULL))
		return -1;
	return bad;
}

/* "m1" waits in a ring that the receive has to open. */
static int recv_first_setup(struct fr_ctx *c)
{
	return ab_setup(c) || fr_p_send(c, 0, 0, "a", "m1");
}

/* The ring is open and empty: the receive sleeps until "b" sends. */
static int recv_sleep_setup(struct fr_ctx *c)
{
	return recv_first_setup(c) || fr_recv_until(c, c->a, "m1", NULL) ||
	       fr_p_bg(c, 0, PO_SEND_LATE, 0, "a", "m1");
}

/* No ring yet: the receive sleeps, "b" connects (and rings the bell). */
static int recv_sleep_new_setup(struct fr_ctx *c)
{
	return ab_setup(c) || fr_p_bg(c, 0, PO_SEND_LATE, 0, "a", "m1");
}

/* ------------------------------------------------------------ warmup */

static int abc_setup(struct fr_ctx *c)
{
	return ab_setup(c) || fr_p_open(c, 1, 0, c->d.name, "c");
}

static int warmup_call(struct fr_ctx *c)
{
	return shmrpc_warmup(c->a);
}

/* Whatever failed, both connect afterwards; a node left out must have
 * been said (only nodes that left or are not usable are left out). */
static int warmup_after(struct fr_ctx *c, int rc)
{
	int bad = fr_check_rc(c, rc, warm_doc, 2, NULL);

	if (rc >= 0 && rc != 2)
		bad = fr_fail(c, "%d connections, and no error said why not 2", rc);
	if (fr_roundtrip(c, c->a, 0, "b", NULL) || fr_roundtrip(c, c->a, 1, "c", NULL))
		return -1;
	return bad;
}

/* ------------------------------------------------------------ broadcast */

/* "b" and "c" asleep in a receive; rings to them exist or not. */
static int bcast_setup(struct fr_ctx *c, bool rings)
{
	struct fr_rep rep;
	int p;

	if (abc_setup(c))
		return -1;
	for (p = 0; rings && p < 2; p++)
		if (shmrpc_send(c->a, p ? "c" : "b", "m0", 2, FR_IO_MS) ||
		    fr_p_recv(c, p, 0, &rep) || rep.rc != 2)
			return fr_fail(c, "setup: message to peer %d", p);
	for (p = 0; p < 2; p++)
		if (fr_p_bg(c, p, PO_RECV_BG, 0, NULL, NULL) || fr_p_blocked(c, p))
			return -1;
	return 0;
}

static int bcast_first_setup(struct fr_ctx *c)
{
	return bcast_setup(c, false);
}

static int bcast_rings_setup(struct fr_ctx *c)
{
	return bcast_setup(c, true);
}

/* Timeout 0: the wakes of the first pass go out together. */
static int bcast_call(struct fr_ctx *c)
{
	return shmrpc_broadcast(c->a, "bc", 2, 0);
}

/*
 * The receivers it counted wake by themselves (none is left asleep: no
 * lost wake) and got the message; the others did not get it (they get
 * "zz" first, sent now).
 */
static int bcast_after(struct fr_ctx *c, int rc)
{
	int bad = fr_check_rc(c, rc, bcast_doc, 2, NULL), woke = 0, p, bc = 0;
	/* Well before the receivers' own timeout, which would end their
	 * sleep and let them find the message without a wake. */
	double end = th_now_ms() + FR_IO_MS / 3;
	struct fr_rep rep;

	while (woke < rc && th_now_ms() < end)
		for (p = woke = 0; p < 2; p++)
			woke += fr_p_ready(c, p, 1);
	if (woke < rc)
		bad = fr_fail(c, "%d counted, %d woke: a lost wake", rc, woke);
	for (p = 0; p < 2; p++) {
		if (!fr_p_ready(c, p, 0) && shmrpc_send(c->a, p ? "c" : "b", "zz", 2, FR_IO_MS))
			bad = fr_fail(c, "send to peer %d after the broadcast", p);
		if (fr_p_result(c, p, &rep) || rep.rc != 2)
			return fr_fail(c, "peer %d received %d", p, rep.rc);
		bc += !strcmp(rep.msg, "bc");
	}
	if (rc >= 0 && bc != rc)
		bad = fr_fail(c, "broadcast counted %d, %d received it", rc, bc);
	if (fr_roundtrip(c, c->a, 0, "b", NULL) || fr_roundtrip(c, c->a, 1, "c", NULL))
		return -1;
	return bad;
}

/* ------------------------------------------------------------ close */

/* Rings both ways with "b", each of them used. */
static int ab_talk_setup(struct fr_ctx *c)
{
	struct fr_rep rep;

	if (ab_setup(c) || shmrpc_send(c->a, "b", "m0", 2, FR_IO_MS) || fr_p_recv(c, 0, 0, &rep) ||
	    rep.rc != 2)
		return fr_fail(c, "setup: a to b");
	return fr_p_send(c, 0, 0, "a", "m1") || fr_recv_until(c, c->a, "m1", NULL);
}

static int close_last_setup(struct fr_ctx *c)
{
	return ab_talk_setup(c) || fr_p_close(c, 0, 0);
}

static int close_call(struct fr_ctx *c)
{
	shmrpc_close(c->a);
	c->a = NULL;
	return 0;
}

/* Its node file is gone, and "b" learns that it left. */
static int close_after(struct fr_ctx *c, int rc)
{
	struct fr_cmd cmd = { .op = PO_SEND };
	struct fr_rep rep;
	char path[256];

	(void)rc;
	if (!th_node_path(c->d.name, "a", path, sizeof(path)))
		return fr_fail(c, "its node file %s is left", path);
	snprintf(cmd.to, sizeof(cmd.to), "a");
	snprintf(cmd.msg, sizeof(cmd.msg), "m2");
	if (fr_peer_do(c, 0, &cmd, &rep))
		return -1;
	if (rep.rc != -EPIPE && rep.rc != -ENOENT)
		return fr_fail(c, "b's send to the closed a: %d", rep.rc);
	return 0;
}

/* The last one out: nothing of the domain is left. */
static int close_last_after(struct fr_ctx *c, int rc)
{
	(void)rc;
	if (th_shm_count(c->d.name))
		return fr_fail(c, "%d files of the domain left by the last close",
			       th_shm_count(c->d.name));
	return 0;
}

/* ------------------------------------------------------------ shmrpc_fd */

static int fd_call(struct fr_ctx *c)
{
	return shmrpc_fd(c->a);
}

/* Readable with a message waiting; then, parked, readable when "b" sends
 * to the sleeping event loop. Readable may be spurious (the header says
 * so): then nothing is received, and the loop polls again. */
static int fd_readable(struct fr_ctx *c, int fd, const char *want)
{
	struct pollfd p = { fd, POLLIN, 0 };
	double end = th_now_ms() + FR_IO_MS;
	char buf[FR_MSG];
	int rc, got = 0;

	while (!got) {
		if (poll(&p, 1, (int)(end - th_now_ms())) != 1)
			return fr_fail(c, "shmrpc_fd not readable with '%s' waiting", want);
		while ((rc = shmrpc_recv(c->a, buf, sizeof(buf) - 1, NULL, 0)) >= 0) {
			buf[rc] = '\0';
			if (strcmp(buf, want))
				return fr_fail(c, "fd mode: got '%s', want '%s'", buf, want);
			got++;
		}
		if (rc != -EAGAIN)
			return fr_fail(c, "fd mode: receive %d", rc);
	}
	return got == 1 ? 0 : fr_fail(c, "fd mode: '%s' %d times", want, got);
}

static int fd_after(struct fr_ctx *c, int rc)
{
	struct fr_rep rep;
	int bad = fr_check_rc(c, rc, NULL, -1, NULL), fd = rc;

	if (rc < 0 && (fd = shmrpc_fd(c->a)) < 0)
		return fr_fail(c, "shmrpc_fd again: %d", fd);
	if (fd_readable(c, fd, "m1") || fr_p_bg(c, 0, PO_SEND_LATE, 0, "a", "m2") ||
	    fd_readable(c, fd, "m2") || fr_p_result(c, 0, &rep) || rep.rc)
		return -1;
	if (fr_roundtrip(c, c->a, 0, "b", NULL))
		return -1;
	return bad;
}

/* ------------------------------------------------------------ calls */

/* "b" serves, asleep in a receive (which runs its serve function). */
static int serving(struct fr_ctx *c)
{
	struct fr_cmd cmd = { .op = PO_SERVE };
	struct fr_rep rep;

	if (fr_peer_do(c, 0, &cmd, &rep) || rep.rc)
		return fr_fail(c, "setup: b serves: %d", rep.rc);
	return fr_p_bg(c, 0, PO_RECV_BG, 0, NULL, NULL) || fr_p_blocked(c, 0);
}

/* End b's receive with a message (unless it ended by itself). */
static int serving_end(struct fr_ctx *c, const char *msg)
{
	struct fr_rep rep;

	if (!fr_p_ready(c, 0, 0) && shmrpc_send(c->a, "b", msg, strlen(msg), FR_IO_MS))
		return fr_fail(c, "send '%s' to end b's receive", msg);
	return fr_p_result(c, 0, &rep);
}

static int call(struct fr_ctx *c, const char *req)
{
	int rc = shmrpc_call(c->a, "b", req, strlen(req), c->buf, sizeof(c->buf) - 1, FR_IO_MS);

	c->buf[rc > 0 ? rc : 0] = '\0';
	return rc;
}

/* No ring either way yet: the call makes the request ring, b the reply's. */
static int call_first_setup(struct fr_ctx *c)
{
	return ab_setup(c) || serving(c);
}

/* Both rings exist: a call went through. */
static int call_rings_setup(struct fr_ctx *c)
{
	if (call_first_setup(c))
		return -1;
	if (call(c, "q0") != 3 || strcmp(c->buf, "rq0"))
		return fr_fail(c, "setup: the first call: '%s'", c->buf);
	return 0;
}

static int call_call(struct fr_ctx *c)
{
	return call(c, "q1");
}

/* A call that returned a reply got its own; whatever failed, the next call
 * works, and so do messages both ways. */
static int call_after(struct fr_ctx *c, int rc)
{
	int bad = fr_check_rc(c, rc, call_doc, 3, NULL);

	if (rc >= 0 && strcmp(c->buf, "rq1"))
		bad = fr_fail(c, "the reply is '%s', not 'rq1'", c->buf);
	if (serving_end(c, "m1") || fr_p_bg(c, 0, PO_RECV_BG, 0, NULL, NULL) || fr_p_blocked(c, 0))
		return -1;
	rc = call(c, "q2");
	if (rc != 3 || strcmp(c->buf, "rq2"))
		return fr_fail(c, "the next call: %d '%s'", rc, c->buf);
	if (serving_end(c, "m2") || fr_roundtrip(c, c->a, 0, "b", NULL))
		return -1;
	return bad;
}

/* ------------------------------------------------------------ a peer dies */

/* The watcher (a thread of the library) learns of it and reclaims it. */
static int reclaimed(struct fr_ctx *c, int ms)
{
	char path[256];
	double end;

	for (end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(1))
		if (th_node_path(c->d.name, "b", path, sizeof(path)))
			return 0;
	return -ETIMEDOUT;
}

static int death_call(struct fr_ctx *c)
{
	kill(c->peer[0].pid, SIGKILL);
	waitpid(c->peer[0].pid, NULL, 0);
	c->peer[0].pid = 0;
	/* Sticky, it cannot reclaim until the faults are over: 300 ms show
	 * whether it spins meanwhile (sweep.c counts the failed calls). */
	return reclaimed(c, c->sticky ? 300 : FR_IO_MS);
}

static int death_after(struct fr_ctx *c, int rc)
{
	int err;

	/* The watcher had no descriptors or memory while the faults stuck: it
	 * must do it now that they are back (it retries; it does not give up,
	 * and did not spin meanwhile: sweep.c counts the failed calls). */
	if (rc && c->sticky)
		rc = reclaimed(c, FR_IO_MS);
	if (rc)
		return fr_fail(c, "the dead peer was not reclaimed within %d ms", FR_IO_MS);
	err = shmrpc_send(c->a, "b", "m2", 2, FR_IO_MS);
	if (err != -EPIPE && err != -ENOENT)
		return fr_fail(c, "send to the dead b: %d", err);
	return 0;
}

/* ------------------------------------------------------------ the tests */

static const struct fr_scen scens[] = {
	{ "open_cold", 1, FR_COLD, NULL, open_call, open_after },
	{ "open_first", 1, 0, NULL, open_call, open_after },
	{ "open_later", 1, 0, open_later_setup, open_call, open_after },
	{ "open_cached", 1, 0, open_cached_setup, open_call, open_after },
	{ "send_first", 1, 0, ab_setup, send_call, send_after },
	{ "recv_first", 1, 0, recv_first_setup, recv_call, recv_after },
	{ "recv_sleep", 1, 0, recv_sleep_setup, recv_call, recv_after },
	{ "recv_sleep_new", 1, 0, recv_sleep_new_setup, recv_call, recv_after },
	{ "warmup", 2, 0, abc_setup, warmup_call, warmup_after },
	{ "bcast_first", 2, 0, bcast_first_setup, bcast_call, bcast_after },
	{ "bcast", 2, 0, bcast_rings_setup, bcast_call, bcast_after },
	{ "close", 1, 0, ab_talk_setup, close_call, close_after },
	{ "close_last", 1, 0, close_last_setup, close_call, close_last_after },
	{ "fd", 1, 0, recv_first_setup, fd_call, fd_after },
	{ "call_first", 1, 0, call_first_setup, call_call, call_after },
	{ "call", 1, 0, call_rings_setup, call_call, call_after },
	{ "peer_death", 1, FR_BG_ONLY, ab_talk_setup, death_call, death_after },
};

static void test_fault_sweep(void **state)
{
	const struct fr_scen *s = *state;

	assert_int_equal(fr_sweep(s), 0);
}

/* Every import of the fault build's library is either failed by the
 * interposer or listed as one that cannot fail (tests/fault/fault.mk). */
static void test_fault_imports_classified(void **state)
{
	char line[256];
	FILE *f = fopen(FAULT_UNCLASSIFIED, "r");
	int n = 0;

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		printf("[fault] the library imports %s: classify it in tests/fault/fault.mk "
		       "(FAULT_WRAP: the interposer fails it; FAULT_PASS: it cannot fail)\n",
		       strtok(line, "\n"));
		n++;
	}
	fclose(f);
	assert_int_equal(n, 0);
}

int main(void)
{
	struct CMUnitTest t[sizeof(scens) / sizeof(scens[0]) + 1];
	size_t i;

	th_main_env();
	t[0] = (struct CMUnitTest)cmocka_unit_test(test_fault_imports_classified);
	for (i = 0; i < sizeof(scens) / sizeof(scens[0]); i++) {
		t[i + 1] = (struct CMUnitTest)cmocka_unit_test_prestate(test_fault_sweep,
									(void *)&scens[i]);
		t[i + 1].name = scens[i].name;
	}
	return cmocka_run_group_tests_name("fault", t, NULL, NULL);
}
