// SPDX-License-Identifier: MIT
/*
 * Ping-pong: one-way latency as half a round trip.
 *
 * Side 0 sends message #i (sequence number at both ends), side 1 receives
 * it and sends it back, side 0 receives it and checks it. Neither side does
 * anything else, so with a blocking transport each side sleeps in the
 * kernel until the other's message wakes it: every one-way trip pays one
 * wake-up. Side 0 reads CLOCK_MONOTONIC once per round trip and records
 * every round trip; one-way = RTT / 2 (the clock read is inside each
 * sample, once per RTT: see the clock cost in the report header).
 *
 * cfg->warmup round trips come first and are not recorded. Measuring stops
 * after cfg->iters round trips or cfg->duration seconds, whichever first;
 * then side 0 sends a STOP message and side 1 exits without replying.
 * CPU time: side 0 accounts from its first measured round trip, side 1
 * from its reply to the last warm-up message, both up to the STOP.
 *
 * The cacheline scenario is the same with no transport at all: the two
 * sides hand one 64-bit word back and forth (odd: side 0's turn is over,
 * even: side 1's), the physical floor of any cross-CPU message.
 *
 * Floor blocks (cfg->floor_blocks, for transports that spin): on this VM
 * the cost of moving a cache line between the two vCPUs changes several
 * fold from one second to the next, as the hypervisor moves vCPUs between
 * physical cores. So a spinning transport's ratio to the floor is measured
 * in alternating blocks by the same two processes: K transport round
 * trips, a PP_LINE message switches side 1 to the cache-line word, K line
 * round trips, LINE_END switches it back. The first round trip of each
 * block (it carries the switch) is not recorded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define PP_STOP UINT64_MAX
#define PP_LINE (UINT64_MAX - 1)  /* transport message: switch to the line */
#define LINE_END (UINT64_MAX - 1) /* line value: back to the transport */

static int pp_round(struct bench_chan *ch, struct bench_ctrl *c, unsigned char *buf, size_t size,
		    uint64_t seq)
{
	int n, err;

	bench_msg_stamp(buf, size, seq);
	err = ch->t->send(ch, buf, size);
	if (err)
		return bench_fail(c, 0, err, "ping #%llu: send: %s", (unsigned long long)seq,
				  strerror(-err));
	n = ch->t->recv(ch, buf, size);
	if (n < 0)
		return bench_fail(c, 0, n, "ping #%llu: recv: %s", (unsigned long long)seq,
				  strerror(-n));
	if ((size_t)n != size || bench_msg_check(buf, size, seq))
		return bench_fail(c, 0, -EBADMSG, "ping #%llu: bad reply (%d bytes, seq %llu)",
				  (unsigned long long)seq, n,
				  (unsigned long long)bench_msg_seq(buf));
	return 0;
}

/* Side 1, after PP_LINE: answer line round trips until LINE_END. */
static void line_serve(struct bench_ctrl *c)
{
	uint64_t v, last = 0;

	for (;;) {
		v = atomic_load_explicit(&c->line, memory_order_acquire);
		if (v == LINE_END)
			return;
		if ((v & 1) && v != last) {
			/* Release: pairs with side 0's acquire in line_block. */
			atomic_store_explicit(&c->line, v + 1, memory_order_release);
			last = v;
		}
		bench_cpu_relax();
	}
}

/* Side 0: k + 1 line round trips, the last k recorded at @out. */
static void line_block(struct bench_ctrl *c, uint64_t *lv, uint64_t *out, uint64_t k)
{
	int64_t t, prev = bench_now_ns();

	for (uint64_t i = 0; i <= k; i++) {
		uint64_t v = 2 * ++*lv + 1;

		/* Release/acquire with line_serve, as in line_round. */
		atomic_store_explicit(&c->line, v, memory_order_release);
		while (atomic_load_explicit(&c->line, memory_order_acquire) != v + 1)
			bench_cpu_relax();
		t = bench_now_ns();
		if (i)
			out[i - 1] = (uint64_t)(t - prev);
		prev = t;
	}
	atomic_store_explicit(&c->line, LINE_END, memory_order_release);
}

/* Side 0, floor blocks: transport and line blocks alternate. *n: transport
 * samples recorded (as many floor samples). */
static int pp_interleaved(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
			  unsigned char *buf, uint64_t max, uint64_t *n)
{
	uint64_t k = max / (uint64_t)cfg->floor_blocks, seq = cfg->warmup, lv = 0;
	int64_t t, prev, end = bench_now_ns() + (int64_t)(cfg->duration * 1e9);
	int err;

	c->block = k = k ? k : 1;
	for (int b = 0; b < cfg->floor_blocks && (b + 1) * k <= max; b++) {
		prev = bench_now_ns();
		for (uint64_t i = 0; i <= k; i++) {
			err = pp_round(ch, c, buf, cfg->msg_size, seq++);
			if (err)
				return err;
			t = bench_now_ns();
			if (i)
				c->samples[*n + i - 1] = (uint64_t)(t - prev);
			prev = t;
		}
		/* Not LINE_END any more before side 1 looks; the transport's
		 * send orders this store before the message. */
		atomic_store_explicit(&c->line, 0, memory_order_relaxed);
		bench_msg_stamp(buf, cfg->msg_size, PP_LINE);
		err = ch->t->send(ch, buf, cfg->msg_size);
		if (err)
			return bench_fail(c, 0, err, "send LINE: %s", strerror(-err));
		line_block(c, &lv, c->samples + c->cap / 2 + *n, k);
		*n += k;
		if (bench_now_ns() >= end)
			break;
	}
	c->n_floor = *n;
	return 0;
}

