// SPDX-License-Identifier: MIT
/*
 * Membership events (lib/evlog.c, lib/events.c, the reclaim's drain in
 * lib/reclaim.c): JOIN, LEAVE and DEATH as messages from SHMRPC_EVENT_FROM
 * through every receiving path and shmrpc_fd; their order against the
 * messages of the nodes they are about (a JOIN before the node's messages,
 * a DEATH after every message the node published, also from a ring the
 * receiver had not opened); a flood with a slow receiver (the oldest
 * dropped and counted, nothing blocked); a log written by a hostile member;
 * the option's checks, and an older caller's padding.
 *
 * Real processes, SIGKILLed; the safety timeout is off (th_main_env): a
 * lost wake is a hang here, so "the DEATH arrives within 10 s" checks a
 * wake, not a speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "layout.h"

#define EV_ALL (SHMRPC_EV_JOIN | SHMRPC_EV_LEAVE | SHMRPC_EV_DEATH)

static struct shmrpc_node *ev_open(const struct th_dom *d, const char *name, uint32_t mask,
				   uint32_t ring)
{
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL;
	int rc;

	o.events = mask;
	o.ring_bytes = ring;
	rc = shmrpc_open(name, &o, &n);
	if (rc)
		fprintf(stderr, "shmrpc_open(%s, events 0x%x) = %d: %s\n", name, mask, rc,
			shmrpc_last_error());
	return n;
}

/* The next thing received is event @type about @name (pid @pid unless 0). */
static struct shmrpc_event expect_event(struct shmrpc_node *n, uint32_t type, const char *name,
					pid_t pid, int timeout_ms)
{
	char from[SHMRPC_NAME_MAX + 1], buf[256];
	struct shmrpc_event ev;
	int len;

	memset(&ev, 0, sizeof(ev));
	len = shmrpc_recv(n, buf, sizeof(buf), from, timeout_ms);
	if (len < 0)
		fprintf(stderr, "expected event %u of %s: recv = %d\n", type, name, len);
	assert_int_equal(len, sizeof(struct shmrpc_event));
	assert_string_equal(from, SHMRPC_EVENT_FROM);
	memcpy(&ev, buf, sizeof(ev));
	if (ev.type != type || strcmp(ev.name, name))
		fprintf(stderr, "got event %u of %s (dropped %u), expected %u of %s\n", ev.type,
			ev.name, ev.dropped, type, name);
	assert_int_equal(ev.type, type);
	assert_string_equal(ev.name, name);
	assert_true(ev.id != 0 && (uint32_t)ev.id != 0);
	if (pid)
		assert_int_equal(ev.pid, (uint32_t)pid);
	return ev;
}

/* The next thing received is the int @v from @who. */
static void expect_int(struct shmrpc_node *n, const char *who, int v, int timeout_ms)
{
	char from[SHMRPC_NAME_MAX + 1];
	int got = -1;

	assert_int_equal(shmrpc_recv(n, &got, sizeof(got), from, timeout_ms), sizeof(got));
	assert_string_equal(from, who);
	assert_int_equal(got, v);
}

/* ========================================================== the basics */

static void test_events_join_leave_death_in_order(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *early = th_open(d, "early"), *r, *q, *a;
	struct shmrpc_event ev, ev2;
	struct th_holder k;
	char buf[64], from[SHMRPC_NAME_MAX + 1];

	assert_non_null(early);
	r = ev_open(d, "r", EV_ALL, 0);
	q = th_open(d, "q"); /* subscribes to nothing */
	assert_non_null(r);
	assert_non_null(q);
	/* "early" joined before r: no event; r's own JOIN: none either */
	ev = expect_event(r, SHMRPC_EV_JOIN, "q", getpid(), 0);
	assert_int_equal(ev.dropped, 0);
	a = th_open(d, "a");
	assert_non_null(a);
	ev = expect_event(r, SHMRPC_EV_JOIN, "a", getpid(), 1000);
	shmrpc_close(a);
	ev2 = expect_event(r, SHMRPC_EV_LEAVE, "a", getpid(), 1000);
	assert_true(ev2.id == ev.id); /* the same incarnation */
	/* a process that says hello, then is killed: its message, then DEATH */
	th_holder_start(&k, d, "k", "r");
	ev = expect_event(r, SHMRPC_EV_JOIN, "k", k.pid, 1000);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), from, 1000), 5);
	assert_string_equal(from, "k");
	th_holder_kill(&k);
	/* r's watcher (it opened k's ring) reclaims k: r's blocked recv wakes */
	ev2 = expect_event(r, SHMRPC_EV_DEATH, "k", k.pid, 10000);
	assert_true(ev2.id == ev.id);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), from, 0), -EAGAIN);
	/* q asked for none */
	assert_int_equal(shmrpc_recv(q, buf, sizeof(buf), from, 0), -EAGAIN);
	shmrpc_close(early);
	expect_event(r, SHMRPC_EV_LEAVE, "early", getpid(), 1000);
	shmrpc_close(q);
	shmrpc_close(r);
}

