/*
 * bystate: the one process that talks to the database.
 *
 * The database layer is split in four:
 *
 *	state_db.c	the driver-neutral API (struct db, db_*) and the
 *			process's one open database (state_*)
 *	state_sqlite.c	the SQLite driver
 *	state_pg.c	the PostgreSQL driver (libpq)
 *	state_migrate.c	numbered schema migrations, one SQL text per
 *			dialect, in lockstep
 *
 * Each driver is one struct db_ops; nothing above the driver knows which
 * engine runs.  To keep the query text shared between the dialects,
 * placeholders are written $1, $2, ... everywhere (PostgreSQL's syntax;
 * the SQLite driver binds them by name), and both drivers insist that
 * every value is used.  A failed statement inside a transaction undoes
 * that statement only, in both.
 *
 * None of the db_* and state_* functions look at proc_conf: the caller
 * passes driver and target, so the regress tests drive them directly.
 */

#ifndef BY_BYSTATE_H
#define BY_BYSTATE_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "msg.h"
#include "proc.h"
#include "uuid.h"

enum db_driver {
	DB_SQLITE,
	DB_POSTGRES,
	DB_NDRIVERS
};

/* Column and parameter types, the common ground of both engines. */
enum db_type {
	DB_T_NULL,
	DB_T_INT,
	DB_T_REAL,
	DB_T_TEXT,
	DB_T_BLOB
};

/* A query parameter; $n binds params[n - 1].  Memory stays the caller's. */
struct db_param {
	enum db_type	 type;
	int64_t		 i;
	double		 r;
	const void	*p;		/* TEXT (NUL-terminated) or BLOB */
	size_t		 len;		/* BLOB only */
};

#define DB_PNULL()	((struct db_param){ .type = DB_T_NULL })
#define DB_PINT(v)	((struct db_param){ .type = DB_T_INT, .i = (v) })
#define DB_PREAL(v)	((struct db_param){ .type = DB_T_REAL, .r = (v) })
#define DB_PTEXT(s)	((struct db_param){ .type = (s) != NULL ?	\
			    DB_T_TEXT : DB_T_NULL, .p = (s) })
#define DB_PBLOB(b, n)	((struct db_param){ .type = DB_T_BLOB, .p = (b), \
			    .len = (n) })

/* What went wrong, as far as a caller has to tell cases apart. */
enum db_err {
	DB_E_NONE,
	DB_E_UNIQUE,		/* unique or primary key violated: 409 */
	DB_E_FOREIGN,		/* foreign key violated */
	DB_E_CONSTRAINT,	/* CHECK, NOT NULL */
	DB_E_BUSY,		/* locked past the busy timeout */
	DB_E_OTHER
};

struct db;

/* One result row, valid only during the row callback. */
struct db_row {
	struct db	*db;
	void		*res;		/* driver's statement or result */
	int		 row;		/* row number, for drivers that need it */
};

/* Called once per row; a non-zero return stops the query early. */
typedef int	(*db_row_fn)(const struct db_row *, void *arg);

/*
 * A driver.  Functions return 0 (query: number of rows seen) or -1 with
 * db->err and db->errcode set.  Column accessors take a 0-based column.
 */
struct db_ops {
	const char	*name;
	int		(*open)(struct db *, const char *target);
	void		(*close)(struct db *);
	/* several statements, no parameters (migrations, BEGIN, COMMIT) */
	int		(*exec_script)(struct db *, const char *);
	/* one statement; fn may be NULL; sets db->changes */
	int		(*query)(struct db *, const char *,
			    const struct db_param *, size_t, db_row_fn, void *);
	/* start a transaction that will write (takes the write lock early) */
	int		(*begin)(struct db *);
	/* end the open transaction, undone; NULL: exec_script("ROLLBACK") */
	int		(*rollback)(struct db *);
	/* cheap round trip that touches the database itself */
	int		(*ping)(struct db *);
	/* the target as messages may show it (no password); NULL: as is */
	void		(*redact)(const char *target, char *buf, size_t len);

