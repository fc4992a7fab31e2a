/*
 * The SQLite driver.  One connection, used only from bystate's event
 * loop, so the library's own mutexes are switched off (NOMUTEX).  The
 * database runs in WAL mode: readers (a backup, the sqlite3 shell) do not
 * block the writer, and a commit is one append to the -wal file.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <sqlite3.h>

#include "log.h"
#include "bystate.h"

#define SQLITE_BUSY_MS	5000

static void
sqlite_seterr(struct db *db, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Record an error: the caller's context, then SQLite's message.  The code
 * is mapped so that callers can tell a duplicate name (409) from a bug.
 */
static void
sqlite_seterr(struct db *db, int rc, const char *fmt, ...)
{
	va_list		 ap;
	char		 ctx[256];
	const char	*msg;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);

	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		db->errcode = DB_E_UNIQUE;
		break;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		db->errcode = DB_E_FOREIGN;
		break;
	default:
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			db->errcode = DB_E_CONSTRAINT;
		else if ((rc & 0xff) == SQLITE_BUSY ||
		    (rc & 0xff) == SQLITE_LOCKED)
			db->errcode = DB_E_BUSY;
		else
			db->errcode = DB_E_OTHER;
		break;
	}
	/* the handle's message is more precise, when it is about this rc */
	if (db->h.sqlite != NULL && sqlite3_extended_errcode(db->h.sqlite) ==
	    rc)
		msg = sqlite3_errmsg(db->h.sqlite);
	else
		msg = sqlite3_errstr(rc);
	if (ctx[0] != '\0')
		snprintf(db->err, sizeof(db->err), "%s: %s", ctx, msg);
	else
		strlcpy(db->err, msg, sizeof(db->err));
}