static void test_events_mask(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", SHMRPC_EV_DEATH, 0), *a;
	struct th_holder k;
	char buf[64];

	assert_non_null(r);
	a = th_open(d, "a");
	shmrpc_close(a);
	th_holder_start(&k, d, "k", "r");
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 1000), 5); /* hello */
	th_holder_kill(&k);
	expect_event(r, SHMRPC_EV_DEATH, "k", k.pid, 10000);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(r);
}

static void test_events_opts(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_opts o = d->opts;
	struct shmrpc_node *n = NULL, *a;
	char buf[64];

	o.events = 0x8;
	assert_int_equal(shmrpc_open("n", &o, &n), -EINVAL);
	assert_non_null(strstr(shmrpc_last_error(), "opts.events"));
	o.events = SHMRPC_EV_JOIN;
	o._reserved = 1;
	assert_int_equal(shmrpc_open("n", &o, &n), -EINVAL);
	assert_null(n);
	/* A caller built before events: its struct ended at spin_us, padded to
	 * 8 bytes; the padding, now events, may hold anything. Ignored. */
	o._reserved = 0;
	o.events = 0xdeadbeef;
	o.sz = offsetof(struct shmrpc_opts, _reserved);
	assert_int_equal(shmrpc_open("n", &o, &n), 0);
	a = th_open(d, "a");
	shmrpc_close(a);
	assert_int_equal(shmrpc_recv(n, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(n);
}

/* ======================================================= every receiving path */

struct ev_seen {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int events, msgs;
	uint32_t last_type;
	size_t last_len;
	char last_name[SHMRPC_NAME_MAX + 1];
};

static void ev_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
		       void *arg)
{
	struct ev_seen *s = arg;
	struct shmrpc_event ev;

	(void)n;
	pthread_mutex_lock(&s->lock);
	s->last_len = len;
	if (!strcmp(from, SHMRPC_EVENT_FROM) && len == sizeof(ev)) {
		memcpy(&ev, data, sizeof(ev));
		s->events++;
		s->last_type = ev.type;
		snprintf(s->last_name, sizeof(s->last_name), "%s", ev.name);
	} else {
		s->msgs++;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static bool seen_wait(struct ev_seen *s, int events, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&s->lock);
	while (s->events < events)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts))
			break;
	ok = s->events >= events;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static void test_events_peek_release(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *a;
	struct shmrpc_rxbuf rx, rx2;
	struct shmrpc_event ev;
	char buf[8];

	assert_non_null(r);
	a = th_open(d, "a");
	assert_int_equal(shmrpc_peek(r, &rx, 1000), sizeof(ev));
	assert_string_equal(rx.from, SHMRPC_EVENT_FROM);
	memcpy(&ev, rx.data, sizeof(ev));
	assert_int_equal(ev.type, SHMRPC_EV_JOIN);
	assert_string_equal(ev.name, "a");
	shmrpc_close(a); /* a LEAVE behind it changes nothing to the peek */
	assert_int_equal(shmrpc_peek(r, &rx2, 0), sizeof(ev));
	assert_ptr_equal(rx2.data, rx.data);
	/* too small a buffer: -EMSGSIZE, the event stays */
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EMSGSIZE);
	assert_int_equal(shmrpc_release(r, &rx2), 0);
	assert_int_equal(shmrpc_release(r, &rx), -EINVAL); /* consumed already */
	assert_int_equal(shmrpc_peek(r, &rx, 0), sizeof(ev));
	memcpy(&ev, rx.data, sizeof(ev));
	assert_int_equal(ev.type, SHMRPC_EV_LEAVE);
	/* a recv during the peek receives the peeked event, and ends it */
	expect_event(r, SHMRPC_EV_LEAVE, "a", getpid(), 0);
	assert_int_equal(shmrpc_release(r, &rx), -EINVAL);
	assert_int_equal(shmrpc_peek(r, &rx, 0), -EAGAIN);
	shmrpc_close(r);
}

