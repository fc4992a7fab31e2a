/*
 * The PostgreSQL driver (libpq).  One connection, used only from
 * bystate's event loop, like the SQLite driver.
 *
 * Parameters go as text, except BLOB, which goes in binary format as
 * BYTEA.  Results come back as text: numbers are parsed, BYTEA columns
 * are decoded from the server's text form (hex, or the older escape
 * format) with PQunescapeBytea when a caller asks for the blob.
 *
 * Two things differ from SQLite and are made to look the same here:
 *
 *  - A failed statement inside a transaction aborts the whole
 *    transaction in PostgreSQL, but only that statement in SQLite.
 *    Inside a transaction each statement runs under a savepoint, so a
 *    caller can see DB_E_UNIQUE and carry on, as it could with SQLite.
 *
 *  - The server can go away.  An idle connection that has something to
 *    read is one the server is closing (we never LISTEN), and a closed
 *    one is made again before the next statement: pg_terminate_backend
 *    or a server restart costs no failed request.  Never inside a
 *    transaction, whose earlier statements died with the old session.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <libpq-fe.h>

#include "log.h"
#include "bystate.h"

/*
 * Type OIDs from PostgreSQL's catalog (pg_type.dat).  They are fixed
 * across server versions; the server headers that name them are not a
 * client build dependency.
 */
#define PG_BOOLOID	16
#define PG_BYTEAOID	17
#define PG_INT8OID	20
#define PG_INT2OID	21
#define PG_INT4OID	23
#define PG_FLOAT4OID	700
#define PG_FLOAT8OID	701
#define PG_NUMERICOID	1700

#define PG_MAXPARAMS	1024	/* far below the protocol's 65535 */
#define PG_RETRY_SEC	1		/* between failed reconnects */
#define PG_SAVEPOINT	"bystate_stmt"
#define PG_REDACTED	"xxxxx"

/* Per connection, in db->priv. */
struct pg_priv {
	int		 savepoint;	/* PG_SAVEPOINT set in this tx */
	struct timespec	 retry_at;	/* no reconnect before this */
};

/* One result, as struct db_row's res. */
struct pg_rows {
	PGresult	 *res;
	int		  row;
	int		  ncols;
	unsigned char	**blob;		/* BYTEA of this row */
	size_t		 *bloblen;
};

static void
pg_seterrx(struct db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
pg_seterrx(struct db *db, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(db->err, sizeof(db->err), fmt, ap);
	va_end(ap);
	db->errcode = DB_E_OTHER;
}

/* libpq's messages span lines and end in one: make them one line. */
static void
pg_oneline(char *s)
{
	char	*d = s, *p;
	int	 space = 0;

	for (p = s; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
			space = d != s;
			continue;
		}
		if (space)
			*d++ = ' ';
		space = 0;
		*d++ = *p;
	}
	*d = '\0';
}

/* The connection's own message (no result to ask). */
static void
pg_seterr_conn(struct db *db, const char *ctx)
{
	char	 msg[384];

	strlcpy(msg, db->h.pg != NULL ? PQerrorMessage(db->h.pg) :
	    "out of memory", sizeof(msg));
	pg_oneline(msg);
	if (msg[0] == '\0')
		strlcpy(msg, "connection failed", sizeof(msg));
	if (ctx != NULL)
		snprintf(db->err, sizeof(db->err), "%s: %s", ctx, msg);
	else
		strlcpy(db->err, msg, sizeof(db->err));
	db->errcode = DB_E_OTHER;
}

/*
 * SQLSTATE to the cases a caller tells apart: 23505 unique_violation,
 * 23503 foreign_key_violation and 23001 restrict_violation, the rest of
 * class 23 (CHECK, NOT NULL), 40001 serialization_failure, 40P01
 * deadlock_detected and 55P03 lock_not_available.
 */
static enum db_err
pg_errcode(const char *state)
{
	if (state == NULL)
		return DB_E_OTHER;
	if (strcmp(state, "23505") == 0)
		return DB_E_UNIQUE;
	if (strcmp(state, "23503") == 0 || strcmp(state, "23001") == 0)
		return DB_E_FOREIGN;
	if (strncmp(state, "23", 2) == 0)
		return DB_E_CONSTRAINT;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return DB_E_BUSY;
	return DB_E_OTHER;
}

