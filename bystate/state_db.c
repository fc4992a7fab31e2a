/*
 * The driver-neutral database API and the one database this bystate
 * process owns.  Everything here goes through db->ops, so callers never
 * learn which engine answers.
 */

#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "bystate.h"

/* Indexed by enum db_driver; NULL marks a driver not built yet. */
static const struct db_ops *const db_drivers[DB_NDRIVERS] = {
	[DB_SQLITE] = &db_sqlite_ops,
	[DB_POSTGRES] = &db_pg_ops,
};

static const char *const db_driver_names[DB_NDRIVERS] = {
	[DB_SQLITE] = "sqlite",
	[DB_POSTGRES] = "postgres",
};

/* The process's database, opened by state_open. */
static struct db	*state_db;
static int		 state_version;

int
db_driver_parse(const char *s, enum db_driver *d)
{
	int	 i;

	if (s == NULL)
		return -1;
	for (i = 0; i < DB_NDRIVERS; i++) {
		if (strcmp(s, db_driver_names[i]) == 0) {
			*d = (enum db_driver)i;
			return 0;
		}
	}
	return -1;
}

const char *
db_driver_name(enum db_driver d)
{
	if ((int)d < 0 || d >= DB_NDRIVERS)
		return "unknown";
	return db_driver_names[d];
}

void
db_redact(enum db_driver driver, const char *target, char *buf, size_t len)
{
	if ((int)driver >= 0 && driver < DB_NDRIVERS &&
	    db_drivers[driver] != NULL && db_drivers[driver]->redact != NULL)
		db_drivers[driver]->redact(target, buf, len);
	else
		strlcpy(buf, target, len);
}

struct db *
db_open(enum db_driver driver, const char *target, char *err, size_t errlen)
{
	struct db	*db;
	char		 shown[PATH_MAX];

	if ((int)driver < 0 || driver >= DB_NDRIVERS ||
	    db_drivers[driver] == NULL) {
		snprintf(err, errlen, "database driver %s is not supported "
		    "by this build", db_driver_name(driver));
		return NULL;
	}
	if (target == NULL || *target == '\0') {
		snprintf(err, errlen, "%s: no database given",
		    db_driver_name(driver));
		return NULL;
	}
	/* every message names the target: never with its password */
	db_redact(driver, target, shown, sizeof(shown));
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->target = strdup(shown)) == NULL) {
		free(db);
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		return NULL;
	}
	db->driver = driver;
	db->ops = db_drivers[driver];
	if (db->ops->open(db, target) == -1) {
		strlcpy(err, db->err, errlen);
		db->ops->close(db);
		free(db->target);
		free(db);
		return NULL;
	}
	return db;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	if (db->in_tx)
		db_rollback(db);
	db->ops->close(db);
	free(db->target);
	free(db);
}

const char *
db_error(const struct db *db)
{
	return db->err;
}

enum db_err
db_errcode(const struct db *db)
{
	return db->errcode;
}

static void
db_clearerr(struct db *db)
{
	db->err[0] = '\0';
	db->errcode = DB_E_NONE;
}

int
db_exec_script(struct db *db, const char *sql)
{
	db_clearerr(db);
	return db->ops->exec_script(db, sql);
}

int64_t
db_exec(struct db *db, const char *sql, const struct db_param *p, size_t np)
{
	db_clearerr(db);
	if (db->ops->query(db, sql, p, np, NULL, NULL) == -1)
		return -1;
	return db->changes;
}

int
db_query(struct db *db, const char *sql, const struct db_param *p, size_t np,
    db_row_fn fn, void *arg)
{
	db_clearerr(db);
	return db->ops->query(db, sql, p, np, fn, arg);
}

struct query_int {
	int64_t	 v;
	int	 got;
};

static int
db_query_int_row(const struct db_row *r, void *arg)
{
	struct query_int	*q = arg;

	if (db_row_ncols(r) > 0 && !db_row_isnull(r, 0)) {
		q->v = db_row_int(r, 0);
		q->got = 1;
	}
	return 1;	/* the first row is all we want */
}

int
db_query_int(struct db *db, const char *sql, const struct db_param *p,
    size_t np, int64_t *out)
{
	struct query_int	 q = { 0, 0 };

	if (db_query(db, sql, p, np, db_query_int_row, &q) == -1)
		return -1;
	if (q.got)
		*out = q.v;
	return q.got;
}

int
db_begin(struct db *db)
{
	db_clearerr(db);
	if (db->in_tx) {
		/* nesting would silently merge two units of work */
		snprintf(db->err, sizeof(db->err), "transaction already open");
		db->errcode = DB_E_OTHER;
		return -1;
	}
	if (db->ops->begin(db) == -1)
		return -1;
	db->in_tx = 1;
	return 0;
}