static void test_events_dispatch_and_thread(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *a, *b;
	struct ev_seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, "" };
	uint64_t sleeps;

	assert_non_null(r);
	a = th_open(d, "a");
	assert_int_equal(shmrpc_send(a, "r", "m", 1, 0), 0);
	/* dispatch: the JOIN, then a's message */
	assert_int_equal(shmrpc_dispatch(r, ev_handler, &s, 1000), 2);
	assert_int_equal(s.events, 1);
	assert_int_equal(s.msgs, 1);
	assert_int_equal(s.last_type, SHMRPC_EV_JOIN);
	/* shmrpc_start's thread, asleep when the events come */
	sleeps = th_stats(r).sleeps;
	assert_int_equal(shmrpc_start(r, ev_handler, &s), 0);
	assert_true(th_wait_sleeps_above(r, sleeps, 5000));
	b = th_open(d, "b");
	assert_true(seen_wait(&s, 2, 10000));
	shmrpc_close(b);
	assert_true(seen_wait(&s, 3, 10000));
	pthread_mutex_lock(&s.lock);
	assert_int_equal(s.last_type, SHMRPC_EV_LEAVE);
	assert_string_equal(s.last_name, "b");
	assert_int_equal(s.last_len, sizeof(struct shmrpc_event));
	pthread_mutex_unlock(&s.lock);
	assert_int_equal(shmrpc_stop(r), 0);
	shmrpc_close(a);
	expect_event(r, SHMRPC_EV_LEAVE, "a", getpid(), 1000);
	shmrpc_close(r);
}

static void test_events_recv_batch(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *a;
	struct shmrpc_event ev;
	struct shmrpc_msg m[4];
	char bufs[4][128];
	int i, v;

	assert_non_null(r);
	for (i = 0; i < 4; i++) {
		m[i].buf = bufs[i];
		m[i].cap = sizeof(bufs[i]);
	}
	a = th_open(d, "a");
	v = 7;
	assert_int_equal(shmrpc_send(a, "r", &v, sizeof(v), 0), 0);
	shmrpc_close(a); /* after its message */
	assert_int_equal(shmrpc_recv_batch(r, m, 4, 1000), 3);
	assert_string_equal(m[0].from, SHMRPC_EVENT_FROM);
	assert_int_equal(m[0].len, sizeof(ev));
	memcpy(&ev, m[0].buf, sizeof(ev));
	assert_int_equal(ev.type, SHMRPC_EV_JOIN);
	assert_string_equal(m[1].from, "a");
	assert_int_equal(m[1].len, sizeof(v));
	assert_memory_equal(m[1].buf, &v, sizeof(v));
	assert_string_equal(m[2].from, SHMRPC_EVENT_FROM);
	memcpy(&ev, m[2].buf, sizeof(ev));
	assert_int_equal(ev.type, SHMRPC_EV_LEAVE);
	/* an event larger than the first buffer: -EMSGSIZE, left queued */
	a = th_open(d, "a2");
	m[0].cap = sizeof(ev) - 1;
	assert_int_equal(shmrpc_recv_batch(r, m, 4, 1000), -EMSGSIZE);
	expect_event(r, SHMRPC_EV_JOIN, "a2", getpid(), 0);
	shmrpc_close(a);
	expect_event(r, SHMRPC_EV_LEAVE, "a2", getpid(), 1000);
	shmrpc_close(r);
}

