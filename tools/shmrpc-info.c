// SPDX-License-Identifier: MIT
/*
 * shmrpc-info: what libshmrpc can do on this machine.
 *	shmrpc-info			version and wake backends
 *	shmrpc-info --backend NAME	exit 0 if backend NAME works here
 */
#include <stdio.h>
#include <string.h>

#include "shmrpc.h"

int main(int argc, char **argv)
{
	static const char *const names[] = { "uring", "futex" };
	unsigned i;

	if (argc == 3 && !strcmp(argv[1], "--backend"))
		return shmrpc_backend_available(argv[2]) == 1 ? 0 : 1;
	if (argc != 1) {
		fprintf(stderr, "usage: %s [--backend NAME]\n", argv[0]);
		return 2;
	}
	printf("libshmrpc %d.%d\n", SHMRPC_VERSION_MAJOR, SHMRPC_VERSION_MINOR);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf("backend %-6s %s\n", names[i],
		       shmrpc_backend_available(names[i]) == 1 ? "available" : "not available");
	printf("default backend: %s\n", shmrpc_backend_default());
	return 0;
}
