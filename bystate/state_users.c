/*
 * Users: who the caller is, and the admin's view of every user.
 *
 * A user row is created by byctl (token create), by the bootstrap
 * exchange and later by the OIDC login.  Its role and active flag are
 * read again on every authenticated call (state_auth.c), so a change
 * made here holds from the very next request.
 */

#include <sys/types.h>

#include <string.h>

#include <bsd/string.h>

#include "log.h"
#include "bystate.h"

static const char *const user_roles[] = { "admin", "publisher", "viewer",
    NULL };

int
user_valid_role(const char *role)
{
	size_t	 i;

	if (role == NULL)
		return 0;
	for (i = 0; user_roles[i] != NULL; i++)
		if (strcmp(role, user_roles[i]) == 0)
			return 1;
	return 0;
}

/* A sub is an opaque identifier; keep it printable and bounded. */
int
user_valid_sub(const char *sub)
{
	const unsigned char	*p;
	size_t			 len;

	if (sub == NULL || (len = strlen(sub)) == 0 ||
	    len >= sizeof(((struct caller *)0)->sub))
		return 0;
	for (p = (const unsigned char *)sub; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/*
 * Create the user unless it exists; an existing row is left alone (the
 * reference overwrote the bootstrap admin's email and name: not here).
 * 1 created, 0 existed, -1 error.
 */
int
user_ensure(struct db *db, const char *sub, const char *role,
    const char *email, const char *name)
{
	struct db_param	 p[5];
	char		 now[32];
	int64_t		 n;

	db_timestamp(now, sizeof(now));
	p[0] = DB_PTEXT(sub);
	p[1] = DB_PTEXT(email != NULL ? email : "");
	p[2] = DB_PTEXT(name != NULL ? name : "");
	p[3] = DB_PTEXT(role);
	p[4] = DB_PTEXT(now);
	/* last_login is NOT NULL: a user made here "logged in" now */
	n = db_exec(db, "INSERT INTO users (sub, email, name, role, active, "
	    "last_login) VALUES ($1, $2, $3, $4, 1, $5) "
	    "ON CONFLICT DO NOTHING", p, 5);
	if (n == -1)
		return -1;
	return n > 0;
}

static int
user_obj_row(const struct db_row *r, void *arg)
{
	json_t	**out = arg, *u;

	u = json_pack("{s:s s:s s:s s:s s:b s:s}",
	    "sub", db_row_text(r, 0),
	    "email", db_row_text(r, 1) ?: "",
	    "name", db_row_text(r, 2) ?: "",
	    "role", db_row_text(r, 3),
	    "active", db_row_int(r, 4) != 0,
	    "last_login", db_row_text(r, 5) ?: "");
	if (json_is_array(*out))
		json_array_append_new(*out, u);
	else
		*out = u;
	return 0;
}

#define USER_COLS	"sub, email, name, role, active, last_login"

/* The user as the API shows it: object, NULL when missing, -1 error. */
int
user_get(struct db *db, const char *sub, json_t **out)
{
	struct db_param	 p[1];

	*out = NULL;
	p[0] = DB_PTEXT(sub);
	if (db_query(db, "SELECT " USER_COLS " FROM users WHERE sub = $1",
	    p, 1, user_obj_row, out) == -1)
		return -1;
	return 0;
}

static int
require_admin(struct api_ctx *ctx)
{
	if (strcmp(ctx->caller.role, "admin") == 0)
		return 0;
	api_fail(ctx, 403, "forbidden", "admin only");
	return -1;
}

static int
user_me_row(const struct db_row *r, void *arg)
{
	json_t	**u = arg;

	*u = json_pack("{s:s s:s s:s s:s}", "sub", db_row_text(r, 0),
	    "email", db_row_text(r, 1), "name", db_row_text(r, 2), "role",
	    db_row_text(r, 3));
	return 1;
}

/* GET /api/v1/users/me */
static void
op_users_me(struct api_ctx *ctx)
{
	json_t		*u = NULL;
	struct db_param	 p[1];

	p[0] = DB_PTEXT(ctx->caller.sub);
	if (db_query(state_handle(), "SELECT sub, email, name, role FROM "
	    "users WHERE sub = $1", p, 1, user_me_row, &u) == -1) {
		api_internal(ctx, "users.me");
		return;
	}
	if (u == NULL)
		u = json_pack("{s:s s:s s:s}", "sub", ctx->caller.sub,
		    "name", ctx->caller.sub, "role", ctx->caller.role);
	api_ok(ctx, 200, u);
}

/* GET /api/v1/users, byctl user list: most recent login first. */
static void
op_users_list(struct api_ctx *ctx)
{
	json_t	*list;

	if (require_admin(ctx) == -1)
		return;
	list = json_array();
	if (db_query(state_handle(), "SELECT " USER_COLS " FROM users "
	    "ORDER BY last_login DESC, sub", NULL, 0, user_obj_row,
	    &list) == -1) {
		json_decref(list);
		api_internal(ctx, "users.list");
		return;
	}
	api_ok(ctx, 200, list);
}

/* GET /api/v1/users/{sub} */
static void
op_users_get(struct api_ctx *ctx)
{
	const char	*sub = json_string_value(json_object_get(ctx->args,
	    "sub"));
	json_t		*u;

	if (require_admin(ctx) == -1)
		return;
	if (sub == NULL || user_get(state_handle(), sub, &u) == -1) {
		if (sub == NULL)
			api_fail(ctx, 404, "not_found", "user not found");
		else
			api_internal(ctx, "users.get");
		return;
	}
	if (u == NULL) {
		api_fail(ctx, 404, "not_found", "user not found");
		return;
	}
	api_ok(ctx, 200, u);
}

struct user_change {
	const char	*role;		/* NULL: unchanged */
	int		 active;	/* -1: unchanged */
};

/*
 * The PATCH body: {"role"?: string, "active"?: bool}.  JSON null counts
 * as absent; a wrong type is an invalid body, as a strict decoder says.
 */
static int
user_change_parse(struct api_ctx *ctx, json_t *body, struct user_change *ch)
{
	json_t	*role, *active;

	ch->role = NULL;
	ch->active = -1;
	role = json_object_get(body, "role");
	active = json_object_get(body, "active");
	if ((role != NULL && !json_is_null(role) && !json_is_string(role)) ||
	    (active != NULL && !json_is_null(active) &&
	    !json_is_boolean(active))) {
		api_fail(ctx, 400, "bad_request", "invalid request body");
		return -1;
	}
	if (json_is_string(role))
		ch->role = json_string_value(role);
	if (json_is_boolean(active))
		ch->active = json_is_true(active);
	if (ch->role == NULL && ch->active == -1) {
		api_fail(ctx, 400, "bad_request", "nothing to update");
		return -1;
	}
	if (ch->role != NULL && !user_valid_role(ch->role)) {
		api_fail(ctx, 400, "bad_request", "invalid role '%s', must be "
		    "one of: admin, publisher, viewer", ch->role);
		return -1;
	}
	return 0;
}

/* Apply the change; 1 done, 0 no such user, -1 error. */
static int
user_change_apply(struct db *db, const char *sub,
    const struct user_change *ch)
{
	struct db_param	 p[3];
	int64_t		 n;

	p[0] = DB_PTEXT(sub);
	p[1] = DB_PTEXT(ch->role);
	p[2] = DB_PINT(ch->active);
	/* NULL and -1 keep the column as it is */
	n = db_exec(db, "UPDATE users SET "
	    "role = COALESCE($2, role), "
	    "active = CASE WHEN $3 < 0 THEN active ELSE $3 END "
	    "WHERE sub = $1", p, 3);
	if (n == -1)
		return -1;
	return n > 0;
}

/*
 * PATCH /api/v1/users/{sub}, byctl user set.  The order of the checks
 * is the reference's: admin, not yourself (before the body is looked
 * at), the body, then the user.
 */
static void
op_users_update(struct api_ctx *ctx)
{
	const char		*sub = json_string_value(json_object_get(
	    ctx->args, "sub"));
	json_t			*body = json_object_get(ctx->args, "body");
	json_t			*u, *detail;
	struct user_change	 ch;
	int			 r;

	if (require_admin(ctx) == -1)
		return;
	if (sub == NULL) {
		api_fail(ctx, 404, "not_found", "user not found");
		return;
	}
	if (!ctx->caller.operator && strcmp(sub, ctx->caller.sub) == 0) {
		api_fail(ctx, 400, "bad_request",
		    "cannot modify your own account");
		return;
	}
	if (!json_is_object(body)) {
		api_fail(ctx, 400, "bad_request", "invalid request body");
		return;
	}
	if (user_change_parse(ctx, body, &ch) == -1)
		return;
	if ((r = user_change_apply(state_handle(), sub, &ch)) == -1 ||
	    (r == 1 && user_get(state_handle(), sub, &u) == -1)) {
		api_internal(ctx, "users.update");
		return;
	}
	if (r == 0 || u == NULL) {
		api_fail(ctx, 404, "not_found", "user not found");
		return;
	}
	detail = json_object();
	if (ch.role != NULL)
		json_object_set_new(detail, "role", json_string(ch.role));
	if (ch.active != -1)
		json_object_set_new(detail, "active", json_boolean(ch.active));
	audit_log(ctx, "user.update", sub, detail);
	api_ok(ctx, 200, u);
}

const struct api_op api_user_ops[] = {
	{ "users.me",		API_USER,	op_users_me },
	{ "users.list",		API_USER,	op_users_list },
	{ "users.get",		API_USER,	op_users_get },
	{ "users.update",	API_USER,	op_users_update },
	{ NULL,			0,		NULL }
};