/* shmrpc_fd turns readable for an event alone, in the loop's epoll set. */
static void test_events_fd_in_epoll(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *a;
	struct ev_seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, "" };
	struct epoll_event e = { .events = EPOLLIN }, out;
	int ep, fd, rc, round;

	assert_non_null(r);
	fd = shmrpc_fd(r);
	assert_true(fd >= 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	e.data.fd = fd;
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e), 0);
	/* readable once at first: drain it, then the loop is quiet */
	assert_true(shmrpc_dispatch(r, ev_handler, &s, 0) == -EAGAIN);
	do
		rc = epoll_wait(ep, &out, 1, 200);
	while (rc < 0 && errno == EINTR);
	assert_int_equal(rc, 0);
	for (round = 0; round < 2; round++) {
		a = th_open(d, "a"); /* round 0: its JOIN; round 1 below: its LEAVE */
		if (round)
			shmrpc_close(a);
		do
			rc = epoll_wait(ep, &out, 1, 10000);
		while (rc < 0 && errno == EINTR);
		assert_int_equal(rc, 1);
		rc = shmrpc_dispatch(r, ev_handler, &s, 0);
		assert_true(rc >= 1);
		if (!round)
			shmrpc_close(a);
	}
	assert_true(seen_wait(&s, 4, 10000)); /* JOIN, LEAVE, JOIN, LEAVE */
	while (shmrpc_dispatch(r, ev_handler, &s, 0) > 0)
		;
	assert_int_equal(s.events, 4);
	close(ep);
	shmrpc_close(r);
}

/* ======================================================= drain before death */

struct streamer {
	struct th_dom *d;
	_Atomic uint64_t *published; /* shared with the parent */
	uint64_t count;		     /* 0: until killed */
	struct th_gate ready;
};

/* A child: joins as "k", sends ints 0, 1, 2... to "r" (blocking when the
 * ring is full), counting those sent; opens ready once @count are sent. */
static int streamer_main(void *arg)
{
	struct streamer *s = arg;
	struct shmrpc_node *n;
	uint64_t i;
	int v;

	CHILD_CHECK_RC(shmrpc_open("k", &s->d->opts, &n), 0);
	for (i = 0;; i++) {
		if (s->count && i == s->count)
			th_gate_open(&s->ready);
		v = (int)i;
		if (s->count && i >= s->count) {
			th_sleep_ms(1000);
			continue;
		}
		CHILD_CHECK_RC(shmrpc_send(n, "r", &v, sizeof(v), -1), 0);
		atomic_store_explicit(s->published, i + 1, memory_order_release);
		if (!s->count && i == 100)
			th_gate_open(&s->ready);
	}
	return 1;
}

/* Receive from k until its DEATH: ints @got, @got + 1... with none
 * missing; returns the count of k's messages, those before @got included. */
static uint64_t drain_until_death(struct shmrpc_node *r, pid_t pid, uint64_t got)
{
	char from[SHMRPC_NAME_MAX + 1];
	uint8_t buf[sizeof(struct shmrpc_event)];
	struct shmrpc_event ev;
	int len, v;

	for (;;) {
		len = shmrpc_recv(r, buf, sizeof(buf), from, 10000);
		assert_true(len > 0);
		if (!strcmp(from, SHMRPC_EVENT_FROM)) {
			memcpy(&ev, buf, sizeof(ev));
			if (ev.type == SHMRPC_EV_JOIN)
				continue;
			assert_int_equal(ev.type, SHMRPC_EV_DEATH);
			assert_string_equal(ev.name, "k");
			assert_int_equal(ev.pid, (uint32_t)pid);
			return got;
		}
		assert_string_equal(from, "k");
		assert_int_equal(len, sizeof(v));
		memcpy(&v, buf, sizeof(v));
		if ((uint64_t)v != got)
			fprintf(stderr, "message %d after %llu\n", v, (unsigned long long)got);
		assert_int_equal((uint64_t)v, got);
		got++;
	}
}

/* A sender killed mid-stream while the receiver reads its ring: every
 * message it published arrives, then its DEATH, then nothing. Three
 * rounds, killed 0, 1 and 3 ms after the receiver read its first 50. */
