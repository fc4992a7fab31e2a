/*
 * Tags: a flat, admin-managed vocabulary (any signed-in user lists it)
 * and its association with apps (collaborators of an app tag it).  Tag
 * management answers 404 to non-admins, as the reference does.
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "bystate.h"

static int
tag_row(const struct db_row *r, void *arg)
{
	json_t	*o;

	o = json_pack("{s:s s:s s:s}", "id", db_row_text(r, 0), "name",
	    db_row_text(r, 1), "created_at", db_row_text(r, 2));
	if (json_is_array((json_t *)arg))
		json_array_append_new(arg, o);
	else
		json_object_set_new(arg, "tag", o);
	return 0;
}

/* A tag by id: 1 and *out set, 0 none, -1 error. */
static int
tag_get(struct db *db, const char *id, json_t **out)
{
	struct db_param	 p[1];
	json_t		*holder = json_object();

	*out = NULL;
	p[0] = DB_PTEXT(id != NULL ? id : "");
	if (db_query(db, "SELECT id, name, created_at FROM tags WHERE "
	    "id = $1", p, 1, tag_row, holder) == -1) {
		json_decref(holder);
		return -1;
	}
	if ((*out = json_object_get(holder, "tag")) != NULL)
		json_incref(*out);
	json_decref(holder);
	return *out != NULL;
}

static int
tag_admin(struct api_ctx *ctx)
{
	if (strcmp(ctx->caller.role, "admin") == 0)
		return 1;
	api_fail(ctx, 404, "not_found", "not found");
	return 0;
}


/* GET /api/v1/tags: every tag, by name, a bare array */
static void
op_tags_list(struct api_ctx *ctx)
{
	json_t	*list = json_array();

	if (db_query(state_handle(), "SELECT id, name, created_at FROM tags "
	    "ORDER BY name", NULL, 0, tag_row, list) == -1) {
		json_decref(list);
		api_internal(ctx, "list tags");
		return;
	}
	api_ok(ctx, 200, list);
}

/* POST /api/v1/tags */
static void
op_tags_create(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct db_param	 p[3];
	json_t		*body, *tag;
	const char	*name, *problem;
	char		 id[UUID_LEN], now[32];

	if (!tag_admin(ctx) ||
	    (body = op_body(ctx, "invalid JSON body")) == NULL ||
	    op_str(ctx, body, "name", "", "invalid JSON body", &name) == -1)
		return;
	if ((problem = app_name_problem(name)) != NULL) {
		api_fail(ctx, 400, "bad_request", "tag name %s", problem);
		return;
	}
	uuid_v4(id, sizeof(id));
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(id);
	p[1] = DB_PTEXT(name);
	p[2] = DB_PTEXT(now);
	if (db_exec(db, "INSERT INTO tags (id, name, created_at) VALUES "
	    "($1, $2, $3)", p, 3) == -1) {
		if (db_errcode(db) == DB_E_UNIQUE)
			api_fail(ctx, 409, "conflict",
			    "tag \"%s\" already exists", name);
		else
			api_internal(ctx, "create tag");
		return;
	}
	if (tag_get(db, id, &tag) != 1) {
		api_internal(ctx, "read tag");
		return;
	}
	api_ok(ctx, 201, tag);
}

/*
 * PATCH /api/v1/tags/{id}: rename.  As in the reference only the length
 * is checked, and a taken name answers the reference's odd body
 * {"error":"tag name already exists","message":""}.
 */
