/*
 * A parser for TOML values: the part of a configuration line after
 * "key =".  It accepts strings (basic with escapes, literal, and both
 * multi-line forms), integers (decimal with '_', 0x, 0o, 0b), floats,
 * booleans, arrays and inline tables.  Dates and times are refused: no
 * key of ours takes one.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_toml.h"

struct tp {
	const char	*p;
	unsigned	 line;
	int		 depth;
	int		 failed;
	char		*err;
	size_t		 errlen;
};

struct sbuf {
	char		*b;
	size_t		 n;
	size_t		 cap;
};

static struct tval	*parse_value(struct tp *);

static void __attribute__((format(printf, 2, 3)))
tp_error(struct tp *tp, const char *fmt, ...)
{
	va_list	 ap;

	if (tp->failed)
		return;
	tp->failed = 1;
	va_start(ap, fmt);
	vsnprintf(tp->err, tp->errlen, fmt, ap);
	va_end(ap);
}

static int
sb_add(struct tp *tp, struct sbuf *sb, const char *s, size_t len)
{
	char	*nb;
	size_t	 ncap;

	if (sb->n + len + 1 > sb->cap) {
		ncap = sb->cap ? sb->cap : 32;
		while (ncap < sb->n + len + 1)
			ncap *= 2;
		if ((nb = realloc(sb->b, ncap)) == NULL) {
			tp_error(tp, "out of memory");
			return -1;
		}
		sb->b = nb;
		sb->cap = ncap;
	}
	memcpy(sb->b + sb->n, s, len);
	sb->n += len;
	sb->b[sb->n] = '\0';
	return 0;
}

static struct tval *
tv_new(struct tp *tp, enum tval_type type)
{
	struct tval	*tv;

	if ((tv = calloc(1, sizeof(*tv))) == NULL) {
		tp_error(tp, "out of memory");
		return NULL;
	}
	tv->type = type;
	tv->line = tp->line;
	return tv;
}

void
tval_free(struct tval *tv)
{
	size_t	 i;

	if (tv == NULL)
		return;
	for (i = 0; i < tv->n; i++) {
		tval_free(tv->v[i]);
		if (tv->k != NULL)
			free(tv->k[i]);
	}
	free(tv->v);
	free(tv->k);
	free(tv->s);
	free(tv);
}

/* Length of the valid UTF-8 sequence at p, 0 if it is not one. */
static size_t
utf8_seq(const unsigned char *p)
{
	uint32_t	 cp;
	size_t		 len, i;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past Unicode. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int
toml_valid_utf8(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len;

	for (; *p != '\0'; p += len)
		if ((len = utf8_seq(p)) == 0)
			return 0;
	return 1;
}

/*
 * Copy one raw character of a string into sb, checking that it is
 * allowed there (valid UTF-8, no control characters but tab).
 */
static int
copy_char(struct tp *tp, struct sbuf *sb)
{
	const unsigned char	*u = (const unsigned char *)tp->p;
	size_t			 len;

	if ((*u < 0x20 && *u != '\t') || *u == 0x7f) {
		tp_error(tp, "control character 0x%02x in a string", *u);
		return -1;
	}
	if ((len = utf8_seq(u)) == 0) {
		tp_error(tp, "invalid UTF-8 in a string");
		return -1;
	}
	if (sb_add(tp, sb, tp->p, len) == -1)
		return -1;
	tp->p += len;
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
add_codepoint(struct tp *tp, struct sbuf *sb, uint32_t cp)
{
	char	 u[4];
	size_t	 n;

	/* Our strings are C strings: a NUL would silently cut them. */
	if (cp == 0) {
		tp_error(tp, "\\u0000 is not allowed in a string");
		return -1;
	}
	if (cp < 0x80) {
		u[0] = cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = 0xc0 | (cp >> 6);
		u[1] = 0x80 | (cp & 0x3f);
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = 0xe0 | (cp >> 12);
		u[1] = 0x80 | ((cp >> 6) & 0x3f);
		u[2] = 0x80 | (cp & 0x3f);
		n = 3;
	} else {
		u[0] = 0xf0 | (cp >> 18);
		u[1] = 0x80 | ((cp >> 12) & 0x3f);
		u[2] = 0x80 | ((cp >> 6) & 0x3f);
		u[3] = 0x80 | (cp & 0x3f);
		n = 4;
	}
	return sb_add(tp, sb, u, n);
}

/* After a backslash in a basic string. */
static int
parse_escape(struct tp *tp, struct sbuf *sb)
{
	uint32_t	 cp = 0;
	int		 i, ndig, h;
	char		 c;

	switch (*tp->p) {
	case 'b': c = '\b'; break;
	case 't': c = '\t'; break;
	case 'n': c = '\n'; break;
	case 'f': c = '\f'; break;
	case 'r': c = '\r'; break;
	case '"': c = '"'; break;
	case '\\': c = '\\'; break;
	case 'u':
	case 'U':
		ndig = *tp->p == 'u' ? 4 : 8;
		for (i = 1; i <= ndig; i++) {
			if ((h = hexval((unsigned char)tp->p[i])) == -1) {
				tp_error(tp, "escape \\%c needs %d hex digits",
				    *tp->p, ndig);
				return -1;
			}
			cp = (cp << 4) | h;
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			tp_error(tp, "escape \\%.*s is not a Unicode scalar "
			    "value", ndig + 1, tp->p);
			return -1;
		}
		tp->p += ndig + 1;
		return add_codepoint(tp, sb, cp);
	default:
		if (isprint((unsigned char)*tp->p))
			tp_error(tp, "invalid escape \\%c in a string", *tp->p);
		else
			tp_error(tp, "invalid escape in a string");
		return -1;
	}
	tp->p++;
	return sb_add(tp, sb, &c, 1);
}

/* "..." on one line; tp->p is past the opening quote. */
static int
parse_basic(struct tp *tp, struct sbuf *sb)
{
	for (;;) {
		switch (*tp->p) {
		case '\0':
		case '\n':
			tp_error(tp, "unterminated string");
			return -1;
		case '"':
			tp->p++;
			return 0;
		case '\\':
			tp->p++;
			if (parse_escape(tp, sb) == -1)
				return -1;
			break;
		default:
			if (copy_char(tp, sb) == -1)
				return -1;
		}
	}
}

/* '...' on one line, no escapes. */
static int
parse_literal(struct tp *tp, struct sbuf *sb)
{
	for (;;) {
		switch (*tp->p) {
		case '\0':
		case '\n':
			tp_error(tp, "unterminated string");
			return -1;
		case '\'':
			tp->p++;
			return 0;
		default:
			if (copy_char(tp, sb) == -1)
				return -1;
		}
	}
}

/*
 * The closing delimiter of a multi-line string may be preceded by up to
 * two quotes that belong to the content: """a""""" is a"".
 */
static int
ml_close(struct tp *tp, struct sbuf *sb, char q)
{
	size_t	 n = 0;

	while (tp->p[n] == q)
		n++;
	if (n < 3)
		return 0;
	if (n > 5) {
		tp_error(tp, "too many quotes at the end of a multi-line "
		    "string");
		return -1;
	}
	if (sb_add(tp, sb, tp->p, n - 3) == -1)
		return -1;
	tp->p += n;
	return 1;
}

/* A backslash at the end of a line in """: eat the line break. */
static int
ml_line_escape(struct tp *tp)
{
	const char	*q = tp->p;

	while (*q == ' ' || *q == '\t')
		q++;
	if (*q != '\n')
		return 0;
	tp->p = q;
	while (*tp->p == ' ' || *tp->p == '\t' || *tp->p == '\n') {
		if (*tp->p == '\n')
			tp->line++;
		tp->p++;
	}
	return 1;
}

/* """...""" or '''...''', tp->p past the opening delimiter. */
static int
parse_ml(struct tp *tp, struct sbuf *sb, char q)
{
	int	 r;

	if (*tp->p == '\n') {
		tp->line++;
		tp->p++;
	}
	for (;;) {
		if (*tp->p == '\0') {
			tp_error(tp, "unterminated multi-line string");
			return -1;
		}
		if (*tp->p == q) {
			if ((r = ml_close(tp, sb, q)) != 0)
				return r == 1 ? 0 : -1;
			if (sb_add(tp, sb, tp->p++, 1) == -1)
				return -1;
			continue;
		}
		if (*tp->p == '\n') {
			tp->line++;
			if (sb_add(tp, sb, tp->p++, 1) == -1)
				return -1;
			continue;
		}
		if (q == '"' && *tp->p == '\\') {
			tp->p++;
			if (ml_line_escape(tp))
				continue;
			if (parse_escape(tp, sb) == -1)
				return -1;
			continue;
		}
		if (copy_char(tp, sb) == -1)
			return -1;
	}
}

static struct tval *
parse_string(struct tp *tp)
{
	struct sbuf	 sb = { NULL, 0, 0 };
	struct tval	*tv;
	char		 q = *tp->p;
	int		 r;

	if ((tv = tv_new(tp, TV_STRING)) == NULL)
		return NULL;
	if (sb_add(tp, &sb, "", 0) == -1)
		goto fail;
	if (tp->p[1] == q && tp->p[2] == q) {
		tp->p += 3;
		r = parse_ml(tp, &sb, q);
	} else {
		tp->p++;
		r = q == '"' ? parse_basic(tp, &sb) : parse_literal(tp, &sb);
	}
	if (r == -1)
		goto fail;
	tv->s = sb.b;
	return tv;
 fail:
	free(sb.b);
	tval_free(tv);
	return NULL;
}

char *
toml_parse_key(const char **p, char *err, size_t errlen)
{
	struct tp	 tp = { *p, 0, 0, 0, err, errlen };
	struct sbuf	 sb = { NULL, 0, 0 };
	const char	*s = *p;
	int		 r;

	if (sb_add(&tp, &sb, "", 0) == -1)
		return NULL;
	if (*s == '"' || *s == '\'') {
		tp.p++;
		r = *s == '"' ? parse_basic(&tp, &sb) : parse_literal(&tp, &sb);
		if (r == -1) {
			free(sb.b);
			return NULL;
		}
		*p = tp.p;
		return sb.b;
	}
	while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
		s++;
	if (s == *p) {
		snprintf(err, errlen, "expected a key");
		free(sb.b);
		return NULL;
	}
	if (sb_add(&tp, &sb, *p, s - *p) == -1) {
		free(sb.b);
		return NULL;
	}
	*p = s;
	return sb.b;
}

static void
skip_ws(struct tp *tp)
{
	while (*tp->p == ' ' || *tp->p == '\t')
		tp->p++;
}

static void
skip_comment(struct tp *tp)
{
	if (*tp->p == '#')
		while (*tp->p != '\0' && *tp->p != '\n')
			tp->p++;
}

/* Blanks, line breaks and comments, as allowed inside [ ] and { }. */
static void
skip_space(struct tp *tp)
{
	for (;;) {
		skip_ws(tp);
		skip_comment(tp);
		if (*tp->p != '\n')
			return;
		tp->line++;
		tp->p++;
	}
}

static int
tv_push(struct tp *tp, struct tval *tv, char *key, struct tval *elem)
{
	struct tval	**nv;
	char		**nk;

	if ((nv = reallocarray(tv->v, tv->n + 1, sizeof(*nv))) == NULL)
		goto nomem;
	tv->v = nv;
	if (tv->type == TV_TABLE) {
		if ((nk = reallocarray(tv->k, tv->n + 1, sizeof(*nk))) == NULL)
			goto nomem;
		tv->k = nk;
		tv->k[tv->n] = key;
	}
	tv->v[tv->n++] = elem;
	return 0;
 nomem:
	tp_error(tp, "out of memory");
	return -1;
}

static struct tval *
parse_array(struct tp *tp)
{
	struct tval	*tv, *elem;

	if ((tv = tv_new(tp, TV_ARRAY)) == NULL)
		return NULL;
	tp->p++;
	for (;;) {
		skip_space(tp);
		if (*tp->p == ']')
			break;
		if ((elem = parse_value(tp)) == NULL)
			goto fail;
		if (tv_push(tp, tv, NULL, elem) == -1) {
			tval_free(elem);
			goto fail;
		}
		skip_space(tp);
		if (*tp->p == ',') {
			tp->p++;
			continue;
		}
		if (*tp->p == ']')
			break;
		if (*tp->p == '\0')
			tp_error(tp, "unterminated array");
		else
			tp_error(tp, "expected ',' or ']' in an array");
		goto fail;
	}
	tp->p++;
	return tv;
 fail:
	tval_free(tv);
	return NULL;
}

static int
table_has(const struct tval *tv, const char *key)
{
	size_t	 i;

	for (i = 0; i < tv->n; i++)
		if (strcmp(tv->k[i], key) == 0)
			return 1;
	return 0;
}

/* One "key = value" of an inline table. */
static int
parse_table_entry(struct tp *tp, struct tval *tv)
{
	struct tval	*val;
	char		*key;

	if ((key = toml_parse_key(&tp->p, tp->err, tp->errlen)) == NULL) {
		tp->failed = 1;
		return -1;
	}
	skip_ws(tp);
	if (*tp->p == '.') {
		tp_error(tp, "dotted keys are not supported");
		goto fail;
	}
	if (*tp->p != '=') {
		tp_error(tp, "expected '=' after a key in an inline table");
		goto fail;
	}
	tp->p++;
	skip_ws(tp);
	if (table_has(tv, key)) {
		tp_error(tp, "duplicate key \"%.64s\" in an inline table", key);
		goto fail;
	}
	if ((val = parse_value(tp)) == NULL)
		goto fail;
	if (tv_push(tp, tv, key, val) == -1) {
		tval_free(val);
		goto fail;
	}
	return 0;
 fail:
	free(key);
	return -1;
}

/*
 * { k = v, ... }.  Line breaks, comments and a trailing comma are
 * accepted, as TOML 1.1 does.
 */
static struct tval *
parse_table(struct tp *tp)
{
	struct tval	*tv;

	if ((tv = tv_new(tp, TV_TABLE)) == NULL)
		return NULL;
	tp->p++;
	for (;;) {
		skip_space(tp);
		if (*tp->p == '}')
			break;
		if (parse_table_entry(tp, tv) == -1)
			goto fail;
		skip_space(tp);
		if (*tp->p == ',') {
			tp->p++;
			continue;
		}
		if (*tp->p == '}')
			break;
		if (*tp->p == '\0')
			tp_error(tp, "unterminated inline table");
		else
			tp_error(tp, "expected ',' or '}' in an inline table");
		goto fail;
	}
	tp->p++;
	return tv;
 fail:
	tval_free(tv);
	return NULL;
}

typedef int (*digit_fn)(int);

static int
is_dec(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(int c)
{
	return hexval(c) != -1;
}

static int
is_oct(int c)
{
	return c >= '0' && c <= '7';
}

static int
is_bin(int c)
{
	return c == '0' || c == '1';
}

/*
 * Digits with single underscores between them, copied without the
 * underscores to out (room for outlen).  Returns the number of digits,
 * -1 if an underscore is misplaced or out is too small.
 */
static int
scan_digits(const char **sp, digit_fn isdig, char *out, size_t outlen,
    size_t *on)
{
	const char	*s = *sp;
	int		 n = 0;

	while (isdig((unsigned char)*s) || *s == '_') {
		if (*s == '_') {
			if (n == 0 || !isdig((unsigned char)s[1]))
				return -1;
			s++;
			continue;
		}
		if (*on + 1 >= outlen)
			return -1;
		out[(*on)++] = *s++;
		n++;
	}
	out[*on] = '\0';
	*sp = s;
	return n;
}

/* A whole token as an integer; 1 if it is one, 0 if not, -1 on error. */
static int
parse_int(struct tp *tp, const char *tok, int64_t *out)
{
	char		 dig[128];
	const char	*s = tok;
	digit_fn	 isdig = is_dec;
	uint64_t	 v = 0, lim;
	size_t		 n = 0, i;
	int		 neg = 0, base = 10, nd;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
		base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
		isdig = base == 16 ? is_hex : base == 8 ? is_oct : is_bin;
		s += 2;
	} else if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if ((nd = scan_digits(&s, isdig, dig, sizeof(dig), &n)) <= 0 ||
	    *s != '\0')
		return 0;
	if (base == 10 && nd > 1 && dig[0] == '0') {
		tp_error(tp, "leading zeros are not allowed in \"%.40s\"", tok);
		return -1;
	}
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (i = 0; i < n; i++) {
		if (v > (lim - hexval(dig[i])) / base) {
			tp_error(tp, "integer %.40s is out of range", tok);
			return -1;
		}
		v = v * base + hexval(dig[i]);
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

/* A whole token as a float; 1 if it is one, 0 if not, -1 on error. */
static int
parse_float(struct tp *tp, const char *tok, double *out)
{
	char		 buf[128], *end;
	const char	*s = tok;
	size_t		 n = 0;
	int		 nd, frac = 0;

	if (*s == '+' || *s == '-')
		buf[n++] = *s++;
	if ((nd = scan_digits(&s, is_dec, buf, sizeof(buf), &n)) <= 0)
		return 0;
	if (nd > 1 && buf[n - nd] == '0')
		return 0;
	if (*s == '.') {
		buf[n++] = *s++;
		if (scan_digits(&s, is_dec, buf, sizeof(buf), &n) <= 0)
			return 0;
		frac = 1;
	}
	if (*s == 'e' || *s == 'E') {
		buf[n++] = *s++;
		if (*s == '+' || *s == '-')
			buf[n++] = *s++;
		if (scan_digits(&s, is_dec, buf, sizeof(buf), &n) <= 0)
			return 0;
		frac = 1;
	}
	if (!frac || *s != '\0')
		return 0;
	buf[n] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	if (*end != '\0')
		return 0;
	if (errno == ERANGE && (*out > 1.0 || *out < -1.0)) {
		tp_error(tp, "float %.40s is out of range", tok);
		return -1;
	}
	return 1;
}

/* 1979-05-27 or 07:32:00: TOML dates and times, which we refuse. */
static int
looks_like_date(const char *tok)
{
	size_t	 n;

	n = strspn(tok, "0123456789");
	return (n == 4 && tok[4] == '-') || (n == 2 && tok[2] == ':');
}

static int
special_float(const char *tok, double *f)
{
	const char	*s = tok;

	if (*s == '+' || *s == '-')
		s++;
	if (strcmp(s, "inf") == 0)
		*f = *tok == '-' ? -__builtin_inf() : __builtin_inf();
	else if (strcmp(s, "nan") == 0)
		*f = __builtin_nan("");
	else
		return 0;
	return 1;
}

/* Booleans and numbers: a bare token. */
static struct tval *
parse_scalar(struct tp *tp)
{
	struct tval	*tv;
	char		 tok[128];
	size_t		 n = 0;
	int		 r;

	while (*tp->p != '\0' && (isalnum((unsigned char)*tp->p) ||
	    strchr("_+-.:", *tp->p) != NULL)) {
		if (n + 1 >= sizeof(tok)) {
			tp_error(tp, "value is too long");
			return NULL;
		}
		tok[n++] = *tp->p++;
	}
	tok[n] = '\0';
	if (n == 0) {
		if (*tp->p == '\0' || *tp->p == '#' || *tp->p == '\n')
			tp_error(tp, "missing value");
		else if (isprint((unsigned char)*tp->p))
			tp_error(tp, "unexpected '%c' where a value should be",
			    *tp->p);
		else
			tp_error(tp, "unexpected character where a value "
			    "should be");
		return NULL;
	}
	if ((tv = tv_new(tp, TV_BOOLEAN)) == NULL)
		return NULL;
	if (strcmp(tok, "true") == 0 || strcmp(tok, "false") == 0) {
		tv->b = tok[0] == 't';
		return tv;
	}
	tv->type = TV_INTEGER;
	if ((r = parse_int(tp, tok, &tv->i)) == 1)
		return tv;
	tv->type = TV_FLOAT;
	if (r == 0 && ((r = parse_float(tp, tok, &tv->f)) == 1 ||
	    (r == 0 && special_float(tok, &tv->f))))
		return tv;
	if (r == 0 && looks_like_date(tok))
		tp_error(tp, "dates and times are not supported: %.40s", tok);
	else if (r == 0)
		tp_error(tp, "invalid value %.40s (strings must be quoted)",
		    tok);
	tval_free(tv);
	return NULL;
}

static struct tval *
parse_value(struct tp *tp)
{
	struct tval	*tv;

	if (++tp->depth > TOML_MAX_DEPTH) {
		tp_error(tp, "values nested too deeply");
		return NULL;
	}
	switch (*tp->p) {
	case '"':
	case '\'':
		tv = parse_string(tp);
		break;
	case '[':
		tv = parse_array(tp);
		break;
	case '{':
		tv = parse_table(tp);
		break;
	default:
		tv = parse_scalar(tp);
	}
	tp->depth--;
	return tv;
}

struct tval *
tval_parse(const char *text, unsigned *errline, char *err, size_t errlen)
{
	struct tp	 tp = { text, 0, 0, 0, err, errlen };
	struct tval	*tv;

	skip_ws(&tp);
	if ((tv = parse_value(&tp)) == NULL)
		goto fail;
	skip_ws(&tp);
	skip_comment(&tp);
	if (*tp.p != '\0') {
		tp_error(&tp, "unexpected text after the value");
		tval_free(tv);
		goto fail;
	}
	return tv;
 fail:
	if (!tp.failed)
		tp_error(&tp, "invalid value");
	*errline = tp.line;
	return NULL;
}

/*
 * At most max bytes of s for an error message, cut on a character
 * boundary, control characters shown as '?'.  out has room for max + 4.
 */
static void
quote_excerpt(const char *s, char *out, size_t max)
{
	size_t	 n;

	for (n = 0; s[n] != '\0' && n < max; n++)
		out[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ?
		    '?' : s[n];
	if (s[n] != '\0') {
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

void
tval_describe(const struct tval *tv, int secret, char *buf, size_t len)
{
	char	 ex[64];

	switch (tv->type) {
	case TV_STRING:
		if (secret) {
			snprintf(buf, len, "a string");
			break;
		}
		quote_excerpt(tv->s, ex, 40);
		snprintf(buf, len, "string \"%s\"", ex);
		break;
	case TV_INTEGER:
		if (secret)
			snprintf(buf, len, "an integer");
		else
			snprintf(buf, len, "integer %" PRId64, tv->i);
		break;
	case TV_FLOAT:
		if (secret)
			snprintf(buf, len, "a float");
		else
			snprintf(buf, len, "float %g", tv->f);
		break;
	case TV_BOOLEAN:
		snprintf(buf, len, "boolean %s", tv->b ? "true" : "false");
		break;
	case TV_ARRAY:
		snprintf(buf, len, "an array");
		break;
	case TV_TABLE:
		snprintf(buf, len, "an inline table");
		break;
	}
}
