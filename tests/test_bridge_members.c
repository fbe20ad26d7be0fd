// SPDX-License-Identifier: MIT
/*
 * Another host's bridge as the test plays it: host "x", on a real
 * nats-server, speaking the wire itself (tools/bridge/wire.c), next to
 * hosts a and b (mount namespaces, each its own /dev/shm and a real
 * shmrpc-bridge). Root only; skipped without nats-server or libnats.
 *
 * - ahead: membership deltas met ahead of their turn (remote.c): a JOIN
 *   handled before the snapshot its bridge sent first, and a JOIN past a
 *   gap whose missing delta comes next. Host a must show both nodes at
 *   once, not at x's next heartbeat: x sends none, so a dropped delta
 *   would never come back.
 * - version2: x is a bridge of 0.2.1 (wire version 2, no BR_FEAT_BCAST):
 *   its messages are read, a broadcast reaches its node as plain messages
 *   while b's nodes share a BCAST, and the 0.3 bridges write nothing but
 *   the BCASTs in a version it could not read.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_bridge.h"

#ifdef SHMRPC_HAVE_NATS
#include "bridge/bridge.h"

#define T_MS 10000
/* The bridges' options: x, which sends no heartbeat, is dead after 50 s */
#define X_SILENT "--heartbeat-ms 500 --dead-after 100"

struct obs_arg {
	const char *domain;
	struct th_gate saw, more;
};

/* In host a: x's nodes appear as it announced them. */
static int observe(void *arg)
{
	struct obs_arg *o = arg;
	struct shmrpc_node *n = tb_open(o->domain, "obs");
	char host[SHMRPC_NAME_MAX + 1];

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "early", T_MS), 0); /* in the snapshot */
	/* JOIN 2 was handled before the snapshot of mseq 1 */
	CHILD_CHECK_RC(shmrpc_wait_node(n, "late", 3000), 0);
	CHILD_CHECK_RC(shmrpc_is_local(n, "late"), 0);
	CHILD_CHECK_RC(shmrpc_node_host(n, "late", host, sizeof(host)), 1);
	CHILD_CHECK(!strcmp(host, "x"));
	th_gate_open(&o->saw);
	CHILD_CHECK(th_gate_wait(&o->more, T_MS) == 0);
	/* JOIN 4 came before JOIN 3 */
	CHILD_CHECK_RC(shmrpc_wait_node(n, "gap3", 3000), 0);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "gap4", 3000), 0);
	shmrpc_close(n);
	return 0;
}

struct fake {
	natsConnection *nc;
	natsSubscription *req; /* h.x: snapshot requests */
	char esc[BR_ESC];      /* the domain as a subject token */
	uint64_t epoch;
};

static void put(struct fake *f, const char *subj, const struct br_hdr *h, const void *body,
		uint32_t len)
{
	unsigned char buf[BR_WIRE_MAX + 256];
	uint32_t n = br_wire_put(h, buf);

	assert_true(len <= 256);
	memcpy(buf + n, body, len);
	assert_int_equal(natsConnection_Publish(f->nc, subj, buf, (int)(n + len)), NATS_OK);
	assert_int_equal(natsConnection_FlushTimeout(f->nc, T_MS), NATS_OK);
}

static void member(struct fake *f, uint8_t type, uint64_t seq, const char *name, uint64_t inc)
{
	struct br_hdr h = { .type = type, .epoch = f->epoch, .inc = inc, .seq = seq, .aux = inc };
	uint32_t max = htole32(65536);
	char subj[BR_SUBJ];

	strcpy(h.host, "x");
	if (name)
		strcpy(h.name, name);
	snprintf(subj, sizeof(subj), "shmrpc.%s.m.x", f->esc);
	put(f, subj, &h, &max, type == BR_JOIN ? 4 : 0);
}

/* The next snapshot request to x: the asking host's name in @from. */
static void next_snapreq(struct fake *f, char *from)
{
	struct br_hdr h;
	const char *why;
	natsMsg *m;
	int ok;

	do {
		assert_int_equal(natsSubscription_NextMsg(&m, f->req, T_MS), NATS_OK);
		ok = !br_wire_get(natsMsg_GetData(m), natsMsg_GetDataLength(m), &h, &why) &&
		     h.type == BR_SNAPREQ;
		natsMsg_Destroy(m);
	} while (!ok);
	memcpy(from, h.host, BR_NAME);
}

