// SPDX-License-Identifier: MIT
/*
 * The transports every scenario runs, in report order. A libshmrpc
 * transport is added here (see struct bench_transport in bench.h).
 */
#include <string.h>

#include "bench.h"

const struct bench_transport *const bench_transports[] = {
	&bench_tr_spin, &bench_tr_futex, &bench_tr_eventfd,
	&bench_tr_pipe, &bench_tr_unix,	 &bench_tr_mqueue,
	NULL,
};

const struct bench_transport *bench_transport_find(const char *name)
{
	for (size_t i = 0; bench_transports[i]; i++)
		if (!strcmp(bench_transports[i]->name, name))
			return bench_transports[i];
	return NULL;
}
