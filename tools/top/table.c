// SPDX-License-Identifier: MIT
/*
 * The node table shared by the screen and the text blocks: columns,
 * selection (domain, name filter), sorting, and fixed-width cells.
 *
 * Numbers keep their column width whatever their size (123456 -> "123k"),
 * an unknown value is "-", and a node whose segment could not be read shows
 * the reason instead of counters, so that no column ever shows a number
 * the tool did not read.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "top.h"

const struct top_col top_cols[TOP_COL_COUNT] = {
	[TOP_COL_NAME] = { "NAME", "name", 'n', 16, true, false, "node name" },
	[TOP_COL_DOMAIN] = { "DOMAIN", "domain", 'D', 12, true, false, "domain" },
	[TOP_COL_PID] = { "PID", "pid", 'p', 7, false, false, "process id" },
	[TOP_COL_STATE] = { "STATE", "state", 'S', 7, true, false,
			    "live, closing, joining, dead, gone, corrupt, unknown" },
	[TOP_COL_UPTIME] = { "UPTIME", "uptime", 'u', 7, false, true, "time since it joined" },
	[TOP_COL_MSGS_IN] = { "MSGIN/s", "in", 'i', 8, false, true,
			      "messages received per second" },
	[TOP_COL_MSGS_OUT] = { "MSGOUT/s", "out", 'o', 9, false, true, "messages sent per second" },
	[TOP_COL_MB_IN] = { "MBIN/s", "mbin", 'I', 7, false, true,
			    "MB (10^6 bytes) received per second" },
	[TOP_COL_MB_OUT] = { "MBOUT/s", "mbout", 'O', 8, false, true, "MB sent per second" },
	[TOP_COL_WAKES] = { "WAKE/s", "wakes", 'w', 7, false, true,
			    "futex wakes issued per second" },
	[TOP_COL_SKIP] = { "SKIP%", "skip", 'k', 6, false, true,
			   "share of publishes that needed no wake (peer awake)" },
	[TOP_COL_SLEEPS] = { "SLEEP/s", "sleeps", 'l', 8, false, true,
			     "times per second it slept in the kernel" },
	[TOP_COL_FULL] = { "FULL/s", "full", 'f', 7, false, true,
			   "sends per second that found the ring full" },
	[TOP_COL_RINGS_IN] = { "RIN", "rin", 'x', 4, false, true, "inbound rings" },
	[TOP_COL_RINGS_OUT] = { "ROUT", "rout", 'y', 5, false, true, "outbound rings" },
	[TOP_COL_CALLS] = { "CALL/s", "calls", 'c', 7, false, true,
			    "calls (requests) it started per second" },
	[TOP_COL_INFLIGHT] = { "INFL", "inflight", 'g', 5, false, true,
			       "its calls in flight now (started, not over)" },
	[TOP_COL_CFAIL] = { "CFAIL", "cfail", 'e', 6, false, true,
			    "its calls failed (timeout, server gone, error, cancel, refused)" },
};

int top_col_by_id(const char *id)
{
	int i;

	for (i = 0; i < TOP_COL_COUNT; i++)
		if (!strcmp(top_cols[i].id, id))
			return i;
	return -1;
}

int top_col_by_key(int key)
{
	int i;

	for (i = 0; i < TOP_COL_COUNT; i++)
		if (top_cols[i].key == key)
			return i;
	return -1;
}

/* ------------------------------------------------------------ numbers */

void top_fmt_count(char *buf, size_t len, double v)
{
	static const char sfx[] = "kMGTPE";
	int i;

	if (v < 0 || isnan(v)) {
		snprintf(buf, len, "-");
		return;
	}
	if (v < 99.95 && v != floor(v)) {
		snprintf(buf, len, "%.1f", v);
		return;
	}
	if (v < 99999.5) {
		snprintf(buf, len, "%.0f", v);
		return;
	}
	for (i = 0; i < 6 && v >= 9999.5; i++)
		v /= 1000;
	snprintf(buf, len, "%.0f%c", v, i ? sfx[i - 1] : ' ');
	if (v >= 9999.5)
		snprintf(buf, len, "huge");
}

