// SPDX-License-Identifier: MIT
/*
 * A domain's membership events (issue 11), as shmrpc-top shows them: the
 * registry's event log (lib/layout.h: SHMRPC__EV_LOG entries after the
 * slots, a ring the registry lock's holder appends JOIN, LEAVE and DEATH
 * events to, ev_head counting them), read without a lock the way a
 * subscriber reads it (lib/evlog.c): an entry is taken only if its seq was
 * index + 1 before and after the copy. What a receiver's own subscription
 * holds (its cursor, its dropped count) and the peer handles a process
 * holds are process memory, not in any segment: the tool cannot see them.
 *
 * Everything is untrusted: the log's geometry must be the one this tool
 * knows, the head is clamped to the log, an entry with a type no writer
 * makes or a bad name is counted as garbage and not shown.
 */
#include <stdatomic.h>
#include <string.h>

#include "inspect.h"
#include "top.h"

struct ev_ctx {
	const struct shmrpc__ev_entry *log; /* SHMRPC__EV_LOG entries */
	const bool *pages;		    /* pages of the registry file with data */
	uint64_t log_off;		    /* of the log in the file */
	uint64_t head;
	struct top_event *out; /* [SHMRPC__EV_LOG], newest first */
	uint32_t n, bad;
};

/* Does entry @i lie in pages that hold data (else it is zeros, untouched)? */
static bool in_data(const struct ev_ctx *c, uint32_t i)
{
	uint64_t a = c->log_off + (uint64_t)i * sizeof(struct shmrpc__ev_entry);
	uint64_t b = a + sizeof(struct shmrpc__ev_entry) - 1;

	return c->pages[a / SHMRPC__PAGE] && c->pages[b / SHMRPC__PAGE];
}

/* Copy entry @idx (log index) into @ev: 0, or -1 if it holds another
 * event (overwritten, torn, never written). */
static int read_one(const struct ev_ctx *c, uint64_t idx, struct top_event *ev, uint64_t *ns)
{
	const struct shmrpc__ev_entry *e = &c->log[idx % SHMRPC__EV_LOG];
	uint64_t name[8];

	if (!in_data(c, (uint32_t)(idx % SHMRPC__EV_LOG)))
		return -1;
	/* Acquire: pairs with the writer's release store of seq (evlog.c),
	 * which it makes after the fields: complete fields if seq matches. */
	if (atomic_load_explicit(&e->seq, memory_order_acquire) != idx + 1)
		return -1;
	ev->type = atomic_load_explicit(&e->type, memory_order_relaxed);
	ev->pid = atomic_load_explicit(&e->pid, memory_order_relaxed);
	ev->id = atomic_load_explicit(&e->id, memory_order_relaxed);
	*ns = atomic_load_explicit(&e->ns, memory_order_relaxed);
	for (int k = 0; k < 8; k++)
		name[k] = atomic_load_explicit(&e->name[k], memory_order_relaxed);
	/* Acquire fence: the loads above happen before the second look at
	 * seq; a writer that started meanwhile zeroed seq first (evlog.c). */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&e->seq, memory_order_relaxed) != idx + 1)
		return -1;
	memcpy(ev->name, name, sizeof(ev->name) - 1);
	ev->name[sizeof(ev->name) - 1] = '\0';
	return 0;
}

/* Under the guard: the log's readable entries, newest first. */
static int read_log(void *arg)
{
	struct ev_ctx *c = arg;
	uint64_t lo = c->head > SHMRPC__EV_LOG ? c->head - SHMRPC__EV_LOG : 0, ns;
	struct top_event *ev;

	for (uint64_t idx = c->head; idx-- > lo;) {
		ev = &c->out[c->n];
		if (read_one(c, idx, ev, &ns))
			continue;	    /* overwritten meanwhile: older ones are too */
		ev->age = (double)ns / 1e9; /* CLOCK_MONOTONIC s, made an age below */
		c->n++;
	}
	return 0;
}

static bool ev_ok(const struct top_event *ev)
{
	bool type = ev->type == SHMRPC_EV_JOIN || ev->type == SHMRPC_EV_LEAVE ||
		    ev->type == SHMRPC_EV_DEATH;

	return type && !shmrpc_insp_name_check_field(ev->name, sizeof(ev->name));
}

