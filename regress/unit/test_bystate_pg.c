/*
 * bystate's database layer against a real PostgreSQL server that this
 * test starts itself: initdb into a temporary directory, pg_ctl start
 * listening only on a Unix socket in that directory, one database per
 * test.  The same kinds of assertions as test_bystate_db.c, plus what
 * only a server has: lost connections, lock timeouts, concurrent
 * migrations.
 *
 * As root, initdb and pg_ctl run as the postgres user (initdb refuses
 * root).  A guardian process stops the cluster and removes the directory
 * when this program ends, however it ends.  No initdb is a failure, not
 * a skip: etc/install-deps installs postgresql.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <check.h>
#include <libpq-fe.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "bystate.h"

#define PG_PORT		5432	/* socket only, in our own dir */

static char	 pgbin[256];	/* directory of initdb and pg_ctl */
static char	 pgroot[64];		/* data, socket and logs */
static char	 pgdata[128];
static char	 cluster_err[1024];	/* why there is no cluster */
static uid_t	 pg_uid;
static gid_t	 pg_gid;
static int	 as_postgres;
static int	 guard_fd = -1;
static pid_t	 guard_pid = -1;

static char	 dbname[64];		/* this test's database */
static char	 dburl[256];
static char	 sqlitedir[96];

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

/* ---- the throwaway cluster ---------------------------------------------- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* The newest /usr/lib/postgresql/N/bin, or $BYSTATE_PGBIN. */
static int
find_pgbin(void)
{
	glob_t		 g;
	const char	*env;
	size_t		 i;
	long		 v, best = -1;
	char		*end;

	if ((env = getenv("BYSTATE_PGBIN")) != NULL) {
		strlcpy(pgbin, env, sizeof(pgbin));
		return 0;
	}
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
		return -1;
	for (i = 0; i < g.gl_pathc; i++) {
		v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"),
		    &end, 10);
		if (v > best) {
			best = v;
			strlcpy(pgbin, g.gl_pathv[i], sizeof(pgbin));
			*strrchr(pgbin, '/') = '\0';
		}
	}
	globfree(&g);
	return best >= 0 ? 0 : -1;
}

/* Run a PostgreSQL program as the cluster's owner, output to cmd.log. */
static int
pg_run(const char *prog, const char *const args[])
{
	const char	*argv[16];
	char		 path[300], log[128];
	pid_t		 pid;
	size_t		 i;
	int		 status, fd;

	snprintf(path, sizeof(path), "%s/%s", pgbin, prog);
	snprintf(log, sizeof(log), "%s/cmd.log", pgroot);
	argv[0] = path;
	for (i = 0; args[i] != NULL && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644)) ==
		    -1 || dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
			_exit(126);
		if (as_postgres && (initgroups("postgres", pg_gid) == -1 ||
		    setresgid(pg_gid, pg_gid, pg_gid) == -1 ||
		    setresuid(pg_uid, pg_uid, pg_uid) == -1))
			_exit(126);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void