/*
 * The error of a failed result: the primary message and the SQLSTATE.
 * DETAIL is left out: it quotes row values (token hashes, names).
 */
static void
pg_seterr_res(struct db *db, PGresult *res)
{
	const char	*state, *primary;

	if (res == NULL) {
		pg_seterr_conn(db, NULL);
		return;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (primary == NULL || state == NULL) {
		/* a connection failure: libpq made the result itself */
		pg_seterr_conn(db, NULL);
		return;
	}
	snprintf(db->err, sizeof(db->err), "%s (SQLSTATE %s)", primary, state);
	pg_oneline(db->err);
	db->errcode = pg_errcode(state);
}

static void
pg_notice(void *arg, const char *msg)
{
	struct db	*db = arg;
	char		 buf[512];

	strlcpy(buf, msg, sizeof(buf));
	pg_oneline(buf);
	log_debug("%s: %s", db->target, buf);
}

/* ---- the connection ---------------------------------------------------- */

static int
pg_open(struct db *db, const char *target)
{
	/*
	 * Keywords before dbname are defaults the URL may override, those
	 * after it are ours for good: every text we store is UTF-8.  No
	 * "options": connection poolers refuse it.
	 */
	const char *const kw[] = { "connect_timeout", "application_name",
	    "dbname", "client_encoding", NULL };
	const char *const val[] = { "10", "bystate", target, "UTF8", NULL };

	if ((db->priv = calloc(1, sizeof(struct pg_priv))) == NULL) {
		pg_seterrx(db, "%s: %s", db->target, strerror(errno));
		return -1;
	}
	db->h.pg = PQconnectdbParams(kw, val, 1);
	if (db->h.pg == NULL || PQstatus(db->h.pg) != CONNECTION_OK) {
		pg_seterr_conn(db, db->target);
		return -1;
	}
	/* the server's notices would go to stderr */
	PQsetNoticeProcessor(db->h.pg, pg_notice, db);
	return 0;
}

static void
pg_close(struct db *db)
{
	if (db->h.pg != NULL)
		PQfinish(db->h.pg);
	db->h.pg = NULL;
	free(db->priv);
	db->priv = NULL;
}

static int
pg_now_before(const struct timespec *t)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < t->tv_sec || (now.tv_sec == t->tv_sec &&
	    now.tv_nsec < t->tv_nsec);
}

/*
 * The server closes a session with a FATAL message (admin shutdown,
 * pg_terminate_backend, idle timeout) and then the socket.  Nothing else
 * arrives while we are idle, so readable means going away.
 */
static int
pg_idle_ok(PGconn *c)
{
	struct pollfd	 pfd;

	if (PQstatus(c) != CONNECTION_OK)
		return 0;
	if ((pfd.fd = PQsocket(c)) == -1)
		return 0;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 0;
}

static int
pg_reconnect(struct db *db)
{
	struct pg_priv	*pv = db->priv;

	if (pg_now_before(&pv->retry_at)) {
		pg_seterrx(db, "%s: not connected (retrying every %d s)",
		    db->target, PG_RETRY_SEC);
		return -1;
	}
	PQreset(db->h.pg);
	pv->savepoint = 0;
	if (PQstatus(db->h.pg) != CONNECTION_OK) {
		clock_gettime(CLOCK_MONOTONIC, &pv->retry_at);
		pv->retry_at.tv_sec += PG_RETRY_SEC;
		pg_seterr_conn(db, db->target);
		return -1;
	}
	log_info("%s: connected again", db->target);
	return 0;
}

/*
 * Before a statement: a connection the server closed is made again, but
 * not inside a transaction, whose earlier work went with the old session.
 */
static int
pg_ready(struct db *db)
{
	if (db->h.pg == NULL) {
		pg_seterrx(db, "database not open");
		return -1;
	}
	if (pg_idle_ok(db->h.pg))
		return 0;
	if (db->in_tx) {
		if (PQstatus(db->h.pg) == CONNECTION_OK)
			return 0;	/* let the statement report it */
		pg_seterrx(db, "%s: connection lost inside a transaction",
		    db->target);
		return -1;
	}
	if (PQstatus(db->h.pg) == CONNECTION_OK)
		log_info("%s: server closed the connection, reconnecting",
		    db->target);
	return pg_reconnect(db);
}

