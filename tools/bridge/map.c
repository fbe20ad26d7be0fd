// SPDX-License-Identifier: MIT
/*
 * A string-keyed hash table of pointers: open addressing with linear
 * probing, deletion by backward shift (no tombstones). The key of an item
 * is its own NUL-terminated name at key_off, so an item is in at most one
 * place and the table stores pointers only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

static const char *key(const struct br_map *m, const void *item)
{
	return (const char *)item + m->key_off;
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

void br_map_init(struct br_map *m, size_t key_off)
{
	memset(m, 0, sizeof(*m));
	m->key_off = key_off;
}

void br_map_free(struct br_map *m)
{
	free(m->v);
	m->v = NULL;
	m->cap = m->n = 0;
}

static uint32_t find(const struct br_map *m, const char *k)
{
	uint32_t i = hash(k) & (m->cap - 1);

	while (m->v[i] && strcmp(key(m, m->v[i]), k))
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *br_map_get(const struct br_map *m, const char *k)
{
	return m->cap ? m->v[find(m, k)] : NULL;
}

static int grow(struct br_map *m)
{
	struct br_map bigger = *m;
	uint32_t i;

	bigger.cap = m->cap ? 2 * m->cap : 16;
	bigger.v = calloc(bigger.cap, sizeof(void *));
	if (!bigger.v)
		return -ENOMEM;
	for (i = 0; i < m->cap; i++)
		if (m->v[i])
			bigger.v[find(&bigger, key(m, m->v[i]))] = m->v[i];
	free(m->v);
	*m = bigger;
	return 0;
}

int br_map_put(struct br_map *m, void *item)
{
	uint32_t i;

	if (4 * (m->n + 1) > 3 * m->cap && grow(m))
		return -ENOMEM;
	i = find(m, key(m, item));
	if (m->v[i])
		return -EEXIST;
	m->v[i] = item;
	m->n++;
	return 0;
}

void *br_map_del(struct br_map *m, const char *k)
{
	uint32_t i, j, home;
	void *item;

	if (!m->cap || !(item = m->v[i = find(m, k)]))
		return NULL;
	m->v[i] = NULL;
	m->n--;
	/* backward shift: move up every later item of the run that may */
	for (j = (i + 1) & (m->cap - 1); m->v[j]; j = (j + 1) & (m->cap - 1)) {
		home = hash(key(m, m->v[j])) & (m->cap - 1);
		/* the item at j may fill the hole at i unless its home lies
		 * cyclically in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			m->v[i] = m->v[j];
			m->v[j] = NULL;
			i = j;
		}
	}
	return item;
}

void *br_map_next(const struct br_map *m, uint32_t *i)
{
	while (*i < m->cap) {
		void *item = m->v[(*i)++];

		if (item)
			return item;
	}
	return NULL;
}
