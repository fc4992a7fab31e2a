/*
 * bystate's ops for byproxy's own calls and the sessions rows, driven
 * through api_call() as the message handler does: proxy.resolve, the
 * API_PROXY class (refused with a bearer and from byctl), sessions.open,
 * sessions.end, sessions.list and its permissions, the start-up sweep,
 * and the view counts of workers.check.
 *
 * SQLite in a temporary directory; with BYSTATE_TEST_PGURL set (a
 * database this test may wipe), every test runs on PostgreSQL as well.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sha2.h>

#include <bsd/string.h>
#include <check.h>

#include "log.h"
#include "msg.h"
#include "proc.h"
#include "config.h"
#include "bystate.h"

#define APP_A	"a0000000-0000-4000-8000-000000000001"
#define APP_B	"b0000000-0000-4000-8000-000000000002"
#define APP_C	"c0000000-0000-4000-8000-000000000003"
#define BUNDLE	"d0000000-0000-4000-8000-000000000004"
#define GIB	(1024LL * 1024 * 1024)

static char	 basedir[64];
static char	 tmpdir[96];
static int	 use_pg;		/* this tcase's engine */
static struct config *conf;

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static const char *
noenv(const char *name, void *arg)
{
	return NULL;
}

static void
run_setup(void)
{
	char	 text[1024], err[512];

	strlcpy(basedir, "/tmp/bystate-sess.XXXXXX", sizeof(basedir));
	if (mkdtemp(basedir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(text, sizeof(text), "[server]\nbind = \"127.0.0.1:18098\"\n"
	    "control_socket = \"%s/byd.sock\"\n"
	    "default_memory_limit = \"2g\"\ndefault_cpu_limit = 1.5\n"
	    "[storage]\nbundle_server_path = \"%s/bundles\"\n"
	    "[database]\npath = \"%s/blockyard.db\"\n", basedir, basedir,
	    basedir);
	if ((conf = config_load_string(text, "test.toml", noenv, NULL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	log_init("test", 0);
	log_setlevel(getenv("BY_TEST_VERBOSE") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
}

static void
run_teardown(void)
{
	config_free(conf);
	nftw(basedir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* An empty public schema: the migrations then run as on a new server. */
static void
pg_wipe(const char *url)
{
	struct db	*db;
	char		 err[512];

	db = db_open(DB_POSTGRES, url, err, sizeof(err));
	ck_assert_msg(db != NULL, "open: %s", err);
	ck_assert_msg(db_exec_script(db, "DROP SCHEMA public CASCADE; "
	    "CREATE SCHEMA public") == 0, "wipe: %s", db_error(db));
	db_close(db);
}

static void
setup_common(void)
{
	char	 path[160], err[512];
	int	 r;

	proc_conf = conf;
	if (use_pg) {
		pg_wipe(getenv("BYSTATE_TEST_PGURL"));
		r = state_open("postgres", getenv("BYSTATE_TEST_PGURL"), err,
		    sizeof(err));
	} else {
		snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
		ck_assert_ptr_nonnull(mkdtemp(tmpdir));
		snprintf(path, sizeof(path), "%s/blockyard.db", tmpdir);
		r = state_open("sqlite", path, err, sizeof(err));
	}
	ck_assert_msg(r == 0, "state_open: %s", err);
}

static void
setup_sqlite(void)
{
	use_pg = 0;
	setup_common();
}

static void
setup_pg(void)
{
	use_pg = 1;
	setup_common();
}

static void
teardown(void)
{
	state_close();
	if (!use_pg)
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	proc_conf = NULL;
}

/* ---- helpers ------------------------------------------------------- */

/* One statement with text parameters (NULL for SQL NULL). */
static void
sql(const char *q, int n, ...)
{
	struct db_param	 p[8];
	va_list		 ap;
	const char	*v;
	int		 i;

	va_start(ap, n);
	for (i = 0; i < n; i++) {
		v = va_arg(ap, const char *);	/* DB_PTEXT reads it twice */
		p[i] = DB_PTEXT(v);
	}
	va_end(ap);
	ck_assert_msg(db_exec(state_handle(), q, p, (size_t)n) != -1,
	    "%s: %s", q, db_error(state_handle()));
}

static int64_t
count(const char *q, const char *arg)
{
	struct db_param	 p = DB_PTEXT(arg);
	int64_t		 n = -1;

	ck_assert_msg(db_query_int(state_handle(), q, &p, arg ? 1 : 0,
	    &n) == 1, "%s: %s", q, db_error(state_handle()));
	return n;
}

static void
add_app(const char *id, const char *name, const char *owner)
{
	sql("INSERT INTO apps (id, name, owner, access_type, "
	    "max_sessions_per_worker, created_at, updated_at) VALUES "
	    "($1, $2, $3, 'acl', NULL, '2026-01-01T00:00:00Z', "
	    "'2026-01-01T00:00:00Z')", 3, id, name, owner);
}

/* A call as the message handler makes it; the result is the caller's. */
static json_t *
call(const char *op, json_t *args, json_t *auth, int from_ctl)
{
	json_t	*req, *res;

	req = json_pack("{s:s s:o s:o s:s}", "op", op, "auth",
	    auth != NULL ? auth : json_null(), "args",
	    args != NULL ? args : json_object(), "remote", "");
	res = api_call(req, from_ctl);
	json_decref(req);
	ck_assert_ptr_nonnull(res);
	return res;
}

static json_t *
proxy(const char *op, json_t *args)
{
	return call(op, args, NULL, 0);
}

/* The bearer auth of a new PAT of sub (created with role). */
static json_t *
bearer(const char *sub, const char *role)
{
	json_t		*t;
	char		 hex[SHA256_DIGEST_STRING_LENGTH];
	const char	*tok;

	ck_assert_int_ge(user_ensure(state_handle(), sub, role, "", ""), 0);
	t = token_mint(state_handle(), sub, "test", NULL);
	ck_assert_ptr_nonnull(t);
	tok = json_string_value(json_object_get(t, "token"));
	SHA256Data((const uint8_t *)tok, strlen(tok), hex);
	json_decref(t);
	return json_pack("{s:s s:b}", "bearer_sha256", hex, "pat", 1);
}

static int
status_of(json_t *res)
{
	return (int)json_integer_value(json_object_get(res, "status"));
}

static json_t *
data_of(json_t *res)
{
	return json_object_get(res, "data");
}

/* Assert the status (and the message, if given); frees res. */
static void
expect(json_t *res, int status, const char *message)
{
	ck_assert_msg(status_of(res) == status, "status %d, wanted %d: %s",
	    status_of(res), status, json_dumps(res, JSON_COMPACT));
	if (message != NULL)
		ck_assert_str_eq(json_string_value(json_object_get(res,
		    "message")), message);
	json_decref(res);
}

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static json_int_t
num(json_t *o, const char *key)
{
	ck_assert_msg(json_is_integer(json_object_get(o, key)), "%s", key);
	return json_integer_value(json_object_get(o, key));
}

static json_t *
resolve(const char *name, int status)
{
	json_t	*res = proxy("proxy.resolve", json_pack("{s:s}", "name", name));

	ck_assert_msg(status_of(res) == status, "%s: %d", name,
	    status_of(res));
	return res;
}

/* ---- proxy.resolve ------------------------------------------------- */

/* hello: all defaults; other: its own limits, disabled, a bundle */
static void
resolve_fixture(void)
{
	add_app(APP_A, "hello", "alice");
	add_app(APP_B, "other", "alice");
	sql("INSERT INTO bundles (id, app_id, status, uploaded_at) VALUES "
	    "($1, $2, 'ready', '2026-01-01T00:00:00Z')", 2, BUNDLE, APP_B);
	sql("UPDATE apps SET active_bundle = $1, memory_limit = '512m', "
	    "cpu_limit = 0.5, max_workers_per_app = 3, "
	    "max_sessions_per_worker = 4, pre_warmed_sessions = 2, "
	    "enabled = 0 WHERE id = $2", 2, BUNDLE, APP_B);
	sql("INSERT INTO app_aliases (app_id, name, phase, expires_at) VALUES "
	    "($1, 'old-hello', 'alias', '2099-01-01T00:00:00Z'), "
	    "($1, 'older-hello', 'redirect', '2099-01-01T00:00:00Z')", 1,
	    APP_A);
	add_app(APP_C, "gone", "alice");
	sql("UPDATE apps SET deleted_at = '2026-01-02T00:00:00Z' "
	    "WHERE id = $1", 1, APP_C);
}

START_TEST(t_resolve_defaults)
{
	json_t	*res, *d;

	resolve_fixture();
	res = resolve(APP_A, 200);
	d = data_of(res);
	ck_assert_str_eq(str(d, "id"), APP_A);
	ck_assert_str_eq(str(d, "name"), "hello");
	ck_assert(json_is_true(json_object_get(d, "enabled")));
	ck_assert(json_is_null(json_object_get(d, "active_bundle")));
	ck_assert(json_is_null(json_object_get(d, "max_workers_per_app")));
	ck_assert_int_eq(num(d, "max_sessions_per_worker"), 1);
	ck_assert_int_eq(num(d, "pre_warmed_sessions"), 0);
	ck_assert_int_eq(num(d, "memory_limit"), 2 * GIB);
	ck_assert(json_real_value(json_object_get(d, "cpu_limit")) == 1.5);
	ck_assert(json_is_null(json_object_get(d, "redirect")));
	ck_assert_int_eq(json_object_size(d), 10);
	json_decref(res);
}
END_TEST

START_TEST(t_resolve_own_limits)
{
	json_t	*res, *d;

	resolve_fixture();
	res = resolve("other", 200);
	d = data_of(res);
	ck_assert_str_eq(str(d, "id"), APP_B);
	ck_assert(json_is_false(json_object_get(d, "enabled")));
	ck_assert_str_eq(str(d, "active_bundle"), BUNDLE);
	ck_assert_int_eq(num(d, "max_workers_per_app"), 3);
	ck_assert_int_eq(num(d, "max_sessions_per_worker"), 4);
	ck_assert_int_eq(num(d, "pre_warmed_sessions"), 2);
	ck_assert_int_eq(num(d, "memory_limit"), 512 * 1024 * 1024);
	ck_assert(json_real_value(json_object_get(d, "cpu_limit")) == 0.5);
	json_decref(res);

	/* what workers.prepare would not use falls back to the defaults */
	sql("UPDATE apps SET memory_limit = 'lots', cpu_limit = 0 WHERE "
	    "id = $1", 1, APP_B);
	res = resolve("other", 200);
	ck_assert_int_eq(num(data_of(res), "memory_limit"), 2 * GIB);
	ck_assert(json_real_value(json_object_get(data_of(res),
	    "cpu_limit")) == 1.5);
	json_decref(res);
	sql("UPDATE apps SET memory_limit = '' WHERE id = $1", 1, APP_B);
	res = resolve("other", 200);
	ck_assert_int_eq(num(data_of(res), "memory_limit"), 2 * GIB);
	json_decref(res);
}
END_TEST

START_TEST(t_resolve_aliases)
{
	json_t	*res;

	resolve_fixture();
	res = resolve("old-hello", 200);
	ck_assert_str_eq(str(data_of(res), "id"), APP_A);
	ck_assert_str_eq(str(data_of(res), "name"), "hello");
	ck_assert(json_is_null(json_object_get(data_of(res), "redirect")));
	json_decref(res);

	res = resolve("older-hello", 200);
	ck_assert_str_eq(str(data_of(res), "id"), APP_A);
	ck_assert_str_eq(str(data_of(res), "redirect"), "hello");
	json_decref(res);

	/* an alias of an app that is gone resolves to nothing */
	sql("INSERT INTO app_aliases (app_id, name, phase, expires_at) "
	    "VALUES ($1, 'was-gone', 'alias', '2099-01-01T00:00:00Z')", 1,
	    APP_C);
	expect(resolve("was-gone", 404), 404, "app not found");
}
END_TEST

START_TEST(t_resolve_not_found)
{
	json_t	*res;

	resolve_fixture();
	expect(resolve("gone", 404), 404, "app not found");
	res = resolve(APP_C, 404);
	ck_assert_str_eq(str(res, "error"), "not_found");
	json_decref(res);
	expect(resolve("nothing", 404), 404, "app not found");
	expect(resolve("", 404), 404, "app not found");
	expect(proxy("proxy.resolve", NULL), 404, "app not found");
	expect(proxy("proxy.resolve", json_pack("{s:i}", "name", 1)), 404,
	    NULL);

	/* a live app of the same name takes over once the old one is gone */
	add_app("e0000000-0000-4000-8000-000000000005", "gone", "bob");
	res = resolve("gone", 200);
	ck_assert_str_eq(str(data_of(res), "id"),
	    "e0000000-0000-4000-8000-000000000005");
	json_decref(res);
}
END_TEST

/* UUID before name before alias, whatever the rows say */
START_TEST(t_resolve_order)
{
	json_t	*res;

	resolve_fixture();
	/* a name that is another app's UUID: the UUID wins */
	add_app("e0000000-0000-4000-8000-000000000005", APP_A, "bob");
	res = resolve(APP_A, 200);
	ck_assert_str_eq(str(data_of(res), "name"), "hello");
	json_decref(res);
	/* a live name before an alias of another app */
	sql("INSERT INTO app_aliases (app_id, name, phase, expires_at) "
	    "VALUES ($1, 'other', 'redirect', '2099-01-01T00:00:00Z')", 1,
	    APP_A);
	res = resolve("other", 200);
	ck_assert_str_eq(str(data_of(res), "id"), APP_B);
	ck_assert(json_is_null(json_object_get(data_of(res), "redirect")));
	json_decref(res);
}
END_TEST

/* ---- the API_PROXY class ------------------------------------------- */

START_TEST(t_proxy_class)
{
	static const char *const ops[] = { "proxy.resolve", "sessions.open",
	    "sessions.end" };
	json_t	*admin;
	size_t	 i;

	resolve_fixture();
	admin = bearer("root", "admin");
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		/* a valid admin token does not open them */
		expect(call(ops[i], json_pack("{s:s}", "name", "hello"),
		    json_incref(admin), 0), 403, "forbidden");
		/* nor does a token that is no token */
		expect(call(ops[i], NULL, json_pack("{s:b}", "invalid", 1),
		    0), 403, "forbidden");
		expect(call(ops[i], NULL, json_pack("{s:s}", "bearer_sha256",
		    "00"), 0), 403, "forbidden");
		/* byctl through byd: neither as operator nor without auth */
		expect(call(ops[i], json_pack("{s:s}", "name", "hello"),
		    json_pack("{s:b}", "ctl", 1), 1), 403, "forbidden");
		expect(call(ops[i], json_pack("{s:s}", "name", "hello"), NULL,
		    1), 403, "forbidden");
	}
	/* a call without an auth member at all is no proxy call */
	{
		json_t	*req, *res;

		req = json_pack("{s:s s:{s:s}}", "op", "proxy.resolve", "args",
		    "name", "hello");
		res = api_call(req, 0);
		json_decref(req);
		expect(res, 403, NULL);
	}
	/* and byproxy's own call works */
	expect(resolve("hello", 200), 200, NULL);
	/* sessions.list is a user op: no caller, 401 */
	expect(proxy("sessions.list", json_pack("{s:s}", "id", APP_A)), 401,
	    "authentication required");
	json_decref(admin);
}
END_TEST

/* ---- sessions ------------------------------------------------------ */

static json_t *
open_session(const char *id, const char *app, const char *worker,
    const char *sub)
{
	return proxy("sessions.open", json_pack("{s:s s:s s:s s:s?}", "id",
	    id, "app_id", app, "worker_id", worker, "user_sub", sub));
}

static int
status_row(const struct db_row *r, void *arg)
{
	strlcpy(arg, db_row_text(r, 0), 16);
	return 1;
}

/* The status of session row id ("" when there is none). */
static const char *
row_status(const char *id)
{
	static char	 buf[16];
	struct db_param	 p = DB_PTEXT(id);

	buf[0] = '\0';
	ck_assert_int_ge(db_query(state_handle(), "SELECT status FROM "
	    "sessions WHERE id = $1", &p, 1, status_row, buf), 0);
	return buf;
}

START_TEST(t_sessions_open)
{
	json_t	*res, *d;

	resolve_fixture();
	res = open_session("s1", APP_A, "w1", "alice");
	ck_assert_int_eq(status_of(res), 201);
	d = data_of(res);
	ck_assert_str_eq(str(d, "id"), "s1");
	ck_assert_str_eq(str(d, "app_id"), APP_A);
	ck_assert_str_eq(str(d, "worker_id"), "w1");
	ck_assert_str_eq(str(d, "user_sub"), "alice");
	ck_assert_str_eq(str(d, "status"), "active");
	ck_assert(json_is_null(json_object_get(d, "ended_at")));
	ck_assert_int_eq(strlen(str(d, "started_at")), 20);
	ck_assert_int_eq(count("SELECT COUNT(*) FROM sessions WHERE "
	    "id = $1 AND status = 'active' AND ended_at IS NULL AND "
	    "user_sub = 'alice'", "s1"), 1);
	json_decref(res);

	/* anonymous: user_sub null or absent */
	res = open_session("s2", APP_A, "w1", NULL);
	ck_assert_int_eq(status_of(res), 201);
	ck_assert(json_is_null(json_object_get(data_of(res), "user_sub")));
	json_decref(res);
	expect(proxy("sessions.open", json_pack("{s:s s:s s:s s:n}", "id",
	    "s3", "app_id", APP_A, "worker_id", "w1", "user_sub")), 201, NULL);
	ck_assert_int_eq(count("SELECT COUNT(*) FROM sessions WHERE "
	    "user_sub IS NULL", NULL), 2);

	expect(open_session("s1", APP_A, "w2", NULL), 409,
	    "session s1 already exists");
	expect(open_session("s4", "f0000000-0000-4000-8000-000000000009",
	    "w1", NULL), 404, "app not found");
	expect(open_session("", APP_A, "w1", NULL), 400, NULL);
	expect(open_session("s5", APP_A, "", NULL), 400, NULL);
	expect(open_session("s 5", APP_A, "w1", NULL), 400, NULL);
	expect(proxy("sessions.open", json_pack("{s:s s:s}", "id", "s6",
	    "app_id", APP_A)), 400, NULL);
	expect(proxy("sessions.open", json_pack("{s:s s:s s:s s:i}", "id",
	    "s7", "app_id", APP_A, "worker_id", "w1", "user_sub", 7)), 400,
	    "user_sub must be a user or null");
	expect(open_session("s8", APP_A, "w1", "a\nb"), 400, NULL);
	ck_assert_int_eq(count("SELECT COUNT(*) FROM sessions", NULL), 3);
}
END_TEST

static json_int_t
end_sessions(json_t *args, int status)
{
	json_t		*res = proxy("sessions.end", args);
	json_int_t	 n = -1;

	ck_assert_msg(status_of(res) == status, "%s",
	    json_dumps(res, JSON_COMPACT));
	if (status == 200)
		n = num(data_of(res), "updated");
	json_decref(res);
	return n;
}

START_TEST(t_sessions_end)
{
	resolve_fixture();
	json_decref(open_session("s1", APP_A, "w1", "alice"));
	json_decref(open_session("s2", APP_A, "w1", NULL));
	json_decref(open_session("s3", APP_A, "w2", "bob"));
	json_decref(open_session("s4", APP_B, "w3", "bob"));
	json_decref(open_session("s5", APP_B, "w3", NULL));
	json_decref(open_session("s6", APP_B, "w4", NULL));

	/* a worker's rows, crashed */
	ck_assert_int_eq(end_sessions(json_pack("{s:s s:s}", "worker_id",
	    "w1", "status", "crashed"), 200), 2);
	ck_assert_str_eq(row_status("s1"), "crashed");
	ck_assert_str_eq(row_status("s2"), "crashed");
	ck_assert_int_eq(count("SELECT COUNT(*) FROM sessions WHERE "
	    "ended_at IS NOT NULL", NULL), 2);
	/* only active rows change */
	ck_assert_int_eq(end_sessions(json_pack("{s:s s:s}", "worker_id",
	    "w1", "status", "ended"), 200), 0);
	ck_assert_str_eq(row_status("s1"), "crashed");

	/* by ids, some of them ended already or unknown */
	ck_assert_int_eq(end_sessions(json_pack("{s:[s s s] s:s}", "ids",
	    "s1", "s4", "nope", "status", "ended"), 200), 1);
	ck_assert_str_eq(row_status("s4"), "ended");
	ck_assert_int_eq(end_sessions(json_pack("{s:[] s:s}", "ids",
	    "status", "ended"), 200), 0);

	/* an app's */
	ck_assert_int_eq(end_sessions(json_pack("{s:s s:s}", "app_id", APP_B,
	    "status", "ended"), 200), 2);
	ck_assert_str_eq(row_status("s5"), "ended");
	ck_assert_str_eq(row_status("s6"), "ended");
	ck_assert_str_eq(row_status("s3"), "active");

	/* malformed */
	end_sessions(json_pack("{s:s}", "worker_id", "w2"), 400);
	end_sessions(json_pack("{s:s s:s}", "worker_id", "w2", "status",
	    "active"), 400);
	end_sessions(json_pack("{s:s s:s s:s}", "worker_id", "w2", "app_id",
	    APP_A, "status", "ended"), 400);
	end_sessions(json_pack("{s:s}", "status", "ended"), 400);
	end_sessions(json_pack("{s:[i] s:s}", "ids", 1, "status", "ended"),
	    400);
	end_sessions(json_pack("{s:s s:s}", "ids", "s3", "status", "ended"),
	    400);
	end_sessions(json_pack("{s:i s:s}", "worker_id", 2, "status",
	    "ended"), 400);
	ck_assert_str_eq(row_status("s3"), "active");
}
END_TEST

START_TEST(t_startup_sweep)
{
	resolve_fixture();
	json_decref(open_session("s1", APP_A, "w1", "alice"));
	json_decref(open_session("s2", APP_A, "w1", NULL));
	json_decref(open_session("s3", APP_B, "w2", NULL));
	end_sessions(json_pack("{s:s s:s}", "worker_id", "w2", "status",
	    "crashed"), 200);
	sql("UPDATE sessions SET ended_at = '2026-01-01T00:00:00Z' WHERE "
	    "id = $1", 1, "s3");

	ck_assert_int_eq(sessions_end_stale(state_handle()), 2);
	ck_assert_str_eq(row_status("s1"), "ended");
	ck_assert_str_eq(row_status("s2"), "ended");
	ck_assert_int_eq(count("SELECT COUNT(*) FROM sessions WHERE "
	    "ended_at IS NULL", NULL), 0);
	/* a finished row keeps its status and time */
	ck_assert_str_eq(row_status("s3"), "crashed");
	ck_assert_int_eq(count("SELECT COUNT(*) FROM sessions WHERE "
	    "ended_at = '2026-01-01T00:00:00Z'", NULL), 1);
	ck_assert_int_eq(sessions_end_stale(state_handle()), 0);
}
END_TEST

static json_t *
list(json_t *auth, json_t *args, int status)
{
	json_t	*res = call("sessions.list", args, auth, 0);

	ck_assert_msg(status_of(res) == status, "%s",
	    json_dumps(res, JSON_COMPACT));
	return res;
}

/* The ids of a list answer, joined with spaces. */
static const char *
ids(json_t *res)
{
	static char	 buf[256];
	json_t		*s;
	size_t		 i;

	buf[0] = '\0';
	json_array_foreach(json_object_get(data_of(res), "sessions"), i, s) {
		if (i > 0)
			strlcat(buf, " ", sizeof(buf));
		strlcat(buf, str(s, "id"), sizeof(buf));
	}
	json_decref(res);
	return buf;
}

static void
list_fixture(void)
{
	static const char *const rows[][5] = {
		{ "s1", "w1", "alice", "2026-01-01T00:00:01Z", "ended" },
		{ "s2", "w1", NULL, "2026-01-01T00:00:02Z", "crashed" },
		{ "s3", "w2", "bob", "2026-01-01T00:00:03Z", "active" },
		{ "s4", "w2", "alice", "2026-01-01T00:00:04Z", "active" },
	};
	size_t	 i;

	resolve_fixture();
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		sql("INSERT INTO sessions (id, app_id, worker_id, user_sub, "
		    "started_at, ended_at, status) VALUES ($1, $2, $3, $4, $5, "
		    "CASE WHEN $6 = 'active' THEN NULL ELSE $5 END, $6)", 6,
		    rows[i][0], APP_A, rows[i][1], rows[i][2], rows[i][3],
		    rows[i][4]);
	sql("INSERT INTO sessions (id, app_id, worker_id, started_at) "
	    "VALUES ('s9', $1, 'w3', '2026-01-01T00:00:09Z')", 1, APP_B);
}

START_TEST(t_sessions_list)
{
	json_t	*alice, *res, *s;

	list_fixture();
	alice = bearer("alice", "publisher");
	res = list(json_incref(alice), json_pack("{s:s}", "id", "hello"), 200);
	ck_assert_int_eq(json_object_size(data_of(res)), 1);
	s = json_array_get(json_object_get(data_of(res), "sessions"), 3);
	ck_assert_int_eq(json_object_size(s), 7);
	ck_assert_str_eq(str(s, "id"), "s1");
	ck_assert_str_eq(str(s, "app_id"), APP_A);
	ck_assert_str_eq(str(s, "worker_id"), "w1");
	ck_assert_str_eq(str(s, "user_sub"), "alice");
	ck_assert_str_eq(str(s, "started_at"), "2026-01-01T00:00:01Z");
	ck_assert_str_eq(str(s, "ended_at"), "2026-01-01T00:00:01Z");
	ck_assert_str_eq(str(s, "status"), "ended");
	s = json_array_get(json_object_get(data_of(res), "sessions"), 2);
	ck_assert(json_is_null(json_object_get(s, "user_sub")));
	s = json_array_get(json_object_get(data_of(res), "sessions"), 0);
	ck_assert(json_is_null(json_object_get(s, "ended_at")));
	/* newest first, this app's only */
	ck_assert_str_eq(ids(res), "s4 s3 s2 s1");

	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:s}",
	    "id", APP_A, "user", "alice"), 200)), "s4 s1");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:s}",
	    "id", APP_A, "status", "active"), 200)), "s4 s3");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack(
	    "{s:s s:s s:s}", "id", APP_A, "status", "ended", "user",
	    "alice"), 200)), "s1");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:s}",
	    "id", APP_A, "status", "bogus"), 200)), "");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:s}",
	    "id", APP_A, "user", ""), 200)), "s4 s3 s2 s1");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:b}",
	    "id", APP_A, "nomatch", 1), 200)), "");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:i}",
	    "id", APP_A, "limit", 2), 200)), "s4 s3");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:i}",
	    "id", APP_A, "limit", 0), 200)), "s4");
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:i}",
	    "id", APP_A, "limit", 100000), 200)), "s4 s3 s2 s1");
	/* by alias too */
	ck_assert_str_eq(ids(list(json_incref(alice), json_pack("{s:s s:i}",
	    "id", "old-hello", "limit", 1), 200)), "s4");
	json_decref(alice);
}
END_TEST

