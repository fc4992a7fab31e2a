/*
 * Reading the configuration: the file through inih, then the
 * BLOCKYARD_<SECTION>_<KEY> environment, then the cross-field checks.
 *
 * Debian's inih truncates lines at 200 bytes, cuts values at " ;",
 * joins indented lines to the previous value and does not report line
 * numbers.  So inih never sees the raw file: our reader function hands
 * it one normalised line per table header ("[name]" or "[[name]]") and
 * per key ("k=\001N", N a sequence number), and keeps the key, its raw
 * value text (joined over several lines while an array, inline table or
 * multi-line string is open) and its line number for the handler.
 */

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <ini.h>

#include "config.h"
#include "config_keys.h"
#include "config_toml.h"

#define CONFIG_MAX_FILE		(1024 * 1024)
#define CONFIG_MAX_LINE		(64 * 1024)
#define CONFIG_MAX_NAME		96

extern char **environ;

struct cstate {
	struct config		*cfg;
	const char		*name;		/* for messages */
	const char		*buf;
	size_t			 len;
	size_t			 pos;
	long			 line;		/* last physical line */
	int			 failed;
	char			*err;
	size_t			 errlen;
	config_getenv_fn	 getenv_fn;
	void			*arg;

	/* Per key: 0, the line it was set on, or CONFIG_FROM_ENV. */
	long			*setat;
	/* Per key: the line of its [a.b] or first [[a.b]] header. */
	long			*hdrline;
	/* Per key: the lines of its array-of-tables elements. */
	struct config_lines	*elines;
	/* Per section: the line of its header, and if warned about. */
	long			*secline;
	int			*secwarned;

	/* The table the next keys go to: section as written, maybe an
	 * alias; the map or array of tables of a [a.b] or [[a.b]]; the
	 * fields set in the current [[ ]] element; its name for messages
	 * ("server.worker_env") and as inih reports it ("[a.b" for [[ ]]). */
	const struct config_section *sec;
	const struct config_key	*sub;
	unsigned		 elemset;
	char			 label[CONFIG_MAX_NAME];
	char			 inisec[CONFIG_MAX_NAME + 2];

	/* The key line handed to inih, waiting for the handler. */
	int			 pending;
	unsigned long		 seq;
	char			*pkey;
	char			*praw;
	long			 pline;
};

/* Scanner state while joining the lines of one value. */
struct vscan {
	int	 depth;		/* open [ and { */
	char	 str;		/* in '"', '\'', """ ('D'), ''' ('L') */
};

static size_t
kidx(const struct config_key *k)
{
	return k - config_keys;
}

static size_t
sidx(const struct config_section *s)
{
	return s - config_sections;
}

static void
vformat(struct cstate *st, const char *prefix, const char *fmt, va_list ap)
{
	size_t	 n;

	st->failed = 1;
	n = strlen(prefix);
	strlcpy(st->err, prefix, st->errlen);
	if (n < st->errlen)
		vsnprintf(st->err + n, st->errlen - n, fmt, ap);
}

