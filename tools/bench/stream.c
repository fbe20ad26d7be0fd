// SPDX-License-Identifier: MIT
/*
 * Streaming: side 0 produces, side 1 consumes, as fast as the transport
 * delivers. What is measured is delivery, not the producer's speed:
 *  - the producer sends back to back and is held by back-pressure (every
 *    transport blocks its sender while its buffer is full), for
 *    warm_s + duration seconds, then sends an END message;
 *  - the consumer receives and validates every message (length, sequence
 *    number at both ends: nothing lost, duplicated, reordered or torn),
 *    opens its measuring window once it has been receiving for warm_s, and
 *    closes it when END arrives, i.e. after every message was delivered;
 *  - throughput = messages received in the window / window length.
 * The clock is read every `batch` messages (about 256 KiB of payload,
 * at most 1024 messages) so that reading it costs nothing measurable.
 * CPU time is accounted by each side from the start to END.
 *
 * A transport with sendv and recvv (libshmrpc's shmrpc-batch rows:
 * shmrpc_peer_sendv / shmrpc_recv_batch) is driven in batches of
 * BENCH_BATCH messages a call on both sides, every message stamped and
 * checked as above; END is a batch of its own (one message).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define ST_END UINT64_MAX

static uint64_t batch(size_t size)
{
	uint64_t k = (256 * 1024) / size;

	return k < 1 ? 1 : k > 1024 ? 1024 : k;
}

static int producer(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
		    unsigned char *buf)
{
	uint64_t seq = 0, k = batch(cfg->msg_size);
	struct bench_acct a;
	int64_t end;
	int err;

	bench_acct_begin(&a);
	end = a.wall0 + (int64_t)((cfg->warm_s + cfg->duration) * 1e9);
	for (;;) {
		bench_msg_stamp(buf, cfg->msg_size, seq);
		err = ch->t->send(ch, buf, cfg->msg_size);
		if (err)
			return bench_fail(c, 0, err, "send #%llu: %s", (unsigned long long)seq,
					  strerror(-err));
		if (++seq % k == 0 && bench_now_ns() >= end)
			break;
	}
	bench_msg_stamp(buf, cfg->msg_size, ST_END);
	err = ch->t->send(ch, buf, cfg->msg_size);
	if (err)
		return bench_fail(c, 0, err, "send END: %s", strerror(-err));
	bench_acct_end(&a, &c->side[0], seq);
	return 0;
}

static int consumer(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
		    unsigned char *buf)
{
	uint64_t want = 0, k = batch(cfg->msg_size), n0 = 0;
	int64_t warm_end, t0 = -1, t;
	struct bench_acct a;
	int n;

	bench_acct_begin(&a);
	warm_end = a.wall0 + (int64_t)(cfg->warm_s * 1e9);
	for (;;) {
		n = ch->t->recv(ch, buf, cfg->msg_size);
		if (n < 0)
			return bench_fail(c, 1, n, "recv #%llu: %s", (unsigned long long)want,
					  strerror(-n));
		if (n >= 8 && bench_msg_seq(buf) == ST_END)
			break;
		if ((size_t)n != cfg->msg_size || bench_msg_check(buf, (size_t)n, want))
			return bench_fail(c, 1, -EBADMSG,
					  "message #%llu: %d bytes, seq %llu: lost, reordered "
					  "or torn",
					  (unsigned long long)want, n,
					  (unsigned long long)bench_msg_seq(buf));
		if (++want % k == 0 && t0 < 0 && (t = bench_now_ns()) >= warm_end) {
			t0 = t;
			n0 = want;
		}
	}
	t = bench_now_ns();
	if (t0 < 0) { /* too few messages to warm up: measure them all */
		t0 = a.wall0;
		n0 = 0;
	}
	c->n = want - n0;
	c->window_ns = t - t0;
	bench_acct_end(&a, &c->side[1], want);
	return 0;
}