cmd_log_tail(char *buf, size_t len)
{
	char	 path[128];
	FILE	*f;
	long	 sz;
	size_t	 n;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/cmd.log", pgroot);
	if ((f = fopen(path, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, sz > (long)len - 1 ? sz - (long)len + 1 : 0, SEEK_SET);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static int
cluster_start(void)
{
	char		 opts[256], log[128];
	const char	*args[] = { "-D", pgdata, "-l", log, "-o", opts, "-w",
	    "-t", "30", "start", NULL };

	snprintf(log, sizeof(log), "%s/server.log", pgroot);
	snprintf(opts, sizeof(opts), "-c listen_addresses= -p %d -k %s "
	    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
	    PG_PORT, pgroot);
	return pg_run("pg_ctl", args);
}

static int
cluster_stop(void)
{
	const char	*args[] = { "-D", pgdata, "-m", "fast", "-w", "stop",
	    NULL };

	return pg_run("pg_ctl", args);
}

/*
 * Waits for the write end of a pipe to close, which happens when the
 * test program exits for whatever reason, then removes the cluster.
 */
static void
guardian(int fd)
{
	const char	*args[] = { "-D", pgdata, "-m", "immediate", "-w",
	    "stop", NULL };
	char		 c;

	setsid();
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	while (read(fd, &c, 1) == -1 && errno == EINTR)
		;
	pg_run("pg_ctl", args);
	nftw(pgroot, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	_exit(0);
}

static void
cluster_setup(void)
{
	struct passwd	*pw;
	char		 initdb[300], tail[600];
	const char	*args[] = { "-D", pgdata, "-A", "trust", "-U", "test",
	    "--no-sync", "-E", "UTF8", "--locale=C.UTF-8", NULL };
	int		 p[2];

	if (find_pgbin() == -1) {
		snprintf(cluster_err, sizeof(cluster_err), "no PostgreSQL "
		    "server programs in /usr/lib/postgresql/*/bin (set "
		    "BYSTATE_PGBIN, or run etc/install-deps: package "
		    "postgresql)");
		return;
	}
	snprintf(initdb, sizeof(initdb), "%s/initdb", pgbin);
	if (access(initdb, X_OK) == -1) {
		snprintf(cluster_err, sizeof(cluster_err), "%s: %s (run "
		    "etc/install-deps: package postgresql)", initdb,
		    strerror(errno));
		return;
	}
	if ((as_postgres = geteuid() == 0)) {
		if ((pw = getpwnam("postgres")) == NULL) {
			snprintf(cluster_err, sizeof(cluster_err), "running "
			    "as root, but there is no postgres user to run "
			    "initdb as");
			return;
		}
		pg_uid = pw->pw_uid;
		pg_gid = pw->pw_gid;
	}
	strlcpy(pgroot, "/tmp/bystate-pg.XXXXXX", sizeof(pgroot));
	if (mkdtemp(pgroot) == NULL) {
		snprintf(cluster_err, sizeof(cluster_err), "mkdtemp: %s",
		    strerror(errno));
		pgroot[0] = '\0';
		return;
	}
	snprintf(pgdata, sizeof(pgdata), "%s/data", pgroot);
	snprintf(sqlitedir, sizeof(sqlitedir), "%s/sqlite", pgroot);
	/* 0755: the socket lives here and other users may connect */
	if (chmod(pgroot, 0755) == -1 || (as_postgres &&
	    chown(pgroot, pg_uid, pg_gid) == -1) ||
	    mkdir(sqlitedir, 0700) == -1) {
		snprintf(cluster_err, sizeof(cluster_err), "%s: %s", pgroot,
		    strerror(errno));
		return;
	}
	if (pipe2(p, O_CLOEXEC) == -1 || (guard_pid = fork()) == -1) {
		snprintf(cluster_err, sizeof(cluster_err), "guardian: %s",
		    strerror(errno));
		return;
	}
	if (guard_pid == 0) {
		close(p[1]);
		guardian(p[0]);
	}
	close(p[0]);
	guard_fd = p[1];

	if (pg_run("initdb", args) == -1) {
		cmd_log_tail(tail, sizeof(tail));
		snprintf(cluster_err, sizeof(cluster_err), "initdb failed: "
		    "%s", tail);
		return;
	}
	if (cluster_start() == -1) {
		cmd_log_tail(tail, sizeof(tail));
		snprintf(cluster_err, sizeof(cluster_err), "pg_ctl start "
		    "failed: %s", tail);
		return;
	}
}

static void
cluster_teardown(void)
{
	int	 status;

	if (pgdata[0] != '\0')
		cluster_stop();
	if (guard_fd != -1)
		close(guard_fd);	/* the guardian removes the directory */
	if (guard_pid > 0)
		waitpid(guard_pid, &status, 0);
	else if (pgroot[0] != '\0')
		nftw(pgroot, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
make_url(char *buf, size_t len, const char *db)
{
	snprintf(buf, len, "postgresql:///%s?host=%s&port=%d&user=test", db,
	    pgroot, PG_PORT);
}

/* A plain libpq connection, for what the test does behind bystate. */
static PGconn *
admin_conn(const char *db)
{
	char	 url[256];
	PGconn	*c;

	make_url(url, sizeof(url), db);
	c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", url,
	    PQerrorMessage(c));
	return c;
}

static void
admin_exec(PGconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
admin_exec(PGconn *c, const char *fmt, ...)
{
	va_list		 ap;
	char		 sql[512];
	PGresult	*res;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
	    PQresultErrorMessage(res));
	PQclear(res);
}

/* One fresh database per test. */
static void
setup(void)
{
	PGconn	*c;
	char	 url[256];

	ck_assert_msg(cluster_err[0] == '\0', "no PostgreSQL cluster: %s",
	    cluster_err);
	snprintf(dbname, sizeof(dbname), "t%ld_%ld", (long)getpid(),
	    (long)time(NULL));
	make_url(dburl, sizeof(dburl), dbname);
	/* a failed t_server_restart may have left it stopped */
	make_url(url, sizeof(url), "postgres");
	if (PQping(url) == PQPING_NO_RESPONSE)
		cluster_start();
	c = admin_conn("postgres");
	admin_exec(c, "CREATE DATABASE %s", dbname);
	PQfinish(c);
}

static void
teardown(void)
{
	PGconn	*c;

	state_close();
	c = admin_conn("postgres");
	admin_exec(c, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
	PQfinish(c);
}

/* ---- helpers ------------------------------------------------------------ */

static struct db *
open_db(void)
{
	struct db	*db;
	char		 err[512];

	db = db_open(DB_POSTGRES, dburl, err, sizeof(err));
	ck_assert_msg(db != NULL, "open: %s", err);
	return db;
}

static struct db *
open_migrated(int *version, int *applied)
{
	struct db	*db;

	db = open_db();
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

static int64_t
backend_pid(struct db *db)
{
	int64_t	 pid = -1;

	ck_assert_msg(db_query_int(db, "SELECT pg_backend_pid()", NULL, 0,
	    &pid) == 1, "%s", db_error(db));
	return pid;
}

/* End a session from outside, and wait until it is gone. */
static void
terminate(int64_t pid)
{
	PGconn		*c;
	PGresult	*res;
	char		 sql[128];
	int		 i, gone = 0;

	c = admin_conn("postgres");
	admin_exec(c, "SELECT pg_terminate_backend(%lld)", (long long)pid);
	snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_stat_activity WHERE "
	    "pid = %lld", (long long)pid);
	for (i = 0; i < 200 && !gone; i++) {
		res = PQexec(c, sql);
		gone = PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQntuples(res) == 0;
		PQclear(res);
		if (!gone)
			usleep(10000);
	}
	PQfinish(c);
	ck_assert_msg(gone, "backend %lld still there", (long long)pid);
}

/* Rows of a one-text-column query, each as one string, sorted. */
struct rowlist {
	char	**v;
	size_t	  n;
};

static int
rowlist_row(const struct db_row *r, void *arg)
{
	struct rowlist	*l = arg;
	char		 buf[512] = "", *s;
	int		 i;

	for (i = 0; i < db_row_ncols(r); i++) {
		if (i > 0)
			strlcat(buf, "|", sizeof(buf));
		strlcat(buf, db_row_isnull(r, i) ? "NULL" : db_row_text(r, i),
		    sizeof(buf));
	}
	l->v = reallocarray(l->v, l->n + 1, sizeof(*l->v));
	ck_assert_ptr_nonnull(l->v);
	s = strdup(buf);
	ck_assert_ptr_nonnull(s);
	l->v[l->n++] = s;
	return 0;
}

static int
strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
rowlist_get(struct db *db, const char *sql, struct rowlist *l)
{
	memset(l, 0, sizeof(*l));
	ck_assert_msg(db_query(db, sql, NULL, 0, rowlist_row, l) >= 0,
	    "%s: %s", sql, db_error(db));
	qsort(l->v, l->n, sizeof(*l->v), strcmp_p);
}

static void
rowlist_same(const char *what, struct rowlist *a, struct rowlist *b)
{
	size_t	 i;

	for (i = 0; i < a->n && i < b->n; i++)
		ck_assert_msg(strcmp(a->v[i], b->v[i]) == 0,
		    "%s differ: sqlite %s, postgres %s", what, a->v[i],
		    b->v[i]);
	ck_assert_msg(a->n == b->n, "%s: sqlite has %zu, postgres %zu "
	    "(first extra: %s)", what, a->n, b->n, a->n > b->n ?
	    a->v[b->n] : b->v[a->n]);
	ck_assert_uint_gt(a->n, 0);
}

static void
rowlist_free(struct rowlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(t_fresh_schema)
{
	struct db	*db;
	size_t		 i;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(version, migrate_latest());
	ck_assert_int_eq(applied, (int)nmigrations);
	ck_assert_int_eq(migrate_current(db), migrate_latest());
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		ck_assert_msg(count(db, "SELECT count(*) FROM pg_tables WHERE "
		    "schemaname = current_schema() AND tablename = $1",
		    tables[i]) == 1, "table %s missing", tables[i]);
	for (i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++)
		ck_assert_msg(count(db, "SELECT count(*) FROM pg_indexes WHERE "
		    "schemaname = current_schema() AND indexname = $1",
		    indexes[i]) == 1, "index %s missing", indexes[i]);
	/* the default schema: public, unless the URL says otherwise */
	ck_assert_int_eq(count(db, "SELECT count(*) FROM pg_tables WHERE "
	    "schemaname = 'public' AND tablename = 'apps'", NULL), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM schema_migrations "
	    "WHERE version = 1 AND name = '001_initial' AND applied_at ~ "
	    "'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'",
	    NULL), 1);
	/* the types the dialects differ in */
	ck_assert_int_eq(count(db, "SELECT count(*) FROM "
	    "information_schema.columns WHERE table_name = "
	    "'personal_access_tokens' AND column_name = 'token_hash' AND "
	    "data_type = 'bytea'", NULL), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM "
	    "information_schema.columns WHERE table_name = 'apps' AND "
	    "column_name = 'cpu_limit' AND data_type = 'double precision'",
	    NULL), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM "
	    "information_schema.columns WHERE table_name = 'apps' AND "
	    "column_name = 'created_at' AND data_type = 'text'", NULL), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM pg_indexes WHERE "
	    "indexname = 'idx_apps_name_live' AND indexdef LIKE "
	    "'CREATE UNIQUE INDEX%WHERE (deleted_at IS NULL)'", NULL), 1);
	ck_assert_int_ge(db_exec(db, "INSERT INTO blockyard_workers (id) "
	    "VALUES ('w1')", NULL, 0), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM blockyard_workers "
	    "WHERE started_at > now() - interval '1 minute'", NULL), 1);
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

	/* and through the process-level entry point */
	{
		char	 err[512];

		ck_assert_msg(state_open("postgres", dburl, err,
		    sizeof(err)) == 0, "%s", err);
		ck_assert_int_eq(state_schema_version(), migrate_latest());
		state_close();
	}
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

	db = open_db();
	ck_assert_int_eq(migrate_up(db, &version, &applied), -1);
	ck_assert_msg(strstr(db_error(db), "newer") != NULL, "%s",
	    db_error(db));
	db_close(db);

	ck_assert_int_eq(state_open("postgres", dburl, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, dbname) != NULL &&
	    strstr(err, "version 99") != NULL, "%s", err);
	ck_assert_ptr_null(state_handle());
	ck_assert_int_eq(state_schema_version(), 0);
}
END_TEST

START_TEST(t_foreign_version_table)
{
	struct db	*db;
	int		 version, applied;

	/* golang-migrate's layout on PostgreSQL */
	db = open_db();
	ck_assert_int_eq(db_exec_script(db, "CREATE TABLE schema_migrations "
	    "(version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"),
	    0);
	ck_assert_int_eq(migrate_up(db, &version, &applied), -1);
	ck_assert_msg(strstr(db_error(db), "schema_migrations") != NULL,
	    "%s", db_error(db));
	ck_assert_int_eq(count(db, "SELECT count(*) FROM pg_tables WHERE "
	    "tablename = 'apps'", NULL), 0);
	db_close(db);
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

	ck_assert_int_eq(insert_app(db, "a1", "one", NULL), 1);
	ck_assert_int_eq(db_exec(db, "INSERT INTO bundles (id, app_id, "
	    "uploaded_at) VALUES ('b1', 'a1', '2026-01-01T00:00:00Z')",
	    NULL, 0), 1);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET active_bundle = 'b1' "
	    "WHERE id = 'a1'", NULL, 0), 1);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET active_bundle = 'b9' "
	    "WHERE id = 'a1'", NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_FOREIGN);
	/* ON DELETE SET NULL, through the constraint added by ALTER */
	ck_assert_int_eq(db_exec(db, "DELETE FROM bundles WHERE id = 'b1'",
	    NULL, 0), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps WHERE "
	    "active_bundle IS NULL", NULL), 1);
	/* a referenced app cannot go while its bundles stay */
	ck_assert_int_eq(db_exec(db, "INSERT INTO bundles (id, app_id, "
	    "uploaded_at) VALUES ('b2', 'a1', '2026-01-01T00:00:00Z')",
	    NULL, 0), 1);
	ck_assert_int_eq(db_exec(db, "DELETE FROM apps WHERE id = 'a1'",
	    NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_FOREIGN);
	/* ON DELETE CASCADE */
	ck_assert_int_eq(db_exec(db, "INSERT INTO app_tags VALUES ('a1', "
	    "'t1')", NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_FOREIGN);
	/* CHECK and NOT NULL are their own kind of error */
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET access_type = 'open'",
	    NULL, 0), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_CONSTRAINT);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET name = NULL", NULL, 0),
	    -1);
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
	ck_assert_int_eq(insert_app(db, "a2", "dup", NULL), 1);
	ck_assert_int_eq(insert_app(db, "a3", "dup", NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_UNIQUE);
	ck_assert_msg(strstr(db_error(db), "unique") != NULL &&
	    strstr(db_error(db), "23505") != NULL, "%s", db_error(db));
	/* the message leaves the row's values out */
	ck_assert_msg(strstr(db_error(db), "(name)=") == NULL, "%s",
	    db_error(db));
	ck_assert_int_eq(insert_app(db, "a2", "other", NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_UNIQUE);
	/* restoring the deleted one would take the name twice */
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET deleted_at = NULL "
	    "WHERE id = 'a1'", NULL, 0), -1);
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

	/* as in SQLite, a failed statement does not doom the transaction */
	ck_assert_int_eq(db_begin(db), 0);
	ck_assert_int_eq(insert_app(db, "a2", "two", NULL), 1);
	ck_assert_int_eq(insert_app(db, "a3", "kept", NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_UNIQUE);
	ck_assert_int_eq(db_query(db, "SELEKT", NULL, 0, NULL, NULL), -1);
	ck_assert_int_eq(insert_app(db, "a3", "three", NULL), 1);
	ck_assert_int_eq(db_commit(db), 0);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps", NULL), 3);

	/* a failing COMMIT (deferred constraint) leaves no transaction */
	ck_assert_int_eq(db_exec_script(db, "CREATE TABLE d (x INTEGER "
	    "UNIQUE DEFERRABLE INITIALLY DEFERRED)"), 0);
	ck_assert_int_eq(db_begin(db), 0);
	ck_assert_int_eq(db_exec(db, "INSERT INTO d VALUES (1), (1)", NULL,
	    0), 2);
	ck_assert_int_eq(db_commit(db), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_UNIQUE);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d", NULL), 0);
	ck_assert_int_eq(db_begin(db), 0);
	db_rollback(db);
	db_close(db);
}
END_TEST

