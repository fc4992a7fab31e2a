/*
 * bystate's database layer against a real SQLite file in a temporary
 * directory: schema, migrations, pragmas, constraints, ping.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <check.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "bystate.h"

static char	 basedir[64];	/* one per run, made by the parent */
static char	 tmpdir[96];	/* one per test, inside basedir */
static char	 dbpath[128];

static const char *const tables[] = {
	"apps", "bundles", "app_access", "users", "personal_access_tokens",
	"tags", "app_tags", "sessions", "app_aliases", "bundle_logs",
	"app_data_mounts", "blockyard_sessions", "blockyard_workers",
	"blockyard_ports", "blockyard_uids", "schema_migrations",
};

static const char *const indexes[] = {
	"idx_apps_name_live", "idx_bundles_app_id", "idx_pat_token_hash",
	"idx_pat_user_sub", "idx_sessions_app_started", "idx_sessions_user",
	"idx_sessions_worker", "idx_sessions_status", "idx_app_aliases_app_id",
	"idx_blockyard_sessions_expires_at",
	"idx_blockyard_sessions_worker_id",
	"idx_blockyard_sessions_last_access", "idx_blockyard_workers_app_id",
	"idx_blockyard_workers_server_id",
	"idx_blockyard_workers_last_heartbeat",
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/*
 * A failing test ends its forked child before the checked teardown, so
 * the parent removes the whole run's directory at the end.
 */
static void
run_setup(void)
{
	strlcpy(basedir, "/tmp/bystate-test.XXXXXX", sizeof(basedir));
	if (mkdtemp(basedir) == NULL || chmod(basedir, 0755) == -1) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
run_teardown(void)
{
	nftw(basedir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/blockyard.db", tmpdir);
}

static void
teardown(void)
{
	state_close();
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Open and migrate, asserting success. */
static struct db *
open_migrated(int *version, int *applied)
{
	struct db	*db;
	char		 err[512];

	db = db_open(DB_SQLITE, dbpath, err, sizeof(err));
	ck_assert_msg(db != NULL, "open: %s", err);
	ck_assert_msg(migrate_up(db, version, applied) == 0, "migrate: %s",
	    db_error(db));
	return db;
}

static int64_t
count(struct db *db, const char *sql, const char *arg)
{
	struct db_param	 p = DB_PTEXT(arg);
	int64_t		 n = -1;

	ck_assert_msg(db_query_int(db, sql, &p, arg != NULL ? 1 : 0, &n) == 1,
	    "%s: %s", sql, db_error(db));
	return n;
}

static int64_t
insert_app(struct db *db, const char *id, const char *name,
    const char *deleted_at)
{
	struct db_param	 p[3];

	p[0] = DB_PTEXT(id);
	p[1] = DB_PTEXT(name);
	p[2] = DB_PTEXT(deleted_at);
	return db_exec(db, "INSERT INTO apps (id, name, created_at, "
	    "updated_at, deleted_at) VALUES ($1, $2, '2026-01-01T00:00:00Z', "
	    "'2026-01-01T00:00:00Z', $3)", p, 3);
}

START_TEST(t_fresh_schema)
{
	struct db	*db;
	size_t		 i;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(version, migrate_latest());
	ck_assert_int_eq(applied, (int)nmigrations);
	ck_assert_int_eq(migrate_latest(), (int)nmigrations);
	ck_assert_int_eq(migrate_current(db), migrate_latest());
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		ck_assert_msg(count(db, "SELECT count(*) FROM sqlite_master "
		    "WHERE type = 'table' AND name = $1", tables[i]) == 1,
		    "table %s missing", tables[i]);
	for (i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++)
		ck_assert_msg(count(db, "SELECT count(*) FROM sqlite_master "
		    "WHERE type = 'index' AND name = $1", indexes[i]) == 1,
		    "index %s missing", indexes[i]);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM schema_migrations "
	    "WHERE version = 1 AND name = '001_initial' AND applied_at "
	    "GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z'", NULL), 1);
	/* the stored timestamp default is RFC 3339 too */
	ck_assert_int_ge(db_exec(db, "INSERT INTO blockyard_workers (id) "
	    "VALUES ('w1')", NULL, 0), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM blockyard_workers "
	    "WHERE started_at GLOB '*-*-*T*:*:*Z'", NULL), 1);
	db_close(db);
}
END_TEST

START_TEST(t_reopen_is_noop)
{
	struct db	*db;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(insert_app(db, "a1", "hello", NULL), 1);
	db_close(db);

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(version, migrate_latest());
	ck_assert_int_eq(applied, 0);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM schema_migrations",
	    NULL), (int)nmigrations);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps WHERE "
	    "name = $1", "hello"), 1);
	db_close(db);
}
END_TEST