/* "NAME:LINE: ..." or, with line 0, "NAME: ...". */
static void __attribute__((format(printf, 3, 4)))
errat(struct cstate *st, long line, const char *fmt, ...)
{
	char	 prefix[512];
	va_list	 ap;

	if (st->failed)
		return;
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%ld: ", st->name, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", st->name);
	va_start(ap, fmt);
	vformat(st, prefix, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
enverr(struct cstate *st, const char *var, const char *fmt, ...)
{
	char	 prefix[256];
	va_list	 ap;

	if (st->failed)
		return;
	snprintf(prefix, sizeof(prefix), "environment: %.100s: ", var);
	va_start(ap, fmt);
	vformat(st, prefix, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
warnat(struct cstate *st, const char *where, const char *fmt, ...)
{
	char	*msg, *full;
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r == -1)
		return;
	if (asprintf(&full, "%s: %s", where, msg) != -1) {
		/* A warning lost to memory shortage is not worth failing. */
		(void)config_strlist_add(&st->cfg->warnings, full);
		free(full);
	}
	free(msg);
}

static void
where_line(struct cstate *st, long line, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%ld", st->name, line);
}

static const char *
not_built_msg(void)
{
	return "is not built yet in this version of byd";
}

/* ---- the line reader ----------------------------------------------------- */

/* The next physical line: 1, 0 at the end, -1 on error. */
static int
next_line(struct cstate *st, const char **l, size_t *n)
{
	const char	*s, *nl;

	if (st->pos >= st->len)
		return 0;
	s = st->buf + st->pos;
	nl = memchr(s, '\n', st->len - st->pos);
	*n = nl != NULL ? (size_t)(nl - s) : st->len - st->pos;
	st->pos += *n + (nl != NULL);
	st->line++;
	if (memchr(s, '\0', *n) != NULL) {
		errat(st, st->line, "NUL byte in the file");
		return -1;
	}
	if (*n > CONFIG_MAX_LINE) {
		errat(st, st->line, "line is longer than %d bytes",
		    CONFIG_MAX_LINE);
		return -1;
	}
	if (*n > 0 && s[*n - 1] == '\r')
		(*n)--;
	*l = s;
	return 1;
}

static void
skip_blanks(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Follow strings, comments and brackets of one physical line. */
static void
vscan_line(struct vscan *sc, const char *s, size_t n)
{
	size_t	 i, q;
	char	 c;

	for (i = 0; i < n; i++) {
		c = s[i];
		switch (sc->str) {
		case '"':
			if (c == '\\')
				i++;
			else if (c == '"')
				sc->str = 0;
			continue;
		case '\'':
			if (c == '\'')
				sc->str = 0;
			continue;
		case 'D':
		case 'L':
			if (sc->str == 'D' && c == '\\') {
				i++;
				continue;
			}
			if (c != (sc->str == 'D' ? '"' : '\''))
				continue;
			for (q = 0; i + q < n && s[i + q] == c; q++)
				;
			if (q >= 3)
				sc->str = 0;
			i += q - 1;
			continue;
		}
		if (c == '#')
			break;
		if ((c == '"' || c == '\'') && i + 2 < n && s[i + 1] == c &&
		    s[i + 2] == c) {
			sc->str = c == '"' ? 'D' : 'L';
			i += 2;
		} else if (c == '"' || c == '\'')
			sc->str = c;
		else if (c == '[' || c == '{')
			sc->depth++;
		else if ((c == ']' || c == '}') && sc->depth > 0)
			sc->depth--;
	}
	/* A one-line string cannot go on; the value parser reports it. */
	if (sc->str == '"' || sc->str == '\'')
		sc->str = 0;
}

static int
raw_add(struct cstate *st, char **raw, size_t *rlen, const char *s, size_t n)
{
	char	*nr;

	if (*rlen + n + 2 > CONFIG_MAX_FILE) {
		errat(st, st->line, "value is too long");
		return -1;
	}
	if ((nr = realloc(*raw, *rlen + n + 2)) == NULL) {
		errat(st, st->line, "out of memory");
		return -1;
	}
	*raw = nr;
	if (*rlen > 0)
		nr[(*rlen)++] = '\n';
	memcpy(nr + *rlen, s, n);
	*rlen += n;
	nr[*rlen] = '\0';
	return 0;
}

/* The raw text of a value, with the lines it continues on. */
static char *
collect_value(struct cstate *st, const char *first)
{
	struct vscan	 sc = { 0, 0 };
	const char	*l;
	char		*raw = NULL;
	size_t		 rlen = 0, n;
	int		 r;

	n = strlen(first);
	if (raw_add(st, &raw, &rlen, first, n) == -1)
		return NULL;
	if (rlen == 0)
		raw[0] = '\0';
	vscan_line(&sc, first, n);
	while (sc.depth > 0 || sc.str == 'D' || sc.str == 'L') {
		if ((r = next_line(st, &l, &n)) == 0)
			break;		/* the parser says what is open */
		if (r == -1 || raw_add(st, &raw, &rlen, l, n) == -1) {
			free(raw);
			return NULL;
		}
		if (rlen == 0)
			raw[rlen++] = '\n';
		vscan_line(&sc, l, n);
	}
	return raw;
}

static void
section_seen(struct cstate *st, const struct config_section *s, long line)
{
	char	 where[256];
	int	*present;

	if ((present = config_present(st->cfg, s)) != NULL)
		*present = 1;
	if (st->secwarned[sidx(s)])
		return;
	st->secwarned[sidx(s)] = 1;
	where_line(st, line, where, sizeof(where));
	if (s->alias_of != NULL)
		warnat(st, where, "[%s] is deprecated, use [%s]", s->name,
		    s->alias_of);
	if (s->ignored)
		warnat(st, where, "[%s] is ignored: byd runs workers with "
		    "bubblewrap ([process])", s->name);
}

/* [section.map] or [[section.tables]]. */
static int
open_subtable(struct cstate *st, const struct config_section *s,
    const char *key, int aot, const char *name)
{
	const struct config_key	*k;
	const char		*nb;
	size_t			 i;

	if ((k = config_key_find(s->name, key)) == NULL ||
	    k->deprecated != NULL) {
		errat(st, st->line, "unknown table [%s]", name);
		return -1;
	}
	i = kidx(k);
	if (k->type != CK_MAP && k->type != CK_TABLES) {
		errat(st, st->line, "[%s] %s is not a table", s->name, key);
		return -1;
	}
	if (k->type == CK_MAP && aot) {
		errat(st, st->line, "[%s] %s is a table, write [%s]", s->name,
		    key, name);
		return -1;
	}
	if (k->type == CK_TABLES && !aot) {
		errat(st, st->line, "[%s] %s is an array of tables, write "
		    "[[%s]]", s->name, key, name);
		return -1;
	}
	if ((nb = config_not_built(k, NULL)) != NULL) {
		errat(st, st->line, "[%s] %s: %s %s", s->name, key, nb,
		    not_built_msg());
		return -1;
	}
	if (st->setat[i] != 0 && (k->type == CK_MAP || st->hdrline[i] == 0)) {
		errat(st, st->line, "[%s] %s is already set at line %ld",
		    s->name, key, st->setat[i]);
		return -1;
	}
	if (k->type == CK_TABLES && config_tables_add(st->cfg, k) == NULL) {
		errat(st, st->line, "out of memory");
		return -1;
	}
	if (k->type == CK_TABLES) {
		struct config_lines	*el = &st->elines[i];
		long			*nv;

		if ((nv = reallocarray(el->v, el->n + 1, sizeof(*nv))) ==
		    NULL) {
			errat(st, st->line, "out of memory");
			return -1;
		}
		el->v = nv;
		el->v[el->n++] = st->line;
	}
	if (st->setat[i] == 0) {
		st->setat[i] = st->line;
		st->hdrline[i] = st->line;
	}
	st->sub = k;
	st->elemset = 0;
	return 0;
}

static int
open_table(struct cstate *st, const char *name, int aot)
{
	const struct config_section	*s;
	char				 sec[CONFIG_MAX_NAME];
	const char			*dot;

	strlcpy(sec, name, sizeof(sec));
	if ((dot = strchr(name, '.')) != NULL)
		sec[dot - name] = '\0';
	if ((s = config_section_find(sec)) == NULL ||
	    (dot != NULL && strchr(dot + 1, '.') != NULL)) {
		errat(st, st->line, "unknown %s %s%s%s", aot ? "array of tables"
		    : "section", aot ? "[[" : "[", name, aot ? "]]" : "]");
		return -1;
	}
	st->sec = s;
	st->sub = NULL;
	if (dot != NULL) {
		if (open_subtable(st, s, dot + 1, aot, name) == -1)
			return -1;
	} else if (aot) {
		errat(st, st->line, "[%s] is a table, write [%s]", name, name);
		return -1;
	} else if (st->secline[sidx(s)] != 0) {
		errat(st, st->line, "[%s] is defined twice (first at line %ld)",
		    name, st->secline[sidx(s)]);
		return -1;
	} else
		st->secline[sidx(s)] = st->line;
	section_seen(st, s, st->line);
	strlcpy(st->label, name, sizeof(st->label));
	snprintf(st->inisec, sizeof(st->inisec), "%s%s", aot ? "[" : "", name);
	return 0;
}

/* A table header line; writes the normalised header for inih to out. */
static int
header_line(struct cstate *st, const char *p, char *out, int num)
{
	char	 name[CONFIG_MAX_NAME];
	size_t	 n = 0;
	int	 aot;

	aot = p[1] == '[';
	p += aot ? 2 : 1;
	for (;;) {
		skip_blanks(&p);
		if (*p == '"' || *p == '\'') {
			errat(st, st->line, "quoted table names are not "
			    "supported");
			return -1;
		}
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			goto bad;
		while (isalnum((unsigned char)*p) || *p == '_' || *p == '-') {
			if (n + 2 >= sizeof(name)) {
				errat(st, st->line, "table name is too long");
				return -1;
			}
			name[n++] = *p++;
		}
		skip_blanks(&p);
		if (*p != '.')
			break;
		name[n++] = *p++;
	}
	name[n] = '\0';
	if (*p++ != ']' || (aot && *p++ != ']'))
		goto bad;
	skip_blanks(&p);
	if (*p != '\0' && *p != '#') {
		errat(st, st->line, "unexpected text after the table header");
		return -1;
	}
	if (open_table(st, name, aot) == -1)
		return -1;
	snprintf(out, num, "%s%s%s\n", aot ? "[[" : "[", name, aot ? "]]" :
	    "]");
	return 0;
 bad:
	errat(st, st->line, "invalid table header");
	return -1;
}

/* "key = value": the value goes to the side slot, inih gets "k=\1N". */
static int
key_line(struct cstate *st, const char *p, char *out, int num)
{
	char		 emsg[256];
	char		*key, *raw;
	long		 line = st->line;

	if ((key = toml_parse_key(&p, emsg, sizeof(emsg))) == NULL) {
		errat(st, line, "%s", strcmp(emsg, "expected a key") == 0 ?
		    "expected a key, a [section] or a comment" : emsg);
		return -1;
	}
	skip_blanks(&p);
	if (st->sec == NULL)
		errat(st, line, "%.64s: key outside of any [section]", key);
	else if (*p == '.')
		errat(st, line, "[%s] %.64s: dotted keys are not supported",
		    st->label, key);
	else if (*p != '=')
		errat(st, line, "[%s] %.64s: expected '=' after the key",
		    st->label, key);
	if (st->failed) {
		free(key);
		return -1;
	}
	p++;
	skip_blanks(&p);
	if ((raw = collect_value(st, p)) == NULL) {
		free(key);
		return -1;
	}
	st->pending = 1;
	st->pkey = key;
	st->praw = raw;
	st->pline = line;
	snprintf(out, num, "k=\001%lu\n", ++st->seq);
	return 0;
}

static char *
reader(char *str, int num, void *arg)
{
	struct cstate	*st = arg;
	const char	*l, *p;
	char		*line;
	size_t		 n;
	int		 r;

	if (st->failed)
		return NULL;
	if (st->pending || num < 2 * CONFIG_MAX_NAME) {
		errat(st, st->line, "internal error: inih out of step");
		return NULL;
	}
	for (;;) {
		if (next_line(st, &l, &n) != 1)
			return NULL;
		if ((line = strndup(l, n)) == NULL) {
			errat(st, st->line, "out of memory");
			return NULL;
		}
		p = line;
		skip_blanks(&p);
		if (*p == '\0' || *p == '#') {
			free(line);
			continue;
		}
		if (*p == '[')
			r = header_line(st, p, str, num);
		else
			r = key_line(st, p, str, num);
		free(line);
		return r == 0 ? str : NULL;
	}
}

/* ---- the handler: one key and its value ---------------------------------- */

static int
assign_map(struct cstate *st, const struct tval *tv)
{
	struct strmap	*m = config_field(st->cfg, st->sub);
	char		 got[96];
	size_t		 i;

	if (tv->type != TV_STRING) {
		tval_describe(tv, 0, got, sizeof(got));
		errat(st, st->pline, "[%s] %.64s: expected a string, got %s",
		    st->label, st->pkey, got);
		return -1;
	}
	for (i = 0; i < m->n; i++)
		if (strcmp(m->k[i], st->pkey) == 0) {
			errat(st, st->pline, "[%s] %.64s: duplicate key",
			    st->label, st->pkey);
			return -1;
		}
	if (config_strmap_add(m, st->pkey, tv->s) == -1) {
		errat(st, st->pline, "out of memory");
		return -1;
	}
	return 0;
}

static int
assign_elem(struct cstate *st, const struct tval *tv)
{
	const struct config_key	*k = st->sub;
	char			**arr = config_field(st->cfg, k);
	size_t			 n, bit;
	char			 got[96];

	n = *(size_t *)((char *)st->cfg + k->tables->count_off);
	if (!config_tables_field(k, st->pkey)) {
		errat(st, st->pline, "[%s] %.64s: unknown key (expected %s and "
		    "%s)", st->label, st->pkey, k->tables->field[0],
		    k->tables->field[1]);
		return -1;
	}
	bit = strcmp(st->pkey, k->tables->field[0]) == 0 ? 1 : 2;
	if (st->elemset & bit) {
		errat(st, st->pline, "[%s] %s: duplicate key", st->label,
		    st->pkey);
		return -1;
	}
	st->elemset |= bit;
	if (tv->type != TV_STRING) {
		tval_describe(tv, 0, got, sizeof(got));
		errat(st, st->pline, "[%s] %s: expected a string, got %s",
		    st->label, st->pkey, got);
		return -1;
	}
	if (config_tables_set(k, *arr + (n - 1) * k->tables->elemsize,
	    st->pkey, tv->s) == -1) {
		errat(st, st->pline, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Check a value into a scratch config: a deprecated key that loses to
 * its new name must still be well-formed.
 */
static int
check_only(const struct config_key *k, const struct tval *tv,
    const char *s, char *msg, size_t len)
{
	struct config	*tmp;
	int		 r;

	if ((tmp = calloc(1, sizeof(*tmp))) == NULL) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	if (tv != NULL)
		r = config_set_tval(tmp, k, tv, msg, len);
	else
		r = config_set_string(tmp, k, s, msg, len);
	config_field_clear(tmp, k);
	free(tmp);
	return r;
}

static void
record_elements(struct cstate *st, const struct config_key *k,
    const struct tval *tv, long line)
{
	struct config_lines	*el = &st->elines[kidx(k)];
	size_t			 i;

	free(el->v);
	el->n = 0;
	if ((el->v = calloc(tv->n + 1, sizeof(*el->v))) == NULL)
		return;
	for (i = 0; i < tv->n; i++)
		el->v[el->n++] = line > 0 ? line + tv->v[i]->line : line;
}

static int
assign_key(struct cstate *st, const struct tval *tv)
{
	const struct config_key	*k, *t;
	char			 msg[512], where[256];
	const char		*nb;
	int			 r;

	if ((k = config_key_find(st->sec->name, st->pkey)) == NULL) {
		errat(st, st->pline, "[%s] %.64s: unknown key", st->label,
		    st->pkey);
		return -1;
	}
	if (st->setat[kidx(k)] != 0) {
		errat(st, st->pline, "[%s] %s: duplicate key (first set at "
		    "line %ld)", st->label, k->name, st->setat[kidx(k)]);
		return -1;
	}
	nb = config_not_built(k, tv->type == TV_STRING ? tv->s : NULL);
	if (nb != NULL) {
		errat(st, st->pline, "[%s] %s: %s %s", st->label, k->name, nb,
		    not_built_msg());
		return -1;
	}
	t = config_key_target(k);
	if (t != k) {
		where_line(st, st->pline, where, sizeof(where));
		warnat(st, where, "[%s] %s is deprecated, use [%s] %s",
		    st->label, k->name, t->section, t->name);
	}
	if (t != k && st->setat[kidx(t)] != 0)
		r = check_only(k, tv, NULL, msg, sizeof(msg));
	else
		r = config_set_tval(st->cfg, k, tv, msg, sizeof(msg));
	if (r == -1) {
		errat(st, st->pline, "[%s] %s: %s", st->label, k->name, msg);
		return -1;
	}
	st->setat[kidx(k)] = st->pline;
	if (k->type == CK_TABLES)
		record_elements(st, k, tv, st->pline);
	return 0;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct cstate	*st = user;
	struct tval	*tv;
	char		 emsg[256];
	unsigned	 el = 0;
	int		 r;

	if (st->failed)
		return 0;
	if (!st->pending || value[0] != '\001' ||
	    strtoul(value + 1, NULL, 10) != st->seq ||
	    strcmp(section, st->inisec) != 0) {
		errat(st, st->line, "internal error: inih out of step");
		return 0;
	}
	st->pending = 0;
	if ((tv = tval_parse(st->praw, &el, emsg, sizeof(emsg))) == NULL) {
		errat(st, st->pline + el, "[%s] %.64s: %s", st->label, st->pkey,
		    emsg);
		r = -1;
	} else if (st->sub != NULL && st->sub->type == CK_MAP)
		r = assign_map(st, tv);
	else if (st->sub != NULL)
		r = assign_elem(st, tv);
	else
		r = assign_key(st, tv);
	tval_free(tv);
	free(st->pkey);
	free(st->praw);
	st->pkey = st->praw = NULL;
	return r == 0;
}

/* ---- after the file ------------------------------------------------------ */

/* The feature of a section none of whose keys works yet, else NULL. */
static const char *
section_not_built(const struct config_section *s)
{
	const char	*name = s->alias_of != NULL ? s->alias_of : s->name;
	const char	*nb, *first = NULL;
	size_t		 i;

	for (i = 0; i < config_nkeys; i++) {
		if (strcmp(config_keys[i].section, name) != 0)
			continue;
		if ((nb = config_not_built(&config_keys[i], NULL)) == NULL)
			return NULL;
		if (first == NULL)
			first = nb;
	}
	return first;
}

/* An empty [oidc] is refused too: the operator asked for it. */
static void
check_empty_sections(struct cstate *st)
{
	const char	*nb;
	size_t		 i;

	for (i = 0; i < config_nsections && !st->failed; i++)
		if (st->secline[i] != 0 &&
		    (nb = section_not_built(&config_sections[i])) != NULL)
			errat(st, st->secline[i], "[%s]: %s %s",
			    config_sections[i].name, nb, not_built_msg());
}

/* ---- environment --------------------------------------------------------- */

static const char *
env_get(struct cstate *st, const char *name)
{
	if (st->getenv_fn != NULL)
		return st->getenv_fn(name, st->arg);
	return getenv(name);
}

static void
env_warn(struct cstate *st, const char *var, const char *msg)
{
	char	 where[160];

	snprintf(where, sizeof(where), "environment: %.100s", var);
	warnat(st, where, "%s", msg);
}

static void
env_set(struct cstate *st, const struct config_section *s,
    const struct config_key *k, const char *var, const char *v)
{
	const struct config_key	*t = config_key_target(k);
	char			 msg[512], newvar[128];
	const char		*nb;
	int			*present, r;

	if ((nb = config_not_built(k, v)) != NULL) {
		enverr(st, var, "%s %s", nb, not_built_msg());
		return;
	}
	if (s->alias_of != NULL || t != k) {
		config_env_name(s->alias_of != NULL ? s->alias_of : t->section,
		    t->name, newvar, sizeof(newvar));
		snprintf(msg, sizeof(msg), "deprecated, use %s", newvar);
		env_warn(st, var, msg);
	}
	if (st->setat[kidx(t)] == CONFIG_FROM_ENV)
		r = check_only(k, NULL, v, msg, sizeof(msg));
	else
		r = config_set_string(st->cfg, k, v, msg, sizeof(msg));
	if (r == -1) {
		enverr(st, var, "%s", msg);
		return;
	}
	st->setat[kidx(t)] = st->setat[kidx(k)] = CONFIG_FROM_ENV;
	if (k->type == CK_TABLES) {
		struct config_lines	*el = &st->elines[kidx(k)];
		size_t			 i, n;

		n = *(size_t *)((char *)st->cfg + k->tables->count_off);
		free(el->v);
		el->n = 0;
		if ((el->v = calloc(n + 1, sizeof(*el->v))) != NULL)
			for (i = 0; i < n; i++)
				el->v[el->n++] = CONFIG_FROM_ENV;
	}
	if ((present = config_present(st->cfg, s)) != NULL)
		*present = 1;
	if (s->ignored && !st->secwarned[sidx(s)]) {
		st->secwarned[sidx(s)] = 1;
		env_warn(st, var, "[docker] is ignored: byd runs workers with "
		    "bubblewrap ([process])");
	}
}

/*
 * New names first, then deprecated ones ([openbao], renamed keys), which
 * apply only where the new name's variable is not set.
 */
static void
env_pass(struct cstate *st, int deprecated)
{
	const struct config_section	*s;
	const struct config_key		*k;
	const char			*sec, *v;
	char				 var[128];
	size_t				 i, j;

	for (i = 0; i < config_nsections; i++) {
		s = &config_sections[i];
		sec = s->alias_of != NULL ? s->alias_of : s->name;
		for (j = 0; j < config_nkeys && !st->failed; j++) {
			k = &config_keys[j];
			if (strcmp(k->section, sec) != 0 || deprecated !=
			    (s->alias_of != NULL || k->deprecated != NULL))
				continue;
			config_env_name(s->name, k->name, var, sizeof(var));
			if ((v = env_get(st, var)) == NULL || *v == '\0')
				continue;
			env_set(st, s, k, var, v);
		}
	}
}

/* The section of BLOCKYARD_<SECTION>_..., longest name first. */
static const struct config_section *
env_section(const char *var)
{
	const struct config_section	*s, *best = NULL;
	char				 up[CONFIG_MAX_NAME];
	size_t				 i, j, len, blen = 0;

	for (i = 0; i < config_nsections; i++) {
		s = &config_sections[i];
		len = strlen(s->name);
		for (j = 0; j <= len && j + 1 < sizeof(up); j++)
			up[j] = toupper((unsigned char)s->name[j]);
		if (strncmp(var + 10, up, len) == 0 && var[10 + len] == '_' &&
		    len > blen) {
			best = s;
			blen = len;
		}
	}
	return best;
}

static int
env_known(const struct config_section *s, const char *var)
{
	const char	*sec = s->alias_of != NULL ? s->alias_of : s->name;
	char		 name[128];
	size_t		 i;

	for (i = 0; i < config_nkeys; i++) {
		if (strcmp(config_keys[i].section, sec) != 0)
			continue;
		config_env_name(s->name, config_keys[i].name, name,
		    sizeof(name));
		if (strcmp(name, var) == 0)
			return 1;
	}
	return 0;
}

/*
 * In the real environment, also look at the variables we do not know:
 * a typo is warned about, and any BLOCKYARD_OIDC_* makes [oidc] present
 * (so a feature not built yet is refused, not silently ignored).
 */
static void
env_scan(struct cstate *st)
{
	const struct config_section	*s;
	const char			*nb;
	char				 var[128], **e;
	size_t				 n;
	int				*present;

	for (e = environ; e != NULL && *e != NULL && !st->failed; e++) {
		if (strncmp(*e, "BLOCKYARD_", 10) != 0 ||
		    (n = strcspn(*e, "=")) >= sizeof(var) || (*e)[n] != '=')
			continue;
		memcpy(var, *e, n);
		var[n] = '\0';
		if ((s = env_section(var)) == NULL || env_known(s, var) ||
		    (*e)[n + 1] == '\0')
			continue;
		if ((present = config_present(st->cfg, s)) != NULL &&
		    (nb = section_not_built(s)) != NULL) {
			enverr(st, var, "%s %s", nb, not_built_msg());
			return;
		}
		if (present != NULL)
			*present = 1;
		env_warn(st, var, "unknown variable, ignored");
	}
}

/* ---- loading ------------------------------------------------------------- */

static int
state_init(struct cstate *st)
{
	st->setat = calloc(config_nkeys, sizeof(*st->setat));
	st->hdrline = calloc(config_nkeys, sizeof(*st->hdrline));
	st->elines = calloc(config_nkeys, sizeof(*st->elines));
	st->secline = calloc(config_nsections, sizeof(*st->secline));
	st->secwarned = calloc(config_nsections, sizeof(*st->secwarned));
	st->cfg = config_new_defaults();
	if (st->setat == NULL || st->hdrline == NULL || st->elines == NULL ||
	    st->secline == NULL || st->secwarned == NULL || st->cfg == NULL) {
		errat(st, 0, "out of memory");
		return -1;
	}
	return 0;
}

static void
state_free(struct cstate *st)
{
	size_t	 i;

	for (i = 0; st->elines != NULL && i < config_nkeys; i++)
		free(st->elines[i].v);
	free(st->elines);
	free(st->setat);
	free(st->hdrline);
	free(st->secline);
	free(st->secwarned);
	free(st->pkey);
	free(st->praw);
}

static void
parse_file(struct cstate *st)
{
	int	 r;

	/* A UTF-8 byte order mark is allowed before the first line. */
	if (st->len >= 3 && memcmp(st->buf, "\xef\xbb\xbf", 3) == 0)
		st->pos = 3;
	r = ini_parse_stream(reader, st, handler, st);
	if (!st->failed && st->pending)
		errat(st, st->pline, "internal error: inih dropped a line");
	if (!st->failed && r != 0)
		errat(st, r > 0 ? st->line : 0, "cannot parse the file "
		    "(inih error %d)", r);
}

static struct config *
load_mem(const char *buf, size_t len, const char *name, const char *path,
    config_getenv_fn getenv_fn, void *arg, char *err, size_t errlen)
{
	struct cstate		 st;
	struct config_origin	 o;
	struct config		*c;

	memset(&st, 0, sizeof(st));
	st.name = name;
	st.buf = buf;
	st.len = len;
	st.err = err;
	st.errlen = errlen;
	st.getenv_fn = getenv_fn;
	st.arg = arg;
	if (errlen > 0)
		err[0] = '\0';
	if (state_init(&st) == 0) {
		free(st.cfg->path);
		if ((st.cfg->path = strdup(path)) == NULL)
			errat(&st, 0, "out of memory");
	}
	if (!st.failed && buf != NULL)
		parse_file(&st);
	if (!st.failed)
		check_empty_sections(&st);
	if (!st.failed)
		env_pass(&st, 0);
	if (!st.failed)
		env_pass(&st, 1);
	if (!st.failed && getenv_fn == NULL)
		env_scan(&st);
	if (!st.failed) {
		o.name = name;
		o.setat = st.setat;
		o.elines = st.elines;
		if (config_check(st.cfg, &o, err, errlen) == -1)
			st.failed = 1;
	}
	c = st.cfg;
	if (st.failed) {
		config_free(c);
		c = NULL;
	}
	state_free(&st);
	return c;
}

struct config *
config_load_string(const char *text, const char *name,
    config_getenv_fn getenv_fn, void *arg, char *err, size_t errlen)
{
	if (name == NULL)
		name = "(string)";
	return load_mem(text, text != NULL ? strlen(text) : 0, name, "",
	    getenv_fn, arg, err, errlen);
}

static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat	 sb;
	char		*buf = NULL;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) == -1 || S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, S_ISDIR(sb.st_mode) ?
		    "is a directory" : strerror(errno));
		goto fail;
	}
	if ((buf = malloc(CONFIG_MAX_FILE + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	*len = 0;
	while ((r = read(fd, buf + *len, CONFIG_MAX_FILE + 1 - *len)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		*len += r;
		if (*len > CONFIG_MAX_FILE) {
			snprintf(err, errlen, "%s: file is larger than %d "
			    "bytes", path, CONFIG_MAX_FILE);
			goto fail;
		}
	}
	close(fd);
	return buf;
 fail:
	free(buf);
	close(fd);
	return NULL;
}

struct config *
config_load(const char *path, config_getenv_fn getenv_fn, void *arg,
    char *err, size_t errlen)
{
	struct config	*c;
	char		*buf;
	size_t		 len;

	if (path == NULL)
		return load_mem(NULL, 0, "(defaults)", "", getenv_fn, arg,
		    err, errlen);
	if ((buf = read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	c = load_mem(buf, len, path, path, getenv_fn, arg, err, errlen);
	free(buf);
	return c;
}