static void
op_tags_update(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct db_param	 p[2];
	json_t		*body, *tag;
	const char	*name;
	size_t		 len;
	int		 r;

	if (!tag_admin(ctx))
		return;
	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if ((r = tag_get(db, op_arg(ctx, "id"), &tag)) == -1) {
		api_internal(ctx, "read tag");
		goto out;
	}
	if (r == 0) {
		api_fail(ctx, 404, "not_found", "tag not found");
		goto out;
	}
	json_decref(tag);
	if ((body = op_body(ctx, "invalid JSON body")) == NULL ||
	    op_str(ctx, body, "name", "", "invalid JSON body", &name) == -1)
		goto out;
	if ((len = strlen(name)) == 0 || len > 63) {
		api_fail(ctx, 400, "bad_request",
		    "name must be 1-63 characters");
		goto out;
	}
	p[0] = DB_PTEXT(name);
	p[1] = DB_PTEXT(op_arg(ctx, "id"));
	if (db_exec(db, "UPDATE tags SET name = $1 WHERE id = $2", p, 2) ==
	    -1) {
		if (db_errcode(db) == DB_E_UNIQUE)
			api_fail(ctx, 409, "tag name already exists", "%s", "");
		else
			api_internal(ctx, "rename tag");
		goto out;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	if (tag_get(db, op_arg(ctx, "id"), &tag) != 1) {
		api_internal(ctx, "read tag");
		return;
	}
	api_ok(ctx, 200, tag);
	return;
out:
	db_rollback(db);
}

/* DELETE /api/v1/tags/{id}: app_tags rows go with it (cascade) */
static void
op_tags_delete(struct api_ctx *ctx)
{
	struct db_param	 p[1];
	int64_t		 n;

	if (!tag_admin(ctx))
		return;
	p[0] = DB_PTEXT(op_arg(ctx, "id") ? op_arg(ctx, "id") : "");
	if ((n = db_exec(state_handle(), "DELETE FROM tags WHERE id = $1", p,
	    1)) == -1) {
		api_internal(ctx, "delete tag");
		return;
	}
	if (n == 0) {
		api_fail(ctx, 404, "not_found", "tag not found");
		return;
	}
	api_ok(ctx, 204, NULL);
}

/* GET /api/v1/apps/{id}/tags: {"tags":[...]} by name, for any viewer */
static void
op_app_tags_list(struct api_ctx *ctx)
{
	struct app_ref	 a;
	struct db_param	 p[1];
	json_t		*list;

	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1)
		return;
	list = json_array();
	p[0] = DB_PTEXT(a.id);
	if (db_query(state_handle(), "SELECT t.id, t.name, t.created_at FROM "
	    "app_tags x JOIN tags t ON t.id = x.tag_id WHERE x.app_id = $1 "
	    "ORDER BY t.name", p, 1, tag_row, list) == -1) {
		json_decref(list);
		api_internal(ctx, "list app tags");
		return;
	}
	api_ok(ctx, 200, json_pack("{s:o}", "tags", list));
}

/* POST /api/v1/apps/{id}/tags: idempotent */
static void
op_app_tags_add(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[2];
	json_t		*body, *v, *tag;
	const char	*tag_id = "";
	int		 r;

	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1)
		goto out;
	if (!REL_CAN_DEPLOY(a.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		goto out;
	}
	if ((body = op_body(ctx, "invalid JSON body")) == NULL)
		goto out;
	if ((v = json_object_get(body, "tag_id")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			api_fail(ctx, 400, "bad_request",
			    "invalid JSON body: tag_id must be a string");
			goto out;
		}
		tag_id = json_string_value(v);
	}
	if (*tag_id == '\0') {
		api_fail(ctx, 400, "bad_request", "tag_id is required");
		goto out;
	}
	if ((r = tag_get(db, tag_id, &tag)) == -1) {
		api_internal(ctx, "read tag");
		goto out;
	}
	if (r == 0) {
		api_fail(ctx, 404, "not_found", "tag not found");
		goto out;
	}
	json_decref(tag);
	p[0] = DB_PTEXT(a.id);
	p[1] = DB_PTEXT(tag_id);
	if (db_exec(db, "INSERT INTO app_tags (app_id, tag_id) VALUES ($1, $2) "
	    "ON CONFLICT DO NOTHING", p, 2) == -1) {
		api_internal(ctx, "tag app");
		goto out;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	api_ok(ctx, 204, NULL);
	return;
out:
	db_rollback(db);
}

/* DELETE /api/v1/apps/{id}/tags/{tag} */
static void
op_app_tags_remove(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[2];
	const char	*tag_id = op_arg(ctx, "tag");
	int64_t		 n;

	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (app_resolve(ctx, op_arg(ctx, "id"), &a) != 1)
		goto out;
	if (!REL_CAN_DEPLOY(a.rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		goto out;
	}
	p[0] = DB_PTEXT(a.id);
	p[1] = DB_PTEXT(tag_id != NULL ? tag_id : "");
	if ((n = db_exec(db, "DELETE FROM app_tags WHERE app_id = $1 AND "
	    "tag_id = $2", p, 2)) == -1) {
		api_internal(ctx, "untag app");
		goto out;
	}
	if (n == 0) {
		api_fail(ctx, 404, "not_found", "tag association not found");
		goto out;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	api_ok(ctx, 204, NULL);
	return;
out:
	db_rollback(db);
}

const struct api_op api_tag_ops[] = {
	{ "tags.list",		API_USER,	op_tags_list },
	{ "tags.create",	API_USER,	op_tags_create },
	{ "tags.update",	API_USER,	op_tags_update },
	{ "tags.delete",	API_USER,	op_tags_delete },
	{ "apps.tags.list",	API_USER,	op_app_tags_list },
	{ "apps.tags.add",	API_USER,	op_app_tags_add },
	{ "apps.tags.remove",	API_USER,	op_app_tags_remove },
	{ NULL,			0,		NULL }
};