/* Wait for host @from's bridge to ask x for its snapshot. */
static void wait_snapreq(struct fake *f, const char *from)
{
	char host[BR_NAME];

	do
		next_snapreq(f, host);
	while (strcmp(host, from));
}

static void snapshot(struct fake *f, const char *to, uint64_t seq, const char *name, uint64_t inc)
{
	struct br_hdr h = { .type = BR_SNAP, .epoch = f->epoch, .seq = seq, .aux = BR_SNAP_LAST };
	struct br_claim c = { .inc = inc, .join_ns = (int64_t)inc, .max_msg = 65536 };
	unsigned char body[256];
	char subj[BR_SUBJ], e[BR_ESC];

	strcpy(h.host, "x");
	strcpy(c.name, name);
	br_esc(to, e);
	snprintf(subj, sizeof(subj), "shmrpc.%s.h.%s", f->esc, e);
	put(f, subj, &h, body, br_snap_put(body, &c));
}

static void test_bridge_members_ahead(void **state)
{
	struct tb_case *t = *state;
	struct obs_arg o = { .domain = t->dom.name };
	struct fake f = { .epoch = 0x5eed0000u + (uint64_t)getpid() };
	char subj[BR_SUBJ];
	pid_t obs;

	/* x sends no heartbeat: it is dead after 50 s of silence, which the
	 * test does not reach */
	tb_hosts_up(t, NULL, NULL, X_SILENT);
	th_gate_init(&o.saw);
	th_gate_init(&o.more);
	obs = tb_run(&t->a, observe, &o); /* before libnats' threads exist */

	br_esc(t->dom.name, f.esc);
	assert_int_equal(natsConnection_ConnectTo(&f.nc, tb_server.url), NATS_OK);
	snprintf(subj, sizeof(subj), "shmrpc.%s.h.x", f.esc);
	assert_int_equal(natsConnection_SubscribeSync(&f.req, f.nc, subj), NATS_OK);
	assert_int_equal(natsConnection_FlushTimeout(f.nc, T_MS), NATS_OK);

	/* 1. a's bridge meets x by its first delta and asks for a snapshot.
	 * x's bridge took it at mseq 1, then "early" joined as 2... and a's
	 * bridge handles that JOIN before the snapshot (here: it comes
	 * 300 ms before; in a real bridge: the same read, subject by subject). */
	member(&f, BR_JOIN, 1, "early", 11);
	wait_snapreq(&f, "a");
	member(&f, BR_JOIN, 2, "late", 12);
	tb_sleep_ms(300);
	snapshot(&f, "a", 1, "early", 11);
	assert_int_equal(th_gate_wait(&o.saw, T_MS), 0);

	/* 2. past a gap: 4 before 3 (a's bridge asks for a snapshot again;
	 * x does not answer, 3 is what was missing) */
	member(&f, BR_JOIN, 4, "gap4", 14);
	tb_sleep_ms(300);
	member(&f, BR_JOIN, 3, "gap3", 13);
	th_gate_open(&o.more);
	assert_int_equal(th_wait(obs, 30000), 0);

	/* x stops: its nodes leave both hosts before the bridges stop */
	member(&f, BR_BYE, 5, NULL, 0);
	tb_sleep_ms(200);
	natsSubscription_Destroy(f.req);
	natsConnection_Destroy(f.nc);
	th_gate_close(&o.saw);
	th_gate_close(&o.more);
}

/* ------------------------------------------------- a bridge of wire version 2 */

#define V2_N 50 /* broadcasts; within a stream's window, so x grants nothing */

struct v2_arg {
	const char *domain;
	const char *name;
	struct th_gate done;
};

