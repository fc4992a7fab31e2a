/*
 * The table that describes every configuration key, shared by the
 * parser (config.c) and the JSON transport (config_json.c).  Defaults,
 * TOML parsing, environment overrides and JSON are loops over it; add a
 * key here and in struct config, nowhere else.
 */

#ifndef BY_CONFIG_KEYS_H
#define BY_CONFIG_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

enum ck_type {
	CK_STRING,		/* char * */
	CK_PATH,		/* char *, absolute */
	CK_BOOL,		/* int */
	CK_INT,			/* int */
	CK_FLOAT,		/* double */
	CK_DURATION,		/* int64_t milliseconds */
	CK_SIZE,		/* uint64_t bytes */
	CK_LIST,		/* struct strlist */
	CK_MAP,			/* struct strmap */
	CK_TABLES		/* array of tables of two strings */
};

#define CK_SECRET	0x01	/* never shown in errors or redacted JSON */
#define CK_NONEMPTY	0x02	/* "" is an error instead of "unset" */
#define CK_POSITIVE	0x04	/* numbers and durations must be > 0 */
#define CK_NONNEG	0x08	/* numbers must be >= 0 */

/* An array of tables whose elements are two strings (name/path, id/label). */
struct ck_tables {
	size_t		 elemsize;
	size_t		 count_off;	/* size_t count in struct config */
	const char	*field[2];
	size_t		 field_off[2];	/* char * in the element */
};

struct config_key {
	const char	*section;
	const char	*name;
	enum ck_type	 type;
	size_t		 off;		/* of the field in struct config */
	const char	*def;		/* default as text, NULL: unset/zero */
	unsigned	 flags;
	const char	*notbuilt;	/* feature name while it is not built */
	const char	*deprecated;	/* old name of this "section.key" */
	const struct ck_tables *tables;
};

struct config_section {
	const char	*name;
	ssize_t		 present;	/* offset of the present flag, or -1 */
	const char	*alias_of;	/* deprecated name of that section */
	int		 ignored;	/* parsed, ignored with a warning */
};

extern const struct config_key		config_keys[];
extern const size_t			config_nkeys;
extern const struct config_section	config_sections[];
extern const size_t			config_nsections;

/* Tests set this to reach the validation of features not built yet. */
extern int				config_unbuilt_ok;

const struct config_section *config_section_find(const char *name);
/* The key of a section; an alias section resolves to its target. */
const struct config_key	*config_key_find(const char *section,
			    const char *name);
/* The key a deprecated key stands for. */
const struct config_key	*config_key_target(const struct config_key *);
/* The feature that keeps this key (with this value) from working. */
const char		*config_not_built(const struct config_key *,
			    const char *value);
void			*config_field(const struct config *,
			    const struct config_key *);
int			*config_present(const struct config *,
			    const struct config_section *);
void			 config_field_clear(struct config *,
			    const struct config_key *);
/* A config with every default set, NULL on allocation failure. */
struct config		*config_new_defaults(void);

int			 config_strlist_add(struct strlist *, const char *);
void			 config_strlist_free(struct strlist *);
void			 config_strmap_free(struct strmap *);
int			 config_strmap_add(struct strmap *, const char *,
			    const char *);
/* Append a zeroed element to an array of tables, NULL on failure. */
void			*config_tables_add(struct config *,
			    const struct config_key *);
/* Nonzero if field is one of the two of an array of tables' elements. */
int			 config_tables_field(const struct config_key *,
			    const char *field);
int			 config_tables_set(const struct config_key *,
			    void *elem, const char *field, const char *value);

/*
 * Set a key from a TOML value or from text (environment, defaults).
 * On error returns -1 with the reason, without location, in msg.
 */
struct tval;
int			 config_set_tval(struct config *,
			    const struct config_key *, const struct tval *,
			    char *msg, size_t msglen);
int			 config_set_string(struct config *,
			    const struct config_key *, const char *,
			    char *msg, size_t msglen);

/* Where each value came from, for the messages of config_check. */
#define CONFIG_FROM_ENV	(-1L)

struct config_lines {
	long		*v;
	size_t		 n;
};

struct config_origin {
	const char	*name;		/* file name for messages */
	const long	*setat;		/* per key: 0 default, line, or ENV */
	const struct config_lines *elines; /* per key: table element lines */
};

/* The environment variable of a key: BLOCKYARD_<SECTION>_<KEY>. */
void			 config_env_name(const char *section,
			    const char *key, char *buf, size_t len);

/* Cross-field validation.  -1 with the first problem in err. */
int			 config_check(const struct config *,
			    const struct config_origin *, char *err,
			    size_t errlen);

#endif /* BY_CONFIG_KEYS_H */