	int		(*col_count)(const struct db_row *);
	enum db_type	(*col_type)(const struct db_row *, int);
	int64_t		(*col_int)(const struct db_row *, int);
	double		(*col_real)(const struct db_row *, int);
	const char	*(*col_text)(const struct db_row *, int);
	const void	*(*col_blob)(const struct db_row *, int, size_t *);
};

struct db {
	enum db_driver		 driver;
	const struct db_ops	*ops;
	char			*target;	/* path or URL, redacted */
	union {
		struct sqlite3	*sqlite;
		struct pg_conn	*pg;		/* libpq's PGconn */
	} h;
	void			*priv;		/* the driver's own state */
	int			 in_tx;
	int64_t			 changes;	/* rows changed by the last query */
	enum db_err		 errcode;
	char			 err[512];
};

/* state_db.c: the driver-neutral API */
int		 db_driver_parse(const char *, enum db_driver *);
const char	*db_driver_name(enum db_driver);
/* target with any password hidden, for messages */
void		 db_redact(enum db_driver, const char *target, char *buf,
		    size_t len);
/* Returns NULL with a message naming the (redacted) target in err. */
struct db	*db_open(enum db_driver, const char *target, char *err,
		    size_t errlen);
void		 db_close(struct db *);
const char	*db_error(const struct db *);
enum db_err	 db_errcode(const struct db *);
int		 db_exec_script(struct db *, const char *);
/* One statement.  Returns the number of rows changed, or -1. */
int64_t		 db_exec(struct db *, const char *, const struct db_param *,
		    size_t);
/* Returns the number of rows passed to fn (fn may stop early), or -1. */
int		 db_query(struct db *, const char *, const struct db_param *,
		    size_t, db_row_fn, void *);
/* First column of the first row: 1 got it, 0 no row (or NULL), -1 error. */
int		 db_query_int(struct db *, const char *,
		    const struct db_param *, size_t, int64_t *);
int		 db_begin(struct db *);
int		 db_commit(struct db *);
void		 db_rollback(struct db *);
/* 0 when the database answers, -1 when not. */
int		 db_ping(struct db *);
/* Prepare the files as root before the privilege drop (mkdir, chown). */
int		 db_prepare(enum db_driver, const char *target, uid_t, gid_t,
		    int chown_files, char *err, size_t errlen);
/* Current UTC time as RFC 3339 with second precision, our stored format. */
void		 db_timestamp(char *, size_t);
/* The same, offset seconds from now. */
void		 db_timestamp_offset(char *, size_t, int64_t offset);

int		 db_row_ncols(const struct db_row *);
enum db_type	 db_row_type(const struct db_row *, int);
int		 db_row_isnull(const struct db_row *, int);
int64_t		 db_row_int(const struct db_row *, int);
double		 db_row_real(const struct db_row *, int);
/* NULL for SQL NULL */
const char	*db_row_text(const struct db_row *, int);
const void	*db_row_blob(const struct db_row *, int, size_t *);

/* state_db.c: the database of this bystate process */
int		 state_open(const char *driver, const char *target,
		    char *err, size_t errlen);
void		 state_close(void);
struct db	*state_handle(void);
/* Schema version of the open database; 0 when none is open. */
int		 state_schema_version(void);

/* state_sqlite.c */
extern const struct db_ops db_sqlite_ops;
int		 sqlite_prepare(const char *path, uid_t, gid_t,
		    int chown_files, char *err, size_t errlen);

/* state_pg.c */
extern const struct db_ops db_pg_ops;
/* A URL or key=value string with any password shown as "xxxxx". */
void		 pg_redact(const char *target, char *buf, size_t len);

/* state_migrate.c */
struct migration {
	int		 version;
	const char	*name;			/* "001_initial" */
	const char	*sql[DB_NDRIVERS];	/* one text per dialect */
};
extern const struct migration	migrations[];
extern const size_t		nmigrations;
/* The newest schema version this binary knows. */
int		 migrate_latest(void);
/* Version recorded in the database (0 for a fresh one), or -1. */
int		 migrate_current(struct db *);
/*
 * Bring the schema up to migrate_latest().  Sets *version to the result
 * and *applied to how many migrations ran.  A database newer than this
 * binary is refused.  0 or -1 (db_error() says why).
 */
