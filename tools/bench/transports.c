// SPDX-License-Identifier: MIT
/*
 * The pair transports, in report order: the kernel baselines, the
 * messaging libraries (ZeroMQ, nng), then libshmrpc's variants (see struct
 * bench_transport in bench.h; a transport's not_in mask leaves it out of
 * scenarios by default).
 */
#include <string.h>

#include "bench.h"

const struct bench_transport *const bench_transports[] = {
	&bench_tr_spin,
	&bench_tr_futex,
	&bench_tr_eventfd,
	&bench_tr_pipe,
	&bench_tr_unix,
	&bench_tr_mqueue,
	&bench_tr_zmq,
	&bench_tr_nng,
	&bench_tr_shm,
	&bench_tr_shm_futex,
	&bench_tr_shm_spin,
	&bench_tr_shm_sleep,
	&bench_tr_shm_sleep_futex,
	&bench_tr_shm_zc,
	&bench_tr_shm_batch,
	&bench_tr_shm_batch_futex,
	NULL,
};

const struct bench_transport *bench_transport_find(const char *name)
{
	for (size_t i = 0; bench_transports[i]; i++)
		if (!strcmp(bench_transports[i]->name, name))
			return bench_transports[i];
	return NULL;
}