static void test_events_drain_before_death_opened(void **state)
{
	struct th_dom *d = *state;
	struct streamer s = { .d = d };
	struct shmrpc_node *r;
	uint64_t got, pub;
	char buf[64];
	pid_t pid;
	int i, v, round;

	s.published = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(s.published != MAP_FAILED);
	r = ev_open(d, "r", SHMRPC_EV_DEATH, 0);
	assert_non_null(r);
	for (round = 0; round < 3; round++) {
		atomic_store(s.published, 0);
		th_gate_init(&s.ready);
		pid = th_fork(streamer_main, &s);
		assert_int_equal(th_gate_wait(&s.ready, 10000), 0);
		for (i = 0; i < 50; i++) { /* read some, mid-stream */
			assert_int_equal(shmrpc_recv(r, &v, sizeof(v), NULL, 10000), sizeof(v));
			assert_int_equal(v, i);
		}
		if (round)
			usleep(1000 * (2 * round - 1));
		kill(pid, SIGKILL);
		assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
		pub = atomic_load_explicit(s.published, memory_order_acquire);
		got = drain_until_death(r, pid, 50);
		/* it may have died between a publish and its count */
		print_message("killed mid-stream: %llu published (counted), %llu received\n",
			      (unsigned long long)pub, (unsigned long long)got);
		assert_true(got == pub || got == pub + 1);
		assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
		assert_int_equal(th_dom_files(d->name, ".ring."), 0);
		th_gate_close(&s.ready);
	}
	munmap(s.published, 4096);
	shmrpc_close(r);
}

/* The receiver had not opened the dead sender's ring (it never received):
 * the reclaim leaves it, closed and announced, and the receiver drains it
 * before the DEATH. (Before, the reclaim unlinked it: messages lost.) */
static void test_events_drain_before_death_unopened(void **state)
{
	struct th_dom *d = *state;
	struct streamer s = { .d = d, .count = 40 };
	struct shmrpc_node *r, *w;
	char buf[64];
	pid_t pid;

	s.published = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(s.published != MAP_FAILED);
	r = ev_open(d, "r", EV_ALL, 0);
	w = th_open(d, "w"); /* another node, to look k up */
	assert_non_null(r);
	assert_non_null(w);
	th_gate_init(&s.ready);
	pid = th_fork(streamer_main, &s);
	assert_int_equal(th_gate_wait(&s.ready, 10000), 0);
	kill(pid, SIGKILL);
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	/* Nobody watches k (no ring was opened, no reaper): w's lookup finds
	 * it dead and reclaims it. Its ring to r stays for r. */
	assert_int_equal(shmrpc_is_local(w, "k"), 0);
	assert_int_equal(th_dom_files(d->name, ".ring."), 1);
	expect_event(r, SHMRPC_EV_JOIN, "w", getpid(), 0);
	assert_int_equal(drain_until_death(r, pid, 0), 40);
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(th_dom_files(d->name, ".ring."), 0); /* drained, unlinked */
	th_gate_close(&s.ready);
	munmap(s.published, 4096);
	shmrpc_close(w);
	shmrpc_close(r);
}

/* A reclaimed sender's ring to a subscriber that does not drain it goes
 * with its receiver. (To a receiver without events it goes at the reclaim,
 * as it always did: test_reaper's lazy reclaims check that.) */
static void test_events_undrained_ring_goes_with_receiver(void **state)
{
	struct th_dom *d = *state;
	struct streamer s = { .d = d, .count = 5 };
	struct shmrpc_node *r, *w;
	pid_t pid;

	s.published = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(s.published != MAP_FAILED);
	r = ev_open(d, "r", EV_ALL, 0);
	w = th_open(d, "w");
	assert_non_null(r);
	assert_non_null(w);
	th_gate_init(&s.ready);
	pid = th_fork(streamer_main, &s);
	assert_int_equal(th_gate_wait(&s.ready, 10000), 0);
	kill(pid, SIGKILL);
	assert_int_equal(th_wait(pid, 10000), 128 + SIGKILL);
	assert_int_equal(shmrpc_is_local(w, "k"), 0);
	assert_int_equal(th_dom_files(d->name, ".ring."), 1);
	shmrpc_close(r); /* never received: its close removes the ring */
	assert_int_equal(th_dom_files(d->name, ".ring."), 0);
	th_gate_close(&s.ready);
	munmap(s.published, 4096);
	shmrpc_close(w);
}

