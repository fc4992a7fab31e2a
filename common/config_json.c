/*
 * The effective configuration as JSON, as byd sends it to the helpers,
 * and back.  Durations travel as integer milliseconds and sizes as
 * integer bytes so that a round trip is exact; an optional section that
 * is absent is null.  config_from_json is strict (every key, no unknown
 * one, exact types): byd and its helpers are one build, so a mismatch is
 * a bug to report, not to paper over.
 */

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "config_keys.h"

#define REDACTED	"********"

static json_t *
str_json(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
list_json(const struct strlist *l)
{
	json_t	*a;
	size_t	 i;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < l->n; i++)
		if (json_array_append_new(a, json_string(l->v[i])) == -1) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *
map_json(const struct strmap *m)
{
	json_t	*o;
	size_t	 i;

	if ((o = json_object()) == NULL)
		return NULL;
	for (i = 0; i < m->n; i++)
		if (json_object_set_new(o, m->k[i], json_string(m->v[i])) ==
		    -1) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static json_t *
tables_json(const struct config *c, const struct config_key *k)
{
	const struct ck_tables	*t = k->tables;
	char			*arr = *(char **)config_field(c, k);
	size_t			 n = *(size_t *)((char *)c + t->count_off);
	json_t			*a, *o;
	size_t			 i, f;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((o = json_object()) == NULL ||
		    json_array_append_new(a, o) == -1)
			goto fail;
		for (f = 0; f < 2; f++)
			if (json_object_set_new(o, t->field[f], str_json(
			    *(char **)(arr + i * t->elemsize +
			    t->field_off[f]))) == -1)
				goto fail;
	}
	return a;
 fail:
	json_decref(a);
	return NULL;
}

static json_t *
field_json(const struct config *c, const struct config_key *k, int redact)
{
	void	*f = config_field(c, k);

	if (redact && (k->flags & CK_SECRET) && *(char **)f != NULL)
		return json_string(REDACTED);
	switch (k->type) {
	case CK_STRING:
	case CK_PATH:
		return str_json(*(char **)f);
	case CK_BOOL:
		return json_boolean(*(int *)f);
	case CK_INT:
		return json_integer(*(int *)f);
	case CK_FLOAT:
		return json_real(*(double *)f);
	case CK_DURATION:
		return json_integer(*(int64_t *)f);
	case CK_SIZE:
		return json_integer((json_int_t)*(uint64_t *)f);
	case CK_LIST:
		return list_json(f);
	case CK_MAP:
		return map_json(f);
	case CK_TABLES:
		return tables_json(c, k);
	}
	return NULL;
}

static json_t *
section_json(const struct config *c, const struct config_section *s,
    int redact)
{
	const struct config_key	*k;
	const int		*present;
	json_t			*o;
	size_t			 i;

	if ((present = config_present(c, s)) != NULL && !*present)
		return json_null();
	if ((o = json_object()) == NULL)
		return NULL;
	for (i = 0; i < config_nkeys; i++) {
		k = &config_keys[i];
		if (strcmp(k->section, s->name) != 0 || k->deprecated != NULL)
			continue;
		if (json_object_set_new(o, k->name, field_json(c, k, redact))
		    == -1) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *
to_json(const struct config *c, int redact)
{
	const struct config_section	*s;
	json_t				*o;
	size_t				 i;

	if ((o = json_object()) == NULL)
		return NULL;
	if (json_object_set_new(o, "path", json_string(c->path ? c->path :
	    "")) == -1 ||
	    json_object_set_new(o, "warnings", list_json(&c->warnings)) == -1)
		goto fail;
	for (i = 0; i < config_nsections; i++) {
		s = &config_sections[i];
		if (s->alias_of != NULL)
			continue;
		if (json_object_set_new(o, s->name, section_json(c, s, redact))
		    == -1)
			goto fail;
	}
	return o;
 fail:
	json_decref(o);
	return NULL;
}

json_t *
config_to_json(const struct config *c)
{
	return to_json(c, 0);
}

json_t *
config_to_json_redacted(const struct config *c)
{
	return to_json(c, 1);
}

/* ---- from JSON ----------------------------------------------------------- */

static int __attribute__((format(printf, 3, 4)))
jerr(char *err, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int
str_from(const json_t *j, char **out)
{
	char	*d = NULL;

	if (!json_is_string(j) && !json_is_null(j))
		return -1;
	if (json_is_string(j) && (d = strdup(json_string_value(j))) == NULL)
		return -1;
	free(*out);
	*out = d;
	return 0;
}

static int
list_from(const json_t *j, struct strlist *l)
{
	const json_t	*e;
	size_t		 i;

	if (!json_is_array(j))
		return -1;
	json_array_foreach(j, i, e)
		if (!json_is_string(e) ||
		    config_strlist_add(l, json_string_value(e)) == -1)
			return -1;
	return 0;
}

static int
map_from(const json_t *j, struct strmap *m)
{
	const char	*key;
	const json_t	*e;

	if (!json_is_object(j))
		return -1;
	json_object_foreach((json_t *)j, key, e)
		if (!json_is_string(e) ||
		    config_strmap_add(m, key, json_string_value(e)) == -1)
			return -1;
	return 0;
}

static int
tables_from(struct config *c, const struct config_key *k, const json_t *j)
{
	const struct ck_tables	*t = k->tables;
	const json_t		*e, *f;
	char			*elem;
	size_t			 i, n;

	if (!json_is_array(j))
		return -1;
	json_array_foreach(j, i, e) {
		if (!json_is_object(e) || json_object_size(e) != 2 ||
		    (elem = config_tables_add(c, k)) == NULL)
			return -1;
		for (n = 0; n < 2; n++)
			if ((f = json_object_get(e, t->field[n])) == NULL ||
			    str_from(f, (char **)(elem + t->field_off[n]))
			    == -1)
				return -1;
	}
	return 0;
}

static int
int_from(const json_t *j, int64_t min, int64_t max, int64_t *v)
{
	if (!json_is_integer(j))
		return -1;
	*v = json_integer_value(j);
	return *v >= min && *v <= max ? 0 : -1;
}

static int
field_from(struct config *c, const struct config_key *k, const json_t *j)
{
	void	*f = config_field(c, k);
	int64_t	 v;

	config_field_clear(c, k);
	switch (k->type) {
	case CK_STRING:
	case CK_PATH:
		return str_from(j, f);
	case CK_BOOL:
		if (!json_is_boolean(j))
			return -1;
		*(int *)f = json_is_true(j);
		return 0;
	case CK_INT:
		if (int_from(j, INT_MIN, INT_MAX, &v) == -1)
			return -1;
		*(int *)f = v;
		return 0;
	case CK_FLOAT:
		if (!json_is_number(j) || !isfinite(json_number_value(j)))
			return -1;
		*(double *)f = json_number_value(j);
		return 0;
	case CK_DURATION:
		return int_from(j, 0, INT64_MAX, f);
	case CK_SIZE:
		if (int_from(j, 0, INT64_MAX, &v) == -1)
			return -1;
		*(uint64_t *)f = v;
		return 0;
	case CK_LIST:
		return list_from(j, f);
	case CK_MAP:
		return map_from(j, f);
	case CK_TABLES:
		return tables_from(c, k, j);
	}
	return -1;
}

static int
section_from(struct config *c, const struct config_section *s,
    const json_t *j, char *err, size_t errlen)
{
	const struct config_key	*k;
	const json_t		*v;
	const char		*name = NULL;
	int			*present;
	size_t			 i, nkeys = 0;

	present = config_present(c, s);
	if (json_is_null(j) && present != NULL) {
		*present = 0;
		return 0;
	}
	if (!json_is_object(j))
		return jerr(err, errlen, "config JSON: %s: expected an object",
		    s->name);
	if (present != NULL)
		*present = 1;
	for (i = 0; i < config_nkeys; i++) {
		k = &config_keys[i];
		if (strcmp(k->section, s->name) != 0 || k->deprecated != NULL)
			continue;
		nkeys++;
		if ((v = json_object_get(j, k->name)) == NULL)
			return jerr(err, errlen, "config JSON: %s.%s: missing",
			    s->name, k->name);
		if (field_from(c, k, v) == -1)
			return jerr(err, errlen, "config JSON: %s.%s: invalid "
			    "value", s->name, k->name);
	}
	if (json_object_size(j) != nkeys) {
		json_object_foreach((json_t *)j, name, v)
			if ((k = config_key_find(s->name, name)) == NULL ||
			    k->deprecated != NULL)
				break;
		return jerr(err, errlen, "config JSON: %s.%s: unknown key",
		    s->name, name != NULL ? name : "?");
	}
	return 0;
}

static int
top_from(struct config *c, const json_t *j, char *err, size_t errlen)
{
	const struct config_section	*s;
	const json_t			*v;
	size_t				 i, n = 2;

	if (!json_is_object(j))
		return jerr(err, errlen, "config JSON: expected an object");
	if ((v = json_object_get(j, "path")) == NULL || !json_is_string(v) ||
	    str_from(v, &c->path) == -1)
		return jerr(err, errlen, "config JSON: path: missing or "
		    "invalid");
	if ((v = json_object_get(j, "warnings")) == NULL ||
	    list_from(v, &c->warnings) == -1)
		return jerr(err, errlen, "config JSON: warnings: missing or "
		    "invalid");
	for (i = 0; i < config_nsections; i++) {
		s = &config_sections[i];
		if (s->alias_of != NULL)
			continue;
		n++;
		if ((v = json_object_get(j, s->name)) == NULL)
			return jerr(err, errlen, "config JSON: %s: missing",
			    s->name);
		if (section_from(c, s, v, err, errlen) == -1)
			return -1;
	}
	if (json_object_size(j) != n)
		return jerr(err, errlen, "config JSON: unknown section");
	return 0;
}

struct config *
config_from_json(const json_t *j, char *err, size_t errlen)
{
	struct config	*c;

	if ((c = config_new_defaults()) == NULL) {
		jerr(err, errlen, "config JSON: out of memory");
		return NULL;
	}
	if (top_from(c, j, err, errlen) == -1) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* ---- comparison ---------------------------------------------------------- */

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
list_eq(const struct strlist *a, const struct strlist *b)
{
	size_t	 i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (!str_eq(a->v[i], b->v[i]))
			return 0;
	return 1;
}

static int
map_eq(const struct strmap *a, const struct strmap *b)
{
	size_t	 i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (!str_eq(a->k[i], b->k[i]) || !str_eq(a->v[i], b->v[i]))
			return 0;
	return 1;
}

static int
tables_eq(const struct config *a, const struct config *b,
    const struct config_key *k)
{
	const struct ck_tables	*t = k->tables;
	char			*ea = *(char **)config_field(a, k);
	char			*eb = *(char **)config_field(b, k);
	size_t			 n = *(size_t *)((char *)a + t->count_off);
	size_t			 i, f;

	if (n != *(size_t *)((char *)b + t->count_off))
		return 0;
	for (i = 0; i < n; i++)
		for (f = 0; f < 2; f++)
			if (!str_eq(*(char **)(ea + i * t->elemsize +
			    t->field_off[f]), *(char **)(eb + i * t->elemsize +
			    t->field_off[f])))
				return 0;
	return 1;
}

static int
field_eq(const struct config *a, const struct config *b,
    const struct config_key *k)
{
	const void	*fa = config_field(a, k), *fb = config_field(b, k);

	switch (k->type) {
	case CK_STRING:
	case CK_PATH:
		return str_eq(*(char *const *)fa, *(char *const *)fb);
	case CK_BOOL:
	case CK_INT:
		return *(const int *)fa == *(const int *)fb;
	case CK_FLOAT:
		return *(const double *)fa == *(const double *)fb;
	case CK_DURATION:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case CK_SIZE:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case CK_LIST:
		return list_eq(fa, fb);
	case CK_MAP:
		return map_eq(fa, fb);
	case CK_TABLES:
		return tables_eq(a, b, k);
	}
	return 0;
}

int
config_equal(const struct config *a, const struct config *b)
{
	const int	*pa, *pb;
	size_t		 i;

	if (!str_eq(a->path, b->path) || !list_eq(&a->warnings, &b->warnings))
		return 0;
	for (i = 0; i < config_nsections; i++) {
		pa = config_present(a, &config_sections[i]);
		pb = config_present(b, &config_sections[i]);
		if (pa != NULL && *pa != *pb)
			return 0;
	}
	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].deprecated == NULL &&
		    !field_eq(a, b, &config_keys[i]))
			return 0;
	return 1;
}
