/*
 * Per-app access grants: who besides the owner may view an app or work
 * on it.  Only the owner and admins manage grants; anyone else is told
 * the app does not exist.  Grants are keyed by the resolved app id, so
 * revoking through the app's name works (the reference's bug, 11.4.1,
 * is not copied).
 */

#include <sys/types.h>

#include <string.h>

#include "log.h"
#include "bystate.h"

/* Resolve {id} and require owner or admin; 1 ok, else answered. */
static int
access_app(struct api_ctx *ctx, struct app_ref *a)
{
	if (app_resolve(ctx, op_arg(ctx, "id"), a) != 1)
		return 0;
	if (!REL_CAN_MANAGE(a->rel)) {
		api_fail(ctx, 404, "not_found", "app not found");
		return 0;
	}
	return 1;
}


/* POST /api/v1/apps/{id}/access: upsert; re-granting changes the role */
static void
op_access_grant(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[5];
	json_t		*body;
	const char	*principal, *kind, *role;
	char		 now[32];

	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (!access_app(ctx, &a) ||
	    (body = op_body(ctx, "invalid request body")) == NULL ||
	    op_str(ctx, body, "principal", "",
	    "invalid request body", &principal) == -1 ||
	    op_str(ctx, body, "kind", "",
	    "invalid request body", &kind) == -1 ||
	    op_str(ctx, body, "role", "", "invalid request body", &role) == -1)
		goto out;
	if (strcmp(kind, "user") != 0) {
		api_fail(ctx, 400, "bad_request", "kind must be 'user'");
		goto out;
	}
	if (strcmp(role, "viewer") != 0 && strcmp(role, "collaborator") != 0) {
		api_fail(ctx, 400, "bad_request",
		    "role must be 'viewer' or 'collaborator'");
		goto out;
	}
	if (*principal == '\0') {
		api_fail(ctx, 400, "bad_request",
		    "principal must not be empty");
		goto out;
	}
	if (strcmp(principal, ctx->caller.sub) == 0) {
		api_fail(ctx, 400, "bad_request",
		    "cannot grant access to yourself");
		goto out;
	}
	/* the principal need not exist yet: an OIDC user may log in later */
	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(a.id);
	p[1] = DB_PTEXT(principal);
	p[2] = DB_PTEXT(role);
	p[3] = DB_PTEXT(ctx->caller.sub);
	p[4] = DB_PTEXT(now);
	if (db_exec(db, "INSERT INTO app_access (app_id, principal, kind, "
	    "role, granted_by, granted_at) VALUES ($1, $2, 'user', $3, $4, "
	    "$5) ON CONFLICT (app_id, principal, kind) DO UPDATE SET "
	    "role = excluded.role, granted_by = excluded.granted_by, "
	    "granted_at = excluded.granted_at", p, 5) == -1) {
		api_internal(ctx, "grant");
		goto out;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	audit_log(ctx, "access.grant", a.id, json_pack("{s:s s:s}",
	    "principal", principal, "role", role));
	api_ok(ctx, 204, NULL);
	return;
out:
	db_rollback(db);
}

static int
grant_row(const struct db_row *r, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s s:s s:s s:s s:s}",
	    "principal", db_row_text(r, 0), "kind", db_row_text(r, 1),
	    "role", db_row_text(r, 2), "granted_by", db_row_text(r, 3),
	    "granted_at", db_row_text(r, 4)));
	return 0;
}

/* GET /api/v1/apps/{id}/access: a bare array */
static void
op_access_list(struct api_ctx *ctx)
{
	struct app_ref	 a;
	struct db_param	 p[1];
	json_t		*list;

	if (!access_app(ctx, &a))
		return;
	list = json_array();
	p[0] = DB_PTEXT(a.id);
	if (db_query(state_handle(), "SELECT principal, kind, role, "
	    "granted_by, granted_at FROM app_access WHERE app_id = $1 "
	    "ORDER BY granted_at, principal", p, 1, grant_row, list) == -1) {
		json_decref(list);
		api_internal(ctx, "list grants");
		return;
	}
	api_ok(ctx, 200, list);
}

/* DELETE /api/v1/apps/{id}/access/{kind}/{principal} */
static void
op_access_revoke(struct api_ctx *ctx)
{
	struct db	*db = state_handle();
	struct app_ref	 a;
	struct db_param	 p[3];
	const char	*kind = op_arg(ctx, "kind");
	const char	*principal = op_arg(ctx, "principal");
	int64_t		 n;

	if (db_begin(db) == -1) {
		api_internal(ctx, "begin");
		return;
	}
	if (!access_app(ctx, &a))
		goto out;
	p[0] = DB_PTEXT(a.id);
	p[1] = DB_PTEXT(principal != NULL ? principal : "");
	p[2] = DB_PTEXT(kind != NULL ? kind : "");
	if ((n = db_exec(db, "DELETE FROM app_access WHERE app_id = $1 AND "
	    "principal = $2 AND kind = $3", p, 3)) == -1) {
		api_internal(ctx, "revoke");
		goto out;
	}
	if (n == 0) {
		api_fail(ctx, 404, "not_found", "grant not found");
		goto out;
	}
	if (db_commit(db) == -1) {
		api_internal(ctx, "commit");
		return;
	}
	/* target: the app's id whatever {id} was (the reference: raw) */
	audit_log(ctx, "access.revoke", a.id, json_pack("{s:s}", "principal",
	    principal));
	api_ok(ctx, 204, NULL);
	return;
out:
	db_rollback(db);
}

const struct api_op api_access_ops[] = {
	{ "access.grant",	API_USER,	op_access_grant },
	{ "access.list",	API_USER,	op_access_list },
	{ "access.revoke",	API_USER,	op_access_revoke },
	{ NULL,			0,		NULL }
};