/* ======================================================= order and gates */

struct joiner {
	struct th_dom *d;
	const char *name;
	int first; /* sends first, first + 1, first + 2 to "r" */
	bool stay; /* then waits to be killed (else closes) */
	struct th_gate ready;
};

static int joiner_main(void *arg)
{
	struct joiner *j = arg;
	struct shmrpc_node *n;
	int v;

	CHILD_CHECK_RC(shmrpc_open(j->name, &j->d->opts, &n), 0);
	for (v = j->first; v < j->first + 3; v++)
		CHILD_CHECK_RC(shmrpc_send(n, "r", &v, sizeof(v), 10000), 0);
	th_gate_open(&j->ready);
	if (j->stay)
		for (;;)
			th_sleep_ms(1000);
	shmrpc_close(n);
	return 0;
}

static pid_t joiner_start(struct joiner *j, struct th_dom *d, const char *name, int first,
			  bool stay)
{
	pid_t pid;

	j->d = d;
	j->name = name;
	j->first = first;
	j->stay = stay;
	th_gate_init(&j->ready);
	pid = th_fork(joiner_main, j);
	assert_true(pid > 0);
	return pid;
}

/* A node that joins and sends at once: its JOIN first, whatever the race
 * between the receiver's look at the log and its scan of new rings; and a
 * LEAVE after its messages. */
static void test_events_join_before_messages(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0);
	struct joiner j;
	pid_t pid;
	int i;

	assert_non_null(r);
	for (i = 0; i < 20; i++) {
		pid = joiner_start(&j, d, "y", 10 * i, false);
		expect_event(r, SHMRPC_EV_JOIN, "y", pid, 10000);
		expect_int(r, "y", 10 * i, 10000);
		expect_int(r, "y", 10 * i + 1, 10000);
		expect_int(r, "y", 10 * i + 2, 10000);
		expect_event(r, SHMRPC_EV_LEAVE, "y", pid, 10000);
		assert_int_equal(th_wait(pid, 10000), 0);
		th_gate_close(&j.ready);
	}
	shmrpc_close(r);
}

/* x dies with messages in a ring r never opened; a new x joins and sends
 * before r looks: r gets the old x's messages, its DEATH, the new x's
 * JOIN, then the new x's messages (gated behind the DEATH held for the
 * drain). */
static void test_events_death_then_rejoin_in_order(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *w;
	struct joiner j1, j2;
	struct shmrpc_event e1, e2;
	pid_t p1, p2;

	w = th_open(d, "w");
	assert_non_null(r);
	assert_non_null(w);
	expect_event(r, SHMRPC_EV_JOIN, "w", getpid(), 0);
	p1 = joiner_start(&j1, d, "x", 100, true);
	assert_int_equal(th_gate_wait(&j1.ready, 10000), 0);
	kill(p1, SIGKILL);
	assert_int_equal(th_wait(p1, 10000), 128 + SIGKILL);
	assert_int_equal(shmrpc_is_local(w, "x"), 0); /* reclaims it */
	p2 = joiner_start(&j2, d, "x", 200, false);
	assert_int_equal(th_wait(p2, 10000), 0); /* sent and left */
	e1 = expect_event(r, SHMRPC_EV_JOIN, "x", p1, 0);
	expect_int(r, "x", 100, 0);
	expect_int(r, "x", 101, 0);
	expect_int(r, "x", 102, 0);
	e2 = expect_event(r, SHMRPC_EV_DEATH, "x", p1, 0);
	assert_true(e1.id == e2.id);
	e2 = expect_event(r, SHMRPC_EV_JOIN, "x", p2, 0);
	assert_true(e1.id != e2.id);
	expect_int(r, "x", 200, 0);
	expect_int(r, "x", 201, 0);
	expect_int(r, "x", 202, 0);
	expect_event(r, SHMRPC_EV_LEAVE, "x", p2, 0);
	th_gate_close(&j1.ready);
	th_gate_close(&j2.ready);
	shmrpc_close(w);
	shmrpc_close(r);
}