START_TEST(t_sessions_list_permissions)
{
	json_t	*args;

	list_fixture();
	sql("INSERT INTO app_access (app_id, principal, kind, role, "
	    "granted_by, granted_at) VALUES ($1, 'bob', 'user', "
	    "'collaborator', 'alice', '2026-01-01T00:00:00Z'), ($1, 'carol', "
	    "'user', 'viewer', 'alice', '2026-01-01T00:00:00Z')", 1, APP_A);
	args = json_pack("{s:s}", "id", "hello");
	ck_assert_str_eq(ids(list(bearer("bob", "viewer"), json_incref(args),
	    200)), "s4 s3 s2 s1");
	ck_assert_str_eq(ids(list(bearer("root", "admin"), json_incref(args),
	    200)), "s4 s3 s2 s1");
	expect(list(bearer("carol", "publisher"), json_incref(args), 404),
	    404, "app not found");
	expect(list(bearer("dave", "publisher"), json_incref(args), 404),
	    404, "app not found");
	/* public apps are still no one's sessions to read */
	sql("UPDATE apps SET access_type = 'public' WHERE id = $1", 1, APP_A);
	expect(list(bearer("erin", "viewer"), json_incref(args), 404), 404,
	    "app not found");
	expect(list(NULL, json_incref(args), 401), 401,
	    "authentication required");
	expect(list(bearer("bob", "viewer"), json_pack("{s:s}", "id",
	    "gone"), 404), 404, "app not found");
	json_decref(args);
}
END_TEST

