/*
 * Bundles: the rows behind an upload.  The bytes never pass through
 * bystate: byproxy streams them into a file byspawn opened, byspawn
 * unpacks them, and only a bundle that unpacked cleanly gets a row
 * (bundles.create), so a rejected upload leaves nothing here.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "bystate.h"

/*
 * POST /api/v1/apps/{id}/bundles, before the body is read: may the
 * caller deploy to this app?  Answers the app id and a fresh bundle id.
 */
static void
op_bundles_begin(struct api_ctx *ctx)
{
	struct app_ref	 app;
	char		 id[UUID_LEN];

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	uuid_v4(id, sizeof(id));
	api_ok(ctx, 200, json_pack("{s:s s:s s:s}", "app_id", app.id,
	    "app_name", app.name, "bundle_id", id));
}

static json_t	*bundles_prune(struct db *, const char *, const char *);
static int	 bundle_row(const struct db_row *, void *);

/*
 * The bundle unpacked and its manifest is valid: record it as pending.
 * It becomes ready and active once byspawn built its dependencies
 * (bundles.status).  The app is checked again: it may have been
 * deleted, or the caller's grant revoked, meanwhile.  The answer also
 * carries the limits the build runs with, which byproxy passes on to
 * byspawn and leaves out of the client's answer.
 */
static void
op_bundles_create(struct api_ctx *ctx)
{
	struct app_ref	 app;
	struct db	*db = state_handle();
	struct db_param	 p[5];
	const char	*bid = op_arg(ctx, "bundle_id");
	const char	*task = op_arg(ctx, "task_id");
	char		 now[32];
	uint64_t	 mem = 0;
	double		 cpu = 0;
	int		 pinned;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	if (bid == NULL || strlen(bid) != UUID_LEN - 1) {
		api_fail(ctx, 400, "bad_request", "bundle_id is required");
		return;
	}
	pinned = json_is_true(json_object_get(ctx->args, "pinned"));
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(bid);
	p[1] = DB_PTEXT(app.id);
	p[2] = DB_PTEXT(now);
	p[3] = DB_PTEXT(ctx->caller.sub);
	p[4] = DB_PINT(pinned);
	if (db_exec(db, "INSERT INTO bundles (id, app_id, status, "
	    "uploaded_at, deployed_by, pinned, upload_seq) "
	    "VALUES ($1, $2, 'pending', $3, $4, $5, (SELECT "
	    "COALESCE(MAX(upload_seq), 0) + 1 FROM bundles WHERE app_id = $2))",
	    p, 5) == -1) {
		api_internal(ctx, "bundles.create");
		return;
	}
	if (app_limits(app.id, &mem, &cpu, NULL, 0) == -1)
		log_warnx("bundles.create: no limits for app %s", app.id);
	audit_log(ctx, "bundle.upload", app.id, json_pack("{s:s}",
	    "bundle_id", bid));
	/* byspawn's task, which holds the unpack's and the build's log */
	api_ok(ctx, 202, json_pack("{s:s s:s s:{s:I s:f}}", "bundle_id", bid,
	    "task_id", task != NULL ? task : "", "build", "memory_limit",
	    (json_int_t)mem, "cpu_limit", cpu));
}

struct bundle_seq {
	int	 found;
	int64_t	 seq;
	char	 app[UUID_LEN];
};

static int
bundle_seq_row(const struct db_row *r, void *arg)
{
	struct bundle_seq	*b = arg;

	b->found = 1;
	b->seq = db_row_int(r, 0);
	strlcpy(b->app, db_row_text(r, 1), sizeof(b->app));
	return 1;
}

static int
bundle_seq(struct db *db, const char *id, struct bundle_seq *b)
{
	struct db_param	 p[1];

	memset(b, 0, sizeof(*b));
	if (id == NULL || *id == '\0')
		return 0;
	p[0] = DB_PTEXT(id);
	return db_query(db, "SELECT upload_seq, app_id FROM bundles WHERE "
	    "id = $1", p, 1, bundle_seq_row, b);
}

/*
 * byspawn: a build started (status "building") or ended ("ready" or
 * "failed").  A ready bundle becomes the app's active bundle unless a
 * newer upload is active already; bundles beyond bundle_retention are
 * pruned then, and their ids answered so that byspawn removes the files.
 */
