/* SPDX-License-Identifier: MIT */
/*
 * A strict little JSON reader for tests (RFC 8259 syntax: objects, arrays,
 * strings with escapes, numbers, true/false/null), so that a test can both
 * check that a document is valid JSON and look values up in it. Header-only:
 * static functions, for the test program that includes it.
 */
#ifndef SHMRPC_MINI_JSON_H
#define SHMRPC_MINI_JSON_H

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum mj_type { MJ_NULL, MJ_BOOL, MJ_NUM, MJ_STR, MJ_ARR, MJ_OBJ };

struct mj {
	enum mj_type t;
	bool b;
	double num;
	char *str;	 /* MJ_STR */
	char *key;	 /* member name inside an object */
	struct mj *kids; /* MJ_ARR, MJ_OBJ */
	size_t n;
};

static const char *mj_value(const char *p, struct mj *v, int depth);

static const char *mj_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *mj_string(const char *p, char **out)
{
	size_t cap = 16, n = 0;
	char *s = malloc(cap);

	if (!s || *p++ != '"')
		goto fail;
	while (*p != '"') {
		char c = *p++;

		if ((unsigned char)c < 0x20)
			goto fail;
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case '"':
			case '\\':
			case '/':
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u': {
				unsigned x = 0;
				int i;

				for (i = 0; i < 4; i++, p++) {
					if (!isxdigit((unsigned char)*p))
						goto fail;
					x = x * 16 + (unsigned)(isdigit((unsigned char)*p) ?
									*p - '0' :
									tolower((unsigned char)*p) -
										'a' + 10);
				}
				c = x < 0x80 ? (char)x : '?';
				break;
			}
			default:
				goto fail;
			}
		}
		if (n + 2 > cap) {
			char *t = realloc(s, cap *= 2);

			if (!t)
				goto fail;
			s = t;
		}
		s[n++] = c;
	}
	s[n] = '\0';
	*out = s;
	return p + 1;
fail:
	free(s);
	return NULL;
}

static const char *mj_number(const char *p, double *out)
{
	const char *q = p;
	char *end;

	if (*q == '-')
		q++;
	if (*q == '0')
		q++;
	else if (isdigit((unsigned char)*q))
		while (isdigit((unsigned char)*q))
			q++;
	else
		return NULL;
	if (*q == '.') {
		if (!isdigit((unsigned char)*++q))
			return NULL;
		while (isdigit((unsigned char)*q))
			q++;
	}
	if (*q == 'e' || *q == 'E') {
		q++;
		if (*q == '+' || *q == '-')
			q++;
		if (!isdigit((unsigned char)*q))
			return NULL;
		while (isdigit((unsigned char)*q))
			q++;
	}
	*out = strtod(p, &end);
	return end == q ? q : NULL;
}

static const char *mj_list(const char *p, struct mj *v, char close, int depth)
{
	p = mj_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		struct mj *k = realloc(v->kids, (v->n + 1) * sizeof(*k));

		if (!k)
			return NULL;
		v->kids = k;
		k = &v->kids[v->n++];
		memset(k, 0, sizeof(*k));
		if (close == '}') {
			if (!(p = mj_string(p, &k->key)))
				return NULL;
			p = mj_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		if (!(p = mj_value(mj_ws(p), k, depth + 1)))
			return NULL;
		p = mj_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
		p = mj_ws(p);
	}
}

static const char *mj_value(const char *p, struct mj *v, int depth)
{
	if (depth > 64)
		return NULL;
	switch (*p) {
	case '{':
		v->t = MJ_OBJ;
		return mj_list(p, v, '}', depth);
	case '[':
		v->t = MJ_ARR;
		return mj_list(p, v, ']', depth);
	case '"':
		v->t = MJ_STR;
		return mj_string(p, &v->str);
	case 't':
		v->t = MJ_BOOL;
		v->b = true;
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		v->t = MJ_BOOL;
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		v->t = MJ_NULL;
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		v->t = MJ_NUM;
		return mj_number(p, &v->num);
	}
}

static void mj_free(struct mj *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		mj_free(&v->kids[i]);
	free(v->kids);
	free(v->str);
	free(v->key);
	memset(v, 0, sizeof(*v));
}

/* Parse all of @text (one document, whitespace around it allowed). */
static int mj_parse(const char *text, struct mj *v)
{
	const char *end;

	memset(v, 0, sizeof(*v));
	end = mj_value(mj_ws(text), v, 0);
	if (!end || *mj_ws(end)) {
		mj_free(v);
		return -1;
	}
	return 0;
}

/* Member @key of object @v, or NULL. */
static const struct mj *mj_get(const struct mj *v, const char *key)
{
	size_t i;

	if (!v || v->t != MJ_OBJ)
		return NULL;
	for (i = 0; i < v->n; i++)
		if (!strcmp(v->kids[i].key, key))
			return &v->kids[i];
	return NULL;
}

/* A number at @key of @v; @dflt if missing or not a number. */
static double mj_num(const struct mj *v, const char *key, double dflt)
{
	const struct mj *m = mj_get(v, key);

	return m && m->t == MJ_NUM ? m->num : dflt;
}

static const char *mj_str(const struct mj *v, const char *key)
{
	const struct mj *m = mj_get(v, key);

	return m && m->t == MJ_STR ? m->str : NULL;
}

#endif