/* ============================================================ overflow */

#define FLOOD 1000

/* The event at log position @idx (0: the first JOIN) of the flood. */
static void flood_check(const struct shmrpc_event *ev, uint64_t idx)
{
	char name[32];

	snprintf(name, sizeof(name), "f%llu", (unsigned long long)(idx / 2));
	assert_string_equal(ev->name, name);
	assert_int_equal(ev->type, idx % 2 ? SHMRPC_EV_LEAVE : SHMRPC_EV_JOIN);
}

/* 1000 joins and leaves while the receiver does not look: nothing blocks;
 * it gets the last SHMRPC_EV_LOG, the first saying how many were lost. */
static void test_events_flood_not_read(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *f;
	struct shmrpc_event ev;
	char name[16], buf[16];
	uint64_t idx;
	int i;

	assert_non_null(r);
	for (i = 0; i < FLOOD; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		f = th_open(d, name);
		assert_non_null(f);
		shmrpc_close(f);
	}
	for (i = 0; i < SHMRPC_EV_LOG; i++) {
		assert_int_equal(shmrpc_recv(r, &ev, sizeof(ev), NULL, 0), sizeof(ev));
		assert_int_equal(ev.dropped, i ? 0 : 2 * FLOOD - SHMRPC_EV_LOG);
		idx = 2 * FLOOD - SHMRPC_EV_LOG + (uint64_t)i;
		flood_check(&ev, idx);
	}
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	shmrpc_close(r);
}

struct slow {
	pthread_mutex_t lock;
	uint64_t idx; /* log position of the next event, from the dropped counts */
	uint64_t got, dropped;
	int bad;
};

static void slow_handler(struct shmrpc_node *n, const char *from, const void *data, size_t len,
			 void *arg)
{
	struct slow *s = arg;
	struct shmrpc_event ev;
	char name[32];

	(void)n;
	if (strcmp(from, SHMRPC_EVENT_FROM) || len != sizeof(ev)) {
		s->bad++;
		return;
	}
	memcpy(&ev, data, sizeof(ev));
	pthread_mutex_lock(&s->lock);
	s->idx += ev.dropped;
	s->dropped += ev.dropped;
	snprintf(name, sizeof(name), "f%llu", (unsigned long long)(s->idx / 2));
	if (strcmp(ev.name, name) || ev.type != (s->idx % 2 ? SHMRPC_EV_LEAVE : SHMRPC_EV_JOIN))
		s->bad++;
	s->idx++;
	s->got++;
	pthread_mutex_unlock(&s->lock);
	usleep(200); /* slow */
}

/* The same with a receiver that reads, slowly, meanwhile: what it gets
 * plus what it was told it lost is every event, each where it belongs. */
static void test_events_flood_slow_receiver(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", SHMRPC_EV_JOIN | SHMRPC_EV_LEAVE, 0), *f;
	struct slow s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0 };
	char name[16];
	uint64_t total = 0;
	int i;

	assert_non_null(r);
	assert_int_equal(shmrpc_start(r, slow_handler, &s), 0);
	for (i = 0; i < FLOOD; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		f = th_open(d, name);
		assert_non_null(f);
		shmrpc_close(f);
	}
	for (i = 0; i < 10000 && total < 2 * FLOOD; i++) {
		th_sleep_ms(1);
		pthread_mutex_lock(&s.lock);
		total = s.got + s.dropped;
		pthread_mutex_unlock(&s.lock);
	}
	assert_int_equal(shmrpc_stop(r), 0);
	print_message("flood of %d events: %llu delivered, %llu dropped\n", 2 * FLOOD,
		      (unsigned long long)s.got, (unsigned long long)s.dropped);
	assert_int_equal(s.got + s.dropped, 2 * FLOOD);
	assert_int_equal(s.bad, 0);
	assert_true(s.got >= SHMRPC_EV_LOG); /* at least the last log's worth */
	shmrpc_close(r);
}

/* ============================================================ a hostile log */

/* Map domain @d's registry as a member can, read-write. */
static struct shmrpc__reg_hdr *reg_map(const struct th_dom *d, size_t *size)
{
	char path[300];
	struct stat st;
	void *p;
	int fd;