/* Send messages [0, n) of @buf (each @size bytes) through sendv: 0 or -errno. */
static int send_all(struct bench_chan *ch, const unsigned char *buf, size_t size, unsigned n)
{
	int k;

	for (unsigned done = 0; done < n; done += (unsigned)k) {
		k = ch->t->sendv(ch, buf + done * size, size, n - done);
		if (k < 0)
			return k;
		if (k == 0)
			return -EIO; /* the contract says >= 1 */
	}
	return 0;
}

static int producer_v(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
		      unsigned char *buf)
{
	uint64_t seq = 0, k = batch(cfg->msg_size);
	size_t sz = cfg->msg_size;
	struct bench_acct a;
	int64_t end;
	int err;

	bench_acct_begin(&a);
	end = a.wall0 + (int64_t)((cfg->warm_s + cfg->duration) * 1e9);
	for (;;) {
		for (unsigned i = 0; i < BENCH_BATCH; i++)
			bench_msg_stamp(buf + i * sz, sz, seq + i);
		err = send_all(ch, buf, sz, BENCH_BATCH);
		if (err)
			return bench_fail(c, 0, err, "sendv #%llu: %s", (unsigned long long)seq,
					  strerror(-err));
		seq += BENCH_BATCH;
		if (seq % k < BENCH_BATCH && bench_now_ns() >= end)
			break;
	}
	bench_msg_stamp(buf, sz, ST_END);
	err = send_all(ch, buf, sz, 1);
	if (err)
		return bench_fail(c, 0, err, "send END: %s", strerror(-err));
	bench_acct_end(&a, &c->side[0], seq);
	return 0;
}

static int consumer_v(struct bench_chan *ch, struct bench_ctrl *c, const struct bench_cfg *cfg,
		      unsigned char *buf)
{
	uint64_t want = 0, k = batch(cfg->msg_size), n0 = 0;
	size_t sz = cfg->msg_size, lens[BENCH_BATCH];
	int64_t warm_end, t0 = -1, t;
	const unsigned char *m;
	struct bench_acct a;
	int n, end = 0;

	bench_acct_begin(&a);
	warm_end = a.wall0 + (int64_t)(cfg->warm_s * 1e9);
	while (!end) {
		n = ch->t->recvv(ch, buf, sz, lens, BENCH_BATCH);
		if (n <= 0 || n > BENCH_BATCH)
			return bench_fail(c, 1, n < 0 ? n : -EPROTO, "recvv #%llu: %s",
					  (unsigned long long)want,
					  n < 0 ? strerror(-n) : "bad count");
		for (int i = 0; i < n; i++) {
			m = buf + (size_t)i * sz;
			if (lens[i] >= 8 && bench_msg_seq(m) == ST_END && i == n - 1) {
				end = 1;
				break;
			}
			if (lens[i] != sz || bench_msg_check(m, lens[i], want))
				return bench_fail(c, 1, -EBADMSG,
						  "message #%llu: %zu bytes, seq %llu: lost, "
						  "reordered or torn",
						  (unsigned long long)want, lens[i],
						  (unsigned long long)bench_msg_seq(m));
			if (++want % k == 0 && t0 < 0 && (t = bench_now_ns()) >= warm_end) {
				t0 = t;
				n0 = want;
			}
		}
	}
	t = bench_now_ns();
	if (t0 < 0) {
		t0 = a.wall0;
		n0 = 0;
	}
	c->n = want - n0;
	c->window_ns = t - t0;
	bench_acct_end(&a, &c->side[1], want);
	return 0;
}

int bench_stream_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
		      const struct bench_cfg *cfg)
{
	int vec = ch->t->sendv && ch->t->recvv;
	unsigned char *buf = bench_msg_alloc(cfg->msg_size * (vec ? BENCH_BATCH : 1));
	int err;

	if (!buf)
		return bench_fail(c, side, -ENOMEM, "side %d: out of memory", side);
	if (vec)
		err = side == 0 ? producer_v(ch, c, cfg, buf) : consumer_v(ch, c, cfg, buf);
	else
		err = side == 0 ? producer(ch, c, cfg, buf) : consumer(ch, c, cfg, buf);
	free(buf);
	return err;
}