struct row_check {
	int	 rows;
	int	 ok;
	char	 why[128];
};

#define ROW_EXPECT(rc, cond) do {					\
	if ((rc)->ok && !(cond)) {					\
		(rc)->ok = 0;						\
		strlcpy((rc)->why, #cond, sizeof((rc)->why));		\
	}								\
} while (0)

static int
row_cb(const struct db_row *r, void *arg)
{
	struct row_check	*rc = arg;
	const void		*b;
	size_t			 len;

	rc->rows++;
	rc->ok = 1;
	b = db_row_blob(r, 1, &len);
	ROW_EXPECT(rc, db_row_ncols(r) == 5);
	ROW_EXPECT(rc, strcmp(db_row_text(r, 0), "t1") == 0);
	ROW_EXPECT(rc, db_row_type(r, 1) == DB_T_BLOB);
	ROW_EXPECT(rc, len == 4 && memcmp(b, "\x00\x01\x02\xff", 4) == 0);
	/* asked twice, the same decoded bytes */
	ROW_EXPECT(rc, db_row_blob(r, 1, &len) == b);
	ROW_EXPECT(rc, db_row_int(r, 2) == 7);
	ROW_EXPECT(rc, db_row_real(r, 3) == 1.5);
	ROW_EXPECT(rc, db_row_isnull(r, 4) && db_row_text(r, 4) == NULL);
	ROW_EXPECT(rc, db_row_type(r, 2) == DB_T_INT);
	ROW_EXPECT(rc, db_row_type(r, 3) == DB_T_REAL);
	ROW_EXPECT(rc, db_row_type(r, 0) == DB_T_TEXT);
	return 0;
}

