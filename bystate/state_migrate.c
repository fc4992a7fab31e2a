/*
 * Schema migrations.
 *
 * Each migration has a number, a name and one SQL text per dialect; the
 * numbers are the same in every dialect (a change one engine does not
 * need is an empty text, never a gap).  Migrations only go forward and
 * each runs in its own transaction together with the row that records
 * it in schema_migrations, so a crash leaves the schema at a known
 * version.  A database that is newer than this binary is refused: the
 * older code would not know what the newer columns mean.
 *
 * Conventions, as in the Go server's schema: timestamps are TEXT in RFC
 * 3339 UTC with second precision, booleans are INTEGER 0/1, identifiers
 * are TEXT UUIDs.  PostgreSQL differs only where the engine must: BYTEA,
 * DOUBLE PRECISION, a foreign key added after the fact, and the shared
 * state tables (blockyard_*), which use TIMESTAMPTZ and BOOLEAN there
 * because only a PostgreSQL-backed deployment reads them.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "bystate.h"

/* Outside the migrations: it has to exist before we can ask it. */
static const char migrate_bootstrap[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "  version INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  applied_at TEXT NOT NULL\n"
    ")";

/*
 * Taken inside each migration's transaction, and around the creation of
 * schema_migrations, so that two servers starting at once (a rolling
 * update) apply a migration once.  SQLite's BEGIN IMMEDIATE already holds
 * the only write lock.  PostgreSQL gets a transaction-scoped advisory
 * lock: it also covers the CREATE TABLE IF NOT EXISTS, which two sessions
 * cannot safely race (both see no table, one fails on pg_type).  The key
 * is "bystate" in ASCII; the lock is per database.
 */
static const char *const migrate_lock[DB_NDRIVERS] = {
	[DB_SQLITE] = NULL,
	[DB_POSTGRES] = "SELECT pg_advisory_xact_lock(27718084498388069)",
};

/*
 * 001_initial, SQLite.  apps.active_bundle refers forward to bundles:
 * SQLite resolves foreign keys when rows change, not when tables are
 * created, so the order of the CREATEs does not matter.
 */
static const char sqlite_001_initial[] =
    "CREATE TABLE apps (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  owner TEXT NOT NULL DEFAULT 'admin',\n"
    "  access_type TEXT NOT NULL DEFAULT 'acl'\n"
    "    CHECK (access_type IN ('acl', 'logged_in', 'public')),\n"
    "  active_bundle TEXT REFERENCES bundles(id) ON DELETE SET NULL,\n"
    "  max_workers_per_app INTEGER,\n"
    "  max_sessions_per_worker INTEGER DEFAULT 1,\n"
    "  memory_limit TEXT,\n"
    "  cpu_limit REAL,\n"
    "  title TEXT,\n"
    "  description TEXT,\n"
    "  created_at TEXT NOT NULL,\n"
    "  updated_at TEXT NOT NULL,\n"
    "  deleted_at TEXT,\n"
    "  pre_warmed_sessions INTEGER NOT NULL DEFAULT 0,\n"
    "  refresh_schedule TEXT NOT NULL DEFAULT '',\n"
    "  last_refresh_at TEXT,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1,\n"
    "  image TEXT NOT NULL DEFAULT '',\n"
    "  runtime TEXT NOT NULL DEFAULT ''\n"
    ");\n"
    "CREATE UNIQUE INDEX idx_apps_name_live ON apps(name)\n"
    "  WHERE deleted_at IS NULL;\n"
    "\n"
    "CREATE TABLE bundles (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id),\n"
    "  status TEXT NOT NULL DEFAULT 'pending',\n"
    "  uploaded_at TEXT NOT NULL,\n"
    "  deployed_by TEXT,\n"
    "  deployed_at TEXT,\n"
    "  pinned INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX idx_bundles_app_id ON bundles(app_id);\n"
    "\n"
    "CREATE TABLE app_access (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  principal TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('user')),\n"
    "  role TEXT NOT NULL CHECK (role IN ('viewer', 'collaborator')),\n"
    "  granted_by TEXT NOT NULL,\n"
    "  granted_at TEXT NOT NULL,\n"
    "  PRIMARY KEY (app_id, principal, kind)\n"
    ");\n"
    "\n"
    "CREATE TABLE users (\n"
    "  sub TEXT PRIMARY KEY,\n"
    "  email TEXT NOT NULL DEFAULT '',\n"
    "  name TEXT NOT NULL DEFAULT '',\n"
    "  role TEXT NOT NULL DEFAULT 'viewer',\n"
    "  active INTEGER NOT NULL DEFAULT 1,\n"
    "  last_login TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE personal_access_tokens (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  token_hash BLOB NOT NULL UNIQUE,\n"
    "  user_sub TEXT NOT NULL REFERENCES users(sub),\n"
    "  name TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL,\n"
    "  expires_at TEXT,\n"
    "  last_used_at TEXT,\n"
    "  revoked INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX idx_pat_token_hash ON personal_access_tokens(token_hash);\n"
    "CREATE INDEX idx_pat_user_sub ON personal_access_tokens(user_sub);\n"
    "\n"
    "CREATE TABLE tags (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE app_tags (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  tag_id TEXT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,\n"
    "  PRIMARY KEY (app_id, tag_id)\n"
    ");\n"
    "\n"
    "CREATE TABLE sessions (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id),\n"
    "  worker_id TEXT NOT NULL,\n"
    "  user_sub TEXT,\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at TEXT,\n"
    "  status TEXT NOT NULL DEFAULT 'active'\n"
    "    CHECK (status IN ('active', 'ended', 'crashed'))\n"
    ");\n"
    "CREATE INDEX idx_sessions_app_started ON sessions(app_id, started_at DESC);\n"
    "CREATE INDEX idx_sessions_user ON sessions(user_sub, app_id, started_at DESC);\n"
    "CREATE INDEX idx_sessions_worker ON sessions(worker_id, started_at DESC);\n"
    "CREATE INDEX idx_sessions_status ON sessions(status);\n"
    "\n"
    "CREATE TABLE app_aliases (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  phase TEXT NOT NULL CHECK (phase IN ('alias', 'redirect')),\n"
    "  expires_at TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX idx_app_aliases_app_id ON app_aliases(app_id);\n"
    "\n"
    "CREATE TABLE bundle_logs (\n"
    "  bundle_id TEXT PRIMARY KEY REFERENCES bundles(id) ON DELETE CASCADE,\n"
    "  output TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE app_data_mounts (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  source TEXT NOT NULL,\n"
    "  target TEXT NOT NULL,\n"
    "  readonly INTEGER NOT NULL DEFAULT 1,\n"
    "  PRIMARY KEY (app_id, target)\n"
    ");\n"
    "\n"
    /*
     * Shared state for PostgreSQL-backed deployments; created here too so
     * both schemas have the same tables.  The defaults write RFC 3339, not
     * CURRENT_TIMESTAMP's "YYYY-MM-DD HH:MM:SS", so that every timestamp
     * in the file compares as text.
     */
    "CREATE TABLE blockyard_sessions (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  worker_id TEXT NOT NULL,\n"
    "  user_sub TEXT NOT NULL DEFAULT '',\n"
    "  last_access TEXT NOT NULL,\n"
    "  expires_at TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX idx_blockyard_sessions_expires_at\n"
    "  ON blockyard_sessions(expires_at);\n"
    "CREATE INDEX idx_blockyard_sessions_worker_id\n"
    "  ON blockyard_sessions(worker_id);\n"
    "CREATE INDEX idx_blockyard_sessions_last_access\n"
    "  ON blockyard_sessions(last_access);\n"
    "\n"
    "CREATE TABLE blockyard_workers (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  address TEXT NOT NULL DEFAULT '',\n"
    "  app_id TEXT NOT NULL DEFAULT '',\n"
    "  bundle_id TEXT NOT NULL DEFAULT '',\n"
    "  server_id TEXT NOT NULL DEFAULT '',\n"
    "  draining INTEGER NOT NULL DEFAULT 0,\n"
    "  idle_since TEXT,\n"
    "  started_at TEXT NOT NULL\n"
    "    DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),\n"
    "  last_heartbeat TEXT NOT NULL\n"
    "    DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))\n"
    ");\n"
    "CREATE INDEX idx_blockyard_workers_app_id ON blockyard_workers(app_id);\n"
    "CREATE INDEX idx_blockyard_workers_server_id\n"
    "  ON blockyard_workers(server_id);\n"
    "CREATE INDEX idx_blockyard_workers_last_heartbeat\n"
    "  ON blockyard_workers(last_heartbeat);\n"
    "\n"
    "CREATE TABLE blockyard_ports (\n"
    "  port INTEGER PRIMARY KEY,\n"
    "  owner TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE blockyard_uids (\n"
    "  uid INTEGER PRIMARY KEY,\n"
    "  owner TEXT NOT NULL\n"
    ");\n";

/*
 * 001_initial, PostgreSQL: the same tables, columns, keys and indexes as
 * the SQLite text (test_bystate_pg compares the two schemas).  The
 * circular reference apps.active_bundle -> bundles is closed with an
 * ALTER once bundles exists.
 */
static const char postgres_001_initial[] =
    "CREATE TABLE apps (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  owner TEXT NOT NULL DEFAULT 'admin',\n"
    "  access_type TEXT NOT NULL DEFAULT 'acl'\n"
    "    CHECK (access_type IN ('acl', 'logged_in', 'public')),\n"
    "  active_bundle TEXT,\n"
    "  max_workers_per_app INTEGER,\n"
    "  max_sessions_per_worker INTEGER DEFAULT 1,\n"
    "  memory_limit TEXT,\n"
    "  cpu_limit DOUBLE PRECISION,\n"
    "  title TEXT,\n"
    "  description TEXT,\n"
    "  created_at TEXT NOT NULL,\n"
    "  updated_at TEXT NOT NULL,\n"
    "  deleted_at TEXT,\n"
    "  pre_warmed_sessions INTEGER NOT NULL DEFAULT 0,\n"
    "  refresh_schedule TEXT NOT NULL DEFAULT '',\n"
    "  last_refresh_at TEXT,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1,\n"
    "  image TEXT NOT NULL DEFAULT '',\n"
    "  runtime TEXT NOT NULL DEFAULT ''\n"
    ");\n"
    "CREATE UNIQUE INDEX idx_apps_name_live ON apps(name)\n"
    "  WHERE deleted_at IS NULL;\n"
    "\n"
    "CREATE TABLE bundles (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id),\n"
    "  status TEXT NOT NULL DEFAULT 'pending',\n"
    "  uploaded_at TEXT NOT NULL,\n"
    "  deployed_by TEXT,\n"
    "  deployed_at TEXT,\n"
    "  pinned INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX idx_bundles_app_id ON bundles(app_id);\n"
    "ALTER TABLE apps ADD CONSTRAINT apps_active_bundle_fkey\n"
    "  FOREIGN KEY (active_bundle) REFERENCES bundles(id) ON DELETE SET NULL;\n"
    "\n"
    "CREATE TABLE app_access (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  principal TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('user')),\n"
    "  role TEXT NOT NULL CHECK (role IN ('viewer', 'collaborator')),\n"
    "  granted_by TEXT NOT NULL,\n"
    "  granted_at TEXT NOT NULL,\n"
    "  PRIMARY KEY (app_id, principal, kind)\n"
    ");\n"
    "\n"
    "CREATE TABLE users (\n"
    "  sub TEXT PRIMARY KEY,\n"
    "  email TEXT NOT NULL DEFAULT '',\n"
    "  name TEXT NOT NULL DEFAULT '',\n"
    "  role TEXT NOT NULL DEFAULT 'viewer',\n"
    "  active INTEGER NOT NULL DEFAULT 1,\n"
    "  last_login TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE personal_access_tokens (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  token_hash BYTEA NOT NULL UNIQUE,\n"
    "  user_sub TEXT NOT NULL REFERENCES users(sub),\n"
    "  name TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL,\n"
    "  expires_at TEXT,\n"
    "  last_used_at TEXT,\n"
    "  revoked INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX idx_pat_token_hash ON personal_access_tokens(token_hash);\n"
    "CREATE INDEX idx_pat_user_sub ON personal_access_tokens(user_sub);\n"
    "\n"
    "CREATE TABLE tags (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE app_tags (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  tag_id TEXT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,\n"
    "  PRIMARY KEY (app_id, tag_id)\n"
    ");\n"
    "\n"
    "CREATE TABLE sessions (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id),\n"
    "  worker_id TEXT NOT NULL,\n"
    "  user_sub TEXT,\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at TEXT,\n"
    "  status TEXT NOT NULL DEFAULT 'active'\n"
    "    CHECK (status IN ('active', 'ended', 'crashed'))\n"
    ");\n"
    "CREATE INDEX idx_sessions_app_started ON sessions(app_id, started_at DESC);\n"
    "CREATE INDEX idx_sessions_user ON sessions(user_sub, app_id, started_at DESC);\n"
    "CREATE INDEX idx_sessions_worker ON sessions(worker_id, started_at DESC);\n"
    "CREATE INDEX idx_sessions_status ON sessions(status);\n"
    "\n"
    "CREATE TABLE app_aliases (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  phase TEXT NOT NULL CHECK (phase IN ('alias', 'redirect')),\n"
    "  expires_at TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX idx_app_aliases_app_id ON app_aliases(app_id);\n"
    "\n"
    "CREATE TABLE bundle_logs (\n"
    "  bundle_id TEXT PRIMARY KEY REFERENCES bundles(id) ON DELETE CASCADE,\n"
    "  output TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE app_data_mounts (\n"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,\n"
    "  source TEXT NOT NULL,\n"
    "  target TEXT NOT NULL,\n"
    "  readonly INTEGER NOT NULL DEFAULT 1,\n"
    "  PRIMARY KEY (app_id, target)\n"
    ");\n"
    "\n"
    "CREATE TABLE blockyard_sessions (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  worker_id TEXT NOT NULL,\n"
    "  user_sub TEXT NOT NULL DEFAULT '',\n"
    "  last_access TIMESTAMPTZ NOT NULL,\n"
    "  expires_at TIMESTAMPTZ NOT NULL\n"
    ");\n"
    "CREATE INDEX idx_blockyard_sessions_expires_at\n"
    "  ON blockyard_sessions(expires_at);\n"
    "CREATE INDEX idx_blockyard_sessions_worker_id\n"
    "  ON blockyard_sessions(worker_id);\n"
    "CREATE INDEX idx_blockyard_sessions_last_access\n"
    "  ON blockyard_sessions(last_access);\n"
    "\n"
    "CREATE TABLE blockyard_workers (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  address TEXT NOT NULL DEFAULT '',\n"
    "  app_id TEXT NOT NULL DEFAULT '',\n"
    "  bundle_id TEXT NOT NULL DEFAULT '',\n"
    "  server_id TEXT NOT NULL DEFAULT '',\n"
    "  draining BOOLEAN NOT NULL DEFAULT false,\n"
    "  idle_since TIMESTAMPTZ,\n"
    "  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "  last_heartbeat TIMESTAMPTZ NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX idx_blockyard_workers_app_id ON blockyard_workers(app_id);\n"
    "CREATE INDEX idx_blockyard_workers_server_id\n"
    "  ON blockyard_workers(server_id);\n"
    "CREATE INDEX idx_blockyard_workers_last_heartbeat\n"
    "  ON blockyard_workers(last_heartbeat);\n"
    "\n"
    "CREATE TABLE blockyard_ports (\n"
    "  port INTEGER PRIMARY KEY,\n"
    "  owner TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE blockyard_uids (\n"
    "  uid INTEGER PRIMARY KEY,\n"
    "  owner TEXT NOT NULL\n"
    ");\n";

/* In order, numbered from 1 without gaps (the regress test checks). */
/*
 * 002_bundle_seq: uploads of one app in the same second need an order
 * (listing newest first, pruning oldest first); a per-app sequence
 * number gives it on both engines.  Existing rows keep 0 and fall back
 * to uploaded_at.
 */
static const char sqlite_002_bundle_seq[] =
	"ALTER TABLE bundles\n"
	"    ADD COLUMN upload_seq INTEGER NOT NULL DEFAULT 0;\n"
	"CREATE INDEX idx_bundles_app_seq ON bundles(app_id, upload_seq);\n";

static const char postgres_002_bundle_seq[] =
	"ALTER TABLE bundles\n"
	"    ADD COLUMN upload_seq INTEGER NOT NULL DEFAULT 0;\n"
	"CREATE INDEX idx_bundles_app_seq ON bundles(app_id, upload_seq);\n";

const struct migration migrations[] = {
	{ 1, "001_initial", {
		[DB_SQLITE] = sqlite_001_initial,
		[DB_POSTGRES] = postgres_001_initial,
	} },
	{ 2, "002_bundle_seq", {
		[DB_SQLITE] = sqlite_002_bundle_seq,
		[DB_POSTGRES] = postgres_002_bundle_seq,
	} },
};
const size_t nmigrations = sizeof(migrations) / sizeof(migrations[0]);

int
migrate_latest(void)
{
	return nmigrations > 0 ? migrations[nmigrations - 1].version : 0;
}

/*
 * The recorded version.  Checking our columns first tells a foreign
 * schema_migrations (another tool's, with other columns) from ours.
 */
int
migrate_current(struct db *db)
{
	char	 err[sizeof(db->err)];
	int64_t	 v = 0;
	int	 r;

	if (db_query(db, "SELECT version, name, applied_at "
	    "FROM schema_migrations WHERE 1 = 0", NULL, 0, NULL, NULL) == -1) {
		snprintf(err, sizeof(err), "schema_migrations is not the "
		    "table of this server: %s", db_error(db));
		strlcpy(db->err, err, sizeof(db->err));
		return -1;
	}
	r = db_query_int(db, "SELECT MAX(version) FROM schema_migrations",
	    NULL, 0, &v);
	if (r == -1)
		return -1;
	if (v < 0 || v > 1000000) {
		snprintf(db->err, sizeof(db->err), "schema_migrations holds "
		    "version %lld, which no version of this server wrote",
		    (long long)v);
		return -1;
	}
	return (int)v;
}

static int
migrate_take_lock(struct db *db)
{
	if (migrate_lock[db->driver] == NULL)
		return 0;
	return db_exec_script(db, migrate_lock[db->driver]);
}

/* schema_migrations itself, under the lock. */
static int
migrate_bootstrap_table(struct db *db)
{
	char	 err[sizeof(db->err)];

	if (db_begin(db) == -1)
		return -1;
	if (migrate_take_lock(db) == -1 ||
	    db_exec_script(db, migrate_bootstrap) == -1) {
		strlcpy(err, db_error(db), sizeof(err));
		db_rollback(db);
		strlcpy(db->err, err, sizeof(db->err));
		return -1;
	}
	return db_commit(db);
}

/* Apply one migration if the database still lacks it; 1 applied, 0 not. */
static int
migrate_one(struct db *db, const struct migration *m)
{
	struct db_param	 p[3];
	char		 now[32], err[sizeof(db->err)];
	int		 cur;

	if (db_begin(db) == -1)
		return -1;
	if (migrate_take_lock(db) == -1)
		goto fail;
	/* read again under the lock: another server may have been first */
	if ((cur = migrate_current(db)) == -1)
		goto fail;
	if (cur >= m->version) {
		db_rollback(db);
		return 0;
	}
	if (m->sql[db->driver][0] != '\0' &&
	    db_exec_script(db, m->sql[db->driver]) == -1)
		goto fail;
	db_timestamp(now, sizeof(now));
	p[0] = DB_PINT(m->version);
	p[1] = DB_PTEXT(m->name);
	p[2] = DB_PTEXT(now);
	if (db_exec(db, "INSERT INTO schema_migrations (version, name, "
	    "applied_at) VALUES ($1, $2, $3)", p, 3) == -1)
		goto fail;
	if (db_commit(db) == -1)
		goto fail;
	log_info("%s: applied migration %s", db->target, m->name);
	return 1;

 fail:
	snprintf(err, sizeof(err), "migration %s: %s", m->name, db_error(db));
	db_rollback(db);
	strlcpy(db->err, err, sizeof(db->err));
	return -1;
}

/* The version, or -1 also when it is newer than this binary knows. */
static int
migrate_check(struct db *db)
{
	int	 cur, latest = migrate_latest();

	if ((cur = migrate_current(db)) == -1)
		return -1;
	if (cur > latest) {
		/* downgrading would need down migrations we do not have */
		snprintf(db->err, sizeof(db->err), "database schema version "
		    "%d is newer than this server knows (%d): refusing to "
		    "run an older server on it", cur, latest);
		db->errcode = DB_E_OTHER;
		return -1;
	}
	return cur;
}

int
migrate_up(struct db *db, int *version, int *applied)
{
	size_t	 i;
	int	 cur, r;

	*applied = 0;
	*version = 0;
	if (migrate_bootstrap_table(db) == -1)
		return -1;
	if ((cur = migrate_check(db)) == -1)
		return -1;
	for (i = 0; i < nmigrations; i++) {
		if (migrations[i].version <= cur)
			continue;
		if ((r = migrate_one(db, &migrations[i])) == -1)
			return -1;
		*applied += r;
	}
	/* another server may have moved on while we waited for the lock */
	if ((cur = migrate_check(db)) == -1)
		return -1;
	*version = cur;
	return 0;
}