/* On host b: r1 or r2 gets every broadcast, in order. */
static int v2_recv(void *arg)
{
	struct v2_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, a->name);
	char buf[64], from[SHMRPC_NAME_MAX + 1];
	uint64_t i, got;

	CHILD_CHECK(n);
	for (i = 0; i < V2_N; i++) {
		CHILD_CHECK_RC(shmrpc_recv(n, buf, sizeof(buf), from, T_MS), 8);
		memcpy(&got, buf, 8);
		CHILD_CHECK(got == i && !strcmp(from, "tx"));
	}
	CHILD_CHECK(th_gate_wait(&a->done, T_MS) == 0);
	shmrpc_close(n);
	return 0;
}

/* On host a: tx broadcasts to r1, r2 (host b) and old (host x). */
static int v2_send(void *arg)
{
	struct v2_arg *a = arg;
	struct shmrpc_node *n = tb_open(a->domain, "tx");
	uint64_t i;

	CHILD_CHECK(n);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "r1", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "r2", T_MS), 0);
	CHILD_CHECK_RC(shmrpc_wait_node(n, "old", T_MS), 0);
	for (i = 0; i < V2_N; i++) /* and a's bridge's own node */
		CHILD_CHECK_RC(shmrpc_broadcast(n, &i, 8, T_MS), 4);
	CHILD_CHECK(th_gate_wait(&a->done, T_MS) == 0);
	shmrpc_close(n);
	return 0;
}

/* Answer snapshot requests from a and b: x has "old" at mseq 1. */
static void v2_snapshots(struct fake *f)
{
	bool a = false, b = false;
	char host[BR_NAME];

	while (!a || !b) {
		next_snapreq(f, host);
		if (!strcmp(host, "a") || !strcmp(host, "b")) {
			snapshot(f, host, 1, "old", 21);
			*(host[0] == 'a' ? &a : &b) = true;
		}
	}
}

/* x's node "old" gets tx's broadcasts as plain messages, in order. */
static void v2_expect_copies(natsSubscription *sub)
{
	const unsigned char *p, *end;
	struct br_hdr h;
	struct br_ent e;
	const char *why;
	uint64_t want = 0, got;
	natsMsg *m;

	while (want < V2_N) {
		assert_int_equal(natsSubscription_NextMsg(&m, sub, T_MS), NATS_OK);
		assert_int_equal(((const unsigned char *)natsMsg_GetData(m))[1], 2);
		assert_int_equal(
			br_wire_get(natsMsg_GetData(m), natsMsg_GetDataLength(m), &h, &why), 0);
		p = h.body;
		end = h.body + h.body_len;
		while (h.type == BR_BATCH && p < end) {
			assert_int_equal(br_ent_get(&p, end, &e), 1);
			assert_string_equal(e.from, "tx");
			assert_int_equal(e.len, 8);
			memcpy(&got, e.data, 8);
			assert_int_equal(got, want);
			want++;
		}
		natsMsg_Destroy(m);
	}
}

/*
 * Everything the 0.3 bridges published in the domain: version 2, which a
 * bridge of 0.2 reads, but for the BCASTs on b (version 3), one per
 * broadcast, which such a bridge never subscribed to.
 */
static void v2_check_versions(natsSubscription *all, const char *esc)
{
	char bsubj[BR_SUBJ];
	uint64_t bcasts = 0, v2 = 0;
	const unsigned char *d;
	natsMsg *m;

	snprintf(bsubj, sizeof(bsubj), "shmrpc.%s.b", esc);
	while (natsSubscription_NextMsg(&m, all, 0) == NATS_OK) {
		d = (const unsigned char *)natsMsg_GetData(m);
		assert_true(natsMsg_GetDataLength(m) > 48 && d[0] == 'S');
		if (!strcmp(natsMsg_GetSubject(m), bsubj)) {
			assert_int_equal(d[1], 3);
			assert_int_equal(d[2], BR_BCAST);
			bcasts++;
		} else {
			assert_int_equal(d[1], 2);
			v2++;
		}
		natsMsg_Destroy(m);
	}
	print_message("domain traffic: %llu messages of version 2, %llu BCASTs\n",
		      (unsigned long long)v2, (unsigned long long)bcasts);
	assert_int_equal(bcasts, V2_N);
}