static const char utf8[] = "gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93";
static const char sqlish[] = "x'); DROP TABLE apps; -- \\ \" $1 %s";

/* Every parameter type comes back as it went in. */
static int
types_cb(const struct db_row *r, void *arg)
{
	struct row_check	*rc = arg;
	const void		*b;
	size_t			 len;

	rc->rows++;
	rc->ok = 1;
	ROW_EXPECT(rc, db_row_ncols(r) == 12);
	ROW_EXPECT(rc, db_row_type(r, 0) == DB_T_INT);
	ROW_EXPECT(rc, db_row_int(r, 0) == INT64_MIN);
	ROW_EXPECT(rc, db_row_int(r, 1) == INT64_MAX);
	ROW_EXPECT(rc, db_row_type(r, 2) == DB_T_REAL);
	ROW_EXPECT(rc, db_row_real(r, 2) == 0.1);
	ROW_EXPECT(rc, db_row_real(r, 3) == 1e300);
	ROW_EXPECT(rc, db_row_real(r, 4) == -2.5e-310);
	ROW_EXPECT(rc, db_row_type(r, 5) == DB_T_TEXT);
	ROW_EXPECT(rc, strcmp(db_row_text(r, 5), utf8) == 0);
	ROW_EXPECT(rc, strcmp(db_row_text(r, 6), sqlish) == 0);
	/* the empty string is text, not NULL */
	ROW_EXPECT(rc, db_row_type(r, 7) == DB_T_TEXT);
	ROW_EXPECT(rc, strcmp(db_row_text(r, 7), "") == 0);
	b = db_row_blob(r, 8, &len);
	ROW_EXPECT(rc, db_row_type(r, 8) == DB_T_BLOB);
	ROW_EXPECT(rc, len == 5 && memcmp(b, "\0a\0\0b", 5) == 0);
	/* the empty blob is a blob, not NULL */
	b = db_row_blob(r, 9, &len);
	ROW_EXPECT(rc, db_row_type(r, 9) == DB_T_BLOB && len == 0);
	ROW_EXPECT(rc, db_row_type(r, 10) == DB_T_NULL);
	ROW_EXPECT(rc, db_row_blob(r, 10, &len) == NULL && len == 0);
	ROW_EXPECT(rc, db_row_type(r, 11) == DB_T_NULL);
	return 0;
}

/* Column types of the server's own types. */
static int
oids_cb(const struct db_row *r, void *arg)
{
	struct row_check	*rc = arg;

	rc->rows++;
	rc->ok = 1;
	ROW_EXPECT(rc, db_row_type(r, 0) == DB_T_INT &&
	    db_row_int(r, 0) == 7);				/* int2 */
	ROW_EXPECT(rc, db_row_type(r, 1) == DB_T_INT &&
	    db_row_int(r, 1) == -8);				/* int4 */
	ROW_EXPECT(rc, db_row_type(r, 2) == DB_T_INT &&
	    db_row_int(r, 2) == 1 && strcmp(db_row_text(r, 2), "1") == 0);
	ROW_EXPECT(rc, db_row_type(r, 3) == DB_T_INT &&
	    db_row_int(r, 3) == 0 && db_row_real(r, 3) == 0);	/* false */
	/* numeric, float4 */
	ROW_EXPECT(rc, db_row_type(r, 4) == DB_T_REAL &&
	    db_row_real(r, 4) == 1.25);
	ROW_EXPECT(rc, db_row_type(r, 5) == DB_T_REAL &&
	    db_row_real(r, 5) == 0.5);
	ROW_EXPECT(rc, db_row_type(r, 6) == DB_T_TEXT &&
	    strcmp(db_row_text(r, 6), "2026-01-02 03:04:05+00") == 0);
	/* uuid; text that reads as a number */
	ROW_EXPECT(rc, db_row_type(r, 7) == DB_T_TEXT);
	ROW_EXPECT(rc, db_row_int(r, 8) == 42);
	return 0;
}

static int
stop_cb(const struct db_row *r, void *arg)
{
	(*(int *)arg)++;
	return 1;
}