/* ---- workers.check's view counts ------------------------------------ */

START_TEST(t_views)
{
	json_t	*alice, *res, *d;
	char	 old[32], recent[32];

	resolve_fixture();
	alice = bearer("alice", "publisher");
	res = call("workers.check", json_pack("{s:s}", "id", "hello"),
	    json_incref(alice), 0);
	ck_assert_int_eq(status_of(res), 200);
	d = data_of(res);
	ck_assert_str_eq(str(d, "app_id"), APP_A);
	ck_assert_int_eq(num(d, "total_views"), 0);
	ck_assert_int_eq(num(d, "recent_views"), 0);
	ck_assert_int_eq(num(d, "unique_visitors"), 0);
	ck_assert(json_is_null(json_object_get(d, "last_deployed_at")));
	json_decref(res);

	db_timestamp_offset(old, sizeof(old), -8 * 24 * 3600);
	db_timestamp_offset(recent, sizeof(recent), -6 * 24 * 3600);
	sql("INSERT INTO sessions (id, app_id, worker_id, user_sub, "
	    "started_at, status) VALUES ('s1', $1, 'w', 'alice', $2, 'ended'), "
	    "('s2', $1, 'w', 'alice', $3, 'ended'), "
	    "('s3', $1, 'w', NULL, $3, 'active'), "
	    "('s4', $1, 'w', 'bob', $2, 'crashed')", 3, APP_A, old, recent);
	json_decref(open_session("s5", APP_A, "w2", "carol"));
	json_decref(open_session("s6", APP_B, "w3", "dave"));
	sql("INSERT INTO bundles (id, app_id, status, uploaded_at, "
	    "deployed_at) VALUES ('b1', $1, 'ready', $2, $2)", 2, APP_A,
	    recent);
	sql("UPDATE apps SET active_bundle = 'b1' WHERE id = $1", 1, APP_A);

	res = call("workers.check", json_pack("{s:s}", "id", APP_A),
	    json_incref(alice), 0);
	d = data_of(res);
	ck_assert_int_eq(num(d, "total_views"), 5);
	ck_assert_int_eq(num(d, "recent_views"), 3);
	ck_assert_int_eq(num(d, "unique_visitors"), 3);
	ck_assert_str_eq(str(d, "last_deployed_at"), recent);
	json_decref(res);
	json_decref(alice);
}
END_TEST

