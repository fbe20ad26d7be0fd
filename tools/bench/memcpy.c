// SPDX-License-Identifier: MIT
/*
 * memcpy: single-threaded copy bandwidth of one side (CPU 0), the ceiling
 * for a transport that copies: it copies every byte twice, the sender into
 * the buffer and the receiver out of it, each on its own CPU and in
 * parallel, so a stream is bounded by one core's copy rate (and usually
 * stays below it, as the receiver reads lines another core just wrote).
 * Side 1 exits at once, leaving the other CPU idle. Source and destination
 * are cfg->msg_size bytes each, copied back to back for warm_s, then
 * measured for duration seconds.
 * GB/s counts bytes copied (1 GB = 1e9 bytes), not bytes read + written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void copy(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
	/* Nobody reads dst: keep the compiler from dropping the copy (an
	 * asm without outputs is never removed; "memory": dst is used). */
	__asm__("" : : "r"(dst) : "memory");
}

int bench_memcpy_side(struct bench_chan *ch, struct bench_ctrl *c, int side,
		      const struct bench_cfg *cfg)
{
	void *src, *dst;
	struct bench_acct a;
	int64_t t0, t;
	uint64_t n = 0;

	(void)ch;
	if (side != 0)
		return 0;
	src = bench_msg_alloc(cfg->msg_size);
	dst = bench_msg_alloc(cfg->msg_size);
	if (!src || !dst) {
		free(src);
		free(dst);
		return bench_fail(c, 0, -ENOMEM, "out of memory");
	}
	t0 = bench_now_ns();
	do
		copy(dst, src, cfg->msg_size);
	while (bench_now_ns() - t0 < (int64_t)(cfg->warm_s * 1e9));
	bench_acct_begin(&a);
	t0 = a.wall0;
	do {
		copy(dst, src, cfg->msg_size);
		n++;
		t = bench_now_ns();
	} while (t - t0 < (int64_t)(cfg->duration * 1e9));
	c->n = n;
	c->window_ns = t - t0;
	bench_acct_end(&a, &c->side[0], n);
	free(src);
	free(dst);
	return 0;
}