START_TEST(t_params_and_rows)
{
	struct db	*db;
	struct db_param	 p[12];
	struct row_check rc = { 0, 0, "" };
	int		 version, applied, n = 0;

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
	ck_assert_msg(rc.ok, "%s", rc.why);
	/* a blob compares as bytes, as the token lookup does */
	{
		int64_t	 got = 0;

		p[0] = DB_PBLOB("\x00\x01\x02\xff", 4);
		ck_assert_int_eq(db_query_int(db, "SELECT count(*) FROM "
		    "personal_access_tokens WHERE token_hash = $1", p, 1,
		    &got), 1);
		ck_assert_int_eq(got, 1);
		p[0] = DB_PBLOB("\x00\x01\x02", 3);
		ck_assert_int_eq(db_query_int(db, "SELECT count(*) FROM "
		    "personal_access_tokens WHERE token_hash = $1", p, 1,
		    &got), 1);
		ck_assert_int_eq(got, 0);
	}

	memset(&rc, 0, sizeof(rc));
	p[0] = DB_PINT(INT64_MIN);
	p[1] = DB_PINT(INT64_MAX);
	p[2] = DB_PREAL(0.1);
	p[3] = DB_PREAL(1e300);
	p[4] = DB_PREAL(-2.5e-310);
	p[5] = DB_PTEXT(utf8);
	p[6] = DB_PTEXT(sqlish);
	p[7] = DB_PTEXT("");
	p[8] = DB_PBLOB("\0a\0\0b", 5);
	p[9] = DB_PBLOB(NULL, 0);
	p[10] = DB_PNULL();
	p[11] = DB_PTEXT(NULL);
	ck_assert_int_eq(db_query(db, "SELECT $1, $2, $3, $4, $5, $6, $7, "
	    "$8, $9, $10, $11, $12", p, 12, types_cb, &rc), 1);
	ck_assert_msg(rc.ok, "%s", rc.why);

	/* through a table, in the columns' own types */
	ck_assert_int_eq(db_exec_script(db, "CREATE TABLE rt (a BIGINT, "
	    "b BIGINT, c DOUBLE PRECISION, d DOUBLE PRECISION, "
	    "e DOUBLE PRECISION, f TEXT, g TEXT, h TEXT, i BYTEA, j BYTEA, "
	    "k INTEGER, l TEXT)"), 0);
	ck_assert_int_eq(db_exec(db, "INSERT INTO rt VALUES ($1, $2, $3, $4, "
	    "$5, $6, $7, $8, $9, $10, $11, $12)", p, 12), 1);
	memset(&rc, 0, sizeof(rc));
	ck_assert_int_eq(db_query(db, "SELECT * FROM rt", NULL, 0, types_cb,
	    &rc), 1);
	ck_assert_msg(rc.ok, "%s", rc.why);
	/* the other text form of bytea: the escape format */
	ck_assert_int_eq(db_exec_script(db, "SET bytea_output = 'escape'"),
	    0);
	memset(&rc, 0, sizeof(rc));
	ck_assert_int_eq(db_query(db, "SELECT * FROM rt", NULL, 0, types_cb,
	    &rc), 1);
	ck_assert_msg(rc.ok, "%s", rc.why);
	ck_assert_int_eq(db_exec_script(db, "RESET bytea_output"), 0);
	/* a number is no blob: an error, not a guess */
	p[0] = DB_PREAL(1.5);
	ck_assert_int_eq(db_exec(db, "UPDATE rt SET i = $1", p, 1), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_OTHER);

	ck_assert_int_eq(db_exec_script(db, "SET TIME ZONE 'UTC'"), 0);
	memset(&rc, 0, sizeof(rc));
	ck_assert_int_eq(db_query(db, "SELECT 7::int2, -8::int4, true, "
	    "false, 1.25::numeric, 0.5::float4, "
	    "'2026-01-02T03:04:05Z'::timestamptz, gen_random_uuid(), '42'",
	    NULL, 0, oids_cb, &rc), 1);
	ck_assert_msg(rc.ok, "%s", rc.why);

	/* placeholders in literals, identifiers and comments do not count */
	p[0] = DB_PTEXT("v");
	ck_assert_int_eq(db_query(db, "SELECT '$2', $1, \"$3\" FROM "
	    "(SELECT 1 AS \"$3\") s /* $4 /* $5 */ */ -- $6\n"
	    "WHERE $$ $7 $$ <> $a$ $8 $a$ AND E'\\' $9' <> ''", p, 1, NULL,
	    NULL), 1);

	/* the callback may stop early */
	ck_assert_int_eq(db_query(db, "SELECT generate_series(1, 5)", NULL,
	    0, stop_cb, &n), 1);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(db_query(db, "SELECT generate_series(1, 5)", NULL,
	    0, NULL, NULL), 5);

	/* mistakes the SQLite driver rejects are rejected here too */
	p[0] = DB_PINT(1);
	p[1] = DB_PINT(2);
	ck_assert_int_eq(db_query(db, "SELECT $1", p, 2, NULL, NULL), -1);
	ck_assert_msg(strstr(db_error(db), "$2") != NULL, "%s", db_error(db));
	ck_assert_int_eq(db_query(db, "SELECT ?", p, 1, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT $2", p, 2, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT $3", p, 2, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT $0", NULL, 0, NULL, NULL), -1);
	ck_assert_int_eq(db_query(db, "SELECT 1; SELECT 2", NULL, 0, NULL,
	    NULL), -1);
	ck_assert_int_eq(db_query(db, "SELEKT 1", NULL, 0, NULL, NULL), -1);
	ck_assert_int_eq(db_errcode(db), DB_E_OTHER);
	ck_assert_msg(strstr(db_error(db), "42601") != NULL, "%s",
	    db_error(db));
	db_close(db);
}
END_TEST

START_TEST(t_changes)
{
	struct db	*db;
	int		 version, applied, n = 0;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(insert_app(db, "a1", "one", NULL), 1);
	ck_assert_int_eq(insert_app(db, "a2", "two", NULL), 1);
	ck_assert_int_eq(insert_app(db, "a3", "three", NULL), 1);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET title = 'x'", NULL, 0),
	    3);
	ck_assert_int_eq(db_exec(db, "UPDATE apps SET title = 'y' WHERE "
	    "id = 'none'", NULL, 0), 0);
	ck_assert_int_eq(db_exec(db, "DELETE FROM apps WHERE id <> 'a1'",
	    NULL, 0), 2);
	/* a read does not report the previous write's count */
	ck_assert_int_eq(db_exec(db, "SELECT 1", NULL, 0), 0);
	ck_assert_int_eq(db_exec(db, "SELECT * FROM apps", NULL, 0), 0);
	ck_assert_int_eq(db_query(db, "INSERT INTO tags VALUES ('t1', 'x', "
	    "'2026-01-01T00:00:00Z') RETURNING id", NULL, 0, stop_cb, &n), 1);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(db_exec(db, "INSERT INTO tags VALUES ('t2', 'x', "
	    "'2026-01-01T00:00:00Z') ON CONFLICT DO NOTHING", NULL, 0), 0);
	ck_assert_int_eq(db_exec(db, "CREATE TABLE c (x INTEGER)", NULL, 0),
	    0);
	db_close(db);
}
END_TEST

START_TEST(t_busy)
{
	struct db	*a, *b;
	int		 version, applied;

	a = open_migrated(&version, &applied);
	b = open_db();
	ck_assert_int_eq(insert_app(a, "a1", "one", NULL), 1);
	ck_assert_int_eq(db_begin(a), 0);
	ck_assert_int_eq(db_exec(a, "UPDATE apps SET title = 'a'", NULL, 0),
	    1);
	/* the row is locked by a's transaction */
	ck_assert_int_eq(db_exec_script(b, "SET lock_timeout = '50ms'"), 0);
	ck_assert_int_eq(db_exec(b, "UPDATE apps SET title = 'b'", NULL, 0),
	    -1);
	ck_assert_int_eq(db_errcode(b), DB_E_BUSY);
	ck_assert_msg(strstr(db_error(b), "55P03") != NULL, "%s",
	    db_error(b));
	ck_assert_int_eq(db_commit(a), 0);
	ck_assert_int_eq(db_exec(b, "UPDATE apps SET title = 'b'", NULL, 0),
	    1);
	db_close(a);
	db_close(b);
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

	ck_assert_msg(state_open("postgres", dburl, err, sizeof(err)) == 0,
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

	state_close();
	ck_assert_int_eq(db_ping(state_handle()), -1);
	msgchan_clear(&a);
	msgchan_clear(&b);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* A session ended by the server is made again, unnoticed. */
START_TEST(t_reconnect)
{
	struct db	*db;
	int64_t		 pid, pid2;
	int		 version, applied;

	db = open_migrated(&version, &applied);
	pid = backend_pid(db);
	terminate(pid);
	ck_assert_int_eq(insert_app(db, "a1", "one", NULL), 1);
	pid2 = backend_pid(db);
	ck_assert_int_ne(pid, pid2);
	terminate(pid2);
	ck_assert_int_eq(db_ping(db), 0);

	/* inside a transaction the work is lost: said, never hidden */
	ck_assert_int_eq(db_begin(db), 0);
	ck_assert_int_eq(insert_app(db, "a2", "two", NULL), 1);
	terminate(backend_pid(db));
	ck_assert_int_eq(insert_app(db, "a3", "three", NULL), -1);
	ck_assert_int_eq(insert_app(db, "a4", "four", NULL), -1);
	ck_assert_msg(strstr(db_error(db), "transaction") != NULL, "%s",
	    db_error(db));
	ck_assert_int_eq(db_commit(db), -1);
	/* and afterwards the connection is back */
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps", NULL), 1);
	ck_assert_int_eq(db_begin(db), 0);
	terminate(backend_pid(db));
	db_rollback(db);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM apps", NULL), 1);
	db_close(db);
}
END_TEST

/* The server goes down and comes back: ping says so both times. */
START_TEST(t_server_restart)
{
	struct db	*db;
	int		 version, applied, i;

	db = open_migrated(&version, &applied);
	ck_assert_int_eq(db_ping(db), 0);
	ck_assert_int_eq(cluster_stop(), 0);
	ck_assert_int_eq(db_ping(db), -1);
	ck_assert_msg(strstr(db_error(db), dbname) != NULL, "%s",
	    db_error(db));
	ck_assert_int_eq(db_ping(db), -1);	/* not retried at once */
	ck_assert_msg(strstr(db_error(db), "not connected") != NULL, "%s",
	    db_error(db));
	ck_assert_int_eq(cluster_start(), 0);
	for (i = 0; i < 300 && db_ping(db) == -1; i++)
		usleep(10000);
	ck_assert_msg(db_ping(db) == 0, "%s", db_error(db));
	ck_assert_int_eq(insert_app(db, "a1", "one", NULL), 1);
	db_close(db);
}
END_TEST

/* Two servers start at once on a fresh database: one migrates. */
START_TEST(t_concurrent_migrate)
{
	struct db	*db;
	pid_t		 pids[6];
	char		 c, err[512];
	size_t		 i;
	int		 p[2], status, version, applied;

	ck_assert_int_eq(pipe(p), 0);
	for (i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			close(p[1]);
			/* all at once: wait for the pipe to close */
			while (read(p[0], &c, 1) == -1 && errno == EINTR)
				;
			db = db_open(DB_POSTGRES, dburl, err, sizeof(err));
			if (db == NULL)
				_exit(2);
			if (migrate_up(db, &version, &applied) == -1) {
				fprintf(stderr, "child: %s\n", db_error(db));
				_exit(3);
			}
			db_close(db);
			_exit(version == migrate_latest() ? 10 + applied : 4);
		}
	}
	close(p[0]);
	close(p[1]);
	applied = 0;
	for (i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status));
		ck_assert_int_ge(WEXITSTATUS(status), 10);
		applied += WEXITSTATUS(status) - 10;
	}
	ck_assert_int_eq(applied, (int)nmigrations);
	db = open_db();
	ck_assert_int_eq(count(db, "SELECT count(*) FROM schema_migrations",
	    NULL), (int)nmigrations);
	db_close(db);
}
END_TEST