static void test_bridge_members_version2(void **state)
{
	struct tb_case *t = *state;
	struct v2_arg r1 = { .domain = t->dom.name, .name = "r1" };
	struct v2_arg r2 = { .domain = t->dom.name, .name = "r2" };
	struct v2_arg tx = { .domain = t->dom.name, .name = "tx" };
	struct fake f = { .epoch = 0x01d0000u + (uint64_t)getpid() };
	natsSubscription *copies, *all;
	struct tb_bcast bc;
	char subj[BR_SUBJ];
	pid_t p[3];

	/* exact counts: a barrier waits for every copy (as test_bridge_bcast) */
	tb_hosts_up(t, NULL, NULL, X_SILENT " --bcast-wait-us 2000000");
	th_gate_init(&r1.done);
	th_gate_init(&r2.done);
	th_gate_init(&tx.done);
	p[0] = tb_run(&t->b, v2_recv, &r1); /* before libnats' threads exist */
	p[1] = tb_run(&t->b, v2_recv, &r2);
	p[2] = tb_run(&t->a, v2_send, &tx);

	br_esc(t->dom.name, f.esc);
	assert_int_equal(natsConnection_ConnectTo(&f.nc, tb_server.url), NATS_OK);
	snprintf(subj, sizeof(subj), "shmrpc.%s.h.x", f.esc);
	assert_int_equal(natsConnection_SubscribeSync(&f.req, f.nc, subj), NATS_OK);
	snprintf(subj, sizeof(subj), "shmrpc.%s.n.old", f.esc);
	assert_int_equal(natsConnection_SubscribeSync(&copies, f.nc, subj), NATS_OK);
	snprintf(subj, sizeof(subj), "shmrpc.%s.>", f.esc);
	assert_int_equal(natsConnection_SubscribeSync(&all, f.nc, subj), NATS_OK);
	assert_int_equal(natsConnection_FlushTimeout(f.nc, T_MS), NATS_OK);

	/* x is a 0.2 bridge: version 2, and no BR_FEAT_BCAST (stream 0) */
	member(&f, BR_JOIN, 1, "old", 21);
	v2_snapshots(&f);
	v2_expect_copies(copies);
	th_gate_open(&r1.done);
	th_gate_open(&r2.done);
	th_gate_open(&tx.done);
	assert_int_equal(th_wait(p[0], 30000), 0);
	assert_int_equal(th_wait(p[1], 30000), 0);
	assert_int_equal(th_wait(p[2], 30000), 0);

	/* a's bridge: one BCAST per broadcast for r1 and r2, old's copy alone */
	tb_sleep_ms(400); /* a status update */
	assert_int_equal(tb_status_bcast(&t->a, t->dom.name, &bc), 0);
	print_message("a: %llu broadcasts published once for %llu copies, %llu copies alone\n",
		      (unsigned long long)bc.bcasts, (unsigned long long)bc.sent,
		      (unsigned long long)bc.split);
	assert_int_equal(bc.bcasts, V2_N);
	assert_int_equal(bc.sent, 2 * V2_N);
	assert_int_equal(bc.split, V2_N);
	assert_int_equal(bc.bad_msgs, 0); /* x's version-2 messages were read */
	member(&f, BR_BYE, 2, NULL, 0);
	tb_sleep_ms(200);
	v2_check_versions(all, f.esc);
	natsSubscription_Destroy(all);
	natsSubscription_Destroy(copies);
	natsSubscription_Destroy(f.req);
	natsConnection_Destroy(f.nc);
	th_gate_close(&r1.done);
	th_gate_close(&r2.done);
	th_gate_close(&tx.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bridge_members_ahead, tb_case_setup,
						tb_case_teardown),
		cmocka_unit_test_setup_teardown(test_bridge_members_version2, tb_case_setup,
						tb_case_teardown),
	};

	int rc = cmocka_run_group_tests(tests, tb_group_setup, tb_group_teardown);

	nats_Close(); /* once: libnats is not opened again after it */
	return rc;
}
#else
int main(void)
{
	printf("skip: built without libnats (apt-get install libnats-dev)\n");
	return 0;
}
#endif