/*
 * top__scan_events - domain @d's event log, from registry mapping @m
 * (checked: header @h, a size of shmrpc__reg_size(capacity)) whose data
 * pages are @pages, at monotonic time @mono: d->ev. Nothing to free.
 */
void top__scan_events(struct top_domain *d, const struct top_map *m, const bool *pages,
		      const struct shmrpc__reg_hdr *h, double mono)
{
	static struct top_event all[SHMRPC__EV_LOG];
	struct top_events *e = &d->ev;
	struct ev_ctx c = { .pages = pages, .out = all };

	memset(e, 0, sizeof(*e));
	if (h->ev_cap != SHMRPC__EV_LOG || h->ev_size != sizeof(struct shmrpc__ev_entry)) {
		snprintf(e->why, sizeof(e->why), "no event log of this version");
		return;
	}
	c.log_off = shmrpc__reg_evlog_off(d->capacity);
	if (c.log_off + SHMRPC__EV_LOG * sizeof(struct shmrpc__ev_entry) > m->len) {
		snprintf(e->why, sizeof(e->why), "event log not mapped");
		return;
	}
	c.log = (const struct shmrpc__ev_entry *)((const char *)m->p + c.log_off);
	/* Relaxed: a count to show; each entry's seq says whether it is one
	 * of the events below it. */
	c.head = pages[offsetof(struct shmrpc__reg_hdr, ev_head) / SHMRPC__PAGE] ?
			 atomic_load_explicit(&((const struct shmrpc__reg_hdr *)m->p)->ev_head,
					      memory_order_relaxed) :
			 0;
	if (top_guard(read_log, &c)) {
		snprintf(e->why, sizeof(e->why), "truncated while reading");
		return;
	}
	e->ok = true;
	e->total = c.head;
	for (uint32_t i = 0; i < c.n; i++) {
		struct top_event *ev = &all[i];

		if (!ev_ok(ev)) {
			e->garbage++;
			continue;
		}
		e->joins += ev->type == SHMRPC_EV_JOIN;
		e->leaves += ev->type == SHMRPC_EV_LEAVE;
		e->deaths += ev->type == SHMRPC_EV_DEATH;
		/* From the future (garbage, or another clock): age unknown. */
		ev->age = ev->age > mono + 1 ? -1 : mono > ev->age ? mono - ev->age : 0;
		if (e->nlast < TOP_EV_SHOW)
			e->last[e->nlast++] = *ev;
	}
}

const char *top_event_name(uint32_t type)
{
	return type == SHMRPC_EV_JOIN  ? "join" :
	       type == SHMRPC_EV_LEAVE ? "leave" :
	       type == SHMRPC_EV_DEATH ? "death" :
					 "?";
}

/* top_fmt_event - "death v3 (pid 123) 2.1s ago". */
void top_fmt_event(char *buf, size_t len, const struct top_event *ev)
{
	char age[16];

	top_fmt_age(age, sizeof(age), ev->age);
	snprintf(buf, len, "%s %s (pid %d) %s ago", top_event_name(ev->type), ev->name, ev->pid,
		 age);
}

/* top_events_text - per selected domain with an event log, its counts and
 * latest events (batch text). */
void top_events_text(FILE *f, const struct top_snap *s, const char *domain)
{
	char line[160];

	for (uint32_t i = 0; i < s->ndoms; i++) {
		const struct top_domain *d = &s->doms[i];
		const struct top_events *e = &d->ev;

		if ((domain && strcmp(domain, d->name)) || d->status != TOP_DOM_OK)
			continue;
		if (!e->ok) {
			fprintf(f, "events: domain %s: %s\n", d->name, e->why);
			continue;
		}
		fprintf(f,
			"events: domain %s: %llu recorded; in the log (last %u): %u join, %u leave, "
			"%u death%s\n",
			d->name, (unsigned long long)e->total, SHMRPC__EV_LOG, e->joins, e->leaves,
			e->deaths, e->garbage ? ", some garbage" : "");
		for (uint32_t k = 0; k < e->nlast; k++) {
			top_fmt_event(line, sizeof(line), &e->last[k]);
			fprintf(f, "event: %s\n", line);
		}
	}
}