/*
 * The dialects describe one schema: the same tables and columns (in the
 * same type classes), NOT NULL, keys, unique constraints and indexes.
 */
START_TEST(t_schema_matches_sqlite)
{
	struct db	*s, *p;
	struct rowlist	 a, b;
	char		 path[200], err[512];
	int		 version, applied;

	snprintf(path, sizeof(path), "%s/%s.db", sqlitedir, dbname);
	s = db_open(DB_SQLITE, path, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	ck_assert_msg(migrate_up(s, &version, &applied) == 0, "%s",
	    db_error(s));
	p = open_migrated(&version, &applied);

	rowlist_get(s, "SELECT m.name, c.name, CASE upper(c.type) "
	    "WHEN 'INTEGER' THEN 'int' WHEN 'REAL' THEN 'real' "
	    "WHEN 'BLOB' THEN 'blob' ELSE lower(c.type) END, "
	    "CASE WHEN c.\"notnull\" OR c.pk > 0 THEN 'not null' ELSE "
	    "'null' END FROM sqlite_master m, pragma_table_info(m.name) c "
	    "WHERE m.type = 'table'", &a);
	/* TIMESTAMPTZ and BOOLEAN only in the blockyard_* tables */
	rowlist_get(p, "SELECT table_name, column_name, CASE "
	    "WHEN data_type IN ('integer', 'bigint', 'smallint') THEN 'int' "
	    "WHEN data_type = 'boolean' AND table_name LIKE 'blockyard_%' "
	    "THEN 'int' WHEN data_type = 'double precision' THEN 'real' "
	    "WHEN data_type = 'bytea' THEN 'blob' WHEN data_type = "
	    "'timestamp with time zone' AND table_name LIKE 'blockyard_%' "
	    "THEN 'text' ELSE data_type END, CASE is_nullable WHEN 'NO' "
	    "THEN 'not null' ELSE 'null' END FROM information_schema.columns "
	    "WHERE table_schema = current_schema()", &b);
	rowlist_same("columns", &a, &b);
	rowlist_free(&a);
	rowlist_free(&b);

	rowlist_get(s, "SELECT m.name, f.\"from\", f.\"table\", f.\"to\", "
	    "f.on_delete FROM sqlite_master m, pragma_foreign_key_list(m.name) "
	    "f WHERE m.type = 'table'", &a);
	rowlist_get(p, "SELECT c.conrelid::regclass::text, a.attname, "
	    "c.confrelid::regclass::text, af.attname, CASE c.confdeltype "
	    "WHEN 'a' THEN 'NO ACTION' WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN "
	    "'SET NULL' WHEN 'r' THEN 'RESTRICT' ELSE 'SET DEFAULT' END "
	    "FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = "
	    "c.conrelid AND a.attnum = c.conkey[1] JOIN pg_attribute af ON "
	    "af.attrelid = c.confrelid AND af.attnum = c.confkey[1] "
	    "WHERE c.contype = 'f' AND c.connamespace = "
	    "current_schema()::regnamespace", &b);
	rowlist_same("foreign keys", &a, &b);
	rowlist_free(&a);
	rowlist_free(&b);

	rowlist_get(s, "SELECT m.name, il.origin, group_concat(ii.name) "
	    "FROM sqlite_master m, pragma_index_list(m.name) il, "
	    "pragma_index_info(il.name) ii WHERE m.type = 'table' AND "
	    "il.origin IN ('u', 'pk') GROUP BY m.name, il.name", &a);
	rowlist_get(p, "SELECT c.conrelid::regclass::text, CASE c.contype "
	    "WHEN 'p' THEN 'pk' ELSE 'u' END, (SELECT string_agg(attname, "
	    "',' ORDER BY array_position(c.conkey, attnum)) FROM pg_attribute "
	    "WHERE attrelid = c.conrelid AND attnum = ANY (c.conkey)) "
	    "FROM pg_constraint c WHERE c.contype IN ('u', 'p') AND "
	    "c.connamespace = current_schema()::regnamespace AND NOT "
	    "(c.contype = 'p' AND array_length(c.conkey, 1) = 1 AND "
	    "c.conrelid::regclass::text IN ('blockyard_ports', "
	    "'blockyard_uids', 'schema_migrations'))", &b);
	/* SQLite's INTEGER PRIMARY KEY is the rowid: no index to list */
	rowlist_same("keys", &a, &b);
	rowlist_free(&a);
	rowlist_free(&b);

	rowlist_get(s, "SELECT tbl_name, name FROM sqlite_master WHERE "
	    "type = 'index' AND name NOT LIKE 'sqlite_%'", &a);
	rowlist_get(p, "SELECT i.tablename, i.indexname FROM pg_indexes i "
	    "WHERE i.schemaname = current_schema() AND NOT EXISTS (SELECT 1 "
	    "FROM pg_constraint c WHERE c.conindid = (quote_ident("
	    "i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
	    &b);
	rowlist_same("indexes", &a, &b);
	rowlist_free(&a);
	rowlist_free(&b);
	db_close(s);
	db_close(p);
}
END_TEST

START_TEST(t_open_errors)
{
	char	 url[512], err[512];

	/* the password never shows, not even in a failure */
	snprintf(url, sizeof(url), "postgresql://test:s3cret@/nodb?host=%s&"
	    "port=%d", pgroot, PG_PORT);
	ck_assert_ptr_null(db_open(DB_POSTGRES, url, err, sizeof(err)));
	ck_assert_msg(strstr(err, "nodb") != NULL &&
	    strstr(err, "does not exist") != NULL &&
	    strstr(err, "test:xxxxx@") != NULL &&
	    strstr(err, "s3cret") == NULL, "%s", err);
	ck_assert_int_eq(state_open("postgres", url, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "s3cret") == NULL, "%s", err);

	snprintf(url, sizeof(url), "host=%s port=%d user=test dbname=nodb "
	    "password='s3cr3t pw'", pgroot, PG_PORT);
	ck_assert_ptr_null(db_open(DB_POSTGRES, url, err, sizeof(err)));
	ck_assert_msg(strstr(err, "nodb") != NULL &&
	    strstr(err, "password=xxxxx") != NULL &&
	    strstr(err, "s3cr3t") == NULL, "%s", err);

	/* no server there: the socket is named */
	ck_assert_ptr_null(db_open(DB_POSTGRES, "postgresql:///x?host="
	    "/nonexistent&port=1", err, sizeof(err)));
	ck_assert_msg(strstr(err, "/nonexistent/.s.PGSQL.1") != NULL, "%s",
	    err);
	/* a URL libpq cannot read */
	ck_assert_ptr_null(db_open(DB_POSTGRES, "postgresql://h/d?bogus=1",
	    err, sizeof(err)));
	ck_assert_msg(strstr(err, "bogus") != NULL, "%s", err);
	ck_assert_ptr_null(db_open(DB_POSTGRES, "", err, sizeof(err)));
}
END_TEST

/* The key=value form connects too, and the URL picks the schema. */
START_TEST(t_keyword_form_and_schema)
{
	struct db	*db;
	PGconn		*c;
	char		 kw[512], url[512], err[512];
	int		 version, applied;

	snprintf(kw, sizeof(kw), "host=%s port=%d user=test dbname=%s",
	    pgroot, PG_PORT, dbname);
	db = db_open(DB_POSTGRES, kw, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_int_eq(db_ping(db), 0);
	db_close(db);

	c = admin_conn(dbname);
	admin_exec(c, "CREATE SCHEMA byd");
	PQfinish(c);
	snprintf(url, sizeof(url), "%s&options=-csearch_path%%3Dbyd", dburl);
	db = db_open(DB_POSTGRES, url, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_msg(migrate_up(db, &version, &applied) == 0, "%s",
	    db_error(db));
	ck_assert_int_eq(count(db, "SELECT count(*) FROM pg_tables WHERE "
	    "schemaname = 'byd' AND tablename = 'apps'", NULL), 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM pg_tables WHERE "
	    "schemaname = 'public'", NULL), 0);
	db_close(db);
}
END_TEST

struct redact_case {
	const char	*in;
	const char	*want;
};

START_TEST(t_redact)
{
	static const struct redact_case cases[] = {
		{ "postgres://u:pw@db.example/by?sslmode=verify-full",
		    "postgres://u:xxxxx@db.example/by?sslmode=verify-full" },
		{ "postgresql://u:p%40ss@h:5432/d",
		    "postgresql://u:xxxxx@h:5432/d" },
		{ "postgresql://u@h/d", "postgresql://u@h/d" },
		{ "postgresql://u:@h/d", "postgresql://u:xxxxx@h/d" },
		{ "postgresql://h/d", "postgresql://h/d" },
		{ "postgresql:///d?host=/run/pg&port=5433&user=test",
		    "postgresql:///d?host=/run/pg&port=5433&user=test" },
		{ "postgresql:///d?user=u&password=sec&sslmode=disable",
		    "postgresql:///d?user=u&password=xxxxx&sslmode=disable" },
		{ "postgresql:///d?pass%77ord=sec",
		    "postgresql:///d?pass%77ord=xxxxx" },
		{ "postgresql:///d?PASSWORD=sec", "postgresql:///d?PASSWORD="
		    "xxxxx" },
		/* libpq would not read these as passwords; we still hide */
		{ "postgresql://u:pa/ss@h/d", "postgresql://u:xxxxx@h/d" },
		{ "postgresql://u:pa?s@s@h/d", "postgresql://u:xxxxx@h/d" },
		{ "host=h user=u password=sec dbname=d",
		    "host=h user=u password=xxxxx dbname=d" },
		{ "host=h password = 'a b\\' c' dbname=d",
		    "host=h password=xxxxx dbname=d" },
		{ "password=sec", "password=xxxxx" },
		{ "host=h PassWord=sec", "host=h PassWord=xxxxx" },
		{ "host=h password='unterminated sec",
		    "host=h password=..." },
		{ "host=h password sec", "host=h ..." },
		{ "blockyard", "blockyard" },
	};
	char	 buf[256];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pg_redact(cases[i].in, buf, sizeof(buf));
		ck_assert_msg(strcmp(buf, cases[i].want) == 0,
		    "%s: got %s, want %s", cases[i].in, buf, cases[i].want);
	}
	/* a short buffer cuts, it does not overflow */
	pg_redact("postgresql://u:secret@host/db", buf, 20);
	ck_assert_str_eq(buf, "postgresql://u:xxxx");
	db_redact(DB_SQLITE, "/var/lib/by.db", buf, sizeof(buf));
	ck_assert_str_eq(buf, "/var/lib/by.db");
	db_redact(DB_POSTGRES, "postgresql://u:secret@h/d", buf, sizeof(buf));
	ck_assert_str_eq(buf, "postgresql://u:xxxxx@h/d");
}
END_TEST

START_TEST(t_migration_lockstep)
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
		for (d = 0; d < DB_NDRIVERS; d++)
			ck_assert_msg(migrations[i].sql[d] != NULL,
			    "%s has no %s text", migrations[i].name,
			    db_driver_name(d));
	}
	ck_assert_int_eq(migrate_latest(), (int)nmigrations);
	/* the engine-specific spellings stay on their side */
	ck_assert_ptr_null(strstr(migrations[0].sql[DB_POSTGRES], "BLOB"));
	ck_assert_ptr_null(strstr(migrations[0].sql[DB_POSTGRES], "strftime"));
	ck_assert_ptr_null(strstr(migrations[0].sql[DB_SQLITE], "BYTEA"));
	ck_assert_ptr_nonnull(strstr(migrations[0].sql[DB_POSTGRES],
	    "ADD CONSTRAINT apps_active_bundle_fkey"));
}
END_TEST

