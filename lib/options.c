// SPDX-License-Identifier: MIT
/*
 * shmrpc_open's options: a caller's struct of any size (older callers pass
 * less and get the defaults, newer ones more as long as it is zero), each
 * field checked, defaults and the environment filled in.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layout.h"
#include "names.h"
#include "options.h"
#include "ring.h"
#include "rpc.h" /* opts.max_calls: its default and bound */

/* Default bound of a receiver's adaptive spin before it sleeps. */
#define SHMRPC__SPIN_US_DEFAULT 20

/* opts.spin_us, else $SHMRPC_SPIN_US (0: never), else the default. */
static int spin_pick(int32_t opt, int64_t *ns)
{
	const char *s = getenv("SHMRPC_SPIN_US");
	char *end;
	long v = SHMRPC__SPIN_US_DEFAULT;

	if (opt < 0 && opt != SHMRPC_SPIN_NEVER)
		return shmrpc__err(-EINVAL, "opts.spin_us %d: negative (SHMRPC_SPIN_NEVER is %d)",
				   (int)opt, SHMRPC_SPIN_NEVER);
	if (opt > 1000000)
		return shmrpc__err(-EINVAL, "opts.spin_us %d: more than 1000000 (1 s)", (int)opt);
	if (opt) {
		v = opt > 0 ? opt : 0;
	} else if (s && *s) {
		errno = 0;
		v = strtol(s, &end, 10);
		if (*end || errno || v < 0 || v > 1000000)
			return shmrpc__err(-EINVAL,
					   "SHMRPC_SPIN_US=%s: not a number of microseconds in "
					   "[0, 1000000]",
					   s);
	}
	*ns = (int64_t)v * 1000;
	return 0;
}

/* The caller's options in @d, defaults for what an older caller's struct
 * does not have; -EINVAL, -E2BIG (a newer caller's non-zero tail). */
static int opts_copy(const struct shmrpc_opts *o, struct shmrpc_opts *d)
{
	size_t i;

	memset(d, 0, sizeof(*d));
	if (!o)
		return 0;
	if (o->sz < sizeof(o->sz))
		return shmrpc__err(-EINVAL, "opts.sz %zu: set it to sizeof(struct shmrpc_opts)",
				   o->sz);
	/* Older callers pass less: the rest keeps its defaults. Newer ones
	 * may pass more, as long as we would ignore only zeros. */
	for (i = sizeof(*d); i < o->sz; i++)
		if (((const uint8_t *)o)[i])
			return shmrpc__err(-E2BIG,
					   "opts.sz %zu: byte %zu is set, and this library "
					   "knows only %zu bytes of options",
					   o->sz, i, sizeof(*d));
	memcpy(d, o, o->sz < sizeof(*d) ? o->sz : sizeof(*d));
	/* events came with _reserved: in a shorter struct it was padding. A
	 * pointer only partly covered by sz is not one. */
	if (o->sz < offsetof(struct shmrpc_opts, _reserved) + sizeof(d->_reserved))
		d->events = 0;
	if (o->sz < offsetof(struct shmrpc_opts, proxy_host) + sizeof(d->proxy_host))
		d->proxy_host = NULL;
	/* flags came with _reserved2 (0.3): in a shorter struct it was tail
	 * padding, whatever the caller's compiler left there. */
	if (o->sz < offsetof(struct shmrpc_opts, _reserved2) + sizeof(d->_reserved2))
		d->flags = 0;
	return 0;
}

/* opts.backend, else $SHMRPC_BACKEND (empty: unset), else NULL (the best). */
static int backend_pick(const char *opt, const char **out)
{
	const char *b = opt;

	if (!b) {
		b = getenv("SHMRPC_BACKEND");
		if (b && !b[0])
			b = NULL;
		if (b && strcmp(b, "uring") && strcmp(b, "futex"))
			return shmrpc__err(
				-EINVAL, "SHMRPC_BACKEND=%.64s: unknown backend (uring, futex)", b);
	} else if (strcmp(b, "uring") && strcmp(b, "futex")) {
		return shmrpc__err(-EINVAL, "opts.backend '%.64s': unknown backend (uring, futex)",
				   b);
	}
	*out = b;
	return 0;
}