int		 migrate_up(struct db *, int *version, int *applied);

/* state_msg.c: dispatch tables and handlers */
extern const struct msg_handler	state_byd_handlers[];
extern const struct msg_handler	state_proxy_handlers[];
extern const struct msg_handler	state_spawn_handlers[];
void		 state_ping(struct msgchan *, struct msg *);

/*
 * The control plane (state_api.c).  An op reads ctx->args, checks
 * ctx->caller and ends with api_ok or api_fail.
 */
struct caller {
	int		 authenticated;
	int		 operator;	/* byctl on the admin socket */
	char		 sub[256];
	char		 role[16];	/* admin, publisher, viewer */
	char		 token_id[64];	/* PAT used, if any */
};

struct api_ctx {
	const char	*op;
	json_t		*args;		/* object or NULL */
	int		 from_ctl;
	int		 bearer;	/* an Authorization header was sent */
	char		 bearer_sha256[65];
	char		 remote[64];
	struct caller	 caller;

	int		 status;
	json_t		*data;
	json_t		*headers;
	char		 error[32];
	char		 message[512];
};

enum api_auth {
	API_PUBLIC,		/* no caller needed (the op checks itself) */
	API_USER,		/* an authenticated caller */
	API_CTL,		/* byctl through byd only */
	/*
	 * byproxy on its own behalf ("auth": null): proxy resolution and
	 * session rows.  Refused from byd and whenever a bearer came
	 * along.  byproxy names these ops with fixed strings, never from
	 * a request, so a client cannot reach them.
	 */
	API_PROXY,
	/*
	 * byspawn reporting what it did (a dependency build ended).  Only
	 * from byspawn's channel, and byspawn reaches nothing else.
	 */
	API_SPAWN,
};

enum api_from {
	API_FROM_PROXY,
	API_FROM_CTL,
	API_FROM_SPAWN,
};

struct api_op {
	const char	*name;
	enum api_auth	 auth;
	void		(*fn)(struct api_ctx *);
};

