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

/*
 * The bundle unpacked: record it as ready and make it the app's active
 * bundle (dependency builds come with their own issue; until then a
 * bundle needs nothing beyond its files).  The app is checked again:
 * it may have been deleted, or the caller's grant revoked, meanwhile.
 */
static void
op_bundles_create(struct api_ctx *ctx)
{
	struct app_ref	 app;
	struct db	*db = state_handle();
	struct db_param	 p[4];
	const char	*bid = op_arg(ctx, "bundle_id");
	const char	*task = op_arg(ctx, "task_id");
	char		 now[32];

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
	db_timestamp(now, sizeof(now));
	if (db_begin(db) == -1) {
		api_internal(ctx, "bundles.create begin");
		return;
	}
	p[0] = DB_PTEXT(bid);
	p[1] = DB_PTEXT(app.id);
	p[2] = DB_PTEXT(now);
	p[3] = DB_PTEXT(ctx->caller.sub);
	if (db_exec(db, "INSERT INTO bundles (id, app_id, status, "
	    "uploaded_at, deployed_by, deployed_at, pinned, upload_seq) "
	    "VALUES ($1, $2, 'ready', $3, $4, $3, 0, (SELECT "
	    "COALESCE(MAX(upload_seq), 0) + 1 FROM bundles WHERE app_id = $2))",
	    p, 4) == -1)
		goto fail;
	if (db_exec(db, "UPDATE apps SET active_bundle = $1, updated_at = $3 "
	    "WHERE id = $2", p, 3) == -1)
		goto fail;
	if (db_commit(db) == -1)
		goto fail;
	audit_log(ctx, "bundle.upload", app.id, json_pack("{s:s}",
	    "bundle_id", bid));
	/* byspawn's task, which holds the unpack's log */
	api_ok(ctx, 202, json_pack("{s:s s:s s:o}", "bundle_id", bid,
	    "task_id", task != NULL ? task : "", "pruned",
	    bundles_prune(db, app.id, bid)));
	return;
 fail:
	db_rollback(db);
	api_internal(ctx, "bundles.create");
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
	{ NULL,			0,		NULL }
};
