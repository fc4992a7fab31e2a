/*
 * The TOML value parser behind config.c.  inih splits the file into
 * sections and "key = value" lines; this parses the value text of one
 * key (which may span several physical lines: arrays, inline tables and
 * multi-line strings) into a small tree.
 */

#ifndef BY_CONFIG_TOML_H
#define BY_CONFIG_TOML_H

#include <stddef.h>
#include <stdint.h>

enum tval_type {
	TV_STRING,
	TV_INTEGER,
	TV_FLOAT,
	TV_BOOLEAN,
	TV_ARRAY,
	TV_TABLE
};

struct tval {
	enum tval_type	  type;
	unsigned	  line;		/* lines after the value's first line */
	char		 *s;		/* TV_STRING */
	int64_t		  i;		/* TV_INTEGER */
	double		  f;		/* TV_FLOAT */
	int		  b;		/* TV_BOOLEAN */
	struct tval	**v;		/* TV_ARRAY elements, TV_TABLE values */
	char		**k;		/* TV_TABLE keys */
	size_t		  n;
};

#define TOML_MAX_DEPTH	32

/*
 * Parse the text after "key =" up to the end of the value's last line,
 * including an optional trailing comment.  On error returns NULL, writes
 * the reason to err and sets *errline to the line (counted from 0 at the
 * first line of text) where the problem is.
 */
struct tval	*tval_parse(const char *text, unsigned *errline, char *err,
		    size_t errlen);
void		 tval_free(struct tval *);

/*
 * Parse a key at *p: bare (A-Za-z0-9_-) or quoted ("..." or '...').
 * Advances *p past it.  Returns the key (to be freed) or NULL with err.
 */
char		*toml_parse_key(const char **p, char *err, size_t errlen);

/* "integer 30", "string \"abc\"", "array", ...; values hidden if secret. */
void		 tval_describe(const struct tval *, int secret, char *buf,
		    size_t len);

/* Nonzero if s is valid UTF-8 (JSON, and so the helpers, need it). */
int		 toml_valid_utf8(const char *s);

#endif /* BY_CONFIG_TOML_H */