json_t		*api_call(json_t *req, int from_ctl);
json_t		*api_call_from(json_t *req, enum api_from);
void		 api_ok(struct api_ctx *, int status, json_t *data);
void		 api_fail(struct api_ctx *, int status, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void		 api_internal(struct api_ctx *, const char *what);
void		 api_header(struct api_ctx *, const char *, const char *);
void		 state_call_proxy(struct msgchan *, struct msg *);
void		 state_call_ctl(struct msgchan *, struct msg *);
void		 state_call_spawn(struct msgchan *, struct msg *);

/* state_auth.c */
int		 hex_decode(const char *, unsigned char *, size_t);
void		 auth_pat(struct api_ctx *);

/* state_audit.c: [audit] path; detail is stolen (may be NULL) */
int		 audit_prepare(const char *path, uid_t, gid_t, int root,
		    char *err, size_t errlen);
int		 audit_open(const char *path, char *err, size_t errlen);
void		 audit_close(void);
int		 audit_enabled(void);
void		 audit_log(struct api_ctx *, const char *action,
		    const char *target, json_t *detail);

/* op tables, one per resource file */
extern const struct api_op api_app_ops[];	/* state_apps.c */
extern const struct api_op api_access_ops[];	/* state_access.c */
extern const struct api_op api_tag_ops[];	/* state_tags.c */
extern const struct api_op api_user_ops[];	/* state_users.c */
extern const struct api_op api_token_ops[];	/* state_tokens.c */
extern const struct api_op api_bundle_ops[];	/* state_bundles.c */
extern const struct api_op api_worker_ops[];	/* state_workers.c */
extern const struct api_op api_session_ops[];	/* state_sessions.c */

/* ---- apps, access, tags (state_apps.c, state_access.c, state_tags.c) ---- */


/*
 * A caller's relation to one app, weakest first, so that a capability
 * is a comparison: view is > REL_NONE, deploy/update/enable/tags are
 * >= REL_COLLABORATOR, ACL/rename/access_type/delete are >= REL_OWNER.
 */
enum app_rel {
	REL_NONE,
	REL_ANONYMOUS,
	REL_VIEWER,
	REL_COLLABORATOR,
	REL_OWNER,
	REL_ADMIN,
};
#define REL_CAN_VIEW(r)		((r) > REL_NONE)
#define REL_CAN_DEPLOY(r)	((r) >= REL_COLLABORATOR)
#define REL_CAN_MANAGE(r)	((r) >= REL_OWNER)

struct app_ref {
	char		 id[UUID_LEN];
	char		 name[64];
	char		 owner[256];
	char		 access_type[16];
	int		 deleted;
	enum app_rel	 rel;
};

const char	*app_rel_name(enum app_rel);
/*
 * Resolve {id} of a per-app endpoint among live apps (UUID, then name,
 * then alias of either phase) and the caller's relation to it.  Returns
 * 1 when found and visible; 0 after answering 404 "app not found" (not
 * there, or no relation: existence is hidden); -1 after answering 500.
 */
int		 app_resolve(struct api_ctx *, const char *ref,
		    struct app_ref *);
/* The app object ("v2 shape") of an app by id, NULL on error/absence. */
json_t		*app_object(struct db *, const char *id);
/* Sorted tag names of an app as a JSON array, NULL on error. */
json_t		*app_tag_names(struct db *, const char *id);
/* Name rules (app and tag slugs): NULL when fine, else what is wrong. */
const char	*app_name_problem(const char *);
/* state_workers.c: a worker's or build's limits, the active bundle */
int		 app_limits(const char *app_id, uint64_t *mem, double *cpu,
		    char *bundle, size_t len);
/* state_bundles.c: at start-up, builds that died with the last run */
void		 bundles_fail_unfinished(struct db *);
/* "512m", "1g", "1024": bytes.  0 or -1 when malformed. */
int		 memory_limit_parse(const char *, uint64_t *);
/* Five cron fields ("*\/5 * * * 1-5"): 0 or -1. */
int		 cron_valid(const char *);
/* The argument of an op as a string, or NULL. */
const char	*op_arg(struct api_ctx *, const char *);
/*
 * A string field of a body: absent or null gives def; another type
 * answers 400 "<bodymsg>: <key> must be a string" and returns -1.
 */
int		 op_str(struct api_ctx *, json_t *body, const char *key,
		    const char *def, const char *bodymsg, const char **out);
/* The JSON body of an op, or NULL after answering 400 with message. */
json_t		*op_body(struct api_ctx *, const char *message);
/* Start the alias and soft-delete sweep (idempotent, runs it once now). */
void		 app_sweep_start(void);
void		 app_sweep(void);

/* state_sessions.c: end the rows a previous run left active; n or -1 */
int64_t		 sessions_end_stale(struct db *);

/* ---- users, tokens, bootstrap (state_users.c, state_tokens.c) ---- */

/* The revoked row that records the bootstrap exchange for good. */
#define TOKEN_SENTINEL_ID	"bootstrap-redeemed"

/* state_users.c */
int		 user_valid_role(const char *);
int		 user_valid_sub(const char *);
/* 1 created, 0 existed (left as it is), -1 database error */
int		 user_ensure(struct db *, const char *sub, const char *role,
		    const char *email, const char *name);
/* *out: the user object or NULL when there is none; -1 on error */
int		 user_get(struct db *, const char *sub, json_t **out);

/* state_tokens.c */
void		 token_base62(const unsigned char *, size_t, char *, size_t);
/* "90d", "24h", "30m" from now as a stored time; -1 when malformed */
int		 token_expiry(const char *, char *, size_t);
/* RFC 3339 time as a stored time; -1 malformed, -2 not in the future */
int		 token_expiry_at(const char *, char *, size_t);
/* Insert a new token; {"id","name","token","created_at","expires_at"} */
json_t		*token_mint(struct db *, const char *sub, const char *name,
		    const char *expires_at);


#endif /* BY_BYSTATE_H */
