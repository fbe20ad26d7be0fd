// SPDX-License-Identifier: MIT
/*
 * The interactive screen (ncurses): the node list, a node's rings, a help
 * page. Keys act on the current snapshot at once; a new snapshot is taken
 * every -d seconds (or on space). The selection follows its node by
 * identity (domain, slot, generation) across refreshes and re-sorts.
 *
 *  list:   header lines, a view line, column headings, the rows, a help line
 *  rings:  header lines, the node, its totals and rates, its rings
 *  help:   every key and what each column means
 *
 * Everything fits the terminal's width: the header's parts wrap onto more
 * lines (2 from about 100 columns, 3 at 80), the table shows the columns
 * that fit, by priority (table.c), and the help line has a short form.
 */
#include <curses.h>
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "top.h"

#define LINE 512
#define FILTER_MAX 64

enum ui_screen { SCR_LIST, SCR_RINGS, SCR_HELP };

struct ui {
	struct top_opts *o;
	struct top_snap cur, prev;
	uint32_t *rows, nrows, cap_rows;
	enum ui_screen scr, back; /* back: where help returns to */
	uint32_t sel, first;	  /* selected row, first row shown */
	/* identity of the selected node */
	char sel_dom[SHMRPC_NAME_MAX + 1];
	uint32_t sel_slot, sel_gen;
	bool have_sel;
	uint32_t ring_first; /* first ring line shown */
	int dom_pick;	     /* -1 all, else index into the domains seen */
	char dom_name[SHMRPC_NAME_MAX + 1];
	char filter[FILTER_MAX + 1];
	bool editing;
	char edit[FILTER_MAX + 1];
	bool color;
	char msg[128];
	int hdr; /* lines the header took at the last draw */
};

static int refresh_snap(struct ui *u)
{
	int err = top_scan(&u->cur, u->o->domain);

	if (err)
		return err;
	top_rates(&u->cur, u->prev.mono > 0 ? &u->prev : NULL);
	top_snap_swap(&u->cur, &u->prev); /* prev is now the newest */
	return 0;
}

/* Rows of the newest snapshot (u->prev after refresh_snap), sorted; the
 * selection moves to where its node went. 1 if it was found, 0 if not. */
static int update_rows(struct ui *u)
{
	struct top_snap *s = &u->prev;
	uint32_t i;

	if (s->nnodes > u->cap_rows) {
		uint32_t *v = realloc(u->rows, s->nnodes * sizeof(*v));

		if (!v)
			return -ENOMEM;
		u->rows = v;
		u->cap_rows = s->nnodes;
	}
	u->o->view.filter = u->filter;
	u->o->view.domain = u->dom_pick >= 0 ? u->dom_name : u->o->domain;
	u->o->view.show_domain = !u->o->view.domain && s->ndoms > 1;
	u->nrows = top_rows(s, &u->o->view, u->rows);
	if (u->have_sel)
		for (i = 0; i < u->nrows; i++) {
			const struct top_node *n = &s->nodes[u->rows[i]];

			if (n->slot == u->sel_slot && n->gen == u->sel_gen &&
			    !strcmp(s->doms[n->dom].name, u->sel_dom)) {
				u->sel = i;
				return 1;
			}
		}
	if (u->sel >= u->nrows)
		u->sel = u->nrows ? u->nrows - 1 : 0;
	return 0;
}

static const struct top_node *selected(const struct ui *u)
{
	return u->nrows ? &u->prev.nodes[u->rows[u->sel]] : NULL;
}

static void remember_sel(struct ui *u)
{
	const struct top_node *n = selected(u);

	u->have_sel = n != NULL;
	if (n) {
		snprintf(u->sel_dom, sizeof(u->sel_dom), "%s", u->prev.doms[n->dom].name);
		u->sel_slot = n->slot;
		u->sel_gen = n->gen;
	}
}

/* ------------------------------------------------------------ drawing */

static void line_at(int y, const char *text, int attr)
{
	if (y < 0 || y >= LINES)
		return;
	attrset(attr);
	mvaddnstr(y, 0, text, COLS);
	clrtoeol();
	attrset(A_NORMAL);
}