/* opts.flags (opts_copy zeroed it for a caller whose struct ends before
 * _reserved2): SHMRPC_OPEN_* bits only, _reserved2 0. */
static int flags_pick(const struct shmrpc_opts *d, uint32_t *out)
{
	if ((d->flags & ~SHMRPC_OPEN_BCAST_MARKS) || d->_reserved2)
		return shmrpc__err(-EINVAL,
				   "opts.flags 0x%x, _reserved2 %llu: flags other than "
				   "SHMRPC_OPEN_BCAST_MARKS (0x1), or _reserved2 not 0",
				   d->flags, (unsigned long long)d->_reserved2);
	*out = d->flags;
	return 0;
}

int shmrpc__opts_parse(const struct shmrpc_opts *o, struct shmrpc__open_cfg *cfg)
{
	struct shmrpc_opts d;
	int err;

	err = opts_copy(o, &d);
	if (err)
		return err;
	/* An unset or empty $SHMRPC_DOMAIN means "default"; an empty domain
	 * in the options is a bad name like any other (-EINVAL), never a
	 * silent move into the "default" domain. */
	cfg->domain = d.domain;
	if (!cfg->domain) {
		cfg->domain = getenv("SHMRPC_DOMAIN");
		if (!cfg->domain || !cfg->domain[0])
			cfg->domain = "default";
	}
	err = shmrpc__name_check(cfg->domain);
	if (err)
		return shmrpc__err(err,
				   "%s '%.64s': a domain name is 1 to %d characters of "
				   "[A-Za-z0-9._-], not starting with '.'",
				   d.domain ? "opts.domain" : "SHMRPC_DOMAIN", cfg->domain,
				   SHMRPC_NAME_MAX);
	cfg->ring_bytes = d.ring_bytes ? d.ring_bytes : SHMRPC__RING_DEFAULT;
	if (!shmrpc__ring_size_ok(cfg->ring_bytes))
		return shmrpc__err(-EINVAL, "opts.ring_bytes %u: not a power of two in [%u, %u]",
				   cfg->ring_bytes, SHMRPC__RING_MIN, SHMRPC__RING_MAX);
	cfg->capacity = d.max_nodes ? d.max_nodes : SHMRPC__CAP_DEFAULT;
	if (cfg->capacity > SHMRPC__CAP_MAX)
		return shmrpc__err(-EINVAL, "opts.max_nodes %u: more than %u", cfg->capacity,
				   SHMRPC__CAP_MAX);
	cfg->mode = d.mode ? d.mode : 0600;
	if ((cfg->mode & ~0770u) || (cfg->mode & 0600) != 0600)
		return shmrpc__err(-EINVAL,
				   "opts.mode 0%o: owner read-write and group bits only "
				   "(0600, 0640, 0660)",
				   cfg->mode);
	cfg->events = d.events;
	if ((d.events & ~(SHMRPC_EV_JOIN | SHMRPC_EV_LEAVE | SHMRPC_EV_DEATH)) || d._reserved)
		return shmrpc__err(-EINVAL,
				   "opts.events 0x%x, _reserved %u: events other than "
				   "SHMRPC_EV_JOIN, _LEAVE, _DEATH (0x7), or _reserved not 0",
				   d.events, d._reserved);
	cfg->proxy_host = d.proxy_host;
	if (d.proxy_host && shmrpc__name_check(d.proxy_host))
		return shmrpc__err(-EINVAL,
				   "opts.proxy_host '%.64s': a host name is 1 to %d characters of "
				   "[A-Za-z0-9._-], not starting with '.'",
				   d.proxy_host, SHMRPC_NAME_MAX);
	err = backend_pick(d.backend, &cfg->backend);
	if (!err)
		err = shmrpc__log_env_check();
	if (err)
		return err;
	cfg->max_calls = d.max_calls ? d.max_calls : SHMRPC__MAX_CALLS_DEFAULT;
	if (cfg->max_calls > SHMRPC__MAX_CALLS_MAX)
		return shmrpc__err(-EINVAL, "opts.max_calls %u: more than %u", cfg->max_calls,
				   SHMRPC__MAX_CALLS_MAX);
	err = flags_pick(&d, &cfg->flags);
	return err ? err : spin_pick(d.spin_us, &cfg->spin_ns);
}
