// SPDX-License-Identifier: MIT
/*
 * Names: validation of node and domain names, and the names of a domain's
 * files in /dev/shm (see lib/layout.h for the scheme).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int shmrpc__name_check(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.')
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= SHMRPC_NAME_MAX)
			return -ENAMETOOLONG;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}

/* A name read from shared memory: NUL-terminated within its field and
 * valid, else it is garbage and the caller treats the record as corrupt. */
int shmrpc__name_check_field(const char *field, size_t size)
{
	if (!memchr(field, '\0', size))
		return -EPROTO;
	return shmrpc__name_check(field) ? -EPROTO : 0;
}

void shmrpc__reg_path(char *buf, const char *domain)
{
	snprintf(buf, SHMRPC__PATH_MAX, "/shmrpc.%s.reg", domain);
}

void shmrpc__node_path(char *buf, const char *domain, uint32_t nonce, uint32_t slot, uint32_t gen)
{
	snprintf(buf, SHMRPC__PATH_MAX, "/shmrpc.%s.%08x.node.%u.%u", domain, nonce, slot, gen);
}

void shmrpc__ring_path(char *buf, const char *domain, uint32_t nonce, uint32_t tx_slot,
		       uint32_t tx_gen, uint32_t rx_slot, uint32_t rx_gen)
{
	snprintf(buf, SHMRPC__PATH_MAX, "/shmrpc.%s.%08x.ring.%u.%u-%u.%u", domain, nonce, tx_slot,
		 tx_gen, rx_slot, rx_gen);
}