int
db_commit(struct db *db)
{
	db_clearerr(db);
	if (!db->in_tx) {
		snprintf(db->err, sizeof(db->err), "no transaction to commit");
		db->errcode = DB_E_OTHER;
		return -1;
	}
	if (db->ops->exec_script(db, "COMMIT") == -1) {
		/* a failed COMMIT leaves the transaction open: undo it */
		db_rollback(db);
		return -1;
	}
	db->in_tx = 0;
	return 0;
}

/* Best effort: keeps the error of the statement that failed before. */
void
db_rollback(struct db *db)
{
	char		 saved[sizeof(db->err)];
	enum db_err	 code;

	if (!db->in_tx)
		return;
	strlcpy(saved, db->err, sizeof(saved));
	code = db->errcode;
	if ((db->ops->rollback != NULL ? db->ops->rollback(db) :
	    db->ops->exec_script(db, "ROLLBACK")) == -1)
		log_warnx("%s: rollback: %s", db->target, db->err);
	db->in_tx = 0;
	strlcpy(db->err, saved, sizeof(db->err));
	db->errcode = code;
}

int
db_ping(struct db *db)
{
	if (db == NULL)
		return -1;
	db_clearerr(db);
	return db->ops->ping(db);
}

int
db_prepare(enum db_driver driver, const char *target, uid_t uid, gid_t gid,
    int chown_files, char *err, size_t errlen)
{
	switch (driver) {
	case DB_SQLITE:
		return sqlite_prepare(target, uid, gid, chown_files, err,
		    errlen);
	default:
		/* a server database has no local files to prepare */
		return 0;
	}
}

void
db_timestamp(char *buf, size_t len)
{
	db_timestamp_offset(buf, len, 0);
}

void
db_timestamp_offset(char *buf, size_t len, int64_t offset)
{
	struct tm	 tm;
	time_t		 t;

	t = time(NULL) + (time_t)offset;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy(buf, "1970-01-01T00:00:00Z", len);
}

int
db_row_ncols(const struct db_row *r)
{
	return r->db->ops->col_count(r);
}

enum db_type
db_row_type(const struct db_row *r, int col)
{
	if (col < 0 || col >= db_row_ncols(r))
		return DB_T_NULL;
	return r->db->ops->col_type(r, col);
}

int
db_row_isnull(const struct db_row *r, int col)
{
	return db_row_type(r, col) == DB_T_NULL;
}

int64_t
db_row_int(const struct db_row *r, int col)
{
	if (db_row_isnull(r, col))
		return 0;
	return r->db->ops->col_int(r, col);
}

double
db_row_real(const struct db_row *r, int col)
{
	if (db_row_isnull(r, col))
		return 0;
	return r->db->ops->col_real(r, col);
}

const char *
db_row_text(const struct db_row *r, int col)
{
	if (db_row_isnull(r, col))
		return NULL;
	return r->db->ops->col_text(r, col);
}

const void *
db_row_blob(const struct db_row *r, int col, size_t *len)
{
	*len = 0;
	if (db_row_isnull(r, col))
		return NULL;
	return r->db->ops->col_blob(r, col, len);
}

/*
 * The database of this process: open, migrate, remember.  Opening a
 * second one without closing the first is a programming error.
 */
int
state_open(const char *driver, const char *target, char *err, size_t errlen)
{
	enum db_driver	 d;
	struct db	*db;
	int		 version, applied;

	if (state_db != NULL) {
		snprintf(err, errlen, "%s: database already open",
		    state_db->target);
		return -1;
	}
	if (db_driver_parse(driver, &d) == -1) {
		snprintf(err, errlen, "unknown database driver \"%s\"",
		    driver != NULL ? driver : "");
		return -1;
	}
	if ((db = db_open(d, target, err, errlen)) == NULL)
		return -1;
	if (migrate_up(db, &version, &applied) == -1) {
		snprintf(err, errlen, "%s: %s", db->target, db_error(db));
		db_close(db);
		return -1;
	}
	if (applied > 0)
		log_info("%s: applied %d migration%s, schema version %d",
		    db->target, applied, applied == 1 ? "" : "s", version);
	else
		log_debug("%s: schema version %d, up to date", db->target,
		    version);
	state_db = db;
	state_version = version;
	return 0;
}

void
state_close(void)
{
	db_close(state_db);
	state_db = NULL;
	state_version = 0;
}

struct db *
state_handle(void)
{
	return state_db;
}

int
state_schema_version(void)
{
	return state_version;
}