START_TEST(t_newer_refused)
{
	struct db	*db;
	char		 err[512];
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(db_exec(db, "INSERT INTO schema_migrations VALUES "
	    "(99, '099_future', '2030-01-01T00:00:00Z')", NULL, 0), 1);
	db_close(db);

	db = db_open(DB_SQLITE, dbpath, err, sizeof(err));
	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(migrate_up(db, &version, &applied), -1);
	ck_assert_msg(strstr(db_error(db), "newer") != NULL, "%s",
	    db_error(db));
	db_close(db);

	/* and through the process-level entry point, naming the file */
	ck_assert_int_eq(state_open("sqlite", dbpath, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, dbpath) != NULL &&
	    strstr(err, "version 99") != NULL, "%s", err);
	ck_assert_ptr_null(state_handle());
	ck_assert_int_eq(state_schema_version(), 0);
}
END_TEST

START_TEST(t_foreign_version_table)
{
	struct db	*db;
	char		 err[512];
	int		 version, applied;

	/* golang-migrate's layout: no name, no applied_at */
	db = db_open(DB_SQLITE, dbpath, err, sizeof(err));
	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(db_exec_script(db, "CREATE TABLE schema_migrations "
	    "(version INTEGER PRIMARY KEY, dirty INTEGER NOT NULL)"), 0);
	ck_assert_int_eq(migrate_up(db, &version, &applied), -1);
	ck_assert_msg(strstr(db_error(db), "schema_migrations") != NULL,
	    "%s", db_error(db));
	ck_assert_int_eq(count(db, "SELECT count(*) FROM sqlite_master WHERE "
	    "name = 'apps'", NULL), 0);
	db_close(db);
}
END_TEST

START_TEST(t_wal_and_pragmas)
{
	struct db	*db;
	struct stat	 st;
	char		 wal[160];
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(count(db, "PRAGMA foreign_keys", NULL), 1);
	ck_assert_int_eq(count(db, "PRAGMA synchronous", NULL), 1);
	ck_assert_int_eq(count(db, "PRAGMA busy_timeout", NULL), 5000);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM pragma_journal_mode "
	    "WHERE journal_mode = 'wal'", NULL), 1);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(stat(wal, &st), 0);
	ck_assert_int_eq(stat(dbpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	db_close(db);
	/* a clean close folds the WAL back in */
	ck_assert_int_eq(stat(wal, &st) == -1 ? 0 : (int)st.st_size, 0);
}
END_TEST

START_TEST(t_foreign_keys)
{
	struct db	*db;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(db_exec(db, "INSERT INTO bundles (id, app_id, "
	    "uploaded_at) VALUES ('b1', 'nope', '2026-01-01T00:00:00Z')",
	    NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_FOREIGN);

	/* the circular reference works once both rows exist */
	ck_assert_int_eq(insert_app(db, "a1", "one", NULL), 1);
	ck_assert_int_eq(db_exec(db, "INSERT INTO bundles (id, app_id, "
	    "uploaded_at) VALUES ('b1', 'a1', '2026-01-01T00:00:00Z')",
	    NULL, 0), 1);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET active_bundle = 'b1' "
	    "WHERE id = 'a1'", NULL, 0), 1);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET active_bundle = 'b9' "
	    "WHERE id = 'a1'", NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_FOREIGN);
	/* ON DELETE SET NULL */
	ck_assert_int_eq(db_exec(db, "DELETE FROM bundles WHERE id = 'b1'",
	    NULL, 0), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps WHERE "
	    "active_bundle IS NULL", NULL), 1);
	/* CHECK constraints are their own kind of error */
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET access_type = 'open'",
	    NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_CONSTRAINT);
	db_close(db);
}
END_TEST