/* Commands, queries without parameters; NULL with db->err set. */
static PGresult *
pg_exec(struct db *db, const char *sql)
{
	PGresult	*res;

	res = PQexec(db->h.pg, sql);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		return res;
	default:
		pg_seterr_res(db, res);
		PQclear(res);
		return NULL;
	}
}

static int
pg_exec_script(struct db *db, const char *sql)
{
	PGresult	*res;

	if (pg_ready(db) == -1)
		return -1;
	if ((res = pg_exec(db, sql)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

static int
pg_begin(struct db *db)
{
	struct pg_priv	*pv = db->priv;

	if (pg_exec_script(db, "BEGIN") == -1)
		return -1;
	pv->savepoint = 0;
	return 0;
}

/* A lost connection has no transaction left to roll back. */
static int
pg_rollback(struct db *db)
{
	struct pg_priv	*pv = db->priv;
	PGresult	*res;

	pv->savepoint = 0;
	if (db->h.pg == NULL) {
		pg_seterrx(db, "database not open");
		return -1;
	}
	/* the session is ending: so is its transaction */
	if (!pg_idle_ok(db->h.pg))
		return 0;
	if ((res = pg_exec(db, "ROLLBACK")) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/*
 * A statement in a transaction runs under a savepoint: on failure we go
 * back to it and the transaction stays usable, as in SQLite.  The last
 * one is released and a new one set in the same round trip.
 */
static int
pg_savepoint(struct db *db)
{
	struct pg_priv	*pv = db->priv;
	PGresult	*res;

	res = pg_exec(db, pv->savepoint ? "RELEASE SAVEPOINT " PG_SAVEPOINT
	    "; SAVEPOINT " PG_SAVEPOINT : "SAVEPOINT " PG_SAVEPOINT);
	if (res == NULL)
		return -1;
	PQclear(res);
	pv->savepoint = 1;
	return 0;
}

static void
pg_undo_statement(struct db *db)
{
	PGresult	*res;

	if (PQstatus(db->h.pg) != CONNECTION_OK)
		return;
	res = PQexec(db->h.pg, "ROLLBACK TO SAVEPOINT " PG_SAVEPOINT);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warnx("%s: rollback to savepoint: %s", db->target,
		    PQresultErrorMessage(res));
	PQclear(res);
}

/* ---- statements with parameters ---------------------------------------- */

static int
pg_identchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/*
 * Mark the $n placeholders of a statement in seen[], skipping literals,
 * quoted identifiers, comments and dollar quotes.  Returns the largest n,
 * or -1 for a number beyond max (seen[] has max entries).
 */
static int
pg_placeholders(const char *sql, size_t max, unsigned char *seen)
{
	const unsigned char	*start = (const unsigned char *)sql;
	const unsigned char	*s = start, *t;
	size_t			 taglen, n;
	int			 depth, escapes, top = 0;

	while (*s != '\0') {
		if (*s == '\'' || *s == '"') {
			/* E'...' strings know backslash escapes */
			escapes = *s == '\'' && s > start &&
			    (s[-1] == 'E' || s[-1] == 'e') &&
			    (s - 1 == start || !pg_identchar(s[-2]));
			t = s++;
			while (*s != '\0') {
				if (escapes && *s == '\\' && s[1] != '\0')
					s += 2;
				else if (*s == *t && s[1] == *t)
					s += 2;
				else if (*s == *t)
					break;
				else
					s++;
			}
			if (*s != '\0')
				s++;
		} else if (s[0] == '-' && s[1] == '-') {
			while (*s != '\0' && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			/* block comments nest in PostgreSQL */
			for (depth = 1, s += 2; *s != '\0' && depth > 0;) {
				if (s[0] == '/' && s[1] == '*') {
					depth++;
					s += 2;
				} else if (s[0] == '*' && s[1] == '/') {
					depth--;
					s += 2;
				} else
					s++;
			}
		} else if (*s == '$' && s > start && pg_identchar(s[-1])) {
			s++;		/* part of an identifier: a$1 */
		} else if (*s == '$' && s[1] >= '0' && s[1] <= '9') {
			for (n = 0, s++; *s >= '0' && *s <= '9'; s++) {
				n = n * 10 + (*s - '0');
				if (n > max)
					return -1;
			}
			if (n == 0)
				return -1;
			seen[n - 1] = 1;
			if ((int)n > top)
				top = (int)n;
		} else if (*s == '$') {
			/* $tag$ ... $tag$, or $$ ... $$ */
			for (t = s + 1; pg_identchar(*t) && *t != '$'; t++)
				;
			if (*t != '$') {
				s++;
				continue;
			}
			taglen = (size_t)(t - s) + 1;
			for (t++; *t != '\0' && strncmp((const char *)t,
			    (const char *)s, taglen) != 0; t++)
				;
			s = *t != '\0' ? t + taglen : t;
		} else
			s++;
	}
	return top;
}

/*
 * Every value must be used and every placeholder given a value, as the
 * SQLite driver insists too: a missing $n is a bug, not a NULL.
 */
static int
pg_check_params(struct db *db, const char *sql, size_t np)
{
	unsigned char	*seen;
	size_t		 i;
	int		 top;

	if (np > PG_MAXPARAMS) {
		pg_seterrx(db, "%zu parameters, at most %d", np, PG_MAXPARAMS);
		return -1;
	}
	if ((seen = calloc(np + 1, 1)) == NULL) {
		pg_seterrx(db, "%s", strerror(errno));
		return -1;
	}
	top = pg_placeholders(sql, np, seen);
	if (top == -1) {
		pg_seterrx(db, "statement uses a parameter beyond the %zu "
		    "given", np);
		free(seen);
		return -1;
	}
	for (i = 0; i < np; i++) {
		if (!seen[i]) {
			pg_seterrx(db, "parameter $%zu given but not used: "
			    "write placeholders as $1, $2, ...", i + 1);
			free(seen);
			return -1;
		}
	}
	free(seen);
	return 0;
}

/* Parameter values as libpq wants them; text[] holds the numbers. */
struct pg_params {
	Oid		 *types;
	const char	**values;
	int		 *lengths;
	int		 *formats;
	char		(*text)[32];
};

static void
pg_params_free(struct pg_params *pp)
{
	free(pp->types);
	free(pp->values);
	free(pp->lengths);
	free(pp->formats);
	free(pp->text);
}

/*
 * Integers and reals carry their type so that "SELECT $1" answers a
 * number and "$1 = 7" does not guess text.  Text is left untyped, as a
 * literal would be, so it can fill any column (TIMESTAMPTZ too).
 */
static int
pg_params_make(struct db *db, const struct db_param *p, size_t np,
    struct pg_params *pp)
{
	size_t	 i;

	memset(pp, 0, sizeof(*pp));
	if (np == 0)
		return 0;
	pp->types = calloc(np, sizeof(*pp->types));
	pp->values = calloc(np, sizeof(*pp->values));
	pp->lengths = calloc(np, sizeof(*pp->lengths));
	pp->formats = calloc(np, sizeof(*pp->formats));
	pp->text = calloc(np, sizeof(*pp->text));
	if (pp->types == NULL || pp->values == NULL || pp->lengths == NULL ||
	    pp->formats == NULL || pp->text == NULL) {
		pg_seterrx(db, "%s", strerror(errno));
		pg_params_free(pp);
		return -1;
	}
	for (i = 0; i < np; i++) {
		switch (p[i].type) {
		case DB_T_NULL:
			pp->values[i] = NULL;
			break;
		case DB_T_INT:
			pp->types[i] = PG_INT8OID;
			snprintf(pp->text[i], sizeof(pp->text[i]), "%" PRId64,
			    p[i].i);
			pp->values[i] = pp->text[i];
			break;
		case DB_T_REAL:
			pp->types[i] = PG_FLOAT8OID;
			/* 17 digits: the double comes back bit for bit */
			snprintf(pp->text[i], sizeof(pp->text[i]), "%.17g",
			    p[i].r);
			pp->values[i] = pp->text[i];
			break;
		case DB_T_TEXT:
			pp->values[i] = p[i].p;
			break;
		case DB_T_BLOB:
			if (p[i].len > INT32_MAX) {
				pg_seterrx(db, "parameter $%zu: blob of %zu "
				    "bytes is too large", i + 1, p[i].len);
				pg_params_free(pp);
				return -1;
			}
			pp->types[i] = PG_BYTEAOID;
			/* a NULL value would be SQL NULL, not empty */
			pp->values[i] = p[i].len > 0 ? p[i].p : "";
			pp->lengths[i] = (int)p[i].len;
			pp->formats[i] = 1;
			break;
		}
	}
	return 0;
}

/* Rows changed: only INSERT, UPDATE, DELETE and MERGE change any. */
static int64_t
pg_changes(PGresult *res)
{
	const char	*status = PQcmdStatus(res), *errstr;
	long long	 n;

	if (strncmp(status, "INSERT ", 7) != 0 &&
	    strncmp(status, "UPDATE ", 7) != 0 &&
	    strncmp(status, "DELETE ", 7) != 0 &&
	    strncmp(status, "MERGE ", 6) != 0)
		return 0;
	n = strtonum(PQcmdTuples(res), 0, LLONG_MAX, &errstr);
	return errstr == NULL ? n : 0;
}

static void
pg_rows_clear(struct pg_rows *pr)
{
	int	 i;

	if (pr->blob == NULL)
		return;
	for (i = 0; i < pr->ncols; i++) {
		if (pr->blob[i] != NULL)
			PQfreemem(pr->blob[i]);
		pr->blob[i] = NULL;
	}
}

static int
pg_rows_walk(struct db *db, PGresult *res, db_row_fn fn, void *arg)
{
	struct pg_rows	 pr;
	struct db_row	 row;
	int		 i, n;

	memset(&pr, 0, sizeof(pr));
	pr.res = res;
	pr.ncols = PQnfields(res);
	row.db = db;
	row.res = &pr;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		pr.row = row.row = i;
		if (fn == NULL)
			continue;
		if (fn(&row, arg) != 0) {
			n = i + 1;
			break;
		}
		pg_rows_clear(&pr);
	}
	pg_rows_clear(&pr);
	free(pr.blob);
	free(pr.bloblen);
	return n;
}

static int
pg_query(struct db *db, const char *sql, const struct db_param *p,
    size_t np, db_row_fn fn, void *arg)
{
	struct pg_params pp;
	PGresult	*res;
	int		 rows;

	db->changes = 0;
	if (pg_check_params(db, sql, np) == -1)
		return -1;
	if (pg_ready(db) == -1)
		return -1;
	if (pg_params_make(db, p, np, &pp) == -1)
		return -1;
	if (db->in_tx && pg_savepoint(db) == -1) {
		pg_params_free(&pp);
		return -1;
	}
	res = PQexecParams(db->h.pg, sql, (int)np, pp.types, pp.values,
	    pp.lengths, pp.formats, 0);
	pg_params_free(&pp);
	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_seterr_res(db, res);
		PQclear(res);
		if (db->in_tx)
			pg_undo_statement(db);
		return -1;
	}
	db->changes = pg_changes(res);
	rows = pg_rows_walk(db, res, fn, arg);
	PQclear(res);
	return rows;
}

/* A round trip to the server, through the reconnecting path. */
static int
pg_ping(struct db *db)
{
	int64_t	 one;

	return db_query_int(db, "SELECT 1", NULL, 0, &one) == 1 ? 0 : -1;
}

/* ---- columns ------------------------------------------------------------ */

#define PG_RES(r)	(((struct pg_rows *)(r)->res)->res)
#define PG_ROW(r)	(((struct pg_rows *)(r)->res)->row)

static int
pg_col_count(const struct db_row *r)
{
	return PQnfields(PG_RES(r));
}

static enum db_type
pg_col_type(const struct db_row *r, int col)
{
	if (PQgetisnull(PG_RES(r), PG_ROW(r), col))
		return DB_T_NULL;
	switch (PQftype(PG_RES(r), col)) {
	case PG_INT2OID:
	case PG_INT4OID:
	case PG_INT8OID:
	case PG_BOOLOID:
		return DB_T_INT;
	case PG_FLOAT4OID:
	case PG_FLOAT8OID:
	case PG_NUMERICOID:
		return DB_T_REAL;
	case PG_BYTEAOID:
		return DB_T_BLOB;
	default:
		return DB_T_TEXT;
	}
}

static int
pg_col_isbool(const struct db_row *r, int col)
{
	return PQftype(PG_RES(r), col) == PG_BOOLOID;
}

/* Like SQLite: text that is not a number reads as 0 (or its prefix). */
static int64_t
pg_col_int(const struct db_row *r, int col)
{
	const char	*v = PQgetvalue(PG_RES(r), PG_ROW(r), col);

	if (pg_col_isbool(r, col))
		return v[0] == 't';
	switch (PQftype(PG_RES(r), col)) {
	case PG_FLOAT4OID:
	case PG_FLOAT8OID:
	case PG_NUMERICOID:
		return (int64_t)strtod(v, NULL);
	default:
		return strtoll(v, NULL, 10);
	}
}

static double
pg_col_real(const struct db_row *r, int col)
{
	const char	*v = PQgetvalue(PG_RES(r), PG_ROW(r), col);

	if (pg_col_isbool(r, col))
		return v[0] == 't';
	return strtod(v, NULL);
}

static const char *
pg_col_text(const struct db_row *r, int col)
{
	const char	*v = PQgetvalue(PG_RES(r), PG_ROW(r), col);

	/* a bool is the integer 0 or 1 in every other accessor too */
	if (pg_col_isbool(r, col))
		return v[0] == 't' ? "1" : "0";
	return v;
}

/*
 * BYTEA arrives in text form; decode it once per row and column.  Other
 * columns answer their text's bytes, as SQLite does.
 */
static const void *
pg_col_blob(const struct db_row *r, int col, size_t *len)
{
	struct pg_rows	*pr = r->res;
	const char	*v = PQgetvalue(pr->res, pr->row, col);

	if (PQftype(pr->res, col) != PG_BYTEAOID) {
		*len = (size_t)PQgetlength(pr->res, pr->row, col);
		return v;
	}
	if (pr->blob == NULL) {
		pr->blob = calloc(pr->ncols, sizeof(*pr->blob));
		pr->bloblen = calloc(pr->ncols, sizeof(*pr->bloblen));
		if (pr->blob == NULL || pr->bloblen == NULL) {
			free(pr->blob);
			free(pr->bloblen);
			pr->blob = NULL;
			pr->bloblen = NULL;
			log_warn("bytea");
			return NULL;
		}
	}
	if (pr->blob[col] == NULL) {
		pr->blob[col] = PQunescapeBytea((const unsigned char *)v,
		    &pr->bloblen[col]);
		if (pr->blob[col] == NULL) {
			log_warnx("%s: cannot decode bytea column %d",
			    r->db->target, col);
			return NULL;
		}
	}
	*len = pr->bloblen[col];
	return pr->blob[col];
}

/* ---- the password stays out of messages -------------------------------- */

struct pg_out {
	char	*buf;
	size_t	 len, off;
};

static void
pg_put(struct pg_out *o, const char *s, size_t n)
{
	size_t	 room;

	if (o->off + 1 >= o->len)
		return;
	room = o->len - o->off - 1;
	if (n > room)
		n = room;
	memcpy(o->buf + o->off, s, n);
	o->off += n;
	o->buf[o->off] = '\0';
}

static void
pg_puts(struct pg_out *o, const char *s)
{
	pg_put(o, s, strlen(s));
}

static int
pg_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Is the URL query key s[0..n) "password"?  Percent-decoded and in any
 * case: libpq would refuse "PASSWORD", but the message would still show
 * its value.
 */
static int
pg_is_password_key(const char *s, size_t n)
{
	static const char	 pw[] = "password";
	size_t			 i, j = 0;
	int			 c, h, l;

	for (i = 0; i < n; i++, j++) {
		c = (unsigned char)s[i];
		if (c == '%' && i + 2 < n && (h = pg_hexval(s[i + 1])) != -1 &&
		    (l = pg_hexval(s[i + 2])) != -1) {
			c = h * 16 + l;
			i += 2;
		}
		if (j >= sizeof(pw) - 1 || (c | 0x20) != pw[j])
			return 0;
	}
	return j == sizeof(pw) - 1;
}

/* The query part: password=... hidden, the rest as it is. */
static void
pg_redact_query(const char *p, struct pg_out *o)
{
	const char	*q, *amp, *eq;

	if ((q = strchr(p, '?')) == NULL) {
		pg_puts(o, p);
		return;
	}
	pg_put(o, p, (size_t)(q - p) + 1);
	for (p = q + 1; *p != '\0'; p = *amp != '\0' ? amp + 1 : amp) {
		amp = p + strcspn(p, "&");
		eq = memchr(p, '=', (size_t)(amp - p));
		if (eq != NULL && pg_is_password_key(p, (size_t)(eq - p))) {
			pg_put(o, p, (size_t)(eq - p) + 1);
			pg_puts(o, PG_REDACTED);
		} else
			pg_put(o, p, (size_t)(amp - p));
		if (*amp == '&')
			pg_puts(o, "&");
	}
}

/*
 * postgresql://user:password@host/db?password=x: both hidden.  libpq
 * ends the user info at the first '@' or '/', but a password with a '/'
 * or '?' in it is still a password to whoever typed it: everything from
 * the first ':' to the last '@' goes.
 */
static void
pg_redact_url(const char *in, size_t schemelen, struct pg_out *o)
{
	const char	*p, *at, *colon;

	pg_put(o, in, schemelen);
	p = in + schemelen;
	if ((at = strrchr(p, '@')) != NULL &&
	    (colon = memchr(p, ':', (size_t)(at - p))) != NULL) {
		pg_put(o, p, (size_t)(colon - p) + 1);
		pg_puts(o, PG_REDACTED);
		pg_redact_query(at, o);
	} else
		pg_redact_query(p, o);
}

static int
pg_isspace(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\f' || c == '\v';
}

/*
 * key = value pairs, values bare or in single quotes with backslash
 * escapes (libpq's conninfo syntax).  Anything we cannot follow is cut
 * off: it might be a password.
 */
static void
pg_redact_keywords(const char *in, struct pg_out *o)
{
	const char	*p = in, *k, *ke, *v;

	for (;;) {
		while (pg_isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			return;
		if (o->off > 0)
			pg_puts(o, " ");
		k = p;
		while (*p != '\0' && *p != '=' &&
		    !pg_isspace((unsigned char)*p))
			p++;
		ke = p;
		while (pg_isspace((unsigned char)*p))
			p++;
		if (*p != '=' || ke == k) {
			pg_puts(o, "...");
			return;
		}
		pg_put(o, k, (size_t)(ke - k));
		pg_puts(o, "=");
		p++;
		while (pg_isspace((unsigned char)*p))
			p++;
		v = p;
		if (*p == '\'') {
			for (p++; *p != '\0' && *p != '\''; p++)
				if (*p == '\\' && p[1] != '\0')
					p++;
			if (*p != '\'') {
				pg_puts(o, "...");
				return;
			}
			p++;
		} else {
			while (*p != '\0' && !pg_isspace((unsigned char)*p)) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				p++;
			}
		}
		if ((size_t)(ke - k) == 8 && strncasecmp(k, "password", 8) == 0)
			pg_puts(o, PG_REDACTED);
		else
			pg_put(o, v, (size_t)(p - v));
	}
}

void
pg_redact(const char *in, char *buf, size_t len)
{
	struct pg_out	 o = { buf, len, 0 };

	if (len == 0)
		return;
	buf[0] = '\0';
	if (strncmp(in, "postgresql://", 13) == 0)
		pg_redact_url(in, 13, &o);
	else if (strncmp(in, "postgres://", 11) == 0)
		pg_redact_url(in, 11, &o);
	else if (strchr(in, '=') != NULL)
		pg_redact_keywords(in, &o);
	else
		pg_puts(&o, in);	/* a database name */
}

const struct db_ops db_pg_ops = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.exec_script = pg_exec_script,
	.query = pg_query,
	.begin = pg_begin,
	.rollback = pg_rollback,
	.ping = pg_ping,
	.redact = pg_redact,
	.col_count = pg_col_count,
	.col_type = pg_col_type,
	.col_int = pg_col_int,
	.col_real = pg_col_real,
	.col_text = pg_col_text,
	.col_blob = pg_col_blob,
};