static Suite *
bystate_pg_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("bystate_pg");
	tc = tcase_create("postgres");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_fresh_schema);
	tcase_add_test(tc, t_reopen_is_noop);
	tcase_add_test(tc, t_newer_refused);
	tcase_add_test(tc, t_foreign_version_table);
	tcase_add_test(tc, t_foreign_keys);
	tcase_add_test(tc, t_unique_live_name);
	tcase_add_test(tc, t_transactions);
	tcase_add_test(tc, t_params_and_rows);
	tcase_add_test(tc, t_changes);
	tcase_add_test(tc, t_busy);
	tcase_add_test(tc, t_ping);
	tcase_add_test(tc, t_reconnect);
	tcase_add_test(tc, t_server_restart);
	tcase_add_test(tc, t_concurrent_migrate);
	tcase_add_test(tc, t_schema_matches_sqlite);
	tcase_add_test(tc, t_open_errors);
	tcase_add_test(tc, t_keyword_form_and_schema);
	suite_add_tcase(s, tc);

	/* no server needed */
	tc = tcase_create("offline");
	tcase_add_test(tc, t_redact);
	tcase_add_test(tc, t_migration_lockstep);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	log_setlevel(LOG_LVL_ERROR);
	cluster_setup();
	if (cluster_err[0] != '\0')
		fprintf(stderr, "test_bystate_pg: %s\n", cluster_err);
	sr = srunner_create(bystate_pg_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cluster_teardown();
	return failed == 0 ? 0 : 1;
}