static void
sqlite_seterrx(struct db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sqlite_seterrx(struct db *db, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(db->err, sizeof(db->err), fmt, ap);
	va_end(ap);
	db->errcode = DB_E_OTHER;
}

/* dirname(3) without touching the argument. */
static int
sqlite_dirname(const char *path, char *dir, size_t len)
{
	char	 tmp[PATH_MAX];

	if (strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp) ||
	    strlcpy(dir, dirname(tmp), len) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * WAL mode needs to create <db>-wal and <db>-shm next to the database, as
 * the unprivileged user.  Say so plainly instead of SQLite's "unable to
 * open database file".
 */
static int
sqlite_check_dir(struct db *db, const char *path)
{
	struct stat	 st;
	char		 dir[PATH_MAX];

	if (sqlite_dirname(path, dir, sizeof(dir)) == -1) {
		sqlite_seterrx(db, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* EACCES here means a directory above it is closed to us */
	if (stat(dir, &st) == -1) {
		sqlite_seterrx(db, "%s: cannot reach directory %s as uid %u: "
		    "%s", path, dir, (unsigned)getuid(), strerror(errno));
		return -1;
	}
	if (access(dir, W_OK | X_OK) == -1) {
		sqlite_seterrx(db, "%s: directory %s must exist and be "
		    "writable by uid %u (for the -wal and -shm files): %s",
		    path, dir, (unsigned)getuid(), strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Create the file ourselves, mode 0600: SQLite would use 0644 less the
 * umask, and the database holds user names and token hashes.  The -wal
 * and -shm files inherit the mode of the database.
 */
static int
sqlite_create_file(struct db *db, const char *path)
{
	int	 fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		sqlite_seterrx(db, "%s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* Run a PRAGMA that answers one text value and check the answer. */
static int
sqlite_pragma(struct db *db, const char *pragma, const char *want)
{
	sqlite3_stmt	*st;
	const char	*got;
	int		 rc, ok;

	rc = sqlite3_prepare_v2(db->h.sqlite, pragma, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		sqlite_seterr(db, rc, "%s: %s", db->target, pragma);
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sqlite_seterr(db, rc, "%s: %s", db->target, pragma);
		sqlite3_finalize(st);
		return -1;
	}
	if (want == NULL) {
		sqlite3_finalize(st);
		return 0;
	}
	got = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) :
	    NULL;
	ok = got != NULL && strcasecmp(got, want) == 0;
	if (!ok)
		sqlite_seterrx(db, "%s: %s gave \"%s\", need \"%s\"",
		    db->target, pragma, got != NULL ? got : "", want);
	sqlite3_finalize(st);
	return ok ? 0 : -1;
}

static int
sqlite_setup(struct db *db)
{
	sqlite3	*h = db->h.sqlite;

	sqlite3_extended_result_codes(h, 1);
	/* no writable_schema tricks, even through a bug of ours */
	sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if (sqlite3_busy_timeout(h, SQLITE_BUSY_MS) != SQLITE_OK) {
		sqlite_seterrx(db, "%s: cannot set busy timeout", db->target);
		return -1;
	}
	/*
	 * journal_mode answers the mode in force: on a file system without
	 * shared memory it stays "delete", and we would rather not run.
	 * The first read also tells "file is not a database".
	 */
	if (sqlite_pragma(db, "PRAGMA journal_mode=WAL", "wal") == -1)
		return -1;
	/* a build without foreign keys accepts the pragma silently */
	if (sqlite_pragma(db, "PRAGMA foreign_keys=ON", NULL) == -1 ||
	    sqlite_pragma(db, "PRAGMA foreign_keys", "1") == -1)
		return -1;
	/* WAL makes NORMAL durable against application crashes */
	if (sqlite_pragma(db, "PRAGMA synchronous=NORMAL", NULL) == -1)
		return -1;
	/* schema functions may not run SQL functions they were not given */
	if (sqlite_pragma(db, "PRAGMA trusted_schema=OFF", NULL) == -1)
		return -1;
	return 0;
}

static int
sqlite_open(struct db *db, const char *path)
{
	int	 rc;

	/* an in-memory database would lose every app at restart */
	if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
		sqlite_seterrx(db, "%s: need the path of a database file",
		    path);
		return -1;
	}
	if (sqlite_check_dir(db, path) == -1 ||
	    sqlite_create_file(db, path) == -1)
		return -1;
	rc = sqlite3_open_v2(path, &db->h.sqlite, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sqlite_seterr(db, rc, "%s", path);
		return -1;
	}
	return sqlite_setup(db);
}

static void
sqlite_close(struct db *db)
{
	int	 rc;

	if (db->h.sqlite == NULL)
		return;
	/*
	 * Fold the WAL back into the database and empty it, so that the
	 * file alone is a complete copy while we are down.
	 */
	rc = sqlite3_exec(db->h.sqlite, "PRAGMA wal_checkpoint(TRUNCATE)",
	    NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		log_debug("%s: checkpoint: %s", db->target,
		    sqlite3_errmsg(db->h.sqlite));
	if ((rc = sqlite3_close(db->h.sqlite)) != SQLITE_OK)
		log_warnx("%s: close: %s", db->target, sqlite3_errstr(rc));
	db->h.sqlite = NULL;
}

static int
sqlite_exec_script(struct db *db, const char *sql)
{
	char	*msg = NULL;
	int	 rc;

	rc = sqlite3_exec(db->h.sqlite, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		sqlite_seterr(db, rc, "%s", "");
		if (msg != NULL)
			strlcpy(db->err, msg, sizeof(db->err));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
sqlite_bind_one(sqlite3_stmt *st, int i, const struct db_param *p)
{
	switch (p->type) {
	case DB_T_NULL:
		return sqlite3_bind_null(st, i);
	case DB_T_INT:
		return sqlite3_bind_int64(st, i, p->i);
	case DB_T_REAL:
		return sqlite3_bind_double(st, i, p->r);
	case DB_T_TEXT:
		return sqlite3_bind_text(st, i, p->p, -1, SQLITE_STATIC);
	case DB_T_BLOB:
		/* a NULL pointer would bind SQL NULL, not an empty blob */
		if (p->len == 0)
			return sqlite3_bind_zeroblob(st, i, 0);
		return sqlite3_bind_blob64(st, i, p->p, p->len,
		    SQLITE_STATIC);
	}
	return SQLITE_MISUSE;
}

/*
 * Placeholders are $1..$n in both dialects.  SQLite numbers distinct
 * named parameters in order of appearance, so map each name back to its
 * number.  n distinct names, each in 1..n, means every value is used,
 * which PostgreSQL insists on too.
 */
static int
sqlite_bind(struct db *db, sqlite3_stmt *st, const struct db_param *p,
    size_t np)
{
	const char	*name, *errstr;
	long long	 k;
	int		 i, n, rc;

	n = sqlite3_bind_parameter_count(st);
	if ((size_t)n != np) {
		sqlite_seterrx(db, "statement has %d parameters, %zu given",
		    n, np);
		return -1;
	}
	for (i = 1; i <= n; i++) {
		name = sqlite3_bind_parameter_name(st, i);
		if (name == NULL || name[0] != '$') {
			sqlite_seterrx(db, "parameter %d: write placeholders "
			    "as $1, $2, ...", i);
			return -1;
		}
		k = strtonum(name + 1, 1, (long long)np, &errstr);
		if (errstr != NULL) {
			sqlite_seterrx(db, "parameter %s: %s", name, errstr);
			return -1;
		}
		if ((rc = sqlite_bind_one(st, i, &p[k - 1])) != SQLITE_OK) {
			sqlite_seterr(db, rc, "bind %s", name);
			return -1;
		}
	}
	return 0;
}

static int
sqlite_prepare_one(struct db *db, const char *sql, sqlite3_stmt **stp)
{
	const char	*tail = NULL;
	int		 rc;

	rc = sqlite3_prepare_v2(db->h.sqlite, sql, -1, stp, &tail);
	if (rc != SQLITE_OK) {
		sqlite_seterr(db, rc, "%s", "");
		return -1;
	}
	if (*stp == NULL) {
		sqlite_seterrx(db, "empty statement");
		return -1;
	}
	/* a second statement would be ignored silently: refuse it */
	while (tail != NULL && (*tail == ' ' || *tail == '\t' ||
	    *tail == '\n' || *tail == '\r' || *tail == ';'))
		tail++;
	if (tail != NULL && *tail != '\0') {
		sqlite3_finalize(*stp);
		*stp = NULL;
		sqlite_seterrx(db, "more than one statement in a query");
		return -1;
	}
	return 0;
}

static int
sqlite_query(struct db *db, const char *sql, const struct db_param *p,
    size_t np, db_row_fn fn, void *arg)
{
	sqlite3_stmt	*st;
	struct db_row	 row;
	int		 rc, rows = 0, stopped = 0;

	db->changes = 0;
	if (sqlite_prepare_one(db, sql, &st) == -1)
		return -1;
	if (sqlite_bind(db, st, p, np) == -1) {
		sqlite3_finalize(st);
		return -1;
	}
	row.db = db;
	row.res = st;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row.row = rows++;
		if (fn != NULL && fn(&row, arg) != 0) {
			stopped = 1;
			break;
		}
	}
	if (!stopped && rc != SQLITE_DONE) {
		sqlite_seterr(db, rc, "%s", "");
		sqlite3_finalize(st);
		return -1;
	}
	/* sqlite3_changes keeps the count of the last write: not ours */
	if (!sqlite3_stmt_readonly(st))
		db->changes = sqlite3_changes64(db->h.sqlite);
	sqlite3_finalize(st);
	return rows;
}

/*
 * IMMEDIATE takes the write lock now.  A deferred transaction that reads
 * first and writes later can fail with SQLITE_BUSY at the write, which
 * the busy timeout cannot help with.
 */
static int
sqlite_begin(struct db *db)
{
	return sqlite_exec_script(db, "BEGIN IMMEDIATE");
}

/*
 * "SELECT 1" would not touch the file at all.  Reading the schema table
 * starts a real read transaction: the file, the -shm index and the page
 * cache are all checked.
 */
static int
sqlite_ping(struct db *db)
{
	int64_t	 n;
	int	 r;

	if (db->h.sqlite == NULL) {
		sqlite_seterrx(db, "database not open");
		return -1;
	}
	r = db_query_int(db, "SELECT count(*) FROM sqlite_master", NULL, 0,
	    &n);
	return r == 1 ? 0 : -1;
}

static int
sqlite_col_count(const struct db_row *r)
{
	return sqlite3_column_count(r->res);
}

static enum db_type
sqlite_col_type(const struct db_row *r, int col)
{
	switch (sqlite3_column_type(r->res, col)) {
	case SQLITE_INTEGER:
		return DB_T_INT;
	case SQLITE_FLOAT:
		return DB_T_REAL;
	case SQLITE_TEXT:
		return DB_T_TEXT;
	case SQLITE_BLOB:
		return DB_T_BLOB;
	default:
		return DB_T_NULL;
	}
}

static int64_t
sqlite_col_int(const struct db_row *r, int col)
{
	return sqlite3_column_int64(r->res, col);
}

static double
sqlite_col_real(const struct db_row *r, int col)
{
	return sqlite3_column_double(r->res, col);
}

static const char *
sqlite_col_text(const struct db_row *r, int col)
{
	return (const char *)sqlite3_column_text(r->res, col);
}

static const void *
sqlite_col_blob(const struct db_row *r, int col, size_t *len)
{
	const void	*p;

	/* the pointer first, then the size: that is the order SQLite wants */
	p = sqlite3_column_blob(r->res, col);
	*len = (size_t)sqlite3_column_bytes(r->res, col);
	return p;
}

const struct db_ops db_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.exec_script = sqlite_exec_script,
	.query = sqlite_query,
	.begin = sqlite_begin,
	.ping = sqlite_ping,
	.col_count = sqlite_col_count,
	.col_type = sqlite_col_type,
	.col_int = sqlite_col_int,
	.col_real = sqlite_col_real,
	.col_text = sqlite_col_text,
	.col_blob = sqlite_col_blob,
};

/* ---- files, as root before the privilege drop ----------------------- */

/* mkdir -p; *created tells whether the last component is new. */
static int
sqlite_mkdirs(const char *dir, int *created, char *err, size_t errlen)
{
	char		 buf[PATH_MAX];
	struct stat	 st;
	char		*s;

	*created = 0;
	if (strlcpy(buf, dir, sizeof(buf)) >= sizeof(buf)) {
		snprintf(err, errlen, "%s: %s", dir, strerror(ENAMETOOLONG));
		return -1;
	}
	for (s = buf + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", buf,
			    strerror(errno));
			return -1;
		}
		*s = '/';
	}
	/* only the server may look inside: 0750, owner set by the caller */
	if (mkdir(buf, 0750) == 0) {
		*created = 1;
		return 0;
	}
	if (errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", buf, strerror(errno));
		return -1;
	}
	if (stat(buf, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", buf);
		return -1;
	}
	return 0;
}

/*
 * Hand an existing database file to the server user.  Not through a
 * symbolic link: root would change the owner of whatever it points to.
 */
static int
sqlite_chown_file(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct stat	 st;
	int		 fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, errno == ELOOP ?
		    "is a symbolic link, not changing its owner" :
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) == -1) {
		snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Make the directory if it is missing and give the database files to the
 * server user.  An existing directory keeps its owner: [database] path
 * could name a file in /var/lib or /tmp, and handing that directory to
 * the server user would be a gift.  The open after the privilege drop
 * says clearly when the directory is not writable.
 */
int
sqlite_prepare(const char *path, uid_t uid, gid_t gid, int chown_files,
    char *err, size_t errlen)
{
	const char *const suffixes[] = { "", "-wal", "-shm" };
	char		 dir[PATH_MAX], file[PATH_MAX];
	size_t		 i;
	int		 created;

	if (sqlite_dirname(path, dir, sizeof(dir)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (sqlite_mkdirs(dir, &created, err, errlen) == -1)
		return -1;
	if (!chown_files)
		return 0;
	if (created && chown(dir, uid, gid) == -1) {
		snprintf(err, errlen, "chown %s: %s", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if ((size_t)snprintf(file, sizeof(file), "%s%s", path,
		    suffixes[i]) >= sizeof(file)) {
			snprintf(err, errlen, "%s: %s", path,
			    strerror(ENAMETOOLONG));
			return -1;
		}
		if (sqlite_chown_file(file, uid, gid, err, errlen) == -1)
			return -1;
	}
	return 0;
}