static int pp_initiator(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
			unsigned char *buf)
{
	uint64_t n = 0, max = cfg->iters < c->cap ? cfg->iters : c->cap;
	struct bench_acct a;
	int64_t t, prev, end;
	int err = 0;

	for (uint64_t i = 0; i < cfg->warmup && !err; i++)
		err = pp_round(ch, c, buf, cfg->msg_size, i);
	if (err)
		return err;
	bench_acct_begin(&a);
	if (cfg->floor_blocks) {
		max = max < c->cap / 2 ? max : c->cap / 2;
		err = pp_interleaved(ch, c, cfg, buf, max, &n);
		if (err)
			return err;
		max = 0; /* done */
	}
	prev = bench_now_ns();
	end = prev + (int64_t)(cfg->duration * 1e9);
	while (n < max) {
		err = pp_round(ch, c, buf, cfg->msg_size, cfg->warmup + n);
		if (err)
			return err;
		t = bench_now_ns();
		c->samples[n++] = (uint64_t)(t - prev);
		prev = t;
		if (t >= end)
			break;
	}
	c->n = n;
	bench_acct_end(&a, &c->side[0], 2 * n);
	bench_msg_stamp(buf, cfg->msg_size, PP_STOP);
	err = ch->t->send(ch, buf, cfg->msg_size);
	return err ? bench_fail(c, 0, err, "send STOP: %s", strerror(-err)) : 0;
}

static int pp_responder(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
			unsigned char *buf)
{
	uint64_t seq, count = 0;
	struct bench_acct a;
	int n, err;

	bench_acct_begin(&a); /* again after the last warm-up reply */
	for (;;) {
		n = ch->t->recv(ch, buf, cfg->msg_size);
		if (n < 0)
			return bench_fail(c, 1, n, "pong: recv: %s", strerror(-n));
		seq = bench_msg_seq(buf);
		if (seq == PP_STOP)
			break;
		if (seq == PP_LINE) {
			line_serve(c);
			continue;
		}
		if ((size_t)n != cfg->msg_size || bench_msg_check(buf, (size_t)n, seq))
			return bench_fail(c, 1, -EBADMSG, "pong: bad message (%d bytes, seq %llu)",
					  n, (unsigned long long)seq);
		err = ch->t->send(ch, buf, (size_t)n);
		if (err)
			return bench_fail(c, 1, err, "pong #%llu: send: %s",
					  (unsigned long long)seq, strerror(-err));
		if (seq >= cfg->warmup)
			count++;
		else if (seq + 1 == cfg->warmup)
			bench_acct_begin(&a);
	}
	bench_acct_end(&a, &c->side[1], 2 * count);
	return 0;
}

int bench_pingpong_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
			const struct bench_cfg *cfg)
{
	unsigned char *buf = bench_msg_alloc(cfg->msg_size);
	int err;

	if (!buf)
		return bench_fail(c, side, -ENOMEM, "side %d: out of memory", side);
	err = side == 0 ? pp_initiator(ch, c, cfg, buf) : pp_responder(ch, c, cfg, buf);
	free(buf);
	return err;
}

/* ------------------------------------------------------------- cacheline */

static inline void line_round(_Atomic uint64_t *w, uint64_t i)
{
	/* Release/acquire: the word itself is the message; the pairs are this
	 * store with the responder's acquire load, and the responder's
	 * release store with our acquire load. */
	atomic_store_explicit(w, 2 * i + 1, memory_order_release);
	while (atomic_load_explicit(w, memory_order_acquire) != 2 * i + 2)
		bench_cpu_relax();
}

static int line_initiator(struct bench_ctrl *c, const struct bench_cfg *cfg)
{
	uint64_t n = 0, max = cfg->iters < c->cap ? cfg->iters : c->cap;
	struct bench_acct a;
	int64_t t, prev, end;

	for (uint64_t i = 0; i < cfg->warmup; i++)
		line_round(&c->line, i);
	bench_acct_begin(&a);
	prev = bench_now_ns();
	end = prev + (int64_t)(cfg->duration * 1e9);
	while (n < max) {
		line_round(&c->line, cfg->warmup + n);
		t = bench_now_ns();
		c->samples[n++] = (uint64_t)(t - prev);
		prev = t;
		if (t >= end)
			break;
	}
	c->n = n;
	bench_acct_end(&a, &c->side[0], 2 * n);
	atomic_store_explicit(&c->line, PP_STOP, memory_order_release);
	return 0;
}

static int line_responder(struct bench_ctrl *c, const struct bench_cfg *cfg)
{
	uint64_t v, count = 0;
	struct bench_acct a;

	bench_acct_begin(&a); /* again after the last warm-up reply */
	for (uint64_t i = 0;; i++) {
		while ((v = atomic_load_explicit(&c->line, memory_order_acquire)) != 2 * i + 1) {
			if (v == PP_STOP)
				goto out;
			bench_cpu_relax();
		}
		atomic_store_explicit(&c->line, 2 * i + 2, memory_order_release);
		if (i >= cfg->warmup)
			count++;
		else if (i + 1 == cfg->warmup)
			bench_acct_begin(&a);
	}
out:
	bench_acct_end(&a, &c->side[1], 2 * count);
	return 0;
}

int bench_cacheline_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
			 const struct bench_cfg *cfg)
{
	(void)ch;
	return side == 0 ? line_initiator(c, cfg) : line_responder(c, cfg);
}
