// SPDX-License-Identifier: MIT
/*
 * shmrpc-bridge: joins libshmrpc domains of several hosts over NATS
 * (docs/cross-host.md). This file: start-up, the event loop, shutdown.
 *
 * One epoll set holds the NATS socket (driven through conn.c's adapter),
 * every proxy's shmrpc_fd (its senders' messages go out: fwd.c), each
 * control node's fd, a 10 ms timer (registry polls, heartbeats, dead
 * hosts, grants, the status segment), a signalfd (SIGINT, SIGTERM) and an
 * eventfd other threads write to wake the loop. While messages wait for
 * space in a local ring, the loop also wakes every millisecond to retry.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bridge.h"

#define TICK_NS (10 * 1000000ll)
#define STATUS_NS (250 * 1000000ll)
/* Entries wait for room in a ring: retried after RETRY_MIN_NS, the wait
 * doubling up to RETRY_MAX_NS while retries deliver nothing (a receiver
 * that reads fast gets its ring refilled within tens of microseconds, one
 * that does not costs few wake-ups). */
#define RETRY_MIN_NS (50 * 1000ll)
#define RETRY_MAX_NS (1000 * 1000ll)

static int add_fd(struct bridge *br, int fd, enum br_tag_kind kind)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = (uint64_t)kind << BR_TAG_KIND_SHIFT };

	return epoll_ctl(br->ep, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static int fds_open(struct bridge *br)
{
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN); /* a dead server's socket is an error, not a death */
	br->ep = epoll_create1(EPOLL_CLOEXEC);
	br->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	br->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	br->wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (br->ep < 0 || br->tfd < 0 || br->sfd < 0 || br->wfd < 0)
		return -errno;
	if (timerfd_settime(br->tfd, 0, &its, NULL))
		return -errno;
	if (add_fd(br, br->tfd, BR_TAG_TIMER) || add_fd(br, br->sfd, BR_TAG_SIGNAL) ||
	    add_fd(br, br->wfd, BR_TAG_WAKE))
		return -errno;
	return 0;
}

static int dom_init(struct bridge *br, int i)
{
	struct br_dom *d = &br->doms[i];
	int rc;

	d->br = br;
	d->idx = i;
	snprintf(d->name, sizeof(d->name), "%s", br->o.domains[i]);
	br_esc(d->name, d->esc);
	br_map_init(&d->proxies, offsetof(struct br_proxy, name));
	br_map_init(&d->retry, 0); /* keys at the start of names.c's struct retry */
	br_bc_init(d);
	if ((rc = br_status_open(d)) || (rc = br_local_init(d)) || (rc = br_remote_init(d)))
		return rc;
	blog(BR_LOG_INFO, "bridging domain=%s host=%s", d->name, br->o.host);
	return 0;
}

static void drain(uint64_t fd)
{
	uint64_t v;

	if (read((int)fd, &v, sizeof(v)) < 0)
		return; /* nothing there: a spurious wake */
}

/* Returns how many queued entries went into rings. */
static uint32_t tick(struct bridge *br, bool timer)
{
	static int64_t status_ns;
	int64_t now = br_now_ns();
	uint32_t sent = 0;
	int i;

	pthread_mutex_lock(&br->mu);
	if (atomic_exchange(&br->resync, false)) {
		br_conn_limits(br);
		for (i = 0; i < br->ndoms; i++)
			br_remote_resync(&br->doms[i]);
	}
	for (i = 0; i < br->ndoms; i++) {
		struct br_dom *d = &br->doms[i];

		br_xc_ingest(d);
		sent += br_dlv_retry(d);
		br_bc_tick(d, now);
		br_fwd_out(d);
		if (!timer)
			continue;
		br_xc_tick(d);
		br_local_poll(d, now);
		br_remote_tick(d, now);
		br_fwd_tick(d, now);
		br_names_tick(d, now);
		br_dlv_idle_grants(d, now);
	}
	if (timer && now - status_ns >= STATUS_NS) {
		for (i = 0; i < br->ndoms; i++)
			br_status_update(&br->doms[i]);
		status_ns = now;
	}
	pthread_mutex_unlock(&br->mu);
	return sent;
}

/* true for traffic: a proxy's messages or the socket */
static bool on_event(struct bridge *br, const struct epoll_event *ev)
{
	uint64_t kind = ev->data.u64 >> BR_TAG_KIND_SHIFT;
	uint32_t idx = (uint32_t)ev->data.u64;
	struct br_proxy *px;

	switch (kind) {
	case BR_TAG_NATS:
		if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
			br_conn_read(br);
			pthread_mutex_lock(&br->mu);
			br_conn_poll(br);
			for (idx = 0; idx < (uint32_t)br->ndoms; idx++) {
				br_dlv_round(&br->doms[idx]);
				br_fwd_out(&br->doms[idx]); /* answers of deliveries */
			}
			pthread_mutex_unlock(&br->mu);
		}
		if (ev->events & EPOLLOUT)
			br_conn_write(br);
		return true;
	case BR_TAG_TIMER:
		drain((uint64_t)br->tfd);
		tick(br, true);
		return false;
	case BR_TAG_WAKE:
		drain((uint64_t)br->wfd);
		tick(br, false);
		return false;
	case BR_TAG_SIGNAL:
		br->quit = true;
		return false;
	case BR_TAG_PROXY:
		pthread_mutex_lock(&br->mu);
		if ((px = br_proxy_by_tag(br, idx))) {
			br_fwd_drain(px->d, px);
			br_fwd_out(px->d); /* proxies a broadcast released */
		}
		pthread_mutex_unlock(&br->mu);
		return true;
	case BR_TAG_CTL:
		pthread_mutex_lock(&br->mu);
		if (idx < (uint32_t)br->ndoms)
			br_local_ctl_drain(&br->doms[idx]);
		pthread_mutex_unlock(&br->mu);
		return false;
	default:
		return false;
	}
}