START_TEST(t_unique_live_name)
{
	struct db	*db;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(insert_app(db, "a1", "dup", "2026-01-02T00:00:00Z"),
	    1);
	/* a soft-deleted app does not hold its name */
	ck_assert_int_eq(insert_app(db, "a2", "dup", NULL), 1);
	ck_assert_int_eq(insert_app(db, "a3", "dup", NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_UNIQUE);
	ck_assert_msg(strstr(db_error(db), "UNIQUE") != NULL, "%s",
	    db_error(db));
	ck_assert_int_eq(insert_app(db, "a2", "other", NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_UNIQUE);
	db_close(db);
}
END_TEST

START_TEST(t_transactions)
{
	struct db	*db;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(db_begin(db), 0);
	ck_assert_int_eq(db_begin(db), -1);	/* no nesting */
	ck_assert_int_eq(insert_app(db, "a1", "gone", NULL), 1);
	db_rollback(db);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps", NULL), 0);
	ck_assert_int_eq(db_begin(db), 0);
	ck_assert_int_eq(insert_app(db, "a1", "kept", NULL), 1);
	ck_assert_int_eq(db_commit(db), 0);
	ck_assert_int_eq(db_commit(db), -1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps", NULL), 1);
	db_close(db);
}
END_TEST

struct row_check {
	int	 rows;
	int	 ok;
};

static int
row_cb(const struct db_row *r, void *arg)
{
	struct row_check	*rc = arg;
	const void		*b;
	size_t			 len;

	rc->rows++;
	b = db_row_blob(r, 1, &len);
	rc->ok = db_row_ncols(r) == 5 &&
	    strcmp(db_row_text(r, 0), "t1") == 0 &&
	    len == 4 && memcmp(b, "\x00\x01\x02\xff", 4) == 0 &&
	    db_row_int(r, 2) == 7 &&
	    db_row_real(r, 3) == 1.5 &&
	    db_row_isnull(r, 4) && db_row_text(r, 4) == NULL &&
	    db_row_type(r, 2) == DB_T_INT && db_row_type(r, 3) == DB_T_REAL;
	return 0;
}

START_TEST(t_params_and_rows)
{
	struct db	*db;
	struct db_param	 p[3];
	struct row_check rc = { 0, 0 };
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(db_exec(db, "INSERT INTO users (sub, last_login) "
	    "VALUES ('u1', '2026-01-01T00:00:00Z')", NULL, 0), 1);
	p[0] = DB_PBLOB("\x00\x01\x02\xff", 4);
	p[1] = DB_PTEXT("t1");
	ck_assert_int_eq(db_exec(db, "INSERT INTO personal_access_tokens "
	    "(id, token_hash, user_sub, name, created_at) VALUES "
	    "($2, $1, 'u1', 'n', '2026-01-01T00:00:00Z')", p, 2), 1);
	/* $n may repeat and come in any order */
	p[0] = DB_PINT(7);
	p[1] = DB_PREAL(1.5);
	p[2] = DB_PTEXT("t1");
	ck_assert_int_eq(db_query(db, "SELECT id, token_hash, $1, $2, "
	    "expires_at FROM personal_access_tokens WHERE id = $3 AND "
	    "$1 = 7", p, 3, row_cb, &rc), 1);
	ck_assert_int_eq(rc.rows, 1);
	ck_assert(rc.ok);

	/* mistakes that PostgreSQL would reject are rejected here too */
	ck_assert_int_eq(db_query(db, "SELECT $1", p, 2, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT ?", p, 1, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT $2", p, 2, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT 1; SELECT 2", NULL, 0, NULL,
	    NULL), -1);
	ck_assert_msg(strstr(db_error(db), "more than one") != NULL, "%s",
	    db_error(db));
	ck_assert_int_eq(db_query(db, "SELEKT 1", NULL, 0, NULL, NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_OTHER);
	/* a read does not report the previous write's count */
	ck_assert_int_eq(db_exec(db, "SELECT 1", NULL, 0), 0);
	db_close(db);
}
END_TEST

START_TEST(t_ping)
{
	struct msgchan	 a, b;
	struct msg	 m;
	struct msg_int	 v;
	char		 err[512];
	int		 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	msgchan_init(&a, sv[0], PROC_PROXY, "byproxy");
	msgchan_init(&b, sv[1], PROC_STATE, "bystate");

	/* nothing open: the answer is "not ready", not silence */
	memset(&m, 0, sizeof(m));
	m.hdr.type = MSG_PING;
	m.hdr.peerid = 41;
	m.fd = -1;
	state_ping(&b, &m);
	ck_assert_int_eq(msg_flush_all(&b), 0);
	ck_assert_int_eq(msg_recv_blocking(&a, &m), 1);
	ck_assert_uint_eq(m.hdr.type, MSG_PONG);
	ck_assert_uint_eq(m.hdr.peerid, 41);
	ck_assert_uint_eq(m.datalen, sizeof(v));
	memcpy(&v, m.data, sizeof(v));
	ck_assert_int_eq(v.value, 0);
	msg_free(&m);

	ck_assert_msg(state_open("sqlite", dbpath, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(state_schema_version(), migrate_latest());
	ck_assert_int_eq(db_ping(state_handle()), 0);
	memset(&m, 0, sizeof(m));
	m.hdr.type = MSG_PING;
	m.hdr.peerid = 42;
	m.fd = -1;
	state_ping(&b, &m);
	ck_assert_int_eq(msg_flush_all(&b), 0);
	ck_assert_int_eq(msg_recv_blocking(&a, &m), 1);
	ck_assert_uint_eq(m.hdr.type, MSG_PONG);
	ck_assert_uint_eq(m.hdr.peerid, 42);
	memcpy(&v, m.data, sizeof(v));
	ck_assert_int_eq(v.value, 1);
	msg_free(&m);

	/* the table row that makes this win over the generic reply */
	ck_assert_uint_eq(state_proxy_handlers[0].type, MSG_PING);
	ck_assert_ptr_eq(state_proxy_handlers[0].fn, state_ping);

	state_close();
	ck_assert_int_eq(state_schema_version(), 0);
	ck_assert_int_eq(db_ping(state_handle()), -1);
	msgchan_clear(&a);
	msgchan_clear(&b);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(t_open_errors)
{
	char	 err[512], path[160];
	FILE	*f;

	ck_assert_ptr_null(db_open(DB_SQLITE, ":memory:", err, sizeof(err)));
	ck_assert_ptr_null(db_open(DB_POSTGRES, "postgres://x/y?bogus=1", err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, "postgres") != NULL, "%s", err);
	ck_assert_int_eq(state_open("mysql", dbpath, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "mysql") != NULL, "%s", err);

	/* a file that is not a database: the message names it */
	f = fopen(dbpath, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not an SQLite file, not even close, no sir\n", f);
	fclose(f);
	ck_assert_ptr_null(db_open(DB_SQLITE, dbpath, err, sizeof(err)));
	ck_assert_msg(strstr(err, dbpath) != NULL &&
	    strstr(err, "not a database") != NULL, "%s", err);

	snprintf(path, sizeof(path), "%s/missing/x.db", tmpdir);
	ck_assert_ptr_null(db_open(DB_SQLITE, path, err, sizeof(err)));
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
}
END_TEST

/* As an unprivileged user, a read-only directory is named in the error. */
START_TEST(t_unwritable_dir)
{
	char	 err[512];
	pid_t	 pid;
	int	 status;

	if (geteuid() != 0)
		return;
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	if ((pid = fork()) == 0) {
		if (setresgid(65534, 65534, 65534) == -1 ||
		    setresuid(65534, 65534, 65534) == -1)
			_exit(2);
		if (db_open(DB_SQLITE, dbpath, err, sizeof(err)) != NULL)
			_exit(3);
		_exit(strstr(err, "writable") != NULL &&
		    strstr(err, tmpdir) != NULL ? 0 : 4);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(t_prepare)
{
	struct stat	 st;
	char		 err[512], dir[128], path[160], link[160];
	int		 root = geteuid() == 0;
	FILE		*f;

	snprintf(dir, sizeof(dir), "%s/a/b", tmpdir);
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	ck_assert_msg(db_prepare(DB_SQLITE, path, 65534, 65534, root, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0750);
	if (!root)
		return;
	ck_assert_int_eq(st.st_uid, 65534);

	/* an existing directory keeps its owner; the files change hands */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(chown(dir, 0, 0), 0);
	ck_assert_msg(db_prepare(DB_SQLITE, path, 65534, 65534, 1, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_uid, 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_uid, 65534);
	ck_assert_int_eq(st.st_gid, 65534);

	/* never through a symbolic link */
	snprintf(link, sizeof(link), "%s/db.sqlite-wal", dir);
	ck_assert_int_eq(symlink("/etc/passwd", link), 0);
	ck_assert_int_eq(db_prepare(DB_SQLITE, path, 65534, 65534, 1, err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "symbolic link") != NULL, "%s", err);
	ck_assert_int_eq(stat("/etc/passwd", &st), 0);
	ck_assert_int_eq(st.st_uid, 0);
}
END_TEST

START_TEST(t_migration_table)
{
	size_t	 i;
	int	 d;
	char	 name[16];

	ck_assert_uint_gt(nmigrations, 0);
	for (i = 0; i < nmigrations; i++) {
		ck_assert_int_eq(migrations[i].version, (int)i + 1);
		snprintf(name, sizeof(name), "%03d_", migrations[i].version);
		ck_assert_msg(strncmp(migrations[i].name, name, 4) == 0,
		    "%s", migrations[i].name);
		/* every dialect in lockstep: a text, maybe empty, never NULL */
		for (d = 0; d < DB_NDRIVERS; d++)
			ck_assert_msg(migrations[i].sql[d] != NULL,
			    "%s has no %s text", migrations[i].name,
			    db_driver_name(d));
	}
	/* the PostgreSQL text keeps its types */
	ck_assert_ptr_nonnull(strstr(migrations[0].sql[DB_POSTGRES],
	    "token_hash BYTEA"));
	ck_assert_ptr_nonnull(strstr(migrations[0].sql[DB_POSTGRES],
	    "cpu_limit DOUBLE PRECISION"));
}
END_TEST

static Suite *
bystate_db_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("bystate_db");
	tc = tcase_create("sqlite");
	tcase_add_unchecked_fixture(tc, run_setup, run_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, t_fresh_schema);
	tcase_add_test(tc, t_reopen_is_noop);
	tcase_add_test(tc, t_newer_refused);
	tcase_add_test(tc, t_foreign_version_table);
	tcase_add_test(tc, t_wal_and_pragmas);
	tcase_add_test(tc, t_foreign_keys);
	tcase_add_test(tc, t_unique_live_name);
	tcase_add_test(tc, t_transactions);
	tcase_add_test(tc, t_params_and_rows);
	tcase_add_test(tc, t_ping);
	tcase_add_test(tc, t_open_errors);
	tcase_add_test(tc, t_unwritable_dir);
	tcase_add_test(tc, t_prepare);
	tcase_add_test(tc, t_migration_table);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	/* the warnings some tests provoke are expected */
	log_setlevel(LOG_LVL_ERROR);
	sr = srunner_create(bystate_db_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
