/*
 * Sessions: one row per proxied session, kept as history (the runtime
 * answer counts them, GET /api/v1/apps/{id}/sessions lists them).
 * byproxy opens a row when it sends a new session to a worker and ends
 * the rows of a worker when the worker goes (ended, or crashed when it
 * failed its health checks); disabling an app ends its rows in
 * apps.disable.  A row is active, ended or crashed, and only active
 * rows change.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

#define LIST_LIMIT_DEFAULT	50
#define LIST_LIMIT_MAX		200
#define SESSION_ID_MAX		63

#define SESSION_COLS	"id, app_id, worker_id, user_sub, started_at, "	\
			"ended_at, status"

/* Ids byproxy and byspawn make: UUIDs, or at least short and plain. */
static int
session_id_ok(const char *s)
{
	size_t	 i, len;

	if (s == NULL || (len = strlen(s)) == 0 || len > SESSION_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

static json_t *
text_or_null(const struct db_row *r, int c)
{
	const char	*s = db_row_text(r, c);

	return s != NULL ? json_string(s) : json_null();
}

static int
session_row(const struct db_row *r, void *arg)
{
	json_array_append_new(arg, json_pack("{s:o s:o s:o s:o s:o s:o s:o}",
	    "id", text_or_null(r, 0), "app_id", text_or_null(r, 1),
	    "worker_id", text_or_null(r, 2), "user_sub", text_or_null(r, 3),
	    "started_at", text_or_null(r, 4), "ended_at", text_or_null(r, 5),
	    "status", text_or_null(r, 6)));
	return 0;
}

/*
 * sessions.open {id, app_id, worker_id, user_sub|null}: a new active
 * row, started now.  Answers 201 with the row.
 */
static void
op_sessions_open(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct db_param	 p[5];
	json_t		*sub = json_object_get(ctx->args, "user_sub");
	const char	*id = op_arg(ctx, "id"), *app = op_arg(ctx, "app_id");
	const char	*worker = op_arg(ctx, "worker_id");
	char		 now[32];

	if (!session_id_ok(id) || !session_id_ok(app) ||
	    !session_id_ok(worker)) {
		api_fail(ctx, 400, "bad_request",
		    "id, app_id and worker_id are required");
		return;
	}
	if (sub != NULL && !json_is_null(sub) &&
	    !user_valid_sub(json_string_value(sub))) {
		api_fail(ctx, 400, "bad_request",
		    "user_sub must be a user or null");
		return;
	}
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(id);
	p[1] = DB_PTEXT(app);
	p[2] = DB_PTEXT(worker);
	p[3] = DB_PTEXT(json_string_value(sub));
	p[4] = DB_PTEXT(now);
	if (db_exec(db, "INSERT INTO sessions (id, app_id, worker_id, "
	    "user_sub, started_at, status) VALUES ($1, $2, $3, $4, $5, "
	    "'active')", p, 5) == -1) {
		if (db_errcode(db) == DB_E_UNIQUE)
			api_fail(ctx, 409, "conflict",
			    "session %s already exists", id);
		else if (db_errcode(db) == DB_E_FOREIGN)
			api_fail(ctx, 404, "not_found", "app not found");
		else
			api_internal(ctx, "open session");
		return;
	}
	api_ok(ctx, 201, json_pack("{s:s s:s s:s s:O s:s s:n s:s}", "id", id,
	    "app_id", app, "worker_id", worker, "user_sub",
	    sub != NULL ? sub : json_null(), "started_at", now, "ended_at",
	    "status", "active"));
}

static const char end_by_worker[] = "UPDATE sessions SET status = $1, "
    "ended_at = $2 WHERE worker_id = $3 AND status = 'active'";
static const char end_by_app[] = "UPDATE sessions SET status = $1, "
    "ended_at = $2 WHERE app_id = $3 AND status = 'active'";
static const char end_by_id[] = "UPDATE sessions SET status = $1, "
    "ended_at = $2 WHERE id = $3 AND status = 'active'";

/* Several rows by id, in one transaction: the count or -1. */
static int64_t
sessions_end_ids(struct db *db, json_t *ids, struct db_param *p)
{
	json_t	*v;
	size_t	 i;
	int64_t	 n, total = 0;

	if (db_begin(db) == -1)
		return -1;
	json_array_foreach(ids, i, v) {
		p[2] = DB_PTEXT(json_string_value(v));
		if ((n = db_exec(db, end_by_id, p, 3)) == -1) {
			db_rollback(db);
			return -1;
		}
		total += n;
	}
	if (db_commit(db) == -1)
		return -1;
	return total;
}

static int
string_array(json_t *a)
{
	json_t	*v;
	size_t	 i;

	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, v)
		if (!json_is_string(v))
			return 0;
	return 1;
}

/*
 * sessions.end {worker_id} | {ids: [...]} | {app_id}, and status
 * "ended" or "crashed": the active rows among them end now.  Answers
 * {"updated": n}.
 */
static void
op_sessions_end(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct db_param	 p[3];
	json_t		*ids = json_object_get(ctx->args, "ids");
	json_t		*worker = json_object_get(ctx->args, "worker_id");
	json_t		*app = json_object_get(ctx->args, "app_id");
	const char	*status = op_arg(ctx, "status");
	char		 now[32];
	int64_t		 n;

	if (status == NULL || (strcmp(status, "ended") != 0 &&
	    strcmp(status, "crashed") != 0)) {
		api_fail(ctx, 400, "bad_request",
		    "status must be 'ended' or 'crashed'");
		return;
	}
	if ((worker != NULL) + (ids != NULL) + (app != NULL) != 1 ||
	    (worker != NULL && !json_is_string(worker)) ||
	    (app != NULL && !json_is_string(app)) ||
	    (ids != NULL && !string_array(ids))) {
		api_fail(ctx, 400, "bad_request", "one of worker_id, app_id "
		    "or ids (an array of strings) is required");
		return;
	}
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(status);
	p[1] = DB_PTEXT(now);
	if (ids != NULL)
		n = sessions_end_ids(db, ids, p);
	else {
		p[2] = DB_PTEXT(json_string_value(worker != NULL ? worker :
		    app));
		n = db_exec(db, worker != NULL ? end_by_worker : end_by_app,
		    p, 3);
	}
	if (n == -1) {
		api_internal(ctx, "end sessions");
		return;
	}
	api_ok(ctx, 200, json_pack("{s:I}", "updated", (json_int_t)n));
}

/*
 * At start-up: a row still active was opened by the previous run, whose
 * workers died with it (byd takes its workers along), so it ended.  This
 * holds while one server uses the database: a second one's live rows
 * would be ended too.
 */
int64_t
sessions_end_stale(struct db *db)
{
	struct db_param	 p[1];
	char		 now[32];
	int64_t		 n;

	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(now);
	if ((n = db_exec(db, "UPDATE sessions SET status = 'ended', "
	    "ended_at = $1 WHERE status = 'active'", p, 1)) == -1) {
		log_warnx("sessions: %s", db_error(db));
		return -1;
	}
	if (n > 0)
		log_info("sessions: %lld left active by the previous run "
		    "marked ended", (long long)n);
	return n;
}

/*
 * GET /api/v1/apps/{id}/sessions?user=&status=&limit=: collaborator or
 * better; newest first, limit 1..200 (50 when absent).  A user or
 * status filter matches exactly; "nomatch" (a value that is not text)
 * matches nothing.
 */
static void
op_sessions_list(struct api_ctx *ctx)
{
	struct app_ref	 app;
	struct db_param	 p[4];
	json_t		*arr, *v;
	const char	*user = op_arg(ctx, "user");
	const char	*status = op_arg(ctx, "status");
	char		 sql[512], frag[64];
	json_int_t	 limit = LIST_LIMIT_DEFAULT;
	size_t		 n = 0;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	arr = json_array();
	if (json_is_true(json_object_get(ctx->args, "nomatch")))
		goto answer;
	if (json_is_integer(v = json_object_get(ctx->args, "limit")))
		limit = json_integer_value(v);
	if (limit < 1)
		limit = 1;
	if (limit > LIST_LIMIT_MAX)
		limit = LIST_LIMIT_MAX;

	p[n++] = DB_PTEXT(app.id);
	strlcpy(sql, "SELECT " SESSION_COLS " FROM sessions WHERE "
	    "app_id = $1", sizeof(sql));
	if (user != NULL && *user != '\0') {
		p[n++] = DB_PTEXT(user);
		snprintf(frag, sizeof(frag), " AND user_sub = $%zu", n);
		strlcat(sql, frag, sizeof(sql));
	}
	if (status != NULL && *status != '\0') {
		p[n++] = DB_PTEXT(status);
		snprintf(frag, sizeof(frag), " AND status = $%zu", n);
		strlcat(sql, frag, sizeof(sql));
	}
	p[n++] = DB_PINT(limit);
	snprintf(frag, sizeof(frag), " ORDER BY started_at DESC, id DESC "
	    "LIMIT $%zu", n);
	strlcat(sql, frag, sizeof(sql));
	if (db_query(state_handle(), sql, p, n, session_row, arr) == -1) {
		json_decref(arr);
		api_internal(ctx, "sessions.list");
		return;
	}
answer:
	api_ok(ctx, 200, json_pack("{s:o}", "sessions", arr));
}

const struct api_op api_session_ops[] = {
	{ "sessions.open",	API_PROXY,	op_sessions_open },
	{ "sessions.end",	API_PROXY,	op_sessions_end },
	{ "sessions.list",	API_USER,	op_sessions_list },
	{ NULL,			0,		NULL }
};