	th_shm_path(path, sizeof(path), d->name, "reg");
	fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(p != MAP_FAILED);
	*size = (size_t)st.st_size;
	return p;
}

static struct shmrpc__ev_entry *reg_entry(struct shmrpc__reg_hdr *h, uint64_t idx)
{
	return (struct shmrpc__ev_entry *)((char *)h + shmrpc__reg_evlog_off(h->capacity)) +
	       idx % SHMRPC__EV_LOG;
}

/* Append a forged entry (a member needs no lock to write the file). */
static void forge(struct shmrpc__reg_hdr *h, uint32_t type, uint64_t id, const char *name)
{
	uint64_t i = atomic_load(&h->ev_head);
	struct shmrpc__ev_entry *e = reg_entry(h, i);
	char buf[64] = { 0 };

	snprintf(buf, sizeof(buf), "%s", name);
	atomic_store(&e->type, type);
	atomic_store(&e->id, id);
	memcpy((void *)e->name, buf, sizeof(buf));
	atomic_store(&e->seq, i + 1);
	atomic_store(&h->ev_head, i + 1);
	atomic_fetch_add(&h->epoch, 1);
}

static void test_events_hostile_log(void **state)
{
	struct th_dom *d = *state;
	struct shmrpc_node *r = ev_open(d, "r", EV_ALL, 0), *a, *b;
	struct shmrpc_event ev;
	struct shmrpc__reg_hdr *h;
	uint64_t head, sleeps;
	char buf[16];
	size_t size;

	assert_non_null(r);
	a = th_open(d, "a");
	ev = expect_event(r, SHMRPC_EV_JOIN, "a", getpid(), 1000);
	h = reg_map(d, &size);
	/* garbage: a type no writer makes, a name that is no name, an id
	 * beyond the slots; then a LEAVE of a node that is live (a lie) */
	forge(h, 0x40, ev.id, "a");
	forge(h, SHMRPC_EV_JOIN, ev.id, "bad/name");
	forge(h, SHMRPC_EV_JOIN, (uint64_t)999999 << 32 | 1, "z");
	forge(h, SHMRPC_EV_LEAVE, ev.id, "a");
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 0), -EAGAIN);
	b = th_open(d, "b");
	ev = expect_event(r, SHMRPC_EV_JOIN, "b", getpid(), 1000);
	assert_int_equal(ev.dropped, 3); /* the unreadable ones, counted */
	/* ev_head moved backwards: nothing to read, and the receiver sleeps
	 * (no loop on a head it has passed) */
	head = atomic_load(&h->ev_head);
	atomic_store(&h->ev_head, head - 3);
	sleeps = th_stats(r).sleeps;
	assert_int_equal(shmrpc_recv(r, buf, sizeof(buf), NULL, 300), -ETIMEDOUT);
	assert_true(th_stats(r).sleeps > sleeps);
	atomic_store(&h->ev_head, head);
	munmap(h, size);
	shmrpc_close(b);
	expect_event(r, SHMRPC_EV_LEAVE, "b", getpid(), 1000);
	shmrpc_close(a);
	expect_event(r, SHMRPC_EV_LEAVE, "a", getpid(), 1000);
	shmrpc_close(r);
}

#define T(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* those that fork first: under ThreadSanitizer, a child forked
		 * after this process ran and joined threads of its own (the
		 * receiving thread, shmrpc_fd's helper) fails to start its own
		 * ("dup thread with used id") */
		T(test_events_join_leave_death_in_order),
		T(test_events_mask),
		T(test_events_drain_before_death_opened),
		T(test_events_drain_before_death_unopened),
		T(test_events_undrained_ring_goes_with_receiver),
		T(test_events_join_before_messages),
		T(test_events_death_then_rejoin_in_order),
		T(test_events_opts),
		T(test_events_peek_release),
		T(test_events_recv_batch),
		T(test_events_hostile_log),
		T(test_events_flood_not_read),
		T(test_events_dispatch_and_thread),
		T(test_events_fd_in_epoll),
		T(test_events_flood_slow_receiver),
	};

	th_main_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