static void
add_tests(TCase *tc)
{
	tcase_add_test(tc, t_resolve_defaults);
	tcase_add_test(tc, t_resolve_own_limits);
	tcase_add_test(tc, t_resolve_aliases);
	tcase_add_test(tc, t_resolve_not_found);
	tcase_add_test(tc, t_resolve_order);
	tcase_add_test(tc, t_proxy_class);
	tcase_add_test(tc, t_sessions_open);
	tcase_add_test(tc, t_sessions_end);
	tcase_add_test(tc, t_startup_sweep);
	tcase_add_test(tc, t_sessions_list);
	tcase_add_test(tc, t_sessions_list_permissions);
	tcase_add_test(tc, t_views);
}

static Suite *
sessions_suite(void)
{
	Suite	*s = suite_create("bystate_sessions");
	TCase	*tc;

	tc = tcase_create("sqlite");
	tcase_add_checked_fixture(tc, setup_sqlite, teardown);
	add_tests(tc);
	suite_add_tcase(s, tc);
	if (getenv("BYSTATE_TEST_PGURL") != NULL) {
		tc = tcase_create("postgres");
		tcase_add_checked_fixture(tc, setup_pg, teardown);
		add_tests(tc);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	run_setup();
	sr = srunner_create(sessions_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	run_teardown();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
