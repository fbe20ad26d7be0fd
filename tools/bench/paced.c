// SPDX-License-Identifier: MIT
/*
 * Paced ping-pong: one-way latency under an offered load. Side 0 sends a
 * request at cfg->rate requests per second (one every 1/rate s) and waits
 * for its reply; side 1 answers each request, as in pingpong.c (whose
 * responder it is). So between requests the receivers have nothing to do
 * for about 1/rate - RTT: at 1k/s they wait ~1 ms, at 100k/s ~10 us, and a
 * receiver that spins adaptively decides by itself whether to stay awake.
 *
 * Schedule: request k is due at t0 + k / rate. Side 0 waits for that time
 * by sleeping (clock_nanosleep, timer slack 1 ns) while more than
 * PACE_SLEEP_NS remain, then spinning; a request that is late goes at once
 * and the schedule does not try to catch up (no bursts). The achieved rate
 * is reported next to the offered one.
 *
 * One-way latency = RTT / 2 measured from the send call to the reply, the
 * same as pingpong. CPU per side is getrusage over the window; side 0's
 * spinning for the schedule is the load generator's, not the transport's:
 * it is measured (wall time of those spins) and reported apart.
 *
 * The warm-up is cfg->warmup requests at the same rate, so adaptive
 * receivers have settled before the window opens.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "bench.h"

#define PACE_SLEEP_NS 200000 /* sleep only when more than this remains */
#define PACE_EARLY_NS 100000 /* wake this much before the due time, then spin */

/* Wait until @due; returns the wall time spent spinning. */
static int64_t pace_until(int64_t due)
{
	int64_t now = bench_now_ns(), spun;
	struct timespec ts;

	if (due - now > PACE_SLEEP_NS) {
		ts.tv_sec = (due - PACE_EARLY_NS) / 1000000000;
		ts.tv_nsec = (due - PACE_EARLY_NS) % 1000000000;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		now = bench_now_ns();
	}
	spun = now;
	while (now < due) {
		bench_cpu_relax();
		now = bench_now_ns();
	}
	return now - spun;
}

static int paced_round(struct bench_chan *ch, struct bench_ctrl *c, unsigned char *buf, size_t size,
		       uint64_t seq, uint64_t *rtt)
{
	int64_t t0 = bench_now_ns();
	int n, err;

	bench_msg_stamp(buf, size, seq);
	err = ch->t->send(ch, buf, size);
	if (err)
		return bench_fail(c, 0, err, "request #%llu: send: %s", (unsigned long long)seq,
				  strerror(-err));
	n = ch->t->recv(ch, buf, size);
	if (n < 0)
		return bench_fail(c, 0, n, "request #%llu: recv: %s", (unsigned long long)seq,
				  strerror(-n));
	if ((size_t)n != size || bench_msg_check(buf, size, seq))
		return bench_fail(c, 0, -EBADMSG, "request #%llu: bad reply",
				  (unsigned long long)seq);
	*rtt = (uint64_t)(bench_now_ns() - t0);
	return 0;
}

static int paced_initiator(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
			   unsigned char *buf)
{
	int64_t gap = (int64_t)(1e9 / cfg->rate), due, end, pace = 0;
	uint64_t n = 0, rtt, seq = 0;
	struct bench_acct a;
	int err;

	prctl(PR_SET_TIMERSLACK, 1UL);
	due = bench_now_ns();
	for (; seq < cfg->warmup; seq++) {
		pace_until(due);
		err = paced_round(ch, c, buf, cfg->msg_size, seq, &rtt);
		if (err)
			return err;
		due += gap;
		if (due < bench_now_ns())
			due = bench_now_ns();
	}
	bench_acct_begin(&a);
	end = a.wall0 + (int64_t)(cfg->duration * 1e9);
	while (n < c->cap && bench_now_ns() < end) {
		pace += pace_until(due);
		err = paced_round(ch, c, buf, cfg->msg_size, seq++, &rtt);
		if (err)
			return err;
		c->samples[n++] = rtt;
		due += gap;
		if (due < bench_now_ns())
			due = bench_now_ns(); /* late: go at once, no catching up */
	}
	c->n = n;
	bench_acct_end(&a, &c->side[0], 2 * n);
	c->side[0].pace_ns = pace;
	bench_msg_stamp(buf, cfg->msg_size, UINT64_MAX);
	err = ch->t->send(ch, buf, cfg->msg_size);
	return err ? bench_fail(c, 0, err, "send STOP: %s", strerror(-err)) : 0;
}

int bench_paced_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
		     const struct bench_cfg *cfg)
{
	unsigned char *buf;
	int err;

	if (side == 1)
		return bench_pingpong_side(ch, c, side, cfg); /* the responder */
	buf = bench_msg_alloc(cfg->msg_size);
	if (!buf)
		return bench_fail(c, side, -ENOMEM, "side %d: out of memory", side);
	err = paced_initiator(ch, c, cfg, buf);
	free(buf);
	return err;
}