static void
op_bundles_status(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct db_param	 p[3];
	struct bundle_seq b, cur;
	const char	*bid = op_arg(ctx, "bundle_id");
	const char	*st = op_arg(ctx, "status");
	char		 now[32], active[UUID_LEN] = "";
	uint64_t	 mem;
	double		 cpu;
	int		 activate = 0;

	if (st == NULL || (strcmp(st, "building") && strcmp(st, "ready") &&
	    strcmp(st, "failed"))) {
		api_fail(ctx, 400, "bad_request", "bad status");
		return;
	}
	if (bundle_seq(db, bid, &b) == -1) {
		api_internal(ctx, "bundles.status");
		return;
	}
	if (!b.found) {
		/* pruned or purged meanwhile: nothing to record */
		api_fail(ctx, 404, "not_found", "bundle not found");
		return;
	}
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(bid);
	p[1] = DB_PTEXT(st);
	p[2] = DB_PTEXT(now);
	if (db_begin(db) == -1) {
		api_internal(ctx, "bundles.status begin");
		return;
	}
	if ((strcmp(st, "ready") == 0 ? db_exec(db, "UPDATE bundles SET "
	    "status = $2, deployed_at = $3 WHERE id = $1", p, 3) :
	    db_exec(db, "UPDATE bundles SET status = $2 WHERE id = $1", p,
	    2)) == -1)
		goto fail;
	if (strcmp(st, "ready") == 0) {
		if (app_limits(b.app, &mem, &cpu, active, sizeof(active)) == -1 ||
		    bundle_seq(db, active, &cur) == -1)
			goto fail;
		activate = !cur.found || cur.seq < b.seq;
		p[1] = DB_PTEXT(b.app);
		if (activate && db_exec(db, "UPDATE apps SET active_bundle = $1, "
		    "updated_at = $3 WHERE id = $2", p, 3) == -1)
			goto fail;
	}
	if (db_commit(db) == -1)
		goto fail;
	if (strcmp(st, "building") != 0)
		audit_log(ctx, strcmp(st, "ready") == 0 ?
		    "bundle.restore.success" : "bundle.restore.fail", b.app,
		    json_pack("{s:s}", "bundle_id", bid));
	api_ok(ctx, 200, json_pack("{s:s s:b s:o}", "app_id", b.app,
	    "activated", activate, "pruned", activate ?
	    bundles_prune(db, b.app, bid) : json_array()));
	return;
 fail:
	db_rollback(db);
	api_internal(ctx, "bundles.status");
}

/*
 * POST /api/v1/apps/{id}/refresh and .../refresh/rollback, first half:
 * may the caller, and is there an unpinned active bundle?  byspawn,
 * which holds the libraries, does the rest.
 */
static void
op_bundles_refresh_check(struct api_ctx *ctx)
{
	struct app_ref	 app;
	struct db_param	 p[1];
	json_t		*arr;
	char		 bundle[UUID_LEN] = "";
	uint64_t	 mem = 0;
	double		 cpu = 0;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	if (app_limits(app.id, &mem, &cpu, bundle, sizeof(bundle)) == -1) {
		api_internal(ctx, "bundles.refresh_check");
		return;
	}
	if (bundle[0] == '\0') {
		api_fail(ctx, 409, "conflict", "app has no active bundle");
		return;
	}
	arr = json_array();
	p[0] = DB_PTEXT(bundle);
	if (db_query(state_handle(), "SELECT id, app_id, status, uploaded_at, "
	    "deployed_by, deployed_at, pinned FROM bundles WHERE id = $1",
	    p, 1, bundle_row, arr) == -1 || json_array_size(arr) != 1) {
		json_decref(arr);
		api_internal(ctx, "bundles.refresh_check");
		return;
	}
	if (json_is_true(json_object_get(json_array_get(arr, 0), "pinned"))) {
		json_decref(arr);
		api_fail(ctx, 409, "conflict", "App was deployed with pinned "
		    "dependencies. Redeploy to update.");
		return;
	}
	json_decref(arr);
	audit_log(ctx, json_is_true(json_object_get(ctx->args, "rollback")) ?
	    "app.refresh.rollback" : "app.refresh", app.id, json_pack("{s:s}",
	    "bundle_id", bundle));
	api_ok(ctx, 200, json_pack("{s:s s:s s:I s:f}", "app_id", app.id,
	    "bundle_id", bundle, "memory_limit", (json_int_t)mem,
	    "cpu_limit", cpu));
}

/* Start-up: a build in flight died with the previous run. */
void
bundles_fail_unfinished(struct db *db)
{
	if (db_exec(db, "UPDATE bundles SET status = 'failed' WHERE "
	    "status IN ('pending', 'building')", NULL, 0) == -1)
		log_warnx("bundles: cannot fail unfinished builds: %s",
		    db_error(db));
}