void top_fmt_mb(char *buf, size_t len, double bytes)
{
	double mb = bytes / 1e6;

	if (bytes < 0 || isnan(bytes))
		snprintf(buf, len, "-");
	else if (mb < 99.995)
		snprintf(buf, len, "%.2f", mb);
	else if (mb < 9999.5)
		snprintf(buf, len, "%.0f", mb);
	else
		top_fmt_count(buf, len, mb);
}

/* Sizes in binary units: 4096 -> "4K", 262144 -> "256K". */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char sfx[] = "KMGTPE";
	double x = (double)v;
	int i;

	if (v < 1024) {
		snprintf(buf, len, "%llu", (unsigned long long)v);
		return;
	}
	for (i = 0; i < 6 && x >= 1024; i++)
		x /= 1024;
	snprintf(buf, len, x < 9.95 && x != floor(x) ? "%.1f%c" : "%.0f%c", x, sfx[i - 1]);
}

void top_fmt_age(char *buf, size_t len, double secs)
{
	unsigned long s;

	if (secs < 0 || isnan(secs)) {
		snprintf(buf, len, "-");
		return;
	}
	if (secs < 10) {
		snprintf(buf, len, "%.1fs", secs);
		return;
	}
	s = secs > 1e9 ? 1000000000ul : (unsigned long)secs;
	if (s < 60)
		snprintf(buf, len, "%lus", s);
	else if (s < 3600)
		snprintf(buf, len, "%lum%02lus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%luh%02lum", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lud%02luh", s / 86400, s % 86400 / 3600);
}

/* ------------------------------------------------------------ rows */

static const struct top_snap *sort_snap;
static const struct top_view *sort_view;

static double col_value(const struct top_node *n, int col)
{
	const struct top_rate *r = &n->rate;

	switch (col) {
	case TOP_COL_PID:
		return n->pid;
	case TOP_COL_STATE:
		return n->state;
	case TOP_COL_UPTIME:
		return n->uptime;
	case TOP_COL_MSGS_IN:
		return r->valid ? r->msgs_in : -1;
	case TOP_COL_MSGS_OUT:
		return r->valid ? r->msgs_out : -1;
	case TOP_COL_MB_IN:
		return r->valid ? r->bytes_in : -1;
	case TOP_COL_MB_OUT:
		return r->valid ? r->bytes_out : -1;
	case TOP_COL_WAKES:
		return r->valid ? r->wakes : -1;
	case TOP_COL_SKIP:
		return r->valid ? r->skip_share : -1;
	case TOP_COL_SLEEPS:
		return r->valid ? r->sleeps : -1;
	case TOP_COL_FULL:
		return r->valid ? r->full : -1;
	case TOP_COL_RINGS_IN:
		return n->rings_in;
	case TOP_COL_RINGS_OUT:
		return n->rings_out;
	case TOP_COL_CALLS:
		return r->valid ? r->calls : -1;
	case TOP_COL_INFLIGHT:
		return top_inflight(n);
	case TOP_COL_CFAIL:
		return n->seg_ok ? (double)n->tot.calls_failed : -1;
	}
	return 0;
}

static int cmp_rows(const void *pa, const void *pb)
{
	const struct top_node *a = &sort_snap->nodes[*(const uint32_t *)pa];
	const struct top_node *b = &sort_snap->nodes[*(const uint32_t *)pb];
	const char *da = sort_snap->doms[a->dom].name, *db = sort_snap->doms[b->dom].name;
	int col = sort_view->sort, c = 0;
	double x, y;

	if (col == TOP_COL_NAME) {
		c = strcmp(a->name, b->name);
	} else if (col == TOP_COL_DOMAIN) {
		c = strcmp(da, db);
	} else {
		x = col_value(a, col);
		y = col_value(b, col);
		c = x < y ? -1 : x > y;
	}
	if (top_cols[col].desc)
		c = -c;
	if (sort_view->reverse)
		c = -c;
	/* Ties: a stable order, so rows do not jump between refreshes. */
	if (!c)
		c = strcmp(da, db);
	if (!c)
		c = strcmp(a->name, b->name);
	if (!c)
		c = a->slot < b->slot ? -1 : a->slot > b->slot;
	return c;
}

uint32_t top_rows(const struct top_snap *s, const struct top_view *v, uint32_t *rows)
{
	uint32_t i, n = 0;

	for (i = 0; i < s->nnodes; i++) {
		const struct top_node *nd = &s->nodes[i];

		if (v->domain && strcmp(v->domain, s->doms[nd->dom].name))
			continue;
		if (v->filter && v->filter[0] && !strcasestr(nd->name, v->filter))
			continue;
		rows[n++] = i;
	}
	/* qsort has no context argument in C11: the tool is single-threaded. */
	sort_snap = s;
	sort_view = v;
	qsort(rows, n, sizeof(*rows), cmp_rows);
	return n;
}

/* Append @cell to @buf at *pos, padded or cut to @w, then a space. */
static void put(char *buf, size_t len, size_t *pos, const char *cell, int w, bool left)
{
	int n = (int)strlen(cell);

	if (*pos >= len)
		return;
	if (n > w) { /* cut; a cut name ends in '~' so it is not taken for another */
		snprintf(buf + *pos, len - *pos, "%.*s~ ", w - 1, cell);
	} else {
		snprintf(buf + *pos, len - *pos, left ? "%-*s " : "%*s ", w, cell);
	}
	*pos += strlen(buf + *pos);
}

/*
 * Which columns a width holds. NAME, then the sorted column (sorting by a
 * column the user cannot see would read as a bug), then the others in this
 * order, each one that still fits; shown in the table's order. 80 columns
 * hold NAME PID STATE, the messages and megabytes in and out, and WAKE/s.
 */
static const enum top_col_id col_prio[] = {
	TOP_COL_NAME,	 TOP_COL_STATE,	   TOP_COL_DOMAIN, TOP_COL_PID,	     TOP_COL_MSGS_OUT,
	TOP_COL_MSGS_IN, TOP_COL_MB_OUT,   TOP_COL_MB_IN,  TOP_COL_WAKES,    TOP_COL_SKIP,
	TOP_COL_FULL,	 TOP_COL_SLEEPS,   TOP_COL_UPTIME, TOP_COL_RINGS_IN, TOP_COL_RINGS_OUT,
	TOP_COL_CALLS,	 TOP_COL_INFLIGHT, TOP_COL_CFAIL,
};
_Static_assert(sizeof(col_prio) / sizeof(col_prio[0]) == TOP_COL_COUNT, "every column ranked");

/* Take column @c if it fits in what is left; *used counts separators too. */
static void col_take(const struct top_view *v, bool *shown, int *used, int c)
{
	int need = top_cols[c].width + (*used ? 1 : 0);

	if (shown[c] || (c == TOP_COL_DOMAIN && !v->show_domain))
		return;
	if (v->width > 0 && *used + need > v->width)
		return;
	shown[c] = true;
	*used += need;
}

void top_cols_fit(const struct top_view *v, bool shown[TOP_COL_COUNT])
{
	int used = 0;
	size_t i;

	memset(shown, 0, TOP_COL_COUNT * sizeof(*shown));
	col_take(v, shown, &used, TOP_COL_NAME);
	col_take(v, shown, &used, v->sort);
	for (i = 0; i < TOP_COL_COUNT; i++)
		col_take(v, shown, &used, col_prio[i]);
}

void top_fmt_head(char *buf, size_t len, const struct top_view *v)
{
	bool shown[TOP_COL_COUNT];
	char cell[32];
	size_t pos = 0;
	int c;

	buf[0] = '\0';
	top_cols_fit(v, shown);
	for (c = 0; c < TOP_COL_COUNT; c++) {
		if (!shown[c])
			continue;
		/* The sorted column wears a marker: '>' biggest first. Every
		 * width leaves room for it. */
		if (c == v->sort)
			snprintf(cell, sizeof(cell), "%s%s",
				 top_cols[c].desc != v->reverse ? ">" : "<", top_cols[c].head);
		else
			snprintf(cell, sizeof(cell), "%s", top_cols[c].head);
		put(buf, len, &pos, cell, top_cols[c].width, top_cols[c].left);
	}
	while (pos && buf[pos - 1] == ' ')
		buf[--pos] = '\0';
}

static void cell_of(char *cell, size_t len, const struct top_snap *s, const struct top_node *n,
		    int c)
{
	double v = col_value(n, c);

	switch (c) {
	case TOP_COL_NAME:
		snprintf(cell, len, "%s", n->name);
		break;
	case TOP_COL_DOMAIN:
		snprintf(cell, len, "%s", s->doms[n->dom].name);
		break;
	case TOP_COL_PID:
		snprintf(cell, len, "%d", n->pid);
		break;
	case TOP_COL_STATE:
		snprintf(cell, len, "%s", top_state_name(n->state));
		break;
	case TOP_COL_UPTIME:
		top_fmt_age(cell, len, n->uptime);
		break;
	case TOP_COL_MB_IN:
	case TOP_COL_MB_OUT:
		top_fmt_mb(cell, len, v);
		break;
	case TOP_COL_SKIP:
		if (v < 0)
			snprintf(cell, len, "-");
		else
			snprintf(cell, len, "%.0f", v * 100);
		break;
	default:
		top_fmt_count(cell, len, v);
	}
}

/*
 * A node without readable counters shows why instead, where its counters
 * would start; on a width too narrow for the whole reason, from the UPTIME
 * cell on (a dead node's uptime matters less than why it is listed).
 */
static void put_why(char *buf, size_t len, size_t *pos, size_t uptime_pos, const char *why,
		    const struct top_view *v)
{
	int room;

	if (v->width > 0 && *pos + strlen(why) > (size_t)v->width) {
		*pos = uptime_pos;
		buf[*pos] = '\0';
	}
	room = v->width > 0 ? v->width - (int)*pos : (int)strlen(why);
	if (room > 0)
		put(buf, len, pos, why, (int)strlen(why) > room ? room : (int)strlen(why), true);
}

void top_fmt_row(char *buf, size_t len, const struct top_snap *s, const struct top_node *n,
		 const struct top_view *v)
{
	char cell[TOP_WHY_MAX + 16];
	bool shown[TOP_COL_COUNT];
	bool why = !n->seg_ok && n->why[0]; /* no counters to show: say why instead */
	size_t pos = 0, uptime_pos = 0;
	int c;

	buf[0] = '\0';
	top_cols_fit(v, shown);
	for (c = 0; c < TOP_COL_COUNT && !(why && c > TOP_COL_UPTIME); c++) {
		if (!shown[c])
			continue;
		if (c == TOP_COL_UPTIME)
			uptime_pos = pos;
		cell_of(cell, sizeof(cell), s, n, c);
		put(buf, len, &pos, cell, top_cols[c].width, top_cols[c].left);
	}
	if (why)
		put_why(buf, len, &pos, shown[TOP_COL_UPTIME] ? uptime_pos : pos, n->why, v);
	while (pos && buf[pos - 1] == ' ')
		buf[--pos] = '\0';
}

/* ------------------------------------------------------------ header */

static void fmt_reaper(char *buf, size_t len, const struct top_reaper *r)
{
	const char *mode = r->mode == 1 ? "bpf" : r->mode == 2 ? "pidfd" : "?";
	char age[16];

	top_fmt_age(age, sizeof(age), r->beat_age);
	if (r->state == TOP_REAPER_RUNNING)
		snprintf(buf, len, "running (%s, pid %u, reaped %llu)", mode, r->pid,
			 (unsigned long long)r->reaped);
	else if (r->state == TOP_REAPER_STALE)
		snprintf(buf, len, "stale (%s, pid %u, last beat %s ago)", mode, r->pid, age);
	else
		snprintf(buf, len, "not running");
}

void top_fmt_summary(char *l1, char *l2, size_t len, const struct top_snap *s,
		     const struct top_summary *sum, const struct top_view *v, double delay)
{
	char when[32], be[48], msgs[16], mb[16], reaper[96], doms[96], bad[32] = "", ev[160];
	time_t t = (time_t)s->wall;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (sum->futex && sum->uring)
		snprintf(be, sizeof(be), "uring %u, futex %u", sum->uring, sum->futex);
	else
		snprintf(be, sizeof(be), "%s", sum->uring ? "uring" : sum->futex ? "futex" : "-");
	if (sum->domains_bad)
		snprintf(bad, sizeof(bad), ", %u unusable", sum->domains_bad);
	if (v->domain)
		snprintf(doms, sizeof(doms), "domain %s%s", v->domain, bad);
	else
		snprintf(doms, sizeof(doms), "domains %u%s", sum->domains, bad);
	snprintf(l1, len,
		 "shmrpc-top %s  every %.1fs  %s  nodes %u live, %u dead, %u other  backend %s",
		 when, delay, doms, sum->live, sum->dead, sum->other, be);
	top_fmt_count(msgs, sizeof(msgs), sum->rates ? sum->msgs : -1);
	top_fmt_mb(mb, sizeof(mb), sum->rates ? sum->bytes : -1);
	fmt_reaper(reaper, sizeof(reaper), &sum->reaper);
	ev[0] = '\0';
	if (sum->have_last)
		top_fmt_event(ev, sizeof(ev), &sum->last);
	snprintf(l2, len, "msgs/s %s  MB/s %s  rings %u%s  reaper %s  events %llu%s%s", msgs, mb,
		 sum->rings, sum->rings_bad ? " (some corrupt)" : "", reaper,
		 (unsigned long long)sum->events, ev[0] ? ", last: " : "", ev);
}

/*
 * Fold @line onto lines of at most @width columns (0: no limit), breaking
 * only between its parts (separated by two spaces), so no part is cut in
 * two; a part wider than @width keeps a line of its own. The lines go to
 * @buf separated by '\n'; returns how many.
 */
/* Append @n bytes of @str to @buf (of @len, NUL-terminated) at *at, as many
 * as fit. */
static void cat(char *buf, size_t len, size_t *at, const char *str, size_t n)
{
	if (*at + n >= len)
		n = *at + 1 < len ? len - *at - 1 : 0;
	memcpy(buf + *at, str, n);
	*at += n;
	buf[*at] = '\0';
}

int top_wrap(char *buf, size_t len, const char *line, int width)
{
	size_t at = 0, cur, part;
	bool first = true;
	int lines = 1;

	buf[0] = '\0';
	cur = strspn(line, " "); /* a leading indent is kept */
	cat(buf, len, &at, line, cur);
	line += cur;
	while (*line) {
		part = strcspn(line, " ");
		while (line[part] == ' ' && line[part + 1] && line[part + 1] != ' ')
			part += 1 + strcspn(line + part + 1, " ");
		if (!first && width > 0 && cur + 2 + part > (size_t)width) {
			cat(buf, len, &at, "\n", 1);
			cur = 0;
			lines++;
		} else if (!first) {
			cat(buf, len, &at, "  ", 2);
			cur += 2;
		}
		cat(buf, len, &at, line, part);
		cur += part;
		first = false;
		line += part;
		line += strspn(line, " ");
	}
	return lines;
}

/* ------------------------------------------------------------ rings */

void top_fmt_ring_head(char *buf, size_t len, int bar)
{
	snprintf(buf, len, "%-3s %-16s %8s %7s %7s %6s/%-5s %*s%s %6s %6s  %s", "DIR", "PEER",
		 "MSGS", "MSG/s", "MB/s", "DEPTH", "CAP", bar ? bar + 2 : 0, "", bar ? " FILL" : "",
		 "FULL", "IDLE", "FLAGS");
}

static void ring_flags(char *buf, size_t len, const struct top_ring *r)
{
	snprintf(buf, len, "%s%s%s%s%s", r->flags & SHMRPC__RING_TX_CLOSED ? "tx-closed " : "",
		 r->flags & SHMRPC__RING_RX_CLOSED ? "rx-closed " : "",
		 r->flags & SHMRPC__RING_RX_OPENED ? "" : "unopened ",
		 r->rx_sleeping ? "rx-asleep " : "", r->tx_sleeping ? "tx-blocked " : "");
}

static void fmt_bar(char *buf, size_t len, uint64_t depth, uint32_t size, int w)
{
	int i, fill = size ? (int)((depth * (uint64_t)w + size - 1) / size) : 0;

	if (w + 3 > (int)len)
		w = (int)len - 3;
	buf[0] = '[';
	for (i = 0; i < w; i++)
		buf[1 + i] = i < fill ? '#' : '.';
	buf[1 + w] = ']';
	buf[2 + w] = '\0';
}

void top_fmt_ring(char *buf, size_t len, const struct top_snap *s, const struct top_ring *r,
		  int self, int bar)
{
	char peer[SHMRPC_NAME_MAX + 16], msgs[16], rate[16], mb[16], dep[16], cap[16], idle[20];
	char b[80] = "", pct[8] = "", flags[64];
	bool out = r->tx_node == self;
	double t = s->interval;
	const char *p = top_ring_peer(s, r, self, peer, sizeof(peer));
	size_t n;

	if (r->status != TOP_RING_OK) {
		snprintf(buf, len, "%-3s %-16s %s: %s", out ? "out" : "in", p,
			 r->status == TOP_RING_CREATING ? "creating" : "corrupt", r->why);
		return;
	}
	top_fmt_count(msgs, sizeof(msgs), (double)(out ? r->tx_msgs : r->rx_msgs));
	top_fmt_count(rate, sizeof(rate),
		      r->have_delta && t > 0 ? (double)(out ? r->d_tx_msgs : r->d_rx_msgs) / t :
					       -1);
	top_fmt_mb(mb, sizeof(mb),
		   r->have_delta && t > 0 ? (double)(out ? r->d_tx_bytes : r->d_rx_bytes) / t : -1);
	fmt_size(dep, sizeof(dep), r->depth);
	fmt_size(cap, sizeof(cap), r->size);
	if (bar) {
		fmt_bar(b, sizeof(b), r->depth, r->size, bar);
		snprintf(pct, sizeof(pct), " %3.0f%%", r->size ? 100.0 * r->depth / r->size : 0);
	}
	top_fmt_age(idle + 1, sizeof(idle) - 1, s->mono - r->changed);
	idle[0] = r->changed_before ? '>' : ' ';
	ring_flags(flags, sizeof(flags), r);
	snprintf(buf, len, "%-3s %-16.16s %8s %7s %7s %6s/%-5s %s%s %6llu %6s  %s",
		 out ? "out" : "in", p, msgs, rate, mb, dep, cap, b, pct,
		 (unsigned long long)r->tx_full, idle, flags);
	for (n = strlen(buf); n && buf[n - 1] == ' ';)
		buf[--n] = '\0';
}