static int node_attr(const struct ui *u, const struct top_node *n)
{
	if (!u->color)
		return A_NORMAL;
	switch (n->state) {
	case TOP_NODE_DEAD:
	case TOP_NODE_GONE:
	case TOP_NODE_CORRUPT:
		return COLOR_PAIR(1);
	case TOP_NODE_JOINING:
	case TOP_NODE_CLOSING:
	case TOP_NODE_UNKNOWN:
		return COLOR_PAIR(2);
	default:
		return A_NORMAL;
	}
}

/* Lines of @text (top_wrap's) from line @y on; returns the line after. */
static int lines_at(int y, char *text, int attr)
{
	char *save, *l;

	for (l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		line_at(y++, l, attr);
	return y;
}

static void draw_summary(struct ui *u)
{
	char l1[LINE], l2[LINE], w[2 * LINE];
	struct top_summary sum;
	uint32_t i;
	int y;

	top_summarize(&u->prev, u->o->view.domain, &sum);
	top_fmt_summary(l1, l2, sizeof(l1), &u->prev, &sum, &u->o->view, u->o->delay);
	top_wrap(w, sizeof(w), l1, COLS);
	y = lines_at(0, w, A_BOLD);
	top_wrap(w, sizeof(w), l2, COLS);
	y = lines_at(y, w, A_NORMAL);
	for (i = 0; i < u->prev.nbridges; i++) { /* one line per bridge (-b: a table) */
		top_bridge_line(l1, sizeof(l1), &u->prev.bridges[i]);
		top_wrap(w, sizeof(w), l1, COLS);
		y = lines_at(y, w, A_NORMAL);
	}
	u->hdr = y;
}

/* Rows of the node list the screen holds: under the header, the view line
 * and the headings, above the help line. */
static int list_rows(const struct ui *u)
{
	return LINES - u->hdr - 3 > 1 ? LINES - u->hdr - 3 : 1;
}

static void help_line(const char *full, const char *brief)
{
	line_at(LINES - 1, (int)strlen(full) <= COLS ? full : brief, A_BOLD);
}

static void draw_list(struct ui *u)
{
	char line[LINE];
	int y, h = list_rows(u), top = u->hdr;
	uint32_t i;

	snprintf(line, sizeof(line), "view: %s  filter: %s  sort: %s%s  %s",
		 u->o->view.domain ? u->o->view.domain : "all domains",
		 u->filter[0] ? u->filter : "none", top_cols[u->o->view.sort].head,
		 u->o->view.reverse ? " (reversed)" : "", u->msg);
	if (u->editing)
		snprintf(line, sizeof(line), "filter: %s_   (Enter apply, Esc cancel)", u->edit);
	line_at(top, line, A_NORMAL);
	top_fmt_head(line, sizeof(line), &u->o->view);
	line_at(top + 1, line, A_REVERSE);
	if (u->sel < u->first)
		u->first = u->sel;
	if (u->sel >= u->first + (uint32_t)h)
		u->first = u->sel - (uint32_t)h + 1;
	for (y = 0; y < h; y++) {
		i = u->first + (uint32_t)y;
		if (i >= u->nrows) {
			line_at(top + 2 + y, i == 0 && y == 0 ? "  (no nodes)" : "", A_NORMAL);
			continue;
		}
		top_fmt_row(line, sizeof(line), &u->prev, &u->prev.nodes[u->rows[i]], &u->o->view);
		line_at(top + 2 + y, line,
			(i == u->sel ? A_REVERSE : A_NORMAL) |
				node_attr(u, &u->prev.nodes[u->rows[i]]));
	}
	help_line("q quit  Up/Down select  Enter rings  / filter  d domain  < > r sort"
		  "  sort by: n p S u i o I O w k l f x y  ? help",
		  "q quit  Up/Down select  Enter rings  / filter  d domain  < > r sort  ? help");
}

static void fmt_totals(char *l1, char *l2, size_t len, const struct top_node *n)
{
	const struct top_ctr *t = &n->tot;

	snprintf(l1, len, "totals: msgs in %llu out %llu  bytes in %llu out %llu  full %llu",
		 (unsigned long long)t->msgs_in, (unsigned long long)t->msgs_out,
		 (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out,
		 (unsigned long long)t->full);
	snprintf(l2, len, "        wakes %llu skipped %llu  sleeps %llu  spins %llu  connects %llu",
		 (unsigned long long)t->wakes, (unsigned long long)t->skips,
		 (unsigned long long)t->sleeps, (unsigned long long)t->spins,
		 (unsigned long long)t->connects);
}

/* The node's line, totals and rates, wrapped to the width, from line @y;
 * returns the line after them. */
static int draw_node_head(struct ui *u, const struct top_node *n, int y)
{
	const struct top_snap *s = &u->prev;
	char line[LINE], more[LINE], w[2 * LINE], up[16], a[16], b[16], c[16], d[16];

	top_fmt_age(up, sizeof(up), n->uptime);
	snprintf(line, sizeof(line),
		 "node %s  domain %s  id %u.%u  pid %d  %s%s%s  backend %s  up %s", n->name,
		 s->doms[n->dom].name, n->slot, n->gen, n->pid, top_state_name(n->state),
		 n->why[0] ? ": " : "", n->why, top_backend_name(n->backend), up);
	top_wrap(w, sizeof(w), line, COLS);
	y = lines_at(y, w, A_BOLD | node_attr(u, n));
	if (n->seg_ok) {
		fmt_totals(line, more, sizeof(line), n);
	} else {
		snprintf(line, sizeof(line), "totals: - (segment not readable)");
		more[0] = '\0';
	}
	top_wrap(w, sizeof(w), line, COLS);
	y = lines_at(y, w, A_NORMAL);
	top_wrap(w, sizeof(w), more, COLS);
	y = lines_at(y, w, A_NORMAL);
	top_fmt_count(a, sizeof(a), n->rate.valid ? n->rate.msgs_in : -1);
	top_fmt_count(b, sizeof(b), n->rate.valid ? n->rate.msgs_out : -1);
	top_fmt_mb(c, sizeof(c), n->rate.valid ? n->rate.bytes_in : -1);
	top_fmt_mb(d, sizeof(d), n->rate.valid ? n->rate.bytes_out : -1);
	snprintf(line, sizeof(line),
		 "rates: msgs/s in %s out %s  MB/s in %s out %s  rings in %u out %u", a, b, c, d,
		 n->rings_in, n->rings_out);
	top_wrap(w, sizeof(w), line, COLS);
	y = lines_at(y, w, A_NORMAL);
	line_at(y++, "", A_NORMAL);
	return y;
}

static void draw_node(struct ui *u, const struct top_node *n, int ni)
{
	const struct top_snap *s = &u->prev;
	char line[LINE];
	const struct top_ring *r;
	int y, i, skip = (int)u->ring_first, bar = COLS > 150 ? 20 : COLS > 120 ? 10 : 0;

	y = draw_node_head(u, n, u->hdr);
	if (u->ring_first && u->ring_first >= n->rings_in + n->rings_out)
		skip = (int)(u->ring_first = n->rings_in + n->rings_out - 1);
	top_fmt_ring_head(line, sizeof(line), bar);
	line_at(y++, line, A_REVERSE);
	for (i = n->first_out; i >= 0 && y < LINES - 1; i = r->next_out) {
		r = &s->rings[i];
		if (skip-- > 0)
			continue;
		top_fmt_ring(line, sizeof(line), s, r, ni, bar);
		line_at(y++, line, A_NORMAL);
	}
	for (i = n->first_in; i >= 0 && y < LINES - 1; i = r->next_in) {
		r = &s->rings[i];
		if (skip-- > 0)
			continue;
		top_fmt_ring(line, sizeof(line), s, r, ni, bar);
		line_at(y++, line, A_NORMAL);
	}
	if (!n->rings_in && !n->rings_out)
		line_at(y++, "  (no rings)", A_NORMAL);
	while (y < LINES - 1)
		line_at(y++, "", A_NORMAL);
}

static void draw_rings(struct ui *u)
{
	const struct top_node *n = NULL;
	uint32_t i;
	int y;

	/* The node by identity, even if the filter or sort moved it. */
	for (i = 0; u->have_sel && i < u->prev.nnodes; i++) {
		const struct top_node *c = &u->prev.nodes[i];

		if (c->slot == u->sel_slot && c->gen == u->sel_gen &&
		    !strcmp(u->prev.doms[c->dom].name, u->sel_dom)) {
			n = c;
			break;
		}
	}
	if (n) {
		draw_node(u, n, (int)i);
	} else {
		char line[LINE];

		snprintf(line, sizeof(line), "node %u.%u of domain %s is gone", u->sel_slot,
			 u->sel_gen, u->sel_dom);
		line_at(u->hdr, line, A_BOLD);
		for (y = u->hdr + 1; y < LINES - 1; y++)
			line_at(y, "", A_NORMAL);
	}
	line_at(LINES - 1, "Esc/Left back  Up/Down scroll  q quit  ? help", A_BOLD);
}

static void draw_help(void)
{
	char line[LINE];
	int y = 0, i;

	line_at(y++, "shmrpc-top keys", A_BOLD);
	line_at(y++, "  q quit   Up/Down/PgUp/PgDn/Home/End move   Enter/Right rings of the node",
		A_NORMAL);
	line_at(y++, "  Esc/Left back   / filter by name   d next domain (all, then each)",
		A_NORMAL);
	line_at(y++, "  < > sort by the previous/next column   r reverse   space refresh now",
		A_NORMAL);
	line_at(y++, "", A_NORMAL);
	line_at(y++, "Columns (key: sort by it)", A_BOLD);
	for (i = 0; i < TOP_COL_COUNT; i++) {
		snprintf(line, sizeof(line), "  %c  %-9s %s", top_cols[i].key, top_cols[i].head,
			 top_cols[i].what);
		line_at(y++, line, A_NORMAL);
	}
	line_at(y++, "", A_NORMAL);
	line_at(y++, "Rates are per second over the last refresh; '-' means not known yet.",
		A_NORMAL);
	line_at(y++, "Ring IDLE: time since the tool saw it move ('>': at least that long).",
		A_NORMAL);
	while (y < LINES - 1)
		line_at(y++, "", A_NORMAL);
	line_at(LINES - 1, "any key: back", A_BOLD);
}

static void draw(struct ui *u)
{
	u->o->view.width = COLS;
	if (u->scr == SCR_HELP) {
		draw_help();
	} else {
		draw_summary(u);
		if (u->scr == SCR_LIST)
			draw_list(u);
		else
			draw_rings(u);
	}
	refresh();
}

/* ------------------------------------------------------------ keys */

static void edit_key(struct ui *u, int ch)
{
	size_t n = strlen(u->edit);

	if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		snprintf(u->filter, sizeof(u->filter), "%s", u->edit);
		u->editing = false;
	} else if (ch == 27) {
		u->editing = false;
	} else if ((ch == KEY_BACKSPACE || ch == 127 || ch == '\b') && n) {
		u->edit[n - 1] = '\0';
	} else if (ch >= 0x20 && ch < 0x7f && n < FILTER_MAX) {
		u->edit[n] = (char)ch;
		u->edit[n + 1] = '\0';
	}
}

static void next_domain(struct ui *u)
{
	if (u->o->domain) {
		snprintf(u->msg, sizeof(u->msg), "(domain fixed by --domain)");
		return;
	}
	u->dom_pick++;
	if (u->dom_pick >= (int)u->prev.ndoms)
		u->dom_pick = -1;
	if (u->dom_pick >= 0)
		snprintf(u->dom_name, sizeof(u->dom_name), "%s", u->prev.doms[u->dom_pick].name);
}

static void sort_by(struct ui *u, int col)
{
	if (col == u->o->view.sort) {
		u->o->view.reverse = !u->o->view.reverse;
		return;
	}
	u->o->view.sort = col;
	u->o->view.reverse = false;
}

static void sort_step(struct ui *u, int step)
{
	int c = u->o->view.sort;

	do
		c = (c + step + TOP_COL_COUNT) % TOP_COL_COUNT;
	while (c == TOP_COL_DOMAIN && !u->o->view.show_domain);
	sort_by(u, c);
}

static void move_sel(struct ui *u, long by)
{
	long sel = (long)u->sel + by;

	if (!u->nrows)
		return;
	if (sel < 0)
		sel = 0;
	if (sel >= (long)u->nrows)
		sel = (long)u->nrows - 1;
	u->sel = (uint32_t)sel;
	remember_sel(u);
}

static void rings_key(struct ui *u, int ch)
{
	switch (ch) {
	case 27:
	case KEY_LEFT:
	case KEY_BACKSPACE:
	case 127:
	case '\b':
		u->scr = SCR_LIST;
		break;
	case KEY_UP:
		if (u->ring_first)
			u->ring_first--;
		break;
	case KEY_DOWN:
		u->ring_first++;
		break;
	}
}

static void list_key(struct ui *u, int ch)
{
	long page = list_rows(u) > 1 ? list_rows(u) - 1 : 1;
	int col;

	switch (ch) {
	case KEY_UP:
		move_sel(u, -1);
		return;
	case KEY_DOWN:
		move_sel(u, 1);
		return;
	case KEY_PPAGE:
		move_sel(u, -page);
		return;
	case KEY_NPAGE:
		move_sel(u, page);
		return;
	case KEY_HOME:
		move_sel(u, -(long)u->nrows);
		return;
	case KEY_END:
		move_sel(u, (long)u->nrows);
		return;
	case '\n':
	case '\r':
	case KEY_ENTER:
	case KEY_RIGHT:
		if (selected(u)) {
			remember_sel(u);
			u->scr = SCR_RINGS;
			u->ring_first = 0;
		}
		return;
	case '/':
		u->editing = true;
		snprintf(u->edit, sizeof(u->edit), "%s", u->filter);
		return;
	case 'd':
		next_domain(u);
		break;
	case '<':
		sort_step(u, -1);
		break;
	case '>':
		sort_step(u, 1);
		break;
	case 'r':
		u->o->view.reverse = !u->o->view.reverse;
		break;
	default:
		col = top_col_by_key(ch);
		if (col >= 0)
			sort_by(u, col);
	}
}

/* false: quit. */
static bool on_key(struct ui *u, int ch, double *next)
{
	u->msg[0] = '\0';
	if (u->editing) {
		edit_key(u, ch);
	} else if (u->scr == SCR_HELP) {
		u->scr = u->back;
	} else if (ch == 'q' || ch == 'Q') {
		return false;
	} else if (ch == '?' || ch == 'h') {
		u->back = u->scr;
		u->scr = SCR_HELP;
	} else if (ch == ' ') {
		*next = 0;
	} else if (u->scr == SCR_RINGS) {
		rings_key(u, ch);
	} else {
		list_key(u, ch);
	}
	if (!update_rows(u) && u->scr == SCR_LIST)
		remember_sel(u);
	return true;
}

static void screen_init(struct ui *u)
{
	setlocale(LC_ALL, "");
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	curs_set(0);
	set_escdelay(25);
	if (has_colors()) {
		start_color();
		use_default_colors();
		init_pair(1, COLOR_RED, -1);
		init_pair(2, COLOR_YELLOW, -1);
		u->color = true;
	}
}

int top_ui(struct top_opts *o)
{
	struct ui u;
	double next = 0, wait;
	int ch, err = 0;

	memset(&u, 0, sizeof(u));
	u.o = o;
	u.dom_pick = -1;
	screen_init(&u);
	for (;;) {
		if (top_now_mono() >= next) {
			err = refresh_snap(&u);
			snprintf(u.msg, sizeof(u.msg), "%s", err ? strerror(-err) : "");
			next = top_now_mono() + o->delay;
			if (!err && !update_rows(&u) && u.scr == SCR_LIST)
				remember_sel(&u);
		}
		draw(&u);
		wait = (next - top_now_mono()) * 1000;
		timeout(wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait + 1);
		ch = getch();
		if (ch == ERR || ch == KEY_RESIZE)
			continue;
		if (!on_key(&u, ch, &next))
			break;
	}
	endwin();
	top_snap_free(&u.cur);
	top_snap_free(&u.prev);
	free(u.rows);
	return 0;
}