struct prune {
	int64_t	 keep;		/* non-active bundles to keep */
	int64_t	 seen;
	json_t	*ids;		/* the ones beyond */
};

static int
prune_row(const struct db_row *r, void *arg)
{
	struct prune	*p = arg;

	if (++p->seen > p->keep)
		json_array_append_new(p->ids, json_string(db_row_text(r, 0)));
	return 0;
}

/*
 * storage.bundle_retention: keep the active bundle and the newest
 * retention others; the rows of the rest go, and their ids are
 * returned so that byproxy has byspawn remove the files.
 */
static json_t *
bundles_prune(struct db *db, const char *app_id, const char *active)
{
	struct prune	 p;
	struct db_param	 prm[2];
	json_t		*id;
	size_t		 i;

	p.keep = proc_conf->storage.bundle_retention;
	p.seen = 0;
	p.ids = json_array();
	prm[0] = DB_PTEXT(app_id);
	prm[1] = DB_PTEXT(active);
	if (db_query(db, "SELECT id FROM bundles WHERE app_id = $1 AND "
	    "id <> $2 ORDER BY upload_seq DESC, uploaded_at DESC, id DESC",
	    prm, 2, prune_row, &p) == -1) {
		log_warnx("bundle retention: %s", db_error(db));
		return p.ids;
	}
	json_array_foreach(p.ids, i, id) {
		prm[0] = DB_PTEXT(json_string_value(id));
		if (db_exec(db, "DELETE FROM bundles WHERE id = $1", prm,
		    1) == -1)
			log_warnx("bundle retention: %s", db_error(db));
	}
	return p.ids;
}

static int
bundle_row(const struct db_row *r, void *arg)
{
	json_t	*arr = arg;

	json_array_append_new(arr, json_pack("{s:s s:s s:s s:s s:s? s:s? s:b}",
	    "id", db_row_text(r, 0), "app_id", db_row_text(r, 1), "status",
	    db_row_text(r, 2), "uploaded_at", db_row_text(r, 3),
	    "deployed_by", db_row_isnull(r, 4) ? NULL : db_row_text(r, 4),
	    "deployed_at", db_row_isnull(r, 5) ? NULL : db_row_text(r, 5),
	    "pinned", (int)db_row_int(r, 6)));
	return 0;
}

/* GET /api/v1/apps/{id}/bundles: newest first. */
static void
op_bundles_list(struct api_ctx *ctx)
{
	struct app_ref	 app;
	struct db_param	 p[1];
	json_t		*arr;

	if (app_resolve(ctx, op_arg(ctx, "id"), &app) != 1)
		return;
	if (!REL_CAN_DEPLOY(app.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return;
	}
	arr = json_array();
	p[0] = DB_PTEXT(app.id);
	if (db_query(state_handle(), "SELECT id, app_id, status, uploaded_at, "
	    "deployed_by, deployed_at, pinned FROM bundles WHERE app_id = $1 "
	    "ORDER BY upload_seq DESC, uploaded_at DESC, id DESC", p, 1,
	    bundle_row, arr) ==
	    -1) {
		json_decref(arr);
		api_internal(ctx, "bundles.list");
		return;
	}
	api_ok(ctx, 200, json_pack("{s:o}", "bundles", arr));
}

/*
 * GET /api/v1/tasks/{id}[/logs]: byproxy learnt the task's app from
 * byspawn; any relation to that app may see it.  The task comes back
 * unchanged in data.
 */
static void
op_tasks_check(struct api_ctx *ctx)
{
	struct app_ref	 app;
	json_t		*task = json_object_get(ctx->args, "task");
	char		 msg[128];

	if (app_resolve(ctx, op_arg(ctx, "app_id"), &app) != 1) {
		/* app_resolve said "app not found": say what was asked */
		snprintf(msg, sizeof(msg), "task %.64s not found",
		    json_string_value(json_object_get(task, "id")) ?: "");
		if (ctx->status == 404)
			api_fail(ctx, 404, "not_found", "%s", msg);
		return;
	}
	api_ok(ctx, 200, json_incref(task));
}

const struct api_op api_bundle_ops[] = {
	{ "tasks.check",	API_USER,	op_tasks_check },
	{ "bundles.begin",	API_USER,	op_bundles_begin },
	{ "bundles.create",	API_USER,	op_bundles_create },
	{ "bundles.list",	API_USER,	op_bundles_list },
	{ "bundles.refresh_check", API_USER,	op_bundles_refresh_check },
	{ "bundles.status",	API_SPAWN,	op_bundles_status },
	{ NULL,			0,		NULL }
};