static bool pending(struct bridge *br)
{
	int i;

	for (i = 0; i < br->ndoms; i++)
		if (br->doms[i].pending || br->doms[i].bcs)
			return true;
	return false;
}

/*
 * After traffic the loop polls (epoll_wait with no timeout) for up to
 * --spin-us before it sleeps: the next message of a burst, or the reply
 * of a round trip, then costs neither a sleep nor the wake-up of this
 * thread (tens of microseconds on a VM), as the library's receivers do.
 */
/* epoll_wait for @ns at most (-1: no bound), in microseconds where the
 * kernel has epoll_pwait2 (5.11), else in milliseconds (rounded up). */
static int wait_events(struct bridge *br, struct epoll_event *evs, int64_t ns)
{
	static bool no_pwait2;
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	int n;

	if (ns < 0 || no_pwait2)
		return epoll_wait(br->ep, evs, 64, ns < 0 ? -1 : (int)((ns + 999999) / 1000000));
	n = epoll_pwait2(br->ep, evs, 64, &ts, NULL);
	if (n < 0 && errno == ENOSYS) {
		no_pwait2 = true;
		return wait_events(br, evs, ns);
	}
	return n;
}

static void loop(struct bridge *br)
{
	int64_t retry_ns = 0, gap = RETRY_MIN_NS, spin_end = 0, now, wait;
	struct epoll_event evs[64];
	bool busy;
	int n, i;

	while (!br->quit) {
		now = br_now_ns();
		/* Racy read of d->pending without mu: a wrong guess costs one
		 * extra wake or one 10 ms tick, never a lost message. */
		if (now < spin_end)
			wait = 0;
		else if (!pending(br))
			wait = -1;
		else if ((wait = retry_ns + gap - now) < 0)
			wait = 0;
		n = wait_events(br, evs, wait);
		for (i = 0, busy = false; i < n; i++)
			busy |= on_event(br, &evs[i]);
		now = br_now_ns();
		if (busy)
			spin_end = now + (int64_t)br->o.spin_us * 1000;
		if (pending(br) && now - retry_ns >= gap) {
			if (tick(br, false))
				gap = RETRY_MIN_NS;
			else if ((gap *= 2) > RETRY_MAX_NS)
				gap = RETRY_MAX_NS;
			retry_ns = now;
		}
	}
}

static void shutdown_bridge(struct bridge *br)
{
	int i, k;

	pthread_mutex_lock(&br->mu);
	for (i = 0; i < br->ndoms; i++) {
		br_bc_fini(&br->doms[i]);
		br_local_bye(&br->doms[i]);
		br_local_fini_subs(&br->doms[i]);
		br_remote_fini(&br->doms[i]);
	}
	pthread_mutex_unlock(&br->mu);
	for (k = 0; k < 10; k++) /* the BYEs out, if the socket takes them */
		br_conn_write(br);
	br_conn_close(br); /* libnats' threads are gone after this */
	for (i = 0; i < br->ndoms; i++)
		br_names_fini(&br->doms[i]);
	br_xc_stop(br); /* after the proxies: their calls are over */
	for (i = 0; i < br->ndoms; i++) {
		br_local_fini(&br->doms[i]);
		br_status_close(&br->doms[i]);
	}
}

int main(int argc, char **argv)
{
	struct bridge br = { 0 };
	int rc, i;

	rc = br_opts_parse(argc, argv, &br.o);
	if (rc)
		return rc > 0 ? 0 : 2;
	br_log_level(br.o.log_level);
	pthread_mutex_init(&br.mu, NULL);
	if (getrandom(&br.epoch, sizeof(br.epoch), 0) != sizeof(br.epoch) || !br.epoch)
		br.epoch = (uint64_t)br_wall_ns();
	br.doms = calloc((size_t)br.o.ndomains, sizeof(*br.doms));
	if (!br.doms || (rc = fds_open(&br)) || (rc = br_conn_open(&br))) {
		blog(BR_LOG_ERROR, "start: %s", strerror(rc ? -rc : ENOMEM));
		return 1;
	}
	pthread_mutex_lock(&br.mu);
	br.ndoms = br.o.ndomains;
	for (i = 0, rc = 0; i < br.ndoms && !rc; i++)
		rc = dom_init(&br, i);
	pthread_mutex_unlock(&br.mu);
	if (!rc)
		loop(&br);
	blog(BR_LOG_INFO, "stopping host=%s", br.o.host);
	shutdown_bridge(&br);
	free(br.tags);
	free(br.doms);
	br_opts_free(&br.o);
	return rc ? 1 : 0;
}
